/*
 * bench_ops.c — speed of the ops kernels against what the machine can do.
 *   (a) memory read bandwidth (a sum over 1 GiB with the widest loads the CPU has, AVX-512
 *       where present; 1 and 2 threads) and the f32 FMA peak (8 and 16 lanes);
 *   (b) every kernel set the CPU has side by side (scalar, avx2, avx512, avx512bf16, amx, chosen
 *       with hass_cpu_force), a row per kernel and shape: the decode products of a LLaMA-like
 *       125M model with weights streamed from memory (GB/s, and the fraction of (a)), batched
 *       products (GFLOP/s), stories260K's small products in cache, attention at head dims 8,
 *       64 and 128, rmsnorm, SwiGLU and exp;
 *   (c) hass_matmul at the decode shapes (d 768, ffn 2048, vocab 32000) for n = 1..64 rows,
 *       f32 and bf16, with the cost ratio t(n)/t(1) of a whole "layer" (the sum of the shapes),
 *       beside OpenBLAS cblas_sgemm on the same f32 shapes;
 *   (d) kernel efficiency: one thread, weights in L2, timed by the thread's CPU clock, so that
 *       the GFLOP/s can be read against the FMA peak even on a shared, loaded machine.
 * Weights rotate over >= 1 GiB of copies (more than any last-level cache), so every product
 * streams its weights from memory as decoding does. Fixed seed, one warm-up, median of N; in (b)
 * the kernel sets alternate rep by rep so that they see the same machine.
 *
 * Output: CSV rows `name,shape,threads,iters,ms,gflops_or_gbs` on stdout (the unit is in the
 * name: *_gbs rows are GB/s, *_gflops rows GFLOP/s, *_ratio rows t(n)/t(1), *_nspe ns per
 * element; in (b) the shape ends in @isa), and '#' comment lines with readable tables.
 * `--quick` runs a subset (CI); `--table` stops after (a) and (b).
 */
#include "core/core.h"
#include "ops/ops.h"

#include "bench_util.h"
#include "train/blas.h"
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXREP 64
#define ROTATE_BYTES ((size_t)1 << 30) /* weights copies: more than any last-level cache */

/* ---- (a) read bandwidth and FMA peak ---- */
/* 12 independent FMA chains per thread: the f32 FMA throughput of one core, 8 or 16 lanes. */
typedef struct {
    int64_t iters;
    int lanes;
    float out[16];
} fma_ctx;

static void fma_task(void *p, int ith, int nth) {
    (void)nth;
    fma_ctx *c = p;
    c->out[ith & 15] = c->lanes == 16 ? bench_fma_chains16(c->iters) : bench_fma_chains8(c->iters);
}

static void empty_task(void *p, int ith, int nth) {
    (void)p, (void)ith, (void)nth;
}

/* GFLOP/s of nt threads (wall clock), or of one thread by its CPU clock when nt == 0. */
static double bench_fma(hass_pool *pool, int nt, int lanes, int64_t iters) {
    fma_ctx c = {iters, lanes, {0}};
    double t[5];
    for (int r = 0; r < 5; r++) {
        double t0 = nt ? hass_now() : bench_cpu_now();
        if (nt)
            hass_pool_run_n(pool, nt, fma_task, &c);
        else
            fma_task(&c, 0, 1);
        t[r] = (nt ? hass_now() : bench_cpu_now()) - t0;
    }
    double tm = bench_median(t, 5), gf = (double)iters * 12 * 2 * lanes * (nt ? nt : 1) / tm * 1e-9;
    printf("fma_peak%s_gflops,12x%dlanes,%d,5,%.3f,%.1f\n", nt ? "" : "_cpu", lanes, nt ? nt : 1,
           tm * 1e3, gf);
    return gf;
}

/* ---- weights: copies of one matrix rotated per product, >= ROTATE_BYTES in all, so that a
 * product streams its weights from memory ---- */
typedef struct {
    int64_t out, in;
} shape;

typedef struct {
    uint8_t *base;
    size_t bytes, stride;
    int ncopies;
} wset;

