/* test_backend_ops.c - every op of the backend interface on every backend in the build, against a
 * double-precision reference (ggml's test-backend-ops pattern).
 *
 * Each case builds random inputs on the host, uploads them to the backend under test, runs the
 * op, downloads the outputs and compares them with a reference computed here in double: the
 * formula itself for forward ops, and central finite differences (in double) of the reference
 * forward for backward ops, so a backward op is checked element by element against the
 * derivative of its own forward. The tolerance is per op and weight dtype; the first mismatches
 * (index, got, want) are printed. Memory entries (alloc, upload, download, copy, memset,
 * workspace, mem_info, tensor_new_on) are cases too.
 *
 * Backends: "cpu" always; "cuda:0" where the build has CUDA and a GPU answers, else every case
 * prints "ok - cuda:0/... # SKIP ...". `test_backend_ops --perf` prints the time per op instead
 * of (after) checking; `--backend NAME` restricts to one backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tests/testlib.h"
#include "common/util.h"
#include "worker/engine/backend.h"
#include "worker/engine/half.h"

static backend *be;      /* the backend under test */
static bool perf;        /* --perf: time each op */

// ---------------------------------------------------------------------------------------------
// host helpers

static uint64_t rs = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17;
    return (rs >> 11) * (1.0 / 9007199254740992.0);
}
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }
static float *frand(int64_t n, double sc) {
    float *x = malloc((size_t)(n ? n : 1) * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(sc * nrand());
    return x;
}
static double *dcopy(const float *x, int64_t n) {
    double *d = malloc((size_t)(n ? n : 1) * sizeof *d);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* compares got with want: max |got - want| <= tol * max(max |want|, 1); prints the first 5
 * elements that break the bound. Returns whether it holds (and counts as a check). */
static bool close_to(const char *what, const float *got, const double *want, int64_t n, double tol) {
    double scale = 1.0, worst = 0;
    for (int64_t i = 0; i < n; i++) scale = fabs(want[i]) > scale ? fabs(want[i]) : scale;
    int shown = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= tol * scale)) {  // also catches NaN
            if (shown++ < 5) fprintf(stderr, "  %s[%lld]: got %.9g, want %.9g (|diff| %.3g > %.3g)\n", what, (long long)i,
                                     got[i], want[i], d, tol * scale);
        }
        worst = d > worst ? d : worst;
    }
    CHECK_MSG(shown == 0, "%s: %d of %lld elements off (max |diff| %.3g, scale %.3g)", what, shown, (long long)n, worst, scale);
    return shown == 0;
}

// ---------------------------------------------------------------------------------------------
// backend memory helpers: every allocation of a case is freed by release()

#define MAX_BUFS 64
static void *bufs[MAX_BUFS];
static int nbufs;

static void *dev_alloc(size_t bytes) {
    cis_err e = {0};
    void *p = backend_alloc(be, bytes ? bytes : 4, &e);
    CIS_ASSERT(p && nbufs < MAX_BUFS);
    bufs[nbufs++] = p;
    return p;
}
static void *up(const void *host, size_t bytes) {
    void *p = dev_alloc(bytes);
    backend_upload(be, p, host, bytes);
    return p;
}
static float *upf(const float *x, int64_t n) { return up(x, (size_t)n * sizeof(float)); }
static int32_t *upi(const int32_t *x, int64_t n) { return up(x, (size_t)n * sizeof(int32_t)); }
static float *downf(const float *d, int64_t n) {
    float *h = malloc((size_t)(n ? n : 1) * sizeof *h);
    backend_download(be, h, d, (size_t)n * sizeof(float));
    return h;
}
static void release(void) {
    for (int i = 0; i < nbufs; i++) backend_free(be, bufs[i]);
    nbufs = 0;
}

/* --perf: run `stmt` until 0.2 s have passed and print the time per call */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
#define PERF(label, stmt) do { if (perf) { \
    double _t0 = now_s(), _el; long _n = 0; \
    do { stmt; backend_synchronize(be); _n++; _el = now_s() - _t0; } while (_el < 0.2 && _n < 100000); \
    printf("# perf %-8s %-28s %10.2f us/call (%ld calls)\n", backend_name(be), label, _el / _n * 1e6, _n); } } while (0)

// ---------------------------------------------------------------------------------------------
// finite differences of a double function (the reference forward, dotted with a cotangent)

typedef double (*scalar_fn)(void *ctx, const double *x);
static void fd_grad(scalar_fn f, void *ctx, double *x, int64_t n, double *g) {
    for (int64_t i = 0; i < n; i++) {
        double x0 = x[i], h = 1e-6 * (fabs(x0) > 1 ? fabs(x0) : 1);
        x[i] = x0 + h; double fp = f(ctx, x);
        x[i] = x0 - h; double fm = f(ctx, x);
        x[i] = x0;
        g[i] = (fp - fm) / (2 * h);
    }
}

// ---------------------------------------------------------------------------------------------
// memory entries

static void case_memory(void) {
    const int64_t n = 1000;
    float *h = frand(n, 1), *back = malloc(n * sizeof *back);
    float *a = upf(h, n), *b = dev_alloc(n * sizeof(float));
    backend_copy(be, b, a, n * sizeof(float));
    backend_download(be, back, b, n * sizeof(float));
    CHECK(memcmp(back, h, n * sizeof *h) == 0);
    backend_memset(be, b + 10, 0, 20 * sizeof(float));
    backend_download(be, back, b, n * sizeof(float));
    bool zeros = true, rest = true;
    for (int i = 0; i < n; i++) {
        if (i >= 10 && i < 30) zeros &= back[i] == 0.0f;
        else rest &= back[i] == h[i];
    }
    CHECK(zeros && rest);
    // workspace: grows, keeps its pointer for smaller requests
    void *w1 = backend_workspace(be, 1 << 16), *w2 = backend_workspace(be, 100);
    CHECK(w1 && w1 == w2);
    void *w3 = backend_workspace(be, 1 << 20);
    CHECK(w3 != NULL);
    uint64_t fb = 0, tb = 0;
    cis_err e = {0};
    CHECK(backend_mem_info(be, &fb, &tb, &e) == 0 && tb > 0 && fb <= tb);
    // a tensor in the backend's memory
    int64_t shp[2] = {3, 5};
    tensor *t = tensor_new_on(be, TENSOR_F32, 2, shp, "t");
    CHECK(t && t->be == be && tensor_numel(t) == 15);
    if (t) {
        backend_download(be, back, t->data, 15 * sizeof(float));
        bool z = true;
        for (int i = 0; i < 15; i++) z &= back[i] == 0.0f;
        CHECK(z);
    }
    tensor_free(&t);
    CHECK(t == NULL);
    // an impossible allocation is a status, not an abort
    void *huge = backend_alloc(be, (size_t)1 << 62, &e);
    CHECK(huge == NULL && e.code == CIS_ENOMEM && strstr(e.msg, backend_name(be)));
    PERF("upload 4KB", backend_upload(be, a, h, n * sizeof(float)));
    PERF("copy 4KB", backend_copy(be, b, a, n * sizeof(float)));
    free(h); free(back);
    release();
}

