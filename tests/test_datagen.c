/*
 * test_datagen.c — hass datagen and the feature shards on a small synthetic target with the
 * tok512 tokenizer: shard contents equal a direct forward (features bit-for-bit after bf16
 * rounding, ids, masks) for ShareGPT / instruction / prompt-list inputs, greedy regeneration
 * is the target's argmax, chat masks cover the answers, an interrupted run resumes to the same
 * files, and malformed inputs / shards / stores for another model are rejected.
 */
#include "check.h"
#include "model/model.h"
#include "train/datagen.h"
#include "train/featstore.h"

#include <stdint.h>
#include <unistd.h>

static void write_text(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

static hass_model *make_model(uint64_t seed) {
    hass_model_config c = hass_model_config_make(32, 64, 2, 4, 2, 512, 256);
    c.bos = 1;
    c.stop_ids[0] = 2;
    c.n_stop = 1;
    hass_err err = {0};
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, seed, &err);
    if (!m)
        fprintf(stderr, "synthetic model: %s\n", err.msg);
    return m;
}

/* Direct forward of ids: features (n, d) rounded through bf16; logits (n, V) if wanted. */
static void direct_forward(const hass_model *m, const int32_t *ids, int64_t n, float *feat,
                           float *logits) {
    hass_kv kv;
    hass_err err = {0};
    HASS_ASSERT(hass_kv_init(&kv, m, 256, 256, NULL, &err) == HASS_OK);
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    for (int64_t i = 0; i < n; i++)
        pos[i] = (int32_t)i;
    HASS_ASSERT(hass_model_forward(m, &kv, NULL, n, ids, pos, NULL, logits, 0, feat, &err) ==
                HASS_OK);
    for (int64_t k = 0; feat && k < n * m->cfg.d; k++)
        feat[k] = hass_bf16_to_f32(hass_f32_to_bf16(feat[k]));
    free(pos);
    hass_kv_free(&kv);
}

static hass_status run_dg(const hass_model *m, const hass_tokenizer *tok, const char *data,
                          const char *out, hass_datagen_opts *o, hass_datagen_report *r,
                          hass_err *err) {
    o->data_path = check_path(data);
    o->model_path = "synthetic";
    memset(err, 0, sizeof *err);
    return hass_datagen_run(m, tok, NULL, check_path(out), o, r, err);
}

/* Every stored sequence's features equal a direct forward of its ids. */
static void check_store_features(const hass_model *m, const char *dir) {
    hass_err err = {0};
    hass_featstore *fs = hass_featstore_open(check_path(dir), m, &err);
    CHECK_MSG(fs != NULL, "%s", err.msg);
    if (!fs)
        return;
    int64_t d = m->cfg.d;
    for (int64_t s = 0; s < hass_featstore_count(fs); s++) {
        int64_t L = hass_featstore_len(fs, s);
        int32_t *ids = malloc((size_t)L * 4);
        uint8_t *mk = malloc((size_t)L);
        float *f = malloc((size_t)(L * d) * 4), *ref = malloc((size_t)(L * d) * 4);
        CHECK_EQ_INT(hass_featstore_read(fs, s, 1 << 20, ids, mk, f), L);
        direct_forward(m, ids, L, ref, NULL);
        CHECK_BITEQ(f, ref, L * d, "stored features == direct forward (bf16)");
        free(ids);
        free(mk);
        free(f);
        free(ref);
    }
    hass_featstore_close(fs);
}

static int64_t enc(const hass_tokenizer *tok, const char *s, int32_t *out) {
    hass_err err = {0};
    return hass_tokenizer_encode(tok, s, strlen(s), 0, 0, out, 512, &err);
}

