/* test_cpu_simd.c - the 8-lane (AVX2) kernels of worker/engine/cpu/cpu_avx2.c give the same bits as
 * the 4-lane/scalar code they replace (cpu_elementwise.c, cpu_mlp.c, cpu_norm.c), for every kernel,
 * on random inputs of awkward lengths (0, 1, 3, 7, 8, 9, ..., 1000, 1027), at range offsets that
 * are not multiples of 4, RoPE at head dims 2..64, and on special values (±0, ±inf, NaN, denormals, values past the
 * exponential's clamps); and the ops built on them (attention forward/backward, cross-entropy,
 * SwiGLU and RMSNorm through the backend table, at 1 and 2 threads) give the same bytes with
 * cpu_simd_set_lanes(4) and (8); and a beta = 0 GEMM written by memset + beta = 1 equals OpenBLAS's
 * own beta = 0. Skipped visibly where the CPU has no AVX2. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "worker/engine/backend.h"
#include "worker/engine/cpu/cpu_ops.h"
#include "worker/engine/cpu/cpu_vexp.h"

static const int64_t LENS[] = {0, 1, 3, 4, 5, 7, 8, 9, 11, 12, 15, 16, 17, 31, 63, 64, 65, 127, 1000, 1027};
#define NLENS ((int)(sizeof LENS / sizeof LENS[0]))
#define NMAX 1100

static uint64_t rng_s = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    rng_s ^= rng_s << 13; rng_s ^= rng_s >> 7; rng_s ^= rng_s << 17;
    return (rng_s >> 11) * (1.0 / 9007199254740992.0);
}
static float nrand(double sc) {
    return (float)(sc * sqrt(-2.0 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()));
}
static const float SPECIAL[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, -1e-40f, 100.0f, -100.0f,
                                88.37f, -87.3f, 88.5f, -87.5f, 3.4e38f, -3.4e38f, 1.0f, -1.0f};
#define NSPECIAL ((int)(sizeof SPECIAL / sizeof SPECIAL[0]))

/* x[n]: normal at scale sc; with `special`, every 3rd element one of SPECIAL */
static void fill(float *x, int64_t n, double sc, int special) {
    for (int64_t i = 0; i < n; i++) x[i] = nrand(sc);
    if (special)
        for (int64_t i = 0; i < n; i += 3) x[i] = SPECIAL[(i / 3 + special) % NSPECIAL];
}

static int same(const void *a, const void *b, size_t bytes) { return memcmp(a, b, bytes) == 0; }

/* the same bits, or both NaN: when two NaNs meet in an addition, x86 returns the first operand's,
 * and compilers order the operands of a commutative add as they like (the 4-lane code compiled by
 * gcc and by clang can differ there too), so a NaN's sign and payload are not part of the contract (arrays are compared bit for bit) */
static int same_d(double a, double b) { return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b)); }

#define NEED_AVX2() do { if (!cpu_simd_has_avx2()) SKIP("this CPU has no AVX2: only the 4-lane path exists"); } while (0)

