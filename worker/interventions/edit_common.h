/* edit_common.h - what the knowledge editors (MEMIT, FT, LoRA) share: the edit requests of the
 * job's edit set (zsRE records -> prompt, subject, target), the tokenisation of prompt + " " +
 * target into a right-padded batch with the target positions marked, and the per-model preset
 * that scales the paper's Llama-3-8B layer indices to the depth of the model at hand.
 *
 * Layer rule (docs/editing.md): `layers` is written for a model of `layers_depth` decoder layers
 * (32 = Llama-3-8B, the paper's model). When the model has another depth L, the span keeps its
 * shape as a contiguous range whose ends are scaled: lo' = round(lo * L / depth), hi' =
 * round(hi * L / depth) (round half up), so 4-8 of 32 becomes 1-3 of 10. layers_depth = 0, or a
 * model of exactly that depth, keeps the list as written. The preset writes the result as
 * "edit_layers" (and "loss_layer" = L - 1 for MEMIT, the reference's max(31, layer) on a 32-layer
 * model), so the stage record holds both the request and what ran. */
#ifndef CISWEEP_INTERVENTIONS_EDIT_COMMON_H
#define CISWEEP_INTERVENTIONS_EDIT_COMMON_H

#include <stdint.h>

#include "worker/interventions/intervention.h"

#define EDIT_SET_SIZE 50   /* edits per edit set (the paper: 50 in one batch) */

/* One edit request: the zsRE record's question, subject and new target. */
typedef struct edit_request {
    char *prompt;      /* zsRE src, e.g. "Where was Trezis Lere born?" */
    char *subject;     /* "Trezis Lere" */
    char *target;      /* the new answer (alt), without a leading space */
    char *rephrase;    /* paraphrase of prompt (for tests and records) */
    int record;        /* index of the record in the zsRE file */
} edit_request;

typedef struct edit_requests {
    edit_request *r;   /* [n] */
    int n;
} edit_requests;

/* edit_requests_load: the requests of edit set k (1-based) from DATA_DIR/zsre/zsre_mend_train.json
 * (with zsre/edit_sets.json when present; the reference's fixed shuffle otherwise), at most
 * EDIT_SET_SIZE. -1 with CIS_EINVAL naming the file when data_dir is NULL, the file is missing or
 * malformed, or edit set k lies beyond the records ("edit set 30 is beyond the 1090 records of
 * ..."). */
int edit_requests_load(const char *data_dir, int k, edit_requests *out, cis_err *err);
void edit_requests_clear(edit_requests *q);

/* A right-padded batch of B sequences tok(prompt + " " + target) (with BOS), for teacher-forced
 * training on the target tokens: targets[b*T + t] = ids[b*T + t + 1] at the positions that predict
 * a target token, LOSS_IGNORE_INDEX elsewhere. The target tokens are tok(prompt + " " + target)
 * minus the first |tok(prompt)| tokens (EasyEdit's prompt-length mask). */
typedef struct edit_batch {
    int B, T;
    int32_t *ids;      /* [B, T] */
    int32_t *lens;     /* [B] */
    int32_t *targets;  /* [B, T] */
    int32_t *n_tgt;    /* [B] target tokens of sequence b (>= 1) */
} edit_batch;

/* edit_batch_build: the batch of prompt/target pairs (prompts[i] + " " + targets[i]). -1 with
 * err naming the request when a target has no token of its own or the sequence is longer than the
 * model's max_position_embeddings. */
int edit_batch_build(const tokenizer *tok, int n, const char *const *prompts, const char *const *targets,
                     int max_len, edit_batch *out, cis_err *err);
void edit_batch_clear(edit_batch *b);

/* edit_tokens: tok(text) (with BOS when bos), malloc'd into *ids (*n). -1 with err. */
int edit_tokens(const tokenizer *tok, const char *text, bool bos, int32_t **ids, int *n, cis_err *err);

/* edit_scale_layers: the layer rule above: layers (sorted ints) written for `depth` layers onto a
 * model of L layers. *out (malloc'd) gets the resolved list, *n_out its length. -1 with
 * CIS_EINVAL when a resolved layer is outside 0..L-1. */
int edit_scale_layers(const int *layers, int n, int depth, int L, int **out, int *n_out, cis_err *err);

/* edit_preset_layers: the preset step for FT/MEMIT/LoRA: reads "layers" and "layers_depth" from
 * params and adds "edit_layers" (the resolved list). */
int edit_preset_layers(const llama_config *cfg, json_t *params, cis_err *err);

/* The tiny-model preset (docs/editing.md): a model with hidden_size < EDIT_TINY_HIDDEN (the
 * embedded default family; every model of the paper has >= 3072) gets its own values for the
 * params that are still at the paper's default: edit_tiny_override(cfg, params, name, paper,
 * tiny) replaces params[name] by `tiny` when it equals `paper` (an explicitly different value is
 * kept) and notes "name: paper -> tiny" in params["tiny_preset"] (a list). No-op on real models. */
#define EDIT_TINY_HIDDEN 1024
bool edit_is_tiny(const llama_config *cfg);
void edit_tiny_override(const llama_config *cfg, json_t *params, const char *name, double paper, double tiny);

/* edit_param_layers: the "edit_layers" list of the effective params (malloc'd), *n its length. */
int *edit_param_layers(const interv_ctx *c, int *n);

#endif
