/*
 * quant.c — the portable half of the quantized matrix product (quant.h): the activation
 * quantizers (ggml's Q8_0/Q8_1 and Q8_K arithmetic, in the group layout), the scalar twin that
 * defines every output's arithmetic and runs on CPUs without AVX2, and the kernel choice.
 */
#include "ops/quant.h"
#include "formats/formats.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF /* the twin's float operations are its definition */
#endif

static float f16_round(float f) {
    return hass_f16_to_f32(hass_f32_to_f16(f));
}

static float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return hass_f16_to_f32(h);
}

/* byte of element j (0..31) of block i (0..7) in a group */
static inline int gidx(int i, int j) {
    return 32 * (j / 4) + 4 * i + j % 4;
}

static int finite_all(const float *x, int n) {
    for (int j = 0; j < n; j++)
        if (!isfinite(x[j]))
            return 0;
    return 1;
}

/* ---- activation quantizers ---- */
void hass__qact_32_scalar(hass__qgroup *dst, const float *x, int64_t n, int64_t in) {
    int64_t nb = in / 32, ng = hass__qgroups(in);
    for (int64_t r = 0; r < n; r++) {
        hass__qgroup *G = dst + r * ng;
        memset(G, 0, (size_t)ng * sizeof *G);
        for (int64_t b = 0; b < nb; b++) {
            const float *xb = x + r * in + b * 32;
            hass__qgroup *g = G + b / 8;
            int i = (int)(b % 8);
            if (!finite_all(xb, 32)) {
                g->d[i] = g->sf[i] = NAN;
                continue;
            }
            float amax = 0;
            for (int j = 0; j < 32; j++)
                amax = fabsf(xb[j]) > amax ? fabsf(xb[j]) : amax;
            float d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.f;
            int s = 0;
            for (int j = 0; j < 32; j++) {
                int q = (int)nearbyintf(xb[j] * id);
                g->qs[gidx(i, j)] = (uint8_t)(int8_t)q;
                s += q;
            }
            g->d[i] = f16_round(d);
            g->s[i] = s;
            g->sf[i] = f16_round(d * (float)s);
        }
    }
}

void hass__qact_k_scalar(hass__qgroup *dst, const float *x, int64_t n, int64_t in) {
    int64_t ng = in / 256;
    for (int64_t r = 0; r < n; r++)
        for (int64_t b = 0; b < ng; b++) {
            const float *xb = x + r * in + b * 256;
            hass__qgroup *g = dst + r * ng + b;
            memset(g, 0, sizeof *g);
            if (!finite_all(xb, 256)) {
                for (int i = 0; i < 8; i++)
                    g->d[i] = NAN;
                continue;
            }
            float max = 0, amax = 0;
            for (int j = 0; j < 256; j++)
                if (fabsf(xb[j]) > amax) {
                    amax = fabsf(xb[j]);
                    max = xb[j];
                }
            if (amax == 0)
                continue;
            float iscale = -127.f / max;
            for (int j = 0; j < 256; j++) {
                float v = iscale * xb[j] + 12582912.f; /* ggml's nearest_int */
                int32_t bits;
                memcpy(&bits, &v, 4);
                int q = (bits & 0x007fffff) - 0x00400000;
                q = q < 127 ? q : 127;
                g->qs[gidx(j / 32, j % 32)] = (uint8_t)(int8_t)q;
                if (j % 32 < 16)
                    g->s[j / 32] += q;
                else
                    g->s2[j / 32] += q;
            }
            for (int i = 0; i < 8; i++) {
                g->d[i] = 1 / iscale;
                g->sf[i] = (float)(g->s[i] + g->s2[i]);
            }
        }
}

/* The AMX kernel's activation tiles (quant.h) from the groups of xa. */
static void amx_pack(hass__qamx_blk *dst, const hass__qgroup *xa, int64_t n, int64_t in) {
    int64_t ng = hass__qgroups(in), nb = in / 32, ntb = (n + 15) / 16;
    memset(dst, 0, (size_t)(ntb * nb) * sizeof *dst);
    for (int64_t tb = 0; tb < ntb; tb++)
        for (int64_t b = 0; b < nb; b++) {
            hass__qamx_blk *x = dst + tb * nb + b;
            int i = (int)(b % 8);
            for (int c = 0; c < 16 && tb * 16 + c < n; c++) {
                const hass__qgroup *g = xa + (tb * 16 + c) * ng + b / 8;
                for (int kk = 0; kk < 8; kk++)
                    memcpy(x->B + 64 * kk + 4 * c, g->qs + 32 * kk + 4 * i, 4);
                x->d[c] = g->d[i], x->s[c] = g->s[i], x->s2[c] = g->s2[i], x->sf[c] = g->sf[i];
            }
        }
}

