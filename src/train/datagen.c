/*
 * datagen.c — `hass datagen` (datagen.h): read conversations / instruction data / prompt lists,
 * build token sequences with assistant loss masks (optionally regenerating the answers with the
 * target), run the target teacher-forced over each sequence and store the post-norm features
 * in resumable feature shards (featstore.h).
 */
#include "train/datagen.h"

#include "sample/sample.h"
#include "train/featstore.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#define GEN_BATCH 128 /* rows per target forward (prefill and feature pass) */

hass_datagen_opts hass_datagen_opts_default(void) {
    hass_datagen_opts o;
    memset(&o, 0, sizeof o);
    o.max_new = 256;
    o.max_len = 2048;
    o.shard_tokens = (int64_t)1 << 20;
    return o;
}

static const char *fmt_name(hass_dg_format f) {
    static const char *names[] = {"auto", "sharegpt", "instruct", "prompts"};
    return names[f];
}

/* ======================= input records ======================= */

typedef struct {
    const cJSON *obj; /* JSON record, or */
    const char *line; /* a text line (prompt list) */
    int64_t lineno;   /* 1-based line (JSONL / text) or array index + 1 */
} record;

typedef struct {
    char *text;
    cJSON *root; /* array of records (JSON array or the parsed JSONL lines) */
    record *recs;
    int64_t n;
} dataset;

static void dataset_free(dataset *ds) {
    free(ds->text);
    cJSON_Delete(ds->root);
    free(ds->recs);
    memset(ds, 0, sizeof *ds);
}

static hass_status dataset_load(dataset *ds, const char *path, hass_dg_format fmt, hass_err *err) {
    memset(ds, 0, sizeof *ds);
    size_t size = 0;
    hass_status st = hass_read_file_max(path, HASS_READ_DATA_MAX, &ds->text, &size, err);
    if (st)
        return st;
    if (strlen(ds->text) != size)
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: contains NUL bytes", path);
    const char *p = ds->text;
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
        p++;
    if (*p == '[') {
        const char *end = NULL;
        ds->root = cJSON_ParseWithOpts(p, &end, 1);
        if (!cJSON_IsArray(ds->root)) {
            size_t off = end ? (size_t)(end - ds->text) : 0;
            return hass_err_set(err, HASS_STATUS_FORMAT, "%s: bad JSON near byte %zu", path, off);
        }
        int n = cJSON_GetArraySize(ds->root);
        ds->recs = calloc((size_t)n + 1, sizeof *ds->recs);
        if (!ds->recs)
            return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        const cJSON *it;
        cJSON_ArrayForEach(it, ds->root) {
            ds->recs[ds->n] = (record){it, NULL, ds->n + 1};
            ds->n++;
        }
        return HASS_OK;
    }
    /* line-oriented: JSONL or plain prompts */
    int jsonl = *p == '{';
    if (!jsonl && fmt != HASS_DG_AUTO && fmt != HASS_DG_PROMPTS)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "%s: expected a JSON array or JSONL for --format %s", path,
                            fmt_name(fmt));
    int64_t lines = 1;
    for (const char *q = ds->text; *q; q++)
        lines += *q == '\n';
    ds->recs = calloc((size_t)lines + 1, sizeof *ds->recs);
    ds->root = cJSON_CreateArray();
    if (!ds->recs || !ds->root)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    char *s = ds->text;
    for (int64_t ln = 1; s; ln++) {
        char *nl = strchr(s, '\n');
        if (nl)
            *nl = 0;
        size_t len = strlen(s);
        if (len && s[len - 1] == '\r')
            s[--len] = 0;
        const char *t = s;
        while (*t == ' ' || *t == '\t')
            t++;
        if (*t) {
            if (jsonl) {
                cJSON *o = cJSON_Parse(t);
                if (!cJSON_IsObject(o)) {
                    cJSON_Delete(o);
                    return hass_err_set(err, HASS_STATUS_FORMAT, "%s: line %lld: not a JSON object",
                                        path, (long long)ln);
                }
                cJSON_AddItemToArray(ds->root, o);
                ds->recs[ds->n++] = (record){o, NULL, ln};
            } else {
                ds->recs[ds->n++] = (record){NULL, t, ln};
            }
        }
        s = nl ? nl + 1 : NULL;
    }
    return HASS_OK;
}

