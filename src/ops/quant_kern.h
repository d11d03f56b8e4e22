/*
 * quant_kern.h — the register-blocked quantized matrix product, one text compiled three times:
 * quant_avx2.c (vpmaddubsw + vpmaddwd), quant_avxvnni.c (VEX vpdpbusd) and quant_avx512.c
 * (EVEX vpdpbusd on 256-bit vectors: the same lanes, 32 registers for larger blocks). The file
 * that includes it defines:
 *   QDOT(acc, u, a)  acc + per 32-bit lane sum of the 4 products u (unsigned) * a (signed)
 *   QSIGNED          1 if Q8_0 is prepared signed (vpmaddubsw would overflow on q + 128)
 *   RQ, CQ           activation rows x weight rows per register block (CQ divides 12)
 *   QROWS            the exported function's name
 * and includes <immintrin.h> (or its SIMDe stand-in) first.
 *
 * CQ weight rows are prepared (hass__qprep_avx2: integers in the group layout, scales as
 * vectors) into a per-thread scratch, then the activation rows pass over them RQ at a time:
 * per group of 8 blocks, 8 vectors of weights feed RQ*CQ integer accumulators whose lanes end
 * as the 8 exact block sums, then the float step of quant.h. For up to RQ rows each group is
 * prepared just before its use (the scratch stays in L1); for more, whole rows first (L1/L2),
 * so the preparation is paid once per weight row whatever the batch.
 */

#include "ops/quant_unpack.h"
#include "ops/simd_x86.h"

#include <stdint.h>

/* How far ahead of the group in use the n <= RQ path prefetches its weight stream: measured on
 * a Xeon with AVX512-VNNI (1 thread, 2048 x 768 from memory, n = 1): none 5.8 GB/s (Q8_0) and
 * 3.8 (Q4_K); 256 bytes 6.1 / 4.2; 512 6.6 / 4.6; 1024 7.8 / 5.1; 2048 7.1 / 2.8. */
#define QPF_AHEAD 1024

