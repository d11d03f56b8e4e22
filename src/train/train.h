/*
 * train — training an EAGLE/HASS draft head in C (HASS.md sections 2, 4 and 5).
 *
 * The draft head (HASS.md section 2): u_i = [Emb(t_{i+1}) ; f_i] (2d, embedding first),
 * x_i = W_fc u_i (+ b_fc), then one LLaMA decoder layer without input RMSNorm:
 *   r = x + Attn(x),  h = r + down(silu(gate(z)) * up(z)),  z = RMSNorm_post(r),
 * no final norm; logits = W_h h with the target's frozen LM head. The embedding table and the LM
 * head are frozen and borrowed (f32, (V, d) row-major).
 *
 * This header is the contract the trainer CLI and the checkpoint writer build on:
 *   - hass_draft_config: the shapes (those of the target) and the RoPE setting;
 *   - hass_draft_layout: where each named tensor (EAGLE checkpoint names) lives in the flat
 *     parameter array, so a writer can emit safetensors tensor by tensor;
 *   - hass_draft_params_init: fresh, seeded parameters;
 *   - hass_trainer: parameters, gradients and AdamW state carved from ONE allocation (llm.c
 *     style: zero-grad is one memset, AdamW one flat loop), plus every work buffer of the step,
 *     sized once at creation (nothing is allocated inside a step);
 *   - hass_train_grad / hass_train_step: one HASS step (n context-alignment steps, HASS.md 5.4).
 *   - hass_adamw_update, hass_lr_schedule: the optimizer and the schedule (adamw.c).
 *
 * Threading: a trainer is used by one thread at a time. Large products go through OpenBLAS
 * (its own threads); row-parallel work (losses, softmax) through the borrowed hass_pool.
 */
#ifndef HASS_TRAIN_H
#define HASS_TRAIN_H

#include "core/core.h"
#include "ops/ops.h"

/* ---- shapes ---- */
typedef struct {
    int64_t d;             /* hidden size of the target (and of the draft layer) */
    int64_t H, Hkv;        /* query heads, key/value heads (GQA); head dim Dh = d / H */
    int64_t ffn;           /* intermediate size of the SwiGLU MLP */
    int64_t V;             /* vocabulary size (rows of the embedding table and of the LM head) */
    int has_bias;          /* fc.bias present (LLaMA-2 drafts) or not (LLaMA-3 drafts) */
    float rms_eps;         /* RMSNorm epsilon of the target */
    hass_rope_params rope; /* RoPE: theta and scaling; frequencies by hass_rope_freqs, the
                              function inference uses (the target's unless the draft says else) */
    hass_rope_style rope_style; /* HASS_ROPE_HALF for Hugging Face checkpoints */
} hass_draft_config;

/* HASS_OK, or HASS_STATUS_ARG with a message when a shape is non-positive, d % H != 0,
 * H % Hkv != 0, Dh is odd or the RoPE parameters are invalid (hass_rope_params_check). */
hass_status hass_draft_config_check(const hass_draft_config *c, hass_err *err);

/* ---- parameter layout (EAGLE checkpoint names, in this order in the flat array) ---- */
typedef enum {
    HASS_DP_FC_W = 0, /* "fc.weight"                                  (d, 2d) */
    HASS_DP_FC_B,     /* "fc.bias"                                    (d); numel 0 when absent */
    HASS_DP_Q,        /* "layers.0.self_attn.q_proj.weight"           (H*Dh, d) */
    HASS_DP_K,        /* "layers.0.self_attn.k_proj.weight"           (Hkv*Dh, d) */
    HASS_DP_V,        /* "layers.0.self_attn.v_proj.weight"           (Hkv*Dh, d) */
    HASS_DP_O,        /* "layers.0.self_attn.o_proj.weight"           (d, H*Dh) */
    HASS_DP_GATE,     /* "layers.0.mlp.gate_proj.weight"              (ffn, d) */
    HASS_DP_UP,       /* "layers.0.mlp.up_proj.weight"                (ffn, d) */
    HASS_DP_DOWN,     /* "layers.0.mlp.down_proj.weight"              (d, ffn) */
    HASS_DP_NORM,     /* "layers.0.post_attention_layernorm.weight"   (d) */
    HASS_DP_COUNT
} hass_draft_param;

typedef struct {
    size_t off[HASS_DP_COUNT];       /* offset (in floats) of each tensor in the flat array;
                                        every offset is a multiple of 16 floats (64 bytes) */
    size_t numel[HASS_DP_COUNT];     /* element count (0 for an absent fc.bias) */
    int64_t shape[HASS_DP_COUNT][2]; /* row-major shape; 1-D tensors have shape[1] == 0 */
    int ndim[HASS_DP_COUNT];         /* 1 or 2 (0 for an absent fc.bias) */
    size_t total;                    /* floats in the flat array (with alignment padding) */
} hass_draft_layout;

