/*
 * pretrain_run.c — `hass pretrain` as a library call (pretrain_run.h): the corpus as a cached
 * token stream, the step loop, evaluation, atomic checkpoints with bit-exact resume, and the
 * export of the model as a Hugging Face directory.
 */
#include "train/pretrain_run.h"
#include "formats/formats.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/blas.h"
#include "train/gemm.h"
#include "train/train_state.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

hass_pretrain_opts hass_pretrain_opts_default(void) {
    hass_pretrain_opts o = {0};
    o.cfg = (hass_lm_config){.d = 512,
                             .n_layers = 16,
                             .H = 8,
                             .Hkv = 4,
                             .ffn = 1408,
                             .V = 0,
                             .ctx = 1024,
                             .rms_eps = 1e-5f,
                             .rope_theta = 10000.0f,
                             .tie = 0};
    o.batch = 4, o.accum = 2;
    o.lr = 1e-3f, o.min_lr = 1e-4f, o.warmup = 100;
    o.weight_decay = 0.1f, o.clip = 1.0f, o.seed = 1;
    o.eval_every = 100, o.eval_windows = 32, o.ckpt_every = 50, o.log_every = 1;
    o.gemm = -1;
    return o;
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* ------------------------------------------------------------------------------------------ */
/* corpus -> token stream                                                                      */

typedef struct {
    int32_t *ids;
    int64_t n, cap;
} ivec;

static int ivec_push(ivec *v, const int32_t *x, int64_t n) {
    if (n == 0) /* x may be NULL (a thread that got no records) */
        return 0;
    if (v->n + n > v->cap) {
        int64_t cap = v->cap ? v->cap : 1 << 16;
        while (cap < v->n + n)
            cap *= 2;
        int32_t *p = realloc(v->ids, (size_t)cap * sizeof *p);
        if (!p)
            return -1;
        v->ids = p, v->cap = cap;
    }
    memcpy(v->ids + v->n, x, (size_t)n * sizeof *x);
    v->n += n;
    return 0;
}

typedef struct {
    const hass_tokenizer *tok;
    const char *text;
    const size_t *line; /* n_lines + 1 starts */
    int64_t n_lines;
    ivec *out;         /* per thread */
    int64_t *bad_line; /* per thread: first failing line (1-based), 0 = none */
    hass_err *errs;    /* per thread */
} tok_ctx;

/* Encodes one JSONL record (hass_tokenizer_render_record: BOS + chat template or BOS + text +
 * EOS, specials parsed); 0 ok, -1 with err set. */
static int encode_record(const hass_tokenizer *tok, const char *s, size_t len, ivec *out,
                         hass_err *err) {
    size_t tl = 0;
    char *text = hass_tokenizer_render_record(tok, s, len, &tl, err);
    if (!text)
        return -1;
    int32_t *ids = NULL;
    int64_t n = hass_tokenizer_encode(tok, text, tl, 0, 1, NULL, 0, err);
    int rc = -1;
    if (n >= 0 && (ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *ids)) &&
        hass_tokenizer_encode(tok, text, tl, 0, 1, ids, n, err) == n && !ivec_push(out, ids, n))
        rc = 0;
    else if (n >= 0)
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    free(ids), free(text);
    return rc;
}

static void tok_task(void *vc, int ith, int nth) {
    tok_ctx *c = vc;
    int64_t lo, hi;
    hass_split(c->n_lines, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++) {
        const char *s = c->text + c->line[i];
        size_t len = c->line[i + 1] - c->line[i];
        while (len && (s[len - 1] == '\n' || s[len - 1] == '\r'))
            len--;
        size_t k = 0;
        while (k < len && (s[k] == ' ' || s[k] == '\t'))
            k++;
        if (k == len)
            continue; /* blank line */
        if (encode_record(c->tok, s, len, &c->out[ith], &c->errs[ith])) {
            c->bad_line[ith] = i + 1;
            return;
        }
    }
}

