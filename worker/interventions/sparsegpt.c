/* sparsegpt.c - SparseGPT (Frantar & Alistarh 2023) as Wanda's repository and composable call it
 * (algorithms.md §3, fidelity.md §6): every decoder linear pruned to `sparsity` by OBS with weight
 * updates (backend op obs_sweep): blocks of 128 columns, the unstructured mask chosen once per
 * block, jointly over the block's rows, as the entries with W²/U_cc² at or below the element at
 * floor(s·rows·128) of their ascending order (the reference's `<=` threshold, which prunes one
 * more than floor(s·rows·128) per block: kept, and counted in the record), or an n:m mask chosen
 * on the updated weights; damping 1%; not true-sequential (one Hessian pass per layer over the
 * dense layer, then all seven linears); calibration on 128 C4 windows seeded by the job's seed;
 * the next layer sees the pruned layer's output. No joint quantization (composable runs none).
 *
 * Record: sparsity, prune_n/m, masked (entries zeroed by the masks), sparsity_masked, calib_*,
 * obs_err_total, per-layer errors and masked counts; phases calibrate, statistics, solve,
 * write_back, record (the masks as the stage's record file, cmp_record.h). */
#include "worker/interventions/compress.h"
#include "worker/interventions/cmp_record.h"
#include "worker/interventions/methods.h"

int cmp_check_sparsity(const interv_ctx *c, double s, long long n, long long m, cis_err *err) {
    if (!(s > 0 && s < 1)) return err_set(err, CIS_EINVAL, "params.sparsity: %g is outside (0, 1)", s);
    if (n || m) {
        if (n <= 0 || m <= 0 || n >= m)
            return err_set(err, CIS_EINVAL, "params.prune_n/prune_m: %lld:%lld is not an n:m pattern with 0 < n < m",
                           n, m);
        if (m > 1024) return err_set(err, CIS_EINVAL, "params.prune_m: %lld is more than 1024", m);
        if (s * m < n - 1e-9 || s * m > n + 1e-9)
            return err_set(err, CIS_EINVAL, "params.sparsity: %g must equal prune_n/prune_m = %lld/%lld for an n:m mask",
                           s, n, m);
    }
    return 0;
}

/* the effective params: the calibration (128 windows of min(max_pos, 8192) tokens; 32 on the tiny
 * family: compress.h) and what the
 * callers upstream hard-code, recorded: damping 0.01, block 128 */
int sparsegpt_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    if (cmp_calib_preset(cfg, params, 8192, CMP_TINY_N_SAMPLES_SPARSEGPT, err)) return -1;
    if (!json_object_get(params, "damp_percent")) json_object_set_new(params, "damp_percent", json_real(0.01));
    json_object_set_new(params, "block", json_integer(128));
    return 0;
}

int sparsegpt_apply(interv_ctx *c, cis_err *err) {
    const llama_config *lc = llama_model_config(c->model);
    double s = interv_param_float(c, "sparsity");
    long long n = interv_param_int(c, "prune_n"), m = interv_param_int(c, "prune_m");
    if (cmp_check_sparsity(c, s, n, m, err)) return -1;
    if (cmp_require_ops(c->model, err)) return -1;
    cmp_obs_cfg cfg = {
        .op = {.block = 128, .sparsity = n ? 0 : s, .prune_n = (int)n, .prune_m = (int)m},
        .damp = cmp_param_num(c, "damp_percent", 0.01),
        .true_sequential = false,
        .n_samples = (int)cmp_param_int(c, "n_samples", 128),
        .seqlen = cmp_seqlen(lc, cmp_param_int(c, "seqlen", 0)),
        .calib_seed = c->seed,
    };
    if (cmp_obs_run(c, &cfg, err)) return -1;
    if (cmp_record_masks(c, err)) return -1;
    interv_record_set_num(c->record, "sparsity", s);
    interv_record_set_int(c->record, "prune_n", n);
    interv_record_set_int(c->record, "prune_m", m);
    interv_record_set_num(c->record, "damp", cfg.damp);
    interv_record_set_int(c->record, "block", cfg.op.block);
    interv_record_set_str(c->record, "mask", n ? "n:m per row, chosen on the updated weights"
                                               : "per 128-column block, W^2/U_cc^2 <= the floor(s*rows*128)-th");
    return 0;
}
