/*
 * serve.c — the OpenAI-compatible server (serve.h): routes, request validation, the bounded
 * queue, the worker that owns the session, and the responses (JSON, or server-sent events).
 *
 * Threads: libmicrohttpd runs each connection on its own thread (the access handler and, for a
 * stream, the content reader); one worker thread generates. They share the jobs under one
 * mutex: the worker appends each piece of final text to its job's `out` and broadcasts; a
 * connection's thread waits (with a short timeout, to notice a client that went away) and
 * sends what is new. A job belongs to its request; the request ends (and frees it) only after
 * the worker has let go of it.
 */
#define _GNU_SOURCE /* POLLRDHUP */
#include "serve/serve.h"
#include "formats/formats.h"

#include <cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define POLL_MS 50 /* how often a waiting connection looks at its client */

typedef enum { J_QUEUED, J_RUNNING, J_DONE } job_state;
typedef enum { C_NONE = 0, C_CLIENT, C_SHUTDOWN } cancel_why;

typedef struct job {
    struct job *next;
    hass_serve_request rq; /* the request (read-only once queued) */
    int64_t n_prompt;
    double t_arrive, deadline;
    /* the worker's own */
    char *raw; /* every piece of text generated */
    size_t raw_len, raw_cap, pub;
    int stop_matched;
    /* shared, under sv->mu */
    job_state state;
    cancel_why cancel;
    char *out; /* the text published (stop strings held back and cut) */
    size_t out_len, out_cap;
    int timed_out, queue_timeout;
    hass_status rc;
    char err[256];
    hass_gen_stats st;
    double t_start, t_first, t_end;
} job;

struct hass_server {
    hass_session *s;
    hass_serve_opts o;
    char *host, *api_key, *model_id;
    int64_t ctx;
    struct MHD_Daemon *d;
    int port;
    pthread_t worker;
    int worker_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work; /* a job was queued, or stopping */
    pthread_cond_t cv_job;  /* a job's text or state changed */
    job *q_head, *q_tail;
    int n_waiting;
    int stopping;
    double avg_seconds; /* of recent generations, for Retry-After */
    uint64_t next_id;
    hass_server_counts counts;
};

typedef enum { R_NONE, R_HEALTH, R_MODELS, R_MODEL, R_CHAT, R_COMPL } route;

/* One HTTP request with a body (con_cls). Released by MHD's completion callback and, for a
 * stream, by its response's free callback: freed when both have let go. */
typedef struct {
    hass_server *sv;
    struct MHD_Connection *conn;
    route rt;
    int refs;
    char *body;
    size_t len, cap;
    int too_big;
    job *j;
    /* a stream */
    int include_usage;
    char *wire; /* bytes formatted and not yet given to MHD */
    size_t wire_len, wire_off, wire_cap;
    size_t sent;
    int sent_role, finished;
    char id[64];
    long long created;
} req;

void hass_serve_opts_init(hass_serve_opts *o) {
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->model_id = "hass";
    o->max_queue = 16;
    o->max_connections = 64;
    o->max_body = 1 << 20;
    o->max_tokens = 4096;
    o->default_max_tokens = 256;
    o->timeout = 300;
    o->idle_timeout = 60;
    o->gen = hass_options_default();
}

int hass_serve_key_equal(const char *given, size_t given_len, const char *key) {
    size_t n = strlen(key);
    unsigned diff = given_len != n;
    for (size_t i = 0; i < n; i++) /* the same work whatever given holds */
        diff |= (unsigned)(unsigned char)key[i] ^
                (unsigned)(unsigned char)(i < given_len ? given[i] : ~key[i]);
    return diff == 0;
}

/* ---- small helpers ---- */

static double now_s(void) {
    return hass_now();
}

static int buf_add(char **b, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256);
        while (nc < *len + n + 1)
            nc *= 2;
        char *t = realloc(*b, nc);
        if (!t)
            return -1;
        *b = t;
        *cap = nc;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = 0;
    return 0;
}

static void logf_(hass_server *sv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(hass_server *sv, const char *fmt, ...) {
    if (!sv->o.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(sv->o.log, "hass serve: %s\n", line);
    fflush(sv->o.log);
}

/* 1 when the client of c has closed its side or the connection broke. */
static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return 1;
    struct pollfd p = {ci->connect_fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0)
        return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLNVAL | POLLRDHUP))
        return 1;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void timed_wait(pthread_cond_t *cv, pthread_mutex_t *mu, int ms) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(cv, mu, &ts);
}

/* ---- responses ---- */

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, cJSON *j,
                                 const char *extra_h, const char *extra_v) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        return MHD_NO;
    size_t n = strlen(s);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, s, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(s);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (extra_h)
        MHD_add_response_header(r, extra_h, extra_v);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static cJSON *error_obj(const char *type, const char *code, const char *param, const char *msg) {
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", type);
    if (param)
        cJSON_AddStringToObject(e, "param", param);
    else
        cJSON_AddNullToObject(e, "param");
    if (code)
        cJSON_AddStringToObject(e, "code", code);
    else
        cJSON_AddNullToObject(e, "code");
    return j;
}

