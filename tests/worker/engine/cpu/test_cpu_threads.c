/* test_cpu_threads.c - the cpu backend's thread pool (worker/engine/cpu/cpu_threads.c): every
 * task runs exactly once on the thread its contiguous range gives it (the same mapping on the
 * pooled path and on the per-call path), the pool's threads persist across calls (no thread is
 * created per call: the process's thread count is read from /proc/self/task), grow with the
 * instance's thread count, serve a nested call and two instances used at once, and are joined at
 * backend_close (the count drops back; LeakSanitizer checks the rest under SANITIZE=address). */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/testlib.h"
#include "worker/engine/cpu/cpu_ops.h"

#define NMAX 1000

typedef struct rec {
    atomic_int count[NMAX];
    int thread[NMAX];
    backend *be;          /* for the nested test */
    int nested_threads;
    atomic_int nested_sum;
} rec;

static void mark(void *ctx, int task, int thread) {
    rec *r = ctx;
    atomic_fetch_add(&r->count[task], 1);
    r->thread[task] = thread;
}

static int n_tasks_of_process(void) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* the task count once it settles at want, or what it is after ~2 s: a joined thread can stay listed
 * in /proc/self/task for a moment after pthread_join returns (the kernel reaps it after it clears
 * its tid), which a loaded 2-core machine makes visible; a thread never joined stays forever */
static int n_tasks_settled(int want) {
    int n = n_tasks_of_process();
    for (int i = 0; i < 200 && n != want; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
        n = n_tasks_of_process();
    }
    return n;
}

/* every task once, on thread floor(task*threads/n)-range owner, for be (pool) or NULL (per call) */
static bool check_mapping(backend *be, int n, int threads) {
    rec *r = calloc(1, sizeof *r);
    cpu_parallel_for(be, n, threads, mark, r);
    int t = threads > n ? n : threads;
    if (t < 1) t = 1;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        int want = 0;
        while (want + 1 < t && (int64_t)n * (want + 1) / t <= i) want++;
        if (atomic_load(&r->count[i]) != 1 || r->thread[i] != want) ok = false;
    }
    free(r);
    return ok;
}

static void test_mapping_pool_and_per_call(void) {
    backend *be = backend_open("cpu", &(backend_opts){.threads = 4}, NULL);
    CHECK(be != NULL);
    static const int ns[] = {1, 2, 3, 7, 64, 999};
    for (int k = 0; k < 6; k++)
        for (int t = 1; t <= 5; t++) {
            CHECK_MSG(check_mapping(be, ns[k], t), "pool n=%d threads=%d", ns[k], t);
            CHECK_MSG(check_mapping(NULL, ns[k], t), "per call n=%d threads=%d", ns[k], t);
        }
    backend_close(&be);
}

static void test_persistent_and_joined(void) {
    int base = n_tasks_of_process();
    if (base < 0) SKIP("no /proc/self/task");
    backend *be = backend_open("cpu", &(backend_opts){.threads = 3}, NULL);
    CHECK(be != NULL);
    CHECK_EQ_INT(n_tasks_of_process(), base);  // nothing started before a parallel op
    rec *r = calloc(1, sizeof *r);
    bool all = true;
    for (int it = 0; it < 2000; it++) {  // many short calls: the same two workers serve them all
        cpu_parallel_for(be, 3, 3, mark, r);
        if (it == 0) CHECK_EQ_INT(n_tasks_of_process(), base + 2);
    }
    for (int i = 0; i < 3; i++) all &= atomic_load(&r->count[i]) == 2000;
    CHECK(all);
    CHECK_EQ_INT(n_tasks_of_process(), base + 2);
    // growing the instance's thread count adds workers; shrinking keeps them (they only check in)
    backend_set_threads(be, 5);
    CHECK(check_mapping(be, 10, 5));
    CHECK_EQ_INT(n_tasks_of_process(), base + 4);
    backend_set_threads(be, 2);
    CHECK(check_mapping(be, 10, 2));
    CHECK(check_mapping(be, 10, 5));
    CHECK_EQ_INT(n_tasks_of_process(), base + 4);
    backend_close(&be);
    CHECK(be == NULL);
    CHECK_EQ_INT(n_tasks_settled(base), base);  // joined
    free(r);
}

static void nested_task(void *ctx, int task, int thread) {
    rec *r = ctx;
    rec *inner = calloc(1, sizeof *inner);
    cpu_parallel_for(r->be, 8, r->nested_threads, mark, inner);  // pool busy: threads for this call
    int s = 0;
    for (int i = 0; i < 8; i++) s += atomic_load(&inner->count[i]);
    atomic_fetch_add(&r->nested_sum, s);
    free(inner);
}

static void test_nested_call(void) {
    backend *be = backend_open("cpu", &(backend_opts){.threads = 2}, NULL);
    rec *r = calloc(1, sizeof *r);
    r->be = be;
    r->nested_threads = 2;
    cpu_parallel_for(be, 4, 2, nested_task, r);
    CHECK_EQ_INT(atomic_load(&r->nested_sum), 4 * 8);
    free(r);
    backend_close(&be);
}

typedef struct inst_arg { int threads; bool ok; } inst_arg;
static void *instance_main(void *arg) {
    inst_arg *a = arg;
    backend *be = backend_open("cpu", &(backend_opts){.threads = a->threads}, NULL);
    a->ok = be != NULL;
    for (int it = 0; it < 300 && a->ok; it++) a->ok = check_mapping(be, 37 + it % 5, a->threads);
    backend_close(&be);
    return NULL;
}

static void test_two_instances_at_once(void) {
    inst_arg a[2] = {{2, false}, {3, false}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) CHECK(pthread_create(&t[i], NULL, instance_main, &a[i]) == 0);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    CHECK(a[0].ok && a[1].ok);
}

int main(void) {
    RUN(test_mapping_pool_and_per_call);
    RUN(test_persistent_and_joined);
    RUN(test_nested_call);
    RUN(test_two_instances_at_once);
    return test_summary();
}
