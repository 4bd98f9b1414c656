/* checkpoint.h - a Hugging Face model directory <-> the engine's fp32 parameters.
 *
 * A model directory holds config.json and either model.safetensors or shards listed in
 * model.safetensors.index.json ("weight_map": tensor name -> shard file). Parameters are
 * exchanged as ckpt_tensor records carrying Hugging Face Llama names and nn.Linear layouts:
 *   model.embed_tokens.weight                         [V, D]
 *   model.layers.{i}.self_attn.q_proj.weight          [H*Dh, D]
 *   model.layers.{i}.self_attn.{k,v}_proj.weight      [Hkv*Dh, D]
 *   model.layers.{i}.self_attn.o_proj.weight          [D, H*Dh]
 *   model.layers.{i}.mlp.{gate,up}_proj.weight        [F, D]
 *   model.layers.{i}.mlp.down_proj.weight             [D, F]
 *   model.layers.{i}.{input,post_attention}_layernorm.weight  [D]
 *   model.norm.weight                                 [D]
 *   lm_head.weight                                    [V, D]  (absent when tie_word_embeddings)
 * Phi-3 stores self_attn.qkv_proj.weight [(H+2Hkv)*Dh, D] (q rows, then k, then v) and
 * mlp.gate_up_proj.weight [2F, D] (gate rows, then up); they are split at load and rejoined at
 * save, so the engine always sees the Llama names. */
#ifndef CISWEEP_ENGINE_CHECKPOINT_H
#define CISWEEP_ENGINE_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>
#include "common/util.h"
#include "worker/engine/config.h"

typedef struct ckpt_tensor {
    const char *name;     /* Hugging Face name, see above */
    int ndim;             /* 1 or 2 for the Llama family (at most 4) */
    int64_t shape[4];     /* row-major, nn.Linear layout [out, in] */
    float *data;          /* prod(shape) fp32 values, owned by the caller */
} ckpt_tensor;

/* checkpoint_load: fill every dst[i].data (caller-allocated, prod(shape) floats) from the
 * checkpoint in model_dir, converting F16/BF16 to fp32. -1 with err naming the tensor, the file
 * and the expected and found shapes when a shape disagrees with dst (i.e. with config.json); also
 * -1 for a missing tensor, a tensor in the files that dst does not ask for (except harmless ones:
 * "*.rotary_emb.inv_freq", and lm_head.weight equal to the embedding when the head is tied), an
 * index that names a missing shard or a tensor its shard lacks, or any invalid file. */
int checkpoint_load(const char *model_dir, const llama_config *cfg, ckpt_tensor *dst, size_t n, cis_err *err);

/* checkpoint_save: write config.json (cfg, torch_dtype set from dtype) and the tensors in dtype
 * "F32", "F16" or "BF16": one model.safetensors when max_shard_bytes is 0 or everything fits,
 * else model-0000k-of-0000N.safetensors shards (a new shard starts when the next tensor would
 * push the current one past max_shard_bytes) and model.safetensors.index.json
 * ({"metadata": {"total_size"}, "weight_map"}) as transformers writes them. Files of the other
 * layout left by an earlier save are removed. lm_head.weight is not written when the head is
 * tied. Phi-3 projections are fused on the way out. Creates model_dir if needed. */
int checkpoint_save(const char *model_dir, const llama_config *cfg, const ckpt_tensor *src, size_t n,
                    const char *dtype, size_t max_shard_bytes, cis_err *err);

/* checkpoint_dir_load_config: llama_config_load of model_dir/config.json. */
int checkpoint_dir_load_config(const char *model_dir, llama_config *cfg, cis_err *err);

/* checkpoint_layout: the parameter list a model of cfg has (names and shapes as above, data
 * NULL), in Hugging Face order; *n gets the count. Free with checkpoint_layout_free(&t, n). */
ckpt_tensor *checkpoint_layout(const llama_config *cfg, size_t *n);
/* checkpoint_layout_free: free the names and the array *t of n entries, set *t = NULL (NULL-safe;
 * the data pointers are the caller's). */
void checkpoint_layout_free(ckpt_tensor **t, size_t n);

#endif
