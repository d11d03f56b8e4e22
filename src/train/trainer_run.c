/*
 * trainer_run.c — `hass train-draft` (trainer_run.h): batches from feature shards, gradient
 * accumulation, AdamW steps, atomic checkpoints (draft directory + trainer state) and
 * bit-exact resumption.
 */
#include "train/trainer_run.h"
#include "train/blas.h"
#include "train/gemm.h"

#include "formats/formats.h"
#include "ops/ops.h"
#include "train/draft_ckpt.h"
#include "train/featstore.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define STATE_FILE "trainer_state.safetensors"

hass_train_run_opts hass_train_run_opts_default(void) {
    hass_train_run_opts o;
    memset(&o, 0, sizeof o);
    o.topts = hass_train_opts_default();
    o.epochs = 1;
    o.batch = 4;
    o.seq_len = 2048;
    o.grad_accum = 1;
    o.lr = 3e-5f;
    o.warmup_frac = 0.01;
    o.warmup = -1;
    o.weight_decay = 0.01f;
    o.clip = 0.5f;
    o.noise_std = 0.2f;
    o.dtype = HASS_DTYPE_F32;
    o.has_bias = 1;
    return o;
}

hass_status hass_train_load_draft(const char *dir, const hass_draft_config *c,
                                  const hass_draft_layout *L, float *params, hass_err *err) {
    hass_st_set set;
    hass_status st = hass_safetensors_open_dir(&set, dir, err);
    if (st)
        return st;
    const hass_tensor *b = hass_st_set_find(&set, "fc.bias");
    if (!!b != !!c->has_bias)
        st = hass_err_set(err, HASS_STATUS_SHAPE, "%s: fc.bias is %s, the run %s one (%s)", dir,
                          b ? "present" : "absent", c->has_bias ? "needs" : "has no",
                          c->has_bias ? "--no-bias trains without" : "drop --no-bias");
    for (int p = 0; !st && p < HASS_DP_COUNT; p++) {
        if (L->numel[p] == 0)
            continue;
        const char *name = hass_draft_param_name((hass_draft_param)p);
        const hass_tensor *t = hass_st_set_find(&set, name);
        if (!t) {
            st = hass_err_set(err, HASS_STATUS_FORMAT, "%s: tensor %s is missing", dir, name);
            break;
        }
        int ok = t->ndim == L->ndim[p] && t->shape[0] == L->shape[p][0] &&
                 (L->ndim[p] == 1 || t->shape[1] == L->shape[p][1]) &&
                 (t->dtype == HASS_DTYPE_F32 || t->dtype == HASS_DTYPE_BF16 ||
                  t->dtype == HASS_DTYPE_F16);
        if (!ok) {
            st = hass_err_set(err, HASS_STATUS_SHAPE,
                              "%s: tensor %s has the wrong shape or dtype for this model", dir,
                              name);
            break;
        }
        hass_to_f32(params + L->off[p], t->data, t->dtype, (int64_t)L->numel[p]);
    }
    hass_st_set_close(&set);
    return st;
}

/* ---- run state ---- */
typedef struct {
    int64_t step, adam_t, epoch, cursor;
    uint64_t rng;
    int64_t gemm; /* the product kind the run has used (kept on resume) */
} run_pos;

