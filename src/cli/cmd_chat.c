/*
 * cmd_chat.c — `hass chat`: an interactive multi-turn conversation in the terminal, with the
 * model's chat template, the answer streamed as it is generated (speculatively with a draft).
 * The conversation stays in the KV cache between turns (keep_prefix: only the new turn is
 * prefilled). Commands: /reset, /stats, /quit; Ctrl-C stops the current answer. Without a
 * terminal on stdin the turns are read line by line (no prompt is shown).
 */
#include "cli/cli.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *usage =
    "usage: hass chat [-m MODEL] [-z TOK.bin] [-d DRAFT] [flags]\n"
    "  -m, -z, -d         model, tokenizer, draft head (as hass generate; --no-draft: plain)\n"
    "  --system TEXT      a system turn at the start of the conversation\n"
    "  -n N               max tokens per answer (512)\n"
    "  -t, --top-p, --top-k, --seed, --tree-*, --threads, --ctx   as hass generate\n"
    "  -h, --help         this help\n"
    "In the chat: /reset starts over, /stats shows the last answer's numbers, /quit (or Ctrl-D)\n"
    "leaves; Ctrl-C stops the answer being written.\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig) {
    (void)sig;
    interrupted = 1;
}

typedef struct {
    char *text;
    size_t len, cap;
} answer;

static int on_text(const char *b, size_t n, void *user) {
    answer *a = user;
    fwrite(b, 1, n, stdout);
    fflush(stdout);
    if (a->len + n + 1 > a->cap) {
        size_t nc = (a->cap + n + 1) * 2;
        char *t = realloc(a->text, nc);
        if (!t)
            return 1;
        a->text = t;
        a->cap = nc;
    }
    memcpy(a->text + a->len, b, n);
    a->len += n;
    a->text[a->len] = 0;
    return interrupted != 0;
}

/* The conversation: turns[i] with its own copy of the text. */
typedef struct {
    hass_chat_msg *m;
    int n, cap;
} convo;

static int convo_add(convo *c, const char *role, const char *text) {
    if (c->n == c->cap) {
        int nc = c->cap ? 2 * c->cap : 16;
        hass_chat_msg *t = realloc(c->m, (size_t)nc * sizeof *t);
        if (!t)
            return -1;
        c->m = t;
        c->cap = nc;
    }
    char *s = strdup(text);
    if (!s)
        return -1;
    c->m[c->n++] = (hass_chat_msg){role, s};
    return 0;
}

static void convo_clear(convo *c) {
    for (int i = 0; i < c->n; i++)
        free((char *)c->m[i].content);
    c->n = 0;
}

int cmd_chat(int argc, char **argv) {
    const char *system = NULL;
    int no_draft = 0;
    cli_gen_opts g;
    cli_gen_opts_init(&g, 512);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--chat") && strcmp(a, "--json")) {
            int r = cli_gen_flag(argc, argv, &i, &g);
            if (r < 0)
                return 2;
            if (r > 0)
                continue;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--no-draft")) {
            no_draft = 1;
        } else if (!strcmp(a, "--system")) {
            if (!(system = cli_need_value(argc, argv, &i)))
                return 2;
        } else {
            return cli_unknown_flag("chat", a);
        }
    }
    char defm[1024], defd[1024];
    if (cli_default_model(&g.model, &g.open.draft, !no_draft, defm, defd, sizeof defm, "chat"))
        return 2;
    if (no_draft)
        g.open.draft = NULL;
    g.gen.chat = 1;
    g.gen.system = system;
    g.gen.keep_prefix = 1;
    int rc = 1;
    hass_session *ses = cli_session_open(&g, &rc);
    if (!ses)
        return rc;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint; /* no SA_RESTART: a read at the prompt returns */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    int tty = isatty(STDIN_FILENO);
    if (tty)
        fprintf(stderr, "hass chat: %s%s. /reset, /stats, /quit; Ctrl-C stops an answer.\n",
                g.model, ses->dr ? " with its draft (speculative decoding)" : "");
    convo c = {0};
    answer a = {0};
    hass_gen_stats st, total;
    memset(&st, 0, sizeof st);
    memset(&total, 0, sizeof total);
    int turns = 0, stopped = 0;
    char *line = NULL;
    size_t lcap = 0;
    rc = 0;
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            fflush(stdout);
        }
        interrupted = 0;
        errno = 0;
        ssize_t n = getline(&line, &lcap, stdin);
        if (n < 0) {
            if (errno == EINTR) { /* Ctrl-C at the prompt: a fresh prompt */
                clearerr(stdin);
                fputc('\n', stdout);
                continue;
            }
            break; /* end of input */
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if (n == 0)
            continue;
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit"))
            break;
        if (!strcmp(line, "/reset")) {
            convo_clear(&c);
            printf("(the conversation starts over)\n");
            fflush(stdout);
            continue;
        }
        if (!strcmp(line, "/stats")) {
            printf("(last answer: %lld tokens in %.2f s, %.1f tokens/s, tau %.2f, prompt %lld "
                   "tokens of which %lld from the cache%s; %d answers, %lld tokens in all)\n",
                   (long long)st.n_generated, st.seconds, st.tokens_per_s, st.tau,
                   (long long)st.n_prompt, (long long)st.n_prompt_cached,
                   stopped ? ", stopped by Ctrl-C" : "", turns, (long long)total.n_generated);
            fflush(stdout);
            continue;
        }
        if (line[0] == '/' && line[1] >= 'a' && line[1] <= 'z') {
            printf("(unknown command %s: /reset, /stats, /quit)\n", line);
            fflush(stdout);
            continue;
        }
        if (convo_add(&c, "user", line)) {
            rc = cli_fail(1, "out of memory");
            break;
        }
        a.len = 0;
        if (a.text)
            a.text[0] = 0;
        hass_err err = {0};
        if (hass_session_generate(ses, c.m, c.n, &g.gen, on_text, &a, NULL, &st, &err)) {
            /* e.g. the conversation no longer fits the context: say so, forget the turn */
            fprintf(stderr, "\nhass: %s%s\n", err.msg,
                    err.code == HASS_STATUS_RANGE ? " (/reset starts over)" : "");
            free((char *)c.m[--c.n].content);
            continue;
        }
        stopped = interrupted != 0;
        fputc('\n', stdout);
        if (stopped)
            printf("(stopped)\n");
        fflush(stdout);
        turns++;
        total.n_generated += st.n_generated;
        if (convo_add(&c, "assistant", a.text ? a.text : "")) {
            rc = cli_fail(1, "out of memory");
            break;
        }
    }
    if (tty)
        fputc('\n', stdout);
    convo_clear(&c);
    free(c.m);
    free(a.text);
    free(line);
    hass_close(ses);
    return rc;
}
