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
 * the float operations need an order). Eight float lanes acc[0..7] start at +0; lane i takes
 * block i of every group of 8 blocks (32-element types) or sub-block i of every super-block (K
 * types), in order:
 *   32-element types, block b, weight integers v = q - offset (offset 128 / 8 / 16 for Q8_0 /
 *   Q4_0 / Q5_0, Q8_0 being stored as q + 128; 0 for Q4_1 / Q5_1), I = sum_j v_j a_j:
 *     acc[i] = fma(dw * dx, (float)I, acc[i]);   Q4_1/Q5_1 then acc[i] = fma(m, sx, acc[i])
 *   Q4_K/Q5_K, sub-block i of super-block b, I = sum_j q_j a_j, S = sum_j a_j:
 *     acc[i] = fma(dx * (d * sc_i), (float)I, acc[i]);
 *     acc[i] = fma(dx * -(dmin * m_i), (float)S, acc[i])
 *   Q6_K, sub-block i = groups 2i and 2i+1 of 16, I0 / I1 = sum_j (q_j - 32) a_j over each:
 *     acc[i] = fma(dx * (d * sc_2i), (float)I0, acc[i]);
 *     acc[i] = fma(dx * (d * sc_2i+1), (float)I1, acc[i])
 *   y = ((acc0 + acc4) + (acc1 + acc5)) + ((acc2 + acc6) + (acc3 + acc7)).
 * (d * sc_i, dmin * m_i and I, S are exact in float; each product with dx rounds once.)
 */
#ifndef HASS_OPS_QUANT_H
#define HASS_OPS_QUANT_H

#include "ops/ops.h"

/* One group of 256 activations of one row (384 bytes, 32-byte aligned in the buffers). */
typedef struct {
    uint8_t qs[256]; /* int8, in the group layout above */
    float d[8];      /* dx per block (K types: the super-block's dx in every lane) */
    int32_t s[8];    /* sum of q per block (K: of the first 16 of sub-block i) */
    int32_t s2[8];   /* K: sum of q over the last 16 of sub-block i */
    float sf[8];     /* 32-types: sx = f16(d * s) (Q4_1/Q5_1); K: (float)(s + s2) */
} hass__qgroup;

/* Groups per row of `in` activations (in % 32 == 0: ceil(in / 256)). */
static inline int64_t hass__qgroups(int64_t in) {
    return (in / 32 + 7) / 8;
}
/* 1 for Q4_K, Q5_K, Q6_K (activations per 256, hass__qact_k), 0 for the 32-element types. */
static inline int hass__qkind_k(hass_dtype t) {
    return hass_dtype_block(t) == 256;
}

/* dst: n * hass__qgroups(in) groups; x: (n, in), in % 32 == 0 (% 256 for _k). The AVX2
 * versions when the CPU has it; the same bytes either way. */
void hass__qact_32(hass__qgroup *dst, const float *x, int64_t n, int64_t in);
void hass__qact_k(hass__qgroup *dst, const float *x, int64_t n, int64_t in);
void hass__qact_32_scalar(hass__qgroup *dst, const float *x, int64_t n, int64_t in);
void hass__qact_k_scalar(hass__qgroup *dst, const float *x, int64_t n, int64_t in);
void hass__qact_32_avx2(hass__qgroup *dst, const float *x, int64_t n, int64_t in);
void hass__qact_k_avx2(hass__qgroup *dst, const float *x, int64_t n, int64_t in);

/* A per-thread buffer of at least size bytes (64-byte aligned, contents kept while it does not
 * grow), freed when the thread ends. Slots: */
enum {
    HASS_QSCRATCH_X32 = 0, /* activations per 32 (quant.c) */
    HASS_QSCRATCH_XK,      /* activations per 256 */
    HASS_QSCRATCH_W,       /* prepared weights (quant_kern.h) */
    HASS_QSCRATCH_ACC,     /* AMX lanes (quant_amx.c) */
    HASS_QSCRATCH_TILE,    /* AMX weight tiles */
    HASS_QSCRATCH_SLOTS
};
void *hass__qscratch(int slot, size_t size);

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
/* AMX-INT8 (quant_amx.c): tiles of 16 weight rows x 16 activation rows per block of 32. */
void hass__qrows_amx(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                     const void *W, hass_dtype wt, int64_t o0, int64_t o1);
int hass__qamx_ok(void); /* compiled in and allowed by the OS */
/* With AMX-INT8: the tiles for products of n rows with weights wt (hass__qamx_use), else the
 * AVX512-VNNI kernel; the same bits either way. */
int hass__qamx_use(hass_dtype wt, int64_t n);
void hass__qrows_amx_auto(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                          const void *W, hass_dtype wt, int64_t o0, int64_t o1);
/* The kernel for the current hass_cpu_features(). */
hass__qrows_fn hass__qrows_pick(void);

/* ---- activations for the AMX kernel: per block of 32 and 16 activation rows, a "B" tile (8
 * rows of 64 bytes: row kk = the 16 rows' elements 4kk..4kk+3) and the rows' d, s, s2, sf of
 * that block (hass__qgroup's, lane = activation row; rows past n are zero). hass__qact_prepare
 * packs them after the n * hass__qgroups(in) groups of xa when the AMX kernel is in use. */
typedef struct {
    uint8_t B[512];
    float d[16];
    int32_t s[16], s2[16];
    float sf[16];
} hass__qamx_blk;
static inline const hass__qamx_blk *hass__qamx_packed(const hass__qgroup *xa, int64_t n,
                                                      int64_t in) {
    return (const hass__qamx_blk *)(xa + n * hass__qgroups(in));
}

/* ---- prepared weights (quant_avx2.c, used by the three SIMD kernels) ----
 * One group of a weight row: the integers in the group layout, unsigned (Q8_0 as q + 128) or,
 * for AVX2's Q8_0 (signed = 1), signed q followed by 256 bytes of |q| (a record of
 * hass__wstride(1) bytes); and two float vectors:
 *   32-types: a = d per block, b = m per block (Q4_1/Q5_1, else 0);
 *   Q4_K/Q5_K: a = d * sc_i, b = -(dmin * m_i);   Q6_K: a = d * sc_2i, b = d * sc_2i+1.
 * Blocks past the end of a row (the last group of a 32-type row) are zero. */
typedef struct {
    uint8_t u[256];
    float a[8], b[8];
} hass__wgroup;
static inline size_t hass__wstride(int signed_q8) {
    return sizeof(hass__wgroup) + (signed_q8 ? 256 : 0);
}
/* Group g of a weight row (type wt, in elements) into dst. */
void hass__qprep_avx2(hass__wgroup *dst, const uint8_t *row, hass_dtype wt, int64_t in, int64_t g,
                      int signed_q8);
/* The same group in element order, for tile loads: block (sub-block) i's 32 integers at
 * dst + i * ld (unsigned; Q8_0 signed q), scales as above into a[8], b[8]. */
void hass__qnat_avx2(uint8_t *dst, size_t ld, float *a, float *b, const uint8_t *row, hass_dtype wt,
                     int64_t in, int64_t g);

#endif
