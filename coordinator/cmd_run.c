/* cmd_run.c - `cisweep run --grid FILE --workers N`: the local launcher. Launches the grid into a
 * sweep DB (idempotent: running it again resumes), starts a coordinator in this process and N
 * `cisweep-worker worker` processes on an ipc endpoint (or the --bind endpoint), restarts a worker
 * that dies (a job that crashes its worker is then quarantined by the coordinator, not retried
 * forever), and when no job is pending or leased stops the workers (SIGTERM), prints a summary
 * and exits non-zero if any job ended failed or dead. */
#include "coordinator/cli.h"
#include "coordinator/coordinator.h"
#include "coordinator/grid.h"
#include "coordinator/job_store.h"
#include "common/log.h"
#include "common/version.h"

#include <limits.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct run_ctx {
    int n;
    pid_t *pids;
    char **argv;             /* worker argv template (NULL-terminated); argv[idx_cache] per worker */
    int idx_cache;
    char *cache_root;
    volatile int stopping;
    int restarts, max_restarts;
    pthread_mutex_t mu;
} run_ctx;

static pid_t spawn_worker(run_ctx *r, int k) {
    char cache[4096];
    snprintf(cache, sizeof cache, "%s/w%d", r->cache_root, k);
    r->argv[r->idx_cache] = cache;
    pid_t p = fork();
    if (p == 0) {
        signal(SIGINT, SIG_IGN); /* Ctrl-C goes to the launcher, which stops workers with SIGTERM */
        execv(r->argv[0], r->argv);
        fprintf(stderr, "cisweep run: cannot exec %s: %s\n", r->argv[0], strerror(errno));
        _exit(127);
    }
    return p;
}

static void *supervise(void *arg) {
    run_ctx *r = arg;
    for (;;) {
        int status;
        pid_t p = waitpid(-1, &status, 0);
        if (p < 0) {
            if (errno == EINTR) continue;
            if (r->stopping) return NULL;
            sleep_ms(50);
            continue;
        }
        pthread_mutex_lock(&r->mu);
        for (int k = 0; k < r->n; k++) {
            if (r->pids[k] != p) continue;
            r->pids[k] = 0;
            if (!r->stopping) {
                if (WIFSIGNALED(status)) LOG_W("worker %d (pid %d) killed by signal %d", k, (int)p, WTERMSIG(status));
                else LOG_W("worker %d (pid %d) exited with status %d", k, (int)p, WEXITSTATUS(status));
                if (r->restarts < r->max_restarts) {
                    r->restarts++;
                    r->pids[k] = spawn_worker(r, k);
                    LOG_I("restarted worker %d as pid %d (%d restarts so far)", k, (int)r->pids[k], r->restarts);
                } else LOG_E("worker %d not restarted: %d restarts is the limit", k, r->max_restarts);
            }
        }
        bool any = false;
        for (int k = 0; k < r->n; k++) any |= r->pids[k] != 0;
        pthread_mutex_unlock(&r->mu);
        if (r->stopping && !any) return NULL;
    }
}

/* the progress line (--progress SECONDS): every period, the jobs finished, the rate since the
 * start and the ETA at that rate, read from the DB through a read-only connection */
typedef struct progress_ctx {
    const char *db;
    int period_s;
    volatile int stop;
} progress_ctx;

static void *progress_loop(void *arg) {
    progress_ctx *p = arg;
    int64_t t0 = mono_ms(), start_done = -1;
    while (!p->stop) {
        for (int i = 0; i < p->period_s * 10 && !p->stop; i++) sleep_ms(100);
        if (p->stop) break;
        cis_err err = {0};
        job_store *js = NULL;
        js_counts k;
        if (job_store_open(p->db, JS_READONLY, &js, &err) || js_count_states(js, &k, &err)) {
            job_store_close(&js);
            continue;
        }
        job_store_close(&js);
        int64_t finished = k.done + k.failed + k.dead + k.cancelled;
        if (start_done < 0) { start_done = finished; t0 = mono_ms(); continue; }   /* the rate counts this run only */
        double el = (mono_ms() - t0) / 1000.0, rate = el > 0 ? (finished - start_done) / el : 0;
        int64_t left = k.pending + k.leased;
        char eta[32] = "-";
        if (rate > 0) {
            int64_t s = (int64_t)(left / rate);
            snprintf(eta, sizeof eta, "%lld:%02lld:%02lld", (long long)(s / 3600), (long long)(s / 60 % 60), (long long)(s % 60));
        }
        printf("progress: %lld/%lld jobs finished (%.1f%%), %lld failed/dead, %lld running, %.2f jobs/s, ETA %s\n",
               (long long)finished, (long long)k.total, k.total ? 100.0 * finished / k.total : 0.0,
               (long long)(k.failed + k.dead), (long long)k.leased, rate, eta);
        fflush(stdout);
    }
    return NULL;
}

