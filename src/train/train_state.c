/*
 * train_state.c — the trainer state file (train_state.h): written and read, every counter and
 * array checked before the run uses it.
 */
#include "train/train_state.h"
#include "formats/formats.h"
#include "train/gemm.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_names[3] = {"params", "adam_m", "adam_v"};

static void add_i64(cJSON *md, const char *k, int64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)v);
    cJSON_AddStringToObject(md, k, b);
}

hass_status hass_train_state_write(const char *dir, const hass_train_state *s, const float *params,
                                   const float *m, const float *v, size_t n, hass_err *err) {
    hass_tensor t[3];
    const float *data[3] = {params, m, v};
    for (int i = 0; i < 3; i++) {
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "%s", k_names[i]);
        t[i].dtype = HASS_DTYPE_F32;
        t[i].ndim = 1;
        t[i].shape[0] = (int64_t)n;
        t[i].data = data[i];
        t[i].nbytes = n * sizeof(float);
    }
    cJSON *md = cJSON_CreateObject();
    add_i64(md, "step", s->step);
    add_i64(md, "adam_t", s->adam_t);
    if (s->epoch >= 0)
        add_i64(md, "epoch", s->epoch);
    if (s->cursor >= 0)
        add_i64(md, "cursor", s->cursor);
    if (s->tokens >= 0)
        add_i64(md, "tokens", s->tokens);
    if (s->has_rng) {
        char b[32];
        snprintf(b, sizeof b, "%016llx", (unsigned long long)s->rng);
        cJSON_AddStringToObject(md, "rng", b);
    }
    if (s->gemm[0])
        cJSON_AddStringToObject(md, "gemm", s->gemm);
    cJSON_AddStringToObject(md, "config", s->config ? s->config : "");
    char *js = cJSON_PrintUnformatted(md);
    cJSON_Delete(md);
    if (!js)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    char path[1100];
    if (snprintf(path, sizeof path, "%s/%s", dir, HASS_TRAIN_STATE_FILE) >= (int)sizeof path) {
        free(js);
        return hass_err_set(err, HASS_STATUS_ARG, "%.64s...: path too long", dir);
    }
    hass_status st = hass_safetensors_write(path, t, 3, js, err);
    free(js);
    return st;
}

/* Member k as a decimal (or, hex, a 1..16-digit hex) integer in [0, max]: 1 read, 0 absent,
 * -1 present but not such a number. */
