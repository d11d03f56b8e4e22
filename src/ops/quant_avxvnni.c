/*
 * quant_avxvnni.c — the quantized matrix product (quant_kern.h) with AVX-VNNI's vpdpbusd (VEX,
 * 256-bit): one instruction per 32 products. Compiled with -mavxvnni (over SIMDe in the
 * BUILD=avx512emu test build); called only when hass_cpu_features() has AVX-VNNI.
 */
#include "ops/quant.h"

#include <string.h>
#if defined(HASS_AVX512_EMU)
#include "ops/avx512_emu.h"
#define QDOT(acc, u, a) _mm256_dpbusd_epi32((acc), (u), (a))
#else
#include <immintrin.h>
#define QDOT(acc, u, a) _mm256_dpbusd_avx_epi32((acc), (u), (a))
#endif
#define QSIGNED 0
#define RQ 2
#define CQ 3
#define QROWS hass__qrows_avxvnni
#include "ops/quant_kern.h"
