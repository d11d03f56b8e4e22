/*
 * decode.c — plain and speculative generation loops (HASS.md 6.2–6.8), the cost model that
 * sizes draft trees for this machine, and their metrics.
 *
 * Speculative cycle (N = committed target positions, r = root token, already emitted):
 *   1. the draft catches up on pending pairs (f_i, t_{i+1}) built from the target's TRUE
 *      features and gets h, its estimate of f_N;
 *   2. tree: the top-k of q(.|h) are the root's children; each level feeds the frontier pairs
 *      (parent's h, token) through the draft (scratch KV) and records top-k children;
 *   3. the target verifies root + the m best candidates in one forward with a tree mask;
 *   4. accepted path + bonus: target KV compacted (keep), pairs of the accepted tokens queued
 *      for the draft, bonus becomes the next root.
 * The cost model picks m (and stops expanding levels) to maximise expected tokens per second:
 * expected accepted drafts = calibrated sum of the selected nodes' path probabilities, cost =
 * draft time spent + the target's measured cost(m+1). When drafting does not pay (an untrained
 * draft), cycles fall back to plain steps and the draft is probed with exponential backoff; the
 * pairs it missed are fed in one batch when it is probed.
 */
#include "decode/decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TGT_BATCH 64 /* target rows per forward: prefill chunk and largest tree */
#define COST_N 64
#define PROBE_WINDOW 8  /* pairs a probing cycle feeds the draft */
#define MAX_BACKOFF 128 /* plain steps between probes of a losing draft, at most */

/* What the engine has learnt about its draft on this machine; kept across generations (the
 * same draft and target), so later prompts start from measured costs and acceptance. */
typedef struct {
    double t_level;   /* seconds per expansion level (EMA) */
    double t_root;    /* seconds for the root's candidates (LM head on h) */
    double calib_num; /* decayed sums: accepted drafts, predicted accepted drafts */
    double calib_den;
    double gain_ema; /* EMA of (tokens per second of drafting cycles) / (plain rate) */
    int skip_left;   /* plain steps left before the next probe */
    int backoff;     /* current probe interval */
} spec_model;

struct hass_engine {
    const hass_model *m;
    const hass_tokenizer *tok;
    const hass_draft *dr;
    hass_pool *pool;
    int64_t ctx;
    hass_kv kv;
    hass_sampler sampler;
    float *logits; /* (TGT_BATCH, V) */
    float *feats;  /* (TGT_BATCH, d) */
    float *probs;  /* (V) */
    int32_t stop_ids[2 * HASS_MAX_STOP];
    int n_stop;
    /* speculative state */
    hass_draft_state ds;
    hass_tree tree;
    float *pend_feat;  /* (ctx + TGT_BATCH, d): queued pairs for the draft */
    int32_t *pend_tok; /* (ctx + TGT_BATCH) */
    int64_t n_pend;
    hass_expander ex;        /* tree expansion; ex.feat row 0: h of the last committed pair */
    double cost[COST_N + 1]; /* cost(n) / cost(1) */
    double t1;               /* seconds of one single-row target forward */
    int have_costs;
    hass_ops_tune tune; /* the kernel choices for this model on this machine */
    int have_tune;
    spec_model sm;
    int have_sm;
    hass_oracle_fn oracle;
    void *oracle_user;
    int32_t *seq; /* (ctx + HASS_TREE_MAX_NODES): committed tokens, then a node's path */
};

void hass_engine_set_oracle(hass_engine *e, hass_oracle_fn fn, void *user) {
    e->oracle = fn;
    e->oracle_user = user;
}

const hass_kv *hass_engine_kv(const hass_engine *e) {
    return &e->kv;
}
const int32_t *hass_engine_seq(const hass_engine *e) {
    return e->seq;
}

int hass_engine_is_stop(const hass_engine *e, int32_t tok) {
    for (int i = 0; i < e->n_stop; i++)
        if (e->stop_ids[i] == tok)
            return 1;
    return 0;
}

void hass_engine_destroy(hass_engine *e) {
    if (!e)
        return;
    hass_kv_free(&e->kv);
    hass_sampler_free(&e->sampler);
    hass_draft_state_free(&e->ds);
    hass_tree_free(&e->tree);
    void *ps[] = {e->logits, e->feats,     e->probs,  e->pend_feat, e->pend_tok, e->ex.feat,
                  e->ex.in,  e->ex.logits, e->ex.ids, e->ex.lp,     e->seq};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        hass_aligned_free(ps[i]);
    free(e);
}

