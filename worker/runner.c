/* runner.c - runs one job's composition on the job thread: validates the spec again (the worker
 * never trusts a message), then
 *   - a `selftest` composition (the orchestration test fixture) runs its stages;
 *   - any other composition: its stage plan (worker/interventions/plan.c: the stages in order, and
 *     the paper's re-application of a leading Wanda/SparseGPT/GPTQ at the end) is checked before
 *     any work (a method that is not built yet, or a test stage on a worker without --selftest,
 *     fails at once, not retryable); then the resident model is reset to its base weights
 *     (model_cache.c), the stages run through the intervention registry (interv_run_plan, the same
 *     code as `cisweep apply`), and the evaluation suite (worker/eval) scores the result on the
 *     worker's --data directory.
 * The outcome carries the metric rows and one stage record per stage that ran (method, effective
 * params, seed, record, wall time), which the coordinator stores in the `stages` table. */
#include "worker/job.h"
#include "worker/model_cache.h"
#include "worker/eval/eval.h"
#include "worker/interventions/intervention.h"
#include "worker/interventions/compress.h"
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

/* the job's edit set, which is also the seed of its stages (1 when the job has none) */
static int job_edit_set(const job_ctx *j) {
    json_t *es = json_object_get(j->spec, "edit_set");
    return json_is_integer(es) && json_integer_value(es) > 0 ? (int)json_integer_value(es) : 1;
}

static bool stop_cb(void *arg) { return job_should_stop(arg); }
static void progress_cb(void *arg, double f) { job_set_progress(arg, RUNNER_STAGE_SHARE * f); }

/* run the plan's stages on the slot's working model; 0, or -1 with the outcome filled */
static int run_stages(job_ctx *j, model_slot *slot, const interv_plan *plan, json_t **records) {
    interv_env env = {.model = slot->work, .tok = slot->tok, .data_dir = j->data_dir, .cache_dir = j->cache_dir,
                      .base = slot->base, .edit_set = job_edit_set(j), .threads = j->threads, .progress_fn = progress_cb,
                      .stop_fn = stop_cb, .cb_arg = j};
    cis_err err = {0};
    if (interv_run_plan(&env, plan, records, &err) == 0) return 0;
    if (err.code == CIS_ECANCEL || job_should_stop(j)) j->status = JOB_STOPPED;
    else fail(j, err.code == CIS_ENOMEM || err.code == CIS_EIO, "%s%s", err.msg, "");
    return -1;
}

static void evaluate(job_ctx *j, model_slot *slot, double stages_s, int n_stages, json_t *records) {
    cis_err err = {0};
    eval_opts o;
    eval_opts_default(&o);
    o.edit_set = job_edit_set(j);
    o.threads = j->threads;
    o.limit = j->eval_limit;
    int profile = j->eval_profile;
    json_t *ep = json_object_get(j->spec, "eval_profile");
    if (ep && eval_profile_parse(json_string_value(ep), "JOB.eval_profile", &profile, &err)) {
        fail(j, false, "%s%s", err.msg, "");
        return;
    }
    eval_opts_profile(&o, profile);
    o.skip_missing = j->skip_missing_data;
    /* avg_bits of a quantized model as upstream reports it: wbits + 32/group of the quantizer's
     * effective config (fidelity.md §3; compress.h) */
    cmp_quant_of_records(records, &o.quant.wbits, &o.quant.group_size);
    eval_rows rows = {0};
    double t0 = mono_sec();
    if (eval_suite_run(slot->work, slot->tok, j->data_dir, &o, &rows, &err)) {
        eval_rows_clear(&rows);
        fail(j, false, "evaluation failed: %s%s", err.msg, "");
        return;
    }
    eval_rows_set(&rows, "time_eval_s", mono_sec() - t0);
    eval_rows_set(&rows, "time_model_load_s", slot->load_s);
    if (n_stages > 0) eval_rows_set(&rows, "time_interventions_s", stages_s);
    j->rows = json_object();
    for (int i = 0; i < rows.n; i++) json_object_set_new(j->rows, rows.row[i].name, proto_metric_value(rows.row[i].value));
    eval_rows_clear(&rows);
    j->status = JOB_OK;
}

