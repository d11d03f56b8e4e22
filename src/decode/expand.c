/*
 * expand.c — the draft head as a proposer (propose.h): EAGLE-2 tree expansion (HASS.md 6.3),
 * the mechanism of a speculative cycle's drafting. Which levels to expand and how many nodes to
 * verify is the policy's (policy.c); this file only computes a level.
 *
 * A frontier node u at depth l (its token a_l, its path a_1..a_l from the root) is the draft
 * pair (h(a_1..a_{l-1}), a_l) at position n_past + l - 1, where h(path) is the draft's output
 * for the node of that path (for l = 1: h, the output at the last committed pair). Fed as a tree
 * row, it attends the committed context, the rows of its ancestors and itself: exactly the
 * causal chain committed context + path, so its output equals running the path one pair at a
 * time (tests/test_draft.c checks this bit for bit).
 */
#include "decode/propose.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert((HASS_TREE_MAX_LEVELS * HASS_TREE_MAX_TOPK) <= HASS_DRAFT_MAX_SCRATCH,
               "a cycle's tree rows fit the draft's scratch");

/* Top-k of log_softmax(logits) (V): k ids with their log-probs, descending (ties: lower id).
 * lg is overwritten (it serves as the scratch of the normaliser). */
static void topk_logprobs(float *lg, int64_t V, int k, int32_t *ids, float *lp) {
    int n = 0;
    for (int64_t i = 0; i < V; i++) {
        float v = lg[i];
        if (n == k && v <= lp[n - 1])
            continue;
        int j = n < k ? n++ : n - 1;
        while (j > 0 && v > lp[j - 1]) {
            lp[j] = lp[j - 1];
            ids[j] = ids[j - 1];
            j--;
        }
        lp[j] = v;
        ids[j] = (int32_t)i;
    }
    float mx = lp[0];
    for (int64_t i = 0; i < V; i++)
        lg[i] -= mx;
    hass_exp_inplace(lg, V);
    double sum = 0;
    for (int64_t i = 0; i < V; i++)
        sum += lg[i];
    float lse = mx + (float)log(sum);
    for (int j = 0; j < n; j++)
        lp[j] -= lse;
}

typedef struct {
    float *lg; /* (rows, V) */
    int64_t V;
    int k, rows;
    int32_t *ids;       /* (rows, k) */
    float *lp;          /* (rows, k) */
    const int32_t *map; /* reduced draft vocabulary: column -> target id, or NULL */
} topk_ctx;

static void topk_task(void *p, int ith, int nth) {
    topk_ctx *c = p;
    int64_t lo, hi;
    hass_split(c->rows, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        int32_t *ids = c->ids + r * c->k;
        topk_logprobs(c->lg + r * c->V, c->V, c->k, ids, c->lp + r * c->k);
        for (int j = 0; c->map && j < c->k; j++)
            ids[j] = c->map[ids[j]];
    }
}

/* The draft's top-k children of `rows` outputs (feat rows from..from+rows-1) into x->ids/lp. */
static void children(hass_expander *x, int32_t from, int rows, int topk) {
    hass_dtype ht;
    int64_t hv, d = x->dr->cfg.d;
    const void *head = hass_draft_head(x->dr, &ht, &hv);
    hass_matmul(x->pool, x->logits, x->feat + (int64_t)from * d, head, ht, rows, d, hv);
    topk_ctx tk = {x->logits, hv, topk, rows, x->ids, x->lp, x->dr->n_vocab ? x->dr->vocab : NULL};
    /* one pass over the vocabulary per row: rows in parallel when it is worth a dispatch */
    hass_pool_run_n(x->pool, rows > 1 && hv * rows >= 65536 ? hass_pool_size(x->pool) : 1,
                    topk_task, &tk);
}

/* The root's children: the top-k of the draft's distribution at feat row 0. */
static void expand_root(hass_expander *x, hass_tree *t, int topk) {
    children(x, 0, 1, topk);
    hass_tree_add_children(t, -1, x->ids, x->lp, topk, 0);
    hass_tree_set_frontier(t, 0, t->n_cand, topk);
    t->levels = 0;
    x->n_feat = 1;
}

