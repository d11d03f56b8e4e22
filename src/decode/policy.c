/*
 * policy.c — the tree-size policy of speculative decoding and the target's cost curve
 * (policy.h): the decisions, the online model they learn, the measurement and its cache file.
 */
#include "decode/policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROBE_WINDOW 8  /* pairs a probing cycle feeds the draft */
#define MAX_BACKOFF 128 /* plain steps between probes of a losing draft, at most */

void hass_policy_init(hass_policy *p) {
    memset(p, 0, sizeof *p);
    p->calib_num = 1.0; /* start by trusting the draft's own probabilities */
    p->calib_den = 1.0;
    p->gain_ema = 1.0;
}

/* ---- the kernel choices and the cost curve: measured once per machine (CPU model), thread
 * count and model shape, kept in one cache file: a line "tune ..." (hass_ops_tune), then the
 * curve ---- */

/* Part of the cache key: raised whenever the kernels or the way they are timed change, so that a
 * choice or curve measured with other code is measured again, not read. */
#define COST_CACHE_REV 2

static void cache_path(const hass_model *m, hass_pool *pool, char *buf, size_t cap) {
    const hass_model_config *c = &m->cfg;
    uint64_t h = HASS_FNV_OFFSET;
    int64_t key[] = {c->d, c->ffn, c->n_layers, c->H, c->Hkv, c->V, (int64_t)m->weight_bytes,
                     (int64_t)m->layers[0].tq, hass_pool_size(pool), hass_cpu_allowed(),
                     /* HASS_CPU set: no bf16 choice is measured, so none may be read either */
                     getenv("HASS_CPU") != NULL, COST_CACHE_REV};
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

/* The tune line (required) into p->tune, then the curve if the file has one (a regular file of at
 * most 64 KiB: a cache is never trusted to be sane). */
static void load_cache(hass_policy *p, const char *path) {
    char *text = NULL;
    hass_err err = {0};
    if (getenv("HASS_NO_COST_CACHE") || !hass_file_exists(path) ||
        hass_read_file_max(path, 1 << 16, &text, NULL, &err))
        return;
    hass_ops_tune *t = &p->tune;
    int used = 0;
    if (sscanf(text, "tune %d %d %d %d %d %d\n%n", &t->bf16, &t->rb[0], &t->rb[1], &t->pf[0],
               &t->pf[1], &t->pf[2], &used) == 6 &&
        used > 0 && t->bf16 >= HASS_BF16_WIDEST && t->bf16 <= HASS_KERNELS_AVX2) {
        p->have_tune = 1;
        int at = used;
        used = 0;
        int ok = sscanf(text + at, "t1 %lf\n%n", &p->t1, &used) == 1 && p->t1 > 0 && used > 0;
        for (int n = 1; ok && n <= HASS_COST_N; n++) {
            int k;
            at += used;
            used = 0;
            ok = sscanf(text + at, "%d %lf\n%n", &k, &p->cost[n], &used) == 2 && k == n &&
                 p->cost[n] > 0 && used > 0;
        }
        p->have_costs = ok;
    } else {
        memset(t, 0, sizeof *t);
    }
    free(text);
}

static void save_cache(const hass_policy *p, const char *path) {
    char dir[1024], buf[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *sl = strrchr(dir, '/');
    if (sl) {
        *sl = 0;
        if (hass_mkdir_p(dir, NULL))
            return;
    }
    const hass_ops_tune *t = &p->tune;
    int len = snprintf(buf, sizeof buf, "tune %d %d %d %d %d %d\n", t->bf16, t->rb[0], t->rb[1],
                       t->pf[0], t->pf[1], t->pf[2]);
    if (p->have_costs) {
        len += snprintf(buf + len, sizeof buf - (size_t)len, "t1 %.9g\n", p->t1);
        for (int n = 1; n <= HASS_COST_N && len < (int)sizeof buf - 64; n++)
            len += snprintf(buf + len, sizeof buf - (size_t)len, "%d %.6f\n", n, p->cost[n]);
    }
    hass_write_file_atomic(path, buf, (size_t)len, NULL); /* best effort: a cache */
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One forward of n rows as a chain (nothing committed): seconds; 0 when n rows do not fit, -1
 * on error. */
static double forward_once(const hass_model *m, hass_kv *kv, hass_pool *pool, float *logits,
                           int64_t n) {
    int32_t tok[HASS_COST_N], pos[HASS_COST_N], par[HASS_COST_N];
    if (n > HASS_COST_N || n > kv->max_batch || kv->n + n > kv->cap)
        return 0;
    for (int64_t i = 0; i < n; i++) {
        tok[i] = (int32_t)(i % m->cfg.V);
        pos[i] = (int32_t)(kv->n + i);
        par[i] = (int32_t)i - 1;
    }
    double t0 = hass_now();
    if (hass_model_forward(m, kv, pool, n, tok, pos, par, logits, 0, NULL, NULL))
        return -1;
    return hass_now() - t0;
}

static double median(double *v, int k) {
    qsort(v, (size_t)k, sizeof(double), cmp_dbl);
    return k % 2 ? v[k / 2] : 0.5 * (v[k / 2 - 1] + v[k / 2]);
}

/* Median time of forwards of n rows; 0 when n rows do not fit, -1 on error. */
static double time_forward(const hass_model *m, hass_kv *kv, hass_pool *pool, float *logits,
                           int64_t n) {
    double ts[9], total = 0;
    int reps = 0;
    while (reps < 9 && (reps < 3 || total < 0.05)) {
        double t = forward_once(m, kv, pool, logits, n);
        if (t <= 0)
            return t;
        total += ts[reps++] = t;
    }
    return median(ts, reps);
}

/* The cost of n rows against one: forwards of 1 and of n rows alternate and the median of the
 * pairs' ratios is kept, so that load coming and going on a shared machine (or a clock that
 * changes) hits both sides alike, instead of dividing every size's time by one 1-row time
 * measured apart. *t1: the median 1-row time of the pairs. 0 when n rows do not fit, -1 on
 * error. */
static double cost_ratio(const hass_model *m, hass_kv *kv, hass_pool *pool, float *logits,
                         int64_t n, double *t1) {
    double r[9], a[9], total = 0;
    int reps = 0;
    while (reps < 9 && (reps < 3 || total < 0.05)) {
        double ta = forward_once(m, kv, pool, logits, 1);
        double tb = forward_once(m, kv, pool, logits, n);
        if (ta <= 0 || tb <= 0)
            return ta <= 0 ? ta : tb;
        a[reps] = ta;
        r[reps++] = tb / ta;
        total += ta + tb;
    }
    *t1 = median(a, reps);
    return median(r, reps);
}

/* A 64-position context (as in real decoding, when it fits beside a full batch) and a warm-up
 * forward; returns the committed length to give back to measure_end. */
static int64_t measure_begin(const hass_model *m, hass_kv *kv, hass_pool *pool, float *logits) {
    int64_t saved = kv->n, ctxn = 64 < kv->cap - kv->max_batch ? 64 : 0;
    hass_kv_truncate(kv, 0);
    if (ctxn > 0) {
        int32_t tok[64], pos[64];
        for (int i = 0; i < 64; i++) {
            tok[i] = i % (int32_t)m->cfg.V;
            pos[i] = i;
        }
        if (hass_model_forward(m, kv, pool, 64, tok, pos, NULL, NULL, 0, NULL, NULL) == HASS_OK)
            hass_kv_commit(kv, 64);
    }
    time_forward(m, kv, pool, logits, 1); /* warm-up */
    return saved;
}

static void measure_end(hass_kv *kv, int64_t saved) {
    hass_kv_truncate(kv, saved < kv->n ? saved : kv->n);
}

/* Forwards of a few sizes, interpolated piecewise-linearly into cost[1..HASS_COST_N], monotone
 * non-decreasing. */
static void measure_costs(hass_policy *p, const hass_model *m, hass_kv *kv, hass_pool *pool,
                          float *logits) {
    int64_t saved = measure_begin(m, kv, pool, logits);
    static const int sizes[] = {1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 56, 64};
    double t[sizeof sizes / sizeof sizes[0]], t1s[sizeof sizes / sizeof sizes[0]];
    int ns = 0;
    t[ns] = 1.0; /* cost ratios */
    t1s[ns++] = time_forward(m, kv, pool, logits, 1);
    for (size_t i = 1; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sizes[i] > kv->max_batch || kv->n + sizes[i] > kv->cap)
            break;
        double c = cost_ratio(m, kv, pool, logits, sizes[i], &t1s[ns]);
        if (c <= 0)
            break;
        t[ns++] = c;
    }
    measure_end(kv, saved);
    double t1 = median(t1s, ns);
    p->t1 = t1 > 0 ? t1 : 1e-3;
    for (int n = 1; n <= HASS_COST_N; n++) {
        int j = 0;
        while (j + 1 < ns && sizes[j + 1] < n)
            j++;
        double v;
        if (j + 1 >= ns)
            v = t[ns - 1] * n / sizes[ns - 1] > t[ns - 1] ? t[ns - 1] * n / sizes[ns - 1]
                                                          : t[ns - 1];
        else
            v = t[j] + (t[j + 1] - t[j]) * (n - sizes[j]) / (double)(sizes[j + 1] - sizes[j]);
        p->cost[n] = v;
        if (n > 1 && p->cost[n] < p->cost[n - 1])
            p->cost[n] = p->cost[n - 1];
    }
    p->cost[1] = 1.0;
}

/* Whether any matrix of m's products is bf16 (bf16 = 1), or of a float type (bf16 = 0: the
 * products the block heights and prefetch apply to; quantized ones take no tuning). */
static int model_has(const hass_model *m, int bf16) {
    int any = 0;
    hass_dtype lm = m->lm_head_t;
    any |= bf16 ? lm == HASS_DTYPE_BF16 : !hass_dtype_is_quant(lm);
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        const hass_layer *L = &m->layers[l];
        hass_dtype t[] = {L->tq, L->tk, L->tv, L->to, L->tg, L->tu, L->td};
        for (int i = 0; i < 7; i++)
            any |= bf16 ? t[i] == HASS_DTYPE_BF16 : !hass_dtype_is_quant(t[i]);
    }
    return any;
}

typedef struct {
    const hass_model *m;
    hass_kv *kv;
    hass_pool *pool;
    float *logits;
} bench_ctx;

/* Sum of the forward times of the sizes ns (n rows each) with tune t; a size that does not fit
 * counts 0 for every candidate alike. */
static double tune_score(const bench_ctx *b, const hass_ops_tune *t, const int64_t *ns, int k) {
    hass_ops_tune_set(t);
    double s = 0;
    for (int i = 0; i < k; i++) {
        double v = time_forward(b->m, b->kv, b->pool, b->logits, ns[i]);
        s += v > 0 ? v : 0;
    }
    return s;
}

/* Of the values vals[0..nv) of the field *field of *t, the one whose score is lowest; the first
 * (the default) is kept unless another is faster by more than 5% (noise on a shared machine). */
static void tune_pick(const bench_ctx *b, hass_ops_tune *t, int *field, const int *vals, int nv,
                      const int64_t *ns, int k) {
    double best = 0;
    int bv = vals[0];
    for (int i = 0; i < nv; i++) {
        *field = vals[i];
        double s = tune_score(b, t, ns, k);
        if (i == 0 || s < 0.95 * best)
            best = s, bv = vals[i];
    }
    *field = bv;
}

static void calibrate(hass_policy *p, const bench_ctx *b) {
    hass_ops_tune *t = &p->tune;
    memset(t, 0, sizeof *t);
    int64_t saved = measure_begin(b->m, b->kv, b->pool, b->logits);
    int f = hass_cpu_allowed(), cand[4], nc = 0;
    if (model_has(b->m, 1) && !getenv("HASS_CPU")) {
        if (f & HASS_CPU_AMX)
            cand[nc++] = HASS_BF16_AMX;
        if (f & HASS_CPU_AVX512BF16)
            cand[nc++] = HASS_BF16_DP;
        if (f & HASS_CPU_AVX512)
            cand[nc++] = HASS_BF16_FMA;
    } else if (model_has(b->m, 0) && !getenv("HASS_CPU") && (f & HASS_CPU_AVX512)) {
        cand[nc++] = HASS_BF16_WIDEST; /* f32 / f16 products: AVX-512 against AVX2 below */
    }
    if (nc > 0 && (f & HASS_CPU_AVX512) && (f & HASS_CPU_AVX2))
        cand[nc++] = HASS_KERNELS_AVX2;
    static const int64_t n1[] = {1}, n8[] = {8}, n16[] = {16}, both[] = {1, 8};
    if (nc > 1)
        tune_pick(b, t, &t->bf16, cand, nc, both, 2);
    static const int pfs[] = {0, 2, 1}, rbs[] = {0, 3, 2};
    if (model_has(b->m, 0)) { /* else the defaults: no product would use the choice */
        tune_pick(b, t, &t->pf[0], pfs, 3, n1, 1);
        tune_pick(b, t, &t->pf[1], pfs, 3, n8, 1);
        tune_pick(b, t, &t->pf[2], pfs, 3, n16, 1);
        tune_pick(b, t, &t->rb[0], rbs, 3, n8, 1);
        tune_pick(b, t, &t->rb[1], rbs, 3, n16, 1);
    }
    measure_end(b->kv, saved);
}

const hass_ops_tune *hass_policy_tune(hass_policy *p, const hass_model *m, hass_kv *kv,
                                      hass_pool *pool, float *logits) {
    if (!p->have_tune) {
        char path[1024];
        cache_path(m, pool, path, sizeof path);
        load_cache(p, path);
        if (!p->have_tune) {
            bench_ctx b = {m, kv, pool, logits};
            calibrate(p, &b);
            p->have_tune = 1;
            p->have_costs = 0; /* a curve measured with other kernels */
            save_cache(p, path);
        }
    }
    hass_ops_tune_set(&p->tune);
    return &p->tune;
}

const double *hass_policy_costs(hass_policy *p, const hass_model *m, hass_kv *kv, hass_pool *pool,
                                float *logits) {
    hass_policy_tune(p, m, kv, pool, logits);
    if (p->have_costs)
        return p->cost;
    measure_costs(p, m, kv, pool, logits);
    p->have_costs = 1;
    char path[1024];
    cache_path(m, pool, path, sizeof path);
    save_cache(p, path);
    return p->cost;
}

/* ---- decisions ---- */

void hass_policy_begin(hass_policy *p, const hass_tree_params *tp, int64_t vocab) {
    int topk = tp->topk < 1 ? 1 : (tp->topk > HASS_TREE_MAX_TOPK ? HASS_TREE_MAX_TOPK : tp->topk);
    if (topk > vocab)
        topk = (int)vocab;
    int levels = tp->depth - 1;
    levels = levels < 0 ? 0 : (levels > HASS_TREE_MAX_LEVELS ? HASS_TREE_MAX_LEVELS : levels);
    p->fixed = tp->tokens > 0;
    int cap =
        p->fixed && tp->tokens < HASS_TREE_MAX_NODES - 1 ? tp->tokens : HASS_TREE_MAX_NODES - 1;
    if (cap > topk + levels * topk * topk)
        cap = topk + levels * topk * topk;
    p->topk = topk;
    p->levels = levels;
    p->nodes_cap = cap;
    HASS_ASSERT(p->fixed || p->have_costs);
    p->skip_left = p->backoff; /* a losing draft is probed at its learnt interval */
}

int hass_policy_cycle(hass_policy *p, int64_t room, int64_t *window) {
    p->drafting = p->fixed || p->skip_left <= 0;
    p->probe = p->drafting && room > 0 && !p->fixed && p->backoff > 0;
    *window = p->probe ? PROBE_WINDOW : 0;
    return p->drafting && room > 0;
}

/* Expected tokens per second with the best k nodes after `spent` seconds of drafting. */
static double rate(const hass_policy *p, double calib, int k, double spent) {
    return (1 + calib * p->gain[k]) / (spent + p->t1 * p->cost[k + 1]);
}

/* The best node count for the ranked tree (0 when nothing beats a plain step's rate). */
static int best_nodes(const hass_policy *p, double calib, int mm, double spent, double *best) {
    int bm = 0;
    *best = 0;
    for (int k = 0; k <= mm; k++) {
        double r = rate(p, calib, k, spent);
        if (r > *best) {
            *best = r;
            bm = k;
        }
    }
    return bm;
}

static int room_nodes(const hass_policy *p, int64_t room) {
    return p->nodes_cap < room ? p->nodes_cap : (int)room;
}

int hass_policy_expand(hass_policy *p, hass_tree *t, int64_t room, double spent) {
    if (t->levels >= p->levels)
        return 0;
    if (p->fixed || p->t_level <= 0)
        return 1;
    /* stop when even the best case of one more level cannot raise the rate. The best case with
     * j more nodes: the j most probable frontier nodes (the frontier is sorted) each hand their
     * whole path probability to one child (no child carries more than its parent). Charging
     * every one of the top-k children instead (as before) stopped the trees at one level on a
     * CPU whose cost curve is not flat (Zen 5: cost(12) ~ 1.9) though deeper trees paid. */
    double calib = p->calib_num / p->calib_den, best;
    int mm = room_nodes(p, room);
    hass_tree_rank(t, p->gain, mm);
    int bm = best_nodes(p, calib, mm, spent, &best);
    double mass = 0;
    for (int32_t j = 1; j <= t->n_frontier && bm + j <= mm; j++) {
        mass += exp((double)t->cand[t->frontier[j - 1]].score);
        double up =
            (1 + calib * (p->gain[bm] + mass)) / (spent + p->t_level + p->t1 * p->cost[bm + j + 1]);
        if (up > best)
            return 1;
    }
    return 0;
}

void hass_policy_level(hass_policy *p, double seconds) {
    p->t_level = p->t_level > 0 ? 0.8 * p->t_level + 0.2 * seconds : seconds;
}

int hass_policy_nodes(hass_policy *p, hass_tree *t, int64_t room, double spent) {
    int mm = room_nodes(p, room);
    hass_tree_rank(t, p->gain, mm);
    if (p->fixed)
        return mm;
    double best;
    return best_nodes(p, p->calib_num / p->calib_den, mm, spent, &best);
}

void hass_policy_observe(hass_policy *p, const hass_tree *t, int32_t accepted,
                         const hass_cycle_times *tm) {
    if (p->fixed)
        return;
    p->t1 = 0.9 * p->t1 + 0.1 * tm->verify / p->cost[t->n];
    if (!p->drafting) {
        p->skip_left--;
        return;
    }
    p->calib_num = 0.95 * p->calib_num + accepted;
    p->calib_den = 0.95 * p->calib_den + t->est_accept;
    /* a probe fed the draft a window of pairs; in steady state it feeds accepted + 1 */
    double ct = tm->cycle;
    if (p->probe && tm->fed > 0)
        ct += tm->catch_up / (double)tm->fed * (accepted + 1) - tm->catch_up;
    else if (p->probe)
        ct -= tm->catch_up;
    double r = (double)(accepted + 1) / ct, plain = 1.0 / p->t1;
    /* a probe is fresh evidence: it replaces the running estimate */
    p->gain_ema = p->probe ? r / plain : 0.7 * p->gain_ema + 0.3 * (r / plain);
    if (p->gain_ema < 1.0) { /* drafting loses: back off */
        p->backoff = p->backoff ? (p->backoff * 2 > MAX_BACKOFF ? MAX_BACKOFF : p->backoff * 2) : 4;
        p->skip_left = p->backoff;
    } else {
        p->backoff = 0;
    }
}
