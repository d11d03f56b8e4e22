/*
 * bpe_train.c — byte-level BPE training (GPT-2 / LLaMA-3 style) on JSONL corpus records.
 *
 * 1. Count: every record is rendered as training text (hass_tokenizer_render_record with a
 *    bootstrap tokenizer: the 256 byte tokens, the five named special tokens, the LLaMA-3
 *    chat template), split at special tokens and pre-tokenized with the LLaMA-3 regex by the
 *    encoder's own walk (hass__tok_walk, hass__bpe_split), and each distinct piece is counted
 *    in a hash map. Threads count disjoint ranges of lines into their own maps.
 * 2. Merge: the distinct pieces ("words", sorted by their bytes) start as byte sequences. A
 *    pair -> (count, words where it may occur) index is built once and then kept up to date
 *    incrementally: merging (A, B) into T visits only the words listed for (A, B) and moves
 *    their counts from (x, A), (B, y) to (x, T), (T, y). A max-heap with lazy deletion picks
 *    the most frequent pair: old pairs only ever lose counts (a merge makes a new token, so
 *    every pair it adds contains that token), so an entry whose count is stale is re-queued
 *    with its current count. Ties go to the pair whose left token's bytes are smallest
 *    (unsigned lexicographic, a prefix first), then the right token's bytes.
 *    Every merge makes a new token (asserted): merges are applied to every word left to
 *    right in one global order, so any stretch of bytes whose ends have never been merged
 *    across is segmented the same way in every word, and a pair that spells an existing
 *    token would have been merged into it already. So each token has exactly one merge (as
 *    in GPT-2's vocabulary), every pair containing it ranks after it, and the rank-ordered
 *    encoder reproduces the trainer's segmentation of every word; ignore_merges changes
 *    nothing for a vocabulary trained here (a word that is a token also merges into it).
 * 3. Save: tokenizer.json (HF tokenizers, LLaMA-3 layout: Split regex + ByteLevel, BPE with
 *    ignore_merges), tokenizer_config.json (BOS/EOS, the LLaMA-3 instruct chat template) and
 *    tokenizer_stats.json. The saved file is reloaded and every word is encoded with it and
 *    compared with the trainer's segmentation before the stats file is written.
 *
 * Vocabulary: ids 0..255 the bytes in byte order, then one token per merge in merge order,
 * then <|begin_of_text|>, <|end_of_text|>, <|start_header_id|>, <|end_header_id|>,
 * <|eot_id|> and <|reserved_special_token_N|> up to the requested size.
 */
#include "tokenizer/tok_internal.h"

#include <cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define N_NAMED 5
static const char *const named_specials[N_NAMED] = {"<|begin_of_text|>", "<|end_of_text|>",
                                                    "<|start_header_id|>", "<|end_header_id|>",
                                                    "<|eot_id|>"};

/* Meta-Llama-3-8B-Instruct's chat template (hass__chat_detect: llama3) */
static const char llama3_template[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
    "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/* ---------------- piece -> count map ---------------- */

typedef struct {
    uint64_t h;
    size_t off; /* key bytes in pool */
    uint32_t len;
    int32_t word; /* index in the sorted word list, once trained */
    int64_t count;
} pent;

typedef struct {
    pent *e; /* cap slots; len 0 marks an empty slot (pieces are never empty) */
    size_t cap, n;
    hass__buf pool;
} pmap;

static pent *pmap_slot(const pmap *m, const char *s, size_t n, uint64_t h) {
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        pent *e = &m->e[i];
        if (!e->len || (e->h == h && e->len == n && !memcmp(m->pool.p + e->off, s, n)))
            return e;
    }
}

static int pmap_grow(pmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 1024;
    pent *e = calloc(cap, sizeof *e), *old = m->e;
    if (!e)
        return -1;
    size_t ocap = m->cap;
    m->e = e;
    m->cap = cap;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].len)
            *pmap_slot(m, m->pool.p + old[i].off, old[i].len, old[i].h) = old[i];
    free(old);
    return 0;
}

static int pmap_add(pmap *m, const char *s, size_t n, uint64_t h, int64_t c) {
    if ((m->n + 1) * 2 > m->cap && pmap_grow(m))
        return -1;
    pent *e = pmap_slot(m, s, n, h);
    if (e->len) {
        e->count += c;
        return 0;
    }
    size_t off = m->pool.n;
    if (n > UINT32_MAX || hass__buf_put(&m->pool, s, n))
        return -1;
    *e = (pent){.h = h, .off = off, .len = (uint32_t)n, .word = -1, .count = c};
    m->n++;
    return 0;
}

static const pent *pmap_find(const pmap *m, const char *s, size_t n) {
    if (!m->cap)
        return NULL;
    const pent *e = pmap_slot(m, s, n, hass__hash_bytes(s, n));
    return e->len ? e : NULL;
}

static void pmap_free(pmap *m) {
    free(m->e);
    free(m->pool.p);
    memset(m, 0, sizeof *m);
}

/* ---------------- trainer state ---------------- */

typedef struct {
    size_t off; /* bytes in the word map's pool */
    uint32_t len, nsym;
    size_t sym; /* first symbol in the symbol pool */
    int64_t count;
} word;

typedef struct {
    int32_t a, b;
    int64_t count;
    int32_t *w; /* ascending word indices where the pair may occur (stale ones are harmless) */
    int32_t nw, cw;
    int32_t stamp; /* merge that last queued it in `touched` */
} pair;

typedef struct {
    int64_t count;
    int32_t pair;
} hent;

struct hass_bpe_trainer {
    hass_bpe_opts o;
    hass_tokenizer *t0; /* bootstrap: bytes + named specials, LLaMA-3 regex and template */
    pmap words_map;
    hass_bpe_report r;
    int trained;

    /* tokens: bytes in tok_pool, and bytes -> id */
    hass__buf tok_pool;
    size_t *tok_off;
    uint32_t *tok_len;
    int32_t n_tok, *tmap; /* tmap: open addressing over token bytes, -1 empty */
    size_t tmap_mask;
    int32_t (*merges)[2]; /* merge k made token 256 + k */

    word *w;
    int32_t nw;
    int32_t *sym;

    pair *p;
    int64_t np, cap_p;
    uint64_t *pkey; /* (a + 1) << 32 | b, 0 empty */
    int32_t *pidx;
    size_t pmask;
    int32_t *touched, ntouched, cap_touched, merge_no;
    hent *heap;
    int64_t nheap, cap_heap;
    int oom;
};

