/*
 * test_policy.c — the tree-size policy of speculative decoding (src/decode/policy.c), which
 * decides from what it is told (no clock), so every decision can be checked exactly:
 *  - settings: --tree-depth D means D - 1 expansion levels (clamped to 0..HASS_TREE_MAX_LEVELS),
 *    top-k clamped to the proposer's vocabulary, the node cap;
 *  - a fixed node count: every cycle drafts every level and verifies min(tokens, room) nodes;
 *  - the cost model: no nodes when verifying costs as much per node as decoding, every useful
 *    node when verification is free; one more level only when its best case can pay;
 *  - a losing draft: plain steps with exponential backoff (4, 8, ... 128), probes of 8 pairs,
 *    back to drafting every cycle after a winning probe;
 *  - the cost curve: measured on a synthetic model (cost(1) = 1, non-decreasing, the cache's
 *    committed length restored), written to the cache directory, read back by a fresh policy.
 */
#include "check.h"
#include "decode/policy.h"

#include <math.h>

/* A tree whose root has children with probabilities probs[0..k) (descending). */
static void root_children(hass_tree *t, const double *probs, int k) {
    int32_t ids[8];
    float lp[8];
    for (int i = 0; i < k; i++) {
        ids[i] = i;
        lp[i] = (float)log(probs[i]);
    }
    hass_tree_reset(t);
    hass_tree_add_children(t, -1, ids, lp, k, 0);
    hass_tree_set_frontier(t, 0, t->n_cand, k);
    t->levels = 0;
}

/* A policy with a given cost curve: cost(n) = 1 + slope * (n - 1), t1 = 1 s. */
static void with_costs(hass_policy *p, double slope) {
    hass_policy_init(p);
    for (int n = 1; n <= HASS_COST_N; n++)
        p->cost[n] = 1 + slope * (n - 1);
    p->t1 = 1.0;
    p->have_costs = 1;
}

static void test_settings(void) {
    hass_policy p;
    hass_policy_init(&p);
    hass_tree_params tp = {6, 10, 20};
    hass_policy_begin(&p, &tp, 32000);
    CHECK(p.levels == 5 && p.topk == 10 && p.nodes_cap == 20 && p.fixed);
    tp = (hass_tree_params){1, 4, 50};
    hass_policy_begin(&p, &tp, 32000);
    CHECK(p.levels == 0 && p.nodes_cap == 4); /* the root's children only */
    tp = (hass_tree_params){HASS_TREE_MAX_DEPTH + 3, 100, 200};
    hass_policy_begin(&p, &tp, 3);
    CHECK(p.levels == HASS_TREE_MAX_LEVELS && p.topk == 3 &&
          p.nodes_cap == HASS_TREE_MAX_NODES - 1);
}

static void test_fixed(hass_tree *t) {
    hass_policy p;
    hass_policy_init(&p);
    hass_tree_params tp = {3, 3, 5};
    hass_policy_begin(&p, &tp, 100);
    double probs[3] = {0.5, 0.3, 0.1};
    int64_t window = -1;
    CHECK(hass_policy_cycle(&p, 100, &window) == 1 && window == 0);
    root_children(t, probs, 3);
    CHECK(hass_policy_expand(&p, t, 100, 1e9) == 1); /* levels are not priced */
    t->levels = 2;
    CHECK(hass_policy_expand(&p, t, 100, 0) == 0); /* depth 3: two levels */
    CHECK_EQ_INT(hass_policy_nodes(&p, t, 100, 1e9), 5);
    CHECK_EQ_INT(hass_policy_nodes(&p, t, 2, 0), 2); /* the context's room */
    hass_cycle_times tm = {0, 0, 1e9, 1e9};
    hass_policy_observe(&p, t, 0, &tm); /* learns nothing: still drafting */
    CHECK(hass_policy_cycle(&p, 100, &window) == 1 && p.backoff == 0);
}

static void test_cost_model(hass_tree *t) {
    hass_policy p;
    hass_tree_params tp = {4, 3, 0};
    double probs[3] = {0.5, 0.3, 0.1};
    int64_t window;
    /* every verified node costs a full forward: nothing pays */
    with_costs(&p, 1.0);
    hass_policy_begin(&p, &tp, 100);
    CHECK(hass_policy_cycle(&p, 100, &window) == 1);
    root_children(t, probs, 3);
    CHECK_EQ_INT(hass_policy_nodes(&p, t, 100, 0.0), 0);
    /* verification is free: every candidate with some probability is worth it */
    with_costs(&p, 0.0);
    hass_policy_begin(&p, &tp, 100);
    root_children(t, probs, 3);
    CHECK_EQ_INT(hass_policy_nodes(&p, t, 100, 0.0), 3);
    CHECK_EQ_INT(hass_policy_nodes(&p, t, 2, 0.0), 2);
    /* one more level: always while its cost is unknown; then only if the frontier's mass can
     * pay for a level's time */
    CHECK(hass_policy_expand(&p, t, 100, 0.0) == 1);
    hass_policy_level(&p, 0.25);
    CHECK(hass_policy_expand(&p, t, 100, 0.0) == 1); /* up to 2.8 tokens / 1.25 s > 1.9 / 1 s */
    double weak[3] = {1e-3, 1e-4, 1e-5};
    root_children(t, weak, 3);
    CHECK(hass_policy_expand(&p, t, 100, 0.0) == 0);
    t->levels = 3;
    CHECK(hass_policy_expand(&p, t, 100, 0.0) == 0); /* depth 4: three levels at most */
    /* a cost curve that is not flat and a wide top-k: the best case of one more level is one
     * child carrying its parent's mass, not all top-k children verified. With a confident first
     * node (0.9): best now 1 node, rate 1.9 / 1.1; one more level at best 2.8 / (0.1 + 1.2) */
    hass_tree_params wide = {4, 8, 0};
    with_costs(&p, 0.1);
    hass_policy_begin(&p, &wide, 100);
    double confident[8] = {0.9, 0.02, 0.01, 0.01, 0.01, 0.01, 0.01, 0.01};
    root_children(t, confident, 8);
    CHECK_EQ_INT(hass_policy_nodes(&p, t, 100, 0.0), 1);
    hass_policy_level(&p, 0.1);
    CHECK(hass_policy_expand(&p, t, 100, 0.0) == 1);
    /* the same level costing as much as a forward cannot pay: (1 + 1.8) / 2.2 < 1.9 / 1.1 */
    hass_policy_init(&p);
    with_costs(&p, 0.1);
    hass_policy_begin(&p, &wide, 100);
    hass_policy_level(&p, 1.0);
    CHECK(hass_policy_expand(&p, t, 100, 0.0) == 0);
}

