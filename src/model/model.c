/*
 * model.c — LLaMA forward pass (RMSNorm, RoPE, GQA attention over a KV cache with a tree
 * mask, SwiGLU), the KV cache and its compaction. See model.h for the contracts.
 */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hass_status hass_model_config_check(const hass_model_config *c, hass_err *err) {
    if (c->d <= 0 || c->ffn <= 0 || c->n_layers <= 0 || c->H <= 0 || c->Hkv <= 0 || c->V <= 0 ||
        c->max_ctx <= 0)
        return hass_err_set(err, HASS_STATUS_FORMAT, "config: sizes must be positive");
    if (c->d > (1 << 16) || c->ffn > (1 << 18) || c->n_layers > 1024 || c->H > 1024 ||
        c->V > (1 << 24) || c->max_ctx > (1 << 24))
        return hass_err_set(err, HASS_STATUS_FORMAT, "config: absurd sizes");
    if (c->H % c->Hkv != 0)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "config: num_attention_heads %lld not a multiple of kv heads %lld",
                            (long long)c->H, (long long)c->Hkv);
    if (c->Dh <= 0 || c->Dh % 2 != 0 || c->Dh > 1024)
        return hass_err_set(err, HASS_STATUS_FORMAT, "config: head dim %lld must be even",
                            (long long)c->Dh);
    if (!(c->eps > 0))
        return hass_err_set(err, HASS_STATUS_FORMAT, "config: eps must be > 0");
    if (c->bos < -1 || c->bos >= c->V)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "config: BOS id %d is outside the vocabulary of %lld tokens", c->bos,
                            (long long)c->V);
    for (int i = 0; i < c->n_stop; i++)
        if (c->stop_ids[i] < 0 || c->stop_ids[i] >= c->V)
            return hass_err_set(err, HASS_STATUS_FORMAT,
                                "config: EOS id %d is outside the vocabulary of %lld tokens",
                                c->stop_ids[i], (long long)c->V);
    hass_status st = hass_rope_params_check(&c->rope, c->Dh, err);
    if (st != HASS_OK)
        hass_err_prefix(err, st, "config");
    return st;
}

int hass_mask_from_parents(uint64_t *mask, const int32_t *parents, int64_t n) {
    int64_t W = (n + 63) / 64;
    memset(mask, 0, (size_t)(n * W) * sizeof(uint64_t));
    for (int64_t i = 0; i < n; i++) {
        int64_t p = parents ? parents[i] : i - 1;
        if (p < -1 || p >= i)
            return 0;
        if (p >= 0)
            memcpy(mask + i * W, mask + p * W, (size_t)W * sizeof(uint64_t));
        mask[i * W + i / 64] |= 1ull << (i % 64);
    }
    return 1;
}

/* ---- model from named tensors ---- */
static const hass_tensor *find_t(const hass_tensor *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name))
            return &t[i];
    return NULL;
}

static hass_status need(const hass_tensor *ts, int n, const char *name, int64_t r, int64_t c,
                        const hass_tensor **out, hass_err *err) {
    const hass_tensor *t = find_t(ts, n, name);
    if (!t)
        return hass_err_set(err, HASS_STATUS_NOTFOUND, "missing tensor %s", name);
    int64_t tr = t->ndim == 2 ? t->shape[0] : (t->ndim == 1 ? t->shape[0] : -1);
    int64_t tc = t->ndim == 2 ? t->shape[1] : 1;
    if ((c == 1 && t->ndim != 1) || (c != 1 && t->ndim != 2) || tr != r || tc != c)
        return hass_err_set(err, HASS_STATUS_SHAPE,
                            "tensor %s: shape mismatch (expected [%lld, %lld])", name, (long long)r,
                            (long long)c);
    int ok_dt = t->dtype == HASS_DTYPE_F32 || t->dtype == HASS_DTYPE_BF16 ||
                t->dtype == HASS_DTYPE_F16 ||
                (hass_dtype_is_quant(t->dtype) && c % hass_dtype_block(t->dtype) == 0);
    if (!ok_dt)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED, "tensor %s: unsupported dtype %s", name,
                            hass_dtype_name(t->dtype));
    size_t want = hass_dtype_bytes(t->dtype, (size_t)(r * c));
    if (want == 0 || t->nbytes < want)
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: data too short", name);
    int64_t bad = hass_dtype_is_quant(t->dtype) ? hass_ggml_check(t->dtype, t->data, want) : -1;
    if (bad >= 0)
        return hass_err_set(err, HASS_STATUS_FORMAT, "tensor %s: block %lld has a non-finite scale",
                            name, (long long)bad);
    *out = t;
    return HASS_OK;
}

