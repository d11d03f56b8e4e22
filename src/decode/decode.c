/*
 * decode.c — the generation loops (HASS.md 6.2–6.8) and their metrics: plain decoding, and
 * speculative decoding as a cycle of four steps (N = committed target positions, r = the root
 * token, already emitted):
 *   1. draft:  the proposer catches up on the committed pairs (the draft head: pairs
 *              (f_i, t_{i+1}) built from the target's TRUE features; its output h estimates f_N)
 *              and grows a tree level by level (the root's children first) while the policy says
 *              one more level pays; the policy picks the m nodes to verify;
 *   2. verify: the target runs root + the m nodes in one forward with a tree mask;
 *   3. accept: the longest path the target agrees with (greedy), or the lossless multi-candidate
 *              test (sampling), and a bonus token drawn at its end;
 *   4. commit: the accepted rows stay in the target's KV cache, their pairs are queued for the
 *              proposer, the policy learns from the cycle; the accepted tokens and the bonus are
 *              emitted and the bonus is the next root.
 * What grows the tree is behind propose.h (the draft head, or a test oracle); how large it grows
 * is behind policy.h (the cost model).
 */
#include "decode/decode.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TGT_BATCH 64 /* target rows per forward: prefill chunk and largest tree */
/* Positions the engine holds before its first generation (or all of a smaller context): enough
 * for the cost and kernel measurements (64 context rows + 64-row forwards, policy.c). */
#define FIRST_CAP 256

struct hass_engine {
    const hass_model *m;
    const hass_tokenizer *tok;
    hass_pool *pool;
    int64_t ctx; /* the context: the most positions a generation may reach */
    hass_kv kv;  /* kv.cap positions held now: grown to what each generation can use */
    hass_sampler sampler;
    float *logits; /* (TGT_BATCH, V) */
    float *feats;  /* (TGT_BATCH, d) */
    float *probs;  /* (V) */
    int32_t stop_ids[2 * HASS_MAX_STOP];
    int n_stop;
    int32_t *seq; /* (kv.cap + 1 + HASS_TREE_MAX_DEPTH): committed tokens, the root, a
                     proposer's scratch */
    /* speculative decoding */
    hass_proposer *prop; /* &ex.base, &oracle.base, or NULL (no draft: plain decoding only) */
    hass_draft_state ds; /* the draft head's, when there is one */
    hass_expander ex;
    hass_oracle oracle;
    hass_policy policy; /* kept across generations: the same target and proposer */
    hass_tree tree;
    float *feat_pos;   /* (kv.cap, d): the target's feature at every committed position */
    int32_t *pend_tok; /* (kv.cap): committed pairs the proposer has not seen (their features:
                          the last n_pend positions of feat_pos) */
    int64_t n_pend;
};

void hass_engine_set_oracle(hass_engine *e, hass_oracle_fn fn, void *user) {
    hass_oracle_init(&e->oracle, fn, user, e->m->cfg.V);
    e->prop = fn ? &e->oracle.base : e->ex.dr ? &e->ex.base : NULL;
}

const hass_kv *hass_engine_kv(const hass_engine *e) {
    return &e->kv;
}
int64_t hass_engine_ctx(const hass_engine *e) {
    return e->ctx;
}
const int32_t *hass_engine_seq(const hass_engine *e) {
    return e->seq;
}

int hass_engine_is_stop(const hass_engine *e, int32_t tok) {
    for (int i = 0; i < e->n_stop; i++)
        if (e->stop_ids[i] == tok)
            return 1;
    return 0;
}

void hass_engine_destroy(hass_engine *e) {
    if (!e)
        return;
    hass_kv_free(&e->kv);
    hass_sampler_free(&e->sampler);
    hass_expander_free(&e->ex);
    hass_draft_state_free(&e->ds);
    hass_tree_free(&e->tree);
    void *ps[] = {e->logits, e->feats, e->probs, e->feat_pos, e->pend_tok, e->seq};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        hass_aligned_free(ps[i]);
    free(e);
}

/* The buffers sized by the positions held (kv.cap = cap): the committed rows of feat_pos and
 * seq are kept (kv.n of them; the KV cache keeps its own), the draft state starts afresh (each
 * generation starts the proposer on a new context). */
