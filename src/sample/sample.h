/*
 * sample — turning logits into tokens: greedy, temperature, top-k, top-p; seeded and
 * deterministic for a seed. The processed distribution is exposed on its own because lossless
 * speculative verification (HASS.md 6.6) must apply exactly the same processing to every
 * target distribution, the bonus token's included.
 */
#ifndef HASS_SAMPLE_H
#define HASS_SAMPLE_H

#include "core/core.h"

typedef struct {
    float temperature; /* 0 = greedy */
    int top_k;         /* 0 = off */
    float top_p;       /* 1 (or 0) = off */
    uint64_t seed;
} hass_sampler_params;

typedef struct {
    hass_sampler_params p;
    int64_t V;
    hass_rng rng;
    void *pairs; /* (V) (prob, id) scratch for top-k/top-p */
} hass_sampler;

hass_status hass_sampler_init(hass_sampler *s, const hass_sampler_params *p, int64_t V,
                              hass_err *err);
void hass_sampler_free(hass_sampler *s);
/* New parameters (same V) and a reseeded rng, without reallocating. */
hass_status hass_sampler_reset(hass_sampler *s, const hass_sampler_params *p, hass_err *err);
static inline int hass_sampler_greedy(const hass_sampler *s) {
    return s->p.temperature <= 0;
}

/* First index of the maximum (ties go to the lowest id). */
int32_t hass_argmax(const float *x, int64_t n);

/* probs (V) = the processed distribution: softmax(logits / T) restricted to the top-k ids and
 * then to the smallest top-p nucleus, renormalised. Zero outside the kept set. Greedy
 * samplers get a one-hot at the argmax. logits and probs may alias. */
void hass_sampler_probs(hass_sampler *s, const float *logits, float *probs);

/* Draws an id from a distribution (sum ~ 1) with the sampler's rng. */
int32_t hass_sample_probs(hass_sampler *s, const float *probs, int64_t n);

/* hass_sampler_probs then hass_sample_probs (argmax when greedy). scratch: (V) floats. */
int32_t hass_sample(hass_sampler *s, const float *logits, float *scratch);

#endif
