/*
 * tokenizer.c — the tokenizer object shared by both algorithms: string pool, vocab and merge
 * hash maps, the special-token index, the encode driver (special-token splitting, then the
 * SPM or byte-level encoder per text piece), the BPE merge loop both algorithms share (a
 * binary heap of candidate pairs with lazy invalidation, as SentencePiece's bpe_model.cc),
 * and the streaming UTF-8-safe detokenizer.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---------------- small containers ---------------- */

int hass__buf_put(hass__buf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) {
            if (cap > SIZE_MAX / 2)
                return -1;
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p)
            return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

int hass__ids_push(hass__ids *v, int32_t id) {
    if (v->n == v->cap) {
        int64_t cap = v->cap ? v->cap * 2 : 64;
        int32_t *p = realloc(v->p, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        v->p = p;
        v->cap = cap;
    }
    v->p[v->n++] = id;
    return 0;
}

int hass__heap_push(hass__heap *h, hass__pair e) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        hass__pair *p = realloc(h->p, cap * sizeof *p);
        if (!p)
            return -1;
        h->p = p;
        h->cap = cap;
    }
    /* a before b: higher priority, then leftmost */
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        const hass__pair *q = &h->p[up];
        if (q->prio > e.prio || (q->prio == e.prio && q->left < e.left))
            break;
        h->p[i] = *q;
        i = up;
    }
    h->p[i] = e;
    return 0;
}

hass__pair hass__heap_pop(hass__heap *h) {
    hass__pair top = h->p[0];
    hass__pair last = h->p[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n) {
            const hass__pair *a = &h->p[c], *b = &h->p[c + 1];
            if (b->prio > a->prio || (b->prio == a->prio && b->left < a->left))
                c++;
        }
        const hass__pair *q = &h->p[c];
        if (last.prio > q->prio || (last.prio == q->prio && last.left < q->left))
            break;
        h->p[i] = *q;
        i = c;
    }
    if (n)
        h->p[i] = last;
    return top;
}

hass__sym *hass__scratch_syms(hass__scratch *s, size_t n) {
    if (n > s->sym_cap) {
        size_t cap = s->sym_cap ? s->sym_cap : 64;
        while (cap < n)
            cap *= 2;
        hass__sym *p = realloc(s->sym, cap * sizeof *p);
        if (!p)
            return NULL;
        s->sym = p;
        s->sym_cap = cap;
    }
    return s->sym;
}

void hass__scratch_free(hass__scratch *s) {
    free(s->sym);
    free(s->heap.p);
    free(s->norm.p);
    if (s->md)
        pcre2_match_data_free(s->md);
    memset(s, 0, sizeof *s);
}

int hass__bpe_merge_all(const hass_tokenizer *t, const char *w, hass__scratch *s,
                        hass__try_pair_fn try_pair) {
    hass__sym *sym = s->sym;
    int oom = 0;
    while (s->heap.n > 0 && !oom) {
        hass__pair e = hass__heap_pop(&s->heap);
        hass__sym *l = &sym[e.left], *r = &sym[e.right];
        /* stale entry: one side was merged away or grew since the pair was queued */
        if (l->len == 0 || r->len == 0 || l->next != e.right || l->len + r->len != e.len)
            continue;
        l->len += r->len;
        l->id = e.id;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = e.left;
        r->len = 0;
        if (l->prev >= 0)
            try_pair(t, w, s, l->prev, e.left, &oom);
        if (l->next >= 0)
            try_pair(t, w, s, e.left, l->next, &oom);
    }
    return oom ? -1 : 0;
}

/* ---------------- hashing ---------------- */

uint64_t hass__hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

uint64_t hass__hash_u64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n)
        c *= 2;
    return c;
}

/* encoding key of id: stored piece (SPM) or decoded bytes (byte-level) */
static const char *key_of(const hass_tokenizer *t, int32_t id, size_t *n) {
    if (t->kind == HASS_TOK_SPM) {
        *n = t->plen[id];
        return t->pool.p + t->poff[id];
    }
    *n = t->dlen[id];
    return t->pool.p + t->doff[id];
}

