/* test_job_store_views.c - how the job store keeps the analysis views of schema/views.sql
 * (coordinator/job_store_views.c) in real files: a new file has them with this build's marker; a
 * writable reopen of a current file writes nothing; a file whose views are missing or another
 * build's gets them back on a writable open; a read-only open of such a file gets TEMP views and
 * leaves the file untouched; a file where a view name is taken by a table is refused with a
 * message naming the file and views.sql, and left as it was. The numbers the views compute are
 * checked in tests/coordinator/test_views.py. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/job_store.h"
#include "tests/testlib.h"

static char tmpdir[256];
static int dbn;

static char *new_db_path(void) { return xasprintf("%s/v%d.db", tmpdir, ++dbn); }

/* one integer / text from a query on a raw connection (-999 / "(none)" when no row or an error) */
static long long raw_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    long long v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static char *raw_text(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    char *v = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
        sqlite3_column_text(st, 0))
        v = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return v ? v : xstrdup("(none)");
}

static int raw_exec(const char *path, const char *sql) {
    sqlite3 *db = NULL;
    int rc = sqlite3_open(path, &db);
    if (rc == SQLITE_OK) rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) fprintf(stderr, "  raw_exec(%s): %s\n", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc;
}

/* views of the file itself (main schema, a fresh connection) named `name`: 0 or 1 */
static long long file_has_view(const char *path, const char *name) {
    sqlite3 *db = NULL;
    long long n = -999;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        char *q = xasprintf("SELECT count(*) FROM sqlite_schema WHERE type = 'view' AND name = '%s'", name);
        n = raw_int(db, q);
        free(q);
    }
    sqlite3_close(db);
    return n;
}

static char *file_marker(const char *path) {
    sqlite3 *db = NULL;
    char *s = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
        s = raw_text(db, "SELECT sql FROM sqlite_schema WHERE name = 'v_views_version'");
    sqlite3_close(db);
    return s ? s : xstrdup("(none)");
}

static job_store *open_store(const char *path, unsigned flags) {
    job_store *js = NULL;
    cis_err err = {0};
    if (job_store_open(path, flags, &js, &err) < 0) fprintf(stderr, "  open %s: %s\n", path, err.msg);
    return js;
}

static const char *const VIEWS[] = {"v_composition_stages", "v_run_metrics", "v_composition_metrics",
                                    "v_composability_sets", "v_composability", "v_composability_table",
                                    "v_composability_area", "v_views_version"};
#define N_VIEWS (sizeof VIEWS / sizeof VIEWS[0])

/* drop every analysis view from the file: what a file of an older build looks like */
static int drop_all_views(const char *path) {
    char sql[1024] = "";
    for (size_t i = 0; i < N_VIEWS; i++) {
        char one[96];
        snprintf(one, sizeof one, "DROP VIEW IF EXISTS %s;", VIEWS[i]);
        strcat(sql, one);
    }
    return raw_exec(path, sql);
}

static void test_new_file_has_views(void) {
    char *p = new_db_path();
    job_store *js = open_store(p, JS_CREATE | JS_NOSYNC);
    CHECK(js != NULL);
    if (!js) { free(p); return; }
    for (size_t i = 0; i < N_VIEWS; i++) CHECK_MSG(file_has_view(p, VIEWS[i]) == 1, "%s", VIEWS[i]);
    char sha[65], *m = raw_text(job_store_db(js), "SELECT views_sha256 FROM v_views_version");
    js_views_sha256(sha);
    CHECK_EQ_STR(m, sha);
    CHECK_EQ_INT(strlen(sha), 64);
    /* every view prepares and runs on the empty sweep */
    CHECK_EQ_INT(raw_int(job_store_db(js), "SELECT count(*) FROM v_composability_table"), 0);
    CHECK_EQ_INT(raw_int(job_store_db(js), "SELECT count(*) FROM v_composability"), 0);
    /* views.sql is idempotent: running it again on the same connection changes nothing */
    CHECK_EQ_INT(sqlite3_exec(job_store_db(js), js_views_sql(), NULL, NULL, NULL), SQLITE_OK);
    CHECK_EQ_INT(raw_int(job_store_db(js), "SELECT count(*) FROM v_composition_metrics"), 0);
    free(m);
    job_store_close(&js);
    free(p);
}

/* a writable reopen of a file whose views are current changes no schema (no write at all) */
static void test_current_file_untouched(void) {
    char *p = new_db_path();
    job_store *js = open_store(p, JS_CREATE | JS_NOSYNC);
    if (!js) { CHECK(0); free(p); return; }
    long long cookie = raw_int(job_store_db(js), "PRAGMA schema_version");
    job_store_close(&js);
    js = open_store(p, JS_NOSYNC);
    CHECK(js != NULL);
    if (js) {
        CHECK_EQ_INT(raw_int(job_store_db(js), "PRAGMA schema_version"), cookie);
        job_store_close(&js);
    }
    free(p);
}

/* views of another build (a stale marker, an old definition, one missing) are replaced on a
 * writable open; the user_version does not move */
