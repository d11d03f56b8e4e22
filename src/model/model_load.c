/*
 * model_load.c — opens a model from disk: a Hugging Face directory (config.json +
 * model.safetensors or a sharded index), a GGUF v3 file (llama architecture) or a llama2.c
 * checkpoint, and hands its tensors (renamed to the Hugging Face names) to
 * hass_model_from_tensors. Weights stay in the read-only mappings.
 */
#include "model/model.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    hass_st_set st;
    hass_gguf gguf;
    hass_llama2c l2c;
    hass_tensor *renamed; /* GGUF tensors under HF names (owned) */
} model_src;

/* ---- config.json ---- */
/* the integers of config.json: counts, sizes, token ids */
static int json_int(const cJSON *o, const char *k, int64_t *out) {
    return hass_json_int(o, k, -2147483648LL, 1000000000000LL, out);
}
static int is_id(const cJSON *v, int64_t V) {
    return cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < (double)V &&
           v->valuedouble == (double)(int64_t)v->valuedouble;
}
/* bos/eos: absent, null, a token id or a list of them (every one in [0, V)); 0 if anything
 * else, or more than cap ids */
static int json_ids(const cJSON *o, const char *k, int64_t V, int32_t *ids, int *n, int cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v))
        return 1;
    if (is_id(v, V) && *n < cap) {
        ids[(*n)++] = (int32_t)v->valuedouble;
        return 1;
    }
    if (!cJSON_IsArray(v))
        return 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!is_id(e, V) || *n >= cap)
            return 0;
        ids[(*n)++] = (int32_t)e->valuedouble;
    }
    return 1;
}

/* The members hass reads from config.json, with the JSON type each must have when present
 * (null counts as absent): 'i' an integer, 'n' a number, 'b' a boolean, 's' a string, 'o' an
 * object, 'a' an array. A member of another type is an error, never a default. */
static const struct {
    const char *key;
    char kind;
} config_keys[] = {
    {"hidden_size", 'i'},
    {"intermediate_size", 'i'},
    {"num_hidden_layers", 'i'},
    {"num_attention_heads", 'i'},
    {"num_key_value_heads", 'i'},
    {"vocab_size", 'i'},
    {"head_dim", 'i'},
    {"max_position_embeddings", 'i'},
    {"rms_norm_eps", 'n'},
    {"rope_theta", 'n'},
    {"tie_word_embeddings", 'b'},
    {"model_type", 's'},
    {"architectures", 'a'},
    {"rope_scaling", 'o'},
    {"rope_freqs", 'a'},
};

static hass_status check_types(const cJSON *o, hass_err *err) {
    for (size_t i = 0; i < sizeof config_keys / sizeof config_keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, config_keys[i].key);
        if (!v || cJSON_IsNull(v))
            continue;
        int64_t x;
        int ok = 0;
        switch (config_keys[i].kind) {
        case 'i':
            ok = json_int(o, config_keys[i].key, &x);
            break;
        case 'n':
            ok = cJSON_IsNumber(v) && isfinite(v->valuedouble);
            break;
        case 'b':
            ok = cJSON_IsBool(v);
            break;
        case 's':
            ok = cJSON_IsString(v);
            break;
        case 'o':
            ok = cJSON_IsObject(v);
            break;
        default:
            ok = cJSON_IsArray(v);
        }
        if (!ok)
            return hass_err_set(err, HASS_STATUS_FORMAT, "config.json: %s is not %s",
                                config_keys[i].key,
                                config_keys[i].kind == 'i'   ? "an integer in range"
                                : config_keys[i].kind == 'n' ? "a finite number"
                                : config_keys[i].kind == 'b' ? "true or false"
                                : config_keys[i].kind == 's' ? "a string"
                                : config_keys[i].kind == 'o' ? "an object"
                                                             : "a list");
    }
    return HASS_OK;
}

