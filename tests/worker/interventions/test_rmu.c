/* test_rmu.c - RMU (worker/interventions/rmu.c) against its oracles (algorithms.md §8) on a tiny
 * random 4-layer model with hand-made batches: the control vector (entries in [0, c], norm c,
 * seeded); at the first step the retain loss is exactly 0 and the forget loss equals the mean
 * squared distance to the control vector of activations computed here with a READ hook; the first
 * AdamW update moves each weight against the sign of a central finite difference of the loss; only
 * the selected module of the selected layers changes (o_proj and down_proj); the frozen model is
 * never written; the same seed gives the same weights bit for bit and another seed others; with
 * alpha 0 the forget loss falls; pads count in the MSE only with pad_in_loss; bad options are
 * refused with a message; the preset's layer rule, Mistral module and tiny-family values. */
#include "tests/testlib.h"
#include "tests/worker/interventions/unlearn_fixture.h"
#include "worker/interventions/methods.h"

#include <math.h>

static rmu_opts base_opts(void) {
    rmu_opts o = {.layer = 2, .layer_lo = 0, .layer_hi = 2, .module = "o_proj", .lr = 1e-3f, .steps = 1, .seed = 7,
                  .pad_in_loss = true};
    o.coeff[0] = 4.0f; o.coeff[1] = 6.0f;
    o.alpha[0] = 10.0f; o.alpha[1] = 10.0f;
    return o;
}

typedef struct fx { llama_model *m, *frozen; unl_batches forget[2], retain; } fx;
static fx make(uint64_t seed, bool pad) {
    fx f;
    f.m = ufx_model(seed, 4);
    f.frozen = ufx_clone(f.m);
    ufx_batches(100, 3, 2, 7, pad, false, &f.forget[0]);
    ufx_batches(200, 2, 2, 9, pad, false, &f.forget[1]);
    ufx_batches(300, 3, 2, 8, pad, false, &f.retain);
    return f;
}
static void drop(fx *f) {
    llama_model_free(&f->m);
    llama_model_free(&f->frozen);
    unl_batches_clear(&f->forget[0]);
    unl_batches_clear(&f->forget[1]);
    unl_batches_clear(&f->retain);
}

/* the mean over the counted rows and D of (h - c u)^2, h = layer's output on batch b (here, not rmu.c) */
static double forget_mse(llama_model *m, const unl_batch *b, int layer, const float *cu) {
    int D = llama_model_config(m)->hidden_size;
    float *h = xmalloc((size_t)b->B * b->T * D * sizeof(float));
    llama_hook hk = {.layer = layer, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_READ, .n_pos = -1, .read = h};
    llama_batch bt = {.B = b->B, .T = b->T, .ids = b->ids, .lens = b->lens};
    cis_err err = {0};
    CIS_ASSERT(llama_forward(m, &bt, &hk, 1, false, NULL, &err) == 0);
    double s = 0;
    long n = 0;
    for (int r = 0; r < b->B; r++)
        for (int t = 0; t < b->lens[r]; t++, n++)
            for (int k = 0; k < D; k++) {
                double d = (double)h[((size_t)r * b->T + t) * D + k] - cu[k];
                s += d * d;
            }
    free(h);
    return s / ((double)n * D);
}

static void test_control_vector(void) {
    float a[64], b[64], c[64], d[64];
    rmu_control_vector(5, 0, 64, 20.0f, a);
    rmu_control_vector(5, 0, 64, 20.0f, b);
    rmu_control_vector(5, 1, 64, 20.0f, c);
    rmu_control_vector(6, 0, 64, 20.0f, d);
    double n2 = 0;
    bool in_range = true;
    for (int i = 0; i < 64; i++) {
        n2 += (double)a[i] * a[i];
        in_range &= a[i] >= 0 && a[i] <= 20.0f;
    }
    CHECK(in_range);
    CHECK_NEAR(sqrt(n2), 20.0, 1e-4);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);   /* one vector per topic */
    CHECK(memcmp(a, d, sizeof a) != 0);   /* seeded by the job's seed */
    /* uniform on [0, 1) before normalising: the mean entry of c u / |u| is c (1/2) / sqrt(D / 3) =
     * 20 x 0.108 = 2.17 for D = 64, not the 2.5 of an all-equal vector nor ~0 of an isotropic one */
    double mean = 0;
    for (int i = 0; i < 64; i++) mean += a[i] / 64.0;
    CHECK_NEAR(mean, 20.0 * 0.5 / sqrt(64.0 / 3.0), 0.25);
}

