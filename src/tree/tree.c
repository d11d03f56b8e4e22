/*
 * tree.c — EAGLE-2 tree bookkeeping and lossless verification (HASS.md 6.3–6.6).
 */
#include "tree/tree.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

hass_status hass_tree_init(hass_tree *t, int32_t cap_cand, hass_err *err) {
    memset(t, 0, sizeof *t);
    if (cap_cand <= 0)
        return hass_err_set(err, HASS_STATUS_ARG, "tree: bad capacity");
    t->cand = calloc((size_t)cap_cand, sizeof *t->cand);
    t->order = calloc((size_t)cap_cand, sizeof *t->order);
    t->tmp = calloc((size_t)cap_cand, sizeof *t->tmp);
    if (!t->cand || !t->order || !t->tmp) {
        hass_tree_free(t);
        return hass_err_set(err, HASS_STATUS_OOM, "tree: out of memory");
    }
    t->cap_cand = cap_cand;
    return HASS_OK;
}

void hass_tree_free(hass_tree *t) {
    if (!t)
        return;
    free(t->cand);
    free(t->order);
    free(t->tmp);
    memset(t, 0, sizeof *t);
}

void hass_tree_reset(hass_tree *t) {
    t->n_cand = 0;
    t->n_frontier = 0;
    t->levels = 0;
    t->n = 0;
    t->est_accept = 0;
}

int32_t hass_tree_add_children(hass_tree *t, int32_t parent, const int32_t *toks, const float *lp,
                               int k, int32_t feat) {
    if (t->n_cand + k > t->cap_cand)
        return -1;
    int32_t first = t->n_cand;
    float base = parent >= 0 ? t->cand[parent].score : 0.0f;
    int32_t depth = parent >= 0 ? t->cand[parent].depth + 1 : 1;
    for (int i = 0; i < k; i++) {
        hass_cand *c = &t->cand[t->n_cand++];
        c->tok = toks[i];
        c->parent = parent;
        c->score = base + lp[i];
        c->depth = depth;
        c->row = -1;
        c->feat = feat;
    }
    return first;
}

/* score desc, then depth asc, then index asc */
static int cand_before(const hass_cand *c, int32_t a, int32_t b) {
    if (c[a].score != c[b].score)
        return c[a].score > c[b].score;
    if (c[a].depth != c[b].depth)
        return c[a].depth < c[b].depth;
    return a < b;
}

void hass_tree_set_frontier(hass_tree *t, int32_t first, int32_t last, int k) {
    /* partial selection of the top k of [first, last): insertion into a small sorted list */
    int32_t n = 0;
    if (k > HASS_TREE_MAX_TOPK)
        k = HASS_TREE_MAX_TOPK;
    for (int32_t i = first; i < last; i++) {
        if (n == k && !cand_before(t->cand, i, t->frontier[n - 1]))
            continue;
        int32_t j = n < k ? n++ : n - 1;
        while (j > 0 && cand_before(t->cand, i, t->frontier[j - 1])) {
            t->frontier[j] = t->frontier[j - 1];
            j--;
        }
        t->frontier[j] = i;
    }
    t->n_frontier = n;
    t->levels++;
}

static void merge_sort(const hass_cand *c, int32_t *a, int32_t *tmp, int32_t n) {
    if (n < 2)
        return;
    int32_t h = n / 2;
    merge_sort(c, a, tmp, h);
    merge_sort(c, a + h, tmp, n - h);
    int32_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = cand_before(c, a[j], a[i]) ? a[j++] : a[i++];
    while (i < h)
        tmp[k++] = a[i++];
    while (j < n)
        tmp[k++] = a[j++];
    memcpy(a, tmp, (size_t)n * sizeof(int32_t));
}

void hass_tree_rank(hass_tree *t, double *gain, int32_t max_m) {
    int32_t n = t->n_cand;
    for (int32_t i = 0; i < n; i++)
        t->order[i] = i;
    /* a stable, deterministic full sort; candidates are few (topk + levels * topk^2) */
    merge_sort(t->cand, t->order, t->tmp, n);
    gain[0] = 0;
    for (int32_t m = 1; m <= max_m; m++)
        gain[m] = gain[m - 1] + (m <= n ? exp((double)t->cand[t->order[m - 1]].score) : 0.0);
}

