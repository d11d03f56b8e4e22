/*
 * pretrain.c — the whole-model trainer of pretrain.h: layout, init, forward/backward of every
 * layer (draft_grad.h ops), the fused next-token cross-entropy, gradient-norm clipping and
 * AdamW with decay on matrices only.
 */
#include "train/pretrain.h"
#include "train/draft_grad.h"
#include "train/gemm.h"
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ATTN_BQ 128

hass_status hass_lm_config_check(const hass_lm_config *c, hass_err *err) {
    if (c->d <= 0 || c->n_layers <= 0 || c->H <= 0 || c->Hkv <= 0 || c->ffn <= 0 || c->V <= 1 ||
        c->ctx <= 1)
        return hass_err_set(err, HASS_STATUS_ARG, "model config: non-positive shape");
    if (c->d % c->H != 0 || c->H % c->Hkv != 0 || (c->d / c->H) % 2 != 0)
        return hass_err_set(err, HASS_STATUS_ARG,
                            "model config: need d %% heads == 0, heads %% kv_heads == 0 and an "
                            "even head dim (d=%lld heads=%lld kv_heads=%lld)",
                            (long long)c->d, (long long)c->H, (long long)c->Hkv);
    if (c->d > 16384 || c->ffn > 65536 || c->V > (1 << 24) || c->n_layers > 256 || c->ctx > 65536 ||
        c->d / c->H > 2 * HASS_ROPE_MAX_HALF)
        return hass_err_set(err, HASS_STATUS_ARG, "model config: shape too large");
    if (!(c->rms_eps > 0.0f) || !(c->rope_theta > 0.0f))
        return hass_err_set(err, HASS_STATUS_ARG, "model config: rms_eps and rope_theta > 0");
    return HASS_OK;
}

size_t hass_lm_n_params(const hass_lm_config *c) {
    size_t d = (size_t)c->d, Dh = d / (size_t)c->H, qd = (size_t)c->H * Dh,
           kvd = (size_t)c->Hkv * Dh, f = (size_t)c->ffn;
    size_t layer = 2 * d + qd * d + 2 * kvd * d + d * qd + 3 * f * d;
    return (size_t)c->V * d * (c->tie ? 1 : 2) + d + (size_t)c->n_layers * layer;
}

