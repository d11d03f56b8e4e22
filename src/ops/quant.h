/*
 * quant.h — internal to ops: the matrix product for GGUF quantized weights (Q8_0, Q4_0, Q4_1,
 * Q5_0, Q5_1, Q4_K, Q5_K, Q6_K) with integer dot products. Not part of the API: hass_matmul
 * (ops.h) is the entry point.
 *
 * The activations x (n rows of `in` floats) are quantized once per product, row by row, into
 * int8 groups of 256 values (quant.c):
 *   - for the 32-element block types as ggml's Q8_0 / Q8_1 do it on x86: per block of 32,
 *     amax = max |x|, q = round-to-nearest-even(x * (127 / amax)), d = f16(amax / 127) (the
 *     product uses the f16-rounded scale), s = sum of q, sx = f16(amax / 127 * s);
 *   - for the K types as ggml's Q8_K: per 256, max = the value of largest magnitude (first),
 *     q = min(127, nearest(-127 / max * x)), d = 1 / (-127 / max), and the sums of q over each
 *     16 values.
 * A block (or super-block) holding an inf or a NaN gets q = 0 and d = NaN, so the outputs it
 * touches are NaN rather than garbage.
 *
 * Group layout, the same for activations and prepared weights: 8 blocks of 32 (or the 8
 * sub-blocks of 32 of a K super-block) i = 0..7, byte 32k + 4i + t = element 4k + t of block i
 * (k = 0..7, t = 0..3). A 256-bit vector k then holds dword k of every block, so a dot-product
 * instruction over the 8 vectors k leaves the 8 block sums in the 8 lanes, with no horizontal
 * reduction (vpdpbusd / vpmaddubsw + vpmaddwd both sum 4 adjacent bytes per 32-bit lane).
 *
 * The arithmetic of one output element, identical on every ISA, every batch size and every
 * thread count (the scalar twin hass__qrows_scalar defines it; integer sums are exact, so only
 * the float operations need an order):
 *   32-element types (block b, weight integer v = q - offset, offset 128/8/16 for
 *   Q8_0/Q4_0/Q5_0 after storing Q8_0 as q + 128, 0 for Q4_1/Q5_1):
 *     I_b = sum_j v_j a_j;  acc[b % 8] = fma(dw_b * dx_b, (float)I_b, acc[b % 8]);
 *     Q4_1/Q5_1 then acc[b % 8] = fma(m_b, sx_b, acc[b % 8]);
 *     y = ((acc0 + acc4) + (acc1 + acc5)) + ((acc2 + acc6) + (acc3 + acc7)).
 *   K types, super-block b in order, y from +0:
 *     Q4_K/Q5_K: T_b = sum_i sc_i sum_j q_j a_j, M_b = sum_i m_i sum_j a_j (i = sub-block);
 *                y = fma(dx_b * d_b, (float)T_b, y); y = fma(-(dx_b * dmin_b), (float)M_b, y)
 *     Q6_K:      T_b = sum_g sc_g sum_j (q_j - 32) a_j (g = group of 16);
 *                y = fma(dx_b * d_b, (float)T_b, y)
 */
#ifndef HASS_OPS_QUANT_H
#define HASS_OPS_QUANT_H

#include "ops/ops.h"

/* One group of 256 activations of one row (352 bytes, 32-byte aligned in the buffers). */
typedef struct {
    uint8_t qs[256]; /* int8, in the group layout above */
    float d[8];      /* per block scale (K types: d[0] for the super-block, the rest 0) */
    int32_t s[8];    /* 32-types: sum of q per block; K: sum of the first 16 q of sub-block i */
    union {
        float sx[8];   /* 32-types: f16(d * s), for Q4_1/Q5_1 */
        int32_t s2[8]; /* K: sum of the last 16 q of sub-block i */
    };
} hass__qgroup;

/* Groups per row of `in` activations (in % 32 == 0: ceil(in / 256)). */
static inline int64_t hass__qgroups(int64_t in) {
    return (in / 32 + 7) / 8;
}
/* 1 for Q4_K, Q5_K, Q6_K (activations per 256, hass__qact_k), 0 for the 32-element types. */
static inline int hass__qkind_k(hass_dtype t) {
    return hass_dtype_block(t) == 256;
}

/* dst: n * hass__qgroups(in) groups; x: (n, in), in % 32 == 0 (% 256 for _k). */
void hass__qact_32(hass__qgroup *dst, const float *x, int64_t n, int64_t in);
void hass__qact_k(hass__qgroup *dst, const float *x, int64_t n, int64_t in);

/* For hass_matmul_multi: if any job has quantized weights, quantizes x (n, in) once per kind
 * the jobs need into per-thread buffers (grown as needed, reused across calls), sets xq[0] (per
 * 32) / xq[1] (per 256) and returns 1; else returns 0. Asserts in % block == 0 for every job. */
int hass__qact_prepare(const hass__qgroup *xq[2], const float *x, int64_t n, int64_t in,
                       const hass_matmul_job *jobs, int njobs);

/* y[r*ys + o] = row o of W (type wt, in elements) . activation row r, for r < n, o in [o0, o1):
 * the arithmetic above. xa: n rows of hass__qgroups(in) groups, made by hass__qact_32 or _k as
 * hass__qkind_k(wt) says. */
typedef void (*hass__qrows_fn)(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                               const void *W, hass_dtype wt, int64_t o0, int64_t o1);
void hass__qrows_scalar(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                        const void *W, hass_dtype wt, int64_t o0, int64_t o1);
void hass__qrows_avx2(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                      const void *W, hass_dtype wt, int64_t o0, int64_t o1);
void hass__qrows_avxvnni(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                         const void *W, hass_dtype wt, int64_t o0, int64_t o1);
void hass__qrows_avx512vnni(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                            const void *W, hass_dtype wt, int64_t o0, int64_t o1);
/* The kernel for the current hass_cpu_features(). */
hass__qrows_fn hass__qrows_pick(void);

/* ---- prepared weights (quant_avx2.c, used by the three SIMD kernels) ----
 * One group of a weight row: the integers in the group layout, unsigned (Q8_0 as q + 128) or,
 * for AVX2's Q8_0 (signed = 1), signed q with |q| in u2; and the scales:
 *   32-types: a.f = d per block, b.f = m per block (Q4_1/Q5_1);
 *   Q4_K/Q5_K: a.i = sc, b.i = m per sub-block, c[0] = d, c[1] = dmin;
 *   Q6_K: a.i = scales of the first / b.i of the second 16 of each sub-block, c[0] = d.
 * Blocks past the end of a row (the last group of a 32-type row) are zero. */
typedef struct {
    uint8_t u[256];
    union {
        float f[8];
        int32_t i[8];
    } a, b;
    float c[8];
} hass__wgroup;
/* dst: hass__qgroups(in) groups (plus as many of 256 bytes of |q| after each when signed). */
void hass__qprep_avx2(hass__wgroup *dst, const uint8_t *row, hass_dtype wt, int64_t in,
                      int signed_q8);

#endif
