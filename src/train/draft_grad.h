/*
 * draft_grad — forward/backward pairs of every op of the EAGLE/HASS draft head, llm.c style:
 * raw pointers, explicit dims, a shape comment on every pointer. Rows are tokens; a batch of B
 * sequences of length T is N = B*T rows, row r = b*T + i having position i = r % T.
 *
 * NAMES: hass_train_<op>_forward / _backward, the training twins of the inference ops of ops.h
 * (hass_matmul, hass_rmsnorm, hass_rope, hass_silu_mul, hass_add, hass_softmax), which have other
 * contracts: these save what the backward needs (rstd), take RoPE tables for rows at positions
 * r % T, write out of place, and run whole batches of sequences. pretrain.c uses them too.
 *
 * CONVENTION: every *_backward ACCUMULATES (+=) into its gradient buffers (input gradients and
 * parameter gradients alike); callers zero them. Gradient pointers documented "may be NULL"
 * are skipped. The two exceptions say so: RoPE rotates a gradient in place (it is an
 * orthogonal map), and the fused distillation loss writes (=) dlogits, the start of the chain.
 *
 * Large products use OpenBLAS sgemm (its own threads). Ops that take a hass_pool split rows
 * with (ith, nth) and reduce per-thread partial sums in a fixed order, so results do not
 * depend on timing (they do depend on the thread count only through those reductions).
 *
 * Implements HASS.md section 2 (layer), 4 (losses), 5.1 (Top-K loss) and 5.2.2-5.2.3
 * (context-alignment attention with proper -inf masking; the 5.2.4 quirk is NOT reproduced).
 */
#ifndef HASS_DRAFT_GRAD_H
#define HASS_DRAFT_GRAD_H

#include "core/core.h"
#include "ops/ops.h"

/* ---- linear: y = x W^T (+ b) ----
 * y: (N, out); x: (N, in); W: (out, in) row-major; b: (out) or NULL. Overwrites y. */
void hass_train_linear_forward(float *y, const float *x, const float *W, const float *b, int64_t N,
                               int64_t in, int64_t out);
/* dx: (N, in) += dy W; dW: (out, in) += dy^T x; db: (out) += sum_rows dy.
 * dx, dW, db may each be NULL (frozen weights, detached inputs). */
void hass_train_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x,
                                const float *W, int64_t N, int64_t in, int64_t out);

/* ---- RMSNorm: y = x * rstd * w, rstd = 1/sqrt(mean(x^2) + eps) ----
 * y, x: (N, d); w: (d); rstd: (N) saved for backward. Overwrites y and rstd. */
void hass_train_rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int64_t N,
                                int64_t d, float eps);
/* dx: (N, d) += ...; dw: (d) += sum_rows dy * x * rstd. dx or dw may be NULL. */
void hass_train_rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x,
                                 const float *w, const float *rstd, int64_t N, int64_t d);

/* ---- RoPE ----
 * Tables for positions 0..T-1: cos_t, sin_t: (T, hd/2); angle = (float)pos * inv_freq[i] and
 * cosf/sinf of it, as hass_rope (ops.h) computes them: with the same inv_freq (hd/2, from
 * hass_rope_freqs) the rotation is bit-identical to the inference kernel's. */
void hass_train_rope_table(float *cos_t, float *sin_t, int64_t T, int64_t hd,
                           const float *inv_freq);
/* In-place rotation of x: (N, nh, hd), row r at position r % T. style as in ops.h. */
void hass_train_rope_forward(float *x, int64_t N, int64_t T, int64_t nh, int64_t hd,
                             const float *cos_t, const float *sin_t, hass_rope_style style);
/* The transpose (inverse) rotation, applied IN PLACE to a gradient: on entry dx holds
 * dL/d(rotated), on exit dL/d(unrotated). */
void hass_train_rope_backward(float *dx, int64_t N, int64_t T, int64_t nh, int64_t hd,
                              const float *cos_t, const float *sin_t, hass_rope_style style);

/* ---- SwiGLU gate: out = silu(g) * u, silu(g) = g * sigmoid(g) ----
 * out, g, u: (n) elements. Overwrites out. */
void hass_train_silu_mul_forward(float *out, const float *g, const float *u, int64_t n);
/* dg += dout * u * s * (1 + g (1 - s)), s = sigmoid(g); du += dout * silu(g). */
void hass_train_silu_mul_backward(float *dg, float *du, const float *dout, const float *g,
                                  const float *u, int64_t n);

/* ---- residual: out = a + b (n elements; out may alias a) ---- */
void hass_train_residual_forward(float *out, const float *a, const float *b, int64_t n);
/* da += dout; db += dout (either may be NULL). */
void hass_train_residual_backward(float *da, float *db, const float *dout, int64_t n);

/* ---- HASS context-alignment mask (HASS.md 5.2.2) ----
 * At alignment step j (j >= 0), query row i (0 <= i < T) of the newest stream sees:
 *   stream 0 at positions 0 .. n0[i]-1, n0[i] = max(0, i - j + 1)   (causal prefix, shifted by j);
 *   stream k at position i - j + k, for k = kfirst[i] .. j, kfirst[i] = max(1, j - i)
 *   (one diagonal key per draft stream; none when kfirst[i] > j, i.e. j == 0).
 * Rows i < j have no stream-0 keys and see streams j-i..j at positions 0..i.
 * n0, kfirst: (T). */
