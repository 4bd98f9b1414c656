/* cpu_linalg.c - Cholesky, triangular inverse and solves through LAPACKE/cblas (row-major fp32),
 * for the GPTQ/SparseGPT inverse-Hessian factors and MEMIT's normal equations. */
#include <cblas.h>
#include <lapacke.h>

#include "worker/engine/cpu/cpu_ops.h"

static void zero_other_triangle(float *A, int n, bool upper) {
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (upper ? j < i : j > i) A[(int64_t)i * n + j] = 0.0f;
}

int cpu_cholesky(backend *be, float *A, int n, bool upper) {
    int info = LAPACKE_spotrf(LAPACK_ROW_MAJOR, upper ? 'U' : 'L', n, A, n);
    if (info == 0) zero_other_triangle(A, n, upper);
    return info < 0 ? -info : info;
}

int cpu_tri_inv(backend *be, float *A, int n, bool upper) {
    int info = LAPACKE_strtri(LAPACK_ROW_MAJOR, upper ? 'U' : 'L', 'N', n, A, n);
    return info < 0 ? -info : info;
}

int cpu_chol_solve(backend *be, const float *F, float *Bm, int n, int nrhs, bool upper) {
    int info = LAPACKE_spotrs(LAPACK_ROW_MAJOR, upper ? 'U' : 'L', n, nrhs, F, n, Bm, nrhs);
    return info < 0 ? -info : info;
}

void cpu_tri_solve(backend *be, const float *T, float *Bm, int n, int nrhs, bool upper, bool trans) {
    cblas_strsm(CblasRowMajor, CblasLeft, upper ? CblasUpper : CblasLower, trans ? CblasTrans : CblasNoTrans,
                CblasNonUnit, n, nrhs, 1.0f, T, n, Bm, nrhs);
}

int cpu_spd_inverse(backend *be, float *A, int n) {
    int info = LAPACKE_spotrf(LAPACK_ROW_MAJOR, 'L', n, A, n);
    if (info != 0) return info < 0 ? -info : info;
    info = LAPACKE_spotri(LAPACK_ROW_MAJOR, 'L', n, A, n);
    if (info != 0) return info < 0 ? -info : info;
    for (int i = 0; i < n; i++)  // mirror the lower triangle into the upper
        for (int j = i + 1; j < n; j++) A[(int64_t)i * n + j] = A[(int64_t)j * n + i];
    return 0;
}
