/*
 * test_hostile.c — hostile and broken input, by class: every member of a class of bad input is
 * refused with a one-line error (never an assertion, a hang or a silent default).
 */
#include "check.h"
#include "core/core.h"
#include "formats/formats.h"
#include "train/train_state.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- trainer state: metadata out of range, tensors of the wrong kind or not finite ---- */

#define NS 6

/* Writes a state with metadata md (a JSON object of strings) and the three tensors (element
 * count n, dtype dt; bad >= 0 puts value badv at params/adam_m/adam_v[bad / NS][bad % NS]),
 * then parses it with max_step 100. */
static hass_status state_case(const char *md, int64_t n, hass_dtype dt, int bad, float badv,
                              hass_train_state *s, hass_err *err) {
    static float a[3][NS];
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < NS; j++)
            a[i][j] = 0.25f * (float)(j + i);
    if (bad >= 0)
        a[bad / NS][bad % NS] = badv;
    const char *names[3] = {"params", "adam_m", "adam_v"};
    hass_tensor t[3];
    int nt = 0;
    for (int i = 0; i < 3; i++) {
        if (n < 0 && i == 2)
            break; /* adam_v missing */
        memset(&t[nt], 0, sizeof t[nt]);
        snprintf(t[nt].name, sizeof t[nt].name, "%s", names[i]);
        t[nt].dtype = dt;
        t[nt].ndim = 1;
        t[nt].shape[0] = n < 0 ? NS : n;
        t[nt].data = a[i];
        t[nt].nbytes = hass_dtype_bytes(dt, (size_t)t[nt].shape[0]);
        nt++;
    }
    const char *path = check_path("state.safetensors");
    CHECK(hass_safetensors_write(path, t, nt, md, err) == HASS_OK);
    long sz = 0;
    char *buf = check_read(path, &sz);
    float p[NS], m[NS], v[NS];
    hass_status st =
        hass_train_state_parse((const uint8_t *)buf, (size_t)sz, "state", 100, NS, p, m, v, s, err);
    if (!st)
        hass_train_state_free(s);
    free(buf);
    return st;
}

static void test_train_state(void) {
    hass_err err = {0};
    hass_train_state s;
    const char *ok = "{\"step\":\"7\",\"adam_t\":\"7\",\"epoch\":\"1\",\"cursor\":\"3\","
                     "\"rng\":\"00ff\",\"tokens\":\"12\",\"gemm\":\"f32\",\"config\":\"x=1\"}";
    CHECK_MSG(state_case(ok, NS, HASS_DTYPE_F32, -1, 0, &s, &err) == HASS_OK, "%s", err.msg);
    CHECK(s.step == 7 && s.epoch == 1 && s.cursor == 3 && s.rng == 0xff && s.tokens == 12);
    /* each metadata field out of range, of the wrong type, or disagreeing with another */
    static const char *const bad_md[] = {
        "{\"step\":\"-1\",\"adam_t\":\"-1\",\"config\":\"\"}",
        "{\"step\":\"101\",\"adam_t\":\"101\",\"config\":\"\"}", /* past max_step */
        "{\"step\":\"99999999999999999999\",\"adam_t\":\"1\",\"config\":\"\"}",
        "{\"step\":\"9223372036854775807\",\"adam_t\":\"9223372036854775807\",\"config\":\"\"}",
        "{\"step\":\"1e3\",\"adam_t\":\"1\",\"config\":\"\"}",
        "{\"step\":\" 3\",\"adam_t\":\"3\",\"config\":\"\"}",
        "{\"step\":\"+3\",\"adam_t\":\"3\",\"config\":\"\"}",
        "{\"step\":\"\",\"adam_t\":\"0\",\"config\":\"\"}",
        "{\"step\":\"3\",\"adam_t\":\"4\",\"config\":\"\"}", /* adam_t disagrees */
        "{\"step\":\"3\",\"adam_t\":\"-3\",\"config\":\"\"}",
        "{\"step\":\"3\",\"config\":\"\"}",
        "{\"adam_t\":\"3\",\"config\":\"\"}",
        "{\"step\":\"3\",\"adam_t\":\"3\"}",
        "{\"step\":\"3\",\"adam_t\":\"3\",\"epoch\":\"-1\",\"config\":\"\"}",
        "{\"step\":\"3\",\"adam_t\":\"3\",\"cursor\":\"x\",\"config\":\"\"}",
        "{\"step\":\"3\",\"adam_t\":\"3\",\"tokens\":\"9999999999999999999\",\"config\":\"\"}",
        "{\"step\":\"3\",\"adam_t\":\"3\",\"rng\":\"0x12\",\"config\":\"\"}",
        "{\"step\":\"3\",\"adam_t\":\"3\",\"rng\":\"11112222333344445\",\"config\":\"\"}",
        NULL};
    for (int i = 0; bad_md[i]; i++) {
        hass_status st = state_case(bad_md[i], NS, HASS_DTYPE_F32, -1, 0, &s, &err);
        CHECK_MSG(st == HASS_STATUS_FORMAT && err.msg[0] && !strchr(err.msg, '\n'),
                  "metadata %s: %d %s", bad_md[i], st, err.msg);
    }
    const char *md = "{\"step\":\"3\",\"adam_t\":\"3\",\"config\":\"\"}";
    /* tensors of another size, type, or missing */
    CHECK(state_case(md, NS + 1, HASS_DTYPE_F32, -1, 0, &s, &err) == HASS_STATUS_FORMAT);
    CHECK(state_case(md, NS, HASS_DTYPE_BF16, -1, 0, &s, &err) == HASS_STATUS_FORMAT);
    CHECK(state_case(md, -1, HASS_DTYPE_F32, -1, 0, &s, &err) == HASS_STATUS_FORMAT);
    /* a NaN, an Inf, a negative second moment anywhere in any tensor */
    const float vals[3] = {NAN, -INFINITY, -1.0f};
    for (int v = 0; v < 3; v++)
        for (int at = 0; at < 3 * NS; at += 5) {
            hass_status st = state_case(md, NS, HASS_DTYPE_F32, at, vals[v], &s, &err);
            int want_bad = v < 2 || at >= 2 * NS;
            CHECK_MSG(want_bad ? st == HASS_STATUS_FORMAT && strstr(err.msg, "element")
                               : st == HASS_OK,
                      "value %g at %d: %s", (double)vals[v], at, err.msg);
        }
    /* every truncation of a good file */
    CHECK(state_case(ok, NS, HASS_DTYPE_F32, -1, 0, &s, &err) == HASS_OK);
    long sz = 0;
    char *buf = check_read(check_path("state.safetensors"), &sz);
    int all = 1;
    float p[NS], m[NS], v[NS];
    for (long k = 0; buf && k < sz; k++) {
        uint8_t *cut = malloc((size_t)k + 1);
        memcpy(cut, buf, (size_t)k);
        all &= hass_train_state_parse(cut, (size_t)k, "cut", 100, NS, p, m, v, &s, &err) != 0;
        free(cut);
    }
    CHECK_MSG(all, "every truncation of a trainer state is refused");
    free(buf);
}

int main(void) {
    check_init("test_hostile");
    test_train_state();
    return check_exit();
}
