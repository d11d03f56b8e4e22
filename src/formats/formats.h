/*
 * formats — readers (and the safetensors and GGUF writers) for the files hass loads:
 * safetensors (single or sharded), GGUF v3, llama2.c checkpoints. Every parser validates
 * magic, version, header length and every offset/size with overflow-checked arithmetic
 * before the first dereference, and reports problems as one-line messages in hass_err.
 *
 * Tensors returned here are borrowed: data points into the read-only file mapping and stays
 * valid until the owning object is closed. Shapes are row-major, outermost first
 * (PyTorch order); GGUF's reversed ne[] order is converted on load.
 */
#ifndef HASS_FORMATS_H
#define HASS_FORMATS_H

#include "core/core.h"
#include "core/tensor.h"

/* ---------------- what a path holds (filekind.c) ---------------- */
typedef enum {
    HASS_FILE_MISSING = 0, /* no such file or directory */
    HASS_FILE_DIR,         /* a directory: a Hugging Face model, a draft head */
    HASS_FILE_GGUF,        /* the GGUF magic, or a .gguf name */
    HASS_FILE_SAFETENSORS, /* a .safetensors name, or no known name and a JSON header's shape */
    HASS_FILE_JSON,        /* a .json name (tokenizer.json) */
    HASS_FILE_LLAMA2C,     /* a .bin name: a llama2.c checkpoint or tokenizer.bin */
    HASS_FILE_OTHER        /* none of these */
} hass_file_kind;
/* Decided by the first bytes and the name only; the loaders validate the rest. */
hass_file_kind hass_file_kind_of(const char *path);

/* ---------------- JSON getters (json.c) ----------------
 * Member `key` of object o as a given type; a missing member, a member of another type, or an
 * o that is not an object all count as absent. */
struct cJSON;
const struct cJSON *hass_json_get(const struct cJSON *o, const char *key); /* NULL: absent */
const char *hass_json_str(const struct cJSON *o, const char *key);         /* NULL: absent */
/* 1 and *out if a number (int: an integer in [lo, hi]); 0 (and *out untouched) otherwise. */
int hass_json_num(const struct cJSON *o, const char *key, double *out);
int hass_json_int(const struct cJSON *o, const char *key, int64_t lo, int64_t hi, int64_t *out);
int hass_json_bool(const struct cJSON *o, const char *key, int def); /* def when absent */
/* Parses len bytes of text as one JSON value, strictly: a NUL byte, bytes other than
 * whitespace after the value, or a key repeated in one object (anywhere in the tree) are
 * HASS_STATUS_FORMAT errors naming `what` (the file), as is invalid JSON. NULL on error. */
struct cJSON *hass_json_parse_strict(const char *text, size_t len, const char *what, hass_err *err);
/* Writes o as cJSON_Print formats it to dir/name, atomically (o is borrowed; NULL: out of
 * memory, as a failed cJSON build leaves it). */
hass_status hass_json_save(const char *dir, const char *name, const struct cJSON *o, hass_err *err);

/* ---------------- safetensors ---------------- */
typedef struct {
    hass_mapfile mf;
    hass_tensor *tensors; /* owned */
    int n_tensors;
    char *metadata_json; /* the "__metadata__" object re-serialised, or NULL; owned */
} hass_safetensors;

/* Parses the 8-byte header length, the JSON header (dtype F32/F16/BF16/I32/I64/U8, shape,
 * data_offsets) and checks each tensor's byte range against the file and its shape/dtype. */
hass_status hass_safetensors_open(hass_safetensors *st, const char *path, hass_err *err);
/* Same, over a memory buffer (fuzzing); `data` must outlive st; st->mf stays empty. */
hass_status hass_safetensors_parse(hass_safetensors *st, const uint8_t *data, size_t size,
                                   hass_err *err);
void hass_safetensors_close(hass_safetensors *st);
const hass_tensor *hass_safetensors_find(const hass_safetensors *st, const char *name);

/* Writes tensors (data, dtype, shape, name taken from each hass_tensor) to path atomically
 * (temp name + rename). metadata: NULL or a JSON object of string values. */
hass_status hass_safetensors_write(const char *path, const hass_tensor *tensors, int n,
                                   const char *metadata_json, hass_err *err);
