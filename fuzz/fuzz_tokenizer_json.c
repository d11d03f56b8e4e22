/*
 * fuzz_tokenizer_json.c — libFuzzer target: hass_tokenizer_load_json on arbitrary bytes, then
 * a short encode and a piece lookup when it loads. The loader takes a path, so each input is
 * written to tokenizer.json in a private temp directory (created once per process; it holds
 * no tokenizer_config.json, so only the tokenizer.json parser is exercised).
 */
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];

static void cleanup(void) {
    remove(path);
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = 0;
        remove(path);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!path[0]) {
        char dir[] = "/tmp/hass_fuzz_tok_XXXXXX";
        if (!mkdtemp(dir))
            abort();
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f)
        abort();
    if (size && fwrite(data, 1, size, f) != size)
        abort();
    fclose(f);
    hass_err err = {0};
    hass_tokenizer *t = hass_tokenizer_load_json(path, &err);
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