hass_bpe_opts hass_bpe_opts_default(void) {
    return (hass_bpe_opts){.vocab = 8192, .min_count = 2, .max_bytes = 0};
}

/* ---------------- token table ---------------- */

static int tok_cmp(const hass_bpe_trainer *tr, int32_t x, int32_t y) {
    size_t nx = tr->tok_len[x], ny = tr->tok_len[y];
    int c =
        memcmp(tr->tok_pool.p + tr->tok_off[x], tr->tok_pool.p + tr->tok_off[y], nx < ny ? nx : ny);
    return c ? c : (nx > ny) - (nx < ny);
}

static int32_t tok_find(const hass_bpe_trainer *tr, const char *s, size_t n) {
    for (size_t i = hass__hash_bytes(s, n) & tr->tmap_mask;; i = (i + 1) & tr->tmap_mask) {
        int32_t id = tr->tmap[i];
        if (id < 0 || (tr->tok_len[id] == n && !memcmp(tr->tok_pool.p + tr->tok_off[id], s, n)))
            return id;
    }
}

/* appends token bytes s[0..n) as id n_tok (the table was sized for every token up front) */
static int tok_add(hass_bpe_trainer *tr, const char *s, size_t n) {
    int32_t id = tr->n_tok;
    tr->tok_off[id] = tr->tok_pool.n;
    tr->tok_len[id] = (uint32_t)n;
    if (hass__buf_put(&tr->tok_pool, s, n))
        return -1;
    size_t i = hass__hash_bytes(s, n) & tr->tmap_mask;
    while (tr->tmap[i] >= 0)
        i = (i + 1) & tr->tmap_mask;
    tr->tmap[i] = id;
    tr->n_tok++;
    return 0;
}

/* a token's string in the GPT-2 byte alphabet (each byte one code point, U+0021..U+0143) */
static int tok_chars(const hass_bpe_trainer *tr, int32_t id, hass__buf *out) {
    const uint8_t *s = (const uint8_t *)tr->tok_pool.p + tr->tok_off[id];
    out->n = 0;
    int bad = hass__buf_put(out, "", 0);
    for (uint32_t i = 0; i < tr->tok_len[id] && !bad; i++) {
        uint32_t cp = hass__bpe_byte_cp(s[i]);
        char u[2] = {(char)(0xc0 | (cp >> 6)), (char)(0x80 | (cp & 0x3f))};
        bad = cp < 0x80 ? hass__buf_put(out, s + i, 1) : hass__buf_put(out, u, 2);
    }
    return bad;
}

/* ---------------- tokenizer.json and tokenizer_config.json ---------------- */

static cJSON *json_obj(cJSON *parent, const char *key) {
    cJSON *o = cJSON_CreateObject();
    if (parent)
        cJSON_AddItemToObject(parent, key, o);
    return o;
}

static void special_name(int32_t k, char *buf, size_t cap) {
    if (k < N_NAMED)
        snprintf(buf, cap, "%s", named_specials[k]);
    else
        snprintf(buf, cap, "<|reserved_special_token_%d|>", k - N_NAMED);
}

static cJSON *byte_level(int add_prefix_space, int trim_offsets, int use_regex) {
    cJSON *bl = json_obj(NULL, NULL);
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", add_prefix_space);
    cJSON_AddBoolToObject(bl, "trim_offsets", trim_offsets);
    cJSON_AddBoolToObject(bl, "use_regex", use_regex);
    return bl;
}

