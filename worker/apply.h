/* apply.h - `cisweep apply`: apply a composition to a model directory by hand and write the result
 * as a Hugging Face checkpoint plus apply.json, the record of what ran (worker/cmd_apply.c;
 * docs/interventions.md "cisweep apply"). The stages go through the same plan and the same
 * interv_run_plan as a sweep job's. */
#ifndef CISWEEP_WORKER_APPLY_H
#define CISWEEP_WORKER_APPLY_H

#include "common/util.h"
#include "worker/engine/model.h"

/* apply_save_model: write m as a Hugging Face model directory out_dir (created if needed):
 * config.json and model.safetensors in dtype "F32" | "F16" | "BF16" (checkpoint_save), plus the
 * tokenizer and generation files of src_dir that exist (tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json, generation_config.json, tokenizer.model, added_tokens.json),
 * copied byte for byte. The one place that reads the parameters back for saving: a device
 * backend downloads them here. -1 with err naming the file. */
int apply_save_model(llama_model *m, const char *src_dir, const char *out_dir, const char *dtype, cis_err *err);

/* apply_dtype_of: the safetensors dtype matching a config's torch_dtype ("float32" -> "F32",
 * "bfloat16" -> "BF16", "float16" -> "F16"; anything else "F32"). */
const char *apply_dtype_of(const llama_config *cfg);

/* cmd_apply: the command (argv[0] == "apply"); exit status 0, 1 (a stage or the save failed at
 * run time, or a stop signal), 2 (usage, bad input: JSON, method, params, model directory). */
int cmd_apply(int argc, char **argv);

#endif