hass_engine *hass_engine_create(const hass_model *m, const hass_tokenizer *tok,
                                const hass_draft *draft, hass_pool *pool, int64_t ctx,
                                hass_err *err) {
    const hass_model_config *c = &m->cfg;
    if (ctx <= 0)
        ctx = c->max_ctx;
    if (ctx < 2 || ctx > (1 << 22)) {
        hass_err_set(err, HASS_STATUS_ARG, "context too small");
        return NULL;
    }
    hass_engine *e = calloc(1, sizeof *e);
    if (!e) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    e->m = m;
    e->tok = tok;
    e->dr = draft;
    e->pool = pool;
    e->ctx = ctx;
    int64_t B = TGT_BATCH < ctx ? TGT_BATCH : ctx, V = c->V, d = c->d;
    hass_sampler_params sp = {0, 0, 1.0f, 0};
    if (hass_kv_init(&e->kv, m, ctx, B, pool, err) || hass_sampler_init(&e->sampler, &sp, V, err))
        goto fail;
    e->logits = hass_aligned_alloc((size_t)(B * V) * sizeof(float));
    e->feats = hass_aligned_alloc((size_t)(B * d) * sizeof(float));
    e->probs = hass_aligned_alloc((size_t)V * sizeof(float));
    if (!e->logits || !e->feats || !e->probs) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->n_stop; i++)
        e->stop_ids[e->n_stop++] = c->stop_ids[i];
    if (tok) {
        int32_t ids[HASS_MAX_STOP];
        int k = hass_tokenizer_stop_ids(tok, ids, HASS_MAX_STOP);
        for (int i = 0; i < k && i < HASS_MAX_STOP; i++)
            if (!hass_engine_is_stop(e, ids[i]))
                e->stop_ids[e->n_stop++] = ids[i];
    }
    {
        int64_t pc = ctx + TGT_BATCH;
        if ((draft && hass_draft_state_init(&e->ds, draft, ctx, TGT_BATCH, pool, err)) ||
            hass_tree_init(
                &e->tree,
                HASS_TREE_MAX_TOPK + HASS_MAX_DEPTH * HASS_TREE_MAX_TOPK * HASS_TREE_MAX_TOPK, err))
            goto fail;
        e->pend_feat = hass_aligned_alloc((size_t)(pc * d) * sizeof(float));
        e->pend_tok = hass_aligned_alloc((size_t)pc * sizeof(int32_t));
        hass_expander *x = &e->ex;
        x->dr = draft, x->ds = &e->ds, x->pool = pool, x->t = &e->tree;
        x->feat = hass_aligned_alloc((size_t)((1 + HASS_DRAFT_MAX_SCRATCH) * d) * sizeof(float));
        x->in = hass_aligned_alloc((size_t)(HASS_TREE_MAX_TOPK * d) * sizeof(float));
        x->logits = hass_aligned_alloc((size_t)(HASS_TREE_MAX_TOPK * V) * sizeof(float));
        x->ids = hass_aligned_alloc(HASS_TREE_MAX_TOPK * HASS_TREE_MAX_TOPK * sizeof(int32_t));
        x->lp = hass_aligned_alloc(HASS_TREE_MAX_TOPK * HASS_TREE_MAX_TOPK * sizeof(float));
        e->seq = hass_aligned_alloc((size_t)(ctx + HASS_TREE_MAX_NODES + 1) * sizeof(int32_t));
        if (!e->pend_feat || !e->pend_tok || !x->feat || !x->in || !x->logits || !x->ids ||
            !x->lp || !e->seq) {
            hass_err_set(err, HASS_STATUS_OOM, "out of memory");
            goto fail;
        }
    }
    return e;
fail:
    hass_engine_destroy(e);
    return NULL;
}

/* ---- emission ---- */
typedef struct {
    hass_engine *e;
    const hass_gen_params *p;
    hass_token_fn fn;
    void *user;
    int32_t *out;
    hass_gen_stats *st;
} emitter;

/* Returns 1 when generation must stop. */
static int emit(emitter *em, int32_t tok) {
    if (hass_engine_is_stop(em->e, tok)) {
        em->st->stop = HASS_STOP_EOS;
        return 1;
    }
    if (em->out)
        em->out[em->st->n_generated] = tok;
    em->st->n_generated++;
    if (em->fn && em->fn(tok, em->user)) {
        em->st->stop = HASS_STOP_NONE;
        return 1;
    }
    if (em->st->n_generated >= em->p->max_new) {
        em->st->stop = HASS_STOP_LENGTH;
        return 1;
    }
    return 0;
}

/* Prefills prompt[0..n); features of every row go to the draft queue (paired with the next
 * token) when want_feats; the last row's logits end in e->logits. */
