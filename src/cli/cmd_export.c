/*
 * cmd_export.c — `hass export -m SRC --gguf OUT.gguf | --hf DIR` and `hass convert -m SRC -o
 * DIR`: any loadable model (llama2.c checkpoint + tokenizer.bin, GGUF, Hugging Face directory)
 * written as a GGUF v3 file that llama.cpp runs (the tokenizer included), or as a Hugging Face
 * directory (convert is export --hf).
 */
#include "cli/cli.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage_export =
    "usage: hass export -m MODEL [-z TOK.bin] (--gguf OUT.gguf | --hf DIR) [--dtype T]\n"
    "                   [--name NAME] [--shard-mb N]\n"
    "  -m PATH        source model (HF directory, .gguf, llama2.c .bin)\n"
    "  -z PATH        the tokenizer.bin of a llama2.c checkpoint\n"
    "  --gguf FILE    write a GGUF v3 file as llama.cpp's converter does, tokenizer included\n"
    "  --hf DIR       write a Hugging Face directory (config.json + safetensors), like convert\n"
    "  --dtype T      matrices as f32, f16 or bf16 (GGUF: as stored; HF: bf16, f32|bf16 only)\n"
    "  --name NAME    GGUF general.name (the model's file or directory name)\n"
    "  --shard-mb N   HF: shards of at most N MiB with an index (0 = one file)\n"
    "  --force        overwrite an existing output\n";

static const char *usage_convert =
    "usage: hass convert -m MODEL -o DIR [--dtype f32|bf16] [--shard-mb N]\n"
    "  -m PATH        source model (HF directory, .gguf, llama2.c .bin)\n"
    "  -o DIR         output Hugging Face directory (config.json + safetensors)\n"
    "  --dtype T      f32 or bf16 matrices (bf16)\n"
    "  --shard-mb N   split into shards of at most N MiB with an index (0 = one file)\n"
    "  --force        overwrite a model already in DIR\n"
    "The tokenizer is not converted: copy tokenizer.json beside the output yourself.\n"
    "(`hass export --gguf` writes a GGUF file.)\n";

typedef struct {
    const char *src, *zbin, *gguf, *hf, *dtype, *name;
    long long shard;
    int force;
} export_opts;

/* Returns 0, or the exit code after a usage message. */
static int parse(int argc, char **argv, int convert, export_opts *o) {
    const char *usage = convert ? usage_convert : usage_export;
    static const char *const flags[] = {"-m", "-z",      "--gguf", "--hf",
                                        "-o", "--dtype", "--name", "--shard-mb"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return -1;
        }
        if (!strcmp(a, "--force")) {
            o->force = 1;
            continue;
        }
        size_t k = 0;
        while (k < sizeof flags / sizeof flags[0] && strcmp(a, flags[k]))
            k++;
        /* convert takes -m -o --dtype --shard-mb; export everything but -o */
        int known = k < sizeof flags / sizeof flags[0] &&
                    (convert ? (k == 0 || k == 4 || k == 5 || k == 7) : k != 4);
        if (!known) {
            return cli_unknown_flag(argv[0], a);
        }
        if (!(v = cli_need_value(argc, argv, &i)))
            return 2;
        const char **dst[] = {&o->src, &o->zbin, &o->gguf, &o->hf, &o->hf, &o->dtype, &o->name};
        if (k < sizeof dst / sizeof dst[0])
            *dst[k] = v;
        else if (cli_parse_int(a, v, 0, 1 << 20, &o->shard))
            return 2;
    }
    if (convert && (!o->src || !o->hf))
        return cli_fail(2, "convert: -m MODEL and -o DIR are required");
    if (!convert && (!o->src || !o->gguf == !o->hf))
        return cli_fail(2, "export: -m MODEL and one of --gguf FILE or --hf DIR are required");
    return 0;
}

static int export_gguf(const export_opts *o, hass_model *m) {
    hass_dtype dt = HASS_DTYPE_COUNT;
    if (o->dtype) {
        if (!strcmp(o->dtype, "f32"))
            dt = HASS_DTYPE_F32;
        else if (!strcmp(o->dtype, "f16"))
            dt = HASS_DTYPE_F16;
        else if (!strcmp(o->dtype, "bf16"))
            dt = HASS_DTYPE_BF16;
        else
            return cli_fail(2, "export: --dtype must be f32, f16 or bf16");
    }
    int rc = cli_check_output("export", o->gguf, 0, NULL, o->force);
    if (rc)
        return rc;
    hass_err err = {0};
    hass_tokenizer *tok = hass_tokenizer_open(o->src, o->zbin, &err);
    if (!tok)
        return cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "export: tokenizer: %s", err.msg);
    hass_gguf_kvs kvs = {0};
    char name[256];
    cli_model_name(o->src, name, sizeof name);
    hass_gguf_export_opts go = {.dtype = dt, .name = o->name ? o->name : name, .extra = &kvs};
    hass_status st = hass_tokenizer_gguf_kvs(tok, (int32_t)m->cfg.V, &kvs, &err);
    if (!st)
        st = hass_model_export_gguf(m, o->gguf, &go, &err);
    hass_gguf_kvs_free(&kvs);
    hass_tokenizer_free(tok);
    if (st)
        return cli_fail(1, "%s", err.msg);
    fprintf(stderr, "hass: wrote %s\n", o->gguf);
    return 0;
}

static int run(int argc, char **argv, int convert) {
    export_opts o = {0};
    int rc = parse(argc, argv, convert, &o);
    if (rc)
        return rc < 0 ? 0 : rc;
    if (o.hf && o.dtype && strcmp(o.dtype, "f32") && strcmp(o.dtype, "bf16"))
        return cli_fail(2, "%s: --dtype must be f32 or bf16", argv[0]);
    hass_err err = {0};
    hass_model *m = hass_model_load(o.src, &err);
    if (!m)
        return cli_fail(1, "%s", err.msg);
    if (o.gguf) {
        rc = export_gguf(&o, m);
    } else if (!(rc = cli_check_output(argv[0], o.hf, 1, "config.json", o.force))) {
        hass_dtype dt = o.dtype && !strcmp(o.dtype, "f32") ? HASS_DTYPE_F32 : HASS_DTYPE_BF16;
        hass_status st = hass_model_export_hf(m, o.hf, dt, (size_t)o.shard << 20, &err);
        rc = st ? cli_fail(1, "%s", err.msg) : 0;
        if (!st)
            fprintf(stderr, "hass: wrote %s\n", o.hf);
    }
    hass_model_free(m);
    return rc;
}

int cmd_export(int argc, char **argv) {
    return run(argc, argv, 0);
}

int cmd_convert(int argc, char **argv) {
    return run(argc, argv, 1);
}