/* rope_theta, rope_scaling and rope_freqs (see model.h); checked by the config check. */
static hass_status rope_from_json(const cJSON *o, hass_rope_params *r, hass_err *err) {
    double v;
    *r = hass_rope_plain(hass_json_num(o, "rope_theta", &v) ? (float)v : 10000.0f);
    const cJSON *rs = hass_json_get(o, "rope_scaling");
    if (cJSON_IsObject(rs)) {
        const char *type = hass_json_str(rs, "rope_type");
        if (!type)
            type = hass_json_str(rs, "type");
        if (!type)
            type = "?";
        double f = 0, lo, hi;
        int64_t oc;
        if (!strcmp(type, "llama3")) {
            if (!hass_json_num(rs, "factor", &f) || !hass_json_num(rs, "low_freq_factor", &lo) ||
                !hass_json_num(rs, "high_freq_factor", &hi) ||
                !json_int(rs, "original_max_position_embeddings", &oc) || f <= 0 || lo <= 0 ||
                hi <= lo || oc <= 0)
                return hass_err_set(err, HASS_STATUS_FORMAT,
                                    "config.json: bad llama3 rope_scaling");
            r->factor = (float)f;
            r->low_freq_factor = (float)lo;
            r->high_freq_factor = (float)hi;
            r->orig_ctx = oc;
        } else if (!strcmp(type, "linear")) {
            if (!hass_json_num(rs, "factor", &f) || !(f > 0))
                return hass_err_set(err, HASS_STATUS_FORMAT,
                                    "config.json: bad linear rope_scaling");
            r->linear = (float)f;
        } else if (strcmp(type, "default") != 0) {
            return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                                "config.json: rope_scaling type '%s' not supported (llama3 and "
                                "linear are)",
                                type);
        }
    }
    const cJSON *fr = cJSON_GetObjectItemCaseSensitive(o, "rope_freqs");
    if (fr) {
        int n = cJSON_IsArray(fr) ? cJSON_GetArraySize(fr) : -1;
        if (n < 1 || n > HASS_ROPE_MAX_HALF)
            return hass_err_set(err, HASS_STATUS_FORMAT,
                                "config.json: rope_freqs must be a list of 1..%d numbers",
                                HASS_ROPE_MAX_HALF);
        const cJSON *e;
        cJSON_ArrayForEach(e, fr) {
            if (!cJSON_IsNumber(e))
                return hass_err_set(err, HASS_STATUS_FORMAT,
                                    "config.json: rope_freqs: not a number");
            r->div[r->n_div++] = (float)e->valuedouble;
        }
    }
    return HASS_OK;
}

cJSON *hass_model_config_to_json(const hass_model_config *c) {
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
    return o;
}

void hass_model_rope_to_json(cJSON *o, const hass_rope_params *r) {
    cJSON_AddNumberToObject(o, "rope_theta", r->theta);
    if (r->factor > 0) {
        cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddStringToObject(rs, "rope_type", "llama3");
        cJSON_AddNumberToObject(rs, "factor", r->factor);
        cJSON_AddNumberToObject(rs, "low_freq_factor", r->low_freq_factor);
        cJSON_AddNumberToObject(rs, "high_freq_factor", r->high_freq_factor);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", (double)r->orig_ctx);
    } else if (r->linear > 0) {
        cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddStringToObject(rs, "type", "linear");
        cJSON_AddNumberToObject(rs, "factor", r->linear);
    }
    if (r->n_div > 0)
        cJSON_AddItemToObject(o, "rope_freqs", cJSON_CreateFloatArray(r->div, r->n_div));
}

