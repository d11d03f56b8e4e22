/*
 * blas.c — OpenBLAS on demand (see blas.h), with a plain C fallback GEMM.
 */
#include "train/blas.h"
#include "core/core.h"
#include "ops/ops.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef void (*sgemm_fn)(enum CBLAS_ORDER, enum CBLAS_TRANSPOSE, enum CBLAS_TRANSPOSE, int, int,
                         int, float, const float *, int, const float *, int, float, float *, int);
typedef int (*get_fn)(void);
typedef void (*set_fn)(int);
typedef char *(*cfg_fn)(void);

static pthread_once_t once = PTHREAD_ONCE_INIT;
static sgemm_fn p_sgemm; /* written once under pthread_once, read-only afterwards */
static get_fn p_get;
static set_fn p_set;
static cfg_fn p_cfg;

static void load(void) {
    /* OpenBLAS's idle threads spin for 2^28 cycles (~0.1 s) after each call by default, on the
     * cores our own thread pool works on between GEMMs; make them sleep after ~4 us instead
     * (read when the library is opened; a value set by the user wins). */
    setenv("OPENBLAS_THREAD_TIMEOUT", "14", 0);
#if defined(__SANITIZE_THREAD__)
    /* OpenBLAS is not instrumented: ThreadSanitizer cannot see how its threads synchronise and
     * reports what they write as races with ours. In those builds it runs on the caller. */
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
#endif
    /* OpenBLAS's DYNAMIC_ARCH picks its kernels from the CPU model number; for models newer
     * than the library (Debian's 0.3.21 on Sapphire/Emerald Rapids, for one) it falls back to
     * the generic "Prescott" kernels, 6x slower. Name the kernel family from the instruction
     * sets instead (a value set by the user wins). AVX-512 takes the SkylakeX kernels on AMD
     * too (later OpenBLAS releases do the same for Zen 4): on a Zen 5, 2 threads, sgemm
     * 2048x1024x512 189 -> 251 GFLOP/s and a draft training step 616 -> 354 ms against the "Zen"
     * (AVX2) kernels (bench/PERF.md).
     * The instruction sets as the kernels see them (hass_cpu_available: HASS_CPU caps them
     * here too). A family already set in the environment is kept, but said when it is not the
     * one named here (a machine-wide OPENBLAS_CORETYPE=Haswell halves training on AVX-512). */
    int f = hass_cpu_available();
    const char *core = NULL;
    if (f & HASS_CPU_AVX512)
        core = "SkylakeX";
    else if (f & HASS_CPU_AVX2)
        core = strncmp(hass_cpu_model(), "AuthenticAMD", 12) == 0 ? "Zen" : "Haswell";
    const char *set = getenv("OPENBLAS_CORETYPE");
    if (core && set && *set && strcasecmp(set, core) != 0)
        hass_log(HASS_LOG_INFO,
                 "OPENBLAS_CORETYPE=%s is set in the environment; the %s kernels fit this CPU", set,
                 core);
    if (core)
        setenv("OPENBLAS_CORETYPE", core, 0);
    static const char *names[] = {"libopenblas.so.0", "libopenblas.so", "libblas.so.3"};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !p_sgemm; i++) {
        void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
        if (!h)
            continue;
        *(void **)&p_sgemm = dlsym(h, "cblas_sgemm");
        *(void **)&p_get = dlsym(h, "openblas_get_num_threads");
        *(void **)&p_set = dlsym(h, "openblas_set_num_threads");
        *(void **)&p_cfg = dlsym(h, "openblas_get_config");
    }
    if (!p_sgemm)
        hass_log(HASS_LOG_WARN, "OpenBLAS not found (apt-get install libopenblas0): training uses "
                                "a slow built-in GEMM");
}

static float at(const float *X, int ld, int trans, int r, int c, int row_major) {
    /* element (r, c) of op(X) */
    if (trans)
        return row_major ? X[(size_t)c * ld + r] : X[(size_t)r * ld + c];
    return row_major ? X[(size_t)r * ld + c] : X[(size_t)c * ld + r];
}

void hass_cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
                      int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                      int ldb, float beta, float *C, int ldc) {
    pthread_once(&once, load);
    if (p_sgemm) {
        p_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int rm = order == CblasRowMajor, tA = ta != CblasNoTrans, tB = tb != CblasNoTrans;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)at(A, lda, tA, i, k, rm) * at(B, ldb, tB, k, j, rm);
            float *c = rm ? &C[(size_t)i * ldc + j] : &C[(size_t)j * ldc + i];
            *c = (float)(alpha * s + (beta != 0 ? beta * *c : 0));
        }
}

int hass_blas_get_threads(void) {
    pthread_once(&once, load);
    return p_get ? p_get() : 1;
}

void hass_blas_set_threads(int n) {
    pthread_once(&once, load);
    if (p_set)
        p_set(n);
}

const char *hass_blas_name(void) {
    pthread_once(&once, load);
    return p_cfg ? p_cfg() : (p_sgemm ? "blas" : "builtin");
}
