/* prereq.h - prerequisite jobs (worker/prereq.c): a JOB whose composition is one `memit_stats`
 * stage computes MEMIT's statistics of the base model into the shared artifact cache and reports
 * them as RESULT.artifacts, instead of running stages and an evaluation. */
#ifndef CISWEEP_WORKER_PREREQ_H
#define CISWEEP_WORKER_PREREQ_H

#include <jansson.h>
#include <stdbool.h>

#include "worker/job.h"

/* prereq_is: whether the (raw, not yet normalised) JOB.composition is a prerequisite job: an array
 * of exactly one object whose method is "memit_stats". */
bool prereq_is(json_t *comp);

/* prereq_run: run it on the job thread; fills j's outcome (rows, stages, artifacts; or failed with
 * a message naming the field or file, retryable for memory and I/O errors; or stopped). */
void prereq_run(job_ctx *j, json_t *comp);

#endif
