/*
 * test_hass_step.c — a whole HASS training step (HASS.md 5.4) with n = 3 on a tiny draft
 * (d=16, H=4, Hkv=2, ffn=24, V=37, T=9, B=2), checked against a brute-force reference:
 *
 *   - the reference is a DOUBLE-precision forward written from the definitions alone: for step j
 *     it runs the FC on every stream 0..j, builds keys/values of all (j+1)*T (stream, position)
 *     pairs and a dense mask straight from HASS.md 5.2.2 (no shifted-causal trick, no shared
 *     code with src/train), and evaluates 1.0*SmoothL1 + 0.1*softCE + 1.0*TopK(K=10);
 *   - the per-step losses and top-1 agreement of hass_train_grad equal the reference's;
 *   - every gradient element equals the central finite difference of the reference's total loss
 *     sum_j L_j, with the draft streams S^(j) frozen at their unperturbed values (they are
 *     detached in HASS: no gradient flows through them);
 *   - a small overfit run (300 AdamW steps on one batch) must reach a loss the justification of
 *     which is given at test_overfit;
 *   - the layout (EAGLE names, offsets), the init scheme, and argument errors.
 */
#include "check.h"
#include "train/draft_grad.h"
#include "train/train.h"

#include <stdint.h>

enum { D = 16, NH = 4, NKV = 2, FF = 24, VOC = 37, TT = 9, BB = 2, NA = 3, DH = D / NH };
#define NROW (BB * TT)

static hass_draft_config tiny_cfg(void) {
    hass_draft_config c = {.d = D,
                           .H = NH,
                           .Hkv = NKV,
                           .ffn = FF,
                           .V = VOC,
                           .has_bias = 1,
                           .rms_eps = 1e-6f,
                           .rope = {.theta = 10000.0f},
                           .rope_style = HASS_ROPE_HALF};
    return c;
}

/* ---- the data: per sequence a chain of features f_0..f_T; F = f_i + noise, TGT = f_{i+1} ---- */
typedef struct {
    float feat[NROW * D], tgt[NROW * D], mask[NROW];
    int32_t tok[NROW];
    float embed[VOC * D], lmh[VOC * D];
} data_t;

static void make_data(data_t *x, uint64_t seed) {
    hass_rng r;
    hass_rng_seed(&r, seed);
    for (int i = 0; i < VOC * D; i++) {
        x->embed[i] = 2.0f * hass_rng_uniform(&r) - 1.0f;
        x->lmh[i] = 2.0f * hass_rng_uniform(&r) - 1.0f;
    }
    float chain[(TT + 1) * D];
    for (int b = 0; b < BB; b++) {
        for (int i = 0; i < (TT + 1) * D; i++)
            chain[i] = hass_rng_normal(&r);
        for (int i = 0; i < TT; i++) {
            int row = b * TT + i;
            for (int e = 0; e < D; e++) {
                // uniform input noise as in HASS.md 3, at a fixed +-0.05 (HASS's 51.2/L would
                // swamp unit features at L = 9)
                float noise = (hass_rng_uniform(&r) - 0.5f) * 0.1f;
                x->feat[row * D + e] = chain[i * D + e] + noise;
                x->tgt[row * D + e] = chain[(i + 1) * D + e];
            }
            x->tok[row] = (int32_t)(hass_rng_u64(&r) % VOC);
            x->mask[row] = (i >= 2 && i != 5) ? 1.0f : 0.0f; // a prompt, a hole, last row kept
        }
    }
}

/* ---- brute-force double reference ---- */
typedef struct {
    const data_t *x;
    double *p; /* parameters, same layout as the float array */
    hass_draft_layout L;
    double S[NA][NROW * D]; /* frozen input streams */
    double P[NROW * VOC];   /* target distributions */
    int topk[NROW][10];
    int tgt_amax[NROW];
} ref_t;

static int mask_def(int j, int i, int s, int p) {
    return s == 0 ? p <= i - j : p == i - j + s;
}

