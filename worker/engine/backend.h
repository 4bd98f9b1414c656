/* backend.h - the compute backend the engine runs on: an instance with its own memory, threads
 * (later a CUDA stream and cuBLAS handle) and workspace, and a table of ops over that memory
 * (ggml's `{iface, context}` split; llm.c's CPU reference beside every kernel).
 *
 *   backend *be = backend_open("cpu", &(backend_opts){.threads = 2}, &err);   // or "cuda:0"
 *   float *x = backend_alloc(be, n * sizeof(float), &err);                   // NULL + err: no memory
 *   backend_upload(be, x, host, n * sizeof(float));
 *   BE(be, rmsnorm_fwd, y, rstd, x, w, N, D, eps);                           // every op takes be
 *   backend_download(be, host, y, n * sizeof(float));
 *   backend_free(be, x); backend_close(&be);
 *
 * Memory: every pointer an op takes lives in the memory of the backend it is called on (host
 * memory for "cpu", device memory for "cuda"); callers move data only through upload / download /
 * copy. `backend_is_host(be)` says whether that memory is also ordinary host memory (cpu). A failed
 * allocation returns NULL with CIS_ENOMEM in err: callers turn it into a retryable job failure,
 * never an abort.
 *
 * Conventions for every op entry (the `backend_iface` fields after the memory entries):
 *  - The first argument is the backend instance; the rest are pointers into its memory plus sizes
 *    (llm.c style). Tensors are row-major fp32 unless a dtype argument says otherwise; shapes are
 *    given as [rows, cols]; N is the number of token rows (B*T flattened), D a width.
 *  - Forward entries overwrite their outputs. Backward entries ACCUMULATE (+=) into parameter
 *    gradients (dW, dw) so that several uses of a weight (tied embeddings) and several micro-batches
 *    add up, and OVERWRITE input gradients (dx) unless an `acc` flag says otherwise.
 *  - No entry allocates memory that outlives the call (scratch comes from backend_workspace); no
 *    entry fails on valid shapes. Callers (model*.c) validate shapes and ids before calling.
 *  - Ops are queued in order on the instance: a result is visible to the host after download (or
 *    backend_synchronize). Entries that return a number (ce_fwd, sum, sumsq, linalg status)
 *    synchronize.
 *  - Deterministic for a given thread count: no atomics, fixed reduction orders.
 *  - One thread at a time per instance; use one instance per thread (the trainer's replicas do).
 * `backend_supports(be, op, dtype)` says which dtypes an op accepts for its weight / data argument.
 * docs/engine.md ("Backends") shows how to add an op and how a second backend plugs in. */
#ifndef CISWEEP_ENGINE_BACKEND_H
#define CISWEEP_ENGINE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "worker/engine/tensor.h"

#define LOSS_IGNORE_INDEX (-100)   /* targets equal to this are skipped (torch CrossEntropyLoss) */

typedef struct backend backend;

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

/* rows_scatter modes */
typedef enum backend_rows_mode {
    ROWS_SET = 0,            /* dst[rows[i]] = src[i] */
    ROWS_ADD = 1,            /* dst[rows[i]] += src[i] (rows may repeat: applied in order i) */
} backend_rows_mode;

/* The ops, for backend_supports (one per iface op entry). */
typedef enum backend_op {
    BOP_GEMM = 0, BOP_LINEAR_FWD, BOP_LINEAR_BWD, BOP_RMSNORM_FWD, BOP_RMSNORM_BWD, BOP_ROPE_TABLE,
    BOP_ROPE_FWD, BOP_ROPE_BWD, BOP_ATTENTION_FWD, BOP_ATTENTION_BWD, BOP_SWIGLU_FWD, BOP_SWIGLU_BWD,
    BOP_EMBEDDING_FWD, BOP_EMBEDDING_BWD, BOP_CE_FWD, BOP_CE_BWD, BOP_ROWS_GATHER, BOP_ROWS_SCATTER,
    BOP_ROWS_FILL, BOP_ADD, BOP_SCALE, BOP_AXPY, BOP_SUM, BOP_SUMSQ, BOP_ADAM_STEP, BOP_CHOLESKY,
    BOP_TRI_INV, BOP_CHOL_SOLVE, BOP_TRI_SOLVE, BOP_SPD_INVERSE,
    /* compression (cpu/cpu_quant.c) */
    BOP_GRAM_ACC, BOP_COLSUMSQ_ACC, BOP_QUANT_PARAMS, BOP_QUANT_DEQUANT, BOP_OBS_SWEEP, BOP_ROW_PRUNE,
    BOP_COUNT
} backend_op;
/* backend_op_name: "linear_fwd" etc. */
const char *backend_op_name(backend_op op);

