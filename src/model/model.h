/*
 * model — the LLaMA-family target: configuration, weights (borrowed from the file mapping
 * wherever the dtype allows), the KV cache, and the forward pass speculative decoding needs:
 *
 *   forward(tokens[n], positions[n], parents[n]) on top of the committed KV cache
 *     -> logits (n x V) and post-final-norm features (n x d), the input of the LM head that
 *        EAGLE/HASS draft heads consume (HASS.md section 1).
 *
 * The n new rows attend the whole committed cache plus, among themselves, their ancestors
 * given by a parent array (parents[i] < i, or -1 for a row hanging off the committed cache).
 * parents == NULL means a causal chain (parents[i] = i - 1): ordinary prefill/decoding.
 * Every row's numbers are bit-identical whether it is computed alone or in a batch, and for
 * any thread count (see ops.h), which is what makes greedy speculative decoding exact.
 */
#ifndef HASS_MODEL_H
#define HASS_MODEL_H

#include "core/core.h"
#include "core/tensor.h"
#include "formats/formats.h"
#include "ops/ops.h"

#define HASS_MAX_STOP 8

typedef enum { HASS_SRC_HF = 0, HASS_SRC_GGUF = 1, HASS_SRC_LLAMA2C = 2 } hass_model_source;

typedef struct {
    int64_t d, ffn, n_layers, H, Hkv, Dh, V, max_ctx;
    float eps;
    hass_rope_params rope; /* theta, scaling (ops.h); the frequencies are hass_rope_freqs' */
    hass_rope_style rope_style;
    int tie_embeddings;
    int32_t bos;                     /* -1 if none */
    int32_t stop_ids[HASS_MAX_STOP]; /* EOS ids (and BOS for llama2.c checkpoints) */
    int n_stop;
    hass_model_source source;
} hass_model_config;

/* Parses a Hugging Face config.json (LlamaForCausalLM / model_type llama). RoPE: rope_theta;
 * rope_scaling of type (rope_type or type) "llama3", "linear" or "default"; "rope_freqs" (hass's
 * own key: Dh/2 frequency divisors, as a GGUF file's rope_freqs.weight). */
hass_status hass_model_config_from_json(hass_model_config *cfg, const char *json, hass_err *err);
/* Writes rope_theta, rope_scaling ("llama3" in Hugging Face's form; "linear" as {"type",
 * "factor"}, the form EAGLE's draft code reads) and rope_freqs (divisors) of r into the cJSON
 * object o: what hass_model_config_from_json reads back. */
struct cJSON;
void hass_model_rope_to_json(struct cJSON *o, const hass_rope_params *r);
/* A config.json object for c as hass_model_config_from_json reads it: architectures,
 * model_type, the shapes, max_position_embeddings, rms_norm_eps and the RoPE keys, in that
 * order (callers add their own keys after them). Caller deletes. */
struct cJSON *hass_model_config_to_json(const hass_model_config *c);
/* Checks internal consistency (positive sizes, d == H*Dh, H % Hkv == 0, Dh even, ...). */
hass_status hass_model_config_check(const hass_model_config *cfg, hass_err *err);

typedef struct {
    const void *wq, *wk, *wv, *wo, *wg, *wu, *wd; /* (out, in) row-major, borrowed */
    hass_dtype tq, tk, tv, to, tg, tu, td;
    const float *attn_norm, *ffn_norm; /* (d) f32; attn_norm NULL = no input norm (draft) */
} hass_layer;

typedef struct hass_model hass_model;
struct hass_model {
    hass_model_config cfg;
    const void *embed; /* (V, d) */
    hass_dtype embed_t;
    const void *lm_head; /* (V, d) */
    hass_dtype lm_head_t;
    const float *final_norm; /* (d) */
    hass_layer *layers;      /* (n_layers) */
    float *inv_freq;         /* (Dh/2): hass_rope_freqs(&cfg.rope) */
    size_t weight_bytes;     /* bytes of weights read per token (all matrices + lm_head) */
    /* owned storage */
    hass_arena arena;
    void *src;                   /* the open file(s) or buffer the weights point into */
    void (*src_free)(void *src); /* releases src */
};

