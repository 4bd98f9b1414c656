/* plan.c - the stage plan of a composition: which stages run, in which order, including the
 * paper's re-application of a leading compressor at the end (see intervention.h). Upstream
 * (main.py:416-423 of hartvigsen-group/composable-interventions; ../shared/docs/fidelity.md §3):
 * a composition of more than one stage that starts with a compressor other than AWQ appends that
 * compressor again, so GPTQ->MEMIT runs GPTQ->MEMIT->GPTQ and the final model is still compressed
 * (a fresh mask or grid computed on the edited weights, same seed: same calibration windows). */
#include "worker/interventions/intervention.h"

#include <stdlib.h>
#include <string.h>

static const char *stage_method(json_t *canonical, size_t i) {
    return json_string_value(json_object_get(json_array_get(canonical, i), "method"));
}

bool interv_plan_reapplies(json_t *canonical) {
    if (json_array_size(canonical) < 2) return false;
    const intervention *first = intervention_lookup(stage_method(canonical, 0));
    return first && first->category == CAT_COMPRESS && first->reapply_at_end;
}

/* can step i (1-based `k`) run here? everything knowable without a model */
static int check_step(const intervention *iv, const method_info *mi, int k, unsigned flags, cis_err *err) {
    if (!iv || !mi) /* spec validation passed, so the registry lacks a row: a build inconsistency */
        return err_set(err, CIS_EINVAL, "intervention \"%s\" (stage %d) has no entry in the worker's registry "
                       "(worker/interventions/registry.c)", mi ? mi->name : "?", k);
    if (iv->status == INTERV_FIXTURE)
        return err_set(err, CIS_EINVAL, "\"%s\" (stage %d) is the orchestration fixture: it runs only alone, as a "
                       "selftest job, never on a model", iv->name, k);
    if (iv->category == CAT_TEST && !(flags & INTERV_ALLOW_TEST))
        return err_set(err, CIS_EINVAL, "\"%s\" (stage %d) is a test stage: it runs only on a worker started with "
                       "--selftest (cisweep apply: --allow-test-stages)", iv->name, k);
    if (iv->status != INTERV_BUILT || !iv->apply)
        return err_set(err, CIS_EINVAL, "intervention \"%s\" (stage %d) is not built yet", iv->name, k);
    return 0;
}

void interv_plan_layout(json_t *canonical, unsigned flags, interv_plan *out) {
    memset(out, 0, sizeof *out);
    size_t n = json_array_size(canonical);
    bool again = !(flags & INTERV_EXACT) && interv_plan_reapplies(canonical);
    int total = (int)n + (again ? 1 : 0);
    out->canonical = json_incref(canonical);
    out->n = total;
    out->steps = total ? xcalloc((size_t)total, sizeof *out->steps) : NULL;
    for (int k = 0; k < total; k++) {
        size_t src = (size_t)k < n ? (size_t)k : 0; /* the re-applied step repeats stage 1 */
        json_t *st = json_array_get(canonical, src);
        const char *name = json_string_value(json_object_get(st, "method"));
        interv_step *s = &out->steps[k];
        s->stage = k + 1;
        s->of_stage = (int)src + 1;
        s->recompress = (size_t)k >= n;
        s->iv = intervention_lookup(name);
        s->mi = method_lookup(name);
        s->params = json_object_get(st, "params");
    }
}

int interv_plan_build(json_t *composition, const char *where, unsigned flags, interv_plan *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    /* the spec layer accepts test methods here; check_step decides with this plan's flags */
    json_t *canon = spec_normalize(composition, where ? where : "composition", true, err);
    if (!canon) return -1;
    interv_plan_layout(canon, flags, out);
    json_decref(canon);
    for (int k = 0; k < out->n; k++) {
        const interv_step *s = &out->steps[k];
        if (check_step(s->iv, s->mi, s->of_stage, flags, err)) {
            interv_plan_clear(out);
            return -1;
        }
    }
    return 0;
}

void interv_plan_clear(interv_plan *p) {
    if (!p) return;
    json_decref(p->canonical);
    free(p->steps);
    memset(p, 0, sizeof *p);
}
