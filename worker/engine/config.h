/* config.h - the model architecture as read from a Hugging Face `config.json`.
 * One struct covers LlamaForCausalLM (Llama-2/3, Llama-3.2, Yi), MistralForCausalLM and
 * Phi3ForCausalLM (whose fused qkv_proj / gate_up_proj are split at load by checkpoint.c).
 * Everything the engine needs to build, run and save the model lives here; unknown architectures
 * and options the engine does not implement are refused at load with a clear error. */
#ifndef CISWEEP_ENGINE_CONFIG_H
#define CISWEEP_ENGINE_CONFIG_H

#include <stdbool.h>
#include "common/util.h"

typedef enum llama_arch {
    LLAMA_ARCH_LLAMA = 0,   /* LlamaForCausalLM */
    LLAMA_ARCH_MISTRAL = 1, /* MistralForCausalLM */
    LLAMA_ARCH_PHI3 = 2,    /* Phi3ForCausalLM: fused qkv_proj and gate_up_proj on disk */
} llama_arch;

typedef enum llama_rope_scaling {
    LLAMA_ROPE_NONE = 0,
    LLAMA_ROPE_LLAMA3 = 1,  /* rope_scaling.rope_type == "llama3" (Llama-3.1/3.2) */
} llama_rope_scaling;

#define LLAMA_MAX_EOS 4

typedef struct llama_config {
    llama_arch arch;
    char architecture[64];        /* as written: "LlamaForCausalLM", ... */
    char model_type[32];          /* "llama", "mistral", "phi3" */
    int vocab_size;               /* V */
    int hidden_size;              /* D */
    int intermediate_size;        /* F (SwiGLU inner width) */
    int num_hidden_layers;        /* L */
    int num_attention_heads;      /* H */
    int num_key_value_heads;      /* Hkv (== H for MHA; H % Hkv == 0) */
    int head_dim;                 /* Dh; config "head_dim" or D / H */
    int max_position_embeddings;
    float rms_norm_eps;
    float rope_theta;
    llama_rope_scaling rope_scaling;
    float rope_factor;            /* llama3: "factor" */
    float rope_low_freq_factor;   /* llama3: "low_freq_factor" */
    float rope_high_freq_factor;  /* llama3: "high_freq_factor" */
    int rope_original_max_pos;    /* llama3: "original_max_position_embeddings" */
    bool tie_word_embeddings;     /* lm_head shares embed_tokens' weight */
    int sliding_window;           /* Mistral; 0 = none (we refuse windows shorter than max seq used) */
    int bos_token_id;             /* -1 when absent */
    int eos_token_ids[LLAMA_MAX_EOS]; /* eos_token_id may be an int or a list in config.json */
    int n_eos;
    int pad_token_id;             /* -1 when absent */
    char torch_dtype[16];         /* "float32", "float16", "bfloat16" (the dtype to save in) */
} llama_config;

/* llama_config_load: parse config.json at `path` into cfg; -1 with err naming the file and field
 * on a missing/ill-typed field, an unknown architecture, or an option we do not implement
 * (attention_bias, mlp_bias, unknown rope_scaling types, hidden_act other than silu). */
int llama_config_load(const char *path, llama_config *cfg, cis_err *err);
/* llama_config_save: write cfg as a Hugging Face config.json (loadable by transformers). */
int llama_config_save(const char *path, const llama_config *cfg, cis_err *err);
/* llama_config_validate: shape sanity (positive sizes, H % Hkv == 0, head_dim even, ...). */
int llama_config_validate(const llama_config *cfg, const char *what, cis_err *err);

#endif
