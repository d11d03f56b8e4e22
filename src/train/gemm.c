/*
 * gemm.c — dispatch of the training GEMM (gemm.h): the fp32 path through OpenBLAS, the bf16
 * paths through the packed kernels of gemm_amx.c split over the pool, the process-wide default
 * and its choice by measurement.
 */
#include "train/gemm.h"
#include "ops/ops.h"
#include "train/blas.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[HASS_GEMM_COUNT] = {"f32", "bf16-avx512", "bf16-amx"};

const char *hass_gemm_name(hass_gemm_kind k) {
    return (int)k >= 0 && k < HASS_GEMM_COUNT ? names[k] : "?";
}

int hass_gemm_available(hass_gemm_kind k) {
    int f = hass_cpu_features();
    switch (k) {
    case HASS_GEMM_F32:
        return 1;
    case HASS_GEMM_BF16_AVX512:
        return (f & HASS_CPU_AVX512BF16) && hass__gemm_amx_ready() >= 0;
    case HASS_GEMM_BF16_AMX:
        return (f & HASS_CPU_AMX) && hass__gemm_amx_ready() == 1;
    default:
        return 0;
    }
}

/* packed operands, on the calling thread (pool workers pack too: the attention's products run
 * inside pool tasks) */
static hass_tls_scratch g_scratch = HASS_TLS_SCRATCH_INIT;

/* Work is taken in chunks from shared counters rather than split in fixed halves: on a busy
 * machine a thread that loses its core for a while does not hold the others up. Each chunk is
 * computed the same way whoever takes it, so results do not change. */
typedef struct {
    hass__gemm_job *j;
    int64_t NB, NP; /* row blocks of A, column panels of B */
    int64_t chunk;  /* row blocks per compute chunk */
    atomic_llong next_pack, next_rows;
} run_ctx;

static void pack_task(void *vc, int ith, int nth) {
    (void)ith, (void)nth;
    run_ctx *c = vc;
    for (;;) { /* units: the B panels, then the A row blocks, 4 at a time */
        int64_t u = (int64_t)atomic_fetch_add(&c->next_pack, 4);
        if (u >= c->NP + c->NB)
            return;
        int64_t e = u + 4;
        if (u < c->NP)
            hass__gemm_pack(c->j, 0, 0, u, e < c->NP ? e : c->NP);
        if (e > c->NP)
            hass__gemm_pack(c->j, (u > c->NP ? u : c->NP) - c->NP,
                            (e < c->NP + c->NB ? e : c->NP + c->NB) - c->NP, 0, 0);
    }
}

static void compute_task(void *vc, int ith, int nth) {
    (void)ith, (void)nth;
    run_ctx *c = vc;
    for (;;) {
        int64_t ib0 = (int64_t)atomic_fetch_add(&c->next_rows, c->chunk);
        if (ib0 >= c->NB)
            return;
        hass__gemm_compute(c->j, ib0, ib0 + c->chunk < c->NB ? ib0 + c->chunk : c->NB);
    }
}

static int64_t up32(int64_t x) {
    return (x + 31) & ~(int64_t)31;
}

void hass_gemm(hass_gemm_kind kind, hass_pool *pool, int ta, int tb, int64_t M, int64_t N,
               int64_t K, float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
               float beta, float *C, int64_t ldc) {
    HASS_ASSERT(M >= 0 && N >= 0 && K >= 0 && (beta == 0.0f || beta == 1.0f));
    if (M == 0 || N == 0)
        return;
    if (kind == HASS_GEMM_F32 || K == 0 || !hass_gemm_available(kind)) {
        HASS_ASSERT(M <= INT32_MAX && N <= INT32_MAX && K <= INT32_MAX);
        hass_cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                         tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                         (int)lda, B, (int)ldb, beta, C, (int)ldc);
        return;
    }
    hass__gemm_job j = {.ta = ta, .tb = tb, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb,
                        .ldc = ldc, .A = A, .B = B, .C = C, .alpha = alpha, .beta = beta,
                        .Mp = up32(M), .Np = up32(N), .Kp = up32(K),
                        .amx = kind == HASS_GEMM_BF16_AMX};
    uint16_t *sc = hass_tls_scratch_get(&g_scratch, (size_t)(j.Mp + j.Np) * (size_t)j.Kp * 2);
    j.Ap = sc;
    j.Bp = sc + (size_t)j.Mp * (size_t)j.Kp;
    run_ctx c = {.j = &j, .NB = j.Mp / 32, .NP = j.Np / 32};
    /* chunks of a few row blocks: several per thread, each a multiple of the 8 the kernel
     * blocks by when there are enough */
    int64_t per = c.NB / (4 * (int64_t)hass_pool_size(pool));
    c.chunk = per >= 8 ? per / 8 * 8 : (per > 0 ? per : 1);
    atomic_init(&c.next_pack, 0);
    atomic_init(&c.next_rows, 0);
    hass_pool_run(pool, pack_task, &c);
    hass_pool_run(pool, compute_task, &c);
}

