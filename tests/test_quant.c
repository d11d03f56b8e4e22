/*
 * test_quant.c — the GGUF quantized block types: dequantization and the reference quantizers
 * against llama.cpp's own output (shared/models/quant/blocks.gguf: for every type T, T.src,
 * ggml's quantization T.q and ggml's dequantization T.deq), bit for bit; the scale check.
 */
#include "check.h"
#include "formats/formats.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const hass_dtype qtypes[] = {HASS_DTYPE_Q8_0, HASS_DTYPE_Q4_0, HASS_DTYPE_Q4_1,
                                    HASS_DTYPE_Q5_0, HASS_DTYPE_Q5_1, HASS_DTYPE_Q4_K,
                                    HASS_DTYPE_Q5_K, HASS_DTYPE_Q6_K};
#define NQT (int)(sizeof qtypes / sizeof qtypes[0])

/* blocks.gguf: dequantize T.q == T.deq bit for bit, quantize T.src == T.q byte for byte, both
 * for the whole tensor and row by row. */
static void test_blocks_fixture(void) {
    const char *path = check_shared("models/quant/blocks.gguf");
    if (!path) {
        CHECK_SKIP("shared/models/quant/blocks.gguf not found");
        return;
    }
    hass_gguf g;
    hass_err err = {0};
    if (hass_gguf_open(&g, path, &err) != HASS_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    for (int k = 0; k < NQT; k++) {
        hass_dtype t = qtypes[k];
        char nm[3][32];
        snprintf(nm[0], sizeof nm[0], "%s.src", hass_dtype_name(t));
        snprintf(nm[1], sizeof nm[1], "%s.q", hass_dtype_name(t));
        snprintf(nm[2], sizeof nm[2], "%s.deq", hass_dtype_name(t));
        const hass_tensor *src = hass_gguf_find_tensor(&g, nm[0]);
        const hass_tensor *q = hass_gguf_find_tensor(&g, nm[1]);
        const hass_tensor *deq = hass_gguf_find_tensor(&g, nm[2]);
        CHECK_MSG(src && q && deq, "%s: tensors missing", hass_dtype_name(t));
        if (!src || !q || !deq)
            continue;
        CHECK_EQ_INT(q->dtype, t);
        int64_t rows = q->shape[0], cols = q->shape[1], n = rows * cols;
        size_t rb = hass_dtype_bytes(t, (size_t)cols);
        float *y = malloc((size_t)n * sizeof(float));
        uint8_t *qq = malloc(q->nbytes);
        HASS_ASSERT(y && qq);
        hass_ggml_dequantize(t, q->data, y, n);
        CHECK_MSG(memcmp(y, deq->data, (size_t)n * sizeof(float)) == 0,
                  "%s: dequantization differs from ggml's", hass_dtype_name(t));
        int neg0 = 0;
        for (int64_t i = 0; i < n; i++)
            neg0 += y[i] == 0 && signbit(y[i]);
        /* the fixture has -0.0 where ggml's product has a negative factor (README) */
        if (t == HASS_DTYPE_Q4_0 || t == HASS_DTYPE_Q5_0 || t == HASS_DTYPE_Q6_K ||
            t == HASS_DTYPE_Q8_0)
            CHECK_MSG(neg0 > 0, "%s: no negative zeros", hass_dtype_name(t));
        CHECK_EQ_INT(hass_ggml_quantize(t, src->data, qq, n, &err), HASS_OK);
        CHECK_MSG(memcmp(qq, q->data, q->nbytes) == 0, "%s: quantization differs from ggml's",
                  hass_dtype_name(t));
        int rows_ok = 1;
        for (int64_t r = 0; r < rows; r++) {
            memset(qq, 0xa5, rb);
            hass_ggml_quantize(t, (const float *)src->data + r * cols, qq, cols, &err);
            rows_ok &= memcmp(qq, (const uint8_t *)q->data + (size_t)r * rb, rb) == 0;
            hass_ggml_dequantize(t, (const uint8_t *)q->data + (size_t)r * rb, y, cols);
            rows_ok &= memcmp(y, (const float *)deq->data + r * cols, (size_t)cols * 4) == 0;
        }
        CHECK_MSG(rows_ok, "%s: row by row != whole tensor", hass_dtype_name(t));
        CHECK_EQ_INT(hass_ggml_check(t, q->data, q->nbytes), -1);
        free(y), free(qq);
    }
    hass_gguf_close(&g);
}

/* The scale check finds an infinite or NaN f16 scale (d, or m / dmin) in any block; the
 * quantizer refuses non-finite input and sizes that are not whole blocks. */
static void test_check_and_errors(void) {
    static const int scale_off[NQT][2] = {{0, -1}, {0, -1}, {0, 2}, {0, -1},
                                          {0, 2},  {0, 2},  {0, 2}, {208, -1}};
    hass_err err = {0};
    for (int k = 0; k < NQT; k++) {
        hass_dtype t = qtypes[k];
        int64_t n = 4 * hass_dtype_block(t);
        size_t bb = hass_dtype_bytes(t, (size_t)hass_dtype_block(t));
        float *x = malloc((size_t)n * sizeof(float));
        uint8_t *q = malloc(4 * bb);
        HASS_ASSERT(x && q);
        for (int64_t i = 0; i < n; i++)
            x[i] = sinf((float)i * 0.37f);
        CHECK_EQ_INT(hass_ggml_quantize(t, x, q, n, &err), HASS_OK);
        CHECK_EQ_INT(hass_ggml_check(t, q, 4 * bb), -1);
        for (int s = 0; s < 2; s++) {
            int off = scale_off[k][s];
            if (off < 0)
                continue;
            uint8_t keep[2];
            memcpy(keep, q + 2 * bb + off, 2);
            const uint16_t bad[2] = {0x7c00 /* inf */, 0xfe01 /* nan */};
            for (int b = 0; b < 2; b++) {
                memcpy(q + 2 * bb + off, &bad[b], 2);
                CHECK_EQ_INT(hass_ggml_check(t, q, 4 * bb), 2);
            }
            memcpy(q + 2 * bb + off, keep, 2);
        }
        x[5] = NAN;
        CHECK_EQ_INT(hass_ggml_quantize(t, x, q, n, &err), HASS_STATUS_ARG);
        x[5] = INFINITY;
        CHECK_EQ_INT(hass_ggml_quantize(t, x, q, n, &err), HASS_STATUS_ARG);
        x[5] = 0;
        CHECK_EQ_INT(hass_ggml_quantize(t, x, q, n - 1, &err), HASS_STATUS_SHAPE);
        free(x), free(q);
    }
    float x[32] = {0};
    uint8_t q[64];
    CHECK_EQ_INT(hass_ggml_quantize(HASS_DTYPE_F32, x, q, 32, &err), HASS_STATUS_ARG);
}

int main(void) {
    check_init("test_quant");
    test_blocks_fixture();
    test_check_and_errors();
    return check_exit();
}
