/*
 * toksave.c — a loaded tokenizer as GGUF tokenizer.ggml.* metadata, the way llama.cpp's
 * convert_hf_to_gguf.py writes it, so that llama.cpp and our own GGUF loader (tokload.c)
 * tokenize exactly as the source did. Whatever GGUF cannot express is refused with a message
 * rather than written approximately.
 */
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* convert_hf_to_gguf.py's does_token_look_special(): such added tokens become CONTROL even
 * when the tokenizer does not call them special */
static int looks_special(const char *s, size_t n) {
    static const char *const names[] = {"<pad>", "<mask>", "<2mass>", "[@BOS@]"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (n == strlen(names[i]) && !memcmp(s, names[i], n))
            return 1;
#define WRAPPED(open, close)                                                                       \
    (n >= strlen(open) + strlen(close) && !memcmp(s, open, strlen(open)) &&                        \
     !memcmp(s + n - strlen(close), close, strlen(close)))
    return WRAPPED("<|", "|>") || WRAPPED("<\xef\xbd\x9c", "\xef\xbd\x9c>") ||
           WRAPPED("<unused", ">");
#undef WRAPPED
}

/* an id the tokenizer has no piece for (or past its vocabulary) */
static int is_pad(const hass_tokenizer *t, int32_t id) {
    return id >= t->n_vocab || (t->type[id] == TOKT_UNUSED && t->plen[id] == 0);
}

/* the GGUF token type of id */
static int32_t gguf_type(const hass_tokenizer *t, int32_t id) {
    if (is_pad(t, id))
        return TOKT_UNUSED;
    if (id == t->unk && t->kind == HASS_TOK_SPM)
        return TOKT_UNKNOWN;
    int ty = t->type[id];
    if (ty == TOKT_USER && looks_special(t->pool.p + t->poff[id], t->plen[id]))
        return TOKT_CONTROL;
    return ty;
}

typedef struct {
    int32_t rank, a, b, merged;
} merge;

static int cmp_rank(const void *x, const void *y) {
    const merge *a = x, *b = y;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

/* the merge table in rank order (caller frees *out) */
static hass_status merges_by_rank(const hass_tokenizer *t, merge **out, int64_t *n, hass_err *err) {
    *n = 0;
    *out = malloc((size_t)(t->n_merges ? t->n_merges : 1) * sizeof **out);
    if (!*out)
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
    for (size_t i = 0; t->mkey && i <= t->merge_mask; i++)
        if (t->mkey[i])
            (*out)[(*n)++] = (merge){t->mrank[i], (int32_t)(t->mkey[i] >> 32) - 1,
                                     (int32_t)(uint32_t)t->mkey[i], t->mid[i]};
    qsort(*out, (size_t)*n, sizeof **out, cmp_rank);
    return HASS_OK;
}

/* tokenizer.ggml.merges: "a b" in rank order (the pieces as stored, byte-level alphabet) */
static hass_status put_merges(const hass_tokenizer *t, hass_gguf_kvs *out, hass_err *err) {
    merge *mg;
    int64_t n;
    hass_status st = merges_by_rank(t, &mg, &n, err);
    if (st)
        return st;
    char **strs = calloc((size_t)(n ? n : 1), sizeof *strs);
    if (!strs)
        st = hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
    for (int64_t i = 0; i < n && !st; i++) {
        size_t la, lb;
        const char *a = hass_tokenizer_piece(t, mg[i].a, &la),
                   *b = hass_tokenizer_piece(t, mg[i].b, &lb);
        if (memchr(a, ' ', la) || memchr(b, ' ', lb) || !la || !lb) {
            st = hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                              "tokenizer: merge %lld (%.20s + %.20s) has a space or empty part",
                              (long long)i, a, b);
            break;
        }
        if (!(strs[i] = malloc(la + lb + 2))) {
            st = hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
            break;
        }
        memcpy(strs[i], a, la);
        strs[i][la] = ' ';
        memcpy(strs[i] + la + 1, b, lb + 1);
    }
    if (!st)
        st = hass_gguf_kvs_strings(out, "tokenizer.ggml.merges", (const char *const *)strs, NULL,
                                   (uint64_t)n, err);
    for (int64_t i = 0; strs && i < n; i++)
        free(strs[i]);
    free(strs);
    free(mg);
    return st;
}

/* a symbol llama.cpp's SentencePiece merge can hold: one character, or a piece */
static int symbol_ok(const hass_tokenizer *t, const char *s, size_t n) {
    return (size_t)hass__utf8_len((uint8_t)s[0]) >= n || hass__tok_map_find(t, s, n) >= 0;
}

/* whether llama.cpp could build piece id by joining two adjacent symbols */
static int joinable(const hass_tokenizer *t, int32_t id) {
    const char *p = t->pool.p + t->poff[id];
    size_t n = t->plen[id];
    for (size_t i = (size_t)hass__utf8_len((uint8_t)p[0]); i < n;
         i += (size_t)hass__utf8_len((uint8_t)p[i]))
        if (symbol_ok(t, p, i) && symbol_ok(t, p + i, n - i))
            return 1;
    return 0;
}

/* SentencePiece scores. A tokenizer.json vocabulary has merge ranks instead: llama.cpp merges
 * the adjacent pair whose concatenation has the highest score, so the piece a merge produces
 * gets score -rank (of its first merge). That needs every normal piece llama.cpp could build
 * from two symbols to be some merge's result, otherwise llama.cpp could build a piece the ranks
 * never do. */
static hass_status spm_scores(const hass_tokenizer *t, float *sc, int32_t n_vocab, hass_err *err) {
    for (int32_t id = 0; id < n_vocab; id++)
        sc[id] = id < t->n_vocab && t->scores ? t->scores[id] : 0.0f;
    for (int32_t id = t->n_vocab; id < n_vocab; id++)
        sc[id] = -1000.0f; /* padding, as the converter scores it */
    if (t->spm_score_mode)
        return HASS_OK;
    merge *mg;
    int64_t n;
    hass_status st = merges_by_rank(t, &mg, &n, err);
    if (st)
        return st;
    uint8_t *made = calloc((size_t)t->n_vocab, 1);
    if (!made) {
        free(mg);
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
    }
    for (int64_t i = n - 1; i >= 0; i--) { /* lowest rank last, so it wins */
        sc[mg[i].merged] = -(float)mg[i].rank;
        made[mg[i].merged] = 1;
    }
    for (int32_t id = 0; id < t->n_vocab && !st; id++)
        if (t->type[id] == TOKT_NORMAL && !made[id] && joinable(t, id))
            st = hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                              "tokenizer: piece %d (%.30s) is no merge's result: SentencePiece "
                              "scores cannot express this vocabulary",
                              id, t->pool.p + t->poff[id]);
    free(made);
    free(mg);
    return st;
}

