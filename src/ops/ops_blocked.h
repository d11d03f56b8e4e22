/*
 * ops_blocked.h — the kernels ops_avx2.c and ops_avx512.c share line for line, written once over
 * the vector width: the blocked matrix product (RB x rows by CB weight rows in registers, the
 * n == 1 block of VLANES rows with its horizontal sums run together, the paced prefetch of the
 * next weight block), the dot of two vectors, the dots of many keys and the weighted average's
 * dispatch. Included once by each of those files (never elsewhere), after it defines:
 *   RB (4), CB (3 or 6), ALWAYS_INLINE, UNROLL;
 *   VEC, VLANES, VZERO(), VLOAD(p), VLOADM(p, m) (lanes >= m zero, not read), VSTORE(p, v),
 *   VSTOREM(p, m, v) (lanes < m only), VFMA(a, b, c), VHSUM(v) (the fixed horizontal sum),
 *   VHSUMN(a) (VLANES of them at once: lane p = row p when a[i] holds row VROW(i)), VROW(i);
 *   wload(dt, w, k) and wload_part(dt, w, k, m): VLANES (m) weights of a row as f32;
 *   DOTSN(q, k, off, Dh): VLANES dots, lane p = dot(q, k + off[VROW(p)]) (dots_rows below, or
 *   an ISA's own for some Dh);
 *   wavg_units(U, u0, ...): U <= 8 units of the weighted average (ops.h).
 * Every function here is static: each file gets its own copy, compiled for its ISA.
 */
#ifndef HASS_OPS_BLOCKED_H
#define HASS_OPS_BLOCKED_H

/* The paced prefetch of the next W block (see kern): the C*rb bytes after this block, up to
 * pf_lim (nothing when pf_lim is NULL or already passed), `step` bytes more per k step. */
typedef struct {
    const char *at;
    size_t done, len, step, goal;
} pacer;

static ALWAYS_INLINE pacer pacer_make(const uint8_t *w, int C, size_t rb, int64_t in, int64_t kstep,
                                      const uint8_t *pf_lim) {
    const uint8_t *at = w + (size_t)C * rb;
    size_t left = pf_lim && pf_lim > at ? (size_t)(pf_lim - at) : 0;
    pacer p = {(const char *)at, 0, left < (size_t)C * rb ? left : (size_t)C * rb,
               ((size_t)C * rb * (size_t)kstep + (size_t)in - 1) / (size_t)in, 0};
    return p;
}

/* Into L2 (T1): on a Xeon with AMX 3-5% faster than into L1 for bf16 at n = 1 (bench/PERF.md,
 * 2026-11-27): the next block does not fit beside the current one in L1 anyway. */
static ALWAYS_INLINE void pacer_advance(pacer *p) {
    p->goal += p->step;
    for (; p->done < p->goal && p->done < p->len; p->done += 64)
        _mm_prefetch(p->at + p->done, _MM_HINT_T1);
}

/* The R x C register block: y[r*ys + c] = x[r] . w[c] for r < R, c < C, each element as its
 * own VLANES-lane accumulator over k (the in % VLANES tail as one more step, zero-padded by
 * masked loads), then the fixed horizontal sum. */
static ALWAYS_INLINE void kern(const int R, const int C, hass_dtype dt, float *y, int64_t ys,
                               const float *x, int64_t in, const uint8_t *w, size_t rb,
                               const uint8_t *pf_lim) {
    VEC acc[RB][CB];
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < C; c++) {
            acc[r][c] = VZERO();
        }
    }
    int64_t inv = in & ~(int64_t)(VLANES - 1);
    /* Unless pf_lim is NULL, prefetch the next block of W (the C*rb bytes after this one, up to
     * pf_lim) at the pace this block is consumed: blocks are short streams (C rows of a few KiB),
     * too short for the hardware prefetcher to ramp up on each. */
    pacer pf = pacer_make(w, C, rb, in, VLANES, pf_lim);
    for (int64_t k = 0; k < inv; k += VLANES) {
        VEC wv[CB];
        pacer_advance(&pf);
        UNROLL for (int c = 0; c < C; c++) {
            wv[c] = wload(dt, w + (size_t)c * rb, k);
        }
        UNROLL for (int r = 0; r < R; r++) {
            VEC xv = VLOAD(x + r * in + k);
            UNROLL for (int c = 0; c < C; c++) {
                acc[r][c] = VFMA(xv, wv[c], acc[r][c]);
            }
        }
    }
    if (inv < in) {
        VEC wv[CB];
        UNROLL for (int c = 0; c < C; c++) {
            wv[c] = wload_part(dt, w + (size_t)c * rb, inv, in - inv);
        }
        UNROLL for (int r = 0; r < R; r++) {
            VEC xv = VLOADM(x + r * in + inv, in - inv);
            UNROLL for (int c = 0; c < C; c++) {
                acc[r][c] = VFMA(xv, wv[c], acc[r][c]);
            }
        }
    }
    UNROLL for (int r = 0; r < R; r++) {
        UNROLL for (int c = 0; c < C; c++) {
            y[r * ys + c] = VHSUM(acc[r][c]);
        }
    }
}

