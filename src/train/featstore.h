/*
 * featstore.h — feature shards: what `hass datagen` writes and `hass train-draft` reads
 * (HASS.md section 3, DESIGN.md section 4).
 *
 * A feature store is a directory:
 *   index.json       {"format": "hass-features", "version": 1, "d", "dtype": "bf16",
 *                     "model": {"path", "fingerprint", "d", "V", "n_layers", "H", "Hkv", "ffn"},
 *                     "args": "<the datagen arguments that decide the contents>",
 *                     "records_consumed": N (input records fully written to the shards below),
 *                     "complete": true|false,
 *                     "shards": [{"file": "shard-00000.bin", "sequences": S, "tokens": T}, ...]}
 *   shard-NNNNN.bin  header (40 bytes, little-endian):
 *                       char magic[8] = "HASSFEAT", uint32 version = 1, uint32 dtype = 2 (bf16),
 *                       int64 d, int64 n_sequences, uint64 model fingerprint
 *                     then per sequence: int64 len, int32 ids[len], uint8 mask[len],
 *                     uint16 bf16 features[len][d] (post-final-norm target features f_i).
 * Every file is written to a temporary name, fsynced and renamed (hass_write_file_atomic); the
 * index is rewritten after each shard, so a crash leaves a consistent store that resumes after
 * its last listed shard.
 *
 * The model fingerprint is a 64-bit FNV-1a hash of the target's shapes, its embedding table,
 * final norm and LM head bytes: a store made with another model is rejected on open.
 */
#ifndef HASS_FEATSTORE_H
#define HASS_FEATSTORE_H

#include "core/core.h"
#include "model/model.h"

#define HASS_FEATSTORE_VERSION 1
#define HASS_FEATSTORE_MAGIC "HASSFEAT"
#define HASS_FEATSTORE_HEADER 40

/* FNV-1a 64 over the model's shapes, embedding, final norm and LM head. */
uint64_t hass_featstore_fingerprint(const hass_model *m);

/* ---- reading ---- */
typedef struct hass_featstore hass_featstore;

/* Opens a store. m: the target to check the fingerprint and d against (NULL: no check).
 * Every shard is mapped and walked once: magic, version, dtype, d, fingerprint, the per-
 * sequence lengths against the file size, counts against the index. Errors (NULL + err):
 * HASS_STATUS_IO (missing files), HASS_STATUS_FORMAT (bad JSON, wrong magic/version, truncated
 * or inconsistent shard), HASS_STATUS_SHAPE (store made for another model). */
hass_featstore *hass_featstore_open(const char *dir, const hass_model *m, hass_err *err);
/* The same; a store whose index is marked incomplete (datagen stopped before the end) opens
 * only with allow_incomplete (hass_featstore_open refuses it). Also refused: a shard listed
 * twice, counts the shard sizes cannot hold, token ids outside [0, V) of m, mask bytes other
 * than 0 and 1. */
hass_featstore *hass_featstore_open_ex(const char *dir, const hass_model *m, int allow_incomplete,
                                       hass_err *err);
/* The index parser and the shard walker over memory (fuzzing): index.json's text and the
 * bytes of its first listed shard. */
hass_status hass_featstore_check_mem(const char *index, size_t index_len, const uint8_t *shard,
                                     size_t shard_len, hass_err *err);
void hass_featstore_close(hass_featstore *fs); /* NULL-safe */

int64_t hass_featstore_count(const hass_featstore *fs);          /* sequences */
int64_t hass_featstore_tokens(const hass_featstore *fs);         /* tokens over all sequences */
int64_t hass_featstore_dim(const hass_featstore *fs);            /* d */
int64_t hass_featstore_len(const hass_featstore *fs, int64_t i); /* length of sequence i */

/* Copies the first min(len, max_len) positions of sequence i (0 <= i < count): ids (int32),
 * mask (uint8) and features converted to f32 (n x d); any output may be NULL. Returns the
 * number of positions copied. */
int64_t hass_featstore_read(const hass_featstore *fs, int64_t i, int64_t max_len, int32_t *ids,
                            uint8_t *mask, float *feat);

/* ---- writing ---- */
typedef struct hass_featstore_writer hass_featstore_writer;

/* Opens dir for writing (created if missing). If dir/index.json exists it must have the same
 * fingerprint, d and args: the writer then resumes after the shards it lists (see
 * hass_featstore_writer_resume_records); otherwise HASS_STATUS_ARG ("made with different
 * arguments / another model"). shard_tokens: a shard is written once it holds at least that
 * many tokens. model_path and args are recorded in the index. */
hass_featstore_writer *hass_featstore_writer_open(const char *dir, const hass_model *m,
                                                  const char *model_path, const char *args,
                                                  int64_t shard_tokens, hass_err *err);
/* Input records already consumed by the listed shards (0 for a fresh store). */
int64_t hass_featstore_writer_resume_records(const hass_featstore_writer *w);
/* 1 if the existing index says the store is complete. */
int hass_featstore_writer_complete(const hass_featstore_writer *w);
/* Shards written so far (listed in the index). */
int64_t hass_featstore_writer_shards(const hass_featstore_writer *w);

/* Appends one sequence (len >= 1; feat: (len, d) f32, rounded to bf16). records_after: the
 * number of input records consumed once this sequence is stored; it is what the index records
 * when the shard holding this sequence is flushed. Writes a shard when full. */
hass_status hass_featstore_writer_add(hass_featstore_writer *w, int64_t len, const int32_t *ids,
                                      const uint8_t *mask, const float *feat, int64_t records_after,
                                      hass_err *err);
/* Notes that records were consumed without producing a sequence (skipped records). */
void hass_featstore_writer_skip(hass_featstore_writer *w, int64_t records_after);
/* Flushes the pending shard (if any) and rewrites the index with complete = done. */
hass_status hass_featstore_writer_finish(hass_featstore_writer *w, int done, hass_err *err);
void hass_featstore_writer_destroy(hass_featstore_writer *w); /* NULL-safe; does not flush */

/* Bytes one sequence of len tokens takes in a shard. */
size_t hass_featstore_seq_bytes(int64_t len, int64_t d);

#endif