static void rope_d(double *v, int pos) {
    for (int i = 0; i < DH / 2; i++) {
        double ang = pos * pow(10000.0, -2.0 * i / DH), a = v[i], b = v[i + DH / 2];
        v[i] = a * cos(ang) - b * sin(ang);
        v[i + DH / 2] = b * cos(ang) + a * sin(ang);
    }
}

static void matvec(double *y, const double *W, const double *x, int out, int in) {
    for (int o = 0; o < out; o++) {
        double s = 0;
        for (int i = 0; i < in; i++)
            s += W[o * in + i] * x[i];
        y[o] = s;
    }
}

static void ref_prepare(ref_t *R) {
    for (int r = 0; r < NROW; r++) {
        double z[VOC], mx = -1e300, s = 0;
        for (int v = 0; v < VOC; v++) {
            z[v] = 0;
            for (int e = 0; e < D; e++)
                z[v] += (double)R->x->lmh[v * D + e] * R->x->tgt[r * D + e];
            mx = z[v] > mx ? z[v] : mx;
        }
        for (int v = 0; v < VOC; v++)
            s += exp(z[v] - mx);
        for (int v = 0; v < VOC; v++)
            R->P[r * VOC + v] = exp(z[v] - mx) / s;
        int used[VOC] = {0};
        for (int t = 0; t < 10; t++) { // selection sort: the 10 largest
            int best = -1;
            for (int v = 0; v < VOC; v++)
                if (!used[v] && (best < 0 || R->P[r * VOC + v] > R->P[r * VOC + best]))
                    best = v;
            used[best] = 1;
            R->topk[r][t] = best;
        }
        R->tgt_amax[r] = R->topk[r][0];
    }
    for (int r = 0; r < NROW; r++)
        for (int e = 0; e < D; e++)
            R->S[0][r * D + e] = R->x->feat[r * D + e];
}

/* Loss of step j with the current parameters and frozen streams; h_out (NROW, D) optional;
 * *top1 = agreement on masked rows. */