static enum MHD_Result send_error(hass_server *sv, struct MHD_Connection *c, unsigned status,
                                  const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static enum MHD_Result send_error(hass_server *sv, struct MHD_Connection *c, unsigned status,
                                  const char *code, const char *param, const char *fmt, ...) {
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *type = status == 401   ? "authentication_error"
                       : status == 404 ? "not_found_error"
                       : status >= 500 ? "server_error"
                                       : "invalid_request_error";
    const char *h = NULL;
    char v[32];
    pthread_mutex_lock(&sv->mu);
    sv->counts.errors++;
    if (status == 503) {
        double wait = sv->avg_seconds * (sv->n_waiting + 1);
        snprintf(v, sizeof v, "%d", wait < 1 ? 1 : wait > 60 ? 60 : (int)wait + 1);
        h = "Retry-After";
    }
    pthread_mutex_unlock(&sv->mu);
    if (status == 405) {
        h = "Allow";
        snprintf(v, sizeof v, "%s", param ? param : "GET");
        param = NULL;
    }
    if (status == 401) {
        h = "WWW-Authenticate";
        snprintf(v, sizeof v, "Bearer");
    }
    logf_(sv, "%u %s", status, msg);
    return send_json(c, status, error_obj(type, code, param, msg), h, v);
}

/* ---- the worker ---- */

/* The length of the longest suffix of s[0..n) that is a proper prefix of a stop string. */
static size_t stop_holdback(const job *j, const char *s, size_t n) {
    size_t best = 0;
    for (int i = 0; i < j->rq.n_stops; i++) {
        size_t L = strlen(j->rq.stops[i]);
        for (size_t k = L - 1 < n ? L - 1 : n; k > best; k--)
            if (!memcmp(s + n - k, j->rq.stops[i], k)) {
                best = k;
                break;
            }
    }
    return best;
}

/* Publishes raw[pub..upto) (under the lock) and wakes the request's thread. */
static void publish(hass_server *sv, job *j, size_t upto) {
    pthread_mutex_lock(&sv->mu);
    if (upto > j->pub) {
        if (buf_add(&j->out, &j->out_len, &j->out_cap, j->raw + j->pub, upto - j->pub) == 0)
            j->pub = upto;
        if (j->t_first == 0)
            j->t_first = now_s();
    }
    pthread_cond_broadcast(&sv->cv_job);
    pthread_mutex_unlock(&sv->mu);
}

typedef struct {
    hass_server *sv;
    job *j;
} gen_ctx;

static int on_text(const char *text, size_t n, void *user) {
    gen_ctx *g = user;
    job *j = g->j;
    hass_server *sv = g->sv;
    if (j->stop_matched)
        return 1;
    size_t from = j->raw_len;
    if (buf_add(&j->raw, &j->raw_len, &j->raw_cap, text, n))
        return 1;
    size_t upto = j->raw_len;
    /* a stop string can only end in the new text: look from where it could start */
    for (int i = 0; i < j->rq.n_stops; i++) {
        size_t L = strlen(j->rq.stops[i]);
        size_t start = from >= L - 1 ? from - (L - 1) : 0;
        if (start < j->pub)
            start = j->pub;
        const char *p = memmem(j->raw + start, j->raw_len - start, j->rq.stops[i], L);
        if (p && (size_t)(p - j->raw) < upto) {
            upto = (size_t)(p - j->raw);
            j->stop_matched = 1;
        }
    }
    if (!j->stop_matched)
        upto -= stop_holdback(j, j->raw, j->raw_len);
    publish(sv, j, upto);
    pthread_mutex_lock(&sv->mu);
    int stop = j->stop_matched || j->cancel != C_NONE || sv->stopping;
    if (!stop && now_s() > j->deadline)
        stop = j->timed_out = 1;
    pthread_mutex_unlock(&sv->mu);
    return stop;
}

static void run_job(hass_server *sv, job *j) {
    gen_ctx g = {sv, j};
    hass_err err = {0};
    hass_gen_stats st;
    memset(&st, 0, sizeof st);
    hass_status rc = hass_session_generate(sv->s, j->rq.msgs, j->rq.n_msgs, &j->rq.o, on_text, &g,
                                           NULL, &st, &err);
    if (!rc && !j->stop_matched)
        publish(sv, j, j->raw_len); /* what was held back for a stop string that never came */
    pthread_mutex_lock(&sv->mu);
    j->rc = rc;
    if (rc)
        snprintf(j->err, sizeof j->err, "%s", err.msg[0] ? err.msg : hass_status_str(rc));
    j->st = st;
    j->t_end = now_s();
    sv->avg_seconds = sv->avg_seconds > 0 ? 0.8 * sv->avg_seconds + 0.2 * (j->t_end - j->t_start)
                                          : j->t_end - j->t_start;
    pthread_mutex_unlock(&sv->mu);
}

static void *worker_main(void *arg) {
    hass_server *sv = arg;
    pthread_mutex_lock(&sv->mu);
    for (;;) {
        while (!sv->q_head && !sv->stopping)
            pthread_cond_wait(&sv->cv_work, &sv->mu);
        if (sv->stopping)
            break;
        job *j = sv->q_head;
        sv->q_head = j->next;
        if (!sv->q_head)
            sv->q_tail = NULL;
        sv->n_waiting--;
        j->state = J_RUNNING;
        j->t_start = now_s();
        int skip = j->cancel != C_NONE;
        pthread_mutex_unlock(&sv->mu);
        if (!skip)
            run_job(sv, j);
        pthread_mutex_lock(&sv->mu);
        j->state = J_DONE;
        if (j->cancel != C_NONE || j->rc)
            sv->counts.cancelled += j->cancel != C_NONE;
        else
            sv->counts.completed++;
        pthread_cond_broadcast(&sv->cv_job);
    }
    /* stopping: what still waits is cancelled */
    for (job *j = sv->q_head; j; j = j->next) {
        j->state = J_DONE;
        j->cancel = C_SHUTDOWN;
        sv->counts.cancelled++;
    }
    sv->q_head = sv->q_tail = NULL;
    sv->n_waiting = 0;
    pthread_cond_broadcast(&sv->cv_job);
    pthread_mutex_unlock(&sv->mu);
    return NULL;
}

/* Takes j out of the queue (under the lock; j is J_QUEUED). */
static void unqueue(hass_server *sv, job *j) {
    job **pp = &sv->q_head, *prev = NULL;
    while (*pp && *pp != j) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = j->next;
    if (sv->q_tail == j)
        sv->q_tail = prev;
    sv->n_waiting--;
    j->state = J_DONE;
}

static void job_free(job *j) {
    if (!j)
        return;
    hass_serve_request_free(&j->rq);
    free(j->raw);
    free(j->out);
    free(j);
}

/* Lets go of j for its request: a queued job leaves the queue, a running one is cancelled and
 * waited for (it stops at its next token). Then frees it. */
static void job_release(hass_server *sv, job *j, cancel_why why) {
    if (!j)
        return;
    pthread_mutex_lock(&sv->mu);
    if (j->state == J_QUEUED) {
        unqueue(sv, j);
        sv->counts.cancelled++;
    }
    if (j->state == J_RUNNING && j->cancel == C_NONE)
        j->cancel = why;
    while (j->state != J_DONE)
        pthread_cond_wait(&sv->cv_job, &sv->mu);
    pthread_mutex_unlock(&sv->mu);
    job_free(j);
}

/* ---- requests ---- */

static const char *finish_reason(const job *j) {
    if (j->stop_matched || j->st.stop == HASS_STOP_EOS)
        return "stop";
    return "length";
}

static void add_usage(cJSON *o, const job *j) {
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", (double)j->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", (double)j->st.n_generated);
    cJSON_AddNumberToObject(u, "total_tokens", (double)(j->n_prompt + j->st.n_generated));
}

