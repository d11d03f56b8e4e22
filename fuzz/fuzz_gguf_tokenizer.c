/*
 * fuzz_gguf_tokenizer.c — libFuzzer target: a GGUF file's tokenizer.ggml.* metadata through
 * hass_tokenizer_load_gguf (the vocabulary, scores, token types, merges, pre-tokenizer and
 * special ids), then a short encode when it loads.
 */
#include "formats/formats.h"
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hass_gguf g;
    hass_err err = {0};
    if (hass_gguf_parse(&g, data, size, &err) != HASS_OK)
        return 0;
    hass_tokenizer *t = hass_tokenizer_load_gguf(&g, &err);
    if (t) {
        static const char text[] = "Hello world, <s> 123 \xc3\xa9\xe2\x96\x81!\n\n  x";
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
    hass_gguf_close(&g);
    return 0;
}
