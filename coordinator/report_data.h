/* report_data.h - what `cisweep report` reads from a sweep DB, loaded into memory in one go:
 * per-composition metric means (v_composition_metrics), the composability of every pair of
 * interventions at every level (v_composability), the paper's tables (v_composability_table),
 * the same integrated over the compression level (v_composability_area),
 * and the header facts (sweeps, models, job counts, compositions by pattern).
 *
 * The composability numbers are those of the SQL views of schema/views.sql (job_store_open makes
 * them available on every connection); this module only reads them. Nothing here writes. */
#ifndef CISWEEP_REPORT_DATA_H
#define CISWEEP_REPORT_DATA_H

#include "common/util.h"

#include <sqlite3.h>
#include <stdint.h>

/* one (composition, metric): mean and standard error over the composition's done jobs (edit sets) */
typedef struct rep_cm {
    char *sweep, *model, *pattern, *label;   /* owned */
    int64_t composition_id;
    int n_stages;                            /* 0 = baseline */
    char *method[2], *category[2];           /* owned; stage 1 and 2 (NULL past n_stages) */
    double level[2];                         /* the compressor's sparsity or bits; NAN for other stages */
    char *metric;                            /* owned: edit_success, generalization, locality, mmlu, wmdp */
    int n;                                   /* jobs averaged */
    double mean, se;                         /* se: NAN when n < 2 */
} rep_cm;

/* one pair (a, b) at one level and metric; kappa_ab = the composition a then b */
typedef struct rep_pair {
    char *sweep, *model, *kind;              /* owned; kind: edit_compress, unlearn_compress, edit_unlearn */
    char *a, *b;                             /* owned: method_a (the compressor, or the editor for edit_unlearn), method_b */
    double level_a, level_b;                 /* NAN where the method has no level */
    char *metric;                            /* owned */
    double k_ab, k_ba, se_ab, se_ba;         /* means and standard errors of both orders */
    int n_ab, n_ba;
    double e_of, e_os;                       /* Order-free Error and Order Sensitivity (unrounded) */
    int headline;                            /* 1: the paper's table level (25% sparsity, 4 bits; edit_unlearn always) */
} rep_pair;

/* one cell of the paper's tables (row_method is a compressor or "Average") */
typedef struct rep_cell {
    char *sweep, *model, *kind, *row, *col, *metric;   /* owned */
    double e_of, e_os;                                 /* the notebook's rounded cells (Average: their mean) */
} rep_cell;

/* one (compressor, other intervention, metric) over every level both orders have (beyond the
 * paper; v_composability_area): trapezoid areas over the level and their level means */
typedef struct rep_area {
    char *sweep, *model, *kind, *a, *b, *metric;       /* owned; a = the compressor */
    int n_levels;
    double level_min, level_max;                       /* sparsity or bits */
    double e_of_area, e_os_area;                       /* integrals over the level (trapezoids) */
    double e_of_mean, e_os_mean;                       /* area / (level_max - level_min); NAN with one level */
} rep_area;

/* header facts of one sweep */
typedef struct rep_sweep {
    char *name, *grid_name, *grid_path, *description;  /* owned (NULL when the DB has none) */
    int64_t created_at;                                /* ms */
    char *models;                                      /* owned: "m1, m2" */
    int64_t jobs_total, jobs_done, jobs_failed, jobs_dead, jobs_pending, jobs_leased, jobs_cancelled;
    char *patterns;                                    /* owned: "baseline 1, edit 3, ..." (compositions by pattern) */
    char *methods;                                     /* owned: every method a done job ran, "awq, ft, ..." */
    int64_t run_ms;                                    /* the workers' time of the done jobs' current attempts, ms */
    int64_t recompress_stages;                         /* stages of done jobs that re-applied the leading compressor */
} rep_sweep;

typedef struct report_data {
    rep_sweep *sweeps; int n_sweeps;
    rep_cm *cm; int n_cm;
    rep_pair *pairs; int n_pairs;
    rep_cell *cells; int n_cells;
    rep_area *areas; int n_areas;
} report_data;

/* report_load: read everything the report shows from db (opened read-only by the caller); path is
 * for messages. Returns 0, or -1 with err naming the DB and the failing query. The caller frees d
 * with report_data_clear whatever the outcome. */
int report_load(sqlite3 *db, const char *path, report_data *d, cis_err *err);
void report_data_clear(report_data *d);

/* A sweep's facts table, one row per fact, in the order both report formats print them. */
enum { REP_FACTS_MAX = 9 };
typedef struct rep_fact {
    const char *label;  /* static text */
    char *text;         /* owned: the value as plain text (the caller escapes it for its format) */
} rep_fact;

/* rep_sweep_facts: fill out[0..REP_FACTS_MAX) with s's facts (grid, description, launched, models,
 * jobs, compositions by pattern, methods that ran, worker time, recompress stages); returns the
 * count. Free the texts with rep_facts_clear. */
int rep_sweep_facts(const rep_sweep *s, rep_fact *out);
void rep_facts_clear(rep_fact *f, int n);

#endif
