/*
 * pretrain_run.h — a whole pretraining run (`hass pretrain`): a JSONL corpus and a tokenizer in,
 * a Hugging Face model directory out, resumable bit-exactly and time-sliceable.
 *
 * Data: JSONL records {"messages": [{"role", "content"}, ...]} (BOS + the tokenizer's chat
 * template) or {"text": S} (BOS + S + EOS), rendered by hass_tokenizer_render_record exactly as
 * the tokenizer trainer saw them and encoded with special tokens parsed. The encoded records are
 * concatenated into one token stream (cached in out_dir/cache, keyed by the bytes of the data and
 * of the tokenizer), cut into windows of ctx+1 tokens (stride ctx) visited in a seeded random order
 * per epoch; window k of the run (k = step*accum*batch + micro*batch + b) is window perm_e[k mod n]
 * of epoch e = k div n, so the data order depends only on the seed and the step. Validation: the
 * first eval_windows windows of the validation stream, in order.
 *
 * Per optimizer step: accum micro-batches of batch windows, forward/backward with the CE
 * averaged over the step's targets, gradient-norm clipping, AdamW (decay on matrices), warmup +
 * cosine learning rate.
 *
 * Files in out_dir:
 *   model/                 the model as a Hugging Face directory (config.json,
 *                          model.safetensors in BF16, tokenizer.json, tokenizer_config.json,
 *                          generation_config.json), rewritten at every checkpoint
 *   trainer_state.safetensors  f32 params, AdamW m and v; metadata: step, adam_t, tokens and the
 *                          run's configuration (a state of another configuration is refused)
 *   log.jsonl              one line per step ({"step", "lr", "loss", "grad_norm", "tokens",
 *                          "tokens_per_s", "seconds"}) and per evaluation ({"step", "val_loss"});
 *                          on resume, lines past the resumed step are dropped
 *   cache/                 token streams
 * Checkpoints are written atomically every ckpt_every steps, at the end, on stop_at, when the
 * time limit is near and when *stop is set (signal handler).
 */
#ifndef HASS_PRETRAIN_RUN_H
#define HASS_PRETRAIN_RUN_H

#include "tokenizer/tokenizer.h"
#include "train/pretrain.h"

typedef struct {
    const char *data;      /* training JSONL */
    const char *valid;     /* validation JSONL, or NULL */
    const char *tokenizer; /* tokenizer.json (tokenizer_config.json read from beside it) */
    const char *out_dir;
    hass_lm_config cfg; /* V = 0: the tokenizer's vocabulary size */
    int64_t batch, accum;
    int64_t steps;    /* total optimizer steps (fixes the schedule) */
    float lr, min_lr; /* peak, and the floor of the cosine */
    int64_t warmup;
    float weight_decay, clip;
    uint64_t seed;
    int64_t eval_every, eval_windows, ckpt_every, log_every;
    int64_t stop_at;    /* stop after this step (0 = never) */
    double time_limit;  /* stop (with a checkpoint) before this many seconds (0 = none) */
    volatile int *stop; /* set asynchronously to stop after the current step (may be NULL) */
    int gemm;           /* hass_gemm_kind of the products, or -1: measured (hass_gemm_pick) */
    int reschedule;     /* resume a state whose steps / lr / min_lr / warmup differ, continuing
                           from its step on the new schedule */
} hass_pretrain_opts;

/* d 512, 16 layers, 8 heads, 4 kv heads, ffn 1408, ctx 1024, theta 10000, eps 1e-5, untied;
 * batch 4, accum 2, lr 1e-3 -> 1e-4, warmup 100, wd 0.1, clip 1, seed 1, eval every 100 steps on
 * 32 windows, checkpoint every 50 steps, log every step, GEMM kind measured. steps must be set.
 * A run resumed with another GEMM kind (another machine) continues correctly but is then not
 * bit-identical to an uninterrupted run. */
hass_pretrain_opts hass_pretrain_opts_default(void);

typedef struct {
    int64_t start_step, step, total;
    int64_t tokens; /* trained in this run */
    double seconds, tokens_per_s, gflops;
    double loss, val_loss; /* last training loss (mean per token); last validation loss (or
                              NaN) */
    int64_t train_tokens, valid_tokens; /* stream sizes */
    double train_bytes_per_token;
    int gemm; /* the kind used */
    int complete;
} hass_pretrain_report;

hass_status hass_pretrain_run(hass_pool *pool, const hass_pretrain_opts *o,
                              hass_pretrain_report *rep, hass_err *err);

/* A JSONL corpus as one token stream, as the run reads its data (above): records in file order,
 * tokenized in parallel on pool. *ids: *n ids, caller frees; *bytes: the file's size. Errors
 * name the file and line. (Shared with `hass perplexity`.) */
hass_status hass_corpus_tokenize(const hass_tokenizer *tok, const char *path, hass_pool *pool,
                                 int32_t **ids, int64_t *n, size_t *bytes, hass_err *err);

/* Exports params (layout of cfg) as a Hugging Face directory with the tokenizer's files:
 * config.json (bos/eos from the tokenizer), model.safetensors (dtype BF16 or F32),
 * tokenizer.json, tokenizer_config.json (when present beside it), generation_config.json. */
hass_status hass_pretrain_export(const hass_lm_config *cfg, const hass_lm_layout *L,
                                 const float *params, const char *tokenizer_json, const char *dir,
                                 hass_dtype dt, hass_err *err);

#endif
