/*
 * bench_ops.c — speed of the ops kernels against what the machine can do.
 *   (a) memory read bandwidth (sum over a 1 GiB buffer; 1 and 2 threads) and the f32 FMA peak;
 *   (b) hass_matmul at the decode shapes of a LLaMA-like 125M model (d 768, ffn 2048, vocab
 *       32000) for n = 1..64 rows, f32 and bf16 weights: GFLOP/s, GB/s of weights, and the
 *       cost ratio t(n)/t(1) of a whole "layer" (the sum of the shapes);
 *   (c) OpenBLAS cblas_sgemm on the same f32 shapes, in the same run;
 *   (d) kernel efficiency: one thread, weights in L2, timed by the thread's CPU clock, so that
 *       the GFLOP/s can be read against the FMA peak even on a shared, loaded machine;
 *   (e) hass_attention over 527 keys (H 12, Dh 64) for 1 and 16 new rows.
 * Weights rotate over enough copies to exceed the last-level cache, so every product streams
 * its weights from memory as decoding does. Fixed seed, one warm-up, median of N.
 *
 * Output: CSV rows `name,shape,threads,iters,ms,gflops_or_gbs` on stdout (the unit is in the
 * name: *_gbs rows are GB/s, *_gflops rows GFLOP/s, *_ratio rows t(n)/t(1)), and '#' comment
 * lines with a readable summary. `--quick` runs a ~5 s subset (CI).
 */
#include "core/core.h"
#include "ops/ops.h"

#include "bench_util.h"
#include "train/blas.h"
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXREP 64

static double median(double *t, int n) {
    return bench_median(t, n);
}

/* ---- (a) read bandwidth and FMA peak ---- */
/* 12 independent FMA chains per thread: the f32 FMA throughput of one core. */
typedef struct {
    int64_t iters;
    float out[16];
} fma_ctx;

__attribute__((target("avx2,fma"))) static void fma_task(void *p, int ith, int nth) {
    (void)nth;
    fma_ctx *c = p;
    __m256 a[12], m = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (int j = 0; j < 12; j++)
        a[j] = _mm256_set1_ps((float)j);
    for (int64_t i = 0; i < c->iters; i++)
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            a[j] = _mm256_fmadd_ps(a[j], m, b);
    for (int j = 1; j < 12; j++)
        a[0] = _mm256_add_ps(a[0], a[j]);
    float l[8];
    _mm256_storeu_ps(l, a[0]);
    c->out[ith] = l[0];
}

static void empty_task(void *p, int ith, int nth) {
    (void)p, (void)ith, (void)nth;
}

static double bench_bandwidth(hass_pool *pool, int nt, size_t bytes, int reps) {
    double gbs = bench_read_bandwidth(pool, nt, bytes, reps);
    printf("read_bw_gbs,%zuMiB,%d,%d,%.3f,%.2f\n", bytes >> 20, nt, reps,
           (double)bytes / gbs * 1e-6, gbs);
    return gbs;
}

static double bench_fma_cpu(int64_t iters) {
    fma_ctx c = {iters, {0}};
    double t[5];
    for (int r = 0; r < 5; r++) {
        double t0 = bench_cpu_now();
        fma_task(&c, 0, 1);
        t[r] = bench_cpu_now() - t0;
    }
    double tm = median(t, 5), gf = (double)c.iters * 12 * 16 / tm * 1e-9;
    printf("fma_peak_cpu_gflops,12x8lanes,1,5,%.3f,%.1f\n", tm * 1e3, gf);
    return gf;
}

static double bench_fma(hass_pool *pool, int nt, int64_t iters) {
    fma_ctx c = {iters, {0}};
    double t[5];
    hass_pool_run_n(pool, nt, fma_task, &c);
    for (int r = 0; r < 5; r++) {
        double t0 = hass_now();
        hass_pool_run_n(pool, nt, fma_task, &c);
        t[r] = hass_now() - t0;
    }
    double tm = median(t, 5), gf = (double)c.iters * 12 * 16 * nt / tm * 1e-9;
    printf("fma_peak_gflops,12x8lanes,%d,5,%.3f,%.1f\n", nt, tm * 1e3, gf);
    return gf;
}

/* ---- kernel efficiency: one thread, weights resident in L2, timed by the thread's CPU clock
 * (so other processes on a shared machine do not count): achieved GFLOP/s vs the FMA peak. */
