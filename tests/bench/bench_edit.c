/* bench_edit.c - the knowledge editors' cost by phase for 50 edits, on the default model's shape
 * (loaded from MODEL_DIR) and on the 100M shape of bench_engine (D 768, L 12, F 2048, random
 * weights, the default tokenizer's vocabulary), CPU: the MEMIT statistics per 10k corpus
 * documents, one value-optimisation step (forward + backward of the 7 rewriting/KL inputs with the
 * ADD hook), one key pass (the 300 key inputs up to L*), one closed-form solve (u = 50, fp64), one
 * FT-M step (50 sequences, down_proj of the edited layers) and one LoRA step (q/v_proj trainable);
 * each the best of `reps` runs, and the 50-edit totals they imply (values: 50 edits x the updates
 * of the effective v_steps; keys: N + 1 passes; FT 25 steps; LoRA 70 steps). The measured full
 * runs of the default model come from tests/bench/edit_quality.sh (apply.json phases).
 * With a fifth argument `values` it runs only the MEMIT value optimisation of edit set 1 of WORLD_DIR
 * on the model, the tiny preset's settings, side by side: value_batch 1 (one edit at a time through
 * the whole model, the original path), then the batched path (auto, and 10 edits per batch): CPU
 * seconds of the process (the phase is single-threaded at threads 1) and wall seconds of each,
 * their ratio, whether every edit took the same steps, and the largest |z - z_serial| / ||δ||.
 * Built by `make tests-build`, not run by `make test`.
 * Usage: bench_edit MODEL_DIR WORLD_DIR [threads] [reps] [values [B1,B2,...]]   (numbers in
 * docs/editing.md; B1,... = the value_batch settings to run, default 1,0,10, the first the reference) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/util.h"
#include "worker/data/loaders.h"
#include "worker/engine/config.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"
#include "worker/interventions/edit_common.h"
#include "worker/interventions/memit.h"
#include "worker/interventions/memit_stats.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* the value optimisation of edit set 1: serial against batched, same inputs */
static void bench_values(llama_model *m, const tokenizer *tok, const char *world, const char *which) {
    const llama_config *cfg = llama_model_config(m);
    int L = cfg->num_hidden_layers, D = cfg->hidden_size;
    int l48[] = {4, 5, 6, 7, 8}, *layers = NULL, N = 0;
    cis_err err = {0};
    if (edit_scale_layers(l48, 5, 32, L, &layers, &N, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    bool tiny = edit_is_tiny(cfg);
    edit_requests q = {0};
    char *tmpl[MEMIT_N_TEMPLATES];
    llama_model_freeze_all(m);
    if (edit_requests_load(world, 1, &q, &err) || memit_context_templates(m, tok, 1, tmpl, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    int u = q.n;
    memit_value_in *vin = xcalloc((size_t)u, sizeof *vin);
    for (int e = 0; e < u; e++)
        if (memit_value_inputs(tok, &q.r[e], tmpl, &vin[e], &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    {
        double te = 0, real = 0, after = 0;
        int tmax = 0;
        for (int e = 0; e < u; e++) {
            te += (double)vin[e].T / u;
            tmax = vin[e].T > tmax ? vin[e].T : tmax;
            for (int r = 0; r < 7; r++) {
                real += vin[e].lens[r] / (7.0 * u);
                after += (vin[e].lens[r] - vin[e].pt[r]) / (7.0 * u);
            }
        }
        /* tokens at or after the subject: the only rows of layers > L* that depend on δ (causal) */
        printf("# inputs: mean tokens per row %.1f (%.1f at or after the subject), mean padded length per edit %.1f, "
               "longest %d\n", real, after, te, tmax);
    }
    interv_ctx c = {.model = m};
    memit_value_opts o = {.z_layer = layers[N - 1], .steps = MEMIT_PAPER_VSTEPS, .lr = tiny ? 2.0 : 0.5, .kl_factor = 0.0625,
                          .weight_decay = 1e-3, .clamp = 4.0, .stop_loss = MEMIT_STOP_LOSS};
    printf("## MEMIT values, edit set 1 (%d edits): L* %d of %d layers, %d steps, v_lr %g\n", u, o.z_layer, L, o.steps, o.lr);
    int batches[8] = {1, 0, 10}, nb = 3;
    if (which) {   /* a comma list of value_batch settings; the first is the reference */
        nb = 0;
        for (const char *p = which; *p && nb < 8; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p)) batches[nb++] = atoi(p);
    }
    float *Z[8];
    memit_value_res *res[8];
    double cpu[8], wall[8];
    for (int k = 0; k < nb; k++) {
        o.batch = batches[k];
        Z[k] = xmalloc((size_t)u * D * sizeof(float));
        res[k] = xcalloc((size_t)u, sizeof *res[k]);
        int used = 0;
        double t0 = now(), c0 = cpu_now();
        if (memit_values(&c, vin, u, &o, Z[k], res[k], &used, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        cpu[k] = cpu_now() - c0;
        wall[k] = now() - t0;
        long steps = 0;
        double ll = 0;
        for (int e = 0; e < u; e++) { steps += res[k][e].steps; ll += res[k][e].loss_last / u; }
        int same = 0;
        double worst = 0;
        for (int e = 0; e < u; e++) {
            same += res[k][e].steps == res[0][e].steps;
            double dz = 0, dd = res[0][e].delta_rel * res[0][e].h0_norm;
            for (int d = 0; d < D; d++) {
                double x = (double)Z[k][e * D + d] - Z[0][e * D + d];
                dz += x * x;
            }
            if (dd > 0) worst = fmax(worst, sqrt(dz) / dd);
        }
        printf("  value_batch %2d (ran %2d per batch): CPU %7.2f s, wall %7.2f s (CPU x%.2f less than the first); "
               "%ld updates, mean final loss %.4f; same steps as the first %d/%d; max |z - z_first|/|delta| %.2e\n",
               batches[k], used, cpu[k], wall[k], cpu[0] / cpu[k], steps, ll, same, u, worst);
        fflush(stdout);
    }
    for (int k = 0; k < nb; k++) { free(Z[k]); free(res[k]); }
    for (int e = 0; e < u; e++) memit_value_in_free(&vin[e]);
    for (int t = 0; t < MEMIT_N_TEMPLATES; t++) free(tmpl[t]);
    free(vin);
    free(layers);
    edit_requests_clear(&q);
}

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int32_t *rand_ids(int n, int V, uint64_t *s) {
    int32_t *ids = xmalloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(rng_next(s) % (uint64_t)V);
    return ids;
}

static void bench(const char *name, llama_model *m, const tokenizer *tok, const char *world, int reps, int n_docs) {
    const llama_config *cfg = llama_model_config(m);
    int L = cfg->num_hidden_layers, D = cfg->hidden_size, F = cfg->intermediate_size, V = cfg->vocab_size;
    int l48[] = {4, 5, 6, 7, 8}, *layers = NULL, N = 0;
    cis_err err = {0};
    if (edit_scale_layers(l48, 5, 32, L, &layers, &N, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    int zl = layers[N - 1];
    bool tiny = edit_is_tiny(cfg);
    int vsteps = MEMIT_PAPER_VSTEPS;
    printf("## %s: D %d L %d F %d V %d, %lld parameters; edited layers %d-%d (L* %d); v_steps %d%s\n", name, D, L, F,
           V, (long long)llama_model_numel(m), layers[0], zl, zl, vsteps, tiny ? " (tiny preset)" : "");

    /* statistics over n_docs corpus documents */
    char *cp = xasprintf("%s/corpus/pretrain.jsonl", world);
    text_docs docs = {0};
    if (jsonl_text_load(cp, "text", n_docs, &docs, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    int32_t **seqs = xcalloc((size_t)docs.n, sizeof *seqs);
    int *lens = xcalloc((size_t)docs.n, sizeof *lens);
    long toks = 0;
    for (int i = 0; i < docs.n; i++) {
        size_t k = 0;
        CIS_ASSERT(tokenizer_encode(tok, docs.text[i], docs.len[i], true, &seqs[i], &k, &err) == 0);
        lens[i] = (int)(k > (size_t)cfg->max_position_embeddings ? (size_t)cfg->max_position_embeddings : k);
        toks += lens[i];
    }
    float **C = xcalloc((size_t)N, sizeof *C);
    for (int i = 0; i < N; i++) C[i] = xmalloc((size_t)F * F * sizeof(float));
    int64_t nt = 0;
    double t0 = now();
    CIS_ASSERT(memit_stats_compute(m, docs.n, (const int32_t *const *)seqs, lens, layers, N, C, &nt, NULL, NULL, &err) == 0);
    double ts = now() - t0;
    printf("  stats      %d docs, %ld tokens, %d layers: %.2f s = %.1f s per 10k documents (%.0f tokens/s)\n", docs.n,
           toks, N, ts, ts * 10000.0 / docs.n, toks / ts);

    /* one value step: 7 inputs of 24 tokens, ADD hook at L*, forward + backward */
    uint64_t s = 1;
    int T = 24;
    int32_t *ids = rand_ids(7 * T, V, &s), tg[7 * 24], pb[7], pt[7];
    for (int i = 0; i < 7 * T; i++) tg[i] = (i % T) >= T - 5 && (i % T) < T - 1 && i < 6 * T ? ids[i + 1] : LOSS_IGNORE_INDEX;
    for (int i = 0; i < 7; i++) { pb[i] = i; pt[i] = 8; }
    float *val = xcalloc((size_t)7 * D, sizeof *val), *g = xmalloc((size_t)7 * D * sizeof *g), *lg = xmalloc((size_t)V * sizeof *lg);
    float *dl = xcalloc((size_t)V, sizeof *dl);
    int32_t ob = 6, ot = 8;
    double best = 1e30;
    llama_model_freeze_all(m);
    for (int r = 0; r < reps; r++) {
        llama_hook h = {.layer = zl, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = 7, .pos_b = pb, .pos_t = pt,
                        .value = val, .grad = g};
        llama_batch b = {.B = 7, .T = T, .ids = ids, .targets = tg, .n_out = 1, .out_b = &ob, .out_t = &ot, .logits = lg};
        double t = now(), loss;
        CIS_ASSERT(llama_forward(m, &b, &h, 1, true, &loss, &err) == 0);
        CIS_ASSERT(llama_backward(m, 1.0f, dl, &err) == 0);
        t = now() - t;
        if (t < best) best = t;
    }
    double tv = best * 50 * (vsteps - 1);
    printf("  values     one step %.4f s -> 50 edits x %d updates: %.1f s (upper bound: early stops make it less)\n", best,
           vsteps - 1, tv);

    /* one key pass: 300 inputs of 16 tokens up to L*, reads at D and E */
    int KT = 16, NK = 300;
    int32_t *kids = rand_ids(NK * KT, V, &s);
    float *kr = xmalloc((size_t)NK * KT * F * sizeof *kr), *hr = xmalloc((size_t)NK * KT * D * sizeof *hr);
    best = 1e30;
    for (int r = 0; r < reps; r++) {
        llama_hook hk[2] = {{.layer = layers[0], .point = LLAMA_HOOK_D, .mode = LLAMA_HOOK_READ, .n_pos = -1, .read = kr},
                            {.layer = zl, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_READ, .n_pos = -1, .read = hr}};
        llama_batch b = {.B = NK, .T = KT, .ids = kids, .n_layers = zl + 1};
        double t = now();
        CIS_ASSERT(llama_forward(m, &b, hk, 2, false, NULL, &err) == 0);
        t = now() - t;
        if (t < best) best = t;
    }
    printf("  keys       one pass %.3f s -> %d passes: %.2f s\n", best, N + 1, best * (N + 1));

    /* one solve: F x F, u = 50, fp64 */
    double *Cd = xmalloc((size_t)F * F * sizeof *Cd), *K = xmalloc((size_t)F * 50 * sizeof *K);
    double *R = xmalloc((size_t)D * 50 * sizeof *R), *Dl = xmalloc((size_t)D * F * sizeof *Dl);
    for (size_t i = 0; i < (size_t)F * F; i++) Cd[i] = C[0][i];
    for (int i = 0; i < F * 50; i++) K[i] = (double)(rng_next(&s) % 1000) / 1000.0;
    for (int i = 0; i < D * 50; i++) R[i] = (double)(rng_next(&s) % 1000) / 1000.0;
    best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = now();
        if (memit_solve(Cd, K, R, F, 50, D, 15000.0 * F / 14336.0, Dl, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); break; }
        t = now() - t;
        if (t < best) best = t;
    }
    printf("  solve      one layer %.4f s -> %d layers: %.3f s\n", best, N, best * N);

    /* one FT-M step: 50 sequences of 20 tokens, down_proj of the edited layers trainable */
    int FT = 20;
    int32_t *fids = rand_ids(50 * FT, V, &s), *ftg = xmalloc((size_t)50 * FT * sizeof *ftg);
    for (int i = 0; i < 50 * FT; i++) ftg[i] = (i % FT) >= FT - 4 && (i % FT) < FT - 1 ? fids[i + 1] : LOSS_IGNORE_INDEX;
    for (int i = 0; i < N; i++) {
        char nm[96];
        snprintf(nm, sizeof nm, "model.layers.%d.mlp.down_proj.weight", layers[i]);
        llama_model_set_trainable(m, nm, -1, -1, true, &err);
    }
    best = 1e30;
    for (int r = 0; r < reps; r++) {
        llama_batch b = {.B = 50, .T = FT, .ids = fids, .targets = ftg};
        double t = now(), loss;
        llama_model_zero_grad(m);
        CIS_ASSERT(llama_forward(m, &b, NULL, 0, true, &loss, &err) == 0);
        CIS_ASSERT(llama_backward(m, 1.0f, NULL, &err) == 0);
        t = now() - t;
        if (t < best) best = t;
    }
    printf("  ft         one step %.3f s -> 25 steps: %.1f s\n", best, best * 25);
    llama_model_freeze_all(m);
    llama_model_set_trainable(m, "model.layers.*.self_attn.q_proj.weight", -1, -1, true, &err);
    llama_model_set_trainable(m, "model.layers.*.self_attn.v_proj.weight", -1, -1, true, &err);
    best = 1e30;
    for (int r = 0; r < reps; r++) {
        llama_batch b = {.B = 50, .T = FT, .ids = fids, .targets = ftg};
        double t = now(), loss;
        llama_model_zero_grad(m);
        CIS_ASSERT(llama_forward(m, &b, NULL, 0, true, &loss, &err) == 0);
        CIS_ASSERT(llama_backward(m, 1.0f, NULL, &err) == 0);
        t = now() - t;
        if (t < best) best = t;
    }
    printf("  lora       one step %.3f s (forward + backward; the factor projection and re-merge add little) -> 70 "
           "steps: %.1f s\n", best, best * 70);
    llama_model_freeze_all(m);
    for (int i = 0; i < docs.n; i++) free(seqs[i]);
    free(seqs); free(lens); text_docs_clear(&docs); free(cp);
    for (int i = 0; i < N; i++) free(C[i]);
    free(C); free(layers); free(ids); free(val); free(g); free(lg); free(dl); free(kids); free(kr); free(hr);
    free(Cd); free(K); free(R); free(Dl); free(fids); free(ftg);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_edit MODEL_DIR WORLD_DIR [threads] [reps] [values [B1,B2,...]]\n");
        return 2;
    }
    int threads = argc > 3 ? atoi(argv[3]) : 1, reps = argc > 4 ? atoi(argv[4]) : 3;
    cis_err err = {0};
    tokenizer *tok = NULL;
    if (tokenizer_load(argv[1], &tok, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    llama_config cfg;
    char *cj = xasprintf("%s/config.json", argv[1]);
    if (llama_config_load(cj, &cfg, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    free(cj);
    backend *be = backend_open("cpu", &(backend_opts){.threads = threads}, &err);
    llama_model *m = llama_model_new(&cfg, be, &err);
    if (!m || llama_model_load(m, argv[1], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (argc > 5 && !strcmp(argv[5], "values")) {
        printf("# bench_edit values: %d thread(s)\n", threads);
        bench_values(m, tok, argv[2], argc > 6 ? argv[6] : NULL);
        llama_model_free(&m);
        backend_close(&be);
        tokenizer_free(tok);
        return 0;
    }
    printf("# bench_edit: %d thread(s), best of %d\n", threads, reps);
    bench("default model", m, tok, argv[2], reps, 2000);
    llama_model_free(&m);
    llama_config c = cfg;
    c.hidden_size = 768; c.num_hidden_layers = 12; c.num_attention_heads = 12; c.num_key_value_heads = 4;
    c.head_dim = 64; c.intermediate_size = 2048; c.max_position_embeddings = 256;
    m = llama_model_new(&c, be, &err);
    if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
    llama_model_init_random(m, 1);
    bench("100M shape (random weights)", m, tok, argv[2], reps, 200);
    llama_model_free(&m);
    backend_close(&be);
    tokenizer_free(tok);
    return 0;
}
