/* cpu_optim.c - one Adam/AdamW step, in the three variants the references use
 * (algorithms.md §0.3): torch.optim.AdamW, transformers.AdamW, torch.optim.Adam (L2 decay).
 * cpu_adam_range_ref is the reference loop; where cpu_simd_lanes() says 8, cpu_avx2.c's
 * cpu_adam_range_8 runs the same operations 8 elements at a time (the same bits). */
#include <math.h>

#include "worker/engine/cpu/cpu_ops.h"

void cpu_adam_range_ref(float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap) {
    const float b1 = ap->beta1, b2 = ap->beta2, lr = ap->lr, wd = ap->weight_decay, eps = ap->eps;
    const double bc1 = 1.0 - pow(b1, (double)ap->step), bc2 = 1.0 - pow(b2, (double)ap->step);
    switch (ap->variant) {
    case ADAM_TORCH_ADAMW: {
        // p *= 1 - lr wd; m,v update; p -= (lr/bc1) m / (sqrt(v)/sqrt(bc2) + eps)
        const float step_size = (float)(lr / bc1), sq_bc2 = (float)sqrt(bc2);
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            p[i] *= 1.0f - lr * wd;
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            p[i] -= step_size * m[i] / (sqrtf(v[i]) / sq_bc2 + eps);
        }
        break;
    }
    case ADAM_HF_ADAMW: {
        // m,v update; p -= lr sqrt(bc2)/bc1 · m / (sqrt(v) + eps); then p -= lr wd p
        const float step_size = (float)(lr * sqrt(bc2) / bc1);
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            p[i] -= step_size * m[i] / (sqrtf(v[i]) + eps);
            if (wd > 0.0f) p[i] -= lr * wd * p[i];
        }
        break;
    }
    case ADAM_TORCH_ADAM: {
        // g += wd p; then torch Adam without decoupled decay
        const float step_size = (float)(lr / bc1), sq_bc2 = (float)sqrt(bc2);
        for (int64_t i = 0; i < n; i++) {
            float gi = g[i] + wd * p[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            p[i] -= step_size * m[i] / (sqrtf(v[i]) / sq_bc2 + eps);
        }
        break;
    }
    }
}

#define ADAM_PAR_MIN (1 << 18)  // elements below which one thread does everything

typedef struct adam_args { float *p, *m, *v; const float *g; int64_t n; int nt; const adam_params *ap; } adam_args;

static void adam_task(void *ctx, int task, int thread) {
    adam_args *a = ctx;
    int64_t lo = a->n * task / a->nt, hi = a->n * (task + 1) / a->nt;
    if (cpu_simd_lanes() == 8) cpu_adam_range_8(a->p + lo, a->g + lo, a->m + lo, a->v + lo, hi - lo, a->ap);
    else cpu_adam_range_ref(a->p + lo, a->g + lo, a->m + lo, a->v + lo, hi - lo, a->ap);
}

// elementwise, so the result does not depend on how the range is split over threads
void cpu_adam_step(backend *be, float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap) {
    int nt = n >= ADAM_PAR_MIN ? be->threads : 1;
    nt = nt < 1 ? 1 : (nt > 64 ? 64 : nt);
    adam_args a = {p, m, v, g, n, nt, ap};
    cpu_parallel_for(be, nt, nt, adam_task, &a);
}