static void test_first_step_oracle(void) {
    fx f = make(3, true);
    rmu_opts o = base_opts();
    float cu[16];
    rmu_control_vector(o.seed, 0, 16, o.coeff[0], cu);
    double expect = forget_mse(f.m, &f.forget[0].b[0], o.layer, cu);
    rmu_result r = {0};
    cis_err err = {0};
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, &r, &err), 0);
    CHECK_EQ_INT(r.steps, 1);
    CHECK(r.retain_loss[0] == 0.0);                    /* exactly: updated == frozen at step 0 */
    CHECK_NEAR(r.forget_loss[0], expect, 1e-9 * expect);
    CHECK(expect > 1.0);                               /* far from the control vector: a real check */
    CHECK_EQ_INT(r.n_updated, 3);                      /* o_proj of layers 0, 1, 2 */
    CHECK_EQ_INT(r.numel_updated, 3 * 16 * 16);
    rmu_result_clear(&r);
    drop(&f);
}

/* the first transformers-AdamW update is -lr g / (|g| + eps / sqrt(1 - beta2)) (algorithms.md §8,
 * oracle 4), with g the gradient of the step-0 loss (the forget MSE: the retain term and its gradient
 * are 0), here a central finite difference of the MSE computed in this test */
static void test_first_update_follows_the_gradient(void) {
    fx f = make(4, true);
    rmu_opts o = base_opts();
    llama_model *probe = ufx_clone(f.m);
    float cu[16];
    rmu_control_vector(o.seed, 0, 16, o.coeff[0], cu);
    int pi = llama_model_find(f.m, "model.layers.1.self_attn.o_proj.weight");
    ufx_snap s0 = ufx_take(f.m);
    cis_err err = {0};
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, NULL, &err), 0);
    ufx_snap s1 = ufx_take(f.m);
    llama_param *pp = llama_model_params(probe, &(int){0});
    int agree = 0, tested = 0;
    for (int k = 0; k < 256; k += 9) {
        float w = pp[pi].data[k], h = 1e-2f;
        pp[pi].data[k] = w + h;
        double lp = forget_mse(probe, &f.forget[0].b[0], o.layer, cu);
        pp[pi].data[k] = w - h;
        double lm = forget_mse(probe, &f.forget[0].b[0], o.layer, cu);
        pp[pi].data[k] = w;
        double g = (lp - lm) / (2 * h);
        if (fabs(g) < 1e-3) continue;
        double step = (double)s1.data[pi][k] - s0.data[pi][k];
        tested++;
        agree += (g > 0 && step < 0) || (g < 0 && step > 0);
        /* transformers.AdamW's first step: lr |g| / (|g| + eps / sqrt(1 - beta2)), eps 1e-6 */
        double want = o.lr * fabs(g) / (fabs(g) + 1e-6 / sqrt(1 - 0.999));
        CHECK_NEAR(fabs(step), want, 2e-4 * o.lr);
    }
    CHECK(tested >= 10);
    CHECK_EQ_INT(agree, tested);
    ufx_snap_free(&s0);
    ufx_snap_free(&s1);
    llama_model_free(&probe);
    drop(&f);
}

