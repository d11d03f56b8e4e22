/*
 * quant_avx512.c — the quantized matrix product (quant_kern.h) with AVX512-VNNI's vpdpbusd on
 * 256-bit vectors (EVEX: the 32 vector registers allow 4 x 3 blocks; 512-bit vectors would
 * not add throughput, the instruction's rate per byte being the same). Compiled with the
 * AVX-512 flags (over SIMDe in the BUILD=avx512emu test build); called only when
 * hass_cpu_features() has AVX512-VNNI.
 */
#include "ops/quant.h"

#include <string.h>
#if defined(HASS_AVX512_EMU)
#include "ops/avx512_emu.h"
#else
#include <immintrin.h>
#endif
#define QDOT(acc, u, a) _mm256_dpbusd_epi32((acc), (u), (a))
#define QSIGNED 0
#define RQ 4
#define CQ 3
#define QROWS hass__qrows_avx512vnni
#include "ops/quant_kern.h"
