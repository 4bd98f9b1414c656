/* job_store_epoch.c - the results epoch guard (docs/orchestration.md "Results epoch"). A model
 * job's result carries the metric row `results_epoch` (CISWEEP_RESULTS_EPOCH of the worker build
 * that computed it, common/version.h). A done job is STALE for an epoch E when its current
 * attempt has no `results_epoch` row equal to E (a result from before the row existed has none);
 * the orchestration fixture (selftest compositions) and the prerequisite jobs (pattern 'prereq')
 * carry no row and are never stale. `cisweep run` counts the stale jobs of its sweep before it
 * starts and refuses, or with --rerun-stale puts them back to pending through js_retry (their old
 * attempts, results and stage rows stay as history, is_current = 0). A standalone `cisweep
 * coordinator` refuses to serve a DB in which a sweep with jobs still to run has stale done ones
 * (js_stale_unfinished; `cisweep retry --stale` requeues them), and refuses workers of another
 * epoch (HELLO.results_epoch, coordinator.c). */
#include "coordinator/job_store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the stale predicate over v_jobs's columns (sweep NULL = every sweep); sqlite3_free it */
static char *stale_where(const char *sweep, int epoch) {
    return sqlite3_mprintf("v_jobs.state = 'done' AND (%Q IS NULL OR v_jobs.sweep = %Q) AND v_jobs.pattern <> 'prereq' "
                           "AND v_jobs.canonical NOT LIKE '%%\"method\":\"selftest\"%%' AND NOT EXISTS (SELECT 1 FROM "
                           "results r WHERE r.job_id = v_jobs.id AND r.attempt = v_jobs.current_attempt AND "
                           "r.metric = 'results_epoch' AND r.value = %d)", sweep, sweep, epoch);
}

/* run `sql` (sqlite3_mprintf'd; freed here), whose rows are (label, count): out->n = the sum of the
 * counts, out->epochs = "LABEL: count, ..." with a NULL label as "none", a text one in quotes
 * (sweep names) and a number as %g (epochs); `what` names the query in an error */
static int count_groups(job_store *js, char *sql, js_stale *out, const char *what, cis_err *err) {
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(js->db, sql, -1, &st, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) return js_dberr(js, err, what);
    size_t used = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t n = sqlite3_column_int64(st, 1);
        out->n += n;
        char one[128];
        int type = sqlite3_column_type(st, 0);
        if (type == SQLITE_NULL) snprintf(one, sizeof one, "none: %lld", (long long)n);
        else if (type == SQLITE_TEXT)
            snprintf(one, sizeof one, "\"%.80s\": %lld", (const char *)sqlite3_column_text(st, 0), (long long)n);
        else snprintf(one, sizeof one, "%g: %lld", sqlite3_column_double(st, 0), (long long)n);
        int w = snprintf(out->epochs + used, sizeof out->epochs - used, "%s%s", used ? ", " : "", one);
        if (w > 0 && used + (size_t)w < sizeof out->epochs) used += (size_t)w;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return js_dberr(js, err, what);
    return 0;
}

int js_stale_jobs(job_store *js, const char *sweep, int epoch, js_stale *out, cis_err *err) {
    char *where = stale_where(sweep, epoch);
    char *sql = sqlite3_mprintf("SELECT r.value, count(*) FROM v_jobs LEFT JOIN results r ON r.job_id = v_jobs.id "
                                "AND r.attempt = v_jobs.current_attempt AND r.metric = 'results_epoch' WHERE %s "
                                "GROUP BY r.value ORDER BY r.value IS NOT NULL, r.value", where);
    sqlite3_free(where);
    return count_groups(js, sql, out, "counting the jobs of another results epoch", err);
}

int js_rerun_stale(job_store *js, const char *sweep, int epoch, int64_t now, cis_err *err) {
    char *where = stale_where(sweep, epoch);
    char *w = xstrdup(where);   /* js_retry's clause; it names `state`, so done jobs are included */
    sqlite3_free(where);
    int n = js_retry(js, false, w, now, err);
    free(w);
    return n;
}

int js_stale_unfinished(job_store *js, int epoch, js_stale *out, cis_err *err) {
    char *where = stale_where(NULL, epoch);
    char *sql = sqlite3_mprintf("SELECT v_jobs.sweep, count(*) FROM v_jobs WHERE %s AND EXISTS (SELECT 1 FROM v_jobs o "
                                "WHERE o.sweep = v_jobs.sweep AND o.state IN ('pending', 'leased')) GROUP BY v_jobs.sweep "
                                "ORDER BY v_jobs.sweep", where);
    sqlite3_free(where);
    return count_groups(js, sql, out, "looking for unfinished sweeps with jobs of another results epoch", err);
}
