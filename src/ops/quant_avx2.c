/*
 * quant_avx2.c — AVX2 half of the quantized matrix product (quant.h): the weight preparation
 * every SIMD kernel uses (unpack a row's blocks to bytes, transpose each group of 8 blocks into
 * the group layout, scales to vectors), and the AVX2 kernel (quant_kern.h with vpmaddubsw +
 * vpmaddwd). Compiled with -mavx2 -mfma -mf16c; called only when hass_cpu_features() has AVX2.
 */
#include "ops/quant.h"
#include "ops/quant_unpack.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- weight preparation (quant_unpack.h), for the AMX kernel ---- */
void hass__qprep_avx2(hass__wgroup *dst, const uint8_t *row, hass_dtype wt, int64_t in, int64_t g,
                      int signed_q8) {
    qprep_group(dst, row, wt, in, g, signed_q8);
}

void hass__qnat_avx2(uint8_t *dst, size_t ld, float *a, float *b, const uint8_t *row, hass_dtype wt,
                     int64_t in, int64_t g) {
    qnat_group(dst, ld, a, b, row, wt, in, g);
}

/* ---- activation quantizers (quant.h's arithmetic, the scalar ones in quant.c) ---- */
static inline int all_finite(const float *x, int n) {
    __m256i m = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    __m256i bad = _mm256_setzero_si256();
    for (int j = 0; j < n; j += 8) {
        __m256i v = _mm256_and_si256(_mm256_loadu_si256((const __m256i *)(x + j)), m);
        bad = _mm256_or_si256(bad,
                              _mm256_cmpgt_epi32(v, _mm256_sub_epi32(inf, _mm256_set1_epi32(1))));
    }
    return _mm256_testz_si256(bad, bad);
}

static inline float hmax8(__m256 v) {
    __m128 t = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    t = _mm_max_ps(t, _mm_movehl_ps(t, t));
    t = _mm_max_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

static inline float f16_round(float f) {
    return _cvtsh_ss(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

/* 32 int32 (4 vectors, element order) -> 32 int8 in element order. */
static inline __m256i pack32(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
    __m256i a = _mm256_packs_epi32(i0, i1), b = _mm256_packs_epi32(i2, i3);
    return _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b),
                                       _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline int32_t hsum_i32(__m256i v) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}

void hass__qact_32_avx2(hass__qgroup *dst, const float *x, int64_t n, int64_t in) {
    int64_t nb = in / 32, ng = hass__qgroups(in);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t r = 0; r < n; r++) {
        hass__qgroup *G = dst + r * ng;
        for (int64_t g = 0; g < ng; g++) {
            hass__qgroup *gr = G + g;
            __m256i nat[8];
            memset(gr->d, 0, sizeof gr->d + sizeof gr->s + sizeof gr->s2 + sizeof gr->sf);
            for (int i = 0; i < 8; i++) {
                int64_t b = 8 * g + i;
                const float *xb = x + r * in + b * 32;
                nat[i] = _mm256_setzero_si256();
                if (b >= nb)
                    continue;
                if (!all_finite(xb, 32)) {
                    gr->d[i] = gr->sf[i] = NAN;
                    continue;
                }
                __m256 v[4], mx = _mm256_setzero_ps();
                for (int k = 0; k < 4; k++) {
                    v[k] = _mm256_loadu_ps(xb + 8 * k);
                    mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[k]));
                }
                float amax = hmax8(mx), d = amax / 127.f, id = amax != 0 ? 127.f / amax : 0.f;
                __m256i q[4];
                for (int k = 0; k < 4; k++)
                    q[k] = _mm256_cvtps_epi32(
                        _mm256_round_ps(_mm256_mul_ps(v[k], _mm256_set1_ps(id)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
                int32_t sum = hsum_i32(
                    _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
                nat[i] = pack32(q[0], q[1], q[2], q[3]);
                gr->d[i] = f16_round(d);
                gr->s[i] = sum;
                gr->sf[i] = f16_round(d * (float)sum);
            }
            transpose_store(gr->qs, nat);
        }
    }
}

void hass__qact_k_avx2(hass__qgroup *dst, const float *x, int64_t n, int64_t in) {
    int64_t ng = in / 256;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t r = 0; r < n; r++)
        for (int64_t b = 0; b < ng; b++) {
            const float *xb = x + r * in + b * 256;
            hass__qgroup *g = dst + r * ng + b;
            memset(g, 0, sizeof *g);
            if (!all_finite(xb, 256)) {
                for (int i = 0; i < 8; i++)
                    g->d[i] = NAN;
                continue;
            }
            __m256 mx = _mm256_setzero_ps();
            for (int j = 0; j < 256; j += 8)
                mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + j)));
            float amax = hmax8(mx);
            if (amax == 0)
                continue;
            int j0 = 0; /* the first value of that magnitude, with its sign */
            while (fabsf(xb[j0]) != amax)
                j0++;
            float iscale = -127.f / xb[j0];
            __m256 vs = _mm256_set1_ps(iscale);
            __m256i nat[8];
            for (int i = 0; i < 8; i++) {
                __m256i q[4];
                for (int k = 0; k < 4; k++) {
                    __m256 v = _mm256_mul_ps(vs, _mm256_loadu_ps(xb + 32 * i + 8 * k));
                    q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_round_ps(
                                                v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)),
                                            _mm256_set1_epi32(127));
                }
                g->s[i] = hsum_i32(_mm256_add_epi32(q[0], q[1]));
                g->s2[i] = hsum_i32(_mm256_add_epi32(q[2], q[3]));
                g->sf[i] = (float)(g->s[i] + g->s2[i]);
                g->d[i] = 1 / iscale;
                nat[i] = pack32(q[0], q[1], q[2], q[3]);
            }
            transpose_store(g->qs, nat);
        }
}

/* ---- the AVX2 kernel ---- */
static inline __m256i qdot_avx2(__m256i acc, __m256i u, __m256i a) {
    __m256i p = _mm256_maddubs_epi16(u, a);
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}
#define QDOT(acc, u, a) qdot_avx2((acc), (u), (a))
#define QSIGNED 1
#define RQ 2
#define CQ 3
#define QROWS hass__qrows_avx2
#include "ops/quant_kern.h"
