/*
 * test_tokenizer.c — exactness of the tokenizers against reference id sequences:
 *   - shared/tokenizers/vectors_llama2.jsonl with llama2/tokenizer.json (HF rank BPE) and with
 *     the llama2.c tokenizer.bin (score BPE), both with and without special-token parsing;
 *   - vectors_llama3.jsonl with llama3/tokenizer.json (byte-level BPE, PCRE2 regex);
 *   - llama.cpp's ggml-vocab-llama-spm.gguf (+ .inp/.out) and ggml-vocab-llama-bpe .inp/.out;
 *   - stories260K's tok512.bin prompt ids from stories260K_golden.txt;
 * plus decode round trips, the streaming detokenizer's UTF-8 safety, chat templates, stop ids,
 * the encode capacity contract, corrupt files and a speed guard against quadratic merging.
 */
#include "check.h"
#include "tokenizer/tokenizer.h"

#include <cJSON.h>
#include <stdint.h>
#include <unistd.h>

/* ---------------- helpers ---------------- */

static int64_t enc(const hass_tokenizer *t, const char *s, size_t n, int bos, int special,
                   int32_t **out) {
    hass_err err = {0};
    int64_t k = hass_tokenizer_encode(t, s, n, bos, special, NULL, 0, &err);
    *out = NULL;
    if (k < 0) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        return k;
    }
    *out = malloc((size_t)(k + 1) * sizeof **out);
    int64_t k2 = hass_tokenizer_encode(t, s, n, bos, special, *out, k, &err);
    return k2 == k ? k : -1;
}

static int ids_equal(const int32_t *a, int64_t na, const cJSON *arr) {
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) != na)
        return 0;
    int64_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) if (a[i++] != (int32_t)e->valuedouble) return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *a, int64_t n) {
    fprintf(stderr, "    %s:", what);
    for (int64_t i = 0; i < n && i < 40; i++)
        fprintf(stderr, " %d", a[i]);
    fprintf(stderr, "\n");
}

static int utf8_valid(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        size_t l = c < 0x80                 ? 1
                   : c >= 0xc2 && c < 0xe0  ? 2
                   : c >= 0xe0 && c < 0xf0  ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;
        if (!l || i + l > n)
            return 0;
        for (size_t k = 1; k < l; k++)
            if (((uint8_t)s[i + k] & 0xc0) != 0x80)
                return 0;
        if ((c == 0xe0 && (uint8_t)s[i + 1] < 0xa0) || (c == 0xed && (uint8_t)s[i + 1] > 0x9f) ||
            (c == 0xf0 && (uint8_t)s[i + 1] < 0x90) || (c == 0xf4 && (uint8_t)s[i + 1] > 0x8f))
            return 0;
        i += l;
    }
    return 1;
}

/* Streams ids through hass_detok one by one: every chunk must be whole UTF-8 characters; the
 * concatenation must equal `want`. */
static int stream_ok(const hass_tokenizer *t, const int32_t *ids, int64_t n, int strip,
                     const char *want, size_t want_n) {
    hass_detok d;
    hass_detok_init(&d);
    d.first = strip;
    size_t cap = hass_tokenizer_detok_cap(t), total = 0;
    char *chunk = malloc(cap);
    char *all = malloc(want_n + cap * (size_t)(n + 1) + 1);
    int ok = 1;
    for (int64_t i = 0; i <= n; i++) {
        size_t w = i < n ? hass_detok_push(t, &d, ids[i], chunk, cap)
                         : hass_detok_flush(t, &d, chunk, cap);
        if (!utf8_valid(chunk, w))
            ok = 0;
        memcpy(all + total, chunk, w);
        total += w;
    }
    ok = ok && total == want_n && memcmp(all, want, want_n) == 0;
    free(chunk);
    free(all);
    return ok;
}

/* ---------------- JSONL vectors ---------------- */

typedef struct {
    const char *name;
    const hass_tokenizer *t;
    int specials_ok; /* compare `ids` (parse_special=1) */
    int spm;         /* round trip strips the dummy prefix and uses parse_special=0 */
} vec_ctx;

static void run_vectors(const char *path, const vec_ctx *c) {
    char *text = NULL;
    size_t size = 0;
    hass_err err = {0};
    if (hass_read_file(path, &text, &size, &err) != HASS_OK) {
        CHECK_SKIP(err.msg);
        return;
    }
    int lines = 0, bad_ids = 0, bad_ns = 0, bad_rt = 0, bad_stream = 0, n_ns = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *jt = cJSON_GetObjectItem(o, "text");
        if (!cJSON_IsString(jt)) {
            cJSON_Delete(o);
            continue;
        }
        const char *s = jt->valuestring;
        size_t n = strlen(s);
        int32_t *ids;
        int64_t k;
        lines++;
        if (c->specials_ok) {
            k = enc(c->t, s, n, 0, 1, &ids);
            if (!ids_equal(ids, k, cJSON_GetObjectItem(o, "ids"))) {
                if (bad_ids++ < 3) {
                    fprintf(stderr, "  %s: line id %d ids differ\n", c->name,
                            cJSON_GetObjectItem(o, "id")->valueint);
                    print_ids("got", ids, k);
                }
            }
            free(ids);
        }
        const cJSON *ns = cJSON_GetObjectItem(o, "ids_no_special");
        const cJSON *want = ns ? ns : cJSON_GetObjectItem(o, "ids");
        k = enc(c->t, s, n, 0, 0, &ids);
        if (ns || !c->specials_ok) {
            n_ns++;
            if (!ids_equal(ids, k, want) && bad_ns++ < 3) {
                fprintf(stderr, "  %s: line id %d ids (no special) differ\n", c->name,
                        cJSON_GetObjectItem(o, "id")->valueint);
                print_ids("got", ids, k);
            }
        }
        /* decode(encode(s)) == s (SPM: the dummy prefix is stripped by the decoder) */
        if (c->spm && strstr(s, "\xe2\x96\x81")) { /* a literal U+2581 decodes as a space */
            free(ids);
            cJSON_Delete(o);
            continue;
        }
        size_t dn = 0;
        char *dec = hass_tokenizer_decode(c->t, ids, k, c->spm, &dn);
        if (!dec || dn != n || memcmp(dec, s, n)) {
            if (bad_rt++ < 3)
                fprintf(stderr, "  %s: round trip differs for line id %d: '%s'\n", c->name,
                        cJSON_GetObjectItem(o, "id")->valueint, dec ? dec : "(null)");
        }
        free(dec);
        if (!stream_ok(c->t, ids, k, c->spm, s, n))
            bad_stream++;
        free(ids);
        cJSON_Delete(o);
    }
    free(text);
    fprintf(stderr,
            "  %s: %d lines, %d id mismatches, %d/%d no-special mismatches, %d round-trip, "
            "%d stream failures\n",
            c->name, lines, bad_ids, bad_ns, n_ns, bad_rt, bad_stream);
    CHECK(lines == 275);
    CHECK_EQ_INT(bad_ids, 0);
    CHECK_EQ_INT(bad_ns, 0);
    CHECK_EQ_INT(bad_rt, 0);
    CHECK_EQ_INT(bad_stream, 0);
}

