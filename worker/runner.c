/* runner.c - runs one job's composition on the job thread: validates the spec again (the worker
 * never trusts a message), then
 *   - a `selftest` composition (the orchestration test fixture) runs its stages;
 *   - any other composition: its stage plan (worker/interventions/plan.c: the stages in order, and
 *     the re-applications of JOB.recompress, the recompress policy: by default the paper's
 *     re-application of a leading Wanda/SparseGPT/GPTQ at the end) is checked before
 *     any work (a method that is not built yet, or a test stage on a worker without --selftest,
 *     fails at once, not retryable); then the resident model is reset to its base weights
 *     (model_cache.c), the stages run through the intervention registry (interv_run_plan, the same
 *     code as `cisweep apply`), and the evaluation suite (worker/eval) scores the result on the
 *     worker's --data directory.
 * With the worker's --stage-evals N, a cheap evaluation (MMLU/WMDP on N questions, N perplexity
 * windows, avg_bits) runs after every stage of the plan but the last, as rows "stage<k>.<metric>".
 * A prerequisite job (a composition of one `memit_stats` stage, added by the coordinator at launch)
 * runs worker/prereq.c instead: no stage plan, no evaluation.
 * A model job's rows include `results_epoch` (CISWEEP_RESULTS_EPOCH, common/version.h): which
 * generation of presets and algorithms computed them; fixtures and prerequisite jobs have none.
 * The outcome carries the metric rows and one stage record per stage that ran (method, effective
 * params, seed, record, wall time), which the coordinator stores in the `stages` table. */
#include "worker/job.h"
#include "worker/prereq.h"
#include "worker/model_cache.h"
#include "worker/snapshot.h"
#include "worker/eval/eval.h"
#include "worker/interventions/intervention.h"
#include "worker/interventions/compress.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/spec.h"
#include "common/util.h"
#include "common/version.h"

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

/* ---- the cheap evaluation after each stage (--stage-evals N) ------------------------------------ */

/* what a stage evaluation reports, as "stage<k>.<metric>" (k: the plan step that just ran) */
static const char *const STAGE_METRICS[] = {"mmlu", "wmdp_bio", "wmdp_cyber", "wmdp_avg", "ppl_wikitext", "avg_bits",
                                            "sparsity", NULL};

typedef struct stage_evals {
    job_ctx *j;
    model_slot *slot;
    json_t *rows;        /* {"stage1.mmlu": v, ...} (owned) */
    double seconds;      /* spent in stage evaluations (not counted as intervention time) */
} stage_evals;

/* interv_env.after_step_fn: MMLU and WMDP on their first N questions, N perplexity windows of
 * WikiText, avg_bits / sparsity of the model as it is after step s (N = --stage-evals, capped by
 * --eval-limit); no zsRE generation (the expensive part; the final suite has it) */
static int stage_eval(void *arg, const interv_step *s, json_t *records, cis_err *err) {
    stage_evals *se = arg;
    job_ctx *j = se->j;
    eval_opts o;
    eval_opts_default(&o);
    o.edit_set = job_edit_set(j);
    o.threads = j->threads;
    o.limit = j->eval_limit > 0 && j->eval_limit < j->stage_evals ? j->eval_limit : j->stage_evals;
    o.skip_zsre = o.skip_qa = true;
    o.teacher_forced = false;
    o.skip_missing = j->skip_missing_data;
    cmp_quant_of_records(records, &o.quant.wbits, &o.quant.group_size);
    eval_rows rows = {0};
    double t0 = mono_sec();
    if (eval_suite_run(se->slot->work, se->slot->tok, j->data_dir, &o, &rows, err)) {
        eval_rows_clear(&rows);
        err_prefix(err, "the evaluation after stage %d (--stage-evals)", s->stage);
        return -1;
    }
    double dt = mono_sec() - t0;
    se->seconds += dt;
    char name[128];
    for (int i = 0; STAGE_METRICS[i]; i++) {
        const eval_row *r = eval_rows_get(&rows, STAGE_METRICS[i]);
        if (!r) continue;
        snprintf(name, sizeof name, "stage%d.%s", s->stage, STAGE_METRICS[i]);
        json_object_set_new(se->rows, name, proto_metric_value(r->value));
    }
    snprintf(name, sizeof name, "stage%d.time_eval_s", s->stage);
    json_object_set_new(se->rows, name, proto_metric_value(dt));
    eval_rows_clear(&rows);
    return job_should_stop(j) ? err_set(err, CIS_ECANCEL, "stopped on request") : 0;
}

