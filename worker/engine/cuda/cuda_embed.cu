/* cuda_embed.cu - token embedding lookup and its scatter-add backward on the GPU. The backward
 * is one thread per column walking the rows in order, so repeated ids add up deterministically
 * in the cpu backend's order. */
#include "worker/engine/cuda/cuda_common.cuh"

__global__ void emb_fwd_k(float *out, const float *W, const int32_t *ids, int N, int D) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)N * D) return;
    int n = (int)(i / D), d = (int)(i % D);
    out[i] = W[(int64_t)ids[n] * D + d];
}

__global__ void emb_bwd_k(float *dW, const float *dout, const int32_t *ids, int N, int D) {
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    for (int n = 0; n < N; n++) dW[(int64_t)ids[n] * D + d] += dout[(int64_t)n * D + d];
}

void cuda_embedding_fwd(backend *be, float *out, const float *W, const int32_t *ids, int N, int D) {
    if (N <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    emb_fwd_k<<<cuda_blocks((int64_t)N * D, 256), 256, 0, c->stream>>>(out, W, ids, N, D);
    CU_LAUNCHED();
}

void cuda_embedding_bwd(backend *be, float *dW, const float *dout, const int32_t *ids, int N, int D) {
    if (N <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    emb_bwd_k<<<cuda_blocks(D, 128), 128, 0, c->stream>>>(dW, dout, ids, N, D);
    CU_LAUNCHED();
}
