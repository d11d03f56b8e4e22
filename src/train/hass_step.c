/*
 * hass_step.c — one HASS training step for the draft head (HASS.md 5.4): the parameter layout
 * with EAGLE names, fresh initialisation, the trainer (params | grads | AdamW m | v in one block,
 * every step buffer carved from one arena sized at creation), and hass_train_grad, which runs
 * the n context-alignment steps forward and backward with all B*T rows batched into sgemm calls.
 *
 * Structure of one call (N = B*T rows, streams k = 0..n-1, step j = 0..n-1):
 *   P = softmax(TGT W_h^T), its top-K indices and argmax            (once; no gradient)
 *   U_0 = [Emb(TOK) ; F]
 *   step j: X_j = FC(U_j); K_j, V_j = rope(X_j Wk^T), X_j Wv^T      (stream j's keys/values)
 *           Q = rope(X_j Wq^T); O = AlignAttn_j(Q; K_0..j, V_0..j); R = X_j + O Wo^T
 *           Hj = R + down(silu(gate(z)) * up(z)), z = RMSNorm(R); logits = Hj W_h^T
 *           losses, then backward down to dQ, dK_0..j, dV_0..j and dX_j (query/residual path)
 *           U_{j+1} = [Emb(TOK) ; shift(Hj)] with row 0 of each sequence = F[b,0] (detached)
 *   end:    per stream, the K/V gradients of ALL steps (accumulated) go back through the k/v
 *           projections and the FC once. This equals per-step backward (backward is linear in
 *           the upstream gradient) and costs each stream's FC/K/V backward once.
 * The params do not change within a call, so X_k, K_k, V_k of stream k computed at step k are
 * exactly what later steps would recompute.
 */
#include "train/draft_grad.h"
#include "train/train.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* config, layout, init                                                                        */

static const char *const param_names[HASS_DP_COUNT] = {
    "fc.weight",
    "fc.bias",
    "layers.0.self_attn.q_proj.weight",
    "layers.0.self_attn.k_proj.weight",
    "layers.0.self_attn.v_proj.weight",
    "layers.0.self_attn.o_proj.weight",
    "layers.0.mlp.gate_proj.weight",
    "layers.0.mlp.up_proj.weight",
    "layers.0.mlp.down_proj.weight",
    "layers.0.post_attention_layernorm.weight",
};

const char *hass_draft_param_name(hass_draft_param p) {
    return (int)p >= 0 && p < HASS_DP_COUNT ? param_names[p] : NULL;
}

hass_status hass_draft_config_check(const hass_draft_config *c, hass_err *err) {
    if (c->d <= 0 || c->H <= 0 || c->Hkv <= 0 || c->ffn <= 0 || c->V <= 0)
        return hass_err_set(err, HASS_STATUS_ARG, "draft config: non-positive shape");
    if (c->d % c->H != 0 || c->H % c->Hkv != 0 || (c->d / c->H) % 2 != 0)
        return hass_err_set(err, HASS_STATUS_ARG,
                            "draft config: need d %% H == 0, H %% Hkv == 0, even head dim "
                            "(d=%lld H=%lld Hkv=%lld)",
                            (long long)c->d, (long long)c->H, (long long)c->Hkv);
    if (c->d > (1 << 20) || c->ffn > (1 << 22) || c->V > (1 << 24))
        return hass_err_set(err, HASS_STATUS_ARG, "draft config: shape too large");
    if (!(c->rms_eps > 0.0f))
        return hass_err_set(err, HASS_STATUS_ARG, "draft config: rms_eps must be > 0");
    if (hass_rope_params_check(&c->rope, c->d / c->H, err) != HASS_OK)
        return hass_err_prefix(err, HASS_STATUS_ARG, "draft config");
    if (c->rope_style != HASS_ROPE_HALF && c->rope_style != HASS_ROPE_INTERLEAVED)
        return hass_err_set(err, HASS_STATUS_ARG, "draft config: unknown rope style");
    return HASS_OK;
}

