/*
 * llama2c.c — karpathy/llama2.c checkpoints (legacy v0 format, as read by run.c).
 *
 * Layout: 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len; vocab_size < 0 means a separate classifier follows), then float32 arrays:
 *   token_embedding (V, D), rms_att (L, D), wq (L, D, D), wk (L, KV, D), wv (L, KV, D),
 *   wo (L, D, D), rms_ffn (L, D), w1 (L, F, D), w2 (L, D, F), w3 (L, F, D), rms_final (D),
 *   freq_cis_real (S, Dh/2), freq_cis_imag (S, Dh/2)   [unused, skipped],
 *   wcls (V, D)                                         [only if vocab_size < 0]
 * with KV = D / H * Hkv, Dh = D / H. The weights are exposed as borrowed F32 tensors under
 * the Hugging Face Llama names; per-layer tensors are slices of the stacked arrays.
 */
#include "formats/formats.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L2C_HEADER_BYTES 28
#define L2C_MAX_DIM (1 << 20)
#define L2C_MAX_LAYERS 4096
#define L2C_MAX_VOCAB (1 << 24)
#define L2C_MAX_SEQ (1 << 24)

static hass_status check_config(hass_llama2c_config *c, hass_err *err) {
    if (c->dim <= 0 || c->hidden_dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->vocab_size == 0 || c->seq_len <= 0)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "bad header: dim=%d hidden_dim=%d n_layers=%d n_heads=%d "
                            "n_kv_heads=%d vocab_size=%d seq_len=%d (all must be positive)",
                            c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads,
                            c->vocab_size, c->seq_len);
    c->shared_classifier = c->vocab_size > 0;
    if (c->vocab_size < -L2C_MAX_VOCAB || c->vocab_size > L2C_MAX_VOCAB)
        return hass_err_set(err, HASS_STATUS_FORMAT, "vocab_size %d out of range", c->vocab_size);
    if (c->vocab_size < 0)
        c->vocab_size = -c->vocab_size;
    if (c->dim > L2C_MAX_DIM || c->hidden_dim > L2C_MAX_DIM || c->n_layers > L2C_MAX_LAYERS ||
        c->seq_len > L2C_MAX_SEQ)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "header sizes too large: dim=%d hidden_dim=%d n_layers=%d seq_len=%d",
                            c->dim, c->hidden_dim, c->n_layers, c->seq_len);
    if (c->dim % c->n_heads || c->n_heads % c->n_kv_heads || (c->dim / c->n_heads) % 2)
        return hass_err_set(
            err, HASS_STATUS_FORMAT,
            "bad header: dim=%d n_heads=%d n_kv_heads=%d (need dim %% n_heads == 0, "
            "n_heads %% n_kv_heads == 0, even head size)",
            c->dim, c->n_heads, c->n_kv_heads);
    return HASS_OK;
}

/* Accumulates a*b*c floats into *total; 0 on overflow. */
static int add_floats(size_t *total, size_t a, size_t b, size_t c) {
    size_t n;
    return hass_mul_ok(a, b, &n) && hass_mul_ok(n, c, &n) && hass_add_ok(*total, n, total);
}

/* Total file bytes the config needs (header + weights), or 0 on overflow. */
static size_t expected_bytes(const hass_llama2c_config *c) {
    size_t D = (size_t)c->dim, F = (size_t)c->hidden_dim, L = (size_t)c->n_layers;
    size_t V = (size_t)c->vocab_size, S = (size_t)c->seq_len;
    size_t KV = D / (size_t)c->n_heads * (size_t)c->n_kv_heads, Dh = D / (size_t)c->n_heads;
    size_t n = 0;
    int ok = add_floats(&n, V, D, 1) && add_floats(&n, L, D, 1) && add_floats(&n, L, D, D) &&
             add_floats(&n, L, KV, D) && add_floats(&n, L, KV, D) && add_floats(&n, L, D, D) &&
             add_floats(&n, L, D, 1) && add_floats(&n, L, F, D) && add_floats(&n, L, D, F) &&
             add_floats(&n, L, F, D) && add_floats(&n, D, 1, 1) && add_floats(&n, S, Dh, 1) &&
             (c->shared_classifier || add_floats(&n, V, D, 1));
    size_t bytes;
    if (!ok || !hass_mul_ok(n, 4, &bytes) || !hass_add_ok(bytes, L2C_HEADER_BYTES, &bytes))
        return 0;
    return bytes;
}

