/* cpu_threads.c - a minimal parallel-for for the cpu backend's non-GEMM work (attention heads,
 * softmax rows, elementwise chunks): n tasks split into contiguous ranges over up to `threads`
 * pthreads (the calling thread takes the first range). The partition depends only on n and the
 * thread count, and each task writes disjoint outputs, so results are bit-identical for a given
 * thread count. Threads are created per call (tens of microseconds), so callers only use it for
 * work well above that. */
#include <pthread.h>
#include <stdlib.h>

#include "worker/engine/cpu/cpu_ops.h"

#define CPU_MAX_THREADS 64

typedef struct pf_job {
    void (*fn)(void *ctx, int task, int thread);
    void *ctx;
    int lo, hi, thread;
} pf_job;

static void *pf_run(void *arg) {
    pf_job *j = arg;
    for (int t = j->lo; t < j->hi; t++) j->fn(j->ctx, t, j->thread);
    return NULL;
}

void cpu_parallel_for(int n, int threads, void (*fn)(void *ctx, int task, int thread), void *ctx) {
    if (n <= 0) return;
    if (threads > CPU_MAX_THREADS) threads = CPU_MAX_THREADS;
    if (threads > n) threads = n;
    if (threads <= 1) {
        for (int t = 0; t < n; t++) fn(ctx, t, 0);
        return;
    }
    pf_job jobs[CPU_MAX_THREADS];
    pthread_t tid[CPU_MAX_THREADS];
    bool started[CPU_MAX_THREADS] = {false};
    for (int i = 0; i < threads; i++) {
        jobs[i] = (pf_job){fn, ctx, (int)((int64_t)n * i / threads), (int)((int64_t)n * (i + 1) / threads), i};
    }
    for (int i = 1; i < threads; i++) started[i] = pthread_create(&tid[i], NULL, pf_run, &jobs[i]) == 0;
    pf_run(&jobs[0]);
    for (int i = 1; i < threads; i++) {
        if (started[i]) pthread_join(tid[i], NULL);
        else pf_run(&jobs[i]);  // could not start a thread: do its range here (same results)
    }
}
