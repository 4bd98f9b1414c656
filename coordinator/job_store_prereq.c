/* job_store_prereq.c - prerequisite jobs and the artifacts they register (issue 10: MEMIT's
 * covariance statistics as a prerequisite job and a content-addressed artifact).
 *
 * At launch (js_launch_ex, inside its transaction), after the grid's jobs exist: for every model
 * of the sweep and every distinct statistics setting (layers, layers_depth, mom2_n_samples) that a
 * MEMIT stage of one of its compositions uses, ONE job of a composition
 *   [{"method":"memit_stats","params":{"layers":[...],"layers_depth":D,"mom2_n_samples":S}}]
 * (pattern "prereq", edit set 0, priority one above the highest of the jobs that wait for it), and
 * a `dependencies` row from every job of those compositions to it: the claim never leases them
 * before it is done (job_store.c S_CLAIM_*). The worker runs it as a prerequisite job
 * (worker/prereq.c) and its RESULT.artifacts become `artifacts` rows (js_record_artifacts).
 * Everything is INSERT ... ON CONFLICT DO NOTHING keyed by UNIQUE columns: a relaunch, a resume or
 * `cisweep run` again adds nothing. A grid without MEMIT gets no prerequisite job.
 * Not for use outside coordinator/job_store*.c (the API is in job_store.h). */
#include "coordinator/job_store_int.h"
#include "common/log.h"
#include "common/spec.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* the compositions of the sweep with a MEMIT stage, with the highest priority of their jobs */
static const char MEMIT_COMPS_SQL[] =
    "SELECT c.id, c.model_id, c.canonical, max(j.priority) FROM compositions c JOIN jobs j ON j.composition_id = c.id "
    "WHERE c.sweep_id = ?1 AND c.pattern <> 'prereq' AND instr(c.canonical, '\"memit\"') > 0 GROUP BY c.id ORDER BY c.id";
static const char COMP_INSERT_SQL[] =
    "INSERT INTO compositions(sweep_id, model_id, key, canonical, pattern, label, n_stages) "
    "VALUES (?1, ?2, ?3, ?4, 'prereq', ?5, 1) ON CONFLICT(sweep_id, model_id, key) DO NOTHING";
static const char COMP_FIND_SQL[] = "SELECT id FROM compositions WHERE sweep_id = ?1 AND model_id = ?2 AND key = ?3";
static const char JOB_INSERT_SQL[] =
    "INSERT INTO jobs(sweep_id, composition_id, model_id, edit_set, state, priority, max_attempts, created_at) "
    "VALUES (?1, ?2, ?3, 0, 'pending', ?4, ?5, ?6) ON CONFLICT(composition_id, edit_set) DO NOTHING";
static const char JOB_FIND_SQL[] = "SELECT id FROM jobs WHERE composition_id = ?1 AND edit_set = 0";
/* a later relaunch may add dependents of a higher priority: the prerequisite stays ahead of them */
static const char JOB_PRIO_SQL[] = "UPDATE jobs SET priority = ?2 WHERE id = ?1 AND state = 'pending' AND priority < ?2";
static const char DEP_INSERT_SQL[] =
    "INSERT INTO dependencies(job_id, depends_on) SELECT j.id, ?2 FROM jobs j WHERE j.composition_id = ?1 "
    "ON CONFLICT(job_id, depends_on) DO NOTHING";
static const char ART_INSERT_SQL[] =
    "INSERT INTO artifacts(key, kind, path, sha256, bytes, created_at, job_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
    "ON CONFLICT(key) DO NOTHING";

enum { Q_COMPS, Q_COMP_INSERT, Q_COMP_FIND, Q_JOB_INSERT, Q_JOB_FIND, Q_JOB_PRIO, Q_DEP_INSERT, Q_N };

typedef struct prereq_q {
    job_store *js;
    sqlite3_stmt *st[Q_N];
} prereq_q;

static void q_close(prereq_q *q) {
    for (int i = 0; i < Q_N; i++) sqlite3_finalize(q->st[i]);
}

static int q_open(prereq_q *q, job_store *js, cis_err *err) {
    static const char *const SQL[Q_N] = {MEMIT_COMPS_SQL, COMP_INSERT_SQL, COMP_FIND_SQL, JOB_INSERT_SQL,
                                         JOB_FIND_SQL,    JOB_PRIO_SQL,    DEP_INSERT_SQL};
    memset(q, 0, sizeof *q);
    q->js = js;
    for (int i = 0; i < Q_N; i++)
        if (sqlite3_prepare_v2(js->db, SQL[i], -1, &q->st[i], NULL) != SQLITE_OK) {
            js_dberr(js, err, "preparing the prerequisite-job statements");
            q_close(q);
            return -1;
        }
    return 0;
}