static hass_tensor *add_tensor(hass_llama2c *m, const char *name, const float *data, int64_t d0,
                               int64_t d1) {
    hass_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = HASS_DTYPE_F32;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = data;
    t->nbytes = (size_t)d0 * (size_t)(d1 ? d1 : 1) * sizeof(float);
    return t;
}

/* Per-layer slice l of a stacked (L, rows, cols) array starting at *base. */
static void add_layer_tensor(hass_llama2c *m, int l, const char *suffix, const float *base,
                             int64_t rows, int64_t cols) {
    char name[160];
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);
    size_t per = (size_t)rows * (size_t)(cols ? cols : 1);
    add_tensor(m, name, base + per * (size_t)l, rows, cols);
}

hass_status hass_llama2c_parse(hass_llama2c *m, const uint8_t *data, size_t size, hass_err *err) {
    memset(m, 0, sizeof *m);
    if (size < L2C_HEADER_BYTES)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "truncated: need %d header bytes, file has %zu", L2C_HEADER_BYTES,
                            size);
    int32_t h[7];
    memcpy(h, data, sizeof h);
    hass_llama2c_config *c = &m->cfg;
    *c = (hass_llama2c_config){h[0], h[1], h[2], h[3], h[4], h[5], h[6], 0};
    hass_status rc = check_config(c, err);
    if (rc)
        return rc;
    size_t need = expected_bytes(c);
    if (!need)
        return hass_err_set(err, HASS_STATUS_FORMAT, "header sizes overflow");
    if (need > size)
        return hass_err_set(err, HASS_STATUS_FORMAT, "truncated: need %zu bytes, file has %zu",
                            need, size);
    int L = c->n_layers;
    m->tensors = calloc((size_t)L * 9 + 3, sizeof *m->tensors);
    if (!m->tensors)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");

    int64_t D = c->dim, F = c->hidden_dim, V = c->vocab_size;
    int64_t KV = D / c->n_heads * c->n_kv_heads, Dh = D / c->n_heads;
    const float *p = (const float *)(const void *)(data + L2C_HEADER_BYTES);
    const float *emb = p;
    p += V * D;
    const float *rms_att = p;
    p += L * D;
    const float *wq = p;
    p += L * D * D;
    const float *wk = p;
    p += L * KV * D;
    const float *wv = p;
    p += L * KV * D;
    const float *wo = p;
    p += L * D * D;
    const float *rms_ffn = p;
    p += L * D;
    const float *w1 = p;
    p += L * F * D;
    const float *w2 = p;
    p += L * D * F;
    const float *w3 = p;
    p += L * F * D;
    const float *rms_final = p;
    p += D;
    p += (int64_t)c->seq_len * Dh; /* freq_cis_real and freq_cis_imag, Dh/2 each */
    const float *wcls = c->shared_classifier ? emb : p;

    add_tensor(m, "model.embed_tokens.weight", emb, V, D);
    for (int l = 0; l < L; l++) {
        add_layer_tensor(m, l, "input_layernorm.weight", rms_att, D, 0);
        add_layer_tensor(m, l, "self_attn.q_proj.weight", wq, D, D);
        add_layer_tensor(m, l, "self_attn.k_proj.weight", wk, KV, D);
        add_layer_tensor(m, l, "self_attn.v_proj.weight", wv, KV, D);
        add_layer_tensor(m, l, "self_attn.o_proj.weight", wo, D, D);
        add_layer_tensor(m, l, "post_attention_layernorm.weight", rms_ffn, D, 0);
        add_layer_tensor(m, l, "mlp.gate_proj.weight", w1, F, D);
        add_layer_tensor(m, l, "mlp.down_proj.weight", w2, D, F);
        add_layer_tensor(m, l, "mlp.up_proj.weight", w3, F, D);
    }
    add_tensor(m, "model.norm.weight", rms_final, D, 0);
    add_tensor(m, "lm_head.weight", wcls, V, D);
    return HASS_OK;
}

hass_status hass_llama2c_open(hass_llama2c *m, const char *path, hass_err *err) {
    memset(m, 0, sizeof *m);
    hass_mapfile mf;
    hass_status rc = hass_mapfile_open(&mf, path, err);
    if (rc)
        return rc;
    rc = hass_llama2c_parse(m, mf.data, mf.size, err);
    if (rc) {
        hass_mapfile_close(&mf);
        return hass_err_prefix(err, rc, path);
    }
    m->mf = mf;
    return HASS_OK;
}

void hass_llama2c_close(hass_llama2c *m) {
    if (!m)
        return;
    hass_mapfile_close(&m->mf);
    free(m->tensors);
    memset(m, 0, sizeof *m);
}
