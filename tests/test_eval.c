/*
 * test_eval.c — `hass eval` (src/eval): prompt suites (every accepted shape, bad lines named,
 * limits), the chi-square tail against tabulated values, a smoke evaluation of stories260K with
 * the two drafts in models/ (T = 0 and 1, two prompts: every output file, the lossless flag, the
 * distribution check, resuming does not rerun finished items), and the report rendered by
 * headless Chromium (screenshot not blank, the plots in the DOM) where Chromium is installed.
 */
#include "check.h"
#include "eval/eval.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_text(const char *path, const char *text) {
    HASS_ASSERT(check_write(path, "wb", text, -1) == 0);
}

static char *slurp(const char *path) {
    long n = 0;
    return check_read(path, &n);
}

static int count_lines(const char *path) {
    char *s = slurp(path);
    int n = 0;
    for (char *p = s; p && *p; p++)
        n += *p == '\n';
    free(s);
    return n;
}

static void test_suites(void) {
    hass_eval_suite s;
    hass_err err = {0};
    write_text(check_path("a.jsonl"), "{\"turns\": [\"one\", \"two\"], \"question_id\": 1}\n\n"
                                      "{\"prompt\": \"three\"}\n{\"question\": \"four\"}\n");
    CHECK_EQ_INT(hass_eval_suite_load(&s, "a", check_path("a.jsonl"), 0, &err), HASS_OK);
    CHECK(s.n == 3 && s.q[0].n_turns == 2 && !strcmp(s.q[0].turns[1], "two") &&
          s.q[1].n_turns == 1 && !strcmp(s.q[2].turns[0], "four") && !strcmp(s.name, "a"));
    hass_eval_suite_free(&s);
    CHECK_EQ_INT(hass_eval_suite_load(&s, "a", check_path("a.jsonl"), 2, &err), HASS_OK);
    CHECK_EQ_INT(s.n, 2);
    hass_eval_suite_free(&s);
    write_text(check_path("b.jsonl"), "{\"prompt\": \"ok\"}\n{\"turns\": [1]}\n");
    CHECK_EQ_INT(hass_eval_suite_load(&s, "b", check_path("b.jsonl"), 0, &err), HASS_STATUS_FORMAT);
    CHECK(strstr(err.msg, "b.jsonl:2:") != NULL);
    write_text(check_path("c.jsonl"), "\n\n");
    CHECK_EQ_INT(hass_eval_suite_load(&s, "c", check_path("c.jsonl"), 0, &err), HASS_STATUS_FORMAT);
    CHECK(hass_eval_suite_load(&s, "d", check_path("nonexistent.jsonl"), 0, &err) != HASS_OK);
}

static void test_chi2(void) {
    /* tabulated upper 5% / 1% points */
    CHECK(fabs(hass_eval_chi2_sf(3.841, 1) - 0.05) < 1e-3);
    CHECK(fabs(hass_eval_chi2_sf(5.991, 2) - 0.05) < 1e-3);
    CHECK(fabs(hass_eval_chi2_sf(18.307, 10) - 0.05) < 1e-3);
    CHECK(fabs(hass_eval_chi2_sf(23.209, 10) - 0.01) < 1e-3);
    CHECK(fabs(hass_eval_chi2_sf(124.342, 100) - 0.05) < 1e-3);
    CHECK(hass_eval_chi2_sf(0, 3) == 1.0 && hass_eval_chi2_sf(1e4, 3) < 1e-100);
}

