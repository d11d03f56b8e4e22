/*
 * test_pretrain.c — the whole-model trainer (src/train/pretrain.c) on a tiny LLaMA
 * (d=16, 2 layers, H=4, Hkv=2, ffn=24, V=37, T=9, B=2):
 *   - a DOUBLE-precision reference forward written from the definitions alone (dense causal
 *     attention, explicit RoPE and RMSNorm, no code shared with src/train) gives the same loss;
 *   - every gradient element equals the central finite difference of the reference's loss, for
 *     an untied and a tied LM head, with an ignored (negative) target in the batch;
 *   - the trainer's logits equal the inference engine's (hass_model_forward) on the same
 *     weights, so what pretraining optimises is what decoding runs;
 *   - gradients are bit-identical between two runs and accumulate over micro-batches;
 *   - a short overfit run drives the loss of a fixed batch far down;
 *   - layout names and shapes, the cosine schedule, the FLOP count, bad configs.
 */
#include "check.h"
#include "model/model.h"
#include "train/gemm.h"
#include "train/pretrain.h"

#include <stdint.h>

enum { D = 16, NL = 2, NH = 4, NKV = 2, FF = 24, VOC = 37, TT = 9, BB = 2, DH = D / NH };

static hass_lm_config tiny_cfg(int tie) {
    hass_lm_config c = {.d = D,
                        .n_layers = NL,
                        .H = NH,
                        .Hkv = NKV,
                        .ffn = FF,
                        .V = VOC,
                        .ctx = TT,
                        .rms_eps = 1e-5f,
                        .rope_theta = 10000.0f,
                        .tie = tie};
    return c;
}

/* ---- reference (double) ---- */
typedef struct {
    const hass_lm_layout *L;
    const hass_lm_config *c;
    double *p;
    const int32_t *tok;
    int64_t B;
} ref_t;

static const double *rt(const ref_t *R, int idx) {
    return R->p + R->L->t[idx].off;
}

/* y[o] = sum_k W[o][k] x[k], W (out, in) */
static void ref_mv(double *y, const double *W, const double *x, int64_t out, int64_t in) {
    for (int64_t o = 0; o < out; o++) {
        double s = 0;
        for (int64_t k = 0; k < in; k++)
            s += W[o * in + k] * x[k];
        y[o] = s;
    }
}

static void ref_norm(double *y, const double *x, const double *w, int64_t d, double eps) {
    double ss = 0;
    for (int64_t k = 0; k < d; k++)
        ss += x[k] * x[k];
    double r = 1.0 / sqrt(ss / (double)d + eps);
    for (int64_t k = 0; k < d; k++)
        y[k] = x[k] * r * w[k];
}

static void ref_rope(double *x, int64_t nh, int64_t pos, double theta) {
    for (int64_t h = 0; h < nh; h++)
        for (int64_t j = 0; j < DH / 2; j++) {
            double a = (double)pos * pow(theta, -2.0 * (double)j / DH);
            double *v = x + h * DH, x0 = v[j], x1 = v[j + DH / 2];
            v[j] = x0 * cos(a) - x1 * sin(a);
            v[j + DH / 2] = x1 * cos(a) + x0 * sin(a);
        }
}