/* Fills the layout from a checked config. */
void hass_draft_layout_init(hass_draft_layout *L, const hass_draft_config *c);
/* EAGLE name of a tensor ("fc.weight", ...); NULL for an out-of-range id. */
const char *hass_draft_param_name(hass_draft_param p);

/* Fresh parameters, deterministic in seed (xorshift via hass_rng). The scheme is PyTorch's
 * default for the modules EAGLE's draft is built from (EAGLE never re-initialises them):
 *   every Linear weight (out, in) and the fc bias ~ U(-1/sqrt(in), 1/sqrt(in))
 *   (nn.Linear's kaiming_uniform(a=sqrt(5)) bound), the RMSNorm weight = 1, padding = 0.
 * params: (L->total) floats. */
void hass_draft_params_init(float *params, const hass_draft_layout *L, const hass_draft_config *c,
                            uint64_t seed);

/* ---- one training batch (HASS.md 3 and 5.4) ----
 * Row r = b*T + i. Everything is borrowed for the duration of the call. */
typedef struct {
    int64_t B, T;
    const float *feat;  /* (B, T, d): f_i, already noised (stream S^(0)) */
    const int32_t *tok; /* (B, T): t_{i+1}, in [0, V) */
    const float *tgt;   /* (B, T, d): f_{i+1} (regression target; its LM-head softmax is p_i) */
    const float *mask;  /* (B, T): loss mask m_i (0/1, or any non-negative weight) */
} hass_train_batch;

/* Input-feature noise of EAGLE/HASS training (HASS.md 3, AddUniformNoise with std = 0.2):
 * feat[i] += (U[0,1) - 0.5) * 0.2 * 512 / L for each of the L*d values of one sequence of length L
 * (uniform in +-51.2/L). Only the target-feature stream S^(0) is noised, never the targets.
 * feat: (L, d), modified in place; rng advances by L*d draws. */
void hass_train_add_noise(float *feat, int64_t L, int64_t d, hass_rng *rng);

#define HASS_TRAIN_MAX_ALIGN 8 /* largest n (alignment steps) a trainer supports */
#define HASS_TRAIN_MAX_TOPK 64

typedef struct {
    int n_align;  /* n: alignment steps (1 = EAGLE, 3 = HASS default) */
    int topk;     /* K of the Top-K loss (10); ignored when w_topk == 0 */
    float w_fea;  /* 1.0 */
    float w_soft; /* 0.1 */
    float w_topk; /* w: 1.0 (HASS stage 2 / CLI default); 0 for EAGLE and HASS stage 1 */
} hass_train_opts;

/* The defaults above: n = 3, K = 10, weights 1.0 / 0.1 / 1.0. */
hass_train_opts hass_train_opts_default(void);

typedef struct {
    int n_align;
    double loss[HASS_TRAIN_MAX_ALIGN];      /* L_step_j = w_fea*fea + w_soft*soft + w_topk*topk */
    double loss_fea[HASS_TRAIN_MAX_ALIGN];  /* SmoothL1 term (unweighted) */
    double loss_soft[HASS_TRAIN_MAX_ALIGN]; /* soft cross-entropy term (unweighted) */
    double loss_topk[HASS_TRAIN_MAX_ALIGN]; /* Top-K term (unweighted) */
    double top1[HASS_TRAIN_MAX_ALIGN];      /* fraction of masked rows (m_i > 0) where the draft
                                               argmax equals the target argmax */
    double loss_mean;                       /* mean of loss[] over the n steps (the logged loss) */
    double mask_sum;                        /* sum of m over the batch */
} hass_train_stats;

/* ---- AdamW (adamw.c), PyTorch semantics ---- */
typedef struct {
    float beta1, beta2; /* 0.9, 0.95 */
    float eps;          /* 1e-8 */
    float weight_decay; /* 0.01, decoupled, applied to every parameter (EAGLE passes them all) */
    float clip_value; /* 0.5: each gradient element is clamped to [-clip, clip] first; <= 0: off */
} hass_adamw_config;
hass_adamw_config hass_adamw_default(void);

/* One update of n parameters. t is the 1-based step count (bias correction uses it).
 * In order, per element: g = clamp(grad, +-clip) (grad is overwritten with the clipped value),
 * p -= lr*wd*p, m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2,
 * p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps). */
void hass_adamw_update(float *params, float *grads, float *m, float *v, size_t n, float lr,
                       int64_t t, const hass_adamw_config *c);

