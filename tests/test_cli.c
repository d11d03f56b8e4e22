/*
 * test_cli.c — the command-line contract: exit codes (0 ok, 1 runtime error, 2 usage error),
 * one-line errors on stderr, stdout holding only the continuation, the --json fields, and
 * bad input of every class (missing/corrupt files, invalid flags and values, a prompt longer
 * than the context) handled without a crash.
 */
#include "check.h"

#include "core/core.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char hass[1024], tmp[256];
static char out[1 << 16], errout[1 << 14];

/* Runs `hass ARGS` with stdout and stderr captured; returns the exit status (-1 on signal). */
static int run(const char *args) {
    char cmd[4096], of[300], ef[300];
    snprintf(of, sizeof of, "%s/out", tmp);
    snprintf(ef, sizeof ef, "%s/err", tmp);
    /* a hang is a failure (exit 124), not a stuck suite */
    snprintf(cmd, sizeof cmd, "timeout -k 5 600 %s %s >%s 2>%s </dev/null", hass, args, of, ef);
    int st = system(cmd);
    out[0] = errout[0] = 0;
    FILE *f = fopen(of, "rb");
    if (f) {
        out[fread(out, 1, sizeof out - 1, f)] = 0;
        fclose(f);
    }
    f = fopen(ef, "rb");
    if (f) {
        errout[fread(errout, 1, sizeof errout - 1, f)] = 0;
        fclose(f);
    }
    if (!WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

/* The last line of stderr is the error (progress lines may come before it). */
static int last_line_error(const char *what) {
    const char *p = check_last_line(errout);
    return p && !strncmp(p, "hass: ", 6) && strstr(p, what) != NULL;
}

static int one_line_error(void) {
    char *nl = strchr(errout, '\n');
    return errout[0] && nl && nl[1] == 0 && !strncmp(errout, "hass", 4);
}

/* Every error path the suite walks: exit 1 (runtime or data) or 2 (usage), never a signal, an
 * abort or a silent exit, and a line of stderr that says "hass..." what went wrong (or the
 * usage, for a command line without a command). */
static int error_class_ok(int rc) {
    if (rc == 0)
        return 1;
    int line = !strncmp(errout, "hass", 4) || strstr(errout, "\nhass") != NULL ||
               !strncmp(errout, "usage: hass", 11);
    return (rc == 1 || rc == 2) && line;
}
static int n_error_paths;

#define EXPECT(code, args)                                                                         \
    do {                                                                                           \
        int rc_ = run(args);                                                                       \
        CHECK_MSG(rc_ == (code), "hass %s: exit %d, want %d (stderr: %.200s)", (args), rc_,        \
                  (code), errout);                                                                 \
        CHECK_MSG(error_class_ok(rc_), "hass %s: exit %d with stderr '%.200s'", (args), rc_,       \
                  errout);                                                                         \
        n_error_paths += rc_ != 0;                                                                 \
    } while (0)

int main(int argc, char **argv) {
    (void)argc;
    check_init("test_cli");
    /* one product kind for every run: a resumed run keeps its state's kind, but the straight
     * run it is compared with would otherwise pick its own by a measurement a busy machine can
     * tip the other way */
    setenv("HASS_GEMM", "f32", 1);
    if (!check_hass_binary(argv[0], hass, sizeof hass))
        return check_exit();
    snprintf(tmp, sizeof tmp, "%s", check_tmp());

    EXPECT(2, "");
    EXPECT(2, "frobnicate");
    EXPECT(0, "--help");

    /* the shipped default model (the README's first command, shortened): no -m, no -d */
    if (access("models/default/target/model.safetensors", R_OK) == 0 &&
        access("bench/prompts/demo.jsonl", R_OK) == 0) {
        EXPECT(0, "bench --chat --prompts bench/prompts/demo.jsonl --limit 2 -n 12 --json");
        CHECK(strstr(out, "\"identical\":true") != NULL);
        /* with a fixed tree the shipped draft is used (greedy: deterministic) and accepts */
        EXPECT(0, "bench --chat --prompts bench/prompts/demo.jsonl --limit 2 -n 12 --json "
                  "--tree-tokens 4");
        const char *tau = strstr(out, "\"tau\":");
        CHECK(tau && atof(tau + 6) > 1.2 && strstr(out, "\"identical\":true"));
        EXPECT(0, "generate --chat -p \"What is 2 + 3?\" -n 8");
        CHECK(out[0] != 0);
    } else {
        CHECK_SKIP("models/default not found (run from the repository's root)");
    }
    EXPECT(0, "generate --help");
    CHECK(strstr(out, "--tree-tokens") != NULL);
    EXPECT(2, "generate -m x");
    CHECK(one_line_error());
    EXPECT(2, "generate -p hi --bogus");
    EXPECT(2, "generate -p hi -n abc");
    EXPECT(2, "generate -p hi -t -1");
    EXPECT(2, "generate -p hi --top-p 0");
    EXPECT(2, "generate -p hi --threads 0");
    EXPECT(2, "generate -p hi --tree-tokens 0");
    EXPECT(2, "generate -p hi -n");
    EXPECT(1, "generate -m /nonexistent/model -p hi");
    CHECK(one_line_error());
    EXPECT(2, "bench -m x");
    EXPECT(2, "draft-init -m x");
    EXPECT(1, "inspect /nonexistent");
    EXPECT(2, "inspect");
    EXPECT(2, "convert -m x");
    EXPECT(2, "export -m x");
    EXPECT(2, "export --gguf x.gguf");
    EXPECT(2, "export -m x --gguf a.gguf --hf b");
    EXPECT(2, "export -m x -o b");
    EXPECT(0, "export --help");
    CHECK(strstr(out, "--gguf") != NULL);
    EXPECT(2, "quantize -m x -o y.gguf");
    CHECK(one_line_error());
    EXPECT(2, "quantize -m x --type q4_k");
    EXPECT(2, "quantize -m x -o y.gguf --type q4_k --frob");
    EXPECT(1, "quantize -m /nonexistent.gguf -o y.gguf --type q4_k");
    CHECK(one_line_error());
    EXPECT(0, "quantize --help");
    CHECK(strstr(out, "--allow-requantize") != NULL);

    /* garbage and truncated model files */
    char path[600], args[3000];
    unsigned char junk[5000];
    hass_rng rng;
    hass_rng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (unsigned char)hass_rng_u64(&rng);
    snprintf(path, sizeof path, "%s/garbage.bin", tmp);
    HASS_ASSERT(check_write(path, "wb", junk, sizeof junk) == 0);
    snprintf(args, sizeof args, "generate -m %s -z %s -p hi", path, path);
    EXPECT(1, args);
    CHECK(one_line_error());
    snprintf(args, sizeof args, "inspect %s", path);
    EXPECT(1, args);
    snprintf(path, sizeof path, "%s/garbage.gguf", tmp);
    HASS_ASSERT(check_write(path, "wb", "GGUF\003\000\000\000", 8) == 0 &&
                check_write(path, "ab", junk, 64) == 0);
    snprintf(args, sizeof args, "generate -m %s -p hi", path);
    EXPECT(1, args);

    /* train-tokenizer: flags, bad data, then a small run whose files the other commands read */
    EXPECT(0, "train-tokenizer --help");
    CHECK(strstr(out, "--vocab") != NULL);
    EXPECT(2, "train-tokenizer -o x");
    CHECK(one_line_error());
    EXPECT(2, "train-tokenizer --data x.jsonl -o x --vocab 200");
    CHECK(one_line_error());
    EXPECT(2, "train-tokenizer --data x.jsonl -o x --threads 0");
    EXPECT(2, "train-tokenizer --data x.jsonl -o x --frobnicate 1");
    snprintf(args, sizeof args, "train-tokenizer --data /nonexistent.jsonl -o %s/tk", tmp);
    EXPECT(1, args);
    CHECK(one_line_error());
    snprintf(path, sizeof path, "%s/corpus.jsonl", tmp);
    HASS_ASSERT(check_write(path, "wb", "{\"text\": \"one\"}\n{\"text\": [1]}\n", -1) == 0);
    snprintf(args, sizeof args, "train-tokenizer --data %s -o %s/tk", path, tmp);
    EXPECT(1, args);
    CHECK_MSG(one_line_error() && strstr(errout, "corpus.jsonl:2:"), "stderr: %s", errout);
    HASS_ASSERT(
        check_write(path, "wb",
                    "{\"text\": \"the cat sat on the mat, the cat sat.\", \"source\": \"a\"}\n"
                    "{\"messages\": [{\"role\": \"user\", \"content\": \"Where is the cat?\"}, "
                    "{\"role\": \"assistant\", \"content\": \"On the mat.\"}]}\n",
                    -1) == 0);
    snprintf(args, sizeof args,
             "train-tokenizer --data %s,%s -o %s/tk --vocab 320 --threads 2 --valid %s", path, path,
             tmp, path);
    EXPECT(0, args);
    char tkpath[700];
    snprintf(tkpath, sizeof tkpath, "%s/tk/tokenizer_stats.json", tmp);
    CHECK(access(tkpath, R_OK) == 0);
    snprintf(args, sizeof args, "tokenize --tokenizer %s/tk/tokenizer.json -p 'the cat<|eot_id|>'",
             tmp);
    EXPECT(0, args); /* BOS (256 + merges), "the cat", <|eot_id|> (BOS + 4) */
    FILE *sf = fopen(tkpath, "rb");
    char stats[4096] = "";
    if (sf) {
        stats[fread(stats, 1, sizeof stats - 1, sf)] = 0;
        fclose(sf);
    }
    cJSON *sj = cJSON_Parse(stats);
    int bos = 256 + (sj ? cJSON_GetObjectItem(sj, "merges")->valueint : -1000);
    cJSON_Delete(sj);
    char want[64];
    snprintf(want, sizeof want, " %d\n", bos + 4);
    CHECK_MSG(atoi(out) == bos && strlen(out) > strlen(want) &&
                  !strcmp(out + strlen(out) - strlen(want), want),
              "tokenize with the trained tokenizer: '%s' (BOS %d)", out, bos);
    snprintf(args, sizeof args, "tokenize --tokenizer %s/tk/tokenizer.json -p 'the cat' --no-bos",
             tmp);
    EXPECT(0, args);

    /* pretrain: flags, bad data, a tiny run, bit-exact resume, schedule changes, the model it
     * writes loads and generates */
    EXPECT(0, "pretrain --help");
    CHECK(strstr(out, "--steps") != NULL);
    EXPECT(2, "pretrain --data x.jsonl -o x");
    CHECK(one_line_error());
    EXPECT(2, "pretrain --data x.jsonl --tokenizer t.json -o x --steps 0");
    EXPECT(2, "pretrain --data x.jsonl --tokenizer t.json -o x --steps 5 --warmup 5");
    CHECK(one_line_error());
    EXPECT(2, "pretrain --data x.jsonl --tokenizer t.json -o x --steps 5 --lr abc");
    EXPECT(2, "pretrain --data x.jsonl --tokenizer t.json -o x --steps 5 --gemm fast");
    EXPECT(2, "pretrain --data x.jsonl --tokenizer t.json -o x --steps 5 --bogus 1");
    char pt[1200];
    snprintf(pt, sizeof pt,
             "pretrain --tokenizer %s/tk/tokenizer.json --dim 16 --layers 2 --heads 2 --kv-heads 1 "
             "--ffn 24 --ctx 8 --batch 2 --accum 2 --warmup 1 --eval-every 2 --eval-windows 2 "
             "--ckpt-every 3 --threads 2 --gemm f32",
             tmp);
    snprintf(args, sizeof args, "%s --data /nonexistent.jsonl -o %s/pt0 --steps 4", pt, tmp);
    EXPECT(1, args);
    CHECK(one_line_error());
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad.jsonl", tmp);
    HASS_ASSERT(check_write(bad, "wb", "{\"text\": \"ok\"}\n{\"messages\": 3}\n", -1) == 0);
    snprintf(args, sizeof args, "%s --data %s -o %s/pt0 --steps 4", pt, bad, tmp);
    EXPECT(1, args);
    CHECK_MSG(last_line_error("bad.jsonl: line 2:"), "%s", errout);
    long clen = 0;
    char *corpus = check_read(path, &clen), big[700];
    snprintf(big, sizeof big, "%s/big.jsonl", tmp);
    for (int i = 0; i < 6; i++) /* six copies of the corpus */
        HASS_ASSERT(corpus && check_write(big, i ? "ab" : "wb", corpus, clen) == 0);
    free(corpus);
    snprintf(args, sizeof args, "%s --data %s/big.jsonl --valid %s -o %s/ptA --steps 5", pt, tmp,
             path, tmp);
    EXPECT(0, args);
    snprintf(args, sizeof args, "%s --data %s/big.jsonl --valid %s -o %s/ptB --steps 5 --stop-at 2",
             pt, tmp, path, tmp);
    EXPECT(0, args);
    CHECK(strstr(errout, "stopped") != NULL);
    snprintf(args, sizeof args, "%s --data %s/big.jsonl --valid %s -o %s/ptB --steps 6", pt, tmp,
             path, tmp);
    EXPECT(2, args); /* another schedule: refused, with the way out named */
    CHECK_MSG(last_line_error("--reschedule"), "%s", errout);
    snprintf(args, sizeof args, "%s --data %s/big.jsonl --valid %s -o %s/ptB --steps 5", pt, tmp,
             path, tmp);
    EXPECT(0, args);
    CHECK_MSG(check_same_file(check_path("ptA/trainer_state.safetensors"),
                              check_path("ptB/trainer_state.safetensors")),
              "a resumed pretraining run equals an uninterrupted one");
    CHECK(check_same_file(check_path("ptA/model/model.safetensors"),
                          check_path("ptB/model/model.safetensors")));
    snprintf(args, sizeof args, "%s --data %s/big.jsonl -o %s/ptB --steps 7 --reschedule", pt, tmp,
             tmp);
    EXPECT(0, args);
    snprintf(args, sizeof args, "%s --data %s/big.jsonl -o %s/ptB --steps 7 --dim 32 --reschedule",
             pt, tmp, tmp);
    EXPECT(2, args); /* the model itself cannot change */
    snprintf(args, sizeof args, "generate -m %s/ptA/model -p 'the cat' -n 3", tmp);
    EXPECT(0, args);
    snprintf(args, sizeof args, "inspect %s/ptA/model", tmp);
    EXPECT(0, args);

    const char *mp = check_shared("models/stories260K.bin"),
               *tp = check_shared("models/tok512.bin");
    if (mp && tp) {
        char mt[1200];
        snprintf(mt, sizeof mt, "-m %s -z %s", mp, tp);
        /* eval: the smoke run (two questions of a suite, both drafts in models/) and bad flags */
        EXPECT(0, "eval --help");
        EXPECT(2, "eval -m x --drafts a,b --names a");
        CHECK(one_line_error());
        EXPECT(2, "eval -m x --drafts a -t hot");
        snprintf(args, sizeof args,
                 "eval %s --drafts models/stories260K-eagle,models/stories260K-hass --suite "
                 "bench/prompts/demo.jsonl --limit 2 -n 16 --no-chat --out %s/ev",
                 mt, tmp);
        EXPECT(0, args);
        CHECK(strstr(out, "| stories260K-eagle |") && strstr(out, "| stories260K-hass |"));
        snprintf(args, sizeof args, "eval %s --drafts models/nonexistent --out %s/ev2", mt, tmp);
        EXPECT(1, args);
        snprintf(args, sizeof args, "generate %s -p 'Once upon a time' -n 20", mt);
        EXPECT(0, args);
        CHECK_MSG(!strncmp(out, ", there was a little girl named Lily", 36),
                  "stdout holds the continuation only: '%.60s'", out);
        snprintf(args, sizeof args, "generate %s -p 'Once upon a time' -n 20 --json", mt);
        EXPECT(0, args);
        cJSON *j = cJSON_Parse(out);
        CHECK(j != NULL);
        const char *fields[] = {"text",     "tokens",      "stop",
                                "n_prompt", "n_generated", "target_forwards",
                                "tau",      "seconds",     "tokens_per_s"};
        for (size_t i = 0; j && i < sizeof fields / sizeof fields[0]; i++)
            CHECK_MSG(cJSON_GetObjectItemCaseSensitive(j, fields[i]) != NULL, "--json field %s",
                      fields[i]);
        if (j) {
            CHECK_EQ_INT(cJSON_GetObjectItem(j, "n_generated")->valueint, 20);
            CHECK_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "tokens")), 20);
            CHECK(!strcmp(cJSON_GetObjectItem(j, "stop")->valuestring, "length"));
        }
        cJSON_Delete(j);
        /* a prompt longer than the context */
        snprintf(args, sizeof args, "generate %s -p 'Once upon a time there was a dog' --ctx 6",
                 mt);
        EXPECT(1, args);
        CHECK(one_line_error() && strstr(errout, "context"));
        /* llama2.c checkpoint without its tokenizer */
        snprintf(args, sizeof args, "generate -m %s -p hi", mp);
        EXPECT(2, args);
        /* a draft that does not exist / does not fit */
        snprintf(args, sizeof args, "generate %s -p hi -d %s/nodraft", mt, tmp);
        EXPECT(1, args);
        snprintf(args, sizeof args, "draft-init %s -o %s/d", mt, tmp);
        EXPECT(0, args);
        /* fc bias by default; --no-bias drops it */
        snprintf(args, sizeof args, "inspect %s/d/model.safetensors", tmp);
        EXPECT(0, args);
        CHECK(strstr(out, "fc.bias") != NULL);
        snprintf(args, sizeof args, "draft-init %s -o %s/nb --no-bias", mt, tmp);
        EXPECT(0, args);
        snprintf(args, sizeof args, "inspect %s/nb/model.safetensors", tmp);
        EXPECT(0, args);
        CHECK(strstr(out, "fc.weight") && !strstr(out, "fc.bias"));
        snprintf(args, sizeof args, "generate %s -d %s/nb -p 'Once upon a time' -n 8", mt, tmp);
        EXPECT(0, args);
        EXPECT(0, "train-draft --help");
        CHECK(strstr(out, "--no-bias") != NULL);
        EXPECT(2, "train-draft --method eagle --no-bias");
        CHECK(one_line_error() && !strstr(errout, "unknown flag"));
        snprintf(args, sizeof args, "generate %s -d %s/d -p 'Once upon a time' -n 30 --json", mt,
                 tmp);
        EXPECT(0, args);
        CHECK(strstr(out, "\"tau\"") != NULL);
        /* bench: a malformed prompt file, then a good one */
        snprintf(path, sizeof path, "%s/p.jsonl", tmp);
        HASS_ASSERT(check_write(path, "wb", "{\"x\":1}\n", -1) == 0);
        snprintf(args, sizeof args, "bench %s -d %s/d --prompts %s", mt, tmp, path);
        EXPECT(1, args);
        HASS_ASSERT(check_write(path, "wb", "{\"prompt\":\"The cat\"}\n{\"turns\":[\"A dog\"]}\n",
                                -1) == 0);
        snprintf(args, sizeof args, "bench %s -d %s/d --prompts %s -n 16 --json", mt, tmp, path);
        EXPECT(0, args);
        cJSON *b = cJSON_Parse(out);
        const cJSON *sum = b ? cJSON_GetObjectItem(b, "summary") : NULL;
        CHECK(sum && cJSON_IsTrue(cJSON_GetObjectItem(sum, "identical")));
        cJSON_Delete(b);
        /* multi-turn questions: one row per turn, the second after the first's answer */
        HASS_ASSERT(
            check_write(path, "wb", "{\"turns\":[\"Tell a story.\",\"Now shorter.\"]}\n", -1) == 0);
        snprintf(args, sizeof args, "bench %s -d %s/d --prompts %s -n 12 --chat --all-turns --json",
                 mt, tmp, path);
        EXPECT(0, args);
        b = cJSON_Parse(out);
        const cJSON *rows = b ? cJSON_GetObjectItem(b, "prompts") : NULL;
        CHECK(cJSON_GetArraySize(rows) == 2);
        if (cJSON_GetArraySize(rows) == 2)
            CHECK(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 1), "n_prompt")->valueint >
                  cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "n_prompt")->valueint + 12);
        cJSON_Delete(b);
        snprintf(args, sizeof args, "bench %s -d %s/d --prompts %s --all-turns", mt, tmp, path);
        EXPECT(2, args);
        snprintf(args, sizeof args, "tokenize --tokenizer %s -p 'Once upon a time'", tp);
        EXPECT(0, args);
        CHECK(!strncmp(out, "1 403 407 261 378", 17));
        snprintf(args, sizeof args, "inspect %s", mp);
        EXPECT(0, args);
        /* export: GGUF (tokenizer included) that generates what the checkpoint does */
        snprintf(args, sizeof args, "export %s --gguf %s/s.gguf", mt, tmp);
        EXPECT(0, args);
        snprintf(args, sizeof args, "generate -m %s/s.gguf -p 'Once upon a time' -n 20", tmp);
        EXPECT(0, args);
        CHECK(!strncmp(out, ", there was a little girl named Lily", 36));
        snprintf(args, sizeof args, "inspect %s/s.gguf", tmp);
        EXPECT(0, args);
        CHECK(strstr(out, "\"stories260K\"") && strstr(out, "tokenizer.ggml.scores"));
        snprintf(args, sizeof args, "export %s --gguf %s/s.gguf --dtype q4", mt, tmp);
        EXPECT(2, args);
        snprintf(args, sizeof args, "export -m %s --gguf %s/t.gguf", mp, tmp);
        EXPECT(2, args); /* a llama2.c checkpoint needs -z */
        snprintf(args, sizeof args, "export %s --gguf /nonexistent/dir/t.gguf", mt);
        EXPECT(1, args);
        CHECK(one_line_error());
        snprintf(args, sizeof args, "export %s --hf %s/hf --dtype f32", mt, tmp);
        EXPECT(0, args);
        /* quantize: llama2.c checkpoint to Q8_0 GGUF, then a generation from it; refusals */
        snprintf(args, sizeof args, "quantize %s -o %s/q.gguf --type q8_0", mt, tmp);
        EXPECT(0, args);
        CHECK(strstr(errout, "Q8_0 x") != NULL);
        snprintf(args, sizeof args, "generate -m %s/q.gguf -p 'Once upon a time' -n 8", tmp);
        EXPECT(0, args);
        CHECK(out[0] != 0);
        snprintf(args, sizeof args, "quantize %s -o %s/q2.gguf --type q3_k", mt, tmp);
        EXPECT(2, args);
        CHECK(one_line_error() && strstr(errout, "q4_k_m"));
        snprintf(args, sizeof args, "quantize -m %s/q.gguf -o %s/q2.gguf --type q4_0", tmp, tmp);
        EXPECT(1, args);
        CHECK(one_line_error() && strstr(errout, "already quantized"));
        snprintf(args, sizeof args,
                 "quantize -m %s/q.gguf -o %s/q2.gguf --type q4_0 --pure --allow-requantize", tmp,
                 tmp);
        EXPECT(0, args);
        CHECK(strstr(errout, "Q4_0 x") && !strstr(errout, "Q6_K"));
        /* stories260K's rows (64) are not whole super-blocks: K types fall back */
        snprintf(args, sizeof args, "quantize %s -o %s/q3.gguf --type q4_k_m", mt, tmp);
        EXPECT(0, args);
        CHECK(strstr(errout, "Q5_0 x") && !strstr(errout, "Q4_K"));
        snprintf(args, sizeof args, "convert -m %s -o %s/hf2", mp, tmp);
        EXPECT(0, args);
        /* inputs that are not regular files: refused at once, never read or waited on */
        char fifo[700], nul[700];
        snprintf(fifo, sizeof fifo, "%s/fifo", tmp);
        HASS_ASSERT(mkfifo(fifo, 0600) == 0);
        const char *const not_files[] = {fifo, "/dev/zero"};
        for (int i = 0; i < 2; i++) {
            const char *nf = not_files[i];
            snprintf(args, sizeof args, "generate -m %s -z %s -p hi", nf, tp);
            EXPECT(1, args);
            snprintf(args, sizeof args, "generate -m %s -z %s -p hi", mp, nf);
            EXPECT(1, args);
            snprintf(args, sizeof args, "generate %s -f %s", mt, nf);
            EXPECT(1, args);
            CHECK_MSG(one_line_error() && strstr(errout, "regular"), "%s", errout);
            snprintf(args, sizeof args, "bench %s -d %s/d --prompts %s", mt, tmp, nf);
            EXPECT(1, args);
            snprintf(args, sizeof args, "train-tokenizer --data %s -o %s/tkf", nf, tmp);
            EXPECT(1, args);
            snprintf(args, sizeof args, "tokenize --tokenizer %s -p hi", nf);
            EXPECT(1, args);
        }
        /* a prompt file with a NUL byte is refused, not cut there */
        snprintf(nul, sizeof nul, "%s/nul.txt", tmp);
        HASS_ASSERT(check_write(nul, "wb", "Once upon\0 a time", 18) == 0);
        snprintf(args, sizeof args, "generate %s -f %s -n 4", mt, nul);
        EXPECT(1, args);
        CHECK_MSG(one_line_error() && strstr(errout, "NUL"), "%s", errout);
        /* a context above the model's */
        snprintf(args, sizeof args, "generate %s -p hi --ctx 100000", mt);
        EXPECT(2, args);
        CHECK(one_line_error() && strstr(errout, "context"));
        snprintf(args, sizeof args, "generate %s -p hi --ctx 600 --ctx-beyond-model -n 2", mt);
        EXPECT(0, args);
        /* outputs are not overwritten without --force */
        snprintf(args, sizeof args, "draft-init %s -o %s/d", mt, tmp);
        EXPECT(1, args);
        CHECK(one_line_error() && strstr(errout, "--force"));
        snprintf(args, sizeof args, "draft-init %s -o %s/d --force", mt, tmp);
        EXPECT(0, args);
        snprintf(args, sizeof args, "export %s --gguf %s/s.gguf", mt, tmp);
        EXPECT(1, args);
        CHECK(one_line_error() && strstr(errout, "--force"));
        snprintf(args, sizeof args, "export %s --gguf %s/s.gguf --force", mt, tmp);
        EXPECT(0, args);
        snprintf(args, sizeof args, "convert -m %s -o %s/hf2", mp, tmp);
        EXPECT(1, args);
        snprintf(args, sizeof args, "export %s --hf %s/hf --dtype f32", mt, tmp);
        EXPECT(1, args);
        snprintf(args, sizeof args, "export %s --hf /proc/hass-not-writable", mt);
        EXPECT(1, args);
        CHECK(one_line_error());
    } else {
        CHECK_SKIP("stories260K not found");
    }
    /* perplexity of the tiny model and of its Q8_0 quantization on the same records */
    const char *tf = check_shared("models/quant/tiny-f32.gguf");
    const char *tq = check_shared("models/quant/tiny-q8_0.gguf");
    if (tf && tq) {
        snprintf(path, sizeof path, "%s/ppl.jsonl", tmp);
        for (int i = 0; i < 40; i++) {
            char rec[200];
            int len = snprintf(rec, sizeof rec,
                               "{\"text\": \"Once upon a time there was a little dog number %d. "
                               "It was happy and it played all day in the sun.\"}\n",
                               i);
            HASS_ASSERT(check_write(path, i ? "ab" : "wb", rec, len) == 0);
        }
        double loss[2] = {0, 0};
        for (int k = 0; k < 2; k++) {
            snprintf(args, sizeof args, "perplexity -m %s --data %s --ctx 64 --json --threads 2",
                     k ? tq : tf, path);
            EXPECT(0, args);
            cJSON *j = cJSON_Parse(out);
            const cJSON *l = cJSON_GetObjectItem(j, "loss");
            CHECK(cJSON_IsNumber(l) && cJSON_GetObjectItem(j, "windows")->valueint >= 10);
            loss[k] = cJSON_IsNumber(l) ? l->valuedouble : 0;
            cJSON_Delete(j);
        }
        CHECK_MSG(loss[0] > 5 && fabs(loss[1] - loss[0]) < 0.01 * loss[0],
                  "perplexity: f32 loss %.5f, q8_0 %.5f", loss[0], loss[1]);
        snprintf(args, sizeof args, "perplexity -m %s --data %s --ctx 0", tf, path);
        EXPECT(2, args);
        snprintf(args, sizeof args, "perplexity -m %s --data %s --ctx 100000", tf, path);
        EXPECT(2, args);
        CHECK(one_line_error());
        snprintf(args, sizeof args, "perplexity -m %s --data %s/none.jsonl", tf, tmp);
        EXPECT(1, args);
        CHECK(one_line_error());
        HASS_ASSERT(check_write(path, "ab", "{\"txt\": 3}\n", -1) == 0);
        snprintf(args, sizeof args, "perplexity -m %s --data %s", tf, path);
        EXPECT(1, args);
        CHECK(last_line_error("line 41"));
    } else {
        CHECK_SKIP("shared/models/quant not found");
    }
    EXPECT(2, "perplexity -m x");
    EXPECT(0, "perplexity --help");
    CHECK_MSG(n_error_paths >= 40, "%d error paths walked", n_error_paths);
    return check_exit();
}
