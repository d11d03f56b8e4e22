/*
 * quant_kern.h — the register-blocked quantized matrix product, one text compiled three times:
 * quant_avx2.c (vpmaddubsw + vpmaddwd), quant_avxvnni.c (VEX vpdpbusd) and quant_avx512.c
 * (EVEX vpdpbusd on 256-bit vectors: the same lanes, 32 registers for larger blocks). The file
 * that includes it defines:
 *   QDOT(acc, u, a)  acc + per 32-bit lane sum of the 4 products u (unsigned) * a (signed)
 *   QSIGNED          1 if Q8_0 is prepared signed (vpmaddubsw would overflow on q + 128)
 *   RQ, CQ           activation rows x weight rows per register block (CQ divides 12)
 *   QROWS            the exported function's name
 * and includes <immintrin.h> (or its SIMDe stand-in) first.
 *
 * A block of CQ weight rows is prepared once (hass__qprep_avx2: integers in the group layout,
 * scales as vectors) into a per-thread scratch that stays in L1/L2, then every activation row
 * passes over it RQ at a time: per group of 8 blocks, 8 vectors of weights feed RQ*CQ integer
 * accumulators whose lanes end as the 8 exact block sums; then the float step of quant.h.
 */

#define ALWAYS_INLINE inline __attribute__((always_inline))
#if defined(__clang__)
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 8")
#endif

static ALWAYS_INLINE float hsum8(__m256 a) {
    __m128 t = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    t = _mm_hadd_ps(t, t);
    t = _mm_add_ss(t, _mm_movehdup_ps(t));
    return _mm_cvtss_f32(t);
}

static ALWAYS_INLINE int32_t hsum8i(__m256i a) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
    return _mm_cvtsi128_si32(t);
}

static ALWAYS_INLINE float fma1(float a, float b, float c) {
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

static ALWAYS_INLINE __m256i ld(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* Signed Q8_0 (QSIGNED): acc + per lane sum of w * a, with |w| prepared in `absw`. */
static ALWAYS_INLINE __m256i qdot_signed(__m256i acc, __m256i w, __m256i absw, __m256i a) {
    __m256i p = _mm256_maddubs_epi16(absw, _mm256_sign_epi8(a, w));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, _mm256_set1_epi16(1)));
}

/* 32-element types. R activation rows x CQ prepared weight rows (wp, stride ws bytes per
 * group, ng groups per row); cc of the CQ are real (the rest are padding, not stored).
 * off_shift: log2 of the weight offset (128, 8, 16) or 0 for none; has_min: Q4_1/Q5_1;
 * sgn: signed Q8_0 (AVX2). */
static ALWAYS_INLINE void k32(const int R, const int off_shift, const int has_min, const int sgn,
                              float *y, int64_t ys, int cc, const hass__qgroup *xa,
                              const uint8_t *wp, size_t ws, int64_t ng) {
    __m256 facc[RQ][CQ];
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < CQ; c++) {
            facc[r][c] = _mm256_setzero_ps();
        }
    }
    size_t wrow = (size_t)ng * ws;
    for (int64_t g = 0; g < ng; g++) {
        __m256i acc[RQ][CQ];
        UNROLL for (int r = 0; r < R; r++) {
            __m256i init = _mm256_setzero_si256();
            if (off_shift)
                init = _mm256_sub_epi32(init, _mm256_slli_epi32(ld(xa[r * ng + g].s), off_shift));
            UNROLL for (int c = 0; c < CQ; c++) {
                acc[r][c] = init;
            }
        }
        for (int k = 0; k < 8; k++) {
            __m256i u[CQ], au[CQ];
            UNROLL for (int c = 0; c < CQ; c++) {
                const hass__wgroup *wg = (const hass__wgroup *)(wp + c * wrow + (size_t)g * ws);
                u[c] = ld(wg->u + 32 * k);
                if (sgn)
                    au[c] = ld((const uint8_t *)(wg + 1) + 32 * k);
            }
            UNROLL for (int r = 0; r < R; r++) {
                __m256i a = ld(xa[r * ng + g].qs + 32 * k);
                UNROLL for (int c = 0; c < CQ; c++) {
                    acc[r][c] =
                        sgn ? qdot_signed(acc[r][c], u[c], au[c], a) : QDOT(acc[r][c], u[c], a);
                }
            }
        }
        UNROLL for (int r = 0; r < R; r++) {
            const hass__qgroup *xg = &xa[r * ng + g];
            __m256 dx = _mm256_loadu_ps(xg->d);
            UNROLL for (int c = 0; c < CQ; c++) {
                const hass__wgroup *wg = (const hass__wgroup *)(wp + c * wrow + (size_t)g * ws);
                __m256 s = _mm256_mul_ps(_mm256_loadu_ps(wg->a.f), dx);
                facc[r][c] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(acc[r][c]), facc[r][c]);
                if (has_min)
                    facc[r][c] = _mm256_fmadd_ps(_mm256_loadu_ps(wg->b.f), _mm256_loadu_ps(xg->sx),
                                                 facc[r][c]);
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < CQ; c++) {
            if (c < cc)
                y[r * ys + c] = hsum8(facc[r][c]);
        }
    }
}

