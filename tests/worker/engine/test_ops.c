/* test_ops.c - every cpu backend op against an independent double-precision reference written
 * here: forwards on random inputs (relative error < 1e-5 of the output's scale), backwards
 * against central finite differences of the fp64 reference (L = Σ R ⊙ out for a random R),
 * GQA attention with causal and padding masks (and the KV-cache query layout), cross-entropy with
 * ignore index, the three Adam variants against hand-computed steps, and the LAPACK helpers
 * (L Lᵀ = A, A A⁻¹ = I, solves). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "worker/engine/backend.h"
#include "worker/engine/cpu/cpu_ops.h"
#include "worker/engine/tensor.h"

static backend *be;

// ---------------------------------------------------------------------------------------------
// helpers

static uint64_t rng_s = 0x1234567ull;
static double urand(void) {  // [0, 1)
    rng_s ^= rng_s << 13; rng_s ^= rng_s >> 7; rng_s ^= rng_s << 17;
    return (rng_s >> 11) * (1.0 / 9007199254740992.0);
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }
static float *frand(int64_t n, double sc) {
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(sc * nrand());
    return x;
}
static double *to_d(const float *x, int64_t n) {
    double *d = malloc((size_t)n * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}
/* max |a - b| / max(max |b|, floor) */
static double rel_err(const float *a, const double *b, int64_t n) {
    double num = 0, den = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        num = d > num ? d : num;
        den = fabs(b[i]) > den ? fabs(b[i]) : den;
    }
    return num / den;
}

/* a scalar function of a double vector (the fp64 reference composed with Σ R ⊙ out) */
typedef double (*scalar_fn)(void *ctx, const double *x);
/* central differences of f at x[0..n) */
static void fd_grad(scalar_fn f, void *ctx, double *x, int64_t n, double *g) {
    const double h = 1e-6;
    for (int64_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h; double fp = f(ctx, x);
        x[i] = x0 - h; double fm = f(ctx, x);
        x[i] = x0;
        g[i] = (fp - fm) / (2 * h);
    }
}

/* the same on `count` elements spread over x (idx[k] gets g[k]) for larger shapes */
static void fd_grad_some(scalar_fn f, void *ctx, double *x, int64_t n, int count, int64_t *idx, double *g) {
    const double h = 1e-6;
    for (int k = 0; k < count; k++) {
        int64_t i = (int64_t)((k * 2654435761u) % (uint64_t)n);
        double x0 = x[i];
        x[i] = x0 + h; double fp = f(ctx, x);
        x[i] = x0 - h; double fm = f(ctx, x);
        x[i] = x0;
        idx[k] = i;
        g[k] = (fp - fm) / (2 * h);
    }
}

#define FWD_TOL 1e-5
#define BWD_TOL 1e-4

// ---------------------------------------------------------------------------------------------
// matmul

static void test_gemm_transposes(void) {
    const int M = 7, N = 5, K = 9;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float *A = frand(M * K, 1), *B = frand(K * N, 1), *C = frand(M * N, 1);
            double ref[7 * 5];
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) {
                        double a = ta ? A[k * M + i] : A[i * K + k];
                        double b = tb ? B[j * K + k] : B[k * N + j];
                        s += a * b;
                    }
                    ref[i * N + j] = 0.5 * s + 0.25 * C[i * N + j];
                }
            BE(be, gemm, ta, tb, M, N, K, 0.5f, A, ta ? M : K, B, tb ? K : N, 0.25f, C, N);
            CHECK_MSG(rel_err(C, ref, M * N) < FWD_TOL, "transA=%d transB=%d err %g", ta, tb, rel_err(C, ref, M * N));
            free(A); free(B); free(C);
        }
}

typedef struct lin_ctx { int N, in, out, which; const double *x, *W, *R; } lin_ctx;
static double lin_loss(void *c_, const double *v) {
    lin_ctx *c = c_;
    const double *x = c->which == 0 ? v : c->x, *W = c->which == 1 ? v : c->W;
    double L = 0;
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->out; o++) {
            double s = 0;
            for (int i = 0; i < c->in; i++) s += x[n * c->in + i] * W[o * c->in + i];
            L += c->R[n * c->out + o] * s;
        }
    return L;
}

static void test_linear(void) {
    const int N = 6, in = 8, out = 5;
    float *x = frand(N * in, 1), *W = frand(out * in, 1), *R = frand(N * out, 1), *y = frand(N * out, 1);
    double *xd = to_d(x, N * in), *Wd = to_d(W, out * in), *Rd = to_d(R, N * out);
    // forward, also the accumulate flag
    float *y0 = malloc(N * out * sizeof *y0);
    memcpy(y0, y, N * out * sizeof *y);
    BE(be, linear_fwd, y, x, W, TENSOR_F32, N, in, out, true);
    double ref[6 * 5];
    for (int n = 0; n < N; n++)
        for (int o = 0; o < out; o++) {
            double s = 0;
            for (int i = 0; i < in; i++) s += xd[n * in + i] * Wd[o * in + i];
            ref[n * out + o] = s + y0[n * out + o];
        }
    CHECK(rel_err(y, ref, N * out) < FWD_TOL);
    // backward: dx overwritten, dW accumulated onto its previous content
    float *dx = frand(N * in, 1), *dW = frand(out * in, 1), *dW0 = malloc(out * in * sizeof(float));
    memcpy(dW0, dW, out * in * sizeof(float));
    BE(be, linear_bwd, dx, dW, R, x, W, TENSOR_F32, N, in, out, false);
    double gx[6 * 8], gW[5 * 8];
    lin_ctx c = {N, in, out, 0, xd, Wd, Rd};
    fd_grad(lin_loss, &c, xd, N * in, gx);
    c.which = 1;
    fd_grad(lin_loss, &c, Wd, out * in, gW);
    for (int i = 0; i < out * in; i++) gW[i] += dW0[i];
    CHECK_MSG(rel_err(dx, gx, N * in) < BWD_TOL, "dx err %g", rel_err(dx, gx, N * in));
    CHECK_MSG(rel_err(dW, gW, out * in) < BWD_TOL, "dW err %g", rel_err(dW, gW, out * in));
    free(x); free(W); free(R); free(y); free(y0); free(xd); free(Wd); free(Rd); free(dx); free(dW); free(dW0);
}