int32_t hass__tok_map_find(const hass_tokenizer *t, const char *s, size_t n) {
    if (!t->map)
        return -1;
    size_t i = hass__hash_bytes(s, n) & t->map_mask;
    for (;;) {
        int32_t id = t->map[i];
        if (id < 0)
            return -1;
        size_t kn;
        const char *k = key_of(t, id, &kn);
        if (kn == n && memcmp(k, s, n) == 0)
            return id;
        i = (i + 1) & t->map_mask;
    }
}

static int map_build(hass_tokenizer *t) {
    size_t cap = pow2_at_least((size_t)t->n_vocab * 2 + 1);
    t->map = malloc(cap * sizeof *t->map);
    if (!t->map)
        return -1;
    memset(t->map, 0xff, cap * sizeof *t->map);
    t->map_mask = cap - 1;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        int ty = t->type[id];
        if (ty != TOKT_NORMAL && ty != TOKT_USER)
            continue;
        size_t n;
        const char *k = key_of(t, id, &n);
        if (n == 0)
            continue;
        size_t i = hass__hash_bytes(k, n) & t->map_mask;
        int dup = 0;
        while (t->map[i] >= 0) {
            size_t kn;
            const char *o = key_of(t, t->map[i], &kn);
            if (kn == n && memcmp(o, k, n) == 0) {
                dup = 1; /* keep the lower id, as a dict built in id order would not, but */
                break;   /* HF/SentencePiece vocabs have no duplicates among normal pieces */
            }
            i = (i + 1) & t->map_mask;
        }
        if (!dup)
            t->map[i] = id;
    }
    return 0;
}

hass_status hass__tok_reserve_merges(hass_tokenizer *t, int64_t n, hass_err *err) {
    size_t cap = pow2_at_least((size_t)n * 2 + 1);
    free(t->mkey);
    free(t->mrank);
    free(t->mid);
    t->mkey = calloc(cap, sizeof *t->mkey);
    t->mrank = malloc(cap * sizeof *t->mrank);
    t->mid = malloc(cap * sizeof *t->mid);
    if (!t->mkey || !t->mrank || !t->mid)
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory for %lld merges",
                            (long long)n);
    t->merge_mask = cap - 1;
    t->n_merges = 0;
    return HASS_OK;
}

hass_status hass__tok_add_merge(hass_tokenizer *t, int32_t a, int32_t b, int32_t rank,
                                int32_t merged, hass_err *err) {
    if (!t->mkey || (size_t)(t->n_merges + 1) * 2 > t->merge_mask + 1)
        return hass_err_set(err, HASS_STATUS_ARG, "tokenizer: merge table full");
    uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)b;
    size_t i = hass__hash_u64(key) & t->merge_mask;
    while (t->mkey[i]) {
        if (t->mkey[i] == key)
            return HASS_OK; /* duplicate merge: the first (lowest rank) wins */
        i = (i + 1) & t->merge_mask;
    }
    t->mkey[i] = key;
    t->mrank[i] = rank;
    t->mid[i] = merged;
    t->n_merges++;
    return HASS_OK;
}

int32_t hass__tok_merge_find(const hass_tokenizer *t, int32_t a, int32_t b, int32_t *merged) {
    if (!t->mkey)
        return -1;
    uint64_t key = ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)b;
    size_t i = hass__hash_u64(key) & t->merge_mask;
    while (t->mkey[i]) {
        if (t->mkey[i] == key) {
            *merged = t->mid[i];
            return t->mrank[i];
        }
        i = (i + 1) & t->merge_mask;
    }
    return -1;
}

/* ---------------- construction ---------------- */

hass_tokenizer *hass__tok_new(hass_tok_kind kind, int32_t n_vocab, hass_err *err) {
    if (n_vocab <= 0 || n_vocab > (1 << 24)) {
        hass_err_set(err, HASS_STATUS_FORMAT, "tokenizer: vocab size %d out of range", n_vocab);
        return NULL;
    }
    hass_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        goto oom;
    t->kind = kind;
    t->n_vocab = n_vocab;
    t->bos = t->eos = t->unk = -1;
    t->add_bos = -1;
    memset(t->byte_id, 0xff, sizeof t->byte_id);
    size_t n = (size_t)n_vocab;
    t->poff = calloc(n, sizeof *t->poff);
    t->plen = calloc(n, sizeof *t->plen);
    t->doff = calloc(n, sizeof *t->doff);
    t->dlen = calloc(n, sizeof *t->dlen);
    t->type = malloc(n);
    if (!t->poff || !t->plen || !t->doff || !t->dlen || !t->type || hass__buf_put(&t->pool, "", 1))
        goto oom;
    memset(t->type, TOKT_UNUSED, n); /* ids never given a piece stay unused, with "" */
    return t;
oom:
    hass_tokenizer_free(t);
    hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
    return NULL;
}

