/*
 * fuzz_featstore.c — libFuzzer target: a feature store's index.json parser and shard walker
 * (hass_featstore_check_mem). The input is a 4-byte little-endian length n, then n bytes of
 * index.json, then the bytes of the first shard it lists.
 */
#include "train/featstore.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4)
        return 0;
    uint32_t n = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
                 (uint32_t)data[3] << 24;
    data += 4, size -= 4;
    if (n > size)
        n = (uint32_t)size;
    hass_err err = {0};
    if (hass_featstore_check_mem((const char *)data, n, data + n, size - n, &err) != HASS_OK)
        HASS_ASSERT(err.msg[0] != 0);
    return 0;
}
