/*
 * bench_model.c — decoding speed of a LLaMA-shaped model against this machine's memory
 * bandwidth, and the verification cost curve cost(n)/cost(1).
 *
 * The model is synthetic (made here from a seed, never stored): d=768, 12 layers, 12 heads,
 * 4 KV heads, FFN 2048, vocabulary 32000 (about 125M parameters), in F32 and BF16.
 *  - plain decoding tokens/s after a 32-token prompt, and the fraction of the bandwidth limit
 *    it reaches: weight bytes per token x tokens/s / read bandwidth (measured here);
 *  - cost(n)/cost(1) of one forward of n tree rows with logits for every row, n = 1..64.
 *  - speculative decoding through the real tree/verify path with an oracle draft that proposes
 *    the model's own greedy token first with probability `acc` per node (else ranks it 2nd or
 *    leaves it out): tau and speedup over plain decoding as a function of draft quality, on a
 *    model whose verification cost is measured, not assumed.
 * Also the tiny real model stories260K (single thread, every kernel set side by side), if
 * ../shared is present.
 * Output: CSV rows, then one JSON line per case (machine-readable summary).
 * Flags: --quick (fewer sizes and reps), --threads N (default: all CPUs), --model PATH (a real
 * model instead, every kernel set), --stories (stories260K only), --decode (plain decoding of
 * the synthetic model only), --curve R (the cost curve alone, sizes interleaved over R rounds).
 */
#include "bench_util.h"
#include "decode/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Decoding rate, measured side by side with the read bandwidth: each rep streams the 1 GiB
 * yardstick (bw, bench_util.h), times `steps` decode steps, streams it again, and the fraction of
 * the bandwidth limit is computed per rep against the mean of the two reads (the machine is
 * shared: bandwidth moves by 30% between seconds). Medians over reps. */
static double decode_rate(const hass_model *m, hass_pool *pool, const bench_bw_buf *bw, int steps,
                          int reps, double *out_ms, double *out_frac, double *out_bw) {
    hass_err err = {0};
    hass_kv kv;
    HASS_ASSERT(hass_kv_init(&kv, m, 512, 64, pool, &err) == HASS_OK);
    float *lg = malloc(sizeof(float) * (size_t)m->cfg.V);
    int32_t tok[32], pos[32];
    double t[32], fr[32], bws[32];
    int nt = hass_pool_size(pool);
    if (reps > 32)
        reps = 32;
    for (int r = 0; r < reps; r++) {
        hass_kv_truncate(&kv, 0);
        for (int i = 0; i < 32; i++) {
            tok[i] = (i * 7919) % (int32_t)m->cfg.V;
            pos[i] = i;
        }
        hass_model_forward(m, &kv, pool, 32, tok, pos, NULL, lg, 31, NULL, &err);
        hass_kv_commit(&kv, 32);
        double b0 = bench_bw_measure(bw, pool, nt, 1);
        double t0 = hass_now();
        for (int s = 0; s < steps; s++) {
            int32_t tk = (int32_t)((s * 31) % m->cfg.V), p = (int32_t)kv.n;
            hass_model_forward(m, &kv, pool, 1, &tk, &p, NULL, lg, 0, NULL, &err);
            hass_kv_commit(&kv, 1);
        }
        t[r] = (hass_now() - t0) / steps;
        bws[r] = 0.5 * (b0 + bench_bw_measure(bw, pool, nt, 1));
        fr[r] = (double)m->weight_bytes / t[r] / (bws[r] * 1e9);
    }
    double tm = bench_median(t, reps);
    *out_ms = tm * 1e3;
    *out_frac = bench_median(fr, reps);
    *out_bw = bench_median(bws, reps);
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

typedef struct {
    const int32_t *ref; /* prompt + greedy continuation */
    int64_t n_ref, V;
    double acc;
} oracle_ctx;

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

static void oracle(void *user, const int32_t *seq, int64_t n, int k, int32_t *ids, float *lp) {
    oracle_ctx *o = user;
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = n > 8 ? n - 8 : 0; i < n; i++)
        h = mix(h ^ (uint64_t)seq[i] ^ ((uint64_t)i << 32));
    int on = n < o->n_ref && !memcmp(seq, o->ref, sizeof(int32_t) * (size_t)n);
    double u = (double)(mix(h) >> 11) / 9007199254740992.0;
    int rank = !on ? -1 : (u < o->acc ? 0 : (u < o->acc + (1 - o->acc) / 2 ? 1 : -1));
    int m = 0;
    while (m < k) {
        int32_t t;
        if (m == rank) {
            t = o->ref[n];
        } else {
            h = mix(h + 0x9e3779b97f4a7c15ull);
            t = (int32_t)(h % (uint64_t)o->V);
            if (on && t == o->ref[n])
                continue;
        }
        int dup = 0;
        for (int j = 0; j < m; j++)
            dup |= ids[j] == t;
        if (dup)
            continue;
        ids[m] = t;
        lp[m] = m == 0 ? (float)log(o->acc) : (float)log((1 - o->acc) / 2) - 0.1f * (float)m;
        m++;
    }
}

