/*
 * test_formats.c — the file-format loaders: real files (stories260K.bin / .gguf, the llama SPM
 * vocab GGUF), safetensors and GGUF write/read round trips (every metadata type, alignment,
 * streamed tensors, hostile values refused), and
 * robustness: every truncation of small valid files (a dense sample for the big ones) and
 * hand-made corrupt headers must return an error status with a message, never crash (the
 * suite also runs under ASan+UBSan; every corrupt buffer is an exact-size heap copy so that
 * an overread is caught).
 */
#include "check.h"
#include "formats/formats.h"

#include <cJSON.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------- byte buffer for building files ---------------- */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put(b, &v, 8);
}
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_zeros(buf *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        put(b, "", 1);
}

typedef enum { FMT_ST, FMT_GGUF, FMT_L2C } fmt;

/* Parses an exact-size heap copy of data[0, n); returns the status, checks a message is set. */
static hass_status parse_copy(fmt f, const uint8_t *data, size_t n, hass_err *err) {
    uint8_t *c = malloc(n ? n : 1);
    if (n)
        memcpy(c, data, n);
    memset(err, 0, sizeof *err);
    hass_status rc;
    if (f == FMT_ST) {
        hass_safetensors st;
        rc = hass_safetensors_parse(&st, c, n, err);
        if (!rc) {
            /* touch every tensor byte: ASan catches a range outside the buffer */
            volatile uint8_t sink = 0;
            for (int i = 0; i < st.n_tensors; i++)
                for (size_t k = 0; k < st.tensors[i].nbytes; k++)
                    sink ^= ((const uint8_t *)st.tensors[i].data)[k];
            (void)sink;
        }
        hass_safetensors_close(&st);
    } else if (f == FMT_GGUF) {
        hass_gguf g;
        rc = hass_gguf_parse(&g, c, n, err);
        if (!rc) {
            volatile uint8_t sink = 0;
            for (int64_t i = 0; i < g.n_tensors; i++)
                if (g.tensors[i].nbytes)
                    sink ^= ((const uint8_t *)g.tensors[i].data)[g.tensors[i].nbytes - 1];
            (void)sink;
        }
        hass_gguf_close(&g);
    } else {
        hass_llama2c m;
        rc = hass_llama2c_parse(&m, c, n, err);
        if (!rc) {
            volatile uint8_t sink = 0;
            for (int i = 0; i < m.n_tensors; i++)
                sink ^= ((const uint8_t *)m.tensors[i].data)[m.tensors[i].nbytes - 1];
            (void)sink;
        }
        hass_llama2c_close(&m);
    }
    free(c);
    return rc;
}

/* Expects data to fail with a message containing `want` (NULL: any message). */
static void expect_fail(fmt f, const uint8_t *data, size_t n, const char *want, int line) {
    hass_err e;
    hass_status rc = parse_copy(f, data, n, &e);
    int ok = rc < 0 && e.msg[0] && e.code == rc && (!want || strstr(e.msg, want));
    CHECK_MSG(ok, "line %d: rc=%d msg='%s' want '%s'", line, (int)rc, e.msg, want ? want : "");
}
#define EXPECT_FAIL(f, data, n, want) expect_fail((f), (data), (n), (want), __LINE__)

/* Every truncation [0, n) (stride 1 up to dense, then `stride`) must fail cleanly. */
static void check_truncations(fmt f, const uint8_t *data, size_t n, size_t dense, size_t stride,
                              const char *label) {
    int bad = 0;
    for (size_t len = 0; len < n; len += (len < dense ? 1 : stride)) {
        hass_err e;
        hass_status rc = parse_copy(f, data, len, &e);
        if (rc >= 0 || !e.msg[0]) {
            if (bad++ < 3)
                fprintf(stderr, "FAIL %s: truncation to %zu bytes accepted (rc %d)\n", label, len,
                        (int)rc);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d truncations accepted", label, bad);
}

/* Seeded single-byte mutations: any status is fine, a crash is not (ASan). */
static void check_mutations(fmt f, const uint8_t *data, size_t n, int iters, uint64_t seed) {
    hass_rng rng;
    hass_rng_seed(&rng, seed);
    uint8_t *c = malloc(n);
    int ok = 0;
    for (int it = 0; it < iters; it++) {
        memcpy(c, data, n);
        int k = 1 + (int)(hass_rng_u64(&rng) % 4);
        for (int j = 0; j < k; j++)
            c[hass_rng_u64(&rng) % n] = (uint8_t)hass_rng_u64(&rng);
        hass_err e;
        hass_status rc = parse_copy(f, c, n, &e);
        ok += rc == HASS_OK;
        CHECK(rc == HASS_OK || e.msg[0]);
    }
    free(c);
    (void)ok;
}

/* ---------------- llama2.c ---------------- */

static void test_llama2c_real(void) {
    const char *path = check_shared("models/stories260K.bin");
    if (!path) {
        CHECK_SKIP("models/stories260K.bin not found");
        return;
    }
    hass_llama2c m;
    hass_err err = {0};
    CHECK_EQ_INT(hass_llama2c_open(&m, path, &err), HASS_OK);
    const hass_llama2c_config *c = &m.cfg;
    CHECK(c->dim == 64 && c->hidden_dim == 172 && c->n_layers == 5 && c->n_heads == 8 &&
          c->n_kv_heads == 4 && c->vocab_size == 512 && c->seq_len == 512);
    CHECK(c->shared_classifier);
    CHECK_EQ_INT(m.n_tensors, 9 * 5 + 3);
    const hass_tensor *emb = &m.tensors[0], *lm = &m.tensors[m.n_tensors - 1];
    CHECK(!strcmp(emb->name, "model.embed_tokens.weight"));
    CHECK(!strcmp(lm->name, "lm_head.weight") && lm->data == emb->data);
    CHECK(emb->shape[0] == 512 && emb->shape[1] == 64 && emb->data == m.mf.data + 28);
    /* first weight of the file: bytes 50 e9 96 be */
    uint32_t bits;
    memcpy(&bits, emb->data, 4);
    CHECK_EQ_INT(bits, 0xbe96e950u);
    int found = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        const hass_tensor *t = &m.tensors[i];
        if (!strcmp(t->name, "model.layers.4.self_attn.k_proj.weight"))
            found += t->shape[0] == 32 && t->shape[1] == 64;
        if (!strcmp(t->name, "model.layers.2.mlp.down_proj.weight"))
            found += t->shape[0] == 64 && t->shape[1] == 172;
        if (!strcmp(t->name, "model.norm.weight"))
            found += t->ndim == 1 && t->shape[0] == 64;
        CHECK((const uint8_t *)t->data + t->nbytes <= m.mf.data + m.mf.size);
    }
    CHECK_EQ_INT(found, 3);
    /* The file has exactly the expected size: rms_final ends 512*8 floats (freq_cis) before. */
    const hass_tensor *norm = &m.tensors[m.n_tensors - 2];
    CHECK((const uint8_t *)norm->data + norm->nbytes + 512 * 8 * 4 == m.mf.data + m.mf.size);

    /* Truncations: a dense sample of the real file (the header and every 2003rd length). */
    check_truncations(FMT_L2C, m.mf.data, m.mf.size, 64, 2003, "stories260K.bin");
    hass_llama2c_close(&m);
}

static void l2c_header(buf *b, int32_t d, int32_t f, int32_t l, int32_t h, int32_t kv, int32_t v,
                       int32_t s) {
    int32_t hd[7] = {d, f, l, h, kv, v, s};
    put(b, hd, sizeof hd);
}

static void test_llama2c_corrupt(void) {
    /* tiny valid model: D=8 F=4 L=1 H=2 Hkv=1 V=-4 (separate classifier) S=2 */
    buf b = {0};
    l2c_header(&b, 8, 4, 1, 2, 1, -4, 2);
    size_t nf = 4 * 8 + 8 + 64 + 32 + 32 + 64 + 8 + 32 + 32 + 32 + 8 + 2 * 4 + 4 * 8;
    for (size_t i = 0; i < nf; i++) {
        float x = (float)i;
        put(&b, &x, 4);
    }
    hass_llama2c m;
    hass_err err = {0};
    CHECK_EQ_INT(hass_llama2c_parse(&m, b.p, b.n, &err), HASS_OK);
    CHECK(!m.cfg.shared_classifier && m.cfg.vocab_size == 4);
    const hass_tensor *lm = &m.tensors[m.n_tensors - 1];
    CHECK(((const float *)lm->data)[0] == (float)(nf - 32)); /* wcls is the last (V, D) block */
    CHECK(((const float *)m.tensors[1].data)[0] == 32.0f);   /* rms_att after the embedding */
    hass_llama2c_close(&m);

    check_truncations(FMT_L2C, b.p, b.n, b.n, 1, "tiny llama2.c");
    {
        hass_err e;
        parse_copy(FMT_L2C, b.p, b.n - 1, &e);
        char want[96];
        snprintf(want, sizeof want, "truncated: need %zu bytes, file has %zu", b.n, b.n - 1);
        CHECK_MSG(strstr(e.msg, want) != NULL, "msg '%s'", e.msg);
    }
    /* trailing bytes are allowed */
    put_zeros(&b, 3);
    CHECK_EQ_INT(parse_copy(FMT_L2C, b.p, b.n, &err), HASS_OK);

    static const int32_t bad[][7] = {
        {0, 4, 1, 2, 1, 4, 2},         {8, -4, 1, 2, 1, 4, 2},
        {8, 4, 0, 2, 1, 4, 2},         {8, 4, 1, -2, 1, 4, 2},
        {8, 4, 1, 2, 0, 4, 2},         {8, 4, 1, 2, 1, 0, 2},
        {8, 4, 1, 2, 1, 4, -1},        {8, 4, 1, 3, 1, 4, 2}, /* dim % heads */
        {8, 4, 1, 2, 3, 4, 2},                                /* heads % kv */
        {6, 4, 1, 2, 1, 4, 2},                                /* odd head size */
        {INT32_MAX, 4, 1, 1, 1, 4, 2}, {1 << 20, 1 << 20, 4096, 1, 1, 1 << 24, 1 << 24},
        {8, 4, 1, 2, 1, INT32_MIN, 2}, {8, 4, INT32_MAX, 2, 1, 4, 2},
        {8, 4, 1, 2, 1, 4, INT32_MAX},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        buf h = {0};
        put(&h, bad[i], 28);
        put_zeros(&h, 4096);
        EXPECT_FAIL(FMT_L2C, h.p, h.n, NULL);
        free(h.p);
    }
    check_mutations(FMT_L2C, b.p, 28, 300, 7);
    free(b.p);
}

/* ---------------- GGUF ---------------- */

static const hass_tensor *gguf_t(const hass_gguf *g, const char *name) {
    const hass_tensor *t = hass_gguf_find_tensor(g, name);
    CHECK_MSG(t != NULL, "missing %s", name);
    return t;
}

static const hass_tensor *l2c_t(const hass_llama2c *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name))
            return &m->tensors[i];
    CHECK_MSG(0, "missing %s", name);
    return NULL;
}

