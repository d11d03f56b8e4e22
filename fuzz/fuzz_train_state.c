/*
 * fuzz_train_state.c — libFuzzer target: the trainer state reader (hass_train_state_parse) on
 * arbitrary bytes, for a run of 5-element arrays and at most 1000 steps.
 */
#include "train/train_state.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    float p[5], m[5], v[5];
    hass_train_state s;
    hass_err err = {0};
    if (hass_train_state_parse(data, size, "state", 1000, 5, p, m, v, &s, &err) == HASS_OK) {
        HASS_ASSERT(s.step >= 0 && s.step <= 1000 && s.adam_t == s.step && s.config);
        for (int i = 0; i < 5; i++)
            HASS_ASSERT(isfinite(p[i]) && isfinite(m[i]) && v[i] >= 0.0f);
    } else {
        HASS_ASSERT(err.msg[0] != 0);
    }
    hass_train_state_free(&s);
    return 0;
}