/* Tokenizes a JSONL corpus (in parallel, output in file order). */
static hass_status tokenize_file(const hass_tokenizer *tok, const char *path, hass_pool *pool,
                                 ivec *out, size_t *bytes, hass_err *err) {
    char *text = NULL;
    size_t size = 0;
    if (hass_read_file_max(path, HASS_READ_DATA_MAX, &text, &size, err))
        return hass_err_prefix(err, err->code, path);
    if (memchr(text, 0, size)) {
        free(text);
        return hass_err_set(err, HASS_STATUS_FORMAT, "%s: NUL byte in a JSONL file", path);
    }
    int64_t n_lines = 0;
    for (size_t i = 0; i < size; i++)
        n_lines += text[i] == '\n';
    n_lines += size && text[size - 1] != '\n';
    size_t *line = malloc((size_t)(n_lines + 1) * sizeof *line);
    int nth = hass_pool_size(pool);
    ivec *outs = calloc((size_t)nth, sizeof *outs);
    int64_t *bad = calloc((size_t)nth, sizeof *bad);
    hass_err *errs = calloc((size_t)nth, sizeof *errs);
    hass_status st = HASS_OK;
    if (!line || !outs || !bad || !errs) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    int64_t k = 0;
    line[k++] = 0;
    for (size_t i = 0; i < size; i++)
        if (text[i] == '\n' && k <= n_lines)
            line[k++] = i + 1;
    line[n_lines] = size;
    tok_ctx c = {tok, text, line, n_lines, outs, bad, errs};
    hass_pool_run(pool, tok_task, &c);
    for (int t = 0; t < nth && !st; t++)
        if (bad[t])
            st = hass_err_set(err, errs[t].code ? errs[t].code : HASS_STATUS_FORMAT,
                              "%s: line %lld: %s", path, (long long)bad[t], errs[t].msg);
    for (int t = 0; t < nth && !st; t++)
        if (ivec_push(out, outs[t].ids, outs[t].n))
            st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    if (!st && out->n < 2)
        st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: no records", path);
    *bytes = size;
done:
    for (int t = 0; outs && t < nth; t++)
        free(outs[t].ids);
    free(outs), free(bad), free(errs), free(line), free(text);
    return st;
}

hass_status hass_corpus_tokenize(const hass_tokenizer *tok, const char *path, hass_pool *pool,
                                 int32_t **ids, int64_t *n, size_t *bytes, hass_err *err) {
    ivec v = {0};
    hass_status st = tokenize_file(tok, path, pool, &v, bytes, err);
    if (st) {
        free(v.ids);
        return st;
    }
    *ids = v.ids, *n = v.n;
    return HASS_OK;
}

/* The stream of a corpus file, from out_dir/cache/<name>.tok when its key matches. Cache file:
 * "HASSTOK1", u64 key, i64 n, i64 bytes, then n int32 ids. */
