/* cuda_rope.cu - rotary position embeddings on the GPU. The cos/sin table is computed on the host
 * by the cpu backend's code (the same fp32 angle rounding as HF, the Llama-3 scaling) and
 * uploaded, so both backends use bit-identical tables; the rotation is one thread per pair. */
#include "worker/engine/cuda/cuda_common.cuh"

extern "C" {
#include "worker/engine/cpu/cpu_ops.h"
}

void cuda_rope_table(backend *be, float *cos, float *sin, int P, const rope_params *rp) {
    size_t n = (size_t)P * (rp->head_dim / 2);
    float *hc = (float *)malloc(n * sizeof(float)), *hs = (float *)malloc(n * sizeof(float));
    if (!hc || !hs) cuda_fatal(__FILE__, __LINE__, "malloc", "no host memory for the rope table");
    cpu_rope_table(NULL, hc, hs, P, rp);
    backend_upload(be, cos, hc, n * sizeof(float));
    backend_upload(be, sin, hs, n * sizeof(float));
    free(hc);
    free(hs);
}

// pair (n, h, i): (x1, x2) -> (x1 c - s2 x2, x2 c + s2 x1), s2 = +sin forward, -sin backward
__global__ void rope_k(float *x, const int32_t *pos, const float *cs, const float *sn, int N, int nh, int Dh, float dir) {
    int half = Dh / 2;
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, total = (int64_t)N * nh * half;
    if (idx >= total) return;
    int i = (int)(idx % half);
    int64_t nhh = idx / half;
    int n = (int)(nhh / nh);
    float *r = x + nhh * Dh;
    float c = cs[(int64_t)pos[n] * half + i], s = dir * sn[(int64_t)pos[n] * half + i];
    float x1 = r[i], x2 = r[i + half];
    r[i] = x1 * c - x2 * s;
    r[i + half] = x2 * c + x1 * s;
}

void cuda_rope_fwd(backend *be, float *x, const int32_t *pos, const float *cos, const float *sin, int N, int nh, int Dh) {
    int64_t total = (int64_t)N * nh * (Dh / 2);
    if (total <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    rope_k<<<cuda_blocks(total, 256), 256, 0, c->stream>>>(x, pos, cos, sin, N, nh, Dh, 1.0f);
    CU_LAUNCHED();
}

void cuda_rope_bwd(backend *be, float *dx, const int32_t *pos, const float *cos, const float *sin, int N, int nh, int Dh) {
    int64_t total = (int64_t)N * nh * (Dh / 2);
    if (total <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    rope_k<<<cuda_blocks(total, 256), 256, 0, c->stream>>>(dx, pos, cos, sin, N, nh, Dh, -1.0f);
    CU_LAUNCHED();
}
