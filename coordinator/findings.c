/* findings.c - the study's terminal summary (`cisweep run` without --grid, `cisweep findings`): for
 * each of the paper's qualitative findings, the numbers of one sweep database that support or
 * contradict it, per model. Everything is read from the composability views (schema/views.sql):
 *   1. compression hinders editing: edit success of the editors alone against the editors composed
 *      with a compressor (both orders) at the headline level (25% sparsity / 4 bits) and at the
 *      most aggressive level (75% / 2 bits);
 *   2. compression hinders unlearning: the mean WMDP accuracy W (lower = more forgotten) of the
 *      unlearners alone against unlearner x compressor compositions, and of each order;
 *   3. order matters: Order Sensitivity E_OS over the headline pairs, mean and the largest;
 *   4. MMLU hides composability failures: pairs whose edit success or WMDP moves by >= 0.1 between
 *      the two orders while MMLU moves by < 0.05;
 *   5. quantization composes better with editing than pruning: edit-success E_OF of GPTQ/AWQ
 *      against Wanda/SparseGPT, and which order each quantizer prefers (the paper: GPTQ edit-first,
 *      AWQ compress-first).
 * A verdict compares numbers with a margin of FINDING_EPS; it never reads a hard-coded result.
 * The two views are copied once per call into temporary tables that every query reads (materialise():
 * a view is re-evaluated by each query naming it, ~0.5 s each on the study's database). */
#include "coordinator/findings.h"

#include <math.h>
#include <string.h>

#define FINDING_EPS 0.01              /* a difference below this is "no measurable effect" */
#define HEADLINE "IN (0.25, 4)"       /* the paper's tables: 25% sparsity, 4 bits */
#define AGGRESSIVE "IN (0.75, 2)"     /* the strongest level of the main grid */

const char *finding_verdict_name(finding_verdict v) {
    switch (v) {
    case FINDING_SUPPORTS: return "supports";
    case FINDING_CONTRADICTS: return "contradicts";
    case FINDING_MIXED: return "mixed";
    default: return "no data";
    }
}

typedef struct fq {
    sqlite3 *db;
    const char *sweep, *model;
    FILE *out;
    int sql_errors;
} fq;

/* one aggregate row: avg (NaN when no rows) and the row count; the SQL binds ?1 = sweep (or NULL)
 * and ?2 = model and returns (value, count) */
static double agg(fq *q, const char *sql, int *count) {
    sqlite3_stmt *st = NULL;
    double v = NAN;
    if (count) *count = 0;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(q->out, "  (SQL error: %s)\n", sqlite3_errmsg(q->db));
        q->sql_errors++;
        return NAN;
    }
    if (q->sweep) sqlite3_bind_text(st, 1, q->sweep, -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 1);
    sqlite3_bind_text(st, 2, q->model, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL) v = sqlite3_column_double(st, 0);
        if (count) *count = sqlite3_column_int(st, 1);
    } else if (rc != SQLITE_DONE) {
        fprintf(q->out, "  (SQL error: %s)\n", sqlite3_errmsg(q->db));
        q->sql_errors++;
    }
    sqlite3_finalize(st);
    return v;
}

/* every query below reads these two temporary copies of the composability views (materialise()),
 * never the views themselves: each view costs ~0.5 s to evaluate on the study's 1,797-job
 * database, and the 24 queries per model of a findings run evaluated them once each (38 s on 3 models) */
#define CM_TABLE "temp.findings_cm"   /* the rows of v_composition_metrics (for --sweep: that sweep's) */
#define CA_TABLE "temp.findings_ca"   /* the rows of v_composability (likewise) */
#define WHERE_CM "FROM " CM_TABLE " WHERE (?1 IS NULL OR sweep = ?1) AND model = ?2 "
#define WHERE_CA "FROM " CA_TABLE " WHERE (?1 IS NULL OR sweep = ?1) AND model = ?2 "

static void num(FILE *out, double v) {
    if (isnan(v)) fputs("-", out);
    else fprintf(out, "%.3f", v);
}

/* the mean of `metric` over the compositions whose pattern is in `patterns` (an SQL list) and whose
 * compressor level matches `level` (an SQL predicate tail such as HEADLINE, or "" for any level);
 * *n: the compositions averaged */
static double pattern_mean(fq *q, const char *patterns, const char *metric, const char *level, int *n) {
    char *sql = sqlite3_mprintf("SELECT avg(mean), count(*) " WHERE_CM "AND pattern IN (%s) AND metric = '%q'%s%s", patterns,
                                metric, *level ? " AND coalesce(level_1, level_2) " : "", level);
    double v = agg(q, sql, n);
    sqlite3_free(sql);
    return v;
}