int hass__tok_set_piece(hass_tokenizer *t, int32_t id, const char *s, size_t n, int ty) {
    if (t->pool.n + n + 1 > UINT32_MAX)
        return -1;
    uint32_t off = (uint32_t)t->pool.n;
    if (hass__buf_put(&t->pool, s, n) || hass__buf_put(&t->pool, "", 1))
        return -1;
    t->poff[id] = off;
    t->plen[id] = (uint32_t)n;
    t->type[id] = (uint8_t)ty;
    return 0;
}

int hass__tok_add_special(hass_tokenizer *t, int32_t id, const char *s, size_t n, int special) {
    if (n == 0)
        return 0;
    hass__added *a = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *a);
    if (!a)
        return -1;
    t->added = a;
    uint32_t off = (uint32_t)t->pool.n;
    if (t->pool.n + n + 1 > UINT32_MAX || hass__buf_put(&t->pool, s, n) ||
        hass__buf_put(&t->pool, "", 1))
        return -1;
    a[t->n_added++] = (hass__added){
        .id = id, .off = off, .len = (uint32_t)n, .special = special, .c0 = (uint8_t)s[0]};
    return 0;
}

static int added_cmp(const void *pa, const void *pb) {
    const hass__added *a = pa, *b = pb;
    if (a->c0 != b->c0)
        return a->c0 < b->c0 ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1; /* longest first: leftmost-longest matching */
    return a->id < b->id ? -1 : a->id > b->id;
}

static int parse_byte_piece(const char *s, size_t n) {
    if (n != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* decoded bytes of id (what the detokenizer prints), appended to the pool */
static int build_decoded(hass_tokenizer *t, int32_t id, hass__buf *tmp) {
    const char *p = t->pool.p + t->poff[id];
    size_t n = t->plen[id];
    int ty = t->type[id];
    tmp->n = 0;
    if (t->kind == HASS_TOK_SPM) {
        int b = ty == TOKT_BYTE ? parse_byte_piece(p, n) : -1;
        if (b >= 0) {
            uint8_t c = (uint8_t)b;
            if (hass__buf_put(tmp, &c, 1))
                return -1;
        } else if (ty == TOKT_NORMAL || ty == TOKT_USER) {
            for (size_t i = 0; i < n; i++) {
                if (i + 3 <= n && memcmp(p + i, "\xe2\x96\x81", 3) == 0) {
                    if (hass__buf_put(tmp, " ", 1))
                        return -1;
                    i += 2;
                } else if (hass__buf_put(tmp, p + i, 1)) {
                    return -1;
                }
            }
        } else if (hass__buf_put(tmp, p, n)) {
            return -1;
        }
    } else {
        int rc = ty == TOKT_NORMAL || ty == TOKT_BYTE ? hass__bpe_decode_piece(p, n, tmp) : 1;
        if (rc < 0)
            return -1;
        int ok = rc == 0;
        if (!ok) {
            tmp->n = 0;
            if (hass__buf_put(tmp, p, n))
                return -1;
        }
    }
    if (t->pool.n + tmp->n + 1 > UINT32_MAX)
        return -1;
    t->doff[id] = (uint32_t)t->pool.n;
    t->dlen[id] = (uint32_t)tmp->n;
    if (tmp->n > t->max_dlen)
        t->max_dlen = tmp->n;
    if (hass__buf_put(&t->pool, tmp->p ? tmp->p : "", tmp->n) || hass__buf_put(&t->pool, "", 1))
        return -1;
    return 0;
}

static void add_stop(hass_tokenizer *t, int32_t id) {
    if (id < 0 || t->n_stop >= (int)(sizeof t->stop / sizeof t->stop[0]))
        return;
    for (int i = 0; i < t->n_stop; i++)
        if (t->stop[i] == id)
            return;
    t->stop[t->n_stop++] = id;
}

hass_status hass__tok_finish(hass_tokenizer *t, hass_err *err) {
    hass__buf tmp = {0};
    for (int32_t id = 0; id < t->n_vocab; id++) {
        if (t->kind == HASS_TOK_SPM && t->type[id] == TOKT_BYTE) {
            int b = parse_byte_piece(t->pool.p + t->poff[id], t->plen[id]);
            if (b >= 0 && t->byte_id[b] < 0)
                t->byte_id[b] = id;
        }
        if (build_decoded(t, id, &tmp)) {
            free(tmp.p);
            return hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
        }
    }
    free(tmp.p);
    if (map_build(t))
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
    if (t->kind == HASS_TOK_BYTE_BPE) {
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            t->byte_id[b] = hass__tok_map_find(t, &c, 1);
            if (t->byte_id[b] < 0)
                return hass_err_set(err, HASS_STATUS_FORMAT,
                                    "tokenizer: byte-level vocab lacks the token for byte 0x%02x",
                                    b);
        }
    }
    if (t->n_added > 1) {
        qsort(t->added, (size_t)t->n_added, sizeof *t->added, added_cmp);
    }
    int k = 0;
    for (int c = 0; c <= 256; c++) {
        while (k < t->n_added && t->added[k].c0 < c)
            k++;
        t->added_first[c] = k;
    }
    if (t->add_bos < 0)
        t->add_bos = t->bos >= 0;
    add_stop(t, t->eos);
    static const char *const stops[] = {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end_of_text|>",
                                        "<|endoftext|>"};
    for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++)
        add_stop(t, hass_tokenizer_find(t, stops[i], strlen(stops[i])));
    t->chat = hass__chat_detect(t->chat_template);
    return HASS_OK;
}

