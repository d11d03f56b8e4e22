/*
 * test_spec.c — speculative decoding is lossless:
 *  - greedy: speculative output == plain greedy output, token for token, over many prompts
 *    and tree settings, with a freshly initialised draft head (stories260K and a synthetic
 *    model) and with a "perfect draft" oracle that proposes the target's own choices (deep
 *    accepted paths);
 *  - after a speculative generation the target's KV cache equals a fresh prefill of the text;
 *  - sampling: the joint distribution of the first 3 sampled tokens matches the exact
 *    distribution of the model (chi-square, 10^5 samples, fixed seeds) at T=1 and at T=0.7
 *    with top-p / top-k, for plain and speculative sampling;
 *  - bad draft files are rejected with a message.
 */
#include "check.h"
#include "decode/decode.h"
#include "formats/formats.h"
#include "train/draft_ckpt.h"

#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[256];

/* ---- greedy equality ---- */
typedef struct {
    int depth, topk, tokens;
} tree_cfg;

static void greedy_equal(hass_engine *e, const int32_t *prompt, int64_t np, int64_t n_new,
                         const tree_cfg *tc, const char *label, double *tau_out) {
    hass_gen_params p = {0};
    p.max_new = n_new;
    p.tree = (hass_tree_params){tc->depth, tc->topk, tc->tokens};
    int32_t *a = calloc((size_t)n_new, sizeof(int32_t)),
            *b = calloc((size_t)n_new, sizeof(int32_t));
    hass_gen_stats sa, sb;
    hass_err err = {0};
    CHECK(hass_generate(e, prompt, np, &p, 0, NULL, NULL, a, &sa, &err) == HASS_OK);
    hass_status st = hass_generate(e, prompt, np, &p, 1, NULL, NULL, b, &sb, &err);
    CHECK_MSG(st == HASS_OK, "%s", err.msg);
    int same = sa.n_generated == sb.n_generated && sa.stop == sb.stop &&
               memcmp(a, b, sizeof(int32_t) * (size_t)sa.n_generated) == 0;
    CHECK_MSG(same, "%s: speculative != plain (%lld vs %lld tokens)", label,
              (long long)sb.n_generated, (long long)sa.n_generated);
    if (tau_out)
        *tau_out = sb.tau;
    free(a);
    free(b);
}

/* ---- the perfect-draft oracle ---- */
typedef struct {
    const int32_t *ref; /* prompt + plain greedy continuation */
    int64_t n_ref;
    int64_t V;
    double p_right; /* log-prob given to the right token */
} oracle_ctx;

static void oracle(void *user, const int32_t *seq, int64_t n, int k, int32_t *ids, float *lp) {
    oracle_ctx *o = user;
    int on_ref = n < o->n_ref && memcmp(seq, o->ref, sizeof(int32_t) * (size_t)n) == 0;
    uint64_t h = 1469598103934665603ull;
    for (int64_t i = 0; i < n; i++)
        h = (h ^ (uint64_t)seq[i]) * 1099511628211ull;
    int m = 0;
    if (on_ref) {
        ids[m] = o->ref[n];
        lp[m++] = (float)log(o->p_right);
    }
    while (m < k) {
        h = h * 6364136223846793005ull + 1442695040888963407ull;
        int32_t t = (int32_t)((h >> 33) % (uint64_t)o->V);
        int dup = 0;
        for (int j = 0; j < m; j++)
            dup |= ids[j] == t;
        if (dup)
            continue;
        ids[m] = t;
        lp[m] = (float)log((1 - o->p_right) / (m + 1)) - 0.01f * (float)m;
        m++;
    }
}

