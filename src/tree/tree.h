/*
 * tree — EAGLE-2 dynamic draft trees (HASS.md 6.3–6.6): expansion by cumulative
 * log-probability, reranking into a connected subtree, flattening with parents/positions,
 * and lossless verification (greedy: longest match + bonus; sampling: the multi-candidate
 * scheme with residual distributions).
 *
 * Candidates are recorded level by level, so a parent always has a smaller candidate index
 * than its children; the flattened tree keeps candidate order, root first.
 */
#ifndef HASS_TREE_H
#define HASS_TREE_H

#include "core/core.h"
#include "sample/sample.h"

#define HASS_TREE_MAX_TOPK 64
#define HASS_TREE_MAX_NODES 64                         /* verified nodes per cycle, root included */
#define HASS_TREE_MAX_LEVELS 16                        /* expansion levels per cycle */
#define HASS_TREE_MAX_DEPTH (HASS_TREE_MAX_LEVELS + 1) /* deepest node (root's children: 1) */

typedef struct {
    int32_t tok;
    int32_t parent; /* candidate index, -1 = child of the root */
    float score;    /* cumulative draft log-probability of the path */
    int32_t depth;  /* 1 for children of the root */
    int32_t row;    /* draft scratch row where this node was fed for expansion, -1 if not */
    int32_t feat;   /* index of the feature this node carries (the parent's draft output) */
} hass_cand;

typedef struct {
    /* candidates */
    hass_cand *cand;
    int32_t n_cand, cap_cand;
    int32_t frontier[HASS_TREE_MAX_TOPK]; /* candidate indices expanded next */
    int32_t n_frontier;
    int32_t levels; /* expansion levels done (candidates reach depth levels + 1) */
    /* selected, flattened tree; node 0 is the root */
    int32_t n;                            /* nodes incl. the root */
    int32_t tokens[HASS_TREE_MAX_NODES];  /* token of each node */
    int32_t parents[HASS_TREE_MAX_NODES]; /* flattened parent index, -1 for the root */
    int32_t depth[HASS_TREE_MAX_NODES];   /* 0 for the root */
    int32_t cand_of[HASS_TREE_MAX_NODES]; /* candidate index (-1 for the root) */
    int32_t first_child[HASS_TREE_MAX_NODES], next_sibling[HASS_TREE_MAX_NODES];
    double est_accept; /* sum over selected nodes of exp(score): expected accepted drafts */
    /* scratch for selection */
    int32_t *order, *tmp;
} hass_tree;

/* cap_cand: most candidates a cycle may record (topk + levels * topk^2). */
hass_status hass_tree_init(hass_tree *t, int32_t cap_cand, hass_err *err);
void hass_tree_free(hass_tree *t);

/* Starts a cycle: no candidates. */
void hass_tree_reset(hass_tree *t);
/* Records k children of candidate `parent` (-1 = root) with log-probs lp (descending) and the
 * index of the feature they carry. Returns the index of the first new candidate, or -1 if the
 * candidate buffer is full. */
int32_t hass_tree_add_children(hass_tree *t, int32_t parent, const int32_t *toks, const float *lp,
                               int k, int32_t feat);
/* After a level's children are added: the next frontier = the top-k candidates of that level
 * by score (ties: lower candidate index). first..last: the candidate range of the level. */
void hass_tree_set_frontier(hass_tree *t, int32_t first, int32_t last, int k);

/* Sorts all candidates by (score desc, depth asc, index asc) into t->order and returns the
 * prefix sums of exp(score): gain[m] = expected accepted drafts with the best m nodes
 * (gain has room for max_m + 1 entries). */
void hass_tree_rank(hass_tree *t, double *gain, int32_t max_m);
/* Selects the best m candidates (after hass_tree_rank), flattens them after the root token,
 * builds parents, depths, sibling lists. Asserts that every selected node's parent is
 * selected. */
void hass_tree_select(hass_tree *t, int32_t root_tok, int32_t m);

/* Ancestor closure as a bitmask (n x ceil(n/64) words), from parents. */
void hass_tree_mask(const hass_tree *t, uint64_t *mask);

/* ---- verification ----
 * logits: (t->n, V), the target's logits at every node. Writes the flattened indices of the
 * root and of the accepted nodes to path (path[0] = 0), returns their count A + 1, and sets
 * *bonus to the token drawn from the target at the last accepted node.
 *  greedy: follow the child equal to the target's argmax;
 *  sampling: at each node, try its children in sibling order (decreasing draft probability):
 *    accept child c with probability p(c) (p = the sampler's processed distribution, the
 *    proposal is deterministic), otherwise zero p(c) and renormalise; the bonus is drawn from
 *    what remains of p at the last node (HASS.md 6.6; lossless).
 * probs: (V) scratch. */
int32_t hass_tree_verify(const hass_tree *t, const float *logits, int64_t V, hass_sampler *s,
                         float *probs, int32_t *path, int32_t *bonus);

#endif
