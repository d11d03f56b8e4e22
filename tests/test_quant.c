/*
 * test_quant.c — the GGUF quantized block types: dequantization and the reference quantizers
 * against llama.cpp's own output (shared/models/quant/blocks.gguf: for every type T, T.src,
 * ggml's quantization T.q and ggml's dequantization T.deq), bit for bit; the scale check; the
 * integer matrix product (ops/quant.h) on every ISA this CPU can run against the scalar twin,
 * bit for bit, on odd sizes, alone, in batches and on 1-3 threads, and the scalar twin against
 * double-precision products of the dequantized weights.
 *
 * Against llama.cpp (shared/models/quant/tiny-*.gguf, the same random LLaMA in F32, Q8_0, Q4_0 and
 * Q4_K_M, with llama.cpp's tokenization, greedy outputs and logits): the prompt ids, the greedy
 * ids up to the first step whose recorded top-1/top-2 gap is below GAP_MIN, and the logits of the
 * first generated position within LOGIT_TOL (max abs; logits are about 1 in size).
 *
 * Tolerances (twin vs double): with activations chosen so that their quantization is exact
 * (integers, a block maximum of 127), the only errors are float roundings: (in/8 + 64) * 2^-24 *
 * sum |w x|. With random activations the int8 rounding adds sum_j |w_j| |x_j - dx a_j| and, for
 * Q4_1/Q5_1, sum_b |m_b| |sx_b - dx_b s_b| (the f16 sum ggml keeps).
 */
#include "check.h"
#include "formats/formats.h"
#include "model/model.h"
#include "ops/quant.h"
#include "tokenizer/tokenizer.h"

#include <cJSON.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const hass_dtype qtypes[] = {HASS_DTYPE_Q8_0, HASS_DTYPE_Q4_0, HASS_DTYPE_Q4_1,
                                    HASS_DTYPE_Q5_0, HASS_DTYPE_Q5_1, HASS_DTYPE_Q4_K,
                                    HASS_DTYPE_Q5_K, HASS_DTYPE_Q6_K};
#define NQT (int)(sizeof qtypes / sizeof qtypes[0])

/* blocks.gguf: dequantize T.q == T.deq bit for bit, quantize T.src == T.q byte for byte, both
 * for the whole tensor and row by row. */
