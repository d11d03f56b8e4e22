/*
 * quant_avx2.c — AVX2 half of the quantized matrix product (quant.h): the weight preparation
 * every SIMD kernel uses (unpack a row's blocks to bytes, transpose each group of 8 blocks into
 * the group layout, scales to vectors), and the AVX2 kernel (quant_kern.h with vpmaddubsw +
 * vpmaddwd). Compiled with -mavx2 -mfma -mf16c; called only when hass_cpu_features() has AVX2.
 */
#include "formats/formats.h"
#include "ops/quant.h"

#include <immintrin.h>
#include <string.h>

/* ---- weight preparation ---- */
static inline __m256i lo_nibbles(__m256i v) {
    return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}
static inline __m256i hi_nibbles(__m256i v) {
    return _mm256_and_si256(_mm256_srli_epi16(v, 4), _mm256_set1_epi8(0x0F));
}

/* 16 packed bytes -> 32 bytes: low nibbles (elements 0..15), then high nibbles (16..31). */
static inline __m256i nibbles32(const uint8_t *qs) {
    __m128i v = _mm_loadu_si128((const __m128i *)qs);
    __m128i m = _mm_set1_epi8(0x0F);
    __m128i lo = _mm_and_si128(v, m), hi = _mm_and_si128(_mm_srli_epi16(v, 4), m);
    return _mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1);
}

/* Bit j of the 32-bit qh -> 0x10 in byte j. */
static inline __m256i fifth_bits(const uint8_t *qhp) {
    uint32_t qh;
    memcpy(&qh, qhp, 4);
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2,
                                          2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), shuf);
    v = _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
    return _mm256_and_si256(v, _mm256_set1_epi8(0x10));
}

