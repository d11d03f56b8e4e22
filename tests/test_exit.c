/*
 * test_exit.c — the command line's contracts on bad input, walked as tables:
 *   - exit codes: for every subcommand, usage errors (an unknown flag, a flag without its
 *     value, a bad number, a required flag missing) exit 2 and data errors (a missing file, a
 *     truncated model, a FIFO or /dev/zero as input, a feature shard holding a token id outside
 *     the vocabulary) exit 1, each with one line on stderr that says what is wrong;
 *   - vocabularies: a tokenizer larger than the model's vocabulary is an error at load on every
 *     path (Hugging Face directory, GGUF, llama2.c + tokenizer.bin, an explicit tokenizer), in
 *     the CLI and in the API, with a line naming both sizes; a model vocabulary larger than the
 *     tokenizer's (padded, as Hugging Face allows) is accepted;
 *   - a one-shot run on a model of a 4M-token context holds memory for the run, not for the
 *     context (peak RSS of the process), and a prompt longer than the context is an error.
 */
#include "check.h"

#include "api/api.h"
#include "core/core.h"
#include "formats/formats.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

#include <cJSON.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char hass[1024];
static char errout[1 << 14];
static long last_rss_kb;

/* Runs hass with the space-separated words of the formatted command line (stdin /dev/null,
 * stdout discarded, stderr into errout); the exit code, -1 on a signal (a hang is killed after
 * 300 s). last_rss_kb: the run's peak resident size. */