static wset make_weights(hass_rng *rng, hass_dtype t, shape s, size_t rotate_bytes) {
    wset ws = {NULL, hass_dtype_bytes(t, (size_t)(s.out * s.in)), 0, 0};
    ws.stride = (ws.bytes + 4095) & ~(size_t)4095;
    ws.ncopies = (int)(rotate_bytes / ws.stride + 1);
    ws.base = hass_aligned_alloc(ws.stride * (size_t)ws.ncopies);
    HASS_ASSERT(ws.base);
    for (int64_t i = 0; i < s.out * s.in; i++) {
        float v = (hass_rng_uniform(rng) - 0.5f) * 0.1f;
        if (t == HASS_DTYPE_F32)
            ((float *)ws.base)[i] = v;
        else
            ((uint16_t *)ws.base)[i] = hass_f32_to_bf16(v);
    }
    for (int c = 1; c < ws.ncopies; c++)
        memcpy(ws.base + (size_t)c * ws.stride, ws.base, ws.bytes);
    return ws;
}

static const void *wcopy(const wset *ws, int i) {
    return ws->base + (size_t)(i % ws->ncopies) * ws->stride;
}

/* ---- (b) every kernel set side by side ---- */
typedef struct {
    int features;
    const char *name;
} kset;

static int kernel_sets(kset *ks) {
    int f = hass_cpu_available(), n = 0;
    ks[n++] = (kset){0, "scalar"};
    if (f & HASS_CPU_AVX2)
        ks[n++] = (kset){HASS_CPU_AVX2, "avx2"};
    if (f & HASS_CPU_AVX512)
        ks[n++] = (kset){HASS_CPU_AVX2 | HASS_CPU_AVX512, "avx512"};
    if (f & HASS_CPU_AVX512BF16)
        ks[n++] = (kset){f & ~HASS_CPU_AMX, "avx512bf16"};
    if (f & HASS_CPU_AMX)
        ks[n++] = (kset){f, "amx"};
    return n;
}

/* One case of the table: run(ctx, i) does the i-th call, `work` is what one call processes
 * (bytes for *_gbs rows, flops for *_gflops, elements for *_nspe). Timed by the wall clock with
 * `threads` threads, or by the thread's CPU clock when threads == 1. */
typedef struct {
    const char *name, *unit; /* "matmul", "gbs" */
    char shape[64];
    int threads;
    double work;
    void (*run)(void *ctx, int i);
    void *ctx;
} kcase;

#define MAXSETS 5
static double g_bw[3]; /* (a): read bandwidth, 1 and 2 threads */

static void side_by_side(const kcase *kc, const kset *ks, int nks, int quick) {
    double tt[MAXSETS][MAXREP], val[MAXSETS];
    int reps = quick ? 5 : 15, it[MAXSETS] = {0};
    for (int k = 0; k < nks; k++) { /* warm-up */
        hass_cpu_force(ks[k].features);
        kc->run(kc->ctx, it[k]++);
    }
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < nks; k++) {
            hass_cpu_force(ks[k].features);
            int calls = 0;
            double t0 = kc->threads > 1 ? hass_now() : bench_cpu_now(), t;
            do { /* at least 2 ms per sample */
                kc->run(kc->ctx, it[k]++);
                calls++;
                t = (kc->threads > 1 ? hass_now() : bench_cpu_now()) - t0;
            } while (t < 0.002);
            tt[k][r] = t / calls;
        }
    hass_cpu_force(-1);
    printf("# %-8s %-34s", kc->name, kc->shape);
    for (int k = 0; k < nks; k++) {
        double tm = bench_median(tt[k], reps);
        int nspe = !strcmp(kc->unit, "nspe");
        val[k] = nspe ? tm * 1e9 / kc->work : kc->work / tm * 1e-9;
        printf(" %10.2f", val[k]);
    }
    if (!strcmp(kc->unit, "gbs") && g_bw[kc->threads] > 0) /* the default's fraction of (a) */
        printf("   %3.0f%%", 100.0 * val[nks - 1] / g_bw[kc->threads]);
    printf("\n");
    for (int k = 0; k < nks; k++)
        printf("%s_%s,%s@%s,%d,%d,%.4f,%.3f\n", kc->name, kc->unit, kc->shape, ks[k].name,
               kc->threads, reps, bench_median(tt[k], reps) * 1e3, val[k]);
    fflush(stdout);
}

typedef struct {
    hass_pool *pool;
    const wset *ws;
    hass_dtype t;
    shape s;
    int64_t n;
    const float *x;
    float *y;
} mm_ctx;

