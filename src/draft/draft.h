/*
 * draft — the EAGLE/HASS draft head at inference (HASS.md section 2, 6.3, 6.7):
 *   x_i = W_fc [Emb(t_{i+1}) ; f_i] (+ b_fc),  h_i = DecoderLayer_noInputNorm(x)_i,
 *   q(t_{i+2}) = softmax(W_h h_i)  with the target's embedding and LM head.
 * Files: a directory in the EAGLE layout (DESIGN.md section 4): config.json (the target's
 * shapes, "bias", the draft's RoPE, and the target it was trained for) and model.safetensors with
 * fc.weight, fc.bias (optional), layers.0.self_attn.{q,k,v,o}_proj.weight,
 * layers.0.mlp.{gate,up,down}_proj.weight, layers.0.post_attention_layernorm.weight and
 * optionally embed_tokens.weight (then checked against the target's) and draft_vocab (I32,
 * distinct target token ids: a reduced draft vocabulary). A quantized draft (hass quantize
 * --draft) has model.gguf instead of model.safetensors: the same tensor names, its matrices in a
 * GGUF block type (every block's scale checked at load), the rest as they were.
 *
 * State: the draft's own KV cache holds only pairs built from the target's TRUE features
 * (committed), plus a scratch region after them for tree expansion that is discarded every
 * cycle (HASS.md 6.7).
 */
#ifndef HASS_DRAFT_H
#define HASS_DRAFT_H

#include "core/core.h"
#include "formats/formats.h"
#include "model/model.h"

typedef struct {
    hass_model_config cfg; /* the draft layer: target's d/H/Hkv/Dh/V, n_layers = 1; its own
                              ffn, eps and RoPE (config.json) */
    int has_bias;
    const void *fc_w; /* (d, 2d) */
    hass_dtype fc_t;
    const float *fc_b;        /* (d) or NULL */
    hass_layer layer;         /* attn_norm == NULL */
    const hass_model *target; /* borrowed: embedding and LM head */
    /* Reduced draft vocabulary (FR-Spec / EAGLE-3 style), optional: the draft proposes only
     * among vocab[0..n_vocab) (target ids), scoring them with those rows of the target's LM
     * head, gathered into head (n_vocab, d). Verification always uses the full vocabulary, so
     * output is unchanged; drafting costs n_vocab/V of the full head. n_vocab = 0: full. */
    int32_t *vocab;
    int64_t n_vocab;
    void *head;
    hass_dtype head_t;
    float *inv_freq;     /* (Dh/2): hass_rope_freqs of the RoPE in the draft's config.json */
    size_t weight_bytes; /* draft layer + fc (the LM head is the target's) */
    /* owned storage: the safetensors set, or the GGUF file of a quantized draft */
    hass_st_set st;
    hass_gguf gg;
    int from_gguf;
    hass_arena arena;
} hass_draft;

/* Reads DIR/config.json: the draft layer's config (shapes, eps, its RoPE) and whether it has
 * an fc bias ("bias"; absent = true, EAGLE's default). Errors: no directory, no or a bad
 * config.json. */
hass_status hass_draft_read_config(const char *dir, hass_model_config *dc, int *has_bias,
                                   hass_err *err);
/* The same from config.json's text (a "bias" that is not a boolean is an error). */
hass_status hass_draft_config_from_json(const char *json, hass_model_config *dc, int *has_bias,
                                        hass_err *err);
/* Loads DIR (EAGLE layout) for target m. Errors (NULL + err): missing files or tensors, shapes
 * that do not fit the target (hidden size, heads, vocabulary), an embed_tokens.weight that
 * differs from the target's. */
hass_draft *hass_draft_load(const char *dir, const hass_model *m, hass_err *err);
void hass_draft_free(hass_draft *d);

/* The draft's LM head: the reduced one when present, else the target's. */
static inline const void *hass_draft_head(const hass_draft *d, hass_dtype *t, int64_t *rows) {
    if (d && d->n_vocab > 0) {
        *t = d->head_t;
        *rows = d->n_vocab;
        return d->head;
    }
    *t = d->target->lm_head_t;
    *rows = d->target->cfg.V;
    return d->target->lm_head;
}

