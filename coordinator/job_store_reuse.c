/* job_store_reuse.c - results shared across sweeps of one database (docs/grids.md, "Two grids in
 * one database"). When `cisweep launch` adds a job, an equivalent job of ANOTHER sweep of the same
 * file is looked for: same model (models.path and models.config), same composition (its canonical
 * key) and same seed (jobs.edit_set, with 0 read as 1: a job without an edit set runs with seed 1,
 * worker/runner.c). If that job is done, its current attempt is copied into the new job (the
 * attempt row, the metric rows, the stage rows), which is done at once and never leased: the work
 * is not done twice, and every view and export (v_runs, v_results, v_stages, export) shows the
 * result under both sweeps. The copy's attempt has log_tail "reused: ..." and an event "reused"
 * names the source job. An equivalent job that is pending or leased is counted (the caller, the
 * CLI, refuses the launch: a second run of the same work would start otherwise); one that failed,
 * died or was cancelled is counted and the new job runs; so is a done one whose result is of another
 * results epoch than this build's (no row results_epoch = CISWEEP_RESULTS_EPOCH: computed under
 * other presets or algorithms, docs/orchestration.md "Results epoch"). Not for use outside
 * coordinator/job_store*.c. */
#include "coordinator/job_store_int.h"
#include "common/version.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* the best equivalent of job ?1 in another sweep: a done one of results epoch ?2 first (fresh: its
 * current attempt has the row results_epoch = ?2; fixtures are always fresh), then one still to
 * run, then a done one of another epoch (stale: counted, not reused), then the rest; columns: id,
 * state, current_attempt, sweep name, worker_id, fresh. The few models rows are
 * scanned; compositions and jobs are found through their UNIQUE indexes (sweep, model, key) and
 * (composition, edit_set). CROSS JOIN fixes that order (SQLite's planner, without ANALYZE
 * statistics, otherwise scans every job: 1.4 s instead of 0.1 s for paper-417 beside paper) */
static const char FIND_SQL[] =
    "SELECT o.id, o.state, o.current_attempt, os.name, o.worker_id, "
    "(o.state = 'done' AND (oc.pattern = 'prereq' OR oc.canonical LIKE '%\"method\":\"selftest\"%' OR EXISTS "
    "(SELECT 1 FROM results r WHERE r.job_id = o.id AND r.attempt = o.current_attempt AND r.metric = 'results_epoch' "
    "AND r.value = ?2))) AS fresh "
    "FROM jobs n "
    "CROSS JOIN models nm ON nm.id = n.model_id "
    "CROSS JOIN compositions nc ON nc.id = n.composition_id "
    "CROSS JOIN models om ON om.path = nm.path AND om.config IS nm.config AND om.sweep_id <> n.sweep_id "
    "CROSS JOIN compositions oc ON oc.sweep_id = om.sweep_id AND oc.model_id = om.id AND oc.key = nc.key "
    "CROSS JOIN jobs o ON o.composition_id = oc.id "
    "CROSS JOIN sweeps os ON os.id = o.sweep_id "
    "WHERE n.id = ?1 AND max(o.edit_set, 1) = max(n.edit_set, 1) "
    "ORDER BY fresh DESC, o.state IN ('pending', 'leased') DESC, o.state = 'done' DESC, o.id LIMIT 1";

/* the copy of source job ?2's attempt ?3 into new job ?1 as its attempt 1 (?4 = now, ?5 = note) */
static const char *const COPY_SQL[] = {
    "INSERT INTO attempts(job_id, attempt, worker_id, started_at, ended_at, outcome, run_ms, log_tail, result_at) "
    "SELECT ?1, 1, worker_id, started_at, ended_at, 'done', run_ms, ?5, coalesce(result_at, ?4) "
    "FROM attempts WHERE job_id = ?2 AND attempt = ?3",
    "INSERT INTO results(job_id, attempt, metric, value, value_text, is_current, created_at) "
    "SELECT ?1, 1, metric, value, value_text, 1, created_at FROM results WHERE job_id = ?2 AND attempt = ?3",
    "INSERT INTO stages(job_id, attempt, stage, of_stage, method, category, recompress, params_json, seed, "
    "record_json, phases_json, wall_ms, created_at) "
    "SELECT ?1, 1, stage, of_stage, method, category, recompress, params_json, seed, record_json, phases_json, "
    "wall_ms, created_at FROM stages WHERE job_id = ?2 AND attempt = ?3",
    "UPDATE jobs SET state = 'done', attempt = 1, current_attempt = 1, "
    "worker_id = (SELECT worker_id FROM jobs WHERE id = ?2), "
    "started_at = (SELECT started_at FROM jobs WHERE id = ?2), finished_at = ?4, progress = 1, "
    "lease_until = NULL, last_error = NULL WHERE id = ?1 AND state = 'pending'",
};
#define N_COPY (sizeof COPY_SQL / sizeof COPY_SQL[0])

