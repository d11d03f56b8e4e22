/*
 * test_ops.c — every fast kernel of src/ops against its naive twin (ops_ref.c) on seeded random
 * inputs of odd sizes, for every float weight dtype (the quantized ones: test_quant.c) and every
 * ISA this CPU can run (scalar, avx2, avx512, avx512bf16; hass_cpu_force picks one in-process,
 * HASS_CPU caps them all), plus the
 * batch-invariance properties speculative decoding relies on: a row computed alone equals,
 * bit for bit, the same row computed in a batch, whatever the thread count.
 *
 * The per-ISA helpers (ops.h internal section) are also checked one by one at the lengths of real
 * head dimensions (8 .. 128) and odd ones: the dot of several keys equals the dot of one, bit for
 * bit; the weighted average of v rows is elementwise and blind to keys of probability 0; exp
 * and the weighted average give the same bits on AVX2 and AVX-512 (one sequence per element).
 *
 * Tolerances. matmul: |y - ref| <= (in/L + 24) * 2^-24 * sum_i |x_i w_i| per element (L = 8 or
 * 16 lanes: the float rounding bound of L chains of in/L terms and the horizontal sum);
 * with AVX512_BF16 for bf16 weights x is rounded to bf16 first, adding 2^-8 * sum_i |x_i w_i|.
 * rmsnorm, softmax, attention: relative 1e-5 / absolute 1e-6 (attention 2e-5 / 2e-6), a few
 * float roundings per element against double references; rope: see test_rope.
 */
#include "check.h"
#include "ops/ops.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static hass_rng rng;

static float *randn(int64_t n, float scale) {
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    HASS_ASSERT(p);
    for (int64_t i = 0; i < n; i++)
        p[i] = hass_rng_normal(&rng) * scale;
    return p;
}

/* Random (out, in) weights of dtype t; *wf gets the same values as f32. */
static void *rand_weights(hass_dtype t, int64_t out, int64_t in, float **wf) {
    size_t bytes = hass_dtype_bytes(t, (size_t)(out * in));
    uint8_t *w = malloc(bytes ? bytes : 1);
    HASS_ASSERT(w);
    for (int64_t o = 0; o < out; o++) {
        uint8_t *row = w + hass_dtype_bytes(t, (size_t)in) * (size_t)o;
        for (int64_t i = 0; i < in; i++) {
            float v = hass_rng_normal(&rng) * 0.5f;
            uint16_t h;
            switch (t) {
            case HASS_DTYPE_F32:
                memcpy(row + 4 * i, &v, 4);
                break;
            case HASS_DTYPE_BF16:
                h = hass_f32_to_bf16(v);
                memcpy(row + 2 * i, &h, 2);
                break;
            case HASS_DTYPE_F16:
                h = hass_f32_to_f16(v);
                memcpy(row + 2 * i, &h, 2);
                break;
            case HASS_DTYPE_Q8_0:
                if (i % 32 == 0) {
                    h = hass_f32_to_f16(0.004f + 0.01f * hass_rng_uniform(&rng));
                    memcpy(row + (i / 32) * 34, &h, 2);
                }
                row[(i / 32) * 34 + 2 + i % 32] = (uint8_t)(int8_t)(hass_rng_u64(&rng) % 255 - 127);
                break;
            default:
                HASS_ASSERT(0);
            }
        }
    }
    *wf = malloc((size_t)(out * in) * sizeof(float));
    HASS_ASSERT(*wf);
    hass_to_f32(*wf, w, t, out * in);
    return w;
}

typedef struct {
    int features;
    const char *name;
} isa_case;

static int isa_cases(isa_case *cs) {
    hass_cpu_force(-1);
    int f = hass_cpu_available(), k = 0;
    cs[k++] = (isa_case){0, "scalar"};
    if (f & HASS_CPU_AVX2)
        cs[k++] = (isa_case){HASS_CPU_AVX2, "avx2"};
    if (f & HASS_CPU_AVX512)
        cs[k++] = (isa_case){HASS_CPU_AVX2 | HASS_CPU_AVX512, "avx512"};
    if (f & HASS_CPU_AVX512BF16)
        cs[k++] = (isa_case){f & ~HASS_CPU_AMX, "avx512bf16"};
    if (f & HASS_CPU_AMX) /* bf16 weights with in % 32 == 0 go through the tile unit */
        cs[k++] = (isa_case){f, "amx"};
    return k;
}

/* Checks y (n, out) against ref with the per-element bound in the header comment. */
static void check_matmul_err(const float *y, const float *ref, const float *x, const float *wf,
                             int64_t n, int64_t in, int64_t out, int lanes, int bf16x,
                             const char *label) {
    double worst = 0;
    int64_t bad = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = 0;
            for (int64_t i = 0; i < in; i++)
                s += fabs((double)x[r * in + i] * wf[o * in + i]);
            double tol = ((double)in / lanes + 24.0) * ldexp(1.0, -24) * s + 1e-30;
            if (bf16x)
                tol += ldexp(1.0, -8) * s;
            double e = fabs((double)y[r * out + o] - ref[r * out + o]);
            if (!(e <= tol))
                bad++;
            if (e / tol > worst)
                worst = e / tol;
        }
    CHECK_MSG(bad == 0, "%s: %lld elements over tolerance (worst err/tol %.3g)", label,
              (long long)bad, worst);
}