// ---------------------------------------------------------------------------------------------
// rmsnorm

typedef struct rms_ctx { int N, D, which; double eps; const double *x, *w, *R; } rms_ctx;
static void rms_ref(double *out, const double *x, const double *w, int N, int D, double eps) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += x[n * D + i] * x[n * D + i];
        double r = 1.0 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++) out[n * D + i] = w[i] * x[n * D + i] * r;
    }
}
static double rms_loss(void *c_, const double *v) {
    rms_ctx *c = c_;
    double out[64 * 16];
    rms_ref(out, c->which == 0 ? v : c->x, c->which == 1 ? v : c->w, c->N, c->D, c->eps);
    double L = 0;
    for (int i = 0; i < c->N * c->D; i++) L += c->R[i] * out[i];
    return L;
}

static void test_rmsnorm(void) {
    const int N = 5, D = 12;
    const float eps = 1e-5f;
    float *x = frand(N * D, 1.5), *w = frand(D, 1), *R = frand(N * D, 1);
    double *xd = to_d(x, N * D), *wd = to_d(w, D), *Rd = to_d(R, N * D);
    float out[5 * 12], rstd[5];
    double ref[5 * 12];
    BE(be, rmsnorm_fwd, out, rstd, x, w, N, D, eps);
    rms_ref(ref, xd, wd, N, D, eps);
    CHECK(rel_err(out, ref, N * D) < FWD_TOL);
    float dx[5 * 12], dw[12];
    memset(dw, 0, sizeof dw);
    BE(be, rmsnorm_bwd, dx, dw, R, x, w, rstd, N, D, false);
    double gx[5 * 12], gw[12];
    rms_ctx c = {N, D, 0, eps, xd, wd, Rd};
    fd_grad(rms_loss, &c, xd, N * D, gx);
    c.which = 1;
    fd_grad(rms_loss, &c, wd, D, gw);
    CHECK_MSG(rel_err(dx, gx, N * D) < BWD_TOL, "dx err %g", rel_err(dx, gx, N * D));
    CHECK_MSG(rel_err(dw, gw, D) < BWD_TOL, "dw err %g", rel_err(dw, gw, D));
    // acc_dx adds onto what was there
    float dx2[5 * 12];
    for (int i = 0; i < N * D; i++) dx2[i] = 1.0f;
    BE(be, rmsnorm_bwd, dx2, NULL, R, x, w, rstd, N, D, true);
    for (int i = 0; i < N * D; i++) gx[i] += 1.0;
    CHECK(rel_err(dx2, gx, N * D) < BWD_TOL);
    free(x); free(w); free(R); free(xd); free(wd); free(Rd);
}

// ---------------------------------------------------------------------------------------------
// rope

/* HF _compute_llama3_parameters, re-derived in double */
static double ref_inv_freq(int i, const rope_params *rp) {
    double inv = 1.0 / pow(rp->theta, (2.0 * i) / rp->head_dim);
    if (!rp->llama3_scaling) return inv;
    double wl = 2 * M_PI / inv, lo = rp->original_max_pos / rp->low_freq_factor,
           hi = rp->original_max_pos / rp->high_freq_factor;
    if (wl < hi) return inv;
    if (wl > lo) return inv / rp->factor;
    double s = (rp->original_max_pos / wl - rp->low_freq_factor) / (rp->high_freq_factor - rp->low_freq_factor);
    return (1 - s) * inv / rp->factor + s * inv;
}

static void test_rope_table(void) {
    rope_params plain = {.head_dim = 16, .theta = 10000.0f};
    rope_params l3 = {.head_dim = 64, .theta = 500000.0f, .llama3_scaling = 1, .factor = 8.0f,
                      .low_freq_factor = 1.0f, .high_freq_factor = 4.0f, .original_max_pos = 8192};
    rope_params *cases[2] = {&plain, &l3};
    for (int c = 0; c < 2; c++) {
        rope_params *rp = cases[c];
        const int P = 40, half = rp->head_dim / 2;
        float *cs = malloc(P * half * sizeof(float)), *sn = malloc(P * half * sizeof(float));
        double *rc = malloc(P * half * sizeof(double)), *rs = malloc(P * half * sizeof(double));
        BE(be, rope_table, cs, sn, P, rp);
        for (int p = 0; p < P; p++)
            for (int i = 0; i < half; i++) {
                rc[p * half + i] = cos(p * ref_inv_freq(i, rp));
                rs[p * half + i] = sin(p * ref_inv_freq(i, rp));
            }
        CHECK_MSG(rel_err(cs, rc, P * half) < FWD_TOL, "case %d cos err %g", c, rel_err(cs, rc, P * half));
        CHECK_MSG(rel_err(sn, rs, P * half) < FWD_TOL, "case %d sin err %g", c, rel_err(sn, rs, P * half));
        free(cs); free(sn); free(rc); free(rs);
    }
    // llama3 scaling really changes the low frequencies: the last pair is divided by 8
    float c1[32], s1[32], c2[32], s2[32];
    rope_params l3n = l3;
    l3n.llama3_scaling = 0;
    BE(be, rope_table, c1, s1, 1 + 0, &l3);  // position 0: cos 1
    CHECK_NEAR(c1[0], 1.0, 1e-7);
    float cc[2 * 32], ss[2 * 32], cn[2 * 32], sn2[2 * 32];
    BE(be, rope_table, cc, ss, 2, &l3);
    BE(be, rope_table, cn, sn2, 2, &l3n);
    double a_s = atan2(ss[32 + 31], cc[32 + 31]), a_n = atan2(sn2[32 + 31], cn[32 + 31]);
    CHECK_NEAR(a_s * 8.0, a_n, 1e-9 + 1e-5 * fabs(a_n));
    CHECK_NEAR(cc[32 + 0], cn[32 + 0], 1e-7);  // highest frequency unchanged
    (void)c2; (void)s2;
}