/* A record as chat messages. Strings borrowed from the record, except own[] (freed). */
#define MAX_OWN 64
typedef struct {
    hass_chat_msg *m;
    int n, cap;
    int prompts; /* prompt list: answers must be generated */
    char *own[MAX_OWN];
    int n_own;
} conv;

static void conv_clear(conv *c) {
    for (int i = 0; i < c->n_own; i++)
        free(c->own[i]);
    c->n_own = 0;
    c->n = 0;
    c->prompts = 0;
}
static void conv_free(conv *c) {
    conv_clear(c);
    free(c->m);
    memset(c, 0, sizeof *c);
}
static int conv_push(conv *c, const char *role, const char *content) {
    if (c->n == c->cap) {
        int nc = c->cap * 2 + 8;
        hass_chat_msg *m = realloc(c->m, (size_t)nc * sizeof *m);
        if (!m)
            return 0;
        c->m = m;
        c->cap = nc;
    }
    c->m[c->n++] = (hass_chat_msg){role, content};
    return 1;
}
static char *conv_own(conv *c, char *s) {
    if (!s || c->n_own == MAX_OWN) {
        free(s);
        return NULL;
    }
    return c->own[c->n_own++] = s;
}

#define REC_FAIL(...) hass_err_set(err, HASS_STATUS_FORMAT, __VA_ARGS__)

static hass_status record_conv(const record *r, hass_dg_format fmt, conv *c, const char *src,
                               hass_err *err) {
    conv_clear(c);
    long long ln = (long long)r->lineno;
    if (r->line) {
        c->prompts = 1;
        return conv_push(c, "user", r->line) ? HASS_OK : REC_FAIL("out of memory");
    }
    const cJSON *o = r->obj;
    if (!cJSON_IsObject(o))
        return REC_FAIL("%s: record %lld: not a JSON object", src, ln);
    const cJSON *convs = cJSON_GetObjectItemCaseSensitive(o, "conversations");
    if (!convs) /* the chat format of our corpus: {"messages": [{"role", "content"}, ...]} */
        convs = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (fmt == HASS_DG_AUTO)
        fmt = convs                                                ? HASS_DG_SHAREGPT
              : cJSON_GetObjectItemCaseSensitive(o, "instruction") ? HASS_DG_INSTRUCT
                                                                   : HASS_DG_PROMPTS;
    if (fmt == HASS_DG_SHAREGPT) {
        if (!cJSON_IsArray(convs) || cJSON_GetArraySize(convs) == 0)
            return REC_FAIL("%s: record %lld: 'conversations' / 'messages' must be a non-empty "
                            "array",
                            src, ln);
        const cJSON *t;
        int k = 0;
        cJSON_ArrayForEach(t, convs) {
            const char *from = hass_json_str(t, "from"), *val = hass_json_str(t, "value");
            if (!from)
                from = hass_json_str(t, "role");
            if (!val)
                val = hass_json_str(t, "content");
            if (!from || !val)
                return REC_FAIL("%s: record %lld: turn %d needs string 'from' and 'value'", src, ln,
                                k);
            const char *role = !strcmp(from, "human") || !strcmp(from, "user") ? "user"
                               : !strcmp(from, "gpt") || !strcmp(from, "assistant") ||
                                       !strcmp(from, "chatgpt") || !strcmp(from, "bard") ||
                                       !strcmp(from, "bing")
                                   ? "assistant"
                               : !strcmp(from, "system") ? "system"
                                                         : NULL;
            if (!role)
                return REC_FAIL("%s: record %lld: turn %d has unknown role '%.40s'", src, ln, k,
                                from);
            if (!conv_push(c, role, val))
                return REC_FAIL("out of memory");
            k++;
        }
        return HASS_OK;
    }
    if (fmt == HASS_DG_INSTRUCT) {
        const char *ins = hass_json_str(o, "instruction"), *in = hass_json_str(o, "input");
        const char *out = hass_json_str(o, "output");
        if (!out)
            out = hass_json_str(o, "response");
        if (!ins || !out)
            return REC_FAIL("%s: record %lld: instruction data needs string 'instruction' and "
                            "'output' (or 'response')",
                            src, ln);
        const char *user = ins;
        if (in && *in) {
            size_t n = strlen(ins) + strlen(in) + 3;
            char *s = conv_own(c, malloc(n));
            if (!s)
                return REC_FAIL("out of memory");
            snprintf(s, n, "%s\n\n%s", ins, in);
            user = s;
        }
        if (!conv_push(c, "user", user) || !conv_push(c, "assistant", out))
            return REC_FAIL("out of memory");
        return HASS_OK;
    }
    /* prompts */
    c->prompts = 1;
    const char *p = hass_json_str(o, "prompt");
    if (!p)
        p = hass_json_str(o, "question");
    const cJSON *turns = cJSON_GetObjectItemCaseSensitive(o, "turns");
    if (p)
        return conv_push(c, "user", p) ? HASS_OK : REC_FAIL("out of memory");
    if (cJSON_IsArray(turns) && cJSON_GetArraySize(turns) > 0) {
        const cJSON *t;
        cJSON_ArrayForEach(t, turns) {
            if (!cJSON_IsString(t))
                return REC_FAIL("%s: record %lld: 'turns' must hold strings", src, ln);
            if (!conv_push(c, "user", t->valuestring))
                return REC_FAIL("out of memory");
        }
        return HASS_OK;
    }
    return REC_FAIL("%s: record %lld: no 'conversations', 'instruction', 'prompt', 'turns' or "
                    "'question' field",
                    src, ln);
}

