/*
 * cmd_bench.c — `hass bench`: plain and speculative decoding of every prompt of a file, run
 * alternately in one process (same binary, same machine state), with per-prompt and overall
 * tokens/s, speedup, tau, acceptance by depth, the draft/verify time split, and at T=0 whether
 * every speculative output equals the plain one.
 */
#include "cli/cli.h"
#include "decode/decode.h"
#include "eval/eval.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: hass bench [-m MODEL] [-z TOK.bin] [-d DRAFT] --prompts FILE.jsonl [flags]\n"
    "  --prompts FILE     JSONL: each line has \"prompt\", \"turns\" (first turn is used) or\n"
    "                     \"question\" (MT-bench / EAGLE / GSM8K files as they are)\n"
    "  -n N               new tokens per prompt (128)\n"
    "  -t T               temperature (0); --top-p P, --top-k K, --seed S as in generate\n"
    "  --chat             apply the chat template\n"
    "  --all-turns        with --chat: every turn of multi-turn questions (MT-bench), each after\n"
    "                     the conversation so far (earlier answers: plain decoding's)\n"
    "  --limit K          first K prompts only (all)\n"
    "  --tree-depth D, --tree-topk K, --tree-tokens N|auto   as in generate\n"
    "  --threads N        threads (number of CPUs)\n"
    "  --ctx N            context length (the model's)\n"
    "  --reps R           runs of each mode per prompt, alternating; medians are kept (1)\n"
    "  --json             one JSON object on stdout (per-prompt rows and the summary)\n"
    "  --out FILE.jsonl   also write one JSON line per prompt and a summary line\n";

/* Bench items: one per prompt, or (with --all-turns) one per turn of a multi-turn question;
 * turn[i] > 0 continues the conversation of the item before it. */
typedef struct {
    char **texts;
    int *turn;
    int n;
} prompt_list;

/* The prompt file as a suite (hass_eval_suite_load: the one reader of prompt files), flattened:
 * each question's first turn, or all its turns with all_turns. */
