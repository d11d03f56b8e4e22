/*
 * blas.h — single-precision GEMM for the trainer, from OpenBLAS loaded on first use.
 *
 * OpenBLAS starts its worker threads when it is loaded and lets them spin for a while; a
 * process that only decodes must not pay for that (it halved stories260K's decoding speed in
 * short runs). So the library is opened with dlopen the first time training needs it, and
 * inference never loads it. If no OpenBLAS is installed, a plain C GEMM is used (correct, slow)
 * and a warning is logged once.
 */
#ifndef HASS_BLAS_H
#define HASS_BLAS_H

#include <cblas.h>

/* Same contract as cblas_sgemm. Thread-safe. */
void hass_cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
                      int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc);
int hass_blas_get_threads(void);   /* 1 when OpenBLAS is not available */
void hass_blas_set_threads(int n); /* no-op when OpenBLAS is not available */
const char *hass_blas_name(void);  /* "openblas <config>" or "builtin" */

#endif
