/* methods.h - the entry points of the intervention methods built into this worker, one pair per
 * file (worker/interventions/<name>.c), for the registry (registry.c) and for tests. A method that
 * lands adds its lines here and switches its registry row to INTERV_BUILT. */
#ifndef CISWEEP_INTERVENTIONS_METHODS_H
#define CISWEEP_INTERVENTIONS_METHODS_H

#include "worker/interventions/intervention.h"

/* test_scale.c: the test stage (CAT_TEST): multiply the parameters matching `param` (and, through
 * the preset, the last `last_layers` layers) by `factor`. */
int test_scale_apply(interv_ctx *c, cis_err *err);
int test_scale_preset(const llama_config *cfg, json_t *params, cis_err *err);

/* rmu.c: RMU unlearning (unlearn.h has its engine, rmu_run). The preset resolves the layer for this
 * model's depth (act_layer, update_layers), Mistral's layer and module, the tiny family's values,
 * and the truncation lengths (max_len). */
int rmu_apply(interv_ctx *c, cis_err *err);
int rmu_preset(const llama_config *cfg, json_t *params, cis_err *err);
/* ga.c: gradient ascent and gradient difference (unlearn.h has their engine, ga_run). */
int ga_apply(interv_ctx *c, cis_err *err);
int ga_preset(const llama_config *cfg, json_t *params, cis_err *err);
int gd_apply(interv_ctx *c, cis_err *err);
int gd_preset(const llama_config *cfg, json_t *params, cis_err *err);

/* ft.c: FT-M fine-tuning of mlp.down_proj of the chosen layers on the edit set. */
int ft_apply(interv_ctx *c, cis_err *err);
int ft_preset(const llama_config *cfg, json_t *params, cis_err *err);

/* memit.c: MEMIT mass editing of mlp.down_proj with second-moment statistics (memit_stats.c). */
int memit_apply(interv_ctx *c, cis_err *err);
int memit_preset(const llama_config *cfg, json_t *params, cis_err *err);

/* lora.c: AdaLoRA (the paper's) or plain LoRA adapters trained on the edit set, merged. */
int lora_apply(interv_ctx *c, cis_err *err);
int lora_preset(const llama_config *cfg, json_t *params, cis_err *err);

/* wanda.c, sparsegpt.c, gptq.c, awq.c: the compressors (docs/compression.md); presets resolve
 * the calibration and (gptq, awq) the effective quantisation "group" for the model (compress.h). */
int wanda_apply(interv_ctx *c, cis_err *err);
int wanda_preset(const llama_config *cfg, json_t *params, cis_err *err);
int sparsegpt_apply(interv_ctx *c, cis_err *err);
int sparsegpt_preset(const llama_config *cfg, json_t *params, cis_err *err);
int gptq_apply(interv_ctx *c, cis_err *err);
int gptq_preset(const llama_config *cfg, json_t *params, cis_err *err);
int awq_apply(interv_ctx *c, cis_err *err);
int awq_preset(const llama_config *cfg, json_t *params, cis_err *err);

#endif
