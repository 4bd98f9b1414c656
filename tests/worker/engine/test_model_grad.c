/* test_model_grad.c - the whole llama_model against an independent fp64 reference forward written
 * here (embedding, RMSNorm, RoPE, GQA attention with causal + padding masks, SwiGLU, tied or
 * untied head, mean cross-entropy with ignore index, an additive hook): logits and loss agree to
 * 1e-5; gradients w.r.t. parameters and hooked activations agree with central differences of the
 * fp64 loss; padding invariance; KV-cache generation equals argmax of a full recomputation token
 * by token; log-likelihoods; determinism; bad input is refused. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"

#include "worker/engine/model.h"
#include "worker/engine/optim.h"

static backend *tbe;  /* one-thread cpu instance shared by the tests' models */


// ---------------------------------------------------------------------------------------------
// configs

static llama_config tiny_config(bool tied, bool llama3) {
    llama_config c;
    memset(&c, 0, sizeof c);
    c.arch = LLAMA_ARCH_LLAMA;
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    c.vocab_size = 37;
    c.hidden_size = 16;
    c.intermediate_size = 24;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 4;
    c.max_position_embeddings = 64;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    if (llama3) {
        c.rope_scaling = LLAMA_ROPE_LLAMA3;
        c.rope_factor = 8.0f;
        c.rope_low_freq_factor = 1.0f;
        c.rope_high_freq_factor = 4.0f;
        c.rope_original_max_pos = 16;
    }
    c.tie_word_embeddings = tied;
    c.bos_token_id = 1;
    c.eos_token_ids[0] = 2;
    c.n_eos = 1;
    c.pad_token_id = -1;
    return c;
}

static llama_model *tiny_model(bool tied, bool llama3, uint64_t seed) {
    llama_config c = tiny_config(tied, llama3);
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, tbe, &err);
    if (!m) { fprintf(stderr, "model: %s\n", err.msg); return NULL; }
    llama_model_init_random(m, seed);
    // larger weights than N(0, .02) so that attention and the MLP are far from linear
    int n;
    llama_param *p = llama_model_params(m, &n);
    uint64_t s = seed * 7 + 1;
    for (int i = 0; i < n; i++) {
        int64_t k = p[i].shape[0] * p[i].shape[1];
        for (int64_t j = 0; j < k; j++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            double u = ((s >> 11) * (1.0 / 9007199254740992.0)) - 0.5;
            p[i].data[j] = p[i].ndim == 1 ? (float)(1.0 + 0.5 * u) : (float)(p[i].data[j] * 15.0 + 0.1 * u);
        }
    }
    return m;
}

// ---------------------------------------------------------------------------------------------
// fp64 reference model

typedef struct ref_hook { int layer, point, n; const int32_t *rb, *rt; const double *delta; } ref_hook;

static double ref_inv_freq(const llama_config *c, int i) {
    double inv = 1.0 / pow(c->rope_theta, (2.0 * i) / c->head_dim);
    if (c->rope_scaling != LLAMA_ROPE_LLAMA3) return inv;
    double wl = 2 * M_PI / inv, lo = c->rope_original_max_pos / c->rope_low_freq_factor,
           hi = c->rope_original_max_pos / c->rope_high_freq_factor;
    if (wl < hi) return inv;
    if (wl > lo) return inv / c->rope_factor;
    double s = (c->rope_original_max_pos / wl - c->rope_low_freq_factor) / (c->rope_high_freq_factor - c->rope_low_freq_factor);
    return (1 - s) * inv / c->rope_factor + s * inv;
}

static void r_rms(double *out, const double *x, const double *w, int N, int D, double eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += x[n * D + i] * x[n * D + i];
        double r = 1 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++) out[n * D + i] = w[i] * x[n * D + i] * r;
    }
}
static void r_lin(double *y, const double *x, const double *W, int N, int in, int out) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < in; i++) s += x[n * in + i] * W[o * in + i];
            y[n * out + o] = s;
        }
}
static void r_rope(double *x, const llama_config *c, int N, int T, int nh) {
    int Dh = c->head_dim, half = Dh / 2;
    for (int n = 0; n < N; n++) {
        int p = n % T;
        for (int h = 0; h < nh; h++)
            for (int i = 0; i < half; i++) {
                double a = p * ref_inv_freq(c, i), *r = x + (n * nh + h) * Dh;
                double x1 = r[i], x2 = r[i + half];
                r[i] = x1 * cos(a) - x2 * sin(a);
                r[i + half] = x2 * cos(a) + x1 * sin(a);
            }
    }
}
static void r_hook(double *act, const ref_hook *hk, int l, int point, int T, int width) {
    if (!hk || hk->layer != l || hk->point != point) return;
    for (int i = 0; i < hk->n; i++) {
        int row = hk->rb ? hk->rb[i] * T + hk->rt[i] : i;
        for (int j = 0; j < width; j++) act[row * width + j] += hk->delta[i * width + j];
    }
}

/* P[i]: parameter i in llama_model_params order as doubles. Returns the mean CE over targets
 * (t < len, != -100); logits [B*T, V] and the activation read at (read_layer, read_point) if asked. */
static double ref_forward(const llama_config *c, double **P, int B, int T, const int32_t *ids, const int32_t *lens,
                          const int32_t *tg, const ref_hook *hk, double *logits, int read_layer, int read_point,
                          double *read) {
    const int D = c->hidden_size, F = c->intermediate_size, H = c->num_attention_heads, Hkv = c->num_key_value_heads;
    const int Dh = c->head_dim, V = c->vocab_size, L = c->num_hidden_layers, N = B * T, qd = H * Dh, kd = Hkv * Dh;
    double *x = calloc(N * D, 8), *a = calloc(N * D, 8), *q = calloc(N * qd, 8), *k = calloc(N * kd, 8),
           *v = calloc(N * kd, 8), *ctx = calloc(N * qd, 8), *t1 = calloc(N * D, 8), *g = calloc(N * F, 8),
           *u = calloc(N * F, 8), *lg = calloc(N * V, 8);
    for (int n = 0; n < N; n++) {
        int id = (n % T) < lens[n / T] ? ids[n] : 0;
        memcpy(x + n * D, P[0] + id * D, D * 8);
    }
    for (int l = 0; l < L; l++) {
        double **W = P + 1 + l * 9;
        r_rms(a, x, W[7], N, D, c->rms_norm_eps);
        r_hook(a, hk, l, 0, T, D);
        if (read && read_layer == l && read_point == 0) memcpy(read, a, N * D * 8);
        r_lin(q, a, W[0], N, D, qd);
        r_lin(k, a, W[1], N, D, kd);
        r_lin(v, a, W[2], N, D, kd);
        r_rope(q, c, N, T, H);
        r_rope(k, c, N, T, Hkv);
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int t = 0; t < T; t++) {
                    double s[64], mx = -1e300, z = 0;
                    int nv = t + 1 < lens[b] ? t + 1 : lens[b];
                    for (int j = 0; j < nv; j++) {
                        double d = 0;
                        for (int i = 0; i < Dh; i++) d += q[((b * T + t) * H + h) * Dh + i] * k[((b * T + j) * Hkv + h / (H / Hkv)) * Dh + i];
                        s[j] = d / sqrt((double)Dh);
                        mx = s[j] > mx ? s[j] : mx;
                    }
                    for (int j = 0; j < nv; j++) z += exp(s[j] - mx);
                    double *o = ctx + ((b * T + t) * H + h) * Dh;
                    for (int i = 0; i < Dh; i++) o[i] = 0;
                    for (int j = 0; j < nv; j++)
                        for (int i = 0; i < Dh; i++) o[i] += exp(s[j] - mx) / z * v[((b * T + j) * Hkv + h / (H / Hkv)) * Dh + i];
                }
        r_hook(ctx, hk, l, 1, T, qd);
        if (read && read_layer == l && read_point == 1) memcpy(read, ctx, N * qd * 8);
        r_lin(t1, ctx, W[3], N, qd, D);
        for (int i = 0; i < N * D; i++) x[i] += t1[i];  // x = h2
        r_rms(a, x, W[8], N, D, c->rms_norm_eps);
        r_hook(a, hk, l, 2, T, D);
        if (read && read_layer == l && read_point == 2) memcpy(read, a, N * D * 8);
        r_lin(g, a, W[4], N, D, F);
        r_lin(u, a, W[5], N, D, F);
        for (int i = 0; i < N * F; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
        r_hook(g, hk, l, 3, T, F);
        if (read && read_layer == l && read_point == 3) memcpy(read, g, N * F * 8);
        r_lin(t1, g, W[6], N, F, D);
        for (int i = 0; i < N * D; i++) x[i] += t1[i];
        r_hook(x, hk, l, 4, T, D);
        if (read && read_layer == l && read_point == 4) memcpy(read, x, N * D * 8);
    }
    r_rms(a, x, P[1 + L * 9], N, D, c->rms_norm_eps);
    r_lin(lg, a, c->tie_word_embeddings ? P[0] : P[2 + L * 9], N, D, V);
    double tot = 0;
    int cnt = 0;
    for (int n = 0; tg && n < N; n++) {
        if ((n % T) >= lens[n / T] || tg[n] == -100) continue;
        double mx = -1e300, z = 0;
        for (int j = 0; j < V; j++) mx = lg[n * V + j] > mx ? lg[n * V + j] : mx;
        for (int j = 0; j < V; j++) z += exp(lg[n * V + j] - mx);
        tot += mx + log(z) - lg[n * V + tg[n]];
        cnt++;
    }
    if (logits) memcpy(logits, lg, N * V * 8);
    free(x); free(a); free(q); free(k); free(v); free(ctx); free(t1); free(g); free(u); free(lg);
    return cnt ? tot / cnt : 0;
}

