/* cpu_embed.c - token embedding lookup and its scatter-add backward. */
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"

// out [N,D] = W[ids[n]]
void cpu_embedding_fwd(backend *be, float *out, const float *W, const int32_t *ids, int N, int D) {
    for (int n = 0; n < N; n++) memcpy(out + (int64_t)n * D, W + (int64_t)ids[n] * D, (size_t)D * sizeof(float));
}

// dW[ids[n]] += dout[n], in row order (deterministic)
void cpu_embedding_bwd(backend *be, float *dW, const float *dout, const int32_t *ids, int N, int D) {
    for (int n = 0; n < N; n++) {
        float *dst = dW + (int64_t)ids[n] * D;
        const float *src = dout + (int64_t)n * D;
        for (int i = 0; i < D; i++) dst[i] += src[i];
    }
}
