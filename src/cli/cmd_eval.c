/*
 * cmd_eval.c — `hass eval`: plain decoding and each draft over prompt suites, the paper-style
 * table, plots and report (src/eval/eval.h).
 */
#include "cli/cli.h"
#include "eval/eval.h"
#include "ops/ops.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *usage =
    "usage: hass eval [-m MODEL] --drafts D1[,D2...] [flags]\n"
    "  -m PATH            target (default models/default/target, then the drafts default to\n"
    "                     models/default/draft-eagle,models/default/draft-hass)\n"
    "  -z PATH            tokenizer.bin for a llama2.c checkpoint\n"
    "  --drafts LIST      draft directories, comma-separated\n"
    "  --names LIST       their names in the tables (default: the directory names)\n"
    "  --suite LIST       mt_bench, humaneval, gsm8k (the prompt sets of ../shared/data, or\n"
    "                     $HASS_SHARED/data) or FILE.jsonl, comma-separated (all three)\n"
    "  -t LIST            temperatures, comma-separated (0)\n"
    "  -n N               new tokens per turn (256)\n"
    "  --limit K          first K questions of each suite (all)\n"
    "  --out DIR          results folder (eval-out); an existing run there is resumed\n"
    "  --no-chat          prompts as plain text (default: the chat template)\n"
    "  --seed S           base of the sampling seeds (0)\n"
    "  --dist-prompts P   T > 0: prompts of the first suite in the distribution check (4)\n"
    "  --dist-reps R      T > 0: seeds per prompt and method there (64)\n"
    "  --top-p P, --top-k K                       sampling at T > 0\n"
    "  --tree-depth D, --tree-topk K, --tree-tokens N|auto   as in generate\n"
    "  --threads N        threads (number of CPUs)\n"
    "  --ctx N            context length (the model's)\n"
    "Writes runs.jsonl, results.json, results.md, speedup.svg, tau.svg, accept.svg and\n"
    "report.html in DIR.\n";

/* The comma-separated entries of s into out; cap + 1 when there are more than cap. */
static int split(char *s, char **out, int cap) {
    int n = 0;
    for (char *t = strtok(s, ","); t; t = strtok(NULL, ","))
        if (n++ < cap)
            out[n - 1] = t;
    return n > cap ? cap + 1 : n;
}

static const char *suite_path(const char *name, char *buf, size_t cap) {
    static const struct {
        const char *name, *rel;
    } known[] = {{"mt_bench", "data/mt_bench/question.jsonl"},
                 {"humaneval", "data/eagle_bench/humaneval/question.jsonl"},
                 {"gsm8k", "data/eagle_bench/gsm8k/question.jsonl"}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(name, known[i].name)) {
            const char *root = getenv("HASS_SHARED") ? getenv("HASS_SHARED") : "../shared";
            snprintf(buf, cap, "%s/%s", root, known[i].rel);
            return buf;
        }
    return name;
}

/* The family name of a prompt file: its stem ("x/y/chat.jsonl" -> "chat"). */
static void stem(const char *path, char *out, size_t cap) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    snprintf(out, cap, "%s", b);
    char *dot = strrchr(out, '.');
    if (dot && dot != out)
        *dot = 0;
}

static char *cpu_model(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
            fclose(f);
            char *v = strchr(line, ':') + 1;
            while (*v == ' ')
                v++;
            v[strcspn(v, "\n")] = 0;
            return strdup(v);
        }
    if (f)
        fclose(f);
    return strdup("unknown");
}

