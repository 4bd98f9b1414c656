/* pretrain.h - from-scratch pretraining of a named architecture (worker/engine/arch.h) on a world's
 * corpus, the engine of `cisweep-worker train` and one client of the training loop
 * (train_loop.h): a byte-level BPE tokenizer trained on the corpus (or reused), documents packed
 * into fixed-length rows as <|begin_of_text|> doc <|end_of_text|> (a document is never split across
 * rows unless it is longer than a row) and SFT items as the loop's batches, AdamW with linear
 * warmup and cosine decay to min_lr_ratio x lr, global gradient clipping, data-parallel replicas, a
 * step budget (default PRETRAIN_DEFAULT_STEPS: the same seed and thread count give the same model
 * bit for bit on any load) or a wall-clock budget, and a Hugging Face model directory as the result
 * (config.json, model.safetensors, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
 * generation_config.json, train_info.json). docs/training.md has the choices and the measured
 * numbers. */
#ifndef CISWEEP_TRAIN_PRETRAIN_H
#define CISWEEP_TRAIN_PRETRAIN_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include "common/util.h"
#include "worker/engine/arch.h"
#include "worker/engine/model.h"

/* the default budgets of `cisweep train`: optimizer steps of one model, and of each model of
 * --family (docs/training.md, "Budget") */
#define PRETRAIN_DEFAULT_STEPS 4800
#define PRETRAIN_FAMILY_STEPS 3600

typedef struct pretrain_opts {
    const char *world_dir;      /* reads world_dir/corpus/pretrain.jsonl (unless corpus is set) */
    const char *corpus;         /* a JSONL file of {"text"} lines, overrides world_dir; or NULL */
    const char *sft_path;       /* extra corpus lines ({"prompt","completion"} items), or NULL: then
                                   world_dir/corpus/sft.jsonl when it exists (never with `corpus`) */
    const char *arch;           /* preset name (arch.h); ignored when preset is set */
    const arch_preset *preset;  /* or NULL: a caller-made preset (tests) */
    const char *out_dir;        /* the model directory to write (created) */
    const char *tokenizer_dir;  /* reuse this tokenizer (copied into out_dir), or NULL = train one
                                   (with init_dir it must be init_dir's tokenizer: `train --init` defaults
                                   it to init_dir) */
    const char *init_dir;       /* start from this trained model's weights instead of random ones (its
                                   config must be the architecture's with this vocabulary, its
                                   tokenizer.json the one trained with, byte for byte), or NULL */
    const char *device;         /* "cpu" (the only backend today) */
    int vocab_size;             /* BPE target (specials included); default 2048 */
    int seq_len;                /* row length T in tokens; default 128 */
    int batch;                  /* rows per step B; default 4 */
    int64_t steps;              /* > 0: the schedule's length (default PRETRAIN_DEFAULT_STEPS); 0 = fit
                                   the time budget `seconds` (the step count then depends on the machine) */
    double seconds;             /* > 0: stop cleanly when the training loop has run this long */
    int64_t stop_after;         /* > 0 (with steps > 0, at most steps): train the first stop_after steps of
                                   the `steps` schedule and write the model: bit for bit the full run's
                                   model after that many steps (the same lr, data and SFT phase); 0 = none */
    int threads;                /* <= 0: all cores */
    uint64_t seed;              /* init, document order */
    float lr;                   /* <= 0: the preset's */
    float min_lr_ratio;         /* cosine floor as a fraction of lr; default 0.1 */
    int warmup;                 /* warmup steps (at most 10% of the schedule); default 30 */
    float weight_decay;         /* decoupled (torch AdamW); default 0.01 */
    float clip;                 /* global gradient-norm clip; default 1.0 (<= 0: none) */
    int log_every;              /* steps between log lines; default 10 */
    int max_pos;                /* max_position_embeddings written; default seq_len (the trained context) */
    int sft_every;              /* with SFT items in the corpus: every sft_every-th step is an SFT step
                                   (default 2); a corpus of SFT items only trains on them alone */
    int sft_batch;              /* SFT items (rows, one item each) per SFT step; default 16 */
    double sft_from;            /* SFT steps start once this fraction of the schedule (steps, or the
                                   time budget) has run; default 0.6 */
    int replicas;               /* data-parallel replicas, 1 thread each; 0 = one per thread (1 = the
                                   plain loop, threads inside the ops) */
    atomic_int *stop;           /* or NULL: nonzero stops training; pretrain_run then returns 1 */
    bool tokenizer_only;        /* write the tokenizer files into out_dir and stop (no model) */
} pretrain_opts;

/* pretrain_opts_default: the defaults written above, everything else NULL/0. */
pretrain_opts pretrain_opts_default(void);

typedef struct pretrain_result {
    long long params;           /* model parameters (tied head counted once) */
    int vocab_size;
    int64_t corpus_docs, corpus_tokens;  /* documents and tokens (with BOS/EOS) of the corpus */
    int64_t steps, tokens;      /* optimizer steps run, real (unpadded) tokens trained on */
    double epochs;              /* tokens / corpus_tokens */
    double tokenizer_seconds;   /* BPE training + encoding of the corpus */
    double train_seconds;       /* the training loop */
    int replicas;               /* data-parallel replicas used (1 = none) */
    double tokens_per_s;        /* tokens / train_seconds */
    double first_loss;          /* loss of step 1 */
    double final_loss;          /* mean loss over the last 10% of LM steps (at least 1) */
    int64_t lm_steps;           /* steps on packed text rows */
    int64_t sft_items;          /* {"prompt","completion"} items in the corpus */
    int64_t sft_steps, sft_seen;/* SFT steps, SFT items trained on */
    double sft_epochs;          /* sft_seen / sft_items */
    double sft_first_loss, sft_final_loss;  /* mean CE over completion tokens: step 1, last 10% */
} pretrain_result;

/* pretrain_run: train and write the model directory. On success returns 0, fills *res and, when
 * model_out is not NULL, hands the trained in-memory model to the caller (free with
 * train_model_free of train_loop.h). -1 with err naming the file/option on bad input (missing
 * corpus, unknown arch or device, empty corpus, unwritable out_dir) or a failed step; 1 when the
 * stop flag ended training (nothing written but the tokenizer). */
int pretrain_run(const pretrain_opts *o, pretrain_result *res, llama_model **model_out, cis_err *err);

/* cmd_train: `cisweep-worker train --world DIR --arch NAME --out MODEL_DIR [--device cpu]
 * [--steps N] [--seconds S] [--threads N] [--seed S] [--tokenizer DIR] [--corpus FILE]
 * [--vocab N] [--seq-len T] [--batch B] [--lr X] [--warmup N] [--hidden D --ffn F --layers L --heads H
 * --kv-heads K --head-dim Dh] [--family] [--list]`. Without a budget: --steps PRETRAIN_DEFAULT_STEPS
 * (PRETRAIN_FAMILY_STEPS per model with --family); --seconds alone fits the schedule to a time
 * budget. Prints one JSON summary line per model. Exit status 0 ok, 1 failed, 2 usage. */
int cmd_train(int argc, char **argv);

#endif
