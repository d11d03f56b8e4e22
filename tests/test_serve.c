/*
 * test_serve.c — the OpenAI-compatible server (src/serve) in this process, driven over loopback
 * with libcurl and the curl command:
 *  - routes, the API key, and every kind of bad request get the right status and a JSON error;
 *  - completions and chat completions, plain JSON and server-sent events, give exactly the text
 *    of `hass generate` for the same request (greedy and sampled, with the draft); stop strings
 *    cut the text; a conversation's second turn reuses the first's KV cache;
 *  - a client that disconnects mid-stream cancels its generation; a full queue answers 503
 *    with Retry-After; the request time limit stops a generation;
 *  - a bounded load test: concurrent streaming clients, slow readers, early disconnects,
 *    garbage bytes; nothing crashes, every accepted request completes or is cancelled, the
 *    server serves afterwards, and its memory does not grow from round to round.
 */
#include "check.h"
#include "serve/serve.h"
#include "stories_fixture.h"

#include <arpa/inet.h>
#include <cJSON.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#define KEY "test-key-0123"

static int port;

/* ---- a libcurl client ---- */
typedef struct {
    char *body;
    size_t len;
    long status;
    char retry_after[32], allow[32];
    size_t abort_after; /* > 0: hang up after this many bytes */
    int slow_ms;        /* sleep per received piece */
} resp;