/* HF's permute(): row r = (head h, pair i, half j) of the interleaved layout moves to
 * (h, j, i), i.e. the half-rotation layout. out, w: (rows, cols). */
static void permute_half(float *out, const float *w, int rows, int cols, int n_heads) {
    int hd = rows / n_heads, half = hd / 2;
    for (int h = 0; h < n_heads; h++)
        for (int i = 0; i < half; i++)
            for (int j = 0; j < 2; j++)
                memcpy(out + ((size_t)h * hd + (size_t)j * half + i) * cols,
                       w + ((size_t)h * hd + (size_t)i * 2 + j) * cols, (size_t)cols * 4);
}

static void test_gguf_real(void) {
    const char *gp = check_shared("models/stories260K.gguf");
    const char *bp = check_shared("models/stories260K.bin");
    if (!gp || !bp) {
        CHECK_SKIP("stories260K.gguf / .bin not found");
        return;
    }
    hass_gguf g;
    hass_llama2c m;
    hass_err err = {0};
    CHECK_EQ_INT(hass_gguf_open(&g, gp, &err), HASS_OK);
    CHECK_EQ_INT(hass_llama2c_open(&m, bp, &err), HASS_OK);
    CHECK_EQ_INT(g.version, 3);
    CHECK_EQ_INT(g.n_tensors, 48);
    CHECK_EQ_INT(g.n_kv, 19);
    CHECK_EQ_INT(g.alignment, 32);
    CHECK(g.data_offset % 32 == 0);
    uint64_t u = 0;
    double eps = 0;
    CHECK(hass_gguf_get_u64(&g, "llama.embedding_length", &u) && u == 64);
    CHECK(hass_gguf_get_u64(&g, "llama.block_count", &u) && u == 5);
    CHECK(hass_gguf_get_u64(&g, "llama.attention.head_count_kv", &u) && u == 4);
    CHECK(hass_gguf_get_f64(&g, "llama.attention.layer_norm_rms_epsilon", &eps) &&
          fabs(eps - 1e-5) < 1e-10);
    CHECK(!hass_gguf_get_u64(&g, "no.such.key", &u));
    const char *arch = hass_gguf_get_str(&g, "general.architecture");
    CHECK(arch && !strcmp(arch, "llama"));
    const hass_gguf_kv *tok = hass_gguf_find(&g, "tokenizer.ggml.tokens");
    CHECK(tok && tok->type == HASS_GGUF_ARRAY && tok->arr_type == HASS_GGUF_STRING &&
          tok->arr_n == 512 && !strcmp(tok->arr_strs[0], "<unk>") && tok->arr_lens[0] == 5);

    const hass_tensor *te = gguf_t(&g, "token_embd.weight");
    const hass_tensor *me = l2c_t(&m, "model.embed_tokens.weight");
    if (te && me) {
        CHECK(te->dtype == HASS_DTYPE_F32 && te->ndim == 2 && te->shape[0] == 512 &&
              te->shape[1] == 64);
        CHECK_BITEQ(te->data, me->data, 512 * 64, "token_embd == llama2.c embedding");
    }
    const hass_tensor *out = gguf_t(&g, "output.weight");
    if (out && me)
        CHECK_BITEQ(out->data, me->data, 512 * 64, "output == embedding (tied in llama2.c)");
    CHECK_BITEQ(gguf_t(&g, "output_norm.weight")->data, l2c_t(&m, "model.norm.weight")->data, 64,
                "output_norm");
    /* Per layer: everything compares bit for bit without any permutation. */
    static const char *pairs[][2] = {
        {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},      {"attn_v", "self_attn.v_proj"},
        {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
        {"ffn_gate", "mlp.gate_proj"},       {"ffn_down", "mlp.down_proj"},
        {"ffn_up", "mlp.up_proj"},
    };
    int n_equal = 0, n_cmp = 0;
    for (int l = 0; l < 5; l++)
        for (int p = 0; p < 9; p++) {
            char gn[64], hn[96];
            snprintf(gn, sizeof gn, "blk.%d.%s.weight", l, pairs[p][0]);
            snprintf(hn, sizeof hn, "model.layers.%d.%s.weight", l, pairs[p][1]);
            const hass_tensor *a = gguf_t(&g, gn), *b = l2c_t(&m, hn);
            if (!a || !b)
                continue;
            n_cmp++;
            CHECK_MSG(a->ndim == b->ndim && a->shape[0] == b->shape[0] &&
                          a->shape[1] == b->shape[1],
                      "%s shape", gn);
            n_equal += a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes);
        }
    CHECK_EQ_INT(n_cmp, 45);
    CHECK_EQ_INT(n_equal, 45);
    /* RoPE layout: the converted q/k are llama2.c's rows unchanged (interleaved pairs), not
     * HF's permuted (half-rotation) rows. */
    const hass_tensor *q = gguf_t(&g, "blk.0.attn_q.weight");
    const hass_tensor *k = gguf_t(&g, "blk.0.attn_k.weight");
    float *perm = malloc(64 * 64 * 4);
    permute_half(perm, q->data, 64, 64, 8);
    CHECK(memcmp(perm, q->data, 64 * 64 * 4) != 0);
    permute_half(perm, k->data, 32, 64, 4);
    CHECK(memcmp(perm, k->data, 32 * 64 * 4) != 0);
    free(perm);

    /* Truncations: every length through the tensor infos, then every 499th. */
    check_truncations(FMT_GGUF, g.mf.data, g.mf.size, g.data_offset + 64, 499, "stories260K.gguf");
    hass_gguf_close(&g);
    hass_llama2c_close(&m);
}

static void test_gguf_vocab(void) {
    const char *path = check_shared("data/fixtures/ggml-vocab-llama-spm.gguf");
    if (!path) {
        CHECK_SKIP("ggml-vocab-llama-spm.gguf not found");
        return;
    }
    hass_gguf g;
    hass_err err = {0};
    CHECK_EQ_INT(hass_gguf_open(&g, path, &err), HASS_OK);
    CHECK_EQ_INT(g.n_tensors, 0);
    CHECK_EQ_INT(g.n_kv, 22);
    const hass_gguf_kv *t = hass_gguf_find(&g, "tokenizer.ggml.tokens");
    const hass_gguf_kv *s = hass_gguf_find(&g, "tokenizer.ggml.scores");
    const hass_gguf_kv *ty = hass_gguf_find(&g, "tokenizer.ggml.token_type");
    CHECK(t && t->arr_type == HASS_GGUF_STRING && t->arr_n == 32000);
    CHECK(s && s->arr_type == HASS_GGUF_F32 && s->arr_n == 32000);
    CHECK(ty && ty->arr_type == HASS_GGUF_I32 && ty->arr_n == 32000);
    if (t && t->arr_n == 32000) {
        CHECK(!strcmp(t->arr_strs[1], "<s>") && !strcmp(t->arr_strs[3], "<0x00>"));
        CHECK(!strcmp(t->arr_strs[29871], "\xe2\x96\x81"));
        CHECK(!strcmp(t->arr_strs[22172], "\xe2\x96\x81hello"));
    }
    uint64_t u = 0;
    CHECK(hass_gguf_get_u64(&g, "tokenizer.ggml.add_bos_token", &u) && u == 1);
    CHECK(hass_gguf_get_u64(&g, "llama.vocab_size", &u) && u == 32000);
    check_truncations(FMT_GGUF, g.mf.data, g.mf.size, 1024, 4099, "vocab gguf");
    hass_gguf_close(&g);
}

/* A small valid GGUF: 13 value types, a string array, two F32 tensors, a Q8_0 tensor. */
typedef struct {
    uint32_t version;
    uint64_t n_tensors_override, n_kv_override;
    int nested, bad_type, alignment; /* alignment: 0 = default */
    uint32_t ggml_type;              /* type of tensor "b" */
    uint64_t off_b;                  /* offset of tensor "b" (default 64) */
    uint32_t ndims_b;                /* default 2 */
    uint64_t str_len_override;       /* 0: none */
    int dup_key;
} gguf_spec;

