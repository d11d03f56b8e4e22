/*
 * eval.c — the evaluation loop of eval.h: prompt suites, the interleaved runs of every method
 * on every item, runs.jsonl (append, resume), the distribution check at T > 0, and the
 * aggregation into results.json. Tables and plots: report.c.
 */
#include "eval/eval.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

hass_eval_opts hass_eval_opts_default(void) {
    hass_eval_opts o;
    memset(&o, 0, sizeof o);
    o.max_new = 256;
    o.chat = 1;
    o.tree = (hass_tree_params){6, 4, 0}; /* as hass_options_default */
    o.top_p = 1.0f;
    o.dist_prompts = 4;
    o.dist_reps = 64;
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* suites                                                                                      */

void hass_eval_suite_free(hass_eval_suite *s) {
    for (int i = 0; s->q && i < s->n; i++) {
        for (int t = 0; t < s->q[i].n_turns; t++)
            free(s->q[i].turns[t]);
        free(s->q[i].turns);
    }
    free(s->q);
    memset(s, 0, sizeof *s);
}

hass_status hass_eval_suite_load(hass_eval_suite *s, const char *name, const char *path, int limit,
                                 hass_err *err) {
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    char *buf = NULL;
    size_t size = 0;
    if (hass_read_text(path, HASS_READ_MAX, &buf, &size, err)) /* a NUL byte is an error */
        return hass_err_prefix(err, err->code, path);
    int cap = 0, lineno = 0;
    hass_status st = HASS_OK;
    for (char *line = buf, *next; line && *line && (limit <= 0 || s->n < limit); line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        lineno++;
        while (*line == ' ' || *line == '\t' || *line == '\r')
            line++;
        if (!*line)
            continue;
        cJSON *o = cJSON_Parse(line);
        const cJSON *turns = cJSON_GetObjectItemCaseSensitive(o, "turns");
        const cJSON *one = cJSON_GetObjectItemCaseSensitive(o, "prompt");
        if (!cJSON_IsString(one))
            one = cJSON_GetObjectItemCaseSensitive(o, "question");
        int nt = cJSON_IsArray(turns) ? cJSON_GetArraySize(turns) : cJSON_IsString(one) ? 1 : 0;
        for (int t = 0; cJSON_IsArray(turns) && t < nt; t++)
            if (!cJSON_IsString(cJSON_GetArrayItem(turns, t)))
                nt = 0;
        if (!cJSON_IsObject(o) || nt < 1 || nt > 32) {
            cJSON_Delete(o);
            st = hass_err_set(err, HASS_STATUS_FORMAT,
                              "%s:%d: not a JSON object with \"turns\" (strings), \"prompt\" or "
                              "\"question\"",
                              path, lineno);
            break;
        }
        if (s->n == cap) {
            cap = cap ? 2 * cap : 64;
            hass_eval_question *q = realloc(s->q, (size_t)cap * sizeof *q);
            if (!q) {
                cJSON_Delete(o);
                st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
                break;
            }
            s->q = q;
        }
        hass_eval_question *q = &s->q[s->n++];
        q->n_turns = nt;
        q->turns = calloc((size_t)nt, sizeof *q->turns);
        for (int t = 0; q->turns && t < nt; t++)
            q->turns[t] = strdup(cJSON_IsArray(turns) ? cJSON_GetArrayItem(turns, t)->valuestring
                                                      : one->valuestring);
        cJSON_Delete(o);
        for (int t = 0; t < nt; t++)
            if (!q->turns || !q->turns[t])
                st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        if (st)
            break;
    }
    free(buf);
    if (!st && s->n == 0)
        st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: no prompts", path);
    if (st)
        hass_eval_suite_free(s);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* runs                                                                                        */

#define MAX_METHODS (HASS_EVAL_MAX_DRAFTS + 1)
#define N_DEPTHS (HASS_TREE_MAX_DEPTH - 1) /* draft depths 1.. of accepted_at_depth */

static const char *method_name(const hass_eval_opts *o, int k) {
    return k == 0 ? "plain" : o->draft_names[k - 1];
}

/* The items already in runs.jsonl (all methods present), and the plain answers of their turns
 * (needed to continue a multi-turn conversation). Keyed by "suite/q/turn/temp". */
typedef struct {
    char **keys;
    char **answers; /* plain answer text or NULL */
    int *methods;   /* methods seen */
    int n, cap;
} done_set;

static int done_find(const done_set *d, const char *key) {
    for (int i = d->n - 1; i >= 0; i--)
        if (!strcmp(d->keys[i], key))
            return i;
    return -1;
}

static void item_key(char *k, size_t cap, const char *suite, int q, int turn, float temp) {
    snprintf(k, cap, "%s/%d/%d/%g", suite, q, turn, (double)temp);
}

static void done_free(done_set *d) {
    for (int i = 0; i < d->n; i++)
        free(d->keys[i]), free(d->answers[i]);
    free(d->keys), free(d->answers), free(d->methods);
    memset(d, 0, sizeof *d);
}

static int done_add(done_set *d, const char *key, const char *answer, int method_bit) {
    int i = done_find(d, key);
    if (i < 0) {
        if (d->n == d->cap) {
            int cap = d->cap ? 2 * d->cap : 256;
            char **k = realloc(d->keys, (size_t)cap * sizeof *k);
            char **a = k ? realloc(d->answers, (size_t)cap * sizeof *a) : NULL;
            int *m = a ? realloc(d->methods, (size_t)cap * sizeof *m) : NULL;
            if (k)
                d->keys = k;
            if (a)
                d->answers = a;
            if (!m)
                return -1;
            d->methods = m, d->cap = cap;
        }
        i = d->n++;
        d->keys[i] = strdup(key), d->answers[i] = NULL, d->methods[i] = 0;
        if (!d->keys[i])
            return -1;
    }
    d->methods[i] |= method_bit;
    if (answer && !d->answers[i])
        d->answers[i] = strdup(answer);
    return 0;
}

/* Reads OUT/runs.jsonl (lines that do not parse, e.g. a line cut by a kill, are skipped). */
static hass_status read_done(const char *path, const hass_eval_opts *o, done_set *d,
                             hass_err *err) {
    if (!hass_file_exists(path))
        return HASS_OK;
    char *buf;
    size_t n;
    if (hass_read_file(path, &buf, &n, err))
        return err->code;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *su = cJSON_GetObjectItemCaseSensitive(j, "suite");
        const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "q");
        const cJSON *tu = cJSON_GetObjectItemCaseSensitive(j, "turn");
        const cJSON *te = cJSON_GetObjectItemCaseSensitive(j, "temp");
        const cJSON *me = cJSON_GetObjectItemCaseSensitive(j, "method");
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (cJSON_IsString(su) && cJSON_IsNumber(q) && cJSON_IsNumber(tu) && cJSON_IsNumber(te) &&
            cJSON_IsString(me)) {
            int bit = 0;
            for (int k = 0; k <= o->n_drafts; k++)
                if (!strcmp(me->valuestring, method_name(o, k)))
                    bit = 1 << k;
            char key[200];
            item_key(key, sizeof key, su->valuestring, q->valueint, tu->valueint,
                     (float)te->valuedouble);
            if (bit &&
                done_add(d, key, bit == 1 && cJSON_IsString(tx) ? tx->valuestring : NULL, bit)) {
                cJSON_Delete(j);
                free(buf);
                return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
            }
        }
        cJSON_Delete(j);
    }
    free(buf);
    return HASS_OK;
}

static uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static void add_stats(cJSON *r, const hass_gen_stats *s) {
    cJSON_AddNumberToObject(r, "n_prompt", (double)s->n_prompt);
    cJSON_AddNumberToObject(r, "n_generated", (double)s->n_generated);
    cJSON_AddNumberToObject(r, "decode_seconds", s->decode_seconds);
    cJSON_AddNumberToObject(r, "prefill_seconds", s->prefill_seconds);
    cJSON_AddNumberToObject(r, "cycles", (double)s->cycles);
    cJSON_AddNumberToObject(r, "tau", s->tau);
    cJSON_AddNumberToObject(r, "draft_seconds", s->draft_seconds);
    cJSON_AddNumberToObject(r, "verify_seconds", s->verify_seconds);
    cJSON_AddNumberToObject(r, "nodes", (double)s->nodes_verified);
    cJSON *a = cJSON_AddArrayToObject(r, "accepted_at_depth");
    for (int k = 1; k <= N_DEPTHS; k++)
        cJSON_AddItemToArray(a, cJSON_CreateNumber((double)s->accepted_at_depth[k]));
}

typedef struct {
    const hass_eval_opts *o;
    hass_engine *eng[MAX_METHODS]; /* [0] plain (no draft); [k] draft k-1 */
    int32_t *out[MAX_METHODS];
    FILE *f;
    done_set done;
    int identical;
    int64_t items_done;
} run_ctx;