void hass_tokenizer_free(hass_tokenizer *t) {
    if (!t)
        return;
    free(t->pool.p);
    free(t->poff);
    free(t->plen);
    free(t->doff);
    free(t->dlen);
    free(t->type);
    free(t->scores);
    free(t->map);
    free(t->mkey);
    free(t->mrank);
    free(t->mid);
    free(t->added);
    if (t->re)
        pcre2_code_free(t->re);
    free(t->re_src);
    free(t->chat_template);
    free(t);
}

/* ---------------- accessors ---------------- */

int32_t hass_tokenizer_vocab_size(const hass_tokenizer *t) {
    return t->n_vocab;
}
hass_status hass_tokenizer_check_vocab(const hass_tokenizer *t, int64_t V, hass_err *err) {
    if (t->n_vocab > V)
        return hass_err_set(err, HASS_STATUS_SHAPE,
                            "the tokenizer has %d tokens, the model only %lld (a tokenizer of "
                            "another model?)",
                            t->n_vocab, (long long)V);
    const char *what[3] = {"BOS", "EOS", "unknown-token"};
    int32_t ids[3 + sizeof t->stop / sizeof t->stop[0]] = {t->bos, t->eos, t->unk};
    int n = 3;
    for (int i = 0; i < t->n_stop; i++)
        ids[n++] = t->stop[i];
    for (int i = 0; i < n; i++)
        if (ids[i] >= V)
            return hass_err_set(err, HASS_STATUS_SHAPE,
                                "the tokenizer's %s id %d is outside the model's %lld tokens "
                                "(the tokenizer has %d)",
                                i < 3 ? what[i] : "end-of-turn", ids[i], (long long)V, t->n_vocab);
    return HASS_OK;
}

int32_t hass_tokenizer_bos(const hass_tokenizer *t) {
    return t->bos;
}
int32_t hass_tokenizer_eos(const hass_tokenizer *t) {
    return t->eos;
}
hass_tok_kind hass_tokenizer_kind(const hass_tokenizer *t) {
    return t->kind;
}
int hass_tokenizer_wants_bos(const hass_tokenizer *t) {
    return t->add_bos > 0 && t->bos >= 0;
}

const char *hass_tokenizer_piece(const hass_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_vocab)
        return NULL;
    if (len)
        *len = t->plen[id];
    return t->pool.p + t->poff[id];
}

