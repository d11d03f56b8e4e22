/*
 * export.c — writes any loaded model as a Hugging Face directory (config.json +
 * model.safetensors, or shards + model.safetensors.index.json) or as a GGUF file laid out as
 * llama.cpp's convert_hf_to_gguf.py writes a LLaMA (docs/gguf.md). q/k rows are permuted between
 * the interleaved RoPE layout (llama2.c, GGUF) and Hugging Face's rotate-half layout as the
 * target format needs, so the written model computes the same function.
 */
#include "formats/formats.h"
#include "model/model.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the model's tensors, under both naming schemes ---- */

typedef struct {
    char hf[96], gg[64]; /* Hugging Face and GGUF names */
    const void *w;
    hass_dtype t;
    int64_t r, c; /* rows, cols; c == 1: a norm vector (f32) */
    int qk;       /* q/k rows: their RoPE layout depends on the format */
} mtensor;

/* Fills out[3 + 9 * n_layers] (2 + 9 * n_layers when the embeddings are tied); returns the
 * count. Order: embedding, (lm head), final norm, then each layer. */
static int model_tensors(const hass_model *m, mtensor *out) {
    const hass_model_config *c = &m->cfg;
    int64_t d = c->d, qd = c->H * c->Dh, kvd = c->Hkv * c->Dh;
    int n = 0;
    out[n++] = (mtensor){
        "model.embed_tokens.weight", "token_embd.weight", m->embed, m->embed_t, c->V, d, 0};
    if (m->lm_head != m->embed)
        out[n++] =
            (mtensor){"lm_head.weight", "output.weight", m->lm_head, m->lm_head_t, c->V, d, 0};
    out[n++] = (mtensor){
        "model.norm.weight", "output_norm.weight", m->final_norm, HASS_DTYPE_F32, d, 1, 0};
    for (int64_t l = 0; l < c->n_layers; l++) {
        const hass_layer *y = &m->layers[l];
        const struct {
            const char *hf, *gg;
            mtensor e;
        } per[] = {
            {"input_layernorm", "attn_norm", {"", "", y->attn_norm, HASS_DTYPE_F32, d, 1, 0}},
            {"self_attn.q_proj", "attn_q", {"", "", y->wq, y->tq, qd, d, 1}},
            {"self_attn.k_proj", "attn_k", {"", "", y->wk, y->tk, kvd, d, 1}},
            {"self_attn.v_proj", "attn_v", {"", "", y->wv, y->tv, kvd, d, 0}},
            {"self_attn.o_proj", "attn_output", {"", "", y->wo, y->to, d, qd, 0}},
            {"post_attention_layernorm",
             "ffn_norm",
             {"", "", y->ffn_norm, HASS_DTYPE_F32, d, 1, 0}},
            {"mlp.gate_proj", "ffn_gate", {"", "", y->wg, y->tg, c->ffn, d, 0}},
            {"mlp.up_proj", "ffn_up", {"", "", y->wu, y->tu, c->ffn, d, 0}},
            {"mlp.down_proj", "ffn_down", {"", "", y->wd, y->td, d, c->ffn, 0}},
        };
        for (size_t k = 0; k < sizeof per / sizeof per[0]; k++, n++) {
            out[n] = per[k].e;
            snprintf(out[n].hf, sizeof out[n].hf, "model.layers.%lld.%s.weight", (long long)l,
                     per[k].hf);
            snprintf(out[n].gg, sizeof out[n].gg, "blk.%lld.%s.weight", (long long)l, per[k].gg);
        }
    }
    return n;
}

/* q/k row permutation within each head of Dh rows (HF's permute() and its inverse):
 * interleaved row 2i + j (pair i, member j) is half-layout row j * Dh/2 + i. */
enum { PERM_NONE = 0, PERM_TO_HALF, PERM_TO_INTERLEAVED };