/* n == 1: a block of C <= VLANES rows of W, one accumulator per row (accumulator i holds row
 * VROW(i); rows past C repeat row C - 1 and are not stored), each fed exactly as in kern, then
 * all reduced at once by VHSUMN, which adds like VHSUM, into one vector of C outputs. The rows
 * are read in passes of 8, so that their pointers stay in registers. */
static ALWAYS_INLINE void kern_row(const int PF, hass_dtype dt, float *y, const float *x,
                                   int64_t in, const uint8_t *w, size_t rb, int C,
                                   const uint8_t *pf_lim) {
    VEC acc[VLANES];
    int64_t inv = in & ~(int64_t)(VLANES - 1);
    pacer pf = pacer_make(w, C, rb, in * (VLANES / 8), VLANES, PF ? pf_lim : NULL);
    UNROLL for (int h = 0; h < VLANES / 8; h++) {
        const uint8_t *wr[8];
        VEC *a = acc + 8 * h;
        UNROLL for (int i = 0; i < 8; i++) {
            wr[i] = w + (size_t)(VROW(8 * h + i) < C ? VROW(8 * h + i) : C - 1) * rb;
            a[i] = VZERO();
        }
        for (int64_t k = 0; k < inv; k += VLANES) {
            if (PF)
                pacer_advance(&pf);
            VEC xv = VLOAD(x + k);
            UNROLL for (int i = 0; i < 8; i++) {
                a[i] = VFMA(xv, wload(dt, wr[i], k), a[i]);
            }
        }
        if (inv < in) {
            VEC xv = VLOADM(x + inv, in - inv);
            UNROLL for (int i = 0; i < 8; i++) {
                a[i] = VFMA(xv, wload_part(dt, wr[i], inv, in - inv), a[i]);
            }
        }
    }
    VSTOREM(y, C, VHSUMN(acc));
}

#define KCASE(R, C)                                                                                \
    case (R)*16 + (C):                                                                             \
        kern(R, C, dt, y, ys, x, in, w, rb, pf_lim);                                               \
        break

static ALWAYS_INLINE void block(int R, int C, hass_dtype dt, float *y, int64_t ys, const float *x,
                                int64_t in, const uint8_t *w, size_t rb, const uint8_t *pf_lim) {
    switch (R * 16 + C) {
        KCASE(1, 1);
        KCASE(1, 2);
        KCASE(1, 3);
        KCASE(2, 1);
        KCASE(2, 2);
        KCASE(2, 3);
        KCASE(3, 1);
        KCASE(3, 2);
        KCASE(3, 3);
        KCASE(4, 1);
        KCASE(4, 2);
        KCASE(4, 3);
#if CB >= 6
        KCASE(1, 4);
        KCASE(1, 5);
        KCASE(1, 6);
        KCASE(2, 4);
        KCASE(2, 5);
        KCASE(2, 6);
        KCASE(3, 4);
        KCASE(3, 5);
        KCASE(3, 6);
        KCASE(4, 4);
        KCASE(4, 5);
        KCASE(4, 6);
#endif
    default:
        HASS_ASSERT(!"matmul block shape");
    }
}

/* W blocks of CB rows (VLANES when n == 1) outside, x blocks of RB rows inside: a W block is
 * read from memory once and stays in L1 while every x row passes over it. (Tiling k as well,
 * with the lane sums parked between tiles, measured ~10% slower at n = 8..64: the x rows stream
 * from L2 fast enough.) */
static ALWAYS_INLINE void rows_dt(hass_dtype dt, float *y, int64_t ys, const float *x, int64_t n,
                                  int64_t in, const void *W, int64_t o0, int64_t o1) {
    size_t rb = hass_dtype_bytes(dt, (size_t)in);
    int cmax = n == 1 ? VLANES : CB;
    /* Software prefetch of the next W block (see kern), measured single-threaded on 2048x768 /
     * 32000x768 streamed from memory: bf16 n = 1 4.9 -> 3.3 ms, bf16 n = 4 410 -> 205 us, f32
     * n = 4 600 -> 450 us, f32 n = 16 16.4 -> 13.6 ms; but f32 n = 1 300 -> 390 us (its 3 KiB+
     * rows are long enough for the hardware prefetcher), so not there. */
    const uint8_t *wend =
        hass__mm_pf(n, dt != HASS_DTYPE_F32 || n > 1) ? (const uint8_t *)W + (size_t)o1 * rb : NULL;
    int rbm = n > 1 ? hass__mm_rb(n) : RB; /* the tuned block height (hass_ops_tune) */
    for (int64_t o = o0; o < o1; o += cmax) {
        int C = o1 - o < cmax ? (int)(o1 - o) : cmax;
        const uint8_t *w = (const uint8_t *)W + (size_t)o * rb;
        if (n == 1) { /* without the prefetch code when there is none (registers) */
            if (wend)
                kern_row(1, dt, y + o, x, in, w, rb, C, wend);
            else
                kern_row(0, dt, y + o, x, in, w, rb, C, NULL);
            continue;
        }
        for (int64_t r = 0; r < n; r += rbm) {
            int R = n - r < rbm ? (int)(n - r) : rbm;
            block(R, C, dt, y + r * ys + o, ys, x + r * in, in, w, rb, r == 0 ? wend : NULL);
        }
    }
}

