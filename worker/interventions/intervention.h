/* intervention.h - the home of the interventions (MEMIT, FT, LoRA, Wanda, SparseGPT, GPTQ, AWQ,
 * RMU, GA, GD, and the test stage test_scale): the context a method runs in, the registry that maps
 * the method names of common/spec_registry.c to their code, the stage plan of a composition (with
 * the paper's recompress-at-end rule), and the one function that runs a plan on a model. The job
 * runner (worker/runner.c) and `cisweep apply` (worker/cmd_apply.c) both go through
 * interv_plan_build + interv_run_plan, so a stage runs the same way in a sweep and by hand.
 * Nothing here knows about the daemon: progress and stop come in as callbacks.
 *
 * Adding a method (docs/interventions.md): one file worker/interventions/<name>.c defining
 * `int <name>_apply(interv_ctx *, cis_err *)` (and a preset when its defaults depend on the model),
 * then its row in registry.c switches from NOT_BUILT to BUILT. */
#ifndef CISWEEP_INTERVENTIONS_INTERVENTION_H
#define CISWEEP_INTERVENTIONS_INTERVENTION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/recompress.h"
#include "common/spec.h"
#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"
#include "worker/interventions/record.h"

/* ---- the context a method runs in ---------------------------------------------------------- */

/* Everything one stage may use. Filled by interv_run_plan; a method reads it and writes only the
 * model's parameters and *record. */
typedef struct interv_ctx {
    llama_model *model;          /* modified in place (the caller resets or reloads it) */
    const tokenizer *tok;        /* the model's tokenizer */
    const char *data_dir;        /* datasets: a `cisweep world` dir or the real data in that layout
                                    (zsre/, wmdp/, wikitext/, c4/, pile/); NULL = none given */
    const char *cache_dir;       /* a directory the method may keep reusable files in (covariance
                                    statistics, calibration activations); NULL = none: recompute */
    const char *method;          /* "wanda" */
    int stage, n_stages;         /* 1-based position in the plan, and the plan's length (messages) */
    bool recompress;             /* this stage is the paper's re-application at the end */
    json_t *params;              /* effective params: canonical (defaults filled) + the method's
                                    per-model preset (borrowed; read with interv_param_*) */
    uint64_t seed;               /* the job's seed (= the edit set): calibration windows, inits */
    int edit_set;                /* the zsRE edit set, 1-based (zsre_split in worker/data/loaders.h) */
    int threads;                 /* compute threads the caller asked for (<= 0 = all cores) */
    interv_record *record;       /* what the method did and its phase times (record.h) */
    llama_model *base;           /* the unmodified base model (its weights are never changed), or NULL
                                    = unknown: MEMIT keys and computes its statistics on it, as upstream
                                    reuses the uncompressed statistics after compression */
    /* callbacks: call interv_progress / interv_should_stop, not these */
    void (*progress_fn)(void *arg, double fraction);
    bool (*stop_fn)(void *arg);
    void *cb_arg;
} interv_ctx;

/* interv_progress: the stage's progress, fraction 0..1 of this stage (clamped). */
void interv_progress(const interv_ctx *c, double fraction);
/* interv_should_stop: true once the job was cancelled or preempted (or `cisweep apply` got a
 * signal). Long loops call it at least every ~100 ms and then return -1 with interv_stopped(). */
bool interv_should_stop(const interv_ctx *c);
/* interv_stopped: err = CIS_ECANCEL "stopped on request"; returns -1. */
int interv_stopped(const interv_ctx *c, cis_err *err);

/* typed getters of effective params. A declared parameter is always present (canonical form);
 * a missing one or a type mismatch is a programmer error (CIS_ASSERT). interv_param_get returns
 * the raw value or NULL (for keys a preset may or may not add). */
json_t *interv_param_get(const interv_ctx *c, const char *name);
long long interv_param_int(const interv_ctx *c, const char *name);
double interv_param_float(const interv_ctx *c, const char *name);
const char *interv_param_str(const interv_ctx *c, const char *name);
bool interv_param_bool(const interv_ctx *c, const char *name);

/* ---- the registry ---------------------------------------------------------------------------- */