static void test_perfect_draft(const hass_model *m, const hass_tokenizer *tok, hass_pool *pool,
                               const int32_t *prompt, int64_t np) {
    hass_err err = {0};
    hass_engine *e = hass_engine_create(m, tok, NULL, pool, 0, &err);
    CHECK(e != NULL);
    if (!e)
        return;
    int64_t n_new = 120;
    int32_t *ref = calloc((size_t)(np + n_new), sizeof(int32_t));
    memcpy(ref, prompt, sizeof(int32_t) * (size_t)np);
    hass_gen_params p = {0};
    p.max_new = n_new;
    hass_gen_stats st;
    CHECK(hass_generate(e, prompt, np, &p, 0, NULL, NULL, ref + np, &st, &err) == HASS_OK);
    oracle_ctx o = {ref, np + st.n_generated, m->cfg.V, 0.9};
    hass_engine_set_oracle(e, oracle, &o);
    tree_cfg cfgs[] = {{6, 4, 20}, {4, 2, 6}, {9, 3, 40}, {2, 1, 1}, {13, 2, 24}};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        double tau = 0;
        char label[64];
        snprintf(label, sizeof label, "perfect draft, depth %d topk %d nodes %d", cfgs[i].depth,
                 cfgs[i].topk, cfgs[i].tokens);
        greedy_equal(e, prompt, np, n_new, &cfgs[i], label, &tau);
        /* the chain of right tokens is always in the tree up to its depth (when the nodes
         * allow it), so each cycle accepts min(depth, tokens) drafts (+1 bonus) */
        int chain = cfgs[i].depth < cfgs[i].tokens ? cfgs[i].depth : cfgs[i].tokens;
        CHECK_MSG(tau > 0.8 * (chain + 1), "%s: tau %.2f, expected about %d", label, tau,
                  chain + 1);
    }
    /* after a speculative generation, the KV cache equals a fresh prefill of the text */
    hass_gen_params p2 = {0};
    p2.max_new = 60;
    p2.tree = (hass_tree_params){6, 3, 16};
    CHECK(hass_generate(e, prompt, np, &p2, 1, NULL, NULL, NULL, &st, &err) == HASS_OK);
    const hass_kv *kv = hass_engine_kv(e);
    int64_t n = kv->n;
    hass_kv fresh;
    CHECK(hass_kv_init(&fresh, m, kv->cap, 64, pool, &err) == HASS_OK);
    const int32_t *seq = hass_engine_seq(e);
    int32_t pos[64];
    for (int64_t s = 0; s < n; s += 64) {
        int64_t k = n - s < 64 ? n - s : 64;
        for (int64_t i = 0; i < k; i++)
            pos[i] = (int32_t)(s + i);
        CHECK(hass_model_forward(m, &fresh, pool, k, seq + s, pos, NULL, NULL, 0, NULL, &err) ==
              HASS_OK);
        hass_kv_commit(&fresh, k);
    }
    int64_t kvd = m->cfg.Hkv * m->cfg.Dh, same = 1;
    for (int64_t l = 0; l < m->cfg.n_layers; l++)
        same &= memcmp(kv->k + l * kv->cap * kvd, fresh.k + l * fresh.cap * kvd,
                       sizeof(float) * (size_t)(n * kvd)) == 0 &&
                memcmp(kv->v + l * kv->cap * kvd, fresh.v + l * fresh.cap * kvd,
                       sizeof(float) * (size_t)(n * kvd)) == 0;
    CHECK_MSG(same, "KV after speculative decoding == fresh prefill (%lld positions)",
              (long long)n);
    hass_kv_free(&fresh);
    hass_engine_destroy(e);
    free(ref);
}

static void test_stories(hass_pool *pool) {
    const char *mp = check_shared("models/stories260K.bin"),
               *tp = check_shared("models/tok512.bin");
    if (!mp || !tp) {
        CHECK_SKIP("../shared/models/stories260K.bin not found");
        return;
    }
    hass_err err = {0};
    hass_model *m = hass_model_load(mp, &err);
    hass_tokenizer *tok = hass_tokenizer_load_bin(tp, 512, &err);
    CHECK(m && tok);
    if (!m || !tok)
        return;
    char dpath[300];
    snprintf(dpath, sizeof dpath, "%s/d260", tmpdir);
    CHECK(hass_draft_write_fresh(dpath, m, 0, 1, HASS_DTYPE_F32, "stories260K", &err) == HASS_OK);
    hass_draft *dr = hass_draft_load(dpath, m, &err);
    CHECK_MSG(dr != NULL, "%s", err.msg);
    hass_engine *e = dr ? hass_engine_create(m, tok, dr, pool, 0, &err) : NULL;
    CHECK(e != NULL);
    static const char *prompts[] = {
        "Once upon a time",
        "One day, a little dog",
        "Tom and Sue went to the park",
        "The sun was",
        "Lily had a red ball. She",
        "There was a big tree",
        "Mom said",
        "The cat",
        "Ben and his friend",
        "It was a rainy day",
        "A bird sat on",
        "The little boy wanted",
        "In the forest",
        "Sara liked to",
        "The ball rolled",
        "Once",
        "They played",
        "He was sad because",
        "At the beach, Tim found",
        "The end",
    };
    tree_cfg cfgs[] = {{6, 10, 0}, {4, 4, 8}, {6, 10, 59}, {2, 1, 1}, {8, 3, 20}};
    for (size_t i = 0; e && i < sizeof prompts / sizeof prompts[0]; i++) {
        int32_t ids[128];
        int64_t n =
            hass_tokenizer_encode(tok, prompts[i], strlen(prompts[i]), 1, 1, ids, 128, &err);
        CHECK(n > 0 && n <= 128);
        for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
            if (i % 5 != c) /* each setting on a fifth of the prompts */
                continue;
            char label[128];
            snprintf(label, sizeof label, "stories260K '%s' depth %d topk %d nodes %d", prompts[i],
                     cfgs[c].depth, cfgs[c].topk, cfgs[c].tokens);
            greedy_equal(e, ids, n, 60, &cfgs[c], label, NULL);
        }
    }
    int32_t ids[64];
    int64_t n = hass_tokenizer_encode(tok, "Once upon a time", 16, 1, 1, ids, 64, &err);
    /* auto tree size with an untrained draft: drafts are never accepted, the calibrated gain
     * goes to zero and the engine stops verifying drafts (whatever the timings) */
    if (e) {
        hass_gen_params p = {0};
        p.max_new = 200;
        p.tree = (hass_tree_params){6, 10, 0};
        hass_gen_stats st;
        for (int r = 0; r < 3; r++)
            CHECK(hass_generate(e, ids, n, &p, 1, NULL, NULL, NULL, &st, &err) == HASS_OK);
        double nodes = st.cycles ? (double)st.nodes_verified / (double)st.cycles : 99;
        CHECK_MSG(nodes < 0.5, "auto tree with an untrained draft: %.2f nodes per cycle", nodes);
    }
    test_perfect_draft(m, tok, pool, ids, n);
    hass_engine_destroy(e);
    hass_draft_free(dr);
    hass_tokenizer_free(tok);
    hass_model_free(m);
}

