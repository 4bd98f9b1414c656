/* memit.h - MEMIT's numerical core, exposed for the oracle tests
 * (tests/worker/interventions/test_memit.c) and the benchmark: the closed-form layer update in
 * double precision, the context templates, and the target values (memit_values.c: serial or
 * batched). The method itself is memit_apply (methods.h). */
#ifndef CISWEEP_INTERVENTIONS_MEMIT_H
#define CISWEEP_INTERVENTIONS_MEMIT_H

#include <stdint.h>

#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"
#include "worker/interventions/edit_common.h"
#include "worker/interventions/intervention.h"

/* memit_solve: the MEMIT update of one layer, in double precision (LAPACK dpotrf/dpotrs):
 *   A = lambda C + K Kᵀ            C [F,F] symmetric PSD (E[k kᵀ]), K [F,u] (column j = key j)
 *   Delta = R Kᵀ A⁻¹  = R Xᵀ with X = A⁻¹ K     R [D,u] (column j = the residual of edit j,
 *                                                already divided by the layers left)
 * Delta [D,F] row-major (the shape of down_proj's weight). Minimises ||Delta K - R||² +
 * lambda tr(Delta C Deltaᵀ). When A is singular (statistics of too low a rank: the reference's
 * solve fails there) a ridge eps·mean(diag A)·I, eps = 1e-12, 1e-10, ... 1e-4, is added until the
 * Cholesky factorisation succeeds; *ridge (may be NULL) gets what was added (0: none). -1 with
 * CIS_EINVAL when even 1e-4 does not help. u = 0 gives 0. */
int memit_solve(const double *C, const double *K, const double *R, int F, int u, int D, double lambda,
                double *Delta, double *ridge, cis_err *err);

#define MEMIT_N_TEMPLATES 6   /* "{}" and five sampled "<text>. {}" */
#define MEMIT_STOP_LOSS 5e-2  /* the reference's early stop of the value optimisation */
#define MEMIT_PAPER_VSTEPS 25 /* v_steps: the paper's value-optimisation iterations */

/* memit_context_templates: the reference's context templates: "{}" followed by, for each seed word
 * "The", "Therefore", "Because", "I", "You", a top-5 sampled continuation of tok(word) (with BOS)
 * from m up to 10 tokens in all, decoded without special tokens, "\n\n" -> " ", "{" and "}" ->
 * " ", then + ". {}". Sampling is seeded by seed (the job's seed). out[0..5] malloc'd strings. */
int memit_context_templates(llama_model *m, const tokenizer *tok, uint64_t seed, char *out[MEMIT_N_TEMPLATES],
                            cis_err *err);

/* ---- target values (memit_values.c) ---------------------------------------------------------- */

/* the 7 inputs of one edit's value optimisation: rows 0..5 = tok(T_t(prompt)) + target[:-1] for the
 * 6 templates, row 6 = the KL input tok("{subject} is a") */
typedef struct memit_value_in {
    int T;                     /* padded length: the longest of the 7 rows (<= 256) */
    int no;                    /* target tokens (each rewriting row has no targets) */
    int record;                /* zsRE record index (messages) */
    int32_t *ids;              /* [7, T] token ids, 0 in the padding */
    int32_t *targets;          /* [7, T] next-token targets at the target positions, else -100 */
    int32_t lens[7];           /* real tokens per row */
    int32_t pt[7];             /* the last subject token of each row (where δ is added) */
} memit_value_in;

/* memit_value_inputs: build the inputs of edit r with the context templates tmpl. -1 with
 * CIS_EINVAL naming the record when the subject is not in the prompt, the target adds no token or
 * a row exceeds 256 tokens. Free with memit_value_in_free. */
int memit_value_inputs(const tokenizer *tok, const edit_request *r, char *const tmpl[MEMIT_N_TEMPLATES],
                       memit_value_in *vi, cis_err *err);
void memit_value_in_free(memit_value_in *vi);
/* memit_subject_index: len(tok(ctx + before + subject)) - 1 (BOS included): the last subject token */
int memit_subject_index(const tokenizer *tok, const char *ctx, const char *before, const char *subject, int *iota,
                        cis_err *err);

typedef struct memit_value_opts {
    int z_layer;               /* L*: δ is added at point E of this layer */
    int steps;                 /* v_steps: iterations (the last one makes no update) */
    double lr;                 /* v_lr (torch.optim.Adam, fresh per edit) */
    double kl_factor, weight_decay, clamp;   /* kl_factor, v_weight_decay, clamp_norm_factor */
    double stop_loss;          /* an edit stops once its loss is below this: the reference's 5e-2
                                  (MEMIT_STOP_LOSS; tests set others to make the stop happen) */
    int batch;                 /* value_batch: 1 = one edit at a time through the whole model (the
                                  original path); k > 1 = k edits per batched step started at layer
                                  L*+1; 0 = auto (memit_value_batch_auto) */
    double progress_lo, progress_hi;        /* the stage progress this phase reports over */
} memit_value_opts;

/* what one edit's optimisation did (the record's `values`) */
typedef struct memit_value_res {
    double loss_first, loss_last;   /* the loss at step 0 and at the last step computed */
    int steps;                      /* Adam updates made (the stopping step: no update there) */
    double h0_norm, delta_rel;      /* ||h0||, ||δ|| / ||h0|| */
} memit_value_res;

/* memit_values: the target values of u edits on c->model (frozen; nothing trainable): Z [u, D] =
 * h0 + δ per edit, res [u]; *batch_used (may be NULL) = the edits per batch that ran (1 = serial).
 * Reads c for the stop flag and progress only. Both paths give the same δ's within float rounding
 * and the same steps (tests/worker/interventions/test_memit.c). -1 with err (CIS_ECANCEL when
 * stopped; CIS_ENOMEM when a batch does not fit: lower value_batch). */
int memit_values(interv_ctx *c, const memit_value_in *in, int u, const memit_value_opts *o, float *Z,
                 memit_value_res *res, int *batch_used, cis_err *err);
/* memit_value_batch_auto: edits per batch for value_batch = 0: as many as keep the activations
 * saved for the backward of layers L*+1..L-1 under max(1 GiB, a quarter of the backend's free
 * memory), at least 1, at most u. */
int memit_value_batch_auto(llama_model *m, const memit_value_in *in, int u, int z_layer);

#endif
