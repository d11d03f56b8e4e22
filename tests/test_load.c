/*
 * test_load.c — model loading and export: Hugging Face directories (single file, shards, BF16,
 * tied embeddings, llama3 RoPE scaling) written by hass_model_export_hf from the real
 * stories260K (whose q/k rows are permuted from llama2.c's interleaved layout to rotate-half, so
 * the golden outputs must survive the trip), the config/tensor errors a loader must report, and
 * `hass export --gguf` end to end: a small random LLaMA-3-style model (a Hugging Face directory
 * with a byte-level BPE tokenizer.json using the LLaMA-3 split regex, ignore_merges, the LLaMA-3
 * special tokens and chat template) exported to GGUF and loaded back with our own loader must
 * give bit-identical logits (F32, and BF16 as stored), identical greedy outputs and tokenization,
 * and the metadata llama.cpp's converter writes. Also GQA and llama3 RoPE scaling, GGUF -> GGUF
 * byte identity, stories260K (llama2.c + SentencePiece vocabulary, tied embeddings), and what
 * export must refuse.
 */
#include "check.h"
#include "decode/decode.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmp[256];

/* greedy decoding; a tokenizer (may be NULL) adds its end-of-turn tokens to the stop ids */
static int64_t greedy(const hass_model *m, const hass_tokenizer *t, const int32_t *prompt,
                      int64_t np, int64_t n, int32_t *out) {
    hass_err err = {0};
    hass_pool *pool = hass_pool_create(2);
    hass_engine *e = hass_engine_create(m, t, NULL, pool, 0, &err);
    HASS_ASSERT(e);
    hass_gen_params p = {0};
    p.max_new = n;
    hass_gen_stats st;
    HASS_ASSERT(hass_generate(e, prompt, np, &p, 0, NULL, NULL, out, &st, &err) == HASS_OK);
    hass_engine_destroy(e);
    hass_pool_destroy(pool);
    return st.n_generated;
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
    nref = greedy(m, NULL, prompt, 5, 200, ref);
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
        nout = greedy(h, NULL, prompt, 5, 200, out);
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
        na = greedy(m, NULL, p, 12, 30, a);
        nb = greedy(h, NULL, p, 12, 30, b);
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
    char path[1400];
    snprintf(path, sizeof path, "%s/x.gguf", dir);
    HASS_ASSERT(mkdir(dir, 0755) == 0 && check_write(path, "wb", "GGUFxxxx", -1) == 0);
    CHECK(hass_model_load(dir, &err) == NULL && err.msg[0]);
    CHECK(hass_model_load(path, &err) == NULL && err.msg[0]);
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

/* ================= GGUF export ================= */

/* ---------------- a tiny LLaMA-3-style byte-level BPE tokenizer ---------------- */

static const char *const specials[] = {"<|begin_of_text|>", "<|end_of_text|>",
                                       "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"};
enum { N_SPECIAL = 5 };

static const char llama3_regex[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static const char llama3_template[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
    "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
    "endif %}{{ content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}";

/* GPT-2's byte -> character map, as UTF-8 */
static void byte_char(int b, char *out) {
    unsigned cp = (unsigned)b;
    if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)) {
        int k = b <= 32 ? b : b <= 160 ? 33 + (b - 127) : 67;
        cp = 256u + (unsigned)k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        out[2] = 0;
    }
}

/* merges "a b" over the byte alphabet (Ġ is the space); their results join the vocabulary */
static const char *const merges[] = {
    "\xc4\xa0 t",
    "h e",
    "\xc4\xa0t he",
    "i n",
    "\xc4\xa0 a",
    "e r",
    "o n",
    "\xc4\xa0 s",
    "r e",
    "a t",
    "\xc4\xa0 w",
    "o r",
    "e n",
    "\xc4\xa0 o",
    "i s",
    "\xc4\xa0 c",
    "l l",
    "\xc4\xa0 b",
    "\xc4\xa0 is",
    "\xc4\xa0"
    "a n",
    "\xc4\xa0"
    "an d",
    "i t",
    "\xc4\xa0 h",
    "o u",
    "\xc4\xa0w or",
    "l d",
    "\xc4\xa0wor ld",
    "H e",
    "He ll",
    "Hell o",
    "\xc4\xa0 1",
    "2 3",
    "\xc4\xa0 (",
};
enum { N_MERGES = sizeof merges / sizeof merges[0] };

/* Writes DIR/tokenizer.json and tokenizer_config.json; returns the number of tokens. */
static int write_tokenizer(const char *dir, const char *regex, int ignore_merges) {
    cJSON *root = cJSON_CreateObject(), *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "ignore_merges", ignore_merges);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    cJSON *mlist = cJSON_AddArrayToObject(model, "merges");
    int id = 0;
    char c[4];
    for (int b = 0; b < 256; b++) {
        byte_char(b, c);
        cJSON_AddNumberToObject(vocab, c, id++);
    }
    for (int i = 0; i < N_MERGES; i++) {
        char joined[64];
        const char *sp = strchr(merges[i], ' ');
        snprintf(joined, sizeof joined, "%.*s%s", (int)(sp - merges[i]), merges[i], sp + 1);
        cJSON_AddNumberToObject(vocab, joined, id++);
        cJSON_AddItemToArray(mlist, cJSON_CreateString(merges[i]));
    }
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < N_SPECIAL; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", id++);
        cJSON_AddStringToObject(a, "content", specials[i]);
        cJSON_AddBoolToObject(a, "special", 1);
        cJSON_AddItemToArray(added, a);
    }
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *seq = cJSON_AddArrayToObject(pre, "pretokenizers");
    cJSON *split = cJSON_CreateObject(), *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex", regex);
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", 0);
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "use_regex", 0);
    cJSON_AddItemToArray(seq, split);
    cJSON_AddItemToArray(seq, bl);
    char *txt = cJSON_Print(root), path[600];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    HASS_ASSERT(txt && hass_write_file_atomic(path, txt, strlen(txt), NULL) == HASS_OK);
    cJSON_free(txt);
    cJSON_Delete(root);
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "bos_token", specials[0]);
    cJSON_AddStringToObject(cfg, "eos_token", specials[1]);
    cJSON_AddBoolToObject(cfg, "add_bos_token", 1);
    cJSON_AddStringToObject(cfg, "chat_template", llama3_template);
    txt = cJSON_Print(cfg);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    HASS_ASSERT(txt && hass_write_file_atomic(path, txt, strlen(txt), NULL) == HASS_OK);
    cJSON_free(txt);
    cJSON_Delete(cfg);
    return id;
}

