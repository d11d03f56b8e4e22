/*
 * test_sample.c — the sampler against straightforward references: the processed distribution
 * (temperature, top-k, top-p) computed naively in double, argmax ties, seeded determinism, and
 * empirical frequencies of hass_sample_probs.
 */
#include "check.h"
#include "sample/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* naive: softmax(l/T) in double, keep the top-k (ties by id), then the smallest prefix whose
 * mass reaches top_p of the kept mass, renormalise */
static void ref_probs(const float *l, int V, float T, int top_k, float top_p, double *p) {
    double mx = -INFINITY, s = 0;
    for (int i = 0; i < V; i++)
        mx = fmax(mx, l[i] / T);
    for (int i = 0; i < V; i++)
        s += p[i] = exp(l[i] / T - mx);
    for (int i = 0; i < V; i++)
        p[i] /= s;
    int *ord = malloc(sizeof(int) * (size_t)V);
    for (int i = 0; i < V; i++)
        ord[i] = i;
    for (int i = 0; i < V; i++) /* selection sort: descending prob, ascending id */
        for (int j = i + 1; j < V; j++)
            if (p[ord[j]] > p[ord[i]] || (p[ord[j]] == p[ord[i]] && ord[j] < ord[i])) {
                int t = ord[i];
                ord[i] = ord[j];
                ord[j] = t;
            }
    int keep = top_k > 0 && top_k < V ? top_k : V;
    if (top_p > 0 && top_p < 1) {
        double tot = 0, cum = 0;
        for (int i = 0; i < keep; i++)
            tot += p[ord[i]];
        int k = 0;
        while (k < keep) {
            cum += p[ord[k++]];
            if (cum >= top_p * tot)
                break;
        }
        keep = k;
    }
    double kept = 0;
    for (int i = 0; i < keep; i++)
        kept += p[ord[i]];
    for (int i = keep; i < V; i++)
        p[ord[i]] = 0;
    for (int i = 0; i < keep; i++)
        p[ord[i]] /= kept;
    free(ord);
}

int main(void) {
    check_init("test_sample");
    hass_err err = {0};
    hass_rng rng;
    hass_rng_seed(&rng, 1);
    const int V = 97;
    float l[97], pr[97];
    double want[97];
    struct {
        float T;
        int k;
        float p;
    } cases[] = {{1, 0, 1},        {0.7f, 0, 0.9f}, {1.3f, 5, 1},
                 {0.5f, 10, 0.5f}, {1, 1, 1},       {2, 0, 0.1f}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        hass_sampler s;
        hass_sampler_params sp = {cases[c].T, cases[c].k, cases[c].p, 3};
        CHECK(hass_sampler_init(&s, &sp, V, &err) == HASS_OK);
        for (int trial = 0; trial < 5; trial++) {
            for (int i = 0; i < V; i++)
                l[i] = 4 * hass_rng_normal(&rng);
            if (trial == 4)
                for (int i = 0; i < V; i++)
                    l[i] = (float)(i % 3); /* many ties */
            hass_sampler_probs(&s, l, pr);
            ref_probs(l, V, cases[c].T, cases[c].k, cases[c].p, want);
            float wf[97];
            for (int i = 0; i < V; i++)
                wf[i] = (float)want[i];
            char label[64];
            snprintf(label, sizeof label, "probs T=%g k=%d p=%g trial %d", cases[c].T, cases[c].k,
                     cases[c].p, trial);
            CHECK_CLOSE(pr, wf, V, 1e-6, 1e-4, label);
        }
        hass_sampler_free(&s);
    }
    /* greedy: argmax, first of ties */
    float t[6] = {1, 3, 3, -1, 2, 3};
    CHECK_EQ_INT(hass_argmax(t, 6), 1);
    hass_sampler g;
    hass_sampler_params gp = {0, 0, 1, 0};
    CHECK(hass_sampler_init(&g, &gp, 6, &err) == HASS_OK);
    float sc[6];
    CHECK_EQ_INT(hass_sample(&g, t, sc), 1);
    hass_sampler_probs(&g, t, sc);
    CHECK(sc[1] == 1.0f && sc[2] == 0.0f);
    hass_sampler_free(&g);
    /* seeded determinism and frequencies */
    hass_sampler a, b;
    hass_sampler_params sp = {1, 0, 1, 42};
    CHECK(hass_sampler_init(&a, &sp, V, &err) == HASS_OK &&
          hass_sampler_init(&b, &sp, V, &err) == 0);
    for (int i = 0; i < V; i++)
        l[i] = (float)(i % 7) * 0.3f;
    int same = 1;
    float s1[97], s2[97];
    long cnt[97] = {0};
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        int32_t x = hass_sample(&a, l, s1), y = hass_sample(&b, l, s2);
        same &= x == y;
        cnt[x]++;
    }
    CHECK_MSG(same, "same seed, same samples");
    hass_sampler_probs(&a, l, pr);
    double chi = 0;
    for (int i = 0; i < V; i++) {
        double ex = pr[i] * N;
        chi += (cnt[i] - ex) * (cnt[i] - ex) / ex;
    }
    CHECK_MSG(chi < 180, "sample frequencies fit the distribution (chi2 %.1f, 96 df)", chi);
    hass_sampler_free(&a);
    hass_sampler_free(&b);
    /* invalid parameters */
    hass_sampler bad;
    hass_sampler_params bp = {-1, 0, 1, 0};
    CHECK(hass_sampler_init(&bad, &bp, V, &err) == HASS_STATUS_ARG);
    bp = (hass_sampler_params){1, -2, 1, 0};
    CHECK(hass_sampler_init(&bad, &bp, V, &err) == HASS_STATUS_ARG);
    bp = (hass_sampler_params){1, 0, 1.5f, 0};
    CHECK(hass_sampler_init(&bad, &bp, V, &err) == HASS_STATUS_ARG);
    return check_exit();
}
