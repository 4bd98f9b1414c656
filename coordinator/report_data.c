/* report_data.c - loads what `cisweep report` shows (see report_data.h) from the composability
 * views of schema/views.sql (v_composition_metrics, v_composability, v_composability_table,
 * v_composability_area), which
 * job_store_open provides on every connection (in the file, or as TEMP views for a read-only reader
 * of a file written before them), plus the header facts from the tables. One read transaction, so
 * every query sees the same snapshot while a coordinator writes. */
#include "coordinator/report_data.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- column helpers ---------------------------------------------------------------------- */

static char *col_str(sqlite3_stmt *st, int i) {
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? xstrdup((const char *)t) : NULL;
}

static double col_dbl(sqlite3_stmt *st, int i) {
    return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

/* prepare sql; on failure fill err naming the DB and the query's first words */
static sqlite3_stmt *prep(sqlite3 *db, const char *path, const char *sql, cis_err *err) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        err_set(err, CIS_EDB, "%s: cannot read it as a cisweep sweep (query \"%.60s...\"): %s", path, sql,
                sqlite3_errmsg(db));
        st = NULL;
    }
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
        "   WHERE c.sweep_id = s.id ORDER BY method)),"
        " (SELECT coalesce(sum(a.run_ms), 0) FROM jobs j JOIN attempts a ON a.job_id = j.id AND a.attempt = j.current_attempt"
        "   WHERE j.sweep_id = s.id AND j.state = 'done'),"
        " (SELECT count(*) FROM jobs j JOIN stages st ON st.job_id = j.id AND st.attempt = j.current_attempt"
        "   WHERE j.sweep_id = s.id AND j.state = 'done' AND st.recompress = 1)"
        " FROM sweeps s ORDER BY s.id";
    sqlite3_stmt *st = prep(db, path, SQL, err);
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
        s->run_ms = sqlite3_column_int64(st, 16);
        s->recompress_stages = sqlite3_column_int64(st, 17);
    }
    int r = step_err(db, path, rc, err);
    sqlite3_finalize(st);
    return r;
}

static int load_cm(sqlite3 *db, const char *path, report_data *d, cis_err *err) {
    sqlite3_stmt *st = prep(db, path,
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

static int load_pairs(sqlite3 *db, const char *path, report_data *d, cis_err *err) {
    sqlite3_stmt *st = prep(db, path,
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

static int load_cells(sqlite3 *db, const char *path, report_data *d, cis_err *err) {
    sqlite3_stmt *st = prep(db, path,
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

static int load_areas(sqlite3 *db, const char *path, report_data *d, cis_err *err) {
    sqlite3_stmt *st = prep(db, path,
        "SELECT sweep, model, pair_kind, method_a, method_b, metric, n_levels, level_min, level_max,"
        " e_of_area, e_os_area, e_of_level_mean, e_os_level_mean FROM v_composability_area"
        " ORDER BY sweep, model, pair_kind, method_a, method_b, metric", err);
    if (!st) return -1;
    int rc, cap = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (d->n_areas == cap) { cap = cap ? cap * 2 : 64; d->areas = xrealloc(d->areas, (size_t)cap * sizeof *d->areas); }
        rep_area *a = &d->areas[d->n_areas++];
        memset(a, 0, sizeof *a);
        a->sweep = col_str(st, 0);
        a->model = col_str(st, 1);
        a->kind = col_str(st, 2);
        a->a = col_str(st, 3);
        a->b = col_str(st, 4);
        a->metric = col_str(st, 5);
        a->n_levels = sqlite3_column_int(st, 6);
        a->level_min = col_dbl(st, 7);
        a->level_max = col_dbl(st, 8);
        a->e_of_area = col_dbl(st, 9);
        a->e_os_area = col_dbl(st, 10);
        a->e_of_mean = col_dbl(st, 11);
        a->e_os_mean = col_dbl(st, 12);
    }
    int r = step_err(db, path, rc, err);
    sqlite3_finalize(st);
    return r;
}

int report_load(sqlite3 *db, const char *path, report_data *d, cis_err *err) {
    /* one read transaction: every query sees the same snapshot while a coordinator writes */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return err_set(err, CIS_EDB, "%s: cannot start a read transaction: %s", path, sqlite3_errmsg(db));
    int rc = load_sweeps(db, path, d, err);
    if (!rc) rc = load_cm(db, path, d, err);
    if (!rc) rc = load_pairs(db, path, d, err);
    if (!rc) rc = load_cells(db, path, d, err);
    if (!rc) rc = load_areas(db, path, d, err);
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
    for (int i = 0; i < d->n_areas; i++) {
        rep_area *a = &d->areas[i];
        free(a->sweep); free(a->model); free(a->kind); free(a->a); free(a->b); free(a->metric);
    }
    free(d->sweeps); free(d->cm); free(d->pairs); free(d->cells); free(d->areas);
    memset(d, 0, sizeof *d);
}

int rep_sweep_facts(const rep_sweep *s, rep_fact *out) {
    char ts[40];
    int n = 0;
    out[n++] = (rep_fact){"grid", xasprintf("%s (%s)", s->grid_name ? s->grid_name : "", s->grid_path ? s->grid_path : "")};
    out[n++] = (rep_fact){"description", xasprintf("%s", s->description ? s->description : "")};
    out[n++] = (rep_fact){"launched", xasprintf("%s", fmt_time_ms(s->created_at, ts, sizeof ts))};
    out[n++] = (rep_fact){"models", xasprintf("%s", s->models ? s->models : "")};
    out[n++] = (rep_fact){"jobs", xasprintf("%lld total: %lld done, %lld failed, %lld dead, %lld pending, %lld leased, "
                                            "%lld cancelled", (long long)s->jobs_total, (long long)s->jobs_done,
                                            (long long)s->jobs_failed, (long long)s->jobs_dead,
                                            (long long)s->jobs_pending, (long long)s->jobs_leased,
                                            (long long)s->jobs_cancelled)};
    out[n++] = (rep_fact){"compositions by pattern", xasprintf("%s", s->patterns ? s->patterns : "")};
    out[n++] = (rep_fact){"methods that ran (done jobs)", xasprintf("%s", s->methods ? s->methods : "none yet")};
    out[n++] = (rep_fact){"worker time of the done jobs", xasprintf("%.1f s", (double)s->run_ms / 1000.0)};
    out[n++] = (rep_fact){"compressors re-applied at the end (the paper's rule)",
                          xasprintf("%lld stages", (long long)s->recompress_stages)};
    return n;
}

void rep_facts_clear(rep_fact *f, int n) {
    for (int i = 0; i < n; i++) { free(f[i].text); f[i].text = NULL; }
}