static void rows_f32(float *y, int64_t ys, const float *x, int64_t n, int64_t in, const void *W,
                     int64_t o0, int64_t o1) {
    rows_dt(HASS_DTYPE_F32, y, ys, x, n, in, W, o0, o1);
}
static void rows_bf16(float *y, int64_t ys, const float *x, int64_t n, int64_t in, const void *W,
                      int64_t o0, int64_t o1) {
    rows_dt(HASS_DTYPE_BF16, y, ys, x, n, in, W, o0, o1);
}
static void rows_f16(float *y, int64_t ys, const float *x, int64_t n, int64_t in, const void *W,
                     int64_t o0, int64_t o1) {
    rows_dt(HASS_DTYPE_F16, y, ys, x, n, in, W, o0, o1);
}

static void matmul_rows(float *y, int64_t ys, const float *x, int64_t n, int64_t in, const void *W,
                        hass_dtype wt, int64_t o0, int64_t o1) {
    switch (wt) {
    case HASS_DTYPE_F32:
        rows_f32(y, ys, x, n, in, W, o0, o1);
        break;
    case HASS_DTYPE_BF16:
        rows_bf16(y, ys, x, n, in, W, o0, o1);
        break;
    case HASS_DTYPE_F16:
        rows_f16(y, ys, x, n, in, W, o0, o1);
        break;
    default:
        HASS_ASSERT(!"hass_matmul: unsupported weight dtype");
    }
}

/* The same element arithmetic as the matrix product, for one pair of vectors. */
static ALWAYS_INLINE float dot1(const float *a, const float *b, int64_t n) {
    VEC acc = VZERO();
    int64_t k = 0;
    for (; k + VLANES <= n; k += VLANES)
        acc = VFMA(VLOAD(a + k), VLOAD(b + k), acc);
    if (k < n)
        acc = VFMA(VLOADM(a + k, n - k), VLOADM(b + k, n - k), acc);
    return VHSUM(acc);
}

/* dot1(q, k + off[VROW(p)], Dh) in lane p, for VLANES key rows. */
static ALWAYS_INLINE VEC dots_rows(const float *q, const float *k, const int64_t *off, int64_t Dh) {
    VEC acc[VLANES];
    UNROLL for (int i = 0; i < VLANES; i++) {
        acc[i] = VZERO();
    }
    int64_t e = 0;
    for (; e + VLANES <= Dh; e += VLANES) {
        VEC qv = VLOAD(q + e);
        UNROLL for (int i = 0; i < VLANES; i++) {
            acc[i] = VFMA(qv, VLOAD(k + off[i] + e), acc[i]);
        }
    }
    if (e < Dh) {
        VEC qv = VLOADM(q + e, Dh - e);
        UNROLL for (int i = 0; i < VLANES; i++) {
            acc[i] = VFMA(qv, VLOADM(k + off[i] + e, Dh - e), acc[i]);
        }
    }
    return VHSUMN(acc);
}

/* VLANES keys per step, each exactly dot1; a last partial group repeats its last key in the
 * unused lanes and stores only the valid ones. */
static void dots_any(float *s, const float *q, const float *k, int64_t ks, int64_t nk, int64_t Dh) {
    int64_t off[VLANES], j = 0;
    for (int i = 0; i < VLANES; i++)
        off[i] = VROW(i) * ks;
    for (; j + VLANES <= nk; j += VLANES)
        VSTORE(s + j, DOTSN(q, k + j * ks, off, Dh));
    if (j < nk) {
        int64_t m = nk - j;
        for (int i = 0; i < VLANES; i++)
            off[i] = (VROW(i) < m ? VROW(i) : m - 1) * ks;
        VSTOREM(s + j, m, DOTSN(q, k + j * ks, off, Dh));
    }
}

#define WAVG_CASE(U)                                                                               \
    case U:                                                                                        \
        wavg_units(U, u0, o, p, ps, v, voff, vs, nk, Dh);                                          \
        break

/* All G heads' units (ceil(Dh / VLANES) per head), 8 at a time. */
static void wavg_any(float *o, const float *p, int64_t ps, const float *v, const int64_t *voff,
                     int64_t vs, int64_t nk, int64_t Dh, int G) {
    int64_t nu = (int64_t)G * ((Dh + VLANES - 1) / VLANES);
    for (int64_t u0 = 0; u0 < nu; u0 += 8) {
        switch (nu - u0 < 8 ? (int)(nu - u0) : 8) {
            WAVG_CASE(1);
            WAVG_CASE(2);
            WAVG_CASE(3);
            WAVG_CASE(4);
            WAVG_CASE(5);
            WAVG_CASE(6);
            WAVG_CASE(7);
        default:
            wavg_units(8, u0, o, p, ps, v, voff, vs, nk, Dh);
        }
    }
}

#endif
