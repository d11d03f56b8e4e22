/*
 * ops_avx512.c — AVX-512 (F/BW/VL/DQ, optionally BF16) twin of ops_avx2.c: the same register
 * blocking with 16-lane accumulators, and for bf16 weights on CPUs with AVX512_BF16 the
 * vdpbf16ps dot (x rounded to bf16 on the fly, pairs summed by the instruction). Compiled with
 * the AVX-512 flags (Makefile) and called only when hass_cpu_features() reports them.
 * The blocked product, the dots and the weighted average's dispatch are the AVX2 file's code
 * (ops_blocked.h) over 16 lanes: the same blocking, the same per-element order (one 16-lane
 * accumulator per element whose last step is zero-padded by masked loads, then a fixed
 * horizontal sum), so short and odd lengths stay vectorised. Here: the 16-lane helpers, 16 keys'
 * dots (two keys per register for head dims up to 8), the weighted average's units, exp.
 */
#include "ops/ops.h"

#include <math.h>
#include <string.h>
#if defined(HASS_AVX512_EMU)
#include "ops/avx512_emu.h"
#else
#include <immintrin.h>
#endif
#include "ops/simd_x86.h"

#define RB 4 /* x rows per register block */
/* W rows per register block: RB*CB accumulators + CB weights + 1 x = 31 of the 32 registers. Six
 * rather than three halves how often the x rows are re-read from L2 per weight row, which set the
 * slope of the cost curve past n = 8 (f32, one thread, CPU clock: bench/PERF.md). */
#define CB 6

/* ((a0+a4) + (a1+a5)) + ((a2+a6) + (a3+a7)) after folding the upper 256 bits onto the lower. */
static ALWAYS_INLINE float hsum16(__m512 v) {
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

/* hsum16 of 16 accumulators at once, transposed: lane p of the result is hsum16(a[T16(p)]),
 * T16(p) = 4 (p % 4) + p / 4 (its own inverse), computed with exactly hsum16's additions:
 * 512 -> 256 bits (lo + hi), 256 -> 128 (lo + hi), then (t0 + t1) + (t2 + t3). So 16 dots end
 * in one register in order when accumulator i holds dot T16(i). */
#define T16(p) (4 * ((p) % 4) + (p) / 4)

/* [a.lo256 + a.hi256 | b.lo256 + b.hi256] */
static ALWAYS_INLINE __m512 fold256(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x44), _mm512_shuffle_f32x4(a, b, 0xEE));
}

/* 128-bit lanes: [a0 + a1, a2 + a3, b0 + b1, b2 + b3] */
static ALWAYS_INLINE __m512 fold128(__m512 a, __m512 b) {
    return _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));
}

/* The same from the first fold on: X[m] holds accumulators 2m and 2m+1 folded to 256 bits. */
static ALWAYS_INLINE __m512 hsum16x16_folded(const __m512 *X) {
    __m512 Y[4], Z[2];
    UNROLL for (int m = 0; m < 4; m++) {
        Y[m] = fold128(X[2 * m], X[2 * m + 1]);
    }
    UNROLL for (int m = 0; m < 2; m++) {
        Z[m] = _mm512_add_ps(_mm512_shuffle_ps(Y[2 * m], Y[2 * m + 1], 0x88),
                             _mm512_shuffle_ps(Y[2 * m], Y[2 * m + 1], 0xDD));
    }
    return _mm512_add_ps(_mm512_shuffle_ps(Z[0], Z[1], 0x88), _mm512_shuffle_ps(Z[0], Z[1], 0xDD));
}

static ALWAYS_INLINE __m512 hsum16x16(const __m512 *a) {
    __m512 X[8];
    UNROLL for (int m = 0; m < 8; m++) {
        X[m] = fold256(a[2 * m], a[2 * m + 1]);
    }
    return hsum16x16_folded(X);
}

/* The mask of lanes [0, m), 0 <= m <= 16. */
static ALWAYS_INLINE __mmask16 lanes16(int64_t m) {
    return (__mmask16)((1u << m) - 1);
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

/* The m < 16 weights of row `w` from element k, zero in lanes m..15 (masked loads: nothing past
 * element k + m is read). */
static ALWAYS_INLINE __m512 wload_part(hass_dtype dt, const uint8_t *w, int64_t k, int64_t m) {
    switch (dt) {
    case HASS_DTYPE_BF16: {
        __m256i h = _mm256_maskz_loadu_epi16(lanes16(m), w + 2 * k);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case HASS_DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes16(m), w + 2 * k));
    default:
        return _mm512_maskz_loadu_ps(lanes16(m), (const float *)w + k);
    }
}

