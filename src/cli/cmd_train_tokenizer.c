/*
 * cmd_train_tokenizer.c — `hass train-tokenizer --data FILE.jsonl[,FILE2...] -o DIR`: a
 * LLaMA-3-style byte-level BPE tokenizer trained on corpus records (tools/corpus.sh), written
 * as tokenizer.json + tokenizer_config.json + tokenizer_stats.json (src/tokenizer/bpe_train.c).
 */
#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: hass train-tokenizer --data FILE.jsonl[,FILE2...] -o DIR [flags]\n"
    "  --data FILES       JSONL corpus records, comma-separated: {\"messages\": [{\"role\",\n"
    "                     \"content\"}, ...]} (rendered with the LLaMA-3 chat template) or\n"
    "                     {\"text\": ...} (<|begin_of_text|>text<|end_of_text|>)\n"
    "  -o DIR             output folder (tokenizer.json, tokenizer_config.json,\n"
    "                     tokenizer_stats.json; created if missing)\n"
    "  --vocab N          total vocabulary size incl. special tokens (8192; >= 261;\n"
    "                     a multiple of 64 is best for the model's matrices)\n"
    "  --min-count N      merge a pair only while it occurs at least N times (2)\n"
    "  --max-bytes N      read at most N bytes of JSONL over all files (0 = all)\n"
    "  --valid FILE       JSONL records to measure bytes per token on (per \"source\")\n"
    "  --threads N        threads for counting and checking (number of CPUs)\n";

int cmd_train_tokenizer(int argc, char **argv) {
    const char *data = NULL, *outdir = NULL, *valid = NULL;
    hass_bpe_opts o = hass_bpe_opts_default();
    long long vocab = o.vocab, min_count = o.min_count, max_bytes = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (strcmp(a, "--data") && strcmp(a, "-o") && strcmp(a, "--vocab") &&
            strcmp(a, "--min-count") && strcmp(a, "--max-bytes") && strcmp(a, "--valid") &&
            strcmp(a, "--threads")) {
            return cli_unknown_flag("train-tokenizer", a);
        }
        if (!(v = cli_need_value(argc, argv, &i)))
            return 2;
        if (!strcmp(a, "--data"))
            data = v;
        else if (!strcmp(a, "-o"))
            outdir = v;
        else if (!strcmp(a, "--valid"))
            valid = v;
        else if ((!strcmp(a, "--vocab") && cli_parse_int(a, v, 261, 1 << 24, &vocab)) ||
                 (!strcmp(a, "--min-count") &&
                  cli_parse_int(a, v, 1, (long long)1 << 62, &min_count)) ||
                 (!strcmp(a, "--max-bytes") &&
                  cli_parse_int(a, v, 0, (long long)1 << 62, &max_bytes)) ||
                 (!strcmp(a, "--threads") && cli_parse_int(a, v, 1, 256, &threads)))
            return 2;
    }
    if (!data || !*data || !outdir)
        return cli_fail(2, "train-tokenizer: --data FILE.jsonl and -o DIR are required");
    o.vocab = (int32_t)vocab;
    o.min_count = min_count;
    o.max_bytes = max_bytes;
    hass_err err = {0};
    hass_bpe_trainer *tr = hass_bpe_trainer_create(&o, &err);
    if (!tr)
        return cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    hass_pool *pool = hass_pool_create((int)threads);
    char *files = strdup(data);
    hass_status st = files ? HASS_OK : HASS_STATUS_OOM;
    for (char *save = NULL, *f = files ? strtok_r(files, ",", &save) : NULL; f && st == HASS_OK;
         f = strtok_r(NULL, ",", &save))
        st = hass_bpe_trainer_add_jsonl(tr, f, pool, &err);
    if (st == HASS_OK)
        st = hass_bpe_trainer_train(tr, &err);
    if (st == HASS_OK)
        st = hass_bpe_trainer_save(tr, outdir, valid, pool, &err);
    hass_bpe_report r;
    hass_bpe_trainer_report(tr, &r);
    hass_bpe_trainer_free(tr);
    hass_pool_destroy(pool);
    free(files);
    if (st != HASS_OK)
        return cli_fail(1, "%s", err.msg[0] ? err.msg : hass_status_str(st));
    fprintf(stderr,
            "hass: train-tokenizer: %lld records, %.1f MB, %d merges, %.3f bytes per token, "
            "%.1f s -> %s/tokenizer.json\n",
            (long long)r.records, (double)r.text_bytes / 1e6, r.merges,
            r.tokens ? (double)r.text_bytes / (double)r.tokens : 0.0,
            r.seconds_count + r.seconds_merge + r.seconds_save, outdir);
    return 0;
}
