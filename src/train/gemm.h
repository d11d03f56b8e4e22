/*
 * gemm.h — the matrix products of training (linear layers forward and backward) in one of three
 * precisions/kernels, chosen per process:
 *
 *   HASS_GEMM_F32          OpenBLAS sgemm (blas.h): fp32 inputs, fp32 accumulation.
 *   HASS_GEMM_BF16_AVX512  our kernel: inputs rounded to bf16 (nearest-even), products summed
 *                          in fp32 by vdpbf16ps (AVX512_BF16).
 *   HASS_GEMM_BF16_AMX     the same packed bf16 operands through the AMX tile unit (AMX-BF16,
 *                          TDPBF16PS), fp32 accumulation.
 *
 * The bf16 kernels are mixed precision as in PyTorch's bf16 autocast: master weights, optimizer
 * state and every non-matmul op stay fp32; only the two operands of a product are rounded. Both
 * bf16 kernels pack the operands into the same tiles (16 rows x 32 k of A, 16 k-pairs x 16
 * columns of B, zero-padded) and sum each output element's k in the same blocks, so they agree
 * to the last bit up to the fp32 summation order inside a 32-k step.
 *
 * Results are deterministic and do not depend on the thread count (each output element is
 * summed by one thread in a fixed order).
 */
#ifndef HASS_GEMM_H
#define HASS_GEMM_H

#include "core/core.h"

typedef enum {
    HASS_GEMM_F32 = 0,
    HASS_GEMM_BF16_AVX512 = 1,
    HASS_GEMM_BF16_AMX = 2,
    HASS_GEMM_COUNT
} hass_gemm_kind;

/* "f32", "bf16-avx512", "bf16-amx". */
const char *hass_gemm_name(hass_gemm_kind k);
/* Whether this CPU (and kernel, for AMX: the tile-data permission) runs kind k. */
int hass_gemm_available(hass_gemm_kind k);

/* C (M, N) = alpha op(A) op(B) + beta C, row-major. op(A) is (M, K): A stored (M, K) with row stride
 * lda, or when ta (K, M) with stride lda. op(B) is (K, N): B stored (K, N) with stride ldb, or
 * when tb (N, K) with stride ldb. beta is 0 or 1. pool: threads for the bf16 kernels (NULL =
 * one); the f32 kernel uses OpenBLAS's threads. bf16 kernels scale A by alpha before rounding
 * it. Thread-safe: each calling thread packs into its own scratch. */
void hass_gemm(hass_gemm_kind kind, hass_pool *pool, int ta, int tb, int64_t M, int64_t N,
               int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
               float beta, float *C, int64_t ldc);

/* The kind and pool hass_train_linear_forward / hass_train_linear_backward use (process-wide;
 * default HASS_GEMM_F32 and no pool). pool is borrowed until the next call. */
void hass_gemm_set_default(hass_gemm_kind kind, hass_pool *pool);
hass_gemm_kind hass_gemm_get_default(void);
hass_pool *hass_gemm_default_pool(void);

/* The fastest available kind for training-sized products on this machine, measured once (a few
 * tens of ms) on a (1024 x 1408 x 512) product and its two backward shapes with the given pool;
 * fp32 unless a bf16 kernel is at least 1.3x faster. The environment variable HASS_GEMM (a name
 * above) overrides the measurement when that kind is available. */
hass_gemm_kind hass_gemm_pick(hass_pool *pool);

/* ---- internal: the ISA file (gemm_amx.c) ---- */
typedef struct {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    const float *A, *B;
    float *C;
    float alpha, beta;
    uint16_t *Ap, *Bp; /* packed operands (Mp x Kp and Np x Kp bf16) */
    int64_t Mp, Np, Kp;
    int amx;
} hass__gemm_job;
/* -1: the kernels are not compiled in this build; otherwise requests the AMX tile-data
 * permission once and returns 1 if granted, 0 if not. */
int hass__gemm_amx_ready(void);
/* Packs B panels [jp0, jp1) and A row blocks [ib0, ib1) (32 rows/columns each). */
void hass__gemm_pack(const hass__gemm_job *j, int64_t ib0, int64_t ib1, int64_t jp0, int64_t jp1);
/* Computes the C row blocks [ib0, ib1) over all columns. */
void hass__gemm_compute(const hass__gemm_job *j, int64_t ib0, int64_t ib1);

#endif