/* What llama.cpp's SentencePiece tokenizer cannot reproduce: a dummy prefix only at the very
 * start (it adds one after every special token as well), and Metaspace word splitting when a
 * piece could span two words (holds U+2581 after its first character). */
static hass_status spm_check(const hass_tokenizer *t, hass_err *err) {
    if (t->spm_prefix == 2)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                            "tokenizer: a dummy prefix on the first piece only (prepend_scheme "
                            "first) has no GGUF equivalent");
    for (int32_t id = 0; t->spm_split && id < t->n_vocab; id++) {
        const char *p = t->pool.p + t->poff[id];
        uint32_t n = t->plen[id];
        for (uint32_t i = 1; t->type[id] == TOKT_NORMAL && i + 3 <= n; i++)
            if (!memcmp(p + i, "\xe2\x96\x81", 3))
                return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                                    "tokenizer: piece %d spans words; Metaspace splitting has no "
                                    "GGUF equivalent",
                                    id);
    }
    return HASS_OK;
}

/* tokenizer.ggml.pre of a byte-level vocabulary: only pre-tokenizers llama.cpp runs the same way */
static hass_status bpe_pre(const hass_tokenizer *t, const char **pre, hass_err *err) {
    const char *re = t->re_src ? t->re_src : "";
    if (t->pre_fallback)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                            "tokenizer: the source GGUF's tokenizer.ggml.pre is one we only "
                            "approximate (by GPT-2's regex); not written");
    if (!strcmp(re, hass__re_llama3)) {
        *pre = "llama-bpe";
        if (!t->ignore_merges)
            return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                                "tokenizer: the LLaMA-3 pre-tokenizer without ignore_merges has "
                                "no GGUF equivalent (llama.cpp's llama-bpe ignores merges)");
    } else if (!strcmp(re, hass__re_gpt2)) {
        *pre = "gpt-2";
        if (t->ignore_merges)
            return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                                "tokenizer: the GPT-2 pre-tokenizer with ignore_merges has no "
                                "GGUF equivalent");
    } else {
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                            "tokenizer: pre-tokenizer regex '%.60s' is neither LLaMA-3's nor "
                            "GPT-2's; no tokenizer.ggml.pre would reproduce it",
                            re);
    }
    return HASS_OK;
}

