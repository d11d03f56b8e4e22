/*
 * test_train_ops.c — every forward/backward pair of src/train/draft_grad.c against central
 * finite differences, plus the alignment mask against its definition, top-K selection and AdamW.
 *
 * Approach to the gradient checks: the test holds a DOUBLE-precision reference forward of each op
 * written directly from its definition (naive loops; the attention builds the dense
 * (j+1)*T-key mask straight from HASS.md 5.2.2, with no shifted-causal trick). A scalar loss
 * L = sum(out * R) with a fixed random R (or the loss value itself for the losses) is
 * differentiated by central differences of that double forward (h = 1e-5, truncation error
 * ~1e-10), and the FLOAT backward under test, fed dout = R, must match it within float
 * rounding: |g - g_fd| <= 2e-4 + 2e-3 |g_fd|. The float forward is also compared with the double
 * forward. Backward accumulation (+=) is checked by running each backward on a pre-filled buffer.
 */
#include "check.h"
#include "train/draft_grad.h"
#include "train/train.h"

#include <stdint.h>

static hass_rng rng;

static void fill(float *x, int64_t n, float scale) {
    for (int64_t i = 0; i < n; i++)
        x[i] = scale * (2.0f * hass_rng_uniform(&rng) - 1.0f);
}
static double *to_d(const float *x, int64_t n) {
    double *y = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++)
        y[i] = x[i];
    return y;
}
static float *falloc(int64_t n) {
    return calloc((size_t)n, sizeof(float));
}
static double dsum_prod(const double *a, const float *R, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * R[i];
    return s;
}

/* Central differences of loss(ctx) with respect to x[0..n), into g (float, for CHECK_CLOSE). */
typedef double (*loss_fn)(void *ctx);
static void fd_grad(float *g, double *x, int64_t n, loss_fn f, void *ctx) {
    const double h = 1e-5;
    for (int64_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = f(ctx);
        x[i] = x0 - h;
        double lm = f(ctx);
        x[i] = x0;
        g[i] = (float)((lp - lm) / (2 * h));
    }
}
#define GATOL 2e-4
#define GRTOL 2e-3

/* Subtracts the pre-fill `base` from an accumulated gradient (checks += semantics). */
static void unbias(float *g, const float *base, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        g[i] -= base[i];
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
    double *x, *W, *b;
    const float *R;
    int64_t N, in, out;
} lin_ctx;
static double lin_loss(void *vc) {
    lin_ctx *c = vc;
    double L = 0;
    for (int64_t r = 0; r < c->N; r++)
        for (int64_t o = 0; o < c->out; o++) {
            double y = c->b ? c->b[o] : 0.0;
            for (int64_t i = 0; i < c->in; i++)
                y += c->x[r * c->in + i] * c->W[o * c->in + i];
            L += y * c->R[r * c->out + o];
        }
    return L;
}