/* Loads a model: a Hugging Face directory (config.json + model.safetensors or an index of
 * shards), a .gguf file, or a llama2.c checkpoint. Returns NULL and fills err on failure. */
hass_model *hass_model_load(const char *path, hass_err *err);
/* Builds a model from named tensors (HF names) and a config; tensors are borrowed and must
 * outlive the model. Used by the loaders and by tests that make synthetic models. */
hass_model *hass_model_from_tensors(const hass_model_config *cfg, const hass_tensor *tensors, int n,
                                    hass_err *err);
void hass_model_free(hass_model *m);

/* ---- KV cache + forward scratch ---- */
typedef struct {
    const hass_model *m;
    int64_t cap;       /* max positions */
    int64_t max_batch; /* max rows per forward call */
    int64_t n;         /* committed length */
    float *k, *v;      /* (n_layers, cap, Hkv*Dh); k after RoPE, each head in the interleaved
                        * pair order whatever cfg.rope_style (see hass_layer_forward) */
    /* scratch for one forward of up to max_batch rows */
    float *x, *xb, *q, *att, *hb, *hb2, *kbuf, *vbuf, *attn_scratch;
    uint64_t *mask;
    int32_t *pos_buf; /* (max_batch) positions of hass_model_prefill's forwards */
    size_t bytes;
} hass_kv;

hass_status hass_kv_init(hass_kv *kv, const hass_model *m, int64_t cap, int64_t max_batch,
                         hass_pool *pool, hass_err *err);
void hass_kv_free(hass_kv *kv);
/* Holds cap positions (cap > kv->cap; else nothing changes), the committed rows kept. On
 * error kv is unchanged. */
hass_status hass_kv_grow(hass_kv *kv, int64_t cap, hass_pool *pool, hass_err *err);

/*
 * Runs n new rows (n <= max_batch) on top of the committed cache; their K/V are written to
 * slots [kv->n, kv->n + n) but kv->n is not changed: call hass_kv_commit or hass_kv_keep.
 *   tokens, pos: (n); parents: (n) or NULL (causal chain); every parents[i] < i.
 *   logits: NULL or ((n - logits_from) x V): logits of rows logits_from..n-1.
 *   feats:  NULL or (n x d): post-final-norm features of every row.
 * Returns HASS_STATUS_RANGE if the rows do not fit the cache.
 */
hass_status hass_model_forward(const hass_model *m, hass_kv *kv, hass_pool *pool, int64_t n,
                               const int32_t *tokens, const int32_t *pos, const int32_t *parents,
                               float *logits, int64_t logits_from, float *feats, hass_err *err);
/* Runs tokens[0..n) (n >= 1) as a causal chain after the committed cache, at positions
 * kv->n .. kv->n + n - 1, in forwards of kv->max_batch rows, and commits them (a prompt's
 * prefill). logits: NULL or (V): the last row's logits. feats: NULL or (n, d): every row's
 * features. Errors as hass_model_forward's; rows of the forwards before a failure stay committed.
 */
hass_status hass_model_prefill(const hass_model *m, hass_kv *kv, hass_pool *pool, int64_t n,
                               const int32_t *tokens, float *logits, float *feats, hass_err *err);
/* Commits the n rows just computed. */
void hass_kv_commit(hass_kv *kv, int64_t n);
/* Keeps rows[0..n_keep) (increasing indices into the last forward's rows) and commits them,
 * compacting their K/V into slots kv->n .. kv->n + n_keep - 1. */
void hass_kv_keep(hass_kv *kv, const int32_t *rows, int64_t n_keep);
/* Forgets everything after position n (n <= kv->n). */
void hass_kv_truncate(hass_kv *kv, int64_t n);

/* One decoder layer over n rows (shared with the draft head, whose layer has no input norm).
 * After RoPE, q and k of a rotate-half model are reordered into the interleaved pair order, so
 * a checkpoint and its GGUF conversion run the same attention arithmetic (bit-identical).
 * x (n, d) is updated in place. The rows are the last n of a window of n_win new rows after
 * n_past committed ones (n_win == n for the target): their K/V go to kcache/vcache rows
 * n_past+n_win-n .. n_past+n_win-1 (row stride Hkv*Dh); mask as in hass_attention_win. */