static int run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int run(const char *fmt, ...) {
    char line[4096], *argv[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int argc = 0;
    argv[argc++] = hass;
    for (char *save = NULL, *w = strtok_r(line, " ", &save); w && argc < 63;
         w = strtok_r(NULL, " ", &save))
        argv[argc++] = w;
    argv[argc] = NULL;
    const char *ef = check_path("stderr");
    pid_t pid = fork();
    if (pid == 0) {
        FILE *in = freopen("/dev/null", "r", stdin), *out = freopen("/dev/null", "w", stdout);
        FILE *err = freopen(ef, "w", stderr);
        if (!in || !out || !err)
            _exit(126);
        alarm(300);
        execv(hass, argv);
        _exit(127);
    }
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    if (pid < 0 || wait4(pid, &st, 0, &ru) != pid)
        return -1;
    last_rss_kb = ru.ru_maxrss;
    long n = 0;
    char *e = check_read(ef, &n);
    snprintf(errout, sizeof errout, "%s", e ? e : "");
    free(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* stderr is exactly one line starting "hass" */
static int one_line(void) {
    char *nl = strchr(errout, '\n');
    return !strncmp(errout, "hass", 4) && nl && nl[1] == 0;
}

/* the last line of stderr starts "hass" (progress lines may come before it) */
static int last_line_hass(void) {
    const char *p = check_last_line(errout);
    return p && !strncmp(p, "hass", 4);
}

/* ---- fixtures ---- */

static const char *S, *T; /* the shared stories260K.bin and its tok512.bin */
/* the '@' names of the tables and the files they stand for (in the temporary directory) */
enum {
    S_,
    T_,
    TRUNC,
    TRUNCG,
    G,
    FIFO,
    ZERO,
    MISSING,
    J,
    BADJ,
    SHORT,
    FS,
    BADFS,
    TOKJ,
    DRAFT,
    PROMPTS,
    TRUNCJ,
    N_FX
};
static const char *const fx_names[N_FX][2] = {{"@S", NULL},
                                              {"@T", NULL},
                                              {"@TRUNC", "trunc.bin"},
                                              {"@TRUNCG", "trunc.gguf"},
                                              {"@G", "s.gguf"},
                                              {"@FIFO", "fifo"},
                                              {"@ZERO", NULL},
                                              {"@MISSING", "no/such/file"},
                                              {"@J", "c.jsonl"},
                                              {"@BADJ", "bad.jsonl"},
                                              {"@SHORT", "short.jsonl"},
                                              {"@FS", "fs"},
                                              {"@BADFS", "badfs"},
                                              {"@TOKJ", "tk/tokenizer.json"},
                                              {"@DRAFT", "draft"},
                                              {"@PROMPTS", "p.jsonl"},
                                              {"@TRUNCJ", "trunc.json"}};
static char fx[N_FX][600];

static void copy_prefix(const char *from, const char *to, long keep) {
    long n = 0;
    char *b = check_read(from, &n);
    HASS_ASSERT(b && check_write(to, "wb", b, keep < n ? keep : n) == 0);
    free(b);
}

/* The feature store dir's first shard with its first token id set to id. */
static void corrupt_first_id(const char *dir, int32_t id) {
    char path[1200];
    snprintf(path, sizeof path, "%s/index.json", dir);
    long n = 0;
    char *idx = check_read(path, &n);
    cJSON *j = idx ? cJSON_Parse(idx) : NULL;
    const cJSON *sh = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "shards"), 0);
    const char *file = cJSON_GetStringValue(cJSON_GetObjectItem(sh, "file"));
    HASS_ASSERT(file);
    snprintf(path, sizeof path, "%s/%s", dir, file);
    cJSON_Delete(j);
    free(idx);
    char *b = check_read(path, &n);
    HASS_ASSERT(b && n > 52);
    memcpy(b + 48, &id, 4); /* magic, version, flags, d, count, fingerprint, the first length */
    HASS_ASSERT(check_write(path, "wb", b, n) == 0);
    free(b);
}

static int make_fixtures(void) {
    S = check_shared("models/stories260K.bin");
    T = check_shared("models/tok512.bin");
    if (!S || !T)
        return 0;
    const char *tmp = check_tmp();
    for (int i = 0; i < N_FX; i++)
        if (fx_names[i][1])
            snprintf(fx[i], sizeof fx[i], "%s/%s", tmp, fx_names[i][1]);
    snprintf(fx[S_], sizeof fx[S_], "%s", S);
    snprintf(fx[T_], sizeof fx[T_], "%s", T);
    snprintf(fx[ZERO], sizeof fx[ZERO], "/dev/zero");
    copy_prefix(S, fx[TRUNC], 3000); /* a header and part of the embedding */
    CHECK(run("export -m %s -z %s --gguf %s", S, T, fx[G]) == 0);
    copy_prefix(fx[G], fx[TRUNCG], 200000); /* the metadata and some of the tensors */
    CHECK(mkfifo(fx[FIFO], 0600) == 0);
    FILE *f = fopen(fx[J], "w");
    for (int i = 0; f && i < 12; i++)
        fprintf(f,
                "{\"messages\": [{\"role\": \"user\", \"content\": \"Tell me about the dog %d.\"}, "
                "{\"role\": \"assistant\", \"content\": \"Once upon a time there was a dog. It "
                "liked to play in the park with the ball number %d.\"}]}\n",
                i, i);
    CHECK(f && fclose(f) == 0);
    CHECK(check_write(fx[BADJ], "wb", "{\"text\": \"ok\"}\n{\"text\": [1, 2]}\n", -1) == 0);
    CHECK(check_write(fx[SHORT], "wb", "{\"text\": \"Once upon a time\"}\n", -1) == 0);
    CHECK(run("datagen -m %s -z %s --data %s -o %s", S, T, fx[J], fx[FS]) == 0);
    CHECK(check_copy(fx[FS], fx[BADFS]) == 0);
    corrupt_first_id(fx[BADFS], 100000);
    char tk[600];
    snprintf(tk, sizeof tk, "%s/tk", tmp);
    CHECK(run("train-tokenizer --data %s -o %s --vocab 320", fx[J], tk) == 0);
    CHECK(run("draft-init -m %s -o %s", S, fx[DRAFT]) == 0);
    CHECK(check_write(fx[PROMPTS], "wb", "{\"turns\": [\"Once upon a time\"]}\n", -1) == 0);
    copy_prefix(fx[TOKJ], fx[TRUNCJ], 300); /* a tokenizer.json cut short */
    return 1;
}

/* The command line with each '@NAME' word replaced by its fixture, "@OUT" by a new path. */
static void expand(const char *in, char *out, size_t cap) {
    static int n_out;
    out[0] = 0;
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", in);
    for (char *save = NULL, *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        const char *r = w;
        char o[600];
        if (!strcmp(w, "@OUT")) {
            snprintf(o, sizeof o, "%s/out%d", check_tmp(), n_out++);
            r = o;
        }
        for (int i = 0; i < N_FX; i++)
            if (!strcmp(w, fx_names[i][0]))
                r = fx[i];
        size_t k = strlen(out);
        snprintf(out + k, cap - k, "%s%s", k ? " " : "", r);
    }
}

/* ---- exit codes ---- */

static const struct {
    int code;
    const char *args;
} walk[] = {
    /* usage errors: an unknown flag, a missing value, a bad number, a required flag missing */
    {2, "frobnicate"},
    {2, "bench --bogus"},
    {2, "bench -m @S -z @T -d @DRAFT --prompts"},
    {2, "bench -m @S -z @T -d @DRAFT --prompts @PROMPTS -n abc"},
    {2, "bench -m @S -z @T -d @DRAFT --prompts @PROMPTS --reps 0"},
    {2, "bench -m @S -z @T -d @DRAFT"},
    {2, "chat --bogus"},
    {2, "chat -m @S -z @T --system"},
    {2, "chat -m @S -z @T -n abc"},
    {2, "chat -m @S -z @T --top-p 2"},
    {2, "convert --bogus"},
    {2, "convert -m @S -o"},
    {2, "convert -m @S -o @OUT --shard-mb x"},
    {2, "convert -m @S"},
    {2, "datagen --bogus"},
    {2, "datagen -m @S -z @T --data @J -o"},
    {2, "datagen -m @S -z @T --data @J -o @OUT --max-len x"},
    {2, "datagen -m @S -z @T --data @J -o @OUT --format yaml"},
    {2, "datagen -m @S -z @T --data @J"},
    {2, "draft-init --bogus"},
    {2, "draft-init -m @S -o"},
    {2, "draft-init -m @S -o @OUT --seed x"},
    {2, "draft-init -m @S"},
    {2, "draft-vocab --bogus"},
    {2, "draft-vocab -m @S -d @DRAFT --data @FS -n"},
    {2, "draft-vocab -m @S -d @DRAFT --data @FS -n x"},
    {2, "draft-vocab -m @S -d @DRAFT --data @FS"},
    {2, "eval --bogus"},
    {2, "eval -m @S -z @T --drafts"},
    {2, "eval -m @S -z @T --drafts @DRAFT --limit x"},
    {2, "eval -m @S -z @T --drafts @DRAFT -t 0,x"},
    {2, "eval -m @S -z @T --drafts a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"},
    {2, "eval -m @S -z @T"},
    {2, "export --bogus"},
    {2, "export -m @S -z @T --gguf"},
    {2, "export -m @S --hf @OUT --shard-mb x"},
    {2, "export -m @S"},
    {2, "generate --bogus"},
    {2, "generate -m @S -z @T -p"},
    {2, "generate -m @S -z @T -p hi -n abc"},
    {2, "generate -m @S -z @T -p hi -n 0"},
    {2, "generate -m @S -z @T -p hi --ctx 100000"},
    {2, "generate -m @S -p hi"},
    {2, "generate -m @S -z @T"},
    {2, "inspect --bogus"},
    {2, "inspect @S @S"},
    {2, "inspect"},
    {2, "perplexity --bogus"},
    {2, "perplexity -m @S -z @T --data @J --ctx"},
    {2, "perplexity -m @S -z @T --data @J --ctx x"},
    {2, "perplexity -m @S -z @T --data @J --ctx 100000"},
    {2, "perplexity -m @S -z @T"},
    {2, "pretrain --bogus"},
    {2, "pretrain --data @J --tokenizer @TOKJ -o @OUT --steps"},
    {2, "pretrain --data @J --tokenizer @TOKJ -o @OUT --steps x"},
    {2, "pretrain --data @J -o @OUT --steps 200 --warmup 1"},
    {2, "quantize --bogus"},
    {2, "quantize -m @S -z @T -o @OUT --type"},
    {2, "quantize -m @S -z @T -o @OUT --type q3_x"},
    {2, "quantize -m @S -z @T -o @OUT"},
    {2, "serve --bogus"},
    {2, "serve -m @S -z @T --port"},
    {2, "serve -m @S -z @T --port x"},
    {2, "serve -m @S -z @T --port 70000"},
    {2, "tokenize --bogus"},
    {2, "tokenize --tokenizer @T -p"},
    {2, "tokenize --tokenizer @T"},
    {2, "tokenize -p hi"},
    {2, "train-draft --bogus"},
    {2, "train-draft --method hass -m @S --data @FS -o"},
    {2, "train-draft --method hass -m @S --data @FS -o @OUT --steps x"},
    {2, "train-draft --method hass -m @S --data @FS -o @OUT --batch 65"},
    {2, "train-draft -m @S --data @FS -o @OUT"},
    {2, "train-tokenizer --bogus"},
    {2, "train-tokenizer --data @J -o"},
    {2, "train-tokenizer --data @J -o @OUT --vocab x"},
    {2, "train-tokenizer --data @J"},
    {2, "version --bogus"},
    /* data errors: a missing file, a truncated model, a FIFO, /dev/zero, bad records */
    {1, "bench -m @MISSING -z @T -d @DRAFT --prompts @PROMPTS"},
    {1, "bench -m @TRUNC -z @T -d @DRAFT --prompts @PROMPTS"},
    {1, "bench -m @S -z @T -d @DRAFT --prompts @FIFO"},
    {1, "bench -m @ZERO -z @T -d @DRAFT --prompts @PROMPTS"},
    {1, "bench -m @S -z @T -d @MISSING --prompts @PROMPTS"},
    {1, "chat -m @MISSING -z @T"},
    {1, "chat -m @TRUNC -z @T"},
    {1, "chat -m @S -z @FIFO"},
    {1, "chat -m @ZERO -z @T"},
    {1, "convert -m @MISSING -o @OUT"},
    {1, "convert -m @TRUNC -o @OUT"},
    {1, "convert -m @FIFO -o @OUT"},
    {1, "convert -m @TRUNCG -o @OUT"},
    {1, "datagen -m @MISSING -z @T --data @J -o @OUT"},
    {1, "datagen -m @TRUNC -z @T --data @J -o @OUT"},
    {1, "datagen -m @S -z @T --data @FIFO -o @OUT"},
    {1, "datagen -m @S -z @T --data @ZERO -o @OUT"},
    {1, "datagen -m @S -z @T --data @BADJ -o @OUT"},
    {1, "draft-init -m @MISSING -o @OUT"},
    {1, "draft-init -m @TRUNC -o @OUT"},
    {1, "draft-init -m @FIFO -o @OUT"},
    {1, "draft-init -m @ZERO -o @OUT"},
    {1, "draft-vocab -m @S -d @DRAFT --data @MISSING -n 100"},
    {1, "draft-vocab -m @TRUNC -d @DRAFT --data @FS -n 100"},
    {1, "draft-vocab -m @S -d @DRAFT --data @BADFS -n 100"},
    {1, "draft-vocab -m @FIFO -d @DRAFT --data @FS -n 100"},
    {1, "eval -m @MISSING -z @T --drafts @DRAFT --suite @PROMPTS --out @OUT"},
    {1, "eval -m @TRUNC -z @T --drafts @DRAFT --suite @PROMPTS --out @OUT"},
    {1, "eval -m @S -z @T --drafts @DRAFT --suite @FIFO --out @OUT"},
    {1, "eval -m @S -z @T --drafts @MISSING --suite @PROMPTS --out @OUT"},
    {1, "eval -m @ZERO -z @T --drafts @DRAFT --suite @PROMPTS --out @OUT"},
    {1, "export -m @MISSING -z @T --gguf @OUT"},
    {1, "export -m @TRUNC -z @T --gguf @OUT"},
    {1, "export -m @FIFO -z @T --gguf @OUT"},
    {1, "export -m @S -z @ZERO --gguf @OUT"},
    {1, "generate -m @MISSING -z @T -p hi"},
    {1, "generate -m @TRUNC -z @T -p hi"},
    {1, "generate -m @TRUNCG -p hi"},
    {1, "generate -m @TRUNC -p hi"},
    {1, "generate -m @FIFO -z @T -p hi"},
    {1, "generate -m @ZERO -z @T -p hi"},
    {1, "generate -m @S -z @FIFO -p hi"},
    {1, "generate -m @S -z @T -f @ZERO"},
    {1, "generate -m @S -z @T -f @MISSING"},
    {1, "generate -m @S -z @T -p hi -d @MISSING"},
    {1, "inspect @MISSING"},
    {1, "inspect @TRUNC"},
    {1, "inspect @TRUNCG"},
    {1, "inspect @FIFO"},
    {1, "inspect @ZERO"},
    {1, "perplexity -m @MISSING -z @T --data @J"},
    {1, "perplexity -m @TRUNC -z @T --data @J"},
    {1, "perplexity -m @S -z @T --data @FIFO"},
    {1, "perplexity -m @S -z @T --data @ZERO"},
    {1, "perplexity -m @S -z @T --data @BADJ"},
    {1, "perplexity -m @S -z @T --data @SHORT --ctx 64"},
    {1, "pretrain --data @MISSING --tokenizer @TOKJ -o @OUT --steps 200 --warmup 1"},
    {1, "pretrain --data @J --tokenizer @FIFO -o @OUT --steps 200 --warmup 1"},
    {1, "pretrain --data @ZERO --tokenizer @TOKJ -o @OUT --steps 200 --warmup 1"},
    {1, "pretrain --data @J --tokenizer @TRUNCJ -o @OUT --steps 200 --warmup 1"},
    {1, "pretrain --data @BADJ --tokenizer @TOKJ -o @OUT --steps 200 --warmup 1"},
    {1, "quantize -m @MISSING -z @T -o @OUT --type q8_0"},
    {1, "quantize -m @TRUNC -z @T -o @OUT --type q8_0"},
    {1, "quantize -m @FIFO -z @T -o @OUT --type q8_0"},
    {1, "quantize -m @TRUNCG -o @OUT --type q8_0"},
    {1, "serve -m @MISSING -z @T --port 0"},
    {1, "serve -m @TRUNC -z @T --port 0"},
    {1, "serve -m @S -z @FIFO --port 0"},
    {1, "serve -m @ZERO -z @T --port 0"},
    {1, "tokenize --tokenizer @MISSING -p hi"},
    {1, "tokenize --tokenizer @TRUNCJ -p hi"},
    {1, "tokenize --tokenizer @FIFO -p hi"},
    {1, "tokenize --tokenizer @ZERO -p hi"},
    {1, "tokenize -m @TRUNC -z @T -p hi"},
    {1, "train-draft --method hass -m @S --data @BADFS -o @OUT --steps 1"},
    {1, "train-draft --method eagle -m @S --data @MISSING -o @OUT --steps 1"},
    {1, "train-draft --method hass -m @TRUNC --data @FS -o @OUT --steps 1"},
    {1, "train-draft --method hass -m @FIFO --data @FS -o @OUT --steps 1"},
    {1, "train-draft --method hass -m @ZERO --data @FS -o @OUT --steps 1"},
    {1, "train-tokenizer --data @MISSING -o @OUT"},
    {1, "train-tokenizer --data @FIFO -o @OUT"},
    {1, "train-tokenizer --data @ZERO -o @OUT"},
    {1, "train-tokenizer --data @BADJ -o @OUT"},
};

static void test_exit_codes(void) {
    double t0 = hass_now();
    int per[2] = {0, 0};
    for (size_t i = 0; i < sizeof walk / sizeof walk[0]; i++) {
        char args[4096];
        expand(walk[i].args, args, sizeof args);
        int rc = run("%s", args);
        int ok = rc == walk[i].code && (walk[i].code == 2 ? one_line() : last_line_hass());
        CHECK_MSG(ok, "hass %s: exit %d, want %d with a line of stderr (stderr: %.300s)",
                  walk[i].args, rc, walk[i].code, errout);
        per[walk[i].code - 1]++;
    }
    /* the badly truncated shard is named as such: a token outside the vocabulary */
    char args[4096];
    expand("train-draft --method hass -m @S --data @BADFS -o @OUT --steps 1", args, sizeof args);
    CHECK(run("%s", args) == 1 && strstr(errout, "token id"));
    /* no -m and no shipped model beside the binary or in the working directory: -m is needed */
    char bin[700], here[1024];
    snprintf(bin, sizeof bin, "%s/bin", check_tmp());
    mkdir(bin, 0755);
    char copy[800], saved[1024];
    snprintf(copy, sizeof copy, "%s/hass", bin);
    CHECK(check_copy(hass, copy) == 0 && chmod(copy, 0755) == 0);
    snprintf(saved, sizeof saved, "%s", hass);
    snprintf(hass, sizeof hass, "%s", copy);
    CHECK(getcwd(here, sizeof here) && chdir(bin) == 0);
    CHECK_MSG(run("generate -p hi") == 2 && one_line() && strstr(errout, "-m"), "%s", errout);
    CHECK(run("bench --prompts x.jsonl") == 2 && one_line());
    CHECK(chdir(here) == 0);
    snprintf(hass, sizeof hass, "%s", saved);
    fprintf(stderr, "  %d usage and %d data errors walked in %.1f s\n", per[1], per[0],
            hass_now() - t0);
}

/* ---- vocabularies ---- */

/* Writes a synthetic model of V tokens (context ctx) as GGUF with the tokenizer kvs (NULL:
 * none), or as a Hugging Face directory. */
static void write_model(const char *path, int64_t V, int64_t ctx, const hass_gguf_kvs *kvs,
                        int hf) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(64, 96, 2, 4, 2, V, ctx);
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, 5, &err);
    HASS_ASSERT(m);
    hass_gguf_export_opts o = {.dtype = HASS_DTYPE_F32, .name = "synthetic", .extra = kvs};
    hass_status st = hf ? hass_model_export_hf(m, path, HASS_DTYPE_F32, 0, &err)
                        : hass_model_export_gguf(m, path, &o, &err);
    CHECK_MSG(st == HASS_OK, "%s: %s", path, err.msg);
    hass_model_free(m);
}