/* llama.cpp's .inp (strings separated by "\n__ggml_vocab_test__\n") and .out (a line of ids per
 * string); test-tokenizer-0 encodes without BOS and without special parsing. */
static void run_ggml_vectors(const hass_tokenizer *t, const char *inp_rel, const char *name,
                             int strip) {
    const char *inp = check_shared(inp_rel);
    char outp[1100];
    if (!inp) {
        CHECK_SKIP(inp_rel);
        return;
    }
    snprintf(outp, sizeof outp, "%.1000s", inp);
    memcpy(outp + strlen(outp) - 3, "out", 3);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    hass_err err = {0};
    if (hass_read_file(inp, &a, &na, &err) || hass_read_file(outp, &b, &nb, &err)) {
        CHECK_MSG(0, "%s", err.msg);
        free(a);
        return;
    }
    static const char sep[] = "\n__ggml_vocab_test__\n";
    int count = 0, bad = 0, bad_rt = 0;
    char *s = a, *line = b;
    for (;;) {
        char *e = strstr(s, sep);
        char *nl = strchr(line, '\n');
        if (!e || !nl)
            break;
        *nl = 0;
        int32_t *ids;
        int64_t k = enc(t, s, (size_t)(e - s), 0, 0, &ids);
        int64_t m = 0;
        int ok = k >= 0;
        char *p = line;
        for (;;) {
            char *q;
            long v = strtol(p, &q, 10);
            if (q == p)
                break;
            ok = ok && m < k && ids[m] == v;
            m++;
            p = q;
        }
        ok = ok && m == k;
        if (!ok && bad++ < 3) {
            fprintf(stderr, "  %s: string %d differs (want %s)\n", name, count, line);
            print_ids("got", ids, k);
        }
        size_t dn;
        char *dec = hass_tokenizer_decode(t, ids, k, strip, &dn);
        if (!dec || dn != (size_t)(e - s) || memcmp(dec, s, dn))
            bad_rt++;
        free(dec);
        free(ids);
        count++;
        s = e + sizeof sep - 1;
        line = nl + 1;
    }
    fprintf(stderr, "  %s: %d strings, %d mismatches, %d round-trip failures\n", name, count, bad,
            bad_rt);
    CHECK(count >= 40);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(bad_rt, 0);
    free(a);
    free(b);
}

/* ---------------- individual tests ---------------- */

/* LLaMA-3 tokenizer.json is loaded once and shared by the tests that need it */
static hass_tokenizer *llama3_tok;
static double llama3_load_s;
static hass_tokenizer *get_llama3(hass_err *err) {
    const char *js = check_shared("tokenizers/llama3/tokenizer.json");
    if (!llama3_tok && js) {
        double t0 = hass_now();
        llama3_tok = hass_tokenizer_load_json(js, err);
        llama3_load_s = hass_now() - t0;
    }
    return llama3_tok;
}