static void bench_incache(hass_rng *rng, int quick) {
    static const int64_t ns[] = {1, 4, 8, 16, 64};
    const int64_t out = 64, in = 1536; /* 384 KiB of f32: fits the 512 KiB L2 */
    float *x = malloc((size_t)(64 * in) * sizeof(float));
    float *y = malloc((size_t)(64 * out) * sizeof(float));
    float *wf = hass_aligned_alloc((size_t)(out * in) * sizeof(float));
    uint16_t *wb = hass_aligned_alloc((size_t)(out * in) * sizeof(uint16_t));
    HASS_ASSERT(x && y && wf && wb);
    for (int64_t i = 0; i < 64 * in; i++)
        x[i] = hass_rng_uniform(rng) - 0.5f;
    for (int64_t i = 0; i < out * in; i++) {
        wf[i] = hass_rng_uniform(rng) - 0.5f;
        wb[i] = hass_f32_to_bf16(wf[i]);
    }
    for (int d = 0; d < 2; d++)
        for (int k = 0; k < 5; k++) {
            int64_t n = ns[k];
            const void *w = d ? (const void *)wb : (const void *)wf;
            hass_dtype t = d ? HASS_DTYPE_BF16 : HASS_DTYPE_F32;
            double tt[MAXREP];
            int reps = quick ? 3 : 9, iters = 0;
            for (int r = 0; r < reps; r++) {
                double t0 = bench_cpu_now();
                int it = 0;
                do {
                    hass_matmul(NULL, y, x, w, t, n, in, out);
                    it++;
                } while (bench_cpu_now() - t0 < 0.01);
                tt[r] = (bench_cpu_now() - t0) / it;
                iters += it;
            }
            double tm = median(tt, reps);
            printf("incache_%s_gflops,%lldx%lld_n%lld,1,%d,%.4f,%.2f\n", d ? "bf16" : "f32",
                   (long long)out, (long long)in, (long long)n, iters, tm * 1e3,
                   2.0 * (double)(n * in * out) / tm * 1e-9);
        }
    free(x), free(y), hass_aligned_free(wf), hass_aligned_free(wb);
}

/* ---- attention, 527 keys in all (context + n new rows, causal among the new rows), LLaMA-125M
 * heads (H 12, Dh 64); wall clock, median. */
static void bench_attention(hass_pool *pool, int maxt, hass_rng *rng, int quick) {
    const int64_t H = 12, Hkv = 12, Dh = 64, P = 511, NMAX = 16;
    float *q = malloc((size_t)(NMAX * H * Dh) * sizeof(float));
    float *k = malloc((size_t)((P + NMAX) * Hkv * Dh) * sizeof(float));
    float *v = malloc((size_t)((P + NMAX) * Hkv * Dh) * sizeof(float));
    float *o = malloc((size_t)(NMAX * H * Dh) * sizeof(float));
    float *scr = malloc(hass_attention_scratch(pool, P + NMAX) * sizeof(float));
    HASS_ASSERT(q && k && v && o && scr);
    for (int64_t i = 0; i < NMAX * H * Dh; i++)
        q[i] = hass_rng_uniform(rng) - 0.5f;
    for (int64_t i = 0; i < (P + NMAX) * Hkv * Dh; i++) {
        k[i] = hass_rng_uniform(rng) - 0.5f;
        v[i] = hass_rng_uniform(rng) - 0.5f;
    }
    static const int64_t ns[] = {1, 16};
    for (int nt = 1; nt <= maxt; nt++)
        for (int a = 0; a < 2; a++) {
            double tt[MAXREP];
            int reps = quick ? 5 : 21;
            for (int r = 0; r < reps; r++) {
                double t0 = hass_now();
                hass_attention(nt == 1 ? NULL : pool, o, q, k, v, P + NMAX - ns[a], ns[a], NULL, H,
                               Hkv, Dh, scr);
                tt[r] = hass_now() - t0;
            }
            double tm = median(tt, reps);
            double flops = 4.0 * (double)(ns[a] * H * Dh) * (double)(P + NMAX);
            printf("attention_gflops,past%lld_n%lld_H%lld_Dh%lld,%d,%d,%.4f,%.2f\n",
                   (long long)(P + NMAX - ns[a]), (long long)ns[a], (long long)H, (long long)Dh, nt,
                   reps, tm * 1e3, flops / tm * 1e-9);
        }
    free(q), free(k), free(v), free(o), free(scr);
}

/* ---- (b, c) matmul ---- */
typedef struct {
    int64_t out, in;
} shape;

static const shape SHAPES[] = {{768, 768}, {256, 768}, {2048, 768}, {768, 2048}, {32000, 768}};
#define NSHAPES 5
static const int64_t NS[] = {1, 2, 4, 8, 16, 32, 64};
#define NNS 7

