/* model.h - the Llama-family decoder (Llama-2/3, Llama-3.2, Mistral, Yi, Phi-3 after the split
 * at load) on a backend instance: fp32 parameters in one allocation of the backend's memory under
 * their Hugging Face names,
 * batched forward over right-padded sequences, backward to a chosen subset of parameters, hooks at
 * the points A-E of algorithms.md §0.2, greedy generation with a KV cache, and batched
 * log-likelihood of continuations.
 *
 * Memory: parameters, gradients, activations, hook edits and the KV cache live in the backend's
 * memory and every loop over them is a backend op. Arrays passed in a llama_batch or a llama_hook
 * (ids, targets, logits, hook values/reads/grads/seeds) are HOST memory owned by the caller: the
 * model uploads and downloads them; they must stay valid from llama_forward until the matching
 * llama_backward returns. llama_param.data and llama_model_grad() point into backend memory
 * (ordinary host memory on "cpu"): use llama_model_param_get/_set to read or write them portably. Errors on bad input return -1 and fill a cis_err naming
 * the field; the model is left usable.
 * Threads: one call at a time per model (not thread-safe), and per backend instance; the
 * instance's thread count applies. */
#ifndef CISWEEP_ENGINE_MODEL_H
#define CISWEEP_ENGINE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"
#include "worker/engine/backend.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/optim.h"
#include "worker/engine/config.h"

/* One parameter tensor: exactly the checkpoint helper's ckpt_tensor (name, ndim, shape[4], data),
 * so llama_model_params() can be handed to checkpoint_load/checkpoint_save as it is.
 * name: Hugging Face name, e.g. "model.layers.3.self_attn.q_proj.weight"; ndim 1 (norms) or 2;
 * shape in nn.Linear layout [out, in] (embed [V, D], norms [D]); data points into the model's
 * fp32 parameter block in the backend's memory. */
typedef ckpt_tensor llama_param;

typedef struct llama_model llama_model;

/* Hook points inside decoder layer l (algorithms.md §0.2); width in floats per token row. */
typedef enum llama_hook_point {
    LLAMA_HOOK_A = 0,   /* RMSNorm_in(h): input of q/k/v_proj              width D */
    LLAMA_HOOK_B = 1,   /* attention context, heads concatenated: o_proj in  width H*Dh */
    LLAMA_HOOK_C = 2,   /* RMSNorm_post(h + attn): input of gate/up_proj     width D */
    LLAMA_HOOK_D = 3,   /* silu(gate b) * (up b): input of down_proj (MEMIT key) width F */
    LLAMA_HOOK_E = 4,   /* layer output h + attn + mlp (residual stream)     width D */
} llama_hook_point;

typedef enum llama_hook_mode {
    LLAMA_HOOK_READ = 0,     /* no edit */
    LLAMA_HOOK_ADD = 1,      /* activation[row] += value[i] */
    LLAMA_HOOK_REPLACE = 2,  /* activation[row] = value[i] (no gradient flows past these rows) */
} llama_hook_mode;

/* A hook on one point of one layer for one forward (and its backward).
 * "rows" are the token rows the hook edits and reports gradients for: the n_pos (b, t) pairs
 * given, or every row b*T + t when n_pos < 0. */
typedef struct llama_hook {
    int layer;                 /* 0..L-1 */
    llama_hook_point point;
    llama_hook_mode mode;
    int n_pos;                 /* number of (pos_b, pos_t) pairs; < 0 = all B*T rows */
    const int32_t *pos_b;      /* [n_pos] batch index */
    const int32_t *pos_t;      /* [n_pos] token index */
    const float *value;        /* [rows, width]: the delta (ADD) or replacement (REPLACE) */
    float *read;               /* out or NULL: [B*T, width] the activation after the edit (forward) */
    float *grad;               /* out or NULL: [rows, width] dLoss/d(activation) at the rows, written
                                  by llama_backward (= the gradient w.r.t. an ADD delta) */
    const float *grad_seed;    /* in or NULL: [B*T, width] gradient added at this point during
                                  llama_backward (losses defined on activations, e.g. RMU's MSE) */
} llama_hook;

/* One batched forward. Sequences are right-padded: row b holds lens[b] real tokens at positions
 * 0..lens[b]-1; padding is masked as attention keys and never contributes to the loss. */
