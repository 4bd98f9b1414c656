/* job_store.h - the SQLite job store: the one source of truth of a sweep.
 *
 * Only the coordinator process writes (one read-write connection, used from one thread); every
 * other command (status, export, the sqlite3 shell) reads through WAL snapshots. The schema is
 * schema/schema.sql (compiled in), versioned by PRAGMA user_version; an older file is migrated on
 * open, a newer one refused. State transitions are short transactions that the caller groups:
 * the coordinator loop does BEGIN IMMEDIATE, applies every message of one batch, COMMITs, and only
 * then sends replies (commit, then ACK/JOB) — so a reply never promises what is not on disk.
 *
 * Job states (jobs.state):
 *   pending   waiting to be leased (its dependencies done, not cancelled)
 *   leased    given to a worker for attempt `attempt`; lease_until extended by heartbeats
 *   done      a result was recorded (the first result recorded is the current one)
 *   failed    attempt budget spent by failures/lost attempts (retry --failed brings it back)
 *   dead      quarantined: it lost its worker (crash, kill, lease expiry) quarantine_after times
 *   cancelled by the user
 * Attempts (attempts.outcome): running, done, failed, preempted, lost, cancelled, superseded.
 * A preempted attempt does not count against the budget (jobs.spent); failed and lost do.
 *
 * All functions taking `now` use wall-clock ms since the epoch (now_ms()). All return 0 on
 * success / -1 with err (CIS_EDB for SQLite errors, with the SQL error text) unless noted. */
#ifndef CISWEEP_JOB_STORE_H
#define CISWEEP_JOB_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>
#include "common/util.h"
#include "coordinator/grid.h"

#define JOB_STORE_SCHEMA_VERSION 4

typedef struct job_store job_store;

enum job_store_flags {
    JS_READONLY = 1,  /* open read-only (status, export); never migrates, never writes */
    JS_CREATE = 2,    /* create the file if missing */
    JS_NOSYNC = 4,    /* synchronous=NORMAL instead of FULL (tests may use it; default FULL) */
};

/* job_store_open: open/create `path`; sets journal_mode=WAL, synchronous=FULL, busy_timeout=5000,
 * foreign_keys=ON; creates or migrates the schema (user_version). A file with a newer
 * user_version -> -1 with CIS_EVERSION and a message naming the file, its version and ours.
 * Then the composability views of schema/views.sql: re-created in the file by a writable open when
 * they are not this build's, TEMP views of the connection for a read-only one (job_store_views.c,
 * docs/composability.md); a failure there -> -1 (CIS_EDB) naming the file and views.sql. */
int job_store_open(const char *path, unsigned flags, job_store **out, cis_err *err);
/* job_store_close: checkpoint(TRUNCATE) when writable, close, NULL the pointer. Idempotent. */
void job_store_close(job_store **js);
sqlite3 *job_store_db(job_store *js);
int job_store_user_version(job_store *js);

/* js_checkpoint: copy the WAL back into the database file (PASSIVE: what readers allow, never
 * waits; truncate: TRUNCATE, waits for readers up to busy_timeout, then empties the -wal file).
 * For an idle coordinator; not inside a transaction. */
int js_checkpoint(job_store *js, bool truncate, cis_err *err);

/* transactions: begin is BEGIN IMMEDIATE */
int js_begin(job_store *js, cis_err *err);
int js_commit(job_store *js, cis_err *err);
void js_rollback(job_store *js);

/* js_event: append an events row (kind e.g. "leased", "done", "failed", "lost", "preempted",
 * "quarantined", "requeued", "cancelled", "worker_joined", "worker_lost", "launch", "retry",
 * "bad_message", "coordinator_start"); job_id 0 / worker NULL when not applicable. */
int js_event(job_store *js, int64_t now, const char *kind, int64_t job_id, const char *worker_id,
             const char *detail, cis_err *err);

