/* test_findings_copies.c - the temporary copies of the composability views that findings_print
 * (coordinator/findings.c) reads instead of the views: on a read-only job store (PRAGMA query_only
 * ON, as `cisweep findings` and `cisweep run` open it) the copies are made, query_only is ON again
 * afterwards, no copy is left behind and the file still refuses writes; a stale copy left on the
 * connection is replaced, so a second call works; a connection without the views gets -1 and a
 * message naming the view, with query_only restored. The numbers printed from the copies are
 * checked against the views in tests/coordinator/test_findings.py. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/findings.h"
#include "coordinator/job_store.h"
#include "tests/testlib.h"

static char tmpdir[256];

static long long raw_int(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    long long v = -999;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

#define COPIES_LEFT "SELECT count(*) FROM temp.sqlite_schema WHERE name IN ('findings_cm', 'findings_ca')"

/* findings_print into a string; *text: the printed output (caller frees) */
static int print_to_string(sqlite3 *db, const char *sweep, char **text) {
    size_t len = 0;
    FILE *f = open_memstream(text, &len);
    int rc = findings_print(db, sweep, f);
    fclose(f);
    return rc;
}

static void test_readonly_store(void) {
    char *p = xasprintf("%s/f.db", tmpdir);
    cis_err err = {0};
    job_store *js = NULL;
    CHECK_EQ_INT(job_store_open(p, JS_CREATE | JS_NOSYNC, &js, &err), 0);
    job_store_close(&js);
    CHECK_EQ_INT(job_store_open(p, JS_READONLY, &js, &err), 0);
    if (!js) { free(p); return; }
    sqlite3 *db = job_store_db(js);
    CHECK_EQ_INT(raw_int(db, "PRAGMA query_only"), 1);
    char *out = NULL;
    CHECK_EQ_INT(print_to_string(db, NULL, &out), 0);   /* no compositions: 0 findings with data */
    CHECK_MSG(strstr(out, "no finished compositions in this database") != NULL, "%s", out);
    CHECK_MSG(strstr(out, "findings:") == out && !strstr(out, "cannot"), "%s", out);
    free(out);
    CHECK_EQ_INT(raw_int(db, "PRAGMA query_only"), 1);
    CHECK_EQ_INT(raw_int(db, COPIES_LEFT), 0);
    CHECK(sqlite3_exec(db, "CREATE TABLE main.x (a)", NULL, NULL, NULL) != SQLITE_OK);
    /* a stale copy on the connection (a call that died half-way) is replaced, not an error */
    CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA query_only = OFF; CREATE TEMP TABLE findings_ca (junk);"
                                  "PRAGMA query_only = ON", NULL, NULL, NULL), SQLITE_OK);
    CHECK_EQ_INT(print_to_string(db, "some-sweep", &out), 0);
    CHECK_MSG(strstr(out, "no finished compositions in some-sweep") != NULL, "%s", out);
    free(out);
    CHECK_EQ_INT(raw_int(db, COPIES_LEFT), 0);
    CHECK_EQ_INT(raw_int(db, "PRAGMA query_only"), 1);
    job_store_close(&js);
    free(p);
}

static void test_no_views(void) {
    sqlite3 *db = NULL;
    CHECK_EQ_INT(sqlite3_open(":memory:", &db), SQLITE_OK);
    CHECK_EQ_INT(sqlite3_exec(db, "PRAGMA query_only = ON", NULL, NULL, NULL), SQLITE_OK);
    char *out = NULL;
    CHECK_EQ_INT(print_to_string(db, NULL, &out), -1);
    CHECK_MSG(strstr(out, "findings: cannot read the composability views (v_composition_metrics): no such table") != NULL,
              "%s", out);
    free(out);
    CHECK_EQ_INT(raw_int(db, "PRAGMA query_only"), 1);
    CHECK_EQ_INT(raw_int(db, COPIES_LEFT), 0);
    sqlite3_close(db);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_findings_copies.XXXXXX");
    if (!mkdtemp(tmpdir)) { perror("mkdtemp"); return 1; }
    RUN(test_readonly_store);
    RUN(test_no_views);
    char *rm = xasprintf("rm -rf '%s'", tmpdir);
    if (system(rm) != 0) fprintf(stderr, "  could not remove %s\n", tmpdir);
    free(rm);
    return test_summary();
}