/* K types (q6: Q6_K, else Q4_K/Q5_K), the same blocking over super-blocks. */
static ALWAYS_INLINE void kk(const int R, const int q6, float *y, int64_t ys, int cc,
                             const hass__qgroup *xa, const uint8_t *wp, size_t ws, int64_t ng) {
    float yacc[RQ][CQ];
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < CQ; c++) {
            yacc[r][c] = 0;
        }
    }
    size_t wrow = (size_t)ng * ws;
    for (int64_t g = 0; g < ng; g++) {
        __m256i acc[RQ][CQ], acc2[RQ][CQ];
        UNROLL for (int r = 0; r < R; r++) {
            __m256i i1 = _mm256_setzero_si256(), i2 = i1;
            if (q6) { /* the -32 of every level, per 16 */
                i1 = _mm256_sub_epi32(i1, _mm256_slli_epi32(ld(xa[r * ng + g].s), 5));
                i2 = _mm256_sub_epi32(i2, _mm256_slli_epi32(ld(xa[r * ng + g].s2), 5));
            }
            UNROLL for (int c = 0; c < CQ; c++) {
                acc[r][c] = i1;
                acc2[r][c] = i2;
            }
        }
        for (int k = 0; k < 8; k++) {
            __m256i u[CQ];
            UNROLL for (int c = 0; c < CQ; c++) {
                const hass__wgroup *wg = (const hass__wgroup *)(wp + c * wrow + (size_t)g * ws);
                u[c] = ld(wg->u + 32 * k);
            }
            UNROLL for (int r = 0; r < R; r++) {
                __m256i a = ld(xa[r * ng + g].qs + 32 * k);
                UNROLL for (int c = 0; c < CQ; c++) {
                    if (q6 && k >= 4)
                        acc2[r][c] = QDOT(acc2[r][c], u[c], a);
                    else
                        acc[r][c] = QDOT(acc[r][c], u[c], a);
                }
            }
        }
        UNROLL for (int r = 0; r < R; r++) {
            const hass__qgroup *xg = &xa[r * ng + g];
            __m256i bs = _mm256_add_epi32(ld(xg->s), ld(xg->s2));
            float dx = xg->d[0];
            UNROLL for (int c = 0; c < CQ; c++) {
                const hass__wgroup *wg = (const hass__wgroup *)(wp + c * wrow + (size_t)g * ws);
                __m256i t = _mm256_mullo_epi32(acc[r][c], ld(wg->a.i));
                if (q6) {
                    t = _mm256_add_epi32(t, _mm256_mullo_epi32(acc2[r][c], ld(wg->b.i)));
                    yacc[r][c] = fma1(dx * wg->c[0], (float)hsum8i(t), yacc[r][c]);
                } else {
                    int32_t M = hsum8i(_mm256_mullo_epi32(bs, ld(wg->b.i)));
                    yacc[r][c] = fma1(dx * wg->c[0], (float)hsum8i(t), yacc[r][c]);
                    yacc[r][c] = fma1(-(dx * wg->c[1]), (float)M, yacc[r][c]);
                }
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < CQ; c++) {
            if (c < cc)
                y[r * ys + c] = yacc[r][c];
        }
    }
}

