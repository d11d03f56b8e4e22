/*
 * test_hostile.c — hostile and broken input, by class: every member of a class of bad input is
 * refused with a one-line error (never an assertion, a hang or a silent default).
 */
#include "check.h"
#include "core/core.h"
#include "decode/decode.h"
#include "draft/draft.h"
#include "formats/formats.h"
#include "model/model.h"
#include "train/featstore.h"
#include "train/train_state.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- trainer state: metadata out of range, tensors of the wrong kind or not finite ---- */

#define NS 6

/* Writes a state with metadata md (a JSON object of strings) and the three tensors (element
 * count n, dtype dt; bad >= 0 puts value badv at params/adam_m/adam_v[bad / NS][bad % NS]),
 * then parses it with max_step 100. */
static hass_status state_case(const char *md, int64_t n, hass_dtype dt, int bad, float badv,
                              hass_train_state *s, hass_err *err) {
    static float a[3][NS + 1]; /* room for the wrong-size case */
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
    CHECK(state_case(md, NS + 1, HASS_DTYPE_F32, -1, 0, &s, &err) == HASS_STATUS_SHAPE);
    CHECK(state_case(md, NS, HASS_DTYPE_BF16, -1, 0, &s, &err) == HASS_STATUS_SHAPE);
    CHECK(state_case(md, -1, HASS_DTYPE_F32, -1, 0, &s, &err) == HASS_STATUS_SHAPE);
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

/* ---- feature stores: an index listing a shard twice, marked incomplete, counts that the
 * shards cannot hold, ids outside the vocabulary ---- */

#define FD 4
/* Writes dir/index.json (shards listed: the entries given) and dir/s0.bin holding two
 * sequences with the given first token id. */
static void make_store(const char *dir, const char *shards_json, int complete, int32_t id0,
                       float feat0) {
    mkdir(dir, 0755);
    char path[1100], idx[2048];
    snprintf(idx, sizeof idx,
             "{\"format\":\"hass-features\",\"version\":1,\"d\":%d,\"dtype\":\"bf16\","
             "\"model\":{\"path\":\"m\",\"fingerprint\":\"00000000000000aa\"},"
             "\"args\":\"a\",\"records_consumed\":2,\"complete\":%s,\"shards\":%s}",
             FD, complete ? "true" : "false", shards_json);
    snprintf(path, sizeof path, "%s/index.json", dir);
    CHECK(check_write(path, "wb", idx, -1) == 0);
    uint8_t buf[512];
    size_t n = 0;
    uint32_t u32[2] = {1, 2};
    int64_t i64[3] = {FD, 2, 0xaa};
    memcpy(buf, "HASSFEAT", 8), n = 8;
    memcpy(buf + n, u32, 8), n += 8;
    memcpy(buf + n, i64, 24), n += 24;
    for (int sq = 0; sq < 2; sq++) {
        int64_t len = 3;
        memcpy(buf + n, &len, 8), n += 8;
        int32_t ids[3] = {sq ? 5 : id0, 6, 7};
        memcpy(buf + n, ids, 12), n += 12;
        memset(buf + n, 1, 3), n += 3;
        for (int k = 0; k < 3 * FD; k++) {
            uint16_t h = hass_f32_to_bf16(k == 5 && !sq ? feat0 : 0.5f);
            memcpy(buf + n, &h, 2), n += 2;
        }
    }
    snprintf(path, sizeof path, "%s/s0.bin", dir);
    CHECK(check_write(path, "wb", buf, (long)n) == 0);
}

static void test_featstore(void) {
    hass_err err = {0};
    const char *one = "[{\"file\":\"s0.bin\",\"sequences\":2,\"tokens\":6}]";
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", check_path("fs"));
    make_store(dir, one, 1, 4, 0.5f);
    hass_featstore *fs = hass_featstore_open(dir, NULL, &err);
    CHECK_MSG(fs && hass_featstore_count(fs) == 2, "%s", err.msg);
    hass_featstore_close(fs);
    /* the class: each is refused by name, never read as something else */
    static const struct {
        const char *shards;
        int complete, allow;
        int32_t id0;
        const char *what;
    } bad[] = {
        {"[{\"file\":\"s0.bin\",\"sequences\":2,\"tokens\":6},"
         "{\"file\":\"s0.bin\",\"sequences\":2,\"tokens\":6}]",
         1, 0, 4, "listed twice"},
        {"[{\"file\":\"s0.bin\",\"sequences\":2,\"tokens\":6}]", 0, 0, 4, "incomplete"},
        {"[{\"file\":\"s0.bin\",\"sequences\":2000000000000,\"tokens\":6}]", 1, 0, 4, "can hold"},
        {"[{\"file\":\"s0.bin\",\"sequences\":2,\"tokens\":6}]", 1, 0, -3, "token id"},
        {"[{\"file\":\"s0.bin\",\"sequences\":2,\"tokens\":6,\"tokens\":7}]", 1, 0, 4, "twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        check_rmtree(dir);
        make_store(dir, bad[i].shards, bad[i].complete, bad[i].id0, 0.5f);
        fs = hass_featstore_open_ex(dir, NULL, bad[i].allow, &err);
        CHECK_MSG(!fs && err.code == HASS_STATUS_FORMAT && strstr(err.msg, bad[i].what),
                  "case %zu: %s", i, err.msg);
        hass_featstore_close(fs);
    }
    /* an incomplete store opens with the explicit flag */
    check_rmtree(dir);
    make_store(dir, one, 0, 4, 0.5f);
    fs = hass_featstore_open_ex(dir, NULL, 1, &err);
    CHECK_MSG(fs != NULL, "%s", err.msg);
    hass_featstore_close(fs);
    /* trailing garbage after the index's JSON */
    char path[1100];
    snprintf(path, sizeof path, "%s/index.json", dir);
    CHECK(check_write(path, "ab", "}", -1) == 0);
    CHECK(!hass_featstore_open_ex(dir, NULL, 1, &err) && strstr(err.msg, "trailing"));
}

/* ---- config.json: wrong types, out-of-range values, duplicate keys, trailing bytes ---- */
static void test_config_json(void) {
    const char *base = "\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,"
                       "\"intermediate_size\":128,\"num_hidden_layers\":2,"
                       "\"num_attention_heads\":4,\"vocab_size\":512";
    char js[1024];
    hass_model_config c;
    hass_err err = {0};
    snprintf(js, sizeof js, "{%s}", base);
    CHECK_MSG(hass_model_config_from_json(&c, js, &err) == HASS_OK, "%s", err.msg);
    static const char *const extra[] = {
        ",\"rms_norm_eps\":\"1e-5\"",            /* a string for a number */
        ",\"rms_norm_eps\":-1",                  /* out of range */
        ",\"rms_norm_eps\":2",                   /* out of range */
        ",\"max_position_embeddings\":1.5",      /* not an integer */
        ",\"max_position_embeddings\":\"4096\"", /* a string for an integer */
        ",\"max_position_embeddings\":-4",       /* out of range */
        ",\"tie_word_embeddings\":1",            /* a number for a boolean */
        ",\"num_key_value_heads\":3",            /* not a divisor of the heads */
        ",\"num_key_value_heads\":true",         /* a boolean for an integer */
        ",\"rope_theta\":\"big\"",
        ",\"rope_theta\":-5",
        ",\"rope_scaling\":7",
        ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}",
        ",\"bos_token_id\":512", /* outside the vocabulary */
        ",\"bos_token_id\":-1",
        ",\"bos_token_id\":1e300",
        ",\"eos_token_id\":[1,\"2\"]",
        ",\"eos_token_id\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20]",
        ",\"hidden_size\":64",  /* a duplicate key */
        ",\"hidden_size\":128", /* a duplicate key with another value */
        ",\"head_dim\":32",
        ",\"vocab_size\":0",
        NULL};
    for (int i = 0; extra[i]; i++) {
        snprintf(js, sizeof js, "{%s%s}", base, extra[i]);
        hass_status st = hass_model_config_from_json(&c, js, &err);
        CHECK_MSG(st != HASS_OK && err.msg[0] && !strchr(err.msg, '\n'), "%s accepted", extra[i]);
    }
    static const char *const trail[] = {"x", "}", "{}", ",", "\"a\"", NULL};
    for (int i = 0; trail[i]; i++) {
        snprintf(js, sizeof js, "{%s} %s", base, trail[i]);
        CHECK_MSG(hass_model_config_from_json(&c, js, &err) == HASS_STATUS_FORMAT,
                  "trailing %s accepted", trail[i]);
    }
    snprintf(js, sizeof js, "{%s} \n\t", base);
    CHECK(hass_model_config_from_json(&c, js, &err) == HASS_OK);
    int bias = 0;
    snprintf(js, sizeof js, "{%s,\"bias\":\"yes\"}", base);
    CHECK(hass_draft_config_from_json(js, &c, &bias, &err) == HASS_STATUS_FORMAT);
    snprintf(js, sizeof js, "{%s,\"bias\":false}", base);
    CHECK(hass_draft_config_from_json(js, &c, &bias, &err) == HASS_OK && bias == 0);
}

/* ---- files that are not regular files, or too large, or text with a NUL byte ---- */
static void test_files(void) {
    hass_err err = {0};
    char *buf = NULL;
    size_t n = 0;
    const char *fifo = check_path("fifo");
    CHECK(mkfifo(fifo, 0600) == 0);
    double t0 = hass_now();
    CHECK(hass_read_file(fifo, &buf, &n, &err) == HASS_STATUS_IO && strstr(err.msg, "regular"));
    hass_mapfile mf;
    CHECK(hass_mapfile_open(&mf, fifo, &err) == HASS_STATUS_IO);
    hass_file_kind k = hass_file_kind_of(fifo); /* probed without blocking */
    CHECK(k == HASS_FILE_MISSING || k == HASS_FILE_OTHER);
    CHECK(hass_read_file("/dev/zero", &buf, &n, &err) == HASS_STATUS_IO);
    CHECK(hass_mapfile_open(&mf, "/dev/zero", &err) == HASS_STATUS_IO);
    CHECK(hass_read_file(check_tmp(), &buf, &n, &err) == HASS_STATUS_IO);
    CHECK_MSG(hass_now() - t0 < 5.0, "refused at once, not after a wait");
    const char *p = check_path("big.txt");
    CHECK(check_write(p, "wb", "0123456789", -1) == 0);
    CHECK(hass_read_file_max(p, 9, &buf, &n, &err) == HASS_STATUS_RANGE);
    CHECK(hass_read_file_max(p, 10, &buf, &n, &err) == HASS_OK && n == 10 && buf[10] == 0);
    free(buf);
    CHECK(check_write(p, "wb", "ab\0cd", 5) == 0);
    CHECK(hass_read_text(p, 100, &buf, &n, &err) == HASS_STATUS_FORMAT &&
          strstr(err.msg, "offset 2"));
}

/* ---- leftovers of a killed write are removed by the next write of the same file ---- */
static void test_stale_temps(void) {
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    int ws;
    waitpid(child, &ws, 0); /* a pid that no longer runs */
    char stale[1100], live[1100], other[1100];
    snprintf(stale, sizeof stale, "%s.tmp.%d", check_path("out.bin"), (int)child);
    snprintf(live, sizeof live, "%s.tmp.1", check_path("out.bin")); /* init runs */
    snprintf(other, sizeof other, "%s.tmp.%d", check_path("else.bin"), (int)child);
    CHECK(check_write(stale, "wb", "x", -1) == 0 && check_write(live, "wb", "x", -1) == 0 &&
          check_write(other, "wb", "x", -1) == 0);
    hass_err err = {0};
    CHECK(hass_write_file_atomic(check_path("out.bin"), "abc", 3, &err) == HASS_OK);
    CHECK_MSG(access(stale, F_OK) != 0, "a dead writer's temporary file is removed");
    CHECK(access(live, F_OK) == 0 && access(other, F_OK) == 0);
}

/* ---- NaN weights in a target: an error at the first non-finite logit, not tokens ---- */
static void test_nan_target(void) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(32, 48, 1, 2, 1, 64, 128);
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, 3, &err);
    CHECK(m != NULL);
    if (!m)
        return;
    hass_engine *e = hass_engine_create(m, NULL, NULL, NULL, 64, &err);
    CHECK_MSG(e != NULL, "%s", err.msg);
    int32_t prompt[3] = {1, 5, 9}, out[8];
    hass_gen_params p = {0};
    p.max_new = 8;
    hass_gen_stats gs;
    CHECK(e && hass_generate(e, prompt, 3, &p, 0, NULL, NULL, out, &gs, &err) == HASS_OK);
    hass_engine_destroy(e);
    ((float *)m->final_norm)[3] = NAN; /* as if the file held a NaN */
    e = hass_engine_create(m, NULL, NULL, NULL, 64, &err);
    hass_status st = e ? hass_generate(e, prompt, 3, &p, 0, NULL, NULL, out, &gs, &err) : 0;
    CHECK_MSG(st == HASS_STATUS_RANGE && strstr(err.msg, "logit"), "%d %s", st, err.msg);
    hass_engine_destroy(e);
    hass_model_free(m);
}

int main(void) {
    check_init("test_hostile");
    test_nan_target();
    test_stale_temps();
    test_train_state();
    test_featstore();
    test_config_json();
    test_files();
    return check_exit();
}
