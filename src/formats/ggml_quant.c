/*
 * ggml_quant.c — the GGUF (ggml) quantized block formats: layouts, dequantization equal to
 * ggml's dequantize_row_<t> bit for bit, ggml's reference quantizers (quantize_row_<t>_ref, the
 * ones llama-quantize runs without an importance matrix) byte for byte, and the scale check
 * ggml_validate_row_data makes.
 *
 * Block layouts (little-endian, f16 = IEEE half; ggml-common.h):
 *   Q8_0  32 elements, 34 bytes: f16 d; int8 qs[32].                x = d*q
 *   Q4_0  32, 18: f16 d; qs[16] (low nibbles = elements 0..15, high = 16..31).  x = d*(q-8)
 *   Q4_1  32, 20: f16 d, f16 m; qs[16] as Q4_0.                       x = d*q + m
 *   Q5_0  32, 22: f16 d; qh[4] (u32, bit j = 5th bit of element j); qs[16].  x = d*(q-16)
 *   Q5_1  32, 24: f16 d, f16 m; qh[4]; qs[16].                        x = d*q + m
 *   Q4_K  256, 144: f16 d, f16 dmin; scales[12] (8 6-bit scales sc_j and mins m_j, packed as
 *         get_scale_min below); qs[128]: 64-element chunks of 32 bytes, low nibbles = the
 *         first 32 elements, high = the next 32.   x = d*sc_j*q - dmin*m_j, j = element/32
 *   Q5_K  256, 176: f16 d, f16 dmin; scales[12]; qh[32] (bit 2c / 2c+1 of qh[l] = 5th bit of
 *         element l of sub-block 2c / 2c+1); qs[128] as Q4_K.
 *   Q6_K  256, 210: ql[128]; qh[64]; int8 scales[16]; f16 d (last). Per 128-element half h:
 *         ql[64h + l] low/high nibble = elements l / l+64, ql[64h + 32 + l] = l+32 / l+96 (of
 *         the half), qh[32h + l] bits 0-1, 2-3, 4-5, 6-7 = the top 2 bits of l, l+32, l+64,
 *         l+96.   x = d*sc_g*(q-32), g = element/16
 *
 * Every product in the dequantization is exact in float (an 11-bit f16 times small integers),
 * so the order of evaluation does not matter, only the sign of zeros: x0*d with an int x0 as
 * ggml writes it. The quantizers follow ggml's float operations one by one (no FMA contraction
 * in this file: see the pragma), since their search loops compare float errors.
 */
#include "formats/formats.h"

#include <float.h>
#include <math.h>
#include <string.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define QK 32
#define QKK 256

static float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return hass_f16_to_f32(h);
}

static void f16_put(uint8_t *p, float f) {
    uint16_t h = hass_f32_to_f16(f);
    memcpy(p, &h, 2);
}

static int f16_finite_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return (h & 0x7c00) != 0x7c00;
}

/* Scale and min j (0..7) of a Q4_K/Q5_K block from its 12 packed bytes. */
static void get_scale_min(int j, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

void hass_ggml_scale_min(const uint8_t *scales, uint8_t sc[8], uint8_t m[8]) {
    for (int j = 0; j < 8; j++)
        get_scale_min(j, scales, &sc[j], &m[j]);
}

/* ---- dequantization (ggml's dequantize_row_<t>) ---- */
static void deq_q8_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    for (int j = 0; j < QK; j++)
        y[j] = (float)(int8_t)b[2 + j] * d;
}

static void deq_q4_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    for (int j = 0; j < QK / 2; j++) {
        int x0 = (b[2 + j] & 0x0F) - 8, x1 = (b[2 + j] >> 4) - 8;
        y[j] = (float)x0 * d;
        y[j + QK / 2] = (float)x1 * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y) {
    float d = f16_at(b), m = f16_at(b + 2);
    for (int j = 0; j < QK / 2; j++) {
        int x0 = b[4 + j] & 0x0F, x1 = b[4 + j] >> 4;
        y[j] = (float)x0 * d + m;
        y[j + QK / 2] = (float)x1 * d + m;
    }
}