/* ---- launch ---------------------------------------------------------------------------------- */
typedef struct js_launch_stats {
    int64_t sweep_id;
    int comps_added, comps_existing;
    int jobs_added, jobs_existing;
    /* of jobs_added, those equivalent to a job of another sweep of the file (same model path and
     * config, composition key, seed; docs/grids.md "Two grids in one database"): */
    int jobs_shared;             /* all of them */
    int jobs_reused;             /* ... whose equivalent was done: result copied, the job done */
    int jobs_shared_inflight;    /* ... whose equivalent is pending or leased (would run twice) */
    int jobs_shared_unfinished;  /* ... whose equivalent failed, died or was cancelled (runs here) */
    int jobs_shared_stale;       /* ... whose equivalent is done under another results epoch (runs here) */
    char shared_sweep[128];      /* the first other sweep seen sharing a job ("" if none) */
    char inflight_sweep[128];    /* the first other sweep seen with a shared job still to run */
    /* prerequisite jobs (job_store_prereq.c: MEMIT's statistics, one per model and setting), not
     * counted in jobs_added/jobs_existing: */
    int prereqs_added;           /* added by this launch */
    int prereqs_existing;        /* the sweep had them already */
} js_launch_stats;

enum js_launch_flags {
    JS_LAUNCH_NO_REUSE = 1, /* count equivalent jobs of other sweeps but copy no result (they run again) */
    JS_LAUNCH_NO_PREREQS = 2, /* add no prerequisite jobs (js_launch_prereqs): for a store whose MEMIT jobs
                                 get their results otherwise (the synthetic stores of the view tests) */
};

/* js_launch: in ONE transaction of its own, create (or find, by name) the sweep `sweep_name`
 * (default: the grid's name), its models (models_json: NULL or a JSON object {"slot": "path" |
 * {"path":..., ...}} stored in models.path/config; slots the grid names but the map lacks get
 * path = slot name), compositions (UNIQUE(sweep, model, key)) and jobs (UNIQUE(composition,
 * edit_set)), with max_attempts from the grid and priority from each composition. Running it
 * twice adds nothing (stats say what existed). Records a "launch" event. */
int js_launch(job_store *js, const grid *g, const char *sweep_name, const char *models_json,
              int64_t now, js_launch_stats *st, cis_err *err);
/* js_launch_ex: js_launch with flags (js_launch_flags). js_launch = js_launch_ex(..., 0, ...): each
 * added job whose equivalent in another sweep is done is reused (its result copied, the job done
 * at once; job_store_reuse.c); the counts are in *st, and refusing a launch that would run shared
 * work twice (jobs_shared_inflight > 0) is the caller's decision (`cisweep launch` refuses). */
int js_launch_ex(job_store *js, const grid *g, const char *sweep_name, const char *models_json,
                 int64_t now, unsigned flags, js_launch_stats *st, cis_err *err);

/* js_launch_prereqs: (called by js_launch_ex inside its transaction) for every model of sweep
 * sweep_id and every distinct statistics setting (layers, layers_depth, mom2_n_samples) of a MEMIT
 * stage of its compositions, one prerequisite job (composition [{"method":"memit_stats",
 * "params":{...}}], pattern "prereq", edit set 0, priority above its dependents', max_attempts)
 * and a dependency from every job of those compositions to it; idempotent (a relaunch adds
 * nothing). Counts go to s->prereqs_added / prereqs_existing. 0 or -1 with err. */
int js_launch_prereqs(job_store *js, int64_t sweep_id, int max_attempts, int64_t now, js_launch_stats *s,
                      cis_err *err);

/* One file a job published in the shared artifact cache (RESULT.artifacts). */
typedef struct js_artifact {
    const char *key;          /* the cache key (16-128 lowercase hex): UNIQUE in `artifacts` */
    const char *kind;         /* "memit_mom2" */
    const char *path;         /* relative to the artifact root (objects/ab/abcd...) */
    const char *sha256;       /* of the bytes; NULL = unknown */
    int64_t bytes;            /* size in bytes; < 0 = unknown */
} js_artifact;
/* js_record_artifacts: an `artifacts` row per entry (job_id = the job that made it, created_at =
 * now); an existing key is kept as it is (the first job that registered it). 0 or -1 with err. */
int js_record_artifacts(job_store *js, int64_t job_id, const js_artifact *a, size_t n, int64_t now, cis_err *err);

/* js_add_dependency: job `job_id` may not be leased before `depends_on` is done (a DAG; a cycle
 * -> -1 CIS_EINVAL). Used for shared prerequisites (e.g. MEMIT covariance statistics per model). */
int js_add_dependency(job_store *js, int64_t job_id, int64_t depends_on, cis_err *err);