/* v[k] lane i = n[i] lane k (8 x 8 dwords), stored as the 8 vectors of a group. */
static void transpose_store(uint8_t *u, const __m256i n[8]) {
    __m256i t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(n[i], n[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(n[i], n[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        s[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
        s[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
        s[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        s[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int k = 0; k < 4; k++) {
        _mm256_storeu_si256((__m256i *)(u + 32 * k),
                            _mm256_permute2x128_si256(s[k], s[k + 4], 0x20));
        _mm256_storeu_si256((__m256i *)(u + 32 * (k + 4)),
                            _mm256_permute2x128_si256(s[k], s[k + 4], 0x31));
    }
}

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* Block b's 32 integers in element order (unsigned; Q8_0 signed, or + 128 when !sgn). */
static inline __m256i block32(hass_dtype t, const uint8_t *b, int sgn) {
    switch (t) {
    case HASS_DTYPE_Q8_0: {
        __m256i v = _mm256_loadu_si256((const __m256i *)(b + 2));
        return sgn ? v : _mm256_xor_si256(v, _mm256_set1_epi8((char)0x80));
    }
    case HASS_DTYPE_Q4_0:
        return nibbles32(b + 2);
    case HASS_DTYPE_Q4_1:
        return nibbles32(b + 4);
    case HASS_DTYPE_Q5_0:
        return _mm256_or_si256(nibbles32(b + 6), fifth_bits(b + 2));
    default: /* Q5_1 */
        return _mm256_or_si256(nibbles32(b + 8), fifth_bits(b + 4));
    }
}

static void prep32(hass__wgroup *dst, const uint8_t *row, hass_dtype t, int64_t in, int sgn) {
    size_t bb = hass_dtype_bytes(t, 32), ws = sizeof(hass__wgroup) + (sgn ? 256 : 0);
    int64_t nb = in / 32, ng = hass__qgroups(in);
    int has_min = t == HASS_DTYPE_Q4_1 || t == HASS_DTYPE_Q5_1;
    for (int64_t g = 0; g < ng; g++) {
        hass__wgroup *w = (hass__wgroup *)((uint8_t *)dst + (size_t)g * ws);
        __m256i n[8];
        for (int i = 0; i < 8; i++) {
            int64_t b = 8 * g + i;
            if (b < nb) {
                const uint8_t *blk = row + (size_t)b * bb;
                n[i] = block32(t, blk, sgn);
                w->a.f[i] = f16_at(blk);
                w->b.f[i] = has_min ? f16_at(blk + 2) : 0.f;
            } else {
                n[i] = _mm256_setzero_si256();
                w->a.f[i] = w->b.f[i] = 0.f;
            }
        }
        transpose_store(w->u, n);
        if (sgn)
            for (int k = 0; k < 8; k++)
                _mm256_storeu_si256(
                    (__m256i *)((uint8_t *)(w + 1) + 32 * k),
                    _mm256_abs_epi8(_mm256_loadu_si256((const __m256i *)(w->u + 32 * k))));
    }
}

static void prep_k(hass__wgroup *dst, const uint8_t *row, hass_dtype t, int64_t in) {
    size_t bb = hass_dtype_bytes(t, 256);
    for (int64_t g = 0; g < in / 256; g++) {
        const uint8_t *b = row + (size_t)g * bb;
        hass__wgroup *w = dst + g;
        __m256i n[8];
        if (t == HASS_DTYPE_Q6_K) {
            const __m256i m3 = _mm256_set1_epi8(3);
            for (int h = 0; h < 2; h++) {
                __m256i l0 = _mm256_loadu_si256((const __m256i *)(b + 64 * h));
                __m256i l1 = _mm256_loadu_si256((const __m256i *)(b + 64 * h + 32));
                __m256i qh = _mm256_loadu_si256((const __m256i *)(b + 128 + 32 * h));
                __m256i h0 = _mm256_and_si256(qh, m3);
                __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2), m3);
                __m256i h2 = _mm256_and_si256(_mm256_srli_epi16(qh, 4), m3);
                __m256i h3 = _mm256_and_si256(_mm256_srli_epi16(qh, 6), m3);
                n[4 * h] = _mm256_or_si256(lo_nibbles(l0), _mm256_slli_epi16(h0, 4));
                n[4 * h + 1] = _mm256_or_si256(lo_nibbles(l1), _mm256_slli_epi16(h1, 4));
                n[4 * h + 2] = _mm256_or_si256(hi_nibbles(l0), _mm256_slli_epi16(h2, 4));
                n[4 * h + 3] = _mm256_or_si256(hi_nibbles(l1), _mm256_slli_epi16(h3, 4));
            }
            const int8_t *sc = (const int8_t *)(b + 192);
            for (int i = 0; i < 8; i++) {
                w->a.i[i] = sc[2 * i];
                w->b.i[i] = sc[2 * i + 1];
            }
            memset(w->c, 0, sizeof w->c);
            w->c[0] = f16_at(b + 208);
        } else {
            int q5 = t == HASS_DTYPE_Q5_K;
            const uint8_t *ql = b + (q5 ? 48 : 16);
            __m256i qh =
                q5 ? _mm256_loadu_si256((const __m256i *)(b + 16)) : _mm256_setzero_si256();
            const __m256i one = _mm256_set1_epi8(1);
            for (int c = 0; c < 4; c++) {
                __m256i v = _mm256_loadu_si256((const __m256i *)(ql + 32 * c));
                n[2 * c] = lo_nibbles(v);
                n[2 * c + 1] = hi_nibbles(v);
                if (q5) {
                    __m256i b0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), one);
                    __m256i b1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), one);
                    n[2 * c] = _mm256_or_si256(n[2 * c], _mm256_slli_epi16(b0, 4));
                    n[2 * c + 1] = _mm256_or_si256(n[2 * c + 1], _mm256_slli_epi16(b1, 4));
                }
            }
            uint8_t sc[8], m[8];
            hass_ggml_scale_min(b + 4, sc, m);
            for (int i = 0; i < 8; i++) {
                w->a.i[i] = sc[i];
                w->b.i[i] = m[i];
            }
            memset(w->c, 0, sizeof w->c);
            w->c[0] = f16_at(b);
            w->c[1] = f16_at(b + 2);
        }
        transpose_store(w->u, n);
    }
}

void hass__qprep_avx2(hass__wgroup *dst, const uint8_t *row, hass_dtype wt, int64_t in,
                      int signed_q8) {
    if (hass__qkind_k(wt))
        prep_k(dst, row, wt, in);
    else
        prep32(dst, row, wt, in, signed_q8 && wt == HASS_DTYPE_Q8_0);
}

/* ---- the AVX2 kernel ---- */
static inline __m256i qdot_avx2(__m256i acc, __m256i u, __m256i a) {
    __m256i p = _mm256_maddubs_epi16(u, a);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
#define QDOT(acc, u, a) qdot_avx2((acc), (u), (a))
#define QSIGNED 1
#define RQ 2
#define CQ 3
#define QROWS hass__qrows_avx2
#include "ops/quant_kern.h"
