/*
 * hass.h — the public interface of libhass: load a LLaMA-family model (Hugging Face
 * directory, GGUF file, or llama2.c checkpoint + tokenizer.bin), optionally an EAGLE/HASS
 * draft head, and generate text — plainly, or speculatively with output identical to plain
 * greedy decoding (temperature 0) or identically distributed (temperature > 0).
 *
 *     char err[256];
 *     hass_session *s = hass_open("model_dir", NULL, "draft_dir", 0, err, sizeof err);
 *     hass_options o = hass_options_default();
 *     hass_result r;
 *     if (!s || hass_run(s, "Once upon a time", &o, print_cb, NULL, &r, err, sizeof err))
 *         fprintf(stderr, "%s\n", err);
 *     hass_close(s);
 *
 * Ownership: a session owns everything it loads; strings passed in are copied or used only
 * during the call. Thread-safety: one call at a time per session; sessions are independent.
 * Errors: functions return 0 on success, 1 on a runtime error and 2 on invalid arguments,
 * with a one-line message in err (when err is not NULL).
 */
#ifndef HASS_H
#define HASS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hass_session hass_session;

typedef struct {
    int64_t max_new_tokens; /* 256 */
    float temperature;      /* 0 = greedy */
    int top_k;              /* sampling: only the k most probable tokens, 0 = off */
    float top_p;            /* sampling: nucleus mass, 1 = off */
    uint64_t seed;          /* 0 */
    int chat;               /* apply the model's chat template to the prompt */
    const char *system;     /* with chat: a system turn before the prompt (NULL: none) */
    int speculative;        /* use the draft head if the session has one (1) */
    int tree_depth;         /* draft tree: its deepest node, the root's children being depth 1;
                               depth - 1 expansion levels (6) */
    int tree_topk;          /* draft tree: children per expanded node and nodes expanded per
                               level (4); not the sampling top_k */
    int tree_tokens;        /* draft nodes verified per cycle, 0 = auto (cost model) */
    int keep_prefix;        /* 1: the prompt's tokens shared (from its start) with the session's
                               last context stay in the KV cache instead of being run again (a
                               conversation's earlier turns); the output is the same (0) */
} hass_options;

typedef struct {
    int64_t n_prompt, n_generated, target_forwards;
    int stopped_at_eos; /* 1: end-of-sequence token; 0: max_new_tokens or context end */
    double tau;         /* generated tokens per target forward after prefill */
    double seconds, tokens_per_s;
} hass_result;

hass_options hass_options_default(void);

/* How to open a session (hass_open_options_default: all zero). */
typedef struct {
    const char *tokenizer; /* NULL for HF directories (tokenizer.json inside) and GGUF files;
                              the tokenizer.bin of a llama2.c checkpoint; or any tokenizer.json,
                              tokenizer.bin or GGUF file instead of the model's own */
    const char *draft;     /* NULL or a draft-head directory */
    int threads;           /* 0 = all CPUs */
    int64_t ctx;           /* context length in positions, 0 = the model's; more than the
                              model's is refused unless ctx_beyond_model */
    int ctx_beyond_model;  /* allow ctx above the model's context (a file that understates it) */
} hass_open_options;

hass_open_options hass_open_options_default(void);

/* Opens a model (a Hugging Face directory, a GGUF file or a llama2.c checkpoint) with its
 * tokenizer and, optionally, a draft head: the one way every hass command opens them too.
 * Returns 0, or 1 (runtime error) / 2 (invalid arguments, e.g. a llama2.c checkpoint without
 * its tokenizer) with *s = NULL and err written. */
int hass_session_open(const char *model, const hass_open_options *o, hass_session **s, char *err,
                      size_t err_len);
/* The same with ctx 0; returns NULL and writes err on failure. */
hass_session *hass_open(const char *model, const char *tokenizer, const char *draft, int threads,
                        char *err, size_t err_len);
void hass_close(hass_session *s); /* NULL-safe */

/* Called with each piece of generated text (valid UTF-8) as soon as it is final; return
 * non-zero to stop generation. */
typedef int (*hass_text_fn)(const char *text, size_t len, void *user);

/* Generates a continuation of prompt. on_text and result may be NULL. */
int hass_run(hass_session *s, const char *prompt, const hass_options *o, hass_text_fn on_text,
             void *user, hass_result *result, char *err, size_t err_len);

/* Token ids of text (with BOS if the model wants one); returns the count (may exceed cap:
 * call again with a larger buffer) or -1 with err set. */
int64_t hass_tokenize_text(hass_session *s, const char *text, int32_t *ids, int64_t cap, char *err,
                           size_t err_len);

#ifdef __cplusplus
}
#endif

#endif