/* Quantisation grids (algorithms.md §1.5): how quant_params turns a group's values into a scale
 * and a zero point. maxq = 2^bits - 1; every mode dequantizes as
 * scale * (clamp(rint(w / scale) + zero, 0, maxq) - zero), rint = round half to even. */
typedef enum quant_grid {
    QGRID_MINMAX_ASYM = 0,   /* GPTQ asym: range [min(0,min w), max(0,max w)], zero = rint(-xmin/scale) */
    QGRID_MINMAX_SYM = 1,    /* GPTQ sym: xmax = max(|xmin|, xmax), xmin = -xmax when xmin < 0 (a row with
                                no negative value keeps xmin = 0: the reference's quirk), zero = (maxq+1)/2 */
    QGRID_AWQ = 2,           /* AWQ zero point: [min w, max w] (0 not forced), scale = max(max-min, 1e-5)/maxq,
                                zero = clamp(-rint(min/scale), 0, maxq) */
} quant_grid;

/* The OBS column sweep of GPTQ and SparseGPT (algorithms.md §2, §3), parameters of obs_sweep. */
typedef struct obs_params {
    int block;               /* B: columns per lazy batch (128) */
    int bits;                /* quantize each column to this many bits (0 = no quantization) */
    int group;               /* > 0: group params recomputed every `group` columns from the global W (GPTQ,
                                not static groups); <= 0: one group per row, params from W before the sweep */
    quant_grid grid;         /* QGRID_MINMAX_SYM / _ASYM */
    double sparsity;         /* > 0: SparseGPT unstructured mask per block: entries with W²/U_cc² <= the
                                element at floor(s*rows*width) of the block's ascending order */
    int prune_n, prune_m;    /* prune_n > 0: n:m mask (n smallest W²/U_cc² of every aligned m columns per row,
                                chosen on the current weights when the group starts) instead of sparsity */
} obs_params;

typedef struct backend_opts {
    int threads;             /* cpu: threads for GEMM/LAPACK and the backend's own loops; <= 0 = all cores */
} backend_opts;