static double **params_to_d(llama_model *m) {
    int n;
    llama_param *p = llama_model_params(m, &n);
    double **P = calloc(n + 1, sizeof *P);
    for (int i = 0; i < n; i++) {
        int64_t k = p[i].shape[0] * p[i].shape[1];
        P[i] = malloc(k * 8);
        for (int64_t j = 0; j < k; j++) P[i][j] = p[i].data[j];
    }
    if (llama_model_config(m)->tie_word_embeddings) P[n] = P[0];  // unused slot
    return P;
}
static void free_pd(llama_model *m, double **P) {
    int n;
    llama_model_params(m, &n);
    for (int i = 0; i < n; i++) free(P[i]);
    free(P);
}

static double max_rel(const float *a, const double *b, int64_t n) {
    double num = 0, den = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        num = fmax(num, fabs(a[i] - b[i]));
        den = fmax(den, fabs(b[i]));
    }
    return num / den;
}

// a padded batch: B=3, T=7, lengths 7, 4, 5
#define BB 3
#define TT 7
static int32_t g_ids[BB * TT], g_lens[BB] = {7, 4, 5}, g_tg[BB * TT];
static void make_batch(void) {
    uint64_t s = 99;
    for (int i = 0; i < BB * TT; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        g_ids[i] = (int32_t)((s >> 33) % 37);
    }
    for (int b = 0; b < BB; b++)
        for (int t = 0; t < TT; t++) {
            int r = b * TT + t;
            g_tg[r] = t + 1 < g_lens[b] ? g_ids[r + 1] : -100;
            if (t >= g_lens[b]) g_ids[r] = 36;  // garbage in the padding must not matter
        }
    g_tg[1] = -100;  // an ignored target inside a sequence
}

// ---------------------------------------------------------------------------------------------
// tests

static void test_forward_matches_fp64(void) {
    for (int variant = 0; variant < 3; variant++) {
        bool tied = variant != 1, l3 = variant == 2;
        llama_model *m = tiny_model(tied, l3, 11 + variant);
        CHECK(m != NULL);
        if (!m) return;
        const llama_config *c = llama_model_config(m);
        float *logits = malloc(BB * TT * c->vocab_size * sizeof(float));
        llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg, .n_out = -1, .logits = logits};
        double loss = 0;
        cis_err err = {0};
        CHECK(llama_forward(m, &bt, NULL, 0, false, &loss, &err) == 0);
        double **P = params_to_d(m);
        double *rl = malloc(BB * TT * c->vocab_size * 8);
        double rloss = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, NULL, rl, -1, -1, NULL);
        // compare only rows inside the sequences (padding rows are defined but unused)
        double worst = 0;
        for (int b = 0; b < BB; b++)
            for (int t = 0; t < g_lens[b]; t++) {
                int r = b * TT + t;
                worst = fmax(worst, max_rel(logits + r * c->vocab_size, rl + r * c->vocab_size, c->vocab_size));
            }
        CHECK_MSG(worst < 1e-5, "variant %d logits rel err %g", variant, worst);
        CHECK_MSG(fabs(loss - rloss) < 1e-5 * fabs(rloss), "variant %d loss %.9g vs %.9g", variant, loss, rloss);
        CHECK(rloss > 1.0);  // not trivially small
        // only some positions: same values as the full head
        int32_t ob[2] = {2, 0}, ot[2] = {4, 6};
        float sel[2 * 37];
        llama_batch b2 = bt;
        b2.n_out = 2; b2.out_b = ob; b2.out_t = ot; b2.logits = sel; b2.targets = NULL;
        CHECK(llama_forward(m, &b2, NULL, 0, false, NULL, &err) == 0);
        CHECK(max_rel(sel, rl + (2 * TT + 4) * 37, 37) < 1e-5);
        CHECK(max_rel(sel + 37, rl + (0 * TT + 6) * 37, 37) < 1e-5);
        free(logits); free(rl); free_pd(m, P);
        llama_model_free(&m);
    }
}

/* FD of the fp64 loss w.r.t. element j of parameter i */
static double fd_param(llama_model *m, double **P, int i, int64_t j, const ref_hook *hk) {
    const llama_config *c = llama_model_config(m);
    const double h = 1e-5;
    double x0 = P[i][j];
    P[i][j] = x0 + h;
    double fp = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, hk, NULL, -1, -1, NULL);
    P[i][j] = x0 - h;
    double fm = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, hk, NULL, -1, -1, NULL);
    P[i][j] = x0;
    return (fp - fm) / (2 * h);
}

static void check_param_grads(bool tied) {
    llama_model *m = tiny_model(tied, false, tied ? 5 : 6);
    if (!m) { CHECK(0); return; }
    cis_err err = {0};
    const char *names[] = {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                           "model.layers.1.self_attn.k_proj.weight", "model.layers.0.self_attn.v_proj.weight",
                           "model.layers.1.self_attn.o_proj.weight", "model.layers.0.mlp.gate_proj.weight",
                           "model.layers.1.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
                           "model.layers.1.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
                           "model.norm.weight", "lm_head.weight"};
    int nn = tied ? 11 : 12;
    for (int k = 0; k < nn; k++) CHECK_EQ_INT(llama_model_set_trainable(m, names[k], -1, -1, true, &err), 1);
    CHECK(llama_model_grad(m, llama_model_find(m, "model.layers.1.mlp.down_proj.weight")) == NULL);
    llama_model_zero_grad(m);
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg};
    double loss;
    CHECK(llama_forward(m, &bt, NULL, 0, true, &loss, &err) == 0);
    CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
    double **P = params_to_d(m);
    int np;
    llama_param *p = llama_model_params(m, &np);
    for (int k = 0; k < nn; k++) {
        int i = llama_model_find(m, names[k]);
        const float *g = llama_model_grad(m, i);
        int64_t n = p[i].shape[0] * p[i].shape[1];
        double gmax = 0;
        for (int64_t j = 0; j < n; j++) gmax = fmax(gmax, fabs(g[j]));
        CHECK_MSG(gmax > 0, "%s: zero gradient", names[k]);
        int bad = 0;
        for (int s = 0; s < 8; s++) {  // 8 elements per tensor, spread over it (incl. the largest)
            int64_t j = (s * 7919 + 13) % n;
            if (s == 0) for (int64_t q = 0; q < n; q++) if (fabs(g[q]) == gmax) { j = q; break; }
            double num = fd_param(m, P, i, j, NULL);
            if (fabs(g[j] - num) > 2e-3 * fabs(num) + 2e-4 * gmax) {
                if (bad++ < 3) fprintf(stderr, "  %s[%lld]: analytic %.8g numeric %.8g\n", names[k], (long long)j, g[j], num);
            }
        }
        CHECK_MSG(bad == 0, "%s (%s head): %d mismatches", names[k], tied ? "tied" : "untied", bad);
    }
    free_pd(m, P);
    llama_model_free(&m);
}

static void test_param_grads_tied(void) { check_param_grads(true); }
static void test_param_grads_untied(void) { check_param_grads(false); }

