/*
 * ops_avx512.c — AVX-512 (F/BW/VL/DQ, optionally BF16) twin of ops_avx2.c: the same register
 * blocking with 16-lane accumulators, and for bf16 weights on CPUs with AVX512_BF16 the
 * vdpbf16ps dot (x rounded to bf16 on the fly, pairs summed by the instruction). Compiled with
 * the AVX-512 flags (Makefile) and called only when hass_cpu_features() reports them.
 * Structurally identical to the AVX2 file on purpose: the same blocking, the same per-element
 * order (one 16-lane accumulator per element, a fixed horizontal sum, then a scalar tail).
 */
#include "ops/ops.h"

#include <string.h>
#if defined(HASS_AVX512_EMU)
#include "ops/avx512_emu.h"
#else
#include <immintrin.h>
#endif
#include "ops/simd_x86.h"

#define RB 4 /* x rows per register block */
#define CB 3 /* W rows per register block (RB*CB accumulators + CB weights + 1 x) */

/* ((a0+a4) + (a1+a5)) + ((a2+a6) + (a3+a7)) after folding the upper 256 bits onto the lower. */
static ALWAYS_INLINE float hsum16(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

/* 16 weights of row `w` starting at element k (k % 16 == 0), as exact f32. */
static ALWAYS_INLINE __m512 wload(hass_dtype dt, const uint8_t *w, int64_t k) {
    switch (dt) {
    case HASS_DTYPE_BF16: {
        __m256i h = _mm256_loadu_si256((const __m256i *)(w + 2 * k));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case HASS_DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(w + 2 * k)));
    default:
        return _mm512_loadu_ps((const float *)w + k);
    }
}

/* One weight (tail elements). */
static ALWAYS_INLINE float wscalar(hass_dtype dt, const uint8_t *w, int64_t k) {
    uint16_t h;
    switch (dt) {
    case HASS_DTYPE_BF16:
        memcpy(&h, w + 2 * k, 2);
        return hass_bf16_to_f32(h);
    case HASS_DTYPE_F16:
        memcpy(&h, w + 2 * k, 2);
        return _cvtsh_ss(h);
    default: {
        float f;
        memcpy(&f, w + 4 * k, 4);
        return f;
    }
    }
}

/* ---- the blocked product; the same code as ops_avx2.c below this line ---- */
#define VEC __m512
#define VLANES 16
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VHSUM(v) hsum16(v)

#define C1 6 /* W rows per block when n == 1: six independent FMA chains (8 spill ymm) */
#define CMAX (C1 > CB ? C1 : CB)

/* The paced prefetch of the next W block (see kern): the C*rb bytes after this block, up to
 * pf_lim (nothing when pf_lim is NULL or already passed), `step` bytes more per k step. */
typedef struct {
    const char *at;
    size_t done, len, step, goal;
} pacer;

static ALWAYS_INLINE pacer pacer_make(const uint8_t *w, int C, size_t rb, int64_t in, int64_t kstep,
                                      const uint8_t *pf_lim) {
    const uint8_t *at = w + (size_t)C * rb;
    size_t left = pf_lim && pf_lim > at ? (size_t)(pf_lim - at) : 0;
    pacer p = {(const char *)at, 0, left < (size_t)C * rb ? left : (size_t)C * rb,
               ((size_t)C * rb * (size_t)kstep + (size_t)in - 1) / (size_t)in, 0};
    return p;
}

static ALWAYS_INLINE void pacer_advance(pacer *p) {
    p->goal += p->step;
    for (; p->done < p->goal && p->done < p->len; p->done += 64)
        _mm_prefetch(p->at + p->done, _MM_HINT_T0);
}

/* The R x C register block: y[r*ys + c] = x[r] . w[c] for r < R, c < C, each element as its
 * own VLANES-lane accumulator over k, the fixed horizontal sum, then the tail in order. */
