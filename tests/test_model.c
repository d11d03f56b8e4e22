/*
 * test_model.c — properties of the target forward pass on synthetic models:
 * batch invariance (a row alone == the same row inside a batch, bit for bit), thread-count
 * invariance, tree-masked forward == running each root-to-node path sequentially, and KV
 * keep() == a fresh prefill of the kept text; for float weights and for every GGUF block type.
 */
#include "check.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hass_model *m;
    hass_kv kv;
    hass_pool *pool;
} runner;

static void runner_init(runner *r, hass_model *m, int threads, int64_t cap) {
    hass_err err = {0};
    r->m = m;
    r->pool = hass_pool_create(threads);
    HASS_ASSERT(hass_kv_init(&r->kv, m, cap, cap < 64 ? cap : 64, r->pool, &err) == HASS_OK);
}
static void runner_free(runner *r) {
    hass_kv_free(&r->kv);
    hass_pool_destroy(r->pool);
}

/* forward n causal rows at the current end, commit, write logits/feats of all rows */
static void run_chain(runner *r, const int32_t *toks, int64_t n, float *logits, float *feats) {
    int32_t pos[64];
    hass_err err = {0};
    for (int64_t i = 0; i < n; i++)
        pos[i] = (int32_t)(r->kv.n + i);
    hass_status st =
        hass_model_forward(r->m, &r->kv, r->pool, n, toks, pos, NULL, logits, 0, feats, &err);
    CHECK_MSG(st == HASS_OK, "%s", err.msg);
    hass_kv_commit(&r->kv, n);
}

static void test_batch_invariance(hass_model *m, const char *label) {
    int64_t V = m->cfg.V, d = m->cfg.d, n = 23;
    int32_t toks[64];
    hass_rng rng;
    hass_rng_seed(&rng, 7);
    for (int i = 0; i < n; i++)
        toks[i] = (int32_t)(hass_rng_u64(&rng) % (uint64_t)V);
    float *lb = malloc(sizeof(float) * n * V), *fb = malloc(sizeof(float) * n * d);
    float *l1 = malloc(sizeof(float) * n * V), *f1 = malloc(sizeof(float) * n * d);
    for (int threads = 1; threads <= 3; threads++) {
        runner a, b;
        runner_init(&a, m, threads, 128);
        runner_init(&b, m, threads == 1 ? 2 : 1, 128);
        run_chain(&a, toks, n, lb, fb); /* one batch of 23 rows */
        for (int64_t i = 0; i < n; i++) /* one row at a time, other thread count */
            run_chain(&b, toks + i, 1, l1 + i * V, f1 + i * d);
        char what[96];
        snprintf(what, sizeof what, "%s batch vs single logits (threads %d)", label, threads);
        CHECK_BITEQ(lb, l1, n * V, what);
        snprintf(what, sizeof what, "%s batch vs single features (threads %d)", label, threads);
        CHECK_BITEQ(fb, f1, n * d, what);
        runner_free(&a);
        runner_free(&b);
    }
    /* and chunks of different sizes: 5 + 11 + 7 */
    runner c;
    runner_init(&c, m, 2, 128);
    run_chain(&c, toks, 5, l1, f1);
    run_chain(&c, toks + 5, 11, l1 + 5 * V, f1 + 5 * d);
    run_chain(&c, toks + 16, 7, l1 + 16 * V, f1 + 16 * d);
    CHECK_BITEQ(lb, l1, n * V, "chunked prefill logits");
    runner_free(&c);
    free(lb);
    free(fb);
    free(l1);
    free(f1);
}

/* A random tree of N nodes after a prefix: each node's logits must equal those of feeding its
 * root-to-node path one token at a time after the same prefix. Then keep() a path and compare
 * the next step with a fresh prefill. */
