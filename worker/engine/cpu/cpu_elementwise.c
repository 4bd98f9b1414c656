/* cpu_elementwise.c - elementwise ops and reductions (double accumulators, fixed order). */
#include <math.h>
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"

void cpu_add(backend *be, float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void cpu_scale(backend *be, float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void cpu_axpy(backend *be, float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

double cpu_sum(backend *be, const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

double cpu_sumsq(backend *be, const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

// ---------------------------------------------------------------------------------------------
// y = exp(x) over an array, 4 lanes at a time with GCC vector extensions (portable C, no
// intrinsics): Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for
// e^r (Cephes expf coefficients, ~1 ulp), 2^n through the exponent bits. Inputs are clamped to
// [-87.3, 88.37] (results below ~1e-38 are returned as ~1e-38, never a denormal or inf). The tail
// uses the same arithmetic one lane at a time, so a value's result does not depend on its index.

typedef float v4f __attribute__((vector_size(16)));   // 4 lanes: SSE on x86-64, NEON on arm64
typedef int32_t v4i __attribute__((vector_size(16)));

#define EXP_LO (-87.3f)
#define EXP_HI 88.37f  // keeps n <= 127 (2^128 would be inf)

static inline float exp_scalar(float x) {
    x = x < EXP_LO ? EXP_LO : (x > EXP_HI ? EXP_HI : x);
    float t = x * 1.44269504088896341f;
    float nf = (t + 12582912.0f) - 12582912.0f;  // round to nearest (1.5 * 2^23)
    float r = x - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)nf + 127) << 23;
    float sc;
    memcpy(&sc, &bits, sizeof sc);
    return p * sc;
}

static inline v4f vexp4(v4f v) {
    const v4f lo = {EXP_LO, EXP_LO, EXP_LO, EXP_LO};
    const v4f hi = {EXP_HI, EXP_HI, EXP_HI, EXP_HI};
    v4i mlo = v < lo, mhi = v > hi;
    v = (v4f)(((v4i)v & ~mlo) | ((v4i)lo & mlo));
    v = (v4f)(((v4i)v & ~mhi) | ((v4i)hi & mhi));
    v4f t = v * 1.44269504088896341f;
    v4f nf = (t + 12582912.0f) - 12582912.0f;
    v4f r = v - nf * 0.693359375f;
    r = r - nf * -2.12194440e-4f;
    v4f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v4i bits = (__builtin_convertvector(nf, v4i) + 127) << 23;
    return p * (v4f)bits;
}

void cpu_vexp(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        v4f v;
        memcpy(&v, x + i, sizeof v);
        v = vexp4(v);
        memcpy(y + i, &v, sizeof v);
    }
    for (; i < n; i++) y[i] = exp_scalar(x[i]);
}

// ---------------------------------------------------------------------------------------------
// vectorised row helpers for the softmaxes (attention, cross-entropy): 4 lanes, fixed order

typedef double v4d __attribute__((vector_size(32)));  // locals only (no AVX ABI)

static inline v4f load4(const float *p) { v4f v; memcpy(&v, p, sizeof v); return v; }
static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

float cpu_vmax(const float *x, int64_t n) {
    if (n <= 0) return -INFINITY;
    float m = x[0];
    int64_t i = 0;
    if (n >= 4) {
        v4f acc = load4(x);
        for (i = 4; i + 4 <= n; i += 4) {
            v4f v = load4(x + i);
            v4i gt = v > acc;
            acc = (v4f)(((v4i)v & gt) | ((v4i)acc & ~gt));
        }
        float a[4];
        memcpy(a, &acc, sizeof a);
        m = a[0];
        for (int j = 1; j < 4; j++) m = a[j] > m ? a[j] : m;
    }
    for (; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

double cpu_vexp_sum(float *y, const float *x, float shift, int64_t n) {
    int64_t i = 0;
    v4d acc = {0, 0, 0, 0};
    for (; i + 4 <= n; i += 4) {
        v4f e = vexp4(load4(x + i) - shift);
        store4(y + i, e);
        acc += __builtin_convertvector(e, v4d);
    }
    double s = 0.0;
    for (int j = 0; j < 4; j++) s += acc[j];
    for (; i < n; i++) {
        y[i] = exp_scalar(x[i] - shift);
        s += y[i];
    }
    return s;
}

void cpu_vscale(float *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) store4(x + i, load4(x + i) * s);
    for (; i < n; i++) x[i] *= s;
}

double cpu_vdot(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    v4d acc = {0, 0, 0, 0};
    for (; i + 4 <= n; i += 4) acc += __builtin_convertvector(load4(a + i) * load4(b + i), v4d);
    double s = 0.0;
    for (int j = 0; j < 4; j++) s += acc[j];
    for (; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

void cpu_vmul_scaled(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) store4(y + i, load4(y + i) * load4(x + i) * s);
    for (; i < n; i++) y[i] = y[i] * x[i] * s;
}
