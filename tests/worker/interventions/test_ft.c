/* test_ft.c - the FT-M editor (worker/interventions/ft.c) on a tiny random model and a tiny zsRE
 * file, through the real stage plan: only the selected down_proj weights change; the first Adam
 * step equals the closed form -lr g / (|g| + eps) with g the gradient of the FT-M loss computed
 * independently here; more steps lower the loss on the targets; the norm constraint holds; the
 * layer preset scales 4-8 of 32 onto the model's depth; an edit set beyond the file and a missing
 * data directory are clear errors. */
#include "tests/testlib.h"
#include "tests/worker/interventions/edit_fixture.h"
#include "worker/interventions/edit_common.h"
#include "worker/engine/backend.h"

static char *g_tokdir;
static tokenizer *g_tok;

static void test_only_selected_params_change(void) {
    char *w = ef_world(120, 4);
    llama_model *m = ef_model(3, 4);
    ef_snap s = ef_take(m);
    json_t *recs = NULL;
    cis_err err = {0};
    int rc = ef_run(m, g_tok, "[{\"method\":\"ft\",\"params\":{\"layers\":[1,2],\"layers_depth\":0,\"lr\":0.001,"
                             "\"steps\":3}}]", w, NULL, 2, &recs, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    int n;
    llama_param *p = llama_model_params(m, &n);
    int changed = 0;
    for (int i = 0; i < n; i++) {
        bool want = !strcmp(p[i].name, "model.layers.1.mlp.down_proj.weight") ||
                    !strcmp(p[i].name, "model.layers.2.mlp.down_proj.weight");
        CHECK_MSG(ef_changed(m, &s, i) == want, "%s changed=%d", p[i].name, (int)ef_changed(m, &s, i));
        changed += want;
    }
    CHECK_EQ_INT(changed, 2);
    json_t *r = json_object_get(json_array_get(recs, 0), "record");
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "n_edits")), 50);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "edit_set")), 2);
    CHECK_EQ_INT(json_integer_value(json_object_get(r, "steps")), 3);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "trained")), 2);
    json_t *el = json_object_get(json_object_get(json_array_get(recs, 0), "params"), "edit_layers");
    CHECK_EQ_INT(json_array_size(el), 2);
    json_decref(recs);
    ef_snap_free(&s);
    llama_model_free(&m);
    fx_rm_rf(w);
    free(w);
}

/* the FT-M loss gradient of down_proj.1, computed here: every target is 3 tokens, so the mean of
 * per-sequence means is the pooled mean CE that llama_forward computes */
static float *ftm_grad(llama_model *m, const edit_requests *q, int pi) {
    cis_err err = {0};
    const char **pr = xcalloc((size_t)q->n, sizeof *pr), **tg = xcalloc((size_t)q->n, sizeof *tg);
    for (int i = 0; i < q->n; i++) { pr[i] = q->r[i].prompt; tg[i] = q->r[i].target; }
    edit_batch eb;
    CIS_ASSERT(edit_batch_build(g_tok, q->n, pr, tg, 128, &eb, &err) == 0);
    for (int i = 0; i < q->n; i++) CIS_ASSERT(eb.n_tgt[i] == eb.n_tgt[0]);
    llama_model_freeze_all(m);
    int n;
    llama_param *p = llama_model_params(m, &n);
    CIS_ASSERT(llama_model_set_trainable(m, p[pi].name, -1, -1, true, &err) == 1);
    llama_model_zero_grad(m);
    llama_batch b = {.B = eb.B, .T = eb.T, .ids = eb.ids, .lens = eb.lens, .targets = eb.targets};
    double loss;
    CIS_ASSERT(llama_forward(m, &b, NULL, 0, true, &loss, &err) == 0);
    CIS_ASSERT(llama_backward(m, 1.0f, NULL, &err) == 0);
    int64_t cnt = p[pi].shape[0] * p[pi].shape[1];
    float *g = xmalloc((size_t)cnt * sizeof *g);
    memcpy(g, llama_model_grad(m, pi), (size_t)cnt * sizeof *g);
    llama_model_freeze_all(m);
    edit_batch_clear(&eb);
    free(pr); free(tg);
    return g;
}