void hass_draft_layout_init(hass_draft_layout *L, const hass_draft_config *c) {
    int64_t d = c->d, qd = c->d, kvd = c->Hkv * (c->d / c->H), f = c->ffn;
    const int64_t shapes[HASS_DP_COUNT][2] = {
        {d, 2 * d}, {c->has_bias ? d : 0, 0},
        {qd, d},    {kvd, d},
        {kvd, d},   {d, qd},
        {f, d},     {f, d},
        {d, f},     {d, 0},
    };
    memset(L, 0, sizeof *L);
    size_t off = 0;
    for (int p = 0; p < HASS_DP_COUNT; p++) {
        L->shape[p][0] = shapes[p][0];
        L->shape[p][1] = shapes[p][1];
        L->numel[p] = (size_t)shapes[p][0] * (size_t)(shapes[p][1] ? shapes[p][1] : 1);
        L->ndim[p] = shapes[p][0] == 0 ? 0 : (shapes[p][1] ? 2 : 1);
        L->off[p] = off;
        off += (L->numel[p] + 15) & ~(size_t)15;
    }
    L->total = off;
}

void hass_draft_params_init(float *params, const hass_draft_layout *L, const hass_draft_config *c,
                            uint64_t seed) {
    hass_rng rng;
    hass_rng_seed(&rng, seed);
    memset(params, 0, L->total * sizeof(float));
    for (int p = 0; p < HASS_DP_COUNT; p++) {
        float *w = params + L->off[p];
        if (p == HASS_DP_NORM) {
            for (size_t i = 0; i < L->numel[p]; i++)
                w[i] = 1.0f;
            continue;
        }
        // nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias; fc fan_in = 2d
        int64_t fan_in = p == HASS_DP_FC_B ? 2 * c->d : L->shape[p][1];
        float bound = 1.0f / sqrtf((float)fan_in);
        for (size_t i = 0; i < L->numel[p]; i++)
            w[i] = (2.0f * hass_rng_uniform(&rng) - 1.0f) * bound;
    }
}

void hass_train_add_noise(float *feat, int64_t L, int64_t d, hass_rng *rng) {
    float scale = 0.2f * 512.0f / (float)L;
    for (int64_t i = 0; i < L * d; i++)
        feat[i] += (hass_rng_uniform(rng) - 0.5f) * scale;
}

