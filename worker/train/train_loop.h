/* train_loop.h - the one training loop that pretraining, FT, LoRA, RMU, GA, GD and MEMIT's value
 * optimisation reuse (docs/training.md, "The training loop"). A run is a budget of optimizer steps;
 * each step zeroes the gradients of what is optimised, runs `accum` micro-batches that accumulate
 * gradients, clips the global gradient norm, takes one AdamW (or Adam) step at the scheduled
 * learning rate, and reports progress. Two ways to get the gradients of a micro-batch:
 *
 *   batch mode   the caller's train_batch_fn fills a llama_batch (ids, lens, targets) and the loop
 *                runs forward + backward of the mean cross-entropy times a loss scale (-1 = gradient
 *                ascent), optionally over R data-parallel replicas of the model (one thread each,
 *                rows split between them, gradients summed into the model in replica order);
 *   step mode    the caller's train_step_fn computes the loss and ACCUMULATES gradients itself
 *                (hooks, custom losses through dlogits or grad seeds, LoRA's projected gradients,
 *                MEMIT's delta through an ADD hook's grad).
 *
 * What is optimised: the model's trainable parameters (llama_model_set_trainable), or a list of
 * the caller's own tensors with their gradient buffers (LoRA factors, a MEMIT delta vector).
 *
 * Control: a stop flag (atomic_int, e.g. a job's cancel or preemption) is read before every
 * micro-batch, and the progress callback runs after every step and may ask to stop; either ends the
 * run with TRAIN_STOPPED after at most one more micro-batch. Determinism: with a step budget, the
 * same inputs, seed-driven batches and the same replica and thread counts give bit-identical
 * results (the engine's reductions have fixed orders; replica gradients are summed in a fixed
 * order); a time budget (`seconds`) makes the step count depend on the machine. */
#ifndef CISWEEP_TRAIN_TRAIN_LOOP_H
#define CISWEEP_TRAIN_TRAIN_LOOP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/optim.h"

/* learning-rate schedules after the linear warmup */
typedef enum train_schedule {
    TRAIN_SCHED_CONSTANT = 0,   /* lr */
    TRAIN_SCHED_COSINE = 1,     /* lr -> min_lr_ratio x lr along half a cosine */
    TRAIN_SCHED_LINEAR = 2,     /* lr -> min_lr_ratio x lr linearly (HF's linear schedule at ratio 0) */
} train_schedule;

/* what train_loop_run returns */
typedef enum train_status {
    TRAIN_ERROR = -1,           /* err says why; the optimised tensors hold the last completed step */
    TRAIN_DONE = 0,             /* ran its step (or time) budget, or the step function converged */
    TRAIN_STOPPED = 1,          /* the stop flag or the progress callback ended it early */
} train_status;

/* passed to the batch and step functions: which micro-batch to produce */
typedef struct train_step_info {
    int64_t step;               /* 0-based step being computed */
    int64_t steps;              /* the budget (with a time budget only: the running estimate) */
    int micro;                  /* 0..accum-1 */
    int accum;                  /* micro-batches per step */
    double frac;                /* fraction of the budget done before this step: step / steps, or
                                   elapsed / seconds with a time budget; in [0, 1) */
    float loss_scale;           /* step mode: the scale to give llama_backward for this micro-batch
                                   (cfg loss_scale / accum) */
} train_step_info;

/* batch mode: one micro-batch for the model */
typedef struct train_batch {
    llama_batch b;              /* B, T, ids [B,T], lens [B] (or NULL), targets [B,T] (LOSS_IGNORE_INDEX
                                   = no target); n_out, logits, n_layers must stay 0/NULL. The arrays
                                   stay the caller's and must stay valid until the next call. A started
                                   batch (start_layer, x_start: a frozen prefix the caller kept) needs one
                                   replica (train_loop_replicas): a slice's prefix, computed on fewer rows,
                                   is not bit for bit the whole batch's */
    float scale;                /* this micro-batch's loss weight, times cfg loss_scale (0 = 1; GD:
                                   -1 on a forget batch and 1 on a retain batch) */
} train_batch;