/* Our own numbers: speed, tau, where the time went. */
static void add_hass(cJSON *o, const hass_server *sv, const job *j) {
    const hass_gen_stats *st = &j->st;
    cJSON *h = cJSON_AddObjectToObject(o, "hass");
    cJSON_AddBoolToObject(h, "speculative", j->rq.o.speculative && sv->s->dr);
    cJSON_AddNumberToObject(h, "tau", st->tau);
    cJSON_AddNumberToObject(h, "tokens_per_s", st->tokens_per_s);
    cJSON_AddNumberToObject(h, "decode_tokens_per_s",
                            st->decode_seconds > 0 ? (double)st->n_generated / st->decode_seconds
                                                   : 0);
    cJSON_AddNumberToObject(h, "target_forwards", (double)st->target_forwards);
    cJSON_AddNumberToObject(h, "prompt_tokens_cached", (double)st->n_prompt_cached);
    cJSON_AddNumberToObject(h, "queue_seconds",
                            j->t_start > 0 ? j->t_start - j->t_arrive : now_s() - j->t_arrive);
    cJSON_AddNumberToObject(h, "time_to_first_token",
                            j->t_first > 0 ? j->t_first - j->t_arrive : 0);
    cJSON_AddNumberToObject(h, "seconds", st->seconds);
    cJSON_AddNumberToObject(h, "prefill_seconds", st->prefill_seconds);
    cJSON_AddNumberToObject(h, "draft_seconds", st->draft_seconds);
    cJSON_AddNumberToObject(h, "verify_seconds", st->verify_seconds);
    cJSON_AddNumberToObject(h, "other_seconds", st->other_seconds);
    cJSON_AddBoolToObject(h, "timed_out", j->timed_out);
}

/* ---- requests ---- */

void hass_serve_request_free(hass_serve_request *rq) {
    cJSON_Delete(rq->body);
    for (int i = 0; i < rq->n_owned; i++)
        free(rq->owned[i]);
    free(rq->owned);
    free(rq->msgs);
    memset(rq, 0, sizeof *rq);
}

/* A string member, or the text of a content array ([{"type": "text", "text": ...}]); NULL
 * when it is neither (a chat message's content). *owned: set when the text was joined. */
