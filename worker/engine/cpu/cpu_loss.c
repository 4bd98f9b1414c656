/* cpu_loss.c - softmax cross-entropy with an ignore index (torch CrossEntropyLoss, mean reduction
 * over the non-ignored rows). Exponentials in fp32 (vectorised, ~1 ulp), row sums in double.
 * Rows are split into one contiguous range per thread (cpu_parallel_for) when the work is large;
 * the mean adds the per-range sums in range order, so results depend only on the thread count. */
#include <math.h>
#include <stdlib.h>

#include "common/util.h"
#include "worker/engine/cpu/cpu_ops.h"

#define CE_PAR_MIN (1 << 18)  // logits below which one thread does all rows

// logsumexp of a row: fp32 exponentials of (x - max) (~1 ulp), summed in double
static double row_lse(const float *x, int V, float *scratch) {
    const float mx = cpu_vmax(x, V);
    return mx + log(cpu_vexp_sum(scratch, x, mx, V));
}

static int ce_threads(backend *be, int N, int V) {
    int nt = (int64_t)N * V >= CE_PAR_MIN ? be->threads : 1;
    if (nt > N) nt = N;
    if (nt > 64) nt = 64;
    return nt < 1 ? 1 : nt;
}

typedef struct ce_args {
    float *loss, *lse, *dlogits;
    const float *logits;
    const int32_t *targets;
    int N, V, nt;
    float scale;
    double part[64];  // per-range loss sums
    int cnt[64];      // per-range counted rows
} ce_args;

static void ce_fwd_range(void *ctx, int task, int thread) {
    ce_args *a = ctx;
    const int lo = (int)((int64_t)a->N * task / a->nt), hi = (int)((int64_t)a->N * (task + 1) / a->nt);
    float *scratch = xmalloc((size_t)a->V * sizeof(float));
    double tot = 0.0;
    int cnt = 0;
    for (int n = lo; n < hi; n++) {
        const float *x = a->logits + (int64_t)n * a->V;
        int t = a->targets[n];
        if (t == LOSS_IGNORE_INDEX || t < 0 || t >= a->V) {
            if (a->loss) a->loss[n] = 0.0f;
            if (a->lse) a->lse[n] = 0.0f;
            continue;
        }
        double l = row_lse(x, a->V, scratch);
        double li = l - x[t];
        if (a->loss) a->loss[n] = (float)li;
        if (a->lse) a->lse[n] = (float)l;
        tot += li;
        cnt++;
    }
    free(scratch);
    a->part[task] = tot;
    a->cnt[task] = cnt;
}

// logits [N,V]; targets [N]; loss, lse [N]
double cpu_ce_fwd(backend *be, float *loss, float *lse, const float *logits, const int32_t *targets, int N, int V,
                  int *n_valid) {
    ce_args a = {.loss = loss, .lse = lse, .logits = logits, .targets = targets, .N = N, .V = V,
                 .nt = ce_threads(be, N, V)};
    cpu_parallel_for(be, a.nt, a.nt, ce_fwd_range, &a);
    double tot = 0.0;
    int cnt = 0;
    for (int i = 0; i < a.nt; i++) { tot += a.part[i]; cnt += a.cnt[i]; }
    if (n_valid) *n_valid = cnt;
    return cnt ? tot / cnt : 0.0;
}

static void ce_bwd_range(void *ctx, int task, int thread) {
    ce_args *a = ctx;
    const int lo = (int)((int64_t)a->N * task / a->nt), hi = (int)((int64_t)a->N * (task + 1) / a->nt);
    const int V = a->V;
    float *scratch = a->lse ? NULL : xmalloc((size_t)V * sizeof(float));
    for (int n = lo; n < hi; n++) {
        const float *x = a->logits + (int64_t)n * V;
        float *d = a->dlogits + (int64_t)n * V;
        int t = a->targets[n];
        if (t == LOSS_IGNORE_INDEX || t < 0 || t >= V) {
            for (int j = 0; j < V; j++) d[j] = 0.0f;
            continue;
        }
        float l = a->lse ? a->lse[n] : (float)row_lse(x, V, scratch);
        if (cpu_simd_lanes() == 8) cpu_vexp_scale_8(d, x, l, a->scale, V);  // one pass, the same bits
        else {
            cpu_vexp_sum(d, x, l, V);  // in place when d == x
            cpu_vscale(d, a->scale, V);
        }
        d[t] -= a->scale;
    }
    free(scratch);
}

// dlogits [N,V] = scale (softmax - onehot); lse from ce_fwd (recomputed when NULL)
void cpu_ce_bwd(backend *be, float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                int N, int V, float scale) {
    ce_args a = {.lse = (float *)lse, .dlogits = dlogits, .logits = logits, .targets = targets, .N = N, .V = V,
                 .nt = ce_threads(be, N, V), .scale = scale};
    cpu_parallel_for(be, a.nt, a.nt, ce_bwd_range, &a);
}
