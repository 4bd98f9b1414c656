/* bench_unlearn.c - time per unlearning method (RMU, GA, GD; worker/interventions/unlearn.h) and
 * optimizer steps per second, next to the engine's full training-step rate (forward + backward to
 * every parameter + AdamW, as bench_engine measures it) in the same run, on
 *   - the default model (a model directory, e.g. /work/cache/default/model, with its world: the real
 *     corpora, batches and lengths the interventions use: RMU 250 steps, GA/GD as configured below),
 *   - the 100M shape of bench_engine (random weights, random-id batches of 4 x 256 tokens).
 * On the default model RMU runs its tiny-family preset twice, side by side: the reference path
 * (issue 12's shortcuts off: no frozen prefix, the engine's full backward) and the default, and
 * says whether the two give the same weights bit for bit.
 * Built by `make tests-build`, not run by `make test`; numbers go in docs/unlearning.md.
 * Usage: bench_unlearn [-t threads] [-m MODEL_DIR -w WORLD_DIR] [-s default,100m] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rng.h"
#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/optim.h"
#include "worker/engine/tokenizer.h"
#include "worker/interventions/unlearn.h"

static int g_threads = 2;

static void die_err(const char *what, const cis_err *e) {
    fprintf(stderr, "bench_unlearn: %s: %s\n", what, e->msg);
    exit(1);
}

/* the engine's training step on batch b: zero grads, forward, backward to every parameter, AdamW;
 * steps/s over n steps (best of 2 passes) */
static double train_step_rate(llama_model *m, const unl_batch *b, int n) {
    cis_err err = {0};
    llama_model_set_trainable(m, "*", -1, -1, true, &err);
    optim_config oc = optim_config_default(ADAM_TORCH_ADAMW);
    oc.lr = 1e-9f;
    optim *o = llama_model_optim_new(m, &oc, &err);
    if (!o) die_err("optim", &err);
    double best = 0;
    for (int pass = 0; pass < 2; pass++) {
        double t0 = mono_sec();
        for (int i = 0; i < n; i++) {
            llama_model_zero_grad(m);
            llama_batch bt = {.B = b->B, .T = b->T, .ids = b->ids, .lens = b->lens, .targets = b->targets};
            if (llama_forward(m, &bt, NULL, 0, true, NULL, &err) || llama_backward(m, 1.0f, NULL, &err)) die_err("step", &err);
            optim_step(o, -1);
        }
        double r = n / (mono_sec() - t0);
        if (r > best) best = r;
    }
    optim_free(&o);
    llama_model_freeze_all(m);
    return best;
}

static void report(const char *shape, const char *method, int steps, double sec, int tokens_per_step, double engine) {
    /* tokens_per_step: the padded tokens of the step's forget batches (RMU also runs two partial
     * forwards of a retain batch per step; GD a retain batch per forget batch) */
    printf("%-8s %-7s %6d steps %8.2f s %8.2f steps/s (%6d forget tokens/step)   engine train step %7.2f steps/s "
           "(one batch of that shape)\n", shape, method, steps, sec, steps / sec, tokens_per_step, engine);
    fflush(stdout);
}