static void test_matmul_vs_ref(const isa_case *ic) {
    static const int64_t ins[] = {1, 7, 8, 16, 31, 33, 64, 80, 128, 257, 1000, 32, 96, 384};
    static const int64_t outs[] = {1, 3, 17, 65, 16, 48, 50, 100};
    static const hass_dtype dts[] = {HASS_DTYPE_F32, HASS_DTYPE_BF16, HASS_DTYPE_F16};
    const int64_t NMAX = 20;
    int lanes = (ic->features & HASS_CPU_AVX512) ? 16 : 8;
    for (int d = 0; d < 3; d++) {
        hass_dtype t = dts[d];
        int bf16x = t == HASS_DTYPE_BF16 && (ic->features & HASS_CPU_AVX512BF16);
        for (int a = 0; a < (int)(sizeof ins / sizeof ins[0]); a++)
            for (int b = 0; b < 8; b++) {
                int64_t in = ins[a], out = outs[b];
                float *wf, *x = randn(NMAX * in, 1.0f);
                void *W = rand_weights(t, out, in, &wf);
                float *ref = malloc((size_t)(NMAX * out) * sizeof(float));
                float *one = malloc((size_t)(NMAX * out) * sizeof(float));
                float *y = malloc((size_t)(NMAX * out) * sizeof(float));
                HASS_ASSERT(ref && one && y);
                hass_ref_matmul(ref, x, W, t, NMAX, in, out);
                for (int64_t r = 0; r < NMAX; r++) /* every row alone */
                    hass_matmul(NULL, one + r * out, x + r * in, W, t, 1, in, out);
                char label[128];
                snprintf(label, sizeof label, "matmul %s %s in=%lld out=%lld", ic->name,
                         hass_dtype_name(t), (long long)in, (long long)out);
                check_matmul_err(one, ref, x, wf, NMAX, in, out, lanes, bf16x, label);
                int inv_ok = 1;
                for (int64_t n = 1; n <= NMAX; n++) {
                    hass_matmul(NULL, y, x, W, t, n, in, out);
                    inv_ok &= memcmp(y, one, (size_t)(n * out) * sizeof(float)) == 0;
                }
                CHECK_MSG(inv_ok, "%s: batch of n != rows alone", label);
                free(wf), free(x), free(W), free(ref), free(one), free(y);
            }
    }
}

/* Rows alone on one thread == the same rows in batches of several sizes on 1, 2, 3 threads,
 * and hass_matmul_multi == separate products. Sizes above the serial threshold. */
static void test_matmul_threads(const isa_case *ic, hass_pool **pools) {
    static const hass_dtype dts[] = {HASS_DTYPE_F32, HASS_DTYPE_BF16, HASS_DTYPE_F16};
    static const int64_t ns[] = {2, 5, 16, 23};
    const int64_t in = 320, out = 301, NMAX = 23;
    for (int d = 0; d < 3; d++) {
        hass_dtype t = dts[d];
        float *wf, *x = randn(NMAX * in, 1.0f);
        void *W = rand_weights(t, out, in, &wf);
        float *one = malloc((size_t)(NMAX * out) * sizeof(float));
        float *y = malloc((size_t)(NMAX * out) * sizeof(float));
        HASS_ASSERT(one && y);
        for (int64_t r = 0; r < NMAX; r++)
            hass_matmul(pools[0], one + r * out, x + r * in, W, t, 1, in, out);
        int ok = 1;
        for (int p = 0; p < 3; p++)
            for (int k = 0; k < 4; k++) {
                memset(y, 0xff, (size_t)(NMAX * out) * sizeof(float));
                hass_matmul(pools[p], y, x, W, t, ns[k], in, out);
                ok &= memcmp(y, one, (size_t)(ns[k] * out) * sizeof(float)) == 0;
            }
        CHECK_MSG(ok, "matmul %s %s: threaded batches != rows alone", ic->name, hass_dtype_name(t));
        /* three jobs sharing x, split at odd row counts, in one dispatch */
        size_t rb = hass_dtype_bytes(t, (size_t)in);
        float *ym = malloc((size_t)(NMAX * out) * sizeof(float));
        HASS_ASSERT(ym);
        hass_matmul_job jobs[3] = {
            {ym, W, t, 100},
            {ym + NMAX * 100, (const uint8_t *)W + 100 * rb, t, 7},
            {ym + NMAX * 107, (const uint8_t *)W + 107 * rb, t, 194},
        };
        for (int p = 0; p < 3; p++) {
            hass_matmul_multi(pools[p], x, NMAX, in, jobs, 3);
            int mok = 1;
            for (int j = 0; j < 3; j++) {
                int64_t o0 = j == 0 ? 0 : j == 1 ? 100 : 107;
                for (int64_t r = 0; r < NMAX; r++)
                    mok &= memcmp(jobs[j].y + r * jobs[j].out, one + r * out + o0,
                                  (size_t)jobs[j].out * sizeof(float)) == 0;
            }
            CHECK_MSG(mok, "matmul_multi %s %s pool %d: != single products", ic->name,
                      hass_dtype_name(t), p + 1);
        }
        free(ym), free(wf), free(x), free(W), free(one), free(y);
    }
}

/* hass_ops_tune's block heights and prefetch switches change nothing in any result: every
 * setting gives the default's bits, for every dtype, batch size and thread count (Q8_0: the
 * integer product of quant.h, which takes no tuning, checked the same way). */
/* One dispatch with jobs of different weight types (bf16 beside f32, as a model with an f32 head
 * could send): each job gets exactly its own product's bits. */