/* Sum of per-row cross-entropies; logits_out (B*T, V) when non-NULL. */
static double ref_loss(const ref_t *R, double *logits_out) {
    const hass_lm_config *c = R->c;
    const hass_lm_layout *L = R->L;
    int64_t T = c->ctx, qd = NH * DH, kvd = NKV * DH;
    static double X[TT][D], Z[TT][D], Q[TT][NH * DH], K[TT][NKV * DH], Vv[TT][NKV * DH];
    static double O[TT][NH * DH], tmp[FF], g[FF], u[FF], lg[VOC];
    double total = 0;
    for (int64_t b = 0; b < R->B; b++) {
        const int32_t *tk = R->tok + b * (T + 1);
        for (int64_t i = 0; i < T; i++)
            memcpy(X[i], rt(R, L->emb) + (int64_t)tk[i] * D, sizeof X[i]);
        for (int64_t l = 0; l < NL; l++) {
            int base = L->layer0 + HASS_LW_COUNT * (int)l;
            for (int64_t i = 0; i < T; i++) {
                ref_norm(Z[i], X[i], rt(R, base + HASS_LW_ATTN_NORM), D, c->rms_eps);
                ref_mv(Q[i], rt(R, base + HASS_LW_Q), Z[i], qd, D);
                ref_mv(K[i], rt(R, base + HASS_LW_K), Z[i], kvd, D);
                ref_mv(Vv[i], rt(R, base + HASS_LW_V), Z[i], kvd, D);
                ref_rope(Q[i], NH, i, c->rope_theta);
                ref_rope(K[i], NKV, i, c->rope_theta);
            }
            for (int64_t i = 0; i < T; i++)
                for (int64_t h = 0; h < NH; h++) {
                    int64_t kh = h / (NH / NKV);
                    double s[TT], mx = -1e300, den = 0;
                    for (int64_t j = 0; j <= i; j++) {
                        s[j] = 0;
                        for (int64_t e = 0; e < DH; e++)
                            s[j] += Q[i][h * DH + e] * K[j][kh * DH + e];
                        s[j] /= sqrt((double)DH);
                        mx = s[j] > mx ? s[j] : mx;
                    }
                    for (int64_t j = 0; j <= i; j++)
                        den += (s[j] = exp(s[j] - mx));
                    for (int64_t e = 0; e < DH; e++) {
                        double a = 0;
                        for (int64_t j = 0; j <= i; j++)
                            a += s[j] / den * Vv[j][kh * DH + e];
                        O[i][h * DH + e] = a;
                    }
                }
            for (int64_t i = 0; i < T; i++) {
                double r[D], z2[D], y[D];
                ref_mv(r, rt(R, base + HASS_LW_O), O[i], D, qd);
                for (int64_t k = 0; k < D; k++)
                    r[k] += X[i][k];
                ref_norm(z2, r, rt(R, base + HASS_LW_FFN_NORM), D, c->rms_eps);
                ref_mv(g, rt(R, base + HASS_LW_GATE), z2, FF, D);
                ref_mv(u, rt(R, base + HASS_LW_UP), z2, FF, D);
                for (int64_t k = 0; k < FF; k++)
                    tmp[k] = g[k] / (1 + exp(-g[k])) * u[k];
                ref_mv(y, rt(R, base + HASS_LW_DOWN), tmp, D, FF);
                for (int64_t k = 0; k < D; k++)
                    X[i][k] = r[k] + y[k];
            }
        }
        for (int64_t i = 0; i < T; i++) {
            double xn[D];
            ref_norm(xn, X[i], rt(R, L->norm), D, c->rms_eps);
            ref_mv(lg, rt(R, L->head), xn, VOC, D);
            if (logits_out)
                memcpy(logits_out + (b * T + i) * VOC, lg, sizeof lg);
            int32_t y = tk[i + 1];
            if (y < 0)
                continue;
            double mx = lg[0], s = 0;
            for (int v = 1; v < VOC; v++)
                mx = lg[v] > mx ? lg[v] : mx;
            for (int v = 0; v < VOC; v++)
                s += exp(lg[v] - mx);
            total += log(s) + mx - lg[y];
        }
    }
    return total;
}

static void make_tokens(int32_t *tok, int64_t B, uint64_t seed) {
    hass_rng r;
    hass_rng_seed(&r, seed);
    for (int64_t i = 0; i < B * (TT + 1); i++)
        tok[i] = (int32_t)(hass_rng_u64(&r) % VOC);
}

