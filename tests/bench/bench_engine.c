/* bench_engine.c - CPU engine throughput for ~1M, ~10M and ~100M-parameter Llama shapes:
 * forward tokens/s and training-step (forward + backward + AdamW over every parameter) tokens/s,
 * next to OpenBLAS cblas_sgemm GFLOP/s measured in the same run on the model's own GEMM shapes.
 * The model's matmul FLOPs (linear layers, attention score/context GEMMs, head) divided by the
 * wall time of the whole step give "model GFLOP/s", printed as a fraction of sgemm's rate.
 * Times are the fastest of n passes and sgemm the best of several windows before and after, so
 * that a shared machine's load shows up as little as possible.
 * Decoding: greedy llama_generate from an 8-token prompt at batch 1 and 8 (the model has no EOS,
 * so every row runs to the end); decode tokens/s = new tokens / (time - the prefill's time), the
 * fastest of 3; next to it the linear layers' M=1 forward (the backend's linear_fwd) and a plain
 * M=1 cblas_sgemm on the same weights, per token (the whole stack's projections and head).
 * Built by `make tests-build`, not run by `make test`.
 * Usage: bench_engine [-d cpu|cuda:0] [-t threads] [-s 1m,10m,100m,tiny] [-n steps] [-g]
 *        (default: cpu, all cores, 1m,10m,100m; tiny = the embedded default's shape, untied; on cuda:0 "sgemm" is cuBLAS fp32; -g: decoding only) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/engine/model.h"
#include "worker/engine/optim.h"

typedef struct shape {
    const char *name;
    int D, L, H, Hkv, Dh, F, V, B, T, steps;
    bool tied;
} shape;

static const shape SHAPES[] = {
    {"1m", 128, 4, 4, 2, 32, 384, 2048, 8, 128, 6, true},
    {"10m", 256, 10, 8, 4, 32, 768, 8192, 4, 256, 4, true},
    {"100m", 768, 12, 12, 4, 64, 2048, 32000, 2, 256, 2, true},
    {"tiny", 64, 10, 4, 2, 16, 192, 2048, 8, 128, 10, false},  // the embedded default (tiny-llama3); only with -s tiny
};

static llama_config make_config(const shape *s) {
    llama_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab_size = s->V; c.hidden_size = s->D; c.intermediate_size = s->F; c.num_hidden_layers = s->L;
    c.num_attention_heads = s->H; c.num_key_value_heads = s->Hkv; c.head_dim = s->Dh;
    c.max_position_embeddings = 2048; c.rms_norm_eps = 1e-5f; c.rope_theta = 10000.0f;
    c.tie_word_embeddings = s->tied; c.bos_token_id = 1; c.n_eos = 0; c.pad_token_id = -1;  // no EOS: decoding runs to the end
    return c;
}

/* matmul FLOPs of one forward over B*T tokens (full-length sequences); attention counts the causal
 * half T(T+1)/2 of the score block (the blocked kernel executes a little more, never less) */
static double fwd_flops(const shape *s) {
    double N = (double)s->B * s->T, q = (double)s->H * s->Dh, kv = (double)s->Hkv * s->Dh;
    double lin = 2.0 * N * ((double)s->D * (q + 2 * kv) + q * s->D + 3.0 * s->D * s->F);
    double att = 2.0 * 2.0 * s->B * s->H * ((double)s->T * (s->T + 1) / 2) * s->Dh;
    double head = 2.0 * N * s->D * s->V;
    return s->L * (lin + att) + head;
}
/* training step: linear and head GEMMs 3x (forward, dx, dW), attention 3x (2 forward + 4 backward GEMMs) */
static double train_flops(const shape *s) { return 3.0 * fwd_flops(s); }

/* sgemm GFLOP/s on y[M,N] = x[M,K] · W[N,K]ᵀ (the linear layer layout): the best of 5 windows
 * of >= 0.1 s (a shared machine's noise only ever slows a window down) */
static backend *g_be;  /* the instance every model of the run uses */

static double sgemm_rate(backend *be, int M, int N, int K) {
    float *hx = xmalloc((size_t)M * K * sizeof(float)), *hW = xmalloc((size_t)N * K * sizeof(float));
    for (size_t i = 0; i < (size_t)M * K; i++) hx[i] = (float)((i * 37 % 101) - 50) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) hW[i] = (float)((i * 53 % 97) - 48) * 0.01f;
    float *x = backend_alloc(be, (size_t)M * K * sizeof(float), NULL), *W = backend_alloc(be, (size_t)N * K * sizeof(float), NULL),
          *y = backend_alloc(be, (size_t)M * N * sizeof(float), NULL);
    CIS_ASSERT(x && W && y);
    backend_upload(be, x, hx, (size_t)M * K * sizeof(float));
    backend_upload(be, W, hW, (size_t)N * K * sizeof(float));
    free(hx); free(hW);
    BE(be, linear_fwd, y, x, W, TENSOR_F32, M, K, N, false);  // warm-up
    backend_synchronize(be);
    double flop = 2.0 * M * N * K, best = 0;
    for (int w = 0; w < 5; w++) {
        double t0 = mono_sec(), el;
        int reps = 0;
        do {
            BE(be, linear_fwd, y, x, W, TENSOR_F32, M, K, N, false);
            backend_synchronize(be);
            reps++;
            el = mono_sec() - t0;
        } while (el < 0.1 && reps < 100);
        double r = flop * reps / el / 1e9;
        best = r > best ? r : best;
    }
    backend_free(be, x); backend_free(be, W); backend_free(be, y);
    return best;
}

