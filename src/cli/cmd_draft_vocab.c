/*
 * cmd_draft_vocab.c — `hass draft-vocab -m M -d DRAFT --data FEATDIR -n N`: restrict a draft's
 * proposals to the N target tokens most frequent in training data (FR-Spec / EAGLE-3 style).
 * The draft's LM-head cost drops from V to N rows per proposal; verification still uses the
 * full vocabulary, so the output is unchanged.
 */
#include "cli/cli.h"
#include "model/model.h"
#include "train/draft_ckpt.h"

#include <stdio.h>
#include <string.h>

static const char *usage =
    "usage: hass draft-vocab -m MODEL -d DRAFT --data FEATDIR -n N\n"
    "  -m PATH        the target model the draft belongs to\n"
    "  -z PATH        tokenizer.bin (accepted for symmetry; not needed)\n"
    "  -d DIR         draft directory to update (model.safetensors is rewritten atomically)\n"
    "  --data DIR     feature shards (hass datagen) whose trained tokens are counted\n"
    "  -n N           draft vocabulary size (e.g. 32000 for a 128k-token target)\n"
    "Run it after train-draft (training rewrites the draft without the vocabulary).\n";

int cmd_draft_vocab(int argc, char **argv) {
    const char *model = NULL, *draft = NULL, *data = NULL;
    long long n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "-m") && strcmp(a, "-d") && strcmp(a, "--data") && strcmp(a, "-n") &&
            strcmp(a, "-z")) {
            return cli_unknown_flag("draft-vocab", a);
        }
        if (!(v = cli_need_value(argc, argv, &i)))
            return 2;
        if (!strcmp(a, "-m"))
            model = v;
        else if (!strcmp(a, "-d"))
            draft = v;
        else if (!strcmp(a, "--data"))
            data = v;
        else if (!strcmp(a, "-n") && cli_parse_int(a, v, 1, 1 << 24, &n))
            return 2;
    }
    if (!model || !draft || !data || n <= 0)
        return cli_fail(2, "draft-vocab: -m MODEL, -d DRAFT, --data FEATDIR and -n N are required");
    hass_err err = {0};
    hass_model *m = hass_model_load(model, &err);
    if (!m)
        return cli_fail(1, "%s", err.msg);
    hass_status st = hass_draft_set_vocab(draft, m, data, n, &err);
    hass_model_free(m);
    if (st)
        return cli_fail(st == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    fprintf(stderr, "hass: %s now drafts over %lld tokens\n", draft, n);
    return 0;
}