int cmd_eval(int argc, char **argv) {
    char *drafts_s = NULL, *names_s = NULL, *suites_s = NULL, *temps_s = NULL;
    const char *out = "eval-out";
    long long limit = 0, dist_p = 4, dist_r = 64;
    int chat = 1;
    cli_gen_opts g;
    cli_gen_opts_init(&g, 256);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--no-chat")) {
            chat = 0;
            continue;
        }
        if (!strcmp(a, "-t")) { /* a list here, not generate's single value */
            if (!(v = cli_need_value(argc, argv, &i)))
                return 2;
            temps_s = (char *)v;
            continue;
        }
        int r = cli_gen_flag(argc, argv, &i, &g);
        if (r < 0)
            return 2;
        if (r > 0)
            continue;
        if (!strcmp(a, "--drafts") || !strcmp(a, "--names") || !strcmp(a, "--suite") ||
            !strcmp(a, "--out") || !strcmp(a, "--limit") || !strcmp(a, "--dist-prompts") ||
            !strcmp(a, "--dist-reps")) {
            if (!(v = cli_need_value(argc, argv, &i)))
                return 2;
            if (!strcmp(a, "--drafts"))
                drafts_s = (char *)v;
            else if (!strcmp(a, "--names"))
                names_s = (char *)v;
            else if (!strcmp(a, "--suite"))
                suites_s = (char *)v;
            else if (!strcmp(a, "--out"))
                out = v;
            else if (!strcmp(a, "--limit")          ? cli_parse_int(a, v, 1, 1 << 24, &limit)
                     : !strcmp(a, "--dist-prompts") ? cli_parse_int(a, v, 0, 1000, &dist_p)
                                                    : cli_parse_int(a, v, 2, 100000, &dist_r))
                return 2;
        } else {
            return cli_unknown_flag("eval", a);
        }
    }
    if (g.open.draft)
        return cli_fail(2, "eval: use --drafts D1,D2 (not -d)");
    char defm[1024], dbuf[2][1024], defd[2100] = "";
    const char *model = g.model;
    if (!model) {
        const char *none = NULL;
        if (cli_default_model(&model, &none, 0, defm, dbuf[0], sizeof defm, "eval"))
            return 2;
        if (!drafts_s) {
            const char *e = cli_default_path("draft-eagle", dbuf[0], sizeof dbuf[0]);
            const char *h = cli_default_path("draft-hass", dbuf[1], sizeof dbuf[1]);
            snprintf(defd, sizeof defd, "%s%s%s", e ? e : "", e && h ? "," : "", h ? h : "");
            drafts_s = defd;
            if (!names_s)
                names_s = (char *)(e && h ? "eagle,hass" : e ? "eagle" : "hass");
        }
    }
    if (!drafts_s || !*drafts_s)
        return cli_fail(2, "eval: --drafts D1[,D2...] is required");
    char *dl[HASS_EVAL_MAX_DRAFTS], *nl[HASS_EVAL_MAX_DRAFTS], *sl[HASS_EVAL_MAX_SUITES], *tl[8];
    char suites_def[] = "mt_bench,humaneval,gsm8k", temps_def[] = "0";
    char *dcopy = strdup(drafts_s), *ncopy = names_s ? strdup(names_s) : NULL;
    char *scopy = strdup(suites_s ? suites_s : suites_def),
         *tcopy = strdup(temps_s ? temps_s : temps_def);
    int nd = split(dcopy, dl, HASS_EVAL_MAX_DRAFTS),
        nn = ncopy ? split(ncopy, nl, HASS_EVAL_MAX_DRAFTS) : 0;
    int ns = split(scopy, sl, HASS_EVAL_MAX_SUITES), nt = split(tcopy, tl, HASS_EVAL_MAX_TEMPS);
    int rc = 2;
    hass_eval_suite suites[HASS_EVAL_MAX_SUITES];
    int n_loaded = 0;
    hass_session *ses = NULL;
    hass_draft *drs[HASS_EVAL_MAX_DRAFTS] = {0};
    char dnames[HASS_EVAL_MAX_DRAFTS][64];
    char *info = NULL, *cpu = NULL;
    hass_err err = {0};
    hass_eval_opts o = hass_eval_opts_default();
    if (ncopy && nn != nd) {
        cli_fail(2, "eval: %d names for %d drafts", nn, nd);
        goto done;
    }
    if (nd < 1 || ns < 1 || nt < 1 || nd > HASS_EVAL_MAX_DRAFTS || nn > HASS_EVAL_MAX_DRAFTS ||
        ns > HASS_EVAL_MAX_SUITES || nt > HASS_EVAL_MAX_TEMPS) {
        cli_fail(2, "eval: --drafts (1..%d), --suite (1..%d) and -t (1..%d) entries",
                 HASS_EVAL_MAX_DRAFTS, HASS_EVAL_MAX_SUITES, HASS_EVAL_MAX_TEMPS);
        goto done;
    }
    for (int i = 0; i < nt; i++) {
        double t;
        if (cli_parse_float("-t", tl[i], 0, 100, &t))
            goto done;
        o.temps[o.n_temps++] = (float)t;
    }
    rc = 1;
    for (int i = 0; i < ns; i++) {
        char pbuf[1200], name[64];
        const char *p = suite_path(sl[i], pbuf, sizeof pbuf);
        stem(sl[i], name, sizeof name);
        if (hass_eval_suite_load(&suites[n_loaded], name, p, (int)limit, &err)) {
            cli_fail(1, "%s", err.msg);
            goto done;
        }
        n_loaded++;
    }
    g.model = model;
    if (!(ses = cli_session_open(&g, &rc))) /* the target and its tokenizer; no draft */
        goto done;
    rc = 1;
    for (int i = 0; i < nd; i++) {
        if (!(drs[i] = hass_draft_load(dl[i], ses->m, &err))) {
            cli_fail(1, "%s", err.msg);
            goto done;
        }
        if (ncopy)
            snprintf(dnames[i], sizeof dnames[i], "%s", nl[i]);
        else {
            size_t len = strlen(dl[i]);
            while (len > 1 && dl[i][len - 1] == '/')
                dl[i][--len] = 0;
            stem(dl[i], dnames[i], sizeof dnames[i]);
        }
        o.drafts[i] = drs[i], o.draft_names[i] = dnames[i];
    }
    o.n_drafts = nd;
    o.m = ses->m, o.tok = ses->tok, o.pool = ses->pool;
    o.suites = suites, o.n_suites = n_loaded;
    o.max_new = g.gen.max_new_tokens, o.ctx = g.open.ctx, o.chat = chat;
    hass_gen_params gp = hass_gen_params_of(&g.gen);
    o.tree = gp.tree;
    o.top_p = gp.sampling.top_p, o.top_k = gp.sampling.top_k, o.seed = gp.sampling.seed;
    o.dist_prompts = (int)dist_p, o.dist_reps = (int)dist_r;
    o.out_dir = out;
    /* what the report says about the run */
    cJSON *j = cJSON_CreateObject();
    cpu = cpu_model();
    cJSON_AddStringToObject(j, "cpu", cpu);
    cJSON_AddStringToObject(j, "kernels", hass_cpu_isa_name());
    cJSON_AddNumberToObject(j, "threads", hass_pool_size(ses->pool));
    cJSON_AddStringToObject(j, "commit", cli_commit());
    cJSON_AddStringToObject(j, "model", model);
    cJSON_AddNumberToObject(j, "model_weight_bytes", (double)ses->m->weight_bytes);
    cJSON *dj = cJSON_AddArrayToObject(j, "drafts");
    for (int i = 0; i < nd; i++)
        cJSON_AddItemToArray(dj, cJSON_CreateString(dl[i]));
    char date[64];
    time_t now = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", gmtime(&now));
    cJSON_AddStringToObject(j, "date", date);
    cJSON_AddNumberToObject(j, "tree_depth", (double)o.tree.depth);
    cJSON_AddNumberToObject(j, "tree_topk", (double)o.tree.topk);
    cJSON_AddStringToObject(j, "tree_tokens", o.tree.tokens ? "fixed" : "auto (cost model)");
    info = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    o.info_json = info;
    hass_eval_report rep;
    if (hass_eval_run(&o, &rep, &err)) {
        cli_fail(1, "%s", err.msg);
        goto done;
    }
    char md[1200];
    snprintf(md, sizeof md, "%s/results.md", out);
    char *txt = NULL;
    if (!hass_read_file(md, &txt, NULL, NULL))
        fputs(txt, stdout);
    free(txt);
    fprintf(stderr, "hass: eval: %lld of %lld items run now (%.0f s)%s -> %s/report.html\n",
            (long long)rep.items_done, (long long)rep.items_total, rep.seconds,
            rep.identical ? "" : "; SOME SPECULATIVE OUTPUTS DIFFER FROM PLAIN DECODING", out);
    rc = rep.identical ? 0 : 1;
done:
    for (int i = 0; i < n_loaded; i++)
        hass_eval_suite_free(&suites[i]);
    for (int i = 0; i < nd && i < HASS_EVAL_MAX_DRAFTS; i++)
        hass_draft_free(drs[i]);
    hass_close(ses);
    free(dcopy), free(ncopy), free(scopy), free(tcopy), free(info), free(cpu);
    return rc;
}