int32_t hass_tokenizer_find(const hass_tokenizer *t, const char *piece, size_t len) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && memcmp(t->pool.p + t->added[i].off, piece, len) == 0)
            return t->added[i].id;
    if (t->kind == HASS_TOK_SPM) {
        int32_t id = hass__tok_map_find(t, piece, len);
        if (id >= 0)
            return id;
    } else {
        /* map keys are decoded bytes: decode the piece's byte-level characters first */
        hass__buf b = {0};
        int ok = hass__bpe_decode_piece(piece, len, &b) == 0;
        int32_t id = ok && b.n ? hass__tok_map_find(t, b.p, b.n) : -1;
        free(b.p);
        if (id >= 0 && t->plen[id] == len && memcmp(t->pool.p + t->poff[id], piece, len) == 0)
            return id;
    }
    /* control/unused pieces are not in the map */
    for (int32_t id = 0; id < t->n_vocab; id++)
        if (t->plen[id] == len && t->type[id] != TOKT_NORMAL &&
            memcmp(t->pool.p + t->poff[id], piece, len) == 0)
            return id;
    return -1;
}

int hass_tokenizer_stop_ids(const hass_tokenizer *t, int32_t *ids, int cap) {
    for (int i = 0; i < t->n_stop && i < cap; i++)
        ids[i] = t->stop[i];
    return t->n_stop;
}

/* ---------------- encoding ---------------- */

/* first added token at or after pos (leftmost, then longest); returns its index or -1 */
static int find_added(const hass_tokenizer *t, const char *s, size_t n, size_t pos,
                      int parse_special, size_t *at) {
    /* byte-level: special strings delimit pieces even when encoded as text (HF's reference
     * behaviour in the LLaMA-3 vectors); SPM text is encoded whole, as SentencePiece does */
    int all = parse_special || t->kind == HASS_TOK_BYTE_BPE;
    for (size_t i = pos; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        for (int k = t->added_first[c]; k < t->added_first[c + 1]; k++) {
            const hass__added *a = &t->added[k];
            if ((a->special && !all) || a->len > n - i)
                continue;
            if (memcmp(t->pool.p + a->off, s + i, a->len) == 0) {
                *at = i;
                return k;
            }
        }
    }
    return -1;
}

hass_status hass__tok_walk(const hass_tokenizer *t, const char *s, size_t n, int parse_special,
                           const hass__walk_fns *f, void *ctx, hass_err *err) {
    size_t pos = 0;
    hass_status st = HASS_OK;
    while (pos < n && st == HASS_OK) {
        size_t at = n;
        int k = t->n_added ? find_added(t, s, n, pos, parse_special, &at) : -1;
        if (at > pos)
            st = f->text(ctx, s + pos, at - pos, pos == 0, err);
        if (k < 0 || st != HASS_OK)
            break;
        const hass__added *a = &t->added[k];
        st = a->special && !parse_special ? f->text(ctx, s + at, a->len, 0, err)
                                          : f->special(ctx, a->id, err);
        pos = at + a->len;
    }
    return st;
}

typedef struct {
    const hass_tokenizer *t;
    hass__scratch sc;
    hass__ids out;
} encode_ctx;

static hass_status encode_text(void *ctx, const char *s, size_t n, int at_start, hass_err *err) {
    encode_ctx *c = ctx;
    if (c->t->kind == HASS_TOK_SPM)
        return hass__spm_encode(c->t, s, n, at_start, &c->sc, &c->out, err);
    return hass__bpe_encode(c->t, s, n, &c->sc, &c->out, err);
}

static hass_status encode_special(void *ctx, int32_t id, hass_err *err) {
    encode_ctx *c = ctx;
    return hass__ids_push(&c->out, id)
               ? hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory")
               : HASS_OK;
}

int64_t hass_tokenizer_encode(const hass_tokenizer *t, const char *text, size_t len, int add_bos,
                              int parse_special, int32_t *ids, int64_t cap, hass_err *err) {
    if (!t || (!text && len) || cap < 0 || (cap > 0 && !ids))
        return hass_err_set(err, HASS_STATUS_ARG, "tokenizer_encode: bad arguments");
    static const hass__walk_fns fns = {encode_text, encode_special};
    encode_ctx c = {.t = t};
    hass_status st = HASS_OK;
    if (add_bos && t->bos >= 0)
        st = encode_special(&c, t->bos, err);
    if (st == HASS_OK)
        st = hass__tok_walk(t, text, len, parse_special, &fns, &c, err);
    if (st == HASS_OK && cap > 0 && c.out.n > 0) /* an empty text leaves c.out.p NULL */
        memcpy(ids, c.out.p, (size_t)(c.out.n < cap ? c.out.n : cap) * sizeof *ids);
    int64_t n = c.out.n;
    free(c.out.p);
    hass__scratch_free(&c.sc);
    return st == HASS_OK ? n : (int64_t)st;
}