/* The kernel calibration: measured once, written beside the cost curve (a "tune" line first),
 * read back by the next engine of the same model; with HASS_CPU set the bf16 product is not
 * measured but the widest allowed; the choice is applied to the process. */
static void test_tune(hass_pool *pool) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(64, 96, 2, 4, 2, 101, 256);
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_BF16, 5, &err);
    CHECK(m != NULL);
    char dir[300], path[600];
    snprintf(dir, sizeof dir, "%s/tunecache", tmpdir);
    setenv("HASS_CACHE_DIR", dir, 1);
    hass_engine *e1 = hass_engine_create(m, NULL, NULL, pool, 200, &err);
    hass_engine *e2 = hass_engine_create(m, NULL, NULL, pool, 200, &err);
    CHECK(e1 && e2);
    if (e1 && e2) {
        hass_ops_tune t1 = *hass_engine_tune(e1), now = hass_ops_tune_get();
        CHECK(!memcmp(&t1, &now, sizeof t1));
        hass_ops_tune_set(NULL);
        hass_ops_tune t2 = *hass_engine_tune(e2); /* from the file */
        CHECK(!memcmp(&t1, &t2, sizeof t1));
        int nmax;
        hass_engine_costs(e1, &nmax);
        int found = 0;
        DIR *dd = opendir(dir);
        for (struct dirent *de; dd && (de = readdir(dd));) {
            if (strncmp(de->d_name, "cost-", 5))
                continue;
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
            FILE *f = fopen(path, "r");
            char line[64] = "";
            found += f && fgets(line, sizeof line, f) && !strncmp(line, "tune ", 5);
            if (f)
                fclose(f);
        }
        if (dd)
            closedir(dd);
        CHECK_MSG(found == 1, "%d cache files with a tune line in %s", found, dir);
    }
    hass_engine_destroy(e1), hass_engine_destroy(e2);
    /* HASS_CPU set: the bf16 product is the widest allowed, not measured */
    snprintf(dir, sizeof dir, "%s/tunecache2", tmpdir);
    setenv("HASS_CACHE_DIR", dir, 1);
    setenv("HASS_CPU", "native", 1);
    hass_engine *e3 = hass_engine_create(m, NULL, NULL, pool, 200, &err);
    CHECK(e3 && hass_engine_tune(e3)->bf16 == HASS_BF16_WIDEST);
    hass_engine_destroy(e3);
    unsetenv("HASS_CPU");
    hass_ops_tune_set(NULL);
    setenv("HASS_CACHE_DIR", tmpdir, 1);
    hass_model_free(m);
}

/* keep_prefix: a conversation whose every prompt extends the last context (prompt, generated
 * tokens, a new turn) gives on one engine that keeps the shared prefix in its cache the same
 * tokens as a fresh engine that prefills everything, and runs only the new part. */
