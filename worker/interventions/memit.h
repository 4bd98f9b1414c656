/* memit.h - MEMIT's numerical core, exposed for the oracle tests
 * (tests/worker/interventions/test_memit.c) and the benchmark: the closed-form layer update in
 * double precision, and the context templates. The method itself is memit_apply (methods.h). */
#ifndef CISWEEP_INTERVENTIONS_MEMIT_H
#define CISWEEP_INTERVENTIONS_MEMIT_H

#include <stdint.h>

#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"

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

/* memit_context_templates: the reference's context templates: "{}" followed by, for each seed word
 * "The", "Therefore", "Because", "I", "You", a top-5 sampled continuation of tok(word) (with BOS)
 * from m up to 10 tokens in all, decoded without special tokens, "\n\n" -> " ", "{" and "}" ->
 * " ", then + ". {}". Sampling is seeded by seed (the job's seed). out[0..5] malloc'd strings. */
int memit_context_templates(llama_model *m, const tokenizer *tok, uint64_t seed, char *out[MEMIT_N_TEMPLATES],
                            cis_err *err);

#endif