/* ---- the vector width of the code shared with ops_avx2.c (ops_blocked.h) ---- */
#define VEC __m512
#define VLANES 16
#define VZERO() _mm512_setzero_ps()
#define VLOAD(p) _mm512_loadu_ps(p)
#define VLOADM(p, m) _mm512_maskz_loadu_ps(lanes16(m), (p))
#define VFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define VHSUM(v) hsum16(v)
#define VHSUMN(a) hsum16x16(a) /* lane p = row p if a[i] holds row VROW(i) */
#define VROW(i) T16(i)
#define VSTOREM(p, m, v) _mm512_mask_storeu_ps((p), lanes16(m), (v))
#define VSTORE(p, v) _mm512_storeu_ps((p), (v))
#define DOTSN(q, k, off, Dh) dots16_any((q), (k), (off), (Dh))

/* The same for Dh <= 8, two keys per register: dot1's upper eight lanes would hold +0 (the
 * products are never -0 after adding +0), so its first fold is the identity and is skipped. */
static ALWAYS_INLINE __m512 dots16_short(const float *q, const float *k, const int64_t *off,
                                         int64_t Dh) {
    __mmask8 m = (__mmask8)((1u << Dh) - 1);
    __m256 qh = _mm256_maskz_loadu_ps(m, q);
    __m512 qv = _mm512_insertf32x8(_mm512_castps256_ps512(qh), qh, 1), X[8];
    UNROLL for (int i = 0; i < 8; i++) {
        __m256 lo = _mm256_maskz_loadu_ps(m, k + off[2 * i]);
        __m512 kv = _mm512_insertf32x8(_mm512_castps256_ps512(lo),
                                       _mm256_maskz_loadu_ps(m, k + off[2 * i + 1]), 1);
        X[i] = _mm512_fmadd_ps(qv, kv, _mm512_setzero_ps());
    }
    return hsum16x16_folded(X);
}

/* 16 keys' dots (ops_blocked.h's dots_any): two keys per register up to head dim 8. */
static ALWAYS_INLINE __m512 dots16_any(const float *q, const float *k, const int64_t *off,
                                       int64_t Dh);

/* The weighted average (ops.h) of G heads at once, as units (head g, vector u of its Dh) taken
 * up to 8 at a time: each unit keeps its vector of o in a register over all keys, one FMA per
 * key in key order, and its own sum of p in the same order, so every element is computed exactly
 * as for one head alone while up to 8 independent chains hide the FMA latency. */
static ALWAYS_INLINE void wavg_units(const int U, int64_t u0, float *o, const float *p, int64_t ps,
                                     const float *v, const int64_t *voff, int64_t vs, int64_t nk,
                                     int64_t Dh) {
    int64_t nvh = (Dh + 15) / 16;
    const float *pu[8], *vu[8];
    __m512 acc[8], sum[8];
    __mmask16 mk[8];
    UNROLL for (int u = 0; u < U; u++) {
        int64_t g = (u0 + u) / nvh, e = (u0 + u) % nvh * 16;
        pu[u] = p + g * ps;
        vu[u] = v + voff[g] + e;
        mk[u] = lanes16(Dh - e < 16 ? Dh - e : 16);
        acc[u] = sum[u] = _mm512_setzero_ps();
    }
    /* Branch-free skipping of p == 0: v is then not read (its lanes load as 0), so the FMA adds
     * an exact +0 (a and sum are never -0: they start at +0 and p >= 0), which leaves them as
     * they were: the same bits as not visiting the key. The sum runs in every lane. */
    for (int64_t j = 0; j < nk; j++) {
        UNROLL for (int u = 0; u < U; u++) {
            __m512 pj = _mm512_set1_ps(pu[u][j]);
            __mmask16 k = mk[u] & _mm512_cmp_ps_mask(pj, _mm512_setzero_ps(), _CMP_NEQ_UQ);
            acc[u] = _mm512_fmadd_ps(pj, _mm512_maskz_loadu_ps(k, vu[u] + j * vs), acc[u]);
            sum[u] = _mm512_add_ps(sum[u], pj);
        }
    }
    UNROLL for (int u = 0; u < U; u++) {
        int64_t g = (u0 + u) / nvh, e = (u0 + u) % nvh * 16;
        __m512 inv = _mm512_div_ps(_mm512_set1_ps(1.0f), sum[u]);
        _mm512_mask_storeu_ps(o + g * Dh + e, mk[u], _mm512_mul_ps(acc[u], inv));
    }
}

