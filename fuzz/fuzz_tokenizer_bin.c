/*
 * fuzz_tokenizer_bin.c — libFuzzer target: the llama2.c tokenizer.bin loader (from memory,
 * with and without a vocabulary-size hint), then a short encode and decode when it loads.
 */
#include "fuzz_tok.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    for (int hint = 0; hint < 2; hint++) {
        hass_err err = {0};
        hass_tokenizer *t =
            hass_tokenizer_load_bin_mem(data, size, hint ? 32 : 0, "tokenizer.bin", &err);
        if (t) {
            fuzz_exercise_tokenizer(t, 0);
            hass_tokenizer_free(t);
        } else {
            HASS_ASSERT(err.msg[0] != 0);
        }
    }
    return 0;
}
