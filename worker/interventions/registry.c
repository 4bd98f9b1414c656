/* registry.c - the intervention registry: one row per method name of common/spec_registry.c
 * (tests/worker/interventions/test_registry.c checks that the two tables list the same names and
 * categories, so they cannot drift). A row says whether the method is built in this worker, its
 * apply and preset functions, and whether the paper's recompress rule re-applies it.
 *
 * Adding a method: write worker/interventions/<name>.c, declare it in methods.h, and change its
 * row below from NOT_BUILT to BUILT with its functions (docs/interventions.md). */
#include "worker/interventions/intervention.h"
#include "worker/interventions/methods.h"

#include <string.h>

#define NOT_BUILT(name, cat, reapply, doc) {name, cat, INTERV_NOT_BUILT, NULL, NULL, reapply, doc}

static const intervention TABLE[] = {
    {"ft", CAT_EDIT, INTERV_BUILT, ft_apply, ft_preset, false,
     "FT-M fine-tuning of mlp.down_proj: worker/interventions/ft.c"},
    {"memit", CAT_EDIT, INTERV_BUILT, memit_apply, memit_preset, false,
     "MEMIT with cached second-moment statistics: worker/interventions/memit.c, memit_stats.c"},
    {"lora", CAT_EDIT, INTERV_BUILT, lora_apply, lora_preset, false,
     "AdaLoRA (rank 12, the paper's) or plain LoRA on q/v_proj, merged: worker/interventions/lora.c"},
    /* the compressors the paper re-applies at the end when they come first (fidelity.md §3) */
    {"wanda", CAT_COMPRESS, INTERV_BUILT, wanda_apply, wanda_preset, true, "Wanda: worker/interventions/wanda.c"},
    {"sparsegpt", CAT_COMPRESS, INTERV_BUILT, sparsegpt_apply, sparsegpt_preset, true,
     "SparseGPT: worker/interventions/sparsegpt.c"},
    {"gptq", CAT_COMPRESS, INTERV_BUILT, gptq_apply, gptq_preset, true, "GPTQ: worker/interventions/gptq.c"},
    {"awq", CAT_COMPRESS, INTERV_BUILT, awq_apply, awq_preset, false, "AWQ (never re-applied): worker/interventions/awq.c"},
    {"rmu", CAT_UNLEARN, INTERV_BUILT, rmu_apply, rmu_preset, false, "RMU: worker/interventions/rmu.c"},
    {"ga", CAT_UNLEARN, INTERV_BUILT, ga_apply, ga_preset, false, "gradient ascent: worker/interventions/ga.c"},
    {"gd", CAT_UNLEARN, INTERV_BUILT, gd_apply, gd_preset, false, "gradient difference: worker/interventions/ga.c"},
    {"selftest", CAT_TEST, INTERV_FIXTURE, NULL, NULL, false,
     "the orchestration fixture: worker/selftest.c, run by the runner, never on a model"},
    {"test_scale", CAT_TEST, INTERV_BUILT, test_scale_apply, test_scale_preset, false,
     "test stage: worker/interventions/test_scale.c"},
};
#define N_TABLE (sizeof TABLE / sizeof TABLE[0])

const intervention *intervention_lookup(const char *name) {
    for (size_t i = 0; name && i < N_TABLE; i++)
        if (!strcmp(TABLE[i].name, name)) return &TABLE[i];
    return NULL;
}

const intervention *intervention_at(size_t i) {
    return i < N_TABLE ? &TABLE[i] : NULL;
}

const char *interv_status_name(interv_status s) {
    switch (s) {
    case INTERV_BUILT: return "built";
    case INTERV_NOT_BUILT: return "not built yet";
    case INTERV_FIXTURE: return "fixture";
    }
    return "?";
}