static void test_llama2(void) {
    const char *vec = check_shared("tokenizers/vectors_llama2.jsonl");
    const char *js = check_shared("tokenizers/llama2/tokenizer.json");
    const char *bin = check_shared("models/tokenizer.bin");
    if (!vec || !js) {
        CHECK_SKIP("llama2 tokenizer files");
        return;
    }
    hass_err err = {0};
    double t0 = hass_now();
    hass_tokenizer *t = hass_tokenizer_load_json(js, &err);
    fprintf(stderr, "  llama2 tokenizer.json loaded in %.3f s\n", hass_now() - t0);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        CHECK_EQ_INT(hass_tokenizer_kind(t), HASS_TOK_SPM);
        CHECK_EQ_INT(hass_tokenizer_vocab_size(t), 32000);
        CHECK_EQ_INT(hass_tokenizer_bos(t), 1);
        CHECK_EQ_INT(hass_tokenizer_eos(t), 2);
        vec_ctx c = {"llama2 json", t, 1, 1};
        run_vectors(vec, &c);
        /* "Hello world" with BOS: the well-known LLaMA ids */
        int32_t ids[8];
        int64_t k = hass_tokenizer_encode(t, "Hello world", 11, 1, 1, ids, 8, &err);
        CHECK_EQ_INT(k, 3);
        CHECK(k == 3 && ids[0] == 1 && ids[1] == 15043 && ids[2] == 3186);
        /* capacity contract: the full count comes back even when cap is short */
        k = hass_tokenizer_encode(t, "Hello world", 11, 1, 1, ids, 1, &err);
        CHECK_EQ_INT(k, 3);
        CHECK_EQ_INT(ids[0], 1);
        /* llama2 chat template rendering (the detected default is hass: no template given) */
        CHECK(!strcmp(hass_tokenizer_chat_template(t), "hass"));
        CHECK(hass_tokenizer_set_chat_template(t, "llama2", &err) == HASS_OK);
        CHECK(hass_tokenizer_set_chat_template(t, "jinja", &err) == HASS_STATUS_ARG);
        hass_chat_msg msgs[] = {
            {"system", "Be nice."}, {"user", " Hi "}, {"assistant", "Hello!"}, {"user", "Bye"}};
        char *r = hass_tokenizer_chat_render(t, msgs, 4, 1, &err);
        /* HF strips the whole first turn (system block + user text), not the user text */
        CHECK(r && !strcmp(r, "[INST] <<SYS>>\nBe nice.\n<</SYS>>\n\n Hi [/INST] Hello! "
                              "</s><s>[INST] Bye [/INST]"));
        if (r) {
            int32_t *ri;
            int64_t rk = enc(t, r, strlen(r), 1, 1, &ri);
            int n_bos = 0, n_eos = 0;
            for (int64_t i = 0; i < rk; i++)
                n_bos += ri[i] == 1, n_eos += ri[i] == 2;
            CHECK(rk > 0 && ri[0] == 1 && n_bos == 2 && n_eos == 1);
            free(ri);
        }
        free(r);
        int32_t stop[8];
        CHECK_EQ_INT(hass_tokenizer_stop_ids(t, stop, 8), 1);
        CHECK_EQ_INT(stop[0], 2);
    }
    if (bin) {
        hass_tokenizer *tb = hass_tokenizer_load_bin(bin, 32000, &err);
        CHECK_MSG(tb != NULL, "%s", err.msg);
        if (tb) {
            vec_ctx c = {"llama2 tokenizer.bin", tb, 1, 1};
            run_vectors(vec, &c);
            size_t n;
            const char *p = hass_tokenizer_piece(tb, 1, &n);
            CHECK(p && n == 3 && !strcmp(p, "<s>"));
            p = hass_tokenizer_piece(tb, 29871, &n);
            CHECK(p && !strcmp(p, "\xe2\x96\x81"));
            CHECK(hass_tokenizer_piece(tb, 32000, &n) == NULL);
            /* run.c's printing: leading space dropped after BOS only */
            hass_detok d;
            hass_detok_init(&d);
            char out[64];
            CHECK_EQ_INT(hass_detok_push(tb, &d, 1, out, sizeof out), 0);
            size_t w = hass_detok_push(tb, &d, 15043, out, sizeof out);
            CHECK(w == 5 && !memcmp(out, "Hello", 5));
            w = hass_detok_push(tb, &d, 3186, out, sizeof out);
            CHECK(w == 6 && !memcmp(out, " world", 6));
        }
        hass_tokenizer_free(tb);
    } else {
        CHECK_SKIP("models/tokenizer.bin");
    }
    hass_tokenizer_free(t);
}

/* the chat_llama3 vector lines hold the Instruct template's output for (system, user) */
static void check_llama3_chat(const hass_tokenizer *t, const char *vec) {
    char *text = NULL;
    size_t size = 0;
    hass_err err = {0};
    if (hass_read_file(vec, &text, &size, &err) != HASS_OK)
        return;
    int checked = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "\"chat_llama3:"))
            continue;
        cJSON *o = cJSON_Parse(line);
        const char *s = cJSON_GetObjectItem(o, "text")->valuestring;
        static const char h[] = "<|end_header_id|>\n\n", eot[] = "<|eot_id|>";
        const char *s1 = strstr(s, h) + strlen(h), *e1 = strstr(s1, eot);
        const char *s2 = strstr(e1, h) + strlen(h), *e2 = strstr(s2, eot);
        char *sys = strndup(s1, (size_t)(e1 - s1)), *usr = strndup(s2, (size_t)(e2 - s2));
        hass_chat_msg msgs[] = {{"system", sys}, {"user", usr}};
        char *r = hass_tokenizer_chat_render(t, msgs, 2, 1, &err);
        const char *bos = "<|begin_of_text|>";
        CHECK(r && !strncmp(s, bos, strlen(bos)) && !strcmp(r, s + strlen(bos)));
        int32_t *ids;
        int64_t k = enc(t, r, strlen(r), hass_tokenizer_wants_bos(t), 1, &ids);
        CHECK(ids_equal(ids, k, cJSON_GetObjectItem(o, "ids")));
        free(ids);
        free(r);
        free(sys);
        free(usr);
        cJSON_Delete(o);
        checked++;
    }
    CHECK(checked >= 1);
    free(text);
}

