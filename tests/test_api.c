/*
 * test_api.c — the public header alone (include/hass.h): open stories260K, generate greedily
 * with and without a draft head, check the texts agree and that errors come back as codes.
 */
#include "hass.h"

#include "check.h"
#include "model/model.h"
#include "train/draft_ckpt.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char buf[8192];
    size_t len;
} text_buf;

static int collect(const char *t, size_t n, void *u) {
    text_buf *b = u;
    if (b->len + n < sizeof b->buf) {
        memcpy(b->buf + b->len, t, n);
        b->len += n;
        b->buf[b->len] = 0;
    }
    return 0;
}

int main(void) {
    check_init("test_api");
    const char *mp = check_shared("models/stories260K.bin"),
               *tp = check_shared("models/tok512.bin");
    char err[256];
    CHECK(hass_open("/nonexistent", NULL, NULL, 1, err, sizeof err) == NULL && err[0]);
    if (!mp || !tp) {
        CHECK_SKIP("stories260K not found");
        return check_exit();
    }
    /* a fresh draft head for the model, written through the internal API */
    const char *dir = check_path("draft");
    hass_err e2 = {0};
    hass_model *m = hass_model_load(mp, &e2);
    CHECK(m && hass_draft_write_fresh(dir, m, 0, 3, HASS_DTYPE_F32, "stories260K", &e2) == 0);
    hass_model_free(m);

    hass_session *s = hass_open(mp, tp, dir, 2, err, sizeof err);
    CHECK_MSG(s != NULL, "%s", err);
    if (s) {
        hass_options o = hass_options_default();
        o.max_new_tokens = 80;
        text_buf a = {{0}, 0}, b = {{0}, 0};
        hass_result r;
        o.speculative = 0;
        CHECK(hass_run(s, "Once upon a time", &o, collect, &a, &r, err, sizeof err) == 0);
        CHECK_EQ_INT(r.n_generated, 80);
        CHECK(strncmp(a.buf, ", there was a little girl named Lily", 36) == 0);
        o.speculative = 1;
        CHECK(hass_run(s, "Once upon a time", &o, collect, &b, &r, err, sizeof err) == 0);
        CHECK(a.len == b.len && !strcmp(a.buf, b.buf));
        int32_t ids[16];
        CHECK_EQ_INT(hass_tokenize_text(s, "Once upon a time", ids, 16, err, sizeof err), 5);
        o.top_p = 2;
        CHECK_EQ_INT(hass_run(s, "x", &o, NULL, NULL, NULL, err, sizeof err), 2);
        hass_close(s);
    }
    return check_exit();
}
