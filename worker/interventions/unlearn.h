/* unlearn.h - machine unlearning (RMU, gradient ascent GA, gradient difference GD; docs/unlearning.md):
 * the corpora they read from a data directory in the real datasets' layout (the WMDP forget corpora
 * wmdp/bio-forget-corpus.jsonl and wmdp/cyber-forget-corpus.jsonl, the WikiText-2 test split
 * wikitext/wiki.test.raw as retain text), their tokenised batches, and the two engines the
 * interventions rmu.c and ga.c drive: rmu_run and ga_run, callable on any model (the tests give
 * them tiny random models and hand-made batches).
 *
 * Padding: the engine's batches are right-padded. Upstream pads on the left with pad = EOS and
 * counts the pad positions in the loss (RMU's MSE, GA/GD's labels). With pad_in_loss the pad
 * positions are real EOS tokens here (lens = T): they follow the text, so the text's own
 * activations and logits are those of the unpadded text (causal attention never looks ahead), and
 * the loss is the mean over all B x T rows (RMU) or all B x (T-1) next-token targets (GA/GD), as
 * upstream's. Without it, pads are masked and only real rows / targets count. */
#ifndef CISWEEP_INTERVENTIONS_UNLEARN_H
#define CISWEEP_INTERVENTIONS_UNLEARN_H

#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"
#include "worker/data/loaders.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"

/* the forget domains, in upstream's order (RMU alternates bio, cyber, bio, ...) */
enum { UNL_BIO = 0, UNL_CYBER = 1, UNL_N_TOPICS = 2 };
extern const char *const UNL_TOPIC_NAMES[UNL_N_TOPICS];   /* "bio", "cyber" */

/* ---- corpora ------------------------------------------------------------------------------- */

/* unl_load_forget: the forget corpus of one topic from DATA_DIR/wmdp/: bio = the "text" field of
 * each line of bio-forget-corpus.jsonl; cyber = each RAW line of cyber-forget-corpus.jsonl with its
 * "\n" (upstream's get_data does not parse that file's JSON: what ran; docs/unlearning.md). Texts
 * whose length in bytes is <= min_len are dropped (RMU 0, GA/GD 50). A missing file is CIS_EINVAL
 * "DATA/wmdp/bio-forget-corpus.jsonl: no such file (the WMDP bio forget corpus ...)"; a bad line
 * names the line. An empty result is an error too. Clear with text_docs_clear. */
int unl_load_forget(const char *data_dir, int topic, int min_len, text_docs *out, cis_err *err);
/* unl_load_retain: the rows of DATA_DIR/wikitext/wiki.test.raw as the Hugging Face wikitext-2-raw-v1
 * test split gives them (each line with its "\n"; blank lines ""), those longer than min_len bytes. */
int unl_load_retain(const char *data_dir, int min_len, text_docs *out, cis_err *err);

/* ---- batches ------------------------------------------------------------------------------- */

/* One tokenised batch, right-padded (see the padding note above). */
typedef struct unl_batch {
    int B, T;          /* rows, padded length */
    int32_t *ids;      /* [B, T] (pads = EOS) */
    int32_t *lens;     /* [B]: T for every row with pad_in_loss, else the text's tokens */
    int32_t *real;     /* [B]: the text's own tokens (BOS included), <= T */
    int32_t *targets;  /* [B, T] next-token targets (LOSS_IGNORE_INDEX where none), or NULL */
} unl_batch;

typedef struct unl_batches {
    unl_batch *b;      /* [n] (owned) */
    int n;
    int64_t tokens;    /* real tokens over all batches */
    int truncated;     /* texts cut at max_len */
} unl_batches;

/* unl_make_batches: tokenise texts (BOS added, as the HF tokenizers do; truncated to max_len tokens)
 * in file order, `batch` at a time (the last batch may be short; drop_last drops it). fixed_len:
 * every batch is padded to max_len ("max_length" padding, GA/GD); else to its longest text
 * (padding=True, RMU). targets: fill next-token targets (GA/GD). pad_in_loss: see above.
 * Clear with unl_batches_clear. -1 with err on a tokenizer failure or max_len < 2. */
int unl_make_batches(const tokenizer *tok, const text_docs *texts, int first, int count, int batch, int max_len,
                     bool fixed_len, bool targets, bool pad_in_loss, bool drop_last, unl_batches *out, cis_err *err);
void unl_batches_clear(unl_batches *b);

/* ---- RMU (rmu.c) --------------------------------------------------------------------------- */

