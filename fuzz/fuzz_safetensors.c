/*
 * fuzz_safetensors.c — libFuzzer target: hass_safetensors_parse on arbitrary bytes. A parse
 * that succeeds must hand out tensors whose bytes lie inside the input (every byte is read,
 * so ASan reports a range outside it).
 */
#include "formats/formats.h"

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hass_safetensors st;
    hass_err err = {0};
    if (hass_safetensors_parse(&st, data, size, &err) == HASS_OK) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < st.n_tensors; i++) {
            const uint8_t *p = st.tensors[i].data;
            for (size_t k = 0; k < st.tensors[i].nbytes; k++)
                sink ^= p[k];
            HASS_ASSERT(hass_safetensors_find(&st, st.tensors[i].name) != NULL);
        }
        (void)sink;
    } else {
        HASS_ASSERT(err.msg[0] != 0 && err.code < 0);
    }
    hass_safetensors_close(&st);
    return 0;
}
