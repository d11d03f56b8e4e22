/*
 * avx512_emu.h — the AVX-512 intrinsics of ops_avx512.c over SIMDe's portable implementations
 * (Debian's libsimde-dev), for the test build BUILD=avx512emu. It lets the AVX-512 and
 * AVX512_BF16 kernels run, and be checked against the naive twins and the golden outputs, on
 * CPUs that only have AVX2. Never used in a release build.
 */
#ifndef HASS_AVX512_EMU_H
#define HASS_AVX512_EMU_H

#include "core/core.h"

#include <immintrin.h>
#include <string.h>

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <simde/x86/avx512.h>

/* Missing from SIMDe 0.7: two f32 vectors to 32 bf16, nearest-even, b in the low half, a in the
 * high half, as vcvtne2ps2bf16 does (subnormal inputs as zeros of their sign, as it does). */
static inline uint16_t hass_emu_bf16_ne(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0)
        return (uint16_t)((u >> 16) & 0x8000u);
    return hass_f32_to_bf16(f);
}
static inline simde__m512bh hass_emu_cvtne2ps_pbh(simde__m512 a, simde__m512 b) {
    float fa[16], fb[16];
    uint16_t h[32];
    memcpy(fa, &a, sizeof fa);
    memcpy(fb, &b, sizeof fb);
    for (int i = 0; i < 16; i++) {
        h[i] = hass_emu_bf16_ne(fb[i]);
        h[16 + i] = hass_emu_bf16_ne(fa[i]);
    }
    simde__m512bh r;
    memcpy(&r, h, sizeof r);
    return r;
}
#undef _mm512_cvtne2ps_pbh
#define _mm512_cvtne2ps_pbh(a, b) hass_emu_cvtne2ps_pbh((a), (b))

/* Also missing from SIMDe 0.7: the widening conversions, element by element (16 lanes). */
#define HASS_EMU_WIDEN(name, RT, IT, ST, DT, conv)                                                 \
    static inline RT name(IT a) {                                                                  \
        ST v[16];                                                                                  \
        DT r[16];                                                                                  \
        memcpy(v, &a, sizeof v);                                                                   \
        for (int i = 0; i < 16; i++)                                                               \
            r[i] = conv(v[i]);                                                                     \
        RT out;                                                                                    \
        memcpy(&out, r, sizeof out);                                                               \
        return out;                                                                                \
    }
#define HASS_EMU_AS_FLOAT(v) ((float)(v))
#define HASS_EMU_AS_I32(v) ((int32_t)(v))
HASS_EMU_WIDEN(hass_emu_cvtepi32_ps, simde__m512, simde__m512i, int32_t, float, HASS_EMU_AS_FLOAT)
HASS_EMU_WIDEN(hass_emu_cvtepi8_epi32, simde__m512i, __m128i, int8_t, int32_t, HASS_EMU_AS_I32)
HASS_EMU_WIDEN(hass_emu_cvtepu16_epi32, simde__m512i, __m256i, uint16_t, int32_t, HASS_EMU_AS_I32)
HASS_EMU_WIDEN(hass_emu_cvtph_ps, simde__m512, __m256i, uint16_t, float, hass_f16_to_f32)
HASS_EMU_WIDEN(hass_emu_cvttps_epi32, simde__m512i, simde__m512, float, int32_t, HASS_EMU_AS_I32)
#define _mm512_cvtepi32_ps(a) hass_emu_cvtepi32_ps(a)
#define _mm512_cvtepi8_epi32(a) hass_emu_cvtepi8_epi32(a)
#define _mm512_cvtepu16_epi32(a) hass_emu_cvtepu16_epi32(a)
#define _mm512_cvtph_ps(a) hass_emu_cvtph_ps(a)
#define _mm512_cvttps_epi32(a) hass_emu_cvttps_epi32(a) /* arguments within int32 range only */

/* Also missing: the masked loads and stores (lanes whose mask bit is clear are neither read nor
 * written, as with the instructions), and the f32 alias of the 128-bit-lane shuffle. */
#define HASS_EMU_MASKZ_LOAD(name, RT, ET, N, MT)                                                   \
    static inline RT name(MT k, const void *p) {                                                   \
        ET v[N] = {0};                                                                             \
        for (int i = 0; i < (N); i++)                                                              \
            if ((k >> i) & 1)                                                                      \
                memcpy(&v[i], (const char *)p + i * sizeof(ET), sizeof(ET));                       \
        RT out;                                                                                    \
        memcpy(&out, v, sizeof out);                                                               \
        return out;                                                                                \
    }
HASS_EMU_MASKZ_LOAD(hass_emu_maskz_loadu_ps, simde__m512, float, 16, simde__mmask16)
HASS_EMU_MASKZ_LOAD(hass_emu_maskz_loadu_epi16_512, simde__m512i, uint16_t, 32, simde__mmask32)
HASS_EMU_MASKZ_LOAD(hass_emu_maskz_loadu_epi16_256, __m256i, uint16_t, 16, simde__mmask16)
HASS_EMU_MASKZ_LOAD(hass_emu_maskz_loadu_ps_256, __m256, float, 8, simde__mmask8)
static inline void hass_emu_mask_storeu_ps(void *p, simde__mmask16 k, simde__m512 a) {
    float v[16];
    memcpy(v, &a, sizeof v);
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            memcpy((char *)p + i * sizeof(float), &v[i], sizeof(float));
}
#define _mm512_maskz_loadu_ps(k, p) hass_emu_maskz_loadu_ps((k), (p))
#define _mm512_maskz_loadu_epi16(k, p) hass_emu_maskz_loadu_epi16_512((k), (p))
#define _mm256_maskz_loadu_epi16(k, p) hass_emu_maskz_loadu_epi16_256((k), (p))
#define _mm256_maskz_loadu_ps(k, p) hass_emu_maskz_loadu_ps_256((k), (p))
#define _mm512_mask_storeu_ps(p, k, a) hass_emu_mask_storeu_ps((p), (k), (a))
#define _mm512_shuffle_f32x4(a, b, imm) simde_mm512_shuffle_f32x4((a), (b), (imm))

#endif