static buf make_gguf(const gguf_spec *s) {
    buf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, s->version ? s->version : 3);
    put_u64(&b, s->n_tensors_override ? s->n_tensors_override : 3);
    int nkv = 16 + (s->alignment != 0) + (s->nested != 0) + (s->bad_type != 0) + s->dup_key;
    put_u64(&b, s->n_kv_override ? s->n_kv_override : (uint64_t)nkv);
    uint8_t b1 = 0xfe;
    uint16_t b2 = 0xfffe;
    double f64 = -2.5;
    float f32 = 0.25f;
    static const char *names[] = {"u8",  "i8",   "u16", "i16", "u32", "i32",
                                  "f32", "bool", "u64", "i64", "f64"};
    static const uint32_t types[] = {0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12};
    for (int i = 0; i < 11; i++) {
        char key[32];
        snprintf(key, sizeof key, "test.%s", names[i]);
        put_str(&b, key);
        put_u32(&b, types[i]);
        switch (types[i]) {
        case 0:
        case 1:
        case 7:
            put(&b, &b1, 1);
            break;
        case 2:
        case 3:
            put(&b, &b2, 2);
            break;
        case 4:
        case 5:
            put_u32(&b, 0xfffffffeu);
            break;
        case 6:
            put(&b, &f32, 4);
            break;
        case 12:
            put(&b, &f64, 8);
            break;
        default:
            put_u64(&b, 0xfffffffffffffffeull);
        }
    }
    put_str(&b, "general.architecture");
    put_u32(&b, 8);
    if (s->str_len_override) {
        put_u64(&b, s->str_len_override);
        put(&b, "llama", 5);
    } else {
        put_str(&b, "llama");
    }
    put_str(&b, "test.strs");
    put_u32(&b, 9);
    put_u32(&b, 8);
    put_u64(&b, 3);
    put_str(&b, "a");
    put_str(&b, "");
    put_str(&b, "ccc");
    put_str(&b, "test.i16s");
    put_u32(&b, 9);
    put_u32(&b, 3);
    put_u64(&b, 2);
    put(&b, "\x01\x00\xff\xff", 4);
    put_str(&b, "test.empty");
    put_u32(&b, 9);
    put_u32(&b, 6);
    put_u64(&b, 0);
    put_str(&b, "test.bool2");
    put_u32(&b, 7);
    put(&b, "\x01", 1);
    if (s->alignment) {
        put_str(&b, "general.alignment");
        put_u32(&b, 4);
        put_u32(&b, (uint32_t)s->alignment);
    }
    if (s->nested) {
        put_str(&b, "test.nested");
        put_u32(&b, 9);
        put_u32(&b, 9);
        put_u64(&b, 1);
        put_u32(&b, 4);
        put_u64(&b, 1);
        put_u32(&b, 7);
    }
    if (s->bad_type) {
        put_str(&b, "test.badtype");
        put_u32(&b, (uint32_t)s->bad_type);
        put_u32(&b, 0);
    }
    if (s->dup_key) {
        put_str(&b, "test.u8");
        put_u32(&b, 0);
        put(&b, &b1, 1);
    }
    /* tensors: a (F32, ne [4, 3]) at 0, b (type, ne [32, 2]) at off_b, c (F32 ne [5]) at 320 */
    put_str(&b, "a");
    put_u32(&b, 2);
    put_u64(&b, 4);
    put_u64(&b, 3);
    put_u32(&b, 0);
    put_u64(&b, 0);
    put_str(&b, "b");
    uint32_t nd = s->ndims_b ? s->ndims_b : 2;
    put_u32(&b, nd);
    for (uint32_t d = 0; d < nd; d++)
        put_u64(&b, d == 0 ? 32 : 2);
    put_u32(&b, s->ggml_type);
    put_u64(&b, s->off_b ? s->off_b : 64);
    put_str(&b, "c");
    put_u32(&b, 1);
    put_u64(&b, 5);
    put_u32(&b, 0);
    put_u64(&b, 320);
    size_t align = s->alignment > 0 ? (size_t)s->alignment : 32;
    while (b.n % align)
        put(&b, "", 1);
    for (int i = 0; i < 340; i++) {
        uint8_t x = (uint8_t)i;
        put(&b, &x, 1);
    }
    return b;
}

static void test_gguf_corrupt(void) {
    gguf_spec s0 = {0};
    buf b = make_gguf(&s0);
    hass_gguf g;
    hass_err err = {0};
    CHECK_EQ_INT(hass_gguf_parse(&g, b.p, b.n, &err), HASS_OK);
    if (!err.msg[0]) {
        uint64_t u;
        double f;
        CHECK(hass_gguf_get_u64(&g, "test.u8", &u) && u == 0xfe);
        CHECK(!hass_gguf_get_u64(&g, "test.i8", &u)); /* -2 */
        CHECK(hass_gguf_get_f64(&g, "test.i8", &f) && f == -2.0);
        CHECK(hass_gguf_get_f64(&g, "test.i16", &f) && f == -2.0);
        CHECK(hass_gguf_get_u64(&g, "test.u32", &u) && u == 0xfffffffeu);
        CHECK(hass_gguf_get_f64(&g, "test.i32", &f) && f == -2.0);
        CHECK(hass_gguf_get_f64(&g, "test.f32", &f) && f == 0.25);
        CHECK(hass_gguf_get_f64(&g, "test.f64", &f) && f == -2.5);
        CHECK(hass_gguf_get_u64(&g, "test.u64", &u) && u == 0xfffffffffffffffeull);
        CHECK(hass_gguf_get_f64(&g, "test.i64", &f) && f == -2.0);
        CHECK(hass_gguf_get_u64(&g, "test.bool2", &u) && u == 1);
        const hass_gguf_kv *kv = hass_gguf_find(&g, "test.strs");
        CHECK(kv && kv->arr_n == 3 && !strcmp(kv->arr_strs[2], "ccc") && kv->arr_lens[1] == 0);
        kv = hass_gguf_find(&g, "test.i16s");
        CHECK(kv && kv->arr_n == 2 && kv->arr_data && kv->arr_data[2] == 0xff);
        kv = hass_gguf_find(&g, "test.empty");
        CHECK(kv && kv->arr_n == 0 && kv->arr_type == HASS_GGUF_F32);
        const hass_tensor *a = hass_gguf_find_tensor(&g, "a"), *tb = hass_gguf_find_tensor(&g, "b");
        CHECK(a && a->ndim == 2 && a->shape[0] == 3 && a->shape[1] == 4 && a->nbytes == 48 &&
              (const uint8_t *)a->data == b.p + g.data_offset);
        CHECK(tb && tb->shape[0] == 2 && tb->shape[1] == 32 && tb->nbytes == 256 &&
              ((const uint8_t *)tb->data)[0] == 64);
    }
    hass_gguf_close(&g);
    check_truncations(FMT_GGUF, b.p, b.n, b.n, 1, "small gguf");
    check_mutations(FMT_GGUF, b.p, b.n, 3000, 11);

    /* Q8_0 tensor b: 2 rows of 32 -> 2 blocks of 34 bytes */
    gguf_spec s = {0};
    s.ggml_type = 8;
    buf q = make_gguf(&s);
    CHECK_EQ_INT(hass_gguf_parse(&g, q.p, q.n, &err), HASS_OK);
    CHECK(hass_gguf_find_tensor(&g, "b") && hass_gguf_find_tensor(&g, "b")->nbytes == 68);
    hass_gguf_close(&g);
    free(q.p);

    struct {
        gguf_spec s;
        const char *want;
    } cases[] = {
        {{.version = 1}, "version 1"},
        {{.version = 4}, "version 4"},
        {{.n_tensors_override = 1ull << 60}, "tensor count"},
        {{.n_kv_override = 1ull << 60}, "kv count"},
        {{.n_kv_override = UINT64_MAX}, "kv count"},
        {{.str_len_override = 1ull << 62}, "past the end"},
        {{.str_len_override = UINT64_MAX}, "past the end"},
        {{.nested = 1}, "nested"},
        {{.bad_type = 13}, "unknown value type"},
        {{.bad_type = 0x7fffffff}, "unknown value type"},
        {{.alignment = 3}, "alignment"},
        {{.alignment = -1}, "alignment"},
        {{.ggml_type = 10}, "Q2_K"},
        {{.ggml_type = 12}, "Q4_K row length 32 not a multiple of 256"},
        {{.ggml_type = 14}, "Q6_K row length 32 not a multiple of 256"},
        {{.ggml_type = 9999}, "not supported"},
        {{.ggml_type = 1}, NULL}, /* F16 b: 128 bytes at 64 overlaps nothing: valid, see below */
        {{.off_b = 48}, "alignment"},
        {{.off_b = 32}, "overlaps"},
        {{.off_b = 1ull << 62}, "past the end"},
        {{.off_b = UINT64_MAX - 31}, "past the end"},
        {{.ndims_b = 5}, "n_dims"},
        {{.dup_key = 1}, "duplicate key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        buf c = make_gguf(&cases[i].s);
        if (cases[i].s.ggml_type == 1)
            CHECK_EQ_INT(parse_copy(FMT_GGUF, c.p, c.n, &err), HASS_OK);
        else
            EXPECT_FAIL(FMT_GGUF, c.p, c.n, cases[i].want);
        free(c.p);
    }
    /* Q8_0 row length must be a multiple of 32 */
    {
        buf c = {0};
        put(&c, "GGUF", 4);
        put_u32(&c, 3);
        put_u64(&c, 1);
        put_u64(&c, 0);
        put_str(&c, "q");
        put_u32(&c, 1);
        put_u64(&c, 33);
        put_u32(&c, 8);
        put_u64(&c, 0);
        put_zeros(&c, 128);
        EXPECT_FAIL(FMT_GGUF, c.p, c.n, "multiple of 32");
        free(c.p);
    }
    /* bad magic, tiny inputs */
    memcpy(b.p, "GGUX", 4);
    EXPECT_FAIL(FMT_GGUF, b.p, b.n, "magic");
    EXPECT_FAIL(FMT_GGUF, (const uint8_t *)"", 0, "magic");
    free(b.p);
    /* a v2 file with no tensors and no kvs is fine */
    {
        buf c = {0};
        put(&c, "GGUF", 4);
        put_u32(&c, 2);
        put_u64(&c, 0);
        put_u64(&c, 0);
        CHECK_EQ_INT(parse_copy(FMT_GGUF, c.p, c.n, &err), HASS_OK);
        free(c.p);
    }
}

/* ---------------- safetensors ---------------- */

/* Builds a safetensors file from header JSON (padded to 8) and `data_len` data bytes. */
static buf st_make(const char *json, size_t data_len) {
    buf b = {0};
    size_t n = strlen(json), padded = (n + 7) & ~(size_t)7; /* space padding, like HF */
    put_u64(&b, padded);
    put(&b, json, n);
    put(&b, "        ", padded - n);
    for (size_t i = 0; i < data_len; i++) {
        uint8_t x = (uint8_t)i;
        put(&b, &x, 1);
    }
    return b;
}

static void st_expect(const char *json, size_t data_len, const char *want) {
    buf b = st_make(json, data_len);
    EXPECT_FAIL(FMT_ST, b.p, b.n, want);
    free(b.p);
}

static void test_safetensors_corrupt(void) {
    /* a valid one first */
    const char *ok = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
    buf b = st_make(ok, 16);
    hass_err err = {0};
    CHECK_EQ_INT(parse_copy(FMT_ST, b.p, b.n, &err), HASS_OK);
    check_truncations(FMT_ST, b.p, b.n, b.n, 1, "small safetensors");
    check_mutations(FMT_ST, b.p, b.n, 2000, 5);
    /* header length huge / past the file */
    uint64_t huge[] = {UINT64_MAX, 1ull << 62, 100000000, 99999999, 1000};
    for (int i = 0; i < 5; i++) {
        memcpy(b.p, &huge[i], 8);
        EXPECT_FAIL(FMT_ST, b.p, b.n, "header length");
    }
    free(b.p);

#define T1(spec) "{\"w\":" spec "}"
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}"), 8, "past the end");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}"), 24, "unindexed");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[-4,12]}"), 16,
              "non-negative");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[16,0]}"), 16,
              "end 0 < begin");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0.5,16.5]}"), 17,
              "non-negative integers");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,1e300]}"), 16,
              "non-negative integers");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0]}"), 16, "two");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}"), 16, "24 bytes");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[-2,-2],\"data_offsets\":[0,16]}"), 16, "shape[0]");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                 "\"data_offsets\":[0,16]}"),
              16, "overflow");
    st_expect(T1("{\"dtype\":\"F32\",\"shape\":[1,1,1,2,2],\"data_offsets\":[0,16]}"), 16,
              "5 dims");
    st_expect(T1("{\"dtype\":\"F8_E4M3\",\"shape\":[16],\"data_offsets\":[0,16]}"), 16,
              "dtype F8_E4M3 not supported");
    st_expect(T1("{\"dtype\":3,\"shape\":[4],\"data_offsets\":[0,16]}"), 16, "string dtype");
    st_expect(T1("{\"dtype\":\"F32\",\"data_offsets\":[0,16]}"), 16, "array shape");
    st_expect(T1("[1,2]"), 16, "not an object");
    st_expect("[1,2,3]", 0, "not a JSON object");
    st_expect("{\"w\":", 0, "not valid JSON");
    st_expect("{} x", 0, "garbage");
    st_expect("{\"__metadata__\":[1]}", 0, "__metadata__");
    /* two tensors: overlapping, hole, misaligned, duplicate */
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}  ",
              12, "overlaps");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}  ",
              12, "hole");
    st_expect("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
              "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]}}       ",
              5, "aligned");
    st_expect("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}  ",
              8, "duplicate");
    /* too short for a header */
    EXPECT_FAIL(FMT_ST, (const uint8_t *)"\x02\0\0\0", 4, "too short");
    /* empty tensors (0 bytes) and an empty file list are fine */
    {
        buf c = st_make("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                        "\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}",
                        8);
        CHECK_EQ_INT(parse_copy(FMT_ST, c.p, c.n, &err), HASS_OK);
        free(c.p);
        /* an empty I32 right after a U8 byte: unaligned but never read, HF accepts it */
        c = st_make("{\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                    "\"z\":{\"dtype\":\"I32\",\"shape\":[0],\"data_offsets\":[1,1]}}",
                    1);
        CHECK_EQ_INT(parse_copy(FMT_ST, c.p, c.n, &err), HASS_OK);
        free(c.p);
        c = st_make("{}", 0);
        CHECK_EQ_INT(parse_copy(FMT_ST, c.p, c.n, &err), HASS_OK);
        free(c.p);
    }
}