hass_train_opts hass_train_opts_default(void) {
    hass_train_opts o = {.n_align = 3, .topk = 10, .w_fea = 1.0f, .w_soft = 0.1f, .w_topk = 1.0f};
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* work buffers                                                                                */

#define ATTN_BQ 128

struct hass_trainer_work {
    /* The LM-head products run on the Nm <= N rows with m > 0 only ("compact" rows): rows with
     * m = 0 have no loss and no gradient, so skipping them is exact. */
    int32_t *rows;                       /* (N) compact row -> batch row */
    float *mc;                           /* (N) mask of the compact rows */
    float *P, *logits;                   /* (Nm, V) target probs; draft logits, then dlogits */
    int32_t *topk, *tgt_amax, *amax;     /* (Nm, MAX_TOPK), (Nm), (Nm) */
    float *Hc, *dHc;                     /* (Nm, d) compact draft outputs / their gradient */
    float *E;                            /* (N, d) embeddings of TOK */
    float *U;                            /* (n, N, 2d) FC inputs of every stream */
    float *X, *dX;                       /* (n, N, d) FC outputs and their gradients */
    float *K, *Vv, *dK, *dV;             /* (n, N, kvd) */
    float *Q, *O, *dQ, *dO;              /* (N, qd) */
    float *lse;                          /* (N, H) */
    float *R, *Z, *Hs, *dH, *dR, *dZ;    /* (N, d) */
    float *rstd;                         /* (N) */
    float *G, *Up, *Mx, *dG, *dUp, *dMx; /* (N, ffn) */
    float *rope_cos, *rope_sin;          /* (T_max, Dh/2) */
    float *attn;                         /* attention scratch */
    hass_arena arena;
};

/* Carves every buffer from base (or only counts bytes when base == NULL); returns the bytes. */
static size_t work_carve(hass_trainer_work *w, uint8_t *base, const hass_draft_config *c, int64_t B,
                         int64_t T, int nmax, int nth) {
    size_t off = 0;
    int64_t N = B * T, d = c->d, Dh = c->d / c->H, qd = c->d, kvd = c->Hkv * Dh, f = c->ffn;
#define CARVE(ptr, count)                                                                          \
    do {                                                                                           \
        size_t bytes_ = ((size_t)(count)*4 + 63) & ~(size_t)63;                                    \
        if (base)                                                                                  \
            *(void **)&(ptr) = base + off;                                                         \
        off += bytes_;                                                                             \
    } while (0)
    CARVE(w->rows, N);
    CARVE(w->mc, N);
    CARVE(w->Hc, N * d);
    CARVE(w->dHc, N * d);
    CARVE(w->P, N * c->V);
    CARVE(w->logits, N * c->V);
    CARVE(w->topk, N * HASS_TRAIN_MAX_TOPK);
    CARVE(w->tgt_amax, N);
    CARVE(w->amax, N);
    CARVE(w->E, N * d);
    CARVE(w->U, nmax * N * 2 * d);
    CARVE(w->X, nmax * N * d);
    CARVE(w->dX, nmax * N * d);
    CARVE(w->K, nmax * N * kvd);
    CARVE(w->Vv, nmax * N * kvd);
    CARVE(w->dK, nmax * N * kvd);
    CARVE(w->dV, nmax * N * kvd);
    CARVE(w->Q, N * qd);
    CARVE(w->O, N * qd);
    CARVE(w->dQ, N * qd);
    CARVE(w->dO, N * qd);
    CARVE(w->lse, N * c->H);
    CARVE(w->R, N * d);
    CARVE(w->Z, N * d);
    CARVE(w->Hs, N * d);
    CARVE(w->dH, N * d);
    CARVE(w->dR, N * d);
    CARVE(w->dZ, N * d);
    CARVE(w->rstd, N);
    CARVE(w->G, N * f);
    CARVE(w->Up, N * f);
    CARVE(w->Mx, N * f);
    CARVE(w->dG, N * f);
    CARVE(w->dUp, N * f);
    CARVE(w->dMx, N * f);
    CARVE(w->rope_cos, T * Dh / 2);
    CARVE(w->rope_sin, T * Dh / 2);
    CARVE(w->attn, hass_train_attn_align_scratch(T, nmax - 1, ATTN_BQ, nth));
#undef CARVE
    return off;
}

size_t hass_trainer_bytes(const hass_draft_config *cfg, int64_t B_max, int64_t T_max,
                          int n_align_max, int n_threads) {
    hass_draft_layout L;
    hass_draft_layout_init(&L, cfg);
    hass_trainer_work w;
    return 4 * L.total * sizeof(float) +
           work_carve(&w, NULL, cfg, B_max, T_max, n_align_max, n_threads);
}

hass_trainer *hass_trainer_create(const hass_draft_config *cfg, const float *embed,
                                  const float *lm_head, int64_t B_max, int64_t T_max,
                                  int n_align_max, uint64_t seed, hass_pool *pool, hass_err *err) {
    if (hass_draft_config_check(cfg, err) != HASS_OK)
        return NULL;
    if (B_max <= 0 || T_max <= 0 || B_max * T_max > ((int64_t)1 << 24) || n_align_max < 1 ||
        n_align_max > HASS_TRAIN_MAX_ALIGN || !embed || !lm_head) {
        hass_err_set(err, HASS_STATUS_ARG, "trainer: bad capacity B=%lld T=%lld n=%d",
                     (long long)B_max, (long long)T_max, n_align_max);
        return NULL;
    }
    hass_trainer *tr = calloc(1, sizeof *tr);
    hass_trainer_work *w = calloc(1, sizeof *w);
    if (!tr || !w) {
        free(tr), free(w);
        hass_err_set(err, HASS_STATUS_OOM, "trainer: out of memory");
        return NULL;
    }
    tr->work = w;
    tr->cfg = *cfg;
    hass_draft_layout_init(&tr->layout, cfg);
    size_t tot = tr->layout.total;
    tr->block = hass_aligned_alloc(4 * tot * sizeof(float));
    size_t wbytes = work_carve(w, NULL, cfg, B_max, T_max, n_align_max, hass_pool_size(pool));
    if (!tr->block || hass_arena_init(&w->arena, wbytes, err) != HASS_OK) {
        hass_trainer_destroy(tr);
        hass_err_set(err, HASS_STATUS_OOM, "trainer: cannot allocate %zu + %zu bytes",
                     4 * tot * sizeof(float), wbytes);
        return NULL;
    }
    work_carve(w, w->arena.base, cfg, B_max, T_max, n_align_max, hass_pool_size(pool));
    w->arena.used = wbytes;
    tr->params = tr->block;
    tr->grads = tr->block + tot;
    tr->adam_m = tr->block + 2 * tot;
    tr->adam_v = tr->block + 3 * tot;
    tr->adamw = hass_adamw_default();
    tr->embed = embed, tr->lm_head = lm_head;
    tr->B_max = B_max, tr->T_max = T_max, tr->n_align_max = n_align_max;
    tr->pool = pool;
    hass_draft_params_init(tr->params, &tr->layout, cfg, seed);
    float inv_freq[HASS_ROPE_MAX_HALF];
    hass_rope_freqs(&cfg->rope, cfg->d / cfg->H, inv_freq);
    hass_train_rope_table(w->rope_cos, w->rope_sin, T_max, cfg->d / cfg->H, inv_freq);
    return tr;
}

void hass_trainer_destroy(hass_trainer *tr) {
    if (!tr)
        return;
    if (tr->work)
        hass_arena_free(&tr->work->arena);
    free(tr->work);
    hass_aligned_free(tr->block);
    free(tr);
}

/* ------------------------------------------------------------------------------------------ */
/* the step                                                                                    */

static void zerof(float *p, int64_t n) {
    memset(p, 0, (size_t)n * sizeof(float));
}

/* Shapes, alignment steps and tokens: what a forward needs. */
static hass_status check_inputs(const hass_trainer *tr, const hass_train_batch *b, int n_align,
                                hass_err *err) {
    if (b->B < 1 || b->T < 1 || b->B > tr->B_max || b->T > tr->T_max)
        return hass_err_set(err, HASS_STATUS_ARG, "batch %lldx%lld exceeds the trainer's %lldx%lld",
                            (long long)b->B, (long long)b->T, (long long)tr->B_max,
                            (long long)tr->T_max);
    if (n_align < 1 || n_align > tr->n_align_max)
        return hass_err_set(err, HASS_STATUS_ARG, "n_align %d outside [1, %d]", n_align,
                            tr->n_align_max);
    if (!b->feat || !b->tok)
        return hass_err_set(err, HASS_STATUS_ARG, "batch: NULL tensor");
    for (int64_t r = 0; r < b->B * b->T; r++)
        if (b->tok[r] < 0 || b->tok[r] >= tr->cfg.V)
            return hass_err_set(err, HASS_STATUS_ARG, "token %d at row %lld outside [0, %lld)",
                                b->tok[r], (long long)r, (long long)tr->cfg.V);
    return HASS_OK;
}

static hass_status check_batch(const hass_trainer *tr, const hass_train_batch *b,
                               const hass_train_opts *o, hass_err *err) {
    hass_status s = check_inputs(tr, b, o->n_align, err);
    if (s != HASS_OK)
        return s;
    if (o->w_topk != 0.0f && (o->topk < 1 || o->topk > HASS_TRAIN_MAX_TOPK || o->topk > tr->cfg.V))
        return hass_err_set(err, HASS_STATUS_ARG, "topk %d out of range", o->topk);
    if (!b->tgt || !b->mask)
        return hass_err_set(err, HASS_STATUS_ARG, "batch: NULL tensor");
    for (int64_t r = 0; r < b->B * b->T; r++)
        if (!(b->mask[r] >= 0.0f) || !(b->mask[r] < 1e30f))
            return hass_err_set(err, HASS_STATUS_ARG,
                                "loss mask at row %lld is negative or not finite", (long long)r);
    return HASS_OK;
}

/* U_k rows: [Emb(tok) ; s] with s = feat (k == 0) or the shifted previous output. */
static void build_stream(float *U, const float *E, const float *feat, const float *Hprev, int64_t B,
                         int64_t T, int64_t d) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++) {
            int64_t r = b * T + i;
            float *u = U + r * 2 * d;
            memcpy(u, E + r * d, (size_t)d * sizeof(float));
            const float *s = !Hprev   ? feat + r * d         /* stream 0: F */
                             : i == 0 ? feat + b * T * d     /* f_0 stays */
                                      : Hprev + (r - 1) * d; /* h_{i-1} */
            memcpy(u + d, s, (size_t)d * sizeof(float));
        }
}