typedef struct llama_batch {
    int B, T;                  /* batch size, padded length (1 <= T <= max_position_embeddings) */
    const int32_t *ids;        /* [B, T] token ids in [0, V) for t < lens[b]; the rest is ignored */
    const int32_t *lens;       /* [B] in 1..T, or NULL = every row has T tokens */
    const int32_t *targets;    /* [B, T] or NULL: cross-entropy targets (LOSS_IGNORE_INDEX = skip;
                                  positions t >= lens[b] are skipped too); the loss is the mean over
                                  the counted targets */
    int n_out;                 /* rows whose logits go to `logits`: < 0 = all B*T, 0 = none */
    const int32_t *out_b;      /* [n_out] */
    const int32_t *out_t;      /* [n_out] */
    float *logits;             /* out or NULL: [n_out (or B*T), V] */
    int n_layers;              /* 0 = the whole model; k > 0 = only layers 0..k-1 (no head, no loss:
                                  for hooks on early layers) */
    int start_layer;           /* 0 = from the embedding; s > 0 = start at layer s (s = L: the final norm
                                  and head alone) with x_start as its
                                  input (the residual stream a caller computed once, e.g. with
                                  llama_embed + llama_layer_run: the frozen prefix of a loss that only
                                  changes later layers). Hooks must be on layers >= s, except hooks at
                                  point E of layer s-1, which act on x_start (ADD/REPLACE edit the
                                  rows, READ reads them, grad gets dLoss/d(layer s input)). The
                                  backward stops at layer s: no trainable parameter may lie below it
                                  (nor the embedding). ids must still be valid (they are checked) */
    const float *x_start;      /* [B*T, D] BACKEND memory (as llama_layer_run's x_in), when start_layer
                                  > 0; copied, not modified */
    int kv_T;                  /* 0 = none; > 0 (needs n_layers 0; start_layer 0 = every layer, from
                                  the embedding): the layers from
                                  start_layer attend through per-layer key/value caches of kv_T
                                  positions: row b's column t is absolute position kv_pos0[b] + t
                                  (RoPE included); its keys/values are written into the caches there
                                  and it attends to cache positions <= its own and < kv_pos0[b] +
                                  lens[b]. Positions below kv_pos0[b] must hold what an earlier
                                  forward of the same sequences with these caches wrote (kv_pos0 0):
                                  the frozen prefix of a loss whose variables sit at or after
                                  kv_pos0[b] (MEMIT's δ at the subject, causal attention; the
                                  multiple-choice header shared by a task's questions, eval_mc.c).
                                  Columns t >= lens[b] (padding) are written too: kv_pos0[b] + T
                                  <= kv_T keeps them inside row b's cache. The
                                  backward takes no gradient into the cached prefix. */
    const int32_t *kv_pos0;    /* [B] host, or NULL = 0; kv_pos0[b] + lens[b] <= kv_T */
    float *const *kv_k, *const *kv_v;   /* [L - start_layer] BACKEND pointers, each [B, kv_T, kvdim]
                                  (kvdim = num_key_value_heads * head_dim); written to, and read by
                                  llama_backward: keep them until it returns */
} llama_batch;

/* ---- life cycle and parameters ------------------------------------------------------------ */

/* llama_model_new: allocate a model for cfg (validated) on backend instance be, borrowed (it must
 * outlive the model; NULL = the model opens a cpu instance of its own, all cores, closed with it):
 * matrices zero, norm weights 1, nothing trainable, the RoPE table for max_position_embeddings
 * positions. NULL with err on an invalid config, or with CIS_ENOMEM when the backend's memory is
 * short (a retryable condition for a job). Free with llama_model_free. */
llama_model *llama_model_new(const llama_config *cfg, backend *be, cis_err *err);
void llama_model_free(llama_model **m);
/* llama_model_own_backend: the model takes over the backend instance it was created on and closes
 * it in llama_model_free (for a model handed to a caller who never saw the instance). */
void llama_model_own_backend(llama_model *m);
const llama_config *llama_model_config(const llama_model *m);
backend *llama_model_backend(const llama_model *m);

/* llama_model_params: the parameter list in Hugging Face named_parameters order (embed, per layer
 * q,k,v,o,gate,up,down,input_layernorm,post_attention_layernorm, norm, lm_head when untied);
 * *n gets its length. Owned by the model. */
