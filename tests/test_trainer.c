/*
 * test_trainer.c — hass train-draft end to end on a small synthetic target: datagen -> training
 * -> the output loads as a draft; resumption is bit-exact (2K steps straight == K steps, stop,
 * K more: same parameters, AdamW state and draft file); gradient accumulation; the loss falls;
 * --init-from round trip; a state from another configuration is refused.
 */
#include "check.h"
#include "draft/draft.h"
#include "model/model.h"
#include "train/datagen.h"
#include "train/draft_ckpt.h"
#include "train/featstore.h"
#include "train/train_state.h"
#include "train/trainer_run.h"

#include <unistd.h>

typedef struct {
    double loss[512];
    int n;
} losses;

static void on_step(void *user, const hass_train_log *l) {
    losses *L = user;
    if (L->n < 512)
        L->loss[L->n++] = l->st.loss_mean;
}

static hass_train_run_opts opts(const char *out, int hass) {
    hass_train_run_opts o = hass_train_run_opts_default();
    o.data_dir = check_path("feat");
    o.out_dir = check_path(out);
    o.model_path = "synthetic";
    o.batch = 2;
    o.seq_len = 24;
    o.lr = 3e-3f;
    o.warmup = 2;
    o.seed = 5;
    o.topts.n_align = hass ? 3 : 1;
    o.topts.w_topk = hass ? 1.0f : 0.0f;
    return o;
}

static hass_status train(const hass_model *m, hass_train_run_opts *o, losses *L,
                         hass_train_report *r, hass_err *err) {
    memset(err, 0, sizeof *err);
    return hass_train_run(m, NULL, o, L ? on_step : NULL, L, r, err);
}

