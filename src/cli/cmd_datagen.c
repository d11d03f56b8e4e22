/*
 * cmd_datagen.c — `hass datagen`: conversations / instruction data / prompt lists -> the
 * target's features in resumable feature shards (src/train/datagen.h, featstore.h).
 */
#include "cli/cli.h"
#include "model/model.h"
#include "train/datagen.h"

#include <stdio.h>
#include <string.h>

static const char *usage =
    "usage: hass datagen -m MODEL [-z TOK] --data FILE -o DIR [flags]\n"
    "  -m PATH            target model (HF directory, .gguf, llama2.c .bin)\n"
    "  -z PATH            tokenizer.bin (llama2.c checkpoints)\n"
    "  --tokenizer PATH   explicit tokenizer file (tokenizer.json / .gguf / .bin)\n"
    "  --data FILE        input: ShareGPT conversations, instruction data (JSON array or JSONL)\n"
    "                     or a prompt list (JSONL with prompt/turns/question, or text lines)\n"
    "  --format F         auto|sharegpt|instruct|prompts (auto: from each record's fields)\n"
    "  -o DIR             output feature store (re-running with the same flags resumes)\n"
    "  --regen            regenerate the assistant answers with the target (implied for\n"
    "                     prompt lists; default: keep the given answers)\n"
    "  -t T               temperature of regeneration (0 = greedy)\n"
    "  --seed S           sampling seed (0)\n"
    "  -n N               max new tokens per regenerated answer (256)\n"
    "  --chat             apply the model's chat template (default: plain concatenation)\n"
    "  --max-len N        truncate sequences to N tokens (2048, at most the model context)\n"
    "  --limit N          first N records only (0 = all)\n"
    "  --shard-tokens N   tokens per shard file (1048576)\n"
    "  --threads N        threads (number of CPUs)\n";

int cmd_datagen(int argc, char **argv) {
    const char *model = NULL, *zbin = NULL, *tokfile = NULL, *outdir = NULL, *fmt = "auto";
    hass_datagen_opts o = hass_datagen_opts_default();
    long long threads = 0, v64;
    double fv;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--regen")) {
            o.regen = 1;
        } else if (!strcmp(a, "--chat")) {
            o.chat = 1;
        } else if (!strcmp(a, "-m") || !strcmp(a, "-z") || !strcmp(a, "--tokenizer") ||
                   !strcmp(a, "--data") || !strcmp(a, "--format") || !strcmp(a, "-o") ||
                   !strcmp(a, "-t") || !strcmp(a, "--seed") || !strcmp(a, "-n") ||
                   !strcmp(a, "--max-len") || !strcmp(a, "--limit") ||
                   !strcmp(a, "--shard-tokens") || !strcmp(a, "--threads")) {
            if (!(v = cli_need_value(argc, argv, &i)))
                return 2;
            if (!strcmp(a, "-m"))
                model = v;
            else if (!strcmp(a, "-z"))
                zbin = v;
            else if (!strcmp(a, "--tokenizer"))
                tokfile = v;
            else if (!strcmp(a, "--data"))
                o.data_path = v;
            else if (!strcmp(a, "--format"))
                fmt = v;
            else if (!strcmp(a, "-o"))
                outdir = v;
            else if (!strcmp(a, "-t")) {
                if (cli_parse_float(a, v, 0, 100, &fv))
                    return 2;
                o.temperature = (float)fv;
            } else if (!strcmp(a, "--seed")) {
                if (cli_parse_int(a, v, 0, (long long)9e18, &v64))
                    return 2;
                o.seed = (uint64_t)v64;
            } else if (!strcmp(a, "--threads")) {
                if (cli_parse_int(a, v, 1, 256, &threads))
                    return 2;
            } else {
                long long lo = !strcmp(a, "--limit") ? 0 : 1;
                if (cli_parse_int(a, v, lo, (long long)1 << 40, &v64))
                    return 2;
                if (!strcmp(a, "-n"))
                    o.max_new = v64;
                else if (!strcmp(a, "--max-len"))
                    o.max_len = v64;
                else if (!strcmp(a, "--limit"))
                    o.limit = v64;
                else
                    o.shard_tokens = v64;
            }
        } else {
            return cli_unknown_flag("datagen", a);
        }
    }
    if (!model || !o.data_path || !outdir)
        return cli_fail(2, "datagen: -m MODEL, --data FILE and -o DIR are required");
    if (!strcmp(fmt, "auto"))
        o.format = HASS_DG_AUTO;
    else if (!strcmp(fmt, "sharegpt"))
        o.format = HASS_DG_SHAREGPT;
    else if (!strcmp(fmt, "instruct"))
        o.format = HASS_DG_INSTRUCT;
    else if (!strcmp(fmt, "prompts"))
        o.format = HASS_DG_PROMPTS;
    else
        return cli_fail(2, "datagen: --format must be auto, sharegpt, instruct or prompts");
    o.model_path = model;
    hass_err err = {0};
    hass_tokenizer *tok = hass_tokenizer_open(model, tokfile ? tokfile : zbin, &err);
    if (!tok)
        return cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    hass_model *m = hass_model_load(model, &err);
    if (!m) {
        hass_tokenizer_free(tok);
        return cli_fail(1, "%s", err.msg);
    }
    hass_pool *pool = hass_pool_create((int)threads);
    hass_datagen_report r;
    hass_status st = hass_datagen_run(m, tok, pool, outdir, &o, &r, &err);
    hass_pool_destroy(pool);
    hass_model_free(m);
    hass_tokenizer_free(tok);
    if (st)
        return cli_fail(st == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    fprintf(stderr,
            "hass: datagen: %lld/%lld records (%lld skipped this run), %lld sequences, %lld "
            "tokens (%lld masked), %lld generated, %.1f s%s -> %s\n",
            (long long)r.records_done, (long long)r.records_total, (long long)r.records_skipped,
            (long long)r.sequences, (long long)r.tokens, (long long)r.masked,
            (long long)r.generated, r.seconds, r.complete ? "" : " (incomplete: re-run to resume)",
            outdir);
    return 0;
}