/* ---------------- helpers ---------------- */

static hass_tokenizer *open_tok(const char *model) {
    hass_err err = {0};
    hass_tokenizer *t = NULL;
    if (hass_is_dir(model)) {
        char p[600];
        snprintf(p, sizeof p, "%s/tokenizer.json", model);
        t = hass_tokenizer_load_json(p, &err);
    } else {
        hass_gguf g;
        if (hass_gguf_open(&g, model, &err) == HASS_OK) {
            t = hass_tokenizer_load_gguf(&g, &err);
            hass_gguf_close(&g);
        }
    }
    CHECK_MSG(t != NULL, "%s: tokenizer: %s", model, err.msg);
    return t;
}

/* exports model dir/file `src` (with its tokenizer) to `dst` */
static hass_status export(const char *src, const char *dst, hass_dtype dt, hass_err *err) {
    hass_model *m = hass_model_load(src, err);
    hass_tokenizer *t = m ? open_tok(src) : NULL;
    hass_status st = m && t ? HASS_OK : HASS_STATUS_FORMAT;
    hass_gguf_kvs kvs = {0};
    if (!st)
        st = hass_tokenizer_gguf_kvs(t, (int32_t)m->cfg.V, &kvs, err);
    hass_gguf_export_opts o = {.dtype = dt, .name = "tiny", .extra = &kvs};
    if (!st)
        st = hass_model_export_gguf(m, dst, &o, err);
    hass_gguf_kvs_free(&kvs);
    hass_tokenizer_free(t);
    hass_model_free(m);
    return st;
}