typedef struct backend_iface {
    const char *kind;                      /* "cpu", "cuda" */
    /* ---- instance ------------------------------------------------------------------------ */
    void (*close)(backend *be);            /* frees ctx (the instance itself is freed by backend_close) */
    void (*set_threads)(backend *be, int n);
    /* mem_info: free and total bytes of the instance's memory (host RAM for cpu). 0 or -1. */
    int (*mem_info)(backend *be, uint64_t *free_bytes, uint64_t *total_bytes);
    bool (*supports)(const backend *be, backend_op op, tensor_dtype dt);

    /* ---- memory -------------------------------------------------------------------------- */
    void *(*alloc)(backend *be, size_t bytes);            /* NULL when out of memory; 64-byte aligned */
    void (*free)(backend *be, void *p);                   /* NULL is a no-op */
    void (*upload)(backend *be, void *dst, const void *host_src, size_t bytes);
    void (*download)(backend *be, void *host_dst, const void *src, size_t bytes);
    void (*copy)(backend *be, void *dst, const void *src, size_t bytes);    /* within the instance */
    void (*memset)(backend *be, void *dst, int byte, size_t bytes);
    void (*synchronize)(backend *be);

    /* ---- matmul -------------------------------------------------------------------------- */
    /* gemm: C[M,N] = alpha * op(A) op(B) + beta * C; op(A) is [M,K] (A is [K,M] when transA),
     * op(B) is [K,N] (B is [N,K] when transB); lda/ldb/ldc are row strides in elements. */
    void (*gemm)(backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A,
                 int lda, const float *B, int ldb, float beta, float *C, int ldc);
    /* linear_fwd: y[N,out] (+)= x[N,in] · W[out,in]ᵀ (HF nn.Linear without bias); acc adds.
     * W has dtype wt (F32 everywhere; BF16 where supports(BOP_LINEAR_FWD, BF16)); fp32 accumulation. */
    void (*linear_fwd)(backend *be, float *y, const float *x, const void *W, tensor_dtype wt, int N, int in,
                       int out, bool acc);
    /* linear_bwd: dx[N,in] (+= if acc_dx, else =) dy[N,out] · W; dW[out,in] (fp32) += dyᵀ · x.
     * dx or dW may be NULL to skip that product. W has dtype wt as in linear_fwd. */
    void (*linear_bwd)(backend *be, float *dx, float *dW, const float *dy, const float *x, const void *W,
                       tensor_dtype wt, int N, int in, int out, bool acc_dx);

    /* ---- norms --------------------------------------------------------------------------- */
    /* rmsnorm_fwd: out[N,D] = x * rstd * w, rstd[N] = 1/sqrt(mean(x²) + eps) (HF LlamaRMSNorm:
     * statistics in fp32). rstd may be NULL. out may alias x. */
    void (*rmsnorm_fwd)(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D,
                        float eps);
    /* rmsnorm_bwd: dx[N,D] (+= if acc_dx) from dout; dw[D] += (may be NULL); rstd from forward. */
    void (*rmsnorm_bwd)(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                        const float *rstd, int N, int D, bool acc_dx);

    /* ---- rope ---------------------------------------------------------------------------- */
    /* rope_table: cos/sin [P, Dh/2] for positions 0..P-1 (angles rounded like HF: fp32 inv_freq
     * times fp32 position). */
    void (*rope_table)(backend *be, float *cos, float *sin, int P, const rope_params *rp);
    /* rope_fwd: in place on x[N, nh, Dh] with row n at position pos[n] (0 <= pos < P of the table):
     * (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin), x1 = x[:Dh/2], x2 = x[Dh/2:]. */
    void (*rope_fwd)(backend *be, float *x, const int32_t *pos, const float *cos, const float *sin, int N,
                     int nh, int Dh);
    /* rope_bwd: in place on dx[N, nh, Dh] (the transpose rotation). */
    void (*rope_bwd)(backend *be, float *dx, const int32_t *pos, const float *cos, const float *sin, int N,
                     int nh, int Dh);

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
    void (*attention_fwd)(backend *be, float *out, float *probs, const float *q, const float *k, const float *v,
                          const int32_t *qpos, const int32_t *kv_len, int B, int Tq, int Tk, int H, int Hkv,
                          int Dh);
    /* attention_bwd: dq = (overwrite), dk, dv = (overwrite) from dout and the forward's probs. */
    void (*attention_bwd)(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                          const float *q, const float *k, const float *v, const int32_t *kv_len, int B, int Tq,
                          int Tk, int H, int Hkv, int Dh);

    /* ---- mlp ----------------------------------------------------------------------------- */
    /* swiglu_fwd: out[N,F] = silu(g) * u, silu(x) = x / (1 + e^-x). out may alias g or u. */
    void (*swiglu_fwd)(backend *be, float *out, const float *g, const float *u, int64_t n);
    /* swiglu_bwd: dg, du (overwrite) from dout. */
    void (*swiglu_bwd)(backend *be, float *dg, float *du, const float *dout, const float *g, const float *u,
                       int64_t n);

    /* ---- embedding ----------------------------------------------------------------------- */
    /* embedding_fwd: out[N,D] = W[ids[n], :] (ids checked by the caller). */
    void (*embedding_fwd)(backend *be, float *out, const float *W, const int32_t *ids, int N, int D);
    /* embedding_bwd: dW[ids[n], :] += dout[n, :] (scatter-add, rows in order). */
    void (*embedding_bwd)(backend *be, float *dW, const float *dout, const int32_t *ids, int N, int D);

    /* ---- loss ---------------------------------------------------------------------------- */
    /* ce_fwd: softmax cross-entropy per row: loss[n] = logsumexp(logits[n]) - logits[n][t[n]],
     * 0 for ignored rows (t[n] == LOSS_IGNORE_INDEX); lse[N] keeps logsumexp (may be NULL;
     * loss may be NULL). Returns the mean over non-ignored rows (0 when none), summed in double;
     * *n_valid (a host int, may be NULL) gets their count. */
    double (*ce_fwd)(backend *be, float *loss, float *lse, const float *logits, const int32_t *targets, int N,
                     int V, int *n_valid);
    /* ce_bwd: dlogits[N,V] = scale * (softmax(logits) - onehot(t)), 0 rows for ignored targets.
     * For the mean loss, scale = dloss / n_valid. dlogits may alias logits. */
    void (*ce_bwd)(backend *be, float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                   int N, int V, float scale);

    /* ---- rows (gathers and scatters of token rows: the head's rows, KV-cache writes, hooks) --- */
    /* rows_gather: dst[i, :] = src[rows[i], :] for i < n (D floats a row). */
    void (*rows_gather)(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D);
    /* rows_scatter: dst[rows[i], :] (= or +=, see backend_rows_mode) src[i, :] for i < n. */
    void (*rows_scatter)(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D,
                         backend_rows_mode mode);
    /* rows_fill: dst[rows[i], :] = value for i < n. */
    void (*rows_fill)(backend *be, float *dst, const int32_t *rows, int n, int D, float value);

    /* ---- elementwise and reductions ------------------------------------------------------ */
    void (*add)(backend *be, float *out, const float *a, const float *b, int64_t n);   /* out = a + b */
    void (*scale)(backend *be, float *x, float s, int64_t n);                          /* x *= s */
    void (*axpy)(backend *be, float *y, float a, const float *x, int64_t n);           /* y += a x */
    double (*sum)(backend *be, const float *x, int64_t n);                             /* Σ x (double) */
    double (*sumsq)(backend *be, const float *x, int64_t n);                           /* Σ x² (double) */

    /* ---- optimizer ----------------------------------------------------------------------- */
    /* adam_step: one Adam/AdamW update of p[n] with gradient g, moments m, v (see adam_variant).
     * ap->step must already be the new (1-based) step count. g is not modified. */
    void (*adam_step)(backend *be, float *p, const float *g, float *m, float *v, int64_t n,
                      const adam_params *ap);

    /* ---- linear algebra (fp32, row-major) ------------------------------------------------ */
    /* cholesky: A[n,n] symmetric positive definite -> its factor in place: lower L with A = L Lᵀ
     * (upper=false) or upper U with A = Uᵀ U (upper=true); the other triangle is zeroed.
     * Returns 0, or k > 0 when the leading minor of order k is not positive definite. */
    int (*cholesky)(backend *be, float *A, int n, bool upper);
    /* tri_inv: in-place inverse of a triangular matrix (the other triangle is left zero).
     * Returns 0, or k > 0 when A[k-1][k-1] is exactly zero. */
    int (*tri_inv)(backend *be, float *A, int n, bool upper);
    /* chol_solve: B[n,nrhs] <- A⁻¹ B given A's Cholesky factor (as returned by cholesky). */
    int (*chol_solve)(backend *be, const float *F, float *Bm, int n, int nrhs, bool upper);
    /* tri_solve: B[n,nrhs] <- op(T)⁻¹ B, T triangular (upper/lower), transposed if trans. */
    void (*tri_solve)(backend *be, const float *T, float *Bm, int n, int nrhs, bool upper, bool trans);
    /* spd_inverse: A[n,n] SPD -> A⁻¹ in place (full symmetric); returns as cholesky does. */
    int (*spd_inverse)(backend *be, float *A, int n);

    /* ---- compression (cpu/cpu_quant.c; algorithms.md §1-§4) ------------------------------- */
    /* gram_acc: H[k,k] += alpha * Xᵀ X for X[n,k] (the Hessian 2/N Σ X Xᵀ of GPTQ/SparseGPT, in
     * the nn.Linear input layout: one token row per row of X). Both triangles are written. */
    void (*gram_acc)(backend *be, float *H, const float *X, int n, int k, float alpha);
    /* colsumsq_acc: out[j] += Σ_i X[i,j]² for X[n,k] (Wanda's squared column norms; fp32 out,
     * summed per call in double). */
    void (*colsumsq_acc)(backend *be, float *out, const float *X, int n, int k);
    /* quant_params: per row r of W[rows,cols] (row stride ld) and group g (columns [g*group,
     * min(cols,(g+1)*group)); group <= 0 = the whole row): scale[r*ng+g], zero[r*ng+g] of that grid,
     * ng = ceil(cols/group) (1 when group <= 0). */
    void (*quant_params)(backend *be, float *scale, float *zero, const float *W, int rows, int cols, int ld,
                         int group, int bits, quant_grid grid);
    /* quant_dequant: out[rows,cols] = scale*(clamp(rint(W/scale)+zero, 0, maxq) - zero) with the
     * (row, group) params of quant_params (same group, maxq = 2^bits-1). out may alias W. */
    void (*quant_dequant)(backend *be, float *out, const float *W, const float *scale, const float *zero,
                          int rows, int cols, int group, int bits);
    /* obs_sweep: the GPTQ / SparseGPT column sweep over W[rows,cols] in place, given U[cols,cols], the
     * upper Cholesky factor of the damped inverse Hessian (H⁻¹ = Uᵀ U). Per block of p->block columns:
     * the mask (sparsity or n:m), then column by column q = quantize(masked w), e = (w - q)/U_cc,
     * the block's remaining columns -= e U[c, c+1:i2]; then the lazy update W[:, i2:] -= E U[i1:i2, i2:].
     * Results: W holds Q (pruned entries exactly 0); scale/zero [rows, ceil(cols/group)] get the grid
     * params when p->bits > 0 (may be NULL otherwise); returns Σ e² (the damped quadratic error of
     * Q, algorithms.md §2 oracle 1) in double; *n_masked (host, may be NULL) the masked entries. */
    double (*obs_sweep)(backend *be, float *W, const float *U, int rows, int cols, const obs_params *p,
                        float *scale, float *zero, int64_t *n_masked);
    /* row_prune: per row r of W[rows,cols], zero the entries with the smallest scores S[rows,cols]:
     * the first n_prune of a stable ascending sort of the row (ties: lower column first) when
     * prune_m == 0, else the prune_n smallest of every aligned group of prune_m columns (ties: lower
     * column first). Returns the number of entries zeroed (masked). */
    int64_t (*row_prune)(backend *be, float *W, const float *S, int rows, int cols, int n_prune, int prune_n,
                         int prune_m);
} backend_iface;

