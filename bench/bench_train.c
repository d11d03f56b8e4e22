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

#include "train/blas.h"
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

int main(int argc, char **argv) {
    int quick = 0, threads = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_train [--quick] [--threads N]\n");
            return 2;
        }
    }
    hass_blas_set_threads(threads);
    hass_pool *pool = hass_pool_create(threads);
    int iters = quick ? 1 : 5;

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
                               .rope_theta = 10000.0f,
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
