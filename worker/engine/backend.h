/* backend.h - the table of compute functions the engine runs on (ggml-style backend split).
 *
 * A backend is a `struct backend_ops` of function pointers, one entry per op (forward and
 * backward), grouped by op family. `backend_get("cpu")` returns the fp32 reference backend
 * (worker/engine/cpu/, OpenBLAS sgemm and LAPACK). The CUDA backend will fill the same table from
 * .cu files; nothing outside a backend includes CUDA headers, and callers only see float pointers
 * that the backend owns the placement of (host memory for cpu).
 *
 * Conventions for every entry:
 *  - Tensors are row-major fp32 arrays; shapes are given in the comments as [rows, cols] etc.
 *    N is the number of token rows (B*T flattened), D a width.
 *  - Forward entries overwrite their outputs. Backward entries ACCUMULATE (+=) into parameter
 *    gradients (dW, dw) so that several uses of a weight (tied embeddings) and several micro-batches
 *    add up, and OVERWRITE input gradients (dx) unless an `acc` flag says otherwise.
 *  - No entry allocates memory that outlives the call; no entry fails on valid shapes. Callers
 *    (model.c) validate shapes and ids before calling.
 *  - Deterministic for a given thread count: no atomics, fixed reduction orders.
 * See docs/engine.md ("Adding a backend op") for how to add an entry. */
#ifndef CISWEEP_ENGINE_BACKEND_H
#define CISWEEP_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOSS_IGNORE_INDEX (-100)   /* targets equal to this are skipped (torch CrossEntropyLoss) */

/* RoPE frequencies (HF LlamaRotaryEmbedding, incl. the Llama-3 "llama3" scaling). */
typedef struct rope_params {
    int head_dim;            /* Dh (even); the rotation pairs i and i + Dh/2 (rotate_half) */
    float theta;             /* rope_theta */
    int llama3_scaling;      /* 0 = none, 1 = rope_type "llama3" */
    float factor;            /* llama3 "factor" */
    float low_freq_factor;   /* llama3 "low_freq_factor" */
    float high_freq_factor;  /* llama3 "high_freq_factor" */
    int original_max_pos;    /* llama3 "original_max_position_embeddings" */
} rope_params;

/* Optimizer variants (algorithms.md §0.3). */
typedef enum adam_variant {
    ADAM_TORCH_ADAMW = 0,  /* torch.optim.AdamW: p -= lr*wd*p; denom = sqrt(v)/sqrt(bc2) + eps */
    ADAM_HF_ADAMW = 1,     /* transformers.AdamW: denom = sqrt(v) + eps, step = lr*sqrt(bc2)/bc1,
                              then p -= lr*wd*p on the updated p */
    ADAM_TORCH_ADAM = 2,   /* torch.optim.Adam: g += wd*p (L2), then as torch AdamW without decay */
} adam_variant;

typedef struct adam_params {
    adam_variant variant;
    float lr, beta1, beta2, eps, weight_decay;
    int64_t step;            /* 1-based step number after increment (bias corrections use it) */
} adam_params;

struct backend_ops {
    const char *name;                      /* "cpu" */
    /* set_threads: threads for GEMM/LAPACK (and the backend's own loops); <= 0 = all cores. */
    void (*set_threads)(int n);
    int (*get_threads)(void);

    /* ---- matmul -------------------------------------------------------------------------- */
    /* gemm: C[M,N] = alpha * op(A) op(B) + beta * C; op(A) is [M,K] (A is [K,M] when transA),
     * op(B) is [K,N] (B is [N,K] when transB); lda/ldb/ldc are row strides in elements. */
    void (*gemm)(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);
    /* linear_fwd: y[N,out] (+)= x[N,in] · W[out,in]ᵀ (HF nn.Linear without bias); acc adds. */
    void (*linear_fwd)(float *y, const float *x, const float *W, int N, int in, int out, bool acc);
    /* linear_bwd: dx[N,in] (+= if acc_dx, else =) dy[N,out] · W; dW[out,in] += dyᵀ · x.
     * dx or dW may be NULL to skip that product. */
    void (*linear_bwd)(float *dx, float *dW, const float *dy, const float *x, const float *W,
                       int N, int in, int out, bool acc_dx);

    /* ---- norms --------------------------------------------------------------------------- */
    /* rmsnorm_fwd: out[N,D] = x * rstd * w, rstd[N] = 1/sqrt(mean(x²) + eps) (HF LlamaRMSNorm:
     * statistics in fp32). rstd may be NULL. out may alias x. */
    void (*rmsnorm_fwd)(float *out, float *rstd, const float *x, const float *w, int N, int D, float eps);
    /* rmsnorm_bwd: dx[N,D] (+= if acc_dx) from dout; dw[D] += (may be NULL); rstd from forward. */
    void (*rmsnorm_bwd)(float *dx, float *dw, const float *dout, const float *x, const float *w,
                        const float *rstd, int N, int D, bool acc_dx);

    /* ---- rope ---------------------------------------------------------------------------- */
    /* rope_table: cos/sin [P, Dh/2] for positions 0..P-1 (angles rounded like HF: fp32 inv_freq
     * times fp32 position). */
    void (*rope_table)(float *cos, float *sin, int P, const rope_params *rp);
    /* rope_fwd: in place on x[N, nh, Dh] with row n at position pos[n] (0 <= pos < P of the table):
     * (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), x1 = x[:Dh/2], x2 = x[Dh/2:]. */
    void (*rope_fwd)(float *x, const int32_t *pos, const float *cos, const float *sin, int N, int nh, int Dh);
    /* rope_bwd: in place on dx[N, nh, Dh] (the transpose rotation). */
    void (*rope_bwd)(float *dx, const int32_t *pos, const float *cos, const float *sin, int N, int nh, int Dh);

