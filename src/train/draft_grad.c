/*
 * draft_grad.c — forward/backward pairs of the draft-head ops (contract in draft_grad.h):
 * linear (OpenBLAS sgemm), RMSNorm, RoPE, SwiGLU gate, residual, the HASS context-alignment
 * mask and attention (HASS.md 5.2.2-5.2.3, proper -inf masking), the SmoothL1 feature loss and
 * the fused soft-CE + Top-K distillation loss (HASS.md 4, 5.1).
 * Every backward accumulates into its gradient buffers.
 */
#include "train/draft_grad.h"
#include "train/gemm.h"

#include "train/blas.h"
#include <float.h>
#include <stdatomic.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* linear                                                                                      */

void hass_train_linear_forward(float *y, const float *x, const float *W, const float *b, int64_t N,
                               int64_t in, int64_t out) {
    // y: (N, out) = x: (N, in) @ W^T: (in, out)
    hass_gemm(hass_gemm_get_default(), hass_gemm_default_pool(), 0, 1, N, out, in, 1.0f, x, in, W,
              in, 0.0f, y, out);
    if (b)
        for (int64_t r = 0; r < N; r++) {
            float *yr = y + r * out;
            for (int64_t o = 0; o < out; o++)
                yr[o] += b[o];
        }
}

void hass_train_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                                const float *W, int64_t N, int64_t in, int64_t out) {
    hass_gemm_kind k = hass_gemm_get_default();
    hass_pool *pool = hass_gemm_default_pool();
    if (dx) // dx: (N, in) += dy: (N, out) @ W: (out, in)
        hass_gemm(k, pool, 0, 0, N, in, out, 1.0f, dy, out, W, in, 1.0f, dx, in);
    if (dW) // dW: (out, in) += dy^T: (out, N) @ x: (N, in)
        hass_gemm(k, pool, 1, 0, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
    if (db)
        for (int64_t r = 0; r < N; r++) {
            const float *g = dy + r * out;
            for (int64_t o = 0; o < out; o++)
                db[o] += g[o];
        }
}

/* ------------------------------------------------------------------------------------------ */
/* elementwise work on the training pool (gemm.h's default pool; serial without one)           */

typedef void (*range_fn)(void *ctx, int64_t lo, int64_t hi, int ith);
typedef struct {
    range_fn fn;
    void *ctx;
    int64_t n;
} range_job;

static void range_task(void *vc, int ith, int nth) {
    range_job *j = vc;
    int64_t lo, hi;
    hass_split(j->n, ith, nth, &lo, &hi);
    if (hi > lo)
        j->fn(j->ctx, lo, hi, ith);
}

/* fn over [0, n) split in contiguous ranges, one per pool thread (serial when n < grain). */
static void par_range(int64_t n, int64_t grain, range_fn fn, void *ctx) {
    hass_pool *p = hass_gemm_default_pool();
    if (!p || hass_pool_size(p) < 2 || n < grain) {
        if (n > 0)
            fn(ctx, 0, n, 0);
        return;
    }
    range_job j = {fn, ctx, n};
    hass_pool_run(p, range_task, &j);
}

static int par_threads(int64_t n, int64_t grain) {
    hass_pool *p = hass_gemm_default_pool();
    return !p || n < grain ? 1 : hass_pool_size(p);
}

/* ------------------------------------------------------------------------------------------ */
/* RMSNorm                                                                                     */

typedef struct {
    float *y, *rstd, *dx, *dw_part;
    const float *x, *w, *dy;
    int64_t d;
    float eps;
} rms_ctx;

static void rms_fwd_range(void *vc, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    const rms_ctx *c = vc;
    int64_t d = c->d;
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = c->x + r * d;
        float *yr = c->y + r * d;
        float ss = 0.0f;
        for (int64_t i = 0; i < d; i++)
            ss += xr[i] * xr[i];
        float s = 1.0f / sqrtf(ss / (float)d + c->eps);
        c->rstd[r] = s;
        for (int64_t i = 0; i < d; i++)
            yr[i] = xr[i] * s * c->w[i];
    }
}

void hass_train_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int64_t N,
                                int64_t d, float eps) {
    rms_ctx c = {.y = y, .rstd = rstd, .x = x, .w = w, .d = d, .eps = eps};
    par_range(N, 64, rms_fwd_range, &c);
}

