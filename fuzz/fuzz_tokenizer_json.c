/*
 * fuzz_tokenizer_json.c — libFuzzer target: the tokenizer.json loader (from memory) on
 * arbitrary bytes, then a short encode and a piece lookup when it loads.
 */
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hass_err err = {0};
    hass_tokenizer *t = hass_tokenizer_load_json_mem((const char *)data, size, &err);
    if (t) {
        static const char text[] = "Hello world, <s> 123 \xc3\xa9\xe2\x96\x81!";
        int32_t ids[64];
        int64_t n = hass_tokenizer_encode(t, text, sizeof text - 1, 1, 1, ids, 64, &err);
        for (int64_t i = 0; i < n && i < 64; i++) {
            size_t len = 0;
            const char *p = hass_tokenizer_piece(t, ids[i], &len);
            HASS_ASSERT(p != NULL && strlen(p) <= len);
        }
        hass_tokenizer_free(t);
    } else {
        HASS_ASSERT(err.msg[0] != 0);
    }
    return 0;
}