static void test_matmul_mixed(const isa_case *ic, hass_pool **pools) {
    const int64_t in = 200, n = 9;
    float *wf1, *wf2, *x = randn(n * in, 1.0f);
    void *W1 = rand_weights(HASS_DTYPE_BF16, 150, in, &wf1);
    void *W2 = rand_weights(HASS_DTYPE_F32, 70, in, &wf2);
    float *a1 = malloc(sizeof(float) * (size_t)(n * 150)),
          *a2 = malloc(sizeof(float) * (size_t)(n * 70));
    float *b1 = malloc(sizeof(float) * (size_t)(n * 150)),
          *b2 = malloc(sizeof(float) * (size_t)(n * 70));
    HASS_ASSERT(a1 && a2 && b1 && b2);
    hass_matmul(pools[0], a1, x, W1, HASS_DTYPE_BF16, n, in, 150);
    hass_matmul(pools[0], a2, x, W2, HASS_DTYPE_F32, n, in, 70);
    hass_matmul_job jobs[2] = {{b1, W1, HASS_DTYPE_BF16, 150}, {b2, W2, HASS_DTYPE_F32, 70}};
    for (int p = 0; p < 3; p++) {
        hass_matmul_multi(pools[p], x, n, in, jobs, 2);
        CHECK_MSG(!memcmp(a1, b1, sizeof(float) * (size_t)(n * 150)) &&
                      !memcmp(a2, b2, sizeof(float) * (size_t)(n * 70)),
                  "matmul_multi %s bf16 + f32, pool %d: != single products", ic->name, p + 1);
    }
    free(x), free(wf1), free(wf2), free(W1), free(W2), free(a1), free(a2), free(b1), free(b2);
}

static void test_tune_bits(const isa_case *ic, hass_pool **pools) {
    static const hass_dtype dts[] = {HASS_DTYPE_F32, HASS_DTYPE_BF16, HASS_DTYPE_F16,
                                     HASS_DTYPE_Q8_0};
    static const int64_t ns[] = {1, 3, 8, 9, 23};
    const int64_t out = 301, NMAX = 23;
    for (int d = 0; d < 4; d++)
        for (int a = 0; a < 2; a++) {
            hass_dtype t = dts[d];
            int64_t in = a ? 320 : t == HASS_DTYPE_Q8_0 ? 96 : 100;
            float *wf, *x = randn(NMAX * in, 1.0f);
            void *W = rand_weights(t, out, in, &wf);
            float *ref = malloc((size_t)(NMAX * out) * sizeof(float));
            float *y = malloc((size_t)(NMAX * out) * sizeof(float));
            HASS_ASSERT(ref && y);
            int ok = 1;
            for (int k = 0; k < 5; k++) {
                hass_ops_tune_set(NULL);
                hass_matmul(pools[1], ref, x, W, t, ns[k], in, out);
                for (int rb = 1; rb <= 4; rb++)
                    for (int pf = 1; pf <= 2; pf++) {
                        hass_ops_tune tu = {0, {rb, rb}, {pf, pf, pf}};
                        hass_ops_tune_set(&tu);
                        memset(y, 0xff, (size_t)(ns[k] * out) * sizeof(float));
                        hass_matmul(pools[(rb + pf) % 3], y, x, W, t, ns[k], in, out);
                        ok &= memcmp(y, ref, (size_t)(ns[k] * out) * sizeof(float)) == 0;
                    }
            }
            hass_ops_tune_set(NULL);
            CHECK_MSG(ok, "matmul %s %s in=%lld: a tuned block height or prefetch changed bits",
                      ic->name, hass_dtype_name(t), (long long)in);
            free(wf), free(x), free(W), free(ref), free(y);
        }
}

/* hass_ops_tune's bf16 choice: the kernels of the narrower ISA, bit for bit, for bf16 products;
 * never wider than what the CPU (and hass_cpu_force) allow. */
static void test_tune_bf16(void) {
    hass_cpu_force(-1);
    int f = hass_cpu_available();
    static const int choice[] = {HASS_BF16_AMX, HASS_BF16_DP, HASS_BF16_FMA, HASS_KERNELS_AVX2};
    const int mask[] = {f, f & ~HASS_CPU_AMX, f & ~(HASS_CPU_AMX | HASS_CPU_AVX512BF16),
                        f & ~(HASS_CPU_AMX | HASS_CPU_AVX512BF16 | HASS_CPU_AVX512)};
    const int64_t in = 256, out = 100, n = 5;
    float *wf, *x = randn(n * in, 1.0f);
    void *W = rand_weights(HASS_DTYPE_BF16, out, in, &wf);
    float *a = malloc((size_t)(n * out) * sizeof(float)), *b = malloc((size_t)(n * out) * 4);
    HASS_ASSERT(a && b);
    for (int c = 0; c < 4; c++) {
        hass_cpu_force(mask[c]);
        hass_matmul(NULL, a, x, W, HASS_DTYPE_BF16, n, in, out);
        const char *want = hass_cpu_isa_name();
        hass_cpu_force(-1);
        hass_ops_tune tu = {choice[c], {0, 0}, {0, 0, 0}};
        hass_ops_tune_set(&tu);
        CHECK_MSG(strcmp(hass_cpu_isa_name(), want) == 0, "bf16 choice %d: isa %s, want %s",
                  choice[c], hass_cpu_isa_name(), want);
        CHECK_MSG((hass_cpu_features() & ~f) == 0, "bf16 choice %d: wider than the CPU", choice[c]);
        hass_matmul(NULL, b, x, W, HASS_DTYPE_BF16, n, in, out);
        CHECK_MSG(!memcmp(a, b, (size_t)(n * out) * sizeof(float)),
                  "bf16 choice %d: not the %s kernel's bits", choice[c], want);
        if (choice[c] == HASS_KERNELS_AVX2) /* every float kernel, the integer ones kept */
            CHECK((hass_cpu_features() & HASS_CPU_AVX512) == 0 &&
                  (hass_cpu_features() & (HASS_CPU_AVX512VNNI | HASS_CPU_AVXVNNI)) ==
                      (f & (HASS_CPU_AVX512VNNI | HASS_CPU_AVXVNNI)));
        hass_ops_tune_set(NULL);
    }
    free(wf), free(x), free(W), free(a), free(b);
}

