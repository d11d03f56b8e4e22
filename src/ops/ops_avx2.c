/*
 * ops_avx2.c — AVX2+FMA(+F16C) kernels: the blocked matrix product and the small vector
 * helpers attention and rmsnorm use (the code shared with ops_avx512.c is in ops_blocked.h,
 * instantiated here over 8 lanes). Compiled with -mavx2 -mfma -mf16c (Makefile), called only
 * when hass_cpu_features() reports AVX2.
 *
 * The matrix product register-blocks RB rows of x against CB rows of W: each W vector is loaded
 * (and converted from bf16/f16) once per x-row block and feeds RB FMAs, and the CB rows of
 * W stay in L1 while all n rows of x pass over them, so the weight stream is read from memory
 * once per call. Every output element still has its own 8-lane accumulator fed in k order (the
 * in % 8 tail as one more step, zero-padded by masked loads), then the fixed horizontal sum of
 * hsum8: the arithmetic of one element does not depend on n, on the block it fell in, or on the
 * thread that computed it.
 */
#include "ops/ops.h"
#include "ops/simd_x86.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define RB 4 /* x rows per register block */
#define CB 3 /* W rows per register block (RB*CB accumulators + CB weights + 1 x = 16 ymm) */

/* The mask of lanes [0, m), 0 <= m <= 8, for vmaskmovps. */
static ALWAYS_INLINE __m256i lanes8(int64_t m) {
    static const int32_t tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(tab + 8 - m));
}

/* hsum8 of 8 accumulators at once, transposed: lane p of the result is hsum8(a[2 (p % 4) + p /
 * 4]), computed with exactly hsum8's additions: 256 -> 128 bits (lo + hi), then (t0 + t1) +
 * (t2 + t3). So 8 dots end in one register in order when accumulator i holds dot K8(i). */
#define K8(i) (4 * ((i) % 2) + (i) / 2)

static ALWAYS_INLINE __m256 hsum8x8(const __m256 *a) {
    __m256 X[4], Z[2];
    UNROLL for (int m = 0; m < 4; m++) {
        X[m] = _mm256_add_ps(_mm256_permute2f128_ps(a[2 * m], a[2 * m + 1], 0x20),
                             _mm256_permute2f128_ps(a[2 * m], a[2 * m + 1], 0x31));
    }
    UNROLL for (int m = 0; m < 2; m++) {
        Z[m] = _mm256_add_ps(_mm256_shuffle_ps(X[2 * m], X[2 * m + 1], 0x88),
                             _mm256_shuffle_ps(X[2 * m], X[2 * m + 1], 0xDD));
    }
    return _mm256_add_ps(_mm256_shuffle_ps(Z[0], Z[1], 0x88), _mm256_shuffle_ps(Z[0], Z[1], 0xDD));
}

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

/* The m < 8 weights of row `w` from element k, zero in lanes m..7 (nothing past element k + m
 * is read: 16-bit weights through a zeroed copy, AVX2 has no 16-bit masked load). */
