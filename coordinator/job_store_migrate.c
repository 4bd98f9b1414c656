/* job_store_migrate.c - schema creation and upgrades of the job store.
 *
 * PRAGMA user_version is the schema version. On open:
 *   0 and no tables        -> run schema/schema.sql (compiled in) in one transaction; it ends by
 *                             setting user_version = JOB_STORE_SCHEMA_VERSION
 *   0 with tables          -> refused: not a cisweep database
 *   older than ours        -> the steps of JS_MIGRATIONS below, in order, in one transaction
 *                             (read-only opens refuse instead: they never write)
 *   ours                   -> nothing
 *   newer than ours        -> refused (CIS_EVERSION): upgrade cisweep
 *
 * To change the schema: edit schema/schema.sql (the full current schema, for new files), bump
 * JOB_STORE_SCHEMA_VERSION, and append a step {from_version = old, sql} here that takes a file of
 * the old version to the new one (ALTER TABLE ..., CREATE INDEX ..., DROP VIEW + CREATE VIEW for
 * changed views). tests/coordinator/test_job_store.c checks that a migrated file and a new file
 * have the same schema. */
#include "coordinator/job_store_int.h"

#include <stdlib.h>
#include <string.h>


/* steps from version N to N+1 (version 1 is the first released schema) */
const js_migration JS_MIGRATIONS[] = {
    /* 1 -> 2: the stages table (what ran: effective params, seed, record, wall time per stage) */
    {1, "CREATE TABLE stages (\n"
        "    job_id      INTEGER NOT NULL,\n"
        "    attempt     INTEGER NOT NULL,\n"
        "    stage       INTEGER NOT NULL CHECK (stage >= 1),  -- 1-based position in the plan that ran\n"
        "    of_stage    INTEGER NOT NULL CHECK (of_stage >= 1), -- 1-based position in the composition\n"
        "    method      TEXT NOT NULL,\n"
        "    category    TEXT,                   -- edit, compress, unlearn, test\n"
        "    recompress  INTEGER NOT NULL DEFAULT 0 CHECK (recompress IN (0, 1)),\n"
        "    params_json TEXT NOT NULL,          -- the effective params (canonical JSON)\n"
        "    seed        INTEGER,                -- the stage's seed (= the edit set)\n"
        "    record_json TEXT,                   -- what the method did (free-form JSON object)\n"
        "    phases_json TEXT,                   -- wall seconds per phase, {\"calibrate\": 1.5, ...}\n"
        "    wall_ms     INTEGER,                -- the stage's wall time\n"
        "    created_at  INTEGER NOT NULL,\n"
        "    PRIMARY KEY (job_id, attempt, stage),\n"
        "    FOREIGN KEY (job_id, attempt) REFERENCES attempts(job_id, attempt)\n"
        ") STRICT;\n"
        "CREATE INDEX stages_method ON stages (method);\n"
        "CREATE VIEW v_stages AS\n"
        "SELECT st.job_id AS job_id,\n"
        "       s.name AS sweep,\n"
        "       m.name AS model,\n"
        "       c.pattern AS pattern,\n"
        "       c.label AS label,\n"
        "       j.edit_set AS edit_set,\n"
        "       st.attempt AS attempt,\n"
        "       (j.state = 'done' AND j.current_attempt = st.attempt) AS is_current,\n"
        "       st.stage AS stage,\n"
        "       st.of_stage AS of_stage,\n"
        "       st.method AS method,\n"
        "       st.category AS category,\n"
        "       st.recompress AS recompress,\n"
        "       st.params_json AS params_json,\n"
        "       st.seed AS seed,\n"
        "       st.record_json AS record_json,\n"
        "       st.phases_json AS phases_json,\n"
        "       st.wall_ms AS wall_ms,\n"
        "       st.created_at AS created_at\n"
        "FROM stages st\n"
        "JOIN jobs j         ON j.id = st.job_id\n"
        "JOIN sweeps s       ON s.id = j.sweep_id\n"
        "JOIN models m       ON m.id = j.model_id\n"
        "JOIN compositions c ON c.id = j.composition_id;\n"},
    /* 2 -> 3: the recompress policy of each composition (no row: 'paper', what version 2 ran) */
    {2, "CREATE TABLE composition_policy (\n"
        "    composition_id INTEGER PRIMARY KEY REFERENCES compositions(id),\n"
        "    recompress     TEXT NOT NULL CHECK (recompress IN ('paper', 'never', 'always', 'mask'))\n"
        ") STRICT;\n"},
    /* 3 -> 4: scheduling by device memory (issue 15): each job's estimated need, each worker's offer
     * (jobs launched by version 3 have no estimate: any worker may take them) */
    {3, "CREATE TABLE job_memory (\n"
        "    job_id  INTEGER PRIMARY KEY REFERENCES jobs(id),\n"
        "    need_mb INTEGER NOT NULL CHECK (need_mb >= 1),  -- MiB\n"
        "    kind    TEXT NOT NULL,                          -- inference, train, edit-stats, override\n"
        "    basis   TEXT NOT NULL                           -- the formula's inputs, one line\n"
        ") STRICT;\n"
        "CREATE TABLE worker_memory (\n"
        "    worker_id  TEXT PRIMARY KEY REFERENCES workers(id),\n"
        "    free_mb    INTEGER NOT NULL,                    -- MiB\n"
        "    source     TEXT NOT NULL CHECK (source IN ('measured', 'option')),\n"
        "    updated_at INTEGER NOT NULL\n"
        ") STRICT;\n"},
};
const size_t JS_N_MIGRATIONS = sizeof JS_MIGRATIONS / sizeof JS_MIGRATIONS[0];

