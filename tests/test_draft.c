/*
 * test_draft.c — the draft head's two forwards compute one function.
 *
 * Training (src/train: hass_train_forward, the forward of hass_train_grad, OpenBLAS products,
 * the context-alignment attention) against inference (src/draft: hass_draft_forward, the
 * model's layer with the engine's kernels), on the SAME weights (the trainer's parameters
 * written as a draft directory and loaded back, as `hass train-draft` + `hass generate -d` do)
 * and the same inputs: features f_i, tokens t_{i+1}, positions 0..T-1. Every alignment step j
 * of HASS (HASS.md 5.2.2) is compared with what decoding computes at tree depth j: row i of
 * step j == the true pairs 0..i-j committed, then a chain of j pairs whose features are the
 * draft's own outputs (tree rows in the scratch region); rows i < j keep the true pair 0.
 * Configurations: GQA and MHA, fc bias on and off, several sequence lengths, and RoPE plain,
 * LLaMA-3.1 rope_scaling, GGUF rope_freqs divisors with linear scaling, HF linear scaling.
 *
 * Tree expansion (the draft head's proposer, src/decode/expand.c, EAGLE-2, HASS.md 6.3) on random
 * small drafts and the trees they grow: every expanded node's output, and the top-k children
 * recorded for it, equal a sequential re-computation of its root-to-node path (the committed
 * context, then the path one pair at a time with a plain causal KV cache): bit-identical
 * features (the kernels are batch-invariant and masked keys contribute nothing), the same
 * children; each level's positions are n_past + depth - 1 and its mask rows are exactly the
 * node's ancestors and itself.
 *
 * Tolerance of the training/inference comparison (float reassociation only): the two sides sum the
 * same products in different orders (sgemm blocking vs our kernels, a log-sum-exp softmax over
 * score blocks vs a max-subtracted one over keys); the RoPE rotations are bit-identical (same
 * frequencies from hass_rope_freqs, same float angle). A float sum of K products is off by at most
 * about K * u of the sum of their magnitudes (u = 2^-24, Higham's gamma_K); the forward chains 8
 * such reductions (FC, q/k/v, scores, weighted values, o, gate/up, down, LM head) whose errors add,
 * so we allow 8 * K * u of the largest output magnitude, K the longest reduction
 * (max(2d, ffn, T)): 3e-5 to 1e-4 here. The errors seen are about 6e-7 (printed: rounding
 * errors are random, not worst-case); a RoPE that differs between the two (the target's
 * scaling at inference only, as before this test existed) gives 0.1 to 0.5.
 */
#include "check.h"
#include "decode/decode.h"
#include "draft/draft.h"
#include "model/model.h"
#include "train/draft_ckpt.h"
#include "train/draft_grad.h"
#include "train/gemm.h"
#include "train/train.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

static double max_abs(const float *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fabs((double)x[i]) > m ? fabs((double)x[i]) : m;
    return m;
}

/* max |a - b| / max |b| */
static double norm_err(const float *a, const float *b, int64_t n) {
    double e = 0;
    for (int64_t i = 0; i < n; i++)
        e = fabs((double)a[i] - (double)b[i]) > e ? fabs((double)a[i] - (double)b[i]) : e;
    return e / (max_abs(b, n) + 1e-30);
}

typedef enum { ROPE_PLAIN, ROPE_LLAMA3, ROPE_GGUF, ROPE_LINEAR } rope_kind;
static const char *rope_name[] = {"plain", "llama3 rope_scaling", "rope_freqs + linear", "linear"};

/* A target of the given shape whose RoPE is of the given kind. The scaled kinds put the
 * interesting wavelengths inside the test's positions: llama3 with original context 64 (so
 * every band: kept, interpolated, divided), GGUF divisors equal to that llama3 scaling (how
 * llama.cpp stores it) times a linear factor 2, HF linear factor 4. */
