/*
 * threadpool.c — a persistent pthreads pool (the ds4/ggml pattern): workers spin briefly on a
 * generation counter, then sleep on a condition variable. The caller runs task 0 itself and
 * waits for the rest. Nested calls (from inside a task) run serially.
 */
#include "core/core.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#define SPIN_ITERS 200000
/* While spinning, give the CPU away every YIELD_EVERY pauses: with more threads than free cores
 * (several pools, or other processes) a spinning thread would otherwise sit on the core that the
 * thread it waits for needs. With a core to itself, sched_yield returns at once. */
#define YIELD_EVERY 256

struct hass_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;
    atomic_int pending;
    atomic_int sleepers;
    atomic_int stop;
    hass_task_fn fn;
    void *ctx;
    int nactive;
};

typedef struct {
    hass_pool *pool;
    int ith;
} worker_arg;

static _Thread_local int tl_in_task;

int hass_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void *worker_main(void *p) {
    worker_arg *wa = p;
    hass_pool *pool = wa->pool;
    int ith = wa->ith;
    free(wa);
    unsigned seen = 0; /* gen is 0 at creation: a run may start before this thread does */
    tl_in_task = 1;
    for (;;) {
        unsigned g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool->gen, memory_order_acquire)) == seen &&
               !atomic_load(&pool->stop)) {
            if (++spins < SPIN_ITERS) {
                if (spins % YIELD_EVERY == 0)
                    sched_yield();
                else
                    CPU_RELAX();
                continue;
            }
            pthread_mutex_lock(&pool->mu);
            atomic_fetch_add(&pool->sleepers, 1);
            while (atomic_load(&pool->gen) == seen && !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->cv, &pool->mu);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mu);
            spins = 0;
        }
        if (atomic_load(&pool->stop))
            break;
        seen = g;
        if (ith < pool->nactive)
            pool->fn(pool->ctx, ith, pool->nactive);
        atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_release);
    }
    return NULL;
}

hass_pool *hass_pool_create(int n_threads) {
    if (n_threads <= 0)
        n_threads = hass_cpu_count();
    hass_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->n = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    atomic_init(&pool->gen, 0);
    atomic_init(&pool->pending, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->stop, 0);
    if (n_threads > 1) {
        pool->threads = calloc((size_t)n_threads, sizeof(pthread_t));
        if (!pool->threads) {
            free(pool);
            return NULL;
        }
        for (int i = 1; i < n_threads; i++) {
            worker_arg *wa = malloc(sizeof *wa);
            if (!wa || (wa->pool = pool, wa->ith = i,
                        pthread_create(&pool->threads[i], NULL, worker_main, wa) != 0)) {
                free(wa);
                pool->n = i; /* keep the workers we have */
                break;
            }
        }
    }
    return pool;
}

void hass_pool_destroy(hass_pool *pool) {
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    atomic_store(&pool->stop, 1);
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->cv);
    free(pool->threads);
    free(pool);
}

int hass_pool_size(const hass_pool *pool) {
    return pool ? pool->n : 1;
}

void hass_pool_run_n(hass_pool *pool, int n, hass_task_fn fn, void *ctx) {
    if (!pool || pool->n <= 1 || n <= 1 || tl_in_task) {
        fn(ctx, 0, 1);
        return;
    }
    if (n > pool->n)
        n = pool->n;
    pool->fn = fn;
    pool->ctx = ctx;
    pool->nactive = n;
    atomic_store(&pool->pending, pool->n - 1);
    atomic_fetch_add_explicit(&pool->gen, 1, memory_order_seq_cst);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mu);
        pthread_cond_broadcast(&pool->cv);
        pthread_mutex_unlock(&pool->mu);
    }
    tl_in_task = 1;
    fn(ctx, 0, n);
    tl_in_task = 0;
    for (unsigned spins = 1; atomic_load_explicit(&pool->pending, memory_order_acquire) > 0;
         spins++) {
        if (spins % YIELD_EVERY == 0)
            sched_yield();
        else
            CPU_RELAX();
    }
}

void hass_pool_run(hass_pool *pool, hass_task_fn fn, void *ctx) {
    hass_pool_run_n(pool, pool ? pool->n : 1, fn, ctx);
}
