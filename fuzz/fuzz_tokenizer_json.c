/*
 * fuzz_tokenizer_json.c — libFuzzer target: the tokenizer.json loader (from memory) on
 * arbitrary bytes, then a short encode and a piece lookup when it loads.
 */
#include "fuzz_tok.h"

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
        fuzz_exercise_tokenizer(t, 1);
        hass_tokenizer_free(t);
    } else {
        HASS_ASSERT(err.msg[0] != 0);
    }
    return 0;
}
