/*
 * cmd_convert.c — `hass convert -m SRC -o DIR`: any loadable model (llama2.c checkpoint, GGUF,
 * Hugging Face directory) written as a Hugging Face directory in F32 or BF16.
 */
#include "cli/cli.h"
#include "model/model.h"

#include <stdio.h>
#include <string.h>

static const char *usage =
    "usage: hass convert -m MODEL -o DIR [--dtype f32|bf16] [--shard-mb N]\n"
    "  -m PATH        source model (HF directory, .gguf, llama2.c .bin)\n"
    "  -o DIR         output Hugging Face directory (config.json + safetensors)\n"
    "  --dtype T      f32 or bf16 matrices (bf16)\n"
    "  --shard-mb N   split into shards of at most N MiB with an index (0 = one file)\n"
    "The tokenizer is not converted: copy tokenizer.json beside the output yourself.\n";

int cmd_convert(int argc, char **argv) {
    const char *src = NULL, *dst = NULL, *dt = "bf16";
    long long shard = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "-m") && strcmp(a, "-o") && strcmp(a, "--dtype") && strcmp(a, "--shard-mb")) {
            fprintf(stderr, "hass convert: unknown flag '%s'\n%s", a, usage);
            return 2;
        }
        if (!(v = cli_need_value(argc, argv, &i)))
            return 2;
        if (!strcmp(a, "-m"))
            src = v;
        else if (!strcmp(a, "-o"))
            dst = v;
        else if (!strcmp(a, "--dtype"))
            dt = v;
        else if (cli_parse_int(a, v, 0, 1 << 20, &shard))
            return 2;
    }
    if (!src || !dst)
        return cli_fail(2, "convert: -m MODEL and -o DIR are required");
    if (strcmp(dt, "f32") && strcmp(dt, "bf16"))
        return cli_fail(2, "convert: --dtype must be f32 or bf16");
    hass_err err = {0};
    hass_model *m = hass_model_load(src, &err);
    if (!m)
        return cli_fail(1, "%s", err.msg);
    hass_status st = hass_model_export_hf(
        m, dst, strcmp(dt, "f32") ? HASS_DTYPE_BF16 : HASS_DTYPE_F32, (size_t)shard << 20, &err);
    hass_model_free(m);
    if (st)
        return cli_fail(1, "%s", err.msg);
    fprintf(stderr, "hass: wrote %s\n", dst);
    return 0;
}
