/*
 * draft.c — the EAGLE/HASS draft head: loading and saving the EAGLE layout, its KV cache with
 * a tree scratch region, and its forward pass over (feature, token) pairs.
 */
#include "draft/draft.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const hass_tensor *dfind(const hass_draft *d, const char *name) {
    return d->from_gguf ? hass_gguf_find_tensor(&d->gg, name) : hass_st_set_find(&d->st, name);
}

/* tensor name of shape (r, c) (c = 0: a vector); matrices may be in a GGUF block type */
static hass_status need2(const hass_draft *d, const char *name, int64_t r, int64_t c,
                         const hass_tensor **out, hass_err *err) {
    const hass_tensor *t = dfind(d, name);
    if (!t)
        return hass_err_set(err, HASS_STATUS_NOTFOUND, "draft: missing tensor %s", name);
    int ok = c == 0 ? (t->ndim == 1 && t->shape[0] == r)
                    : (t->ndim == 2 && t->shape[0] == r && t->shape[1] == c);
    if (!ok)
        return hass_err_set(err, HASS_STATUS_SHAPE,
                            "draft: tensor %s has the wrong shape for this target (expected "
                            "[%lld%s%lld])",
                            name, (long long)r, c ? ", " : "", (long long)(c ? c : 0));
    int quant = c > 0 && hass_dtype_is_quant(t->dtype);
    if (t->dtype != HASS_DTYPE_F32 && t->dtype != HASS_DTYPE_BF16 && t->dtype != HASS_DTYPE_F16 &&
        !quant)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED, "draft: tensor %s: dtype %s", name,
                            hass_dtype_name(t->dtype));
    int64_t bad = quant ? hass_ggml_check(t->dtype, t->data, t->nbytes) : -1;
    if (bad >= 0)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "draft: tensor %s: block %lld has a "
                            "non-finite scale",
                            name, (long long)bad);
    *out = t;
    return HASS_OK;
}

static float *to_f32_arena(hass_arena *a, const hass_tensor *t, int64_t n) {
    float *w = hass_arena_alloc(a, (size_t)n * sizeof(float));
    if (w)
        hass_to_f32(w, t->data, t->dtype, n);
    return w;
}

/* draft_vocab: distinct target ids; gathers their LM-head rows into d->head */
static hass_status load_vocab(hass_draft *d, hass_err *err) {
    const hass_tensor *t = dfind(d, "draft_vocab");
    if (!t)
        return HASS_OK;
    const hass_model *m = d->target;
    int64_t V = m->cfg.V, D = m->cfg.d, n = hass_tensor_numel(t);
    if (t->dtype != HASS_DTYPE_I32 || t->ndim != 1 || n < 1 || n > V)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "draft: draft_vocab must be 1..%lld I32 token ids", (long long)V);
    d->vocab = malloc((size_t)n * sizeof(int32_t));
    uint8_t *seen = calloc((size_t)V, 1);
    size_t rb = hass_dtype_bytes(m->lm_head_t, (size_t)D);
    d->head = hass_aligned_alloc(rb * (size_t)n);
    if (!d->vocab || !seen || !d->head) {
        free(seen);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    memcpy(d->vocab, t->data, (size_t)n * sizeof(int32_t));
    for (int64_t i = 0; i < n; i++) {
        int32_t id = d->vocab[i];
        if (id < 0 || id >= V || seen[id]) {
            free(seen);
            return hass_err_set(err, HASS_STATUS_FORMAT,
                                "draft: draft_vocab has an invalid or repeated id %d", id);
        }
        seen[id] = 1;
        memcpy((uint8_t *)d->head + (size_t)i * rb, (const uint8_t *)m->lm_head + (size_t)id * rb,
               rb);
    }
    free(seen);
    d->n_vocab = n;
    d->head_t = m->lm_head_t;
    return HASS_OK;
}

hass_status hass_draft_config_from_json(const char *json, hass_model_config *dc, int *has_bias,
                                        hass_err *err) {
    hass_status st = hass_model_config_from_json(dc, json, err);
    if (st)
        return st;
    cJSON *o = cJSON_Parse(json);
    const cJSON *b = hass_json_get(o, "bias");
    if (b && !cJSON_IsBool(b))
        st = hass_err_set(err, HASS_STATUS_FORMAT, "config.json: bias is not true or false");
    *has_bias = hass_json_bool(o, "bias", 1); /* EAGLE's default when absent (LLaMA-2 drafts) */
    cJSON_Delete(o);
    return st;
}

