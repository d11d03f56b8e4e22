/*
 * bpe.c — GPT-2 style byte-level BPE (LLaMA-3, GPT-2).
 *
 * The pre-tokenizer regex (PCRE2 with UTF and UCP, so \p{L}, \p{N} and \s are Unicode-aware)
 * splits the text into pieces; text between matches is kept as its own piece (HF Split,
 * behaviour Isolated), and invalid UTF-8 never matches (PCRE2_MATCH_INVALID_UTF), so it ends
 * up in such gaps. Each piece's bytes start as one symbol each (the token of the byte's
 * character in GPT-2's byte alphabet) and the adjacent pair with the lowest merge rank
 * (ties: leftmost) is merged until no pair is in the merges list. With ignore_merges (LLaMA-3)
 * a piece that is itself a vocab entry is emitted without merging.
 *
 * The vocab map of a byte-level tokenizer is keyed by decoded bytes, so pieces are looked up
 * without re-encoding them into the byte alphabet.
 */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

/* LLaMA-3's Split regex (tokenizer.json pre_tokenizer) and GPT-2's ByteLevel default */
const char hass__re_llama3[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char hass__re_gpt2[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* GPT-2 bytes_to_unicode(): printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in byte order: 0x00-0x20 -> U+0100-U+0120, 0x7F-0xA0 -> U+0121-U+0142,
 * 0xAD -> U+0143. */
uint32_t hass__bpe_byte_cp(uint8_t b) {
    if (b <= 32)
        return 256u + b;
    if (b >= 127 && b <= 160)
        return 289u + (b - 127u);
    if (b == 173)
        return 323;
    return b;
}

int hass__bpe_cp_byte(uint32_t cp) {
    if (cp < 256)
        return ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || cp >= 174) ? (int)cp : -1;
    if (cp <= 288)
        return (int)(cp - 256);
    if (cp <= 322)
        return (int)(cp - 289 + 127);
    return cp == 323 ? 173 : -1;
}

int hass__bpe_decode_piece(const char *s, size_t n, hass__buf *out) {
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        int l = hass__utf8_len(c);
        uint32_t cp = 0xffffffffu;
        if (l == 1)
            cp = c;
        else if (l == 2 && i + 1 < n)
            cp = ((c & 0x1fu) << 6) | ((uint8_t)s[i + 1] & 0x3fu);
        int byte = hass__bpe_cp_byte(cp);
        if (byte < 0)
            return 1;
        uint8_t b = (uint8_t)byte;
        if (hass__buf_put(out, &b, 1))
            return -1;
        i += (size_t)l;
    }
    return 0;
}

hass_status hass__bpe_compile(hass_tokenizer *t, const char *regex, hass_err *err) {
    int code;
    PCRE2_SIZE off;
    t->re = pcre2_compile((PCRE2_SPTR)regex, PCRE2_ZERO_TERMINATED,
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(code, msg, sizeof msg);
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "tokenizer: pre-tokenizer regex: %s at offset %zu", (char *)msg,
                            (size_t)off);
    }
    (void)pcre2_jit_compile(t->re,
                            PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    free(t->re_src);
    if (!(t->re_src = strdup(regex)))
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer: out of memory");
    return HASS_OK;
}

static void try_pair(const hass_tokenizer *t, const char *w, hass__scratch *s, int32_t l, int32_t r,
                     int *oom) {
    (void)w;
    const hass__sym *a = &s->sym[l], *b = &s->sym[r];
    hass__pair e = {.left = l, .right = r, .len = a->len + b->len};
    int32_t rank = hass__tok_merge_find(t, a->id, b->id, &e.id);
    if (rank < 0)
        return;
    e.prio = -(float)rank;
    if (hass__heap_push(&s->heap, e))
        *oom = 1;
}

hass_status hass__bpe_encode_piece(const hass_tokenizer *t, const char *w, size_t n,
                                   hass__scratch *s, hass__ids *out, hass_err *err) {
    if (n == 1)
        return hass__ids_push(out, t->byte_id[(uint8_t)w[0]])
                   ? hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory")
                   : HASS_OK;
    if (t->ignore_merges) {
        int32_t id = hass__tok_map_find(t, w, n);
        if (id >= 0)
            return hass__ids_push(out, id)
                       ? hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory")
                       : HASS_OK;
    }
    hass__sym *sym = hass__scratch_syms(s, n);
    if (!sym)
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
    for (size_t i = 0; i < n; i++)
        sym[i] = (hass__sym){.prev = (int32_t)i - 1,
                             .next = (int32_t)i + 1,
                             .id = t->byte_id[(uint8_t)w[i]],
                             .start = (uint32_t)i,
                             .len = 1};
    sym[n - 1].next = -1;
    s->heap.n = 0;
    int oom = 0;
    for (size_t i = 0; i + 1 < n && !oom; i++)
        try_pair(t, w, s, (int32_t)i, (int32_t)i + 1, &oom);
    if (oom || hass__bpe_merge_all(t, w, s, try_pair))
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
    for (int32_t i = 0; i >= 0; i = sym[i].next)
        if (hass__ids_push(out, sym[i].id))
            return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
    return HASS_OK;
}

hass_status hass__bpe_split(const hass_tokenizer *t, const char *s, size_t n, hass__scratch *sc,
                            hass__piece_fn fn, void *ctx, hass_err *err) {
    if (n > INT32_MAX)
        return hass_err_set(err, HASS_STATUS_RANGE, "tokenizer_encode: text too long");
    if (!sc->md && !(sc->md = pcre2_match_data_create_from_pattern(t->re, NULL)))
        return hass_err_set(err, HASS_STATUS_OOM, "tokenizer_encode: out of memory");
    size_t pos = 0, gap = 0; /* gap: start of text not yet covered by a piece */
    while (pos < n) {
        int rc = pcre2_match(t->re, (PCRE2_SPTR)s, n, pos, 0, sc->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0)
            return hass_err_set(err, HASS_STATUS_FORMAT, "tokenizer_encode: regex error %d", rc);
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(sc->md);
        size_t ms = ov[0], me = ov[1];
        if (me == ms) { /* empty match: step one byte further, keeping the text as a gap */
            pos = ms + 1;
            continue;
        }
        hass_status st = HASS_OK;
        if (ms > gap)
            st = fn(ctx, s + gap, ms - gap, err);
        if (st == HASS_OK)
            st = fn(ctx, s + ms, me - ms, err);
        if (st != HASS_OK)
            return st;
        pos = gap = me;
    }
    return gap < n ? fn(ctx, s + gap, n - gap, err) : HASS_OK;
}

typedef struct {
    const hass_tokenizer *t;
    hass__scratch *sc;
    hass__ids *out;
} piece_ctx;

static hass_status encode_one(void *ctx, const char *s, size_t n, hass_err *err) {
    piece_ctx *c = ctx;
    return hass__bpe_encode_piece(c->t, s, n, c->sc, c->out, err);
}

hass_status hass__bpe_encode(const hass_tokenizer *t, const char *s, size_t n, hass__scratch *sc,
                             hass__ids *out, hass_err *err) {
    piece_ctx c = {t, sc, out};
    return hass__bpe_split(t, s, n, sc, encode_one, &c, err);
}
