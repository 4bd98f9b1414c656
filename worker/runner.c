/* runner.c - runs one job's composition on the job thread: validates the spec again (the worker
 * never trusts a message), then applies the stages in order. This issue ships the orchestration
 * test fixture (`selftest`); the interventions (MEMIT, FT, LoRA, Wanda, SparseGPT, GPTQ, AWQ, RMU,
 * GA, GD) and the evaluation suite plug in here as they land (see docs/orchestration.md). Until
 * then a job that names one fails with a clear, non-retryable error rather than pretending. */
#include "worker/job.h"
#include "common/log.h"
#include "common/spec.h"
#include "common/util.h"

#include <string.h>

void runner_execute(job_ctx *j) {
    int64_t t0 = mono_ms();
    json_t *comp = json_object_get(j->spec, "composition");
    cis_err err = {0};
    char key[65];
    char *canon = spec_canonical(comp, "JOB.composition", true, key, &err);
    if (!canon) {
        j->status = JOB_FAILED;
        j->retryable = false;
        snprintf(j->error, sizeof j->error, "invalid composition: %s", err.msg);
        goto out;
    }
    free(canon);
    size_t n = json_array_size(comp);
    if (n == 0) {
        /* the baseline: no intervention; evaluation lands with the evaluation suite */
        j->status = JOB_FAILED;
        j->retryable = false;
        snprintf(j->error, sizeof j->error, "the evaluation suite is not part of this build yet: "
                 "baseline jobs cannot run (only selftest jobs can)");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *st = json_array_get(comp, i);
        const char *method = json_string_value(json_object_get(st, "method"));
        const method_info *mi = method_lookup(method);
        if (mi && mi->category == CAT_TEST) {
            if (!j->selftest_enabled) {
                j->status = JOB_FAILED;
                j->retryable = false;
                snprintf(j->error, sizeof j->error, "selftest jobs are a test fixture: start the worker with "
                         "--selftest to run them");
                goto out;
            }
            j->rows = NULL;
            selftest_execute(j, json_object_get(st, "params"));
            if (j->status != JOB_OK) goto out;
            if (i + 1 < n) { json_decref(j->rows); j->rows = NULL; }
        } else {
            j->status = JOB_FAILED;
            j->retryable = false;
            snprintf(j->error, sizeof j->error, "intervention \"%s\" (stage %zu) is not implemented in this "
                     "build yet", method ? method : "?", i + 1);
            goto out;
        }
    }
out:
    j->run_ms = mono_ms() - t0;
    if (j->status == JOB_OK && !j->rows) j->rows = json_object();
}