/* the results epoch guard (docs/orchestration.md "Results epoch"): the done jobs of the grid's
 * sweep in DB whose results are of another epoch than this build's. None: 0. Some: with
 * rerun_stale they go back to pending (js_rerun_stale) and 0; without, a message naming the count,
 * the epochs found and what to do, and 2 (nothing started). Errors: a message and 1. */
static int stale_guard(const char *db, const char *gridf, unsigned grid_flags, bool rerun_stale) {
    cis_err err = {0};
    grid *g = NULL;
    if (grid_load(gridf, grid_flags, &g, &err)) { fprintf(stderr, "cisweep run: %s\n", err.msg); return 1; }
    job_store *js = NULL;
    js_stale k = {0};
    int rc = 0;
    if (job_store_open(db, 0, &js, &err) || js_stale_jobs(js, g->name, CISWEEP_RESULTS_EPOCH, &k, &err)) {
        fprintf(stderr, "cisweep run: %s\n", err.msg);
        rc = 1;
    } else if (k.n > 0 && !rerun_stale) {
        fprintf(stderr, "cisweep run: %s: %lld done jobs of sweep \"%s\" hold results of another results epoch than "
                "this build's %d (by epoch: %s; \"none\": from a build before the epoch was recorded), i.e. computed "
                "under older presets or algorithms; continuing would mix them with new results in one sweep's "
                "metrics. Nothing was started.\n---> HINT: pass --rerun-stale to put them back to pending and "
                "recompute them under the current presets (their old attempts stay in the database), or run this "
                "sweep with the build that started it, or start a new OUT/DB\n",
                db, (long long)k.n, g->name, CISWEEP_RESULTS_EPOCH, k.epochs);
        rc = 2;
    } else if (k.n > 0) {
        int n = js_rerun_stale(js, g->name, CISWEEP_RESULTS_EPOCH, now_ms(), &err);
        if (n < 0) { fprintf(stderr, "cisweep run: %s\n", err.msg); rc = 1; }
        else printf("--rerun-stale: %d done jobs of results epoch %s put back to pending (to recompute under epoch %d; "
                    "their old attempts stay in %s)\n", n, k.epochs, CISWEEP_RESULTS_EPOCH, db);
    }
    job_store_close(&js);
    grid_free(&g);
    return rc;
}

static void summary(const char *db_path) {
    cis_err err = {0};
    job_store *js = NULL;
    if (job_store_open(db_path, JS_READONLY, &js, &err)) { LOG_E("%s", err.msg); return; }
    js_counts k;
    if (js_count_states(js, &k, &err) == 0)
        printf("summary: %lld jobs: %lld done, %lld failed, %lld dead, %lld cancelled, %lld pending, %lld leased\n",
               (long long)k.total, (long long)k.done, (long long)k.failed, (long long)k.dead, (long long)k.cancelled,
               (long long)k.pending, (long long)k.leased);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(job_store_db(js),
                           "SELECT j.id, j.state, c.label, coalesce(j.last_error,'') FROM jobs j JOIN compositions c "
                           "ON c.id=j.composition_id WHERE j.state IN ('failed','dead') ORDER BY j.id LIMIT 20",
                           -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW)
            printf("  job %lld %s: %s: %s\n", (long long)sqlite3_column_int64(st, 0), sqlite3_column_text(st, 1),
                   sqlite3_column_text(st, 2), sqlite3_column_text(st, 3));
        sqlite3_finalize(st);
    }
    sqlite3_stmt *pt;
    if (sqlite3_prepare_v2(job_store_db(js),
                           "SELECT c.pattern, count(*), sum(j.state='done') FROM jobs j JOIN compositions c ON "
                           "c.id=j.composition_id GROUP BY c.pattern ORDER BY c.pattern", -1, &pt, NULL) == SQLITE_OK) {
        printf("by pattern (jobs done/total):");
        while (sqlite3_step(pt) == SQLITE_ROW)
            printf(" %s %lld/%lld;", sqlite3_column_text(pt, 0), (long long)sqlite3_column_int64(pt, 2),
                   (long long)sqlite3_column_int64(pt, 1));
        printf("\n");
        sqlite3_finalize(pt);
    }
    job_store_close(&js);
}

