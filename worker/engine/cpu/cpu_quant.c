/* cpu_quant.c - the compression ops of the cpu backend (backend.h "compression"): Hessian and
 * column-norm accumulation, the quantisation grids of GPTQ and AWQ (algorithms.md §1.5), their
 * quantize-dequantize, the OBS column sweep shared by GPTQ and SparseGPT (§2, §3) and Wanda's
 * per-row selection (§4). Written from the algorithms' descriptions, not from the reference code.
 *
 * Rounding is rintf in the default rounding mode (round half to even, as torch.round). Loops over
 * rows run on the backend's threads (cpu_parallel_for); every row is written by one task and the
 * reductions (Σ e², masked counts) are summed per row and then in row order, so results are
 * bit-identical for a given thread count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"

void cpu_gram_acc(backend *be, float *H, const float *X, int n, int k, float alpha) {
    if (n <= 0 || k <= 0) return;
    /* H[k,k] += alpha Xᵀ X: one sgemm (the symmetric product written in both triangles) */
    cpu_gemm(be, true, false, k, k, n, alpha, X, k, X, k, 1.0f, H, k);
}

void cpu_colsumsq_acc(backend *be, float *out, const float *X, int n, int k) {
    double *acc = calloc((size_t)(k > 0 ? k : 1), sizeof(double));
    if (!acc) { /* no scratch: sum straight into out (still correct, fp32 order) */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < k; j++) out[j] += X[(int64_t)i * k + j] * X[(int64_t)i * k + j];
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *x = X + (int64_t)i * k;
        for (int j = 0; j < k; j++) acc[j] += (double)x[j] * x[j];
    }
    for (int j = 0; j < k; j++) out[j] += (float)acc[j];
    free(acc);
}

/* the grid of one group of values x[0..n) */
static void grid_of(const float *x, int n, int maxq, quant_grid grid, float *scale, float *zero) {
    float mn = x[0], mx = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    if (grid == QGRID_AWQ) {
        float s = fmaxf(mx - mn, 1e-5f) / (float)maxq;
        float z = -rintf(mn / s);
        *scale = s;
        *zero = fminf(fmaxf(z, 0.0f), (float)maxq);
        return;
    }
    float xmin = fminf(mn, 0.0f), xmax = fmaxf(mx, 0.0f);
    if (grid == QGRID_MINMAX_SYM) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0) xmin = -xmax;
    }
    if (xmin == 0.0f && xmax == 0.0f) { xmin = -1.0f; xmax = 1.0f; }
    float s = (xmax - xmin) / (float)maxq;
    *scale = s;
    *zero = grid == QGRID_MINMAX_SYM ? (float)(maxq + 1) / 2.0f : rintf(-xmin / s);
}

static inline float qdq(float w, float s, float z, float maxq) {
    float q = rintf(w / s) + z;
    q = fminf(fmaxf(q, 0.0f), maxq);
    return s * (q - z);
}

void cpu_quant_params(backend *be, float *scale, float *zero, const float *W, int rows, int cols, int ld, int group,
                      int bits, quant_grid grid) {
    int g = group > 0 ? group : cols, ng = (cols + g - 1) / g, maxq = (1 << bits) - 1;
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < ng; j++) {
            int c0 = j * g, n = cols - c0 < g ? cols - c0 : g;
            grid_of(W + (int64_t)r * ld + c0, n, maxq, grid, &scale[(int64_t)r * ng + j], &zero[(int64_t)r * ng + j]);
        }
}

void cpu_quant_dequant(backend *be, float *out, const float *W, const float *scale, const float *zero, int rows,
                       int cols, int group, int bits) {
    int g = group > 0 ? group : cols, ng = (cols + g - 1) / g;
    float maxq = (float)((1 << bits) - 1);
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int64_t pi = (int64_t)r * ng + c / g;
            out[(int64_t)r * cols + c] = qdq(W[(int64_t)r * cols + c], scale[pi], zero[pi], maxq);
        }
}

/* ---- the OBS column sweep ---------------------------------------------------------------------- */

typedef struct sweep_ctx {
    float *W;               /* [rows, cols] global weights (lazy-updated) */
    const float *U;         /* [cols, cols] */
    int rows, cols, i1, cnt, ng, g;
    const obs_params *p;
    const unsigned char *mask;   /* [rows, cnt] unstructured block mask or NULL */
    float *E;               /* [rows, cnt] errors of the block */
    float *scale, *zero;    /* [rows, ng] */
    double *loss;           /* [rows] Σ e² of the row in this block */
    int64_t *masked;        /* [rows] */
    float *scratch;         /* [threads, 2*cnt + m] */
    int scratch_stride;
} sweep_ctx;