struct js_reuse {
    job_store *js;
    sqlite3_stmt *find;
    sqlite3_stmt *copy[N_COPY];
};

void js_reuse_close(js_reuse **r) {
    if (!r || !*r) return;
    sqlite3_finalize((*r)->find);
    for (size_t i = 0; i < N_COPY; i++) sqlite3_finalize((*r)->copy[i]);
    free(*r);
    *r = NULL;
}

int js_reuse_open(job_store *js, js_reuse **out, cis_err *err) {
    js_reuse *r = xcalloc(1, sizeof *r);
    r->js = js;
    *out = NULL;
    if (sqlite3_prepare_v2(js->db, FIND_SQL, -1, &r->find, NULL) != SQLITE_OK) goto bad;
    for (size_t i = 0; i < N_COPY; i++)
        if (sqlite3_prepare_v2(js->db, COPY_SQL[i], -1, &r->copy[i], NULL) != SQLITE_OK) goto bad;
    *out = r;
    return 0;
bad:
    js_dberr(js, err, "preparing the cross-sweep reuse statements");
    js_reuse_close(&r);
    return -1;
}

/* copy the done job `src` (attempt `att`) into the new job `job_id`; 0 or -1 */
static int copy_result(js_reuse *r, int64_t job_id, int64_t src, int att, const char *src_sweep,
                       const char *src_worker, int64_t now, cis_err *err) {
    char *note = xasprintf("reused: the result of job %lld (sweep \"%s\", attempt %d), copied at launch",
                           (long long)src, src_sweep, att);
    int rc = 0;
    for (size_t i = 0; i < N_COPY && !rc; i++) {
        sqlite3_stmt *st = r->copy[i];
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int64(st, 2, src);
        sqlite3_bind_int(st, 3, att);
        sqlite3_bind_int64(st, 4, now);
        sqlite3_bind_text(st, 5, note, -1, SQLITE_TRANSIENT);
        rc = js_run(r->js, st, "copying a reused result", err);
        /* the attempt row must exist (the results and stages rows reference it) and the job must
         * have been pending (it was inserted just now) */
        if (!rc && (i == 0 || i == N_COPY - 1) && sqlite3_changes(r->js->db) != 1)
            rc = err_set(err, CIS_EDB, "%s: reusing job %lld for job %lld: %s", r->js->path, (long long)src,
                         (long long)job_id, i == 0 ? "its current attempt is missing" : "the new job is not pending");
    }
    free(note);
    if (rc) return -1;
    json_t *d = json_pack("{s:I, s:s, s:i}", "from_job", (json_int_t)src, "from_sweep", src_sweep, "from_attempt", att);
    char *ds = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(d);
    rc = js_event_at(r->js, now, "reused", job_id, 1, src_worker, ds, err);
    free(ds);
    return rc;
}

int js_reuse_job(js_reuse *r, int64_t job_id, bool copy, int64_t now, js_launch_stats *s, cis_err *err) {
    sqlite3_stmt *st = r->find;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, CISWEEP_RESULTS_EPOCH);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) { sqlite3_reset(st); return 0; }
    if (rc != SQLITE_ROW) { sqlite3_reset(st); return js_dberr(r->js, err, "looking for an equivalent job"); }
    int64_t src = sqlite3_column_int64(st, 0);
    char state[16], sweep[256], worker[256];
    snprintf(state, sizeof state, "%s", (const char *)sqlite3_column_text(st, 1));
    int att = sqlite3_column_int(st, 2);
    snprintf(sweep, sizeof sweep, "%s", (const char *)sqlite3_column_text(st, 3));
    const unsigned char *w = sqlite3_column_text(st, 4);
    snprintf(worker, sizeof worker, "%s", w ? (const char *)w : "");
    bool fresh = sqlite3_column_int(st, 5) != 0;
    sqlite3_reset(st);
    s->jobs_shared++;
    if (!s->shared_sweep[0]) snprintf(s->shared_sweep, sizeof s->shared_sweep, "%s", sweep);
    if (!strcmp(state, "done") && !fresh) {
        s->jobs_shared_stale++;   /* computed under other presets (docs/orchestration.md "Results epoch"): runs */
    } else if (!strcmp(state, "done")) {
        if (!copy) return 0;
        if (copy_result(r, job_id, src, att, sweep, worker[0] ? worker : NULL, now, err)) return -1;
        s->jobs_reused++;
    } else if (!strcmp(state, "pending") || !strcmp(state, "leased")) {
        s->jobs_shared_inflight++;
        if (!s->inflight_sweep[0]) snprintf(s->inflight_sweep, sizeof s->inflight_sweep, "%s", sweep);
    } else {
        s->jobs_shared_unfinished++;
    }
    return 0;
}