static void test_run(void) {
    const char *mp = check_shared("models/stories260K.bin"),
               *tp = check_shared("models/tok512.bin");
    if (!mp || !tp || access("models/stories260K-hass/config.json", R_OK)) {
        CHECK_SKIP("stories260K (../shared) or models/stories260K-* absent");
        return;
    }
    hass_err err = {0};
    hass_model *m = hass_model_load(mp, &err);
    hass_tokenizer *tok = hass_tokenizer_load_bin(tp, m ? (int32_t)m->cfg.V : 0, &err);
    hass_draft *de = m ? hass_draft_load("models/stories260K-eagle", m, &err) : NULL;
    hass_draft *dh = m ? hass_draft_load("models/stories260K-hass", m, &err) : NULL;
    hass_pool *pool = hass_pool_create(2);
    CHECK(m && tok && de && dh);
    if (!m || !tok || !de || !dh)
        goto out;
    write_text(check_path("p.jsonl"),
               "{\"turns\": [\"Once upon a time\", \"Then\"]}\n"
               "{\"prompt\": \"The little dog\"}\n{\"prompt\": \"unused\"}\n");
    hass_eval_suite s;
    CHECK_EQ_INT(hass_eval_suite_load(&s, "stories", check_path("p.jsonl"), 2, &err), HASS_OK);
    hass_eval_opts o = hass_eval_opts_default();
    o.m = m, o.tok = tok, o.pool = pool;
    o.drafts[0] = de, o.drafts[1] = dh, o.draft_names[0] = "eagle", o.draft_names[1] = "hass";
    o.n_drafts = 2;
    o.suites = &s, o.n_suites = 1;
    o.temps[0] = 0.0f, o.temps[1] = 1.0f, o.n_temps = 2;
    o.max_new = 24, o.chat = 0, o.dist_prompts = 1, o.dist_reps = 8;
    o.tree = (hass_tree_params){4, 4, 8}; /* a fixed tree: drafting really happens */
    static char outdir[512];
    snprintf(outdir, sizeof outdir, "%s", check_path("ev"));
    o.out_dir = outdir;
    o.info_json = "{\"cpu\": \"test\", \"commit\": \"x\"}";
    hass_eval_report rep;
    CHECK_EQ_INT(hass_eval_run(&o, &rep, &err), HASS_OK);
    CHECK_EQ_INT(rep.items_total, 6); /* 3 turns x 2 temperatures */
    CHECK_EQ_INT(rep.items_done, 6);
    CHECK(rep.identical);
    CHECK_EQ_INT(count_lines(check_path("ev/runs.jsonl")), 18); /* x 3 methods */
    const char *files[] = {"results.json", "results.md",  "speedup.svg",      "tau.svg",
                           "accept.svg",   "report.html", "distribution.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char f[64];
        snprintf(f, sizeof f, "ev/%s", files[i]);
        CHECK_MSG(access(check_path(f), R_OK) == 0, "%s written", files[i]);
    }
    char *rj = slurp(check_path("ev/results.json"));
    cJSON *r = rj ? cJSON_Parse(rj) : NULL;
    CHECK(r != NULL);
    const cJSON *c;
    int cells = 0, lossless = 0, drafted = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r, "cells")) {
        cells++;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "identical");
        lossless += cJSON_IsTrue(id);
        drafted += cJSON_GetObjectItemCaseSensitive(c, "tau")->valuedouble > 1.0;
    }
    CHECK_EQ_INT(cells, 3 * 2 * 2); /* methods x (family + all) x temperatures */
    CHECK_EQ_INT(lossless, 2 * 2);  /* the drafts at T = 0, family and all */
    CHECK(drafted >= 4);
    CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "distribution")),
                 2 * 1 * 3); /* drafts x prompts x positions */
    CHECK(
        !strcmp(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "info"), "cpu")
                    ->valuestring,
                "test"));
    cJSON_Delete(r);
    free(rj);
    char *svg = slurp(check_path("ev/speedup.svg")), *html = slurp(check_path("ev/report.html"));
    CHECK(svg && !strncmp(svg, "<svg", 4) && strstr(svg, "</svg>") && !strstr(svg, "nan") &&
          !strstr(svg, "inf"));
    CHECK(html && strstr(html, "<table>") && strstr(html, "<svg") && !strstr(html, "<script"));
    free(svg), free(html);
    /* resuming: nothing is rerun, the results stay */
    CHECK_MSG(hass_eval_run(&o, &rep, &err) == HASS_OK, "%s", err.msg);
    CHECK_EQ_INT(rep.items_done, 0);
    CHECK_EQ_INT(count_lines(check_path("ev/runs.jsonl")), 18);
    /* a run cut in the middle of an item (a partial last line) resumes that item */
    HASS_ASSERT(check_write(check_path("ev/runs.jsonl"), "ab",
                            "{\"suite\": \"stories\", \"q\": 1, \"tu", -1) == 0);
    CHECK_EQ_INT(hass_eval_run(&o, &rep, &err), HASS_OK);
    CHECK_EQ_INT(rep.items_done, 0);
    hass_eval_suite_free(&s);

    /* the report in a browser */
    if (access("/usr/bin/chromium", X_OK)) {
        CHECK_SKIP("chromium not installed (make deps installs it): report rendering not checked");
        goto out;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "timeout 120 /usr/bin/chromium --headless --no-sandbox --disable-gpu --disable-quic "
             "--no-first-run --disable-background-networking --disable-component-update "
             "--disable-sync --user-data-dir=%s --window-size=1000,1400 --screenshot=%s "
             "file://%s >/dev/null 2>&1 && timeout 120 /usr/bin/chromium --headless --no-sandbox "
             "--disable-gpu --disable-background-networking --user-data-dir=%s --dump-dom "
             "file://%s > %s 2>/dev/null",
             check_path("chr1"), check_path("shot.png"), check_path("ev/report.html"),
             check_path("chr2"), check_path("ev/report.html"), check_path("dom.html"));
    int rc = system(cmd);
    struct stat sb;
    CHECK_MSG(rc == 0 && stat(check_path("shot.png"), &sb) == 0 && sb.st_size > 20000,
              "chromium screenshot of the report (rc %d)", rc);
    char *dom = slurp(check_path("dom.html"));
    CHECK(dom && strstr(dom, "<svg") && strstr(dom, "polyline") && strstr(dom, "speedup"));
    free(dom);
out:
    hass_draft_free(de), hass_draft_free(dh);
    hass_tokenizer_free(tok);
    hass_model_free(m);
    hass_pool_destroy(pool);
}

int main(void) {
    check_init("test_eval");
    test_suites();
    test_chi2();
    test_run();
    return check_exit();
}