/* The instance. Fields are read by the backend's own files; everyone else uses the functions. */
struct backend {
    const backend_iface *iface;
    void *ctx;                 /* the backend's private state */
    char name[32];             /* "cpu", "cuda:0" */
    bool host_memory;          /* its memory is ordinary host memory (pointers usable by the host) */
    int threads;               /* cpu: threads per op (>= 1) */
    void *ws;                  /* workspace (backend memory), ws_bytes long */
    size_t ws_bytes;
};

/* BE(be, op, args...): call op on instance be, e.g. BE(be, linear_fwd, y, x, W, TENSOR_F32, N, in, out, false). */
#define BE(be, op, ...) ((be)->iface->op((be), __VA_ARGS__))

/* backend_open: a new instance for a device string: "cpu" (or "cpu:N" for N threads), "cuda" /
 * "cuda:K" where the build has CUDA and a GPU K exists. opts may be NULL (defaults). NULL with err
 * naming the device and what was expected (unknown kind, no such GPU, build without CUDA). */
backend *backend_open(const char *device, const backend_opts *opts, cis_err *err);
/* backend_close: frees the workspace and the instance; NULL-safe; sets *be = NULL. Memory still
 * allocated from the instance must have been freed by its owners first. */
void backend_close(backend **be);
/* backend_device_ok: whether backend_open(device) can succeed in this build/machine, without
 * opening it (for argument checking and tests that skip visibly). */