static int64_t src_row(int64_t row, int perm, int64_t Dh) {
    int64_t h = row / Dh, k = row % Dh, half = Dh / 2;
    if (perm == PERM_TO_HALF) /* out row j * half + i <- interleaved row 2i + j */
        return h * Dh + 2 * (k % half) + k / half;
    if (perm == PERM_TO_INTERLEAVED) /* out row 2i + j <- half row j * half + i */
        return h * Dh + (k % 2) * half + k / 2;
    return row;
}

/* e's rows, permuted when e holds q/k and perm is set, as dtype `out` (bytes copied when the
 * dtype does not change; else through f32, block types by ggml's reference quantizers).
 * dst: hass_dtype_bytes(out, r * c); row: c floats. Fails only on a non-finite value to
 * quantize. */
static hass_status convert_rows(uint8_t *dst, const mtensor *e, hass_dtype out, int perm,
                                int64_t Dh, float *row, hass_err *err) {
    size_t ib = hass_dtype_bytes(e->t, (size_t)e->c), ob = hass_dtype_bytes(out, (size_t)e->c);
    for (int64_t i = 0; i < e->r; i++) {
        const uint8_t *src = (const uint8_t *)e->w + (size_t)src_row(i, e->qk ? perm : 0, Dh) * ib;
        uint8_t *o = dst + (size_t)i * ob;
        if (out == e->t) {
            memcpy(o, src, ob);
            continue;
        }
        hass_to_f32(row, src, e->t, e->c);
        if (hass_dtype_is_quant(out)) {
            hass_status st = hass_ggml_quantize(out, row, o, e->c, err);
            if (st)
                return hass_err_prefix(err, st, e->gg);
            continue;
        }
        for (int64_t k = 0; k < e->c; k++) {
            if (out == HASS_DTYPE_F32)
                memcpy(o + 4 * k, &row[k], 4);
            else {
                uint16_t h =
                    out == HASS_DTYPE_BF16 ? hass_f32_to_bf16(row[k]) : hass_f32_to_f16(row[k]);
                memcpy(o + 2 * k, &h, 2);
            }
        }
    }
    return HASS_OK;
}

static void tensor_desc(hass_tensor *t, const char *name, const mtensor *e, hass_dtype dt) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->ndim = e->c == 1 ? 1 : 2;
    t->shape[0] = e->r;
    t->shape[1] = e->c == 1 ? 0 : e->c;
    t->nbytes = hass_dtype_bytes(dt, (size_t)(e->r * e->c));
}

static hass_status write_config(const hass_model *m, const char *dir, hass_dtype dt,
                                hass_err *err) {
    const hass_model_config *c = &m->cfg;
    cJSON *o = hass_model_config_to_json(c);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", m->lm_head == m->embed);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    cJSON_AddStringToObject(o, "torch_dtype", dt == HASS_DTYPE_BF16 ? "bfloat16" : "float32");
    if (c->bos >= 0)
        cJSON_AddNumberToObject(o, "bos_token_id", c->bos);
    /* EOS ids (for llama2.c checkpoints BOS is also a stop token of run.c; not an EOS) */
    int n_eos = 0;
    int32_t eos[HASS_MAX_STOP];
    for (int i = 0; i < c->n_stop; i++)
        if (!(c->source == HASS_SRC_LLAMA2C && c->stop_ids[i] == c->bos))
            eos[n_eos++] = c->stop_ids[i];
    if (n_eos == 1)
        cJSON_AddNumberToObject(o, "eos_token_id", eos[0]);
    else if (n_eos > 1)
        cJSON_AddItemToObject(o, "eos_token_id", cJSON_CreateIntArray(eos, n_eos));
    hass_status st = hass_json_save(dir, "config.json", o, err);
    cJSON_Delete(o);
    return st;
}

