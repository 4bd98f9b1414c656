/* cpu_backend.c - the "cpu" backend instance: host memory (64-byte aligned), the thread count of
 * the instance (its thread pool is in cpu_threads.c, joined at close), memory information from
 * /proc/meminfo, the supports() table, and the iface that backend.c hands out for "cpu". The ops
 * themselves are in the other cpu_*.c files. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "worker/engine/cpu/cpu_ops.h"

static void cpu_close(backend *be) { cpu_pool_close(be); }

static void cpu_set_threads(backend *be, int n) {
    if (n <= 0) n = openblas_get_num_procs();
    if (n < 1) n = 1;
    be->threads = n;
}

static int cpu_mem_info(backend *be, uint64_t *free_bytes, uint64_t *total_bytes) {
    FILE *f = fopen("/proc/meminfo", "r");
    uint64_t total = 0, avail = 0;
    if (f) {
        char line[256];
        unsigned long long v;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemTotal: %llu kB", &v) == 1) total = v * 1024ull;
            else if (sscanf(line, "MemAvailable: %llu kB", &v) == 1) avail = v * 1024ull;
        }
        fclose(f);
    }
    if (!total) {  // no /proc: sysconf
        long pages = sysconf(_SC_PHYS_PAGES), avp = sysconf(_SC_AVPHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || ps <= 0) return -1;
        total = (uint64_t)pages * (uint64_t)ps;
        avail = avp > 0 ? (uint64_t)avp * (uint64_t)ps : 0;
    }
    *free_bytes = avail;
    *total_bytes = total;
    return 0;
}

/* fp32 for everything; the matmul family also takes BF16 and F16 weights (widened per call) */
static bool cpu_supports(const backend *be, backend_op op, tensor_dtype dt) {
    if (op < 0 || op >= BOP_COUNT) return false;
    if (dt == TENSOR_F32) return true;
    return (op == BOP_LINEAR_FWD || op == BOP_LINEAR_BWD) && (dt == TENSOR_BF16 || dt == TENSOR_F16);
}

/* more than the machine's physical memory is refused up front (overcommit would accept it and
 * fail later, at first touch, with the OOM killer instead of a status) */
static void *cpu_alloc(backend *be, size_t bytes) {
    static uint64_t phys;
    if (!phys) {
        long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
        phys = pages > 0 && ps > 0 ? (uint64_t)pages * (uint64_t)ps : UINT64_MAX;
    }
    if ((uint64_t)bytes > phys) return NULL;
    void *p = NULL;
    size_t n = (bytes + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, n ? n : 64) != 0) return NULL;
    return p;
}
static void cpu_free(backend *be, void *p) { free(p); }
static void cpu_memcpy(backend *be, void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) memmove(dst, src, bytes);
}
static void cpu_memset(backend *be, void *dst, int byte, size_t bytes) { if (bytes) memset(dst, byte, bytes); }
static void cpu_synchronize(backend *be) { (void)be; }

const backend_iface cpu_backend_iface = {
    .kind = "cpu",
    .close = cpu_close,
    .set_threads = cpu_set_threads,
    .mem_info = cpu_mem_info,
    .supports = cpu_supports,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .memset = cpu_memset,
    .synchronize = cpu_synchronize,
    .gemm = cpu_gemm,
    .linear_fwd = cpu_linear_fwd,
    .linear_bwd = cpu_linear_bwd,
    .rmsnorm_fwd = cpu_rmsnorm_fwd,
    .rmsnorm_bwd = cpu_rmsnorm_bwd,
    .rope_table = cpu_rope_table,
    .rope_fwd = cpu_rope_fwd,
    .rope_bwd = cpu_rope_bwd,
    .attention_fwd = cpu_attention_fwd,
    .attention_bwd = cpu_attention_bwd,
    .swiglu_fwd = cpu_swiglu_fwd,
    .swiglu_bwd = cpu_swiglu_bwd,
    .embedding_fwd = cpu_embedding_fwd,
    .embedding_bwd = cpu_embedding_bwd,
    .ce_fwd = cpu_ce_fwd,
    .ce_bwd = cpu_ce_bwd,
    .rows_gather = cpu_rows_gather,
    .rows_scatter = cpu_rows_scatter,
    .rows_fill = cpu_rows_fill,
    .add = cpu_add,
    .scale = cpu_scale,
    .axpy = cpu_axpy,
    .sum = cpu_sum,
    .sumsq = cpu_sumsq,
    .adam_step = cpu_adam_step,
    .cholesky = cpu_cholesky,
    .tri_inv = cpu_tri_inv,
    .chol_solve = cpu_chol_solve,
    .tri_solve = cpu_tri_solve,
    .spd_inverse = cpu_spd_inverse,
    .gram_acc = cpu_gram_acc,
    .colsumsq_acc = cpu_colsumsq_acc,
    .quant_params = cpu_quant_params,
    .quant_dequant = cpu_quant_dequant,
    .obs_sweep = cpu_obs_sweep,
    .row_prune = cpu_row_prune,
};