static void case_supports(void) {
    // the instance and memory entries are always filled; the op entries follow backend_op's order
    // (backend_supports relies on it): gemm's entry is the first op entry, spd_inverse's the 30th
    const void *const *fp = (const void *const *)((const char *)be->iface + sizeof(const char *));
    size_t nfp = (sizeof(backend_iface) - sizeof(const char *)) / sizeof(void *);
    CHECK_EQ_INT(nfp, 11 + BOP_COUNT);
    for (size_t i = 0; i < 11; i++) CHECK_MSG(fp[i] != NULL, "%s: iface entry %zu is NULL", backend_name(be), i);
    CHECK(fp[11 + BOP_GEMM] == (const void *)be->iface->gemm && fp[11 + BOP_SPD_INVERSE] == (const void *)be->iface->spd_inverse);
    // the cpu reference has every op; another backend may lack some (said here, refused by name)
    char lacks[512] = "";
    for (int op = 0; op < BOP_COUNT; op++) {
        bool s = backend_supports(be, op, TENSOR_F32);
        if (!strcmp(backend_name(be), "cpu")) CHECK_MSG(s && fp[11 + op], "cpu lacks %s", backend_op_name(op));
        else if (!s) snprintf(lacks + strlen(lacks), sizeof lacks - strlen(lacks), " %s", backend_op_name(op));
    }
    if (lacks[0]) printf("# %s lacks:%s\n", backend_name(be), lacks);
    CHECK(!backend_supports(be, BOP_COUNT, TENSOR_F32));
    CHECK(strcmp(backend_op_name(BOP_LINEAR_FWD), "linear_fwd") == 0);
}

// ---------------------------------------------------------------------------------------------
// matmul family

static void case_gemm(void) {
    const int M = 13, N = 9, K = 11;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            float *A = frand(M * K, 1), *B = frand(K * N, 1), *C = frand(M * N, 1);
            double ref[13 * 9];
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double s = 0;
                    for (int k = 0; k < K; k++) s += (double)(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
                    ref[i * N + j] = 0.5 * s + 0.25 * C[i * N + j];
                }
            float *dA = upf(A, M * K), *dB = upf(B, K * N), *dC = upf(C, M * N);
            BE(be, gemm, ta, tb, M, N, K, 0.5f, dA, ta ? M : K, dB, tb ? K : N, 0.25f, dC, N);
            float *got = downf(dC, M * N);
            char what[32];
            snprintf(what, sizeof what, "gemm T%d%d", ta, tb);
            close_to(what, got, ref, M * N, 1e-5);
            free(A); free(B); free(C); free(got);
            release();
        }
}

/* W as the op sees it for dtype wt: the fp32 values, or rounded to bf16/f16 (in *bits) */
static void weight_as(tensor_dtype wt, const float *W, int64_t n, void **bits, double *Wd) {
    *bits = NULL;
    if (wt == TENSOR_F32) { for (int64_t i = 0; i < n; i++) Wd[i] = W[i]; return; }
    uint16_t *b = malloc((size_t)n * sizeof *b);
    for (int64_t i = 0; i < n; i++) {
        b[i] = wt == TENSOR_BF16 ? half_f32_to_bf16(W[i]) : half_f32_to_f16(W[i]);
        Wd[i] = wt == TENSOR_BF16 ? half_bf16_to_f32(b[i]) : half_f16_to_f32(b[i]);
    }
    *bits = b;
}

static void case_linear(tensor_dtype wt) {
    if (!backend_supports(be, BOP_LINEAR_FWD, wt)) { SKIP("%s has no %s weights", backend_name(be), tensor_dtype_name(wt)); }
    const int N = 6, in = 10, out = 7;
    float *x = frand(N * in, 1), *W = frand(out * in, 0.5), *y0 = frand(N * out, 1), *dy = frand(N * out, 1);
    float *dx0 = frand(N * in, 1), *dW0 = frand(out * in, 1);
    double Wd[70], yref[42], dxref[60], dWref[70];
    void *bits;
    weight_as(wt, W, out * in, &bits, Wd);
    const void *Whost = bits ? bits : (const void *)W;
    size_t wbytes = (size_t)out * in * tensor_dtype_size(wt);
    for (int acc = 0; acc < 2; acc++) {
        for (int n = 0; n < N; n++)
            for (int o = 0; o < out; o++) {
                double s = acc ? y0[n * out + o] : 0;
                for (int i = 0; i < in; i++) s += (double)x[n * in + i] * Wd[o * in + i];
                yref[n * out + o] = s;
            }
        float *dx_ = upf(x, N * in), *dW_ = up(Whost, wbytes), *dy_ = upf(y0, N * out);
        BE(be, linear_fwd, dy_, dx_, dW_, wt, N, in, out, acc);
        float *got = downf(dy_, N * out);
        close_to(acc ? "linear_fwd acc" : "linear_fwd", got, yref, N * out, 1e-5);
        free(got);
        PERF(wt == TENSOR_F32 ? "linear_fwd f32 6x10x7" : "linear_fwd half 6x10x7",
             BE(be, linear_fwd, dy_, dx_, dW_, wt, N, in, out, false));
        release();
    }
    // backward: dx (+)= dy W, dW += dyᵀ x (dW only for fp32 weights' gradients: always fp32)
    for (int acc = 0; acc < 2; acc++) {
        for (int n = 0; n < N; n++)
            for (int i = 0; i < in; i++) {
                double s = acc ? dx0[n * in + i] : 0;
                for (int o = 0; o < out; o++) s += (double)dy[n * out + o] * Wd[o * in + i];
                dxref[n * in + i] = s;
            }
        for (int o = 0; o < out; o++)
            for (int i = 0; i < in; i++) {
                double s = dW0[o * in + i];
                for (int n = 0; n < N; n++) s += (double)dy[n * out + o] * x[n * in + i];
                dWref[o * in + i] = s;
            }
        float *ddx = upf(dx0, N * in), *ddW = upf(dW0, out * in), *ddy = upf(dy, N * out), *dx_ = upf(x, N * in);
        void *dWt = up(Whost, wbytes);
        BE(be, linear_bwd, ddx, ddW, ddy, dx_, dWt, wt, N, in, out, acc);
        float *gx = downf(ddx, N * in), *gW = downf(ddW, out * in);
        close_to("linear_bwd dx", gx, dxref, N * in, 1e-5);
        close_to("linear_bwd dW", gW, dWref, out * in, 1e-5);
        free(gx); free(gW);
        release();
    }
    free(x); free(W); free(y0); free(dy); free(dx0); free(dW0); free(bits);
}
static void case_linear_f32(void) { case_linear(TENSOR_F32); }
static void case_linear_bf16(void) { case_linear(TENSOR_BF16); }

/* the decode shapes: 1-3 rows (the cpu backend's gemv path at 1-2 rows, split over its threads
 * for a weight of 512 x 520; gemm at 3), with and without accumulation, fp32 and bf16 weights */