static void test_llama3(void) {
    const char *vec = check_shared("tokenizers/vectors_llama3.jsonl");
    const char *js = check_shared("tokenizers/llama3/tokenizer.json");
    if (!vec || !js) {
        CHECK_SKIP("llama3 tokenizer files");
        return;
    }
    hass_err err = {0};
    hass_tokenizer *t = get_llama3(&err);
    double t0, dt = llama3_load_s;
    fprintf(stderr, "  llama3 tokenizer.json loaded in %.3f s\n", dt);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (!t)
        return;
    CHECK(dt < 5.0); /* ~0.3 s in release; generous for sanitizer builds */
    CHECK_EQ_INT(hass_tokenizer_kind(t), HASS_TOK_BYTE_BPE);
    CHECK_EQ_INT(hass_tokenizer_vocab_size(t), 128256);
    CHECK_EQ_INT(hass_tokenizer_bos(t), 128000);
    CHECK_EQ_INT(hass_tokenizer_eos(t), 128001);
    CHECK(hass_tokenizer_wants_bos(t));
    vec_ctx c = {"llama3 json", t, 1, 0};
    run_vectors(vec, &c);
    run_ggml_vectors(t, "data/fixtures/ggml-vocab-llama-bpe.gguf.inp", "ggml llama-bpe", 0);
    int32_t stop[8];
    int ns = hass_tokenizer_stop_ids(t, stop, 8);
    int has_eot = 0, has_eos = 0;
    for (int i = 0; i < ns && i < 8; i++)
        has_eot |= stop[i] == 128009, has_eos |= stop[i] == 128001;
    CHECK(has_eot && has_eos);
    CHECK(!strcmp(hass_tokenizer_chat_template(t), "llama3"));
    check_llama3_chat(t, vec);
    CHECK_EQ_INT(hass_tokenizer_find(t, "<|eot_id|>", 10), 128009);
    CHECK_EQ_INT(hass_tokenizer_find(t, "\xc4\xa0world", 7), 1917); /* "Ġworld" */

    /* the streaming decoder holds back split characters: "€" is 3 byte tokens here */
    int32_t *ids;
    int64_t k = enc(t, "\xe2\x82\xac", 3, 0, 0, &ids);
    CHECK(stream_ok(t, ids, k, 0, "\xe2\x82\xac", 3));
    free(ids);
    /* invalid UTF-8 input still encodes (bytes) and decodes to U+FFFD, never a partial char */
    k = enc(t, "a\xff\xe2\x82", 4, 0, 0, &ids);
    CHECK(k > 0);
    CHECK(stream_ok(t, ids, k, 0, "a\xef\xbf\xbd\xef\xbf\xbd", 7));
    free(ids);

    /* speed guard: 200k bytes of one long pre-token must not merge quadratically */
    size_t n = 200000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = "abcdefghij"[(i * 7) % 10];
    t0 = hass_now();
    k = enc(t, big, n, 0, 0, &ids);
    dt = hass_now() - t0;
    fprintf(stderr, "  llama3: 200 KB single-word encode %.3f s -> %lld ids\n", dt, (long long)k);
    CHECK(k > 0 && dt < 5.0);
    free(ids);
    free(big);
}

