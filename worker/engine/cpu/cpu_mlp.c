/* cpu_mlp.c - the SwiGLU gate of the Llama MLP: silu(gate) * up, and its backward; elementwise, split
 * over threads in contiguous ranges when large (results independent of the split). The ranges
 * below are the 4-lane reference; where cpu_simd_lanes() says 8, cpu_avx2.c's fused 8-lane ranges
 * run instead (the same bits). */
#include "worker/engine/cpu/cpu_ops.h"

#define SW_CHUNK 512  // exp(-g) is computed a chunk at a time by the vectorised cpu_vexp

#define SW_PAR_MIN (1 << 18)  // elements below which one thread does everything

typedef struct sw_args { float *out, *dg, *du; const float *dout, *g, *u; int64_t n; int nt; } sw_args;

void cpu_swiglu_fwd_range_4(float *out, const float *g, const float *u, int64_t lo, int64_t hi) {
    float e[SW_CHUNK];
    for (int64_t i0 = lo; i0 < hi; i0 += SW_CHUNK) {
        int m = hi - i0 < SW_CHUNK ? (int)(hi - i0) : SW_CHUNK;
        for (int j = 0; j < m; j++) e[j] = -g[i0 + j];
        cpu_vexp_4(e, e, m);
        for (int j = 0; j < m; j++) {
            int64_t i = i0 + j;
            float x = g[i], ui = u[i];
            out[i] = x / (1.0f + e[j]) * ui;
        }
    }
}

static void sw_fwd_task(void *ctx, int task, int thread) {
    sw_args *a = ctx;
    int64_t lo = a->n * task / a->nt, hi = a->n * (task + 1) / a->nt;
    if (cpu_simd_lanes() == 8) cpu_swiglu_fwd_range_8(a->out, a->g, a->u, lo, hi);
    else cpu_swiglu_fwd_range_4(a->out, a->g, a->u, lo, hi);
}

static int sw_threads(backend *be, int64_t n) {
    int nt = n >= SW_PAR_MIN ? be->threads : 1;
    return nt < 1 ? 1 : (nt > 64 ? 64 : nt);
}

// out, g, u [n]
void cpu_swiglu_fwd(backend *be, float *out, const float *g, const float *u, int64_t n) {
    sw_args a = {.out = out, .g = g, .u = u, .n = n, .nt = sw_threads(be, n)};
    cpu_parallel_for(be, a.nt, a.nt, sw_fwd_task, &a);
}

// d silu(x)/dx = s (1 + x (1 - s)), s = sigmoid(x); dg may alias dout
void cpu_swiglu_bwd_range_4(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t lo,
                         int64_t hi) {
    float e[SW_CHUNK];
    for (int64_t i0 = lo; i0 < hi; i0 += SW_CHUNK) {
        int m = hi - i0 < SW_CHUNK ? (int)(hi - i0) : SW_CHUNK;
        for (int j = 0; j < m; j++) e[j] = -g[i0 + j];
        cpu_vexp_4(e, e, m);
        for (int j = 0; j < m; j++) {
            int64_t i = i0 + j;
            float x = g[i], s = 1.0f / (1.0f + e[j]), d = dout[i], ui = u[i];
            du[i] = d * x * s;
            dg[i] = d * ui * s * (1.0f + x * (1.0f - s));
        }
    }
}

static void sw_bwd_task(void *ctx, int task, int thread) {
    sw_args *a = ctx;
    int64_t lo = a->n * task / a->nt, hi = a->n * (task + 1) / a->nt;
    if (cpu_simd_lanes() == 8) cpu_swiglu_bwd_range_8(a->dg, a->du, a->dout, a->g, a->u, lo, hi);
    else cpu_swiglu_bwd_range_4(a->dg, a->du, a->dout, a->g, a->u, lo, hi);
}

void cpu_swiglu_bwd(backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n) {
    sw_args a = {.dg = dg, .du = du, .dout = dout, .g = g, .u = u, .n = n, .nt = sw_threads(be, n)};
    cpu_parallel_for(be, a.nt, a.nt, sw_bwd_task, &a);
}