typedef struct {
    float *xb, *q, *att, *hb, *hb2, *attn_scratch;
} hass_layer_scratch;
void hass_layer_forward(hass_pool *pool, const hass_model_config *cfg, const hass_layer *L,
                        const float *inv_freq, float *x, int64_t n, const int32_t *pos,
                        float *kcache, float *vcache, int64_t n_past, int64_t n_win,
                        const uint64_t *mask, const hass_layer_scratch *s);

/* Reads the RoPE adjustments a GGUF file keeps outside its base metadata into cfg->rope: the
 * "rope_freqs.weight" divisors (LLaMA-3.1 scaling as llama.cpp stores it) and linear scaling.
 * HASS_STATUS_UNSUPPORTED for other scaling types. Called by hass_model_load for .gguf files. */
hass_status hass_model_gguf_rope(const hass_gguf *g, hass_model_config *cfg, hass_err *err);

/* Writes m as a Hugging Face directory (config.json + model.safetensors, or shards of at most
 * shard_bytes + model.safetensors.index.json when shard_bytes > 0 and the model is larger).
 * dt: F32 or BF16 for matrices (norms stay F32). Interleaved-RoPE q/k rows (llama2.c, GGUF) are
 * permuted to the rotate-half layout, so the export computes the same function. */
hass_status hass_model_export_hf(const hass_model *m, const char *dir, hass_dtype dt,
                                 size_t shard_bytes, hass_err *err);

/* Writes m as a GGUF v3 file of arch "llama" the way llama.cpp's convert_hf_to_gguf.py writes a
 * LlamaForCausalLM: general.* (architecture, type, name, size_label, file_type, alignment 32,
 * quantization_version), llama.* hyper-parameters, then `extra` (e.g. the tokenizer's
 * tokenizer.* keys, hass_tokenizer_gguf_kvs) before quantization_version; tensors token_embd,
 * blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,ffn_down},
 * output_norm, output (absent when tied), and rope_freqs for llama3 scaling or GGUF divisors
 * (linear scaling: llama.rope.scaling.type/factor keys).
 * q/k rows of a rotate-half model are permuted to the interleaved layout, as the converter
 * does; reading the file back gives a model with bit-identical logits. Norms are F32; matrices
 * F32/F16/BF16 (dtype), or each as stored (HASS_DTYPE_COUNT; Q8_0 is copied). Written
 * atomically, one tensor at a time. */
typedef struct {
    hass_dtype dtype;           /* F32, F16, BF16, or HASS_DTYPE_COUNT: as stored */
    const char *name;           /* general.name ("model" if NULL) */
    const hass_gguf_kvs *extra; /* more metadata (may be NULL) */
    /* Quantization (hass_model_quantize): when pick is set, every matrix gets the dtype
     * pick(pick_user, GGUF name, rows, cols, stored dtype) (F32/F16/BF16 or a block type,
     * quantized row by row by ggml's reference quantizers; a stored matrix of that dtype is
     * copied), and file_type is written as general.file_type. */
    hass_dtype (*pick)(void *user, const char *name, int64_t rows, int64_t cols, hass_dtype stored);
    void *pick_user;
    int32_t file_type;
} hass_gguf_export_opts;
hass_status hass_model_export_gguf(const hass_model *m, const char *path,
                                   const hass_gguf_export_opts *o, hass_err *err);

/* ---- quantization (quantize.c): llama-quantize's choices without an importance matrix ----
 * type: q8_0, q4_0, q4_1, q5_0, q5_1, q6_k (every matrix in that type, output.weight in Q6_K
 * unless q8_0), q4_k_s, q4_k_m, q5_k_s, q5_k_m (llama.cpp's mixes: attn_v and ffn_down of some
 * layers in Q5_K/Q6_K; q4_k and q5_k are their _m aliases, as in llama-quantize); pure: every
 * matrix in the base type. Rows that are not whole blocks fall back as llama.cpp does (Q4_K ->
 * Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), then to F16. */
