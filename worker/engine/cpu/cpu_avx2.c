/* cpu_avx2.c - the 8-lane (AVX2) versions of the cpu backend's elementwise hot paths: the vectorised
 * exponential and softmax row helpers (cpu_elementwise.c), the SwiGLU gate forward/backward
 * (cpu_mlp.c), RMSNorm forward/backward (cpu_norm.c), RoPE (cpu_rope.c), the residual add/axpy and
 * the Adam step (cpu_optim.c). Compiled with
 * __attribute__((target("avx2"))) in a portable build and run only where cpu_simd_lanes() says 8
 * (cpu_simd.c). Each gives the same bits as the 4-lane/scalar version it replaces, for every input:
 *  - every element sees the same operations in the same order (no "fma" target, and the build's
 *    -std=c11 keeps GCC from contracting; the exponential is cpu_vexp.h's statements, its clamps
 *    spelled as vmaxps/vminps here (vexp8: the same result for every input));
 *  - the elements that the 4-lane code ran through its scalar tail (the last n mod 4) run through
 *    the same scalar code here, the rest in 8-lane blocks and at most one 4-lane block;
 *  - reductions keep the 4-lane order: the 8 products of a block are added to the same 4 double
 *    accumulators, low half then high half, which is the 4-lane code's sequence of additions;
 *    RMSNorm's double sums keep the serial loops' order, 8 rows side by side (one row per lane);
 *  - the max is taken 8 lanes wide only when its value fixes its bits (no NaN, max != 0); else the
 *    4-lane code decides (ties of +0 and -0, NaN positions).
 * tests/worker/engine/cpu/test_cpu_simd.c runs both widths on awkward lengths and compares bytes. */
#include <math.h>
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"
#include "worker/engine/cpu/cpu_vexp.h"

#if defined(__x86_64__) || defined(__i386__)

#include <immintrin.h>

#define AVX2 __attribute__((target("avx2")))

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef cpu_v4f v4f;
typedef cpu_v4d v4d;

static inline AVX2 v8f load8(const float *p) { v8f v; memcpy(&v, p, sizeof v); return v; }
static inline AVX2 void store8(float *p, v8f v) { memcpy(p, &v, sizeof v); }
static inline AVX2 v4f load4(const float *p) { v4f v; memcpy(&v, p, sizeof v); return v; }
static inline AVX2 void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }
/* vexp8: cpu_vexp.h's exponential 8 lanes wide, the same operations in the same order as
 * CPU_VEXP_BODY (which the 4-lane and scalar code use) with two cheaper spellings that give the same
 * bits for every input (test_cpu_simd test_vexp8_every_float sweeps the float bit patterns):
 *  - the clamps are vmaxps/vminps with the bound first: maxps(lo, v) is "lo > v ? lo : v", which is
 *    the macro's "v < lo ? lo : v" for every v, NaN included (a NaN v makes the compare false and
 *    maxps returns its second operand, v); minps(hi, v) likewise; the macro's compare-and-select
 *    compiled to 2 compares + 2 vpblendvb;
 *  - nothing else changes (the polynomial, the rounding by 1.5 * 2^23, the truncating conversion). */
static inline AVX2 v8f vexp8(v8f v) {
    v = (v8f)_mm256_max_ps(_mm256_set1_ps(CPU_EXP_LO), (__m256)v);
    v = (v8f)_mm256_min_ps(_mm256_set1_ps(CPU_EXP_HI), (__m256)v);
    v8f t = v * 1.44269504088896341f;
    v8f nf = (t + 12582912.0f) - 12582912.0f;
    v8f r = v - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    v8f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v8i bits = (__builtin_convertvector(nf, v8i) + 127) << 23;
    return p * (v8f)bits;
}
/* the 4 low / 4 high floats of v widened to double (vcvtps2pd ymm: exact, so any spelling gives the
 * same values; GCC's __builtin_convertvector of a 4-float half took 2 conversions + 2 shuffles) */
static inline AVX2 v4d lo4d(v8f v) { return (v4d)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)v)); }
static inline AVX2 v4d hi4d(v8f v) { return (v4d)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)v, 1)); }
static inline AVX2 v4f vexp4(v4f v) { return CPU_VEXP_BODY(cpu_v4f, cpu_v4i, v); }