/* ---- workers --------------------------------------------------------------------------------- */
typedef struct js_worker_info {
    const char *id;           /* routing id, e.g. "host/cpu0/3f2a9c" */
    const char *host, *device, *backend, *version;
    int64_t memory_mb;        /* the device's memory (host RAM for cpu), MB */
    int64_t pid;
    int64_t free_mb;          /* the device's free memory at HELLO, MB; -1 = not reported (0 in old tests) */
} js_worker_info;
/* js_worker_seen: upsert workers row (first_seen kept, last_seen = now, state 'idle', current_job
 * NULL); writes the "worker_joined" event when the id is new or was 'gone' (so the caller need not). */
int js_worker_seen(job_store *js, const js_worker_info *w, int64_t now, cis_err *err);
/* js_worker_touch: last_seen = now, current_job (0 = none), state. */
int js_worker_touch(job_store *js, const char *worker_id, int64_t now, int64_t current_job,
                    const char *state, cis_err *err);
/* js_worker_gone: state 'gone' (event "worker_lost" with reason as detail); its jobs are NOT
 * touched here (the caller calls js_record_lost for js_leases_of_worker). */
int js_worker_gone(job_store *js, const char *worker_id, int64_t now, const char *reason, cis_err *err);

/* ---- dispatch -------------------------------------------------------------------------------- */
typedef struct js_job {
    int64_t id;
    int attempt;              /* attempt number of this lease (1-based) */
    int64_t sweep_id;
    char model[128];          /* model slot name */
    char *model_path;         /* malloc'd */
    char *composition;        /* malloc'd canonical JSON */
    char key[65];
    int edit_set;             /* 0 = none */
    char recompress[8];       /* the composition's recompress policy ("paper" when it has no row) */
    int64_t lease_until;
} js_job;
void js_job_clear(js_job *j); /* frees the malloc'd fields */

/* js_claim: lease the best runnable job to `worker_id`: state pending, not blocked by an
 * unfinished dependency; order: priority DESC, then same model as `prefer_model` first (affinity;
 * NULL = none), then id ASC. Sets state leased, attempt+1, worker_id, lease_until = now+lease_ms,
 * started_at; inserts attempts(job, attempt, worker, started_at, outcome 'running'); event
 * "leased". Returns 1 and fills *out when a job was leased, 0 when none is runnable, -1 on error. */
int js_claim(job_store *js, const char *worker_id, const char *prefer_model, int64_t now,
             int64_t lease_ms, js_job *out, cis_err *err);

/* A stage prefix the claiming worker holds a snapshot of (worker/snapshot.h, common/prefix_key.h):
 * the pending jobs that start with it reuse the work. */
typedef struct js_prefix {
    const char *model;        /* model slot name */
    const char *model_path;   /* its path as the JOB names it */
    const char *text;         /* prefix_text(): "[s1,...,sk" of the canonical stages */
    int edit_set;             /* the seed its stages used (>= 1), or -1 when they use none */
    int tag;                  /* the caller's (prefix_sched: its table index) */
    bool none;                /* out: js_claim_prefer looked and found no runnable job at the top
                                 priority that starts with it (set only for the prefixes it tried) */
} js_prefix;

/* js_claim_prefer: js_claim, but among the runnable jobs at the top priority, one that starts with
 * prefixes[0], else prefixes[1], ... comes first (before model affinity); never a lower priority
 * (no starvation: priorities are kept as they are). n_prefixes = 0 is js_claim. Each prefix tried
 * costs one scan of the pending jobs of its model at the top priority, in id order, up to the first
 * match; a prefix found to have none gets .none = true (the caller stops asking for it). */
int js_claim_prefer(job_store *js, const char *worker_id, const char *prefer_model, js_prefix *prefixes,
                    int n_prefixes, int64_t now, int64_t lease_ms, js_job *out, cis_err *err);

/* ---- scheduling by device memory (issue 15; job_store_memory.c, coordinator/mem_need.h) ------- */

/* js_claim_fit: js_claim_prefer among the jobs that fit offer_mb, the memory (MiB) the worker
 * offers (HELLO.free_mb): a job whose job_memory.need_mb exceeds it is never leased to it; a job
 * without an estimate fits any worker; offer_mb < 0 = unconstrained (js_claim_prefer). Among the
 * jobs that fit, the order is js_claim_prefer's (priority, prefixes, model affinity, id). */