static void test_hook_grads(void) {
    llama_model *m = tiny_model(false, false, 21);
    if (!m) { CHECK(0); return; }
    const llama_config *c = llama_model_config(m);
    cis_err err = {0};
    const int D = c->hidden_size;
    // MEMIT-style: a delta added at E of layer 0 at two positions; its gradient vs FD
    int32_t rb[2] = {0, 2}, rt[2] = {3, 1};
    double dd[2 * 16];
    float df[2 * 16], gE[2 * 16];
    for (int i = 0; i < 2 * D; i++) { df[i] = (float)(0.3 * sin(i * 1.7)); dd[i] = df[i]; }
    // plus gradient reads at B (layer 1, all rows) and D (layer 1, one position)
    const int qd = c->num_attention_heads * c->head_dim, F = c->intermediate_size;
    float *gB = malloc(BB * TT * qd * sizeof(float)), gD[16 * 24 * 2];
    int32_t db[1] = {1}, dt[1] = {2};
    llama_hook hooks[3] = {
        {.layer = 0, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = 2, .pos_b = rb, .pos_t = rt, .value = df, .grad = gE},
        {.layer = 1, .point = LLAMA_HOOK_B, .mode = LLAMA_HOOK_READ, .n_pos = -1, .grad = gB},
        {.layer = 1, .point = LLAMA_HOOK_D, .mode = LLAMA_HOOK_READ, .n_pos = 1, .pos_b = db, .pos_t = dt, .grad = gD},
    };
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg};
    double loss;
    CHECK(llama_forward(m, &bt, hooks, 3, true, &loss, &err) == 0);
    CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
    double **P = params_to_d(m);
    ref_hook rh = {0, 4, 2, rb, rt, dd};
    double rloss = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &rh, NULL, -1, -1, NULL);
    CHECK_MSG(fabs(loss - rloss) < 1e-5 * fabs(rloss), "hooked loss %.9g vs %.9g", loss, rloss);
    const double h = 1e-5;
    double num[2 * 16];
    for (int i = 0; i < 2 * D; i++) {
        double x0 = dd[i];
        dd[i] = x0 + h; double fp = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &rh, NULL, -1, -1, NULL);
        dd[i] = x0 - h; double fm = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &rh, NULL, -1, -1, NULL);
        dd[i] = x0;
        num[i] = (fp - fm) / (2 * h);
    }
    CHECK_MSG(max_rel(gE, num, 2 * D) < 1e-3, "E grad err %g", max_rel(gE, num, 2 * D));
    // B and D: a zero delta on the reference at the same rows
    int nB = BB * TT * qd;
    double *zB = calloc(nB, 8), *numB = calloc(nB, 8);
    for (int i = 0; i < nB; i += 5) {  // every 5th element
        int row = i / qd;
        if (row % TT >= g_lens[row / TT]) { numB[i] = gB[i]; continue; }  // padding rows: no reference
        ref_hook hb = {1, 1, BB * TT, NULL, NULL, zB};  // a zero delta on every row of B
        zB[i] = h;
        double fp = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &hb, NULL, -1, -1, NULL);
        zB[i] = -h;
        double fm = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &hb, NULL, -1, -1, NULL);
        zB[i] = 0;
        numB[i] = (fp - fm) / (2 * h);
    }
    // the numeric B and D gradients are taken without the E delta: recompute ours the same way
    llama_hook hB = {.layer = 1, .point = LLAMA_HOOK_B, .mode = LLAMA_HOOK_READ, .n_pos = -1, .grad = gB};
    llama_hook hD = {.layer = 1, .point = LLAMA_HOOK_D, .mode = LLAMA_HOOK_READ, .n_pos = 1, .pos_b = db, .pos_t = dt, .grad = gD};
    llama_hook h2[2] = {hB, hD};
    CHECK(llama_forward(m, &bt, h2, 2, true, &loss, &err) == 0);
    CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
    double wB = 0, sB = 0;
    for (int i = 0; i < nB; i += 5) { wB = fmax(wB, fabs(gB[i] - numB[i])); sB = fmax(sB, fabs(numB[i])); }
    CHECK_MSG(sB > 0 && wB / sB < 1e-3, "B grad err %g (scale %g)", wB / sB, sB);
    double *zD = calloc(F, 8), numD[24];
    ref_hook hd = {1, 3, 1, db, dt, zD};
    for (int i = 0; i < F; i++) {
        zD[i] = h; double fp = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &hd, NULL, -1, -1, NULL);
        zD[i] = -h; double fm = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &hd, NULL, -1, -1, NULL);
        zD[i] = 0;
        numD[i] = (fp - fm) / (2 * h);
    }
    CHECK_MSG(max_rel(gD, numD, F) < 1e-3, "D grad err %g", max_rel(gD, numD, F));
    // A and C of layer 0, at one position each (the gradient w.r.t. a zero ADD delta)
    for (int pt = 0; pt <= 2; pt += 2) {
        int32_t pb = 2, ptt = 3;
        float zero[16] = {0}, gg[16];
        llama_hook ha = {.layer = 0, .point = (llama_hook_point)pt, .mode = LLAMA_HOOK_ADD, .n_pos = 1, .pos_b = &pb,
                         .pos_t = &ptt, .value = zero, .grad = gg};
        CHECK(llama_forward(m, &bt, &ha, 1, true, &loss, &err) == 0);
        CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
        double zd[16] = {0}, num[16];
        ref_hook rha = {0, pt, 1, &pb, &ptt, zd};
        for (int i = 0; i < D; i++) {
            zd[i] = h; double fp = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &rha, NULL, -1, -1, NULL);
            zd[i] = -h; double fm = ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, &rha, NULL, -1, -1, NULL);
            zd[i] = 0;
            num[i] = (fp - fm) / (2 * h);
        }
        CHECK_MSG(max_rel(gg, num, D) < 1e-3, "point %d grad err %g", pt, max_rel(gg, num, D));
    }
    free(gB); free(zB); free(numB); free(zD);
    free_pd(m, P);
    llama_model_free(&m);
}

static void test_hook_read_replace(void) {
    llama_model *m = tiny_model(true, false, 31);
    if (!m) { CHECK(0); return; }
    const llama_config *c = llama_model_config(m);
    cis_err err = {0};
    double **P = params_to_d(m);
    int widths[5] = {16, 16, 16, 24, 16};
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg};
    double loss0;
    CHECK(llama_forward(m, &bt, NULL, 0, false, &loss0, &err) == 0);
    for (int pt = 0; pt < 5; pt++) {
        int w = widths[pt];
        float *rd = malloc(BB * TT * w * sizeof(float));
        double *ref = malloc(BB * TT * w * 8);
        llama_hook hk = {.layer = 1, .point = (llama_hook_point)pt, .mode = LLAMA_HOOK_READ, .n_pos = -1, .read = rd};
        CHECK(llama_forward(m, &bt, &hk, 1, false, NULL, &err) == 0);
        ref_forward(c, P, BB, TT, g_ids, g_lens, g_tg, NULL, NULL, 1, pt, ref);
        double worst = 0;
        for (int b = 0; b < BB; b++)
            for (int t = 0; t < g_lens[b]; t++)
                worst = fmax(worst, max_rel(rd + (b * TT + t) * w, ref + (b * TT + t) * w, w));
        CHECK_MSG(worst < 1e-5, "read at point %d err %g", pt, worst);
        // replacing the activation by itself changes nothing
        llama_hook rp = {.layer = 1, .point = (llama_hook_point)pt, .mode = LLAMA_HOOK_REPLACE, .n_pos = -1, .value = rd};
        double loss1;
        CHECK(llama_forward(m, &bt, &rp, 1, false, &loss1, &err) == 0);
        CHECK_NEAR(loss1, loss0, 1e-6 * loss0);
        free(rd); free(ref);
    }
    // replace at E of layer 0 stops the gradient to layer-0 weights at those rows: with every row
    // replaced, layer 0's q_proj gets exactly zero gradient
    float *e0 = malloc(BB * TT * 16 * sizeof(float));
    llama_hook rd0 = {.layer = 0, .point = LLAMA_HOOK_E, .n_pos = -1, .read = e0};
    CHECK(llama_forward(m, &bt, &rd0, 1, false, NULL, &err) == 0);
    llama_model_set_trainable(m, "model.layers.0.self_attn.q_proj.weight", -1, -1, true, &err);
    llama_hook rp0 = {.layer = 0, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_REPLACE, .n_pos = -1, .value = e0};
    CHECK(llama_forward(m, &bt, &rp0, 1, true, NULL, &err) == 0);
    CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
    const float *gq = llama_model_grad(m, llama_model_find(m, "model.layers.0.self_attn.q_proj.weight"));
    double s = 0;
    for (int i = 0; i < 16 * 16; i++) s += fabs(gq[i]);
    CHECK(s == 0.0);
    free(e0);
    free_pd(m, P);
    llama_model_free(&m);
}