typedef struct rope_ctx { int N, nh, Dh; const int32_t *pos; const float *cs, *sn; const double *R; } rope_ctx;
static void rope_ref(double *out, const double *x, const rope_ctx *c) {
    int half = c->Dh / 2;
    for (int n = 0; n < c->N; n++)
        for (int h = 0; h < c->nh; h++)
            for (int i = 0; i < half; i++) {
                const double *xr = x + (n * c->nh + h) * c->Dh;
                double co = c->cs[c->pos[n] * half + i], si = c->sn[c->pos[n] * half + i];
                out[(n * c->nh + h) * c->Dh + i] = xr[i] * co - xr[i + half] * si;
                out[(n * c->nh + h) * c->Dh + i + half] = xr[i + half] * co + xr[i] * si;
            }
}
static double rope_loss(void *c_, const double *x) {
    rope_ctx *c = c_;
    double out[6 * 3 * 8];
    rope_ref(out, x, c);
    double L = 0;
    for (int i = 0; i < c->N * c->nh * c->Dh; i++) L += c->R[i] * out[i];
    return L;
}

static void test_rope(void) {
    const int N = 6, nh = 3, Dh = 8, P = 20, n = N * nh * Dh;
    rope_params rp = {.head_dim = Dh, .theta = 10000.0f};
    float cs[20 * 4], sn[20 * 4];
    BE(be, rope_table, cs, sn, P, &rp);
    int32_t pos[6] = {0, 3, 7, 19, 1, 11};
    float *x = frand(n, 1), *R = frand(n, 1);
    double *xd = to_d(x, n), *Rd = to_d(R, n), ref[6 * 3 * 8], g[6 * 3 * 8];
    rope_ctx c = {N, nh, Dh, pos, cs, sn, Rd};
    rope_ref(ref, xd, &c);
    BE(be, rope_fwd, x, pos, cs, sn, N, nh, Dh);
    CHECK(rel_err(x, ref, n) < FWD_TOL);
    fd_grad(rope_loss, &c, xd, n, g);
    BE(be, rope_bwd, R, pos, cs, sn, N, nh, Dh);
    CHECK_MSG(rel_err(R, g, n) < BWD_TOL, "rope bwd err %g", rel_err(R, g, n));
    free(x); free(R); free(xd); free(Rd);
}

// ---------------------------------------------------------------------------------------------
// attention

typedef struct att_ctx {
    int B, Tq, Tk, H, Hkv, Dh, which;
    const int32_t *qpos, *kvl;
    const double *q, *k, *v, *R;
} att_ctx;

static void att_ref(double *out, const double *q, const double *k, const double *v, const att_ctx *c) {
    int g = c->H / c->Hkv;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int t = 0; t < c->Tq; t++) {
                const double *qr = q + ((b * c->Tq + t) * c->H + h) * c->Dh;
                double *o = out + ((b * c->Tq + t) * c->H + h) * c->Dh;
                double s[256], mx = -1e300, z = 0;
                int nv = 0;
                for (int j = 0; j < c->Tk; j++) {
                    if (j > c->qpos[b * c->Tq + t] || j >= c->kvl[b]) continue;
                    const double *kr = k + ((b * c->Tk + j) * c->Hkv + h / g) * c->Dh;
                    double d = 0;
                    for (int i = 0; i < c->Dh; i++) d += qr[i] * kr[i];
                    s[j] = d / sqrt((double)c->Dh);
                    mx = s[j] > mx ? s[j] : mx;
                    nv = j + 1;
                }
                for (int i = 0; i < c->Dh; i++) o[i] = 0;
                for (int j = 0; j < nv; j++) z += exp(s[j] - mx);
                for (int j = 0; j < nv; j++) {
                    const double *vr = v + ((b * c->Tk + j) * c->Hkv + h / g) * c->Dh;
                    double p = exp(s[j] - mx) / z;
                    for (int i = 0; i < c->Dh; i++) o[i] += p * vr[i];
                }
            }
}
static double att_loss(void *c_, const double *x) {
    att_ctx *c = c_;
    int n = c->B * c->Tq * c->H * c->Dh;
    double *out = malloc(n * sizeof(double));
    att_ref(out, c->which == 0 ? x : c->q, c->which == 1 ? x : c->k, c->which == 2 ? x : c->v, c);
    double L = 0;
    for (int i = 0; i < n; i++) L += c->R[i] * out[i];
    free(out);
    return L;
}

