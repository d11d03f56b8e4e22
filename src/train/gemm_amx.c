/*
 * gemm_amx.c — the bf16 training GEMM kernels of gemm.h: operand packing (fp32 -> bf16 tiles,
 * with the transposes the backward pass needs) and two micro-kernels over the same packed tiles:
 * AMX (TDPBF16PS on 16x16 fp32 tiles) and AVX512_BF16 (vdpbf16ps). Compiled with the AVX-512 +
 * AMX flags (Makefile) and called only when the CPU has them; builds without those flags (the
 * SIMDe emulation build, the fuzz build) report the kernels unavailable, so none is picked.
 *
 * Packed layouts (bf16, zero-padded to multiples of 32 in M, N and K; KS = Kp / 32 k-steps):
 *   A: block ib (32 rows), k-step s, tile t (rows 16t..16t+15): 16 rows x 32 k, row-major
 *      (64 bytes a row), at Ap + ((ib*KS + s)*2 + t) * 512.
 *   B: panel jp (32 columns), k-step s, tile t (columns 16t..16t+15): 16 k-pairs x 16 columns x
 *      2 (row r holds (B[2r][n], B[2r+1][n]) for the 16 n: the "VNNI" layout), at
 *      Bp + ((jp*KS + s)*2 + t) * 512.
 */
#include "train/gemm.h"

#if defined(__AVX512BF16__) && defined(__AMX_TILE__) && defined(__AMX_BF16__) &&                   \
    !defined(HASS_AVX512_EMU) && !defined(HASS_NO_AVX512)

#include "ops/amx_tiles.h"

#include <string.h>

int hass__gemm_amx_ready(void) {
    return hass__amx_ready();
}

/* One A tile: rows m0..m0+15, k0..k0+31 of op(A). */
static void pack_a_tile(const hass__gemm_job *j, int64_t m0, int64_t k0, uint16_t *dst) {
    __m512i r[16];
    if (!j->ta) { /* A (M, K): rows are contiguous in k */
        for (int i = 0; i < 16; i++)
            r[i] = m0 + i < j->M ? hass__row32(j->A + (m0 + i) * j->lda + k0, j->K - k0, j->alpha)
                                 : _mm512_setzero_si512();
    } else { /* A stored (K, M): pair rows k, k+1 across m, then transpose */
        __mmask16 mk = hass__mask16(j->M - m0);
        for (int p = 0; p < 16; p++) {
            int64_t k = k0 + 2 * p;
            const float *lo = k < j->K ? j->A + k * j->lda + m0 : NULL;
            const float *hi = k + 1 < j->K ? j->A + (k + 1) * j->lda + m0 : NULL;
            r[p] = hass__pair_rows(lo, hi, mk, j->alpha);
        }
        hass__transpose16(r);
    }
    for (int i = 0; i < 16; i++)
        _mm512_storeu_si512(dst + i * 32, r[i]);
}

/* One B tile: k-pairs of k0..k0+31, columns n0..n0+15 of op(B). */
static void pack_b_tile(const hass__gemm_job *j, int64_t n0, int64_t k0, uint16_t *dst) {
    __m512i r[16];
    if (!j->tb) { /* B (K, N): pair rows k, k+1 across n */
        __mmask16 mk = hass__mask16(j->N - n0);
        for (int p = 0; p < 16; p++) {
            int64_t k = k0 + 2 * p;
            const float *lo = k < j->K ? j->B + k * j->ldb + n0 : NULL;
            const float *hi = k + 1 < j->K ? j->B + (k + 1) * j->ldb + n0 : NULL;
            r[p] = hass__pair_rows(lo, hi, mk, 1.0f);
        }
    } else { /* B stored (N, K): each column's k run is contiguous; transpose the pairs */
        for (int n = 0; n < 16; n++)
            r[n] = n0 + n < j->N ? hass__row32(j->B + (n0 + n) * j->ldb + k0, j->K - k0, 1.0f)
                                 : _mm512_setzero_si512();
        hass__transpose16(r);
    }
    for (int i = 0; i < 16; i++)
        _mm512_storeu_si512(dst + i * 32, r[i]);
}