static void test_first_adam_step_closed_form(void) {
    char *w = ef_world(60, 4);
    llama_model *m = ef_model(5, 3);
    cis_err err = {0};
    edit_requests q;
    CHECK(edit_requests_load(w, 1, &q, &err) == 0);
    int pi = llama_model_find(m, "model.layers.1.mlp.down_proj.weight");
    float *g = ftm_grad(m, &q, pi);
    ef_snap s = ef_take(m);
    json_t *recs = NULL;
    const double lr = 1e-3;
    int rc = ef_run(m, g_tok, "[{\"method\":\"ft\",\"params\":{\"layers\":[1],\"layers_depth\":0,\"lr\":0.001,"
                             "\"steps\":1}}]", w, NULL, 1, &recs, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    int n;
    llama_param *p = llama_model_params(m, &n);
    double maxerr = 0;
    int nz = 0;
    for (int64_t k = 0; k < s.cnt[pi]; k++) {
        double want = -lr * g[k] / (fabs(g[k]) + 1e-8);
        double got = (double)p[pi].data[k] - s.data[pi][k];
        double e = fabs(got - want);
        if (e > maxerr) maxerr = e;
        nz += g[k] != 0;
    }
    CHECK(nz > 0);
    CHECK_MSG(maxerr < 1e-6, "max |dW - closed form| = %g", maxerr);
    json_decref(recs);
    free(g);
    ef_snap_free(&s);
    edit_requests_clear(&q);
    llama_model_free(&m);
    fx_rm_rf(w);
    free(w);
}

static void test_loss_falls_and_norm_constraint(void) {
    char *w = ef_world(60, 4);
    llama_model *m = ef_model(9, 3);
    json_t *recs = NULL;
    cis_err err = {0};
    int rc = ef_run(m, g_tok, "[{\"method\":\"ft\",\"params\":{\"layers\":[0,1,2],\"layers_depth\":0,\"lr\":0.01,"
                             "\"steps\":20}}]", w, NULL, 1, &recs, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    json_t *r = json_object_get(json_array_get(recs, 0), "record");
    double l0 = json_number_value(json_object_get(r, "loss_first")), l1 = json_number_value(json_object_get(r, "loss_last"));
    CHECK_MSG(l1 < 0.9 * l0, "loss %g -> %g", l0, l1);
    json_decref(recs);
    llama_model_free(&m);

    /* with a norm constraint eps every weight stays within eps of its start */
    m = ef_model(9, 3);
    ef_snap s = ef_take(m);
    recs = NULL;
    rc = ef_run(m, g_tok, "[{\"method\":\"ft\",\"params\":{\"layers\":[0,1,2],\"layers_depth\":0,\"lr\":0.01,"
                          "\"steps\":5,\"norm_constraint\":0.002}}]", w, NULL, 1, &recs, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    int n;
    llama_param *p = llama_model_params(m, &n);
    double maxd = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < s.cnt[i]; k++) {
            double d = fabs((double)p[i].data[k] - s.data[i][k]);
            if (d > maxd) maxd = d;
        }
    CHECK_MSG(maxd <= 0.002 + 1e-6 && maxd > 0.0019, "max |W - W0| = %g", maxd);
    json_decref(recs);
    ef_snap_free(&s);
    llama_model_free(&m);
    fx_rm_rf(w);
    free(w);
}

static void test_layer_preset(void) {
    int *r = NULL, n = 0;
    cis_err err = {0};
    int l48[] = {4, 5, 6, 7, 8};
    CHECK(edit_scale_layers(l48, 5, 32, 10, &r, &n, &err) == 0);   /* 1.25 -> 1, 2.5 -> 3 */
    CHECK_EQ_INT(n, 3);
    CHECK(r && r[0] == 1 && r[2] == 3);
    free(r);
    CHECK(edit_scale_layers(l48, 5, 32, 32, &r, &n, &err) == 0);   /* the paper's model: as written */
    CHECK_EQ_INT(n, 5);
    CHECK(r && r[0] == 4 && r[4] == 8);
    free(r);
    CHECK(edit_scale_layers(l48, 5, 32, 48, &r, &n, &err) == 0);   /* 6..12 */
    CHECK(r && n == 7 && r[0] == 6 && r[6] == 12);
    free(r);
    CHECK(edit_scale_layers(l48, 5, 0, 4, &r, &n, &err) == -1);    /* as written: 8 is past 0..3 */
    CHECK_MSG(strstr(err.msg, "outside 0..3") != NULL, "%s", err.msg);
}

static void test_bad_edit_set_and_missing_data(void) {
    char *w = ef_world(60, 4);
    llama_model *m = ef_model(3, 3);
    json_t *recs = NULL;
    cis_err err = {0};
    int rc = ef_run(m, g_tok, "[{\"method\":\"ft\",\"params\":{\"layers\":[1],\"layers_depth\":0}}]", w, NULL, 3,
                    &recs, &err);
    CHECK_EQ_INT(rc, -1);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    CHECK_MSG(strstr(err.msg, "edit set 3") && strstr(err.msg, "60"), "%s", err.msg);
    json_decref(recs);
    recs = NULL;
    err = (cis_err){0};
    rc = ef_run(m, g_tok, "[{\"method\":\"ft\",\"params\":{\"layers\":[1],\"layers_depth\":0}}]", NULL, NULL, 1,
                &recs, &err);
    CHECK_EQ_INT(rc, -1);
    CHECK_MSG(strstr(err.msg, "no data directory") != NULL, "%s", err.msg);
    json_decref(recs);
    llama_model_free(&m);
    fx_rm_rf(w);
    free(w);
}

int main(void) {
    g_tok = ef_tokenizer(&g_tokdir);
    RUN(test_only_selected_params_change);
    RUN(test_first_adam_step_closed_form);
    RUN(test_loss_falls_and_norm_constraint);
    RUN(test_layer_preset);
    RUN(test_bad_edit_set_and_missing_data);
    tokenizer_free(g_tok);
    fx_rm_rf(g_tokdir);
    free(g_tokdir);
    return test_summary();
}