static void check_attention(int B, int Tq, int Tk, const int32_t *qpos, const int32_t *kvl, const char *what,
                            int fd_count) {
    const int H = 4, Hkv = 2, Dh = 4;
    int nq = B * Tq * H * Dh, nk = B * Tk * Hkv * Dh;
    float *q = frand(nq, 1), *k = frand(nk, 1), *v = frand(nk, 1), *R = frand(nq, 1);
    float *out = malloc(nq * sizeof(float)), *probs = malloc((size_t)B * H * Tq * Tk * sizeof(float));
    double *qd = to_d(q, nq), *kd = to_d(k, nk), *vd = to_d(v, nk), *Rd = to_d(R, nq);
    double *ref = malloc(nq * sizeof(double));
    att_ctx c = {B, Tq, Tk, H, Hkv, Dh, 0, qpos, kvl, qd, kd, vd, Rd};
    att_ref(ref, qd, kd, vd, &c);
    BE(be, attention_fwd, out, probs, q, k, v, qpos, kvl, B, Tq, Tk, H, Hkv, Dh);
    CHECK_MSG(rel_err(out, ref, nq) < FWD_TOL, "%s fwd err %g", what, rel_err(out, ref, nq));
    // the same without a probs buffer
    float *out2 = malloc(nq * sizeof(float));
    BE(be, attention_fwd, out2, NULL, q, k, v, qpos, kvl, B, Tq, Tk, H, Hkv, Dh);
    CHECK(memcmp(out, out2, nq * sizeof(float)) == 0);
    // masked probabilities are exactly 0; visible rows sum to 1
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < Tq; t++) {
                const float *pr = probs + (((int64_t)b * H + h) * Tq + t) * Tk;
                double s = 0;
                for (int j = 0; j < Tk; j++) {
                    if (j > qpos[b * Tq + t] || j >= kvl[b]) CHECK(pr[j] == 0.0f);
                    s += pr[j];
                }
                CHECK_NEAR(s, 1.0, 1e-5);
            }
    float *dq = malloc(nq * sizeof(float)), *dk = malloc(nk * sizeof(float)), *dv = malloc(nk * sizeof(float));
    BE(be, attention_bwd, dq, dk, dv, R, probs, q, k, v, kvl, B, Tq, Tk, H, Hkv, Dh);
    double *g = malloc((nq > nk ? nq : nk) * sizeof(double));
    if (Tq == Tk && fd_count > 0) {  // sampled elements (long sequences: several query blocks)
        int64_t idx[64];
        double gs[64];
        float *an[3] = {dq, dk, dv};
        double *xs[3] = {qd, kd, vd};
        int64_t ns[3] = {nq, nk, nk};
        for (int w = 0; w < 3; w++) {
            c.which = w;
            fd_grad_some(att_loss, &c, xs[w], ns[w], fd_count, idx, gs);
            double num = 0, den = 1e-30;
            for (int i = 0; i < fd_count; i++) { num = fmax(num, fabs(an[w][idx[i]] - gs[i])); den = fmax(den, fabs(gs[i])); }
            CHECK_MSG(num / den < BWD_TOL, "%s grad %d err %g", what, w, num / den);
        }
    } else if (Tq == Tk) {  // the backward is defined for self-attention over the batch's own keys
        fd_grad(att_loss, &c, qd, nq, g);
        CHECK_MSG(rel_err(dq, g, nq) < BWD_TOL, "%s dq err %g", what, rel_err(dq, g, nq));
        c.which = 1;
        fd_grad(att_loss, &c, kd, nk, g);
        CHECK_MSG(rel_err(dk, g, nk) < BWD_TOL, "%s dk err %g", what, rel_err(dk, g, nk));
        c.which = 2;
        fd_grad(att_loss, &c, vd, nk, g);
        CHECK_MSG(rel_err(dv, g, nk) < BWD_TOL, "%s dv err %g", what, rel_err(dv, g, nk));
    }
    free(q); free(k); free(v); free(R); free(out); free(out2); free(probs); free(qd); free(kd); free(vd);
    free(Rd); free(ref); free(dq); free(dk); free(dv); free(g);
}

static void test_attention_gqa_masks(void) {
    // two right-padded sequences (lengths 6 and 3), H=4 query heads over Hkv=2 kv heads
    int32_t qpos[12], kvl[2] = {6, 3};
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 6; t++) qpos[b * 6 + t] = t;
    check_attention(2, 6, 6, qpos, kvl, "self", 0);
    int32_t kvl_full[2] = {6, 6};
    check_attention(2, 6, 6, qpos, kvl_full, "causal", 0);
}

static void test_attention_cache_layout(void) {
    // queries at arbitrary positions against a cache of capacity 6 (decode step shape)
    int32_t qpos[4] = {4, 5, 2, 0}, kvl[2] = {6, 3};
    check_attention(2, 2, 6, qpos, kvl, "cache", 0);
}

static void test_attention_blocks(void) {
    // sequences longer than one query block (64 rows): 150 and 90 tokens padded to 150
    int32_t qpos[300], kvl[2] = {150, 90};
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 150; t++) qpos[b * 150 + t] = t;
    check_attention(2, 150, 150, qpos, kvl, "blocks", 40);
}

// ---------------------------------------------------------------------------------------------
// swiglu, embedding

typedef struct sw_ctx { int n, which; const double *g, *u, *R; } sw_ctx;
static double sw_loss(void *c_, const double *x) {
    sw_ctx *c = c_;
    const double *g = c->which == 0 ? x : c->g, *u = c->which == 1 ? x : c->u;
    double L = 0;
    for (int i = 0; i < c->n; i++) L += c->R[i] * g[i] / (1 + exp(-g[i])) * u[i];
    return L;
}