static double ref_step(const ref_t *R, int j, double *h_out, double *top1) {
    const double *p = R->p;
    const size_t *o = R->L.off;
    const int kvd = NKV * DH;
    static double X[NA][NROW * D], Kk[NA][NROW * NKV * DH], Vv[NA][NROW * NKV * DH];
    for (int s = 0; s <= j; s++)
        for (int r = 0; r < NROW; r++) {
            double u[2 * D];
            for (int e = 0; e < D; e++) {
                u[e] = R->x->embed[R->x->tok[r] * D + e];
                u[D + e] = R->S[s][r * D + e];
            }
            matvec(X[s] + r * D, p + o[HASS_DP_FC_W], u, D, 2 * D);
            for (int e = 0; e < D; e++)
                X[s][r * D + e] += p[o[HASS_DP_FC_B] + e];
            matvec(Kk[s] + r * kvd, p + o[HASS_DP_K], X[s] + r * D, kvd, D);
            matvec(Vv[s] + r * kvd, p + o[HASS_DP_V], X[s] + r * D, kvd, D);
            for (int h = 0; h < NKV; h++)
                rope_d(Kk[s] + r * kvd + h * DH, r % TT);
        }
    double loss_fea = 0, loss_soft = 0, loss_topk = 0, msum = 0, hit = 0, cnt = 0;
    for (int r = 0; r < NROW; r++) {
        int b = r / TT, i = r % TT;
        double q[D], att[D], Rr[D], z[D], g[FF], u[FF], mlp[D], h[D];
        matvec(q, p + o[HASS_DP_Q], X[j] + r * D, D, D);
        for (int hh = 0; hh < NH; hh++)
            rope_d(q + hh * DH, i);
        for (int hh = 0; hh < NH; hh++) {
            int hk = hh / (NH / NKV);
            double w[NA * TT], mx = -1e300, sum = 0;
            for (int s = 0; s <= j; s++)
                for (int pp = 0; pp < TT; pp++) {
                    w[s * TT + pp] = -INFINITY;
                    if (!mask_def(j, i, s, pp))
                        continue;
                    double sc = 0;
                    for (int e = 0; e < DH; e++)
                        sc += q[hh * DH + e] * Kk[s][(b * TT + pp) * kvd + hk * DH + e];
                    w[s * TT + pp] = sc / sqrt((double)DH);
                    mx = w[s * TT + pp] > mx ? w[s * TT + pp] : mx;
                }
            for (int t = 0; t < (j + 1) * TT; t++)
                sum += (w[t] = isinf(w[t]) ? 0.0 : exp(w[t] - mx));
            for (int e = 0; e < DH; e++) {
                double a = 0;
                for (int s = 0; s <= j; s++)
                    for (int pp = 0; pp < TT; pp++)
                        a += w[s * TT + pp] / sum * Vv[s][(b * TT + pp) * kvd + hk * DH + e];
                att[hh * DH + e] = a;
            }
        }
        matvec(Rr, p + o[HASS_DP_O], att, D, D);
        double ss = 0;
        for (int e = 0; e < D; e++) {
            Rr[e] += X[j][r * D + e];
            ss += Rr[e] * Rr[e];
        }
        double rs = 1.0 / sqrt(ss / D + 1e-6);
        for (int e = 0; e < D; e++)
            z[e] = Rr[e] * rs * p[o[HASS_DP_NORM] + e];
        matvec(g, p + o[HASS_DP_GATE], z, FF, D);
        matvec(u, p + o[HASS_DP_UP], z, FF, D);
        for (int f = 0; f < FF; f++)
            g[f] = g[f] / (1 + exp(-g[f])) * u[f];
        matvec(mlp, p + o[HASS_DP_DOWN], g, D, FF);
        for (int e = 0; e < D; e++)
            h[e] = Rr[e] + mlp[e];
        if (h_out)
            memcpy(h_out + r * D, h, sizeof h);
        double m = R->x->mask[r];
        msum += m;
        if (m == 0)
            continue;
        double sl = 0;
        for (int e = 0; e < D; e++) {
            double dd = h[e] - R->x->tgt[r * D + e];
            sl += fabs(dd) < 1 ? 0.5 * dd * dd : fabs(dd) - 0.5;
        }
        loss_fea += m * sl / D;
        double lg[VOC], mx = -1e300, se = 0;
        int am = 0;
        for (int v = 0; v < VOC; v++) {
            lg[v] = 0;
            for (int e = 0; e < D; e++)
                lg[v] += (double)R->x->lmh[v * D + e] * h[e];
            if (lg[v] > mx)
                mx = lg[v], am = v;
        }
        for (int v = 0; v < VOC; v++)
            se += exp(lg[v] - mx);
        double lse = mx + log(se);
        for (int v = 0; v < VOC; v++)
            loss_soft += m * R->P[r * VOC + v] * (lse - lg[v]);
        for (int t = 0; t < 10; t++)
            loss_topk += m * R->P[r * VOC + R->topk[r][t]] * (lse - lg[R->topk[r][t]]);
        cnt++, hit += am == R->tgt_amax[r];
    }
    if (top1)
        *top1 = hit / cnt;
    double Z = msum + 1e-5;
    return 1.0 * loss_fea / Z + 0.1 * loss_soft / Z + 1.0 * loss_topk / Z;
}

/* Runs the reference n steps at the current parameters, (re)building the frozen streams. */
static double ref_run(ref_t *R, double *loss, double *top1) {
    static double H[NROW * D];
    double tot = 0;
    for (int j = 0; j < NA; j++) {
        loss[j] = ref_step(R, j, H, &top1[j]);
        tot += loss[j];
        if (j + 1 < NA)
            for (int r = 0; r < NROW; r++)
                for (int e = 0; e < D; e++)
                    R->S[j + 1][r * D + e] =
                        r % TT == 0 ? R->x->feat[r * D + e] : H[(r - 1) * D + e];
    }
    return tot;
}

