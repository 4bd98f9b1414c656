/* test_job_store.c - the SQLite job store on real files in a temporary directory: schema creation
 * and versions, launch idempotence, claim order (priority, affinity, id) and dependencies, leases
 * and heartbeats, results (current / duplicate / superseded), failures, preemption, quarantine,
 * resume, retry and cancel, read-only opens beside a live writer, and 200 jobs claimed and resolved
 * in batched commits (the 4,000-job timing of that loop is tests/bench/bench_job_store.c).
 *
 * `test_job_store make-db PATH` only writes a small finished sweep with known metrics to PATH (for
 * tests/coordinator/test_schema.py, which checks the views from Python) and exits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "coordinator/job_store.h"
#include "tests/testlib.h"

static char tmpdir[256];
static int dbn;

static char *new_db_path(void) { return xasprintf("%s/t%d.db", tmpdir, ++dbn); }

/* ---- hand-built grids ------------------------------------------------------------------------ */

static grid *grid_new(const char *name, int max_attempts) {
    grid *g = xcalloc(1, sizeof *g);
    g->path = xstrdup("grids/test.json");
    g->name = xstrdup(name);
    g->description = xstrdup("hand-built test grid");
    g->max_attempts = max_attempts;
    return g;
}

/* add a composition; n_edit_sets > 0 gives edit sets 1..n */
static void grid_add(grid *g, const char *model, const char *canonical, const char *pattern, const char *label,
                     int priority, int n_edit_sets) {
    g->comps = xrealloc(g->comps, (g->n_comps + 1) * sizeof *g->comps);
    grid_comp *c = &g->comps[g->n_comps++];
    memset(c, 0, sizeof *c);
    c->model = xstrdup(model);
    c->canonical = xstrdup(canonical);
    sha256_hex(canonical, strlen(canonical), c->key);
    c->pattern = xstrdup(pattern);
    c->label = xstrdup(label);
    c->priority = priority;
    c->n_edit_sets = n_edit_sets;
    if (n_edit_sets) {
        c->edit_sets = xmalloc(n_edit_sets * sizeof(int));
        for (int i = 0; i < n_edit_sets; i++) c->edit_sets[i] = i + 1;
    }
    g->n_jobs += n_edit_sets ? n_edit_sets : 1;
}

/* n single-stage compositions "selftest k" on model `model`, priority 0 */
static grid *grid_simple(int n, const char *model, int max_attempts) {
    grid *g = grid_new("simple", max_attempts);
    for (int k = 0; k < n; k++) {
        char can[96], lab[32];
        snprintf(can, sizeof can, "[{\"method\":\"selftest\",\"params\":{\"k\":%d}}]", k);
        snprintf(lab, sizeof lab, "selftest(k=%d)", k);
        grid_add(g, model, can, "selftest", lab, 0, 0);
    }
    return g;
}

/* ---- SQL helpers ----------------------------------------------------------------------------- */

static int64_t q_int(job_store *js, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q_int(job_store *js, const char *fmt, ...) {
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3_stmt *st = NULL;
    int64_t v = -999;
    if (sqlite3_prepare_v2(job_store_db(js), sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "  q_int(%s): %s\n", sql, sqlite3_errmsg(job_store_db(js)));
        return v;
    }
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *q_text(job_store *js, const char *sql) {
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    if (sqlite3_prepare_v2(job_store_db(js), sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "  q_text(%s): %s\n", sql, sqlite3_errmsg(job_store_db(js)));
        return xstrdup("(error)");
    }
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        v = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v ? v : xstrdup("(null)");
}

static void check_text(job_store *js, const char *sql, const char *want, int line) {
    TL_CHECKED();
    char *v = q_text(js, sql);
    if (strcmp(v, want)) {
        fprintf(stderr, "  line %d: %s -> \"%s\", expected \"%s\"\n", line, sql, v, want);
        tl_failed_cur = 1;
    }
    free(v);
}
#define CHECK_SQL_TEXT(js, sql, want) check_text((js), (sql), (want), __LINE__)

static void check_integrity(job_store *js) {
    CHECK_SQL_TEXT(js, "PRAGMA integrity_check", "ok");
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
    /* exactly one current set of rows per job: every current row belongs to the job's current attempt */
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id WHERE r.is_current = 1 "
                           "AND (j.state <> 'done' OR r.attempt <> j.current_attempt)"), 0);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM (SELECT job_id FROM results WHERE is_current = 1 GROUP BY job_id "
                           "HAVING count(DISTINCT attempt) > 1)"), 0);
    /* leased jobs have exactly one running attempt, the latest */
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs j WHERE j.state = 'leased' AND NOT EXISTS (SELECT 1 FROM "
                           "attempts a WHERE a.job_id = j.id AND a.attempt = j.attempt AND a.outcome = 'running')"), 0);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE a.outcome = 'running' "
                           "AND (j.state <> 'leased' OR a.attempt <> j.attempt)"), 0);
}

static job_store *open_new(char **path_out, unsigned extra) {
    char *p = new_db_path();
    job_store *js = NULL;
    cis_err err = {0};
    if (job_store_open(p, JS_CREATE | JS_NOSYNC | extra, &js, &err) < 0) {
        fprintf(stderr, "  open %s: %s\n", p, err.msg);
        free(p);
        return NULL;
    }
    if (path_out) *path_out = p;
    else free(p);
    return js;
}

/* open a new store and launch grid_simple(n) on it */
static job_store *open_launched(int n, int max_attempts, char **path_out) {
    job_store *js = open_new(path_out, 0);
    if (!js) return NULL;
    grid *g = grid_simple(n, "m1", max_attempts);
    cis_err err = {0};
    js_launch_stats st;
    int rc = js_launch(js, g, NULL, NULL, 1000, &st, &err);
    grid_free(&g);
    if (rc < 0) { fprintf(stderr, "  launch: %s\n", err.msg); job_store_close(&js); }
    return js;
}

static int claim(job_store *js, const char *w, const char *pref, int64_t now, js_job *j) {
    cis_err err = {0};
    int rc = js_claim(js, w, pref, now, 30000, j, &err);
    if (rc < 0) fprintf(stderr, "  claim: %s\n", err.msg);
    return rc;
}

static int result(job_store *js, int64_t id, int attempt, const char *w, double v, int64_t now, char other[256]) {
    js_metric m[2] = {{"mmlu", v}, {"avg_bits", 16}};
    int oc = 0;
    cis_err err = {0};
    if (js_record_result(js, id, attempt, w, m, 2, NULL, 0, 5, now, &oc, other, &err) < 0) {
        fprintf(stderr, "  result: %s\n", err.msg);
        return -1;
    }
    return oc;
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void test_create_open_reopen(void) {
    char *p;
    job_store *js = open_new(&p, 0);
    CHECK(js != NULL);
    if (!js) return;
    CHECK_EQ_INT(job_store_user_version(js), JOB_STORE_SCHEMA_VERSION);
    CHECK_EQ_INT(q_int(js, "PRAGMA user_version"), JOB_STORE_SCHEMA_VERSION);
    CHECK_SQL_TEXT(js, "PRAGMA journal_mode", "wal");
    CHECK_EQ_INT(q_int(js, "PRAGMA foreign_keys"), 1);
    CHECK_EQ_INT(q_int(js, "PRAGMA synchronous"), 1); /* NORMAL with JS_NOSYNC */
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('sweeps','models',"
                           "'compositions','jobs','attempts','results','workers','events','artifacts','dependencies',"
                           "'stages')"),
                 11);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name IN ('v_jobs','v_runs',"
                           "'v_progress','v_failures','v_results')"), 5);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM pragma_table_list WHERE schema = 'main' AND type = 'table' "
                           "AND name NOT LIKE 'sqlite_%%' AND strict = 0"), 0);
    job_store_close(&js);
    CHECK(js == NULL);
    job_store_close(&js); /* idempotent */
    cis_err err = {0};
    CHECK_EQ_INT(job_store_open(p, 0, &js, &err), 0); /* reopen, no CREATE, default FULL */
    if (js) {
        CHECK_EQ_INT(q_int(js, "PRAGMA synchronous"), 2);
        CHECK_EQ_INT(q_int(js, "PRAGMA busy_timeout"), 5000);
        job_store_close(&js);
    }
    char *missing = xasprintf("%s/missing.db", tmpdir);
    CHECK_EQ_INT(job_store_open(missing, 0, &js, &err), -1);
    CHECK(strstr(err.msg, "missing.db") != NULL);
    CHECK(access(missing, F_OK) != 0);
    free(missing);
    free(p);
}