static void test_attention_threads_identical(void) {
    // tasks (sequence, kv head) over 1, 2 and 3 threads give bit-identical outputs and gradients
    const int B = 3, T = 70, H = 4, Hkv = 2, Dh = 8;
    const int nq = B * T * H * Dh, nk = B * T * Hkv * Dh, np = B * H * T * T;
    int32_t qpos[3 * 70], kvl[3] = {70, 33, 1};
    for (int i = 0; i < B * T; i++) qpos[i] = i % T;
    float *q = frand(nq, 1), *k = frand(nk, 1), *v = frand(nk, 1), *dout = frand(nq, 1);
    float *o[3], *p[3], *dq[3], *dk[3], *dv[3];
    for (int r = 0; r < 3; r++) {
        o[r] = malloc(nq * 4); p[r] = malloc((size_t)np * 4); dq[r] = malloc(nq * 4); dk[r] = malloc(nk * 4); dv[r] = malloc(nk * 4);
        backend_set_threads(be, r + 1);
        BE(be, attention_fwd, o[r], p[r], q, k, v, qpos, kvl, B, T, T, H, Hkv, Dh);
        BE(be, attention_bwd, dq[r], dk[r], dv[r], dout, p[r], q, k, v, kvl, B, T, T, H, Hkv, Dh);
    }
    backend_set_threads(be, 1);
    for (int r = 1; r < 3; r++) {
        CHECK(memcmp(o[0], o[r], nq * 4) == 0);
        CHECK(memcmp(p[0], p[r], (size_t)np * 4) == 0);
        CHECK(memcmp(dq[0], dq[r], nq * 4) == 0);
        CHECK(memcmp(dk[0], dk[r], nk * 4) == 0);
        CHECK(memcmp(dv[0], dv[r], nk * 4) == 0);
    }
    for (int r = 0; r < 3; r++) { free(o[r]); free(p[r]); free(dq[r]); free(dk[r]); free(dv[r]); }
    free(q); free(k); free(v); free(dout);
}

static void test_swiglu(void) {
    const int n = 40;
    float *g = frand(n, 2), *u = frand(n, 1), *R = frand(n, 1), out[40], dg[40], du[40];
    double *gd = to_d(g, n), *ud = to_d(u, n), *Rd = to_d(R, n), ref[40], gg[40], gu[40];
    for (int i = 0; i < n; i++) ref[i] = gd[i] / (1 + exp(-gd[i])) * ud[i];
    BE(be, swiglu_fwd, out, g, u, n);
    CHECK(rel_err(out, ref, n) < FWD_TOL);
    BE(be, swiglu_bwd, dg, du, R, g, u, n);
    sw_ctx c = {n, 0, gd, ud, Rd};
    fd_grad(sw_loss, &c, gd, n, gg);
    c.which = 1;
    fd_grad(sw_loss, &c, ud, n, gu);
    CHECK(rel_err(dg, gg, n) < BWD_TOL);
    CHECK(rel_err(du, gu, n) < BWD_TOL);
    free(g); free(u); free(R); free(gd); free(ud); free(Rd);
}

static void test_embedding(void) {
    const int V = 7, D = 5, N = 6;
    int32_t ids[6] = {3, 0, 6, 3, 3, 1};
    float *W = frand(V * D, 1), out[30], dW[35], *R = frand(N * D, 1);
    BE(be, embedding_fwd, out, W, ids, N, D);
    for (int n = 0; n < N; n++) CHECK(memcmp(out + n * D, W + ids[n] * D, D * sizeof(float)) == 0);
    for (int i = 0; i < V * D; i++) dW[i] = 0.5f;
    BE(be, embedding_bwd, dW, R, ids, N, D);
    double ref[35];
    for (int i = 0; i < V * D; i++) ref[i] = 0.5;
    for (int n = 0; n < N; n++)
        for (int i = 0; i < D; i++) ref[ids[n] * D + i] += R[n * D + i];
    CHECK(rel_err(dW, ref, V * D) < FWD_TOL);
    free(W); free(R);
}

// ---------------------------------------------------------------------------------------------
// cross-entropy

typedef struct ce_ctx { int N, V; const int32_t *t; } ce_ctx;
static double ce_ref(void *c_, const double *x) {
    ce_ctx *c = c_;
    double tot = 0;
    int cnt = 0;
    for (int n = 0; n < c->N; n++) {
        if (c->t[n] == -100) continue;
        double mx = -1e300, z = 0;
        for (int j = 0; j < c->V; j++) mx = x[n * c->V + j] > mx ? x[n * c->V + j] : mx;
        for (int j = 0; j < c->V; j++) z += exp(x[n * c->V + j] - mx);
        tot += mx + log(z) - x[n * c->V + c->t[n]];
        cnt++;
    }
    return tot / cnt;
}

static void test_cross_entropy(void) {
    const int N = 6, V = 11;
    int32_t t[6] = {3, -100, 10, 0, -100, 7};
    float *x = frand(N * V, 3), lse[6], loss[6], dx[66];
    double *xd = to_d(x, N * V), g[66];
    int nv = 0;
    double m = BE(be, ce_fwd, loss, lse, x, t, N, V, &nv);
    ce_ctx c = {N, V, t};
    CHECK_EQ_INT(nv, 4);
    CHECK_NEAR(m, ce_ref(&c, xd), 1e-6 * fabs(m));
    CHECK(loss[1] == 0.0f && loss[4] == 0.0f);
    BE(be, ce_bwd, dx, x, lse, t, N, V, 1.0f / nv);
    fd_grad(ce_ref, &c, xd, N * V, g);
    CHECK_MSG(rel_err(dx, g, N * V) < BWD_TOL, "ce bwd err %g", rel_err(dx, g, N * V));
    for (int j = 0; j < V; j++) CHECK(dx[1 * V + j] == 0.0f);
    // in place (dlogits aliasing logits) gives the same
    BE(be, ce_bwd, x, x, lse, t, N, V, 1.0f / nv);
    CHECK(memcmp(x, dx, sizeof dx) == 0);
    // all ignored: mean 0, no NaN
    int32_t none[6] = {-100, -100, -100, -100, -100, -100};
    CHECK(BE(be, ce_fwd, NULL, NULL, dx, none, N, V, &nv) == 0.0 && nv == 0);
    free(x); free(xd);
}

