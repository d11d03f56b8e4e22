/*
 * ops_avx2.c — AVX2+FMA(+F16C) kernels: the blocked matrix product and the small vector
 * helpers attention and rmsnorm use. Compiled with -mavx2 -mfma -mf16c (Makefile), called only
 * when hass_cpu_features() reports AVX2.
 *
 * The matrix product register-blocks RB rows of x against CB rows of W: each W vector is loaded
 * (and converted from bf16/f16) once per x-row block and feeds RB FMAs, and the CB rows of
 * W stay in L1 while all n rows of x pass over them, so the weight stream is read from memory
 * once per call. Every output element still has its own 8-lane accumulator fed in k order, the
 * fixed horizontal sum of hsum8, then a scalar FMA per tail element: the arithmetic of one
 * element does not depend on n, on the block it fell in, or on the thread that computed it.
 */
#include "ops/ops.h"
#include "ops/simd_x86.h"

#include <immintrin.h>
#include <string.h>

#define RB 4 /* x rows per register block */
#define CB 3 /* W rows per register block (RB*CB accumulators + CB weights + 1 x = 16 ymm) */

/* 8 weights of row `w` starting at element k (k % 8 == 0), as exact f32. */
static ALWAYS_INLINE __m256 wload(hass_dtype dt, const uint8_t *w, int64_t k) {
    switch (dt) {
    case HASS_DTYPE_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)(w + 2 * k));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case HASS_DTYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * k)));
    default:
        return _mm256_loadu_ps((const float *)w + k);
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

/* ---- the blocked product; below this line ops_avx512.c has the same code ---- */
#define VEC __m256
#define VLANES 8
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VHSUM(v) hsum8(v)

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
void hass__matmul_rows_avx2(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
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
    __m256 acc = _mm256_setzero_ps();
    int64_t nv = n & ~(int64_t)7;
    for (int64_t k = 0; k < nv; k += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    float s = hsum8(acc);
    for (int64_t k = nv; k < n; k++)
        s = fma1(a[k], b[k], s);
    return s;
}

float hass__dot_avx2(const float *a, const float *b, int64_t n) {
    return dot1(a, b, n);
}

/* Four keys at a time (four independent FMA chains); each key's dot is still exactly dot1. */
void hass__dots_avx2(float *s, const float *q, const float *k, int64_t ks, int64_t nk, int64_t Dh) {
    int64_t nv = Dh & ~(int64_t)7, j = 0;
    for (; j + 4 <= nk; j += 4) {
        const float *k0 = k + j * ks, *k1 = k0 + ks, *k2 = k1 + ks, *k3 = k2 + ks;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t e = 0; e < nv; e += 8) {
            __m256 qv = _mm256_loadu_ps(q + e);
            a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + e), a0);
            a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k1 + e), a1);
            a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k2 + e), a2);
            a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k3 + e), a3);
        }
        float r0 = hsum8(a0), r1 = hsum8(a1), r2 = hsum8(a2), r3 = hsum8(a3);
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
void hass__axpys_avx2(float *o, const float *p, const float *v, int64_t vs, int64_t nk,
                      int64_t Dh) {
    int64_t e = 0;
    for (; e + 32 <= Dh; e += 32) {
        __m256 o0 = _mm256_loadu_ps(o + e), o1 = _mm256_loadu_ps(o + e + 8);
        __m256 o2 = _mm256_loadu_ps(o + e + 16), o3 = _mm256_loadu_ps(o + e + 24);
        for (int64_t j = 0; j < nk; j++) {
            if (p[j] == 0.0f)
                continue;
            __m256 a = _mm256_set1_ps(p[j]);
            const float *vj = v + j * vs + e;
            o0 = _mm256_fmadd_ps(a, _mm256_loadu_ps(vj), o0);
            o1 = _mm256_fmadd_ps(a, _mm256_loadu_ps(vj + 8), o1);
            o2 = _mm256_fmadd_ps(a, _mm256_loadu_ps(vj + 16), o2);
            o3 = _mm256_fmadd_ps(a, _mm256_loadu_ps(vj + 24), o3);
        }
        _mm256_storeu_ps(o + e, o0);
        _mm256_storeu_ps(o + e + 8, o1);
        _mm256_storeu_ps(o + e + 16, o2);
        _mm256_storeu_ps(o + e + 24, o3);
    }
    for (; e + 8 <= Dh; e += 8) {
        __m256 o0 = _mm256_loadu_ps(o + e);
        for (int64_t j = 0; j < nk; j++)
            if (p[j] != 0.0f)
                o0 = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * vs + e), o0);
        _mm256_storeu_ps(o + e, o0);
    }
    for (; e < Dh; e++) {
        float t = o[e];
        for (int64_t j = 0; j < nk; j++)
            if (p[j] != 0.0f)
                t = fma1(p[j], v[j * vs + e], t);
        o[e] = t;
    }
}

/* exp by range reduction x = n ln2 + r and a degree-6 polynomial on r (the Cephes constants);
 * about 1 ulp on [-88, 88]. Deterministic and elementwise, so batch invariance holds. */
void hass__exp_avx2(float *x, int64_t n) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.0f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), half = _mm256_set1_ps(0.5f);
    const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 p0 = _mm256_set1_ps(1.9875691500e-4f), p1 = _mm256_set1_ps(1.3981999507e-3f);
    const __m256 p2 = _mm256_set1_ps(8.3334519073e-3f), p3 = _mm256_set1_ps(4.1665795894e-2f);
    const __m256 p4 = _mm256_set1_ps(1.6666665459e-1f), p5 = _mm256_set1_ps(5.0000001201e-1f);
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x0 = _mm256_loadu_ps(x + i);
        __m256 under = _mm256_cmp_ps(x0, lo, _CMP_LT_OQ); /* also -inf */
        __m256 v = _mm256_max_ps(_mm256_min_ps(x0, hi), lo);
        __m256 fx = _mm256_floor_ps(_mm256_fmadd_ps(v, log2e, half));
        v = _mm256_fnmadd_ps(fx, c1, v);
        v = _mm256_fnmadd_ps(fx, c2, v);
        __m256 z = _mm256_mul_ps(v, v);
        __m256 y = _mm256_fmadd_ps(p0, v, p1);
        y = _mm256_fmadd_ps(y, v, p2);
        y = _mm256_fmadd_ps(y, v, p3);
        y = _mm256_fmadd_ps(y, v, p4);
        y = _mm256_fmadd_ps(y, v, p5);
        y = _mm256_fmadd_ps(y, z, _mm256_add_ps(v, one));
        __m256i e = _mm256_slli_epi32(
            _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
        y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
        _mm256_storeu_ps(x + i, _mm256_blendv_ps(y, zero, under));
    }
    if (i < n) { /* the tail through the same vector code */
        float t[8];
        int64_t k = n - i;
        for (int j = 0; j < 8; j++)
            t[j] = j < k ? x[i + j] : 0.0f;
        hass__exp_avx2(t, 8);
        memcpy(x + i, t, (size_t)k * sizeof(float));
    }
}
