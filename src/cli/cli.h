/*
 * cli.h — the hass subcommands. Only src/cli prints to the user or exits.
 * Each command returns the process exit code: 0 ok, 1 runtime error, 2 usage error.
 */
#ifndef HASS_CLI_H
#define HASS_CLI_H

#include "core/core.h"
#include "decode/decode.h"
#include "formats/formats.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} cli_command;

/* The commit this binary was built from ("unknown" outside a git checkout). */
const char *cli_commit(void);

/* Prints "hass: <msg>" on stderr (one line) and returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Flag parsing helpers: return 0 on success, print a usage error and return 2 otherwise. */
int cli_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int cli_parse_float(const char *flag, const char *s, double lo, double hi, double *out);
/* argv[*i] is a flag that needs a value: returns it and advances *i, or NULL (after a usage
 * error message) if missing. */
const char *cli_need_value(int argc, char **argv, int *i);

/* Opens the tokenizer of a model path (-m), a llama2.c tokenizer.bin (-z) or an explicit
 * tokenizer file; NULL with err set (HASS_STATUS_ARG: usage error). */
hass_tokenizer *cli_open_tokenizer(const char *model, const char *zbin, const char *tokfile,
                                   hass_err *err);
/* A model's name from its path: "path/to/stories260K.bin" -> "stories260K",
 * "models/default/target/" -> "target" (GGUF general.name of export and quantize). */
void cli_model_name(const char *path, char *out, size_t cap);
/* With no model given: the shipped models/default/target, and (if want_draft and none given)
 * models/default/draft-hass. Buffers hold the paths (cap bytes each). Returns 0, or 1 after a
 * one-line error naming cmd when there is no shipped model. */
int cli_default_model(const char **model, const char **draft, int want_draft, char *bm, char *bd,
                      size_t cap, const char *cmd);
/* Path of models/default/<name> (cwd or beside the binary), or NULL if absent. */
const char *cli_default_path(const char *name, char *buf, size_t cap);
/* BOS (if the model wants it) + encode(text), or the chat template with chat; *ids_out is
 * heap-allocated (caller frees). Returns the count or -1 with err set. */
int64_t cli_encode_prompt(const hass_tokenizer *tok, const char *text, int chat, const char *system,
                          int32_t **ids_out, hass_err *err);

/* The chat template over msgs (+ the generation prompt), encoded like cli_encode_prompt. */
int64_t cli_encode_chat(const hass_tokenizer *tok, const hass_chat_msg *msgs, int n,
                        int32_t **ids_out, hass_err *err);

/* Flags shared by generate and bench: model, draft, sampling, tree, threads, context, output. */
typedef struct {
    const char *model, *zbin, *draft;
    long long n_new, seed, top_k, depth, topk, tokens, threads, ctx;
    double temp, top_p;
    int chat, json;
} cli_gen_opts;
/* Defaults: n_new = n_new_default, greedy, top-p 1, tree depth 6 / top-k 10 / auto. */
void cli_gen_opts_init(cli_gen_opts *o, long long n_new_default);
/* If argv[*i] is one of the shared flags, consumes it (and its value) and returns 1; returns 0
 * if it is not one of them; returns -1 after printing a usage error (exit 2). */
int cli_gen_flag(int argc, char **argv, int *i, cli_gen_opts *o);

/* Everything a generating command holds: tokenizer, model, draft (optional), pool, engine. */
typedef struct {
    hass_tokenizer *tok;
    hass_model *m;
    hass_draft *dr;
    hass_pool *pool;
    hass_engine *e;
} cli_session;
/* Opens model (+ zbin tokenizer for llama2.c files) and draft (may be NULL). Returns 0, or the
 * exit code (2 usage, 1 runtime) with err set; s is then closed. */
int cli_session_open(cli_session *s, const char *model, const char *zbin, const char *draft,
                     long long threads, long long ctx, hass_err *err);
void cli_session_close(cli_session *s);

/* subcommands (one file each: src/cli/cmd_<name>.c; convert is in cmd_export.c) */
int cmd_bench(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_datagen(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_draft_init(int argc, char **argv);
int cmd_draft_vocab(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train_draft(int argc, char **argv);
int cmd_train_tokenizer(int argc, char **argv);

#endif
