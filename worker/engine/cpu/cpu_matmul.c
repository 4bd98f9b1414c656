/* cpu_matmul.c - GEMM and the linear layer (HF nn.Linear layout W[out, in]) on the cpu backend,
 * all through OpenBLAS cblas_sgemm (row-major). Thread count is OpenBLAS's. */
#include <cblas.h>

#include "worker/engine/cpu/cpu_ops.h"

void cpu_set_threads(int n) {
    if (n <= 0) n = openblas_get_num_procs();
    openblas_set_num_threads(n);
}

int cpu_get_threads(void) { return openblas_get_num_threads(); }

void cpu_gemm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  // C = beta C
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// y[N,out] (+)= x[N,in] · W[out,in]ᵀ
void cpu_linear_fwd(float *y, const float *x, const float *W, int N, int in, int out, bool acc) {
    cpu_gemm(false, true, N, out, in, 1.0f, x, in, W, in, acc ? 1.0f : 0.0f, y, out);
}

// dx[N,in] (+)= dy[N,out] · W[out,in];  dW[out,in] += dy[N,out]ᵀ · x[N,in]
void cpu_linear_bwd(float *dx, float *dW, const float *dy, const float *x, const float *W,
                    int N, int in, int out, bool acc_dx) {
    if (dx) cpu_gemm(false, false, N, in, out, 1.0f, dy, out, W, in, acc_dx ? 1.0f : 0.0f, dx, in);
    if (dW) cpu_gemm(true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
}