static hass_status prefill(hass_engine *e, const int32_t *prompt, int64_t n, int want_feats,
                           hass_err *err) {
    int32_t pos[TGT_BATCH];
    int64_t d = e->m->cfg.d;
    for (int64_t s = 0; s < n; s += e->kv.max_batch) {
        int64_t k = n - s < e->kv.max_batch ? n - s : e->kv.max_batch;
        for (int64_t i = 0; i < k; i++)
            pos[i] = (int32_t)(s + i);
        int last = s + k == n;
        hass_status st =
            hass_model_forward(e->m, &e->kv, e->pool, k, prompt + s, pos, NULL,
                               last ? e->logits : NULL, k - 1, want_feats ? e->feats : NULL, err);
        if (st)
            return st;
        hass_kv_commit(&e->kv, k);
        if (want_feats) {
            /* pair (f_i, t_{i+1}); the last prompt row waits for the root token */
            memcpy(e->pend_feat + e->n_pend * d, e->feats, (size_t)(k * d) * sizeof(float));
            for (int64_t i = 0; i < k; i++)
                e->pend_tok[e->n_pend + i] = s + i + 1 < n ? prompt[s + i + 1] : -1;
            e->n_pend += k;
        }
    }
    return HASS_OK;
}

static hass_status generate_plain(hass_engine *e, const int32_t *prompt, int64_t n_prompt,
                                  emitter *em, hass_err *err) {
    double t0 = hass_now();
    hass_status st = prefill(e, prompt, n_prompt, 0, err);
    if (st)
        return st;
    em->st->prefill_seconds = hass_now() - t0;
    int64_t V = e->m->cfg.V;
    int32_t tok = hass_sample(&e->sampler, e->logits, e->probs);
    while (!emit(em, tok)) {
        if (e->kv.n + 1 > e->kv.cap) {
            em->st->stop = HASS_STOP_LENGTH;
            break;
        }
        int32_t pos = (int32_t)e->kv.n;
        if ((st = hass_model_forward(e->m, &e->kv, e->pool, 1, &tok, &pos, NULL, e->logits, 0, NULL,
                                     err)))
            return st;
        hass_kv_commit(&e->kv, 1);
        em->st->target_forwards++;
        tok = hass_sample(&e->sampler, e->logits, e->probs);
    }
    (void)V;
    em->st->cycles = em->st->target_forwards;
    return HASS_OK;
}

/* ---- kernel choices and the cost curve: measured once per machine (CPU model), thread count and
 * model shape, kept in one cache file: a line "tune ..." (hass_ops_tune), then the curve ---- */
static void cost_cache_path(const hass_engine *e, char *buf, size_t cap) {
    const hass_model_config *c = &e->m->cfg;
    uint64_t h = HASS_FNV_OFFSET;
    int64_t key[] = {c->d,
                     c->ffn,
                     c->n_layers,
                     c->H,
                     c->Hkv,
                     c->V,
                     (int64_t)e->m->weight_bytes,
                     (int64_t)e->m->layers[0].tq,
                     hass_pool_size(e->pool),
                     hass_cpu_allowed()};
    h = hass_fnv1a(h, key, sizeof key);
    const char *cpu = hass_cpu_model();
    h = hass_fnv1a(h, cpu, strlen(cpu));
    char host[128] = "";
    gethostname(host, sizeof host - 1);
    h = hass_fnv1a(h, host, strlen(host));
    const char *dir = getenv("HASS_CACHE_DIR");
    char tmp[512];
    if (!dir) {
        const char *home = getenv("XDG_CACHE_HOME");
        if (home)
            snprintf(tmp, sizeof tmp, "%s/hass", home);
        else
            snprintf(tmp, sizeof tmp, "%s/.cache/hass", getenv("HOME") ? getenv("HOME") : "/tmp");
        dir = tmp;
    }
    snprintf(buf, cap, "%s/cost-%016llx.txt", dir, (unsigned long long)h);
}

/* The tune line (required) into e->tune, then the curve if the file has one. */
static void load_cache(hass_engine *e, const char *path) {
    FILE *f = getenv("HASS_NO_COST_CACHE") ? NULL : fopen(path, "r");
    if (!f)
        return;
    hass_ops_tune *t = &e->tune;
    if (fscanf(f, "tune %d %d %d %d %d %d\n", &t->bf16, &t->rb[0], &t->rb[1], &t->pf[0], &t->pf[1],
               &t->pf[2]) == 6 &&
        t->bf16 >= HASS_BF16_WIDEST && t->bf16 <= HASS_BF16_FMA) {
        e->have_tune = 1;
        int ok = fscanf(f, "t1 %lf\n", &e->t1) == 1 && e->t1 > 0;
        for (int n = 1; ok && n <= COST_N; n++) {
            int k;
            ok = fscanf(f, "%d %lf\n", &k, &e->cost[n]) == 2 && k == n && e->cost[n] > 0;
        }
        e->have_costs = ok;
    }
    fclose(f);
}