int js_claim_fit(job_store *js, const char *worker_id, const char *prefer_model, js_prefix *prefixes,
                 int n_prefixes, int64_t offer_mb, int64_t now, int64_t lease_ms, js_job *out, cis_err *err);

/* js_worker_offer: record the memory worker_id offers to jobs (worker_memory: free_mb MiB, source
 * "measured" or "option"); offer_mb < 0 removes the row (unconstrained). The workers row must exist
 * (js_worker_seen first). */
int js_worker_offer(job_store *js, const char *worker_id, int64_t offer_mb, const char *source, int64_t now,
                    cis_err *err);

/* A pending job that needs more memory than a given offer. */
typedef struct js_unfit {
    int64_t job_id;
    int64_t need_mb;          /* MiB */
    char model[128];          /* model slot name */
    char kind[16];            /* job_memory.kind */
} js_unfit;
/* js_unfit_jobs: the pending jobs whose need exceeds max_offer_mb (the largest offer of the workers
 * that may take them), largest need first then id, at most max into out (may be NULL when max is
 * 0); *count gets how many there are in all. 0 or -1 with err. */
int js_unfit_jobs(job_store *js, int64_t max_offer_mb, js_unfit *out, int max, int64_t *count, cis_err *err);
/* js_live_offer: over the workers not 'gone': *n_live gets their number, *n_unconstrained those
 * without a worker_memory row, *max_offer_mb the largest offer of the others (-1 when none). */
int js_live_offer(job_store *js, int *n_live, int *n_unconstrained, int64_t *max_offer_mb, cis_err *err);

/* js_heartbeat: if job is leased to worker for attempt, extend lease_until = now + lease_ms,
 * last_heartbeat = now, progress (0..1; <0 = unchanged). Returns 1 if the lease is current,
 * 0 if not (stale attempt, other worker, job no longer leased: the caller may CANCEL). */
int js_heartbeat(job_store *js, int64_t job_id, int attempt, const char *worker_id, int64_t now,
                 int64_t lease_ms, double progress, cis_err *err);

typedef struct js_metric {
    const char *name;   /* e.g. "mmlu", "wmdp_bio", "ppl_wikitext", "edit_success", "avg_bits" */
    double value;       /* NaN and inf are stored as NULL value + text 'nan'/'inf'/'-inf' */
} js_metric;

enum js_result_outcome {
    JS_RESULT_CURRENT = 1,    /* recorded; job now done with this attempt current */
    JS_RESULT_SUPERSEDED = 2, /* job already done by another attempt: rows stored, is_current=0 */
    JS_RESULT_DUPLICATE = 3,  /* this (job, attempt) was already recorded: nothing changed */
};
/* One stage of the plan an attempt ran (RESULT.stages; worker/interventions/record.h). */
typedef struct js_stage {
    int stage;                /* 1-based position in the plan (>= 1) */
    int of_stage;             /* 1-based position in the composition (>= 1) */
    const char *method;       /* "wanda" */
    const char *category;     /* "compress"; NULL = unknown */
    bool recompress;          /* the paper's re-application at the end */
    const char *params_json;  /* the effective params, canonical JSON text */
    int64_t seed;             /* < 0 = unknown (NULL) */
    const char *record_json;  /* what the method did (JSON object text); NULL = none */
    const char *phases_json;  /* {phase: seconds} JSON text; NULL = none */
    int64_t wall_ms;          /* < 0 = unknown (NULL) */
} js_stage;

/* js_record_result: store rows for (job, attempt) idempotently (UNIQUE(job,attempt,metric)), and
 * the stages the attempt ran (PRIMARY KEY (job, attempt, stage); stages may be NULL / 0).
 * Accepted whatever the job's state (a late result of a requeued attempt is valid work), except
 * for an attempt that was never leased (attempt > jobs.attempt or < 1, or unknown job) -> -1 with
 * CIS_ESTATE. If the job is not yet done: it becomes done, this attempt current (outcome 'done',
 * is_current=1), finished_at = now; if another attempt of it is still leased, *other_worker gets
 * that worker's id (caller sends CANCEL) and that attempt's outcome becomes 'superseded'.
 * If the job is done already: rows stored with is_current=0, attempt outcome 'superseded'.
 * `timing_ms` (>=0) goes into attempts.run_ms. *outcome gets the enum above. other_worker may be
 * NULL; it gets "" when there is no one to cancel; the attempt to name in that CANCEL is the job's
 * latest attempt, js_job_attempt(job_id) (NOT the reporting attempt). worker_id is the reporting worker: when
 * not NULL it must be the worker that attempt was leased to (attempts.worker_id), else -1 with CIS_EPERM
 * and nothing stored (a stranger cannot complete another worker's job); it becomes jobs.worker_id.
 * A stage with stage/of_stage < 1 or no method/params -> -1 CIS_EINVAL, nothing stored. */
