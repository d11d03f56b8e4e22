/*
 * tok_internal.h — the tokenizer's private layout, shared by tokenizer.c (core, maps, encode
 * driver, detokenizer), spm.c, bpe.c, tokload.c (file loaders) and chat.c. Not installed.
 */
#ifndef HASS_TOK_INTERNAL_H
#define HASS_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* token types (GGUF numbering) */
enum {
    TOKT_NORMAL = 1,
    TOKT_UNKNOWN = 2,
    TOKT_CONTROL = 3,
    TOKT_USER = 4,
    TOKT_UNUSED = 5,
    TOKT_BYTE = 6,
};

enum { CHAT_HASS = 0, CHAT_LLAMA2, CHAT_LLAMA3, CHAT_CHATML };

typedef struct hass__scratch hass__scratch;

typedef struct {
    int32_t id;
    uint32_t off, len; /* content in the string pool */
    int special;       /* 1: matched only with parse_special; 0: always (HF non-special) */
    uint8_t c0;        /* first byte, for the by-first-byte index */
} hass__added;

/* growable byte buffer */
typedef struct {
    char *p;
    size_t n, cap;
} hass__buf;
int hass__buf_put(hass__buf *b, const void *s, size_t n); /* 0 ok, -1 OOM; keeps NUL after */

/* growable id vector */
typedef struct {
    int32_t *p;
    int64_t n, cap;
} hass__ids;
int hass__ids_push(hass__ids *v, int32_t id); /* 0 ok, -1 OOM */

struct hass_tokenizer {
    hass_tok_kind kind;
    int32_t n_vocab;
    hass__buf pool;        /* every string, NUL-separated */
    uint32_t *poff, *plen; /* (n_vocab) stored piece */
    uint32_t *doff, *dlen; /* (n_vocab) decoded bytes printed by the detokenizer */
    uint8_t *type;         /* (n_vocab) TOKT_* */
    float *scores;         /* (n_vocab) SPM score mode only, else NULL */
    size_t max_dlen;

    /* string -> id for encoding: SPM keys are stored pieces, byte-level keys decoded bytes.
     * Only NORMAL/USER/BYTE(SPM single chars never match byte pieces) tokens are inserted. */
    int32_t *map;
    size_t map_mask;
    /* (id_a, id_b) -> merge rank and merged id */
    uint64_t *mkey;
    int32_t *mrank, *mid;
    size_t merge_mask;
    int64_t n_merges;

    hass__added *added; /* sorted by first byte, then longer first */
    int n_added;
    int32_t added_first[257]; /* index range of added tokens by first byte */

    int32_t bos, eos, unk;
    int add_bos;
    int32_t byte_id[256]; /* SPM: <0xNN> token; byte-level: token of the byte's character */

    /* SPM */
    int spm_score_mode; /* 1: merge by piece score (concatenation lookup); 0: by merge rank */
    int spm_prefix;     /* 0 none, 1 every text piece, 2 only the piece at offset 0 */
    int spm_split;      /* Metaspace split: each U+2581 starts a new word */
    /* byte-level */
    pcre2_code *re;
    char *re_src;     /* the pre-tokenizer regex (owned) */
    int pre_fallback; /* GGUF: an unknown tokenizer.ggml.pre, approximated by GPT-2's regex */
    int ignore_merges;

    int chat;
    char *chat_template; /* original template text or NULL */
    int32_t stop[8];
    int n_stop;
};

/* lifecycle helpers used by the loaders (tokenizer.c) */
hass_tokenizer *hass__tok_new(hass_tok_kind kind, int32_t n_vocab, hass_err *err);
/* Stores piece `s` for id (type ty); 0 ok, -1 OOM. */
int hass__tok_set_piece(hass_tokenizer *t, int32_t id, const char *s, size_t n, int ty);
int hass__tok_add_special(hass_tokenizer *t, int32_t id, const char *s, size_t n, int special);
hass_status hass__tok_add_merge(hass_tokenizer *t, int32_t a, int32_t b, int32_t rank,
                                int32_t merged, hass_err *err);
hass_status hass__tok_reserve_merges(hass_tokenizer *t, int64_t n, hass_err *err);
/* Builds decoded bytes, the vocab map, byte ids, the added-token index, stop ids and the chat
 * kind. Called once after the pieces are set. */
hass_status hass__tok_finish(hass_tokenizer *t, hass_err *err);
int32_t hass__tok_map_find(const hass_tokenizer *t, const char *s, size_t n);
int hass__chat_detect(const char *tmpl);
uint64_t hass__hash_bytes(const char *s, size_t n); /* FNV-1a, folded */
uint64_t hass__hash_u64(uint64_t x);                /* splitmix64 finaliser */

