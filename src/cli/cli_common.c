/*
 * cli_common.c — what several subcommands share: opening a model's tokenizer, finding the
 * shipped default model, encoding a prompt (plain or with the chat template).
 */
#include "cli/cli.h"
#include "decode/decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int ends_with(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

static hass_tokenizer *load_gguf_tok(const char *path, hass_err *err) {
    hass_gguf g;
    if (hass_gguf_open(&g, path, err) != HASS_OK)
        return NULL;
    hass_tokenizer *t = hass_tokenizer_load_gguf(&g, err);
    hass_gguf_close(&g);
    return t;
}

hass_tokenizer *cli_open_tokenizer(const char *model, const char *zbin, const char *tokfile,
                                   hass_err *err) {
    if (tokfile) {
        if (ends_with(tokfile, ".json"))
            return hass_tokenizer_load_json(tokfile, err);
        if (ends_with(tokfile, ".gguf"))
            return load_gguf_tok(tokfile, err);
        return hass_tokenizer_load_bin(tokfile, 0, err);
    }
    if (!hass_is_dir(model) && !hass_file_exists(model)) {
        hass_err_set(err, HASS_STATUS_IO, "%s: no such file or directory", model);
        return NULL;
    }
    if (hass_is_dir(model)) {
        char path[1024];
        if (snprintf(path, sizeof path, "%s/tokenizer.json", model) >= (int)sizeof path) {
            hass_err_set(err, HASS_STATUS_ARG, "-m: path too long");
            return NULL;
        }
        return hass_tokenizer_load_json(path, err);
    }
    if (ends_with(model, ".gguf"))
        return load_gguf_tok(model, err);
    if (!zbin) {
        hass_err_set(err, HASS_STATUS_ARG,
                     "-m %s: a llama2.c checkpoint needs -z TOKENIZER.bin (or use --tokenizer)",
                     model);
        return NULL;
    }
    /* the checkpoint header tells how many tokens tokenizer.bin holds */
    hass_llama2c ck;
    if (hass_llama2c_open(&ck, model, err) != HASS_OK)
        return NULL;
    int32_t vocab = ck.cfg.vocab_size;
    hass_llama2c_close(&ck);
    return hass_tokenizer_load_bin(zbin, vocab, err);
}

/* models/default/<name>: next to the working directory, or beside the binary (build/..). */
const char *cli_default_path(const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "models/default/%s", name);
    if (hass_is_dir(buf))
        return buf;
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *sl = strrchr(exe, '/');
        if (sl) {
            *sl = 0;
            snprintf(buf, cap, "%s/../models/default/%s", exe, name);
            if (hass_is_dir(buf))
                return buf;
        }
    }
    return NULL;
}

int cli_default_model(const char **model, const char **draft, int want_draft, char *bm, char *bd,
                      size_t cap, const char *cmd) {
    if (*model)
        return 0;
    if (!(*model = cli_default_path("target", bm, cap)))
        return cli_fail(1, "%s: no -m given and no shipped model in models/default", cmd);
    if (want_draft && !*draft)
        *draft = cli_default_path("draft-hass", bd, cap);
    return 0;
}

int64_t cli_encode_chat(const hass_tokenizer *tok, const hass_chat_msg *msgs, int n,
                        int32_t **ids_out, hass_err *err) {
    char *text = hass_tokenizer_chat_render(tok, msgs, n, 1, err);
    if (!text)
        return -1;
    int64_t r = cli_encode_prompt(tok, text, 0, NULL, ids_out, err);
    free(text);
    return r;
}

int64_t cli_encode_prompt(const hass_tokenizer *tok, const char *text, int chat, const char *system,
                          int32_t **ids_out, hass_err *err) {
    if (chat) {
        hass_chat_msg msgs[2];
        int n = 0;
        if (system)
            msgs[n++] = (hass_chat_msg){"system", system};
        msgs[n++] = (hass_chat_msg){"user", text};
        return cli_encode_chat(tok, msgs, n, ids_out, err);
    }
    size_t len = strlen(text);
    int64_t cap = (int64_t)len + 8;
    int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
    if (!ids) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return -1;
    }
    int64_t n =
        hass_tokenizer_encode(tok, text, len, hass_tokenizer_wants_bos(tok), 1, ids, cap, err);
    if (n > cap) { /* cannot happen with byte fallback, but stay correct */
        int32_t *b = realloc(ids, (size_t)n * sizeof(int32_t));
        if (!b) {
            free(ids);
            hass_err_set(err, HASS_STATUS_OOM, "out of memory");
            return -1;
        }
        ids = b;
        n = hass_tokenizer_encode(tok, text, len, hass_tokenizer_wants_bos(tok), 1, ids, n, err);
    }
    if (n < 0) {
        free(ids);
        return -1;
    }
    *ids_out = ids;
    return n;
}