static void only_module_changes(const char *module) {
    fx f = make(5, true);
    rmu_opts o = base_opts();
    o.module = module;
    o.layer = 2; o.layer_lo = 1; o.layer_hi = 2;
    o.steps = 5;
    ufx_snap s = ufx_take(f.m), fz = ufx_take(f.frozen);
    cis_err err = {0};
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, NULL, &err), 0);
    int n;
    llama_param *p = llama_model_params(f.m, &n);
    int changed = 0;
    for (int i = 0; i < n; i++) {
        bool sel = strstr(p[i].name, module) && (strstr(p[i].name, "layers.1.") || strstr(p[i].name, "layers.2."));
        bool same = ufx_same(f.m, &s, i);
        CHECK_MSG(sel ? !same : same, "%s %s", p[i].name, same ? "unchanged" : "changed");
        changed += !same;
        CHECK_MSG(ufx_same(f.frozen, &fz, i), "frozen %s was written", p[i].name);
    }
    CHECK_EQ_INT(changed, 2);
    /* nothing is left trainable */
    for (int i = 0; i < n; i++) CHECK(!llama_model_is_trainable(f.m, i));
    ufx_snap_free(&s);
    ufx_snap_free(&fz);
    drop(&f);
}
static void test_only_o_proj_changes(void) { only_module_changes("o_proj"); }
static void test_only_down_proj_changes(void) { only_module_changes("down_proj"); }

static void test_same_seed_same_weights(void) {
    ufx_snap w[3];
    for (int k = 0; k < 3; k++) {
        fx f = make(6, true);
        rmu_opts o = base_opts();
        o.steps = 6;
        o.seed = k < 2 ? 11 : 12;
        cis_err err = {0};
        CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, NULL, &err), 0);
        w[k] = ufx_take(f.m);
        drop(&f);
    }
    bool same = true, other = true;
    for (int i = 0; i < w[0].n; i++) {
        same &= memcmp(w[0].data[i], w[1].data[i], (size_t)w[0].cnt[i] * sizeof(float)) == 0;
        other &= memcmp(w[0].data[i], w[2].data[i], (size_t)w[0].cnt[i] * sizeof(float)) == 0;
    }
    CHECK(same);
    CHECK(!other);   /* another seed: other control vectors, other weights */
    for (int k = 0; k < 3; k++) ufx_snap_free(&w[k]);
}

/* one RMU run on the fixture (seed 6); *w gets the weights, *r the result */
static void run_shortcut_case(const char *module, int lo, bool no_prefix, bool perturb_frozen, ufx_snap *w, rmu_result *r) {
    fx f = make(6, true);
    if (perturb_frozen) {   /* the frozen model's layer 0 differs: it cannot share the updated model's prefix */
        int i = llama_model_find(f.frozen, "model.layers.0.self_attn.q_proj.weight");
        float *v = xmalloc(16 * 16 * sizeof(float));
        cis_err e = {0};
        CIS_ASSERT(llama_model_param_get(f.frozen, i, v, &e) == 0);
        for (int k = 0; k < 16 * 16; k++) v[k] *= 1.5f;
        CIS_ASSERT(llama_model_param_set(f.frozen, i, v, &e) == 0);
        free(v);
    }
    rmu_opts o = base_opts();
    o.layer = 3; o.layer_lo = lo; o.layer_hi = 3; o.module = module;
    o.steps = 15;   /* 8 forget batches per topic over 3 and 2 batches, 8 retain batches over 3: all cycle */
    o.no_prefix = no_prefix;
    cis_err err = {0};
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, r, &err), 0);
    *w = ufx_take(f.m);
    drop(&f);
}

/* issue 12: the frozen prefix (layers below the lowest updated one run once per batch and step,
 * kept while the batch comes again), the frozen retain activation kept across the two steps that
 * share a retain batch, and the engine's partial backward of the lowest updated layer give the
 * weights and losses of the reference path (no_prefix, and the engine's full backward) bit for bit:
 * down_proj and o_proj, an odd and an even number of prefix layers, and a frozen model whose lower
 * layers differ (then it runs its own forward); CISWEEP_NO_SHORTCUTS=1 turns them off. */