/* the end of the vector part: the 4-lane code ran [0, n - n mod 4) in vectors */
static inline int64_t vec_end(int64_t n) { return n > 0 ? n - n % 4 : 0; }

AVX2 void cpu_add_8(float *out, const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store8(out + i, load8(a + i) + load8(b + i));
    for (; i < n; i++) out[i] = a[i] + b[i];
}

AVX2 void cpu_axpy_8(float *y, float a, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store8(y + i, load8(y + i) + a * load8(x + i));
    for (; i < n; i++) y[i] += a * x[i];
}

AVX2 void cpu_vexp_8(float *y, const float *x, int64_t n) {
    const int64_t n4 = vec_end(n);
    int64_t i = 0;
    for (; i + 8 <= n4; i += 8) store8(y + i, vexp8(load8(x + i)));
    for (; i + 4 <= n4; i += 4) store4(y + i, vexp4(load4(x + i)));
    for (; i < n; i++) y[i] = cpu_exp_scalar(x[i]);
}

AVX2 float cpu_vmax_8(const float *x, int64_t n) {
    if (n < 16) return cpu_vmax_4(x, n);
    v8f acc = load8(x);
    v8i nan = acc != acc;
    int64_t i = 8;
    for (; i + 8 <= n; i += 8) {
        v8f v = load8(x + i);
        v8i gt = v > acc;
        acc = (v8f)(((v8i)v & gt) | ((v8i)acc & ~gt));
        nan |= v != v;
    }
    float m = acc[0];
    int any_nan = 0;
    for (int j = 0; j < 8; j++) { m = acc[j] > m ? acc[j] : m; any_nan |= nan[j]; }
    for (; i < n; i++) { m = x[i] > m ? x[i] : m; any_nan |= x[i] != x[i]; }
    // without NaN the 4-lane fold's result is a maximal element: its value is m, and a nonzero
    // value has one bit pattern; +0/-0 ties and NaN positions depend on order, so ask that code
    if (any_nan || m == 0.0f) return cpu_vmax_4(x, n);
    return m;
}

AVX2 double cpu_vexp_sum_8(float *y, const float *x, float shift, int64_t n) {
    const int64_t n4 = vec_end(n);
    int64_t i = 0;
    v4d acc = {0, 0, 0, 0};
    // two independent 8-lane exponentials per step (instruction-level parallelism); the sums are
    // still added block by block, low half then high half, in the 4-lane code's order
    for (; i + 16 <= n4; i += 16) {
        v8f e0 = vexp8(load8(x + i) - shift), e1 = vexp8(load8(x + i + 8) - shift);
        store8(y + i, e0);
        store8(y + i + 8, e1);
        acc += lo4d(e0);
        acc += hi4d(e0);
        acc += lo4d(e1);
        acc += hi4d(e1);
    }
    for (; i + 8 <= n4; i += 8) {
        v8f e = vexp8(load8(x + i) - shift);
        store8(y + i, e);
        acc += lo4d(e);
        acc += hi4d(e);
    }
    for (; i + 4 <= n4; i += 4) {
        v4f e = vexp4(load4(x + i) - shift);
        store4(y + i, e);
        acc += __builtin_convertvector(e, v4d);
    }
    double s = 0.0;
    for (int j = 0; j < 4; j++) s += acc[j];
    for (; i < n; i++) {
        y[i] = cpu_exp_scalar(x[i] - shift);
        s += y[i];
    }
    return s;
}

AVX2 void cpu_vexp_scale_8(float *y, const float *x, float shift, float s, int64_t n) {
    const int64_t n4 = vec_end(n);
    int64_t i = 0;
    for (; i + 8 <= n4; i += 8) store8(y + i, vexp8(load8(x + i) - shift) * s);
    for (; i + 4 <= n4; i += 4) store4(y + i, vexp4(load4(x + i) - shift) * s);
    for (; i < n; i++) {
        float e = cpu_exp_scalar(x[i] - shift);
        y[i] = e * s;
    }
}

