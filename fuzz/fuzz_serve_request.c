/*
 * fuzz_serve_request.c — libFuzzer target: a request body of `hass serve`, parsed by
 * hass_serve_parse_request as POST /v1/chat/completions and as POST /v1/completions. A body
 * that parses must give what the server relies on (at least one turn, each with a role the
 * templates know and a text; numbers in their ranges; at most 4 non-empty stop strings), and
 * its prompt is rendered and encoded as the server does before queueing it (with a small
 * byte-fallback tokenizer, under each chat template in turn).
 */
#include "serve/serve.h"
#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A llama2.c tokenizer.bin in memory: <unk>, <s>, </s>, the 256 byte pieces, a few words. */
static hass_tokenizer *small_tokenizer(void) {
    static const char *const words[] = {"\xe2\x96\x81"
                                        "the",
                                        "\xe2\x96\x81"
                                        "a",
                                        "ing", "er", "<|"};
    uint8_t buf[8192];
    size_t n = 0;
    int32_t maxlen = 16;
    memcpy(buf, &maxlen, 4), n = 4;
    char piece[16];
    for (int id = 0; id < 3 + 256 + 5; id++) {
        const char *s = piece;
        if (id == 0)
            s = "<unk>";
        else if (id == 1)
            s = "\n<s>\n";
        else if (id == 2)
            s = "\n</s>\n";
        else if (id < 259)
            snprintf(piece, sizeof piece, "<0x%02X>", id - 3);
        else
            s = words[id - 259];
        float score = -(float)id;
        int32_t len = (int32_t)strlen(s);
        memcpy(buf + n, &score, 4);
        memcpy(buf + n + 4, &len, 4);
        memcpy(buf + n + 8, s, (size_t)len);
        n += 8 + (size_t)len;
    }
    hass_err err = {0};
    hass_tokenizer *t = hass_tokenizer_load_bin_mem(buf, n, 0, "fuzz", &err);
    HASS_ASSERT(t != NULL);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static hass_tokenizer *tok;
    static const char *const templates[] = {"hass", "llama2", "llama3", "chatml"};
    static unsigned calls;
    if (!tok)
        tok = small_tokenizer();
    hass_serve_opts so;
    hass_serve_opts_init(&so);
    so.max_tokens = 1000;
    for (int chat = 0; chat < 2; chat++) {
        hass_serve_request rq;
        const char *param = NULL;
        hass_err err = {0};
        hass_status st =
            hass_serve_parse_request((const char *)data, size, chat, &so, &rq, &param, &err);
        if (st) {
            HASS_ASSERT(st < 0 && err.msg[0] && (st != HASS_STATUS_ARG || param));
            hass_serve_request_free(&rq);
            continue;
        }
        HASS_ASSERT(rq.n_msgs >= 1 && rq.chat == chat && rq.o.chat == chat);
        for (int i = 0; i < rq.n_msgs; i++)
            HASS_ASSERT(rq.msgs[i].content &&
                        (!strcmp(rq.msgs[i].role, "system") || !strcmp(rq.msgs[i].role, "user") ||
                         !strcmp(rq.msgs[i].role, "assistant")));
        HASS_ASSERT(rq.o.max_new_tokens >= 1 && rq.o.max_new_tokens <= so.max_tokens);
        HASS_ASSERT(rq.o.temperature >= 0 && rq.o.temperature <= 2 && rq.o.top_p >= 0 &&
                    rq.o.top_p <= 1 && rq.o.top_k >= 0);
        HASS_ASSERT(rq.n_stops >= 0 && rq.n_stops <= HASS_SERVE_MAX_STOPS);
        for (int i = 0; i < rq.n_stops; i++)
            HASS_ASSERT(rq.stops[i] && rq.stops[i][0]);
        HASS_ASSERT(hass_tokenizer_set_chat_template(tok, templates[calls++ % 4], &err) == 0);
        int32_t *ids = NULL;
        int64_t n = hass_tokenizer_encode_prompt(tok, rq.msgs, rq.n_msgs, chat, &ids, &err);
        HASS_ASSERT(n >= 1 || (n < 0 && err.msg[0]));
        for (int64_t i = 0; i < n; i++)
            HASS_ASSERT(ids[i] >= 0 && ids[i] < hass_tokenizer_vocab_size(tok));
        free(ids);
        hass_serve_request_free(&rq);
    }
    return 0;
}
