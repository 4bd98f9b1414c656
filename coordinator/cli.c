/* cli.c - the sweep subcommands of `cisweep`: launch, coordinator/resume, retry, cancel, export.
 * (grid: cmd_grid.c; status: cmd_status.c; run: cmd_run.c.) */
#include "coordinator/cli.h"
#include "common/curve.h"
#include "coordinator/coordinator.h"
#include "coordinator/grid.h"
#include "coordinator/job_store.h"
#include "coordinator/model_presets.h"
#include "common/fs_check.h"
#include "common/log.h"
#include "common/version.h"

#include <jansson.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char *cli_sibling_path(const char *name) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return xstrdup(name);
    self[n] = 0;
    return xasprintf("%s/%s", dirname(self), name);
}

static int need(const char *cmd, const char *flag, const char *v) {
    if (v) return 0;
    fprintf(stderr, "cisweep %s: %s is required (see cisweep --help)\n", cmd, flag);
    return 2;
}

/* an integer option in [lo, INT_MAX] (all of them end in an int or are milliseconds that must fit
 * one): a value that overflows is refused, never truncated (--lease-ms 4294967396 is not 100) */
static int int_opt(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t *out) {
    if (v && parse_i64(v, out) && *out >= lo && *out <= INT_MAX) return 0;
    fprintf(stderr, "cisweep %s: %s expects an integer from %lld to %d, got \"%s\"\n", cmd, flag, (long long)lo, INT_MAX,
            v ? v : "");
    return 2;
}

/* `base`/`rel`, with base made absolute against the working directory when it is relative */
static char *join_models_dir(const char *base, const char *rel) {
    char cwd[PATH_MAX];
    size_t n = strlen(base);
    while (n > 1 && base[n - 1] == '/') n--;
    if (base[0] == '/' || !getcwd(cwd, sizeof cwd)) return xasprintf("%.*s/%s", (int)n, base, rel);
    return xasprintf("%s/%.*s/%s", cwd, (int)n, base, rel);
}

/* models map: {"slot": "path"} or {"slot": {"path": "...", "presets": {...}, ...}}; validated here
 * (presets: model_presets.h) so that launch refuses a bad file before touching the DB. With models_dir (--models-dir DIR), a relative path
 * becomes DIR/path, absolute (so that every worker and every later launch read the same string:
 * cross-sweep reuse compares models.path); without it, paths are stored as written. */
static char *load_models_map(const char *path, const char *models_dir, cis_err *err) {
    char *text = read_file(path, NULL, err);
    if (!text) return NULL;
    json_error_t je;
    json_t *m = json_loads(text, 0, &je);
    free(text);
    if (!m) { err_set(err, CIS_EINVAL, "%s:%d:%d: %s", path, je.line, je.column, je.text); return NULL; }
    if (!json_is_object(m)) { json_decref(m); err_set(err, CIS_EINVAL, "%s: $: expected an object {\"slot\": \"path\"}", path); return NULL; }
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        json_t *pv = json_is_object(v) ? json_object_get(v, "path") : v;
        if (!json_is_string(pv) || !*json_string_value(pv)) {
            err_set(err, CIS_EINVAL, "%s: $.%s: expected a non-empty path string or an object with a non-empty "
                    "\"path\" string (and optionally \"presets\": {\"method\": {\"param\": value}})", path, k);
            json_decref(m); /* after: k lives in m */
            return NULL;
        }
        if (models_dir && json_string_value(pv)[0] != '/') {
            char *full = join_models_dir(models_dir, json_string_value(pv));
            if (json_is_object(v)) json_object_set_new(v, "path", json_string(full));
            else json_object_set_new(m, k, json_string(full));
            free(full);
        }
    }
    if (model_presets_check(m, path, err)) { json_decref(m); return NULL; }
    char *out = json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(m);
    return out;
}