static void test_vexp_and_row_helpers(void) {
    NEED_AVX2();
    static float x[NMAX], z[NMAX], y4[NMAX], y8[NMAX];
    const double scales[] = {0.5, 4.0, 15.0, 60.0};  // 15: exponentials 2^±30 apart, so the double sums round
    for (int li = 0; li < NLENS; li++)
        for (int si = 0; si < 4; si++)
            for (int special = 0; special <= 2; special++) {
                const int64_t n = LENS[li];
                const size_t nb = (size_t)n * sizeof(float);
                fill(x, n, scales[si], special);
                fill(z, n, 1.0, 0);
                cpu_vexp_4(y4, x, n);
                cpu_vexp_8(y8, x, n);
                CHECK_MSG(same(y4, y8, nb), "vexp n=%lld", (long long)n);
                float m4 = cpu_vmax_4(x, n), m8 = cpu_vmax_8(x, n);
                CHECK_MSG(same(&m4, &m8, sizeof m4), "vmax n=%lld special=%d", (long long)n, special);
                const float shift = n ? x[n / 2] : 0.0f;
                double s4 = cpu_vexp_sum_4(y4, x, shift, n), s8 = cpu_vexp_sum_8(y8, x, shift, n);
                CHECK_MSG(same_d(s4, s8) && same(y4, y8, nb), "vexp_sum n=%lld", (long long)n);
                CHECK_MSG(same(&s4, &s8, sizeof s4) || special, "vexp_sum bits n=%lld", (long long)n);
                memcpy(y4, x, nb); memcpy(y8, x, nb);  // in place, as the softmaxes call it
                s4 = cpu_vexp_sum_4(y4, y4, shift, n); s8 = cpu_vexp_sum_8(y8, y8, shift, n);
                CHECK_MSG(same_d(s4, s8) && same(y4, y8, nb), "vexp_sum in place n=%lld", (long long)n);
                cpu_vexp_sum_4(y4, x, shift, n); cpu_vscale_4(y4, 0.37f, n);
                cpu_vexp_scale_8(y8, x, shift, 0.37f, n);
                CHECK_MSG(same(y4, y8, nb), "vexp_scale n=%lld", (long long)n);
                memcpy(y8, x, nb);
                cpu_vexp_scale_8(y8, y8, shift, 0.37f, n);
                CHECK_MSG(same(y4, y8, nb), "vexp_scale in place n=%lld", (long long)n);
                memcpy(y4, x, nb); memcpy(y8, x, nb);
                cpu_vscale_4(y4, 0.37f, n); cpu_vscale_8(y8, 0.37f, n);
                CHECK_MSG(same(y4, y8, nb), "vscale n=%lld", (long long)n);
                double d4 = cpu_vdot_4(x, z, n), d8 = cpu_vdot_8(x, z, n);
                CHECK_MSG(same_d(d4, d8), "vdot n=%lld special=%d", (long long)n, special);
                CHECK_MSG(same(&d4, &d8, sizeof d4) || special, "vdot bits n=%lld", (long long)n);
                memcpy(y4, z, nb); memcpy(y8, z, nb);
                cpu_vmul_scaled_4(y4, x, 0.25f, n); cpu_vmul_scaled_8(y8, x, 0.25f, n);
                CHECK_MSG(same(y4, y8, nb), "vmul_scaled n=%lld", (long long)n);
                cpu_add_ref(y4, x, z, n); cpu_add_8(y8, x, z, n);
                CHECK_MSG(same(y4, y8, nb), "add n=%lld", (long long)n);
                memcpy(y4, z, nb); memcpy(y8, z, nb);
                cpu_axpy_ref(y4, -0.7f, x, n); cpu_axpy_8(y8, -0.7f, x, n);
                CHECK_MSG(same(y4, y8, nb), "axpy n=%lld", (long long)n);
                memcpy(y4, z, nb); memcpy(y8, z, nb);
                cpu_vsub_mul_scaled_4(y4, 0.3f, x, 0.25f, n); cpu_vsub_mul_scaled_8(y8, 0.3f, x, 0.25f, n);
                CHECK_MSG(same(y4, y8, nb), "vsub_mul_scaled n=%lld", (long long)n);
            }
}

static void test_vmax_ties_and_nan(void) {
    // where the 4-lane fold's answer depends on order (+0 vs -0 ties, NaN), the 8-lane one agrees
    NEED_AVX2();
    static float x[64];
    const int lens[] = {16, 17, 24, 33, 64};
    for (int li = 0; li < 5; li++) {
        const int n = lens[li];
        for (int at = 0; at < n; at++) {
            for (int i = 0; i < n; i++) x[i] = -1.0f - (float)i;
            x[at] = 0.0f;
            x[(at * 7 + 3) % n] = -0.0f;
            float m4 = cpu_vmax_4(x, n), m8 = cpu_vmax_8(x, n);
            CHECK_MSG(same(&m4, &m8, sizeof m4), "±0 tie n=%d at=%d", n, at);
            x[at] = NAN;
            m4 = cpu_vmax_4(x, n); m8 = cpu_vmax_8(x, n);
            CHECK_MSG(same(&m4, &m8, sizeof m4), "NaN n=%d at=%d", n, at);
        }
    }
}