static void case_linear_rows(void) {
    static const int shapes[2][2] = {{10, 7}, {512, 520}};
    for (int sh = 0; sh < 2; sh++)
        for (int N = 1; N <= 3; N++)
            for (int k = 0; k < 2; k++) {
                tensor_dtype wt = k ? TENSOR_BF16 : TENSOR_F32;
                if (!backend_supports(be, BOP_LINEAR_FWD, wt)) continue;
                int in = shapes[sh][0], out = shapes[sh][1];
                float *x = frand(N * in, 1), *W = frand((int64_t)out * in, 0.5), *y0 = frand(N * out, 1);
                double *Wd = malloc((size_t)out * in * sizeof *Wd), *yref = malloc((size_t)N * out * sizeof *yref);
                void *bits;
                weight_as(wt, W, (int64_t)out * in, &bits, Wd);
                for (int acc = 0; acc < 2; acc++) {
                    for (int n = 0; n < N; n++)
                        for (int o = 0; o < out; o++) {
                            double s = acc ? y0[n * out + o] : 0;
                            for (int i = 0; i < in; i++) s += (double)x[n * in + i] * Wd[(int64_t)o * in + i];
                            yref[n * out + o] = s;
                        }
                    float *dx_ = upf(x, N * in), *dy_ = upf(y0, N * out);
                    void *dW_ = up(bits ? bits : (const void *)W, (size_t)out * in * tensor_dtype_size(wt));
                    BE(be, linear_fwd, dy_, dx_, dW_, wt, N, in, out, acc);
                    float *got = downf(dy_, N * out);
                    char what[64];
                    snprintf(what, sizeof what, "linear_fwd %dx%dx%d %s%s", N, in, out, tensor_dtype_name(wt), acc ? " acc" : "");
                    close_to(what, got, yref, N * out, 1e-5);
                    free(got);
                    release();
                }
                free(x); free(W); free(y0); free(Wd); free(yref); free(bits);
            }
}

// ---------------------------------------------------------------------------------------------
// rmsnorm

typedef struct rms_ctx { int N, D; double eps; const double *R, *w, *x; int which; } rms_ctx;
static void rms_ref(const double *x, const double *w, int N, int D, double eps, double *out, double *rstd) {
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += x[n * D + i] * x[n * D + i];
        double r = 1.0 / sqrt(ss / D + eps);
        if (rstd) rstd[n] = r;
        for (int i = 0; i < D; i++) out[n * D + i] = x[n * D + i] * r * w[i];
    }
}
static double rms_scalar(void *c_, const double *v) {  // Σ R ⊙ rmsnorm(x, w), v = x (which 0) or w
    rms_ctx *c = c_;
    double out[256], s = 0;
    rms_ref(c->which ? c->x : v, c->which ? v : c->w, c->N, c->D, c->eps, out, NULL);
    for (int i = 0; i < c->N * c->D; i++) s += c->R[i] * out[i];
    return s;
}

static void case_rmsnorm(void) {
    const int N = 5, D = 16;
    const float eps = 1e-5f;
    float *x = frand(N * D, 2), *w = frand(D, 1), *R = frand(N * D, 1), *dx0 = frand(N * D, 1), *dw0 = frand(D, 1);
    double *xd = dcopy(x, N * D), *wd = dcopy(w, D), *Rd = dcopy(R, N * D);
    double out[80], rstd[5];
    rms_ref(xd, wd, N, D, eps, out, rstd);
    float *dxx = upf(x, N * D), *dww = upf(w, D), *dout = dev_alloc(N * D * sizeof(float)), *drs = dev_alloc(N * sizeof(float));
    BE(be, rmsnorm_fwd, dout, drs, dxx, dww, N, D, eps);
    float *g = downf(dout, N * D), *gr = downf(drs, N);
    close_to("rmsnorm_fwd out", g, out, N * D, 1e-5);
    close_to("rmsnorm_fwd rstd", gr, rstd, N, 1e-5);
    PERF("rmsnorm_fwd 5x16", BE(be, rmsnorm_fwd, dout, drs, dxx, dww, N, D, eps));
    // backward against finite differences of the double forward
    rms_ctx c = {N, D, eps, Rd, wd, xd, 0};
    double gx[80], gw[16];
    double *xv = dcopy(x, N * D), *wv = dcopy(w, D);
    fd_grad(rms_scalar, &c, xv, N * D, gx);
    c.which = 1;
    fd_grad(rms_scalar, &c, wv, D, gw);
    for (int i = 0; i < N * D; i++) gx[i] += dx0[i];  // acc_dx
    for (int i = 0; i < D; i++) gw[i] += dw0[i];
    float *ddx = upf(dx0, N * D), *ddw = upf(dw0, D), *dR = upf(R, N * D);
    BE(be, rmsnorm_bwd, ddx, ddw, dR, dxx, dww, drs, N, D, true);
    float *hx = downf(ddx, N * D), *hw = downf(ddw, D);
    close_to("rmsnorm_bwd dx", hx, gx, N * D, 1e-4);
    close_to("rmsnorm_bwd dw", hw, gw, D, 1e-4);
    free(x); free(w); free(R); free(dx0); free(dw0); free(xd); free(wd); free(Rd); free(g); free(gr);
    free(xv); free(wv); free(hx); free(hw);
    release();
}

// ---------------------------------------------------------------------------------------------
// rope

typedef struct rope_ctx { int N, nh, Dh; const int32_t *pos; const float *cs, *sn; const double *R; } rope_ctx;
static void rope_ref(const double *x, const rope_ctx *c, double *out) {
    int h2 = c->Dh / 2;
    for (int n = 0; n < c->N; n++)
        for (int h = 0; h < c->nh; h++) {
            const double *xr = x + ((int64_t)n * c->nh + h) * c->Dh;
            double *o = out + ((int64_t)n * c->nh + h) * c->Dh;
            for (int i = 0; i < h2; i++) {
                double co = c->cs[c->pos[n] * h2 + i], si = c->sn[c->pos[n] * h2 + i];
                o[i] = xr[i] * co - xr[i + h2] * si;
                o[i + h2] = xr[i + h2] * co + xr[i] * si;
            }
        }
}
static double rope_scalar(void *c_, const double *x) {
    rope_ctx *c = c_;
    double out[512], s = 0;
    rope_ref(x, c, out);
    for (int i = 0; i < c->N * c->nh * c->Dh; i++) s += c->R[i] * out[i];
    return s;
}

static void case_rope(void) {
    const int P = 16, Dh = 8, N = 6, nh = 3, h2 = Dh / 2;
    rope_params rp = {.head_dim = Dh, .theta = 10000.0f};
    float *dcs = dev_alloc(P * h2 * sizeof(float)), *dsn = dev_alloc(P * h2 * sizeof(float));
    BE(be, rope_table, dcs, dsn, P, &rp);
    float *cs = downf(dcs, P * h2), *sn = downf(dsn, P * h2);
    double rc[64], rsn[64];
    for (int p = 0; p < P; p++)
        for (int i = 0; i < h2; i++) {
            float inv = 1.0f / powf(10000.0f, (float)(2 * i) / Dh);
            double ang = (double)((float)p * inv);  // the fp32 angle, as HF computes it
            rc[p * h2 + i] = cos(ang);
            rsn[p * h2 + i] = sin(ang);
        }
    close_to("rope_table cos", cs, rc, P * h2, 1e-6);
    close_to("rope_table sin", sn, rsn, P * h2, 1e-6);
    int32_t pos[6] = {0, 3, 15, 7, 7, 1};
    float *x = frand(N * nh * Dh, 1), *R = frand(N * nh * Dh, 1);
    double *xd = dcopy(x, N * nh * Dh), *Rd = dcopy(R, N * nh * Dh), ref[144], g[144];
    rope_ctx c = {N, nh, Dh, pos, cs, sn, Rd};
    rope_ref(xd, &c, ref);
    float *dx = upf(x, N * nh * Dh);
    int32_t *dpos = upi(pos, N);
    BE(be, rope_fwd, dx, dpos, dcs, dsn, N, nh, Dh);
    float *got = downf(dx, N * nh * Dh);
    close_to("rope_fwd", got, ref, N * nh * Dh, 1e-5);
    PERF("rope_fwd 6x3x8", BE(be, rope_fwd, dx, dpos, dcs, dsn, N, nh, Dh));
    fd_grad(rope_scalar, &c, xd, N * nh * Dh, g);
    float *dR = upf(R, N * nh * Dh);
    BE(be, rope_bwd, dR, dpos, dcs, dsn, N, nh, Dh);
    float *gb = downf(dR, N * nh * Dh);
    close_to("rope_bwd", gb, g, N * nh * Dh, 1e-5);
    free(cs); free(sn); free(x); free(R); free(xd); free(Rd); free(got); free(gb);
    release();
}