/* a composition on a real model: plan, reset, stages, evaluation */
static void run_model_job(job_ctx *j, json_t *comp) {
    cis_err err = {0};
    interv_plan plan;
    if (interv_plan_build(comp, "JOB.composition", j->selftest_enabled ? INTERV_ALLOW_TEST : 0, &plan, &err)) {
        fail(j, false, "%s%s", err.msg, "");
        return;
    }
    const char *model_dir = json_string_value(json_object_get(j->spec, "model_path"));
    if (!model_dir || !*model_dir) model_dir = json_string_value(json_object_get(j->spec, "model"));
    model_slot *slot = NULL;
    json_t *records = NULL;
    if (!j->data_dir) {
        fail(j, false, "this worker has no evaluation data: start it with --data DIR (a `cisweep world` "
             "directory or the real datasets in the same layout)%s%s", "", "");
    } else if (!j->cache) {
        fail(j, false, "this worker has no model cache (a test harness without --device)%s%s", "", "");
    } else if (!(slot = model_cache_acquire(j->cache, model_dir, &err))) {
        fail(j, true, "%s%s", err.msg, "");
    } else if (job_should_stop(j)) {
        j->status = JOB_STOPPED;
    } else {
        double t0 = mono_sec();
        if (run_stages(j, slot, &plan, &records) == 0) {
            job_set_progress(j, plan.n > 0 ? RUNNER_STAGE_SHARE : 0);
            evaluate(j, slot, mono_sec() - t0, plan.n, records);
        }
    }
    if (j->status == JOB_OK && json_array_size(records)) j->stages = json_incref(records);
    json_decref(records);
    interv_plan_clear(&plan);
}

/* the orchestration fixture: every stage must be selftest (worker/selftest.c) */
static void run_selftest_job(job_ctx *j, json_t *comp) {
    size_t n = json_array_size(comp);
    json_t *records = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *st = json_array_get(comp, i);
        const char *method = json_string_value(json_object_get(st, "method"));
        if (strcmp(method, "selftest") != 0) {
            j->status = JOB_FAILED;
            j->retryable = false;
            snprintf(j->error, sizeof j->error, "a selftest composition cannot also hold \"%s\" (stage %zu)", method,
                     i + 1);
            break;
        }
        if (!j->selftest_enabled) {
            fail(j, false, "selftest jobs are a test fixture: start the worker with --selftest to run them%s%s", "", "");
            break;
        }
        json_decref(j->rows);
        j->rows = NULL;
        int64_t t0 = mono_ms();
        selftest_execute(j, json_object_get(st, "params"));
        if (j->status != JOB_OK) break;
        interv_stage_info si = {(int)i + 1, (int)i + 1, "selftest", "test", false, json_object_get(st, "params"),
                                (uint64_t)job_edit_set(j), mono_ms() - t0};
        json_array_append_new(records, interv_stage_json(&si, NULL));
    }
    if (j->status == JOB_OK) j->stages = json_incref(records);
    else { json_decref(j->rows); j->rows = NULL; }
    json_decref(records);
}

void runner_execute(job_ctx *j) {
    int64_t t0 = mono_ms();
    cis_err err = {0};
    json_t *comp = spec_normalize(json_object_get(j->spec, "composition"), "JOB.composition", true, &err);
    if (!comp) {
        j->status = JOB_FAILED;
        j->retryable = false;
        snprintf(j->error, sizeof j->error, "invalid composition: %s", err.msg);
    } else {
        bool fixture = false;
        for (size_t i = 0; i < json_array_size(comp); i++)
            fixture |= !strcmp(json_string_value(json_object_get(json_array_get(comp, i), "method")), "selftest");
        if (fixture) run_selftest_job(j, comp);
        else run_model_job(j, comp);
    }
    json_decref(comp);
    j->run_ms = mono_ms() - t0;
    if (j->status == JOB_OK && !j->rows) j->rows = json_object();
}
