/*
 * pretrain.h — training a whole LLaMA-family model from scratch (DESIGN.md 1, "pretraining a
 * small target"): embedding, N decoder layers (RMSNorm, RoPE, GQA attention, SwiGLU MLP), final
 * RMSNorm, LM head, next-token cross-entropy, built from the draft trainer's forward/backward
 * pairs (draft_grad.h). Rows are tokens: a batch of B sequences of T tokens is N = B*T rows,
 * row r = b*T + i at position i.
 *
 * One layer (Hugging Face LlamaDecoderLayer):
 *   z1 = RMSNorm_in(x);  q, k, v = z1 Wq^T, z1 Wk^T, z1 Wv^T;  q, k = rope(q), rope(k)
 *   r  = x + Attn_causal(q, k, v) Wo^T
 *   z2 = RMSNorm_post(r);  y = r + (silu(z2 Wg^T) * (z2 Wu^T)) Wd^T
 * logits = RMSNorm_final(x_L) Wh^T (Wh = the embedding when tied).
 *
 * Parameters, gradients and AdamW state are carved from one allocation (llm.c style); every
 * activation the backward needs is kept per layer, sized once at creation for B_max x T rows.
 * Large products run through OpenBLAS sgemm (its own threads); attention and the loss split
 * rows over the borrowed hass_pool. Deterministic for a given thread count.
 */
#ifndef HASS_PRETRAIN_H
#define HASS_PRETRAIN_H

#include "core/core.h"
#include "ops/ops.h"

typedef struct {
    int64_t d, n_layers, H, Hkv, ffn, V;
    int64_t ctx;      /* sequence length trained (and max_position_embeddings written) */
    float rms_eps;    /* 1e-5 */
    float rope_theta; /* 10000 */
    int tie;          /* LM head = embedding */
} hass_lm_config;

/* HASS_OK, or HASS_STATUS_ARG naming the bad field (non-positive or oversized shape,
 * d % H, H % Hkv, odd head dim, eps/theta <= 0). */
hass_status hass_lm_config_check(const hass_lm_config *c, hass_err *err);

/* Per-layer tensors, in this order inside a layer's block. */
typedef enum {
    HASS_LW_ATTN_NORM = 0, /* input_layernorm.weight            (d) */
    HASS_LW_Q,             /* self_attn.q_proj.weight           (H*Dh, d) */
    HASS_LW_K,             /* self_attn.k_proj.weight           (Hkv*Dh, d) */
    HASS_LW_V,             /* self_attn.v_proj.weight           (Hkv*Dh, d) */
    HASS_LW_O,             /* self_attn.o_proj.weight           (d, H*Dh) */
    HASS_LW_FFN_NORM,      /* post_attention_layernorm.weight   (d) */
    HASS_LW_GATE,          /* mlp.gate_proj.weight              (ffn, d) */
    HASS_LW_UP,            /* mlp.up_proj.weight                (ffn, d) */
    HASS_LW_DOWN,          /* mlp.down_proj.weight              (d, ffn) */
    HASS_LW_COUNT
} hass_lm_layer_tensor;

/* One named tensor of the flat parameter array. */
typedef struct {
    char name[64];    /* Hugging Face name, e.g. "model.layers.3.mlp.up_proj.weight" */
    int64_t shape[2]; /* rows, cols (cols 0 for vectors) */
    size_t off;       /* offset in floats; a multiple of 16 (64 bytes) */
    size_t numel;
    int decay; /* weight decay applies (matrices), not to norms */
} hass_lm_tensor;

/* Tensors in order: model.embed_tokens.weight, 9 per layer (above), model.norm.weight, and
 * lm_head.weight unless tied. */
typedef struct {
    hass_lm_tensor *t; /* n entries, owned */
    int n;
    size_t total;   /* floats in the flat array, with padding */
    int emb, norm;  /* indices of the embedding and of the final norm */
    int head;       /* index of the LM head (== emb when tied) */
    int layer0;     /* index of layer 0's first tensor; layer l tensor k = layer0 + 9 l + k */
    size_t n_param; /* parameters without padding */
} hass_lm_layout;

