/* job_store_verbs.c - the job store's user verbs (retry, cancel) and reading helpers (state counts,
 * CSV export of v_runs). A user's WHERE clause is only ever run as the one read-only statement
 * `SELECT id FROM v_jobs WHERE (<sql>)`; the ids it yields are then changed by fixed statements. */
#include "coordinator/job_store_int.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

/* ---- user WHERE clauses -------------------------------------------------------------------- */

/* select_ids: run SELECT id FROM v_jobs WHERE (where_sql) (where_sql NULL = every job) into a
 * malloc'd array; returns the count or -1 (CIS_EINVAL with SQLite's message for bad SQL). */
static int select_ids(job_store *js, const char *where_sql, int64_t **ids, cis_err *err) {
    *ids = NULL;
    if (where_sql && strchr(where_sql, ';'))
        return err_set(err, CIS_EINVAL, "--where: a single SQL expression over v_jobs's columns is expected, "
                       "without ';'");
    char *sql = where_sql ? xasprintf("SELECT id FROM v_jobs WHERE (%s) ORDER BY id", where_sql)
                          : xstrdup("SELECT id FROM v_jobs ORDER BY id");
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(js->db, sql, -1, &st, &tail);
    if (rc != SQLITE_OK) {
        free(sql);
        err_set(err, CIS_EINVAL, "--where \"%s\": %s (columns of v_jobs: id, sweep, model, pattern, label, "
                "canonical, key, n_stages, edit_set, state, priority, attempt, spent, max_attempts, lost_count, "
                "worker, progress, current_attempt, lease_until, last_heartbeat, created_at, started_at, "
                "finished_at, last_error, blocked)", where_sql, sqlite3_errmsg(js->db));
        sqlite3_finalize(st);
        return -1;
    }
    while (tail && isspace((unsigned char)*tail)) tail++;
    bool extra = tail && *tail; /* tail points into sql */
    free(sql);
    if (extra || !st || !sqlite3_stmt_readonly(st)) {
        sqlite3_finalize(st);
        return err_set(err, CIS_EINVAL, "--where \"%s\": not a single read-only expression", where_sql);
    }
    size_t n = 0, cap = 64;
    int64_t *v = xmalloc(cap * sizeof *v);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) v = xrealloc(v, (cap *= 2) * sizeof *v);
        v[n++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE) {
        err_set(err, CIS_EINVAL, "--where \"%s\": %s", where_sql ? where_sql : "", sqlite3_errmsg(js->db));
        sqlite3_finalize(st);
        free(v);
        return -1;
    }
    sqlite3_finalize(st);
    *ids = v;
    return (int)n;
}

/* names_state_column: does the clause mention the identifier `state` (outside string literals)? */
static bool names_state_column(const char *s) {
    while (*s) {
        if (*s == '\'') { /* string literal, '' escapes */
            for (s++; *s; s++)
                if (*s == '\'') { if (s[1] == '\'') s++; else { s++; break; } }
            continue;
        }
        if (*s == '"' || *s == '`' || *s == '[') { /* quoted identifier */
            char close = *s == '[' ? ']' : *s;
            const char *b = ++s;
            while (*s && *s != close) s++;
            if ((size_t)(s - b) == 5 && strncasecmp(b, "state", 5) == 0) return true;
            if (*s) s++;
            continue;
        }
        if (isalpha((unsigned char)*s) || *s == '_') {
            const char *b = s;
            while (isalnum((unsigned char)*s) || *s == '_') s++;
            if ((size_t)(s - b) == 5 && strncasecmp(b, "state", 5) == 0) return true;
            continue;
        }
        s++;
    }
    return false;
}

/* ---- retry --------------------------------------------------------------------------------- */

