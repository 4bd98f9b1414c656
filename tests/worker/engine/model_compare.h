/* model_compare.h - the whole model on one backend instance (staged_be) against the plain cpu
 * (host_be), for test_model_staged.c (a cpu instance that behaves as device memory: bit for bit)
 * and test_model_device.c (cuda:0: within fp32 tolerance). The same random weights (host init,
 * copied across backends), then forward logits and loss, hooks (READ, ADD, REPLACE at positions,
 * gradients, seeds), backward gradients, an AdamW step, greedy generation (tokens exactly),
 * log-likelihoods, the layer-by-layer driver and checkpoint save/load must agree. The including
 * file sets host_be, staged_be, cmp_tol and cmp_tag, then calls model_compare_run(). */
#ifndef CISWEEP_TESTS_MODEL_COMPARE_H
#define CISWEEP_TESTS_MODEL_COMPARE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testlib.h"
#include "worker/engine/model.h"
#include "worker/engine/optim.h"

static backend *host_be, *staged_be;  /* the reference (cpu) and the instance under test */
static double cmp_tol;                 /* 0: bit for bit; else relative to each output's scale */
static const char *cmp_tag = "staged"; /* names the temp dir */

static llama_config tiny(void) {
    llama_config c;
    memset(&c, 0, sizeof c);
    c.arch = LLAMA_ARCH_LLAMA;
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab_size = 41;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 3;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 4;
    c.max_position_embeddings = 32;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.tie_word_embeddings = false;
    c.bos_token_id = 1;
    c.eos_token_ids[0] = 2;
    c.n_eos = 1;
    c.pad_token_id = -1;
    return c;
}

/* the same random model on both backends (host init, copied to the staged one across backends) */
static void pair(llama_model **h, llama_model **s) {
    llama_config c = tiny();
    cis_err err = {0};
    *h = llama_model_new(&c, host_be, &err);
    *s = llama_model_new(&c, staged_be, &err);
    CHECK(*h && *s);
    llama_model_init_random(*h, 42);
    int n;
    llama_param *p = llama_model_params(*h, &n);
    for (int i = 0; i < n; i++)  // weights large enough that attention is far from uniform
        for (int64_t j = 0; j < p[i].shape[0] * p[i].shape[1]; j++) p[i].data[j] *= p[i].ndim == 1 ? 1.0f : 20.0f;
    CHECK(llama_model_copy_params(*s, *h, &err) == 0);
}

/* equal bit for bit (cmp_tol 0), or within cmp_tol of the larger magnitude of a's values (at least
 * 1e-3); prints the first mismatch */
static bool same(const float *a, const float *b, int64_t n) {
    if (cmp_tol == 0) {
        if (memcmp(a, b, (size_t)n * sizeof *a) == 0) return true;
        for (int64_t i = 0; i < n; i++)
            if (memcmp(&a[i], &b[i], sizeof *a)) {
                fprintf(stderr, "  element %lld: reference %.9g, under test %.9g\n", (long long)i, a[i], b[i]);
                break;
            }
        return false;
    }
    double scale = 1e-3;
    for (int64_t i = 0; i < n; i++) scale = fabs(a[i]) > scale ? fabs(a[i]) : scale;
    for (int64_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= cmp_tol * scale)) {
            fprintf(stderr, "  element %lld: reference %.9g, under test %.9g (scale %.3g)\n", (long long)i, a[i], b[i],
                    scale);
            return false;
        }
    return true;
}

/* two scalars equal under the same rule as same() (scale: |a|, plus 1e-5 absolute when tolerant) */
static bool same_d(double a, double b) { return cmp_tol == 0 ? a == b : fabs(a - b) <= cmp_tol * fabs(a) + 1e-5; }

/* all parameters (or gradients) of m as one host array */
static float *params_of(llama_model *m, bool grads) {
    int n;
    llama_param *p = llama_model_params(m, &n);
    float *out = malloc((size_t)llama_model_numel(m) * sizeof *out), *o = out;
    for (int i = 0; i < n; i++) {
        int64_t k = p[i].shape[0] * p[i].shape[1];
        if (grads) {
            float *g = llama_model_grad(m, i);
            if (g) backend_download(llama_model_backend(m), o, g, (size_t)k * sizeof(float));
            else memset(o, 0, (size_t)k * sizeof(float));
        } else {
            CHECK(llama_model_param_get(m, i, o, NULL) == 0);
        }
        o += k;
    }
    return out;
}

