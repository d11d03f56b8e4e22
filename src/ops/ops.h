/*
 * ops — the numerical kernels of the forward pass. Each has a naive twin in ops_ref.c
 * (hass_ref_*) that is the test oracle; the fast versions pick AVX-512 / AVX2 / scalar
 * code at run time (hass_cpu_features).
 *
 * Batch invariance (the property greedy speculative decoding relies on): every output row of
 * every op here is computed with the same sequence of floating-point operations whether the
 * op runs on 1 row or n rows, and whatever the thread count. Threads split output rows or
 * (row, head) pairs, never a reduction.
 */
#ifndef HASS_OPS_H
#define HASS_OPS_H

#include "core/core.h"
#include "core/tensor.h"

/* ---- cpu features ---- */
enum {
    HASS_CPU_AVX2 = 1,
    HASS_CPU_AVX512 = 2,
    HASS_CPU_AVX512BF16 = 4,
    HASS_CPU_AMX = 8,
    HASS_CPU_AVXVNNI = 16,    /* vpdpbusd, VEX 256-bit (quantized products) */
    HASS_CPU_AVX512VNNI = 32, /* vpdpbusd, EVEX (with AVX-512) */
    HASS_CPU_AMXINT8 = 64,    /* AMX tiles with int8 products (with AVX-512) */
};
/* The kernels in use (bitmask, cached): the best the CPU has, capped by
 * HASS_CPU=scalar|avx2|avxvnni|avx512|avx512bf16 (avx2 = without VNNI, avxvnni = AVX2 + AVX-VNNI,
 * avx512 = without the AVX512_BF16 dot, avx512bf16 = without AMX), narrowed by hass_cpu_force. */
int hass_cpu_features(void);
/* What the CPU supports (capped by HASS_CPU), whether in use or not. */
int hass_cpu_available(void);
/* "amx" (AVX-512 + AVX512_BF16 + AMX tiles for bf16 products), "avx512bf16", "avx512", "avx2"
 * or "scalar" */
const char *hass_cpu_isa_name(void);
/* The kernel of products with quantized weights: "amx-int8", "avx512vnni", "avxvnni", "avx2" or
 * "scalar". */
const char *hass_cpu_quant_isa_name(void);
/* What the CPU, HASS_CPU and hass_cpu_force allow, before hass_ops_tune's bf16 choice narrows
 * it (hass_cpu_features = this, narrowed). */
int hass_cpu_allowed(void);
/* The CPU model: "vendor family.model.stepping brand" from cpuid ("unknown" elsewhere). */
const char *hass_cpu_model(void);
/* Restricts the kernels to features & (what the CPU and HASS_CPU allow); features < 0 undoes it.
 * For tests and benchmarks: call it between kernel calls, never while one runs. */
void hass_cpu_force(int features);

/* ---- kernel choices made by measurement ----
 * Where two correct kernels exist for one op, the engine times them once per machine (CPU model),
 * thread count and model shape (decode.c: a short calibration cached with the verify cost curve)
 * and sets the winners here; hass_ops_tune_set(NULL) or an all-zero struct means the built-in
 * defaults. One setting per process: set it between kernel calls, never while one runs.
 *  bf16:  the product for bf16 weights: HASS_BF16_AMX (tiles), HASS_BF16_DP (vdpbf16ps, x rounded
 *         to bf16), HASS_BF16_FMA (weights widened to f32, x kept f32), or HASS_BF16_WIDEST (the
 *         widest the CPU and HASS_CPU allow). Their results differ in the last bits, so this
 *         choice is made per machine and model and never depends on how many rows a call has;
 *         it only narrows what hass_cpu_features reports, so HASS_CPU caps it. HASS_KERNELS_AVX2
 *         narrows every float kernel (products of f32/f16/bf16 weights, attention, exp) to the
 *         AVX2 set, where it is the faster on a model (stories260K on a Zen 5: the 8-lane
 *         kernels 3-10% ahead), chosen the same way, for f32 models too.
 *  rb[b]: x rows per register block (1..4; 0 = 4) for products of 2..8 rows (b = 0) and of more
 *         (b = 1);
 *  pf[b]: prefetch of the next weight block (0 = the default, 1 = on, 2 = off) for products of
 *         one row (b = 0), 2..8 (b = 1) and more (b = 2).
 * rb and pf decide only which elements are computed together and what is fetched early, never how
 * an element is computed: every setting gives bit-identical results (test_ops checks it), so they
 * may differ by the number of rows. Products with quantized weights (quant.h) take none of these:
 * their blocking is fixed, and the bf16 choice never narrows the VNNI or AMX-INT8 features. */
