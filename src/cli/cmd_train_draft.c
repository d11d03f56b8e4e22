/*
 * cmd_train_draft.c — `hass train-draft --method eagle|hass`: train a draft head on feature
 * shards (src/train/trainer_run.h); JSONL log per step, progress on stderr, resumable.
 */
#include "cli/cli.h"
#include "model/model.h"
#include "train/trainer_run.h"

#include <stdio.h>
#include <string.h>

static const char *usage =
    "usage: hass train-draft --method eagle|hass -m MODEL --data DIR -o OUTDIR [flags]\n"
    "  --method M         eagle (n = 1, w = 0) or hass (n = 3, w = 1); required\n"
    "  -m PATH            target model (HF directory, .gguf, llama2.c .bin)\n"
    "  -z PATH            tokenizer.bin (accepted for symmetry; not needed)\n"
    "  --data DIR         feature store written by `hass datagen`\n"
    "  -o OUTDIR          output: the draft (config.json + model.safetensors) and\n"
    "                     trainer_state.safetensors; re-running with the same flags resumes\n"
    "  --init-from DIR    start from an existing draft's tensors (two-stage recipe)\n"
    "  --steps N          optimizer steps (default: from --epochs)\n"
    "  --epochs E         passes over the data when --steps is not given (1)\n"
    "  --batch B          sequences per micro-batch (4)\n"
    "  --seq-len T        cut sequences to T tokens (2048)\n"
    "  --grad-accum G     micro-batches per optimizer step (1)\n"
    "  --lr X             peak learning rate (3e-5)\n"
    "  --warmup-frac F    linear warmup over this fraction of the steps (0.01)\n"
    "  --warmup N         warmup steps (overrides --warmup-frac)\n"
    "  --weight-decay X   AdamW weight decay (0.01)\n"
    "  --clip X           gradient value clipping, 0 = off (0.5)\n"
    "  --topk K           K of the Top-K distillation loss (10)\n"
    "  --topk-w W         weight of the Top-K loss (hass: 1, eagle: 0)\n"
    "  --align-steps n    context-alignment steps (hass: 3, eagle: 1)\n"
    "  --noise-std X      input-feature noise, uniform (U-0.5)*X*512/L (0.2)\n"
    "  --seed S           initialisation, data order and noise seed (0)\n"
    "  --ckpt-every N     checkpoint every N steps (0 = only at the end)\n"
    "  --stop-at N        stop after step N with a checkpoint (resume later; 0 = run all)\n"
    "  --log FILE         append one JSON line per step (step, lr, loss, per-step loss and\n"
    "                     top-1, tokens/s)\n"
    "  --log-every K      log every K steps (1)\n"
    "  --threads N        threads (number of CPUs)\n"
    "  --dtype f32|bf16   dtype of the draft's matrices in OUTDIR (f32; bf16 to ship)\n"
    "  --no-bias          no fc bias (EAGLE's LLaMA-3 drafts); default: a bias, as in\n"
    "                     EAGLE's training and its LLaMA-2 drafts (--bias says so explicitly)\n"
    "  --force            overwrite a trained draft in OUTDIR that has no trainer state to\n"
    "                     resume (a run with its state resumes without it)\n"
    "  --allow-incomplete train on a feature store datagen has not finished\n";

typedef struct {
    FILE *log;
    int64_t every;
} log_ctx;

static void on_step(void *user, const hass_train_log *l) {
    log_ctx *c = user;
    if (!c->log || (l->step % c->every && l->step != l->total))
        return;
    fprintf(c->log, "{\"step\":%lld,\"epoch\":%d,\"lr\":%.6g,\"loss\":%.6f,\"loss_j\":[",
            (long long)l->step, l->epoch, (double)l->lr, l->st.loss_mean);
    for (int j = 0; j < l->st.n_align; j++)
        fprintf(c->log, "%s%.6f", j ? "," : "", l->st.loss[j]);
    fprintf(c->log, "],\"fea_j\":[");
    for (int j = 0; j < l->st.n_align; j++)
        fprintf(c->log, "%s%.6f", j ? "," : "", l->st.loss_fea[j]);
    fprintf(c->log, "],\"top1_j\":[");
    for (int j = 0; j < l->st.n_align; j++)
        fprintf(c->log, "%s%.4f", j ? "," : "", l->st.top1[j]);
    fprintf(c->log, "],\"tokens\":%lld,\"tokens_per_s\":%.1f}\n", (long long)l->tokens,
            l->tokens_per_s);
    fflush(c->log);
}