static const char *content_text(cJSON *c, char **owned) {
    *owned = NULL;
    if (cJSON_IsString(c))
        return c->valuestring;
    if (!cJSON_IsArray(c))
        return NULL;
    char *b = NULL;
    size_t len = 0, cap = 0;
    cJSON *p;
    cJSON_ArrayForEach(p, c) {
        cJSON *t = cJSON_GetObjectItemCaseSensitive(p, "text"),
              *ty = cJSON_GetObjectItemCaseSensitive(p, "type");
        if (!cJSON_IsObject(p) || !cJSON_IsString(t) ||
            (ty && (!cJSON_IsString(ty) || strcmp(ty->valuestring, "text")))) {
            free(b);
            return NULL;
        }
        if (buf_add(&b, &len, &cap, t->valuestring, strlen(t->valuestring))) {
            free(b);
            return NULL;
        }
    }
    if (!b)
        b = calloc(1, 1);
    *owned = b;
    return b;
}

/* Numbers: a JSON number in [lo, hi] (whole when integer); absent or null: keep *out. Returns
 * the member's name on a bad value, NULL when fine. */
static const char *get_num(cJSON *body, const char *name, double lo, double hi, int integer,
                           double *out) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);
    if (!v || cJSON_IsNull(v))
        return NULL;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) ||
        (integer && v->valuedouble != (double)(long long)v->valuedouble))
        return name;
    *out = v->valuedouble;
    return NULL;
}

/* The turns of a chat request's "messages". NULL when fine, else why (*param: the member). */
static const char *parse_messages(cJSON *body, hass_serve_request *rq) {
    cJSON *ms = cJSON_GetObjectItemCaseSensitive(body, "messages"), *m;
    int n = cJSON_GetArraySize(ms);
    if (!cJSON_IsArray(ms) || n < 1)
        return "messages must be a non-empty array";
    rq->msgs = calloc((size_t)n, sizeof *rq->msgs);
    rq->owned = calloc((size_t)n, sizeof *rq->owned);
    if (!rq->msgs || !rq->owned)
        return "out of memory";
    cJSON_ArrayForEach(m, ms) {
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        cJSON *cont = cJSON_GetObjectItemCaseSensitive(m, "content");
        const char *text = cJSON_IsObject(m) ? content_text(cont, &rq->owned[rq->n_owned]) : NULL;
        if (rq->owned[rq->n_owned])
            rq->n_owned++;
        if (!cJSON_IsString(role) || !text)
            return "each message needs a string role and a text content";
        const char *rl = role->valuestring;
        if (!strcmp(rl, "developer"))
            rl = "system";
        if (strcmp(rl, "system") && strcmp(rl, "user") && strcmp(rl, "assistant"))
            return "a message's role must be system, user or assistant";
        rq->msgs[rq->n_msgs++] = (hass_chat_msg){rl, text};
    }
    return NULL;
}

hass_status hass_serve_parse_request(const char *text, size_t len, int chat,
                                     const hass_serve_opts *so, hass_serve_request *rq,
                                     const char **param, hass_err *err) {
    memset(rq, 0, sizeof *rq);
    *param = NULL;
    cJSON *body = hass_json_parse_strict(text ? text : "", text ? len : 0, "the body", err);
    if (!body)
        return err->code;
    rq->body = body;
    rq->o = so->gen;
    rq->o.keep_prefix = 1;
    rq->chat = rq->o.chat = chat;
    rq->o.system = NULL;
    const char *bad = NULL, *why = NULL;
    if (!cJSON_IsObject(body)) {
        bad = "body", why = "the body must be a JSON object";
        goto bad;
    }
    cJSON *model = cJSON_GetObjectItemCaseSensitive(body, "model");
    if (model && !cJSON_IsNull(model)) {
        if (!cJSON_IsString(model)) {
            bad = "model", why = "model must be a string";
            goto bad;
        }
        rq->model = model->valuestring;
    }
    if (chat) {
        if ((why = parse_messages(body, rq))) {
            bad = "messages";
            goto bad;
        }
    } else {
        cJSON *p = cJSON_GetObjectItemCaseSensitive(body, "prompt");
        if (cJSON_IsArray(p) && cJSON_GetArraySize(p) == 1)
            p = cJSON_GetArrayItem(p, 0);
        if (!cJSON_IsString(p)) {
            bad = "prompt", why = "prompt must be a string";
            goto bad;
        }
        if (!(rq->msgs = calloc(1, sizeof *rq->msgs))) {
            bad = "prompt", why = "out of memory";
            goto bad;
        }
        rq->msgs[0] = (hass_chat_msg){"user", p->valuestring};
        rq->n_msgs = 1;
    }
    double mt = (double)so->default_max_tokens, temp = so->gen.temperature, top_p = so->gen.top_p,
           top_k = so->gen.top_k, seed = (double)so->gen.seed, n = 1;
    if (mt > (double)so->max_tokens)
        mt = (double)so->max_tokens;
    if ((bad = get_num(body, "max_tokens", 1, (double)so->max_tokens, 1, &mt)) ||
        (bad = get_num(body, "max_completion_tokens", 1, (double)so->max_tokens, 1, &mt))) {
        why = "out of range (1 .. the server's --max-tokens) or not an integer";
        goto bad;
    }
    if ((bad = get_num(body, "temperature", 0, 2, 0, &temp)) ||
        (bad = get_num(body, "top_p", 0, 1, 0, &top_p)) ||
        (bad = get_num(body, "top_k", 0, 1e9, 1, &top_k)) ||
        (bad = get_num(body, "seed", 0, 9007199254740991.0, 1, &seed)) ||
        (bad = get_num(body, "n", 1, 1, 1, &n))) {
        why = "a number out of range (temperature 0..2, top_p 0..1, top_k and seed whole >= 0, "
              "n 1)";
        goto bad;
    }
    rq->o.max_new_tokens = (int64_t)mt;
    rq->o.temperature = (float)temp;
    rq->o.top_p = (float)top_p;
    rq->o.top_k = (int)top_k;
    rq->o.seed = (uint64_t)seed;
    cJSON *st = cJSON_GetObjectItemCaseSensitive(body, "stream");
    if (st && !cJSON_IsNull(st) && !cJSON_IsBool(st)) {
        bad = "stream", why = "stream must be true or false";
        goto bad;
    }
    rq->stream = cJSON_IsTrue(st);
    cJSON *so_ = cJSON_GetObjectItemCaseSensitive(body, "stream_options");
    if (so_ && cJSON_IsObject(so_))
        rq->include_usage = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so_, "include_usage"));
    cJSON *stop = cJSON_GetObjectItemCaseSensitive(body, "stop");
    if (stop && !cJSON_IsNull(stop)) {
        int ns = cJSON_IsString(stop) ? 1 : cJSON_IsArray(stop) ? cJSON_GetArraySize(stop) : -1;
        if (ns < 0 || ns > HASS_SERVE_MAX_STOPS) {
            bad = "stop", why = "stop must be a string or an array of at most 4 strings";
            goto bad;
        }
        for (int i = 0; i < ns; i++) {
            cJSON *s = cJSON_IsString(stop) ? stop : cJSON_GetArrayItem(stop, i);
            if (!cJSON_IsString(s) || !s->valuestring[0]) {
                bad = "stop", why = "stop strings must be non-empty strings";
                goto bad;
            }
            rq->stops[rq->n_stops++] = s->valuestring;
        }
    }
    return HASS_OK;
