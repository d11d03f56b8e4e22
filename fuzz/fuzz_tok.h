/*
 * fuzz_tok.h — what the tokenizer fuzz targets do with a tokenizer that loaded: encode a short
 * text (with BOS and, if asked, special-token parsing) and look up the piece of every id.
 */
#ifndef HASS_FUZZ_TOK_H
#define HASS_FUZZ_TOK_H

#include "tokenizer/tokenizer.h"

#include <string.h>

static inline void fuzz_exercise_tokenizer(const hass_tokenizer *t, int specials) {
    static const char text[] = "Hello world, <s> 123 \xc3\xa9\xe2\x96\x81!\n\n  x";
    int32_t ids[64];
    hass_err err = {0};
    int64_t n = hass_tokenizer_encode(t, text, sizeof text - 1, 1, specials, ids, 64, &err);
    for (int64_t i = 0; i < n && i < 64; i++) {
        size_t len = 0;
        const char *p = hass_tokenizer_piece(t, ids[i], &len);
        HASS_ASSERT(p != NULL && strlen(p) <= len);
    }
}

#endif
