/*
 * cmd_tokenize.c — `hass tokenize`: encode a text with a model's tokenizer and print the ids
 * (space-separated on one line) or, with --json, {"ids": [...], "pieces": [...]}.
 *
 * The tokenizer comes from -m MODEL (a directory with tokenizer.json, a .gguf file, or a
 * llama2.c checkpoint together with -z tokenizer.bin) or directly from --tokenizer FILE
 * (tokenizer.json, tokenizer.bin or .gguf). Exit codes: 0 ok, 1 runtime error, 2 usage error.
 */
#include "cli/cli.h"
#include "formats/formats.h"
#include "tokenizer/tokenizer.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *tokenize_usage =
    "usage: hass tokenize (-m MODEL [-z TOKENIZER.bin] | --tokenizer FILE) -p TEXT [flags]\n"
    "  -m, --model MODEL    model directory (loads MODEL/tokenizer.json), .gguf file, or a\n"
    "                       llama2.c checkpoint .bin (needs -z)\n"
    "  -z FILE              llama2.c tokenizer.bin for a .bin checkpoint\n"
    "  --tokenizer FILE     tokenizer.json, llama2.c tokenizer.bin or .gguf (instead of -m)\n"
    "  -p, --prompt TEXT    text to encode (required)\n"
    "  --no-bos             do not prepend BOS (default: prepend when the model wants it)\n"
    "  --no-special         encode special-token strings as plain text (default: parse them)\n"
    "  --json               print {\"ids\": [...], \"pieces\": [...]} instead of plain ids\n"
    "  -h, --help           this help\n";

static int print_json(const hass_tokenizer *t, const int32_t *ids, int64_t n) {
    cJSON *root = cJSON_CreateObject();
    cJSON *jids = cJSON_AddArrayToObject(root, "ids");
    cJSON *jp = cJSON_AddArrayToObject(root, "pieces");
    int bad = !root || !jids || !jp;
    for (int64_t i = 0; i < n && !bad; i++) {
        const char *p = hass_tokenizer_piece(t, ids[i], NULL);
        bad = !cJSON_AddItemToArray(jids, cJSON_CreateNumber(ids[i])) ||
              !cJSON_AddItemToArray(jp, cJSON_CreateString(p ? p : ""));
    }
    char *s = bad ? NULL : cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return cli_fail(1, "out of memory");
    printf("%s\n", s);
    free(s);
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *zbin = NULL, *tokfile = NULL, *text = NULL;
    int no_bos = 0, no_special = 0, json = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(tokenize_usage, stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(model = cli_need_value(argc, argv, &i)))
                return 2;
        } else if (!strcmp(a, "-z")) {
            if (!(zbin = cli_need_value(argc, argv, &i)))
                return 2;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(tokfile = cli_need_value(argc, argv, &i)))
                return 2;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(text = cli_need_value(argc, argv, &i)))
                return 2;
        } else if (!strcmp(a, "--no-bos")) {
            no_bos = 1;
        } else if (!strcmp(a, "--no-special")) {
            no_special = 1;
        } else if (!strcmp(a, "--json")) {
            json = 1;
        } else {
            return cli_unknown_flag("tokenize", a);
        }
    }
    if (!text)
        return cli_fail(2, "tokenize: -p TEXT is required (see hass tokenize --help)");
    if (!model == !tokfile)
        return cli_fail(2, "tokenize: give exactly one of -m MODEL or --tokenizer FILE");
    hass_err err = {0};
    hass_tokenizer *t = hass_tokenizer_open(model, tokfile ? tokfile : zbin, &err);
    if (!t)
        return cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    int add_bos = !no_bos && hass_tokenizer_wants_bos(t);
    size_t len = strlen(text);
    int64_t n = hass_tokenizer_encode(t, text, len, add_bos, !no_special, NULL, 0, &err);
    int32_t *ids = n >= 0 ? malloc((size_t)(n + 1) * sizeof *ids) : NULL;
    if (n < 0 || !ids ||
        hass_tokenizer_encode(t, text, len, add_bos, !no_special, ids, n, &err) != n) {
        free(ids);
        hass_tokenizer_free(t);
        return cli_fail(1, "tokenize: %s", n < 0 ? err.msg : "out of memory");
    }
    int rc = 0;
    if (json) {
        rc = print_json(t, ids, n);
    } else {
        for (int64_t i = 0; i < n; i++)
            printf("%s%d", i ? " " : "", ids[i]);
        printf("\n");
    }
    free(ids);
    hass_tokenizer_free(t);
    return rc;
}
