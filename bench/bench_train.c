/*
 * bench_train.c — speed of one draft-head training step (hass_train_step: n alignment steps
 * forward + backward + AdamW) for a d=512, H=8, ffn=1376, V=8192 target at B*T = 2048 tokens,
 * n = 1 (EAGLE) and n = 3 (HASS), on 2 threads; plus OpenBLAS sgemm at 2048x1024x512 measured in
 * the same run for reference.
 *
 * Output: one CSV row per case, `name,shape,threads,iters,ms,gflops,tok_s` (median of the timed
 * iterations after one warm-up). tok_s = B*T / step time.
 *
 * FLOP count (analytic, 2*m*n*k per matrix product; elementwise work, softmax and exp not
 * counted). With N = B*T, Nm = rows with m > 0 (the LM-head products need only those; the
 * headline cases use m = 1 everywhere, so Nm = N), kvd = Hkv*Dh:
 *   once:        target distribution P = softmax(TGT W_h^T):           2 Nm d V
 *   per stream:  forward FC 2 N (2d) d + K,V 2*2 N d kvd;  backward FC dW only (inputs are
 *                detached) 2 N (2d) d, K,V dW and dX 2*2*2 N d kvd
 *   per step j:  forward  Q 2 N d d, O 2 N d d, MLP 3*2 N d ffn, LM head 2 Nm d V,
 *                         attention 4 Dh * (keys of every (b, head, row));
 *                backward 2x the Q, O, MLP products, LM head dH only 2 Nm d V (W_h frozen),
 *                         attention 10 Dh * keys (recomputed scores 2, dP 2, dQ 2, dK 2, dV 2)
 *   keys of row i at step j = max(0, i-j+1) stream-0 keys + one per draft stream k in
 *   [max(1, j-i), j], exactly the masked-in keys (no credit for the causal blocks' waste).
 *
 * Usage: bench_train [--quick] [--threads N]  (quick: one timed iteration, T=512 only)
 */
#include "core/core.h"
#include "train/train.h"

#include "bench_util.h"
#include "train/blas.h"
#include "train/gemm.h"
#include "train/pretrain.h"
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Process CPU seconds (all threads): cpu / wall shows how many cores the run really had. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bench_sgemm(int iters) {
    int M = 2048, N = 1024, K = 512;
    float *A = hass_aligned_alloc((size_t)M * K * 4), *B = hass_aligned_alloc((size_t)K * N * 4);
    float *C = hass_aligned_alloc((size_t)M * N * 4);
    hass_rng r;
    hass_rng_seed(&r, 1);
    for (int i = 0; i < M * K; i++)
        A[i] = hass_rng_uniform(&r) - 0.5f;
    for (int i = 0; i < K * N; i++)
        B[i] = hass_rng_uniform(&r) - 0.5f;
    double t[16];
    for (int it = -1; it < iters; it++) {
        double t0 = hass_now();
        hass_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f,
                         C, N);
        if (it >= 0)
            t[it] = hass_now() - t0;
    }
    qsort(t, (size_t)iters, sizeof(double), cmp_d);
    double med = t[iters / 2];
    hass_aligned_free(A), hass_aligned_free(B), hass_aligned_free(C);
    return med;
}

/* ---- the FMA peak: 12 independent FMA chains per thread, AVX2 (8 lanes) or AVX-512 (16) ---- */
typedef struct {
    int64_t iters;
    int wide;
    float out[16];
} fma_ctx;

static void fma_task(void *p, int ith, int nth) {
    (void)nth;
    fma_ctx *c = p;
    c->out[ith] = c->wide ? bench_fma_chains16(c->iters) : bench_fma_chains8(c->iters);
}

/* GFLOP/s of all pool threads running FMA chains (median of 5). */
static double bench_fma_peak(hass_pool *pool, int wide) {
    fma_ctx c = {wide ? 50000000 : 100000000, wide, {0}};
    double t[5];
    hass_pool_run(pool, fma_task, &c);
    for (int r = 0; r < 5; r++) {
        double t0 = hass_now();
        hass_pool_run(pool, fma_task, &c);
        t[r] = hass_now() - t0;
    }
    qsort(t, 5, sizeof(double), cmp_d);
    return (double)c.iters * 12 * (wide ? 32 : 16) * hass_pool_size(pool) / t[2] * 1e-9;
}

/* One pretraining step (forward + backward + AdamW) of a whole model, shapes as the PyTorch
 * reference script takes them (../shared/bench/torch_train_bench.py: --d --layers --vocab --ff
 * --heads --kv --seq --batch, tied embedding as there). Rows: the FMA peaks of this machine and
 * the step, with GFLOP/s by our analytic count and by the script's 6 * params * tokens. */
