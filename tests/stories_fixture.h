/*
 * stories_fixture.h — what the tests of the hass commands that serve text (serve, chat, the
 * openai client) start from: stories260K with its tokenizer from ../shared, the hass binary
 * beside the test's build folder, and a fresh draft head for it in the test's temporary folder.
 */
#ifndef HASS_STORIES_FIXTURE_H
#define HASS_STORIES_FIXTURE_H

#include "check.h"
#include "model/model.h"
#include "train/draft_ckpt.h"

#include <libgen.h>

static char hass_bin[1100], model[1100], tokp[1100], draft[1100];

/* Fills the paths and writes the draft; 0 (after a skip) without ../shared's stories260K. */
static inline int stories_fixture(const char *argv0) {
    const char *mp = check_shared("models/stories260K.bin"),
               *tp = check_shared("models/tok512.bin");
    if (!mp || !tp) {
        CHECK_SKIP("../shared/models/stories260K.bin not found");
        return 0;
    }
    snprintf(model, sizeof model, "%s", mp);
    snprintf(tokp, sizeof tokp, "%s", tp);
    char self[1024];
    snprintf(self, sizeof self, "%s", argv0);
    snprintf(hass_bin, sizeof hass_bin, "%s/../hass", dirname(self));
    snprintf(draft, sizeof draft, "%s/draft", check_tmp());
    hass_err err = {0};
    hass_model *m = hass_model_load(model, &err);
    CHECK(m &&
          hass_draft_write_fresh(draft, m, 0, 1, HASS_DTYPE_F32, "stories260K", &err) == HASS_OK);
    hass_model_free(m);
    return 1;
}

/* The stdout of a shell command, NULL if it failed (caller frees). */
static inline char *stories_run(const char *cmd) {
    FILE *f = popen(cmd, "r");
    if (!f)
        return NULL;
    char *b = NULL;
    size_t len = 0, k;
    char buf[4096];
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) {
        char *t = realloc(b, len + k + 1);
        if (!t)
            break;
        b = t;
        memcpy(b + len, buf, k);
        len += k;
        b[len] = 0;
    }
    if (pclose(f) != 0 || !b) {
        free(b);
        return NULL;
    }
    return b;
}

/* The tree the servers of these tests use: small, fixed, so that outputs do not depend on
 * timings (and fast under sanitizers). */
#define STORIES_TREE "--threads 1 --tree-depth 3 --tree-topk 4 --tree-tokens 4"

/* What `hass generate ARGS` prints with the draft and STORIES_TREE (its final newline
 * removed); NULL if it failed. */
static inline char *stories_generate(const char *args) {
    char cmd[6000];
    snprintf(cmd, sizeof cmd, "%s generate -m %s -z %s -d %s " STORIES_TREE " %s 2>/dev/null",
             hass_bin, model, tokp, draft, args);
    char *s = stories_run(cmd);
    size_t n = s ? strlen(s) : 0;
    if (n && s[n - 1] == '\n')
        s[n - 1] = 0;
    return s;
}

#endif