// ---------------------------------------------------------------------------------------------
// attention

typedef struct att_ctx {
    int B, Tq, Tk, H, Hkv, Dh;
    const int32_t *qpos, *kv_len;
    double *q, *k, *v;      /* current values (one of them is the FD variable) */
    const double *R;        /* cotangent of out */
    int which;              /* 0 q, 1 k, 2 v */
} att_ctx;
static void att_ref(const att_ctx *c, double *out, double *probs) {
    const int grp = c->H / c->Hkv;
    const double sc = 1.0 / sqrt((double)c->Dh);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->H; h++)
            for (int t = 0; t < c->Tq; t++) {
                int qp = c->qpos[b * c->Tq + t], kh = h / grp;
                const double *q = c->q + (((int64_t)b * c->Tq + t) * c->H + h) * c->Dh;
                double s[64], mx = -1e300, sum = 0;
                int nk = 0;
                for (int j = 0; j < c->Tk; j++) {
                    bool vis = j <= qp && j < c->kv_len[b];
                    s[j] = -INFINITY;
                    if (!vis) continue;
                    const double *k = c->k + (((int64_t)b * c->Tk + j) * c->Hkv + kh) * c->Dh;
                    double d = 0;
                    for (int i = 0; i < c->Dh; i++) d += q[i] * k[i];
                    s[j] = d * sc;
                    mx = s[j] > mx ? s[j] : mx;
                    nk++;
                }
                for (int j = 0; j < c->Tk; j++) { s[j] = isinf(s[j]) ? 0 : exp(s[j] - mx); sum += s[j]; }
                double *o = out + (((int64_t)b * c->Tq + t) * c->H + h) * c->Dh;
                for (int i = 0; i < c->Dh; i++) o[i] = 0;
                for (int j = 0; j < c->Tk; j++) {
                    double p = nk ? s[j] / sum : 0;
                    if (probs) probs[(((int64_t)b * c->H + h) * c->Tq + t) * c->Tk + j] = p;
                    const double *v = c->v + (((int64_t)b * c->Tk + j) * c->Hkv + kh) * c->Dh;
                    for (int i = 0; i < c->Dh; i++) o[i] += p * v[i];
                }
            }
}
static double att_scalar(void *c_, const double *x) {
    att_ctx *c = c_;
    double *save = c->which == 0 ? c->q : c->which == 1 ? c->k : c->v;
    if (c->which == 0) c->q = (double *)x; else if (c->which == 1) c->k = (double *)x; else c->v = (double *)x;
    int64_t n = (int64_t)c->B * c->Tq * c->H * c->Dh;
    double *out = malloc((size_t)n * sizeof *out), s = 0;
    att_ref(c, out, NULL);
    for (int64_t i = 0; i < n; i++) s += c->R[i] * out[i];
    free(out);
    if (c->which == 0) c->q = save; else if (c->which == 1) c->k = save; else c->v = save;
    return s;
}

/* forward with a cache layout (Tq < Tk, explicit positions) and backward (Tq == Tk, padding) */
static void case_attention(void) {
    {   // forward: 2 sequences, queries at positions 3..5 of a 7-slot cache, GQA 4/2
        const int B = 2, Tq = 3, Tk = 7, H = 4, Hkv = 2, Dh = 8;
        int32_t qpos[6] = {3, 4, 5, 0, 1, 6}, kv_len[2] = {6, 4};
        int64_t nq = B * Tq * H * Dh, nk = B * Tk * Hkv * Dh, np = B * H * Tq * Tk;
        float *q = frand(nq, 1), *k = frand(nk, 1), *v = frand(nk, 1);
        att_ctx c = {B, Tq, Tk, H, Hkv, Dh, qpos, kv_len, dcopy(q, nq), dcopy(k, nk), dcopy(v, nk), NULL, 0};
        double *ref = malloc(nq * sizeof *ref), *pr = malloc(np * sizeof *pr);
        att_ref(&c, ref, pr);
        float *dq = upf(q, nq), *dk = upf(k, nk), *dv = upf(v, nk), *dout = dev_alloc(nq * sizeof(float));
        float *dp = dev_alloc(np * sizeof(float));
        int32_t *dqp = upi(qpos, B * Tq), *dkl = upi(kv_len, B);
        BE(be, attention_fwd, dout, dp, dq, dk, dv, dqp, dkl, B, Tq, Tk, H, Hkv, Dh);
        float *go = downf(dout, nq), *gp = downf(dp, np);
        close_to("attention_fwd out", go, ref, nq, 1e-5);
        close_to("attention_fwd probs", gp, pr, np, 1e-5);
        BE(be, attention_fwd, dout, NULL, dq, dk, dv, dqp, dkl, B, Tq, Tk, H, Hkv, Dh);  // no probs kept
        free(go);
        go = downf(dout, nq);
        close_to("attention_fwd (no probs)", go, ref, nq, 1e-5);
        PERF("attention_fwd 2x3x7 h4/2", BE(be, attention_fwd, dout, NULL, dq, dk, dv, dqp, dkl, B, Tq, Tk, H, Hkv, Dh));
        free(q); free(k); free(v); free(c.q); free(c.k); free(c.v); free(ref); free(pr); free(go); free(gp);
        release();
    }
    {   // backward: self-attention with right padding, dq dk dv against finite differences
        const int B = 2, T = 5, H = 4, Hkv = 2, Dh = 4;
        int32_t qpos[10], kv_len[2] = {5, 3};
        for (int b = 0; b < B; b++) for (int t = 0; t < T; t++) qpos[b * T + t] = t;
        int64_t nq = B * T * H * Dh, nk = B * T * Hkv * Dh, np = B * H * T * T;
        float *q = frand(nq, 1), *k = frand(nk, 1), *v = frand(nk, 1), *R = frand(nq, 1);
        for (int b = 0; b < B; b++)  // padded query rows carry no gradient
            for (int t = kv_len[b]; t < T; t++) memset(R + ((int64_t)b * T + t) * H * Dh, 0, (size_t)H * Dh * sizeof(float));
        double *Rd = dcopy(R, nq);
        att_ctx c = {B, T, T, H, Hkv, Dh, qpos, kv_len, dcopy(q, nq), dcopy(k, nk), dcopy(v, nk), Rd, 0};
        double *gq = malloc(nq * sizeof *gq), *gk = malloc(nk * sizeof *gk), *gv = malloc(nk * sizeof *gv);
        double *xv = dcopy(q, nq);
        c.which = 0; fd_grad(att_scalar, &c, xv, nq, gq); free(xv);
        xv = dcopy(k, nk); c.which = 1; fd_grad(att_scalar, &c, xv, nk, gk); free(xv);
        xv = dcopy(v, nk); c.which = 2; fd_grad(att_scalar, &c, xv, nk, gv); free(xv);
        float *dq = upf(q, nq), *dk = upf(k, nk), *dv = upf(v, nk), *dout = dev_alloc(nq * sizeof(float));
        float *dp = dev_alloc(np * sizeof(float)), *dR = upf(R, nq);
        float *gdq = dev_alloc(nq * sizeof(float)), *gdk = dev_alloc(nk * sizeof(float)), *gdv = dev_alloc(nk * sizeof(float));
        int32_t *dqp = upi(qpos, B * T), *dkl = upi(kv_len, B);
        BE(be, attention_fwd, dout, dp, dq, dk, dv, dqp, dkl, B, T, T, H, Hkv, Dh);
        BE(be, attention_bwd, gdq, gdk, gdv, dR, dp, dq, dk, dv, dkl, B, T, T, H, Hkv, Dh);
        float *hq = downf(gdq, nq), *hk = downf(gdk, nk), *hv = downf(gdv, nk);
        close_to("attention_bwd dq", hq, gq, nq, 1e-4);
        close_to("attention_bwd dk", hk, gk, nk, 1e-4);
        close_to("attention_bwd dv", hv, gv, nk, 1e-4);
        PERF("attention_bwd 2x5 h4/2", BE(be, attention_bwd, gdq, gdk, gdv, dR, dp, dq, dk, dv, dkl, B, T, T, H, Hkv, Dh));
        free(q); free(k); free(v); free(R); free(Rd); free(c.q); free(c.k); free(c.v); free(gq); free(gk); free(gv);
        free(hq); free(hk); free(hv);
        release();
    }
}

