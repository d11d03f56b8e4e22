/*
 * cmd_perplexity.c — `hass perplexity -m MODEL --data FILE.jsonl`: validation loss and perplexity
 * of a model over a JSONL corpus of {"text"} / {"messages"} records, tokenized and windowed as
 * `hass pretrain` evaluates (model/perplexity.c), so a BF16 model and its Q8_0 / Q4_K_M
 * quantizations can be compared on the same tokens.
 */
#include "cli/cli.h"
#include "model/model.h"
#include "train/pretrain_run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: hass perplexity -m MODEL --data FILE.jsonl [-z TOK.bin] [--ctx N] [--windows N]\n"
    "                       [--threads N] [--json]\n"
    "  -m PATH        model (HF directory, .gguf, llama2.c .bin)\n"
    "  --data FILE    JSONL records {\"text\": ...} or {\"messages\": [...]}, as hass pretrain\n"
    "  -z PATH        the tokenizer.bin of a llama2.c checkpoint\n"
    "  --ctx N        window length in tokens (the model's context, at most 512)\n"
    "  --windows N    evaluate at most N windows (0 = all) (0)\n"
    "  --threads N    threads (number of CPUs)\n"
    "  --json         print one JSON object\n";

/* The dtype holding most matrix elements (a mix like Q4_K_M shows its main type). */
static hass_dtype main_dtype(const hass_model *m) {
    const hass_model_config *c = &m->cfg;
    double by[HASS_DTYPE_COUNT] = {0};
    int64_t qd = c->H * c->Dh, kvd = c->Hkv * c->Dh;
    by[m->embed_t] += (double)(c->V * c->d);
    by[m->lm_head_t] += m->lm_head != m->embed ? (double)(c->V * c->d) : 0;
    for (int64_t l = 0; l < c->n_layers; l++) {
        const hass_layer *L = &m->layers[l];
        by[L->tq] += (double)(qd * c->d), by[L->to] += (double)(qd * c->d);
        by[L->tk] += (double)(kvd * c->d), by[L->tv] += (double)(kvd * c->d);
        by[L->tg] += (double)(c->ffn * c->d), by[L->tu] += (double)(c->ffn * c->d);
        by[L->td] += (double)(c->ffn * c->d);
    }
    int best = 0;
    for (int t = 1; t < HASS_DTYPE_COUNT; t++)
        best = by[t] > by[best] ? t : best;
    return (hass_dtype)best;
}

int cmd_perplexity(int argc, char **argv) {
    const char *src = NULL, *data = NULL, *zbin = NULL;
    long long ctx = 0, windows = 0, threads = 0;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            json = 1;
            continue;
        }
        int k = !strcmp(a, "-m")          ? 0
                : !strcmp(a, "--data")    ? 1
                : !strcmp(a, "-z")        ? 2
                : !strcmp(a, "--ctx")     ? 3
                : !strcmp(a, "--windows") ? 4
                : !strcmp(a, "--threads") ? 5
                                          : -1;
        if (k < 0) {
            return cli_unknown_flag("perplexity", a);
        }
        if (!(v = cli_need_value(argc, argv, &i)))
            return 2;
        if ((k == 0 && (src = v)) || (k == 1 && (data = v)) || (k == 2 && (zbin = v)))
            continue;
        if ((k == 3 && cli_parse_int(a, v, 1, 1 << 24, &ctx)) ||
            (k == 4 && cli_parse_int(a, v, 0, 1ll << 40, &windows)) ||
            (k == 5 && cli_parse_int(a, v, 1, 1024, &threads)))
            return 2;
    }
    if (!src || !data)
        return cli_fail(2, "perplexity: -m MODEL and --data FILE.jsonl are required");
    hass_err err = {0};
    hass_tokenizer *tok = hass_tokenizer_open(src, zbin, &err);
    if (!tok)
        return cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "perplexity: tokenizer: %s", err.msg);
    hass_model *m = hass_model_load(src, &err);
    hass_pool *pool = m ? hass_pool_create((int)threads) : NULL;
    int32_t *ids = NULL;
    int64_t n = 0;
    size_t bytes = 0;
    hass_ppl_result r;
    int rc = 0;
    if (!m) {
        rc = cli_fail(1, "%s", err.msg);
    } else if (hass_tokenizer_check_vocab(tok, m->cfg.V, &err)) {
        rc = cli_fail(1, "perplexity: %s", err.msg);
    } else if (!pool) {
        rc = cli_fail(1, "perplexity: cannot start the thread pool");
    } else if (hass_corpus_tokenize(tok, data, pool, &ids, &n, &bytes, &err) != HASS_OK ||
               hass_model_perplexity(m, pool, ids, n,
                                     ctx ? ctx : (m->cfg.max_ctx < 512 ? m->cfg.max_ctx : 512),
                                     windows, &r, &err) != HASS_OK) {
        rc = cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    } else if (json) {
        printf("{\"model\":\"%s\",\"data\":\"%s\",\"weights\":\"%s\",\"windows\":%lld,"
               "\"ctx\":%lld,\"tokens\":%lld,\"loss\":%.6f,\"loss_se\":%.6f,\"perplexity\":%.4f}\n",
               src, data, hass_dtype_name(main_dtype(m)), (long long)r.n_windows,
               (long long)(r.n_tokens / r.n_windows), (long long)r.n_tokens, r.nll, r.nll_se,
               r.ppl);
    } else {
        printf("perplexity %.4f  (loss %.5f +- %.5f nats over %lld windows of %lld tokens, %lld "
               "tokens; %s, %s weights)\n",
               r.ppl, r.nll, r.nll_se, (long long)r.n_windows,
               (long long)(r.n_tokens / r.n_windows), (long long)r.n_tokens, src,
               hass_dtype_name(main_dtype(m)));
    }
    free(ids);
    hass_pool_destroy(pool);
    hass_model_free(m);
    hass_tokenizer_free(tok);
    return rc;
}
