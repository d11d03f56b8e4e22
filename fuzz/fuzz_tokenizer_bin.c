/*
 * fuzz_tokenizer_bin.c — libFuzzer target: the llama2.c tokenizer.bin loader (from memory,
 * with and without a vocabulary-size hint), then a short encode and decode when it loads.
 */
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void exercise(const hass_tokenizer *t) {
    static const char text[] = "Hello world, 123 \xc3\xa9\xe2\x96\x81!";
    int32_t ids[64];
    hass_err err = {0};
    int64_t n = hass_tokenizer_encode(t, text, sizeof text - 1, 1, 0, ids, 64, &err);
    for (int64_t i = 0; i < n && i < 64; i++) {
        size_t len = 0;
        const char *p = hass_tokenizer_piece(t, ids[i], &len);
        HASS_ASSERT(p != NULL && strlen(p) <= len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int hint = 0; hint < 2; hint++) {
        hass_err err = {0};
        hass_tokenizer *t =
            hass_tokenizer_load_bin_mem(data, size, hint ? 32 : 0, "tokenizer.bin", &err);
        if (t) {
            exercise(t);
            hass_tokenizer_free(t);
        } else {
            HASS_ASSERT(err.msg[0] != 0);
        }
    }
    return 0;
}