static ALWAYS_INLINE __m256 wload_part(hass_dtype dt, const uint8_t *w, int64_t k, int64_t m) {
    if (dt == HASS_DTYPE_F32)
        return _mm256_maskload_ps((const float *)w + k, lanes8(m));
    uint16_t h[8] = {0};
    memcpy(h, w + 2 * k, (size_t)m * 2);
    __m128i v = _mm_loadu_si128((const __m128i *)h);
    if (dt == HASS_DTYPE_F16)
        return _mm256_cvtph_ps(v);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

/* ---- the vector width of the code shared with ops_avx512.c (ops_blocked.h) ---- */
#define VEC __m256
#define VLANES 8
#define VZERO() _mm256_setzero_ps()
#define VLOAD(p) _mm256_loadu_ps(p)
#define VLOADM(p, m) _mm256_maskload_ps((p), lanes8(m))
#define VFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define VHSUM(v) hsum8(v)
#define VHSUMN(a) hsum8x8(a) /* lane p = row p if a[i] holds row VROW(i) */
#define VROW(i) K8(i)
#define VSTOREM(p, m, v) _mm256_maskstore_ps((p), lanes8(m), (v))
#define VSTORE(p, v) _mm256_storeu_ps((p), (v))
#define DOTSN(q, k, off, Dh) dots_rows((q), (k), (off), (Dh))

/* The weighted average (ops.h) of G heads at once, as units (head g, vector u of its Dh) taken
 * up to 8 at a time: each unit keeps its vector of o in a register over all keys, one FMA per
 * key in key order, and its own sum of p in the same order, so every element is computed exactly
 * as for one head alone while up to 8 independent chains hide the FMA latency. */
static ALWAYS_INLINE void wavg_units(const int U, int64_t u0, float *o, const float *p, int64_t ps,
                                     const float *v, const int64_t *voff, int64_t vs, int64_t nk,
                                     int64_t Dh) {
    int64_t nvh = (Dh + 7) / 8;
    const float *pu[8], *vu[8];
    __m256 acc[8];
    __m256i mk[8];
    float sum[8];
    UNROLL for (int u = 0; u < U; u++) {
        int64_t g = (u0 + u) / nvh, e = (u0 + u) % nvh * 8;
        pu[u] = p + g * ps;
        vu[u] = v + voff[g] + e;
        mk[u] = lanes8(Dh - e < 8 ? Dh - e : 8);
        acc[u] = _mm256_setzero_ps();
        sum[u] = 0;
    }
    /* Branch-free skipping of p == 0: v is then not read (its lanes load as 0), so the FMA adds
     * an exact +0 (a and sum are never -0: they start at +0 and p >= 0), which leaves them as
     * they were: the same bits as not visiting the key. */
    for (int64_t j = 0; j < nk; j++) {
        UNROLL for (int u = 0; u < U; u++) {
            float pj = pu[u][j];
            __m256 pv = _mm256_set1_ps(pj);
            __m256i k = _mm256_and_si256(
                mk[u], _mm256_castps_si256(_mm256_cmp_ps(pv, _mm256_setzero_ps(), _CMP_NEQ_UQ)));
            acc[u] = _mm256_fmadd_ps(pv, _mm256_maskload_ps(vu[u] + j * vs, k), acc[u]);
            sum[u] += pj;
        }
    }
    UNROLL for (int u = 0; u < U; u++) {
        int64_t g = (u0 + u) / nvh, e = (u0 + u) % nvh * 8;
        _mm256_maskstore_ps(o + g * Dh + e, mk[u],
                            _mm256_mul_ps(acc[u], _mm256_set1_ps(1.0f / sum[u])));
    }
}

#include "ops/ops_blocked.h"

void hass__matmul_rows_avx2(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                            const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    matmul_rows(y, ys, x, n, in, W, wt, o0, o1);
}

float hass__dot_avx2(const float *a, const float *b, int64_t n) {
    return dot1(a, b, n);
}

void hass__dots_avx2(float *s, const float *q, const float *k, int64_t ks, int64_t nk, int64_t Dh) {
    dots_any(s, q, k, ks, nk, Dh);
}

void hass__wavg_avx2(float *o, const float *p, int64_t ps, const float *v, const int64_t *voff,
                     int64_t vs, int64_t nk, int64_t Dh, int G) {
    wavg_any(o, p, ps, v, voff, vs, nk, Dh, G);
}

/* x[i] *= scale; the largest result. */
float hass__scale_max_avx2(float *x, int64_t n, float scale) {
    __m256 s = _mm256_set1_ps(scale), mx = _mm256_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(x + i), s);
        _mm256_storeu_ps(x + i, t);
        mx = _mm256_max_ps(mx, t);
    }
    if (i < n) {
        __m256i m = lanes8(n - i);
        __m256 t = _mm256_mul_ps(_mm256_maskload_ps(x + i, m), s);
        _mm256_maskstore_ps(x + i, m, t);
        mx = _mm256_max_ps(mx,
                           _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), t, _mm256_castsi256_ps(m)));
    }
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* exp by range reduction x = n ln2 + r and a degree-6 polynomial on r (the Cephes constants);
 * about 1 ulp on [-88, 88]. Deterministic and elementwise, so batch invariance holds. */
static ALWAYS_INLINE __m256 exp8(__m256 x0) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.0f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), half = _mm256_set1_ps(0.5f);
    const __m256 c1 = _mm256_set1_ps(0.693359375f), c2 = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 p0 = _mm256_set1_ps(1.9875691500e-4f), p1 = _mm256_set1_ps(1.3981999507e-3f);
    const __m256 p2 = _mm256_set1_ps(8.3334519073e-3f), p3 = _mm256_set1_ps(4.1665795894e-2f);
    const __m256 p4 = _mm256_set1_ps(1.6666665459e-1f), p5 = _mm256_set1_ps(5.0000001201e-1f);
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
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
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_blendv_ps(y, zero, under);
}

void hass__exp_avx2(float *x, int64_t n, float sub) {
    __m256 s = _mm256_set1_ps(sub);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), s)));
    if (i < n) /* the tail through the same vector code, masked */
        _mm256_maskstore_ps(x + i, lanes8(n - i), exp8(_mm256_sub_ps(VLOADM(x + i, n - i), s)));
}
