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
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
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
/* hass_ops_tune, field by field */
static atomic_int g_tune_bf16, g_tune_rb[2], g_tune_pf[3];

void hass_ops_tune_set(const hass_ops_tune *t) {
    hass_ops_tune z = {0};
    if (!t)
        t = &z;
    atomic_store_explicit(&g_tune_bf16, t->bf16, memory_order_relaxed);
    for (int b = 0; b < 2; b++)
        atomic_store_explicit(&g_tune_rb[b], t->rb[b] >= 0 && t->rb[b] <= 4 ? t->rb[b] : 0,
                              memory_order_relaxed);
    for (int b = 0; b < 3; b++)
        atomic_store_explicit(&g_tune_pf[b], t->pf[b], memory_order_relaxed);
}

hass_ops_tune hass_ops_tune_get(void) {
    hass_ops_tune t;
    t.bf16 = atomic_load_explicit(&g_tune_bf16, memory_order_relaxed);
    for (int b = 0; b < 2; b++)
        t.rb[b] = atomic_load_explicit(&g_tune_rb[b], memory_order_relaxed);
    for (int b = 0; b < 3; b++)
        t.pf[b] = atomic_load_explicit(&g_tune_pf[b], memory_order_relaxed);
    return t;
}

int hass__mm_rb(int64_t n) {
    int r = atomic_load_explicit(&g_tune_rb[n > 8], memory_order_relaxed);
    return r > 0 ? r : 4;
}

int hass__mm_pf(int64_t n, int dflt) {
    int p = atomic_load_explicit(&g_tune_pf[n == 1 ? 0 : n <= 8 ? 1 : 2], memory_order_relaxed);
    return p == 1 ? 1 : p == 2 ? 0 : dflt;
}

int hass_cpu_allowed(void) {
    int f = hass_cpu_available();
    int m = atomic_load_explicit(&g_forced, memory_order_relaxed);
    return m >= 0 ? f & m : f;
}

static char g_cpu_model[128] = "unknown";
static pthread_once_t g_cpu_model_once = PTHREAD_ONCE_INIT;

static void cpu_model_init(void) {
#if defined(__x86_64__)
    unsigned r[12] = {0}, a, b, c, d;
    char vendor[13] = "", brand[49] = "";
    if (__get_cpuid(0, &a, &b, &c, &d)) {
        memcpy(vendor, &b, 4), memcpy(vendor + 4, &d, 4), memcpy(vendor + 8, &c, 4);
        vendor[12] = 0;
    }
    unsigned sig = __get_cpuid(1, &a, &b, &c, &d) ? a : 0;
    unsigned fam = (sig >> 8) & 15, model = (sig >> 4) & 15;
    if (fam == 15)
        fam += (sig >> 20) & 255;
    if (fam == 6 || fam >= 15)
        model |= ((sig >> 16) & 15) << 4;
    for (unsigned i = 0; i < 3; i++)
        if (__get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]))
            memcpy(brand + 16 * i, &r[4 * i], 16);
    brand[48] = 0;
    snprintf(g_cpu_model, sizeof g_cpu_model, "%s %u.%u.%u %s", vendor, fam, model, sig & 15,
             brand);
#endif
}

const char *hass_cpu_model(void) {
    pthread_once(&g_cpu_model_once, cpu_model_init);
    return g_cpu_model;
}

