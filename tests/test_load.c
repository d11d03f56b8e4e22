/*
 * test_load.c — model loading: Hugging Face directories (single file, shards, BF16, tied
 * embeddings, llama3 RoPE scaling) written by hass_model_export_hf from the real stories260K
 * (whose q/k rows are permuted from llama2.c's interleaved layout to rotate-half, so the golden
 * outputs must survive the trip), and the config/tensor errors a loader must report.
 */
#include "check.h"
#include "decode/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp[256];

static void greedy(const hass_model *m, const int32_t *prompt, int64_t np, int64_t n, int32_t *out,
                   int64_t *n_out) {
    hass_err err = {0};
    hass_pool *pool = hass_pool_create(2);
    hass_engine *e = hass_engine_create(m, NULL, NULL, pool, 0, &err);
    HASS_ASSERT(e);
    hass_gen_params p = {0};
    p.max_new = n;
    hass_gen_stats st;
    HASS_ASSERT(hass_generate(e, prompt, np, &p, 0, NULL, NULL, out, &st, &err) == HASS_OK);
    *n_out = st.n_generated;
    hass_engine_destroy(e);
    hass_pool_destroy(pool);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    HASS_ASSERT(hass_write_file_atomic(path, text, strlen(text), NULL) == HASS_OK);
}

static void test_export_stories(void) {
    const char *bin = check_shared("models/stories260K.bin");
    if (!bin) {
        CHECK_SKIP("stories260K.bin not found");
        return;
    }
    hass_err err = {0};
    hass_model *m = hass_model_load(bin, &err);
    HASS_ASSERT(m);
    int32_t prompt[5] = {1, 403, 407, 261, 378}, ref[200], out[200];
    int64_t nref, nout;
    greedy(m, prompt, 5, 200, ref, &nref);
    char dir[300];
    struct {
        const char *sub;
        hass_dtype dt;
        size_t shard;
        int exact;
    } cases[] = {{"hf32", HASS_DTYPE_F32, 0, 1},
                 {"hfshard", HASS_DTYPE_F32, 100000, 1},
                 {"hfbf16", HASS_DTYPE_BF16, 0, 0}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        snprintf(dir, sizeof dir, "%s/%s", tmp, cases[k].sub);
        CHECK_MSG(hass_model_export_hf(m, dir, cases[k].dt, cases[k].shard, &err) == HASS_OK, "%s",
                  err.msg);
        hass_model *h = hass_model_load(dir, &err);
        CHECK_MSG(h != NULL, "%s: %s", cases[k].sub, err.msg);
        if (!h)
            continue;
        CHECK_EQ_INT(h->cfg.rope_style, HASS_ROPE_HALF);
        CHECK_EQ_INT(h->cfg.bos, 1);
        CHECK(h->lm_head == h->embed); /* tied */
        greedy(h, prompt, 5, 200, out, &nout);
        int same = nout == nref && !memcmp(out, ref, sizeof(int32_t) * (size_t)nref);
        if (cases[k].exact) {
            CHECK_MSG(same, "%s: greedy output differs from the llama2.c checkpoint", cases[k].sub);
        } else { /* bf16 weights: a different model numerically; it must still be close */
            int agree = 0;
            while (agree < nout && agree < nref && out[agree] == ref[agree])
                agree++;
            CHECK_MSG(agree >= 10, "%s: only %d leading tokens agree", cases[k].sub, agree);
        }
        hass_model_free(h);
    }
    snprintf(dir, sizeof dir, "%s/hfshard/model.safetensors.index.json", tmp);
    CHECK(hass_file_exists(dir));
    hass_model_free(m);
}

static void test_rope_scaling(void) {
    hass_model_config c = hass_model_config_make(64, 96, 1, 4, 2, 50, 8192);
    c.rope.theta = 500000;
    c.rope.factor = 8;
    c.rope.low_freq_factor = 1;
    c.rope.high_freq_factor = 4;
    c.rope.orig_ctx = 8192;
    float f[8];
    hass_rope_freqs(&c.rope, c.Dh, f);
    int ok = 1;
    for (int i = 0; i < 8; i++) { /* the transformers formula, in double */
        double base = pow(500000.0, -(2.0 * i) / 16.0), wl = 2 * M_PI / base, want;
        double lo = 8192.0 / 1, hi = 8192.0 / 4;
        if (wl < hi)
            want = base;
        else if (wl > lo)
            want = base / 8;
        else {
            double s = (8192.0 / wl - 1) / (4 - 1);
            want = (1 - s) * base / 8 + s * base;
        }
        ok &= fabs(f[i] - want) <= 1e-6 * want;
    }
    CHECK_MSG(ok, "llama3 rope scaling frequencies");
    hass_err err = {0};
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, 9, &err);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/scaled", tmp);
    CHECK(hass_model_export_hf(m, dir, HASS_DTYPE_F32, 0, &err) == HASS_OK);
    hass_model *h = hass_model_load(dir, &err);
    CHECK_MSG(h != NULL, "%s", err.msg);
    if (h) {
        CHECK(hass_rope_params_equal(&h->cfg.rope, &c.rope));
        int32_t p[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, a[30], b[30];
        int64_t na, nb;
        greedy(m, p, 12, 30, a, &na);
        greedy(h, p, 12, 30, b, &nb);
        CHECK(na == nb && !memcmp(a, b, sizeof(int32_t) * (size_t)na));
        hass_model_free(h);
    }
    hass_model_free(m);
}

