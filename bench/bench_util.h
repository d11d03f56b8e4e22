/*
 * bench_util.h — what the benchmarks share: medians and the machine's memory read bandwidth,
 * measured by the benchmark itself: a sum over a buffer much larger than the caches (1 GiB or
 * more where it matters: some machines have several hundred MiB of L3) with the widest loads the
 * CPU has, split over the threads, so that a kernel's "fraction of the bandwidth limit" is
 * measured against the best plain streaming read.
 */
#ifndef HASS_BENCH_UTIL_H
#define HASS_BENCH_UTIL_H

#include "core/core.h"

#include <immintrin.h>
#include <stdlib.h>
#include <time.h>

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static inline double bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof(double), bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Seconds of CPU time of the calling thread (not counting time spent waiting for a core). */
static inline double bench_cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The f32 FMA throughput of one core: 12 independent FMA chains of 8 (AVX2) or 16 (AVX-512)
 * lanes; iters x 12 x 2 x lanes flops. Returns a value that depends on every chain. */
__attribute__((target("avx2,fma"))) static inline float bench_fma_chains8(int64_t iters) {
    __m256 a[12], m = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int j = 0; j < 12; j++)
        a[j] = _mm256_set1_ps((float)j);
    for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            a[j] = _mm256_fmadd_ps(a[j], m, b);
    for (int j = 1; j < 12; j++)
        a[0] = _mm256_add_ps(a[0], a[j]);
    return _mm256_cvtss_f32(a[0]);
}

__attribute__((target("avx512f"))) static inline float bench_fma_chains16(int64_t iters) {
    __m512 a[12], m = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    for (int j = 0; j < 12; j++)
        a[j] = _mm512_set1_ps((float)j);
    for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            a[j] = _mm512_fmadd_ps(a[j], m, b);
    for (int j = 1; j < 12; j++)
        a[0] = _mm512_add_ps(a[0], a[j]);
    return _mm512_reduce_add_ps(a[0]);
}

typedef struct {
    const uint64_t *buf;
    int64_t n;
    int loads; /* 2 = avx512, 1 = avx2, 0 = scalar */
    uint64_t sums[64];
} bench_bw_ctx;

__attribute__((target("avx2"))) static inline uint64_t bench_sum_avx2(const uint64_t *p,
                                                                      int64_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_epi64(a0, _mm256_load_si256((const __m256i *)(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_load_si256((const __m256i *)(p + i + 4)));
        a2 = _mm256_add_epi64(a2, _mm256_load_si256((const __m256i *)(p + i + 8)));
        a3 = _mm256_add_epi64(a3, _mm256_load_si256((const __m256i *)(p + i + 12)));
    }
    a0 = _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3));
    uint64_t l[4];
    _mm256_storeu_si256((__m256i *)l, a0);
    uint64_t s = l[0] + l[1] + l[2] + l[3];
    for (; i < n; i++)
        s += p[i];
    return s;
}

/* Four 64-byte loads per step. */
__attribute__((target("avx512f"))) static inline uint64_t bench_sum_avx512(const uint64_t *p,
                                                                           int64_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_add_epi64(a0, _mm512_load_si512((const void *)(p + i)));
        a1 = _mm512_add_epi64(a1, _mm512_load_si512((const void *)(p + i + 8)));
        a2 = _mm512_add_epi64(a2, _mm512_load_si512((const void *)(p + i + 16)));
        a3 = _mm512_add_epi64(a3, _mm512_load_si512((const void *)(p + i + 24)));
    }
    uint64_t s = _mm512_reduce_add_epi64(
        _mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3)));
    for (; i < n; i++)
        s += p[i];
    return s;
}

static inline uint64_t bench_sum_scalar(const uint64_t *p, int64_t n) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += p[i];
        s1 += p[i + 1];
        s2 += p[i + 2];
        s3 += p[i + 3];
    }
    for (; i < n; i++)
        s0 += p[i];
    return s0 + s1 + s2 + s3;
}

/* The widest loads the CPU has (the hardware's, whatever kernels HASS_CPU or hass_cpu_force
 * choose): 2 = AVX-512, 1 = AVX2, 0 = scalar; bench_bw_loads_name() says which. */
static inline int bench_bw_loads(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx2") ? 1 : 0;
}
static inline const char *bench_bw_loads_name(void) {
    static const char *names[] = {"scalar", "avx2", "avx512"};
    return names[bench_bw_loads()];
}

static inline void bench_bw_task(void *p, int ith, int nth) {
    bench_bw_ctx *c = p;
    int64_t lo, hi;
    hass_split(c->n / 32, ith, nth, &lo, &hi);
    const uint64_t *b = c->buf + lo * 32;
    int64_t m = (hi - lo) * 32;
    c->sums[ith & 63] = c->loads == 2   ? bench_sum_avx512(b, m)
                        : c->loads == 1 ? bench_sum_avx2(b, m)
                                        : bench_sum_scalar(b, m);
}

/* A buffer to stream, kept across measurements (so that decode steps can be timed between
 * reads of it). bytes: a multiple of 256. */
typedef struct {
    uint64_t *buf;
    size_t bytes;
} bench_bw_buf;

static inline bench_bw_buf bench_bw_open(size_t bytes) {
    bench_bw_buf b = {hass_aligned_alloc(bytes), bytes};
    HASS_ASSERT(b.buf && bytes % 256 == 0);
    for (size_t i = 0; i < bytes / 8; i++)
        b.buf[i] = i;
    return b;
}

static inline void bench_bw_close(bench_bw_buf *b) {
    hass_aligned_free(b->buf);
    b->buf = NULL;
}

/* Median read bandwidth in GB/s of nt threads over the whole buffer, reps reads. */
static inline double bench_bw_measure(const bench_bw_buf *b, hass_pool *pool, int nt, int reps) {
    bench_bw_ctx c = {b->buf, (int64_t)(b->bytes / 8), bench_bw_loads(), {0}};
    double t[32];
    if (reps > 32)
        reps = 32;
    for (int r = 0; r < reps; r++) {
        double t0 = hass_now();
        hass_pool_run_n(pool, nt, bench_bw_task, &c);
        t[r] = hass_now() - t0;
    }
    return (double)b->bytes / bench_median(t, reps) * 1e-9;
}

/* Median read bandwidth in GB/s of nt threads over a fresh buffer of `bytes` (one warm-up). */
static inline double bench_read_bandwidth(hass_pool *pool, int nt, size_t bytes, int reps) {
    bench_bw_buf b = bench_bw_open(bytes);
    bench_bw_measure(&b, pool, nt, 1);
    double gbs = bench_bw_measure(&b, pool, nt, reps);
    bench_bw_close(&b);
    return gbs;
}

#endif