/* get_linear_schedule_with_warmup: lr at optimizer step `step` (0-based, the count of updates
 * taken before this one): peak * step / warmup while step < warmup, then
 * peak * max(0, (total - step) / (total - warmup)). The first update uses lr 0 when warmup > 0,
 * as in Hugging Face. */
float hass_lr_schedule(int64_t step, int64_t warmup, int64_t total, float peak);

/* ---- the trainer ---- */
typedef struct hass_trainer_work hass_trainer_work; /* private: step buffers (hass_step.c) */

typedef struct {
    hass_draft_config cfg;
    hass_draft_layout layout;
    float *params, *grads, *adam_m, *adam_v; /* each layout.total floats, one allocation */
    int64_t adam_t;                          /* optimizer steps taken so far */
    hass_adamw_config adamw;
    const float *embed;   /* (V, d) frozen embedding, borrowed */
    const float *lm_head; /* (V, d) frozen LM head W_h, borrowed */
    int64_t B_max, T_max;
    int n_align_max;
    hass_pool *pool; /* borrowed; NULL = single-threaded row work */
    float *block;    /* the one allocation behind params/grads/m/v */
    hass_trainer_work *work;
} hass_trainer;

/* Creates a trainer for batches of up to B_max sequences of up to T_max tokens and up to
 * n_align_max alignment steps. Parameters are initialised with hass_draft_params_init(seed);
 * overwrite tr->params to resume from a checkpoint (and tr->adam_m/adam_v/adam_t to resume the
 * optimizer). embed, lm_head and pool are borrowed and must outlive the trainer.
 * Returns NULL and fills err on a bad config (HASS_STATUS_ARG) or OOM (HASS_STATUS_OOM). */
hass_trainer *hass_trainer_create(const hass_draft_config *cfg, const float *embed,
                                  const float *lm_head, int64_t B_max, int64_t T_max,
                                  int n_align_max, uint64_t seed, hass_pool *pool, hass_err *err);
void hass_trainer_destroy(hass_trainer *tr); /* NULL-safe */

/* Bytes a trainer allocates for a config, capacity and pool size (params/grads/m/v + step
 * buffers). */
size_t hass_trainer_bytes(const hass_draft_config *cfg, int64_t B_max, int64_t T_max,
                          int n_align_max, int n_threads);

/* Zeroes tr->grads, then runs the n = opts->n_align steps j = 0..n-1 of HASS.md 5.4 on the batch:
 * forward of step j, its losses, and its backward, accumulating every step's gradients into
 * tr->grads. Streams: S^(0) = feat; S^(j)[b,0] = feat[b,0] and S^(j)[b,i] = h^(j-1)[b,i-1]
 * (detached). Parameters are not changed. Fills st (may be NULL).
 * Errors: HASS_STATUS_ARG when B > B_max, T > T_max, n_align outside [1, n_align_max], topk
 * outside [1, min(V, HASS_TRAIN_MAX_TOPK)] with w_topk != 0, a token outside [0, V), or a
 * negative / non-finite mask value.
 * Cost: the LM-head products (target distribution, draft logits, dH) run only on the rows with
 * m > 0 (exact: the other rows have no loss). */
hass_status hass_train_grad(hass_trainer *tr, const hass_train_batch *batch,
                            const hass_train_opts *opts, hass_train_stats *st, hass_err *err);

/* The forward alone of the n_align steps of hass_train_grad (same streams, same ops; no
 * losses, no gradients; batch->tgt and batch->mask are not read): h (n_align, B*T, d) receives
 * the draft outputs h^(j) of every step j. Errors: HASS_STATUS_ARG as hass_train_grad for the
 * shapes, n_align and tokens. Used to check the training forward against the inference one
 * (tests/test_draft.c). */
hass_status hass_train_forward(hass_trainer *tr, const hass_train_batch *batch, int n_align,
                               float *h, hass_err *err);

/* hass_train_grad, then one AdamW update (with value clipping) at learning rate lr;
 * increments tr->adam_t. */
hass_status hass_train_step(hass_trainer *tr, const hass_train_batch *batch,
                            const hass_train_opts *opts, float lr, hass_train_stats *st,
                            hass_err *err);

/* Analytic FLOPs of one training step (forward + backward of n_align alignment steps) on B
 * sequences of T tokens of which n_masked have loss weight > 0 (the LM head runs on those
 * only). Used for the GFLOP/s that the trainer and bench/bench_train.c report. */
double hass_train_step_flops(const hass_draft_config *c, int64_t B, int64_t T, int64_t n_masked,
                             int n_align);

#endif