static void test_rows(const isa_case *ic) {
    static const int64_t ds[] = {1, 7, 31, 64, 257, 1000};
    for (int a = 0; a < 6; a++) {
        int64_t d = ds[a], n = 5;
        char label[96];
        float *x = randn(n * d, 2.0f), *w = randn(d, 1.0f);
        float *y = malloc((size_t)(n * d) * sizeof(float)), *r = malloc((size_t)(n * d) * 4);
        HASS_ASSERT(y && r);
        hass_rmsnorm(y, x, w, n, d, 1e-5f);
        hass_ref_rmsnorm(r, x, w, n, d, 1e-5f);
        snprintf(label, sizeof label, "rmsnorm %s d=%lld", ic->name, (long long)d);
        CHECK_CLOSE(y, r, n * d, 1e-6, 1e-5, label);
        float *y1 = malloc((size_t)d * sizeof(float));
        HASS_ASSERT(y1);
        hass_rmsnorm(y1, x + 3 * d, w, 1, d, 1e-5f);
        CHECK_BITEQ(y1, y + 3 * d, d, "rmsnorm row alone == row in batch");
        memcpy(r, x, (size_t)(n * d) * sizeof(float)); /* in place */
        hass_rmsnorm(r, r, w, n, d, 1e-5f);
        CHECK_BITEQ(r, y, n * d, "rmsnorm in place");

        memcpy(y, x, (size_t)d * sizeof(float));
        memcpy(r, x, (size_t)d * sizeof(float));
        hass_softmax(y, d);
        hass_ref_softmax(r, d);
        snprintf(label, sizeof label, "softmax %s d=%lld", ic->name, (long long)d);
        CHECK_CLOSE(y, r, d, 1e-7, 1e-5, label);

        float *u = randn(d, 1.0f);
        memcpy(y, x, (size_t)d * sizeof(float));
        hass_silu_mul(y, u, d);
        for (int64_t i = 0; i < d; i++)
            r[i] = (float)(x[i] / (1.0 + exp(-(double)x[i])) * u[i]);
        CHECK_CLOSE(y, r, d, 1e-6, 1e-5, "silu_mul");
        memcpy(y, x, (size_t)d * sizeof(float));
        hass_add(y, u, d);
        for (int64_t i = 0; i < d; i++)
            r[i] = x[i] + u[i];
        CHECK_BITEQ(y, r, d, "add");
        free(x), free(w), free(y), free(r), free(y1), free(u);
    }
}

static void test_rope(void) {
    static const int64_t hds[] = {2, 8, 64, 6};
    for (int a = 0; a < 4; a++)
        for (int style = 0; style < 2; style++) {
            int64_t n = 5, nh = 3, hd = hds[a];
            float *x = randn(n * nh * hd, 1.0f), *y = malloc((size_t)(n * nh * hd) * 4);
            float *inv = malloc((size_t)(hd / 2) * sizeof(float));
            int32_t pos[5] = {0, 1, 17, 300, 4095};
            HASS_ASSERT(y && inv);
            for (int64_t i = 0; i < hd / 2; i++)
                inv[i] = (float)pow(10000.0, -2.0 * (double)i / (double)hd);
            float *x0 = malloc((size_t)(n * nh * hd) * sizeof(float));
            HASS_ASSERT(x0);
            memcpy(x0, x, (size_t)(n * nh * hd) * sizeof(float));
            memcpy(y, x, (size_t)(n * nh * hd) * sizeof(float));
            hass_rope(x, n, nh, hd, pos, inv, (hass_rope_style)style);
            hass_ref_rope(y, n, nh, hd, pos, inv, (hass_rope_style)style);
            /* The fast kernel forms theta = pos * inv_freq in float (as llama2.c and HF do), the
             * twin in double: the angle differs by up to |theta| 2^-24, so the tolerance of an
             * element grows with pos; plus a few roundings of cos/sin and the rotation. */
            int64_t bad = 0;
            for (int64_t r = 0; r < n; r++)
                for (int64_t h = 0; h < nh; h++)
                    for (int64_t i = 0; i < hd / 2; i++) {
                        int64_t ia = style == HASS_ROPE_INTERLEAVED ? 2 * i : i;
                        int64_t ib = style == HASS_ROPE_INTERLEAVED ? 2 * i + 1 : i + hd / 2;
                        const float *xr = x0 + (r * nh + h) * hd;
                        double mag = fabs(xr[ia]) + fabs(xr[ib]);
                        double tol = 4e-7 * mag + 2.0 * ldexp(1.0, -24) * pos[r] * inv[i] * mag;
                        int64_t o = (r * nh + h) * hd;
                        bad += !(fabs((double)x[o + ia] - y[o + ia]) <= tol);
                        bad += !(fabs((double)x[o + ib] - y[o + ib]) <= tol);
                    }
            CHECK_MSG(bad == 0, "rope hd=%lld style=%d: %lld elements over tolerance",
                      (long long)hd, style, (long long)bad);
            free(x0);
            free(x), free(y), free(inv);
        }
}