/* A header the reader must accept: the tensor `name` (decoded) is found; md: the expected
 * metadata_json (NULL: none), or "cjson:" and an object's text that cJSON re-serialises. */
static void st_accept(const char *json, size_t data_len, const char *name, const char *md,
                      int line) {
    buf b = st_make(json, data_len);
    hass_safetensors st;
    hass_err err = {0};
    hass_status rc = hass_safetensors_parse(&st, b.p, b.n, &err);
    CHECK_MSG(rc == HASS_OK, "line %d: rc %d: %s", line, (int)rc, err.msg);
    if (!rc && name)
        CHECK_MSG(hass_safetensors_find(&st, name) != NULL, "line %d: no tensor %s", line, name);
    char *want = NULL;
    if (md && !strncmp(md, "cjson:", 6)) {
        cJSON *o = cJSON_Parse(md + 6);
        want = o ? cJSON_PrintUnformatted(o) : NULL;
        cJSON_Delete(o);
        CHECK(want != NULL);
        md = want;
    }
    if (!rc)
        CHECK_MSG(md ? st.metadata_json && !strcmp(st.metadata_json, md) : !st.metadata_json,
                  "line %d: metadata '%s', want '%s'", line,
                  st.metadata_json ? st.metadata_json : "(none)", md ? md : "(none)");
    free(want);
    hass_safetensors_close(&st);
    free(b.p);
}
#define ST_ACCEPT(json, n, name, md) st_accept((json), (n), (name), (md), __LINE__)

/* The header grammar: key order, whitespace, skipped members, number forms, string escapes and
 * UTF-8, and what each violation is reported as. */
static void test_safetensors_grammar(void) {
#define F32x4 "\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]"
    ST_ACCEPT("{\"w\":{\"data_offsets\":[0,16],\"shape\":[2,2],\"dtype\":\"F32\"}}", 16, "w", NULL);
    ST_ACCEPT(" \n{ \"w\" :\t{ \"dtype\" : \"F32\" , \"shape\" : [ 2 , 2 ] , \"data_offsets\" :"
              " [ 0 , 16 ] } } \r\n",
              16, "w", NULL);
    /* members other than the three are skipped, whatever their value */
    ST_ACCEPT("{\"w\":{\"x\":{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":\"q\\\"}\"},\"dtype\":"
              "\"F32\",\"y\":[],\"shape\":[4],\"data_offsets\":[0,16],\"z\":-1.5e-3,\"f\":false}}",
              16, "w", NULL);
    /* integers in any number form; exact, not rounded */
    ST_ACCEPT("{\"w\":{\"dtype\":\"F32\",\"shape\":[4.0],\"data_offsets\":[-0,1.6e1]}}", 16, "w",
              NULL);
    ST_ACCEPT("{\"w\":{\"dtype\":\"F32\",\"shape\":[400e-2],\"data_offsets\":[0E5,0.016E3]}}", 16,
              "w", NULL);
    st_expect("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,9007199254740993]}}", 16,
              "non-negative integers");
    st_expect("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16.000000000000001]}}",
              16, "non-negative integers");
    st_expect("{\"w\":{\"dtype\":\"U8\",\"shape\":[9007199254740992],\"data_offsets\":[0,16]}}", 16,
              "data_offsets span 16");
    st_expect("{\"w\":{\"dtype\":\"F32\",\"shape\":[\"4\"],\"data_offsets\":[0,16]}}", 16,
              "shape[0]");
    const char *bad_numbers[] = {"01", "1.", ".5", "+1", "1e", "1e+", "--1", "0x10", "1.e3"};
    for (size_t i = 0; i < sizeof bad_numbers / sizeof *bad_numbers; i++) {
        char j[160];
        snprintf(j, sizeof j,
                 "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],"
                 "\"x\":%s}}",
                 bad_numbers[i]);
        st_expect(j, 16, "not valid JSON");
    }
    /* names: escapes, \u with surrogate pairs, raw UTF-8 */
    ST_ACCEPT("{\"w\\u00e9\\ud83d\\ude00\\n\\\"\\\\\\/\\t\":{" F32x4 "}}", 16,
              "w\xc3\xa9\xf0\x9f\x98\x80\n\"\\/\t", NULL);
    ST_ACCEPT("{\"w\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf\":{" F32x4 "}}", 16,
              "w\xc3\xa9\xe2\x82\xac\xf4\x8f\xbf\xbf", NULL);
    const char *bad_names[][2] = {
        {"w\\x", "escape"},        {"w\\u12", "escape"},           {"w\\u12g4", "escape"},
        {"w\\ud800", "surrogate"}, {"w\\udc00x", "surrogate"},     {"w\\ud800\\u0041", "surrogate"},
        {"w\xff", "UTF-8"},        {"w\xc0\xaf", "UTF-8"},         {"w\xed\xa0\x80", "UTF-8"},
        {"w\xe2\x82", "UTF-8"},    {"w\xf4\x90\x80\x80", "UTF-8"}, {"w\x01", "control"},
        {"w\t", "control"},        {"w\\u0000x", "NUL"},           {"", "empty tensor name"},
    };
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        char j[200];
        snprintf(j, sizeof j, "{\"%s\":{" F32x4 "}}", bad_names[i][0]);
        st_expect(j, 16, bad_names[i][1]);
    }
    {
        char j[400], name[161];
        memset(name, 'n', 159);
        name[159] = 0;
        snprintf(j, sizeof j, "{\"%s\":{" F32x4 "}}", name);
        ST_ACCEPT(j, 16, name, NULL);
        snprintf(j, sizeof j, "{\"%sn\":{" F32x4 "}}", name);
        st_expect(j, 16, "too long (160 bytes)");
        snprintf(j, sizeof j, "{\"%s\\u00e9\":{" F32x4 "}}", name); /* 161 bytes decoded */
        st_expect(j, 16, "too long (161 bytes)");
    }
    /* an entry's keys once each; its value and the root's members */
    st_expect("{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
              16, "\"dtype\" appears twice");
    st_expect("{\"w\":{" F32x4 ",\"shape\":[4]}}", 16, "\"shape\" appears twice");
    st_expect("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":{}}}", 16,
              "array data_offsets");
    st_expect("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16],}}", 16,
              "not valid JSON");
    st_expect("{\"w\":{" F32x4 "},}", 16, "not valid JSON");
    st_expect("{\"w\":{" F32x4 "} \"v\":{}}", 16, "not valid JSON");
    st_expect("{\"w\" {" F32x4 "}}", 16, "not valid JSON");
    st_expect("{w:{" F32x4 "}}", 16, "not valid JSON");
    st_expect("{\"w\":{" F32x4 ",\"x\":tru}}", 16, "not valid JSON");
    st_expect("{\"w\":{" F32x4 ",\"x\":[1,2}}", 16, "not valid JSON");
    {
        const char *j = "{\"w\":{" F32x4 "}}"; /* 55 bytes, padded to 56: a NUL in the pad */
        buf b = st_make(j, 16);
        CHECK(strlen(j) % 8 != 0);
        b.p[8 + strlen(j)] = 0;
        EXPECT_FAIL(FMT_ST, b.p, b.n, "garbage");
        free(b.p);
    }
    st_expect("   ", 0, "not a JSON object");
    st_expect("{\"w\":{" F32x4 "}}}", 16, "garbage");
    {
        /* skipped values nest up to a limit (64 levels under the entry here) */
        char j[400];
        int k = snprintf(j, sizeof j, "{\"w\":{" F32x4 ",\"x\":");
        for (int d = 0; d < 62; d++)
            j[k++] = '[';
        for (int d = 0; d < 62; d++)
            j[k++] = ']';
        snprintf(j + k, sizeof j - (size_t)k, "}}");
        ST_ACCEPT(j, 16, "w", NULL);
        k = snprintf(j, sizeof j, "{\"w\":{" F32x4 ",\"x\":");
        for (int d = 0; d < 100; d++)
            j[k++] = '[';
        snprintf(j + k, sizeof j - (size_t)k, "}}");
        st_expect(j, 16, "nested too deeply");
    }
    /* __metadata__: an object of strings, re-serialised as cJSON prints it; its key may be
     * written with escapes; anywhere among the tensors; once */
    ST_ACCEPT("{\"__metadata__\":{}}", 0, NULL, "{}");
    ST_ACCEPT("{\"w\":{" F32x4 "} , \"__metadata__\" : { \"format\" : \"pt\" } }", 16, "w",
              "{\"format\":\"pt\"}");
    ST_ACCEPT("{\"\\u005f_metadata__\":{\"a\":\"b\"},\"w\":{" F32x4 "}}", 16, "w", "{\"a\":\"b\"}");
    ST_ACCEPT("{\"__metadata__\":{\"a\\\"b\":\"line\\nnext\\u0001 \\u00e9 \xc3\xa9 "
              "\\ud83d\\ude00 \\/ \\\\ \\b\\f\\r\\t\\u001fz\",\"k\":\"\"}}",
              0, NULL,
              "cjson:{\"a\\\"b\":\"line\\nnext\\u0001 \\u00e9 \xc3\xa9 \\ud83d\\ude00 \\/ \\\\ "
              "\\b\\f\\r\\t\\u001fz\",\"k\":\"\"}");
    /* a NUL stays escaped (cJSON would cut the string there) */
    ST_ACCEPT("{\"__metadata__\":{\"a\":\"x\\u0000z\"}}", 0, NULL, "{\"a\":\"x\\u0000z\"}");
    st_expect("{\"__metadata__\":{\"a\":1}}", 0, "not a string");
    st_expect("{\"__metadata__\":{\"a\":{\"b\":\"c\"}}}", 0, "not a string");
    st_expect("{\"__metadata__\":{\"a\":\"b\"},\"__metadata__\":{}}", 0, "appears twice");
    st_expect("{\"__metadata__\":{\"a\" \"b\"}}", 0, "not valid JSON");
    st_expect("{\"__metadata__\":{\"a\":\"b\",}}", 0, "not valid JSON");
    st_expect("{\"__metadata__\":{\"a\":\"\xff\"}}", 0, "UTF-8");
    st_expect("{\"__metadata__\":", 0, "not valid JSON");