static void run_matmul(void *p, int i) {
    mm_ctx *c = p;
    hass_matmul(c->pool, c->y, c->x, wcopy(c->ws, i), c->t, c->n, c->s.in, c->s.out);
}

typedef struct {
    hass_pool *pool;
    int64_t H, Hkv, Dh, past, n;
    float *q, *k, *v, *o, *scr;
} at_ctx;

static void run_attention(void *p, int i) {
    (void)i;
    at_ctx *c = p;
    hass_attention(c->pool, c->o, c->q, c->k, c->v, c->past, c->n, NULL, c->H, c->Hkv, c->Dh,
                   c->scr);
}

typedef struct {
    int op; /* 0 rmsnorm, 1 silu_mul, 2 exp */
    int64_t n;
    float *x, *y, *w;
} row_ctx;

static void run_rows(void *p, int i) {
    (void)i;
    row_ctx *c = p;
    if (c->op == 0)
        hass_rmsnorm(c->y, c->x, c->w, 1, c->n, 1e-5f);
    else if (c->op == 1)
        hass_silu_mul(c->y, c->w, c->n);
    else {
        memcpy(c->y, c->x, (size_t)c->n * sizeof(float));
        hass_exp_inplace(c->y, c->n);
    }
}

static float *rand_vec(hass_rng *rng, int64_t n, float scale) {
    float *p = hass_aligned_alloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    HASS_ASSERT(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = (hass_rng_uniform(rng) - 0.5f) * scale;
    return p;
}

static void isa_table(hass_pool *pool, int maxt, hass_rng *rng, int quick) {
    kset ks[MAXSETS];
    int nks = kernel_sets(ks);
    printf("# (b) every kernel set side by side: GB/s of weights (matmul from memory; %% = the "
           "default's fraction of the %d-thread read bandwidth), GFLOP/s, or ns per element\n",
           maxt);
    printf("# %-8s %-34s", "kernel", "shape");
    for (int k = 0; k < nks; k++)
        printf(" %10s", ks[k].name);
    printf("\n");
    float *x = rand_vec(rng, 64 * 2048, 2.0f), *y = hass_aligned_alloc(64 * 32000 * 4);
    HASS_ASSERT(y);
    /* decode products from memory, and a batch of 16 rows */
    static const shape mem_shapes[] = {{2048, 768}, {768, 2048}, {32000, 768}};
    static const hass_dtype dts[] = {HASS_DTYPE_F32, HASS_DTYPE_BF16};
    for (int d = 0; d < 2; d++)
        for (int si = quick ? 2 : 0; si < 3; si++) {
            shape s = mem_shapes[si];
            wset ws = make_weights(rng, dts[d], s, quick ? ROTATE_BYTES / 2 : ROTATE_BYTES);
            for (int b = 0; b < (quick ? 1 : 2); b++) {
                int64_t n = b ? 16 : 1;
                mm_ctx c = {pool, &ws, dts[d], s, n, x, y};
                kcase kc = {"matmul",
                            b ? "gflops" : "gbs",
                            "",
                            maxt,
                            b ? 2.0 * (double)(n * s.in * s.out) : (double)ws.bytes,
                            run_matmul,
                            &c};
                snprintf(kc.shape, sizeof kc.shape, "%s_%lldx%lld_n%lld", hass_dtype_name(dts[d]),
                         (long long)s.out, (long long)s.in, (long long)n);
                side_by_side(&kc, ks, nks, quick);
            }
            hass_aligned_free(ws.base);
        }
    /* stories260K's products (in cache, one thread) */
    static const shape small[] = {{64, 64}, {172, 64}, {64, 172}, {512, 64}};
    for (int si = 0; si < 4; si++) {
        shape s = small[si];
        wset ws = make_weights(rng, HASS_DTYPE_F32, s, 0);
        mm_ctx c = {NULL, &ws, HASS_DTYPE_F32, s, 1, x, y};
        kcase kc = {"matmul", "gflops", "", 1, 2.0 * (double)(s.in * s.out), run_matmul, &c};
        snprintf(kc.shape, sizeof kc.shape, "f32_%lldx%lld_n1_incache", (long long)s.out,
                 (long long)s.in);
        side_by_side(&kc, ks, nks, quick);
        hass_aligned_free(ws.base);
    }
    /* attention over a KV cache: stories260K heads, LLaMA-125M heads, LLaMA-8B-like heads */
    static const int64_t att[][5] = {
        {8, 4, 8, 255, 1}, {12, 4, 64, 511, 1}, {12, 4, 64, 496, 16}, {32, 8, 128, 511, 1}};
    for (int a = 0; a < 4; a++) {
        int64_t H = att[a][0], Hkv = att[a][1], Dh = att[a][2], P = att[a][3], n = att[a][4];
        int64_t nk = P + n;
        at_ctx c = {NULL,
                    H,
                    Hkv,
                    Dh,
                    P,
                    n,
                    rand_vec(rng, n * H * Dh, 2.0f),
                    rand_vec(rng, nk * Hkv * Dh, 2.0f),
                    rand_vec(rng, nk * Hkv * Dh, 2.0f),
                    rand_vec(rng, n * H * Dh, 0.0f),
                    hass_aligned_alloc(hass_attention_scratch(NULL, nk) * sizeof(float))};
        HASS_ASSERT(c.scr);
        kcase kc = {"attention",   "gflops", "", 1, 4.0 * (double)(n * H * Dh) * (double)nk,
                    run_attention, &c};
        snprintf(kc.shape, sizeof kc.shape, "H%lld_Hkv%lld_Dh%lld_keys%lld_n%lld", (long long)H,
                 (long long)Hkv, (long long)Dh, (long long)nk, (long long)n);
        side_by_side(&kc, ks, nks, quick);
        hass_aligned_free(c.q), hass_aligned_free(c.k), hass_aligned_free(c.v);
        hass_aligned_free(c.o), hass_aligned_free(c.scr);
    }
    /* row ops */
    static const char *rname[] = {"rmsnorm", "silu_mul", "exp"};
    static const int64_t rn[] = {768, 2048, 4096};
    for (int op = 0; op < 3; op++) {
        row_ctx c = {op, rn[op], rand_vec(rng, rn[op], 8.0f), rand_vec(rng, rn[op], 8.0f),
                     rand_vec(rng, rn[op], 2.0f)};
        kcase kc = {rname[op], "nspe", "", 1, (double)rn[op], run_rows, &c};
        snprintf(kc.shape, sizeof kc.shape, "n%lld", (long long)rn[op]);
        side_by_side(&kc, ks, nks, quick);
        hass_aligned_free(c.x), hass_aligned_free(c.y), hass_aligned_free(c.w);
    }
    hass_aligned_free(x), hass_aligned_free(y);
}

/* ---- (d) kernel efficiency: one thread, weights resident in L2, timed by the thread's CPU clock
 * (so other processes on a shared machine do not count): achieved GFLOP/s vs the FMA peak. */
static void bench_incache(hass_rng *rng, int quick) {
    static const int64_t ns[] = {1, 4, 8, 16, 64};
    const int64_t out = 64, in = 1536; /* 384 KiB of f32: fits a 512 KiB L2 */
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
            double tm = bench_median(tt, reps);
            printf("incache_%s_gflops,%lldx%lld_n%lld,1,%d,%.4f,%.2f\n", d ? "bf16" : "f32",
                   (long long)out, (long long)in, (long long)n, iters, tm * 1e3,
                   2.0 * (double)(n * in * out) / tm * 1e-9);
        }
    free(x), free(y), hass_aligned_free(wf), hass_aligned_free(wb);
}

