/* train_internal.h - what the files of worker/train/ share and nobody else uses: the replica and
 * optimizer constructors and the memory operations of train_backend.c (the backend-facing spots). */
#ifndef CISWEEP_TRAIN_INTERNAL_H
#define CISWEEP_TRAIN_INTERNAL_H

#include "worker/train/train_loop.h"

/* train_replica_new: a data-parallel replica of m: same config, same trainable set, on the same
 * kind of backend with one thread; its parameters are not copied (the loop does that). NULL with
 * err. Free with train_model_free. */
llama_model *train_replica_new(llama_model *m, cis_err *err);

/* train_optim_new_tensors: an optimizer over the caller's tensors t, on m's backend. */
optim *train_optim_new_tensors(llama_model *m, const optim_config *cfg, const train_tensors *t, cis_err *err);

/* backend ops on tensors in the model's backend memory (dst and src may belong to two replicas on
 * the same device): zero n floats, dst += src, dst = src */
void train_tensor_zero(llama_model *m, float *p, int64_t n);
void train_tensor_add(llama_model *m, float *dst, const float *src, int64_t n);
void train_tensor_copy(llama_model *m, float *dst, const float *src, int64_t n);

#endif