static void test_sharegpt(const hass_model *m, const hass_tokenizer *tok) {
    write_text(check_path("sg.json"),
               "[{\"conversations\": [{\"from\": \"system\", \"value\": \"Be kind.\"},"
               " {\"from\": \"human\", \"value\": \"Tell me about a cat.\"},"
               " {\"from\": \"gpt\", \"value\": \"The cat sat on the mat.\"},"
               " {\"from\": \"human\", \"value\": \"And then?\"},"
               " {\"from\": \"gpt\", \"value\": \"It slept.\"}]},"
               " {\"conversations\": [{\"from\": \"human\", \"value\": \"Hi\"},"
               " {\"from\": \"gpt\", \"value\": \"Hello there, friend.\"}]}]");
    hass_datagen_opts o = hass_datagen_opts_default();
    hass_datagen_report r;
    hass_err err;
    hass_status st = run_dg(m, tok, "sg.json", "sg", &o, &r, &err);
    CHECK_MSG(st == HASS_OK, "%s", err.msg);
    CHECK_EQ_INT(r.sequences, 2);
    CHECK(r.complete);
    /* expected first sequence: BOS + each message, mask on the two answers */
    const char *msgs[5] = {"Be kind.", "Tell me about a cat.", "The cat sat on the mat.",
                           "And then?", "It slept."};
    int32_t exp[512], tmp[512];
    uint8_t em[512];
    int64_t n = 0;
    exp[n] = 1;
    em[n++] = 0;
    for (int k = 0; k < 5; k++) {
        int64_t c = enc(tok, msgs[k], tmp);
        for (int64_t i = 0; i < c; i++) {
            exp[n] = tmp[i];
            em[n++] = (uint8_t)(k == 2 || k == 4);
        }
    }
    hass_featstore *fs = hass_featstore_open(check_path("sg"), m, &err);
    CHECK_MSG(fs != NULL, "%s", err.msg);
    if (fs) {
        int32_t ids[512];
        uint8_t mk[512];
        CHECK_EQ_INT(hass_featstore_len(fs, 0), n);
        int64_t L = hass_featstore_read(fs, 0, 512, ids, mk, NULL);
        CHECK(L == n && !memcmp(ids, exp, (size_t)n * 4));
        CHECK(L == n && !memcmp(mk, em, (size_t)n));
        hass_featstore_close(fs);
    }
    /* the corpus's {"messages": [{"role", "content"}]} form is the same conversation */
    write_text(check_path("msg.jsonl"),
               "{\"messages\": [{\"role\": \"system\", \"content\": \"Be kind.\"},"
               " {\"role\": \"user\", \"content\": \"Tell me about a cat.\"},"
               " {\"role\": \"assistant\", \"content\": \"The cat sat on the mat.\"},"
               " {\"role\": \"user\", \"content\": \"And then?\"},"
               " {\"role\": \"assistant\", \"content\": \"It slept.\"}], \"source\": \"x\"}\n");
    st = run_dg(m, tok, "msg.jsonl", "msg", &o, &r, &err);
    CHECK_MSG(st == HASS_OK, "%s", err.msg);
    fs = hass_featstore_open(check_path("msg"), m, &err);
    CHECK_MSG(fs != NULL, "%s", err.msg);
    if (fs) {
        int32_t ids[512];
        uint8_t mk[512];
        int64_t L = hass_featstore_read(fs, 0, 512, ids, mk, NULL);
        CHECK(L == n && !memcmp(ids, exp, (size_t)n * 4) && !memcmp(mk, em, (size_t)n));
        hass_featstore_close(fs);
    }
    check_store_features(m, "sg");
    /* chat template: the answer spans decode to text holding the answers */
    o = hass_datagen_opts_default();
    o.chat = 1;
    st = run_dg(m, tok, "sg.json", "sgchat", &o, &r, &err);
    CHECK_MSG(st == HASS_OK, "%s", err.msg);
    fs = hass_featstore_open(check_path("sgchat"), m, &err);
    CHECK_MSG(fs != NULL, "%s", err.msg);
    if (fs) {
        int32_t ids[512], ans[512];
        uint8_t mk[512];
        int64_t L = hass_featstore_read(fs, 0, 512, ids, mk, NULL), na = 0, spans = 0;
        for (int64_t i = 0; i < L; i++) {
            if (mk[i])
                ans[na++] = ids[i];
            spans += mk[i] && (i == 0 || !mk[i - 1]);
        }
        char *txt = hass_tokenizer_decode(tok, ans, na, 1, NULL);
        CHECK_MSG(txt && strstr(txt, "The cat sat on the mat.") && strstr(txt, "It slept."),
                  "masked text '%s'", txt ? txt : "(null)");
        CHECK_MSG(txt && !strstr(txt, "Tell me"), "user text masked: '%s'", txt ? txt : "");
        CHECK_EQ_INT(spans, 2);
        free(txt);
        hass_featstore_close(fs);
    }
    check_store_features(m, "sgchat");
}

static void test_instruct(const hass_model *m, const hass_tokenizer *tok) {
    write_text(check_path("ins.json"),
               "[{\"instruction\": \"Add the numbers.\", \"input\": \"2 and 3\", \"output\": "
               "\"The sum is 5.\"}, {\"instruction\": \"Say hi.\", \"input\": \"\", "
               "\"response\": \"Hi!\"}]");
    hass_datagen_opts o = hass_datagen_opts_default();
    hass_datagen_report r;
    hass_err err;
    CHECK(run_dg(m, tok, "ins.json", "ins", &o, &r, &err) == HASS_OK);
    CHECK_EQ_INT(r.sequences, 2);
    int32_t tmp[512];
    /* masked positions with a successor: the answers minus each sequence's last token */
    CHECK_EQ_INT(r.masked, enc(tok, "The sum is 5.", tmp) + enc(tok, "Hi!", tmp) - 2);
    check_store_features(m, "ins");
}