/* logits of the prompt's rows, prefilled in one batch: (n, V) */
static float *logits_of(const hass_model *m, const int32_t *toks, int64_t n) {
    hass_err err = {0};
    hass_pool *pool = hass_pool_create(2);
    hass_kv kv;
    HASS_ASSERT(hass_kv_init(&kv, m, 64, 64, pool, &err) == HASS_OK);
    int32_t pos[64];
    for (int64_t i = 0; i < n; i++)
        pos[i] = (int32_t)i;
    float *lg = malloc(sizeof(float) * (size_t)(n * m->cfg.V));
    CHECK(hass_model_forward(m, &kv, pool, n, toks, pos, NULL, lg, 0, NULL, &err) == HASS_OK);
    hass_kv_free(&kv);
    hass_pool_destroy(pool);
    return lg;
}

static const char *const texts[] = {
    "Hello world",
    "the cat is in the hat, and it's 123 (or 4567)!",
    "  leading spaces\n\nand\ttabs  ",
    "caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80",
    "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "",
};

/* same ids for every text (specials parsed and not), same chat rendering, same ids out */
static void same_tokenization(const hass_tokenizer *a, const hass_tokenizer *b, const char *what) {
    hass_err err = {0};
    int bad = 0;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        for (int sp = 0; sp <= 1; sp++) {
            int32_t x[256], y[256];
            size_t n = strlen(texts[i]);
            int64_t nx = hass_tokenizer_encode(a, texts[i], n, 1, sp, x, 256, &err);
            int64_t ny = hass_tokenizer_encode(b, texts[i], n, 1, sp, y, 256, &err);
            bad += nx != ny || nx < 0 || memcmp(x, y, sizeof(int32_t) * (size_t)nx);
        }
    CHECK_MSG(bad == 0, "%s: %d encodings differ", what, bad);
    CHECK(!strcmp(hass_tokenizer_chat_template(a), hass_tokenizer_chat_template(b)));
    hass_chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Hello world"}};
    char *ra = hass_tokenizer_chat_render(a, msgs, 2, 1, &err);
    char *rb = hass_tokenizer_chat_render(b, msgs, 2, 1, &err);
    CHECK(ra && rb && !strcmp(ra, rb));
    free(ra);
    free(rb);
    CHECK_EQ_INT(hass_tokenizer_bos(a), hass_tokenizer_bos(b));
    CHECK_EQ_INT(hass_tokenizer_eos(a), hass_tokenizer_eos(b));
    CHECK_EQ_INT(hass_tokenizer_wants_bos(a), hass_tokenizer_wants_bos(b));
    int32_t sa[8], sb[8];
    int na = hass_tokenizer_stop_ids(a, sa, 8), nb = hass_tokenizer_stop_ids(b, sb, 8);
    CHECK(na == nb && !memcmp(sa, sb, sizeof(int32_t) * (size_t)na));
}

/* the two models compute the same logits (bit for bit) and greedy continuations */
static void same_model(const hass_model *a, const hass_model *b, const hass_tokenizer *t,
                       const hass_tokenizer *tb, const char *what) {
    CHECK_EQ_INT(a->cfg.V, b->cfg.V);
    hass_err err = {0};
    for (size_t i = 0; i < 3; i++) {
        int32_t ids[64];
        int64_t n = hass_tokenizer_encode(t, texts[i], strlen(texts[i]), 1, 1, ids, 64, &err);
        HASS_ASSERT(n > 0 && n <= 64);
        float *la = logits_of(a, ids, n), *lb = logits_of(b, ids, n);
        char label[160];
        snprintf(label, sizeof label, "%s: logits of text %zu", what, i);
        CHECK_BITEQ(la, lb, n * a->cfg.V, label);
        free(la);
        free(lb);
        int32_t ga[40], gb[40];
        int64_t na = greedy(a, t, ids, n, 40, ga), nb = greedy(b, tb, ids, n, 40, gb);
        CHECK_MSG(na == nb && !memcmp(ga, gb, sizeof(int32_t) * (size_t)na),
                  "%s: greedy continuation of text %zu differs", what, i);
    }
}

