/* bench_gemm_peak.c - how close the cpu backend's GEMMs run to this core's peak, at the shapes the
 * study runs (issue 12: is the time of the 417 grid bound by arithmetic or by overhead?).
 *
 * 1. The core's single-precision FMA peak: 12 independent 8-lane FMA chains (enough to cover the
 *    latency of two FMA pipes), timed by the thread's own CPU clock.
 * 2. cpu_sgemm (the backend's GEMM: OpenBLAS with the beta = 0 memset, worker/engine/cpu/
 *    cpu_matmul.c) at the shapes that dominate the study's stages and evaluation, found with an
 *    LD_PRELOAD counter of cblas_sgemm calls per shape on `cisweep apply` (LoRA, MEMIT, GD) and the
 *    sweep-profile evaluation: row-major C[M,N] (+)= op(A) op(B) with the layer shapes of the default
 *    model (D 64, F 192, V 2048) and the attention products at head_dim 16.
 * Each shape runs for at least 0.2 s of thread CPU time (best of 3 such rounds); printed: GF/s and
 * the fraction of the measured peak. CPU time, not wall time, so that a loaded machine's time
 * slicing does not count (its cache sharing still does). One thread (the study's workers run
 * --threads 1).
 * Usage: bench_gemm_peak [-q]   (-q: fewer repetitions, for a quick look) */
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAVE_X86 1
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "worker/engine/cpu/cpu_ops.h"

static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

#ifdef HAVE_X86
/* GF/s of n iterations of 12 independent 8-lane FMA chains (2 flops per lane per FMA), in
 * registers (named variables: an array may live in memory) */
__attribute__((target("avx2,fma"))) static double fma_peak(long n) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    __m256 a0 = _mm256_set1_ps(0.f), a1 = _mm256_set1_ps(1.f), a2 = _mm256_set1_ps(2.f), a3 = _mm256_set1_ps(3.f);
    __m256 a4 = _mm256_set1_ps(4.f), a5 = _mm256_set1_ps(5.f), a6 = _mm256_set1_ps(6.f), a7 = _mm256_set1_ps(7.f);
    __m256 a8 = _mm256_set1_ps(8.f), a9 = _mm256_set1_ps(9.f), a10 = _mm256_set1_ps(10.f), a11 = _mm256_set1_ps(11.f);
    double t0 = cpu_s();
    for (long k = 0; k < n; k++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c); a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c); a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c); a10 = _mm256_fmadd_ps(a10, m, c); a11 = _mm256_fmadd_ps(a11, m, c);
    }
    double t = cpu_s() - t0;
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float out[8];
    _mm256_storeu_ps(out, s);
    if (out[0] == 12345.f) printf("(never)\n"); /* keep the chains live */
    return 2.0 * 8 * 12 * (double)n / t / 1e9;
}
#else
static double fma_peak(long n) { (void)n; return 0; } /* not measured off x86: the fractions print inf */
#endif

typedef struct shape {
    const char *what;  /* where the study runs it */
    int ta, tb, M, N, K;
    float beta;
} shape;

static const shape SHAPES[] = {
    {"LoRA fwd gate/up (50 edits, 704 tokens)", 0, 1, 704, 192, 64, 0.f},
    {"LoRA fwd down", 0, 1, 704, 64, 192, 0.f},
    {"LoRA bwd dx of gate/up", 0, 0, 704, 64, 192, 0.f},
    {"LoRA fwd q/o", 0, 1, 704, 64, 64, 0.f},
    {"GD fwd gate/up (2 x 128 tokens)", 0, 1, 256, 192, 64, 0.f},
    {"GD head fwd (V 2048)", 0, 1, 256, 2048, 64, 0.f},
    {"GD head bwd dx", 0, 0, 256, 64, 2048, 0.f},
    {"GD head bwd dW", 1, 0, 2048, 64, 254, 1.f},
    {"GD bwd dW gate/up", 1, 0, 192, 64, 256, 1.f},
    {"eval fwd gate/up (MC batch, 4096 rows)", 0, 1, 4096, 192, 64, 0.f},
    {"eval fwd down", 0, 1, 4096, 64, 192, 0.f},
    {"attention QK^T (14 tok, Dh 16)", 0, 1, 14, 14, 16, 0.f},
    {"attention PV (14 tok)", 0, 0, 14, 16, 14, 0.f},
    {"attention QK^T (GD, 128 tok)", 0, 1, 128, 128, 16, 0.f},
    {"attention PV (GD, 128 tok)", 0, 0, 128, 16, 128, 0.f},
    {"MEMIT attention (3 rows x 21 keys)", 0, 1, 3, 21, 16, 0.f},
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

static float *rnd(size_t n) {
    float *p = malloc(n * sizeof(float));
    if (!p) { fprintf(stderr, "bench_gemm_peak: out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

int main(int argc, char **argv) {
    bool quick = argc > 1 && !strcmp(argv[1], "-q");
    double min_s = quick ? 0.05 : 0.2;
    backend *be = NULL;
    cis_err err = {0};
    if (!(be = backend_open("cpu", &(backend_opts){.threads = 1}, &err))) { fprintf(stderr, "bench_gemm_peak: %s\n", err.msg); return 1; }
    cpu_blas_threads(be);
    double peak = 0;
    for (int r = 0; r < 3; r++) {
        double g = fma_peak(quick ? 20000000L : 80000000L);
        if (g > peak) peak = g;
    }
    printf("one core, FMA peak (12 chains x 8 lanes, best of 3): %.1f GF/s\n", peak);
    printf("%-44s %3s %5s %5s %5s %9s %7s\n", "shape (row-major C[M,N] = op(A) op(B))", "op", "M", "N", "K", "GF/s",
           "of peak");
    for (int s = 0; s < N_SHAPES; s++) {
        const shape *h = &SHAPES[s];
        float *A = rnd((size_t)h->M * h->K), *B = rnd((size_t)h->K * h->N), *C = rnd((size_t)h->M * h->N);
        int lda = h->ta ? h->M : h->K, ldb = h->tb ? h->K : h->N;
        double best = 0;
        for (int r = 0; r < 3; r++) {
            long reps = 0;
            double t0 = cpu_s(), t;
            do {
                cpu_sgemm(h->ta, h->tb, h->M, h->N, h->K, 1.0f, A, lda, B, ldb, h->beta, C, h->N);
                reps++;
            } while ((t = cpu_s() - t0) < min_s);
            double g = 2.0 * h->M * h->N * h->K * (double)reps / t / 1e9;
            if (g > best) best = g;
        }
        printf("%-44s %c%c  %5d %5d %5d %9.1f %6.0f%%\n", h->what, h->ta ? 'T' : 'N', h->tb ? 'T' : 'N', h->M, h->N,
               h->K, best, 100.0 * best / peak);
        free(A); free(B); free(C);
    }
    backend_close(&be);
    return 0;
}