// ---------------------------------------------------------------------------------------------
// swiglu, embedding, cross-entropy

typedef struct sw_ctx { int n; const double *g, *u, *R; int which; } sw_ctx;
static double silu(double x) { return x / (1 + exp(-x)); }
static double sw_scalar(void *c_, const double *x) {
    sw_ctx *c = c_;
    double s = 0;
    for (int i = 0; i < c->n; i++) s += c->R[i] * silu(c->which ? c->g[i] : x[i]) * (c->which ? x[i] : c->u[i]);
    return s;
}

static void case_swiglu(void) {
    const int n = 40;
    float *g = frand(n, 3), *u = frand(n, 1), *R = frand(n, 1);
    double *gd = dcopy(g, n), *ud = dcopy(u, n), *Rd = dcopy(R, n), ref[40], gg[40], gu[40];
    for (int i = 0; i < n; i++) ref[i] = silu(gd[i]) * ud[i];
    float *dg = upf(g, n), *du = upf(u, n), *dout = dev_alloc(n * sizeof(float));
    BE(be, swiglu_fwd, dout, dg, du, n);
    float *got = downf(dout, n);
    close_to("swiglu_fwd", got, ref, n, 1e-5);
    sw_ctx c = {n, gd, ud, Rd, 0};
    double *xv = dcopy(g, n);
    fd_grad(sw_scalar, &c, xv, n, gg);
    free(xv); xv = dcopy(u, n); c.which = 1;
    fd_grad(sw_scalar, &c, xv, n, gu);
    float *dR = upf(R, n), *ddg = dev_alloc(n * sizeof(float)), *ddu = dev_alloc(n * sizeof(float));
    BE(be, swiglu_bwd, ddg, ddu, dR, dg, du, n);
    float *hg = downf(ddg, n), *hu = downf(ddu, n);
    close_to("swiglu_bwd dg", hg, gg, n, 1e-4);
    close_to("swiglu_bwd du", hu, gu, n, 1e-4);
    PERF("swiglu_fwd 40", BE(be, swiglu_fwd, dout, dg, du, n));
    free(g); free(u); free(R); free(gd); free(ud); free(Rd); free(got); free(xv); free(hg); free(hu);
    release();
}

static void case_embedding(void) {
    const int V = 9, D = 6, N = 7;
    int32_t ids[7] = {3, 0, 8, 3, 3, 5, 0};
    float *W = frand(V * D, 1), *dout = frand(N * D, 1), *dW0 = frand(V * D, 1);
    double ref[42], gref[54];
    for (int n = 0; n < N; n++) for (int i = 0; i < D; i++) ref[n * D + i] = W[ids[n] * D + i];
    for (int i = 0; i < V * D; i++) gref[i] = dW0[i];
    for (int n = 0; n < N; n++) for (int i = 0; i < D; i++) gref[ids[n] * D + i] += dout[n * D + i];
    float *dW = upf(W, V * D), *dx = dev_alloc(N * D * sizeof(float)), *dd = upf(dout, N * D), *dG = upf(dW0, V * D);
    int32_t *di = upi(ids, N);
    BE(be, embedding_fwd, dx, dW, di, N, D);
    float *got = downf(dx, N * D);
    close_to("embedding_fwd", got, ref, N * D, 0);
    BE(be, embedding_bwd, dG, dd, di, N, D);
    float *gg = downf(dG, V * D);
    close_to("embedding_bwd", gg, gref, V * D, 1e-6);
    PERF("embedding_fwd 7x6", BE(be, embedding_fwd, dx, dW, di, N, D));
    free(W); free(dout); free(dW0); free(got); free(gg);
    release();
}

static void case_cross_entropy(void) {
    const int N = 6, V = 11;
    int32_t tg[6] = {3, LOSS_IGNORE_INDEX, 0, 10, 7, LOSS_IGNORE_INDEX};
    float *x = frand(N * V, 3);
    double loss[6], lse[6], dl[66], mean = 0;
    int nv = 0;
    const double scale = 0.7;
    for (int n = 0; n < N; n++) {
        double mx = -1e300, s = 0;
        for (int j = 0; j < V; j++) mx = x[n * V + j] > mx ? x[n * V + j] : mx;
        for (int j = 0; j < V; j++) s += exp(x[n * V + j] - mx);
        lse[n] = mx + log(s);
        bool ign = tg[n] == LOSS_IGNORE_INDEX;
        loss[n] = ign ? 0 : lse[n] - x[n * V + tg[n]];
        if (!ign) { mean += loss[n]; nv++; }
        for (int j = 0; j < V; j++) dl[n * V + j] = ign ? 0 : scale * (exp(x[n * V + j] - lse[n]) - (j == tg[n]));
    }
    mean /= nv;
    float *dx = upf(x, N * V), *dloss = dev_alloc(N * sizeof(float)), *dlse = dev_alloc(N * sizeof(float));
    float *dg = dev_alloc(N * V * sizeof(float));
    int32_t *dt = upi(tg, N);
    int nvalid = -1;
    double got_mean = BE(be, ce_fwd, dloss, dlse, dx, dt, N, V, &nvalid);
    CHECK_NEAR(got_mean, mean, 1e-5 * fabs(mean));
    CHECK_EQ_INT(nvalid, nv);
    float *gl = downf(dloss, N), *gs = downf(dlse, N);
    close_to("ce_fwd loss", gl, loss, N, 1e-5);
    for (int n = 0; n < N; n++) if (tg[n] == LOSS_IGNORE_INDEX) gs[n] = (float)lse[n];  // lse of ignored rows: unspecified
    close_to("ce_fwd lse", gs, lse, N, 1e-5);
    BE(be, ce_bwd, dg, dx, dlse, dt, N, V, (float)scale);
    float *gg = downf(dg, N * V);
    close_to("ce_bwd", gg, dl, N * V, 1e-5);
    BE(be, ce_bwd, dx, dx, dlse, dt, N, V, (float)scale);  // in place
    free(gg);
    gg = downf(dx, N * V);
    close_to("ce_bwd in place", gg, dl, N * V, 1e-5);
    PERF("ce_fwd 6x11", BE(be, ce_fwd, dloss, dlse, dg, dt, N, V, NULL));
    free(x); free(gl); free(gs); free(gg);
    release();
}

