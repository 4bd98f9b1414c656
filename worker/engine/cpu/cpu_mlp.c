/* cpu_mlp.c - the SwiGLU gate of the Llama MLP: silu(gate) * up, and its backward. */
#include <math.h>

#include "worker/engine/cpu/cpu_ops.h"

// out, g, u [n]
void cpu_swiglu_fwd(float *out, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = g[i];
        out[i] = x / (1.0f + expf(-x)) * u[i];
    }
}

// d silu(x)/dx = s (1 + x (1 - s)), s = sigmoid(x)
void cpu_swiglu_bwd(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float x = g[i], s = 1.0f / (1.0f + expf(-x)), d = dout[i];
        float ui = u[i];
        du[i] = d * x * s;
        dg[i] = d * ui * s * (1.0f + x * (1.0f - s));
    }
}
