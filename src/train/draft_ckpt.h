/*
 * draft_ckpt.h — the trainer's flat parameters <-> draft directories (EAGLE layout).
 */
#ifndef HASS_DRAFT_CKPT_H
#define HASS_DRAFT_CKPT_H

#include "draft/draft.h"
#include "train/train.h"

/* The draft shapes for target m (d, heads, ffn and vocabulary of the target) and its RoPE:
 * the target's theta and scaling (recorded in the draft's config.json when it is written), in
 * the half style, as draft heads are Hugging Face modules. */
hass_draft_config hass_draft_config_for(const hass_model *m, int has_bias);

/* Writes params (layout L) as a draft directory; matrices in dtype (F32 or BF16). */
hass_status hass_draft_write_params(const char *dir, const hass_model_config *target_cfg,
                                    const hass_draft_config *c, const hass_draft_layout *L,
                                    const float *params, hass_dtype dtype, const char *target_name,
                                    hass_err *err);

/* A freshly initialised draft for m (hass_draft_params_init with seed), written to dir. */
hass_status hass_draft_write_fresh(const char *dir, const hass_model *m, int has_bias,
                                   uint64_t seed, hass_dtype dtype, const char *target_name,
                                   hass_err *err);

/* Stores vocab[0..n) (distinct target ids) as the draft's reduced vocabulary (draft_vocab
 * tensor; model.safetensors rewritten atomically). hass_draft_load checks it. */
hass_status hass_draft_write_vocab(const char *draft_dir, const int32_t *vocab, int64_t n,
                                   hass_err *err);

/* Gives the draft in draft_dir a reduced vocabulary: the n_vocab target tokens seen most often
 * at trained positions of the feature shards in feat_dir (ties: lower id), stored as the
 * draft_vocab tensor (model.safetensors is rewritten atomically). Drafting then scores only
 * those rows of the LM head; verification still uses all of them, so outputs do not change. */
hass_status hass_draft_set_vocab(const char *draft_dir, const hass_model *m, const char *feat_dir,
                                 int64_t n_vocab, hass_err *err);

#endif