static void test_gradients(int tie) {
    hass_lm_config c = tiny_cfg(tie);
    hass_err err = {0};
    hass_lm_trainer *tr = hass_lm_trainer_create(&c, BB, 7, NULL, &err);
    CHECK(tr != NULL);
    if (!tr)
        return;
    // make the norms non-trivial so their gradients are tested meaningfully
    hass_rng r;
    hass_rng_seed(&r, 99);
    for (int i = 0; i < tr->layout.n; i++)
        if (tr->layout.t[i].shape[1] == 0)
            for (size_t k = 0; k < tr->layout.t[i].numel; k++)
                tr->params[tr->layout.t[i].off + k] = 0.5f + hass_rng_uniform(&r);
    int32_t tok[BB * (TT + 1)];
    make_tokens(tok, BB, 3);
    tok[TT] = -1; // one ignored target (the last target of sequence 0, never an input)
    float gscale = 0.25f;
    memset(tr->grads, 0, tr->layout.total * sizeof(float));
    int64_t cnt = 0;
    double loss = hass_lm_forward_backward(tr, tok, BB, gscale, 1, &cnt);
    CHECK_EQ_INT(cnt, BB * TT - 1);

    size_t n = tr->layout.total;
    ref_t R = {&tr->layout, &c, malloc(n * sizeof(double)), tok, BB};
    for (size_t i = 0; i < n; i++)
        R.p[i] = tr->params[i];
    double rl = ref_loss(&R, NULL);
    CHECK_MSG(fabs(loss - rl) < 1e-5 * (1 + fabs(rl)), "loss %.9g vs ref %.9g", loss, rl);

    float *fd = calloc(n, sizeof(float));
    const double h = 1e-5;
    for (size_t i = 0; i < n; i++) {
        double p0 = R.p[i];
        R.p[i] = p0 + h;
        double lp = ref_loss(&R, NULL);
        R.p[i] = p0 - h;
        double lm = ref_loss(&R, NULL);
        R.p[i] = p0;
        fd[i] = (float)(gscale * (lp - lm) / (2 * h));
    }
    for (int t = 0; t < tr->layout.n; t++) {
        const hass_lm_tensor *te = &tr->layout.t[t];
        char lab[128];
        snprintf(lab, sizeof lab, "%s grad %s", tie ? "tied" : "untied", te->name);
        CHECK_CLOSE(tr->grads + te->off, fd + te->off, (long)te->numel, 2e-5, 3e-3, lab);
        double nz = 0;
        for (size_t i = 0; i < te->numel; i++)
            nz += fabs(fd[te->off + i]);
        CHECK_MSG(nz > 1e-4, "%s: gradient should not vanish", lab);
    }

    // determinism and accumulation: a second call adds exactly the same gradient again
    float *g1 = malloc(n * sizeof(float));
    memcpy(g1, tr->grads, n * sizeof(float));
    memset(tr->grads, 0, n * sizeof(float));
    double loss2 = hass_lm_forward_backward(tr, tok, BB, gscale, 1, NULL);
    CHECK(loss2 == loss);
    CHECK_BITEQ(tr->grads, g1, n, "gradients bit-identical across runs");
    hass_lm_forward_backward(tr, tok, BB, gscale, 1, NULL);
    for (size_t i = 0; i < n; i++)
        g1[i] *= 2.0f;
    CHECK_CLOSE(tr->grads, g1, (long)n, 1e-7, 1e-6, "gradients accumulate");
    // forward only leaves gradients alone and gives the same loss
    memcpy(g1, tr->grads, n * sizeof(float));
    double l3 = hass_lm_forward_backward(tr, tok, BB, gscale, 0, NULL);
    CHECK(fabs(l3 - loss) < 1e-5 * (1 + fabs(loss)));
    CHECK_BITEQ(tr->grads, g1, n, "forward-only keeps the gradients");
    free(g1), free(fd), free(R.p);
    hass_lm_trainer_destroy(tr);
}

/* The trainer's forward equals the inference engine's on the same weights. */
static void test_matches_inference(void) {
    hass_lm_config c = tiny_cfg(0);
    hass_err err = {0};
    hass_lm_trainer *tr = hass_lm_trainer_create(&c, 1, 11, NULL, &err);
    CHECK(tr != NULL);
    if (!tr)
        return;
    hass_model_config mc = hass_model_config_make(D, FF, NL, NH, NKV, VOC, TT);
    mc.eps = c.rms_eps;
    mc.rope = hass_rope_plain(c.rope_theta);
    hass_tensor *ts = calloc((size_t)tr->layout.n, sizeof *ts);
    for (int i = 0; i < tr->layout.n; i++) {
        const hass_lm_tensor *t = &tr->layout.t[i];
        snprintf(ts[i].name, sizeof ts[i].name, "%s", t->name);
        ts[i].dtype = HASS_DTYPE_F32;
        ts[i].ndim = t->shape[1] ? 2 : 1;
        ts[i].shape[0] = t->shape[0], ts[i].shape[1] = t->shape[1];
        ts[i].data = tr->params + t->off;
        ts[i].nbytes = t->numel * sizeof(float);
    }
    hass_model *m = hass_model_from_tensors(&mc, ts, tr->layout.n, &err);
    CHECK_MSG(m != NULL, "%s", err.msg);
    int32_t tok[TT + 1];
    make_tokens(tok, 1, 5);
    hass_lm_forward_backward(tr, tok, 1, 1.0f, 0, NULL);
    hass_kv kv;
    float *logits = calloc(TT * VOC, sizeof(float));
    int32_t pos[TT];
    for (int i = 0; i < TT; i++)
        pos[i] = i;
    if (m && hass_kv_init(&kv, m, TT, TT, NULL, &err) == HASS_OK) {
        CHECK_EQ_INT(hass_model_forward(m, &kv, NULL, TT, tok, pos, NULL, logits, 0, NULL, &err),
                     HASS_OK);
        CHECK_CLOSE(logits, hass_lm_logits(tr), TT * VOC, 2e-5, 1e-4,
                    "trainer vs inference logits");
        hass_kv_free(&kv);
    }
    free(logits);
    hass_model_free(m);
    free(ts);
    hass_lm_trainer_destroy(tr);
}

