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

#endif