static void test_backoff(hass_tree *t) {
    hass_policy p;
    with_costs(&p, 0.0);
    hass_tree_params tp = {4, 3, 0};
    hass_policy_begin(&p, &tp, 100);
    double probs[3] = {0.5, 0.3, 0.1};
    int64_t window;
    int want = 4, ok = 1;
    for (int round = 0; round < 8; round++) {
        /* a drafting cycle that accepts nothing and takes 10 plain steps' time */
        ok &= hass_policy_cycle(&p, 100, &window) == 1;
        ok &= window == (round ? 8 : 0); /* after plain steps: a probe of the last 8 pairs */
        root_children(t, probs, 3);
        hass_tree_select(t, 7, hass_policy_nodes(&p, t, 100, 0.0));
        hass_cycle_times tm = {0.1, 8, 1.0, 10.0};
        hass_policy_observe(&p, t, 0, &tm);
        ok &= p.backoff == want;
        /* then `backoff` plain steps */
        for (int k = 0; k < want; k++) {
            ok &= hass_policy_cycle(&p, 100, &window) == 0;
            hass_tree_reset(t);
            hass_tree_select(t, 7, 0);
            hass_cycle_times plain = {0, 0, 1.0, 1.0};
            hass_policy_observe(&p, t, 0, &plain);
        }
        want = want * 2 > 128 ? 128 : want * 2;
    }
    CHECK_MSG(ok, "backoff 4, 8, ..., 128 with probes in between");
    /* a winning probe: drafting every cycle again */
    CHECK(hass_policy_cycle(&p, 100, &window) == 1 && window == 8);
    root_children(t, probs, 3);
    hass_tree_select(t, 7, hass_policy_nodes(&p, t, 100, 0.0));
    hass_cycle_times fast = {0.01, 8, 1.0, 1.0};
    hass_policy_observe(&p, t, 3, &fast);
    CHECK(p.backoff == 0 && hass_policy_cycle(&p, 100, &window) == 1 && window == 0);
}

static void test_costs(void) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(32, 64, 1, 4, 2, 50, 256);
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, 5, &err);
    hass_kv kv;
    CHECK(m && hass_kv_init(&kv, m, 256, 64, NULL, &err) == HASS_OK);
    float *logits = malloc(64 * 50 * sizeof(float));
    int32_t tok[3] = {1, 2, 3};
    CHECK(hass_model_prefill(m, &kv, NULL, 3, tok, NULL, NULL, &err) == HASS_OK);
    hass_policy a, b;
    hass_policy_init(&a);
    hass_policy_init(&b);
    const double *cost = hass_policy_costs(&a, m, &kv, NULL, logits);
    int ok = cost[1] == 1.0 && a.t1 > 0;
    for (int n = 2; n <= HASS_COST_N; n++)
        ok &= cost[n] >= cost[n - 1];
    CHECK_MSG(ok, "cost(1) = 1, non-decreasing");
    CHECK_EQ_INT(kv.n, 3); /* the committed length is back */
    /* the cache file is in the test's directory, and a fresh policy reads it */
    DIR *d = opendir(check_path("cache"));
    int files = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        files += !strncmp(e->d_name, "cost-", 5);
    if (d)
        closedir(d);
    CHECK_EQ_INT(files, 1);
    hass_policy_costs(&b, m, &kv, NULL, logits);
    ok = fabs(b.t1 - a.t1) <= 1e-8 * a.t1;
    for (int n = 1; n <= HASS_COST_N; n++)
        ok &= fabs(b.cost[n] - a.cost[n]) <= 1e-6;
    CHECK_MSG(ok, "the cost curve read back from the cache");
    free(logits);
    hass_kv_free(&kv);
    hass_model_free(m);
}

int main(void) {
    check_init("test_policy");
    hass_tree t;
    hass_err err = {0};
    HASS_ASSERT(hass_tree_init(&t, 1000, &err) == HASS_OK);
    test_settings();
    test_fixed(&t);
    test_cost_model(&t);
    test_backoff(&t);
    test_costs();
    hass_tree_free(&t);
    return check_exit();
}
