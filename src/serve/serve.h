/*
 * serve — an OpenAI-compatible HTTP server over one hass session (`hass serve`, docs/serving.md).
 *
 * HTTP is libmicrohttpd's (a thread per connection, bound to loopback by default), JSON is
 * cJSON's. Routes: POST /v1/chat/completions, POST /v1/completions (server-sent events with
 * "stream": true), GET /v1/models, GET /health. Requests are validated and tokenized on their
 * connection's thread, then queue (bounded: 503 with Retry-After when full) for the one worker
 * thread that owns the session and generates with hass_session_generate, exactly as
 * `hass generate` does, one request at a time (a multi-turn conversation's shared prefix stays
 * in the KV cache: keep_prefix). The worker never waits for a client: the text is buffered per
 * request and each connection's thread sends it. A client that disconnects, or a request that
 * runs past its time limit, stops its generation at the next token.
 */
#ifndef HASS_SERVE_H
#define HASS_SERVE_H

#include "api/api.h"

#include <stdio.h>

typedef struct {
    const char *host;           /* address to bind ("127.0.0.1") */
    int port;                   /* 8080; 0 = any free port (hass_server_port) */
    const char *api_key;        /* NULL: no key; else "Authorization: Bearer KEY" is required */
    const char *model_id;       /* the model's name in /v1/models and responses */
    int max_queue;              /* requests waiting besides the one being served (16) */
    int max_connections;        /* open connections (64) */
    int64_t max_body;           /* request body bytes (1 MiB) */
    int64_t max_prompt;         /* prompt tokens, 0 = the context less one */
    int64_t max_tokens;         /* largest max_tokens a request may ask (4096) */
    int64_t default_max_tokens; /* max_tokens when a request gives none (256) */
    double timeout;             /* seconds a request may take from its arrival (300) */
    int idle_timeout;           /* seconds a connection may stay idle (60) */
    FILE *log;                  /* one line per request; NULL: none */
    hass_options gen;           /* the tree settings (and defaults) of every generation */
} hass_serve_opts;

void hass_serve_opts_init(hass_serve_opts *o);

typedef struct hass_server hass_server;

/* Starts serving s (borrowed; used only by the server's worker until hass_server_stop).
 * NULL with err set when the address cannot be bound or the options are invalid. */
hass_server *hass_server_start(hass_session *s, const hass_serve_opts *o, hass_err *err);
int hass_server_port(const hass_server *sv);
/* Stops accepting, cancels what is queued or running, waits for every thread and frees sv. */
void hass_server_stop(hass_server *sv);

/* Counters since the start (for tests and the log). */
typedef struct {
    int64_t requests, completed, cancelled, rejected_full, errors;
} hass_server_counts;
hass_server_counts hass_server_get_counts(hass_server *sv);

/* ---- a completion request's body (the server's parse, callable without a server) ---- */
#define HASS_SERVE_MAX_STOPS 4
typedef struct {
    void *body;          /* the parsed JSON (a cJSON *, owned): the strings below point into it */
    hass_chat_msg *msgs; /* n_msgs >= 1 turns; a completion's prompt is one "user" turn */
    int n_msgs, chat;
    hass_options o; /* the server's o->gen with the request's max_new_tokens, temperature,
                     * top_p, top_k and seed; chat; keep_prefix set */
    const char *stops[HASS_SERVE_MAX_STOPS]; /* non-empty */
    int n_stops;
    char **owned; /* content arrays joined into one text (msgs point into them) */
    int n_owned;
    const char *model; /* "model", NULL when absent or null */
    int stream, include_usage;
} hass_serve_request;

/* Parses body[0..len) of a POST /v1/chat/completions (chat = 1) or /v1/completions request
 * as the server does before it tokenizes and queues it. The JSON strictly (a NUL byte, bytes
 * after the value or a key twice in one object are errors); then messages (roles system,
 * developer, user, assistant; content a string or an array of text parts) or prompt (a string,
 * or an array of one string); max_tokens and max_completion_tokens (whole, 1..o->max_tokens;
 * default o->default_max_tokens), temperature (0..2), top_p (0..1), top_k and seed (whole,
 * >= 0), n (1), stream (a boolean), stream_options.include_usage, stop (a string or an array
 * of at most 4 non-empty strings), model (a string). Other members are ignored.
 * Errors: HASS_STATUS_FORMAT (the body is not JSON), HASS_STATUS_ARG (a member is wrong:
 * *param names it, err says why), HASS_STATUS_OOM. Free rq with hass_serve_request_free in
 * every case. */
hass_status hass_serve_parse_request(const char *body, size_t len, int chat,
                                     const hass_serve_opts *o, hass_serve_request *rq,
                                     const char **param, hass_err *err);
void hass_serve_request_free(hass_serve_request *rq);

/* Constant-time (in the length of key) comparison: 1 when given == key. */
int hass_serve_key_equal(const char *given, size_t given_len, const char *key);

#endif
