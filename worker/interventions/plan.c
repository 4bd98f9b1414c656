/* plan.c - the stage plan of a composition: which stages run, in which order, including the
 * re-application of compressors at the end that the recompress policy asks for (common/recompress.h,
 * intervention.h; default: the paper's rule below), and the mask policy's checks. Upstream
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

bool interv_prunes(const intervention *iv) {
    return iv && iv->category == CAT_COMPRESS && (!strcmp(iv->name, "wanda") || !strcmp(iv->name, "sparsegpt"));
}

recompress_policy interv_plan_policy(unsigned flags) {
    if (flags & INTERV_EXACT) return RECOMPRESS_NEVER;
    unsigned p = (flags >> INTERV_RECOMPRESS_SHIFT) & 3u;
    return (recompress_policy)p;
}

/* is stage i (0-based) of canonical re-applied at the end under policy? */
static bool reapplied(json_t *canonical, size_t i, recompress_policy policy) {
    size_t n = json_array_size(canonical);
    if (policy == RECOMPRESS_PAPER) return i == 0 && interv_plan_reapplies(canonical);
    if (policy != RECOMPRESS_ALWAYS) return false;
    /* always: the paper's rule for every compressor (AWQ included) that some later stage follows */
    const intervention *iv = intervention_lookup(stage_method(canonical, i));
    return iv && iv->category == CAT_COMPRESS && i + 1 < n;
}

void interv_plan_layout(json_t *canonical, unsigned flags, interv_plan *out) {
    memset(out, 0, sizeof *out);
    size_t n = json_array_size(canonical);
    out->policy = interv_plan_policy(flags);
    int extra = 0;
    for (size_t i = 0; i < n; i++) extra += reapplied(canonical, i, out->policy);
    int total = (int)n + extra;
    out->canonical = json_incref(canonical);
    out->n = total;
    out->steps = total ? xcalloc((size_t)total, sizeof *out->steps) : NULL;
    size_t next_again = 0; /* the next composition stage to look at for a re-application */
    for (int k = 0; k < total; k++) {
        size_t src = (size_t)k;
        if ((size_t)k >= n) /* the re-applied steps, in composition order */
            while (!reapplied(canonical, next_again, out->policy)) next_again++;
        if ((size_t)k >= n) src = next_again++;
        json_t *st = json_array_get(canonical, src);
        const char *name = json_string_value(json_object_get(st, "method"));
        interv_step *s = &out->steps[k];
        s->stage = k + 1;
        s->of_stage = (int)src + 1;
        s->recompress = (size_t)k >= n;
        s->iv = intervention_lookup(name);
        s->mi = method_lookup(name);
        s->params = json_object_get(st, "params");
        /* mask: a pruner's zeros are kept from here on when some stage follows it */
        s->mask_capture = out->policy == RECOMPRESS_MASK && interv_prunes(s->iv) && (size_t)k + 1 < n;
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
        if (out->policy == RECOMPRESS_MASK && s->iv->category == CAT_COMPRESS && !interv_prunes(s->iv) &&
            s->stage < out->n) {
            err_set(err, CIS_EINVAL, "recompress policy \"mask\": \"%s\" (stage %d) is a quantizer followed by "
                    "stage %d; mask keeps only a pruner's (wanda, sparsegpt) zeros, snapping to a quantizer's grid is "
                    "not built (use paper, never or always)", s->iv->name, s->stage, s->stage + 1);
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