/* seconds of llama_generate for B rows of an 8-token prompt to max_length tokens (fastest of 3) */
static double gen_time(llama_model *m, int B, int max_length) {
    enum { P = 8 };
    int32_t pr[8][P], *out = xmalloc((size_t)B * max_length * sizeof *out);
    const int32_t *pp[8];
    int pl[8], ol[8];
    int V = llama_model_config(m)->vocab_size;
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < P; t++) pr[b][t] = (int32_t)((b * 131 + t * 7919 + 17) % V);
        pp[b] = pr[b];
        pl[b] = P;
    }
    double best = 1e30;
    cis_err err = {0};
    for (int r = 0; r < 3; r++) {
        double t0 = mono_sec();
        if (llama_generate(m, B, pp, pl, max_length, out, ol, &err) != 0) { fprintf(stderr, "%s\n", err.msg); exit(1); }
        double el = mono_sec() - t0;
        best = el < best ? el : best;
    }
    free(out);
    return best;
}

/* seconds per token of the stack's linear layers (q, k, v, o, gate, up, down x L, and the head) at
 * M = 1, through the backend's linear_fwd (sgemm = false) or a plain cblas-style sgemm on the same
 * weights through the backend's gemm (sgemm = true) */
static double linear_m1_time(backend *be, const shape *s, bool sgemm) {
    int q = s->H * s->Dh, kv = s->Hkv * s->Dh;
    int io[8][2] = {{s->D, q}, {s->D, kv}, {s->D, kv}, {q, s->D}, {s->D, s->F}, {s->D, s->F}, {s->F, s->D}, {s->D, s->V}};
    double total = 0;
    for (int k = 0; k < 8; k++) {
        int in = io[k][0], out = io[k][1];
        float *x = backend_alloc(be, (size_t)in * sizeof(float), NULL), *W = backend_alloc(be, (size_t)in * out * sizeof(float), NULL),
              *y = backend_alloc(be, (size_t)out * sizeof(float), NULL);
        CIS_ASSERT(x && W && y);
        backend_memset(be, x, 0, (size_t)in * sizeof(float));
        backend_memset(be, W, 0, (size_t)in * out * sizeof(float));
        double best = 1e30;
        for (int w = 0; w < 3; w++) {
            int reps = 0;
            double t0 = mono_sec(), el;
            do {
                if (sgemm) BE(be, gemm, false, true, 1, out, in, 1.0f, x, in, W, in, 0.0f, y, out);
                else BE(be, linear_fwd, y, x, W, TENSOR_F32, 1, in, out, false);
                backend_synchronize(be);
                reps++;
                el = mono_sec() - t0;
            } while (el < 0.05 && reps < 1000);
            best = el / reps < best ? el / reps : best;
        }
        total += best * (k == 7 ? 1 : s->L);
        backend_free(be, x); backend_free(be, W); backend_free(be, y);
    }
    return total;
}

static void run_decode(const shape *s) {
    llama_config c = make_config(s);
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, g_be, &err);
    if (!m) { fprintf(stderr, "%s: %s\n", s->name, err.msg); return; }
    llama_model_init_random(m, 1);
    int G = s->D >= 768 ? 24 : s->D >= 256 ? 56 : 120;  // new tokens per row
    for (int B = 1; B <= 8; B *= 8) {
        double tp = gen_time(m, B, 9), tg = gen_time(m, B, 8 + G);  // prefill (+ its one token), all
        double dec = (tg - tp) / (G - 1);
        printf("      decode B=%d %8.1f tok/s  (%.2f ms per step; prefill %.2f ms)\n", B, B / dec, dec * 1e3, tp * 1e3);
    }
    backend *be = llama_model_backend(m);
    printf("      M=1 linear layers per token: linear_fwd %.2f ms, sgemm %.2f ms\n", linear_m1_time(be, s, false) * 1e3,
           linear_m1_time(be, s, true) * 1e3);
    fflush(stdout);
    llama_model_free(&m);
}