    /* ---- attention ----------------------------------------------------------------------- */
    /* attention_fwd: grouped-query causal attention with a per-sequence key length.
     *  q   [B, Tq, H, Dh]        queries; query (b,t) sits at absolute position qpos[b*Tq+t]
     *  k,v [B, Tk, Hkv, Dh]      keys/values at positions 0..Tk-1 (a KV cache has Tk = capacity)
     *  out [B, Tq, H, Dh]        softmax(q kᵀ / sqrt(Dh)) v over the visible keys
     *  kv_len [B]                key j is visible to query (b,t) iff j <= qpos and j < kv_len[b]
     *                            (right padding: positions >= length are masked as keys); a query
     *                            with no visible key gets out = 0
     *  probs [B, H, Tq, Tk] or NULL: the softmax probabilities (0 where masked), kept for backward.
     * H % Hkv == 0; query head h reads kv head h / (H/Hkv). */
    void (*attention_fwd)(float *out, float *probs, const float *q, const float *k, const float *v,
                          const int32_t *qpos, const int32_t *kv_len, int B, int Tq, int Tk,
                          int H, int Hkv, int Dh);
    /* attention_bwd: dq = (overwrite), dk, dv = (overwrite) from dout and the forward's probs. */
    void (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                          const float *q, const float *k, const float *v, const int32_t *kv_len,
                          int B, int Tq, int Tk, int H, int Hkv, int Dh);

    /* ---- mlp ----------------------------------------------------------------------------- */
    /* swiglu_fwd: out[N,F] = silu(g) * u, silu(x) = x / (1 + e^-x). out may alias g or u. */
    void (*swiglu_fwd)(float *out, const float *g, const float *u, int64_t n);
    /* swiglu_bwd: dg, du (overwrite) from dout. */
    void (*swiglu_bwd)(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);

    /* ---- embedding ----------------------------------------------------------------------- */
    /* embedding_fwd: out[N,D] = W[ids[n], :] (ids checked by the caller). */
    void (*embedding_fwd)(float *out, const float *W, const int32_t *ids, int N, int D);
    /* embedding_bwd: dW[ids[n], :] += dout[n, :] (scatter-add, rows in order). */
    void (*embedding_bwd)(float *dW, const float *dout, const int32_t *ids, int N, int D);

    /* ---- loss ---------------------------------------------------------------------------- */
    /* ce_fwd: softmax cross-entropy per row: loss[n] = logsumexp(logits[n]) - logits[n][t[n]],
     * 0 for ignored rows (t[n] == LOSS_IGNORE_INDEX); lse[N] keeps logsumexp (may be NULL;
     * loss may be NULL). Returns the mean over non-ignored rows (0 when none), summed in double;
     * *n_valid (may be NULL) gets their count. */
    double (*ce_fwd)(float *loss, float *lse, const float *logits, const int32_t *targets,
                     int N, int V, int *n_valid);
    /* ce_bwd: dlogits[N,V] = scale * (softmax(logits) - onehot(t)), 0 rows for ignored targets.
     * For the mean loss, scale = dloss / n_valid. dlogits may alias logits. */
    void (*ce_bwd)(float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                   int N, int V, float scale);

    /* ---- elementwise and reductions ------------------------------------------------------ */
    void (*add)(float *out, const float *a, const float *b, int64_t n);   /* out = a + b */
    void (*scale)(float *x, float s, int64_t n);                          /* x *= s */
    void (*axpy)(float *y, float a, const float *x, int64_t n);           /* y += a x */
    double (*sum)(const float *x, int64_t n);                             /* Σ x (double accum) */
    double (*sumsq)(const float *x, int64_t n);                           /* Σ x² (double accum) */

    /* ---- optimizer ----------------------------------------------------------------------- */
    /* adam_step: one Adam/AdamW update of p[n] with gradient g, moments m, v (see adam_variant).
     * ap->step must already be the new (1-based) step count. g is not modified. */
    void (*adam_step)(float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap);

    /* ---- linear algebra (fp32, row-major, LAPACK) ---------------------------------------- */
    /* cholesky: A[n,n] symmetric positive definite -> its factor in place: lower L with A = L Lᵀ
     * (upper=false) or upper U with A = Uᵀ U (upper=true); the other triangle is zeroed.
     * Returns 0, or k > 0 when the leading minor of order k is not positive definite. */
    int (*cholesky)(float *A, int n, bool upper);
    /* tri_inv: in-place inverse of a triangular matrix (the other triangle is left zero).
     * Returns 0, or k > 0 when A[k-1][k-1] is exactly zero. */
    int (*tri_inv)(float *A, int n, bool upper);
    /* chol_solve: B[n,nrhs] <- A⁻¹ B given A's Cholesky factor (as returned by cholesky). */
    int (*chol_solve)(const float *F, float *Bm, int n, int nrhs, bool upper);
    /* tri_solve: B[n,nrhs] <- op(T)⁻¹ B, T triangular (upper/lower), transposed if trans. */
    void (*tri_solve)(const float *T, float *Bm, int n, int nrhs, bool upper, bool trans);
    /* spd_inverse: A[n,n] SPD -> A⁻¹ in place (full symmetric); returns as cholesky does. */
    int (*spd_inverse)(float *A, int n);
};

typedef struct backend_ops backend_ops;

/* backend_get: the table for "cpu" (and later "cuda"); NULL for an unknown name. The table is
 * static and lives for the whole process. */
const backend_ops *backend_get(const char *name);

#endif
