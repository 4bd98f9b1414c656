/* cuda_common.cuh - private to the CUDA backend: the instance context (device, stream, cuBLAS and
 * cuSOLVER handles, a device int for solver status), checked-call macros that name file and line,
 * launch helpers, and the prototypes of every op file (cuda_<family>.cu, mirroring cpu/). Ops run
 * on the instance's stream; results are visible after a download or backend_synchronize. A failed
 * CUDA call other than an allocation is a broken invariant: it is reported with file:line and
 * aborts (like CIS_ASSERT); out-of-memory on allocation is a status (alloc returns NULL). */
#ifndef CISWEEP_ENGINE_CUDA_COMMON_CUH
#define CISWEEP_ENGINE_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "worker/engine/backend.h"
}

struct cuda_ctx {
    int dev;                       /* device index */
    cudaStream_t stream;
    cublasHandle_t blas;
    cusolverDnHandle_t solver;
    int *dinfo;                    /* device int for cuSOLVER's status */
};

void cuda_fatal(const char *file, int line, const char *what, const char *msg);
#define CU_CHECK(x) do { cudaError_t e_ = (x); if (e_ != cudaSuccess) cuda_fatal(__FILE__, __LINE__, #x, cudaGetErrorString(e_)); } while (0)
#define CUBLAS_CHECK(x) do { cublasStatus_t s_ = (x); if (s_ != CUBLAS_STATUS_SUCCESS) cuda_fatal(__FILE__, __LINE__, #x, cublasGetStatusString(s_)); } while (0)
#define CUSOLVER_CHECK(x) do { cusolverStatus_t s_ = (x); if (s_ != CUSOLVER_STATUS_SUCCESS) { char b_[32]; snprintf(b_, sizeof b_, "status %d", (int)s_); cuda_fatal(__FILE__, __LINE__, #x, b_); } } while (0)
#define CU_LAUNCHED() CU_CHECK(cudaGetLastError())

/* the context of an instance, with its device made current for this thread */
cuda_ctx *cuda_ctx_of(backend *be);
static inline unsigned cuda_blocks(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

/* scratch of at least `bytes` from the instance's workspace (NULL: cannot grow, a broken invariant
 * in an op: callers reserve first) */
void *cuda_scratch(backend *be, size_t bytes);

/* cuda_matmul.cu */
void cuda_gemm(backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);
void cuda_linear_fwd(backend *be, float *y, const float *x, const void *W, tensor_dtype wt, int N, int in, int out,
                     bool acc);
void cuda_linear_bwd(backend *be, float *dx, float *dW, const float *dy, const float *x, const void *W,
                     tensor_dtype wt, int N, int in, int out, bool acc_dx);
/* cuda_norm.cu */
void cuda_rmsnorm_fwd(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D, float eps);
void cuda_rmsnorm_bwd(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                      const float *rstd, int N, int D, bool acc_dx);
/* cuda_rope.cu */
void cuda_rope_table(backend *be, float *cos, float *sin, int P, const rope_params *rp);
void cuda_rope_fwd(backend *be, float *x, const int32_t *pos, const float *cos, const float *sin, int N, int nh, int Dh);
void cuda_rope_bwd(backend *be, float *dx, const int32_t *pos, const float *cos, const float *sin, int N, int nh, int Dh);
/* cuda_attention.cu */
void cuda_attention_fwd(backend *be, float *out, float *probs, const float *q, const float *k, const float *v,
                        const int32_t *qpos, const int32_t *kv_len, int B, int Tq, int Tk, int H, int Hkv, int Dh);
void cuda_attention_bwd(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                        const float *q, const float *k, const float *v, const int32_t *kv_len, int B, int Tq, int Tk,
                        int H, int Hkv, int Dh);
/* cuda_mlp.cu */
void cuda_swiglu_fwd(backend *be, float *out, const float *g, const float *u, int64_t n);
void cuda_swiglu_bwd(backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
/* cuda_embed.cu */
void cuda_embedding_fwd(backend *be, float *out, const float *W, const int32_t *ids, int N, int D);
void cuda_embedding_bwd(backend *be, float *dW, const float *dout, const int32_t *ids, int N, int D);
/* cuda_loss.cu */
double cuda_ce_fwd(backend *be, float *loss, float *lse, const float *logits, const int32_t *targets, int N, int V,
                   int *n_valid);
void cuda_ce_bwd(backend *be, float *dlogits, const float *logits, const float *lse, const int32_t *targets, int N,
                 int V, float scale);
/* cuda_rows.cu */
void cuda_rows_gather(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D);
void cuda_rows_scatter(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D,
                       backend_rows_mode mode);
void cuda_rows_fill(backend *be, float *dst, const int32_t *rows, int n, int D, float value);
/* cuda_elementwise.cu */
void cuda_add(backend *be, float *out, const float *a, const float *b, int64_t n);
void cuda_scale(backend *be, float *x, float s, int64_t n);
void cuda_axpy(backend *be, float *y, float a, const float *x, int64_t n);
double cuda_sum(backend *be, const float *x, int64_t n);
double cuda_sumsq(backend *be, const float *x, int64_t n);
/* cuda_optim.cu */
void cuda_adam_step(backend *be, float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap);
/* cuda_linalg.cu */
int cuda_cholesky(backend *be, float *A, int n, bool upper);
int cuda_tri_inv(backend *be, float *A, int n, bool upper);
int cuda_chol_solve(backend *be, const float *F, float *Bm, int n, int nrhs, bool upper);
void cuda_tri_solve(backend *be, const float *T, float *Bm, int n, int nrhs, bool upper, bool trans);
int cuda_spd_inverse(backend *be, float *A, int n);

#endif