static void test_padding_invariance(void) {
    llama_model *m = tiny_model(false, false, 41);
    if (!m) { CHECK(0); return; }
    cis_err err = {0};
    const int V = 37;
    float *lp = malloc(BB * TT * V * sizeof(float));
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .n_out = -1, .logits = lp};
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == 0);
    for (int b = 0; b < BB; b++) {
        int len = g_lens[b];
        float *l1 = malloc(len * V * sizeof(float));
        int32_t tg1[TT];
        llama_batch one = {.B = 1, .T = len, .ids = g_ids + b * TT, .n_out = -1, .logits = l1, .targets = tg1};
        for (int t = 0; t < len; t++) tg1[t] = g_tg[b * TT + t];
        double loss1, lossp;
        CHECK(llama_forward(m, &one, NULL, 0, false, &loss1, &err) == 0);
        double worst = 0;
        for (int i = 0; i < len * V; i++) worst = fmax(worst, fabs(l1[i] - lp[b * TT * V + i]) / (fabs(l1[i]) + 1));
        CHECK_MSG(worst < 1e-5, "row %d padded vs alone: %g", b, worst);
        // the per-sequence loss from the padded batch (other rows' targets ignored) is the same
        int32_t tgp[BB * TT];
        for (int i = 0; i < BB * TT; i++) tgp[i] = (i / TT == b) ? g_tg[i] : -100;
        llama_batch pb = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = tgp};
        CHECK(llama_forward(m, &pb, NULL, 0, false, &lossp, &err) == 0);
        CHECK_NEAR(lossp, loss1, 1e-5 * loss1);
        free(l1);
    }
    free(lp);
    llama_model_free(&m);
}

static int argmax(const float *x, int V) {
    int b = 0;
    for (int j = 1; j < V; j++) if (x[j] > x[b]) b = j;
    return b;
}

static void test_generate_matches_recompute(void) {
    llama_model *m = tiny_model(true, true, 51);
    if (!m) { CHECK(0); return; }
    cis_err err = {0};
    const int V = 37, ML = 14;
    int32_t p0[3] = {5, 9, 11}, p1[6] = {1, 3, 3, 7, 20, 8}, p2[1] = {30};
    const int32_t *prompts[3] = {p0, p1, p2};
    int plens[3] = {3, 6, 1}, olens[3];
    int32_t out[3 * 14];
    // the test model's EOS (2) must not cut the comparison short: use an id outside the vocab
    llama_config c2 = *llama_model_config(m);
    c2.eos_token_ids[0] = 1000;
    llama_model *m2 = llama_model_new(&c2, tbe, &err);
    CHECK(llama_model_copy_params(m2, m, &err) == 0);
    CHECK(llama_generate(m2, 3, prompts, plens, ML, out, olens, &err) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(olens[i], ML);
        CHECK(memcmp(out + i * ML, prompts[i], plens[i] * sizeof(int32_t)) == 0);
        // token by token: full forward over the sequence so far, argmax of the last row
        int32_t seq[14];
        memcpy(seq, prompts[i], plens[i] * sizeof(int32_t));
        int mism = 0;
        for (int t = plens[i]; t < ML; t++) {
            float lg[37];
            int32_t ob = 0, ot = t - 1;
            llama_batch bt = {.B = 1, .T = t, .ids = seq, .n_out = 1, .out_b = &ob, .out_t = &ot, .logits = lg};
            CHECK(llama_forward(m2, &bt, NULL, 0, false, NULL, &err) == 0);
            seq[t] = argmax(lg, V);
            if (seq[t] != out[i * ML + t]) mism++;
        }
        CHECK_MSG(mism == 0, "prompt %d: %d tokens differ from recomputation", i, mism);
    }
    // EOS stops one sequence and is kept: make prompt 0's first generated token the EOS
    int first = out[0 * ML + 3];
    c2.eos_token_ids[0] = first;
    llama_model *m3 = llama_model_new(&c2, tbe, &err);
    llama_model_copy_params(m3, m, &err);
    int32_t out3[3 * 14];
    CHECK(llama_generate(m3, 3, prompts, plens, ML, out3, olens, &err) == 0);
    CHECK_EQ_INT(olens[0], 4);
    CHECK_EQ_INT(out3[3], first);
    CHECK_EQ_INT(out3[4], -1);
    // more prompts than one generation batch (32): the same outputs as one prompt at a time
    int32_t many[35][2];
    const int32_t *mp[35];
    int ml[35], mol[35], ol1;
    int32_t mout[35 * 6], o1[6];
    for (int i = 0; i < 35; i++) { many[i][0] = (i * 5) % 37; many[i][1] = (i * 11 + 3) % 37; mp[i] = many[i]; ml[i] = 1 + i % 2; }
    CHECK(llama_generate(m2, 35, mp, ml, 6, mout, mol, &err) == 0);
    int diff = 0;
    for (int i = 0; i < 35; i++) {
        CHECK(llama_generate(m2, 1, &mp[i], &ml[i], 6, o1, &ol1, &err) == 0);
        if (ol1 != mol[i] || memcmp(o1, mout + i * 6, 6 * sizeof(int32_t))) diff++;
    }
    CHECK_EQ_INT(diff, 0);
    // llama_generate_until: each row is llama_generate's row cut after stop_after[i] emitted tokens
    // that are not in skip (-1: not cut; 0: after its first token)
    int stop[35];
    int32_t skip[1] = {mout[0 * 6 + ml[0]]};  // row 0's first generated token is not counted
    int32_t uout[35 * 6];
    int uol[35];
    for (int i = 0; i < 35; i++) stop[i] = i % 5 - 1;
    CHECK(llama_generate_until(m2, 35, mp, ml, 6, stop, skip, 1, uout, uol, &err) == 0);
    int bad = 0, cut = 0;
    for (int i = 0; i < 35; i++) {
        int want = 6, k = 0;
        for (int t = ml[i]; t < 6 && stop[i] >= 0; t++) {
            k += mout[i * 6 + t] != skip[0];
            if (k >= stop[i]) { want = t + 1; break; }
        }
        cut += want < 6;
        if (uol[i] != want || memcmp(uout + i * 6, mout + i * 6, (size_t)want * sizeof(int32_t))) bad++;
        for (int t = want; t < 6; t++) bad += uout[i * 6 + t] != -1;
    }
    CHECK_EQ_INT(bad, 0);
    CHECK(cut > 20);  // the limits did cut most rows short
    // max_length shorter than a prompt is refused
    CHECK(llama_generate(m3, 3, prompts, plens, 5, out3, olens, &err) == -1);
    llama_model_free(&m2);
    llama_model_free(&m3);
    llama_model_free(&m);
}

static void test_loglik(void) {
    llama_model *m = tiny_model(false, false, 61);
    if (!m) { CHECK(0); return; }
    cis_err err = {0};
    const int V = 37;
    int32_t c0[4] = {1, 4, 9, 16}, c1[2] = {1, 25}, k0[2] = {3, 5}, k1[3] = {7, 7, 2};
    const int32_t *ctx[3] = {c0, c1, c0}, *cont[3] = {k0, k1, k1};
    int cl[3] = {4, 2, 4}, nl[3] = {2, 3, 3};
    double ll[3];
    bool greedy[3];
    CHECK(llama_loglik(m, 3, ctx, cl, cont, nl, 8, ll, greedy, &err) == 0);  // small budget: several batches
    for (int i = 0; i < 3; i++) {
        int T = cl[i] + nl[i];
        int32_t seq[8];
        memcpy(seq, ctx[i], cl[i] * 4);
        memcpy(seq + cl[i], cont[i], nl[i] * 4);
        float *lg = malloc(T * V * sizeof(float));
        llama_batch bt = {.B = 1, .T = T, .ids = seq, .n_out = -1, .logits = lg};
        CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == 0);
        double s = 0;
        for (int j = 0; j < nl[i]; j++) {
            const float *x = lg + (cl[i] - 1 + j) * V;
            double mx = x[argmax(x, V)], z = 0;
            for (int v = 0; v < V; v++) z += exp(x[v] - mx);
            s += x[cont[i][j]] - mx - log(z);
        }
        CHECK_NEAR(ll[i], s, 1e-5 * fabs(s));
        CHECK(ll[i] < 0);
        free(lg);
    }
    // a continuation made of the greedy tokens is flagged greedy
    int32_t gc[3];
    int32_t seq[7];
    memcpy(seq, c0, 16);
    for (int j = 0; j < 3; j++) {
        float lg[37];
        int32_t ob = 0, ot = 3 + j;
        llama_batch bt = {.B = 1, .T = 4 + j, .ids = seq, .n_out = 1, .out_b = &ob, .out_t = &ot, .logits = lg};
        CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == 0);
        seq[4 + j] = gc[j] = argmax(lg, V);
    }
    const int32_t *gctx[1] = {c0}, *gcont[1] = {gc};
    int gcl[1] = {4}, gnl[1] = {3};
    CHECK(llama_loglik(m, 1, gctx, gcl, gcont, gnl, 0, ll, greedy, &err) == 0);
    CHECK(greedy[0]);
    CHECK(llama_loglik(m, 3, ctx, cl, cont, nl, 0, ll, greedy, &err) == 0);
    CHECK(!(greedy[0] && greedy[1] && greedy[2]));
    llama_model_free(&m);
}

