/*
 * test_tree.c — EAGLE-2 tree invariants on random candidate sets: the selection is the top m
 * by (score desc, depth asc, index asc) and connected; parents precede children; depths and
 * the tree mask equal a brute-force ancestor closure; sibling lists are complete and in
 * flattened order; greedy verification follows the target's argmax and returns the bonus.
 */
#include "check.h"
#include "tree/tree.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int before(const hass_cand *c, int a, int b) {
    if (c[a].score != c[b].score)
        return c[a].score > c[b].score;
    if (c[a].depth != c[b].depth)
        return c[a].depth < c[b].depth;
    return a < b;
}

static void build_random(hass_tree *t, hass_rng *rng, int levels, int k, int ties) {
    hass_tree_reset(t);
    int32_t ids[HASS_TREE_MAX_TOPK];
    float lp[HASS_TREE_MAX_TOPK];
    for (int i = 0; i < k; i++) {
        ids[i] = i;
        lp[i] = ties ? -(float)(i / 2) : -(float)i * 0.7f - hass_rng_uniform(rng);
    }
    hass_tree_add_children(t, -1, ids, lp, k, 0);
    hass_tree_set_frontier(t, 0, t->n_cand, k);
    for (int l = 0; l < levels; l++) {
        int32_t first = t->n_cand;
        for (int f = 0; f < t->n_frontier; f++) {
            float acc = 0;
            for (int i = 0; i < k; i++) {
                ids[i] = (int32_t)(hass_rng_u64(rng) % 1000);
                acc += ties ? 0.0f : 0.2f + hass_rng_uniform(rng);
                lp[i] = ties && i < 2 ? 0.0f : -acc;
            }
            hass_tree_add_children(t, t->frontier[f], ids, lp, k, f);
        }
        hass_tree_set_frontier(t, first, t->n_cand, k);
    }
}

static void check_tree(hass_tree *t, int m) {
    double gain[HASS_TREE_MAX_NODES + 1];
    int mm = m < HASS_TREE_MAX_NODES - 1 ? m : HASS_TREE_MAX_NODES - 1;
    hass_tree_rank(t, gain, mm);
    /* order is a sorted permutation */
    int sorted = 1;
    for (int i = 1; i < t->n_cand; i++)
        sorted &= !before(t->cand, t->order[i], t->order[i - 1]);
    CHECK_MSG(sorted, "rank order");
    hass_tree_select(t, 77, mm);
    int sel = mm < t->n_cand ? mm : t->n_cand;
    CHECK_EQ_INT(t->n, sel + 1);
    CHECK(t->tokens[0] == 77 && t->parents[0] == -1 && t->depth[0] == 0);
    /* the selected set is exactly the top sel candidates */
    int ok = 1;
    char *is_sel = calloc((size_t)t->n_cand, 1);
    for (int i = 1; i < t->n; i++)
        is_sel[t->cand_of[i]] = 1;
    for (int i = 0; i < sel; i++)
        ok &= is_sel[t->order[i]];
    CHECK_MSG(ok, "selection == top-m");
    double est = 0;
    for (int i = 1; i < t->n; i++) {
        const hass_cand *c = &t->cand[t->cand_of[i]];
        int p = t->parents[i];
        ok &= p >= 0 && p < i;
        ok &= t->depth[i] == t->depth[p] + 1 && t->depth[i] == c->depth;
        ok &= c->parent < 0 ? p == 0 : t->cand_of[p] == c->parent;
        ok &= t->tokens[i] == c->tok;
        ok &= i == 1 || t->cand_of[i] > t->cand_of[i - 1];
        est += exp((double)c->score);
    }
    CHECK_MSG(ok, "parents, depths, candidate order");
    CHECK(fabs(est - t->est_accept) < 1e-9 * (1 + est));
    CHECK(fabs(gain[sel] - est) < 1e-9 * (1 + est));
    /* mask == ancestor closure, brute force */
    uint64_t mask[HASS_TREE_MAX_NODES * 2];
    hass_tree_mask(t, mask);
    int W = (t->n + 63) / 64;
    for (int i = 0; i < t->n; i++)
        for (int j = 0; j < t->n; j++) {
            int anc = 0;
            for (int x = i; x >= 0; x = t->parents[x])
                anc |= x == j;
            ok &= anc == (int)((mask[i * W + j / 64] >> (j % 64)) & 1);
        }
    CHECK_MSG(ok, "tree mask == ancestor closure");
    /* sibling lists: every child once, increasing flattened index */
    int seen[HASS_TREE_MAX_NODES] = {0};
    for (int i = 0; i < t->n; i++) {
        int prev = -1;
        for (int c = t->first_child[i]; c >= 0; c = t->next_sibling[c]) {
            ok &= t->parents[c] == i && c > prev;
            prev = c;
            seen[c]++;
        }
    }
    for (int i = 1; i < t->n; i++)
        ok &= seen[i] == 1;
    CHECK_MSG(ok, "sibling lists");
    free(is_sel);
}