static void test_shortcuts_same_weights(void) {
    struct { const char *module; int lo; bool perturb; } cases[] = {
        {"down_proj", 1, false}, {"down_proj", 2, false}, {"o_proj", 1, false}, {"down_proj", 1, true}};
    for (int c = 0; c < 4; c++) {
        ufx_snap w[2];
        rmu_result r[2];
        for (int ref = 0; ref < 2; ref++) {
            memset(&r[ref], 0, sizeof r[ref]);
            run_shortcut_case(cases[c].module, cases[c].lo, ref, cases[c].perturb, &w[ref], &r[ref]);
        }
        bool same = r[0].steps == 15 && r[1].steps == 15;
        for (int i = 0; i < w[0].n; i++) same &= memcmp(w[0].data[i], w[1].data[i], (size_t)w[0].cnt[i] * sizeof(float)) == 0;
        for (int k = 0; same && k < 15; k++)
            same &= r[0].forget_loss[k] == r[1].forget_loss[k] && r[0].retain_loss[k] == r[1].retain_loss[k];
        CHECK_MSG(same, "%s from layer %d%s: the shortcuts change the weights or losses", cases[c].module, cases[c].lo,
                  cases[c].perturb ? " (other frozen prefix)" : "");
        /* the shortcuts ran: 15 forget and 15 retain uses of 5 + 3 distinct batches; 7 steps took the
         * previous step's frozen activation */
        CHECK_EQ_INT(r[0].prefix_layers, cases[c].lo);
        CHECK_EQ_INT((int)r[0].prefix_computed, 8);
        CHECK_EQ_INT((int)r[0].prefix_reused, 15 + 15 - 8);
        CHECK_EQ_INT((int)r[0].frozen_reused, 7);
        CHECK_EQ_INT(r[1].prefix_layers + (int)r[1].prefix_computed + (int)r[1].frozen_reused, 0);
        for (int k = 0; k < 2; k++) { ufx_snap_free(&w[k]); rmu_result_clear(&r[k]); }
    }
    setenv("CISWEEP_NO_SHORTCUTS", "1", 1);
    ufx_snap w;
    rmu_result r = {0};
    run_shortcut_case("down_proj", 1, false, false, &w, &r);
    CHECK_EQ_INT(r.prefix_layers + (int)r.frozen_reused, 0);
    unsetenv("CISWEEP_NO_SHORTCUTS");
    ufx_snap_free(&w);
    rmu_result_clear(&r);
}

static void test_forget_loss_falls_without_retain(void) {
    fx f = make(8, true);
    rmu_opts o = base_opts();
    o.alpha[0] = o.alpha[1] = 0;
    o.steps = 40;
    o.lr = 3e-3f;
    rmu_result r = {0};
    cis_err err = {0};
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, &r, &err), 0);
    CHECK_EQ_INT(r.steps, 40);
    /* the bio steps are 0, 2, 4, ...: compare the same topic's first and last losses */
    CHECK(r.forget_loss[38] < 0.8 * r.forget_loss[0]);
    CHECK(r.forget_loss[39] < 0.8 * r.forget_loss[1]);
    for (int i = 0; i < r.steps; i++) CHECK(r.retain_loss[i] == 0);
    rmu_result_clear(&r);
    drop(&f);
}

/* pad_in_loss: the first-step forget loss counts the EOS rows after the text; masked, it does not,
 * and equals the loss of the unpadded text alone */
