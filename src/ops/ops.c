/*
 * ops.c — kernel dispatch, threading and the portable kernels. The ISA files (ops_avx2.c,
 * ops_avx512.c) provide the matrix product and the dot helpers of attention and rmsnorm when
 * the CPU has them; everything here picks them through isa() at call time.
 *
 * Threads split output rows (matmul) or (row, head) pairs (attention), never a reduction, and
 * every element is computed by one function whose operation order does not depend on the batch
 * size: see the internal section of ops.h.
 */
#include "ops/ops.h"
#include "ops/quant.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <cpuid.h>
#endif

/* ---- cpu features ---- */
static atomic_int g_avail = -1;  /* what the CPU has, capped by HASS_CPU */
static atomic_int g_forced = -1; /* hass_cpu_force mask, -1 = none */

static int detect_features(void) {
    int f = 0;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        f |= HASS_CPU_AVX2;
#if defined(HASS_AVX512_EMU)
    if (f & HASS_CPU_AVX2) /* the AVX-512 and VNNI kernels run over SIMDe (avx512_emu.h) */
        f |= HASS_CPU_AVX512 | HASS_CPU_AVX512BF16 | HASS_CPU_AVXVNNI | HASS_CPU_AVX512VNNI;
#elif !defined(HASS_NO_AVX512)
    unsigned a, b, c, d;
    /* AVX-VNNI: cpuid leaf 7, subleaf 1, EAX bit 4 */
    if ((f & HASS_CPU_AVX2) && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4)))
        f |= HASS_CPU_AVXVNNI;
    if ((f & HASS_CPU_AVX2) && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq")) {
        f |= HASS_CPU_AVX512;
        /* AVX512_VNNI: cpuid leaf 7, subleaf 0, ECX bit 11; AMX-TILE and AMX-INT8: EDX bits
         * 24 and 25 (the OS's tile-data permission is asked for where the kernel runs) */
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (c & (1u << 11)))
            f |= HASS_CPU_AVX512VNNI;
        if (__get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 24)) && (d & (1u << 25)))
            f |= HASS_CPU_AMXINT8;
        /* AVX512_BF16: cpuid leaf 7, subleaf 1, EAX bit 5 */
        if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5)))
            f |= HASS_CPU_AVX512BF16;
        /* AMX-TILE and AMX-BF16: cpuid leaf 7, subleaf 0, EDX bits 24 and 22 (the kernels that
         * use them also need the OS's tile-data permission, asked for where they run) */
        if ((f & HASS_CPU_AVX512BF16) && __get_cpuid_count(7, 0, &a, &b, &c, &d) &&
            (d & (1u << 24)) && (d & (1u << 22)))
            f |= HASS_CPU_AMX;
    }
#endif
#endif
    const char *cap = getenv("HASS_CPU");
    if (cap && strcmp(cap, "scalar") == 0)
        f = 0;
    else if (cap && strcmp(cap, "avx2") == 0)
        f &= HASS_CPU_AVX2;
    else if (cap && strcmp(cap, "avxvnni") == 0)
        f &= HASS_CPU_AVX2 | HASS_CPU_AVXVNNI;
    else if (cap && strcmp(cap, "avx512") == 0)
        f &= HASS_CPU_AVX2 | HASS_CPU_AVX512 | HASS_CPU_AVXVNNI | HASS_CPU_AVX512VNNI;
    else if (cap && strcmp(cap, "avx512bf16") == 0)
        f &= HASS_CPU_AVX2 | HASS_CPU_AVX512 | HASS_CPU_AVX512BF16 | HASS_CPU_AVXVNNI |
             HASS_CPU_AVX512VNNI;
    return f;
}

int hass_cpu_available(void) {
    int f = atomic_load_explicit(&g_avail, memory_order_relaxed);
    if (f < 0) {
        f = detect_features();
        atomic_store_explicit(&g_avail, f, memory_order_relaxed);
    }
    return f;
}

/* What the kernels use: what the CPU has (capped by HASS_CPU=scalar|avx2|avx512), unless
 * hass_cpu_force narrowed it in-process. The AVX-512 and AVX512_BF16 kernels are checked against
 * the naive twins, the golden outputs and the batch-invariance tests by the BUILD=avx512emu test
 * build (SIMDe) on machines without AVX-512, and natively wherever the CPU has it. */
int hass_cpu_features(void) {
    int f = hass_cpu_available();
    int m = atomic_load_explicit(&g_forced, memory_order_relaxed);
    return m >= 0 ? f & m : f;
}