static void save_cache(const hass_engine *e, const char *path) {
    char dir[1024], buf[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl) {
        *sl = 0;
        char *p = dir + 1;
        for (; *p; p++)
            if (*p == '/') {
                *p = 0;
                mkdir(dir, 0755);
                *p = '/';
            }
        mkdir(dir, 0755);
    }
    const hass_ops_tune *t = &e->tune;
    int len = snprintf(buf, sizeof buf, "tune %d %d %d %d %d %d\n", t->bf16, t->rb[0], t->rb[1],
                       t->pf[0], t->pf[1], t->pf[2]);
    if (e->have_costs) {
        len += snprintf(buf + len, sizeof buf - (size_t)len, "t1 %.9g\n", e->t1);
        for (int n = 1; n <= COST_N && len < (int)sizeof buf - 64; n++)
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%d %.6f\n", n, e->cost[n]);
    }
    hass_write_file_atomic(path, buf, (size_t)len, NULL); /* best effort: a cache */
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median time of forwards of n rows over the current context (nothing committed); 0 when n rows
 * do not fit, -1 on error. */
static double time_forward(hass_engine *e, int64_t n, hass_err *err) {
    int32_t tok[TGT_BATCH], pos[TGT_BATCH], par[TGT_BATCH];
    if (n > e->kv.max_batch || e->kv.n + n > e->kv.cap)
        return 0;
    for (int64_t i = 0; i < n; i++) {
        tok[i] = (int32_t)(i % e->m->cfg.V);
        pos[i] = (int32_t)(e->kv.n + i);
        par[i] = (int32_t)i - 1;
    }
    double ts[9];
    int reps = 0;
    double total = 0;
    while (reps < 9 && (reps < 3 || total < 0.05)) {
        double t0 = hass_now();
        if (hass_model_forward(e->m, &e->kv, e->pool, n, tok, pos, par, e->logits, 0, NULL, err))
            return -1;
        ts[reps] = hass_now() - t0;
        total += ts[reps++];
    }
    qsort(ts, (size_t)reps, sizeof(double), cmp_dbl);
    return ts[reps / 2];
}

/* A little context, as in real decoding (64 positions when they fit beside a full batch); returns
 * the cache length to give back to measure_end. */
static int64_t measure_begin(hass_engine *e) {
    hass_err err = {0};
    int64_t saved = e->kv.n, ctxn = 64 < e->kv.cap - TGT_BATCH ? 64 : 0;
    hass_kv_truncate(&e->kv, 0);
    if (ctxn > 0) {
        int32_t tok[64], pos[64];
        for (int i = 0; i < 64; i++) {
            tok[i] = i % (int32_t)e->m->cfg.V;
            pos[i] = i;
        }
        if (hass_model_forward(e->m, &e->kv, e->pool, 64, tok, pos, NULL, NULL, 0, NULL, &err) ==
            HASS_OK)
            hass_kv_commit(&e->kv, 64);
    }
    time_forward(e, 1, &err); /* warm-up */
    return saved;
}

static void measure_end(hass_engine *e, int64_t saved) {
    hass_kv_truncate(&e->kv, saved < e->kv.n ? saved : e->kv.n);
}

static int model_has_bf16(const hass_model *m) {
    int any = m->lm_head_t == HASS_DTYPE_BF16;
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        const hass_layer *L = &m->layers[l];
        hass_dtype t[] = {L->tq, L->tk, L->tv, L->to, L->tg, L->tu, L->td};
        for (int i = 0; i < 7; i++)
            any |= t[i] == HASS_DTYPE_BF16;
    }
    return any;
}

/* Sum of the forward times of the sizes in ns (n rows each) with tune t; a failed or impossible
 * size counts 0 for every candidate alike. */
static double tune_score(hass_engine *e, const hass_ops_tune *t, const int64_t *ns, int k) {
    hass_err err = {0};
    hass_ops_tune_set(t);
    double s = 0;
    for (int i = 0; i < k; i++) {
        double v = time_forward(e, ns[i], &err);
        s += v > 0 ? v : 0;
    }
    return s;
}

/* Of the values vals[0..nv) of the int *field of e->tune, the one whose score is lowest; the first
 * (the default) is kept unless another is faster by more than 5% (noise on a shared machine). */
static void tune_pick(hass_engine *e, int *field, const int *vals, int nv, const int64_t *ns,
                      int k) {
    double best = 0;
    int bv = vals[0];
    for (int i = 0; i < nv; i++) {
        *field = vals[i];
        double s = tune_score(e, &e->tune, ns, k);
        if (i == 0 || s < 0.95 * best)
            best = s, bv = vals[i];
    }
    *field = bv;
}

