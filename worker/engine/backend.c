/* backend.c - the backend registry: backend_get(name) returns a static table of ops. The cpu
 * table is filled from worker/engine/cpu/; a cuda table joins here when CISWEEP_CUDA is built. */
#include "worker/engine/backend.h"

#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"

static const backend_ops cpu_backend = {
    .name = "cpu",
    .set_threads = cpu_set_threads,
    .get_threads = cpu_get_threads,
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
};

const backend_ops *backend_get(const char *name) {
    if (!name || !strcmp(name, "cpu")) return &cpu_backend;
    return NULL;
}
