/* job_store_dispatch.c - the job store's hot path: claim, heartbeat, record result / failure /
 * preemption / loss, the lease sweep and resume. Each call is atomic (a savepoint inside the
 * caller's batch transaction, or its own BEGIN IMMEDIATE ... COMMIT when called outside one) and
 * costs a handful of indexed statement executions. */
#include "coordinator/job_store_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void js_job_clear(js_job *j) {
    if (!j) return;
    free(j->model_path);
    free(j->composition);
    memset(j, 0, sizeof *j);
}

static void copy_str(char *dst, size_t n, const unsigned char *src) {
    snprintf(dst, n, "%s", src ? (const char *)src : "");
}

/* ---- claim --------------------------------------------------------------------------------- */

/* the lowest-id runnable job at priority prio that starts with one of the prefixes (first match
 * in their order): 1 and *job_id, 0 none, -1 error */
static int claim_prefix(job_store *js, int64_t prio, js_prefix *pre, int n, int64_t offer_mb, int64_t *job_id,
                        cis_err *err) {
    for (int i = 0; i < n; i++) {
        sqlite3_stmt *st = js_st(js, S_CLAIM_PREFIX, err);
        if (!st) return -1;
        sqlite3_bind_int64(st, 1, prio);
        sqlite3_bind_text(st, 2, pre[i].model, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, pre[i].text, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(st, 4, pre[i].edit_set);
        sqlite3_bind_text(st, 5, pre[i].model_path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 6, offer_mb);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) *job_id = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (rc == SQLITE_ROW) return 1;
        if (rc != SQLITE_DONE) return js_dberr(js, err, "choosing a job by prefix");
        pre[i].none = true;
    }
    return 0;
}

/* pick the job to lease among those that fit offer_mb (< 0: all): 1 and *job_id, 0 none, -1 error */
static int claim_pick(job_store *js, const char *prefer_model, js_prefix *pre, int n_pre, int64_t offer_mb,
                      int64_t *job_id, cis_err *err) {
    sqlite3_stmt *st = js_st(js, S_CLAIM_BEST, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, offer_mb);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) { sqlite3_reset(st); return 0; }
    if (rc != SQLITE_ROW) { sqlite3_reset(st); return js_dberr(js, err, "choosing a job"); }
    *job_id = sqlite3_column_int64(st, 0);
    int64_t prio = sqlite3_column_int64(st, 1);
    bool same = prefer_model && strcmp((const char *)sqlite3_column_text(st, 2), prefer_model) == 0;
    sqlite3_reset(st);
    if (n_pre > 0) {
        int f = claim_prefix(js, prio, pre, n_pre, offer_mb, job_id, err);
        if (f != 0) return f;
    }
    if (!prefer_model || same) return 1;
    /* affinity: the lowest-id runnable job of the preferred model at the same (top) priority */
    sqlite3_stmt *mi = js_st(js, S_MODEL_IDS, err);
    if (!mi) return -1;
    sqlite3_bind_text(mi, 1, prefer_model, -1, SQLITE_TRANSIENT);
    int64_t best = 0;
    while ((rc = sqlite3_step(mi)) == SQLITE_ROW) {
        int64_t model_id = sqlite3_column_int64(mi, 0);
        /* a different cached statement: stepping it does not disturb `mi` */
        sqlite3_stmt *af = js_st(js, S_CLAIM_AFFINITY, err);
        if (!af) { sqlite3_reset(mi); return -1; }
        sqlite3_bind_int64(af, 1, prio);
        sqlite3_bind_int64(af, 2, model_id);
        sqlite3_bind_int64(af, 3, offer_mb);
        int arc = sqlite3_step(af);
        if (arc == SQLITE_ROW) {
            int64_t id = sqlite3_column_int64(af, 0);
            if (!best || id < best) best = id;
        }
        sqlite3_reset(af);
        if (arc != SQLITE_ROW && arc != SQLITE_DONE) { sqlite3_reset(mi); return js_dberr(js, err, "affinity"); }
    }
    sqlite3_reset(mi);
    if (rc != SQLITE_DONE) return js_dberr(js, err, "looking up the preferred model");
    if (best) *job_id = best;
    return 1;
}