/* A random tree over n new rows: parent[i] < i (or -1: child of the committed context). The
 * mask has bit j of row i set iff j is i or an ancestor of i. */
static uint64_t *tree_mask(int64_t n, int32_t *parent) {
    int64_t W = (n + 63) / 64;
    uint64_t *m = calloc((size_t)(n * W), sizeof(uint64_t));
    HASS_ASSERT(m);
    for (int64_t i = 0; i < n; i++) {
        parent[i] = i == 0 ? -1 : (int32_t)(hass_rng_u64(&rng) % (uint64_t)(i + 1)) - 1;
        if (parent[i] >= 0)
            memcpy(m + i * W, m + parent[i] * W, (size_t)W * sizeof(uint64_t));
        m[i * W + i / 64] |= 1ull << (i % 64);
    }
    return m;
}

/* One attention case: fast vs twin, 1 vs 2 vs 3 threads, and each row alone over the keys it
 * sees, compacted in slot order (what the KV cache holds once the row's path is accepted). */
static void attn_case(const isa_case *ic, hass_pool **pools, int64_t Dh, int64_t P, int64_t n,
                      int tree) {
    const int64_t H = 4, Hkv = 2, nk = P + n, kvd = Hkv * Dh, qd = H * Dh;
    float *q = randn(n * qd, 1.0f), *k = randn(nk * kvd, 1.0f), *v = randn(nk * kvd, 1.0f);
    float *out = malloc((size_t)(n * qd) * 4), *ref = malloc((size_t)(n * qd) * 4);
    float *o2 = malloc((size_t)(n * qd) * 4);
    float *kc = malloc((size_t)(nk * kvd) * 4), *vc = malloc((size_t)(nk * kvd) * 4);
    int32_t *parent = malloc((size_t)n * sizeof(int32_t));
    float *scr = malloc(hass_attention_scratch(pools[2], nk) * sizeof(float));
    HASS_ASSERT(out && ref && o2 && kc && vc && parent && scr);
    uint64_t *mask = tree ? tree_mask(n, parent) : NULL;
    char label[128];
    snprintf(label, sizeof label, "attention %s Dh=%lld past=%lld n=%lld %s", ic->name,
             (long long)Dh, (long long)P, (long long)n, tree ? "tree" : "causal");

    hass_ref_attention(ref, q, k, v, P, n, mask, H, Hkv, Dh);
    hass_attention(pools[0], out, q, k, v, P, n, mask, H, Hkv, Dh, scr);
    CHECK_CLOSE(out, ref, n * qd, 2e-6, 2e-5, label);

    int thr_ok = 1;
    for (int p = 1; p < 3; p++) {
        hass_attention(pools[p], o2, q, k, v, P, n, mask, H, Hkv, Dh, scr);
        thr_ok &= memcmp(o2, out, (size_t)(n * qd) * 4) == 0;
    }
    CHECK_MSG(thr_ok, "%s: 2/3 threads != 1 thread", label);

    int row_ok = 1;
    for (int64_t i = 0; i < n; i++) {
        int64_t m = P;
        memcpy(kc, k, (size_t)(P * kvd) * 4);
        memcpy(vc, v, (size_t)(P * kvd) * 4);
        for (int64_t j = 0; j <= i; j++) {
            if (mask && !((mask[i * ((n + 63) / 64) + j / 64] >> (j % 64)) & 1))
                continue;
            memcpy(kc + m * kvd, k + (P + j) * kvd, (size_t)kvd * 4);
            memcpy(vc + m * kvd, v + (P + j) * kvd, (size_t)kvd * 4);
            m++;
        }
        hass_attention(pools[i % 3], o2, q + i * qd, kc, vc, m - 1, 1, NULL, H, Hkv, Dh, scr);
        row_ok &= memcmp(o2, out + i * qd, (size_t)qd * 4) == 0;
    }
    CHECK_MSG(row_ok, "%s: row alone (compacted keys) != row in batch", label);
    free(q), free(k), free(v), free(out), free(ref), free(o2), free(kc), free(vc);
    free(parent), free(mask), free(scr);
}

static void test_attention(const isa_case *ic, hass_pool **pools) {
    static const int64_t dhs[] = {8, 33, 64};
    static const int64_t pasts[] = {0, 5, 70};
    static const int64_t ns[] = {1, 7, 20, 70};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++)
                for (int tree = 0; tree < 2; tree++)
                    attn_case(ic, pools, dhs[a], pasts[b], ns[c], tree);
    /* the other head dimensions of real models, fewer shapes */
    static const int64_t dhs2[] = {16, 32, 80, 96, 128};
    for (int a = 0; a < 5; a++) {
        attn_case(ic, pools, dhs2[a], 37, 1, 0);
        attn_case(ic, pools, dhs2[a], 5, 20, 1);
    }
}

/* The per-ISA helpers at head-dimension lengths: dot against a double reference and against
 * the matrix product (the same element arithmetic), dots against dot bit for bit (every group
 * size, partial groups included), wavg against a double reference, element by element against
 * itself, and with zero-probability keys spliced in; scale_max and exp. */
static const int64_t KLENS[] = {1,  2,  6,  7,  8,  9,  15, 16,  17, 24,
                                31, 32, 33, 48, 64, 80, 96, 128, 130};
#define NKLENS ((int)(sizeof KLENS / sizeof KLENS[0]))

