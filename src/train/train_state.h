/*
 * train_state.h — the trainer state file both trainers checkpoint (train-draft's and
 * pretrain's trainer_state.safetensors): f32 tensors params, adam_m and adam_v of n elements
 * each, and string metadata (decimal counters, the rng in hex, the product kind, the run's
 * configuration string).
 */
#ifndef HASS_TRAIN_STATE_H
#define HASS_TRAIN_STATE_H

#include "core/core.h"

#define HASS_TRAIN_STATE_FILE "trainer_state.safetensors"

typedef struct {
    int64_t step, adam_t;  /* optimizer steps done; AdamW's t (always equal to step) */
    int64_t epoch, cursor; /* train-draft: data position; -1 when absent */
    int64_t tokens;        /* pretrain: tokens trained on; -1 when absent */
    uint64_t rng;          /* train-draft: the noise generator's state */
    int has_rng;
    char gemm[32]; /* the product kind ("" when absent) */
    char *config;  /* the run's configuration string (owned; NULL after a failed read) */
} hass_train_state;

/* Writes dir/trainer_state.safetensors atomically: s's counters (those >= 0), s->config and
 * the three n-element arrays. */
hass_status hass_train_state_write(const char *dir, const hass_train_state *s, const float *params,
                                   const float *m, const float *v, size_t n, hass_err *err);

/* Reads a trainer state from memory (name for messages) into s and the three n-element arrays
 * (which are written only when everything checks). Every check is a one-line
 * HASS_STATUS_FORMAT error, never an assertion: metadata step, adam_t and config present;
 * every counter a decimal integer in [0, max_step] (epoch, cursor and tokens in [0, 2^62]);
 * adam_t == step; the three tensors present, F32, 1-D of n elements (else HASS_STATUS_SHAPE,
 * with s->config set: the caller reports a different configuration first); params and adam_m
 * finite, adam_v finite and >= 0. The caller checks what depends on its run (the configuration
 * string, the data position) and calls hass_train_state_free after success and failure alike. */
hass_status hass_train_state_parse(const uint8_t *data, size_t size, const char *name,
                                   int64_t max_step, size_t n, float *params, float *m, float *v,
                                   hass_train_state *s, hass_err *err);
/* The same from dir/trainer_state.safetensors: 1 read, 0 no such file, -1 error (err set). */
int hass_train_state_read(const char *dir, int64_t max_step, size_t n, float *params, float *m,
                          float *v, hass_train_state *s, hass_err *err);
void hass_train_state_free(hass_train_state *s);
/* The run goes on with the products it was trained with (s->gemm) when this machine has them;
 * otherwise a warning and the current default. */
void hass_train_state_use_gemm(const hass_train_state *s, const char *dir);

#endif
