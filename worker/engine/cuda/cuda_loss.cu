/* cuda_loss.cu - softmax cross-entropy per row on the GPU: one block per row (max, then
 * Σ exp in double), the per-row loss and logsumexp kept on the device; the mean over the counted
 * rows is summed on the host in double in row order (one download of N floats and N targets). */
#include <vector>

#include "worker/engine/cuda/cuda_common.cuh"

#define NT 256

__device__ static float bmax(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t = fmaxf(t, sh[i]);
    return t;
}
__device__ static double bsum(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) t += sh[i];
    return t;
}

__global__ void ce_fwd_k(float *loss, float *lse, const float *x, const int32_t *tg, int V) {
    __shared__ float shf[32];
    __shared__ double shd[32];
    const float *r = x + (int64_t)blockIdx.x * V;
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, r[j]);
    mx = bmax(mx, shf);
    double s = 0;
    for (int j = threadIdx.x; j < V; j += blockDim.x) s += exp((double)(r[j] - mx));
    s = bsum(s, shd);
    if (threadIdx.x == 0) {
        float l = mx + (float)log(s);
        lse[blockIdx.x] = l;
        int t = tg[blockIdx.x];
        loss[blockIdx.x] = t == LOSS_IGNORE_INDEX ? 0.0f : l - r[t];
    }
}

double cuda_ce_fwd(backend *be, float *loss, float *lse, const float *logits, const int32_t *targets, int N, int V,
                   int *n_valid) {
    if (n_valid) *n_valid = 0;
    if (N <= 0) return 0.0;
    cuda_ctx *c = cuda_ctx_of(be);
    float *scratch = (float *)cuda_scratch(be, (size_t)2 * N * sizeof(float));
    float *l = loss ? loss : scratch, *s = lse ? lse : scratch + N;
    ce_fwd_k<<<N, NT, 0, c->stream>>>(l, s, logits, targets, V);
    CU_LAUNCHED();
    std::vector<float> hl(N);
    std::vector<int32_t> ht(N);
    backend_download(be, hl.data(), l, (size_t)N * sizeof(float));
    backend_download(be, ht.data(), targets, (size_t)N * sizeof(int32_t));
    double sum = 0;
    int nv = 0;
    for (int i = 0; i < N; i++)
        if (ht[i] != LOSS_IGNORE_INDEX) { sum += hl[i]; nv++; }
    if (n_valid) *n_valid = nv;
    return nv ? sum / nv : 0.0;
}

__global__ void ce_bwd_k(float *d, const float *x, const float *lse, const int32_t *tg, int V, float scale) {
    const int64_t off = (int64_t)blockIdx.x * V;
    const int t = tg[blockIdx.x];
    const float l = lse[blockIdx.x];
    for (int j = threadIdx.x; j < V; j += blockDim.x)
        d[off + j] = t == LOSS_IGNORE_INDEX ? 0.0f : scale * (expf(x[off + j] - l) - (j == t ? 1.0f : 0.0f));
}

void cuda_ce_bwd(backend *be, float *dlogits, const float *logits, const float *lse, const int32_t *targets, int N,
                 int V, float scale) {
    if (N <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    ce_bwd_k<<<N, NT, 0, c->stream>>>(dlogits, logits, lse, targets, V, scale);
    CU_LAUNCHED();
}
