/*
 * ops_ref.c — naive twins of the kernels in ops.c: plain loops, double accumulation where it
 * helps, no threads, no SIMD. They define what the fast kernels must compute.
 */
#include "formats/formats.h"
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void hass_to_f32(float *out, const void *src, hass_dtype t, int64_t n) {
    switch (t) {
    case HASS_DTYPE_F32:
        memcpy(out, src, (size_t)n * sizeof(float));
        break;
    case HASS_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            out[i] = hass_bf16_to_f32(s[i]);
        break;
    }
    case HASS_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++)
            out[i] = hass_f16_to_f32(s[i]);
        break;
    }
    default:
        HASS_ASSERT(hass_dtype_is_quant(t) && "hass_to_f32: unsupported dtype");
        hass_ggml_dequantize(t, src, out, n);
    }
}

void hass_embed_row(float *out, const void *table, hass_dtype t, int64_t row, int64_t d) {
    size_t off = hass_dtype_bytes(t, (size_t)(row * d));
    hass_to_f32(out, (const uint8_t *)table + off, t, d);
}

void hass_ref_matmul(float *y, const float *x, const void *W, hass_dtype wt, int64_t n, int64_t in,
                     int64_t out) {
    float *w = malloc((size_t)in * sizeof(float));
    HASS_ASSERT(w);
    size_t rowbytes = hass_dtype_bytes(wt, (size_t)in);
    for (int64_t o = 0; o < out; o++) {
        hass_to_f32(w, (const uint8_t *)W + (size_t)o * rowbytes, wt, in);
        for (int64_t r = 0; r < n; r++) {
            double acc = 0;
            for (int64_t i = 0; i < in; i++)
                acc += (double)x[r * in + i] * (double)w[i];
            y[r * out + o] = (float)acc;
        }
    }
    free(w);
}

void hass_ref_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t d, float eps) {
    for (int64_t r = 0; r < n; r++) {
        double ss = 0;
        for (int64_t i = 0; i < d; i++)
            ss += (double)x[r * d + i] * x[r * d + i];
        double s = 1.0 / sqrt(ss / (double)d + eps);
        for (int64_t i = 0; i < d; i++)
            y[r * d + i] = (float)(x[r * d + i] * s * w[i]);
    }
}

void hass_ref_softmax(float *x, int64_t d) {
    double mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < d; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (int64_t i = 0; i < d; i++)
        sum += exp((double)x[i] - mx);
    for (int64_t i = 0; i < d; i++)
        x[i] = (float)(exp((double)x[i] - mx) / sum);
}

void hass_ref_rope(float *x, int64_t n, int64_t nh, int64_t hd, const int32_t *pos,
                   const float *inv_freq, hass_rope_style style) {
    for (int64_t r = 0; r < n; r++)
        for (int64_t h = 0; h < nh; h++) {
            float *v = x + (r * nh + h) * hd;
            for (int64_t i = 0; i < hd / 2; i++) {
                double th = (double)pos[r] * (double)inv_freq[i];
                double c = cos(th), s = sin(th);
                int64_t a = style == HASS_ROPE_INTERLEAVED ? 2 * i : i;
                int64_t b = style == HASS_ROPE_INTERLEAVED ? 2 * i + 1 : i + hd / 2;
                double x0 = v[a], x1 = v[b];
                v[a] = (float)(x0 * c - x1 * s);
                v[b] = (float)(x0 * s + x1 * c);
            }
        }
}

void hass_ref_attention(float *out, const float *q, const float *k, const float *v, int64_t n_past,
                        int64_t n, const uint64_t *mask, int64_t H, int64_t Hkv, int64_t Dh) {
    int64_t nk = n_past + n, W = (n + 63) / 64, kvd = Hkv * Dh;
    double *sc = malloc((size_t)nk * sizeof(double));
    HASS_ASSERT(sc);
    for (int64_t i = 0; i < n; i++)
        for (int64_t h = 0; h < H; h++) {
            int64_t kh = h / (H / Hkv);
            const float *qi = q + i * H * Dh + h * Dh;
            double mx = -INFINITY;
            for (int64_t j = 0; j < nk; j++) {
                int ok = j < n_past;
                if (!ok) {
                    int64_t jj = j - n_past;
                    ok = mask ? (int)((mask[i * W + jj / 64] >> (jj % 64)) & 1) : jj <= i;
                }
                if (!ok) {
                    sc[j] = -INFINITY;
                    continue;
                }
                double s = 0;
                for (int64_t e = 0; e < Dh; e++)
                    s += (double)qi[e] * k[j * kvd + kh * Dh + e];
                sc[j] = s / sqrt((double)Dh);
                mx = sc[j] > mx ? sc[j] : mx;
            }
            double sum = 0;
            for (int64_t j = 0; j < nk; j++) {
                sc[j] = sc[j] == -INFINITY ? 0 : exp(sc[j] - mx);
                sum += sc[j];
            }
            float *o = out + i * H * Dh + h * Dh;
            for (int64_t e = 0; e < Dh; e++) {
                double acc = 0;
                for (int64_t j = 0; j < nk; j++)
                    acc += sc[j] * v[j * kvd + kh * Dh + e];
                o[e] = (float)(acc / sum);
            }
        }
    free(sc);
}
