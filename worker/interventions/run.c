/* run.c - the context of one stage and the loop that runs a stage plan on a model (see
 * intervention.h). The job runner and `cisweep apply` both call interv_run_plan: the effective
 * params (canonical + the method's per-model preset) computed here are the ones the method reads
 * and the ones recorded with the job's result. */
#include "worker/interventions/intervention.h"
#include "worker/interventions/cmp_record.h"
#include "worker/interventions/mask.h"
#include "worker/train/train_loop.h"
#include "common/log.h"

#include <string.h>
#include <unistd.h>

/* ---- the context ---------------------------------------------------------------------------- */

void interv_progress(const interv_ctx *c, double f) {
    if (!c->progress_fn) return;
    c->progress_fn(c->cb_arg, f < 0 ? 0 : f > 1 ? 1 : f);
}

bool interv_should_stop(const interv_ctx *c) {
    return c->stop_fn && c->stop_fn(c->cb_arg);
}

int interv_stopped(const interv_ctx *c, cis_err *err) {
    return err_set(err, CIS_ECANCEL, "stopped on request (cancel, preemption or a signal)");
}

json_t *interv_param_get(const interv_ctx *c, const char *name) {
    return json_object_get(c->params, name);
}

static json_t *param_typed(const interv_ctx *c, const char *name, bool ok_int, bool ok_real, bool ok_str,
                           bool ok_bool) {
    json_t *v = json_object_get(c->params, name);
    bool ok = v && ((ok_int && json_is_integer(v)) || (ok_real && json_is_number(v)) ||
                    (ok_str && json_is_string(v)) || (ok_bool && json_is_boolean(v)));
    if (!ok)
        die_at(__FILE__, __LINE__, __func__, "declare it in common/spec_registry.c or set it in the preset",
               "%s (stage %d): parameter \"%s\" missing or of the wrong type", c->method ? c->method : "?", c->stage,
               name);
    return v;
}

long long interv_param_int(const interv_ctx *c, const char *name) {
    return (long long)json_integer_value(param_typed(c, name, true, false, false, false));
}
double interv_param_float(const interv_ctx *c, const char *name) {
    return json_number_value(param_typed(c, name, true, true, false, false));
}
const char *interv_param_str(const interv_ctx *c, const char *name) {
    return json_string_value(param_typed(c, name, false, false, true, false));
}
bool interv_param_bool(const interv_ctx *c, const char *name) {
    return json_is_true(param_typed(c, name, false, false, false, true));
}

/* ---- effective params ----------------------------------------------------------------------- */

json_t *interv_effective_params(const interv_step *s, const llama_config *cfg, cis_err *err) {
    json_t *p = json_is_object(s->params) ? json_deep_copy(s->params) : json_object();
    if (s->iv && s->iv->preset && s->iv->preset(cfg, p, err)) {
        json_decref(p);
        err_prefix(err, "%s (stage %d): preset for this model", s->iv->name, s->stage);
        return NULL;
    }
    return p;
}

/* ---- the plan loop -------------------------------------------------------------------------- */

/* stage k's progress is mapped into the whole plan's: (k - 1 + f) / n */
typedef struct plan_cb {
    const interv_env *env;
    int k, n;
} plan_cb;

static void plan_progress(void *arg, double f) {
    plan_cb *p = arg;
    if (p->env->progress_fn) p->env->progress_fn(p->env->cb_arg, ((double)(p->k - 1) + f) / p->n);
}

static bool plan_stop(void *arg) {
    plan_cb *p = arg;
    return p->env->stop_fn && p->env->stop_fn(p->env->cb_arg);
}

/* policy mask: the post-step hook of the trainers (train_loop_set_post_step) */
static int mask_post_step(void *arg, int64_t step, cis_err *err) {
    (void)step;
    return interv_mask_apply(arg, err);
}

/* policy mask around one step: mk holds the zeros of the pruners before it (n = 0: none yet).
 * After the step: re-impose them (a closed-form update, a merge), record what was restored, and
 * capture the step's own zeros when it is a pruner that later steps follow. */
static int mask_after_step(const interv_step *s, llama_model *m, interv_mask *mk, int64_t a0, int64_t r0,
                           interv_record *rec, cis_err *err) {
    if (mk->n > 0) { /* a0, r0: the counters before the step (the post-step hook counted during it) */
        if (interv_mask_apply(mk, err)) return -1;
        interv_record_set_int(rec, "mask_reimposed", (long long)(mk->applied - a0));
        interv_record_set_int(rec, "mask_restored", (long long)(mk->restored - r0));
    }
    if (s->mask_capture) {
        if (interv_mask_capture(mk, m, err)) return -1;
        interv_record_set_int(rec, "mask_zeros", (long long)mk->zeros);
    }
    return 0;
}

/* policy mask, a restored pruning step: its mask from the record file its stage record references
 * (stage_rec.record.cmp_record), or the zeros of the model when it references none or the file is
 * missing (logged, and said in the stage record's record.mask_source). A file that is there but
 * does not decode, or is not the one referenced, fails the plan (naming it). */
