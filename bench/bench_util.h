/*
 * bench_util.h — what the benchmarks share: medians and the machine's memory read bandwidth,
 * measured by the benchmark itself (a sum over a buffer much larger than the caches).
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

typedef struct {
    const uint64_t *buf;
    int64_t n;
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

static inline void bench_bw_task(void *p, int ith, int nth) {
    bench_bw_ctx *c = p;
    int64_t lo, hi;
    hass_split(c->n / 16, ith, nth, &lo, &hi);
    c->sums[ith & 63] = __builtin_cpu_supports("avx2")
                            ? bench_sum_avx2(c->buf + lo * 16, (hi - lo) * 16)
                            : bench_sum_scalar(c->buf + lo * 16, (hi - lo) * 16);
}

/* Median read bandwidth in GB/s of nt threads over a buffer of `bytes`. */
static inline double bench_read_bandwidth(hass_pool *pool, int nt, size_t bytes, int reps) {
    uint64_t *buf = hass_aligned_alloc(bytes);
    HASS_ASSERT(buf);
    for (size_t i = 0; i < bytes / 8; i++)
        buf[i] = i;
    bench_bw_ctx c = {buf, (int64_t)(bytes / 8), {0}};
    double t[32];
    if (reps > 32)
        reps = 32;
    hass_pool_run_n(pool, nt, bench_bw_task, &c); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = hass_now();
        hass_pool_run_n(pool, nt, bench_bw_task, &c);
        t[r] = hass_now() - t0;
    }
    double tm = bench_median(t, reps);
    hass_aligned_free(buf);
    return (double)bytes / tm * 1e-9;
}

#endif
