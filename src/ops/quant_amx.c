/*
 * quant_amx.c — the quantized matrix product (quant.h) on AMX-INT8 tiles. For 16 weight rows
 * and one block (or sub-block) of 32: an "A" tile of their 32 integers (natural element order,
 * hass__qnat_avx2), a "B" tile of 16 activation rows' 32 int8 (VNNI layout, packed once per
 * product by hass__qamx_pack), TDPBSSD (Q8_0, signed) or TDPBUSD (the others) gives the 16 x 16
 * exact block sums; Q6_K takes two tiles of 16 (its scales change every 16 values). Then the
 * float step of quant.h, vectorised over the 16 activation rows, in block order into the same
 * 8 lanes, so every output is bit-identical to the scalar twin and to the VNNI kernels, for any
 * batch, row range and thread. Compiled with the AVX-512 + AMX flags; elsewhere the kernel is
 * reported unavailable and never chosen.
 */
#include "ops/quant.h"

#if (defined(__AMX_TILE__) || defined(__AMXTILE__)) &&                                             \
    (defined(__AMX_INT8__) || defined(__AMXINT8__)) && defined(__AVX512F__) &&                     \
    !defined(HASS_AVX512_EMU) && !defined(HASS_NO_AVX512)

#include "ops/amx_tiles.h"

#include <immintrin.h>
#include <string.h>

/* tiles: 0, 1 C; 2, 6 A (32 k); 3, 7 B (32 k); 4 A (16 k); 5 B (16 k) */
static void tiles_config(int rows) {
    hass__tile_cfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    c.rows[0] = c.rows[1] = (uint8_t)rows, c.colsb[0] = c.colsb[1] = 64;
    c.rows[2] = c.rows[6] = (uint8_t)rows, c.colsb[2] = c.colsb[6] = 32;
    c.rows[3] = c.rows[7] = 8, c.colsb[3] = c.colsb[7] = 64;
    c.rows[4] = (uint8_t)rows, c.colsb[4] = 16;
    c.rows[5] = 4, c.colsb[5] = 64;
    _tile_loadconfig(&c);
}

/* Per-thread buffers (hass__qscratch): the lanes of the outputs (ntb x 16 rows x 8 lanes x 16
 * activations) and the weights of 16 rows x one group with their block sums. */

typedef struct {
    uint8_t nat[16 * 256];
    float a[16][8], b[16][8];
    int32_t c[8][2][256]; /* the sums of the group's 8 blocks (Q6_K: of each 16) */
} wtile;

/* The float step of quant.h for weight row w over the group's blocks 0..nblk-1 (sums in T->c,
 * activations x[i]); the 8 lanes start from +0 at the first group. */
static inline void post_row(float *lanes, const wtile *T, int w, int nblk, int first,
                            const hass__qamx_blk *x, hass_dtype wt) {
    int sh = wt == HASS_DTYPE_Q4_0 ? 3 : wt == HASS_DTYPE_Q5_0 ? 4 : 0;
    int min32 = wt == HASS_DTYPE_Q4_1 || wt == HASS_DTYPE_Q5_1, k = hass__qkind_k(wt);
    for (int i = 0; i < 8; i++) {
        float *l = lanes + i * 16;
        __m512 v = first ? _mm512_setzero_ps() : _mm512_loadu_ps(l);
        if (i < nblk) {
            const hass__qamx_blk *xi = x + i;
            __m512 dx = _mm512_loadu_ps(xi->d);
            __m512i c = _mm512_loadu_si512(T->c[i][0] + 16 * w);
            if (k) {
                if (wt == HASS_DTYPE_Q6_K)
                    c = _mm512_sub_epi32(c, _mm512_slli_epi32(_mm512_loadu_si512(xi->s), 5));
                v = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(T->a[w][i])),
                                    _mm512_cvtepi32_ps(c), v);
                __m512 second;
                if (wt == HASS_DTYPE_Q6_K) {
                    __m512i c1 = _mm512_loadu_si512(T->c[i][1] + 16 * w);
                    c1 = _mm512_sub_epi32(c1, _mm512_slli_epi32(_mm512_loadu_si512(xi->s2), 5));
                    second = _mm512_cvtepi32_ps(c1);
                } else {
                    second = _mm512_loadu_ps(xi->sf);
                }
                v = _mm512_fmadd_ps(_mm512_mul_ps(dx, _mm512_set1_ps(T->b[w][i])), second, v);
            } else {
                if (sh)
                    c = _mm512_sub_epi32(c, _mm512_slli_epi32(_mm512_loadu_si512(xi->s), sh));
                v = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_set1_ps(T->a[w][i]), dx),
                                    _mm512_cvtepi32_ps(c), v);
                if (min32)
                    v = _mm512_fmadd_ps(_mm512_set1_ps(T->b[w][i]), _mm512_loadu_ps(xi->sf), v);
            }
        }
        _mm512_storeu_ps(l, v);
    }
}

/* The 16 x 16 block sums of blocks i (and i + 1 when two) into T->c: two independent tile
 * chains in flight. A tiles at a (+ 32 per block), row stride lda. */