/* ---- (c) matmul over n, against OpenBLAS ---- */
static const shape SHAPES[] = {{768, 768}, {256, 768}, {2048, 768}, {768, 2048}, {32000, 768}};
#define NSHAPES 5
static const int64_t NS[] = {1, 2, 4, 8, 16, 32, 64};
#define NNS 7

/* Median seconds of one product; iterations sized to ~budget seconds. */
static double time_matmul(hass_pool *pool, int blas, const wset *ws, hass_dtype t, shape s,
                          int64_t n, const float *x, float *y, double budget, int *iters_out) {
    int it = 0;
    double tt[MAXREP];
    double t0 = hass_now();
    do {
        const void *w = wcopy(ws, it);
        double a = hass_now();
        if (blas)
            hass_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)s.out, (int)s.in,
                             1.0f, x, (int)s.in, w, (int)s.in, 0.0f, y, (int)s.out);
        else
            hass_matmul(pool, y, x, w, t, n, s.in, s.out);
        tt[it++] = hass_now() - a;
    } while (it < MAXREP && (it < 3 || hass_now() - t0 < budget));
    *iters_out = it - 1;
    return bench_median(tt + 1, it - 1); /* the first is the warm-up */
}

static void layer_sweep(hass_pool *pool, int maxt, hass_rng *rng, int quick, const double *fma) {
    const hass_dtype dts[2] = {HASS_DTYPE_F32, HASS_DTYPE_BF16};
    const int64_t nmax = 64;
    float *x = malloc((size_t)(nmax * 2048) * sizeof(float));
    float *y = malloc((size_t)(nmax * 32000) * sizeof(float));
    HASS_ASSERT(x && y);
    for (int64_t i = 0; i < nmax * 2048; i++)
        x[i] = hass_rng_normal(rng);
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
            wset ws = make_weights(rng, dts[d], s, quick ? ROTATE_BYTES / 2 : ROTATE_BYTES);
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
            hass_aligned_free(ws.base);
        }
    printf("# (c) layer = sum of the shapes%s, isa %s; bandwidth 1t %.1f GB/s, %dt %.1f GB/s; FMA "
           "peak (%d lanes) 1t %.1f, %dt %.1f GFLOP/s (wall), 1t %.1f GFLOP/s (thread CPU time)\n",
           quick ? " (quick: 2048x768, 768x2048, 32000x768 only)" : "", hass_cpu_isa_name(),
           g_bw[1], maxt, g_bw[maxt], (hass_cpu_features() & HASS_CPU_AVX512) ? 16 : 8, fma[1],
           maxt, fma[maxt], fma[0]);
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
                           2.0 * macs_per_row * (double)NS[k] / tm * 1e-9, 100.0 * gbs / g_bw[nt]);
                }
            }
    free(x);
    free(y);
}

