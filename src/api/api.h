/*
 * api.h — the library side of include/hass.h, for the hass commands: a session's objects and
 * the one generation path behind hass_run, so that `hass generate`, `hass bench` and the public
 * API open, encode and generate the same way on the same input.
 */
#ifndef HASS_API_H
#define HASS_API_H

#include "decode/decode.h"
#include "hass.h"

/* What a session holds (owned; freed by hass_close). */
struct hass_session {
    hass_model *m;
    hass_tokenizer *tok;
    hass_draft *dr; /* NULL without a draft */
    hass_pool *pool;
    hass_engine *e;
};

/* Opens model (hass_model_load), its tokenizer (hass_tokenizer_open), the draft (if any), a
 * pool and an engine. NULL with err set (HASS_STATUS_ARG: a usage error) on failure. */
hass_session *hass_session_create(const char *model, const hass_open_options *o, hass_err *err);

/* The engine's settings from o. */
hass_gen_params hass_gen_params_of(const hass_options *o);

/* One generation: the prompt msgs[0..n) encoded by hass_tokenizer_encode_prompt (o->chat; a
 * system turn first when o->system is set), generated with o's settings (speculatively when
 * o->speculative and the session has a draft), the text streamed to on_text (may be NULL) as
 * each piece is final. tokens_out: NULL or (o->max_new_tokens); stats: NULL or filled.
 * Errors: HASS_STATUS_ARG for invalid options or a prompt of no tokens; the engine's. */
hass_status hass_session_generate(hass_session *s, const hass_chat_msg *msgs, int n,
                                  const hass_options *o, hass_text_fn on_text, void *user,
                                  int32_t *tokens_out, hass_gen_stats *stats, hass_err *err);

#endif