static void add_pre_tokenizer(cJSON *root) {
    cJSON *pre = json_obj(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = json_obj(NULL, NULL);
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(json_obj(split, "pattern"), "Regex", hass__re_llama3);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddFalseToObject(split, "invert");
    cJSON_AddItemToArray(list, split);
    cJSON_AddItemToArray(list, byte_level(0, 1, 0));
}

/* post_processor: ByteLevel, then TemplateProcessing that puts BOS in front (LLaMA-3) */
static void add_post_processor(cJSON *root, int32_t bos) {
    cJSON *pp = json_obj(root, "post_processor");
    cJSON_AddStringToObject(pp, "type", "Sequence");
    cJSON *list = cJSON_AddArrayToObject(pp, "processors");
    cJSON_AddItemToArray(list, byte_level(1, 0, 1));
    cJSON *tp = json_obj(NULL, NULL);
    cJSON_AddStringToObject(tp, "type", "TemplateProcessing");
    const char *seqs[2] = {"A", "B"};
    for (int pairs = 0; pairs < 2; pairs++) {
        cJSON *arr = cJSON_AddArrayToObject(tp, pairs ? "pair" : "single");
        for (int k = 0; k <= pairs; k++) {
            cJSON *st = json_obj(NULL, NULL), *sq = json_obj(NULL, NULL);
            cJSON *sti = json_obj(st, "SpecialToken"), *sqi = json_obj(sq, "Sequence");
            cJSON_AddStringToObject(sti, "id", named_specials[0]);
            cJSON_AddNumberToObject(sti, "type_id", k);
            cJSON_AddStringToObject(sqi, "id", seqs[k]);
            cJSON_AddNumberToObject(sqi, "type_id", k);
            cJSON_AddItemToArray(arr, st);
            cJSON_AddItemToArray(arr, sq);
        }
    }
    cJSON *bos_entry = json_obj(json_obj(tp, "special_tokens"), named_specials[0]);
    cJSON_AddStringToObject(bos_entry, "id", named_specials[0]);
    cJSON_AddItemToObject(bos_entry, "ids", cJSON_CreateIntArray(&bos, 1));
    cJSON_AddItemToObject(bos_entry, "tokens", cJSON_CreateStringArray(named_specials, 1));
    cJSON_AddItemToArray(list, tp);
}

/* the BPE model: vocab (tokens 0..n_tok) and merges "A B" in the byte alphabet */
static int add_model(cJSON *root, const hass_bpe_trainer *tr) {
    cJSON *m = json_obj(root, "model");
    cJSON_AddStringToObject(m, "type", "BPE");
    cJSON_AddNullToObject(m, "dropout");
    cJSON_AddNullToObject(m, "unk_token");
    cJSON_AddNullToObject(m, "continuing_subword_prefix");
    cJSON_AddNullToObject(m, "end_of_word_suffix");
    cJSON_AddFalseToObject(m, "fuse_unk");
    cJSON_AddFalseToObject(m, "byte_fallback");
    cJSON_AddTrueToObject(m, "ignore_merges");
    cJSON *vocab = json_obj(m, "vocab");
    cJSON *merges = cJSON_AddArrayToObject(m, "merges");
    hass__buf a = {0}, b = {0};
    int bad = !vocab || !merges;
    for (int32_t id = 0; id < tr->n_tok && !bad; id++) {
        bad = tok_chars(tr, id, &a) || !cJSON_AddNumberToObject(vocab, a.p, id);
        if (id < 256 || bad)
            continue;
        const int32_t *mg = tr->merges[id - 256];
        bad = tok_chars(tr, mg[0], &a) || tok_chars(tr, mg[1], &b) || hass__buf_put(&a, " ", 1) ||
              hass__buf_put(&a, b.p, b.n);
        bad = bad || !cJSON_AddItemToArray(merges, cJSON_CreateString(a.p));
    }
    free(a.p);
    free(b.p);
    return bad;
}

/* tokenizer.json for the tokens so far and `vocab` ids in all (the rest special); NULL when
 * out of memory */
static cJSON *tokenizer_json(const hass_bpe_trainer *tr, int32_t vocab) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    char name[64];
    for (int32_t id = tr->n_tok; id < vocab; id++) {
        cJSON *e = json_obj(NULL, NULL);
        special_name(id - tr->n_tok, name, sizeof name);
        cJSON_AddNumberToObject(e, "id", id);
        cJSON_AddStringToObject(e, "content", name);
        cJSON_AddFalseToObject(e, "single_word");
        cJSON_AddFalseToObject(e, "lstrip");
        cJSON_AddFalseToObject(e, "rstrip");
        cJSON_AddFalseToObject(e, "normalized");
        cJSON_AddTrueToObject(e, "special");
        cJSON_AddItemToArray(added, e);
    }
    cJSON_AddNullToObject(root, "normalizer");
    add_pre_tokenizer(root);
    add_post_processor(root, tr->n_tok);
    cJSON_AddItemToObject(root, "decoder", byte_level(1, 1, 1));
    if (add_model(root, tr)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

static cJSON *config_json(void) {
    cJSON *root = cJSON_CreateObject();
    cJSON_AddTrueToObject(root, "add_bos_token");
    cJSON_AddFalseToObject(root, "add_eos_token");
    cJSON_AddStringToObject(root, "bos_token", named_specials[0]);
    cJSON_AddStringToObject(root, "eos_token", named_specials[1]);
    cJSON_AddStringToObject(root, "chat_template", llama3_template);
    cJSON_AddFalseToObject(root, "clean_up_tokenization_spaces");
    cJSON_AddItemToObject(
        root, "model_input_names",
        cJSON_CreateStringArray((const char *[]){"input_ids", "attention_mask"}, 2));
    cJSON_AddStringToObject(root, "tokenizer_class", "PreTrainedTokenizerFast");
    return root;
}

/* ---------------- create / free ---------------- */

hass_bpe_trainer *hass_bpe_trainer_create(const hass_bpe_opts *o, hass_err *err) {
    hass_bpe_opts d = hass_bpe_opts_default();
    if (!o)
        o = &d;
    if (o->vocab < 256 + N_NAMED || o->vocab > (1 << 24)) {
        hass_err_set(err, HASS_STATUS_ARG,
                     "vocab %d out of range: at least %d (256 bytes + %d special tokens), at "
                     "most %d",
                     o->vocab, 256 + N_NAMED, N_NAMED, 1 << 24);
        return NULL;
    }
    if (o->min_count < 1 || o->max_bytes < 0) {
        hass_err_set(err, HASS_STATUS_ARG, "min_count must be >= 1 and max_bytes >= 0");
        return NULL;
    }
    hass_bpe_trainer *tr = calloc(1, sizeof *tr);
    if (!tr)
        goto oom;
    tr->o = *o;
    size_t ntok = (size_t)o->vocab, cap = 16;
    while (cap < 2 * ntok + 1)
        cap *= 2;
    tr->tok_off = malloc(ntok * sizeof *tr->tok_off);
    tr->tok_len = malloc(ntok * sizeof *tr->tok_len);
    tr->merges = malloc(ntok * sizeof *tr->merges);
    tr->tmap = malloc(cap * sizeof *tr->tmap);
    if (!tr->tok_off || !tr->tok_len || !tr->merges || !tr->tmap)
        goto oom;
    memset(tr->tmap, 0xff, cap * sizeof *tr->tmap);
    tr->tmap_mask = cap - 1;
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        if (tok_add(tr, &c, 1))
            goto oom;
    }
    /* the bootstrap tokenizer: this writer's own file with no merges, read by the loader */
    cJSON *boot = tokenizer_json(tr, 256 + N_NAMED);
    char *js = boot ? cJSON_Print(boot) : NULL;
    cJSON_Delete(boot);
    if (!js)
        goto oom;
    tr->t0 = hass_tokenizer_load_json_mem(js, strlen(js), err);
    free(js);
    if (!tr->t0 || hass_tokenizer_set_chat_template(tr->t0, "llama3", err) != HASS_OK) {
        hass_bpe_trainer_free(tr);
        return NULL;
    }
    return tr;
oom:
    hass_bpe_trainer_free(tr);
    hass_err_set(err, HASS_STATUS_OOM, "train-tokenizer: out of memory");
    return NULL;
}

static void free_pairs(hass_bpe_trainer *tr) {
    for (int64_t i = 0; i < tr->np; i++)
        free(tr->p[i].w);
    free(tr->p);
    free(tr->pkey);
    free(tr->pidx);
    free(tr->touched);
    free(tr->heap);
    tr->p = NULL;
    tr->pkey = NULL;
    tr->pidx = NULL;
    tr->touched = NULL;
    tr->heap = NULL;
    tr->np = tr->nheap = 0;
}

void hass_bpe_trainer_free(hass_bpe_trainer *tr) {
    if (!tr)
        return;
    hass_tokenizer_free(tr->t0);
    pmap_free(&tr->words_map);
    free(tr->tok_pool.p);
    free(tr->tok_off);
    free(tr->tok_len);
    free(tr->tmap);
    free(tr->merges);
    free(tr->w);
    free(tr->sym);
    free_pairs(tr);
    free(tr);
}

void hass_bpe_trainer_report(const hass_bpe_trainer *tr, hass_bpe_report *r) {
    *r = tr->r;
}

/* ---------------- 1. counting pieces ---------------- */

typedef struct {
    const char *p;
    size_t n;
    int64_t line; /* 1-based line number in its file */
} jline;

typedef struct {
    const hass_tokenizer *t;
    pmap map;
    hass__scratch sc;
    int64_t records, bytes, pieces;
    hass_status st;
    hass_err err;
    int64_t bad; /* index of the line that failed */
} counter;

typedef struct {
    const hass_bpe_trainer *tr;
    const jline *lines;
    int64_t n;
    counter *c;
    atomic_llong done;
    hass_progress *prog;
} count_job;

static hass_status count_piece(void *ctx, const char *s, size_t n, hass_err *err) {
    counter *c = ctx;
    c->pieces++;
    c->bytes += (int64_t)n;
    if (pmap_add(&c->map, s, n, hass__hash_bytes(s, n), 1))
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    return HASS_OK;
}

static hass_status count_text(void *ctx, const char *s, size_t n, int at_start, hass_err *err) {
    (void)at_start;
    counter *c = ctx;
    return hass__bpe_split(c->t, s, n, &c->sc, count_piece, c, err);
}

static hass_status skip_special(void *ctx, int32_t id, hass_err *err) {
    (void)ctx;
    (void)id;
    (void)err;
    return HASS_OK;
}

static void count_task(void *ctx, int ith, int nth) {
    count_job *j = ctx;
    counter *c = &j->c[ith];
    static const hass__walk_fns fns = {count_text, skip_special};
    int64_t lo, hi;
    hass_split(j->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi && c->st == HASS_OK; i++) {
        size_t len;
        char *text =
            hass_tokenizer_render_record(j->tr->t0, j->lines[i].p, j->lines[i].n, &len, &c->err);
        c->st = text ? hass__tok_walk(j->tr->t0, text, len, 1, &fns, c, &c->err) : c->err.code;
        free(text);
        c->bad = i;
        c->records++;
        long long done = atomic_fetch_add(&j->done, 1) + 1;
        if (ith == 0 && done < j->n) /* the last line only once all records are read */
            hass_progress_update(j->prog, done);
    }
}

/* the lines of a JSONL text with something in them, up to max_bytes in all (0: no limit) */
static jline *split_lines(const char *text, size_t size, int64_t max_bytes, int64_t *used,
                          int64_t *n) {
    int64_t cap = 1024, k = 0, line = 0;
    jline *v = malloc((size_t)cap * sizeof *v);
    for (size_t pos = 0; v && pos < size;) {
        const char *nl = memchr(text + pos, '\n', size - pos);
        size_t end = nl ? (size_t)(nl - text) : size;
        line++;
        size_t a = pos;
        while (a < end && strchr(" \t\r", text[a]))
            a++;
        if (a < end) {
            if (max_bytes && *used + (int64_t)(end - pos) > max_bytes)
                break;
            if (k == cap) {
                jline *g = realloc(v, (size_t)(cap *= 2) * sizeof *v);
                if (!g) {
                    free(v);
                    return NULL;
                }
                v = g;
            }
            v[k++] = (jline){text + pos, end - pos, line};
        }
        *used += (int64_t)(end + 1 - pos);
        pos = end + 1;
    }
    *n = k;
    return v;
}

hass_status hass_bpe_trainer_add_jsonl(hass_bpe_trainer *tr, const char *path, hass_pool *pool,
                                       hass_err *err) {
    if (tr->trained)
        return hass_err_set(err, HASS_STATUS_ARG, "train-tokenizer: data added after training");
    double t0 = hass_now();
    char *text = NULL;
    size_t size = 0;
    hass_status st = hass_read_file(path, &text, &size, err);
    if (st != HASS_OK)
        return st;
    int64_t n = 0;
    jline *lines = split_lines(text, size, tr->o.max_bytes, &tr->r.jsonl_bytes, &n);
    int nth = hass_pool_size(pool);
    counter *c = calloc((size_t)nth, sizeof *c);
    if (!lines || !c) {
        st = hass_err_set(err, HASS_STATUS_OOM, "%s: out of memory", path);
        goto done;
    }
    hass_progress prog;
    hass_progress_init(&prog, "train-tokenizer: counting", "records", n);
    prog.last = prog.t0; /* the first line after 0.5 s: none for a small file */
    count_job job = {.tr = tr, .lines = lines, .n = n, .c = c, .prog = &prog};
    for (int i = 0; i < nth; i++)
        c[i].t = tr->t0;
    hass_pool_run(pool, count_task, &job);
    const counter *first = NULL; /* the failure on the earliest line */
    for (int i = 0; i < nth; i++)
        if (c[i].st != HASS_OK && (!first || c[i].bad < first->bad))
            first = &c[i];
    if (first) {
        st = hass_err_set(err, first->st, "%s:%lld: %s", path, (long long)lines[first->bad].line,
                          first->err.msg);
        goto done;
    }
    hass_progress_update(&prog, n);
    for (int i = 0; i < nth && st == HASS_OK; i++) {
        const pmap *m = &c[i].map;
        for (size_t k = 0; k < m->cap && st == HASS_OK; k++)
            if (m->e[k].len && pmap_add(&tr->words_map, m->pool.p + m->e[k].off, m->e[k].len,
                                        m->e[k].h, m->e[k].count))
                st = hass_err_set(err, HASS_STATUS_OOM, "%s: out of memory", path);
        tr->r.records += c[i].records;
        tr->r.text_bytes += c[i].bytes;
        tr->r.pieces += c[i].pieces;
    }
    tr->r.unique_pieces = (int64_t)tr->words_map.n;
    tr->r.seconds_count += hass_now() - t0;
    hass_log(HASS_LOG_INFO,
             "train-tokenizer: %s: %lld records, %.1f MB of text, %lld pieces so far (%lld "
             "distinct), %.1f s",
             path, (long long)n, (double)tr->r.text_bytes / 1e6, (long long)tr->r.pieces,
             (long long)tr->r.unique_pieces, hass_now() - t0);
done:
    for (int i = 0; c && i < nth; i++) {
        pmap_free(&c[i].map);
        hass__scratch_free(&c[i].sc);
    }
    free(c);
    free(lines);
    free(text);
    return st;
}

/* ---------------- 2. merging ---------------- */

static int32_t pair_get(hass_bpe_trainer *tr, int32_t a, int32_t b, int create) {
    if (create && (size_t)(tr->np + 1) * 2 > tr->pmask + 1) { /* rehash at half full */
        size_t cap = tr->pmask ? 2 * (tr->pmask + 1) : 1 << 16;
        uint64_t *key = calloc(cap, sizeof *key);
        int32_t *idx = malloc(cap * sizeof *idx);
        if (!key || !idx || tr->np >= INT32_MAX / 2) {
            free(key);
            free(idx);
            tr->oom = 1;
            return -1;
        }
        for (int64_t k = 0; k < tr->np; k++) {
            uint64_t kk = ((uint64_t)(uint32_t)(tr->p[k].a + 1) << 32) | (uint32_t)tr->p[k].b;
            size_t i = hass__hash_u64(kk) & (cap - 1);
            while (key[i])
                i = (i + 1) & (cap - 1);
            key[i] = kk;
            idx[i] = (int32_t)k;
        }
        free(tr->pkey);
        free(tr->pidx);
        tr->pkey = key;
        tr->pidx = idx;
        tr->pmask = cap - 1;
    }
    if (!tr->pkey)
        return -1;
    uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)b;
    size_t i = hass__hash_u64(key) & tr->pmask;
    for (; tr->pkey[i]; i = (i + 1) & tr->pmask)
        if (tr->pkey[i] == key)
            return tr->pidx[i];
    if (!create)
        return -1;
    if (tr->np == tr->cap_p) {
        int64_t cap = tr->cap_p ? 2 * tr->cap_p : 1 << 15;
        pair *p = realloc(tr->p, (size_t)cap * sizeof *p);
        if (!p) {
            tr->oom = 1;
            return -1;
        }
        tr->p = p;
        tr->cap_p = cap;
    }
    tr->p[tr->np] = (pair){.a = a, .b = b, .stamp = -1};
    tr->pkey[i] = key;
    tr->pidx[i] = (int32_t)tr->np;
    return (int32_t)tr->np++;
}