static void test_gguf_spm(void) {
    const char *p = check_shared("data/fixtures/ggml-vocab-llama-spm.gguf");
    if (!p) {
        CHECK_SKIP("ggml-vocab-llama-spm.gguf");
        return;
    }
    hass_gguf g;
    hass_err err = {0};
    if (hass_gguf_open(&g, p, &err) != HASS_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    hass_tokenizer *t = hass_tokenizer_load_gguf(&g, &err);
    hass_gguf_close(&g);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (!t)
        return;
    CHECK_EQ_INT(hass_tokenizer_kind(t), HASS_TOK_SPM);
    CHECK_EQ_INT(hass_tokenizer_vocab_size(t), 32000);
    CHECK_EQ_INT(hass_tokenizer_bos(t), 1);
    CHECK_EQ_INT(hass_tokenizer_eos(t), 2);
    run_ggml_vectors(t, "data/fixtures/ggml-vocab-llama-spm.gguf.inp", "ggml llama-spm", 1);
    /* the 32k speed guard for SPM: 200k characters in one word */
    size_t n = 200000;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = "abcdefghij"[(i * 7) % 10];
    int32_t *ids;
    double t0 = hass_now();
    int64_t k = enc(t, big, n, 0, 0, &ids);
    double dt = hass_now() - t0;
    fprintf(stderr, "  llama-spm gguf: 200 KB single-word encode %.3f s -> %lld ids\n", dt,
            (long long)k);
    CHECK(k > 0 && dt < 5.0);
    free(ids);
    free(big);
    hass_tokenizer_free(t);
}

static void test_stories(void) {
    const char *tok = check_shared("models/tok512.bin");
    const char *gold = check_shared("models/stories260K_golden.txt");
    if (!tok || !gold) {
        CHECK_SKIP("tok512.bin / stories260K_golden.txt");
        return;
    }
    hass_err err = {0};
    hass_tokenizer *t = hass_tokenizer_load_bin(tok, 512, &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    char *g = NULL;
    size_t gn = 0;
    if (!t || hass_read_file(gold, &g, &gn, &err) != HASS_OK) {
        hass_tokenizer_free(t);
        return;
    }
    /* first case: prompt 'Once upon a time' */
    const char *first = strstr(g, "## prompt:");
    const char *pt = first ? strstr(first, "prompt_tokens:") : NULL;
    const char *ids_line = first ? strstr(first, "\nids:") : NULL;
    CHECK(pt && ids_line);
    if (pt && ids_line) {
        int n_prompt = atoi(pt + 14);
        int32_t want[64] = {1};
        char *p = (char *)ids_line + 5;
        for (int i = 1; i < n_prompt && i < 64; i++)
            want[i] = (int32_t)strtol(p, &p, 10);
        int32_t got[64];
        int64_t k = hass_tokenizer_encode(t, "Once upon a time", 16, 1, 1, got, 64, &err);
        CHECK_EQ_INT(k, n_prompt);
        CHECK(k == n_prompt && !memcmp(got, want, (size_t)k * sizeof *got));
        char *dec = hass_tokenizer_decode(t, got, k, 0, NULL);
        CHECK(dec && !strcmp(dec, "Once upon a time"));
        free(dec);
    }
    /* the project's default template for a model without one */
    CHECK(!strcmp(hass_tokenizer_chat_template(t), "hass"));
    hass_chat_msg msgs[] = {{"user", "Hi"}, {"assistant", "Hello"}, {"user", "Story?"}};
    char *r = hass_tokenizer_chat_render(t, msgs, 3, 1, &err);
    CHECK(r && !strcmp(r, "<|user|>\nHi\n<|assistant|>\nHello</s>\n<|user|>\nStory?\n"
                          "<|assistant|>\n"));
    free(r);
    free(g);
    hass_tokenizer_free(t);
}

typedef struct {
    char *p;
    size_t n, cap;
} tbuf;
static void tbuf_put(tbuf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 20;
        while (cap < b->n + n)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p)
            return;
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* ---------------- GGUF "gpt2" vocab built in memory from the LLaMA-3 tokenizer.json
 * ---------------- */

static void gg_u32(tbuf *b, uint32_t v) {
    tbuf_put(b, &v, 4);
}
static void gg_u64(tbuf *b, uint64_t v) {
    tbuf_put(b, &v, 8);
}
static void gg_str(tbuf *b, const char *s, size_t n) {
    gg_u64(b, n);
    tbuf_put(b, s, n);
}
static void gg_key(tbuf *b, const char *k, uint32_t type) {
    gg_str(b, k, strlen(k));
    gg_u32(b, type);
}

/* Same vocab and merges as the json, as llama.cpp's convert script writes them: the gpt2
 * tokenizer model, pre "llama-bpe", CONTROL type for the added tokens. */
static void test_gguf_bpe(void) {
    const char *js = check_shared("tokenizers/llama3/tokenizer.json");
    if (!js) {
        CHECK_SKIP("llama3 tokenizer.json");
        return;
    }
    hass_err err = {0};
    hass_tokenizer *tj = get_llama3(&err);
    char *text = NULL;
    size_t size = 0;
    cJSON *root = NULL;
    if (tj && hass_read_file(js, &text, &size, &err) == HASS_OK)
        root = cJSON_ParseWithLength(text, size);
    free(text);
    const cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
    if (!tj || !cJSON_IsArray(merges)) {
        CHECK_MSG(0, "llama3 json: %s", err.msg);
        cJSON_Delete(root);
        return;
    }
    int32_t n = hass_tokenizer_vocab_size(tj);
    tbuf b = {0};
    tbuf_put(&b, "GGUF", 4);
    gg_u32(&b, 3);
    gg_u64(&b, 0); /* tensors */
    gg_u64(&b, 7); /* kvs */
    gg_key(&b, "tokenizer.ggml.model", HASS_GGUF_STRING);
    gg_str(&b, "gpt2", 4);
    gg_key(&b, "tokenizer.ggml.pre", HASS_GGUF_STRING);
    gg_str(&b, "llama-bpe", 9);
    gg_key(&b, "tokenizer.ggml.tokens", HASS_GGUF_ARRAY);
    gg_u32(&b, HASS_GGUF_STRING);
    gg_u64(&b, (uint64_t)n);
    for (int32_t id = 0; id < n; id++) {
        size_t len;
        const char *p = hass_tokenizer_piece(tj, id, &len);
        gg_str(&b, p, len);
    }
    gg_key(&b, "tokenizer.ggml.token_type", HASS_GGUF_ARRAY);
    gg_u32(&b, HASS_GGUF_I32);
    gg_u64(&b, (uint64_t)n);
    for (int32_t id = 0; id < n; id++)
        gg_u32(&b, id >= 128000 ? 3 : 1);
    gg_key(&b, "tokenizer.ggml.merges", HASS_GGUF_ARRAY);
    gg_u32(&b, HASS_GGUF_STRING);
    gg_u64(&b, (uint64_t)cJSON_GetArraySize(merges));
    const cJSON *e;
    cJSON_ArrayForEach(e, merges) gg_str(&b, e->valuestring, strlen(e->valuestring));
    gg_key(&b, "tokenizer.ggml.bos_token_id", HASS_GGUF_U32);
    gg_u32(&b, 128000);
    gg_key(&b, "tokenizer.ggml.eos_token_id", HASS_GGUF_U32);
    gg_u32(&b, 128009);
    while (b.n % 32)
        tbuf_put(&b, "", 1);
    cJSON_Delete(root);

    hass_gguf g;
    if (!b.p || hass_gguf_parse(&g, (const uint8_t *)b.p, b.n, &err) != HASS_OK) {
        CHECK_MSG(0, "gguf parse: %s", err.msg);
        free(b.p);
        return;
    }
    hass_tokenizer *t = hass_tokenizer_load_gguf(&g, &err);
    hass_gguf_close(&g);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        CHECK_EQ_INT(hass_tokenizer_kind(t), HASS_TOK_BYTE_BPE);
        CHECK_EQ_INT(hass_tokenizer_eos(t), 128009);
        run_ggml_vectors(t, "data/fixtures/ggml-vocab-llama-bpe.gguf.inp", "gguf gpt2 llama-bpe",
                         0);
        int32_t ids[4];
        CHECK_EQ_INT(hass_tokenizer_encode(t, "<|eot_id|>", 10, 0, 1, ids, 4, &err), 1);
        CHECK_EQ_INT(ids[0], 128009);
    }
    hass_tokenizer_free(t);
    free(b.p);
}

/* ---------------- corrupt files ---------------- */

static char tmpdir[256];

static const char *write_tmp(const char *name, const void *data, size_t n) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, n, f);
        fclose(f);
    }
    return path;
}

static void expect_bin_fail(const char *what, const void *data, size_t n, int32_t hint) {
    hass_err err = {0};
    hass_tokenizer *t = hass_tokenizer_load_bin(write_tmp("bad.bin", data, n), hint, &err);
    CHECK_MSG(t == NULL && err.code != HASS_OK && err.msg[0] && !strchr(err.msg, '\n'), "%s", what);
    hass_tokenizer_free(t);
}

static void expect_json_fail(const char *what, const char *json) {
    hass_err err = {0};
    hass_tokenizer *t =
        hass_tokenizer_load_json(write_tmp("tokenizer.json", json, strlen(json)), &err);
    CHECK_MSG(t == NULL && err.code != HASS_OK && err.msg[0] && !strchr(err.msg, '\n'), "%s", what);
    hass_tokenizer_free(t);
}

