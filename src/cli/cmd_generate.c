/*
 * cmd_generate.c — `hass generate`: plain or speculative decoding of one prompt, streaming the
 * continuation to stdout (DESIGN.md section 3).
 */
#include "cli/cli.h"
#include "decode/decode.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: hass generate [-m MODEL] [-z TOK.bin] [-d DRAFT] -p PROMPT [flags]\n"
    "  -m PATH            model: HF directory, .gguf, or llama2.c .bin (default "
    "models/default/target)\n"
    "  -z PATH            tokenizer.bin for a llama2.c checkpoint\n"
    "  -d PATH            draft head directory (EAGLE layout): speculative decoding\n"
    "                     (default with no -m: models/default/draft-hass; --no-draft: plain)\n"
    "  -p TEXT            prompt (-f FILE reads it from a file)\n"
    "  -n N               max new tokens (256)\n"
    "  -t T               temperature, 0 = greedy (0)\n"
    "  --top-p P          nucleus sampling (1 = off)\n"
    "  --top-k K          top-k sampling (0 = off)\n"
    "  --seed S           sampling seed (0)\n"
    "  --chat             apply the model's chat template (--system TEXT adds a system turn)\n"
    "  --tree-depth D     max draft tree depth (6)\n"
    "  --tree-topk K      children per expanded node (4)\n"
    "  --tree-tokens N    draft nodes verified per cycle, or auto (auto: cost model)\n"
    "  --threads N        threads (number of CPUs)\n"
    "  --ctx N            context length in positions (the model's)\n"
    "  --ctx-beyond-model allow --ctx above the model's context (a file that understates it)\n"
    "  --json             print one JSON object instead of streaming the text\n"
    "  -h, --help         this help\n";

/* The text as it comes: streamed to stdout, or kept for --json. */
typedef struct {
    int stream;
    char *text;
    size_t len, cap;
} out_ctx;

static int on_text(const char *b, size_t n, void *user) {
    out_ctx *o = user;
    if (o->stream) {
        fwrite(b, 1, n, stdout);
        fflush(stdout);
        return 0;
    }
    if (o->len + n + 1 > o->cap) {
        size_t nc = (o->cap + n + 1) * 2;
        char *t = realloc(o->text, nc);
        if (!t)
            return 0;
        o->text = t;
        o->cap = nc;
    }
    memcpy(o->text + o->len, b, n);
    o->len += n;
    o->text[o->len] = 0;
    return 0;
}

static char *read_prompt_file(const char *path, hass_err *err) {
    char *s = NULL;
    if (hass_read_text(path, HASS_READ_MAX, &s, NULL, err) != HASS_OK)
        return NULL;
    return s;
}

/* --json: one object with the text, the tokens and the metrics (the speculative ones with a
 * draft). */
static void print_json(const hass_gen_stats *st, const int32_t *out, const char *text, int spec) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "text", text ? text : "");
    cJSON *ta = cJSON_AddArrayToObject(j, "tokens");
    for (int64_t i = 0; i < st->n_generated; i++)
        cJSON_AddItemToArray(ta, cJSON_CreateNumber(out[i]));
    cJSON_AddStringToObject(j, "stop", st->stop == HASS_STOP_EOS ? "eos" : "length");
    cJSON_AddNumberToObject(j, "n_prompt", (double)st->n_prompt);
    cJSON_AddNumberToObject(j, "n_generated", (double)st->n_generated);
    cJSON_AddNumberToObject(j, "target_forwards", (double)st->target_forwards);
    cJSON_AddNumberToObject(j, "tau", st->tau);
    cJSON_AddNumberToObject(j, "seconds", st->seconds);
    cJSON_AddNumberToObject(j, "tokens_per_s", st->tokens_per_s);
    cJSON_AddNumberToObject(j, "prefill_seconds", st->prefill_seconds);
    cJSON_AddNumberToObject(j, "peak_rss_mb", (double)hass_peak_rss_bytes() / 1048576.0);
    cJSON_AddNumberToObject(j, "decode_tokens_per_s",
                            st->decode_seconds > 0 ? (double)st->n_generated / st->decode_seconds
                                                   : 0);
    if (spec) {
        cJSON_AddNumberToObject(j, "draft_seconds", st->draft_seconds);
        cJSON_AddNumberToObject(j, "verify_seconds", st->verify_seconds);
        cJSON_AddNumberToObject(j, "other_seconds", st->other_seconds);
        cJSON_AddNumberToObject(j, "nodes_per_cycle",
                                st->cycles ? (double)st->nodes_verified / (double)st->cycles : 0);
        cJSON_AddNumberToObject(j, "draft_levels_per_cycle",
                                st->cycles ? (double)st->draft_levels / (double)st->cycles : 0);
        cJSON *acc = cJSON_AddArrayToObject(j, "accept_rate_by_depth");
        for (int k = 1; k < HASS_TREE_MAX_DEPTH && st->cycles; k++)
            cJSON_AddItemToArray(
                acc, cJSON_CreateNumber((double)st->accepted_at_depth[k] / (double)st->cycles));
    }
    char *s = cJSON_PrintUnformatted(j);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(j);
}