enum {
    HASS_BF16_WIDEST = 0,
    HASS_BF16_AMX = 1,
    HASS_BF16_DP = 2,
    HASS_BF16_FMA = 3,
    HASS_KERNELS_AVX2 = 4
};
typedef struct {
    int bf16;
    int rb[2];
    int pf[3];
} hass_ops_tune;
void hass_ops_tune_set(const hass_ops_tune *t);
hass_ops_tune hass_ops_tune_get(void);

/* ---- matrix products ----
 * y: (n, out) f32; x: (n, in) f32; W: (out, in) row-major of dtype wt (F32, BF16, F16, or a
 * GGUF block type: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 with in % 32 == 0, Q4_K, Q5_K, Q6_K with
 * in % 256 == 0). y[r][o] = sum_i x[r][i] * W[o][i]. Overwrites y. Thread-safe for distinct y.
 * BF16 weights on AVX512_BF16 machines round x to bf16 (pairs summed by vdpbf16ps, or on
 * AMX machines by the tile unit, 32 k at a time, when in % 32 == 0); elsewhere x stays f32.
 * Quantized weights: each row of x is quantized to int8 as ggml does (Q8_0/Q8_1 per 32 values,
 * Q8_K per 256) and multiplied by integer dot products; the float arithmetic of each output is
 * fixed and the same on every ISA (src/ops/quant.h). Either way the result is batch invariant.
 * Threads split output rows in units of 48; a product of fewer than 65536 multiply-adds runs on
 * the calling thread without touching the pool. The weights are streamed from memory once per
 * call for any n (blocks of rows of W stay in L1 while all n rows of x pass over them). */
void hass_matmul(hass_pool *pool, float *y, const float *x, const void *W, hass_dtype wt, int64_t n,
                 int64_t in, int64_t out);

/* Several products that share x, in one thread dispatch (e.g. q/k/v or gate/up). */
typedef struct {
    float *y;      /* (n, out) */
    const void *W; /* (out, in) */
    hass_dtype wt;
    int64_t out;
} hass_matmul_job;
void hass_matmul_multi(hass_pool *pool, const float *x, int64_t n, int64_t in,
                       const hass_matmul_job *jobs, int njobs);

/* Row `row` of an embedding table (V, d) of dtype t, as f32. */
void hass_embed_row(float *out, const void *table, hass_dtype t, int64_t row, int64_t d);
/* Converts n elements of dtype t to f32 (t: F32, F16, BF16, or a GGUF block type, dequantized
 * as ggml does; n a multiple of its block). */
void hass_to_f32(float *out, const void *src, hass_dtype t, int64_t n);

/* ---- elementwise / row ops (x, y: (n, d) row-major) ---- */
/* y = x / sqrt(mean(x^2) + eps) * w. y may alias x. */
void hass_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t d, float eps);
/* In-place softmax over d values; returns nothing. Stable (max-subtracted). */
void hass_softmax(float *x, int64_t d);
/* g = silu(g) * u, n elements. */
void hass_silu_mul(float *g, const float *u, int64_t n);
/* x[i] = exp(x[i]) in place (vectorised where the CPU allows; ~1 ulp; exactly 0 for inputs
 * below -88, -inf included). */
