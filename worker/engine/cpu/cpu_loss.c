/* cpu_loss.c - softmax cross-entropy with an ignore index (torch CrossEntropyLoss, mean reduction
 * over the non-ignored rows). exponentials in fp32, row sums in double. */
#include <math.h>

#include "worker/engine/cpu/cpu_ops.h"

#define CE_CHUNK 1024

// logsumexp of a row: fp32 exponentials of (x - max) (cpu_vexp, ~1 ulp), summed in double
static double row_lse(const float *x, int V) {
    float mx = x[0], e[CE_CHUNK];
    for (int j = 1; j < V; j++) mx = x[j] > mx ? x[j] : mx;
    double s = 0.0;
    for (int j0 = 0; j0 < V; j0 += CE_CHUNK) {
        int m = V - j0 < CE_CHUNK ? V - j0 : CE_CHUNK;
        for (int j = 0; j < m; j++) e[j] = x[j0 + j] - mx;
        cpu_vexp(e, e, m);
        for (int j = 0; j < m; j++) s += e[j];
    }
    return mx + log(s);
}

// logits [N,V]; targets [N]; loss, lse [N]
double cpu_ce_fwd(float *loss, float *lse, const float *logits, const int32_t *targets, int N, int V,
                  int *n_valid) {
    double tot = 0.0;
    int cnt = 0;
    for (int n = 0; n < N; n++) {
        const float *x = logits + (int64_t)n * V;
        int t = targets[n];
        if (t == LOSS_IGNORE_INDEX || t < 0 || t >= V) {
            if (loss) loss[n] = 0.0f;
            if (lse) lse[n] = 0.0f;
            continue;
        }
        double l = row_lse(x, V);
        double li = l - x[t];
        if (loss) loss[n] = (float)li;
        if (lse) lse[n] = (float)l;
        tot += li;
        cnt++;
    }
    if (n_valid) *n_valid = cnt;
    return cnt ? tot / cnt : 0.0;
}

// dlogits [N,V] = scale (softmax - onehot); lse from ce_fwd (recomputed when NULL)
void cpu_ce_bwd(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                int N, int V, float scale) {
    for (int n = 0; n < N; n++) {
        const float *x = logits + (int64_t)n * V;
        float *d = dlogits + (int64_t)n * V;
        int t = targets[n];
        if (t == LOSS_IGNORE_INDEX || t < 0 || t >= V) {
            for (int j = 0; j < V; j++) d[j] = 0.0f;
            continue;
        }
        float l = lse ? lse[n] : (float)row_lse(x, V);
        for (int j = 0; j < V; j++) d[j] = x[j] - l;  // in place when d == x
        cpu_vexp(d, d, V);
        for (int j = 0; j < V; j++) d[j] *= scale;
        d[t] -= scale;
    }
}