static void test_blocks_fixture(void) {
    const char *path = check_shared("models/quant/blocks.gguf");
    if (!path) {
        CHECK_SKIP("shared/models/quant/blocks.gguf not found");
        return;
    }
    hass_gguf g;
    hass_err err = {0};
    if (hass_gguf_open(&g, path, &err) != HASS_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    for (int k = 0; k < NQT; k++) {
        hass_dtype t = qtypes[k];
        char nm[3][32];
        snprintf(nm[0], sizeof nm[0], "%s.src", hass_dtype_name(t));
        snprintf(nm[1], sizeof nm[1], "%s.q", hass_dtype_name(t));
        snprintf(nm[2], sizeof nm[2], "%s.deq", hass_dtype_name(t));
        const hass_tensor *src = hass_gguf_find_tensor(&g, nm[0]);
        const hass_tensor *q = hass_gguf_find_tensor(&g, nm[1]);
        const hass_tensor *deq = hass_gguf_find_tensor(&g, nm[2]);
        CHECK_MSG(src && q && deq, "%s: tensors missing", hass_dtype_name(t));
        if (!src || !q || !deq)
            continue;
        CHECK_EQ_INT(q->dtype, t);
        int64_t rows = q->shape[0], cols = q->shape[1], n = rows * cols;
        size_t rb = hass_dtype_bytes(t, (size_t)cols);
        float *y = malloc((size_t)n * sizeof(float));
        uint8_t *qq = malloc(q->nbytes);
        HASS_ASSERT(y && qq);
        hass_ggml_dequantize(t, q->data, y, n);
        CHECK_MSG(memcmp(y, deq->data, (size_t)n * sizeof(float)) == 0,
                  "%s: dequantization differs from ggml's", hass_dtype_name(t));
        int neg0 = 0;
        for (int64_t i = 0; i < n; i++)
            neg0 += y[i] == 0 && signbit(y[i]);
        /* the fixture has -0.0 where ggml's product has a negative factor (README) */
        if (t == HASS_DTYPE_Q4_0 || t == HASS_DTYPE_Q5_0 || t == HASS_DTYPE_Q6_K ||
            t == HASS_DTYPE_Q8_0)
            CHECK_MSG(neg0 > 0, "%s: no negative zeros", hass_dtype_name(t));
        CHECK_EQ_INT(hass_ggml_quantize(t, src->data, qq, n, &err), HASS_OK);
        CHECK_MSG(memcmp(qq, q->data, q->nbytes) == 0, "%s: quantization differs from ggml's",
                  hass_dtype_name(t));
        int rows_ok = 1;
        for (int64_t r = 0; r < rows; r++) {
            memset(qq, 0xa5, rb);
            hass_ggml_quantize(t, (const float *)src->data + r * cols, qq, cols, &err);
            rows_ok &= memcmp(qq, (const uint8_t *)q->data + (size_t)r * rb, rb) == 0;
            hass_ggml_dequantize(t, (const uint8_t *)q->data + (size_t)r * rb, y, cols);
            rows_ok &= memcmp(y, (const float *)deq->data + r * cols, (size_t)cols * 4) == 0;
        }
        CHECK_MSG(rows_ok, "%s: row by row != whole tensor", hass_dtype_name(t));
        CHECK_EQ_INT(hass_ggml_check(t, q->data, q->nbytes), -1);
        free(y), free(qq);
    }
    hass_gguf_close(&g);
}

/* The scale check finds an infinite or NaN f16 scale (d, or m / dmin) in any block; the
 * quantizer refuses non-finite input and sizes that are not whole blocks. */
static void test_check_and_errors(void) {
    static const int scale_off[NQT][2] = {{0, -1}, {0, -1}, {0, 2}, {0, -1},
                                          {0, 2},  {0, 2},  {0, 2}, {208, -1}};
    hass_err err = {0};
    for (int k = 0; k < NQT; k++) {
        hass_dtype t = qtypes[k];
        int64_t n = 4 * hass_dtype_block(t);
        size_t bb = hass_dtype_bytes(t, (size_t)hass_dtype_block(t));
        float *x = malloc((size_t)n * sizeof(float));
        uint8_t *q = malloc(4 * bb);
        HASS_ASSERT(x && q);
        for (int64_t i = 0; i < n; i++)
            x[i] = sinf((float)i * 0.37f);
        CHECK_EQ_INT(hass_ggml_quantize(t, x, q, n, &err), HASS_OK);
        CHECK_EQ_INT(hass_ggml_check(t, q, 4 * bb), -1);
        for (int s = 0; s < 2; s++) {
            int off = scale_off[k][s];
            if (off < 0)
                continue;
            uint8_t keep[2];
            memcpy(keep, q + 2 * bb + off, 2);
            const uint16_t bad[2] = {0x7c00 /* inf */, 0xfe01 /* nan */};
            for (int b = 0; b < 2; b++) {
                memcpy(q + 2 * bb + off, &bad[b], 2);
                CHECK_EQ_INT(hass_ggml_check(t, q, 4 * bb), 2);
            }
            memcpy(q + 2 * bb + off, keep, 2);
        }
        x[5] = NAN;
        CHECK_EQ_INT(hass_ggml_quantize(t, x, q, n, &err), HASS_STATUS_ARG);
        x[5] = INFINITY;
        CHECK_EQ_INT(hass_ggml_quantize(t, x, q, n, &err), HASS_STATUS_ARG);
        x[5] = 0;
        CHECK_EQ_INT(hass_ggml_quantize(t, x, q, n - 1, &err), HASS_STATUS_SHAPE);
        free(x), free(q);
    }
    float x[32] = {0};
    uint8_t q[64];
    CHECK_EQ_INT(hass_ggml_quantize(HASS_DTYPE_F32, x, q, 32, &err), HASS_STATUS_ARG);
}

/* ---- the integer matrix product ---- */
static hass_rng rng;

typedef struct {
    int features;
    const char *name;
} isa_case;

/* Every quantized-product kernel this CPU (and OS) can run, by the feature mask forcing it. */
static int isa_cases(isa_case *cs) {
    hass_cpu_force(-1);
    int f = hass_cpu_available(), amx = (f & HASS_CPU_AMXINT8) && hass__qamx_ok(), k = 0;
    const struct {
        int have, mask;
        const char *name;
    } all[] = {
        {1, 0, "scalar"},
        {f & HASS_CPU_AVX2, HASS_CPU_AVX2, "avx2"},
        {f & HASS_CPU_AVXVNNI, HASS_CPU_AVX2 | HASS_CPU_AVXVNNI, "avxvnni"},
        {f & HASS_CPU_AVX512VNNI, f & ~HASS_CPU_AMXINT8, "avx512vnni"},
        {amx, f, "amx-int8"},
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].have)
            cs[k++] = (isa_case){all[i].mask, all[i].name};
    return k;
}

/* (out, in) weights of type t: random normal rows quantized by the reference quantizer, or
 * (raw) random bytes with small finite scales (every integer value, Q8_0's -128 included). */