/* Runs one item with every method (rotated order) and appends its lines. history: the earlier
 * turns (user, plain's answer, ...) and the current user turn last. */
static hass_status run_item(run_ctx *c, const char *suite, int q, int turn, float temp,
                            const hass_chat_msg *hist, int n_hist, char **plain_answer,
                            hass_err *err) {
    const hass_eval_opts *o = c->o;
    int nm = 1 + o->n_drafts;
    int32_t *ids = NULL;
    int64_t np = hass_tokenizer_encode_prompt(o->tok, hist, n_hist, o->chat, &ids, err);
    if (np < 0)
        return err->code;
    hass_gen_params gp = {0};
    gp.max_new = o->max_new;
    uint64_t seed = mix64(o->seed ^ mix64((uint64_t)q * 131 + (uint64_t)turn) ^
                          mix64((uint64_t)(temp * 1000.0f)) ^ (uint64_t)strlen(suite));
    gp.sampling =
        (hass_sampler_params){temp, temp > 0 ? o->top_k : 0, temp > 0 ? o->top_p : 1.0f, seed};
    gp.tree = o->tree;
    hass_gen_stats st[MAX_METHODS];
    hass_status s = HASS_OK;
    for (int r = 0; r < nm && !s; r++) {
        int k = (q + turn + r) % nm; /* rotate the order from item to item */
        s = hass_generate(c->eng[k], ids, np, &gp, k > 0, NULL, NULL, c->out[k], &st[k], err);
    }
    free(ids);
    if (s)
        return s;
    *plain_answer = hass_tokenizer_decode(o->tok, c->out[0], st[0].n_generated, 1, NULL);
    for (int k = 0; k < nm; k++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "suite", suite);
        cJSON_AddNumberToObject(r, "q", q);
        cJSON_AddNumberToObject(r, "turn", turn);
        cJSON_AddNumberToObject(r, "temp", temp);
        cJSON_AddStringToObject(r, "method", method_name(o, k));
        add_stats(r, &st[k]);
        if (k > 0 && temp == 0.0f) {
            int same = st[k].n_generated == st[0].n_generated &&
                       !memcmp(c->out[k], c->out[0], sizeof(int32_t) * (size_t)st[0].n_generated);
            cJSON_AddBoolToObject(r, "identical", same);
            c->identical &= same;
        }
        if (k == 0 && *plain_answer)
            cJSON_AddStringToObject(r, "text", *plain_answer);
        char *line = cJSON_PrintUnformatted(r);
        cJSON_Delete(r);
        if (!line)
            return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        fprintf(c->f, "%s\n", line);
        free(line);
    }
    if (fflush(c->f))
        return hass_err_set(err, HASS_STATUS_IO, "runs.jsonl: %s", strerror(errno));
    c->items_done++;
    return HASS_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* the distribution check                                                                      */

