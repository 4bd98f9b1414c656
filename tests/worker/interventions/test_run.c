/* test_run.c - running a stage plan (worker/interventions/run.c) with the test stage test_scale on a
 * tiny random model: the parameters really change (and only those selected), the effective params
 * hold the defaults and the preset's resolved "layers", the stage records carry params, seed,
 * record, phase times and wall time, progress covers the plan, a stop request interrupts with
 * CIS_ECANCEL, and errors name the stage. Also the record helpers (record.c). */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "worker/interventions/intervention.h"
#include "common/log.h"

#include <stdlib.h>

static json_t *J(const char *text) {
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    CIS_ASSERT(j);
    return j;
}

/* copy of every parameter, to compare after a plan ran */
typedef struct snap { int n; float **data; int64_t *cnt; } snap;
static snap take(llama_model *m) {
    snap s = {0};
    llama_param *p = llama_model_params(m, &s.n);
    s.data = xcalloc((size_t)s.n, sizeof *s.data);
    s.cnt = xcalloc((size_t)s.n, sizeof *s.cnt);
    for (int i = 0; i < s.n; i++) {
        s.cnt[i] = p[i].ndim == 2 ? p[i].shape[0] * p[i].shape[1] : p[i].shape[0];
        s.data[i] = xmalloc((size_t)s.cnt[i] * sizeof(float));
        memcpy(s.data[i], p[i].data, (size_t)s.cnt[i] * sizeof(float));
    }
    return s;
}
static void snap_free(snap *s) {
    for (int i = 0; i < s->n; i++) free(s->data[i]);
    free(s->data);
    free(s->cnt);
}
/* the factor parameter i was scaled by relative to the snapshot (NAN when not a uniform scale) */
static double scale_of(llama_model *m, const snap *s, int i) {
    int n;
    llama_param *p = llama_model_params(m, &n);
    double f = NAN;
    for (int64_t k = 0; k < s->cnt[i]; k++) {
        if (s->data[i][k] == 0) continue;
        double r = (double)p[i].data[k] / s->data[i][k];
        if (isnan(f)) f = r;
        else if (fabs(r - f) > 1e-6 * fabs(f) + 1e-12) return NAN;
    }
    return f;
}

typedef struct cbs { int stop_after; int stop_calls; int n_progress; double last, min_step; } cbs;
static void on_progress(void *arg, double f) {
    cbs *c = arg;
    if (c->n_progress && f < c->last) c->min_step = -1; /* went backwards */
    c->last = f;
    c->n_progress++;
}
static bool on_stop(void *arg) {
    cbs *c = arg;
    return c->stop_after >= 0 && ++c->stop_calls > c->stop_after;
}

static int run(llama_model *m, const char *comp, int edit_set, cbs *cb, json_t **records, cis_err *err) {
    json_t *c = J(comp);
    interv_plan p;
    int rc = interv_plan_build(c, "comp", INTERV_ALLOW_TEST, &p, err);
    json_decref(c);
    if (rc) return rc;
    interv_env env = {.model = m, .edit_set = edit_set, .progress_fn = on_progress, .stop_fn = on_stop, .cb_arg = cb};
    rc = interv_run_plan(&env, &p, records, err);
    interv_plan_clear(&p);
    return rc;
}