AVX2 void cpu_vscale_8(float *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store8(x + i, load8(x + i) * s);
    for (; i < n; i++) x[i] *= s;
}

AVX2 double cpu_vdot_8(const float *a, const float *b, int64_t n) {
    const int64_t n4 = vec_end(n);
    int64_t i = 0;
    v4d acc = {0, 0, 0, 0};
    for (; i + 8 <= n4; i += 8) {
        v8f p = load8(a + i) * load8(b + i);  // fp32 products, as the 4-lane code
        acc += lo4d(p);
        acc += hi4d(p);
    }
    for (; i + 4 <= n4; i += 4) acc += __builtin_convertvector(load4(a + i) * load4(b + i), v4d);
    double s = 0.0;
    for (int j = 0; j < 4; j++) s += acc[j];
    for (; i < n; i++) s += (double)a[i] * b[i];  // the tail's products in double, as the 4-lane code
    return s;
}

AVX2 void cpu_vmul_scaled_8(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store8(y + i, load8(y + i) * load8(x + i) * s);
    for (; i < n; i++) y[i] = y[i] * x[i] * s;
}

AVX2 void cpu_vsub_mul_scaled_8(float *y, float c, const float *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) store8(y + i, (load8(y + i) - c) * load8(x + i) * s);
    for (; i < n; i++) {
        float t = y[i] - c;
        y[i] = t * x[i] * s;
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU over [lo, hi): out = g / (1 + exp(-g)) * u; the 4-lane code (cpu_mlp.c) ran exp over
// chunks of 512 from lo, so only the range's last (hi - lo) mod 4 elements took the scalar exp

/* 4 floats in the low half of an 8-lane vector, zeros above (the lanes are independent, so the low
 * half's results are those of a 4-lane block), and back */
static inline AVX2 v8f load_lo(const float *p) { v8f v = {0}; memcpy(&v, p, 4 * sizeof(float)); return v; }
static inline AVX2 void store_lo(float *p, v8f v) { memcpy(p, &v, 4 * sizeof(float)); }

static inline AVX2 v8f sw_fwd8(v8f x, v8f ui) {
    v8f e = vexp8(-x);
    return x / (1.0f + e) * ui;
}

AVX2 void cpu_swiglu_fwd_range_8(float *out, const float *g, const float *u, int64_t lo, int64_t hi) {
    const int64_t n4 = lo + vec_end(hi - lo);
    int64_t i = lo;
    for (; i + 8 <= n4; i += 8) store8(out + i, sw_fwd8(load8(g + i), load8(u + i)));
    if (i + 4 <= n4) { store_lo(out + i, sw_fwd8(load_lo(g + i), load_lo(u + i))); i += 4; }
    for (; i < hi; i++) {
        float x = g[i], ui = u[i];
        out[i] = x / (1.0f + cpu_exp_scalar(-x)) * ui;
    }
}

static inline AVX2 void sw_bwd8(v8f *dgo, v8f *duo, v8f d, v8f x, v8f ui) {
    v8f s = 1.0f / (1.0f + vexp8(-x));
    *duo = d * x * s;
    *dgo = d * ui * s * (1.0f + x * (1.0f - s));
}

AVX2 void cpu_swiglu_bwd_range_8(float *dg, float *du, const float *dout, const float *g, const float *u,
                                 int64_t lo, int64_t hi) {
    const int64_t n4 = lo + vec_end(hi - lo);
    int64_t i = lo;
    v8f dgv, duv;
    for (; i + 8 <= n4; i += 8) {
        sw_bwd8(&dgv, &duv, load8(dout + i), load8(g + i), load8(u + i));
        store8(du + i, duv);
        store8(dg + i, dgv);
    }
    if (i + 4 <= n4) {
        sw_bwd8(&dgv, &duv, load_lo(dout + i), load_lo(g + i), load_lo(u + i));
        store_lo(du + i, duv);
        store_lo(dg + i, dgv);
        i += 4;
    }
    for (; i < hi; i++) {
        float x = g[i], s = 1.0f / (1.0f + cpu_exp_scalar(-x)), d = dout[i], ui = u[i];
        du[i] = d * x * s;
        dg[i] = d * ui * s * (1.0f + x * (1.0f - s));
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: the double sums are the 4-lane file's serial loops (the forward's sum of squares run for
// 8 rows at once, each row's additions in the same order); the elementwise parts 8 wide

/* Σ_i x²_i of 8 rows (x + k·ld, k < 8) into ss[8], each row's sum the serial loop of
 * cpu_rms_rstd_row ((double)x * x exact, added in index order from 0.0): lane k of a 4-double
 * vector carries row k's sum, so the 8 rows' dependency chains of double additions (the whole cost
 * of the serial loop: ~4 cycles per element) run side by side instead of one after another */
static inline AVX2 void rms_sumsq_rows8(double ss[8], const float *x, int64_t ld, int D) {
    const float *x0 = x, *x1 = x + ld, *x2 = x + 2 * ld, *x3 = x + 3 * ld;
    const float *x4 = x + 4 * ld, *x5 = x + 5 * ld, *x6 = x + 6 * ld, *x7 = x + 7 * ld;
    v4d a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
    for (int i = 0; i < D; i++) {
        v4d u = (v4d)_mm256_cvtps_pd(_mm_setr_ps(x0[i], x1[i], x2[i], x3[i]));
        v4d v = (v4d)_mm256_cvtps_pd(_mm_setr_ps(x4[i], x5[i], x6[i], x7[i]));
        a0 += u * u;
        a1 += v * v;
    }
    memcpy(ss, &a0, sizeof a0);
    memcpy(ss + 4, &a1, sizeof a1);
}

AVX2 void cpu_rmsnorm_fwd_8(float *out, float *rstd, const float *x, const float *w, int N, int D, float eps) {
    double ss[8];
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * D;
        float *yr = out + (int64_t)n * D;
        // every row's sum before any row of the 8 is written (out may alias x)
        if (n % 8 == 0 && n + 8 <= N) rms_sumsq_rows8(ss, xr, D, D);
        float r = n - n % 8 + 8 <= N ? cpu_rms_rstd_of(ss[n % 8], D, eps) : cpu_rms_rstd_row(xr, D, eps);
        if (rstd) rstd[n] = r;
        int i = 0;
        for (; i + 8 <= D; i += 8) store8(yr + i, load8(w + i) * (load8(xr + i) * r));
        for (; i < D; i++) yr[i] = w[i] * (xr[i] * r);
    }
}

/* cpu_rms_bwd_coef of 8 rows (dy, x + k·ld, k < 8) into c[8]: each row's Σ (double)w dy x in the
 * serial loop's order, lane k carrying row k (as rms_sumsq_rows8), then the same scaling */
static inline AVX2 void rms_bwd_coef_rows8(float c[8], const float *w, const float *dy, const float *x,
                                           const float *r, int64_t ld, int D) {
    v4d a0 = {0, 0, 0, 0}, a1 = {0, 0, 0, 0};
    for (int i = 0; i < D; i++) {
        const v4d wi = (v4d){0, 0, 0, 0} + (double)w[i];
        v4d d0 = (v4d)_mm256_cvtps_pd(_mm_setr_ps(dy[i], dy[ld + i], dy[2 * ld + i], dy[3 * ld + i]));
        v4d d1 = (v4d)_mm256_cvtps_pd(_mm_setr_ps(dy[4 * ld + i], dy[5 * ld + i], dy[6 * ld + i], dy[7 * ld + i]));
        v4d x0 = (v4d)_mm256_cvtps_pd(_mm_setr_ps(x[i], x[ld + i], x[2 * ld + i], x[3 * ld + i]));
        v4d x1 = (v4d)_mm256_cvtps_pd(_mm_setr_ps(x[4 * ld + i], x[5 * ld + i], x[6 * ld + i], x[7 * ld + i]));
        a0 += wi * d0 * x0;
        a1 += wi * d1 * x1;
    }
    for (int k = 0; k < 8; k++) {
        double dot = k < 4 ? a0[k] : a1[k - 4];
        c[k] = cpu_rms_bwd_coef_of(dot, r[k], D);
    }
}

AVX2 void cpu_rmsnorm_bwd_8(float *dx, float *dw, const float *dout, const float *x, const float *w,
                            const float *rstd, int N, int D, bool acc_dx) {
    float cb[8];
    for (int n = 0; n < N; n++) {
        // the 8 rows' coefficients before any of them is written (dx may alias dout)
        if (dx && n % 8 == 0 && n + 8 <= N)
            rms_bwd_coef_rows8(cb, w, dout + (int64_t)n * D, x + (int64_t)n * D, rstd + n, D, D);
        const float *xr = x + (int64_t)n * D, *dy = dout + (int64_t)n * D;
        float r = rstd[n];
        if (dw) {
            int i = 0;
            for (; i + 8 <= D; i += 8) store8(dw + i, load8(dw + i) + load8(dy + i) * load8(xr + i) * r);
            for (; i < D; i++) dw[i] += dy[i] * xr[i] * r;
        }
        if (!dx) continue;
        float *dxr = dx + (int64_t)n * D;
        float c = n - n % 8 + 8 <= N ? cb[n % 8] : cpu_rms_bwd_coef(w, dy, xr, r, D);
        int i = 0;
        for (; i + 8 <= D; i += 8) {
            v8f gi = r * load8(w + i) * load8(dy + i) - c * load8(xr + i);
            store8(dxr + i, acc_dx ? load8(dxr + i) + gi : gi);
        }
        for (; i < D; i++) {
            float g = r * w[i] * dy[i] - c * xr[i];
            dxr[i] = acc_dx ? dxr[i] + g : g;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RoPE: pairs (i, i + Dh/2) of each head, 8 pairs at a time, the reference's operations per pair

AVX2 void cpu_rope_apply_8(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int nh,
                           int Dh, float sign) {
    const int half = Dh / 2;
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (int64_t)pos[n] * half, *s = sin_t + (int64_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *xr = x + ((int64_t)n * nh + h) * Dh;
            int i = 0;
            for (; i + 8 <= half; i += 8) {
                v8f x1 = load8(xr + i), x2 = load8(xr + i + half), ci = load8(c + i), si = sign * load8(s + i);
                store8(xr + i, x1 * ci - x2 * si);
                store8(xr + i + half, x2 * ci + x1 * si);
            }
            for (; i < half; i++) {
                float x1 = xr[i], x2 = xr[i + half], si = sign * s[i];
                xr[i] = x1 * c[i] - x2 * si;
                xr[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Adam: cpu_optim.c's reference loop 8 elements at a time, each statement the same operations in
// the same order (a * b * c is (a * b) * c in both; vsqrtps and vdivps round as sqrtf and /); the
// last n mod 8 elements run through the reference loop itself

static inline AVX2 v8f vsqrt8(v8f v) { return (v8f)_mm256_sqrt_ps((__m256)v); }

AVX2 void cpu_adam_range_8(float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap) {
    const float b1 = ap->beta1, b2 = ap->beta2, lr = ap->lr, wd = ap->weight_decay, eps = ap->eps;
    const double bc1 = 1.0 - pow(b1, (double)ap->step), bc2 = 1.0 - pow(b2, (double)ap->step);
    int64_t i = 0;
    switch (ap->variant) {
    case ADAM_TORCH_ADAMW: {
        const float step_size = (float)(lr / bc1), sq_bc2 = (float)sqrt(bc2), decay = 1.0f - lr * wd;
        for (; i + 8 <= n; i += 8) {
            v8f gi = load8(g + i), pi = load8(p + i) * decay;
            v8f mi = b1 * load8(m + i) + (1.0f - b1) * gi;
            v8f vi = b2 * load8(v + i) + (1.0f - b2) * gi * gi;
            pi -= step_size * mi / (vsqrt8(vi) / sq_bc2 + eps);
            store8(m + i, mi); store8(v + i, vi); store8(p + i, pi);
        }
        break;
    }
    case ADAM_HF_ADAMW: {
        const float step_size = (float)(lr * sqrt(bc2) / bc1), lrwd = lr * wd;
        for (; i + 8 <= n; i += 8) {
            v8f gi = load8(g + i);
            v8f mi = b1 * load8(m + i) + (1.0f - b1) * gi;
            v8f vi = b2 * load8(v + i) + (1.0f - b2) * gi * gi;
            v8f pi = load8(p + i) - step_size * mi / (vsqrt8(vi) + eps);
            if (wd > 0.0f) pi -= lrwd * pi;
            store8(m + i, mi); store8(v + i, vi); store8(p + i, pi);
        }
        break;
    }
    case ADAM_TORCH_ADAM: {
        const float step_size = (float)(lr / bc1), sq_bc2 = (float)sqrt(bc2);
        for (; i + 8 <= n; i += 8) {
            v8f pi = load8(p + i), gi = load8(g + i) + wd * pi;
            v8f mi = b1 * load8(m + i) + (1.0f - b1) * gi;
            v8f vi = b2 * load8(v + i) + (1.0f - b2) * gi * gi;
            pi -= step_size * mi / (vsqrt8(vi) / sq_bc2 + eps);
            store8(m + i, mi); store8(v + i, vi); store8(p + i, pi);
        }
        break;
    }
    }
    if (i < n) cpu_adam_range_ref(p + i, g + i, m + i, v + i, n - i, ap);
}

#else  // no AVX2 on this architecture: cpu_simd_lanes() is always 4 and these are never called

void cpu_add_8(float *out, const float *a, const float *b, int64_t n) { cpu_add_ref(out, a, b, n); }
void cpu_axpy_8(float *y, float a, const float *x, int64_t n) { cpu_axpy_ref(y, a, x, n); }
void cpu_vexp_8(float *y, const float *x, int64_t n) { cpu_vexp_4(y, x, n); }
float cpu_vmax_8(const float *x, int64_t n) { return cpu_vmax_4(x, n); }
double cpu_vexp_sum_8(float *y, const float *x, float shift, int64_t n) { return cpu_vexp_sum_4(y, x, shift, n); }
void cpu_vscale_8(float *x, float s, int64_t n) { cpu_vscale_4(x, s, n); }
void cpu_vexp_scale_8(float *y, const float *x, float shift, float s, int64_t n) {
    cpu_vexp_sum_4(y, x, shift, n);
    cpu_vscale_4(y, s, n);
}
double cpu_vdot_8(const float *a, const float *b, int64_t n) { return cpu_vdot_4(a, b, n); }
void cpu_vmul_scaled_8(float *y, const float *x, float s, int64_t n) { cpu_vmul_scaled_4(y, x, s, n); }
void cpu_vsub_mul_scaled_8(float *y, float c, const float *x, float s, int64_t n) {
    cpu_vsub_mul_scaled_4(y, c, x, s, n);
}
void cpu_swiglu_fwd_range_8(float *out, const float *g, const float *u, int64_t lo, int64_t hi) {
    cpu_swiglu_fwd_range_4(out, g, u, lo, hi);
}
void cpu_swiglu_bwd_range_8(float *dg, float *du, const float *dout, const float *g, const float *u, int64_t lo,
                            int64_t hi) {
    cpu_swiglu_bwd_range_4(dg, du, dout, g, u, lo, hi);
}
void cpu_rmsnorm_fwd_8(float *out, float *rstd, const float *x, const float *w, int N, int D, float eps) {
    cpu_rmsnorm_fwd_4(out, rstd, x, w, N, D, eps);
}
void cpu_rmsnorm_bwd_8(float *dx, float *dw, const float *dout, const float *x, const float *w,
                       const float *rstd, int N, int D, bool acc_dx) {
    cpu_rmsnorm_bwd_4(dx, dw, dout, x, w, rstd, N, D, acc_dx);
}
void cpu_rope_apply_8(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int nh, int Dh,
                      float sign) {
    cpu_rope_apply_ref(x, pos, cos_t, sin_t, N, nh, Dh, sign);
}
void cpu_adam_range_8(float *p, const float *g, float *m, float *v, int64_t n, const adam_params *ap) {
    cpu_adam_range_ref(p, g, m, v, n, ap);
}

#endif