/* run the plan's stages on the slot's working model; 0, or -1 with the outcome filled */
static int run_stages(job_ctx *j, model_slot *slot, const interv_plan *plan, stage_evals *se, json_t **records) {
    /* shared work done once: start from the longest snapshot of a prefix, keep new ones (snapshot.h) */
    snap_job sj;
    /* --stage-evals evaluates the model after every stage, so every stage must run: a restored
     * prefix has no intermediate model to evaluate (no snapshots for such jobs) */
    bool snaps = !(j->stage_evals > 0 && plan->n > 1);
    snap_job_begin(&sj, snaps ? j->snaps : NULL, slot, slot->load_s > 0, plan, slot->path, j->job, j->attempt,
                   (int)json_integer_value(json_object_get(j->spec, "edit_set")),
                   json_string_value(json_object_get(j->spec, "recompress")));
    /* a compression stage's record file (masks, integer codes) goes to the worker's cache dir,
     * content-addressed (cmp_record.h): CACHE/records/<sha256>.cisrec */
    char *record_dir = j->cache_dir ? xasprintf("%s/records", j->cache_dir) : NULL;
    interv_env env = {.model = slot->work, .tok = slot->tok, .data_dir = j->data_dir, .cache_dir = j->cache_dir,
                      .record_dir = record_dir, .base = slot->base, .edit_set = job_edit_set(j), .threads = j->threads, .progress_fn = progress_cb,
                      .stop_fn = stop_cb, .cb_arg = j, .first_step = sj.restored, .records_in = sj.records,
                      .snap_step_fn = snap_job_after_step, .snap_arg = &sj};
    if (j->stage_evals > 0 && plan->n > 1) {
        env.after_step_fn = stage_eval;
        env.after_arg = se;
    }
    cis_err err = {0};
    int rc = interv_run_plan(&env, plan, records, &err);
    free(record_dir);
    snap_job_end(&sj);
    if (rc == 0) return 0;
    if (err.code == CIS_ECANCEL || job_should_stop(j)) j->status = JOB_STOPPED;
    else fail(j, err.code == CIS_ENOMEM || err.code == CIS_EIO, "%s%s", err.msg, "");
    return -1;
}

/* the evaluation protocol of a job (docs/eval.md "Profiles"): the worker's --eval-profile and
 * --mc-prompt (main.c checked them; a bad value still fails the job, not the worker). 0, or -1
 * with the outcome failed (not retryable) naming the option. */
static int eval_protocol(job_ctx *j, eval_opts *o) {
    eval_profile p = EVAL_PROFILE_DEFAULT;
    if (j->eval_profile && eval_profile_parse(j->eval_profile, &p)) {
        fail(j, false, "worker option --eval-profile \"%s\": expected default, paper or sweep%s", j->eval_profile, "");
        return -1;
    }
    eval_opts_profile(o, p);
    if (j->mc_prompt && mc_prompt_style_parse(j->mc_prompt, &o->mc_prompt)) {
        fail(j, false, "worker option --mc-prompt \"%s\": expected 0.4.2 or 0.4.4%s", j->mc_prompt, "");
        return -1;
    }
    return 0;
}

static void evaluate(job_ctx *j, model_slot *slot, double stages_s, int n_stages, json_t *records,
                     const stage_evals *se) {
    cis_err err = {0};
    eval_opts o;
    eval_opts_default(&o);
    if (eval_protocol(j, &o)) return;
    o.edit_set = job_edit_set(j);
    o.threads = j->threads;
    o.limit = j->eval_limit;
    o.skip_missing = j->skip_missing_data;
    o.open_answer = j->eval_open;
    o.cloze = j->eval_cloze;
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
    if (n_stages > 0) eval_rows_set(&rows, "time_interventions_s", stages_s - se->seconds);
    if (json_object_size(se->rows)) eval_rows_set(&rows, "time_stage_evals_s", se->seconds);
    j->rows = json_object();
    for (int i = 0; i < rows.n; i++) json_object_set_new(j->rows, rows.row[i].name, proto_metric_value(rows.row[i].value));
    json_object_update(j->rows, se->rows);
    /* the results epoch this build computes (common/version.h): reuse and `cisweep run` compare it */
    json_object_set_new(j->rows, "results_epoch", proto_metric_value(CISWEEP_RESULTS_EPOCH));
    eval_rows_clear(&rows);
    j->status = JOB_OK;
}

/* the job's recompress policy: JOB.recompress (common/recompress.h), "paper" when absent; -1 with
 * the job failed when it is not one of the policies */
static int job_policy(job_ctx *j) {
    json_t *v = json_object_get(j->spec, "recompress");
    if (!v) return RECOMPRESS_PAPER;
    int p = recompress_parse(json_string_value(v));
    if (p < 0) {
        char got[64];
        snprintf(got, sizeof got, "%s", json_is_string(v) ? json_string_value(v) : "(not a string)");
        fail(j, false, "JOB.recompress: \"%s\" is not a recompress policy (allowed: %s)", got, RECOMPRESS_CHOICES);
    }
    return p;
}

/* a composition on a real model: plan, reset, stages, evaluation */
static void run_model_job(job_ctx *j, json_t *comp) {
    cis_err err = {0};
    eval_opts probe; /* a bad evaluation protocol fails the job before any stage runs */
    eval_opts_default(&probe);
    if (eval_protocol(j, &probe)) return;
    interv_plan plan;
    int policy = job_policy(j);
    if (policy < 0) return;
    unsigned flags = (j->selftest_enabled ? INTERV_ALLOW_TEST : 0) | INTERV_RECOMPRESS(policy);
    if (interv_plan_build(comp, "JOB.composition", flags, &plan, &err)) {
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
        stage_evals se = {.j = j, .slot = slot, .rows = json_object()};
        if (run_stages(j, slot, &plan, &se, &records) == 0) {
            job_set_progress(j, plan.n > 0 ? RUNNER_STAGE_SHARE : 0);
            evaluate(j, slot, mono_sec() - t0, plan.n, records, &se);
        }
        json_decref(se.rows);
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
    if (prereq_is(json_object_get(j->spec, "composition"))) {   /* a prerequisite job (prereq.c) */
        prereq_run(j, json_object_get(j->spec, "composition"));
        j->run_ms = mono_ms() - t0;
        return;
    }
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
