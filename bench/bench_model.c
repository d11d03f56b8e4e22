/*
 * bench_model.c — decoding speed of a LLaMA-shaped model against this machine's memory
 * bandwidth, and the verification cost curve cost(n)/cost(1).
 *
 * The model is synthetic (made here from a seed, never stored): d=768, 12 layers, 12 heads,
 * 4 KV heads, FFN 2048, vocabulary 32000 (about 125M parameters), in F32, BF16, Q8_0 and Q4_K
 * (every matrix, the embedding and the LM head included; --dtype chooses).
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
 * Flags: --quick (fewer sizes and reps), --threads N (default: all CPUs), --dtype LIST
 * (f32,bf16,q8_0,q4_k: every matrix in that type; or a hass quantize mix such as q4_k_m),
 * --shape 7b (d=4096, 32 layers, 32 heads, FFN 11008, vocabulary 32000: about 6.7B parameters;
 * each model built just before its timings, the peak RSS printed after them), --sets N (at most
 * N kernel sets per model, the default first), --avx2 (the plain AVX2 set too, whatever N),
 * --no-spec (no speculative runs), --model PATH (a real model instead, every kernel
 * set side by side), --wait FILE (build the models, then wait for FILE to exist before timing),
 * --stories (stories260K only), --decode (plain decoding of the synthetic models only),
 * --curve R (the cost curve alone, 125M f32 and bf16, sizes interleaved over R rounds).
 */
#include "bench_util.h"
#include "decode/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static void spec_oracle(const hass_model *m, hass_pool *pool, const char *label, int quick) {
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
    /* plain and speculative runs alternate, the speedup is the median of the per-pair ratios */
    int reps = quick ? 2 : 3;
    for (size_t a = 0; a < sizeof accs / sizeof accs[0]; a++) {
        int32_t *out = calloc((size_t)n_new, sizeof(int32_t));
        double rps[3], rss[3], sps[3];
        int same = 1;
        for (int k = 0; k < reps; k++) {
            hass_engine_set_oracle(e, NULL, NULL);
            HASS_ASSERT(hass_generate(e, prompt, 16, &p, 0, NULL, NULL, ref + 16, &sp, &err) == 0);
            oracle_ctx o = {ref, 16 + sp.n_generated, m->cfg.V, accs[a]};
            hass_engine_set_oracle(e, oracle, &o);
            HASS_ASSERT(hass_generate(e, prompt, 16, &p, 1, NULL, NULL, out, &ss, &err) == 0);
            same &= ss.n_generated == sp.n_generated &&
                    !memcmp(out, ref + 16, sizeof(int32_t) * (size_t)sp.n_generated);
            rps[k] = sp.n_generated / sp.decode_seconds;
            rss[k] = ss.n_generated / ss.decode_seconds;
            sps[k] = rss[k] / rps[k];
        }
        double rp = bench_median(rps, reps), rs = bench_median(rss, reps);
        double sx = bench_median(sps, reps);
        printf("spec_oracle,%s-acc%.1f,%d,%lld,,%.2f\n", label, accs[a], hass_pool_size(pool),
               (long long)ss.n_generated, sx);
        printf("{\"case\":\"%s spec, oracle draft acc %.1f\",\"plain_tokens_per_s\":%.2f,"
               "\"spec_tokens_per_s\":%.2f,\"speedup\":%.3f,\"tau\":%.2f,"
               "\"nodes_per_cycle\":%.1f,\"identical\":%s}\n",
               label, accs[a], rp, rs, sx, ss.tau,
               ss.cycles ? (double)ss.nodes_verified / ss.cycles : 0, same ? "true" : "false");
        free(out);
    }
    free(ref);
    hass_engine_destroy(e);
}