bool backend_device_ok(const char *device, cis_err *err);

const char *backend_name(const backend *be);
bool backend_is_host(const backend *be);
int backend_threads(const backend *be);
/* backend_set_threads: n <= 0 = all cores (cpu); no effect on devices without a thread count. */
void backend_set_threads(backend *be, int n);
/* backend_mem_info: free and total bytes of the instance's memory; -1 with err when unknown. */
int backend_mem_info(backend *be, uint64_t *free_bytes, uint64_t *total_bytes, cis_err *err);
bool backend_supports(const backend *be, backend_op op, tensor_dtype dt);

/* memory entries (thin wrappers over the iface; bytes = 0 is a no-op) */
void *backend_alloc(backend *be, size_t bytes, cis_err *err);   /* NULL + CIS_ENOMEM on failure */
void backend_free(backend *be, void *p);
void backend_upload(backend *be, void *dst, const void *host_src, size_t bytes);
void backend_download(backend *be, void *host_dst, const void *src, size_t bytes);
void backend_copy(backend *be, void *dst, const void *src, size_t bytes);
void backend_memset(backend *be, void *dst, int byte, size_t bytes);
void backend_synchronize(backend *be);
/* backend_workspace: at least `bytes` of scratch memory owned by the instance, grown on demand
 * (never shrunk) and valid until the next call of backend_workspace on the instance; NULL when it
 * cannot grow. Ops borrow it for temporaries instead of allocating in inner loops. */
void *backend_workspace(backend *be, size_t bytes);

/* tensor_new_on: a zero-filled F32/BF16/F16 tensor whose data lives in be's memory (owner = be),
 * or in host memory when be is NULL (tensor_new). NULL on a bad shape or when out of memory. */
tensor *tensor_new_on(backend *be, tensor_dtype dt, int ndim, const int64_t *shape, const char *name);

#endif