/* batch mode: fill *out for micro-batch si->micro of step si->step. 0 = ok, 1 = no more data (the
 * run ends as TRAIN_DONE before this step), -1 = error (err filled). */
typedef int (*train_batch_fn)(void *ctx, const train_step_info *si, train_batch *out, cis_err *err);

/* step mode: compute the loss of micro-batch si->micro and ACCUMULATE the gradients of the
 * optimised tensors (the loop zeroes them before micro-batch 0: the model's with
 * llama_model_zero_grad, a tensor list's with memset). Pass si->loss_scale to llama_backward (or
 * scale custom gradients by it). *loss gets the micro-batch's loss (unscaled). 0 = ok, 1 =
 * converged: the run ends as TRAIN_DONE without this step's update (MEMIT's early stop), -1 =
 * error. */
typedef int (*train_step_fn)(void *ctx, const train_step_info *si, double *loss, cis_err *err);

/* after every optimizer update (projections, constraints, LoRA's re-merge into the weights):
 * 0 = ok, -1 = error. */
typedef int (*train_after_step_fn)(void *ctx, int64_t step, cis_err *err);

/* what the progress callback sees after every step */
typedef struct train_progress {
    int64_t step;               /* steps done, 1.. (increases by 1 per call) */
    int64_t steps;              /* the budget (time budget: the running estimate) */
    double frac;                /* of the budget done, after this step */
    double loss;                /* this step's loss: mean over its micro-batches (unscaled CE in
                                   batch mode) */
    double grad_norm;           /* global gradient norm before clipping */
    float lr;                   /* the learning rate of this step's update */
    int64_t targets;            /* batch mode: targets counted in this step; step mode: 0 */
    double elapsed;             /* seconds since the run started */
} train_progress;

/* nonzero: stop now (the run returns TRAIN_STOPPED) */
typedef int (*train_progress_fn)(void *ctx, const train_progress *p);

typedef struct train_loop_cfg {
    int64_t steps;              /* optimizer steps: the schedule's length (> 0); or 0 with seconds */
    double seconds;             /* > 0: stop cleanly after this much wall clock (TRAIN_DONE, `timed_out`);
                                   with steps = 0 the schedule and `frac` run on the fraction of it used */
    int64_t stop_after;         /* > 0 with a step budget: end the run (TRAIN_DONE, `cut`) after this many
                                   of the `steps` steps; the schedule, `frac` and the data stay those of the
                                   full budget, so the result is an exact prefix of the full run; 0 = none */
    int accum;                  /* micro-batches per step (gradient accumulation); default 1. Each
                                   micro-batch's loss is weighted 1/accum (the mean of the means) */
    optim_config optim;         /* variant, lr (the peak), betas, eps, weight decay; default
                                   optim_config_default(ADAM_TORCH_ADAMW) */
    train_schedule schedule;    /* default TRAIN_SCHED_CONSTANT */
    int warmup;                 /* steps of linear warmup: step s < warmup uses lr x (s+1)/warmup; default 0 */
    float min_lr_ratio;         /* floor of the cosine / linear decay as a fraction of lr; default 0 */
    float clip;                 /* global gradient-norm clip (torch clip_grad_norm_); <= 0 = none; default 0 */
    float loss_scale;           /* 1 = descent (default), -1 = gradient ascent (GA); 0 counts as 1 */
    int replicas;               /* batch mode: data-parallel replicas, one thread each; 0 = one per thread of
                                   the model's backend; 1 = none, threads inside the ops (default) */
    atomic_int *stop;           /* or NULL: nonzero stops the run before the next micro-batch */
    train_progress_fn progress; /* or NULL: after every step */
    void *progress_ctx;
} train_loop_cfg;

