/* report_data.c - loads what `cisweep report` shows (see report_data.h). The three composability
 * names resolve to the DB's views (schema/views.sql) when it has them; otherwise to the fallback
 * definitions below, common table expressions with the same names and columns, computed from
 * v_runs and compositions exactly as docs/report.md states (means and standard errors over edit
 * sets; E_OF = 1 - max, E_OS = |difference| for the higher-is-better metrics, min and |difference|
 * for WMDP = (bio + cyber) / 2; headline level 25% sparsity / 4 bits; an Average row per column).
 * Switching to the views needs nothing but the views being in the DB. */
#include "coordinator/report_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the fallback definitions; each name and column is that of schema/views.sql's view */
static const char FALLBACK_SQL[] =
    "WITH\n"
    /* every done job's current metrics, long form; WMDP is v_runs' wmdp_avg (reported, or bio+cyber / 2) */
    "_runs AS (SELECT j.composition_id, v.mmlu, v.wmdp_avg, v.edit_success, v.generalization, v.locality\n"
    "          FROM v_runs v JOIN jobs j ON j.id = v.job_id),\n"
    "_long AS (SELECT composition_id, 'edit_success' AS metric, edit_success AS value FROM _runs WHERE edit_success IS NOT NULL\n"
    "  UNION ALL SELECT composition_id, 'generalization', generalization FROM _runs WHERE generalization IS NOT NULL\n"
    "  UNION ALL SELECT composition_id, 'locality', locality FROM _runs WHERE locality IS NOT NULL\n"
    "  UNION ALL SELECT composition_id, 'mmlu', mmlu FROM _runs WHERE mmlu IS NOT NULL\n"
    "  UNION ALL SELECT composition_id, 'wmdp', wmdp_avg FROM _runs WHERE wmdp_avg IS NOT NULL),\n"
    "_dev AS (SELECT composition_id, metric, value,\n"
    "                avg(value) OVER (PARTITION BY composition_id, metric) AS mu FROM _long),\n"
    "_agg AS (SELECT composition_id, metric, count(*) AS n, avg(value) AS mean,\n"
    "                CASE WHEN count(*) > 1 THEN sqrt(sum((value - mu) * (value - mu)) / (count(*) - 1) / count(*)) END AS se\n"
    "         FROM _dev GROUP BY composition_id, metric),\n"
    "_cat AS (SELECT c.*, CASE WHEN instr(c.pattern, '->') > 0 THEN substr(c.pattern, 1, instr(c.pattern, '->') - 1)\n"
    "                          WHEN c.n_stages >= 1 THEN c.pattern END AS cat1,\n"
    "                     CASE WHEN c.n_stages >= 2 THEN substr(c.pattern, instr(c.pattern, '->') + 2) END AS rest\n"
    "         FROM compositions c),\n"
    "v_composition_metrics AS (\n"
    "  SELECT s.name AS sweep, m.name AS model, c.id AS composition_id, c.pattern, c.label, c.n_stages,\n"
    "         json_extract(c.canonical, '$[0].method') AS method_1, c.cat1 AS category_1,\n"
    "         CASE WHEN c.cat1 = 'compress' THEN coalesce(json_extract(c.canonical, '$[0].params.sparsity'),\n"
    "                                                     json_extract(c.canonical, '$[0].params.bits')) END AS level_1,\n"
    "         json_extract(c.canonical, '$[1].method') AS method_2,\n"
    "         CASE WHEN instr(c.rest, '->') > 0 THEN substr(c.rest, 1, instr(c.rest, '->') - 1) ELSE c.rest END AS category_2,\n"
    "         CASE WHEN c.rest = 'compress' OR c.rest LIKE 'compress->%' THEN\n"
    "              coalesce(json_extract(c.canonical, '$[1].params.sparsity'), json_extract(c.canonical, '$[1].params.bits')) END AS level_2,\n"
    "         a.metric, a.n, a.mean, a.se\n"
    "  FROM _agg a JOIN _cat c ON c.id = a.composition_id\n"
    "  JOIN sweeps s ON s.id = c.sweep_id JOIN models m ON m.id = c.model_id),\n"
    /* every two-stage composition of two categories as the pair (a, b), a_first = it ran a then b */
    "_two AS (SELECT *, CASE WHEN 'compress' IN (category_1, category_2)\n"
    "                        THEN CASE WHEN 'edit' IN (category_1, category_2) THEN 'edit_compress' ELSE 'unlearn_compress' END\n"
    "                        ELSE 'edit_unlearn' END AS pair_kind,\n"
    "                   (category_1 = 'compress' OR (category_1 = 'edit' AND category_2 = 'unlearn')) AS a_first\n"
    "         FROM v_composition_metrics\n"
    "         WHERE n_stages = 2 AND category_1 <> category_2\n"
    "           AND category_1 IN ('edit', 'compress', 'unlearn') AND category_2 IN ('edit', 'compress', 'unlearn')),\n"
    "_ab AS (SELECT sweep, model, pair_kind, a_first, metric, n, mean, se,\n"
    "               CASE WHEN a_first THEN method_1 ELSE method_2 END AS method_a,\n"
    "               CASE WHEN a_first THEN level_1 ELSE level_2 END AS level_a,\n"
    "               CASE WHEN a_first THEN method_2 ELSE method_1 END AS method_b,\n"
    "               CASE WHEN a_first THEN level_2 ELSE level_1 END AS level_b FROM _two),\n"
    "_k AS (SELECT x.sweep, x.model, x.pair_kind, x.method_a, x.level_a, x.method_b, x.level_b, x.metric,\n"
    "              x.mean AS kappa_ab, y.mean AS kappa_ba, x.n AS n_ab, y.n AS n_ba, x.se AS se_ab, y.se AS se_ba,\n"
    "              CASE WHEN x.metric = 'wmdp' THEN min(x.mean, y.mean) ELSE 1 - max(x.mean, y.mean) END AS e_of,\n"
    "              abs(x.mean - y.mean) AS e_os\n"
    "       FROM _ab x JOIN _ab y ON y.sweep = x.sweep AND y.model = x.model AND y.pair_kind = x.pair_kind\n"
    "            AND y.method_a = x.method_a AND y.method_b = x.method_b AND y.level_a IS x.level_a\n"
    "            AND y.level_b IS x.level_b AND y.metric = x.metric AND NOT y.a_first\n"
    "       WHERE x.a_first),\n"
    "v_composability AS (\n"
    "  SELECT *, round(e_of, 4) AS e_of_r4, round(e_os, 4) AS e_os_r4,\n"
    "         (pair_kind = 'edit_unlearn' OR level_a IN (0.25, 4)) AS headline FROM _k),\n"
    /* the paper's tables: rows compressors (unlearners in editing x unlearning) plus Average */
    "_h AS (SELECT sweep, model, pair_kind, metric, e_of, e_os,\n"
    "              CASE WHEN pair_kind = 'edit_unlearn' THEN method_b ELSE method_a END AS row_method,\n"
    "              CASE WHEN pair_kind = 'edit_unlearn' THEN method_a ELSE method_b END AS col_method\n"
    "       FROM v_composability WHERE headline),\n"
    "v_composability_table AS (\n"
    "  SELECT sweep, model, pair_kind, row_method, col_method, metric, round(e_of, 4) AS e_of, round(e_os, 4) AS e_os FROM _h\n"
    "  UNION ALL\n"
    "  SELECT sweep, model, pair_kind, 'Average', col_method, metric, round(avg(e_of), 4), round(avg(e_os), 4)\n"
    "  FROM _h GROUP BY sweep, model, pair_kind, col_method, metric)\n";