static void test_pads_in_the_mse(void) {
    fx a = make(9, true), b = make(9, false);
    rmu_opts o = base_opts();
    rmu_result ra = {0}, rb = {0};
    cis_err err = {0};
    CHECK_EQ_INT(rmu_run(a.m, a.frozen, &o, a.forget, &a.retain, &ra, &err), 0);
    CHECK_EQ_INT(rmu_run(b.m, b.frozen, &o, b.forget, &b.retain, &rb, &err), 0);
    CHECK(fabs(ra.forget_loss[0] - rb.forget_loss[0]) > 1e-6 * rb.forget_loss[0]);
    /* masked: the mean over the real rows only, computed here on the starting weights */
    float cu[16];
    rmu_control_vector(o.seed, 0, 16, o.coeff[0], cu);
    double e = forget_mse(b.frozen, &b.forget[0].b[0], o.layer, cu);
    CHECK_NEAR(rb.forget_loss[0], e, 1e-9 * e);
    rmu_result_clear(&ra);
    rmu_result_clear(&rb);
    drop(&a);
    drop(&b);
}

static void test_bad_options(void) {
    fx f = make(10, true);
    cis_err err = {0};
    rmu_opts o = base_opts();
    o.layer = 4;
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, NULL, &err), -1);
    CHECK_MSG(strstr(err.msg, "activation layer 4 is outside the model's layers 0..3"), "%s", err.msg);
    o = base_opts();
    o.module = "mlp";
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, NULL, &err), -1);
    CHECK_MSG(strstr(err.msg, "module \"mlp\" is not one of"), "%s", err.msg);
    o = base_opts();
    o.layer_hi = 3;
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &f.retain, NULL, &err), -1);
    CHECK_MSG(strstr(err.msg, "updated layers 0..3"), "%s", err.msg);
    unl_batches none = {0};
    o = base_opts();
    CHECK_EQ_INT(rmu_run(f.m, f.frozen, &o, f.forget, &none, NULL, &err), -1);
    CHECK_MSG(strstr(err.msg, "no retain batch"), "%s", err.msg);
    drop(&f);
}

static json_t *rmu_params(const char *extra) {
    char *t = xasprintf("{\"alpha\":1000.0,\"batch_size\":4,\"layer\":3,\"lr\":5e-05,\"max_batches\":250,"
                        "\"module\":\"o_proj\",\"pad_in_loss\":true,\"steering_coeff\":20.0,\"use_preset\":%s}", extra);
    json_t *j = json_loads(t, 0, NULL);
    free(t);
    CIS_ASSERT(j);
    return j;
}