static void test_bad_files(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s", check_tmp());
    hass_err err = {0};
    CHECK(hass_tokenizer_load_bin("/nonexistent/tokenizer.bin", 0, &err) == NULL);
    CHECK(hass_tokenizer_load_json("/nonexistent/tokenizer.json", &err) == NULL);
    /* tokenizer.bin: header only, absurd max length, absurd token length, truncated record */
    int32_t hdr[1] = {27};
    expect_bin_fail("too short", hdr, 2, 0);
    int32_t big[1] = {0x7fffffff};
    expect_bin_fail("absurd max_token_length", big, 4, 0);
    uint8_t rec[4 + 8 + 3] = {27, 0, 0, 0};
    int32_t len = 1 << 30;
    memcpy(rec + 8, &len, 4);
    expect_bin_fail("absurd token length", rec, sizeof rec, 0);
    len = 3;
    memcpy(rec + 8, &len, 4);
    expect_bin_fail("too few tokens", rec, sizeof rec, 0);
    expect_bin_fail("hint beyond file", rec, sizeof rec, 10);
    len = -1;
    memcpy(rec + 8, &len, 4);
    expect_bin_fail("negative length", rec, sizeof rec, 0);
    const char *bin = check_shared("models/tok512.bin");
    if (bin) { /* a real file cut in the middle of a record */
        char *d = NULL;
        size_t n = 0;
        if (hass_read_file(bin, &d, &n, &err) == HASS_OK) {
            expect_bin_fail("truncated tok512.bin", d, n / 2 + 1, 512);
            free(d);
        }
    }
    /* tokenizer.json */
    expect_json_fail("not json", "{\"model\": ");
    expect_json_fail("array root", "[1, 2]");
    expect_json_fail("no model", "{\"version\": \"1.0\"}");
    expect_json_fail("no vocab", "{\"model\": {\"type\": \"BPE\", \"merges\": []}}");
    expect_json_fail("vocab wrong type",
                     "{\"model\": {\"type\": \"BPE\", \"vocab\": [1], \"merges\": []}}");
    expect_json_fail("id wrong type", "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, "
                                      "\"vocab\": {\"a\": \"0\"}, \"merges\": []}}");
    expect_json_fail("negative id", "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, "
                                    "\"vocab\": {\"a\": -4}, \"merges\": []}}");
    expect_json_fail("unigram", "{\"model\": {\"type\": \"Unigram\", \"vocab\": {}, "
                                "\"merges\": []}}");
    expect_json_fail("merge out of vocab",
                     "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, "
                     "\"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}");
    expect_json_fail("merge not a pair",
                     "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, "
                     "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, \"merges\": [\"ab\"]}}");
    expect_json_fail("duplicate id", "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, "
                                     "\"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}");
    expect_json_fail("byte-level without all bytes",
                     "{\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"model\": {\"type\": "
                     "\"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_json_fail("bad added token",
                     "{\"added_tokens\": [{\"id\": \"x\"}], \"model\": {\"type\": \"BPE\", "
                     "\"byte_fallback\": true, \"vocab\": {\"a\": 0}, \"merges\": []}}");
    /* a minimal valid SPM-BPE file loads and encodes with byte fallback */
    const char *ok = "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": "
                     "\"Prepend\", \"prepend\": \"\\u2581\"}, {\"type\": \"Replace\"}]}, "
                     "\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"vocab\": "
                     "{\"<0x7A>\": 0, \"\\u2581\": 1, \"a\": 2, \"\\u2581a\": 3}, "
                     "\"merges\": [\"\\u2581 a\"]}}";
    hass_tokenizer *t = hass_tokenizer_load_json(write_tmp("tokenizer.json", ok, strlen(ok)), &err);
    CHECK_MSG(t != NULL, "%s", err.msg);
    if (t) {
        int32_t ids[8];
        int64_t k = hass_tokenizer_encode(t, "az a", 4, 0, 1, ids, 8, &err);
        CHECK(k == 3 && ids[0] == 3 && ids[1] == 0 && ids[2] == 3); /* ▁a <0x7A> ▁a */
        k = hass_tokenizer_encode(t, "q", 1, 0, 1, ids, 8, &err);
        CHECK(k < 0 && err.code == HASS_STATUS_UNSUPPORTED); /* no byte token, no <unk> */
    }
    hass_tokenizer_free(t);
    /* GGUF without tokenizer metadata */
    hass_gguf g;
    memset(&g, 0, sizeof g);
    err = (hass_err){0};
    CHECK(hass_tokenizer_load_gguf(&g, &err) == NULL && err.msg[0]);
    char path[512];
    snprintf(path, sizeof path, "%s/bad.bin", tmpdir);
    unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer.json", tmpdir);
    unlink(path);
}

/* Random bytes (valid or not as UTF-8) encode without error, the streaming decoder emits only
 * valid UTF-8, and valid-UTF-8 input round-trips exactly through a byte-level vocab. Corrupted
 * copies of tok512.bin either load or fail cleanly. */