static void test_swiglu_ranges(void) {
    NEED_AVX2();
    static float g[NMAX], u[NMAX], dout[NMAX], o4[NMAX], o8[NMAX], dg4[NMAX], dg8[NMAX], du4[NMAX], du8[NMAX];
    const int64_t los[] = {0, 1, 3, 5};
    for (int li = 0; li < NLENS; li++)
        for (int k = 0; k < 4; k++)
            for (int special = 0; special <= 1; special++) {
                const int64_t lo = los[k], hi = lo + LENS[li];
                if (hi > NMAX) continue;
                fill(g, hi, 3.0, special); fill(u, hi, 1.0, 0); fill(dout, hi, 1.0, 0);
                memset(o4, 0, sizeof o4); memset(o8, 0, sizeof o8);
                cpu_swiglu_fwd_range_4(o4, g, u, lo, hi);
                cpu_swiglu_fwd_range_8(o8, g, u, lo, hi);
                CHECK_MSG(same(o4, o8, sizeof o4), "swiglu fwd [%lld, %lld)", (long long)lo, (long long)hi);
                memset(du4, 0, sizeof du4); memset(du8, 0, sizeof du8);
                cpu_swiglu_bwd_range_4(dg4, du4, dout, g, u, lo, hi);
                cpu_swiglu_bwd_range_8(dg8, du8, dout, g, u, lo, hi);
                CHECK_MSG(same(du4 + lo, du8 + lo, (size_t)(hi - lo) * sizeof(float)) &&
                              same(dg4 + lo, dg8 + lo, (size_t)(hi - lo) * sizeof(float)),
                          "swiglu bwd [%lld, %lld)", (long long)lo, (long long)hi);
                memcpy(dg4, dout, sizeof dg4); memcpy(dg8, dout, sizeof dg8);  // dg aliasing dout
                cpu_swiglu_bwd_range_4(dg4, du4, dg4, g, u, lo, hi);
                cpu_swiglu_bwd_range_8(dg8, du8, dg8, g, u, lo, hi);
                CHECK_MSG(same(dg4, dg8, sizeof dg4), "swiglu bwd in place [%lld, %lld)", (long long)lo,
                          (long long)hi);
            }
}

static void test_rmsnorm(void) {
    NEED_AVX2();
    // 21 rows: two blocks of 8 whose sums of squares the 8-lane forward adds side by side, 5 after
    enum { NR = 21 };
    const int N = NR;
    static float x[NR * NMAX], w[NMAX], dy[NR * NMAX], o4[NR * NMAX], o8[NR * NMAX], r4[NR], r8[NR];
    static float dx4[NR * NMAX], dx8[NR * NMAX], dw4[NMAX], dw8[NMAX];
    for (int li = 1; li < NLENS; li++) {
        const int D = (int)LENS[li];
        const size_t nb = (size_t)N * D * sizeof(float);
        for (int special = 0; special <= 1; special++) {  // and values past float's square range, ±inf, NaN
            fill(x, (int64_t)N * D, special ? 1e20 : 2.0, special);
            cpu_rmsnorm_fwd_4(o4, r4, x, w, N, D, 1e-5f);
            cpu_rmsnorm_fwd_8(o8, r8, x, w, N, D, 1e-5f);
            CHECK_MSG(same(o4, o8, nb) && same(r4, r8, sizeof r4), "rmsnorm fwd D=%d special=%d", D, special);
            memcpy(o8, x, nb);  // in place (out == x), no rstd
            cpu_rmsnorm_fwd_8(o8, NULL, o8, w, N, D, 1e-5f);
            CHECK_MSG(same(o4, o8, nb), "rmsnorm fwd in place D=%d special=%d", D, special);
        }
        fill(x, (int64_t)N * D, 2.0, 0); fill(w, D, 1.0, 0); fill(dy, (int64_t)N * D, 1.0, 0);
        cpu_rmsnorm_fwd_4(o4, r4, x, w, N, D, 1e-5f);
        cpu_rmsnorm_fwd_8(o8, r8, x, w, N, D, 1e-5f);
        CHECK_MSG(same(o4, o8, nb) && same(r4, r8, sizeof r4), "rmsnorm fwd D=%d", D);
        for (int acc = 0; acc <= 1; acc++) {
            fill(dx4, (int64_t)N * D, 1.0, 0); memcpy(dx8, dx4, nb);
            fill(dw4, D, 1.0, 0); memcpy(dw8, dw4, (size_t)D * sizeof(float));
            cpu_rmsnorm_bwd_4(dx4, dw4, dy, x, w, r4, N, D, acc);
            cpu_rmsnorm_bwd_8(dx8, dw8, dy, x, w, r4, N, D, acc);
            CHECK_MSG(same(dx4, dx8, nb) && same(dw4, dw8, (size_t)D * sizeof(float)), "rmsnorm bwd D=%d acc=%d",
                      D, acc);
            cpu_rmsnorm_bwd_4(dx4, NULL, dy, x, w, r4, N, D, acc);
            cpu_rmsnorm_bwd_8(dx8, NULL, dy, x, w, r4, N, D, acc);
            CHECK_MSG(same(dx4, dx8, nb), "rmsnorm bwd no dw D=%d acc=%d", D, acc);
        }
        cpu_rmsnorm_bwd_4(dx4, NULL, dy, x, w, r4, N, D, false);
        memcpy(dx8, dy, nb);  // dx == dout: the 8-row coefficients are read before the rows are written
        cpu_rmsnorm_bwd_8(dx8, NULL, dx8, x, w, r4, N, D, false);
        CHECK_MSG(same(dx4, dx8, nb), "rmsnorm bwd in place D=%d", D);
    }
}

