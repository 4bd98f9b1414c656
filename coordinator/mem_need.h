/* mem_need.h - how much device memory a job needs, estimated at launch from its model and its
 * composition (issue 15: "the coordinator schedules by free device memory"). The estimate is
 * stored with the job (jobs.need_mb, jobs.need_basis) and the claim gives a job only to a worker
 * that offers at least that much (HELLO.free_mb; coordinator/job_store_dispatch.c js_claim_fit).
 *
 * The formula (bytes; docs/cluster.md "Scheduling by free device memory"):
 *   P     parameters of the model, counted from its config.json by the Llama layout the engine
 *         loads (worker/engine/checkpoint.h checkpoint_layout; Mistral and Phi-3 have the same
 *         counts once fused projections are split)
 *   W     = 4 P: the engine holds parameters in fp32 whatever the checkpoint's dtype
 *   base  = 2 W: the resident base copy and the job's working copy (worker/model_cache.h)
 *   act   = W / 4 + 64 MiB: activations, KV cache, the backend workspace, calibration buffers
 *           (a margin, not a measurement)
 *   extra = the largest of the composition's stages:
 *           ft, lora, rmu, ga, gd ("train"): 3 W, a gradient and AdamW's two moments for every
 *             parameter (an upper bound: these methods train a subset);
 *           memit, and its statistics job memit_stats ("edit-stats"): 8 F^2 per edited layer, the
 *             fp64 covariance of each edited layer's down_proj input (F = intermediate_size);
 *           compressors, test fixtures, no stage ("inference"): 0
 *   need  = base + act + extra, rounded up to whole MiB.
 * A models-map slot {"path": ..., "need_mb": N} replaces the estimate for every job of the slot. */
#ifndef CISWEEP_COORDINATOR_MEM_NEED_H
#define CISWEEP_COORDINATOR_MEM_NEED_H

#include <jansson.h>
#include <stdint.h>

#include "common/util.h"

typedef struct mem_model {
    int64_t n_params;       /* P, parameters */
    int64_t intermediate;   /* F, the MLP width (intermediate_size) */
    int64_t override_mb;    /* > 0: the models map's need_mb (the formula is not used) */
} mem_model;

typedef struct mem_need {
    int64_t need_mb;        /* MiB, >= 1 */
    char kind[16];          /* "inference", "train", "edit-stats", "override" */
    char basis[160];        /* one line: the inputs, e.g. "P=1.24e+06 W=4.7MiB kind=train (ft)" */
} mem_need;

/* mem_model_from_config: P and F from a config.json text (the fields of docs/checkpoints.md:
 * vocab_size, hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, optional
 * num_key_value_heads, head_dim, tie_word_embeddings). `where` names the file in messages.
 * 0, or -1 with err naming the file and the missing or bad field. */
int mem_model_from_config(const char *json_text, const char *where, mem_model *out, cis_err *err);

/* mem_model_from_dir: mem_model_from_config of model_dir/config.json; -1 with err naming the file
 * when it cannot be read (e.g. the coordinator's machine does not see the model directory). */
int mem_model_from_dir(const char *model_dir, mem_model *out, cis_err *err);

/* mem_need_estimate: the need of a job of model m running the canonical stage array `stages`
 * (a JSON array of {"method", "params"}; NULL or empty = evaluation only). Never fails: an unknown
 * method counts as "train" (the largest class). */
void mem_need_estimate(const mem_model *m, json_t *stages, mem_need *out);

#endif