static uint8_t *rand_qweights(hass_dtype t, int64_t out, int64_t in, int raw, float **wf) {
    size_t rb = hass_dtype_bytes(t, (size_t)in), bb = hass_dtype_bytes(t, hass_dtype_block(t));
    uint8_t *w = malloc((size_t)out * rb);
    float *x = malloc((size_t)in * sizeof(float));
    HASS_ASSERT(w && x);
    hass_err err = {0};
    for (int64_t o = 0; o < out; o++) {
        for (int64_t i = 0; i < in; i++)
            x[i] = hass_rng_normal(&rng) * (o % 5 == 4 ? 1e-6f : 0.05f);
        HASS_ASSERT(hass_ggml_quantize(t, x, w + (size_t)o * rb, in, &err) == HASS_OK);
    }
    if (raw) {
        for (size_t i = 0; i < (size_t)out * rb; i++)
            w[i] = (uint8_t)hass_rng_u64(&rng);
        static const int off[8][2] = {{0, -1}, {0, -1}, {0, 2}, {0, -1},
                                      {0, 2},  {0, 2},  {0, 2}, {208, -1}};
        int k = 0;
        while (qtypes[k] != t)
            k++;
        for (size_t b = 0; b < (size_t)out * rb / bb; b++)
            for (int s = 0; s < 2; s++)
                if (off[k][s] >= 0) {
                    uint16_t h = hass_f32_to_f16(0.001f + 0.01f * hass_rng_uniform(&rng));
                    memcpy(w + b * bb + off[k][s], &h, 2);
                }
    }
    *wf = malloc((size_t)(out * in) * sizeof(float));
    HASS_ASSERT(*wf);
    hass_ggml_dequantize(t, w, *wf, out * in);
    free(x);
    return w;
}

/* n rows of activations: exact = integers whose quantization is exact (see the header). */
static float *rand_x(int64_t n, int64_t in, int exact) {
    float *x = malloc((size_t)(n * in) * sizeof(float));
    HASS_ASSERT(x);
    for (int64_t i = 0; i < n * in; i++) {
        if (!exact)
            x[i] = hass_rng_normal(&rng) * (i % 97 == 3 ? 30.f : 1.f);
        else if (i % 32 == 0)
            x[i] = -127; /* the first largest magnitude of its block and super-block */
        else
            x[i] = (float)((int)(hass_rng_u64(&rng) % 121) - 60);
    }
    return x;
}

/* The twin against double products of the dequantized weights. */
static void check_twin(hass_dtype t, const float *y, const float *x, const float *wf,
                       const hass__qgroup *xa, int64_t n, int64_t in, int64_t out, int exact,
                       const uint8_t *W, const char *label) {
    int64_t ng = hass__qgroups(in), bad = 0;
    int k = hass__qkind_k(t), has_min = t == HASS_DTYPE_Q4_1 || t == HASS_DTYPE_Q5_1;
    size_t rb = hass_dtype_bytes(t, (size_t)in), bb = hass_dtype_bytes(t, 32);
    double worst = 0;
    for (int64_t r = 0; r < n; r++)
        for (int64_t o = 0; o < out; o++) {
            double ref = 0, mag = 0, qerr = 0;
            for (int64_t j = 0; j < in; j++) {
                const hass__qgroup *g = &xa[r * ng + (k ? j / 256 : j / 256)];
                int blk = (int)(j % 256 / 32), e = (int)(j % 32);
                double dx = k ? g->d[0] : g->d[blk];
                double a = (int8_t)g->qs[32 * (e / 4) + 4 * blk + e % 4] * dx;
                double w = wf[o * in + j], xv = x[r * in + j];
                ref += w * xv;
                mag += fabs(w * xv);
                qerr += fabs(w) * fabs(xv - a);
            }
            if (has_min)
                for (int64_t b = 0; b < in / 32; b++) {
                    const hass__qgroup *g = &xa[r * ng + b / 8];
                    uint16_t h;
                    memcpy(&h, W + (size_t)o * rb + (size_t)b * bb + 2, 2);
                    qerr += fabs(hass_f16_to_f32(h)) *
                            fabs((double)g->sf[b % 8] - (double)g->d[b % 8] * g->s[b % 8]);
                }
            double tol =
                ((double)in / 8 + 64) * ldexp(1.0, -24) * (mag + qerr) + 1.001 * qerr + 1e-30;
            double e = fabs((double)y[r * out + o] - ref);
            bad += !(e <= tol);
            worst = e / tol > worst ? e / tol : worst;
        }
    CHECK_MSG(bad == 0, "%s (%s): %lld outputs off the double reference (worst err/tol %.3g)",
              label, exact ? "exact x" : "random x", (long long)bad, worst);
}