static hass_model *make_target(int64_t d, int64_t H, int64_t Hkv, int64_t ffn, int64_t V,
                               rope_kind rk, uint64_t seed) {
    hass_model_config c = hass_model_config_make(d, ffn, 1, H, Hkv, V, 512);
    c.rope.theta = 10000.0f;
    hass_rope_params l3 = c.rope;
    l3.factor = 8, l3.low_freq_factor = 1, l3.high_freq_factor = 4, l3.orig_ctx = 64;
    if (rk == ROPE_LLAMA3)
        c.rope = l3;
    if (rk == ROPE_GGUF) {
        float base[HASS_ROPE_MAX_HALF], scaled[HASS_ROPE_MAX_HALF];
        hass_rope_freqs(&c.rope, c.Dh, base);
        hass_rope_freqs(&l3, c.Dh, scaled);
        c.rope.n_div = (int32_t)(c.Dh / 2);
        for (int64_t i = 0; i < c.Dh / 2; i++)
            c.rope.div[i] = base[i] / scaled[i];
        c.rope.linear = 2;
    }
    if (rk == ROPE_LINEAR)
        c.rope.linear = 4;
    hass_err err = {0};
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, seed, &err);
    HASS_ASSERT(m);
    return m;
}

/* A trainer for target m with seeded parameters, written out as a draft directory and loaded
 * back for m. q/k weights are scaled up 6x: with nn.Linear's init the attention scores are
 * ~0.1 and the softmax nearly uniform, so positions (RoPE) would hardly matter. */
static hass_trainer *make_pair(const hass_model *m, int bias, int64_t T, int n_align,
                               hass_draft **dr) {
    hass_err err = {0};
    hass_draft_config dc = hass_draft_config_for(m, bias);
    hass_trainer *tr =
        hass_trainer_create(&dc, m->embed, m->lm_head, 2, T, n_align, 11, NULL, &err);
    HASS_ASSERT(tr);
    for (int p = HASS_DP_Q; p <= HASS_DP_K; p++)
        for (size_t i = 0; i < tr->layout.numel[p]; i++)
            tr->params[tr->layout.off[p] + i] *= 6.0f;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/draft", tmpdir);
    CHECK(hass_draft_write_params(dir, &m->cfg, &dc, &tr->layout, tr->params, HASS_DTYPE_F32,
                                  "synthetic", &err) == HASS_OK);
    *dr = hass_draft_load(dir, m, &err);
    CHECK_MSG(*dr != NULL, "%s", err.msg);
    return tr;
}

/* The inference side of step j for one sequence: out (T, d). */
static void infer_step(const hass_draft *dr, int j, int64_t T, const float *f, const int32_t *tok,
                       float *out) {
    int64_t D = dr->cfg.d;
    hass_err err = {0};
    hass_draft_state s;
    HASS_ASSERT(hass_draft_state_init(&s, dr, T, T, NULL, &err) == HASS_OK);
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    float *hlast = malloc((size_t)D * sizeof(float)), *h = malloc((size_t)D * sizeof(float));
    for (int64_t i = 0; i < T; i++)
        pos[i] = (int32_t)i;
    if (j == 0) { /* the prompt: one batched causal forward */
        CHECK(hass_draft_forward(&s, NULL, T, f, tok, pos, out, &err) == HASS_OK);
    } else {
        for (int64_t i = 0; i < T; i++) {
            int64_t m0 = i - j + 1 > 1 ? i - j + 1 : 1; /* true pairs committed */
            hass_draft_discard_scratch(&s);
            for (int64_t p = s.n; p < m0; p++)
                CHECK(hass_draft_forward(&s, NULL, 1, f + p * D, tok + p, pos + p, hlast, &err) ==
                      HASS_OK);
            memcpy(h, hlast, (size_t)D * sizeof(float));
            for (int64_t p = m0; p <= i; p++) { /* the chain: tree rows, own features */
                int32_t parent = (int32_t)(p - m0) - 1;
                CHECK(hass_draft_forward_tree(&s, NULL, 1, h, tok + p, pos + p, &parent, h, &err) ==
                      HASS_OK);
            }
            memcpy(out + i * D, h, (size_t)D * sizeof(float));
        }
    }
    free(pos), free(hlast), free(h);
    hass_draft_state_free(&s);
}

