/* report.h - `cisweep report --db DB --out DIR`: the sweep's results as the paper shows them.
 * report.c holds the command and the helpers both writers share (the paper's names and order of
 * methods and metrics, distinct-value lists); report_md.c writes report.md (the paper's Tables
 * 2-4 per model plus every composition's metrics); report_html.c writes report.html (one
 * self-contained page of SVG plots drawn by svg_plot.c). docs/report.md says how to read them. */
#ifndef CISWEEP_REPORT_H
#define CISWEEP_REPORT_H

#include "coordinator/report_data.h"

#include <stdio.h>

/* the metrics the report shows, in the paper's order */
#define REPORT_N_METRICS 5
extern const char *const REPORT_METRICS[REPORT_N_METRICS];  /* edit_success, generalization, locality, mmlu, wmdp */

/* the paper's display name of a method ("memit" -> "MEMIT"); unknown names as they are (borrowed) */
const char *report_method_name(const char *method);
/* display name of a metric ("edit_success" -> "Edit success", "wmdp" -> "WMDP (avg)") */
const char *report_metric_name(const char *metric);
/* the x-axis name of a compressor's level: "sparsity" (wanda, sparsegpt), "bits" (gptq, awq), else "level" */
const char *report_level_name(const char *method);
/* sort keys: the paper's column/row order; unknown names after the known ones */
int report_method_rank(const char *method);
int report_metric_rank(const char *metric);
/* the table title of a pair kind ("edit_compress" -> "Editing x compression (the paper's Table 2)") */
const char *report_kind_title(const char *kind);

/* whether the paper's table of a pair kind shows a metric: editing x compression the edit metrics
 * and MMLU, unlearning x compression WMDP and MMLU, editing x unlearning all five */
int report_kind_has_metric(const char *kind, const char *metric);

/* a list of distinct borrowed strings */
typedef struct rep_names { const char **v; int n, cap; } rep_names;
void rep_names_add(rep_names *l, const char *s);          /* NULL and duplicates ignored */
int rep_names_find(const rep_names *l, const char *s);    /* index or -1 */
void rep_names_sort(rep_names *l, int (*rank)(const char *));  /* by rank, then by name */
void rep_names_clear(rep_names *l);

/* null-safe string equality */
int report_eq(const char *a, const char *b);

/* report_write: the whole command without its CLI (for `cisweep run`'s end of study): read db
 * read-only and write out_dir/report.md and out_dir/report.html (out_dir made if missing).
 * *n_compositions (may be NULL) gets the number of compositions with metrics. Returns 0, or -1
 * with err naming the file: err->code CIS_EINVAL for a missing, unreadable or non-cisweep db,
 * CIS_EIO when the output cannot be written. */
int report_write(const char *db, const char *out_dir, int *n_compositions, cis_err *err);

/* the two writers; db_path is named in the header. Return 0 (they cannot fail on valid data;
 * write errors are found by the caller when it closes the stream). */
int report_write_md(FILE *f, const report_data *d, const char *db_path);
int report_write_html(FILE *f, const report_data *d, const char *db_path);

#endif
