/*
 * trainer_run.h — a whole draft-head training run (`hass train-draft`): feature shards in,
 * a draft directory out, resumable bit-exactly (HASS.md sections 3-5).
 *
 * Per optimizer step: G micro-batches of B sequences from the feature store (visited in a
 * seeded random order per epoch), each cut to seq_len and shifted as in HASS.md 3 (input f_i,
 * token t_{i+1}, target f_{i+1}, mask m_i, the last position of a sequence masked), right-
 * padded to the longest sequence of the micro-batch; uniform noise (U - 0.5) * noise_std *
 * 512 / L on the input features only; hass_train_grad per micro-batch, gradients averaged over
 * the G micro-batches (G = 1: used as they are), then AdamW (value clipping) at the linear
 * warmup/decay learning rate.
 *
 * Files in out_dir: the draft itself (config.json + model.safetensors, EAGLE layout, f32;
 * loadable by `hass generate -d out_dir`) and trainer_state.safetensors (params, AdamW m and v
 * as f32 tensors; metadata: step, adam_t, noise rng state, epoch, cursor and the run's
 * configuration). Both are written atomically every ckpt_every steps and at the end. A run
 * whose out_dir holds a state with the same configuration resumes from it and produces the
 * same parameters as an uninterrupted run; a different configuration is refused.
 */
#ifndef HASS_TRAINER_RUN_H
#define HASS_TRAINER_RUN_H

#include "model/model.h"
#include "train/train.h"

typedef struct {
    const char *data_dir;   /* feature store (featstore.h) */
    const char *out_dir;    /* draft + trainer state */
    const char *init_from;  /* NULL, or a draft directory whose tensors start the run */
    const char *model_path; /* recorded in the draft's config.json */
    hass_train_opts topts;  /* n, K, loss weights */
    int64_t steps;          /* optimizer steps; 0 = from epochs */
    double epochs;          /* used when steps == 0 */
    int64_t batch, seq_len, grad_accum;
    float lr;
    double warmup_frac; /* used when warmup < 0 */
    int64_t warmup;
    float weight_decay, clip, noise_std;
    uint64_t seed;
    int64_t ckpt_every;   /* 0 = only at the end */
    int has_bias;         /* fc.bias (default 1) */
    int allow_incomplete; /* train on a feature store marked incomplete */
    int64_t stop_at;      /* stop (with a checkpoint) once this many steps are done; 0 = never */
    hass_dtype dtype;     /* of the draft's matrices in out_dir: F32 (default) or BF16 (to ship; the
                             trainer state keeps f32 either way) */
} hass_train_run_opts;

/* EAGLE-1 defaults for everything but the method: lr 3e-5, warmup 1%, wd 0.01, clip 0.5,
 * noise 0.2, batch 4, seq_len 2048, grad_accum 1, epochs 1, n = 3, K = 10, w = 1, fc bias on
 * (EAGLE's training script builds its FC with one; its LLaMA-2 drafts have fc.bias). */
hass_train_run_opts hass_train_run_opts_default(void);

typedef struct {
    int64_t step, total; /* steps done (after this one), total steps */
    float lr;
    hass_train_stats st; /* mask-weighted mean over the micro-batches */
    int64_t tokens;      /* real tokens in this step */
    double step_seconds, tokens_per_s, elapsed;
    int epoch;
} hass_train_log;

typedef void (*hass_train_log_fn)(void *user, const hass_train_log *l);

typedef struct {
    int64_t start_step, steps_done, total_steps;
    int64_t tokens; /* real tokens trained on in this run */
    double seconds; /* wall time of the steps in this run */
    double gflop;   /* analytic FLOPs of this run's steps (bench/bench_train.c's count) */
    double tokens_per_s, gflops;
    double last_loss;
    int complete;
} hass_train_report;

/* Runs (or resumes) training. fn (may be NULL) is called after every step. Errors: bad options
 * (HASS_STATUS_ARG), a store for another model (HASS_STATUS_SHAPE), unreadable / malformed
 * files, a state in out_dir from a different configuration (HASS_STATUS_ARG). */
hass_status hass_train_run(const hass_model *m, hass_pool *pool, const hass_train_run_opts *o,
                           hass_train_log_fn fn, void *user, hass_train_report *rep, hass_err *err);

/* Loads the tensors of a draft directory into a flat parameter array of layout L (shapes must
 * match; fc.bias must be present exactly when c->has_bias). */
hass_status hass_train_load_draft(const char *dir, const hass_draft_config *c,
                                  const hass_draft_layout *L, float *params, hass_err *err);

#endif