static void sweep_row(void *arg, int r, int thread) {
    sweep_ctx *s = arg;
    const obs_params *p = s->p;
    int cols = s->cols, i1 = s->i1, cnt = s->cnt, m = p->prune_m;
    float *w1 = s->scratch + (size_t)thread * s->scratch_stride, *q1 = w1 + cnt;
    unsigned char nm_mask[1024];
    float *Wr = s->W + (int64_t)r * cols;
    memcpy(w1, Wr + i1, (size_t)cnt * sizeof(float));
    float maxq = p->bits > 0 ? (float)((1 << p->bits) - 1) : 0;
    double loss = 0;
    int64_t masked = 0;
    for (int i = 0; i < cnt; i++) {
        int c = i1 + i;
        bool pruned = false;
        if (p->prune_n > 0) {
            if (i % m == 0) { /* the n smallest W²/U_cc² of the m columns from i, on the current w1 */
                int w = cnt - i < m ? cnt - i : m;
                for (int j = 0; j < w; j++) nm_mask[j] = 0;
                for (int t = 0; t < p->prune_n && t < w; t++) {
                    int best = -1;
                    float bv = 0;
                    for (int j = 0; j < w; j++) {
                        if (nm_mask[j]) continue;
                        float d = s->U[(int64_t)(c + j) * cols + c + j];
                        float v = w1[i + j] * w1[i + j] / (d * d);
                        if (best < 0 || v < bv) { best = j; bv = v; }
                    }
                    nm_mask[best] = 1;
                }
            }
            pruned = nm_mask[i % m] != 0;
        } else if (s->mask) {
            pruned = s->mask[(int64_t)r * cnt + i] != 0;
        }
        float w = w1[i], q = pruned ? 0.0f : w;
        masked += pruned;
        if (p->bits > 0) {
            int gi = 0;
            if (s->g > 0) {
                gi = c / s->g;
                if (c % s->g == 0) { /* the group's params from the global W (lazy updates only) */
                    int n = cols - c < s->g ? cols - c : s->g;
                    grid_of(Wr + c, n, (int)maxq, p->grid, &s->scale[(int64_t)r * s->ng + gi],
                            &s->zero[(int64_t)r * s->ng + gi]);
                }
            }
            q = qdq(q, s->scale[(int64_t)r * s->ng + gi], s->zero[(int64_t)r * s->ng + gi], maxq);
        }
        float d = s->U[(int64_t)c * cols + c];
        float e = (w - q) / d;
        loss += (double)e * e;
        q1[i] = q;
        s->E[(int64_t)r * cnt + i] = e;
        const float *urow = s->U + (int64_t)c * cols + i1;
        for (int j = i + 1; j < cnt; j++) w1[j] -= e * urow[j];
    }
    memcpy(Wr + i1, q1, (size_t)cnt * sizeof(float));
    s->loss[r] += loss;
    s->masked[r] += masked;
}