int js_record_result(job_store *js, int64_t job_id, int attempt, const char *worker_id,
                     const js_metric *rows, size_t n_rows, const js_stage *stages, size_t n_stages,
                     int64_t timing_ms, int64_t now, int *outcome, char other_worker[256], cis_err *err);

/* js_job_attempt: the job's latest attempt number (jobs.attempt; 0 = never leased); -1 with
 * CIS_ESTATE for an unknown job, -1 CIS_EDB on error. */
int js_job_attempt(job_store *js, int64_t job_id, cis_err *err);

/* js_record_failure: the attempt failed (the job's code reported an error). Attempt outcome
 * 'failed' with error text and log tail; spent+1; if retryable and spent < max_attempts -> pending
 * (event "requeued"), else -> failed (event "failed"). Ignored (returns 0, *applied=false) when
 * the attempt is not the job's current leased attempt (or worker_id, when not NULL, is not its
 * holder). */
int js_record_failure(job_store *js, int64_t job_id, int attempt, const char *worker_id,
                      const char *error, const char *log_tail, bool retryable, int64_t now,
                      bool *applied, cis_err *err);

/* js_record_preempted: the worker stopped the attempt on a signal. Attempt outcome 'preempted';
 * job -> pending; spent unchanged (an attempt number is still used up, the budget is not).
 * Ignored like above when not the current leased attempt. */
int js_record_preempted(job_store *js, int64_t job_id, int attempt, const char *worker_id,
                        int64_t now, bool *applied, cis_err *err);

/* js_record_lost: the attempt's worker died or its lease expired (reason: "worker_lost",
 * "lease_expired", "worker_restarted"). Attempt outcome 'lost'; spent+1; lost_count+1; then
 * lost_count >= quarantine_after -> dead (event "quarantined"); else spent >= max_attempts ->
 * failed; else pending (event "requeued"). Ignored when not the current leased attempt. */
int js_record_lost(job_store *js, int64_t job_id, int attempt, const char *reason, int64_t now,
                   int quarantine_after, bool *applied, cis_err *err);

/* js_expired_leases: list leased jobs with lease_until < now (job id, attempt, worker) — the
 * caller then calls js_record_lost for each. Returns the count (>= 0) or -1. *out malloc'd. */
typedef struct js_lease { int64_t job_id; int attempt; char worker_id[256]; } js_lease;
int js_expired_leases(job_store *js, int64_t now, js_lease **out, cis_err *err);
/* js_leases_of_worker: the jobs currently leased to worker_id (same shape). */
int js_leases_of_worker(job_store *js, const char *worker_id, js_lease **out, cis_err *err);

/* js_resume_prepare: called once when the coordinator starts on an existing DB (resume): every
 * leased job renewed (claimed or heartbeated) since the previous coordinator start gets
 * lease_until = max(lease_until, now + grace_ms) so that workers still running them can
 * re-register and report; the others keep their deadline (the grace is given once per lease, so
 * restarts faster than the grace cannot keep a dead worker's lease alive). Event
 * "coordinator_start". Returns the number of leases extended. */
int js_resume_prepare(job_store *js, int64_t now, int64_t grace_ms, cis_err *err);

