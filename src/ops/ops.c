/*
 * ops.c — the fast kernels and their dispatch. Portable C here; the ISA files
 * (ops_avx2.c, ops_avx512.c) provide the hot dot-product loops when the CPU has them.
 */
#include "ops/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int hass_cpu_features(void) {
    static int cached = -1;
    if (cached >= 0)
        return cached;
    int f = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        f |= HASS_CPU_AVX2;
    if ((f & HASS_CPU_AVX2) && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        f |= HASS_CPU_AVX512;
#endif
    const char *cap = getenv("HASS_CPU");
    if (cap && strcmp(cap, "scalar") == 0)
        f = 0;
    else if (cap && strcmp(cap, "avx2") == 0)
        f &= HASS_CPU_AVX2;
    cached = f;
    return f;
}

const char *hass_cpu_isa_name(void) {
    int f = hass_cpu_features();
    if (f & HASS_CPU_AVX512BF16)
        return "avx512bf16";
    if (f & HASS_CPU_AVX512)
        return "avx512";
    if (f & HASS_CPU_AVX2)
        return "avx2";
    return "scalar";
}

/* ---- matmul: threads split output rows; each dot product has a fixed operation order ---- */
static float dot_f32(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

typedef struct {
    const float *x;
    int64_t n, in;
    const hass_matmul_job *jobs;
    int njobs;
    int64_t total_rows;
} matmul_ctx;

static void matmul_task(void *p, int ith, int nth) {
    matmul_ctx *c = p;
    int64_t lo, hi;
    hass_split(c->total_rows, ith, nth, &lo, &hi);
    float *wrow = NULL;
    int64_t base = 0;
    for (int j = 0; j < c->njobs; j++) {
        const hass_matmul_job *jb = &c->jobs[j];
        int64_t a = lo > base ? lo - base : 0, b = hi - base < jb->out ? hi - base : jb->out;
        size_t rb = hass_dtype_bytes(jb->wt, (size_t)c->in);
        for (int64_t o = a; o < b; o++) {
            const float *w;
            if (jb->wt == HASS_DTYPE_F32) {
                w = (const float *)((const uint8_t *)jb->W + (size_t)o * rb);
            } else {
                if (!wrow) {
                    wrow = malloc((size_t)c->in * sizeof(float));
                    HASS_ASSERT(wrow);
                }
                hass_to_f32(wrow, (const uint8_t *)jb->W + (size_t)o * rb, jb->wt, c->in);
                w = wrow;
            }
            for (int64_t r = 0; r < c->n; r++)
                jb->y[r * jb->out + o] = dot_f32(c->x + r * c->in, w, c->in);
        }
        base += jb->out;
    }
    free(wrow);
}

void hass_matmul_multi(hass_pool *pool, const float *x, int64_t n, int64_t in,
                       const hass_matmul_job *jobs, int njobs) {
    matmul_ctx c = {x, n, in, jobs, njobs, 0};
    for (int j = 0; j < njobs; j++)
        c.total_rows += jobs[j].out;
    /* tiny products do not pay for threads */
    int nt = (double)c.total_rows * (double)in * (double)n < 32768.0 ? 1 : hass_pool_size(pool);
    hass_pool_run_n(pool, nt, matmul_task, &c);
}

void hass_matmul(hass_pool *pool, float *y, const float *x, const void *W, hass_dtype wt, int64_t n,
                 int64_t in, int64_t out) {
    hass_matmul_job j = {y, W, wt, out};
    hass_matmul_multi(pool, x, n, in, &j, 1);
}

/* ---- row ops ---- */
void hass_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t d, float eps) {
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        float ss = dot_f32(xr, xr, d);
        float s = 1.0f / sqrtf(ss / (float)d + eps);
        for (int64_t i = 0; i < d; i++)
            yr[i] = xr[i] * s * w[i];
    }
}