static int load_prompts(const char *path, int limit, int all_turns, prompt_list *pl,
                        hass_err *err) {
    hass_eval_suite su;
    if (hass_eval_suite_load(&su, "bench", path, limit, err))
        return -1;
    int n = 0;
    for (int q = 0; q < su.n; q++)
        n += all_turns ? su.q[q].n_turns : 1;
    pl->texts = calloc((size_t)n, sizeof(char *));
    pl->turn = calloc((size_t)n, sizeof(int));
    pl->n = 0;
    for (int q = 0; q < su.n && pl->texts && pl->turn; q++)
        for (int k = 0; k < (all_turns ? su.q[q].n_turns : 1); k++) {
            pl->turn[pl->n] = k;
            pl->texts[pl->n++] = su.q[q].turns[k];
            su.q[q].turns[k] = NULL; /* moved */
        }
    hass_eval_suite_free(&su);
    if (!pl->texts || !pl->turn) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return -1;
    }
    return 0;
}

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int cmd_bench(int argc, char **argv) {
    const char *pfile = NULL, *outp = NULL;
    long long limit = 0, reps = 1;
    int all_turns = 0;
    cli_gen_opts g;
    cli_gen_opts_init(&g, 128);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r = cli_gen_flag(argc, argv, &i, &g);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--all-turns")) {
            all_turns = 1;
        } else if (!strcmp(a, "--prompts") || !strcmp(a, "--out") || !strcmp(a, "--reps") ||
                   !strcmp(a, "--limit")) {
            if (!(v = cli_need_value(argc, argv, &i)))
                return 2;
            if (!strcmp(a, "--prompts"))
                pfile = v;
            else if (!strcmp(a, "--out"))
                outp = v;
            else if (!strcmp(a, "--reps") ? cli_parse_int(a, v, 1, 101, &reps)
                                          : cli_parse_int(a, v, 1, 1 << 24, &limit))
                return 2;
        } else {
            return cli_unknown_flag("bench", a);
        }
    }
    if (!pfile)
        return cli_fail(2, "bench: --prompts FILE is required");
    if (all_turns && !g.gen.chat)
        return cli_fail(2, "bench: --all-turns needs --chat (turns are chat messages)");
    char defm[1024], defd[1024];
    if (cli_default_model(&g.model, &g.open.draft, 1, defm, defd, sizeof defm, "bench"))
        return 2;
    if (!g.open.draft)
        return cli_fail(2, "bench: -d DRAFT is required (plain vs speculative)");

    int rc = 1, json = g.json;
    double temp = g.gen.temperature;
    int64_t n_new = g.gen.max_new_tokens;
    hass_err err = {0};
    prompt_list pl = {0};
    hass_session *ses = NULL;
    int32_t *a = NULL, *b = NULL;
    char **answers = NULL;
    hass_chat_msg hist[64];
    int n_hist = 0;
    double *speedups = NULL;
    FILE *fo = NULL;
    cJSON *rows = cJSON_CreateArray();
    if (load_prompts(pfile, (int)limit, all_turns, &pl, &err))
        goto fail;
    if (!(ses = cli_session_open(&g, &rc)))
        goto done; /* the error is printed */
    rc = 1;
    if (outp && !(fo = fopen(outp, "w"))) {
        hass_err_set(&err, HASS_STATUS_IO, "%s: cannot write", outp);
        goto fail;
    }
    a = malloc((size_t)n_new * sizeof(int32_t));
    b = malloc((size_t)n_new * sizeof(int32_t));
    speedups = malloc((size_t)pl.n * sizeof(double));
    answers = calloc((size_t)pl.n, sizeof(char *));
    hass_options plain = g.gen, spec = g.gen;
    plain.speculative = 0;
    spec.speculative = 1;
    int identical = 1, n_done = 0;
    double tp_tok = 0, tp_sec = 0, ts_tok = 0, ts_sec = 0, t_draft = 0, t_verify = 0, t_level = 0,
           tau_num = 0, tau_den = 0, nodes = 0;
    int64_t levels = 0, acc[HASS_TREE_MAX_DEPTH] = {0};
    hass_progress prog;
    hass_progress_init(&prog, "bench", "prompts", pl.n);
    if (!json)
        fprintf(stderr, "%-4s %6s %6s %9s %9s %7s %6s %5s\n", "#", "n_prm", "n_gen", "plain/s",
                "spec/s", "speedup", "tau", "same");
    for (int i = 0; i < pl.n; i++) {
        if (pl.turn[i] == 0 || n_hist >= 63)
            n_hist = 0;
        hist[n_hist++] = (hass_chat_msg){"user", pl.texts[i]}; /* without --chat: this alone */
        /* plain and speculative alternately, reps times each; keep the median-time run */
        hass_gen_stats sp, ss, rsp[101], rss[101];
        double dp[101], ds[101];
        hass_status st = HASS_OK;
        for (int r = 0; r < reps && !st; r++) {
            st = hass_session_generate(ses, hist, n_hist, &plain, NULL, NULL, a, &rsp[r], &err);
            if (!st)
                st = hass_session_generate(ses, hist, n_hist, &spec, NULL, NULL, b, &rss[r], &err);
            dp[r] = rsp[r].decode_seconds;
            ds[r] = rss[r].decode_seconds;
        }
        if (st)
            goto fail;
        int64_t np = rsp[0].n_prompt;
        qsort(dp, (size_t)reps, sizeof(double), cmp_dbl);
        qsort(ds, (size_t)reps, sizeof(double), cmp_dbl);
        sp = rsp[0];
        ss = rss[0];
        for (int r = 0; r < reps; r++) {
            if (rsp[r].decode_seconds == dp[reps / 2])
                sp = rsp[r];
            if (rss[r].decode_seconds == ds[reps / 2])
                ss = rss[r];
        }
        int same = sp.n_generated == ss.n_generated &&
                   !memcmp(a, b, sizeof(int32_t) * (size_t)sp.n_generated);
        if (all_turns) { /* the next turn follows plain decoding's answer */
            free(answers[i]);
            answers[i] = hass_tokenizer_decode(ses->tok, a, sp.n_generated, 1, NULL);
            if (n_hist < 62 && answers[i])
                hist[n_hist++] = (hass_chat_msg){"assistant", answers[i]};
        }
        if (temp == 0 && !same)
            identical = 0;
        double rp = sp.decode_seconds > 0 ? sp.n_generated / sp.decode_seconds : 0;
        double rs = ss.decode_seconds > 0 ? ss.n_generated / ss.decode_seconds : 0;
        speedups[n_done++] = rp > 0 ? rs / rp : 0;
        tp_tok += (double)sp.n_generated;
        tp_sec += sp.decode_seconds;
        ts_tok += (double)ss.n_generated;
        ts_sec += ss.decode_seconds;
        t_draft += ss.draft_seconds;
        t_verify += ss.verify_seconds;
        t_level += ss.draft_level_seconds;
        levels += ss.draft_levels;
        tau_num += ss.tau * (double)ss.cycles;
        tau_den += (double)ss.cycles;
        nodes += (double)ss.nodes_verified;
        for (int k = 1; k < HASS_TREE_MAX_DEPTH; k++)
            acc[k] += ss.accepted_at_depth[k];
        cJSON *r = cJSON_CreateObject();
        cJSON_AddNumberToObject(r, "prompt", i);
        if (all_turns)
            cJSON_AddNumberToObject(r, "turn", pl.turn[i]);
        cJSON_AddNumberToObject(r, "n_prompt", (double)np);
        cJSON_AddNumberToObject(r, "n_generated", (double)ss.n_generated);
        cJSON_AddNumberToObject(r, "plain_tokens_per_s", rp);
        cJSON_AddNumberToObject(r, "spec_tokens_per_s", rs);
        cJSON_AddNumberToObject(r, "speedup", rp > 0 ? rs / rp : 0);
        cJSON_AddNumberToObject(r, "tau", ss.tau);
        cJSON_AddNumberToObject(r, "cycles", (double)ss.cycles);
        cJSON_AddNumberToObject(r, "draft_seconds", ss.draft_seconds);
        cJSON_AddNumberToObject(r, "verify_seconds", ss.verify_seconds);
        if (temp == 0)
            cJSON_AddBoolToObject(r, "identical", same);
        if (fo) {
            char *s = cJSON_PrintUnformatted(r);
            fprintf(fo, "%s\n", s);
            free(s);
        }
        cJSON_AddItemToArray(rows, r);
        if (!json)
            fprintf(stderr, "%-4d %6lld %6lld %9.1f %9.1f %7.2f %6.2f %5s\n", i, (long long)np,
                    (long long)ss.n_generated, rp, rs, rp > 0 ? rs / rp : 0, ss.tau,
                    temp > 0 ? "-" : (same ? "yes" : "NO"));
        else
            hass_progress_update(&prog, i + 1);
    }
    qsort(speedups, (size_t)n_done, sizeof(double), cmp_dbl);
    cJSON *sum = cJSON_CreateObject();
    double rp = tp_sec > 0 ? tp_tok / tp_sec : 0, rs = ts_sec > 0 ? ts_tok / ts_sec : 0;
    double t1 = tp_tok > 0 ? tp_sec / tp_tok : 0; /* seconds per plain target step */
    cJSON_AddStringToObject(sum, "prompts_file", pfile);
    cJSON_AddNumberToObject(sum, "prompts", n_done);
    cJSON_AddNumberToObject(sum, "temperature", temp);
    cJSON_AddStringToObject(sum, "isa", hass_cpu_isa_name());             /* float products */
    cJSON_AddStringToObject(sum, "quant_isa", hass_cpu_quant_isa_name()); /* block types */
    cJSON_AddNumberToObject(sum, "plain_tokens_per_s", rp);
    cJSON_AddNumberToObject(sum, "spec_tokens_per_s", rs);
    cJSON_AddNumberToObject(sum, "speedup", rp > 0 ? rs / rp : 0);
    cJSON_AddNumberToObject(sum, "median_speedup", n_done ? speedups[n_done / 2] : 0);
    cJSON_AddNumberToObject(sum, "tau", tau_den > 0 ? tau_num / tau_den : 0);
    cJSON_AddNumberToObject(sum, "nodes_per_cycle", tau_den > 0 ? nodes / tau_den : 0);
    cJSON *ad = cJSON_AddArrayToObject(sum, "accept_rate_by_depth");
    for (int k = 1; k < HASS_TREE_MAX_DEPTH; k++)
        cJSON_AddItemToArray(ad, cJSON_CreateNumber(tau_den > 0 ? acc[k] / tau_den : 0));
    cJSON_AddNumberToObject(sum, "draft_fraction", ts_sec > 0 ? t_draft / ts_sec : 0);
    cJSON_AddNumberToObject(sum, "verify_fraction", ts_sec > 0 ? t_verify / ts_sec : 0);
    cJSON_AddNumberToObject(sum, "draft_step_vs_target_step",
                            levels > 0 && t1 > 0 ? (t_level / (double)levels) / t1 : 0);
    if (temp == 0)
        cJSON_AddBoolToObject(sum, "identical", identical);
    cJSON_AddNumberToObject(sum, "peak_rss_mb", (double)hass_peak_rss_bytes() / 1048576.0);
    if (fo) {
        char *s = cJSON_PrintUnformatted(sum);
        fprintf(fo, "%s\n", s);
        free(s);
    }
    if (json) {
        cJSON *all = cJSON_CreateObject();
        cJSON_AddItemToObject(all, "summary", sum);
        cJSON_AddItemToObject(all, "prompts", rows);
        rows = NULL;
        char *s = cJSON_PrintUnformatted(all);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(all);
    } else {
        char *s = cJSON_Print(sum);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(sum);
    }
    rc = 0;
fail:
    if (rc)
        cli_fail(rc, "%s", err.msg[0] ? err.msg : "bench failed");
done:
    if (fo)
        fclose(fo);
    cJSON_Delete(rows);
    for (int i = 0; i < pl.n; i++) {
        free(pl.texts[i]);
        if (answers)
            free(answers[i]);
    }
    free(pl.texts);
    free(pl.turn);
    free(answers);
    free(a);
    free(b);
    free(speedups);
    hass_close(ses);
    return rc;
}