/* One R-row block against the prepared weights, by weight type. */
static ALWAYS_INLINE void kblock(const int R, hass_dtype wt, float *y, int64_t ys, int cc,
                                 const hass__qgroup *xa, const uint8_t *wp, size_t ws, int64_t ng) {
    switch (wt) {
    case HASS_DTYPE_Q8_0:
        if (QSIGNED)
            k32(R, 0, 0, 1, y, ys, cc, xa, wp, ws, ng);
        else
            k32(R, 7, 0, 0, y, ys, cc, xa, wp, ws, ng);
        break;
    case HASS_DTYPE_Q4_0:
        k32(R, 3, 0, 0, y, ys, cc, xa, wp, ws, ng);
        break;
    case HASS_DTYPE_Q5_0:
        k32(R, 4, 0, 0, y, ys, cc, xa, wp, ws, ng);
        break;
    case HASS_DTYPE_Q4_1:
    case HASS_DTYPE_Q5_1:
        k32(R, 0, 1, 0, y, ys, cc, xa, wp, ws, ng);
        break;
    case HASS_DTYPE_Q6_K:
        kk(R, 1, y, ys, cc, xa, wp, ws, ng);
        break;
    default:
        kk(R, 0, y, ys, cc, xa, wp, ws, ng);
    }
}

static void rows_r(int R, hass_dtype wt, float *y, int64_t ys, int cc, const hass__qgroup *xa,
                   const uint8_t *wp, size_t ws, int64_t ng) {
    switch (R) {
#if RQ >= 4
    case 4:
        kblock(4, wt, y, ys, cc, xa, wp, ws, ng);
        break;
#endif
#if RQ >= 3
    case 3:
        kblock(3, wt, y, ys, cc, xa, wp, ws, ng);
        break;
#endif
    case 2:
        kblock(2, wt, y, ys, cc, xa, wp, ws, ng);
        break;
    default:
        kblock(1, wt, y, ys, cc, xa, wp, ws, ng);
    }
}

/* The prepared weight rows of this thread (CQ rows of the widest product seen so far). */
static _Thread_local uint8_t *wscratch;
static _Thread_local size_t wscratch_cap;

void QROWS(float *y, int64_t ys, const hass__qgroup *xa, int64_t n, int64_t in, const void *W,
           hass_dtype wt, int64_t o0, int64_t o1) {
    int sgn = QSIGNED && wt == HASS_DTYPE_Q8_0;
    size_t ws = sizeof(hass__wgroup) + (sgn ? 256 : 0), rb = hass_dtype_bytes(wt, (size_t)in);
    int64_t ng = hass__qgroups(in);
    size_t need = (size_t)CQ * (size_t)ng * ws;
    if (need > wscratch_cap) {
        hass_aligned_free(wscratch);
        wscratch = hass_aligned_alloc(need);
        HASS_ASSERT(wscratch != NULL);
        wscratch_cap = need;
    }
    for (int64_t o = o0; o < o1; o += CQ) {
        int cc = o1 - o < CQ ? (int)(o1 - o) : CQ;
        for (int c = 0; c < CQ; c++) {
            uint8_t *dst = wscratch + (size_t)c * (size_t)ng * ws;
            if (c < cc)
                hass__qprep_avx2((hass__wgroup *)dst, (const uint8_t *)W + (size_t)(o + c) * rb, wt,
                                 in, sgn);
            else
                memset(dst, 0, (size_t)ng * ws);
        }
        for (int64_t r = 0; r < n; r += RQ) {
            int R = n - r < RQ ? (int)(n - r) : RQ;
            rows_r(R, wt, y + r * ys + o, ys, cc, xa + r * ng, wscratch, ws, ng);
        }
    }
}