#undef F32x4
}

/* ---- header memory ---- */

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, n))
            v = atol(line + n);
    if (f)
        fclose(f);
    return v;
}

/* Opens path in a child process: out[0] = growth of its resident peak over the call in bytes
 * (-1: the open failed, -2: the peak cannot be reset here), out[1] = the tensor count. The
 * header's pages read through the mapping count as resident too. */
static void open_peak(const char *path, long out[2]) {
    out[0] = -1;
    out[1] = 0;
    int fds[2];
    if (pipe(fds))
        return;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        long r[2] = {-2, 0};
        FILE *f = fopen("/proc/self/clear_refs", "w"); /* "5": reset the peak to the current */
        if (f && fputs("5", f) >= 0 && fclose(f) == 0) {
            long base = status_kb("VmRSS:");
            hass_safetensors st;
            hass_err err = {0};
            r[0] = -1;
            if (hass_safetensors_open(&st, path, &err) == HASS_OK) {
                r[0] = (status_kb("VmHWM:") - base) * 1024;
                r[1] = st.n_tensors;
            } else {
                fprintf(stderr, "open_peak: %s\n", err.msg);
            }
            hass_safetensors_close(&st);
        }
        if (write(fds[1], r, sizeof r) != (ssize_t)sizeof r)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    if (pid > 0 && read(fds[0], out, 2 * sizeof *out) != (ssize_t)(2 * sizeof *out))
        out[0] = -1;
    close(fds[0]);
    if (pid > 0)
        waitpid(pid, NULL, 0);
}

/* Writes a safetensors file of no data whose header is json[0, n) (padded to 8). */
static void write_header_file(const char *path, const char *json, size_t n) {
    size_t padded = (n + 7) & ~(size_t)7;
    FILE *f = fopen(path, "wb");
    uint64_t len = padded;
    int ok = f && fwrite(&len, 8, 1, f) == 1 && fwrite(json, 1, n, f) == n &&
             fwrite("        ", 1, padded - n, f) == padded - n;
    CHECK(f && fclose(f) == 0 && ok);
}

/* The parser's memory is the table it returns, not a DOM of the header: a header near the
 * 64 MiB cap, as one huge __metadata__ string, as one member of millions of numbers and as the
 * most tensors it can list, opened in a child whose peak resident growth is measured (with the
 * mapped header itself). */
static void test_safetensors_header_memory(void) {
#ifdef HASS_SANITIZE
    const size_t target = (size_t)4 << 20; /* the sanitizers' shadow memory has its own peaks */
#else
    const size_t target = ((size_t)64 << 20) - 4096;
#endif
    const char *path = check_path("big_header.safetensors");
    char *j = malloc(target + 256);
    HASS_ASSERT(j);
    /* 1. one string of almost the whole header */
    size_t n = (size_t)snprintf(j, 64, "{\"__metadata__\":{\"big\":\"");
    memset(j + n, 'x', target - n - 3);
    memcpy(j + target - 3, "\"}}", 3);
    write_header_file(path, j, target);
    long r[2];
    open_peak(path, r);
    if (r[0] == -2) {
        CHECK_SKIP("cannot reset the resident peak (/proc/self/clear_refs)");
    } else {
        CHECK_MSG(r[0] >= 0 && r[1] == 0, "big metadata: open failed");
        double ratio = (double)r[0] / (double)target;
        fprintf(stderr, "  header of %zu bytes, one metadata string: peak +%.1f MiB (%.2fx)\n",
                target, (double)r[0] / 1048576.0, ratio);
#ifndef HASS_SANITIZE
        CHECK_MSG(r[0] <= 3 * (long)target + (8l << 20), "metadata header: peak %ld bytes", r[0]);
#endif
    }
    /* 2. one tensor with a member of millions of numbers, skipped (a DOM: 40x the header) */
    n = (size_t)snprintf(j, 128,
                         "{\"w\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0],"
                         "\"junk\":[0");
    for (; n < target / 4; n += 2) /* a quarter of the cap: the parse is per byte, no faster */
        memcpy(j + n, ",0", 2);
    memcpy(j + n, "]}}", 3);
    n += 3;
    write_header_file(path, j, n);
    open_peak(path, r);
    if (r[0] != -2) {
        CHECK_MSG(r[0] >= 0 && r[1] == 1, "skipped array: open failed");
        fprintf(stderr, "  header of %zu bytes, a skipped array: peak +%.1f MiB (%.2fx)\n", n,
                (double)r[0] / 1048576.0, (double)r[0] / (double)n);
#ifndef HASS_SANITIZE
        CHECK_MSG(r[0] <= (long)n + (8l << 20), "skipped array: peak %ld bytes", r[0]);
#endif
    }
    /* 3. the most (empty) tensors: the shortest entries, each a 216-byte hass_tensor */
    n = 1;
    j[0] = '{';
    long count = 0;
    while (n < target - 80)
        n += (size_t)snprintf(j + n, 80,
                              "%s\"%lx\":{\"dtype\":\"U8\",\"shape\":[0],"
                              "\"data_offsets\":[0,0]}",
                              count ? "," : "", (unsigned long)count),
            count++;
    j[n++] = '}';
    write_header_file(path, j, n);
    free(j);
    open_peak(path, r);
    if (r[0] != -2) {
        CHECK_MSG(r[0] >= 0 && r[1] == count, "many tensors: open failed (%ld of %ld)", r[1],
                  count);
        long table = count * (long)sizeof(hass_tensor);
        fprintf(stderr,
                "  header of %zu bytes, %ld tensors: peak +%.1f MiB (%.2fx the header; the "
                "table alone %.2fx)\n",
                n, count, (double)r[0] / 1048576.0, (double)r[0] / (double)n,
                (double)table / (double)n);
#ifndef HASS_SANITIZE
        /* the mapped header, the table, and at most 48 bytes a tensor of sort scratch */
        CHECK_MSG(r[0] <= (long)n + table + 48 * count + (8l << 20),
                  "many tensors: peak %ld bytes for a table of %ld", r[0], table);
#endif
    }
    unlink(path);
}

/* ---- round trip ---- */

static char tmpdir[256];