static void test_rope(void) {
    // head dims whose half is 1, 2, 4, 7, 8, 9, 16, 32 (the default model: Dh 16, half 8)
    NEED_AVX2();
    const int dhs[] = {2, 4, 8, 14, 16, 18, 32, 64}, N = 11, nh = 3, P = 40;
    for (int di = 0; di < 8; di++) {
        const int Dh = dhs[di], half = Dh / 2;
        const size_t nb = (size_t)N * nh * Dh * sizeof(float);
        float *x = malloc(nb), *a = malloc(nb), *b = malloc(nb);
        float *ct = malloc((size_t)P * half * 4), *st = malloc((size_t)P * half * 4);
        fill(x, (int64_t)N * nh * Dh, 1.0, 0); fill(ct, (int64_t)P * half, 1.0, 0); fill(st, (int64_t)P * half, 1.0, 0);
        int32_t pos[11];
        for (int n = 0; n < N; n++) pos[n] = (n * 7) % P;
        for (int sg = -1; sg <= 1; sg += 2) {
            memcpy(a, x, nb); memcpy(b, x, nb);
            cpu_rope_apply_ref(a, pos, ct, st, N, nh, Dh, (float)sg);
            cpu_rope_apply_8(b, pos, ct, st, N, nh, Dh, (float)sg);
            CHECK_MSG(same(a, b, nb), "rope Dh=%d sign=%d", Dh, sg);
        }
        free(x); free(a); free(b); free(ct); free(st);
    }
}

/* the ops through the backend table, once with each width, at 1 and 2 threads */
typedef struct op_out {
    float *att_out, *probs, *att_out_np, *dq, *dk, *dv, *loss, *lse, *dlog, *sw, *dg, *du, *rn, *rstd, *dx, *dw;
    double ce;
} op_out;

static float *dup(const float *x, size_t n) { float *y = malloc(n * sizeof *y); memcpy(y, x, n * sizeof *y); return y; }