static void spec_oracle(const hass_model *m, hass_pool *pool, const char *dn, int quick) {
    hass_err err = {0};
    hass_engine *e = hass_engine_create(m, NULL, NULL, pool, 512, &err);
    HASS_ASSERT(e);
    int32_t prompt[16];
    for (int i = 0; i < 16; i++)
        prompt[i] = (i * 7919 + 13) % (int32_t)m->cfg.V;
    int64_t n_new = quick ? 48 : 128;
    int32_t *ref = calloc((size_t)(16 + n_new), sizeof(int32_t));
    memcpy(ref, prompt, sizeof prompt);
    hass_gen_params p = {0};
    p.max_new = n_new;
    p.tree = (hass_tree_params){6, 4, 0};
    hass_gen_stats sp, ss;
    double accs[] = {1.0, 0.8, 0.6};
    for (size_t a = 0; a < sizeof accs / sizeof accs[0]; a++) {
        hass_engine_set_oracle(e, NULL, NULL);
        HASS_ASSERT(hass_generate(e, prompt, 16, &p, 0, NULL, NULL, ref + 16, &sp, &err) == 0);
        oracle_ctx o = {ref, 16 + sp.n_generated, m->cfg.V, accs[a]};
        hass_engine_set_oracle(e, oracle, &o);
        int32_t *out = calloc((size_t)n_new, sizeof(int32_t));
        HASS_ASSERT(hass_generate(e, prompt, 16, &p, 1, NULL, NULL, out, &ss, &err) == 0);
        int same = ss.n_generated == sp.n_generated &&
                   !memcmp(out, ref + 16, sizeof(int32_t) * (size_t)sp.n_generated);
        double rp = sp.n_generated / sp.decode_seconds, rs = ss.n_generated / ss.decode_seconds;
        printf("spec_oracle,125M-%s-acc%.1f,%d,%lld,,%.2f\n", dn, accs[a], hass_pool_size(pool),
               (long long)ss.n_generated, rs / rp);
        printf("{\"case\":\"125M-%s spec, oracle draft acc %.1f\",\"plain_tokens_per_s\":%.2f,"
               "\"spec_tokens_per_s\":%.2f,\"speedup\":%.3f,\"tau\":%.2f,"
               "\"nodes_per_cycle\":%.1f,\"identical\":%s}\n",
               dn, accs[a], rp, rs, rs / rp, ss.tau,
               ss.cycles ? (double)ss.nodes_verified / ss.cycles : 0, same ? "true" : "false");
        free(out);
    }
    free(ref);
    hass_engine_destroy(e);
}

/* A KV cache for 512 positions and batches of 64, holding a 128-token context. */
static void context128(const hass_model *m, hass_pool *pool, hass_kv *kv) {
    hass_err err = {0};
    HASS_ASSERT(hass_kv_init(kv, m, 512, 64, pool, &err) == HASS_OK);
    int32_t tok[64], pos[64];
    for (int s = 0; s < 128; s += 64) {
        for (int i = 0; i < 64; i++) {
            tok[i] = (s + i) % 1000 % (int32_t)m->cfg.V;
            pos[i] = s + i;
        }
        hass_model_forward(m, kv, pool, 64, tok, pos, NULL, NULL, 0, NULL, &err);
        hass_kv_commit(kv, 64);
    }
}