static int read_user_version(sqlite3 *db, const char *path, int *v, cis_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        err_set(err, CIS_EDB, "%s: cannot read the schema version: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int count_objects(sqlite3 *db, const char *path, int *n, cis_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_schema", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        err_set(err, CIS_EDB, "%s: cannot read the schema: %s", path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    *n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int exec_db(sqlite3 *db, const char *path, const char *sql, const char *what, cis_err *err) {
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(err, CIS_EDB, "%s: %s: %s", path, what, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int newer_error(const char *path, int v, cis_err *err) {
    return err_set(err, CIS_EVERSION, "%s: schema version %d is newer than this cisweep supports (%d); "
                   "upgrade cisweep to open it", path, v, JOB_STORE_SCHEMA_VERSION);
}

/* create the schema in an empty file (re-checked inside the write transaction: another process may
 * have created it meanwhile) */
static int create_schema(sqlite3 *db, const char *path, cis_err *err) {
    if (exec_db(db, path, "BEGIN IMMEDIATE", "starting schema creation", err) < 0) return -1;
    int v, n;
    if (read_user_version(db, path, &v, err) < 0 || count_objects(db, path, &n, err) < 0) goto fail;
    if (v != 0 || n != 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return 1; /* someone else did it: re-examine */
    }
    if (exec_db(db, path, js_schema_sql(), "creating the schema (schema/schema.sql)", err) < 0) goto fail;
    if (read_user_version(db, path, &v, err) < 0) goto fail;
    if (v != JOB_STORE_SCHEMA_VERSION) {
        err_set(err, CIS_EVERSION, "%s: schema/schema.sql sets user_version %d but this build expects %d "
                "(build inconsistency)", path, v, JOB_STORE_SCHEMA_VERSION);
        goto fail;
    }
    if (exec_db(db, path, "COMMIT", "committing the new schema", err) < 0) goto fail;
    return 0;
fail:
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

int js_migrate(sqlite3 *db, const char *path, int to, const js_migration *steps, size_t n_steps,
               cis_err *err) {
    int v;
    /* foreign keys off while tables may be rebuilt (the pragma is a no-op inside a transaction);
     * foreign_key_check runs before the commit instead */
    if (exec_db(db, path, "PRAGMA foreign_keys = OFF", "migrating", err) < 0) return -1;
    if (exec_db(db, path, "BEGIN IMMEDIATE", "starting the migration", err) < 0) goto out_fk;
    if (read_user_version(db, path, &v, err) < 0) goto fail;
    if (v > to) { newer_error(path, v, err); goto fail; }
    int from = v;
    while (v < to) {
        const js_migration *m = NULL;
        for (size_t i = 0; i < n_steps; i++)
            if (steps[i].from_version == v && steps[i].sql) { m = &steps[i]; break; }
        if (!m) {
            err_set(err, CIS_EVERSION, "%s: no migration from schema version %d to %d in this cisweep", path, v,
                    v + 1);
            goto fail;
        }
        char what[96];
        snprintf(what, sizeof what, "migrating schema version %d to %d", v, v + 1);
        if (exec_db(db, path, m->sql, what, err) < 0) goto fail;
        v++;
        char *pragma = xasprintf("PRAGMA user_version = %d", v);
        int rc = exec_db(db, path, pragma, "setting user_version", err);
        free(pragma);
        if (rc < 0) goto fail;
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK) {
        err_set(err, CIS_EDB, "%s: foreign_key_check: %s", path, sqlite3_errmsg(db));
        goto fail;
    }
    int frc = sqlite3_step(st);
    if (frc == SQLITE_ROW) {
        err_set(err, CIS_EDB, "%s: migration %d -> %d broke a foreign key (table %s row %lld)", path, from, to,
                (const char *)sqlite3_column_text(st, 0), (long long)sqlite3_column_int64(st, 1));
        sqlite3_finalize(st);
        goto fail;
    }
    sqlite3_finalize(st);
    if (exec_db(db, path, "COMMIT", "committing the migration", err) < 0) goto fail;
    exec_db(db, path, "PRAGMA foreign_keys = ON", "migrating", NULL);
    return 0;
fail:
    if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
out_fk:
    sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL);
    return -1;
}

int js_schema_prepare(job_store *js, cis_err *err) {
    bool ro = js->flags & JS_READONLY;
    for (int tries = 0; tries < 3; tries++) {
        int v, n;
        if (read_user_version(js->db, js->path, &v, err) < 0) return -1;
        if (v > JOB_STORE_SCHEMA_VERSION) return newer_error(js->path, v, err);
        if (v == JOB_STORE_SCHEMA_VERSION) { js->user_version = v; return 0; }
        if (v == 0) {
            if (count_objects(js->db, js->path, &n, err) < 0) return -1;
            if (n > 0)
                return err_set(err, CIS_EVERSION, "%s: not a cisweep database (schema version 0 but it has %d "
                               "tables/indexes/views)", js->path, n);
            if (ro) return err_set(err, CIS_EINVAL, "%s: empty database (no sweep launched yet)", js->path);
            int rc = create_schema(js->db, js->path, err);
            if (rc < 0) return -1;
            continue; /* re-read: ours now (or another process's) */
        }
        /* older */
        if (ro)
            return err_set(err, CIS_EVERSION, "%s: schema version %d is older than this cisweep's (%d); open it "
                           "once read-write (e.g. cisweep resume) to migrate it", js->path, v,
                           JOB_STORE_SCHEMA_VERSION);
        if (js_migrate(js->db, js->path, JOB_STORE_SCHEMA_VERSION, JS_MIGRATIONS, JS_N_MIGRATIONS, err) < 0)
            return -1;
    }
    return err_set(err, CIS_EDB, "%s: the schema version keeps changing under us", js->path);
}