static int claim_body(job_store *js, const char *worker_id, const char *prefer_model, js_prefix *pre,
                      int n_pre, int64_t offer_mb, int64_t now, int64_t lease_ms, js_job *out, cis_err *err) {
    int64_t id = 0;
    int f = claim_pick(js, prefer_model, pre, n_pre, offer_mb, &id, err);
    if (f <= 0) return f;
    sqlite3_stmt *st = js_st(js, S_CLAIM_UPDATE, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, worker_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now + lease_ms);
    sqlite3_bind_int64(st, 4, now);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        if (rc == SQLITE_DONE) return err_set(err, CIS_EDB, "%s: job %lld changed state while being leased",
                                              js->path, (long long)id);
        return js_dberr(js, err, "leasing a job");
    }
    int attempt = sqlite3_column_int(st, 0);
    if (js_run(js, st, "leasing a job", err) < 0) return -1;

    if (!(st = js_st(js, S_JOB_DETAILS, err))) return -1;
    sqlite3_bind_int64(st, 1, id);
    if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
        sqlite3_reset(st);
        return js_dberr(js, err, "reading the leased job");
    }
    memset(out, 0, sizeof *out);
    out->id = id;
    out->attempt = attempt;
    out->sweep_id = sqlite3_column_int64(st, 0);
    copy_str(out->model, sizeof out->model, sqlite3_column_text(st, 1));
    out->model_path = xstrdup((const char *)sqlite3_column_text(st, 2));
    out->composition = xstrdup((const char *)sqlite3_column_text(st, 3));
    copy_str(out->key, sizeof out->key, sqlite3_column_text(st, 4));
    out->edit_set = sqlite3_column_int(st, 5);
    copy_str(out->recompress, sizeof out->recompress, sqlite3_column_text(st, 6));
    out->lease_until = now + lease_ms;
    sqlite3_reset(st);

    if (!(st = js_st(js, S_ATTEMPT_INSERT, err))) goto fail;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_text(st, 3, worker_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now);
    if (js_run(js, st, "recording the attempt", err) < 0) goto fail;
    if (js_event_at(js, now, "leased", id, attempt, worker_id, NULL, err) < 0) goto fail;
    return 1;
fail:
    js_job_clear(out);
    return -1;
}

int js_claim(job_store *js, const char *worker_id, const char *prefer_model, int64_t now, int64_t lease_ms,
             js_job *out, cis_err *err) {
    return js_claim_prefer(js, worker_id, prefer_model, NULL, 0, now, lease_ms, out, err);
}

int js_claim_prefer(job_store *js, const char *worker_id, const char *prefer_model, js_prefix *prefixes,
                    int n_prefixes, int64_t now, int64_t lease_ms, js_job *out, cis_err *err) {
    return js_claim_fit(js, worker_id, prefer_model, prefixes, n_prefixes, -1, now, lease_ms, out, err);
}

int js_claim_fit(job_store *js, const char *worker_id, const char *prefer_model, js_prefix *prefixes,
                 int n_prefixes, int64_t offer_mb, int64_t now, int64_t lease_ms, js_job *out, cis_err *err) {
    if (!worker_id || !*worker_id) return err_set(err, CIS_EINVAL, "claim: empty worker id");
    bool own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    int f = claim_body(js, worker_id, prefer_model, prefixes, n_prefixes, offer_mb, now, lease_ms, out, err);
    if (js_tx_leave(js, own, f < 0 ? -1 : 0, err) < 0) {
        if (f == 1) js_job_clear(out);
        return -1;
    }
    return f;
}

/* ---- heartbeat ----------------------------------------------------------------------------- */

int js_heartbeat(job_store *js, int64_t job_id, int attempt, const char *worker_id, int64_t now,
                 int64_t lease_ms, double progress, cis_err *err) {
    sqlite3_stmt *st = js_st(js, S_HEARTBEAT, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, attempt);
    js_bind_text_or_null(st, 3, worker_id);
    sqlite3_bind_int64(st, 4, now + lease_ms);
    sqlite3_bind_int64(st, 5, now);
    if (progress >= 0 && isfinite(progress)) sqlite3_bind_double(st, 6, progress > 1 ? 1 : progress);
    else sqlite3_bind_null(st, 6);
    if (js_run(js, st, "recording a heartbeat", err) < 0) return -1;
    return sqlite3_changes(js->db) == 1 ? 1 : 0;
}