static double ref_total_frozen(const ref_t *R) {
    double tot = 0;
    for (int j = 0; j < NA; j++)
        tot += ref_step(R, j, NULL, NULL);
    return tot;
}

static hass_train_batch batch_of(const data_t *x) {
    hass_train_batch b = {
        .B = BB, .T = TT, .feat = x->feat, .tok = x->tok, .tgt = x->tgt, .mask = x->mask};
    return b;
}

static void test_grad_vs_reference(void) {
    static data_t x;
    make_data(&x, 7);
    hass_draft_config c = tiny_cfg();
    hass_err err = {0};
    // capacity larger than the batch: the step must work on any B <= B_max, T <= T_max
    hass_trainer *tr = hass_trainer_create(&c, x.embed, x.lmh, BB + 1, TT + 3, NA, 42, NULL, &err);
    CHECK(tr != NULL);
    if (!tr)
        return;
    hass_train_batch b = batch_of(&x);
    hass_train_opts o = hass_train_opts_default();
    hass_train_stats st;
    CHECK_EQ_INT(hass_train_grad(tr, &b, &o, &st, &err), HASS_OK);

    static ref_t R;
    R.x = &x;
    R.L = tr->layout;
    size_t n = tr->layout.total;
    R.p = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++)
        R.p[i] = tr->params[i];
    ref_prepare(&R);
    double rl[NA], rt[NA];
    ref_run(&R, rl, rt);
    for (int j = 0; j < NA; j++) {
        CHECK_MSG(fabs(st.loss[j] - rl[j]) < 2e-5 * (1 + fabs(rl[j])),
                  "step %d loss %.9g vs ref %.9g", j, st.loss[j], rl[j]);
        CHECK_MSG(st.top1[j] == rt[j], "step %d top1 %g vs ref %g", j, st.top1[j], rt[j]);
    }
    CHECK(fabs(st.loss_mean - (rl[0] + rl[1] + rl[2]) / 3) < 2e-5);
    CHECK(st.loss[1] != st.loss[0] && st.loss[2] != st.loss[1]); // the streams really differ

    // finite differences of sum_j L_j (streams frozen) for every parameter element
    float *fd = malloc(n * sizeof(float));
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double p0 = R.p[i];
        R.p[i] = p0 + h;
        double lp = ref_total_frozen(&R);
        R.p[i] = p0 - h;
        double lm = ref_total_frozen(&R);
        R.p[i] = p0;
        fd[i] = (float)((lp - lm) / (2 * h));
    }
    for (int t = 0; t < HASS_DP_COUNT; t++) {
        size_t off = tr->layout.off[t], ne = tr->layout.numel[t];
        char lab[96];
        snprintf(lab, sizeof lab, "grad %s", hass_draft_param_name((hass_draft_param)t));
        CHECK_CLOSE(tr->grads + off, fd + off, (long)ne, 1e-4, 3e-3, lab);
        double nz = 0;
        for (size_t i = 0; i < ne; i++)
            nz += fabs(fd[off + i]);
        CHECK_MSG(nz > 1e-3, "%s: gradient should not vanish", lab); // the check has teeth
    }

    // n = 1 is EAGLE: one step, and its loss equals step 0 of the HASS run
    hass_train_opts o1 = o;
    o1.n_align = 1;
    hass_train_stats s1;
    CHECK_EQ_INT(hass_train_grad(tr, &b, &o1, &s1, &err), HASS_OK);
    CHECK(s1.n_align == 1 && s1.loss[0] == st.loss[0] && s1.loss_mean == st.loss[0]);

    // EAGLE / HASS stage-1 loss (w_topk = 0): same forward, the Top-K term drops out
    hass_train_opts o0 = o;
    o0.w_topk = 0.0f;
    hass_train_stats s0;
    CHECK_EQ_INT(hass_train_grad(tr, &b, &o0, &s0, &err), HASS_OK);
    for (int j = 0; j < NA; j++) {
        CHECK(s0.loss_fea[j] == st.loss_fea[j] && s0.loss_soft[j] == st.loss_soft[j]);
        CHECK(s0.loss_topk[j] == 0.0);
        CHECK(fabs(s0.loss[j] - (st.loss_fea[j] + (double)0.1f * st.loss_soft[j])) < 1e-12);
    }

    // argument errors
    hass_train_batch bad = b;
    bad.T = TT + 4;
    CHECK_EQ_INT(hass_train_grad(tr, &bad, &o, NULL, &err), HASS_STATUS_ARG);
    o1.n_align = NA + 1;
    CHECK_EQ_INT(hass_train_grad(tr, &b, &o1, NULL, &err), HASS_STATUS_ARG);
    int32_t tok0 = x.tok[3];
    x.tok[3] = VOC;
    CHECK_EQ_INT(hass_train_grad(tr, &b, &o, NULL, &err), HASS_STATUS_ARG);
    x.tok[3] = tok0;
    free(fd), free(R.p);
    hass_trainer_destroy(tr);
}