/* read a job's state (and attempt, worker) by id: 1 found, 0 not, -1 error */
static int job_state(job_store *js, int64_t id, char state[16], int *attempt, char worker[256], cis_err *err) {
    sqlite3_stmt *st = js_st(js, S_JOB_STATE, err);
    if (!st) return -1;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        snprintf(state, 16, "%s", (const char *)sqlite3_column_text(st, 0));
        if (attempt) *attempt = sqlite3_column_int(st, 1);
        if (worker) snprintf(worker, 256, "%s", sqlite3_column_text(st, 2) ? (const char *)sqlite3_column_text(st, 2) : "");
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 1;
    if (rc == SQLITE_DONE) return 0;
    return js_dberr(js, err, "reading a job's state");
}

static int retry_body(job_store *js, bool failed_only, const char *where_sql, int64_t now, cis_err *err) {
    int64_t *ids = NULL;
    int n;
    bool any_state = where_sql && !failed_only && names_state_column(where_sql);
    if (where_sql) {
        n = select_ids(js, where_sql, &ids, err);
    } else {
        n = select_ids(js, "state IN ('failed', 'dead')", &ids, err);
    }
    if (n < 0) return -1;
    int reset = 0;
    for (int i = 0; i < n; i++) {
        char state[16];
        int f = job_state(js, ids[i], state, NULL, NULL, err);
        if (f < 0) { reset = -1; break; }
        if (f == 0 || strcmp(state, "leased") == 0) continue;
        bool failedish = strcmp(state, "failed") == 0 || strcmp(state, "dead") == 0;
        if (!failedish && !any_state) continue;
        if (strcmp(state, "done") == 0) {
            sqlite3_stmt *st = js_st(js, S_RESULTS_UNCURRENT, err);
            if (!st) { reset = -1; break; }
            sqlite3_bind_int64(st, 1, ids[i]);
            if (js_run(js, st, "clearing current results", err) < 0) { reset = -1; break; }
        }
        sqlite3_stmt *st = js_st(js, S_RETRY_JOB, err);
        if (!st) { reset = -1; break; }
        sqlite3_bind_int64(st, 1, ids[i]);
        if (js_run(js, st, "resetting a job", err) < 0) { reset = -1; break; }
        char d[64];
        snprintf(d, sizeof d, "was %s", state);
        if (js_event(js, now, "retry", ids[i], NULL, d, err) < 0) { reset = -1; break; }
        reset++;
    }
    free(ids);
    return reset;
}

int js_retry(job_store *js, bool failed_only, const char *where_sql, int64_t now, cis_err *err) {
    if (!failed_only && !where_sql)
        return err_set(err, CIS_EINVAL, "retry: say which jobs (--failed or --where SQL)");
    bool own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    int n = retry_body(js, failed_only, where_sql, now, err);
    if (js_tx_leave(js, own, n < 0 ? -1 : 0, err) < 0) return -1;
    return n;
}

/* ---- cancel -------------------------------------------------------------------------------- */

static int cancel_body(job_store *js, const char *where_sql, int64_t now, js_lease **leased, int *n_leased,
                       cis_err *err) {
    int64_t *ids = NULL;
    int n = select_ids(js, where_sql, &ids, err);
    if (n < 0) return -1;
    int done = 0;
    size_t nl = 0, cap = 0;
    js_lease *ls = NULL;
    for (int i = 0; i < n; i++) {
        char state[16], worker[256];
        int attempt;
        int f = job_state(js, ids[i], state, &attempt, worker, err);
        if (f < 0) { done = -1; break; }
        if (f == 0 || (strcmp(state, "pending") && strcmp(state, "leased"))) continue;
        sqlite3_stmt *st = js_st(js, S_CANCEL_JOB, err);
        if (!st) { done = -1; break; }
        sqlite3_bind_int64(st, 1, ids[i]);
        sqlite3_bind_int64(st, 2, now);
        if (js_run(js, st, "cancelling a job", err) < 0) { done = -1; break; }
        bool was_leased = strcmp(state, "leased") == 0;
        if (was_leased) {
            if (!(st = js_st(js, S_ATTEMPT_END, err))) { done = -1; break; }
            sqlite3_bind_int64(st, 1, ids[i]);
            sqlite3_bind_int(st, 2, attempt);
            sqlite3_bind_text(st, 3, "cancelled", -1, SQLITE_STATIC);
            sqlite3_bind_int64(st, 4, now);
            if (js_run(js, st, "cancelling an attempt", err) < 0) { done = -1; break; }
            if (nl == cap) ls = xrealloc(ls, (cap = cap ? cap * 2 : 8) * sizeof *ls);
            ls[nl].job_id = ids[i];
            ls[nl].attempt = attempt;
            snprintf(ls[nl].worker_id, sizeof ls[nl].worker_id, "%s", worker);
            nl++;
        }
        if (js_event_at(js, now, "cancelled", ids[i], was_leased ? attempt : 0, was_leased ? worker : NULL,
                        was_leased ? "was leased" : "was pending", err) < 0) {
            done = -1;
            break;
        }
        done++;
    }
    free(ids);
    if (done < 0) { free(ls); return -1; }
    if (leased) *leased = ls;
    else free(ls);
    if (n_leased) *n_leased = (int)nl;
    return done;
}

