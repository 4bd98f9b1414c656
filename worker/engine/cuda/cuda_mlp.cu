/* cuda_mlp.cu - SwiGLU forward and backward on the GPU, elementwise: out = silu(g) u,
 * silu(x) = x / (1 + e^-x); dg = dout u silu'(g), du = dout silu(g). */
#include "worker/engine/cuda/cuda_common.cuh"

__global__ void swiglu_fwd_k(float *out, const float *g, const float *u, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = g[i], s = 1.0f / (1.0f + expf(-x));
    out[i] = x * s * u[i];
}

__global__ void swiglu_bwd_k(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float x = g[i], s = 1.0f / (1.0f + expf(-x)), d = dout[i], uu = u[i];
    dg[i] = d * uu * s * (1.0f + x * (1.0f - s));
    du[i] = d * x * s;
}

void cuda_swiglu_fwd(backend *be, float *out, const float *g, const float *u, int64_t n) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    swiglu_fwd_k<<<cuda_blocks(n, 256), 256, 0, c->stream>>>(out, g, u, n);
    CU_LAUNCHED();
}

void cuda_swiglu_bwd(backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    swiglu_bwd_k<<<cuda_blocks(n, 256), 256, 0, c->stream>>>(dg, du, dout, g, u, n);
    CU_LAUNCHED();
}
