/* cuda_matmul.cu - GEMM and the linear layer on the GPU through cuBLAS. Row-major C = op(A) op(B)
 * is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: the operands swap and keep their transpose flags. fp32 in,
 * fp32 compute (no TF32: the reference precision); BF16/F16 weights are widened into the
 * workspace first (fp32 accumulation; a bf16 cuBLASLt path is issue 14's performance work). */
#include "worker/engine/cuda/cuda_common.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

void cuda_gemm(backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    if (K <= 0) {  // C = beta C (cuBLAS needs k >= 1 for the product; scale instead)
        if (beta == 0.0f) {
            for (int i = 0; i < M; i++) CU_CHECK(cudaMemsetAsync(C + (int64_t)i * ldc, 0, (size_t)N * sizeof(float), c->stream));
        } else {
            for (int i = 0; i < M; i++) CUBLAS_CHECK(cublasSscal(c->blas, N, &beta, C + (int64_t)i * ldc, 1));
        }
        return;
    }
    CUBLAS_CHECK(cublasSgemm(c->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                             &alpha, B, ldb, A, lda, &beta, C, ldc));
}

__global__ void widen_bf16(const __nv_bfloat16 *src, float *dst, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __bfloat162float(src[i]);
}
__global__ void widen_f16(const __half *src, float *dst, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __half2float(src[i]);
}

/* W as fp32: itself, or widened into the workspace */
static const float *weight_f32(backend *be, const void *W, tensor_dtype wt, int out, int in) {
    if (wt == TENSOR_F32) return (const float *)W;
    cuda_ctx *c = cuda_ctx_of(be);
    int64_t n = (int64_t)out * in;
    float *w = (float *)cuda_scratch(be, (size_t)n * sizeof(float));
    if (wt == TENSOR_BF16) widen_bf16<<<cuda_blocks(n, 256), 256, 0, c->stream>>>((const __nv_bfloat16 *)W, w, n);
    else widen_f16<<<cuda_blocks(n, 256), 256, 0, c->stream>>>((const __half *)W, w, n);
    CU_LAUNCHED();
    return w;
}

void cuda_linear_fwd(backend *be, float *y, const float *x, const void *W, tensor_dtype wt, int N, int in, int out,
                     bool acc) {
    const float *w = weight_f32(be, W, wt, out, in);
    cuda_gemm(be, false, true, N, out, in, 1.0f, x, in, w, in, acc ? 1.0f : 0.0f, y, out);
}

void cuda_linear_bwd(backend *be, float *dx, float *dW, const float *dy, const float *x, const void *W,
                     tensor_dtype wt, int N, int in, int out, bool acc_dx) {
    if (dx) {
        const float *w = weight_f32(be, W, wt, out, in);
        cuda_gemm(be, false, false, N, in, out, 1.0f, dy, out, w, in, acc_dx ? 1.0f : 0.0f, dx, in);
    }
    if (dW) cuda_gemm(be, true, false, out, in, N, 1.0f, dy, out, x, in, 1.0f, dW, in);
}