static ALWAYS_INLINE __m256i ld(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Signed Q8_0 (QSIGNED): acc + per lane sum of w * a, with |w| prepared in `absw`. */
static ALWAYS_INLINE __m256i qdot_signed(__m256i acc, __m256i w, __m256i absw, __m256i a) {
    __m256i p = _mm256_maddubs_epi16(absw, _mm256_sign_epi8(a, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* Weight-side kinds of the float step (quant.h). */
enum { K_PLAIN, K_MIN32, K_MINK, K_Q6 };

/* R activation rows x CQ weight rows over all ng groups. Group g of weight row c is at
 * wg(c, g): the prepared scratch, or (fused, small batches) prepared right here into `fz`.
 * off_shift: log2 of the 32-type weight offset (128, 8, 16) or 0; sgn: signed Q8_0 (AVX2).
 * cc of the CQ rows are real (the rest are zero padding, not stored). */
static ALWAYS_INLINE void kq(const int R, const int kind, const int off_shift, const int sgn,
                             float *y, int64_t ys, int cc, const hass__qgroup *xa, int64_t ng,
                             const uint8_t *wp, size_t ws, uint8_t *fz, const uint8_t *W, size_t rb,
                             hass_dtype wt, int64_t in) {
    __m256 facc[RQ][CQ];
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < CQ; c++) {
            facc[r][c] = _mm256_setzero_ps();
        }
    }
    size_t wrow = (size_t)ng * ws;
    for (int64_t g = 0; g < ng; g++) {
        const uint8_t *wb = wp + (size_t)g * ws;
        size_t cs = wrow;
        if (fz) { /* prepare group g of the CQ rows now */
            for (int c = 0; c < cc; c++)
                qprep_group((hass__wgroup *)(fz + (size_t)c * ws), W + (size_t)c * rb, wt, in, g,
                            sgn);
            wb = fz, cs = ws;
        }
        __m256i acc[RQ][CQ], acc2[RQ][CQ];
        UNROLL for (int r = 0; r < R; r++) {
            __m256i i1 = _mm256_setzero_si256(), i2 = i1;
            if (off_shift)
                i1 = _mm256_sub_epi32(i1, _mm256_slli_epi32(ld(xa[r * ng + g].s), off_shift));
            if (kind == K_Q6) { /* the -32 of every level */
                i1 = _mm256_sub_epi32(i1, _mm256_slli_epi32(ld(xa[r * ng + g].s), 5));
                i2 = _mm256_sub_epi32(i2, _mm256_slli_epi32(ld(xa[r * ng + g].s2), 5));
            }
            UNROLL for (int c = 0; c < CQ; c++) {
                acc[r][c] = i1;
                acc2[r][c] = i2;
            }
        }
        UNROLL for (int k = 0; k < 8; k++) {
            __m256i u[CQ], au[CQ];
            UNROLL for (int c = 0; c < CQ; c++) {
                const hass__wgroup *w = (const hass__wgroup *)(wb + c * cs);
                u[c] = ld(w->u + 32 * k);
                if (sgn)
                    au[c] = ld((const uint8_t *)(w + 1) + 32 * k);
            }
            UNROLL for (int r = 0; r < R; r++) {
                __m256i a = ld(xa[r * ng + g].qs + 32 * k);
                UNROLL for (int c = 0; c < CQ; c++) {
                    if (sgn)
                        acc[r][c] = qdot_signed(acc[r][c], u[c], au[c], a);
                    else if (kind == K_Q6 && k >= 4)
                        acc2[r][c] = QDOT(acc2[r][c], u[c], a);
                    else
                        acc[r][c] = QDOT(acc[r][c], u[c], a);
                }
            }
        }
        UNROLL for (int r = 0; r < R; r++) {
            const hass__qgroup *xg = &xa[r * ng + g];
            __m256 dx = _mm256_loadu_ps(xg->d);
            UNROLL for (int c = 0; c < CQ; c++) {
                const hass__wgroup *w = (const hass__wgroup *)(wb + c * cs);
                __m256 wa = _mm256_loadu_ps(w->a), wbv = _mm256_loadu_ps(w->b);
                facc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(wa, dx), _mm256_cvtepi32_ps(acc[r][c]),
                                             facc[r][c]);
                if (kind == K_MIN32)
                    facc[r][c] = _mm256_fmadd_ps(wbv, _mm256_loadu_ps(xg->sf), facc[r][c]);
                else if (kind == K_MINK)
                    facc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(dx, wbv), _mm256_loadu_ps(xg->sf),
                                                 facc[r][c]);
                else if (kind == K_Q6)
                    facc[r][c] = _mm256_fmadd_ps(_mm256_mul_ps(dx, wbv),
                                                 _mm256_cvtepi32_ps(acc2[r][c]), facc[r][c]);
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < CQ; c++) {
            if (c < cc)
                y[r * ys + c] = hsum8(facc[r][c]);
        }
    }
}

#define KQ_ARGS y, ys, cc, xa, ng, wp, ws, fz, W, rb, wt, in
/* One R-row block, by weight type. */
static ALWAYS_INLINE void kblock(const int R, float *y, int64_t ys, int cc, const hass__qgroup *xa,
                                 int64_t ng, const uint8_t *wp, size_t ws, uint8_t *fz,
                                 const uint8_t *W, size_t rb, hass_dtype wt, int64_t in) {
    switch (wt) {
    case HASS_DTYPE_Q8_0:
        if (QSIGNED)
            kq(R, K_PLAIN, 0, 1, KQ_ARGS);
        else
            kq(R, K_PLAIN, 7, 0, KQ_ARGS);
        break;
    case HASS_DTYPE_Q4_0:
        kq(R, K_PLAIN, 3, 0, KQ_ARGS);
        break;
    case HASS_DTYPE_Q5_0:
        kq(R, K_PLAIN, 4, 0, KQ_ARGS);
        break;
    case HASS_DTYPE_Q4_1:
    case HASS_DTYPE_Q5_1:
        kq(R, K_MIN32, 0, 0, KQ_ARGS);
        break;
    case HASS_DTYPE_Q6_K:
        kq(R, K_Q6, 0, 0, KQ_ARGS);
        break;
    default:
        kq(R, K_MINK, 0, 0, KQ_ARGS);
    }
}

static void rows_r(int R, float *y, int64_t ys, int cc, const hass__qgroup *xa, int64_t ng,
                   const uint8_t *wp, size_t ws, uint8_t *fz, const uint8_t *W, size_t rb,
                   hass_dtype wt, int64_t in) {
    switch (R) {
#if RQ >= 4
    case 4:
        kblock(4, KQ_ARGS);
        break;
#endif
#if RQ >= 3
    case 3:
        kblock(3, KQ_ARGS);
        break;
#endif
    case 2:
        kblock(2, KQ_ARGS);
        break;
    default:
        kblock(1, KQ_ARGS);
    }
}

/* Up to RQ activation rows: each weight group is unpacked and transposed in registers and used
 * at once by the R rows (no scratch); the arithmetic of kq. Two integer chains per row. */
static ALWAYS_INLINE void dotr_t(const int R, const hass_dtype wt, const uint8_t *row,
                                 const hass__qgroup *xa, int64_t ng, int64_t in, float *y,
                                 int64_t ys, uintptr_t pf_lim) {
    const int sgn = QSIGNED && wt == HASS_DTYPE_Q8_0;
    const int sh = wt == HASS_DTYPE_Q8_0   ? (QSIGNED ? 0 : 7)
                   : wt == HASS_DTYPE_Q4_0 ? 3
                   : wt == HASS_DTYPE_Q5_0 ? 4
                                           : 0;
    const int k6 = wt == HASS_DTYPE_Q6_K, kmin = wt == HASS_DTYPE_Q4_K || wt == HASS_DTYPE_Q5_K;
    const int m32 = wt == HASS_DTYPE_Q4_1 || wt == HASS_DTYPE_Q5_1;
    __m256 facc[RQ];
    UNROLL for (int r = 0; r < R; r++) {
        facc[r] = _mm256_setzero_ps();
    }
    /* the bytes one group holds (the last may hold fewer), and the software prefetch of the
     * stream QPF_AHEAD bytes ahead: the rows are read one after another, a single stream that
     * the hardware prefetcher alone keeps at half the read bandwidth */
    const size_t gb = hass__qkind_k(wt) ? hass_dtype_bytes(wt, 256) : 8 * hass_dtype_bytes(wt, 32);
    for (int64_t g = 0; g < ng; g++) {
        __m256i nat[8], u[8], au[8];
        __m256 wa, wb;
        uintptr_t pa = (uintptr_t)row + (size_t)g * gb + QPF_AHEAD;
        for (size_t off = 0; off < gb && pa + off < pf_lim; off += 64)
            _mm_prefetch((const char *)(pa + off), _MM_HINT_T0);
        natural(nat, &wa, &wb, row, wt, in, g, sgn);
        transpose8(u, nat);
        if (sgn)
            UNROLL for (int k = 0; k < 8; k++) {
                au[k] = _mm256_abs_epi8(u[k]);
            }
        UNROLL for (int r = 0; r < R; r++) {
            const hass__qgroup *xg = xa + r * ng + g;
            __m256i s0 = _mm256_setzero_si256(), s1 = s0, t0 = s0;
            if (sh)
                s0 = _mm256_sub_epi32(s0, _mm256_slli_epi32(ld(xg->s), sh));
            if (k6) {
                s0 = _mm256_sub_epi32(s0, _mm256_slli_epi32(ld(xg->s), 5));
                t0 = _mm256_sub_epi32(t0, _mm256_slli_epi32(ld(xg->s2), 5));
            }
            UNROLL for (int k = 0; k < 8; k++) {
                __m256i a = ld(xg->qs + 32 * k);
                if (sgn) {
                    if (k % 2)
                        s1 = qdot_signed(s1, u[k], au[k], a);
                    else
                        s0 = qdot_signed(s0, u[k], au[k], a);
                } else if (k6) {
                    if (k < 4)
                        s0 = QDOT(s0, u[k], a);
                    else
                        t0 = QDOT(t0, u[k], a);
                } else if (k % 2) {
                    s1 = QDOT(s1, u[k], a);
                } else {
                    s0 = QDOT(s0, u[k], a);
                }
            }
            __m256i isum = k6 ? s0 : _mm256_add_epi32(s0, s1);
            __m256 dx = _mm256_loadu_ps(xg->d);
            facc[r] = _mm256_fmadd_ps(_mm256_mul_ps(wa, dx), _mm256_cvtepi32_ps(isum), facc[r]);
            if (m32)
                facc[r] = _mm256_fmadd_ps(wb, _mm256_loadu_ps(xg->sf), facc[r]);
            else if (kmin)
                facc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dx, wb), _mm256_loadu_ps(xg->sf), facc[r]);
            else if (k6)
                facc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dx, wb), _mm256_cvtepi32_ps(t0), facc[r]);
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        y[r * ys] = hsum8(facc[r]);
    }
}