/* Upper tail of the chi-square distribution with k degrees of freedom: Q(k/2, x/2), the
 * regularized upper incomplete gamma function (series / continued fraction, as in Numerical
 * Recipes' gammq). */
static double gammq(double a, double x) {
    if (x <= 0)
        return 1.0;
    double gln = lgamma(a);
    if (x < a + 1) { /* series for P, Q = 1 - P */
        double ap = a, sum = 1.0 / a, del = sum;
        for (int n = 0; n < 1000; n++) {
            ap += 1, del *= x / ap, sum += del;
            if (fabs(del) < fabs(sum) * 1e-15)
                break;
        }
        return 1.0 - sum * exp(-x + a * log(x) - gln);
    }
    double b = x + 1 - a, cc = 1e300, d = 1 / b, h = d; /* Lentz's continued fraction for Q */
    for (int i = 1; i < 1000; i++) {
        double an = -i * (i - a);
        b += 2;
        d = an * d + b;
        d = fabs(d) < 1e-300 ? 1e-300 : d;
        cc = b + an / cc;
        cc = fabs(cc) < 1e-300 ? 1e-300 : cc;
        d = 1 / d;
        double del = d * cc;
        h *= del;
        if (fabs(del - 1) < 1e-15)
            break;
    }
    return exp(-x + a * log(x) - gln) * h;
}

double hass_eval_chi2_sf(double x, int df) {
    return df > 0 ? gammq(df / 2.0, x / 2.0) : 1.0;
}

/* Two samples of token ids (na, nb values): total variation distance between their empirical
 * distributions and the p-value of Pearson's chi-square test of homogeneity (categories with
 * fewer than 5 expected counts pooled into one). */
static void two_sample(const int32_t *a, int na, const int32_t *b, int nb, double *tv, double *p) {
    int32_t cats[512];
    int ca[512], cb[512], nc = 0;
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < (s ? nb : na); i++) {
            int32_t t = s ? b[i] : a[i];
            int k = 0;
            while (k < nc && cats[k] != t)
                k++;
            if (k == nc && nc < 512)
                cats[nc] = t, ca[nc] = cb[nc] = 0, nc++;
            if (k < nc)
                (s ? cb : ca)[k]++;
        }
    double d = 0, chi = 0, pa = 0, pb = 0;
    int df = -1;
    for (int k = 0; k < nc; k++)
        d += fabs((double)ca[k] / na - (double)cb[k] / nb);
    *tv = d / 2;
    double n = na + nb;
    for (int k = 0; k <= nc; k++) { /* k == nc: the pooled small categories */
        double oa, ob;
        if (k < nc) {
            double e = (ca[k] + cb[k]) * (double)na / n;
            if (e < 5 || (ca[k] + cb[k]) * (double)nb / n < 5) {
                pa += ca[k], pb += cb[k];
                continue;
            }
            oa = ca[k], ob = cb[k];
        } else {
            oa = pa, ob = pb;
            if (oa + ob == 0)
                continue;
        }
        double ea = (oa + ob) * na / n, eb = (oa + ob) * nb / n;
        chi += (oa - ea) * (oa - ea) / ea + (ob - eb) * (ob - eb) / eb;
        df++;
    }
    *p = hass_eval_chi2_sf(chi, df);
}

#define DIST_POS 3 /* the first generated tokens compared (the first comes from the prefill) */

