/* cmd_status.c - `cisweep status --db DB [--watch [SECONDS]]`: read-only view of a sweep: counts
 * by state, a progress bar, the completion rate over the last 10 minutes and an ETA, every live
 * worker with its last-seen time and current job, why pending jobs wait, and how many done jobs
 * are of another results epoch than this build's (stale, job_store_epoch.c). Opens the DB
 * read-only (a WAL snapshot), so it can never disturb the running coordinator. */
#include "coordinator/cli.h"
#include "coordinator/job_store.h"
#include "common/version.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int64_t q1(sqlite3 *db, const char *sql, int64_t arg) {
    sqlite3_stmt *st;
    int64_t v = 0;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    if (sqlite3_bind_parameter_count(st) > 0) sqlite3_bind_int64(st, 1, arg);
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void fmt_dur(int64_t ms, char *buf, size_t n) {
    int64_t s = ms / 1000;
    if (s < 120) snprintf(buf, n, "%llds", (long long)s);
    else if (s < 7200) snprintf(buf, n, "%lldm%02llds", (long long)(s / 60), (long long)(s % 60));
    else snprintf(buf, n, "%lldh%02lldm", (long long)(s / 3600), (long long)(s / 60 % 60));
}

/* the pending jobs no connected worker can take for lack of device memory (issue 15; the needs
 * are job_memory, the offers worker_memory): how many, the largest five, and what to do. Only
 * when every connected worker is memory-bound (a cpu worker without --report-free-mb takes any
 * job). Returns their count (they are not waiting for a free worker). */
static int64_t print_unfit(job_store *js, FILE *f, int alive) {
    int n_live = 0, n_free = 0;
    int64_t max = -1, n = 0;
    cis_err err = {0};
    if (alive == 0 || js_live_offer(js, &n_live, &n_free, &max, &err) || n_live == 0 || n_free > 0) return 0;
    js_unfit u[5];
    if (js_unfit_jobs(js, max, u, 5, &n, &err)) { fprintf(stderr, "cisweep status: %s\n", err.msg); return 0; }
    if (n == 0) return 0;
    fprintf(f, "  %lld need more device memory than any connected worker offers (the largest offer is %lld MiB); "
            "no connected worker can run them:\n", (long long)n, (long long)max);
    for (int i = 0; i < 5 && i < n; i++)
        fprintf(f, "    job %lld needs %lld MiB (model %s, %s)\n", (long long)u[i].job_id, (long long)u[i].need_mb,
                u[i].model, u[i].kind);
    if (n > 5) fprintf(f, "    ... (SELECT * FROM job_memory for all)\n");
    fprintf(f, "    they stay pending: connect a worker with more memory, or lower an estimate that is too high "
            "(UPDATE job_memory SET need_mb = N WHERE job_id = J; docs/cluster.md)\n");
    return n;
}

