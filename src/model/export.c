/*
 * export.c — writes any loaded model as a Hugging Face directory (config.json +
 * model.safetensors, or shards + model.safetensors.index.json). Checkpoints whose q/k rows are
 * laid out for interleaved RoPE (llama2.c, GGUF) are permuted to Hugging Face's rotate-half
 * layout, so the written model computes the same function.
 */
#include "model/model.h"

#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    hass_tensor *t;
    int n, cap;
    void **bufs;
} tlist;

/* Adds a tensor converted to dtype `out` (F32 or BF16; norms stay F32). perm_heads > 0:
 * permute rows from interleaved to half RoPE layout in heads of Dh rows. */
static hass_status add(tlist *L, const char *name, const void *src, hass_dtype st, int64_t r,
                       int64_t c, hass_dtype out, int64_t perm_heads, int64_t Dh, hass_err *err) {
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        L->t = realloc(L->t, (size_t)L->cap * sizeof *L->t);
        L->bufs = realloc(L->bufs, (size_t)L->cap * sizeof *L->bufs);
        if (!L->t || !L->bufs)
            return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    size_t es = out == HASS_DTYPE_BF16 ? 2 : 4;
    uint8_t *buf = malloc((size_t)(r * c) * es);
    float *row = malloc((size_t)c * sizeof(float));
    if (!buf || !row) {
        free(buf);
        free(row);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    }
    size_t rb = hass_dtype_bytes(st, (size_t)c);
    for (int64_t i = 0; i < r; i++) {
        int64_t from = i;
        if (perm_heads > 0) { /* half row j of a head <- interleaved row 2j or 2(j-Dh/2)+1 */
            int64_t h = i / Dh, j = i % Dh, half = Dh / 2;
            from = h * Dh + (j < half ? 2 * j : 2 * (j - half) + 1);
        }
        hass_to_f32(row, (const uint8_t *)src + (size_t)from * rb, st, c);
        for (int64_t k = 0; k < c; k++) {
            if (out == HASS_DTYPE_BF16)
                ((uint16_t *)buf)[i * c + k] = hass_f32_to_bf16(row[k]);
            else
                ((float *)buf)[i * c + k] = row[k];
        }
    }
    free(row);
    hass_tensor *t = &L->t[L->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = out;
    t->ndim = c == 1 ? 1 : 2;
    t->shape[0] = r;
    t->shape[1] = c == 1 ? 0 : c;
    t->data = buf;
    t->nbytes = (size_t)(r * c) * es;
    L->bufs[L->n++] = buf;
    return HASS_OK;
}

static hass_status write_config(const hass_model *m, const char *dir, hass_dtype dt,
                                hass_err *err) {
    const hass_model_config *c = &m->cfg;
    cJSON *o = cJSON_CreateObject();
    cJSON *a = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(a, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", "llama");
    cJSON_AddNumberToObject(o, "hidden_size", (double)c->d);
    cJSON_AddNumberToObject(o, "intermediate_size", (double)c->ffn);
    cJSON_AddNumberToObject(o, "num_hidden_layers", (double)c->n_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", (double)c->H);
    cJSON_AddNumberToObject(o, "num_key_value_heads", (double)c->Hkv);
    cJSON_AddNumberToObject(o, "vocab_size", (double)c->V);
    cJSON_AddNumberToObject(o, "max_position_embeddings", (double)c->max_ctx);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->eps);
    hass_model_rope_to_json(o, &c->rope);
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
    char *txt = cJSON_Print(o);
    cJSON_Delete(o);
    if (!txt)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    hass_status st = hass_write_file_atomic(path, txt, strlen(txt), err);
    free(txt);
    return st;
}

hass_status hass_model_export_hf(const hass_model *m, const char *dir, hass_dtype dt,
                                 size_t shard_bytes, hass_err *err) {
    const hass_model_config *c = &m->cfg;
    if (dt != HASS_DTYPE_F32 && dt != HASS_DTYPE_BF16)
        return hass_err_set(err, HASS_STATUS_ARG, "export: dtype must be F32 or BF16");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return hass_err_set(err, HASS_STATUS_IO, "%s: %s", dir, strerror(errno));
    int64_t d = c->d, qd = c->H * c->Dh, kvd = c->Hkv * c->Dh, ph = 0;
    int perm = c->rope_style == HASS_ROPE_INTERLEAVED;
    tlist L = {0};
    hass_status st = HASS_OK;
    char name[160];
    st = add(&L, "model.embed_tokens.weight", m->embed, m->embed_t, c->V, d, dt, 0, 0, err);
    if (!st && m->lm_head != m->embed)
        st = add(&L, "lm_head.weight", m->lm_head, m->lm_head_t, c->V, d, dt, 0, 0, err);
    if (!st)
        st = add(&L, "model.norm.weight", m->final_norm, HASS_DTYPE_F32, d, 1, HASS_DTYPE_F32, 0, 0,
                 err);
    for (int64_t l = 0; l < c->n_layers && !st; l++) {
        const hass_layer *y = &m->layers[l];
        struct {
            const char *sfx;
            const void *w;
            hass_dtype t;
            int64_t r, cc, heads;
        } mats[] = {
            {"self_attn.q_proj.weight", y->wq, y->tq, qd, d, perm ? c->H : 0},
            {"self_attn.k_proj.weight", y->wk, y->tk, kvd, d, perm ? c->Hkv : 0},
            {"self_attn.v_proj.weight", y->wv, y->tv, kvd, d, 0},
            {"self_attn.o_proj.weight", y->wo, y->to, d, qd, 0},
            {"mlp.gate_proj.weight", y->wg, y->tg, c->ffn, d, 0},
            {"mlp.up_proj.weight", y->wu, y->tu, c->ffn, d, 0},
            {"mlp.down_proj.weight", y->wd, y->td, d, c->ffn, 0},
            {"input_layernorm.weight", y->attn_norm, HASS_DTYPE_F32, d, 1, 0},
            {"post_attention_layernorm.weight", y->ffn_norm, HASS_DTYPE_F32, d, 1, 0},
        };
        for (size_t k = 0; k < sizeof mats / sizeof mats[0] && !st; k++) {
            snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, mats[k].sfx);
            st = add(&L, name, mats[k].w, mats[k].t, mats[k].r, mats[k].cc,
                     mats[k].cc == 1 ? HASS_DTYPE_F32 : dt, mats[k].heads, c->Dh, err);
        }
    }
    (void)ph;
    if (!st)
        st = write_config(m, dir, dt, err);
    char path[1024];
    size_t total = 0;
    for (int i = 0; i < L.n; i++)
        total += L.t[i].nbytes;
    if (!st && (shard_bytes == 0 || total <= shard_bytes)) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        st = hass_safetensors_write(path, L.t, L.n, "{\"format\":\"pt\"}", err);
    } else if (!st) {
        /* shards of at most shard_bytes (at least one tensor each) + the index */
        cJSON *idx = cJSON_CreateObject(), *meta = cJSON_AddObjectToObject(idx, "metadata");
        cJSON_AddNumberToObject(meta, "total_size", (double)total);
        cJSON *wm = cJSON_AddObjectToObject(idx, "weight_map");
        int n_sh = 0, first = 0;
        while (first < L.n && !st) {
            int last = first;
            size_t sz = L.t[first].nbytes;
            while (last + 1 < L.n && sz + L.t[last + 1].nbytes <= shard_bytes)
                sz += L.t[++last].nbytes;
            n_sh++;
            first = last + 1;
        }
        first = 0;
        for (int s = 1; s <= n_sh && !st; s++) {
            int last = first;
            size_t sz = L.t[first].nbytes;
            while (last + 1 < L.n && sz + L.t[last + 1].nbytes <= shard_bytes)
                sz += L.t[++last].nbytes;
            char fname[128];
            snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s, n_sh);
            snprintf(path, sizeof path, "%s/%s", dir, fname);
            st = hass_safetensors_write(path, L.t + first, last - first + 1, "{\"format\":\"pt\"}",
                                        err);
            for (int i = first; i <= last; i++)
                cJSON_AddStringToObject(wm, L.t[i].name, fname);
            first = last + 1;
        }
        char *txt = cJSON_Print(idx);
        cJSON_Delete(idx);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
        if (!st)
            st = txt ? hass_write_file_atomic(path, txt, strlen(txt), err)
                     : hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        free(txt);
    }
    for (int i = 0; i < L.n; i++)
        free(L.bufs[i]);
    free(L.bufs);
    free(L.t);
    return st;
}