static void test_keep_prefix(const hass_model *m, const hass_draft *dr, hass_pool *pool) {
    hass_err err = {0};
    hass_engine *e1 = hass_engine_create(m, NULL, dr, pool, 300, &err),
                *e2 = hass_engine_create(m, NULL, dr, pool, 300, &err);
    CHECK(e1 && e2);
    hass_rng rng;
    hass_rng_seed(&rng, 7);
    int32_t conv[300], a[40], b[40];
    int64_t n = 0, kept_min = 0;
    for (int turn = 0; e1 && e2 && turn < 6; turn++) {
        for (int j = 0; j < 12; j++)
            conv[n++] = (int32_t)(hass_rng_u64(&rng) % 101);
        hass_gen_params p = {0};
        p.max_new = 40;
        p.tree = (hass_tree_params){5, 6, turn % 2 ? 12 : 0}; /* auto first: it measures costs */
        if (turn == 3) /* plain sampling: one draw per token, the same with a kept prefix */
            p.sampling = (hass_sampler_params){0.9f, 0, 1.0f, 11};
        int spec = turn != 3 && turn != 4;
        hass_gen_stats s1, s2;
        p.keep_prefix = 1;
        CHECK(hass_generate(e1, conv, n, &p, spec, NULL, NULL, a, &s1, &err) == HASS_OK);
        p.keep_prefix = 0;
        CHECK(hass_generate(e2, conv, n, &p, spec, NULL, NULL, b, &s2, &err) == HASS_OK);
        CHECK_MSG(s1.n_generated == s2.n_generated &&
                      !memcmp(a, b, sizeof(int32_t) * (size_t)s1.n_generated),
                  "turn %d: kept prefix changes the output", turn);
        CHECK_MSG(s1.n_prompt_cached >= kept_min && s2.n_prompt_cached == 0,
                  "turn %d: %lld cached, expected >= %lld", turn, (long long)s1.n_prompt_cached,
                  (long long)kept_min);
        kept_min = n;
        for (int64_t j = 0; j < s1.n_generated && n < 220; j++)
            conv[n++] = a[j];
    }
    hass_engine_destroy(e1);
    hass_engine_destroy(e2);
}

/* The positions an engine holds follow the run, not the context: on a model of a 1M-token
 * context a short run holds a few hundred, a longer one grows them to its prompt, its tokens and
 * a tree's room; a run on an engine grown large gives the same tokens as on one just big enough
 * (greedy and sampled, plain and speculative); a prompt past the context is an error naming it. */