static hass_status alloc_positions(hass_engine *e, int64_t cap, hass_err *err) {
    int64_t d = e->m->cfg.d, n = e->kv.n;
    float *fp = hass_aligned_alloc((size_t)(cap * d) * sizeof(float));
    int32_t *pt = hass_aligned_alloc((size_t)cap * sizeof(int32_t));
    int32_t *sq = hass_aligned_alloc((size_t)(cap + 1 + HASS_TREE_MAX_DEPTH) * sizeof(int32_t));
    if (!fp || !pt || !sq) {
        hass_aligned_free(fp);
        hass_aligned_free(pt);
        hass_aligned_free(sq);
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory for a context of %lld",
                            (long long)cap);
    }
    if (e->feat_pos) {
        memcpy(fp, e->feat_pos, (size_t)(n * d) * sizeof(float));
        memcpy(sq, e->seq, (size_t)n * sizeof(int32_t));
    }
    hass_aligned_free(e->feat_pos);
    hass_aligned_free(e->pend_tok);
    hass_aligned_free(e->seq);
    e->feat_pos = fp, e->pend_tok = pt, e->seq = sq;
    if (!e->ex.dr || e->ds.cap >= cap)
        return HASS_OK;
    const hass_draft *dr = e->ex.dr;
    hass_draft_state_free(&e->ds);
    return hass_draft_state_init(&e->ds, dr, cap, TGT_BATCH, e->pool, err);
}

/* Holds at least min(need, ctx) positions: grown by half at least (a conversation that grows
 * turn by turn reallocates a few times), never past the context. */
static hass_status reserve(hass_engine *e, int64_t need, hass_err *err) {
    if (need > e->ctx)
        need = e->ctx;
    if (need <= e->kv.cap)
        return HASS_OK;
    int64_t cap = e->kv.cap + e->kv.cap / 2;
    cap = cap < need ? need : cap > e->ctx ? e->ctx : cap;
    hass_status st = hass_kv_grow(&e->kv, cap, e->pool, err);
    return st ? st : alloc_positions(e, cap, err);
}

hass_engine *hass_engine_create(const hass_model *m, const hass_tokenizer *tok,
                                const hass_draft *draft, hass_pool *pool, int64_t ctx,
                                hass_err *err) {
    const hass_model_config *c = &m->cfg;
    if (ctx <= 0)
        ctx = c->max_ctx;
    if (ctx < 2 || ctx > (1 << 22)) {
        hass_err_set(err, HASS_STATUS_ARG, "context of %lld positions: not in 2..%d",
                     (long long)ctx, 1 << 22);
        return NULL;
    }
    hass_engine *e = calloc(1, sizeof *e);
    if (!e) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        return NULL;
    }
    e->m = m;
    e->tok = tok;
    e->pool = pool;
    e->ctx = ctx;
    hass_policy_init(&e->policy);
    int64_t cap = ctx < FIRST_CAP ? ctx : FIRST_CAP;
    int64_t B = TGT_BATCH < cap ? TGT_BATCH : cap, V = c->V, d = c->d;
    hass_sampler_params sp = {0, 0, 1.0f, 0};
    if (hass_kv_init(&e->kv, m, cap, B, pool, err) || hass_sampler_init(&e->sampler, &sp, V, err))
        goto fail;
    for (int i = 0; i < c->n_stop; i++)
        e->stop_ids[e->n_stop++] = c->stop_ids[i];
    if (tok) {
        int32_t ids[HASS_MAX_STOP];
        int k = hass_tokenizer_stop_ids(tok, ids, HASS_MAX_STOP);
        for (int i = 0; i < k && i < HASS_MAX_STOP; i++)
            if (!hass_engine_is_stop(e, ids[i]))
                e->stop_ids[e->n_stop++] = ids[i];
    }
    if (draft) {
        if (hass_draft_state_init(&e->ds, draft, cap, TGT_BATCH, pool, err) ||
            hass_expander_init(&e->ex, draft, &e->ds, pool, err))
            goto fail;
        e->prop = &e->ex.base;
    }
    if (hass_tree_init(&e->tree,
                       HASS_TREE_MAX_TOPK +
                           HASS_TREE_MAX_LEVELS * HASS_TREE_MAX_TOPK * HASS_TREE_MAX_TOPK,
                       err))
        goto fail;
    e->logits = hass_aligned_alloc((size_t)(B * V) * sizeof(float));
    e->feats = hass_aligned_alloc((size_t)(B * d) * sizeof(float));
    e->probs = hass_aligned_alloc((size_t)V * sizeof(float));
    if (!e->logits || !e->feats || !e->probs) {
        hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto fail;
    }
    if (alloc_positions(e, cap, err))
        goto fail;
    return e;