typedef struct {
    int64_t d, H, Hkv, ffn, V;
    int bias;
    rope_kind rope;
    int64_t T;
} fwd_case;

static void test_train_vs_inference(const fwd_case *fc, double *worst) {
    enum { NA = 3, B = 2 };
    hass_model *m = make_target(fc->d, fc->H, fc->Hkv, fc->ffn, fc->V, fc->rope, 5);
    hass_draft *dr = NULL;
    int64_t T = fc->T, D = fc->d, V = fc->V, N = B * T;
    hass_trainer *tr = make_pair(m, fc->bias, T, NA, &dr);
    if (!dr) {
        hass_trainer_destroy(tr);
        hass_model_free(m);
        return;
    }
    /* the draft runs with the frequencies it was trained with: the target's */
    CHECK(hass_rope_params_equal(&dr->cfg.rope, &tr->cfg.rope));
    CHECK_BITEQ(dr->inv_freq, m->inv_freq, m->cfg.Dh / 2, "draft frequencies == target's");
    float *f = malloc((size_t)(N * D) * sizeof(float));
    float *ht = malloc((size_t)(NA * N * D) * sizeof(float)), *hi = malloc((size_t)(T * D) * 4);
    float *lt = malloc((size_t)(T * V) * sizeof(float)), *li = malloc((size_t)(T * V) * 4);
    int32_t *tok = malloc((size_t)N * sizeof(int32_t));
    hass_rng r;
    hass_rng_seed(&r, 1000 + (uint64_t)T);
    for (int64_t i = 0; i < N * D; i++)
        f[i] = hass_rng_normal(&r);
    for (int64_t i = 0; i < N; i++)
        tok[i] = (int32_t)(hass_rng_u64(&r) % (uint64_t)V);
    hass_train_batch bt = {B, T, f, tok, NULL, NULL};
    hass_err err = {0};
    CHECK(hass_train_forward(tr, &bt, NA, ht, &err) == HASS_OK);
    int64_t K = 2 * D > fc->ffn ? 2 * D : fc->ffn;
    K = K > T ? K : T;
    double tol = 8.0 * (double)K * ldexp(1.0, -24), eh = 0, el = 0;
    for (int j = 0; j < NA; j++)
        for (int b = 0; b < B; b++) {
            const float *h_tr = ht + (j * N + b * T) * D;
            infer_step(dr, j, T, f + b * T * D, tok + b * T, hi);
            hass_train_linear_forward(lt, h_tr, m->lm_head, NULL, T, D, V);
            hass_matmul(NULL, li, hi, m->lm_head, m->lm_head_t, T, D, V);
            double e1 = norm_err(h_tr, hi, T * D), e2 = norm_err(lt, li, T * V);
            char label[160];
            snprintf(label, sizeof label,
                     "d=%lld H=%lld Hkv=%lld bias=%d %s T=%lld step %d seq %d: h %.3g logits "
                     "%.3g (tol %.3g)",
                     (long long)D, (long long)fc->H, (long long)fc->Hkv, fc->bias,
                     rope_name[fc->rope], (long long)T, j, b, e1, e2, tol);
            CHECK_MSG(e1 <= tol && e2 <= tol, "%s", label);
            eh = e1 > eh ? e1 : eh;
            el = e2 > el ? e2 : el;
        }
    printf("train vs inference: d=%lld H=%lld Hkv=%lld bias=%d %-20s T=%-3lld max error h %.2g, "
           "logits %.2g (tol %.2g)\n",
           (long long)D, (long long)fc->H, (long long)fc->Hkv, fc->bias, rope_name[fc->rope],
           (long long)T, eh, el, tol);
    worst[0] = eh > worst[0] ? eh : worst[0];
    worst[1] = el > worst[1] ? el : worst[1];
    free(f), free(ht), free(hi), free(lt), free(li), free(tok);
    hass_draft_free(dr);
    hass_trainer_destroy(tr);
    hass_model_free(m);
}

/* A draft whose config.json records no scaling (EAGLE's published drafts, or drafts written
 * before the RoPE was recorded) runs unscaled under a scaled target, as EAGLE's code runs it
 * (it takes the draft's RoPE from the draft's own config); a draft trained for the target
 * records and gets the target's. */
