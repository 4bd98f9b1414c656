/* optim.h - Adam/AdamW optimizer state for a list of parameter tensors (a model's trainable
 * subset, LoRA factors, a MEMIT delta vector): first and second moments in one fp32 block, the
 * step counter, and the update through the backend's adam_step. Variants (algorithms.md §0.3):
 * torch.optim.AdamW, transformers.AdamW (eps 1e-6 default there), torch.optim.Adam (L2 decay). */
#ifndef CISWEEP_ENGINE_OPTIM_H
#define CISWEEP_ENGINE_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "common/util.h"
#include "worker/engine/backend.h"

typedef struct optim_config {
    adam_variant variant;     /* ADAM_TORCH_ADAMW, ADAM_HF_ADAMW, ADAM_TORCH_ADAM */
    float lr;                 /* learning rate (optim_step may override per step for schedules) */
    float beta1, beta2;       /* 0.9, 0.999 */
    float eps;                /* 1e-8 (torch), 1e-6 (transformers.AdamW) */
    float weight_decay;       /* decoupled for the AdamW variants, L2 for ADAM_TORCH_ADAM */
} optim_config;

typedef struct optim optim;

/* optim_config_default: torch.optim.AdamW defaults (lr 1e-3, betas .9/.999, eps 1e-8, wd 1e-2)
 * for ADAM_TORCH_ADAMW; transformers.AdamW's (eps 1e-6, wd 0) for ADAM_HF_ADAMW; torch Adam's
 * (eps 1e-8, wd 0) for ADAM_TORCH_ADAM. */
optim_config optim_config_default(adam_variant v);

/* optim_new: state for n tensors on backend instance be (borrowed; NULL = a cpu instance of its
 * own): params[i] and grads[i] hold len[i] floats each in be's memory (pointers kept,
 * caller-owned, must outlive the optimizer). Moments (in be's memory) start at zero, step at 0.
 * NULL with err on bad arguments (NULL pointers, lr < 0, betas outside [0, 1), eps < 0) or when
 * be's memory is short (CIS_ENOMEM). */
optim *optim_new(backend *be, const optim_config *cfg, int n, float *const *params,
                 const float *const *grads, const int64_t *len, cis_err *err);
void optim_free(optim **o);
/* optim_step: one update of every tensor with lr (< 0 = the configured lr); increments the step. */
void optim_step(optim *o, float lr);
int64_t optim_steps(const optim *o);
/* optim_reset: zero the moments and the step counter (a fresh run on the same tensors). */
void optim_reset(optim *o);
/* optim_grad_norm: global L2 norm of all gradients (double accumulation). */
double optim_grad_norm(const optim *o);
/* optim_clip_grad_norm: scale all gradients so that their global norm is at most max_norm
 * (torch.nn.utils.clip_grad_norm_ with eps 1e-6); returns the norm before clipping. */
double optim_clip_grad_norm(optim *o, double max_norm);

#endif