static void test_tree(hass_model *m, const char *label) {
    int64_t V = m->cfg.V, d = m->cfg.d, np = 9, N = 31;
    hass_rng rng;
    hass_rng_seed(&rng, 11);
    int32_t prefix[16], tok[64], par[64], pos[64], depth[64];
    for (int i = 0; i < np; i++)
        prefix[i] = (int32_t)(hass_rng_u64(&rng) % (uint64_t)V);
    for (int i = 0; i < N; i++) {
        par[i] = i == 0 ? -1 : (int32_t)(hass_rng_u64(&rng) % (uint64_t)i);
        depth[i] = i == 0 ? 0 : depth[par[i]] + 1;
        pos[i] = (int32_t)(np + depth[i]);
        tok[i] = (int32_t)(hass_rng_u64(&rng) % (uint64_t)V);
    }
    float *lt = malloc(sizeof(float) * N * V), *ft = malloc(sizeof(float) * N * d);
    float *ls = malloc(sizeof(float) * V), *fs = malloc(sizeof(float) * d);
    runner t;
    runner_init(&t, m, 2, 256);
    run_chain(&t, prefix, np, NULL, NULL);
    hass_err err = {0};
    CHECK(hass_model_forward(m, &t.kv, t.pool, N, tok, pos, par, lt, 0, ft, &err) == HASS_OK);
    int ok_l = 1, ok_f = 1;
    for (int i = 0; i < N; i++) {
        int32_t path[64];
        int len = 0;
        for (int x = i; x >= 0; x = par[x])
            path[len++] = tok[x];
        runner s;
        runner_init(&s, m, 1, 256);
        run_chain(&s, prefix, np, NULL, NULL);
        for (int k = len - 1; k >= 0; k--)
            run_chain(&s, &path[k], 1, ls, fs);
        ok_l &= memcmp(ls, lt + i * V, sizeof(float) * V) == 0;
        ok_f &= memcmp(fs, ft + i * d, sizeof(float) * d) == 0;
        runner_free(&s);
    }
    CHECK_MSG(ok_l, "%s: tree logits == sequential path logits", label);
    CHECK_MSG(ok_f, "%s: tree features == sequential path features", label);

    /* keep the path to the deepest node, then run one more token */
    int deepest = 0;
    for (int i = 0; i < N; i++)
        if (depth[i] > depth[deepest])
            deepest = i;
    int32_t rows[64], keep_tok[64];
    int nk = 0;
    for (int x = deepest; x >= 0; x = par[x])
        rows[nk++] = x;
    for (int a = 0, b = nk - 1; a < b; a++, b--) {
        int32_t tmp = rows[a];
        rows[a] = rows[b];
        rows[b] = tmp;
    }
    for (int k = 0; k < nk; k++)
        keep_tok[k] = tok[rows[k]];
    hass_kv_keep(&t.kv, rows, nk);
    CHECK_EQ_INT(t.kv.n, np + nk);
    int32_t next = 3;
    run_chain(&t, &next, 1, ls, NULL);
    runner f;
    runner_init(&f, m, 2, 256);
    int32_t all[128];
    memcpy(all, prefix, sizeof(int32_t) * np);
    memcpy(all + np, keep_tok, sizeof(int32_t) * nk);
    all[np + nk] = next;
    float *lf = malloc(sizeof(float) * (np + nk + 1) * V);
    run_chain(&f, all, np + nk + 1, lf, NULL);
    CHECK_BITEQ(ls, lf + (np + nk) * V, V, "keep() then step == fresh prefill");
    /* the compacted cache itself equals the fresh prefill's cache */
    int64_t kvd = m->cfg.Hkv * m->cfg.Dh, L = m->cfg.n_layers, same = 1;
    for (int64_t l = 0; l < L; l++)
        same &= memcmp(t.kv.k + l * t.kv.cap * kvd, f.kv.k + l * f.kv.cap * kvd,
                       sizeof(float) * (size_t)((np + nk + 1) * kvd)) == 0 &&
                memcmp(t.kv.v + l * t.kv.cap * kvd, f.kv.v + l * f.kv.cap * kvd,
                       sizeof(float) * (size_t)((np + nk + 1) * kvd)) == 0;
    CHECK_MSG(same, "%s: compacted KV == fresh prefill KV", label);
    runner_free(&f);
    runner_free(&t);
    free(lf);
    free(lt);
    free(ft);
    free(ls);
    free(fs);
}