static void add_tensor(hass_lm_layout *L, const char *name, int64_t r, int64_t cols, int decay) {
    hass_lm_tensor *t = &L->t[L->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->shape[0] = r, t->shape[1] = cols;
    t->numel = (size_t)r * (size_t)(cols ? cols : 1);
    t->off = L->total;
    t->decay = decay;
    L->total += (t->numel + 15) & ~(size_t)15;
    L->n_param += t->numel;
}

hass_status hass_lm_layout_init(hass_lm_layout *L, const hass_lm_config *c, hass_err *err) {
    memset(L, 0, sizeof *L);
    if (hass_lm_config_check(c, err) != HASS_OK)
        return err ? err->code : HASS_STATUS_ARG;
    int64_t d = c->d, Dh = d / c->H, qd = c->H * Dh, kvd = c->Hkv * Dh, f = c->ffn;
    L->t = calloc((size_t)(3 + HASS_LW_COUNT * c->n_layers), sizeof *L->t);
    if (!L->t)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    static const char *const sfx[HASS_LW_COUNT] = {
        "input_layernorm.weight",          "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",         "self_attn.o_proj.weight",
        "post_attention_layernorm.weight", "mlp.gate_proj.weight",    "mlp.up_proj.weight",
        "mlp.down_proj.weight"};
    const int64_t shp[HASS_LW_COUNT][2] = {{d, 0},   {qd, d}, {kvd, d}, {kvd, d}, {d, qd},
                                           {d, 0},   {f, d},  {f, d},   {d, f}};
    L->emb = L->n;
    add_tensor(L, "model.embed_tokens.weight", c->V, d, 1);
    L->layer0 = L->n;
    char name[64];
    for (int64_t l = 0; l < c->n_layers; l++)
        for (int k = 0; k < HASS_LW_COUNT; k++) {
            snprintf(name, sizeof name, "model.layers.%lld.%s", (long long)l, sfx[k]);
            add_tensor(L, name, shp[k][0], shp[k][1], shp[k][1] != 0);
        }
    L->norm = L->n;
    add_tensor(L, "model.norm.weight", d, 0, 0);
    L->head = L->emb;
    if (!c->tie) {
        L->head = L->n;
        add_tensor(L, "lm_head.weight", c->V, d, 1);
    }
    return HASS_OK;
}

void hass_lm_layout_free(hass_lm_layout *L) {
    free(L->t);
    memset(L, 0, sizeof *L);
}

void hass_lm_params_init(float *params, const hass_lm_layout *L, const hass_lm_config *c,
                         uint64_t seed) {
    hass_rng rng;
    hass_rng_seed(&rng, seed);
    memset(params, 0, L->total * sizeof(float));
    float res = 0.02f / sqrtf(2.0f * (float)c->n_layers);
    for (int i = 0; i < L->n; i++) {
        const hass_lm_tensor *t = &L->t[i];
        float *w = params + t->off;
        if (t->shape[1] == 0) {
            for (size_t k = 0; k < t->numel; k++)
                w[k] = 1.0f;
            continue;
        }
        int kind = i >= L->layer0 && i < L->norm ? (i - L->layer0) % HASS_LW_COUNT : -1;
        float sd = kind == HASS_LW_O || kind == HASS_LW_DOWN ? res : 0.02f;
        for (size_t k = 0; k < t->numel; k++)
            w[k] = sd * hass_rng_normal(&rng);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* work buffers                                                                                */

typedef struct {
    float *X;                  /* (N, d) layer input (residual stream) */
    float *Z1, *rstd1;         /* (N, d), (N) */
    float *Q, *K, *V, *O, *lse; /* (N, qd), (N, kvd) x2, (N, qd), (N, H) */
    float *R;                  /* (N, d) after attention */
    float *Z2, *rstd2;         /* (N, d), (N) */
    float *G, *U, *M;          /* (N, f) */
} layer_acts;

struct hass_lm_work {
    layer_acts *la;         /* n_layers */
    float *Xf;              /* (N, d) output of the last layer */
    float *XN, *rstdF;      /* (N, d), (N) after the final norm */
    float *logits;          /* (N, V), then dlogits */
    int32_t *tgt;           /* (N) */
    float *dX, *dR, *dZ, *dXN; /* (N, d) */
    float *dO, *dQ, *dK, *dV;  /* (N, qd), (N, qd), (N, kvd) x2 */
    float *dG, *dU, *dM;       /* (N, f) */
    float *rope_cos, *rope_sin; /* (T, Dh/2) */
    float *attn;                /* attention scratch */
    double *row_loss;           /* (N) */
    hass_arena arena;
};

static size_t work_carve(hass_lm_work *w, uint8_t *base, const hass_lm_config *c, int64_t B,
                         int nth) {
    size_t off = 0;
    int64_t N = B * c->ctx, d = c->d, Dh = d / c->H, qd = c->H * Dh, kvd = c->Hkv * Dh,
            f = c->ffn;
#define CARVE(ptr, count, esz)                                                                     \
    do {                                                                                           \
        size_t bytes_ = ((size_t)(count) * (esz) + 63) & ~(size_t)63;                             \
        if (base)                                                                                  \
            *(void **)&(ptr) = base + off;                                                         \
        off += bytes_;                                                                             \
    } while (0)
    for (int64_t l = 0; l < c->n_layers; l++) {
        layer_acts tmp, *a = base ? &w->la[l] : &tmp;
        CARVE(a->X, N * d, 4);
        CARVE(a->Z1, N * d, 4);
        CARVE(a->rstd1, N, 4);
        CARVE(a->Q, N * qd, 4);
        CARVE(a->K, N * kvd, 4);
        CARVE(a->V, N * kvd, 4);
        CARVE(a->O, N * qd, 4);
        CARVE(a->lse, N * c->H, 4);
        CARVE(a->R, N * d, 4);
        CARVE(a->Z2, N * d, 4);
        CARVE(a->rstd2, N, 4);
        CARVE(a->G, N * f, 4);
        CARVE(a->U, N * f, 4);
        CARVE(a->M, N * f, 4);
    }
    CARVE(w->Xf, N * d, 4);
    CARVE(w->XN, N * d, 4);
    CARVE(w->rstdF, N, 4);
    CARVE(w->logits, N * c->V, 4);
    CARVE(w->tgt, N, 4);
    CARVE(w->dX, N * d, 4);
    CARVE(w->dR, N * d, 4);
    CARVE(w->dZ, N * d, 4);
    CARVE(w->dXN, N * d, 4);
    CARVE(w->dO, N * qd, 4);
    CARVE(w->dQ, N * qd, 4);
    CARVE(w->dK, N * kvd, 4);
    CARVE(w->dV, N * kvd, 4);
    CARVE(w->dG, N * f, 4);
    CARVE(w->dU, N * f, 4);
    CARVE(w->dM, N * f, 4);
    CARVE(w->rope_cos, c->ctx * Dh / 2, 4);
    CARVE(w->rope_sin, c->ctx * Dh / 2, 4);
    CARVE(w->attn, hass_train_attn_align_scratch(c->ctx, 0, ATTN_BQ, nth), 4);
    CARVE(w->row_loss, N, 8);
#undef CARVE
    return off;
}

size_t hass_lm_trainer_bytes(const hass_lm_config *cfg, int64_t B_max, int n_threads) {
    hass_lm_layout L;
    if (hass_lm_layout_init(&L, cfg, NULL) != HASS_OK)
        return 0;
    size_t p = 4 * L.total * sizeof(float);
    hass_lm_layout_free(&L);
    hass_lm_work w;
    return p + work_carve(&w, NULL, cfg, B_max, n_threads);
}

hass_lm_trainer *hass_lm_trainer_create(const hass_lm_config *cfg, int64_t B_max, uint64_t seed,
                                        hass_pool *pool, hass_err *err) {
    if (hass_lm_config_check(cfg, err) != HASS_OK)
        return NULL;
    if (B_max < 1 || B_max * cfg->ctx > ((int64_t)1 << 24)) {
        hass_err_set(err, HASS_STATUS_ARG, "trainer: bad batch capacity %lld x %lld",
                     (long long)B_max, (long long)cfg->ctx);
        return NULL;
    }
    hass_lm_trainer *tr = calloc(1, sizeof *tr);
    hass_lm_work *w = tr ? calloc(1, sizeof *w) : NULL;
    layer_acts *la = w ? calloc((size_t)cfg->n_layers, sizeof *la) : NULL;
    if (!la) {
        free(w), free(tr);
        hass_err_set(err, HASS_STATUS_OOM, "trainer: out of memory");
        return NULL;
    }
    tr->work = w, w->la = la;
    tr->cfg = *cfg;
    if (hass_lm_layout_init(&tr->layout, cfg, err) != HASS_OK) {
        hass_lm_trainer_destroy(tr);
        return NULL;
    }
    size_t tot = tr->layout.total;
    int nth = hass_pool_size(pool);
    size_t wbytes = work_carve(w, NULL, cfg, B_max, nth);
    tr->block = hass_aligned_alloc(4 * tot * sizeof(float));
    if (!tr->block || hass_arena_init(&w->arena, wbytes, err) != HASS_OK) {
        hass_err_set(err, HASS_STATUS_OOM, "trainer: cannot allocate %zu + %zu bytes",
                     4 * tot * sizeof(float), wbytes);
        hass_lm_trainer_destroy(tr);
        return NULL;
    }
    work_carve(w, w->arena.base, cfg, B_max, nth);
    w->arena.used = wbytes;
    tr->params = tr->block;
    tr->grads = tr->block + tot;
    tr->adam_m = tr->block + 2 * tot;
    tr->adam_v = tr->block + 3 * tot;
    tr->B_max = B_max;
    tr->pool = pool;
    hass_lm_params_init(tr->params, &tr->layout, cfg, seed);
    float inv_freq[HASS_ROPE_MAX_HALF]; /* the frequencies inference computes for the export */
    hass_rope_params rp = hass_rope_plain(cfg->rope_theta);
    hass_rope_freqs(&rp, cfg->d / cfg->H, inv_freq);
    hass_train_rope_table(w->rope_cos, w->rope_sin, cfg->ctx, cfg->d / cfg->H, inv_freq);
    return tr;
}

void hass_lm_trainer_destroy(hass_lm_trainer *tr) {
    if (!tr)
        return;
    if (tr->work) {
        hass_arena_free(&tr->work->arena);
        free(tr->work->la);
        free(tr->work);
    }
    hass_lm_layout_free(&tr->layout);
    hass_aligned_free(tr->block);
    free(tr);
}

/* ------------------------------------------------------------------------------------------ */
/* loss                                                                                        */

typedef struct {
    float *x;          /* (N, V) logits -> dlogits */
    const int32_t *y;  /* (N) */
    double *loss;      /* (N) */
    int64_t N, V;
    float gscale;
    int grad;
} ce_ctx;

/* Per row: loss = logsumexp(x) - x[y]; dx = gscale * (softmax(x) - onehot(y)) when grad. */
static void ce_task(void *vc, int ith, int nth) {
    ce_ctx *c = vc;
    int64_t lo, hi;
    hass_split(c->N, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        float *x = c->x + r * c->V;
        int32_t y = c->y[r];
        if (y < 0) {
            c->loss[r] = 0.0;
            if (c->grad)
                memset(x, 0, (size_t)c->V * sizeof(float));
            continue;
        }
        float mx = x[0];
        for (int64_t v = 1; v < c->V; v++)
            mx = x[v] > mx ? x[v] : mx;
        float xy = x[y];
        if (!c->grad) {
            double s = 0.0;
            for (int64_t v = 0; v < c->V; v++)
                s += exp((double)(x[v] - mx));
            c->loss[r] = log(s) + (double)(mx - xy);
            continue;
        }
        for (int64_t v = 0; v < c->V; v++)
            x[v] -= mx;
        hass_exp_inplace(x, c->V);
        double s = 0.0;
        for (int64_t v = 0; v < c->V; v++)
            s += (double)x[v];
        c->loss[r] = log(s) + (double)(mx - xy);
        float k = (float)(c->gscale / s);
        for (int64_t v = 0; v < c->V; v++)
            x[v] *= k;
        x[y] -= c->gscale;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* forward / backward                                                                          */

typedef struct {
    float *dst;
    const float *src; /* NULL: zero */
    int64_t n;
} fill_ctx;

static void fill_task(void *vc, int ith, int nth) {
    const fill_ctx *c = vc;
    int64_t lo, hi;
    hass_split(c->n, ith, nth, &lo, &hi);
    if (c->src)
        memcpy(c->dst + lo, c->src + lo, (size_t)(hi - lo) * sizeof(float));
    else
        memset(c->dst + lo, 0, (size_t)(hi - lo) * sizeof(float));
}

/* dst = 0 or dst = src over n floats, split over the pool (memory-bound). */
static void fillf(hass_pool *pool, float *dst, const float *src, int64_t n) {
    fill_ctx c = {dst, src, n};
    hass_pool_run(n >= (1 << 16) ? pool : NULL, fill_task, &c);
}

/* dx = dy W, overwriting dx (dy: (N, out), W: (out, in)): the first input gradient of a buffer,
 * which then needs no zeroing. */
static void dx_set(float *dx, const float *dy, const float *W, int64_t N, int64_t in,
                   int64_t out) {
    hass_gemm(hass_gemm_get_default(), hass_gemm_default_pool(), 0, 0, N, in, out, 1.0f, dy, out,
              W, in, 0.0f, dx, in);
}

const float *hass_lm_logits(const hass_lm_trainer *tr) {
    return tr->work->logits;
}

static float *tensor(const hass_lm_trainer *tr, float *base, int64_t l, int k) {
    return base + tr->layout.t[tr->layout.layer0 + HASS_LW_COUNT * l + k].off;
}

static void layer_forward(hass_lm_trainer *tr, int64_t l, int64_t B, float *out) {
    const hass_lm_config *c = &tr->cfg;
    hass_lm_work *w = tr->work;
    layer_acts *a = &w->la[l];
    int64_t T = c->ctx, N = B * T, d = c->d, H = c->H, Hkv = c->Hkv, Dh = d / H, qd = H * Dh,
            kvd = Hkv * Dh, f = c->ffn;
#define P(k) tensor(tr, tr->params, l, k)
    hass_train_rmsnorm_forward(a->Z1, a->rstd1, a->X, P(HASS_LW_ATTN_NORM), N, d, c->rms_eps);
    hass_train_linear_forward(a->Q, a->Z1, P(HASS_LW_Q), NULL, N, d, qd);
    hass_train_linear_forward(a->K, a->Z1, P(HASS_LW_K), NULL, N, d, kvd);
    hass_train_linear_forward(a->V, a->Z1, P(HASS_LW_V), NULL, N, d, kvd);
    hass_train_rope_forward(a->Q, N, T, H, Dh, w->rope_cos, w->rope_sin, HASS_ROPE_HALF);
    hass_train_rope_forward(a->K, N, T, Hkv, Dh, w->rope_cos, w->rope_sin, HASS_ROPE_HALF);
    const float *ks[1] = {a->K}, *vs[1] = {a->V};
    hass_train_attn_align_forward(tr->pool, a->O, a->lse, a->Q, ks, vs, B, T, 0, H, Hkv, Dh,
                                  ATTN_BQ, w->attn);
    hass_train_linear_forward(a->R, a->O, P(HASS_LW_O), NULL, N, qd, d);
    hass_train_residual_forward(a->R, a->R, a->X, N * d);
    hass_train_rmsnorm_forward(a->Z2, a->rstd2, a->R, P(HASS_LW_FFN_NORM), N, d, c->rms_eps);
    hass_train_linear_forward(a->G, a->Z2, P(HASS_LW_GATE), NULL, N, d, f);
    hass_train_linear_forward(a->U, a->Z2, P(HASS_LW_UP), NULL, N, d, f);
    hass_train_silu_mul_forward(a->M, a->G, a->U, N * f);
    hass_train_linear_forward(out, a->M, P(HASS_LW_DOWN), NULL, N, f, d);
    hass_train_residual_forward(out, out, a->R, N * d);
#undef P
}

/* On entry w->dX holds dL/d(layer output); on exit dL/d(layer input). */
static void layer_backward(hass_lm_trainer *tr, int64_t l, int64_t B) {
    const hass_lm_config *c = &tr->cfg;
    hass_lm_work *w = tr->work;
    layer_acts *a = &w->la[l];
    int64_t T = c->ctx, N = B * T, d = c->d, H = c->H, Hkv = c->Hkv, Dh = d / H, qd = H * Dh,
            kvd = Hkv * Dh, f = c->ffn;
#define P(k) tensor(tr, tr->params, l, k)
#define G(k) tensor(tr, tr->grads, l, k)
    // y = r + mlp(z2): dR = dY (+ the norm's path below)
    fillf(tr->pool, w->dR, w->dX, N * d);
    hass_train_linear_backward(NULL, G(HASS_LW_DOWN), NULL, w->dX, a->M, P(HASS_LW_DOWN), N, f, d);
    dx_set(w->dM, w->dX, P(HASS_LW_DOWN), N, f, d);
    fillf(tr->pool, w->dG, NULL, N * f), fillf(tr->pool, w->dU, NULL, N * f);
    hass_train_silu_mul_backward(w->dG, w->dU, w->dM, a->G, a->U, N * f);
    dx_set(w->dZ, w->dG, P(HASS_LW_GATE), N, d, f);
    hass_train_linear_backward(NULL, G(HASS_LW_GATE), NULL, w->dG, a->Z2, P(HASS_LW_GATE), N, d, f);
    hass_train_linear_backward(w->dZ, G(HASS_LW_UP), NULL, w->dU, a->Z2, P(HASS_LW_UP), N, d, f);
    hass_train_rmsnorm_backward(w->dR, G(HASS_LW_FFN_NORM), w->dZ, a->R, P(HASS_LW_FFN_NORM),
                                a->rstd2, N, d);
    // r = x + attn: dX = dR (+ the input norm's path below)
    fillf(tr->pool, w->dX, w->dR, N * d);
    hass_train_linear_backward(NULL, G(HASS_LW_O), NULL, w->dR, a->O, P(HASS_LW_O), N, qd, d);
    dx_set(w->dO, w->dR, P(HASS_LW_O), N, qd, d);
    fillf(tr->pool, w->dQ, NULL, N * qd);
    fillf(tr->pool, w->dK, NULL, N * kvd), fillf(tr->pool, w->dV, NULL, N * kvd);
    const float *ks[1] = {a->K}, *vs[1] = {a->V};
    float *dks[1] = {w->dK}, *dvs[1] = {w->dV};
    hass_train_attn_align_backward(tr->pool, w->dQ, dks, dvs, w->dO, a->O, a->lse, a->Q, ks, vs, B,
                                   T, 0, H, Hkv, Dh, ATTN_BQ, w->attn);
    hass_train_rope_backward(w->dQ, N, T, H, Dh, w->rope_cos, w->rope_sin, HASS_ROPE_HALF);
    hass_train_rope_backward(w->dK, N, T, Hkv, Dh, w->rope_cos, w->rope_sin, HASS_ROPE_HALF);
    dx_set(w->dZ, w->dQ, P(HASS_LW_Q), N, d, qd);
    hass_train_linear_backward(NULL, G(HASS_LW_Q), NULL, w->dQ, a->Z1, P(HASS_LW_Q), N, d, qd);
    hass_train_linear_backward(w->dZ, G(HASS_LW_K), NULL, w->dK, a->Z1, P(HASS_LW_K), N, d, kvd);
    hass_train_linear_backward(w->dZ, G(HASS_LW_V), NULL, w->dV, a->Z1, P(HASS_LW_V), N, d, kvd);
    hass_train_rmsnorm_backward(w->dX, G(HASS_LW_ATTN_NORM), w->dZ, a->X, P(HASS_LW_ATTN_NORM),
                                a->rstd1, N, d);
#undef P
#undef G
}

double hass_lm_forward_backward(hass_lm_trainer *tr, const int32_t *tok, int64_t B, float gscale,
                                int grad, int64_t *count) {
    const hass_lm_config *c = &tr->cfg;
    hass_lm_work *w = tr->work;
    HASS_ASSERT(B >= 1 && B <= tr->B_max);
    int64_t T = c->ctx, N = B * T, d = c->d, V = c->V, Ls = c->n_layers;
    const hass_lm_layout *Ly = &tr->layout;
    const float *emb = tr->params + Ly->t[Ly->emb].off;
    const float *head = tr->params + Ly->t[Ly->head].off;
    const float *fnorm = tr->params + Ly->t[Ly->norm].off;

    // embedding
    int64_t n_tgt = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++) {
            int64_t r = b * T + i;
            int32_t x = tok[b * (T + 1) + i], y = tok[b * (T + 1) + i + 1];
            HASS_ASSERT(x >= 0 && x < V && y < V);
            memcpy(w->la[0].X + r * d, emb + (int64_t)x * d, (size_t)d * sizeof(float));
            w->tgt[r] = y;
            n_tgt += y >= 0;
        }
    for (int64_t l = 0; l < Ls; l++)
        layer_forward(tr, l, B, l + 1 < Ls ? w->la[l + 1].X : w->Xf);
    hass_train_rmsnorm_forward(w->XN, w->rstdF, w->Xf, fnorm, N, d, c->rms_eps);
    hass_train_linear_forward(w->logits, w->XN, head, NULL, N, d, V);
    ce_ctx cc = {w->logits, w->tgt, w->row_loss, N, V, gscale, grad};
    hass_pool_run(tr->pool, ce_task, &cc);
    double loss = 0.0;
    for (int64_t r = 0; r < N; r++)
        loss += w->row_loss[r];
    if (count)
        *count = n_tgt;
    if (!grad)
        return loss;

    // head and final norm
    float *g_head = tr->grads + Ly->t[Ly->head].off;
    hass_train_linear_backward(NULL, g_head, NULL, w->logits, w->XN, head, N, d, V);
    dx_set(w->dXN, w->logits, head, N, d, V);
    fillf(tr->pool, w->dX, NULL, N * d);
    hass_train_rmsnorm_backward(w->dX, tr->grads + Ly->t[Ly->norm].off, w->dXN, w->Xf, fnorm,
                                w->rstdF, N, d);
    for (int64_t l = Ls - 1; l >= 0; l--)
        layer_backward(tr, l, B);
    // embedding rows (serial: ids repeat)
    float *g_emb = tr->grads + Ly->t[Ly->emb].off;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < T; i++) {
            float *ge = g_emb + (int64_t)tok[b * (T + 1) + i] * d;
            const float *gx = w->dX + (b * T + i) * d;
            for (int64_t k = 0; k < d; k++)
                ge[k] += gx[k];
        }
    return loss;
}

/* ------------------------------------------------------------------------------------------ */
/* optimizer                                                                                   */

typedef struct {
    const float *g;
    size_t n;
    double part[64];
} norm_ctx;

static void norm_task(void *vc, int ith, int nth) {
    norm_ctx *c = vc;
    int64_t lo, hi;
    hass_split((int64_t)c->n, ith, nth, &lo, &hi);
    double s = 0.0;
    for (int64_t i = lo; i < hi; i++)
        s += (double)c->g[i] * c->g[i];
    c->part[ith] = s;
}

void hass_lm_zero_grads(hass_lm_trainer *tr) {
    fillf(tr->pool, tr->grads, NULL, (int64_t)tr->layout.total);
}

double hass_lm_grad_norm(const hass_lm_trainer *tr) {
    norm_ctx c = {tr->grads, tr->layout.total, {0}};
    hass_pool *pool = hass_pool_size(tr->pool) <= 64 ? tr->pool : NULL;
    hass_pool_run(pool, norm_task, &c);
    double s = 0.0; /* partial sums added in thread order */
    for (int t = 0; t < hass_pool_size(pool); t++)
        s += c.part[t];
    return sqrt(s);
}

void hass_lm_optimizer_step(hass_lm_trainer *tr, float lr, float wd, float clip, double norm) {
    if (clip > 0.0f && norm > clip) {
        float k = (float)(clip / norm);
        for (size_t i = 0; i < tr->layout.total; i++)
            tr->grads[i] *= k;
    }
    tr->adam_t++;
    hass_adamw_config ac = hass_adamw_default();
    ac.clip_value = 0.0f;
    for (int i = 0; i < tr->layout.n; i++) {
        const hass_lm_tensor *t = &tr->layout.t[i];
        ac.weight_decay = t->decay ? wd : 0.0f;
        hass_adamw_update(tr->params + t->off, tr->grads + t->off, tr->adam_m + t->off,
                          tr->adam_v + t->off, t->numel, lr, tr->adam_t, &ac);
    }
}

float hass_lr_cosine(int64_t step, int64_t warmup, int64_t total, float peak, float min_lr) {
    if (step < warmup)
        return peak * (float)step / (float)(warmup > 1 ? warmup : 1);
    double span = (double)(total - warmup > 1 ? total - warmup : 1);
    double p = (double)(step - warmup) / span;
    p = p < 0.0 ? 0.0 : (p > 1.0 ? 1.0 : p);
    return (float)(min_lr + (peak - min_lr) * 0.5 * (1.0 + cos(3.14159265358979323846 * p)));
}

double hass_lm_step_flops(const hass_lm_config *c, int64_t B) {
    double T = (double)c->ctx, N = (double)B * T, d = (double)c->d, Dh = d / (double)c->H;
    double qd = (double)c->H * Dh, kvd = (double)c->Hkv * Dh, f = (double)c->ffn;
    double lin = 2 * N * (d * qd + 2 * d * kvd + qd * d + 3 * d * f); /* per layer, forward */
    double keys = (double)B * (double)c->H * T * (T + 1) / 2;          /* causal */
    double layer = 3 * lin + (4 + 10) * Dh * keys; /* fwd + 2x bwd products; attention */
    double head = 3 * 2 * N * d * (double)c->V;
    return (double)c->n_layers * layer + head;
}