static float *norm_f32(hass_model *m, const hass_tensor *t, int64_t d) {
    float *w = hass_arena_alloc(&m->arena, (size_t)d * sizeof(float));
    if (w)
        hass_to_f32(w, t->data, t->dtype, d);
    return w;
}

hass_model *hass_model_from_tensors(const hass_model_config *cfg, const hass_tensor *ts, int n,
                                    hass_err *err) {
    if (hass_model_config_check(cfg, err) != HASS_OK)
        return NULL;
    hass_model *m = calloc(1, sizeof *m);
    if (!m) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    m->cfg = *cfg;
    const hass_model_config *c = &m->cfg;
    int64_t d = c->d, qd = c->H * c->Dh, kvd = c->Hkv * c->Dh;
    size_t arena = (size_t)(c->n_layers * 2 + 2) * ((size_t)d * 4 + 64) + (size_t)c->Dh * 4 + 64 +
                   (size_t)c->n_layers * (sizeof(hass_layer) + 64) + 4096;
    if (hass_arena_init(&m->arena, arena, err) != HASS_OK)
        goto fail;
    m->layers = hass_arena_alloc(&m->arena, (size_t)c->n_layers * sizeof(hass_layer));
    m->inv_freq = hass_arena_alloc(&m->arena, (size_t)(c->Dh / 2) * sizeof(float));
    hass_rope_freqs(&c->rope, c->Dh, m->inv_freq);
    const hass_tensor *t;
    if (need(ts, n, "model.embed_tokens.weight", c->V, d, &t, err))
        goto fail;
    m->embed = t->data;
    m->embed_t = t->dtype;
    const hass_tensor *head = find_t(ts, n, "lm_head.weight");
    if (head || !c->tie_embeddings) {
        if (need(ts, n, "lm_head.weight", c->V, d, &t, err))
            goto fail;
        m->lm_head = t->data;
        m->lm_head_t = t->dtype;
    } else {
        m->lm_head = m->embed;
        m->lm_head_t = m->embed_t;
    }
    m->weight_bytes = hass_dtype_bytes(m->lm_head_t, (size_t)(c->V * d));
    if (need(ts, n, "model.norm.weight", d, 1, &t, err))
        goto fail;
    m->final_norm = norm_f32(m, t, d);
    char name[160];
    for (int64_t l = 0; l < c->n_layers; l++) {
        hass_layer *L = &m->layers[l];
        struct {
            const char *suffix;
            int64_t r, cc;
            const void **w;
            hass_dtype *dt;
        } mats[] = {
            {"self_attn.q_proj.weight", qd, d, &L->wq, &L->tq},
            {"self_attn.k_proj.weight", kvd, d, &L->wk, &L->tk},
            {"self_attn.v_proj.weight", kvd, d, &L->wv, &L->tv},
            {"self_attn.o_proj.weight", d, qd, &L->wo, &L->to},
            {"mlp.gate_proj.weight", c->ffn, d, &L->wg, &L->tg},
            {"mlp.up_proj.weight", c->ffn, d, &L->wu, &L->tu},
            {"mlp.down_proj.weight", d, c->ffn, &L->wd, &L->td},
        };
        for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) {
            snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, mats[k].suffix);
            if (need(ts, n, name, mats[k].r, mats[k].cc, &t, err))
                goto fail;
            *mats[k].w = t->data;
            *mats[k].dt = t->dtype;
            m->weight_bytes += hass_dtype_bytes(t->dtype, (size_t)(mats[k].r * mats[k].cc));
        }
        snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight", (long long)l);
        if (need(ts, n, name, d, 1, &t, err))
            goto fail;
        L->attn_norm = norm_f32(m, t, d);
        snprintf(name, sizeof name, "model.layers.%lld.post_attention_layernorm.weight",
                 (long long)l);
        if (need(ts, n, name, d, 1, &t, err))
            goto fail;
        L->ffn_norm = norm_f32(m, t, d);
    }
    return m;