static void test_bad_input(hass_model *m) {
    runner r;
    runner_init(&r, m, 1, 8);
    hass_err err = {0};
    int32_t toks[16] = {0}, pos[16] = {0}, par[2] = {-1, 1};
    float *lg = malloc(sizeof(float) * m->cfg.V * 16);
    toks[0] = (int32_t)m->cfg.V;
    CHECK(hass_model_forward(m, &r.kv, r.pool, 1, toks, pos, NULL, lg, 0, NULL, &err) ==
          HASS_STATUS_RANGE);
    toks[0] = 0;
    CHECK(hass_model_forward(m, &r.kv, r.pool, 2, toks, pos, par, lg, 0, NULL, &err) ==
          HASS_STATUS_ARG);
    for (int i = 0; i < 8; i++)
        pos[i] = i;
    CHECK(hass_model_forward(m, &r.kv, r.pool, 8, toks, pos, NULL, lg, 0, NULL, &err) == HASS_OK);
    hass_kv_commit(&r.kv, 8);
    CHECK(hass_model_forward(m, &r.kv, r.pool, 1, toks, pos, NULL, lg, 0, NULL, &err) ==
          HASS_STATUS_RANGE);
    hass_model_config bad = m->cfg;
    bad.Hkv = 3;
    CHECK(hass_model_synthetic(&bad, HASS_DTYPE_F32, 1, &err) == NULL);
    free(lg);
    runner_free(&r);
}

/* hass_attention_win (draft tree levels): the n queries are the last rows of a window of n_win
 * rows after n_past committed keys; compare with the naive attention over the whole window
 * where the earlier window rows only see themselves. */
static void test_attention_window(void) {
    hass_rng rng;
    hass_rng_seed(&rng, 21);
    const int64_t H = 4, Hkv = 2, Dh = 12, n_past = 37, n_win = 23, n = 7, kvd = Hkv * Dh;
    int64_t W = (n_win + 63) / 64;
    float *q = malloc(sizeof(float) * n_win * H * Dh),
          *k = malloc(sizeof(float) * (n_past + n_win) * kvd);
    float *v = malloc(sizeof(float) * (n_past + n_win) * kvd);
    float *out = malloc(sizeof(float) * n * H * Dh), *ref = malloc(sizeof(float) * n_win * H * Dh);
    uint64_t *mask = calloc((size_t)(n * W), sizeof(uint64_t));
    uint64_t *full = calloc((size_t)(n_win * W), sizeof(uint64_t));
    for (int64_t i = 0; i < n_win * H * Dh; i++)
        q[i] = hass_rng_normal(&rng);
    for (int64_t i = 0; i < (n_past + n_win) * kvd; i++) {
        k[i] = hass_rng_normal(&rng);
        v[i] = hass_rng_normal(&rng);
    }
    for (int64_t r = 0; r < n_win; r++) {
        int64_t qi = r - (n_win - n);
        for (int64_t j = 0; j <= r; j++) {
            int on = j == r || (qi >= 0 && hass_rng_uniform(&rng) < 0.4f);
            if (on) {
                full[r * W + j / 64] |= 1ull << (j % 64);
                if (qi >= 0)
                    mask[qi * W + j / 64] |= 1ull << (j % 64);
            }
        }
    }
    hass_ref_attention(ref, q, k, v, n_past, n_win, full, H, Hkv, Dh);
    hass_pool *pool = hass_pool_create(2);
    float *scr = malloc(sizeof(float) * hass_attention_scratch(pool, n_past + n_win));
    hass_attention_win(pool, out, q + (n_win - n) * H * Dh, k, v, n_past, n_win, n, mask, H, Hkv,
                       Dh, scr);
    CHECK_CLOSE(out, ref + (n_win - n) * H * Dh, n * H * Dh, 1e-5, 1e-4, "attention window");
    /* NULL mask = causal over the window */
    for (int64_t r = 0; r < n_win; r++)
        for (int64_t j = 0; j < W; j++)
            full[r * W + j] = 0;
    for (int64_t r = 0; r < n_win; r++)
        for (int64_t j = 0; j <= r; j++)
            full[r * W + j / 64] |= 1ull << (j % 64);
    hass_ref_attention(ref, q, k, v, n_past, n_win, full, H, Hkv, Dh);
    hass_attention_win(pool, out, q + (n_win - n) * H * Dh, k, v, n_past, n_win, n, NULL, H, Hkv,
                       Dh, scr);
    CHECK_CLOSE(out, ref + (n_win - n) * H * Dh, n * H * Dh, 1e-5, 1e-4, "attention window causal");
    hass_pool_destroy(pool);
    free(q), free(k), free(v), free(out), free(ref), free(mask), free(full), free(scr);
}

/* hass_model_perplexity == token-by-token decoding with a double log-softmax, window by window
 * (ctx 70: two forward chunks per window); its refusals. */