void hass_exp_inplace(float *x, int64_t n);
/* x += y, n elements. */
void hass_add(float *x, const float *y, int64_t n);

/* ---- rotary embeddings ----
 * x: (n, nh, hd); pos: (n). inv_freq: (hd/2), theta_i = pos * inv_freq[i].
 * HASS_ROPE_INTERLEAVED rotates pairs (x[2i], x[2i+1]) (llama2.c, GGUF);
 * HASS_ROPE_HALF rotates (x[i], x[i + hd/2]) (Hugging Face rotate_half). */
typedef enum { HASS_ROPE_INTERLEAVED = 0, HASS_ROPE_HALF = 1 } hass_rope_style;
void hass_rope(float *x, int64_t n, int64_t nh, int64_t hd, const int32_t *pos,
               const float *inv_freq, hass_rope_style style);

/* ---- RoPE frequencies: the one definition the target, the draft at inference and the draft
 * in training all use (hass_rope_freqs). The parameters are a value (no pointers), so a
 * config that holds them can be copied and written out as it is.
 *   base:    f_i = 1 / theta^(2i/hd), in double;
 *   llama3:  (factor > 0) LLaMA-3.1 scaling as Hugging Face computes it, in double: wavelengths
 *            2 pi / f_i above orig_ctx / low_freq_factor are divided by factor, those below
 *            orig_ctx / high_freq_factor kept, the band between interpolated; then rounded to
 *            float;
 *   div:     (n_div == hd/2) f_i /= div[i] in float (GGUF rope_freqs.weight: llama.cpp keeps
 *            LLaMA-3.1 scaling as these divisors);
 *   linear:  (linear > 0) f_i = f_i / linear (positions divided by linear; HF "linear", GGUF
 *            scale_linear).
 * The angle of position p is then (float)p * f_i in float (hass_rope and the training tables). */
#define HASS_ROPE_MAX_HALF 512 /* hd / 2 for the largest head dimension a config accepts */
typedef struct {
    float theta;
    float factor, low_freq_factor, high_freq_factor; /* llama3 scaling; factor 0 = none */
    int64_t orig_ctx;                                /* its original_max_position_embeddings */
    float linear;                                    /* 0 = none */
    int32_t n_div;                                   /* 0 = none, else hd / 2 */
    float div[HASS_ROPE_MAX_HALF];
} hass_rope_params;

/* Plain RoPE with base theta. */
hass_rope_params hass_rope_plain(float theta);
/* HASS_OK, or HASS_STATUS_FORMAT naming what is wrong: theta <= 0, bad llama3 factors
 * (factor < 0; with factor > 0: low <= 0, high <= low or orig_ctx <= 0), linear < 0,
 * n_div other than 0 or hd/2, a divisor <= 0 or not finite, or an odd hd / hd/2 > MAX_HALF. */
hass_status hass_rope_params_check(const hass_rope_params *r, int64_t hd, hass_err *err);
/* 1 if a and b give the same frequencies (every field that is used compares equal). */
int hass_rope_params_equal(const hass_rope_params *a, const hass_rope_params *b);
/* inv_freq: (hd/2), as described above. r must pass hass_rope_params_check. */
void hass_rope_freqs(const hass_rope_params *r, int64_t hd, float *inv_freq);

/* ---- attention over a KV cache with a mask among the new rows ----
 * q:   (n, H*Dh), already rotated.
 * k,v: cache rows (n_past + n, Hkv*Dh): rows 0..n_past-1 are the committed context, rows
 *      n_past..n_past+n-1 belong to the n new rows (already written).
 * mask: NULL = causal among the new rows; otherwise n rows of W = (n+63)/64 uint64 words,
 *      bit j of row i set iff new row i may attend new row j (it must include i itself).
 *      Every row attends the whole committed context.
 * out: (n, H*Dh). GQA: query head h reads kv head h / (H/Hkv).
 * scratch: at least hass_attention_scratch(pool, n_past + n) floats.
 * Keys are visited in slot order, so a row's result depends only on the set of keys it sees. */