/* print `before`, the value, then `after` formatted with the count */
static void show(fq *q, const char *before, double v, const char *after, int n) {
    fputs(before, q->out);
    num(q->out, v);
    fprintf(q->out, after, n);
}

#define EDIT_PAIRS "'edit->compress','compress->edit'"
#define UNLEARN_PAIRS "'unlearn->compress','compress->unlearn'"

/* 1. compression hinders editing */
static finding_verdict f_edit(fq *q) {
    int n0, nh, na;
    double alone = pattern_mean(q, "'edit'", "edit_success", "", &n0);
    double head = pattern_mean(q, EDIT_PAIRS, "edit_success", HEADLINE, &nh);
    double aggr = pattern_mean(q, EDIT_PAIRS, "edit_success", AGGRESSIVE, &na);
    show(q, "    edit success: editors alone ", alone, " (%d)", n0);
    show(q, "; with a compressor at 25%/4 bits ", head, " (%d compositions, both orders)", nh);
    show(q, "; at 75%/2 bits ", aggr, " (%d)\n", na);
    if (isnan(alone) || isnan(head)) return FINDING_NO_DATA;
    if (alone < 0.5) {
        fprintf(q->out, "    (the editors alone reach edit success < 0.5: there is little editing for compression to hinder)\n");
        return FINDING_MIXED;
    }
    if (alone - head <= FINDING_EPS) return FINDING_CONTRADICTS;
    if (!isnan(aggr) && aggr > head + FINDING_EPS) return FINDING_MIXED;   /* hinders, but not more when stronger */
    return FINDING_SUPPORTS;
}

/* 2. compression hinders unlearning (W: lower = more forgotten) */
static finding_verdict f_unlearn(fq *q) {
    int nb, n0, nh, na, n1, n2;
    double base = pattern_mean(q, "'baseline'", "wmdp", "", &nb);
    double alone = pattern_mean(q, "'unlearn'", "wmdp", "", &n0);
    double head = pattern_mean(q, UNLEARN_PAIRS, "wmdp", HEADLINE, &nh);
    double aggr = pattern_mean(q, UNLEARN_PAIRS, "wmdp", AGGRESSIVE, &na);
    double uc = pattern_mean(q, "'unlearn->compress'", "wmdp", HEADLINE, &n1);
    double cu = pattern_mean(q, "'compress->unlearn'", "wmdp", HEADLINE, &n2);
    show(q, "    WMDP (mean of bio and cyber; chance 0.25): baseline ", base, "", nb);
    show(q, "; unlearners alone ", alone, " (%d)", n0);
    show(q, "; with a compressor at 25%/4 bits ", head, " (%d)", nh);
    show(q, ", at 75%/2 bits ", aggr, " (%d)\n", na);
    show(q, "    by order at 25%/4 bits: unlearn first ", uc, " (%d)", n1);
    show(q, ", compress first ", cu, " (%d)\n", n2);
    if (isnan(alone) || isnan(head)) return FINDING_NO_DATA;
    if (!isnan(base) && alone > base - 0.05) {
        fprintf(q->out, "    (the unlearners alone leave WMDP within 0.05 of the baseline: there is little forgetting to undo)\n");
        return FINDING_MIXED;
    }
    return head - alone > FINDING_EPS ? FINDING_SUPPORTS : FINDING_CONTRADICTS;
}

/* the pair with the largest E_OS among the headline pairs for the metrics in `metrics`; ties (session
 * 7's mistral-7b: wanda@0.25 x memit and ft x rmu, both 0.140) go to the first pair in name order */