static void test_dot_kernels(const isa_case *ic) {
    hass__kernels kn = hass__kernels_get();
    int lanes = (ic->features & HASS_CPU_AVX512) ? 16 : 8;
    for (int a = 0; a < NKLENS; a++) {
        int64_t Dh = KLENS[a], nk = 37, ks = 3 * Dh + 1;
        float *q = randn(Dh, 1.0f), *k = randn(nk * ks, 1.0f);
        float *s = malloc((size_t)nk * sizeof(float)), *y = malloc(sizeof(float));
        float *ref = malloc((size_t)nk * sizeof(float)), *w = malloc((size_t)(nk * Dh) * 4);
        HASS_ASSERT(s && y && ref && w);
        for (int64_t j = 0; j < nk; j++)
            memcpy(w + j * Dh, k + j * ks, (size_t)Dh * sizeof(float));
        hass_ref_matmul(ref, q, w, HASS_DTYPE_F32, 1, Dh, nk);
        int same_mm = 1, dots_ok = 1;
        float *d1 = malloc((size_t)nk * sizeof(float));
        HASS_ASSERT(d1);
        for (int64_t j = 0; j < nk; j++) {
            d1[j] = kn.dot(q, k + j * ks, Dh);
            hass_matmul(NULL, y, q, w + j * Dh, HASS_DTYPE_F32, 1, Dh, 1);
            same_mm &= y[0] == d1[j];
        }
        char label[96];
        snprintf(label, sizeof label, "dot %s n=%lld", ic->name, (long long)Dh);
        check_matmul_err(d1, ref, q, w, 1, Dh, nk, lanes, 0, label);
        CHECK_MSG(same_mm, "%s: != the matrix product's element", label);
        for (int64_t m = 1; m <= nk; m += (m < 20 ? 1 : 7)) { /* every partial group size */
            memset(s, 0xff, (size_t)nk * sizeof(float));
            kn.dots(s, q, k, ks, m, Dh);
            for (int64_t j = 0; j < nk; j++)
                dots_ok &= j < m ? s[j] == d1[j] : s[j] != s[j]; /* untouched past m: NaN */
        }
        CHECK_MSG(dots_ok, "dots %s Dh=%lld: != dot per key (or wrote past nk)", ic->name,
                  (long long)Dh);
        free(q), free(k), free(s), free(y), free(ref), free(w), free(d1);
    }
}

/* G heads (G = 1..8 over the lengths) with their own probabilities and v rows (two heads per
 * v head, as with GQA): against a double reference, each element alone (G 1, Dh 1), each head
 * alone, and each head with its zero-probability keys removed, the last three bit for bit. */
static void test_wavg(const isa_case *ic) {
    hass__kernels kn = hass__kernels_get();
    for (int a = 0; a < NKLENS; a++) {
        int64_t Dh = KLENS[a], nk = 45, ps = nk + 5, vs = 4 * Dh + 3;
        int G = 1 + a % 8;
        float *v = randn(nk * vs, 1.0f), *p = randn(G * ps, 1.0f);
        float *o = malloc((size_t)(G * Dh + 1) * sizeof(float)), *o1 = malloc((size_t)Dh * 4);
        float *vc = malloc((size_t)(nk * vs) * sizeof(float)), *pc = malloc((size_t)nk * 4);
        HASS_ASSERT(o && o1 && vc && pc);
        int64_t voff[8], zero = 0;
        for (int g = 0; g < G; g++) {
            voff[g] = (g / 2) * Dh + (g % 3); /* shared and unaligned v rows */
            for (int64_t j = 0; j < nk; j++)
                p[g * ps + j] = (j + g) % 5 == 3 ? 0.0f : fabsf(p[g * ps + j]) + 0.01f;
        }
        o[G * Dh] = 12345.0f;
        kn.wavg(o, p, ps, v, voff, vs, nk, Dh, G);
        int64_t bad = 0;
        int elem_ok = 1, head_ok = 1, mask_ok = 1;
        for (int g = 0; g < G; g++) {
            const float *pg = p + g * ps, *vg = v + voff[g];
            double sum = 0;
            for (int64_t j = 0; j < nk; j++)
                sum += pg[j];
            for (int64_t e = 0; e < Dh; e++) {
                double r = 0, mag = 0;
                for (int64_t j = 0; j < nk; j++) {
                    r += (double)pg[j] * vg[j * vs + e];
                    mag += (double)pg[j] * fabs(vg[j * vs + e]);
                }
                bad += !(fabs(o[g * Dh + e] - r / sum) <= 1e-5 * mag / sum + 1e-30);
                int64_t off1 = voff[g] + e;
                kn.wavg(o1, pg, ps, v, &off1, vs, nk, 1, 1); /* this element alone */
                elem_ok &= o1[0] == o[g * Dh + e];
            }
            kn.wavg(o1, pg, ps, v, voff + g, vs, nk, Dh, 1); /* this head alone */
            head_ok &= !memcmp(o1, o + g * Dh, (size_t)Dh * sizeof(float));
            int64_t m = 0; /* the keys with p = 0 removed */
            for (int64_t j = 0; j < nk; j++)
                if (pg[j] != 0.0f) {
                    pc[m] = pg[j];
                    memcpy(vc + m * vs, vg + j * vs, (size_t)Dh * sizeof(float));
                    m++;
                }
            zero += nk - m;
            int64_t off0 = 0;
            kn.wavg(o1, pc, nk, vc, &off0, vs, m, Dh, 1);
            mask_ok &= !memcmp(o1, o + g * Dh, (size_t)Dh * sizeof(float));
        }
        CHECK(zero > 0);
        CHECK_MSG(bad == 0 && o[G * Dh] == 12345.0f,
                  "wavg %s Dh=%lld G=%d: %lld elements off (or wrote past)", ic->name,
                  (long long)Dh, G, (long long)bad);
        CHECK_MSG(elem_ok && head_ok,
                  "wavg %s Dh=%lld G=%d: an element or head alone != in the group", ic->name,
                  (long long)Dh, G);
        CHECK_MSG(mask_ok, "wavg %s Dh=%lld G=%d: keys with p = 0 count", ic->name, (long long)Dh,
                  G);
        free(v), free(p), free(o), free(o1), free(vc), free(pc);
    }
}