hass_status hass_tokenizer_gguf_kvs(const hass_tokenizer *t, int32_t n_vocab, hass_gguf_kvs *out,
                                    hass_err *err) {
    if (n_vocab < t->n_vocab)
        return hass_err_set(err, HASS_STATUS_SHAPE, "tokenizer has %d tokens, the model only %d",
                            t->n_vocab, n_vocab);
    if (n_vocab > (1 << 24))
        return hass_err_set(err, HASS_STATUS_SHAPE, "vocabulary of %d tokens", n_vocab);
    size_t nv = (size_t)n_vocab;
    int spm = t->kind == HASS_TOK_SPM;
    const char *pre = "default";
    hass_status st = spm ? spm_check(t, err) : bpe_pre(t, &pre, err);
    if (st)
        return st;
    int32_t n_pad = 0; /* holes in the ids, and ids up to the model's vocabulary size */
    for (int32_t id = 0; id < n_vocab; id++)
        n_pad += is_pad(t, id);
    const char **strs = calloc(nv, sizeof *strs);
    uint32_t *lens = calloc(nv, sizeof *lens);
    int32_t *types = calloc(nv, sizeof *types);
    float *scores = spm ? calloc(nv, sizeof *scores) : NULL;
    char *pads = malloc((size_t)n_pad * 16 + 1);
    if (!strs || !lens || !types || (spm && !scores) || !pads) {
        st = hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
        goto done;
    }
    for (int32_t id = 0, k = 0; id < n_vocab; id++) {
        types[id] = gguf_type(t, id);
        if (is_pad(t, id)) { /* "[PAD<id>]", unused, as the converter fills gaps */
            char *p = pads + 16 * (k++);
            lens[id] = (uint32_t)snprintf(p, 16, "[PAD%d]", id);
            strs[id] = p;
        } else {
            strs[id] = t->pool.p + t->poff[id];
            lens[id] = t->plen[id];
        }
    }
    if (spm)
        st = spm_scores(t, scores, n_vocab, err);
    if (!st)
        st = hass_gguf_kvs_str(out, "tokenizer.ggml.model", spm ? "llama" : "gpt2", err);
    if (!st)
        st = hass_gguf_kvs_str(out, "tokenizer.ggml.pre", pre, err);
    if (!st)
        st =
            hass_gguf_kvs_strings(out, "tokenizer.ggml.tokens", strs, lens, (uint64_t)n_vocab, err);
    if (!st && spm)
        st = hass_gguf_kvs_array(out, "tokenizer.ggml.scores", HASS_GGUF_F32, scores,
                                 (uint64_t)n_vocab, err);
    if (!st)
        st = hass_gguf_kvs_array(out, "tokenizer.ggml.token_type", HASS_GGUF_I32, types,
                                 (uint64_t)n_vocab, err);
    if (!st && !spm)
        st = put_merges(t, out, err);
    if (!st && t->bos >= 0)
        st = hass_gguf_kvs_u32(out, "tokenizer.ggml.bos_token_id", (uint32_t)t->bos, err);
    if (!st && t->eos >= 0)
        st = hass_gguf_kvs_u32(out, "tokenizer.ggml.eos_token_id", (uint32_t)t->eos, err);
    if (!st && t->unk >= 0)
        st = hass_gguf_kvs_u32(out, "tokenizer.ggml.unknown_token_id", (uint32_t)t->unk, err);
    if (!st)
        st = hass_gguf_kvs_bool(out, "tokenizer.ggml.add_bos_token", hass_tokenizer_wants_bos(t),
                                err);
    if (!st)
        st = hass_gguf_kvs_bool(out, "tokenizer.ggml.add_eos_token", 0, err);
    if (!st && spm)
        st = hass_gguf_kvs_bool(out, "tokenizer.ggml.add_space_prefix", t->spm_prefix != 0, err);
    if (!st && t->chat_template)
        st = hass_gguf_kvs_str(out, "tokenizer.chat_template", t->chat_template, err);
done:
    free(strs);
    free(lens);
    free(types);
    free(scores);
    free(pads);
    return st;
}