/* ---- the default used by hass_linear_* ---- */
static _Atomic int g_kind = HASS_GEMM_F32;
static hass_pool *_Atomic g_pool;

void hass_gemm_set_default(hass_gemm_kind kind, hass_pool *pool) {
    atomic_store(&g_kind, hass_gemm_available(kind) ? (int)kind : HASS_GEMM_F32);
    atomic_store(&g_pool, pool);
}

hass_gemm_kind hass_gemm_get_default(void) {
    return (hass_gemm_kind)atomic_load(&g_kind);
}

hass_pool *hass_gemm_default_pool(void) {
    return atomic_load(&g_pool);
}

static double time_kind(hass_gemm_kind k, hass_pool *pool, float *a, float *b, float *c) {
    const int64_t M = 1024, N = 1408, K = 512;
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = hass_now();
        hass_gemm(k, pool, 0, 1, M, N, K, 1.0f, a, K, b, K, 0.0f, c, N); /* forward  X W^T */
        hass_gemm(k, pool, 0, 0, M, K, N, 1.0f, c, N, b, K, 0.0f, a, K); /* backward dY W  */
        hass_gemm(k, pool, 1, 0, N, K, M, 1.0f, c, N, a, K, 1.0f, b, K); /* backward dY^T X */
        double t = hass_now() - t0;
        best = t < best ? t : best;
    }
    return best;
}

hass_gemm_kind hass_gemm_pick(hass_pool *pool) {
    const char *env = getenv("HASS_GEMM");
    for (int k = 0; env && k < HASS_GEMM_COUNT; k++)
        if (!strcmp(env, names[k]) && hass_gemm_available((hass_gemm_kind)k))
            return (hass_gemm_kind)k;
    const int64_t M = 1024, N = 1408, K = 512;
    float *a = hass_aligned_alloc((size_t)(M * K) * 4), *b = hass_aligned_alloc((size_t)(N * K) * 4);
    float *c = hass_aligned_alloc((size_t)(M * N) * 4);
    hass_gemm_kind best = HASS_GEMM_F32;
    if (!a || !b || !c)
        goto done;
    hass_rng r;
    hass_rng_seed(&r, 5);
    for (int64_t i = 0; i < M * K; i++)
        a[i] = hass_rng_uniform(&r) - 0.5f;
    for (int64_t i = 0; i < N * K; i++)
        b[i] = (hass_rng_uniform(&r) - 0.5f) * 1e-3f;
    int bs = hass_blas_get_threads();
    hass_blas_set_threads(hass_pool_size(pool));
    double t[HASS_GEMM_COUNT];
    for (int k = 0; k < HASS_GEMM_COUNT; k++)
        t[k] = hass_gemm_available((hass_gemm_kind)k) ? time_kind((hass_gemm_kind)k, pool, a, b, c)
                                                       : 1e30;
    hass_blas_set_threads(bs);
    double tb = t[HASS_GEMM_F32] / 1.3;
    for (int k = 1; k < HASS_GEMM_COUNT; k++)
        if (t[k] < tb)
            tb = t[k], best = (hass_gemm_kind)k;
    hass_log(HASS_LOG_DEBUG, "gemm: f32 %.2f ms, bf16-avx512 %.2f ms, bf16-amx %.2f ms -> %s",
             t[0] * 1e3, t[1] < 1e29 ? t[1] * 1e3 : -1.0, t[2] < 1e29 ? t[2] * 1e3 : -1.0,
             names[best]);
done:
    hass_aligned_free(a), hass_aligned_free(b), hass_aligned_free(c);
    return best;
}