/* Notes on what the reader accepts (it follows Hugging Face's own checks):
 *   - header length < 64 MiB (Hugging Face allows 100 MB) and within the file; the JSON root is
 *     an object; only whitespace may follow the object inside the header; strings are valid
 *     JSON (escapes, surrogate pairs) and valid UTF-8; a tensor name is 1..159 bytes, no NUL;
 *   - each entry has "dtype", "shape" and "data_offsets" once each, in any order (other members
 *     are skipped); the integers are JSON numbers of exact integer value in [0, 2^53];
 *     "__metadata__" is an object of string values (as Hugging Face requires);
 *   - the parse allocates the tensor table (and the metadata text), never a tree of the header:
 *     its memory is bounded by what it returns;
 *   - shape: 0..4 non-negative dims; data_offsets [begin, end) relative to the data section,
 *     end - begin == dtype size * numel (overflow-checked);
 *   - tensors sorted by offset must tile the data section exactly: no overlaps, no holes, no
 *     trailing bytes (as Hugging Face requires);
 *   - every non-empty tensor's first byte is aligned to its element size within the file (F32 at
 *     a multiple of 4, ...), so the borrowed pointers can be read as typed arrays. Files written by
 * Hugging Face and by hass_safetensors_write always satisfy this. st->tensors are in file (offset)
 * order. The writer orders tensors by element size (largest first, stable), pads the header with
 * spaces to a multiple of 8, like Hugging Face. */

/* A model split over several safetensors files (or just one). */
typedef struct {
    hass_safetensors *shards; /* n_shards open files; owned */
    int n_shards;
    char **shard_files;          /* their file names (relative to the directory); owned */
    const hass_tensor **by_name; /* all n_tensors tensors across shards, sorted by name */
    int n_tensors;
    char *index_metadata_json; /* "metadata" of the index file re-serialised, or NULL; owned */
} hass_st_set;

/* Opens DIR/model.safetensors or, if absent, DIR/model.safetensors.index.json and every shard
 * named in its weight_map. Errors: a shard name with '/' or "..", a name listed in the
 * weight_map that its shard lacks, a tensor present in two shards. On error set is empty. */
hass_status hass_safetensors_open_dir(hass_st_set *set, const char *dir, hass_err *err);
void hass_st_set_close(hass_st_set *set); /* safe on a zeroed or closed set */
/* Binary search by name; borrowed, valid until hass_st_set_close. NULL if absent. */
const hass_tensor *hass_st_set_find(const hass_st_set *set, const char *name);

/* ---------------- GGUF v3 ---------------- */
typedef enum {
    HASS_GGUF_U8 = 0,
    HASS_GGUF_I8 = 1,
    HASS_GGUF_U16 = 2,
    HASS_GGUF_I16 = 3,
    HASS_GGUF_U32 = 4,
    HASS_GGUF_I32 = 5,
    HASS_GGUF_F32 = 6,
    HASS_GGUF_BOOL = 7,
    HASS_GGUF_STRING = 8,
    HASS_GGUF_ARRAY = 9,
    HASS_GGUF_U64 = 10,
    HASS_GGUF_I64 = 11,
    HASS_GGUF_F64 = 12,
} hass_gguf_type;

typedef struct {
    const char *key; /* NUL-terminated copy, owned by the hass_gguf */
    hass_gguf_type type;
    /* scalars */
    union {
        uint64_t u;
        int64_t i;
        double f;
    } v;
    const char *str; /* STRING: NUL-terminated copy (owned); */
    size_t str_len;
    /* ARRAY */
    hass_gguf_type arr_type;
    uint64_t arr_n;
    const uint8_t *arr_data;  /* numeric arrays: raw little-endian elements in the mapping */
    const char **arr_strs;    /* string arrays: arr_n NUL-terminated copies (owned) */
    const uint32_t *arr_lens; /* their byte lengths (strings may contain NUL bytes) */
} hass_gguf_kv;

typedef struct {
    hass_mapfile mf;
    uint32_t version;
    hass_gguf_kv *kv;
    int64_t n_kv;
    hass_tensor *tensors; /* names as stored (e.g. "blk.0.attn_q.weight") */
    int64_t n_tensors;
    size_t alignment, data_offset;
    void *owned; /* internal string storage */
} hass_gguf;

