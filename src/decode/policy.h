/*
 * policy — how large a speculative cycle's draft tree is (HASS.md 6.4 and this implementation's
 * cost model): whether a cycle drafts at all, whether one more expansion level pays, how many
 * nodes the target verifies; and the target's cost curve that prices them, measured on this
 * machine and cached on disk.
 *
 * A cycle that verifies the best m candidates is expected to produce, per second,
 *   rate(m) = (1 + calib * gain[m]) / (drafting seconds + t1 * cost(m + 1))
 * tokens: gain[m] = the sum of their path probabilities (hass_tree_rank), calib = the decayed
 * ratio of accepted to predicted drafts, t1 = seconds of a one-row target forward, cost(n) = the
 * time of an n-row forward over t1. Another level is expanded only while its best case (for
 * some j, the j most probable frontier nodes each handing their whole mass to one child: j more
 * nodes verified, one level's time) could raise the best rate; the node count is the best
 * rate's m. When drafting loses to plain decoding (an untrained draft), cycles fall back to
 * plain steps and the draft is probed with exponential backoff.
 *
 * Apart from measuring the cost curve, the policy runs nothing and has no clock: the engine
 * passes it the times it measured, so its decisions are a function of what it observed.
 * A fixed node count (tokens > 0, --tree-tokens N) bypasses the model: every cycle drafts every
 * level.
 */
#ifndef HASS_POLICY_H
#define HASS_POLICY_H

#include "model/model.h"
#include "ops/ops.h"
#include "tree/tree.h"

/* Tree settings of speculative decoding (the CLI's --tree-depth, --tree-topk, --tree-tokens). */
typedef struct {
    int depth;  /* deepest draft node: the root's children are depth 1, each expansion level
                   adds one (depth - 1 levels): 6 */
    int topk;   /* children per expanded node and nodes expanded per level: 10 */
    int tokens; /* draft nodes verified per cycle; 0 = auto (cost model) */
} hass_tree_params;

#define HASS_COST_N 64 /* the cost curve's points: forwards of 1..HASS_COST_N rows */

/* Times of one cycle, measured by the engine. */
typedef struct {
    double catch_up; /* seconds of the proposer's start (feeding it the committed pairs) */
    int64_t fed;     /* pending pairs it was given to feed */
    double verify;   /* seconds of the verification forward */
    double cycle;    /* seconds from the cycle's start to its commit (emission excluded) */
} hass_cycle_times;

typedef struct {
    /* the target's cost curve: cost[n] = seconds of an n-row forward / t1, n = 1..HASS_COST_N */
    double cost[HASS_COST_N + 1];
    double t1; /* seconds of a one-row forward; re-estimated from every verification */
    int have_costs;
    hass_ops_tune tune; /* the kernel choices for the model on this machine */
    int have_tune;
    /* learnt about the draft on this machine; kept across generations */
    double t_level;   /* seconds per expansion level (EMA) */
    double calib_num; /* decayed sums: accepted drafts, predicted accepted drafts */
    double calib_den;
    double gain_ema; /* EMA of (tokens per second of drafting cycles) / (plain rate) */
    int backoff;     /* plain steps between probes of a losing draft; 0 while drafting wins */
    /* this generation */
    int fixed;           /* tokens > 0: a fixed node count */
    int levels, topk;    /* expansion levels per cycle, top-k */
    int nodes_cap;       /* most nodes a cycle verifies */
    int skip_left;       /* plain steps left before the next probe */
    int drafting, probe; /* this cycle */
    double gain[HASS_TREE_MAX_NODES + 1];
} hass_policy;

/* Nothing learnt, no cost curve. */
void hass_policy_init(hass_policy *p);

/* The kernel choices (hass_ops_tune) for the model on this machine and thread count, applied to
 * the process (hass_ops_tune_set): read from the cache file, or measured by a short calibration
 * of whole forwards on kv (its committed length is restored; logits: (kv->max_batch, V) scratch)
 * and written there. The bf16 product (which changes results in the last bits) is chosen once
 * for the model, by the times of 1 and 8 rows together, never per row count, and not at all
 * when HASS_CPU is set (then it is the widest HASS_CPU allows); block heights and prefetch
 * distances (bit-identical results) per batch size. A candidate replaces the built-in default
 * only when it is more than 5% faster. Measured once: later calls apply the choice again. */
const hass_ops_tune *hass_policy_tune(hass_policy *p, const hass_model *m, hass_kv *kv,
                                      hass_pool *pool, float *logits);

/* The target's cost curve for the model on this machine, with the kernels of hass_policy_tune
 * (called first): read from the cache file, or measured with forwards of 1..64 rows on kv and
 * written there (best effort). The file is $HASS_CACHE_DIR/cost-<key>.txt (else
 * $XDG_CACHE_HOME/hass, else $HOME/.cache/hass): a line "tune ..." then the curve; key = a hash
 * of the model's shapes and weight bytes, the thread count, the instruction sets allowed, the
 * CPU model and the host name; HASS_NO_COST_CACHE set: the file is not read. Done once: later
 * calls return at once. Returns p->cost. */
const double *hass_policy_costs(hass_policy *p, const hass_model *m, hass_kv *kv, hass_pool *pool,
                                float *logits);

/* A generation starts. vocab: how many ids the proposer chooses among (top-k is at most that).
 * Without a fixed node count the cost curve must be there (hass_policy_costs). */
void hass_policy_begin(hass_policy *p, const hass_tree_params *tp, int64_t vocab);

/* A cycle starts with room for `room` draft nodes in the context. Returns 1 if it drafts, with
 * *window the proposer's catch-up window (0 = every pending pair; > 0 = a probe: the last
 * `window` only); 0 for a plain step (a tree of the root alone). */
int hass_policy_cycle(hass_policy *p, int64_t room, int64_t *window);

/* After the root's children and after every level: 1 if one more level should be expanded.
 * spent: seconds since the cycle started. Ranks t. */
int hass_policy_expand(hass_policy *p, hass_tree *t, int64_t room, double spent);
/* A level took `seconds`. */
void hass_policy_level(hass_policy *p, double seconds);

/* The number of candidates to verify (0..min(nodes_cap, room)); ranks t, so hass_tree_select
 * may follow. spent: seconds since the cycle started. */
int hass_policy_nodes(hass_policy *p, hass_tree *t, int64_t room, double spent);

/* The cycle is over: t as verified (t->n nodes, t->est_accept), `accepted` drafts accepted. */
void hass_policy_observe(hass_policy *p, const hass_tree *t, int32_t accepted,
                         const hass_cycle_times *tm);

#endif