static int push_i32(int32_t **v, int32_t *n, int32_t *cap, int32_t x) {
    if (*n == *cap) {
        int32_t c = *cap ? 2 * *cap : 4;
        int32_t *p = c > 0 ? realloc(*v, (size_t)c * sizeof *p) : NULL;
        if (!p)
            return -1;
        *v = p;
        *cap = c;
    }
    (*v)[(*n)++] = x;
    return 0;
}

/* count(a, b) += delta for word wi; a pair that gains is indexed with wi and queued */
static void pair_add(hass_bpe_trainer *tr, int32_t a, int32_t b, int64_t delta, int32_t wi) {
    int32_t pi = pair_get(tr, a, b, delta > 0);
    if (pi < 0) {
        HASS_ASSERT(tr->oom); /* a pair that loses counts has them */
        return;
    }
    pair *p = &tr->p[pi];
    p->count += delta;
    HASS_ASSERT(p->count >= 0);
    if (delta <= 0)
        return;
    if ((!p->nw || p->w[p->nw - 1] != wi) && push_i32(&p->w, &p->nw, &p->cw, wi))
        tr->oom = 1;
    if (p->stamp != tr->merge_no) {
        p->stamp = tr->merge_no;
        if (push_i32(&tr->touched, &tr->ntouched, &tr->cap_touched, pi))
            tr->oom = 1;
    }
}