void hass__qact_32(hass__qgroup *dst, const float *x, int64_t n, int64_t in) {
#if defined(__x86_64__)
    if (hass_cpu_features() & HASS_CPU_AVX2) {
        hass__qact_32_avx2(dst, x, n, in);
        return;
    }
#endif
    hass__qact_32_scalar(dst, x, n, in);
}

void hass__qact_k(hass__qgroup *dst, const float *x, int64_t n, int64_t in) {
#if defined(__x86_64__)
    if (hass_cpu_features() & HASS_CPU_AVX2) {
        hass__qact_k_avx2(dst, x, n, in);
        return;
    }
#endif
    hass__qact_k_scalar(dst, x, n, in);
}

/* ---- per-thread scratch, freed when the thread ends (pool workers come and go) ---- */
typedef struct {
    void *p[HASS_QSCRATCH_SLOTS];
    size_t cap[HASS_QSCRATCH_SLOTS];
} qtls;
static pthread_key_t qkey;
static pthread_once_t qonce = PTHREAD_ONCE_INIT;

static void qtls_free(void *v) {
    qtls *t = v;
    for (int i = 0; i < HASS_QSCRATCH_SLOTS; i++)
        hass_aligned_free(t->p[i]);
    free(t);
}

static void qkey_make(void) {
    HASS_ASSERT(pthread_key_create(&qkey, qtls_free) == 0);
}

void *hass__qscratch(int slot, size_t size) {
    pthread_once(&qonce, qkey_make);
    qtls *t = pthread_getspecific(qkey);
    if (!t) {
        t = calloc(1, sizeof *t);
        HASS_ASSERT(t && pthread_setspecific(qkey, t) == 0);
    }
    if (size > t->cap[slot]) {
        hass_aligned_free(t->p[slot]);
        t->p[slot] = hass_aligned_alloc(size);
        HASS_ASSERT(t->p[slot] != NULL);
        t->cap[slot] = size;
    }
    return t->p[slot];
}

int hass__qact_prepare(const hass__qgroup *xq[2], const float *x, int64_t n, int64_t in,
                       const hass_matmul_job *jobs, int njobs) {
    int need[2] = {0, 0};
    for (int j = 0; j < njobs; j++) {
        HASS_ASSERT(in % hass_dtype_block(jobs[j].wt) == 0);
        if (hass_dtype_is_quant(jobs[j].wt))
            need[hass__qkind_k(jobs[j].wt)] = 1;
    }
    int amx_ok = hass__qrows_pick() == hass__qrows_amx_auto;
    int64_t ng = hass__qgroups(in), ntb = (n + 15) / 16;
    for (int k = 0; k < 2; k++) {
        xq[k] = NULL;
        if (!need[k])
            continue;
        /* the AMX tiles are packed when a job of this kind will use them */
        int amx = 0;
        for (int j = 0; j < njobs; j++)
            amx |= amx_ok && hass_dtype_is_quant(jobs[j].wt) && hass__qkind_k(jobs[j].wt) == k &&
                   hass__qamx_use(jobs[j].wt, n);
        size_t groups = (size_t)n * (size_t)ng * sizeof(hass__qgroup);
        size_t bytes = groups + (amx ? (size_t)(ntb * (in / 32)) * sizeof(hass__qamx_blk) : 0);
        hass__qgroup *qbuf = hass__qscratch(HASS_QSCRATCH_X32 + k, bytes);
        if (k)
            hass__qact_k(qbuf, x, n, in);
        else
            hass__qact_32(qbuf, x, n, in);
        if (amx)
            amx_pack((hass__qamx_blk *)(qbuf + n * ng), qbuf, n, in);
        xq[k] = qbuf;
    }
    return need[0] || need[1];
}

/* ---- the scalar twin ---- */
static inline int act(const hass__qgroup *g, int i, int j) {
    return (int8_t)g->qs[gidx(i, j)];
}

