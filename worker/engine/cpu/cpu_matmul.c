/* cpu_matmul.c - GEMM and the linear layer (HF nn.Linear layout W[out, in]) on the cpu backend,
 * through OpenBLAS cblas_sgemm (row-major), except the forward of a linear layer over at most
 * CPU_GEMV_MAX_ROWS rows (decoding at batch 1 or 2), which is one single-threaded cblas_sgemv per
 * row (and per range of output rows on the pool's threads): sgemm packs the whole weight on every
 * call, so at M = 1 it costs 3-6x a gemv (docs/engine.md). OpenBLAS's thread count is process-wide: each op
 * sets it to the instance's count (be->threads) when it differs, so instances used one after
 * another keep their own counts, and instances used at the same time from several threads (the
 * trainer's replicas) should all have the same count. BF16 weights are widened to fp32 in the
 * instance's workspace before the product (fp32 accumulation). */
#include <cblas.h>
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"
#include "worker/engine/half.h"

void cpu_blas_threads(backend *be) {
    if (openblas_get_num_threads() != be->threads) openblas_set_num_threads(be->threads);
}

/* OpenBLAS runs a beta = 0 product as "C = 0" (its beta kernel, on Zen a scalar 4-byte store per
 * element: ~10% of a LoRA step at the default model's K = 64) and then "C += alpha A B" (the same
 * kernel as for beta = 1). Zeroing C with memset and passing beta = 1 is that same sequence, so the
 * same bits, where OpenBLAS has no other path for beta = 0: its small-matrix kernels (permitted only
 * on SkylakeX in 0.3.21; sgemm_small_matrix_permit_ZEN/_HASWELL return 0) and its direct sgemm
 * (beta = 0, alpha = 1, NN, on CPUs with AVX-512). So: only where OpenBLAS says its core is Zen or
 * Haswell and the CPU has no AVX-512, and not under CISWEEP_CPU_LANES=4 (the reference paths). */
bool cpu_sgemm_beta0_by_memset(void) {
    static int ok = -1;  // -1 until first asked (relaxed atomics: every racer computes the same)
    int v = __atomic_load_n(&ok, __ATOMIC_RELAXED);
    if (v < 0) {
        const char *core = openblas_get_corename();
        bool avx512 = false;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_cpu_init();
        avx512 = __builtin_cpu_supports("avx512f");
#endif
        v = core && (!strcmp(core, "Zen") || !strcmp(core, "Haswell")) && !avx512;
        __atomic_store_n(&ok, v, __ATOMIC_RELAXED);
    }
    return v && cpu_simd_lanes() == 8;
}

void cpu_sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // C = beta C
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
        return;
    }
    if (beta == 0.0f && cpu_sgemm_beta0_by_memset()) {
        if (ldc == N) memset(C, 0, (size_t)M * N * sizeof(float));
        else
            for (int i = 0; i < M; i++) memset(C + (int64_t)i * ldc, 0, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void cpu_gemm(backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    cpu_blas_threads(be);
    cpu_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* the weight as fp32: itself, or widened into the workspace (NULL if that cannot grow) */
static const float *weight_f32(backend *be, const void *W, tensor_dtype wt, int out, int in) {
    if (wt == TENSOR_F32) return W;
    size_t n = (size_t)out * in;
    float *w = backend_workspace(be, n * sizeof(float));
    if (!w) return NULL;
    if (wt == TENSOR_BF16) half_bf16_to_f32_n(W, w, n);
    else half_f16_to_f32_n(W, w, n);
    return w;
}

/* up to this many rows, the linear forward is a gemv per row (measured on the 2-core VM with
 * OpenBLAS 0.3.21, one thread: gemv wins 3-6x at M = 1, ~2x at M = 2, ties at M = 4, loses from
 * M = 8). OpenBLAS's own threaded gemv is run single-threaded: on the shared machine it took
 * 30-80x longer at 2 threads than at 1 on the 1M shape; instead, a weight of at least
 * GEMV_SPLIT_MIN elements has its output rows split over the instance's pool. */
#define CPU_GEMV_MAX_ROWS 2
#define GEMV_SPLIT_MIN (256 * 1024)

typedef struct gemv_args {
    float *y;
    const float *x, *w;
    int N, in, out, nt;
    float beta;
} gemv_args;

static void gemv_task(void *ctx, int task, int thread) {
    const gemv_args *a = ctx;
    int lo = (int)((int64_t)a->out * task / a->nt), hi = (int)((int64_t)a->out * (task + 1) / a->nt);
    if (hi <= lo) return;
    for (int r = 0; r < a->N; r++)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, hi - lo, a->in, 1.0f, a->w + (int64_t)lo * a->in, a->in,
                    a->x + (int64_t)r * a->in, 1, a->beta, a->y + (int64_t)r * a->out + lo, 1);
}

// y[N,out] (+)= x[N,in] · W[out,in]ᵀ
void cpu_linear_fwd(backend *be, float *y, const float *x, const void *W, tensor_dtype wt, int N, int in, int out,
                    bool acc) {
    const float *w = weight_f32(be, W, wt, out, in);
    if (!w) return;  // the caller checked backend_workspace beforehand (model.c reserves it)
    if (N >= 1 && N <= CPU_GEMV_MAX_ROWS && in > 0 && out > 0) {
        if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);  // the next gemm sets it back
        int nt = (int64_t)in * out >= GEMV_SPLIT_MIN ? be->threads : 1;
        gemv_args a = {y, x, w, N, in, out, nt < 1 ? 1 : nt, acc ? 1.0f : 0.0f};
        cpu_parallel_for(be, a.nt, a.nt, gemv_task, &a);
        return;
    }
    cpu_gemm(be, false, true, N, out, in, 1.0f, x, in, w, in, acc ? 1.0f : 0.0f, y, out);
}

// dx[N,in] (+)= dy[N,out] · W[out,in];  dW[out,in] += dy[N,out]ᵀ · x[N,in]
void cpu_linear_bwd(backend *be, float *dx, float *dW, const float *dy, const float *x, const void *W, tensor_dtype wt,
                    int N, int in, int out, bool acc_dx) {
    if (dx) {
        const float *w = weight_f32(be, W, wt, out, in);
        if (w) cpu_gemm(be, false, false, N, in, out, 1.0f, dy, out, w, in, acc_dx ? 1.0f : 0.0f, dx, in);
    }
    if (dW) cpu_gemm(be, true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
}
