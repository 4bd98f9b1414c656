/* compress.h - what Wanda, SparseGPT, GPTQ and AWQ share (docs/compression.md): the seven decoder
 * linears and the hook point each reads, the calibration samplers (C4 windows as composable's
 * sparsellm loader, pile-val blocks as AWQ's; algorithms.md §1.2), the per-model group-size
 * preset, the Hessian preparation (dead inputs, damping, the upper Cholesky factor of H⁻¹;
 * algorithms.md §1.4), statistics collected layer by layer through calib.h into backend memory,
 * the OBS driver of GPTQ and SparseGPT, and the bits a quantizer's record reports (avg_bits as
 * upstream: wbits + 32/group, fidelity.md §3). */
#ifndef CISWEEP_INTERVENTIONS_COMPRESS_H
#define CISWEEP_INTERVENTIONS_COMPRESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "worker/engine/backend.h"
#include "worker/interventions/calib.h"
#include "worker/interventions/intervention.h"

/* The decoder linears in upstream order; CMP_Q..CMP_DOWN index cmp_linears[]. */
enum { CMP_Q = 0, CMP_K, CMP_V, CMP_O, CMP_GATE, CMP_UP, CMP_DOWN, CMP_N_LINEARS };
typedef struct cmp_linear {
    const char *name;          /* "self_attn.q_proj" (HF name inside model.layers.L.) */
    const char *short_name;    /* "q_proj" */
    llama_hook_point point;    /* the hook point whose activations are its input */
} cmp_linear;
extern const cmp_linear cmp_linears[CMP_N_LINEARS];

/* cmp_require_ops: 0 when the model's backend implements the six compression ops; else -1 with a
 * clear CIS_EINVAL naming the backend (a backend added before its compression kernels) */
int cmp_require_ops(const llama_model *m, cis_err *err);

/* cmp_param: the index of layer l's linear `which` in llama_model_params (asserts it exists). */
int cmp_param(llama_model *m, int l, int which);

/* cmp_calib_c4: n windows of T tokens from ctx->data_dir/c4/c4-train.00000-of-01024.json.gz, with
 * random.seed(seed) (CPython MT19937), by the effective key "c4_sampler":
 *   "v1" (default: the loader of the paper's Llama-3 runs, as the GPTQ/SparseGPT/Wanda repos):
 *        randint(0, n_docs-1) until a document has more than T tokens (with BOS), then a window at
 *        randint(0, len-T-1) of it;
 *   "concat1000" (composable's loader from Nov 2024): the first 1000 documents joined with single
 *        spaces, tokenized once with BOS, n offsets randint(0, len-T-1).
 * -1 with CIS_EINVAL naming the file when it is missing or has no document / text long enough. */
int cmp_calib_c4(const interv_ctx *ctx, int n, int T, uint64_t seed, calib_data *out, cis_err *err);
/* cmp_calib_pile: AWQ's pile-val blocks: ctx->data_dir/pile/val.jsonl (or .jsonl.zst) lines
 * shuffled with seed (MT19937 random.shuffle; upstream shuffles with datasets' numpy generator:
 * a documented deviation), the first n_lines whose stripped text is non-empty and encodes (with
 * BOS) to at most block tokens, concatenated and cut into floor(total/block) blocks of block tokens. */
int cmp_calib_pile(const interv_ctx *ctx, int n_lines, int block, uint64_t seed, calib_data *out, cis_err *err);

/* cmp_seqlen: the calibration window length: `requested` (> 0) or upstream's min(max_pos, 8192),
 * capped by the model's max_position_embeddings. */
int cmp_seqlen(const llama_config *cfg, long long requested);

/* cmp_group_preset: the effective quantisation group of this model, added as params "group" (and
 * "group_reason" when it differs from "group_size"): group_size unchanged when every decoder
 * linear's input width is at least group_size (Llama-3-8B: 4096, 14336); otherwise (the tiny
 * family: 64, 192) the gcd of group_size and the widths, so every group is whole. */
int cmp_group_preset(const llama_config *cfg, json_t *params, cis_err *err);

/* The calibration sizes: upstream's 128 samples (C4 windows; AWQ: pile-val lines), and the tiny
 * family's (hidden_size < EDIT_TINY_HIDDEN: the embedded default, 128-token windows), per method:
 * the fewest that keep the default model's quality at every grid level within the spread of
 * calibration seeds at 128 (docs/compression.md, "The calibration preset", the measurements).
 * 32 windows are 4,096 tokens, 21 per input of the widest linear (192), about upstream's 18 for
 * Llama-3-8B's down_proj (128 x 2048 tokens / 14336 inputs); GPTQ at 2 bits loses MMLU with 32
 * and needs 64. AWQ: 16 lines (10 blocks of 128 tokens), measured side by side with 64 and 32 on
 * the three study family models at bits 2-8 and with MEMIT/LoRA before and after it at 3 and 4 bits
 * (docs/compression.md "AWQ's tiny preset at 16 lines"; tests/bench/awq_preset_bench.py). */