/* jobs of the sweep called name in the DB; -1 when there is no such sweep */
static int64_t sweep_jobs(job_store *js, const char *name) {
    sqlite3_stmt *st = NULL;
    int64_t n = -1;
    if (sqlite3_prepare_v2(job_store_db(js), "SELECT (SELECT count(*) FROM jobs j WHERE j.sweep_id = s.id) FROM sweeps s "
                           "WHERE s.name = ?1", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

int cmd_launch(int argc, char **argv) {
    const char *db = NULL, *gridf = NULL, *models = NULL, *models_dir = NULL, *name = NULL;
    unsigned flags = 0;
    bool extend = false, no_reuse = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && n) { db = n; i++; }
        else if (!strcmp(a, "--grid") && n) { gridf = n; i++; }
        else if (!strcmp(a, "--no-reuse")) no_reuse = true;
        else if (!strcmp(a, "--models") && n) { models = n; i++; }
        else if (!strcmp(a, "--models-dir") && n) { models_dir = n; i++; }
        else if (!strcmp(a, "--name") && n) { name = n; i++; }
        else if (!strcmp(a, "--allow-selftest")) flags |= GRID_ALLOW_SELFTEST;
        else if (!strcmp(a, "--allow-huge-grid")) flags |= GRID_ALLOW_HUGE;
        else if (!strcmp(a, "--extend")) extend = true;
        else { fprintf(stderr, "cisweep launch: unknown or incomplete option \"%s\"\n", a); return 2; }
    }
    int rc;
    if ((rc = need("launch", "--db DB", db)) || (rc = need("launch", "--grid FILE", gridf))) return rc;
    if (models_dir && !models) {
        fprintf(stderr, "cisweep launch: --models-dir DIR resolves the relative paths of a models map: give one "
                "with --models MAP\n");
        return 2;
    }
    if (models_dir && !*models_dir) { fprintf(stderr, "cisweep launch: --models-dir: expected a directory\n"); return 2; }
    cis_err err = {0};
    grid *g = NULL;
    if (grid_load(gridf, flags, &g, &err)) { fprintf(stderr, "cisweep launch: %s\n", err.msg); return 2; }
    char *mj = NULL;
    if (models && !(mj = load_models_map(models, models_dir, &err))) {
        fprintf(stderr, "cisweep launch: %s\n", err.msg);
        grid_free(&g);
        return 2;
    }
    if (mj) { /* the slots' presets into their compositions: the stored spec is what runs */
        json_t *map = json_loads(mj, 0, NULL);
        int prc = model_presets_apply(g, map, models, &err);
        json_decref(map);
        if (prc) {
            fprintf(stderr, "cisweep launch: %s\n", err.msg);
            grid_free(&g);
            free(mj);
            return 2;
        }
    }
    job_store *js = NULL;
    if (job_store_open(db, JS_CREATE, &js, &err)) {
        fprintf(stderr, "cisweep launch: %s\n", err.msg);
        grid_free(&g); free(mj);
        return err.code == CIS_EVERSION ? 2 : 1;
    }
    js_launch_stats st = {0};
    /* a sweep name already in the DB: relaunching its grid adds nothing; a different grid (one that
     * would add jobs to it) is refused unless --extend says that is what the user wants */
    const char *sname = name ? name : g->name;
    int64_t existing = sweep_jobs(js, sname);
    rc = js_begin(js, &err);
    if (!rc) rc = js_launch_ex(js, g, name, mj, now_ms(), no_reuse ? JS_LAUNCH_NO_REUSE : 0, &st, &err);
    /* the same work (model path and config, composition, seed) not yet done in another sweep: two
     * sweeps would run it twice; say so and change nothing unless --no-reuse says that is wanted */
    if (!rc && st.jobs_shared_inflight > 0 && !no_reuse) {
        js_rollback(js);
        fprintf(stderr, "cisweep launch: %d of the %d jobs %s would add to %s are the same work (model path, composition, "
                "edit set or seed) as jobs of sweep \"%s\" that are not done yet (pending or leased); launching now "
                "would run them twice. Nothing was changed.\n---> HINT: let \"%s\" finish and launch again (its results "
                "are then reused, not recomputed), or pass --no-reuse to run them in both sweeps\n",
                st.jobs_shared_inflight, st.jobs_added, gridf, db, st.inflight_sweep, st.inflight_sweep);
        job_store_close(&js);
        grid_free(&g);
        free(mj);
        return 2;
    }
    if (!rc && existing >= 0 && st.jobs_added > 0 && !extend) {
        js_rollback(js);
        fprintf(stderr, "cisweep launch: %s already has a sweep \"%s\" (%lld jobs); %s would add %d jobs to it. "
                "Nothing was changed.\n---> HINT: pass --extend to add them to \"%s\", or --name NEW for a new sweep\n",
                db, sname, (long long)existing, gridf, st.jobs_added, sname);
        job_store_close(&js);
        grid_free(&g);
        free(mj);
        return 2;
    }
    if (!rc) rc = js_commit(js, &err);
    else js_rollback(js);
    if (rc) fprintf(stderr, "cisweep launch: %s\n", err.msg);
    else
        printf("sweep %s (id %lld) in %s: %d compositions added, %d already there; %d jobs added, %d already there\n",
               name ? name : g->name, (long long)st.sweep_id, db, st.comps_added, st.comps_existing, st.jobs_added,
               st.jobs_existing);
    if (!rc && st.prereqs_added + st.prereqs_existing > 0)
        printf("%d statistics jobs added, %d already there (MEMIT's second moments of each base model, computed once "
               "into the artifact cache; the MEMIT jobs wait for them)\n", st.prereqs_added, st.prereqs_existing);
    if (!rc && st.jobs_shared > 0) {
        if (no_reuse)
            printf("%d of the added jobs are the same work as jobs of other sweeps (e.g. \"%s\"); --no-reuse: they "
                   "run again\n", st.jobs_shared, st.shared_sweep);
        else
            printf("%d of the added jobs are the same work as jobs of other sweeps (e.g. \"%s\"): %d reused (their "
                   "results copied, done now), %d to run (the other sweep's job failed or was cancelled), %d to run "
                   "(not reused: the other sweep's result is of another results epoch than this build's %d, i.e. "
                   "computed under older presets or algorithms)\n",
                   st.jobs_shared, st.shared_sweep, st.jobs_reused, st.jobs_shared_unfinished, st.jobs_shared_stale,
                   CISWEEP_RESULTS_EPOCH);
    }
    job_store_close(&js);
    grid_free(&g);
    free(mj);
    return rc ? 1 : 0;
}

static volatile int *g_reload;
static void on_hup(int sig) { (void)sig; if (g_reload) *g_reload = 1; }

/* `cisweep keygen NAME...`: a CURVE key pair per NAME, in NAME.pub and NAME.key (0600) */
int cmd_keygen(int argc, char **argv) {
    bool help = argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"));
    if (help || argc < 2 || argv[1][0] == '-') {
        fprintf(help ? stdout : stderr, "usage: cisweep keygen NAME...   (writes NAME.pub and NAME.key; e.g. "
                "keys/coordinator, keys/workers/gpu-node-1)\n");
        return help ? 0 : 2;
    }
    for (int i = 1; i < argc; i++) {
        cis_err err = {0};
        if (curve_keygen(argv[i], &err)) { fprintf(stderr, "cisweep keygen: %s\n", err.msg); return 1; }
        printf("%s.key (secret, mode 0600) and %s.pub written\n", argv[i], argv[i]);
    }
    return 0;
}

int cli_stale_refusal(const char *cmd, const char *db) {
    cis_err err = {0};
    job_store *js = NULL;
    js_stale k = {0};
    if (job_store_open(db, 0, &js, &err) || js_stale_unfinished(js, CISWEEP_RESULTS_EPOCH, &k, &err)) {
        fprintf(stderr, "cisweep %s: %s\n", cmd, err.msg);
        job_store_close(&js);
        return err.code == CIS_EVERSION ? 2 : 1;
    }
    job_store_close(&js);
    if (k.n == 0) return 0;
    fprintf(stderr, "cisweep %s: %s: %lld done jobs hold results of another results epoch than this build's %d, in "
            "sweeps that still have jobs to run (by sweep: %s); serving them would complete those sweeps with results "
            "of other presets or algorithms. Nothing was started.\n---> HINT: `cisweep retry --db %s --stale --sweep "
            "NAME` puts a sweep's back to pending to be recomputed by this build (their old attempts stay in the "
            "database; without --sweep, every sweep's), or serve the database with the build that started it\n",
            cmd, db, (long long)k.n, CISWEEP_RESULTS_EPOCH, k.epochs, db);
    return 2;
}

int cmd_coordinator(int argc, char **argv) {
    coord_opts o;
    coord_opts_defaults(&o);
    int64_t v;
    int rc;
    bool allow_network_db = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && n) { o.db_path = n; i++; }
        else if (!strcmp(a, "--bind") && n) { o.bind = n; i++; }
        else if (!strcmp(a, "--heartbeat-ms")) { if ((rc = int_opt(argv[0], a, n, 10, &v))) return rc; o.heartbeat_ms = (int)v; i++; }
        else if (!strcmp(a, "--liveness")) { if ((rc = int_opt(argv[0], a, n, 1, &v))) return rc; o.liveness = (int)v; i++; }
        else if (!strcmp(a, "--lease-ms")) { if ((rc = int_opt(argv[0], a, n, 10, &v))) return rc; o.lease_ms = (int)v; i++; }
        else if (!strcmp(a, "--resume-grace-ms")) { if ((rc = int_opt(argv[0], a, n, 0, &v))) return rc; o.resume_grace_ms = (int)v; i++; }
        else if (!strcmp(a, "--quarantine-after")) { if ((rc = int_opt(argv[0], a, n, 1, &v))) return rc; o.quarantine_after = (int)v; i++; }
        else if (!strcmp(a, "--job-timeout-ms")) { if ((rc = int_opt(argv[0], a, n, 0, &v))) return rc; o.job_timeout_ms = v; i++; }
        else if (!strcmp(a, "--exit-when-done")) o.exit_when_done = true;
        else if (!strcmp(a, "--curve-key") && n) { o.curve_key = n; i++; }
        else if (!strcmp(a, "--allow-keys") && n) { o.allow_keys = n; i++; }
        else if (!strcmp(a, "--insecure-bind-any")) o.insecure_bind_any = true;
        else if (!strcmp(a, "--nosync")) o.nosync = true;
        else if (!strcmp(a, "--allow-network-db")) allow_network_db = true;   /* issue 15: common/fs_check.h */
        else if (!strcmp(a, "--log-level") && n) {
            int l = log_level_parse(n);
            if (l < 0) { fprintf(stderr, "cisweep %s: --log-level expects debug|info|warn|error\n", argv[0]); return 2; }
            log_set_level((enum log_level)l); i++;
        } else { fprintf(stderr, "cisweep %s: unknown or incomplete option \"%s\"\n", argv[0], a); return 2; }
    }
    if ((rc = need(argv[0], "--db DB", o.db_path)) || (rc = need(argv[0], "--bind ENDPOINT", o.bind))) return rc;
    if (access(o.db_path, F_OK) != 0) {
        fprintf(stderr, "cisweep %s: no sweep database at %s\n---> HINT: create it with `cisweep launch --db %s --grid FILE`\n",
                argv[0], o.db_path, o.db_path);
        return 2;
    }
    cis_err ferr = {0};
    if (fs_check_db_local(o.db_path, allow_network_db, &ferr)) { fprintf(stderr, "cisweep %s: %s\n", argv[0], ferr.msg); return 2; }
    if ((rc = cli_stale_refusal(argv[0], o.db_path))) return rc;
    static volatile int stop = 0;
    coord_install_signals(&stop);
    o.stop_flag = &stop;
    if (o.allow_keys) {
        /* with an allow-list, SIGHUP reloads it (instead of stopping) */
        static volatile int reload = 0;
        g_reload = &reload;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_hup;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGHUP, &sa, NULL);
        o.reload_flag = &reload;
    }
    cis_err err = {0};
    if (coordinator_run(&o, &err)) {
        LOG_E("%s", err.msg);
        return err.code == CIS_EVERSION || err.code == CIS_EINVAL ? 2 : 1;
    }
    return 0;
}