/* 150 AdamW steps on one batch of a repeating pattern: the model memorises it. At init the loss
 * is ~ln(37) = 3.6 per token; a model that has learnt the batch is far below 0.5. */
static void test_overfit(void) {
    hass_lm_config c = tiny_cfg(0);
    hass_err err = {0};
    hass_lm_trainer *tr = hass_lm_trainer_create(&c, BB, 1, NULL, &err);
    CHECK(tr != NULL);
    if (!tr)
        return;
    int32_t tok[BB * (TT + 1)];
    make_tokens(tok, BB, 17);
    double first = 0, last = 0;
    for (int s = 0; s < 150; s++) {
        memset(tr->grads, 0, tr->layout.total * sizeof(float));
        int64_t cnt;
        double l = hass_lm_forward_backward(tr, tok, BB, 1.0f / (BB * TT), 1, &cnt) / (double)cnt;
        if (s == 0)
            first = l;
        last = l;
        double nrm = hass_lm_grad_norm(tr);
        CHECK(isfinite(nrm));
        hass_lm_optimizer_step(tr, hass_lr_cosine(s, 10, 150, 1e-2f, 1e-3f), 0.1f, 1.0f, nrm);
    }
    CHECK_MSG(first > 3.0 && last < 0.5, "loss %.3f -> %.3f", first, last);
    CHECK_EQ_INT(tr->adam_t, 150);
    hass_lm_trainer_destroy(tr);
}

static void test_layout_and_misc(void) {
    hass_lm_config c = tiny_cfg(0);
    hass_lm_layout L;
    hass_err err = {0};
    CHECK_EQ_INT(hass_lm_layout_init(&L, &c, &err), HASS_OK);
    CHECK_EQ_INT(L.n, 3 + HASS_LW_COUNT * NL);
    CHECK(!strcmp(L.t[0].name, "model.embed_tokens.weight"));
    CHECK(!strcmp(L.t[L.layer0 + HASS_LW_COUNT + HASS_LW_DOWN].name,
                  "model.layers.1.mlp.down_proj.weight"));
    CHECK(L.t[L.layer0 + HASS_LW_K].shape[0] == NKV * DH &&
          L.t[L.layer0 + HASS_LW_K].shape[1] == D);
    CHECK(!strcmp(L.t[L.head].name, "lm_head.weight") && L.head == L.n - 1);
    CHECK_EQ_INT(L.n_param, hass_lm_n_params(&c));
    for (int i = 0; i < L.n; i++)
        CHECK(L.t[i].off % 16 == 0 && L.t[i].decay == (L.t[i].shape[1] != 0));
    hass_lm_layout_free(&L);
    c.tie = 1;
    CHECK_EQ_INT(hass_lm_layout_init(&L, &c, &err), HASS_OK);
    CHECK(L.head == L.emb && L.n == 2 + HASS_LW_COUNT * NL);
    CHECK_EQ_INT(L.n_param, hass_lm_n_params(&c));
    hass_lm_layout_free(&L);

    // schedule
    CHECK(hass_lr_cosine(0, 10, 100, 1.0f, 0.1f) == 0.0f);
    CHECK(fabsf(hass_lr_cosine(5, 10, 100, 1.0f, 0.1f) - 0.5f) < 1e-6f);
    CHECK(fabsf(hass_lr_cosine(10, 10, 100, 1.0f, 0.1f) - 1.0f) < 1e-6f);
    CHECK(fabsf(hass_lr_cosine(55, 10, 100, 1.0f, 0.1f) - 0.55f) < 1e-6f);
    CHECK(fabsf(hass_lr_cosine(100, 10, 100, 1.0f, 0.1f) - 0.1f) < 1e-6f);
    CHECK(fabsf(hass_lr_cosine(500, 10, 100, 1.0f, 0.1f) - 0.1f) < 1e-6f);

    // FLOPs: the linear part is 6 * (params without embedding/norms) * tokens
    hass_lm_config big = {.d = 512,
                          .n_layers = 16,
                          .H = 8,
                          .Hkv = 4,
                          .ffn = 1408,
                          .V = 8192,
                          .ctx = 1024,
                          .rms_eps = 1e-5f,
                          .rope_theta = 1e4f};
    double per_layer = 512.0 * 512 * 2 + 2 * 512.0 * 256 + 3 * 512.0 * 1408;
    double lin = 6.0 * (16 * per_layer + 8192.0 * 512) * 1024 * 4;
    double fl = hass_lm_step_flops(&big, 4);
    CHECK(fl > lin && fl < lin * 1.3);

    // bad configs
    hass_lm_config bad = tiny_cfg(0);
    bad.H = 3;
    CHECK_EQ_INT(hass_lm_config_check(&bad, &err), HASS_STATUS_ARG);
    bad = tiny_cfg(0);
    bad.Hkv = 3;
    CHECK_EQ_INT(hass_lm_config_check(&bad, &err), HASS_STATUS_ARG);
    bad = tiny_cfg(0);
    bad.ctx = 0;
    CHECK_EQ_INT(hass_lm_config_check(&bad, &err), HASS_STATUS_ARG);
    bad = tiny_cfg(0);
    bad.rope_theta = 0;
    CHECK_EQ_INT(hass_lm_config_check(&bad, &err), HASS_STATUS_ARG);
    bad = tiny_cfg(0);
    bad.V = (int64_t)1 << 30;
    CHECK_EQ_INT(hass_lm_config_check(&bad, &err), HASS_STATUS_ARG);
    CHECK(hass_lm_trainer_create(&bad, 1, 1, NULL, &err) == NULL);
    hass_lm_trainer_destroy(NULL);
}