/* heap order: higher count, then the smaller left token bytes, then the smaller right ones */
static int hent_before(const hass_bpe_trainer *tr, hent x, hent y) {
    if (x.count != y.count)
        return x.count > y.count;
    const pair *px = &tr->p[x.pair], *py = &tr->p[y.pair];
    int c = tok_cmp(tr, px->a, py->a);
    return c ? c < 0 : tok_cmp(tr, px->b, py->b) < 0;
}

static void heap_push(hass_bpe_trainer *tr, hent e) {
    if (tr->nheap == tr->cap_heap) {
        int64_t cap = tr->cap_heap ? 2 * tr->cap_heap : 1 << 14;
        hent *h = realloc(tr->heap, (size_t)cap * sizeof *h);
        if (!h) {
            tr->oom = 1;
            return;
        }
        tr->heap = h;
        tr->cap_heap = cap;
    }
    int64_t i = tr->nheap++;
    for (; i > 0 && hent_before(tr, e, tr->heap[(i - 1) / 2]); i = (i - 1) / 2)
        tr->heap[i] = tr->heap[(i - 1) / 2];
    tr->heap[i] = e;
}

static hent heap_pop(hass_bpe_trainer *tr) {
    hent top = tr->heap[0], last = tr->heap[--tr->nheap];
    int64_t i = 0, n = tr->nheap;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && hent_before(tr, tr->heap[c + 1], tr->heap[c]))
            c++;
        if (!hent_before(tr, tr->heap[c], last))
            break;
        tr->heap[i] = tr->heap[c];
        i = c;
    }
    if (n)
        tr->heap[i] = last;
    return top;
}

/* queues the pairs that gained counts in this step */
static void queue_touched(hass_bpe_trainer *tr) {
    for (int32_t k = 0; k < tr->ntouched; k++) {
        const pair *p = &tr->p[tr->touched[k]];
        if (p->count >= tr->o.min_count)
            heap_push(tr, (hent){p->count, tr->touched[k]});
    }
    tr->ntouched = 0;
}

/* merges every (a, b) in word wi into t, left to right, keeping the pair counts exact */
static void apply_merge(hass_bpe_trainer *tr, int32_t wi, int32_t a, int32_t b, int32_t t) {
    word *w = &tr->w[wi];
    int32_t *s = tr->sym + w->sym;
    uint32_t n = w->nsym, j = 0;
    int64_t c = w->count;
    for (uint32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
            pair_add(tr, a, b, -c, wi);
            if (j > 0) {
                pair_add(tr, s[j - 1], a, -c, wi);
                pair_add(tr, s[j - 1], t, c, wi);
            }
            if (i + 2 < n) {
                pair_add(tr, b, s[i + 2], -c, wi);
                pair_add(tr, t, s[i + 2], c, wi);
            }
            s[j++] = t;
            i += 2;
        } else {
            s[j++] = s[i++];
        }
    }
    w->nsym = j;
}

static void merge_pair(hass_bpe_trainer *tr, int32_t pi, const char *bytes, size_t n) {
    int32_t a = tr->p[pi].a, b = tr->p[pi].b, t = tr->n_tok;
    if (tok_add(tr, bytes, n)) {
        tr->oom = 1;
        return;
    }
    tr->merges[t - 256][0] = a;
    tr->merges[t - 256][1] = b;
    int32_t *wl = tr->p[pi].w, nwl = tr->p[pi].nw;
    tr->p[pi].w = NULL;
    tr->p[pi].nw = tr->p[pi].cw = 0;
    tr->merge_no++;
    for (int32_t k = 0; k < nwl; k++)
        apply_merge(tr, wl[k], a, b, t);
    free(wl);
    HASS_ASSERT(tr->oom || tr->p[pi].count == 0); /* every occurrence was in an indexed word */
    queue_touched(tr);
}

