/* job_store_int.h - internals shared by the job store's files (job_store.c: open, statements,
 * transactions, launch, workers; job_store_dispatch.c: claim, heartbeat, record_*;
 * job_store_verbs.c: retry, cancel, counts, export; job_store_migrate.c: schema upgrades;
 * job_store_views.c: the analysis views of schema/views.sql).
 * Not for use outside coordinator/job_store*.c. */
#ifndef CISWEEP_JOB_STORE_INT_H
#define CISWEEP_JOB_STORE_INT_H

#include <jansson.h>

#include "coordinator/job_store.h"

/* cached statements, prepared on first use (a read-only connection never prepares the writers) */
enum js_stmt_id {
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
    S_EVENT,
    /* launch */
    S_SWEEP_FIND, S_SWEEP_INSERT, S_MODEL_INSERT, S_MODEL_FIND, S_COMP_INSERT, S_COMP_FIND, S_COMP_POLICY,
    S_JOB_INSERT,
    /* dependencies */
    S_JOB_EXISTS, S_DEP_REACHES, S_DEP_INSERT,
    /* workers */
    S_WORKER_STATE, S_WORKER_UPSERT, S_WORKER_TOUCH, S_WORKER_GONE,
    /* dispatch */
    S_CLAIM_BEST, S_MODEL_IDS, S_CLAIM_AFFINITY, S_CLAIM_PREFIX, S_CLAIM_UPDATE, S_JOB_DETAILS, S_ATTEMPT_INSERT,
    S_HEARTBEAT,
    S_RESULT_LOOKUP, S_RESULT_INSERT, S_STAGE_INSERT, S_ATTEMPT_RESULT, S_JOB_DONE, S_ATTEMPT_END,
    S_JOB_FAIL, S_JOB_PREEMPT, S_JOB_LOST,
    S_EXPIRED, S_LEASES_OF, S_RESUME,
    /* verbs and reading */
    S_JOB_STATE, S_RETRY_JOB, S_RESULTS_UNCURRENT, S_CANCEL_JOB, S_COUNTS, S_BLOCKED,
    S_COUNT_
};

struct job_store {
    sqlite3 *db;
    char *path;
    unsigned flags;
    int user_version;
    sqlite3_stmt *st[S_COUNT_];
};

/* js_st: the cached statement `id`, prepared on first use, reset and with bindings cleared.
 * NULL (err filled, CIS_EDB) if it cannot be prepared. */
sqlite3_stmt *js_st(job_store *js, int id, cis_err *err);
/* js_dberr: fill err with CIS_EDB, "<path>: <what>: <sqlite message>"; returns -1. */
int js_dberr(job_store *js, cis_err *err, const char *what);
/* js_run: step a statement that returns no rows to completion and reset it; 0 / -1. */
int js_run(job_store *js, sqlite3_stmt *st, const char *what, cis_err *err);
/* js_bind_text_or_null / js_bind_id_or_null: NULL (or 0 for ids) binds SQL NULL */
void js_bind_text_or_null(sqlite3_stmt *st, int i, const char *s);
void js_bind_id_or_null(sqlite3_stmt *st, int i, int64_t id);

/* js_tx_enter/js_tx_leave: make one operation atomic. Outside a transaction: BEGIN IMMEDIATE ...
 * COMMIT (or ROLLBACK on failure); inside the caller's transaction: SAVEPOINT ... RELEASE (or
 * ROLLBACK TO on failure), so a failed operation leaves nothing half-done in the caller's batch.
 * js_tx_leave returns rc (0/-1), or -1 if the commit itself failed. */
int js_tx_enter(job_store *js, bool *own, cis_err *err);
int js_tx_leave(job_store *js, bool own, int rc, cis_err *err);

/* js_event_at: js_event with the attempt number (0 = not applicable). */
int js_event_at(job_store *js, int64_t now, const char *kind, int64_t job_id, int attempt,
                const char *worker_id, const char *detail, cis_err *err);

/* cross-sweep reuse at launch (job_store_reuse.c): js_reuse_open prepares its statements (closed by
 * js_reuse_close); js_reuse_job looks for a job of another sweep equivalent to the new job `job_id`
 * (same models.path and config, composition key, seed = max(edit_set, 1)) and counts it in *s
 * (jobs_shared; jobs_shared_inflight when pending/leased, jobs_shared_unfinished when failed, dead
 * or cancelled); when it is done and `copy`, its current attempt (attempt, results, stages) is
 * copied into the new job, which becomes done (jobs_reused), with a "reused" event. 0 or -1. */
typedef struct js_reuse js_reuse;
int js_reuse_open(job_store *js, js_reuse **out, cis_err *err);
int js_reuse_job(js_reuse *r, int64_t job_id, bool copy, int64_t now, js_launch_stats *s, cis_err *err);
void js_reuse_close(js_reuse **r);

/* schema creation and upgrade (job_store_migrate.c); js_schema_sql: schema/schema.sql, compiled in */
const char *js_schema_sql(void);
int js_schema_prepare(job_store *js, cis_err *err);

/* the analysis views (job_store_views.c; js_views_sql, js_views_sha256 in job_store.h).
 * js_views_prepare: after js_schema_prepare: a writable store (re)creates the views in the file
 * when its marker is not ours (one transaction); a read-only store whose file lacks them creates
 * them as TEMP views of its connection. 0, or -1 with err naming the file (CIS_EDB). */
int js_views_prepare(job_store *js, cis_err *err);

/* device memory needs at launch (job_store_memory.c): js_memo_open keeps, for one launch, each
 * model slot's parameter count (read once from its config.json; coordinator/mem_need.h) and the
 * models map's need_mb overrides; js_memo_job stores the estimate of a new job (job_memory) or
 * nothing when the model's config cannot be read (then logged once per slot: any worker may take
 * its jobs). A models-map slot whose need_mb is not a positive integer is refused by js_memo_open
 * (-1 with err naming the slot). */
typedef struct js_memo js_memo;
int js_memo_open(json_t *models, js_memo **out, cis_err *err);
int js_memo_job(job_store *js, js_memo *mm, int64_t model_id, const char *model_name, const char *canonical,
                int64_t job_id, cis_err *err);
void js_memo_close(js_memo **mm);

#endif