fail:
    hass_model_free(m);
    return NULL;
}

/* ---- KV cache ---- */
hass_status hass_kv_init(hass_kv *kv, const hass_model *m, int64_t cap, int64_t max_batch,
                         hass_pool *pool, hass_err *err) {
    memset(kv, 0, sizeof *kv);
    const hass_model_config *c = &m->cfg;
    if (cap <= 0 || max_batch <= 0 || max_batch > cap)
        return hass_err_set(err, HASS_STATUS_ARG, "kv cache: bad capacity %lld / batch %lld",
                            (long long)cap, (long long)max_batch);
    kv->m = m;
    kv->cap = cap;
    kv->max_batch = max_batch;
    int64_t kvd = c->Hkv * c->Dh, B = max_batch, W = (B + 63) / 64;
    size_t cache = (size_t)(c->n_layers * cap * kvd) * sizeof(float);
    kv->k = hass_aligned_alloc(cache);
    kv->v = hass_aligned_alloc(cache);
    size_t per = sizeof(float);
    kv->x = hass_aligned_alloc((size_t)(B * c->d) * per);
    kv->xb = hass_aligned_alloc((size_t)(B * c->d) * per);
    kv->q = hass_aligned_alloc((size_t)(B * c->H * c->Dh) * per);
    kv->att = hass_aligned_alloc((size_t)(B * c->H * c->Dh) * per);
    kv->hb = hass_aligned_alloc((size_t)(B * c->ffn) * per);
    kv->hb2 = hass_aligned_alloc((size_t)(B * c->ffn) * per);
    kv->attn_scratch = hass_aligned_alloc(hass_attention_scratch(pool, cap) * per);
    kv->mask = hass_aligned_alloc((size_t)(B * W) * sizeof(uint64_t));
    kv->pos_buf = hass_aligned_alloc((size_t)B * sizeof(int32_t));
    kv->bytes = 2 * cache + (size_t)(B * (3 * c->d + 2 * c->H * c->Dh + 2 * c->ffn)) * per;
    if (!kv->k || !kv->v || !kv->x || !kv->xb || !kv->q || !kv->att || !kv->hb || !kv->hb2 ||
        !kv->attn_scratch || !kv->mask || !kv->pos_buf) {
        hass_kv_free(kv);
        return hass_err_set(err, HASS_STATUS_OOM, "kv cache: cannot allocate %zu bytes", kv->bytes);
    }
    return HASS_OK;
}

void hass_kv_free(hass_kv *kv) {
    if (!kv)
        return;
    void *ps[] = {kv->k,      kv->v,  kv->x,   kv->xb,           kv->q,
                  kv->att,    kv->hb, kv->hb2, kv->attn_scratch, kv->mask,
                  kv->pos_buf};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        hass_aligned_free(ps[i]);
    memset(kv, 0, sizeof *kv);
}

hass_status hass_kv_grow(hass_kv *kv, int64_t cap, hass_pool *pool, hass_err *err) {
    if (cap <= kv->cap)
        return HASS_OK;
    hass_kv g;
    hass_status st = hass_kv_init(&g, kv->m, cap, kv->max_batch, pool, err);
    if (st)
        return st;
    int64_t kvd = kv->m->cfg.Hkv * kv->m->cfg.Dh;
    for (int64_t l = 0; l < kv->m->cfg.n_layers; l++) {
        memcpy(g.k + l * cap * kvd, kv->k + l * kv->cap * kvd, (size_t)(kv->n * kvd) * 4);
        memcpy(g.v + l * cap * kvd, kv->v + l * kv->cap * kvd, (size_t)(kv->n * kvd) * 4);
    }
    g.n = kv->n;
    hass_kv_free(kv);
    *kv = g;
    return HASS_OK;
}

void hass_kv_commit(hass_kv *kv, int64_t n) {
    HASS_ASSERT(n >= 0 && kv->n + n <= kv->cap);
    kv->n += n;
}