static void test_linear(int bias) {
    int64_t N = 5, in = 7, out = 6;
    float *x = falloc(N * in), *W = falloc(out * in), *b = falloc(out), *R = falloc(N * out);
    float *y = falloc(N * out), *dx = falloc(N * in), *dW = falloc(out * in), *db = falloc(out);
    float *base = falloc(N * in > out * in ? N * in : out * in), *fd = falloc(out * in + N * in);
    fill(x, N * in, 1), fill(W, out * in, 0.5f), fill(b, out, 0.5f), fill(R, N * out, 1);
    fill(base, N * in > out * in ? N * in : out * in, 1);
    lin_ctx c = {to_d(x, N * in), to_d(W, out * in), bias ? to_d(b, out) : NULL, R, N, in, out};
    hass_train_linear_forward(y, x, W, bias ? b : NULL, N, in, out);
    double L = 0;
    for (int64_t i = 0; i < N * out; i++)
        L += (double)y[i] * R[i];
    CHECK(fabs(L - lin_loss(&c)) < 1e-4 * (1 + fabs(L)));
    memcpy(dx, base, (size_t)(N * in) * sizeof(float));
    memcpy(dW, base, (size_t)(out * in) * sizeof(float));
    memcpy(db, base, (size_t)out * sizeof(float));
    hass_train_linear_backward(dx, dW, bias ? db : NULL, R, x, W, N, in, out);
    unbias(dx, base, N * in), unbias(dW, base, out * in), unbias(db, base, out);
    fd_grad(fd, c.x, N * in, lin_loss, &c);
    CHECK_CLOSE(dx, fd, N * in, GATOL, GRTOL, "linear dx");
    fd_grad(fd, c.W, out * in, lin_loss, &c);
    CHECK_CLOSE(dW, fd, out * in, GATOL, GRTOL, "linear dW");
    if (bias) {
        fd_grad(fd, c.b, out, lin_loss, &c);
        CHECK_CLOSE(db, fd, out, GATOL, GRTOL, "linear db");
    } else {
        CHECK_CLOSE(db, (float[6]){0}, out, 0, 0, "linear db untouched without bias");
    }
    free(c.x), free(c.W), free(c.b);
    free(x), free(W), free(b), free(R), free(y), free(dx), free(dW), free(db), free(base), free(fd);
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
    double *x, *w;
    const float *R;
    int64_t N, d;
    double eps;
} rms_ctx;
static double rms_loss(void *vc) {
    rms_ctx *c = vc;
    double L = 0;
    for (int64_t r = 0; r < c->N; r++) {
        double ss = 0;
        for (int64_t i = 0; i < c->d; i++)
            ss += c->x[r * c->d + i] * c->x[r * c->d + i];
        double s = 1.0 / sqrt(ss / (double)c->d + c->eps);
        for (int64_t i = 0; i < c->d; i++)
            L += c->x[r * c->d + i] * s * c->w[i] * c->R[r * c->d + i];
    }
    return L;
}

static void test_rmsnorm(void) {
    int64_t N = 5, d = 8;
    float *x = falloc(N * d), *w = falloc(d), *R = falloc(N * d), *y = falloc(N * d), rstd[5];
    float *dx = falloc(N * d), *dw = falloc(d), *base = falloc(N * d), *fd = falloc(N * d);
    fill(x, N * d, 1), fill(w, d, 1), fill(R, N * d, 1), fill(base, N * d, 1);
    rms_ctx c = {to_d(x, N * d), to_d(w, d), R, N, d, 1e-5};
    hass_train_rmsnorm_forward(y, rstd, x, w, N, d, 1e-5f);
    double L = 0;
    for (int64_t i = 0; i < N * d; i++)
        L += (double)y[i] * R[i];
    CHECK(fabs(L - rms_loss(&c)) < 1e-4 * (1 + fabs(L)));
    memcpy(dx, base, (size_t)(N * d) * sizeof(float));
    memcpy(dw, base, (size_t)d * sizeof(float));
    hass_train_rmsnorm_backward(dx, dw, R, x, w, rstd, N, d);
    unbias(dx, base, N * d), unbias(dw, base, d);
    fd_grad(fd, c.x, N * d, rms_loss, &c);
    CHECK_CLOSE(dx, fd, N * d, GATOL, GRTOL, "rmsnorm dx");
    fd_grad(fd, c.w, d, rms_loss, &c);
    CHECK_CLOSE(dw, fd, d, GATOL, GRTOL, "rmsnorm dw");
    free(c.x), free(c.w);
    free(x), free(w), free(R), free(y), free(dx), free(dw), free(base), free(fd);
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
    double *x;
    const float *R;
    int64_t N, T, nh, hd;
    const float *inv_freq;
    hass_rope_style style;
} rope_ctx;
static double rope_loss(void *vc) {
    rope_ctx *c = vc;
    double L = 0;
    int64_t h2 = c->hd / 2;
    for (int64_t r = 0; r < c->N; r++)
        for (int64_t h = 0; h < c->nh; h++)
            for (int64_t i = 0; i < h2; i++) {
                double ang = (double)(r % c->T) * (double)c->inv_freq[i];
                int64_t a = c->style == HASS_ROPE_HALF ? i : 2 * i;
                int64_t b = c->style == HASS_ROPE_HALF ? i + h2 : 2 * i + 1;
                const double *v = c->x + (r * c->nh + h) * c->hd;
                const float *Rv = c->R + (r * c->nh + h) * c->hd;
                L += (v[a] * cos(ang) - v[b] * sin(ang)) * Rv[a];
                L += (v[b] * cos(ang) + v[a] * sin(ang)) * Rv[b];
            }
    return L;
}

