/*
 * cli.h — the hass subcommands. Only src/cli prints to the user or exits.
 * Each command returns the process exit code: 0 ok, 1 runtime error, 2 usage error.
 */
#ifndef HASS_CLI_H
#define HASS_CLI_H

#include "core/core.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} cli_command;

/* Prints "hass: <msg>" on stderr (one line) and returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Flag parsing helpers: return 0 on success, print a usage error and return 2 otherwise. */
int cli_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out);
int cli_parse_float(const char *flag, const char *s, double lo, double hi, double *out);
/* argv[*i] is a flag that needs a value: returns it and advances *i, or NULL (after a usage
 * error message) if missing. */
const char *cli_need_value(int argc, char **argv, int *i);

/* subcommands (one file each: src/cli/cmd_<name>.c) */
int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);

#endif