size_t hass_attention_scratch(const hass_pool *pool, int64_t n_keys);
void hass_attention(hass_pool *pool, float *out, const float *q, const float *k, const float *v,
                    int64_t n_past, int64_t n, const uint64_t *mask, int64_t H, int64_t Hkv,
                    int64_t Dh, float *scratch);

/* The same with a window: the n queries are the LAST n rows of a window of n_win new rows
 * (rows n_past..n_past+n_win-1 of k/v; the earlier n_win - n rows were written by previous
 * calls, e.g. earlier levels of a draft tree). mask: n rows of (n_win+63)/64 words over the
 * window; NULL = causal over the window. hass_attention is the case n_win == n. */
void hass_attention_win(hass_pool *pool, float *out, const float *q, const float *k, const float *v,
                        int64_t n_past, int64_t n_win, int64_t n, const uint64_t *mask, int64_t H,
                        int64_t Hkv, int64_t Dh, float *scratch);

/* ---- naive twins (the test oracles; single-threaded, no SIMD) ---- */
void hass_ref_matmul(float *y, const float *x, const void *W, hass_dtype wt, int64_t n, int64_t in,
                     int64_t out);
void hass_ref_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t d, float eps);
void hass_ref_softmax(float *x, int64_t d);
void hass_ref_rope(float *x, int64_t n, int64_t nh, int64_t hd, const int32_t *pos,
                   const float *inv_freq, hass_rope_style style);
void hass_ref_attention(float *out, const float *q, const float *k, const float *v, int64_t n_past,
                        int64_t n, const uint64_t *mask, int64_t H, int64_t Hkv, int64_t Dh);

/* ---- internal: the per-ISA kernels behind the dispatch above (ops.c, ops_avx2.c,
 * ops_avx512.c). Not part of the API.
 *
 * Every dot product of length `in` is computed the same way whatever the caller batches:
 * L lanes (8 for avx2 and scalar, 16 for avx512), one L-lane accumulator per output element
 * fed in order k = 0, L, 2L, ..., the last step zero-padded past `in` (masked loads: the
 * in % L tail goes into lanes 0 .. in % L - 1 of one more step), then a fixed pairwise
 * horizontal sum: ((a0+a4) + (a1+a5)) + ((a2+a6) + (a3+a7)) after folding 16 lanes onto 8
 * (a_i + a_{i+8}). (bf16 weights with AVX512_BF16: 32 k per step, lane i taking the pair
 * 2i, 2i+1 through vdpbf16ps, the tail zero-padded the same way.) Blocking over rows only
 * decides which elements are computed together, never how one is computed: a block of 8 or
 * 16 rows may run its horizontal sums together, transposed, with exactly these additions.
 *
 * matmul_rows: y[r*ys + o] = x[r*in ..] . W[o] for r in [0, n), o in [o0, o1). */
typedef void (*hass__matmul_rows_fn)(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                                     const void *W, hass_dtype wt, int64_t o0, int64_t o1);
typedef float (*hass__dot_fn)(const float *a, const float *b, int64_t n);
/* s[j] = dot(q, k + j*ks, Dh) for j < nk, each exactly as the dot above. */
typedef void (*hass__dots_fn)(float *s, const float *q, const float *k, int64_t ks, int64_t nk,
                              int64_t Dh);
/* The probability-weighted average of nk rows of v, for G heads at once: for g < G,
 * o[g*Dh + e] = a[e] * (1 / sum), where from 0, for j = 0..nk-1 in order and skipping
 * p[g*ps + j] == 0, a[e] = fma(p[g*ps + j], v[voff[g] + j*vs + e], a[e]) (scalar build:
 * a[e] += p * v) and sum += p[g*ps + j]. Every element alone is computed so, whatever G or the
 * lane layout (the heads only run side by side); a key with p == 0 changes nothing at all.
 * p >= 0, every sum > 0. */