/* The kernel choices (hass_ops_tune) for this model here, from the cache or measured now (a
 * short calibration of whole forwards: about 20 medians of 3+ forwards), then applied. The bf16
 * product (which changes results in the last bits) is chosen once for the model, by the sum of
 * the times of 1 and 8 rows, never per row count, and not at all when HASS_CPU is set (then it
 * is the widest HASS_CPU allows); block heights and prefetch (bit-identical) per batch size. */
static void engine_tune(hass_engine *e) {
    if (!e->have_tune) {
        char path[1024];
        cost_cache_path(e, path, sizeof path);
        load_cache(e, path);
        if (!e->have_tune) {
            memset(&e->tune, 0, sizeof e->tune);
            int64_t saved = measure_begin(e);
            int f = hass_cpu_allowed(), cand[3], nc = 0;
            if (model_has_bf16(e->m) && !getenv("HASS_CPU")) {
                if (f & HASS_CPU_AMX)
                    cand[nc++] = HASS_BF16_AMX;
                if (f & HASS_CPU_AVX512BF16)
                    cand[nc++] = HASS_BF16_DP;
                if (f & HASS_CPU_AVX512)
                    cand[nc++] = HASS_BF16_FMA;
            }
            static const int64_t n1[] = {1}, n8[] = {8}, n16[] = {16}, both[] = {1, 8};
            if (nc > 1)
                tune_pick(e, &e->tune.bf16, cand, nc, both, 2);
            static const int pfs[] = {0, 2, 1}, rbs[] = {0, 3, 2};
            tune_pick(e, &e->tune.pf[0], pfs, 3, n1, 1);
            tune_pick(e, &e->tune.pf[1], pfs, 3, n8, 1);
            tune_pick(e, &e->tune.pf[2], pfs, 3, n16, 1);
            tune_pick(e, &e->tune.rb[0], rbs, 3, n8, 1);
            tune_pick(e, &e->tune.rb[1], rbs, 3, n16, 1);
            measure_end(e, saved);
            e->have_tune = 1;
            e->have_costs = 0; /* a curve measured with other kernels */
            save_cache(e, path);
        }
    }
    hass_ops_tune_set(&e->tune);
}

const hass_ops_tune *hass_engine_tune(hass_engine *e) {
    engine_tune(e);
    return &e->tune;
}

const double *hass_engine_costs(hass_engine *e, int *n_max) {
    *n_max = COST_N;
    engine_tune(e);
    if (e->have_costs)
        return e->cost;
    hass_err err = {0};
    int64_t saved = measure_begin(e);
    static const int sizes[] = {1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64};
    double t[sizeof sizes / sizeof sizes[0]];
    int ns = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sizes[i] > e->kv.max_batch || e->kv.n + sizes[i] > e->kv.cap)
            break;
        t[ns++] = time_forward(e, sizes[i], &err);
    }
    measure_end(e, saved);
    e->t1 = t[0] > 0 ? t[0] : 1e-3;
    /* piecewise-linear interpolation, monotone non-decreasing */
    for (int n = 1; n <= COST_N; n++) {
        int j = 0;
        while (j + 1 < ns && sizes[j + 1] < n)
            j++;
        double v;
        if (j + 1 >= ns)
            v = t[ns - 1] * n / sizes[ns - 1] > t[ns - 1] ? t[ns - 1] * n / sizes[ns - 1]
                                                          : t[ns - 1];
        else
            v = t[j] + (t[j + 1] - t[j]) * (n - sizes[j]) / (double)(sizes[j + 1] - sizes[j]);
        e->cost[n] = v / e->t1;
        if (n > 1 && e->cost[n] < e->cost[n - 1])
            e->cost[n] = e->cost[n - 1];
    }
    e->cost[1] = 1.0;
    e->have_costs = 1;
    char path[1024];
    cost_cache_path(e, path, sizeof path);
    save_cache(e, path);
    return e->cost;
}

/* ---- speculative decoding ---- */

/* Feeds the queued pairs to the draft (causal chain, committed); h of the last goes to
 * e->ex.feat row 0. Pending pair j sits at target position kv.n - n_pend + j. window > 0 feeds
 * only the last `window` pairs (a probe after plain steps: the draft's context then has a gap,
 * which costs it some accuracy and never correctness). */