static int run_shape(const shape *s, int steps) {
    llama_config c = make_config(s);
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, g_be, &err);
    if (!m) { fprintf(stderr, "%s: %s\n", s->name, err.msg); return -1; }
    backend *be = llama_model_backend(m);
    llama_model_init_random(m, 1);
    int N = s->B * s->T;
    int32_t *ids = xmalloc((size_t)N * sizeof *ids), *tg = xmalloc((size_t)N * sizeof *tg);
    for (int i = 0; i < N; i++) ids[i] = (int32_t)((i * 7919u + 17u) % (unsigned)s->V);
    for (int i = 0; i < N; i++) tg[i] = (i % s->T) + 1 < s->T ? ids[i + 1] : LOSS_IGNORE_INDEX;
    llama_batch bt = {.B = s->B, .T = s->T, .ids = ids, .targets = tg};
    double loss;
    // sgemm on the model's shapes: MLP (N x F x D), attention projections (N x D x D), head (N x V x D)
    double r_mlp = sgemm_rate(be, N, s->F, s->D), r_proj = sgemm_rate(be, N, s->D, s->D);
    double r_head = sgemm_rate(be, N, s->V, s->D);
    double r_ref = (r_mlp + r_proj + r_head) / 3.0;
    // forward: the fastest of `steps` timed passes (after a warm-up)
    llama_forward(m, &bt, NULL, 0, false, &loss, &err);
    double tf = 1e30;
    for (int i = 0; i < steps; i++) {
        double t0 = mono_sec();
        if (llama_forward(m, &bt, NULL, 0, false, &loss, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return -1; }
        double el = mono_sec() - t0;
        tf = el < tf ? el : tf;
    }
    // training step over every parameter: the fastest of `steps` steps after a warm-up step
    llama_model_set_trainable(m, NULL, -1, -1, true, &err);
    optim_config oc = optim_config_default(ADAM_TORCH_ADAMW);
    optim *o = llama_model_optim_new(m, &oc, &err);
    double tt = 1e30, t_f = 0, t_b = 0, t_o = 0;
    for (int i = 0; i <= steps; i++) {
        double t1 = mono_sec();
        llama_model_zero_grad(m);
        if (llama_forward(m, &bt, NULL, 0, true, &loss, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return -1; }
        double t2 = mono_sec();
        if (llama_backward(m, 1.0f, NULL, &err) != 0) { fprintf(stderr, "%s\n", err.msg); return -1; }
        backend_synchronize(be);
        double t3 = mono_sec();
        optim_step(o, -1);
        backend_synchronize(be);
        double t4 = mono_sec();
        if (i && t4 - t1 < tt) { tt = t4 - t1; t_f = t2 - t1; t_b = t3 - t2; t_o = t4 - t3; }
    }
    // sgemm again after the model: the reference is the better of the two measurements
    r_mlp = fmax(r_mlp, sgemm_rate(be, N, s->F, s->D));
    r_proj = fmax(r_proj, sgemm_rate(be, N, s->D, s->D));
    r_head = fmax(r_head, sgemm_rate(be, N, s->V, s->D));
    r_ref = (r_mlp + r_proj + r_head) / 3.0;
    double gf = fwd_flops(s) / tf / 1e9, gt = train_flops(s) / tt / 1e9;
    printf("%-5s params %6.2fM  B=%d T=%-4d | sgemm GFLOP/s: mlp %.1f proj %.1f head %.1f (mean %.1f)\n", s->name,
           llama_model_numel(m) / 1e6, s->B, s->T, r_mlp, r_proj, r_head, r_ref);
    printf("      forward   %8.0f tok/s  %6.1f GFLOP/s = %3.0f%% of sgemm\n", N / tf, gf, 100.0 * gf / r_ref);
    printf("      train     %8.0f tok/s  %6.1f GFLOP/s = %3.0f%% of sgemm   (fwd+bwd+AdamW, loss %.3f)\n", N / tt,
           gt, 100.0 * gt / r_ref, loss);
    printf("      best step: forward %.3f s, backward %.3f s, AdamW %.3f s\n", t_f, t_b, t_o);
    fflush(stdout);
    optim_free(&o);
    llama_model_free(&m);
    free(ids); free(tg);
    return 0;
}

int main(int argc, char **argv) {
    int threads = 0, steps = 0;
    bool decode_only = false;
    const char *device = "cpu";
    const char *sizes = "1m,10m,100m";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) sizes = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-d") && i + 1 < argc) device = argv[++i];
        else if (!strcmp(argv[i], "-g")) decode_only = true;
        else { fprintf(stderr, "usage: %s [-d cpu|cuda:0] [-t threads] [-s 1m,10m,100m] [-n steps] [-g]\n", argv[0]); return 2; }
    }
    cis_err err = {0};
    backend *be = g_be = backend_open(device, &(backend_opts){.threads = threads}, &err);
    if (!be) { fprintf(stderr, "bench_engine: %s\n", err.msg); return 2; }
    printf("bench_engine: %s backend, %d threads\n", backend_name(be), backend_threads(be));
    int rc = 0;
    for (size_t k = 0; k < sizeof SHAPES / sizeof SHAPES[0]; k++) {
        char key[16];
        snprintf(key, sizeof key, "%s", SHAPES[k].name);
        const char *p = strstr(sizes, key);
        size_t kl = strlen(key);
        if (!p || (p != sizes && p[-1] != ',') || (p[kl] != '\0' && p[kl] != ',')) continue;
        if (!decode_only && run_shape(&SHAPES[k], steps > 0 ? steps : SHAPES[k].steps) != 0) rc = 1;
        if (decode_only) printf("%-5s\n", SHAPES[k].name);
        run_decode(&SHAPES[k]);
    }
    return rc;
}