// ---------------------------------------------------------------------------------------------
// rows, elementwise, reductions

static void case_rows(void) {
    const int R = 8, D = 5, n = 6;
    int32_t rows[6] = {7, 2, 2, 0, 5, 2};
    float *src = frand(R * D, 1), *vals = frand(n * D, 1), *dst0 = frand(R * D, 1);
    double g[30], s_set[40], s_add[40], fill[40];
    for (int i = 0; i < n; i++) for (int j = 0; j < D; j++) g[i * D + j] = src[rows[i] * D + j];
    for (int i = 0; i < R * D; i++) s_set[i] = s_add[i] = fill[i] = dst0[i];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            s_set[rows[i] * D + j] = vals[i * D + j];  // the last write of a repeated row wins
            s_add[rows[i] * D + j] += vals[i * D + j];
            fill[rows[i] * D + j] = 2.5;
        }
    float *ds = upf(src, R * D), *dv = upf(vals, n * D), *dg = dev_alloc(n * D * sizeof(float));
    int32_t *dr = upi(rows, n);
    BE(be, rows_gather, dg, ds, dr, n, D);
    float *h = downf(dg, n * D);
    close_to("rows_gather", h, g, n * D, 0);
    free(h);
    float *dd = upf(dst0, R * D);
    BE(be, rows_scatter, dd, dv, dr, n, D, ROWS_SET);
    h = downf(dd, R * D); close_to("rows_scatter set", h, s_set, R * D, 0); free(h);
    backend_upload(be, dd, dst0, R * D * sizeof(float));
    BE(be, rows_scatter, dd, dv, dr, n, D, ROWS_ADD);
    h = downf(dd, R * D); close_to("rows_scatter add", h, s_add, R * D, 1e-6); free(h);
    backend_upload(be, dd, dst0, R * D * sizeof(float));
    BE(be, rows_fill, dd, dr, n, D, 2.5f);
    h = downf(dd, R * D); close_to("rows_fill", h, fill, R * D, 0); free(h);
    PERF("rows_gather 6x5", BE(be, rows_gather, dg, ds, dr, n, D));
    free(src); free(vals); free(dst0);
    release();
}

static void case_elementwise(void) {
    const int n = 1001;
    float *a = frand(n, 1), *b = frand(n, 1);
    double add[1001], sc[1001], ax[1001], sum = 0, ss = 0;
    for (int i = 0; i < n; i++) {
        add[i] = (double)a[i] + b[i];
        sc[i] = (double)a[i] * 0.5;
        ax[i] = (double)b[i] + 0.25 * (double)a[i] * 0.5;
        sum += a[i];
        ss += (double)a[i] * a[i];
    }
    float *da = upf(a, n), *db = upf(b, n), *dc = dev_alloc(n * sizeof(float));
    CHECK_NEAR(BE(be, sum, da, n), sum, 1e-9 * n);
    CHECK_NEAR(BE(be, sumsq, da, n), ss, 1e-9 * ss);
    BE(be, add, dc, da, db, n);
    float *h = downf(dc, n); close_to("add", h, add, n, 1e-7); free(h);
    BE(be, scale, da, 0.5f, n);
    h = downf(da, n); close_to("scale", h, sc, n, 1e-7); free(h);
    BE(be, axpy, db, 0.25f, da, n);
    h = downf(db, n); close_to("axpy", h, ax, n, 1e-7); free(h);
    PERF("axpy 1001", BE(be, axpy, db, 0.25f, da, n));
    free(a); free(b);
    release();
}

static void case_adam(void) {
    const int n = 50;
    for (int var = ADAM_TORCH_ADAMW; var <= ADAM_TORCH_ADAM; var++) {
        float *p = frand(n, 1), *g = frand(n, 1), *m = frand(n, 0.1), *v = frand(n, 0.1);
        for (int i = 0; i < n; i++) v[i] = fabsf(v[i]);
        adam_params ap = {.variant = var, .lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.99f, .eps = 1e-8f,
                          .weight_decay = 0.1f, .step = 3};
        double rp[50], rm[50], rv[50];
        double bc1 = 1 - pow(0.9f, 3), bc2 = 1 - pow(0.99f, 3), lr = ap.lr, wd = ap.weight_decay;
        double b1 = ap.beta1, b2 = ap.beta2, eps = ap.eps;
        for (int i = 0; i < n; i++) {
            double pi = p[i], gi = g[i];
            if (var == ADAM_TORCH_ADAM) gi += wd * pi;
            if (var == ADAM_TORCH_ADAMW) pi *= 1 - lr * wd;
            rm[i] = b1 * m[i] + (1 - b1) * gi;
            rv[i] = b2 * v[i] + (1 - b2) * gi * gi;
            if (var == ADAM_HF_ADAMW) {
                pi -= lr * sqrt(bc2) / bc1 * rm[i] / (sqrt(rv[i]) + eps);
                pi -= lr * wd * pi;
            } else {
                pi -= lr / bc1 * rm[i] / (sqrt(rv[i]) / sqrt(bc2) + eps);
            }
            rp[i] = pi;
        }
        float *dp = upf(p, n), *dg = upf(g, n), *dm = upf(m, n), *dv = upf(v, n);
        BE(be, adam_step, dp, dg, dm, dv, n, &ap);
        float *hp = downf(dp, n), *hm = downf(dm, n), *hv = downf(dv, n);
        char what[32];
        snprintf(what, sizeof what, "adam_step v%d p", var); close_to(what, hp, rp, n, 1e-6);
        snprintf(what, sizeof what, "adam_step v%d m", var); close_to(what, hm, rm, n, 1e-6);
        snprintf(what, sizeof what, "adam_step v%d v", var); close_to(what, hv, rv, n, 1e-6);
        free(p); free(g); free(m); free(v); free(hp); free(hm); free(hv);
        release();
    }
}

// ---------------------------------------------------------------------------------------------
// linear algebra

static void spd(int n, double *A) {  // A = M Mᵀ + n I
    double *M = malloc((size_t)n * n * sizeof *M);
    for (int i = 0; i < n * n; i++) M[i] = nrand();
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = i == j ? n : 0;
            for (int k = 0; k < n; k++) s += M[i * n + k] * M[j * n + k];
            A[i * n + j] = s;
        }
    free(M);
}
static void chol_ref(int n, const double *A, double *L) {  // lower L, A = L Lᵀ
    memset(L, 0, (size_t)n * n * sizeof *L);
    for (int j = 0; j < n; j++) {
        double s = A[j * n + j];
        for (int k = 0; k < j; k++) s -= L[j * n + k] * L[j * n + k];
        L[j * n + j] = sqrt(s);
        for (int i = j + 1; i < n; i++) {
            double t = A[i * n + j];
            for (int k = 0; k < j; k++) t -= L[i * n + k] * L[j * n + k];
            L[i * n + j] = t / L[j * n + j];
        }
    }
}
static void inv_ref(int n, const double *A, double *X) {  // Gauss-Jordan in double
    double *M = malloc((size_t)n * 2 * n * sizeof *M);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < 2 * n; j++) M[i * 2 * n + j] = j < n ? A[i * n + j] : (j - n == i);
    for (int c = 0; c < n; c++) {
        int piv = c;
        for (int r = c + 1; r < n; r++) if (fabs(M[r * 2 * n + c]) > fabs(M[piv * 2 * n + c])) piv = r;
        for (int j = 0; j < 2 * n; j++) { double t = M[c * 2 * n + j]; M[c * 2 * n + j] = M[piv * 2 * n + j]; M[piv * 2 * n + j] = t; }
        double d = M[c * 2 * n + c];
        for (int j = 0; j < 2 * n; j++) M[c * 2 * n + j] /= d;
        for (int r = 0; r < n; r++) {
            if (r == c) continue;
            double f = M[r * 2 * n + c];
            for (int j = 0; j < 2 * n; j++) M[r * 2 * n + j] -= f * M[c * 2 * n + j];
        }
    }
    for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) X[i * n + j] = M[i * 2 * n + n + j];
    free(M);
}
static float *tof(const double *d, int64_t n) {
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)d[i];
    return f;
}

