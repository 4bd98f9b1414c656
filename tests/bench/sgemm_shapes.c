/* sgemm_shapes.c - an LD_PRELOAD counter of cblas_sgemm calls by shape, for finding where an
 * engine-bound command spends its GEMM time (tests/bench/sgemm_shapes.sh builds and runs it; not
 * part of any build). It wraps cblas_sgemm (dlsym RTLD_NEXT), times each call by the monotonic
 * clock, groups calls by (transA, transB, M rounded up to 64 above 64, N, K), and at exit writes the
 * 40 costliest groups with their call count, seconds and GF/s to $SGEMM_SHAPES_OUT (default
 * stderr). Single-threaded use assumed (the study's workers run --threads 1); calls from several
 * threads may race on the counters. */
#define _GNU_SOURCE
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef void (*sgemm_fn)(CBLAS_ORDER, CBLAS_TRANSPOSE, CBLAS_TRANSPOSE, blasint, blasint, blasint, float,
                         const float *, blasint, const float *, blasint, float, float *, blasint);
static sgemm_fn real_sgemm;

#define MAX_GROUPS 4096
typedef struct group { int ta, tb, m, n, k; long calls; double s; } group;
static group G[MAX_GROUPS];
static int n_groups;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

void cblas_sgemm(CBLAS_ORDER o, CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint M, blasint N, blasint K, float alpha,
                 const float *A, blasint lda, const float *B, blasint ldb, float beta, float *C, blasint ldc) {
    if (!real_sgemm) real_sgemm = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
    double t0 = now_s();
    real_sgemm(o, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double dt = now_s() - t0;
    int m = M > 64 ? (M + 63) / 64 * 64 : M;
    int i = 0;
    while (i < n_groups && !(G[i].ta == ta && G[i].tb == tb && G[i].m == m && G[i].n == N && G[i].k == K)) i++;
    if (i == n_groups) {
        if (n_groups == MAX_GROUPS) return;
        G[n_groups++] = (group){ta, tb, m, N, K, 0, 0};
    }
    G[i].calls++;
    G[i].s += dt;
}

static int by_time(const void *a, const void *b) {
    double d = ((const group *)b)->s - ((const group *)a)->s;
    return (d > 0) - (d < 0);
}

__attribute__((destructor)) static void report(void) {
    const char *path = getenv("SGEMM_SHAPES_OUT");
    FILE *f = path ? fopen(path, "w") : stderr;
    if (!f) return;
    double total = 0;
    for (int i = 0; i < n_groups; i++) total += G[i].s;
    qsort(G, (size_t)n_groups, sizeof G[0], by_time);
    fprintf(f, "cblas_sgemm: %.3f s in all, %d shapes\n%-3s %6s %6s %6s %9s %8s %7s\n", total, n_groups, "op", "M~",
            "N", "K", "calls", "s", "GF/s");
    for (int i = 0; i < n_groups && i < 40; i++) {
        double flops = 2.0 * G[i].m * G[i].n * G[i].k * (double)G[i].calls;
        fprintf(f, "%c%c  %6d %6d %6d %9ld %8.3f %7.1f\n", G[i].ta == CblasTrans ? 'T' : 'N',
                G[i].tb == CblasTrans ? 'T' : 'N', G[i].m, G[i].n, G[i].k, G[i].calls, G[i].s,
                G[i].s > 0 ? flops / G[i].s / 1e9 : 0);
    }
    if (f != stderr) fclose(f);
}
