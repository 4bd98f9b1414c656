/* runner.c - runs one job's composition on the job thread: validates the spec again (the worker
 * never trusts a message), then
 *   - a `selftest` composition (the orchestration test fixture) runs its stages;
 *   - any other composition: reset the resident model to its base weights (model_cache.c), apply
 *     the interventions in order, then run the evaluation suite (worker/eval) on the worker's
 *     --data directory and return every metric row.
 * The interventions (MEMIT, FT, LoRA, Wanda, SparseGPT, GPTQ, AWQ, RMU, GA, GD) plug in here as
 * they land; until then a composition that names one fails with a clear, non-retryable error
 * before any work is done, and the baseline (no intervention) runs for real. */
#include "worker/job.h"
#include "worker/model_cache.h"
#include "worker/eval/eval.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/spec.h"
#include "common/util.h"

#include <string.h>

static void fail(job_ctx *j, bool retryable, const char *fmt, const char *a, const char *b) {
    j->status = JOB_FAILED;
    j->retryable = retryable;
    snprintf(j->error, sizeof j->error, fmt, a, b);
}

/* a composition on a real model: reset, interventions, evaluation */
static void run_model_job(job_ctx *j, json_t *comp) {
    size_t n = json_array_size(comp);
    for (size_t i = 0; i < n; i++) {
        const char *method = json_string_value(json_object_get(json_array_get(comp, i), "method"));
        char stage[32];
        snprintf(stage, sizeof stage, "%zu", i + 1);
        fail(j, false, "intervention \"%s\" (stage %s) is not implemented in this build yet", method ? method : "?", stage);
        return;
    }
    const char *model_dir = json_string_value(json_object_get(j->spec, "model_path"));
    if (!model_dir || !*model_dir) model_dir = json_string_value(json_object_get(j->spec, "model"));
    if (!j->data_dir) {
        fail(j, false, "this worker has no evaluation data: start it with --data DIR (a `cisweep world` "
             "directory or the real datasets in the same layout)%s%s", "", "");
        return;
    }
    cis_err err = {0};
    if (!j->cache) { fail(j, false, "this worker has no model cache (a test harness without --device)%s%s", "", ""); return; }
    model_slot *slot = model_cache_acquire(j->cache, model_dir, &err);
    if (!slot) { fail(j, true, "%s%s", err.msg, ""); return; }
    if (job_should_stop(j)) { j->status = JOB_STOPPED; return; }
    eval_opts o;
    eval_opts_default(&o);
    json_t *es = json_object_get(j->spec, "edit_set");
    o.edit_set = json_is_integer(es) && json_integer_value(es) > 0 ? (int)json_integer_value(es) : 1;
    o.threads = j->threads;
    o.limit = j->eval_limit;
    o.skip_missing = j->skip_missing_data;
    eval_rows rows = {0};
    double t0 = mono_sec();
    if (eval_suite_run(slot->work, slot->tok, j->data_dir, &o, &rows, &err)) {
        eval_rows_free(&rows);
        fail(j, false, "evaluation failed: %s%s", err.msg, "");
        return;
    }
    eval_rows_set(&rows, "time_eval_s", mono_sec() - t0);
    eval_rows_set(&rows, "time_model_load_s", slot->load_s);
    j->rows = json_object();
    for (int i = 0; i < rows.n; i++) json_object_set_new(j->rows, rows.row[i].name, proto_metric_value(rows.row[i].value));
    eval_rows_free(&rows);
    j->status = JOB_OK;
}

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
    bool selftest = false;
    for (size_t i = 0; i < n; i++) {
        const method_info *mi = method_lookup(json_string_value(json_object_get(json_array_get(comp, i), "method")));
        selftest |= mi && mi->category == CAT_TEST;
    }
    if (!selftest) { run_model_job(j, comp); goto out; }
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
            snprintf(j->error, sizeof j->error, "a selftest composition cannot also hold \"%s\" (stage %zu)",
                     method ? method : "?", i + 1);
            goto out;
        }
    }
out:
    j->run_ms = mono_ms() - t0;
    if (j->status == JOB_OK && !j->rows) j->rows = json_object();
}