hass_status hass_lm_layout_init(hass_lm_layout *L, const hass_lm_config *c, hass_err *err);
void hass_lm_layout_free(hass_lm_layout *L);

/* Seeded initialisation (GPT-2 / LLaMA practice): every matrix ~ N(0, 0.02^2), the two residual
 * projections (o_proj, down_proj) ~ N(0, (0.02 / sqrt(2 n_layers))^2), norms 1, padding 0. */
void hass_lm_params_init(float *params, const hass_lm_layout *L, const hass_lm_config *c,
                         uint64_t seed);

typedef struct hass_lm_work hass_lm_work; /* private: activations and step buffers */

typedef struct {
    hass_lm_config cfg;
    hass_lm_layout layout;
    float *params, *grads, *adam_m, *adam_v; /* layout.total floats each, one allocation */
    int64_t adam_t;                          /* optimizer updates taken */
    int64_t B_max;
    hass_pool *pool; /* borrowed */
    float *block;
    hass_lm_work *work;
} hass_lm_trainer;

/* Capacity: micro-batches of up to B_max sequences of cfg->ctx tokens. Parameters are
 * initialised with hass_lm_params_init(seed), AdamW state zero. NULL + err on a bad config or
 * out of memory. */
hass_lm_trainer *hass_lm_trainer_create(const hass_lm_config *cfg, int64_t B_max, uint64_t seed,
                                        hass_pool *pool, hass_err *err);
void hass_lm_trainer_destroy(hass_lm_trainer *tr); /* NULL-safe */
/* Bytes a trainer allocates (parameters, gradients, AdamW state and activations). */
size_t hass_lm_trainer_bytes(const hass_lm_config *cfg, int64_t B_max, int n_threads);

/* Forward and backward of one micro-batch. tok: (B, T+1) ids in [0, V): inputs are tok[b][0..T),
 * targets tok[b][1..T]; a negative target id is ignored (no loss, no gradient), T = cfg.ctx.
 * ACCUMULATES into tr->grads the gradient of gscale * sum_rows CE_r (callers zero the grads
 * once per optimizer step and pass gscale = 1 / targets of the whole step). Returns the sum of
 * the per-row cross-entropies (nats) and *count the number of targets (may be NULL). With
 * grad == 0 only the forward runs (evaluation) and the gradients are untouched. */
double hass_lm_forward_backward(hass_lm_trainer *tr, const int32_t *tok, int64_t B, float gscale,
                                int grad, int64_t *count);

/* Last forward's logits of row r (B*T rows, V each), valid until the next call; only after a
 * forward with grad == 0 (a backward overwrites them with their gradient). */
const float *hass_lm_logits(const hass_lm_trainer *tr);

/* grads = 0 (split over the pool). */
void hass_lm_zero_grads(hass_lm_trainer *tr);

/* sqrt(sum grads^2) over all parameters (double sums per thread, added in thread order). */
double hass_lm_grad_norm(const hass_lm_trainer *tr);

/* One optimizer update: grads scaled by min(1, clip / norm) when clip > 0 (norm = the value
 * hass_lm_grad_norm returns), then AdamW (PyTorch semantics, beta1/beta2/eps from adamw,
 * weight decay wd on matrices only, no value clipping) at learning rate lr; adam_t += 1. */
void hass_lm_optimizer_step(hass_lm_trainer *tr, float lr, float wd, float clip, double norm);

/* Warmup + cosine: peak * step / warmup during warmup, then
 * min_lr + (peak - min_lr) * (1 + cos(pi * p)) / 2, p = (step - warmup) / (total - warmup)
 * clamped to [0, 1]. step is 0-based (updates taken before this one). */
float hass_lr_cosine(int64_t step, int64_t warmup, int64_t total, float peak, float min_lr);

/* Analytic FLOPs of one forward+backward of B sequences (2 m n k per product; causal
 * attention counts the keys each row sees; elementwise work not counted). */
double hass_lm_step_flops(const hass_lm_config *c, int64_t B);

/* Number of parameters (embedding and head included; the head once when tied). */
size_t hass_lm_n_params(const hass_lm_config *c);

#endif