int hass_cpu_features(void) {
    int f = hass_cpu_allowed();
    switch (atomic_load_explicit(&g_tune_bf16, memory_order_relaxed)) { /* hass_ops_tune */
    case HASS_BF16_DP:
        return f & ~HASS_CPU_AMX;
    case HASS_BF16_FMA:
        return f & ~(HASS_CPU_AMX | HASS_CPU_AVX512BF16);
    case HASS_KERNELS_AVX2: /* the integer (VNNI, AMX-INT8) features stay */
        return f & ~(HASS_CPU_AMX | HASS_CPU_AVX512BF16 | HASS_CPU_AVX512);
    default:
        return f;
    }
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

/* ---- portable kernels: 8 lanes, the same element order as the AVX2 file (without FMA): lane j
 * sums elements j, j + 8, ... (the tail is one more, partial, step), then the fixed pairwise
 * horizontal sum ---- */
static float hsum8_scalar(const float *a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}

static float dot_scalar(const float *a, const float *b, int64_t n) {
    float acc[8] = {0};
    for (int64_t i = 0; i < n; i++)
        acc[i % 8] += a[i] * b[i];
    return hsum8_scalar(acc);
}

static void dots_scalar(float *s, const float *q, const float *k, int64_t ks, int64_t nk,
                        int64_t Dh) {
    for (int64_t j = 0; j < nk; j++)
        s[j] = dot_scalar(q, k + j * ks, Dh);
}

static void wavg_scalar(float *o, const float *p, int64_t ps, const float *v, const int64_t *voff,
                        int64_t vs, int64_t nk, int64_t Dh, int G) {
    for (int g = 0; g < G; g++) {
        const float *pg = p + g * ps, *vg = v + voff[g];
        float *og = o + g * Dh, sum = 0;
        memset(og, 0, (size_t)Dh * sizeof(float));
        for (int64_t j = 0; j < nk; j++)
            if (pg[j] != 0.0f) {
                sum += pg[j];
                for (int64_t e = 0; e < Dh; e++)
                    og[e] += pg[j] * vg[j * vs + e];
            }
        float inv = 1.0f / sum;
        for (int64_t e = 0; e < Dh; e++)
            og[e] *= inv;
    }
}

static void exp_scalar(float *x, int64_t n, float sub) {
    for (int64_t i = 0; i < n; i++) {
        float t = x[i] - sub;
        x[i] = t < -88.0f ? 0.0f : expf(t);
    }
}

static float scale_max_scalar(float *x, int64_t n, float scale) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        x[i] *= scale;
        mx = x[i] > mx ? x[i] : mx;
    }
    return mx;
}

/* m weights of row w from element k, as f32. */
static void wconv(float *out, const uint8_t *w, hass_dtype wt, int64_t k, int m) {
    hass_to_f32(out, w + hass_dtype_bytes(wt, (size_t)k), wt, m);
}

static void matmul_rows_scalar(float *y, int64_t ys, const float *x, int64_t n, int64_t in,
                               const void *W, hass_dtype wt, int64_t o0, int64_t o1) {
    size_t rb = hass_dtype_bytes(wt, (size_t)in);
    float wb[8];
    for (int64_t o = o0; o < o1; o++) {
        const uint8_t *w = (const uint8_t *)W + (size_t)o * rb;
        for (int64_t r0 = 0; r0 < n; r0 += 4) {
            int R = n - r0 < 4 ? (int)(n - r0) : 4;
            float acc[4][8] = {{0}};
            for (int64_t k = 0; k < in; k += 8) {
                int m = in - k < 8 ? (int)(in - k) : 8;
                wconv(wb, w, wt, k, m);
                for (int r = 0; r < R; r++)
                    for (int j = 0; j < m; j++)
                        acc[r][j] += x[(r0 + r) * in + k + j] * wb[j];
            }
            for (int r = 0; r < R; r++)
                y[(r0 + r) * ys + o] = hsum8_scalar(acc[r]);
        }
    }
}

hass__kernels hass__kernels_get(void) {
    int f = hass_cpu_features();
    (void)f;
#if defined(__x86_64__)
#if !defined(HASS_NO_AVX512)
    if (f & HASS_CPU_AVX512)
        return (hass__kernels){(f & HASS_CPU_AVX512BF16) ? hass__matmul_rows_avx512bf16
                                                         : hass__matmul_rows_avx512,
                               hass__dot_avx512,
                               hass__dots_avx512,
                               hass__wavg_avx512,
                               hass__exp_avx512,
                               hass__scale_max_avx512};
#endif
    if (f & HASS_CPU_AVX2)
        return (hass__kernels){hass__matmul_rows_avx2, hass__dot_avx2, hass__dots_avx2,
                               hass__wavg_avx2,        hass__exp_avx2, hass__scale_max_avx2};
#endif
    return (hass__kernels){matmul_rows_scalar, dot_scalar, dots_scalar,
                           wavg_scalar,        exp_scalar, scale_max_scalar};
}