void hass_cpu_force(int features) {
    atomic_store_explicit(&g_forced, features < 0 ? -1 : features, memory_order_relaxed);
}

const char *hass_cpu_isa_name(void) {
    int f = hass_cpu_features();
    if (f & HASS_CPU_AMX)
        return "amx";
    if (f & HASS_CPU_AVX512BF16)
        return "avx512bf16";
    if (f & HASS_CPU_AVX512)
        return "avx512";
    if (f & HASS_CPU_AVX2)
        return "avx2";
    return "scalar";
}

/* ---- portable kernels: 8 lanes, the same element order as the AVX2 file (without FMA) ---- */
static float dot_scalar(const float *a, const float *b, int64_t n) {
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

static void dots_scalar(float *s, const float *q, const float *k, int64_t ks, int64_t nk,
                        int64_t Dh) {
    for (int64_t j = 0; j < nk; j++)
        s[j] = dot_scalar(q, k + j * ks, Dh);
}

static void axpys_scalar(float *o, const float *p, const float *v, int64_t vs, int64_t nk,
                         int64_t Dh) {
    for (int64_t j = 0; j < nk; j++)
        if (p[j] != 0.0f)
            for (int64_t e = 0; e < Dh; e++)
                o[e] += p[j] * v[j * vs + e];
}

/* m weights of row w from element k, as f32. */
static void wconv(float *out, const uint8_t *w, hass_dtype wt, int64_t k, int m) {
    hass_to_f32(out, w + hass_dtype_bytes(wt, (size_t)k), wt, m);
}

static void matmul_rows_scalar(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                               const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    size_t rb = hass_dtype_bytes(wt, (size_t)in);
    int64_t in8 = in & ~(int64_t)7;
    float wb[8];
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *w = (const uint8_t *)W + (size_t)o * rb;
        for (int64_t r0 = 0; r0 < n; r0 += 4) {
            int R = n - r0 < 4 ? (int)(n - r0) : 4;
            float acc[4][8] = {{0}};
            for (int64_t k = 0; k < in8; k += 8) {
                wconv(wb, w, wt, k, 8);
                for (int r = 0; r < R; r++)
                    for (int j = 0; j < 8; j++)
                        acc[r][j] += x[(r0 + r) * in + k + j] * wb[j];
            }
            for (int r = 0; r < R; r++) {
                const float *a = acc[r];
                float s = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
                for (int64_t k = in8; k < in; k++) {
                    wconv(wb, w, wt, k, 1);
                    s += x[(r0 + r) * in + k] * wb[0];
                }
                y[(r0 + r) * ys + o] = s;
            }
        }
    }
}

typedef struct {
    hass__matmul_rows_fn rows;
    hass__dot_fn dot;
    hass__dots_fn dots;
    hass__axpys_fn axpys;
    hass__exp_fn exp;
} isa_kernels;

void hass__exp_scalar(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        x[i] = x[i] < -88.0f ? 0.0f : expf(x[i]);
}

static isa_kernels isa(void) {
    int f = hass_cpu_features();
    (void)f;
#if defined(__x86_64__)
#if !defined(HASS_NO_AVX512)
    if (f & HASS_CPU_AVX512BF16)
        return (isa_kernels){hass__matmul_rows_avx512bf16, hass__dot_avx512, hass__dots_avx512,
                             hass__axpys_avx512, hass__exp_avx2};
    if (f & HASS_CPU_AVX512)
        return (isa_kernels){hass__matmul_rows_avx512, hass__dot_avx512, hass__dots_avx512,
                             hass__axpys_avx512, hass__exp_avx2};
#endif
    if (f & HASS_CPU_AVX2)
        return (isa_kernels){hass__matmul_rows_avx2, hass__dot_avx2, hass__dots_avx2,
                             hass__axpys_avx2, hass__exp_avx2};
#endif
    return (isa_kernels){matmul_rows_scalar, dot_scalar, dots_scalar, axpys_scalar,
                         hass__exp_scalar};
}

/* ---- matmul: threads take output rows in chunks of MM_UNIT-row units (a multiple of every
 * register block height) from a shared counter. The split never changes a result (every element
 * is computed the same way by whichever thread gets it); taking chunks dynamically instead of a
 * fixed half each keeps both threads busy when one of them is slowed down (other processes on
 * a shared machine, frequency differences), where a static split waits for the slower half. */
#define MM_UNIT 12
#define MM_CHUNKS_PER_THREAD 8
/* Products below this many multiply-adds run on the calling thread: waking the pool costs
 * more than they do (stories260K's largest product, 512x64 at n = 1, is 32768). */
#define MM_SERIAL_MACS 65536.0