static void test_launch_twice(void) {
    job_store *js = open_new(NULL, 0);
    if (!js) { CHECK(0); return; }
    grid *g = grid_new("g1", 3);
    grid_add(g, "m1", "[]", "baseline", "baseline", 0, 0);
    grid_add(g, "m1", "[{\"method\":\"memit\",\"params\":{}}]", "edit", "memit", 0, 3);
    grid_add(g, "m2", "[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}},{\"method\":\"memit\",\"params\":{}}]",
             "compress->edit", "wanda(0.25)->memit", 5, 2);
    cis_err err = {0};
    js_launch_stats st;
    CHECK_EQ_INT(js_launch(js, g, NULL, "{\"m1\": \"/models/one\", \"m3\": \"/unused\"}", 1000, &st, &err), 0);
    CHECK_EQ_INT(st.comps_added, 3);
    CHECK_EQ_INT(st.jobs_added, 6);
    CHECK_EQ_INT(st.prereqs_added, 2);
    CHECK_EQ_INT(st.comps_existing + st.jobs_existing, 0);
    int64_t sweep = st.sweep_id;
    CHECK_EQ_INT(js_launch(js, g, NULL, NULL, 2000, &st, &err), 0);
    CHECK_EQ_INT(st.sweep_id, sweep);
    CHECK_EQ_INT(st.comps_added, 0);
    CHECK_EQ_INT(st.jobs_added, 0);
    CHECK_EQ_INT(st.comps_existing, 3);
    CHECK_EQ_INT(st.jobs_existing, 6);
    /* and one statistics job per model with MEMIT (m1, m2), each a composition of its own, which
     * the MEMIT jobs (3 of m1, 2 of m2) depend on: not added twice */
    CHECK_EQ_INT(st.prereqs_added, 0);
    CHECK_EQ_INT(st.prereqs_existing, 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs"), 6 + 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM compositions"), 3 + 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM dependencies"), 5);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM dependencies d JOIN v_jobs p ON p.id = d.depends_on "
                           "JOIN v_jobs j ON j.id = d.job_id WHERE p.pattern = 'prereq' AND p.model = j.model "
                           "AND j.label LIKE '%%memit' AND p.edit_set = 0"), 5);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'launch'"), 2);
    CHECK_SQL_TEXT(js, "SELECT path FROM models WHERE name = 'm1'", "/models/one");
    CHECK_SQL_TEXT(js, "SELECT path FROM models WHERE name = 'm2'", "m2");
    CHECK_EQ_INT(q_int(js, "SELECT n_stages FROM compositions WHERE label = 'wanda(0.25)->memit'"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT group_concat(edit_set) = '1,2,3' FROM (SELECT edit_set FROM v_jobs "
                           "WHERE label = 'memit' ORDER BY edit_set)"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT sum(priority) FROM jobs j JOIN compositions c ON c.id = j.composition_id "
                           "WHERE c.pattern <> 'prereq'"), 10);
    /* a statistics job runs before what waits for it: one above its dependents' priority (0 and 5) */
    CHECK_EQ_INT(q_int(js, "SELECT group_concat(priority) = '1,6' FROM (SELECT priority FROM v_jobs WHERE pattern = "
                           "'prereq' ORDER BY model)"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT max(max_attempts) FROM jobs"), 3);
    /* a second sweep name gives new jobs */
    CHECK_EQ_INT(js_launch(js, g, "other", NULL, 3000, &st, &err), 0);
    CHECK(st.sweep_id != sweep);
    CHECK_EQ_INT(st.jobs_added, 6);
    /* bad models map: nothing added */
    CHECK_EQ_INT(js_launch(js, g, "third", "{\"m1\": 5}", 3000, &st, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK(strstr(err.msg, "m1") != NULL);
    CHECK_EQ_INT(js_launch(js, g, "third", "[1,2", 3000, &st, &err), -1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM sweeps"), 2);
    /* a bad canonical form rolls the whole launch back */
    grid_add(g, "m1", "not json", "x", "broken", 0, 0);
    CHECK_EQ_INT(js_launch(js, g, "fourth", NULL, 3000, &st, &err), -1);
    CHECK(strstr(err.msg, "broken") != NULL);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM sweeps"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs"), 16);
    check_integrity(js);
    grid_free(&g);
    job_store_close(&js);
}

static void test_claim_order(void) {
    job_store *js = open_new(NULL, 0);
    if (!js) { CHECK(0); return; }
    grid *g = grid_new("order", 3);
    grid_add(g, "a", "[{\"k\":1}]", "p", "a1", 0, 0); /* job 1 */
    grid_add(g, "b", "[{\"k\":2}]", "p", "b2", 0, 0); /* job 2 */
    grid_add(g, "a", "[{\"k\":3}]", "p", "a3", 0, 0); /* job 3 */
    grid_add(g, "b", "[{\"k\":4}]", "p", "b4", 7, 0); /* job 4: highest priority */
    grid_add(g, "a", "[{\"k\":5}]", "p", "a5", 3, 0); /* job 5 */
    grid_add(g, "b", "[{\"k\":6}]", "p", "b6", 3, 0); /* job 6 */
    cis_err err = {0};
    CHECK_EQ_INT(js_launch(js, g, NULL, NULL, 1000, NULL, &err), 0);
    grid_free(&g);
    js_job j;
    const char *want_label_order[] = {"b4", "b6", "a5", "b2", "a1", "a3"};
    /* prefer a: priority first (b4), then at priority 3 the a job (a5) even though b6... */
    CHECK_EQ_INT(claim(js, "w1", "a", 2000, &j), 1);
    CHECK_EQ_INT(j.id, 4); /* priority beats affinity */
    CHECK_EQ_STR(j.model, "b");
    CHECK_EQ_INT(j.attempt, 1);
    CHECK_EQ_INT(j.lease_until, 32000);
    CHECK_EQ_STR(j.composition, "[{\"k\":4}]");
    CHECK_EQ_STR(j.model_path, "b");
    CHECK_EQ_INT(strlen(j.key), 64);
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w1", "a", 2000, &j), 1);
    CHECK_EQ_INT(j.id, 5); /* affinity within priority 3: a5 before b6 */
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w2", NULL, 2000, &j), 1);
    CHECK_EQ_INT(j.id, 6);
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w2", "b", 2000, &j), 1);
    CHECK_EQ_INT(j.id, 2); /* b2 before a1 by affinity */
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w2", "zzz", 2000, &j), 1); /* unknown model: plain order */
    CHECK_EQ_INT(j.id, 1);
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w2", NULL, 2000, &j), 1);
    CHECK_EQ_INT(j.id, 3);
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w2", NULL, 2000, &j), 0); /* nothing left */
    (void)want_label_order;
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM attempts WHERE outcome = 'running'"), 6);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'leased'"), 6);
    check_integrity(js);
    job_store_close(&js);
}

static void test_dependencies(void) {
    job_store *js = open_launched(4, 3, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    /* 1 depends on 3; 2 depends on 3 and 4 */
    CHECK_EQ_INT(js_add_dependency(js, 1, 3, &err), 0);
    CHECK_EQ_INT(js_add_dependency(js, 2, 3, &err), 0);
    CHECK_EQ_INT(js_add_dependency(js, 2, 4, &err), 0);
    CHECK_EQ_INT(js_add_dependency(js, 2, 4, &err), 0); /* idempotent */
    CHECK_EQ_INT(js_add_dependency(js, 3, 2, &err), -1); /* 2 -> 3 -> 2 */
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK(strstr(err.msg, "cycle") != NULL);
    CHECK_EQ_INT(js_add_dependency(js, 4, 4, &err), -1);
    CHECK_EQ_INT(js_add_dependency(js, 4, 99, &err), -1);
    CHECK(strstr(err.msg, "99") != NULL);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM dependencies"), 3);
    js_counts c;
    CHECK_EQ_INT(js_count_states(js, &c, &err), 0);
    CHECK_EQ_INT(c.blocked, 2);
    CHECK_EQ_INT(c.pending, 4);
    js_job j;
    CHECK_EQ_INT(claim(js, "w", NULL, 2000, &j), 1);
    CHECK_EQ_INT(j.id, 3);
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w", NULL, 2000, &j), 1);
    CHECK_EQ_INT(j.id, 4);
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w", NULL, 2000, &j), 0); /* 1 and 2 blocked */
    CHECK_EQ_INT(result(js, 3, 1, "w", 0.5, 3000, NULL), JS_RESULT_CURRENT);
    CHECK_EQ_INT(claim(js, "w", NULL, 3000, &j), 1); /* 1 unblocked, 2 still waits on 4 */
    CHECK_EQ_INT(j.id, 1);
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w", NULL, 3000, &j), 0);
    CHECK_EQ_INT(result(js, 4, 1, "w", 0.5, 3000, NULL), JS_RESULT_CURRENT);
    CHECK_EQ_INT(claim(js, "w", NULL, 3000, &j), 1);
    CHECK_EQ_INT(j.id, 2);
    js_job_clear(&j);
    CHECK_EQ_INT(js_count_states(js, &c, &err), 0);
    CHECK_EQ_INT(c.blocked, 0);
    CHECK_EQ_INT(c.leased, 2);
    CHECK_EQ_INT(c.done, 2);
    CHECK_EQ_INT(c.total, 4);
    check_integrity(js);
    job_store_close(&js);
}

static void test_heartbeat(void) {
    job_store *js = open_launched(1, 3, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
    js_job_clear(&j);
    CHECK_EQ_INT(js_heartbeat(js, 1, 1, "w1", 5000, 30000, 0.25, &err), 1);
    CHECK_EQ_INT(q_int(js, "SELECT lease_until FROM jobs WHERE id = 1"), 35000);
    CHECK_EQ_INT(q_int(js, "SELECT last_heartbeat FROM jobs WHERE id = 1"), 5000);
    CHECK_EQ_INT(q_int(js, "SELECT progress = 0.25 FROM jobs WHERE id = 1"), 1);
    CHECK_EQ_INT(js_heartbeat(js, 1, 1, "w1", 6000, 30000, -1, &err), 1); /* progress unchanged */
    CHECK_EQ_INT(q_int(js, "SELECT progress = 0.25 FROM jobs WHERE id = 1"), 1);
    CHECK_EQ_INT(js_heartbeat(js, 1, 2, "w1", 7000, 30000, 0.5, &err), 0);  /* wrong attempt */
    CHECK_EQ_INT(js_heartbeat(js, 1, 1, "w2", 7000, 30000, 0.5, &err), 0);  /* wrong worker */
    CHECK_EQ_INT(js_heartbeat(js, 99, 1, "w1", 7000, 30000, 0.5, &err), 0); /* no such job */
    CHECK_EQ_INT(q_int(js, "SELECT lease_until FROM jobs WHERE id = 1"), 36000);
    bool ap;
    CHECK_EQ_INT(js_record_lost(js, 1, 1, "lease_expired", 8000, 3, &ap, &err), 0);
    CHECK(ap);
    CHECK_EQ_INT(js_heartbeat(js, 1, 1, "w1", 9000, 30000, 0.5, &err), 0); /* no longer leased */
    CHECK_EQ_INT(claim(js, "w2", NULL, 10000, &j), 1);
    CHECK_EQ_INT(j.attempt, 2);
    js_job_clear(&j);
    CHECK_EQ_INT(js_heartbeat(js, 1, 1, "w1", 11000, 30000, 0.5, &err), 0); /* stale attempt */
    CHECK_EQ_INT(js_heartbeat(js, 1, 2, "w2", 11000, 30000, 0.5, &err), 1);
    CHECK_EQ_INT(q_int(js, "SELECT lease_until FROM jobs WHERE id = 1"), 41000);
    check_integrity(js);
    job_store_close(&js);
}

static void test_result_duplicate(void) {
    job_store *js = open_launched(2, 3, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
    js_job_clear(&j);
    char other[256] = "junk";
    CHECK_EQ_INT(result(js, 1, 1, "w1", 0.625, 2000, other), JS_RESULT_CURRENT);
    CHECK_EQ_STR(other, "");
    CHECK_SQL_TEXT(js, "SELECT state FROM jobs WHERE id = 1", "done");
    CHECK_EQ_INT(q_int(js, "SELECT current_attempt FROM jobs WHERE id = 1"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT finished_at FROM jobs WHERE id = 1"), 2000);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE job_id = 1 AND is_current = 1"), 2);
    CHECK_SQL_TEXT(js, "SELECT outcome FROM attempts WHERE job_id = 1", "done");
    CHECK_EQ_INT(q_int(js, "SELECT run_ms FROM attempts WHERE job_id = 1"), 5);
    /* the same result again (the worker did not get the ACK) */
    CHECK_EQ_INT(result(js, 1, 1, "w1", 0.9, 2500, other), JS_RESULT_DUPLICATE);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE job_id = 1"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT value = 0.625 FROM results WHERE job_id = 1 AND metric = 'mmlu'"), 1);
    /* results for attempts that were never leased */
    int oc;
    js_metric m = {"mmlu", 1};
    CHECK_EQ_INT(js_record_result(js, 1, 2, "w1", &m, 1, NULL, 0, 0, 3000, &oc, other, &err), -1);
    CHECK_EQ_INT(err.code, CIS_ESTATE);
    CHECK_EQ_INT(js_record_result(js, 2, 1, "w1", &m, 1, NULL, 0, 0, 3000, &oc, other, &err), -1); /* never leased */
    CHECK_EQ_INT(js_record_result(js, 2, 0, "w1", &m, 1, NULL, 0, 0, 3000, &oc, other, &err), -1);
    CHECK_EQ_INT(js_record_result(js, 77, 1, "w1", &m, 1, NULL, 0, 0, 3000, &oc, other, &err), -1);
    CHECK_EQ_INT(err.code, CIS_ESTATE);
    /* a result from a worker that does not hold that attempt's lease: refused, nothing stored */
    CHECK_EQ_INT(claim(js, "w1", NULL, 3500, &j), 1);
    js_job_clear(&j);
    CHECK_EQ_INT(js_record_result(js, 2, 1, "stranger", &m, 1, NULL, 0, 0, 3600, &oc, other, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EPERM);
    CHECK(strstr(err.msg, "stranger") && strstr(err.msg, "leased to \"w1\""));
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE job_id = 2"), 0);
    CHECK_SQL_TEXT(js, "SELECT state FROM jobs WHERE id = 2", "leased");
    bool ap0 = true;
    CHECK_EQ_INT(js_record_failure(js, 2, 1, "stranger", "forged", "", false, 3700, &ap0, &err), 0);
    CHECK(!ap0);
    CHECK_EQ_INT(js_record_preempted(js, 2, 1, "stranger", 3700, &ap0, &err), 0);
    CHECK(!ap0);
    CHECK_EQ_INT(js_record_preempted(js, 2, 1, "w1", 3800, &ap0, &err), 0); /* back to pending for what follows */
    CHECK(ap0);
    /* non-finite metrics */
    CHECK_EQ_INT(claim(js, "w1", NULL, 4000, &j), 1);
    js_job_clear(&j);
    js_metric nf[4] = {{"ppl_wikitext", INFINITY}, {"mmlu", NAN}, {"x", -INFINITY}, {"wmdp_bio", 0.25}};
    CHECK_EQ_INT(js_record_result(js, 2, 1, "w1", nf, 4, NULL, 0, 0, 5000, &oc, NULL, &err), 0);
    CHECK_EQ_INT(oc, JS_RESULT_CURRENT);
    CHECK_SQL_TEXT(js, "SELECT coalesce(value, 'NULL') || ' ' || value_text FROM results WHERE job_id = 2 "
                       "AND metric = 'ppl_wikitext'", "NULL inf");
    CHECK_SQL_TEXT(js, "SELECT value_text FROM results WHERE job_id = 2 AND metric = 'mmlu'", "nan");
    CHECK_SQL_TEXT(js, "SELECT value_text FROM results WHERE job_id = 2 AND metric = 'x'", "-inf");
    CHECK_EQ_INT(q_int(js, "SELECT value_text IS NULL FROM results WHERE job_id = 2 AND metric = 'wmdp_bio'"), 1);
    CHECK_SQL_TEXT(js, "SELECT json_extract(metrics_json, '$.ppl_wikitext') || json_extract(metrics_json, '$.mmlu') "
                       "|| json_extract(metrics_json, '$.x') || json_extract(metrics_json, '$.wmdp_bio') "
                       "|| (SELECT count(*) FROM json_each(metrics_json)) FROM v_runs WHERE job_id = 2",
                   "infnan-inf0.254");
    CHECK_EQ_INT(q_int(js, "SELECT mmlu IS NULL AND wmdp_avg IS NULL FROM v_runs WHERE job_id = 2"), 1);
    check_integrity(js);
    job_store_close(&js);
}

/* a worker loses its lease, the job is requeued and re-leased, then the first worker's late result
 * arrives: it becomes current and the second worker is told to stop; the second result is kept,
 * superseded */
static void test_late_result(void) {
    job_store *js = open_launched(1, 3, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    bool ap;
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
    js_job_clear(&j);
    CHECK_EQ_INT(js_record_lost(js, 1, 1, "lease_expired", 40000, 3, &ap, &err), 0);
    CHECK(ap);
    CHECK_SQL_TEXT(js, "SELECT state FROM jobs WHERE id = 1", "pending");
    CHECK_EQ_INT(claim(js, "w2", NULL, 41000, &j), 1);
    CHECK_EQ_INT(j.attempt, 2);
    js_job_clear(&j);
    char other[256];
    CHECK_EQ_INT(result(js, 1, 1, "w1", 0.5, 42000, other), JS_RESULT_CURRENT);
    CHECK_EQ_STR(other, "w2");
    CHECK_EQ_INT(js_job_attempt(js, 1, &err), 2); /* the attempt w2 is told to cancel */
    CHECK_EQ_INT(js_job_attempt(js, 99, &err), -1);
    CHECK_EQ_INT(err.code, CIS_ESTATE);
    CHECK_SQL_TEXT(js, "SELECT state FROM jobs WHERE id = 1", "done");
    CHECK_EQ_INT(q_int(js, "SELECT current_attempt FROM jobs WHERE id = 1"), 1);
    CHECK_SQL_TEXT(js, "SELECT group_concat(outcome, ',') FROM (SELECT outcome FROM attempts WHERE job_id = 1 "
                       "ORDER BY attempt)", "done,superseded");
    /* the second worker's heartbeat is refused now; its failure report is ignored */
    CHECK_EQ_INT(js_heartbeat(js, 1, 2, "w2", 42500, 30000, 0.9, &err), 0);
    CHECK_EQ_INT(js_record_failure(js, 1, 2, "w2", "stopped", NULL, true, 42600, &ap, &err), 0);
    CHECK(!ap);
    /* its result arrives anyway */
    CHECK_EQ_INT(result(js, 1, 2, "w2", 0.75, 43000, other), JS_RESULT_SUPERSEDED);
    CHECK_EQ_STR(other, "");
    CHECK_EQ_INT(result(js, 1, 2, "w2", 0.75, 43500, other), JS_RESULT_DUPLICATE);
    CHECK_EQ_INT(result(js, 1, 1, "w1", 0.5, 43600, other), JS_RESULT_DUPLICATE);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE job_id = 1"), 4);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE job_id = 1 AND is_current = 1"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(DISTINCT attempt) FROM results WHERE job_id = 1 AND is_current = 1"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT attempt FROM results WHERE job_id = 1 AND is_current = 1 LIMIT 1"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT mmlu = 0.5 FROM v_runs WHERE job_id = 1"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_runs"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_results WHERE job_id = 1 AND is_current = 0"), 2);
    CHECK_SQL_TEXT(js, "SELECT worker FROM v_runs WHERE job_id = 1", "w1");
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE job_id = 1 AND kind = 'superseded'"), 2);
    check_integrity(js);
    job_store_close(&js);
}

static void test_failure_budget(void) {
    job_store *js = open_launched(2, 2, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    bool ap;
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
    CHECK_EQ_INT(j.id, 1);
    js_job_clear(&j);
    CHECK_EQ_INT(js_record_failure(js, 1, 1, "w2", "wrong worker", NULL, true, 1500, &ap, &err), 0);
    CHECK(!ap);
    CHECK_EQ_INT(js_record_failure(js, 1, 1, "w1", "CUDA out of memory", "line1\nline2", true, 2000, &ap, &err), 0);
    CHECK(ap);
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || spent FROM jobs WHERE id = 1", "pending 1");
    CHECK_EQ_INT(q_int(js, "SELECT worker_id IS NULL AND lease_until IS NULL FROM jobs WHERE id = 1"), 1);
    CHECK_SQL_TEXT(js, "SELECT outcome || '|' || error || '|' || log_tail FROM attempts WHERE job_id = 1",
                   "failed|CUDA out of memory|line1\nline2");
    CHECK_EQ_INT(js_record_failure(js, 1, 1, "w1", "again", NULL, true, 2100, &ap, &err), 0); /* not leased */
    CHECK(!ap);
    CHECK_EQ_INT(claim(js, "w1", NULL, 3000, &j), 1);
    CHECK_EQ_INT(j.id, 1);
    CHECK_EQ_INT(j.attempt, 2);
    js_job_clear(&j);
    CHECK_EQ_INT(js_record_failure(js, 1, 2, "w1", "CUDA out of memory", "tail2", true, 4000, &ap, &err), 0);
    CHECK(ap);
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || spent FROM jobs WHERE id = 1", "failed 2");
    CHECK_EQ_INT(q_int(js, "SELECT finished_at FROM jobs WHERE id = 1"), 4000);
    CHECK_SQL_TEXT(js, "SELECT last_error || '|' || log_tail FROM v_failures WHERE job_id = 1",
                   "attempt 2 failed: CUDA out of memory|tail2");
    /* a non-retryable failure ends the job at once */
    CHECK_EQ_INT(claim(js, "w1", NULL, 5000, &j), 1);
    CHECK_EQ_INT(j.id, 2);
    js_job_clear(&j);
    CHECK_EQ_INT(js_record_failure(js, 2, 1, NULL, "bad spec", NULL, false, 6000, &ap, &err), 0);
    CHECK(ap);
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || spent FROM jobs WHERE id = 2", "failed 1");
    CHECK_EQ_INT(claim(js, "w1", NULL, 7000, &j), 0);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'requeued'"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'failed'"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_failures"), 2);
    check_integrity(js);
    job_store_close(&js);
}

static void test_preempted(void) {
    job_store *js = open_launched(1, 1, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    bool ap;
    for (int k = 1; k <= 3; k++) { /* budget 1, preempted three times: never spent */
        CHECK_EQ_INT(claim(js, "w1", NULL, 1000 * k, &j), 1);
        CHECK_EQ_INT(j.attempt, k);
        js_job_clear(&j);
        CHECK_EQ_INT(js_record_preempted(js, 1, k, "w1", 1000 * k + 500, &ap, &err), 0);
        CHECK(ap);
        CHECK_SQL_TEXT(js, "SELECT state || ' ' || spent FROM jobs WHERE id = 1", "pending 0");
    }
    CHECK_EQ_INT(js_record_preempted(js, 1, 3, "w1", 9000, &ap, &err), 0);
    CHECK(!ap);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM attempts WHERE outcome = 'preempted'"), 3);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'preempted'"), 3);
    CHECK_EQ_INT(claim(js, "w1", NULL, 10000, &j), 1);
    js_job_clear(&j);
    CHECK_EQ_INT(result(js, 1, 4, "w1", 0.5, 11000, NULL), JS_RESULT_CURRENT);
    check_integrity(js);
    job_store_close(&js);
}

static void test_quarantine(void) {
    job_store *js = open_launched(2, 10, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    bool ap;
    for (int k = 1; k <= 3; k++) {
        CHECK_EQ_INT(claim(js, "w1", NULL, 1000 * k, &j), 1);
        CHECK_EQ_INT(j.id, 1);
        js_job_clear(&j);
        CHECK_EQ_INT(js_record_lost(js, 1, k, "worker_lost", 1000 * k + 1, 3, &ap, &err), 0);
        CHECK(ap);
    }
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || spent || ' ' || lost_count FROM jobs WHERE id = 1", "dead 3 3");
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'quarantined' AND job_id = 1"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'lost' AND job_id = 1"), 3);
    CHECK_SQL_TEXT(js, "SELECT worker_id FROM events WHERE kind = 'quarantined'", "w1");
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM attempts WHERE outcome = 'lost'"), 3);
    CHECK_EQ_INT(claim(js, "w1", NULL, 9000, &j), 1); /* dead jobs are not leased */
    CHECK_EQ_INT(j.id, 2);
    js_job_clear(&j);
    /* lost with a small budget -> failed, not dead */
    CHECK_EQ_INT(js_record_lost(js, 2, 1, "worker_lost", 9500, 0, &ap, &err), 0); /* 0 = never quarantine */
    CHECK_SQL_TEXT(js, "SELECT state FROM jobs WHERE id = 2", "pending");
    CHECK_EQ_INT(q_int(js, "UPDATE jobs SET max_attempts = 2 WHERE id = 2 RETURNING max_attempts"), 2);
    CHECK_EQ_INT(claim(js, "w1", NULL, 9600, &j), 1);
    js_job_clear(&j);
    CHECK_EQ_INT(js_record_lost(js, 2, 2, "worker_lost", 9700, 5, &ap, &err), 0);
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || spent FROM jobs WHERE id = 2", "failed 2");
    check_integrity(js);
    job_store_close(&js);
}

static void test_expired_and_resume(void) {
    job_store *js = open_launched(4, 3, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    for (int k = 0; k < 3; k++) {
        CHECK_EQ_INT(js_claim(js, k == 2 ? "w2" : "w1", NULL, 1000 * (k + 1), 10000, &j, &err), 1);
        js_job_clear(&j);
    } /* leases end at 11000, 12000, 13000 */
    js_lease *l = NULL;
    CHECK_EQ_INT(js_expired_leases(js, 11000, &l, &err), 0);
    free(l);
    CHECK_EQ_INT(js_expired_leases(js, 12500, &l, &err), 2);
    if (l) {
        CHECK_EQ_INT(l[0].job_id, 1);
        CHECK_EQ_INT(l[1].job_id, 2);
        CHECK_EQ_INT(l[1].attempt, 1);
        CHECK_EQ_STR(l[1].worker_id, "w1");
    }
    free(l);
    CHECK_EQ_INT(js_leases_of_worker(js, "w2", &l, &err), 1);
    if (l) CHECK_EQ_INT(l[0].job_id, 3);
    free(l);
    CHECK_EQ_INT(js_leases_of_worker(js, "nobody", &l, &err), 0);
    free(l);
    /* the coordinator restarts at 50000: every lease gets a grace period */
    CHECK_EQ_INT(js_resume_prepare(js, 50000, 20000, &err), 3);
    CHECK_EQ_INT(q_int(js, "SELECT min(lease_until) FROM jobs WHERE state = 'leased'"), 70000);
    CHECK_EQ_INT(js_expired_leases(js, 60000, &l, &err), 0);
    free(l);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'coordinator_start'"), 1);
    /* a heartbeat shorter than the grace does not shorten the lease */
    CHECK_EQ_INT(js_heartbeat(js, 1, 1, "w1", 51000, 5000, -1, &err), 1);
    CHECK_EQ_INT(q_int(js, "SELECT lease_until FROM jobs WHERE id = 1"), 70000);
    /* a second restart within the grace: only lease 1, renewed since the first start, gets the grace
     * again; leases 2 and 3 keep their deadline (restarts cannot keep a dead worker's lease alive) */
    CHECK_EQ_INT(js_resume_prepare(js, 60000, 20000, &err), 1);
    CHECK_EQ_INT(q_int(js, "SELECT lease_until FROM jobs WHERE id = 1"), 80000);
    CHECK_EQ_INT(q_int(js, "SELECT max(lease_until) FROM jobs WHERE id > 1"), 70000);
    CHECK_EQ_INT(js_resume_prepare(js, 61000, 20000, &err), 0);
    CHECK_EQ_INT(js_expired_leases(js, 70001, &l, &err), 2);
    free(l);
    CHECK_EQ_INT(js_expired_leases(js, 80001, &l, &err), 3);
    for (int i = 0; l && i < 3; i++) {
        bool ap;
        CHECK_EQ_INT(js_record_lost(js, l[i].job_id, l[i].attempt, "lease_expired", 80001, 3, &ap, &err), 0);
        CHECK(ap);
    }
    free(l);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs WHERE state = 'pending' AND spent = 1"), 3);
    check_integrity(js);
    job_store_close(&js);
}

static void test_workers(void) {
    job_store *js = open_new(NULL, 0);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_worker_info w = {"host/cpu0/abc", "host", "cpu", "cpu", "0.1", 4096, 1234, -1};
    CHECK_EQ_INT(js_worker_seen(js, &w, 1000, &err), 0);
    CHECK_EQ_INT(js_worker_seen(js, &w, 2000, &err), 0);
    CHECK_EQ_INT(q_int(js, "SELECT first_seen * 10000 + last_seen FROM workers"), 1000 * 10000 + 2000);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'worker_joined'"), 1);
    CHECK_EQ_INT(js_worker_touch(js, w.id, 3000, 7, "busy", &err), 0);
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || current_job || ' ' || last_seen FROM workers", "busy 7 3000");
    CHECK_EQ_INT(js_worker_touch(js, w.id, 3000, 0, "weird", &err), -1);
    CHECK_EQ_INT(js_worker_gone(js, w.id, 4000, "heartbeat timeout", &err), 0);
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || coalesce(current_job, 'none') FROM workers", "gone none");
    CHECK_SQL_TEXT(js, "SELECT detail FROM events WHERE kind = 'worker_lost'", "heartbeat timeout");
    CHECK_EQ_INT(js_worker_seen(js, &w, 5000, &err), 0); /* back */
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'worker_joined'"), 2);
    CHECK_EQ_INT(js_event(js, 6000, "bad_message", 0, "peer", "short frame", &err), 0);
    CHECK_EQ_INT(q_int(js, "SELECT job_id IS NULL FROM events WHERE kind = 'bad_message'"), 1);
    job_store_close(&js);
}

static void test_retry(void) {
    job_store *js = open_launched(5, 1, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    bool ap;
    /* job 1 failed, 2 dead, 3 done, 4 pending, 5 leased */
    for (int k = 1; k <= 5; k++) {
        CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
        js_job_clear(&j);
    }
    CHECK_EQ_INT(js_record_failure(js, 1, 1, "w1", "boom", NULL, true, 2000, &ap, &err), 0);
    CHECK_EQ_INT(js_record_lost(js, 2, 1, "worker_lost", 2000, 1, &ap, &err), 0);
    CHECK_EQ_INT(result(js, 3, 1, "w1", 0.5, 2000, NULL), JS_RESULT_CURRENT);
    CHECK_EQ_INT(js_record_preempted(js, 4, 1, "w1", 2000, &ap, &err), 0);
    CHECK_SQL_TEXT(js, "SELECT group_concat(state, ',') FROM (SELECT state FROM jobs ORDER BY id)",
                   "failed,dead,done,pending,leased");
    /* bad SQL: SQLite's message; ';' refused; nothing changed */
    CHECK_EQ_INT(js_retry(js, false, "no_such_column = 1", 3000, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK(strstr(err.msg, "no such column: no_such_column") != NULL);
    CHECK_EQ_INT(js_retry(js, false, "1); DELETE FROM jobs; SELECT (1", 3000, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK_EQ_INT(js_retry(js, false, "1)) OR ((1", 3000, &err), -1); /* cannot leave the parentheses */
    CHECK_EQ_INT(js_retry(js, false, "1 -- comment", 3000, &err), -1);
    CHECK_EQ_INT(js_retry(js, false, NULL, 3000, &err), -1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs"), 5);
    CHECK_SQL_TEXT(js, "SELECT group_concat(state, ',') FROM (SELECT state FROM jobs ORDER BY id)",
                   "failed,dead,done,pending,leased");
    /* where without state: only failed/dead among the matches */
    CHECK_EQ_INT(js_retry(js, false, "id IN (2, 3, 4)", 3000, &err), 1);
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || spent || ' ' || lost_count FROM jobs WHERE id = 2", "pending 0 0");
    CHECK_SQL_TEXT(js, "SELECT state FROM jobs WHERE id = 3", "done");
    /* --failed */
    CHECK_EQ_INT(js_retry(js, true, NULL, 3000, &err), 1);
    CHECK_SQL_TEXT(js, "SELECT state || ' ' || spent FROM jobs WHERE id = 1", "pending 0");
    CHECK_EQ_INT(js_retry(js, true, NULL, 3000, &err), 0);
    /* where naming state: a done job is rerun; its old rows stay but are no longer current */
    CHECK_EQ_INT(js_retry(js, false, "state = 'done' AND label LIKE 'selftest%'", 3000, &err), 1);
    CHECK_SQL_TEXT(js, "SELECT state FROM jobs WHERE id = 3", "pending");
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE job_id = 3 AND is_current = 1"), 0);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_runs"), 0);
    CHECK_EQ_INT(js_retry(js, false, "state = 'leased'", 3000, &err), 0); /* leased: never */
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'retry'"), 3);
    /* the rerun of job 3 becomes current */
    while (claim(js, "w2", NULL, 4000, &j) == 1) {
        int id = (int)j.id, a = j.attempt;
        js_job_clear(&j);
        CHECK_EQ_INT(result(js, id, a, "w2", 0.25, 5000, NULL), JS_RESULT_CURRENT);
    }
    CHECK_EQ_INT(q_int(js, "SELECT current_attempt FROM jobs WHERE id = 3"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT mmlu = 0.25 FROM v_runs WHERE job_id = 3"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE job_id = 3"), 4);
    check_integrity(js);
    job_store_close(&js);
}

static void test_cancel(void) {
    job_store *js = open_launched(4, 3, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
    js_job_clear(&j);
    CHECK_EQ_INT(claim(js, "w2", NULL, 1000, &j), 1);
    js_job_clear(&j);
    CHECK_EQ_INT(result(js, 2, 1, "w2", 0.5, 1500, NULL), JS_RESULT_CURRENT);
    js_lease *l = NULL;
    int nl = -1;
    CHECK_EQ_INT(js_cancel(js, "id <> 4", 2000, &l, &nl, &err), 2); /* 1 leased, 3 pending; 2 done */
    CHECK_EQ_INT(nl, 1);
    if (l && nl == 1) {
        CHECK_EQ_INT(l[0].job_id, 1);
        CHECK_EQ_STR(l[0].worker_id, "w1");
    }
    free(l);
    CHECK_SQL_TEXT(js, "SELECT group_concat(state, ',') FROM (SELECT state FROM jobs ORDER BY id)",
                   "cancelled,done,cancelled,pending");
    CHECK_SQL_TEXT(js, "SELECT outcome FROM attempts WHERE job_id = 1", "cancelled");
    CHECK_EQ_INT(js_heartbeat(js, 1, 1, "w1", 2100, 1000, -1, &err), 0);
    CHECK_EQ_INT(js_cancel(js, "sweep = ", 2000, &l, &nl, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK_EQ_INT(js_cancel(js, NULL, 2000, NULL, NULL, &err), 1);
    CHECK_EQ_INT(claim(js, "w1", NULL, 3000, &j), 0);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'cancelled'"), 3);
    /* cancelled jobs come back only when asked for explicitly */
    CHECK_EQ_INT(js_retry(js, true, NULL, 4000, &err), 0);
    CHECK_EQ_INT(js_retry(js, false, "state = 'cancelled' AND id = 3", 4000, &err), 1);
    CHECK_EQ_INT(claim(js, "w1", NULL, 5000, &j), 1);
    CHECK_EQ_INT(j.id, 3);
    js_job_clear(&j);
    check_integrity(js);
    job_store_close(&js);
}

static void set_user_version(const char *path, int v) {
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(path, &db), SQLITE_OK);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v);
    CHECK_EQ_INT(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_versions(void) {
    char *p;
    job_store *js = open_launched(2, 3, &p);
    if (!js) { CHECK(0); return; }
    job_store_close(&js);
    cis_err err = {0};
    /* newer: refused with a clear message, the file untouched */
    set_user_version(p, 7);
    CHECK_EQ_INT(job_store_open(p, 0, &js, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EVERSION);
    CHECK(strstr(err.msg, p) != NULL);
    CHECK(strstr(err.msg, "version 7") != NULL);
    char ours[16];
    snprintf(ours, sizeof ours, "(%d)", JOB_STORE_SCHEMA_VERSION);
    CHECK(strstr(err.msg, ours) != NULL);
    CHECK(strstr(err.msg, "upgrade cisweep") != NULL);
    CHECK_EQ_INT(job_store_open(p, JS_READONLY, &js, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EVERSION);
    const int V = JOB_STORE_SCHEMA_VERSION;
    set_user_version(p, V);

    /* a migration step: version V -> V+1 (a test-only step), then this build refuses the file */
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(p, &db), SQLITE_OK);
    js_migration steps[] = {
        {V, "ALTER TABLE jobs ADD COLUMN note TEXT; UPDATE jobs SET note = 'migrated';"
            "CREATE INDEX jobs_note ON jobs(note);"},
    };
    js_migration broken[] = {{V, "ALTER TABLE jobs ADD COLUMN note2 TEXT; SELECT * FROM no_such_table;"}};
    char want[64];
    CHECK_EQ_INT(js_migrate(db, p, V + 2, steps, 1, &err), -1); /* no step V+1 -> V+2: nothing applied */
    CHECK_EQ_INT(err.code, CIS_EVERSION);
    snprintf(want, sizeof want, "from schema version %d to %d", V + 1, V + 2);
    CHECK(strstr(err.msg, want) != NULL);
    CHECK_EQ_INT(js_migrate(db, p, V + 1, broken, 1, &err), -1);
    CHECK(strstr(err.msg, "no_such_table") != NULL);
    snprintf(want, sizeof want, "migrating schema version %d to %d", V, V + 1);
    CHECK(strstr(err.msg, want) != NULL);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version) * 100 + "
                           "(SELECT count(*) FROM pragma_table_info('jobs') WHERE name IN ('note', 'note2'))",
                       -1, &st, NULL);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), 100 * V); /* still version V, no new column */
    sqlite3_finalize(st);
    CHECK_EQ_INT(js_migrate(db, p, V + 1, steps, 1, &err), 0);
    sqlite3_prepare_v2(db, "SELECT (SELECT user_version FROM pragma_user_version) * 100 + "
                           "(SELECT count(*) FROM jobs WHERE note = 'migrated')", -1, &st, NULL);
    CHECK_EQ_INT(sqlite3_step(st), SQLITE_ROW);
    CHECK_EQ_INT(sqlite3_column_int(st, 0), 100 * (V + 1) + 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    CHECK_EQ_INT(job_store_open(p, 0, &js, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EVERSION);

    /* version 0 with tables: not ours */
    char *q = new_db_path();
    CHECK_EQ_INT(sqlite3_open(q, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "CREATE TABLE jobs(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    CHECK_EQ_INT(job_store_open(q, JS_CREATE, &js, &err), -1);
    CHECK(strstr(err.msg, "not a cisweep database") != NULL);
    free(q);
    /* an empty (0-byte) file is refused unless it is being created (launch: JS_CREATE), which
     * gives it the schema (issue 13) */
    q = new_db_path();
    FILE *f = fopen(q, "w");
    if (f) fclose(f);
    CHECK_EQ_INT(job_store_open(q, 0, &js, &err), -1);
    CHECK(strstr(err.msg, "empty file (0 bytes)") != NULL);
    CHECK_EQ_INT(job_store_open(q, JS_READONLY, &js, &err), -1);
    CHECK_EQ_INT(job_store_open(q, JS_CREATE, &js, &err), 0);
    if (js) CHECK_EQ_INT(q_int(js, "PRAGMA user_version"), V);
    job_store_close(&js);
    free(q);
    /* not a database at all */
    q = new_db_path();
    f = fopen(q, "w");
    if (f) { fputs("this is not sqlite, just some text that is long enough to be a header....\n", f); fclose(f); }
    CHECK_EQ_INT(job_store_open(q, 0, &js, &err), -1);
    CHECK(strstr(err.msg, q) != NULL);
    free(q);
    free(p);
}

/* the stages an attempt ran: stored with its result, once (a duplicate RESULT adds nothing), for a
 * superseded attempt too (not current in v_stages), refused whole when one is malformed */
static void test_stages_recorded(void) {
    char *p;
    job_store *js = open_launched(2, 3, &p);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job a, b;
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &a), 1);
    js_stage st[3] = {
        {1, 1, "wanda", "compress", false, "{\"sparsity\":0.25}", 3, "{\"kept\":0.75}", "{\"prune\":1.5}", 1500},
        {2, 2, "memit", "edit", false, "{\"layers\":[4,5]}", 3, NULL, NULL, -1},
        {3, 1, "wanda", "compress", true, "{\"sparsity\":0.25}", -1, "{}", NULL, 10},
    };
    js_metric m = {"mmlu", 0.5};
    int oc = 0;
    /* malformed: nothing stored, the job stays leased */
    js_stage bad = st[1];
    bad.stage = 0;
    CHECK_EQ_INT(js_record_result(js, a.id, a.attempt, "w1", &m, 1, &bad, 1, 5, 2000, &oc, NULL, &err), -1);
    CHECK_MSG(strstr(err.msg, "stage 1 needs stage >= 1"), "%s", err.msg);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results"), 0);
    CHECK_SQL_TEXT(js, "SELECT state FROM jobs WHERE id = 1", "leased");
    CHECK_EQ_INT(js_record_result(js, a.id, a.attempt, "w1", &m, 1, st, 3, 5, 2000, &oc, NULL, &err), 0);
    CHECK_EQ_INT(oc, JS_RESULT_CURRENT);
    CHECK_EQ_INT(js_record_result(js, a.id, a.attempt, "w1", &m, 1, st, 3, 5, 2100, &oc, NULL, &err), 0);
    CHECK_EQ_INT(oc, JS_RESULT_DUPLICATE);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM stages"), 3);
    CHECK_SQL_TEXT(js, "SELECT group_concat(method || ':' || stage || ':' || of_stage || ':' || recompress, ' ') "
                       "FROM (SELECT * FROM v_stages WHERE is_current ORDER BY stage)",
                   "wanda:1:1:0 memit:2:2:0 wanda:3:1:1");
    CHECK_SQL_TEXT(js, "SELECT json_extract(params_json, '$.sparsity') || ' ' || seed || ' ' || wall_ms || ' ' || "
                       "json_extract(record_json, '$.kept') || ' ' || json_extract(phases_json, '$.prune') "
                       "FROM stages WHERE stage = 1", "0.25 3 1500 0.75 1.5");
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM stages WHERE stage = 2 AND seed = 3 AND wall_ms IS NULL AND "
                           "record_json IS NULL"), 1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM stages WHERE stage = 3 AND seed IS NULL"), 1);
    /* job 2: attempt 1 lost, attempt 2 finishes first, attempt 1's late result is superseded */
    CHECK_EQ_INT(claim(js, "w1", NULL, 3000, &b), 1);
    bool applied = false;
    CHECK_EQ_INT(js_record_lost(js, b.id, b.attempt, "worker_lost", 3100, 5, &applied, &err), 0);
    js_job b2;
    CHECK_EQ_INT(claim(js, "w2", NULL, 3200, &b2), 1);
    CHECK_EQ_INT(js_record_result(js, b2.id, b2.attempt, "w2", &m, 1, st, 1, 5, 3300, &oc, NULL, &err), 0);
    CHECK_EQ_INT(js_record_result(js, b.id, b.attempt, "w1", &m, 1, st, 2, 5, 3400, &oc, NULL, &err), 0);
    CHECK_EQ_INT(oc, JS_RESULT_SUPERSEDED);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_stages WHERE job_id = %lld AND is_current", (long long)b.id), 1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_stages WHERE job_id = %lld AND NOT is_current", (long long)b.id), 2);
    /* a retried job's stages are kept but no longer current */
    CHECK_EQ_INT(js_retry(js, false, "id = 1 AND state = 'done'", 5000, &err), 1);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_stages WHERE job_id = 1 AND is_current"), 0);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM stages WHERE job_id = 1"), 3);
    check_integrity(js);
    js_job_clear(&a);
    js_job_clear(&b);
    js_job_clear(&b2);
    job_store_close(&js);
    free(p);
}

/* the objects each schema version added (for a file of an older version made from the new schema) */
#define V2_OBJECTS "'stages','stages_method','v_stages'"
#define V3_OBJECTS "'composition_policy','sqlite_autoindex_composition_policy_1'"
#define V4_OBJECTS "'job_memory','worker_memory','sqlite_autoindex_worker_memory_1'"

/* the schema a migration produces must equal the schema a new file gets: a version-1 file (the
 * current schema without what version 2 added, created through a step 0 -> 1) opened by
 * job_store_open runs the real steps of JS_MIGRATIONS and ends with the same schema text */
static void test_migrated_equals_new(void) {
    char *p = new_db_path(), *q;
    job_store *js = open_new(&q, 0);
    if (!js) { CHECK(0); free(p); return; }
    sqlite3 *db;
    cis_err err = {0};
    CHECK_EQ_INT(sqlite3_open(p, &db), SQLITE_OK);
    char *sql = q_text(js, "SELECT group_concat(sql, ';' || char(10)) || ';' FROM (SELECT sql FROM sqlite_schema "
                           "WHERE sql IS NOT NULL AND name NOT IN (" V2_OBJECTS "," V3_OBJECTS "," V4_OBJECTS ") ORDER BY rowid)");
    js_migration steps[] = {{0, sql}};
    CHECK_EQ_INT(js_migrate(db, p, 1, steps, 1, &err), 0);
    sqlite3_close(db);
    free(sql);
    job_store *js2 = NULL;
    CHECK_MSG(job_store_open(p, JS_NOSYNC, &js2, &err) == 0, "%s", err.msg);
    if (js2) {
        CHECK_EQ_INT(job_store_user_version(js2), JOB_STORE_SCHEMA_VERSION);
        char *a = q_text(js, "SELECT group_concat(type || name || sql) FROM (SELECT * FROM sqlite_schema "
                             "ORDER BY name)");
        char *b = q_text(js2, "SELECT group_concat(type || name || sql) FROM (SELECT * FROM sqlite_schema "
                              "ORDER BY name)");
        CHECK_EQ_STR(a, b);
        free(a);
        free(b);
        job_store_close(&js2);
    }
    job_store_close(&js);
    free(p);
    free(q);
}

/* a launched version-1 sweep with results migrates on open, keeps its rows, and takes stages */
static void test_migrate_v1_sweep(void) {
    char *p;
    job_store *js = open_launched(3, 3, &p);
    if (!js) { CHECK(0); return; }
    js_job j;
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
    CHECK_EQ_INT(result(js, j.id, j.attempt, "w1", 0.5, 2000, NULL), JS_RESULT_CURRENT);
    js_job_clear(&j);
    job_store_close(&js);
    sqlite3 *db;
    CHECK_EQ_INT(sqlite3_open(p, &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "DROP VIEW v_stages; DROP TABLE stages; DROP TABLE composition_policy; "
                                  "DROP TABLE job_memory; DROP TABLE worker_memory; "
                                  "PRAGMA user_version = 1", NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    cis_err err = {0};
    CHECK_EQ_INT(job_store_open(p, JS_READONLY, &js, &err), -1); /* read-only opens never migrate */
    CHECK_MSG(strstr(err.msg, "schema version 1 is older"), "%s", err.msg);
    CHECK_MSG(job_store_open(p, JS_NOSYNC, &js, &err) == 0, "%s", err.msg);
    if (!js) { free(p); return; }
    CHECK_EQ_INT(q_int(js, "PRAGMA user_version"), JOB_STORE_SCHEMA_VERSION);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs"), 3);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE is_current = 1"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_stages"), 0);
    CHECK_EQ_INT(claim(js, "w1", NULL, 3000, &j), 1);
    js_stage st = {1, 1, "test_scale", "test", false, "{\"factor\":0.5}", 1, NULL, NULL, 3};
    js_metric m = {"mmlu", 0.25};
    int oc = 0;
    CHECK_EQ_INT(js_record_result(js, j.id, j.attempt, "w1", &m, 1, &st, 1, 5, 4000, &oc, NULL, &err), 0);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_stages WHERE is_current = 1 AND method = 'test_scale'"), 1);
    js_job_clear(&j);
    job_store_close(&js);
    free(p);
}

static void test_readonly_beside_writer(void) {
    char *p;
    job_store *w = open_launched(3, 3, &p);
    if (!w) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    CHECK_EQ_INT(claim(w, "w1", NULL, 1000, &j), 1);
    js_job_clear(&j);
    /* the writer holds an open write transaction while a reader opens and reads */
    CHECK_EQ_INT(js_begin(w, &err), 0);
    CHECK_EQ_INT(claim(w, "w1", NULL, 2000, &j), 1);
    js_job_clear(&j);
    job_store *r = NULL;
    CHECK_EQ_INT(job_store_open(p, JS_READONLY, &r, &err), 0);
    if (!r) { fprintf(stderr, "  %s\n", err.msg); js_rollback(w); job_store_close(&w); free(p); return; }
    js_counts c;
    CHECK_EQ_INT(js_count_states(r, &c, &err), 0);
    CHECK_EQ_INT(c.leased, 1); /* the uncommitted claim is not visible */
    CHECK_EQ_INT(c.pending, 2);
    CHECK_EQ_INT(js_commit(w, &err), 0);
    CHECK_EQ_INT(js_count_states(r, &c, &err), 0);
    CHECK_EQ_INT(c.leased, 2);
    CHECK_EQ_INT(q_int(r, "SELECT count(*) FROM v_jobs WHERE state = 'leased'"), 2);
    /* the reader cannot write */
    CHECK_EQ_INT(js_claim(r, "w9", NULL, 3000, 1000, &j, &err), -1);
    CHECK_EQ_INT(js_event(r, 3000, "x", 0, NULL, NULL, &err), -1);
    CHECK_EQ_INT(js_begin(r, &err), -1);
    /* the writer keeps writing while the reader is open */
    CHECK_EQ_INT(result(w, 1, 1, "w1", 0.5, 4000, NULL), JS_RESULT_CURRENT);
    CHECK_EQ_INT(q_int(r, "SELECT count(*) FROM v_runs"), 1);
    CHECK_EQ_INT(js_checkpoint(w, false, &err), 0); /* passive, with a reader open */
    job_store_close(&r);
    CHECK_EQ_INT(js_checkpoint(w, true, &err), 0);
    char *wal = xasprintf("%s-wal", p);
    struct stat sb;
    CHECK(stat(wal, &sb) == 0 && sb.st_size == 0); /* truncated */
    free(wal);
    /* a reader after the writer closed (WAL checkpointed, -wal/-shm removed) */
    job_store_close(&w);
    CHECK_EQ_INT(job_store_open(p, JS_READONLY, &r, &err), 0);
    if (r) {
        CHECK_EQ_INT(q_int(r, "SELECT count(*) FROM jobs"), 3);
        CHECK_SQL_TEXT(r, "PRAGMA integrity_check", "ok");
        job_store_close(&r);
    } else {
        fprintf(stderr, "  readonly after close: %s\n", err.msg);
    }
    /* a path with URI-special characters */
    char *odd = xasprintf("%s/we?ird#name%%.db", tmpdir);
    CHECK_EQ_INT(job_store_open(odd, JS_CREATE | JS_NOSYNC, &w, &err), 0);
    job_store_close(&w);
    CHECK_EQ_INT(job_store_open(odd, JS_READONLY, &r, &err), 0);
    if (r) CHECK_EQ_INT(job_store_user_version(r), JOB_STORE_SCHEMA_VERSION);
    job_store_close(&r);
    free(odd);
    /* read-only open of a missing file fails and creates nothing */
    char *missing = xasprintf("%s/none.db", tmpdir);
    CHECK_EQ_INT(job_store_open(missing, JS_READONLY, &r, &err), -1);
    CHECK(access(missing, F_OK) != 0);
    free(missing);
    free(p);
}

static void test_nested_batch(void) {
    /* calls inside the caller's batch transaction: a failing call leaves the batch intact */
    job_store *js = open_launched(3, 3, NULL);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    js_job j;
    CHECK_EQ_INT(js_begin(js, &err), 0);
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
    js_job_clear(&j);
    int oc;
    js_metric bad[2] = {{"mmlu", 0.5}, {NULL, 1}};
    CHECK_EQ_INT(js_record_result(js, 1, 1, "w1", bad, 2, NULL, 0, 0, 1500, &oc, NULL, &err), -1); /* second row bad */
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results"), 0); /* the first row was undone */
    CHECK_EQ_INT(claim(js, "w1", NULL, 2000, &j), 1);
    js_job_clear(&j);
    CHECK_EQ_INT(js_commit(js, &err), 0);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs WHERE state = 'leased'"), 2);
    CHECK_EQ_INT(js_begin(js, &err), 0);
    CHECK_EQ_INT(claim(js, "w1", NULL, 3000, &j), 1);
    js_job_clear(&j);
    js_rollback(js);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs WHERE state = 'leased'"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM attempts"), 2);
    check_integrity(js);
    job_store_close(&js);
}

static void test_export_csv(void) {
    job_store *js = open_new(NULL, 0);
    if (!js) { CHECK(0); return; }
    grid *g = grid_new("csv", 3);
    grid_add(g, "m1", "[{\"method\":\"a\",\"params\":{\"x\":\"q,\\\"uote\"}}]", "edit", "a(x=\"q,uote\")", 0, 0);
    cis_err err = {0};
    CHECK_EQ_INT(js_launch(js, g, NULL, NULL, 1000, NULL, &err), 0);
    grid_free(&g);
    js_job j;
    CHECK_EQ_INT(claim(js, "w1", NULL, 1000, &j), 1);
    js_job_clear(&j);
    js_metric m[3] = {{"wmdp_bio", 0.25}, {"wmdp_cyber", 0.5}, {"mmlu", 0.1}};
    int oc;
    CHECK_EQ_INT(js_record_result(js, 1, 1, "w1", m, 3, NULL, 0, 1234, 2000, &oc, NULL, &err), 0);
    char *out = xasprintf("%s/export.csv", tmpdir);
    FILE *f = fopen(out, "w");
    CHECK(f != NULL);
    if (!f) { free(out); job_store_close(&js); return; }
    CHECK_EQ_INT(js_export_csv(js, f, &err), 0);
    fclose(f);
    char *text = read_file(out, NULL, &err);
    CHECK(text != NULL);
    if (text) {
        CHECK(str_starts(text, "job_id,sweep,model,pattern,label,canonical,key,edit_set,attempt,worker,mmlu,"));
        CHECK(strstr(text, "\"a(x=\"\"q,uote\"\")\"") != NULL);
        CHECK(strstr(text, ",0.1,0.25,0.5,0.375,") != NULL); /* mmlu, bio, cyber, computed avg */
        CHECK(strstr(text, ",1234,") != NULL);
    }
    free(text);
    free(out);
    job_store_close(&js);
}

/* two sweeps of one file sharing work (job_store_reuse.c): a job of sweep B equivalent to a done
 * job of sweep A (same model path and config, composition key, seed with 0 read as 1) is done at
 * launch with A's attempt, metric rows and stages copied, visible in v_runs / v_stages under both
 * sweeps; an equivalent still pending is counted as in flight (not copied); a different model
 * path, config or seed is not shared; JS_LAUNCH_NO_REUSE counts but copies nothing. */
static void test_reuse_across_sweeps(void) {
    job_store *js = open_new(NULL, 0);
    if (!js) { CHECK(0); return; }
    cis_err err = {0};
    const char *c0 = "[{\"method\":\"selftest\",\"params\":{\"k\":0}}]", *c1 = "[{\"method\":\"selftest\",\"params\":{\"k\":1}}]",
               *c2 = "[{\"method\":\"selftest\",\"params\":{\"k\":2}}]";
    grid *a = grid_new("a", 3);
    grid_add(a, "m", c0, "test", "k0", 0, 0);  /* edit_set 0: seed 1 */
    grid_add(a, "m", c1, "test", "k1", 0, 2);  /* edit sets 1, 2 */
    grid_add(a, "m", c2, "test", "k2", 0, 0);  /* left pending */
    js_launch_stats st;
    CHECK_EQ_INT(js_launch(js, a, NULL, "{\"m\": \"/models/one\"}", 1000, &st, &err), 0);
    CHECK_EQ_INT(st.jobs_added, 4);
    CHECK_EQ_INT(st.jobs_shared, 0);
    /* finish every job of A but k2 (job 4), with stages */
    js_stage stg = {1, 1, "selftest", "test", false, "{\"k\":0}", 1, "{\"did\":1}", "{\"run\":0.5}", 7};
    for (int64_t id = 1; id <= 3; id++) {
        js_job j;
        CHECK_EQ_INT(claim(js, "w1", NULL, 2000, &j), 1);
        CHECK_EQ_INT(j.id, id);
        js_metric m[2] = {{"mmlu", 0.5 + 0.1 * (double)id}, {"avg_bits", 16}};
        int oc = 0;
        CHECK_EQ_INT(js_record_result(js, j.id, j.attempt, "w1", m, 2, &stg, 1, 40, 3000, &oc, NULL, &err), 0);
        js_job_clear(&j);
    }
    /* B: the same compositions on the same path; k0 with seeds [1, 2]; k1 edit set 2 only; k2 again;
     * and k0 on another path and on the same path with another config (not shared) */
    grid *b = grid_new("b", 3);
    grid_add(b, "m", c0, "test", "k0", 0, 2);  /* sets 1 (= A's edit_set 0) and 2 (new) */
    grid_add(b, "m", c1, "test", "k1", 0, 0);  /* edit_set 0 = seed 1 = A's k1 set 1 */
    grid_add(b, "m", c2, "test", "k2", 0, 0);  /* A's is pending: in flight */
    grid_add(b, "other", c0, "test", "k0", 0, 0);
    grid_add(b, "cfg", c0, "test", "k0", 0, 0);
    CHECK_EQ_INT(js_launch(js, b, NULL, "{\"m\": \"/models/one\", \"other\": \"/models/two\", "
                                       "\"cfg\": {\"path\": \"/models/one\", \"preset\": \"x\"}}", 4000, &st, &err), 0);
    CHECK_EQ_INT(st.jobs_added, 6);
    CHECK_EQ_INT(st.jobs_shared, 3);
    CHECK_EQ_INT(st.jobs_reused, 2);
    CHECK_EQ_INT(st.jobs_shared_inflight, 1);
    CHECK_EQ_INT(st.jobs_shared_unfinished, 0);
    CHECK_EQ_STR(st.shared_sweep, "a");
    CHECK_EQ_STR(st.inflight_sweep, "a");
    /* the reused jobs: done, attempt 1, A's rows under sweep b */
    CHECK_SQL_TEXT(js, "SELECT group_concat(label || ':' || edit_set || ':' || state, ' ') FROM "
                       "(SELECT * FROM v_jobs WHERE sweep = 'b' ORDER BY id)",
                   "k0:1:done k0:2:pending k1:0:done k2:0:pending k0:0:pending k0:0:pending");
    CHECK_SQL_TEXT(js, "SELECT group_concat(sweep || ':' || label || ':' || edit_set || ':' || mmlu, ' ') FROM "
                       "(SELECT * FROM v_runs WHERE label IN ('k0', 'k1') ORDER BY sweep, job_id)",
                   "a:k0:0:0.6 a:k1:1:0.7 a:k1:2:0.8 b:k0:1:0.6 b:k1:0:0.7");
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_stages WHERE sweep = 'b' AND is_current AND wall_ms = 7 AND "
                           "json_extract(record_json, '$.did') = 1"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM attempts a JOIN jobs j ON j.id = a.job_id WHERE j.sweep_id = 2 AND "
                           "a.outcome = 'done' AND a.log_tail LIKE 'reused: the result of job %% (sweep \"a\", attempt 1)%%' "
                           "AND a.run_ms = 40 AND a.worker_id = 'w1'"), 2);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM events WHERE kind = 'reused' AND json_extract(detail, '$.from_sweep') = 'a'"), 2);
    /* a reused job is never leased: the next claim is b's first pending job */
    js_job j;
    CHECK_EQ_INT(claim(js, "w2", NULL, 5000, &j), 1);
    CHECK_SQL_TEXT(js, "SELECT sweep || ':' || label || ':' || edit_set FROM v_jobs WHERE state = 'leased'", "a:k2:0");
    js_job_clear(&j);
    check_integrity(js);
    /* relaunching B adds nothing and copies nothing again */
    CHECK_EQ_INT(js_launch(js, b, NULL, "{\"m\": \"/models/one\", \"other\": \"/models/two\", "
                                       "\"cfg\": {\"path\": \"/models/one\", \"preset\": \"x\"}}", 6000, &st, &err), 0);
    CHECK_EQ_INT(st.jobs_added + st.jobs_shared + st.jobs_reused, 0);
    /* --no-reuse: a third sweep counts the shared jobs but copies nothing */
    CHECK_EQ_INT(js_launch_ex(js, b, "c", "{\"m\": \"/models/one\", \"other\": \"/models/two\", "
                                         "\"cfg\": {\"path\": \"/models/one\", \"preset\": \"x\"}}", 7000,
                              JS_LAUNCH_NO_REUSE, &st, &err), 0);
    CHECK_EQ_INT(st.jobs_added, 6);
    CHECK_EQ_INT(st.jobs_reused, 0);
    CHECK(st.jobs_shared >= 5);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_jobs WHERE sweep = 'c' AND state = 'done'"), 0);
    check_integrity(js);
    grid_free(&a);
    grid_free(&b);
    job_store_close(&js);
}

/* the shipped grids through the real grid_load: every composition and job lands once */
static void test_launch_real_grids(void) {
    const char *files[] = {"grids/smoke.json", "grids/paper.json", "grids/paper-417.json"};
    int tried = 0;
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        if (access(files[i], R_OK) != 0) continue;
        grid *g = NULL;
        cis_err err = {0};
        if (grid_load(files[i], 0, &g, &err) < 0) {
            fprintf(stderr, "  %s: %s\n", files[i], err.msg);
            CHECK(0);
            continue;
        }
        tried++;
        job_store *js = open_new(NULL, 0);
        if (!js) { CHECK(0); grid_free(&g); continue; }
        js_launch_stats st;
        CHECK_EQ_INT(js_launch(js, g, NULL, NULL, 1000, &st, &err), 0);
        CHECK_EQ_INT(st.comps_added, g->n_comps);
        CHECK_EQ_INT(st.jobs_added, g->n_jobs);
        CHECK_EQ_INT(js_launch(js, g, NULL, NULL, 2000, &st, &err), 0);
        CHECK_EQ_INT(st.comps_added + st.jobs_added, 0);
        CHECK_EQ_INT(st.jobs_existing, g->n_jobs);
        /* the grid's jobs, and one statistics job per model slot with MEMIT (every paper grid's
         * MEMIT stages share one setting), which every job with a MEMIT stage depends on */
        int prereqs = (int)q_int(js, "SELECT count(DISTINCT model_id) FROM compositions WHERE canonical LIKE '%%\"memit\"%%'");
        CHECK_EQ_INT(st.prereqs_added + st.prereqs_existing, prereqs);
        CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_jobs WHERE pattern <> 'prereq'"), g->n_jobs);
        CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM v_jobs WHERE pattern = 'prereq'"), prereqs);
        CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM dependencies"),
                     q_int(js, "SELECT count(*) FROM v_jobs WHERE canonical LIKE '%%\"memit\"%%'"));
        CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM compositions WHERE n_stages = 0"),
                     q_int(js, "SELECT count(*) FROM compositions WHERE pattern = 'baseline'"));
        js_counts c;
        CHECK_EQ_INT(js_count_states(js, &c, &err), 0);
        CHECK_EQ_INT(c.pending, (int64_t)g->n_jobs + prereqs);
        printf("# %s: %zu compositions, %zu jobs launched, %d statistics jobs\n", files[i], g->n_comps, g->n_jobs, prereqs);
        check_integrity(js);
        job_store_close(&js);
        grid_free(&g);
    }
    if (!tried) SKIP("no grids/*.json found (run from the repository root)");
}