static hass_status load_stream(const hass_tokenizer *tok, const char *path, uint64_t tok_key,
                               const char *out_dir, const char *name, hass_pool *pool, ivec *out,
                               size_t *bytes, hass_err *err) {
    hass_mapfile mf;
    if (hass_mapfile_open(&mf, path, err))
        return hass_err_prefix(err, err->code, path);
    uint64_t key = fnv1a(tok_key, mf.data, mf.size);
    hass_mapfile_close(&mf);
    char cpath[1200];
    snprintf(cpath, sizeof cpath, "%s/cache/%s.tok", out_dir, name);
    if (hass_file_exists(cpath) && hass_mapfile_open(&mf, cpath, NULL) == HASS_OK) {
        int ok = 0;
        if (mf.size >= 32 && !memcmp(mf.data, "HASSTOK1", 8)) {
            uint64_t k;
            int64_t n, b;
            memcpy(&k, mf.data + 8, 8), memcpy(&n, mf.data + 16, 8), memcpy(&b, mf.data + 24, 8);
            if (k == key && n >= 2 && b >= 0 && (uint64_t)n == (mf.size - 32) / 4 &&
                (mf.size - 32) % 4 == 0) {
                out->n = 0;
                ok = !ivec_push(out, (const int32_t *)(mf.data + 32), n);
                *bytes = (size_t)b;
            }
        }
        hass_mapfile_close(&mf);
        if (ok) {
            int32_t V = hass_tokenizer_vocab_size(tok);
            for (int64_t i = 0; i < out->n; i++)
                if (out->ids[i] < 0 || out->ids[i] >= V)
                    return hass_err_set(err, HASS_STATUS_FORMAT, "%s: token out of range", cpath);
            return HASS_OK;
        }
    }
    hass_log(HASS_LOG_INFO, "tokenizing %s", path);
    double t0 = hass_now();
    hass_status st = tokenize_file(tok, path, pool, out, bytes, err);
    if (st)
        return st;
    hass_log(HASS_LOG_INFO, "%s: %zu bytes -> %lld tokens (%.2f bytes/token) in %.1f s", path,
             *bytes, (long long)out->n, (double)*bytes / (double)out->n, hass_now() - t0);
    size_t sz = 32 + (size_t)out->n * 4;
    uint8_t *buf = malloc(sz);
    if (!buf)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    int64_t n = out->n, b = (int64_t)*bytes;
    memcpy(buf, "HASSTOK1", 8), memcpy(buf + 8, &key, 8), memcpy(buf + 16, &n, 8);
    memcpy(buf + 24, &b, 8), memcpy(buf + 32, out->ids, (size_t)n * 4);
    char dir[1100];
    snprintf(dir, sizeof dir, "%s/cache", out_dir);
    if (mkdir(dir, 0755) && errno != EEXIST)
        st = hass_err_set(err, HASS_STATUS_IO, "%s: %s", dir, strerror(errno));
    if (!st)
        st = hass_write_file_atomic(cpath, buf, sz, err);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* export                                                                                      */

static hass_status copy_file(const char *from, const char *to, hass_err *err) {
    char *buf;
    size_t n;
    if (hass_read_file(from, &buf, &n, err))
        return hass_err_prefix(err, err->code, from);
    hass_status st = hass_write_file_atomic(to, buf, n, err);
    free(buf);
    return st;
}

hass_status hass_pretrain_export(const hass_lm_config *cfg, const hass_lm_layout *L,
                                 const float *params, const char *tokenizer_json, const char *dir,
                                 hass_dtype dt, hass_err *err) {
    hass_tokenizer *tok = hass_tokenizer_load_json(tokenizer_json, err);
    if (!tok)
        return err->code;
    hass_model_config mc =
        hass_model_config_make(cfg->d, cfg->ffn, cfg->n_layers, cfg->H, cfg->Hkv, cfg->V, cfg->ctx);
    mc.eps = cfg->rms_eps, mc.rope = hass_rope_plain(cfg->rope_theta);
    mc.tie_embeddings = cfg->tie;
    mc.bos = hass_tokenizer_bos(tok);
    mc.n_stop = hass_tokenizer_stop_ids(tok, mc.stop_ids, HASS_MAX_STOP);
    if (mc.n_stop > HASS_MAX_STOP)
        mc.n_stop = HASS_MAX_STOP;
    hass_tensor *ts = calloc((size_t)L->n, sizeof *ts);
    hass_status st = HASS_OK;
    hass_model *m = NULL;
    if (!ts) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; i < L->n; i++) {
        const hass_lm_tensor *t = &L->t[i];
        snprintf(ts[i].name, sizeof ts[i].name, "%s", t->name);
        ts[i].dtype = HASS_DTYPE_F32;
        ts[i].ndim = t->shape[1] ? 2 : 1;
        ts[i].shape[0] = t->shape[0], ts[i].shape[1] = t->shape[1];
        ts[i].data = params + t->off;
        ts[i].nbytes = t->numel * sizeof(float);
    }
    if (!(m = hass_model_from_tensors(&mc, ts, L->n, err))) {
        st = err->code;
        goto done;
    }
    if ((st = hass_model_export_hf(m, dir, dt, 0, err)))
        goto done;
    char to[1200], from[1200];
    snprintf(to, sizeof to, "%s/tokenizer.json", dir);
    if ((st = copy_file(tokenizer_json, to, err)))
        goto done;
    snprintf(from, sizeof from, "%s", tokenizer_json);
    char *slash = strrchr(from, '/');
    snprintf(slash ? slash + 1 : from, sizeof from - (size_t)(slash ? slash + 1 - from : 0),
             "tokenizer_config.json");
    snprintf(to, sizeof to, "%s/tokenizer_config.json", dir);
    if (hass_file_exists(from) && (st = copy_file(from, to, err)))
        goto done;
    char gen[512];
    int k = snprintf(gen, sizeof gen,
                     "{\n  \"_from_model_config\": true,\n  \"bos_token_id\": %d,\n"
                     "  \"eos_token_id\": [",
                     mc.bos);
    for (int i = 0; i < mc.n_stop; i++)
        k += snprintf(gen + k, sizeof gen - (size_t)k, "%s%d", i ? ", " : "", mc.stop_ids[i]);
    k += snprintf(gen + k, sizeof gen - (size_t)k, "],\n  \"do_sample\": false\n}\n");
    snprintf(to, sizeof to, "%s/generation_config.json", dir);
    st = hass_write_file_atomic(to, gen, (size_t)k, err);
done:
    hass_model_free(m);
    free(ts);
    hass_tokenizer_free(tok);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* state                                                                                       */

static hass_status save_state(const char *dir, const hass_lm_trainer *tr, int64_t step,
                              int64_t tokens, const char *config, hass_err *err) {
    hass_train_state s = {.step = step,
                          .adam_t = tr->adam_t,
                          .epoch = -1,
                          .cursor = -1,
                          .tokens = tokens,
                          .config = (char *)config};
    snprintf(s.gemm, sizeof s.gemm, "%s", hass_gemm_name(hass_gemm_get_default()));
    return hass_train_state_write(dir, &s, tr->params, tr->adam_m, tr->adam_v, tr->layout.total,
                                  err);
}

/* Whether two configuration strings (config_string) agree but for the learning-rate schedule
 * (steps, lr, min_lr, warmup). */
static int same_but_schedule(const char *a, const char *b) {
    static const char *const sched[] = {"steps=", "lr=", "min_lr=", "warmup="};
    for (;;) {
        while (*a == ' ')
            a++;
        while (*b == ' ')
            b++;
        int skip_a = 0, skip_b = 0;
        for (size_t k = 0; k < sizeof sched / sizeof sched[0]; k++) {
            skip_a |= !strncmp(a, sched[k], strlen(sched[k]));
            skip_b |= !strncmp(b, sched[k], strlen(sched[k]));
        }
        if (skip_a || skip_b) { /* drop the schedule token on either side */
            if (skip_a)
                a += strcspn(a, " ");
            if (skip_b)
                b += strcspn(b, " ");
            continue;
        }
        size_t la = strcspn(a, " "), lb = strcspn(b, " ");
        if (la != lb || strncmp(a, b, la))
            return 0;
        if (!la)
            return 1;
        a += la, b += lb;
    }
}

/* 1 = resumed, 0 = no state, -1 = error. A step trains at most max_tokens_step tokens. */
static int load_state(const char *dir, hass_lm_trainer *tr, int64_t total, int64_t max_tokens_step,
                      int64_t *step, int64_t *tokens, const char *config, int reschedule,
                      hass_err *err) {
    hass_train_state s;
    int rc = hass_train_state_read(dir, total, tr->layout.total, tr->params, tr->adam_m, tr->adam_v,
                                   &s, err);
    if (rc == 0 || (rc < 0 && !s.config)) {
        hass_train_state_free(&s);
        return rc;
    }
    int64_t cap = 0;
    if (reschedule ? !same_but_schedule(s.config, config) : strcmp(s.config, config) != 0) {
        /* name the first setting that differs */
        const char *a = s.config, *b = config;
        while (*a && *a == *b)
            a++, b++;
        while (a > s.config && a[-1] != ' ')
            a--, b--;
        hass_err_set(err, HASS_STATUS_ARG,
                     "%s/%s holds a run with %.*s where this one has %.*s; use another -o%s", dir,
                     HASS_TRAIN_STATE_FILE, (int)strcspn(a, " "), a, (int)strcspn(b, " "), b,
                     same_but_schedule(s.config, config)
                         ? " (or --reschedule to continue it on the new schedule)"
                         : "");
        rc = -1;
    } else if (rc < 0) {
        /* the arrays' error stands */
    } else if (s.tokens < 0 || __builtin_mul_overflow(s.step, max_tokens_step, &cap) ||
               s.tokens > cap) {
        hass_err_set(err, HASS_STATUS_FORMAT,
                     "%s/%s: trainer metadata tokens missing or more than %lld steps can train",
                     dir, HASS_TRAIN_STATE_FILE, (long long)s.step);
        rc = -1;
    }
    if (rc == 1) {
        hass_train_state_use_gemm(&s, dir);
        *step = s.step, *tokens = s.tokens;
        tr->adam_t = s.adam_t;
    }
    hass_train_state_free(&s);
    return rc;
}

/* Keeps the log lines whose "step" is <= step (a resumed run rewrites what came after). */
static hass_status trim_log(const char *path, int64_t step, hass_err *err) {
    if (!hass_file_exists(path))
        return HASS_OK;
    char *buf;
    size_t n;
    if (hass_read_file(path, &buf, &n, err))
        return err->code;
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && buf[e] != '\n')
            e++;
        const char *s = strstr(buf + i, "\"step\":");
        long long v = s && s < buf + e ? strtoll(s + 7, NULL, 10) : -1;
        if (e < n && v >= 0 && v <= step) {
            memmove(buf + w, buf + i, e + 1 - i);
            w += e + 1 - i;
        }
        i = e + 1;
    }
    hass_status st = hass_write_file_atomic(path, buf, w, err);
    free(buf);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* the run                                                                                     */

