/*
 * cli.h — the hass subcommands. Only src/cli prints to the user or exits.
 * Each command returns the process exit code: 0 ok, 1 runtime error, 2 usage error.
 */
#ifndef HASS_CLI_H
#define HASS_CLI_H

#include "api/api.h"
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

/* The usage error of a flag cmd does not take (one line, naming --help); returns 2. */
int cli_unknown_flag(const char *cmd, const char *flag);
/* Flag parsing helpers: return 0 on success, print a usage error and return 2 otherwise. */
int cli_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int cli_parse_float(const char *flag, const char *s, double lo, double hi, double *out);
/* argv[*i] is a flag that needs a value: returns it and advances *i, or NULL (after a usage
 * error message) if missing. */
const char *cli_need_value(int argc, char **argv, int *i);
/* Checks an output before the work starts; 0 if it may be written, else the exit code after a
 * one-line message. A directory (is_dir) is created if missing and must be writable; one that
 * already holds marker (e.g. "model.safetensors") is refused unless force. A file must not be
 * a directory, must not exist unless force, and its directory must exist and be writable. */
int cli_check_output(const char *cmd, const char *path, int is_dir, const char *marker, int force);

/* A model's name from its path: "path/to/stories260K.bin" -> "stories260K",
 * "models/default/target/" -> "target" (GGUF general.name of export and quantize). */
void cli_model_name(const char *path, char *out, size_t cap);
/* With no model given: the shipped models/default/target, and (if want_draft and none given)
 * models/default/draft-hass. Buffers hold the paths (cap bytes each). Returns 0, or 2 (a usage
 * error: -m is needed) after a one-line error naming cmd when there is no shipped model. */
int cli_default_model(const char **model, const char **draft, int want_draft, char *bm, char *bd,
                      size_t cap, const char *cmd);
/* Path of models/default/<name> (cwd or beside the binary), or NULL if absent. */
const char *cli_default_path(const char *name, char *buf, size_t cap);
/* Flags shared by generate and bench: model, draft, sampling, tree, threads, context, output.
 * They fill the public API's options, so the commands open and generate as hass.h does. */
typedef struct {
    const char *model;
    hass_open_options open; /* -z (the tokenizer), -d, --threads, --ctx */
    hass_options gen;       /* -n, -t, --top-p, --top-k, --seed, --chat, --tree-* */
    int json;
} cli_gen_opts;
/* Defaults: hass_options_default() with max_new_tokens = n_new_default. */
void cli_gen_opts_init(cli_gen_opts *o, long long n_new_default);
/* If argv[*i] is one of the shared flags, consumes it (and its value) and returns 1; returns 0
 * if it is not one of them; returns -1 after printing a usage error (exit 2). */
int cli_gen_flag(int argc, char **argv, int *i, cli_gen_opts *o);

/* Opens the session of the shared flags (hass_session_create); NULL after printing the error
 * (*rc: 2 usage, 1 runtime). */
hass_session *cli_session_open(const cli_gen_opts *g, int *rc);

/* subcommands (one file each: src/cli/cmd_<name>.c; convert is in cmd_export.c) */
int cmd_bench(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_datagen(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_draft_init(int argc, char **argv);
int cmd_draft_vocab(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train_draft(int argc, char **argv);
int cmd_train_tokenizer(int argc, char **argv);

#endif