/* What the parser accepts: magic "GGUF", version 3 (or 2); n_tensors and n_kv bounded by the
 * bytes left before anything is allocated; every string and array length checked against the
 * bytes left; the 13 value types; arrays of arrays are rejected (HASS_STATUS_UNSUPPORTED);
 * general.alignment (default 32) an unsigned integer power of two <= 2^20; tensors with
 * 1..4 dims, ggml types F32 (0), F16 (1), I32 (26), Q4_0 (2), Q4_1 (3), Q5_0 (6), Q5_1 (7), Q8_0
 * (8), Q4_K (12), Q5_K (13), Q6_K (14), BF16 (30), block types with rows (ne[0]) a multiple of
 * their block (32 or 256; kept quantized, as stored). Any other ggml type makes the whole open fail
 * with HASS_STATUS_UNSUPPORTED naming the tensor and type (we never expose a tensor whose bytes we
 * cannot size). Tensor offsets are multiples of the alignment, relative to the aligned data
 * section; each tensor's bytes lie inside the file and no two overlap. Shapes are reversed to
 * row-major outermost-first: token_embd ne=[D, V] -> shape (V, D). RoPE note: GGUF files of arch
 * "llama" store q/k rows in the interleaved (adjacent pairs) layout, as llama2.c does; Hugging Face
 * safetensors store them for half rotation. */
hass_status hass_gguf_open(hass_gguf *g, const char *path, hass_err *err);
hass_status hass_gguf_parse(hass_gguf *g, const uint8_t *data, size_t size, hass_err *err);
void hass_gguf_close(hass_gguf *g);
const hass_gguf_kv *hass_gguf_find(const hass_gguf *g, const char *key);
/* Typed getters: return 1 and set *out if the key exists with a compatible scalar type. */
int hass_gguf_get_u64(const hass_gguf *g, const char *key, uint64_t *out);
int hass_gguf_get_f64(const hass_gguf *g, const char *key, double *out);
const char *hass_gguf_get_str(const hass_gguf *g, const char *key); /* NULL if absent */
const hass_tensor *hass_gguf_find_tensor(const hass_gguf *g, const char *name);

/* ---- GGUF writer ----
 * Metadata to write, in order: each entry is a hass_gguf_kv as the reader returns it (scalars
 * in v.u / v.i / v.f by type, strings in str/str_len, arrays in arr_*), deep-copied into the
 * list on add, so what a caller passes need not outlive the call. Every add is checked: the
 * key (1..65535 printable ASCII bytes, unique in the list), the value against its type (u8
 * <= 255, bool 0/1, a finite f32 within float range, ...), no nested arrays, at most 2^32
 * array elements, strings of at most 2^30 bytes; a refused entry leaves the list unchanged. */
typedef struct {
    hass_gguf_kv *kv; /* n entries, owned */
    int64_t n, cap;
    void *owned; /* internal storage of keys and values */
} hass_gguf_kvs;

hass_status hass_gguf_kvs_add(hass_gguf_kvs *l, const hass_gguf_kv *kv, hass_err *err);
hass_status hass_gguf_kvs_u32(hass_gguf_kvs *l, const char *key, uint32_t v, hass_err *err);
hass_status hass_gguf_kvs_f32(hass_gguf_kvs *l, const char *key, float v, hass_err *err);
hass_status hass_gguf_kvs_bool(hass_gguf_kvs *l, const char *key, int v, hass_err *err);
hass_status hass_gguf_kvs_str(hass_gguf_kvs *l, const char *key, const char *s, hass_err *err);
/* n numeric elements of type et (not STRING/ARRAY) in host (little-endian) layout */
hass_status hass_gguf_kvs_array(hass_gguf_kvs *l, const char *key, hass_gguf_type et,
                                const void *data, uint64_t n, hass_err *err);
/* n strings; lens NULL: NUL-terminated strings */
hass_status hass_gguf_kvs_strings(hass_gguf_kvs *l, const char *key, const char *const *strs,
                                  const uint32_t *lens, uint64_t n, hass_err *err);
const hass_gguf_kv *hass_gguf_kvs_find(const hass_gguf_kvs *l, const char *key); /* borrowed */
void hass_gguf_kvs_free(hass_gguf_kvs *l); /* safe on a zeroed list */

