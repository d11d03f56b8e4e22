/*
 * bench_model.c — decoding speed of a LLaMA-shaped model against this machine's memory
 * bandwidth, and the verification cost curve cost(n)/cost(1).
 *
 * The model is synthetic (made here from a seed, never stored): d=768, 12 layers, 12 heads,
 * 4 KV heads, FFN 2048, vocabulary 32000 (about 125M parameters), in F32 and BF16.
 *  - plain decoding tokens/s after a 32-token prompt, and the fraction of the bandwidth limit
 *    it reaches: weight bytes per token x tokens/s / read bandwidth (measured here);
 *  - cost(n)/cost(1) of one forward of n tree rows with logits for every row, n = 1..64.
 * Also the tiny real model stories260K (single thread), if ../shared is present.
 * Output: CSV rows, then one JSON line per case (machine-readable summary).
 * Flags: --quick (fewer sizes and reps), --threads N (default: all CPUs).
 */
#include "bench_util.h"
#include "decode/decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double decode_rate(const hass_model *m, hass_pool *pool, int steps, int reps,
                          double *out_ms) {
    hass_err err = {0};
    hass_kv kv;
    HASS_ASSERT(hass_kv_init(&kv, m, 512, 64, pool, &err) == HASS_OK);
    float *lg = malloc(sizeof(float) * (size_t)m->cfg.V);
    int32_t tok[32], pos[32];
    double t[32];
    for (int r = 0; r < reps; r++) {
        hass_kv_truncate(&kv, 0);
        for (int i = 0; i < 32; i++) {
            tok[i] = (i * 7919) % (int32_t)m->cfg.V;
            pos[i] = i;
        }
        hass_model_forward(m, &kv, pool, 32, tok, pos, NULL, lg, 31, NULL, &err);
        hass_kv_commit(&kv, 32);
        double t0 = hass_now();
        for (int s = 0; s < steps; s++) {
            int32_t tk = (int32_t)((s * 31) % m->cfg.V), p = (int32_t)kv.n;
            hass_model_forward(m, &kv, pool, 1, &tk, &p, NULL, lg, 0, NULL, &err);
            hass_kv_commit(&kv, 1);
        }
        t[r] = (hass_now() - t0) / steps;
    }
    double tm = bench_median(t, reps);
    if (out_ms)
        *out_ms = tm * 1e3;
    free(lg);
    hass_kv_free(&kv);
    return 1.0 / tm;
}

static double forward_time(const hass_model *m, hass_kv *kv, hass_pool *pool, int n, int reps,
                           float *lg) {
    hass_err err = {0};
    int32_t tok[64], pos[64], par[64];
    for (int i = 0; i < n; i++) {
        tok[i] = (i * 131) % (int32_t)m->cfg.V;
        par[i] = i == 0 ? -1 : (i - 1) / 2; /* a binary tree */
        pos[i] = (int32_t)kv->n + (i == 0 ? 0 : 1 + (31 - __builtin_clz((unsigned)i + 1)) - 1);
    }
    double t[32];
    for (int r = 0; r < reps; r++) {
        double t0 = hass_now();
        hass_model_forward(m, kv, pool, n, tok, pos, par, lg, 0, NULL, &err);
        t[r] = hass_now() - t0;
    }
    return bench_median(t, reps);
}

