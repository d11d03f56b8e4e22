/*
 * tensor.h — the small tensor descriptor shared by the loaders and the model: a dtype, a shape
 * and a borrowed pointer (usually into a read-only file mapping).
 */
#ifndef HASS_TENSOR_H
#define HASS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    HASS_DTYPE_F32 = 0,
    HASS_DTYPE_F16,
    HASS_DTYPE_BF16,
    HASS_DTYPE_Q8_0, /* GGUF: blocks of 32: f16 scale + 32 int8 (34 bytes) */
    HASS_DTYPE_I32,
    HASS_DTYPE_I64,
    HASS_DTYPE_U8,
    /* GGUF (ggml) quantized blocks, kept as stored (layouts in formats/ggml_quant.c) */
    HASS_DTYPE_Q4_0, /* 32: f16 d + 16 bytes of nibbles (18 bytes) */
    HASS_DTYPE_Q4_1, /* 32: f16 d, f16 m + 16 bytes of nibbles (20 bytes) */
    HASS_DTYPE_Q5_0, /* 32: f16 d + 4 bytes of 5th bits + 16 bytes of nibbles (22 bytes) */
    HASS_DTYPE_Q5_1, /* 32: f16 d, f16 m + 4 + 16 bytes (24 bytes) */
    HASS_DTYPE_Q4_K, /* 256: f16 d, dmin + 12 bytes of 6-bit scales/mins + 128 (144 bytes) */
    HASS_DTYPE_Q5_K, /* 256: as Q4_K + 32 bytes of 5th bits (176 bytes) */
    HASS_DTYPE_Q6_K, /* 256: 128 + 64 bytes of 6-bit q, 16 int8 scales, f16 d (210 bytes) */
    HASS_DTYPE_COUNT
} hass_dtype;

const char *hass_dtype_name(hass_dtype t);
/* Bytes for n elements of dtype t (block types: n must be a multiple of the block size, else
 * 0). 0 on overflow. */
size_t hass_dtype_bytes(hass_dtype t, size_t n);
/* Elements per block: 32 (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), 256 (Q4_K, Q5_K, Q6_K), else 1. */
int hass_dtype_block(hass_dtype t);
/* 1 for the GGUF block types above (Q8_0 included). */
int hass_dtype_is_quant(hass_dtype t);

#define HASS_MAX_DIMS 4
typedef struct {
    char name[160];
    hass_dtype dtype;
    int ndim;
    int64_t shape[HASS_MAX_DIMS]; /* row-major, outermost first (PyTorch order) */
    const void *data;             /* borrowed */
    size_t nbytes;
} hass_tensor;

static inline int64_t hass_tensor_numel(const hass_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

#endif
