/*
 * fuzz_gguf.c — libFuzzer target: hass_gguf_parse on arbitrary bytes. On success it walks
 * every key/value (strings, string arrays, numeric arrays) and every tensor's bytes, and runs
 * the scale check and the dequantization over quantized tensors, so any pointer or length
 * outside the input shows up under ASan.
 */
#include "formats/formats.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t elem_bytes(hass_gguf_type t) {
    switch (t) {
    case HASS_GGUF_U8:
    case HASS_GGUF_I8:
    case HASS_GGUF_BOOL:
        return 1;
    case HASS_GGUF_U16:
    case HASS_GGUF_I16:
        return 2;
    case HASS_GGUF_U64:
    case HASS_GGUF_I64:
    case HASS_GGUF_F64:
        return 8;
    default:
        return 4;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hass_gguf g;
    hass_err err = {0};
    if (hass_gguf_parse(&g, data, size, &err) == HASS_OK) {
        volatile size_t sink = 0;
        for (int64_t i = 0; i < g.n_kv; i++) {
            const hass_gguf_kv *kv = &g.kv[i];
            sink += strlen(kv->key);
            if (kv->type == HASS_GGUF_STRING)
                sink += strlen(kv->str) + kv->str_len;
            if (kv->type == HASS_GGUF_ARRAY && kv->arr_type == HASS_GGUF_STRING)
                for (uint64_t k = 0; k < kv->arr_n; k++)
                    sink += strlen(kv->arr_strs[k]) + kv->arr_lens[k];
            else if (kv->type == HASS_GGUF_ARRAY && kv->arr_n)
                sink += kv->arr_data[kv->arr_n * elem_bytes(kv->arr_type) - 1];
            uint64_t u;
            double f;
            sink += (size_t)hass_gguf_get_u64(&g, kv->key, &u) +
                    (size_t)hass_gguf_get_f64(&g, kv->key, &f);
        }
        for (int64_t i = 0; i < g.n_tensors; i++) {
            const hass_tensor *t = &g.tensors[i];
            if (t->nbytes)
                sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->nbytes - 1];
            HASS_ASSERT(hass_gguf_find_tensor(&g, t->name) == t);
            int64_t n = hass_tensor_numel(t);
            if (hass_dtype_is_quant(t->dtype) && n > 0 && n <= (1 << 16)) {
                HASS_ASSERT(t->nbytes == hass_dtype_bytes(t->dtype, (size_t)n));
                sink += (size_t)hass_ggml_check(t->dtype, t->data, t->nbytes);
                float *y = malloc((size_t)n * sizeof(float));
                HASS_ASSERT(y);
                hass_ggml_dequantize(t->dtype, t->data, y, n);
                sink += (size_t)(y[n - 1] != y[n - 1]);
                free(y);
            }
        }
        (void)sink;
    } else {
        HASS_ASSERT(err.msg[0] != 0 && err.code < 0);
    }
    hass_gguf_close(&g);
    return 0;
}
