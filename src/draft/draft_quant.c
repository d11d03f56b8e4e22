/*
 * draft_quant.c — a draft head written as a quantized draft (hass quantize --draft): its
 * config.json unchanged, its tensors in model.gguf with the weight matrices of the draft layer
 * and fc in a GGUF block type (ggml's reference quantizers, row by row), the rest as stored.
 */
#include "draft/draft.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    const hass_st_set *st;
    const hass_tensor *out; /* the tensors as written: dtype and size */
} dq_ctx;

/* the matrices to quantize: fc and the draft layer's projections */
static int is_matrix(const hass_tensor *t) {
    return t->ndim == 2 && (!strcmp(t->name, "fc.weight") || !strncmp(t->name, "layers.", 7));
}

static hass_status dq_fill(void *ctx, int64_t i, void *dst, hass_err *err) {
    const dq_ctx *c = ctx;
    const hass_tensor *o = &c->out[i], *s = c->st->by_name[i];
    if (o->dtype == s->dtype) {
        memcpy(dst, s->data, s->nbytes);
        return HASS_OK;
    }
    int64_t cols = s->shape[1];
    float *row = malloc((size_t)cols * sizeof(float));
    if (!row)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    size_t rb = hass_dtype_bytes(o->dtype, (size_t)cols),
           sb = hass_dtype_bytes(s->dtype, (size_t)cols);
    hass_status st = HASS_OK;
    for (int64_t r = 0; r < s->shape[0] && st == HASS_OK; r++) {
        uint8_t *to = (uint8_t *)dst + (size_t)r * rb;
        hass_to_f32(row, (const uint8_t *)s->data + (size_t)r * sb, s->dtype, cols);
        if (hass_dtype_is_quant(o->dtype))
            st = hass_ggml_quantize(o->dtype, row, to, cols, err);
        else
            for (int64_t j = 0; j < cols; j++)
                if (o->dtype == HASS_DTYPE_F32)
                    memcpy(to + 4 * j, &row[j], 4);
                else
                    ((uint16_t *)(void *)to)[j] = o->dtype == HASS_DTYPE_BF16
                                                      ? hass_f32_to_bf16(row[j])
                                                      : hass_f32_to_f16(row[j]);
    }
    free(row);
    return st;
}

hass_status hass_draft_quantize(const char *src, const char *dst, hass_dtype t, hass_err *err) {
    if (t != HASS_DTYPE_F32 && t != HASS_DTYPE_F16 && t != HASS_DTYPE_BF16 &&
        !hass_dtype_is_quant(t))
        return hass_err_set(err, HASS_STATUS_ARG, "draft quantize: dtype %s cannot be written",
                            hass_dtype_name(t));
    char path[1024], *json = NULL;
    size_t json_n = 0;
    hass_model_config dc;
    int has_bias;
    hass_status st = hass_draft_read_config(src, &dc, &has_bias, err);
    if (st != HASS_OK)
        return st;
    snprintf(path, sizeof path, "%s/config.json", src);
    if ((st = hass_read_file(path, &json, &json_n, err)) != HASS_OK)
        return st;
    hass_st_set set = {0};
    hass_gguf_kvs kvs = {0};
    hass_tensor *out = NULL;
    if ((st = hass_safetensors_open_dir(&set, src, err)) != HASS_OK)
        goto done;
    out = calloc((size_t)set.n_tensors + 1, sizeof *out);
    if (!out) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; i < set.n_tensors; i++) {
        const hass_tensor *s = set.by_name[i];
        out[i] = *s;
        out[i].data = NULL;
        if (!is_matrix(s))
            continue;
        if (s->dtype != HASS_DTYPE_F32 && s->dtype != HASS_DTYPE_F16 &&
            s->dtype != HASS_DTYPE_BF16) {
            st = hass_err_set(err, HASS_STATUS_UNSUPPORTED, "draft quantize: %s: dtype %s", s->name,
                              hass_dtype_name(s->dtype));
            goto done;
        }
        hass_dtype ti = hass_dtype_is_quant(t) ? hass_quant_fallback(t, s->shape[1]) : t;
        if (hass_dtype_is_quant(t) && !hass_dtype_is_quant(ti)) /* no block fits: as stored */
            continue;
        out[i].dtype = ti;
        out[i].nbytes = hass_dtype_bytes(ti, (size_t)hass_tensor_numel(s));
    }
    if (mkdir(dst, 0755) != 0 && errno != EEXIST) {
        st = hass_err_set(err, HASS_STATUS_IO, "%s: %s", dst, strerror(errno));
        goto done;
    }
    dq_ctx c = {&set, out};
    snprintf(path, sizeof path, "%s/model.gguf", dst);
    if ((st = hass_gguf_kvs_str(&kvs, "general.architecture", "hass-draft", err)) != HASS_OK ||
        (st = hass_gguf_write(path, kvs.kv, kvs.n, out, set.n_tensors, dq_fill, &c, err)) !=
            HASS_OK)
        goto done;
    snprintf(path, sizeof path, "%s/config.json", dst);
    st = hass_write_file_atomic(path, json, json_n, err);
done:
    free(out);
    hass_gguf_kvs_free(&kvs);
    hass_st_set_close(&set);
    free(json);
    return st;
}
