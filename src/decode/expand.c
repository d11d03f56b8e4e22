/*
 * expand.c — EAGLE-2 tree expansion with a draft head (HASS.md 6.3): the mechanism of a
 * speculative cycle's drafting. Which levels to expand and how many nodes to verify is the
 * policy of decode.c; this file only computes a level.
 *
 * A frontier node u at depth l (its token a_l, its path a_1..a_l from the root) is the draft
 * pair (h(a_1..a_{l-1}), a_l) at position n_past + l - 1, where h(path) is the draft's output
 * for the node of that path (for l = 1: h, the output at the last committed pair). Fed as a tree
 * row, it attends the committed context, the rows of its ancestors and itself: exactly the
 * causal chain committed context + path, so its output equals running the path one pair at a
 * time (tests/test_draft.c checks this bit for bit).
 */
#include "decode/decode.h"

#include <math.h>
#include <string.h>

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

void hass_expand_root(hass_expander *x, int topk) {
    hass_tree *t = x->t;
    hass_tree_reset(t);
    children(x, 0, 1, topk);
    hass_tree_add_children(t, -1, x->ids, x->lp, topk, 0);
    hass_tree_set_frontier(t, 0, t->n_cand, topk);
    t->levels = 0;
    x->n_feat = 1;
}

hass_status hass_expand_level(hass_expander *x, int64_t n_past, int topk, hass_err *err) {
    hass_tree *t = x->t;
    hass_draft_state *ds = x->ds;
    int64_t d = x->dr->cfg.d;
    int nf = t->n_frontier;
    int64_t base = ds->scratch, win = base + nf, W = (win + 63) / 64;
    if (win > HASS_DRAFT_MAX_SCRATCH || x->n_feat + nf > 1 + HASS_DRAFT_MAX_SCRATCH)
        return hass_err_set(err, HASS_STATUS_RANGE, "tree: draft scratch full");
    memset(ds->mask, 0, (size_t)(nf * W) * sizeof(uint64_t));
    for (int i = 0; i < nf; i++) {
        hass_cand *c = &t->cand[t->frontier[i]];
        x->toks[i] = c->tok;
        x->pos[i] = (int32_t)(n_past + c->depth - 1);
        memcpy(x->in + i * d, x->feat + (int64_t)c->feat * d, (size_t)d * sizeof(float));
        uint64_t *row = ds->mask + i * W;
        for (int32_t a = c->parent; a >= 0; a = t->cand[a].parent) {
            int32_t r = t->cand[a].row;
            HASS_ASSERT(r >= 0);
            row[r / 64] |= 1ull << (r % 64);
        }
        c->row = (int32_t)(base + i);
        row[(base + i) / 64] |= 1ull << ((base + i) % 64);
    }
    int32_t frow = x->n_feat;
    hass_status st = hass_draft_forward(ds, x->pool, nf, x->in, x->toks, x->pos, 0, ds->mask,
                                        x->feat + (int64_t)frow * d, err);
    if (st)
        return st;
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