#define CMP_PAPER_N_SAMPLES 128
#define CMP_TINY_N_SAMPLES_WANDA 64
#define CMP_TINY_N_SAMPLES_SPARSEGPT 32
#define CMP_TINY_N_SAMPLES_GPTQ 64
#define CMP_TINY_N_SAMPLES_AWQ 16

/* cmp_calib_preset: the calibration keys of the effective params, resolved for this model (not
 * grid parameters: upstream fixes them; tests and benchmarks that build params by hand may set
 * them first): "n_samples" (unless present: 128, or tiny_n on the tiny family, noted in
 * "tiny_preset" as "n_samples: 128 -> tiny_n (...)"), "seqlen" (present and > 0, else upstream_T;
 * capped by max_position_embeddings) and, for the C4 methods (upstream_T != 512), "c4_sampler"
 * ("v1" unless present). -1 with err on a bad n_samples. */
int cmp_calib_preset(const llama_config *cfg, json_t *params, int upstream_T, int tiny_n, cis_err *err);
/* optional effective keys (added by a preset): the value, or dflt when absent */
long long cmp_param_int(const interv_ctx *c, const char *key, long long dflt);
double cmp_param_num(const interv_ctx *c, const char *key, double dflt);

/* cmp_hinv_factor: H[k,k] (backend memory, the accumulated Hessian) -> U, the upper Cholesky factor
 * of (H + λI)⁻¹ with λ = damp·mean(diag H) after the dead-input fix (H_jj = 0 -> H_jj = 1 and column
 * j of W[rows,k] zeroed). perm (host, may be NULL): desc_act: gets argsort(diag H, descending, stable)
 * taken after the dead fix and before damping, and W's columns and H are permuted by it.
 * *n_dead gets the dead inputs. -1 with err (CIS_EINVAL) when a factorization fails. */
int cmp_hinv_factor(backend *be, float *H, float *W, int rows, int k, double damp, int32_t *perm, int *n_dead,
                    cis_err *err);
/* cmp_unpermute: W[rows,k] columns back to the original order after a desc_act sweep (host-side
 * through the backend's memory). */
void cmp_unpermute(backend *be, float *W, int rows, int k, const int32_t *perm);

/* The OBS driver (GPTQ and SparseGPT): layer by layer, Hessians of the linears' inputs collected on
 * the current model (true_sequential: in the groups {q,k,v} -> {o} -> {gate,up} -> {down}, each
 * after the earlier ones changed; otherwise one pass), each linear solved with obs_sweep, and the
 * next layer's input from the changed layer. */
typedef struct cmp_obs_cfg {
    obs_params op;           /* the sweep (bits/group/grid or sparsity/n:m; block) */
    double damp;             /* percdamp (0.01) */
    bool true_sequential;
    bool desc_act;           /* GPTQ act_order */
    int n_samples, seqlen;   /* calibration windows */
    uint64_t calib_seed;
} cmp_obs_cfg;
int cmp_obs_run(interv_ctx *ctx, const cmp_obs_cfg *cfg, cis_err *err);

/* cmp_check_sparsity (sparsegpt.c; Wanda too): sparsity in (0,1); prune_n:prune_m either 0:0 or
 * 0 < n < m <= 1024 with sparsity = n/m. -1 with CIS_EINVAL naming the parameter. */
int cmp_check_sparsity(const interv_ctx *c, double s, long long n, long long m, cis_err *err);

/* awq_fold (awq.c): fold AWQ scales s[k] of scaling pair `pair` of layer l into the model, output-
 * preserving before quantization: pair 0 input_layernorm / s and q,k,v columns * s; pair 1 v_proj's
 * last k rows / s and o_proj columns * s; pair 2 post_attention_layernorm / s and gate,up columns * s;
 * pair 3 up_proj rows / s and down_proj columns * s. -1 with err (memory). */
int awq_fold(llama_model *m, int l, int pair, const float *s, cis_err *err);

/* cmp_record_masks (compress.c): a pruner's compression record (cmp_record.h): the zero pattern of
 * every decoder linear of c->model now, into c->record->cmp, timed as phase "record". */
int cmp_record_masks(interv_ctx *c, cis_err *err);

/* cmp_quant_of_records: what the last quantizer of a plan's stage records (a JSON array of
 * interv_stage_json objects) reports: its record's "wbits" and "group" (the effective group).
 * 0 and *wbits = 0 when no stage quantized. */
void cmp_quant_of_records(json_t *records, int *wbits, int *group);

#endif
