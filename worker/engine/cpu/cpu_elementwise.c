/* cpu_elementwise.c - elementwise ops and reductions (double accumulators, fixed order). */
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"

void cpu_add(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void cpu_scale(float *x, float s, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void cpu_axpy(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

double cpu_sum(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

double cpu_sumsq(const float *x, int64_t n) {
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

// ---------------------------------------------------------------------------------------------
// y = exp(x) over an array, 8 lanes at a time with GCC vector extensions (portable C, no
// intrinsics): Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a degree-6 polynomial for
// e^r (Cephes expf coefficients, ~1 ulp), 2^n through the exponent bits. Inputs are clamped to
// [-87.3, 88.37] (results below ~1e-38 are returned as ~1e-38, never a denormal or inf). The tail
// uses the same arithmetic one lane at a time, so a value's result does not depend on its index.

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

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

void cpu_vexp(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    const v8f lo = {EXP_LO, EXP_LO, EXP_LO, EXP_LO, EXP_LO, EXP_LO, EXP_LO, EXP_LO};
    const v8f hi = {EXP_HI, EXP_HI, EXP_HI, EXP_HI, EXP_HI, EXP_HI, EXP_HI, EXP_HI};
    for (; i + 8 <= n; i += 8) {
        v8f v;
        memcpy(&v, x + i, sizeof v);
        v8i mlo = v < lo, mhi = v > hi;
        v = (v8f)(((v8i)v & ~mlo) | ((v8i)lo & mlo));
        v = (v8f)(((v8i)v & ~mhi) | ((v8i)hi & mhi));
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
        v8f out = p * (v8f)bits;
        memcpy(y + i, &out, sizeof out);
    }
    for (; i < n; i++) y[i] = exp_scalar(x[i]);
}
