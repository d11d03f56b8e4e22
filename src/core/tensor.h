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
    HASS_DTYPE_COUNT
} hass_dtype;

const char *hass_dtype_name(hass_dtype t);
/* Bytes for n elements of dtype t (Q8_0: n must be a multiple of 32). 0 on overflow. */
size_t hass_dtype_bytes(hass_dtype t, size_t n);

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