static void test_matmul_cases(const isa_case *cs, int ncs, hass_pool **pools) {
    static const int64_t ins32[] = {32, 96, 288, 1024}, insk[] = {256, 768, 2304};
    static const int64_t outs[] = {1, 2, 5, 13, 37};
    const int64_t NMAX = 17; /* batches of 2..9, 16, 17 rows (16 and 17: AMX-INT8 tiles) */
    for (int q = 0; q < NQT; q++) {
        hass_dtype t = qtypes[q];
        int kq = hass__qkind_k(t);
        for (int a = 0; a < (kq ? 3 : 4); a++)
            for (int b = 0; b < 5; b++)
                for (int v = 0; v < 3; v++) { /* v: 0 exact x, 1 random x, 2 raw weights */
                    int64_t in = kq ? insk[a] : ins32[a], out = outs[b], ng = hass__qgroups(in);
                    float *wf, *x = rand_x(NMAX, in, v == 0);
                    uint8_t *W = rand_qweights(t, out, in, v == 2, &wf);
                    size_t ys = (size_t)(NMAX * out) * sizeof(float);
                    float *twin = malloc(ys), *one = malloc(ys), *y = malloc(ys);
                    hass__qgroup *xa = hass_aligned_alloc((size_t)(NMAX * ng) * sizeof *xa);
                    HASS_ASSERT(twin && one && y && xa);
                    (kq ? hass__qact_k : hass__qact_32)(xa, x, NMAX, in);
                    hass__qrows_scalar(twin, out, xa, NMAX, in, W, t, 0, out);
                    char label[128];
                    snprintf(label, sizeof label, "%s in=%lld out=%lld%s", hass_dtype_name(t),
                             (long long)in, (long long)out, v == 2 ? " raw" : "");
                    if (v < 2)
                        check_twin(t, twin, x, wf, xa, NMAX, in, out, v == 0, W, label);
                    for (int c = 0; c < ncs; c++) {
                        hass_cpu_force(cs[c].features);
                        for (int64_t r = 0; r < NMAX; r++)
                            hass_matmul(NULL, one + r * out, x + r * in, W, t, 1, in, out);
                        int ok = memcmp(one, twin, ys) == 0;
                        for (int64_t nn = 2; nn <= NMAX; nn += nn == 9 ? 7 : 1) {
                            memset(y, 0xff, ys);
                            hass_matmul(pools[nn % 3], y, x, W, t, nn, in, out);
                            ok &= memcmp(y, twin, (size_t)(nn * out) * sizeof(float)) == 0;
                        }
                        CHECK_MSG(ok, "%s %s: != scalar twin", cs[c].name, label);
                    }
                    hass_cpu_force(-1);
                    free(wf), free(x), free(W), free(twin), free(one), free(y);
                    hass_aligned_free(xa);
                }
    }
}

/* Above the serial threshold, on 1-3 threads, every ISA: batches of several sizes == rows
 * alone; one dispatch of mixed jobs (32-types, K types, f32) == separate products; non-finite
 * activations give NaN only in their own rows. */
static void test_matmul_threads(const isa_case *cs, int ncs, hass_pool **pools) {
    const int64_t in = 512, out = 301, N = 23;
    float *x = rand_x(N, in, 0);
    size_t ys = (size_t)(N * out) * sizeof(float);
    float *one = malloc(ys), *y = malloc(ys);
    HASS_ASSERT(one && y);
    for (int q = 0; q < NQT; q++) {
        hass_dtype t = qtypes[q];
        float *wf;
        uint8_t *W = rand_qweights(t, out, in, 0, &wf);
        for (int c = 0; c < ncs; c++) {
            hass_cpu_force(cs[c].features);
            for (int64_t r = 0; r < N; r++)
                hass_matmul(pools[0], one + r * out, x + r * in, W, t, 1, in, out);
            int ok = 1;
            static const int64_t ns[] = {2, 5, 16, 23};
            for (int p = 0; p < 3; p++)
                for (int k = 0; k < 4; k++) {
                    memset(y, 0xff, ys);
                    hass_matmul(pools[p], y, x, W, t, ns[k], in, out);
                    ok &= memcmp(y, one, (size_t)(ns[k] * out) * sizeof(float)) == 0;
                }
            CHECK_MSG(ok, "%s %s: threaded batches != rows alone", cs[c].name, hass_dtype_name(t));
        }
        free(W), free(wf);
    }
    /* mixed jobs in one dispatch: Q4_0 (32), Q6_K (256), F32, Q4_K */
    const hass_dtype mt[4] = {HASS_DTYPE_Q4_0, HASS_DTYPE_Q6_K, HASS_DTYPE_F32, HASS_DTYPE_Q4_K};
    const int64_t mo[4] = {100, 37, 64, 100};
    uint8_t *mw[4];
    float *mwf[4], *my[4], *ref[4];
    for (int j = 0; j < 4; j++) {
        if (mt[j] == HASS_DTYPE_F32) {
            mwf[j] = malloc((size_t)(mo[j] * in) * sizeof(float));
            for (int64_t i = 0; i < mo[j] * in; i++)
                mwf[j][i] = hass_rng_normal(&rng) * 0.05f;
            mw[j] = (uint8_t *)mwf[j];
        } else {
            mw[j] = rand_qweights(mt[j], mo[j], in, 0, &mwf[j]);
        }
        my[j] = malloc((size_t)(N * mo[j]) * sizeof(float));
        ref[j] = malloc((size_t)(N * mo[j]) * sizeof(float));
    }
    for (int c = 0; c < ncs; c++) {
        hass_cpu_force(cs[c].features);
        hass_matmul_job jobs[4];
        for (int j = 0; j < 4; j++) {
            hass_matmul(pools[0], ref[j], x, mw[j], mt[j], N, in, mo[j]);
            jobs[j] = (hass_matmul_job){my[j], mw[j], mt[j], mo[j]};
        }
        for (int p = 0; p < 3; p++) {
            hass_matmul_multi(pools[p], x, N, in, jobs, 4);
            int ok = 1;
            for (int j = 0; j < 4; j++)
                ok &= memcmp(my[j], ref[j], (size_t)(N * mo[j]) * sizeof(float)) == 0;
            CHECK_MSG(ok, "%s: mixed matmul_multi on %d threads != separate products", cs[c].name,
                      p + 1);
        }
        /* an inf in row 3: NaN in row 3 only, the other rows unchanged */
        float keep = x[3 * in + 7];
        x[3 * in + 7] = INFINITY;
        hass_matmul(pools[1], y, x, mw[0], mt[0], N, in, mo[0]);
        int nan_ok = 1;
        for (int64_t r = 0; r < N; r++)
            for (int64_t o = 0; o < mo[0]; o++)
                nan_ok &=
                    r == 3 ? isnan(y[r * mo[0] + o]) : y[r * mo[0] + o] == ref[0][r * mo[0] + o];
        CHECK_MSG(nan_ok, "%s: a non-finite activation leaks out of its row", cs[c].name);
        x[3 * in + 7] = keep;
    }
    hass_cpu_force(-1);
    for (int j = 0; j < 4; j++) {
        if (mt[j] != HASS_DTYPE_F32)
            free(mw[j]);
        free(mwf[j]), free(my[j]), free(ref[j]);
    }
    free(x), free(one), free(y);
}