static int has_view(sqlite3 *db, const char *name) {
    sqlite3_stmt *st = NULL;
    int found = 0;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_schema WHERE type = 'view' AND name = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        found = sqlite3_step(st) == SQLITE_ROW;
    }
    sqlite3_finalize(st);
    return found;
}

const char *report_source(sqlite3 *db, int *native) {
    int all = has_view(db, "v_composition_metrics") && has_view(db, "v_composability") &&
              has_view(db, "v_composability_table");
    if (native) *native = all;
    return all ? "" : FALLBACK_SQL;
}

/* ---- column helpers ---------------------------------------------------------------------- */

static char *col_str(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static double col_dbl(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* prepare prefix + sql; on failure fill err naming the DB and the query's first words */
static sqlite3_stmt *prep(sqlite3 *db, const char *path, const char *prefix, const char *sql, cis_err *err) {
    char *full = xasprintf("%s%s", prefix, sql);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, full, -1, &st, NULL) != SQLITE_OK) {
        err_set(err, CIS_EDB, "%s: cannot read it as a cisweep sweep (query \"%.60s...\"): %s", path, sql,
                sqlite3_errmsg(db));
        st = NULL;
    }
    free(full);
    return st;
}

/* step to the end; -1 with err on an error other than the end of rows */
static int step_err(sqlite3 *db, const char *path, int rc, cis_err *err) {
    if (rc == SQLITE_DONE) return 0;
    return err_set(err, CIS_EDB, "%s: reading the sweep failed: %s", path, sqlite3_errmsg(db));
}