/* AMX takes rows in groups of 3 tiles of 16 */
#define MM_UNIT_AMX 48

typedef struct {
    hass__matmul_rows_fn rows;
    const float *x;
    int64_t n, in;
    const hass_matmul_job *jobs;
    int njobs;
    int64_t units, chunk;
    atomic_llong next;  /* first unit not yet taken */
    int64_t unit;       /* rows per unit */
    const uint16_t *xp; /* x packed for AMX, or NULL */
    /* quantized weights (quant.h): the kernel, x quantized per 32 [0] and per 256 [1] */
    hass__qrows_fn qrows;
    const hass__qgroup *xq[2];
} matmul_ctx;

/* Units [lo, hi) of the concatenated jobs. */
static void matmul_range(const matmul_ctx *c, int64_t lo, int64_t hi) {
    int64_t base = 0;
    for (int j = 0; j < c->njobs && base < hi; j++) {
        const hass_matmul_job *jb = &c->jobs[j];
        int64_t U = c->unit, nu = (jb->out + U - 1) / U;
        int64_t a = lo > base ? lo - base : 0, b = hi - base < nu ? hi - base : nu;
        if (a < b) {
            int64_t o0 = a * U, o1 = b * U < jb->out ? b * U : jb->out;
            if (hass_dtype_is_quant(jb->wt))
                c->qrows(jb->y, jb->out, c->xq[hass__qkind_k(jb->wt)], c->n, c->in, jb->W, jb->wt,
                         o0, o1);
            else if (c->xp)
                hass__matmul_rows_amx(jb->y, jb->out, c->xp, c->n, c->in, jb->W, o0, o1);
            else
                c->rows(jb->y, jb->out, c->x, c->n, c->in, jb->W, jb->wt, o0, o1);
        }
        base += nu;
    }
}

static void matmul_task(void *p, int ith, int nth) {
    (void)ith, (void)nth;
    matmul_ctx *c = p;
    for (;;) {
        int64_t lo = (int64_t)atomic_fetch_add_explicit(&c->next, c->chunk, memory_order_relaxed);
        if (lo >= c->units)
            return;
        matmul_range(c, lo, lo + c->chunk < c->units ? lo + c->chunk : c->units);
    }
}

/* x packed for the AMX kernel: one buffer per thread, grown as needed (never in the token loop
 * once the largest batch has been seen). */
static hass_tls_scratch amx_xp = HASS_TLS_SCRATCH_INIT;

/* Whether the product goes through AMX: bf16 weights, in % 32 == 0, a CPU (and OS permission)
 * with AMX. A property of the machine and the weights, never of n. */
static int use_amx(const hass_matmul_job *jobs, int njobs, int64_t in) {
    if (!(hass_cpu_features() & HASS_CPU_AMX) || in % 32 != 0 || !hass__amx_ready())
        return 0;
    for (int j = 0; j < njobs; j++)
        if (jobs[j].wt != HASS_DTYPE_BF16)
            return 0;
    return 1;
}

void hass_matmul_multi(hass_pool *pool, const float *x, int64_t n, int64_t in,
                       const hass_matmul_job *jobs, int njobs) {
    HASS_ASSERT(n >= 0 && in > 0 && njobs >= 0);
    matmul_ctx c = {isa().rows, x, n, in, jobs, njobs, 0, 0, 0, MM_UNIT, NULL, NULL, {0}};
    if (n > 0 && hass__qact_prepare(c.xq, x, n, in, jobs, njobs))
        c.qrows = hass__qrows_pick();
    if (n > 0 && use_amx(jobs, njobs, in)) {
        size_t need = (size_t)((n + 15) / 16 * 16) * (size_t)in * sizeof(uint16_t);
        uint16_t *xp = hass_tls_scratch_get(&amx_xp, need);
        hass__amx_pack_x(xp, x, n, in);
        c.xp = xp, c.unit = MM_UNIT_AMX;
    }
    double macs = 0;
    for (int j = 0; j < njobs; j++) {
        HASS_ASSERT(jobs[j].out >= 0);
        HASS_ASSERT(in % hass_dtype_block(jobs[j].wt) == 0);
        c.units += (jobs[j].out + c.unit - 1) / c.unit;
        macs += (double)jobs[j].out * (double)in * (double)n;
    }
    if (n == 0 || c.units == 0)
        return;
    int nt = hass_pool_size(pool);
    if (macs < MM_SERIAL_MACS || nt <= 1 || c.units == 1) {
        matmul_range(&c, 0, c.units);
        return;
    }
    nt = c.units < nt ? (int)c.units : nt;
    c.chunk = c.units / ((int64_t)nt * MM_CHUNKS_PER_THREAD);
    c.chunk = c.chunk < 1 ? 1 : c.chunk;
    hass_pool_run_n(pool, nt, matmul_task, &c);
}

