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

/* Constant-time (in the length of key) comparison: 1 when given == key. */
int hass_serve_key_equal(const char *given, size_t given_len, const char *key);

#endif