static hass__kernels isa(void) {
    return hass__kernels_get();
}

/* ---- matmul: threads take output rows in chunks of MM_UNIT-row units (a multiple of every
 * register block height) from a shared counter, each chunk a share of what is left (guided:
 * long runs of rows first, in which the kernels prefetch the next block, small ones at the end).
 * The split never changes a result (every element is computed the same way by whichever thread
 * gets it); taking chunks dynamically instead of a fixed half each keeps both threads busy when
 * one of them is slowed down (other processes on a shared machine, frequency differences),
 * where a static split waits for the slower half. */
/* 48 rows: 16 (the n == 1 block of the AVX-512 product) x 3 (its CB), and AMX's groups of 3
 * tiles of 16 rows */
#define MM_UNIT 48
/* Products below this many multiply-adds run on the calling thread: waking the pool costs
 * more than they do (stories260K's largest product, 512x64 at n = 1, is 32768). */
#define MM_SERIAL_MACS 65536.0

typedef struct {
    hass__matmul_rows_fn rows;
    const float *x;
    int64_t n, in;
    const hass_matmul_job *jobs;
    int njobs;
    int64_t units;
    atomic_llong next;  /* first unit not yet taken */
    const uint16_t *xp; /* x packed for AMX, or NULL */
    const uint16_t *xb; /* x rounded to bf16 for the vdpbf16ps kernel's jobs, or NULL */
    /* quantized weights (quant.h): the kernel, x quantized per 32 [0] and per 256 [1] */
    hass__qrows_fn qrows;
    const hass__qgroup *xq[2];
} matmul_ctx;

/* Units [lo, hi) of the concatenated jobs. */
static void matmul_range(const matmul_ctx *c, int64_t lo, int64_t hi) {
    int64_t base = 0;
    for (int j = 0; j < c->njobs && base < hi; j++) {
        const hass_matmul_job *jb = &c->jobs[j];
        int64_t U = MM_UNIT, nu = (jb->out + U - 1) / U;
        int64_t a = lo > base ? lo - base : 0, b = hi - base < nu ? hi - base : nu;
        if (a < b) {
            int64_t o0 = a * U, o1 = b * U < jb->out ? b * U : jb->out;
            if (hass_dtype_is_quant(jb->wt))
                c->qrows(jb->y, jb->out, c->xq[hass__qkind_k(jb->wt)], c->n, c->in, jb->W, jb->wt,
                         o0, o1);
            else if (c->xp)
                hass__matmul_rows_amx(jb->y, jb->out, c->xp, c->n, c->in, jb->W, o0, o1);
#if defined(__x86_64__) && !defined(HASS_NO_AVX512)
            else if (c->xb && jb->wt == HASS_DTYPE_BF16)
                hass__matmul_rows_bh(jb->y, jb->out, c->xb, c->n, c->in, jb->W, o0, o1);
#endif
            else
                c->rows(jb->y, jb->out, c->x, c->n, c->in, jb->W, jb->wt, o0, o1);
        }
        base += nu;
    }
}

static void matmul_task(void *p, int ith, int nth) {
    (void)ith;
    matmul_ctx *c = p;
    long long lo = atomic_load_explicit(&c->next, memory_order_relaxed);
    for (;;) {
        int64_t take;
        do { /* a 1/(2 nth) share of the units left, at least one */
            if (lo >= c->units)
                return;
            take = (c->units - lo) / (2 * nth);
            take = take < 1 ? 1 : take;
        } while (!atomic_compare_exchange_weak_explicit(
            &c->next, &lo, lo + take, memory_order_relaxed, memory_order_relaxed));
        matmul_range(c, lo, lo + take);
        lo = atomic_load_explicit(&c->next, memory_order_relaxed);
    }
}