static void bench_default(const char *model_dir, const char *world) {
    cis_err err = {0};
    llama_config cfg;
    char *cj = xasprintf("%s/config.json", model_dir);
    if (llama_config_load(cj, &cfg, &err)) die_err(model_dir, &err);
    free(cj);
    backend *be = backend_open("cpu", &(backend_opts){.threads = g_threads}, &err);
    if (!be) die_err("backend", &err);
    llama_model *m = llama_model_new(&cfg, be, &err), *base = llama_model_new(&cfg, be, &err);
    if (!m || !base || llama_model_load(base, model_dir, &err)) die_err(model_dir, &err);
    tokenizer *tok = NULL;
    if (tokenizer_load(model_dir, &tok, &err)) die_err("tokenizer", &err);
    int maxpos = cfg.max_position_embeddings;
    text_docs d[3] = {{0}};
    unl_batches rb[3] = {{0}};
    for (int t = 0; t < 2; t++)
        if (unl_load_forget(world, t, 0, &d[t], &err)) die_err("forget", &err);
    if (unl_load_retain(world, 0, &d[2], &err)) die_err("retain", &err);
    for (int k = 0; k < 3; k++)
        if (unl_make_batches(tok, &d[k], 0, -1, 4, maxpos, false, false, true, false, &rb[k], &err)) die_err("batches", &err);
    /* RMU as the preset runs it on the tiny family (rmu_preset, results epoch 9): act layer 6, down_proj
     * of layers 4-6, c 1200, alpha 80 (a Mistral: layer 3, down_proj of 1-3, c 300, alpha 30), lr 1e-2,
     * 250 steps; first the reference path (no frozen prefix, the engine's full backward: issue 12's
     * shortcuts off), then the default, side by side, and the two results compared bit for bit */
    const bool mistral = !strcmp(cfg.model_type, "mistral");
    const int want = mistral ? 3 : 6;
    int L = cfg.num_hidden_layers, act = L > want ? want : L - 1;
    rmu_opts o = {.layer = act, .layer_lo = act >= 2 ? act - 2 : 0, .layer_hi = act, .module = "down_proj", .lr = 1e-2f,
                  .steps = 250, .seed = 1, .pad_in_loss = true};
    o.coeff[0] = o.coeff[1] = mistral ? 300 : 1200;
    o.alpha[0] = o.alpha[1] = mistral ? 30 : 80;
    rmu_result r = {0}, r_ref = {0};
    llama_model_copy_params(m, base, &err);
    o.no_prefix = true;
    llama_model_set_full_backward(m, true);
    if (rmu_run(m, base, &o, rb, &rb[2], &r_ref, &err) < 0) die_err("rmu", &err);
    int np;
    llama_param *pp = llama_model_params(m, &np);
    float **ref_w = xcalloc((size_t)np, sizeof *ref_w);
    for (int i = 0; i < np; i++) {
        size_t n = (size_t)pp[i].shape[0] * (pp[i].ndim == 2 ? (size_t)pp[i].shape[1] : 1);
        ref_w[i] = xmalloc(n * sizeof(float));
        llama_model_param_get(m, i, ref_w[i], &err);
    }
    llama_model_copy_params(m, base, &err);
    o.no_prefix = false;
    llama_model_set_full_backward(m, false);
    if (rmu_run(m, base, &o, rb, &rb[2], &r, &err) < 0) die_err("rmu", &err);
    bool same = true;
    for (int i = 0; i < np; i++) {
        size_t n = (size_t)pp[i].shape[0] * (pp[i].ndim == 2 ? (size_t)pp[i].shape[1] : 1);
        float *now = xmalloc(n * sizeof(float));
        llama_model_param_get(m, i, now, &err);
        same &= memcmp(now, ref_w[i], n * sizeof(float)) == 0;
        free(now);
        free(ref_w[i]);
    }
    free(ref_w);
    /* GA/GD batches: fixed length (the model's positions), targets */
    text_docs f = {0};
    f.n = d[0].n + d[1].n;
    f.text = xmalloc((size_t)f.n * sizeof(char *));
    f.len = xmalloc((size_t)f.n * sizeof(size_t));
    for (int t = 0, k = 0; t < 2; t++)
        for (int i = 0; i < d[t].n; i++, k++) { f.text[k] = d[t].text[i]; f.len[k] = d[t].len[i]; }
    unl_batches fb = {0}, gb = {0};
    if (unl_make_batches(tok, &f, 0, 50, 4, maxpos, true, true, true, false, &fb, &err)) die_err("ga batches", &err);
    if (unl_make_batches(tok, &d[2], 0, 480, 2, maxpos, true, true, true, false, &gb, &err)) die_err("gd batches", &err);
    unl_batches fb2 = {0};
    if (unl_make_batches(tok, &f, 0, 480, 2, maxpos, true, true, true, false, &fb2, &err)) die_err("gd batches", &err);
    double eng = train_step_rate(m, &fb.b[0], 10);
    int ttok = rb[0].b[0].B * rb[0].b[0].T;
    report("default", "rmu-ref", r_ref.steps, r_ref.seconds, ttok, eng);
    report("default", "rmu", r.steps, r.seconds, ttok, eng);
    printf("# rmu: layer %d, down_proj of %d-%d; the frozen prefix (layers 0-%d) computed %lld times, reused %lld; frozen "
           "activation reused %lld times; %.2fx faster than the reference path; weights %s\n", o.layer, o.layer_lo,
           o.layer_hi, o.layer_lo - 1, (long long)r.prefix_computed, (long long)r.prefix_reused, (long long)r.frozen_reused,
           r_ref.seconds / r.seconds, same ? "bit-identical" : "DIFFER");
    rmu_result_clear(&r_ref);
    llama_model_copy_params(m, base, &err);
    ga_opts go = {.lr = 1e-3f, .accum = 2, .freeze_lower_half = true, .replicas = 0};
    ga_result gr = {0};
    if (ga_run(m, &go, &fb, NULL, &gr, &err) < 0) die_err("ga", &err);
    report("default", "ga", gr.steps, gr.seconds, 2 * 4 * maxpos, eng);
    ga_result_clear(&gr);
    llama_model_copy_params(m, base, &err);
    go.retain_weight = 40;
    if (ga_run(m, &go, &fb2, &gb, &gr, &err) < 0) die_err("gd", &err);
    report("default", "gd", gr.steps, gr.seconds, 2 * 2 * maxpos, train_step_rate(m, &fb2.b[0], 10));
    ga_result_clear(&gr);
    rmu_result_clear(&r);
    free(f.text); free(f.len);
    unl_batches_clear(&fb); unl_batches_clear(&fb2); unl_batches_clear(&gb);
    for (int k = 0; k < 3; k++) { unl_batches_clear(&rb[k]); text_docs_clear(&d[k]); }
    tokenizer_free(tok);
    llama_model_free(&m);
    llama_model_free(&base);
    backend_close(&be);
}