static int print_status(job_store *js, FILE *f) {
    sqlite3 *db = job_store_db(js);
    cis_err err = {0};
    js_counts k;
    if (js_count_states(js, &k, &err)) { fprintf(stderr, "cisweep status: %s\n", err.msg); return 1; }
    int64_t now = now_ms();
    int64_t finished = k.done + k.failed + k.dead + k.cancelled;
    fprintf(f, "jobs: %lld total | pending %lld (blocked %lld) | leased %lld | done %lld | failed %lld | dead %lld | cancelled %lld\n",
            (long long)k.total, (long long)k.pending, (long long)k.blocked, (long long)k.leased, (long long)k.done,
            (long long)k.failed, (long long)k.dead, (long long)k.cancelled);
    int width = 50, fill = k.total ? (int)(width * finished / k.total) : 0;
    fprintf(f, "[");
    for (int i = 0; i < width; i++) fputc(i < fill ? '#' : '.', f);
    fprintf(f, "] %5.1f%%\n", k.total ? 100.0 * (double)finished / (double)k.total : 0.0);
    int64_t window = 10 * 60 * 1000;
    int64_t recent = q1(db, "SELECT count(*) FROM jobs WHERE state='done' AND finished_at >= ?", now - window);
    int64_t first = q1(db, "SELECT coalesce(min(started_at),0) FROM attempts", 0);
    double span = first ? (double)(now - first) : 0;
    if (span > window) span = (double)window;
    double rate = span > 0 ? recent / (span / 60000.0) : 0; /* jobs per minute */
    int64_t left = k.pending + k.leased;
    char eta[32] = "-";
    if (rate > 0 && left > 0) fmt_dur((int64_t)(left / rate * 60000.0), eta, sizeof eta);
    else if (left == 0) snprintf(eta, sizeof eta, "finished");
    fprintf(f, "rate: %.1f jobs/min (last 10 min) | ETA %s\n", rate, eta);

    fprintf(f, "workers:\n");
    sqlite3_stmt *st;
    const char *wsql =
        "SELECT w.id, w.device, w.last_seen, (SELECT group_concat(j.id || '/' || j.attempt) FROM jobs j "
        "WHERE j.state='leased' AND j.worker_id=w.id), w.state, wm.free_mb FROM workers w "
        "LEFT JOIN worker_memory wm ON wm.worker_id = w.id WHERE w.state != 'gone' "
        "OR w.last_seen >= ? ORDER BY w.state='gone', w.id";
    int nw = 0, alive = 0, busy = 0;
    if (sqlite3_prepare_v2(db, wsql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, now - window);
        while (sqlite3_step(st) == SQLITE_ROW) {
            char ago[32];
            fmt_dur(now - sqlite3_column_int64(st, 2), ago, sizeof ago);
            const char *job = (const char *)sqlite3_column_text(st, 3);
            const char *state = (const char *)sqlite3_column_text(st, 4);
            bool gone = state && !strcmp(state, "gone");
            alive += !gone;
            busy += job != NULL;
            const char *dev = (const char *)sqlite3_column_text(st, 1);
            const char *wid = (const char *)sqlite3_column_text(st, 0);
            const char *sl = wid ? strstr(wid, "/slurm-") : NULL;   /* ids of workers under Slurm (issue 15) */
            fprintf(f, "  %-40s %-8s last seen %6s ago  %s", wid, gone ? "gone" : (dev ? dev : "?"), ago,
                    job ? job : (gone ? "" : "idle"));
            if (sl) fprintf(f, "  slurm job %.*s", (int)strcspn(sl + 7, ".r"), sl + 7);
            if (!gone && sqlite3_column_type(st, 5) != SQLITE_NULL)   /* its memory offer (issue 15) */
                fprintf(f, "  offers %lld MiB", (long long)sqlite3_column_int64(st, 5));
            fprintf(f, "\n");
            (void)job;
            nw++;
        }
        sqlite3_finalize(st);
    }
    if (!nw) fprintf(f, "  (none has connected in the last 10 minutes)\n");
    if (k.pending > 0) {
        fprintf(f, "why pending jobs wait:\n");
        if (k.blocked) fprintf(f, "  %lld wait on a dependency that is not done yet\n", (long long)k.blocked);
        int64_t runnable = k.pending - k.blocked;
        runnable -= print_unfit(js, f, alive);
        if (runnable < 0) runnable = 0;
        if (runnable > 0) {
            if (alive == 0) fprintf(f, "  %lld are runnable but no worker is connected (start `cisweep worker`)\n", (long long)runnable);
            else if (busy >= alive) fprintf(f, "  %lld are runnable and wait for a free worker (%d of %d busy)\n", (long long)runnable, busy, alive);
            else fprintf(f, "  %lld are runnable; idle workers will get them on their next READY\n", (long long)runnable);
        }
        int64_t retried = q1(db, "SELECT count(*) FROM jobs WHERE state='pending' AND spent > 0", 0);
        if (retried) fprintf(f, "  %lld of them are retries after a failed or lost attempt\n", (long long)retried);
    }
    if (k.failed + k.dead > 0)
        fprintf(f, "failures: %lld failed, %lld dead (see the v_failures view; `cisweep retry --failed` to rerun)\n",
                (long long)k.failed, (long long)k.dead);
    /* workers turned away for another results epoch in the last hour (coordinator.c on_hello): they
     * exit, so they no longer show above; say why they are missing */
    int64_t refused = q1(db, "SELECT count(DISTINCT worker_id) FROM events WHERE kind = 'refused' AND "
                         "detail LIKE 'results epoch %' AND ts >= ?1", now - 3600 * 1000LL);
    if (refused > 0)
        fprintf(f, "refused: %lld workers of another results epoch in the last hour (built from other sources "
                "than the coordinator; `SELECT worker_id, detail FROM events WHERE kind = 'refused'`)\n",
                (long long)refused);
    js_stale stale;   /* docs/orchestration.md "Results epoch" */
    if (js_stale_jobs(js, NULL, CISWEEP_RESULTS_EPOCH, &stale, &err)) fprintf(stderr, "cisweep status: %s\n", err.msg);
    else if (stale.n > 0)
        fprintf(f, "stale: %lld done jobs hold results of another results epoch than this build's %d (by epoch: %s); "
                "`cisweep run ... --rerun-stale` or `cisweep retry --db DB --stale --sweep NAME` recomputes a sweep's\n", (long long)stale.n, CISWEEP_RESULTS_EPOCH,
                stale.epochs);
    return 0;
}

static volatile sig_atomic_t g_int = 0;
static void on_int(int s) { (void)s; g_int = 1; }

int cmd_status(int argc, char **argv) {
    const char *db = NULL;
    int64_t watch = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && n) { db = n; i++; }
        else if (!strcmp(a, "--watch")) {
            watch = 2;
            int64_t v;
            if (n && parse_i64(n, &v)) { if (v < 1) { fprintf(stderr, "cisweep status: --watch SECONDS must be >= 1\n"); return 2; } watch = v; i++; }
        } else { fprintf(stderr, "cisweep status: unknown or incomplete option \"%s\"\n", a); return 2; }
    }
    if (!db) { fprintf(stderr, "cisweep status: --db DB is required\n"); return 2; }
    cis_err err = {0};
    job_store *js = NULL;
    if (job_store_open(db, JS_READONLY, &js, &err)) { fprintf(stderr, "cisweep status: %s\n", err.msg); return 1; }
    int rc = 0;
    if (!watch) rc = print_status(js, stdout);
    else {
        signal(SIGINT, on_int);
        while (!g_int) {
            printf("\033[H\033[2J");
            char ts[40];
            printf("cisweep status %s  (every %llds, Ctrl-C to stop)\n", fmt_time_ms(now_ms(), ts, sizeof ts), (long long)watch);
            if ((rc = print_status(js, stdout))) break;
            fflush(stdout);
            for (int64_t t = 0; t < watch * 10 && !g_int; t++) sleep_ms(100);
        }
    }
    job_store_close(&js);
    return rc;
}