static void run_ops(backend *be, op_out *o) {
    enum { B = 2, T = 70, H = 4, Hkv = 2, Dh = 16, N = 37, V = 1003, D = 64 };
    const int64_t nq = (int64_t)B * T * H * Dh, nk = (int64_t)B * T * Hkv * Dh, SWN = (1 << 18) + 13;
    rng_s = 12345;
    float *q = malloc(nq * 4), *k = malloc(nk * 4), *v = malloc(nk * 4), *dout = malloc(nq * 4);
    fill(q, nq, 1.0, 0); fill(k, nk, 1.0, 0); fill(v, nk, 1.0, 0); fill(dout, nq, 1.0, 0);
    int32_t qpos[B * T], kvl[B] = {T, 45};
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) qpos[b * T + t] = t;
    o->att_out = malloc(nq * 4); o->att_out_np = malloc(nq * 4); o->probs = malloc((size_t)B * H * T * T * 4);
    o->dq = malloc(nq * 4); o->dk = malloc(nk * 4); o->dv = malloc(nk * 4);
    BE(be, attention_fwd, o->att_out, o->probs, q, k, v, qpos, kvl, B, T, T, H, Hkv, Dh);
    BE(be, attention_fwd, o->att_out_np, NULL, q, k, v, qpos, kvl, B, T, T, H, Hkv, Dh);
    BE(be, attention_bwd, o->dq, o->dk, o->dv, dout, o->probs, q, k, v, kvl, B, T, T, H, Hkv, Dh);
    float *logits = malloc((size_t)N * V * 4);
    fill(logits, (int64_t)N * V, 3.0, 0);
    int32_t tg[N];
    for (int n = 0; n < N; n++) tg[n] = n % 5 == 4 ? LOSS_IGNORE_INDEX : (n * 131) % V;
    o->loss = malloc(N * 4); o->lse = malloc(N * 4); o->dlog = malloc((size_t)N * V * 4);
    int nv = 0;
    o->ce = BE(be, ce_fwd, o->loss, o->lse, logits, tg, N, V, &nv);
    BE(be, ce_bwd, o->dlog, logits, o->lse, tg, N, V, 1.0f / nv);
    float *g = malloc(SWN * 4), *u = malloc(SWN * 4), *dsw = malloc(SWN * 4);
    fill(g, SWN, 3.0, 0); fill(u, SWN, 1.0, 0); fill(dsw, SWN, 1.0, 0);
    o->sw = malloc(SWN * 4); o->dg = malloc(SWN * 4); o->du = malloc(SWN * 4);
    BE(be, swiglu_fwd, o->sw, g, u, SWN);
    BE(be, swiglu_bwd, o->dg, o->du, dsw, g, u, SWN);
    float *x = malloc((size_t)N * D * 4), *w = malloc(D * 4), *dy = malloc((size_t)N * D * 4);
    fill(x, (int64_t)N * D, 1.0, 0); fill(w, D, 1.0, 0); fill(dy, (int64_t)N * D, 1.0, 0);
    o->rn = malloc((size_t)N * D * 4); o->rstd = malloc(N * 4); o->dx = malloc((size_t)N * D * 4);
    o->dw = calloc(D, 4);
    BE(be, rmsnorm_fwd, o->rn, o->rstd, x, w, N, D, 1e-5f);
    BE(be, rmsnorm_bwd, o->dx, o->dw, dy, x, w, o->rstd, N, D, false);
    free(q); free(k); free(v); free(dout); free(logits); free(g); free(u); free(dsw); free(x); free(w); free(dy);
    (void)dup;
}

static void free_ops(op_out *o) {
    float **f[] = {&o->att_out, &o->probs, &o->att_out_np, &o->dq, &o->dk, &o->dv, &o->loss, &o->lse, &o->dlog,
                   &o->sw, &o->dg, &o->du, &o->rn, &o->rstd, &o->dx, &o->dw};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) { free(*f[i]); *f[i] = NULL; }
}

static void test_ops_both_widths(void) {
    NEED_AVX2();
    for (int threads = 1; threads <= 2; threads++) {
        cis_err err = {0};
        backend *be = backend_open("cpu", &(backend_opts){.threads = threads}, &err);
        CHECK_MSG(be != NULL, "backend_open: %s", err.msg);
        if (!be) return;
        op_out a = {0}, b = {0};
        CHECK(cpu_simd_set_lanes(4) == 4);
        run_ops(be, &a);
        CHECK(cpu_simd_set_lanes(8) == 8);
        run_ops(be, &b);
        const int64_t nq = 2 * 70 * 4 * 16, nk = 2 * 70 * 2 * 16, SWN = (1 << 18) + 13;
#define SAME(f, n) CHECK_MSG(same(a.f, b.f, (size_t)(n) * sizeof(float)), #f " differs at %d threads", threads)
        SAME(att_out, nq); SAME(att_out_np, nq); SAME(probs, 2 * 4 * 70 * 70); SAME(dq, nq); SAME(dk, nk);
        SAME(dv, nk); SAME(loss, 37); SAME(lse, 37); SAME(dlog, 37 * 1003); SAME(sw, SWN); SAME(dg, SWN);
        SAME(du, SWN); SAME(rn, 37 * 64); SAME(rstd, 37); SAME(dx, 37 * 64); SAME(dw, 64);
#undef SAME
        CHECK(same(&a.ce, &b.ce, sizeof a.ce));
        free_ops(&a); free_ops(&b);
        backend_close(&be);
    }
    cpu_simd_set_lanes(0);
}

