/* cpu_threads.c - the cpu backend's parallel-for for its non-GEMM work (attention heads, softmax
 * rows, elementwise chunks, compression rows): n tasks split into contiguous ranges over up to
 * `threads` threads (the calling thread takes the first range). The partition depends only on n
 * and the thread count, and each task writes disjoint outputs, so results are bit-identical for a
 * given thread count, whichever path below ran the ranges.
 *
 * The threads belong to the backend instance (a cpu_pool in be->ctx): started at the first
 * parallel call that needs them (grown when the instance's thread count grows), parked between
 * calls on a condition variable (optionally after a spin: POOL_SPIN), and joined by
 * cpu_pool_close at backend_close. Each instance has its own pool (the trainer's replicas each
 * have an instance). A call that finds its pool busy (the instance used from two threads at once, or a parallel op nested in a task) or
 * that cannot start a thread falls back to threads created for the call (the same partition, so the
 * same results). Creating threads per call cost tens of microseconds per op (about half of a 1M
 * model's decode step at 2 threads); waking parked threads costs a few (docs/engine.md). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/log.h"
#include "worker/engine/cpu/cpu_ops.h"

#define CPU_MAX_THREADS 64
/* iterations of a spin before a parked thread (or the waiting caller) blocks on the condition
 * variable. 0 by default: on the shared 2-core machine (load 15) a parallel-for call cost 5-15 us
 * with no spin, 50 us with 200 pause iterations and 100-500 us with 2000 (a spinner takes the core
 * the thread it waits for needs), against 20-60 us for threads made per call (docs/engine.md).
 * A dedicated machine may gain from -DPOOL_SPIN=N. */
#ifndef POOL_SPIN
#define POOL_SPIN 0
#endif

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

typedef struct pf_range {
    void (*fn)(void *ctx, int task, int thread);
    void *ctx;
    int lo, hi, thread;
} pf_range;

typedef struct cpu_pool cpu_pool;
typedef struct pool_worker {
    cpu_pool *pool;
    int index;                /* 1..; the caller is thread 0 */
    unsigned start_gen;       /* the call generation when it was started (it serves the next one) */
    pthread_t tid;
} pool_worker;

struct cpu_pool {
    pthread_mutex_t mu;       /* guards the condition variables' predicates */
    pthread_cond_t go, done;
    pthread_mutex_t busy;     /* held by the caller of a pooled parallel-for */
    pool_worker w[CPU_MAX_THREADS];
    int n_workers;            /* started workers, indices 1..n_workers */
    /* the current call (written before gen is bumped, read after it is seen) */
    void (*fn)(void *ctx, int task, int thread);
    void *ctx;
    int n, threads;
    atomic_uint gen;          /* bumped once per call */
    atomic_int pending;       /* workers that have not yet checked in for the current call */
    atomic_bool quit;
};

static void run_range(const pf_range *r) {
    for (int t = r->lo; t < r->hi; t++) r->fn(r->ctx, t, r->thread);
}

static pf_range range_of(void (*fn)(void *, int, int), void *ctx, int n, int threads, int i) {
    return (pf_range){fn, ctx, (int)((int64_t)n * i / threads), (int)((int64_t)n * (i + 1) / threads), i};
}

static void *pool_main(void *arg) {
    pool_worker *me = arg;
    cpu_pool *p = me->pool;
    unsigned seen = me->start_gen;  // not gen now: the call that started it may have bumped it already
    for (;;) {
        unsigned g;
        int spin = 0;
        while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->quit) && spin < POOL_SPIN) { CPU_RELAX(); spin++; }
        if (g == seen && !atomic_load(&p->quit)) {
            pthread_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->quit)) pthread_cond_wait(&p->go, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->quit)) return NULL;
        seen = g;
        if (me->index < p->threads) {  // workers past the call's thread count only check in
            pf_range r = range_of(p->fn, p->ctx, p->n, p->threads, me->index);
            run_range(&r);
        }
        if (atomic_fetch_sub(&p->pending, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* the instance's pool, created on first use; NULL when it cannot be (then callers fall back) */
static cpu_pool *pool_get(backend *be) {
    if (be->ctx) return be->ctx;
    cpu_pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->busy, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->quit, false);
    be->ctx = p;
    return p;
}

/* start workers until indices 1..threads-1 exist (called with busy held, so no call is running);
 * returns whether they all do */
static bool pool_grow(cpu_pool *p, int threads) {
    while (p->n_workers < threads - 1) {
        pool_worker *w = &p->w[p->n_workers + 1];
        w->pool = p;
        w->index = p->n_workers + 1;
        w->start_gen = atomic_load(&p->gen);
        if (pthread_create(&w->tid, NULL, pool_main, w) != 0) {
            LOG_W("cpu backend: cannot start pool thread %d: running this op on threads made for the call",
                  w->index);
            return false;
        }
        p->n_workers++;
    }
    return true;
}

void cpu_pool_close(backend *be) {
    cpu_pool *p = be->ctx;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, true);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->n_workers; i++) pthread_join(p->w[i].tid, NULL);
    pthread_cond_destroy(&p->go);
    pthread_cond_destroy(&p->done);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->busy);
    free(p);
    be->ctx = NULL;
}

static void *spawn_main(void *arg) {
    run_range(arg);
    return NULL;
}

/* the old path: one pthread per range for this call only */
static void parallel_spawn(int n, int threads, void (*fn)(void *ctx, int task, int thread), void *ctx) {
    pf_range r[CPU_MAX_THREADS] = {{0}};
    pthread_t tid[CPU_MAX_THREADS];
    bool started[CPU_MAX_THREADS] = {false};
    for (int i = 0; i < threads; i++) r[i] = range_of(fn, ctx, n, threads, i);
    for (int i = 1; i < threads; i++)
        started[i] = pthread_create(&tid[i], NULL, spawn_main, &r[i]) == 0;
    run_range(&r[0]);
    for (int i = 1; i < threads; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else run_range(&r[i]);  // could not start a thread: do its range here (same results)
    }
}

void cpu_parallel_for(backend *be, int n, int threads, void (*fn)(void *ctx, int task, int thread), void *ctx) {
    if (n <= 0) return;
    if (threads > CPU_MAX_THREADS) threads = CPU_MAX_THREADS;
    if (threads > n) threads = n;
    if (threads <= 1) {
        for (int t = 0; t < n; t++) fn(ctx, t, 0);
        return;
    }
    cpu_pool *p = be ? pool_get(be) : NULL;
    if (!p || pthread_mutex_trylock(&p->busy) != 0) { parallel_spawn(n, threads, fn, ctx); return; }
    if (!pool_grow(p, threads)) {
        pthread_mutex_unlock(&p->busy);
        parallel_spawn(n, threads, fn, ctx);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->threads = threads;
    atomic_store(&p->pending, p->n_workers);  // every worker checks in, so none lags a call behind
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->mu);
    pf_range r0 = range_of(fn, ctx, n, threads, 0);
    run_range(&r0);
    for (int spin = 0; atomic_load(&p->pending) > 0 && spin < POOL_SPIN; spin++) CPU_RELAX();
    if (atomic_load(&p->pending) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_unlock(&p->busy);
}