static hass_status expand_level(hass_expander *x, hass_tree *t, int topk, hass_err *err) {
    int64_t d = x->dr->cfg.d;
    int nf = t->n_frontier;
    int64_t base = x->ds->scratch;
    if (x->n_feat + nf > 1 + HASS_DRAFT_MAX_SCRATCH)
        return hass_err_set(err, HASS_STATUS_RANGE, "tree: draft scratch full");
    for (int i = 0; i < nf; i++) {
        hass_cand *c = &t->cand[t->frontier[i]];
        x->toks[i] = c->tok;
        x->pos[i] = (int32_t)(x->n_past + c->depth - 1);
        x->parents[i] = c->parent >= 0 ? t->cand[c->parent].row : -1;
        HASS_ASSERT(c->parent < 0 || x->parents[i] >= 0);
        memcpy(x->in + i * d, x->feat + (int64_t)c->feat * d, (size_t)d * sizeof(float));
    }
    int32_t frow = x->n_feat;
    hass_status st = hass_draft_forward_tree(x->ds, x->pool, nf, x->in, x->toks, x->pos, x->parents,
                                             x->feat + (int64_t)frow * d, err);
    if (st)
        return st;
    for (int i = 0; i < nf; i++)
        t->cand[t->frontier[i]].row = (int32_t)(base + i);
    children(x, frow, nf, topk);
    int32_t first = t->n_cand;
    for (int i = 0; i < nf; i++)
        if (hass_tree_add_children(t, t->frontier[i], x->ids + i * topk, x->lp + i * topk, topk,
                                   frow + i) < 0)
            return hass_err_set(err, HASS_STATUS_RANGE, "tree: candidate buffer full");
    hass_tree_set_frontier(t, first, t->n_cand, topk);
    x->n_feat = frow + nf;
    return HASS_OK;
}

static hass_status draft_propose(hass_proposer *p, hass_tree *t, int topk, hass_err *err) {
    hass_expander *x = (hass_expander *)p;
    if (t->n_cand == 0) {
        expand_root(x, t, topk);
        return HASS_OK;
    }
    return expand_level(x, t, topk, err);
}

/* Feeds the pending pairs to the draft (a causal chain, committed), in forwards of at most
 * max_rows rows; h of the last one goes to feat row 0. With a window, only the last `window`
 * pairs: the draft's context then has a gap, which costs it some accuracy and never
 * correctness. */
static hass_status draft_start(hass_proposer *p, const hass_cycle *c, hass_err *err) {
    hass_expander *x = (hass_expander *)p;
    hass_draft_state *ds = x->ds;
    int64_t d = x->dr->cfg.d, B = ds->max_rows, p0 = c->n_past - c->n_pend;
    int64_t skip = c->window > 0 && c->n_pend > c->window ? c->n_pend - c->window : 0;
    int32_t *pos = x->chain_pos;
    x->n_past = c->n_past;
    if (c->n_pend == c->n_past) /* pairs from position 0: a new context */
        hass_draft_state_reset(ds);
    hass_draft_discard_scratch(ds);
    for (int64_t s = skip; s < c->n_pend; s += B) {
        int64_t k = c->n_pend - s < B ? c->n_pend - s : B;
        for (int64_t i = 0; i < k; i++)
            pos[i] = (int32_t)(p0 + s + i);
        hass_status st = hass_draft_forward(ds, x->pool, k, c->pend_feat + s * d, c->pend_tok + s,
                                            pos, ds->x, err);
        if (st)
            return st;
        if (s + k == c->n_pend)
            memcpy(x->feat, ds->x + (k - 1) * d, (size_t)d * sizeof(float));
    }
    return HASS_OK;
}

void hass_expander_free(hass_expander *x) {
    void *ps[] = {x->feat, x->in, x->logits, x->ids, x->lp, x->chain_pos};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        hass_aligned_free(ps[i]);
    memset(x, 0, sizeof *x);
}

hass_status hass_expander_init(hass_expander *x, const hass_draft *dr, hass_draft_state *ds,
                               hass_pool *pool, hass_err *err) {
    memset(x, 0, sizeof *x);
    int64_t d = dr->cfg.d, V = dr->target->cfg.V;
    x->base.vocab = dr->n_vocab > 0 ? dr->n_vocab : V;
    x->base.start = draft_start;
    x->base.propose = draft_propose;
    x->dr = dr, x->ds = ds, x->pool = pool;
    x->feat = hass_aligned_alloc((size_t)((1 + HASS_DRAFT_MAX_SCRATCH) * d) * sizeof(float));
    x->in = hass_aligned_alloc((size_t)(HASS_TREE_MAX_TOPK * d) * sizeof(float));
    x->logits = hass_aligned_alloc((size_t)(HASS_TREE_MAX_TOPK * V) * sizeof(float));
    x->ids = hass_aligned_alloc(HASS_TREE_MAX_TOPK * HASS_TREE_MAX_TOPK * sizeof(int32_t));
    x->lp = hass_aligned_alloc(HASS_TREE_MAX_TOPK * HASS_TREE_MAX_TOPK * sizeof(float));
    x->chain_pos = hass_aligned_alloc((size_t)ds->max_rows * sizeof(int32_t));
    if (!x->feat || !x->in || !x->logits || !x->ids || !x->lp || !x->chain_pos) {
        hass_expander_free(x);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    return HASS_OK;
}