typedef struct sal { float v; int i; } sal;
static int sal_cmp(const void *a, const void *b) {
    const sal *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

double cpu_obs_sweep(backend *be, float *W, const float *U, int rows, int cols, const obs_params *p, float *scale,
                     float *zero, int64_t *n_masked) {
    int B = p->block > 0 ? p->block : 128;
    int threads = be->threads > 0 ? be->threads : 1;
    int g = p->bits > 0 && p->group > 0 ? p->group : 0;
    int ng = g > 0 ? (cols + g - 1) / g : 1;
    sweep_ctx s = {.W = W, .U = U, .rows = rows, .cols = cols, .ng = ng, .g = g, .p = p, .scale = scale,
                   .zero = zero};
    int stride = 2 * B + 16;
    s.scratch_stride = stride;
    s.E = malloc((size_t)rows * B * sizeof(float));
    s.loss = calloc((size_t)rows, sizeof(double));
    s.masked = calloc((size_t)rows, sizeof(int64_t));
    s.scratch = malloc((size_t)threads * stride * sizeof(float));
    bool unstructured = p->sparsity > 0 && p->prune_n <= 0;
    unsigned char *mask = unstructured ? malloc((size_t)rows * B) : NULL;
    float *tmp = unstructured ? malloc((size_t)rows * B * sizeof(float)) : NULL;
    CIS_ASSERT(s.E && s.loss && s.masked && s.scratch && (!unstructured || (mask && tmp)));
    if (p->bits > 0 && g == 0) cpu_quant_params(be, scale, zero, W, rows, cols, cols, 0, p->bits, p->grid);
    for (int i1 = 0; i1 < cols; i1 += B) {
        int i2 = i1 + B < cols ? i1 + B : cols, cnt = i2 - i1;
        s.i1 = i1;
        s.cnt = cnt;
        s.mask = NULL;
        if (unstructured) { /* block-global threshold: the element at floor(s*rows*cnt) of the ascending order */
            int64_t n = (int64_t)rows * cnt;
            for (int r = 0; r < rows; r++)
                for (int i = 0; i < cnt; i++) {
                    float w = W[(int64_t)r * cols + i1 + i], d = U[(int64_t)(i1 + i) * cols + i1 + i];
                    tmp[(int64_t)r * cnt + i] = w * w / (d * d);
                }
            float *vals = malloc((size_t)n * sizeof(float));
            CIS_ASSERT(vals);
            for (int64_t j = 0; j < n; j++) vals[j] = tmp[j];
            int64_t k = (int64_t)((double)n * p->sparsity);
            if (k >= n) k = n - 1;
            float t = kth_smallest(vals, n, k); /* = the k-th element of the ascending sort */
            free(vals);
            for (int64_t j = 0; j < n; j++) mask[j] = tmp[j] <= t;
            s.mask = mask;
        }
        cpu_parallel_for(be, rows, threads, sweep_row, &s);
        if (i2 < cols) /* lazy batch update: W[:, i2:] -= E · U[i1:i2, i2:] */
            cpu_gemm(be, false, false, rows, cols - i2, cnt, -1.0f, s.E, cnt, U + (int64_t)i1 * cols + i2, cols,
                     1.0f, W + i2, cols);
    }
    double loss = 0;
    int64_t masked = 0;
    for (int r = 0; r < rows; r++) { loss += s.loss[r]; masked += s.masked[r]; }
    if (n_masked) *n_masked = masked;
    free(s.E); free(s.loss); free(s.masked); free(s.scratch); free(mask); free(tmp);
    return loss;
}

/* ---- Wanda's per-row selection ----------------------------------------------------------------- */

/* partition t[0..n) so that t[0..k) are the k smallest in (value, index) order, i.e. exactly the
 * first k of a stable ascending sort (the keys are distinct: indices break ties) */
static void sal_select(sal *t, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        sal pivot = t[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (sal_cmp(&t[i], &pivot) < 0) i++;
            while (sal_cmp(&t[j], &pivot) > 0) j--;
            if (i <= j) { sal x = t[i]; t[i] = t[j]; t[j] = x; i++; j--; }
        }
        if (k <= j) hi = j;
        else if (k >= i) lo = i;
        else return;
    }
}

typedef struct prune_ctx {
    float *W;
    const float *S;
    int cols, n_prune, prune_n, prune_m;
    sal *scratch;   /* [threads, cols] */
    int64_t *count; /* [rows] */
} prune_ctx;

static void prune_row(void *arg, int r, int thread) {
    prune_ctx *c = arg;
    sal *t = c->scratch + (size_t)thread * c->cols;
    float *w = c->W + (int64_t)r * c->cols;
    const float *s = c->S + (int64_t)r * c->cols;
    int64_t z = 0;
    if (c->prune_m > 0) {
        for (int g0 = 0; g0 < c->cols; g0 += c->prune_m) {
            int n = c->cols - g0 < c->prune_m ? c->cols - g0 : c->prune_m;
            for (int j = 0; j < n; j++) t[j] = (sal){s[g0 + j], g0 + j};
            qsort(t, (size_t)n, sizeof(sal), sal_cmp);
            for (int j = 0; j < c->prune_n && j < n; j++) { w[t[j].i] = 0.0f; z++; }
        }
    } else {
        for (int j = 0; j < c->cols; j++) t[j] = (sal){s[j], j};
        if (c->n_prune > 0 && c->n_prune < c->cols) sal_select(t, c->cols, c->n_prune); /* (value, index) order */
        for (int j = 0; j < c->n_prune && j < c->cols; j++) { w[t[j].i] = 0.0f; z++; }
    }
    c->count[r] = z;
}

int64_t cpu_row_prune(backend *be, float *W, const float *S, int rows, int cols, int n_prune, int prune_n,
                      int prune_m) {
    int threads = be->threads > 0 ? be->threads : 1;
    prune_ctx c = {.W = W, .S = S, .cols = cols, .n_prune = n_prune, .prune_n = prune_n, .prune_m = prune_m};
    c.scratch = malloc((size_t)threads * (cols > 0 ? cols : 1) * sizeof(sal));
    c.count = calloc((size_t)(rows > 0 ? rows : 1), sizeof(int64_t));
    CIS_ASSERT(c.scratch && c.count);
    cpu_parallel_for(be, rows, threads, prune_row, &c);
    int64_t z = 0;
    for (int r = 0; r < rows; r++) z += c.count[r];
    free(c.scratch); free(c.count);
    return z;
}