static void test_scale_changes_the_model(void) {
    llama_model *m = fx_model_random(7, 64);
    snap s = take(m);
    cbs cb = {.stop_after = -1};
    json_t *recs = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(run(m, "[{\"method\":\"test_scale\",\"params\":{\"factor\":0.25}}]", 3, &cb, &recs, &err), 0);
    int n;
    llama_param *p = llama_model_params(m, &n);
    int scaled = 0;
    for (int i = 0; i < n; i++) {
        bool want = strstr(p[i].name, "mlp.down_proj.weight") != NULL;
        double f = scale_of(m, &s, i);
        CHECK_MSG(want ? fabs(f - 0.25) < 1e-6 : f == 1.0, "%s scaled by %g", p[i].name, f);
        scaled += want;
    }
    CHECK_EQ_INT(scaled, 2);
    /* the stage record */
    CHECK_EQ_INT(json_array_size(recs), 1);
    json_t *r = json_array_get(recs, 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "stage")), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "of_stage")), 1);
    CHECK_EQ_STR(json_string_value(json_object_get(r, "method")), "test_scale");
    CHECK_EQ_STR(json_string_value(json_object_get(r, "category")), "test");
    CHECK(json_is_false(json_object_get(r, "recompress")));
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "seed")), 3);
    CHECK(json_integer_value(json_object_get(r, "wall_ms")) >= 0);
    json_t *ep = json_object_get(r, "params");
    CHECK_NEAR(json_number_value(json_object_get(ep, "factor")), 0.25, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(ep, "param")), "model.layers.*.mlp.down_proj.weight"); /* default */
    json_t *want_layers = J("[0,1]");
    CHECK(json_equal(json_object_get(ep, "layers"), want_layers)); /* resolved by the preset */
    json_decref(want_layers);
    json_t *rec = json_object_get(r, "record");
    CHECK_EQ_INT(json_integer_value(json_object_get(rec, "n_matched")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(rec, "numel")), 2 * 16 * 24);
    CHECK_NEAR(json_number_value(json_object_get(rec, "rms_after")) / json_number_value(json_object_get(rec, "rms_before")),
               0.25, 1e-6);
    CHECK(json_is_number(json_object_get(json_object_get(r, "phases_s"), "scale")));
    CHECK_NEAR(cb.last, 1.0, 1e-12);
    CHECK(cb.min_step == 0);
    json_decref(recs);
    snap_free(&s);
    llama_model_free(&m);
}

static void test_two_stages_and_the_preset(void) {
    llama_model *m = fx_model_random(8, 64);
    snap s = take(m);
    cbs cb = {.stop_after = -1};
    json_t *recs = NULL;
    cis_err err = {0};
    /* stage 1: only the last layer's down_proj x2; stage 2: the final norm x3 */
    CHECK_EQ_INT(run(m, "[{\"method\":\"test_scale\",\"params\":{\"factor\":2,\"last_layers\":1}},"
                        "{\"method\":\"test_scale\",\"params\":{\"factor\":3,\"param\":\"model.norm.weight\"}}]",
                     1, &cb, &recs, &err), 0);
    CHECK_MSG(err.msg[0] == 0, "%s", err.msg);
    CHECK_NEAR(scale_of(m, &s, llama_model_find(m, "model.layers.1.mlp.down_proj.weight")), 2.0, 1e-6);
    CHECK_NEAR(scale_of(m, &s, llama_model_find(m, "model.layers.0.mlp.down_proj.weight")), 1.0, 0);
    CHECK_NEAR(scale_of(m, &s, llama_model_find(m, "model.norm.weight")), 3.0, 1e-6);
    CHECK_EQ_INT(json_array_size(recs), 2);
    json_t *l1 = json_object_get(json_object_get(json_array_get(recs, 0), "params"), "layers");
    CHECK_EQ_INT(json_array_size(l1), 1);
    CHECK_EQ_INT(json_integer_value(json_array_get(l1, 0)), 1);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_array_get(recs, 1), "stage")), 2);
    CHECK_NEAR(cb.last, 1.0, 1e-12);
    json_decref(recs);
    /* a preset that cannot fit the model: named, before the method runs */
    CHECK_EQ_INT(run(m, "[{\"method\":\"test_scale\",\"params\":{\"last_layers\":5}}]", 1, &cb, &recs, &err), -1);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK_MSG(strstr(err.msg, "test_scale (stage 1): preset for this model: params.last_layers: 5 is more than the "
                              "model's 2 layers"), "%s", err.msg);
    CHECK_EQ_INT(json_array_size(recs), 0);
    json_decref(recs);
    /* a glob that matches nothing */
    CHECK_EQ_INT(run(m, "[{\"method\":\"test_scale\"},{\"method\":\"test_scale\",\"params\":{\"param\":\"nope.*\"}}]",
                     1, &cb, &recs, &err), -1);
    CHECK_MSG(strstr(err.msg, "test_scale (stage 2): params.param: \"nope.*\" matches no parameter"), "%s", err.msg);
    CHECK_EQ_INT(json_array_size(recs), 1); /* stage 1 completed */
    json_decref(recs);
    snap_free(&s);
    llama_model_free(&m);
}