/* claim + result per job in grouped commits of 64, as the coordinator batches them, on both sync
 * modes: every job done exactly once with its rows, the store intact. (The 4,000-job timing of
 * this loop is tests/bench/bench_job_store.c.) */
static void claim_result_batches(unsigned flags) {
    const int n = 200, batch = 64;
    char *p = new_db_path();
    job_store *js = NULL;
    cis_err err = {0};
    if (job_store_open(p, JS_CREATE | flags, &js, &err) < 0) { CHECK_MSG(0, "%s", err.msg); free(p); return; }
    grid *g = grid_simple(n, "m1", 3);
    CHECK_EQ_INT(js_launch(js, g, NULL, NULL, 1000, NULL, &err), 0);
    grid_free(&g);
    js_metric m[3] = {{"mmlu", 0.5}, {"wmdp_bio", 0.25}, {"wmdp_cyber", 0.3}};
    int done = 0, commits = 0;
    for (bool more = true; more;) {
        if (js_begin(js, &err) < 0) { CHECK_MSG(0, "%s", err.msg); break; }
        for (int k = 0; k < batch; k++) {
            js_job j;
            int rc = js_claim(js, "w1", "m1", 2000, 30000, &j, &err);
            CHECK(rc >= 0);
            if (rc <= 0) { more = false; break; }
            int oc;
            CHECK_EQ_INT(js_record_result(js, j.id, j.attempt, "w1", m, 3, NULL, 0, 1, 2000, &oc, NULL, &err), 0);
            CHECK_EQ_INT(oc, JS_RESULT_CURRENT);
            js_job_clear(&j);
            done++;
        }
        if (js_commit(js, &err) < 0) { CHECK_MSG(0, "%s", err.msg); break; }
        commits++;
    }
    CHECK_EQ_INT(done, n);
    CHECK_EQ_INT(commits, (n + batch) / batch);   /* the last batch finds nothing left */
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM jobs WHERE state = 'done'"), n);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM attempts"), n);
    CHECK_EQ_INT(q_int(js, "SELECT count(*) FROM results WHERE is_current = 1"), 3 * n);
    CHECK_EQ_INT(q_int(js, "SELECT count(DISTINCT job_id) FROM results WHERE metric = 'wmdp_cyber' AND value = 0.3"), n);
    check_integrity(js);
    job_store_close(&js);
    free(p);
}

