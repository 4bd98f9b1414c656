/* cuda_backend.cu - the "cuda:K" backend instance: a context per instance (device, stream, cuBLAS
 * and cuSOLVER handles), device memory (cudaMalloc; out of memory is a NULL return, never an
 * abort), copies and memsets on the instance's stream (a download waits for the stream), memory
 * information from cudaMemGetInfo, the supports() table, and the iface backend.c hands out for
 * cuda. The ops are in the other cuda_*.cu files, one per op family as in cpu/. */
#include "worker/engine/cuda/cuda_common.cuh"

#include <string.h>

extern "C" {
#include "worker/engine/cuda/cuda_api.h"
}

void cuda_fatal(const char *file, int line, const char *what, const char *msg) {
    fprintf(stderr, "%s:%d: CUDA call failed: %s: %s\n", file, line, what, msg);
    fflush(stderr);
    abort();
}

cuda_ctx *cuda_ctx_of(backend *be) {
    cuda_ctx *c = (cuda_ctx *)be->ctx;
    static __thread int current = -1;  // the device this thread last made current
    if (current != c->dev) { CU_CHECK(cudaSetDevice(c->dev)); current = c->dev; }
    return c;
}

void *cuda_scratch(backend *be, size_t bytes) {
    void *p = backend_workspace(be, bytes);
    if (!p) cuda_fatal(__FILE__, __LINE__, "backend_workspace", "cannot grow (callers reserve it first)");
    return p;
}

static void cu_close(backend *be) {
    cuda_ctx *c = (cuda_ctx *)be->ctx;
    if (!c) return;
    cudaSetDevice(c->dev);
    if (c->dinfo) cudaFree(c->dinfo);
    if (c->solver) cusolverDnDestroy(c->solver);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
    be->ctx = NULL;
}

static void cu_set_threads(backend *be, int n) { be->threads = 1; }  // no host thread count on a GPU

static int cu_mem_info(backend *be, uint64_t *free_bytes, uint64_t *total_bytes) {
    cuda_ctx_of(be);
    size_t f = 0, t = 0;
    if (cudaMemGetInfo(&f, &t) != cudaSuccess) { cudaGetLastError(); return -1; }
    *free_bytes = f;
    *total_bytes = t;
    return 0;
}

/* fp32 everywhere; BF16 and F16 weights for the matmul family */
static bool cu_supports(const backend *be, backend_op op, tensor_dtype dt) {
    if (op < 0 || op >= BOP_COUNT) return false;
    if (dt == TENSOR_F32) return true;
    return (op == BOP_LINEAR_FWD || op == BOP_LINEAR_BWD) && (dt == TENSOR_BF16 || dt == TENSOR_F16);
}

static void *cu_alloc(backend *be, size_t bytes) {
    cuda_ctx_of(be);
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e != cudaSuccess) { cudaGetLastError(); return NULL; }  // out of memory: a status
    return p;
}
static void cu_free(backend *be, void *p) {
    cuda_ctx *c = cuda_ctx_of(be);
    CU_CHECK(cudaStreamSynchronize(c->stream));
    CU_CHECK(cudaFree(p));
}
static void cu_upload(backend *be, void *dst, const void *src, size_t bytes) {
    cuda_ctx *c = cuda_ctx_of(be);
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
    CU_CHECK(cudaStreamSynchronize(c->stream));  // the caller may reuse its host buffer at once
}
static void cu_download(backend *be, void *dst, const void *src, size_t bytes) {
    cuda_ctx *c = cuda_ctx_of(be);
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
    CU_CHECK(cudaStreamSynchronize(c->stream));
}
static void cu_copy(backend *be, void *dst, const void *src, size_t bytes) {
    cuda_ctx *c = cuda_ctx_of(be);
    CU_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream));
}
static void cu_memset(backend *be, void *dst, int byte, size_t bytes) {
    cuda_ctx *c = cuda_ctx_of(be);
    CU_CHECK(cudaMemsetAsync(dst, byte, bytes, c->stream));
}
static void cu_synchronize(backend *be) {
    cuda_ctx *c = cuda_ctx_of(be);
    CU_CHECK(cudaStreamSynchronize(c->stream));
}

static const backend_iface cuda_iface = {
    /* kind */ "cuda", cu_close, cu_set_threads, cu_mem_info, cu_supports,
    cu_alloc, cu_free, cu_upload, cu_download, cu_copy, cu_memset, cu_synchronize,
    cuda_gemm, cuda_linear_fwd, cuda_linear_bwd,
    cuda_rmsnorm_fwd, cuda_rmsnorm_bwd,
    cuda_rope_table, cuda_rope_fwd, cuda_rope_bwd,
    cuda_attention_fwd, cuda_attention_bwd,
    cuda_swiglu_fwd, cuda_swiglu_bwd,
    cuda_embedding_fwd, cuda_embedding_bwd,
    cuda_ce_fwd, cuda_ce_bwd,
    cuda_rows_gather, cuda_rows_scatter, cuda_rows_fill,
    cuda_add, cuda_scale, cuda_axpy, cuda_sum, cuda_sumsq,
    cuda_adam_step,
    cuda_cholesky, cuda_tri_inv, cuda_chol_solve, cuda_tri_solve, cuda_spd_inverse,
};

extern "C" int cuda_device_count(const char **why) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why) *why = cudaGetErrorString(e);
        cudaGetLastError();
        return 0;
    }
    if (n == 0 && why) *why = "no CUDA device";
    return n;
}

extern "C" backend *cuda_backend_open(int index, const backend_opts *opts, cis_err *err) {
    const char *why = NULL;
    int n = cuda_device_count(&why);
    if (index < 0 || index >= n) {
        err_set(err, CIS_EINVAL, "device \"cuda:%d\": %s (%d GPU%s visible)", index, n ? "no such GPU" : why, n,
                n == 1 ? "" : "s");
        return NULL;
    }
    cuda_ctx *c = (cuda_ctx *)calloc(1, sizeof *c);
    backend *be = (backend *)calloc(1, sizeof *be);
    if (!c || !be) { free(c); free(be); err_set(err, CIS_ENOMEM, "cuda:%d: out of host memory", index); return NULL; }
    c->dev = index;
    be->iface = &cuda_iface;
    be->ctx = c;
    be->host_memory = false;
    be->threads = 1;
    snprintf(be->name, sizeof be->name, "cuda:%d", index);
    if (cudaSetDevice(index) != cudaSuccess || cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking) != cudaSuccess ||
        cublasCreate(&c->blas) != CUBLAS_STATUS_SUCCESS || cusolverDnCreate(&c->solver) != CUSOLVER_STATUS_SUCCESS ||
        cudaMalloc(&c->dinfo, sizeof(int)) != cudaSuccess) {
        const char *msg = cudaGetErrorString(cudaGetLastError());
        cu_close(be);
        free(be);
        err_set(err, CIS_ENOMEM, "cuda:%d: cannot create a stream, cuBLAS/cuSOLVER handles (%s)", index, msg);
        return NULL;
    }
    cublasSetStream(c->blas, c->stream);
    cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH);  // fp32 stays fp32 (no TF32) unless an op asks
    cusolverDnSetStream(c->solver, c->stream);
    (void)opts;
    return be;
}