static void test_stop(void) {
    llama_model *m = fx_model_random(9, 64);
    snap s = take(m);
    cis_err err = {0};
    json_t *recs = NULL;
    /* stopped before the stage starts: nothing changes */
    cbs cb = {.stop_after = 0};
    CHECK_EQ_INT(run(m, "[{\"method\":\"test_scale\",\"params\":{\"param\":\"*\"}}]", 1, &cb, &recs, &err), -1);
    CHECK_EQ_INT(err.code, CIS_ECANCEL);
    CHECK_MSG(strstr(err.msg, "test_scale (stage 1): stopped on request"), "%s", err.msg);
    json_decref(recs);
    int n;
    llama_model_params(m, &n);
    for (int i = 0; i < n; i++) CHECK(scale_of(m, &s, i) == 1.0);
    /* stopped inside the method, between parameters */
    cbs cb2 = {.stop_after = 4};
    CHECK_EQ_INT(run(m, "[{\"method\":\"test_scale\",\"params\":{\"param\":\"*\"}}]", 1, &cb2, NULL, &err), -1);
    CHECK_EQ_INT(err.code, CIS_ECANCEL);
    CHECK_EQ_INT(cb2.stop_calls, 5);
    snap_free(&s);
    llama_model_free(&m);
}

/* the paper's re-application runs as its own stage and says so in its record: the plan of
 * wanda -> test_scale laid out by interv_plan_layout, with a stand-in for Wanda (not built yet)
 * that records how often it ran and what it saw */
static int fake_runs;
static int fake_compress(interv_ctx *c, cis_err *err) {
    fake_runs++;
    interv_record_set_int(c->record, "run", fake_runs);
    interv_record_set_num(c->record, "sparsity_seen", interv_param_float(c, "sparsity"));
    interv_record_set_int(c->record, "recompress_seen", c->recompress);
    return 0;
}