hass_status hass_model_export_hf(const hass_model *m, const char *dir, hass_dtype dt,
                                 size_t shard_bytes, hass_err *err) {
    const hass_model_config *c = &m->cfg;
    if (dt != HASS_DTYPE_F32 && dt != HASS_DTYPE_BF16)
        return hass_err_set(err, HASS_STATUS_ARG, "export: dtype must be F32 or BF16");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return hass_err_set(err, HASS_STATUS_IO, "%s: %s", dir, strerror(errno));
    int perm = c->rope_style == HASS_ROPE_INTERLEAVED ? PERM_TO_HALF : PERM_NONE;
    mtensor *e = calloc((size_t)(3 + 9 * c->n_layers), sizeof *e);
    int n = e ? model_tensors(m, e) : 0;
    hass_tensor *T = calloc((size_t)n + 1, sizeof *T);
    void **bufs = calloc((size_t)n + 1, sizeof *bufs);
    float *row = malloc((size_t)(c->d > c->ffn ? c->d : c->ffn) * sizeof *row); /* widest row */
    hass_status st =
        e && T && bufs && row ? HASS_OK : hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    /* the whole model is converted in memory: safetensors shards are written in one go */
    for (int i = 0; i < n && !st; i++) {
        tensor_desc(&T[i], e[i].hf, &e[i], e[i].c == 1 ? HASS_DTYPE_F32 : dt);
        if (!(bufs[i] = malloc(T[i].nbytes ? T[i].nbytes : 1))) {
            st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
            break;
        }
        st = convert_rows(bufs[i], &e[i], T[i].dtype, perm, c->Dh, row, err);
        T[i].data = bufs[i];
    }
    if (!st)
        st = write_config(m, dir, dt, err);
    char path[1024];
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += T[i].nbytes;
    if (!st && (shard_bytes == 0 || total <= shard_bytes)) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        st = hass_safetensors_write(path, T, n, "{\"format\":\"pt\"}", err);
    } else if (!st) {
        /* shards of at most shard_bytes (at least one tensor each) + the index */
        cJSON *idx = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(idx, "metadata");
        cJSON_AddNumberToObject(meta, "total_size", (double)total);
        cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
        int n_sh = 0, first = 0;
        while (first < n && !st) {
            int last = first;
            size_t sz = T[first].nbytes;
            while (last + 1 < n && sz + T[last + 1].nbytes <= shard_bytes)
                sz += T[++last].nbytes;
            n_sh++;
            first = last + 1;
        }
        first = 0;
        for (int s = 1; s <= n_sh && !st; s++) {
            int last = first;
            size_t sz = T[first].nbytes;
            while (last + 1 < n && sz + T[last + 1].nbytes <= shard_bytes)
                sz += T[++last].nbytes;
            char fname[128];
            snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s, n_sh);
            snprintf(path, sizeof path, "%s/%s", dir, fname);
            st = hass_safetensors_write(path, T + first, last - first + 1, "{\"format\":\"pt\"}",
                                        err);
            for (int i = first; i <= last; i++)
                cJSON_AddStringToObject(wm, T[i].name, fname);
            first = last + 1;
        }
        if (!st)
            st = hass_json_save(dir, "model.safetensors.index.json", idx, err);
        cJSON_Delete(idx);
    }
    for (int i = 0; bufs && i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(T);
    free(e);
    free(row);
    return st;
}

/* ---- GGUF ---- */

/* RoPE divisors for "rope_freqs.weight" (llama.cpp divides each base frequency by one), or 0
 * when the frequencies before linear scaling are the plain ones (linear scaling has its own
 * keys). A GGUF source's divisors are kept as they are; for llama3 scaling the start is
 * convert_hf_to_gguf.py's factor, nudged by an ulp or two until base / div reproduces the
 * frequency exactly as hass_rope_freqs computes it (our GGUF loader then reads back the same
 * frequencies). div, base, want: Dh/2 floats. */