static void top_pair(fq *q, const char *metrics) {
    char *sql = sqlite3_mprintf("SELECT pair_kind, method_a, level_a, method_b, metric, e_os, kappa_ab, kappa_ba " WHERE_CA
                                "AND headline = 1 AND metric IN (%s) "
                                "ORDER BY e_os DESC, pair_kind, method_a, level_a, method_b, level_b, metric LIMIT 1", metrics);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (q->sweep) sqlite3_bind_text(st, 1, q->sweep, -1, SQLITE_STATIC);
        else sqlite3_bind_null(st, 1);
        sqlite3_bind_text(st, 2, q->model, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *lv = (const char *)sqlite3_column_text(st, 2);
            fprintf(q->out, "    largest: %s %s%s%s x %s on %s: E_OS %.3f (%s then %s: %.3f; the other order: %.3f)\n",
                    sqlite3_column_text(st, 0), sqlite3_column_text(st, 1), lv ? "@" : "", lv ? lv : "",
                    sqlite3_column_text(st, 3), sqlite3_column_text(st, 4), sqlite3_column_double(st, 5),
                    sqlite3_column_text(st, 1), sqlite3_column_text(st, 3), sqlite3_column_double(st, 6),
                    sqlite3_column_double(st, 7));
        }
    } else {
        fprintf(q->out, "  (SQL error: %s)\n", sqlite3_errmsg(q->db));
        q->sql_errors++;
    }
    sqlite3_finalize(st);
    sqlite3_free(sql);
}

/* 3. order matters */
static finding_verdict f_order(fq *q) {
    static const char *metrics[] = {"edit_success", "generalization", "locality", "mmlu", "wmdp"};
    double maxv = NAN;
    int any = 0;
    fprintf(q->out, "    mean E_OS over the headline pairs:");
    for (size_t i = 0; i < sizeof metrics / sizeof *metrics; i++) {
        char *sql = sqlite3_mprintf("SELECT avg(e_os), count(*) " WHERE_CA "AND headline = 1 AND metric = '%q'", metrics[i]);
        int n;
        double v = agg(q, sql, &n);
        sqlite3_free(sql);
        fprintf(q->out, " %s ", metrics[i]);
        num(q->out, v);
        fprintf(q->out, " (%d)", n);
        any += n;
    }
    fprintf(q->out, "\n");
    int n;
    maxv = agg(q, "SELECT max(e_os), count(*) " WHERE_CA "AND headline = 1 AND metric IN ('edit_success','wmdp')", &n);
    if (!any || isnan(maxv)) return FINDING_NO_DATA;
    top_pair(q, "'edit_success','wmdp'");
    return maxv >= 0.1 ? FINDING_SUPPORTS : FINDING_CONTRADICTS;
}

/* 4. MMLU hides composability failures */
static finding_verdict f_mmlu(fq *q) {
    int n_all, n_hidden;
    const char *pairs =
        "FROM " CA_TABLE " t JOIN " CA_TABLE " m ON m.sweep = t.sweep AND m.model = t.model "
        "AND m.pair_kind = t.pair_kind AND m.method_a = t.method_a AND m.method_b = t.method_b "
        "AND m.level_a IS t.level_a AND m.level_b IS t.level_b AND m.metric = 'mmlu' "
        "WHERE (?1 IS NULL OR t.sweep = ?1) AND t.model = ?2 AND t.headline = 1 "
        "AND t.metric IN ('edit_success','wmdp') AND t.e_os >= 0.1";
    char *s1 = sqlite3_mprintf("SELECT count(*), count(*) %s", pairs);
    char *s2 = sqlite3_mprintf("SELECT count(*), count(*) %s AND m.e_os < 0.05", pairs);
    double all = agg(q, s1, &n_all), hidden = agg(q, s2, &n_hidden);
    sqlite3_free(s1);
    sqlite3_free(s2);
    int nm, nt;
    double mm = agg(q, "SELECT avg(e_os), count(*) " WHERE_CA "AND headline = 1 AND metric = 'mmlu'", &nm);
    double mt = agg(q, "SELECT avg(e_os), count(*) " WHERE_CA "AND headline = 1 AND metric IN ('edit_success','wmdp')", &nt);
    fprintf(q->out, "    pairs whose edit success or WMDP moves >= 0.1 between orders: %.0f; of them MMLU moves < 0.05 in %.0f\n",
            isnan(all) ? 0 : all, isnan(hidden) ? 0 : hidden);
    fprintf(q->out, "    mean E_OS: MMLU ");
    num(q->out, mm);
    fprintf(q->out, " against edit success/WMDP ");
    num(q->out, mt);
    fprintf(q->out, "\n");
    if (!nm || !nt) return FINDING_NO_DATA;
    if (isnan(all) || all == 0) {
        fprintf(q->out, "    (no pair moves edit success or WMDP by >= 0.1: no composability failure to hide)\n");
        return FINDING_MIXED;
    }
    if (!isnan(hidden) && hidden > 0 && mm < mt) return FINDING_SUPPORTS;
    return mm < mt ? FINDING_MIXED : FINDING_CONTRADICTS;
}