/* x packed for the AMX or the vdpbf16ps kernel: one buffer per thread, grown as needed (never in
 * the token loop once the largest batch has been seen). */
static hass_tls_scratch x_pack = HASS_TLS_SCRATCH_INIT;

/* How many of the jobs have bf16 weights. */
static int n_bf16(const hass_matmul_job *jobs, int njobs) {
    int k = 0;
    for (int j = 0; j < njobs; j++)
        k += jobs[j].wt == HASS_DTYPE_BF16;
    return k;
}

/* Whether the product goes through AMX: bf16 weights, in % 32 == 0, a CPU (and OS permission)
 * with AMX. A property of the machine and the weights, never of n. */
static int use_amx(const hass_matmul_job *jobs, int njobs, int64_t in) {
    return (hass_cpu_features() & HASS_CPU_AMX) && in % 32 == 0 && hass__amx_ready() &&
           n_bf16(jobs, njobs) == njobs;
}

void hass_matmul_multi(hass_pool *pool, const float *x, int64_t n, int64_t in,
                       const hass_matmul_job *jobs, int njobs) {
    HASS_ASSERT(n >= 0 && in > 0 && njobs >= 0);
    matmul_ctx c = {isa().rows, x, n, in, jobs, njobs, 0, 0, NULL, NULL, NULL, {0}};
    if (n > 0 && hass__qact_prepare(c.xq, x, n, in, jobs, njobs))
        c.qrows = hass__qrows_pick();
    if (n > 0 && use_amx(jobs, njobs, in)) {
        size_t need = (size_t)((n + 15) / 16 * 16) * (size_t)in * sizeof(uint16_t);
        uint16_t *xp = hass_tls_scratch_get(&x_pack, need);
        hass__amx_pack_x(xp, x, n, in);
        c.xp = xp;
    }
#if defined(__x86_64__) && !defined(HASS_NO_AVX512)
    /* the vdpbf16ps kernel: x rounded to bf16 once here, not by every thread in every block */
    else if (n > 0 && c.rows == hass__matmul_rows_avx512bf16 && n_bf16(jobs, njobs) > 0) {
        uint16_t *xb = hass_tls_scratch_get(&x_pack, (size_t)(n * in) * sizeof(uint16_t));
        hass__bf16_pack_x(xb, x, n, in);
        c.xb = xb;
    }
#endif
    double macs = 0;
    for (int j = 0; j < njobs; j++) {
        HASS_ASSERT(jobs[j].out >= 0);
        HASS_ASSERT(in % hass_dtype_block(jobs[j].wt) == 0);
        c.units += (jobs[j].out + MM_UNIT - 1) / MM_UNIT;
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
        ex(t, k, 0.0f);
        for (int64_t i = 0; i < k; i++)
            g[b + i] = g[b + i] / (1.0f + t[i]) * u[b + i];
    }
}