/* ---- results ------------------------------------------------------------------------------- */

static int set_attempt_end(job_store *js, int64_t job_id, int attempt, const char *outcome, int64_t now,
                           const char *error, const char *log_tail, char *worker_out, size_t wn, cis_err *err) {
    sqlite3_stmt *st = js_st(js, S_ATTEMPT_END, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_text(st, 3, outcome, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    js_bind_text_or_null(st, 5, error);
    js_bind_text_or_null(st, 6, log_tail);
    int rc = sqlite3_step(st);
    if (worker_out && wn) {
        worker_out[0] = 0;
        if (rc == SQLITE_ROW) copy_str(worker_out, wn, sqlite3_column_text(st, 0));
    }
    if (rc == SQLITE_ROW) rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return js_dberr(js, err, "ending an attempt");
    return 0;
}

/* the stages an attempt ran (stages table) */
static int insert_stages(job_store *js, int64_t job_id, int attempt, const js_stage *stages, size_t n, int64_t now,
                         cis_err *err) {
    for (size_t i = 0; i < n; i++) {
        const js_stage *s = &stages[i];
        if (s->stage < 1 || s->of_stage < 1 || !s->method || !*s->method || !s->params_json)
            return err_set(err, CIS_EINVAL, "result for job %lld attempt %d: stage %zu needs stage >= 1, of_stage >= 1, "
                           "a method and params", (long long)job_id, attempt, i + 1);
        sqlite3_stmt *st = js_st(js, S_STAGE_INSERT, err);
        if (!st) return -1;
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int(st, 2, attempt);
        sqlite3_bind_int(st, 3, s->stage);
        sqlite3_bind_int(st, 4, s->of_stage);
        sqlite3_bind_text(st, 5, s->method, -1, SQLITE_TRANSIENT);
        js_bind_text_or_null(st, 6, s->category);
        sqlite3_bind_int(st, 7, s->recompress ? 1 : 0);
        sqlite3_bind_text(st, 8, s->params_json, -1, SQLITE_TRANSIENT);
        if (s->seed >= 0) sqlite3_bind_int64(st, 9, s->seed);
        else sqlite3_bind_null(st, 9);
        js_bind_text_or_null(st, 10, s->record_json);
        js_bind_text_or_null(st, 11, s->phases_json);
        if (s->wall_ms >= 0) sqlite3_bind_int64(st, 12, s->wall_ms);
        else sqlite3_bind_null(st, 12);
        sqlite3_bind_int64(st, 13, now);
        if (js_run(js, st, "storing a stage", err) < 0) return -1;
    }
    return 0;
}

static int result_body(job_store *js, int64_t job_id, int attempt, const char *worker_id, const js_metric *rows,
                       size_t n_rows, const js_stage *stages, size_t n_stages, int64_t timing_ms, int64_t now,
                       int *outcome, char *other, cis_err *err) {
    sqlite3_stmt *st = js_st(js, S_RESULT_LOOKUP, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, attempt);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return err_set(err, CIS_ESTATE, "result for job %lld attempt %d: no such job", (long long)job_id, attempt);
    }
    if (rc != SQLITE_ROW) { sqlite3_reset(st); return js_dberr(js, err, "looking up a job"); }
    char state[16], holder[256];
    copy_str(state, sizeof state, sqlite3_column_text(st, 0));
    int job_attempt = sqlite3_column_int(st, 1);
    copy_str(holder, sizeof holder, sqlite3_column_text(st, 2));
    bool recorded = sqlite3_column_type(st, 3) != SQLITE_NULL;
    bool attempt_known = sqlite3_column_type(st, 4) != SQLITE_NULL;
    char att_holder[256];
    copy_str(att_holder, sizeof att_holder, sqlite3_column_text(st, 5));
    sqlite3_reset(st);
    if (attempt < 1 || attempt > job_attempt || !attempt_known)
        return err_set(err, CIS_ESTATE, "result for job %lld attempt %d: that attempt was never leased (the job "
                       "is at attempt %d)", (long long)job_id, attempt, job_attempt);
    /* only the worker that was leased this attempt may report on it */
    if (worker_id && strcmp(worker_id, att_holder) != 0)
        return err_set(err, CIS_EPERM, "result for job %lld attempt %d from \"%s\": that attempt is leased to \"%s\"",
                       (long long)job_id, attempt, worker_id, att_holder);
    if (recorded) { *outcome = JS_RESULT_DUPLICATE; return 0; }

    bool current = strcmp(state, "done") != 0;
    for (size_t i = 0; i < n_rows; i++) {
        if (!rows[i].name || !*rows[i].name)
            return err_set(err, CIS_EINVAL, "result for job %lld attempt %d: metric %zu has no name",
                           (long long)job_id, attempt, i);
        if (!(st = js_st(js, S_RESULT_INSERT, err))) return -1;
        sqlite3_bind_int64(st, 1, job_id);
        sqlite3_bind_int(st, 2, attempt);
        sqlite3_bind_text(st, 3, rows[i].name, -1, SQLITE_TRANSIENT);
        double v = rows[i].value;
        if (isfinite(v)) {
            sqlite3_bind_double(st, 4, v);
            sqlite3_bind_null(st, 5);
        } else {
            sqlite3_bind_null(st, 4);
            sqlite3_bind_text(st, 5, isnan(v) ? "nan" : v > 0 ? "inf" : "-inf", -1, SQLITE_STATIC);
        }
        sqlite3_bind_int(st, 6, current ? 1 : 0);
        sqlite3_bind_int64(st, 7, now);
        if (js_run(js, st, "storing a metric", err) < 0) return -1;
    }
    if (insert_stages(js, job_id, attempt, stages, n_stages, now, err) < 0) return -1;
    if (!(st = js_st(js, S_ATTEMPT_RESULT, err))) return -1;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_text(st, 3, current ? "done" : "superseded", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    if (timing_ms >= 0) sqlite3_bind_int64(st, 5, timing_ms);
    else sqlite3_bind_null(st, 5);
    if (js_run(js, st, "ending the attempt", err) < 0) return -1;
    if (!current) {
        *outcome = JS_RESULT_SUPERSEDED;
        return js_event_at(js, now, "superseded", job_id, attempt, worker_id,
                           "result stored, not current: the job was already done", err);
    }
    if (!(st = js_st(js, S_JOB_DONE, err))) return -1;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, attempt);
    js_bind_text_or_null(st, 3, worker_id ? worker_id : holder[0] ? holder : NULL);
    sqlite3_bind_int64(st, 4, now);
    if (js_run(js, st, "marking the job done", err) < 0) return -1;
    /* another attempt still holds a lease: it is superseded, its worker gets CANCEL */
    if (strcmp(state, "leased") == 0 && job_attempt != attempt) {
        if (set_attempt_end(js, job_id, job_attempt, "superseded", now, NULL, NULL, NULL, 0, err) < 0) return -1;
        if (other) snprintf(other, 256, "%s", holder);
        if (js_event_at(js, now, "superseded", job_id, job_attempt, holder,
                        "a late result of an earlier attempt completed the job", err) < 0)
            return -1;
    }
    *outcome = JS_RESULT_CURRENT;
    return js_event_at(js, now, "done", job_id, attempt, worker_id, NULL, err);
}

int js_record_result(job_store *js, int64_t job_id, int attempt, const char *worker_id, const js_metric *rows,
                     size_t n_rows, const js_stage *stages, size_t n_stages, int64_t timing_ms, int64_t now,
                     int *outcome, char other_worker[256], cis_err *err) {
    if (other_worker) other_worker[0] = 0;
    if (n_rows && !rows) return err_set(err, CIS_EINVAL, "result for job %lld: no rows", (long long)job_id);
    if (n_stages && !stages) return err_set(err, CIS_EINVAL, "result for job %lld: no stages", (long long)job_id);
    int oc = 0;
    bool own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    int rc = result_body(js, job_id, attempt, worker_id, rows, n_rows, stages, n_stages, timing_ms, now, &oc,
                         other_worker, err);
    rc = js_tx_leave(js, own, rc, err);
    if (rc < 0) {
        if (other_worker) other_worker[0] = 0;
        return -1;
    }
    if (outcome) *outcome = oc;
    return 0;
}

int js_job_attempt(job_store *js, int64_t job_id, cis_err *err) {
    sqlite3_stmt *st = js_st(js, S_JOB_STATE, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, job_id);
    int rc = sqlite3_step(st), a = rc == SQLITE_ROW ? sqlite3_column_int(st, 1) : -1;
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return a;
    if (rc == SQLITE_DONE) return err_set(err, CIS_ESTATE, "no job %lld", (long long)job_id);
    return js_dberr(js, err, "reading a job's attempt");
}

/* ---- failure, preemption, loss ------------------------------------------------------------- */

static int failure_body(job_store *js, int64_t job_id, int attempt, const char *worker_id, const char *error,
                        const char *log_tail, bool retryable, int64_t now, bool *applied, cis_err *err) {
    sqlite3_stmt *st = js_st(js, S_JOB_FAIL, err);
    if (!st) return -1;
    char *msg = xasprintf("attempt %d failed: %s", attempt, error && *error ? error : "(no error text)");
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, attempt);
    js_bind_text_or_null(st, 3, worker_id);
    sqlite3_bind_int(st, 4, retryable ? 1 : 0);
    sqlite3_bind_text(st, 5, msg, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, now);
    free(msg);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) { sqlite3_reset(st); return 0; } /* not the current lease: ignored */
    if (rc != SQLITE_ROW) { sqlite3_reset(st); return js_dberr(js, err, "recording a failure"); }
    bool requeued = strcmp((const char *)sqlite3_column_text(st, 0), "pending") == 0;
    if (js_run(js, st, "recording a failure", err) < 0) return -1;
    if (set_attempt_end(js, job_id, attempt, "failed", now, error ? error : "", log_tail, NULL, 0, err) < 0)
        return -1;
    if (js_event_at(js, now, requeued ? "requeued" : "failed", job_id, attempt, worker_id, error, err) < 0)
        return -1;
    *applied = true;
    return 0;
}