int js_cancel(job_store *js, const char *where_sql, int64_t now, js_lease **leased, int *n_leased, cis_err *err) {
    if (leased) *leased = NULL;
    if (n_leased) *n_leased = 0;
    bool own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    js_lease *ls = NULL;
    int nl = 0;
    int n = cancel_body(js, where_sql, now, &ls, &nl, err);
    if (js_tx_leave(js, own, n < 0 ? -1 : 0, err) < 0) {
        free(ls);
        return -1;
    }
    if (leased) *leased = ls;
    else free(ls);
    if (n_leased) *n_leased = nl;
    return n;
}

/* ---- reading ------------------------------------------------------------------------------- */

int js_count_states(job_store *js, js_counts *c, cis_err *err) {
    memset(c, 0, sizeof *c);
    sqlite3_stmt *st = js_st(js, S_COUNTS, err);
    if (!st) return -1;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *s = (const char *)sqlite3_column_text(st, 0);
        int64_t k = sqlite3_column_int64(st, 1);
        c->total += k;
        if (!strcmp(s, "pending")) c->pending = k;
        else if (!strcmp(s, "leased")) c->leased = k;
        else if (!strcmp(s, "done")) c->done = k;
        else if (!strcmp(s, "failed")) c->failed = k;
        else if (!strcmp(s, "dead")) c->dead = k;
        else if (!strcmp(s, "cancelled")) c->cancelled = k;
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return js_dberr(js, err, "counting jobs");
    if (!(st = js_st(js, S_BLOCKED, err))) return -1;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) c->blocked = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc != SQLITE_ROW) return js_dberr(js, err, "counting blocked jobs");
    return 0;
}

static void csv_field(FILE *f, const char *s) {
    if (!s) return;
    if (!strpbrk(s, ",\"\r\n")) { fputs(s, f); return; }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int js_export_csv(job_store *js, FILE *f, cis_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(js->db, "SELECT * FROM v_runs ORDER BY job_id", -1, &st, NULL) != SQLITE_OK)
        return js_dberr(js, err, "exporting v_runs");
    int nc = sqlite3_column_count(st);
    for (int i = 0; i < nc; i++) {
        if (i) fputc(',', f);
        csv_field(f, sqlite3_column_name(st, i));
    }
    fputs("\r\n", f);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int i = 0; i < nc; i++) {
            if (i) fputc(',', f);
            if (sqlite3_column_type(st, i) == SQLITE_FLOAT) {
                char buf[40];
                double v = sqlite3_column_double(st, i);
                for (int prec = 15; prec <= 17; prec++) { /* shortest text that reads back exactly */
                    snprintf(buf, sizeof buf, "%.*g", prec, v);
                    if (strtod(buf, NULL) == v) break;
                }
                fputs(buf, f);
            } else {
                csv_field(f, (const char *)sqlite3_column_text(st, i));
            }
        }
        fputs("\r\n", f);
    }
    if (rc != SQLITE_DONE) {
        js_dberr(js, err, "exporting v_runs");
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    if (ferror(f)) return err_set(err, CIS_EIO, "export: write error");
    return 0;
}