static void test_random(void) {
    hass_rng r;
    hass_rng_seed(&r, 1234);
    hass_err err = {0};
    const char *tok = check_shared("models/tok512.bin");
    const char *js = check_shared("tokenizers/llama3/tokenizer.json");
    hass_tokenizer *ts = tok ? hass_tokenizer_load_bin(tok, 512, &err) : NULL;
    hass_tokenizer *tb = js ? get_llama3(&err) : NULL;
    if (!ts || !tb) {
        CHECK_SKIP("tok512.bin / llama3 tokenizer.json");
        hass_tokenizer_free(ts);
        return;
    }
    int bad_utf8 = 0, bad_enc = 0, bad_rt = 0;
    char text[96];
    for (int it = 0; it < 300; it++) {
        size_t n = hass_rng_u64(&r) % sizeof text;
        int ascii = it % 3 == 0;
        for (size_t i = 0; i < n; i++)
            text[i] = ascii ? " aZ<|>\n\t0"[hass_rng_u64(&r) % 9] : (char)(hass_rng_u64(&r) & 0xff);
        for (int k = 0; k < 2; k++) {
            const hass_tokenizer *t = k ? tb : ts;
            int32_t *ids;
            int64_t m = enc(t, text, n, 1, 1, &ids);
            if (m < 0) {
                bad_enc++;
                continue;
            }
            size_t dn;
            char *dec = hass_tokenizer_decode(t, ids, m, 0, &dn);
            if (!dec || !utf8_valid(dec, dn))
                bad_utf8++;
            if (k && utf8_valid(text, n) && (dn != n || memcmp(dec, text, n)))
                bad_rt++;
            free(dec);
            free(ids);
        }
    }
    CHECK_EQ_INT(bad_enc, 0);
    CHECK_EQ_INT(bad_utf8, 0);
    CHECK_EQ_INT(bad_rt, 0);
    hass_tokenizer_free(ts);

    char *d = NULL;
    size_t n = 0;
    if (hass_read_file(tok, &d, &n, &err) != HASS_OK)
        return;
    int loaded = 0, failed = 0;
    for (int it = 0; it < 40; it++) {
        char *c = malloc(n);
        memcpy(c, d, n);
        for (int k = 0; k < 4; k++)
            c[hass_rng_u64(&r) % n] = (char)hass_rng_u64(&r);
        err = (hass_err){0};
        hass_tokenizer *t =
            hass_tokenizer_load_bin(write_tmp("fuzz.bin", c, n), it % 2 ? 512 : 0, &err);
        if (t) {
            int32_t ids[64];
            loaded += hass_tokenizer_encode(t, "Once upon a time", 16, 1, 1, ids, 64, &err) > 0;
        } else {
            failed += err.msg[0] != 0;
        }
        hass_tokenizer_free(t);
        free(c);
    }
    CHECK_EQ_INT(loaded + failed, 40);
    free(d);
    char path[512];
    snprintf(path, sizeof path, "%s/fuzz.bin", tmpdir);
    unlink(path);
}

/* tokenizer.json from memory encodes like the file loader */
static void test_json_mem(void) {
    const char *path = check_shared("tokenizers/llama3/tokenizer.json");
    if (!path) {
        CHECK_SKIP("llama3 tokenizer.json not found");
        return;
    }
    hass_err err = {0};
    char *text = NULL;
    size_t size = 0;
    CHECK(hass_read_file(path, &text, &size, &err) == HASS_OK);
    hass_tokenizer *a = hass_tokenizer_load_json(path, &err);
    hass_tokenizer *b = text ? hass_tokenizer_load_json_mem(text, size, &err) : NULL;
    CHECK(a && b);
    if (a && b) {
        static const char s[] = "Hello, world! <|eot_id|> 12345 \xe2\x82\xac caf\xc3\xa9";
        int32_t x[64], y[64];
        int64_t nx = hass_tokenizer_encode(a, s, sizeof s - 1, 0, 1, x, 64, &err);
        int64_t ny = hass_tokenizer_encode(b, s, sizeof s - 1, 0, 1, y, 64, &err);
        CHECK(nx > 0 && nx == ny && !memcmp(x, y, sizeof(int32_t) * (size_t)nx));
    }
    CHECK(hass_tokenizer_load_json_mem("[1]", 3, &err) == NULL && err.msg[0]);
    hass_tokenizer_free(a);
    hass_tokenizer_free(b);
    free(text);
}

/* ---------------- export as GGUF metadata ---------------- */

/* t -> hass_tokenizer_gguf_kvs -> a GGUF file -> hass_tokenizer_load_gguf; pre: NULL, or a
 * tokenizer.ggml.pre to write instead of the one the export chose */
static hass_tokenizer *via_gguf(const hass_tokenizer *t, int32_t n_vocab, const char *name,
                                const char *pre) {
    hass_err err = {0};
    hass_gguf_kvs l = {0}, w = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/tok_%s.gguf", check_tmp(), name);
    hass_tokenizer *r = NULL;
    hass_gguf g;
    hass_status st = hass_tokenizer_gguf_kvs(t, n_vocab, &l, &err);
    for (int64_t i = 0; i < l.n && !st; i++)
        st = pre && !strcmp(l.kv[i].key, "tokenizer.ggml.pre")
                 ? hass_gguf_kvs_str(&w, l.kv[i].key, pre, &err)
                 : hass_gguf_kvs_add(&w, &l.kv[i], &err);
    if (!st && hass_gguf_write(path, w.kv, w.n, NULL, 0, NULL, NULL, &err) == HASS_OK &&
        hass_gguf_open(&g, path, &err) == HASS_OK) {
        r = hass_tokenizer_load_gguf(&g, &err);
        hass_gguf_close(&g);
    }
    CHECK_MSG(r != NULL, "%s via GGUF: %s", name, err.msg);
    unlink(path);
    hass_gguf_kvs_free(&l);
    hass_gguf_kvs_free(&w);
    return r;
}

