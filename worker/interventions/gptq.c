/* gptq.c - GPTQ (Frantar et al. 2023) as composable-interventions runs it through AutoGPTQ
 * (algorithms.md §2, fidelity.md §6): every decoder linear quantized to `bits` (2, 3, 4, 8) with
 * symmetric min-max groups of `group` columns (the preset's effective group), desc_act off by
 * default, damping 1% of the mean Hessian diagonal, true-sequential ({q,k,v} -> {o} -> {gate,up}
 * -> {down}, each group's Hessian taken after the earlier groups are quantized), the lazy-batch
 * column sweep in blocks of 128 (backend op obs_sweep), calibration on 128 C4 windows sampled with
 * seed 0 whatever the job's seed (upstream hard-codes it). Weights are written back dequantized.
 *
 * Record: wbits, group (effective), sym, desc_act, true_sequential, damp, calib_* (windows, seqlen,
 * seed), obs_err_total (Σ (w-q)²/U_cc² over every linear: the damped quadratic error), per-layer
 * errors, dead_inputs; phases calibrate, statistics, solve, write_back, record (the integer codes,
 * scales, zero points and act-order permutations as the stage's record file, cmp_record.h). */
#include "worker/interventions/compress.h"
#include "worker/interventions/methods.h"

/* the effective params: the group for this model, the calibration (128 windows of
 * min(max_pos, 8192) tokens; 64 on the tiny family: compress.h), and what upstream fixes, recorded: damping 0.01, block 128,
 * symmetric, true-sequential */
int gptq_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    if (cmp_group_preset(cfg, params, err) || cmp_calib_preset(cfg, params, 8192, CMP_TINY_N_SAMPLES_GPTQ, err)) return -1;
    if (!json_object_get(params, "damp_percent")) json_object_set_new(params, "damp_percent", json_real(0.01));
    json_object_set_new(params, "block", json_integer(128));
    json_object_set_new(params, "sym", json_true());
    json_object_set_new(params, "true_sequential", json_true());
    return 0;
}

int gptq_apply(interv_ctx *c, cis_err *err) {
    const llama_config *lc = llama_model_config(c->model);
    long long bits = interv_param_int(c, "bits");
    json_t *gv = interv_param_get(c, "group");
    long long group = gv ? json_integer_value(gv) : interv_param_int(c, "group_size");
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return err_set(err, CIS_EINVAL, "params.bits: %lld is not one of 2, 3, 4, 8", bits);
    if (group < 1) return err_set(err, CIS_EINVAL, "params.group_size: %lld must be >= 1", group);
    if (cmp_require_ops(c->model, err)) return -1;
    cmp_obs_cfg cfg = {
        .op = {.block = 128, .bits = (int)bits, .group = (int)group, .grid = QGRID_MINMAX_SYM},
        .damp = cmp_param_num(c, "damp_percent", 0.01),
        .true_sequential = true,
        .desc_act = interv_param_bool(c, "desc_act"),
        .n_samples = (int)cmp_param_int(c, "n_samples", 128),
        .seqlen = cmp_seqlen(lc, cmp_param_int(c, "seqlen", 0)),
        .calib_seed = 0,
    };
    if (cmp_obs_run(c, &cfg, err)) return -1;
    interv_record_set_int(c->record, "wbits", bits);
    interv_record_set_int(c->record, "group", group);
    interv_record_set(c->record, "sym", json_true());
    interv_record_set(c->record, "desc_act", json_boolean(cfg.desc_act));
    interv_record_set(c->record, "true_sequential", json_true());
    interv_record_set_num(c->record, "damp", cfg.damp);
    interv_record_set_int(c->record, "block", cfg.op.block);
    interv_record_set_num(c->record, "avg_bits", bits + 32.0 / (double)group);
    return 0;
}