/* The training rotation (tables) against a double reference and finite differences, and against
 * the inference kernel hass_rope: bit-identical for the same frequencies. */
static void test_rope(hass_rope_style style) {
    int64_t T = 3, N = 6, nh = 2, hd = 8, n = N * nh * hd;
    float *x = falloc(n), *R = falloc(n), *ct = falloc(T * hd / 2), *st = falloc(T * hd / 2);
    float *fd = falloc(n), *y = falloc(n), inv[4];
    fill(x, n, 1), fill(R, n, 1);
    hass_rope_params rp = hass_rope_plain(100.0f);
    hass_rope_freqs(&rp, hd, inv);
    rope_ctx c = {to_d(x, n), R, N, T, nh, hd, inv, style};
    hass_train_rope_table(ct, st, T, hd, inv);
    memcpy(y, x, (size_t)n * sizeof(float));
    hass_train_rope_forward(y, N, T, nh, hd, ct, st, style);
    double L = 0;
    for (int64_t i = 0; i < n; i++)
        L += (double)y[i] * R[i];
    CHECK(fabs(L - rope_loss(&c)) < 1e-4 * (1 + fabs(L)));
    float *g = falloc(n);
    memcpy(g, R, (size_t)n * sizeof(float));
    hass_train_rope_backward(g, N, T, nh, hd, ct, st, style);
    fd_grad(fd, c.x, n, rope_loss, &c);
    CHECK_CLOSE(g, fd, n, GATOL, GRTOL,
                style == HASS_ROPE_HALF ? "rope half dx" : "rope interleaved dx");
    // the backward really is the inverse rotation: backward(forward(x)) == x
    hass_train_rope_backward(y, N, T, nh, hd, ct, st, style);
    CHECK_CLOSE(y, x, n, 1e-6, 1e-5, "rope roundtrip");
    free(c.x), free(x), free(R), free(ct), free(st), free(fd), free(y), free(g);

    // training tables == inference kernel, bit for bit, for scaled frequencies and long positions
    enum { TL = 3000, HD = 16, NH = 3 };
    hass_rope_params sc = hass_rope_plain(500000.0f);
    sc.factor = 8, sc.low_freq_factor = 1, sc.high_freq_factor = 4, sc.orig_ctx = 64;
    sc.linear = 2, sc.n_div = HD / 2;
    for (int i = 0; i < HD / 2; i++)
        sc.div[i] = 1.0f + 0.25f * (float)i;
    float finv[HD / 2];
    hass_rope_freqs(&sc, HD, finv);
    float *ct2 = falloc(TL * HD / 2), *st2 = falloc(TL * HD / 2);
    float *a = falloc(TL * NH * HD), *b = falloc(TL * NH * HD);
    int32_t *pos = malloc(TL * sizeof(int32_t));
    fill(a, TL * NH * HD, 5);
    memcpy(b, a, (size_t)(TL * NH * HD) * sizeof(float));
    for (int i = 0; i < TL; i++)
        pos[i] = i;
    hass_train_rope_table(ct2, st2, TL, HD, finv);
    hass_train_rope_forward(a, TL, TL, NH, HD, ct2, st2, style);
    hass_rope(b, TL, NH, HD, pos, finv, style);
    CHECK_BITEQ(a, b, TL * NH * HD, "training rope == inference rope");
    free(ct2), free(st2), free(a), free(b), free(pos);
}

/* ---------------------------------------------------------------------------------------- */
/* the alignment mask straight from HASS.md 5.2.2: dense[i][s*T + p] */
static int mask_def(int64_t T, int j, int64_t i, int s, int64_t p) {
    (void)T;
    if (s == 0)
        return p <= i - j; // true features at positions 0..i-j
    return p == i - j + s; // one key per draft stream k = s at position i-j+k
}