static hass_status dist_check(run_ctx *c, cJSON *out, hass_err *err) {
    const hass_eval_opts *o = c->o;
    int nm = 1 + o->n_drafts,
        np = o->dist_prompts < o->suites[0].n ? o->dist_prompts : o->suites[0].n;
    int R = o->dist_reps;
    int32_t *tok = malloc((size_t)nm * (size_t)R * DIST_POS * sizeof *tok);
    int32_t *col = malloc((size_t)R * sizeof *col), *colp = malloc((size_t)R * sizeof *colp);
    if (!tok || !col || !colp) {
        free(tok), free(col), free(colp);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    hass_status s = HASS_OK;
    hass_progress prog;
    hass_progress_init(&prog, "distribution check", "runs", (int64_t)o->n_temps * np * R * nm);
    int64_t done = 0;
    for (int ti = 0; ti < o->n_temps && !s; ti++) {
        float temp = o->temps[ti];
        if (temp == 0.0f)
            continue;
        for (int q = 0; q < np && !s; q++) {
            hass_chat_msg m = {"user", o->suites[0].q[q].turns[0]};
            int32_t *ids = NULL;
            int64_t n = hass_tokenizer_encode_prompt(o->tok, &m, 1, o->chat, &ids, err);
            if (n < 0) {
                s = err->code;
                break;
            }
            memset(tok, 0xff, (size_t)nm * (size_t)R * DIST_POS * sizeof *tok);
            for (int r = 0; r < R && !s; r++)
                for (int k = 0; k < nm && !s; k++) {
                    hass_gen_params gp = {0};
                    gp.max_new = DIST_POS;
                    gp.sampling = (hass_sampler_params){
                        temp, o->top_k, o->top_p,
                        mix64(o->seed + 7919u * (uint64_t)r + (uint64_t)q * 104729u)};
                    gp.tree = o->tree;
                    hass_gen_stats gs;
                    s = hass_generate(c->eng[k], ids, n, &gp, k > 0, NULL, NULL,
                                      tok + ((size_t)k * R + r) * DIST_POS, &gs, err);
                    hass_progress_update(&prog, ++done);
                }
            free(ids);
            for (int k = 1; k < nm && !s; k++)
                for (int pos = 0; pos < DIST_POS; pos++) {
                    for (int r = 0; r < R; r++) {
                        colp[r] = tok[((size_t)0 * R + r) * DIST_POS + pos];
                        col[r] = tok[((size_t)k * R + r) * DIST_POS + pos];
                    }
                    double tv, p;
                    two_sample(colp, R, col, R, &tv, &p);
                    cJSON *e = cJSON_CreateObject();
                    cJSON_AddStringToObject(e, "method", method_name(o, k));
                    cJSON_AddNumberToObject(e, "temp", temp);
                    cJSON_AddNumberToObject(e, "prompt", q);
                    cJSON_AddNumberToObject(e, "position", pos);
                    cJSON_AddNumberToObject(e, "reps", R);
                    cJSON_AddNumberToObject(e, "tv_distance", tv);
                    cJSON_AddNumberToObject(e, "chi2_p", p);
                    cJSON_AddItemToArray(out, e);
                }
        }
    }
    free(tok), free(col), free(colp);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* aggregation                                                                                 */

typedef struct {
    double tok, dec, cycles, draft, verify, nodes, acc[N_DEPTHS];
    int items, same, checked;
    double *taus;
    int ntau, captau;
} cell;

static cell *cell_at(cell *cells, int nfam, int ntemp, int m, int f, int t) {
    return &cells[((size_t)m * (size_t)(nfam + 1) + (size_t)f) * (size_t)ntemp + (size_t)t];
}

static void cell_add(cell *c, const cJSON *j) {
    double n = cJSON_GetObjectItemCaseSensitive(j, "n_generated")->valuedouble;
    double cy = cJSON_GetObjectItemCaseSensitive(j, "cycles")->valuedouble;
    c->tok += n;
    c->dec += cJSON_GetObjectItemCaseSensitive(j, "decode_seconds")->valuedouble;
    c->cycles += cy;
    c->draft += cJSON_GetObjectItemCaseSensitive(j, "draft_seconds")->valuedouble;
    c->verify += cJSON_GetObjectItemCaseSensitive(j, "verify_seconds")->valuedouble;
    c->nodes += cJSON_GetObjectItemCaseSensitive(j, "nodes")->valuedouble;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "accepted_at_depth");
    for (int k = 0; k < N_DEPTHS && k < cJSON_GetArraySize(a); k++)
        c->acc[k] += cJSON_GetArrayItem(a, k)->valuedouble;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "identical");
    if (cJSON_IsBool(id))
        c->checked++, c->same += cJSON_IsTrue(id);
    c->items++;
    if (cy > 0) {
        if (c->ntau == c->captau) {
            c->captau = c->captau ? 2 * c->captau : 64;
            double *t = realloc(c->taus, (size_t)c->captau * sizeof *t);
            if (!t)
                return;
            c->taus = t;
        }
        c->taus[c->ntau++] = n / cy;
    }
}