/* step a statement that returns one integer (1 found, 0 none, -1 error); the statement is reset */
static int q_one(prereq_q *q, sqlite3_stmt *st, int64_t *v, const char *what, cis_err *err) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) *v = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) return 1;
    return rc == SQLITE_DONE ? 0 : js_dberr(q->js, err, what);
}

/* params[name] of a memit stage, else the registry's default (common/spec_registry.c; a stored
 * canonical form has every param, a hand-made composition may not); new reference or NULL */
static json_t *memit_param(json_t *params, const char *name) {
    json_t *v = json_object_get(params, name);
    if (v) return json_incref(v);
    const method_info *mi = method_lookup("memit");
    for (const param_info *p = mi ? mi->params : NULL; p && p->name; p++)
        if (!strcmp(p->name, name) && p->default_json) return json_loads(p->default_json, JSON_DECODE_ANY, NULL);
    return NULL;
}

/* the statistics composition of a memit stage: its canonical text (malloc'd) and label (malloc'd),
 * or -1 with err naming what the stage lacks */
static int stats_comp(json_t *stage, int64_t comp_id, char **canonical, char **label, cis_err *err) {
    json_t *p = json_object_get(stage, "params");
    json_t *layers = memit_param(p, "layers"), *depth = memit_param(p, "layers_depth"), *ns = memit_param(p, "mom2_n_samples");
    if (!json_is_array(layers) || !json_is_integer(depth) || !json_is_integer(ns)) {
        json_decref(layers); json_decref(depth); json_decref(ns);
        return err_set(err, CIS_EINVAL, "composition %lld: a memit stage whose layers (a list), layers_depth and "
                       "mom2_n_samples (integers) are not what the registry declares", (long long)comp_id);
    }
    json_t *sp = json_pack("{s:o, s:o, s:o}", "layers", layers, "layers_depth", depth, "mom2_n_samples", ns);
    json_t *arr = json_pack("[{s:s, s:o}]", "method", "memit_stats", "params", sp);
    *canonical = json_dumps(arr, JSON_COMPACT | JSON_SORT_KEYS);
    char *ls = json_dumps(json_object_get(sp, "layers"), JSON_COMPACT);
    *label = xasprintf("memit_stats layers %s/%lld n=%lld", ls, (long long)json_integer_value(json_object_get(sp, "layers_depth")),
                       (long long)json_integer_value(json_object_get(sp, "mom2_n_samples")));
    free(ls);
    json_decref(arr);
    return 0;
}

/* one prerequisite (found or added) for composition comp_id's memit stage; dependencies from its jobs */
static int add_one(prereq_q *q, int64_t sweep_id, int64_t model_id, int64_t comp_id, int prio, json_t *stage,
                   int max_attempts, int64_t now, js_launch_stats *s, cis_err *err) {
    char *canonical = NULL, *label = NULL;
    if (stats_comp(stage, comp_id, &canonical, &label, err)) return -1;
    char *desc = xasprintf("cisweep prereq v1\n%s", canonical), key[65];
    sha256_hex(desc, strlen(desc), key);
    free(desc);
    int rc = -1;
    int64_t pcomp = 0, pjob = 0;
    sqlite3_stmt *st = q->st[Q_COMP_INSERT];
    sqlite3_bind_int64(st, 1, sweep_id);
    sqlite3_bind_int64(st, 2, model_id);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, canonical, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, label, -1, SQLITE_TRANSIENT);
    if (js_run(q->js, st, "adding a statistics composition", err) < 0) goto out;
    st = q->st[Q_COMP_FIND];
    sqlite3_bind_int64(st, 1, sweep_id);
    sqlite3_bind_int64(st, 2, model_id);
    sqlite3_bind_text(st, 3, key, -1, SQLITE_TRANSIENT);
    if (q_one(q, st, &pcomp, "looking up a statistics composition", err) != 1) {
        if (!err->code) err_set(err, CIS_EDB, "%s: the statistics composition vanished", q->js->path);
        goto out;
    }
    st = q->st[Q_JOB_INSERT];
    sqlite3_bind_int64(st, 1, sweep_id);
    sqlite3_bind_int64(st, 2, pcomp);
    sqlite3_bind_int64(st, 3, model_id);
    sqlite3_bind_int(st, 4, prio + 1);
    sqlite3_bind_int(st, 5, max_attempts);
    sqlite3_bind_int64(st, 6, now);
    if (js_run(q->js, st, "adding a statistics job", err) < 0) goto out;
    bool added = sqlite3_changes(q->js->db) == 1;
    st = q->st[Q_JOB_FIND];
    sqlite3_bind_int64(st, 1, pcomp);
    if (q_one(q, st, &pjob, "looking up a statistics job", err) != 1) {
        if (!err->code) err_set(err, CIS_EDB, "%s: the statistics job vanished", q->js->path);
        goto out;
    }
    if (added) s->prereqs_added++;
    st = q->st[Q_JOB_PRIO];
    sqlite3_bind_int64(st, 1, pjob);
    sqlite3_bind_int(st, 2, prio + 1);
    if (js_run(q->js, st, "raising a statistics job's priority", err) < 0) goto out;
    st = q->st[Q_DEP_INSERT];
    sqlite3_bind_int64(st, 1, comp_id);
    sqlite3_bind_int64(st, 2, pjob);
    if (js_run(q->js, st, "adding the dependencies on a statistics job", err) < 0) goto out;
    rc = 0;