fail:
    hass_engine_destroy(e);
    return NULL;
}

/* ---- emission ---- */
typedef struct {
    hass_engine *e;
    const hass_gen_params *p;
    hass_token_fn fn;
    void *user;
    int32_t *out;
    hass_gen_stats *st;
} emitter;

/* Returns 1 when generation must stop. */
static int emit(emitter *em, int32_t tok) {
    if (hass_engine_is_stop(em->e, tok)) {
        em->st->stop = HASS_STOP_EOS;
        return 1;
    }
    if (em->out)
        em->out[em->st->n_generated] = tok;
    em->st->n_generated++;
    if (em->fn && em->fn(tok, em->user)) {
        em->st->stop = HASS_STOP_NONE;
        return 1;
    }
    if (em->st->n_generated >= em->p->max_new) {
        em->st->stop = HASS_STOP_LENGTH;
        return 1;
    }
    return 0;
}

/* NaN or infinite weights show up as non-finite logits: an error at the first one (the rows
 * decoding reads), never a token drawn from garbage. */
static hass_status check_logits(const hass_engine *e, int64_t rows, int64_t pos, hass_err *err) {
    int64_t V = e->m->cfg.V;
    for (int64_t i = 0; i < rows * V; i++)
        if (!isfinite(e->logits[i]))
            return hass_err_set(err, HASS_STATUS_RANGE,
                                "target: logit %lld at position %lld is %g (NaN or infinite "
                                "weights in the model?)",
                                (long long)(i % V), (long long)(pos + i / V), (double)e->logits[i]);
    return HASS_OK;
}

/* The prompt after the kept prefix (kv.n tokens, already in the cache) into the cache and
 * e->seq, the features of its positions into feat_pos, the last row's logits into e->logits. */
static hass_status prefill(hass_engine *e, const int32_t *prompt, int64_t n_prompt, emitter *em,
                           hass_err *err) {
    double t0 = hass_now();
    int64_t keep = e->kv.n;
    hass_status st = hass_model_prefill(e->m, &e->kv, e->pool, n_prompt - keep, prompt + keep,
                                        e->logits, e->feat_pos + keep * e->m->cfg.d, err);
    memcpy(e->seq, prompt, (size_t)n_prompt * sizeof(int32_t));
    em->st->prefill_seconds = hass_now() - t0;
    return st;
}

static hass_status generate_plain(hass_engine *e, const int32_t *prompt, int64_t n_prompt,
                                  emitter *em, hass_err *err) {
    hass_status st = prefill(e, prompt, n_prompt, em, err);
    if (st || (st = check_logits(e, 1, n_prompt - 1, err)))
        return st;
    int32_t tok = hass_sample(&e->sampler, e->logits, e->probs);
    while (!emit(em, tok)) {
        if (e->kv.n + 1 > e->kv.cap) {
            em->st->stop = HASS_STOP_LENGTH;
            break;
        }
        int32_t pos = (int32_t)e->kv.n;
        if ((st = hass_model_forward(e->m, &e->kv, e->pool, 1, &tok, &pos, NULL, e->logits, 0,
                                     e->feat_pos + pos * e->m->cfg.d, err)) ||
            (st = check_logits(e, 1, pos, err)))
            return st;
        hass_kv_commit(&e->kv, 1);
        e->seq[pos] = tok;
        em->st->target_forwards++;
        tok = hass_sample(&e->sampler, e->logits, e->probs);
    }
    em->st->cycles = em->st->target_forwards;
    return HASS_OK;
}

/* ---- speculative decoding ---- */

/* Step 1: the proposer catches up and grows the tree while the policy asks for levels; returns
 * in *m the number of candidates to verify (the tree is ranked). */