static void test_mask(void) {
    int bad = 0;
    for (int64_t T = 1; T <= 24; T++)
        for (int j = 0; j <= 7; j++) {
            int64_t *n0 = malloc((size_t)T * sizeof(int64_t));
            int *kf = malloc((size_t)T * sizeof(int));
            hass_train_align_mask(T, j, n0, kf);
            for (int64_t i = 0; i < T; i++) {
                int64_t seen = 0;
                for (int s = 0; s <= j; s++)
                    for (int64_t p = 0; p < T; p++) {
                        int ours = s == 0 ? p < n0[i] : (s >= kf[i] && p == i - j + s);
                        bad += ours != mask_def(T, j, i, s, p);
                        seen += ours;
                    }
                bad += seen < 1; // every row sees at least one key
            }
            free(n0), free(kf);
        }
    CHECK_EQ_INT(bad, 0);
}

typedef struct {
    double *q, *k[3], *v[3];
    const float *R;
    int64_t B, T, H, Hkv, Dh;
    int j;
} attn_ctx;

static void ref_attn(double *out, const attn_ctx *c) {
    int64_t T = c->T, qd = c->H * c->Dh, kvd = c->Hkv * c->Dh, nk = (c->j + 1) * T;
    double *w = malloc((size_t)nk * sizeof(double));
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t h = 0; h < c->H; h++)
            for (int64_t i = 0; i < T; i++) {
                int64_t hk = h / (c->H / c->Hkv);
                const double *qi = c->q + (b * T + i) * qd + h * c->Dh;
                double mx = -1e300, sum = 0;
                for (int s = 0; s <= c->j; s++)
                    for (int64_t p = 0; p < T; p++) {
                        double sc = -INFINITY;
                        if (mask_def(T, c->j, i, s, p) && i - c->j + s >= 0) {
                            const double *kp = c->k[s] + (b * T + p) * kvd + hk * c->Dh;
                            sc = 0;
                            for (int64_t e = 0; e < c->Dh; e++)
                                sc += qi[e] * kp[e];
                            sc /= sqrt((double)c->Dh);
                        }
                        w[s * T + p] = sc;
                        mx = sc > mx ? sc : mx;
                    }
                for (int64_t t = 0; t < nk; t++)
                    sum += (w[t] = w[t] == -INFINITY ? 0 : exp(w[t] - mx));
                double *o = out + (b * T + i) * qd + h * c->Dh;
                for (int64_t e = 0; e < c->Dh; e++)
                    o[e] = 0;
                for (int s = 0; s <= c->j; s++)
                    for (int64_t p = 0; p < T; p++)
                        if (w[s * T + p] != 0)
                            for (int64_t e = 0; e < c->Dh; e++)
                                o[e] += w[s * T + p] / sum *
                                        c->v[s][(b * T + p) * kvd + hk * c->Dh + e];
            }
    free(w);
}
static double attn_loss(void *vc) {
    attn_ctx *c = vc;
    int64_t n = c->B * c->T * c->H * c->Dh;
    double *o = malloc((size_t)n * sizeof(double));
    ref_attn(o, c);
    double L = dsum_prod(o, c->R, n);
    free(o);
    return L;
}