out:
    free(canonical);
    free(label);
    return rc;
}

int js_launch_prereqs(job_store *js, int64_t sweep_id, int max_attempts, int64_t now, js_launch_stats *s,
                      cis_err *err) {
    prereq_q q;
    if (q_open(&q, js, err)) return -1;
    int before = s->prereqs_added, rc = 0;
    sqlite3_stmt *st = q.st[Q_COMPS];
    sqlite3_bind_int64(st, 1, sweep_id);
    int r;
    while (!rc && (r = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t comp_id = sqlite3_column_int64(st, 0), model_id = sqlite3_column_int64(st, 1);
        int prio = sqlite3_column_int(st, 3);
        json_t *stages = json_loads((const char *)sqlite3_column_text(st, 2), 0, NULL);
        size_t i;
        json_t *stage;
        json_array_foreach(stages, i, stage) {
            const char *m = json_string_value(json_object_get(stage, "method"));
            if (m && !strcmp(m, "memit") &&
                add_one(&q, sweep_id, model_id, comp_id, prio, stage, max_attempts, now, s, err)) {
                rc = -1;
                break;
            }
        }
        json_decref(stages);
    }
    if (!rc && r != SQLITE_DONE) rc = js_dberr(js, err, "listing the MEMIT compositions");
    if (!rc) {
        /* the distinct prerequisites of the sweep, for the caller's summary */
        sqlite3_stmt *cnt = NULL;
        if (sqlite3_prepare_v2(js->db, "SELECT count(*) FROM compositions WHERE sweep_id = ?1 AND pattern = 'prereq'", -1,
                               &cnt, NULL) != SQLITE_OK) {
            rc = js_dberr(js, err, "counting the statistics jobs");
        } else {
            sqlite3_bind_int64(cnt, 1, sweep_id);
            int64_t n = 0;
            if (q_one(&q, cnt, &n, "counting the statistics jobs", err) < 0) rc = -1;
            s->prereqs_existing = (int)n - (s->prereqs_added - before);
        }
        sqlite3_finalize(cnt);
    }
    q_close(&q);
    return rc;
}

int js_record_artifacts(job_store *js, int64_t job_id, const js_artifact *a, size_t n, int64_t now, cis_err *err) {
    if (n == 0) return 0;
    bool own;
    if (js_tx_enter(js, &own, err) < 0) return -1;
    sqlite3_stmt *st = NULL;
    int rc = 0;
    if (sqlite3_prepare_v2(js->db, ART_INSERT_SQL, -1, &st, NULL) != SQLITE_OK) rc = js_dberr(js, err, "preparing the artifact insert");
    for (size_t i = 0; i < n && !rc; i++) {
        if (!a[i].key || !a[i].kind || !a[i].path) {
            rc = err_set(err, CIS_EINVAL, "artifact %zu of job %lld: key, kind and path are required", i, (long long)job_id);
            break;
        }
        sqlite3_reset(st);
        sqlite3_bind_text(st, 1, a[i].key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, a[i].kind, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 3, a[i].path, -1, SQLITE_TRANSIENT);
        js_bind_text_or_null(st, 4, a[i].sha256);
        if (a[i].bytes >= 0) sqlite3_bind_int64(st, 5, a[i].bytes);
        else sqlite3_bind_null(st, 5);
        sqlite3_bind_int64(st, 6, now);
        js_bind_id_or_null(st, 7, job_id);
        if (sqlite3_step(st) != SQLITE_DONE) rc = js_dberr(js, err, "recording an artifact");
    }
    sqlite3_finalize(st);
    return js_tx_leave(js, own, rc, err);
}