int main(int argc, char **argv) {
    int quick = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_model [--quick] [--threads N]\n");
            return 2;
        }
    }
    hass_pool *pool = hass_pool_create(threads);
    int nt = hass_pool_size(pool);
    double bw = bench_read_bandwidth(pool, nt, (size_t)1 << 30, quick ? 3 : 7);
    printf("name,shape,threads,iters,ms,value\n");
    printf("read_bw_gbs,1GiB,%d,%d,,%.2f\n", nt, quick ? 3 : 7, bw);
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(768, 2048, 12, 12, 4, 32000, 2048);
    hass_dtype dts[] = {HASS_DTYPE_F32, HASS_DTYPE_BF16};
    static const int NS[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
    int nns = quick ? 7 : (int)(sizeof NS / sizeof NS[0]);
    for (int k = 0; k < 2; k++) {
        hass_model *m = hass_model_synthetic(&c, dts[k], 1, &err);
        HASS_ASSERT(m);
        const char *dn = hass_dtype_name(dts[k]);
        double ms;
        double tps = decode_rate(m, pool, quick ? 16 : 48, quick ? 3 : 5, &ms);
        double frac = tps * (double)m->weight_bytes / (bw * 1e9);
        printf("decode_tok_s,125M-%s,%d,%d,%.3f,%.2f\n", dn, nt, quick ? 16 : 48, ms, tps);
        printf("bw_fraction,125M-%s,%d,,,%.3f\n", dn, nt, frac);
        /* cost curve over a 128-token context */
        hass_kv kv;
        HASS_ASSERT(hass_kv_init(&kv, m, 512, 64, pool, &err) == HASS_OK);
        float *lg = malloc(sizeof(float) * 64 * (size_t)c.V);
        int32_t tok[64], pos[64];
        for (int s = 0; s < 128; s += 64) {
            for (int i = 0; i < 64; i++) {
                tok[i] = (s + i) % 1000;
                pos[i] = s + i;
            }
            hass_model_forward(m, &kv, pool, 64, tok, pos, NULL, NULL, 0, NULL, &err);
            hass_kv_commit(&kv, 64);
        }
        forward_time(m, &kv, pool, 1, 2, lg);
        double t1 = forward_time(m, &kv, pool, 1, quick ? 3 : 7, lg);
        char curve[2048];
        int len = 0;
        for (int i = 0; i < nns; i++) {
            double tn = NS[i] == 1 ? t1 : forward_time(m, &kv, pool, NS[i], quick ? 3 : 5, lg);
            printf("verify_cost,125M-%s-n%d,%d,,%.3f,%.3f\n", dn, NS[i], nt, tn * 1e3, tn / t1);
            len += snprintf(curve + len, sizeof curve - (size_t)len, "%s\"%d\":%.3f", i ? "," : "",
                            NS[i], tn / t1);
        }
        printf("{\"case\":\"125M-%s\",\"threads\":%d,\"isa\":\"%s\",\"read_bw_gbs\":%.2f,"
               "\"weight_bytes\":%zu,\"decode_tokens_per_s\":%.2f,\"bandwidth_fraction\":%.3f,"
               "\"cost_ratio\":{%s}}\n",
               dn, nt, hass_cpu_isa_name(), bw, m->weight_bytes, tps, frac, curve);
        free(lg);
        hass_kv_free(&kv);
        hass_model_free(m);
    }
    /* stories260K, single thread, as llama2.c's run.c runs it */
    const char *root = getenv("HASS_SHARED") ? getenv("HASS_SHARED") : "../shared";
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.bin", root);
    hass_model *m = hass_file_exists(path) ? hass_model_load(path, &err) : NULL;
    if (m) {
        /* 256 positions like run.c -n 256: a 1-token prompt then 255 steps */
        hass_kv kv;
        HASS_ASSERT(hass_kv_init(&kv, m, 512, 64, NULL, &err) == HASS_OK);
        float lg[512];
        double t[16];
        int reps = quick ? 5 : 15;
        for (int r = 0; r < reps; r++) {
            hass_kv_truncate(&kv, 0);
            int32_t tk = 1;
            double t0 = hass_now();
            for (int s = 0; s < 256; s++) {
                int32_t p = s;
                hass_model_forward(m, &kv, NULL, 1, &tk, &p, NULL, lg, 0, NULL, &err);
                hass_kv_commit(&kv, 1);
                tk = 0;
                for (int v = 1; v < 512; v++)
                    if (lg[v] > lg[tk])
                        tk = v;
            }
            t[r] = hass_now() - t0;
        }
        double tm = bench_median(t, reps);
        printf("decode_tok_s,stories260K,1,256,%.3f,%.1f\n", tm * 1e3 / 256, 256 / tm);
        printf("{\"case\":\"stories260K\",\"threads\":1,\"decode_tokens_per_s\":%.1f}\n", 256 / tm);
        hass_kv_free(&kv);
        hass_model_free(m);
    }
    hass_pool_destroy(pool);
    return 0;
}