/*
 * Overfit. The floor of the loss is L* = the loss of a draft whose output equals the target
 * feature (h_i = f_{i+1}): then SmoothL1 = 0 and q = p, so the soft CE equals the entropy H(p),
 * its minimum over q. (The Top-K term can go slightly below -sum_topK p log p by moving mass into
 * the top K, so the true minimum is a little under L*.) Measured at the random init the gap
 * L0 - L* is dominated by the feature and CE terms; 300 AdamW steps at lr 1e-2 on 18 rows with
 * ~2.5k parameters must close at least 90% of it: final < L* + 0.1 (L0 - L*). A broken gradient
 * (wrong sign, a missing term, a stream wired wrongly) stalls far above that.
 */
static void test_overfit(void) {
    static data_t x;
    make_data(&x, 11);
    hass_draft_config c = tiny_cfg();
    hass_err err = {0};
    hass_pool *pool = hass_pool_create(2);
    hass_trainer *tr = hass_trainer_create(&c, x.embed, x.lmh, BB, TT, NA, 3, pool, &err);
    CHECK(tr != NULL);
    if (!tr)
        return;
    hass_train_batch b = batch_of(&x);
    hass_train_opts o = hass_train_opts_default();
    // L*: the loss of the perfect draft, from the library's own loss functions
    double Lstar;
    {
        float P[NROW * VOC], Lg[NROW * VOC], dl[NROW * VOC];
        int32_t idx[NROW * 10];
        hass_train_linear_forward(P, x.tgt, x.lmh, NULL, NROW, D, VOC);
        memcpy(Lg, P, sizeof P);
        hass_train_softmax_rows(NULL, P, NROW, VOC);
        hass_train_topk_rows(NULL, idx, NULL, P, NROW, VOC, 10);
        Lstar = hass_train_distill_loss(NULL, dl, Lg, P, idx, x.mask, NROW, VOC, 10, 0.1f, 1.0f,
                                        NULL, NULL, NULL);
    }
    hass_train_stats st;
    double L0 = 0, L = 0;
    for (int it = 0; it < 300; it++) {
        float lr = hass_lr_schedule(it, 10, 300, 1e-2f);
        CHECK_EQ_INT(hass_train_step(tr, &b, &o, lr, &st, &err), HASS_OK);
        if (it == 0)
            L0 = st.loss_mean;
        L = st.loss_mean;
    }
    printf("overfit: loss %.4f -> %.4f after 300 steps (floor L* %.4f), top-1 %.2f/%.2f/%.2f\n", L0,
           L, Lstar, st.top1[0], st.top1[1], st.top1[2]);
    CHECK_MSG(L < Lstar + 0.1 * (L0 - Lstar), "overfit: L0 %.4f -> %.4f, floor %.4f", L0, L, Lstar);
    CHECK(st.top1[NA - 1] >= 0.75); // 12 masked rows; at least 9 agree
    CHECK_EQ_INT(tr->adam_t, 300);
    hass_trainer_destroy(tr);
    hass_pool_destroy(pool);
}

