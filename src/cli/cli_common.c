/*
 * cli_common.c — what several subcommands share: finding the shipped default model, the flags
 * of generate and bench, and opening their session (through the public API's path, api.h).
 */
#include "cli/cli.h"
#include "decode/decode.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
        return cli_fail(2, "%s: -m MODEL is required (no shipped model in models/default)", cmd);
    if (want_draft && !*draft)
        *draft = cli_default_path("draft-hass", bd, cap);
    return 0;
}

void cli_gen_opts_init(cli_gen_opts *o, long long n_new_default) {
    memset(o, 0, sizeof *o);
    o->open = hass_open_options_default();
    o->gen = hass_options_default();
    o->gen.max_new_tokens = n_new_default;
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
        o->gen.chat = 1;
        return 1;
    }
    if (!strcmp(a, "--ctx-beyond-model")) {
        o->open.ctx_beyond_model = 1;
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
    hass_options *g = &o->gen;
    long long x = 0;
    double f = 0;
    int bad = 0;
    if (!strcmp(a, "-m")) {
        o->model = v;
    } else if (!strcmp(a, "-z")) {
        o->open.tokenizer = v;
    } else if (!strcmp(a, "-d")) {
        o->open.draft = v;
    } else if (!strcmp(a, "-n")) {
        bad = cli_parse_int(a, v, 1, 1 << 24, &x);
        g->max_new_tokens = x;
    } else if (!strcmp(a, "-t")) {
        bad = cli_parse_float(a, v, 0, 100, &f);
        g->temperature = (float)f;
    } else if (!strcmp(a, "--top-p")) {
        bad = cli_parse_float(a, v, 1e-6, 1, &f);
        g->top_p = (float)f;
    } else if (!strcmp(a, "--top-k")) {
        bad = cli_parse_int(a, v, 0, 1 << 24, &x);
        g->top_k = (int)x;
    } else if (!strcmp(a, "--seed")) {
        bad = cli_parse_int(a, v, 0, (long long)9e18, &x);
        g->seed = (uint64_t)x;
    } else if (!strcmp(a, "--tree-depth")) {
        bad = cli_parse_int(a, v, 1, HASS_TREE_MAX_DEPTH, &x);
        g->tree_depth = (int)x;
    } else if (!strcmp(a, "--tree-topk")) {
        bad = cli_parse_int(a, v, 1, HASS_TREE_MAX_TOPK, &x);
        g->tree_topk = (int)x;
    } else if (!strcmp(a, "--tree-tokens")) {
        bad = strcmp(v, "auto") ? cli_parse_int(a, v, 1, HASS_TREE_MAX_NODES - 1, &x) : 0;
        g->tree_tokens = (int)x;
    } else if (!strcmp(a, "--threads")) {
        bad = cli_parse_int(a, v, 1, 1024, &x);
        o->open.threads = (int)x;
    } else {
        bad = cli_parse_int(a, v, 2, 1 << 22, &x);
        o->open.ctx = x;
    }
    return bad ? -1 : 1;
}

hass_session *cli_session_open(const cli_gen_opts *g, int *rc) {
    hass_err err = {0};
    hass_session *s = hass_session_create(g->model, &g->open, &err);
    if (!s)
        *rc = cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    return s;
}

int cli_check_output(const char *cmd, const char *path, int is_dir, const char *marker, int force) {
    if (is_dir) {
        char m[1200];
        snprintf(m, sizeof m, "%s/%s", path, marker);
        if (!force && hass_file_exists(m))
            return cli_fail(1, "%s: %s already holds %s; pass --force to overwrite it", cmd, path,
                            marker);
        hass_err err = {0};
        if (hass_mkdir_p(path, &err))
            return cli_fail(1, "%s: %s", cmd, err.msg);
        if (access(path, W_OK) != 0)
            return cli_fail(1, "%s: %s: not writable", cmd, path);
        return 0;
    }
    if (hass_is_dir(path))
        return cli_fail(1, "%s: %s is a directory", cmd, path);
    if (!force && access(path, F_OK) == 0)
        return cli_fail(1, "%s: %s exists; pass --force to overwrite it", cmd, path);
    char dir[1024];
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path) + (slash == path), path);
    else
        snprintf(dir, sizeof dir, ".");
    if (!hass_is_dir(dir) || access(dir, W_OK) != 0)
        return cli_fail(1, "%s: %s: the directory %s is missing or not writable", cmd, path, dir);
    return 0;
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