int main(void) {
    check_init("test_trainer");
    /* one product kind for every run: a resumed run keeps its state's kind, but the straight
     * run it is compared with would otherwise pick its own by a measurement a busy machine can
     * tip the other way */
    setenv("HASS_GEMM", "f32", 1);
    const char *tokp = check_shared("models/tok512.bin");
    if (!tokp) {
        CHECK_SKIP("models/tok512.bin not present");
        return check_exit();
    }
    hass_err err = {0};
    hass_tokenizer *tok = hass_tokenizer_load_bin(tokp, 512, &err);
    hass_model_config c = hass_model_config_make(32, 64, 2, 4, 2, 512, 256);
    c.bos = 1;
    c.stop_ids[0] = 2;
    c.n_stop = 1;
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, 3, &err);
    CHECK(tok && m);
    if (!tok || !m)
        return check_exit();

    /* data: the target's greedy continuations of a few prompts */
    FILE *f = fopen(check_path("p.txt"), "wb");
    fputs("Once upon a time\nThe dog ran\nLily saw a bird\nTom had a ball\n", f);
    fclose(f);
    hass_datagen_opts dg = hass_datagen_opts_default();
    dg.data_path = check_path("p.txt");
    dg.max_new = 20;
    hass_datagen_report dr;
    CHECK(hass_datagen_run(m, tok, NULL, check_path("feat"), &dg, &dr, &err) == HASS_OK);
    CHECK_EQ_INT(dr.sequences, 4);

    /* 1. train K steps -> a loadable draft */
    const int K = 4;
    hass_train_run_opts o = opts("straight", 1);
    o.steps = 2 * K;
    o.grad_accum = 2;
    hass_train_report r;
    hass_status st = train(m, &o, NULL, &r, &err);
    CHECK_MSG(st == HASS_OK, "%s", err.msg);
    CHECK_EQ_INT(r.steps_done, 2 * K);
    CHECK(r.complete && r.tokens > 0 && r.gflop > 0);
    hass_draft *d = hass_draft_load(check_path("straight"), m, &err);
    CHECK_MSG(d != NULL, "%s", err.msg);
    CHECK(d && d->has_bias && d->fc_b); /* fc bias on by default, as in EAGLE's training */
    hass_draft_free(d);

    /* 1b. a reduced draft vocabulary from the data: the most frequent trained tokens first
     * (on a copy: the resume test below compares "straight" byte for byte) */
    CHECK(check_copy(check_path("straight"), check_path("vocab")) == 0);
    CHECK(hass_draft_set_vocab(check_path("vocab"), m, check_path("feat"), 7, &err) == HASS_OK);
    d = hass_draft_load(check_path("vocab"), m, &err);
    CHECK_MSG(d != NULL && d->n_vocab == 7, "%s", err.msg);
    if (d) {
        hass_featstore *fs = hass_featstore_open(check_path("feat"), m, &err);
        int64_t cnt[1024] = {0}, V = m->cfg.V < 1024 ? m->cfg.V : 1024;
        int32_t ids[512];
        uint8_t mk[512];
        for (int64_t i = 0; fs && i < hass_featstore_count(fs); i++) {
            int64_t len = hass_featstore_read(fs, i, 512, ids, mk, NULL);
            for (int64_t k = 0; k < len; k++)
                if (mk[k] && ids[k] < V)
                    cnt[ids[k]]++;
        }
        int ok = 1;
        for (int j = 1; j < 7; j++) /* counts never increase along the vocabulary */
            ok &= cnt[d->vocab[j]] <= cnt[d->vocab[j - 1]];
        for (int64_t v = 0; v < V; v++) { /* nothing left out is more frequent than the last */
            int in = 0;
            for (int j = 0; j < 7; j++)
                in |= d->vocab[j] == v;
            ok &= in || cnt[v] <= cnt[d->vocab[6]];
        }
        CHECK_MSG(ok, "draft_vocab = the most frequent trained tokens");
        hass_featstore_close(fs);
    }
    hass_draft_free(d);
    CHECK(hass_draft_set_vocab(check_path("vocab"), m, check_path("feat"), 0, &err) ==
          HASS_STATUS_ARG);

    /* 2. resume: K steps, stop, K more == 2K straight (bit-exact state and draft) */
    o = opts("resumed", 1);
    o.steps = 2 * K;
    o.grad_accum = 2;
    o.stop_at = K;
    CHECK(train(m, &o, NULL, &r, &err) == HASS_OK);
    CHECK(r.steps_done == K && !r.complete);
    CHECK(!check_same_file(check_path("straight/trainer_state.safetensors"),
                           check_path("resumed/trainer_state.safetensors")));
    o.stop_at = 0;
    CHECK(train(m, &o, NULL, &r, &err) == HASS_OK);
    CHECK(r.start_step == K && r.steps_done == 2 * K && r.complete);
    CHECK_MSG(check_same_file(check_path("straight/trainer_state.safetensors"),
                              check_path("resumed/trainer_state.safetensors")),
              "params, AdamW m/v, step, rng and cursor after a resume == straight run");
    CHECK(check_same_file(check_path("straight/model.safetensors"),
                          check_path("resumed/model.safetensors")));
    /* a state whose counters disagree with the run is refused with a one-line error */
    {
        hass_draft_config bc = hass_draft_config_for(m, 1);
        hass_draft_layout bl;
        hass_draft_layout_init(&bl, &bc);
        float *pa = hass_aligned_alloc(3 * bl.total * sizeof(float));
        hass_train_state s0;
        CHECK(hass_train_state_read(check_path("resumed"), 2 * K, bl.total, pa, pa + bl.total,
                                    pa + 2 * bl.total, &s0, &err) == 1);
        const int64_t cases[4][3] = {{2 * K + 1, 0, 0}, {K, 0, 0}, {K, 1000, 1}, {-3, 0, 0}};
        char bad_dir[1024], feat_dir[1024], res_dir[1024];
        snprintf(bad_dir, sizeof bad_dir, "%s", check_path("badstate"));
        snprintf(feat_dir, sizeof feat_dir, "%s", check_path("feat"));
        snprintf(res_dir, sizeof res_dir, "%s", check_path("resumed"));
        for (int i = 0; i < 4 && s0.config; i++) {
            CHECK(check_copy(res_dir, bad_dir) == 0);
            hass_train_state bs = s0;
            bs.step = bs.adam_t = cases[i][0], bs.epoch = cases[i][1], bs.cursor = cases[i][2];
            CHECK(hass_train_state_write(bad_dir, &bs, pa, pa + bl.total, pa + 2 * bl.total,
                                         bl.total, &err) == HASS_OK);
            o.out_dir = bad_dir;
            o.data_dir = feat_dir;
            o.stop_at = 0;
            st = train(m, &o, NULL, &r, &err);
            CHECK_MSG(st == HASS_STATUS_FORMAT && !strchr(err.msg, '\n'), "case %d: %d %s", i, st,
                      err.msg);
            check_rmtree(bad_dir);
        }
        hass_train_state_free(&s0);
        hass_aligned_free(pa);
        o = opts("resumed", 1);
        o.steps = 2 * K;
        o.grad_accum = 2;
    }
    /* a different configuration in the same directory is refused */
    o.lr = 1e-3f;
    CHECK(train(m, &o, NULL, &r, &err) == HASS_STATUS_ARG);
    CHECK(strstr(err.msg, "different configuration") != NULL);

    /* 3. the loss falls (EAGLE objective, a few epochs over the small set) */
    losses L = {.n = 0};
    o = opts("fall", 0);
    o.steps = 120;
    o.lr = 1e-2f;
    CHECK(train(m, &o, &L, &r, &err) == HASS_OK);
    double first = 0, last = 0;
    for (int i = 0; i < 10; i++) {
        first += L.loss[i] / 10;
        last += L.loss[L.n - 10 + i] / 10;
    }
    CHECK_MSG(L.n == 120 && last < 0.7 * first, "loss %.4f -> %.4f", first, last);

    /* 4. --init-from: a draft's tensors start the run exactly, and its RoPE (here a linear
     * scaling the target does not have) is kept: trained with and recorded */
    hass_draft_config dc = hass_draft_config_for(m, 0);
    dc.rope.linear = 2;
    hass_draft_layout lay;
    hass_draft_layout_init(&lay, &dc);
    float *p = hass_aligned_alloc(lay.total * sizeof(float));
    float *q = hass_aligned_alloc(lay.total * sizeof(float));
    hass_draft_params_init(p, &lay, &dc, 77);
    CHECK(hass_draft_write_params(check_path("init"), &m->cfg, &dc, &lay, p, HASS_DTYPE_F32, "t",
                                  &err) == HASS_OK);
    CHECK(hass_train_load_draft(check_path("init"), &dc, &lay, q, &err) == HASS_OK);
    CHECK_BITEQ(p, q, lay.total, "init-from round trip");
    o = opts("stage2", 1);
    o.init_from = check_path("init");
    o.steps = 1;
    o.lr = 0; /* lr 0 with weight decay: parameters stay those of the init draft */
    CHECK(train(m, &o, NULL, &r, &err) == HASS_STATUS_SHAPE); /* it has no bias: say so */
    CHECK(strstr(err.msg, "--no-bias") != NULL);
    o.has_bias = 0;
    CHECK(train(m, &o, NULL, &r, &err) == HASS_OK);
    CHECK(hass_train_load_draft(check_path("stage2"), &dc, &lay, q, &err) == HASS_OK);
    CHECK_BITEQ(p, q, lay.total, "stage 2 starts from the stage-1 draft");
    d = hass_draft_load(check_path("stage2"), m, &err);
    CHECK_MSG(d != NULL, "%s", err.msg);
    if (d) {
        float want[HASS_ROPE_MAX_HALF];
        hass_rope_freqs(&dc.rope, m->cfg.Dh, want);
        CHECK(hass_rope_params_equal(&d->cfg.rope, &dc.rope));
        CHECK_BITEQ(d->inv_freq, want, m->cfg.Dh / 2, "stage 2 keeps the stage-1 RoPE");
    }
    hass_draft_free(d);
    dc.has_bias = 1;
    CHECK(hass_train_load_draft(check_path("init"), &dc, &lay, q, &err) == HASS_STATUS_SHAPE);
    hass_aligned_free(p);
    hass_aligned_free(q);

    /* 5. bad inputs */
    o = opts("bad", 1);
    o.data_dir = check_path("nothing");
    CHECK(train(m, &o, NULL, &r, &err) == HASS_STATUS_IO);
    o = opts("bad", 1);
    o.batch = 0;
    CHECK(train(m, &o, NULL, &r, &err) == HASS_STATUS_ARG);
    hass_model *other = hass_model_synthetic(&c, HASS_DTYPE_F32, 4, &err);
    o = opts("bad", 1);
    CHECK(train(other, &o, NULL, &r, &err) == HASS_STATUS_SHAPE);
    hass_model_free(other);

    hass_model_free(m);
    hass_tokenizer_free(tok);
    return check_exit();
}