static void test_run_sized(hass_pool *pool) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(48, 80, 2, 4, 2, 101, 1 << 20);
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_BF16, 3, &err);
    char dpath[300];
    snprintf(dpath, sizeof dpath, "%s/drun", tmpdir);
    CHECK(m && hass_draft_write_fresh(dpath, m, 1, 2, HASS_DTYPE_BF16, "synthetic", &err) == 0);
    hass_draft *dr = m ? hass_draft_load(dpath, m, &err) : NULL;
    hass_engine *small = dr ? hass_engine_create(m, NULL, dr, pool, 0, &err) : NULL;
    hass_engine *grown = dr ? hass_engine_create(m, NULL, dr, pool, 0, &err) : NULL;
    CHECK_MSG(small && grown, "%s", err.msg);
    if (!small || !grown)
        goto done;
    const hass_kv *kv = hass_engine_kv(small);
    CHECK(hass_engine_ctx(small) == 1 << 20 && kv->cap <= 256);
    static int32_t prompt[2000], a[64], b[64];
    for (int j = 0; j < 2000; j++)
        prompt[j] = (int32_t)((j * 37 + 11) % 101);
    hass_gen_params p = {0};
    p.tree = (hass_tree_params){5, 6, 12};
    /* grown: a long run first (1900 + 8 + a tree's room positions) */
    p.max_new = 8;
    CHECK(hass_generate(grown, prompt, 1900, &p, 1, NULL, NULL, a, NULL, &err) == HASS_OK);
    int64_t big_cap = hass_engine_kv(grown)->cap;
    CHECK_MSG(big_cap >= 1900 + 8 + HASS_TREE_MAX_NODES - 1 && big_cap < 4000, "cap %lld",
              (long long)big_cap);
    p.tree = (hass_tree_params){7, 10, 63}; /* the largest tree: the most room a cycle takes */
    for (int k = 0; k < 4; k++) {
        /* a fresh engine holds exactly the run: 400 + 40 + a tree's room */
        hass_engine *tight = hass_engine_create(m, NULL, dr, pool, 0, &err);
        p.max_new = 40;
        p.sampling = (hass_sampler_params){k % 2 ? 0.8f : 0.0f, 0, 1.0f, 5};
        int spec = k < 2;
        hass_gen_stats s1, s2;
        CHECK(tight &&
              hass_generate(tight, prompt + 7, 400, &p, spec, NULL, NULL, a, &s1, &err) == 0);
        CHECK(hass_generate(grown, prompt + 7, 400, &p, spec, NULL, NULL, b, &s2, &err) == 0);
        int64_t cap = tight ? hass_engine_kv(tight)->cap : 0;
        CHECK_MSG(cap == 400 + 40 + HASS_TREE_MAX_NODES, "cap %lld", (long long)cap);
        CHECK_MSG(s1.n_generated == s2.n_generated &&
                      !memcmp(a, b, (size_t)s1.n_generated * sizeof *a),
                  "run %d: %lld positions held and %lld give other tokens", k, (long long)cap,
                  (long long)hass_engine_kv(grown)->cap);
        hass_engine_destroy(tight);
    }
    CHECK_MSG(hass_engine_kv(grown)->cap == big_cap, "cap %lld",
              (long long)hass_engine_kv(grown)->cap);
    /* a longer run grows the small one: prompt + max_new + a tree, at most half again */
    p.max_new = 40;
    CHECK(hass_generate(small, prompt, 20, &p, 1, NULL, NULL, a, NULL, &err) == HASS_OK);
    CHECK_MSG(kv->cap <= 256, "cap %lld", (long long)kv->cap);
    CHECK(hass_generate(small, prompt, 300, &p, 1, NULL, NULL, a, NULL, &err) == HASS_OK);
    CHECK_MSG(kv->cap >= 300 + 40 + HASS_TREE_MAX_NODES - 1 && kv->cap <= 420, "cap %lld",
              (long long)kv->cap);
    CHECK(kv->bytes < ((size_t)1 << 20)); /* the whole context: 384 MB */
    hass_engine_destroy(small);
    /* a prompt that does not fit the context: an error that names both */
    small = hass_engine_create(m, NULL, dr, pool, 64, &err);
    CHECK(small && hass_generate(small, prompt, 63, &p, 1, NULL, NULL, a, NULL, &err) == 0);
    hass_status st = small ? hass_generate(small, prompt, 64, &p, 1, NULL, NULL, a, NULL, &err) : 0;
    CHECK_MSG(st == HASS_STATUS_RANGE && strstr(err.msg, "prompt of 64 tokens") &&
                  strstr(err.msg, "context of 64"),
              "%d %s", st, err.msg);
    hass_engine_destroy(small);
    small = hass_engine_create(m, NULL, dr, pool, 1 << 23, &err);
    CHECK_MSG(!small && strstr(err.msg, "8388608"), "%s", err.msg);
done:
    hass_engine_destroy(small);
    hass_engine_destroy(grown);
    hass_draft_free(dr);
    hass_model_free(m);
}

