/*
 * filekind.c — what a path holds, decided once for every command and loader: by the GGUF
 * magic, then by the name, then by a safetensors header's shape.
 */
#include "formats/formats.h"

#include <stdio.h>
#include <string.h>

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

hass_file_kind hass_file_kind_of(const char *path) {
    if (hass_is_dir(path))
        return HASS_FILE_DIR;
    if (!hass_file_exists(path))
        return HASS_FILE_MISSING;
    unsigned char head[9] = {0};
    size_t got = 0;
    FILE *f = fopen(path, "rb");
    if (f) {
        got = fread(head, 1, sizeof head, f);
        fclose(f);
    }
    if ((got >= 4 && !memcmp(head, "GGUF", 4)) || ends_with(path, ".gguf"))
        return HASS_FILE_GGUF;
    if (ends_with(path, ".safetensors"))
        return HASS_FILE_SAFETENSORS;
    if (ends_with(path, ".json"))
        return HASS_FILE_JSON;
    if (ends_with(path, ".bin"))
        return HASS_FILE_LLAMA2C;
    /* an 8-byte header length, then the JSON header (a llama2.c header's ninth byte would be
     * the low byte of 123 layers) */
    if (got == sizeof head && head[8] == '{')
        return HASS_FILE_SAFETENSORS;
    return HASS_FILE_OTHER;
}
