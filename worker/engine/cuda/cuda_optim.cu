/* cuda_optim.cu - one Adam/AdamW step on the GPU in the three variants of backend.h, elementwise
 * with the cpu backend's fp32 formulas (bias corrections computed in double on the host). */
#include <math.h>

#include "worker/engine/cuda/cuda_common.cuh"

__global__ void adam_k(float *p, const float *g, float *m, float *v, int64_t n, int variant, float lr, float b1,
                       float b2, float eps, float wd, float step_size, float sq_bc2) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i], pi = p[i];
    if (variant == ADAM_TORCH_ADAM) gi += wd * pi;
    if (variant == ADAM_TORCH_ADAMW) pi *= 1.0f - lr * wd;
    float mi = b1 * m[i] + (1.0f - b1) * gi;
    float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    if (variant == ADAM_HF_ADAMW) {
        pi -= step_size * mi / (sqrtf(vi) + eps);
        if (wd > 0.0f) pi -= lr * wd * pi;
    } else {
        pi -= step_size * mi / (sqrtf(vi) / sq_bc2 + eps);
    }
    m[i] = mi;
    v[i] = vi;
    p[i] = pi;
}

void cuda_adam_step(backend *be, float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap) {
    if (n <= 0) return;
    cuda_ctx *c = cuda_ctx_of(be);
    const double bc1 = 1.0 - pow(ap->beta1, (double)ap->step), bc2 = 1.0 - pow(ap->beta2, (double)ap->step);
    const float step_size = ap->variant == ADAM_HF_ADAMW ? (float)(ap->lr * sqrt(bc2) / bc1) : (float)(ap->lr / bc1);
    adam_k<<<cuda_blocks(n, 256), 256, 0, c->stream>>>(p, g, m, v, n, (int)ap->variant, ap->lr, ap->beta1, ap->beta2,
                                                        ap->eps, ap->weight_decay, step_size, (float)sqrt(bc2));
    CU_LAUNCHED();
}