/* 5. quantization vs pruning with editing, and the quantizers' preferred order */
static finding_verdict f_quant(fq *q) {
    int nq, np, ng, na;
    double quant = agg(q, "SELECT avg(e_of), count(*) " WHERE_CA "AND pair_kind = 'edit_compress' AND headline = 1 "
                          "AND metric = 'edit_success' AND method_a IN ('gptq','awq')", &nq);
    double prune = agg(q, "SELECT avg(e_of), count(*) " WHERE_CA "AND pair_kind = 'edit_compress' AND headline = 1 "
                          "AND metric = 'edit_success' AND method_a IN ('wanda','sparsegpt')", &np);
    /* kappa_ab = compress then edit, kappa_ba = edit then compress */
    double gptq = agg(q, "SELECT avg(kappa_ab - kappa_ba), count(*) " WHERE_CA "AND pair_kind = 'edit_compress' "
                         "AND headline = 1 AND metric = 'edit_success' AND method_a = 'gptq'", &ng);
    double awq = agg(q, "SELECT avg(kappa_ab - kappa_ba), count(*) " WHERE_CA "AND pair_kind = 'edit_compress' "
                        "AND headline = 1 AND metric = 'edit_success' AND method_a = 'awq'", &na);
    fprintf(q->out, "    edit-success E_OF at 25%%/4 bits: quantizers (GPTQ, AWQ) ");
    num(q->out, quant);
    fprintf(q->out, " (%d pairs), pruners (Wanda, SparseGPT) ", nq);
    num(q->out, prune);
    fprintf(q->out, " (%d pairs)\n    compress-first minus edit-first edit success: GPTQ ", np);
    num(q->out, gptq);
    fprintf(q->out, ", AWQ ");
    num(q->out, awq);
    fprintf(q->out, " (the paper: GPTQ prefers edit-first (< 0), AWQ compress-first (> 0))\n");
    if (isnan(quant) || isnan(prune)) return FINDING_NO_DATA;
    return prune - quant > FINDING_EPS ? FINDING_SUPPORTS : FINDING_CONTRADICTS;
}

/* run `sql` with PRAGMA query_only lifted for its duration (the read-only connections of `cisweep
 * findings` and `cisweep run` set it, and it forbids even temporary tables; the main database stays
 * unwritable through those connections, which are opened SQLITE_OPEN_READONLY); restores the
 * caller's setting. ?1 (if `sql` has it) = sweep or NULL. Returns 0, or -1 with "findings: `what`:
 * <SQLite's message>" printed to `out`. */