static int rope_divisors(const hass_model_config *c, float *div, float *base, float *want) {
    const hass_rope_params *r = &c->rope;
    int64_t half = c->Dh / 2;
    if (r->factor == 0) {
        memcpy(div, r->div, (size_t)r->n_div * sizeof *div);
        return r->n_div > 0;
    }
    hass_rope_params plain = hass_rope_plain(r->theta), scaled = *r;
    scaled.linear = 0;
    hass_rope_freqs(&plain, c->Dh, base);
    hass_rope_freqs(&scaled, c->Dh, want);
    for (int64_t i = 0; i < half; i++) {
        double wl = 2 * M_PI / base[i], lo = (double)r->orig_ctx / r->low_freq_factor,
               hi = (double)r->orig_ctx / r->high_freq_factor;
        double sm = ((double)r->orig_ctx / wl - r->low_freq_factor) /
                    (r->high_freq_factor - r->low_freq_factor);
        float d0 = wl < hi ? 1.0f : wl > lo ? r->factor : (float)(1 / ((1 - sm) / r->factor + sm));
        if (r->n_div > 0) /* llama3 and divisors together: one divisor for both */
            d0 *= r->div[i];
        float up = d0, dn = d0;
        div[i] = d0;
        for (int k = 0; k < 8 && base[i] / div[i] != want[i]; k++) {
            up = nextafterf(up, INFINITY);
            dn = nextafterf(dn, 0);
            div[i] = base[i] / up == want[i] ? up : dn;
        }
    }
    return 1;
}

/* convert_hf_to_gguf.py's size label: 2 significant digits and K/M/B/T */
static void size_label(char *out, size_t cap, double n) {
    const char *sfx = n > 1e12 ? "T" : n > 1e9 ? "B" : n > 1e6 ? "M" : "K";
    double s = n * (n > 1e12 ? 1e-12 : n > 1e9 ? 1e-9 : n > 1e6 ? 1e-6 : 1e-3);
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", nearbyint(s));
    int fix =
        2 - (int)strlen(digits + strspn(digits, "0")); /* Python: len(str(round(s)).lstrip('0')) */
    snprintf(out, cap, "%.*f%s", fix > 0 ? fix : 0, s, sfx);
}

/* llama.cpp's general.file_type (LlamaFileType) of the matrices' dtype */
static uint32_t file_type(hass_dtype t) {
    switch (t) {
    case HASS_DTYPE_F16:
        return 1;
    case HASS_DTYPE_Q8_0:
        return 7;
    case HASS_DTYPE_BF16:
        return 32;
    default:
        return 0;
    }
}

typedef struct {
    const mtensor *e;
    const hass_tensor *t;
    int perm;
    int64_t Dh;
    float *row;
} gguf_fill;

static hass_status fill_tensor(void *ctx, int64_t i, void *dst, hass_err *err) {
    const gguf_fill *f = ctx;
    return convert_rows(dst, &f->e[i], f->t[i].dtype, f->perm, f->Dh, f->row, err);
}