static hass_status draft_catch_up(hass_engine *e, int64_t window, hass_err *err) {
    int64_t d = e->m->cfg.d, p0 = e->kv.n - e->n_pend;
    int64_t skip = window > 0 && e->n_pend > window ? e->n_pend - window : 0;
    int32_t pos[TGT_BATCH];
    hass_draft_discard_scratch(&e->ds);
    for (int64_t s = skip; s < e->n_pend; s += TGT_BATCH) {
        int64_t k = e->n_pend - s < TGT_BATCH ? e->n_pend - s : TGT_BATCH;
        for (int64_t i = 0; i < k; i++)
            pos[i] = (int32_t)(p0 + s + i);
        hass_status st = hass_draft_forward(&e->ds, e->pool, k, e->pend_feat + s * d,
                                            e->pend_tok + s, pos, 1, NULL, e->ds.x, err);
        if (st)
            return st;
        if (s + k == e->n_pend)
            memcpy(e->ex.feat, e->ds.x + (k - 1) * d, (size_t)d * sizeof(float));
    }
    e->n_pend = 0;
    return HASS_OK;
}

/* One expansion level: the draft's (or, in tests, the oracle's) children of the frontier. */
static hass_status expand_level(hass_engine *e, int topk, hass_err *err) {
    hass_tree *t = &e->tree;
    if (!e->oracle)
        return hass_expand_level(&e->ex, e->kv.n, topk, err);
    int nf = t->n_frontier;
    int32_t frow = e->ex.n_feat, first = t->n_cand;
    for (int i = 0; i < nf; i++) {
        int32_t ids[HASS_TREE_MAX_TOPK], path[HASS_MAX_DEPTH + 2];
        float lp[HASS_TREE_MAX_TOPK];
        int np = 0;
        for (int32_t a = t->frontier[i]; a >= 0; a = t->cand[a].parent)
            path[np++] = t->cand[a].tok;
        int64_t n = e->kv.n + 1; /* committed tokens + the root */
        for (int j = np - 1; j >= 0; j--)
            e->seq[n++] = path[j];
        e->oracle(e->oracle_user, e->seq, n, topk, ids, lp);
        if (hass_tree_add_children(t, t->frontier[i], ids, lp, topk, frow + i) < 0)
            return hass_err_set(err, HASS_STATUS_RANGE, "tree: candidate buffer full");
    }
    hass_tree_set_frontier(t, first, t->n_cand, topk);
    e->ex.n_feat = frow + nf;
    return HASS_OK;
}