bad:
    *param = bad;
    return hass_err_set(err, strcmp(why, "out of memory") ? HASS_STATUS_ARG : HASS_STATUS_OOM,
                        "%s: %s", bad, why);
}

/* Builds the job of a completion request, or sends the error (and returns NULL with *ret). */
static job *parse_request(req *r, enum MHD_Result *ret, int *stream) {
    hass_server *sv = r->sv;
    struct MHD_Connection *c = r->conn;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        *ret = send_error(sv, c, 500, NULL, NULL, "out of memory");
        return NULL;
    }
    hass_err err = {0};
    const char *param = NULL;
    hass_status st =
        hass_serve_parse_request(r->body, r->len, r->rt == R_CHAT, &sv->o, &j->rq, &param, &err);
    if (st) {
        *ret = st == HASS_STATUS_OOM ? send_error(sv, c, 500, NULL, NULL, "out of memory")
               : param ? send_error(sv, c, 400, "invalid_request", param, "%s", err.msg)
                       : send_error(sv, c, 400, "invalid_json", NULL, "%s", err.msg);
        job_free(j);
        return NULL;
    }
    if (j->rq.model && strcmp(j->rq.model, sv->model_id)) {
        *ret = send_error(sv, c, 400, "model_not_found", "model",
                          "the model '%.100s' does not exist (this server has '%.100s')",
                          j->rq.model, sv->model_id);
        job_free(j); /* after: the name lives in the body */
        return NULL;
    }
    *stream = j->rq.stream;
    r->include_usage = j->rq.include_usage;
    /* the prompt as the worker will encode it: its length against the limits */
    int32_t *ids = NULL;
    const char *what = j->rq.chat ? "messages" : "prompt";
    int64_t np =
        hass_tokenizer_encode_prompt(sv->s->tok, j->rq.msgs, j->rq.n_msgs, j->rq.chat, &ids, &err);
    free(ids);
    if (np < 0) {
        *ret = send_error(sv, c, 400, "invalid_request", what, "%s: %s", what, err.msg);
        job_free(j);
        return NULL;
    }
    j->n_prompt = np;
    int64_t lim =
        sv->o.max_prompt > 0 && sv->o.max_prompt < sv->ctx - 1 ? sv->o.max_prompt : sv->ctx - 1;
    if (np > lim) {
        job_free(j);
        *ret = send_error(sv, c, 400, "context_length_exceeded", what,
                          "the prompt has %lld tokens, more than the %lld this server takes",
                          (long long)np, (long long)lim);
        return NULL;
    }
    return j;
}

/* ---- streams ---- */

static int wire_event(req *r, cJSON *j) {
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    int rc = !s || buf_add(&r->wire, &r->wire_len, &r->wire_cap, "data: ", 6) ||
             buf_add(&r->wire, &r->wire_len, &r->wire_cap, s, strlen(s)) ||
             buf_add(&r->wire, &r->wire_len, &r->wire_cap, "\n\n", 2);
    free(s);
    return rc ? -1 : 0;
}