/* The model (and tokenizer, NULL: its own) opens in the API, or fails with a message holding
 * want1 and want2; the same through `hass generate`. */
static void vocab_case(const char *model, const char *tok, const char *want1, const char *want2,
                       const char *label) {
    hass_open_options o = hass_open_options_default();
    o.tokenizer = tok;
    hass_err err = {0};
    hass_session *s = hass_session_create(model, &o, &err);
    int rc =
        run("generate -m %s%s%s -p Once -n 2 --no-draft", model, tok ? " -z " : "", tok ? tok : "");
    if (!want1) {
        CHECK_MSG(s != NULL, "%s: the API refuses it: %s", label, err.msg);
        CHECK_MSG(rc == 0, "%s: the CLI refuses it (exit %d): %s", label, rc, errout);
    } else {
        CHECK_MSG(!s && err.code < 0 && strstr(err.msg, want1) && strstr(err.msg, want2),
                  "%s: the API %s (%s)", label, s ? "accepts it" : "says", err.msg);
        CHECK_MSG(rc == 1 && one_line() && strstr(errout, want1) && strstr(errout, want2),
                  "%s: the CLI exits %d: %s", label, rc, errout);
    }
    hass_close(s);
}

static void test_vocab_mismatch(void) {
    hass_err err = {0};
    const char *tmp = check_tmp();
    hass_tokenizer *t512 = hass_tokenizer_load_bin(T, 0, &err);
    HASS_ASSERT(t512 && hass_tokenizer_vocab_size(t512) == 512);
    hass_gguf_kvs kvs = {0};
    CHECK(hass_tokenizer_gguf_kvs(t512, 512, &kvs, &err) == HASS_OK);
    char p[8][700];
    for (int i = 0; i < 8; i++)
        snprintf(p[i], sizeof p[i], "%s/v%d%s", tmp, i, i >= 2 ? ".gguf" : "");
    /* Hugging Face directories with the trained tokenizer.json of 320 tokens */
    write_model(p[0], 300, 256, NULL, 1);
    write_model(p[1], 400, 256, NULL, 1);
    for (int i = 0; i < 2; i++) {
        char dst[800];
        snprintf(dst, sizeof dst, "%.700s/tokenizer.json", p[i]);
        CHECK(check_copy(fx[TOKJ], dst) == 0);
    }
    vocab_case(p[0], NULL, "320 tokens", "300", "HF directory, tokenizer larger");
    vocab_case(p[1], NULL, NULL, NULL, "HF directory, model vocabulary padded");
    /* GGUF with its tokenizer inside, and GGUF with an explicit tokenizer */
    write_model(p[2], 300, 256, &kvs, 0);
    write_model(p[3], 300, 256, NULL, 0);
    write_model(p[4], 600, 256, NULL, 0);
    vocab_case(p[2], NULL, "512 tokens", "300", "GGUF, tokenizer larger");
    vocab_case(p[3], T, "512 tokens", "300", "GGUF + tokenizer.bin larger");
    vocab_case(p[3], fx[TOKJ], "320 tokens", "300", "GGUF + tokenizer.json larger");
    vocab_case(p[4], T, NULL, NULL, "GGUF + tokenizer.bin, model vocabulary padded");
    /* llama2.c + a tokenizer.bin with 88 tokens more than the checkpoint has */
    snprintf(p[5], sizeof p[5], "%s/tok600.bin", tmp);
    CHECK(check_copy(T, p[5]) == 0);
    for (int i = 0; i < 88; i++) {
        unsigned char rec[12] = {0,
                                 0,
                                 0,
                                 0,
                                 4,
                                 0,
                                 0,
                                 0,
                                 'x',
                                 'y',
                                 (unsigned char)('a' + i % 26),
                                 (unsigned char)('a' + i / 26)};
        CHECK(check_write(p[5], "ab", rec, sizeof rec) == 0);
    }
    vocab_case(S, p[5], "600 tokens", "512", "llama2.c + tokenizer.bin larger");
    vocab_case(S, fx[TOKJ], NULL, NULL, "llama2.c + a smaller tokenizer.json");
    /* a special id outside the tokenizer's (and the model's) vocabulary */
    hass_gguf_kvs bad = {0};
    for (int64_t i = 0; i < kvs.n; i++)
        if (strcmp(kvs.kv[i].key, "tokenizer.ggml.bos_token_id"))
            CHECK(hass_gguf_kvs_add(&bad, &kvs.kv[i], &err) == HASS_OK);
    CHECK(hass_gguf_kvs_u32(&bad, "tokenizer.ggml.bos_token_id", 700, &err) == HASS_OK);
    write_model(p[6], 512, 256, &bad, 0);
    vocab_case(p[6], NULL, "bos_token_id 700", "512", "GGUF, BOS id outside");
    hass_gguf_kvs_free(&bad);
    hass_gguf_kvs_free(&kvs);
    hass_tokenizer_free(t512);
}