/* apply: run the method on ctx->model. 0, or -1 with err: CIS_EINVAL for bad input (params that do
 * not fit the model, a missing or malformed dataset: not retryable), CIS_ENOMEM / CIS_EIO for
 * resources (retryable), CIS_ECANCEL when interv_should_stop said so. The caller prefixes the
 * message with "<method> (stage k): ". */
typedef int (*interv_apply_fn)(interv_ctx *ctx, cis_err *err);
/* preset: turn the canonical params into the effective params for this model, in place: resolve
 * model-dependent values (layer indices scaled to the depth, a per-architecture module), add the
 * resolved keys the method reads. Never removes a key. -1 with err when the params cannot fit
 * this model (e.g. a layer past the last). */
typedef int (*interv_preset_fn)(const llama_config *cfg, json_t *params, cis_err *err);

typedef enum interv_status {
    INTERV_BUILT = 0,       /* apply is set */
    INTERV_NOT_BUILT = 1,   /* named in spec_registry.c; its implementation has not landed yet */
    INTERV_FIXTURE = 2,     /* selftest: the orchestration fixture, run by the runner, never on a model */
} interv_status;

typedef struct intervention {
    const char *name;            /* as in common/spec_registry.c */
    method_category category;    /* as in common/spec_registry.c (a test checks it) */
    interv_status status;
    interv_apply_fn apply;       /* set iff status == INTERV_BUILT */
    interv_preset_fn preset;     /* NULL = the canonical params are the effective params */
    bool reapply_at_end;         /* paper rule: re-applied at the end when it is the first of
                                    several stages (wanda, sparsegpt, gptq; not awq) */
    const char *doc;             /* one line: where the code is, or what is missing */
} intervention;

/* intervention_lookup: the entry of that method name, NULL when unknown. */
const intervention *intervention_lookup(const char *name);
/* intervention_at: iterate the table (NULL past the end). */
const intervention *intervention_at(size_t i);
const char *interv_status_name(interv_status s);   /* "built", "not built yet", "fixture" */

/* ---- the stage plan ---------------------------------------------------------------------------- */

typedef struct interv_step {
    int stage;                   /* 1-based position in the plan */
    int of_stage;                /* 1-based position in the composition it applies */
    bool recompress;             /* a re-application at the end (the recompress policy's) of
                                    composition stage of_stage */
    bool mask_capture;           /* policy mask: after this (pruning) step, its zeros are kept at zero
                                    through every later step (run.c) */
    const intervention *iv;      /* registry entry (static) */
    const method_info *mi;       /* spec registry entry (static) */
    json_t *params;              /* canonical params of that composition stage (borrowed from
                                    the plan's canonical array) */
} interv_step;

typedef struct interv_plan {
    json_t *canonical;           /* the canonical composition (owned) */
    int n;                       /* number of steps */
    interv_step *steps;          /* [n] (owned) */
    recompress_policy policy;    /* what laid the steps out (common/recompress.h) */
} interv_plan;

enum interv_plan_flags {
    INTERV_ALLOW_TEST = 1,       /* test-category stages (test_scale) may run (--selftest,
                                    --allow-test-stages) */
    INTERV_EXACT = 2,            /* run the composition as written: no re-application at the end
                                    (the same as policy never; wins over INTERV_RECOMPRESS) */
};
/* the recompress policy rides in the flags: flags | INTERV_RECOMPRESS(RECOMPRESS_MASK); none given
 * (0) is RECOMPRESS_PAPER */
#define INTERV_RECOMPRESS_SHIFT 8
#define INTERV_RECOMPRESS(p) (((unsigned)(p) & 3u) << INTERV_RECOMPRESS_SHIFT)
/* interv_plan_policy: the policy flags ask for (INTERV_EXACT -> never). */
recompress_policy interv_plan_policy(unsigned flags);
/* interv_prunes: is iv a pruner (wanda, sparsegpt), whose zeros policy mask keeps? */
bool interv_prunes(const intervention *iv);

/* interv_plan_reapplies: the paper's rule (docs/interventions.md, ../shared/docs/fidelity.md §3):
 * does a canonical composition re-apply its first stage at the end? True when it has more than one
 * stage and its first is a compressor marked reapply_at_end (Wanda, SparseGPT, GPTQ; never AWQ). */
bool interv_plan_reapplies(json_t *canonical);