/* ---------------- streaming detokenizer ---------------- */

void hass_detok_init(hass_detok *d) {
    memset(d, 0, sizeof *d);
    d->prev = -1;
}

size_t hass_tokenizer_detok_cap(const hass_tokenizer *t) {
    return 3 * t->max_dlen + 16;
}

typedef struct {
    char *out;
    size_t cap, n;
} sink;

static void sink_put(sink *k, const void *s, size_t n) {
    if (n && k->n + n <= k->cap) { /* whole characters only: never a partial one */
        memcpy(k->out + k->n, s, n);
        k->n += n;
    }
}

static void put_replacement(sink *k) {
    sink_put(k, "\xef\xbf\xbd", 3);
}

static void feed_byte(hass_detok *d, uint8_t b, sink *k) {
    if (d->npending > 0) {
        uint8_t p0 = d->pending[0];
        uint8_t lo = 0x80, hi = 0xbf;
        if (d->npending == 1) {
            if (p0 == 0xe0)
                lo = 0xa0;
            else if (p0 == 0xed)
                hi = 0x9f;
            else if (p0 == 0xf0)
                lo = 0x90;
            else if (p0 == 0xf4)
                hi = 0x8f;
        }
        if (b >= lo && b <= hi) {
            d->pending[d->npending++] = b;
            if (d->npending == hass__utf8_len(p0)) {
                sink_put(k, d->pending, (size_t)d->npending);
                d->npending = 0;
            }
            return;
        }
        put_replacement(k); /* the incomplete character, then b starts afresh */
        d->npending = 0;
    }
    if (b < 0x80)
        sink_put(k, &b, 1);
    else if (b >= 0xc2 && b <= 0xf4)
        d->pending[d->npending++] = b;
    else
        put_replacement(k);
}

size_t hass_detok_push(const hass_tokenizer *t, hass_detok *d, int32_t id, char *out, size_t cap) {
    sink k = {out, cap, 0};
    if (id < 0 || id >= t->n_vocab)
        return 0;
    if (id == t->bos) {
        d->prev = id;
        return 0;
    }
    const uint8_t *p = (const uint8_t *)t->pool.p + t->doff[id];
    size_t n = t->dlen[id];
    if (t->kind == HASS_TOK_SPM && (d->prev == t->bos || d->first) && t->type[id] != TOKT_BYTE &&
        n > 0 && p[0] == ' ') {
        p++;
        n--;
    }
    for (size_t i = 0; i < n; i++)
        feed_byte(d, p[i], &k);
    d->prev = id;
    d->first = 0;
    return k.n;
}

size_t hass_detok_flush(const hass_tokenizer *t, hass_detok *d, char *out, size_t cap) {
    (void)t;
    sink k = {out, cap, 0};
    if (d->npending > 0)
        put_replacement(&k);
    d->npending = 0;
    return k.n;
}

char *hass_tokenizer_decode(const hass_tokenizer *t, const int32_t *ids, int64_t n,
                            int strip_prefix, size_t *len) {
    hass_detok d;
    hass_detok_init(&d);
    d.first = strip_prefix;
    size_t cap = hass_tokenizer_detok_cap(t);
    char *tmp = malloc(cap);
    hass__buf b = {0};
    int bad = !tmp || hass__buf_put(&b, "", 0);
    for (int64_t i = 0; i < n && !bad; i++) {
        size_t w = hass_detok_push(t, &d, ids[i], tmp, cap);
        bad = hass__buf_put(&b, tmp, w) != 0;
    }
    if (!bad) {
        size_t w = hass_detok_flush(t, &d, tmp, cap);
        bad = hass__buf_put(&b, tmp, w) != 0;
    }
    free(tmp);
    if (bad) {
        free(b.p);
        return NULL;
    }
    if (len)
        *len = b.n;
    return b.p;
}