#include "ops/ops_blocked.h"

static ALWAYS_INLINE __m512 dots16_any(const float *q, const float *k, const int64_t *off,
                                       int64_t Dh) {
    return Dh <= 8 ? dots16_short(q, k, off, Dh) : dots_rows(q, k, off, Dh);
}

void hass__matmul_rows_avx512(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                              const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    matmul_rows(y, ys, x, n, in, W, wt, o0, o1);
}

float hass__dot_avx512(const float *a, const float *b, int64_t n) {
    return dot1(a, b, n);
}

void hass__dots_avx512(float *s, const float *q, const float *k, int64_t ks, int64_t nk,
                       int64_t Dh) {
    dots_any(s, q, k, ks, nk, Dh);
}

void hass__wavg_avx512(float *o, const float *p, int64_t ps, const float *v, const int64_t *voff,
                       int64_t vs, int64_t nk, int64_t Dh, int G) {
    wavg_any(o, p, ps, v, voff, vs, nk, Dh, G);
}

/* x[i] *= scale; the largest result. */
float hass__scale_max_avx512(float *x, int64_t n, float scale) {
    __m512 s = _mm512_set1_ps(scale), mx = _mm512_set1_ps(-INFINITY);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = lanes16(n - i < 16 ? n - i : 16);
        __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), s);
        _mm512_mask_storeu_ps(x + i, m, t);
        mx = _mm512_mask_max_ps(mx, m, mx, t);
    }
    __m256 a = _mm256_max_ps(_mm512_castps512_ps256(mx),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(mx), 1)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* exp8 of ops_avx2.c on 16 lanes: the same operations lane by lane, so the same results. */
static ALWAYS_INLINE __m512 exp16(__m512 x0) {
    const __m512 hi = _mm512_set1_ps(88.3762626647949f), lo = _mm512_set1_ps(-88.0f);
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f), half = _mm512_set1_ps(0.5f);
    const __m512 c1 = _mm512_set1_ps(0.693359375f), c2 = _mm512_set1_ps(-2.12194440e-4f);
    const __m512 p0 = _mm512_set1_ps(1.9875691500e-4f), p1 = _mm512_set1_ps(1.3981999507e-3f);
    const __m512 p2 = _mm512_set1_ps(8.3334519073e-3f), p3 = _mm512_set1_ps(4.1665795894e-2f);
    const __m512 p4 = _mm512_set1_ps(1.6666665459e-1f), p5 = _mm512_set1_ps(5.0000001201e-1f);
    const __m512 one = _mm512_set1_ps(1.0f);
    __mmask16 under = _mm512_cmp_ps_mask(x0, lo, _CMP_LT_OQ); /* also -inf */
    __m512 v = _mm512_max_ps(_mm512_min_ps(x0, hi), lo);
    /* floor; imm 1 = round down, to 0 fraction bits (SIMDe 0.7 misreads the no-exception bit) */
    __m512 fx = _mm512_roundscale_ps(_mm512_fmadd_ps(v, log2e, half), _MM_FROUND_TO_NEG_INF);
    v = _mm512_fnmadd_ps(fx, c1, v);
    v = _mm512_fnmadd_ps(fx, c2, v);
    __m512 z = _mm512_mul_ps(v, v);
    __m512 y = _mm512_fmadd_ps(p0, v, p1);
    y = _mm512_fmadd_ps(y, v, p2);
    y = _mm512_fmadd_ps(y, v, p3);
    y = _mm512_fmadd_ps(y, v, p4);
    y = _mm512_fmadd_ps(y, v, p5);
    y = _mm512_fmadd_ps(y, z, _mm512_add_ps(v, one));
    __m512i e =
        _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(fx), _mm512_set1_epi32(127)), 23);
    y = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
    return _mm512_maskz_mov_ps((__mmask16)~under, y);
}

void hass__exp_avx512(float *x, int64_t n, float sub) {
    __m512 s = _mm512_set1_ps(sub);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), s)));
    if (i < n) /* the tail through the same vector code, masked */
        _mm512_mask_storeu_ps(x + i, lanes16(n - i), exp16(_mm512_sub_ps(VLOADM(x + i, n - i), s)));
}