static void make_perm(int32_t *perm, int64_t n, uint64_t seed, int64_t epoch) {
    hass_rng r;
    hass_rng_seed(&r, seed ^ (0xA24BAED4963EE407ull * (uint64_t)(epoch + 1)));
    for (int64_t i = 0; i < n; i++)
        perm[i] = (int32_t)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(hass_rng_u64(&r) % (uint64_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static hass_status save_state(const char *dir, const hass_trainer *tr, const run_pos *p,
                              const char *config, hass_err *err) {
    hass_tensor t[3];
    const char *names[3] = {"params", "adam_m", "adam_v"};
    const float *data[3] = {tr->params, tr->adam_m, tr->adam_v};
    for (int i = 0; i < 3; i++) {
        memset(&t[i], 0, sizeof t[i]);
        snprintf(t[i].name, sizeof t[i].name, "%s", names[i]);
        t[i].dtype = HASS_DTYPE_F32;
        t[i].ndim = 1;
        t[i].shape[0] = (int64_t)tr->layout.total;
        t[i].data = data[i];
        t[i].nbytes = tr->layout.total * sizeof(float);
    }
    cJSON *md = cJSON_CreateObject();
    char b[64];
    snprintf(b, sizeof b, "%lld", (long long)p->step);
    cJSON_AddStringToObject(md, "step", b);
    snprintf(b, sizeof b, "%lld", (long long)p->adam_t);
    cJSON_AddStringToObject(md, "adam_t", b);
    snprintf(b, sizeof b, "%lld", (long long)p->epoch);
    cJSON_AddStringToObject(md, "epoch", b);
    snprintf(b, sizeof b, "%lld", (long long)p->cursor);
    cJSON_AddStringToObject(md, "cursor", b);
    snprintf(b, sizeof b, "%016llx", (unsigned long long)p->rng);
    cJSON_AddStringToObject(md, "rng", b);
    cJSON_AddStringToObject(md, "gemm", hass_gemm_name((hass_gemm_kind)p->gemm));
    cJSON_AddStringToObject(md, "config", config);
    char *js = cJSON_PrintUnformatted(md);
    cJSON_Delete(md);
    if (!js)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    hass_status st = hass_safetensors_write(path, t, 3, js, err);
    free(js);
    return st;
}

static int md_i64(const cJSON *md, const char *k, int64_t *out, int hex) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(md, k);
    if (!cJSON_IsString(v) || !v->valuestring[0])
        return 0;
    char *end;
    errno = 0;
    unsigned long long x = hex ? strtoull(v->valuestring, &end, 16)
                               : (unsigned long long)strtoll(v->valuestring, &end, 10);
    if (errno || *end)
        return 0;
    *out = (int64_t)x;
    return 1;
}

/* 1 = resumed, 0 = no state file, <0 = error (err set). */
static int load_state(const char *dir, hass_trainer *tr, run_pos *p, const char *config,
                      hass_err *err) {
    char path[1100];
    snprintf(path, sizeof path, "%s/%s", dir, STATE_FILE);
    if (!hass_file_exists(path))
        return 0;
    hass_safetensors sf;
    if (hass_safetensors_open(&sf, path, err))
        return -1;
    int rc = 1;
    cJSON *md = sf.metadata_json ? cJSON_Parse(sf.metadata_json) : NULL;
    const cJSON *cfg = md ? cJSON_GetObjectItemCaseSensitive(md, "config") : NULL;
    int64_t rng = 0;
    if (!cJSON_IsString(cfg) || !md_i64(md, "step", &p->step, 0) ||
        !md_i64(md, "adam_t", &p->adam_t, 0) || !md_i64(md, "epoch", &p->epoch, 0) ||
        !md_i64(md, "cursor", &p->cursor, 0) || !md_i64(md, "rng", &rng, 1) || p->step < 0 ||
        p->epoch < 0 || p->cursor < 0) {
        hass_err_set(err, HASS_STATUS_FORMAT, "%s: missing or bad trainer metadata", path);
        rc = -1;
    } else if (strcmp(cfg->valuestring, config)) {
        hass_err_set(err, HASS_STATUS_ARG,
                     "%s holds a run with a different configuration (%s); use another -o", path,
                     cfg->valuestring);
        rc = -1;
    }
    p->rng = (uint64_t)rng;
    /* the run goes on with the products it was trained with when this machine has them */
    const cJSON *gk = md ? cJSON_GetObjectItemCaseSensitive(md, "gemm") : NULL;
    for (int k = 0; rc == 1 && cJSON_IsString(gk) && k < HASS_GEMM_COUNT; k++)
        if (!strcmp(gk->valuestring, hass_gemm_name((hass_gemm_kind)k))) {
            if (hass_gemm_available((hass_gemm_kind)k))
                hass_gemm_set_default((hass_gemm_kind)k, hass_gemm_default_pool());
            else
                hass_log(HASS_LOG_WARN, "%s: trained with %s products, which this CPU lacks; "
                                        "continuing with %s (not bit-identical)",
                         path, gk->valuestring, hass_gemm_name(hass_gemm_get_default()));
        }
    p->gemm = hass_gemm_get_default();
    float *dst[3] = {tr->params, tr->adam_m, tr->adam_v};
    const char *names[3] = {"params", "adam_m", "adam_v"};
    for (int i = 0; rc == 1 && i < 3; i++) {
        const hass_tensor *t = hass_safetensors_find(&sf, names[i]);
        if (!t || t->dtype != HASS_DTYPE_F32 || t->ndim != 1 ||
            t->shape[0] != (int64_t)tr->layout.total) {
            hass_err_set(err, HASS_STATUS_FORMAT, "%s: tensor %s missing or of the wrong shape",
                         path, names[i]);
            rc = -1;
            break;
        }
        memcpy(dst[i], t->data, tr->layout.total * sizeof(float));
    }
    tr->adam_t = p->adam_t;
    cJSON_Delete(md);
    hass_safetensors_close(&sf);
    return rc;
}

/* ---- batches ---- */
typedef struct {
    const hass_featstore *fs;
    int64_t d, B, T, n_seq;
    int32_t *perm, *ids;
    uint8_t *m8;
    float *rowf; /* (T, d) f32 features of one sequence */
    float *feat, *tgt, *mask;
    int32_t *tok;
    uint64_t seed;
    float noise;
} batcher;

/* Fills one micro-batch; returns T of the batch (longest sequence), and real tokens/rows. */
static int64_t next_batch(batcher *bt, run_pos *p, hass_rng *rng, int64_t *tokens, int64_t *nmask) {
    int64_t d = bt->d, Tb = 0, lens[64];
    int64_t idx[64];
    for (int64_t b = 0; b < bt->B; b++) {
        if (p->cursor >= bt->n_seq) {
            p->epoch++;
            p->cursor = 0;
            make_perm(bt->perm, bt->n_seq, bt->seed, p->epoch);
        }
        idx[b] = bt->perm[p->cursor++];
        int64_t L = hass_featstore_len(bt->fs, idx[b]);
        lens[b] = L < bt->T ? L : bt->T;
        if (lens[b] > Tb)
            Tb = lens[b];
    }
    *tokens = 0;
    *nmask = 0;
    for (int64_t b = 0; b < bt->B; b++) {
        int64_t L = hass_featstore_read(bt->fs, idx[b], bt->T, bt->ids, bt->m8, bt->rowf);
        float *F = bt->feat + b * Tb * d, *G = bt->tgt + b * Tb * d, *M = bt->mask + b * Tb;
        int32_t *K = bt->tok + b * Tb;
        memset(F, 0, (size_t)(Tb * d) * sizeof(float));
        memset(G, 0, (size_t)(Tb * d) * sizeof(float));
        memset(M, 0, (size_t)Tb * sizeof(float));
        memset(K, 0, (size_t)Tb * sizeof(int32_t));
        memcpy(F, bt->rowf, (size_t)(L * d) * sizeof(float));
        if (L > 1)
            memcpy(G, bt->rowf + d, (size_t)((L - 1) * d) * sizeof(float));
        for (int64_t i = 0; i + 1 < L; i++) {
            K[i] = bt->ids[i + 1];
            M[i] = bt->m8[i] ? 1.0f : 0.0f;
            *nmask += bt->m8[i] != 0;
        }
        float scale = bt->noise * 512.0f / (float)L;
        if (scale != 0.0f)
            for (int64_t k = 0; k < L * d; k++)
                F[k] += (hass_rng_uniform(rng) - 0.5f) * scale;
        *tokens += L;
    }
    return Tb;
}

static void stats_add(hass_train_stats *acc, const hass_train_stats *s) {
    double w = s->mask_sum;
    acc->n_align = s->n_align;
    for (int j = 0; j < s->n_align; j++) {
        acc->loss[j] += w * s->loss[j];
        acc->loss_fea[j] += w * s->loss_fea[j];
        acc->loss_soft[j] += w * s->loss_soft[j];
        acc->loss_topk[j] += w * s->loss_topk[j];
        acc->top1[j] += w * s->top1[j];
    }
    acc->loss_mean += w * s->loss_mean;
    acc->mask_sum += w;
}

static void stats_norm(hass_train_stats *acc) {
    double w = acc->mask_sum > 0 ? 1.0 / acc->mask_sum : 0;
    for (int j = 0; j < acc->n_align; j++) {
        acc->loss[j] *= w;
        acc->loss_fea[j] *= w;
        acc->loss_soft[j] *= w;
        acc->loss_topk[j] *= w;
        acc->top1[j] *= w;
    }
    acc->loss_mean *= w;
}

static hass_status check_opts(const hass_train_run_opts *o, hass_err *err) {
    const hass_train_opts *t = &o->topts;
    if (!o->data_dir || !o->out_dir)
        return hass_err_set(err, HASS_STATUS_ARG, "--data and -o are required");
    if (o->batch < 1 || o->batch > 64)
        return hass_err_set(err, HASS_STATUS_ARG, "--batch must be in [1, 64]");
    if (o->dtype != HASS_DTYPE_F32 && o->dtype != HASS_DTYPE_BF16)
        return hass_err_set(err, HASS_STATUS_ARG, "draft dtype must be f32 or bf16");
    if (o->seq_len < 2 || o->grad_accum < 1 || o->steps < 0 || !(o->epochs > 0) || !(o->lr >= 0) ||
        o->weight_decay < 0 || o->clip < 0 || o->noise_std < 0 || o->ckpt_every < 0 ||
        o->stop_at < 0 || !(o->warmup_frac >= 0 && o->warmup_frac <= 1))
        return hass_err_set(err, HASS_STATUS_ARG, "a training option is out of range");
    if (t->n_align < 1 || t->n_align > HASS_TRAIN_MAX_ALIGN)
        return hass_err_set(err, HASS_STATUS_ARG, "--align-steps must be in [1, %d]",
                            HASS_TRAIN_MAX_ALIGN);
    if (t->w_topk < 0 || t->topk < 1 || t->topk > HASS_TRAIN_MAX_TOPK)
        return hass_err_set(err, HASS_STATUS_ARG, "--topk must be in [1, %d], --topk-w >= 0",
                            HASS_TRAIN_MAX_TOPK);
    return HASS_OK;
}

/* Work buffers of the batcher for B sequences of up to T tokens of dimension d. */
static hass_status batcher_alloc(batcher *bt, hass_err *err) {
    int64_t B = bt->B, T = bt->T, d = bt->d;
    bt->perm = malloc((size_t)bt->n_seq * sizeof(int32_t) + 1);
    bt->ids = malloc((size_t)T * sizeof(int32_t));
    bt->m8 = malloc((size_t)T);
    bt->rowf = hass_aligned_alloc((size_t)(T * d) * sizeof(float));
    bt->feat = hass_aligned_alloc((size_t)(B * T * d) * sizeof(float));
    bt->tgt = hass_aligned_alloc((size_t)(B * T * d) * sizeof(float));
    bt->mask = hass_aligned_alloc((size_t)(B * T) * sizeof(float));
    bt->tok = hass_aligned_alloc((size_t)(B * T) * sizeof(int32_t));
    if (!bt->perm || !bt->ids || !bt->m8 || !bt->rowf || !bt->feat || !bt->tgt || !bt->mask ||
        !bt->tok)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    return HASS_OK;
}

static void batcher_free(batcher *bt) {
    free(bt->perm);
    free(bt->ids);
    free(bt->m8);
    hass_aligned_free(bt->rowf);
    hass_aligned_free(bt->feat);
    hass_aligned_free(bt->tgt);
    hass_aligned_free(bt->mask);
    hass_aligned_free(bt->tok);
}

/* One optimizer step: G micro-batches of gradients (averaged when G > 1, into acc), then AdamW
 * at the scheduled learning rate. Advances pos (data cursor, rng, step). */
static hass_status train_one_step(hass_trainer *tr, batcher *bt, run_pos *pos, float *acc,
                                  const hass_train_run_opts *o, const hass_draft_config *cfg,
                                  int64_t warmup, int64_t total, hass_train_stats *acc_st,
                                  int64_t *tokens, double *gflop, float *lr_out, hass_err *err) {
    int64_t G = o->grad_accum;
    hass_rng rng = {pos->rng};
    memset(acc_st, 0, sizeof *acc_st);
    *tokens = 0;
    for (int64_t g = 0; g < G; g++) {
        int64_t tk, nm;
        int64_t Tb = next_batch(bt, pos, &rng, &tk, &nm);
        hass_train_batch batch = {bt->B, Tb, bt->feat, bt->tok, bt->tgt, bt->mask};
        hass_train_stats s;
        hass_status st = hass_train_grad(tr, &batch, &o->topts, &s, err);
        if (st)
            return st;
        stats_add(acc_st, &s);
        *tokens += tk;
        *gflop += hass_train_step_flops(cfg, bt->B, Tb, nm, o->topts.n_align) * 1e-9;
        if (G > 1) {
            for (size_t i = 0; i < tr->layout.total; i++)
                acc[i] = g ? acc[i] + tr->grads[i] : tr->grads[i];
        }
    }
    if (G > 1) {
        float inv = 1.0f / (float)G;
        for (size_t i = 0; i < tr->layout.total; i++)
            tr->grads[i] = acc[i] * inv;
    }
    float lr = hass_lr_schedule(pos->step, warmup, total, o->lr);
    tr->adam_t++;
    hass_adamw_update(tr->params, tr->grads, tr->adam_m, tr->adam_v, tr->layout.total, lr,
                      tr->adam_t, &tr->adamw);
    pos->step++;
    pos->adam_t = tr->adam_t;
    pos->rng = rng.s;
    stats_norm(acc_st);
    *lr_out = lr;
    return HASS_OK;
}

hass_status hass_train_run(const hass_model *m, hass_pool *pool, const hass_train_run_opts *o,
                           hass_train_log_fn fn, void *user, hass_train_report *rep,
                           hass_err *err) {
    memset(rep, 0, sizeof *rep);
    hass_status st = check_opts(o, err);
    if (st)
        return st;
    hass_draft_config cfg = hass_draft_config_for(m, o->has_bias);
    if (o->init_from) { /* a draft keeps the RoPE it was trained with (its config.json) */
        hass_model_config ic;
        int ib;
        if ((st = hass_draft_read_config(o->init_from, &ic, &ib, err)))
            return st;
        cfg.rope = ic.rope;
    }
    if ((st = hass_draft_config_check(&cfg, err)))
        return st;
    hass_featstore *fs = hass_featstore_open(o->data_dir, m, err);
    if (!fs)
        return err->code;
    /* the linear layers' products: f32 or bf16, whichever this machine runs fastest */
    hass_gemm_set_default(hass_gemm_pick(pool), pool);
    hass_log(HASS_LOG_INFO, "train-draft: matrix products in %s (BLAS: %s)",
             hass_gemm_name(hass_gemm_get_default()), hass_blas_name());
    int64_t d = m->cfg.d, V = m->cfg.V, n_seq = hass_featstore_count(fs);
    int64_t B = o->batch, T = o->seq_len, G = o->grad_accum;
    int64_t total = o->steps;
    if (total == 0)
        total = (int64_t)ceil(o->epochs * (double)n_seq / (double)(B * G));
    if (total < 1)
        total = 1;
    int64_t warmup = o->warmup >= 0 ? o->warmup : (int64_t)(o->warmup_frac * (double)total);
    char config[1024];
    const hass_rope_params *rp = &cfg.rope;
    uint64_t rope_div = hass_fnv1a(HASS_FNV_OFFSET, rp->div, (size_t)rp->n_div * sizeof(float));
    snprintf(config, sizeof config,
             "n=%d K=%d w_fea=%g w_soft=%g w_topk=%g lr=%g warmup=%lld total=%lld B=%lld "
             "T=%lld G=%lld wd=%g clip=%g noise=%g seed=%llu bias=%d init=%s data=%lld/%lld "
             "rope=%.9g/%.9g/%.9g/%.9g/%lld/%.9g/%d/%016llx",
             o->topts.n_align, o->topts.topk, (double)o->topts.w_fea, (double)o->topts.w_soft,
             (double)o->topts.w_topk, (double)o->lr, (long long)warmup, (long long)total,
             (long long)B, (long long)T, (long long)G, (double)o->weight_decay, (double)o->clip,
             (double)o->noise_std, (unsigned long long)o->seed, o->has_bias,
             o->init_from ? o->init_from : "-", (long long)n_seq,
             (long long)hass_featstore_tokens(fs), (double)rp->theta, (double)rp->factor,
             (double)rp->low_freq_factor, (double)rp->high_freq_factor, (long long)rp->orig_ctx,
             (double)rp->linear, rp->n_div, (unsigned long long)rope_div);

    /* frozen embedding and LM head in f32 */
    size_t vd = (size_t)(V * d);
    float *embed = hass_aligned_alloc(vd * sizeof(float));
    float *head = hass_aligned_alloc(vd * sizeof(float));
    batcher bt = {
        .fs = fs, .d = d, .B = B, .T = T, .n_seq = n_seq, .seed = o->seed, .noise = o->noise_std};
    hass_trainer *tr = NULL;
    float *acc = NULL;
    if ((st = batcher_alloc(&bt, err)))
        goto out;
    if (!embed || !head) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto out;
    }
    hass_to_f32(embed, m->embed, m->embed_t, (int64_t)vd);
    hass_to_f32(head, m->lm_head, m->lm_head_t, (int64_t)vd);
    tr = hass_trainer_create(&cfg, embed, head, B, T, o->topts.n_align, o->seed, pool, err);
    if (!tr) {
        st = err->code;
        goto out;
    }
    tr->adamw.weight_decay = o->weight_decay;
    tr->adamw.clip_value = o->clip;
    if (G > 1 && !(acc = hass_aligned_alloc(tr->layout.total * sizeof(float)))) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto out;
    }
    if (mkdir(o->out_dir, 0755) && errno != EEXIST) {
        st =
            hass_err_set(err, HASS_STATUS_IO, "%s: cannot create: %s", o->out_dir, strerror(errno));
        goto out;
    }
    run_pos pos = {0};
    pos.gemm = hass_gemm_get_default();
    int resumed = load_state(o->out_dir, tr, &pos, config, err);
    if (resumed < 0) {
        st = err->code;
        goto out;
    }
    if (!resumed) {
        hass_rng r0;
        hass_rng_seed(&r0, o->seed ^ 0x6E6F697365ull);
        pos.rng = r0.s;
        if (o->init_from &&
            (st = hass_train_load_draft(o->init_from, &cfg, &tr->layout, tr->params, err)))
            goto out;
    } else {
        hass_log(HASS_LOG_INFO, "train-draft: resuming %s at step %lld of %lld", o->out_dir,
                 (long long)pos.step, (long long)total);
    }
    if (pos.cursor > n_seq) {
        st = hass_err_set(err, HASS_STATUS_FORMAT, "trainer state: cursor past the data");
        goto out;
    }
    make_perm(bt.perm, n_seq, o->seed, pos.epoch);
    rep->start_step = pos.step;
    rep->total_steps = total;
    int64_t end = o->stop_at > 0 && o->stop_at < total ? o->stop_at : total;
    hass_progress prog;
    hass_progress_init(&prog, "train-draft", "steps", end > pos.step ? end - pos.step : 0);
    double t_run = 0;
    int64_t step0 = pos.step;
    while (pos.step < end) {
        double t0 = hass_now();
        hass_train_stats acc_st;
        int64_t tokens;
        float lr;
        if ((st = train_one_step(tr, &bt, &pos, acc, o, &cfg, warmup, total, &acc_st, &tokens,
                                 &rep->gflop, &lr, err)))
            goto out;
        double dt = hass_now() - t0;
        t_run += dt;
        rep->tokens += tokens;
        rep->last_loss = acc_st.loss_mean;
        if (fn) {
            hass_train_log l = {
                pos.step, total,         lr, acc_st, tokens, dt, dt > 0 ? (double)tokens / dt : 0,
                t_run,    (int)pos.epoch};
            fn(user, &l);
        }
        hass_progress_update(&prog, pos.step - step0);
        int ckpt = pos.step == end || (o->ckpt_every > 0 && pos.step % o->ckpt_every == 0);
        if (ckpt) {
            if ((st = hass_draft_write_params(o->out_dir, &m->cfg, &cfg, &tr->layout, tr->params,
                                              o->dtype, o->model_path, err)) ||
                (st = save_state(o->out_dir, tr, &pos, config, err)))
                goto out;
        }
    }
    if (pos.step == step0 && resumed) {
        /* nothing left to do: make sure the draft directory exists */
        char path[1100];
        snprintf(path, sizeof path, "%s/model.safetensors", o->out_dir);
        if (!hass_file_exists(path) &&
            (st = hass_draft_write_params(o->out_dir, &m->cfg, &cfg, &tr->layout, tr->params,
                                          o->dtype, o->model_path, err)))
            goto out;
    }
    rep->steps_done = pos.step;
    rep->complete = pos.step >= total;
    rep->seconds = t_run;
    rep->tokens_per_s = t_run > 0 ? (double)rep->tokens / t_run : 0;
    rep->gflops = t_run > 0 ? rep->gflop / t_run : 0;
out:
    hass_gemm_set_default(HASS_GEMM_F32, NULL);
    hass_trainer_destroy(tr);
    hass_aligned_free(acc);
    hass_aligned_free(embed);
    hass_aligned_free(head);
    batcher_free(&bt);
    hass_featstore_close(fs);
    return st;
}
