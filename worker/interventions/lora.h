/* lora.h - the LoRA editor's pieces exposed for its tests (tests/worker/interventions/test_lora.c):
 * peft AdaLoRA's orthogonality penalty and the projection of a weight gradient onto the factors. The method itself is lora_apply (methods.h). */
#ifndef CISWEEP_INTERVENTIONS_LORA_H
#define CISWEEP_INTERVENTIONS_LORA_H

#include <stdbool.h>

/* the paper's step budget and the tiny family's (hidden size < 1024: lr x steps kept, measured in
 * docs/editing.md; lora_preset replaces a given value equal to the paper's and notes it) */
#define LORA_PAPER_STEPS 70
#define LORA_PAPER_LR 5e-3
#define LORA_TINY_STEPS 60
#define LORA_TINY_LR 5.83e-3

/* lora_orth_penalty: ||G - I||_F for G = A Aᵀ (gram_rows: A [rows, cols] is an AdaLoRA A, r x in)
 * or G = Aᵀ A (an AdaLoRA B, out x r); when grad is non-NULL, adds gscale · d||G - I||_F / dA
 * (= 2 (G - I) A / f, or 2 A (G - I) / f) into grad [rows, cols] (nothing when f = 0). */
double lora_orth_penalty(const float *A, int rows, int cols, bool gram_rows, float *grad, double gscale);

/* lora_project: the gradients of the factors of W = W0 + s B diag(E) A (ada) or W0 + s B A from
 * dW [out, in]: dB = s dW Mᵀ, dM = s Bᵀ dW with M = diag(E) A; dA = diag(E) dM; dE_i = Σ_j dM_ij
 * A_ij (0 when !ada; dE may be NULL). A [r, in], B [out, r], E [r]; outputs dA [r, in], dB [out, r],
 * dE [r] are overwritten; scratch holds r * in floats. */
void lora_project(const float *dW, const float *A, const float *B, const float *E, int out, int in, int r, double s,
                  bool ada, float *dA, float *dB, float *dE, float *scratch);

#endif