static void test_synthetic(hass_pool *pool) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(48, 80, 2, 4, 2, 101, 1024);
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_BF16, 3, &err);
    CHECK(m != NULL);
    char dpath[300];
    snprintf(dpath, sizeof dpath, "%s/dsyn", tmpdir);
    CHECK(hass_draft_write_fresh(dpath, m, 1, 2, HASS_DTYPE_BF16, "synthetic", &err) == HASS_OK);
    hass_draft *dr = hass_draft_load(dpath, m, &err);
    CHECK_MSG(dr != NULL, "%s", err.msg);
    hass_engine *e = hass_engine_create(m, NULL, dr, pool, 300, &err);
    CHECK(e != NULL);
    hass_rng rng;
    hass_rng_seed(&rng, 99);
    tree_cfg cfgs[] = {{5, 6, 0}, {7, 10, 63}, {3, 2, 3}};
    for (int i = 0; e && i < 12; i++) {
        int32_t ids[80];
        int64_t n = 1 + (int64_t)(hass_rng_u64(&rng) % 79);
        for (int64_t j = 0; j < n; j++)
            ids[j] = (int32_t)(hass_rng_u64(&rng) % 101);
        char label[64];
        snprintf(label, sizeof label, "synthetic prompt %d", i);
        greedy_equal(e, ids, n, 90, &cfgs[i % 3], label, NULL);
    }
    /* a prompt that fills the context: generation stops at the end of the cache, the same way */
    int32_t big[298];
    for (int j = 0; j < 298; j++)
        big[j] = j % 101;
    greedy_equal(e, big, 298, 50, &cfgs[1], "context end", NULL);
    hass_gen_params p = {0};
    p.max_new = 5;
    int32_t huge[400] = {0};
    CHECK(hass_generate(e, huge, 400, &p, 1, NULL, NULL, NULL, NULL, &err) == HASS_STATUS_RANGE);
    test_perfect_draft(m, NULL, pool, big, 20);
    hass_engine_destroy(e);
    if (dr)
        test_keep_prefix(m, dr, pool);

    /* a reduced draft vocabulary: proposals come from 40 of the 101 tokens; output unchanged */
    int32_t voc[40];
    for (int j = 0; j < 40; j++)
        voc[j] = (j * 37) % 101;
    CHECK(hass_draft_write_vocab(dpath, voc, 40, &err) == HASS_OK);
    hass_draft *drv = hass_draft_load(dpath, m, &err);
    CHECK_MSG(drv != NULL && drv->n_vocab == 40, "%s", err.msg);
    hass_engine *ev = drv ? hass_engine_create(m, NULL, drv, pool, 300, &err) : NULL;
    for (int i = 0; ev && i < 6; i++) {
        int32_t ids[40];
        for (int j = 0; j < 40; j++)
            ids[j] = (int32_t)(hass_rng_u64(&rng) % 101);
        char label[64];
        snprintf(label, sizeof label, "reduced draft vocabulary, prompt %d", i);
        greedy_equal(ev, ids, 40, 60, &cfgs[i % 3], label, NULL);
    }
    hass_engine_destroy(ev);
    hass_draft_free(drv);
    int32_t dup[2] = {3, 3}, out_of_range[1] = {101};
    CHECK(hass_draft_write_vocab(dpath, dup, 2, &err) == HASS_OK);
    CHECK(hass_draft_load(dpath, m, &err) == NULL && strstr(err.msg, "draft_vocab"));
    CHECK(hass_draft_write_vocab(dpath, out_of_range, 1, &err) == HASS_OK);
    CHECK(hass_draft_load(dpath, m, &err) == NULL && strstr(err.msg, "draft_vocab"));

    /* bad drafts: wrong target, missing tensor, corrupt file */
    hass_model_config c2 = hass_model_config_make(32, 80, 2, 4, 2, 101, 1024);
    hass_model *m2 = hass_model_synthetic(&c2, HASS_DTYPE_F32, 4, &err);
    CHECK(hass_draft_load(dpath, m2, &err) == NULL && strstr(err.msg, "does not fit"));
    char path[400];
    CHECK(hass_draft_load("/nonexistent/draft", m, &err) == NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", dpath);
    HASS_ASSERT(truncate(path, 1000) == 0);
    CHECK(hass_draft_load(dpath, m, &err) == NULL && err.msg[0]);
    snprintf(path, sizeof path, "%s/config.json", dpath);
    CHECK(hass_write_file_atomic(path, "{\"hidden_size\": 48", 18, &err) == HASS_OK);
    CHECK(hass_draft_load(dpath, m, &err) == NULL && err.msg[0]);
    hass_model_free(m2);
    hass_draft_free(dr);
    hass_model_free(m);
}

/* ---- sampling: chi-square against the exact joint distribution of 3 tokens ---- */
#define SV 7
static void exact_dist(const hass_model *m, hass_pool *pool, const int32_t *prompt, int64_t np,
                       const hass_sampler_params *sp, double *P) {
    hass_err err = {0};
    hass_kv kv;
    HASS_ASSERT(hass_kv_init(&kv, m, 64, 16, pool, &err) == HASS_OK);
    hass_sampler s;
    HASS_ASSERT(hass_sampler_init(&s, sp, SV, &err) == HASS_OK);
    float lg[SV], p1[SV], p2[SV], p3[SV];
    int32_t seq[16], pos[16];
    for (int i = 0; i < 16; i++)
        pos[i] = i;
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)np);
    hass_kv_truncate(&kv, 0);
    HASS_ASSERT(hass_model_forward(m, &kv, pool, np, seq, pos, NULL, lg, np - 1, NULL, &err) == 0);
    hass_sampler_probs(&s, lg, p1);
    for (int a = 0; a < SV; a++) {
        seq[np] = a;
        hass_kv_truncate(&kv, 0);
        hass_model_forward(m, &kv, pool, np + 1, seq, pos, NULL, lg, np, NULL, &err);
        hass_sampler_probs(&s, lg, p2);
        for (int b = 0; b < SV; b++) {
            seq[np + 1] = b;
            hass_kv_truncate(&kv, 0);
            hass_model_forward(m, &kv, pool, np + 2, seq, pos, NULL, lg, np + 1, NULL, &err);
            hass_sampler_probs(&s, lg, p3);
            for (int c = 0; c < SV; c++)
                P[(a * SV + b) * SV + c] = (double)p1[a] * p2[b] * p3[c];
        }
    }
    hass_sampler_free(&s);
    hass_kv_free(&kv);
}