/* A chunk of a stream: delta text (may be NULL), the finish reason on the last one. */
static cJSON *chunk(const req *r, const char *text, size_t n, const char *finish) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object",
                            r->rt == R_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", r->sv->model_id);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddNumberToObject(c0, "index", 0);
    char *t = malloc(n + 1);
    if (t) {
        memcpy(t, text ? text : "", n);
        t[n] = 0;
    }
    if (r->rt == R_CHAT) {
        cJSON *d = cJSON_AddObjectToObject(c0, "delta");
        if (!r->sent_role)
            cJSON_AddStringToObject(d, "role", "assistant");
        if (text)
            cJSON_AddStringToObject(d, "content", t ? t : "");
    } else {
        cJSON_AddStringToObject(c0, "text", t ? t : "");
    }
    free(t);
    cJSON_AddNullToObject(c0, "logprobs");
    if (finish)
        cJSON_AddStringToObject(c0, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c0, "finish_reason");
    return o;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    req *r = cls;
    hass_server *sv = r->sv;
    job *j = r->j;
    for (;;) {
        if (r->wire_off < r->wire_len) {
            size_t n = r->wire_len - r->wire_off < max ? r->wire_len - r->wire_off : max;
            memcpy(buf, r->wire + r->wire_off, n);
            r->wire_off += n;
            return (ssize_t)n;
        }
        if (r->finished)
            return MHD_CONTENT_READER_END_OF_STREAM;
        r->wire_len = r->wire_off = 0;
        pthread_mutex_lock(&sv->mu);
        while (j->out_len == r->sent && j->state != J_DONE) {
            timed_wait(&sv->cv_job, &sv->mu, POLL_MS);
            if (j->out_len != r->sent || j->state == J_DONE)
                break;
            if (client_gone(r->conn)) {
                if (j->state == J_RUNNING)
                    j->cancel = C_CLIENT;
                pthread_mutex_unlock(&sv->mu);
                logf_(sv, "%s: the client went away", r->id);
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (j->state == J_QUEUED && now_s() > j->deadline) {
                unqueue(sv, j);
                j->queue_timeout = 1;
                sv->counts.cancelled++;
            }
        }
        size_t from = r->sent, n = j->out_len - from;
        char *text = n ? malloc(n) : NULL;
        if (text)
            memcpy(text, j->out + from, n);
        r->sent = j->out_len;
        int done = j->state == J_DONE;
        pthread_mutex_unlock(&sv->mu);
        int bad = 0;
        if (!r->sent_role && r->rt == R_CHAT) {
            bad |= wire_event(r, chunk(r, "", 0, NULL));
            r->sent_role = 1;
        }
        if (text)
            bad |= wire_event(r, chunk(r, text, n, NULL));
        free(text);
        if (done) {
            /* the job is done: the worker no longer writes it */
            if (j->rc || j->queue_timeout || j->cancel == C_SHUTDOWN) {
                cJSON *e = j->rc ? error_obj("server_error", NULL, NULL, j->err)
                                 : error_obj("server_error", "unavailable", NULL,
                                             j->queue_timeout ? "timed out in the queue"
                                                              : "the server is stopping");
                bad |= wire_event(r, e);
            } else {
                cJSON *last = chunk(r, NULL, 0, finish_reason(j));
                add_usage(last, j);
                add_hass(last, sv, j);
                bad |= wire_event(r, last);
                if (r->include_usage) {
                    cJSON *u = chunk(r, NULL, 0, NULL);
                    cJSON_DeleteItemFromObject(u, "choices");
                    cJSON_AddArrayToObject(u, "choices");
                    add_usage(u, j);
                    bad |= wire_event(r, u);
                }
                logf_(sv, "%s: %lld+%lld tokens, %.2f s, %.1f tokens/s, tau %.2f, finish %s", r->id,
                      (long long)j->n_prompt, (long long)j->st.n_generated, j->st.seconds,
                      j->st.tokens_per_s, j->st.tau, finish_reason(j));
            }
            bad |= buf_add(&r->wire, &r->wire_len, &r->wire_cap, "data: [DONE]\n\n", 14);
            r->finished = 1;
        }
        if (bad)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
}

static void req_unref(req *r) {
    hass_server *sv = r->sv;
    pthread_mutex_lock(&sv->mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&sv->mu);
    if (!last)
        return;
    job_release(sv, r->j, C_CLIENT);
    free(r->body);
    free(r->wire);
    free(r);
}

static void stream_free(void *cls) {
    req_unref(cls);
}

/* ---- non-streaming ---- */

/* Waits for j to be done (cancelling it when the client goes away); 1 if the client went. */
static int wait_done(req *r) {
    hass_server *sv = r->sv;
    job *j = r->j;
    pthread_mutex_lock(&sv->mu);
    while (j->state != J_DONE) {
        timed_wait(&sv->cv_job, &sv->mu, POLL_MS);
        if (j->state == J_DONE)
            break;
        if (client_gone(r->conn)) {
            if (j->state == J_QUEUED) {
                unqueue(sv, j);
                sv->counts.cancelled++;
            } else {
                j->cancel = C_CLIENT;
            }
            pthread_mutex_unlock(&sv->mu);
            logf_(sv, "%s: the client went away", r->id);
            return 1;
        }
        if (j->state == J_QUEUED && now_s() > j->deadline) {
            unqueue(sv, j);
            j->queue_timeout = 1;
            sv->counts.cancelled++;
        }
    }
    pthread_mutex_unlock(&sv->mu);
    return 0;
}

static enum MHD_Result respond_whole(req *r) {
    hass_server *sv = r->sv;
    job *j = r->j;
    if (wait_done(r))
        return MHD_NO; /* closes the connection */
    if (j->queue_timeout || j->cancel == C_SHUTDOWN)
        return send_error(sv, r->conn, 503, "unavailable", NULL,
                          j->queue_timeout ? "timed out in the queue" : "the server is stopping");
    if (j->rc)
        return send_error(sv, r->conn, j->rc == HASS_STATUS_ARG ? 400 : 500, NULL, NULL, "%s",
                          j->err);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", r->rt == R_CHAT ? "chat.completion" : "text_completion");
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", sv->model_id);
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c0 = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c0);
    cJSON_AddNumberToObject(c0, "index", 0);
    const char *text = j->out ? j->out : "";
    if (r->rt == R_CHAT) {
        cJSON *m = cJSON_AddObjectToObject(c0, "message");
        cJSON_AddStringToObject(m, "role", "assistant");
        cJSON_AddStringToObject(m, "content", text);
    } else {
        cJSON_AddStringToObject(c0, "text", text);
    }
    cJSON_AddNullToObject(c0, "logprobs");
    cJSON_AddStringToObject(c0, "finish_reason", finish_reason(j));
    add_usage(o, j);
    add_hass(o, sv, j);
    logf_(sv, "%s: %lld+%lld tokens, %.2f s, %.1f tokens/s, tau %.2f, finish %s", r->id,
          (long long)j->n_prompt, (long long)j->st.n_generated, j->st.seconds, j->st.tokens_per_s,
          j->st.tau, finish_reason(j));
    return send_json(r->conn, 200, o, NULL, NULL);
}