/* ---- bf16 weights with vdpbf16ps (AVX512_BF16): x rounded to bf16 (nearest even) once per
 * product (hass__bf16_pack_x), 32 elements per step, lane i accumulating the products of pairs
 * (2i, 2i+1) of the step; the in % 32 tail is one more step, zero-padded by masked loads.
 * Rounding x once instead of in every register block (as it was: two loads and a
 * vcvtne2ps2bf16 per x row and step, beside 6 vdpbf16ps) changes no bit; on a Zen 5, 2 threads,
 * 2048x8192 from memory: n = 16 1.92 -> 1.52 ms, n = 64 5.4 -> 3.6 ms. Blocks of 4 x rows by 4
 * W rows (kern_bh below) instead of 4 x 6: one transposed reduction for 16 results; the default
 * target's forward of 16 rows 5.25 -> 4.74 ms there. */
void hass__bf16_pack_x(uint16_t *xb, const float *x, int64_t n, int64_t in) {
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * in;
        uint16_t *br = xb + r * in;
        int64_t k = 0;
        for (; k + 32 <= in; k += 32)
            _mm512_storeu_si512((void *)(br + k),
                                (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + k + 16),
                                                             _mm512_loadu_ps(xr + k)));
        if (k < in) {
            int64_t m = in - k;
            __m512 hi = m > 16 ? VLOADM(xr + k + 16, m - 16) : _mm512_setzero_ps();
            uint16_t t[32];
            _mm512_storeu_si512((void *)t,
                                (__m512i)_mm512_cvtne2ps_pbh(hi, VLOADM(xr + k, m < 16 ? m : 16)));
            memcpy(br + k, t, (size_t)m * sizeof t[0]);
        }
    }
}

static ALWAYS_INLINE __m512bh bload(const uint16_t *p) {
    return (__m512bh)_mm512_loadu_si512((const void *)p);
}

/* The m < 32 values at p, zero past them. */
static ALWAYS_INLINE __m512bh bload_part(const uint16_t *p, int64_t m) {
    return (__m512bh)_mm512_maskz_loadu_epi16((__mmask32)((1ull << m) - 1), p);
}

/* n == 1, as kern_row: 16 rows of W at once in two passes of 8, reduced together. */
static ALWAYS_INLINE void kern_row_bh(float *y, const uint16_t *x, int64_t in, const uint16_t *w,
                                      int C, const uint8_t *pf_lim) {
    __m512 acc[16];
    int64_t in32 = in & ~(int64_t)31;
    pacer pf = pacer_make((const uint8_t *)w, C, 2 * (size_t)in, 2 * in, 32, pf_lim);
    UNROLL for (int h = 0; h < 2; h++) {
        const uint16_t *wr[8];
        __m512 *a = acc + 8 * h;
        UNROLL for (int i = 0; i < 8; i++) {
            wr[i] = w + (T16(8 * h + i) < C ? T16(8 * h + i) : C - 1) * in;
            a[i] = _mm512_setzero_ps();
        }
        for (int64_t k = 0; k < in32; k += 32) {
            pacer_advance(&pf);
            __m512bh xv = bload(x + k);
            UNROLL for (int i = 0; i < 8; i++) {
                a[i] = _mm512_dpbf16_ps(a[i], xv, bload(wr[i] + k));
            }
        }
        if (in32 < in) {
            __m512bh xv = bload_part(x + in32, in - in32);
            UNROLL for (int i = 0; i < 8; i++) {
                a[i] = _mm512_dpbf16_ps(a[i], xv, bload_part(wr[i] + in32, in - in32));
            }
        }
    }
    _mm512_mask_storeu_ps(y, lanes16(C), hsum16x16(acc));
}

/* R <= 4 rows of x by C <= 4 rows of W: acc[4c + r] holds (r, c), so that one transposed
 * reduction (hsum16x16, exactly hsum16's additions) puts row r's C results in lanes 4r..4r+C-1:
 * for short rows (in = 384: 12 steps) the 24 separate horizontal sums of a 4x6 block cost as
 * much as its dot products. */