static void test_reapplication_recorded(void) {
    llama_model *m = fx_model_random(10, 64);
    json_t *j = J("[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.35}},{\"method\":\"test_scale\"}]");
    cis_err err = {0};
    json_t *c = spec_normalize(j, "c", true, &err);
    interv_plan p;
    interv_plan_layout(c, 0, &p);
    CHECK_EQ_INT(p.n, 3);
    intervention fake = *intervention_lookup("wanda");
    fake.status = INTERV_BUILT;
    fake.apply = fake_compress;
    for (int i = 0; i < p.n; i++)
        if (!strcmp(p.steps[i].mi->name, "wanda")) p.steps[i].iv = &fake;
    interv_env env = {.model = m, .edit_set = 4};
    json_t *recs = NULL;
    fake_runs = 0;
    CHECK_MSG(interv_run_plan(&env, &p, &recs, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(fake_runs, 2);
    CHECK_EQ_INT(json_array_size(recs), 3);
    const char *want[3] = {"wanda", "test_scale", "wanda"};
    for (int i = 0; i < 3; i++) {
        json_t *r = json_array_get(recs, (size_t)i);
        CHECK_EQ_STR(json_string_value(json_object_get(r, "method")), want[i]);
        CHECK_EQ_INT(json_integer_value(json_object_get(r, "stage")), i + 1);
        CHECK_EQ_INT(json_integer_value(json_object_get(r, "of_stage")), i == 2 ? 1 : i + 1);
        CHECK(json_is_true(json_object_get(r, "recompress")) == (i == 2));
        CHECK_EQ_INT(json_integer_value(json_object_get(r, "seed")), 4); /* same seed: same calibration windows */
    }
    json_t *r3 = json_object_get(json_array_get(recs, 2), "record");
    CHECK_EQ_INT(json_integer_value(json_object_get(r3, "run")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(r3, "recompress_seen")), 1);
    CHECK_NEAR(json_number_value(json_object_get(r3, "sparsity_seen")), 0.35, 0);
    CHECK(json_equal(json_object_get(json_array_get(recs, 0), "params"), json_object_get(json_array_get(recs, 2), "params")));
    json_decref(recs);
    /* unchecked plan with a stage that is not built: a clean error, never a NULL call */
    intervention unbuilt = *intervention_lookup("memit");   /* as a method would be before its file lands */
    unbuilt.status = INTERV_NOT_BUILT;
    unbuilt.apply = NULL;
    for (int i = 0; i < p.n; i++)
        if (p.steps[i].iv == &fake) p.steps[i].iv = &unbuilt;
    CHECK_EQ_INT(interv_run_plan(&env, &p, NULL, &err), -1);
    CHECK_MSG(strstr(err.msg, "memit (stage 1): intervention \"memit\" is not built yet"), "%s", err.msg);
    interv_plan_clear(&p);
    json_decref(c);
    json_decref(j);
    llama_model_free(&m);
}

static void test_record_helpers(void) {
    interv_record r;
    interv_record_init(&r);
    interv_record_set_int(&r, "n", 3);
    interv_record_set_num(&r, "bad", NAN);
    interv_record_set_num(&r, "big", INFINITY);
    interv_record_set_str(&r, "s", "x");
    interv_record_add_num(&r, "sum", 1.5);
    interv_record_add_num(&r, "sum", 2.0);
    interv_phase_begin(&r, "a");
    sleep_ms(20);
    interv_phase_begin(&r, "b"); /* ends a */
    interv_phase_end(&r);
    interv_phase_end(&r);        /* no-op */
    interv_phase_begin(&r, "a"); /* accumulates */
    sleep_ms(20);
    interv_phase_end(&r);
    CHECK(interv_phase_seconds(&r, "a") >= 0.035 && interv_phase_seconds(&r, "a") < 5);
    CHECK(interv_phase_seconds(&r, "b") >= 0 && interv_phase_seconds(&r, "b") < 0.02);
    CHECK(interv_phase_seconds(&r, "never") == 0);
    CHECK_EQ_STR(json_string_value(json_object_get(r.info, "bad")), "nan");
    CHECK_EQ_STR(json_string_value(json_object_get(r.info, "big")), "inf");
    CHECK_NEAR(json_number_value(json_object_get(r.info, "sum")), 3.5, 0);
    json_t *params = J("{\"k\":1}");
    interv_stage_info si = {2, 1, "wanda", "compress", true, params, 4, 17};
    json_t *j = interv_stage_json(&si, &r);
    interv_record_clear(&r); /* the stage record holds copies */
    json_decref(params);
    char *t = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    CHECK_MSG(strstr(t, "\"method\":\"wanda\"") && strstr(t, "\"recompress\":true") && strstr(t, "\"of_stage\":1") &&
              strstr(t, "\"params\":{\"k\":1}") && strstr(t, "\"seed\":4") && strstr(t, "\"wall_ms\":17") &&
              strstr(t, "\"n\":3") && strstr(t, "\"phases_s\":{\"a\":"), "%s", t);
    free(t);
    json_decref(j);
    si.wall_ms = -5;
    j = interv_stage_json(&si, NULL);
    CHECK_EQ_INT(json_integer_value(json_object_get(j, "wall_ms")), 0);
    CHECK_EQ_INT(json_object_size(json_object_get(j, "record")), 0);
    json_decref(j);
}

int main(void) {
    log_set_level(LOG_WARN);
    RUN(test_scale_changes_the_model);
    RUN(test_two_stages_and_the_preset);
    RUN(test_stop);
    RUN(test_reapplication_recorded);
    RUN(test_record_helpers);
    return test_summary();
}