void hass__gemm_pack(const hass__gemm_job *j, int64_t ib0, int64_t ib1, int64_t jp0, int64_t jp1) {
    int64_t KS = j->Kp / 32;
    for (int64_t jp = jp0; jp < jp1; jp++)
        for (int64_t s = 0; s < KS; s++)
            for (int t = 0; t < 2; t++)
                pack_b_tile(j, jp * 32 + 16 * t, s * 32, j->Bp + ((jp * KS + s) * 2 + t) * 512);
    for (int64_t ib = ib0; ib < ib1; ib++)
        for (int64_t s = 0; s < KS; s++)
            for (int t = 0; t < 2; t++)
                pack_a_tile(j, ib * 32 + 16 * t, s * 32, j->Ap + ((ib * KS + s) * 2 + t) * 512);
}

/* ---- micro-kernels: the 32 x 32 block (ib, jp) of C ---- */

/* C sub-block (16 x 16 at r0, c0 of the 32x32 block) to/from a tile; edge blocks go through a
 * buffer. */
HASS_AMX_INLINE int full16(const hass__gemm_job *j, int64_t r0, int64_t c0) {
    return r0 + 16 <= j->M && c0 + 16 <= j->N;
}

static void edge_load(const hass__gemm_job *j, int64_t r0, int64_t c0, float *buf) {
    memset(buf, 0, 16 * 16 * sizeof(float));
    if (j->beta == 0.0f)
        return;
    for (int64_t i = 0; i < 16 && r0 + i < j->M; i++)
        for (int64_t c = 0; c < 16 && c0 + c < j->N; c++)
            buf[i * 16 + c] = j->C[(r0 + i) * j->ldc + c0 + c];
}

static void edge_store(const hass__gemm_job *j, int64_t r0, int64_t c0, const float *buf) {
    for (int64_t i = 0; i < 16 && r0 + i < j->M; i++)
        for (int64_t c = 0; c < 16 && c0 + c < j->N; c++)
            j->C[(r0 + i) * j->ldc + c0 + c] = buf[i * 16 + c];
}

#define TILE_C_IN(T, r0, c0, buf)                                                                  \
    do {                                                                                           \
        if (full16(j, r0, c0)) {                                                                   \
            if (j->beta == 0.0f)                                                                   \
                _tile_zero(T);                                                                     \
            else                                                                                   \
                _tile_loadd(T, j->C + (r0)*j->ldc + (c0), j->ldc * 4);                             \
        } else {                                                                                   \
            edge_load(j, r0, c0, buf);                                                             \
            _tile_loadd(T, buf, 64);                                                               \
        }                                                                                          \
    } while (0)
#define TILE_C_OUT(T, r0, c0, buf)                                                                 \
    do {                                                                                           \
        if (full16(j, r0, c0)) {                                                                   \
            _tile_stored(T, j->C + (r0)*j->ldc + (c0), j->ldc * 4);                                \
        } else {                                                                                   \
            _tile_stored(T, buf, 64);                                                              \
            edge_store(j, r0, c0, buf);                                                            \
        }                                                                                          \
    } while (0)

static void amx_block(const hass__gemm_job *j, int64_t ib, int64_t jp, float *buf) {
    int64_t KS = j->Kp / 32, r0 = ib * 32, c0 = jp * 32;
    TILE_C_IN(0, r0, c0, buf);
    TILE_C_IN(1, r0, c0 + 16, buf + 256);
    TILE_C_IN(2, r0 + 16, c0, buf + 512);
    TILE_C_IN(3, r0 + 16, c0 + 16, buf + 768);
    const uint16_t *a = j->Ap + ib * KS * 1024, *b = j->Bp + jp * KS * 1024;
    for (int64_t s = 0; s < KS; s++, a += 1024, b += 1024) {
        /* loads interleaved with the products that need them, so that each load overlaps
         * the product before it */
        _tile_loadd(4, a, 64);
        _tile_loadd(6, b, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b + 512, 64);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a + 512, 64);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    TILE_C_OUT(0, r0, c0, buf);
    TILE_C_OUT(1, r0, c0 + 16, buf + 256);
    TILE_C_OUT(2, r0 + 16, c0, buf + 512);
    TILE_C_OUT(3, r0 + 16, c0 + 16, buf + 768);
}

