/*
 * cmd_serve.c — `hass serve`: the OpenAI-compatible HTTP server (src/serve, docs/serving.md)
 * until SIGINT or SIGTERM.
 */
#include "cli/cli.h"
#include "serve/serve.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *usage =
    "usage: hass serve [-m MODEL] [-z TOK.bin] [-d DRAFT] [flags]\n"
    "  -m PATH              model: HF directory, .gguf, or llama2.c .bin (default "
    "models/default/target)\n"
    "  -z PATH              tokenizer.bin for a llama2.c checkpoint\n"
    "  -d PATH              draft head directory: speculative decoding (default with no -m:\n"
    "                       models/default/draft-hass; --no-draft: plain)\n"
    "  --host ADDR          address to listen on (127.0.0.1)\n"
    "  --port N             port (8080; 0: any free port, printed at start)\n"
    "  --api-key KEY        require \"Authorization: Bearer KEY\" (or the HASS_API_KEY variable)\n"
    "  --model-name NAME    the model's id in the API (the model file's name)\n"
    "  --max-queue N        requests waiting besides the running one; more get 503 (16)\n"
    "  --max-connections N  open connections (64)\n"
    "  --max-body BYTES     request body size; larger get 413 (1048576)\n"
    "  --max-prompt N       prompt tokens (the context less one)\n"
    "  --max-tokens N       largest max_tokens a request may ask (4096)\n"
    "  -n N                 max_tokens when a request gives none (256)\n"
    "  --timeout S          seconds a request may take, queue included (300)\n"
    "  -t, --top-p, --top-k, --seed   sampling defaults for requests that give none (greedy)\n"
    "  --tree-depth, --tree-topk, --tree-tokens   the draft tree (as hass generate)\n"
    "  --threads N          threads (number of CPUs)\n"
    "  --ctx N              context length in positions (the model's)\n"
    "  -q, --quiet          no request log on stderr\n"
    "  -h, --help           this help\n";

int cmd_serve(int argc, char **argv) {
    cli_gen_opts g;
    cli_gen_opts_init(&g, 256);
    hass_serve_opts so;
    hass_serve_opts_init(&so);
    so.api_key = getenv("HASS_API_KEY");
    if (so.api_key && !*so.api_key)
        so.api_key = NULL;
    int no_draft = 0, quiet = 0;
    const char *name = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--chat") && strcmp(a, "--json")) {
            int r = cli_gen_flag(argc, argv, &i, &g);
            if (r < 0)
                return 2;
            if (r > 0)
                continue;
        }
        long long x = 0;
        double f = 0;
        const char *v = NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(a, "--no-draft")) {
            no_draft = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (!strcmp(a, "--host") || !strcmp(a, "--api-key") || !strcmp(a, "--model-name")) {
            if (!(v = cli_need_value(argc, argv, &i)))
                return 2;
            if (!*v)
                return cli_fail(2, "serve: %s needs a non-empty value", a);
            if (!strcmp(a, "--host"))
                so.host = v;
            else if (!strcmp(a, "--api-key"))
                so.api_key = v;
            else
                name = v;
        } else if (!strcmp(a, "--port") || !strcmp(a, "--max-queue") ||
                   !strcmp(a, "--max-connections") || !strcmp(a, "--max-body") ||
                   !strcmp(a, "--max-prompt") || !strcmp(a, "--max-tokens")) {
            if (!(v = cli_need_value(argc, argv, &i)))
                return 2;
            int port = !strcmp(a, "--port"), q = !strcmp(a, "--max-queue");
            if (cli_parse_int(a, v, port || q ? 0 : 1, port ? 65535 : 1LL << 40, &x))
                return 2;
            if (port)
                so.port = (int)x;
            else if (q)
                so.max_queue = (int)(x > 100000 ? 100000 : x);
            else if (!strcmp(a, "--max-connections"))
                so.max_connections = (int)(x > 100000 ? 100000 : x);
            else if (!strcmp(a, "--max-body"))
                so.max_body = x;
            else if (!strcmp(a, "--max-prompt"))
                so.max_prompt = x;
            else
                so.max_tokens = x;
        } else if (!strcmp(a, "--timeout")) {
            if (!(v = cli_need_value(argc, argv, &i)) || cli_parse_float(a, v, 0.001, 1e7, &f))
                return 2;
            so.timeout = f;
        } else {
            return cli_unknown_flag("serve", a);
        }
    }
    char defm[1024], defd[1024];
    if (cli_default_model(&g.model, &g.open.draft, !no_draft, defm, defd, sizeof defm, "serve"))
        return 2;
    if (no_draft)
        g.open.draft = NULL;
    if (!name) {
        const char *slash = strrchr(g.model, '/');
        name = slash && slash[1] ? slash + 1 : g.model;
    }
    so.model_id = name;
    so.default_max_tokens = g.gen.max_new_tokens;
    so.gen = g.gen;
    so.log = quiet ? NULL : stderr;

    /* the signals are taken by sigwait below: blocked before any thread starts */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    hass_session *ses = cli_session_open(&g, &rc);
    if (!ses)
        return rc;
    hass_err err = {0};
    hass_server *sv = hass_server_start(ses, &so, &err);
    if (!sv) {
        hass_close(ses);
        return cli_fail(err.code == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    }
    fprintf(stderr, "hass serve: listening on http://%s:%d (model %s, %s)\n", so.host,
            hass_server_port(sv), so.model_id,
            ses->dr ? "speculative decoding with the draft" : "no draft: plain decoding");
    fflush(stderr);
    int sig = 0;
    sigwait(&sigs, &sig);
    fprintf(stderr, "hass serve: %s, stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    hass_server_counts c = hass_server_get_counts(sv);
    hass_server_stop(sv);
    hass_close(ses);
    fprintf(stderr,
            "hass serve: %lld requests, %lld completed, %lld cancelled, %lld refused (queue "
            "full), %lld errors\n",
            (long long)c.requests, (long long)c.completed, (long long)c.cancelled,
            (long long)c.rejected_full, (long long)c.errors);
    return 0;
}
