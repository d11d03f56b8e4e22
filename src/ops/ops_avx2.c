/*
 * ops_avx2.c — AVX2+FMA(+F16C) kernels: the blocked matrix product and the small vector
 * helpers attention and rmsnorm use. Compiled with -mavx2 -mfma -mf16c (Makefile), called only
 * when hass_cpu_features() reports AVX2.
 *
 * The matrix product register-blocks RB rows of x against CB rows of W: each W vector is loaded
 * (and converted from bf16/f16/q8_0) once per x-row block and feeds RB FMAs, and the CB rows of
 * W stay in L1 while all n rows of x pass over them, so the weight stream is read from memory
 * once per call. Every output element still has its own 8-lane accumulator fed in k order (the
 * in % 8 tail as one more step, zero-padded by masked loads), then the fixed horizontal sum of
 * hsum8: the arithmetic of one element does not depend on n, on the block it fell in, or on the
 * thread that computed it.
 */
#include "ops/ops.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define RB 4 /* x rows per register block */
#define CB 3 /* W rows per register block (RB*CB accumulators + CB weights + 1 x = 16 ymm) */

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Full unrolling of the register-block loops (constant bounds after inlining) lets the compiler
 * keep the accumulator arrays in registers; clang needs its own spelling. */
#if defined(__clang__)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif

/* ((a0+a4) + (a1+a5)) + ((a2+a6) + (a3+a7)): the one horizontal order every AVX2 dot uses. */
static ALWAYS_INLINE float hsum8(__m256 a) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

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

static ALWAYS_INLINE float q8_scale(const uint8_t *blk) {
    uint16_t h;
    memcpy(&h, blk, 2);
    return _cvtsh_ss(h);
}

/* 8 weights of row `w` starting at element k (k % 8 == 0), as exact f32 (q8_0: d * q rounded
 * once, as hass_to_f32 does). */
static ALWAYS_INLINE __m256 wload(hass_dtype dt, const uint8_t *w, int64_t k) {
    switch (dt) {
    case HASS_DTYPE_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)(w + 2 * k));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case HASS_DTYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + 2 * k)));
    case HASS_DTYPE_Q8_0: {
        const uint8_t *blk = w + (k / 32) * 34;
        __m128i q = _mm_loadl_epi64((const __m128i *)(blk + 2 + k % 32));
        __m256 qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q));
        return _mm256_mul_ps(_mm256_set1_ps(q8_scale(blk)), qf);
    }
    default:
        return _mm256_loadu_ps((const float *)w + k);
    }
}

/* The m < 8 weights of row `w` from element k, zero in lanes m..7 (nothing past element k + m
 * is read: 16-bit weights through a zeroed copy, AVX2 has no 16-bit masked load). q8_0 rows
 * never need it: in % 32 == 0. */
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

/* ---- the blocked product; below this line ops_avx512.c has the same code ---- */
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

/* Into L2 (T1): on a Xeon with AMX 3-5% faster than into L1 for bf16 at n = 1 (bench/PERF.md,
 * 2026-11-27): the next block does not fit beside the current one in L1 anyway. */
static ALWAYS_INLINE void pacer_advance(pacer *p) {
    p->goal += p->step;
    for (; p->done < p->goal && p->done < p->len; p->done += 64)
        _mm_prefetch(p->at + p->done, _MM_HINT_T1);
}

/* The R x C register block: y[r*ys + c] = x[r] . w[c] for r < R, c < C, each element as its
 * own VLANES-lane accumulator over k (the in % VLANES tail as one more step, zero-padded by
 * masked loads), then the fixed horizontal sum. */