static void test_sgemm_beta0(void) {
    // a beta = 0 product written by memset + beta = 1 (cpu_matmul.c, on OpenBLAS's Zen/Haswell
    // cores) equals OpenBLAS's own beta = 0, whatever C held before (NaN here), at the model's shapes
    // and awkward ones, every transpose, ldc > N, alpha != 1, and at 2 OpenBLAS threads
    NEED_AVX2();
    const char *core = openblas_get_corename();
#if defined(__x86_64__) || defined(__i386__)
    const bool avx512 = __builtin_cpu_supports("avx512f");
#else
    const bool avx512 = false;
#endif
    const bool memset_expected = core && (!strcmp(core, "Zen") || !strcmp(core, "Haswell")) && !avx512;
    printf("# OpenBLAS core %s: beta = 0 by memset %s\n", core ? core : "?", memset_expected ? "on" : "off");
    const int shapes[][3] = {{1, 1, 1}, {3, 7, 5}, {64, 64, 16}, {128, 192, 64}, {128, 64, 192}, {37, 2048, 64},
                             {64, 70, 16}, {9, 65, 63}, {256, 64, 10}};
    const int nshapes = (int)(sizeof shapes / sizeof shapes[0]);
    for (int c = 0; c < 2 * nshapes * 8; c++) {  // threads x shapes x transposes x ldc
        const int th = 1 + c / (nshapes * 8), si = c / 8 % nshapes, tr = c / 2 % 4, wide = c % 2;
        const int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2], ldc = N + 5 * wide;
        const bool ta = tr & 1, tb = tr & 2;
        float *A = malloc((size_t)M * K * 4), *Bm = malloc((size_t)K * N * 4);
        float *c4 = malloc((size_t)M * ldc * 4), *c8 = malloc((size_t)M * ldc * 4);
        fill(A, (int64_t)M * K, 1.0, 0); fill(Bm, (int64_t)K * N, 1.0, 0);
        for (int64_t i = 0; i < (int64_t)M * ldc; i++) c4[i] = c8[i] = NAN;
        const float alpha = si % 2 ? 0.25f : 1.0f;
        openblas_set_num_threads(th);
        for (int lanes = 4; lanes <= 8; lanes += 4) {
            cpu_simd_set_lanes(lanes);
            CHECK(cpu_sgemm_beta0_by_memset() == (lanes == 8 && memset_expected));
            cpu_sgemm(ta, tb, M, N, K, alpha, A, ta ? M : K, Bm, tb ? K : N, 0.0f, lanes == 4 ? c4 : c8, ldc);
        }
        CHECK_MSG(same(c4, c8, (size_t)M * ldc * 4), "sgemm %dx%dx%d ta=%d tb=%d ldc=%d threads=%d", M, N, K, ta, tb,
                  ldc, th);
        free(A); free(Bm); free(c4); free(c8);
    }
    cpu_simd_set_lanes(0);
    openblas_set_num_threads(1);
}

/* the 8-lane exponential (cpu_avx2.c's vexp8: vmaxps/vminps clamps, spelled differently from
 * CPU_VEXP_BODY) against the scalar one (cpu_exp_scalar) and the 4-lane one, element by element,
 * on a sweep of the float bit patterns (every 61st of the 2^32, about 70 million: every exponent,
 * sign, the clamps' neighbourhoods, ±0, ±inf, denormals and NaNs with many payloads) */