/* the grid form's options (cisweep run --grid FILE --help; the study's own are cmd_study.c's) */
static void run_grid_usage(FILE *f) {
    fputs("usage: cisweep run --grid FILE [--workers N] [--slots N] [--db DB] [--models MAP.json] [--models-dir DIR]\n"
          "                   [--data DIR] [--cache DIR] [--artifacts DIR] [--device cpu|cuda:K] [--threads N]\n"
          "                   [--eval-limit N] [--eval-profile sweep|default|paper] [--mc-prompt 0.4.2|0.4.4] [--eval-open]\n"
          "                   [--eval-cloze]\n"
          "                   [--stage-evals N] [--snapshot-mb N] [--skip-missing-data] [--allow-selftest] [--nosync]\n"
          "                   [--progress S] [--heartbeat-ms N] [--lease-ms N] [--quarantine-after N] [--job-timeout-ms N]\n"
          "                   [--rerun-stale]\n"
          "  the local launcher: launches FILE into DB (default sweep.db; idempotent, as `cisweep launch`), starts a\n"
          "  coordinator on an ipc socket and N local workers (default 1), and runs the sweep to completion.\n"
          "  --models takes a file: a JSON object from each model slot of the grid to a checkpoint directory\n"
          "  (or {\"path\": DIR, \"presets\": {...}}); --models-dir DIR resolves that map's relative paths.\n"
          "  To add compositions to an existing store, `cisweep launch --db DB --grid FILE --extend` first.\n"
          "  A sweep whose done jobs hold results of another results epoch (an older build's presets) is not\n"
          "  continued: --rerun-stale puts those jobs back to pending to recompute them.\n"
          "  docs/orchestration.md has the rest; `cisweep run --help` is the study end to end.\n", f);
}