static hass_status generate_spec(hass_engine *e, const int32_t *prompt, int64_t n_prompt,
                                 emitter *em, hass_err *err) {
    const hass_model *m = e->m;
    const hass_tree_params *tp = &em->p->tree;
    hass_gen_stats *gs = em->st;
    int64_t d = m->cfg.d, V = m->cfg.V;
    int topk = tp->topk < 1 ? 1 : (tp->topk > HASS_TREE_MAX_TOPK ? HASS_TREE_MAX_TOPK : tp->topk);
    int depth = tp->depth < 0 ? 0 : (tp->depth > HASS_MAX_DEPTH ? HASS_MAX_DEPTH : tp->depth);
    if (topk > V)
        topk = (int)V;
    if (e->dr && e->dr->n_vocab > 0 && topk > e->dr->n_vocab)
        topk = (int)e->dr->n_vocab;
    int forced = tp->tree_tokens > 0;
    int nodes_cap = forced ? tp->tree_tokens : HASS_TREE_MAX_NODES - 1;
    if (nodes_cap > HASS_TREE_MAX_NODES - 1)
        nodes_cap = HASS_TREE_MAX_NODES - 1;
    if (nodes_cap > topk + depth * topk * topk)
        nodes_cap = topk + depth * topk * topk;
    int nmax = 0;
    const double *cost = forced ? NULL : hass_engine_costs(e, &nmax);
    if (!e->have_sm) {
        memset(&e->sm, 0, sizeof e->sm);
        e->sm.calib_num = 1.0; /* start by trusting the draft's own probabilities */
        e->sm.calib_den = 1.0;
        e->sm.gain_ema = 1.0;
        e->have_sm = 1;
    }
    e->sm.skip_left = e->sm.backoff; /* a losing draft is probed at its learnt interval */
    spec_model sm = e->sm;

    double t0 = hass_now();
    hass_draft_state_reset(&e->ds);
    e->n_pend = 0;
    hass_status st = prefill(e, prompt, n_prompt, 1, err);
    if (st)
        return st;
    gs->prefill_seconds = hass_now() - t0;
    memcpy(e->seq, prompt, (size_t)n_prompt * sizeof(int32_t));
    int32_t root = hass_sample(&e->sampler, e->logits, e->probs);
    e->pend_tok[e->n_pend - 1] = root;
    if (emit(em, root))
        return HASS_OK;
    double gain[HASS_TREE_MAX_NODES + 1];
    int32_t path[HASS_TREE_MAX_NODES];
    int32_t pos[HASS_TREE_MAX_NODES];
    for (;;) {
        int64_t N = e->kv.n;
        if (N + 1 > e->kv.cap) {
            gs->stop = HASS_STOP_LENGTH;
            break;
        }
        double tc0 = hass_now();
        int drafting = forced || sm.skip_left <= 0;
        int64_t room = e->kv.cap - N - 1;
        int m_sel = 0;
        hass_tree *t = &e->tree;
        hass_tree_reset(t);
        double t_draft = 0;
        int probe = 0;
        double catch_total = 0, catch_per = 0; /* draft catch-up time, and per pair fed */
        if (drafting && room > 0) {
            probe = !forced && sm.backoff > 0;
            int64_t fed = e->n_pend < PROBE_WINDOW || !probe ? e->n_pend : PROBE_WINDOW;
            if (!e->oracle && (st = draft_catch_up(e, probe ? PROBE_WINDOW : 0, err)))
                return st;
            double ta = hass_now();
            catch_total = ta - tc0;
            catch_per = fed > 0 ? catch_total / (double)fed : 0;
            /* root's children from h (no draft forward needed) */
            if (e->oracle) {
                int32_t ids[HASS_TREE_MAX_TOPK];
                float lp[HASS_TREE_MAX_TOPK];
                e->seq[N] = root;
                e->oracle(e->oracle_user, e->seq, N + 1, topk, ids, lp);
                hass_tree_add_children(t, -1, ids, lp, topk, 0);
                hass_tree_set_frontier(t, 0, t->n_cand, topk);
                t->levels = 0;
                e->ex.n_feat = 1;
            } else {
                hass_expand_root(&e->ex, topk);
            }
            double tb = hass_now();
            sm.t_root = sm.t_root > 0 ? 0.8 * sm.t_root + 0.2 * (tb - ta) : tb - ta;
            double calib = sm.calib_num / sm.calib_den;
            for (int lvl = 0; lvl < depth; lvl++) {
                if (e->ds.scratch + t->n_frontier > HASS_DRAFT_MAX_SCRATCH)
                    break;
                if (!forced) {
                    /* stop when even the best case of one more level cannot raise the rate */
                    double spent = hass_now() - tc0;
                    int mm = nodes_cap < room ? nodes_cap : (int)room;
                    hass_tree_rank(t, gain, mm);
                    double best = 0;
                    int bm = 0;
                    for (int k = 0; k <= mm; k++) {
                        double r = (1 + calib * gain[k]) / (spent + e->t1 * cost[k + 1]);
                        if (r > best) {
                            best = r;
                            bm = k;
                        }
                    }
                    int nk = bm + topk < mm ? bm + topk : mm;
                    double up = (1 + calib * (gain[bm] + hass_tree_frontier_mass(t))) /
                                (spent + sm.t_level + e->t1 * cost[nk + 1]);
                    if (sm.t_level > 0 && up <= best)
                        break;
                }
                double tl = hass_now();
                if ((st = expand_level(e, topk, err)))
                    return st;
                double dt = hass_now() - tl;
                sm.t_level = sm.t_level > 0 ? 0.8 * sm.t_level + 0.2 * dt : dt;
                gs->draft_levels++;
                gs->draft_level_seconds += dt;
            }
            int mm = nodes_cap < room ? nodes_cap : (int)room;
            hass_tree_rank(t, gain, mm);
            t_draft = hass_now() - tc0;
            if (forced) {
                m_sel = mm;
            } else {
                double best = 0;
                for (int k = 0; k <= mm; k++) {
                    double r = (1 + calib * gain[k]) / (t_draft + e->t1 * cost[k + 1]);
                    if (r > best) {
                        best = r;
                        m_sel = k;
                    }
                }
            }
        }
        hass_tree_select(t, root, m_sel);
        /* verification */
        double tv0 = hass_now();
        for (int32_t i = 0; i < t->n; i++)
            pos[i] = (int32_t)(N + t->depth[i]);
        if ((st = hass_model_forward(m, &e->kv, e->pool, t->n, t->tokens, pos, t->parents,
                                     e->logits, 0, e->feats, err)))
            return st;
        int32_t bonus;
        int32_t np = hass_tree_verify(t, e->logits, V, &e->sampler, e->probs, path, &bonus);
        double tv1 = hass_now();
        for (int32_t j = 0; j < np; j++)
            e->seq[N + j] = t->tokens[path[j]];
        hass_kv_keep(&e->kv, path, np);
        hass_draft_discard_scratch(&e->ds);
        /* queue the accepted pairs (f, next token) with the target's true features */
        for (int32_t j = 0; j < np; j++) {
            memcpy(e->pend_feat + e->n_pend * d, e->feats + (int64_t)path[j] * d,
                   (size_t)d * sizeof(float));
            e->pend_tok[e->n_pend++] = j + 1 < np ? t->tokens[path[j + 1]] : bonus;
        }
        if (!e->dr)
            e->n_pend = 0; /* an oracle needs no draft context */
        int32_t A = np - 1;
        gs->target_forwards++;
        gs->cycles++;
        gs->nodes_verified += t->n - 1;
        for (int32_t k = 1; k <= A && k <= HASS_MAX_DEPTH; k++)
            gs->accepted_at_depth[k]++;
        gs->accepted_at_depth[0]++;
        double tc1 = hass_now();
        gs->draft_seconds += t_draft;
        gs->verify_seconds += tv1 - tv0;
        /* online model: t1 from the verify time, calibration, whether drafting pays */
        if (!forced) {
            double tv = (tv1 - tv0) / cost[t->n];
            e->t1 = 0.9 * e->t1 + 0.1 * tv;
            if (drafting) {
                sm.calib_num = 0.95 * sm.calib_num + A;
                sm.calib_den = 0.95 * sm.calib_den + t->est_accept;
                /* a probe fed the draft a window of pairs; in steady state it feeds A + 1 */
                double ct = tc1 - tc0;
                if (probe)
                    ct += catch_per * (A + 1) - catch_total;
                double rate = (double)(A + 1) / ct, plain = 1.0 / e->t1;
                /* a probe is fresh evidence: it replaces the running estimate */
                sm.gain_ema = probe ? rate / plain : 0.7 * sm.gain_ema + 0.3 * (rate / plain);
                if (sm.gain_ema < 1.0) { /* drafting loses: back off */
                    sm.backoff = sm.backoff
                                     ? (sm.backoff * 2 > MAX_BACKOFF ? MAX_BACKOFF : sm.backoff * 2)
                                     : 4;
                    sm.skip_left = sm.backoff;
                } else {
                    sm.backoff = 0;
                }
            } else {
                sm.skip_left--;
            }
        }
        /* emit accepted drafts, then the bonus (next root) */
        int stop = 0;
        for (int32_t j = 1; j < np && !stop; j++)
            stop = emit(em, t->tokens[path[j]]);
        if (!stop)
            stop = emit(em, bonus);
        gs->other_seconds += hass_now() - tc1;
        if (stop)
            break;
        root = bonus;
    }
    e->sm = sm;
    return HASS_OK;
}