/* ======================= sequences ======================= */

typedef struct {
    const hass_model *m;
    const hass_tokenizer *tok;
    hass_pool *pool;
    const hass_datagen_opts *o;
    int64_t max_len;
    /* the sequence being built */
    int32_t *ids;
    uint8_t *mask;
    int64_t n;
    /* encode scratch */
    int32_t *tmp;
    int64_t tmp_cap;
    /* target state (regen / features) */
    hass_kv kv;
    int kv_ok;
    float *logits, *scratch, *feat;
    hass_sampler smp;
    int smp_ok;
    int32_t stop[16];
    int n_stop;
    int64_t generated;
} dg;

static void seq_push(dg *g, const int32_t *ids, int64_t n, uint8_t m) {
    for (int64_t i = 0; i < n && g->n < g->max_len; i++) {
        g->ids[g->n] = ids[i];
        g->mask[g->n++] = m;
    }
}

/* Encodes text into g->tmp; returns the count or -1. */
static int64_t encode(dg *g, const char *text, int add_bos, int special, hass_err *err) {
    size_t len = strlen(text);
    for (;;) {
        int64_t n =
            hass_tokenizer_encode(g->tok, text, len, add_bos, special, g->tmp, g->tmp_cap, err);
        if (n < 0 || n <= g->tmp_cap)
            return n;
        int32_t *t = realloc(g->tmp, (size_t)n * sizeof *t);
        if (!t) {
            hass_err_set(err, HASS_STATUS_OOM, "out of memory");
            return -1;
        }
        g->tmp = t;
        g->tmp_cap = n;
    }
}

/* The KV cache and the feature rows hold at least `need` positions (at most max_len): grown
 * by half at least, as the records need, from a small start (dg_setup). */
static hass_status dg_reserve(dg *g, int64_t need, hass_err *err) {
    if (need > g->max_len)
        need = g->max_len;
    if (need <= g->kv.cap)
        return HASS_OK;
    int64_t cap = g->kv.cap + g->kv.cap / 2, d = g->m->cfg.d;
    cap = cap < need ? need : cap > g->max_len ? g->max_len : cap;
    float *f = hass_aligned_alloc((size_t)(cap * d) * sizeof(float));
    hass_status st = f ? hass_kv_grow(&g->kv, cap, g->pool, err)
                       : hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    if (st) {
        hass_aligned_free(f);
        return st;
    }
    hass_aligned_free(g->feat); /* rows are written by each record's features() */
    g->feat = f;
    return HASS_OK;
}

static int is_stop(const dg *g, int32_t t) {
    for (int i = 0; i < g->n_stop; i++)
        if (g->stop[i] == t)
            return 1;
    return 0;
}

/* Continues the current sequence with the target: appends up to max_new tokens (mask 1),
 * including the stop token if one is drawn. Returns the index where the answer starts. */