static void case_linalg(void) {
    const int n = 9, r = 4;
    double A[81], L[81], U[81], Ainv[81], Linv[81], Uinv[81];
    spd(n, A);
    chol_ref(n, A, L);
    for (int i = 0; i < n; i++) for (int j = 0; j < n; j++) U[i * n + j] = L[j * n + i];
    inv_ref(n, A, Ainv);
    inv_ref(n, L, Linv);
    inv_ref(n, U, Uinv);
    float *Af = tof(A, n * n);
    float *d = upf(Af, n * n);
    CHECK_EQ_INT(BE(be, cholesky, d, n, false), 0);
    float *h = downf(d, n * n); close_to("cholesky lower", h, L, n * n, 1e-5); free(h);
    backend_upload(be, d, Af, n * n * sizeof(float));
    CHECK_EQ_INT(BE(be, cholesky, d, n, true), 0);
    h = downf(d, n * n); close_to("cholesky upper", h, U, n * n, 1e-5); free(h);
    float *Lf = tof(L, n * n), *Uf = tof(U, n * n);
    float *dl = upf(Lf, n * n);
    CHECK_EQ_INT(BE(be, tri_inv, dl, n, false), 0);
    h = downf(dl, n * n); close_to("tri_inv lower", h, Linv, n * n, 1e-4); free(h);
    float *du = upf(Uf, n * n);
    CHECK_EQ_INT(BE(be, tri_inv, du, n, true), 0);
    h = downf(du, n * n); close_to("tri_inv upper", h, Uinv, n * n, 1e-4); free(h);
    // chol_solve: X = A⁻¹ B from the lower factor
    float *Bm = frand(n * r, 1);
    double X[36];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < r; j++) {
            double s = 0;
            for (int k = 0; k < n; k++) s += Ainv[i * n + k] * Bm[k * r + j];
            X[i * r + j] = s;
        }
    float *dL = upf(Lf, n * n), *dB = upf(Bm, n * r);
    CHECK_EQ_INT(BE(be, chol_solve, dL, dB, n, r, false), 0);
    h = downf(dB, n * r); close_to("chol_solve", h, X, n * r, 1e-4); free(h);
    // tri_solve: B <- op(T)⁻¹ B for the four (upper, trans) combinations
    for (int up_ = 0; up_ < 2; up_++)
        for (int tr = 0; tr < 2; tr++) {
            const double *Ti = up_ ? Uinv : Linv;   // op(T)⁻¹ = (T⁻¹) or (T⁻¹)ᵀ
            double Y[36];
            for (int i = 0; i < n; i++)
                for (int j = 0; j < r; j++) {
                    double s = 0;
                    for (int k = 0; k < n; k++) s += (tr ? Ti[k * n + i] : Ti[i * n + k]) * Bm[k * r + j];
                    Y[i * r + j] = s;
                }
            float *dT = upf(up_ ? Uf : Lf, n * n), *dY = upf(Bm, n * r);
            BE(be, tri_solve, dT, dY, n, r, up_, tr);
            h = downf(dY, n * r);
            char what[32];
            snprintf(what, sizeof what, "tri_solve upper=%d trans=%d", up_, tr);
            close_to(what, h, Y, n * r, 1e-4);
            free(h);
        }
    backend_upload(be, d, Af, n * n * sizeof(float));
    CHECK_EQ_INT(BE(be, spd_inverse, d, n), 0);
    h = downf(d, n * n); close_to("spd_inverse", h, Ainv, n * n, 1e-4); free(h);
    // not positive definite: a status, not a crash
    float neg[4] = {1, 2, 2, 1};
    float *dn = upf(neg, 4);
    CHECK(BE(be, cholesky, dn, 2, false) > 0);
    PERF("cholesky 9x9", { backend_upload(be, d, Af, n * n * sizeof(float)); BE(be, cholesky, d, n, false); });
    free(Af); free(Lf); free(Uf); free(Bm);
    release();
}


/* the compression ops (cpu/cpu_quant.c): gram_acc and colsumsq_acc against double sums; quant_params
 * and quant_dequant against the grids of algorithms.md §1.5 written out here; obs_sweep with a
 * diagonal U (no compensation: RTN, and block magnitude pruning) and its Σ e²; row_prune's counts
 * and stable order. The algorithms' own oracles are in tests/worker/interventions/. */