// ---------------------------------------------------------------------------------------------
// elementwise, reductions

static void test_threaded_rows(void) {
    // cross-entropy and SwiGLU above their parallel thresholds: per-element results identical for
    // 1 and 2 threads; the mean equal up to the order of the per-range sums; and still right
    const int N = 300, V = 1000;
    float *x = frand((int64_t)N * V, 2), *l1 = malloc(N * 4), *l2 = malloc(N * 4), *s1 = malloc(N * 4), *s2 = malloc(N * 4);
    float *d1 = malloc((size_t)N * V * 4), *d2 = malloc((size_t)N * V * 4);
    int32_t *t = malloc(N * 4);
    for (int n = 0; n < N; n++) t[n] = n % 7 == 3 ? -100 : (n * 31) % V;
    backend_set_threads(be, 1);
    int c1, c2;
    double m1 = BE(be, ce_fwd, l1, s1, x, t, N, V, &c1);
    BE(be, ce_bwd, d1, x, s1, t, N, V, 1.0f / c1);
    backend_set_threads(be, 2);
    double m2 = BE(be, ce_fwd, l2, s2, x, t, N, V, &c2);
    BE(be, ce_bwd, d2, x, s2, t, N, V, 1.0f / c2);
    CHECK(c1 == c2 && memcmp(l1, l2, N * 4) == 0 && memcmp(s1, s2, N * 4) == 0);
    CHECK(memcmp(d1, d2, (size_t)N * V * 4) == 0);
    CHECK_NEAR(m1, m2, 1e-12 * m1);
    double *xd = to_d(x, (int64_t)N * V);
    ce_ctx c = {N, V, t};
    CHECK_NEAR(m2, ce_ref(&c, xd), 1e-6 * m2);
    // swiglu
    const int64_t n = 300000;
    float *g = frand(n, 2), *u = frand(n, 1), *o1 = malloc(n * 4), *o2 = malloc(n * 4), *dg1 = malloc(n * 4),
          *du1 = malloc(n * 4), *dg2 = malloc(n * 4), *du2 = malloc(n * 4);
    backend_set_threads(be, 1);
    BE(be, swiglu_fwd, o1, g, u, n);
    BE(be, swiglu_bwd, dg1, du1, u, g, u, n);
    backend_set_threads(be, 2);
    BE(be, swiglu_fwd, o2, g, u, n);
    BE(be, swiglu_bwd, dg2, du2, u, g, u, n);
    backend_set_threads(be, 1);
    CHECK(memcmp(o1, o2, n * 4) == 0 && memcmp(dg1, dg2, n * 4) == 0 && memcmp(du1, du2, n * 4) == 0);
    double worst = 0;
    for (int64_t i = 0; i < n; i += 997) worst = fmax(worst, fabs(o2[i] - g[i] / (1 + exp(-(double)g[i])) * u[i]) / (fabs(o2[i]) + 1e-3));
    CHECK(worst < 1e-5);
    free(x); free(l1); free(l2); free(s1); free(s2); free(d1); free(d2); free(t); free(xd);
    free(g); free(u); free(o1); free(o2); free(dg1); free(du1); free(dg2); free(du2);
}

static void test_elementwise(void) {
    const int n = 33;
    float *a = frand(n, 1), *b = frand(n, 1), out[33], y[33];
    double ref[33], s = 0, ss = 0;
    BE(be, add, out, a, b, n);
    for (int i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
    CHECK(rel_err(out, ref, n) < FWD_TOL);
    memcpy(y, a, sizeof y);
    BE(be, axpy, y, -0.75f, b, n);
    for (int i = 0; i < n; i++) ref[i] = (double)a[i] - 0.75 * b[i];
    CHECK(rel_err(y, ref, n) < FWD_TOL);
    BE(be, scale, y, 2.0f, n);
    for (int i = 0; i < n; i++) ref[i] *= 2;
    CHECK(rel_err(y, ref, n) < FWD_TOL);
    for (int i = 0; i < n; i++) { s += a[i]; ss += (double)a[i] * a[i]; }
    CHECK_NEAR(BE(be, sum, a, n), s, 1e-12);
    CHECK_NEAR(BE(be, sumsq, a, n), ss, 1e-12);
    free(a); free(b);
}

// ---------------------------------------------------------------------------------------------
// Adam variants against hand-computed steps

static void test_adam_variants(void) {
    const int n = 4;
    const float p0[4] = {0.5f, -1.0f, 2.0f, 0.0f}, g1[4] = {0.1f, -0.2f, 0.3f, 1.0f}, g2[4] = {-0.05f, 0.4f, 0.3f, 0.0f};
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, wd = 0.1;
    for (int var = 0; var < 3; var++) {
        double eps = var == ADAM_HF_ADAMW ? 1e-6 : 1e-8;
        float p[4], m[4] = {0}, v[4] = {0};
        memcpy(p, p0, sizeof p);
        double P[4], M[4] = {0}, Vv[4] = {0};
        for (int i = 0; i < n; i++) P[i] = p0[i];
        for (int step = 1; step <= 2; step++) {
            const float *g = step == 1 ? g1 : g2;
            adam_params ap = {(adam_variant)var, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd, step};
            BE(be, adam_step, p, g, m, v, n, &ap);
            double bc1 = 1 - pow(b1, step), bc2 = 1 - pow(b2, step);
            for (int i = 0; i < n; i++) {
                double gi = g[i];
                if (var == ADAM_TORCH_ADAM) gi += wd * P[i];           // L2 into the gradient
                if (var == ADAM_TORCH_ADAMW) P[i] *= 1 - lr * wd;      // decoupled, before the step
                M[i] = b1 * M[i] + (1 - b1) * gi;
                Vv[i] = b2 * Vv[i] + (1 - b2) * gi * gi;
                if (var == ADAM_HF_ADAMW) {
                    P[i] -= lr * sqrt(bc2) / bc1 * M[i] / (sqrt(Vv[i]) + eps);
                    P[i] -= lr * wd * P[i];                            // decoupled, after the step
                } else {
                    P[i] -= lr / bc1 * M[i] / (sqrt(Vv[i]) / sqrt(bc2) + eps);
                }
            }
        }
        CHECK_MSG(rel_err(p, P, n) < 1e-6, "variant %d err %g", var, rel_err(p, P, n));
    }
    // the variants differ where they should: eps placement (hf) vs decoupled decay (torch)
    float pa[1] = {1.0f}, pb[1] = {1.0f}, ma[1] = {0}, va[1] = {0}, mb[1] = {0}, vb[1] = {0}, gg[1] = {1e-7f};
    adam_params a = {ADAM_TORCH_ADAMW, 0.1f, 0.9f, 0.999f, 1e-6f, 0.0f, 1};
    adam_params b = {ADAM_HF_ADAMW, 0.1f, 0.9f, 0.999f, 1e-6f, 0.0f, 1};
    BE(be, adam_step, pa, gg, ma, va, 1, &a);
    BE(be, adam_step, pb, gg, mb, vb, 1, &b);
    CHECK(fabs(pa[0] - pb[0]) > 1e-4);
}

// ---------------------------------------------------------------------------------------------
// linear algebra

static float *spd(int n) {
    float *M = frand(n * n, 1), *A = calloc(n * n, sizeof(float));
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += (double)M[i * n + k] * M[j * n + k];
            A[i * n + j] = (float)(s + (i == j ? n : 0));
        }
    free(M);
    return A;
}
static double max_abs_diff_identity(const float *A, const float *B, int n) {  // |A B - I|
    double e = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += (double)A[i * n + k] * B[k * n + j];
            double d = fabs(s - (i == j));
            e = d > e ? d : e;
        }
    return e;
}