/* ---- against llama.cpp's own runs of the tiny model ---- */
#define GAP_MIN 2e-3
static const struct {
    const char *file;
    double logit_tol;
} tiny_files[] = {
    /* F32: only the summation order differs (measured 3e-7); quantized: llama.cpp quantizes
     * the activations as we do, its float accumulation order differs (measured 1.2e-7 for Q8_0
     * and Q4_K_M). Q4_0: prompt 1 (7 tokens) agrees to 6e-8, but at prompt 0 (5 tokens) all 512
     * of llama.cpp's logits are 0.013 away from ours: its Q4_0 matrices run through repacked
     * batch kernels (the fixture's settings) chosen by batch size, and that run's offset is of
     * the size of the whole activation-quantization effect (its native vs its dequantized-F32
     * logits: 0.011). The greedy ids agree in every case. */
    {"tiny-f32.gguf", 2e-5},
    {"tiny-q8_0.gguf", 2e-4},
    {"tiny-q4_0.gguf", 0.03},
    {"tiny-q4_k_m.gguf", 2e-4},
};

static cJSON *read_json(const char *rel) {
    const char *path = check_shared(rel);
    char *text = NULL;
    hass_err err = {0};
    if (!path || hass_read_file(path, &text, NULL, &err) != HASS_OK)
        return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static int argmax_lowest(const float *x, int64_t n) {
    int64_t b = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return (int)b;
}

static void tiny_run(const char *file, double logit_tol, const cJSON *runs, const cJSON *logits) {
    char rel[128];
    snprintf(rel, sizeof rel, "models/quant/%s", file);
    const char *path = check_shared(rel);
    hass_err err = {0};
    hass_model *m = path ? hass_model_load(path, &err) : NULL;
    hass_gguf g;
    hass_tokenizer *tok = NULL;
    if (path && hass_gguf_open(&g, path, &err) == HASS_OK) {
        tok = hass_tokenizer_load_gguf(&g, &err);
        hass_gguf_close(&g);
    }
    CHECK_MSG(m && tok, "%s: %s", file, err.msg);
    if (!m || !tok) {
        hass_model_free(m);
        hass_tokenizer_free(tok);
        return;
    }
    hass_kv kv;
    HASS_ASSERT(hass_kv_init(&kv, m, 64, 16, NULL, &err) == HASS_OK);
    float *lg = malloc((size_t)m->cfg.V * sizeof(float));
    HASS_ASSERT(lg);
    for (int p = 0; p < cJSON_GetArraySize(runs); p++) {
        const cJSON *run = cJSON_GetArrayItem(runs, p);
        const char *text = cJSON_GetObjectItem(run, "prompt")->valuestring;
        const cJSON *pids = cJSON_GetObjectItem(run, "prompt_ids");
        const cJSON *nat = cJSON_GetObjectItem(run, "native");
        const cJSON *want = cJSON_GetObjectItem(nat, "output_ids");
        const cJSON *gaps = cJSON_GetObjectItem(nat, "top1_top2_gaps");
        int32_t ids[16], got[16];
        int np = cJSON_GetArraySize(pids);
        HASS_ASSERT(np <= 16);
        for (int i = 0; i < np; i++)
            ids[i] = cJSON_GetArrayItem(pids, i)->valueint;
        int64_t ne = hass_tokenizer_encode(tok, text, strlen(text), 1, 0, got, 16, &err);
        CHECK_MSG(ne == np && memcmp(got, ids, (size_t)np * sizeof(int32_t)) == 0,
                  "%s prompt %d: tokenization differs from llama.cpp's", file, p);
        hass_kv_truncate(&kv, 0);
        int32_t pos[16];
        for (int i = 0; i < np; i++)
            pos[i] = i;
        HASS_ASSERT(hass_model_forward(m, &kv, NULL, np, ids, pos, NULL, lg, np - 1, NULL, &err) ==
                    HASS_OK);
        hass_kv_commit(&kv, np);
        /* logits of the first generated position */
        const cJSON *ref = cJSON_GetArrayItem(cJSON_GetObjectItem(logits, "native"), p);
        double maxd = 0;
        for (int64_t v = 0; v < m->cfg.V; v++) {
            double d = fabs((double)lg[v] - cJSON_GetArrayItem(ref, (int)v)->valuedouble);
            maxd = d > maxd ? d : maxd;
        }
        CHECK_MSG(maxd <= logit_tol, "%s prompt %d: logits differ from llama.cpp's by %.3g", file,
                  p, maxd);
        fprintf(stderr, "  %s prompt %d: max |logit - llama.cpp| %.3g", file, p, maxd);
        int agree = 0, steps = 0;
        for (int s = 0; s < cJSON_GetArraySize(want); s++) {
            int32_t t = argmax_lowest(lg, m->cfg.V);
            if (cJSON_GetArrayItem(gaps, s)->valuedouble < GAP_MIN)
                break; /* a near-tie: the ids may part from here on */
            steps++;
            agree += t == cJSON_GetArrayItem(want, s)->valueint;
            int32_t ps = (int32_t)kv.n;
            HASS_ASSERT(hass_model_forward(m, &kv, NULL, 1, &t, &ps, NULL, lg, 0, NULL, &err) ==
                        HASS_OK);
            hass_kv_commit(&kv, 1);
        }
        CHECK_MSG(agree == steps, "%s prompt %d: %d of %d greedy ids agree with llama.cpp's", file,
                  p, agree, steps);
        fprintf(stderr, ", greedy ids %d/%d before the first gap < %g\n", agree, steps, GAP_MIN);
    }
    free(lg);
    hass_kv_free(&kv);
    hass_tokenizer_free(tok);
    hass_model_free(m);
}

static void test_llama_cpp(void) {
    cJSON *greedy = read_json("models/quant/tiny-greedy.json");
    cJSON *logits = read_json("models/quant/tiny-logits.json");
    if (!greedy || !logits) {
        CHECK_SKIP("shared/models/quant/tiny-greedy.json / tiny-logits.json not found");
    } else {
        const cJSON *gf = cJSON_GetObjectItem(greedy, "files");
        const cJSON *lf = cJSON_GetObjectItem(logits, "files");
        for (size_t i = 0; i < sizeof tiny_files / sizeof tiny_files[0]; i++) {
            const cJSON *runs =
                cJSON_GetObjectItem(cJSON_GetObjectItem(gf, tiny_files[i].file), "runs");
            const cJSON *lg = cJSON_GetObjectItem(lf, tiny_files[i].file);
            CHECK_MSG(runs && lg, "%s: not in the JSON files", tiny_files[i].file);
            if (runs && lg)
                tiny_run(tiny_files[i].file, tiny_files[i].logit_tol, runs, lg);
        }
    }
    cJSON_Delete(greedy);
    cJSON_Delete(logits);
}

/* hass_model_quantize of tiny-f32.gguf == llama-quantize's tiny-<t>.gguf, tensor by tensor
 * (type, shape, bytes), general.file_type as llama.cpp's; the same bytes twice. */
static void test_quantize_fixtures(void) {
    const char *f32 = check_shared("models/quant/tiny-f32.gguf");
    if (!f32) {
        CHECK_SKIP("shared/models/quant/tiny-f32.gguf not found");
        return;
    }
    hass_err err = {0};
    hass_model *m = hass_model_load(f32, &err);
    CHECK_MSG(m != NULL, "%s", err.msg);
    static const struct {
        const char *type, *file;
        uint64_t ftype;
    } cases[] = {{"q8_0", "tiny-q8_0.gguf", 7},
                 {"q4_0", "tiny-q4_0.gguf", 2},
                 {"Q4_K_M", "tiny-q4_k_m.gguf", 15}};
    char out[2][128];
    for (int k = 0; k < 2; k++)
        snprintf(out[k], sizeof out[k], "/tmp/hass_test_quant_%ld_%d.gguf", (long)getpid(), k);
    for (size_t c = 0; m && c < sizeof cases / sizeof cases[0]; c++) {
        char rel[64];
        snprintf(rel, sizeof rel, "models/quant/%s", cases[c].file);
        const char *ref_path = check_shared(rel);
        hass_quant_plan plan;
        CHECK(hass_quant_plan_init(&plan, cases[c].type, 0, m, &err) == HASS_OK);
        for (int k = 0; k < 2; k++)
            CHECK_MSG(hass_model_quantize(m, out[k], &plan, "tiny", NULL, &err) == HASS_OK, "%s",
                      err.msg);
        hass_gguf a, b;
        if (!ref_path || hass_gguf_open(&a, out[0], &err) != HASS_OK) {
            CHECK_MSG(0, "%s: %s", cases[c].type, err.msg);
            continue;
        }
        if (hass_gguf_open(&b, ref_path, &err) != HASS_OK) {
            CHECK_MSG(0, "%s", err.msg);
            hass_gguf_close(&a);
            continue;
        }
        int same = a.n_tensors == b.n_tensors;
        for (int64_t i = 0; i < b.n_tensors; i++) {
            const hass_tensor *tb = &b.tensors[i], *ta = hass_gguf_find_tensor(&a, tb->name);
            int ok = ta && ta->dtype == tb->dtype && ta->ndim == tb->ndim &&
                     !memcmp(ta->shape, tb->shape, sizeof ta->shape) && ta->nbytes == tb->nbytes &&
                     !memcmp(ta->data, tb->data, tb->nbytes);
            CHECK_MSG(ok, "%s: tensor %s differs from llama-quantize's", cases[c].type, tb->name);
            same &= ok;
        }
        CHECK_MSG(same, "%s: not every tensor as llama-quantize wrote it", cases[c].type);
        uint64_t ft = 0, qv = 0;
        CHECK(hass_gguf_get_u64(&a, "general.file_type", &ft) && ft == cases[c].ftype);
        CHECK(hass_gguf_get_u64(&a, "general.quantization_version", &qv) && qv == 2);
        hass_gguf_close(&a);
        hass_gguf_close(&b);
        char *x = NULL, *y = NULL;
        size_t nx = 0, ny = 0;
        CHECK(hass_read_file(out[0], &x, &nx, &err) == HASS_OK &&
              hass_read_file(out[1], &y, &ny, &err) == HASS_OK && nx == ny && !memcmp(x, y, nx));
        free(x), free(y);
        hass_model *q = hass_model_load(out[0], &err);
        CHECK_MSG(q != NULL, "%s: the written file does not load: %s", cases[c].type, err.msg);
        hass_model_free(q);
    }
    /* a value that is not finite cannot be quantized: the file is not written */
    hass_model_config sc = hass_model_config_make(256, 512, 2, 4, 2, 64, 64);
    hass_model *sm = hass_model_synthetic(&sc, HASS_DTYPE_F32, 3, &err);
    if (sm) {
        hass_quant_plan plan;
        CHECK(hass_quant_plan_init(&plan, "q4_k_m", 0, sm, &err) == HASS_OK);
        unlink(out[0]);
        ((float *)sm->layers[1].wd)[5] = NAN; /* the synthetic model owns its weights */
        CHECK(hass_model_quantize(sm, out[0], &plan, "s", NULL, &err) == HASS_STATUS_ARG &&
              strstr(err.msg, "blk.1.ffn_down.weight") && !hass_file_exists(out[0]));
        CHECK(hass_quant_plan_init(&plan, "q3_k", 0, sm, &err) == HASS_STATUS_ARG);
        hass_model_free(sm);
    }
    for (int k = 0; k < 2; k++)
        unlink(out[k]);
    hass_model_free(m);
}

/* llama.cpp's mixes for a 32-layer model (LLaMA-7B's depth): Q4_K_M puts attn_v and ffn_down of
 * layers 0-3, 6, 9, ..., 27 and 28-31 in Q6_K; Q4_K_S attn_v of layers 0-3 and ffn_down of
 * layers 0-3 in Q5_K; output.weight Q6_K except for q8_0; rows that are not whole blocks fall
 * back; --pure keeps the base type. */
static void test_quant_mix(void) {
    hass_quant_plan p = {HASS_DTYPE_Q4_K, 15, 0, 0, 32};
    static const int six[] = {0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31};
    for (int l = 0; l < 32; l++) {
        int want6 = 0;
        for (size_t k = 0; k < sizeof six / sizeof six[0]; k++)
            want6 |= six[k] == l;
        char v[64], dn[64], q[64];
        snprintf(v, sizeof v, "blk.%d.attn_v.weight", l);
        snprintf(dn, sizeof dn, "blk.%d.ffn_down.weight", l);
        snprintf(q, sizeof q, "blk.%d.attn_q.weight", l);
        hass_dtype want = want6 ? HASS_DTYPE_Q6_K : HASS_DTYPE_Q4_K;
        CHECK_EQ_INT(hass_quant_pick(&p, v, 1024, 4096, HASS_DTYPE_F32), want);
        CHECK_EQ_INT(hass_quant_pick(&p, dn, 4096, 11008, HASS_DTYPE_F32), want);
        CHECK_EQ_INT(hass_quant_pick(&p, q, 4096, 4096, HASS_DTYPE_F32), HASS_DTYPE_Q4_K);
        hass_quant_plan s = {HASS_DTYPE_Q4_K, 14, 0, 0, 32};
        CHECK_EQ_INT(hass_quant_pick(&s, v, 1024, 4096, HASS_DTYPE_F32),
                     l < 4 ? HASS_DTYPE_Q5_K : HASS_DTYPE_Q4_K);
        CHECK_EQ_INT(hass_quant_pick(&s, dn, 4096, 11008, HASS_DTYPE_F32),
                     l < 4 ? HASS_DTYPE_Q5_K : HASS_DTYPE_Q4_K);
    }
    CHECK_EQ_INT(hass_quant_pick(&p, "output.weight", 32000, 4096, HASS_DTYPE_F32),
                 HASS_DTYPE_Q6_K);
    CHECK_EQ_INT(hass_quant_pick(&p, "token_embd.weight", 32000, 4096, HASS_DTYPE_F32),
                 HASS_DTYPE_Q4_K);
    p.tied = 1; /* a tied embedding is the output: quantized as it */
    CHECK_EQ_INT(hass_quant_pick(&p, "token_embd.weight", 32000, 4096, HASS_DTYPE_F32),
                 HASS_DTYPE_Q6_K);
    CHECK_EQ_INT(hass_quant_pick(&p, "blk.3.ffn_down.weight", 4096, 11040, HASS_DTYPE_F32),
                 HASS_DTYPE_Q8_0); /* Q6_K rows of 11040: not whole super-blocks */
    CHECK_EQ_INT(hass_quant_pick(&p, "blk.4.ffn_down.weight", 4096, 11040, HASS_DTYPE_F32),
                 HASS_DTYPE_Q5_0);
    CHECK_EQ_INT(hass_quant_pick(&p, "blk.4.ffn_down.weight", 4096, 11001, HASS_DTYPE_F32),
                 HASS_DTYPE_F16);
    hass_quant_plan q8 = {HASS_DTYPE_Q8_0, 7, 0, 0, 32}, pure = {HASS_DTYPE_Q4_K, 15, 1, 0, 32};
    CHECK_EQ_INT(hass_quant_pick(&q8, "output.weight", 32000, 4096, HASS_DTYPE_F32),
                 HASS_DTYPE_Q8_0);
    CHECK_EQ_INT(hass_quant_pick(&pure, "output.weight", 32000, 4096, HASS_DTYPE_F32),
                 HASS_DTYPE_Q4_K);
    CHECK_EQ_INT(hass_quant_pick(&pure, "blk.0.attn_v.weight", 1024, 4096, HASS_DTYPE_F32),
                 HASS_DTYPE_Q4_K);
}

/* The AVX2 activation quantizers give the scalar ones' bytes, special blocks included (zeros,
 * a repeated maximum of both signs, subnormal-scale values, an inf, a NaN). */
static void test_qact(void) {
    if (!(hass_cpu_available() & HASS_CPU_AVX2)) {
        CHECK_SKIP("no AVX2: one activation quantizer only");
        return;
    }
    static const int64_t ins[] = {32, 96, 288, 256, 768, 2304};
    for (int a = 0; a < 6; a++) {
        int64_t in = ins[a], n = 5, ng = hass__qgroups(in);
        float *x = rand_x(n, in, 0);
        for (int64_t j = 0; j < 32; j++)
            x[in + j] = 0; /* row 1: a zero block */
        for (int64_t j = 0; j < in; j++)
            x[2 * in + j] = (j % 7 == 3 ? -1.f : j % 7 == 5 ? 1.f : 0.25f) * 1e-6f;
        x[3 * in + in / 2] = INFINITY;
        x[4 * in + 1] = NAN;
        for (int k = 0; k < 2; k++) {
            if (k == 1 && in % 256)
                continue;
            size_t bytes = (size_t)(n * ng) * sizeof(hass__qgroup);
            hass__qgroup *p = hass_aligned_alloc(bytes), *q = hass_aligned_alloc(bytes);
            HASS_ASSERT(p && q);
            (k ? hass__qact_k_scalar : hass__qact_32_scalar)(p, x, n, in);
            (k ? hass__qact_k_avx2 : hass__qact_32_avx2)(q, x, n, in);
            CHECK_MSG(memcmp(p, q, bytes) == 0, "activation quantizer %s in=%lld: avx2 != scalar",
                      k ? "K" : "32", (long long)in);
            hass_aligned_free(p), hass_aligned_free(q);
        }
        free(x);
    }
}

int main(void) {
    check_init("test_quant");
    test_blocks_fixture();
    test_check_and_errors();
    hass_rng_seed(&rng, 4321);
    hass_pool *pools[3] = {hass_pool_create(1), hass_pool_create(2), hass_pool_create(3)};
    HASS_ASSERT(pools[0] && pools[1] && pools[2]);
    isa_case cs[5];
    int ncs = isa_cases(cs);
    test_qact();
    test_matmul_cases(cs, ncs, pools);
    test_matmul_threads(cs, ncs, pools);
    test_llama_cpp();
    test_quantize_fixtures();
    test_quant_mix();
#if defined(HASS_AVX512_EMU)
    CHECK(ncs == 4); /* the emulation build runs the VNNI kernels over SIMDe */
#endif
    if (ncs < 4)
        CHECK_SKIP(
            "this CPU lacks AVX-VNNI or AVX512-VNNI: those kernels run in the avx512emu build");
    for (int i = 0; i < 3; i++)
        hass_pool_destroy(pools[i]);
    return check_exit();
}