static void test_copy_and_params(void) {
    llama_model *h, *s;
    pair(&h, &s);
    int64_t n = llama_model_numel(h);
    float *a = params_of(h, false), *b = params_of(s, false);
    CHECK(same(a, b, n));
    // param_set on the staged model, param_get back
    int i = llama_model_find(s, "model.layers.1.mlp.down_proj.weight");
    CHECK(i >= 0);
    float v[16 * 24];
    for (int k = 0; k < 16 * 24; k++) v[k] = (float)k;
    CHECK(llama_model_param_set(s, i, v, NULL) == 0);
    float w[16 * 24];
    CHECK(llama_model_param_get(s, i, w, NULL) == 0 && same(v, w, 16 * 24));
    // staged -> host copy
    CHECK(llama_model_copy_params(h, s, NULL) == 0);
    CHECK(llama_model_param_get(h, i, w, NULL) == 0 && same(v, w, 16 * 24));
    free(a); free(b);
    llama_model_free(&h); llama_model_free(&s);
}

static void test_forward_hooks_backward(void) {
    llama_model *h, *s;
    pair(&h, &s);
    const int B = 2, T = 7, V = 41, D = 16, F = 24;
    int32_t ids[14], tg[14], lens[2] = {7, 5};
    for (int i = 0; i < B * T; i++) { ids[i] = (i * 7 + 3) % V; tg[i] = (i * 5 + 1) % V; }
    tg[3] = LOSS_IGNORE_INDEX;
    int32_t ob[3] = {0, 1, 1}, ot[3] = {6, 4, 0};
    int32_t pb[2] = {0, 1}, pt[2] = {2, 3};
    float add[2 * 24], rep[2 * 16], seed[14 * 16];
    for (int i = 0; i < 2 * F; i++) add[i] = 0.3f * sinf((float)i);
    for (int i = 0; i < 2 * D; i++) rep[i] = 0.2f * cosf((float)i);
    for (int i = 0; i < B * T * D; i++) seed[i] = 0.01f * (float)((i % 13) - 6);
    float dlog[3 * 41];
    for (int i = 0; i < 3 * V; i++) dlog[i] = 0.05f * (float)((i % 7) - 3);
    float logits[2][3 * 41], readA[2][14 * 16], readE[2][14 * 16], gD[2][2 * 24], gB[2][14 * 16];
    double loss[2];
    llama_model *ms[2] = {h, s};
    float *grads[2];
    for (int k = 0; k < 2; k++) {
        llama_model *m = ms[k];
        CHECK(llama_model_set_trainable(m, NULL, -1, -1, true, NULL) > 0);
        llama_hook hk[4] = {
            {.layer = 0, .point = LLAMA_HOOK_A, .mode = LLAMA_HOOK_READ, .n_pos = -1, .read = readA[k]},
            {.layer = 1, .point = LLAMA_HOOK_D, .mode = LLAMA_HOOK_ADD, .n_pos = 2, .pos_b = pb, .pos_t = pt,
             .value = add, .grad = gD[k]},
            {.layer = 2, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_REPLACE, .n_pos = 2, .pos_b = pb, .pos_t = pt,
             .value = rep, .read = readE[k], .grad_seed = seed},
            {.layer = 1, .point = LLAMA_HOOK_B, .mode = LLAMA_HOOK_READ, .n_pos = -1, .grad = gB[k]},
        };
        llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .targets = tg, .n_out = 3, .out_b = ob,
                          .out_t = ot, .logits = logits[k]};
        cis_err err = {0};
        CHECK_MSG(llama_forward(m, &bt, hk, 4, true, &loss[k], &err) == 0, "%s", err.msg);
        CHECK_MSG(llama_backward(m, 1.0f, dlog, &err) == 0, "%s", err.msg);
        grads[k] = params_of(m, true);
    }
    CHECK(same_d(loss[0], loss[1]) && loss[0] > 0);
    CHECK(same(logits[0], logits[1], 3 * V));
    CHECK(same(readA[0], readA[1], B * T * D));
    CHECK(same(readE[0], readE[1], B * T * D));
    CHECK(same(gD[0], gD[1], 2 * F));
    CHECK(same(gB[0], gB[1], B * T * D));
    CHECK(same(grads[0], grads[1], llama_model_numel(h)));
    // one AdamW step from those gradients
    optim_config oc = optim_config_default(ADAM_TORCH_ADAMW);
    for (int k = 0; k < 2; k++) {
        optim *o = llama_model_optim_new(ms[k], &oc, NULL);
        CHECK(o != NULL);
        if (o) { optim_clip_grad_norm(o, 0.5); optim_step(o, -1); }
        optim_free(&o);
    }
    float *a = params_of(h, false), *b = params_of(s, false);
    CHECK(same(a, b, llama_model_numel(h)));
    free(a); free(b); free(grads[0]); free(grads[1]);
    llama_model_free(&h); llama_model_free(&s);
}