static void test_gguf_export(void) {
    const char *v3 = check_shared("tokenizers/vectors_llama3.jsonl");
    const char *v2 = check_shared("tokenizers/vectors_llama2.jsonl");
    const char *j2 = check_shared("tokenizers/llama2/tokenizer.json");
    const char *b2 = check_shared("models/tokenizer.bin");
    hass_err err = {0};
    hass_tokenizer *t3 = v3 ? get_llama3(&err) : NULL;
    if (t3) { /* byte-level BPE: gpt2 / llama-bpe, merges, CONTROL specials, chat template */
        hass_tokenizer *t = via_gguf(t3, 128256, "llama3", NULL);
        if (t) {
            vec_ctx c = {"llama3 json -> gguf", t, 1, 0};
            run_vectors(v3, &c);
            run_ggml_vectors(t, "data/fixtures/ggml-vocab-llama-bpe.gguf.inp",
                             "llama3 json -> gguf, ggml strings", 0);
            check_llama3_chat(t, v3);
            CHECK_EQ_INT(hass_tokenizer_bos(t), 128000);
            CHECK_EQ_INT(hass_tokenizer_eos(t), 128001);
            CHECK(hass_tokenizer_wants_bos(t));
            int32_t a[8], b[8];
            int na = hass_tokenizer_stop_ids(t3, a, 8), nb = hass_tokenizer_stop_ids(t, b, 8);
            CHECK(na == nb && !memcmp(a, b, sizeof(int32_t) * (size_t)na));
        }
        hass_tokenizer_free(t);
        /* padded to a larger model vocabulary: the extra ids are unused "[PAD<id>]" */
        t = via_gguf(t3, 128300, "llama3pad", NULL);
        if (t) {
            CHECK_EQ_INT(hass_tokenizer_vocab_size(t), 128300);
            size_t n;
            const char *p = hass_tokenizer_piece(t, 128299, &n);
            CHECK(p && !strcmp(p, "[PAD128299]"));
            int32_t *ids;
            int64_t k = enc(t, "[PAD128299]", 11, 0, 1, &ids);
            CHECK(k > 1); /* never produced by encoding */
            free(ids);
        }
        hass_tokenizer_free(t);
        /* a pre-tokenizer we only approximate when reading is not written back */
        t = via_gguf(t3, 128256, "llama3qwen", "qwen2");
        hass_gguf_kvs l = {0};
        CHECK(t && hass_tokenizer_gguf_kvs(t, 128256, &l, &err) == HASS_STATUS_UNSUPPORTED);
        CHECK(strstr(err.msg, "approximate") != NULL);
        hass_gguf_kvs_free(&l);
        hass_tokenizer_free(t);
    } else {
        CHECK_SKIP("llama3 tokenizer files");
    }
    /* SentencePiece: from tokenizer.json (scores made from the merge ranks), tokenizer.bin */
    hass_tokenizer *spm[2] = {v2 && j2 ? hass_tokenizer_load_json(j2, &err) : NULL,
                              v2 && b2 ? hass_tokenizer_load_bin(b2, 32000, &err) : NULL};
    static const char *const name[2] = {"llama2 json -> gguf", "llama2 tokenizer.bin -> gguf"};
    for (int k = 0; k < 2; k++) {
        hass_tokenizer *t =
            spm[k] ? via_gguf(spm[k], 32000, k ? "llama2bin" : "llama2json", NULL) : NULL;
        if (t) {
            vec_ctx c = {name[k], t, 1, 1};
            run_vectors(v2, &c);
        } else if (!spm[k]) {
            CHECK_SKIP(name[k]);
        }
        hass_tokenizer_free(t);
        hass_tokenizer_free(spm[k]);
    }
}

/* SentencePiece tokenizer.json variants GGUF cannot express are refused; a piece no merge
 * makes is fine as long as no two symbols join into it (<unk> here) */
static void test_gguf_export_spm_refusals(void) {
    static const char *const cases[][2] = {
        /* pre-tokenizer, extra vocab: expected outcome in the name */
        {"{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"always\","
         "\"split\":false}",
         "ok"},
        {"{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"first\","
         "\"split\":false}",
         "first"},
        {"{\"type\":\"Metaspace\",\"replacement\":\"\xe2\x96\x81\",\"prepend_scheme\":\"always\","
         "\"split\":true}",
         "spans words"},
    };
    for (int k = 0; k < 4; k++) {
        char json[1024];
        /* "a\xe2\x96\x81" (a piece ending in U+2581) only where it matters: cases 2 and 3 */
        int spans = k == 2, unmade = k == 3;
        snprintf(json, sizeof json,
                 "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{\"<unk>\":0,"
                 "\"\xe2\x96\x81\":1,\"a\":2,\"b\":3,\"\xe2\x96\x81"
                 "a\":4%s%s},\"merges\":[\"\xe2\x96\x81 a\"%s]},\"pre_tokenizer\":%s}",
                 spans ? ",\"a\xe2\x96\x81\":5" : "", unmade ? ",\"ab\":5" : "",
                 spans ? ",\"a \xe2\x96\x81\"" : "", cases[k < 3 ? k : 0][0]);
        hass_err err = {0};
        hass_tokenizer *t = hass_tokenizer_load_json_mem(json, strlen(json), &err);
        CHECK_MSG(t != NULL, "case %d: %s", k, err.msg);
        if (!t)
            continue;
        hass_gguf_kvs l = {0};
        hass_status st = hass_tokenizer_gguf_kvs(t, 8, &l, &err);
        const char *want = k == 3 ? "no merge" : cases[k][1];
        if (k == 0)
            CHECK_MSG(st == HASS_OK, "case 0: %s", err.msg);
        else
            CHECK_MSG(st == HASS_STATUS_UNSUPPORTED && strstr(err.msg, want), "case %d: %s", k,
                      err.msg);
        hass_gguf_kvs_free(&l);
        hass_tokenizer_free(t);
    }
}

int main(void) {
    check_init("test_tokenizer");
    test_json_mem();
    test_llama2();
    test_llama3();
    test_gguf_spm();
    test_gguf_bpe();
    test_stories();
    test_bad_files();
    test_random();
    test_gguf_export();
    test_gguf_export_spm_refusals();
    hass_tokenizer_free(llama3_tok);
    return check_exit();
}