hass_status hass_model_config_from_json(hass_model_config *c, const char *json, hass_err *err) {
    memset(c, 0, sizeof *c);
    cJSON *o = hass_json_parse_strict(json, strlen(json), "config.json", err);
    if (!o)
        return err->code;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return hass_err_set(err, HASS_STATUS_FORMAT, "config.json: not a JSON object");
    }
    hass_status st = check_types(o, err);
    if (st)
        goto done;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(o, "model_type");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(o, "architectures");
    const char *arch = NULL;
    if (cJSON_IsArray(archs) && cJSON_GetArraySize(archs) > 0 &&
        cJSON_IsString(cJSON_GetArrayItem(archs, 0)))
        arch = cJSON_GetArrayItem(archs, 0)->valuestring;
    int is_llama = (arch && !strcmp(arch, "LlamaForCausalLM")) ||
                   (!arch && cJSON_IsString(mt) && !strcmp(mt->valuestring, "llama"));
    if (!is_llama) {
        st = hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                          "config.json: unsupported architecture '%s' (need LlamaForCausalLM)",
                          arch ? arch : (cJSON_IsString(mt) ? mt->valuestring : "?"));
        goto done;
    }
    int64_t hk = 0;
    if (!json_int(o, "hidden_size", &c->d) || !json_int(o, "intermediate_size", &c->ffn) ||
        !json_int(o, "num_hidden_layers", &c->n_layers) ||
        !json_int(o, "num_attention_heads", &c->H) || !json_int(o, "vocab_size", &c->V)) {
        st = hass_err_set(err, HASS_STATUS_FORMAT,
                          "config.json: missing hidden_size, intermediate_size, "
                          "num_hidden_layers, num_attention_heads or vocab_size");
        goto done;
    }
    c->Hkv = json_int(o, "num_key_value_heads", &hk) ? hk : c->H;
    c->Dh = c->H > 0 ? c->d / c->H : 0;
    int64_t hd = 0;
    if (json_int(o, "head_dim", &hd) && hd != c->Dh) {
        st = hass_err_set(err, HASS_STATUS_UNSUPPORTED, "config.json: head_dim != hidden/heads");
        goto done;
    }
    double v;
    c->eps = hass_json_num(o, "rms_norm_eps", &v) ? (float)v : 1e-6f;
    if (!(c->eps > 0 && c->eps < 1)) {
        st = hass_err_set(err, HASS_STATUS_FORMAT, "config.json: rms_norm_eps %g not in (0, 1)",
                          (double)c->eps);
        goto done;
    }
    c->max_ctx = json_int(o, "max_position_embeddings", &hd) ? hd : 2048;
    c->tie_embeddings = hass_json_bool(o, "tie_word_embeddings", 0);
    c->rope_style = HASS_ROPE_HALF;
    if ((st = rope_from_json(o, &c->rope, err)) != HASS_OK)
        goto done;
    int32_t ids[HASS_MAX_STOP];
    int n = 0;
    if (!json_ids(o, "bos_token_id", c->V, ids, &n, 1) ||
        !json_ids(o, "eos_token_id", c->V, c->stop_ids, &c->n_stop, HASS_MAX_STOP)) {
        st = hass_err_set(err, HASS_STATUS_FORMAT,
                          "config.json: bos_token_id or eos_token_id is not a token id in [0, "
                          "%lld) (or a list of at most %d of them)",
                          (long long)c->V, HASS_MAX_STOP);
        goto done;
    }
    c->bos = n ? ids[0] : -1;
    c->source = HASS_SRC_HF;
    st = hass_model_config_check(c, err);
done:
    cJSON_Delete(o);
    return st;
}

/* ---- GGUF: llama metadata and tensor names ---- */
static hass_status gguf_config(const hass_gguf *g, hass_model_config *c, hass_err *err) {
    memset(c, 0, sizeof *c);
    const char *arch = hass_gguf_get_str(g, "general.architecture");
    if (!arch || strcmp(arch, "llama") != 0)
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED,
                            "gguf: unsupported architecture '%s' (need llama)", arch ? arch : "?");
    uint64_t u;
    double f;
#define GU(key, field)                                                                             \
    do {                                                                                           \
        if (!hass_gguf_get_u64(g, key, &u) || u > (1ull << 30))                                    \
            return hass_err_set(err, HASS_STATUS_FORMAT, "gguf: missing or bad %s", key);          \
        c->field = (int64_t)u;                                                                     \
    } while (0)
    GU("llama.embedding_length", d);
    GU("llama.feed_forward_length", ffn);
    GU("llama.block_count", n_layers);
    GU("llama.attention.head_count", H);
    GU("llama.context_length", max_ctx);
