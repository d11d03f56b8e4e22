/*
 * cmd_pretrain.c — `hass pretrain`: train a LLaMA-family model from scratch on a JSONL corpus
 * (src/train/pretrain_run.h). Progress on stderr, JSONL log, resumable, time-sliceable;
 * Ctrl-C / SIGTERM stop after the current step with a checkpoint.
 */
#include "cli/cli.h"
#include "train/gemm.h"
#include "train/pretrain_run.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char *usage =
    "usage: hass pretrain --data TRAIN.jsonl --tokenizer tokenizer.json -o OUTDIR --steps N "
    "[flags]\n"
    "  --data FILE        training corpus: JSONL of {\"messages\": [...]} or {\"text\": ...}\n"
    "  --valid FILE       validation corpus, same format (optional)\n"
    "  --tokenizer FILE   tokenizer.json (tokenizer_config.json beside it is used too)\n"
    "  -o OUTDIR          run folder: model/ (Hugging Face directory, BF16), log.jsonl,\n"
    "                     trainer_state.safetensors; the same command resumes\n"
    "  --steps N          optimizer steps (fixes the learning-rate schedule); required\n"
    "model shape:\n"
    "  --dim D (512)  --layers L (16)  --heads H (8)  --kv-heads K (4)  --ffn F (1408)\n"
    "  --ctx T (1024)  --rope-theta X (10000)  --rms-eps X (1e-5)  --tie (LM head = embedding)\n"
    "optimisation:\n"
    "  --batch B (4) sequences per micro-batch   --accum G (2) micro-batches per step\n"
    "  --lr X (1e-3) peak   --min-lr X (1e-4) end of the cosine   --warmup N (100) steps\n"
    "  --weight-decay X (0.1, matrices only)   --clip X (1.0, global gradient norm; 0 = off)\n"
    "  --seed S (1) initialisation and data order\n"
    "run control:\n"
    "  --eval-every N (100)  --eval-windows N (32)  --ckpt-every N (50)  --log-every N (1)\n"
    "  --stop-at STEP     stop after this step with a checkpoint (0 = run to the end)\n"
    "  --time-limit SEC   stop with a checkpoint before this many seconds have passed\n"
    "  --reschedule       continue a run with other --steps/--lr/--min-lr/--warmup from its\n"
    "                     last step (the result differs from a run made on the new schedule)\n"
    "  --threads N        threads (number of CPUs)\n"
    "  --gemm K           matrix products: auto (measured), f32 (OpenBLAS), bf16-avx512, bf16-amx\n"
    "                     (bf16: operands rounded to bf16, fp32 sums, fp32 master weights)\n";

/* set by the handler; int is what sig_atomic_t is on the platforms we build for */
static volatile int stop_int;

static void on_signal(int sig) {
    stop_int = 1;
    signal(sig, SIG_DFL); /* a second signal ends the process */
}

typedef struct {
    const char *name;
    char kind; /* 'i' int64, 'f' float, 'd' double, 's' string */
    void *dst;
    double lo, hi;
} flag_def;