/* Forward of alignment step j: stream j's X, K, V, then the query/residual path through the
 * layer to the draft outputs w->Hs (N, d). */
static void step_forward(hass_trainer *tr, const hass_train_batch *bt, int j) {
    const hass_draft_config *c = &tr->cfg;
    hass_trainer_work *w = tr->work;
    const float *P_ = tr->params;
    const size_t *off = tr->layout.off;
    int64_t B = bt->B, T = bt->T, N = B * T, d = c->d, H = c->H, Hkv = c->Hkv, Dh = d / H;
    int64_t qd = d, kvd = Hkv * Dh, f = c->ffn;
    float *X = w->X + j * N * d;
    const float *ks[HASS_TRAIN_MAX_ALIGN], *vs[HASS_TRAIN_MAX_ALIGN];
    for (int s = 0; s <= j; s++)
        ks[s] = w->K + s * N * kvd, vs[s] = w->Vv + s * N * kvd;
    // stream j: X_j = FC(U_j), K_j = rope(X_j Wk^T), V_j = X_j Wv^T
    hass_train_linear_forward(X, w->U + j * N * 2 * d, P_ + off[HASS_DP_FC_W],
                              c->has_bias ? P_ + off[HASS_DP_FC_B] : NULL, N, 2 * d, d);
    hass_train_linear_forward((float *)ks[j], X, P_ + off[HASS_DP_K], NULL, N, d, kvd);
    hass_train_rope_forward((float *)ks[j], N, T, Hkv, Dh, w->rope_cos, w->rope_sin, c->rope_style);
    hass_train_linear_forward((float *)vs[j], X, P_ + off[HASS_DP_V], NULL, N, d, kvd);
    // query / residual stream j
    hass_train_linear_forward(w->Q, X, P_ + off[HASS_DP_Q], NULL, N, d, qd);
    hass_train_rope_forward(w->Q, N, T, H, Dh, w->rope_cos, w->rope_sin, c->rope_style);
    hass_train_attn_align_forward(tr->pool, w->O, w->lse, w->Q, ks, vs, B, T, j, H, Hkv, Dh,
                                  ATTN_BQ, w->attn);
    hass_train_linear_forward(w->R, w->O, P_ + off[HASS_DP_O], NULL, N, qd, d);
    hass_train_residual_forward(w->R, w->R, X, N * d);
    hass_train_rmsnorm_forward(w->Z, w->rstd, w->R, P_ + off[HASS_DP_NORM], N, d, c->rms_eps);
    hass_train_linear_forward(w->G, w->Z, P_ + off[HASS_DP_GATE], NULL, N, d, f);
    hass_train_linear_forward(w->Up, w->Z, P_ + off[HASS_DP_UP], NULL, N, d, f);
    hass_train_silu_mul_forward(w->Mx, w->G, w->Up, N * f);
    hass_train_linear_forward(w->Hs, w->Mx, P_ + off[HASS_DP_DOWN], NULL, N, f, d);
    hass_train_residual_forward(w->Hs, w->Hs, w->R, N * d);
}

