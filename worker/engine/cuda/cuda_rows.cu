/* cuda_rows.cu - gathers and scatters of token rows on the GPU (the head's rows, KV-cache writes,
 * hook edits, gradient stops). Scatters are one thread per column walking the rows in index order,
 * so repeated rows behave exactly as on the cpu (the last SET wins; ADDs sum in order). */
#include "worker/engine/cuda/cuda_common.cuh"

__global__ void gather_k(float *dst, const float *src, const int32_t *rows, int n, int D) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n * D) return;
    int r = (int)(i / D), d = (int)(i % D);
    dst[i] = src[(int64_t)rows[r] * D + d];
}

__global__ void scatter_k(float *dst, const float *src, const int32_t *rows, int n, int D, int add) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    for (int r = 0; r < n; r++) {
        float *p = dst + (int64_t)rows[r] * D + d;
        *p = add ? *p + src[(int64_t)r * D + d] : src[(int64_t)r * D + d];
    }
}

__global__ void fill_k(float *dst, const int32_t *rows, int n, int D, float value) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)n * D) return;
    dst[(int64_t)rows[i / D] * D + i % D] = value;
}

void cuda_rows_gather(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    gather_k<<<cuda_blocks((int64_t)n * D, 256), 256, 0, c->stream>>>(dst, src, rows, n, D);
    CU_LAUNCHED();
}

void cuda_rows_scatter(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D,
                       backend_rows_mode mode) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    scatter_k<<<cuda_blocks(D, 128), 128, 0, c->stream>>>(dst, src, rows, n, D, mode == ROWS_ADD);
    CU_LAUNCHED();
}

void cuda_rows_fill(backend *be, float *dst, const int32_t *rows, int n, int D, float value) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    fill_k<<<cuda_blocks((int64_t)n * D, 256), 256, 0, c->stream>>>(dst, rows, n, D, value);
    CU_LAUNCHED();
}
