/*
 * cmd_draft_init.c — `hass draft-init -m M [-z TOK] -o DIR [--seed S]`: a freshly initialised
 * EAGLE-layout draft head for a model (the starting point of training).
 */
#include "cli/cli.h"
#include "model/model.h"
#include "train/draft_ckpt.h"

#include <stdio.h>
#include <string.h>

static const char *usage =
    "usage: hass draft-init -m MODEL -o DIR [--seed S] [--no-bias] [--dtype f32|bf16]\n"
    "  -m PATH        target model (HF directory, .gguf, llama2.c .bin)\n"
    "  -z PATH        tokenizer.bin (accepted for symmetry; not needed)\n"
    "  -o DIR         output directory (created)\n"
    "  --seed S       initialisation seed (0)\n"
    "  --no-bias      no fc bias (EAGLE's LLaMA-3 drafts); default: a bias, as in EAGLE's\n"
    "                 training and its LLaMA-2 drafts (--bias says so explicitly)\n"
    "  --dtype T      f32 or bf16 weights (f32)\n"
    "  --force        overwrite a draft already in DIR\n";

int cmd_draft_init(int argc, char **argv) {
    const char *model = NULL, *outdir = NULL, *dt = "f32";
    long long seed = 0;
    int bias = 1, force = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "-o") || !strcmp(a, "-z") ||
                   !strcmp(a, "--seed") || !strcmp(a, "--dtype")) {
            if (!(v = cli_need_value(argc, argv, &i)))
                return 2;
            if (!strcmp(a, "-m"))
                model = v;
            else if (!strcmp(a, "-o"))
                outdir = v;
            else if (!strcmp(a, "--dtype"))
                dt = v;
            else if (!strcmp(a, "--seed") && cli_parse_int(a, v, 0, (long long)9e18, &seed))
                return 2;
        } else if (!strcmp(a, "--bias") || !strcmp(a, "--no-bias")) {
            bias = !strcmp(a, "--bias");
        } else if (!strcmp(a, "--force")) {
            force = 1;
        } else {
            return cli_unknown_flag("draft-init", a);
        }
    }
    if (!model || !outdir)
        return cli_fail(2, "draft-init: -m MODEL and -o DIR are required");
    if (strcmp(dt, "f32") && strcmp(dt, "bf16"))
        return cli_fail(2, "draft-init: --dtype must be f32 or bf16");
    int rc = cli_check_output("draft-init", outdir, 1, "model.safetensors", force);
    if (rc)
        return rc;
    hass_err err = {0};
    hass_model *m = hass_model_load(model, &err);
    if (!m)
        return cli_fail(1, "%s", err.msg);
    hass_status st =
        hass_draft_write_fresh(outdir, m, bias, (uint64_t)seed,
                               strcmp(dt, "bf16") ? HASS_DTYPE_F32 : HASS_DTYPE_BF16, model, &err);
    hass_model_free(m);
    if (st)
        return cli_fail(1, "%s", err.msg);
    fprintf(stderr, "hass: wrote a fresh draft head to %s\n", outdir);
    return 0;
}