/* Losses and backward of alignment step j (after step_forward); fills the step's stats. */
static void step_backward(hass_trainer *tr, const hass_train_batch *bt, const hass_train_opts *o,
                          int j, int64_t Nm, hass_train_stats *st) {
    const hass_draft_config *c = &tr->cfg;
    hass_trainer_work *w = tr->work;
    const float *P_ = tr->params;
    float *G_ = tr->grads;
    const size_t *off = tr->layout.off;
    int64_t B = bt->B, T = bt->T, N = B * T, d = c->d, H = c->H, Hkv = c->Hkv, Dh = d / H;
    int64_t qd = d, kvd = Hkv * Dh, f = c->ffn, V = c->V;
    float *X = w->X + j * N * d, *dX = w->dX + j * N * d;
    const float *ks[HASS_TRAIN_MAX_ALIGN], *vs[HASS_TRAIN_MAX_ALIGN];
    float *dks[HASS_TRAIN_MAX_ALIGN], *dvs[HASS_TRAIN_MAX_ALIGN];
    for (int s = 0; s <= j; s++) {
        ks[s] = w->K + s * N * kvd, vs[s] = w->Vv + s * N * kvd;
        dks[s] = w->dK + s * N * kvd, dvs[s] = w->dV + s * N * kvd;
    }
    zerof(dX, N * d), zerof(dks[j], N * kvd), zerof(dvs[j], N * kvd);

    // ---- losses: dH = w_fea dFea/dH + W_h^T dlogits (LM head on the masked rows only) ----
    zerof(w->dH, N * d);
    double fea = hass_train_smoothl1_loss(w->dH, w->Hs, bt->tgt, bt->mask, N, d, o->w_fea);
    double soft = 0.0, topk = 0.0;
    int K = o->w_topk != 0.0f ? o->topk : 0;
    if (Nm > 0) {
        for (int64_t i = 0; i < Nm; i++)
            memcpy(w->Hc + i * d, w->Hs + (int64_t)w->rows[i] * d, (size_t)d * sizeof(float));
        hass_train_linear_forward(w->logits, w->Hc, tr->lm_head, NULL, Nm, d, V);
        hass_train_distill_loss(tr->pool, w->logits, w->logits, w->P, w->topk, w->mc, Nm, V, K,
                                o->w_soft, o->w_topk, &soft, &topk, w->amax);
        zerof(w->dHc, Nm * d);
        hass_train_linear_backward(w->dHc, NULL, NULL, w->logits, w->Hc, tr->lm_head, Nm, d, V);
        for (int64_t i = 0; i < Nm; i++)
            hass_train_residual_backward(w->dH + (int64_t)w->rows[i] * d, NULL, w->dHc + i * d, d);
    }
    if (st) {
        int64_t hit = 0, cnt = Nm;
        for (int64_t i = 0; i < Nm; i++)
            hit += w->amax[i] == w->tgt_amax[i];
        st->loss_fea[j] = fea, st->loss_soft[j] = soft, st->loss_topk[j] = topk;
        st->loss[j] = o->w_fea * fea + o->w_soft * soft + o->w_topk * topk;
        st->top1[j] = cnt ? (double)hit / (double)cnt : 0.0;
    }

    // ---- backward ----
    memcpy(w->dR, w->dH, (size_t)(N * d) * sizeof(float)); // h = r + mlp
    zerof(w->dMx, N * f);
    hass_train_linear_backward(w->dMx, G_ + off[HASS_DP_DOWN], NULL, w->dH, w->Mx,
                               P_ + off[HASS_DP_DOWN], N, f, d);
    zerof(w->dG, N * f), zerof(w->dUp, N * f);
    hass_train_silu_mul_backward(w->dG, w->dUp, w->dMx, w->G, w->Up, N * f);
    zerof(w->dZ, N * d);
    hass_train_linear_backward(w->dZ, G_ + off[HASS_DP_GATE], NULL, w->dG, w->Z,
                               P_ + off[HASS_DP_GATE], N, d, f);
    hass_train_linear_backward(w->dZ, G_ + off[HASS_DP_UP], NULL, w->dUp, w->Z,
                               P_ + off[HASS_DP_UP], N, d, f);
    hass_train_rmsnorm_backward(w->dR, G_ + off[HASS_DP_NORM], w->dZ, w->R, P_ + off[HASS_DP_NORM],
                                w->rstd, N, d);
    hass_train_residual_backward(dX, NULL, w->dR, N * d); // r = x + attn
    zerof(w->dO, N * qd);
    hass_train_linear_backward(w->dO, G_ + off[HASS_DP_O], NULL, w->dR, w->O, P_ + off[HASS_DP_O],
                               N, qd, d);
    zerof(w->dQ, N * qd);
    hass_train_attn_align_backward(tr->pool, w->dQ, dks, dvs, w->dO, w->O, w->lse, w->Q, ks, vs, B,
                                   T, j, H, Hkv, Dh, ATTN_BQ, w->attn);
    hass_train_rope_backward(w->dQ, N, T, H, Dh, w->rope_cos, w->rope_sin, c->rope_style);
    hass_train_linear_backward(dX, G_ + off[HASS_DP_Q], NULL, w->dQ, X, P_ + off[HASS_DP_Q], N, d,
                               qd);
}