/* Decode rate and cost curve of m with the kernels `features` (hass_cpu_force). */
static void measure(const hass_model *m, hass_pool *pool, const bench_bw_buf *yard,
                    const char *label, int quick, int only_decode, double bw) {
    static const int NS[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
    int nns = quick ? 8 : (int)(sizeof NS / sizeof NS[0]), nt = hass_pool_size(pool);
    double ms, frac, bw_side;
    double tps = decode_rate(m, pool, yard, quick ? 16 : 32, quick ? 5 : 9, &ms, &frac, &bw_side);
    const char *isa = hass_cpu_isa_name();
    printf("read_bw_gbs_side_by_side,1GiB-%s,%d,,,%.2f\n", bench_bw_loads_name(), nt, bw_side);
    printf("decode_tok_s,%s-%s,%d,%d,%.3f,%.2f\n", label, isa, nt, quick ? 16 : 32, ms, tps);
    printf("bw_fraction,%s-%s,%d,,,%.3f\n", label, isa, nt, frac);
    if (only_decode)
        return;
    /* cost curve over a 128-token context */
    hass_kv kv;
    context128(m, pool, &kv);
    float *lg = malloc(sizeof(float) * 64 * (size_t)m->cfg.V);
    forward_time(m, &kv, pool, 1, 2, lg);
    double t1 = forward_time(m, &kv, pool, 1, quick ? 5 : 9, lg);
    char curve[2048];
    int len = 0;
    for (int i = 0; i < nns; i++) {
        double tn = NS[i] == 1 ? t1 : forward_time(m, &kv, pool, NS[i], quick ? 5 : 7, lg);
        printf("verify_cost,%s-%s-n%d,%d,,%.3f,%.3f\n", label, isa, NS[i], nt, tn * 1e3, tn / t1);
        len += snprintf(curve + len, sizeof curve - (size_t)len, "%s\"%d\":%.3f", i ? "," : "",
                        NS[i], tn / t1);
    }
    printf("{\"case\":\"%s\",\"threads\":%d,\"isa\":\"%s\",\"read_bw_gbs\":%.2f,"
           "\"weight_bytes\":%zu,\"decode_tokens_per_s\":%.2f,\"bandwidth_fraction\":%.3f,"
           "\"cost_ratio\":{%s}}\n",
           label, nt, isa, bw, m->weight_bytes, tps, frac, curve);
    free(lg);
    hass_kv_free(&kv);
}

/* The same with the kernel choices the engine's calibration makes for m here (hass_engine_tune:
 * measured afresh unless HASS_CACHE_DIR holds them), as every generation uses them. */
static void measure_tuned(const hass_model *m, hass_pool *pool, const bench_bw_buf *bw,
                          const char *label, int quick, int only_decode, double bw_gbs) {
    hass_err err = {0};
    hass_engine *e = hass_engine_create(m, NULL, NULL, pool, 512, &err);
    HASS_ASSERT(e);
    double t0 = hass_now();
    const hass_ops_tune *t = hass_engine_tune(e);
    static const char *bn[] = {"widest", "amx", "vdpbf16ps", "widened-fma"};
    printf("# %s: calibrated kernel choice (%.1f s or cached): bf16 %s, block rows %d (n <= 8) %d "
           "(n > 8), prefetch %d/%d/%d (n = 1, <= 8, > 8; 0 default, 1 on, 2 off)\n",
           label, hass_now() - t0, bn[t->bf16], t->rb[0] ? t->rb[0] : 4, t->rb[1] ? t->rb[1] : 4,
           t->pf[0], t->pf[1], t->pf[2]);
    char lt[80];
    snprintf(lt, sizeof lt, "%s-tuned", label);
    measure(m, pool, bw, lt, quick, only_decode, bw_gbs);
    hass_engine_destroy(e);
}

/* The verify cost curve alone, with the engine's calibrated kernels, the sizes interleaved round
 * by round (every size sees the same machine: on a shared one the load moves by the second), the
 * median per size over `rounds`. */
static void curve_interleaved(const hass_model *m, hass_pool *pool, const char *label, int rounds) {
    static const int NS[] = {1, 2, 4, 8, 16, 32, 64};
    enum { K = sizeof NS / sizeof NS[0] };
    hass_err err = {0};
    hass_engine *e = hass_engine_create(m, NULL, NULL, pool, 512, &err);
    HASS_ASSERT(e);
    hass_engine_tune(e);
    hass_kv kv;
    context128(m, pool, &kv);
    float *lg = malloc(sizeof(float) * 64 * (size_t)m->cfg.V);
    double t[K][64], tc[K][64];
    rounds = rounds > 64 ? 64 : rounds;
    forward_time(m, &kv, pool, 1, 2, lg);
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < K; i++) {
            double c0 = bench_cpu_now();
            t[i][r] = forward_time(m, &kv, pool, NS[i], 1, lg);
            tc[i][r] = bench_cpu_now() - c0;
        }
    /* one thread: also by its CPU clock (time waiting for a core on a shared machine not counted)
     */
    int nt = hass_pool_size(pool);
    double t1 = bench_median(t[0], rounds), c1 = bench_median(tc[0], rounds);
    for (int i = 0; i < K; i++) {
        double tn = bench_median(t[i], rounds), cn = bench_median(tc[i], rounds);
        printf("verify_cost_interleaved,%s-%s-n%d,%d,%d,%.3f,%.3f\n", label, hass_cpu_isa_name(),
               NS[i], nt, rounds, tn * 1e3, tn / t1);
        if (nt == 1)
            printf("verify_cost_cpu,%s-%s-n%d,1,%d,%.3f,%.3f\n", label, hass_cpu_isa_name(), NS[i],
                   rounds, cn * 1e3, cn / c1);
    }
    free(lg);
    hass_kv_free(&kv);
    hass_engine_destroy(e);
    hass_ops_tune_set(NULL);
}