static void test_linalg(void) {
    const int n = 12;
    float *A = spd(n), *L = malloc(n * n * sizeof(float)), *U = malloc(n * n * sizeof(float));
    memcpy(L, A, n * n * sizeof(float));
    memcpy(U, A, n * n * sizeof(float));
    CHECK_EQ_INT(BE(be, cholesky, L, n, false), 0);
    CHECK_EQ_INT(BE(be, cholesky, U, n, true), 0);
    double e1 = 0, e2 = 0, sc = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s1 = 0, s2 = 0;
            for (int k = 0; k < n; k++) { s1 += (double)L[i * n + k] * L[j * n + k]; s2 += (double)U[k * n + i] * U[k * n + j]; }
            e1 = fmax(e1, fabs(s1 - A[i * n + j]));
            e2 = fmax(e2, fabs(s2 - A[i * n + j]));
            sc = fmax(sc, fabs(A[i * n + j]));
            if (j > i) CHECK(L[i * n + j] == 0.0f);
            if (j < i) CHECK(U[i * n + j] == 0.0f);
        }
    CHECK_MSG(e1 / sc < 1e-5 && e2 / sc < 1e-5, "L Lt err %g, Ut U err %g", e1 / sc, e2 / sc);
    // triangular inverse: L · L⁻¹ = I
    float *Li = malloc(n * n * sizeof(float));
    memcpy(Li, L, n * n * sizeof(float));
    CHECK_EQ_INT(BE(be, tri_inv, Li, n, false), 0);
    CHECK_MSG(max_abs_diff_identity(L, Li, n) < 1e-5, "L Linv err %g", max_abs_diff_identity(L, Li, n));
    // SPD inverse: A · A⁻¹ = I
    float *Ai = malloc(n * n * sizeof(float));
    memcpy(Ai, A, n * n * sizeof(float));
    CHECK_EQ_INT(BE(be, spd_inverse, Ai, n), 0);
    CHECK_MSG(max_abs_diff_identity(A, Ai, n) < 1e-5, "A Ainv err %g", max_abs_diff_identity(A, Ai, n));
    // solves: A X = B through the factor; L Y = B through strsm; Lᵀ Z = B
    const int r = 3;
    float *B0 = frand(n * r, 1), *X = malloc(n * r * sizeof(float)), *Y = malloc(n * r * sizeof(float));
    memcpy(X, B0, n * r * sizeof(float));
    CHECK_EQ_INT(BE(be, chol_solve, L, X, n, r, false), 0);
    double ref[12 * 3];
    for (int i = 0; i < n * r; i++) ref[i] = B0[i];
    float AX[36];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < r; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += (double)A[i * n + k] * X[k * r + j];
            AX[i * r + j] = (float)s;
        }
    CHECK(rel_err(AX, ref, n * r) < 1e-5);
    for (int tr = 0; tr < 2; tr++) {
        memcpy(Y, B0, n * r * sizeof(float));
        BE(be, tri_solve, L, Y, n, r, false, tr);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < r; j++) {
                double s = 0;
                for (int k = 0; k < n; k++) s += (double)(tr ? L[k * n + i] : L[i * n + k]) * Y[k * r + j];
                AX[i * r + j] = (float)s;
            }
        CHECK_MSG(rel_err(AX, ref, n * r) < 1e-5, "tri_solve trans=%d", tr);
    }
    // not positive definite: a positive minor index, no crash
    float bad[4] = {1, 2, 2, 1};
    CHECK(BE(be, cholesky, bad, 2, false) > 0);
    free(A); free(L); free(U); free(Li); free(Ai); free(B0); free(X); free(Y);
}