/* ---- routing ---- */

static route route_of(const char *url, const char **allow) {
    static const struct {
        const char *url;
        route rt;
        const char *method;
    } routes[] = {{"/health", R_HEALTH, "GET"},
                  {"/v1/models", R_MODELS, "GET"},
                  {"/v1/chat/completions", R_CHAT, "POST"},
                  {"/v1/completions", R_COMPL, "POST"}};
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(url, routes[i].url)) {
            *allow = routes[i].method;
            return routes[i].rt;
        }
    if (!strncmp(url, "/v1/models/", 11)) {
        *allow = "GET";
        return R_MODEL;
    }
    return R_NONE;
}

static cJSON *model_obj(const hass_server *sv) {
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", sv->model_id);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "hass");
    return m;
}

static enum MHD_Result handle_get(hass_server *sv, struct MHD_Connection *c, route rt,
                                  const char *url) {
    if (rt == R_HEALTH) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "ok");
        pthread_mutex_lock(&sv->mu);
        cJSON_AddNumberToObject(o, "queued", sv->n_waiting);
        pthread_mutex_unlock(&sv->mu);
        cJSON_AddBoolToObject(o, "draft", sv->s->dr != NULL);
        return send_json(c, 200, o, NULL, NULL);
    }
    if (rt == R_MODEL) {
        if (strcmp(url + 11, sv->model_id))
            return send_error(sv, c, 404, "model_not_found", NULL, "no model '%.100s'", url + 11);
        return send_json(c, 200, model_obj(sv), NULL, NULL);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), model_obj(sv));
    return send_json(c, 200, o, NULL, NULL);
}

static int authorized(hass_server *sv, struct MHD_Connection *c) {
    if (!sv->api_key)
        return 1;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7))
        return 0;
    h += 7;
    while (*h == ' ')
        h++;
    return hass_serve_key_equal(h, strlen(h), sv->api_key);
}