static void bench_100m(void) {
    llama_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab_size = 32000; c.hidden_size = 768; c.intermediate_size = 2048; c.num_hidden_layers = 12;
    c.num_attention_heads = 12; c.num_key_value_heads = 4; c.head_dim = 64;
    c.max_position_embeddings = 2048; c.rms_norm_eps = 1e-5f; c.rope_theta = 10000.0f;
    c.tie_word_embeddings = true; c.bos_token_id = 1; c.eos_token_ids[0] = 2; c.n_eos = 1; c.pad_token_id = -1;
    cis_err err = {0};
    backend *be = backend_open("cpu", &(backend_opts){.threads = g_threads}, &err);
    if (!be) die_err("backend", &err);
    llama_model *m = llama_model_new(&c, be, &err), *base = llama_model_new(&c, be, &err);
    if (!m || !base) die_err("100m model", &err);
    llama_model_init_random(base, 1);
    llama_model_copy_params(m, base, &err);
    /* random-id batches of 4 x 256 (RMU without targets, GA/GD with) */
    int T = 256, B = 4;
    unl_batches bs[5];
    for (int k = 0; k < 5; k++) {
        memset(&bs[k], 0, sizeof bs[k]);
        int n = k < 3 ? 2 : 4;
        bs[k].b = xcalloc((size_t)n, sizeof *bs[k].b);
        bs[k].n = n;
        uint64_t st = 100 + (uint64_t)k;
        for (int i = 0; i < n; i++) {
            unl_batch *b = &bs[k].b[i];
            b->B = B; b->T = T;
            b->ids = xmalloc((size_t)B * T * sizeof(int32_t));
            b->lens = xmalloc((size_t)B * sizeof(int32_t));
            b->real = xmalloc((size_t)B * sizeof(int32_t));
            b->targets = xmalloc((size_t)B * T * sizeof(int32_t));
            for (int r = 0; r < B; r++) {
                b->lens[r] = b->real[r] = T;
                for (int t = 0; t < T; t++) b->ids[(size_t)r * T + t] = (int32_t)(rng_splitmix64(&st) % 32000);
                for (int t = 0; t < T; t++) b->targets[(size_t)r * T + t] = t + 1 < T ? b->ids[(size_t)r * T + t + 1] : LOSS_IGNORE_INDEX;
            }
        }
    }
    double eng = train_step_rate(m, &bs[3].b[0], 2);
    /* RMU at layer round(3 x 12 / 32) = 1, o_proj of layers 0-1 */
    rmu_opts o = {.layer = 1, .layer_lo = 0, .layer_hi = 1, .module = "o_proj", .lr = 5e-5f, .steps = 6, .seed = 1,
                  .pad_in_loss = true};
    o.coeff[0] = o.coeff[1] = 20; o.alpha[0] = o.alpha[1] = 1000;
    rmu_result r = {0};
    if (rmu_run(m, base, &o, bs, &bs[2], &r, &err) < 0) die_err("rmu", &err);
    report("100m", "rmu", r.steps, r.seconds, B * T, eng);
    rmu_result_clear(&r);
    ga_opts go = {.lr = 5e-5f, .accum = 2, .freeze_lower_half = true, .replicas = 1};
    ga_result gr = {0};
    llama_model_copy_params(m, base, &err);
    if (ga_run(m, &go, &bs[3], NULL, &gr, &err) < 0) die_err("ga", &err);
    report("100m", "ga", gr.steps, gr.seconds, 2 * B * T, eng);
    ga_result_clear(&gr);
    llama_model_copy_params(m, base, &err);
    go.retain_weight = 40;
    if (ga_run(m, &go, &bs[3], &bs[4], &gr, &err) < 0) die_err("gd", &err);
    report("100m", "gd", gr.steps, gr.seconds, 2 * B * T, eng);
    ga_result_clear(&gr);
    for (int k = 0; k < 5; k++) unl_batches_clear(&bs[k]);
    llama_model_free(&m);
    llama_model_free(&base);
    backend_close(&be);
}

int main(int argc, char **argv) {
    const char *model = "/work/cache/default/model", *world = "/work/cache/default/world", *shapes = "default,100m";
    int opt;
    while ((opt = getopt(argc, argv, "t:m:w:s:")) != -1) {
        if (opt == 't') g_threads = atoi(optarg);
        else if (opt == 'm') model = optarg;
        else if (opt == 'w') world = optarg;
        else if (opt == 's') shapes = optarg;
        else { fprintf(stderr, "usage: bench_unlearn [-t threads] [-m MODEL_DIR -w WORLD_DIR] [-s default,100m]\n"); return 2; }
    }
    printf("# bench_unlearn: %d threads; GA/GD use data-parallel replicas on the default model (one per thread)\n", g_threads);
    if (strstr(shapes, "default")) {
        if (access(model, R_OK) != 0 || access(world, R_OK) != 0)
            printf("# default: skipped (no model at %s or world at %s; -m/-w)\n", model, world);
        else bench_default(model, world);
    }
    if (strstr(shapes, "100m")) bench_100m();
    return 0;
}