/* The kernel sets to compare side by side: the default, and each narrower one the CPU has for
 * the dtype's products (bf16: amx, avx512bf16, avx512; f32: avx512, avx2). */
static int kernel_sets(int *fs) {
    int f = hass_cpu_available(), n = 0;
    fs[n++] = f;
    if (f & HASS_CPU_AMX)
        fs[n++] = f & ~HASS_CPU_AMX;
    if (f & HASS_CPU_AVX512BF16)
        fs[n++] = f & ~(HASS_CPU_AMX | HASS_CPU_AVX512BF16);
    if (f & HASS_CPU_AVX512)
        fs[n++] = HASS_CPU_AVX2;
    return n;
}

/* Every kernel set the CPU has, widest first, down to scalar (stories260K's f32 products see no
 * difference between amx, avx512bf16 and avx512, its attention and exp do not either). */
static int all_kernel_sets(int *fs) {
    int f = hass_cpu_available(), n = 0;
    static const int caps[] = {HASS_CPU_AMX, HASS_CPU_AVX512BF16, HASS_CPU_AVX512, HASS_CPU_AVX2};
    fs[n++] = f;
    for (int i = 0; i < 4; i++)
        if (f & caps[i]) {
            int g = f & (caps[i] * 2 - 1) & ~caps[i]; /* everything below caps[i] */
            if (g != fs[n - 1])
                fs[n++] = g;
        }
    if (fs[n - 1] != 0)
        fs[n++] = 0;
    return n;
}

/* stories260K, single thread, as llama2.c's run.c runs it: 256 positions (a 1-token prompt,
 * then 255 greedy steps), for every kernel set, the sets alternating rep by rep so that they
 * see the same machine. Tokens/s from the wall clock (median, and the best rep: what an idle
 * machine gives) and from the thread's CPU clock (not counting time the process waited for a
 * core on a shared machine). */
static void stories260k(int quick) {
    const char *root = getenv("HASS_SHARED") ? getenv("HASS_SHARED") : "../shared";
    char path[1024];
    snprintf(path, sizeof path, "%s/models/stories260K.bin", root);
    hass_err err = {0};
    hass_model *m = hass_file_exists(path) ? hass_model_load(path, &err) : NULL;
    if (!m)
        return;
    hass_kv kv;
    HASS_ASSERT(hass_kv_init(&kv, m, 512, 64, NULL, &err) == HASS_OK);
    float lg[512];
    int fs[6], nfs = all_kernel_sets(fs), reps = quick ? 5 : 15;
    double tw[6][16], tc[6][16];
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < nfs; k++) {
            hass_cpu_force(fs[k]);
            hass_kv_truncate(&kv, 0);
            int32_t tk = 1;
            double t0 = hass_now(), c0 = bench_cpu_now();
            for (int s = 0; s < 256; s++) {
                int32_t p = s;
                hass_model_forward(m, &kv, NULL, 1, &tk, &p, NULL, lg, 0, NULL, &err);
                hass_kv_commit(&kv, 1);
                tk = 0;
                for (int v = 1; v < 512; v++)
                    if (lg[v] > lg[tk])
                        tk = v;
            }
            tc[k][r] = bench_cpu_now() - c0;
            tw[k][r] = hass_now() - t0;
        }
    for (int k = 0; k < nfs; k++) {
        hass_cpu_force(fs[k]);
        const char *isa = hass_cpu_isa_name();
        double w = bench_median(tw[k], reps), c = bench_median(tc[k], reps), wb = tw[k][0];
        printf("decode_tok_s,stories260K-%s,1,256,%.4f,%.1f\n", isa, w * 1e3 / 256, 256 / w);
        printf("decode_tok_s_best,stories260K-%s,1,256,%.4f,%.1f\n", isa, wb * 1e3 / 256, 256 / wb);
        printf("decode_tok_s_cpu,stories260K-%s,1,256,%.4f,%.1f\n", isa, c * 1e3 / 256, 256 / c);
        printf(
            "{\"case\":\"stories260K\",\"threads\":1,\"isa\":\"%s\",\"decode_tokens_per_s\":%.1f,"
            "\"best_tokens_per_s\":%.1f,\"decode_tokens_per_cpu_s\":%.1f}\n",
            isa, 256 / w, 256 / wb, 256 / c);
    }
    hass_cpu_force(-1);
    hass_kv_free(&kv);
    hass_model_free(m);
}

