/*
 * sample.c — logits processing (temperature, top-k, top-p) and seeded sampling.
 * Processing order follows Hugging Face's warpers: temperature, top-k, top-p.
 */
#include "sample/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    float p;
    int32_t id;
} prob_id;

static int by_prob_desc(const void *a, const void *b) {
    const prob_id *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return x->id < y->id ? -1 : (x->id > y->id); /* ties: lower id first (deterministic) */
}

hass_status hass_sampler_init(hass_sampler *s, const hass_sampler_params *p, int64_t V,
                              hass_err *err) {
    memset(s, 0, sizeof *s);
    if (!(p->temperature >= 0) || p->top_k < 0 || !(p->top_p >= 0 && p->top_p <= 1) || V <= 0)
        return hass_err_set(err, HASS_STATUS_ARG, "sampler: invalid parameters");
    s->p = *p;
    s->V = V;
    hass_rng_seed(&s->rng, p->seed);
    s->pairs = malloc((size_t)V * sizeof(prob_id));
    if (!s->pairs)
        return hass_err_set(err, HASS_STATUS_OOM, "out of memory");
    return HASS_OK;
}

hass_status hass_sampler_reset(hass_sampler *s, const hass_sampler_params *p, hass_err *err) {
    if (!(p->temperature >= 0) || p->top_k < 0 || !(p->top_p >= 0 && p->top_p <= 1))
        return hass_err_set(err, HASS_STATUS_ARG, "sampler: invalid parameters");
    s->p = *p;
    hass_rng_seed(&s->rng, p->seed);
    return HASS_OK;
}

void hass_sampler_free(hass_sampler *s) {
    if (s)
        free(s->pairs);
}

int32_t hass_argmax(const float *x, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return (int32_t)best;
}

void hass_sampler_probs(hass_sampler *s, const float *logits, float *probs) {
    int64_t V = s->V;
    if (hass_sampler_greedy(s)) {
        int32_t a = hass_argmax(logits, V);
        memset(probs, 0, (size_t)V * sizeof(float));
        probs[a] = 1.0f;
        return;
    }
    float inv_t = 1.0f / s->p.temperature, mx = -INFINITY;
    for (int64_t i = 0; i < V; i++)
        mx = fmaxf(mx, logits[i] * inv_t);
    double sum = 0;
    for (int64_t i = 0; i < V; i++) {
        probs[i] = expf(logits[i] * inv_t - mx);
        sum += probs[i];
    }
    for (int64_t i = 0; i < V; i++)
        probs[i] = (float)(probs[i] / sum);
    int top_k = s->p.top_k > 0 && s->p.top_k < V ? s->p.top_k : 0;
    if (!top_k && (s->p.top_p >= 1.0f || s->p.top_p <= 0.0f))
        return;
    /* sort every id by probability (only when top-k/top-p is on); ties broken by id */
    prob_id *pi = s->pairs;
    for (int64_t i = 0; i < V; i++)
        pi[i] = (prob_id){probs[i], (int32_t)i};
    qsort(pi, (size_t)V, sizeof *pi, by_prob_desc);
    int64_t keep = top_k ? top_k : V;
    if (s->p.top_p > 0.0f && s->p.top_p < 1.0f) {
        double cum = 0, tot = 0;
        for (int64_t i = 0; i < keep; i++)
            tot += pi[i].p;
        int64_t k2 = 0;
        while (k2 < keep) {
            cum += pi[k2++].p;
            if (cum >= s->p.top_p * tot)
                break;
        }
        keep = k2;
    }
    double kept = 0;
    for (int64_t i = 0; i < keep; i++)
        kept += pi[i].p;
    for (int64_t i = keep; i < V; i++)
        probs[pi[i].id] = 0;
    for (int64_t i = 0; i < keep; i++)
        probs[pi[i].id] = (float)(pi[i].p / kept);
}

int32_t hass_sample_probs(hass_sampler *s, const float *probs, int64_t n) {
    double u = hass_rng_uniform_d(&s->rng), cum = 0;
    int64_t last = -1;
    for (int64_t i = 0; i < n; i++) {
        if (probs[i] <= 0)
            continue;
        cum += probs[i];
        last = i;
        if (u < cum)
            return (int32_t)i;
    }
    return (int32_t)(last >= 0 ? last : 0); /* rounding: the last possible id */
}

int32_t hass_sample(hass_sampler *s, const float *logits, float *scratch) {
    if (hass_sampler_greedy(s))
        return hass_argmax(logits, s->V);
    hass_sampler_probs(s, logits, scratch);
    return hass_sample_probs(s, scratch, s->V);
}
