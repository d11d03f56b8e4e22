/*
 * propose — who grows a speculative cycle's draft tree (HASS.md 6.3). One interface, two
 * implementations: the draft head (expand.c: EAGLE-2 expansion, the frontier's pairs through the
 * draft as tree rows) and an oracle (oracle.c: a function of the token sequence, which tests and
 * benchmarks use as a "perfect draft" built from the target's own choices).
 *
 * A cycle: start() once, then propose() once for the root's children and once per expansion
 * level, for as many levels as the policy (policy.h) asks. How many levels and nodes is not the
 * proposer's business; it only computes them.
 */
#ifndef HASS_PROPOSE_H
#define HASS_PROPOSE_H

#include "core/core.h"
#include "draft/draft.h"
#include "tree/tree.h"

/* What a proposer sees at the start of a cycle (borrowed for the cycle). */
typedef struct {
    int32_t *seq;   /* committed tokens [0, n_past), the root at n_past; room for
                       HASS_TREE_MAX_DEPTH more tokens after it (a proposer's scratch) */
    int64_t n_past; /* positions committed in the target (the root's position) */
    /* committed pairs the proposer has not seen: (pend_feat[j] (d), pend_tok[j]) at position
     * n_past - n_pend + j, pend_feat[j] the target's true feature there */
    const float *pend_feat; /* (n_pend, d) */
    const int32_t *pend_tok;
    int64_t n_pend;
    int64_t window; /* > 0: only the last `window` pending pairs need to be fed (a probe after
                       plain steps); 0: all */
} hass_cycle;       /* n_pend == n_past (pairs from position 0): a new context, forget the old */

typedef struct hass_proposer hass_proposer;
struct hass_proposer {
    int64_t vocab; /* ids it can propose among: top-k is at most this */
    hass_status (*start)(hass_proposer *p, const hass_cycle *c, hass_err *err);
    /* Grows t by one level: the root's children when t has no candidates (after
     * hass_tree_reset), else the frontier's; each node gets its top-k children (descending
     * log-probabilities) and the best topk of the new level become the next frontier.
     * 1 <= topk <= min(vocab, HASS_TREE_MAX_TOPK). Errors: HASS_STATUS_RANGE when a buffer is
     * full (more than HASS_TREE_MAX_LEVELS levels). */
    hass_status (*propose)(hass_proposer *p, hass_tree *t, int topk, hass_err *err);
};

/* ---- the draft head (expand.c) ----
 * Feature rows: row 0 = h, the draft's output at the last committed pair (the estimate of the
 * root's feature); each level appends its frontier nodes' outputs, and every candidate's `feat`
 * is the row of its parent's output (0 for the root's children). A frontier node at depth l is
 * the pair (its parent's output, its token) at position n_past + l - 1, fed as a tree row
 * (hass_draft_forward_tree) whose parent row is its parent node's. Tree rows are discarded at
 * the next start. */
typedef struct {
    hass_proposer base;
    const hass_draft *dr;
    hass_draft_state *ds; /* committed context + this cycle's tree rows */
    hass_pool *pool;
    int64_t n_past;
    float *feat;    /* (1 + HASS_DRAFT_MAX_SCRATCH, d) */
    int32_t n_feat; /* rows of feat in use */
    float *in;      /* (HASS_TREE_MAX_TOPK, d) scratch: a level's input features */
    float *logits;  /* (HASS_TREE_MAX_TOPK, V) scratch */
    int32_t *ids;   /* (HASS_TREE_MAX_TOPK^2) scratch: a level's children */
    float *lp;      /* (HASS_TREE_MAX_TOPK^2) scratch: their log-probs */
    int32_t toks[HASS_TREE_MAX_TOPK], pos[HASS_TREE_MAX_TOPK]; /* the last level's pairs */
    int32_t parents[HASS_TREE_MAX_TOPK];                       /* and their parents' rows */
    int32_t *chain_pos; /* (ds->max_rows) scratch: positions of a catch-up forward */
} hass_expander;

/* Borrowed: dr, ds (initialised for dr; catch-up feeds it max_rows pairs per forward), pool.
 * Allocates the scratch. */
hass_status hass_expander_init(hass_expander *x, const hass_draft *dr, hass_draft_state *ds,
                               hass_pool *pool, hass_err *err);
void hass_expander_free(hass_expander *x); /* safe on a zeroed or freed one */

/* ---- the oracle (oracle.c) ----
 * Given the whole token sequence up to a tree node (committed tokens, the root, then the node's
 * path; the last one is the node itself), fn writes k candidate next tokens with
 * log-probabilities in descending order. */
typedef void (*hass_oracle_fn)(void *user, const int32_t *seq, int64_t n, int k, int32_t *ids,
                               float *lp);
typedef struct {
    hass_proposer base;
    hass_oracle_fn fn;
    void *user;
    int32_t *seq; /* the cycle's */
    int64_t n_past;
} hass_oracle;
void hass_oracle_init(hass_oracle *o, hass_oracle_fn fn, void *user, int64_t vocab);

#endif