static hass_status generate(dg *g, uint64_t seed, int64_t *answer_at, int *stopped, hass_err *err) {
    *answer_at = g->n;
    *stopped = 0;
    int64_t limit = g->o->max_new < g->max_len - g->n ? g->o->max_new : g->max_len - g->n;
    if (limit <= 0 || g->n == 0)
        return HASS_OK;
    hass_sampler_params sp = {.temperature = g->o->temperature, .top_p = 1.0f, .seed = seed};
    hass_status st = hass_sampler_reset(&g->smp, &sp, err);
    if (st || (st = dg_reserve(g, g->n + limit, err)))
        return st;
    hass_kv_truncate(&g->kv, 0);
    if ((st = hass_model_prefill(g->m, &g->kv, g->pool, g->n, g->ids, g->logits, NULL, err)))
        return st;
    int32_t pos;
    for (int64_t t = 0; t < limit; t++) {
        int32_t tok = hass_sample(&g->smp, g->logits, g->scratch);
        seq_push(g, &tok, 1, 1);
        g->generated++;
        if (is_stop(g, tok)) {
            *stopped = 1;
            break;
        }
        if (t + 1 == limit)
            break;
        pos = (int32_t)(g->n - 1);
        st =
            hass_model_forward(g->m, &g->kv, g->pool, 1, &tok, &pos, NULL, g->logits, 0, NULL, err);
        if (st)
            return st;
        hass_kv_commit(&g->kv, 1);
    }
    return HASS_OK;
}

static uint64_t mix_seed(uint64_t seed, int64_t rec, int turn) {
    uint64_t z = seed ^ ((uint64_t)rec * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)turn << 48);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Plain concatenation: BOS + messages; answers generated after each user turn with regen. */
static hass_status build_plain(dg *g, conv *c, int regen, int64_t rec, hass_err *err) {
    g->n = 0;
    int32_t bos = hass_tokenizer_bos(g->tok);
    if (bos >= 0 && hass_tokenizer_wants_bos(g->tok))
        seq_push(g, &bos, 1, 0);
    int turn = 0;
    for (int k = 0; k < c->n; k++) {
        int asst = !strcmp(c->m[k].role, "assistant");
        if (asst && regen)
            continue; /* replaced by the generated answer */
        int64_t n = encode(g, c->m[k].content, 0, 0, err);
        if (n < 0)
            return HASS_STATUS_FORMAT;
        seq_push(g, g->tmp, n, (uint8_t)asst);
        if (regen && !strcmp(c->m[k].role, "user")) {
            int64_t at;
            int stopped;
            hass_status st = generate(g, mix_seed(g->o->seed, rec, turn++), &at, &stopped, err);
            if (st)
                return st;
        }
    }
    return HASS_OK;
}

/* Encoded length of render(msgs[0..n), gen). */
static int64_t render_len(dg *g, const hass_chat_msg *m, int n, int gen, hass_err *err) {
    char *txt = hass_tokenizer_chat_render(g->tok, m, n, gen, err);
    if (!txt)
        return -1;
    int64_t len = encode(g, txt, hass_tokenizer_wants_bos(g->tok), 1, err);
    free(txt);
    return len;
}

/* Chat template: regenerate answers turn by turn (decoded to text), then encode the whole
 * conversation and mark each assistant span from the encodings of the rendered prefixes. */