static void test_stale_views_recreated(void) {
    char *p = new_db_path();
    job_store *js = open_store(p, JS_CREATE | JS_NOSYNC);
    if (!js) { CHECK(0); free(p); return; }
    job_store_close(&js);
    CHECK_EQ_INT(raw_exec(p, "DROP VIEW v_views_version; CREATE VIEW v_views_version AS SELECT 'old' AS views_sha256;"
                             "DROP VIEW v_composability_table; CREATE VIEW v_composability_table AS SELECT 1 AS x;"
                             "DROP VIEW v_composability_sets;"),
                 SQLITE_OK);
    CHECK_EQ_INT(file_has_view(p, "v_composability_sets"), 0);
    js = open_store(p, JS_NOSYNC);
    CHECK(js != NULL);
    if (!js) { free(p); return; }
    char sha[65];
    js_views_sha256(sha);
    char *m = file_marker(p);
    CHECK_MSG(strstr(m, sha) != NULL, "marker %s", m);
    free(m);
    CHECK_EQ_INT(file_has_view(p, "v_composability_sets"), 1);
    /* the new definition, not `SELECT 1 AS x` */
    CHECK_EQ_INT(raw_int(job_store_db(js), "SELECT count(e_of_raw) FROM v_composability_table"), 0);
    CHECK_EQ_INT(raw_int(job_store_db(js), "PRAGMA user_version"), JOB_STORE_SCHEMA_VERSION);
    job_store_close(&js);
    free(p);
}

/* a read-only open of a file without the views (an older build's) has them as TEMP views of its
 * connection, leaves the file without them, and stays read-only */
static void test_readonly_temp_views(void) {
    char *p = new_db_path();
    job_store *js = open_store(p, JS_CREATE | JS_NOSYNC);
    if (!js) { CHECK(0); free(p); return; }
    job_store_close(&js);
    CHECK_EQ_INT(drop_all_views(p), SQLITE_OK);
    CHECK_EQ_INT(file_has_view(p, "v_composability"), 0);
    js = open_store(p, JS_READONLY);
    CHECK(js != NULL);
    if (!js) { free(p); return; }
    sqlite3 *db = job_store_db(js);
    CHECK_EQ_INT(raw_int(db, "SELECT count(*) FROM v_composability_table"), 0);
    CHECK_EQ_INT(raw_int(db, "SELECT count(*) FROM v_composition_metrics"), 0);
    CHECK_EQ_INT(raw_int(db, "SELECT count(*) FROM temp.sqlite_schema WHERE type = 'view'"), (long long)N_VIEWS);
    char sha[65], *m = raw_text(db, "SELECT views_sha256 FROM v_views_version");
    js_views_sha256(sha);
    CHECK_EQ_STR(m, sha);
    free(m);
    CHECK_EQ_INT(raw_int(db, "PRAGMA query_only"), 1);
    CHECK(sqlite3_exec(db, "INSERT INTO sweeps(name, created_at) VALUES ('x', 1)", NULL, NULL, NULL) != SQLITE_OK);
    job_store_close(&js);
    CHECK_EQ_INT(file_has_view(p, "v_composability"), 0);
    CHECK_EQ_INT(file_has_view(p, "v_views_version"), 0);
    /* and a file whose views are current gets no TEMP copies */
    js = open_store(p, JS_NOSYNC);
    if (js) job_store_close(&js);
    js = open_store(p, JS_READONLY);
    CHECK(js != NULL);
    if (js) {
        CHECK_EQ_INT(raw_int(job_store_db(js), "SELECT count(*) FROM temp.sqlite_schema"), 0);
        CHECK_EQ_INT(raw_int(job_store_db(js), "SELECT count(*) FROM v_composability"), 0);
        job_store_close(&js);
    }
    free(p);
}

/* a view name taken by a table: the writable open fails, naming the file and views.sql, and the
 * file keeps what it had (the transaction rolled back) */
static void test_name_taken_refused(void) {
    char *p = new_db_path();
    job_store *js = open_store(p, JS_CREATE | JS_NOSYNC);
    if (!js) { CHECK(0); free(p); return; }
    job_store_close(&js);
    CHECK_EQ_INT(drop_all_views(p), SQLITE_OK);
    CHECK_EQ_INT(raw_exec(p, "CREATE TABLE v_composability (x INTEGER)"), SQLITE_OK);
    cis_err err = {0};
    CHECK_EQ_INT(job_store_open(p, JS_NOSYNC, &js, &err), -1);
    CHECK(js == NULL);
    CHECK_EQ_INT(err.code, CIS_EDB);
    CHECK_MSG(strstr(err.msg, p) && strstr(err.msg, "schema/views.sql") && strstr(err.msg, "v_composability"),
              "%s", err.msg);
    CHECK_EQ_INT(file_has_view(p, "v_run_metrics"), 0);
    CHECK_EQ_INT(file_has_view(p, "v_views_version"), 0);
    free(p);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_job_store_views.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_new_file_has_views);
    RUN(test_current_file_untouched);
    RUN(test_stale_views_recreated);
    RUN(test_readonly_temp_views);
    RUN(test_name_taken_refused);
    char *rm = xasprintf("rm -rf '%s'", tmpdir);
    if (system(rm) != 0) fprintf(stderr, "  could not remove %s\n", tmpdir);
    free(rm);
    return test_summary();
}