typedef struct {
    hass_dtype base;
    int32_t ftype; /* general.file_type (llama.cpp's LLAMA_FTYPE_MOSTLY_*) */
    int pure, tied;
    int64_t n_layers;
} hass_quant_plan;
/* HASS_STATUS_ARG naming the accepted types for an unknown type (case-insensitive). */
hass_status hass_quant_plan_init(hass_quant_plan *p, const char *type, int pure,
                                 const hass_model *m, hass_err *err);
/* The same for a model of n_layers layers, tied: whether the LM head is the embedding. */
hass_status hass_quant_plan_init_shape(hass_quant_plan *p, const char *type, int pure,
                                       int64_t n_layers, int tied, hass_err *err);
const char *hass_quant_type_names(void);
/* The dtype of matrix `name` (GGUF name, rows x cols) under plan p (a hass_quant_plan *). */
hass_dtype hass_quant_pick(void *p, const char *name, int64_t rows, int64_t cols,
                           hass_dtype stored);
/* t for rows of cols values, or where they are not whole blocks of t llama.cpp's fallback
 * (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), then F16. */
hass_dtype hass_quant_fallback(hass_dtype t, int64_t cols);
/* m as a GGUF file quantized by p: hass_model_export_gguf with hass_quant_pick (metadata as
 * there, plus `extra`, e.g. the tokenizer's keys). Deterministic: the same model and plan give
 * the same bytes. */
hass_status hass_model_quantize(const hass_model *m, const char *path, const hass_quant_plan *p,
                                const char *name, const hass_gguf_kvs *extra, hass_err *err);

/* ---- validation loss (perplexity.c) ----
 * Over the token stream ids (n), windows of ctx + 1 tokens with stride ctx, as `hass pretrain`
 * evaluates: window w is ids[w*ctx .. w*ctx + ctx], run from an empty cache, every one of its
 * ctx positions predicting the next token. At most max_windows windows (<= 0: all). nll: mean
 * negative log-likelihood in nats (double sums), ppl = exp(nll), nll_se: the standard error of
 * the mean of the per-window losses. Logs progress. HASS_STATUS_ARG if ctx is not in
 * 1..max_ctx or there is no whole window; HASS_STATUS_RANGE for a token out of range. */
typedef struct {
    int64_t n_windows, n_tokens;
    double nll, ppl, nll_se;
} hass_ppl_result;
hass_status hass_model_perplexity(const hass_model *m, hass_pool *pool, const int32_t *ids,
                                  int64_t n, int64_t ctx, int64_t max_windows, hass_ppl_result *r,
                                  hass_err *err);

/* A model of the given shape with seeded random weights of dtype wt (F32/BF16/F16, or a GGUF
 * block type: the same draws quantized by the reference quantizer; d, ffn and H*Dh multiples of
 * its block), for tests and benchmarks. Weights are scaled so activations stay O(1) through many
 * layers. The model owns the weights. */
hass_model *hass_model_synthetic(const hass_model_config *cfg, hass_dtype wt, uint64_t seed,
                                 hass_err *err);
/* The same draws with each matrix in the dtype plan picks for it (hass_quant_pick under its
 * GGUF name: a llama.cpp mix such as Q4_K_M; the LM head is output.weight, untied), so a
 * quantized model of any size without its F32 weights in memory. */
hass_model *hass_model_synthetic_mix(const hass_model_config *cfg, const hass_quant_plan *plan,
                                     uint64_t seed, hass_err *err);
/* A LLaMA-shaped config (rope half style, eps 1e-5, theta 10000, no stop ids). */
hass_model_config hass_model_config_make(int64_t d, int64_t ffn, int64_t n_layers, int64_t H,
                                         int64_t Hkv, int64_t V, int64_t max_ctx);

/* Builds the n x ceil(n/64) ancestor bitmask from a parent array (NULL = causal). Returns 0
 * if a parent index is invalid (>= i or < -1). */
int hass_mask_from_parents(uint64_t *mask, const int32_t *parents, int64_t n);

#endif