#define DOTR_CASE(T)                                                                               \
    case T:                                                                                        \
        for (int64_t o = 0; o < nrows; o++)                                                        \
            dotr_t(R, T, W + (size_t)o * rb, xa, ng, in, y + o, ys, lim);                          \
        break

/* Weight rows [0, nrows) of W against R <= RQ activation rows. */
static ALWAYS_INLINE void rows_small_r(const int R, float *y, int64_t ys, const hass__qgroup *xa,
                                       int64_t ng, const uint8_t *W, size_t rb, hass_dtype wt,
                                       int64_t in, int64_t nrows) {
    uintptr_t lim = (uintptr_t)W + (size_t)nrows * rb;
    switch (wt) {
        DOTR_CASE(HASS_DTYPE_Q8_0);
        DOTR_CASE(HASS_DTYPE_Q4_0);
        DOTR_CASE(HASS_DTYPE_Q4_1);
        DOTR_CASE(HASS_DTYPE_Q5_0);
        DOTR_CASE(HASS_DTYPE_Q5_1);
        DOTR_CASE(HASS_DTYPE_Q4_K);
        DOTR_CASE(HASS_DTYPE_Q5_K);
    default:
        for (int64_t o = 0; o < nrows; o++)
            dotr_t(R, HASS_DTYPE_Q6_K, W + (size_t)o * rb, xa, ng, in, y + o, ys, lim);
    }
}