static void test_prompts_regen(const hass_model *m, const hass_tokenizer *tok) {
    write_text(check_path("p.jsonl"), "{\"prompt\": \"Once upon a time\"}\n"
                                      "{\"turns\": [\"The dog ran\"]}\n"
                                      "{\"question\": \"Lily saw a bird\"}\n");
    hass_datagen_opts o = hass_datagen_opts_default();
    o.max_new = 8;
    hass_datagen_report r;
    hass_err err;
    CHECK_MSG(run_dg(m, tok, "p.jsonl", "p", &o, &r, &err) == HASS_OK, "%s", err.msg);
    CHECK_EQ_INT(r.sequences, 3);
    hass_featstore *fs = hass_featstore_open(check_path("p"), m, &err);
    if (!fs)
        return;
    const char *pr[3] = {"Once upon a time", "The dog ran", "Lily saw a bird"};
    int64_t V = m->cfg.V;
    float *logits = malloc((size_t)(512 * V) * 4);
    for (int s = 0; s < 3; s++) {
        int32_t ids[512], tmp[512];
        uint8_t mk[512];
        int64_t L = hass_featstore_read(fs, s, 512, ids, mk, NULL);
        int64_t np = 1 + enc(tok, pr[s], tmp);
        CHECK(L > np && L <= np + 8);
        CHECK(ids[0] == 1 && !memcmp(ids + 1, tmp, (size_t)(np - 1) * 4));
        direct_forward(m, ids, L, NULL, logits);
        int ok = 1;
        for (int64_t i = 0; i < L; i++) {
            ok &= mk[i] == (i >= np);
            if (i >= np) { /* greedy: each generated token is the argmax after its prefix */
                const float *lg = logits + (i - 1) * V;
                int64_t best = 0;
                for (int64_t v = 1; v < V; v++)
                    best = lg[v] > lg[best] ? v : best;
                ok &= ids[i] == (int32_t)best;
            }
        }
        CHECK_MSG(ok, "sequence %d: mask on generated tokens only, greedy tokens", s);
    }
    free(logits);
    hass_featstore_close(fs);
    check_store_features(m, "p");
}

static void test_resume(const hass_model *m, const hass_tokenizer *tok) {
    write_text(check_path("r.txt"), "Once upon a time\nThe dog ran\nLily saw a bird\n"
                                    "Tom had a ball\nThe sun was hot\nA big tree\n");
    hass_datagen_opts o = hass_datagen_opts_default();
    o.max_new = 10;
    o.temperature = 1.0f;
    o.seed = 7;
    o.shard_tokens = 20; /* about one sequence per shard */
    hass_datagen_report r;
    hass_err err;
    CHECK(run_dg(m, tok, "r.txt", "rA", &o, &r, &err) == HASS_OK);
    o.stop_after_shards = 2;
    CHECK(run_dg(m, tok, "r.txt", "rB", &o, &r, &err) == HASS_OK);
    CHECK(!r.complete && r.records_done < 6);
    o.stop_after_shards = 0;
    CHECK(run_dg(m, tok, "r.txt", "rB", &o, &r, &err) == HASS_OK);
    CHECK(r.complete);
    CHECK(check_same_file(check_path("rA/index.json"), check_path("rB/index.json")));
    int same = 1, n = 0;
    for (int s = 0; s < 16; s++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "rA/shard-%05d.bin", s);
        snprintf(b, sizeof b, "rB/shard-%05d.bin", s);
        if (!hass_file_exists(check_path(a)))
            break;
        n++;
        same &= check_same_file(check_path(a), check_path(b));
    }
    CHECK(n >= 3 && same);
    /* a third run is a no-op; another seed is refused */
    CHECK(run_dg(m, tok, "r.txt", "rB", &o, &r, &err) == HASS_OK && r.sequences == 0);
    o.seed = 8;
    CHECK(run_dg(m, tok, "r.txt", "rB", &o, &r, &err) == HASS_STATUS_ARG);
    CHECK(strstr(err.msg, "different arguments") != NULL);
}

static void expect_fail(const hass_model *m, const hass_tokenizer *tok, const char *content,
                        hass_dg_format fmt, const char *needle) {
    write_text(check_path("bad.json"), content);
    hass_datagen_opts o = hass_datagen_opts_default();
    o.format = fmt;
    hass_datagen_report r;
    hass_err err;
    hass_status st = run_dg(m, tok, "bad.json", "bad", &o, &r, &err);
    CHECK_MSG(st == HASS_STATUS_FORMAT && strstr(err.msg, needle), "input %.40s: status %d, '%s'",
              content, st, err.msg);
}