int js_record_failure(job_store *js, int64_t job_id, int attempt, const char *worker_id, const char *error,
                      const char *log_tail, bool retryable, int64_t now, bool *applied, cis_err *err) {
    bool ap = false, own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    int rc = failure_body(js, job_id, attempt, worker_id, error, log_tail, retryable, now, &ap, err);
    rc = js_tx_leave(js, own, rc, err);
    if (applied) *applied = rc == 0 && ap;
    return rc;
}

static int preempt_body(job_store *js, int64_t job_id, int attempt, const char *worker_id, int64_t now,
                        bool *applied, cis_err *err) {
    sqlite3_stmt *st = js_st(js, S_JOB_PREEMPT, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, attempt);
    js_bind_text_or_null(st, 3, worker_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) { sqlite3_reset(st); return 0; }
    if (rc != SQLITE_ROW) { sqlite3_reset(st); return js_dberr(js, err, "recording a preemption"); }
    if (js_run(js, st, "recording a preemption", err) < 0) return -1;
    if (set_attempt_end(js, job_id, attempt, "preempted", now, NULL, NULL, NULL, 0, err) < 0) return -1;
    if (js_event_at(js, now, "preempted", job_id, attempt, worker_id, "requeued; attempt budget not spent",
                    err) < 0)
        return -1;
    *applied = true;
    return 0;
}