/* ---- user verbs ------------------------------------------------------------------------------ */
/* js_retry: jobs matching (failed_only: state IN ('failed','dead')) or (where_sql: a WHERE clause
 * over the v_jobs view's columns, validated by preparing it read-only first) go back to pending
 * with spent=0, lost_count=0 (attempt numbering continues). Cancelled/done jobs are included only
 * if where_sql selects them explicitly. Returns the number of jobs reset, -1 on error (bad SQL ->
 * CIS_EINVAL with SQLite's message). Own transaction.
 * Precisely: failed_only alone -> failed/dead jobs; where_sql alone -> matching failed/dead jobs, or,
 * when where_sql names the `state` column, every matching job whatever its state; both -> matching
 * failed/dead jobs. Leased jobs are never reset (cancel them first). A done job that is reset loses
 * its current flag (its rows stay, is_current = 0) until a new result arrives. where_sql may not
 * contain ';' and must be a single expression (it is run as SELECT id FROM v_jobs WHERE (<sql>)).
 * Event "retry" per job. */
int js_retry(job_store *js, bool failed_only, const char *where_sql, int64_t now, cis_err *err);
/* the results epoch guard (job_store_epoch.c, docs/orchestration.md "Results epoch"): a done
 * model job of `sweep` (NULL = every sweep) is stale for `epoch` when its current attempt has no
 * metric row results_epoch = epoch (fixtures and prerequisite jobs are never stale).
 * js_stale_jobs: their count in out->n and, in out->epochs, "E: count" per epoch found ("none"
 * for no row), e.g. "none: 12, 6: 3"; 0 / -1.
 * js_rerun_stale: puts them back to pending (js_retry: event "retry", their rows stay with
 * is_current = 0); returns the count, or -1. Own transaction unless inside the caller's. */
typedef struct js_stale {
    int64_t n;            /* stale done jobs */
    char epochs[256];     /* "none: N, E: N, ..." (truncated at a whole entry) */
} js_stale;
int js_stale_jobs(job_store *js, const char *sweep, int epoch, js_stale *out, cis_err *err);
int js_rerun_stale(job_store *js, const char *sweep, int epoch, int64_t now, cis_err *err);
/* js_stale_unfinished: the stale done jobs (for `epoch`) of the sweeps that still have jobs to run
 * (pending or leased), i.e. the sweeps a coordinator of this epoch would complete with results of
 * another: their count in out->n and, in out->epochs, '"SWEEP": count' per such sweep; 0 / -1. */
int js_stale_unfinished(job_store *js, int epoch, js_stale *out, cis_err *err);
/* js_cancel: pending/leased jobs matching where_sql (over v_jobs, validated like js_retry's; NULL =
 * all jobs) -> cancelled (event "cancelled"); leased ones get attempt outcome 'cancelled' and are
 * returned in *leased (malloc'd, *n_leased entries; worker ids to send CANCEL to; leased may be
 * NULL). Own transaction. Returns the number cancelled. */
int js_cancel(job_store *js, const char *where_sql, int64_t now, js_lease **leased, int *n_leased,
              cis_err *err);

/* ---- reading --------------------------------------------------------------------------------- */
typedef struct js_counts {
    int64_t pending, leased, done, failed, dead, cancelled, total;
    int64_t blocked;          /* pending but waiting on an unfinished dependency */
} js_counts;
int js_count_states(job_store *js, js_counts *c, cis_err *err);
/* js_export_csv: write v_runs (one wide row per done job, current attempt) as CSV to f. */
int js_export_csv(job_store *js, FILE *f, cis_err *err);

/* ---- schema versions (job_store_migrate.c) ---------------------------------------------------- */
/* A migration step takes a file of schema version from_version to from_version + 1. */
typedef struct js_migration { int from_version; const char *sql; } js_migration;
extern const js_migration JS_MIGRATIONS[];  /* this build's steps (JS_N_MIGRATIONS of them) */
extern const size_t JS_N_MIGRATIONS;
/* js_migrate: bring db (file `path`, for messages) from its user_version up to `to` with steps[],
 * all in one transaction (foreign keys checked before the commit). A missing step, a failing step
 * or a file newer than `to` -> -1 (CIS_EVERSION / CIS_EDB) and the file unchanged. job_store_open
 * calls it with JS_MIGRATIONS; tests call it with their own steps. */
int js_migrate(sqlite3 *db, const char *path, int to, const js_migration *steps, size_t n_steps,
               cis_err *err);

/* ---- the composability views (job_store_views.c) ----------------------------------------------- */
/* js_views_sql: schema/views.sql as compiled in; js_views_sha256: its sha256 as 64 hex characters +
 * NUL, the value the marker view v_views_version holds in a file whose views are this build's. */
const char *js_views_sql(void);
void js_views_sha256(char hex[65]);

#endif
