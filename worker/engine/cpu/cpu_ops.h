/* cpu_ops.h - private to the cpu backend: the functions that cpu_backend.c puts into the "cpu"
 * backend_iface table, one file per op family (cpu_matmul.c, cpu_norm.c, ...). Contracts are those
 * of the matching entries in worker/engine/backend.h. Each op reads its thread count from the
 * instance (be->threads) and borrows scratch from backend_workspace(be, ...). */
#ifndef CISWEEP_ENGINE_CPU_OPS_H
#define CISWEEP_ENGINE_CPU_OPS_H

#include <math.h>
#include "worker/engine/backend.h"

/* cpu_backend.c: the iface backend_open("cpu") uses */
extern const backend_iface cpu_backend_iface;

/* cpu_threads.c: run fn(ctx, task, thread) for task in [0, n) over up to `threads` threads
 * (contiguous ranges; thread index < threads) of be's pool (be may be NULL: threads made for the
 * call); returns when all are done. The same (n, threads) gives the same ranges on every path. */
void cpu_parallel_for(backend *be, int n, int threads, void (*fn)(void *ctx, int task, int thread), void *ctx);
/* cpu_pool_close: stop and join be's pool threads (backend_close); no-op when none were started */
void cpu_pool_close(backend *be);

/* cpu_matmul.c */
/* cpu_blas_threads: make OpenBLAS's (process-wide) thread count be->threads before a BLAS call. */
void cpu_blas_threads(backend *be);
/* cpu_sgemm: plain row-major cblas_sgemm (no thread change; for use inside parallel tasks). */
void cpu_sgemm(bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
               const float *B, int ldb, float beta, float *C, int ldc);
/* cpu_sgemm_beta0_by_memset: whether cpu_sgemm runs a beta = 0 product as memset + beta = 1 (the same
 * bits on OpenBLAS's Zen/Haswell cores without AVX-512; not under CISWEEP_CPU_LANES=4) */
