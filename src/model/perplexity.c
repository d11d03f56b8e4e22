/*
 * perplexity.c — validation loss and perplexity of a model over a token stream, windowed the
 * way `hass pretrain` evaluates (pretrain_run.h): window w is tokens [w*ctx, w*ctx + ctx], its
 * first ctx tokens the input from an empty cache, each predicting the next; the loss is the
 * mean negative log-likelihood (nats) over every prediction of every window.
 */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PPL_CHUNK 64 /* rows per forward call */

/* -log softmax(logits)[target], in double. */
static double nll_row(const float *lg, int64_t V, int32_t target) {
    float mx = lg[0];
    for (int64_t v = 1; v < V; v++)
        mx = lg[v] > mx ? lg[v] : mx;
    double s = 0;
    for (int64_t v = 0; v < V; v++)
        s += exp((double)lg[v] - mx);
    return log(s) + mx - lg[target];
}

hass_status hass_model_perplexity(const hass_model *m, hass_pool *pool, const int32_t *ids,
                                  int64_t n, int64_t ctx, int64_t max_windows, hass_ppl_result *r,
                                  hass_err *err) {
    memset(r, 0, sizeof *r);
    if (ctx < 1 || ctx > m->cfg.max_ctx)
        return hass_err_set(err, HASS_STATUS_ARG, "perplexity: context %lld not in 1..%lld",
                            (long long)ctx, (long long)m->cfg.max_ctx);
    int64_t nwin = n > 1 ? (n - 1) / ctx : 0;
    if (max_windows > 0 && nwin > max_windows)
        nwin = max_windows;
    if (nwin < 1) /* the data's fault (or a --ctx too long for it): a data error */
        return hass_err_set(err, HASS_STATUS_RANGE,
                            "perplexity: %lld tokens, fewer than one window of %lld", (long long)n,
                            (long long)ctx + 1);
    int64_t V = m->cfg.V, chunk = ctx < PPL_CHUNK ? ctx : PPL_CHUNK;
    hass_kv kv;
    hass_status st = hass_kv_init(&kv, m, ctx, chunk, pool, err);
    if (st)
        return st;
    float *lg = malloc((size_t)(chunk * V) * sizeof *lg);
    int32_t *pos = malloc((size_t)chunk * sizeof *pos);
    if (!lg || !pos) {
        st = hass_err_set(err, HASS_STATUS_OOM, "out of memory");
        goto done;
    }
    hass_progress prog;
    hass_progress_init(&prog, "perplexity", "windows", nwin);
    double sum = 0, sum_w = 0, sum_w2 = 0;
    for (int64_t w = 0; w < nwin && !st; w++) {
        const int32_t *win = ids + w * ctx;
        double wsum = 0;
        hass_kv_truncate(&kv, 0);
        for (int64_t c0 = 0; c0 < ctx && !st; c0 += chunk) {
            int64_t k = ctx - c0 < chunk ? ctx - c0 : chunk;
            for (int64_t i = 0; i < k; i++)
                pos[i] = (int32_t)(c0 + i);
            st = hass_model_forward(m, &kv, pool, k, win + c0, pos, NULL, lg, 0, NULL, err);
            if (st)
                break;
            hass_kv_commit(&kv, k);
            for (int64_t i = 0; i < k; i++) {
                int32_t t = win[c0 + i + 1];
                if (t < 0 || t >= V) {
                    st = hass_err_set(err, HASS_STATUS_RANGE, "token id %d out of range", t);
                    break;
                }
                wsum += nll_row(lg + i * V, V, t);
            }
        }
        sum += wsum;
        sum_w += wsum / (double)ctx;
        sum_w2 += (wsum / (double)ctx) * (wsum / (double)ctx);
        hass_progress_update(&prog, w + 1);
    }
    if (!st) {
        r->n_windows = nwin;
        r->n_tokens = nwin * ctx;
        r->nll = sum / (double)r->n_tokens;
        r->ppl = exp(r->nll);
        double mean = sum_w / (double)nwin, var = sum_w2 / (double)nwin - mean * mean;
        r->nll_se = nwin > 1 ? sqrt(var > 0 ? var / (double)(nwin - 1) : 0) : 0;
    }
done:
    free(lg);
    free(pos);
    hass_kv_free(&kv);
    return st;
}