static ALWAYS_INLINE void kern(const int R, const int C, hass_dtype dt, float *y, int64_t ys,
                               const float *x, int64_t in, const uint8_t *w, size_t rb,
                               const uint8_t *pf_lim) {
    VEC acc[RB][CB];
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
        VEC wv[CB];
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
    if (inv < in) {
        VEC wv[CB];
        UNROLL for (int c = 0; c < C; c++) {
            wv[c] = wload_part(dt, w + (size_t)c * rb, inv, in - inv);
        }
        UNROLL for (int r = 0; r < R; r++) {
            VEC xv = VLOADM(x + r * in + inv, in - inv);
            UNROLL for (int c = 0; c < C; c++) {
                acc[r][c] = VFMA(xv, wv[c], acc[r][c]);
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < C; c++) {
            y[r * ys + c] = VHSUM(acc[r][c]);
        }
    }
}

/* n == 1: a block of C <= VLANES rows of W, one accumulator per row (accumulator i holds row
 * VROW(i); rows past C repeat row C - 1 and are not stored), each fed exactly as in kern, then
 * all reduced at once by VHSUMN, which adds like VHSUM, into one vector of C outputs. The rows
 * are read in passes of 8, so that their pointers stay in registers. */
static ALWAYS_INLINE void kern_row(const int PF, hass_dtype dt, float *y, const float *x,
                                   int64_t in, const uint8_t *w, size_t rb, int C,
                                   const uint8_t *pf_lim) {
    VEC acc[VLANES];
    int64_t inv = in & ~(int64_t)(VLANES - 1);
    pacer pf = pacer_make(w, C, rb, in * (VLANES / 8), VLANES, PF ? pf_lim : NULL);
    UNROLL for (int h = 0; h < VLANES / 8; h++) {
        const uint8_t *wr[8];
        VEC *a = acc + 8 * h;
        UNROLL for (int i = 0; i < 8; i++) {
            wr[i] = w + (size_t)(VROW(8 * h + i) < C ? VROW(8 * h + i) : C - 1) * rb;
            a[i] = VZERO();
        }
        for (int64_t k = 0; k < inv; k += VLANES) {
            if (PF)
                pacer_advance(&pf);
            VEC xv = VLOAD(x + k);
            UNROLL for (int i = 0; i < 8; i++) {
                a[i] = VFMA(xv, wload(dt, wr[i], k), a[i]);
            }
        }
        if (inv < in) {
            VEC xv = VLOADM(x + inv, in - inv);
            UNROLL for (int i = 0; i < 8; i++) {
                a[i] = VFMA(xv, wload_part(dt, wr[i], inv, in - inv), a[i]);
            }
        }
    }
    VSTOREM(y, C, VHSUMN(acc));
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

/* W blocks of CB rows (VLANES when n == 1) outside, x blocks of RB rows inside: a W block is
 * read from memory once and stays in L1 while every x row passes over it. (Tiling k as well,
 * with the lane sums parked between tiles, measured ~10% slower at n = 8..64: the x rows stream
 * from L2 fast enough.) */
static ALWAYS_INLINE void rows_dt(hass_dtype dt, float *y, int64_t ys, const float *x, int64_t n,
                                  int64_t in, const void *W, int64_t o0, int64_t o1) {
    size_t rb = hass_dtype_bytes(dt, (size_t)in);
    int cmax = n == 1 ? VLANES : CB;
    /* Software prefetch of the next W block (see kern), measured single-threaded on 2048x768 /
     * 32000x768 streamed from memory: bf16 n = 1 4.9 -> 3.3 ms, bf16 n = 4 410 -> 205 us, f32
     * n = 4 600 -> 450 us, f32 n = 16 16.4 -> 13.6 ms; but f32 n = 1 300 -> 390 us (its 3 KiB+
     * rows are long enough for the hardware prefetcher), so not there. */
    const uint8_t *wend =
        dt != HASS_DTYPE_F32 || n > 1 ? (const uint8_t *)W + (size_t)o1 * rb : NULL;
    for (int64_t o = o0; o < o1; o += cmax) {
        int C = o1 - o < cmax ? (int)(o1 - o) : cmax;
        const uint8_t *w = (const uint8_t *)W + (size_t)o * rb;
        if (n == 1) { /* without the prefetch code when there is none (registers) */
            if (wend)
                kern_row(1, dt, y + o, x, in, w, rb, C, wend);
            else
                kern_row(0, dt, y + o, x, in, w, rb, C, NULL);
            continue;
        }
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
static void rows_q8(float *y, int64_t ys, const float *x, int64_t n, int64_t in, const void *W,
                    int64_t o0, int64_t o1) {
    rows_dt(HASS_DTYPE_Q8_0, y, ys, x, n, in, W, o0, o1);
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
    case HASS_DTYPE_Q8_0:
        HASS_ASSERT(in % 32 == 0);
        rows_q8(y, ys, x, n, in, W, o0, o1);
        break;
    default:
        HASS_ASSERT(!"hass_matmul: unsupported weight dtype");
    }
}

/* The same element arithmetic as the matrix product, for one pair of vectors. */
static ALWAYS_INLINE float dot1(const float *a, const float *b, int64_t n) {
    __m256 acc = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    if (k < n)
        acc = _mm256_fmadd_ps(VLOADM(a + k, n - k), VLOADM(b + k, n - k), acc);
    return hsum8(acc);
}

float hass__dot_avx2(const float *a, const float *b, int64_t n) {
    return dot1(a, b, n);
}

/* dot1(q, k + off[K8(p)], Dh) in lane p, for 8 key rows. */
static ALWAYS_INLINE __m256 dots8(const float *q, const float *k, const int64_t *off, int64_t Dh) {
    __m256 acc[8];
    UNROLL for (int i = 0; i < 8; i++) {
        acc[i] = _mm256_setzero_ps();
    }
    int64_t e = 0;
    for (; e + 8 <= Dh; e += 8) {
        __m256 qv = _mm256_loadu_ps(q + e);
        UNROLL for (int i = 0; i < 8; i++) {
            acc[i] = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k + off[i] + e), acc[i]);
        }
    }
    if (e < Dh) {
        __m256 qv = VLOADM(q + e, Dh - e);
        UNROLL for (int i = 0; i < 8; i++) {
            acc[i] = _mm256_fmadd_ps(qv, VLOADM(k + off[i] + e, Dh - e), acc[i]);
        }
    }
    return hsum8x8(acc);
}

/* Eight keys per step, each exactly dot1; a last partial group repeats its last key in the
 * unused lanes and stores only the valid ones. */
void hass__dots_avx2(float *s, const float *q, const float *k, int64_t ks, int64_t nk, int64_t Dh) {
    int64_t off[8], j = 0;
    for (int i = 0; i < 8; i++)
        off[i] = K8(i) * ks;
    for (; j + 8 <= nk; j += 8)
        _mm256_storeu_ps(s + j, dots8(q, k + j * ks, off, Dh));
    if (j < nk) {
        int64_t m = nk - j;
        for (int i = 0; i < 8; i++)
            off[i] = (K8(i) < m ? K8(i) : m - 1) * ks;
        _mm256_maskstore_ps(s + j, lanes8(m), dots8(q, k + j * ks, off, Dh));
    }
}

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

#define WAVG_CASE(U)                                                                               \
    case U:                                                                                        \
        wavg_units(U, u0, o, p, ps, v, voff, vs, nk, Dh);                                          \
        break

/* All G heads' units, 8 at a time. */
void hass__wavg_avx2(float *o, const float *p, int64_t ps, const float *v, const int64_t *voff,
                     int64_t vs, int64_t nk, int64_t Dh, int G) {
    int64_t nu = (int64_t)G * ((Dh + 7) / 8);
    for (int64_t u0 = 0; u0 < nu; u0 += 8) {
        switch (nu - u0 < 8 ? (int)(nu - u0) : 8) {
            WAVG_CASE(1);
            WAVG_CASE(2);
            WAVG_CASE(3);
            WAVG_CASE(4);
            WAVG_CASE(5);
            WAVG_CASE(6);
            WAVG_CASE(7);
        default:
            wavg_units(8, u0, o, p, ps, v, voff, vs, nk, Dh);
        }
    }
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