static void rms_bwd_range(void *vc, int64_t lo, int64_t hi, int ith) {
    const rms_ctx *c = vc;
    int64_t d = c->d;
    const float *w = c->w;
    float *dw = c->dw_part ? c->dw_part + ith * d : NULL;
    for (int64_t r = lo; r < hi; r++) {
        const float *xr = c->x + r * d, *g = c->dy + r * d;
        float s = c->rstd[r];
        if (c->dx) {
            // y = x*s*w, s = (mean x^2 + eps)^-1/2:  dx = s*w*g - x * s^3/d * sum(w*g*x)
            float dot = 0.0f;
            for (int64_t i = 0; i < d; i++)
                dot += w[i] * g[i] * xr[i];
            float cc = dot * s * s * s / (float)d;
            float *dxr = c->dx + r * d;
            for (int64_t i = 0; i < d; i++)
                dxr[i] += s * w[i] * g[i] - xr[i] * cc;
        }
        if (dw)
            for (int64_t i = 0; i < d; i++)
                dw[i] += g[i] * xr[i] * s;
    }
}

void hass_train_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x,
                                 const float *w, const float *rstd, int64_t N, int64_t d) {
    int nth = par_threads(N, 64);
    float *part = dw ? calloc((size_t)(nth * d), sizeof(float)) : NULL;
    HASS_ASSERT(!dw || part);
    rms_ctx c = {
        .dx = dx, .dw_part = part, .x = x, .w = w, .dy = dy, .rstd = (float *)rstd, .d = d};
    par_range(N, 64, rms_bwd_range, &c);
    for (int t = 0; part && t < nth; t++) /* per-thread partial sums, in thread order */
        for (int64_t i = 0; i < d; i++)
            dw[i] += part[t * d + i];
    free(part);
}

/* ------------------------------------------------------------------------------------------ */
/* RoPE                                                                                        */

void hass_train_rope_table(float *cos_t, float *sin_t, int64_t T, int64_t hd,
                           const float *inv_freq) {
    int64_t h2 = hd / 2;
    for (int64_t i = 0; i < h2; i++) {
        for (int64_t p = 0; p < T; p++) {
            float a = (float)p * inv_freq[i]; /* hass_rope's angle, bit for bit */
            cos_t[p * h2 + i] = cosf(a);
            sin_t[p * h2 + i] = sinf(a);
        }
    }
}

typedef struct {
    float *x;
    int64_t T, nh, hd;
    const float *cos_t, *sin_t;
    hass_rope_style style;
    float sign;
} rope_ctx;

/* sign = +1: rotate by +angle (forward); -1: by -angle (the transpose). Rows lo..hi-1. */
static void rope_range(void *vc, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    const rope_ctx *rc = vc;
    float *x = rc->x, sign = rc->sign;
    int64_t T = rc->T, nh = rc->nh, hd = rc->hd, h2 = hd / 2;
    const float *cos_t = rc->cos_t, *sin_t = rc->sin_t;
    hass_rope_style style = rc->style;
    for (int64_t r = lo; r < hi; r++) {
        const float *c = cos_t + (r % T) * h2, *s = sin_t + (r % T) * h2;
        for (int64_t h = 0; h < nh; h++) {
            float *v = x + (r * nh + h) * hd;
            for (int64_t i = 0; i < h2; i++) {
                int64_t a = style == HASS_ROPE_INTERLEAVED ? 2 * i : i;
                int64_t b = style == HASS_ROPE_INTERLEAVED ? 2 * i + 1 : i + h2;
                float ci = c[i], si = sign * s[i];
                float va = v[a], vb = v[b];
                v[a] = va * ci - vb * si;
                v[b] = vb * ci + va * si;
            }
        }
    }
}

static void rope_apply(float *x, int64_t N, int64_t T, int64_t nh, int64_t hd, const float *cos_t,
                       const float *sin_t, hass_rope_style style, float sign) {
    rope_ctx c = {x, T, nh, hd, cos_t, sin_t, style, sign};
    par_range(N, 64, rope_range, &c);
}

void hass_train_rope_forward(float *x, int64_t N, int64_t T, int64_t nh, int64_t hd,
                             const float *cos_t, const float *sin_t, hass_rope_style style) {
    rope_apply(x, N, T, nh, hd, cos_t, sin_t, style, 1.0f);
}