static int load_sweeps(sqlite3 *db, const char *path, report_data *d, cis_err *err) {
    static const char *SQL =
        "SELECT s.id, s.name, s.grid_name, s.grid_path, s.description, s.created_at,"
        " (SELECT group_concat(name, ', ') FROM (SELECT name FROM models WHERE sweep_id = s.id ORDER BY id)),"
        " (SELECT count(*) FROM jobs WHERE sweep_id = s.id),"
        " (SELECT count(*) FROM jobs WHERE sweep_id = s.id AND state = 'done'),"
        " (SELECT count(*) FROM jobs WHERE sweep_id = s.id AND state = 'failed'),"
        " (SELECT count(*) FROM jobs WHERE sweep_id = s.id AND state = 'dead'),"
        " (SELECT count(*) FROM jobs WHERE sweep_id = s.id AND state = 'pending'),"
        " (SELECT count(*) FROM jobs WHERE sweep_id = s.id AND state = 'leased'),"
        " (SELECT count(*) FROM jobs WHERE sweep_id = s.id AND state = 'cancelled'),"
        " (SELECT group_concat(pattern || ' ' || k, ', ') FROM (SELECT pattern, count(*) AS k, min(id) AS f"
        "   FROM compositions WHERE sweep_id = s.id GROUP BY pattern ORDER BY f)),"
        " (SELECT group_concat(method, ', ') FROM (SELECT DISTINCT json_extract(e.value, '$.method') AS method"
        "   FROM compositions c JOIN jobs j ON j.composition_id = c.id AND j.state = 'done', json_each(c.canonical) e"
        "   WHERE c.sweep_id = s.id ORDER BY method))"
        " FROM sweeps s ORDER BY s.id";
    sqlite3_stmt *st = prep(db, path, "", SQL, err);
    if (!st) return -1;
    int rc, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (d->n_sweeps == cap) { cap = cap ? cap * 2 : 4; d->sweeps = xrealloc(d->sweeps, (size_t)cap * sizeof *d->sweeps); }
        rep_sweep *s = &d->sweeps[d->n_sweeps++];
        memset(s, 0, sizeof *s);
        s->name = col_str(st, 1);
        s->grid_name = col_str(st, 2);
        s->grid_path = col_str(st, 3);
        s->description = col_str(st, 4);
        s->created_at = sqlite3_column_int64(st, 5);
        s->models = col_str(st, 6);
        s->jobs_total = sqlite3_column_int64(st, 7);
        s->jobs_done = sqlite3_column_int64(st, 8);
        s->jobs_failed = sqlite3_column_int64(st, 9);
        s->jobs_dead = sqlite3_column_int64(st, 10);
        s->jobs_pending = sqlite3_column_int64(st, 11);
        s->jobs_leased = sqlite3_column_int64(st, 12);
        s->jobs_cancelled = sqlite3_column_int64(st, 13);
        s->patterns = col_str(st, 14);
        s->methods = col_str(st, 15);
    }
    int r = step_err(db, path, rc, err);
    sqlite3_finalize(st);
    return r;
}

static int load_cm(sqlite3 *db, const char *path, const char *src, report_data *d, cis_err *err) {
    sqlite3_stmt *st = prep(db, path, src,
        "SELECT sweep, model, composition_id, pattern, label, n_stages, method_1, category_1, level_1,"
        " method_2, category_2, level_2, metric, n, mean, se FROM v_composition_metrics"
        " WHERE metric IN ('edit_success', 'generalization', 'locality', 'mmlu', 'wmdp')"
        " ORDER BY sweep, model, n_stages, composition_id, metric", err);
    if (!st) return -1;
    int rc, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (d->n_cm == cap) { cap = cap ? cap * 2 : 64; d->cm = xrealloc(d->cm, (size_t)cap * sizeof *d->cm); }
        rep_cm *c = &d->cm[d->n_cm++];
        memset(c, 0, sizeof *c);
        c->sweep = col_str(st, 0);
        c->model = col_str(st, 1);
        c->composition_id = sqlite3_column_int64(st, 2);
        c->pattern = col_str(st, 3);
        c->label = col_str(st, 4);
        c->n_stages = sqlite3_column_int(st, 5);
        c->method[0] = col_str(st, 6);
        c->category[0] = col_str(st, 7);
        c->level[0] = col_dbl(st, 8);
        c->method[1] = col_str(st, 9);
        c->category[1] = col_str(st, 10);
        c->level[1] = col_dbl(st, 11);
        c->metric = col_str(st, 12);
        c->n = sqlite3_column_int(st, 13);
        c->mean = col_dbl(st, 14);
        c->se = col_dbl(st, 15);
    }
    int r = step_err(db, path, rc, err);
    sqlite3_finalize(st);
    return r;
}