int js_record_preempted(job_store *js, int64_t job_id, int attempt, const char *worker_id, int64_t now,
                        bool *applied, cis_err *err) {
    bool ap = false, own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    int rc = js_tx_leave(js, own, preempt_body(js, job_id, attempt, worker_id, now, &ap, err), err);
    if (applied) *applied = rc == 0 && ap;
    return rc;
}

static int lost_body(job_store *js, int64_t job_id, int attempt, const char *reason, int64_t now,
                     int quarantine_after, bool *applied, cis_err *err) {
    const char *why = reason && *reason ? reason : "lost";
    char *msg = xasprintf("attempt %d lost: %s", attempt, why);
    sqlite3_stmt *st = js_st(js, S_JOB_LOST, err);
    if (!st) { free(msg); return -1; }
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int(st, 2, attempt);
    sqlite3_bind_int(st, 3, quarantine_after);
    sqlite3_bind_text(st, 4, msg, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 5, now);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) { sqlite3_reset(st); free(msg); return 0; }
    if (rc != SQLITE_ROW) { sqlite3_reset(st); free(msg); return js_dberr(js, err, "recording a lost attempt"); }
    char state[16];
    copy_str(state, sizeof state, sqlite3_column_text(st, 0));
    if (js_run(js, st, "recording a lost attempt", err) < 0) { free(msg); return -1; }
    char worker[256];
    rc = set_attempt_end(js, job_id, attempt, "lost", now, msg, NULL, worker, sizeof worker, err);
    free(msg);
    if (rc < 0) return -1;
    const char *w = worker[0] ? worker : NULL;
    if (js_event_at(js, now, "lost", job_id, attempt, w, why, err) < 0) return -1;
    const char *kind = strcmp(state, "dead") == 0 ? "quarantined" : strcmp(state, "failed") == 0 ? "failed"
                                                                                                  : "requeued";
    if (js_event_at(js, now, kind, job_id, attempt, w, why, err) < 0) return -1;
    *applied = true;
    return 0;
}