void hass_exp_inplace(float *x, int64_t n) {
    isa().exp(x, n, 0.0f);
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

/* ---- attention: threads split (row, group of heads) units ---- */
#define ATTN_GMAX 8 /* heads per group: their weighted averages run side by side */

size_t hass_attention_scratch(const hass_pool *pool, int64_t n_keys) {
    return (size_t)hass_pool_size(pool) * ATTN_GMAX * (size_t)(n_keys + 16);
}

typedef struct {
    hass__kernels k_;
    float *out;
    const float *q, *k, *v;
    int64_t n_past, n_win, n, H, Hkv, Dh;
    const uint64_t *mask;
    float *scratch;
    int G; /* heads per group */
} attn_ctx;

/* Scores of (row i, head h) into sc: over every key in slot order (masked ones -inf), exp of
 * them less their max. Masked keys end as exact zeros. */
static void attn_probs(const attn_ctx *c, int64_t i, int64_t h, float *sc) {
    int64_t nk = c->n_past + c->n_win, W = (c->n_win + 63) / 64, kvd = c->Hkv * c->Dh, Dh = c->Dh;
    int64_t self = c->n_win - c->n + i; /* this query's own row in the window */
    int64_t kh = h / (c->H / c->Hkv);
    const uint64_t *mrow = c->mask ? c->mask + i * W : NULL;
    float scale = 1.0f / sqrtf((float)Dh);
    /* masked keys too: cheaper than branching per key */
    c->k_.dots(sc, c->q + (i * c->H + h) * Dh, c->k + kh * Dh, kvd, nk, Dh);
    float mx = c->k_.scale_max(sc, c->n_past, scale); /* the committed context: all visible */
    for (int64_t jj = 0; jj < c->n_win; jj++) {       /* the window: the mask, or causal */
        int ok = mrow ? (int)((mrow[jj / 64] >> (jj % 64)) & 1) : jj <= self;
        float s = ok ? sc[c->n_past + jj] * scale : -INFINITY;
        sc[c->n_past + jj] = s;
        mx = s > mx ? s : mx;
    }
    c->k_.exp(sc, nk, mx); /* -inf stays -inf, and exp gives exactly 0 for it */
}

/* Heads [h0, h0 + G) of row i: their probabilities, then the probability-weighted averages of
 * their v rows together (wavg: sums in slot order, masked keys skipped). Each head's result
 * depends only on its own visible keys, never on G or on which heads share the group. */
static void attn_group(const attn_ctx *c, int64_t i, int64_t h0, int G, float *sc) {
    int64_t ss = c->n_past + c->n_win + 16, rep = c->H / c->Hkv, voff[ATTN_GMAX];
    for (int g = 0; g < G; g++) {
        attn_probs(c, i, h0 + g, sc + g * ss);
        voff[g] = (h0 + g) / rep * c->Dh;
    }
    c->k_.wavg(c->out + (i * c->H + h0) * c->Dh, sc, ss, c->v, voff, c->Hkv * c->Dh,
               c->n_past + c->n_win, c->Dh, G);
}

static void attn_task(void *p, int ith, int nth) {
    attn_ctx *c = p;
    int64_t ng = (c->H + c->G - 1) / c->G, lo, hi;
    hass_split(c->n * ng, ith, nth, &lo, &hi);
    float *sc = c->scratch + (size_t)ith * ATTN_GMAX * (size_t)(c->n_past + c->n_win + 16);
    for (int64_t t = lo; t < hi; t++) {
        int64_t h0 = t % ng * c->G;
        attn_group(c, t / ng, h0, (int)(c->H - h0 < c->G ? c->H - h0 : c->G), sc);
    }
}

void hass_attention_win(hass_pool *pool, float *out, const float *q, const float *k, const float *v,
                        int64_t n_past, int64_t n_win, int64_t n, const uint64_t *mask, int64_t H,
                        int64_t Hkv, int64_t Dh, float *scratch) {
    HASS_ASSERT(n_past >= 0 && n >= 0 && n_win >= n && H > 0 && Hkv > 0 && H % Hkv == 0 && Dh > 0);
    double work = (double)n * (double)H * (double)(n_past + n_win) * (double)Dh;
    int nt = work < 16384.0 ? 1 : hass_pool_size(pool);
    /* Groups of up to 128 / Dh heads (8 vectors of 16 lanes in flight in wavg), more and smaller
     * groups when the threads would otherwise run out of them, equal in size. */
    int64_t gmax = Dh >= 128 ? 1 : 128 / Dh;
    gmax = gmax > ATTN_GMAX ? ATTN_GMAX : gmax;
    int64_t ng = (H + gmax - 1) / gmax;
    if (n * ng < nt)
        ng = (nt + n - 1) / n < H ? (nt + n - 1) / n : H;
    int G = (int)((H + ng - 1) / ng);
    attn_ctx c = {isa(), out, q, k, v, n_past, n_win, n, H, Hkv, Dh, mask, scratch, G};
    int64_t units = n * ((H + G - 1) / G);
    if (nt > units)
        nt = (int)units;
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