/* returns 1 if the counts fit P at p = 1e-4 (cells with expected < 5 pooled) */
static int chi_square_ok(const double *P, const long *cnt, int cells, long N, double *stat_out,
                         int *df_out) {
    double stat = 0, pe = 0, po = 0;
    int df = -1;
    for (int i = 0; i < cells; i++) {
        double ex = P[i] * (double)N;
        if (ex < 5) {
            pe += ex;
            po += (double)cnt[i];
            if (ex == 0 && cnt[i] > 0)
                return 0; /* an impossible sequence was sampled */
            continue;
        }
        stat += (cnt[i] - ex) * (cnt[i] - ex) / ex;
        df++;
    }
    if (pe > 0) {
        stat += (po - pe) * (po - pe) / (pe > 1e-9 ? pe : 1e-9);
        df++;
    }
    double z = 3.719, k = df > 0 ? df : 1;
    double crit = k * pow(1 - 2 / (9 * k) + z * sqrt(2 / (9 * k)), 3);
    *stat_out = stat;
    *df_out = df;
    return stat < crit;
}

static void test_sampling(hass_pool *pool) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(16, 24, 1, 2, 1, SV, 64);
    hass_model *m = hass_model_synthetic(&c, HASS_DTYPE_F32, 17, &err);
    HASS_ASSERT(m);
    /* sharpen the model a little so acceptances and rejections both happen often */
    char dpath[300];
    snprintf(dpath, sizeof dpath, "%s/dsamp", tmpdir);
    CHECK(hass_draft_write_fresh(dpath, m, 0, 5, HASS_DTYPE_F32, "tiny", &err) == HASS_OK);
    hass_draft *dr = hass_draft_load(dpath, m, &err);
    HASS_ASSERT(dr);
    hass_engine *e = hass_engine_create(m, NULL, dr, pool, 64, &err);
    HASS_ASSERT(e);
    int32_t prompt[2] = {1, 4};
    struct {
        hass_sampler_params sp;
        const char *name;
    } cases[] = {
        {{1.0f, 0, 1.0f, 0}, "T=1"},
        {{0.7f, 0, 0.8f, 0}, "T=0.7 top-p 0.8"},
        {{0.7f, 4, 0.95f, 0}, "T=0.7 top-k 4 top-p 0.95"},
    };
#ifdef HASS_SANITIZE
    const long N = 20000; /* the statistical test runs in full in the release build */
#else
    const long N = 100000;
#endif
    double P[SV * SV * SV];
    long *cnt = calloc(SV * SV * SV, sizeof(long));
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        exact_dist(m, pool, prompt, 2, &cases[ci].sp, P);
        /* plain sampling once (it checks the test itself), speculative sampling every case,
         * with two tree shapes */
        for (int mode = ci == 0 ? 0 : 1; mode < 2; mode++) {
            memset(cnt, 0, SV * SV * SV * sizeof(long));
            hass_gen_params p = {0};
            p.max_new = 3;
            p.sampling = cases[ci].sp;
            p.tree = ci % 2 ? (hass_tree_params){3, 3, 6} : (hass_tree_params){4, 2, 5};
            long accepted = 0;
            for (long i = 0; i < N; i++) {
                int32_t out[3];
                hass_gen_stats st;
                p.sampling.seed = (uint64_t)i * 7919 + ci * 131 + (uint64_t)mode;
                hass_generate(e, prompt, 2, &p, mode > 0, NULL, NULL, out, &st, NULL);
                if (st.n_generated == 3)
                    cnt[(out[0] * SV + out[1]) * SV + out[2]]++;
                accepted += st.accepted_at_depth[1];
            }
            double stat = 0;
            int df = 0;
            int ok = chi_square_ok(P, cnt, SV * SV * SV, N, &stat, &df);
            CHECK_MSG(ok, "%s, %s: chi-square %.1f with %d df", cases[ci].name,
                      mode == 0 ? "plain" : "speculative", stat, df);
            if (mode > 0)
                CHECK_MSG(accepted > N / 20, "%s: drafts were accepted (%ld cycles)",
                          cases[ci].name, accepted);
        }
    }
    free(cnt);
    hass_engine_destroy(e);
    hass_draft_free(dr);
    hass_model_free(m);
}