static void patch_byte(const char *path, long off, int val) {
    FILE *f = fopen(path, "r+b");
    fseek(f, off, SEEK_SET);
    fputc(val, f);
    fclose(f);
}

static void test_malformed(const hass_model *m, const hass_tokenizer *tok) {
    expect_fail(m, tok, "[{\"conversations\": [", HASS_DG_AUTO, "bad JSON");
    expect_fail(m, tok, "{\"prompt\": \"a\"}\n{\"prompt\": \n", HASS_DG_AUTO, "line 2");
    expect_fail(m, tok, "[{\"foo\": 1}]", HASS_DG_AUTO, "record 1");
    expect_fail(m, tok, "[{\"conversations\": [{\"from\": \"robot\", \"value\": \"x\"}]}]",
                HASS_DG_AUTO, "unknown role");
    expect_fail(m, tok, "[{\"conversations\": [{\"from\": \"human\", \"value\": 3}]}]",
                HASS_DG_AUTO, "'from' and 'value'");
    expect_fail(m, tok, "[{\"instruction\": \"x\"}]", HASS_DG_INSTRUCT, "'output'");
    expect_fail(m, tok, "[{\"prompt\": \"x\"}]", HASS_DG_SHAREGPT, "conversations");
    expect_fail(m, tok, "just text\n", HASS_DG_SHAREGPT, "expected a JSON array");
    expect_fail(m, tok, "[]", HASS_DG_AUTO, "no records");

    /* shards: wrong magic, wrong version, truncated, another model, bad index */
    hass_err err = {0};
    hass_featstore *fs;
    const char *sh = check_path("p/shard-00000.bin");
    char *orig = NULL;
    size_t n = 0;
    HASS_ASSERT(hass_read_file(sh, &orig, &n, &err) == HASS_OK);
    patch_byte(sh, 0, 'X');
    fs = hass_featstore_open(check_path("p"), m, &err);
    CHECK(!fs && err.code == HASS_STATUS_FORMAT && strstr(err.msg, "magic"));
    hass_write_file_atomic(sh, orig, n, &err);
    patch_byte(sh, 8, 9);
    fs = hass_featstore_open(check_path("p"), m, &err);
    CHECK(!fs && err.code == HASS_STATUS_FORMAT && strstr(err.msg, "version"));
    hass_write_file_atomic(sh, orig, n - 7, &err);
    fs = hass_featstore_open(check_path("p"), m, &err);
    CHECK(!fs && err.code == HASS_STATUS_FORMAT && strstr(err.msg, "truncated"));
    hass_write_file_atomic(sh, orig, n, &err);
    patch_byte(sh, 40, 0xff); /* the first sequence length becomes huge */
    fs = hass_featstore_open(check_path("p"), m, &err);
    CHECK(!fs && err.code == HASS_STATUS_FORMAT);
    hass_write_file_atomic(sh, orig, n, &err);
    fs = hass_featstore_open(check_path("p"), m, &err);
    CHECK(fs != NULL);
    hass_featstore_close(fs);
    free(orig);
    hass_model *other = make_model(99);
    fs = hass_featstore_open(check_path("p"), other, &err);
    CHECK(!fs && err.code == HASS_STATUS_SHAPE && strstr(err.msg, "another model"));
    hass_datagen_opts o = hass_datagen_opts_default();
    o.max_new = 8;
    hass_datagen_report r;
    CHECK(run_dg(other, tok, "p.jsonl", "p", &o, &r, &err) == HASS_STATUS_ARG);
    hass_model_free(other);
    write_text(check_path("p/index.json"), "{\"format\": \"hass-features\", \"version\": 1");
    fs = hass_featstore_open(check_path("p"), m, &err);
    CHECK(!fs && err.code == HASS_STATUS_FORMAT);
    write_text(check_path("p/index.json"), "{\"format\": \"hass-features\", \"version\": 2}");
    fs = hass_featstore_open(check_path("p"), m, &err);
    CHECK(!fs && strstr(err.msg, "version 2"));
    fs = hass_featstore_open(check_path("missing"), m, &err);
    CHECK(!fs && err.code == HASS_STATUS_IO);
}

int main(void) {
    check_init("test_datagen");
    const char *tokp = check_shared("models/tok512.bin");
    if (!tokp) {
        CHECK_SKIP("models/tok512.bin not present");
        return check_exit();
    }
    hass_err err = {0};
    hass_tokenizer *tok = hass_tokenizer_load_bin(tokp, 512, &err);
    hass_model *m = make_model(1);
    CHECK(tok && m);
    if (tok && m) {
        test_sharegpt(m, tok);
        test_instruct(m, tok);
        test_prompts_regen(m, tok);
        test_resume(m, tok);
        test_malformed(m, tok);
    }
    hass_model_free(m);
    hass_tokenizer_free(tok);
    return check_exit();
}
