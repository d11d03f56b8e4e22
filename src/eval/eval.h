/*
 * eval — `hass eval`: plain decoding and speculative decoding with each of several drafts over
 * prompt suites (MT-bench as two-turn chats, HumanEval, GSM8K, or any prompt file), at one or
 * more temperatures, in one process, with the paper's figures per task family and method:
 * speedup over plain decoding and acceptance length tau, acceptance rate by depth, the
 * draft/verify time split, nodes per cycle; at T = 0 the lossless check on every prompt, at
 * T > 0 the same seed for every method and a distribution check (the empirical frequencies of
 * the first generated tokens over repeated seeds, speculative vs plain).
 *
 * Methods run interleaved per prompt (the order rotates from prompt to prompt) so that machine
 * noise hits all of them alike. Every finished (suite, prompt, turn, temperature) item is
 * appended to OUT/runs.jsonl; a run that finds the file resumes after the items it holds.
 *
 * Outputs in OUT: runs.jsonl (one line per item and method), results.json (summary per method,
 * family and temperature, the distribution check, the run's machine/model description),
 * results.md (the paper-style table: rows = methods, columns = families x T, cells =
 * speedup / tau), speedup.svg, tau.svg, accept.svg and report.html (self-contained: the tables
 * and the three plots inline, no scripts).
 */
#ifndef HASS_EVAL_H
#define HASS_EVAL_H

#include "core/core.h"
#include "decode/decode.h"

#define HASS_EVAL_MAX_DRAFTS 16
#define HASS_EVAL_MAX_SUITES 16
#define HASS_EVAL_MAX_TEMPS 4

/* One question: its user turns (MT-bench has two; the others one). */
typedef struct {
    char **turns;
    int n_turns;
} hass_eval_question;

typedef struct {
    char name[64]; /* family name: "mt_bench", "humaneval", "gsm8k" or the file's stem */
    hass_eval_question *q;
    int n;
} hass_eval_suite;

/* Reads a prompt file: JSONL whose lines carry "turns" (all kept), "prompt" or "question".
 * limit > 0 keeps the first `limit` questions. Errors: unreadable file, a line that is not such
 * an object (HASS_STATUS_FORMAT, with the line number), no questions. */
hass_status hass_eval_suite_load(hass_eval_suite *s, const char *name, const char *path,
                                 int limit, hass_err *err);
void hass_eval_suite_free(hass_eval_suite *s);

typedef struct {
    const hass_model *m;
    const hass_tokenizer *tok;
    hass_pool *pool;
    const hass_draft *drafts[HASS_EVAL_MAX_DRAFTS];
    const char *draft_names[HASS_EVAL_MAX_DRAFTS];
    int n_drafts;
    const hass_eval_suite *suites;
    int n_suites;
    float temps[HASS_EVAL_MAX_TEMPS];
    int n_temps;
    int64_t max_new;      /* generated tokens per turn (256) */
    int64_t ctx;          /* KV capacity (0 = the model's) */
    int chat;             /* apply the chat template (1) */
    hass_tree_params tree;
    float top_p;          /* for T > 0 (1) */
    int top_k;            /* for T > 0 (0) */
    uint64_t seed;        /* base of the per-item seeds (0) */
    int dist_prompts;     /* distribution check: prompts (of the first suite) (4; 0 = off) */
    int dist_reps;        /* seeds per prompt and method (64) */
    const char *out_dir;  /* created if needed */
    const char *info_json; /* a JSON object describing the run (machine, ISA, threads, commit,
                              model files), copied into results.json and report.html; may be
                              NULL */
} hass_eval_opts;

/* Defaults above; the caller sets m, tok, pool, drafts, suites, temps and out_dir. */
hass_eval_opts hass_eval_opts_default(void);

typedef struct {
    int64_t items_done;  /* this run */
    int64_t items_total; /* in the whole evaluation */
    int identical;       /* every T = 0 speculative output equals plain decoding's */
    double seconds;
} hass_eval_report;

/* Runs (or resumes) the evaluation and writes every output. */
hass_status hass_eval_run(const hass_eval_opts *o, hass_eval_report *rep, hass_err *err);

/* P(X >= x) for X chi-square distributed with df degrees of freedom (the p-value of the
 * distribution check's homogeneity test). */
double hass_eval_chi2_sf(double x, int df);

/* Writes results.md, the SVG plots and report.html from OUT/results.json (eval.c calls it;
 * report.c). */
hass_status hass_eval_write_report(const char *out_dir, hass_err *err);

#endif