static inline void tile_blocks(wtile *T, int i, int two, const uint8_t *a, size_t lda,
                               const hass__qamx_blk *x, hass_dtype wt) {
    if (wt == HASS_DTYPE_Q6_K) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_loadd(4, a, lda);
        _tile_loadd(5, x->B, 64);
        _tile_dpbusd(0, 4, 5);
        _tile_loadd(4, a + 16, lda);
        _tile_loadd(5, x->B + 256, 64);
        _tile_dpbusd(1, 4, 5);
        _tile_stored(0, T->c[i][0], 64);
        _tile_stored(1, T->c[i][1], 64);
        return;
    }
    _tile_zero(0);
    _tile_loadd(2, a, lda);
    _tile_loadd(3, x->B, 64);
    if (two) {
        _tile_zero(1);
        _tile_loadd(6, a + (wt == HASS_DTYPE_Q8_0 ? 34 : 32), lda);
        _tile_loadd(7, x[1].B, 64);
    }
    if (wt == HASS_DTYPE_Q8_0) {
        _tile_dpbssd(0, 2, 3);
        if (two)
            _tile_dpbssd(1, 6, 7);
    } else {
        _tile_dpbusd(0, 2, 3);
        if (two)
            _tile_dpbusd(1, 6, 7);
    }
    _tile_stored(0, T->c[i][0], 64);
    if (two)
        _tile_stored(1, T->c[i + 1][0], 64);
}

/* Q8_0 needs no unpacking: the tiles read the blocks where they are; only the scales. */
static void q8_scales(wtile *T, const uint8_t *W, size_t rb, int rows, int64_t g, int nblk) {
    for (int w = 0; w < rows; w++) {
        const uint8_t *b = W + (size_t)w * rb + (size_t)(8 * g) * 34;
        for (int i = 0; i < nblk; i++) {
            uint16_t h;
            memcpy(&h, b + 34 * i, 2);
            T->a[w][i] = _cvtsh_ss(h);
        }
    }
}

void hass__qrows_amx(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                     const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    int64_t ng = hass__qgroups(in), nb = in / 32, ntb = (n + 15) / 16;
    size_t rb = hass_dtype_bytes(wt, (size_t)in);
    const hass__qamx_blk *xp = hass__qamx_packed(xa, n, in);
    size_t need = (size_t)ntb * 16 * 8 * 16;
    float *accbuf = hass__qscratch(HASS_QSCRATCH_ACC, need * sizeof(float));
    wtile *T = hass__qscratch(HASS_QSCRATCH_TILE, sizeof(wtile));
    int cfg_rows = -1;
    for (int64_t o = o0; o < o1; o += 16) {
        int rows = o1 - o < 16 ? (int)(o1 - o) : 16;
        if (rows != cfg_rows)
            tiles_config(rows), cfg_rows = rows;
        const uint8_t *Wo = (const uint8_t *)W + (size_t)o * rb;
        for (int64_t g = 0; g < ng; g++) {
            int nblk = nb - 8 * g < 8 ? (int)(nb - 8 * g) : 8;
            if (wt == HASS_DTYPE_Q8_0)
                q8_scales(T, Wo, rb, rows, g, nblk);
            else
                for (int w = 0; w < rows; w++)
                    hass__qnat_avx2(T->nat + w * 256, 32, T->a[w], T->b[w], Wo + (size_t)w * rb, wt,
                                    in, g);
            for (int64_t tb = 0; tb < ntb; tb++) {
                const hass__qamx_blk *x = xp + tb * nb + 8 * g;
                for (int i = 0; i < nblk; i += 2) {
                    const uint8_t *a =
                        wt == HASS_DTYPE_Q8_0 ? Wo + (size_t)(8 * g + i) * 34 + 2 : T->nat + 32 * i;
                    size_t lda = wt == HASS_DTYPE_Q8_0 ? rb : 256;
                    if (wt == HASS_DTYPE_Q6_K) {
                        tile_blocks(T, i, 0, a, lda, x + i, wt);
                        if (i + 1 < nblk)
                            tile_blocks(T, i + 1, 0, a + 32, lda, x + i + 1, wt);
                    } else {
                        tile_blocks(T, i, i + 1 < nblk, a, lda, x + i, wt);
                    }
                }
                float *acc = accbuf + tb * 16 * 8 * 16;
                for (int w = 0; w < rows; w++)
                    post_row(acc + w * 8 * 16, T, w, nblk, g == 0, x, wt);
            }
        }
        /* y = ((l0 + l4) + (l1 + l5)) + ((l2 + l6) + (l3 + l7)), per activation row */
        for (int64_t tb = 0; tb < ntb; tb++) {
            const float *acc = accbuf + tb * 16 * 8 * 16;
            int64_t nr = n - tb * 16 < 16 ? n - tb * 16 : 16;
            for (int w = 0; w < rows; w++) {
                const float *l = acc + w * 8 * 16;
                __m512 v = _mm512_add_ps(
                    _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(l), _mm512_loadu_ps(l + 64)),
                                  _mm512_add_ps(_mm512_loadu_ps(l + 16), _mm512_loadu_ps(l + 80))),
                    _mm512_add_ps(
                        _mm512_add_ps(_mm512_loadu_ps(l + 32), _mm512_loadu_ps(l + 96)),
                        _mm512_add_ps(_mm512_loadu_ps(l + 48), _mm512_loadu_ps(l + 112))));
                float out[16];
                _mm512_storeu_ps(out, v);
                for (int64_t r = 0; r < nr; r++)
                    y[(tb * 16 + r) * ys + o + w] = out[r];
            }
        }
    }
    _tile_release();
}

int hass__qamx_ok(void) {
    return hass__amx_ready();
}

#else

void hass__qrows_amx(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                     const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    (void)y, (void)ys, (void)xa, (void)n, (void)in, (void)W, (void)wt, (void)o0, (void)o1;
    HASS_ASSERT(!"AMX-INT8 kernels are not compiled in");
}

int hass__qamx_ok(void) {
    return 0;
}

#endif