int main(int argc, char **argv) {
    int quick = 0, only_table = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--table") == 0) {
            only_table = 1;
        } else {
            fprintf(stderr, "usage: bench_ops [--quick] [--table]\n");
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
    double fma[3] = {0};
    {
        int reps = quick ? 3 : 7;
        bench_bw_buf yard = bench_bw_open((size_t)1 << 30);
        bench_bw_measure(&yard, pool, maxt, 1);
        for (int nt = 1; nt <= maxt; nt++) {
            g_bw[nt] = bench_bw_measure(&yard, pool, nt, reps);
            printf("read_bw_gbs,1GiB-%s,%d,%d,%.3f,%.2f\n", bench_bw_loads_name(), nt, reps,
                   (double)yard.bytes / g_bw[nt] * 1e-6, g_bw[nt]);
        }
        bench_bw_close(&yard);
        int64_t iters = quick ? 4000000 : 20000000;
        int lanes = (hass_cpu_available() & HASS_CPU_AVX512) ? 16 : 8;
        if (hass_cpu_available() & HASS_CPU_AVX2) {
            if (lanes == 16)
                bench_fma(pool, maxt, 8, iters);
            for (int nt = 1; nt <= maxt; nt++)
                fma[nt] = bench_fma(pool, nt, lanes, iters);
            fma[0] = bench_fma(pool, 0, lanes, iters);
        }
        double t[MAXREP];
        int reps_d = quick ? 8 : MAXREP;
        for (int r = 0; r < reps_d; r++) {
            double t0 = hass_now();
            for (int k = 0; k < 1000; k++)
                hass_pool_run(pool, empty_task, NULL);
            t[r] = (hass_now() - t0) / 1000;
        }
        double td = bench_median(t, reps_d);
        printf("pool_dispatch_us,empty,%d,%d,%.5f,%.3f\n", maxt, 1000 * reps_d, td * 1e3, td * 1e6);
    }
    isa_table(pool, maxt, &rng, quick); /* (b) */
    if (only_table) {
        hass_pool_destroy(pool);
        return 0;
    }
    if (hass_cpu_available() & HASS_CPU_AVX2)
        bench_incache(&rng, quick);            /* (d) */
    layer_sweep(pool, maxt, &rng, quick, fma); /* (c) */
    hass_pool_destroy(pool);
    return 0;
}