typedef struct rmu_opts {
    int layer;                  /* activations read at the output of this decoder layer (hook E) */
    int layer_lo, layer_hi;     /* the updated layers (inclusive) */
    const char *module;         /* "o_proj", "down_proj", ... (q,k,v,o under self_attn; gate,up,down
                                   under mlp) */
    float coeff[UNL_N_TOPICS];  /* steering coefficient per topic (norm of the control vector) */
    float alpha[UNL_N_TOPICS];  /* retain weight per topic */
    float lr;                   /* transformers.AdamW (eps 1e-6, no weight decay) */
    int steps;                  /* optimizer steps in all, topics alternating */
    uint64_t seed;              /* control vectors */
    bool pad_in_loss;           /* pads count in the MSE (upstream) */
    bool no_prefix;             /* no shortcut: every forward from the embeddings and the frozen forward
                                   every step (the reference path for tests and benchmarks; rmu.c "The
                                   frozen prefix"): the same weights bit for bit */
    bool (*stop)(void *arg);    /* or NULL: checked after every step */
    void (*progress)(void *arg, double frac);
    void *cb_arg;
} rmu_opts;

typedef struct rmu_result {
    int steps;                  /* steps done */
    double *forget_loss;        /* [steps] L_f per step (malloc'd; rmu_result_clear) */
    double *retain_loss;        /* [steps] alpha x MSE per step */
    int n_updated;              /* parameter tensors updated */
    int64_t numel_updated;
    double seconds;
    int prefix_layers;          /* layers 0..prefix_layers-1 run once per batch and step (0: off) */
    int64_t prefix_computed;    /* prefixes computed, and uses served from a kept one */
    int64_t prefix_reused;
    int64_t frozen_reused;      /* steps that took the previous step's frozen retain activation */
} rmu_result;
void rmu_result_clear(rmu_result *r);

/* rmu_control_vector: the control vector of `topic` for seed: u uniform in [0,1)^D from the
 * splitmix64 stream of (seed, topic), normalised to unit L2 norm, times coeff. out [D]. */
void rmu_control_vector(uint64_t seed, int topic, int D, float coeff, float *out);

/* rmu_run: RMU on m (in place) with the frozen model `frozen` (same config; read only, never written)
 * as the retain reference. forget[t] = topic t's batches, retain = the retain batches; step i uses
 * topic i mod 2 and batch (i div 2) of that topic and of the retain batches, each cycled when shorter.
 * m's trainable set is changed (only the selected parameters, then frozen again at the end).
 * 0 = done, 1 = stopped by opts->stop, -1 with err. res (may be NULL) is filled. */
int rmu_run(llama_model *m, llama_model *frozen, const rmu_opts *o, const unl_batches *forget,
            const unl_batches *retain, rmu_result *res, cis_err *err);

/* ---- GA / GD (ga.c) ------------------------------------------------------------------------ */

typedef struct ga_opts {
    float lr;                   /* torch.optim.Adam (betas 0.9/0.999, eps 1e-8, no decay) */
    int accum;                  /* batches per optimizer step (the remainder is dropped) */
    float retain_weight;        /* GD: weight of the retain CE; ignored without retain batches */
    bool freeze_lower_half;     /* embeddings and layers 0..L/2-1 frozen (upstream's 0-15 of 32) */
    int replicas;               /* data-parallel replicas (train_loop.h); 0 = one per thread */
    /* kept frozen prefixes (issue 12; ga.c "The kept lower half"): with prefix_layers P > 0 (the
     * frozen layers 0..P-1, embeddings frozen), forget_x[i] / retain_x[i] is NULL or batch i's
     * residual stream entering layer P ([B*T, D] in the model's backend memory, as llama_layer_run
     * wrote it): that micro-batch's forward starts there. The same weights bit for bit. Used only
     * when the run has one replica (train_loop_replicas): a replica's slice would need its own. */
    int prefix_layers;
    float *const *forget_x;     /* [forget->n] or NULL */
    float *const *retain_x;     /* [retain->n] or NULL */
    bool (*stop)(void *arg);
    void (*progress)(void *arg, double frac);
    void *cb_arg;
} ga_opts;

typedef struct ga_result {
    int steps;
    double *loss;               /* [steps] mean CE of the step's micro-batches (forget and retain) */
    double seconds;
    int n_trainable;
    int started;                /* micro-batches started from a kept lower half (ga_opts.forget_x) */
} ga_result;
void ga_result_clear(ga_result *r);

/* ga_run: GA (retain NULL) or GD on m in place: step s takes forget batches s*accum .. s*accum+accum-1
 * (and as many retain batches), loss per batch (-CE_forget + w CE_retain) / accum, one Adam update.
 * Steps = floor(min(forget->n, retain->n) / accum). 0 done, 1 stopped, -1 with err. */
int ga_run(llama_model *m, const ga_opts *o, const unl_batches *forget, const unl_batches *retain, ga_result *res,
           cis_err *err);

#endif