#undef GU
    c->Hkv = hass_gguf_get_u64(g, "llama.attention.head_count_kv", &u) ? (int64_t)u : c->H;
    c->Dh = c->H > 0 ? c->d / c->H : 0;
    c->eps = hass_gguf_get_f64(g, "llama.attention.layer_norm_rms_epsilon", &f) ? (float)f : 1e-5f;
    c->rope =
        hass_rope_plain(hass_gguf_get_f64(g, "llama.rope.freq_base", &f) ? (float)f : 10000.0f);
    /* llama.cpp's llama converters permute q/k so that ggml's adjacent-pair rotation applies */
    c->rope_style = HASS_ROPE_INTERLEAVED;
    /* checked against the vocabulary by hass_model_config_check */
    c->bos = hass_gguf_get_u64(g, "tokenizer.ggml.bos_token_id", &u)
                 ? (int32_t)(u > INT32_MAX ? INT32_MAX : u)
                 : -1;
    if (hass_gguf_get_u64(g, "tokenizer.ggml.eos_token_id", &u))
        c->stop_ids[c->n_stop++] = (int32_t)(u > INT32_MAX ? INT32_MAX : u);
    c->source = HASS_SRC_GGUF;
    const hass_tensor *emb = hass_gguf_find_tensor(g, "token_embd.weight");
    if (!emb || emb->ndim != 2)
        return hass_err_set(err, HASS_STATUS_NOTFOUND, "gguf: missing tensor token_embd.weight");
    c->V = emb->shape[0];
    if (hass_gguf_get_u64(g, "llama.vocab_size", &u) && (int64_t)u != c->V)
        return hass_err_set(err, HASS_STATUS_SHAPE, "gguf: llama.vocab_size != token_embd rows");
    c->tie_embeddings = hass_gguf_find_tensor(g, "output.weight") == NULL;
    return hass_model_config_check(c, err);
}

