/*
 * api.c — the public interface (include/hass.h) over the internal modules, and the one path
 * by which the hass commands open sessions and generate (api.h).
 */
#include "api/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hass_options hass_options_default(void) {
    hass_options o;
    memset(&o, 0, sizeof o);
    o.max_new_tokens = 256;
    o.top_p = 1.0f;
    o.speculative = 1;
    o.tree_depth = 6;
    /* 4, not EAGLE-2's 10: on a CPU every frontier node is a row through the draft at every
     * level; the default model's three suites at T = 0 on a Zen 5 went from 1.37x / 1.43x
     * (EAGLE / HASS drafts) to 1.50x / 1.61x, tau 2.46 / 2.51 -> 2.52 / 2.82 */
    o.tree_topk = 4;
    return o;
}

hass_open_options hass_open_options_default(void) {
    hass_open_options o;
    memset(&o, 0, sizeof o);
    return o;
}

/* err as the public functions return it: the message in buf, 2 for invalid arguments. */
static int fail(char *buf, size_t len, const hass_err *err) {
    if (buf && len)
        snprintf(buf, len, "%s", err->msg[0] ? err->msg : hass_status_str(err->code));
    return err->code == HASS_STATUS_ARG ? 2 : 1;
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

hass_session *hass_session_create(const char *model, const hass_open_options *o, hass_err *err) {
    hass_open_options none = hass_open_options_default();
    if (!o)
        o = &none;
    if (!model) {
        hass_err_set(err, HASS_STATUS_ARG, "no model path");
        return NULL;
    }
    hass_session *s = calloc(1, sizeof *s);
    if (!s) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    /* the tokenizer first: a missing one is a usage error, found before the model is mapped */
    if (!(s->tok = hass_tokenizer_open(model, o->tokenizer, err)) ||
        !(s->m = hass_model_load(model, err)))
        goto fail;
    if (hass_tokenizer_check_vocab(s->tok, s->m->cfg.V, err))
        goto fail;
    if (o->ctx > s->m->cfg.max_ctx && !o->ctx_beyond_model) {
        /* positions past the context the model was made for: garbage, not an error, later */
        hass_err_set(err, HASS_STATUS_ARG,
                     "--ctx %lld is above the model's context of %lld (--ctx-beyond-model "
                     "allows it)",
                     (long long)o->ctx, (long long)s->m->cfg.max_ctx);
        goto fail;
    }
    if (o->draft && !(s->dr = hass_draft_load(o->draft, s->m, err)))
        goto fail;
    if (!(s->pool = hass_pool_create(o->threads))) {
        hass_err_set(err, HASS_STATUS_OOM, "cannot start threads");
        goto fail;
    }
    if (!(s->e = hass_engine_create(s->m, s->tok, s->dr, s->pool, o->ctx, err)))
        goto fail;
    return s;
fail:
    hass_close(s);
    return NULL;
}

int hass_session_open(const char *model, const hass_open_options *o, hass_session **s, char *errbuf,
                      size_t err_len) {
    hass_err err = {0};
    *s = hass_session_create(model, o, &err);
    return *s ? 0 : fail(errbuf, err_len, &err);
}

hass_session *hass_open(const char *model, const char *tokenizer, const char *draft, int threads,
                        char *errbuf, size_t err_len) {
    hass_open_options o = {tokenizer, draft, threads, 0, 0};
    hass_session *s = NULL;
    hass_session_open(model, &o, &s, errbuf, err_len);
    return s;
}

int64_t hass_tokenize_text(hass_session *s, const char *text, int32_t *ids, int64_t cap,
                           char *errbuf, size_t err_len) {
    hass_err err = {0};
    if (!s || !text) {
        hass_err_set(&err, HASS_STATUS_ARG, "hass_tokenize_text: NULL argument");
        fail(errbuf, err_len, &err);
        return -1;
    }
    int64_t n = hass_tokenizer_encode(s->tok, text, strlen(text), hass_tokenizer_wants_bos(s->tok),
                                      1, ids, cap, &err);
    if (n < 0)
        fail(errbuf, err_len, &err);
    return n < 0 ? -1 : n;
}

hass_gen_params hass_gen_params_of(const hass_options *o) {
    hass_gen_params p = {0};
    p.max_new = o->max_new_tokens;
    p.sampling = (hass_sampler_params){o->temperature, o->top_k, o->top_p, o->seed};
    p.tree = (hass_tree_params){o->tree_depth, o->tree_topk, o->tree_tokens};
    p.keep_prefix = o->keep_prefix != 0;
    return p;
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

hass_status hass_session_generate(hass_session *s, const hass_chat_msg *msgs, int n,
                                  const hass_options *o, hass_text_fn on_text, void *user,
                                  int32_t *tokens_out, hass_gen_stats *stats, hass_err *err) {
    if (o->max_new_tokens < 0 || o->temperature < 0 || o->top_k < 0 || o->top_p < 0 ||
        o->top_p > 1 || o->tree_depth < 1 || o->tree_topk < 1 || o->tree_tokens < 0 || n < 1)
        return hass_err_set(err, HASS_STATUS_ARG, "invalid options");
    int sys = o->chat && o->system;
    hass_chat_msg *all = malloc((size_t)(n + sys) * sizeof *all);
    int32_t *ids = NULL;
    text_ctx tc = {s, {0}, NULL, hass_tokenizer_detok_cap(s->tok) + 16, on_text, user};
    tc.buf = malloc(tc.cap);
    hass_status st = HASS_OK;
    if (!all || !tc.buf) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    if (sys)
        all[0] = (hass_chat_msg){"system", o->system};
    if (n > 0)
        memcpy(all + sys, msgs, (size_t)n * sizeof *all);
    int64_t n_ids = hass_tokenizer_encode_prompt(s->tok, all, n + sys, o->chat, &ids, err);
    if (n_ids < 0) {
        st = err ? err->code : HASS_STATUS_ARG;
        goto done;
    }
    hass_detok_init(&tc.dt);
    tc.dt.prev = ids[n_ids - 1]; /* continue after the prompt: no dummy-prefix stripping */
    hass_gen_params p = hass_gen_params_of(o);
    if ((st = hass_generate(s->e, ids, n_ids, &p, o->speculative && s->dr, on_token, &tc,
                            tokens_out, stats, err)))
        goto done;
    size_t nf = hass_detok_flush(s->tok, &tc.dt, tc.buf, tc.cap);
    if (nf && on_text)
        on_text(tc.buf, nf, user);
done:
    free(all);
    free(ids);
    free(tc.buf);
    return st;
}

int hass_run(hass_session *s, const char *prompt, const hass_options *o, hass_text_fn on_text,
             void *user, hass_result *result, char *errbuf, size_t err_len) {
    hass_err err = {0};
    if (!s || !prompt || !o) {
        hass_err_set(&err, HASS_STATUS_ARG, "hass_run: NULL argument");
        return fail(errbuf, err_len, &err);
    }
    hass_chat_msg msg = {"user", prompt};
    hass_gen_stats st;
    if (hass_session_generate(s, &msg, 1, o, on_text, user, NULL, &st, &err))
        return fail(errbuf, err_len, &err);
    if (result) {
        result->n_prompt = st.n_prompt;
        result->n_generated = st.n_generated;
        result->target_forwards = st.target_forwards;
        result->stopped_at_eos = st.stop == HASS_STOP_EOS;
        result->tau = st.tau;
        result->seconds = st.seconds;
        result->tokens_per_s = st.tokens_per_s;
    }
    return 0;
}
