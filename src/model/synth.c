/*
 * synth.c — models with seeded random weights: the subjects of the batch-invariance and
 * tree-mask tests, and of the benchmarks of LLaMA-shaped models we cannot download.
 */
#include "formats/formats.h"
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hass_model_config hass_model_config_make(int64_t d, int64_t ffn, int64_t n_layers, int64_t H,
                                         int64_t Hkv, int64_t V, int64_t max_ctx) {
    hass_model_config c;
    memset(&c, 0, sizeof c);
    c.d = d;
    c.ffn = ffn;
    c.n_layers = n_layers;
    c.H = H;
    c.Hkv = Hkv;
    c.Dh = H > 0 ? d / H : 0;
    c.V = V;
    c.max_ctx = max_ctx;
    c.eps = 1e-5f;
    c.rope = hass_rope_plain(10000.0f);
    c.rope_style = HASS_ROPE_HALF;
    c.bos = -1;
    c.source = HASS_SRC_HF;
    return c;
}

typedef struct {
    hass_tensor *t;
    int n;
    void *blob;
} synth_src;

/* n values offset + scale * U(-1, 1) as dtype wt; block types row by row (rows of `cols`),
 * through the reference quantizer. */
static void fill(void *dst, hass_dtype wt, int64_t n, int64_t cols, float scale, float offset,
                 hass_rng *rng) {
    if (hass_dtype_is_quant(wt)) {
        float *row = malloc((size_t)cols * sizeof(float));
        HASS_ASSERT(row);
        size_t rb = hass_dtype_bytes(wt, (size_t)cols);
        for (int64_t r = 0; r < n / cols; r++) {
            fill(row, HASS_DTYPE_F32, cols, cols, scale, offset, rng);
            HASS_ASSERT(hass_ggml_quantize(wt, row, (uint8_t *)dst + (size_t)r * rb, cols, NULL) ==
                        HASS_OK);
        }
        free(row);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float v = offset + scale * (2.0f * hass_rng_uniform(rng) - 1.0f);
        if (wt == HASS_DTYPE_F32)
            ((float *)dst)[i] = v;
        else if (wt == HASS_DTYPE_BF16)
            ((uint16_t *)dst)[i] = hass_f32_to_bf16(v);
        else
            ((uint16_t *)dst)[i] = hass_f32_to_f16(v);
    }
}

static void synth_free(void *p) {
    synth_src *src = p;
    if (!src)
        return;
    hass_aligned_free(src->blob);
    free(src->t);
    free(src);
}

/* dtype of a matrix: wt, or what plan picks for it under its GGUF name */
static hass_dtype synth_dtype(hass_dtype wt, const hass_quant_plan *plan, const char *gguf,
                              int64_t layer, int64_t rows, int64_t cols) {
    if (!plan)
        return wt;
    char nm[96];
    if (layer >= 0)
        snprintf(nm, sizeof nm, "blk.%lld.%s.weight", (long long)layer, gguf);
    else
        snprintf(nm, sizeof nm, "%s.weight", gguf);
    return hass_quant_pick((void *)plan, nm, rows, cols, HASS_DTYPE_F32);
}