int js_record_lost(job_store *js, int64_t job_id, int attempt, const char *reason, int64_t now,
                   int quarantine_after, bool *applied, cis_err *err) {
    bool ap = false, own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    int rc = js_tx_leave(js, own, lost_body(js, job_id, attempt, reason, now, quarantine_after, &ap, err), err);
    if (applied) *applied = rc == 0 && ap;
    return rc;
}

/* ---- lease lists, resume ------------------------------------------------------------------- */

static int lease_list(job_store *js, sqlite3_stmt *st, js_lease **out, cis_err *err) {
    size_t n = 0, cap = 16;
    js_lease *v = xmalloc(cap * sizeof *v);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) v = xrealloc(v, (cap *= 2) * sizeof *v);
        v[n].job_id = sqlite3_column_int64(st, 0);
        v[n].attempt = sqlite3_column_int(st, 1);
        copy_str(v[n].worker_id, sizeof v[n].worker_id, sqlite3_column_text(st, 2));
        n++;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(v);
        *out = NULL;
        return js_dberr(js, err, "listing leases");
    }
    *out = v;
    return (int)n;
}

int js_expired_leases(job_store *js, int64_t now, js_lease **out, cis_err *err) {
    *out = NULL;
    sqlite3_stmt *st = js_st(js, S_EXPIRED, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, now);
    return lease_list(js, st, out, err);
}

int js_leases_of_worker(job_store *js, const char *worker_id, js_lease **out, cis_err *err) {
    *out = NULL;
    sqlite3_stmt *st = js_st(js, S_LEASES_OF, err);
    if (!st) return -1;
    sqlite3_bind_text(st, 1, worker_id ? worker_id : "", -1, SQLITE_TRANSIENT);
    return lease_list(js, st, out, err);
}

int js_resume_prepare(job_store *js, int64_t now, int64_t grace_ms, cis_err *err) {
    bool own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    int n = -1;
    /* when did the previous coordinator start? (leases not renewed since then had their grace) */
    int64_t prev = 0;
    sqlite3_stmt *ps = NULL;
    if (sqlite3_prepare_v2(js->db, "SELECT max(ts) FROM events WHERE kind = 'coordinator_start'", -1, &ps, NULL)
            == SQLITE_OK && sqlite3_step(ps) == SQLITE_ROW)
        prev = sqlite3_column_int64(ps, 0);
    sqlite3_finalize(ps);
    sqlite3_stmt *st = js_st(js, S_RESUME, err);
    if (st) {
        sqlite3_bind_int64(st, 1, now + grace_ms);
        sqlite3_bind_int64(st, 2, prev);
        if (js_run(js, st, "extending leases on resume", err) == 0) {
            n = sqlite3_changes(js->db);
            char d[96];
            snprintf(d, sizeof d, "resume: %d leased job(s) given %lld ms grace", n, (long long)grace_ms);
            if (js_event(js, now, "coordinator_start", 0, NULL, d, err) < 0) n = -1;
        }
    }
    if (js_tx_leave(js, own, n < 0 ? -1 : 0, err) < 0) return -1;
    return n;
}
