/* cuda_norm.cu - RMSNorm forward and backward on the GPU (HF LlamaRMSNorm: statistics in fp32,
 * the sums accumulated in double as on the cpu). One block per row for the row statistics; the
 * weight gradient is one thread per column summing its rows in order (deterministic). */
#include "worker/engine/cuda/cuda_common.cuh"

#define NT 256

/* block-wide sum of a double (every thread gets the result) */
__device__ double block_sum(double v) {
    __shared__ double sh[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    double t = 0;
    int nw = (blockDim.x + 31) >> 5;
    for (int i = 0; i < nw; i++) t += sh[i];
    return t;
}

__global__ void rms_fwd(float *out, float *rstd, const float *x, const float *w, int D, float eps) {
    const float *xr = x + (int64_t)blockIdx.x * D;
    float *o = out + (int64_t)blockIdx.x * D;
    double ss = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss += (double)xr[i] * xr[i];
    ss = block_sum(ss);
    float r = (float)(1.0 / sqrt(ss / D + (double)eps));
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = r;
    __syncthreads();  // out may alias x: every thread has read its x before anyone writes
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = xr[i] * r * w[i];
}

void cuda_rmsnorm_fwd(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D, float eps) {
    if (N <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    rms_fwd<<<N, NT, 0, c->stream>>>(out, rstd, x, w, D, eps);
    CU_LAUNCHED();
}

// dx_i = r g_i w_i - (r³/D) x_i Σ_j g_j w_j x_j
__global__ void rms_bwd_dx(float *dx, const float *dout, const float *x, const float *w, const float *rstd, int D,
                           bool acc) {
    const int64_t off = (int64_t)blockIdx.x * D;
    const float r = rstd[blockIdx.x];
    double s = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) s += (double)dout[off + i] * w[i] * x[off + i];
    s = block_sum(s);
    const float k = (float)((double)r * r * r / D * s);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = r * dout[off + i] * w[i] - k * x[off + i];
        dx[off + i] = acc ? dx[off + i] + v : v;
    }
}

// dw_i += Σ_n g_ni x_ni r_n (rows in order)
__global__ void rms_bwd_dw(float *dw, const float *dout, const float *x, const float *rstd, int N, int D) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= D) return;
    double s = 0;
    for (int n = 0; n < N; n++) s += (double)dout[(int64_t)n * D + i] * x[(int64_t)n * D + i] * rstd[n];
    dw[i] += (float)s;
}

void cuda_rmsnorm_bwd(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const float *rstd, int N, int D, bool acc_dx) {
    if (N <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    if (dw) { rms_bwd_dw<<<cuda_blocks(D, NT), NT, 0, c->stream>>>(dw, dout, x, rstd, N, D); CU_LAUNCHED(); }
    if (dx) { rms_bwd_dx<<<N, NT, 0, c->stream>>>(dx, dout, x, w, rstd, D, acc_dx); CU_LAUNCHED(); }
}