static void path_in(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static void test_safetensors_roundtrip(void) {
    if (!tmpdir[0]) {
        CHECK_SKIP("no temp dir");
        return;
    }
    /* six tensors of every dtype, odd sizes, in a mixed order; 0-d and 4-d shapes */
    static const hass_dtype dts[] = {HASS_DTYPE_U8,  HASS_DTYPE_F32,  HASS_DTYPE_F16,
                                     HASS_DTYPE_I64, HASS_DTYPE_BF16, HASS_DTYPE_I32};
    static const int64_t shapes[][4] = {{7, 3}, {3, 5}, {2, 1, 3, 5}, {0}, {13}, {1, 1, 1, 1}};
    static const int ndims[] = {2, 2, 4, 0, 1, 4};
    hass_tensor ts[6];
    uint8_t *store[6];
    hass_rng rng;
    hass_rng_seed(&rng, 42);
    for (int i = 0; i < 6; i++) {
        memset(&ts[i], 0, sizeof ts[i]);
        snprintf(ts[i].name, sizeof ts[i].name, "model.t%d.\"quoted\\name\"", i);
        ts[i].dtype = dts[i];
        ts[i].ndim = ndims[i];
        memcpy(ts[i].shape, shapes[i], sizeof shapes[i]);
        size_t nb = hass_dtype_bytes(dts[i], (size_t)hass_tensor_numel(&ts[i]));
        if (dts[i] == HASS_DTYPE_U8)
            nb = (size_t)hass_tensor_numel(&ts[i]);
        store[i] = malloc(nb + 1);
        for (size_t k = 0; k < nb; k++)
            store[i][k] = (uint8_t)hass_rng_u64(&rng);
        ts[i].data = store[i];
        ts[i].nbytes = nb;
    }
    char path[512];
    path_in(path, sizeof path, "rt.safetensors");
    hass_err err = {0};
    CHECK_EQ_INT(hass_safetensors_write(path, ts, 6, "{\"format\":\"pt\",\"note\":\"x\"}", &err),
                 HASS_OK);
    hass_safetensors st;
    CHECK_EQ_INT(hass_safetensors_open(&st, path, &err), HASS_OK);
    CHECK_EQ_INT(st.n_tensors, 6);
    for (int i = 0; i < 6; i++) {
        const hass_tensor *t = hass_safetensors_find(&st, ts[i].name);
        CHECK_MSG(t != NULL, "missing %s", ts[i].name);
        if (!t)
            continue;
        CHECK(t->dtype == ts[i].dtype && t->ndim == ts[i].ndim && t->nbytes == ts[i].nbytes);
        CHECK(!memcmp(t->shape, ts[i].shape, sizeof(int64_t) * (size_t)t->ndim));
        CHECK(!memcmp(t->data, ts[i].data, t->nbytes));
        size_t es = t->dtype == HASS_DTYPE_U8 ? 1 : hass_dtype_bytes(t->dtype, 1);
        CHECK((size_t)((const uint8_t *)t->data - st.mf.data) % es == 0);
    }
    /* header: 8-aligned length, space padded, metadata kept */
    uint64_t hlen;
    memcpy(&hlen, st.mf.data, 8);
    CHECK(hlen % 8 == 0 && st.mf.data[8] == '{');
    CHECK(st.metadata_json && strstr(st.metadata_json, "\"format\":\"pt\""));
    hass_safetensors_close(&st);
    hass_safetensors_close(&st); /* double close is safe */

    /* writer refuses bad input */
    hass_tensor bad = ts[1];
    bad.nbytes += 4;
    CHECK_EQ_INT(hass_safetensors_write(path, &bad, 1, NULL, &err), HASS_STATUS_SHAPE);
    hass_tensor dup[2] = {ts[1], ts[1]};
    CHECK_EQ_INT(hass_safetensors_write(path, dup, 2, NULL, &err), HASS_STATUS_ARG);
    CHECK_EQ_INT(hass_safetensors_write(path, ts, 2, "{\"a\":1}", &err), HASS_STATUS_ARG);
    bad = ts[1];
    bad.dtype = HASS_DTYPE_Q8_0;
    CHECK_EQ_INT(hass_safetensors_write(path, &bad, 1, NULL, &err), HASS_STATUS_UNSUPPORTED);
    char nodir[600];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.safetensors", tmpdir);
    CHECK_EQ_INT(hass_safetensors_write(nodir, ts, 1, NULL, &err), HASS_STATUS_IO);

    /* directory: single file */
    char sub[512], p2[600];
    path_in(sub, sizeof sub, "single");
    mkdir(sub, 0755);
    snprintf(p2, sizeof p2, "%s/model.safetensors", sub);
    CHECK_EQ_INT(hass_safetensors_write(p2, ts, 6, NULL, &err), HASS_OK);
    hass_st_set set;
    CHECK_EQ_INT(hass_safetensors_open_dir(&set, sub, &err), HASS_OK);
    CHECK(set.n_shards == 1 && set.n_tensors == 6);
    CHECK(hass_st_set_find(&set, ts[4].name) != NULL && !hass_st_set_find(&set, "nope"));
    hass_st_set_close(&set);

    /* sharded: 3 tensors + 3 tensors, with an index */
    path_in(sub, sizeof sub, "sharded");
    mkdir(sub, 0755);
    snprintf(p2, sizeof p2, "%s/model-00001-of-00002.safetensors", sub);
    CHECK_EQ_INT(hass_safetensors_write(p2, ts, 3, NULL, &err), HASS_OK);
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", sub);
    CHECK_EQ_INT(hass_safetensors_write(p2, ts + 3, 3, NULL, &err), HASS_OK);
    const char *shard[2] = {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    char idx[4096];
    size_t k =
        (size_t)snprintf(idx, sizeof idx, "{\"metadata\":{\"total_size\":1},\"weight_map\":{");
    for (int i = 0; i < 6; i++) {
        char esc[200];
        size_t e = 0;
        for (const char *c = ts[i].name; *c; c++) {
            if (*c == '"' || *c == '\\')
                esc[e++] = '\\';
            esc[e++] = *c;
        }
        esc[e] = 0;
        k += (size_t)snprintf(idx + k, sizeof idx - k, "%s\"%s\":\"%s\"", i ? "," : "", esc,
                              shard[i / 3]);
    }
    snprintf(idx + k, sizeof idx - k, "}}");
    snprintf(p2, sizeof p2, "%s/model.safetensors.index.json", sub);
    CHECK_EQ_INT(hass_write_file_atomic(p2, idx, strlen(idx), &err), HASS_OK);
    CHECK_EQ_INT(hass_safetensors_open_dir(&set, sub, &err), HASS_OK);
    CHECK(set.n_shards == 2 && set.n_tensors == 6 && set.index_metadata_json);
    for (int i = 0; i < 6; i++) {
        const hass_tensor *t = hass_st_set_find(&set, ts[i].name);
        CHECK(t && t->nbytes == ts[i].nbytes && !memcmp(t->data, ts[i].data, t->nbytes));
    }
    hass_st_set_close(&set);
    /* index naming a tensor its shard lacks */
    char wrong[4096];
    snprintf(wrong, sizeof wrong, "%s", idx);
    char *pos = strstr(wrong, shard[1]);
    if (pos)
        pos[10] = '1'; /* tensor 3 now claims shard 1 */
    CHECK_EQ_INT(hass_write_file_atomic(p2, wrong, strlen(wrong), &err), HASS_OK);
    CHECK_EQ_INT(hass_safetensors_open_dir(&set, sub, &err), HASS_STATUS_FORMAT);
    CHECK(strstr(err.msg, "not found in shard") != NULL);
    const char *evil = "{\"weight_map\":{\"a\":\"../x.safetensors\"}}";
    CHECK_EQ_INT(hass_write_file_atomic(p2, evil, strlen(evil), &err), HASS_OK);
    CHECK_EQ_INT(hass_safetensors_open_dir(&set, sub, &err), HASS_STATUS_FORMAT);
    const char *noshard = "{\"weight_map\":{\"a\":\"missing.safetensors\"}}";
    CHECK_EQ_INT(hass_write_file_atomic(p2, noshard, strlen(noshard), &err), HASS_OK);
    CHECK_EQ_INT(hass_safetensors_open_dir(&set, sub, &err), HASS_STATUS_IO);
    CHECK_EQ_INT(hass_write_file_atomic(p2, "[]", 2, &err), HASS_OK);
    CHECK_EQ_INT(hass_safetensors_open_dir(&set, sub, &err), HASS_STATUS_FORMAT);
    /* the same tensor in two shards */
    snprintf(p2, sizeof p2, "%s/model-00002-of-00002.safetensors", sub);
    CHECK_EQ_INT(hass_safetensors_write(p2, ts, 1, NULL, &err), HASS_OK);
    snprintf(p2, sizeof p2, "%s/model.safetensors.index.json", sub);
    CHECK_EQ_INT(hass_write_file_atomic(p2, idx, strlen(idx), &err), HASS_OK);
    CHECK_EQ_INT(hass_safetensors_open_dir(&set, sub, &err), HASS_STATUS_FORMAT);
    path_in(sub, sizeof sub, "empty");
    mkdir(sub, 0755);
    CHECK_EQ_INT(hass_safetensors_open_dir(&set, sub, &err), HASS_STATUS_NOTFOUND);
    hass_st_set_close(&set);
    for (int i = 0; i < 6; i++)
        free(store[i]);
}

/* ---------------- GGUF writer ---------------- */

/* every scalar type at its extremes, strings with NUL and UTF-8, arrays of every element type */
static void add_all_types(hass_gguf_kvs *l, hass_err *err) {
    static const uint8_t u8s[] = {0, 1, 255};
    static const int8_t i8s[] = {-128, 0, 127};
    static const uint16_t u16s[] = {0, 65535};
    static const int16_t i16s[] = {-32768, 32767};
    static const uint32_t u32s[] = {0, 4294967295u, 7};
    static const int32_t i32s[] = {INT32_MIN, -1, INT32_MAX};
    static const float f32s[] = {1.5f, -0.0f, 3.4e38f, 1e-45f};
    static const uint8_t bools[] = {1, 0, 1};
    static const uint64_t u64s[] = {UINT64_MAX, 0};
    static const int64_t i64s[] = {INT64_MIN, INT64_MAX};
    static const double f64s[] = {0.1, -1e300};
    static const struct {
        hass_gguf_type t;
        const void *p;
        uint64_t n;
    } arrs[] = {{HASS_GGUF_U8, u8s, 3},   {HASS_GGUF_I8, i8s, 3},     {HASS_GGUF_U16, u16s, 2},
                {HASS_GGUF_I16, i16s, 2}, {HASS_GGUF_U32, u32s, 3},   {HASS_GGUF_I32, i32s, 3},
                {HASS_GGUF_F32, f32s, 4}, {HASS_GGUF_BOOL, bools, 3}, {HASS_GGUF_U64, u64s, 2},
                {HASS_GGUF_I64, i64s, 2}, {HASS_GGUF_F64, f64s, 2},   {HASS_GGUF_U32, u32s, 0}};
    hass_gguf_kv s[] = {
        {.key = "t.u8", .type = HASS_GGUF_U8, .v.u = 255},
        {.key = "t.i8", .type = HASS_GGUF_I8, .v.i = -128},
        {.key = "t.u16", .type = HASS_GGUF_U16, .v.u = 65535},
        {.key = "t.i16", .type = HASS_GGUF_I16, .v.i = -32768},
        {.key = "t.u32", .type = HASS_GGUF_U32, .v.u = 4294967295u},
        {.key = "t.i32", .type = HASS_GGUF_I32, .v.i = INT32_MIN},
        {.key = "t.f32", .type = HASS_GGUF_F32, .v.f = -2.5},
        {.key = "t.bool", .type = HASS_GGUF_BOOL, .v.u = 1},
        {.key = "t.u64", .type = HASS_GGUF_U64, .v.u = UINT64_MAX},
        {.key = "t.i64", .type = HASS_GGUF_I64, .v.i = INT64_MIN},
        {.key = "t.f64", .type = HASS_GGUF_F64, .v.f = 0.1},
        {.key = "t.str", .type = HASS_GGUF_STRING, .str = "a\0b\xc3\xa9", .str_len = 5},
        {.key = "t.empty", .type = HASS_GGUF_STRING, .str = "", .str_len = 0},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        CHECK_MSG(hass_gguf_kvs_add(l, &s[i], err) == HASS_OK, "%s: %s", s[i].key, err->msg);
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "a.%zu", i);
        CHECK(hass_gguf_kvs_array(l, key, arrs[i].t, arrs[i].p, arrs[i].n, err) == HASS_OK);
    }
    static const char *strs[] = {"tok", "", "x\0y", "\xe2\x96\x81hi"};
    static const uint32_t lens[] = {3, 0, 3, 5};
    CHECK(hass_gguf_kvs_strings(l, "a.strs", strs, lens, 4, err) == HASS_OK);
    CHECK(hass_gguf_kvs_strings(l, "a.cstrs", strs, NULL, 2, err) == HASS_OK);
}

/* the reader's view of a key equals what was written */
static int kv_equal(const hass_gguf_kv *a, const hass_gguf_kv *b) {
    if (strcmp(a->key, b->key) || a->type != b->type)
        return 0;
    if (a->type == HASS_GGUF_STRING)
        return a->str_len == b->str_len && !memcmp(a->str, b->str, a->str_len);
    if (a->type != HASS_GGUF_ARRAY)
        return !memcmp(&a->v, &b->v, sizeof a->v);
    if (a->arr_type != b->arr_type || a->arr_n != b->arr_n)
        return 0;
    for (uint64_t i = 0; a->arr_type == HASS_GGUF_STRING && i < a->arr_n; i++)
        if (a->arr_lens[i] != b->arr_lens[i] ||
            memcmp(a->arr_strs[i], b->arr_strs[i], a->arr_lens[i]))
            return 0;
    static const size_t es[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return a->arr_type == HASS_GGUF_STRING || !a->arr_n ||
           !memcmp(a->arr_data, b->arr_data, (size_t)a->arr_n * es[a->arr_type]);
}

typedef struct {
    const hass_tensor *t;
    int64_t fail_at; /* -1: never */
    int64_t calls;
} fill_ctx;

static hass_status fill_copy(void *ctx, int64_t i, void *dst, hass_err *err) {
    fill_ctx *c = ctx;
    c->calls++;
    if (i == c->fail_at)
        return hass_err_set(err, HASS_STATUS_IO, "fill %lld failed", (long long)i);
    memcpy(dst, c->t[i].data, c->t[i].nbytes);
    return HASS_OK;
}

/* tensors of every writable dtype: (5, 3) F32, (7) F16, (2, 3, 4) BF16, (3, 64) Q8_0, (0, 4) */
typedef struct {
    hass_tensor t[5];
    uint8_t *store[5];
} wtensors;

static void make_wtensors(wtensors *w) {
    static const hass_dtype dts[] = {HASS_DTYPE_F32, HASS_DTYPE_F16, HASS_DTYPE_BF16,
                                     HASS_DTYPE_Q8_0, HASS_DTYPE_F32};
    static const int64_t shapes[][3] = {{5, 3}, {7}, {2, 3, 4}, {3, 64}, {0, 4}};
    static const int nd[] = {2, 1, 3, 2, 2};
    static const char *names[] = {"w.f32", "w.f16", "w.bf16", "w.q8", "w.empty"};
    hass_rng rng;
    hass_rng_seed(&rng, 7);
    for (int i = 0; i < 5; i++) {
        hass_tensor *t = &w->t[i];
        memset(t, 0, sizeof *t);
        snprintf(t->name, sizeof t->name, "%s", names[i]);
        t->dtype = dts[i];
        t->ndim = nd[i];
        size_t numel = 1;
        for (int d = 0; d < nd[i]; d++)
            numel *= (size_t)(t->shape[d] = shapes[i][d]);
        t->nbytes = hass_dtype_bytes(dts[i], numel);
        w->store[i] = malloc(t->nbytes + 1);
        for (size_t k = 0; k < t->nbytes; k++)
            w->store[i][k] = (uint8_t)hass_rng_u64(&rng);
        t->data = w->store[i];
    }
}

static void free_wtensors(wtensors *w) {
    for (int i = 0; i < 5; i++)
        free(w->store[i]);
}

static void check_read_back(const char *path, const hass_gguf_kvs *l, const wtensors *w,
                            size_t align) {
    hass_gguf g;
    hass_err err = {0};
    if (hass_gguf_open(&g, path, &err) != HASS_OK) {
        CHECK_MSG(0, "read back: %s", err.msg);
        return;
    }
    CHECK_EQ_INT(g.version, 3);
    CHECK_EQ_INT(g.alignment, align);
    CHECK(g.data_offset % align == 0);
    CHECK_EQ_INT(g.n_kv, l->n);
    int same = g.n_kv == l->n;
    for (int64_t i = 0; same && i < l->n; i++)
        same = kv_equal(&g.kv[i], &l->kv[i]);
    CHECK_MSG(same, "metadata read back differs");
    CHECK_EQ_INT(g.n_tensors, 5);
    size_t expect_off = 0;
    for (int i = 0; i < 5 && g.n_tensors == 5; i++) {
        const hass_tensor *a = &g.tensors[i], *b = &w->t[i];
        int ok = !strcmp(a->name, b->name) && a->dtype == b->dtype && a->ndim == b->ndim &&
                 a->nbytes == b->nbytes && !memcmp(a->shape, b->shape, sizeof a->shape) &&
                 (!a->nbytes || !memcmp(a->data, b->data, a->nbytes));
        CHECK_MSG(ok, "tensor %s read back differs", b->name);
        size_t off = (size_t)((const uint8_t *)a->data - g.mf.data) - g.data_offset;
        CHECK_MSG(off == expect_off, "%s at %zu, want %zu", b->name, off, expect_off);
        expect_off += (b->nbytes + align - 1) / align * align;
    }
    /* each tensor padded with zeros, the last one too */
    CHECK_EQ_INT(g.mf.size, g.data_offset + expect_off);
    int zeros = 1;
    for (int64_t i = 0; i < g.n_tensors; i++) {
        size_t end = (size_t)((const uint8_t *)g.tensors[i].data - g.mf.data) + g.tensors[i].nbytes;
        for (size_t k = end; k % align; k++)
            zeros &= g.mf.data[k] == 0;
    }
    CHECK_MSG(zeros, "padding after each tensor is zero");
    check_truncations(FMT_GGUF, g.mf.data, g.mf.size, 0, 7, "written gguf");
    check_mutations(FMT_GGUF, g.mf.data, g.mf.size, 200, 11);
    hass_gguf_close(&g);
}

static void test_gguf_write_roundtrip(void) {
    if (!tmpdir[0]) {
        CHECK_SKIP("no temp dir");
        return;
    }
    hass_err err = {0};
    wtensors w;
    make_wtensors(&w);
    char path[600];
    path_in(path, sizeof path, "w.gguf");
    for (int pass = 0; pass < 3; pass++) { /* default 32, general.alignment 64, 64 via fill */
        hass_gguf_kvs l = {0};
        if (pass > 0)
            CHECK(hass_gguf_kvs_u32(&l, "general.alignment", 64, &err) == HASS_OK);
        add_all_types(&l, &err);
        fill_ctx fc = {w.t, -1, 0};
        hass_status rc =
            hass_gguf_write(path, l.kv, l.n, w.t, 5, pass == 2 ? fill_copy : NULL, &fc, &err);
        CHECK_MSG(rc == HASS_OK, "write: %s", err.msg);
        if (pass == 2)
            CHECK_EQ_INT(fc.calls, 5);
        check_read_back(path, &l, &w, pass ? 64 : 32);
        hass_gguf_kvs_free(&l);
    }
    /* a failing fill leaves the previous file untouched and no temp file behind */
    struct stat before, after;
    CHECK(stat(path, &before) == 0);
    hass_gguf_kvs l = {0};
    CHECK(hass_gguf_kvs_str(&l, "general.name", "x", &err) == HASS_OK);
    fill_ctx fc = {w.t, 2, 0};
    CHECK(hass_gguf_write(path, l.kv, l.n, w.t, 5, fill_copy, &fc, &err) == HASS_STATUS_IO);
    CHECK(strstr(err.msg, "fill 2") != NULL);
    CHECK(stat(path, &after) == 0 && after.st_size == before.st_size &&
          after.st_mtime == before.st_mtime);
    int leftover = 0;
    DIR *dd = opendir(tmpdir);
    for (struct dirent *de; dd && (de = readdir(dd));)
        leftover |= strstr(de->d_name, "tmp") != NULL;
    CHECK_MSG(dd && !leftover, "a temp file was left behind");
    if (dd)
        closedir(dd);
    /* an unwritable destination */
    CHECK(hass_gguf_write("/nonexistent/dir/x.gguf", l.kv, l.n, NULL, 0, NULL, NULL, &err) ==
          HASS_STATUS_IO);
    hass_gguf_kvs_free(&l);
    free_wtensors(&w);
}

/* Refused before anything is written: every bad value, key and tensor. */
static void test_gguf_write_hostile(void) {
    if (!tmpdir[0]) {
        CHECK_SKIP("no temp dir");
        return;
    }
    hass_err err = {0};
    hass_gguf_kvs l = {0};
    static char long_key[65600];
    memset(long_key, 'k', sizeof long_key - 1);
    static const char *strs[] = {"a", NULL};
    static const uint8_t bad_bool[] = {0, 2};
    hass_gguf_kv bad[] = {
        {.key = "x.u8", .type = HASS_GGUF_U8, .v.u = 256},
        {.key = "x.i8", .type = HASS_GGUF_I8, .v.i = -129},
        {.key = "x.u16", .type = HASS_GGUF_U16, .v.u = 65536},
        {.key = "x.i16", .type = HASS_GGUF_I16, .v.i = 32768},
        {.key = "x.u32", .type = HASS_GGUF_U32, .v.u = 1ull << 32},
        {.key = "x.i32", .type = HASS_GGUF_I32, .v.i = (int64_t)INT32_MAX + 1},
        {.key = "x.bool", .type = HASS_GGUF_BOOL, .v.u = 2},
        {.key = "x.f32", .type = HASS_GGUF_F32, .v.f = 1e39},
        {.key = "x.type", .type = (hass_gguf_type)13},
        {.key = "", .type = HASS_GGUF_U8},
        {.key = NULL, .type = HASS_GGUF_U8},
        {.key = "has space", .type = HASS_GGUF_U8},
        {.key = "caf\xc3\xa9", .type = HASS_GGUF_U8},
        {.key = long_key, .type = HASS_GGUF_U8},
        {.key = "x.nested", .type = HASS_GGUF_ARRAY, .arr_type = HASS_GGUF_ARRAY, .arr_n = 1},
        {.key = "x.arrtype", .type = HASS_GGUF_ARRAY, .arr_type = (hass_gguf_type)99, .arr_n = 1},
        {.key = "x.huge",
         .type = HASS_GGUF_ARRAY,
         .arr_type = HASS_GGUF_U8,
         .arr_n = (1ull << 32) + 1,
         .arr_data = bad_bool},
        {.key = "x.nodata", .type = HASS_GGUF_ARRAY, .arr_type = HASS_GGUF_U32, .arr_n = 3},
        {.key = "x.bools",
         .type = HASS_GGUF_ARRAY,
         .arr_type = HASS_GGUF_BOOL,
         .arr_n = 2,
         .arr_data = bad_bool},
        {.key = "x.nullstr",
         .type = HASS_GGUF_ARRAY,
         .arr_type = HASS_GGUF_STRING,
         .arr_n = 2,
         .arr_strs = strs},
        {.key = "x.bigstr", .type = HASS_GGUF_STRING, .str = "x", .str_len = (1u << 30) + 1},
        {.key = "x.strnull", .type = HASS_GGUF_STRING, .str = NULL, .str_len = 4},
    };
    char path[600];
    path_in(path, sizeof path, "hostile.gguf");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        hass_status rc = hass_gguf_kvs_add(&l, &bad[i], &err);
        CHECK_MSG(rc < 0 && err.msg[0], "bad kv %zu accepted", i);
        rc = hass_gguf_write(path, &bad[i], 1, NULL, 0, NULL, NULL, &err);
        CHECK_MSG(rc < 0 && !hass_file_exists(path), "bad kv %zu written", i);
    }
    CHECK_EQ_INT(l.n, 0);
    /* duplicates, in the list and in a hand-made array */
    CHECK(hass_gguf_kvs_u32(&l, "general.alignment", 48, &err) == HASS_OK);
    CHECK(hass_gguf_kvs_u32(&l, "general.alignment", 32, &err) == HASS_STATUS_FORMAT);
    hass_gguf_kv dup[2] = {{.key = "a", .type = HASS_GGUF_U8}, {.key = "a", .type = HASS_GGUF_U8}};
    CHECK(hass_gguf_write(path, dup, 2, NULL, 0, NULL, NULL, &err) == HASS_STATUS_FORMAT);
    /* alignment: not a power of two, 0, too big, not a u32 */
    CHECK(hass_gguf_write(path, l.kv, l.n, NULL, 0, NULL, NULL, &err) == HASS_STATUS_ARG);
    hass_gguf_kv al[] = {{.key = "general.alignment", .type = HASS_GGUF_U32, .v.u = 0},
                         {.key = "general.alignment", .type = HASS_GGUF_U32, .v.u = 1u << 21},
                         {.key = "general.alignment", .type = HASS_GGUF_U64, .v.u = 32}};
    for (int i = 0; i < 3; i++)
        CHECK(hass_gguf_write(path, &al[i], 1, NULL, 0, NULL, NULL, &err) == HASS_STATUS_ARG);
    /* tensors */
    wtensors w;
    make_wtensors(&w);
    hass_tensor t0 = w.t[0];
    hass_tensor bt[9];
    for (int i = 0; i < 9; i++)
        bt[i] = t0;
    memset(bt[0].name, 'n', 64);
    bt[0].name[64] = 0;            /* 64 bytes: too long for llama.cpp */
    bt[1].name[0] = 0;             /* empty */
    bt[2].ndim = 0;                /* no dims */
    bt[3].ndim = 5;                /* too many */
    bt[4].shape[1] = -3;           /* negative */
    bt[5].dtype = HASS_DTYPE_I64;  /* not a type hass writes */
    bt[6].dtype = HASS_DTYPE_Q8_0; /* row of 3 */
    bt[7].nbytes += 4;             /* nbytes vs shape */
    bt[8].data = NULL;             /* no data, no fill */
    for (int i = 0; i < 9; i++) {
        memset(&err, 0, sizeof err);
        hass_status rc = hass_gguf_write(path, NULL, 0, &bt[i], 1, NULL, NULL, &err);
        CHECK_MSG(rc < 0 && err.msg[0] && !hass_file_exists(path), "bad tensor %d written", i);
    }
    /* I32 tensors (ggml type 26: a draft's draft_vocab) round-trip */
    int32_t ids[3] = {1, -2, 70000};
    hass_tensor ti = {.name = "draft_vocab",
                      .dtype = HASS_DTYPE_I32,
                      .ndim = 1,
                      .shape = {3},
                      .data = ids,
                      .nbytes = sizeof ids};
    CHECK(hass_gguf_write(path, NULL, 0, &ti, 1, NULL, NULL, &err) == HASS_OK);
    hass_gguf gi;
    CHECK(hass_gguf_open(&gi, path, &err) == HASS_OK);
    const hass_tensor *tr = hass_gguf_find_tensor(&gi, "draft_vocab");
    CHECK(tr && tr->dtype == HASS_DTYPE_I32 && tr->shape[0] == 3 && tr->nbytes == sizeof ids &&
          !memcmp(tr->data, ids, sizeof ids));
    hass_gguf_close(&gi);
    remove(path);
    hass_tensor two[2] = {t0, t0};
    CHECK(hass_gguf_write(path, NULL, 0, two, 2, NULL, NULL, &err) == HASS_STATUS_FORMAT);
    CHECK(strstr(err.msg, "duplicate tensor") != NULL);
    CHECK(hass_gguf_write(path, NULL, -1, NULL, 0, NULL, NULL, &err) == HASS_STATUS_ARG);
    CHECK(!hass_file_exists(path));
    free_wtensors(&w);
    hass_gguf_kvs_free(&l);
}

/* hass_file_kind_of: the GGUF magic first, then the name, then a safetensors header's shape. */
static void test_file_kinds(void) {
    struct {
        const char *name, *bytes;
        hass_file_kind kind;
    } cases[] = {
        {"model.gguf", "not gguf", HASS_FILE_GGUF},
        {"model", "GGUF\3\0\0\0", HASS_FILE_GGUF},
        {"model.bin", "GGUF\3\0\0\0", HASS_FILE_GGUF},
        {"w.safetensors", "x", HASS_FILE_SAFETENSORS},
        {"w", "\x02\0\0\0\0\0\0\0{}", HASS_FILE_SAFETENSORS},
        {"tokenizer.json", "{}", HASS_FILE_JSON},
        {"stories.bin", "\x40\0\0\0\x7b", HASS_FILE_LLAMA2C},
        {"notes.txt", "hello there", HASS_FILE_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *p = check_path(cases[i].name);
        HASS_ASSERT(check_write(p, "wb", cases[i].bytes, i == 4 ? 10 : -1) == 0);
        CHECK_MSG(hass_file_kind_of(p) == cases[i].kind, "%s", cases[i].name);
        unlink(p);
    }
    CHECK(hass_file_kind_of(check_tmp()) == HASS_FILE_DIR);
    CHECK(hass_file_kind_of(check_path("nothing here")) == HASS_FILE_MISSING);
    HASS_ASSERT(hass_mkdir_p(check_path("a/b/c"), NULL) == HASS_OK);
    CHECK(hass_file_kind_of(check_path("a/b/c")) == HASS_FILE_DIR);
    CHECK(hass_mkdir_p(check_path("a/b/c"), NULL) == HASS_OK); /* already there */
    HASS_ASSERT(check_write(check_path("a/f"), "wb", "x", -1) == 0);
    CHECK(hass_mkdir_p(check_path("a/f/g"), NULL) == HASS_STATUS_IO);
}

/* The JSON getters: a member of the wrong type, or a non-object, is absent. */
static void test_json_getters(void) {
    cJSON *o = cJSON_Parse("{\"s\": \"x\", \"i\": 42, \"f\": 2.5, \"big\": 1e13, \"neg\": -3, "
                           "\"b\": true, \"n\": null, \"a\": [1]}");
    int64_t v = -1;
    double x = 0;
    CHECK(o && !strcmp(hass_json_str(o, "s"), "x") && !hass_json_str(o, "i"));
    CHECK(hass_json_int(o, "i", 0, 100, &v) && v == 42);
    CHECK(!hass_json_int(o, "i", 0, 41, &v) && v == 42); /* out of range: untouched */
    CHECK(!hass_json_int(o, "f", 0, 100, &v) && !hass_json_int(o, "big", 0, (int64_t)1e12, &v));
    CHECK(hass_json_int(o, "neg", -5, 5, &v) && v == -3 && !hass_json_int(o, "s", 0, 9, &v));
    CHECK(hass_json_num(o, "f", &x) && x == 2.5 && !hass_json_num(o, "n", &x));
    CHECK(hass_json_bool(o, "b", 0) == 1 && hass_json_bool(o, "i", 7) == 7);
    CHECK(hass_json_get(o, "a") && !hass_json_get(o, "zz"));
    CHECK(!hass_json_get(cJSON_GetObjectItem(o, "a"), "0") && !hass_json_str(NULL, "s"));
    CHECK(hass_json_save(check_tmp(), "o.json", o, NULL) == HASS_OK);
    long n = 0;
    char *back = check_read(check_path("o.json"), &n), *want = cJSON_Print(o);
    CHECK(back && want && !strcmp(back, want));
    CHECK(hass_json_save(check_tmp(), "null.json", NULL, NULL) == HASS_STATUS_OOM);
    free(back);
    free(want);
    cJSON_Delete(o);
}

int main(void) {
    check_init("test_formats");
    snprintf(tmpdir, sizeof tmpdir, "%s", check_tmp());
    test_llama2c_real();
    test_llama2c_corrupt();
    test_gguf_real();
    test_gguf_vocab();
    test_gguf_corrupt();
    test_safetensors_corrupt();
    test_safetensors_grammar();
    test_safetensors_header_memory();
    test_safetensors_roundtrip();
    test_gguf_write_roundtrip();
    test_gguf_write_hostile();
    test_file_kinds();
    test_json_getters();
    return check_exit();
}