static ALWAYS_INLINE void kern(const int R, const int C, hass_dtype dt, float *y, int64_t ys,
                               const float *x, int64_t in, const uint8_t *w, size_t rb,
                               const uint8_t *pf_lim) {
    VEC acc[RB][CMAX];
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < C; c++) {
            acc[r][c] = VZERO();
        }
    }
    int64_t inv = in & ~(int64_t)(VLANES - 1);
    /* Unless pf_lim is NULL, prefetch the next block of W (the C*rb bytes after this one, up to
     * pf_lim) at the pace this block is consumed: blocks are short streams (C rows of a few KiB),
     * too short for the hardware prefetcher to ramp up on each. */
    pacer pf = pacer_make(w, C, rb, in, VLANES, pf_lim);
    for (int64_t k = 0; k < inv; k += VLANES) {
        VEC wv[CMAX];
        pacer_advance(&pf);
        UNROLL for (int c = 0; c < C; c++) {
            wv[c] = wload(dt, w + (size_t)c * rb, k);
        }
        UNROLL for (int r = 0; r < R; r++) {
            VEC xv = VLOAD(x + r * in + k);
            UNROLL for (int c = 0; c < C; c++) {
                acc[r][c] = VFMA(xv, wv[c], acc[r][c]);
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < C; c++) {
            float s = VHSUM(acc[r][c]);
            for (int64_t t = inv; t < in; t++)
                s = fma1(x[r * in + t], wscalar(dt, w + (size_t)c * rb, t), s);
            y[r * ys + c] = s;
        }
    }
}

#define KCASE(R, C)                                                                                \
    case (R)*16 + (C):                                                                             \
        kern(R, C, dt, y, ys, x, in, w, rb, pf_lim);                                               \
        break

static ALWAYS_INLINE void block(int R, int C, hass_dtype dt, float *y, int64_t ys, const float *x,
                                int64_t in, const uint8_t *w, size_t rb, const uint8_t *pf_lim) {
    switch (R * 16 + C) {
        KCASE(1, 1);
        KCASE(1, 2);
        KCASE(1, 3);
        KCASE(1, 4);
        KCASE(1, 5);
        KCASE(1, 6);
        KCASE(2, 1);
        KCASE(2, 2);
        KCASE(2, 3);
        KCASE(3, 1);
        KCASE(3, 2);
        KCASE(3, 3);
        KCASE(4, 1);
        KCASE(4, 2);
        KCASE(4, 3);
    default:
        HASS_ASSERT(!"matmul block shape");
    }
}

/* W blocks of CB rows (C1 when n == 1) outside, x blocks of RB rows inside: a W block is read
 * from memory once and stays in L1 while every x row passes over it. (Tiling k as well, with
 * the lane sums parked between tiles, measured ~10% slower at n = 8..64: the x rows stream
 * from L2 fast enough.) */
static ALWAYS_INLINE void rows_dt(hass_dtype dt, float *y, int64_t ys, const float *x, int64_t n,
                                  int64_t in, const void *W, int64_t o0, int64_t o1) {
    size_t rb = hass_dtype_bytes(dt, (size_t)in);
    int cmax = n == 1 ? C1 : CB;
    /* Software prefetch of the next W block (see kern), measured single-threaded on 2048x768 /
     * 32000x768 streamed from memory: bf16 n = 1 4.9 -> 3.3 ms, bf16 n = 4 410 -> 205 us, f32
     * n = 4 600 -> 450 us, f32 n = 16 16.4 -> 13.6 ms; but f32 n = 1 300 -> 390 us (its 3 KiB+
     * rows are long enough for the hardware prefetcher), so not there. */
    const uint8_t *wend =
        dt != HASS_DTYPE_F32 || n > 1 ? (const uint8_t *)W + (size_t)o1 * rb : NULL;
    for (int64_t o = o0; o < o1; o += cmax) {
        int C = o1 - o < cmax ? (int)(o1 - o) : cmax;
        const uint8_t *w = (const uint8_t *)W + (size_t)o * rb;
        for (int64_t r = 0; r < n; r += RB) {
            int R = n - r < RB ? (int)(n - r) : RB;
            block(R, C, dt, y + r * ys + o, ys, x + r * in, in, w, rb, r == 0 ? wend : NULL);
        }
    }
}

