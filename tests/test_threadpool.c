/*
 * test_threadpool.c — the persistent pool of src/core/threadpool.c: every task index runs
 * exactly once per call with the right nth, split sums add up over thousands of back-to-back
 * runs (the spin/sleep hand-off), hass_pool_run_n uses only its first n threads, nested calls
 * from inside a task run serially, and pools of 1 / NULL run on the caller. Pools larger than
 * the core count are included on purpose (oversubscription must still make progress).
 */
#include "check.h"
#include "core/core.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXT 8

typedef struct {
    const int32_t *data;
    int64_t n;
    int64_t partial[MAXT];
    atomic_int calls[MAXT];
    atomic_int bad_nth;
    int expect_nth;
} sum_ctx;

static void sum_task(void *p, int ith, int nth) {
    sum_ctx *c = p;
    if (nth != c->expect_nth || ith < 0 || ith >= nth)
        atomic_fetch_add(&c->bad_nth, 1);
    atomic_fetch_add(&c->calls[ith], 1);
    int64_t lo, hi, s = 0;
    hass_split(c->n, ith, nth, &lo, &hi);
    for (int64_t i = lo; i < hi; i++)
        s += c->data[i];
    c->partial[ith] = s;
}

/* Runs `runs` split sums with n threads and checks the totals and the per-index call counts. */
static void check_sums(hass_pool *pool, int n, int runs, const int32_t *data, int64_t len,
                       int64_t expect) {
    sum_ctx *c = calloc(1, sizeof *c);
    HASS_ASSERT(c);
    c->data = data;
    int size = hass_pool_size(pool);
    int eff = n < 1 ? 1 : n > size ? size : n;
    c->expect_nth = eff;
    int wrong = 0;
    for (int r = 0; r < runs; r++) {
        c->n = len - (r % 97); /* vary the split a little */
        int64_t want = expect;
        for (int64_t i = c->n; i < len; i++)
            want -= data[i];
        memset(c->partial, 0, sizeof c->partial);
        hass_pool_run_n(pool, n, sum_task, c);
        int64_t got = 0;
        for (int t = 0; t < eff; t++)
            got += c->partial[t];
        wrong += got != want;
    }
    CHECK_MSG(wrong == 0, "pool %d threads, run_n(%d): %d of %d sums wrong", size, n, wrong, runs);
    CHECK_EQ_INT(atomic_load(&c->bad_nth), 0);
    for (int t = 0; t < MAXT; t++)
        CHECK_EQ_INT(atomic_load(&c->calls[t]), t < eff ? runs : 0);
    free(c);
}

/* A task that itself calls the pool: the inner call must run serially (ith 0 of 1). */
typedef struct {
    hass_pool *pool;
    atomic_int inner_calls;
    atomic_int inner_bad;
    atomic_int outer_calls;
} nest_ctx;

static void inner_task(void *p, int ith, int nth) {
    nest_ctx *c = p;
    if (ith != 0 || nth != 1)
        atomic_fetch_add(&c->inner_bad, 1);
    atomic_fetch_add(&c->inner_calls, 1);
}

static void outer_task(void *p, int ith, int nth) {
    (void)ith, (void)nth;
    nest_ctx *c = p;
    atomic_fetch_add(&c->outer_calls, 1);
    hass_pool_run(c->pool, inner_task, c);
    hass_pool_run_n(c->pool, 2, inner_task, c);
}

static void test_nested(hass_pool *pool) {
    nest_ctx c = {.pool = pool};
    for (int r = 0; r < 100; r++)
        hass_pool_run(pool, outer_task, &c);
    int n = hass_pool_size(pool);
    CHECK_EQ_INT(atomic_load(&c.outer_calls), 100 * n);
    CHECK_EQ_INT(atomic_load(&c.inner_calls), 2 * 100 * n);
    CHECK_EQ_INT(atomic_load(&c.inner_bad), 0);
    /* the pool is usable again after nested use */
    c.outer_calls = 0;
    hass_pool_run(pool, outer_task, &c);
    CHECK_EQ_INT(atomic_load(&c.outer_calls), n);
}

/* After the workers have gone to sleep (past their spin), a call must still wake them. */
static void test_after_sleep(hass_pool *pool, const int32_t *data, int64_t len, int64_t expect) {
    struct timespec ts = {0, 30 * 1000 * 1000};
    for (int r = 0; r < 3; r++) {
        nanosleep(&ts, NULL);
        check_sums(pool, hass_pool_size(pool), 5, data, len, expect);
    }
}

int main(void) {
    check_init("test_threadpool");
    const int64_t len = 20011;
    int32_t *data = malloc((size_t)len * sizeof(int32_t));
    HASS_ASSERT(data);
    hass_rng rng;
    hass_rng_seed(&rng, 7);
    int64_t expect = 0;
    for (int64_t i = 0; i < len; i++) {
        data[i] = (int32_t)(hass_rng_u64(&rng) % 2001) - 1000;
        expect += data[i];
    }

    CHECK_EQ_INT(hass_pool_size(NULL), 1);
    check_sums(NULL, 4, 10, data, len, expect); /* NULL pool: serial */
    CHECK(hass_cpu_count() >= 1);

    static const int sizes[] = {1, 2, 3, 5};
    for (int s = 0; s < 4; s++) {
        hass_pool *pool = hass_pool_create(sizes[s]);
        HASS_ASSERT(pool);
        CHECK_EQ_INT(hass_pool_size(pool), sizes[s]);
        check_sums(pool, sizes[s], 1000, data, len, expect);
        check_sums(pool, 1, 50, data, len, expect);
        check_sums(pool, 2, 200, data, len, expect);
        check_sums(pool, 100, 50, data, len, expect); /* clamped to the pool size */
        test_nested(pool);
        test_after_sleep(pool, data, len, expect);
        hass_pool_destroy(pool);
    }
    /* create/destroy churn, with and without work */
    for (int r = 0; r < 20; r++) {
        hass_pool *pool = hass_pool_create(2 + r % 3);
        HASS_ASSERT(pool);
        if (r % 2)
            check_sums(pool, hass_pool_size(pool), 3, data, len, expect);
        hass_pool_destroy(pool);
    }
    hass_pool_destroy(NULL);
    hass_pool *dflt = hass_pool_create(0);
    HASS_ASSERT(dflt);
    CHECK_EQ_INT(hass_pool_size(dflt), hass_cpu_count());
    hass_pool_destroy(dflt);
    free(data);
    return check_exit();
}