hass_status hass_generate(hass_engine *e, const int32_t *prompt, int64_t n_prompt,
                          const hass_gen_params *p, int spec, hass_token_fn on_token, void *user,
                          int32_t *tokens_out, hass_gen_stats *stats, hass_err *err) {
    hass_gen_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    stats->n_prompt = n_prompt;
    if (n_prompt <= 0)
        return hass_err_set(err, HASS_STATUS_ARG, "empty prompt (not even BOS)");
    if (n_prompt + 1 > e->kv.cap)
        return hass_err_set(err, HASS_STATUS_RANGE,
                            "prompt of %lld tokens does not fit the context of %lld",
                            (long long)n_prompt, (long long)e->kv.cap);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= e->m->cfg.V)
            return hass_err_set(err, HASS_STATUS_RANGE, "prompt token %d out of range", prompt[i]);
    if (p->max_new <= 0)
        return HASS_OK;
    hass_status st = hass_sampler_reset(&e->sampler, &p->sampling, err);
    if (st)
        return st;
    engine_tune(e); /* before any forward: plain and speculative runs use the same kernels */
    hass_kv_truncate(&e->kv, 0);
    emitter em = {e, p, on_token, user, tokens_out, stats};
    if (spec && (e->dr || e->oracle) && p->tree.tree_tokens <= 0) {
        int nmax; /* measured (or loaded) once, outside the timed generation */
        hass_engine_costs(e, &nmax);
    }
    double t0 = hass_now();
    if (spec && (e->dr || e->oracle))
        st = generate_spec(e, prompt, n_prompt, &em, err);
    else
        st = generate_plain(e, prompt, n_prompt, &em, err);
    stats->seconds = hass_now() - t0;
    stats->decode_seconds = stats->seconds - stats->prefill_seconds;
    if (stats->cycles > 0) {
        /* tokens produced by cycles: all but the first (which came from prefill) */
        stats->tau = (double)(stats->n_generated - 1 + (stats->stop == HASS_STOP_EOS)) /
                     (double)stats->cycles;
    }
    stats->tokens_per_s = stats->seconds > 0 ? (double)stats->n_generated / stats->seconds : 0;
    return st;
}
