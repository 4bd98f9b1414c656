/* prereq.c - prerequisite jobs: work that other jobs of a sweep depend on (the coordinator's
 * `dependencies` table; coordinator/job_store_prereq.c adds them at launch), run by the job thread
 * instead of a composition and an evaluation. One kind exists:
 *
 *   memit_stats  MEMIT's second-moment statistics E[k kᵀ] of the BASE model (as loaded, never
 *                modified) for the layers a MEMIT stage edits, computed once into the worker's
 *                shared artifact cache (--artifacts, else --cache; memit_stats.h) so that every
 *                MEMIT job of the sweep reads them instead of computing them.
 *
 * Wire form (JOB.composition, built by the coordinator, never by a grid): exactly one stage
 *   [{"method": "memit_stats", "params": {"layers": [int...], "layers_depth": int,
 *                                          "mom2_n_samples": int}}]
 * (the same three values as the MEMIT stages that depend on it; the layers are resolved for the
 * model's depth by the same preset as MEMIT's, edit_preset_layers). Any other field, type or
 * range fails the job, not retryable, naming the field.
 *
 * Outcome: rows stats_seconds (computing; 0 when every layer was in the cache already),
 * stats_layers_computed, stats_layers_cached, stats_tokens, stats_docs, time_model_load_s; one
 * stage record (method memit_stats, category "prereq", the effective params with edit_layers, the
 * keys, what was cached/computed); and RESULT.artifacts: one entry per layer {key, kind
 * "memit_mom2", path (relative to the artifact root), sha256, bytes, layer}, which the coordinator
 * stores in the `artifacts` table. */
#include "worker/prereq.h"
#include "worker/model_cache.h"
#include "worker/interventions/memit_stats.h"
#include "worker/interventions/edit_common.h"
#include "worker/interventions/record.h"
#include "common/artifact_cache.h"
#include "common/protocol.h"
#include "common/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREREQ_STATS "memit_stats"

bool prereq_is(json_t *comp) {
    if (!json_is_array(comp) || json_array_size(comp) != 1) return false;
    const char *m = json_string_value(json_object_get(json_array_get(comp, 0), "method"));
    return m && !strcmp(m, PREREQ_STATS);
}

static void fail(job_ctx *j, bool retryable, const char *msg) {
    j->status = JOB_FAILED;
    j->retryable = retryable;
    snprintf(j->error, sizeof j->error, "%s", msg);
}

/* the params of a memit_stats stage, checked; a malloc'd message naming the field, or NULL */
static char *check_params(json_t *st, json_t *params) {
    const char *k;
    json_t *v;
    json_object_foreach(st, k, v)
        if (strcmp(k, "method") && strcmp(k, "params"))
            return xasprintf("JOB.composition[0]: unknown field \"%s\" (a memit_stats job has method and params)", k);
    if (!json_is_object(params))
        return xasprintf("JOB.composition[0].params: expected an object {layers, layers_depth, mom2_n_samples}");
    json_object_foreach(params, k, v) {
        if (!strcmp(k, "layers")) {
            size_t n = json_array_size(v), i;
            json_t *x;
            if (!json_is_array(v) || n < 1 || n > MEMIT_STATS_MAX_LAYERS)
                return xasprintf("JOB.composition[0].params.layers: expected a list of 1..%d layer indices",
                                 MEMIT_STATS_MAX_LAYERS);
            json_array_foreach(v, i, x)
                if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > 1023)
                    return xasprintf("JOB.composition[0].params.layers[%zu]: expected an integer 0..1023", i);
        } else if (!strcmp(k, "layers_depth")) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 1023)
                return xasprintf("JOB.composition[0].params.layers_depth: expected an integer 0..1023");
        } else if (!strcmp(k, "mom2_n_samples")) {
            if (!json_is_integer(v) || json_integer_value(v) < 1)
                return xasprintf("JOB.composition[0].params.mom2_n_samples: expected an integer >= 1");
        } else {
            return xasprintf("JOB.composition[0].params: unknown field \"%s\" (expected layers, layers_depth, "
                             "mom2_n_samples)", k);
        }
    }
    if (!json_object_get(params, "layers") || !json_object_get(params, "layers_depth") ||
        !json_object_get(params, "mom2_n_samples"))
        return xasprintf("JOB.composition[0].params: layers, layers_depth and mom2_n_samples are required");
    return NULL;
}

static bool stop_cb(void *arg) { return job_should_stop(arg); }
static void progress_cb(void *arg, double f) { job_set_progress(arg, f); }

/* RESULT.artifacts: the entry of each layer's key, hashed as it is in the cache */
static int layer_artifacts(const char *root, const memit_stats_info *si, json_t *out, cis_err *err) {
    acache *ac = NULL;
    if (acache_open(root, &ac, err)) return -1;
    int rc = 0;
    for (int i = 0; i < si->n_layers && !rc; i++) {
        char *path = NULL;
        int got = acache_get(ac, si->layer_keys[i], &path, err);
        if (got <= 0) {
            if (got == 0)
                err_set(err, CIS_EIO, "artifact cache %s: the statistics of layer %d (key %s) are not there after "
                        "they were computed", root, si->layers[i], si->layer_keys[i]);
            rc = -1;
            break;
        }
        size_t len = 0;
        char *bytes = read_file(path, &len, err);
        if (!bytes) { free(path); rc = -1; break; }
        char sha[65];
        sha256_hex(bytes, len, sha);
        free(bytes);
        const char *rel = path + strlen(root);
        while (*rel == '/') rel++;
        json_array_append_new(out, json_pack("{s:s, s:s, s:s, s:s, s:I, s:i}", "key", si->layer_keys[i], "kind",
                                             "memit_mom2", "path", rel, "sha256", sha, "bytes", (json_int_t)len,
                                             "layer", si->layers[i]));
        free(path);
    }
    acache_close(&ac);
    return rc;
}

