/* cuda_linalg.cu - Cholesky, triangular inverse, solves and the SPD inverse on the GPU through
 * cuSOLVER and cuBLAS (fp32). cuSOLVER is column-major: a row-major matrix is the column-major
 * transpose, so a row-major lower factor is a column-major upper one (and vice versa), and a
 * row-major right-hand side [n, nrhs] is transposed (cublasSgeam) around potrs. Status codes as
 * the cpu backend: 0, or k > 0 for the failing leading minor / zero diagonal. */
#include <vector>

#include "worker/engine/cuda/cuda_common.cuh"

static cublasFillMode_t fill_of(bool upper_rowmajor) { return upper_rowmajor ? CUBLAS_FILL_MODE_LOWER : CUBLAS_FILL_MODE_UPPER; }

// zero the row-major triangle that is not the factor (strictly below when keep_upper, else above)
__global__ void zero_tri_k(float *A, int n, int keep_upper) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n * n) return;
    int r = (int)(i / n), c = (int)(i % n);
    if (keep_upper ? r > c : c > r) A[i] = 0.0f;
}
// make a matrix symmetric from its row-major lower triangle (= cuSOLVER's column-major upper)
__global__ void symm_from_lower_k(float *A, int n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n * n) return;
    int r = (int)(i / n), c = (int)(i % n);
    if (c > r) A[i] = A[(int64_t)c * n + r];
}

static int info_of(backend *be, cuda_ctx *c) {
    int info = 0;
    backend_download(be, &info, c->dinfo, sizeof info);
    return info;
}

int cuda_cholesky(backend *be, float *A, int n, bool upper) {
    if (n <= 0) return 0;
    cuda_ctx *c = cuda_ctx_of(be);
    cublasFillMode_t uplo = fill_of(upper);
    int lwork = 0;
    CUSOLVER_CHECK(cusolverDnSpotrf_bufferSize(c->solver, uplo, n, A, n, &lwork));
    float *work = (float *)cuda_scratch(be, (size_t)(lwork > 0 ? lwork : 1) * sizeof(float));
    CUSOLVER_CHECK(cusolverDnSpotrf(c->solver, uplo, n, A, n, work, lwork, c->dinfo));
    int info = info_of(be, c);
    zero_tri_k<<<cuda_blocks((int64_t)n * n, 256), 256, 0, c->stream>>>(A, n, upper);
    CU_LAUNCHED();
    return info > 0 ? info : 0;
}

int cuda_tri_inv(backend *be, float *A, int n, bool upper) {
    if (n <= 0) return 0;
    cuda_ctx *c = cuda_ctx_of(be);
    cublasFillMode_t uplo = fill_of(upper);
    size_t dbytes = 0, hbytes = 0;
    CUSOLVER_CHECK(cusolverDnXtrtri_bufferSize(c->solver, uplo, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_32F, A, n, &dbytes, &hbytes));
    void *dwork = cuda_scratch(be, dbytes ? dbytes : 16);
    std::vector<char> hwork(hbytes ? hbytes : 16);
    CUSOLVER_CHECK(cusolverDnXtrtri(c->solver, uplo, CUBLAS_DIAG_NON_UNIT, n, CUDA_R_32F, A, n, dwork, dbytes,
                                    hwork.data(), hbytes, c->dinfo));
    int info = info_of(be, c);
    return info > 0 ? info : 0;
}

int cuda_chol_solve(backend *be, const float *F, float *Bm, int n, int nrhs, bool upper) {
    if (n <= 0 || nrhs <= 0) return 0;
    cuda_ctx *c = cuda_ctx_of(be);
    float *Bc = (float *)cuda_scratch(be, (size_t)n * nrhs * sizeof(float));
    const float one = 1.0f, zero = 0.0f;
    // Bc (column-major n x nrhs) = transpose of the row-major B's column-major view (nrhs x n)
    CUBLAS_CHECK(cublasSgeam(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, n, nrhs, &one, Bm, nrhs, &zero, Bc, n, Bc, n));
    CUSOLVER_CHECK(cusolverDnSpotrs(c->solver, fill_of(upper), n, nrhs, F, n, Bc, n, c->dinfo));
    CUBLAS_CHECK(cublasSgeam(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, nrhs, n, &one, Bc, n, &zero, Bm, nrhs, Bm, nrhs));
    int info = info_of(be, c);
    return info < 0 ? -info : 0;
}

void cuda_tri_solve(backend *be, const float *T, float *Bm, int n, int nrhs, bool upper, bool trans) {
    if (n <= 0 || nrhs <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    const float one = 1.0f;
    // column-major: Y op(Tc) = Bᵀ with Tc = Tᵀ (see the file comment)
    CUBLAS_CHECK(cublasStrsm(c->blas, CUBLAS_SIDE_RIGHT, fill_of(upper), trans ? CUBLAS_OP_T : CUBLAS_OP_N,
                             CUBLAS_DIAG_NON_UNIT, nrhs, n, &one, T, n, Bm, nrhs));
}

int cuda_spd_inverse(backend *be, float *A, int n) {
    if (n <= 0) return 0;
    cuda_ctx *c = cuda_ctx_of(be);
    const cublasFillMode_t uplo = CUBLAS_FILL_MODE_UPPER;  // column-major upper = row-major lower
    int lwork = 0;
    CUSOLVER_CHECK(cusolverDnSpotrf_bufferSize(c->solver, uplo, n, A, n, &lwork));
    float *work = (float *)cuda_scratch(be, (size_t)(lwork > 0 ? lwork : 1) * sizeof(float));
    CUSOLVER_CHECK(cusolverDnSpotrf(c->solver, uplo, n, A, n, work, lwork, c->dinfo));
    int info = info_of(be, c);
    if (info > 0) return info;
    CUSOLVER_CHECK(cusolverDnSpotri_bufferSize(c->solver, uplo, n, A, n, &lwork));
    work = (float *)cuda_scratch(be, (size_t)(lwork > 0 ? lwork : 1) * sizeof(float));
    CUSOLVER_CHECK(cusolverDnSpotri(c->solver, uplo, n, A, n, work, lwork, c->dinfo));
    info = info_of(be, c);
    if (info > 0) return info;
    symm_from_lower_k<<<cuda_blocks((int64_t)n * n, 256), 256, 0, c->stream>>>(A, n);
    CU_LAUNCHED();
    return 0;
}