static int mask_from_record(interv_mask *mk, llama_model *m, json_t *stage_rec, cis_err *err) {
    json_t *rec = json_object_get(stage_rec, "record");
    json_t *ref = json_object_get(rec, "cmp_record");
    const char *path = json_string_value(json_object_get(ref, "path"));
    char why[512] = "no cmp_record in the stage record";
    if (path && access(path, F_OK) != 0) snprintf(why, sizeof why, "%s is missing", path);
    else if (ref) {
        cmprec *cr = NULL;
        if (cmprec_read_ref(ref, &cr, err)) return err_prefix(err, "the restored stage's mask"), -1;
        int rc = cr->kind == CMPREC_MASK ? interv_mask_add_record(mk, m, cr, err)
                                          : err_set(err, CIS_EINVAL, "%s: a %s record holds no mask", path, cr->method);
        cmprec_free(&cr);
        if (rc == 0 && json_is_object(rec)) json_object_set_new(rec, "mask_source", json_sprintf("record %s", path));
        return rc;
    }
    LOG_W("policy mask: the restored pruning stage's mask comes from the model's zeros (%s)", why);
    if (json_is_object(rec)) json_object_set_new(rec, "mask_source", json_sprintf("zeros of the restored model (%s)", why));
    return interv_mask_capture(mk, m, err);
}

/* one step: effective params, context, apply, stage record */
static int run_step(const interv_env *env, const interv_step *s, int n, interv_mask *mk, json_t *records,
                    cis_err *err) {
    if (!s->iv->apply) { /* a plan laid out without interv_plan_build's checks: refused before any work */
        err_set(err, CIS_EINVAL, "intervention \"%s\" is not built yet", s->iv->name);
        err_prefix(err, "%s (stage %d)", s->iv->name, s->stage);
        return -1;
    }
    json_t *params = interv_effective_params(s, llama_model_config(env->model), err);
    if (!params) return -1;
    interv_record rec;
    interv_record_init(&rec);
    plan_cb cb = {env, s->stage, n};
    int edit_set = env->edit_set >= 1 ? env->edit_set : 1;
    interv_ctx c = {
        .model = env->model, .tok = env->tok, .data_dir = env->data_dir, .cache_dir = env->cache_dir, .base = env->base,
        .method = s->iv->name, .stage = s->stage, .n_stages = n, .recompress = s->recompress, .params = params,
        .seed = (uint64_t)edit_set, .edit_set = edit_set, .threads = env->threads, .record = &rec,
        .progress_fn = plan_progress, .stop_fn = plan_stop, .cb_arg = &cb,
    };
    LOG_I("stage %d/%d: %s%s", s->stage, n, s->iv->name, s->recompress ? " (re-applied at the end: recompress policy)" : "");
    int64_t t0 = mono_ms();
    int rc;
    int64_t mask_a0 = mk->applied, mask_r0 = mk->restored;
    if (!s->iv->apply) /* a plan laid out without interv_plan_build's checks */
        rc = err_set(err, CIS_EINVAL, "intervention \"%s\" is not built yet", s->iv->name);
    else {
        if (mk->n > 0) train_loop_set_post_step(mask_post_step, mk); /* policy mask: after every optimizer step */
        rc = interv_should_stop(&c) ? interv_stopped(&c, err) : s->iv->apply(&c, err);
        train_loop_set_post_step(NULL, NULL);
    }
    interv_phase_end(&rec);
    if (rc == 0 && rec.cmp && env->record_dir) { /* a compressor's masks or codes, as a file */
        cmprec_ref ref;
        interv_phase_begin(&rec, "record");
        rc = cmprec_write(rec.cmp, env->record_dir, &ref, err);
        interv_phase_end(&rec);
        if (rc == 0) interv_record_set(&rec, "cmp_record", cmprec_ref_json(rec.cmp, &ref));
    }
    if (rc == 0) rc = mask_after_step(s, env->model, mk, mask_a0, mask_r0, &rec, err);
    int64_t wall = mono_ms() - t0;
    if (rc) {
        if (err && !err->code) err->code = CIS_EINVAL; /* a method that forgot the code */
        err_prefix(err, "%s (stage %d)", s->iv->name, s->stage);
    } else {
        interv_stage_info si = {s->stage, s->of_stage, s->iv->name, category_name(s->iv->category), s->recompress,
                                params, c.seed, wall};
        json_array_append_new(records, interv_stage_json(&si, &rec));
        plan_progress(&cb, 1.0);
        LOG_I("stage %d/%d: %s done in %.3f s", s->stage, n, s->iv->name, wall / 1000.0);
    }
    interv_record_clear(&rec);
    json_decref(params);
    return rc;
}

int interv_run_plan(const interv_env *env, const interv_plan *plan, json_t **records, cis_err *err) {
    CIS_ASSERT(env && env->model && plan);
    json_t *recs = env->records_in ? json_deep_copy(env->records_in) : json_array();
    int rc = 0;
    if (plan->n > 0 && env->threads > 0) backend_set_threads(llama_model_backend(env->model), env->threads);
    interv_mask mk = {0};
    int first = env->first_step > 0 ? env->first_step : 0;
    /* a restored prefix (snapshot.h): the masks its pruning steps captured are read from their
     * record files (the stage record's cmp_record); a step without one (a record from before the
     * files, or a file gone) falls back to the zeros of the restored weights, which under `mask`
     * were kept at zero since */
    for (int k = 0; k < first && k < plan->n && rc == 0; k++)
        if (plan->steps[k].mask_capture) rc = mask_from_record(&mk, env->model, json_array_get(recs, (size_t)k), err);
    for (int k = first; k < plan->n && rc == 0; k++) {
        rc = run_step(env, &plan->steps[k], plan->n, &mk, recs, err);
        if (rc == 0 && env->snap_step_fn) env->snap_step_fn(env->snap_arg, k + 1, env->model, recs);
        if (rc == 0 && k + 1 < plan->n && env->after_step_fn) {
            rc = env->after_step_fn(env->after_arg, &plan->steps[k], recs, err);
            if (rc) err_prefix(err, "after stage %d", plan->steps[k].stage);
        }
    }
    interv_mask_clear(&mk);
    if (records) *records = recs;
    else json_decref(recs);
    return rc;
}