/* Produces the bytes of tensor i (tensors[i].nbytes of them) into dst. */
typedef hass_status (*hass_gguf_fill_fn)(void *ctx, int64_t i, void *dst, hass_err *err);

/* Writes a GGUF v3 file atomically (path.tmp.<pid>, fsync, rename): the header, the n_kv
 * entries of kv in order (checked as hass_gguf_kvs_add checks them, keys unique), the tensor
 * infos (shapes reversed to ggml's innermost-first order), then each tensor's data at an offset
 * padded to the alignment and itself padded, as llama.cpp's writer does. The alignment is 32
 * unless kv holds general.alignment, which must then be a u32 power of two <= 2^20 (llama.cpp
 * reads it as a u32). Tensors: names of 1..63 bytes (llama.cpp's limit), unique; 1..4 dims;
 * dtype F32, F16, BF16 or a GGUF block type (rows a multiple of its block); nbytes matching the
 * shape. Their data
 * comes from t->data, or, when fill is non-NULL, from fill(ctx, i, buf): one buffer of the
 * largest tensor's size is reused, so a model is streamed, never held twice. Nothing is
 * written unless every check passes; on any error the temp file is removed. */
hass_status hass_gguf_write(const char *path, const hass_gguf_kv *kv, int64_t n_kv,
                            const hass_tensor *tensors, int64_t n_tensors, hass_gguf_fill_fn fill,
                            void *ctx, hass_err *err);

/* ---------------- llama2.c checkpoint (legacy v0 header) ---------------- */
typedef struct {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
    int shared_classifier;
} hass_llama2c_config;

/* Layout: 7 int32 header, then f32 weights in llama2.c's order (see llama2c.c). Limits: every
 * header value positive (vocab_size may be negative = separate classifier), dim % n_heads == 0,
 * n_heads % n_kv_heads == 0, head_size even, dims <= 2^20, layers <= 4096, vocab <= 2^24,
 * seq_len <= 2^24; the expected size must fit in the file ("truncated: need N bytes, file has
 * M"); trailing bytes are allowed. q/k rows are in llama2.c's layout: RoPE rotates adjacent
 * pairs (interleaved), unlike Hugging Face checkpoints (half rotation).
 * lm_head.weight points at the embedding's data when shared_classifier. */
typedef struct {
    hass_mapfile mf;
    hass_llama2c_config cfg;
    /* tensors renamed to the Hugging Face names (model.embed_tokens.weight,
     * model.layers.N.self_attn.q_proj.weight, ..., lm_head.weight), F32. */
    hass_tensor *tensors;
    int n_tensors;
} hass_llama2c;

hass_status hass_llama2c_open(hass_llama2c *m, const char *path, hass_err *err);
hass_status hass_llama2c_parse(hass_llama2c *m, const uint8_t *data, size_t size, hass_err *err);
void hass_llama2c_close(hass_llama2c *m);

/* ---------------- GGML quantized blocks (ggml_quant.c) ----------------
 * The block types of tensor.h (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) as llama.cpp's
 * ggml defines them; layouts in ggml_quant.c. n is a multiple of the type's block size. */
/* dst (n floats) = ggml's dequantize_row_<t> of src, bit for bit (signs of zeros included). */
void hass_ggml_dequantize(hass_dtype t, const void *src, float *dst, int64_t n);
/* dst (hass_dtype_bytes(t, n) bytes) = ggml's reference quantizer quantize_row_<t>_ref of the n
 * values of src (no importance matrix: what llama-quantize writes without --imatrix), byte for
 * byte. HASS_STATUS_ARG if t is not a block type or a value is not finite, HASS_STATUS_SHAPE if
 * n is not a multiple of the block. Deterministic; thread-safe. */
hass_status hass_ggml_quantize(hass_dtype t, const float *src, void *dst, int64_t n, hass_err *err);
/* What ggml_validate_row_data checks of the first nbytes of src: every block's f16 scale
 * (and min) finite. Returns the index of the first bad block, or -1 if all are good. */
int64_t hass_ggml_check(hass_dtype t, const void *src, size_t nbytes);
/* The 8 6-bit scales and mins of a Q4_K/Q5_K block from its 12 packed scale bytes. */
void hass_ggml_scale_min(const uint8_t *scales12, uint8_t sc[8], uint8_t m[8]);

#endif