void hass_softmax(float *x, int64_t d) {
    float mx = -INFINITY, sum = 0;
    for (int64_t i = 0; i < d; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (int64_t i = 0; i < d; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int64_t i = 0; i < d; i++)
        x[i] *= inv;
}

void hass_silu_mul(float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

void hass_add(float *x, const float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] += y[i];
}

void hass_rope(float *x, int64_t n, int64_t nh, int64_t hd, const int32_t *pos,
               const float *inv_freq, hass_rope_style style) {
    for (int64_t r = 0; r < n; r++)
        for (int64_t i = 0; i < hd / 2; i++) {
            float th = (float)pos[r] * inv_freq[i];
            float c = cosf(th), s = sinf(th);
            int64_t a = style == HASS_ROPE_INTERLEAVED ? 2 * i : i;
            int64_t b = style == HASS_ROPE_INTERLEAVED ? 2 * i + 1 : i + hd / 2;
            for (int64_t h = 0; h < nh; h++) {
                float *v = x + (r * nh + h) * hd;
                float x0 = v[a], x1 = v[b];
                v[a] = x0 * c - x1 * s;
                v[b] = x0 * s + x1 * c;
            }
        }
}

/* ---- attention: threads split (row, head) pairs ---- */
size_t hass_attention_scratch(const hass_pool *pool, int64_t n_keys) {
    return (size_t)hass_pool_size(pool) * (size_t)(n_keys + 16);
}

typedef struct {
    float *out;
    const float *q, *k, *v;
    int64_t n_past, n, H, Hkv, Dh;
    const uint64_t *mask;
    float *scratch;
} attn_ctx;

static void attn_task(void *p, int ith, int nth) {
    attn_ctx *c = p;
    int64_t lo, hi, nk = c->n_past + c->n, W = (c->n + 63) / 64, kvd = c->Hkv * c->Dh;
    hass_split(c->n * c->H, ith, nth, &lo, &hi);
    float *sc = c->scratch + (size_t)ith * (size_t)(nk + 16);
    float scale = 1.0f / sqrtf((float)c->Dh);
    for (int64_t t = lo; t < hi; t++) {
        int64_t i = t / c->H, h = t % c->H, kh = h / (c->H / c->Hkv);
        const float *qi = c->q + i * c->H * c->Dh + h * c->Dh;
        float mx = -INFINITY;
        for (int64_t j = 0; j < nk; j++) {
            int ok = j < c->n_past;
            if (!ok) {
                int64_t jj = j - c->n_past;
                ok = c->mask ? (int)((c->mask[i * W + jj / 64] >> (jj % 64)) & 1) : jj <= i;
            }
            if (!ok) {
                sc[j] = -INFINITY;
                continue;
            }
            sc[j] = dot_f32(qi, c->k + j * kvd + kh * c->Dh, c->Dh) * scale;
            mx = sc[j] > mx ? sc[j] : mx;
        }
        float sum = 0;
        for (int64_t j = 0; j < nk; j++) {
            sc[j] = sc[j] == -INFINITY ? 0.0f : expf(sc[j] - mx);
            sum += sc[j];
        }
        float *o = c->out + i * c->H * c->Dh + h * c->Dh;
        memset(o, 0, (size_t)c->Dh * sizeof(float));
        for (int64_t j = 0; j < nk; j++) {
            if (sc[j] == 0.0f)
                continue;
            const float *vj = c->v + j * kvd + kh * c->Dh;
            for (int64_t e = 0; e < c->Dh; e++)
                o[e] += sc[j] * vj[e];
        }
        float inv = 1.0f / sum;
        for (int64_t e = 0; e < c->Dh; e++)
            o[e] *= inv;
    }
}

void hass_attention(hass_pool *pool, float *out, const float *q, const float *k, const float *v,
                    int64_t n_past, int64_t n, const uint64_t *mask, int64_t H, int64_t Hkv,
                    int64_t Dh, float *scratch) {
    attn_ctx c = {out, q, k, v, n_past, n, H, Hkv, Dh, mask, scratch};
    double work = (double)n * (double)H * (double)(n_past + n) * (double)Dh;
    hass_pool_run_n(pool, work < 16384.0 ? 1 : hass_pool_size(pool), attn_task, &c);
}