static void make_perm(int32_t *perm, int64_t n, uint64_t seed, int64_t epoch) {
    hass_rng r;
    hass_rng_seed(&r, seed ^ (0x9E3779B97F4A7C15ull * (uint64_t)(epoch + 1)));
    for (int64_t i = 0; i < n; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(hass_rng_u64(&r) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
}

static hass_status check_opts(const hass_pretrain_opts *o, hass_err *err) {
    if (!o->data || !o->tokenizer || !o->out_dir)
        return hass_err_set(err, HASS_STATUS_ARG, "pretrain: data, tokenizer and output needed");
    if (o->batch < 1 || o->accum < 1 || o->steps < 1 || o->warmup < 0 || o->warmup >= o->steps)
        return hass_err_set(err, HASS_STATUS_ARG,
                            "pretrain: need batch, accum, steps >= 1 and 0 <= warmup < steps");
    if (!(o->lr > 0.0f) || !(o->min_lr >= 0.0f) || o->min_lr > o->lr ||
        !(o->weight_decay >= 0.0f) || !(o->clip >= 0.0f) || !isfinite(o->lr))
        return hass_err_set(err, HASS_STATUS_ARG,
                            "pretrain: need lr > 0, 0 <= min-lr <= lr, wd >= 0, clip >= 0");
    if (o->eval_every < 0 || o->eval_windows < 0 || o->ckpt_every < 0 || o->log_every < 1 ||
        o->stop_at < 0 || !(o->time_limit >= 0.0))
        return hass_err_set(err, HASS_STATUS_ARG, "pretrain: negative interval or limit");
    return HASS_OK;
}

/* The configuration a resumed run must match (everything that changes the trajectory). */
static void config_string(char *s, size_t cap, const hass_pretrain_opts *o, const hass_lm_config *c,
                          uint64_t data_key) {
    snprintf(s, cap,
             "d=%lld L=%lld H=%lld Hkv=%lld ffn=%lld V=%lld ctx=%lld eps=%g theta=%g tie=%d "
             "batch=%lld accum=%lld steps=%lld lr=%g min_lr=%g warmup=%lld wd=%g clip=%g "
             "seed=%llu data=%016llx",
             (long long)c->d, (long long)c->n_layers, (long long)c->H, (long long)c->Hkv,
             (long long)c->ffn, (long long)c->V, (long long)c->ctx, (double)c->rms_eps,
             (double)c->rope_theta, c->tie, (long long)o->batch, (long long)o->accum,
             (long long)o->steps, (double)o->lr, (double)o->min_lr, (long long)o->warmup,
             (double)o->weight_decay, (double)o->clip, (unsigned long long)o->seed,
             (unsigned long long)data_key);
}

static double eval_loss(hass_lm_trainer *tr, const ivec *vs, int64_t nwin, int64_t B,
                        int32_t *batch) {
    int64_t T = tr->cfg.ctx;
    double sum = 0.0;
    int64_t cnt = 0;
    for (int64_t w0 = 0; w0 < nwin; w0 += B) {
        int64_t b = nwin - w0 < B ? nwin - w0 : B;
        for (int64_t i = 0; i < b; i++)
            memcpy(batch + i * (T + 1), vs->ids + (w0 + i) * T, (size_t)(T + 1) * 4);
        int64_t c;
        sum += hass_lm_forward_backward(tr, batch, b, 1.0f, 0, &c);
        cnt += c;
    }
    return cnt ? sum / (double)cnt : NAN;
}

static void log_line(FILE *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_line(FILE *f, const char *fmt, ...) {
    if (!f)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fflush(f);
}

hass_status hass_pretrain_run(hass_pool *pool, const hass_pretrain_opts *o,
                              hass_pretrain_report *rep, hass_err *err) {
    memset(rep, 0, sizeof *rep);
    rep->val_loss = NAN;
    hass_status st = check_opts(o, err);
    if (st)
        return st;
    hass_tokenizer *tok = hass_tokenizer_load_json(o->tokenizer, err);
    if (!tok)
        return err->code;
    hass_lm_config cfg = o->cfg;
    int32_t V = hass_tokenizer_vocab_size(tok);
    if (cfg.V == 0)
        cfg.V = V;
    ivec train = {0}, valid = {0};
    hass_lm_trainer *tr = NULL;
    int32_t *perm = NULL, *batch = NULL;
    FILE *log = NULL;
    if (cfg.V != V) {
        st = hass_err_set(err, HASS_STATUS_ARG, "model vocabulary %lld != tokenizer's %d",
                          (long long)cfg.V, V);
        goto done;
    }
    if ((st = hass_lm_config_check(&cfg, err)))
        goto done;
    if (mkdir(o->out_dir, 0755) && errno != EEXIST) {
        st = hass_err_set(err, HASS_STATUS_IO, "%s: %s", o->out_dir, strerror(errno));
        goto done;
    }
    hass_mapfile mf;
    if ((st = hass_mapfile_open(&mf, o->tokenizer, err)))
        goto done;
    uint64_t tok_key = fnv1a(0xcbf29ce484222325ull, mf.data, mf.size);
    hass_mapfile_close(&mf);
    size_t tbytes = 0, vbytes = 0;
    if ((st = load_stream(tok, o->data, tok_key, o->out_dir, "train", pool, &train, &tbytes, err)))
        goto done;
    if (o->valid &&
        (st = load_stream(tok, o->valid, tok_key, o->out_dir, "valid", pool, &valid, &vbytes, err)))
        goto done;
    int64_t T = cfg.ctx, nw = (train.n - 1) / T, nvw = valid.n > 1 ? (valid.n - 1) / T : 0;
    rep->train_tokens = train.n, rep->valid_tokens = valid.n;
    rep->train_bytes_per_token = (double)tbytes / (double)train.n;
    if (nw < 1) {
        st = hass_err_set(err, HASS_STATUS_RANGE, "%s: %lld tokens, fewer than one window of %lld",
                          o->data, (long long)train.n, (long long)T + 1);
        goto done;
    }
    if (nvw > o->eval_windows)
        nvw = o->eval_windows;
    uint64_t data_key = fnv1a(tok_key, train.ids, (size_t)train.n * 4);
    char config[1024];
    config_string(config, sizeof config, o, &cfg, data_key);

    hass_gemm_kind gk =
        o->gemm >= 0 && o->gemm < HASS_GEMM_COUNT && hass_gemm_available((hass_gemm_kind)o->gemm)
            ? (hass_gemm_kind)o->gemm
            : hass_gemm_pick(pool);
    hass_gemm_set_default(gk, pool);
    rep->gemm = gk;
    hass_log(HASS_LOG_INFO, "pretrain: matrix products in %s (%s kernels; BLAS: %s)",
             hass_gemm_name(gk), hass_cpu_isa_name(), hass_blas_name());
    if (!(tr = hass_lm_trainer_create(&cfg, o->batch, o->seed, pool, err))) {
        st = err->code;
        goto done;
    }
    int64_t step = 0, tokens_total = 0;
    int rc = load_state(o->out_dir, tr, o->steps, o->accum * o->batch * T, &step, &tokens_total,
                        config, o->reschedule, err);
    if (rc < 0) {
        st = err->code;
        goto done;
    }
    char path[1200], model_dir[1200];
    snprintf(path, sizeof path, "%s/log.jsonl", o->out_dir);
    snprintf(model_dir, sizeof model_dir, "%s/model", o->out_dir);
    if ((st = trim_log(path, rc ? step : -1, err)))
        goto done;
    if (!(log = fopen(path, "a"))) {
        st = hass_err_set(err, HASS_STATUS_IO, "%s: cannot open for appending", path);
        goto done;
    }
    hass_log(HASS_LOG_INFO,
             "pretrain: %.1fM parameters, %lld train tokens (%lld windows of %lld), %lld valid "
             "tokens; %s at step %lld of %lld",
             (double)tr->layout.n_param / 1e6, (long long)train.n, (long long)nw, (long long)T,
             (long long)valid.n, rc ? "resuming" : "starting", (long long)step,
             (long long)o->steps);
    perm = malloc((size_t)nw * sizeof *perm);
    batch = malloc((size_t)(o->batch * (T + 1)) * sizeof *batch);
    if (!perm || !batch) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    rep->start_step = step, rep->total = o->steps;
    int64_t perm_epoch = -1, tokens_step = o->accum * o->batch * T;
    double t_start = hass_now(), flops_step = hass_lm_step_flops(&cfg, o->batch) * (double)o->accum;
    if (step == 0 && nvw > 0) {
        rep->val_loss = eval_loss(tr, &valid, nvw, o->batch, batch);
        log_line(log, "{\"step\":0,\"val_loss\":%.6f}\n", rep->val_loss);
        hass_log(HASS_LOG_INFO, "step 0: validation loss %.4f", rep->val_loss);
    }
    hass_progress prog;
    hass_progress_init(&prog, "pretrain", "step", o->steps);
    hass_progress_start_at(&prog, step);
    int64_t last_ckpt = step;
    double step_time = 0.0;
    while (step < o->steps) {
        double t0 = hass_now();
        hass_lm_zero_grads(tr);
        double loss = 0.0;
        int64_t cnt_all = 0;
        for (int64_t a = 0; a < o->accum; a++) {
            for (int64_t b = 0; b < o->batch; b++) {
                int64_t k = (step * o->accum + a) * o->batch + b, ep = k / nw;
                if (ep != perm_epoch)
                    make_perm(perm, nw, o->seed, ep), perm_epoch = ep;
                memcpy(batch + b * (T + 1), train.ids + (int64_t)perm[k % nw] * T,
                       (size_t)(T + 1) * 4);
            }
            int64_t cnt;
            loss +=
                hass_lm_forward_backward(tr, batch, o->batch, 1.0f / (float)tokens_step, 1, &cnt);
            cnt_all += cnt;
        }
        double norm = hass_lm_grad_norm(tr);
        if (!isfinite(loss) || !isfinite(norm)) {
            st = hass_err_set(err, HASS_STATUS_RANGE,
                              "step %lld: the loss or the gradient is not finite (loss %g, "
                              "gradient norm %g); last checkpoint kept at step %lld",
                              (long long)step + 1, loss, norm, (long long)last_ckpt);
            goto done;
        }
        float lr = hass_lr_cosine(step, o->warmup, o->steps, o->lr, o->min_lr);
        hass_lm_optimizer_step(tr, lr, o->weight_decay, o->clip, norm);
        step++;
        tokens_total += cnt_all;
        rep->tokens += cnt_all;
        step_time = hass_now() - t0;
        rep->loss = loss / (double)cnt_all;
        double el = hass_now() - t_start;
        rep->seconds = el;
        rep->tokens_per_s = (double)rep->tokens / el;
        rep->gflops = flops_step * (double)(step - rep->start_step) / el / 1e9;
        if (step % o->log_every == 0 || step == o->steps)
            log_line(log,
                     "{\"step\":%lld,\"lr\":%.6g,\"loss\":%.6f,\"grad_norm\":%.4f,\"tokens\":%lld,"
                     "\"tokens_per_s\":%.1f,\"step_seconds\":%.3f,\"gflops\":%.1f}\n",
                     (long long)step, (double)lr, rep->loss, norm, (long long)tokens_total,
                     (double)cnt_all / step_time, step_time, flops_step / step_time / 1e9);
        hass_progress_update(&prog, step);
        if (nvw > 0 && o->eval_every > 0 && (step % o->eval_every == 0 || step == o->steps)) {
            rep->val_loss = eval_loss(tr, &valid, nvw, o->batch, batch);
            log_line(log, "{\"step\":%lld,\"val_loss\":%.6f}\n", (long long)step, rep->val_loss);
            hass_log(HASS_LOG_INFO, "step %lld: loss %.4f, validation loss %.4f, %.0f tokens/s",
                     (long long)step, rep->loss, rep->val_loss, rep->tokens_per_s);
        }
        int stop_now =
            (o->stop_at > 0 && step >= o->stop_at) || (o->stop && *o->stop) ||
            (o->time_limit > 0 && hass_now() - t_start + 1.5 * step_time + 10.0 > o->time_limit);
        if (step == o->steps || stop_now || (o->ckpt_every > 0 && step % o->ckpt_every == 0)) {
            if ((st = save_state(o->out_dir, tr, step, tokens_total, config, err)) ||
                (st = hass_pretrain_export(&cfg, &tr->layout, tr->params, o->tokenizer, model_dir,
                                           HASS_DTYPE_BF16, err)))
                goto done;
            last_ckpt = step;
        }
        if (stop_now)
            break;
    }
    rep->step = step;
    rep->complete = step == o->steps;
done:
    hass_gemm_set_default(HASS_GEMM_F32, NULL);
    if (log)
        fclose(log);
    free(perm), free(batch), free(train.ids), free(valid.ids);
    hass_lm_trainer_destroy(tr);
    hass_tokenizer_free(tok);
    return st;
}
