/*
 * oracle.c — a proposer (propose.h) that asks a function of the token sequence instead of a
 * draft head: tests and benchmarks build a "perfect draft" from the target's own choices with
 * it, to reach deep accepted paths that an untrained draft never gives.
 */
#include "decode/propose.h"

static hass_status oracle_start(hass_proposer *p, const hass_cycle *c, hass_err *err) {
    (void)err;
    hass_oracle *o = (hass_oracle *)p;
    o->seq = c->seq; /* an oracle needs no catch-up: it reads the sequence itself */
    o->n_past = c->n_past;
    return HASS_OK;
}

static hass_status oracle_propose(hass_proposer *p, hass_tree *t, int topk, hass_err *err) {
    hass_oracle *o = (hass_oracle *)p;
    int32_t ids[HASS_TREE_MAX_TOPK], path[HASS_TREE_MAX_DEPTH + 1];
    float lp[HASS_TREE_MAX_TOPK];
    if (t->n_cand == 0) { /* the root's children: the sequence ends with the root */
        o->fn(o->user, o->seq, o->n_past + 1, topk, ids, lp);
        hass_tree_add_children(t, -1, ids, lp, topk, 0);
        hass_tree_set_frontier(t, 0, t->n_cand, topk);
        t->levels = 0;
        return HASS_OK;
    }
    if (t->levels >= HASS_TREE_MAX_LEVELS)
        return hass_err_set(err, HASS_STATUS_RANGE, "tree: more than %d levels",
                            HASS_TREE_MAX_LEVELS);
    int32_t first = t->n_cand;
    for (int i = 0; i < t->n_frontier; i++) {
        int np = 0;
        for (int32_t a = t->frontier[i]; a >= 0; a = t->cand[a].parent)
            path[np++] = t->cand[a].tok;
        int64_t n = o->n_past + 1; /* committed tokens + the root, then the node's path */
        for (int j = np - 1; j >= 0; j--)
            o->seq[n++] = path[j];
        o->fn(o->user, o->seq, n, topk, ids, lp);
        if (hass_tree_add_children(t, t->frontier[i], ids, lp, topk, 0) < 0)
            return hass_err_set(err, HASS_STATUS_RANGE, "tree: candidate buffer full");
    }
    hass_tree_set_frontier(t, first, t->n_cand, topk);
    return HASS_OK;
}

void hass_oracle_init(hass_oracle *o, hass_oracle_fn fn, void *user, int64_t vocab) {
    *o = (hass_oracle){.base = {vocab, oracle_start, oracle_propose}, .fn = fn, .user = user};
}