static void test_generate_loglik_layers(void) {
    llama_model *h, *s;
    pair(&h, &s);
    int32_t p0[3] = {5, 9, 11}, p1[1] = {7}, p2[4] = {3, 3, 8, 1};
    const int32_t *prompts[3] = {p0, p1, p2};
    int plens[3] = {3, 1, 4};
    int32_t out[2][3 * 12];
    int olens[2][3];
    double ll[2][3];
    bool gr[2][3];
    const int32_t *ctx[3] = {p0, p1, p2}, *cont[3] = {p1, p0, p0};
    int clens[3] = {1, 3, 2};
    for (int k = 0; k < 2; k++) {
        llama_model *m = k ? s : h;
        cis_err err = {0};
        CHECK_MSG(llama_generate(m, 3, prompts, plens, 12, out[k], olens[k], &err) == 0, "%s", err.msg);
        CHECK_MSG(llama_loglik(m, 3, ctx, plens, cont, clens, 0, ll[k], gr[k], &err) == 0, "%s", err.msg);
    }
    CHECK(memcmp(out[0], out[1], sizeof out[0]) == 0 && memcmp(olens[0], olens[1], sizeof olens[0]) == 0);
    for (int i = 0; i < 3; i++) CHECK(same_d(ll[0][i], ll[1][i]));
    CHECK(memcmp(gr[0], gr[1], sizeof gr[0]) == 0);
    CHECK(olens[0][0] > 3);
    // the layer-by-layer driver: activations in backend memory
    const int B = 2, T = 4, D = 16;
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8}, lens[2] = {4, 3};
    float res[2][8 * 16], rd[2][8 * 24];
    for (int k = 0; k < 2; k++) {
        llama_model *m = k ? s : h;
        backend *be = llama_model_backend(m);
        float *x = backend_alloc(be, (size_t)B * T * D * sizeof(float), NULL);
        float *y = backend_alloc(be, (size_t)B * T * D * sizeof(float), NULL);
        cis_err err = {0};
        CHECK(llama_embed(m, B, T, ids, lens, x, &err) == 0);
        llama_hook hk = {.layer = 1, .point = LLAMA_HOOK_D, .mode = LLAMA_HOOK_READ, .n_pos = -1, .read = rd[k]};
        for (int l = 0; l < 3; l++) {
            CHECK_MSG(llama_layer_run(m, l, B, T, lens, x, y, &hk, 1, &err) == 0, "%s", err.msg);
            float *t = x; x = y; y = t;
        }
        backend_download(be, res[k], x, sizeof res[k]);
        backend_free(be, x); backend_free(be, y);
    }
    CHECK(same(res[0], res[1], B * T * D));
    CHECK(same(rd[0], rd[1], B * T * 24));
    llama_model_free(&h); llama_model_free(&s);
}

static void test_save_load_through_host(void) {
    llama_model *h, *s;
    pair(&h, &s);
    char dir[64];
    snprintf(dir, sizeof dir, "/tmp/cisweep-%s-XXXXXX", cmp_tag);
    CHECK(mkdtemp(dir) != NULL);
    cis_err err = {0};
    CHECK_MSG(llama_model_save(s, dir, NULL, &err) == 0, "%s", err.msg);
    llama_config c = tiny();
    llama_model *s2 = llama_model_new(&c, staged_be, &err);
    CHECK_MSG(s2 && llama_model_load(s2, dir, &err) == 0, "%s", err.msg);
    float *a = params_of(h, false), *b = params_of(s2, false);
    CHECK(same(a, b, llama_model_numel(h)));
    free(a); free(b);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    llama_model_free(&s2); llama_model_free(&h); llama_model_free(&s);
}

/* model_compare_run: every comparison above; host_be, staged_be, cmp_tol, cmp_tag set by the caller */
static void model_compare_run(void) {
    RUN(test_copy_and_params);
    RUN(test_forward_hooks_backward);
    RUN(test_generate_loglik_layers);
    RUN(test_save_load_through_host);
}

#endif
