/*
 * amx_tiles.h — building blocks shared by the bf16 tile kernels (ops_amx.c for inference,
 * train/gemm_amx.c for training): fp32 -> bf16 packing into AMX tile layouts, a 16x16 dword
 * transpose, and the tile configuration. Only for files compiled with the AVX-512 + AMX flags.
 *
 * Tile layouts (64-byte rows, 16 rows):
 *   "A" tile: 16 rows x 32 k of bf16, row-major (a row of W or of an activation matrix);
 *   "B" tile (VNNI): 16 k-pairs x 16 columns x 2: row r holds (b[2r][c], b[2r+1][c]) for the
 *   16 columns c. TDPBF16PS C[i][c] += sum_k A[i][k] B[k][c] in fp32.
 */
#ifndef HASS_AMX_TILES_H
#define HASS_AMX_TILES_H

#include "core/core.h"

#include <immintrin.h>
#include <string.h>

#define HASS_AMX_INLINE static inline __attribute__((always_inline))

/* 1 if this process may use the AMX tile data (Linux: requested once with arch_prctl), else 0.
 * Defined in ops_amx.c. */
int hass__amx_ready(void);

HASS_AMX_INLINE __mmask16 hass__mask16(int64_t n) {
    return n >= 16 ? 0xFFFF : (n > 0 ? (__mmask16)((1u << n) - 1) : 0);
}

/* 16 dwords: dword m = (bf16(s lo[m]), bf16(s hi[m])) for the lanes in mk (zeros elsewhere); lo or
 * hi may be NULL (zeros). Rounding: vcvtne2ps2bf16 (nearest even). */
HASS_AMX_INLINE __m512i hass__pair_rows(const float *lo, const float *hi, __mmask16 mk, float s) {
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    __m512 a = lo ? _mm512_maskz_loadu_ps(mk, lo) : _mm512_setzero_ps();
    __m512 b = hi ? _mm512_maskz_loadu_ps(mk, hi) : _mm512_setzero_ps();
    if (s != 1.0f)
        a = _mm512_mul_ps(a, _mm512_set1_ps(s)), b = _mm512_mul_ps(b, _mm512_set1_ps(s));
    __m512i v = (__m512i)_mm512_cvtne2ps_pbh(b, a); /* [bf16(a) | bf16(b)] */
    return _mm512_permutexvar_epi16(idx, v);
}

/* 32 consecutive floats times s (the first n valid, zeros after) -> 32 bf16 in order. */
HASS_AMX_INLINE __m512i hass__row32(const float *p, int64_t n, float s) {
    __m512 a = _mm512_maskz_loadu_ps(hass__mask16(n), p);
    __m512 b = _mm512_maskz_loadu_ps(hass__mask16(n - 16), p + 16);
    if (s != 1.0f)
        a = _mm512_mul_ps(a, _mm512_set1_ps(s)), b = _mm512_mul_ps(b, _mm512_set1_ps(s));
    return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

/* In-place transpose of the 16x16 dword matrix r[0..15] (row i = r[i]). */
HASS_AMX_INLINE void hass__transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    /* u[4g + c], 128-bit lane L: rows 4g..4g+3 of column 4L + c */
    for (int g = 0; g < 4; g++) {
        __m512i *q = t + 4 * g;
        u[4 * g + 0] = _mm512_unpacklo_epi64(q[0], q[2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(q[0], q[2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(q[1], q[3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(q[1], q[3]);
    }
    /* a 4x4 transpose of 128-bit lanes per c */
    for (int c = 0; c < 4; c++) {
        __m512i y0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x44);
        __m512i y1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xEE);
        __m512i y2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x44);
        __m512i y3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_i32x4(y0, y2, 0x88);
        r[4 + c] = _mm512_shuffle_i32x4(y0, y2, 0xDD);
        r[8 + c] = _mm512_shuffle_i32x4(y1, y3, 0x88);
        r[12 + c] = _mm512_shuffle_i32x4(y1, y3, 0xDD);
    }
}

/* The "B" tile of 16 rows of a row-major (rows, K) fp32 matrix (rows r0.., of which n valid),
 * k0..k0+31 (kn valid): column c = row r0 + c. */
HASS_AMX_INLINE void hass__pack_b_rows(uint16_t *dst, const float *m, int64_t ld, int64_t n,
                                       int64_t kn) {
    __m512i r[16];
    for (int c = 0; c < 16; c++)
        r[c] = c < n ? hass__row32(m + c * ld, kn, 1.0f) : _mm512_setzero_si512();
    hass__transpose16(r);
    for (int i = 0; i < 16; i++)
        _mm512_storeu_si512(dst + i * 32, r[i]);
}

/* Palette 1 with every tile 16 x 64 bytes except tiles 0..2 (C) and 4..6 (A) of rows rows_c /
 * rows_a (a last, partial block of weight rows). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} hass__tile_cfg;

HASS_AMX_INLINE void hass__amx_config(int rows_c, int rows_a) {
    hass__tile_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int t = 0; t < 8; t++)
        c.colsb[t] = 64, c.rows[t] = 16;
    for (int t = 0; t < 3; t++)
        c.rows[t] = (uint8_t)rows_c, c.rows[4 + t] = (uint8_t)rows_a;
    _tile_loadconfig(&c);
}

#endif