static void test_scale_max(const isa_case *ic) {
    hass__kernels kn = hass__kernels_get();
    CHECK(kn.scale_max(NULL, 0, 2.0f) == -INFINITY);
    for (int a = 0; a < NKLENS; a++) {
        int64_t n = KLENS[a];
        float *x = randn(n + 1, 3.0f), *y = malloc((size_t)(n + 1) * sizeof(float));
        HASS_ASSERT(y);
        memcpy(y, x, (size_t)(n + 1) * sizeof(float));
        x[n] = 1e30f; /* past the end: neither scaled nor counted */
        y[n] = 1e30f;
        float mx = kn.scale_max(y, n, 0.3535f), want = -INFINITY;
        int ok = y[n] == 1e30f;
        for (int64_t i = 0; i < n; i++) {
            float t = x[i] * 0.3535f;
            ok &= y[i] == t;
            want = t > want ? t : want;
        }
        CHECK_MSG(ok && mx == want, "scale_max %s n=%lld", ic->name, (long long)n);
        free(x), free(y);
    }
}

static void test_convert(void) {
    float *wf;
    for (int d = 0; d < 3; d++) {
        hass_dtype t = d == 0 ? HASS_DTYPE_BF16 : d == 1 ? HASS_DTYPE_F16 : HASS_DTYPE_Q8_0;
        void *W = rand_weights(t, 3, 64, &wf);
        float row[64];
        hass_embed_row(row, W, t, 2, 64);
        CHECK_BITEQ(row, wf + 128, 64, "embed_row");
        free(W), free(wf);
    }
}

/* the exp of every ISA against expf: exact for the scalar build, ~1 ulp for the vector ones on
 * [-88, 88]; exactly 0 below -88 and for -inf; x - sub formed first; odd lengths for the
 * masked tails, which must not write past n. */
static void test_exp(const isa_case *ic) {
    enum { N = 4099 };
    static float x[N + 1], want[N], got[N + 1];
    hass__kernels kn = hass__kernels_get();
    for (int si = 0; si < 2; si++) {
        float sub = si ? 3.25f : 0.0f;
        for (int i = 0; i < N; i++)
            x[i] = -90.0f + 178.0f * (float)i / (N - 1) + sub;
        x[0] = -INFINITY;
        x[1] = -88.5f + sub;
        for (int i = 0; i < N; i++)
            want[i] = x[i] - sub < -88.0f ? 0.0f : expf(x[i] - sub);
        double tol = ic->features ? 4e-7 : 0.0, atol = ic->features ? 1e-38 : 0.0;
        for (int n = 1; n <= 40; n += 3) {
            memcpy(got, x, sizeof x);
            got[n] = 777.0f;
            kn.exp(got, n, sub);
            CHECK_CLOSE(got, want, n, atol, tol, "exp (short)");
            CHECK(got[n] == 777.0f);
        }
        memcpy(got, x, sizeof x);
        kn.exp(got, N, sub);
        char label[64];
        snprintf(label, sizeof label, "exp %s sub=%g", ic->name, (double)sub);
        CHECK_CLOSE(got, want, N, atol, tol, label);
        CHECK(got[0] == 0.0f && got[1] == 0.0f);
    }
}

/* exp and the weighted average are elementwise with one fixed sequence of operations per
 * element (the same FMAs, the same polynomial), written once per vector width: the AVX2 and
 * AVX-512 kernels must agree bit for bit. */
static void test_isas_agree(void) {
    int f = hass_cpu_available();
    if (!(f & HASS_CPU_AVX512) || !(f & HASS_CPU_AVX2)) {
        CHECK_SKIP("AVX2 and AVX-512 not both available: cross-ISA identity not run");
        return;
    }
    enum { N = 1003, NK = 77, DH = 80 };
    float *x = randn(N, 30.0f), *e2 = malloc(N * sizeof(float)), *e5 = malloc(N * sizeof(float));
    float *v = randn(NK * 2 * DH, 1.0f), *p = randn(2 * NK, 1.0f), *o2 = malloc(2 * DH * 4);
    float *o5 = malloc(2 * DH * sizeof(float));
    HASS_ASSERT(e2 && e5 && o2 && o5);
    for (int j = 0; j < 2 * NK; j++)
        p[j] = j % 7 == 2 ? 0.0f : fabsf(p[j]);
    int64_t voff[2] = {0, DH};
    hass_cpu_force(HASS_CPU_AVX2);
    hass__kernels k2 = hass__kernels_get();
    hass_cpu_force(HASS_CPU_AVX2 | HASS_CPU_AVX512);
    hass__kernels k5 = hass__kernels_get();
    hass_cpu_force(-1);
    memcpy(e2, x, N * sizeof(float));
    memcpy(e5, x, N * sizeof(float));
    k2.exp(e2, N, 1.5f);
    k5.exp(e5, N, 1.5f);
    CHECK_MSG(!memcmp(e2, e5, N * sizeof(float)), "exp: avx2 != avx512");
    k2.wavg(o2, p, NK, v, voff, 2 * DH, NK, DH, 2);
    k5.wavg(o5, p, NK, v, voff, 2 * DH, NK, DH, 2);
    CHECK_MSG(!memcmp(o2, o5, 2 * DH * sizeof(float)), "wavg: avx2 != avx512");
    free(x), free(e2), free(e5), free(v), free(p), free(o2), free(o5);
}

