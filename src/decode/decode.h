/*
 * decode — the generation loops: plain autoregressive decoding and speculative decoding with
 * an EAGLE/HASS draft head (HASS.md section 6), with their metrics.
 *
 * An engine owns everything a generation needs, allocated once: the target's KV cache and
 * forward buffers, the draft's state, the sampler, the tree buffers. Nothing is allocated
 * inside the token loop. One engine serves one generation at a time.
 */
#ifndef HASS_DECODE_H
#define HASS_DECODE_H

#include "core/core.h"
#include "draft/draft.h"
#include "model/model.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"
#include "tree/tree.h"

typedef enum { HASS_STOP_NONE = 0, HASS_STOP_EOS, HASS_STOP_LENGTH } hass_stop_reason;

/* Tree-size policy of speculative decoding. */
typedef struct {
    int depth;       /* expansion levels (EAGLE-2 "depth"; max draft depth = depth + 1): 6 */
    int topk;        /* children per expanded node and nodes expanded per level: 10 */
    int tree_tokens; /* draft nodes verified per cycle; 0 = auto (cost model) */
} hass_tree_params;

typedef struct {
    int64_t max_new; /* generated-token limit (stop token excluded) */
    hass_sampler_params sampling;
    hass_tree_params tree;
} hass_gen_params;

/* Called with every generated token as soon as it is final; return non-zero to stop. */
typedef int (*hass_token_fn)(int32_t token, void *user);

#define HASS_MAX_DEPTH 16
typedef struct {
    int64_t n_prompt, n_generated;
    hass_stop_reason stop;
    int64_t target_forwards; /* after prefill */
    int64_t cycles;          /* speculative cycles (== target_forwards) */
    double tau;              /* generated tokens per target forward after prefill */
    double seconds, prefill_seconds, decode_seconds;
    double draft_seconds, verify_seconds, other_seconds; /* speculative time split */
    double tokens_per_s;                                 /* n_generated / seconds */
    int64_t accepted_at_depth[HASS_MAX_DEPTH + 1];       /* cycles accepting >= d drafts */
    int64_t nodes_verified;                              /* draft nodes sent to the target */
    int64_t draft_levels;                                /* draft expansion forwards */
    double draft_level_seconds;                          /* time in those forwards */
} hass_gen_stats;

/* ---- EAGLE-2 tree expansion with a draft head (HASS.md 6.3; expand.c) ----
 * The mechanism of a cycle's drafting, apart from the policy (how many levels, how many nodes:
 * the engine's cost model). Feature rows: row 0 = h, the draft's output at the last committed
 * pair (the estimate of the root's feature); each level appends its frontier nodes' outputs,
 * and every candidate's `feat` is the row of its parent's output (0 for the root's children).
 * All buffers are the caller's; nothing is allocated. */
typedef struct {
    const hass_draft *dr;
    hass_draft_state *ds; /* committed context; tree rows go to its scratch (discarded by the
                             caller after the cycle) */
    hass_pool *pool;
    hass_tree *t;
    float *feat;    /* (1 + HASS_DRAFT_MAX_SCRATCH, d); row 0 set by the caller */
    int32_t n_feat; /* rows of feat in use */
    float *in;      /* (HASS_TREE_MAX_TOPK, d) scratch: a level's input features */
    float *logits;  /* (HASS_TREE_MAX_TOPK, V) scratch */
    int32_t *ids;   /* (HASS_TREE_MAX_TOPK^2) scratch: a level's children */
    float *lp;      /* (HASS_TREE_MAX_TOPK^2) scratch: their log-probs */
    int32_t toks[HASS_TREE_MAX_TOPK], pos[HASS_TREE_MAX_TOPK]; /* the last level's pairs */
} hass_expander;

/* Resets the tree and adds the root's children: the top-k (1 <= topk <= HASS_TREE_MAX_TOPK and
 * the draft's vocabulary) of the draft's distribution at feat row 0, as the first frontier. */
void hass_expand_root(hass_expander *x, int topk);
/* One level: each frontier node's pair (its parent's output, its token) at position
 * n_past + depth - 1 goes through the draft as a tree row attending the committed context, the
 * rows of its ancestors and itself (the mask is left in x->ds->mask, the positions in x->pos);
 * its output is appended to feat; its top-k children are added and the best topk of them
 * become the next frontier. n_past: positions committed in the target (the root's position).
 * Errors: HASS_STATUS_RANGE when the draft scratch or the candidate buffer is full. */
hass_status hass_expand_level(hass_expander *x, int64_t n_past, int topk, hass_err *err);

typedef struct hass_engine hass_engine;

/* Borrowed: model, tokenizer (may be NULL), draft (may be NULL: plain decoding only), pool.
 * ctx: KV capacity in positions (0 = the model's max context; larger values are allowed:
 * RoPE extrapolates, but quality past the trained context is the caller's risk). */
hass_engine *hass_engine_create(const hass_model *m, const hass_tokenizer *tok,
                                const hass_draft *draft, hass_pool *pool, int64_t ctx,
                                hass_err *err);
void hass_engine_destroy(hass_engine *e);

/* Generates after prompt[0..n_prompt) (which must start with BOS if the model wants one).
 * tokens_out: (max_new) or NULL. Plain decoding when the engine has no draft or spec == 0.
 * Errors: HASS_STATUS_RANGE when the prompt does not fit the context. */
hass_status hass_generate(hass_engine *e, const int32_t *prompt, int64_t n_prompt,
                          const hass_gen_params *p, int spec, hass_token_fn on_token, void *user,
                          int32_t *tokens_out, hass_gen_stats *stats, hass_err *err);

/* A proposer that replaces the draft head (tests: a "perfect draft" built from the target's
 * own choices). Given the whole token sequence up to a tree node (prompt, generated tokens,
 * then the node's path; the last one is the node itself), it writes k candidate next tokens
 * with log-probabilities in descending order. With an oracle set, speculative decoding runs
 * without a draft head. */
typedef void (*hass_oracle_fn)(void *user, const int32_t *seq, int64_t n, int k, int32_t *ids,
                               float *lp);
void hass_engine_set_oracle(hass_engine *e, hass_oracle_fn fn, void *user);

/* For tests and tools: the target's KV cache and the committed token sequence (valid until the
 * next generation). */
const hass_kv *hass_engine_kv(const hass_engine *e);
const int32_t *hass_engine_seq(const hass_engine *e);

/* 1 if tok is one of the engine's stop ids (model EOS ids, tokenizer end-of-turn ids). */
int hass_engine_is_stop(const hass_engine *e, int32_t tok);

/* The kernel choices (hass_ops_tune) for the engine's model on this machine and thread count:
 * loaded from the cost cache file or measured by a short calibration on first use (the first
 * generation, or this call), then applied to the process (and again at each generation). */
const hass_ops_tune *hass_engine_tune(hass_engine *e);

/* Target cost curve cost(n)/cost(1) used by the auto tree size; measured on first use (or
 * loaded from the cache file) — see hass_engine_costs. */
const double *hass_engine_costs(hass_engine *e, int *n_max);

#endif