/* Copies of W rotated per iteration so that they do not fit in the 32 MiB L3 (>= 48 or 96 MiB
 * in all). */
typedef struct {
    void *w[MAXREP];
    int ncopies;
    size_t bytes;
} wset;

static wset make_weights(hass_rng *rng, hass_dtype t, shape s, size_t rotate_bytes) {
    wset ws = {{0}, 0, hass_dtype_bytes(t, (size_t)(s.out * s.in))};
    ws.ncopies = (int)(rotate_bytes / ws.bytes + 1);
    if (ws.ncopies > MAXREP)
        ws.ncopies = MAXREP;
    ws.w[0] = hass_aligned_alloc(ws.bytes);
    HASS_ASSERT(ws.w[0]);
    for (int64_t i = 0; i < s.out * s.in; i++) {
        float v = (hass_rng_uniform(rng) - 0.5f) * 0.1f;
        if (t == HASS_DTYPE_F32)
            ((float *)ws.w[0])[i] = v;
        else
            ((uint16_t *)ws.w[0])[i] = hass_f32_to_bf16(v);
    }
    for (int c = 1; c < ws.ncopies; c++) {
        ws.w[c] = hass_aligned_alloc(ws.bytes);
        HASS_ASSERT(ws.w[c]);
        memcpy(ws.w[c], ws.w[0], ws.bytes);
    }
    return ws;
}

static void free_weights(wset *ws) {
    for (int c = 0; c < ws->ncopies; c++)
        hass_aligned_free(ws->w[c]);
}

/* Median seconds of one product; iterations sized to ~budget seconds. */
static double time_matmul(hass_pool *pool, int blas, const wset *ws, hass_dtype t, shape s,
                          int64_t n, const float *x, float *y, double budget, int *iters_out) {
    int it = 0;
    double tt[MAXREP];
    double t0 = hass_now();
    do {
        const void *w = ws->w[it % ws->ncopies];
        double a = hass_now();
        if (blas)
            hass_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)s.out, (int)s.in,
                             1.0f, x, (int)s.in, w, (int)s.in, 0.0f, y, (int)s.out);
        else
            hass_matmul(pool, y, x, w, t, n, s.in, s.out);
        tt[it++] = hass_now() - a;
    } while (it < MAXREP && (it < 3 || hass_now() - t0 < budget));
    *iters_out = it - 1;
    return median(tt + 1, it - 1); /* the first is the warm-up */
}