int main(void) {
    check_init("test_tree");
    hass_err err = {0};
    hass_tree t;
    CHECK(hass_tree_init(&t, 64 + 16 * 64 * 64, &err) == HASS_OK);
    hass_rng rng;
    hass_rng_seed(&rng, 5);
    int ms[] = {0, 1, 2, 7, 16, 33, 63};
    for (int ties = 0; ties < 2; ties++)
        for (int levels = 0; levels <= 6; levels += 2)
            for (int k = 1; k <= 10; k += 3)
                for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
                    build_random(&t, &rng, levels, k, ties);
                    check_tree(&t, ms[i]);
                }
    /* greedy verification: root 5 -> children {1, 2}; 2 -> {3}; target argmax 2 then 3 then 9 */
    hass_tree_reset(&t);
    int32_t ids[2] = {1, 2}, ids2[1] = {3};
    float lp[2] = {-0.1f, -0.2f}, lp2[1] = {-0.1f};
    hass_tree_add_children(&t, -1, ids, lp, 2, 0);
    hass_tree_set_frontier(&t, 0, 2, 2);
    hass_tree_add_children(&t, 1, ids2, lp2, 1, 1);
    double gain[8];
    hass_tree_rank(&t, gain, 3);
    hass_tree_select(&t, 5, 3);
    CHECK_EQ_INT(t.n, 4);
    const int V = 10;
    float logits[4 * 10] = {0};
    /* nodes: 0 root(5), 1 tok1, 2 tok2, 3 tok3 (child of node 2) */
    logits[0 * V + 2] = 1;
    logits[2 * V + 3] = 1;
    logits[3 * V + 9] = 1;
    logits[1 * V + 4] = 1;
    hass_sampler s;
    hass_sampler_params sp = {0, 0, 1, 0};
    CHECK(hass_sampler_init(&s, &sp, V, &err) == HASS_OK);
    float probs[10];
    int32_t path[8], bonus = -1;
    int32_t np = hass_tree_verify(&t, logits, V, &s, probs, path, &bonus);
    CHECK_EQ_INT(np, 3);
    CHECK(path[0] == 0 && path[1] == 2 && path[2] == 3 && bonus == 9);
    /* sampling with a one-hot target on token 2: child 1 rejected, child 2 accepted, then at
     * node 3 the target says 9 for sure */
    hass_sampler_free(&s);
    sp = (hass_sampler_params){1, 0, 1, 7};
    CHECK(hass_sampler_init(&s, &sp, V, &err) == HASS_OK);
    for (int i = 0; i < 4 * V; i++)
        logits[i] = logits[i] > 0 ? 60.0f : 0.0f;
    np = hass_tree_verify(&t, logits, V, &s, probs, path, &bonus);
    CHECK(np == 3 && path[1] == 2 && path[2] == 3 && bonus == 9);
    hass_sampler_free(&s);
    hass_tree_free(&t);
    return check_exit();
}