static hass_status build_chat(dg *g, conv *c, int regen, int64_t rec, hass_err *err) {
    if (regen) {
        /* rebuild the conversation: drop given answers, generate one after each user turn */
        conv r = {0};
        hass_status st = HASS_OK;
        int turn = 0;
        for (int k = 0; !st && k < c->n; k++) {
            if (!strcmp(c->m[k].role, "assistant"))
                continue;
            if (!conv_push(&r, c->m[k].role, c->m[k].content)) {
                st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
                break;
            }
            if (strcmp(c->m[k].role, "user"))
                continue;
            char *txt = hass_tokenizer_chat_render(g->tok, r.m, r.n, 1, err);
            int64_t n = txt ? encode(g, txt, hass_tokenizer_wants_bos(g->tok), 1, err) : -1;
            free(txt);
            if (n < 0) {
                st = err->code ? err->code : HASS_STATUS_FORMAT;
                break;
            }
            g->n = 0;
            seq_push(g, g->tmp, n, 0);
            int64_t at;
            int stopped;
            st = generate(g, mix_seed(g->o->seed, rec, turn++), &at, &stopped, err);
            if (st)
                break;
            int64_t na = g->n - at - stopped;
            char *ans = hass_tokenizer_decode(g->tok, g->ids + at, na, 1, NULL);
            if (!conv_own(&r, ans) || !conv_push(&r, "assistant", ans))
                st = hass_err_set(err, HASS_STATUS_OOM, "out of memory (or too many turns)");
        }
        if (!st) {
            /* move r into c (c's own strings stay alive until c is cleared) */
            for (int i = 0; i < r.n_own && c->n_own < MAX_OWN; i++)
                c->own[c->n_own++] = r.own[i];
            r.n_own = 0;
            c->n = 0;
            for (int i = 0; i < r.n; i++)
                if (!conv_push(c, r.m[i].role, r.m[i].content))
                    st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        }
        conv_free(&r);
        if (st)
            return st;
    }
    char *txt = hass_tokenizer_chat_render(g->tok, c->m, c->n, 0, err);
    if (!txt)
        return err->code;
    int64_t n = encode(g, txt, hass_tokenizer_wants_bos(g->tok), 1, err);
    free(txt);
    if (n < 0)
        return err->code;
    g->n = 0;
    seq_push(g, g->tmp, n, 0);
    for (int k = 0; k < c->n; k++) {
        if (strcmp(c->m[k].role, "assistant"))
            continue;
        int64_t a = render_len(g, c->m, k, 1, err), b = render_len(g, c->m, k + 1, 0, err);
        if (a < 0 || b < 0)
            return err->code;
        for (int64_t i = a; i < b && i < g->n; i++)
            g->mask[i] = 1;
    }
    return HASS_OK;
}

static hass_status dg_alloc(dg *g, int64_t max_len, hass_err *err) {
    g->max_len = max_len;
    g->ids = malloc((size_t)max_len * sizeof *g->ids);
    g->mask = malloc((size_t)max_len);
    g->tmp_cap = 1024;
    g->tmp = malloc((size_t)g->tmp_cap * sizeof *g->tmp);
    if (!g->ids || !g->mask || !g->tmp)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    return HASS_OK;
}

static void dg_free(dg *g) {
    free(g->ids);
    free(g->mask);
    free(g->tmp);
    if (g->kv_ok)
        hass_kv_free(&g->kv);
    if (g->smp_ok)
        hass_sampler_free(&g->smp);
    hass_aligned_free(g->logits);
    hass_aligned_free(g->scratch);
    hass_aligned_free(g->feat);
}

int64_t hass_datagen_encode_record(const hass_tokenizer *tok, const char *json, int chat,
                                   int64_t max_len, int32_t **ids, uint8_t **mask, hass_err *err) {
    hass_datagen_opts o = hass_datagen_opts_default();
    dg g = {.tok = tok, .o = &o};
    conv c = {0};
    cJSON *obj = cJSON_Parse(json);
    record r = {obj, NULL, 1};
    hass_status st = dg_alloc(&g, max_len, err);
    if (!st)
        st = record_conv(&r, HASS_DG_AUTO, &c, "record", err);
    if (!st && c.prompts)
        st = hass_err_set(err, HASS_STATUS_FORMAT, "a prompt record has no answer to encode");
    if (!st)
        st = chat ? build_chat(&g, &c, 0, 0, err) : build_plain(&g, &c, 0, 0, err);
    int64_t n = g.n;
    if (!st) {
        *ids = g.ids;
        *mask = g.mask;
        g.ids = NULL;
        g.mask = NULL;
    }
    conv_free(&c);
    cJSON_Delete(obj);
    dg_free(&g);
    return st ? -1 : n;
}

/* ======================= the run ======================= */

static hass_status features(dg *g, hass_err *err) {
    hass_status st = dg_reserve(g, g->n, err);
    if (st)
        return st;
    hass_kv_truncate(&g->kv, 0);
    return hass_model_prefill(g->m, &g->kv, g->pool, g->n, g->ids, NULL, g->feat, err);
}

