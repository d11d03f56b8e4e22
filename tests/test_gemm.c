/*
 * test_gemm.c — the training GEMM (src/train/gemm.h) of every kind this CPU runs, against a
 * double-precision reference of the same product on bf16-rounded operands:
 *   - all four transpose combinations, odd and block-straddling sizes, alpha, beta 0 and 1, strides
 *     larger than the row length;
 *   - error within fp32 accumulation of exactly-representable products:
 *     |C - ref| <= 2^-20 * sum_k |a_k b_k| + tiny;
 *   - bit-identical results for 1 and 2 threads, and between repeated calls;
 *   - the f32 kind equals OpenBLAS sgemm to fp32 accuracy.
 * Kinds the CPU lacks are skipped with a message (AMX needs Sapphire Rapids or later).
 */
#include "check.h"
#include "core/core.h"
#include "train/gemm.h"

#include <stdint.h>

static float bf(float x) {
    return hass_bf16_to_f32(hass_f32_to_bf16(x));
}

/* element (i, k) of op(A) and (k, j) of op(B) */
static float ea(const float *A, int64_t lda, int ta, int64_t i, int64_t k) {
    return ta ? A[k * lda + i] : A[i * lda + k];
}
static float eb(const float *B, int64_t ldb, int tb, int64_t k, int64_t j) {
    return tb ? B[j * ldb + k] : B[k * ldb + j];
}

static int one_case(hass_gemm_kind kind, hass_pool *p1, hass_pool *p2, int ta, int tb, int64_t M,
                    int64_t N, int64_t K, float beta, float alpha, uint64_t seed) {
    int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2;
    int64_t ra = ta ? K : M, rb = tb ? N : K;
    float *A = malloc((size_t)(ra * lda) * 4), *B = malloc((size_t)(rb * ldb) * 4);
    float *C0 = malloc((size_t)(M * ldc) * 4), *C1 = malloc((size_t)(M * ldc) * 4);
    float *C2 = malloc((size_t)(M * ldc) * 4);
    hass_rng r;
    hass_rng_seed(&r, seed);
    for (int64_t i = 0; i < ra * lda; i++)
        A[i] = hass_rng_normal(&r);
    for (int64_t i = 0; i < rb * ldb; i++)
        B[i] = hass_rng_normal(&r) * 0.1f;
    for (int64_t i = 0; i < M * ldc; i++)
        C0[i] = hass_rng_normal(&r);
    memcpy(C1, C0, (size_t)(M * ldc) * 4);
    memcpy(C2, C0, (size_t)(M * ldc) * 4);
    hass_gemm(kind, p1, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C1, ldc);
    hass_gemm(kind, p2, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
    int bad = 0, rounded = kind != HASS_GEMM_F32;
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            float got = C1[i * ldc + j];
            if (j >= N) { /* padding columns of C are untouched */
                bad += got != C0[i * ldc + j];
                continue;
            }
            double s = beta != 0.0f ? C0[i * ldc + j] : 0.0, mag = fabs(s);
            for (int64_t k = 0; k < K; k++) {
                float a = ea(A, lda, ta, i, k), b = eb(B, ldb, tb, k, j);
                double p = rounded ? (double)bf(alpha * a) * bf(b) : (double)alpha * a * b;
                s += p, mag += fabs(p);
            }
            double e = fabs(got - s), tol = mag * 1.0e-6 + 1e-30;
            worst = e / tol > worst ? e / tol : worst;
            bad += !(e <= tol);
        }
    int same = !memcmp(C1, C2, (size_t)(M * ldc) * 4);
    char lab[160];
    snprintf(lab, sizeof lab, "%s ta=%d tb=%d %lldx%lldx%lld alpha=%g beta=%g",
             hass_gemm_name(kind), ta, tb, (long long)M, (long long)N, (long long)K, (double)alpha,
             (double)beta);
    CHECK_MSG(bad == 0, "%s: %d elements off (worst %.2f of tolerance)", lab, bad, worst);
    if (kind != HASS_GEMM_F32) /* ours: deterministic for any thread count */
        CHECK_MSG(same, "%s: 1 vs 2 threads differ", lab);
    free(A), free(B), free(C0), free(C1), free(C2);
    return bad == 0;
}

int main(void) {
    check_init("test_gemm");
    hass_pool *p1 = hass_pool_create(1), *p2 = hass_pool_create(2);
    static const int64_t sizes[][3] = {{1, 1, 1},     {5, 7, 3},    {16, 16, 32},  {17, 33, 31},
                                       {32, 32, 64},  {33, 17, 65}, {64, 100, 96}, {100, 64, 130},
                                       {130, 47, 33}, {7, 200, 300}};
    for (int kind = 0; kind < HASS_GEMM_COUNT; kind++) {
        if (!hass_gemm_available((hass_gemm_kind)kind)) {
            char why[96];
            snprintf(why, sizeof why, "%s GEMM: not available on this CPU/build",
                     hass_gemm_name((hass_gemm_kind)kind));
            CHECK_SKIP(why);
            continue;
        }
        uint64_t seed = 1;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int ta = 0; ta < 2; ta++)
                for (int tb = 0; tb < 2; tb++)
                    for (int b = 0; b < 2; b++)
                        one_case((hass_gemm_kind)kind, p1, p2, ta, tb, sizes[s][0], sizes[s][1],
                                 sizes[s][2], (float)b, b ? 0.125f + (float)(s % 3) : 1.0f, seed++);
    }
    // the two bf16 kernels sum the same rounded products: they agree closely
    if (hass_gemm_available(HASS_GEMM_BF16_AMX) && hass_gemm_available(HASS_GEMM_BF16_AVX512)) {
        int64_t M = 70, N = 90, K = 200;
        float *A = malloc((size_t)(M * K) * 4), *B = malloc((size_t)(N * K) * 4);
        float *C1 = calloc((size_t)(M * N), 4), *C2 = calloc((size_t)(M * N), 4);
        hass_rng r;
        hass_rng_seed(&r, 77);
        for (int64_t i = 0; i < M * K; i++)
            A[i] = hass_rng_normal(&r);
        for (int64_t i = 0; i < N * K; i++)
            B[i] = hass_rng_normal(&r);
        hass_gemm(HASS_GEMM_BF16_AMX, p2, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
        hass_gemm(HASS_GEMM_BF16_AVX512, p2, 0, 1, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
        CHECK_CLOSE(C1, C2, M * N, 1e-4, 1e-5, "amx vs avx512-bf16");
        free(A), free(B), free(C1), free(C2);
    }
    // the default and the choice by measurement
    hass_gemm_kind k = hass_gemm_pick(p2);
    CHECK(hass_gemm_available(k));
    hass_gemm_set_default(k, p2);
    CHECK(hass_gemm_get_default() == k && hass_gemm_default_pool() == p2);
    hass_gemm_set_default(HASS_GEMM_F32, NULL);
    CHECK(hass_gemm_get_default() == HASS_GEMM_F32);
    printf("gemm kinds available: f32%s%s; picked %s\n",
           hass_gemm_available(HASS_GEMM_BF16_AVX512) ? ", bf16-avx512" : "",
           hass_gemm_available(HASS_GEMM_BF16_AMX) ? ", bf16-amx" : "", hass_gemm_name(k));
    hass_pool_destroy(p1), hass_pool_destroy(p2);
    return check_exit();
}