void hass_train_align_mask(int64_t T, int j, int64_t *n0, int *kfirst);

/* ---- multi-stream attention with the alignment mask (HASS.md 5.2.3) ----
 * Per head: scores of q_i against stream-0 keys 0..n0[i]-1 (a causal block shifted by j, one
 * sgemm per query block) plus j diagonal scalars q_i . k^(k)_{i-j+k}; one softmax over the
 * concatenation (masked keys are -inf, i.e. absent); the weighted sum of the matching values.
 * Cost O(T^2 Dh) per head and step. GQA: query head h reads kv head h / (H / Hkv).
 *
 * q:    (B*T, H*Dh) rotated queries of stream j.
 * k[s], v[s], s = 0..j: (B*T, Hkv*Dh) rotated keys / values of stream s.
 * out:  (B*T, H*Dh), overwritten.   lse: (B*T, H) log-sum-exp of the scaled scores, saved.
 * bq:   query rows per block (<= 0: 128). Smaller blocks waste less of the causal square.
 * scratch: hass_train_attn_align_scratch(T, j, bq, hass_pool_size(pool)) floats.
 * Threads: the pool splits (b, head) pairs (forward) or (b, kv head) groups (backward, so each
 * dK/dV slice has one writer); BLAS runs single-threaded inside them (the OpenBLAS thread count
 * is set to 1 for the call and restored). With a NULL pool, one thread and BLAS's own threads.
 * Deterministic for a given pool size. */
size_t hass_train_attn_align_scratch(int64_t T, int j, int64_t bq, int nth);
void hass_train_attn_align_forward(hass_pool *pool, float *out, float *lse, const float *q,
                                   const float *const *k, const float *const *v, int64_t B,
                                   int64_t T, int j, int64_t H, int64_t Hkv, int64_t Dh, int64_t bq,
                                   float *scratch);
/* dq: (B*T, H*Dh) +=; dk[s], dv[s]: (B*T, Hkv*Dh) +=, s = 0..j (dk/dv may not alias each other).
 * dout: (B*T, H*Dh); out, lse: from the forward. Recomputes the probabilities block by block
 * from lse (flash-attention style), so memory stays O(bq * T) per thread. */
void hass_train_attn_align_backward(hass_pool *pool, float *dq, float *const *dk, float *const *dv,
                                    const float *dout, const float *out, const float *lse,
                                    const float *q, const float *const *k, const float *const *v,
                                    int64_t B, int64_t T, int j, int64_t H, int64_t Hkv, int64_t Dh,
                                    int64_t bq, float *scratch);

/* ---- losses (HASS.md 4 and 5.1); m: (N) loss mask, Z = sum(m) + 1e-5 ----
 * Feature regression: L = sum_i m_i * mean_d SmoothL1_{beta=1}(h_i - t_i) / Z.
 * h, tgt: (N, d). Returns L; dh: (N, d) += gscale * dL/dh (dh may be NULL). */
double hass_train_smoothl1_loss(float *dh, const float *h, const float *tgt, const float *m,
                                int64_t N, int64_t d, float gscale);

/* Rows of p (N, V) turned into softmax(p) in place (max-subtracted, row-parallel). */
void hass_train_softmax_rows(hass_pool *pool, float *x, int64_t N, int64_t V);
/* idx: (N, K) the K largest entries of each row of p (N, V), in decreasing order, ties to the
 * lower index; amax: (N) the row argmax (may be NULL). K <= V. */
void hass_train_topk_rows(hass_pool *pool, int32_t *idx, int32_t *amax, const float *p, int64_t N,
                          int64_t V, int64_t K);

/* Fused distillation loss against the target distribution p (N, V) (rows sum to 1):
 *   log q_i = log_softmax(logits_i) over the full vocabulary;
 *   soft = -sum_i m_i sum_v p_i(v) log q_i(v) / Z                  (soft cross-entropy)
 *   topk = -sum_i m_i sum_{v in topk_idx_i} p_i(v) log q_i(v) / Z   (p not renormalised)
 * Returns w_soft*soft + w_topk*topk and stores the parts in *soft / *topk (either may be NULL).
 * dlogits: (N, V) WRITTEN (=) with d(return)/d(logits); it may alias logits. Rows with m_i == 0
 * get zeros. topk_idx: (N, K) from hass_train_topk_rows (may be NULL when K == 0 or w_topk == 0).
 * argmax: (N) draft argmax of masked rows, -1 for unmasked rows (may be NULL). */
double hass_train_distill_loss(hass_pool *pool, float *dlogits, const float *logits, const float *p,
                               const int32_t *topk_idx, const float *m, int64_t N, int64_t V,
                               int64_t K, float w_soft, float w_topk, double *soft, double *topk,
                               int32_t *argmax);

#endif