hass_status hass_draft_read_config(const char *dir, hass_model_config *dc, int *has_bias,
                                   hass_err *err) {
    char path[1024], *json = NULL;
    if (!hass_is_dir(dir))
        return hass_err_set(err, HASS_STATUS_IO, "%s: not a draft directory", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    hass_status st = hass_read_text(path, HASS_READ_MAX, &json, NULL, err);
    if (st != HASS_OK)
        return st;
    st = hass_draft_config_from_json(json, dc, has_bias, err);
    free(json);
    return st != HASS_OK ? hass_err_prefix(err, st, "draft") : HASS_OK;
}

hass_draft *hass_draft_load(const char *dir, const hass_model *m, hass_err *err) {
    hass_model_config dc;
    int has_bias;
    if (hass_draft_read_config(dir, &dc, &has_bias, err) != HASS_OK)
        return NULL;
    const hass_model_config *tc = &m->cfg;
    if (dc.d != tc->d || dc.H != tc->H || dc.Hkv != tc->Hkv || dc.V != tc->V) {
        hass_err_set(err, HASS_STATUS_SHAPE,
                     "draft %s does not fit the target: hidden %lld/%lld, heads %lld/%lld, kv "
                     "heads %lld/%lld, vocab %lld/%lld (draft/target)",
                     dir, (long long)dc.d, (long long)tc->d, (long long)dc.H, (long long)tc->H,
                     (long long)dc.Hkv, (long long)tc->Hkv, (long long)dc.V, (long long)tc->V);
        return NULL;
    }
    hass_draft *d = calloc(1, sizeof *d);
    if (!d) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    d->target = m;
    d->has_bias = has_bias;
    d->cfg = *tc; /* shapes and positions: the target's */
    d->cfg.n_layers = 1;
    d->cfg.ffn = dc.ffn;
    d->cfg.eps = dc.eps;
    /* RoPE: the draft's own config.json (theta, scaling, divisors), as EAGLE's code reads it;
     * the trainer records there the frequencies it trained with */
    d->cfg.rope = dc.rope;
    d->cfg.rope_style = HASS_ROPE_HALF; /* EAGLE heads are Hugging Face modules */
    int64_t D = tc->d, qd = tc->H * tc->Dh, kvd = tc->Hkv * tc->Dh, F = dc.ffn;
    char gpath[1024];
    snprintf(gpath, sizeof gpath, "%s/model.gguf", dir);
    d->from_gguf = hass_file_exists(gpath);
    if (hass_arena_init(&d->arena, (size_t)(4 * D + tc->Dh + 256) * sizeof(float) + 1024, err) ||
        (d->from_gguf ? hass_gguf_open(&d->gg, gpath, err)
                      : hass_safetensors_open_dir(&d->st, dir, err)))
        goto fail;
    d->inv_freq = hass_arena_alloc(&d->arena, (size_t)(tc->Dh / 2) * sizeof(float));
    hass_rope_freqs(&d->cfg.rope, tc->Dh, d->inv_freq);
    const hass_tensor *t;
    if (need2(d, "fc.weight", D, 2 * D, &t, err))
        goto fail;
    d->fc_w = t->data;
    d->fc_t = t->dtype;
    d->weight_bytes = t->nbytes;
    if (has_bias) {
        if (need2(d, "fc.bias", D, 0, &t, err))
            goto fail;
        d->fc_b = to_f32_arena(&d->arena, t, D);
    }
    struct {
        const char *name;
        int64_t r, c;
        const void **w;
        hass_dtype *dt;
    } mats[] = {
        {"layers.0.self_attn.q_proj.weight", qd, D, &d->layer.wq, &d->layer.tq},
        {"layers.0.self_attn.k_proj.weight", kvd, D, &d->layer.wk, &d->layer.tk},
        {"layers.0.self_attn.v_proj.weight", kvd, D, &d->layer.wv, &d->layer.tv},
        {"layers.0.self_attn.o_proj.weight", D, qd, &d->layer.wo, &d->layer.to},
        {"layers.0.mlp.gate_proj.weight", F, D, &d->layer.wg, &d->layer.tg},
        {"layers.0.mlp.up_proj.weight", F, D, &d->layer.wu, &d->layer.tu},
        {"layers.0.mlp.down_proj.weight", D, F, &d->layer.wd, &d->layer.td},
    };
    for (size_t k = 0; k < sizeof mats / sizeof mats[0]; k++) {
        if (need2(d, mats[k].name, mats[k].r, mats[k].c, &t, err))
            goto fail;
        *mats[k].w = t->data;
        *mats[k].dt = t->dtype;
        d->weight_bytes += t->nbytes;
    }
    if (need2(d, "layers.0.post_attention_layernorm.weight", D, 0, &t, err))
        goto fail;
    d->layer.ffn_norm = to_f32_arena(&d->arena, t, D);
    d->layer.attn_norm = NULL;
    /* an embedded copy of the embedding must be the target's (up to bf16 rounding; up to the
     * quantization error when the target's embedding is quantized: relative RMS difference per
     * row below 0.3, where Q4 is ~0.1 and an unrelated embedding ~1.4) */
    const hass_tensor *e = dfind(d, "embed_tokens.weight");
    if (e) {
        if (e->ndim != 2 || e->shape[0] != tc->V || e->shape[1] != D) {
            hass_err_set(err, HASS_STATUS_SHAPE, "draft: embed_tokens.weight shape differs");
            goto fail;
        }
        if (e->dtype != HASS_DTYPE_F32 && e->dtype != HASS_DTYPE_BF16 &&
            e->dtype != HASS_DTYPE_F16 &&
            (!hass_dtype_is_quant(e->dtype) ||
             hass_ggml_check(e->dtype, e->data, e->nbytes) >= 0)) {
            hass_err_set(err, HASS_STATUS_FORMAT,
                         "draft: embed_tokens.weight: bad dtype %s or "
                         "scale",
                         hass_dtype_name(e->dtype));
            goto fail;
        }
        float *a = malloc((size_t)D * sizeof(float)), *bb = malloc((size_t)D * sizeof(float));
        int same = a && bb;
        for (int64_t r = 0; same && r < tc->V; r += (tc->V > 4096 ? 7 : 1)) {
            hass_embed_row(a, e->data, e->dtype, r, D);
            hass_embed_row(bb, m->embed, m->embed_t, r, D);
            double dd = 0, aa = 0;
            for (int64_t i = 0; i < D && same; i++) {
                same = hass_dtype_is_quant(m->embed_t) ||
                       hass_f32_to_bf16(a[i]) == hass_f32_to_bf16(bb[i]);
                dd += ((double)a[i] - bb[i]) * ((double)a[i] - bb[i]);
                aa += (double)a[i] * a[i];
            }
            if (hass_dtype_is_quant(m->embed_t))
                same = dd <= 0.09 * aa;
        }
        free(a);
        free(bb);
        if (!same) {
            hass_err_set(err, HASS_STATUS_FORMAT,
                         "draft %s was trained for another target: its embed_tokens.weight "
                         "differs from the target's",
                         dir);
            goto fail;
        }
    }
    if (load_vocab(d, err) != HASS_OK)
        goto fail;
    return d;
fail:
    hass_draft_free(d);
    return NULL;
}

void hass_draft_free(hass_draft *d) {
    if (!d)
        return;
    hass_st_set_close(&d->st);
    hass_gguf_close(&d->gg);
    hass_arena_free(&d->arena);
    free(d->vocab);
    hass_aligned_free(d->head);
    free(d);
}

hass_status hass_draft_save(const char *dir, const hass_model_config *tc,
                            const hass_rope_params *rope, int has_bias, int64_t ffn,
                            const hass_tensor *tensors, int n, hass_dtype out_dtype,
                            const char *target_name, hass_err *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return hass_err_set(err, HASS_STATUS_IO, "%s: %s", dir, strerror(errno));
    if (out_dtype != HASS_DTYPE_F32 && out_dtype != HASS_DTYPE_BF16)
        return hass_err_set(err, HASS_STATUS_ARG, "draft save: dtype must be F32 or BF16");
    /* convert matrices to the output dtype */
    hass_tensor *out = calloc((size_t)n, sizeof *out);
    void **bufs = calloc((size_t)n, sizeof *bufs);
    hass_status st = HASS_OK;
    if (!out || !bufs) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        out[i] = tensors[i];
        HASS_ASSERT(tensors[i].dtype == HASS_DTYPE_F32);
        if (out_dtype == HASS_DTYPE_BF16 && tensors[i].ndim == 2) {
            int64_t ne = hass_tensor_numel(&tensors[i]);
            uint16_t *b = malloc((size_t)ne * 2);
            if (!b) {
                st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
                goto done;
            }
            const float *src = tensors[i].data;
            for (int64_t k = 0; k < ne; k++)
                b[k] = hass_f32_to_bf16(src[k]);
            bufs[i] = b;
            out[i].data = b;
            out[i].dtype = HASS_DTYPE_BF16;
            out[i].nbytes = (size_t)ne * 2;
        }
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((st = hass_safetensors_write(path, out, n, NULL, err)) != HASS_OK)
        goto done;
    hass_model_config dc = *tc; /* the draft layer: the target's shapes, its own ffn and RoPE */
    dc.ffn = ffn;
    dc.n_layers = 1;
    dc.rope = *rope;
    cJSON *o = hass_model_config_to_json(&dc);
    cJSON_AddBoolToObject(o, "bias", has_bias);
    cJSON_AddStringToObject(o, "torch_dtype",
                            out_dtype == HASS_DTYPE_BF16 ? "bfloat16" : "float32");
    if (target_name)
        cJSON_AddStringToObject(o, "hass_target", target_name);
    st = hass_json_save(dir, "config.json", o, err);
    cJSON_Delete(o);
done:
    if (bufs)
        for (int i = 0; i < n; i++)
            free(bufs[i]);
    free(bufs);
    free(out);
    return st;
}

/* ---- state ---- */
hass_status hass_draft_state_init(hass_draft_state *s, const hass_draft *d, int64_t cap,
                                  int64_t max_rows, hass_pool *pool, hass_err *err) {
    memset(s, 0, sizeof *s);
    const hass_model_config *c = &d->cfg;
    if (cap <= 0 || max_rows <= 0)
        return hass_err_set(err, HASS_STATUS_ARG, "draft state: bad sizes");
    s->dr = d;
    s->cap = cap;
    s->max_rows = max_rows;
    s->mask_words = (HASS_DRAFT_MAX_SCRATCH + 63) / 64;
    int64_t kvd = c->Hkv * c->Dh, R = max_rows, tot = cap + HASS_DRAFT_MAX_SCRATCH;
    size_t f = sizeof(float);
    s->k = hass_aligned_alloc((size_t)(tot * kvd) * f);
    s->v = hass_aligned_alloc((size_t)(tot * kvd) * f);
    s->pair = hass_aligned_alloc((size_t)(R * 2 * c->d) * f);
    s->x = hass_aligned_alloc((size_t)(R * c->d) * f);
    s->xb = hass_aligned_alloc((size_t)(R * c->d) * f);
    s->q = hass_aligned_alloc((size_t)(R * c->H * c->Dh) * f);
    s->att = hass_aligned_alloc((size_t)(R * c->H * c->Dh) * f);
    s->hb = hass_aligned_alloc((size_t)(R * c->ffn) * f);
    s->hb2 = hass_aligned_alloc((size_t)(R * c->ffn) * f);
    s->attn_scratch = hass_aligned_alloc(hass_attention_scratch(pool, tot) * f);
    s->mask = hass_aligned_alloc((size_t)(R * s->mask_words) * sizeof(uint64_t));
    s->parent = hass_aligned_alloc(HASS_DRAFT_MAX_SCRATCH * sizeof(int32_t));
    if (!s->k || !s->v || !s->pair || !s->x || !s->xb || !s->q || !s->att || !s->hb || !s->hb2 ||
        !s->attn_scratch || !s->mask || !s->parent) {
        hass_draft_state_free(s);
        return hass_err_set(err, HASS_STATUS_OOM, "draft state: out of memory");
    }
    return HASS_OK;
}

void hass_draft_state_free(hass_draft_state *s) {
    if (!s)
        return;
    void *ps[] = {s->k,  s->v,   s->pair,         s->x,    s->xb,    s->q, s->att,
                  s->hb, s->hb2, s->attn_scratch, s->mask, s->parent};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        hass_aligned_free(ps[i]);
    memset(s, 0, sizeof *s);
}

void hass_draft_state_reset(hass_draft_state *s) {
    s->n = 0;
    s->scratch = 0;
}

/* The fc layer over the pairs (embedding first, then the feature) into s->x: (n, d). */
static hass_status fuse_pairs(hass_draft_state *s, hass_pool *pool, int64_t n, const float *feats,
                              const int32_t *toks, hass_err *err) {
    const hass_draft *d = s->dr;
    const hass_model *m = d->target;
    int64_t D = d->cfg.d;
    if (n <= 0 || n > s->max_rows)
        return hass_err_set(err, HASS_STATUS_ARG, "draft forward: %lld rows (max %lld)",
                            (long long)n, (long long)s->max_rows);
    for (int64_t i = 0; i < n; i++) {
        if (toks[i] < 0 || toks[i] >= d->cfg.V)
            return hass_err_set(err, HASS_STATUS_RANGE, "draft forward: token %d", toks[i]);
        float *p = s->pair + i * 2 * D;
        hass_embed_row(p, m->embed, m->embed_t, toks[i], D); /* embedding first */
        memcpy(p + D, feats + i * D, (size_t)D * sizeof(float));
    }
    hass_matmul(pool, s->x, s->pair, d->fc_w, d->fc_t, n, 2 * D, D);
    if (d->fc_b)
        for (int64_t i = 0; i < n; i++)
            hass_add(s->x + i * D, d->fc_b, D);
    return HASS_OK;
}

/* The decoder layer over s->x: rows n_win - n .. n_win - 1 of a window of n_win rows after the
 * committed ones (mask NULL: a causal chain); outputs to out. */
static void run_layer(hass_draft_state *s, hass_pool *pool, int64_t n, const int32_t *pos,
                      int64_t n_win, const uint64_t *mask, float *out) {
    const hass_draft *d = s->dr;
    hass_layer_scratch ls = {s->xb, s->q, s->att, s->hb, s->hb2, s->attn_scratch};
    hass_layer_forward(pool, &d->cfg, &d->layer, d->inv_freq, s->x, n, pos, s->k, s->v, s->n, n_win,
                       mask, &ls);
    if (out != s->x)
        memcpy(out, s->x, (size_t)(n * d->cfg.d) * sizeof(float));
}

hass_status hass_draft_forward(hass_draft_state *s, hass_pool *pool, int64_t n, const float *feats,
                               const int32_t *toks, const int32_t *pos, float *out, hass_err *err) {
    if (s->scratch != 0 || s->n + n > s->cap)
        return hass_err_set(err, HASS_STATUS_RANGE, "draft forward: cache full or bad state");
    hass_status st = fuse_pairs(s, pool, n, feats, toks, err);
    if (st)
        return st;
    run_layer(s, pool, n, pos, n, NULL, out);
    s->n += n;
    return HASS_OK;
}

hass_status hass_draft_forward_tree(hass_draft_state *s, hass_pool *pool, int64_t n,
                                    const float *feats, const int32_t *toks, const int32_t *pos,
                                    const int32_t *parents, float *out, hass_err *err) {
    int64_t base = s->scratch, win = base + n, W = (win + 63) / 64;
    if (win > HASS_DRAFT_MAX_SCRATCH)
        return hass_err_set(err, HASS_STATUS_RANGE, "tree: draft scratch full");
    for (int64_t i = 0; i < n; i++)
        if (parents[i] < -1 || parents[i] >= base + i)
            return hass_err_set(err, HASS_STATUS_ARG, "draft forward: bad parent row %d",
                                parents[i]);
    hass_status st = fuse_pairs(s, pool, n, feats, toks, err);
    if (st)
        return st;
    /* row i sees itself and its ancestors (the window is the whole scratch region so far) */
    memset(s->mask, 0, (size_t)(n * W) * sizeof(uint64_t));
    for (int64_t i = 0; i < n; i++) {
        uint64_t *row = s->mask + i * W;
        s->parent[base + i] = parents[i];
        for (int64_t a = base + i; a >= 0; a = s->parent[a])
            row[a / 64] |= 1ull << (a % 64);
    }
    run_layer(s, pool, n, pos, win, s->mask, out);
    s->scratch = win;
    return HASS_OK;
}