/* interv_plan_build: validate `composition` (a JSON stage array; re-canonicalised: never trusted)
 * and lay out the stages that run, in order: the composition's stages, then the re-applications
 * the recompress policy of flags asks for (same params and seed as the stage they repeat):
 *   paper (default)  the first stage again when interv_plan_reapplies;
 *   never (or INTERV_EXACT)  none;
 *   always           every compressor stage (AWQ too) that another stage follows, in order;
 *   mask             none; pruning steps followed by another get mask_capture.
 * Everything that can be
 * known before touching a model is checked here, so a job fails before any work:
 *   invalid spec                        -> "<where>[i]...: ..." (spec.c's messages)
 *   a test stage without ALLOW_TEST     -> "\"test_scale\" (stage 1) is a test stage: ..."
 *   selftest (the fixture)              -> "\"selftest\" (stage 1) is the orchestration fixture ..."
 *   not built                           -> "intervention \"memit\" (stage 1) is not built yet"
 *   mask with a quantizer then a stage  -> "recompress policy \"mask\": \"gptq\" (stage 1) is a quantizer ..."
 * All CIS_EINVAL (not retryable). `where` names the input in messages (e.g. "JOB.composition",
 * "--stage"). The baseline [] gives n = 0. Free with interv_plan_clear. */
int interv_plan_build(json_t *composition, const char *where, unsigned flags, interv_plan *out, cis_err *err);
/* interv_plan_layout: the layout step of interv_plan_build alone, on an array that is already
 * canonical (spec_normalize), with no checks: the steps it would run, built or not (tests, and
 * tools that show a plan). Free with interv_plan_clear. */
void interv_plan_layout(json_t *canonical, unsigned flags, interv_plan *out);
void interv_plan_clear(interv_plan *p);

/* ---- running a plan ------------------------------------------------------------------------------ */

/* What every stage of one composition shares. */
typedef struct interv_env {
    llama_model *model;          /* modified in place */
    const tokenizer *tok;
    const char *data_dir;        /* NULL = none */
    const char *cache_dir;       /* NULL = none */
    const char *record_dir;      /* where a compression stage's record file goes (cmp_record.h:
                                    DIR/<sha256>.cisrec, referenced from the stage record as
                                    "cmp_record"); NULL = kept in memory only, no file */
    int edit_set;                /* >= 1; also the seed of every stage */
    int threads;                 /* > 0: the backend's thread count for the stages */
    llama_model *base;           /* the unmodified base model (read-only weights), or NULL (see interv_ctx) */
    void (*progress_fn)(void *arg, double fraction);   /* whole plan 0..1; NULL = none */
    bool (*stop_fn)(void *arg);                         /* NULL = never stop */
    void *cb_arg;
    /* called after every step but the last, outside the step's wall time (the runner's cheap
     * per-stage evaluation, worker/runner.c); s: the step that just ran, records: the stage records
     * so far. 0, or -1 with err (the plan fails with it). NULL = none. */
    int (*after_step_fn)(void *arg, const interv_step *s, json_t *records, cis_err *err);
    /* starting from a snapshot (worker/snapshot.h): the first `first_step` steps are already
     * applied to `model`; `records_in` (borrowed) holds their stage records, copied to the front of
     * *records. 0 / NULL = run every step. */
    int first_step;
    json_t *records_in;
    /* snap_step_fn: called after each step that completed (before after_step_fn), with the number
     * of steps applied so far, the model and the records so far (borrowed); NULL = none */
    void (*snap_step_fn)(void *arg, int done, llama_model *model, json_t *records);
    void *snap_arg;
    void *after_arg;
} interv_env;

/* interv_effective_params: the effective params of step s on a model of config cfg: a deep copy
 * of the canonical params, then the method's preset. New reference, or NULL with err. */
json_t *interv_effective_params(const interv_step *s, const llama_config *cfg, cis_err *err);

/* interv_run_plan: run every step of plan on env->model in order. For each: effective params,
 * a context, apply, its wall time. *records (new reference) gets a JSON array with one stage
 * record per step that ran (record.h interv_stage_json); on failure it holds the steps that
 * completed (so a caller may log them) and -1 is returned with err prefixed "<method> (stage k): "
 * (code as the method set it; CIS_ECANCEL when stopped). records may be NULL. On failure the model
 * is left part-modified: the caller resets it. */
int interv_run_plan(const interv_env *env, const interv_plan *plan, json_t **records, cis_err *err);

#endif