static void test_attention(int j, int64_t T, int64_t bq, hass_pool *pool) {
    int64_t B = 2, H = 4, Hkv = 2, Dh = 4, N = B * T, qd = H * Dh, kvd = Hkv * Dh;
    float *q = falloc(N * qd), *R = falloc(N * qd), *out = falloc(N * qd), *lse = falloc(N * H);
    float *dq = falloc(N * qd), *fd = falloc(N * qd), *base = falloc(N * qd);
    float *k[3], *v[3], *dk[3], *dv[3];
    attn_ctx c = {.R = R, .B = B, .T = T, .H = H, .Hkv = Hkv, .Dh = Dh, .j = j};
    fill(q, N * qd, 1.5f), fill(R, N * qd, 1), fill(base, N * qd, 1);
    for (int s = 0; s <= j; s++) {
        k[s] = falloc(N * kvd), v[s] = falloc(N * kvd), dk[s] = falloc(N * kvd);
        dv[s] = falloc(N * kvd);
        fill(k[s], N * kvd, 1.5f), fill(v[s], N * kvd, 1);
        memcpy(dk[s], base, (size_t)(N * kvd) * sizeof(float));
        memcpy(dv[s], base, (size_t)(N * kvd) * sizeof(float));
        c.k[s] = to_d(k[s], N * kvd), c.v[s] = to_d(v[s], N * kvd);
    }
    c.q = to_d(q, N * qd);
    float *scr = falloc((int64_t)hass_train_attn_align_scratch(T, j, bq, hass_pool_size(pool)));
    hass_train_attn_align_forward(pool, out, lse, q, (const float *const *)k,
                                  (const float *const *)v, B, T, j, H, Hkv, Dh, bq, scr);
    double *ro = malloc((size_t)(N * qd) * sizeof(double));
    ref_attn(ro, &c);
    float *rof = falloc(N * qd);
    for (int64_t i = 0; i < N * qd; i++)
        rof[i] = (float)ro[i];
    char lab[96];
    snprintf(lab, sizeof lab, "attn forward j=%d T=%lld bq=%lld", j, (long long)T, (long long)bq);
    CHECK_CLOSE(out, rof, N * qd, 1e-5, 1e-4, lab);
    memcpy(dq, base, (size_t)(N * qd) * sizeof(float));
    hass_train_attn_align_backward(pool, dq, dk, dv, R, out, lse, q, (const float *const *)k,
                                   (const float *const *)v, B, T, j, H, Hkv, Dh, bq, scr);
    unbias(dq, base, N * qd);
    fd_grad(fd, c.q, N * qd, attn_loss, &c);
    snprintf(lab, sizeof lab, "attn dq j=%d T=%lld bq=%lld", j, (long long)T, (long long)bq);
    CHECK_CLOSE(dq, fd, N * qd, GATOL, GRTOL, lab);
    for (int s = 0; s <= j; s++) {
        unbias(dk[s], base, N * kvd), unbias(dv[s], base, N * kvd);
        fd_grad(fd, c.k[s], N * kvd, attn_loss, &c);
        snprintf(lab, sizeof lab, "attn dk[%d] j=%d T=%lld", s, j, (long long)T);
        CHECK_CLOSE(dk[s], fd, N * kvd, GATOL, GRTOL, lab);
        fd_grad(fd, c.v[s], N * kvd, attn_loss, &c);
        snprintf(lab, sizeof lab, "attn dv[%d] j=%d T=%lld", s, j, (long long)T);
        CHECK_CLOSE(dv[s], fd, N * kvd, GATOL, GRTOL, lab);
    }
    for (int s = 0; s <= j; s++)
        free(k[s]), free(v[s]), free(dk[s]), free(dv[s]), free(c.k[s]), free(c.v[s]);
    free(c.q), free(q), free(R), free(out), free(lse), free(dq), free(fd), free(base), free(scr);
    free(ro), free(rof);
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
    double *g, *u;
    const float *R;
    int64_t n;
} silu_ctx;
static double silu_loss(void *vc) {
    silu_ctx *c = vc;
    double L = 0;
    for (int64_t i = 0; i < c->n; i++)
        L += c->g[i] / (1 + exp(-c->g[i])) * c->u[i] * c->R[i];
    return L;
}

static void test_silu_residual(void) {
    int64_t n = 40;
    float *g = falloc(n), *u = falloc(n), *R = falloc(n), *y = falloc(n), *fd = falloc(n);
    float *dg = falloc(n), *du = falloc(n), *base = falloc(n);
    fill(g, n, 4), fill(u, n, 2), fill(R, n, 1), fill(base, n, 1);
    silu_ctx c = {to_d(g, n), to_d(u, n), R, n};
    hass_train_silu_mul_forward(y, g, u, n);
    double L = 0;
    for (int64_t i = 0; i < n; i++)
        L += (double)y[i] * R[i];
    CHECK(fabs(L - silu_loss(&c)) < 1e-4 * (1 + fabs(L)));
    memcpy(dg, base, (size_t)n * sizeof(float)), memcpy(du, base, (size_t)n * sizeof(float));
    hass_train_silu_mul_backward(dg, du, R, g, u, n);
    unbias(dg, base, n), unbias(du, base, n);
    fd_grad(fd, c.g, n, silu_loss, &c);
    CHECK_CLOSE(dg, fd, n, GATOL, GRTOL, "silu_mul dg");
    fd_grad(fd, c.u, n, silu_loss, &c);
    CHECK_CLOSE(du, fd, n, GATOL, GRTOL, "silu_mul du");
    // residual: out = a + b; both gradients accumulate dout
    hass_train_residual_forward(y, g, u, n);
    for (int64_t i = 0; i < n; i++)
        fd[i] = g[i] + u[i];
    CHECK_BITEQ(y, fd, n, "residual forward");
    memcpy(dg, base, (size_t)n * sizeof(float)), memcpy(du, base, (size_t)n * sizeof(float));
    hass_train_residual_backward(dg, du, R, n);
    unbias(dg, base, n), unbias(du, base, n);
    CHECK_CLOSE(dg, R, n, 1e-6, 0, "residual da");
    CHECK_CLOSE(du, R, n, 1e-6, 0, "residual db");
    free(c.g), free(c.u), free(g), free(u), free(R), free(y), free(fd), free(dg), free(du),
        free(base);
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
    double *h, *t;
    const float *m;
    int64_t N, d;
} sl1_ctx;
static double sl1_loss(void *vc) {
    sl1_ctx *c = vc;
    double L = 0, M = 0;
    for (int64_t r = 0; r < c->N; r++) {
        double s = 0;
        for (int64_t i = 0; i < c->d; i++) {
            double x = c->h[r * c->d + i] - c->t[r * c->d + i];
            s += fabs(x) < 1 ? 0.5 * x * x : fabs(x) - 0.5;
        }
        L += c->m[r] * s / (double)c->d;
        M += c->m[r];
    }
    return L / (M + 1e-5);
}