static int bench_pretrain(hass_pool *pool, int threads, int iters, int argc, char **argv) {
    hass_lm_config c = {.d = 512,
                        .n_layers = 12,
                        .H = 8,
                        .Hkv = 4,
                        .ffn = 1408,
                        .V = 8192,
                        .ctx = 512,
                        .rms_eps = 1e-5f,
                        .rope_theta = 10000.0f,
                        .tie = 1};
    int64_t B = 4;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--untied")) {
            c.tie = 0;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "bench_train --pretrain: %s needs a value\n", a);
            return 2;
        }
        int64_t v = atoll(argv[++i]);
        if (!strcmp(a, "--d"))
            c.d = v;
        else if (!strcmp(a, "--layers"))
            c.n_layers = v;
        else if (!strcmp(a, "--vocab"))
            c.V = v;
        else if (!strcmp(a, "--ff"))
            c.ffn = v;
        else if (!strcmp(a, "--heads"))
            c.H = v;
        else if (!strcmp(a, "--kv"))
            c.Hkv = v;
        else if (!strcmp(a, "--seq"))
            c.ctx = v;
        else if (!strcmp(a, "--batch"))
            B = v;
        else {
            fprintf(stderr, "bench_train --pretrain: unknown flag %s\n", a);
            return 2;
        }
    }
    double p8 = bench_fma_peak(pool, 0), p16 = 0;
    printf("name,shape,threads,iters,ms,gflops,tok_s\n");
    printf("fma_peak_avx2,12x8lanes,%d,5,,%.1f,\n", threads, p8);
    if (__builtin_cpu_supports("avx512f")) {
        p16 = bench_fma_peak(pool, 1);
        printf("fma_peak_avx512,12x16lanes,%d,5,,%.1f,\n", threads, p16);
    }
    hass_err err = {0};
    hass_lm_trainer *tr = hass_lm_trainer_create(&c, B, 1, pool, &err);
    if (!tr) {
        fprintf(stderr, "bench_train: %s\n", err.msg);
        return 1;
    }
    int64_t T = c.ctx;
    int32_t *tok = malloc((size_t)(B * (T + 1)) * sizeof *tok);
    hass_rng r;
    hass_rng_seed(&r, 3);
    for (int64_t i = 0; i < B * (T + 1); i++)
        tok[i] = (int32_t)(hass_rng_u64(&r) % (uint64_t)c.V);
    for (int kind = 0; kind < HASS_GEMM_COUNT; kind++) {
        const char *only = getenv("HASS_GEMM");
        if (!hass_gemm_available((hass_gemm_kind)kind) ||
            (only && strcmp(only, hass_gemm_name((hass_gemm_kind)kind))))
            continue;
        hass_gemm_set_default((hass_gemm_kind)kind, pool);
        double t[16];
        for (int it = -1; it < iters; it++) {
            double t0 = hass_now();
            memset(tr->grads, 0, tr->layout.total * sizeof(float));
            hass_lm_forward_backward(tr, tok, B, 1.0f / (float)(B * T), 1, NULL);
            hass_lm_optimizer_step(tr, 1e-4f, 0.1f, 1.0f, hass_lm_grad_norm(tr));
            if (it >= 0)
                t[it] = hass_now() - t0;
        }
        qsort(t, (size_t)iters, sizeof(double), cmp_d);
        double med = t[iters / 2], fl = hass_lm_step_flops(&c, B);
        double fl6 = 6.0 * (double)hass_lm_n_params(&c) * (double)(B * T);
        double peak = p16 > p8 ? p16 : p8;
        printf("pretrain_step_%s,d%lld_L%lld_H%lld_Hkv%lld_ffn%lld_V%lld_B%lldxT%lld%s,%d,%d,%.1f,"
               "%.1f,%.0f\n",
               hass_gemm_name((hass_gemm_kind)kind), (long long)c.d, (long long)c.n_layers,
               (long long)c.H, (long long)c.Hkv, (long long)c.ffn, (long long)c.V, (long long)B,
               (long long)T, c.tie ? "_tied" : "", threads, iters, med * 1e3, fl / med * 1e-9,
               (double)(B * T) / med);
        fprintf(stderr,
                "  %s: %.1fM params; %.1f GFLOP/s by the analytic count (%.0f%% of the fp32 FMA "
                "peak %.0f), %.1f GFLOP/s by 6*params*tokens (the PyTorch script's count)\n",
                hass_gemm_name((hass_gemm_kind)kind), (double)hass_lm_n_params(&c) / 1e6,
                fl / med * 1e-9, 100 * fl / med * 1e-9 / peak, peak, fl6 / med * 1e-9);
    }
    hass_gemm_set_default(HASS_GEMM_F32, NULL);
    free(tok);
    hass_lm_trainer_destroy(tr);
    return 0;
}

