/* arch.h - the named model architectures `cisweep train --arch NAME` builds: small stand-ins for
 * the five model slots of the paper's 417-composition grid (Llama-3-8B, Mistral-7B, Llama-3.2,
 * Yi, Phi-3), differing in width, depth and layout (GQA and MHA, tied and untied head, the Phi-3
 * fused-projection layout on disk), plus a larger preset for the GPU. Every preset has at least 10
 * layers so the interventions' paper layer defaults (MEMIT/FT on layers 4-8, RMU around layer 7)
 * exist unchanged (docs/training.md). They live in the engine, beside the config they produce, so
 * that everything that builds a model by name (pretraining in worker/train/, tests, benchmarks)
 * shares one table. */
#ifndef CISWEEP_ENGINE_ARCH_H
#define CISWEEP_ENGINE_ARCH_H

#include <stdbool.h>
#include "common/util.h"
#include "worker/engine/config.h"

typedef struct arch_preset {
    const char *name;         /* "tiny-llama3", ... */
    const char *stands_for;   /* the paper model it stands in for */
    llama_arch arch;          /* LLAMA / MISTRAL / PHI3 */
    int hidden;               /* D */
    int intermediate;         /* F */
    int layers;               /* L */
    int heads;                /* H */
    int kv_heads;             /* Hkv (== H: MHA) */
    int head_dim;             /* Dh */
    bool tied;                /* tie_word_embeddings */
    bool rope_llama3;         /* Llama-3.2-style rope_scaling */
    float rope_theta;
    float lr;                 /* peak AdamW learning rate that suits this size */
} arch_preset;

/* arch_find: the preset of that name, or NULL. */
const arch_preset *arch_find(const char *name);
/* arch_list: all presets; *n gets the count. The first is the default (tiny-llama3). */
const arch_preset *arch_list(int *n);
/* arch_family: the five slot stand-ins in grid order (NULL-terminated names). */
extern const char *const ARCH_FAMILY[];

/* arch_config: the Hugging Face config of preset p for a tokenizer of vocab_size with these special
 * ids; max_pos = max_position_embeddings. -1 with err when the result does not validate. */
int arch_config(const arch_preset *p, int vocab_size, int bos, int eos, int pad, int max_pos, llama_config *cfg,
                cis_err *err);
/* arch_param_count: parameters of preset p at vocab_size (tied head counted once). */
long long arch_param_count(const arch_preset *p, int vocab_size);

#endif