static void test_smoothl1(void) {
    int64_t N = 6, d = 9;
    float *h = falloc(N * d), *t = falloc(N * d), m[6] = {1, 0, 1, 1, 0, 1};
    float *dh = falloc(N * d), *base = falloc(N * d), *fd = falloc(N * d);
    fill(h, N * d, 2.5f), fill(t, N * d, 0.5f), fill(base, N * d, 1);
    for (int64_t i = 0; i < N * d; i++) // keep |h - t| away from the kink at 1 (FD across it)
        if (fabsf(fabsf(h[i] - t[i]) - 1.0f) < 0.01f)
            h[i] += 0.05f;
    sl1_ctx c = {to_d(h, N * d), to_d(t, N * d), m, N, d};
    memcpy(dh, base, (size_t)(N * d) * sizeof(float));
    double L = hass_train_smoothl1_loss(dh, h, t, m, N, d, 1.0f);
    CHECK(fabs(L - sl1_loss(&c)) < 1e-6 * (1 + fabs(L)));
    unbias(dh, base, N * d);
    fd_grad(fd, c.h, N * d, sl1_loss, &c);
    CHECK_CLOSE(dh, fd, N * d, GATOL, GRTOL, "smoothl1 dh");
    // gscale multiplies the gradient only
    memset(dh, 0, (size_t)(N * d) * sizeof(float));
    double L2 = hass_train_smoothl1_loss(dh, h, t, m, N, d, 3.0f);
    for (int64_t i = 0; i < N * d; i++)
        fd[i] *= 3.0f;
    CHECK(L2 == L);
    CHECK_CLOSE(dh, fd, N * d, 3 * GATOL, GRTOL, "smoothl1 gscale");
    free(c.h), free(c.t), free(h), free(t), free(dh), free(base), free(fd);
}

/* ---------------------------------------------------------------------------------------- */
typedef struct {
    double *z;
    const float *p, *m;
    const int32_t *idx;
    int64_t N, V, K;
    double ws, wk;
} ce_ctx;
static double ce_loss(void *vc) {
    ce_ctx *c = vc;
    double L = 0, M = 0;
    for (int64_t r = 0; r < c->N; r++) {
        const double *z = c->z + r * c->V;
        double mx = -1e300, s = 0;
        for (int64_t v = 0; v < c->V; v++)
            mx = z[v] > mx ? z[v] : mx;
        for (int64_t v = 0; v < c->V; v++)
            s += exp(z[v] - mx);
        double lse = mx + log(s), row = 0;
        for (int64_t v = 0; v < c->V; v++) {
            int in = 0;
            for (int64_t t = 0; t < c->K; t++)
                in |= c->idx[r * c->K + t] == v;
            row += (c->ws + (in ? c->wk : 0)) * c->p[r * c->V + v] * (lse - z[v]);
        }
        L += c->m[r] * row;
        M += c->m[r];
    }
    return L / (M + 1e-5);
}