static void test_vexp(void) {
    // the vectorised exponential every softmax and SiLU uses: within 2e-7 relative of exp over the
    // whole non-underflowing range, identical in the vector body and the scalar tail
    const int n = 20011;
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    for (int i = 0; i < n; i++) x[i] = -87.0f + 175.0f * (float)i / n;
    cpu_vexp(y, x, n);
    double worst = 0;
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs(y[i] - exp((double)x[i])) / exp((double)x[i]));
    CHECK_MSG(worst < 2e-7, "worst %g", worst);
    float t1[3], t2[11];
    cpu_vexp(t1, x + 8, 3);  // tail path
    cpu_vexp(t2, x, 11);     // 8 in the vector body, 3 in the tail
    CHECK(memcmp(t1, y + 8, sizeof t1) == 0 && memcmp(t2, y, sizeof t2) == 0);
    float big[2] = {-1000.0f, 1000.0f}, o[2];
    cpu_vexp(o, big, 2);
    CHECK(o[0] >= 0.0f && o[0] < 1e-37f && isfinite(o[1]));
    free(x); free(y);
}

static void test_row_helpers(void) {
    // max / exp-and-sum / scale / dot / scaled product over lengths that exercise the vector body
    // and the tail, with the extreme element in every position
    for (int n = 1; n <= 13; n++) {
        for (int at = 0; at < n; at++) {
            float x[13], y[13], z[13];
            for (int i = 0; i < n; i++) x[i] = (float)(0.1 * i - 0.05 * (i % 3));
            x[at] = 5.0f;
            CHECK_MSG(cpu_vmax(x, n) == 5.0f, "vmax n=%d at=%d", n, at);
            double s = cpu_vexp_sum(y, x, 5.0f, n), rs = 0;
            for (int i = 0; i < n; i++) {
                double e = exp((double)(x[i] - 5.0f));  // the shift is applied in fp32
                rs += e;
                CHECK(fabs(y[i] - e) <= 2e-7 * e);
            }
            CHECK_NEAR(s, rs, 1e-6 * rs);
            memcpy(z, x, sizeof z);
            cpu_vscale(z, -2.0f, n);
            double d = cpu_vdot(x, z, n), rd = 0;
            for (int i = 0; i < n; i++) { CHECK(z[i] == -2.0f * x[i]); rd += (double)x[i] * z[i]; }
            CHECK_NEAR(d, rd, 1e-6 * fabs(rd) + 1e-12);  // fp32 products, double sum
            memcpy(z, x, sizeof z);
            cpu_vmul_scaled(z, y, 0.5f, n);
            for (int i = 0; i < n; i++) CHECK_NEAR(z[i], x[i] * y[i] * 0.5, 1e-6 * fabs(x[i] * y[i]) + 1e-12);
        }
    }
    CHECK(cpu_vmax(NULL, 0) == -INFINITY);
}

static void test_tensor(void) {
    int64_t shp[3] = {2, 3, 4};
    tensor *t = tensor_new(TENSOR_F32, 3, shp, "x");
    CHECK(t && t->owner && tensor_numel(t) == 24 && tensor_nbytes(t) == 96);
    CHECK(tensor_f32(t)[23] == 0.0f);
    char buf[64];
    CHECK_EQ_STR(tensor_shape_str(t, buf, sizeof buf), "[2, 3, 4]");
    tensor v = tensor_view(TENSOR_F32, tensor_f32(t), 3, shp, "view");
    CHECK(!v.owner && tensor_same_shape(&v, t) && v.data == t->data);
    int64_t bad[2] = {2, -1};
    CHECK(tensor_new(TENSOR_F32, 2, bad, NULL) == NULL);
    CHECK(tensor_new(TENSOR_F32, 5, shp, NULL) == NULL);
    CHECK(tensor_dtype_size(TENSOR_BF16) == 2);
    CHECK_EQ_STR(tensor_dtype_name(TENSOR_F16), "F16");
    tensor_free(&t);
    CHECK(t == NULL);
}

static void test_backend_table(void) {
    CHECK(be != NULL);
    CHECK_EQ_STR(be->name, "cpu");
    cis_err e = {0};
    backend *nb = backend_open("no-such-backend", NULL, &e);
    CHECK(nb == NULL && strstr(e.msg, "no-such-backend"));
    nb = backend_open("cuda:0", NULL, &e);
#ifndef CISWEEP_CUDA
    CHECK(nb == NULL && strstr(e.msg, "cuda:0"));
#endif
    backend_close(&nb);
    // every entry is filled
    const void *const *fp = (const void *const *)((const char *)be->iface + sizeof(const char *));
    size_t nfp = (sizeof(backend_iface) - sizeof(const char *)) / sizeof(void *);
    for (size_t i = 0; i < nfp; i++) CHECK_MSG(fp[i] != NULL, "entry %zu", i);
}

int main(void) {
    be = backend_open("cpu", &(backend_opts){.threads = 1}, NULL);
    backend_set_threads(be, 1);
    RUN(test_backend_table);
    RUN(test_tensor);
    RUN(test_vexp);
    RUN(test_row_helpers);
    RUN(test_gemm_transposes);
    RUN(test_linear);
    RUN(test_rmsnorm);
    RUN(test_rope_table);
    RUN(test_rope);
    RUN(test_attention_gqa_masks);
    RUN(test_attention_cache_layout);
    RUN(test_attention_blocks);
    RUN(test_attention_threads_identical);
    RUN(test_swiglu);
    RUN(test_embedding);
    RUN(test_cross_entropy);
    RUN(test_threaded_rows);
    RUN(test_elementwise);
    RUN(test_adam_variants);
    RUN(test_linalg);
    return test_summary();
}