int cmd_run(int argc, char **argv) {
    bool has_grid = false, help = false;
    for (int i = 1; i < argc; i++) {
        has_grid |= !strcmp(argv[i], "--grid");
        help |= !strcmp(argv[i], "-h") || !strcmp(argv[i], "--help");
    }
    if (!has_grid) return cmd_study(argc, argv);   /* no grid: the study end to end (cmd_study.c) */
    if (help) { run_grid_usage(stdout); return 0; }
    const char *gridf = NULL, *db = "sweep.db", *bind = NULL, *device = "cpu", *cache = "cisweep-cache", *models = NULL,
               *models_dir = NULL, *data = NULL, *threads = NULL, *eval_limit = NULL, *artifacts = NULL,
               *eval_profile = NULL, *mc_prompt = NULL, *stage_evals = NULL, *snapshot_mb = NULL;
    int64_t nworkers = 1, hb = 1000, v, slots = 0, progress_s = 0;
    unsigned flags = 0;
    bool skip_missing_data = false, rerun_stale = false, eval_open = false, eval_cloze = false;
    coord_opts o;
    coord_opts_defaults(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--grid") && n) { gridf = n; i++; }
        else if (!strcmp(a, "--db") && n) { db = n; i++; }
        else if (!strcmp(a, "--bind") && n) { bind = n; i++; }
        else if (!strcmp(a, "--device") && n) { device = n; i++; }
        else if (!strcmp(a, "--cache") && n) { cache = n; i++; }
        else if (!strcmp(a, "--models") && n) { models = n; i++; }
        else if (!strcmp(a, "--models-dir") && n) { models_dir = n; i++; }
        else if (!strcmp(a, "--data") && n) { data = n; i++; }
        else if (!strcmp(a, "--artifacts") && n) { artifacts = n; i++; }
        else if (!strcmp(a, "--eval-limit") && n && parse_i64(n, &v) && v >= 0) { eval_limit = n; i++; }
        else if (!strcmp(a, "--stage-evals") && n && parse_i64(n, &v) && v >= 0) { stage_evals = n; i++; }
        else if (!strcmp(a, "--threads") && n && parse_i64(n, &v) && v >= 0) { threads = n; i++; }
        else if (!strcmp(a, "--snapshot-mb") && n && parse_i64(n, &v) && v >= 0 && v <= INT_MAX) { snapshot_mb = n; i++; }
        else if (!strcmp(a, "--skip-missing-data")) skip_missing_data = true;
        else if (!strcmp(a, "--eval-open")) eval_open = true;
        else if (!strcmp(a, "--eval-cloze")) eval_cloze = true;
        else if (!strcmp(a, "--rerun-stale")) rerun_stale = true;
        else if (!strcmp(a, "--eval-profile") && n && (!strcmp(n, "default") || !strcmp(n, "paper") || !strcmp(n, "sweep"))) { eval_profile = n; i++; }
        else if (!strcmp(a, "--mc-prompt") && n && (!strcmp(n, "0.4.2") || !strcmp(n, "0.4.4"))) { mc_prompt = n; i++; }
        else if (!strcmp(a, "--allow-selftest")) flags |= GRID_ALLOW_SELFTEST;
        else if (!strcmp(a, "--nosync")) o.nosync = true;
        else if (!strcmp(a, "--progress") && n && parse_i64(n, &progress_s) && progress_s >= 1 && progress_s <= 86400) i++;
        else if (!strcmp(a, "--workers") && n && parse_i64(n, &nworkers) && nworkers >= 1 && nworkers <= 1024) i++;
        else if (!strcmp(a, "--slots") && n && parse_i64(n, &slots) && slots >= 1 && slots <= 8) i++;
        else if (!strcmp(a, "--heartbeat-ms") && n && parse_i64(n, &hb) && hb >= 10 && hb <= INT_MAX) { o.heartbeat_ms = (int)hb; i++; }
        else if (!strcmp(a, "--lease-ms") && n && parse_i64(n, &v) && v >= 10 && v <= INT_MAX) { o.lease_ms = (int)v; i++; }
        else if (!strcmp(a, "--quarantine-after") && n && parse_i64(n, &v) && v >= 1 && v <= INT_MAX) { o.quarantine_after = (int)v; i++; }
        else if (!strcmp(a, "--job-timeout-ms") && n && parse_i64(n, &v) && v >= 0) { o.job_timeout_ms = v; i++; }
        else { fprintf(stderr, "cisweep run: unknown, incomplete or invalid option \"%s\"\n", a); return 2; }
    }
    if (!gridf) { fprintf(stderr, "cisweep run: --grid FILE is required\n"); return 2; }
    /* 1. launch (the same code path as `cisweep launch`) */
    char *largv[12];
    int lc = 0;
    largv[lc++] = "launch"; largv[lc++] = "--db"; largv[lc++] = (char *)db; largv[lc++] = "--grid"; largv[lc++] = (char *)gridf;
    if (models) { largv[lc++] = "--models"; largv[lc++] = (char *)models; }
    if (models_dir) { largv[lc++] = "--models-dir"; largv[lc++] = (char *)models_dir; }
    if (flags & GRID_ALLOW_SELFTEST) largv[lc++] = "--allow-selftest";
    largv[lc] = NULL;
    int rc = cmd_launch(lc, largv);
    if (rc) return rc;
    /* 1b. results of an older build's presets are not mixed with this build's (job_store_epoch.c) */
    if ((rc = stale_guard(db, gridf, flags, rerun_stale))) return rc;
    /* the coordinator below serves every sweep of the file: another sweep's stale jobs beside its
     * pending ones would be completed under this build's presets too (cli.c) */
    if ((rc = cli_stale_refusal("run", db))) return rc;
    /* 2. workers */
    char *ep = bind ? xstrdup(bind) : xasprintf("ipc:///tmp/cisweep-run-%d.sock", (int)getpid());
    o.bind = ep;
    o.db_path = db;
    o.exit_when_done = true;
    cis_err err = {0};
    if (mkdir_p(cache, &err)) { fprintf(stderr, "cisweep run: %s\n", err.msg); free(ep); return 1; }
    /* the artifact cache the local workers share (MEMIT's statistics, written by the sweep's
     * prerequisite jobs): --artifacts DIR, else CACHE/artifacts (each worker's --cache is its own) */
    char *artifacts_default = artifacts ? NULL : xasprintf("%s/artifacts", cache);
    if (!artifacts) artifacts = artifacts_default;
    run_ctx r;
    memset(&r, 0, sizeof r);
    pthread_mutex_init(&r.mu, NULL);
    r.n = (int)nworkers;
    r.pids = xcalloc((size_t)r.n, sizeof *r.pids);
    r.cache_root = xstrdup(cache);
    r.max_restarts = 3 * r.n + 10;
    char hbs[32];
    snprintf(hbs, sizeof hbs, "%d", o.heartbeat_ms);
    char slotss[32];
    snprintf(slotss, sizeof slotss, "%lld", (long long)slots);
    char *wargv[40];
    int wc = 0;
    wargv[wc++] = cli_sibling_path("cisweep-worker");
    wargv[wc++] = "worker"; wargv[wc++] = "--connect"; wargv[wc++] = ep; wargv[wc++] = "--device"; wargv[wc++] = (char *)device;
    wargv[wc++] = "--heartbeat-ms"; wargv[wc++] = hbs;
    wargv[wc++] = "--cache"; r.idx_cache = wc; wargv[wc++] = NULL;
    if (flags & GRID_ALLOW_SELFTEST) wargv[wc++] = "--selftest";
    if (slots) { wargv[wc++] = "--slots"; wargv[wc++] = slotss; }
    if (data) { wargv[wc++] = "--data"; wargv[wc++] = (char *)data; }
    if (artifacts) { wargv[wc++] = "--artifacts"; wargv[wc++] = (char *)artifacts; }
    if (threads) { wargv[wc++] = "--threads"; wargv[wc++] = (char *)threads; }
    if (eval_limit) { wargv[wc++] = "--eval-limit"; wargv[wc++] = (char *)eval_limit; }
    if (stage_evals) { wargv[wc++] = "--stage-evals"; wargv[wc++] = (char *)stage_evals; }
    if (skip_missing_data) wargv[wc++] = "--skip-missing-data";
    if (eval_open) wargv[wc++] = "--eval-open";
    if (eval_cloze) wargv[wc++] = "--eval-cloze";
    if (eval_profile) { wargv[wc++] = "--eval-profile"; wargv[wc++] = (char *)eval_profile; }
    if (mc_prompt) { wargv[wc++] = "--mc-prompt"; wargv[wc++] = (char *)mc_prompt; }
    if (snapshot_mb) { wargv[wc++] = "--snapshot-mb"; wargv[wc++] = (char *)snapshot_mb; }
    wargv[wc] = NULL;
    r.argv = wargv;
    pthread_mutex_lock(&r.mu);
    for (int k = 0; k < r.n; k++) r.pids[k] = spawn_worker(&r, k);
    pthread_mutex_unlock(&r.mu);
    pthread_t sup;
    pthread_create(&sup, NULL, supervise, &r);
    LOG_I("started %d worker(s) on %s", r.n, ep);
    /* 3. the coordinator, until every job is finished (or Ctrl-C) */
    static volatile int stop = 0;
    coord_install_signals(&stop);
    o.stop_flag = &stop;
    progress_ctx pc = {.db = db, .period_s = (int)progress_s};
    pthread_t prog;
    if (progress_s) pthread_create(&prog, NULL, progress_loop, &pc);
    int crc = coordinator_run(&o, &err);
    if (progress_s) { pc.stop = 1; pthread_join(prog, NULL); }
    if (crc) LOG_E("%s", err.msg);
    /* 4. stop the workers */
    pthread_mutex_lock(&r.mu);
    r.stopping = 1;
    for (int k = 0; k < r.n; k++) if (r.pids[k]) kill(r.pids[k], SIGTERM);
    pthread_mutex_unlock(&r.mu);
    int64_t deadline = mono_ms() + 15000;
    for (;;) {
        bool any = false;
        pthread_mutex_lock(&r.mu);
        for (int k = 0; k < r.n; k++) any |= r.pids[k] != 0;
        if (any && mono_ms() > deadline)
            for (int k = 0; k < r.n; k++) if (r.pids[k]) kill(r.pids[k], SIGKILL);
        pthread_mutex_unlock(&r.mu);
        if (!any) break;
        sleep_ms(20);
    }
    pthread_join(sup, NULL);
    if (str_starts(ep, "ipc://")) unlink(ep + 6);
    summary(db);
    js_counts k = {0};
    job_store *js = NULL;
    int bad = 1;
    if (job_store_open(db, JS_READONLY, &js, &err) == 0 && js_count_states(js, &k, &err) == 0)
        bad = (k.failed + k.dead) > 0 || k.pending + k.leased > 0;
    job_store_close(&js);
    free(ep);
    free(r.pids);
    free(r.cache_root);
    free(artifacts_default);
    free(wargv[0]);
    if (crc) return 1;
    if (stop) return 130;
    return bad ? 1 : 0;
}