static void test_perplexity(hass_model *m) {
    hass_err err = {0};
    const int64_t ctx = 70, n = 3 * ctx + 5;
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    float *lg = malloc((size_t)m->cfg.V * sizeof *lg);
    HASS_ASSERT(ids && lg);
    for (int64_t i = 0; i < n; i++)
        ids[i] = (int32_t)((i * 7 + i / 3) % m->cfg.V);
    hass_pool *pool = hass_pool_create(2);
    hass_ppl_result r;
    CHECK(hass_model_perplexity(m, pool, ids, n, ctx, 0, &r, &err) == HASS_OK);
    CHECK_EQ_INT(r.n_windows, 3);
    CHECK_EQ_INT(r.n_tokens, 3 * ctx);
    hass_kv kv;
    HASS_ASSERT(hass_kv_init(&kv, m, ctx, 1, NULL, &err) == HASS_OK);
    double sum = 0;
    for (int64_t w = 0; w < 3; w++) {
        hass_kv_truncate(&kv, 0);
        for (int64_t i = 0; i < ctx; i++) {
            int32_t p = (int32_t)i;
            HASS_ASSERT(hass_model_forward(m, &kv, NULL, 1, &ids[w * ctx + i], &p, NULL, lg, 0,
                                           NULL, &err) == HASS_OK);
            hass_kv_commit(&kv, 1);
            double mx = lg[0], s = 0;
            for (int64_t v = 1; v < m->cfg.V; v++)
                mx = lg[v] > mx ? lg[v] : mx;
            for (int64_t v = 0; v < m->cfg.V; v++)
                s += exp(lg[v] - mx);
            sum += log(s) + mx - lg[ids[w * ctx + i + 1]];
        }
    }
    double want = sum / (3.0 * (double)ctx);
    CHECK_MSG(fabs(r.nll - want) <= 1e-9 * fabs(want) && fabs(r.ppl - exp(want)) <= 1e-6 * r.ppl,
              "perplexity: loss %.9f, token by token %.9f", r.nll, want);
    CHECK(r.nll_se > 0);
    CHECK(hass_model_perplexity(m, pool, ids, n, ctx, 2, &r, &err) == HASS_OK && r.n_windows == 2);
    CHECK(hass_model_perplexity(m, pool, ids, ctx, ctx, 0, &r, &err) ==
          HASS_STATUS_RANGE); /* too few tokens: the data's fault */
    CHECK(hass_model_perplexity(m, pool, ids, n, m->cfg.max_ctx + 1, 0, &r, &err) ==
          HASS_STATUS_ARG);
    ids[ctx + 3] = (int32_t)m->cfg.V;
    CHECK(hass_model_perplexity(m, pool, ids, n, ctx, 0, &r, &err) == HASS_STATUS_RANGE);
    hass_kv_free(&kv);
    hass_pool_destroy(pool);
    free(ids), free(lg);
}

/* hass_model_prefill (forwards of max_batch rows after what is committed) == one row at a
 * time: the last logits and every row's features, bit for bit; errors for no rows and too many. */
static void test_prefill(hass_model *m) {
    int64_t V = m->cfg.V, d = m->cfg.d, n = 150, n0 = 7;
    int32_t toks[160];
    for (int64_t i = 0; i < n0 + n; i++)
        toks[i] = (int32_t)((i * 31 + 5) % V);
    float *lp = malloc(sizeof(float) * V), *fp = malloc(sizeof(float) * n * d);
    float *l1 = malloc(sizeof(float) * V), *f1 = malloc(sizeof(float) * n * d);
    runner a, b;
    runner_init(&a, m, 2, 256);
    runner_init(&b, m, 1, 256);
    hass_err err = {0};
    CHECK(hass_model_prefill(m, &a.kv, a.pool, n0, toks, NULL, NULL, &err) == HASS_OK);
    CHECK(hass_model_prefill(m, &a.kv, a.pool, n, toks + n0, lp, fp, &err) == HASS_OK);
    CHECK_EQ_INT(a.kv.n, n0 + n);
    for (int64_t i = 0; i < n0 + n; i++)
        run_chain(&b, toks + i, 1, l1, i >= n0 ? f1 + (i - n0) * d : NULL);
    CHECK_BITEQ(lp, l1, V, "prefill: the last row's logits");
    CHECK_BITEQ(fp, f1, n * d, "prefill: every row's features");
    CHECK(hass_model_prefill(m, &a.kv, a.pool, 0, toks, lp, NULL, &err) == HASS_STATUS_ARG);
    CHECK(hass_model_prefill(m, &a.kv, a.pool, 100, toks, lp, NULL, &err) == HASS_STATUS_RANGE);
    runner_free(&a);
    runner_free(&b);
    free(lp), free(fp), free(l1), free(f1);
}