typedef struct {
    const char *s;
    uint32_t len;
    pent *e;
} wkey;

static int wkey_cmp(const void *pa, const void *pb) {
    const wkey *x = pa, *y = pb;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* the words in byte order (so nothing depends on hash-map layout or thread count) */
static hass_status build_words(hass_bpe_trainer *tr, hass_err *err) {
    pmap *m = &tr->words_map;
    if (m->n > INT32_MAX / 2)
        return hass_err_set(err, HASS_STATUS_RANGE, "train-tokenizer: too many distinct pieces");
    wkey *ks = malloc(m->n * sizeof *ks);
    tr->w = malloc(m->n * sizeof *tr->w);
    tr->sym = malloc((m->pool.n + 1) * sizeof *tr->sym);
    if (!ks || !tr->w || !tr->sym) {
        free(ks);
        return hass_err_set(err, HASS_STATUS_OOM, "train-tokenizer: out of memory");
    }
    size_t k = 0, pos = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->e[i].len)
            ks[k++] = (wkey){m->pool.p + m->e[i].off, m->e[i].len, &m->e[i]};
    qsort(ks, m->n, sizeof *ks, wkey_cmp);
    for (k = 0; k < m->n; k++) {
        pent *e = ks[k].e;
        e->word = (int32_t)k;
        tr->w[k] =
            (word){.off = e->off, .len = e->len, .nsym = e->len, .sym = pos, .count = e->count};
        for (uint32_t i = 0; i < e->len; i++)
            tr->sym[pos++] = (uint8_t)m->pool.p[e->off + i];
    }
    tr->nw = (int32_t)m->n;
    free(ks);
    return HASS_OK;
}

/* the tokens of word wi: the whole word if it is a token (ignore_merges), else its symbols */
static int word_ids(const hass_bpe_trainer *tr, int32_t wi, hass__ids *out) {
    const word *w = &tr->w[wi];
    int32_t id = tok_find(tr, tr->words_map.pool.p + w->off, w->len);
    if (id >= 0)
        return hass__ids_push(out, id);
    for (uint32_t k = 0; k < w->nsym; k++)
        if (hass__ids_push(out, tr->sym[w->sym + k]))
            return -1;
    return 0;
}

hass_status hass_bpe_trainer_train(hass_bpe_trainer *tr, hass_err *err) {
    if (tr->trained)
        return hass_err_set(err, HASS_STATUS_ARG, "train-tokenizer: already trained");
    if (tr->words_map.n == 0)
        return hass_err_set(err, HASS_STATUS_FORMAT, "train-tokenizer: the data has no text");
    double t0 = hass_now();
    hass_status st = build_words(tr, err);
    if (st != HASS_OK)
        return st;
    for (int32_t wi = 0; wi < tr->nw && !tr->oom; wi++) {
        const word *w = &tr->w[wi];
        for (uint32_t i = 0; i + 1 < w->nsym; i++)
            pair_add(tr, tr->sym[w->sym + i], tr->sym[w->sym + i + 1], w->count, wi);
    }
    queue_touched(tr);
    int32_t target = tr->o.vocab - N_NAMED;
    hass_progress prog;
    hass_progress_init(&prog, "train-tokenizer: merging", "merges", target - 256);
    prog.last = prog.t0;
    hass__buf cat = {0};
    while (tr->n_tok < target && tr->nheap > 0 && !tr->oom) {
        hent top = heap_pop(tr);
        pair *p = &tr->p[top.pair];
        if (p->count != top.count) { /* stale: counts only fall, so re-queue and look again */
            if (p->count >= tr->o.min_count)
                heap_push(tr, (hent){p->count, top.pair});
            continue;
        }
        cat.n = 0;
        if (hass__buf_put(&cat, tr->tok_pool.p + tr->tok_off[p->a], tr->tok_len[p->a]) ||
            hass__buf_put(&cat, tr->tok_pool.p + tr->tok_off[p->b], tr->tok_len[p->b])) {
            tr->oom = 1;
            break;
        }
        HASS_ASSERT(tok_find(tr, cat.p, cat.n) < 0); /* see the top of the file */
        merge_pair(tr, top.pair, cat.p, cat.n);
        hass_progress_update(&prog, tr->n_tok - 256);
    }
    free(cat.p);
    free_pairs(tr);
    if (tr->oom)
        return hass_err_set(err, HASS_STATUS_OOM, "train-tokenizer: out of memory");
    tr->trained = 1;
    tr->r.merges = tr->n_tok - 256;
    hass__ids ids = {0};
    for (int32_t wi = 0; wi < tr->nw; wi++) {
        ids.n = 0;
        if (word_ids(tr, wi, &ids)) {
            free(ids.p);
            return hass_err_set(err, HASS_STATUS_OOM, "train-tokenizer: out of memory");
        }
        tr->r.tokens += ids.n * tr->w[wi].count;
    }
    free(ids.p);
    tr->r.seconds_merge = hass_now() - t0;
    if (tr->n_tok < target)
        hass_log(HASS_LOG_WARN,
                 "train-tokenizer: only %d merges: no pair occurs %lld times any more; the "
                 "other %d ids are reserved special tokens",
                 tr->r.merges, (long long)tr->o.min_count, target - tr->n_tok);
    hass_log(HASS_LOG_INFO, "train-tokenizer: %d merges in %.1f s, %.3f bytes per token",
             tr->r.merges, tr->r.seconds_merge,
             tr->r.tokens ? (double)tr->r.text_bytes / (double)tr->r.tokens : 0.0);
    return HASS_OK;
}

/* ---------------- 3. the trainer's own segmentation, saving, verifying ---------------- */

typedef struct {
    const hass_bpe_trainer *tr;
    hass__scratch sc;
    hass__ids out;
} tenc;

static hass_status tenc_piece(void *ctx, const char *s, size_t n, hass_err *err) {
    tenc *c = ctx;
    const pent *e = pmap_find(&c->tr->words_map, s, n);
    if (!e)
        return hass_err_set(err, HASS_STATUS_NOTFOUND,
                            "train-tokenizer: piece \"%.40s\" is not in the training data", s);
    return word_ids(c->tr, e->word, &c->out)
               ? hass_err_set(err, HASS_STATUS_OOM, "train-tokenizer: out of memory")
               : HASS_OK;
}