int cmd_retry(int argc, char **argv) {
    const char *db = NULL, *where = NULL, *sweep = NULL;
    bool failed = false, stale = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && n) { db = n; i++; }
        else if (!strcmp(a, "--where") && n) { where = n; i++; }
        else if (!strcmp(a, "--failed")) failed = true;
        else if (!strcmp(a, "--stale")) stale = true;
        else if (!strcmp(a, "--sweep") && n) { sweep = n; i++; }
        else { fprintf(stderr, "cisweep retry: unknown or incomplete option \"%s\"\n", a); return 2; }
    }
    int rc;
    if ((rc = need("retry", "--db DB", db))) return rc;
    if (sweep && !stale) { fprintf(stderr, "cisweep retry: --sweep NAME goes with --stale\n"); return 2; }
    if (!failed && !where && !stale) {
        fprintf(stderr, "cisweep retry: say which jobs: --failed, --stale or --where SQL\n");
        return 2;
    }
    if (stale && (failed || where)) {
        fprintf(stderr, "cisweep retry: --stale (the done jobs of another results epoch, in every sweep or in "
                "--sweep NAME) takes no --failed or --where\n");
        return 2;
    }
    cis_err err = {0};
    job_store *js = NULL;
    if (job_store_open(db, 0, &js, &err)) { fprintf(stderr, "cisweep retry: %s\n", err.msg); return 1; }
    if (stale) { /* docs/orchestration.md "Results epoch" */
        js_stale k = {0};
        int n = js_stale_jobs(js, sweep, CISWEEP_RESULTS_EPOCH, &k, &err) ? -1
                                                                            : js_rerun_stale(js, sweep, CISWEEP_RESULTS_EPOCH, now_ms(), &err);
        job_store_close(&js);
        if (n < 0) { fprintf(stderr, "cisweep retry: %s\n", err.msg); return 1; }
        if (n) printf("%d done jobs of results epoch %s back to pending (to be recomputed under epoch %d; their old "
                      "attempts stay in %s)\n", n, k.epochs, CISWEEP_RESULTS_EPOCH, db);
        else printf("0 jobs back to pending: every done job holds results of this build's epoch %d\n", CISWEEP_RESULTS_EPOCH);
        return 0;
    }
    int n = js_retry(js, failed, where, now_ms(), &err);
    job_store_close(&js);
    if (n < 0) { fprintf(stderr, "cisweep retry: %s\n", err.msg); return err.code == CIS_EINVAL ? 2 : 1; }
    printf("%d jobs back to pending\n", n);
    return 0;
}

