/* bench_compress.c - time per compressor and phase (calibrate, statistics, solve, write_back, as the
 * stage record reports them) on the CPU, next to each phase's roofline floor: its matmul FLOPs
 * divided by cblas sgemm's rate measured in the same run on the model's linear shape. Shapes: the
 * embedded default (a trained tiny-llama3 directory) and the ~100M shape of bench_engine (random
 * weights, the default world's tokenizer; calibration ids < 2048 fit its vocabulary).
 * Every floor uses the best sgemm rate measured in the shape's run (before and after each method).
 * FLOP model (per layer, N = windows x T calibration tokens, widths D, q = H·Dh, kv, F):
 *   one layer forward   2N(D(q+2kv) + qD + 3DF) + 4·n_seq·H·T(T+1)/2·Dh
 *   statistics          forwards (Wanda/SparseGPT 1, GPTQ 4 true-sequential passes, AWQ 21: the
 *                       collection, 20 qkv grid points through the layer, the kept output) plus the
 *                       Hessians 2N(D² + q² + D² + F²) (GPTQ/SparseGPT)
 *   solve               per linear m×k: inverse and factor ≈ (4/3)k³, the sweep 2mk², the layer-error
 *                       diagnostics 4mk² (GPTQ/SparseGPT); AWQ: 20 grid points of the MLP (6NDF) and of
 *                       down_proj (2NFD), the clip search 10·2·512·Σmk
 *   write_back          one forward (the next layer's input; AWQ keeps the output: no forward)
 * Built by `make tests-build`, never run by `make test` (numbers go in docs/compression.md).
 * Usage: bench_compress MODEL_DIR WORLD_DIR [-s default,100m] [-m wanda,sparsegpt,gptq,awq]
 *                       [-n windows] [-T seqlen] [-t threads] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/tokenizer.h"
#include "worker/interventions/intervention.h"

static double sgemm_rate(backend *be, int M, int N, int K) {
    float *x = xmalloc((size_t)M * K * sizeof(float)), *W = xmalloc((size_t)N * K * sizeof(float)),
          *y = xmalloc((size_t)M * N * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++) x[i] = (float)((i * 37 % 101) - 50) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) W[i] = (float)((i * 53 % 97) - 48) * 0.01f;
    BE(be, linear_fwd, y, x, W, TENSOR_F32, M, K, N, false);
    double flop = 2.0 * M * N * K, best = 0;
    for (int w = 0; w < 5; w++) {
        double t0 = mono_sec(), el;
        int reps = 0;
        do { BE(be, linear_fwd, y, x, W, TENSOR_F32, M, K, N, false); reps++; el = mono_sec() - t0; } while (el < 0.1 && reps < 100);
        double r = flop * reps / el / 1e9;
        best = r > best ? r : best;
    }
    free(x); free(W); free(y);
    return best;
}

typedef struct flops { double stat, solve, wb; } flops;

static flops model_flops(const llama_config *c, const char *method, int n_seq, int T) {
    double N = (double)n_seq * T, D = c->hidden_size, F = c->intermediate_size, q = (double)c->num_attention_heads * c->head_dim,
           kv = (double)c->num_key_value_heads * c->head_dim;
    double fwd = 2 * N * (D * (q + 2 * kv) + q * D + 3 * D * F) + 4.0 * n_seq * c->num_attention_heads * (T * (T + 1.0) / 2) * c->head_dim;
    double hess = 2 * N * (D * D + q * q + D * D + F * F);
    /* linears m x k: q,k,v,o,gate,up,down */
    double mk[7][2] = {{q, D}, {kv, D}, {kv, D}, {D, q}, {F, D}, {F, D}, {D, F}};
    double obs = 0, clip = 0, mksum = 0;
    for (int i = 0; i < 7; i++) {
        double m = mk[i][0], k = mk[i][1];
        obs += 4.0 / 3 * k * k * k + 2 * m * k * k + 4 * m * k * k;
        if (i >= 2) clip += 10.0 * 2 * (N < 512 ? N : 512) * m * k;
        mksum += m * k;
    }
    (void)mksum;
    flops f = {0};
    if (!strcmp(method, "wanda")) f = (flops){fwd, 0, fwd};
    else if (!strcmp(method, "sparsegpt")) f = (flops){fwd + hess, obs, fwd};
    else if (!strcmp(method, "gptq")) f = (flops){4 * fwd + hess, obs, fwd};
    else f = (flops){21 * fwd, 20 * (6 * N * D * F + 2 * N * F * D) + clip, 0};
    int L = c->num_hidden_layers;
    f.stat *= L; f.solve *= L; f.wb *= L;
    return f;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL_DIR WORLD_DIR [-s default,100m] [-m methods] [-n windows] [-T seqlen] [-t threads]\n", argv[0]); return 2; }
    const char *model_dir = argv[1], *world = argv[2], *sizes = "default,100m", *methods = "wanda,sparsegpt,gptq,awq";
    int n_samples = 128, seqlen = 0, threads = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc) sizes = argv[++i];
        else if (!strcmp(argv[i], "-m") && i + 1 < argc) methods = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) n_samples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-T") && i + 1 < argc) seqlen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    cis_err err = {0};
    backend *be = backend_open("cpu", &(backend_opts){.threads = threads}, &err);
    tokenizer *tok = NULL;
    if (!be || tokenizer_load(model_dir, &tok, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    printf("| shape | method | phase | seconds | GFLOP | sgemm GFLOP/s | floor s | x floor |\n|---|---|---|---|---|---|---|---|\n");
    char sz[64];
    snprintf(sz, sizeof sz, "%s", sizes);
    for (char *sv = NULL, *s = strtok_r(sz, ",", &sv); s; s = strtok_r(NULL, ",", &sv)) {
        llama_config c;
        llama_model *base = NULL;
        if (!strcmp(s, "default")) {
            char p[4096];
            snprintf(p, sizeof p, "%s/config.json", model_dir);
            if (llama_config_load(p, &c, &err) || !(base = llama_model_new(&c, be, &err)) || llama_model_load(base, model_dir, &err)) {
                fprintf(stderr, "%s\n", err.msg); return 1;
            }
        } else {
            memset(&c, 0, sizeof c);
            snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
            snprintf(c.model_type, sizeof c.model_type, "llama");
            c.vocab_size = 32000; c.hidden_size = 768; c.intermediate_size = 2048; c.num_hidden_layers = 12;
            c.num_attention_heads = 12; c.num_key_value_heads = 4; c.head_dim = 64; c.max_position_embeddings = 2048;
            c.rms_norm_eps = 1e-5f; c.rope_theta = 500000.0f; c.tie_word_embeddings = true; c.bos_token_id = 1;
            c.eos_token_ids[0] = 2; c.n_eos = 1; c.pad_token_id = -1;
            if (!(base = llama_model_new(&c, be, &err))) { fprintf(stderr, "%s\n", err.msg); return 1; }
            llama_model_init_random(base, 1);
        }
        llama_model *m = llama_model_new(&c, be, &err);
        CIS_ASSERT(m);
        int T = seqlen > 0 ? seqlen : (c.max_position_embeddings < 8192 ? c.max_position_embeddings : 8192);
        double rate = sgemm_rate(be, 8 * (T < 512 ? T : 512), c.intermediate_size, c.hidden_size);
        char ms[128], rows[64][256];
        int nrows = 0;
        double rows_sec[64], rows_fl[64];
        snprintf(ms, sizeof ms, "%s", methods);
        for (char *mv = NULL, *meth = strtok_r(ms, ",", &mv); meth; meth = strtok_r(NULL, ",", &mv)) {
            CIS_ASSERT(llama_model_copy_params(m, base, &err) == 0);
            bool q = !strcmp(meth, "gptq") || !strcmp(meth, "awq");
            int awq_T = T < 512 ? T : 512;
            char stage[256];
            snprintf(stage, sizeof stage, "[{\"method\":\"%s\",\"params\":{\"%s\":%s}}]", meth, q ? "bits" : "sparsity",
                     q ? "4" : "0.5");
            json_t *comp = json_loads(stage, 0, NULL), *records = NULL;
            interv_plan plan;
            if (interv_plan_build(comp, "bench", INTERV_EXACT, &plan, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            /* the calibration size: keys the presets keep when present (not grid parameters) */
            json_object_set_new(plan.steps[0].params, "n_samples", json_integer(n_samples));
            json_object_set_new(plan.steps[0].params, "seqlen", json_integer(!strcmp(meth, "awq") ? awq_T : T));
            interv_env env = {.model = m, .tok = tok, .data_dir = world, .edit_set = 1, .threads = threads > 0 ? threads : 2};
            double t0 = mono_sec();
            if (interv_run_plan(&env, &plan, &records, &err)) { fprintf(stderr, "%s: %s\n", meth, err.msg); return 1; }
            double wall = mono_sec() - t0;
            /* sgemm again after the method: the best of before and after (a shared machine's load only
             * ever slows a window down) */
            double r2 = sgemm_rate(be, 8 * (T < 512 ? T : 512), c.intermediate_size, c.hidden_size);
            if (r2 > rate) rate = r2;
            json_t *st = json_array_get(records, 0), *ph = json_object_get(st, "phases_s"), *rec = json_object_get(st, "record");
            json_t *nw = json_object_get(rec, "calib_windows");
            if (!nw) nw = json_object_get(rec, "calib_blocks");
            int n_seq = (int)json_integer_value(nw), Tr = (int)json_integer_value(json_object_get(rec, "calib_seqlen"));
            flops f = model_flops(&c, meth, n_seq, Tr);
            const char *phases[4] = {"calibrate", "statistics", "solve", "write_back"};
            double fl[4] = {0, f.stat, f.solve, f.wb};
            for (int i = 0; i < 4 && nrows < 63; i++, nrows++) {
                snprintf(rows[nrows], sizeof rows[nrows], "| %s | %s | %s", s, meth, phases[i]);
                rows_sec[nrows] = json_real_value(json_object_get(ph, phases[i]));
                rows_fl[nrows] = fl[i];
            }
            snprintf(rows[nrows], sizeof rows[nrows], "| %s | %s | total (%d x %d tokens)", s, meth, n_seq, Tr);
            rows_sec[nrows] = wall;
            rows_fl[nrows++] = -1;
            fflush(stdout);
            json_decref(records);
            json_decref(comp);
            interv_plan_clear(&plan);
        }
        /* every floor against the best sgemm rate seen in this shape's run */
        for (int i = 0; i < nrows; i++) {
            if (rows_fl[i] < 0) { printf("%s | %.2f | | | | |\n", rows[i], rows_sec[i]); continue; }
            double floor_s = rows_fl[i] / 1e9 / rate;
            char ratio[32] = "-";
            if (floor_s > 0) snprintf(ratio, sizeof ratio, "%.1f", rows_sec[i] / floor_s);
            printf("%s | %.2f | %.2f | %.1f | %.3f | %s |\n", rows[i], rows_sec[i], rows_fl[i] / 1e9, rate, floor_s, ratio);
        }
        fflush(stdout);
        llama_model_free(&m);
        llama_model_free(&base);
    }
    tokenizer_free(tok);
    backend_close(&be);
    return 0;
}