static void test_recorded_rope(void) {
    hass_model *m = make_target(32, 4, 2, 48, 40, ROPE_LLAMA3, 3);
    hass_draft *dr = NULL;
    hass_trainer *tr = make_pair(m, 1, 4, 1, &dr);
    char dir[300], path[320], *json = NULL;
    snprintf(dir, sizeof dir, "%s/draft", tmpdir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    hass_err err = {0};
    CHECK(hass_read_file(path, &json, NULL, &err) == HASS_OK);
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(o, "rope_scaling");
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    CHECK(cJSON_IsString(ty) && !strcmp(ty->valuestring, "llama3"));
    /* the same draft without its rope_scaling */
    cJSON_DeleteItemFromObjectCaseSensitive(o, "rope_scaling");
    char *txt = cJSON_Print(o);
    CHECK(txt && hass_write_file_atomic(path, txt, strlen(txt), &err) == HASS_OK);
    hass_draft *plain = hass_draft_load(dir, m, &err);
    CHECK_MSG(plain != NULL, "%s", err.msg);
    if (plain && dr) {
        float want[HASS_ROPE_MAX_HALF];
        hass_rope_params pr = hass_rope_plain(m->cfg.rope.theta);
        hass_rope_freqs(&pr, m->cfg.Dh, want);
        CHECK_BITEQ(plain->inv_freq, want, m->cfg.Dh / 2, "unrecorded scaling: plain RoPE");
        CHECK_BITEQ(dr->inv_freq, m->inv_freq, m->cfg.Dh / 2, "recorded scaling: the target's");
        CHECK(memcmp(plain->inv_freq, dr->inv_freq, sizeof(float) * (size_t)(m->cfg.Dh / 2)));
    }
    free(txt);
    cJSON_Delete(o);
    free(json);
    hass_draft_free(plain);
    hass_draft_free(dr);
    hass_trainer_destroy(tr);
    hass_model_free(m);
}

/* ---- tree expansion vs sequential paths ---- */
typedef struct {
    int64_t d, H, Hkv, ffn, V;
    int bias;
    rope_kind rope;
    int64_t n_past;
    int topk, levels; /* expansion levels after the root's children */
    int64_t n_vocab;  /* reduced draft vocabulary (0 = full) */
} tree_case;

/* tokens of the path root -> c (depth of c entries) */
static int cand_path(const hass_tree *t, int32_t c, int32_t *path) {
    int n = 0;
    for (int32_t a = c; a >= 0; a = t->cand[a].parent)
        n++;
    int k = n;
    for (int32_t a = c; a >= 0; a = t->cand[a].parent)
        path[--k] = t->cand[a].tok;
    return n;
}

/* The draft's top-k (ids mapped to target ids, log-probs in double) of h, by sorting. */
static void ref_children(const hass_draft *dr, const float *h, int k, int32_t *ids, double *lp) {
    hass_dtype ht;
    int64_t hv, d = dr->cfg.d;
    const void *head = hass_draft_head(dr, &ht, &hv);
    float *lg = malloc((size_t)hv * sizeof(float));
    hass_matmul(NULL, lg, h, head, ht, 1, d, hv);
    double mx = -INFINITY, sum = 0;
    for (int64_t v = 0; v < hv; v++)
        mx = lg[v] > mx ? lg[v] : mx;
    for (int64_t v = 0; v < hv; v++)
        sum += exp((double)lg[v] - mx);
    for (int j = 0; j < k; j++) {
        int64_t best = -1;
        for (int64_t v = 0; v < hv; v++) {
            int used = 0;
            for (int i = 0; i < j; i++)
                used |= ids[i] == (int32_t)v;
            if (!used && (best < 0 || lg[v] > lg[best]))
                best = v;
        }
        ids[j] = (int32_t)best;
        lp[j] = (double)lg[best] - mx - log(sum);
    }
    for (int j = 0; dr->n_vocab && j < k; j++)
        ids[j] = dr->vocab[ids[j]];
    free(lg);
}

/* Each level's positions and mask rows (just after the level was proposed). */
static int check_level(const hass_expander *x, const hass_tree *t, const int32_t *frontier, int nf,
                       int64_t n_past) {
    int64_t sc = x->ds->scratch, W = (sc + 63) / 64;
    int ok = 1;
    int32_t pu[64], pv[64];
    for (int i = 0; i < nf; i++) {
        const hass_cand *c = &t->cand[frontier[i]];
        ok &= x->pos[i] == n_past + c->depth - 1 && c->row == sc - nf + i;
        int nu = cand_path(t, frontier[i], pu), bits = 0;
        for (int32_t v = 0; v < t->n_cand; v++) {
            if (t->cand[v].row < 0)
                continue;
            int nv = cand_path(t, v, pv);
            int anc = nv <= nu && !memcmp(pu, pv, (size_t)nv * sizeof(int32_t));
            int64_t r = t->cand[v].row;
            int bit = (int)((x->ds->mask[i * W + r / 64] >> (r % 64)) & 1);
            ok &= bit == anc;
            bits += bit;
        }
        ok &= bits == c->depth; /* its depth - 1 ancestors and itself */
    }
    return ok;
}

static void test_tree_expansion(const tree_case *tc, uint64_t seed) {
    hass_err err = {0};
    hass_model *m = make_target(tc->d, tc->H, tc->Hkv, tc->ffn, tc->V, tc->rope, seed);
    hass_draft_config dc = hass_draft_config_for(m, tc->bias);
    hass_draft_layout L;
    hass_draft_layout_init(&L, &dc);
    float *params = hass_aligned_alloc(L.total * sizeof(float));
    hass_draft_params_init(params, &L, &dc, seed);
    for (int p = HASS_DP_Q; p <= HASS_DP_K; p++) /* position-dependent attention */
        for (size_t i = 0; i < L.numel[p]; i++)
            params[L.off[p] + i] *= 6.0f;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/tree", tmpdir);
    CHECK(hass_draft_write_params(dir, &m->cfg, &dc, &L, params, HASS_DTYPE_F32, "t", &err) ==
          HASS_OK);
    hass_rng r;
    hass_rng_seed(&r, seed * 7919);
    if (tc->n_vocab) { /* a random subset of the target's ids */
        int32_t *vocab = malloc((size_t)tc->V * sizeof(int32_t));
        for (int64_t i = 0; i < tc->V; i++)
            vocab[i] = (int32_t)i;
        for (int64_t i = tc->V - 1; i > 0; i--) {
            int64_t j = (int64_t)(hass_rng_u64(&r) % (uint64_t)(i + 1));
            int32_t tmp = vocab[i];
            vocab[i] = vocab[j], vocab[j] = tmp;
        }
        CHECK(hass_draft_write_vocab(dir, vocab, tc->n_vocab, &err) == HASS_OK);
        free(vocab);
    }
    hass_draft *dr = hass_draft_load(dir, m, &err);
    CHECK_MSG(dr != NULL, "%s", err.msg);
    if (!dr) {
        hass_aligned_free(params);
        hass_model_free(m);
        return;
    }
    int64_t D = tc->d, np = tc->n_past, cap = np + tc->levels + 2;
    int64_t V = tc->V, rows = np > HASS_TREE_MAX_TOPK ? np : HASS_TREE_MAX_TOPK;
    float *f = malloc((size_t)(np * D) * sizeof(float)), *h = malloc((size_t)D * sizeof(float));
    float *ctx_out = malloc((size_t)(np * D) * sizeof(float));
    int32_t *tok = malloc((size_t)np * sizeof(int32_t)), *pos = malloc((size_t)cap * 4);
    for (int64_t i = 0; i < np * D; i++)
        f[i] = hass_rng_normal(&r);
    for (int64_t i = 0; i < np; i++)
        tok[i] = (int32_t)(hass_rng_u64(&r) % (uint64_t)V);
    for (int64_t i = 0; i < cap; i++)
        pos[i] = (int32_t)i;

    /* the tree: the context is caught up on (h: its last output), root children, then the
     * levels, through the draft's proposer as decoding runs it */
    hass_draft_state ds, seq;
    CHECK(hass_draft_state_init(&ds, dr, cap, rows, NULL, &err) == HASS_OK);
    CHECK(hass_draft_state_init(&seq, dr, cap, rows, NULL, &err) == HASS_OK);
    hass_tree t;
    CHECK(hass_tree_init(&t, tc->topk + tc->levels * tc->topk * tc->topk, &err) == HASS_OK);
    hass_expander x;
    CHECK(hass_expander_init(&x, dr, &ds, NULL, &err) == HASS_OK);
    hass_proposer *pr = &x.base;
    hass_cycle cyc = {NULL, np, f, tok, np, 0}; /* the context: np pairs, none seen yet */
    CHECK(pr->start(pr, &cyc, &err) == HASS_OK);
    CHECK(pr->propose(pr, &t, tc->topk, &err) == HASS_OK);
    int levels_ok = 1;
    for (int l = 0; l < tc->levels; l++) {
        int32_t frontier[HASS_TREE_MAX_TOPK];
        int nf = t.n_frontier;
        memcpy(frontier, t.frontier, (size_t)nf * sizeof(int32_t));
        CHECK(pr->propose(pr, &t, tc->topk, &err) == HASS_OK);
        levels_ok &= check_level(&x, &t, frontier, nf, np);
    }
    CHECK_MSG(levels_ok, "positions and ancestor masks of every level");

    /* every node that has children: its output (the feature its children carry) and its
     * children against the sequential path */
    CHECK(hass_draft_forward(&seq, NULL, np, f, tok, pos, ctx_out, &err) == HASS_OK);
    int feats_ok = 1, kids_ok = 1, checked = 0;
    for (int32_t u = -1; u < t.n_cand; u++) {
        int32_t first = -1, n_kids = 0, path[64];
        for (int32_t c = 0; c < t.n_cand; c++)
            if (t.cand[c].parent == u) {
                first = first < 0 ? c : first;
                n_kids++;
            }
        if (first < 0)
            continue; /* a leaf */
        seq.n = np;   /* the committed context only */
        memcpy(h, ctx_out + (np - 1) * D, (size_t)D * sizeof(float));
        int n = u >= 0 ? cand_path(&t, u, path) : 0;
        for (int k = 0; k < n; k++) /* the path, one pair at a time, causal */
            CHECK(hass_draft_forward(&seq, NULL, 1, h, path + k, pos + np + k, h, &err) == HASS_OK);
        feats_ok &= !memcmp(h, x.feat + (int64_t)t.cand[first].feat * D, (size_t)D * 4);
        int32_t ids[HASS_TREE_MAX_TOPK];
        double lp[HASS_TREE_MAX_TOPK];
        ref_children(dr, h, tc->topk, ids, lp);
        float base = u >= 0 ? t.cand[u].score : 0.0f;
        kids_ok &= n_kids == tc->topk;
        for (int j = 0; j < n_kids && j < tc->topk; j++) {
            const hass_cand *c = &t.cand[first + j];
            kids_ok &= c->parent == u && c->tok == ids[j] && c->depth == n + 1 &&
                       fabs((double)c->score - (base + lp[j])) <= 1e-4 * (1 + fabs(lp[j]));
        }
        checked++;
    }
    CHECK_MSG(feats_ok, "tree outputs == sequential paths (bit-identical), %d nodes", checked);
    CHECK_MSG(kids_ok, "children == the draft's top-k at the sequential path");
    CHECK(checked == 1 + tc->levels * tc->topk);

    hass_tree_free(&t);
    hass_expander_free(&x);
    hass_draft_state_free(&ds);
    hass_draft_state_free(&seq);
    free(f), free(h), free(ctx_out), free(tok), free(pos);
    hass_draft_free(dr);
    hass_aligned_free(params);
    hass_model_free(m);
}

/* hass quantize --draft: a draft head written with its matrices in a GGUF block type loads
 * with them kept quantized, computes what the float head computes up to the quantization
 * error (relative: BF16 ~0.1%, Q8_0 ~1%, Q4_K ~10%; an unrelated head is ~100%), the same bytes
 * every run; rows that are not whole blocks and non-finite block scales are refused. */
static void test_quantized_draft(void) {
    hass_model *m = make_target(256, 4, 2, 512, 300, ROPE_PLAIN, 5);
    hass_draft *dr;
    hass_trainer *tr = make_pair(m, 1, 8, 1, &dr);
    hass_trainer_destroy(tr);
    const int64_t T = 8, D = 256;
    float *f = malloc(sizeof(float) * (size_t)(T * D)),
          *ref = malloc(sizeof(float) * (size_t)(T * D)),
          *out = malloc(sizeof(float) * (size_t)(T * D));
    int32_t tok[8], pos[8];
    hass_rng rng;
    hass_rng_seed(&rng, 3);
    for (int64_t i = 0; i < T * D; i++)
        f[i] = 2.0f * hass_rng_uniform(&rng) - 1.0f;
    for (int i = 0; i < T; i++)
        tok[i] = (int32_t)(i * 37 % 300), pos[i] = i;
    hass_err err = {0};
    hass_draft_state s;
    HASS_ASSERT(hass_draft_state_init(&s, dr, T, T, NULL, &err) == HASS_OK);
    CHECK(hass_draft_forward(&s, NULL, T, f, tok, pos, ref, &err) == HASS_OK);
    hass_draft_state_free(&s);
    char src[300], dst[300], dst2[300], path[340];
    snprintf(src, sizeof src, "%s/draft", tmpdir);
    const hass_dtype ts[] = {HASS_DTYPE_Q8_0, HASS_DTYPE_Q4_K, HASS_DTYPE_Q5_0, HASS_DTYPE_BF16};
    const double tol[] = {0.03, 0.25, 0.12, 0.01};
    for (int k = 0; k < 4; k++) {
        snprintf(dst, sizeof dst, "%s/draft_%s", tmpdir, hass_dtype_name(ts[k]));
        snprintf(dst2, sizeof dst2, "%s/draft_%s_again", tmpdir, hass_dtype_name(ts[k]));
        CHECK_MSG(hass_draft_quantize(src, dst, ts[k], &err) == HASS_OK, "%s", err.msg);
        CHECK(hass_draft_quantize(src, dst2, ts[k], &err) == HASS_OK);
        char *a = NULL, *b = NULL;
        size_t na = 0, nb = 0;
        snprintf(path, sizeof path, "%s/model.gguf", dst);
        CHECK(hass_read_file(path, &a, &na, &err) == HASS_OK);
        snprintf(path, sizeof path, "%s/model.gguf", dst2);
        CHECK(hass_read_file(path, &b, &nb, &err) == HASS_OK);
        CHECK_MSG(a && b && na == nb && !memcmp(a, b, na), "%s: not deterministic",
                  hass_dtype_name(ts[k]));
        free(b);
        hass_draft *q = hass_draft_load(dst, m, &err);
        CHECK_MSG(q != NULL, "%s", err.msg);
        if (q) {
            CHECK(q->fc_t == ts[k] && q->layer.tq == ts[k] && q->layer.td == ts[k] && q->fc_b);
            CHECK(q->weight_bytes * (ts[k] == HASS_DTYPE_BF16 ? 2 : 3) <= dr->weight_bytes);
            HASS_ASSERT(hass_draft_state_init(&s, q, T, T, NULL, &err) == HASS_OK);
            CHECK(hass_draft_forward(&s, NULL, T, f, tok, pos, out, &err) == HASS_OK);
            hass_draft_state_free(&s);
            double e = norm_err(out, ref, T * D);
            printf("quantized draft %s: normalised error %.3g\n", hass_dtype_name(ts[k]), e);
            CHECK_MSG(e > 0 && e < tol[k], "%s: error %g", hass_dtype_name(ts[k]), e);
            hass_draft_free(q);
        }
        /* a block scale made infinite: refused at load, naming the tensor */
        if (a && ts[k] == HASS_DTYPE_Q8_0) {
            hass_gguf g;
            CHECK(hass_gguf_open(&g, path, &err) == HASS_OK);
            const hass_tensor *t = hass_gguf_find_tensor(&g, "fc.weight");
            size_t off = t ? (size_t)((const char *)t->data - (const char *)g.mf.data) : 0;
            hass_gguf_close(&g);
            a[off] = 0x00, a[off + 1] = 0x7c; /* f16 +inf */
            CHECK(hass_write_file_atomic(path, a, na, &err) == HASS_OK);
            CHECK(hass_draft_load(dst2, m, &err) == NULL);
            CHECK_MSG(strstr(err.msg, "fc.weight") && strstr(err.msg, "non-finite"), "%s", err.msg);
        }
        free(a);
    }
    /* Q4_K needs rows of whole 256-blocks: a d = 64 head's take llama.cpp's fallback, Q5_0 */
    hass_draft_free(dr);
    hass_model_free(m);
    m = make_target(64, 4, 2, 96, 61, ROPE_PLAIN, 6);
    hass_trainer_destroy(make_pair(m, 0, 8, 1, &dr));
    snprintf(dst, sizeof dst, "%s/draft_small", tmpdir);
    CHECK(hass_draft_quantize(src, dst, HASS_DTYPE_Q4_K, &err) == HASS_OK);
    hass_draft *q = hass_draft_load(dst, m, &err);
    CHECK_MSG(q && q->fc_t == HASS_DTYPE_Q5_0 && q->layer.td == HASS_DTYPE_Q5_0 && !q->fc_b, "%s",
              err.msg);
    hass_draft_free(q);
    hass_draft_free(dr);
    hass_model_free(m);
    free(f);
    free(ref);
    free(out);
}

int main(void) {
    check_init("test_draft");
    /* fp32 products in training: the bf16 kernels (gemm.h, chosen by train-draft where they are
     * faster) round the operands on purpose, as mixed-precision training does */
    hass_gemm_set_default(HASS_GEMM_F32, NULL);
    snprintf(tmpdir, sizeof tmpdir, "%s", check_tmp());

    const fwd_case cases[] = {
        {64, 4, 2, 96, 61, 1, ROPE_PLAIN, 1},    {64, 4, 2, 96, 61, 1, ROPE_PLAIN, 9},
        {64, 4, 2, 96, 61, 0, ROPE_PLAIN, 70},   {48, 4, 4, 80, 37, 0, ROPE_PLAIN, 33},
        {64, 4, 1, 96, 61, 1, ROPE_LLAMA3, 9},   {64, 4, 2, 96, 61, 0, ROPE_LLAMA3, 70},
        {64, 4, 2, 96, 61, 1, ROPE_LLAMA3, 200}, {64, 4, 2, 96, 61, 1, ROPE_GGUF, 70},
        {32, 2, 1, 40, 29, 0, ROPE_GGUF, 17},    {64, 4, 2, 96, 61, 0, ROPE_LINEAR, 70},
    };
    double worst[2] = {0, 0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        test_train_vs_inference(&cases[i], worst);
    printf("train vs inference: worst normalised error h %.2g, logits %.2g\n", worst[0], worst[1]);
    test_recorded_rope();
    test_quantized_draft();

    const tree_case trees[] = {
        {32, 4, 2, 48, 50, 1, ROPE_PLAIN, 1, 3, 4, 0},
        {32, 4, 2, 48, 50, 0, ROPE_LLAMA3, 13, 4, 5, 0},
        {48, 3, 1, 64, 97, 1, ROPE_LLAMA3, 40, 2, 6, 0},
        {16, 2, 2, 24, 40, 0, ROPE_GGUF, 7, 1, 8, 0},
        {32, 4, 1, 48, 200, 1, ROPE_PLAIN, 9, 5, 3, 60},
        {64, 4, 2, 96, 61, 0, ROPE_LINEAR, 70, 6, 3, 0},
    };
    for (size_t i = 0; i < sizeof trees / sizeof trees[0]; i++)
        for (uint64_t seed = 1; seed <= 3; seed++)
            test_tree_expansion(&trees[i], 100 * i + seed);

    return check_exit();
}