static int md_num(const cJSON *md, const char *k, int hex, uint64_t max, uint64_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, k);
    if (!v)
        return 0;
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > (hex ? 16 : 19))
        return -1;
    for (const char *c = v->valuestring; *c; c++)
        if (!(hex ? (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') : *c >= '0' && *c <= '9'))
            return -1;
    errno = 0;
    unsigned long long x = strtoull(v->valuestring, NULL, hex ? 16 : 10);
    if (errno || x > max)
        return -1;
    *out = x;
    return 1;
}

void hass_train_state_free(hass_train_state *s) {
    free(s->config);
    s->config = NULL;
}

hass_status hass_train_state_parse(const uint8_t *data, size_t size, const char *name,
                                   int64_t max_step, size_t n, float *params, float *m, float *v,
                                   hass_train_state *s, hass_err *err) {
    memset(s, 0, sizeof *s);
    s->epoch = s->cursor = s->tokens = -1;
    hass_safetensors sf;
    if (hass_safetensors_parse(&sf, data, size, err))
        return hass_err_prefix(err, err->code, name);
    hass_status st = HASS_OK;
    cJSON *md = sf.metadata_json ? cJSON_Parse(sf.metadata_json) : NULL;
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(md, "config");
    const cJSON *gk = cJSON_GetObjectItemCaseSensitive(md, "gemm");
    const uint64_t big = (uint64_t)1 << 62;
    uint64_t step = 0, at = 0, ep = 0, cur = 0, tok = 0, rng = 0;
    int r_step = md_num(md, "step", 0, max_step < 0 ? 0 : (uint64_t)max_step, &step);
    int r_at = md_num(md, "adam_t", 0, big, &at);
    int r_ep = md_num(md, "epoch", 0, big, &ep), r_cur = md_num(md, "cursor", 0, big, &cur);
    int r_tok = md_num(md, "tokens", 0, big, &tok), r_rng = md_num(md, "rng", 1, UINT64_MAX, &rng);
    if (!cJSON_IsString(cfg) || (gk && (!cJSON_IsString(gk) || strlen(gk->valuestring) >= 32)))
        st = hass_err_set(err, HASS_STATUS_FORMAT,
                          "%s: trainer metadata config or gemm missing or "
                          "not a string",
                          name);
    else if (r_step != 1)
        st = hass_err_set(err, HASS_STATUS_FORMAT,
                          "%s: trainer metadata step missing or not an integer in [0, %lld]", name,
                          (long long)max_step);
    else if (r_at != 1 || at != step)
        st = hass_err_set(err, HASS_STATUS_FORMAT,
                          "%s: trainer metadata adam_t missing or not equal to step %llu", name,
                          (unsigned long long)step);
    else if (r_ep < 0 || r_cur < 0 || r_tok < 0 || r_rng < 0)
        st = hass_err_set(err, HASS_STATUS_FORMAT,
                          "%s: trainer metadata %s is not an integer in range", name,
                          r_ep < 0    ? "epoch"
                          : r_cur < 0 ? "cursor"
                          : r_tok < 0 ? "tokens"
                                      : "rng");
    /* the configuration is known from here on, also when the arrays do not fit this run (the
     * caller names a different configuration before a size mismatch) */
    if (!st && !(s->config = strdup(cfg->valuestring)))
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    for (int i = 0; !st && i < 3; i++) {
        const hass_tensor *t = hass_safetensors_find(&sf, k_names[i]);
        if (!t || t->dtype != HASS_DTYPE_F32 || t->ndim != 1 || t->shape[0] != (int64_t)n)
            st = hass_err_set(err, HASS_STATUS_SHAPE,
                              "%s: tensor %s missing or not F32 of %zu elements", name, k_names[i],
                              n);
    }
    for (int i = 0; !st && i < 3; i++) {
        const float *x = hass_safetensors_find(&sf, k_names[i])->data;
        for (size_t j = 0; j < n; j++)
            if (!isfinite(x[j]) || (i == 2 && x[j] < 0.0f)) {
                st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: tensor %s element %zu is %g", name,
                                  k_names[i], j, (double)x[j]);
                break;
            }
    }
    if (!st) {
        float *dst[3] = {params, m, v};
        for (int i = 0; i < 3; i++)
            if (n)
                memcpy(dst[i], hass_safetensors_find(&sf, k_names[i])->data, n * sizeof(float));
        s->step = (int64_t)step, s->adam_t = (int64_t)at;
        s->epoch = r_ep ? (int64_t)ep : -1, s->cursor = r_cur ? (int64_t)cur : -1;
        s->tokens = r_tok ? (int64_t)tok : -1;
        s->rng = rng, s->has_rng = r_rng;
        if (gk)
            snprintf(s->gemm, sizeof s->gemm, "%s", gk->valuestring);
    }
    cJSON_Delete(md);
    hass_safetensors_close(&sf);
    return st;
}

int hass_train_state_read(const char *dir, int64_t max_step, size_t n, float *params, float *m,
                          float *v, hass_train_state *s, hass_err *err) {
    memset(s, 0, sizeof *s);
    char path[1100];
    if (snprintf(path, sizeof path, "%s/%s", dir, HASS_TRAIN_STATE_FILE) >= (int)sizeof path) {
        hass_err_set(err, HASS_STATUS_ARG, "%.64s...: path too long", dir);
        return -1;
    }
    if (!hass_file_exists(path))
        return 0;
    hass_mapfile mf;
    if (hass_mapfile_open(&mf, path, err))
        return -1;
    hass_status st =
        hass_train_state_parse(mf.data, mf.size, path, max_step, n, params, m, v, s, err);
    hass_mapfile_close(&mf);
    return st ? -1 : 1;
}

void hass_train_state_use_gemm(const hass_train_state *s, const char *dir) {
    for (int k = 0; s->gemm[0] && k < HASS_GEMM_COUNT; k++)
        if (!strcmp(s->gemm, hass_gemm_name((hass_gemm_kind)k))) {
            if (hass_gemm_available((hass_gemm_kind)k))
                hass_gemm_set_default((hass_gemm_kind)k, hass_gemm_default_pool());
            else
                hass_log(HASS_LOG_WARN,
                         "%s: trained with %s products, which this CPU lacks; "
                         "continuing with %s (not bit-identical)",
                         dir, s->gemm, hass_gemm_name(hass_gemm_get_default()));
        }
}