/* train_loop_cfg_default: the defaults written above (steps 0: the caller sets a budget). */
train_loop_cfg train_loop_cfg_default(void);
/* train_loop_replicas: how many data-parallel replicas a batch-mode run of c on m uses (1 = none) */
int train_loop_replicas(const train_loop_cfg *c, llama_model *m);

/* the caller's own tensors to optimise (step mode), shapes flat: params[i], grads[i] hold len[i]
 * floats; the pointers stay the caller's and must outlive the run */
typedef struct train_tensors {
    int n;
    float *const *params;
    float *const *grads;
    const int64_t *len;
} train_tensors;

/* one training task: the model, what is optimised and where the gradients come from */
typedef struct train_task {
    llama_model *model;         /* required (its backend runs the optimizer) */
    const train_tensors *tensors; /* NULL = the model's trainable parameters; else these (step mode only) */
    train_batch_fn batch;       /* exactly one of batch and step */
    train_step_fn step;
    train_after_step_fn after_step; /* or NULL */
    void *ctx;                  /* given to batch, step and after_step */
    optim *opt;                 /* or NULL: the loop makes one from cfg->optim (and frees it); else the
                                   caller's, over exactly what is optimised (its moments carry over) */
} train_task;

typedef struct train_loop_result {
    int64_t steps;              /* optimizer updates made */
    int64_t micro_batches;      /* micro-batches computed (a stopped step's included) */
    int64_t targets;            /* batch mode: cross-entropy targets trained on */
    double seconds;             /* wall clock of the run */
    double first_loss;          /* loss of the first step */
    double last_loss;           /* loss of the last step computed */
    double last_grad_norm;      /* before clipping */
    int replicas;               /* data-parallel replicas used (1 = none) */
    bool converged;             /* the step function ended the run */
    bool timed_out;             /* the time budget ended it */
    bool cut;                   /* cfg.stop_after ended it before the budget */
} train_loop_result;

/* train_loop_set_post_step: a hook every train_loop_run on THIS thread calls after each optimizer
 * step (after the task's after_step, e.g. LoRA's merge), until it is set to NULL again. The
 * recompress policy `mask` (worker/interventions/mask.h) uses it to keep a pruner's zeros at zero
 * through FT, LoRA, RMU, GA, GD and MEMIT's optimisation. A non-zero return ends the run with
 * TRAIN_ERROR and its err. Thread-local: each job thread sets its own. */
void train_loop_set_post_step(train_after_step_fn fn, void *arg);

/* train_loop_run: run the task. Returns TRAIN_DONE, TRAIN_STOPPED, or TRAIN_ERROR (-1) with err on
 * bad arguments, a failing callback, an engine error or a non-finite loss (the run "diverged").
 * res (may be NULL) is filled in every case. With replicas the model's backend runs one thread per
 * replica during the run; its thread count is restored at the end. */
int train_loop_run(const train_loop_cfg *cfg, const train_task *task, train_loop_result *res, cis_err *err);

/* train_loop_lr: the learning rate of step `step` (0-based) in a run of `steps` steps (> 0), or at
 * fraction `frac` of a time budget when steps <= 0. */
float train_loop_lr(const train_loop_cfg *cfg, int64_t step, int64_t steps, double frac);

/* ---- the model on a backend (worker/train/train_backend.c: the only place here that touches the
 * backend interface) ---- */

/* train_device_check: 0 when device ("cpu"; NULL = "cpu") can be opened, else -1 with err naming it. */
int train_device_check(const char *device, cis_err *err);
/* train_model_new: a model for cfg on device ("cpu") with `threads` threads (<= 0: all cores),
 * parameters zeroed, nothing trainable. NULL with err on an unknown device or a bad config. Free with
 * train_model_free. */
llama_model *train_model_new(const char *device, int threads, const llama_config *cfg, cis_err *err);
void train_model_free(llama_model **m);
/* train_model_threads / train_model_set_threads: the thread count of m's backend (<= 0: all cores). */
int train_model_threads(const llama_model *m);
void train_model_set_threads(llama_model *m, int threads);

#endif
