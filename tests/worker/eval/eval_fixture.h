/* eval_fixture.h - shared fixtures of the evaluation tests: a byte-level BPE tokenizer written as a
 * real tokenizer.json (256 byte tokens with ids = byte values, optional merges " A".." D" -> one
 * token each, <|bos|> = 260, <|eos|> = 261 added by a TemplateProcessing post-processor) and tiny
 * Llama configs / models whose next-token distribution the test controls. */
#ifndef CISWEEP_TEST_EVAL_FIXTURE_H
#define CISWEEP_TEST_EVAL_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"

#define FX_V 262
#define FX_BOS 260
#define FX_EOS 261
#define FX_LETTER(k) (256 + (k)) /* " A".." D" when merged */

/* GPT-2 bytes_to_unicode: the code point standing for byte b */
static inline unsigned fx_byte_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return (unsigned)b;
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) n++;
    return 256u + (unsigned)n;
}

/* write dir/tokenizer.json (+ tokenizer_config.json); letters: merge " A".." D" */
static inline void fx_write_tokenizer(const char *dir, bool letters) {
    cis_err err = {0};
    CIS_ASSERT(mkdir_p(dir, &err) == 0);
    size_t cap = 1 << 16, w = 0;
    char *v = xmalloc(cap);
    w += (size_t)snprintf(v + w, cap - w, "{");
    for (int b = 0; b < 256; b++) {
        unsigned cp = fx_byte_cp(b);
        if (cp == '"' || cp == '\\') w += (size_t)snprintf(v + w, cap - w, "%s\"\\%c\":%d", b ? "," : "", (char)cp, b);
        else w += (size_t)snprintf(v + w, cap - w, "%s\"\\u%04x\":%d", b ? "," : "", cp, b);
    }
    w += (size_t)snprintf(v + w, cap - w, ",\"\\u0120A\":256,\"\\u0120B\":257,\"\\u0120C\":258,\"\\u0120D\":259}");
    const char *merges = letters ? "[\"\\u0120 A\",\"\\u0120 B\",\"\\u0120 C\",\"\\u0120 D\"]" : "[]";
    char *j = xasprintf(
        "{\"version\":\"1.0\",\"added_tokens\":["
        "{\"id\":260,\"content\":\"<|bos|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true},"
        "{\"id\":261,\"content\":\"<|eos|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],"
        "\"normalizer\":null,"
        "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
        "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},"
        "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}]},"
        "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<|bos|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
        "\"pair\":[],\"special_tokens\":{\"<|bos|>\":{\"id\":\"<|bos|>\",\"ids\":[260],\"tokens\":[\"<|bos|>\"]}}},"
        "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true,\"trim_offsets\":true,\"use_regex\":true},"
        "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,"
        "\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,\"vocab\":%s,\"merges\":%s}}",
        v, merges);
    char *p = xasprintf("%s/tokenizer.json", dir);
    CIS_ASSERT(write_file_replace(p, j, strlen(j), &err) == 0);
    free(p);
    const char *tc = "{\"bos_token\":\"<|bos|>\",\"eos_token\":\"<|eos|>\"}";
    p = xasprintf("%s/tokenizer_config.json", dir);
    CIS_ASSERT(write_file_replace(p, tc, strlen(tc), &err) == 0);
    free(p); free(j); free(v);
}

static inline tokenizer *fx_tokenizer(const char *dir, bool letters) {
    fx_write_tokenizer(dir, letters);
    tokenizer *t = NULL;
    cis_err err = {0};
    if (tokenizer_load(dir, &t, &err)) { fprintf(stderr, "fixture tokenizer: %s\n", err.msg); abort(); }
    return t;
}

static inline llama_config fx_config(int D, int L, int F, int maxpos) {
    llama_config c;
    memset(&c, 0, sizeof c);
    c.arch = LLAMA_ARCH_LLAMA;
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
    c.vocab_size = FX_V; c.hidden_size = D; c.intermediate_size = F; c.num_hidden_layers = L;
    c.num_attention_heads = 4; c.num_key_value_heads = 2; c.head_dim = D / 4; c.max_position_embeddings = maxpos;
    c.rms_norm_eps = 1e-6f; c.rope_theta = 10000.0f; c.tie_word_embeddings = false;
    c.bos_token_id = FX_BOS; c.eos_token_ids[0] = FX_EOS; c.n_eos = 1; c.pad_token_id = -1;
    return c;
}

static inline float *fx_param(llama_model *m, const char *name) {
    int n = 0;
    llama_param *p = llama_model_params(m, &n);
    int i = llama_model_find(m, name);
    CIS_ASSERT(i >= 0);
    return p[i].data;
}

/* a model whose every parameter is zero except the norms (= 1): logits are all 0, i.e. the
 * next-token distribution is uniform over FX_V tokens at every position */
static inline llama_model *fx_model_uniform(void) {
    llama_config c = fx_config(16, 2, 24, 512);
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, NULL, &err);
    CIS_ASSERT(m);
    return m;
}

/* a model that predicts token x everywhere: every embedding row is e0, the layers add nothing
 * (zero projections), the head's row x reads e0 and every other row is zero */
static inline llama_model *fx_model_constant(int32_t x) {
    llama_model *m = fx_model_uniform();
    float *emb = fx_param(m, "model.embed_tokens.weight"), *head = fx_param(m, "lm_head.weight");
    for (int v = 0; v < FX_V; v++) emb[(size_t)v * 16] = 1.0f;
    head[(size_t)x * 16] = 1.0f;
    return m;
}

static inline llama_model *fx_model_random(uint64_t seed, int maxpos) {
    llama_config c = fx_config(16, 2, 24, maxpos);
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, NULL, &err);
    CIS_ASSERT(m);
    llama_model_init_random(m, seed);
    /* larger weights than N(0, 0.02) so that the distribution is far from uniform */
    int n = 0;
    llama_param *p = llama_model_params(m, &n);
    for (int i = 0; i < n; i++) {
        if (p[i].ndim != 2) continue;
        int64_t cnt = p[i].shape[0] * p[i].shape[1];
        for (int64_t k = 0; k < cnt; k++) p[i].data[k] *= 25.0f;
    }
    return m;
}

static inline void fx_rm_rf(const char *d) {
    char *cmd = xasprintf("rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", d);
    free(cmd);
}

#endif