int cmd_train_draft(int argc, char **argv) {
    hass_train_run_opts o = hass_train_run_opts_default();
    const char *model = NULL, *method = NULL, *logpath = NULL;
    long long threads = 0, v, every = 1, align = -1;
    int force = 0;
    double fv, topk_w = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *s;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--bias") || !strcmp(a, "--no-bias")) {
            o.has_bias = !strcmp(a, "--bias");
            continue;
        }
        if (!strcmp(a, "--force") || !strcmp(a, "--allow-incomplete")) {
            *(!strcmp(a, "--force") ? &force : &o.allow_incomplete) = 1;
            continue;
        }
        static const char *valued[] = {"--method",
                                       "-m",
                                       "-z",
                                       "--data",
                                       "-o",
                                       "--init-from",
                                       "--steps",
                                       "--epochs",
                                       "--batch",
                                       "--seq-len",
                                       "--grad-accum",
                                       "--lr",
                                       "--warmup-frac",
                                       "--warmup",
                                       "--weight-decay",
                                       "--clip",
                                       "--topk",
                                       "--topk-w",
                                       "--align-steps",
                                       "--noise-std",
                                       "--seed",
                                       "--ckpt-every",
                                       "--stop-at",
                                       "--log",
                                       "--log-every",
                                       "--threads",
                                       "--dtype",
                                       NULL};
        int known = 0;
        for (int k = 0; valued[k]; k++)
            known |= !strcmp(a, valued[k]);
        if (!known) {
            return cli_unknown_flag("train-draft", a);
        }
        if (!(s = cli_need_value(argc, argv, &i)))
            return 2;
        const long long big = (long long)1 << 40;
        if (!strcmp(a, "--method"))
            method = s;
        else if (!strcmp(a, "-m"))
            model = s;
        else if (!strcmp(a, "-z"))
            (void)s;
        else if (!strcmp(a, "--data"))
            o.data_dir = s;
        else if (!strcmp(a, "-o"))
            o.out_dir = s;
        else if (!strcmp(a, "--init-from"))
            o.init_from = s;
        else if (!strcmp(a, "--log"))
            logpath = s;
        else if (!strcmp(a, "--dtype")) {
            if (strcmp(s, "f32") && strcmp(s, "bf16"))
                return cli_fail(2, "--dtype: expected f32 or bf16, got '%s'", s);
            o.dtype = !strcmp(s, "bf16") ? HASS_DTYPE_BF16 : HASS_DTYPE_F32;
        } else if (!strcmp(a, "--epochs")) {
            if (cli_parse_float(a, s, 1e-6, 1e6, &o.epochs))
                return 2;
        } else if (!strcmp(a, "--lr") || !strcmp(a, "--weight-decay") || !strcmp(a, "--clip") ||
                   !strcmp(a, "--noise-std") || !strcmp(a, "--topk-w") ||
                   !strcmp(a, "--warmup-frac")) {
            if (cli_parse_float(a, s, 0, !strcmp(a, "--warmup-frac") ? 1 : 1e6, &fv))
                return 2;
            if (!strcmp(a, "--lr"))
                o.lr = (float)fv;
            else if (!strcmp(a, "--weight-decay"))
                o.weight_decay = (float)fv;
            else if (!strcmp(a, "--clip"))
                o.clip = (float)fv;
            else if (!strcmp(a, "--noise-std"))
                o.noise_std = (float)fv;
            else if (!strcmp(a, "--topk-w"))
                topk_w = fv;
            else
                o.warmup_frac = fv;
        } else if (!strcmp(a, "--seed")) {
            if (cli_parse_int(a, s, 0, (long long)9e18, &v))
                return 2;
            o.seed = (uint64_t)v;
        } else {
            long long lo = !strcmp(a, "--steps") || !strcmp(a, "--warmup") ||
                                   !strcmp(a, "--ckpt-every") || !strcmp(a, "--stop-at")
                               ? 0
                               : 1;
            long long hi = !strcmp(a, "--batch")         ? 64
                           : !strcmp(a, "--topk")        ? HASS_TRAIN_MAX_TOPK
                           : !strcmp(a, "--align-steps") ? HASS_TRAIN_MAX_ALIGN
                           : !strcmp(a, "--threads")     ? 256
                                                         : big;
            if (cli_parse_int(a, s, lo, hi, &v))
                return 2;
            if (!strcmp(a, "--steps"))
                o.steps = v;
            else if (!strcmp(a, "--batch"))
                o.batch = v;
            else if (!strcmp(a, "--seq-len"))
                o.seq_len = v;
            else if (!strcmp(a, "--grad-accum"))
                o.grad_accum = v;
            else if (!strcmp(a, "--warmup"))
                o.warmup = v;
            else if (!strcmp(a, "--topk"))
                o.topts.topk = (int)v;
            else if (!strcmp(a, "--align-steps"))
                align = v;
            else if (!strcmp(a, "--ckpt-every"))
                o.ckpt_every = v;
            else if (!strcmp(a, "--stop-at"))
                o.stop_at = v;
            else if (!strcmp(a, "--log-every"))
                every = v;
            else
                threads = v;
        }
    }
    if (!method || (strcmp(method, "eagle") && strcmp(method, "hass")))
        return cli_fail(2, "train-draft: --method eagle|hass is required");
    if (!model || !o.data_dir || !o.out_dir)
        return cli_fail(2, "train-draft: -m MODEL, --data DIR and -o OUTDIR are required");
    char state[1200];
    snprintf(state, sizeof state, "%s/trainer_state.safetensors", o.out_dir);
    int rc = cli_check_output("train-draft", o.out_dir, 1, "model.safetensors",
                              force || hass_file_exists(state));
    if (rc)
        return rc;
    int hass = !strcmp(method, "hass");
    o.topts.n_align = align > 0 ? (int)align : hass ? 3 : 1;
    o.topts.w_topk = topk_w >= 0 ? (float)topk_w : hass ? 1.0f : 0.0f;
    o.model_path = model;
    hass_err err = {0};
    hass_model *m = hass_model_load(model, &err);
    if (!m)
        return cli_fail(1, "%s", err.msg);
    if (o.seq_len > m->cfg.max_ctx)
        o.seq_len = m->cfg.max_ctx;
    log_ctx lc = {NULL, every};
    if (logpath && !(lc.log = fopen(logpath, "a"))) {
        hass_model_free(m);
        return cli_fail(1, "%s: cannot open the log for writing", logpath);
    }
    hass_pool *pool = hass_pool_create((int)threads);
    hass_train_report r;
    hass_status st = hass_train_run(m, pool, &o, on_step, &lc, &r, &err);
    hass_pool_destroy(pool);
    hass_model_free(m);
    if (lc.log)
        fclose(lc.log);
    if (st)
        return cli_fail(st == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    fprintf(stderr,
            "hass: train-draft (%s, n=%d, w=%g): steps %lld..%lld of %lld, loss %.4f, %lld "
            "tokens in %.1f s: %.0f tokens/s, %.2f GFLOP/s (analytic count)%s -> %s\n",
            method, o.topts.n_align, (double)o.topts.w_topk, (long long)r.start_step,
            (long long)r.steps_done, (long long)r.total_steps, r.last_loss, (long long)r.tokens,
            r.seconds, r.tokens_per_s, r.gflops,
            r.complete ? "" : " (stopped early: re-run to resume)", o.out_dir);
    return 0;
}
