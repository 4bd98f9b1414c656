/* arch.c - the named architectures of arch.h and their Hugging Face configs. */
#include "worker/engine/arch.h"

#include <string.h>

/*  name           stands for          arch                D    F   L   H Hkv Dh  tied  r3    theta     lr */
static const arch_preset PRESETS[] = {
    {"tiny-llama3", "Llama-3-8B", LLAMA_ARCH_LLAMA, 64, 192, 10, 4, 2, 16, false, false, 500000.f, 6e-3f},
    {"tiny-mistral", "Mistral-7B", LLAMA_ARCH_MISTRAL, 64, 224, 10, 4, 1, 16, false, false, 1000000.f, 6e-3f},
    {"tiny-llama32", "Llama-3.2-3B", LLAMA_ARCH_LLAMA, 80, 192, 10, 5, 1, 16, true, true, 500000.f, 6e-3f},
    {"tiny-yi", "Yi-6B", LLAMA_ARCH_LLAMA, 64, 160, 12, 4, 4, 16, false, false, 5000000.f, 6e-3f},
    {"tiny-phi3", "Phi-3-mini", LLAMA_ARCH_PHI3, 64, 192, 10, 4, 4, 16, false, false, 10000.f, 6e-3f},
    {"wide-llama3", "Llama-3-8B (width experiment)", LLAMA_ARCH_LLAMA, 128, 384, 10, 8, 2, 16, false, false, 500000.f, 4e-3f},
    {"small-llama3", "Llama-3-8B (GPU preset)", LLAMA_ARCH_LLAMA, 640, 1792, 12, 10, 2, 64, false, false, 500000.f, 1e-3f},
};
#define N_PRESETS ((int)(sizeof PRESETS / sizeof PRESETS[0]))

const char *const ARCH_FAMILY[] = {"tiny-llama3", "tiny-mistral", "tiny-llama32", "tiny-yi", "tiny-phi3", NULL};

const arch_preset *arch_find(const char *name) {
    for (int i = 0; i < N_PRESETS; i++)
        if (name && !strcmp(PRESETS[i].name, name)) return &PRESETS[i];
    return NULL;
}

const arch_preset *arch_list(int *n) {
    *n = N_PRESETS;
    return PRESETS;
}

int arch_config(const arch_preset *p, int vocab_size, int bos, int eos, int pad, int max_pos, llama_config *c,
                cis_err *err) {
    memset(c, 0, sizeof *c);
    c->arch = p->arch;
    static const char *archs[] = {"LlamaForCausalLM", "MistralForCausalLM", "Phi3ForCausalLM"};
    static const char *types[] = {"llama", "mistral", "phi3"};
    snprintf(c->architecture, sizeof c->architecture, "%s", archs[p->arch]);
    snprintf(c->model_type, sizeof c->model_type, "%s", types[p->arch]);
    c->vocab_size = vocab_size;
    c->hidden_size = p->hidden;
    c->intermediate_size = p->intermediate;
    c->num_hidden_layers = p->layers;
    c->num_attention_heads = p->heads;
    c->num_key_value_heads = p->kv_heads;
    c->head_dim = p->head_dim;
    c->max_position_embeddings = max_pos;
    c->rms_norm_eps = 1e-5f;
    c->rope_theta = p->rope_theta;
    if (p->rope_llama3) {
        c->rope_scaling = LLAMA_ROPE_LLAMA3;
        c->rope_factor = 32.0f;
        c->rope_low_freq_factor = 1.0f;
        c->rope_high_freq_factor = 4.0f;
        c->rope_original_max_pos = 8192;
    }
    c->tie_word_embeddings = p->tied;
    c->sliding_window = 0;
    c->bos_token_id = bos;
    c->eos_token_ids[0] = eos;
    c->n_eos = eos >= 0 ? 1 : 0;
    c->pad_token_id = pad;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "float32");
    return llama_config_validate(c, p->name, err);
}

long long arch_param_count(const arch_preset *p, int V) {
    long long D = p->hidden, F = p->intermediate, q = (long long)p->heads * p->head_dim,
              kv = (long long)p->kv_heads * p->head_dim;
    long long layer = D * q + 2 * D * kv + q * D + 3 * D * F + 2 * D;
    return (long long)V * D * (p->tied ? 1 : 2) + p->layers * layer + D;
}