void cli_gen_opts_init(cli_gen_opts *o, long long n_new_default) {
    memset(o, 0, sizeof *o);
    o->n_new = n_new_default;
    o->top_p = 1;
    o->depth = 6;
    o->topk = 10;
}

int cli_gen_flag(int argc, char **argv, int *i, cli_gen_opts *o) {
    const char *a = argv[*i], *v;
    static const char *valued[] = {"-m",
                                   "-z",
                                   "-d",
                                   "-n",
                                   "-t",
                                   "--top-p",
                                   "--top-k",
                                   "--seed",
                                   "--tree-depth",
                                   "--tree-topk",
                                   "--tree-tokens",
                                   "--threads",
                                   "--ctx"};
    if (!strcmp(a, "--chat")) {
        o->chat = 1;
        return 1;
    }
    if (!strcmp(a, "--json")) {
        o->json = 1;
        return 1;
    }
    size_t k = 0;
    while (k < sizeof valued / sizeof valued[0] && strcmp(a, valued[k]))
        k++;
    if (k == sizeof valued / sizeof valued[0])
        return 0;
    if (!(v = cli_need_value(argc, argv, i)))
        return -1;
    int bad = 0;
    if (!strcmp(a, "-m"))
        o->model = v;
    else if (!strcmp(a, "-z"))
        o->zbin = v;
    else if (!strcmp(a, "-d"))
        o->draft = v;
    else if (!strcmp(a, "-n"))
        bad = cli_parse_int(a, v, 1, 1 << 24, &o->n_new);
    else if (!strcmp(a, "-t"))
        bad = cli_parse_float(a, v, 0, 100, &o->temp);
    else if (!strcmp(a, "--top-p"))
        bad = cli_parse_float(a, v, 1e-6, 1, &o->top_p);
    else if (!strcmp(a, "--top-k"))
        bad = cli_parse_int(a, v, 0, 1 << 24, &o->top_k);
    else if (!strcmp(a, "--seed"))
        bad = cli_parse_int(a, v, 0, (long long)9e18, &o->seed);
    else if (!strcmp(a, "--tree-depth"))
        bad = cli_parse_int(a, v, 1, HASS_MAX_DEPTH + 1, &o->depth);
    else if (!strcmp(a, "--tree-topk"))
        bad = cli_parse_int(a, v, 1, HASS_TREE_MAX_TOPK, &o->topk);
    else if (!strcmp(a, "--tree-tokens"))
        bad = strcmp(v, "auto") ? cli_parse_int(a, v, 1, HASS_TREE_MAX_NODES - 1, &o->tokens)
                                : (o->tokens = 0);
    else if (!strcmp(a, "--threads"))
        bad = cli_parse_int(a, v, 1, 1024, &o->threads);
    else
        bad = cli_parse_int(a, v, 2, 1 << 22, &o->ctx);
    return bad ? -1 : 1;
}

void cli_session_close(cli_session *s) {
    hass_engine_destroy(s->e);
    hass_pool_destroy(s->pool);
    hass_draft_free(s->dr);
    hass_model_free(s->m);
    hass_tokenizer_free(s->tok);
    memset(s, 0, sizeof *s);
}

int cli_session_open(cli_session *s, const char *model, const char *zbin, const char *draft,
                     long long threads, long long ctx, hass_err *err) {
    memset(s, 0, sizeof *s);
    if (!(s->tok = cli_open_tokenizer(model, zbin, NULL, err)))
        return err->code == HASS_STATUS_ARG ? 2 : 1;
    if (!(s->m = hass_model_load(model, err)))
        goto fail;
    if (hass_tokenizer_vocab_size(s->tok) > s->m->cfg.V) {
        hass_err_set(err, HASS_STATUS_SHAPE, "tokenizer has %d tokens, the model only %lld",
                     hass_tokenizer_vocab_size(s->tok), (long long)s->m->cfg.V);
        goto fail;
    }
    if (draft && !(s->dr = hass_draft_load(draft, s->m, err)))
        goto fail;
    if (!(s->pool = hass_pool_create((int)threads))) {
        hass_err_set(err, HASS_STATUS_OOM, "cannot start threads");
        goto fail;
    }
    if (!(s->e = hass_engine_create(s->m, s->tok, s->dr, s->pool, ctx, err)))
        goto fail;
    return 0;
fail:
    cli_session_close(s);
    return 1;
}

/* "path/to/stories260K.bin" -> "stories260K"; "models/default/target/" -> "target" */
void cli_model_name(const char *path, char *out, size_t cap) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    const char *b = path;
    for (size_t i = 0; i < n; i++)
        if (path[i] == '/' && i + 1 < n)
            b = path + i + 1;
    size_t len = (size_t)(path + n - b);
    const char *dot = memchr(b, '.', len);
    if (dot && dot != b && !hass_is_dir(path))
        len = (size_t)(dot - b);
    snprintf(out, cap, "%.*s", (int)len, b);
}