/* AVX512_BF16: 8 rows x 32 columns of accumulators at a time, over the same tiles. */
static void avx512_block(const hass__gemm_job *j, int64_t ib, int64_t jp) {
    int64_t KS = j->Kp / 32, c0 = jp * 32;
    __mmask16 mc0 = hass__mask16(j->N - c0), mc1 = hass__mask16(j->N - c0 - 16);
    for (int g = 0; g < 4; g++) {
        int64_t r0 = ib * 32 + 8 * g;
        if (r0 >= j->M)
            break;
        __m512 acc[8][2];
        for (int i = 0; i < 8; i++) {
            int ok = r0 + i < j->M && j->beta != 0.0f;
            const float *cr = j->C + (r0 + i) * j->ldc + c0;
            acc[i][0] = ok ? _mm512_maskz_loadu_ps(mc0, cr) : _mm512_setzero_ps();
            acc[i][1] = ok ? _mm512_maskz_loadu_ps(mc1, cr + 16) : _mm512_setzero_ps();
        }
        const uint16_t *a = j->Ap + (ib * KS * 2 + (g >> 1)) * 512 + (g & 1) * 8 * 32;
        const uint16_t *b = j->Bp + jp * KS * 1024;
        for (int64_t s = 0; s < KS; s++, a += 1024, b += 1024)
            for (int r = 0; r < 16; r++) {
                __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + r * 32);
                __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + 512 + r * 32);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) {
                    int32_t pair;
                    memcpy(&pair, a + i * 32 + 2 * r, 4);
                    __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
                    acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
                    acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
                }
            }
        for (int i = 0; i < 8 && r0 + i < j->M; i++) {
            float *cr = j->C + (r0 + i) * j->ldc + c0;
            _mm512_mask_storeu_ps(cr, mc0, acc[i][0]);
            _mm512_mask_storeu_ps(cr + 16, mc1, acc[i][1]);
        }
    }
}

#define MC_BLOCKS 8 /* row blocks (of 32) that share one pass over the B panels */

void hass__gemm_compute(const hass__gemm_job *j, int64_t ib0, int64_t ib1) {
    int64_t NP = j->Np / 32;
    float buf[1024];
    if (j->amx)
        hass__amx_config(16, 16);
    for (int64_t ic = ib0; ic < ib1; ic += MC_BLOCKS) {
        int64_t ie = ic + MC_BLOCKS < ib1 ? ic + MC_BLOCKS : ib1;
        for (int64_t jp = 0; jp < NP; jp++)
            for (int64_t ib = ic; ib < ie; ib++) {
                if (j->amx)
                    amx_block(j, ib, jp, buf);
                else
                    avx512_block(j, ib, jp);
            }
    }
    if (j->amx)
        _tile_release();
}

#else /* no AVX512_BF16 / AMX code in this build */

int hass__gemm_amx_ready(void) {
    return -1;
}
void hass__gemm_pack(const hass__gemm_job *j, int64_t ib0, int64_t ib1, int64_t jp0, int64_t jp1) {
    (void)j, (void)ib0, (void)ib1, (void)jp0, (void)jp1;
    HASS_ASSERT(!"bf16 GEMM kernels are not compiled in");
}
void hass__gemm_compute(const hass__gemm_job *j, int64_t ib0, int64_t ib1) {
    (void)j, (void)ib0, (void)ib1;
    HASS_ASSERT(!"bf16 GEMM kernels are not compiled in");
}

#endif
