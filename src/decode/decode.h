/*
 * decode — the generation loops: plain autoregressive decoding and speculative decoding with
 * an EAGLE/HASS draft head (HASS.md section 6), with their metrics.
 *
 * An engine owns everything a generation needs, allocated once: the target's KV cache and
 * forward buffers, the proposer (the draft head's state, or an oracle), the tree-size policy
 * with what it has learnt, the sampler, the tree buffers. Nothing is allocated inside the token
 * loop. One engine serves one generation at a time. With auto tree sizes, the first speculative
 * generation measures the target's cost curve (or reads it from its cache file: policy.h).
 */
#ifndef HASS_DECODE_H
#define HASS_DECODE_H

#include "core/core.h"
#include "decode/policy.h"
#include "decode/propose.h"
#include "draft/draft.h"
#include "model/model.h"
#include "sample/sample.h"
#include "tokenizer/tokenizer.h"
#include "tree/tree.h"

typedef enum { HASS_STOP_NONE = 0, HASS_STOP_EOS, HASS_STOP_LENGTH } hass_stop_reason;

typedef struct {
    int64_t max_new; /* generated-token limit (stop token excluded) */
    hass_sampler_params sampling;
    hass_tree_params tree;
    int keep_prefix; /* 1: the prompt's tokens that the last context (prompt and generated
                        tokens) shares from its start stay in the cache and are not run again:
                        the same output (the cache rows are those a fresh prefill computes, the
                        proposer is fed the whole prompt again), the prefill of a multi-turn
                        conversation's earlier turns saved */
} hass_gen_params;

/* Called with every generated token as soon as it is final; return non-zero to stop. */
typedef int (*hass_token_fn)(int32_t token, void *user);

typedef struct {
    int64_t n_prompt, n_generated;
    int64_t n_prompt_cached; /* prompt tokens kept in the cache (keep_prefix) */
    hass_stop_reason stop;
    int64_t target_forwards; /* after prefill */
    int64_t cycles;          /* speculative cycles (== target_forwards) */
    double tau;              /* generated tokens per target forward after prefill */
    double seconds, prefill_seconds, decode_seconds;
    double draft_seconds, verify_seconds, other_seconds; /* speculative time split */
    double tokens_per_s;                                 /* n_generated / seconds */
    int64_t accepted_at_depth[HASS_TREE_MAX_DEPTH];      /* [k]: cycles accepting >= k drafts */
    int64_t nodes_verified;                              /* draft nodes sent to the target */
    int64_t draft_levels;                                /* draft expansion forwards */
    double draft_level_seconds;                          /* time in those forwards */
} hass_gen_stats;

typedef struct hass_engine hass_engine;

/* Borrowed: model, tokenizer (may be NULL), draft (may be NULL: plain decoding only), pool.
 * ctx: the context in positions (0 = the model's max context; larger values are allowed:
 * RoPE extrapolates, but quality past the trained context is the caller's risk). The KV cache
 * and the buffers sized by positions are not allocated for the whole context: they hold what a
 * generation can reach (its prompt, max_new tokens and a tree's room, at most ctx), grown at
 * the generation that needs more (kept rows are kept). */
hass_engine *hass_engine_create(const hass_model *m, const hass_tokenizer *tok,
                                const hass_draft *draft, hass_pool *pool, int64_t ctx,
                                hass_err *err);
void hass_engine_destroy(hass_engine *e);

/* Generates after prompt[0..n_prompt) (which must start with BOS if the model wants one).
 * tokens_out: (max_new) or NULL. Plain decoding when the engine has no draft or spec == 0.
 * Errors: HASS_STATUS_RANGE when the prompt does not fit the context; HASS_STATUS_OOM when
 * the positions it needs cannot be allocated. */
hass_status hass_generate(hass_engine *e, const int32_t *prompt, int64_t n_prompt,
                          const hass_gen_params *p, int spec, hass_token_fn on_token, void *user,
                          int32_t *tokens_out, hass_gen_stats *stats, hass_err *err);

/* An oracle (propose.h) that replaces the draft head (tests and benchmarks: a "perfect draft"
 * built from the target's own choices); fn NULL: the draft head again. With an oracle set,
 * speculative decoding runs without a draft head. */
void hass_engine_set_oracle(hass_engine *e, hass_oracle_fn fn, void *user);

/* For tests and tools: the target's KV cache (kv.cap: the positions held now) and the
 * committed token sequence (valid until the next generation). */
const hass_kv *hass_engine_kv(const hass_engine *e);
int64_t hass_engine_ctx(const hass_engine *e); /* the context a generation may fill */
const int32_t *hass_engine_seq(const hass_engine *e);

/* 1 if tok is one of the engine's stop ids (model EOS ids, tokenizer end-of-turn ids). */
int hass_engine_is_stop(const hass_engine *e, int32_t tok);

/* The kernel choices (hass_ops_tune) for the engine's model on this machine and thread count:
 * loaded from the cost cache file or measured by a short calibration on first use (the first
 * generation, or this call), then applied to the process (and again at each generation);
 * hass_policy_tune. */
const hass_ops_tune *hass_engine_tune(hass_engine *e);

/* The target's cost curve cost(n)/cost(1), n = 1..*n_max, that prices the auto tree size:
 * measured on first use (or loaded from the cache file); hass_policy_costs. */
const double *hass_engine_costs(hass_engine *e, int *n_max);

#endif
