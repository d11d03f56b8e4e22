/*
 * cmd_quantize.c — `hass quantize -m MODEL -o OUT.gguf --type T`: any loadable model (Hugging
 * Face directory, GGUF, llama2.c checkpoint + tokenizer.bin) written as a quantized GGUF file,
 * with llama-quantize's tensor types and ggml's reference quantizers (model/quantize.c), the
 * tokenizer included, as `hass export --gguf` writes it. With --draft: a draft head directory
 * written as a quantized draft directory (draft/draft_quant.c).
 */
#include "cli/cli.h"
#include "draft/draft.h"
#include "model/model.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *usage =
    "usage: hass quantize -m MODEL -o OUT.gguf --type T [-z TOK.bin] [--pure]\n"
    "                     [--allow-requantize] [--name NAME]\n"
    "       hass quantize --draft -m DRAFT_DIR -o OUT_DIR --type T\n"
    "  -m PATH              source model (HF directory, .gguf, llama2.c .bin)\n"
    "  -o FILE              output GGUF file\n"
    "  --type T             q8_0, q4_0, q4_1, q5_0, q5_1, q6_k, q4_k_s, q4_k_m (q4_k),\n"
    "                       q5_k_s, q5_k_m (q5_k): llama-quantize's types and mixes\n"
    "  -z PATH              the tokenizer.bin of a llama2.c checkpoint\n"
    "  --pure               every matrix in the base type (no mix, no Q6_K output)\n"
    "  --allow-requantize   accept a source whose matrices are already quantized\n"
    "  --name NAME          GGUF general.name (the model's file or directory name)\n"
    "  --draft              quantize a draft head: its fc and layer matrices in the base\n"
    "                       type of T (or bf16, f16, f32), written to OUT_DIR/model.gguf\n";

/* "hass: wrote NAME (size): dtype xN ..." of the GGUF file at path */
static void report_written(const char *name, const char *path) {
    hass_err err = {0};
    hass_gguf g;
    if (hass_gguf_open(&g, path, &err) != HASS_OK)
        return;
    int64_t count[HASS_DTYPE_COUNT] = {0};
    for (int64_t i = 0; i < g.n_tensors; i++)
        count[g.tensors[i].dtype]++;
    fprintf(stderr, "hass: wrote %s (%.2f MiB):", name, (double)g.mf.size / (1 << 20));
    for (int t = 0; t < HASS_DTYPE_COUNT; t++)
        if (count[t])
            fprintf(stderr, " %s x%lld", hass_dtype_name((hass_dtype)t), (long long)count[t]);
    fprintf(stderr, "\n");
    hass_gguf_close(&g);
}

/* hass quantize --draft: T's base type (q4_k_m -> Q4_K) or f32/f16/bf16 */
static int quantize_draft(const char *src, const char *out, const char *type) {
    hass_err err = {0};
    hass_quant_plan plan;
    hass_dtype t = HASS_DTYPE_COUNT;
    const hass_dtype plain[] = {HASS_DTYPE_F32, HASS_DTYPE_F16, HASS_DTYPE_BF16};
    for (int i = 0; i < 3; i++)
        if (!strcasecmp(type, hass_dtype_name(plain[i])))
            t = plain[i];
    if (t == HASS_DTYPE_COUNT) {
        if (hass_quant_plan_init_shape(&plan, type, 1, 1, 0, &err) != HASS_OK)
            return cli_fail(2, "%s, bf16, f16, f32", err.msg);
        t = plan.base;
    }
    if (hass_draft_quantize(src, out, t, &err) != HASS_OK)
        return cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.gguf", out);
    report_written(out, path);
    return 0;
}

static int already_quantized(const hass_model *m, hass_dtype *t) {
    *t = hass_dtype_is_quant(m->embed_t) ? m->embed_t : m->lm_head_t;
    for (int64_t l = 0; l < m->cfg.n_layers && !hass_dtype_is_quant(*t); l++)
        *t = m->layers[l].tq;
    return hass_dtype_is_quant(*t);
}

int cmd_quantize(int argc, char **argv) {
    const char *src = NULL, *out = NULL, *type = NULL, *zbin = NULL, *name = NULL;
    int pure = 0, requant = 0, draft = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--pure")) {
            pure = 1;
            continue;
        }
        if (!strcmp(a, "--allow-requantize")) {
            requant = 1;
            continue;
        }
        if (!strcmp(a, "--draft")) {
            draft = 1;
            continue;
        }
        const char **dst = !strcmp(a, "-m")       ? &src
                           : !strcmp(a, "-o")     ? &out
                           : !strcmp(a, "--type") ? &type
                           : !strcmp(a, "-z")     ? &zbin
                           : !strcmp(a, "--name") ? &name
                                                  : NULL;
        if (!dst) {
            return cli_unknown_flag("quantize", a);
        }
        if (!(*dst = cli_need_value(argc, argv, &i)))
            return 2;
    }
    if (!src || !out || !type)
        return cli_fail(2, "quantize: -m MODEL, -o OUT.gguf and --type T are required");
    if (draft)
        return quantize_draft(src, out, type);
    hass_err err = {0};
    hass_tokenizer *tok = hass_tokenizer_open(src, zbin, &err);
    if (!tok)
        return cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "quantize: tokenizer: %s", err.msg);
    hass_model *m = hass_model_load(src, &err);
    if (!m) {
        hass_tokenizer_free(tok);
        return cli_fail(1, "%s", err.msg);
    }
    int rc = 0;
    hass_quant_plan plan;
    hass_dtype qt;
    hass_gguf_kvs kvs = {0};
    char dflt[256];
    cli_model_name(src, dflt, sizeof dflt);
    if (hass_quant_plan_init(&plan, type, pure, m, &err) != HASS_OK) {
        rc = cli_fail(2, "%s", err.msg);
    } else if (already_quantized(m, &qt) && !requant) {
        rc = cli_fail(1,
                      "quantize: %s is already quantized (%s); --allow-requantize quantizes "
                      "its dequantized weights again",
                      src, hass_dtype_name(qt));
    } else if (hass_tokenizer_gguf_kvs(tok, (int32_t)m->cfg.V, &kvs, &err) != HASS_OK ||
               hass_model_quantize(m, out, &plan, name ? name : dflt, &kvs, &err) != HASS_OK) {
        rc = cli_fail(1, "%s", err.msg);
    } else {
        report_written(out, out);
    }
    hass_gguf_kvs_free(&kvs);
    hass_model_free(m);
    hass_tokenizer_free(tok);
    return rc;
}