static hass_model *synth(const hass_model_config *cfg, hass_dtype wt, const hass_quant_plan *plan,
                         uint64_t seed, hass_err *err) {
    if (hass_model_config_check(cfg, err) != HASS_OK)
        return NULL;
    if (plan)
        wt = plan->base;
    int64_t bk = plan ? 1 : hass_dtype_block(wt);
    if ((wt != HASS_DTYPE_F32 && wt != HASS_DTYPE_BF16 && wt != HASS_DTYPE_F16 &&
         !hass_dtype_is_quant(wt)) ||
        cfg->d % bk || cfg->ffn % bk || (cfg->H * cfg->Dh) % bk) {
        hass_err_set(err, HASS_STATUS_ARG, "synthetic: unsupported dtype %s for this shape",
                     hass_dtype_name(wt));
        return NULL;
    }
    const hass_model_config *c = cfg;
    int64_t d = c->d, qd = c->H * c->Dh, kvd = c->Hkv * c->Dh;
    int nt = 3 + 9 * (int)c->n_layers;
    synth_src *src = calloc(1, sizeof *src);
    hass_tensor *t = calloc((size_t)nt, sizeof *t);
    if (!src || !t) {
        free(src);
        free(t);
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    int k = 0;
#define ADD(nm, r, cc, ty)                                                                         \
    do {                                                                                           \
        snprintf(t[k].name, sizeof t[k].name, "%s", nm);                                           \
        t[k].dtype = (ty);                                                                         \
        t[k].ndim = (cc) == 1 ? 1 : 2;                                                             \
        t[k].shape[0] = (r);                                                                       \
        t[k].shape[1] = (cc);                                                                      \
        t[k].nbytes = hass_dtype_bytes((ty), (size_t)((r) * (cc)));                                \
        k++;                                                                                       \
    } while (0)
    char nm[160];
    ADD("model.embed_tokens.weight", c->V, d, synth_dtype(wt, plan, "token_embd", -1, c->V, d));
    ADD("lm_head.weight", c->V, d, synth_dtype(wt, plan, "output", -1, c->V, d));
    ADD("model.norm.weight", d, 1, HASS_DTYPE_F32);
    for (int64_t l = 0; l < c->n_layers; l++) {
        const char *sfx[] = {"self_attn.q_proj.weight",        "self_attn.k_proj.weight",
                             "self_attn.v_proj.weight",        "self_attn.o_proj.weight",
                             "mlp.gate_proj.weight",           "mlp.up_proj.weight",
                             "mlp.down_proj.weight",           "input_layernorm.weight",
                             "post_attention_layernorm.weight"};
        int64_t rows[] = {qd, kvd, kvd, d, c->ffn, c->ffn, d, d, d};
        int64_t cols[] = {d, d, d, qd, d, d, c->ffn, 1, 1};
        const char *gguf[] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                              "ffn_gate", "ffn_up", "ffn_down"};
        for (int j = 0; j < 9; j++) {
            snprintf(nm, sizeof nm, "model.layers.%lld.%s", (long long)l, sfx[j]);
            ADD(nm, rows[j], cols[j],
                j >= 7 ? HASS_DTYPE_F32 : synth_dtype(wt, plan, gguf[j], l, rows[j], cols[j]));
        }
    }
#undef ADD
    size_t total = 0;
    for (int i = 0; i < k; i++)
        total += (t[i].nbytes + 63) & ~(size_t)63;
    src->blob = hass_aligned_alloc(total);
    if (!src->blob) {
        free(src);
        free(t);
        hass_err_set(err, HASS_STATUS_OOM, "synthetic model: cannot allocate %zu bytes", total);
        return NULL;
    }
    hass_rng rng;
    hass_rng_seed(&rng, seed);
    size_t off = 0;
    for (int i = 0; i < k; i++) {
        t[i].data = (uint8_t *)src->blob + off;
        off += (t[i].nbytes + 63) & ~(size_t)63;
        int64_t cols = t[i].ndim == 2 ? t[i].shape[1] : 1, numel = hass_tensor_numel(&t[i]);
        if (t[i].ndim == 1)
            fill((void *)t[i].data, t[i].dtype, numel, cols, 0.1f, 1.0f, &rng);
        else if (!strcmp(t[i].name, "model.embed_tokens.weight"))
            fill((void *)t[i].data, t[i].dtype, numel, cols, 1.0f, 0.0f, &rng);
        else /* uniform with variance 1/cols: unit-scale outputs */
            fill((void *)t[i].data, t[i].dtype, numel, cols, sqrtf(3.0f / (float)cols), 0.0f, &rng);
    }
    src->t = t;
    src->n = k;
    hass_model *m = hass_model_from_tensors(cfg, t, k, err);
    if (!m) {
        hass_aligned_free(src->blob);
        free(t);
        free(src);
        return NULL;
    }
    m->src = src;
    m->src_free = synth_free;
    return m;
}

hass_model *hass_model_synthetic(const hass_model_config *cfg, hass_dtype wt, uint64_t seed,
                                 hass_err *err) {
    return synth(cfg, wt, NULL, seed, err);
}

hass_model *hass_model_synthetic_mix(const hass_model_config *cfg, const hass_quant_plan *plan,
                                     uint64_t seed, hass_err *err) {
    return synth(cfg, HASS_DTYPE_COUNT, plan, seed, err);
}