static ALWAYS_INLINE void kern_bh(const int R, const int C, float *y, int64_t ys, const uint16_t *x,
                                  int64_t in, const uint16_t *w, const uint8_t *pf_lim) {
    __m512 acc[16];
    UNROLL for (int i = 0; i < 16; i++) {
        acc[i] = _mm512_setzero_ps();
    }
    int64_t in32 = in & ~(int64_t)31;
    pacer pf = pacer_make((const uint8_t *)w, C, 2 * (size_t)in, in, 32, pf_lim);
    for (int64_t k = 0; k < in32; k += 32) {
        pacer_advance(&pf);
        __m512bh wv[4];
        UNROLL for (int c = 0; c < C; c++) {
            wv[c] = bload(w + c * in + k);
        }
        UNROLL for (int r = 0; r < R; r++) {
            __m512bh xv = bload(x + r * in + k);
            UNROLL for (int c = 0; c < C; c++) {
                acc[4 * c + r] = _mm512_dpbf16_ps(acc[4 * c + r], xv, wv[c]);
            }
        }
    }
    if (in32 < in) {
        __m512bh wv[4];
        UNROLL for (int c = 0; c < C; c++) {
            wv[c] = bload_part(w + c * in + in32, in - in32);
        }
        UNROLL for (int r = 0; r < R; r++) {
            __m512bh xv = bload_part(x + r * in + in32, in - in32);
            UNROLL for (int c = 0; c < C; c++) {
                acc[4 * c + r] = _mm512_dpbf16_ps(acc[4 * c + r], xv, wv[c]);
            }
        }
    }
    __m512 s = hsum16x16(acc);
    UNROLL for (int r = 0; r < R; r++) {
        /* lanes 4r..4r+3 to 0..3 */
        __m512i idx =
            _mm512_add_epi32(_mm512_set1_epi32(4 * r),
                             _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 2, 1, 0));
        _mm512_mask_storeu_ps(y + r * ys, (__mmask16)((1u << C) - 1),
                              r ? _mm512_permutexvar_ps(idx, s) : s);
    }
}

#define KCASE_BH(R, C)                                                                             \
    case (R)*16 + (C):                                                                             \
        kern_bh(R, C, y, ys, x, in, w, pf_lim);                                                    \
        break

static void block_bh(int R, int C, float *y, int64_t ys, const uint16_t *x, int64_t in,
                     const uint16_t *w, const uint8_t *pf_lim) {
    switch (R * 16 + C) {
        KCASE_BH(1, 1);
        KCASE_BH(1, 2);
        KCASE_BH(1, 3);
        KCASE_BH(1, 4);
        KCASE_BH(2, 1);
        KCASE_BH(2, 2);
        KCASE_BH(2, 3);
        KCASE_BH(2, 4);
        KCASE_BH(3, 1);
        KCASE_BH(3, 2);
        KCASE_BH(3, 3);
        KCASE_BH(3, 4);
        KCASE_BH(4, 1);
        KCASE_BH(4, 2);
        KCASE_BH(4, 3);
        KCASE_BH(4, 4);
    default:
        HASS_ASSERT(!"matmul block shape");
    }
}

void hass__matmul_rows_bh(float *y, int64_t ys, const uint16_t *xb, int64_t n, int64_t in,
                          const uint16_t *W, int64_t o0, int64_t o1) {
    int cmax = n == 1 ? 16 : 4, rbm = n > 1 ? hass__mm_rb(n) : RB; /* hass_ops_tune */
    const uint8_t *wend = hass__mm_pf(n, 1) ? (const uint8_t *)(W + o1 * in) : NULL;
    for (int64_t o = o0; o < o1; o += cmax) {
        int C = o1 - o < cmax ? (int)(o1 - o) : cmax;
        const uint16_t *w = W + o * in;
        if (n == 1) {
            kern_row_bh(y + o, xb, in, w, C, wend);
            continue;
        }
        for (int64_t r = 0; r < n; r += rbm) {
            int R = n - r < rbm ? (int)(n - r) : rbm;
            block_bh(R, C, y + r * ys + o, ys, xb + r * in, in, w, r == 0 ? wend : NULL);
        }
    }
}

/* x packed on the calling thread (products through hass_matmul_multi pack once for all
 * threads and call hass__matmul_rows_bh directly). */
static hass_tls_scratch bh_xb = HASS_TLS_SCRATCH_INIT;

void hass__matmul_rows_avx512bf16(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                                  const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    if (wt != HASS_DTYPE_BF16) {
        hass__matmul_rows_avx512(y, ys, x, n, in, W, wt, o0, o1);
        return;
    }
    uint16_t *xb = hass_tls_scratch_get(&bh_xb, (size_t)(n * in) * sizeof(uint16_t));
    hass__bf16_pack_x(xb, x, n, in);
    hass__matmul_rows_bh(y, ys, xb, n, in, W, o0, o1);
}
