/* job.h - one job as the worker's job thread runs it: the JOB message it came from, the flags
 * the network thread sets (stop: cancel or preempt), the progress it reports, and the outcome
 * (metric rows, or an error with a retryable flag). The network thread owns the struct; the job
 * thread writes only the outcome fields and progress, and reads stop. */
#ifndef CISWEEP_WORKER_JOB_H
#define CISWEEP_WORKER_JOB_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum job_stop { JOB_STOP_NONE = 0, JOB_STOP_CANCEL = 1, JOB_STOP_PREEMPT = 2 };
enum job_status { JOB_OK = 0, JOB_FAILED = 1, JOB_STOPPED = 2 };

typedef struct job_ctx {
    int64_t job;              /* job id */
    int attempt;              /* attempt number */
    json_t *spec;             /* the JOB body (owned): model, model_path, composition, edit_set, ... */
    bool selftest_enabled;    /* the worker was started with --selftest */
    const char *data_dir;     /* the worker's --data DIR (evaluation sets, corpora); NULL = none */
    const char *cache_dir;    /* the worker's --cache DIR (interventions keep reusable files there) */
    int threads;              /* the worker's --threads (0 = all cores) */
    struct model_cache *cache;/* the worker's model cache on its --device (owned by the daemon) */
    struct snapshot_store *snaps; /* the worker's prefix snapshots (worker/snapshot.h; owned by the
                                     daemon); NULL = none: every job starts from the base weights */
    int eval_limit;           /* the worker's --eval-limit (0 = full evaluation sets; smoke runs) */
    int stage_evals;          /* the worker's --stage-evals N: the cheap evaluation after each stage
                                 but the last (0 = off; runner.c) */
    bool skip_missing_data;   /* the worker's --skip-missing-data: an absent dataset is skipped, not
                                 a failed job */
    const char *eval_profile; /* the worker's --eval-profile (NULL = default; docs/eval.md) */
    const char *mc_prompt;    /* the worker's --mc-prompt (NULL = the profile's) */
    bool eval_open;           /* the worker's --eval-open: open_* rows in the final evaluation */
    bool eval_cloze;          /* the worker's --eval-cloze: cloze_* rows (the qa context) in the final evaluation */
    atomic_int stop;          /* enum job_stop, set by the network thread */
    atomic_int progress_pm;   /* progress in permille (0..1000), set by the job thread */
    /* outcome (written by the job thread before it signals completion) */
    int status;               /* enum job_status */
    json_t *rows;             /* JOB_OK: {metric: value} (owned) */
    json_t *stages;           /* JOB_OK: one stage record per stage that ran (owned; NULL = none):
                                 method, effective params, seed, record, wall time (RESULT.stages) */
    json_t *artifacts;        /* JOB_OK: files the job published in the artifact cache (owned; NULL =
                                 none): [{key, kind, path, sha256, bytes}] (RESULT.artifacts;
                                 worker/prereq.c) */
    char error[1024];         /* JOB_FAILED: one line */
    bool retryable;           /* JOB_FAILED: worth another attempt */
    int64_t run_ms;           /* wall time of the job */
} job_ctx;

/* job_should_stop: the check point every long-running job calls between steps. */
static inline bool job_should_stop(job_ctx *j) { return atomic_load(&j->stop) != JOB_STOP_NONE; }
static inline void job_set_progress(job_ctx *j, double p) {
    atomic_store(&j->progress_pm, (int)(p < 0 ? 0 : p > 1 ? 1000 : p * 1000));
}

/* runner_execute: run the composition of j->spec (called on the job thread): its stage plan
 * through the intervention registry (worker/interventions), then the evaluation. Fills the
 * outcome (rows, stages; or an error and whether it is retryable; or JOB_STOPPED). */
void runner_execute(job_ctx *j);

/* runner_stage_share: the part of a job's progress that its stages take (the evaluation the rest) */
#define RUNNER_STAGE_SHARE 0.5

/* selftest_execute: the orchestration test fixture (enabled by --selftest): stage params say what
 * to do: action ok|fail|fail_then_ok|crash|hang|oom, sleep_ms, rows, oom_mb, fail_attempts. */
void selftest_execute(job_ctx *j, json_t *params);

#endif