int cmd_pretrain(int argc, char **argv) {
    hass_pretrain_opts o = hass_pretrain_opts_default();
    long long threads = 0;
    hass_lm_config *c = &o.cfg;
    int64_t seed = (int64_t)o.seed;
    const double big = 1e15;
    const flag_def flags[] = {
        {"--data", 's', &o.data, 0, 0},
        {"--valid", 's', &o.valid, 0, 0},
        {"--tokenizer", 's', &o.tokenizer, 0, 0},
        {"-o", 's', &o.out_dir, 0, 0},
        {"--steps", 'i', &o.steps, 1, big},
        {"--dim", 'i', &c->d, 2, 16384},
        {"--layers", 'i', &c->n_layers, 1, 256},
        {"--heads", 'i', &c->H, 1, 1024},
        {"--kv-heads", 'i', &c->Hkv, 1, 1024},
        {"--ffn", 'i', &c->ffn, 1, 65536},
        {"--ctx", 'i', &c->ctx, 2, 65536},
        {"--rope-theta", 'f', &c->rope_theta, 1, 1e9},
        {"--rms-eps", 'f', &c->rms_eps, 1e-12, 1},
        {"--batch", 'i', &o.batch, 1, 4096},
        {"--accum", 'i', &o.accum, 1, 1 << 20},
        {"--lr", 'f', &o.lr, 1e-12, 10},
        {"--min-lr", 'f', &o.min_lr, 0, 10},
        {"--warmup", 'i', &o.warmup, 0, big},
        {"--weight-decay", 'f', &o.weight_decay, 0, 10},
        {"--clip", 'f', &o.clip, 0, 1e6},
        {"--seed", 'i', &seed, 0, 9e18},
        {"--eval-every", 'i', &o.eval_every, 0, big},
        {"--eval-windows", 'i', &o.eval_windows, 0, 1 << 20},
        {"--ckpt-every", 'i', &o.ckpt_every, 0, big},
        {"--log-every", 'i', &o.log_every, 1, big},
        {"--stop-at", 'i', &o.stop_at, 0, big},
        {"--time-limit", 'd', &o.time_limit, 0, 1e9},
        {"--threads", 'I', &threads, 1, 256},
    };
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 0;
        }
        if (!strcmp(a, "--gemm")) {
            const char *s = cli_need_value(argc, argv, &i);
            if (!s)
                return 2;
            o.gemm = -2;
            for (int k = 0; k < HASS_GEMM_COUNT; k++)
                if (!strcmp(s, hass_gemm_name((hass_gemm_kind)k)))
                    o.gemm = k;
            if (!strcmp(s, "auto"))
                o.gemm = -1;
            if (o.gemm == -2)
                return cli_fail(2, "--gemm: expected auto, f32, bf16-avx512 or bf16-amx, got '%s'",
                                s);
            if (o.gemm >= 0 && !hass_gemm_available((hass_gemm_kind)o.gemm))
                return cli_fail(2, "--gemm %s: not available on this CPU", s);
            continue;
        }
        if (!strcmp(a, "--reschedule")) {
            o.reschedule = 1;
            continue;
        }
        if (!strcmp(a, "--tie")) {
            c->tie = 1;
            continue;
        }
        const flag_def *f = NULL;
        for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
            if (!strcmp(a, flags[k].name))
                f = &flags[k];
        if (!f) {
            return cli_unknown_flag("pretrain", a);
        }
        const char *s = cli_need_value(argc, argv, &i);
        if (!s)
            return 2;
        long long iv;
        double dv;
        if (f->kind == 's')
            *(const char **)f->dst = s;
        else if (f->kind == 'i' || f->kind == 'I') {
            if (cli_parse_int(a, s, (long long)f->lo, (long long)f->hi, &iv))
                return 2;
            if (f->kind == 'I')
                *(long long *)f->dst = iv;
            else
                *(int64_t *)f->dst = iv;
        } else {
            if (cli_parse_float(a, s, f->lo, f->hi, &dv))
                return 2;
            if (f->kind == 'f')
                *(float *)f->dst = (float)dv;
            else
                *(double *)f->dst = dv;
        }
    }
    o.seed = (uint64_t)seed;
    if (!o.data || !o.tokenizer || !o.out_dir || o.steps < 1)
        return cli_fail(2, "pretrain: --data, --tokenizer, -o and --steps are required");
    if (o.warmup >= o.steps)
        return cli_fail(2, "pretrain: --warmup (%lld) must be below --steps (%lld)",
                        (long long)o.warmup, (long long)o.steps);
    if (o.min_lr > o.lr)
        return cli_fail(2, "pretrain: --min-lr must not exceed --lr");
    o.stop = &stop_int;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    hass_pool *pool = hass_pool_create((int)threads);
    hass_err err = {0};
    hass_pretrain_report r;
    hass_status st = hass_pretrain_run(pool, &o, &r, &err);
    hass_pool_destroy(pool);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (st)
        return cli_fail(st == HASS_STATUS_ARG ? 2 : 1, "%s", err.msg);
    char vl[32] = "not evaluated";
    if (r.val_loss == r.val_loss)
        snprintf(vl, sizeof vl, "%.4f", r.val_loss);
    fprintf(stderr,
            "hass: pretrain: steps %lld..%lld of %lld, loss %.4f, validation loss %s, %lld "
            "tokens in %.1f s: %.0f tokens/s, %.1f GFLOP/s (analytic count)%s -> %s/model\n",
            (long long)r.start_step, (long long)r.step, (long long)r.total, r.loss, vl,
            (long long)r.tokens, r.seconds, r.tokens_per_s, r.gflops,
            r.complete ? "" : " (stopped: the same command resumes)", o.out_dir);
    return 0;
}