int main(int argc, char **argv) {
    int quick = 0, threads = 2, pretrain = 0, pre_argc = 0;
    char **pre_argv = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--pretrain")) {
            pretrain = 1, pre_argv = argv + i + 1, pre_argc = argc - i - 1;
            break;
        } else {
            fprintf(stderr, "usage: bench_train [--quick] [--threads N] [--pretrain [--d D] "
                            "[--layers L] [--vocab V] [--ff F] [--heads H] [--kv K] [--seq T] "
                            "[--batch B] [--untied]]\n");
            return 2;
        }
    }
    hass_blas_set_threads(threads);
    hass_pool *pool = hass_pool_create(threads);
    int iters = quick ? 1 : 5;
    if (pretrain) {
        int rc = bench_pretrain(pool, threads, quick ? 2 : 3, pre_argc, pre_argv);
        hass_pool_destroy(pool);
        return rc;
    }

    double ts = bench_sgemm(quick ? 3 : 7);
    printf("name,shape,threads,iters,ms,gflops,tok_s\n");
    printf("sgemm,2048x1024x512,%d,%d,%.2f,%.1f,\n", threads, quick ? 3 : 7, ts * 1e3,
           2.0 * 2048 * 1024 * 512 / ts * 1e-9);

    const int64_t V = 8192, d = 512;
    hass_rng r;
    hass_rng_seed(&r, 2);
    float *embed = malloc((size_t)(V * d) * 4), *lmh = malloc((size_t)(V * d) * 4);
    for (int64_t i = 0; i < V * d; i++) {
        embed[i] = 0.05f * hass_rng_normal(&r);
        lmh[i] = 0.05f * hass_rng_normal(&r);
    }
    // B, T, Hkv, loss-mask percentage (the first T*(100-pct)/100 positions of each sequence are a
    // prompt with m = 0, as in chat data)
    const int64_t shapes[][4] = {
        {4, 512, 8, 100}, {4, 512, 4, 100}, {1, 2048, 8, 100}, {4, 512, 8, 50}};
    int nshapes = quick ? 1 : 4;
    for (int s = 0; s < nshapes; s++) {
        int64_t B = shapes[s][0], T = shapes[s][1], N = B * T;
        hass_draft_config c = {.d = d,
                               .H = 8,
                               .Hkv = shapes[s][2],
                               .ffn = 1376,
                               .V = V,
                               .has_bias = 1,
                               .rms_eps = 1e-6f,
                               .rope = {.theta = 10000.0f},
                               .rope_style = HASS_ROPE_HALF};
        float *feat = malloc((size_t)(N * d) * 4), *tgt = malloc((size_t)(N * d) * 4);
        float *mask = malloc((size_t)N * 4);
        int32_t *tok = malloc((size_t)N * 4);
        for (int64_t i = 0; i < N * d; i++)
            feat[i] = hass_rng_normal(&r), tgt[i] = hass_rng_normal(&r);
        for (int64_t i = 0; i < N; i++)
            tok[i] = (int32_t)(hass_rng_u64(&r) % (uint64_t)V),
            mask[i] = (float)((i % T) >= T * (100 - shapes[s][3]) / 100);
        int64_t Nm = 0;
        for (int64_t i = 0; i < N; i++)
            Nm += mask[i] != 0.0f;
        hass_err err = {0};
        hass_trainer *tr = hass_trainer_create(&c, embed, lmh, B, T, 3, 1, pool, &err);
        if (!tr) {
            fprintf(stderr, "bench_train: %s\n", err.msg);
            return 1;
        }
        hass_train_batch bt = {.B = B, .T = T, .feat = feat, .tok = tok, .tgt = tgt, .mask = mask};
        for (int n = 1; n <= 3; n += 2) {
            hass_train_opts o = hass_train_opts_default();
            o.n_align = n;
            hass_train_stats st;
            double t[8], cpu0 = 0.0, wall0 = 0.0;
            for (int it = -1; it < iters; it++) {
                if (it == 0)
                    cpu0 = cpu_now(), wall0 = hass_now();
                double t0 = hass_now();
                if (hass_train_step(tr, &bt, &o, 1e-4f, &st, &err) != HASS_OK) {
                    fprintf(stderr, "bench_train: %s\n", err.msg);
                    return 1;
                }
                if (it >= 0)
                    t[it] = hass_now() - t0;
            }
            qsort(t, (size_t)iters, sizeof(double), cmp_d);
            double med = t[iters / 2], fl = hass_train_step_flops(&c, B, T, Nm, n);
            printf("train_step_n%d,B%lldxT%lld_d512_H8_Hkv%lld_ffn1376_V8192_mask%lld,%d,%d,%.1f,"
                   "%.1f,%.0f\n",
                   n, (long long)B, (long long)T, (long long)c.Hkv, (long long)shapes[s][3],
                   threads, iters, med * 1e3, fl / med * 1e-9, (double)N / med);
            double cpu = cpu_now() - cpu0, wall = hass_now() - wall0;
            fprintf(stderr,
                    "  n=%d loss %.4f (%.1f MFLOP/token), best %.1f ms, cores used %.2f, "
                    "%.1f GFLOP per CPU-second\n",
                    n, st.loss_mean, fl / (double)N * 1e-6, t[0] * 1e3, cpu / wall,
                    fl * iters / cpu * 1e-9);
        }
        hass_trainer_destroy(tr);
        free(feat), free(tgt), free(mask), free(tok);
    }
    free(embed), free(lmh);
    hass_pool_destroy(pool);
    return 0;
}