static void test_vexp8_every_float(void) {
    NEED_AVX2();
    enum { BLK = 4096 };
    static float x[BLK], y4[BLK], y8[BLK], ys[BLK];
    uint64_t bad = 0, first_bad = 0, count = 0;
    uint32_t u = 0;
    for (uint64_t k = 0; k < (1ull << 32); ) {
        int n = 0;
        for (; n < BLK && k < (1ull << 32); n++, k += 61) { u = (uint32_t)k; memcpy(&x[n], &u, sizeof u); }
        cpu_vexp_8(y8, x, n);  // n = 4096 except the last block: all but the 8-lane loop's tail
        cpu_vexp_4(y4, x, n);
        for (int i = 0; i < n; i++) ys[i] = cpu_exp_scalar(x[i]);
        for (int i = 0; i < n; i++)
            if (memcmp(&y8[i], &ys[i], sizeof(float)) || memcmp(&y8[i], &y4[i], sizeof(float))) {
                if (!bad++) memcpy(&first_bad, &x[i], sizeof(float));
            }
        count += (uint64_t)n;
    }
    CHECK_MSG(bad == 0, "vexp8: %llu of %llu inputs differ from the scalar/4-lane bits (first 0x%08llx)",
              (unsigned long long)bad, (unsigned long long)count, (unsigned long long)first_bad);
    CHECK_MSG(count > 70000000ull, "swept %llu inputs", (unsigned long long)count);
}

/* the Adam step: cpu_avx2.c's 8-lane loop against the reference loop (cpu_optim.c), every variant,
 * with and without weight decay, over several steps (the moments carried), awkward lengths, and
 * special values among the gradients and parameters */
static void test_adam_range(void) {
    NEED_AVX2();
    static float p4[NMAX], p8[NMAX], m4[NMAX], m8[NMAX], v4[NMAX], v8[NMAX], g[NMAX];
    const adam_variant vars[] = {ADAM_TORCH_ADAMW, ADAM_HF_ADAMW, ADAM_TORCH_ADAM};
    for (int vi = 0; vi < 3; vi++)
        for (int wdi = 0; wdi < 2; wdi++)
            for (int li = 0; li < NLENS; li++)
                for (int special = 0; special <= 1; special++) {
                    const int64_t n = LENS[li];
                    const size_t nb = (size_t)n * sizeof(float);
                    fill(p4, n, 1.0, special);
                    memcpy(p8, p4, nb);
                    memset(m4, 0, nb); memset(m8, 0, nb); memset(v4, 0, nb); memset(v8, 0, nb);
                    for (int step = 1; step <= 3; step++) {
                        fill(g, n, 0.01, special ? step : 0);
                        adam_params ap = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                                          .weight_decay = wdi ? 0.01f : 0.0f, .step = step, .variant = vars[vi]};
                        cpu_adam_range_ref(p4, g, m4, v4, n, &ap);
                        cpu_adam_range_8(p8, g, m8, v8, n, &ap);
                        CHECK_MSG(same(p4, p8, nb) && same(m4, m8, nb) && same(v4, v8, nb),
                                  "adam variant %d wd %d n=%lld special=%d step %d", vi, wdi, (long long)n, special, step);
                    }
                }
}

static void test_lane_selection(void) {
    // the default is 8 where the CPU has AVX2; 4 can always be forced, and 0 returns to the default
    int def = cpu_simd_set_lanes(0);
    CHECK_EQ_INT(def, cpu_simd_has_avx2() ? 8 : 4);
    CHECK_EQ_INT(cpu_simd_set_lanes(4), 4);
    CHECK_EQ_INT(cpu_simd_lanes(), 4);
    CHECK_EQ_INT(cpu_simd_set_lanes(8), cpu_simd_has_avx2() ? 8 : 4);
    CHECK_EQ_INT(cpu_simd_set_lanes(0), def);
}

int main(void) {
    RUN(test_lane_selection);
    RUN(test_vexp_and_row_helpers);
    RUN(test_vexp8_every_float);
    RUN(test_adam_range);
    RUN(test_vmax_ties_and_nan);
    RUN(test_swiglu_ranges);
    RUN(test_rmsnorm);
    RUN(test_rope);
    RUN(test_ops_both_widths);
    RUN(test_sgemm_beta0);
    return test_summary();
}