llama_param *llama_model_params(llama_model *m, int *n);
/* llama_model_find: index of the parameter with that exact name, or -1. */
int llama_model_find(const llama_model *m, const char *name);
/* llama_model_numel: total number of parameter floats (tied head counted once). */
int64_t llama_model_numel(const llama_model *m);
/* llama_model_init_random: N(0, 0.02) for matrices, 1 for norm weights (HF initializer_range),
 * from a seeded generator: the same seed gives the same weights on every machine. */
void llama_model_init_random(llama_model *m, uint64_t seed);
/* llama_model_copy_params: copy all parameter values from src (same config) into dst (the
 * "reset to base weights" path). -1 if the configs differ. */
int llama_model_copy_params(llama_model *dst, const llama_model *src, cis_err *err);

/* llama_model_load: checkpoint_load of model_dir into m's parameters (config must match). */
int llama_model_load(llama_model *m, const char *model_dir, cis_err *err);
/* llama_model_save: checkpoint_save of m (config.json and safetensors in dtype "F32" (NULL),
 * "BF16" or "F16") into model_dir. */
int llama_model_save(llama_model *m, const char *model_dir, const char *dtype, cis_err *err);
/* llama_model_param_get / _set: copy parameter i (prod(shape) floats) to / from host memory. */
int llama_model_param_get(llama_model *m, int i, float *host, cis_err *err);
int llama_model_param_set(llama_model *m, int i, const float *host, cis_err *err);

/* ---- trainable subset and gradients ------------------------------------------------------- */

/* llama_model_set_trainable: mark (on) or unmark the parameters whose name matches glob
 * (fnmatch(3), e.g. "model.layers.*.mlp.down_proj.weight"; NULL = "*") and, when layer_lo >= 0,
 * whose layer index lies in [layer_lo, layer_hi] (non-layer parameters never match a range).
 * Gradient buffers exist only for trainable parameters and are zeroed when (re)allocated.
 * Returns the number of parameters matched, or -1 with err on a bad range. */
int llama_model_set_trainable(llama_model *m, const char *glob, int layer_lo, int layer_hi, bool on,
                              cis_err *err);
void llama_model_freeze_all(llama_model *m);
bool llama_model_is_trainable(const llama_model *m, int i);
/* llama_model_grad: the gradient buffer of parameter i (same shape, backend memory), NULL when frozen. */
float *llama_model_grad(llama_model *m, int i);
void llama_model_zero_grad(llama_model *m);
/* llama_model_set_full_backward: on = llama_backward runs every layer it visits in full, also the
 * lowest one, whose input gradient nothing needs when no trainable parameter, hook gradient or
 * embedding gradient lies below it (off, the default: that layer stops after its last op that feeds
 * a gradient someone asked for; the gradients are the same bit for bit, model_forward.c). For
 * tests and benchmarks; a new model starts on when the environment has CISWEEP_NO_SHORTCUTS=1. */
void llama_model_set_full_backward(llama_model *m, bool on);
/* The environment variable that turns the bit-for-bit shortcuts off (issue 12: this full backward,
 * RMU's frozen prefix, GA/GD's kept lower half) for side-by-side timings: set and not "0". */
#define LLAMA_NO_SHORTCUTS_ENV "CISWEEP_NO_SHORTCUTS"
bool llama_no_shortcuts(void);
/* llama_model_optim_new: an optimizer (optim.h) over the currently trainable parameters and
 * their gradient buffers; re-create it after changing the trainable set. */
optim *llama_model_optim_new(llama_model *m, const optim_config *cfg, cis_err *err);

/* ---- forward and backward ----------------------------------------------------------------- */

/* llama_forward: run the batch with the hooks (may be NULL / 0). *loss (may be NULL) gets the mean
 * cross-entropy over the counted targets (0 when there are none or targets is NULL).
 * for_backward keeps the activations llama_backward needs (only for the layers it will visit).
 * -1 with err on bad shapes, ids out of range, positions outside the batch, hooks on missing layers. */
int llama_forward(llama_model *m, const llama_batch *batch, const llama_hook *hooks, int n_hooks,
                  bool for_backward, double *loss, cis_err *err);
/* llama_backward: back-propagate the last forward (run with for_backward):
 *   loss_scale * d(mean CE)  +  Σ dlogits · logits  +  Σ hook grad_seed · activation
 * dlogits (may be NULL) is [n_out rows, V] as the forward returned them. Gradients ACCUMULATE into
 * the trainable parameters' buffers; hook->grad buffers are overwritten. loss_scale = -1 gives
 * gradient ascent. -1 with err when no forward was kept. */
