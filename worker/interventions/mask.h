/* mask.h - the pruned-weight mask of the recompress policy `mask` (common/recompress.h): the
 * positions a pruner (Wanda, SparseGPT) left at zero in the seven decoder linears of every layer,
 * captured after the pruning stage and re-imposed (set back to zero) after every optimizer step of a
 * later trainer (through train_loop_set_post_step) and after every later stage (closed-form MEMIT,
 * LoRA's merge). Host-side bitmaps, one bit per weight; re-imposition goes through
 * llama_model_param_get/_set, so it works on every backend. */
#ifndef CISWEEP_INTERVENTIONS_MASK_H
#define CISWEEP_INTERVENTIONS_MASK_H

#include <stdint.h>

#include "common/util.h"
#include "worker/engine/model.h"

typedef struct interv_mask {
    llama_model *model;   /* the model the mask was captured on (borrowed) */
    int n;                /* masked tensors (0 = no mask) */
    int *param;           /* [n] parameter index (llama_model_params) */
    int64_t *numel;       /* [n] weights of that tensor */
    uint64_t **bits;      /* [n][ceil(numel/64)]: bit j set = weight j is held at zero */
    float *buf;           /* host scratch of the largest masked tensor */
    int64_t zeros;        /* positions held at zero, all tensors */
    int64_t applied;      /* re-impositions so far */
    int64_t restored;     /* weights a later stage had moved off zero and that were set back */
} interv_mask;

/* interv_mask_capture: add the zeros of m's decoder linears to mk (a union when called again, e.g.
 * after a second pruner). 0, or -1 with err (memory, a backend copy). */
int interv_mask_capture(interv_mask *mk, llama_model *m, cis_err *err);
/* interv_mask_add_record: add the masks of a pruner's compression record (cmp_record.h, a MASK
 * record, e.g. read back from the file a restored stage references) to mk, a union as capture;
 * mk->model becomes m. -1 with CIS_EINVAL naming the tensor when one is not in m or has another
 * shape. */
struct cmprec;
int interv_mask_add_record(interv_mask *mk, llama_model *m, const struct cmprec *r, cis_err *err);
/* interv_mask_apply: set every masked weight of mk->model back to zero; counts what it restored.
 * A tensor with nothing to restore is not written. 0, or -1 with err. */
int interv_mask_apply(interv_mask *mk, cis_err *err);
/* interv_mask_clear: free everything (mk becomes an empty mask). */
void interv_mask_clear(interv_mask *mk);

#endif