static size_t on_body(char *p, size_t sz, size_t n, void *u) {
    resp *r = u;
    size_t k = sz * n;
    char *b = realloc(r->body, r->len + k + 1);
    if (!b)
        return 0;
    r->body = b;
    memcpy(b + r->len, p, k);
    r->len += k;
    b[r->len] = 0;
    if (r->slow_ms) {
        struct timespec ts = {0, (long)r->slow_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    return r->abort_after && r->len >= r->abort_after ? 0 : k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *u) {
    resp *r = u;
    size_t k = sz * n;
    if (k > 13 && !strncasecmp(p, "Retry-After: ", 13))
        snprintf(r->retry_after, sizeof r->retry_after, "%.*s", (int)strcspn(p + 13, "\r\n"),
                 p + 13);
    if (k > 7 && !strncasecmp(p, "Allow: ", 7))
        snprintf(r->allow, sizeof r->allow, "%.*s", (int)strcspn(p + 7, "\r\n"), p + 7);
    return k;
}

/* One request; body NULL: GET. key NULL: no Authorization header. Returns the curl code. */
static CURLcode http(const char *method, const char *path, const char *body, const char *key,
                     resp *r) {
    CURL *c = curl_easy_init();
    char url[256], auth[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

static void resp_free(resp *r) {
    free(r->body);
    memset(r, 0, sizeof *r);
}

/* The status and, for errors, that the body is {"error": {"message": ...}}. */
static void expect_status(const char *method, const char *path, const char *body, const char *key,
                          long status, const char *label) {
    resp r = {0};
    http(method, path, body, key, &r);
    CHECK_MSG(r.status == status, "%s: status %ld, expected %ld (%s)", label, r.status, status,
              r.body ? r.body : "");
    if (status >= 400) {
        cJSON *j = cJSON_Parse(r.body ? r.body : "");
        cJSON *e = cJSON_GetObjectItem(j, "error");
        CHECK_MSG(cJSON_IsString(cJSON_GetObjectItem(e, "message")), "%s: no JSON error", label);
        cJSON_Delete(j);
    }
    if (status == 405)
        CHECK_MSG(r.allow[0], "%s: 405 without Allow", label);
    resp_free(&r);
}

/* The text of a whole (non-stream) answer; NULL unless status 200. */
static char *answer_text(const char *body, cJSON **hass_out) {
    cJSON *j = cJSON_Parse(body ? body : "");
    cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *t = cJSON_GetObjectItem(c0, "text");
    if (!t)
        t = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "message"), "content");
    char *s = cJSON_IsString(t) ? strdup(t->valuestring) : NULL;
    if (hass_out)
        *hass_out = cJSON_DetachItemFromObject(j, "hass");
    cJSON_Delete(j);
    return s;
}

/* The text of a stream (its deltas joined); *finish gets the last finish_reason; *done: the
 * stream ended with [DONE]. */
static char *stream_text(const char *body, char *finish, size_t fcap, int *done, int *usage) {
    char *out = calloc(1, 1);
    size_t len = 0;
    *done = 0;
    *usage = 0;
    finish[0] = 0;
    for (const char *p = body ? body : ""; (p = strstr(p, "data: ")); p += 6) {
        const char *e = strstr(p, "\n\n");
        if (!e)
            break;
        if (!strncmp(p + 6, "[DONE]", 6)) {
            *done = 1;
            break;
        }
        cJSON *j = cJSON_ParseWithLength(p + 6, (size_t)(e - p - 6));
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
        cJSON *t = cJSON_GetObjectItem(c0, "text");
        if (!t)
            t = cJSON_GetObjectItem(cJSON_GetObjectItem(c0, "delta"), "content");
        if (cJSON_IsString(t)) {
            size_t k = strlen(t->valuestring);
            out = realloc(out, len + k + 1);
            memcpy(out + len, t->valuestring, k + 1);
            len += k;
        }
        cJSON *f = cJSON_GetObjectItem(c0, "finish_reason");
        if (cJSON_IsString(f))
            snprintf(finish, fcap, "%s", f->valuestring);
        if (cJSON_GetObjectItem(j, "usage"))
            *usage = 1;
        cJSON_Delete(j);
    }
    return out;
}

/* The stdout of `hass generate ARGS` (its trailing newline removed). */
/* ---- the checks ---- */

static void test_routes_and_errors(void) {
    expect_status("GET", "/health", NULL, NULL, 200, "health without a key");
    expect_status("GET", "/v1/models", NULL, NULL, 401, "no key");
    expect_status("GET", "/v1/models", NULL, "wrong-key-0123", 401, "wrong key");
    expect_status("GET", "/v1/models", NULL, "test-key-012", 401, "key prefix");
    resp r = {0};
    http("GET", "/v1/models", NULL, KEY, &r);
    CHECK(r.status == 200 && r.body && strstr(r.body, "\"id\":\"stories\""));
    resp_free(&r);
    expect_status("GET", "/v1/models/stories", NULL, KEY, 200, "one model");
    expect_status("GET", "/v1/models/other", NULL, KEY, 404, "unknown model id");
    expect_status("GET", "/nope", NULL, KEY, 404, "unknown route");
    expect_status("GET", "/v1/chat/completions", NULL, KEY, 405, "GET on a POST route");
    expect_status("DELETE", "/v1/models", NULL, KEY, 405, "DELETE on a GET route");
    const char *C = "/v1/chat/completions", *P = "/v1/completions";
    expect_status("POST", C, "{\"messages\": [", KEY, 400, "malformed JSON");
    expect_status("POST", C, "", KEY, 400, "empty body");
    expect_status("POST", C, "[1,2]", KEY, 400, "not an object");
    expect_status("POST", C, "{\"messages\": \"hi\"}", KEY, 400, "messages not an array");
    expect_status("POST", C, "{\"messages\": []}", KEY, 400, "no messages");
    expect_status("POST", C, "{\"messages\": [{\"role\": \"user\", \"content\": 5}]}", KEY, 400,
                  "content a number");
    expect_status("POST", C, "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}", KEY,
                  400, "unknown role");
    expect_status("POST", P, "{\"prompt\": 42}", KEY, 400, "prompt a number");
    expect_status("POST", P, "{\"prompt\": \"x\", \"max_tokens\": \"9\"}", KEY, 400,
                  "max_tokens a string");
    expect_status("POST", P, "{\"prompt\": \"x\", \"max_tokens\": 1.5}", KEY, 400,
                  "max_tokens not whole");
    expect_status("POST", P, "{\"prompt\": \"x\", \"max_tokens\": 100000}", KEY, 400,
                  "max_tokens over the limit");
    expect_status("POST", P, "{\"prompt\": \"x\", \"temperature\": 9}", KEY, 400,
                  "temperature out of range");
    expect_status("POST", P, "{\"prompt\": \"x\", \"stream\": 1}", KEY, 400, "stream a number");
    expect_status("POST", P, "{\"prompt\": \"x\", \"n\": 2}", KEY, 400, "n = 2");
    expect_status("POST", P, "{\"prompt\": \"x\", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}", KEY,
                  400, "five stop strings");
    expect_status("POST", P, "{\"prompt\": \"x\", \"stop\": [\"\"]}", KEY, 400, "empty stop");
    expect_status("POST", P, "{\"prompt\": \"x\", \"model\": \"gpt-4\"}", KEY, 400,
                  "unknown model");
    expect_status("POST", P, "{\"prompt\": \"x\", \"max_tokens\": 2, \"max_tokens\": 299}", KEY,
                  400, "a member twice");
    expect_status("POST", P, "{\"prompt\": \"x\"} {\"prompt\": \"y\"}", KEY, 400,
                  "two bodies in one");
    /* longer than the context (256): ~600 tokens */
    char big[4200] = "{\"prompt\": \"";
    for (int i = 0; i < 300; i++)
        strcat(big, "a cat ");
    strcat(big, "\"}");
    expect_status("POST", P, big, KEY, 400, "prompt longer than the context");
    /* larger than --max-body (16 KiB) */
    size_t n = 40000;
    char *huge = malloc(n + 64);
    strcpy(huge, "{\"prompt\": \"");
    memset(huge + 12, 'x', n);
    strcpy(huge + 12 + n, "\"}");
    expect_status("POST", P, huge, KEY, 413, "body too large");
    free(huge);
    expect_status("GET", "/health", NULL, NULL, 200, "still serving");
}

static void test_identity(void) {
    struct {
        const char *path, *body, *args;
    } cases[] = {
        {"/v1/completions", "{\"prompt\": \"Once upon a time\", \"max_tokens\": 30}",
         "-p 'Once upon a time' -n 30"},
        {"/v1/completions",
         "{\"prompt\": \"The cat\", \"max_tokens\": 20, \"temperature\": 0.9, \"seed\": 5}",
         "-p 'The cat' -n 20 -t 0.9 --seed 5"},
        {"/v1/chat/completions",
         "{\"model\": \"stories\", \"messages\": [{\"role\": \"system\", \"content\": \"Be "
         "kind.\"}, {\"role\": \"user\", \"content\": \"Tell me a story\"}], \"max_tokens\": 20}",
         "--chat --system 'Be kind.' -p 'Tell me a story' -n 20"},
        {"/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": "
         "\"Lily\"}]}], \"max_tokens\": 16, \"temperature\": 0.7, \"top_p\": 0.9, \"top_k\": 20, "
         "\"seed\": 3}",
         "--chat -p Lily -n 16 -t 0.7 --top-p 0.9 --top-k 20 --seed 3"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *want = stories_generate(cases[i].args);
        CHECK_MSG(want != NULL, "hass generate %s failed", cases[i].args);
        /* whole */
        resp r = {0};
        http("POST", cases[i].path, cases[i].body, KEY, &r);
        cJSON *h = NULL;
        char *got = answer_text(r.body, &h);
        CHECK_MSG(r.status == 200 && got && want && !strcmp(got, want),
                  "case %zu: server '%s' != generate '%s'", i, got ? got : "(none)",
                  want ? want : "(none)");
        CHECK(cJSON_IsTrue(cJSON_GetObjectItem(h, "speculative")));
        CHECK(cJSON_GetObjectItem(h, "tau") && cJSON_GetObjectItem(h, "tokens_per_s"));
        CHECK(r.body && strstr(r.body, "\"usage\":{\"prompt_tokens\":"));
        cJSON_Delete(h);
        free(got);
        resp_free(&r);
        /* streamed */
        char sb[2048];
        snprintf(sb, sizeof sb, "%.*s, \"stream\": true}", (int)strlen(cases[i].body) - 1,
                 cases[i].body);
        http("POST", cases[i].path, sb, KEY, &r);
        char fin[32];
        int done, usage;
        got = stream_text(r.body, fin, sizeof fin, &done, &usage);
        CHECK_MSG(r.status == 200 && done && usage && fin[0] && want && !strcmp(got, want),
                  "case %zu streamed: '%s' != '%s' (done %d, finish %s)", i, got,
                  want ? want : "(none)", done, fin);
        free(got);
        resp_free(&r);
        free(want);
    }
}

static void test_stop_and_turns(void) {
    char *full = stories_generate("-p 'Once upon a time' -n 30");
    CHECK(full != NULL);
    const char *cut = full ? strstr(full, "Lily") : NULL;
    if (!cut) {
        CHECK_SKIP("the reference text has no 'Lily' to stop at");
    } else {
        for (int stream = 0; stream < 2; stream++) {
            char body[256];
            snprintf(body, sizeof body,
                     "{\"prompt\": \"Once upon a time\", \"max_tokens\": 30, \"stop\": [\"xyzzy\", "
                     "\"Lily\"], \"stream\": %s}",
                     stream ? "true" : "false");
            resp r = {0};
            http("POST", "/v1/completions", body, KEY, &r);
            char fin[32] = "";
            int done = 0, usage = 0;
            char *got = stream ? stream_text(r.body, fin, sizeof fin, &done, &usage)
                               : answer_text(r.body, NULL);
            CHECK_MSG(got && strlen(got) == (size_t)(cut - full) &&
                          !strncmp(got, full, (size_t)(cut - full)),
                      "stop string (stream %d): got '%s'", stream, got ? got : "(none)");
            CHECK(!stream || !strcmp(fin, "stop"));
            CHECK(stream || (r.body && strstr(r.body, "\"finish_reason\":\"stop\"")));
            free(got);
            resp_free(&r);
        }
    }
    free(full);
    /* a second turn: the first turn's tokens stay in the cache */
    resp r = {0};
    http("POST", "/v1/chat/completions",
         "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 20}", KEY,
         &r);
    char *a1 = answer_text(r.body, NULL);
    resp_free(&r);
    CHECK(a1 != NULL);
    cJSON *req = cJSON_Parse("{\"max_tokens\": 20, \"messages\": [{\"role\": \"user\", "
                             "\"content\": \"Hi\"}]}");
    cJSON *ms = cJSON_GetObjectItem(req, "messages"), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", a1 ? a1 : "");
    cJSON_AddItemToArray(ms, m);
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", "And then?");
    cJSON_AddItemToArray(ms, m);
    char *body = cJSON_PrintUnformatted(req);
    http("POST", "/v1/chat/completions", body, KEY, &r);
    cJSON *h = NULL;
    char *a2 = answer_text(r.body, &h);
    double cached = cJSON_GetNumberValue(cJSON_GetObjectItem(h, "prompt_tokens_cached"));
    CHECK_MSG(r.status == 200 && a2 && cached >= 10, "second turn: %g tokens cached", cached);
    cJSON_Delete(h);
    resp_free(&r);
    free(a1);
    free(a2);
    free(body);
    cJSON_Delete(req);
}

/* A client that hangs up after the first bytes of a long stream cancels its generation. */
static void test_disconnect(hass_server *sv) {
    int ok = 0;
    for (int attempt = 0; attempt < 3 && !ok; attempt++) {
        hass_server_counts c0 = hass_server_get_counts(sv);
        resp r = {0};
        r.abort_after = 1;
        http("POST", "/v1/completions",
             "{\"prompt\": \"Once\", \"max_tokens\": 250, \"stream\": true}", KEY, &r);
        resp_free(&r);
        for (int i = 0; i < 200; i++) { /* until the job has been let go */
            resp h = {0};
            http("GET", "/health", NULL, NULL, &h);
            int idle = h.body && strstr(h.body, "\"queued\":0");
            resp_free(&h);
            hass_server_counts c1 = hass_server_get_counts(sv);
            if (idle && c1.cancelled + c1.completed > c0.cancelled + c0.completed) {
                ok = c1.cancelled > c0.cancelled;
                break;
            }
            struct timespec ts = {0, 10000000L};
            nanosleep(&ts, NULL);
        }
    }
    CHECK_MSG(ok, "a client that went away did not cancel its generation");
}

/* ---- the load test ---- */
typedef struct {
    int id, round;
    int accepted, rejected, completed, cancelled_by_us, bad;
} client;

static void *client_main(void *arg) {
    client *c = arg;
    for (int k = 0; k < 3; k++) {
        int kind = (c->id + k + c->round) % 6;
        if (kind == 5) { /* garbage bytes on a raw socket */
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = {0};
            a.sin_family = AF_INET;
            a.sin_port = htons((uint16_t)port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
                char junk[512];
                for (size_t i = 0; i < sizeof junk; i++)
                    junk[i] = (char)((i * 131 + (size_t)c->id * 7 + 3) & 0xff);
                if (k % 2)
                    memcpy(junk, "POST /v1/completions HTTP/1.1\r\nContent-Length: 99999999999\r\n",
                           60);
                ssize_t w = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
                (void)w;
                struct timeval tv = {2, 0};
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                char buf[256];
                ssize_t rd = recv(fd, buf, sizeof buf, 0);
                (void)rd;
            }
            if (fd >= 0)
                close(fd);
            continue;
        }
        resp r = {0};
        const char *body = kind == 4 ? "{\"prompt\": \"The dog\", \"max_tokens\": 12}"
                                     : "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell "
                                       "a story\"}], \"max_tokens\": 12, \"stream\": true}";
        if (kind == 2)
            r.slow_ms = 30; /* a slow reader */
        if (kind == 3)
            r.abort_after = 150; /* hangs up mid-stream */
        CURLcode rc =
            http("POST", kind == 4 ? "/v1/completions" : "/v1/chat/completions", body, KEY, &r);
        if (kind == 3 && rc == CURLE_WRITE_ERROR) {
            c->accepted++;
            c->cancelled_by_us++;
        } else if (r.status == 503) {
            c->rejected++;
            if (!r.retry_after[0])
                c->bad++;
        } else if (r.status == 200) {
            c->accepted++;
            char fin[32];
            int done = 1, usage = 1;
            char *t = kind == 4 ? answer_text(r.body, NULL)
                                : stream_text(r.body, fin, sizeof fin, &done, &usage);
            if (t && done && usage)
                c->completed++;
            else
                c->bad++;
            free(t);
        } else {
            c->bad++;
            fprintf(stderr, "load: status %ld curl %d: %s\n", r.status, (int)rc,
                    r.body ? r.body : "");
        }
        resp_free(&r);
    }
    return NULL;
}

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_load(hass_server *sv) {
    enum { NCLIENT = 6, ROUNDS = 4 };
    long rss[ROUNDS];
    int acc = 0, rej = 0, comp = 0, canc = 0, bad = 0;
    double t0 = hass_now();
    for (int round = 0; round < ROUNDS; round++) {
        pthread_t th[NCLIENT];
        client cl[NCLIENT];
        for (int i = 0; i < NCLIENT; i++) {
            cl[i] = (client){.id = i, .round = round};
            pthread_create(&th[i], NULL, client_main, &cl[i]);
        }
        for (int i = 0; i < NCLIENT; i++) {
            pthread_join(th[i], NULL);
            acc += cl[i].accepted, rej += cl[i].rejected, comp += cl[i].completed;
            canc += cl[i].cancelled_by_us, bad += cl[i].bad;
        }
        rss[round] = rss_kb();
    }
    /* everything let go: nothing queued, nothing running */
    int idle = 0;
    for (int i = 0; i < 300 && !idle; i++) {
        resp h = {0};
        http("GET", "/health", NULL, NULL, &h);
        idle = h.status == 200 && h.body && strstr(h.body, "\"queued\":0");
        resp_free(&h);
    }
    hass_server_counts c = hass_server_get_counts(sv);
    fprintf(stderr,
            "load: %d clients x %d rounds, %.1f s: %d accepted (%d completed, %d hung up "
            "mid-stream), %d refused with 503, %d bad; server: %lld requests, %lld completed, "
            "%lld cancelled, %lld refused; RSS %ld -> %ld kB\n",
            NCLIENT, ROUNDS, hass_now() - t0, acc, comp, canc, rej, bad, (long long)c.requests,
            (long long)c.completed, (long long)c.cancelled, (long long)c.rejected_full, rss[1],
            rss[ROUNDS - 1]);
    CHECK_EQ_INT(bad, 0);
    CHECK(idle);
    CHECK(acc == comp + canc && comp > 0);
    CHECK_EQ_INT(rej, c.rejected_full);
#if !defined(HASS_SANITIZE) && !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
    CHECK_MSG(rss[ROUNDS - 1] - rss[1] < 4096, "memory grew by %ld kB over two rounds",
              rss[ROUNDS - 1] - rss[1]);
#endif
    expect_status("POST", "/v1/completions", "{\"prompt\": \"After the storm\", \"max_tokens\": 8}",
                  KEY, 200, "serving after the load");
}

/* A full queue: 503 with Retry-After while one request runs (--max-queue 0). */
static void *long_stream(void *arg) {
    resp *r = arg;
    http("POST", "/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 60, \"stream\": true}",
         KEY, r);
    return NULL;
}

static void test_queue_and_timeout(hass_session *s) {
    hass_serve_opts o;
    hass_serve_opts_init(&o);
    o.port = 0;
    o.api_key = KEY;
    o.max_queue = 0;
    o.model_id = "stories";
    o.gen.tree_depth = 3;
    o.gen.tree_topk = 4;
    o.gen.tree_tokens = 4;
    hass_err err = {0};
    hass_server *sv = hass_server_start(s, &o, &err);
    CHECK_MSG(sv != NULL, "%s", err.msg);
    if (!sv)
        return;
    port = hass_server_port(sv);
    int got503 = 0;
    for (int attempt = 0; attempt < 5 && !got503; attempt++) {
        resp first = {0};
        pthread_t th;
        pthread_create(&th, NULL, long_stream, &first);
        for (int i = 0; i < 100; i++) { /* until it runs */
            resp h = {0};
            http("GET", "/health", NULL, NULL, &h);
            resp_free(&h);
            if (hass_server_get_counts(sv).requests >= 2 + 3 * attempt + i)
                break;
        }
        resp r = {0};
        http("POST", "/v1/completions", "{\"prompt\": \"x\", \"max_tokens\": 5}", KEY, &r);
        if (r.status == 503)
            got503 = r.retry_after[0] != 0;
        resp_free(&r);
        pthread_join(th, NULL);
        resp_free(&first);
    }
    CHECK_MSG(got503, "no 503 with Retry-After while the only slot was taken");
    hass_server_stop(sv);

    /* the request time limit stops a generation */
    o.timeout = 0.02;
    o.max_queue = 4;
    sv = hass_server_start(s, &o, &err);
    CHECK(sv != NULL);
    if (!sv)
        return;
    port = hass_server_port(sv);
    resp r = {0};
    http("POST", "/v1/completions", "{\"prompt\": \"Once\", \"max_tokens\": 250}", KEY, &r);
    cJSON *h = NULL;
    char *t = answer_text(r.body, &h);
    CHECK_MSG(r.status == 200 && cJSON_IsTrue(cJSON_GetObjectItem(h, "timed_out")),
              "time limit: status %ld %s", r.status, r.body ? r.body : "");
    free(t);
    cJSON_Delete(h);
    resp_free(&r);
    hass_server_stop(sv);
}

/* The curl command, as a user would run it. */
static void test_curl_cli(void) {
    if (system("curl --version >/dev/null 2>&1") != 0) {
        CHECK_SKIP("no curl command");
        return;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "curl -sN -H 'Authorization: Bearer " KEY "' -H 'Content-Type: application/json' "
             "-d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 20, "
             "\"stream\": true}' http://127.0.0.1:%d/v1/chat/completions",
             port);
    FILE *f = popen(cmd, "r");
    char buf[16384];
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    buf[n] = 0;
    int rc = f ? pclose(f) : -1;
    char fin[32];
    int done, usage;
    char *t = stream_text(buf, fin, sizeof fin, &done, &usage);
    CHECK_MSG(rc == 0 && done && usage && fin[0], "curl -N: %s", buf);
    free(t);
}

/* The body's parse alone (no server): what each bad body is refused as (not JSON: no member
 * named; a bad member: its name), and what a good one gives. */
static void test_parse_request(void) {
    hass_serve_opts so;
    hass_serve_opts_init(&so);
    so.max_tokens = 300;
    so.default_max_tokens = 500; /* above max_tokens: a request without one gets 300 */
    static const struct {
        int chat;
        const char *body;
        hass_status st;
        const char *param;
    } cases[] = {
        {1, "{\"messages\": [", HASS_STATUS_FORMAT, NULL},
        {1, "", HASS_STATUS_FORMAT, NULL},
        {0, "{\"prompt\": \"x\"} x", HASS_STATUS_FORMAT, NULL},
        {0, "{\"prompt\": \"x\", \"prompt\": \"y\"}", HASS_STATUS_FORMAT, NULL},
        {1, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\", \"role\": \"system\"}]}",
         HASS_STATUS_FORMAT, NULL},
        {0, "[1]", HASS_STATUS_ARG, "body"},
        {0, "{\"prompt\": \"x\", \"model\": 3}", HASS_STATUS_ARG, "model"},
        {1, "{\"messages\": {}}", HASS_STATUS_ARG, "messages"},
        {1, "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image\"}]}]}",
         HASS_STATUS_ARG, "messages"},
        {1, "{\"messages\": [{\"role\": \"tool\", \"content\": \"x\"}]}", HASS_STATUS_ARG,
         "messages"},
        {1, "{\"messages\": [\"hi\"]}", HASS_STATUS_ARG, "messages"},
        {0, "{\"prompt\": [\"a\", \"b\"]}", HASS_STATUS_ARG, "prompt"},
        {0, "{\"prompt\": \"x\", \"max_completion_tokens\": 0}", HASS_STATUS_ARG,
         "max_completion_tokens"},
        {0, "{\"prompt\": \"x\", \"top_p\": -0.1}", HASS_STATUS_ARG, "top_p"},
        {0, "{\"prompt\": \"x\", \"top_k\": 1.5}", HASS_STATUS_ARG, "top_k"},
        {0, "{\"prompt\": \"x\", \"seed\": -1}", HASS_STATUS_ARG, "seed"},
        {0, "{\"prompt\": \"x\", \"seed\": 1e300}", HASS_STATUS_ARG, "seed"},
        {0, "{\"prompt\": \"x\", \"stream\": \"yes\"}", HASS_STATUS_ARG, "stream"},
        {0, "{\"prompt\": \"x\", \"stop\": 5}", HASS_STATUS_ARG, "stop"},
        {0, "{\"prompt\": \"x\", \"stop\": [\"a\", 5]}", HASS_STATUS_ARG, "stop"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hass_serve_request rq;
        const char *param = NULL;
        hass_err err = {0};
        hass_status st = hass_serve_parse_request(cases[i].body, strlen(cases[i].body),
                                                  cases[i].chat, &so, &rq, &param, &err);
        CHECK_MSG(st == cases[i].st && err.msg[0] &&
                      (cases[i].param ? param && !strcmp(param, cases[i].param) : !param),
                  "case %zu (%s): status %d, param %s: %s", i, cases[i].body, (int)st,
                  param ? param : "-", err.msg);
        hass_serve_request_free(&rq);
    }
    /* a NUL byte inside the body */
    hass_serve_request rq;
    const char *param = NULL;
    hass_err err = {0};
    CHECK(hass_serve_parse_request("{\"prompt\": \"a\0b\"}", 17, 0, &so, &rq, &param, &err) ==
              HASS_STATUS_FORMAT &&
          strstr(err.msg, "NUL"));
    hass_serve_request_free(&rq);
    /* a good one, with everything it reads */
    const char *good =
        "{\"model\": \"m\", \"messages\": [{\"role\": \"developer\", \"content\": [{\"type\": "
        "\"text\", \"text\": \"Be \"}, {\"text\": \"brief.\"}]}, {\"role\": \"user\", "
        "\"content\": \"Hi\"}], \"max_completion_tokens\": 7, \"temperature\": 0.5, \"top_p\": "
        "0.9, \"top_k\": 40, \"seed\": 9007199254740991, \"n\": 1, \"stream\": true, "
        "\"stream_options\": {\"include_usage\": true}, \"stop\": [\"a\", \"bc\"], \"x\": [1]}";
    CHECK(hass_serve_parse_request(good, strlen(good), 1, &so, &rq, &param, &err) == HASS_OK);
    CHECK(rq.n_msgs == 2 && !strcmp(rq.msgs[0].role, "system") &&
          !strcmp(rq.msgs[0].content, "Be brief.") && !strcmp(rq.msgs[1].content, "Hi"));
    CHECK(rq.o.max_new_tokens == 7 && rq.o.temperature == 0.5f && rq.o.top_p == 0.9f &&
          rq.o.top_k == 40 && rq.o.seed == 9007199254740991ull && rq.chat && rq.o.chat &&
          rq.o.keep_prefix);
    CHECK(rq.stream && rq.include_usage && rq.n_stops == 2 && !strcmp(rq.stops[1], "bc") &&
          rq.model && !strcmp(rq.model, "m"));
    hass_serve_request_free(&rq);
    CHECK(hass_serve_parse_request("{\"prompt\": [\"p\"], \"model\": null}", 32, 0, &so, &rq,
                                   &param, &err) == HASS_OK);
    CHECK(rq.n_msgs == 1 && !strcmp(rq.msgs[0].content, "p") && !rq.model &&
          rq.o.max_new_tokens == 300 && !rq.stream);
    hass_serve_request_free(&rq);
}

int main(int argc, char **argv) {
    (void)argc;
    check_init("test_serve");
    test_parse_request();
    if (!stories_fixture(argv[0]))
        return check_exit();
    hass_err err = {0};
    curl_global_init(CURL_GLOBAL_DEFAULT);

    hass_open_options oo = hass_open_options_default();
    oo.tokenizer = tokp;
    oo.draft = draft;
    oo.threads = 1;
    oo.ctx = 256;
    hass_session *s = NULL;
    char e[256];
    CHECK_MSG(hass_session_open(model, &oo, &s, e, sizeof e) == 0, "%s", e);
    hass_serve_opts o;
    hass_serve_opts_init(&o);
    o.port = 0;
    o.api_key = KEY;
    o.model_id = "stories";
    o.max_queue = 3;
    o.max_connections = 32;
    o.max_body = 16384;
    o.max_tokens = 300;
    o.timeout = 60;
    o.gen.tree_depth = 3; /* as stories_generate() runs `hass generate` */
    o.gen.tree_topk = 4;
    o.gen.tree_tokens = 4;
    o.log = getenv("HASS_TEST_LOG") ? stderr : NULL;
    hass_server *sv = s ? hass_server_start(s, &o, &err) : NULL;
    CHECK_MSG(sv != NULL, "%s", err.msg);
    if (sv) {
        port = hass_server_port(sv);
        CHECK(port > 0);
        test_routes_and_errors();
        test_identity();
        test_stop_and_turns();
        test_curl_cli();
        test_disconnect(sv);
        test_load(sv);
        hass_server_stop(sv);
        test_queue_and_timeout(s);
    }
    hass_close(s);
    curl_global_cleanup();
    return check_exit();
}
