/*
 * api.c — the public interface (include/hass.h) over the internal modules.
 */
#include "hass.h"

#include "decode/decode.h"
#include "formats/formats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct hass_session {
    hass_model *m;
    hass_tokenizer *tok;
    hass_draft *dr;
    hass_pool *pool;
    hass_engine *e;
};

hass_options hass_options_default(void) {
    hass_options o;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = 256;
    o.top_p = 1.0f;
    o.speculative = 1;
    o.tree_depth = 6;
    o.tree_topk = 10;
    return o;
}

static int fail(char *buf, size_t len, int code, const char *msg) {
    if (buf && len)
        snprintf(buf, len, "%s", msg);
    return code;
}

static int is_gguf(const char *p) {
    size_t n = strlen(p);
    return n >= 5 && !strcmp(p + n - 5, ".gguf");
}

void hass_close(hass_session *s) {
    if (!s)
        return;
    hass_engine_destroy(s->e);
    hass_pool_destroy(s->pool);
    hass_draft_free(s->dr);
    hass_tokenizer_free(s->tok);
    hass_model_free(s->m);
    free(s);
}

hass_session *hass_open(const char *model, const char *tokenizer, const char *draft, int threads,
                        char *errbuf, size_t err_len) {
    hass_err err = {0};
    hass_session *s = calloc(1, sizeof *s);
    if (!s || !model) {
        fail(errbuf, err_len, 2, s ? "hass_open: no model path" : "out of memory");
        free(s);
        return NULL;
    }
    if (!(s->m = hass_model_load(model, &err)))
        goto bad;
    if (tokenizer) {
        size_t n = strlen(tokenizer);
        s->tok = n > 5 && !strcmp(tokenizer + n - 5, ".json")
                     ? hass_tokenizer_load_json(tokenizer, &err)
                     : hass_tokenizer_load_bin(tokenizer, (int32_t)s->m->cfg.V, &err);
    } else if (is_gguf(model)) {
        hass_gguf g;
        if (hass_gguf_open(&g, model, &err) == HASS_OK) {
            s->tok = hass_tokenizer_load_gguf(&g, &err);
            hass_gguf_close(&g);
        }
    } else {
        char path[1024];
        snprintf(path, sizeof path, "%s/tokenizer.json", model);
        s->tok = hass_tokenizer_load_json(path, &err);
    }
    if (!s->tok)
        goto bad;
    if (draft && !(s->dr = hass_draft_load(draft, s->m, &err)))
        goto bad;
    if (!(s->pool = hass_pool_create(threads))) {
        hass_err_set(&err, HASS_STATUS_OOM, "cannot start threads");
        goto bad;
    }
    if (!(s->e = hass_engine_create(s->m, s->tok, s->dr, s->pool, 0, &err)))
        goto bad;
    return s;
bad:
    fail(errbuf, err_len, 1, err.msg);
    hass_close(s);
    return NULL;
}

int64_t hass_tokenize_text(hass_session *s, const char *text, int32_t *ids, int64_t cap,
                           char *errbuf, size_t err_len) {
    hass_err err = {0};
    if (!s || !text)
        return fail(errbuf, err_len, 2, "hass_tokenize_text: NULL argument") ? -1 : -1;
    int64_t n = hass_tokenizer_encode(s->tok, text, strlen(text), hass_tokenizer_wants_bos(s->tok),
                                      1, ids, cap, &err);
    if (n < 0)
        fail(errbuf, err_len, 1, err.msg);
    return n < 0 ? -1 : n;
}

typedef struct {
    hass_session *s;
    hass_detok dt;
    char *buf;
    size_t cap;
    hass_text_fn fn;
    void *user;
} text_ctx;

static int on_token(int32_t tok, void *user) {
    text_ctx *c = user;
    size_t n = hass_detok_push(c->s->tok, &c->dt, tok, c->buf, c->cap);
    return n && c->fn ? c->fn(c->buf, n, c->user) : 0;
}

int hass_run(hass_session *s, const char *prompt, const hass_options *o, hass_text_fn on_text,
             void *user, hass_result *result, char *errbuf, size_t err_len) {
    hass_err err = {0};
    if (!s || !prompt || !o)
        return fail(errbuf, err_len, 2, "hass_run: NULL argument");
    if (o->max_new_tokens < 0 || o->temperature < 0 || o->top_k < 0 || o->top_p < 0 ||
        o->top_p > 1 || o->tree_depth < 1 || o->tree_topk < 1 || o->tree_tokens < 0)
        return fail(errbuf, err_len, 2, "hass_run: invalid options");
    char *text = NULL;
    const char *src = prompt;
    if (o->chat) {
        hass_chat_msg msg = {"user", prompt};
        if (!(text = hass_tokenizer_chat_render(s->tok, &msg, 1, 1, &err)))
            return fail(errbuf, err_len, 1, err.msg);
        src = text;
    }
    size_t len = strlen(src);
    int32_t *ids = malloc((len + 8) * sizeof(int32_t));
    text_ctx tc = {s, {0}, NULL, hass_tokenizer_detok_cap(s->tok) + 16, on_text, user};
    tc.buf = malloc(tc.cap);
    int rc = 1;
    if (!ids || !tc.buf) {
        hass_err_set(&err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    int64_t n = hass_tokenizer_encode(s->tok, src, len, hass_tokenizer_wants_bos(s->tok), 1, ids,
                                      (int64_t)len + 8, &err);
    if (n <= 0) {
        if (n == 0)
            hass_err_set(&err, HASS_STATUS_ARG, "the prompt encodes to no tokens");
        goto done;
    }
    hass_detok_init(&tc.dt);
    tc.dt.prev = ids[n - 1];
    hass_gen_params p = {0};
    p.max_new = o->max_new_tokens;
    p.sampling = (hass_sampler_params){o->temperature, o->top_k, o->top_p, o->seed};
    p.tree = (hass_tree_params){o->tree_depth, o->tree_topk, o->tree_tokens};
    hass_gen_stats st;
    if (hass_generate(s->e, ids, n, &p, o->speculative && s->dr, on_token, &tc, NULL, &st, &err))
        goto done;
    size_t nf = hass_detok_flush(s->tok, &tc.dt, tc.buf, tc.cap);
    if (nf && on_text)
        on_text(tc.buf, nf, user);
    if (result) {
        result->n_prompt = st.n_prompt;
        result->n_generated = st.n_generated;
        result->target_forwards = st.target_forwards;
        result->stopped_at_eos = st.stop == HASS_STOP_EOS;
        result->tau = st.tau;
        result->seconds = st.seconds;
        result->tokens_per_s = st.tokens_per_s;
    }
    rc = 0;
done:
    if (rc)
        fail(errbuf, err_len, err.code == HASS_STATUS_ARG ? 2 : 1, err.msg);
    free(ids);
    free(tc.buf);
    free(text);
    return rc ? (err.code == HASS_STATUS_ARG ? 2 : 1) : 0;
}
