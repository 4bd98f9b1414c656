/* cuda_elementwise.cu - add, scale, axpy and the two reductions on the GPU. Reductions write one
 * double per block (a fixed partition of the range), and the host adds the partials in order:
 * deterministic for a given n. */
#include <vector>

#include "worker/engine/cuda/cuda_common.cuh"

#define NT 256
#define RED_BLOCKS 256

__global__ void add_k(float *out, const float *a, const float *b, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}
__global__ void scale_k(float *x, float s, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}
__global__ void axpy_k(float *y, float a, const float *x, int64_t n) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}

// block b sums its contiguous chunk (x or x² in double) into part[b]
__global__ void reduce_k(double *part, const float *x, int64_t n, int squares) {
    __shared__ double sh[NT / 32];
    int64_t chunk = (n + gridDim.x - 1) / gridDim.x, lo = blockIdx.x * chunk, hi = lo + chunk < n ? lo + chunk : n;
    double s = 0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += squares ? (double)x[i] * x[i] : (double)x[i];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0;
        for (int i = 0; i < NT / 32; i++) t += sh[i];
        part[blockIdx.x] = t;
    }
}

void cuda_add(backend *be, float *out, const float *a, const float *b, int64_t n) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    add_k<<<cuda_blocks(n, NT), NT, 0, c->stream>>>(out, a, b, n);
    CU_LAUNCHED();
}
void cuda_scale(backend *be, float *x, float s, int64_t n) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    scale_k<<<cuda_blocks(n, NT), NT, 0, c->stream>>>(x, s, n);
    CU_LAUNCHED();
}
void cuda_axpy(backend *be, float *y, float a, const float *x, int64_t n) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    axpy_k<<<cuda_blocks(n, NT), NT, 0, c->stream>>>(y, a, x, n);
    CU_LAUNCHED();
}

static double reduce(backend *be, const float *x, int64_t n, int squares) {
    if (n <= 0) return 0.0;
    cuda_ctx *c = cuda_ctx_of(be);
    int nb = n < (int64_t)RED_BLOCKS * NT ? (int)cuda_blocks(n, NT) : RED_BLOCKS;
    double *part = (double *)cuda_scratch(be, (size_t)nb * sizeof(double));
    reduce_k<<<nb, NT, 0, c->stream>>>(part, x, n, squares);
    CU_LAUNCHED();
    std::vector<double> h(nb);
    backend_download(be, h.data(), part, (size_t)nb * sizeof(double));
    double s = 0;
    for (int i = 0; i < nb; i++) s += h[i];
    return s;
}
double cuda_sum(backend *be, const float *x, int64_t n) { return reduce(be, x, n, 0); }
double cuda_sumsq(backend *be, const float *x, int64_t n) { return reduce(be, x, n, 1); }