static void case_compress(void) {
    if (!be->iface->gram_acc || !be->iface->obs_sweep || !be->iface->row_prune || !be->iface->quant_params ||
        !be->iface->quant_dequant || !be->iface->colsumsq_acc)
        SKIP("%s has no compression ops yet (the methods refuse it with a clear error)", backend_name(be));
    int n = 9, k = 7, m = 5;
    float *X = frand((int64_t)n * k, 1.0), *W = frand((int64_t)m * k, 0.5);
    double *Hd = calloc((size_t)k * k, sizeof(double)), *cs = calloc((size_t)k, sizeof(double));
    for (int t = 0; t < n; t++)
        for (int a = 0; a < k; a++) {
            cs[a] += (double)X[t * k + a] * X[t * k + a];
            for (int b = 0; b < k; b++) Hd[a * k + b] += 0.5 * (double)X[t * k + a] * X[t * k + b];
        }
    float *H0 = calloc((size_t)k * k, sizeof(float)), *c0 = calloc((size_t)k, sizeof(float));
    float *dH = upf(H0, (int64_t)k * k), *dX = upf(X, (int64_t)n * k), *dc = upf(c0, k);
    BE(be, gram_acc, dH, dX, n, k, 0.5f);
    BE(be, colsumsq_acc, dc, dX, n, k);
    float *gH = downf(dH, (int64_t)k * k), *gc = downf(dc, k);
    CHECK(close_to("gram_acc", gH, Hd, (int64_t)k * k, 1e-5));
    CHECK(close_to("colsumsq_acc", gc, cs, k, 1e-5));
    /* grids: group 3 over 7 columns (3, 3, 1) */
    for (int grid = 0; grid < 3; grid++) {
        int bits = 3, g = 3, ng = 3, maxq = 7;
        float *dW = upf(W, (int64_t)m * k), *dS = dev_alloc(sizeof(float) * m * ng), *dZ = dev_alloc(sizeof(float) * m * ng);
        float *dQ = dev_alloc(sizeof(float) * m * k);
        BE(be, quant_params, dS, dZ, dW, m, k, k, g, bits, (quant_grid)grid);
        BE(be, quant_dequant, dQ, dW, dS, dZ, m, k, g, bits);
        float *S = downf(dS, m * ng), *Z = downf(dZ, m * ng), *Q = downf(dQ, (int64_t)m * k);
        double *want = malloc(sizeof(double) * m * k);
        for (int r = 0; r < m; r++)
            for (int gi = 0; gi < ng; gi++) {
                float mn = 1e30f, mx = -1e30f;
                for (int j = gi * g; j < k && j < gi * g + g; j++) { mn = fminf(mn, W[r * k + j]); mx = fmaxf(mx, W[r * k + j]); }
                float sc, z;
                if (grid == QGRID_AWQ) { sc = fmaxf(mx - mn, 1e-5f) / maxq; z = fminf(fmaxf(-rintf(mn / sc), 0), maxq); }
                else {
                    float xmin = fminf(mn, 0), xmax = fmaxf(mx, 0);
                    if (grid == QGRID_MINMAX_SYM) { xmax = fmaxf(-xmin, xmax); if (xmin < 0) xmin = -xmax; }
                    sc = (xmax - xmin) / maxq;
                    z = grid == QGRID_MINMAX_SYM ? 4.0f : rintf(-xmin / sc);
                }
                CHECK_NEAR(S[r * ng + gi], sc, 1e-7);
                CHECK_NEAR(Z[r * ng + gi], z, 0);
                for (int j = gi * g; j < k && j < gi * g + g; j++)
                    want[r * k + j] = sc * (fminf(fmaxf(rintf(W[r * k + j] / sc) + z, 0), maxq) - z);
            }
        CHECK(close_to("quant_dequant", Q, want, (int64_t)m * k, 1e-6));
        free(S); free(Z); free(Q); free(want);
    }
    /* obs_sweep with U = 2I: no compensation, so RTN per row (asym) and Σ e² = Σ (w-q)²/4 */
    float *U = calloc((size_t)k * k, sizeof(float));
    for (int j = 0; j < k; j++) U[j * k + j] = 2.0f;
    float *dU = upf(U, (int64_t)k * k), *dW = upf(W, (int64_t)m * k);
    float *dS = dev_alloc(sizeof(float) * m), *dZ = dev_alloc(sizeof(float) * m);
    obs_params p = {.block = 4, .bits = 2, .group = 0, .grid = QGRID_MINMAX_ASYM};
    double loss = BE(be, obs_sweep, dW, dU, m, k, &p, dS, dZ, NULL);
    float *Q = downf(dW, (int64_t)m * k), *S = downf(dS, m), *Z = downf(dZ, m);
    double want = 0, *wq = malloc(sizeof(double) * m * k);
    for (int r = 0; r < m; r++)
        for (int j = 0; j < k; j++) {
            float q = S[r] * (fminf(fmaxf(rintf(W[r * k + j] / S[r]) + Z[r], 0), 3) - Z[r]);
            wq[r * k + j] = q;
            want += ((double)W[r * k + j] - q) * ((double)W[r * k + j] - q) / 4;
        }
    CHECK(close_to("obs_sweep (RTN)", Q, wq, (int64_t)m * k, 1e-6));
    CHECK_NEAR(loss, want, 1e-6 * (1 + want));
    /* sparsity 0.4 over one block of 7 columns: the floor(0.4*35) = 14th smallest w² and below */
    backend_upload(be, dW, W, sizeof(float) * m * k);
    obs_params ps = {.block = 8, .sparsity = 0.4};
    int64_t masked = 0;
    BE(be, obs_sweep, dW, dU, m, k, &ps, NULL, NULL, &masked);
    CHECK_EQ_INT(masked, 15);
    /* row_prune: 3 per row by |w|, stable */
    float *A = malloc(sizeof(float) * m * k);
    for (int i = 0; i < m * k; i++) A[i] = fabsf(W[i]);
    float *dA = upf(A, (int64_t)m * k);
    backend_upload(be, dW, W, sizeof(float) * m * k);
    CHECK_EQ_INT(BE(be, row_prune, dW, dA, m, k, 3, 0, 0), 3 * m);
    free(Q); Q = downf(dW, (int64_t)m * k);
    for (int r = 0; r < m; r++) {
        int z = 0;
        for (int j = 0; j < k; j++) z += Q[r * k + j] == 0.0f;
        CHECK_EQ_INT(z, 3);
    }
    PERF("obs_sweep 7 columns", { backend_upload(be, dW, W, sizeof(float) * m * k); BE(be, obs_sweep, dW, dU, m, k, &p, dS, dZ, NULL); });
    free(X); free(W); free(Hd); free(cs); free(H0); free(c0); free(gH); free(gc); free(U); free(Q); free(S); free(Z);
    free(wq); free(A);
    release();
}

// ---------------------------------------------------------------------------------------------

typedef struct opcase { const char *name; void (*fn)(void); } opcase;
static const opcase CASES[] = {
    {"memory", case_memory},           {"supports", case_supports},
    {"gemm", case_gemm},               {"linear[f32]", case_linear_f32},
    {"linear[bf16]", case_linear_bf16}, {"linear_rows", case_linear_rows}, {"rmsnorm", case_rmsnorm},
    {"rope", case_rope},               {"attention", case_attention},
    {"swiglu", case_swiglu},           {"embedding", case_embedding},
    {"cross_entropy", case_cross_entropy}, {"rows", case_rows},
    {"elementwise", case_elementwise}, {"adam_step", case_adam},
    {"linalg", case_linalg},           {"compress", case_compress},
};

/* every iface op has a case above that calls it: the list of op names each case covers */
static void test_every_op_has_a_case(void) {
    static const char *covered =
        " gemm linear_fwd linear_bwd rmsnorm_fwd rmsnorm_bwd rope_table rope_fwd rope_bwd attention_fwd"
        " attention_bwd swiglu_fwd swiglu_bwd embedding_fwd embedding_bwd ce_fwd ce_bwd rows_gather rows_scatter"
        " rows_fill add scale axpy sum sumsq adam_step cholesky tri_inv chol_solve tri_solve spd_inverse"
        " gram_acc colsumsq_acc quant_params quant_dequant obs_sweep row_prune ";
    for (int op = 0; op < BOP_COUNT; op++) {
        char key[40];
        snprintf(key, sizeof key, " %s ", backend_op_name(op));
        CHECK_MSG(strstr(covered, key) != NULL, "op %s has no case in test_backend_ops", backend_op_name(op));
    }
}

int main(int argc, char **argv) {
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--perf")) perf = true;
        else if (!strcmp(argv[i], "--backend") && i + 1 < argc) only = argv[++i];
        else { fprintf(stderr, "usage: test_backend_ops [--perf] [--backend cpu|cuda:0]\n"); return 2; }
    }
    RUN(test_every_op_has_a_case);
    static const char *DEVICES[] = {"cpu", "cuda:0"};
    for (size_t d = 0; d < sizeof DEVICES / sizeof *DEVICES; d++) {
        if (only && strcmp(only, DEVICES[d])) continue;
        cis_err e = {0};
        be = backend_device_ok(DEVICES[d], &e) ? backend_open(DEVICES[d], &(backend_opts){.threads = 2}, &e) : NULL;
        for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
            char name[96];
            snprintf(name, sizeof name, "%s/%s", DEVICES[d], CASES[c].name);
            if (!be) {
                printf("ok - %s # SKIP %s\n", name, e.msg);
                tl_n_skip++;
                continue;
            }
            rs = 0x9E3779B97F4A7C15ull + c;  // each case's inputs independent of the others
            tl_run(name, CASES[c].fn);
        }
        backend_close(&be);
    }
    return test_summary();
}