void hass_train_rope_backward(float *dx, int64_t N, int64_t T, int64_t nh, int64_t hd,
                              const float *cos_t, const float *sin_t, hass_rope_style style) {
    rope_apply(dx, N, T, nh, hd, cos_t, sin_t, style, -1.0f);
}

/* ------------------------------------------------------------------------------------------ */
/* SwiGLU gate and residual                                                                    */

typedef struct {
    float *out, *dg, *du, *db;
    const float *g, *u, *dout, *a, *b;
} ew_ctx;

#define EW_CHUNK 512

static void silu_fwd_range(void *vc, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    const ew_ctx *c = vc;
    float e[EW_CHUNK];
    for (int64_t i0 = lo; i0 < hi; i0 += EW_CHUNK) {
        int64_t n = hi - i0 < EW_CHUNK ? hi - i0 : EW_CHUNK;
        for (int64_t i = 0; i < n; i++)
            e[i] = -c->g[i0 + i];
        hass_exp_inplace(e, n);
        for (int64_t i = 0; i < n; i++)
            c->out[i0 + i] = c->g[i0 + i] / (1.0f + e[i]) * c->u[i0 + i];
    }
}

void hass_train_silu_mul_forward(float *out, const float *g, const float *u, int64_t n) {
    ew_ctx c = {.out = out, .g = g, .u = u};
    par_range(n, 4096, silu_fwd_range, &c);
}

static void silu_bwd_range(void *vc, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    const ew_ctx *c = vc;
    float e[EW_CHUNK];
    for (int64_t i0 = lo; i0 < hi; i0 += EW_CHUNK) {
        int64_t n = hi - i0 < EW_CHUNK ? hi - i0 : EW_CHUNK;
        for (int64_t i = 0; i < n; i++)
            e[i] = -c->g[i0 + i];
        hass_exp_inplace(e, n);
        for (int64_t i = 0; i < n; i++) {
            int64_t k = i0 + i;
            float s = 1.0f / (1.0f + e[i]), g = c->g[k];
            if (c->dg)
                c->dg[k] += c->dout[k] * c->u[k] * s * (1.0f + g * (1.0f - s));
            if (c->du)
                c->du[k] += c->dout[k] * g * s;
        }
    }
}

void hass_train_silu_mul_backward(float *dg, float *du, const float *dout, const float *g,
                                  const float *u, int64_t n) {
    ew_ctx c = {.dg = dg, .du = du, .dout = dout, .g = g, .u = u};
    par_range(n, 4096, silu_bwd_range, &c);
}

static void add_range(void *vc, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    const ew_ctx *c = vc;
    for (int64_t i = lo; i < hi; i++)
        c->out[i] = c->a[i] + c->b[i];
}

void hass_train_residual_forward(float *out, const float *a, const float *b, int64_t n) {
    ew_ctx c = {.out = out, .a = a, .b = b};
    par_range(n, 1 << 16, add_range, &c);
}

static void acc_range(void *vc, int64_t lo, int64_t hi, int ith) {
    (void)ith;
    const ew_ctx *c = vc;
    for (int64_t i = lo; i < hi; i++) {
        if (c->dg)
            c->dg[i] += c->dout[i];
        if (c->db)
            c->db[i] += c->dout[i];
    }
}