int llama_backward(llama_model *m, float loss_scale, const float *dlogits, cis_err *err);

/* ---- layer by layer (the calibration driver of GPTQ / SparseGPT / Wanda / AWQ) ------------ */

/* (x, x_in, x_out below are backend memory: backend_alloc(llama_model_backend(m), ...); plain
 * host arrays on "cpu". ids and lens are host memory.)
 * llama_embed: x [B*T, D] = the embedding rows of ids (the input of layer 0); ids at t >= lens[b]
 * are ignored (their rows are the embedding of id 0). lens may be NULL (all T). -1 with err on ids
 * outside the vocabulary or bad sizes. */
int llama_embed(llama_model *m, int B, int T, const int32_t *ids, const int32_t *lens, float *x, cis_err *err);
/* llama_layer_run: decoder layer l alone on x_in [B*T, D] (right-padded sequences as in
 * llama_forward) into x_out [B*T, D] (must not alias x_in), applying hooks of layer l (read, add,
 * replace; no gradients). Running layers 0..L-1 in turn from llama_embed gives exactly the
 * residual stream of llama_forward, so a caller can change layer l's weights between calls. */
int llama_layer_run(llama_model *m, int l, int B, int T, const int32_t *lens, const float *x_in, float *x_out,
                    const llama_hook *hooks, int n_hooks, cis_err *err);
/* llama_layer_run_to: the same run stopped after hook point `last` (A..D) and its hooks: the ops
 * after it are not computed and there is no output, for a caller that only reads activations (the
 * AWQ / GPTQ calibration passes whose layer output is never used). Activations up to `last` are the
 * bytes llama_layer_run gives. -1 with err as llama_layer_run, or when a hook of layer l is at a
 * point after `last` or last is not one of A..D. */
int llama_layer_run_to(llama_model *m, int l, llama_hook_point last, int B, int T, const int32_t *lens,
                       const float *x_in, const llama_hook *hooks, int n_hooks, cis_err *err);

/* ---- generation and scoring ---------------------------------------------------------------- */

/* llama_generate: greedy decoding with a KV cache for n prompts (prompt i = prompts[i][0..
 * prompt_lens[i]-1]). Like HF generate(max_length=...): each output holds the prompt and then
 * generated tokens until its length reaches max_length or an EOS id of the config was emitted
 * (the EOS is kept). out is [n, max_length] (unused tail filled with -1), out_lens [n].
 * Ties in argmax go to the lowest id (torch.argmax). Prompts are batched up to 32 at a time. */
int llama_generate(llama_model *m, int n, const int32_t *const *prompts, const int *prompt_lens,
                   int max_length, int32_t *out, int *out_lens, cis_err *err);
/* llama_generate_until: llama_generate, where row i also stops once it has emitted stop_after[i]
 * tokens that are not among skip[0..n_skip-1] (stop_after NULL, or stop_after[i] < 0: no such
 * limit). Every token a row emits is the one llama_generate emits at that step, so a caller that
 * reads only the first k counted tokens of a row gets exactly llama_generate's answer for less work
 * (zsRE F1 reads |gold| of them). */
int llama_generate_until(llama_model *m, int n, const int32_t *const *prompts, const int *prompt_lens,
                         int max_length, const int *stop_after, const int32_t *skip, int n_skip, int32_t *out,
                         int *out_lens, cis_err *err);

/* llama_loglik: for each request i, the summed log-probability (double) of the continuation
 * tokens cont[i][0..cont_lens[i]-1] following the context ctx[i][0..ctx_lens[i]-1], and whether
 * every continuation token is the argmax (lm-eval-harness loglikelihood). ctx_lens >= 1,
 * cont_lens >= 1, ctx_len + cont_len <= max_position_embeddings. Requests are batched by length
 * up to max_batch_tokens padded tokens per forward (<= 0 = 4096). is_greedy may be NULL. */
int llama_loglik(llama_model *m, int n, const int32_t *const *ctx, const int *ctx_lens,
                 const int32_t *const *cont, const int *cont_lens, int max_batch_tokens,
                 double *ll, bool *is_greedy, cis_err *err);

/* llama_hook_width: floats per token row at a hook point for this model. */
int llama_hook_width(const llama_model *m, llama_hook_point p);

#endif