/* element i of an i32 array (GGUF arrays are not aligned in the file) */
static int32_t arr_i32(const hass_gguf_kv *kv, size_t i) {
    int32_t v;
    memcpy(&v, kv->arr_data + 4 * i, 4);
    return v;
}

/* ---------------- tests ---------------- */

/* a random LLaMA-3-shaped HF directory: config.json, model.safetensors, the tokenizer */
static hass_model_config tiny_config(int n_tok) {
    hass_model_config c = hass_model_config_make(64, 96, 2, 8, 2, n_tok + 3, 256); /* 3 pads */
    c.rope = hass_rope_plain(500000);
    c.bos = n_tok - N_SPECIAL;          /* <|begin_of_text|> */
    c.stop_ids[c.n_stop++] = n_tok - 4; /* <|end_of_text|> */
    c.stop_ids[c.n_stop++] = n_tok - 1; /* <|eot_id|> */
    return c;
}

static void make_hf(const char *dir, const hass_model_config *c, hass_dtype wt, uint64_t seed) {
    hass_err err = {0};
    hass_model *m = hass_model_synthetic(
        c, wt == HASS_DTYPE_BF16 ? HASS_DTYPE_BF16 : HASS_DTYPE_F32, seed, &err);
    HASS_ASSERT(m);
    HASS_ASSERT(hass_model_export_hf(m, dir, wt, 0, &err) == HASS_OK);
    hass_model_free(m);
}

