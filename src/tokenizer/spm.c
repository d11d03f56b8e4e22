/*
 * spm.c — SentencePiece-style BPE with byte fallback (LLaMA-1/2, llama2.c tokenizer.bin).
 *
 * Normalisation (add_dummy_prefix=true, remove_extra_whitespaces=false): each " " becomes
 * U+2581 and one U+2581 is prepended. The text is split into UTF-8 characters; each adjacent
 * pair whose merge is allowed is queued with its priority, and the best pair (ties: leftmost)
 * is merged until none is left, re-queuing the new neighbours (SentencePiece bpe_model.cc):
 *   score mode (tokenizer.bin, GGUF "llama"): a pair is allowed when the concatenated text is a
 *     normal piece; priority = its score (llama2.c run.c picks the same pair each step);
 *   rank mode (HF tokenizer.json): a pair is allowed when it is in the merges list;
 *     priority = -rank (HF tokenizers' BPE::merge_word).
 * A final symbol with no piece becomes its UTF-8 bytes as <0xNN> tokens (or <unk>).
 */
#include "tokenizer/tok_internal.h"

#include <string.h>

static const char META[3] = {'\xe2', '\x96', '\x81'}; /* U+2581 */

/* byte length of the (possibly invalid) UTF-8 character at s[i]; invalid -> 1 */
static uint32_t char_len(const char *s, size_t i, size_t n) {
    int l = hass__utf8_len((uint8_t)s[i]);
    if (l == 1 || i + (size_t)l > n)
        return 1;
    for (int k = 1; k < l; k++)
        if (((uint8_t)s[i + k] & 0xc0) != 0x80)
            return 1;
    return (uint32_t)l;
}

static int mergeable(const hass_tokenizer *t, int32_t id) {
    return id >= 0 && (t->type[id] == TOKT_NORMAL || t->type[id] == TOKT_USER);
}

static void try_pair(const hass_tokenizer *t, const char *w, hass__scratch *s, int32_t l, int32_t r,
                     int *oom) {
    const hass__sym *a = &s->sym[l], *b = &s->sym[r];
    hass__pair e = {.left = l, .right = r, .len = a->len + b->len};
    if (t->spm_score_mode) {
        int32_t id = hass__tok_map_find(t, w + a->start, e.len);
        if (!mergeable(t, id))
            return;
        e.id = id;
        e.prio = t->scores[id];
    } else {
        if (a->id < 0 || b->id < 0)
            return;
        int32_t rank = hass__tok_merge_find(t, a->id, b->id, &e.id);
        if (rank < 0)
            return;
        e.prio = -(float)rank;
    }
    if (hass__heap_push(&s->heap, e))
        *oom = 1;
}

static hass_status encode_word(const hass_tokenizer *t, const char *w, size_t n, hass__scratch *s,
                               hass__ids *out, hass_err *err) {
    hass__sym *sym = hass__scratch_syms(s, n);
    if (!sym)
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
    int32_t ns = 0;
    for (size_t i = 0; i < n;) {
        uint32_t l = char_len(w, i, n);
        int32_t id = hass__tok_map_find(t, w + i, l);
        sym[ns] = (hass__sym){.prev = ns - 1,
                              .next = ns + 1,
                              .id = mergeable(t, id) ? id : -1,
                              .start = (uint32_t)i,
                              .len = l};
        ns++;
        i += l;
    }
    sym[ns - 1].next = -1;
    s->heap.n = 0;
    int oom = 0;
    for (int32_t i = 0; i + 1 < ns && !oom; i++)
        try_pair(t, w, s, i, i + 1, &oom);
    if (oom || hass__bpe_merge_all(t, w, s, try_pair))
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        if (sym[i].id >= 0) {
            if (hass__ids_push(out, sym[i].id))
                return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
            continue;
        }
        for (uint32_t k = 0; k < sym[i].len; k++) {
            uint8_t b = (uint8_t)w[sym[i].start + k];
            int32_t id = t->byte_id[b] >= 0 ? t->byte_id[b] : t->unk;
            if (id < 0)
                return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                                    "tokenizer_encode: byte 0x%02x has no token and no <unk>", b);
            if (hass__ids_push(out, id))
                return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
            if (t->byte_id[b] < 0)
                break; /* one <unk> per character */
        }
    }
    return HASS_OK;
}

hass_status hass__spm_encode(const hass_tokenizer *t, const char *s, size_t n, int at_start,
                             hass__scratch *sc, hass__ids *out, hass_err *err) {
    hass__buf *b = &sc->norm;
    b->n = 0;
    int prefix = t->spm_prefix == 1 || (t->spm_prefix == 2 && at_start);
    if (prefix && hass__buf_put(b, META, 3))
        goto oom;
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        while (j < n && s[j] != ' ')
            j++;
        if (hass__buf_put(b, s + i, j - i) || (j < n && hass__buf_put(b, META, 3)))
            goto oom;
        i = j;
    }
    if (b->n == 0)
        return HASS_OK;
    if (b->n > UINT32_MAX / 2)
        return hass_err_set(err, HASS_STATUS_RANGE, "tokenizer_encode: text too long");
    if (!t->spm_split)
        return encode_word(t, b->p, b->n, sc, out, err);
    /* Metaspace split: every U+2581 starts a new word */
    size_t start = 0;
    for (size_t i = 1; i <= b->n; i++) {
        if (i == b->n || (i + 3 <= b->n && memcmp(b->p + i, META, 3) == 0)) {
            hass_status st = encode_word(t, b->p + start, i - start, sc, out, err);
            if (st != HASS_OK)
                return st;
            start = i;
        }
    }
    return HASS_OK;
oom:
    return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
}