bool cpu_sgemm_beta0_by_memset(void);
void cpu_gemm(backend *be, bool transA, bool transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
void cpu_linear_fwd(backend *be, float *y, const float *x, const void *W, tensor_dtype wt, int N, int in, int out,
                    bool acc);
void cpu_linear_bwd(backend *be, float *dx, float *dW, const float *dy, const float *x, const void *W, tensor_dtype wt,
                    int N, int in, int out, bool acc_dx);
/* cpu_norm.c */
void cpu_rmsnorm_fwd(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D, float eps);
void cpu_rmsnorm_bwd(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                     const float *rstd, int N, int D, bool acc_dx);
/* cpu_rope.c */
void cpu_rope_table(backend *be, float *cos, float *sin, int P, const rope_params *rp);
void cpu_rope_fwd(backend *be, float *x, const int32_t *pos, const float *cos, const float *sin, int N, int nh, int Dh);
void cpu_rope_bwd(backend *be, float *dx, const int32_t *pos, const float *cos, const float *sin, int N, int nh, int Dh);
/* cpu_attention.c */
void cpu_attention_fwd(backend *be, float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *qpos, const int32_t *kv_len, int B, int Tq, int Tk,
                       int H, int Hkv, int Dh);
void cpu_attention_bwd(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                       const float *q, const float *k, const float *v, const int32_t *kv_len,
                       int B, int Tq, int Tk, int H, int Hkv, int Dh);
/* cpu_mlp.c */
void cpu_swiglu_fwd(backend *be, float *out, const float *g, const float *u, int64_t n);
void cpu_swiglu_bwd(backend *be, float *dg, float *du, const float *dout, const float *g, const float *u, int64_t n);
/* cpu_embed.c */
void cpu_embedding_fwd(backend *be, float *out, const float *W, const int32_t *ids, int N, int D);
void cpu_embedding_bwd(backend *be, float *dW, const float *dout, const int32_t *ids, int N, int D);
/* cpu_loss.c */
double cpu_ce_fwd(backend *be, float *loss, float *lse, const float *logits, const int32_t *targets, int N, int V,
                  int *n_valid);
void cpu_ce_bwd(backend *be, float *dlogits, const float *logits, const float *lse, const int32_t *targets,
                int N, int V, float scale);
/* cpu_rows.c */
void cpu_rows_gather(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D);
void cpu_rows_scatter(backend *be, float *dst, const float *src, const int32_t *rows, int n, int D,
                      backend_rows_mode mode);
void cpu_rows_fill(backend *be, float *dst, const int32_t *rows, int n, int D, float value);
/* cpu_elementwise.c */
void cpu_add(backend *be, float *out, const float *a, const float *b, int64_t n);
void cpu_scale(backend *be, float *x, float s, int64_t n);
void cpu_axpy(backend *be, float *y, float a, const float *x, int64_t n);
double cpu_sum(backend *be, const float *x, int64_t n);
double cpu_sumsq(backend *be, const float *x, int64_t n);
/* y[n] = exp(x[n]) (vectorised polynomial, ~1 ulp; y may alias x) */
void cpu_vexp(float *y, const float *x, int64_t n);
/* vectorised row helpers (fixed summation order): max of x[n] (-inf when n == 0); y = exp(x - shift)
 * returning Σ y in double (y may alias x); x *= s; Σ a·b in double */
float cpu_vmax(const float *x, int64_t n);
double cpu_vexp_sum(float *y, const float *x, float shift, int64_t n);
void cpu_vscale(float *x, float s, int64_t n);
double cpu_vdot(const float *a, const float *b, int64_t n);
/* y = y * x * s elementwise */
void cpu_vmul_scaled(float *y, const float *x, float s, int64_t n);
/* y = (y - c) * x * s elementwise (the softmax backward's row: y -= c, then cpu_vmul_scaled) */
void cpu_vsub_mul_scaled(float *y, float c, const float *x, float s, int64_t n);

/* cpu_simd.c: the width of the kernels above (and SwiGLU, RMSNorm): 8 where the CPU has AVX2 and
 * CISWEEP_CPU_LANES is not 4, else 4; both give the same bits. cpu_simd_set_lanes(4 or 8) forces
 * one (8 only with AVX2; anything else: back to the default) for tests and benchmarks, and returns
 * the width now in force. Not meant to be changed while ops run on other threads. */
int cpu_simd_lanes(void);
int cpu_simd_set_lanes(int lanes);
bool cpu_simd_has_avx2(void);
/* out = a + b and y += a x: the plain loops (_ref) and 8 lanes (_8); out may alias a or b */
void cpu_add_ref(float *out, const float *a, const float *b, int64_t n);
void cpu_axpy_ref(float *y, float a, const float *x, int64_t n);
void cpu_add_8(float *out, const float *a, const float *b, int64_t n);
void cpu_axpy_8(float *y, float a, const float *x, int64_t n);
/* the two widths of each kernel, callable directly (tests, benchmarks): _4 portable GCC vectors,
 * _8 AVX2 (cpu_avx2.c; only where cpu_simd_has_avx2(), else they run the _4 code) */
void cpu_vexp_4(float *y, const float *x, int64_t n);
float cpu_vmax_4(const float *x, int64_t n);
double cpu_vexp_sum_4(float *y, const float *x, float shift, int64_t n);
void cpu_vscale_4(float *x, float s, int64_t n);
double cpu_vdot_4(const float *a, const float *b, int64_t n);
void cpu_vmul_scaled_4(float *y, const float *x, float s, int64_t n);
void cpu_vsub_mul_scaled_4(float *y, float c, const float *x, float s, int64_t n);
void cpu_vexp_8(float *y, const float *x, int64_t n);
float cpu_vmax_8(const float *x, int64_t n);
double cpu_vexp_sum_8(float *y, const float *x, float shift, int64_t n);
void cpu_vscale_8(float *x, float s, int64_t n);
double cpu_vdot_8(const float *a, const float *b, int64_t n);
void cpu_vmul_scaled_8(float *y, const float *x, float s, int64_t n);
void cpu_vsub_mul_scaled_8(float *y, float c, const float *x, float s, int64_t n);
/* y = exp(x - shift) * s in one pass (y may alias x): the bits of cpu_vexp_sum_4(y, x, shift, n)
 * followed by cpu_vscale_4(y, s, n), without the sum (the cross-entropy backward's row) */
void cpu_vexp_scale_8(float *y, const float *x, float shift, float s, int64_t n);
/* SwiGLU over elements [lo, hi) (cpu_mlp.c / cpu_avx2.c); dg may alias dout */
void cpu_swiglu_fwd_range_4(float *out, const float *g, const float *u, int64_t lo, int64_t hi);
void cpu_swiglu_bwd_range_4(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t lo,
                            int64_t hi);
void cpu_swiglu_fwd_range_8(float *out, const float *g, const float *u, int64_t lo, int64_t hi);
void cpu_swiglu_bwd_range_8(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t lo,
                            int64_t hi);
/* RMSNorm (cpu_norm.c / cpu_avx2.c), the contracts of cpu_rmsnorm_fwd/bwd. The row reductions are
 * defined once here, serial in double, so the 4- and 8-lane paths share them bit for bit:
 * cpu_rms_rstd_row: r = (mean(x²) + eps)^-1/2 of one row x[D] (cpu_rms_rstd_of: r from the row's
 * sum ss = Σ x² so added; cpu_avx2.c adds 4 rows' sums at once, each in this order);
 * cpu_rms_bwd_coef: r³/D Σ_j w_j dy_j x_j, the coefficient of x in dx. */
static inline float cpu_rms_rstd_of(double ss, int D, float eps) { return (float)(1.0 / sqrt(ss / D + (double)eps)); }
static inline float cpu_rms_rstd_row(const float *x, int D, float eps) {
    double ss = 0.0;
    for (int i = 0; i < D; i++) ss += (double)x[i] * x[i];
    return cpu_rms_rstd_of(ss, D, eps);
}
static inline float cpu_rms_bwd_coef_of(double dot, float r, int D) { return (float)(dot * r * r * r / D); }
static inline float cpu_rms_bwd_coef(const float *w, const float *dy, const float *x, float r, int D) {
    double dot = 0.0;
    for (int i = 0; i < D; i++) dot += (double)w[i] * dy[i] * x[i];
    return cpu_rms_bwd_coef_of(dot, r, D);
}
void cpu_rmsnorm_fwd_4(float *out, float *rstd, const float *x, const float *w, int N, int D, float eps);
void cpu_rmsnorm_bwd_4(float *dx, float *dw, const float *dout, const float *x, const float *w,
                       const float *rstd, int N, int D, bool acc_dx);
void cpu_rmsnorm_fwd_8(float *out, float *rstd, const float *x, const float *w, int N, int D, float eps);
void cpu_rmsnorm_bwd_8(float *dx, float *dw, const float *dout, const float *x, const float *w,
                       const float *rstd, int N, int D, bool acc_dx);
/* RoPE in place on x [N, nh, Dh] at positions pos [N] (cpu_rope.c / cpu_avx2.c); sign +1 forward,
 * -1 the inverse rotation (backward) */
void cpu_rope_apply_ref(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int nh, int Dh,
                        float sign);
void cpu_rope_apply_8(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int nh, int Dh,
                      float sign);
/* cpu_optim.c */
/* one Adam step over elements [0, n): the reference loop (cpu_optim.c) and 8 lanes (cpu_avx2.c:
 * the same operations per element in the same order, IEEE sqrt and division: the same bits) */
void cpu_adam_range_ref(float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap);
void cpu_adam_range_8(float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap);
void cpu_adam_step(backend *be, float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap);
/* cpu_linalg.c */
int cpu_cholesky(backend *be, float *A, int n, bool upper);
int cpu_tri_inv(backend *be, float *A, int n, bool upper);
int cpu_chol_solve(backend *be, const float *F, float *Bm, int n, int nrhs, bool upper);
void cpu_tri_solve(backend *be, const float *T, float *Bm, int n, int nrhs, bool upper, bool trans);
int cpu_spd_inverse(backend *be, float *A, int n);
/* cpu_quant.c */
void cpu_gram_acc(backend *be, float *H, const float *X, int n, int k, float alpha);
void cpu_colsumsq_acc(backend *be, float *out, const float *X, int n, int k);
void cpu_quant_params(backend *be, float *scale, float *zero, const float *W, int rows, int cols, int ld, int group,
                      int bits, quant_grid grid);
void cpu_quant_dequant(backend *be, float *out, const float *W, const float *scale, const float *zero, int rows,
                       int cols, int group, int bits);
double cpu_obs_sweep(backend *be, float *W, const float *U, int rows, int cols, const obs_params *p, float *scale,
                     float *zero, int64_t *n_masked);
int64_t cpu_row_prune(backend *be, float *W, const float *S, int rows, int cols, int n_prune, int prune_n,
                      int prune_m);

#endif
