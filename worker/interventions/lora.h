/* lora.h - the LoRA editor's pieces exposed for its tests (tests/worker/interventions/test_lora.c):
 * peft AdaLoRA's orthogonality penalty. The method itself is lora_apply (methods.h). */
#ifndef CISWEEP_INTERVENTIONS_LORA_H
#define CISWEEP_INTERVENTIONS_LORA_H

#include <stdbool.h>

/* lora_orth_penalty: ||G - I||_F for G = A Aᵀ (gram_rows: A [rows, cols] is an AdaLoRA A, r x in)
 * or G = Aᵀ A (an AdaLoRA B, out x r); when grad is non-NULL, adds gscale · d||G - I||_F / dA
 * (= 2 (G - I) A / f, or 2 A (G - I) / f) into grad [rows, cols] (nothing when f = 0). */
double lora_orth_penalty(const float *A, int rows, int cols, bool gram_rows, float *grad, double gscale);

#endif