/* The encode driver's walk over a text: the text between special (added) tokens goes to
 * text() (at_start: it begins the text), each special token to special() — or, when it is
 * special and parse_special is 0, its string to text(). Leftmost-longest matching; byte-level
 * tokenizers split at special strings even when they are encoded as text (find_added). */
typedef struct {
    hass_status (*text)(void *ctx, const char *s, size_t n, int at_start, hass_err *err);
    hass_status (*special)(void *ctx, int32_t id, hass_err *err);
} hass__walk_fns;
hass_status hass__tok_walk(const hass_tokenizer *t, const char *s, size_t n, int parse_special,
                           const hass__walk_fns *f, void *ctx, hass_err *err);

/* per-algorithm text encoders (append to out; text has no special tokens) */
hass_status hass__spm_encode(const hass_tokenizer *t, const char *s, size_t n, int at_start,
                             hass__scratch *sc, hass__ids *out, hass_err *err);
hass_status hass__bpe_encode(const hass_tokenizer *t, const char *s, size_t n, hass__scratch *sc,
                             hass__ids *out, hass_err *err);
/* byte-level alphabet: byte -> code point, and code point -> byte (-1 if not in it) */
uint32_t hass__bpe_byte_cp(uint8_t b);
int hass__bpe_cp_byte(uint32_t cp);
/* Appends the bytes a byte-level piece stands for: 0 ok, 1 a character outside the byte
 * alphabet (out is left partly written), -1 OOM. */
int hass__bpe_decode_piece(const char *s, size_t n, hass__buf *out);
hass_status hass__bpe_compile(hass_tokenizer *t, const char *regex, hass_err *err);
/* Calls fn on each pre-tokenizer piece of s[0..n) in order: the regex matches and the text
 * between them (HF Split, Isolated; invalid UTF-8 never matches and lands in such gaps).
 * Stops at the first status that is not HASS_OK and returns it. */
typedef hass_status (*hass__piece_fn)(void *ctx, const char *s, size_t n, hass_err *err);
hass_status hass__bpe_split(const hass_tokenizer *t, const char *s, size_t n, hass__scratch *sc,
                            hass__piece_fn fn, void *ctx, hass_err *err);
/* Encodes one piece (n >= 1): its merges by rank, or with ignore_merges its vocab entry. */
hass_status hass__bpe_encode_piece(const hass_tokenizer *t, const char *w, size_t n,
                                   hass__scratch *s, hass__ids *out, hass_err *err);
extern const char hass__re_llama3[], hass__re_gpt2[];

/* BPE merge core shared by spm.c and bpe.c */
typedef struct {
    int32_t prev, next, id;
    uint32_t start, len;
} hass__sym;
typedef struct {
    float prio; /* higher merges first */
    int32_t left, right, id;
    uint32_t len;
} hass__pair;
typedef struct {
    hass__pair *p;
    size_t n, cap;
} hass__heap;
int hass__heap_push(hass__heap *h, hass__pair e); /* 0 ok, -1 OOM */
hass__pair hass__heap_pop(hass__heap *h);         /* h->n must be > 0 */

/* per-encode scratch reused across words (never shared between threads) */
struct hass__scratch {
    hass__sym *sym;
    size_t sym_cap;
    hass__heap heap;
    hass__buf norm;
    pcre2_match_data *md;
};
hass__sym *hass__scratch_syms(hass__scratch *s, size_t n); /* NULL on OOM */
void hass__scratch_free(hass__scratch *s);                 /* frees the buffers, zeroes s */
/* Merges the symbol list sym[0..n) (linked by prev/next) with the heap already seeded, using
 * try_pair to add neighbours after each merge; shared by both algorithms. */
typedef void (*hass__try_pair_fn)(const hass_tokenizer *t, const char *w, hass__scratch *s,
                                  int32_t l, int32_t r, int *oom);
int hass__bpe_merge_all(const hass_tokenizer *t, const char *w, hass__scratch *s,
                        hass__try_pair_fn try_pair); /* 0 ok, -1 OOM */
/* Looks up the merge (a, b): returns its rank and sets *merged, or -1. */
int32_t hass__tok_merge_find(const hass_tokenizer *t, int32_t a, int32_t b, int32_t *merged);

/* UTF-8 length of the character starting with byte c (1 for invalid lead bytes) */
static inline int hass__utf8_len(uint8_t c) {
    if (c < 0xC0)
        return 1;
    if (c < 0xE0)
        return 2;
    if (c < 0xF0)
        return 3;
    if (c < 0xF8)
        return 4;
    return 1;
}

#endif