static void test_preset(void) {
    cis_err err = {0};
    /* a Llama-3-8B-shaped config: the paper's values and layer 3 as given */
    llama_config c = fx_config(4096, 32, 14336, 8192);
    json_t *p = rmu_params("true");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 3);
    CHECK_EQ_INT(json_array_size(json_object_get(p, "update_layers")), 3);
    CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(p, "update_layers"), 0)), 1);
    CHECK_NEAR(json_real_value(json_object_get(p, "alpha")), 1000.0, 0);
    CHECK_NEAR(json_real_value(json_object_get(p, "steering_coeff")), 20.0, 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(p, "max_len"), "cyber")), 768);
    json_decref(p);
    /* a 12-layer model of D=256 (not the tiny family): round(3 x 12 / 32) = 1, layers 0..1, the
     * paper's values */
    c = fx_config(256, 12, 768, 2048);
    p = rmu_params("true");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 1);
    CHECK_EQ_INT(json_array_size(json_object_get(p, "update_layers")), 2);
    CHECK_NEAR(json_real_value(json_object_get(p, "alpha")), 1000.0, 0);
    json_decref(p);
    /* Mistral (not tiny): layer 6 on down_proj, scaled: round(6 x 12 / 32) = 2 */
    snprintf(c.model_type, sizeof c.model_type, "mistral");
    p = rmu_params("true");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 2);
    CHECK_EQ_STR(json_string_value(json_object_get(p, "module")), "down_proj");
    json_decref(p);
    /* the tiny family (10 layers, D=64): layer 6 (unscaled) on down_proj of layers 4-6, c 1200, alpha
     * 80 (results epoch 9), the given ones kept under "given", the truncation capped at the model's
     * 128 positions */
    c = fx_config(64, 10, 192, 128);
    p = rmu_params("true");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 6);
    CHECK_EQ_INT(json_array_size(json_object_get(p, "update_layers")), 3);
    CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(p, "update_layers"), 0)), 4);
    CHECK_EQ_STR(json_string_value(json_object_get(p, "module")), "down_proj");
    CHECK_NEAR(json_real_value(json_object_get(p, "alpha")), 80.0, 0);
    CHECK_NEAR(json_real_value(json_object_get(p, "steering_coeff")), 1200.0, 0);
    CHECK_NEAR(json_real_value(json_object_get(p, "lr")), 1e-2, 0);
    CHECK_NEAR(json_real_value(json_object_get(json_object_get(p, "given"), "alpha")), 1000.0, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(json_object_get(p, "given"), "module")), "o_proj");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(p, "max_len"), "bio")), 128);
    CHECK(strstr(json_string_value(json_object_get(p, "preset")), "layer 6") != NULL);
    json_decref(p);
    /* the tiny family's Mistral keeps the epoch-8 values: layer 3 on down_proj of layers 1-3, c 300,
     * alpha 30 (upstream's own Mistral layer 6 and module recorded under "given") */
    snprintf(c.model_type, sizeof c.model_type, "mistral");
    p = rmu_params("true");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 3);
    CHECK_EQ_INT(json_integer_value(json_array_get(json_object_get(p, "update_layers"), 0)), 1);
    CHECK_NEAR(json_real_value(json_object_get(p, "alpha")), 30.0, 0);
    CHECK_NEAR(json_real_value(json_object_get(p, "steering_coeff")), 300.0, 0);
    CHECK_EQ_STR(json_string_value(json_object_get(p, "module")), "down_proj");
    CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(p, "given"), "layer")), 3);
    CHECK(strstr(json_string_value(json_object_get(p, "preset")), "Mistral: layer 3") != NULL);
    json_decref(p);
    /* a tiny model too shallow for layer 6 (6 layers): its last layer, 5, with the tiny values */
    c = fx_config(64, 6, 192, 128);
    p = rmu_params("true");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 5);
    CHECK_NEAR(json_real_value(json_object_get(p, "alpha")), 80.0, 0);
    CHECK(strstr(json_string_value(json_object_get(p, "layer_rule")), "the last layer") != NULL);
    json_decref(p);
    /* 3 layers: below the tiny branch (as in epoch 8): the scaled paper layer round(3 x 3 / 32) = 0 */
    c = fx_config(64, 3, 192, 128);
    p = rmu_params("true");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 0);
    CHECK_NEAR(json_real_value(json_object_get(p, "alpha")), 1000.0, 0);
    json_decref(p);
    /* use_preset false: everything as given, the layer an index of this model */
    c = fx_config(64, 10, 192, 128);
    p = rmu_params("false");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), 0);
    CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 3);
    CHECK_NEAR(json_real_value(json_object_get(p, "alpha")), 1000.0, 0);
    json_decref(p);
    /* a layer past the model */
    c = fx_config(64, 2, 192, 128);
    p = rmu_params("false");
    CHECK_EQ_INT(rmu_preset(&c, p, &err), -1);
    CHECK_MSG(strstr(err.msg, "params.layer: 3 is outside this model's layers 0..1"), "%s", err.msg);
    json_decref(p);
}

int main(void) {
    RUN(test_control_vector);
    RUN(test_first_step_oracle);
    RUN(test_first_update_follows_the_gradient);
    RUN(test_only_o_proj_changes);
    RUN(test_only_down_proj_changes);
    RUN(test_same_seed_same_weights);
    RUN(test_shortcuts_same_weights);
    RUN(test_forget_loss_falls_without_retain);
    RUN(test_pads_in_the_mse);
    RUN(test_bad_options);
    RUN(test_preset);
    return test_summary();
}