void hass_kv_keep(hass_kv *kv, const int32_t *rows, int64_t n_keep) {
    const hass_model_config *c = &kv->m->cfg;
    int64_t kvd = c->Hkv * c->Dh;
    for (int64_t j = 0; j < n_keep; j++) {
        HASS_ASSERT(rows[j] >= j && (j == 0 || rows[j] > rows[j - 1]));
        HASS_ASSERT(kv->n + rows[j] < kv->cap);
        if (rows[j] == j)
            continue;
        for (int64_t l = 0; l < c->n_layers; l++) {
            float *kl = kv->k + l * kv->cap * kvd, *vl = kv->v + l * kv->cap * kvd;
            memcpy(kl + (kv->n + j) * kvd, kl + (kv->n + rows[j]) * kvd, (size_t)kvd * 4);
            memcpy(vl + (kv->n + j) * kvd, vl + (kv->n + rows[j]) * kvd, (size_t)kvd * 4);
        }
    }
    kv->n += n_keep;
}

void hass_kv_truncate(hass_kv *kv, int64_t n) {
    HASS_ASSERT(n >= 0 && n <= kv->n);
    kv->n = n;
}

/* ---- forward ---- */

/* q and k after RoPE are kept in the interleaved layout (rotated pairs adjacent) whatever the
 * checkpoint's layout: a half-rotation head [x_0..x_{h-1}, y_0..y_{h-1}] becomes
 * [x_0, y_0, x_1, y_1, ...]. The attention dots then run over the same sequence of products for
 * a Hugging Face checkpoint and for its GGUF conversion (whose q/k rows are permuted this way),
 * so the two compute bit-identical logits. x: (n_heads, Dh); tmp: Dh floats. */
static void heads_interleave(float *x, int64_t n_heads, int64_t Dh, float *tmp) {
    int64_t half = Dh / 2;
    for (int64_t h = 0; h < n_heads; h++) {
        float *v = x + h * Dh;
        memcpy(tmp, v, (size_t)Dh * sizeof *v);
        for (int64_t i = 0; i < half; i++) {
            v[2 * i] = tmp[i];
            v[2 * i + 1] = tmp[half + i];
        }
    }
}

void hass_layer_forward(hass_pool *pool, const hass_model_config *c, const hass_layer *L,
                        const float *inv_freq, float *x, int64_t n, const int32_t *pos,
                        float *kcache, float *vcache, int64_t n_past, int64_t n_win,
                        const uint64_t *mask, const hass_layer_scratch *s) {
    int64_t d = c->d, qd = c->H * c->Dh, kvd = c->Hkv * c->Dh;
    const float *xin = x;
    if (L->attn_norm) {
        hass_rmsnorm(s->xb, x, L->attn_norm, n, d, c->eps);
        xin = s->xb;
    }
    /* q, k, v: k and v go straight into the cache rows of the new tokens */
    float *kn = kcache + (n_past + n_win - n) * kvd, *vn = vcache + (n_past + n_win - n) * kvd;
    hass_matmul_job qkv[3] = {
        {s->q, L->wq, L->tq, qd}, {kn, L->wk, L->tk, kvd}, {vn, L->wv, L->tv, kvd}};
    hass_matmul_multi(pool, xin, n, d, qkv, 3);
    hass_rope(s->q, n, c->H, c->Dh, pos, inv_freq, c->rope_style);
    hass_rope(kn, n, c->Hkv, c->Dh, pos, inv_freq, c->rope_style);
    if (c->rope_style == HASS_ROPE_HALF) { /* s->att is free until the attention */
        heads_interleave(s->q, n * c->H, c->Dh, s->att);
        heads_interleave(kn, n * c->Hkv, c->Dh, s->att);
    }
    hass_attention_win(pool, s->att, s->q, kcache, vcache, n_past, n_win, n, mask, c->H, c->Hkv,
                       c->Dh, s->attn_scratch);
    hass_matmul(pool, s->xb, s->att, L->wo, L->to, n, qd, d);
    hass_add(x, s->xb, n * d);
    /* SwiGLU MLP */
    hass_rmsnorm(s->xb, x, L->ffn_norm, n, d, c->eps);
    hass_matmul_job gu[2] = {{s->hb, L->wg, L->tg, c->ffn}, {s->hb2, L->wu, L->tu, c->ffn}};
    hass_matmul_multi(pool, s->xb, n, d, gu, 2);
    hass_silu_mul(s->hb, s->hb2, n * c->ffn);
    hass_matmul(pool, s->xb, s->hb, L->wd, L->td, n, c->ffn, d);
    hass_add(x, s->xb, n * d);
}