static hass_status tenc_text(void *ctx, const char *s, size_t n, int at_start, hass_err *err) {
    (void)at_start;
    tenc *c = ctx;
    return hass__bpe_split(c->tr->t0, s, n, &c->sc, tenc_piece, c, err);
}

static hass_status tenc_special(void *ctx, int32_t id, hass_err *err) {
    tenc *c = ctx; /* bootstrap ids 256.. -> the specials after the merged tokens */
    return hass__ids_push(&c->out, c->tr->n_tok + id - 256)
               ? hass_err_set(err, HASS_STATUS_OOM, "train-tokenizer: out of memory")
               : HASS_OK;
}

int64_t hass_bpe_trainer_encode(const hass_bpe_trainer *tr, const char *text, size_t len,
                                int32_t *ids, int64_t cap, hass_err *err) {
    if (!tr->trained || (!text && len) || cap < 0 || (cap > 0 && !ids))
        return hass_err_set(err, HASS_STATUS_ARG, "train-tokenizer: encode before training");
    static const hass__walk_fns fns = {tenc_text, tenc_special};
    tenc c = {.tr = tr};
    hass_status st = hass__tok_walk(tr->t0, text, len, 1, &fns, &c, err);
    if (st == HASS_OK && cap > 0)
        memcpy(ids, c.out.p, (size_t)(c.out.n < cap ? c.out.n : cap) * sizeof *ids);
    int64_t n = c.out.n;
    free(c.out.p);
    hass__scratch_free(&c.sc);
    return st == HASS_OK ? n : (int64_t)st;
}

typedef struct {
    const hass_bpe_trainer *tr;
    const hass_tokenizer *t;
    int32_t *bad; /* (nth) first word whose encoding differs, or -1 */
    int *oom;     /* (nth) */
} verify_job;

static void verify_task(void *ctx, int ith, int nth) {
    verify_job *j = ctx;
    const hass_bpe_trainer *tr = j->tr;
    hass__scratch sc = {0};
    hass__ids want = {0}, got = {0};
    hass_err err = {0};
    int64_t lo, hi;
    hass_split(tr->nw, ith, nth, &lo, &hi);
    j->bad[ith] = -1;
    for (int64_t wi = lo; wi < hi && j->bad[ith] < 0 && !j->oom[ith]; wi++) {
        const word *w = &tr->w[wi];
        want.n = got.n = 0;
        if (word_ids(tr, (int32_t)wi, &want) ||
            hass__bpe_encode_piece(j->t, tr->words_map.pool.p + w->off, w->len, &sc, &got, &err) !=
                HASS_OK) {
            j->oom[ith] = 1;
            break;
        }
        if (want.n != got.n || memcmp(want.p, got.p, (size_t)want.n * sizeof *want.p))
            j->bad[ith] = (int32_t)wi;
    }
    free(want.p);
    free(got.p);
    hass__scratch_free(&sc);
}

/* the reloaded file against the trainer: ids, specials, stop ids, every word's encoding */
static hass_status verify(const hass_bpe_trainer *tr, const hass_tokenizer *t, const char *path,
                          hass_pool *pool, hass_err *err) {
    int32_t stop[8], bos = tr->n_tok;
    int nstop = hass_tokenizer_stop_ids(t, stop, 8), stops = 0;
    for (int i = 0; i < nstop && i < 8; i++)
        stops += stop[i] == bos + 1 || stop[i] == bos + 4;
    if (hass_tokenizer_vocab_size(t) != tr->o.vocab || hass_tokenizer_bos(t) != bos ||
        hass_tokenizer_eos(t) != bos + 1 || !hass_tokenizer_wants_bos(t) || stops != 2 ||
        strcmp(hass_tokenizer_chat_template(t), "llama3"))
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "%s: reloads with other vocab size, BOS/EOS, stop ids or template",
                            path);
    char name[64];
    for (int32_t id = bos; id < tr->o.vocab; id++) {
        int32_t got[2];
        special_name(id - bos, name, sizeof name);
        if (hass_tokenizer_encode(t, name, strlen(name), 0, 1, got, 2, err) != 1 || got[0] != id)
            return hass_err_set(err, HASS_STATUS_FORMAT, "%s: %s does not encode to id %d", path,
                                name, id);
    }
    int nth = hass_pool_size(pool);
    int32_t *bad = calloc((size_t)nth, sizeof *bad);
    int *oom = calloc((size_t)nth, sizeof *oom);
    hass_status st = HASS_OK;
    if (!bad || !oom) {
        st = hass_err_set(err, HASS_STATUS_OOM, "train-tokenizer: out of memory");
    } else {
        verify_job j = {tr, t, bad, oom};
        hass_pool_run(pool, verify_task, &j);
        for (int i = 0; i < nth && st == HASS_OK; i++) {
            if (oom[i])
                st = hass_err_set(err, HASS_STATUS_OOM, "train-tokenizer: out of memory");
            else if (bad[i] >= 0)
                st = hass_err_set(err, HASS_STATUS_FORMAT,
                                  "%s: piece \"%.40s\" encodes differently from training", path,
                                  tr->words_map.pool.p + tr->w[bad[i]].off);
        }
    }
    free(bad);
    free(oom);
    return st;
}

/* bytes per token of t on a JSONL file, overall and per "source" (content only: special
 * tokens count neither as bytes nor as tokens) */
