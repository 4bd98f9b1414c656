/* test_lora.c - the LoRA editor (worker/interventions/lora.c) on a tiny random model, through the
 * real stage plan: only the target projections change, each by a merged update of rank <= r (the
 * merged model is W0 + s B diag(E) A); with B = 0 (plain LoRA) the first loss is the base model's loss
 * (to float summation order) on the batch (the adapters start as the identity); training lowers the loss; the
 * AdaLoRA orthogonality penalty is 0 on orthonormal factors and its gradient matches central
 * differences; the factor gradients (the weight gradient projected onto A, B, E) match central
 * differences of the model's loss; a bad target name is a clear error. */
#include "tests/testlib.h"
#include "tests/worker/interventions/edit_fixture.h"
#include "worker/interventions/edit_common.h"
#include "worker/interventions/lora.h"
#include "worker/interventions/methods.h"
#include "common/rng.h"

#include <lapacke.h>

static char *g_tokdir;
static tokenizer *g_tok;

/* numerical rank of the [r, c] matrix X (singular values above tol · the largest) */
static int num_rank(const double *X, int r, int c, double tol) {
    double *a = xmalloc((size_t)r * c * sizeof *a), *s = xmalloc((size_t)(r < c ? r : c) * sizeof *s);
    double *sup = xmalloc((size_t)(r < c ? r : c) * sizeof *sup);
    memcpy(a, X, (size_t)r * c * sizeof *a);
    CIS_ASSERT(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', r, c, a, c, s, NULL, 1, NULL, 1, sup) == 0);
    int k = 0;
    for (int i = 0; i < (r < c ? r : c); i++) k += s[i] > tol * s[0];
    free(a); free(s); free(sup);
    return k;
}

static void run_type(const char *type) {
    char *w = ef_world(60, 4);
    llama_model *m = ef_model(31, 3);
    ef_snap s = ef_take(m);
    json_t *recs = NULL;
    cis_err err = {0};
    char comp[256];
    snprintf(comp, sizeof comp, "[{\"method\":\"lora\",\"params\":{\"type\":\"%s\",\"rank\":3,\"steps\":15,\"lr\":0.02}}]", type);
    int rc = ef_run(m, g_tok, comp, w, NULL, 1, &recs, &err);
    CHECK_MSG(rc == 0, "%s", err.msg);
    int n;
    llama_param *p = llama_model_params(m, &n);
    int changed = 0;
    for (int i = 0; i < n; i++) {
        bool want = strstr(p[i].name, "q_proj") || strstr(p[i].name, "v_proj");
        CHECK_MSG(ef_changed(m, &s, i) == want, "%s: %s changed=%d", type, p[i].name, (int)ef_changed(m, &s, i));
        if (!want) continue;
        changed++;
        int r = (int)p[i].shape[0], c = (int)p[i].shape[1];
        double *d = xmalloc((size_t)r * c * sizeof *d);
        for (int k = 0; k < r * c; k++) d[k] = (double)p[i].data[k] - s.data[i][k];
        int rk = num_rank(d, r, c, 1e-4);
        CHECK_MSG(rk <= 3 && rk >= 1, "%s: %s: rank of the merged update %d (r = 3)", type, p[i].name, rk);
        free(d);
    }
    CHECK_EQ_INT(changed, 6);
    json_t *r = json_object_get(json_array_get(recs, 0), "record");
    double l0 = json_number_value(json_object_get(r, "loss_first")), l1 = json_number_value(json_object_get(r, "loss_last"));
    CHECK_MSG(l1 < 0.95 * l0, "%s: loss %g -> %g", type, l0, l1);
    CHECK_EQ_INT(json_array_size(json_object_get(r, "adapted")), 6);
    double want_s = !strcmp(type, "adalora") ? 32.0 / (3 + 1e-5) : 32.0 / 3;
    CHECK_NEAR(json_number_value(json_object_get(r, "scale")), want_s, 1e-9);
    if (!strcmp(type, "lora")) {
        /* B = 0 at the start: the first loss is the base model's CE on the batch, exactly */
        llama_model *b = ef_model(31, 3);
        edit_requests q;
        CHECK(edit_requests_load(w, 1, &q, &err) == 0);
        const char **pr = xcalloc((size_t)q.n, sizeof *pr), **tg = xcalloc((size_t)q.n, sizeof *tg);
        for (int i = 0; i < q.n; i++) { pr[i] = q.r[i].prompt; tg[i] = q.r[i].target; }
        edit_batch eb;
        CHECK(edit_batch_build(g_tok, q.n, pr, tg, 128, &eb, &err) == 0);
        llama_batch bt = {.B = eb.B, .T = eb.T, .ids = eb.ids, .lens = eb.lens, .targets = eb.targets};
        double base = 0;
        CHECK(llama_forward(b, &bt, NULL, 0, false, &base, &err) == 0);
        CHECK_MSG(fabs(l0 - base) < 1e-6 * base, "first loss %.17g vs base %.17g", l0, base);
        edit_batch_clear(&eb);
        free(pr); free(tg);
        edit_requests_clear(&q);
        llama_model_free(&b);
    } else {
        CHECK(json_number_value(json_object_get(r, "orth_penalty_last")) > 0);
    }
    json_decref(recs);
    ef_snap_free(&s);
    llama_model_free(&m);
    fx_rm_rf(w);
    free(w);
}

static void test_adalora_merged_rank_and_loss(void) { run_type("adalora"); }
static void test_plain_lora_starts_at_base(void) { run_type("lora"); }

static void test_orth_penalty(void) {
    /* orthonormal rows (A, r x in) and orthonormal columns (B, out x r): penalty 0 */
    float A[2 * 3] = {1, 0, 0, 0, 0.6f, 0.8f};
    float B[3 * 2] = {0, 1, 0.6f, 0, 0.8f, 0};
    CHECK_NEAR(lora_orth_penalty(A, 2, 3, true, NULL, 0), 0, 1e-7);
    CHECK_NEAR(lora_orth_penalty(B, 3, 2, false, NULL, 0), 0, 1e-7);
    /* a random matrix: the gradient against central differences (double loss, float steps) */
    uint64_t st = 7;
    float X[4 * 5], g[4 * 5] = {0};
    for (int i = 0; i < 20; i++) X[i] = (float)(rng_splitmix64_open01(&st) - 0.5);
    for (int gr = 0; gr < 2; gr++) {
        memset(g, 0, sizeof g);
        lora_orth_penalty(X, 4, 5, gr == 0, g, 1.0);
        double worst = 0;
        for (int i = 0; i < 20; i++) {
            float x0 = X[i];
            const float h = 1e-3f;
            X[i] = x0 + h;
            double fp = lora_orth_penalty(X, 4, 5, gr == 0, NULL, 0);
            X[i] = x0 - h;
            double fm = lora_orth_penalty(X, 4, 5, gr == 0, NULL, 0);
            X[i] = x0;
            worst = fmax(worst, fabs((fp - fm) / (2 * h) - g[i]));
        }
        CHECK_MSG(worst < 2e-3, "gram %s: max |fd - grad| = %g", gr ? "cols" : "rows", worst);
    }
}

/* the batch loss of the model with q_proj.0 = W0 + s B diag(E) A */
static double loss_with(llama_model *m, int pi, const float *W0, const float *A, const float *B, const float *E,
                        int out, int in, int r, double s, const llama_batch *bt) {
    float *W = xmalloc((size_t)out * in * sizeof *W);
    for (int o = 0; o < out; o++)
        for (int i = 0; i < in; i++) {
            double a = W0[o * in + i];
            for (int k = 0; k < r; k++) a += s * B[o * r + k] * E[k] * A[k * in + i];
            W[o * in + i] = (float)a;
        }
    cis_err err = {0};
    CIS_ASSERT(llama_model_param_set(m, pi, W, &err) == 0);
    double loss = 0;
    CIS_ASSERT(llama_forward(m, bt, NULL, 0, false, &loss, &err) == 0);
    free(W);
    return loss;
}

static void test_factor_gradients_match_finite_differences(void) {
    /* the projection of the merged weight's gradient onto A, B and E (what lora_apply trains with)
     * against central differences of the model's loss in the factors, on q_proj of layer 0 */
    char *w = ef_world(60, 4);
    llama_model *m = ef_model(41, 2);
    cis_err err = {0};
    edit_requests q;
    CHECK(edit_requests_load(w, 2, &q, &err) == 0);   /* 10 edits */
    const char **pr = xcalloc((size_t)q.n, sizeof *pr), **tg = xcalloc((size_t)q.n, sizeof *tg);
    for (int i = 0; i < q.n; i++) { pr[i] = q.r[i].prompt; tg[i] = q.r[i].target; }
    edit_batch eb;
    CHECK(edit_batch_build(g_tok, q.n, pr, tg, 128, &eb, &err) == 0);
    llama_batch bt = {.B = eb.B, .T = eb.T, .ids = eb.ids, .lens = eb.lens, .targets = eb.targets};
    const char *name = "model.layers.0.self_attn.q_proj.weight";
    int pi = llama_model_find(m, name), n;
    llama_param *p = llama_model_params(m, &n);
    int out = (int)p[pi].shape[0], in = (int)p[pi].shape[1], r = 3;
    double s = 32.0 / (r + 1e-5);
    float *W0 = xmalloc((size_t)out * in * sizeof *W0), A[3 * 16], B[16 * 3], E[3], dA[3 * 16], dB[16 * 3], dE[3];
    float *dW = xmalloc((size_t)out * in * sizeof *dW), scratch[3 * 16];
    CIS_ASSERT(in == 16 && out == 16);
    memcpy(W0, p[pi].data, (size_t)out * in * sizeof *W0);
    uint64_t st = 3;
    for (int i = 0; i < r * in; i++) A[i] = (float)(rng_splitmix64_open01(&st) - 0.5) * 0.2f;
    for (int i = 0; i < out * r; i++) B[i] = (float)(rng_splitmix64_open01(&st) - 0.5) * 0.2f;
    for (int i = 0; i < r; i++) E[i] = (float)(rng_splitmix64_open01(&st) - 0.5) * 0.2f;
    loss_with(m, pi, W0, A, B, E, out, in, r, s, &bt);
    llama_model_freeze_all(m);
    CHECK(llama_model_set_trainable(m, name, -1, -1, true, &err) == 1);
    llama_model_zero_grad(m);
    double l0;
    CHECK(llama_forward(m, &bt, NULL, 0, true, &l0, &err) == 0);
    CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
    memcpy(dW, llama_model_grad(m, pi), (size_t)out * in * sizeof *dW);
    llama_model_freeze_all(m);
    lora_project(dW, A, B, E, out, in, r, s, true, dA, dB, dE, scratch);
    float *fac[3] = {A, B, E}, *grad[3] = {dA, dB, dE};
    int len[3] = {r * in, out * r, r};
    const char *fname[3] = {"A", "B", "E"};
    for (int f = 0; f < 3; f++) {
        double worst = 0, gmax = 0;
        for (int i = 0; i < len[f]; i += (f == 2 ? 1 : 5)) {
            float x0 = fac[f][i];
            const float h = 1e-2f;
            fac[f][i] = x0 + h;
            double lp = loss_with(m, pi, W0, A, B, E, out, in, r, s, &bt);
            fac[f][i] = x0 - h;
            double lm = loss_with(m, pi, W0, A, B, E, out, in, r, s, &bt);
            fac[f][i] = x0;
            double fd = (lp - lm) / (2 * h);
            worst = fmax(worst, fabs(fd - grad[f][i]));
            gmax = fmax(gmax, fabs(grad[f][i]));
        }
        CHECK_MSG(gmax > 0 && worst < 2e-2 * gmax + 1e-4, "d%s: max |fd - grad| = %g (max |grad| %g)", fname[f], worst, gmax);
    }
    edit_batch_clear(&eb);
    free(pr); free(tg); free(W0); free(dW);
    edit_requests_clear(&q);
    llama_model_free(&m);
    fx_rm_rf(w);
    free(w);
}

static void test_bad_target(void) {
    char *w = ef_world(60, 4);
    llama_model *m = ef_model(3, 2);
    json_t *recs = NULL;
    cis_err err = {0};
    int rc = ef_run(m, g_tok, "[{\"method\":\"lora\",\"params\":{\"targets\":\"q_proj,qq_proj\"}}]", w, NULL, 1, &recs,
                    &err);
    CHECK_EQ_INT(rc, -1);
    CHECK_MSG(strstr(err.msg, "params.targets") && strstr(err.msg, "qq_proj"), "%s", err.msg);
    json_decref(recs);
    llama_model_free(&m);
    fx_rm_rf(w);
    free(w);
}

/* the tiny preset (results epoch 8): on a model with hidden size < 1024 the paper's 70 steps at 5e-3
 * become 60 at 5.83e-3, each noted; a real model keeps both and no note; a given step count other
 * than the paper's keeps the given lr too */
static void test_preset(void) {
    llama_config big = fx_config(4096, 32, 14336, 8192), tiny = fx_config(64, 10, 192, 128);
    cis_err err = {0};
    for (int k = 0; k < 3; k++) {
        json_t *p = json_pack("{s:s, s:i, s:f}", "targets", "q_proj,v_proj", "steps", k == 2 ? 40 : 70, "lr", 5e-3);
        CHECK_MSG(lora_preset(k == 0 ? &big : &tiny, p, &err) == 0, "%s", err.msg);
        long long steps = json_integer_value(json_object_get(p, "steps"));
        double lr = json_number_value(json_object_get(p, "lr"));
        json_t *note = json_object_get(p, "tiny_preset");
        if (k == 0) {
            CHECK(steps == 70 && lr == 5e-3 && note == NULL);
        } else if (k == 1) {
            CHECK_MSG(steps == 60 && lr == 5.83e-3, "steps %lld lr %g", steps, lr);
            CHECK_EQ_INT(json_array_size(note), 2);
            CHECK_EQ_STR(json_string_value(json_array_get(note, 0)), "steps: 70 -> 60 (hidden_size 64 < 1024)");
        } else {
            CHECK_MSG(steps == 40 && lr == 5e-3 && note == NULL, "steps %lld lr %g", steps, lr);   /* given 40: as given */
        }
        json_decref(p);
    }
}

int main(void) {
    g_tok = ef_tokenizer(&g_tokdir);
    RUN(test_preset);
    RUN(test_adalora_merged_rank_and_loss);
    RUN(test_plain_lora_starts_at_base);
    RUN(test_orth_penalty);
    RUN(test_factor_gradients_match_finite_differences);
    RUN(test_bad_target);
    tokenizer_free(g_tok);
    fx_rm_rf(g_tokdir);
    free(g_tokdir);
    return test_summary();
}