/* ---- memory for the run, not the context ---- */

static void test_run_memory(void) {
    hass_err err = {0};
    hass_tokenizer *t512 = hass_tokenizer_load_bin(T, 0, &err);
    hass_gguf_kvs kvs = {0};
    CHECK(t512 && hass_tokenizer_gguf_kvs(t512, 512, &kvs, &err) == HASS_OK);
    char big[700];
    snprintf(big, sizeof big, "%s/ctx4m.gguf", check_tmp());
    /* 2 layers of 2 KV heads of 16: 512 bytes a position, 2 GiB of KV cache and 1 GiB of
     * features for the whole context */
    write_model(big, 512, 1 << 22, &kvs, 0);
    hass_gguf_kvs_free(&kvs);
    hass_tokenizer_free(t512);
    long rss[3];
    CHECK(run("generate -m %s -p Once -n 16 --ctx 256 --no-draft", big) == 0);
    rss[0] = last_rss_kb;
    CHECK_MSG(run("generate -m %s -p Once -n 16 --no-draft", big) == 0, "%s", errout);
    rss[1] = last_rss_kb;
    char out[800];
    snprintf(out, sizeof out, "%s/fs4m", check_tmp());
    CHECK_MSG(run("datagen -m %s --data %s -o %s --max-len 4000000", big, fx[J], out) == 0, "%s",
              errout);
    rss[2] = last_rss_kb;
    fprintf(stderr,
            "  peak RSS on a 4M-token context: generate %ld KiB (%ld KiB with --ctx 256), "
            "datagen %ld KiB\n",
            rss[1], rss[0], rss[2]);
#ifndef HASS_SANITIZE
    CHECK_MSG(rss[1] < rss[0] + 16 * 1024 && rss[1] < 128 * 1024,
              "generate holds %ld KiB on a 4M-token context, %ld KiB with --ctx 256", rss[1],
              rss[0]);
    CHECK_MSG(rss[2] < 128 * 1024, "datagen holds %ld KiB", rss[2]);
#endif
    /* a prompt longer than the context is still an error that names it */
    CHECK(run("generate -m %s -p Once_upon_a_time_there_was -n 4 --ctx 4 --no-draft", big) == 1);
    CHECK_MSG(one_line() && strstr(errout, "does not fit the context of 4"), "%s", errout);
}

int main(int argc, char **argv) {
    (void)argc;
    check_init("test_exit");
    signal(SIGPIPE, SIG_IGN);
    char self[PATH_MAX];
    if (!check_hass_binary(argv[0], hass, sizeof hass))
        return check_exit();
    if (realpath(hass, self))
        snprintf(hass, sizeof hass, "%.1000s", self);
    setenv("HASS_GEMM", "f32", 1);
    if (!make_fixtures()) {
        CHECK_SKIP("stories260K / tok512.bin not found");
        return check_exit();
    }
    test_exit_codes();
    test_vocab_mismatch();
    test_run_memory();
    return check_exit();
}