static void rows_f32(float *y, int64_t ys, const float *x, int64_t n, int64_t in, const void *W,
                     int64_t o0, int64_t o1) {
    rows_dt(HASS_DTYPE_F32, y, ys, x, n, in, W, o0, o1);
}
static void rows_bf16(float *y, int64_t ys, const float *x, int64_t n, int64_t in, const void *W,
                      int64_t o0, int64_t o1) {
    rows_dt(HASS_DTYPE_BF16, y, ys, x, n, in, W, o0, o1);
}
static void rows_f16(float *y, int64_t ys, const float *x, int64_t n, int64_t in, const void *W,
                     int64_t o0, int64_t o1) {
    rows_dt(HASS_DTYPE_F16, y, ys, x, n, in, W, o0, o1);
}
void hass__matmul_rows_avx512(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                              const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    switch (wt) {
    case HASS_DTYPE_F32:
        rows_f32(y, ys, x, n, in, W, o0, o1);
        break;
    case HASS_DTYPE_BF16:
        rows_bf16(y, ys, x, n, in, W, o0, o1);
        break;
    case HASS_DTYPE_F16:
        rows_f16(y, ys, x, n, in, W, o0, o1);
        break;
    default:
        HASS_ASSERT(!"hass_matmul: unsupported weight dtype");
    }
}

/* The same element arithmetic as the matrix product, for one pair of vectors. */
static ALWAYS_INLINE float dot1(const float *a, const float *b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t nv = n & ~(int64_t)15;
    for (int64_t k = 0; k < nv; k += 16)
        acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
    float s = hsum16(acc);
    for (int64_t k = nv; k < n; k++)
        s = fma1(a[k], b[k], s);
    return s;
}

float hass__dot_avx512(const float *a, const float *b, int64_t n) {
    return dot1(a, b, n);
}

/* Four keys at a time (four independent FMA chains); each key's dot is still exactly dot1. */
void hass__dots_avx512(float *s, const float *q, const float *k, int64_t ks, int64_t nk,
                       int64_t Dh) {
    int64_t nv = Dh & ~(int64_t)15, j = 0;
    for (; j + 4 <= nk; j += 4) {
        const float *k0 = k + j * ks, *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t e = 0; e < nv; e += 16) {
            __m512 qv = _mm512_loadu_ps(q + e);
            a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + e), a0);
            a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k1 + e), a1);
            a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k2 + e), a2);
            a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k3 + e), a3);
        }
        float r0 = hsum16(a0), r1 = hsum16(a1), r2 = hsum16(a2), r3 = hsum16(a3);
        for (int64_t e = nv; e < Dh; e++) {
            r0 = fma1(q[e], k0[e], r0);
            r1 = fma1(q[e], k1[e], r1);
            r2 = fma1(q[e], k2[e], r2);
            r3 = fma1(q[e], k3[e], r3);
        }
        s[j] = r0, s[j + 1] = r1, s[j + 2] = r2, s[j + 3] = r3;
    }
    for (; j < nk; j++)
        s[j] = dot1(q, k + j * ks, Dh);
}

/* Four vectors of o stay in registers across all keys, then the next four: each element still
 * gets one FMA per key in key order. */
void hass__axpys_avx512(float *o, const float *p, const float *v, int64_t vs, int64_t nk,
                        int64_t Dh) {
    int64_t e = 0;
    for (; e + 64 <= Dh; e += 64) {
        __m512 o0 = _mm512_loadu_ps(o + e), o1 = _mm512_loadu_ps(o + e + 16);
        __m512 o2 = _mm512_loadu_ps(o + e + 32), o3 = _mm512_loadu_ps(o + e + 48);
        for (int64_t j = 0; j < nk; j++) {
            if (p[j] == 0.0f)
                continue;
            __m512 a = _mm512_set1_ps(p[j]);
            const float *vj = v + j * vs + e;
            o0 = _mm512_fmadd_ps(a, _mm512_loadu_ps(vj), o0);
            o1 = _mm512_fmadd_ps(a, _mm512_loadu_ps(vj + 16), o1);
            o2 = _mm512_fmadd_ps(a, _mm512_loadu_ps(vj + 32), o2);
            o3 = _mm512_fmadd_ps(a, _mm512_loadu_ps(vj + 48), o3);
        }
        _mm512_storeu_ps(o + e, o0);
        _mm512_storeu_ps(o + e + 16, o1);
        _mm512_storeu_ps(o + e + 32, o2);
        _mm512_storeu_ps(o + e + 48, o3);
    }
    for (; e + 16 <= Dh; e += 16) {
        __m512 o0 = _mm512_loadu_ps(o + e);
        for (int64_t j = 0; j < nk; j++)
            if (p[j] != 0.0f)
                o0 = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_loadu_ps(v + j * vs + e), o0);
        _mm512_storeu_ps(o + e, o0);
    }
    for (; e < Dh; e++) {
        float t = o[e];
        for (int64_t j = 0; j < nk; j++)
            if (p[j] != 0.0f)
                t = fma1(p[j], v[j * vs + e], t);
        o[e] = t;
    }
}