static hass_status draft(hass_engine *e, int32_t root, int64_t room, int64_t window, double c0,
                         hass_cycle_times *tm, int *m, hass_gen_stats *gs, hass_err *err) {
    hass_tree *t = &e->tree;
    hass_proposer *p = e->prop;
    hass_policy *pol = &e->policy;
    int64_t N = e->kv.n;
    e->seq[N] = root;
    hass_cycle c = {e->seq,      N,         e->feat_pos + (N - e->n_pend) * e->m->cfg.d,
                    e->pend_tok, e->n_pend, window};
    tm->fed = window > 0 && e->n_pend > window ? window : e->n_pend;
    hass_status st = p->start(p, &c, err);
    if (st)
        return st;
    e->n_pend = 0;
    tm->catch_up = hass_now() - c0;
    if ((st = p->propose(p, t, pol->topk, err))) /* the root's children */
        return st;
    while (hass_policy_expand(pol, t, room, hass_now() - c0)) {
        double tl = hass_now();
        if ((st = p->propose(p, t, pol->topk, err)))
            return st;
        double dt = hass_now() - tl;
        hass_policy_level(pol, dt);
        gs->draft_levels++;
        gs->draft_level_seconds += dt;
    }
    *m = hass_policy_nodes(pol, t, room, hass_now() - c0);
    return HASS_OK;
}

/* Step 4's bookkeeping: the accepted rows (path[0..np), flattened indices) stay in the KV cache
 * and their pairs (the target's feature there, the next token) are queued for the proposer. */
static void commit(hass_engine *e, const int32_t *path, int32_t np, int32_t bonus) {
    const hass_tree *t = &e->tree;
    int64_t N = e->kv.n, d = e->m->cfg.d;
    for (int32_t j = 0; j < np; j++)
        e->seq[N + j] = t->tokens[path[j]];
    hass_kv_keep(&e->kv, path, np);
    for (int32_t j = 0; j < np; j++) {
        memcpy(e->feat_pos + (N + j) * d, e->feats + (int64_t)path[j] * d,
               (size_t)d * sizeof(float));
        e->pend_tok[e->n_pend++] = j + 1 < np ? t->tokens[path[j + 1]] : bonus;
    }
}

static hass_status generate_spec(hass_engine *e, const int32_t *prompt, int64_t n_prompt,
                                 emitter *em, hass_err *err) {
    hass_gen_stats *gs = em->st;
    hass_policy *pol = &e->policy;
    hass_tree *t = &e->tree;
    int64_t V = e->m->cfg.V;
    hass_policy_begin(pol, &em->p->tree, e->prop->vocab < V ? e->prop->vocab : V);

    /* the prompt; its pairs (f_i, t_{i+1}) are queued (all of them, the kept prefix's too: the
     * proposer starts afresh as for a new context), the last one waits for the root */
    hass_status st = prefill(e, prompt, n_prompt, em, err);
    if (st || (st = check_logits(e, 1, n_prompt - 1, err)))
        return st;
    int32_t root = hass_sample(&e->sampler, e->logits, e->probs);
    memcpy(e->pend_tok, prompt + 1, (size_t)(n_prompt - 1) * sizeof(int32_t));
    e->pend_tok[n_prompt - 1] = root;
    e->n_pend = n_prompt;
    if (emit(em, root))
        return HASS_OK;
    int32_t path[HASS_TREE_MAX_NODES], pos[HASS_TREE_MAX_NODES];
    for (;;) {
        int64_t N = e->kv.n, window;
        if (N + 1 > e->kv.cap) {
            gs->stop = HASS_STOP_LENGTH;
            break;
        }
        int64_t room = e->kv.cap - N - 1; /* for draft nodes */
        double c0 = hass_now(), t_draft = 0;
        hass_cycle_times tm = {0};
        int m = 0;
        /* 1. draft */
        hass_tree_reset(t);
        if (hass_policy_cycle(pol, room, &window)) {
            if ((st = draft(e, root, room, window, c0, &tm, &m, gs, err)))
                return st;
            t_draft = hass_now() - c0;
        }
        hass_tree_select(t, root, m);
        /* 2. verify */
        double tv0 = hass_now();
        for (int32_t i = 0; i < t->n; i++)
            pos[i] = (int32_t)(N + t->depth[i]);
        if ((st = hass_model_forward(e->m, &e->kv, e->pool, t->n, t->tokens, pos, t->parents,
                                     e->logits, 0, e->feats, err)) ||
            (st = check_logits(e, t->n, N, err)))
            return st;
        /* 3. accept */
        int32_t bonus;
        int32_t np = hass_tree_verify(t, e->logits, V, &e->sampler, e->probs, path, &bonus);
        tm.verify = hass_now() - tv0;
        /* 4. commit */
        commit(e, path, np, bonus);
        int32_t A = np - 1;
        gs->target_forwards++;
        gs->cycles++;
        gs->nodes_verified += t->n - 1;
        for (int32_t k = 0; k <= A && k < HASS_TREE_MAX_DEPTH; k++)
            gs->accepted_at_depth[k]++;
        double c1 = hass_now();
        gs->draft_seconds += t_draft;
        gs->verify_seconds += tm.verify;
        tm.cycle = c1 - c0;
        hass_policy_observe(pol, t, A, &tm);
        /* the accepted drafts, then the bonus (the next root) */
        int stop = 0;
        for (int32_t j = 1; j < np && !stop; j++)
            stop = emit(em, t->tokens[path[j]]);
        if (!stop)
            stop = emit(em, bonus);
        gs->other_seconds += hass_now() - c1;
        if (stop)
            break;
        root = bonus;
    }
    return HASS_OK;
}