static void test_claim_result_batches(void) {
    claim_result_batches(0);
    claim_result_batches(JS_NOSYNC);
}

/* ---- make-db: a small finished sweep with known values, for test_schema.py -------------------- */

static int make_db(const char *path) {
    cis_err err = {0};
    job_store *js = NULL;
    unlink(path);
    if (job_store_open(path, JS_CREATE | JS_NOSYNC, &js, &err) < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    grid *g = grid_new("views", 2);
    grid_add(g, "m1", "[]", "baseline", "baseline", 0, 0);                                         /* job 1 */
    grid_add(g, "m1", "[{\"method\":\"memit\",\"params\":{}}]", "edit", "memit", 0, 2);             /* 2, 3 */
    grid_add(g, "m1", "[{\"method\":\"gptq\",\"params\":{\"bits\":4}}]", "compress", "gptq(4)", 0, 0); /* 4 */
    grid_add(g, "m1", "[{\"method\":\"rmu\",\"params\":{}}]", "unlearn", "rmu", 0, 0);               /* 5 */
    grid_add(g, "m1", "[{\"method\":\"ga\",\"params\":{}}]", "unlearn", "ga", 0, 0);                 /* 6 */
    /* no statistics job: the MEMIT jobs get their results by hand below (job ids as commented) */
    int rc = js_launch_ex(js, g, "views-sweep", NULL, 1000000, JS_LAUNCH_NO_PREREQS, NULL, &err);
    grid_free(&g);
    if (rc < 0) { fprintf(stderr, "%s\n", err.msg); return 1; }
    /* jobs 1..4 done (job 2 by a late result after a loss: two attempts, one superseded),
     * job 5 failed, job 6 pending */
    js_job j;
    bool ap;
    int oc;
    int64_t t = 1000000;
    for (int k = 0; k < 5; k++) {
        if (js_claim(js, "w1", NULL, t += 1000, 600000, &j, &err) != 1) return 1;
        js_job_clear(&j);
    }
    js_metric base[5] = {{"mmlu", 0.60}, {"wmdp_bio", 0.50}, {"wmdp_cyber", 0.40}, {"ppl_wikitext", 6.5},
                         {"custom_metric", 42}};
    js_metric e1[4] = {{"mmlu", 0.58}, {"edit_success", 0.9}, {"generalization", 0.7}, {"locality", 0.95}};
    js_metric e1b[4] = {{"mmlu", 0.11}, {"edit_success", 0.1}, {"generalization", 0.1}, {"locality", 0.1}};
    js_metric e2[4] = {{"mmlu", 0.56}, {"edit_success", 0.8}, {"generalization", 0.6}, {"locality", 0.85}};
    js_metric q4[3] = {{"mmlu", 0.59}, {"avg_bits", 4.25}, {"wmdp_bio", NAN}};
    if (js_record_result(js, 1, 1, "w1", base, 5, NULL, 0, 1500, t += 1000, &oc, NULL, &err) < 0) return 1;
    if (js_record_lost(js, 2, 1, "lease_expired", t += 1000, 3, &ap, &err) < 0) return 1;
    if (js_claim(js, "w2", NULL, t += 1000, 600000, &j, &err) != 1) return 1; /* job 2 attempt 2 */
    js_job_clear(&j);
    char other[256];
    if (js_record_result(js, 2, 1, "w1", e1, 4, NULL, 0, 2500, t += 1000, &oc, other, &err) < 0) return 1;
    if (js_record_result(js, 2, 2, "w2", e1b, 4, NULL, 0, 2600, t += 1000, &oc, other, &err) < 0) return 1;
    if (js_record_result(js, 3, 1, "w1", e2, 4, NULL, 0, 2700, t += 1000, &oc, NULL, &err) < 0) return 1;
    if (js_record_result(js, 4, 1, "w1", q4, 3, NULL, 0, 3000, t += 1000, &oc, NULL, &err) < 0) return 1;
    if (js_record_failure(js, 5, 1, "w1", "diverged", "loss=nan at step 3", false, t += 1000, &ap, &err) < 0)
        return 1;
    job_store_close(&js);
    printf("%s\n", path);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "make-db") == 0) return make_db(argv[2]);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_job_store.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_create_open_reopen);
    RUN(test_launch_twice);
    RUN(test_claim_order);
    RUN(test_dependencies);
    RUN(test_heartbeat);
    RUN(test_result_duplicate);
    RUN(test_late_result);
    RUN(test_failure_budget);
    RUN(test_preempted);
    RUN(test_quarantine);
    RUN(test_expired_and_resume);
    RUN(test_workers);
    RUN(test_retry);
    RUN(test_cancel);
    RUN(test_versions);
    RUN(test_stages_recorded);
    RUN(test_migrated_equals_new);
    RUN(test_migrate_v1_sweep);
    RUN(test_readonly_beside_writer);
    RUN(test_nested_batch);
    RUN(test_export_csv);
    RUN(test_launch_real_grids);
    RUN(test_reuse_across_sweeps);
    RUN(test_claim_result_batches);
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
    return test_summary();
}
