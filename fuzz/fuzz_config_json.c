/*
 * fuzz_config_json.c — libFuzzer target: config.json as a model's (hass_model_config_from_json)
 * and as a draft head's (hass_draft_config_from_json) on arbitrary bytes.
 */
#include "draft/draft.h"
#include "model/model.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    hass_err err = {0};
    hass_model_config c;
    if (hass_model_config_from_json(&c, s, &err) == HASS_OK)
        HASS_ASSERT(c.d > 0 && c.V > 0 && c.Dh > 0 && c.bos < c.V && c.n_stop <= HASS_MAX_STOP);
    else
        HASS_ASSERT(err.msg[0] != 0);
    int bias = 0;
    memset(&err, 0, sizeof err);
    if (hass_draft_config_from_json(s, &c, &bias, &err) != HASS_OK)
        HASS_ASSERT(err.msg[0] != 0);
    free(s);
    return 0;
}