/* E = Emb(TOK) and stream 0's FC inputs U_0 = [E ; F]. */
static void first_stream(hass_trainer *tr, const hass_train_batch *bt) {
    hass_trainer_work *w = tr->work;
    int64_t N = bt->B * bt->T, d = tr->cfg.d;
    for (int64_t r = 0; r < N; r++)
        memcpy(w->E + r * d, tr->embed + (int64_t)bt->tok[r] * d, (size_t)d * sizeof(float));
    build_stream(w->U, w->E, bt->feat, NULL, bt->B, bt->T, d);
}

hass_status hass_train_grad(hass_trainer *tr, const hass_train_batch *bt, const hass_train_opts *o,
                            hass_train_stats *st, hass_err *err) {
    hass_status s = check_batch(tr, bt, o, err);
    if (s != HASS_OK)
        return s;
    const hass_draft_config *c = &tr->cfg;
    hass_trainer_work *w = tr->work;
    const float *P_ = tr->params;
    float *G_ = tr->grads;
    const size_t *off = tr->layout.off;
    int64_t B = bt->B, T = bt->T, N = B * T, d = c->d, Dh = d / c->H, kvd = c->Hkv * Dh;
    int n = o->n_align;
    int64_t K = o->w_topk != 0.0f ? o->topk : 0;

    memset(tr->grads, 0, tr->layout.total * sizeof(float));
    if (st) {
        memset(st, 0, sizeof *st);
        st->n_align = n;
        for (int64_t r = 0; r < N; r++)
            st->mask_sum += bt->mask[r];
    }
    // target distributions p_i = softmax(W_h f_{i+1}) of the masked rows, their top-K (rows of
    // stride K) and argmax; Hc holds the gathered targets meanwhile
    int64_t Nm = 0;
    for (int64_t r = 0; r < N; r++)
        if (bt->mask[r] != 0.0f) {
            w->rows[Nm] = (int32_t)r, w->mc[Nm] = bt->mask[r];
            memcpy(w->Hc + Nm * d, bt->tgt + r * d, (size_t)d * sizeof(float));
            Nm++;
        }
    if (Nm > 0) {
        hass_train_linear_forward(w->P, w->Hc, tr->lm_head, NULL, Nm, d, c->V);
        hass_train_softmax_rows(tr->pool, w->P, Nm, c->V);
        hass_train_topk_rows(tr->pool, w->topk, w->tgt_amax, w->P, Nm, c->V, K);
    }
    first_stream(tr, bt);
    for (int j = 0; j < n; j++) {
        step_forward(tr, bt, j);
        // the next stream, detached: S^(j+1)[b,0] = f_0, S^(j+1)[b,i] = h^(j)[b,i-1]
        if (j + 1 < n)
            build_stream(w->U + (j + 1) * N * 2 * d, w->E, bt->feat, w->Hs, B, T, d);
        step_backward(tr, bt, o, j, Nm, st);
    }

    // streams 0..n-1 are contiguous: (n*N) rows through the k/v projections and the FC at once
    int64_t NN = n * N;
    hass_train_rope_backward(w->dK, NN, T, c->Hkv, Dh, w->rope_cos, w->rope_sin, c->rope_style);
    hass_train_linear_backward(w->dX, G_ + off[HASS_DP_K], NULL, w->dK, w->X, P_ + off[HASS_DP_K],
                               NN, d, kvd);
    hass_train_linear_backward(w->dX, G_ + off[HASS_DP_V], NULL, w->dV, w->X, P_ + off[HASS_DP_V],
                               NN, d, kvd);
    hass_train_linear_backward(NULL, G_ + off[HASS_DP_FC_W],
                               c->has_bias ? G_ + off[HASS_DP_FC_B] : NULL, w->dX, w->U,
                               P_ + off[HASS_DP_FC_W], NN, 2 * d, d);
    if (st) {
        for (int j = 0; j < n; j++)
            st->loss_mean += st->loss[j];
        st->loss_mean /= n;
    }
    return HASS_OK;
}