int main(int argc, char **argv) {
    int quick = 0, threads = 0, only_stories = 0, only_decode = 0, curve_rounds = 0;
    const char *model = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--stories"))
            only_stories = 1;
        else if (!strcmp(argv[i], "--decode"))
            only_decode = 1;
        else if (!strcmp(argv[i], "--curve") && i + 1 < argc)
            curve_rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_model [--quick] [--threads N] [--model PATH] [--stories] "
                            "[--decode] [--curve ROUNDS]\n");
            return 2;
        }
    }
    if (only_stories) {
        printf("name,shape,threads,iters,ms,value\n");
        stories260k(quick);
        return 0;
    }
    hass_pool *pool = hass_pool_create(threads);
    int nt = hass_pool_size(pool);
    if (curve_rounds > 0) {
        hass_model_config cc = hass_model_config_make(768, 2048, 12, 12, 4, 32000, 2048);
        hass_dtype cd[] = {HASS_DTYPE_F32, HASS_DTYPE_BF16};
        hass_err cerr = {0};
        printf("name,shape,threads,iters,ms,value\n");
        for (int k = 0; k < 2; k++) {
            hass_model *m = hass_model_synthetic(&cc, cd[k], 1, &cerr);
            HASS_ASSERT(m);
            char label[64];
            snprintf(label, sizeof label, "125M-%s", hass_dtype_name(cd[k]));
            curve_interleaved(m, pool, label, curve_rounds);
            hass_model_free(m);
        }
        hass_pool_destroy(pool);
        return 0;
    }
    bench_bw_buf yard = bench_bw_open((size_t)1 << 30);
    bench_bw_measure(&yard, pool, nt, 1);
    double bw = bench_bw_measure(&yard, pool, nt, quick ? 3 : 7);
    printf("name,shape,threads,iters,ms,value\n");
    printf("read_bw_gbs,1GiB-%s,%d,%d,,%.2f\n", bench_bw_loads_name(), nt, quick ? 3 : 7, bw);
    hass_err err = {0};
    int fs[4], nfs = kernel_sets(fs);
    if (model) { /* a real model: every kernel set side by side */
        hass_model *m = hass_model_load(model, &err);
        if (!m) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
        for (int k = 0; k < nfs; k++) {
            hass_cpu_force(fs[k]);
            measure(m, pool, &yard, "model", quick, 0, bw);
        }
        hass_cpu_force(-1);
        hass_model_free(m);
        bench_bw_close(&yard);
        hass_pool_destroy(pool);
        return 0;
    }
    hass_model_config c = hass_model_config_make(768, 2048, 12, 12, 4, 32000, 2048);
    hass_dtype dts[] = {HASS_DTYPE_F32, HASS_DTYPE_BF16};
    for (int k = 0; k < 2; k++) {
        hass_model *m = hass_model_synthetic(&c, dts[k], 1, &err);
        HASS_ASSERT(m);
        const char *dn = hass_dtype_name(dts[k]);
        char label[64];
        snprintf(label, sizeof label, "125M-%s", dn);
        for (int f = 0; f < (quick ? 1 : nfs); f++) {
            hass_cpu_force(fs[f]);
            measure(m, pool, &yard, label, quick, only_decode, bw);
        }
        hass_cpu_force(-1);
        measure_tuned(m, pool, &yard, label, quick, only_decode, bw);
        if (!only_decode)
            spec_oracle(m, pool, dn, quick);
        hass_ops_tune_set(NULL); /* the engine's choice for this model only */
        hass_model_free(m);
    }
    if (!only_decode)
        stories260k(quick);
    bench_bw_close(&yard);
    hass_pool_destroy(pool);
    return 0;
}