static void test_topk_select(void) {
    int64_t N = 7, V = 50, K = 10;
    float *p = falloc(N * V);
    int32_t *idx = calloc((size_t)(N * K), sizeof(int32_t)), amax[7];
    fill(p, N * V, 1);
    p[3 * V + 4] = p[3 * V + 9] = 2.0f; // a tie: the lower index comes first
    hass_train_topk_rows(NULL, idx, amax, p, N, V, K);
    int bad = 0;
    for (int64_t r = 0; r < N; r++) {
        const float *pr = p + r * V;
        for (int64_t t = 0; t < K; t++) { // idx[t] has exactly t entries ranked before it
            int32_t v = idx[r * K + t];
            int64_t before = 0;
            for (int64_t u = 0; u < V; u++)
                before += pr[u] > pr[v] || (pr[u] == pr[v] && u < v);
            bad += before != t;
        }
        bad += amax[r] != idx[r * K];
    }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(idx[3 * K], 4);
    CHECK_EQ_INT(idx[3 * K + 1], 9);
    free(p), free(idx);
}

static void test_distill(float ws, float wk, const char *name) {
    int64_t N = 5, V = 13, K = 4;
    float *z = falloc(N * V), *p = falloc(N * V), m[5] = {1, 1, 0, 1, 2};
    float *dl = falloc(N * V), *fd = falloc(N * V);
    int32_t *idx = calloc((size_t)(N * K), sizeof(int32_t)), am[5];
    fill(z, N * V, 3), fill(p, N * V, 3);
    hass_train_softmax_rows(NULL, p, N, V);
    hass_train_topk_rows(NULL, idx, NULL, p, N, V, K);
    ce_ctx c = {to_d(z, N * V), p, m, idx, N, V, K, ws, wk};
    double soft, topk;
    double L = hass_train_distill_loss(NULL, dl, z, p, idx, m, N, V, K, ws, wk, &soft, &topk, am);
    char lab[64];
    snprintf(lab, sizeof lab, "%s value", name);
    CHECK_MSG(fabs(L - ce_loss(&c)) < 1e-5 * (1 + fabs(L)), "%s: %.9g vs %.9g", lab, L,
              ce_loss(&c));
    CHECK(fabs(L - (ws * soft + wk * topk)) < 1e-9 * (1 + fabs(L)));
    fd_grad(fd, c.z, N * V, ce_loss, &c);
    snprintf(lab, sizeof lab, "%s dlogits", name);
    CHECK_CLOSE(dl, fd, N * V, GATOL, GRTOL, lab);
    // in place (dlogits aliasing logits) gives the same result, and the argmax of masked rows
    double L2 = hass_train_distill_loss(NULL, z, z, p, idx, m, N, V, K, ws, wk, NULL, NULL, NULL);
    CHECK(L2 == L);
    CHECK_BITEQ(z, dl, N * V, "distill in place");
    CHECK_EQ_INT(am[2], -1);
    for (int64_t r = 0; r < N; r++) {
        if (m[r] == 0)
            continue;
        int64_t best = 0;
        for (int64_t v = 1; v < V; v++)
            best = c.z[r * V + v] > c.z[r * V + best] ? v : best;
        CHECK_EQ_INT(am[r], best);
    }
    free(c.z), free(z), free(p), free(dl), free(fd), free(idx);
}

/* threads: the pool-parallel loss equals the serial one (fixed per-thread reduction order) */
static void test_distill_threads(void) {
    int64_t N = 37, V = 101, K = 10;
    float *z = falloc(N * V), *p = falloc(N * V), *m = falloc(N), *d1 = falloc(N * V);
    float *d2 = falloc(N * V);
    int32_t *idx = calloc((size_t)(N * K), sizeof(int32_t));
    fill(z, N * V, 3), fill(p, N * V, 3), fill(m, N, 1);
    for (int64_t r = 0; r < N; r++)
        m[r] = m[r] > 0 ? 1.0f : 0.0f;
    hass_pool *pool = hass_pool_create(2);
    hass_train_softmax_rows(pool, p, N, V);
    hass_train_topk_rows(pool, idx, NULL, p, N, V, K);
    double a =
        hass_train_distill_loss(NULL, d1, z, p, idx, m, N, V, K, 0.1f, 1.0f, NULL, NULL, NULL);
    double b =
        hass_train_distill_loss(pool, d2, z, p, idx, m, N, V, K, 0.1f, 1.0f, NULL, NULL, NULL);
    CHECK(fabs(a - b) < 1e-12 * (1 + fabs(a)));
    CHECK_BITEQ(d1, d2, N * V, "distill 1 vs 2 threads");
    hass_pool_destroy(pool);
    free(z), free(p), free(m), free(d1), free(d2), free(idx);
}

