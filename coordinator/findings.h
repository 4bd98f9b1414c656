/* findings.h - the study's terminal summary: for each of the paper's findings, the numbers of one
 * sweep database that support or contradict it (coordinator/findings.c). */
#ifndef CISWEEP_FINDINGS_H
#define CISWEEP_FINDINGS_H

#include <sqlite3.h>
#include <stdio.h>

/* the verdict of one finding on one model */
typedef enum { FINDING_NO_DATA = 0, FINDING_SUPPORTS, FINDING_CONTRADICTS, FINDING_MIXED } finding_verdict;

const char *finding_verdict_name(finding_verdict v);

/* Print, for each model of the database (every sweep, or the sweep named `sweep` when not NULL),
 * the five findings of the paper (compression hinders editing; compression hinders unlearning;
 * order matters; MMLU hides composability failures; quantization composes better with editing
 * than pruning) with the numbers behind each verdict. Reads only the views of schema/views.sql
 * (v_composition_metrics, v_composability). Returns the number of findings that had data, or -1
 * on an SQL error (the message goes to `out`). */
int findings_print(sqlite3 *db, const char *sweep, FILE *out);

/* which MMLU / WMDP rows the findings read: the lettered ones (mmlu, wmdp: the paper's) or the cloze
 * ones (cloze_mmlu, cloze_wmdp: a sweep run with --eval-cloze; docs/eval.md "Cloze multiple choice") */
typedef enum { FINDINGS_LETTER = 0, FINDINGS_CLOZE = 1 } findings_form;

/* findings_print on the given form's rows. With FINDINGS_CLOZE, a database without cloze rows is
 * -1 with a message naming what is missing. */
int findings_print_form(sqlite3 *db, const char *sweep, findings_form form, FILE *out);

#endif