void hass_tree_select(hass_tree *t, int32_t root_tok, int32_t m) {
    if (m > t->n_cand)
        m = t->n_cand;
    if (m > HASS_TREE_MAX_NODES - 1)
        m = HASS_TREE_MAX_NODES - 1;
    /* mark the selected candidates, then flatten in candidate-index order */
    int32_t sel[HASS_TREE_MAX_NODES];
    for (int32_t i = 0; i < m; i++)
        sel[i] = t->order[i];
    for (int32_t i = 1; i < m; i++) { /* insertion sort by candidate index */
        int32_t v = sel[i], j = i;
        while (j > 0 && sel[j - 1] > v) {
            sel[j] = sel[j - 1];
            j--;
        }
        sel[j] = v;
    }
    t->n = m + 1;
    t->tokens[0] = root_tok;
    t->parents[0] = -1;
    t->depth[0] = 0;
    t->cand_of[0] = -1;
    t->est_accept = 0;
    for (int32_t i = 0; i < m; i++) {
        const hass_cand *c = &t->cand[sel[i]];
        int32_t p = 0;
        if (c->parent >= 0) {
            p = -1;
            for (int32_t j = 0; j < i; j++) /* parents precede children in candidate order */
                if (sel[j] == c->parent) {
                    p = j + 1;
                    break;
                }
            HASS_ASSERT(p > 0 && "selected node's parent must be selected");
        }
        t->tokens[i + 1] = c->tok;
        t->parents[i + 1] = p;
        t->depth[i + 1] = c->depth;
        t->cand_of[i + 1] = sel[i];
        t->est_accept += exp((double)c->score);
    }
    /* sibling lists in flattened order (= decreasing draft probability within a parent) */
    for (int32_t i = 0; i < t->n; i++)
        t->first_child[i] = t->next_sibling[i] = -1;
    for (int32_t i = t->n - 1; i >= 1; i--) {
        int32_t p = t->parents[i];
        t->next_sibling[i] = t->first_child[p];
        t->first_child[p] = i;
    }
}

void hass_tree_mask(const hass_tree *t, uint64_t *mask) {
    int32_t W = (t->n + 63) / 64;
    memset(mask, 0, (size_t)(t->n * W) * sizeof(uint64_t));
    for (int32_t i = 0; i < t->n; i++) {
        if (t->parents[i] >= 0)
            memcpy(mask + i * W, mask + t->parents[i] * W, (size_t)W * sizeof(uint64_t));
        mask[i * W + i / 64] |= 1ull << (i % 64);
    }
}

int32_t hass_tree_verify(const hass_tree *t, const float *logits, int64_t V, hass_sampler *s,
                         float *probs, int32_t *path, int32_t *bonus) {
    int32_t cur = 0, n = 0;
    path[n++] = 0;
    if (hass_sampler_greedy(s)) {
        for (;;) {
            int32_t a = hass_argmax(logits + (int64_t)cur * V, V), next = -1;
            for (int32_t c = t->first_child[cur]; c >= 0; c = t->next_sibling[c])
                if (t->tokens[c] == a) {
                    next = c;
                    break;
                }
            if (next < 0) {
                *bonus = a;
                return n;
            }
            path[n++] = next;
            cur = next;
        }
    }
    for (;;) {
        hass_sampler_probs(s, logits + (int64_t)cur * V, probs);
        double mass = 1.0;
        int32_t next = -1;
        for (int32_t c = t->first_child[cur]; c >= 0; c = t->next_sibling[c]) {
            double pc = probs[t->tokens[c]];
            if (pc <= 0)
                continue; /* zero probability (or a duplicate already rejected) */
            double u = hass_rng_uniform_d(&s->rng) * mass;
            if (u < pc) {
                next = c;
                break;
            }
            mass -= pc; /* residual: remove the rejected candidate */
            probs[t->tokens[c]] = 0;
        }
        if (next < 0) {
            /* bonus ~ what remains of p at cur (renormalised by mass) */
            double u = hass_rng_uniform_d(&s->rng) * mass, cum = 0;
            int32_t last = -1;
            for (int64_t i = 0; i < V; i++) {
                if (probs[i] <= 0)
                    continue;
                cum += probs[i];
                last = (int32_t)i;
                if (u < cum)
                    break;
            }
            *bonus = last >= 0 ? last : hass_argmax(logits + (int64_t)cur * V, V);
            return n;
        }
        path[n++] = next;
        cur = next;
    }
}
