/* cpu_loss.c - softmax cross-entropy with an ignore index (torch CrossEntropyLoss, mean reduction
 * over the non-ignored rows). Exponentials in fp32 (vectorised, ~1 ulp), row sums in double. */
#include <math.h>
#include <stdlib.h>

#include "common/util.h"
#include "worker/engine/cpu/cpu_ops.h"

// logsumexp of a row: fp32 exponentials of (x - max) (~1 ulp), summed in double
static double row_lse(const float *x, int V, float *scratch) {
    const float mx = cpu_vmax(x, V);
    return mx + log(cpu_vexp_sum(scratch, x, mx, V));
}

// logits [N,V]; targets [N]; loss, lse [N]
double cpu_ce_fwd(float *loss, float *lse, const float *logits, const int32_t *targets, int N, int V,
                  int *n_valid) {
    double tot = 0.0;
    int cnt = 0;
    float *scratch = xmalloc((size_t)V * sizeof(float));
    for (int n = 0; n < N; n++) {
        const float *x = logits + (int64_t)n * V;
        int t = targets[n];
        if (t == LOSS_IGNORE_INDEX || t < 0 || t >= V) {
            if (loss) loss[n] = 0.0f;
            if (lse) lse[n] = 0.0f;
            continue;
        }
        double l = row_lse(x, V, scratch);
        double li = l - x[t];
        if (loss) loss[n] = (float)li;
        if (lse) lse[n] = (float)l;
        tot += li;
        cnt++;
    }
    free(scratch);
    if (n_valid) *n_valid = cnt;
    return cnt ? tot / cnt : 0.0;
}

// dlogits [N,V] = scale (softmax - onehot); lse from ce_fwd (recomputed when NULL)
void cpu_ce_bwd(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                int N, int V, float scale) {
    float *scratch = lse ? NULL : xmalloc((size_t)V * sizeof(float));
    for (int n = 0; n < N; n++) {
        const float *x = logits + (int64_t)n * V;
        float *d = dlogits + (int64_t)n * V;
        int t = targets[n];
        if (t == LOSS_IGNORE_INDEX || t < 0 || t >= V) {
            for (int j = 0; j < V; j++) d[j] = 0.0f;
            continue;
        }
        float l = lse ? lse[n] : (float)row_lse(x, V, scratch);
        cpu_vexp_sum(d, x, l, V);  // in place when d == x
        cpu_vscale(d, scale, V);
        d[t] -= scale;
    }
    free(scratch);
}
