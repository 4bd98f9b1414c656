/* test_scale.c - `test_scale`, the trivial built-in stage used only by tests (category test,
 * accepted only with --allow-selftest / --selftest / --allow-test-stages): it multiplies every
 * parameter whose Hugging Face name matches the glob `param` by `factor`. A real, checkable change
 * to the model that goes through every path a real intervention takes: the registry, the preset
 * (which resolves `last_layers` into the effective "layers" list for this model's depth), the
 * context's progress and stop, the record, the checkpoint `cisweep apply` writes, and the
 * `stages` rows of a sweep.
 *
 * Record: {"matched": [names], "n_matched", "numel", "factor", "rms_before", "rms_after"};
 * phase "scale". */
#include "worker/interventions/methods.h"
#include "worker/engine/backend.h"

#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the decoder layer of a parameter name ("model.layers.7.mlp..." -> 7), -1 for the others */
static int name_layer(const char *name) {
    const char *pre = "model.layers.";
    if (strncmp(name, pre, strlen(pre)) != 0) return -1;
    char *end;
    long l = strtol(name + strlen(pre), &end, 10);
    return end != name + strlen(pre) && *end == '.' ? (int)l : -1;
}

int test_scale_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    json_t *lv = json_object_get(params, "last_layers");
    long long k = json_is_integer(lv) ? json_integer_value(lv) : 0;
    int L = cfg->num_hidden_layers;
    if (k < 0 || k > L)
        return err_set(err, CIS_EINVAL, "params.last_layers: %lld is more than the model's %d layers", k, L);
    json_t *layers = json_array();
    for (int l = k == 0 ? 0 : L - (int)k; l < L; l++) json_array_append_new(layers, json_integer(l));
    json_object_set_new(params, "layers", layers);
    return 0;
}

static bool layer_selected(json_t *layers, int l) {
    if (l < 0 || !json_is_array(layers)) return true; /* non-layer parameters always qualify */
    for (size_t i = 0; i < json_array_size(layers); i++)
        if (json_integer_value(json_array_get(layers, i)) == l) return true;
    return false;
}

int test_scale_apply(interv_ctx *c, cis_err *err) {
    const char *glob = interv_param_str(c, "param");
    double factor = interv_param_float(c, "factor");
    json_t *layers = interv_param_get(c, "layers"); /* from the preset; absent = every layer */
    int n = 0;
    llama_param *p = llama_model_params(c->model, &n);
    backend *be = llama_model_backend(c->model);  /* the parameters live in its memory */
    json_t *matched = json_array();
    int64_t numel = 0;
    double before = 0, after = 0;
    interv_phase_begin(c->record, "scale");
    for (int i = 0; i < n; i++) {
        if (interv_should_stop(c)) { json_decref(matched); return interv_stopped(c, err); }
        if (fnmatch(glob, p[i].name, 0) != 0 || !layer_selected(layers, name_layer(p[i].name))) continue;
        int64_t cnt = 1;
        for (int d = 0; d < p[i].ndim; d++) cnt *= p[i].shape[d];
        before += BE(be, sumsq, p[i].data, cnt);
        BE(be, scale, p[i].data, (float)factor, cnt);
        after += BE(be, sumsq, p[i].data, cnt);
        numel += cnt;
        json_array_append_new(matched, json_string(p[i].name));
        interv_progress(c, (i + 1.0) / n);
    }
    interv_phase_end(c->record);
    if (json_array_size(matched) == 0) {
        json_decref(matched);
        return err_set(err, CIS_EINVAL, "params.param: \"%s\" matches no parameter of this model in the selected "
                       "layers (names look like \"%s\")", glob, n > 1 ? p[1].name : "?");
    }
    interv_record_set_int(c->record, "n_matched", (long long)json_array_size(matched));
    interv_record_set(c->record, "matched", matched);
    interv_record_set_int(c->record, "numel", (long long)numel);
    interv_record_set_num(c->record, "factor", factor);
    interv_record_set_num(c->record, "rms_before", sqrt(before / (double)numel));
    interv_record_set_num(c->record, "rms_after", sqrt(after / (double)numel));
    return 0;
}