static int64_t record_bytes_estimate(const conv *c, int regen, const hass_datagen_opts *o) {
    int64_t bytes = 0, turns = 0;
    for (int k = 0; k < c->n; k++) {
        int asst = !strcmp(c->m[k].role, "assistant");
        if (!(asst && regen))
            bytes += (int64_t)strlen(c->m[k].content) + 16;
        turns += !strcmp(c->m[k].role, "user");
    }
    int64_t toks = bytes / 3 + 2 + (regen ? turns * o->max_new : 0);
    return toks < o->max_len ? toks : o->max_len;
}

/* Logs the disk the run needs (estimate) and refuses to start without it (+10%). */
static hass_status check_space(const char *outdir, int64_t est_bytes, int64_t total, int64_t start,
                               hass_err *err) {
    struct statvfs vfs;
    double need = (double)est_bytes * (double)(total - start) / (double)total;
    hass_log(HASS_LOG_INFO,
             "datagen: %lld records (%lld done), about %.1f MB of features to write "
             "(estimate; %.1f MB for the whole store)",
             (long long)total, (long long)start, need / 1e6, (double)est_bytes / 1e6);
    if (statvfs(outdir, &vfs) == 0) {
        double avail = (double)vfs.f_bavail * (double)vfs.f_frsize;
        if (avail < need * 1.1)
            return hass_err_set(err, HASS_STATUS_IO, "%s: needs about %.1f MB, only %.1f MB free",
                                outdir, need * 1.1 / 1e6, avail / 1e6);
    }
    return HASS_OK;
}

/* Buffers, KV cache, sampler and stop ids of a datagen run (g->m, tok, pool, o are set). */
static hass_status dg_setup(dg *g, hass_err *err) {
    const hass_model *m = g->m;
    const hass_datagen_opts *o = g->o;
    hass_status st = dg_alloc(g, o->max_len, err);
    if (st)
        return st;
    /* the positions grow with the records (dg_reserve): max_len is only their bound */
    int64_t cap = o->max_len < 256 ? o->max_len : 256;
    st = hass_kv_init(&g->kv, m, cap, cap < GEN_BATCH ? cap : GEN_BATCH, g->pool, err);
    g->kv_ok = st == HASS_OK;
    if (st)
        return st;
    hass_sampler_params sp = {.temperature = o->temperature, .top_p = 1.0f, .seed = o->seed};
    st = hass_sampler_init(&g->smp, &sp, m->cfg.V, err);
    g->smp_ok = st == HASS_OK;
    if (st)
        return st;
    g->logits = hass_aligned_alloc((size_t)m->cfg.V * sizeof(float));
    g->scratch = hass_aligned_alloc((size_t)m->cfg.V * sizeof(float));
    g->feat = hass_aligned_alloc((size_t)(cap * m->cfg.d) * sizeof(float));
    if (!g->logits || !g->scratch || !g->feat)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    for (int i = 0; i < m->cfg.n_stop && g->n_stop < 16; i++)
        g->stop[g->n_stop++] = m->cfg.stop_ids[i];
    int32_t ts[8];
    int nt = hass_tokenizer_stop_ids(g->tok, ts, 8);
    for (int i = 0; i < nt && i < 8 && g->n_stop < 16; i++)
        if (!is_stop(g, ts[i]))
            g->stop[g->n_stop++] = ts[i];
    return HASS_OK;
}