/* results.json from runs.jsonl (the last line of each item and method counts). */
static hass_status aggregate(const hass_eval_opts *o, const char *runs, cJSON *dist,
                             const char *out_path, hass_err *err) {
    int nm = 1 + o->n_drafts, nf = o->n_suites, nt = o->n_temps;
    cell *cells = calloc((size_t)nm * (size_t)(nf + 1) * (size_t)nt, sizeof *cells);
    char *buf = NULL;
    size_t n;
    if (!cells)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    if (hass_read_file(runs, &buf, &n, err)) {
        free(cells);
        return err->code;
    }
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *su = cJSON_GetObjectItemCaseSensitive(j, "suite");
        const cJSON *te = cJSON_GetObjectItemCaseSensitive(j, "temp");
        const cJSON *me = cJSON_GetObjectItemCaseSensitive(j, "method");
        int f = -1, t = -1, m = -1;
        for (int i = 0; cJSON_IsString(su) && i < nf; i++)
            if (!strcmp(su->valuestring, o->suites[i].name))
                f = i;
        for (int i = 0; cJSON_IsNumber(te) && i < nt; i++)
            if ((float)te->valuedouble == o->temps[i])
                t = i;
        for (int i = 0; cJSON_IsString(me) && i < nm; i++)
            if (!strcmp(me->valuestring, method_name(o, i)))
                m = i;
        if (f >= 0 && t >= 0 && m >= 0 &&
            cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "decode_seconds"))) {
            cell_add(cell_at(cells, nf, nt, m, f, t), j);
            cell_add(cell_at(cells, nf, nt, m, nf, t), j); /* "all" */
        }
        cJSON_Delete(j);
    }
    free(buf);
    cJSON *root = cJSON_CreateObject();
    cJSON *info = o->info_json ? cJSON_Parse(o->info_json) : NULL;
    cJSON_AddItemToObject(root, "info", info ? info : cJSON_CreateObject());
    cJSON *ms = cJSON_AddArrayToObject(root, "methods"),
          *fs = cJSON_AddArrayToObject(root, "families");
    cJSON *ts = cJSON_AddArrayToObject(root, "temps");
    for (int m = 0; m < nm; m++)
        cJSON_AddItemToArray(ms, cJSON_CreateString(method_name(o, m)));
    for (int f = 0; f < nf; f++)
        cJSON_AddItemToArray(fs, cJSON_CreateString(o->suites[f].name));
    cJSON_AddItemToArray(fs, cJSON_CreateString("all"));
    for (int t = 0; t < nt; t++)
        cJSON_AddItemToArray(ts, cJSON_CreateNumber(o->temps[t]));
    cJSON_AddNumberToObject(root, "max_new", (double)o->max_new);
    cJSON *cs = cJSON_AddArrayToObject(root, "cells");
    for (int m = 0; m < nm; m++)
        for (int f = 0; f <= nf; f++)
            for (int t = 0; t < nt; t++) {
                cell *c = cell_at(cells, nf, nt, m, f, t), *p = cell_at(cells, nf, nt, 0, f, t);
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "method", method_name(o, m));
                cJSON_AddStringToObject(e, "family", f < nf ? o->suites[f].name : "all");
                cJSON_AddNumberToObject(e, "temp", o->temps[t]);
                cJSON_AddNumberToObject(e, "items", c->items);
                cJSON_AddNumberToObject(e, "tokens", c->tok);
                double rate = c->dec > 0 ? c->tok / c->dec : 0,
                       prate = p->dec > 0 ? p->tok / p->dec : 0;
                cJSON_AddNumberToObject(e, "tokens_per_s", rate);
                cJSON_AddNumberToObject(e, "speedup", prate > 0 ? rate / prate : 0);
                cJSON_AddNumberToObject(e, "tau", c->cycles > 0 ? c->tok / c->cycles : 1);
                cJSON *a = cJSON_AddArrayToObject(e, "accept_rate_by_depth");
                for (int k = 0; m > 0 && k < N_DEPTHS; k++)
                    cJSON_AddItemToArray(
                        a, cJSON_CreateNumber(c->cycles > 0 ? c->acc[k] / c->cycles : 0));
                cJSON_AddNumberToObject(e, "draft_fraction", c->dec > 0 ? c->draft / c->dec : 0);
                cJSON_AddNumberToObject(e, "verify_fraction", c->dec > 0 ? c->verify / c->dec : 0);
                cJSON_AddNumberToObject(e, "nodes_per_cycle",
                                        c->cycles > 0 ? c->nodes / c->cycles : 0);
                if (c->checked)
                    cJSON_AddBoolToObject(e, "identical", c->same == c->checked);
                cJSON *tp = cJSON_AddArrayToObject(e, "tau_per_item");
                for (int i = 0; m > 0 && i < c->ntau; i++)
                    cJSON_AddItemToArray(tp, cJSON_CreateNumber(round(c->taus[i] * 1000) / 1000));
                cJSON_AddItemToArray(cs, e);
            }
    if (dist)
        cJSON_AddItemReferenceToObject(root, "distribution", dist);
    for (size_t i = 0; i < (size_t)nm * (size_t)(nf + 1) * (size_t)nt; i++)
        free(cells[i].taus);
    free(cells);
    char *txt = cJSON_Print(root);
    cJSON_Delete(root);
    if (!txt)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    hass_status st = hass_write_file_atomic(out_path, txt, strlen(txt), err);
    free(txt);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* the run                                                                                     */

