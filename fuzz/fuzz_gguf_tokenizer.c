/*
 * fuzz_gguf_tokenizer.c — libFuzzer target: a GGUF file's tokenizer.ggml.* metadata through
 * hass_tokenizer_load_gguf (the vocabulary, scores, token types, merges, pre-tokenizer and
 * special ids), then a short encode when it loads.
 */
#include "formats/formats.h"
#include "fuzz_tok.h"

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
        fuzz_exercise_tokenizer(t, 1);
        hass_tokenizer_free(t);
    } else {
        HASS_ASSERT(err.msg[0] != 0);
    }
    hass_gguf_close(&g);
    return 0;
}