int main(void) {
    check_init("test_model");
    test_attention_window();
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(64, 96, 2, 4, 2, 97, 512);
    hass_dtype dts[] = {HASS_DTYPE_F32, HASS_DTYPE_BF16, HASS_DTYPE_F16};
    const char *names[] = {"f32", "bf16", "f16"};
    for (int k = 0; k < 3; k++) {
        hass_model *m = hass_model_synthetic(&c, dts[k], 42 + (uint64_t)k, &err);
        CHECK_MSG(m != NULL, "%s", err.msg);
        if (!m)
            continue;
        test_batch_invariance(m, names[k]);
        test_tree(m, names[k]);
        if (k == 0) {
            test_bad_input(m);
            test_prefill(m);
        }
        if (k == 1)
            test_perplexity(m);
        hass_model_free(m);
    }
    /* quantized weights, every block type (d, ffn multiples of 256) */
    hass_model_config cq = hass_model_config_make(256, 512, 2, 4, 2, 97, 512);
    static const hass_dtype qts[] = {HASS_DTYPE_Q8_0, HASS_DTYPE_Q4_0, HASS_DTYPE_Q4_1,
                                     HASS_DTYPE_Q5_0, HASS_DTYPE_Q5_1, HASS_DTYPE_Q4_K,
                                     HASS_DTYPE_Q5_K, HASS_DTYPE_Q6_K};
    for (int k = 0; k < 8; k++) {
        hass_model *m = hass_model_synthetic(&cq, qts[k], 7 + (uint64_t)k, &err);
        CHECK_MSG(m != NULL, "%s", err.msg);
        if (!m)
            continue;
        test_batch_invariance(m, hass_dtype_name(qts[k]));
        test_tree(m, hass_dtype_name(qts[k]));
        hass_model_free(m);
    }
    /* a synthetic model in llama.cpp's Q4_K_M mix (what bench_model measures at 7B): Q4_K,
     * Q6_K for output and for attn_v / ffn_down of the more_bits layers (layer 1 of 2 here) */
    hass_quant_plan plan;
    CHECK(hass_quant_plan_init_shape(&plan, "q4_k_m", 0, cq.n_layers, 0, &err) == HASS_OK);
    hass_model *mq = hass_model_synthetic_mix(&cq, &plan, 21, &err);
    CHECK_MSG(mq != NULL, "%s", err.msg);
    if (mq) {
        CHECK(mq->embed_t == HASS_DTYPE_Q4_K && mq->lm_head_t == HASS_DTYPE_Q6_K &&
              mq->layers[0].tv == HASS_DTYPE_Q4_K && mq->layers[0].td == HASS_DTYPE_Q4_K &&
              mq->layers[1].tv == HASS_DTYPE_Q6_K && mq->layers[1].td == HASS_DTYPE_Q6_K &&
              mq->layers[1].tk == HASS_DTYPE_Q4_K);
        test_batch_invariance(mq, "synthetic q4_k_m");
        test_tree(mq, "synthetic q4_k_m");
        hass_model_free(mq);
    }
    /* a mixed file as llama.cpp writes it (Q4_K_M: Q4_K, Q6_K and F32 tensors) */
    const char *mixed = check_shared("models/quant/tiny-q4_k_m.gguf");
    hass_model *mm = mixed ? hass_model_load(mixed, &err) : NULL;
    if (!mixed) {
        CHECK_SKIP("shared/models/quant/tiny-q4_k_m.gguf not found");
    } else {
        CHECK_MSG(mm != NULL, "%s", err.msg);
        if (mm) {
            test_batch_invariance(mm, "tiny-q4_k_m");
            test_tree(mm, "tiny-q4_k_m");
            hass_model_free(mm);
        }
    }
    /* odd shapes: d not a multiple of 8, GQA 3:1, interleaved rope */
    hass_model_config c2 = hass_model_config_make(36, 50, 3, 6, 2, 61, 256);
    c2.rope_style = HASS_ROPE_INTERLEAVED;
    hass_model *m2 = hass_model_synthetic(&c2, HASS_DTYPE_F32, 5, &err);
    CHECK(m2 != NULL);
    if (m2) {
        test_batch_invariance(m2, "odd");
        test_tree(m2, "odd");
        hass_model_free(m2);
    }
    return check_exit();
}