/* ---------------------------------------------------------------------------------------- */
static void test_adamw(void) {
    int64_t n = 9;
    float *p = falloc(n), *g = falloc(n), *m = falloc(n), *v = falloc(n);
    double rp[9], rm[9] = {0}, rv[9] = {0};
    fill(p, n, 1);
    for (int64_t i = 0; i < n; i++)
        rp[i] = p[i];
    hass_adamw_config c = hass_adamw_default();
    for (int t = 1; t <= 5; t++) {
        fill(g, n, 1.2f); // some elements beyond the 0.5 clip
        double lr = 1e-2;
        for (int64_t i = 0; i < n; i++) {
            double gi = g[i] > 0.5f ? 0.5 : (g[i] < -0.5f ? -0.5 : g[i]);
            rp[i] *= 1 - lr * 0.01;
            rm[i] = 0.9 * rm[i] + 0.1 * gi;
            rv[i] = 0.95 * rv[i] + 0.05 * gi * gi;
            double mh = rm[i] / (1 - pow(0.9, t)), vh = rv[i] / (1 - pow(0.95, t));
            rp[i] -= lr * mh / (sqrt(vh) + 1e-8);
        }
        hass_adamw_update(p, g, m, v, (size_t)n, (float)lr, t, &c);
        for (int64_t i = 0; i < n; i++)
            CHECK(fabsf(g[i]) <= 0.5f);
    }
    float rpf[9];
    for (int64_t i = 0; i < n; i++)
        rpf[i] = (float)rp[i];
    CHECK_CLOSE(p, rpf, n, 1e-6, 1e-5, "adamw vs double reference");
    // schedule: warmup 10, total 110, peak 1
    CHECK(hass_lr_schedule(0, 10, 110, 1.0f) == 0.0f);
    CHECK(fabsf(hass_lr_schedule(5, 10, 110, 1.0f) - 0.5f) < 1e-7f);
    CHECK(fabsf(hass_lr_schedule(10, 10, 110, 1.0f) - 1.0f) < 1e-7f);
    CHECK(fabsf(hass_lr_schedule(60, 10, 110, 1.0f) - 0.5f) < 1e-7f);
    CHECK(hass_lr_schedule(110, 10, 110, 1.0f) == 0.0f);
    CHECK(hass_lr_schedule(200, 10, 110, 1.0f) == 0.0f);
    CHECK(fabsf(hass_lr_schedule(0, 0, 100, 2.0f) - 2.0f) < 1e-7f);
    free(p), free(g), free(m), free(v);
}

int main(void) {
    check_init("test_train_ops");
    hass_rng_seed(&rng, 1234);
    test_linear(1);
    test_linear(0);
    test_rmsnorm();
    test_rope(HASS_ROPE_HALF);
    test_rope(HASS_ROPE_INTERLEAVED);
    test_mask();
    hass_pool *pool = hass_pool_create(2);
    for (int j = 0; j <= 2; j++) {
        test_attention(j, 7, 3, NULL); // several query blocks, incl. a partial one
        test_attention(j, 9, 0, NULL); // one block (default size)
        test_attention(j, 7, 2, pool); // 2 threads: (b, head) / (b, kv group) split
    }
    test_attention(2, 2, 1, NULL); // T <= j: rows see only draft streams
    hass_pool_destroy(pool);
    test_silu_residual();
    test_smoothl1();
    test_topk_select();
    test_distill(1.0f, 0.0f, "soft CE");
    test_distill(0.0f, 1.0f, "top-K");
    test_distill(0.1f, 1.0f, "fused 0.1 soft + 1.0 top-K");
    test_distill_threads();
    test_adamw();
    return check_exit();
}