/* a few AdamW steps; returns the final loss and copies q_proj of layer 1 into snap */
static double train_run(float *snap, int threads) {
    llama_model *m = tiny_model(false, false, 71);
    backend *be = llama_model_backend(m);
    backend_set_threads(be, threads);
    cis_err err = {0};
    llama_model_set_trainable(m, "model.layers.*", 0, 1, true, &err);
    llama_model_set_trainable(m, "lm_head.weight", -1, -1, true, &err);
    optim_config oc = optim_config_default(ADAM_TORCH_ADAMW);
    oc.lr = 3e-3f;
    optim *o = llama_model_optim_new(m, &oc, &err);
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg};
    double loss = 0;
    for (int s = 0; s < 8; s++) {
        llama_model_zero_grad(m);
        llama_forward(m, &bt, NULL, 0, true, &loss, &err);
        llama_backward(m, 1.0f, NULL, &err);
        optim_step(o, -1);
    }
    llama_forward(m, &bt, NULL, 0, false, &loss, &err);
    int i = llama_model_find(m, "model.layers.1.self_attn.q_proj.weight");
    memcpy(snap, llama_model_params(m, NULL)[i].data, 16 * 16 * sizeof(float));
    optim_free(&o);
    llama_model_free(&m);
    backend_set_threads(be, 1);
    return loss;
}

static void test_training_deterministic(void) {
    float a[256], b[256];
    llama_model *m = tiny_model(false, false, 71);
    cis_err err = {0};
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg};
    double l0;
    llama_forward(m, &bt, NULL, 0, false, &l0, &err);
    llama_model_free(&m);
    double la = train_run(a, 2), lb = train_run(b, 2);
    CHECK(la == lb);
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK_MSG(la < l0 - 0.1, "loss %g -> %g", l0, la);  // and it learns
}

static void test_gradient_subset_and_ascent(void) {
    // gradients of layer-1 down_proj alone equal those with everything trainable; loss_scale -1
    // negates them; the embedding table gets no gradient from padding rows
    llama_model *m = tiny_model(true, false, 81);
    cis_err err = {0};
    int idx = llama_model_find(m, "model.layers.1.mlp.down_proj.weight");
    CHECK_EQ_INT(llama_model_set_trainable(m, "*down_proj*", 1, 1, true, &err), 1);
    CHECK_EQ_INT(llama_model_set_trainable(m, "*down_proj*", 5, 9, true, &err), -1);
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg};
    CHECK(llama_forward(m, &bt, NULL, 0, true, NULL, &err) == 0);
    CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
    float only[16 * 24];
    memcpy(only, llama_model_grad(m, idx), sizeof only);
    CHECK(llama_backward(m, 1.0f, NULL, &err) == -1);  // one backward per forward
    int n_all = llama_model_set_trainable(m, NULL, -1, -1, true, &err);
    CHECK_EQ_INT(n_all, 1 + 2 * 9 + 1);
    llama_model_zero_grad(m);
    CHECK(llama_forward(m, &bt, NULL, 0, true, NULL, &err) == 0);
    CHECK(llama_backward(m, -1.0f, NULL, &err) == 0);
    const float *all = llama_model_grad(m, idx);
    double worst = 0, sc = 0;
    for (int i = 0; i < 16 * 24; i++) { worst = fmax(worst, fabs(all[i] + only[i])); sc = fmax(sc, fabs(only[i])); }
    CHECK_MSG(sc > 0 && worst <= 1e-6 * sc, "subset vs full: %g", worst / sc);
    llama_model_free(&m);
}

/* RMU's path: run only the first layer, seed a gradient at E of layer 0 (loss = Σ R ⊙ E0), and
 * get the gradient of layer-0 weights without any head or cross-entropy */
static double seed_loss(const llama_config *c, double **P, const double *R) {
    int n = BB * TT * c->hidden_size;
    double *e = malloc(n * 8), L = 0;
    ref_forward(c, P, BB, TT, g_ids, g_lens, NULL, NULL, NULL, 0, 4, e);
    for (int i = 0; i < n; i++) L += R[i] * e[i];
    free(e);
    return L;
}

static void test_partial_forward_seeded_grad(void) {
    llama_model *m = tiny_model(true, false, 17);
    const llama_config *c = llama_model_config(m);
    cis_err err = {0};
    const int D = c->hidden_size, n = BB * TT * D;
    float *R = malloc(n * sizeof(float)), *rd = malloc(n * sizeof(float));
    double *Rd = malloc(n * 8);
    for (int i = 0; i < n; i++) {
        int row = i / D;
        R[i] = (row % TT) < g_lens[row / TT] ? (float)sin(0.37 * i) : 0.0f;  // no seed on padding
        Rd[i] = R[i];
    }
    const char *names[2] = {"model.layers.0.mlp.down_proj.weight", "model.layers.0.self_attn.o_proj.weight"};
    for (int k = 0; k < 2; k++) llama_model_set_trainable(m, names[k], -1, -1, true, &err);
    llama_hook hk = {.layer = 0, .point = LLAMA_HOOK_E, .n_pos = -1, .read = rd, .grad_seed = R};
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .n_layers = 1};
    CHECK(llama_forward(m, &bt, &hk, 1, true, NULL, &err) == 0);
    CHECK(llama_backward(m, 0.0f, NULL, &err) == 0);
    double **P = params_to_d(m);
    for (int k = 0; k < 2; k++) {
        int i = llama_model_find(m, names[k]);
        const float *g = llama_model_grad(m, i);
        int64_t sz = llama_model_params(m, NULL)[i].shape[0] * llama_model_params(m, NULL)[i].shape[1];
        double gmax = 0;
        for (int64_t j = 0; j < sz; j++) gmax = fmax(gmax, fabs(g[j]));
        int bad = 0;
        for (int s = 0; s < 8; s++) {
            int64_t j = (s * 331 + 5) % sz;
            double x0 = P[i][j], h = 1e-5;
            P[i][j] = x0 + h; double fp = seed_loss(c, P, Rd);
            P[i][j] = x0 - h; double fm = seed_loss(c, P, Rd);
            P[i][j] = x0;
            double num = (fp - fm) / (2 * h);
            if (fabs(g[j] - num) > 2e-3 * fabs(num) + 2e-4 * gmax) bad++;
        }
        CHECK_MSG(gmax > 0 && bad == 0, "%s: %d mismatches", names[k], bad);
    }
    // logits cannot be asked for when the head does not run
    float lg[37];
    int32_t ob = 0, ot = 0;
    llama_batch b2 = bt;
    b2.n_out = 1; b2.out_b = &ob; b2.out_t = &ot; b2.logits = lg;
    CHECK(llama_forward(m, &b2, NULL, 0, false, NULL, &err) == -1);
    free(R); free(rd); free(Rd);
    free_pd(m, P);
    llama_model_free(&m);
}

/* The lowest layer a backward visits stops after its last op that feeds a gradient someone asked
 * for (model_forward.c layer_bwd_depth) unless llama_model_set_full_backward: for every trainable
 * parameter of layer 1 alone, and for a gradient asked at each hook point of layer 1, the
 * gradients are bit for bit those of the full backward (and not zero). */