/* The same step with every product kind this CPU runs and the elementwise work on a 2-thread
 * pool: f32 matches the serial f32 run to rounding; the bf16 kinds (operands rounded to 8 bits of
 * mantissa) give the same loss to 1e-2 and per-tensor gradients pointing the same way (cosine >
 * 0.999) of the same size (norm within 3%). */
static void test_kinds(void) {
    hass_lm_config c = tiny_cfg(0);
    c.ctx = 40, c.d = 64, c.H = 4, c.Hkv = 2, c.ffn = 96, c.V = 200;
    hass_err err = {0};
    hass_lm_trainer *ref = hass_lm_trainer_create(&c, 3, 5, NULL, &err);
    hass_pool *pool = hass_pool_create(2);
    CHECK(ref != NULL);
    if (!ref)
        return;
    int64_t n = 3 * (c.ctx + 1);
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    hass_rng r;
    hass_rng_seed(&r, 8);
    for (int64_t i = 0; i < n; i++)
        tok[i] = (int32_t)(hass_rng_u64(&r) % (uint64_t)c.V);
    memset(ref->grads, 0, ref->layout.total * sizeof(float));
    double l0 = hass_lm_forward_backward(ref, tok, 3, 1e-2f, 1, NULL);
    for (int k = 0; k < HASS_GEMM_COUNT; k++) {
        if (!hass_gemm_available((hass_gemm_kind)k)) {
            CHECK_SKIP("a product kind this CPU lacks");
            continue;
        }
        hass_lm_trainer *tr = hass_lm_trainer_create(&c, 3, 5, pool, &err);
        hass_gemm_set_default((hass_gemm_kind)k, pool);
        memset(tr->grads, 0, tr->layout.total * sizeof(float));
        double l = hass_lm_forward_backward(tr, tok, 3, 1e-2f, 1, NULL);
        hass_gemm_set_default(HASS_GEMM_F32, NULL);
        const char *name = hass_gemm_name((hass_gemm_kind)k);
        CHECK_MSG(fabs(l - l0) <= (k ? 1e-2 : 1e-5) * fabs(l0), "%s: loss %.6f vs %.6f", name, l,
                  l0);
        for (int t = 0; t < tr->layout.n; t++) {
            const hass_lm_tensor *te = &tr->layout.t[t];
            const float *a = tr->grads + te->off, *b = ref->grads + te->off;
            double ab = 0, aa = 0, bb = 0;
            for (size_t i = 0; i < te->numel; i++)
                ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
            double cosv = ab / sqrt(aa * bb + 1e-300), ratio = sqrt(aa / (bb + 1e-300));
            CHECK_MSG(cosv > (k ? 0.999 : 0.9999999) && fabs(ratio - 1) < (k ? 0.03 : 1e-5),
                      "%s %s: cosine %.6f, norm ratio %.4f", name, te->name, cosv, ratio);
        }
        hass_lm_trainer_destroy(tr);
    }
    free(tok);
    hass_pool_destroy(pool);
    hass_lm_trainer_destroy(ref);
}

int main(void) {
    check_init("test_pretrain");
    test_layout_and_misc();
    test_gradients(0);
    test_gradients(1);
    test_matches_inference();
    test_overfit();
    test_kinds();
    return check_exit();
}