hass_status hass_generate(hass_engine *e, const int32_t *prompt, int64_t n_prompt,
                          const hass_gen_params *p, int spec, hass_token_fn on_token, void *user,
                          int32_t *tokens_out, hass_gen_stats *stats, hass_err *err) {
    hass_gen_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    stats->n_prompt = n_prompt;
    if (n_prompt <= 0)
        return hass_err_set(err, HASS_STATUS_ARG, "empty prompt (not even BOS)");
    if (n_prompt + 1 > e->ctx)
        return hass_err_set(err, HASS_STATUS_RANGE,
                            "prompt of %lld tokens does not fit the context of %lld",
                            (long long)n_prompt, (long long)e->ctx);
    for (int64_t i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= e->m->cfg.V)
            return hass_err_set(err, HASS_STATUS_RANGE, "prompt token %d out of range", prompt[i]);
    if (p->max_new <= 0)
        return HASS_OK;
    /* the positions this run can reach: the prompt, max_new tokens and a full tree past the
     * last of them (so a tree is never cut short for room, as in the whole context) */
    int64_t need = p->max_new < e->ctx - n_prompt - HASS_TREE_MAX_NODES
                       ? n_prompt + p->max_new + HASS_TREE_MAX_NODES
                       : e->ctx;
    hass_status st = reserve(e, need, err);
    if (st || (st = hass_sampler_reset(&e->sampler, &p->sampling, err)))
        return st;
    /* before any forward: plain and speculative runs use the same kernels (measured once, on the
     * cache, which then holds nothing to keep) */
    int fresh_tune = !e->policy.have_tune;
    hass_policy_tune(&e->policy, e->m, &e->kv, e->pool, e->logits);
    if (fresh_tune)
        hass_kv_truncate(&e->kv, 0);
    emitter em = {e, p, on_token, user, tokens_out, stats};
    spec = spec && e->prop;
    if (spec && p->tree.tokens <= 0 && !e->policy.have_costs) {
        /* measured (or read) once, outside the timed generation; it overwrites the cache */
        hass_policy_costs(&e->policy, e->m, &e->kv, e->pool, e->logits);
        hass_kv_truncate(&e->kv, 0);
    }
    /* the cached prefix the prompt shares with the last context; at least the prompt's last
     * token is run again, for its logits */
    int64_t keep = 0;
    if (p->keep_prefix)
        while (keep < e->kv.n && keep < n_prompt - 1 && e->seq[keep] == prompt[keep])
            keep++;
    hass_kv_truncate(&e->kv, keep);
    stats->n_prompt_cached = keep;
    double t0 = hass_now();
    if (spec)
        st = generate_spec(e, prompt, n_prompt, &em, err);
    else
        st = generate_plain(e, prompt, n_prompt, &em, err);
    stats->seconds = hass_now() - t0;
    stats->decode_seconds = stats->seconds - stats->prefill_seconds;
    if (stats->cycles > 0) {
        /* tokens produced by cycles: all but the first (which came from prefill) */
        stats->tau = (double)(stats->n_generated - 1 + (stats->stop == HASS_STOP_EOS)) /
                     (double)stats->cycles;
    }
    stats->tokens_per_s = stats->seconds > 0 ? (double)stats->n_generated / stats->seconds : 0;
    return st;
}

const hass_ops_tune *hass_engine_tune(hass_engine *e) {
    return hass_policy_tune(&e->policy, e->m, &e->kv, e->pool, e->logits);
}

const double *hass_engine_costs(hass_engine *e, int *n_max) {
    *n_max = HASS_COST_N;
    return hass_policy_costs(&e->policy, e->m, &e->kv, e->pool, e->logits);
}