static void test_partial_lowest_layer(void) {
    llama_model *m = tiny_model(false, false, 29);
    const llama_config *c = llama_model_config(m);
    cis_err err = {0};
    const char *mods[] = {"mlp.down_proj", "mlp.gate_proj", "mlp.up_proj", "post_attention_layernorm", "self_attn.o_proj",
                          "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "input_layernorm"};
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg};
    for (int k = 0; k < (int)(sizeof mods / sizeof *mods); k++) {
        char *name = xasprintf("model.layers.1.%s.weight", mods[k]);
        int i = llama_model_find(m, name);
        CHECK(i >= 0);
        llama_param *p = &llama_model_params(m, NULL)[i];
        size_t n = (size_t)p->shape[0] * (p->ndim == 2 ? (size_t)p->shape[1] : 1);
        float *g[2];
        for (int full = 0; full < 2; full++) {
            llama_model_freeze_all(m);
            CHECK_EQ_INT(llama_model_set_trainable(m, name, -1, -1, true, &err), 1);
            llama_model_set_full_backward(m, full);
            CHECK(llama_forward(m, &bt, NULL, 0, true, NULL, &err) == 0);
            CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
            g[full] = xmalloc(n * sizeof(float));
            memcpy(g[full], llama_model_grad(m, i), n * sizeof(float));
        }
        double mx = 0;
        for (size_t j = 0; j < n; j++) mx = fmax(mx, fabs(g[0][j]));
        CHECK_MSG(mx > 0 && memcmp(g[0], g[1], n * sizeof(float)) == 0, "%s: partial and full backward differ", name);
        free(g[0]); free(g[1]); free(name);
    }
    /* hook gradients at A..D of layer 1 with nothing trainable in it (layer 1's down_proj is, to
     * make layer 1 the lowest visited: the hooks then set how deep it goes) */
    for (int pt = LLAMA_HOOK_A; pt < LLAMA_HOOK_E; pt++) {
        size_t n = (size_t)BB * TT * llama_hook_width(m, (llama_hook_point)pt);
        float *hg[2];
        for (int full = 0; full < 2; full++) {
            llama_model_freeze_all(m);
            llama_model_set_trainable(m, "*down_proj*", 1, 1, true, &err);
            llama_model_set_full_backward(m, full);
            hg[full] = xcalloc(n, sizeof(float));
            llama_hook hk = {.layer = 1, .point = (llama_hook_point)pt, .n_pos = -1, .grad = hg[full]};
            CHECK(llama_forward(m, &bt, &hk, 1, true, NULL, &err) == 0);
            CHECK(llama_backward(m, 1.0f, NULL, &err) == 0);
        }
        double mx = 0;
        for (size_t j = 0; j < n; j++) mx = fmax(mx, fabs(hg[0][j]));
        CHECK_MSG(mx > 0 && memcmp(hg[0], hg[1], n * sizeof(float)) == 0, "hook point %c: partial and full differ", 'A' + pt);
        free(hg[0]); free(hg[1]);
    }
    (void)c;
    llama_model_set_full_backward(m, false);
    llama_model_free(&m);
}

static void test_layer_by_layer(void) {
    // embed + each layer in turn reproduces llama_forward's residual stream bit for bit, hooks
    // included; changing a layer's weights between calls is what the calibration driver does
    llama_model *m = tiny_model(false, false, 23);
    cis_err err = {0};
    const int n = BB * TT * 16;
    float *xa = malloc(n * 4), *xb = malloc(n * 4), *ref = malloc(n * 4), *rdD = malloc(BB * TT * 24 * 4), *rdD2 = malloc(BB * TT * 24 * 4);
    llama_hook hk[2] = {{.layer = 1, .point = LLAMA_HOOK_E, .n_pos = -1, .read = ref},
                        {.layer = 1, .point = LLAMA_HOOK_D, .n_pos = -1, .read = rdD}};
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens};
    CHECK(llama_forward(m, &bt, hk, 2, false, NULL, &err) == 0);
    CHECK(llama_embed(m, BB, TT, g_ids, g_lens, xa, &err) == 0);
    CHECK(llama_layer_run(m, 0, BB, TT, g_lens, xa, xb, NULL, 0, &err) == 0);
    llama_hook hd = {.layer = 1, .point = LLAMA_HOOK_D, .n_pos = -1, .read = rdD2};
    CHECK(llama_layer_run(m, 1, BB, TT, g_lens, xb, xa, &hd, 1, &err) == 0);
    CHECK(memcmp(xa, ref, n * 4) == 0);
    CHECK(memcmp(rdD, rdD2, BB * TT * 24 * 4) == 0);
    CHECK(llama_layer_run(m, 2, BB, TT, g_lens, xb, xa, NULL, 0, &err) == -1);
    CHECK(llama_layer_run(m, 0, BB, TT, g_lens, xa, xa, NULL, 0, &err) == -1);
    int32_t bad[BB * TT];
    memcpy(bad, g_ids, sizeof bad);
    bad[3] = 99;
    CHECK(llama_embed(m, BB, TT, bad, g_lens, xa, &err) == -1);
    free(xa); free(xb); free(ref); free(rdD); free(rdD2);
    llama_model_free(&m);
}

static void test_layer_run_to(void) {
    // a run stopped at point A..D reads the bytes the whole run reads there (an ADD hook before the
    // stop included); hooks of the layer after the stop, and E as the stop, are refused
    llama_model *m = tiny_model(false, false, 29);
    cis_err err = {0};
    const int n = BB * TT * 16;
    float *x0 = malloc(n * 4), *x1 = malloc(n * 4), *add = malloc(n * 4), *full[4], *part[4];
    for (int i = 0; i < n; i++) add[i] = 0.01f * (float)(i % 7);
    CHECK(llama_embed(m, BB, TT, g_ids, g_lens, x0, &err) == 0);
    for (int p = 0; p < 4; p++) {
        int w = llama_hook_width(m, (llama_hook_point)p);
        full[p] = malloc((size_t)BB * TT * w * 4);
        part[p] = malloc((size_t)BB * TT * w * 4);
    }
    for (int last = 0; last < 4; last++) {
        llama_hook hf[5], hp[5];
        int nh = 0;
        hf[nh] = hp[nh] = (llama_hook){.layer = 1, .point = LLAMA_HOOK_A, .mode = LLAMA_HOOK_ADD, .n_pos = -1, .value = add};
        nh++;
        for (int p = 0; p <= last; p++, nh++) {
            hf[nh] = (llama_hook){.layer = 1, .point = (llama_hook_point)p, .n_pos = -1, .read = full[p]};
            hp[nh] = (llama_hook){.layer = 1, .point = (llama_hook_point)p, .n_pos = -1, .read = part[p]};
        }
        CHECK(llama_layer_run(m, 1, BB, TT, g_lens, x0, x1, hf, nh, &err) == 0);
        CHECK_MSG(llama_layer_run_to(m, 1, (llama_hook_point)last, BB, TT, g_lens, x0, hp, nh, &err) == 0, "%s", err.msg);
        for (int p = 0; p <= last; p++)
            CHECK_MSG(memcmp(full[p], part[p], (size_t)BB * TT * llama_hook_width(m, (llama_hook_point)p) * 4) == 0,
                      "stop at %c: point %c differs", 'A' + last, 'A' + p);
    }
    llama_hook late = {.layer = 1, .point = LLAMA_HOOK_C, .n_pos = -1, .read = full[2]};
    CHECK(llama_layer_run_to(m, 1, LLAMA_HOOK_B, BB, TT, g_lens, x0, &late, 1, &err) == -1);
    CHECK_MSG(strstr(err.msg, "after the last point run"), "%s", err.msg);
    late.layer = 0; // a hook of another layer is not this run's
    CHECK(llama_layer_run_to(m, 1, LLAMA_HOOK_B, BB, TT, g_lens, x0, &late, 1, &err) == 0);
    CHECK(llama_layer_run_to(m, 1, LLAMA_HOOK_E, BB, TT, g_lens, x0, NULL, 0, &err) == -1);
    CHECK_MSG(strstr(err.msg, "expected A..D"), "%s", err.msg);
    CHECK(llama_layer_run_to(m, 2, LLAMA_HOOK_A, BB, TT, g_lens, x0, NULL, 0, &err) == -1);
    CHECK(llama_layer_run_to(m, 1, LLAMA_HOOK_A, BB, TT, g_lens, NULL, NULL, 0, &err) == -1);
    for (int p = 0; p < 4; p++) { free(full[p]); free(part[p]); }
    free(x0); free(x1); free(add);
    llama_model_free(&m);
}