static int exec_temp(sqlite3 *db, const char *sql, const char *sweep, const char *what, FILE *out) {
    sqlite3_stmt *st = NULL;
    int query_only = 0, rc = -1;
    if (sqlite3_prepare_v2(db, "PRAGMA query_only", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        query_only = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (query_only && sqlite3_exec(db, "PRAGMA query_only = OFF", NULL, NULL, NULL) != SQLITE_OK) goto fail;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) goto fail;
    if (sqlite3_bind_parameter_count(st) >= 1) {
        if (sweep) sqlite3_bind_text(st, 1, sweep, -1, SQLITE_STATIC);
        else sqlite3_bind_null(st, 1);
    }
    if (sqlite3_step(st) != SQLITE_DONE) goto fail;
    rc = 0;
fail:
    if (rc) fprintf(out, "findings: %s: %s\n", what, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    if (query_only) sqlite3_exec(db, "PRAGMA query_only = ON", NULL, NULL, NULL);
    return rc;
}

/* drop the temporary copies (a no-op when they do not exist) */
static void drop_copies(sqlite3 *db, FILE *out) {
    exec_temp(db, "DROP TABLE IF EXISTS " CM_TABLE, NULL, "cannot drop the temporary table " CM_TABLE, out);
    exec_temp(db, "DROP TABLE IF EXISTS " CA_TABLE, NULL, "cannot drop the temporary table " CA_TABLE, out);
}

/* materialise the composability views' rows of `sweep` (NULL: all sweeps) once into CM_TABLE and
 * CA_TABLE (CREATE TABLE AS keeps every value and its type); with FINDINGS_CLOZE the copies' cloze
 * rows take the names mmlu and wmdp (and the lettered ones are left out), so every query below reads
 * them unchanged. 0, or -1 with the error printed */
static int materialise(sqlite3 *db, const char *sweep, findings_form form, FILE *out) {
    drop_copies(db, out);
    if (exec_temp(db, "CREATE TEMP TABLE findings_cm AS SELECT * FROM v_composition_metrics WHERE (?1 IS NULL OR sweep = ?1)",
                  sweep, "cannot read the composability views (v_composition_metrics)", out) ||
        exec_temp(db, "CREATE TEMP TABLE findings_ca AS SELECT * FROM v_composability WHERE (?1 IS NULL OR sweep = ?1)",
                  sweep, "cannot read the composability views (v_composability)", out)) {
        drop_copies(db, out);
        return -1;
    }
    if (form == FINDINGS_CLOZE) {
        static const char *sql[] = {
            "DELETE FROM " CM_TABLE " WHERE metric IN ('mmlu', 'wmdp')",
            "UPDATE " CM_TABLE " SET metric = substr(metric, 7) WHERE metric IN ('cloze_mmlu', 'cloze_wmdp')",
            "DELETE FROM " CA_TABLE " WHERE metric IN ('mmlu', 'wmdp')",
            "UPDATE " CA_TABLE " SET metric = substr(metric, 7) WHERE metric IN ('cloze_mmlu', 'cloze_wmdp')",
        };
        for (size_t i = 0; i < sizeof sql / sizeof *sql; i++)
            if (exec_temp(db, sql[i], NULL, "cannot rename the cloze rows of the copies", out)) {
                drop_copies(db, out);
                return -1;
            }
    }
    return 0;
}

int findings_print(sqlite3 *db, const char *sweep, FILE *out) {
    return findings_print_form(db, sweep, FINDINGS_LETTER, out);
}

int findings_print_form(sqlite3 *db, const char *sweep, findings_form form, FILE *out) {
    sqlite3_stmt *st = NULL;
    if (materialise(db, sweep, form, out)) return -1;
    if (form == FINDINGS_CLOZE) {
        int n = 0;
        fq q0 = {.db = db, .sweep = sweep, .model = "", .out = out};
        agg(&q0, "SELECT 0, count(*) FROM " CM_TABLE " WHERE (?1 IS NULL OR sweep = ?1) AND ?2 IS NOT NULL "
                 "AND metric IN ('mmlu', 'wmdp')", &n);
        if (n == 0) {
            fprintf(out, "findings: no cloze rows in %s (cloze_mmlu, cloze_wmdp_*: run the sweep with --eval-cloze)\n",
                    sweep ? sweep : "this database");
            drop_copies(db, out);
            return -1;
        }
        fprintf(out, "(MMLU and WMDP below are the cloze rows, cloze_mmlu and cloze_wmdp: docs/eval.md \"Cloze multiple choice\")\n");
    }
    if (sqlite3_prepare_v2(db, "SELECT DISTINCT model FROM " CM_TABLE " WHERE (?1 IS NULL OR sweep = ?1) ORDER BY model",
                           -1, &st, NULL) != SQLITE_OK) {
        fprintf(out, "findings: cannot read the composability views: %s\n", sqlite3_errmsg(db));
        drop_copies(db, out);
        return -1;
    }
    if (sweep) sqlite3_bind_text(st, 1, sweep, -1, SQLITE_STATIC);
    int with_data = 0, errors = 0, models = 0;
    static const struct { const char *claim; finding_verdict (*fn)(fq *); } F[] = {
        {"1. compression hinders editing", f_edit},
        {"2. compression hinders unlearning", f_unlearn},
        {"3. the order of interventions matters", f_order},
        {"4. MMLU hides composability failures", f_mmlu},
        {"5. quantization composes better with editing than pruning", f_quant},
    };
    while (sqlite3_step(st) == SQLITE_ROW) {
        fq q = {.db = db, .sweep = sweep, .model = (const char *)sqlite3_column_text(st, 0), .out = out};
        models++;
        fprintf(out, "model %s:\n", q.model);
        for (size_t i = 0; i < sizeof F / sizeof *F; i++) {
            fprintf(out, "  %s\n", F[i].claim);
            finding_verdict v = F[i].fn(&q);
            fprintf(out, "    => this run: %s\n", v == FINDING_SUPPORTS ? "supports it" : v == FINDING_CONTRADICTS ? "contradicts it"
                                                  : v == FINDING_MIXED ? "mixed (see the numbers)" : "no data");
            with_data += v != FINDING_NO_DATA;
        }
        errors += q.sql_errors;
    }
    sqlite3_finalize(st);
    drop_copies(db, out);
    if (!models) fprintf(out, "findings: no finished compositions in %s\n", sweep ? sweep : "this database");
    return errors ? -1 : with_data;
}