/* Quantized targets (Q4_K, Q8_0: the same draws as an f32 model, quantized): a draft made for
 * the f32 model loads against them (its embedding matches up to the quantization error), and
 * speculative greedy output equals plain greedy output; the perfect-draft oracle too. */
static void test_quantized(hass_pool *pool) {
    hass_err err = {0};
    hass_model_config c = hass_model_config_make(256, 512, 2, 4, 2, 101, 1024);
    hass_model *mf = hass_model_synthetic(&c, HASS_DTYPE_F32, 8, &err);
    CHECK_MSG(mf != NULL, "%s", err.msg);
    char dpath[300];
    snprintf(dpath, sizeof dpath, "%s/dquant", tmpdir);
    CHECK(mf && hass_draft_write_fresh(dpath, mf, 1, 2, HASS_DTYPE_F32, "quant", &err) == HASS_OK);
    /* with a copy of the f32 model's embedding in the draft, as some EAGLE drafts carry */
    char st_path[400];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dpath);
    hass_safetensors st;
    CHECK(hass_safetensors_open(&st, st_path, &err) == HASS_OK);
    hass_tensor *ts = calloc((size_t)st.n_tensors + 1, sizeof *ts);
    HASS_ASSERT(ts);
    memcpy(ts, st.tensors, (size_t)st.n_tensors * sizeof *ts);
    hass_tensor *emb = &ts[st.n_tensors];
    snprintf(emb->name, sizeof emb->name, "embed_tokens.weight");
    emb->dtype = HASS_DTYPE_F32;
    emb->ndim = 2;
    emb->shape[0] = c.V;
    emb->shape[1] = c.d;
    emb->data = mf ? mf->embed : NULL;
    emb->nbytes = (size_t)(c.V * c.d) * sizeof(float);
    CHECK(mf && hass_safetensors_write(st_path, ts, st.n_tensors + 1, NULL, &err) == HASS_OK);
    hass_safetensors_close(&st);
    free(ts);
    const hass_dtype qts[2] = {HASS_DTYPE_Q4_K, HASS_DTYPE_Q8_0};
    hass_rng rng;
    hass_rng_seed(&rng, 5);
    tree_cfg cfgs[] = {{4, 6, 0}, {6, 10, 40}, {2, 2, 3}};
    for (int q = 0; q < 2; q++) {
        hass_model *m = hass_model_synthetic(&c, qts[q], 8, &err);
        CHECK_MSG(m != NULL, "%s", err.msg);
        hass_draft *dr = m ? hass_draft_load(dpath, m, &err) : NULL;
        CHECK_MSG(dr != NULL, "%s: %s", hass_dtype_name(qts[q]), err.msg);
        hass_engine *e = dr ? hass_engine_create(m, NULL, dr, pool, 300, &err) : NULL;
        int32_t ids[60];
        for (int i = 0; e && i < 6; i++) {
            int64_t n = 1 + (int64_t)(hass_rng_u64(&rng) % 59);
            for (int64_t j = 0; j < n; j++)
                ids[j] = (int32_t)(hass_rng_u64(&rng) % 101);
            char label[64];
            snprintf(label, sizeof label, "%s prompt %d", hass_dtype_name(qts[q]), i);
            greedy_equal(e, ids, n, 60, &cfgs[i % 3], label, NULL);
        }
        if (m)
            test_perfect_draft(m, NULL, pool, ids, 20);
        hass_engine_destroy(e);
        hass_draft_free(dr);
        hass_model_free(m);
    }
    /* an unrelated embedding is still refused */
    hass_model *other = hass_model_synthetic(&c, HASS_DTYPE_Q4_K, 9, &err);
    CHECK(other && hass_draft_load(dpath, other, &err) == NULL &&
          strstr(err.msg, "another target"));
    hass_model_free(other);
    hass_model_free(mf);
}

int main(void) {
    check_init("test_spec");
    snprintf(tmpdir, sizeof tmpdir, "%s", check_tmp());
    hass_pool *pool = hass_pool_create(2);
    double t0 = hass_now();
    test_tune(pool);
    test_run_sized(pool);
    test_synthetic(pool);
    test_quantized(pool);
    double t1 = hass_now();
    test_stories(pool);
    double t2 = hass_now();
    test_sampling(NULL); /* tiny model: threads would only add overhead */
    fprintf(stderr, "time: synthetic and quantized %.1fs, stories260K %.1fs, sampling %.1fs\n",
            t1 - t0, t2 - t1, hass_now() - t2);
    hass_pool_destroy(pool);
    return check_exit();
}
