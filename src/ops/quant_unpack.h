/*
 * quant_unpack.h — the weight side of the quantized product (quant.h), inlined into every SIMD
 * kernel file: a group of a weight row (8 blocks of 32, or a K super-block's 8 sub-blocks)
 * unpacked to one byte per value in element order ("natural"), its scales as two float vectors,
 * and the 8 x 8 dword transpose into the group layout. For files compiled with AVX2 or more.
 */
#ifndef HASS_OPS_QUANT_UNPACK_H
#define HASS_OPS_QUANT_UNPACK_H

#include "formats/formats.h"
#include "ops/quant.h"

#include <immintrin.h>
#include <string.h>

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
static inline __attribute__((always_inline)) void transpose8(__m256i v[8], const __m256i n[8]) {
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
        v[k] = _mm256_permute2x128_si256(s[k], s[k + 4], 0x20);
        v[k + 4] = _mm256_permute2x128_si256(s[k], s[k + 4], 0x31);
    }
}

static inline void transpose_store(uint8_t *u, const __m256i n[8]) {
    __m256i v[8];
    transpose8(v, n);
    for (int k = 0; k < 8; k++)
        _mm256_storeu_si256((__m256i *)(u + 32 * k), v[k]);
}

/* 8 f16 values (blocks past the row end as 0) as a float vector. */
static inline __m256 f16x8(const uint16_t h[8]) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h));
}

static inline uint16_t u16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return h;
}

#define AINLINE static inline __attribute__((always_inline))

/* Block b's 32 integers in element order (unsigned; Q8_0 signed, or + 128 when !sgn). */
AINLINE __m256i block32(hass_dtype t, const uint8_t *b, int sgn) {
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

/* 8 f16 at p, p + stride, ... as floats. */
AINLINE __m256 f16_strided(const uint8_t *p, size_t stride) {
    __m128i h = _mm_cvtsi32_si128(u16_at(p));
    h = _mm_insert_epi16(h, u16_at(p + stride), 1);
    h = _mm_insert_epi16(h, u16_at(p + 2 * stride), 2);
    h = _mm_insert_epi16(h, u16_at(p + 3 * stride), 3);
    h = _mm_insert_epi16(h, u16_at(p + 4 * stride), 4);
    h = _mm_insert_epi16(h, u16_at(p + 5 * stride), 5);
    h = _mm_insert_epi16(h, u16_at(p + 6 * stride), 6);
    h = _mm_insert_epi16(h, u16_at(p + 7 * stride), 7);
    return _mm256_cvtph_ps(h);
}

/* Group g of a 32-type row: the 8 blocks' integers in element order (zeros past the row end)
 * and their scales (a = d, b = m for Q4_1/Q5_1, else 0). A whole group takes the straight
 * path with the type's code inlined; the last, partial one goes block by block. */
AINLINE void natural32_t(const hass_dtype t, __m256i n[8], __m256 *a, __m256 *m, const uint8_t *row,
                         int64_t in, int64_t g, int sgn) {
    const size_t bb = t == HASS_DTYPE_Q8_0   ? 34
                      : t == HASS_DTYPE_Q4_0 ? 18
                      : t == HASS_DTYPE_Q4_1 ? 20
                      : t == HASS_DTYPE_Q5_0 ? 22
                                             : 24;
    const int has_min = t == HASS_DTYPE_Q4_1 || t == HASS_DTYPE_Q5_1;
    int64_t nb = in / 32;
    const uint8_t *blk = row + (size_t)(8 * g) * bb;
    if (8 * g + 8 <= nb) {
        for (int i = 0; i < 8; i++)
            n[i] = block32(t, blk + (size_t)i * bb, sgn);
        *a = f16_strided(blk, bb);
        *m = has_min ? f16_strided(blk + 2, bb) : _mm256_setzero_ps();
        return;
    }
    uint16_t dh[8], mh[8];
    for (int i = 0; i < 8; i++) {
        if (8 * g + i < nb) {
            n[i] = block32(t, blk + (size_t)i * bb, sgn);
            dh[i] = u16_at(blk + (size_t)i * bb);
            mh[i] = has_min ? u16_at(blk + (size_t)i * bb + 2) : 0;
        } else {
            n[i] = _mm256_setzero_si256();
            dh[i] = mh[i] = 0;
        }
    }
    *a = f16x8(dh);
    *m = f16x8(mh);
}

static inline void natural32(__m256i n[8], __m256 *a, __m256 *m, const uint8_t *row, hass_dtype t,
                             int64_t in, int64_t g, int sgn) {
    switch (t) {
    case HASS_DTYPE_Q8_0:
        natural32_t(HASS_DTYPE_Q8_0, n, a, m, row, in, g, sgn);
        break;
    case HASS_DTYPE_Q4_0:
        natural32_t(HASS_DTYPE_Q4_0, n, a, m, row, in, g, sgn);
        break;
    case HASS_DTYPE_Q4_1:
        natural32_t(HASS_DTYPE_Q4_1, n, a, m, row, in, g, sgn);
        break;
    case HASS_DTYPE_Q5_0:
        natural32_t(HASS_DTYPE_Q5_0, n, a, m, row, in, g, sgn);
        break;
    default:
        natural32_t(HASS_DTYPE_Q5_1, n, a, m, row, in, g, sgn);
    }
}

static inline __m256 bcast_f16(const uint8_t *p) {
    return _mm256_set1_ps(_cvtsh_ss(u16_at(p)));
}

/* Super-block g of a K-type row: its 8 sub-blocks' integers in element order and the scales of
 * quant.h (a = d * sc_i, b = -(dmin * m_i); Q6_K: a, b = d * sc of the two halves). */
static inline void natural_k(__m256i n[8], __m256 *a, __m256 *bv, const uint8_t *row, hass_dtype t,
                             int64_t g) {
    const uint8_t *b = row + (size_t)g * hass_dtype_bytes(t, 256);
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
        /* int8 scales: even ones (first 16 of each sub-block) and odd ones */
        __m128i sc = _mm_loadu_si128((const __m128i *)(b + 192));
        __m128i ev = _mm_shuffle_epi8(
            sc, _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
        __m256 d = bcast_f16(b + 208);
        *a = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(ev)));
        *bv = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(ev, 8))));
    } else {
        int q5 = t == HASS_DTYPE_Q5_K;
        const uint8_t *ql = b + (q5 ? 48 : 16);
        __m256i qh = q5 ? _mm256_loadu_si256((const __m256i *)(b + 16)) : _mm256_setzero_si256();
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
        /* the 8 6-bit scales and mins (hass_ggml_scale_min), 32 bits at a time */
        uint32_t u[4];
        memcpy(u, b + 4, 12);
        const uint32_t k1 = 0x3f3f3f3f, k2 = 0x0f0f0f0f, k3 = 0x03030303;
        u[3] = ((u[2] >> 4) & k2) | (((u[1] >> 6) & k3) << 4);
        uint32_t m03 = u[1] & k1;
        u[1] = (u[2] & k2) | (((u[0] >> 6) & k3) << 4);
        u[2] = m03;
        u[0] &= k1;
        __m128i sm = _mm_loadu_si128((const __m128i *)u); /* sc[0..7], m[0..7] */
        __m256 sc = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm));
        __m256 mn = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(sm, 8)));
        *a = _mm256_mul_ps(bcast_f16(b), sc);
        *bv = _mm256_xor_ps(_mm256_mul_ps(bcast_f16(b + 2), mn), _mm256_set1_ps(-0.0f));
    }
}