static void rows_small(int R, float *y, int64_t ys, const hass__qgroup *xa, int64_t ng,
                       const uint8_t *W, size_t rb, hass_dtype wt, int64_t in, int64_t nrows) {
    switch (R) {
#if RQ >= 4
    case 4:
        rows_small_r(4, y, ys, xa, ng, W, rb, wt, in, nrows);
        break;
#endif
#if RQ >= 3
    case 3:
        rows_small_r(3, y, ys, xa, ng, W, rb, wt, in, nrows);
        break;
#endif
    case 2:
        rows_small_r(2, y, ys, xa, ng, W, rb, wt, in, nrows);
        break;
    default:
        rows_small_r(1, y, ys, xa, ng, W, rb, wt, in, nrows);
    }
}

void QROWS(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in, const void *W,
           hass_dtype wt, int64_t o0, int64_t o1) {
    int sgn = QSIGNED && wt == HASS_DTYPE_Q8_0;
    size_t ws = hass__wstride(sgn), rb = hass_dtype_bytes(wt, (size_t)in);
    int64_t ng = hass__qgroups(in);
    if (n <= RQ) {
        rows_small((int)n, y + o0, ys, xa, ng, (const uint8_t *)W + (size_t)o0 * rb, rb, wt, in,
                   o1 - o0);
        return;
    }
    /* up to RQ rows: each group of the CQ weight rows is prepared just before its use (in L1);
     * more: the CQ rows are prepared whole, then every block of RQ rows passes over them */
    int fused = n <= RQ;
    size_t need = (size_t)CQ * (fused ? 1 : (size_t)ng) * ws;
    uint8_t *wscratch = hass__qscratch(HASS_QSCRATCH_W, need);
    for (int64_t o = o0; o < o1; o += CQ) {
        int cc = o1 - o < CQ ? (int)(o1 - o) : CQ;
        const uint8_t *Wo = (const uint8_t *)W + (size_t)o * rb;
        if (fused) {
            if (cc < CQ) /* rows past cc stay zero */
                memset(wscratch, 0, need);
            rows_r((int)n, y + o, ys, cc, xa, ng, wscratch, ws, wscratch, Wo, rb, wt, in);
            continue;
        }
        for (int c = 0; c < CQ; c++)
            for (int64_t g = 0; g < ng; g++) {
                uint8_t *dst = wscratch + ((size_t)c * (size_t)ng + (size_t)g) * ws;
                if (c < cc)
                    qprep_group((hass__wgroup *)dst, Wo + (size_t)c * rb, wt, in, g, sgn);
                else
                    memset(dst, 0, ws);
            }
        for (int64_t r = 0; r < n; r += RQ) {
            int R = n - r < RQ ? (int)(n - r) : RQ;
            rows_r(R, y + r * ys + o, ys, cc, xa + r * ng, ng, wscratch, ws, NULL, Wo, rb, wt, in);
        }
    }
}