void hass_matmul(hass_pool *pool, float *y, const float *x, const void *W, hass_dtype wt, int64_t n,
                 int64_t in, int64_t out) {
    hass_matmul_job j = {y, W, wt, out};
    hass_matmul_multi(pool, x, n, in, &j, 1);
}

/* ---- row ops ---- */
void hass_rmsnorm(float *y, const float *x, const float *w, int64_t n, int64_t d, float eps) {
    hass__dot_fn dot = isa().dot;
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * d;
        float *yr = y + r * d;
        float ss = dot(xr, xr, d);
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
    hass__exp_fn ex = isa().exp;
    float t[256];
    for (int64_t b = 0; b < n; b += 256) {
        int64_t k = n - b < 256 ? n - b : 256;
        for (int64_t i = 0; i < k; i++)
            t[i] = -g[b + i];
        ex(t, k);
        for (int64_t i = 0; i < k; i++)
            g[b + i] = g[b + i] / (1.0f + t[i]) * u[b + i];
    }
}

void hass_exp_inplace(float *x, int64_t n) {
    isa().exp(x, n);
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

hass_rope_params hass_rope_plain(float theta) {
    hass_rope_params r;
    memset(&r, 0, sizeof r);
    r.theta = theta;
    return r;
}

hass_status hass_rope_params_check(const hass_rope_params *r, int64_t hd, hass_err *err) {
    if (hd <= 0 || hd % 2 || hd / 2 > HASS_ROPE_MAX_HALF)
        return hass_err_set(err, HASS_STATUS_FORMAT, "rope: head dim %lld must be even, <= %d",
                            (long long)hd, 2 * HASS_ROPE_MAX_HALF);
    if (!(r->theta > 0) || !isfinite(r->theta))
        return hass_err_set(err, HASS_STATUS_FORMAT, "rope: rope_theta must be > 0");
    if (!(r->factor >= 0) ||
        (r->factor > 0 &&
         !(r->low_freq_factor > 0 && r->high_freq_factor > r->low_freq_factor && r->orig_ctx > 0 &&
           isfinite(r->factor) && isfinite(r->high_freq_factor))))
        return hass_err_set(err, HASS_STATUS_FORMAT, "rope: bad llama3 rope_scaling");
    if (!(r->linear >= 0) || !isfinite(r->linear))
        return hass_err_set(err, HASS_STATUS_FORMAT, "rope: bad linear scaling factor");
    if (r->n_div != 0 && r->n_div != hd / 2)
        return hass_err_set(err, HASS_STATUS_FORMAT,
                            "rope: %d frequency divisors for head dim %lld", r->n_div,
                            (long long)hd);
    for (int32_t i = 0; i < r->n_div; i++)
        if (!(r->div[i] > 0) || !isfinite(r->div[i]))
            return hass_err_set(err, HASS_STATUS_FORMAT, "rope: frequency divisor %d is not > 0",
                                i);
    return HASS_OK;
}

int hass_rope_params_equal(const hass_rope_params *a, const hass_rope_params *b) {
    if (a->theta != b->theta || a->factor != b->factor || a->linear != b->linear ||
        a->n_div != b->n_div)
        return 0;
    if (a->factor > 0 && (a->low_freq_factor != b->low_freq_factor ||
                          a->high_freq_factor != b->high_freq_factor || a->orig_ctx != b->orig_ctx))
        return 0;
    return a->n_div == 0 || !memcmp(a->div, b->div, (size_t)a->n_div * sizeof(float));
}

void hass_rope_freqs(const hass_rope_params *r, int64_t hd, float *inv_freq) {
    for (int64_t i = 0; i < hd / 2; i++) {
        double f = 1.0 / pow((double)r->theta, (double)(2 * i) / (double)hd);
        if (r->factor > 0) { /* llama3 */
            double lo = (double)r->orig_ctx / r->low_freq_factor;
            double hi = (double)r->orig_ctx / r->high_freq_factor;
            double wl = 2.0 * M_PI / f;
            if (wl > lo) {
                f = f / r->factor;
            } else if (wl >= hi) {
                double sm = ((double)r->orig_ctx / wl - r->low_freq_factor) /
                            (r->high_freq_factor - r->low_freq_factor);
                f = (1 - sm) * f / r->factor + sm * f;
            }
        }
        inv_freq[i] = (float)f;
        if (r->n_div > 0)
            inv_freq[i] /= r->div[i];
        if (r->linear > 0)
            inv_freq[i] = (float)(inv_freq[i] / (double)r->linear);
    }
}

/* ---- attention: threads split (row, head) pairs ---- */
size_t hass_attention_scratch(const hass_pool *pool, int64_t n_keys) {
    return (size_t)hass_pool_size(pool) * (size_t)(n_keys + 16);
}

typedef struct {
    isa_kernels k_;
    float *out;
    const float *q, *k, *v;
    int64_t n_past, n_win, n, H, Hkv, Dh;
    const uint64_t *mask;
    float *scratch;
} attn_ctx;

/* One (row i, head h): scores over the visible keys in slot order, max-subtracted exp, the
 * probability-weighted sum of v rows (axpy per key, in slot order), then one scale by 1/sum.
 * Masked keys contribute nothing at all, so the result depends only on the visible set. */
static void attn_one(const attn_ctx *c, int64_t i, int64_t h, float *sc) {
    int64_t nk = c->n_past + c->n_win, W = (c->n_win + 63) / 64, kvd = c->Hkv * c->Dh, Dh = c->Dh;
    int64_t self = c->n_win - c->n + i; /* this query's own row in the window */
    int64_t kh = h / (c->H / c->Hkv);
    const float *qi = c->q + (i * c->H + h) * Dh;
    const float *kb = c->k + kh * Dh, *vb = c->v + kh * Dh;
    const uint64_t *mrow = c->mask ? c->mask + i * W : NULL;
    float scale = 1.0f / sqrtf((float)Dh), mx = -INFINITY;
    c->k_.dots(sc, qi, kb, kvd, nk, Dh); /* masked keys too: cheaper than branching per key */
    for (int64_t j = 0; j < nk; j++) {
        int64_t jj = j - c->n_past;
        int ok = jj < 0 || (mrow ? (int)((mrow[jj / 64] >> (jj % 64)) & 1) : jj <= self);
        sc[j] = ok ? sc[j] * scale : -INFINITY;
        mx = sc[j] > mx ? sc[j] : mx;
    }
    for (int64_t j = 0; j < nk; j++)
        sc[j] -= mx; /* -inf stays -inf, and exp gives exactly 0 for it */
    c->k_.exp(sc, nk);
    float sum = 0; /* in slot order: masked zeros leave the sum of the visible keys unchanged */
    for (int64_t j = 0; j < nk; j++)
        sum += sc[j];
    float *o = c->out + (i * c->H + h) * Dh;
    memset(o, 0, (size_t)Dh * sizeof(float));
    c->k_.axpys(o, sc, vb, kvd, nk, Dh);
    float inv = 1.0f / sum;
    for (int64_t e = 0; e < Dh; e++)
        o[e] *= inv;
}

static void attn_task(void *p, int ith, int nth) {
    attn_ctx *c = p;
    int64_t lo, hi;
    hass_split(c->n * c->H, ith, nth, &lo, &hi);
    float *sc = c->scratch + (size_t)ith * (size_t)(c->n_past + c->n_win + 16);
    for (int64_t t = lo; t < hi; t++)
        attn_one(c, t / c->H, t % c->H, sc);
}

void hass_attention_win(hass_pool *pool, float *out, const float *q, const float *k, const float *v,
                        int64_t n_past, int64_t n_win, int64_t n, const uint64_t *mask, int64_t H,
                        int64_t Hkv, int64_t Dh, float *scratch) {
    HASS_ASSERT(n_past >= 0 && n >= 0 && n_win >= n && H > 0 && Hkv > 0 && H % Hkv == 0 && Dh > 0);
    attn_ctx c = {isa(), out, q, k, v, n_past, n_win, n, H, Hkv, Dh, mask, scratch};
    double work = (double)n * (double)H * (double)(n_past + n_win) * (double)Dh;
    int nt = work < 16384.0 ? 1 : hass_pool_size(pool);
    if (nt > n * H)
        nt = (int)(n * H);
    if (nt <= 1) {
        attn_task(&c, 0, 1);
        return;
    }
    hass_pool_run_n(pool, nt, attn_task, &c);
}

void hass_attention(hass_pool *pool, float *out, const float *q, const float *k, const float *v,
                    int64_t n_past, int64_t n, const uint64_t *mask, int64_t H, int64_t Hkv,
                    int64_t Dh, float *scratch) {
    hass_attention_win(pool, out, q, k, v, n_past, n, n, mask, H, Hkv, Dh, scratch);
}