static void test_layout_init(void) {
    hass_draft_config c = tiny_cfg();
    hass_draft_layout L;
    hass_draft_layout_init(&L, &c);
    CHECK(strcmp(hass_draft_param_name(HASS_DP_FC_W), "fc.weight") == 0);
    CHECK(strcmp(hass_draft_param_name(HASS_DP_NORM), "layers.0.post_attention_layernorm.weight") ==
          0);
    CHECK(hass_draft_param_name(HASS_DP_COUNT) == NULL);
    size_t sum = 0;
    for (int p = 0; p < HASS_DP_COUNT; p++) {
        CHECK(L.off[p] % 16 == 0);
        if (p > 0)
            CHECK(L.off[p] >= L.off[p - 1] + L.numel[p - 1]);
        sum += L.numel[p];
    }
    size_t expect = 2 * D * D + D + D * D + 2 * (NKV * DH) * D + D * D + 3 * FF * D + D;
    CHECK_EQ_INT(sum, expect);
    CHECK(L.shape[HASS_DP_K][0] == NKV * DH && L.shape[HASS_DP_K][1] == D);
    CHECK(L.ndim[HASS_DP_NORM] == 1 && L.ndim[HASS_DP_FC_W] == 2);
    c.has_bias = 0;
    hass_draft_layout L2;
    hass_draft_layout_init(&L2, &c);
    CHECK(L2.numel[HASS_DP_FC_B] == 0 && L2.ndim[HASS_DP_FC_B] == 0);
    // init: deterministic, within the nn.Linear bound, norm weight 1
    c.has_bias = 1;
    float *a = malloc(L.total * sizeof(float)), *b = malloc(L.total * sizeof(float));
    hass_draft_params_init(a, &L, &c, 5);
    hass_draft_params_init(b, &L, &c, 5);
    CHECK_BITEQ(a, b, L.total, "init deterministic");
    int bad = 0;
    for (int p = 0; p < HASS_DP_COUNT; p++) {
        double bound = p == HASS_DP_FC_B ? 1 / sqrt(2.0 * D) : 1 / sqrt((double)L.shape[p][1]);
        for (size_t i = 0; i < L.numel[p]; i++) {
            float w = a[L.off[p] + i];
            bad += p == HASS_DP_NORM ? w != 1.0f : !(fabs(w) <= bound);
        }
    }
    CHECK_EQ_INT(bad, 0);
    hass_draft_params_init(b, &L, &c, 6);
    CHECK(memcmp(a, b, L.total * sizeof(float)) != 0);
    free(a), free(b);
    hass_err err = {0};
    c.H = 3;
    CHECK_EQ_INT(hass_draft_config_check(&c, &err), HASS_STATUS_ARG);
}

static void test_noise(void) {
    // uniform in +-51.2/L, mean ~0, and really spread over the interval
    int64_t L = 128, d = 64;
    float *x = calloc((size_t)(L * d), sizeof(float));
    hass_rng r;
    hass_rng_seed(&r, 9);
    hass_train_add_noise(x, L, d, &r);
    double lim = 51.2 / (double)L, mx = 0, mean = 0;
    for (int64_t i = 0; i < L * d; i++) {
        mx = fabs(x[i]) > mx ? fabs(x[i]) : mx;
        mean += x[i];
    }
    mean /= (double)(L * d);
    CHECK(mx <= lim && mx > 0.99 * lim);
    CHECK(fabs(mean) < 0.02 * lim);
    free(x);
}

int main(void) {
    check_init("test_hass_step");
    test_layout_init();
    test_noise();
    test_grad_vs_reference();
    test_overfit();
    return check_exit();
}
