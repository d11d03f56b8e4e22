/*
 * simd_x86.h — what the x86 kernel files share (ops_avx2.c, ops_avx512.c, quant_kern.h): forced
 * inlining, full unrolling of register-block loops, the one horizontal sum of 8 floats every
 * dot product uses, a single fused multiply-add. For files compiled with AVX2 + FMA or more.
 */
#ifndef HASS_SIMD_X86_H
#define HASS_SIMD_X86_H

#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* Full unrolling of the register-block loops (constant bounds after inlining) lets the compiler
 * keep the accumulator arrays in registers; clang needs its own spelling. */
#if defined(__clang__)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif

/* ((a0+a4) + (a1+a5)) + ((a2+a6) + (a3+a7)): the one horizontal order every 8-lane dot uses. */
static ALWAYS_INLINE float hsum8(__m256 a) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

static ALWAYS_INLINE float fma1(float a, float b, float c) {
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

#endif
