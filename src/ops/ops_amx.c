/*
 * ops_amx.c — the AMX (AMX-TILE + AMX-BF16) matrix product for bf16 weights: y = x W^T with
 * the weights loaded as "A" tiles straight from their row-major storage (16 rows of W x 32 k,
 * row stride = 2 in bytes; no repacking, the mapping is read once per call) and x packed once
 * per call into "B" tiles (bf16, vcvtne2ps2bf16 rounding as the AVX512_BF16 kernel does).
 * C[o][t] = sum over k-steps of 32, in order, of TDPBF16PS: every output element is computed
 * the same way whatever n, the row range or the thread, so the product is batch invariant.
 * Compiled with the AVX-512 + AMX flags (Makefile); a build without them has no AMX kernels:
 * hass__amx_ready() says 0 and dispatch never reaches the entry points, which then assert.
 */
#include "ops/ops.h"

#if (defined(__AMX_TILE__) || defined(__AMXTILE__)) &&                                             \
    (defined(__AMX_BF16__) || defined(__AMXBF16__)) && defined(__AVX512BF16__) &&                  \
    !defined(HASS_AVX512_EMU) && !defined(HASS_NO_AVX512)

#include "ops/amx_tiles.h"

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_once_t amx_once = PTHREAD_ONCE_INIT;
static int amx_ok;
static void amx_request(void) {
#if defined(SYS_arch_prctl)
    amx_ok = syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XTILEDATA */) == 0;
#endif
}
int hass__amx_ready(void) {
    pthread_once(&amx_once, amx_request);
    return amx_ok;
}

void hass__amx_pack_x(uint16_t *xp, const float *x, int64_t n, int64_t in) {
    int64_t KS = in / 32;
    for (int64_t tb = 0; tb * 16 < n; tb++)
        for (int64_t s = 0; s < KS; s++)
            hass__pack_b_rows(xp + (tb * KS + s) * 512, x + tb * 16 * in + s * 32, in, n - tb * 16,
                              32);
}

/* C tiles 0..R-1 += W rows [o, o + 16R) (16 rows each, or `rows` for a single partial block)
 * times the token block tb; stored to y. */
static void group(float *y, int64_t ys, const uint16_t *xp, int64_t n, int64_t in,
                  const uint16_t *W, int64_t o, int R, int rows, int64_t tb, int64_t o_end) {
    int64_t KS = in / 32, ld = in * 2;
    const uint16_t *xb = xp + tb * KS * 512;
    const uint16_t *w0 = W + o * in, *w1 = w0 + 16 * in, *w2 = w1 + 16 * in;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    /* the next group's rows (npf rows, contiguous) into L2 at the pace this group is read:
     * npf lines per k-step in address order, so the tile loads of the next group find them in
     * cache (the weights are read once, so latency, not bandwidth, is what a tile load from
     * memory would cost). Address order and the L2 hint measured 5-7% faster at n = 1 on a
     * Xeon with AMX than one line per row per step into L1 (bench/PERF.md, 2026-11-27). */
    const char *pf = (const char *)(W + (o + 16 * R) * in);
    int64_t npf = tb == 0 ? o_end - (o + 16 * R) : 0;
    npf = npf > 48 ? 48 : (npf < 0 ? 0 : npf);
    for (int64_t s = 0; s < KS; s++) {
        for (int64_t r = 0; r < npf; r++)
            _mm_prefetch(pf + (s * npf + r) * 64, _MM_HINT_T1);
        _tile_loadd(3, xb + s * 512, 64);
        _tile_loadd(4, w0 + s * 32, ld);
        _tile_dpbf16ps(0, 4, 3);
        if (R > 1) {
            _tile_loadd(5, w1 + s * 32, ld);
            _tile_dpbf16ps(1, 5, 3);
        }
        if (R > 2) {
            _tile_loadd(6, w2 + s * 32, ld);
            _tile_dpbf16ps(2, 6, 3);
        }
    }
    float buf[3][256];
    _tile_stored(0, buf[0], 64);
    if (R > 1)
        _tile_stored(1, buf[1], 64);
    if (R > 2)
        _tile_stored(2, buf[2], 64);
    int64_t nt = n - tb * 16 < 16 ? n - tb * 16 : 16;
    for (int b = 0; b < R; b++)
        for (int64_t t = 0; t < nt; t++) {
            float *yr = y + (tb * 16 + t) * ys + o + 16 * b;
            for (int i = 0; i < rows; i++)
                yr[i] = buf[b][i * 16 + t];
        }
}

void hass__matmul_rows_amx(float *y, int64_t ys, const uint16_t *xp, int64_t n, int64_t in,
                           const uint16_t *W, int64_t o0, int64_t o1) {
    int64_t nfull = (o1 - o0) / 16, rem = (o1 - o0) % 16, ntb = (n + 15) / 16;
    hass__amx_config(16, 16);
    int64_t b = 0;
    for (; b < nfull; b += 3) {
        int R = nfull - b >= 3 ? 3 : (int)(nfull - b);
        for (int64_t tb = 0; tb < ntb; tb++)
            group(y, ys, xp, n, in, W, o0 + 16 * b, R, 16, tb, o1);
    }
    if (rem) {
        hass__amx_config((int)rem, (int)rem);
        for (int64_t tb = 0; tb < ntb; tb++)
            group(y, ys, xp, n, in, W, o0 + 16 * nfull, 1, (int)rem, tb, o1);
    }
    _tile_release();
}

#else

int hass__amx_ready(void) {
    return 0;
}
void hass__amx_pack_x(uint16_t *xp, const float *x, int64_t n, int64_t in) {
    (void)xp, (void)x, (void)n, (void)in;
    HASS_ASSERT(!"AMX kernels are not compiled in");
}
void hass__matmul_rows_amx(float *y, int64_t ys, const uint16_t *xp, int64_t n, int64_t in,
                           const uint16_t *W, int64_t o0, int64_t o1) {
    (void)y, (void)ys, (void)xp, (void)n, (void)in, (void)W, (void)o0, (void)o1;
    HASS_ASSERT(!"AMX kernels are not compiled in");
}

#endif