static void test_bad_configs(void) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(32, 48, 2, 4, 2, 40, 128);
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, 1, &err);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/bad", tmp);
    CHECK(hass_model_export_hf(m, dir, HASS_DTYPE_F32, 0, &err) == HASS_OK);
    hass_model *ok = hass_model_load(dir, &err);
    CHECK(ok != NULL);
    hass_model_free(ok);
    struct {
        const char *json, *expect;
    } bad[] = {
        {"{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":32}", "unsupported"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32}", "missing"},
        {"[1,2,3]", "not a JSON object"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":3,"
         "\"vocab_size\":40}",
         "multiple"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
         "\"vocab_size\":40,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}}",
         "rope_scaling"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
         "\"vocab_size\":40,\"rope_scaling\":{\"type\":\"linear\",\"factor\":-1}}",
         "linear"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
         "\"vocab_size\":40,\"rope_freqs\":[1,2,3]}",
         "divisors"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
         "\"vocab_size\":40,\"rope_freqs\":[1,2,0,4]}",
         "divisor"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
         "\"vocab_size\":40,\"rope_freqs\":\"x\"}",
         "rope_freqs"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
         "\"vocab_size\":41}",
         "shape"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":32,\"intermediate_size\":48,"
         "\"num_hidden_layers\":3,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
         "\"vocab_size\":40}",
         "missing tensor"},
        {"{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":1e30,\"intermediate_size\":48,"
         "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"vocab_size\":40}",
         ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(dir, "config.json", bad[i].json);
        memset(&err, 0, sizeof err);
        hass_model *x = hass_model_load(dir, &err);
        CHECK_MSG(x == NULL && err.msg[0] && strstr(err.msg, bad[i].expect),
                  "bad config %zu: got '%s'", i, err.msg);
        hass_model_free(x);
    }
    /* no such path, a directory without config.json, a garbage .gguf */
    CHECK(hass_model_load("/nonexistent/model", &err) == NULL && err.msg[0]);
    snprintf(dir, sizeof dir, "%s/empty", tmp);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "mkdir -p %s && printf 'GGUFxxxx' > %s/x.gguf", dir, dir);
    HASS_ASSERT(system(cmd) == 0);
    CHECK(hass_model_load(dir, &err) == NULL && err.msg[0]);
    snprintf(cmd, sizeof cmd, "%s/x.gguf", dir);
    CHECK(hass_model_load(cmd, &err) == NULL && err.msg[0]);
    hass_model_free(m);
}

/* GGUF RoPE adjustments read into a config, through a GGUF object built in memory; the
 * frequencies, and an HF export of such a model that keeps them (rope_freqs, linear) */
static void test_gguf_rope(void) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(32, 48, 1, 4, 2, 40, 128);
    float base[4], got[4], div[4] = {1, 2, 4, 8};
    hass_rope_freqs(&c.rope, c.Dh, base);
    hass_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "rope_freqs.weight");
    t.dtype = HASS_DTYPE_F32;
    t.ndim = 1;
    t.shape[0] = 4;
    t.data = div;
    t.nbytes = sizeof div;
    hass_gguf_kv kv[2];
    memset(kv, 0, sizeof kv);
    kv[0].key = "llama.rope.scaling.type";
    kv[0].type = HASS_GGUF_STRING;
    kv[0].str = "linear";
    kv[1].key = "llama.rope.scaling.factor";
    kv[1].type = HASS_GGUF_F32;
    kv[1].v.f = 2.0;
    hass_gguf g;
    memset(&g, 0, sizeof g);
    g.tensors = &t;
    g.n_tensors = 1;
    g.kv = kv;
    g.n_kv = 2;
    CHECK(hass_model_gguf_rope(&g, &c, &err) == HASS_OK);
    CHECK(c.rope.n_div == 4 && c.rope.linear == 2.0f);
    hass_rope_freqs(&c.rope, c.Dh, got);
    int ok = 1;
    for (int i = 0; i < 4; i++)
        ok &= fabsf(got[i] - base[i] / div[i] / 2.0f) <= 1e-6f * base[i];
    CHECK_MSG(ok, "rope_freqs divisors and linear scaling applied");
    /* a model with them exported to HF and loaded back runs with the same frequencies */
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, 1, &err);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/ggufrope", tmp);
    CHECK(m && hass_model_export_hf(m, dir, HASS_DTYPE_F32, 0, &err) == HASS_OK);
    hass_model *h = hass_model_load(dir, &err);
    CHECK_MSG(h != NULL, "%s", err.msg);
    if (m && h) {
        CHECK(hass_rope_params_equal(&h->cfg.rope, &c.rope));
        CHECK_BITEQ(h->inv_freq, m->inv_freq, 4, "exported rope frequencies");
    }
    hass_model_free(h);
    hass_model_free(m);
    kv[0].str = "yarn";
    CHECK(hass_model_gguf_rope(&g, &c, &err) == HASS_STATUS_UNSUPPORTED);
    div[2] = 0;
    kv[0].str = "none";
    CHECK(hass_model_gguf_rope(&g, &c, &err) == HASS_STATUS_FORMAT);
}

int main(void) {
    check_init("test_load");
    snprintf(tmp, sizeof tmp, "/tmp/hass_test_load_%ld", (long)getpid());
    char cmd[512];
    snprintf(cmd, sizeof cmd, "mkdir -p %s", tmp);
    HASS_ASSERT(system(cmd) == 0);
    test_gguf_rope();
    test_export_stories();
    test_rope_scaling();
    test_bad_configs();
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return check_exit();
}