/* ---- bf16 weights with vdpbf16ps (AVX512_BF16): x rounded to bf16 (nearest even) on the fly,
 * 32 elements per step, lane i accumulating the products of pairs (2i, 2i+1) of the step; the
 * in % 32 tail adds bf16(x) * w by scalar FMA. Same blocking as kern above. */
static ALWAYS_INLINE __m512bh xload_bh(const float *x) {
    return _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + 16), _mm512_loadu_ps(x));
}

static ALWAYS_INLINE void kern_bh(const int R, const int C, float *y, int64_t ys, const float *x,
                                  int64_t in, const uint8_t *w, size_t rb, const uint8_t *pf_lim) {
    __m512 acc[RB][CMAX];
    UNROLL for (int r = 0; r < R; r++) UNROLL for (int c = 0; c < C; c++) acc[r][c] =
        _mm512_setzero_ps();
    int64_t in32 = in & ~(int64_t)31;
    pacer pf = pacer_make(w, C, rb, in, 32, pf_lim);
    for (int64_t k = 0; k < in32; k += 32) {
        pacer_advance(&pf);
        __m512bh wv[CMAX];
        UNROLL for (int c = 0; c < C; c++) wv[c] =
            (__m512bh)_mm512_loadu_si512((const void *)(w + (size_t)c * rb + 2 * k));
        UNROLL for (int r = 0; r < R; r++) {
            __m512bh xv = xload_bh(x + r * in + k);
            UNROLL for (int c = 0; c < C; c++) {
                acc[r][c] = _mm512_dpbf16_ps(acc[r][c], xv, wv[c]);
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < C; c++) {
            float s = hsum16(acc[r][c]);
            for (int64_t t = in32; t < in; t++)
                s = fma1(hass_bf16_to_f32(hass_f32_to_bf16(x[r * in + t])),
                         wscalar(HASS_DTYPE_BF16, w + (size_t)c * rb, t), s);
            y[r * ys + c] = s;
        }
    }
}

#define KCASE_BH(R, C)                                                                             \
    case (R)*16 + (C):                                                                             \
        kern_bh(R, C, y, ys, x, in, w, rb, pf_lim);                                                \
        break

static void block_bh(int R, int C, float *y, int64_t ys, const float *x, int64_t in,
                     const uint8_t *w, size_t rb, const uint8_t *pf_lim) {
    switch (R * 16 + C) {
        KCASE_BH(1, 1);
        KCASE_BH(1, 2);
        KCASE_BH(1, 3);
        KCASE_BH(1, 4);
        KCASE_BH(1, 5);
        KCASE_BH(1, 6);
        KCASE_BH(2, 1);
        KCASE_BH(2, 2);
        KCASE_BH(2, 3);
        KCASE_BH(3, 1);
        KCASE_BH(3, 2);
        KCASE_BH(3, 3);
        KCASE_BH(4, 1);
        KCASE_BH(4, 2);
        KCASE_BH(4, 3);
    default:
        HASS_ASSERT(!"matmul block shape");
    }
}

void hass__matmul_rows_avx512bf16(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                                  const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    if (wt != HASS_DTYPE_BF16) {
        hass__matmul_rows_avx512(y, ys, x, n, in, W, wt, o0, o1);
        return;
    }
    size_t rb = hass_dtype_bytes(wt, (size_t)in);
    int cmax = n == 1 ? C1 : CB;
    const uint8_t *wend = (const uint8_t *)W + (size_t)o1 * rb;
    for (int64_t o = o0; o < o1; o += cmax) {
        int C = o1 - o < cmax ? (int)(o1 - o) : cmax;
        const uint8_t *w = (const uint8_t *)W + (size_t)o * rb;
        for (int64_t r = 0; r < n; r += RB) {
            int R = n - r < RB ? (int)(n - r) : RB;
            block_bh(R, C, y + r * ys + o, ys, x + r * in, in, w, rb, r == 0 ? wend : NULL);
        }
    }
}
