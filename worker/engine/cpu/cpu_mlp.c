/* cpu_mlp.c - the SwiGLU gate of the Llama MLP: silu(gate) * up, and its backward. */
#include "worker/engine/cpu/cpu_ops.h"

#define SW_CHUNK 512  // exp(-g) is computed a chunk at a time by the vectorised cpu_vexp

// out, g, u [n]
void cpu_swiglu_fwd(float *out, const float *g, const float *u, int64_t n) {
    float e[SW_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += SW_CHUNK) {
        int m = n - i0 < SW_CHUNK ? (int)(n - i0) : SW_CHUNK;
        for (int j = 0; j < m; j++) e[j] = -g[i0 + j];
        cpu_vexp(e, e, m);
        for (int j = 0; j < m; j++) {
            int64_t i = i0 + j;
            float x = g[i], ui = u[i];
            out[i] = x / (1.0f + e[j]) * ui;
        }
    }
}

// d silu(x)/dx = s (1 + x (1 - s)), s = sigmoid(x); dg may alias dout
void cpu_swiglu_bwd(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    float e[SW_CHUNK];
    for (int64_t i0 = 0; i0 < n; i0 += SW_CHUNK) {
        int m = n - i0 < SW_CHUNK ? (int)(n - i0) : SW_CHUNK;
        for (int j = 0; j < m; j++) e[j] = -g[i0 + j];
        cpu_vexp(e, e, m);
        for (int j = 0; j < m; j++) {
            int64_t i = i0 + j;
            float x = g[i], s = 1.0f / (1.0f + e[j]), d = dout[i], ui = u[i];
            du[i] = d * x * s;
            dg[i] = d * ui * s * (1.0f + x * (1.0f - s));
        }
    }
}