static void test_started_forward(void) {
    // a forward that starts at layer 1 from the residual stream computed by llama_embed +
    // llama_layer_run(0) equals the whole forward bit for bit: logits, loss, an ADD hook at point E
    // of layer 0 (acting on the start's input) and its gradient, a trainable layer-1 weight's
    // gradient; hooks and trainable parameters below the start are refused
    llama_model *m = tiny_model(false, false, 29);
    cis_err err = {0};
    const int D = 16, V = 37, N = BB * TT;
    float *x0 = malloc(N * D * 4), *x1 = malloc(N * D * 4);
    float lg[2][BB * TT * 37], gr[2][2 * 16], pg[2][16 * 24], val[2 * 16], dl[BB * TT * 37], rd[2][BB * TT * 16];
    for (int i = 0; i < 2 * D; i++) val[i] = (float)cos(0.7 * i);
    for (int i = 0; i < N * V; i++) dl[i] = (float)sin(0.013 * i) * 0.1f;
    int32_t pb[2] = {0, 2}, pt[2] = {3, 4};
    CHECK(llama_model_set_trainable(m, "model.layers.1.mlp.down_proj.weight", -1, -1, true, &err) == 1);
    int pi = llama_model_find(m, "model.layers.1.mlp.down_proj.weight");
    double loss[2];
    CHECK(llama_embed(m, BB, TT, g_ids, g_lens, x0, &err) == 0);
    CHECK(llama_layer_run(m, 0, BB, TT, g_lens, x0, x1, NULL, 0, &err) == 0);
    for (int k = 0; k < 2; k++) {
        llama_hook hk = {.layer = 0, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = 2, .pos_b = pb, .pos_t = pt,
                         .value = val, .read = rd[k], .grad = gr[k]};
        llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg, .n_out = -1, .logits = lg[k],
                          .start_layer = k, .x_start = k ? x1 : NULL};
        llama_model_zero_grad(m);
        CHECK(llama_forward(m, &bt, &hk, 1, true, &loss[k], &err) == 0);
        CHECK(llama_backward(m, 1.0f, dl, &err) == 0);
        memcpy(pg[k], llama_model_grad(m, pi), sizeof pg[k]);
    }
    CHECK(loss[0] == loss[1] && loss[0] > 0);
    CHECK(memcmp(lg[0], lg[1], sizeof lg[0]) == 0);
    CHECK(memcmp(rd[0], rd[1], sizeof rd[0]) == 0);
    CHECK(memcmp(gr[0], gr[1], sizeof gr[0]) == 0);
    CHECK(memcmp(pg[0], pg[1], sizeof pg[0]) == 0);
    double gn = 0;
    for (int i = 0; i < 2 * D; i++) gn += fabs(gr[1][i]);
    CHECK(gn > 0);
    // start_layer = L: the head alone on the last layer's output, an ADD hook at E of layer L-1
    {
        float *x2 = malloc(N * D * 4), lg2[BB * TT * 37], gr2[2 * 16];
        CHECK(llama_layer_run(m, 1, BB, TT, g_lens, x1, x2, NULL, 0, &err) == 0);
        llama_model_freeze_all(m);
        llama_hook hk[2] = {{.layer = 1, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = 2, .pos_b = pb, .pos_t = pt,
                             .value = val, .grad = gr[0]},
                            {.layer = 1, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = 2, .pos_b = pb, .pos_t = pt,
                             .value = val, .grad = gr2}};
        llama_batch b0 = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .targets = g_tg, .n_out = -1, .logits = lg[0]};
        CHECK(llama_forward(m, &b0, &hk[0], 1, true, &loss[0], &err) == 0);
        CHECK(llama_backward(m, 1.0f, dl, &err) == 0);
        llama_batch b1 = b0;
        b1.logits = lg2; b1.start_layer = 2; b1.x_start = x2;
        CHECK(llama_forward(m, &b1, &hk[1], 1, true, &loss[1], &err) == 0);
        CHECK(llama_backward(m, 1.0f, dl, &err) == 0);
        CHECK(loss[0] == loss[1] && memcmp(lg[0], lg2, sizeof lg2) == 0 && memcmp(gr[0], gr2, sizeof gr2) == 0);
        free(x2);
        CHECK(llama_model_set_trainable(m, "model.layers.1.mlp.down_proj.weight", -1, -1, true, &err) == 1);
    }
    // refused: no x_start, start beyond the layers run, a hook below the start's input, a hook at
    // another point of layer start-1, a trainable parameter below the start
    llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .start_layer = 1};
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == -1 && strstr(err.msg, "x_start"));
    bt.x_start = x1;
    bt.start_layer = 3;
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == -1 && strstr(err.msg, "start_layer=3"));
    bt.n_layers = 1;
    bt.start_layer = 1;
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == -1 && strstr(err.msg, "start_layer=1"));
    bt.n_layers = 0;
    bt.start_layer = 1;
    llama_hook hd = {.layer = 0, .point = LLAMA_HOOK_D, .n_pos = -1, .read = x0};
    CHECK(llama_forward(m, &bt, &hd, 1, false, NULL, &err) == -1 && strstr(err.msg, "before start_layer"));
    CHECK(llama_model_set_trainable(m, "model.layers.0.mlp.down_proj.weight", -1, -1, true, &err) == 1);
    CHECK(llama_forward(m, &bt, NULL, 0, true, NULL, &err) == -1 && strstr(err.msg, "layers.0.mlp.down_proj"));
    llama_model_freeze_all(m);
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == 0);
    free(x0); free(x1);
    llama_model_free(&m);
}