static inline void natural(__m256i n[8], __m256 *a, __m256 *b, const uint8_t *row, hass_dtype wt,
                           int64_t in, int64_t g, int sgn) {
    if (hass__qkind_k(wt))
        natural_k(n, a, b, row, wt, g);
    else
        natural32(n, a, b, row, wt, in, g, sgn && wt == HASS_DTYPE_Q8_0);
}

static inline void qprep_group(hass__wgroup *dst, const uint8_t *row, hass_dtype wt, int64_t in,
                               int64_t g, int signed_q8) {
    __m256i n[8];
    __m256 a, b;
    natural(n, &a, &b, row, wt, in, g, signed_q8);
    _mm256_storeu_ps(dst->a, a);
    _mm256_storeu_ps(dst->b, b);
    transpose_store(dst->u, n);
    if (signed_q8 && wt == HASS_DTYPE_Q8_0)
        for (int k = 0; k < 8; k++)
            _mm256_storeu_si256(
                (__m256i *)((uint8_t *)(dst + 1) + 32 * k),
                _mm256_abs_epi8(_mm256_loadu_si256((const __m256i *)(dst->u + 32 * k))));
}

static inline void qnat_group(uint8_t *dst, size_t ld, float *a, float *b, const uint8_t *row,
                              hass_dtype wt, int64_t in, int64_t g) {
    __m256i n[8];
    __m256 va, vb;
    natural(n, &va, &vb, row, wt, in, g, 1);
    for (int i = 0; i < 8; i++)
        _mm256_storeu_si256((__m256i *)(dst + (size_t)i * ld), n[i]);
    _mm256_storeu_ps(a, va);
    _mm256_storeu_ps(b, vb);
}

#endif