hass_status hass_train_forward(hass_trainer *tr, const hass_train_batch *bt, int n_align, float *h,
                               hass_err *err) {
    hass_status s = check_inputs(tr, bt, n_align, err);
    if (s != HASS_OK)
        return s;
    hass_trainer_work *w = tr->work;
    int64_t N = bt->B * bt->T, d = tr->cfg.d;
    first_stream(tr, bt);
    for (int j = 0; j < n_align; j++) {
        step_forward(tr, bt, j);
        memcpy(h + j * N * d, w->Hs, (size_t)(N * d) * sizeof(float));
        if (j + 1 < n_align)
            build_stream(w->U + (j + 1) * N * 2 * d, w->E, bt->feat, w->Hs, bt->B, bt->T, d);
    }
    return HASS_OK;
}

hass_status hass_train_step(hass_trainer *tr, const hass_train_batch *batch,
                            const hass_train_opts *opts, float lr, hass_train_stats *st,
                            hass_err *err) {
    hass_status s = hass_train_grad(tr, batch, opts, st, err);
    if (s != HASS_OK)
        return s;
    tr->adam_t++;
    hass_adamw_update(tr->params, tr->grads, tr->adam_m, tr->adam_v, tr->layout.total, lr,
                      tr->adam_t, &tr->adamw);
    return HASS_OK;
}