/* The vdpbf16ps product rounds x to bf16 once per product (hass__bf16_pack_x): nearest even, as
 * the reference below (finite values: ties, signed zeros, overflow to inf; subnormal inputs
 * become zeros of their sign, as vcvtne2ps2bf16 treats them), with
 * masked row tails that write nothing past the row; and the rows function that packs on its
 * own thread gives hass_matmul's bits. */
static uint16_t bf16_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0)
        return (uint16_t)((u >> 16) & 0x8000u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static void test_bf16_pack(hass_pool **pools) {
#if defined(__x86_64__) && !defined(HASS_NO_AVX512)
    if (!(hass_cpu_available() & HASS_CPU_AVX512BF16)) {
        CHECK_SKIP("no AVX512_BF16: the bf16 x packing runs in the avx512emu build");
        return;
    }
    static const int64_t ins[] = {1, 7, 16, 31, 32, 33, 63, 100};
    static const float special[] = {0.0f,   -0.0f,   1.00390625f, 1.01171875f, -1.00390625f,
                                    1e-40f, -3e-39f, 3.4e38f,     -3.4e38f,    1.0f + 0x1p-8f};
    for (size_t t = 0; t < sizeof ins / sizeof ins[0]; t++) {
        int64_t in = ins[t], n = 3;
        float *x = randn(n * in, 3.0f);
        for (int64_t i = 0; i < n * in; i++)
            if (i % 3 == 0)
                x[i] = special[(i / 3) % (sizeof special / sizeof special[0])];
        uint16_t *xb = malloc(sizeof(uint16_t) * (size_t)(n * in + 1));
        HASS_ASSERT(xb);
        xb[n * in] = 0xabcd;
        hass__bf16_pack_x(xb, x, n, in);
        int bad = 0;
        for (int64_t i = 0; i < n * in; i++)
            bad += xb[i] != bf16_rne(x[i]);
        CHECK_MSG(bad == 0 && xb[n * in] == 0xabcd, "bf16 pack in=%lld: %d wrong", (long long)in,
                  bad);
        free(x), free(xb);
    }
    hass_cpu_force(hass_cpu_available() & ~HASS_CPU_AMX);
    for (int64_t n = 1; n <= 9; n += 4) {
        int64_t in = 97, out = 53;
        float *wf, *x = randn(n * in, 1.0f);
        void *W = rand_weights(HASS_DTYPE_BF16, out, in, &wf);
        float *y1 = malloc(sizeof(float) * (size_t)(n * out)),
              *y2 = malloc(sizeof(float) * (size_t)(n * out));
        HASS_ASSERT(y1 && y2);
        hass_matmul(pools[1], y1, x, W, HASS_DTYPE_BF16, n, in, out);
        hass__matmul_rows_avx512bf16(y2, out, x, n, in, W, HASS_DTYPE_BF16, 0, out);
        CHECK_BITEQ(y2, y1, n * out, "bf16 rows (own packing) vs hass_matmul");
        free(x), free(wf), free(W), free(y1), free(y2);
    }
    hass_cpu_force(-1);
#else
    (void)pools;
    CHECK_SKIP("AVX-512 kernels not built");
#endif
}

int main(void) {
    check_init("test_ops");
    hass_rng_seed(&rng, 1234);
    hass_pool *pools[3] = {hass_pool_create(1), hass_pool_create(2), hass_pool_create(3)};
    HASS_ASSERT(pools[0] && pools[1] && pools[2]);
    isa_case cs[5];
    int ncs = isa_cases(cs);
    for (int i = 0; i < ncs; i++) {
        hass_cpu_force(cs[i].features);
        CHECK(strcmp(hass_cpu_isa_name(), cs[i].name) == 0);
        test_exp(&cs[i]);
        test_dot_kernels(&cs[i]);
        test_wavg(&cs[i]);
        test_scale_max(&cs[i]);
        test_matmul_vs_ref(&cs[i]);
        test_matmul_threads(&cs[i], pools);
        test_matmul_mixed(&cs[i], pools);
        test_tune_bits(&cs[i], pools);
        test_rows(&cs[i]);
        test_attention(&cs[i], pools);
    }
    hass_cpu_force(-1);
    test_isas_agree();
    test_tune_bf16();
    test_bf16_pack(pools);
#if defined(HASS_AVX512_EMU)
    /* the emulation build must really run the AVX-512 kernels, and use them by default */
    CHECK(ncs == 4);
    CHECK(strcmp(hass_cpu_isa_name(), "avx512bf16") == 0);
#endif
    if (!(hass_cpu_available() & HASS_CPU_AVX512))
        CHECK_SKIP("no AVX-512 on this CPU: the avx512 kernels run in the avx512emu build");
    test_rope();
    test_convert();
    for (int i = 0; i < 3; i++)
        hass_pool_destroy(pools[i]);
    return check_exit();
}