hass_status hass_model_forward(const hass_model *m, hass_kv *kv, hass_pool *pool, int64_t n,
                               const int32_t *tokens, const int32_t *pos, const int32_t *parents,
                               float *logits, int64_t logits_from, float *feats, hass_err *err) {
    const hass_model_config *c = &m->cfg;
    if (n <= 0 || n > kv->max_batch)
        return hass_err_set(err, HASS_STATUS_ARG, "forward: %lld rows (max %lld)", (long long)n,
                            (long long)kv->max_batch);
    if (kv->n + n > kv->cap)
        return hass_err_set(err, HASS_STATUS_RANGE,
                            "context full: %lld + %lld positions exceed the cache of %lld",
                            (long long)kv->n, (long long)n, (long long)kv->cap);
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= c->V)
            return hass_err_set(err, HASS_STATUS_RANGE, "token id %d out of range [0, %lld)",
                                tokens[i], (long long)c->V);
        if (pos[i] < 0)
            return hass_err_set(err, HASS_STATUS_RANGE, "position %d out of range", pos[i]);
    }
    if (!hass_mask_from_parents(kv->mask, parents, n))
        return hass_err_set(err, HASS_STATUS_ARG, "forward: parent index must be < its row");
    for (int64_t i = 0; i < n; i++)
        hass_embed_row(kv->x + i * c->d, m->embed, m->embed_t, tokens[i], c->d);
    hass_layer_scratch s = {kv->xb, kv->q, kv->att, kv->hb, kv->hb2, kv->attn_scratch};
    int64_t kvd = c->Hkv * c->Dh;
    for (int64_t l = 0; l < c->n_layers; l++)
        hass_layer_forward(pool, c, &m->layers[l], m->inv_freq, kv->x, n, pos,
                           kv->k + l * kv->cap * kvd, kv->v + l * kv->cap * kvd, kv->n, n,
                           parents ? kv->mask : NULL, &s);
    hass_rmsnorm(kv->x, kv->x, m->final_norm, n, c->d, c->eps);
    if (feats)
        memcpy(feats, kv->x, (size_t)(n * c->d) * sizeof(float));
    if (logits) {
        if (logits_from < 0 || logits_from >= n)
            logits_from = n - 1;
        hass_matmul(pool, logits, kv->x + logits_from * c->d, m->lm_head, m->lm_head_t,
                    n - logits_from, c->d, c->V);
    }
    return HASS_OK;
}

hass_status hass_model_prefill(const hass_model *m, hass_kv *kv, hass_pool *pool, int64_t n,
                               const int32_t *tokens, float *logits, float *feats, hass_err *err) {
    if (n < 1)
        return hass_err_set(err, HASS_STATUS_ARG, "prefill: no tokens");
    int64_t d = m->cfg.d, p0 = kv->n;
    for (int64_t s = 0; s < n; s += kv->max_batch) {
        int64_t k = n - s < kv->max_batch ? n - s : kv->max_batch;
        for (int64_t i = 0; i < k; i++)
            kv->pos_buf[i] = (int32_t)(p0 + s + i);
        hass_status st = hass_model_forward(m, kv, pool, k, tokens + s, kv->pos_buf, NULL,
                                            s + k == n ? logits : NULL, k - 1,
                                            feats ? feats + s * d : NULL, err);
        if (st)
            return st;
        hass_kv_commit(kv, k);
    }
    return HASS_OK;
}

void hass_model_free(hass_model *m) {
    if (!m)
        return;
    if (m->src_free)
        m->src_free(m->src);
    hass_arena_free(&m->arena);
    free(m);
}