void hass_train_residual_backward(float *da, float *db, const float *dout, int64_t n) {
    ew_ctx c = {.dg = da, .db = db, .dout = dout};
    par_range(n, 1 << 16, acc_range, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* context-alignment mask and attention                                                        */

void hass_train_align_mask(int64_t T, int j, int64_t *n0, int *kfirst) {
    for (int64_t i = 0; i < T; i++) {
        int64_t c = i - j + 1;
        n0[i] = c > 0 ? c : 0;
        int64_t kf = j - i;
        kfirst[i] = (int)(kf > 1 ? kf : 1);
    }
}

static int64_t attn_bq(int64_t bq) {
    return bq > 0 ? bq : 128;
}

static size_t attn_scratch_1(int64_t T, int j, int64_t bq) {
    // two (bq, T) score blocks, two (bq, j+1) diagonal-score blocks, one (bq) row vector,
    // rounded up to 16 floats so each thread's part starts on its own cache line
    return ((size_t)(2 * bq * T + 2 * bq * (j + 1) + bq) + 15) & ~(size_t)15;
}

size_t hass_train_attn_align_scratch(int64_t T, int j, int64_t bq, int nth) {
    return attn_scratch_1(T, j, attn_bq(bq)) * (size_t)(nth > 1 ? nth : 1);
}

/* The attention's products on the calling thread (inside a pool task): the training product kind
 * (gemm.h) without threads of its own. */
static void agemm(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    hass_gemm(hass_gemm_get_default(), NULL, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

static float dotf(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static void axpyf(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* Geometry shared by forward and backward for one (b, h, query block). */
typedef struct {
    int64_t T, H, Hkv, Dh, qd, kvd, b, h, hk, i0, nb, kend;
    int j;
    float scale;
} attn_blk;

static attn_blk attn_block(int64_t B, int64_t T, int j, int64_t H, int64_t Hkv, int64_t Dh,
                           int64_t b, int64_t h, int64_t i0, int64_t bq) {
    (void)B;
    attn_blk g;
    g.T = T, g.H = H, g.Hkv = Hkv, g.Dh = Dh, g.qd = H * Dh, g.kvd = Hkv * Dh, g.b = b, g.h = h;
    g.hk = h / (H / Hkv), g.i0 = i0, g.j = j;
    g.nb = (i0 + bq <= T ? bq : T - i0);
    int64_t ke = i0 + g.nb - j; // stream-0 keys needed by the last row of the block
    g.kend = ke < 0 ? 0 : (ke > T ? T : ke);
    g.scale = 1.0f / sqrtf((float)Dh);
    return g;
}

/* Scaled stream-0 scores S (nb, kend) = scale * Q_blk K0[0:kend]^T and diagonal scores
 * E (nb, j+1) (entries k < kfirst unused); turns them into probabilities using lse (backward)
 * or computes lse and the probabilities (forward, lse_out != NULL). */
static void attn_probs(const attn_blk *g, float *S, float *E, const float *q, const float *const *k,
                       float *lse_io, int forward) {
    const float *Qb = q + (g->b * g->T + g->i0) * g->qd + g->h * g->Dh;
    const float *K0 = k[0] + g->b * g->T * g->kvd + g->hk * g->Dh;
    int64_t kend = g->kend, j = g->j;
    if (kend > 0)
        agemm(0, 1, g->nb, kend, g->Dh, g->scale, Qb, g->qd, K0, g->kvd, 0.0f, S, kend);
    for (int64_t r = 0; r < g->nb; r++) {
        int64_t i = g->i0 + r;
        int64_t n0 = i - j + 1 > 0 ? i - j + 1 : 0;
        int64_t kf = j - i > 1 ? j - i : 1;
        float *row = S + r * kend, *e = E + r * (j + 1);
        const float *qi = Qb + r * g->qd;
        for (int64_t kk = kf; kk <= j; kk++) {
            const float *kv = k[kk] + (g->b * g->T + i - j + kk) * g->kvd + g->hk * g->Dh;
            e[kk] = g->scale * dotf(qi, kv, g->Dh);
        }
        float *lse = lse_io + (g->b * g->T + i) * g->H + g->h;
        if (forward) { /* p = exp(s - mx) / sum; lse = mx + log(sum) */
            float mx = -FLT_MAX;
            for (int64_t c = 0; c < n0; c++)
                mx = row[c] > mx ? row[c] : mx;
            for (int64_t kk = kf; kk <= j; kk++)
                mx = e[kk] > mx ? e[kk] : mx;
            for (int64_t c = 0; c < n0; c++)
                row[c] -= mx;
            hass_exp_inplace(row, n0);
            float sum = 0.0f;
            for (int64_t c = 0; c < n0; c++)
                sum += row[c];
            for (int64_t kk = kf; kk <= j; kk++)
                sum += (e[kk] = expf(e[kk] - mx));
            *lse = mx + logf(sum);
            float inv = 1.0f / sum;
            for (int64_t c = 0; c < n0; c++)
                row[c] *= inv;
            for (int64_t kk = kf; kk <= j; kk++)
                e[kk] *= inv;
        } else { /* recomputed from the saved lse: p = exp(s - lse) */
            float L = *lse;
            for (int64_t c = 0; c < n0; c++)
                row[c] -= L;
            hass_exp_inplace(row, n0);
            for (int64_t kk = kf; kk <= j; kk++)
                e[kk] = expf(e[kk] - L);
        }
        for (int64_t c = n0; c < kend; c++)
            row[c] = 0.0f;
    }
}

typedef struct {
    float *out, *lse, *dq;
    float *const *dk, *const *dv;
    const float *q, *dout, *o;
    const float *const *k, *const *v;
    int64_t B, T, H, Hkv, Dh, bq;
    int j;
    float *scratch;
    size_t per_thread;
    atomic_llong next; /* the next (b, head) unit to take: threads take units one at a time, so
                          a thread that loses its core does not hold the others up */
} attn_ctx;

/* Forward for the (b, h) pairs thread ith takes; ith's scratch. */
static void attn_fwd_task(void *vc, int ith, int nth) {
    (void)nth;
    attn_ctx *c = vc;
    int64_t T = c->T, bq = c->bq, Dh = c->Dh;
    int j = c->j;
    float *S = c->scratch + (size_t)ith * c->per_thread, *E = S + 2 * bq * T;
    for (int64_t u; (u = (int64_t)atomic_fetch_add(&c->next, 1)) < c->B * c->H;) {
        int64_t b = u / c->H, h = u % c->H;
        for (int64_t i0 = 0; i0 < T; i0 += bq) {
            attn_blk g = attn_block(c->B, T, j, c->H, c->Hkv, Dh, b, h, i0, bq);
            attn_probs(&g, S, E, c->q, c->k, c->lse, 1);
            float *Ob = c->out + (b * T + i0) * g.qd + h * Dh;
            const float *V0 = c->v[0] + b * T * g.kvd + g.hk * Dh;
            if (g.kend > 0) // O_blk: (nb, Dh) = P: (nb, kend) @ V0: (kend, Dh)
                agemm(0, 0, g.nb, Dh, g.kend, 1.0f, S, g.kend, V0, g.kvd, 0.0f, Ob, g.qd);
            else
                for (int64_t r = 0; r < g.nb; r++)
                    memset(Ob + r * g.qd, 0, (size_t)Dh * sizeof(float));
            for (int64_t r = 0; r < g.nb; r++) {
                int64_t i = i0 + r, kf = j - i > 1 ? j - i : 1;
                for (int64_t kk = kf; kk <= j; kk++) {
                    const float *vv = c->v[kk] + (b * T + i - j + kk) * g.kvd + g.hk * Dh;
                    axpyf(Ob + r * g.qd, E[r * (j + 1) + kk], vv, Dh);
                }
            }
        }
    }
}

/* Runs the task on the pool with single-threaded BLAS inside (each thread owns whole heads). */
static void attn_run(hass_pool *pool, hass_task_fn fn, attn_ctx *c) {
    atomic_init(&c->next, 0);
    int nth = hass_pool_size(pool);
    if (nth <= 1) {
        fn(c, 0, 1);
        return;
    }
    int blas = hass_blas_get_threads();
    hass_blas_set_threads(1);
    hass_pool_run(pool, fn, c);
    hass_blas_set_threads(blas);
}

void hass_train_attn_align_forward(hass_pool *pool, float *out, float *lse, const float *q,
                                   const float *const *k, const float *const *v, int64_t B,
                                   int64_t T, int j, int64_t H, int64_t Hkv, int64_t Dh, int64_t bq,
                                   float *scratch) {
    HASS_ASSERT(H % Hkv == 0 && j >= 0);
    bq = attn_bq(bq);
    attn_ctx c = {.out = out,
                  .lse = lse,
                  .q = q,
                  .k = k,
                  .v = v,
                  .B = B,
                  .T = T,
                  .H = H,
                  .Hkv = Hkv,
                  .Dh = Dh,
                  .bq = bq,
                  .j = j,
                  .scratch = scratch,
                  .per_thread = attn_scratch_1(T, j, bq)};
    attn_run(pool, attn_fwd_task, &c);
}

/* Backward for the (b, kv head) units of thread ith: each unit's dK/dV slices are written by
 * its thread only (all query heads of the GQA group run in that thread). */
static void attn_bwd_task(void *vc, int ith, int nth) {
    (void)nth;
    attn_ctx *c = vc;
    int64_t T = c->T, bq = c->bq, Dh = c->Dh, H = c->H, Hkv = c->Hkv, B = c->B;
    int j = c->j;
    float *P = c->scratch + (size_t)ith * c->per_thread, *dP = P + bq * T, *E = P + 2 * bq * T;
    float *Dv = E + 2 * bq * (j + 1);
    const float *q = c->q, *dout = c->dout, *out = c->o, *lse = c->lse;
    const float *const *k = c->k, *const *v = c->v;
    float *dq = c->dq, *const *dk = c->dk, *const *dv = c->dv;
    for (int64_t u; (u = (int64_t)atomic_fetch_add(&c->next, 1)) < B * Hkv;)
        for (int64_t h = (u % Hkv) * (H / Hkv); h < (u % Hkv + 1) * (H / Hkv); h++)
            for (int64_t i0 = 0, b = u / Hkv; i0 < T; i0 += bq) {
                attn_blk g = attn_block(B, T, j, H, Hkv, Dh, b, h, i0, bq);
                attn_probs(&g, P, E, q, k, (float *)lse, 0);
                int64_t qoff = (b * T + i0) * g.qd + h * Dh, koff = b * T * g.kvd + g.hk * Dh;
                const float *dOb = dout + qoff, *Ob = out + qoff, *Qb = q + qoff;
                float *dQb = dq + qoff;
                for (int64_t r = 0; r < g.nb; r++)
                    Dv[r] = dotf(dOb + r * g.qd, Ob + r * g.qd, Dh);
                int64_t kend = g.kend;
                if (kend > 0) {
                    const float *K0 = k[0] + koff, *V0 = v[0] + koff;
                    // dV0: (kend, Dh) += P^T: (kend, nb) @ dO: (nb, Dh)
                    agemm(1, 0, kend, Dh, g.nb, 1.0f, P, kend, dOb, g.qd, 1.0f, dv[0] + koff,
                          g.kvd);
                    // dP: (nb, kend) = dO: (nb, Dh) @ V0^T: (Dh, kend)
                    agemm(0, 1, g.nb, kend, Dh, 1.0f, dOb, g.qd, V0, g.kvd, 0.0f, dP, kend);
                    for (int64_t r = 0; r < g.nb; r++) { // dS = P * (dP - D); P is 0 past n0
                        float *pr = P + r * kend, *dr = dP + r * kend;
                        for (int64_t t = 0; t < kend; t++)
                            dr[t] = pr[t] * (dr[t] - Dv[r]);
                    }
                    // dQ_blk += scale * dS @ K0;  dK0 += scale * dS^T @ Q_blk
                    agemm(0, 0, g.nb, Dh, kend, g.scale, dP, kend, K0, g.kvd, 1.0f, dQb, g.qd);
                    agemm(1, 0, kend, Dh, g.nb, g.scale, dP, kend, Qb, g.qd, 1.0f, dk[0] + koff,
                          g.kvd);
                }
                for (int64_t r = 0; r < g.nb; r++) { // the diagonal keys of streams 1..j
                    int64_t i = i0 + r, kf = j - i > 1 ? j - i : 1;
                    for (int64_t kk = kf; kk <= j; kk++) {
                        int64_t off = (b * T + i - j + kk) * g.kvd + g.hk * Dh;
                        float p = E[r * (j + 1) + kk];
                        float ds = p * (dotf(dOb + r * g.qd, v[kk] + off, Dh) - Dv[r]);
                        axpyf(dQb + r * g.qd, g.scale * ds, k[kk] + off, Dh);
                        axpyf(dk[kk] + off, g.scale * ds, Qb + r * g.qd, Dh);
                        axpyf(dv[kk] + off, p, dOb + r * g.qd, Dh);
                    }
                }
            }
}

void hass_train_attn_align_backward(hass_pool *pool, float *dq, float *const *dk, float *const *dv,
                                    const float *dout, const float *out, const float *lse,
                                    const float *q, const float *const *k, const float *const *v,
                                    int64_t B, int64_t T, int j, int64_t H, int64_t Hkv, int64_t Dh,
                                    int64_t bq, float *scratch) {
    HASS_ASSERT(H % Hkv == 0 && j >= 0);
    bq = attn_bq(bq);
    attn_ctx c = {.lse = (float *)lse,
                  .dq = dq,
                  .dk = dk,
                  .dv = dv,
                  .q = q,
                  .dout = dout,
                  .o = out,
                  .k = k,
                  .v = v,
                  .B = B,
                  .T = T,
                  .H = H,
                  .Hkv = Hkv,
                  .Dh = Dh,
                  .bq = bq,
                  .j = j,
                  .scratch = scratch,
                  .per_thread = attn_scratch_1(T, j, bq)};
    attn_run(pool, attn_bwd_task, &c);
}

/* ------------------------------------------------------------------------------------------ */
/* losses                                                                                      */

double hass_train_smoothl1_loss(float *dh, const float *h, const float *tgt, const float *m,
                                int64_t N, int64_t d, float gscale) {
    double msum = 0.0, loss = 0.0;
    for (int64_t r = 0; r < N; r++)
        msum += m[r];
    double Z = msum + 1e-5;
    for (int64_t r = 0; r < N; r++) {
        if (m[r] == 0.0f)
            continue;
        const float *hr = h + r * d, *tr = tgt + r * d;
        double rs = 0.0;
        float gs = (float)(gscale * m[r] / (Z * (double)d));
        for (int64_t i = 0; i < d; i++) {
            float x = hr[i] - tr[i], ax = fabsf(x);
            rs += ax < 1.0f ? 0.5 * (double)x * x : (double)ax - 0.5;
            if (dh)
                dh[r * d + i] += gs * (ax < 1.0f ? x : (x > 0 ? 1.0f : -1.0f));
        }
        loss += m[r] * rs / (double)d;
    }
    return loss / Z;
}

typedef struct {
    float *x;
    const float *p;
    int32_t *idx, *amax;
    int64_t N, V, K;
} rows_ctx;

static void softmax_task(void *vctx, int ith, int nth) {
    rows_ctx *c = vctx;
    int64_t lo, hi;
    hass_split(c->N, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        float *x = c->x + r * c->V, mx = -FLT_MAX, sum = 0.0f;
        for (int64_t v = 0; v < c->V; v++)
            mx = x[v] > mx ? x[v] : mx;
        for (int64_t v = 0; v < c->V; v++)
            x[v] -= mx;
        hass_exp_inplace(x, c->V);
        for (int64_t v = 0; v < c->V; v++)
            sum += x[v];
        float inv = 1.0f / sum;
        for (int64_t v = 0; v < c->V; v++)
            x[v] *= inv;
    }
}

void hass_train_softmax_rows(hass_pool *pool, float *x, int64_t N, int64_t V) {
    rows_ctx c = {.x = x, .N = N, .V = V};
    hass_pool_run(pool, softmax_task, &c);
}

static void topk_task(void *vctx, int ith, int nth) {
    rows_ctx *c = vctx;
    int64_t lo, hi, K = c->K;
    hass_split(c->N, ith, nth, &lo, &hi);
    for (int64_t r = lo; r < hi; r++) {
        const float *p = c->p + r * c->V;
        int32_t *id = c->idx ? c->idx + r * K : NULL;
        int64_t n = 0, best = 0;
        for (int64_t v = 0; v < c->V; v++) {
            if (p[v] > p[best])
                best = v;
            if (!id || (n == K && !(p[v] > p[id[K - 1]])))
                continue;
            int64_t pos = n < K ? n : K - 1; // insertion sort; equal values keep the lower index
            while (pos > 0 && p[id[pos - 1]] < p[v]) {
                id[pos] = id[pos - 1];
                pos--;
            }
            id[pos] = (int32_t)v;
            if (n < K)
                n++;
        }
        if (c->amax)
            c->amax[r] = (int32_t)best;
    }
}

void hass_train_topk_rows(hass_pool *pool, int32_t *idx, int32_t *amax, const float *p, int64_t N,
                          int64_t V, int64_t K) {
    HASS_ASSERT(K <= V);
    rows_ctx c = {.p = p, .idx = K > 0 ? idx : NULL, .amax = amax, .N = N, .V = V, .K = K};
    hass_pool_run(pool, topk_task, &c);
}

#define DISTILL_MAX_THREADS 64

typedef struct {
    float *dl;
    const float *z, *p, *m;
    const int32_t *idx;
    int32_t *amax;
    int64_t N, V, K;
    float ws, wk;
    double Z;
    double soft[DISTILL_MAX_THREADS], topk[DISTILL_MAX_THREADS];
} distill_ctx;

static void distill_task(void *vctx, int ith, int nth) {
    distill_ctx *c = vctx;
    int64_t lo, hi, V = c->V;
    hass_split(c->N, ith, nth, &lo, &hi);
    double soft = 0.0, topk = 0.0;
    for (int64_t r = lo; r < hi; r++) {
        const float *z = c->z + r * V, *p = c->p + r * V;
        float *dl = c->dl + r * V;
        if (c->m[r] == 0.0f) {
            memset(dl, 0, (size_t)V * sizeof(float));
            if (c->amax)
                c->amax[r] = -1;
            continue;
        }
        // pass 1 (z intact): max, argmax, sum p, sum p*z; then the Top-K sums
        float mx = -FLT_MAX;
        int64_t best = 0;
        double psum = 0.0, pz = 0.0, ksum = 0.0, kz = 0.0;
        for (int64_t v = 0; v < V; v++) {
            if (z[v] > mx)
                mx = z[v], best = v;
            psum += p[v];
            pz += (double)p[v] * z[v];
        }
        const int32_t *id = c->idx ? c->idx + r * c->K : NULL;
        for (int64_t t = 0; id && t < c->K; t++) {
            ksum += p[id[t]];
            kz += (double)p[id[t]] * z[id[t]];
        }
        // pass 2: one exp per element, kept in dl (which may alias z: z is not read again)
        float sum = 0.0f;
        for (int64_t v = 0; v < V; v++)
            dl[v] = z[v] - mx;
        hass_exp_inplace(dl, V);
        for (int64_t v = 0; v < V; v++)
            sum += dl[v];
        double lse = (double)mx + log((double)sum);
        // -sum_v p log q = lse * sum p - sum p z  (log q(v) = z[v] - lse)
        double rs = lse * psum - pz, rk = lse * ksum - kz;
        // pass 3: dL/dz_v = m/Z * (C q_v - c_v), c_v = ws p_v (+ wk p_v in the top K), C = sum c
        float sc = (float)(c->m[r] / c->Z), inv = 1.0f / sum;
        float C = (float)(c->ws * psum + c->wk * ksum);
        for (int64_t v = 0; v < V; v++)
            dl[v] = sc * (C * (dl[v] * inv) - c->ws * p[v]);
        for (int64_t t = 0; id && t < c->K; t++)
            dl[id[t]] -= sc * c->wk * p[id[t]];
        soft += c->m[r] * rs;
        topk += c->m[r] * rk;
        if (c->amax)
            c->amax[r] = (int32_t)best;
    }
    c->soft[ith] = soft;
    c->topk[ith] = topk;
}

double hass_train_distill_loss(hass_pool *pool, float *dlogits, const float *logits, const float *p,
                               const int32_t *topk_idx, const float *m, int64_t N, int64_t V,
                               int64_t K, float w_soft, float w_topk, double *soft, double *topk,
                               int32_t *argmax) {
    distill_ctx c = {.dl = dlogits,
                     .z = logits,
                     .p = p,
                     .m = m,
                     .idx = K > 0 ? topk_idx : NULL,
                     .amax = argmax,
                     .N = N,
                     .V = V,
                     .K = K,
                     .ws = w_soft,
                     .wk = w_topk};
    double msum = 0.0;
    for (int64_t r = 0; r < N; r++)
        msum += m[r];
    c.Z = msum + 1e-5;
    int nth = hass_pool_size(pool);
    if (nth > DISTILL_MAX_THREADS)
        nth = DISTILL_MAX_THREADS;
    hass_pool_run_n(pool, nth, distill_task, &c);
    double s = 0.0, k = 0.0;
    for (int t = 0; t < nth; t++)
        s += c.soft[t], k += c.topk[t];
    s /= c.Z, k /= c.Z;
    if (soft)
        *soft = s;
    if (topk)
        *topk = k;
    return w_soft * s + w_topk * k;
}