/* See train.h. Products count 2*m*n*k; attention counts exactly the keys the alignment mask lets
 * through; the frozen FC input and LM-head weights get no gradient. */
double hass_train_step_flops(const hass_draft_config *c, int64_t B, int64_t T, int64_t Nmask,
                             int n) {
    double N = (double)(B * T), Nm = (double)Nmask, d = (double)c->d, V = (double)c->V;
    double f = (double)c->ffn, Dh = d / (double)c->H, kvd = (double)c->Hkv * Dh;
    double fl = 2 * Nm * d * V;
    double fc = 2 * N * 2 * d * d, kv = 2 * 2 * N * d * kvd;
    fl += n * (fc + kv + fc + 2 * kv);
    for (int j = 0; j < n; j++) {
        double lin = 2 * N * d * d * 2 + 3 * 2 * N * d * f;
        double keys = 0;
        for (int64_t i = 0; i < T; i++) {
            int64_t n0 = i - j + 1 > 0 ? i - j + 1 : 0, kf = j - i > 1 ? j - i : 1;
            keys += (double)n0 + (double)(j >= kf ? j - kf + 1 : 0);
        }
        keys *= (double)(B * c->H);
        fl += lin + 2 * Nm * d * V + 4 * Dh * keys;
        fl += 2 * lin + 2 * Nm * d * V + 10 * Dh * keys;
    }
    return fl;
}
