/*
 * main.c — `hass <subcommand> [flags]`: dispatch through a {name, fn, help} table.
 */
#include "cli/cli.h"
#include "ops/ops.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmd_version(int argc, char **argv);
static const cli_command commands[] = {
    /* one line per subcommand; keep alphabetical */
    {"bench", cmd_bench, "plain vs speculative decoding on a prompt file: speed, tau, identity"},
    {"chat", cmd_chat, "an interactive multi-turn chat in the terminal (streaming)"},
    {"convert", cmd_convert, "write a model as a Hugging Face directory (f32/bf16)"},
    {"datagen", cmd_datagen, "target features of conversations / prompts for draft training"},
    {"draft-init", cmd_draft_init, "write a freshly initialised draft head for a model"},
    {"draft-vocab", cmd_draft_vocab, "restrict a draft to the most frequent tokens of its data"},
    {"eval", cmd_eval, "plain vs each draft over prompt suites: tables, plots, report"},
    {"export", cmd_export, "write a model as GGUF for llama.cpp (or a Hugging Face directory)"},
    {"generate", cmd_generate, "generate text (speculative with a draft head, -d)"},
    {"inspect", cmd_inspect, "print the header, metadata and tensor table of a model file"},
    {"perplexity", cmd_perplexity, "validation loss and perplexity of a model over a JSONL corpus"},
    {"pretrain", cmd_pretrain, "train a LLaMA-family model from scratch on a JSONL corpus"},
    {"quantize", cmd_quantize,
     "write a model as a quantized GGUF file (Q8_0 ... Q4_K_M), as llama-quantize"},
    {"serve", cmd_serve, "an OpenAI-compatible HTTP server (streaming, speculative decoding)"},
    {"tokenize", cmd_tokenize, "encode text with a model's tokenizer and print the token ids"},
    {"train-draft", cmd_train_draft, "train an EAGLE / HASS draft head on datagen features"},
    {"train-tokenizer", cmd_train_tokenizer, "train a byte-level BPE tokenizer on JSONL records"},
    {"version", cmd_version, "print the version and the CPU kernels in use"},
};
#define N_COMMANDS (int)(sizeof commands / sizeof commands[0])

int cli_fail(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("hass: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

int cli_unknown_flag(const char *cmd, const char *flag) {
    return cli_fail(2, "%s: unknown flag '%s' (hass %s --help lists the flags)", cmd, flag, cmd);
}

int cli_parse_int(const char *flag, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return cli_fail(2, "%s: expected an integer in [%lld, %lld], got '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

int cli_parse_float(const char *flag, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
        return cli_fail(2, "%s: expected a number in [%g, %g], got '%s'", flag, lo, hi, s);
    *out = v;
    return 0;
}

const char *cli_need_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        cli_fail(2, "%s: missing value", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

static int cmd_version(int argc, char **argv) {
    if (argc > 1)
        return strcmp(argv[1], "--help") && strcmp(argv[1], "-h")
                   ? cli_unknown_flag("version", argv[1])
                   : (puts("usage: hass version   (the version and the CPU kernels in use)"), 0);
    printf("hass 0.1 (commit %s, kernels: %s)\n", cli_commit(), hass_cpu_isa_name());
    return 0;
}

static void log_sink(hass_log_level level, const char *msg, void *user) {
    (void)user;
    fprintf(stderr, "%s%s\n", level >= HASS_LOG_WARN ? "hass: warning: " : "", msg);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: hass <command> [flags]   (hass <command> --help for its flags)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    hass_log_set(log_sink, NULL, getenv("HASS_VERBOSE") ? HASS_LOG_DEBUG : HASS_LOG_INFO);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    return cli_fail(2, "unknown command '%s' (hass --help lists the commands)", argv[1]);
}