hass_status hass_eval_run(const hass_eval_opts *o, hass_eval_report *rep, hass_err *err) {
    memset(rep, 0, sizeof *rep);
    if (!o->m || !o->tok || !o->out_dir || o->n_suites < 1 || o->n_temps < 1 || o->n_drafts < 0 ||
        o->n_drafts > HASS_EVAL_MAX_DRAFTS || o->max_new < 1)
        return hass_err_set(err, HASS_STATUS_ARG,
                            "eval: model, tokenizer, suites, temperatures "
                            "and an output folder are needed");
    hass_status mk = hass_mkdir_p(o->out_dir, err);
    if (mk)
        return mk;
    run_ctx c = {0};
    c.o = o, c.identical = 1;
    int nm = 1 + o->n_drafts;
    hass_status st = HASS_OK;
    char path[1200], dpath[1200];
    snprintf(path, sizeof path, "%s/runs.jsonl", o->out_dir);
    snprintf(dpath, sizeof dpath, "%s/distribution.json", o->out_dir);
    cJSON *dist = NULL;
    for (int k = 0; k < nm && !st; k++) {
        c.eng[k] =
            hass_engine_create(o->m, o->tok, k ? o->drafts[k - 1] : NULL, o->pool, o->ctx, err);
        c.out[k] = malloc((size_t)o->max_new * sizeof(int32_t));
        if (!c.eng[k] || !c.out[k])
            st = c.eng[k] ? hass_err_set(err, HASS_STATUS_OOM, "out of memory") : err->code;
    }
    if (!st)
        st = read_done(path, o, &c.done, err);
    if (!st && !(c.f = fopen(path, "a")))
        st = hass_err_set(err, HASS_STATUS_IO, "%s: cannot append", path);
    int64_t total = 0;
    for (int s = 0; s < o->n_suites; s++)
        for (int q = 0; q < o->suites[s].n; q++)
            total += (int64_t)o->suites[s].q[q].n_turns * o->n_temps;
    rep->items_total = total;
    /* warm-up, untimed: each engine's first generation measures this machine's verification
     * cost curve (or reads it from the cache) and touches every weight once */
    if (!st) {
        hass_chat_msg m = {"user", o->suites[0].q[0].turns[0]};
        int32_t *ids = NULL;
        int64_t n = hass_tokenizer_encode_prompt(o->tok, &m, 1, o->chat, &ids, err);
        hass_gen_params gp = {0};
        gp.max_new = o->max_new < 16 ? o->max_new : 16;
        gp.tree = o->tree;
        for (int k = 0; k < nm && n >= 0 && !st; k++) {
            hass_gen_stats gs;
            st = hass_generate(c.eng[k], ids, n, &gp, k > 0, NULL, NULL, c.out[k], &gs, err);
        }
        if (n < 0)
            st = err->code;
        free(ids);
    }
    hass_progress prog;
    hass_progress_init(&prog, "eval", "items", total);
    double t0 = hass_now();
    int64_t seen = 0;
    int all_methods = (1 << nm) - 1;
    for (int ti = 0; ti < o->n_temps && !st; ti++)
        for (int s = 0; s < o->n_suites && !st; s++) {
            const hass_eval_suite *su = &o->suites[s];
            for (int q = 0; q < su->n && !st; q++) {
                hass_chat_msg hist[64];
                char *answers[32] = {0};
                int nh = 0;
                for (int t = 0; t < su->q[q].n_turns && !st && nh < 62; t++) {
                    hist[nh++] = (hass_chat_msg){"user", su->q[q].turns[t]};
                    char key[200];
                    item_key(key, sizeof key, su->name, q, t, o->temps[ti]);
                    int d = done_find(&c.done, key);
                    if (d >= 0 && c.done.methods[d] == all_methods && c.done.answers[d]) {
                        answers[t] = strdup(c.done.answers[d]);
                    } else {
                        st = run_item(&c, su->name, q, t, o->temps[ti], hist, nh, &answers[t], err);
                    }
                    /* the next turn follows plain decoding's answer */
                    if (!st)
                        hist[nh++] = (hass_chat_msg){"assistant", answers[t] ? answers[t] : ""};
                    hass_progress_update(&prog, ++seen);
                }
                for (int t = 0; t < 32; t++)
                    free(answers[t]);
            }
        }
    if (c.f)
        fclose(c.f);
    /* the distribution check at T > 0, once (kept in distribution.json) */
    int any_t = 0;
    for (int ti = 0; ti < o->n_temps; ti++)
        any_t |= o->temps[ti] > 0;
    if (!st && any_t && o->dist_prompts > 0 && o->n_drafts > 0) {
        char *txt = NULL;
        if (hass_file_exists(dpath) && !hass_read_file(dpath, &txt, NULL, NULL))
            dist = cJSON_Parse(txt);
        free(txt);
        if (!cJSON_IsArray(dist)) {
            cJSON_Delete(dist);
            dist = cJSON_CreateArray();
            st = dist_check(&c, dist, err);
            char *s = st ? NULL : cJSON_Print(dist);
            if (s)
                st = hass_write_file_atomic(dpath, s, strlen(s), err);
            free(s);
        }
    }
    snprintf(path, sizeof path, "%s/results.json", o->out_dir);
    char runs[1200];
    snprintf(runs, sizeof runs, "%s/runs.jsonl", o->out_dir);
    if (!st)
        st = aggregate(o, runs, dist, path, err);
    if (!st)
        st = hass_eval_write_report(o->out_dir, err);
    cJSON_Delete(dist);
    rep->items_done = c.items_done;
    rep->identical = c.identical;
    rep->seconds = hass_now() - t0;
    for (int k = 0; k < nm; k++) {
        hass_engine_destroy(c.eng[k]);
        free(c.out[k]);
    }
    done_free(&c.done);
    return st;
}