/* Integer values v_j of block b of a 32-type row (q - offset; q for Q4_1/Q5_1), d and m. */
static void unpack32(hass_dtype t, const uint8_t *b, int *v, float *d, float *m) {
    *d = f16_at(b);
    *m = 0;
    uint32_t qh = 0;
    switch (t) {
    case HASS_DTYPE_Q8_0:
        for (int j = 0; j < 32; j++)
            v[j] = (int8_t)b[2 + j];
        return;
    case HASS_DTYPE_Q4_0:
    case HASS_DTYPE_Q4_1: {
        const uint8_t *qs = b + (t == HASS_DTYPE_Q4_0 ? 2 : 4);
        int off = t == HASS_DTYPE_Q4_0 ? 8 : 0;
        if (t == HASS_DTYPE_Q4_1)
            *m = f16_at(b + 2);
        for (int j = 0; j < 16; j++) {
            v[j] = (qs[j] & 0xF) - off;
            v[j + 16] = (qs[j] >> 4) - off;
        }
        return;
    }
    case HASS_DTYPE_Q5_0:
    case HASS_DTYPE_Q5_1: {
        int o = t == HASS_DTYPE_Q5_0 ? 2 : 4, off = t == HASS_DTYPE_Q5_0 ? 16 : 0;
        if (t == HASS_DTYPE_Q5_1)
            *m = f16_at(b + 2);
        memcpy(&qh, b + o, 4);
        const uint8_t *qs = b + o + 4;
        for (int j = 0; j < 16; j++) {
            v[j] = ((qs[j] & 0xF) | (int)((qh >> j) & 1) << 4) - off;
            v[j + 16] = ((qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4) - off;
        }
        return;
    }
    default:
        HASS_ASSERT(!"unpack32: not a 32-element type");
    }
}

static float hsum8_scalar(const float *a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static float dot32_scalar(hass_dtype t, const uint8_t *w, const hass__qgroup *xa, int64_t nb) {
    size_t bb = hass_dtype_bytes(t, 32);
    int has_min = t == HASS_DTYPE_Q4_1 || t == HASS_DTYPE_Q5_1;
    float acc[8] = {0};
    for (int64_t b = 0; b < nb; b++) {
        const hass__qgroup *g = xa + b / 8;
        int i = (int)(b % 8), v[32];
        float dw, mw;
        unpack32(t, w + (size_t)b * bb, v, &dw, &mw);
        int32_t I = 0;
        for (int j = 0; j < 32; j++)
            I += v[j] * act(g, i, j);
        acc[i] = fmaf(dw * g->d[i], (float)I, acc[i]);
        if (has_min)
            acc[i] = fmaf(mw, g->sf[i], acc[i]);
    }
    return hsum8_scalar(acc);
}

/* The 256 levels of a K super-block in element order (Q6_K: q - 32). */
static void unpack_k(hass_dtype t, const uint8_t *b, int *q) {
    if (t == HASS_DTYPE_Q4_K || t == HASS_DTYPE_Q5_K) {
        const uint8_t *qh = b + 16, *ql = b + (t == HASS_DTYPE_Q4_K ? 16 : 48);
        for (int c = 0; c < 4; c++)
            for (int l = 0; l < 32; l++) {
                int h0 = 0, h1 = 0;
                if (t == HASS_DTYPE_Q5_K) {
                    h0 = ((qh[l] >> (2 * c)) & 1) << 4;
                    h1 = ((qh[l] >> (2 * c + 1)) & 1) << 4;
                }
                q[64 * c + l] = (ql[32 * c + l] & 0xF) | h0;
                q[64 * c + 32 + l] = (ql[32 * c + l] >> 4) | h1;
            }
        return;
    }
    const uint8_t *ql = b, *qh = b + 128;
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *L = ql + 64 * h, H = qh[32 * h + l];
            q[128 * h + l] = ((L[l] & 0xF) | ((H & 3) << 4)) - 32;
            q[128 * h + 32 + l] = ((L[32 + l] & 0xF) | (((H >> 2) & 3) << 4)) - 32;
            q[128 * h + 64 + l] = ((L[l] >> 4) | (((H >> 4) & 3) << 4)) - 32;
            q[128 * h + 96 + l] = ((L[32 + l] >> 4) | (((H >> 6) & 3) << 4)) - 32;
        }
}

static float dotk_scalar(hass_dtype t, const uint8_t *w, const hass__qgroup *xa, int64_t nsb) {
    size_t bb = hass_dtype_bytes(t, 256);
    float acc[8] = {0};
    int q[256];
    for (int64_t b = 0; b < nsb; b++) {
        const uint8_t *blk = w + (size_t)b * bb;
        const hass__qgroup *g = xa + b;
        unpack_k(t, blk, q);
        if (t == HASS_DTYPE_Q6_K) {
            const int8_t *sc = (const int8_t *)(blk + 192);
            float d = f16_at(blk + 208);
            for (int i = 0; i < 8; i++) {
                int32_t I0 = 0, I1 = 0;
                for (int j = 0; j < 16; j++) {
                    I0 += q[32 * i + j] * act(g, i, j);
                    I1 += q[32 * i + 16 + j] * act(g, i, 16 + j);
                }
                acc[i] = fmaf(g->d[i] * (d * (float)sc[2 * i]), (float)I0, acc[i]);
                acc[i] = fmaf(g->d[i] * (d * (float)sc[2 * i + 1]), (float)I1, acc[i]);
            }
            continue;
        }
        uint8_t sc[8], m[8];
        hass_ggml_scale_min(blk + 4, sc, m);
        float d = f16_at(blk), dmin = f16_at(blk + 2);
        for (int i = 0; i < 8; i++) {
            int32_t I = 0, S = 0;
            for (int j = 0; j < 32; j++) {
                I += q[32 * i + j] * act(g, i, j);
                S += act(g, i, j);
            }
            acc[i] = fmaf(g->d[i] * (d * (float)sc[i]), (float)I, acc[i]);
            acc[i] = fmaf(g->d[i] * -(dmin * (float)m[i]), (float)S, acc[i]);
        }
    }
    return hsum8_scalar(acc);
}

void hass__qrows_scalar(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                        const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    size_t rb = hass_dtype_bytes(wt, (size_t)in);
    int64_t ng = hass__qgroups(in);
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *w = (const uint8_t *)W + (size_t)o * rb;
        for (int64_t r = 0; r < n; r++)
            y[r * ys + o] = hass__qkind_k(wt) ? dotk_scalar(wt, w, xa + r * ng, in / 256)
                                              : dot32_scalar(wt, w, xa + r * ng, in / 32);
    }
}

