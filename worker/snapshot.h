/* snapshot.h - shared work done once (issue 12 item 2): the worker's store of model snapshots taken
 * after a composition's stage prefix, and the per-job glue that starts a job from the longest
 * snapshot it can use instead of from the base weights.
 *
 * A snapshot is a full copy of the working model's parameters (same backend, so on the device)
 * right after the first k stages of a composition, keyed by common/prefix_key.h's prefix key (model,
 * the k canonical stages, the seed each of them uses, the recompress policy for k >= 2). With it are
 * kept the k stage records of the job that made it (effective params, record, phases, wall time),
 * which a job restored from it reports again, each with record.restored_from = {job, attempt,
 * edit_set, wall_ms, key} and wall_ms = the time of the restore copy: the stages table still has
 * one row per stage of the plan, and says which stages were restored and from which job.
 *
 * Which prefixes are kept: every proper prefix of a composition (k < number of stages), and the
 * whole composition when it has a single stage (a compress-only or edit-only job is the prefix of
 * the compress->X and edit->X jobs of the same seed). The store is bounded by a byte budget (the
 * parameters' bytes) and evicts the least recently used snapshot; budget 0 disables it. A model
 * loaded anew from disk drops the snapshots of that path (its file may have changed).
 * Thread safety: every call locks the store (the job thread takes and restores snapshots, the
 * network thread lists the keys for RESULT). */
#ifndef CISWEEP_WORKER_SNAPSHOT_H
#define CISWEEP_WORKER_SNAPSHOT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/prefix_key.h"
#include "common/util.h"
#include "worker/interventions/intervention.h"
#include "worker/model_cache.h"

typedef struct snapshot_store snapshot_store;

/* snapshot_store_new: an empty store holding at most budget_bytes of parameters (0 = disabled:
 * nothing is kept, every job starts from the base weights). */
snapshot_store *snapshot_store_new(uint64_t budget_bytes);
/* snapshot_store_free: frees every snapshot (their models) and the store; NULL-safe; *s = NULL. */
void snapshot_store_free(snapshot_store **s);
/* snapshot_store_keys: the keys held, most recently used first, at most PREFIX_MAX_ADVERT (a new
 * JSON array of strings; what the worker advertises in RESULT.prefixes). */
json_t *snapshot_store_keys(snapshot_store *s);

typedef struct snapshot_stats {
    int64_t n_held;              /* snapshots held now */
    uint64_t bytes_held;         /* their parameter bytes */
    int64_t hits, misses;        /* jobs that started from a snapshot / from the base */
    int64_t stages_restored;     /* stage applications skipped */
    int64_t saved_ms;            /* the skipped stages' original wall time */
    int64_t taken, evicted;      /* snapshots taken / evicted for room */
} snapshot_stats;
void snapshot_store_stats(snapshot_store *s, snapshot_stats *out);

/* ---- one job ----------------------------------------------------------------------------- */

#define SNAP_MAX_K PREFIX_MAX_K

typedef struct snap_job {
    snapshot_store *store;       /* NULL or disabled: every call is a no-op */
    const char *model_path;      /* borrowed: the JOB's model_path */
    int64_t job;
    int attempt;
    int edit_set;                /* the JOB's edit_set (0 = none) */
    int n_comp;                  /* stages of the composition (the plan may have one more) */
    int n_keys;                  /* prefixes that may be kept or restored */
    char keys[SNAP_MAX_K][PREFIX_KEY_HEX + 1];  /* keys[k-1] = key of the first k stages */
    int restored;                /* steps restored from a snapshot (0 = started from the base) */
    json_t *records;             /* the restored steps' stage records (owned; NULL when none) */
} snap_job;

/* snap_job_begin: the keys of this job's prefixes (plan->canonical; policy = the job's recompress
 * policy or NULL), then, when a snapshot of one of them is held, copy the longest one's parameters
 * into slot->work and fill sj->restored / sj->records. slot_loaded: the model was just loaded from
 * disk (its old snapshots are dropped first). Returns the number of plan steps restored (0 = none;
 * the work model is then untouched). A failing restore copy is logged and ignored (the job starts
 * from the base: the caller reset the work model and the copy only fails on a config mismatch). */
int snap_job_begin(snap_job *sj, snapshot_store *store, model_slot *slot, bool slot_loaded, const interv_plan *plan,
                   const char *model_path, int64_t job, int attempt, int edit_set, const char *policy);
/* snap_job_after_step: interv_env.after_step for this job: after `done` steps applied to `work`,
 * keep a snapshot when the first `done` steps form a prefix worth keeping and it is not held yet.
 * records: the stage records so far (the first `done` are copied). Never fails the job (a snapshot
 * that cannot be taken, e.g. for lack of device memory, is logged and skipped). */
void snap_job_after_step(void *arg, int done, llama_model *work, json_t *records);
/* snap_job_end: frees what the job holds (not the store). */
void snap_job_end(snap_job *sj);

#endif