/* The summary lines on stderr after the streamed text. */
static void print_summary(const hass_gen_stats *st, const hass_options *o, int spec) {
    fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr,
            "hass: %lld prompt + %lld generated tokens, %.2f s (%.1f tokens/s), tau %.2f, "
            "stop %s, peak RSS %.0f MiB\n",
            (long long)st->n_prompt, (long long)st->n_generated, st->seconds, st->tokens_per_s,
            st->tau, st->stop == HASS_STOP_EOS ? "eos" : "length",
            (double)hass_peak_rss_bytes() / 1048576.0);
    if (spec)
        fprintf(stderr,
                "hass: tree %s: %.1f nodes and %.1f draft levels per cycle (depth <= %d, "
                "top-k %d); time: draft %.0f%%, verify %.0f%%\n",
                o->tree_tokens ? "fixed" : "auto",
                st->cycles ? (double)st->nodes_verified / st->cycles : 0,
                st->cycles ? (double)st->draft_levels / st->cycles : 0, o->tree_depth, o->tree_topk,
                st->seconds > 0 ? 100 * st->draft_seconds / st->seconds : 0,
                st->seconds > 0 ? 100 * st->verify_seconds / st->seconds : 0);
}

int cmd_generate(int argc, char **argv) {
    const char *prompt = NULL, *pfile = NULL, *system = NULL;
    int no_draft = 0;
    cli_gen_opts g;
    cli_gen_opts_init(&g, 256);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = cli_gen_flag(argc, argv, &i, &g);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--no-draft")) {
            no_draft = 1;
        } else if (!strcmp(a, "-p") || !strcmp(a, "-f") || !strcmp(a, "--system")) {
            const char *v = cli_need_value(argc, argv, &i);
            if (!v)
                return 2;
            if (!strcmp(a, "-p"))
                prompt = v;
            else if (!strcmp(a, "-f"))
                pfile = v;
            else
                system = v;
        } else {
            return cli_unknown_flag("generate", a);
        }
    }
    if (!prompt && !pfile)
        return cli_fail(2, "generate: -p PROMPT (or -f FILE) is required");
    if (prompt && pfile)
        return cli_fail(2, "generate: give -p or -f, not both");
    char defm[1024], defd[1024];
    if (cli_default_model(&g.model, &g.open.draft, !no_draft, defm, defd, sizeof defm, "generate"))
        return 2;
    if (no_draft)
        g.open.draft = NULL;
    g.gen.system = system;

    int rc = 1, json = g.json;
    hass_err err = {0};
    char *ptext = NULL;
    int32_t *out = NULL;
    hass_session *ses = NULL;
    out_ctx o = {!json, NULL, 0, 0};
    hass_gen_stats st;
    if (pfile && !(ptext = read_prompt_file(pfile, &err)))
        goto fail;
    if (!(ses = cli_session_open(&g, &rc))) {
        free(ptext);
        return rc;
    }
    rc = 1;
    hass_chat_msg msg = {"user", ptext ? ptext : prompt};
    if (!(out = malloc(((size_t)g.gen.max_new_tokens + 1) * sizeof(int32_t)))) {
        hass_err_set(&err, HASS_STATUS_OOM, "out of memory");
        goto fail;
    }
    if (hass_session_generate(ses, &msg, 1, &g.gen, on_text, &o, out, &st, &err))
        goto fail;
    if (json)
        print_json(&st, out, o.text, ses->dr != NULL);
    else
        print_summary(&st, &g.gen, ses->dr != NULL);
    rc = 0;
fail:
    if (rc)
        cli_fail(rc, "%s", err.msg[0] ? err.msg : "generate failed");
    hass_close(ses);
    free(out);
    free(o.text);
    free(ptext);
    return rc;
}