static hass_status evaluate(const hass_tokenizer *t, const char *path, cJSON *out, hass_err *err) {
    char *text = NULL;
    size_t size = 0;
    hass_status st = hass_read_file(path, &text, &size, err);
    if (st != HASS_OK)
        return st;
    int64_t n = 0, used = 0;
    jline *lines = split_lines(text, size, 0, &used, &n);
    cJSON *by = cJSON_CreateObject();
    hass__ids ids = {0};
    hass_err e = {0};
    int32_t nspecial_from = t->bos; /* the specials are the last ids, from BOS on */
    for (int64_t i = 0; lines && i < n && st == HASS_OK; i++) {
        size_t len;
        char *rec = hass_tokenizer_render_record(t, lines[i].p, lines[i].n, &len, &e);
        int64_t k = rec ? hass_tokenizer_encode(t, rec, len, 0, 1, NULL, 0, &e) : -1;
        int32_t *grown = k >= 0 ? realloc(ids.p, (size_t)(k + 1) * sizeof *ids.p) : NULL;
        if (grown)
            ids.p = grown;
        else if (k >= 0)
            k = hass_err_set(&e, HASS_STATUS_OOM, "out of memory");
        if (k >= 0)
            k = hass_tokenizer_encode(t, rec, len, 0, 1, ids.p, k, &e);
        free(rec);
        if (k < 0) {
            st = hass_err_set(err, e.code, "%s:%lld: %s", path, (long long)lines[i].line, e.msg);
            break;
        }
        int64_t nb = 0, nt = 0;
        for (int64_t q = 0; q < k; q++) {
            if (ids.p[q] < nspecial_from) {
                nb += t->dlen[ids.p[q]];
                nt++;
            }
        }
        cJSON *rj = cJSON_ParseWithLength(lines[i].p, lines[i].n);
        const cJSON *src = cJSON_GetObjectItemCaseSensitive(rj, "source");
        const char *name = cJSON_IsString(src) ? src->valuestring : "(none)";
        cJSON *s = cJSON_GetObjectItemCaseSensitive(by, name);
        if (!s) {
            s = json_obj(by, name);
            cJSON_AddNumberToObject(s, "records", 0);
            cJSON_AddNumberToObject(s, "bytes", 0);
            cJSON_AddNumberToObject(s, "tokens", 0);
        }
        cJSON_Delete(rj);
        double add[3] = {1, (double)nb, (double)nt};
        const char *keys[3] = {"records", "bytes", "tokens"};
        for (int q = 0; q < 3; q++) {
            cJSON *v = cJSON_GetObjectItemCaseSensitive(s, keys[q]);
            cJSON_SetNumberValue(v, v->valuedouble + add[q]);
        }
    }
    if (st == HASS_OK && !lines)
        st = hass_err_set(err, HASS_STATUS_OOM, "%s: out of memory", path);
    if (st == HASS_OK) {
        double tb = 0, tt = 0, tr = 0;
        cJSON *s;
        cJSON_ArrayForEach(s, by) {
            double b = cJSON_GetObjectItemCaseSensitive(s, "bytes")->valuedouble;
            double k = cJSON_GetObjectItemCaseSensitive(s, "tokens")->valuedouble;
            tr += cJSON_GetObjectItemCaseSensitive(s, "records")->valuedouble;
            tb += b;
            tt += k;
            cJSON_AddNumberToObject(s, "bytes_per_token", k > 0 ? b / k : 0);
        }
        cJSON_AddStringToObject(out, "file", path);
        cJSON_AddNumberToObject(out, "records", tr);
        cJSON_AddNumberToObject(out, "bytes", tb);
        cJSON_AddNumberToObject(out, "tokens", tt);
        cJSON_AddNumberToObject(out, "bytes_per_token", tt > 0 ? tb / tt : 0);
        cJSON_AddItemToObject(out, "by_source", by);
        by = NULL;
    }
    cJSON_Delete(by);
    free(ids.p);
    free(lines);
    free(text);
    return st;
}

static cJSON *stats_json(const hass_bpe_trainer *tr) {
    const hass_bpe_report *r = &tr->r;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "vocab", tr->o.vocab);
    cJSON_AddNumberToObject(root, "merges", r->merges);
    cJSON_AddNumberToObject(root, "special_tokens", tr->o.vocab - tr->n_tok);
    cJSON_AddNumberToObject(root, "min_count", (double)tr->o.min_count);
    cJSON_AddNumberToObject(root, "max_bytes", (double)tr->o.max_bytes);
    cJSON *d = json_obj(root, "data");
    cJSON_AddNumberToObject(d, "jsonl_bytes", (double)r->jsonl_bytes);
    cJSON_AddNumberToObject(d, "records", (double)r->records);
    cJSON_AddNumberToObject(d, "bytes", (double)r->text_bytes);
    cJSON_AddNumberToObject(d, "pieces", (double)r->pieces);
    cJSON_AddNumberToObject(d, "distinct_pieces", (double)r->unique_pieces);
    cJSON_AddNumberToObject(d, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(d, "bytes_per_token",
                            r->tokens ? (double)r->text_bytes / (double)r->tokens : 0);
    cJSON *s = json_obj(root, "seconds");
    cJSON_AddNumberToObject(s, "count", r->seconds_count);
    cJSON_AddNumberToObject(s, "merge", r->seconds_merge);
    cJSON_AddNumberToObject(s, "save_and_verify", r->seconds_save);
    return root;
}

/* dir/name from a JSON object it takes (NULL: out of memory) */
static hass_status write_json(const char *dir, const char *name, cJSON *o, hass_err *err) {
    hass_status st = hass_json_save(dir, name, o, err);
    cJSON_Delete(o);
    return st;
}

hass_status hass_bpe_trainer_save(hass_bpe_trainer *tr, const char *dir, const char *valid_path,
                                  hass_pool *pool, hass_err *err) {
    if (!tr->trained)
        return hass_err_set(err, HASS_STATUS_ARG, "train-tokenizer: save before training");
    double t0 = hass_now();
    char path[1024];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", dir) >= (int)sizeof path)
        return hass_err_set(err, HASS_STATUS_ARG, "%s: path too long", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return hass_err_set(err, HASS_STATUS_IO, "%s: %s", dir, strerror(errno));
    hass_status st = write_json(dir, "tokenizer_config.json", config_json(), err);
    if (st == HASS_OK)
        st = write_json(dir, "tokenizer.json", tokenizer_json(tr, tr->o.vocab), err);
    if (st != HASS_OK)
        return st;
    hass_err e = {0};
    hass_tokenizer *t = hass_tokenizer_load_json(path, &e);
    if (!t)
        return hass_err_set(err, e.code, "%s", e.msg);
    st = verify(tr, t, path, pool, err);
    cJSON *stats = st == HASS_OK ? stats_json(tr) : NULL;
    if (st == HASS_OK && valid_path)
        st = evaluate(t, valid_path, json_obj(stats, "valid"), err);
    hass_tokenizer_free(t);
    tr->r.seconds_save = hass_now() - t0;
    if (st == HASS_OK) {
        cJSON_SetNumberValue(
            cJSON_GetObjectItem(cJSON_GetObjectItem(stats, "seconds"), "save_and_verify"),
            tr->r.seconds_save);
        st = hass_json_save(dir, "tokenizer_stats.json", stats, err);
    }
    cJSON_Delete(stats);
    return st;
}
