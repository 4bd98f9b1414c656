/* mem_need.c - a job's device memory need from its model's config.json and its composition
 * (mem_need.h has the formula). The coordinator never links the engine, so the parameter count
 * is computed here from the config's sizes; tests/coordinator/test_mem_need.c checks it against
 * the engine's checkpoint_layout. */
#include "coordinator/mem_need.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024.0 * 1024.0)
#define ACT_FIXED_MIB 64.0

/* a positive integer field, or def (> 0) when absent and def is given; -1 with err */
static int pos_field(json_t *cfg, const char *name, int64_t def, const char *where, int64_t *v, cis_err *err) {
    json_t *x = json_object_get(cfg, name);
    if (!x || json_is_null(x)) {
        if (def > 0) { *v = def; return 0; }
        return err_set(err, CIS_EINVAL, "%s: \"%s\" is missing (a positive integer is needed to estimate the "
                       "model's memory)", where, name);
    }
    if (!json_is_integer(x) || json_integer_value(x) <= 0)
        return err_set(err, CIS_EINVAL, "%s: \"%s\" must be a positive integer", where, name);
    *v = json_integer_value(x);
    return 0;
}

int mem_model_from_config(const char *json_text, const char *where, mem_model *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *cfg = json_loads(json_text ? json_text : "", 0, &je);
    if (!cfg) return err_set(err, CIS_EINVAL, "%s: line %d column %d: %s", where, je.line, je.column, je.text);
    int rc = -1;
    if (!json_is_object(cfg)) { err_set(err, CIS_EINVAL, "%s: expected a JSON object", where); goto out; }
    int64_t V, D, F, L, H, Hkv, Dh;
    if (pos_field(cfg, "vocab_size", 0, where, &V, err) || pos_field(cfg, "hidden_size", 0, where, &D, err) ||
        pos_field(cfg, "intermediate_size", 0, where, &F, err) ||
        pos_field(cfg, "num_hidden_layers", 0, where, &L, err) ||
        pos_field(cfg, "num_attention_heads", 0, where, &H, err) ||
        pos_field(cfg, "num_key_value_heads", H, where, &Hkv, err) ||
        pos_field(cfg, "head_dim", D / H > 0 ? D / H : 1, where, &Dh, err))
        goto out;
    json_t *tie = json_object_get(cfg, "tie_word_embeddings");
    bool tied = json_is_true(tie);
    /* checkpoint_layout: embed [V,D]; per layer 2 norms [D], q [H*Dh,D], k,v [Hkv*Dh,D], o [D,H*Dh],
     * gate, up [F,D], down [D,F]; final norm [D]; lm_head [V,D] unless tied. In doubles: an absurd
     * config must not overflow int64 before the range check below. */
    double per_layer = 2.0 * D + 2.0 * (double)H * Dh * D + 2.0 * (double)Hkv * Dh * D + 3.0 * (double)F * D;
    double p = (double)V * D * (tied ? 1 : 2) + (double)L * per_layer + D;
    if (!(p < 1e15)) { err_set(err, CIS_EINVAL, "%s: the sizes give %.3g parameters (not a model)", where, p); goto out; }
    out->n_params = (int64_t)p;
    out->intermediate = F;
    rc = 0;
out:
    json_decref(cfg);
    return rc;
}

int mem_model_from_dir(const char *model_dir, mem_model *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    char *path = xasprintf("%s/config.json", model_dir);
    char *text = read_file(path, NULL, err);
    int rc = text ? mem_model_from_config(text, path, out, err) : -1;
    free(text);
    free(path);
    return rc;
}

/* the extra bytes one stage needs beyond the resident copies, and its class */
static double stage_extra(const mem_model *m, json_t *stage, const char **kind) {
    const char *method = json_string_value(json_object_get(stage, "method"));
    double W = 4.0 * (double)m->n_params;
    if (!method) { *kind = "train"; return 3 * W; }
    static const char *const infer[] = {"wanda", "sparsegpt", "gptq", "awq", "selftest", "test_scale"};
    for (size_t i = 0; i < sizeof infer / sizeof *infer; i++)
        if (!strcmp(method, infer[i])) { *kind = "inference"; return 0; }
    if (!strcmp(method, "memit") || !strcmp(method, "memit_stats")) { /* memit_stats: the statistics job */
        json_t *layers = json_object_get(json_object_get(stage, "params"), "layers");
        double n = json_is_array(layers) && json_array_size(layers) > 0 ? (double)json_array_size(layers) : 5;
        *kind = "edit-stats";
        return 8.0 * (double)m->intermediate * (double)m->intermediate * n;
    }
    *kind = "train"; /* ft, lora, rmu, ga, gd, and any method added later until it is classed */
    return 3 * W;
}

void mem_need_estimate(const mem_model *m, json_t *stages, mem_need *out) {
    memset(out, 0, sizeof *out);
    if (m->override_mb > 0) {
        out->need_mb = m->override_mb;
        snprintf(out->kind, sizeof out->kind, "override");
        snprintf(out->basis, sizeof out->basis, "need_mb=%lld from the models map", (long long)m->override_mb);
        return;
    }
    double W = 4.0 * (double)m->n_params;
    double extra = -1; /* the stage that needs the most decides the class */
    const char *kind = "inference", *which = "";
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st) {
        const char *k;
        double e = stage_extra(m, st, &k);
        if (e > extra) {
            extra = e;
            kind = k;
            which = json_string_value(json_object_get(st, "method"));
            if (!which) which = "?";
        }
    }
    if (extra < 0) extra = 0;
    double bytes = 2 * W + W / 4 + ACT_FIXED_MIB * MIB + extra;
    out->need_mb = (int64_t)ceil(bytes / MIB);
    if (out->need_mb < 1) out->need_mb = 1;
    snprintf(out->kind, sizeof out->kind, "%s", kind);
    snprintf(out->basis, sizeof out->basis, "P=%.4g W=%.1fMiB kind=%s%s%s%s extra=%.1fMiB", (double)m->n_params,
             W / MIB, kind, *which ? " (" : "", which, *which ? ")" : "", extra / MIB);
}