int main(int argc, char **argv) {
    int quick = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else {
            fprintf(stderr, "usage: bench_ops [--quick]\n");
            return 2;
        }
    }
    hass_rng rng;
    hass_rng_seed(&rng, 42);
    int ncpu = hass_cpu_count(), maxt = ncpu < 2 ? ncpu : 2;
    hass_pool *pool = hass_pool_create(maxt);
    HASS_ASSERT(pool);
    double load[3] = {0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3)
            load[0] = load[1] = load[2] = -1;
        fclose(lf);
    }
    printf("# bench_ops%s: isa %s, %d cpus, load average %.2f %.2f %.2f, openblas %s\n",
           quick ? " --quick" : "", hass_cpu_isa_name(), ncpu, load[0], load[1], load[2],
           hass_blas_name());
    printf("name,shape,threads,iters,ms,gflops_or_gbs\n");

    /* (a) */
    double bw[3] = {0}, fma[3] = {0};
    {
        int reps = quick ? 3 : 7;
        size_t bytes = quick ? (size_t)256 << 20 : (size_t)1 << 30;
        for (int nt = 1; nt <= maxt; nt++)
            bw[nt] = bench_bandwidth(pool, nt, bytes, reps);
        if (hass_cpu_features() & HASS_CPU_AVX2) {
            for (int nt = 1; nt <= maxt; nt++)
                fma[nt] = bench_fma(pool, nt, quick ? 4000000 : 20000000);
            fma[0] = bench_fma_cpu(quick ? 4000000 : 20000000);
            bench_incache(&rng, quick);
        }
        bench_attention(pool, maxt, &rng, quick);
        double t[MAXREP];
        int reps_d = quick ? 8 : MAXREP;
        for (int r = 0; r < reps_d; r++) {
            double t0 = hass_now();
            for (int k = 0; k < 1000; k++)
                hass_pool_run(pool, empty_task, NULL);
            t[r] = (hass_now() - t0) / 1000;
        }
        double td = median(t, reps_d);
        printf("pool_dispatch_us,empty,%d,%d,%.5f,%.3f\n", maxt, 1000 * reps_d, td * 1e3, td * 1e6);
    }

    /* (b) and (c) */
    const hass_dtype dts[2] = {HASS_DTYPE_F32, HASS_DTYPE_BF16};
    const int64_t nmax = 64;
    float *x = malloc((size_t)(nmax * 2048) * sizeof(float));
    float *y = malloc((size_t)(nmax * 32000) * sizeof(float));
    HASS_ASSERT(x && y);
    for (int64_t i = 0; i < nmax * 2048; i++)
        x[i] = hass_rng_normal(&rng);
    /* layer[d][impl][nt][k]: summed medians over the shapes; impl 0 = hass, 1 = openblas */
    static double layer[2][2][3][NNS];
    static double layer_bytes[2];
    int nts[2] = {1, maxt}, nnt = maxt > 1 ? 2 : 1;
    double budget = quick ? 0.02 : 0.25;
    for (int d = 0; d < 2; d++)
        for (int si = 0; si < NSHAPES; si++) {
            shape s = SHAPES[si];
            if (quick && si < 2)
                continue;
            wset ws = make_weights(&rng, dts[d], s, quick ? (size_t)48 << 20 : (size_t)96 << 20);
            layer_bytes[d] += (double)ws.bytes;
            for (int ti = quick ? 1 : 0; ti < nnt; ti++) {
                int nt = nts[ti];
                hass_pool *p = nt == 1 ? NULL : pool;
                for (int k = 0; k < NNS; k++) {
                    int64_t n = NS[k];
                    if (quick && n != 1 && n != 8 && n != 16)
                        continue;
                    for (int impl = 0; impl < (dts[d] == HASS_DTYPE_F32 ? 2 : 1); impl++) {
                        if (impl)
                            hass_blas_set_threads(nt);
                        int iters;
                        double tm = time_matmul(p, impl, &ws, dts[d], s, n, x, y, budget, &iters);
                        layer[d][impl][nt][k] += tm;
                        const char *nm = impl ? "sgemm_openblas" : d ? "matmul_bf16" : "matmul_f32";
                        double gf = 2.0 * (double)n * (double)s.in * (double)s.out / tm * 1e-9;
                        printf("%s_gflops,%lldx%lld_n%lld,%d,%d,%.4f,%.2f\n", nm, (long long)s.out,
                               (long long)s.in, (long long)n, nt, iters, tm * 1e3, gf);
                        printf("%s_gbs,%lldx%lld_n%lld,%d,%d,%.4f,%.2f\n", nm, (long long)s.out,
                               (long long)s.in, (long long)n, nt, iters, tm * 1e3,
                               (double)ws.bytes / tm * 1e-9);
                        fflush(stdout);
                    }
                }
            }
            free_weights(&ws);
        }
    /* layer summary */
    printf("# layer = sum of the shapes%s; bandwidth 1t %.1f GB/s, %dt %.1f GB/s; FMA peak 1t "
           "%.1f, %dt %.1f GFLOP/s (wall), 1t %.1f GFLOP/s (thread CPU time)\n",
           quick ? " (quick: 2048x768, 768x2048, 32000x768 only)" : "", bw[1], maxt, bw[maxt],
           fma[1], maxt, fma[maxt], fma[0]);
    printf("# %-14s %3s %4s %9s %7s %8s %8s %6s\n", "impl", "thr", "n", "ms", "ratio", "GB/s",
           "GFLOP/s", "%bw");
    for (int d = 0; d < 2; d++)
        for (int impl = 0; impl < (d == 0 ? 2 : 1); impl++)
            for (int ti = quick ? 1 : 0; ti < nnt; ti++) {
                int nt = nts[ti];
                double macs_per_row = layer_bytes[d] / (d ? 2.0 : 4.0);
                for (int k = 0; k < NNS; k++) {
                    double tm = layer[d][impl][nt][k];
                    if (tm == 0)
                        continue;
                    const char *nm = impl ? "sgemm_openblas" : d ? "matmul_bf16" : "matmul_f32";
                    double ratio = tm / layer[d][impl][nt][0];
                    printf("%s_layer_ratio,n%lld,%d,1,%.4f,%.3f\n", nm, (long long)NS[k], nt,
                           tm * 1e3, ratio);
                    double gbs = layer_bytes[d] / tm * 1e-9;
                    printf("# %-14s %3d %4lld %9.3f %7.3f %8.2f %8.1f %5.0f%%\n", nm, nt,
                           (long long)NS[k], tm * 1e3, ratio, gbs,
                           2.0 * macs_per_row * (double)NS[k] / tm * 1e-9, 100.0 * gbs / bw[nt]);
                }
            }
    free(x);
    free(y);
    hass_pool_destroy(pool);
    return 0;
}
