/*
 * quantize.c — a model written as a quantized GGUF file the way llama.cpp's llama-quantize
 * (without an importance matrix) quantizes a LLaMA: the same type for every tensor
 * (llama_tensor_get_type: output.weight in Q6_K unless the type is Q8_0, the K-quant mixes'
 * choices for attn_v and ffn_down by layer, the fallbacks for rows that are not whole blocks),
 * the same blocks (ggml's reference quantizers, formats/ggml_quant.c) and general.file_type.
 * The file itself is hass_model_export_gguf's (names and metadata as llama.cpp's converter).
 */
#include "formats/formats.h"
#include "model/model.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    hass_dtype base;
    int32_t ftype; /* llama.cpp's LLAMA_FTYPE_MOSTLY_* */
} quant_types[] = {
    {"q4_0", HASS_DTYPE_Q4_0, 2},    {"q4_1", HASS_DTYPE_Q4_1, 3},  {"q8_0", HASS_DTYPE_Q8_0, 7},
    {"q5_0", HASS_DTYPE_Q5_0, 8},    {"q5_1", HASS_DTYPE_Q5_1, 9},  {"q4_k_s", HASS_DTYPE_Q4_K, 14},
    {"q4_k_m", HASS_DTYPE_Q4_K, 15}, {"q4_k", HASS_DTYPE_Q4_K, 15}, {"q5_k_s", HASS_DTYPE_Q5_K, 16},
    {"q5_k_m", HASS_DTYPE_Q5_K, 17}, {"q5_k", HASS_DTYPE_Q5_K, 17}, {"q6_k", HASS_DTYPE_Q6_K, 18},
};
enum { FT_Q8_0 = 7, FT_Q4_K_S = 14, FT_Q4_K_M = 15, FT_Q5_K_M = 17 };

const char *hass_quant_type_names(void) {
    return "q8_0, q4_0, q4_1, q5_0, q5_1, q4_k_s, q4_k_m (q4_k), q5_k_s, q5_k_m (q5_k), q6_k";
}

hass_status hass_quant_plan_init(hass_quant_plan *p, const char *type, int pure,
                                 const hass_model *m, hass_err *err) {
    return hass_quant_plan_init_shape(p, type, pure, m->cfg.n_layers, m->lm_head == m->embed, err);
}

hass_status hass_quant_plan_init_shape(hass_quant_plan *p, const char *type, int pure,
                                       int64_t n_layers, int tied, hass_err *err) {
    memset(p, 0, sizeof *p);
    char low[16];
    size_t n = strlen(type);
    for (size_t i = 0; i < n && i < sizeof low - 1; i++)
        low[i] = (char)(type[i] >= 'A' && type[i] <= 'Z' ? type[i] + 32 : type[i]);
    low[n < sizeof low - 1 ? n : sizeof low - 1] = 0;
    for (size_t i = 0; i < sizeof quant_types / sizeof quant_types[0]; i++)
        if (n < sizeof low && !strcmp(low, quant_types[i].name)) {
            p->base = quant_types[i].base;
            p->ftype = quant_types[i].ftype;
            p->pure = pure;
            p->n_layers = n_layers;
            p->tied = tied;
            return HASS_OK;
        }
    return hass_err_set(err, HASS_STATUS_ARG, "quantize: unknown type '%s' (%s)", type,
                        hass_quant_type_names());
}

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third between */
static int more_bits(int64_t i, int64_t n) {
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

hass_dtype hass_quant_pick(void *plan, const char *name, int64_t rows, int64_t cols,
                           hass_dtype stored) {
    (void)rows, (void)stored;
    const hass_quant_plan *p = plan;
    hass_dtype t = p->base;
    long layer = -1;
    sscanf(name, "blk.%ld.", &layer);
    int output = !strcmp(name, "output.weight") || (p->tied && !strcmp(name, "token_embd.weight"));
    if (!p->pure) {
        if (output) {
            if (cols % hass_dtype_block(t))
                t = HASS_DTYPE_Q8_0;
            else if (t != HASS_DTYPE_Q8_0)
                t = HASS_DTYPE_Q6_K;
        } else if (ends_with(name, "attn_v.weight")) {
            if ((p->ftype == FT_Q4_K_M || p->ftype == FT_Q5_K_M) && more_bits(layer, p->n_layers))
                t = HASS_DTYPE_Q6_K;
            else if (p->ftype == FT_Q4_K_S && layer < 4)
                t = HASS_DTYPE_Q5_K;
            if (p->n_layers == 80 && t == HASS_DTYPE_Q4_K) /* llama.cpp's 70B rule */
                t = HASS_DTYPE_Q5_K;
        } else if (ends_with(name, "ffn_down.weight")) {
            if ((p->ftype == FT_Q4_K_M || p->ftype == FT_Q5_K_M) && more_bits(layer, p->n_layers))
                t = HASS_DTYPE_Q6_K;
            else if (p->ftype == FT_Q4_K_S && layer < p->n_layers / 8)
                t = HASS_DTYPE_Q5_K;
        }
    }
    return hass_quant_fallback(t, cols);
}

hass_dtype hass_quant_fallback(hass_dtype t, int64_t cols) {
    if (cols % hass_dtype_block(t)) {
        t = t == HASS_DTYPE_Q4_K   ? HASS_DTYPE_Q5_0
            : t == HASS_DTYPE_Q5_K ? HASS_DTYPE_Q5_1
            : t == HASS_DTYPE_Q6_K ? HASS_DTYPE_Q8_0
                                   : t;
        if (cols % hass_dtype_block(t))
            t = HASS_DTYPE_F16;
    }
    return t;
}

hass_status hass_model_quantize(const hass_model *m, const char *path, const hass_quant_plan *p,
                                const char *name, const hass_gguf_kvs *extra, hass_err *err) {
    hass_gguf_export_opts o = {.dtype = HASS_DTYPE_COUNT,
                               .name = name,
                               .extra = extra,
                               .pick = hass_quant_pick,
                               .pick_user = (void *)p,
                               .file_type = p->ftype};
    return hass_model_export_gguf(m, path, &o, err);
}