hass_status hass_datagen_run(const hass_model *m, const hass_tokenizer *tok, hass_pool *pool,
                             const char *outdir, const hass_datagen_opts *opts,
                             hass_datagen_report *rep, hass_err *err) {
    memset(rep, 0, sizeof *rep);
    hass_datagen_opts oc = *opts;
    const hass_datagen_opts *o = &oc;
    if (oc.max_len < 2)
        return hass_err_set(err, HASS_STATUS_ARG, "--max-len must be at least 2");
    if (oc.max_len > m->cfg.max_ctx) {
        hass_log(HASS_LOG_INFO, "datagen: --max-len %lld clamped to the model context %lld",
                 (long long)oc.max_len, (long long)m->cfg.max_ctx);
        oc.max_len = m->cfg.max_ctx;
    }
    if (o->max_new < 1 || o->shard_tokens < 1 || o->limit < 0 || o->temperature < 0)
        return hass_err_set(err, HASS_STATUS_ARG, "bad datagen options");
    if (hass_tokenizer_check_vocab(tok, m->cfg.V, err))
        return err->code;
    double t0 = hass_now();
    dataset ds;
    conv c = {0};
    dg g = {.m = m, .tok = tok, .pool = pool, .o = o};
    hass_featstore_writer *w = NULL;
    hass_status st = dataset_load(&ds, o->data_path, o->format, err);
    int64_t total = 0, est_tokens = 0;
    if (!st) {
        total = o->limit > 0 && o->limit < ds.n ? o->limit : ds.n;
        if (total == 0)
            st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: no records", o->data_path);
    }
    /* validate every record first; estimate the tokens */
    for (int64_t i = 0; !st && i < total; i++) {
        st = record_conv(&ds.recs[i], o->format, &c, o->data_path, err);
        if (!st && c.n == 0)
            st = REC_FAIL("%s: record %lld: empty", o->data_path, (long long)ds.recs[i].lineno);
        if (!st)
            est_tokens += record_bytes_estimate(&c, o->regen || c.prompts, o);
    }
    rep->records_total = total;
    rep->est_bytes = est_tokens * (int64_t)hass_featstore_seq_bytes(1, m->cfg.d);
    char args[1400];
    snprintf(args, sizeof args,
             "format=%s chat=%d regen=%d temperature=%g seed=%llu max_new=%lld max_len=%lld "
             "limit=%lld shard_tokens=%lld data=%s",
             fmt_name(o->format), o->chat, o->regen, (double)o->temperature,
             (unsigned long long)o->seed, (long long)o->max_new, (long long)o->max_len,
             (long long)o->limit, (long long)o->shard_tokens, o->data_path);
    if (!st) {
        w = hass_featstore_writer_open(outdir, m, o->model_path, args, o->shard_tokens, err);
        if (!w)
            st = err->code;
    }
    int64_t start = w ? hass_featstore_writer_resume_records(w) : 0;
    if (!st && start > total)
        st = hass_err_set(err, HASS_STATUS_FORMAT,
                          "%s: the index says %lld records were consumed, the input has %lld",
                          outdir, (long long)start, (long long)total);
    if (!st)
        st = check_space(outdir, rep->est_bytes, total, start, err);
    if (!st && hass_featstore_writer_complete(w) && start == total) {
        rep->records_done = total;
        rep->complete = 1;
        hass_log(HASS_LOG_INFO, "datagen: %s is already complete", outdir);
        goto done;
    }
    if (!st)
        st = dg_setup(&g, err);
    hass_progress prog;
    hass_progress_init(&prog, "datagen", "records", total - start);
    int64_t shards0 = w ? hass_featstore_writer_shards(w) : 0;
    for (int64_t i = start; !st && i < total; i++) {
        st = record_conv(&ds.recs[i], o->format, &c, o->data_path, err);
        if (st)
            break;
        int regen = o->regen || c.prompts;
        st = o->chat ? build_chat(&g, &c, regen, i, err) : build_plain(&g, &c, regen, i, err);
        if (st)
            break;
        int64_t nm = 0;
        for (int64_t k = 0; k + 1 < g.n; k++)
            nm += g.mask[k];
        if (g.n < 2 || nm == 0) {
            hass_featstore_writer_skip(w, i + 1);
            rep->records_skipped++;
        } else {
            st = features(&g, err);
            if (!st)
                st = hass_featstore_writer_add(w, g.n, g.ids, g.mask, g.feat, i + 1, err);
            rep->sequences++;
            rep->tokens += g.n;
            rep->masked += nm;
        }
        rep->records_done = i + 1;
        hass_progress_update(&prog, i + 1 - start);
        if (!st && o->stop_after_shards > 0 &&
            hass_featstore_writer_shards(w) - shards0 >= o->stop_after_shards && i + 1 < total)
            break;
    }
    if (!st) {
        rep->complete = rep->records_done == total;
        st = hass_featstore_writer_finish(w, rep->complete, err);
    }
done:
    rep->generated = g.generated;
    rep->seconds = hass_now() - t0;
    hass_featstore_writer_destroy(w);
    dg_free(&g);
    conv_free(&c);
    dataset_free(&ds);
    return st;
}