static int load_pairs(sqlite3 *db, const char *path, const char *src, report_data *d, cis_err *err) {
    sqlite3_stmt *st = prep(db, path, src,
        "SELECT sweep, model, pair_kind, method_a, level_a, method_b, level_b, metric, kappa_ab, kappa_ba,"
        " n_ab, n_ba, se_ab, se_ba, e_of, e_os, headline FROM v_composability"
        " ORDER BY sweep, model, pair_kind, method_a, method_b, metric, level_a", err);
    if (!st) return -1;
    int rc, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (d->n_pairs == cap) { cap = cap ? cap * 2 : 64; d->pairs = xrealloc(d->pairs, (size_t)cap * sizeof *d->pairs); }
        rep_pair *p = &d->pairs[d->n_pairs++];
        memset(p, 0, sizeof *p);
        p->sweep = col_str(st, 0);
        p->model = col_str(st, 1);
        p->kind = col_str(st, 2);
        p->a = col_str(st, 3);
        p->level_a = col_dbl(st, 4);
        p->b = col_str(st, 5);
        p->level_b = col_dbl(st, 6);
        p->metric = col_str(st, 7);
        p->k_ab = col_dbl(st, 8);
        p->k_ba = col_dbl(st, 9);
        p->n_ab = sqlite3_column_int(st, 10);
        p->n_ba = sqlite3_column_int(st, 11);
        p->se_ab = col_dbl(st, 12);
        p->se_ba = col_dbl(st, 13);
        p->e_of = col_dbl(st, 14);
        p->e_os = col_dbl(st, 15);
        p->headline = sqlite3_column_int(st, 16);
    }
    int r = step_err(db, path, rc, err);
    sqlite3_finalize(st);
    return r;
}

static int load_cells(sqlite3 *db, const char *path, const char *src, report_data *d, cis_err *err) {
    sqlite3_stmt *st = prep(db, path, src,
        "SELECT sweep, model, pair_kind, row_method, col_method, metric, e_of, e_os FROM v_composability_table", err);
    if (!st) return -1;
    int rc, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (d->n_cells == cap) { cap = cap ? cap * 2 : 64; d->cells = xrealloc(d->cells, (size_t)cap * sizeof *d->cells); }
        rep_cell *c = &d->cells[d->n_cells++];
        memset(c, 0, sizeof *c);
        c->sweep = col_str(st, 0);
        c->model = col_str(st, 1);
        c->kind = col_str(st, 2);
        c->row = col_str(st, 3);
        c->col = col_str(st, 4);
        c->metric = col_str(st, 5);
        c->e_of = col_dbl(st, 6);
        c->e_os = col_dbl(st, 7);
    }
    int r = step_err(db, path, rc, err);
    sqlite3_finalize(st);
    return r;
}

int report_load(sqlite3 *db, const char *path, report_data *d, cis_err *err) {
    int native = 0;
    const char *src = report_source(db, &native);
    d->source = native ? "views" : "fallback";
    /* one read transaction: every query sees the same snapshot while a coordinator writes */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return err_set(err, CIS_EDB, "%s: cannot start a read transaction: %s", path, sqlite3_errmsg(db));
    int rc = load_sweeps(db, path, d, err);
    if (!rc) rc = load_cm(db, path, src, d, err);
    if (!rc) rc = load_pairs(db, path, src, d, err);
    if (!rc) rc = load_cells(db, path, src, d, err);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    return rc;
}

void report_data_clear(report_data *d) {
    if (!d) return;
    for (int i = 0; i < d->n_sweeps; i++) {
        rep_sweep *s = &d->sweeps[i];
        free(s->name); free(s->grid_name); free(s->grid_path); free(s->description);
        free(s->models); free(s->patterns); free(s->methods);
    }
    for (int i = 0; i < d->n_cm; i++) {
        rep_cm *c = &d->cm[i];
        free(c->sweep); free(c->model); free(c->pattern); free(c->label); free(c->metric);
        for (int k = 0; k < 2; k++) { free(c->method[k]); free(c->category[k]); }
    }
    for (int i = 0; i < d->n_pairs; i++) {
        rep_pair *p = &d->pairs[i];
        free(p->sweep); free(p->model); free(p->kind); free(p->a); free(p->b); free(p->metric);
    }
    for (int i = 0; i < d->n_cells; i++) {
        rep_cell *c = &d->cells[i];
        free(c->sweep); free(c->model); free(c->kind); free(c->row); free(c->col); free(c->metric);
    }
    free(d->sweeps); free(d->cm); free(d->pairs); free(d->cells);
    memset(d, 0, sizeof *d);
}