/* The kernel in use for products with weights of type dt. */
static const char *isa_of(hass_dtype dt) {
    return hass_dtype_is_quant(dt) ? hass_cpu_quant_isa_name() : hass_cpu_isa_name();
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

/* Decode rate and cost curve of m (its products' kernel named as those of dt) with the kernels
 * hass_cpu_force set. */
static void measure(const hass_model *m, hass_pool *pool, const bench_bw_buf *yard,
                    const char *label, int quick, int only_decode, double bw, hass_dtype dt) {
    static const int NS[] = {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
    int nns = quick ? 8 : (int)(sizeof NS / sizeof NS[0]), nt = hass_pool_size(pool);
    double ms, frac, bw_side;
    double tps = decode_rate(m, pool, yard, quick ? 16 : 32, quick ? 5 : 9, &ms, &frac, &bw_side);
    const char *isa = isa_of(dt);
    printf("read_bw_gbs_side_by_side,1GiB-%s,%d,,,%.2f\n", bench_bw_loads_name(), nt, bw_side);
    printf("decode_tok_s,%s-%s,%d,%d,%.3f,%.2f\n", label, isa, nt, quick ? 16 : 32, ms, tps);
    printf("bw_fraction,%s-%s,%d,,,%.3f\n", label, isa, nt, frac);
    if (only_decode)
        return;
    /* cost curve over a 128-token context */
    hass_kv kv;
    context128(m, pool, &kv);
    float *lg = malloc(sizeof(float) * 64 * (size_t)m->cfg.V);
    /* each n timed in turn with n = 1, rep by rep: the ratio is taken per pair and its median
     * kept, so load that comes and goes on a shared machine hits both sides alike */
    forward_time(m, &kv, pool, 1, 2, lg);
    char curve[2048];
    int len = 0, reps = quick ? 5 : 7;
    for (int i = 0; i < nns; i++) {
        double r[16], a[16], b[16];
        for (int k = 0; k < reps; k++) {
            a[k] = forward_time(m, &kv, pool, 1, 1, lg);
            b[k] = NS[i] == 1 ? a[k] : forward_time(m, &kv, pool, NS[i], 1, lg);
            r[k] = b[k] / a[k];
        }
        double ratio = NS[i] == 1 ? 1.0 : bench_median(r, reps), tn = bench_median(b, reps);
        printf("verify_cost,%s-%s-n%d,%d,,%.3f,%.3f\n", label, isa, NS[i], nt, tn * 1e3, ratio);
        len += snprintf(curve + len, sizeof curve - (size_t)len, "%s\"%d\":%.3f", i ? "," : "",
                        NS[i], ratio);
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
                          const char *label, int quick, int only_decode, double bw_gbs,
                          hass_dtype dt) {
    hass_err err = {0};
    hass_engine *e = hass_engine_create(m, NULL, NULL, pool, 512, &err);
    HASS_ASSERT(e);
    double t0 = hass_now();
    const hass_ops_tune *t = hass_engine_tune(e);
    static const char *bn[] = {"widest", "amx", "vdpbf16ps", "widened-fma", "avx2 kernels"};
    printf("# %s: calibrated kernel choice (%.1f s or cached): bf16 %s, block rows %d (n <= 8) %d "
           "(n > 8), prefetch %d/%d/%d (n = 1, <= 8, > 8; 0 default, 1 on, 2 off)\n",
           label, hass_now() - t0, bn[t->bf16], t->rb[0] ? t->rb[0] : 4, t->rb[1] ? t->rb[1] : 4,
           t->pf[0], t->pf[1], t->pf[2]);
    char lt[80];
    snprintf(lt, sizeof lt, "%s-tuned", label);
    measure(m, pool, bw, lt, quick, only_decode, bw_gbs, dt);
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
 * the dtype's products (bf16: amx, avx512bf16, avx512; f32: avx512, avx2; quantized:
 * avx512vnni, avxvnni, avx2). */
static int kernel_sets(int *fs, hass_dtype dt) {
    int f = hass_cpu_available(), n = 0;
    fs[n++] = f;
    if (hass_dtype_is_quant(dt)) {
        if ((f & HASS_CPU_AVX512VNNI) && (f & HASS_CPU_AVXVNNI))
            fs[n++] = HASS_CPU_AVX2 | HASS_CPU_AVXVNNI;
        if (f & (HASS_CPU_AVX512VNNI | HASS_CPU_AVXVNNI))
            fs[n++] = HASS_CPU_AVX2;
        return n;
    }
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

static int parse_dtype(const char *s, hass_dtype *out) {
    for (int t = 0; t < HASS_DTYPE_COUNT; t++) {
        const char *nm = hass_dtype_name((hass_dtype)t);
        size_t i = 0;
        while (nm[i] && s[i] && (nm[i] | 0x20) == (s[i] | 0x20))
            i++;
        if (!nm[i] && !s[i] &&
            (t == HASS_DTYPE_F32 || t == HASS_DTYPE_BF16 || t == HASS_DTYPE_F16 ||
             hass_dtype_is_quant((hass_dtype)t))) {
            *out = (hass_dtype)t;
            return 1;
        }
    }
    return 0;
}

/* One model to measure: every matrix in dt, or the llama.cpp mix of plan (mix set). */
typedef struct {
    hass_dtype dt;
    int mix;
    hass_quant_plan plan;
    char name[16];
} variant;

static hass_model *variant_model(const variant *v, const hass_model_config *c) {
    hass_err err = {0};
    hass_model *m = v->mix ? hass_model_synthetic_mix(c, &v->plan, 1, &err)
                           : hass_model_synthetic(c, v->dt, 1, &err);
    if (!m) {
        fprintf(stderr, "bench_model: %s\n", err.msg);
        exit(1);
    }
    return m;
}

int main(int argc, char **argv) {
    int quick = 0, threads = 0, ndts = 0, big = 0, max_sets = 0, avx2 = 0, spec = 1;
    int only_stories = 0, only_decode = 0, curve_rounds = 0;
    const char *model = NULL, *wait_file = NULL;
    variant vs[8];
    char dlist[128] = "f32,bf16,q8_0,q4_k";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc)
            snprintf(dlist, sizeof dlist, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--wait") && i + 1 < argc)
            wait_file = argv[++i];
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc &&
                 (!strcmp(argv[i + 1], "7b") || !strcmp(argv[i + 1], "125m")))
            big = !strcmp(argv[++i], "7b");
        else if (!strcmp(argv[i], "--sets") && i + 1 < argc && atoi(argv[i + 1]) > 0)
            max_sets = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--avx2"))
            avx2 = 1;
        else if (!strcmp(argv[i], "--no-spec"))
            spec = 0;
        else if (!strcmp(argv[i], "--stories"))
            only_stories = 1;
        else if (!strcmp(argv[i], "--decode"))
            only_decode = 1;
        else if (!strcmp(argv[i], "--curve") && i + 1 < argc)
            curve_rounds = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_model [--quick] [--threads N] [--model PATH] "
                            "[--dtype f32,bf16,q8_0,q4_k,q4_k_m] [--shape 125m|7b] [--sets N] "
                            "[--avx2] [--no-spec] [--wait FILE] [--stories] [--decode] "
                            "[--curve ROUNDS]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (only_stories) {
        printf("name,shape,threads,iters,ms,value\n");
        stories260k(quick);
        return 0;
    }
    hass_model_config c = big ? hass_model_config_make(4096, 11008, 32, 32, 32, 32000, 2048)
                              : hass_model_config_make(768, 2048, 12, 12, 4, 32000, 2048);
    const char *shape = big ? "7B" : "125M";
    for (char *tok = strtok(dlist, ","); tok && ndts < 8; tok = strtok(NULL, ",")) {
        variant *v = &vs[ndts++];
        memset(v, 0, sizeof *v);
        snprintf(v->name, sizeof v->name, "%s", tok);
        if (parse_dtype(tok, &v->dt)) {
            snprintf(v->name, sizeof v->name, "%s", hass_dtype_name(v->dt));
            continue;
        }
        hass_err e = {0};
        if (hass_quant_plan_init_shape(&v->plan, tok, 0, c.n_layers, 0, &e) != HASS_OK) {
            fprintf(stderr, "bench_model: unknown dtype %s\n", tok);
            return 2;
        }
        v->mix = 1;
        v->dt = v->plan.base;
    }
    if (!max_sets)
        max_sets = quick ? 1 : 4;
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
    hass_err err = {0};
    /* the 125M models first (quantizing their weights takes a while), then the timings; 7B
     * ones one at a time (two do not fit in memory) */
    hass_model *ms[8] = {0};
    for (int k = 0; !model && !big && k < ndts; k++)
        ms[k] = variant_model(&vs[k], &c);
    if (wait_file) { /* e.g. until other work on the machine is paused */
        fprintf(stderr, "bench_model: models ready, waiting for %s\n", wait_file);
        while (!hass_file_exists(wait_file))
            nanosleep(&(struct timespec){0, 50000000}, NULL);
    }
    bench_bw_buf yard = bench_bw_open((size_t)1 << 30);
    bench_bw_measure(&yard, pool, nt, 1);
    double bw = bench_bw_measure(&yard, pool, nt, quick ? 3 : 7);
    printf("name,shape,threads,iters,ms,value\n");
    printf("read_bw_gbs,1GiB-%s,%d,%d,,%.2f\n", bench_bw_loads_name(), nt, quick ? 3 : 7, bw);
    int fs[4], nfs;
    if (model) { /* a real model: every kernel set side by side */
        hass_model *m = hass_model_load(model, &err);
        if (!m) {
            fprintf(stderr, "bench_model: %s\n", err.msg);
            return 1;
        }
        nfs = kernel_sets(fs, m->lm_head_t);
        for (int k = 0; k < nfs; k++) {
            hass_cpu_force(fs[k]);
            measure(m, pool, &yard, "model", quick, 0, bw, m->lm_head_t);
        }
        hass_cpu_force(-1);
        hass_model_free(m);
        bench_bw_close(&yard);
        hass_pool_destroy(pool);
        return 0;
    }
    for (int k = 0; k < ndts; k++) {
        double t0 = hass_now();
        hass_model *m = big ? variant_model(&vs[k], &c) : ms[k];
        if (big)
            fprintf(stderr, "bench_model: %s-%s built in %.0f s\n", shape, vs[k].name,
                    hass_now() - t0);
        char label[64];
        snprintf(label, sizeof label, "%s-%s", shape, vs[k].name);
        nfs = kernel_sets(fs, vs[k].dt);
        for (int f = 0; f < nfs; f++) {
            if (f >= max_sets && !(avx2 && f == nfs - 1)) /* the last set is plain AVX2 */
                continue;
            hass_cpu_force(fs[f]);
            measure(m, pool, &yard, label, quick, only_decode, bw, vs[k].dt);
        }
        hass_cpu_force(-1);
        measure_tuned(m, pool, &yard, label, quick, only_decode, bw, vs[k].dt);
        if (spec && !only_decode)
            spec_oracle(m, pool, label, quick);
        hass_ops_tune_set(NULL); /* the engine's choice for this model only */
        printf("peak_rss_mb,%s,%d,,,%.0f\n", label, nt, (double)hass_peak_rss_bytes() / 1048576.0);
        printf("{\"case\":\"%s\",\"weight_bytes\":%zu,\"peak_rss_mb\":%.0f}\n", label,
               m->weight_bytes, (double)hass_peak_rss_bytes() / 1048576.0);
        hass_model_free(m);
    }
    if (!only_decode && !big)
        stories260k(quick);
    bench_bw_close(&yard);
    hass_pool_destroy(pool);
    return 0;
}