/* Writes the draft directory src (EAGLE layout) to dst as a quantized draft: dst/config.json
 * as src's, dst/model.gguf with src's tensors, each weight matrix of the draft layer and fc in
 * block type t (or converted to F32/F16/BF16; rows that are not whole blocks of t take
 * hass_quant_fallback's type, or stay as stored where no block fits), the rest (norms, bias,
 * embed_tokens, draft_vocab) as stored. Deterministic. Errors: src not a draft, t not a type
 * hass writes. */
hass_status hass_draft_quantize(const char *src, const char *dst, hass_dtype t, hass_err *err);

/* Writes a draft directory from f32 tensors in the EAGLE layout (names as in the header
 * comment; the caller gives them in any order), atomically per file. out_dtype: F32 or BF16
 * for matrices (norms and bias stay F32). config.json gets the target's shapes, the draft's
 * RoPE (rope: theta, scaling, divisors: what hass_draft_load runs it with) and target_name. */
hass_status hass_draft_save(const char *dir, const hass_model_config *target_cfg,
                            const hass_rope_params *rope, int has_bias, int64_t ffn,
                            const hass_tensor *tensors, int n, hass_dtype out_dtype,
                            const char *target_name, hass_err *err);

/* ---- state: KV cache (committed pairs + tree scratch) and forward buffers ---- */
typedef struct {
    const hass_draft *dr;
    int64_t cap, max_rows;
    int64_t n;       /* committed pairs (positions 0..n-1) */
    int64_t scratch; /* tree rows written after the committed ones this cycle */
    float *k, *v;    /* (cap + HASS_DRAFT_MAX_SCRATCH, Hkv*Dh) */
    float *pair;     /* (max_rows, 2d) */
    float *x;        /* (max_rows, d): outputs h */
    float *xb, *q, *att, *hb, *hb2, *attn_scratch;
    int32_t *parent;    /* (HASS_DRAFT_MAX_SCRATCH): each tree row's parent row, -1 = none */
    uint64_t *mask;     /* (max_rows, mask_words): the last tree forward's attention rows */
    int64_t mask_words; /* (HASS_DRAFT_MAX_SCRATCH + 63) / 64 */
} hass_draft_state;

#define HASS_DRAFT_MAX_SCRATCH 1024 /* tree rows per cycle (levels x top-k) */

/* cap: positions (the target's context); max_rows: most rows in one draft forward. */
hass_status hass_draft_state_init(hass_draft_state *s, const hass_draft *d, int64_t cap,
                                  int64_t max_rows, hass_pool *pool, hass_err *err);
void hass_draft_state_free(hass_draft_state *s);
void hass_draft_state_reset(hass_draft_state *s); /* forget everything */

/* Runs n pair rows, row i = (feats[i] (d), toks[i]) at position pos[i], that extend the
 * committed context as a causal chain (the scratch must be empty). Used for the prompt and for
 * the accepted pairs built from the target's true features.
 * out: (n, d) draft outputs h (the estimate of the next feature); may be s->x. */
hass_status hass_draft_forward(hass_draft_state *s, hass_pool *pool, int64_t n, const float *feats,
                               const int32_t *toks, const int32_t *pos, float *out, hass_err *err);
/* Runs n tree rows, appended to the scratch region: row i becomes scratch row s->scratch + i
 * (s->scratch as on entry) and attends the committed context, its ancestors among the scratch
 * rows and itself. parents[i]: the scratch row of its parent (< s->scratch + i), or -1 for a
 * row that hangs off the committed context; the ancestors are the parents' chain. The attention
 * rows built are left in s->mask (n rows of (s->scratch + 63) / 64 words, as on return).
 * Errors: HASS_STATUS_RANGE when the scratch is full; HASS_STATUS_ARG for a bad parent. */
hass_status hass_draft_forward_tree(hass_draft_state *s, hass_pool *pool, int64_t n,
                                    const float *feats, const int32_t *toks, const int32_t *pos,
                                    const int32_t *parents, float *out, hass_err *err);
/* Drops the tree scratch. */
static inline void hass_draft_discard_scratch(hass_draft_state *s) {
    s->scratch = 0;
}

#endif