static hass_status gguf_meta(hass_gguf_kvs *l, const hass_model *m, const char *name,
                             const hass_tensor *T, int n, int32_t ftype, hass_err *err) {
    const hass_model_config *c = &m->cfg;
    /* the dtype holding most matrix elements names the file type */
    size_t by_type[HASS_DTYPE_COUNT] = {0};
    double params = 0;
    for (int i = 0; i < n; i++) {
        size_t numel = (size_t)T[i].shape[0] * (size_t)(T[i].ndim == 2 ? T[i].shape[1] : 1);
        params += (double)numel;
        if (T[i].ndim == 2)
            by_type[T[i].dtype] += numel;
    }
    hass_dtype ft = HASS_DTYPE_F32;
    for (int t = 0; t < HASS_DTYPE_COUNT; t++)
        if (by_type[t] > by_type[ft])
            ft = (hass_dtype)t;
    char label[32];
    size_label(label, sizeof label, params);
    hass_status st = HASS_OK;
#define U32(k, v) st = st ? st : hass_gguf_kvs_u32(l, k, (uint32_t)(v), err)
#define F32(k, v) st = st ? st : hass_gguf_kvs_f32(l, k, v, err)
#define STR(k, v) st = st ? st : hass_gguf_kvs_str(l, k, v, err)
    STR("general.architecture", "llama");
    STR("general.type", "model");
    STR("general.name", name);
    STR("general.size_label", label);
    U32("general.alignment", 32);
    U32("llama.block_count", c->n_layers);
    U32("llama.context_length", c->max_ctx);
    U32("llama.embedding_length", c->d);
    U32("llama.feed_forward_length", c->ffn);
    U32("llama.attention.head_count", c->H);
    U32("llama.attention.head_count_kv", c->Hkv);
    F32("llama.rope.freq_base", c->rope.theta);
    F32("llama.attention.layer_norm_rms_epsilon", c->eps);
    U32("general.file_type", ftype >= 0 ? (uint32_t)ftype : file_type(ft));
    U32("llama.vocab_size", c->V);
    U32("llama.rope.dimension_count", c->Dh);
    if (c->rope.linear > 0) { /* the converter's keys for linear scaling */
        STR("llama.rope.scaling.type", "linear");
        F32("llama.rope.scaling.factor", c->rope.linear);
    }
#undef U32
#undef F32
#undef STR
    return st;
}

hass_status hass_model_export_gguf(const hass_model *m, const char *path,
                                   const hass_gguf_export_opts *o, hass_err *err) {
    const hass_model_config *c = &m->cfg;
    hass_dtype dt = o->dtype;
    if (dt != HASS_DTYPE_F32 && dt != HASS_DTYPE_F16 && dt != HASS_DTYPE_BF16 &&
        dt != HASS_DTYPE_COUNT)
        return hass_err_set(err, HASS_STATUS_ARG, "export: dtype must be F32, F16 or BF16");
    int n_max = 4 + 9 * (int)c->n_layers;
    mtensor *e = calloc((size_t)n_max, sizeof *e);
    hass_tensor *T = calloc((size_t)n_max, sizeof *T);
    float *div = malloc((size_t)c->Dh / 2 * 3 * sizeof *div); /* divisors, 2 scratch rows */
    float *row = malloc((size_t)(c->d > c->ffn ? c->d : c->ffn) * sizeof *row);
    hass_gguf_kvs l = {0};
    hass_status st = HASS_OK;
    if (!e || !T || !div || !row) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    int n = 0;
    if (rope_divisors(c, div, div + c->Dh / 2, div + c->Dh)) /* first, as the converter does */
        e[n++] = (mtensor){"", "rope_freqs.weight", div, HASS_DTYPE_F32, c->Dh / 2, 1, 0};
    n += model_tensors(m, e + n);
    for (int i = 0; i < n; i++) {
        hass_dtype t = e[i].c == 1 ? HASS_DTYPE_F32 : dt == HASS_DTYPE_COUNT ? e[i].t : dt;
        if (o->pick && e[i].c != 1)
            t = o->pick(o->pick_user, e[i].gg, e[i].r, e[i].c, e[i].t);
        tensor_desc(&T[i], e[i].gg, &e[i], t);
    }
    st = gguf_meta(&l, m, o->name ? o->name : "model", T, n, o->pick ? o->file_type : -1, err);
    for (int64_t i = 0; o->extra && i < o->extra->n && !st; i++)
        st = hass_gguf_kvs_add(&l, &o->extra->kv[i], err);
    if (!st)
        st = hass_gguf_kvs_u32(&l, "general.quantization_version", 2, err);
    int perm = c->rope_style == HASS_ROPE_HALF ? PERM_TO_INTERLEAVED : PERM_NONE;
    gguf_fill f = {e, T, perm, c->Dh, row};
    if (!st)
        st = hass_gguf_write(path, l.kv, l.n, T, n, fill_tensor, &f, err);
done:
    hass_gguf_kvs_free(&l);
    free(e);
    free(T);
    free(div);
    free(row);
    return st;
}