/* AMX tiles pay a fixed cost per block of 16 weight rows (unpacking them and the float step
 * of all 16 x 16 sums), the VNNI kernel one per row pair: measured on a Xeon with both (768 x
 * 768 in cache, one thread), the tiles win from 8 rows for Q8_0 (read in place) and from 16
 * for the types they unpack. */
int hass__qamx_use(hass_dtype wt, int64_t n) {
    return n >= (wt == HASS_DTYPE_Q8_0 ? 8 : 16);
}

void hass__qrows_amx_auto(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in,
                          const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    if (hass__qamx_use(wt, n))
        hass__qrows_amx(y, ys, xa, n, in, W, wt, o0, o1);
    else
#if !defined(HASS_NO_AVX512)
        hass__qrows_avx512vnni(y, ys, xa, n, in, W, wt, o0, o1);
#else
        HASS_ASSERT(0); /* never chosen without the AVX-512 kernels (hass__qrows_pick) */
#endif
}

hass__qrows_fn hass__qrows_pick(void) {
    int f = hass_cpu_features();
    (void)f;
#if defined(__x86_64__)
#if !defined(HASS_NO_AVX512)
    if ((f & HASS_CPU_AMXINT8) && hass__qamx_ok())
        return hass__qrows_amx_auto;
    if (f & HASS_CPU_AVX512VNNI)
        return hass__qrows_avx512vnni;
    if (f & HASS_CPU_AVXVNNI)
        return hass__qrows_avxvnni;
#endif
    if (f & HASS_CPU_AVX2)
        return hass__qrows_avx2;
#endif
    return hass__qrows_scalar;
}

const char *hass_cpu_quant_isa_name(void) {
    hass__qrows_fn f = hass__qrows_pick();
#if defined(__x86_64__)
#if !defined(HASS_NO_AVX512)
    if (f == hass__qrows_amx_auto)
        return "amx-int8";
    if (f == hass__qrows_avx512vnni)
        return "avx512vnni";
    if (f == hass__qrows_avxvnni)
        return "avxvnni";
#endif
    if (f == hass__qrows_avx2)
        return "avx2";
#endif
    (void)f;
    return "scalar";
}