static const struct {
    const char *gguf, *hf;
} gguf_names[] = {
    {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},
    {"attn_k", "self_attn.k_proj"},      {"attn_v", "self_attn.v_proj"},
    {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
    {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
    {"ffn_down", "mlp.down_proj"},
};

/* RoPE frequency adjustments llama.cpp keeps out of the base config: a "rope_freqs.weight"
 * tensor (Dh/2 divisors, how llama.cpp stores LLaMA-3.1 scaling) and linear scaling
 * (positions divided by a factor, i.e. every frequency divided by it). */
hass_status hass_model_gguf_rope(const hass_gguf *g, hass_model_config *c, hass_err *err) {
    int64_t half = c->Dh / 2;
    const hass_tensor *f = hass_gguf_find_tensor(g, "rope_freqs.weight");
    if (f) {
        if (hass_tensor_numel(f) != half || f->dtype != HASS_DTYPE_F32 || half > HASS_ROPE_MAX_HALF)
            return hass_err_set(err, HASS_STATUS_SHAPE, "gguf: rope_freqs.weight must be %lld F32",
                                (long long)half);
        const float *div = f->data;
        for (int64_t i = 0; i < half; i++) {
            if (!(div[i] > 0))
                return hass_err_set(err, HASS_STATUS_FORMAT, "gguf: rope_freqs.weight <= 0");
            c->rope.div[i] = div[i];
        }
        c->rope.n_div = (int32_t)half;
    }
    double lin = 0;
    const char *type = hass_gguf_get_str(g, "llama.rope.scaling.type");
    if (!hass_gguf_get_f64(g, "llama.rope.scale_linear", &lin) && type && !strcmp(type, "linear"))
        hass_gguf_get_f64(g, "llama.rope.scaling.factor", &lin);
    if (type && strcmp(type, "linear") && strcmp(type, "none"))
        return hass_err_set(err, HASS_STATUS_UNSUPPORTED, "gguf: rope scaling '%s' not supported",
                            type);
    if (lin > 0 && lin != 1)
        c->rope.linear = (float)lin;
    return HASS_OK;
}

static hass_status gguf_rename(const hass_gguf *g, hass_tensor **out, hass_err *err) {
    hass_tensor *t = calloc((size_t)g->n_tensors + 1, sizeof *t);
    if (!t)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    for (int64_t i = 0; i < g->n_tensors; i++) {
        t[i] = g->tensors[i];
        const char *n = g->tensors[i].name;
        long layer;
        char part[96];
        if (!strcmp(n, "token_embd.weight"))
            snprintf(t[i].name, sizeof t[i].name, "model.embed_tokens.weight");
        else if (!strcmp(n, "output_norm.weight"))
            snprintf(t[i].name, sizeof t[i].name, "model.norm.weight");
        else if (!strcmp(n, "output.weight"))
            snprintf(t[i].name, sizeof t[i].name, "lm_head.weight");
        else if (sscanf(n, "blk.%ld.%95[^.].weight", &layer, part) == 2) {
            for (size_t k = 0; k < sizeof gguf_names / sizeof gguf_names[0]; k++)
                if (!strcmp(part, gguf_names[k].gguf))
                    snprintf(t[i].name, sizeof t[i].name, "model.layers.%ld.%s.weight", layer,
                             gguf_names[k].hf);
        }
    }
    *out = t;
    return HASS_OK;
}

static void src_free(void *p) {
    model_src *src = p;
    if (!src)
        return;
    hass_st_set_close(&src->st);
    hass_gguf_close(&src->gguf);
    hass_llama2c_close(&src->l2c);
    free(src->renamed);
    free(src);
}

static hass_model *load_hf(const char *dir, model_src *src, hass_err *err) {
    char path[1024], *json = NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (hass_read_text(path, HASS_READ_MAX, &json, NULL, err) != HASS_OK)
        return NULL;
    hass_model_config cfg;
    hass_status st = hass_model_config_from_json(&cfg, json, err);
    free(json);
    if (st != HASS_OK)
        return NULL;
    if (hass_safetensors_open_dir(&src->st, dir, err) != HASS_OK)
        return NULL;
    src->renamed = calloc((size_t)src->st.n_tensors + 1, sizeof(hass_tensor));
    if (!src->renamed) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    for (int i = 0; i < src->st.n_tensors; i++)
        src->renamed[i] = *src->st.by_name[i];
    return hass_model_from_tensors(&cfg, src->renamed, src->st.n_tensors, err);
}

hass_model *hass_model_load(const char *path, hass_err *err) {
    model_src *src = calloc(1, sizeof *src);
    if (!src) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    hass_model *m = NULL;
    hass_file_kind kind = hass_file_kind_of(path);
    if (kind == HASS_FILE_DIR) {
        m = load_hf(path, src, err);
    } else if (kind == HASS_FILE_MISSING) {
        hass_err_set(err, HASS_STATUS_IO, "%s: no such file or directory", path);
        free(src);
        return NULL;
    } else if (kind == HASS_FILE_GGUF) {
        hass_model_config cfg;
        if (hass_gguf_open(&src->gguf, path, err) == HASS_OK &&
            gguf_config(&src->gguf, &cfg, err) == HASS_OK &&
            hass_model_gguf_rope(&src->gguf, &cfg, err) == HASS_OK &&
            gguf_rename(&src->gguf, &src->renamed, err) == HASS_OK)
            m = hass_model_from_tensors(&cfg, src->renamed, (int)src->gguf.n_tensors, err);
    } else { /* anything else is tried as a llama2.c checkpoint (its header is checked) */
        if (hass_llama2c_open(&src->l2c, path, err) == HASS_OK) {
            const hass_llama2c_config *h = &src->l2c.cfg;
            hass_model_config cfg =
                hass_model_config_make(h->dim, h->hidden_dim, h->n_layers, h->n_heads,
                                       h->n_kv_heads, h->vocab_size, h->seq_len);
            cfg.rope_style = HASS_ROPE_INTERLEAVED;
            cfg.tie_embeddings = h->shared_classifier;
            cfg.bos = 1;
            cfg.stop_ids[0] = 2; /* EOS, and BOS as llama2.c's run.c stops on it */
            cfg.stop_ids[1] = 1;
            cfg.n_stop = 2;
            cfg.source = HASS_SRC_LLAMA2C;
            m = hass_model_from_tensors(&cfg, src->l2c.tensors, src->l2c.n_tensors, err);
        }
    }
    if (!m) {
        src_free(src);
        return NULL;
    }
    m->src = src;
    m->src_free = src_free;
    return m;
}