static uint32_t u32_at(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static void deq_q5_0(const uint8_t *b, float *y) {
    float d = f16_at(b);
    uint32_t qh = u32_at(b + 2);
    for (int j = 0; j < QK / 2; j++) {
        int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
        int x0 = ((b[6 + j] & 0x0F) | h0) - 16, x1 = ((b[6 + j] >> 4) | h1) - 16;
        y[j] = (float)x0 * d;
        y[j + QK / 2] = (float)x1 * d;
    }
}

static void deq_q5_1(const uint8_t *b, float *y) {
    float d = f16_at(b), m = f16_at(b + 2);
    uint32_t qh = u32_at(b + 4);
    for (int j = 0; j < QK / 2; j++) {
        int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
        int x0 = (b[8 + j] & 0x0F) | h0, x1 = (b[8 + j] >> 4) | h1;
        y[j] = (float)x0 * d + m;
        y[j + QK / 2] = (float)x1 * d + m;
    }
}

/* Q4_K and Q5_K (q5: with the fifth bits of qh) */
static void deq_k45(const uint8_t *b, float *y, int q5) {
    float d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *qh = b + 16, *ql = b + (q5 ? 48 : 16);
    for (int c = 0; c < 4; c++, ql += 32) {
        uint8_t sc, m, u1 = (uint8_t)(1u << (2 * c)), u2 = (uint8_t)(2u << (2 * c));
        get_scale_min(2 * c, b + 4, &sc, &m);
        float d1 = d * (float)sc, m1 = dmin * (float)m;
        get_scale_min(2 * c + 1, b + 4, &sc, &m);
        float d2 = d * (float)sc, m2 = dmin * (float)m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((ql[l] & 0xF) + (q5 && (qh[l] & u1) ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((ql[l] >> 4) + (q5 && (qh[l] & u2) ? 16 : 0)) - m2;
    }
}

static void deq_q4_k(const uint8_t *b, float *y) {
    deq_k45(b, y, 0);
}

static void deq_q5_k(const uint8_t *b, float *y) {
    deq_k45(b, y, 1);
}

static void deq_q6_k(const uint8_t *b, float *y) {
    float d = f16_at(b + 208);
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int h = 0; h < 2; h++, y += 128, ql += 64, qh += 32, sc += 8)
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
}

void hass_ggml_dequantize(hass_dtype t, const void *src, float *dst, int64_t n) {
    void (*deq)(const uint8_t *, float *);
    switch (t) {
    case HASS_DTYPE_Q8_0:
        deq = deq_q8_0;
        break;
    case HASS_DTYPE_Q4_0:
        deq = deq_q4_0;
        break;
    case HASS_DTYPE_Q4_1:
        deq = deq_q4_1;
        break;
    case HASS_DTYPE_Q5_0:
        deq = deq_q5_0;
        break;
    case HASS_DTYPE_Q5_1:
        deq = deq_q5_1;
        break;
    case HASS_DTYPE_Q4_K:
        deq = deq_q4_k;
        break;
    case HASS_DTYPE_Q5_K:
        deq = deq_q5_k;
        break;
    case HASS_DTYPE_Q6_K:
        deq = deq_q6_k;
        break;
    default:
        HASS_ASSERT(!"hass_ggml_dequantize: not a block type");
        return;
    }
    int64_t bk = hass_dtype_block(t);
    size_t bb = hass_dtype_bytes(t, (size_t)bk);
    HASS_ASSERT(n % bk == 0);
    for (int64_t i = 0; i < n / bk; i++)
        deq((const uint8_t *)src + (size_t)i * bb, dst + i * bk);
}

/* ---- the scale check (ggml_validate_row_data): f16 scales must be finite ---- */
int64_t hass_ggml_check(hass_dtype t, const void *src, size_t nbytes) {
    size_t bb = hass_dtype_bytes(t, (size_t)hass_dtype_block(t));
    /* offsets of the f16 scales in a block: d (and m / dmin) */
    int o1, o2 = -1;
    switch (t) {
    case HASS_DTYPE_Q8_0:
    case HASS_DTYPE_Q4_0:
    case HASS_DTYPE_Q5_0:
        o1 = 0;
        break;
    case HASS_DTYPE_Q4_1:
    case HASS_DTYPE_Q5_1:
    case HASS_DTYPE_Q4_K:
    case HASS_DTYPE_Q5_K:
        o1 = 0, o2 = 2;
        break;
    case HASS_DTYPE_Q6_K:
        o1 = 208;
        break;
    default:
        return -1;
    }
    const uint8_t *p = src;
    for (size_t i = 0; i + bb <= nbytes; i += bb)
        if (!f16_finite_at(p + i + o1) || (o2 >= 0 && !f16_finite_at(p + i + o2)))
            return (int64_t)(i / bb);
    return -1;
}

/* ---- ggml's reference quantizers ---- */
static int imin(int a, int b) {
    return a < b ? a : b;
}
static int imax(int a, int b) {
    return a > b ? a : b;
}

/* Round to nearest (ties to even) through the float magic number, as ggml's nearest_int. */
static int nearest_int(float f) {
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, 4);
    return (i & 0x007fffff) - 0x00400000;
}

static void quant_q8_0(const float *x, uint8_t *y) {
    float amax = 0;
    for (int j = 0; j < QK; j++)
        amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127, id = d != 0 ? 1.0f / d : 0.0f;
    f16_put(y, d);
    for (int j = 0; j < QK; j++)
        y[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* Q4_0 / Q5_0: d = max / -(2^(bits-1)) for the value of largest magnitude. */
static float sym_scale(const float *x, float div, float *id) {
    float amax = 0, max = 0;
    for (int j = 0; j < QK; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    float d = max / div;
    *id = d != 0 ? 1.0f / d : 0.0f;
    return d;
}

static void quant_q4_0(const float *x, uint8_t *y) {
    float id, d = sym_scale(x, -8, &id);
    f16_put(y, d);
    for (int j = 0; j < QK / 2; j++) {
        int q0 = imin(15, (int8_t)(x[j] * id + 8.5f));
        int q1 = imin(15, (int8_t)(x[j + QK / 2] * id + 8.5f));
        y[2 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void quant_q5_0(const float *x, uint8_t *y) {
    float id, d = sym_scale(x, -16, &id);
    f16_put(y, d);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        int q0 = imin(31, (int8_t)(x[j] * id + 16.5f));
        int q1 = imin(31, (int8_t)(x[j + QK / 2] * id + 16.5f));
        y[6 + j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
        qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
        qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + QK / 2);
    }
    memcpy(y + 2, &qh, 4);
}

/* Q4_1 / Q5_1: d = (max - min) / (2^bits - 1), m = min. */
static float asym_scale(const float *x, float levels, float *min, float *id) {
    float mn = FLT_MAX, mx = -FLT_MAX;
    for (int j = 0; j < QK; j++) {
        if (x[j] < mn)
            mn = x[j];
        if (x[j] > mx)
            mx = x[j];
    }
    float d = (mx - mn) / levels;
    *id = d != 0 ? 1.0f / d : 0.0f;
    *min = mn;
    return d;
}

static void quant_q4_1(const float *x, uint8_t *y) {
    float min, id, d = asym_scale(x, 15, &min, &id);
    f16_put(y, d);
    f16_put(y + 2, min);
    for (int j = 0; j < QK / 2; j++) {
        int q0 = imin(15, (int8_t)((x[j] - min) * id + 0.5f));
        int q1 = imin(15, (int8_t)((x[j + QK / 2] - min) * id + 0.5f));
        y[4 + j] = (uint8_t)(q0 | (q1 << 4));
    }
}

static void quant_q5_1(const float *x, uint8_t *y) {
    float min, id, d = asym_scale(x, 31, &min, &id);
    f16_put(y, d);
    f16_put(y + 2, min);
    uint32_t qh = 0;
    for (int j = 0; j < QK / 2; j++) {
        int q0 = (uint8_t)((x[j] - min) * id + 0.5f);
        int q1 = (uint8_t)((x[j + QK / 2] - min) * id + 0.5f);
        y[8 + j] = (uint8_t)((q0 & 0x0F) | ((q1 & 0x0F) << 4));
        qh |= (uint32_t)((q0 & 0x10) >> 4) << j;
        qh |= (uint32_t)((q1 & 0x10) >> 4) << (j + QK / 2);
    }
    memcpy(y + 4, &qh, 4);
}

/* ggml's make_qkx2_quants: n values to levels 0..nmax with a scale and a min (returned as
 * -min in *the_min), searching nstep+1 scales around the range for the least weighted error. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *w, uint8_t *L,
                              float *the_min, uint8_t *Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0], sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = (float)nmax / (max - min), scale = 1 / iscale, best_error = 0;
    for (int i = 0; i < n; i++) {
        int l = nearest_int(iscale * (x[i] - min));
        L[i] = (uint8_t)imax(0, imin(nmax, l));
        float diff = scale * (float)L[i] + min - x[i];
        best_error += w[i] * (diff * diff);
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * (float)is + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(0, imin(nmax, nearest_int(iscale * (x[i] - min))));
            Laux[i] = (uint8_t)l;
            sum_l += w[i] * (float)l;
            sum_l2 += w[i] * (float)l * (float)l;
            sum_xl += w[i] * (float)l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)Laux[i] + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                memcpy(L, Laux, (size_t)n);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* Q4_K and Q5_K share the scale search; nmax 15 or 31. L gets the 256 levels. */
static void quant_k_scales(const float *x, uint8_t *y, uint8_t *L, int nmax) {
    float mins[8], scales[8], w[32], max_scale = 0, max_min = 0;
    uint8_t Laux[32];
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xj[l] * xj[l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            w[l] = av_x + fabsf(xj[l]);
        scales[j] =
            nmax == 15
                ? make_qkx2_quants(32, 15, xj, w, L + 32 * j, &mins[j], Laux, -1.f, 0.1f, 20)
                : make_qkx2_quants(32, 31, xj, w, L + 32 * j, &mins[j], Laux, -0.5f, 0.1f, 15);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t *s = y + 4;
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = ls < 63 ? ls : 63;
        lm = lm < 63 ? lm : 63;
        if (j < 4) {
            s[j] = ls;
            s[j + 4] = lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    f16_put(y, max_scale / 63.f);
    f16_put(y + 2, max_min / 63.f);
    float d = f16_at(y), dmin = f16_at(y + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        get_scale_min(j, s, &sc, &m);
        float dj = d * (float)sc;
        if (dj == 0)
            continue;
        float dm = dmin * (float)m;
        for (int ii = 0; ii < 32; ii++) {
            int l = nearest_int((x[32 * j + ii] + dm) / dj);
            L[32 * j + ii] = (uint8_t)imax(0, imin(nmax, l));
        }
    }
}

static void quant_q4_k(const float *x, uint8_t *y) {
    uint8_t L[QKK];
    quant_k_scales(x, y, L, 15);
    uint8_t *q = y + 16;
    for (int j = 0; j < QKK; j += 64, q += 32)
        for (int l = 0; l < 32; l++)
            q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
}

static void quant_q5_k(const float *x, uint8_t *y) {
    uint8_t L[QKK];
    quant_k_scales(x, y, L, 31);
    uint8_t *qh = y + 16, *ql = y + 48, m1 = 1, m2 = 2;
    memset(qh, 0, 32);
    for (int n = 0; n < QKK; n += 64, ql += 32) {
        for (int j = 0; j < 32; j++) {
            int l1 = L[n + j], l2 = L[n + j + 32];
            if (l1 > 15) {
                l1 -= 16;
                qh[j] |= m1;
            }
            if (l2 > 15) {
                l2 -= 16;
                qh[j] |= m2;
            }
            ql[j] = (uint8_t)(l1 | (l2 << 4));
        }
        m1 = (uint8_t)(m1 << 2);
        m2 = (uint8_t)(m2 << 2);
    }
}

/* ggml's make_qx_quants with rmse_type 1 (weights x^2) and no importance: n values to levels
 * -nmax..nmax-1 (stored + nmax in L), trying 19 scales around -nmax/max. */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = (float)-nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f, best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -((float)nmax + 0.1f * (float)is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i])));
            float w = x[i] * x[i];
            sumlx += w * x[i] * (float)l;
            suml2 += w * (float)l * (float)l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + imax(-nmax, imin(nmax - 1, nearest_int(iscale * x[i]))));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

static void quant_q6_k(const float *x, uint8_t *y) {
    int8_t L[QKK];
    float scales[16], max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < 16; ib++) {
        scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
        if (fabsf(scales[ib]) > max_abs_scale) {
            max_abs_scale = fabsf(scales[ib]);
            max_scale = scales[ib];
        }
    }
    memset(y, 0, 210);
    if (max_abs_scale < 1e-15f) {
        f16_put(y + 208, 0.f);
        return;
    }
    float iscale = -128.f / max_scale;
    f16_put(y + 208, 1 / iscale);
    int8_t *sc = (int8_t *)(y + 192);
    for (int ib = 0; ib < 16; ib++)
        sc[ib] = (int8_t)imin(127, nearest_int(iscale * scales[ib]));
    float d = f16_at(y + 208);
    for (int j = 0; j < 16; j++) {
        float dj = d * (float)sc[j];
        if (dj == 0)
            continue;
        for (int ii = 0; ii < 16; ii++) {
            int l = imax(-32, imin(31, nearest_int(x[16 * j + ii] / dj)));
            L[16 * j + ii] = (int8_t)(l + 32);
        }
    }
    uint8_t *ql = y, *qh = y + 128;
    for (int j = 0; j < QKK; j += 128, ql += 64, qh += 32)
        for (int l = 0; l < 32; l++) {
            int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
            int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
            ql[l] = (uint8_t)(q1 | (q3 << 4));
            ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
            qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                              ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
        }
}

hass_status hass_ggml_quantize(hass_dtype t, const float *src, void *dst, int64_t n,
                               hass_err *err) {
    void (*q)(const float *, uint8_t *);
    switch (t) {
    case HASS_DTYPE_Q8_0:
        q = quant_q8_0;
        break;
    case HASS_DTYPE_Q4_0:
        q = quant_q4_0;
        break;
    case HASS_DTYPE_Q4_1:
        q = quant_q4_1;
        break;
    case HASS_DTYPE_Q5_0:
        q = quant_q5_0;
        break;
    case HASS_DTYPE_Q5_1:
        q = quant_q5_1;
        break;
    case HASS_DTYPE_Q4_K:
        q = quant_q4_k;
        break;
    case HASS_DTYPE_Q5_K:
        q = quant_q5_k;
        break;
    case HASS_DTYPE_Q6_K:
        q = quant_q6_k;
        break;
    default:
        return hass_err_set(err, HASS_STATUS_ARG, "quantize: %s is not a block type",
                            hass_dtype_name(t));
    }
    int64_t bk = hass_dtype_block(t);
    if (n % bk)
        return hass_err_set(err, HASS_STATUS_SHAPE, "quantize: %lld values, not a multiple of %lld",
                            (long long)n, (long long)bk);
    /* the float-to-integer casts of the reference quantizers assume finite input */
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(src[i]))
            return hass_err_set(err, HASS_STATUS_ARG, "quantize: value %lld is not finite",
                                (long long)i);
    size_t bb = hass_dtype_bytes(t, (size_t)bk);
    for (int64_t i = 0; i < n / bk; i++)
        q(src + i * bk, (uint8_t *)dst + (size_t)i * bb);
    return HASS_OK;
}