void prereq_run(job_ctx *j, json_t *comp) {
    int64_t t0 = mono_ms();
    json_t *st = json_array_get(comp, 0), *raw = json_object_get(st, "params");
    char *bad = check_params(st, raw);
    if (bad) { fail(j, false, bad); free(bad); return; }
    if (!j->data_dir) {
        fail(j, false, "memit_stats: this worker has no --data DIR (the statistics' corpus is DATA_DIR/corpus/"
             "pretrain.jsonl)");
        return;
    }
    if (!j->cache_dir) {
        fail(j, false, "memit_stats: this worker has no artifact cache (start it with --artifacts DIR or --cache DIR)");
        return;
    }
    if (!j->cache) { fail(j, false, "memit_stats: this worker has no model cache (a test harness without --device)"); return; }
    const char *model_dir = json_string_value(json_object_get(j->spec, "model_path"));
    if (!model_dir || !*model_dir) model_dir = json_string_value(json_object_get(j->spec, "model"));
    cis_err err = {0};
    model_slot *slot = model_cache_acquire(j->cache, model_dir ? model_dir : "", &err);
    if (!slot) { fail(j, true, err.msg); return; }
    json_t *params = json_deep_copy(raw);
    int N = 0;
    int *layers = NULL;
    float **C = NULL;
    interv_record rec;
    interv_record_init(&rec);
    if (edit_preset_layers(llama_model_config(slot->base), params, &err)) {
        err_prefix(&err, "memit_stats: ");
        fail(j, false, err.msg);
        goto out;
    }
    json_t *el = json_object_get(params, "edit_layers");
    N = (int)json_array_size(el);
    layers = xcalloc((size_t)(N ? N : 1), sizeof *layers);
    for (int i = 0; i < N; i++) layers[i] = (int)json_integer_value(json_array_get(el, i));
    C = xcalloc((size_t)(N ? N : 1), sizeof *C);
    /* the base model's statistics: base and model are both the resident base (never modified) */
    interv_ctx c = {.model = slot->base, .base = slot->base, .tok = slot->tok, .data_dir = j->data_dir,
                    .cache_dir = j->cache_dir, .method = PREREQ_STATS, .stage = 1, .n_stages = 1, .params = params,
                    .threads = j->threads, .record = &rec, .progress_fn = progress_cb, .stop_fn = stop_cb, .cb_arg = j};
    memit_stats_info si;
    interv_phase_begin(&rec, "stats");
    int rc = memit_stats_get(&c, layers, N, (int)json_integer_value(json_object_get(params, "mom2_n_samples")), C,
                             &si, &err);
    interv_phase_end(&rec);
    if (rc) {
        if (err.code == CIS_ECANCEL || job_should_stop(j)) j->status = JOB_STOPPED;
        else fail(j, err.code == CIS_ENOMEM || err.code == CIS_EIO, err.msg);
        goto out;
    }
    json_t *arts = json_array();
    interv_phase_begin(&rec, "register");
    if (layer_artifacts(j->cache_dir, &si, arts, &err)) {
        json_decref(arts);
        fail(j, true, err.msg);
        goto out;
    }
    interv_phase_end(&rec);
    json_t *keys = json_array();
    for (int i = 0; i < si.n_layers; i++) json_array_append_new(keys, json_string(si.layer_keys[i]));
    interv_record_set(&rec, "keys", keys);
    interv_record_set(&rec, "edit_layers", json_incref(el));
    interv_record_set_int(&rec, "cached_layers", si.n_cached);
    interv_record_set_int(&rec, "computed_layers", si.n_computed);
    interv_record_set_int(&rec, "n_tokens", si.n_tokens);
    interv_record_set_int(&rec, "n_docs", si.n_docs);
    interv_record_set_num(&rec, "seconds", si.seconds);
    interv_record_set_str(&rec, "artifact_root", j->cache_dir);
    interv_stage_info sinfo = {1, 1, PREREQ_STATS, "prereq", false, params, 0, mono_ms() - t0};
    j->stages = json_array();
    json_array_append_new(j->stages, interv_stage_json(&sinfo, &rec));
    j->artifacts = arts;
    j->rows = json_object();
    json_object_set_new(j->rows, "stats_seconds", proto_metric_value(si.seconds));
    json_object_set_new(j->rows, "stats_layers_computed", proto_metric_value(si.n_computed));
    json_object_set_new(j->rows, "stats_layers_cached", proto_metric_value(si.n_cached));
    json_object_set_new(j->rows, "stats_tokens", proto_metric_value((double)si.n_tokens));
    json_object_set_new(j->rows, "stats_docs", proto_metric_value(si.n_docs));
    json_object_set_new(j->rows, "time_model_load_s", proto_metric_value(slot->load_s));
    j->status = JOB_OK;
    job_set_progress(j, 1.0);
out:
    for (int i = 0; i < N && C; i++) free(C[i]);
    free(C);
    free(layers);
    interv_record_clear(&rec);
    json_decref(params);
}
