/* tensor.c — dtype names, block sizes and byte sizes. */
#include "core/tensor.h"
#include "core/core.h"

static const struct {
    const char *name;
    int block; /* elements per block */
    int bytes; /* bytes per block */
} dtypes[HASS_DTYPE_COUNT] = {
    [HASS_DTYPE_F32] = {"F32", 1, 4},       [HASS_DTYPE_F16] = {"F16", 1, 2},
    [HASS_DTYPE_BF16] = {"BF16", 1, 2},     [HASS_DTYPE_Q8_0] = {"Q8_0", 32, 34},
    [HASS_DTYPE_I32] = {"I32", 1, 4},       [HASS_DTYPE_I64] = {"I64", 1, 8},
    [HASS_DTYPE_U8] = {"U8", 1, 1},         [HASS_DTYPE_Q4_0] = {"Q4_0", 32, 18},
    [HASS_DTYPE_Q4_1] = {"Q4_1", 32, 20},   [HASS_DTYPE_Q5_0] = {"Q5_0", 32, 22},
    [HASS_DTYPE_Q5_1] = {"Q5_1", 32, 24},   [HASS_DTYPE_Q4_K] = {"Q4_K", 256, 144},
    [HASS_DTYPE_Q5_K] = {"Q5_K", 256, 176}, [HASS_DTYPE_Q6_K] = {"Q6_K", 256, 210},
};

const char *hass_dtype_name(hass_dtype t) {
    return (unsigned)t < HASS_DTYPE_COUNT ? dtypes[t].name : "?";
}

int hass_dtype_block(hass_dtype t) {
    return (unsigned)t < HASS_DTYPE_COUNT ? dtypes[t].block : 1;
}

int hass_dtype_is_quant(hass_dtype t) {
    return hass_dtype_block(t) > 1;
}

size_t hass_dtype_bytes(hass_dtype t, size_t n) {
    if ((unsigned)t >= HASS_DTYPE_COUNT)
        return 0;
    size_t blk = (size_t)dtypes[t].block, r = 0;
    if (n % blk)
        return 0;
    return hass_mul_ok(n / blk, (size_t)dtypes[t].bytes, &r) ? r : 0;
}