typedef void (*hass__wavg_fn)(float *o, const float *p, int64_t ps, const float *v,
                              const int64_t *voff, int64_t vs, int64_t nk, int64_t Dh, int G);
/* x[i] = exp(x[i] - sub) in place; arguments below -88 (and -inf) give exactly 0. Elementwise. */
typedef void (*hass__exp_fn)(float *x, int64_t n, float sub);
/* x[i] *= scale in place; returns the largest result (-inf when n == 0). */
typedef float (*hass__scale_max_fn)(float *x, int64_t n, float scale);
typedef struct {
    hass__matmul_rows_fn rows;
    hass__dot_fn dot;
    hass__dots_fn dots;
    hass__wavg_fn wavg;
    hass__exp_fn exp;
    hass__scale_max_fn scale_max;
} hass__kernels;
/* The kernels of the ISA in use (hass_cpu_features()); the tests call them directly. */
hass__kernels hass__kernels_get(void);

void hass__matmul_rows_avx2(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                            const void *W, hass_dtype wt, int64_t o0, int64_t o1);
float hass__dot_avx2(const float *a, const float *b, int64_t n);
void hass__dots_avx2(float *s, const float *q, const float *k, int64_t ks, int64_t nk, int64_t Dh);
void hass__wavg_avx2(float *o, const float *p, int64_t ps, const float *v, const int64_t *voff,
                     int64_t vs, int64_t nk, int64_t Dh, int G);
void hass__exp_avx2(float *x, int64_t n, float sub);
float hass__scale_max_avx2(float *x, int64_t n, float scale);
void hass__matmul_rows_avx512(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                              const void *W, hass_dtype wt, int64_t o0, int64_t o1);
void hass__matmul_rows_avx512bf16(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                                  const void *W, hass_dtype wt, int64_t o0, int64_t o1);
/* AVX512_BF16, bf16 weights: x rounded to bf16 (nearest even, as vcvtne2ps2bf16) row by row
 * into xb (n * in), then rows [o0, o1) of y = x W^T from the packed x. */
void hass__bf16_pack_x(uint16_t *xb, const float *x, int64_t n, int64_t in);
void hass__matmul_rows_bh(float *y, int64_t ys, const uint16_t *xb, int64_t n, int64_t in,
                          const uint16_t *W, int64_t o0, int64_t o1);
float hass__dot_avx512(const float *a, const float *b, int64_t n);
void hass__dots_avx512(float *s, const float *q, const float *k, int64_t ks, int64_t nk,
                       int64_t Dh);
void hass__wavg_avx512(float *o, const float *p, int64_t ps, const float *v, const int64_t *voff,
                       int64_t vs, int64_t nk, int64_t Dh, int G);
void hass__exp_avx512(float *x, int64_t n, float sub);
float hass__scale_max_avx512(float *x, int64_t n, float scale);
/* The tuned register-block height (1..4) for a product of n > 1 rows, and whether to prefetch
 * the next weight block (dflt: the kernel's own default) for n rows (hass_ops_tune). */
int hass__mm_rb(int64_t n);
int hass__mm_pf(int64_t n, int dflt);
/* AMX (ops_amx.c), bf16 weights, in % 32 == 0: x packed once per product into bf16 tiles
 * (xp: ceil(n/16) * 16 * in bf16), then rows [o0, o1) (o0 % 16 == 0) of y = x W^T. */
int hass__amx_ready(void);
void hass__amx_pack_x(uint16_t *xp, const float *x, int64_t n, int64_t in);
void hass__matmul_rows_amx(float *y, int64_t ys, const uint16_t *xp, int64_t n, int64_t in,
                           const uint16_t *W, int64_t o0, int64_t o1);

#endif