/* Queues j for r, or answers 503 when the queue is full. 1 when queued. */
static int enqueue(req *r, job *j) {
    hass_server *sv = r->sv;
    pthread_mutex_lock(&sv->mu);
    if (sv->stopping || sv->n_waiting >= sv->o.max_queue) {
        sv->counts.rejected_full++;
        pthread_mutex_unlock(&sv->mu);
        return 0;
    }
    j->state = J_QUEUED;
    j->t_arrive = now_s();
    j->deadline = j->t_arrive + sv->o.timeout;
    if (sv->q_tail)
        sv->q_tail->next = j;
    else
        sv->q_head = j;
    sv->q_tail = j;
    sv->n_waiting++;
    r->j = j;
    snprintf(r->id, sizeof r->id, "%s-%llx%04llx", r->rt == R_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long long)time(NULL), (unsigned long long)(sv->next_id++ & 0xffff));
    pthread_cond_signal(&sv->cv_work);
    pthread_mutex_unlock(&sv->mu);
    r->created = (long long)time(NULL);
    return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls) {
    (void)version;
    hass_server *sv = cls;
    req *r = *con_cls;
    if (!r) {
        const char *allow = NULL;
        route rt = route_of(url, &allow);
        pthread_mutex_lock(&sv->mu);
        sv->counts.requests++;
        pthread_mutex_unlock(&sv->mu);
        if (rt == R_NONE)
            return send_error(sv, c, 404, "not_found", NULL, "no route %.100s", url);
        if (strcmp(method, allow))
            return send_error(sv, c, 405, "method_not_allowed", allow, "%.100s takes %s only", url,
                              allow);
        if (rt != R_HEALTH && !authorized(sv, c))
            return send_error(sv, c, 401, "invalid_api_key", NULL, "a valid API key is required");
        if (rt == R_HEALTH || rt == R_MODELS || rt == R_MODEL)
            return handle_get(sv, c, rt, url);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoll(cl, NULL, 10) > sv->o.max_body)
            return send_error(sv, c, 413, "body_too_large", NULL,
                              "the body is larger than %lld bytes", (long long)sv->o.max_body);
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        r->sv = sv;
        r->conn = c;
        r->rt = rt;
        r->refs = 1;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->too_big && r->len + *upload_size > (size_t)sv->o.max_body)
            r->too_big = 1;
        if (!r->too_big && buf_add(&r->body, &r->len, &r->cap, upload_data, *upload_size))
            r->too_big = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->j) /* called again after a response was queued */
        return MHD_YES;
    if (r->too_big)
        return send_error(sv, c, 413, "body_too_large", NULL, "the body is larger than %lld bytes",
                          (long long)sv->o.max_body);
    enum MHD_Result ret = MHD_NO;
    int stream = 0;
    job *j = parse_request(r, &ret, &stream);
    if (!j)
        return ret;
    if (!enqueue(r, j)) {
        job_free(j);
        return send_error(sv, c, 503, "queue_full", NULL, "the server is busy: try again later");
    }
    if (!stream)
        return respond_whole(r);
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, r, stream_free);
    if (!resp)
        return MHD_NO;
    pthread_mutex_lock(&sv->mu);
    r->refs++;
    pthread_mutex_unlock(&sv->mu);
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)c;
    (void)toe;
    if (*con_cls)
        req_unref(*con_cls);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    hass_server *sv = cls;
    if (!sv->o.log)
        return;
    char line[400];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\n")] = 0;
    logf_(sv, "http: %s", line);
}

/* ---- start and stop ---- */

int hass_server_port(const hass_server *sv) {
    return sv->port;
}

hass_server_counts hass_server_get_counts(hass_server *sv) {
    pthread_mutex_lock(&sv->mu);
    hass_server_counts c = sv->counts;
    pthread_mutex_unlock(&sv->mu);
    return c;
}

static void server_free(hass_server *sv) {
    pthread_mutex_destroy(&sv->mu);
    pthread_cond_destroy(&sv->cv_work);
    pthread_cond_destroy(&sv->cv_job);
    free(sv->host);
    free(sv->api_key);
    free(sv->model_id);
    free(sv);
}

hass_server *hass_server_start(hass_session *s, const hass_serve_opts *o, hass_err *err) {
    if (!s || !o || o->port < 0 || o->port > 65535 || o->max_queue < 0 || o->max_connections < 1 ||
        o->max_body < 1 || o->max_tokens < 1 || o->timeout <= 0 || !o->host || !o->model_id) {
        hass_err_set(err, HASS_STATUS_ARG, "serve: invalid options");
        return NULL;
    }
    hass_server *sv = calloc(1, sizeof *sv);
    if (!sv) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    sv->s = s;
    sv->o = *o;
    sv->o.log = o->log;
    sv->host = strdup(o->host);
    sv->model_id = strdup(o->model_id);
    sv->api_key = o->api_key ? strdup(o->api_key) : NULL;
    sv->ctx = hass_engine_ctx(s->e);
    pthread_mutex_init(&sv->mu, NULL);
    pthread_cond_init(&sv->cv_work, NULL);
    pthread_cond_init(&sv->cv_job, NULL);
    if (!sv->host || !sv->model_id || (o->api_key && !sv->api_key)) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        server_free(sv);
        return NULL;
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai || !ai) {
        hass_err_set(err, HASS_STATUS_ARG, "serve: cannot resolve host '%s': %s", o->host,
                     gai_strerror(gai));
        server_free(sv);
        return NULL;
    }
    if (pthread_create(&sv->worker, NULL, worker_main, sv)) {
        freeaddrinfo(ai);
        hass_err_set(err, HASS_STATUS_OOM, "cannot start the worker thread");
        server_free(sv);
        return NULL;
    }
    sv->worker_started = 1;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    sv->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, sv,
                             MHD_OPTION_EXTERNAL_LOGGER, mhd_log, sv, MHD_OPTION_SOCK_ADDR,
                             ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->max_connections,
                             MHD_OPTION_CONNECTION_TIMEOUT,
                             (unsigned)(o->idle_timeout > 0 ? o->idle_timeout : 0),
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!sv->d) {
        hass_err_set(err, HASS_STATUS_IO, "serve: cannot listen on %s port %d", o->host, o->port);
        hass_server_stop(sv);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(sv->d, MHD_DAEMON_INFO_BIND_PORT);
    sv->port = di ? di->port : o->port;
    return sv;
}

void hass_server_stop(hass_server *sv) {
    if (!sv)
        return;
    pthread_mutex_lock(&sv->mu);
    sv->stopping = 1;
    pthread_cond_broadcast(&sv->cv_work);
    pthread_cond_broadcast(&sv->cv_job);
    pthread_mutex_unlock(&sv->mu);
    if (sv->d)
        MHD_stop_daemon(sv->d);
    if (sv->worker_started)
        pthread_join(sv->worker, NULL);
    server_free(sv);
}