int cmd_cancel(int argc, char **argv) {
    const char *db = NULL, *where = NULL;
    bool all = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && n) { db = n; i++; }
        else if (!strcmp(a, "--where") && n) { where = n; i++; }
        else if (!strcmp(a, "--all")) all = true;
        else { fprintf(stderr, "cisweep cancel: unknown or incomplete option \"%s\"\n", a); return 2; }
    }
    int rc;
    if ((rc = need("cancel", "--db DB", db))) return rc;
    if (!all && !where) { fprintf(stderr, "cisweep cancel: say which jobs: --where SQL or --all\n"); return 2; }
    cis_err err = {0};
    job_store *js = NULL;
    if (job_store_open(db, 0, &js, &err)) { fprintf(stderr, "cisweep cancel: %s\n", err.msg); return 1; }
    js_lease *leased = NULL;
    int nl = 0;
    int n = js_cancel(js, all ? NULL : where, now_ms(), &leased, &nl, &err);
    job_store_close(&js);
    free(leased);
    if (n < 0) { fprintf(stderr, "cisweep cancel: %s\n", err.msg); return err.code == CIS_EINVAL ? 2 : 1; }
    printf("%d jobs cancelled (%d were running: their workers stop them at the next heartbeat)\n", n, nl);
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *db = NULL, *fmt = "csv", *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && n) { db = n; i++; }
        else if (!strcmp(a, "--format") && n) { fmt = n; i++; }
        else if (!strcmp(a, "--out") && n) { out = n; i++; }
        else { fprintf(stderr, "cisweep export: unknown or incomplete option \"%s\"\n", a); return 2; }
    }
    int rc;
    if ((rc = need("export", "--db DB", db))) return rc;
    if (strcmp(fmt, "csv")) { fprintf(stderr, "cisweep export: --format must be csv (got \"%s\")\n", fmt); return 2; }
    cis_err err = {0};
    job_store *js = NULL;
    if (job_store_open(db, JS_READONLY, &js, &err)) { fprintf(stderr, "cisweep export: %s\n", err.msg); return 1; }
    FILE *f = out ? fopen(out, "w") : stdout;
    if (!f) { fprintf(stderr, "cisweep export: cannot write %s: %m\n", out); job_store_close(&js); return 1; }
    rc = js_export_csv(js, f, &err);
    if (out) fclose(f);
    job_store_close(&js);
    if (rc) { fprintf(stderr, "cisweep export: %s\n", err.msg); return 1; }
    return 0;
}
