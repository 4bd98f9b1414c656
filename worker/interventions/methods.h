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