static void test_kv_prefix_forward(void) {
    // a started forward through key/value caches that hold the sequences' prefix (written by a
    // fill forward of the whole sequences) equals the plain started forward on the rows it runs:
    // the suffix of each sequence from the position where an ADD hook sits (the loss's variables
    // sit there; causal attention keeps everything before it constant): logits, the hook's
    // gradient, a trainable layer-1 weight's gradient (within 1e-5: other GEMM shapes)
    llama_model *m = tiny_model(false, false, 31);
    cis_err err = {0};
    const int D = 16, V = 37, N = BB * TT, KV = 2 * 4, Tq = 3;
    float *x0 = malloc(N * D * 4), *x1 = malloc(N * D * 4), *xs = malloc(BB * Tq * D * 4);
    float *kc = malloc(BB * TT * KV * 4), *vc = malloc(BB * TT * KV * 4);
    int32_t p0[BB], ob[BB * Tq], ot[BB * Tq], ob2[BB * Tq], ot2[BB * Tq], sids[BB * Tq], hb[BB], ht[BB], ht2[BB];
    float val[BB * 16], lg[2][BB * Tq * 37], dl[BB * Tq * 37], gr[2][BB * 16], pg[2][16 * 24];
    for (int i = 0; i < BB * D; i++) val[i] = (float)cos(0.3 * i);
    for (int i = 0; i < BB * Tq * V; i++) dl[i] = (float)sin(0.011 * i) * 0.1f;
    CHECK(llama_embed(m, BB, TT, g_ids, g_lens, x0, &err) == 0);
    CHECK(llama_layer_run(m, 0, BB, TT, g_lens, x0, x1, NULL, 0, &err) == 0);
    int n = 0;
    for (int b = 0; b < BB; b++) {
        p0[b] = g_lens[b] - Tq;
        hb[b] = b; ht[b] = p0[b]; ht2[b] = 0;
        memcpy(xs + (size_t)b * Tq * D, x1 + ((size_t)b * TT + p0[b]) * D, (size_t)Tq * D * 4);
        for (int t = 0; t < Tq; t++, n++) {
            ob[n] = b; ot[n] = p0[b] + t; ob2[n] = b; ot2[n] = t;
            sids[n] = g_ids[b * TT + p0[b] + t];
        }
    }
    CHECK(llama_model_set_trainable(m, "model.layers.1.mlp.up_proj.weight", -1, -1, true, &err) == 1);
    int pi = llama_model_find(m, "model.layers.1.mlp.up_proj.weight");
    float *kk[1] = {kc}, *vv[1] = {vc};
    for (int k = 0; k < 2; k++) {
        llama_hook hk = {.layer = 0, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = BB, .pos_b = hb,
                         .pos_t = k ? ht2 : ht, .value = val, .grad = gr[k]};
        llama_model_zero_grad(m);
        if (k == 0) {
            llama_batch bt = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .n_out = n, .out_b = ob, .out_t = ot,
                              .logits = lg[0], .start_layer = 1, .x_start = x1};
            CHECK(llama_forward(m, &bt, &hk, 1, true, NULL, &err) == 0);
        } else {
            llama_batch fill = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .start_layer = 1, .x_start = x1,
                                .kv_T = TT, .kv_k = kk, .kv_v = vv};
            CHECK_MSG(llama_forward(m, &fill, NULL, 0, false, NULL, &err) == 0, "%s", err.msg);
            llama_batch bt = {.B = BB, .T = Tq, .ids = sids, .n_out = n, .out_b = ob2, .out_t = ot2, .logits = lg[1],
                              .start_layer = 1, .x_start = xs, .kv_T = TT, .kv_pos0 = p0, .kv_k = kk, .kv_v = vv};
            CHECK_MSG(llama_forward(m, &bt, &hk, 1, true, NULL, &err) == 0, "%s", err.msg);
        }
        CHECK(llama_backward(m, 0.0f, dl, &err) == 0);
        memcpy(pg[k], llama_model_grad(m, pi), sizeof pg[k]);
    }
    double e1 = 0, m1 = 0, e2 = 0, m2 = 0, e3 = 0, m3 = 0;
    for (int i = 0; i < n * V; i++) { e1 = fmax(e1, fabs(lg[0][i] - lg[1][i])); m1 = fmax(m1, fabs(lg[0][i])); }
    for (int i = 0; i < BB * D; i++) { e2 = fmax(e2, fabs(gr[0][i] - gr[1][i])); m2 = fmax(m2, fabs(gr[0][i])); }
    for (int i = 0; i < 16 * 24; i++) { e3 = fmax(e3, fabs(pg[0][i] - pg[1][i])); m3 = fmax(m3, fabs(pg[0][i])); }
    CHECK_MSG(m1 > 0 && e1 <= 1e-5 * m1, "logits: %g of %g", e1, m1);
    CHECK_MSG(m2 > 0 && e2 <= 1e-5 * m2, "hook gradient: %g of %g", e2, m2);
    CHECK_MSG(m3 > 0 && e3 <= 1e-5 * m3, "weight gradient: %g of %g", e3, m3);
    // refused: a prefix position beyond the caches, no caches, kv without a start
    llama_batch bad = {.B = BB, .T = Tq, .ids = sids, .start_layer = 1, .x_start = xs, .kv_T = 4, .kv_pos0 = p0,
                       .kv_k = kk, .kv_v = vv};
    CHECK(llama_forward(m, &bad, NULL, 0, false, NULL, &err) == -1 && strstr(err.msg, "exceeds kv_T"));
    bad.kv_T = TT; bad.kv_k = NULL;
    CHECK(llama_forward(m, &bad, NULL, 0, false, NULL, &err) == -1 && strstr(err.msg, "without kv_k"));
    bad.kv_k = kk; bad.start_layer = 2;
    CHECK(llama_forward(m, &bad, NULL, 0, false, NULL, &err) == -1 && strstr(err.msg, "start_layer"));
    // from the embedding (start_layer 0: every layer through the caches; eval_mc.c's shared header):
    // a fill of the whole sequences, then their suffixes alone, give the plain forward's logits
    float *c0 = calloc((size_t)4 * BB * TT * KV, 4), lz[2][BB * Tq * 37];
    float *k0[2] = {c0, c0 + BB * TT * KV}, *v0[2] = {c0 + 2 * BB * TT * KV, c0 + 3 * BB * TT * KV};
    llama_batch plain = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .n_out = n, .out_b = ob, .out_t = ot,
                         .logits = lz[0]};
    CHECK(llama_forward(m, &plain, NULL, 0, false, NULL, &err) == 0);
    llama_batch fill0 = {.B = BB, .T = TT, .ids = g_ids, .lens = g_lens, .kv_T = TT, .kv_k = k0, .kv_v = v0};
    CHECK_MSG(llama_forward(m, &fill0, NULL, 0, false, NULL, &err) == 0, "%s", err.msg);
    llama_batch suf = {.B = BB, .T = Tq, .ids = sids, .n_out = n, .out_b = ob2, .out_t = ot2, .logits = lz[1],
                       .kv_T = TT, .kv_pos0 = p0, .kv_k = k0, .kv_v = v0};
    CHECK_MSG(llama_forward(m, &suf, NULL, 0, false, NULL, &err) == 0, "%s", err.msg);
    double e0 = 0, m0 = 0;
    for (int i = 0; i < n * V; i++) { e0 = fmax(e0, fabs(lz[0][i] - lz[1][i])); m0 = fmax(m0, fabs(lz[0][i])); }
    CHECK_MSG(m0 > 0 && e0 <= 1e-5 * m0, "logits from layer 0 through the caches: %g of %g", e0, m0);
    free(c0);
    free(x0); free(x1); free(xs); free(kc); free(vc);
    llama_model_free(&m);
}

static void test_bad_input(void) {
    llama_model *m = tiny_model(true, false, 91);
    cis_err err = {0};
    int32_t ids[4] = {1, 2, 37, 3}, lens[1] = {4}, zero[1] = {0};
    llama_batch bt = {.B = 1, .T = 4, .ids = ids, .lens = lens};
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == -1);
    CHECK(strstr(err.msg, "ids[0][2]=37") != NULL);
    ids[2] = 3;
    bt.lens = zero;
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == -1);
    bt.lens = lens;
    bt.T = 100;  // beyond max_position_embeddings = 64 (and beyond the ids array: must not be read)
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == -1);
    bt.T = 4;
    llama_hook hk = {.layer = 2, .point = LLAMA_HOOK_E};
    CHECK(llama_forward(m, &bt, &hk, 1, false, NULL, &err) == -1);
    int32_t pb = 0, pt = 4;
    llama_hook hk2 = {.layer = 0, .point = LLAMA_HOOK_E, .n_pos = 1, .pos_b = &pb, .pos_t = &pt};
    CHECK(llama_forward(m, &bt, &hk2, 1, false, NULL, &err) == -1);
    int32_t tg[4] = {1, 50, 2, 3};
    bt.targets = tg;
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == -1);
    bt.targets = NULL;
    CHECK(llama_backward(m, 1.0f, NULL, &err) == -1);
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == 0);
    llama_config bad = *llama_model_config(m);
    bad.num_key_value_heads = 3;
    CHECK(llama_model_new(&bad, tbe, &err) == NULL);
    llama_model_free(&m);
}

static void test_param_names(void) {
    llama_model *m = tiny_model(false, false, 1);
    int n;
    llama_param *p = llama_model_params(m, &n);
    CHECK_EQ_INT(n, 1 + 2 * 9 + 2);
    CHECK_EQ_STR(p[0].name, "model.embed_tokens.weight");
    CHECK_EQ_STR(p[1].name, "model.layers.0.self_attn.q_proj.weight");
    CHECK_EQ_STR(p[7].name, "model.layers.0.mlp.down_proj.weight");
    CHECK_EQ_INT(p[7].shape[0], 16);
    CHECK_EQ_INT(p[7].shape[1], 24);
    CHECK_EQ_INT(p[2].shape[0], 8);  // k_proj [Hkv*Dh, D]
    CHECK_EQ_STR(p[9].name, "model.layers.0.post_attention_layernorm.weight");
    CHECK_EQ_STR(p[n - 2].name, "model.norm.weight");
    CHECK_EQ_STR(p[n - 1].name, "lm_head.weight");
    int64_t tot = 0;
    for (int i = 0; i < n; i++) tot += p[i].shape[0] * p[i].shape[1];
    CHECK_EQ_INT(tot, llama_model_numel(m));
    llama_model_free(&m);
    m = tiny_model(true, false, 1);
    p = llama_model_params(m, &n);
    CHECK_EQ_INT(n, 1 + 2 * 9 + 1);
    CHECK(llama_model_find(m, "lm_head.weight") == -1);
    // same seed, same weights
    llama_model *m2 = tiny_model(true, false, 1);
    CHECK(memcmp(p[3].data, llama_model_params(m2, NULL)[3].data, 8 * 16 * sizeof(float)) == 0);
    llama_model_free(&m2);
    llama_model_free(&m);
}

int main(void) {
    tbe = backend_open("cpu", &(backend_opts){.threads = 1}, NULL);
    make_batch();
    RUN(test_param_names);
    RUN(test_forward_matches_fp64);
    RUN(test_param_grads_tied);
    RUN(test_param_grads_untied);
    RUN(test_hook_grads);
    RUN(test_hook_read_replace);
    RUN(test_padding_invariance);
    RUN(test_generate_matches_recompute);
    RUN(test_loglik);
    RUN(test_training_deterministic);
    RUN(test_gradient_subset_and_ascent);
    RUN(test_partial_forward_seeded_grad);
    RUN(test_partial_lowest_layer);
    RUN(test_layer_by_layer);
    RUN(test_layer_run_to);
    RUN(test_started_forward);
    RUN(test_kv_prefix_forward);
    RUN(test_bad_input);
    return test_summary();
}