static void check_metadata(const char *path, int n_tok) {
    hass_gguf g;
    hass_err err = {0};
    if (hass_gguf_open(&g, path, &err) != HASS_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    static const char *const str_keys[][2] = {{"general.architecture", "llama"},
                                              {"general.type", "model"},
                                              {"general.name", "tiny"},
                                              {"tokenizer.ggml.model", "gpt2"},
                                              {"tokenizer.ggml.pre", "llama-bpe"}};
    for (size_t i = 0; i < sizeof str_keys / sizeof str_keys[0]; i++) {
        const char *v = hass_gguf_get_str(&g, str_keys[i][0]);
        CHECK_MSG(v && !strcmp(v, str_keys[i][1]), "%s = %s", str_keys[i][0], v ? v : "(none)");
    }
    static const struct {
        const char *key;
        uint64_t want;
    } u32s[] = {{"general.alignment", 32},
                {"llama.block_count", 2},
                {"llama.context_length", 256},
                {"llama.embedding_length", 64},
                {"llama.feed_forward_length", 96},
                {"llama.attention.head_count", 8},
                {"llama.attention.head_count_kv", 2},
                {"llama.rope.dimension_count", 8},
                {"general.quantization_version", 2}};
    for (size_t i = 0; i < sizeof u32s / sizeof u32s[0]; i++) {
        const hass_gguf_kv *kv = hass_gguf_find(&g, u32s[i].key);
        CHECK_MSG(kv && kv->type == HASS_GGUF_U32 && kv->v.u == u32s[i].want, "%s", u32s[i].key);
    }
    const hass_gguf_kv *kv = hass_gguf_find(&g, "llama.rope.freq_base");
    CHECK(kv && kv->type == HASS_GGUF_F32 && kv->v.f == 500000);
    kv = hass_gguf_find(&g, "llama.attention.layer_norm_rms_epsilon");
    CHECK(kv && kv->type == HASS_GGUF_F32 && kv->v.f == (double)1e-5f);
    uint64_t u;
    CHECK(hass_gguf_get_u64(&g, "llama.vocab_size", &u) && u == (uint64_t)n_tok + 3);
    CHECK(hass_gguf_get_u64(&g, "tokenizer.ggml.bos_token_id", &u) &&
          u == (uint64_t)n_tok - N_SPECIAL);
    CHECK(hass_gguf_get_u64(&g, "tokenizer.ggml.eos_token_id", &u) && u == (uint64_t)n_tok - 4);
    kv = hass_gguf_find(&g, "tokenizer.ggml.add_bos_token");
    CHECK(kv && kv->type == HASS_GGUF_BOOL && kv->v.u == 1);
    const char *tmpl = hass_gguf_get_str(&g, "tokenizer.chat_template");
    CHECK(tmpl && !strcmp(tmpl, llama3_template));
    /* tokens padded to the model's vocabulary; types as llama.cpp sets them; merges by rank */
    const hass_gguf_kv *toks = hass_gguf_find(&g, "tokenizer.ggml.tokens");
    const hass_gguf_kv *ty = hass_gguf_find(&g, "tokenizer.ggml.token_type");
    const hass_gguf_kv *mg = hass_gguf_find(&g, "tokenizer.ggml.merges");
    CHECK(toks && toks->arr_n == (uint64_t)n_tok + 3 && ty && ty->arr_type == HASS_GGUF_I32 &&
          ty->arr_n == toks->arr_n);
    if (toks && ty && toks->arr_n == (uint64_t)n_tok + 3 && ty->arr_n == toks->arr_n) {
        CHECK(!strcmp(toks->arr_strs[0], "\xc4\x80") && arr_i32(ty, 0) == 1); /* byte 0x00 */
        CHECK(!strcmp(toks->arr_strs[n_tok - 1], "<|eot_id|>") &&
              arr_i32(ty, (size_t)n_tok - 1) == 3);
        char pad[32];
        snprintf(pad, sizeof pad, "[PAD%d]", n_tok + 2);
        CHECK(!strcmp(toks->arr_strs[n_tok + 2], pad) && arr_i32(ty, (size_t)n_tok + 2) == 5);
    }
    CHECK(mg && mg->arr_type == HASS_GGUF_STRING && mg->arr_n == N_MERGES);
    for (int i = 0; mg && mg->arr_n == N_MERGES && i < N_MERGES; i++)
        CHECK(!strcmp(mg->arr_strs[i], merges[i]));
    /* llama.cpp's tensor names; untied output; q/k permuted (checked through the logits) */
    static const char *const names[] = {
        "token_embd.weight",        "output.weight",          "output_norm.weight",
        "blk.1.attn_q.weight",      "blk.1.attn_k.weight",    "blk.1.attn_v.weight",
        "blk.1.attn_output.weight", "blk.1.attn_norm.weight", "blk.1.ffn_norm.weight",
        "blk.1.ffn_gate.weight",    "blk.1.ffn_up.weight",    "blk.1.ffn_down.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_MSG(hass_gguf_find_tensor(&g, names[i]) != NULL, "tensor %s", names[i]);
    CHECK_EQ_INT(g.n_tensors, 3 + 2 * 9);
    CHECK(hass_gguf_find_tensor(&g, "blk.0.ffn_norm.weight")->dtype == HASS_DTYPE_F32);
    hass_gguf_close(&g);
}

/* TMP/sub with a tokenizer (regex, ignore_merges); hf and out (400 bytes each) get the
 * directory and TMP/sub.gguf; returns the tokenizer's size */
static int tiny_dir(char *hf, char *out, const char *sub, const char *regex, int ignore_merges) {
    snprintf(hf, 400, "%s/%s", tmp, sub);
    snprintf(out, 400, "%s/%s.gguf", tmp, sub);
    HASS_ASSERT(hass_mkdir_p(hf, NULL) == HASS_OK);
    return write_tokenizer(hf, regex, ignore_merges);
}

static void test_gguf_tiny(hass_dtype wt, const char *sub) {
    char hf[400], out[400], again[400];
    int n_tok = tiny_dir(hf, out, sub, llama3_regex, 1);
    snprintf(again, sizeof again, "%s/%s-again.gguf", tmp, sub);
    hass_model_config c = tiny_config(n_tok);
    make_hf(hf, &c, wt, 11);
    hass_err err = {0};
    /* as stored: F32 from F32, BF16 from BF16 */
    CHECK_MSG(export(hf, out, HASS_DTYPE_COUNT, &err) == HASS_OK, "export: %s", err.msg);
    hass_model *a = hass_model_load(hf, &err), *b = hass_model_load(out, &err);
    CHECK_MSG(a && b, "load: %s", err.msg);
    hass_tokenizer *ta = open_tok(hf), *tb = open_tok(out);
    if (a && b && ta && tb) {
        CHECK_EQ_INT(b->cfg.rope_style, HASS_ROPE_INTERLEAVED);
        CHECK_EQ_INT(b->embed_t, wt);
        CHECK(b->lm_head != b->embed);
        same_tokenization(ta, tb, sub);
        same_model(a, b, ta, tb, sub);
        CHECK_EQ_INT(b->cfg.bos, a->cfg.bos);
        check_metadata(out, n_tok);
    }
    /* GGUF -> GGUF: the same file, byte for byte */
    CHECK_MSG(export(out, again, HASS_DTYPE_COUNT, &err) == HASS_OK, "re-export: %s", err.msg);
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 1;
    if (hass_read_file(out, &x, &nx, &err) == HASS_OK &&
        hass_read_file(again, &y, &ny, &err) == HASS_OK)
        CHECK_MSG(nx == ny && !memcmp(x, y, nx), "%s: GGUF -> GGUF is not an identity", sub);
    free(x);
    free(y);
    /* F16 (rounded): close, and the file says so */
    snprintf(again, sizeof again, "%s/%s-f16.gguf", tmp, sub);
    CHECK(export(hf, again, HASS_DTYPE_F16, &err) == HASS_OK);
    hass_model *h = hass_model_load(again, &err);
    CHECK(h && h->embed_t == HASS_DTYPE_F16 && h->layers[0].tq == HASS_DTYPE_F16);
    if (h && a) {
        int32_t ids[3] = {c.bos, 280, 17};
        float *la = logits_of(a, ids, 3), *lh = logits_of(h, ids, 3);
        CHECK_CLOSE(lh, la, 3 * a->cfg.V, 0.05, 0.05, "f16 export logits");
        free(la);
        free(lh);
    }
    hass_model_free(h);
    hass_tokenizer_free(ta);
    hass_tokenizer_free(tb);
    hass_model_free(a);
    hass_model_free(b);
}

/* RoPE scaling: llama3 becomes rope_freqs.weight (no keys), linear the converter's
 * llama.rope.scaling.type/factor keys, GGUF divisors stay divisors; the frequencies come back
 * exact (k: 0 llama3, 1 linear, 2 divisors and linear, as a GGUF source may have them) */
static void check_rope_file(const char *out, int k) {
    hass_err err = {0};
    hass_gguf g;
    if (hass_gguf_open(&g, out, &err) != HASS_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    const hass_tensor *f = hass_gguf_find_tensor(&g, "rope_freqs.weight");
    CHECK(k == 1 ? f == NULL : f && f->dtype == HASS_DTYPE_F32 && f->ndim == 1 && f->shape[0] == 8);
    if (f && k == 0) { /* convert_hf_to_gguf.py's factors, to an ulp or so: wavelengths 6.3
                        * (< 64/4: 1), 32.4 (smoothed), 167.. (> 64/1: 8) */
        const float *d = f->data;
        double wl = 2 * M_PI * pow(500000.0, 1.0 / 8), sm = (64 / wl - 1) / 3;
        int ok = d[0] == 1.0f && fabs(d[1] - 1 / ((1 - sm) / 8 + sm)) < 1e-5 * d[1];
        for (int i = 2; i < 8; i++)
            ok &= fabsf(d[i] - 8.0f) < 1e-5f;
        CHECK_MSG(ok, "rope factors %g %g %g", d[0], d[1], d[2]);
    }
    if (f && k == 2)
        CHECK(((const float *)f->data)[1] == 1.5f && ((const float *)f->data)[2] == 2.0f);
    const char *type = hass_gguf_get_str(&g, "llama.rope.scaling.type");
    double lin = 0;
    CHECK(k == 0 ? type == NULL
                 : type && !strcmp(type, "linear") &&
                       hass_gguf_get_f64(&g, "llama.rope.scaling.factor", &lin) && lin == 2.5);
    hass_gguf_close(&g);
}

static void test_gguf_rope_scaling(void) {
    for (int k = 0; k < 3; k++) {
        char hf[400], out[400], sub[32];
        snprintf(sub, sizeof sub, "scaled%d", k);
        int n_tok = tiny_dir(hf, out, sub, llama3_regex, 1);
        hass_model_config c = tiny_config(n_tok);
        c.Dh = 16, c.H = 4, c.Hkv = 4; /* 8 frequencies spread over the three bands */
        if (k == 0) {
            c.rope.factor = 8, c.rope.low_freq_factor = 1, c.rope.high_freq_factor = 4;
            c.rope.orig_ctx = 64;
        } else {
            c.rope.linear = 2.5f;
        }
        for (int i = 0; k == 2 && i < 8; i++)
            c.rope.div[i] = 1.0f + 0.5f * (float)(i % 3);
        c.rope.n_div = k == 2 ? 8 : 0;
        make_hf(hf, &c, HASS_DTYPE_F32, 5);
        hass_err err = {0};
        CHECK_MSG(export(hf, out, HASS_DTYPE_COUNT, &err) == HASS_OK, "%s", err.msg);
        hass_model *a = hass_model_load(hf, &err), *b = hass_model_load(out, &err);
        hass_tokenizer *t = open_tok(hf), *tb = open_tok(out);
        CHECK(a && b && t && tb);
        if (a && b && t && tb) {
            CHECK(!memcmp(a->inv_freq, b->inv_freq, sizeof(float) * 8));
            CHECK(a->inv_freq[7] != (float)(1 / pow(500000.0, 14.0 / 16))); /* scaled at all */
            same_model(a, b, t, tb, sub);
            check_rope_file(out, k);
        }
        hass_tokenizer_free(t);
        hass_tokenizer_free(tb);
        hass_model_free(a);
        hass_model_free(b);
    }
}

/* stories260K (llama2.c + tokenizer.bin): tied embeddings, SentencePiece vocabulary */
static void test_gguf_stories(void) {
    const char *bin = check_shared("models/stories260K.bin");
    const char *tp = check_shared("models/tok512.bin");
    if (!bin || !tp) {
        CHECK_SKIP("stories260K not found");
        return;
    }
    hass_err err = {0};
    hass_model *m = hass_model_load(bin, &err);
    hass_tokenizer *t = hass_tokenizer_load_bin(tp, 512, &err);
    HASS_ASSERT(m && t);
    hass_gguf_kvs kvs = {0};
    CHECK(hass_tokenizer_gguf_kvs(t, 512, &kvs, &err) == HASS_OK);
    char out[400];
    snprintf(out, sizeof out, "%s/stories.gguf", tmp);
    hass_gguf_export_opts o = {.dtype = HASS_DTYPE_COUNT, .name = "stories260K", .extra = &kvs};
    CHECK_MSG(hass_model_export_gguf(m, out, &o, &err) == HASS_OK, "%s", err.msg);
    hass_model *b = hass_model_load(out, &err);
    hass_tokenizer *tb = open_tok(out);
    CHECK(b && tb);
    if (b && tb) {
        CHECK(b->lm_head == b->embed); /* no output.weight: tied */
        int32_t ids[64];
        int64_t n = hass_tokenizer_encode(t, "Once upon a time", 16, 1, 1, ids, 64, &err);
        float *la = logits_of(m, ids, n), *lb = logits_of(b, ids, n);
        CHECK_BITEQ(la, lb, n * 512, "stories260K logits, llama2.c vs GGUF");
        free(la);
        free(lb);
        static const char *const s[] = {"Once upon a time", "Lily's mom said, \"hi\" 123",
                                        "<s>x</s> \xe2\x96\x81 caf\xc3\xa9"};
        for (size_t i = 0; i < 3; i++) {
            int32_t x[64], y[64];
            int64_t nx = hass_tokenizer_encode(t, s[i], strlen(s[i]), 1, 1, x, 64, &err);
            int64_t ny = hass_tokenizer_encode(tb, s[i], strlen(s[i]), 1, 1, y, 64, &err);
            CHECK_MSG(nx == ny && !memcmp(x, y, sizeof(int32_t) * (size_t)nx), "'%s'", s[i]);
        }
        hass_gguf g;
        if (hass_gguf_open(&g, out, &err) == HASS_OK) {
            CHECK(hass_gguf_find_tensor(&g, "output.weight") == NULL);
            const char *mdl = hass_gguf_get_str(&g, "tokenizer.ggml.model");
            CHECK(mdl && !strcmp(mdl, "llama"));
            const hass_gguf_kv *ty = hass_gguf_find(&g, "tokenizer.ggml.token_type");
            const hass_gguf_kv *sc = hass_gguf_find(&g, "tokenizer.ggml.scores");
            CHECK(ty && ty->arr_n == 512 && sc && sc->arr_n == 512);
            if (ty && ty->arr_n == 512) { /* <unk> UNKNOWN, <s> </s> CONTROL, <0x00> BYTE */
                CHECK(arr_i32(ty, 0) == 2 && arr_i32(ty, 1) == 3 && arr_i32(ty, 2) == 3 &&
                      arr_i32(ty, 3) == 6 && arr_i32(ty, 258) == 6 && arr_i32(ty, 300) == 1);
            }
            hass_gguf_close(&g);
        }
    }
    hass_tokenizer_free(tb);
    hass_model_free(b);
    hass_gguf_kvs_free(&kvs);
    hass_tokenizer_free(t);
    hass_model_free(m);
}

/* what has no faithful GGUF form is refused, and nothing is written */
static void test_gguf_refusals(void) {
    char hf[400], out[400];
    hass_err err = {0};
    int n_tok = tiny_dir(hf, out, "refuse", llama3_regex, 0); /* LLaMA-3's, no ignore_merges */
    hass_model_config c = tiny_config(n_tok);
    make_hf(hf, &c, HASS_DTYPE_F32, 3);
    CHECK(export(hf, out, HASS_DTYPE_COUNT, &err) == HASS_STATUS_UNSUPPORTED);
    CHECK(strstr(err.msg, "ignore_merges") != NULL);
    write_tokenizer(hf, "[a-z]+|\\s+|.", 1); /* a pre-tokenizer llama.cpp does not have */
    CHECK(export(hf, out, HASS_DTYPE_COUNT, &err) == HASS_STATUS_UNSUPPORTED);
    CHECK(strstr(err.msg, "pre-tokenizer") != NULL);
    CHECK(!hass_file_exists(out));
    /* a tokenizer larger than the model's vocabulary */
    write_tokenizer(hf, llama3_regex, 1);
    hass_tokenizer *t = open_tok(hf);
    hass_gguf_kvs kvs = {0};
    CHECK(t && hass_tokenizer_gguf_kvs(t, 100, &kvs, &err) == HASS_STATUS_SHAPE);
    CHECK_EQ_INT(kvs.n, 0);
    hass_tokenizer_free(t);
    /* dtypes export cannot write */
    hass_model *m = hass_model_load(hf, &err);
    hass_gguf_export_opts o = {.dtype = HASS_DTYPE_Q8_0};
    CHECK(m && hass_model_export_gguf(m, out, &o, &err) == HASS_STATUS_ARG);
    CHECK(!hass_file_exists(out));
    hass_model_free(m);
}

int main(void) {
    check_init("test_load");
    snprintf(tmp, sizeof tmp, "%s", check_tmp());
    test_gguf_rope();
    test_export_stories();
    test_rope_scaling();
    test_bad_configs();
    test_gguf_tiny(HASS_DTYPE_F32, "f32");
    test_gguf_tiny(HASS_DTYPE_BF16, "bf16");
    test_gguf_rope_scaling();
    test_gguf_stories();
    test_gguf_refusals();
    return check_exit();
}
