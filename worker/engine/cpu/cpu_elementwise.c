/* cpu_elementwise.c - elementwise ops and reductions (double accumulators, fixed order). */
#include <math.h>
#include <string.h>

#include "worker/engine/cpu/cpu_ops.h"
#include "worker/engine/cpu/cpu_vexp.h"

// the plain loops are the reference; cpu_avx2.c's 8-lane versions (the same operation per element)
// run where cpu_simd_lanes() says 8
void cpu_add_ref(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void cpu_axpy_ref(float *y, float a, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] += a * x[i];
}

void cpu_add(backend *be, float *out, const float *a, const float *b, int64_t n) {
    if (cpu_simd_lanes() == 8) cpu_add_8(out, a, b, n);
    else cpu_add_ref(out, a, b, n);
}

void cpu_scale(backend *be, float *x, float s, int64_t n) {
    if (cpu_simd_lanes() == 8) cpu_vscale_8(x, s, n);  // the same x[i] *= s per element
    else
        for (int64_t i = 0; i < n; i++) x[i] *= s;
}

void cpu_axpy(backend *be, float *y, float a, const float *x, int64_t n) {
    if (cpu_simd_lanes() == 8) cpu_axpy_8(y, a, x, n);
    else cpu_axpy_ref(y, a, x, n);
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
// The vectorised exponential and softmax row helpers, 4 lanes at a time with GCC vector
// extensions (portable C, no intrinsics; the exponential is cpu_vexp.h's). These 4-lane versions
// are the reference: where the CPU has AVX2 (and CISWEEP_CPU_LANES does not say 4), the public
// entry points run cpu_avx2.c's 8-lane versions instead, which give the same bits (cpu_simd.c).
// The tail uses the same arithmetic one lane at a time, so a value's exponential does not depend
// on its index; the reductions keep 4 double accumulators (lane j sums elements i = j mod 4 in
// order), added 0..3 and then the scalar tail.

typedef cpu_v4f v4f;
typedef cpu_v4i v4i;
typedef cpu_v4d v4d;

static inline v4f load4(const float *p) { v4f v; memcpy(&v, p, sizeof v); return v; }
static inline void store4(float *p, v4f v) { memcpy(p, &v, sizeof v); }

void cpu_vexp_4(float *y, const float *x, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) store4(y + i, cpu_vexp4(load4(x + i)));
    for (; i < n; i++) y[i] = cpu_exp_scalar(x[i]);
}

float cpu_vmax_4(const float *x, int64_t n) {
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

double cpu_vexp_sum_4(float *y, const float *x, float shift, int64_t n) {
    int64_t i = 0;
    v4d acc = {0, 0, 0, 0};
    for (; i + 4 <= n; i += 4) {
        v4f e = cpu_vexp4(load4(x + i) - shift);
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

void cpu_vscale_4(float *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) store4(x + i, load4(x + i) * s);
    for (; i < n; i++) x[i] *= s;
}

double cpu_vdot_4(const float *a, const float *b, int64_t n) {
    int64_t i = 0;
    v4d acc = {0, 0, 0, 0};
    for (; i + 4 <= n; i += 4) acc += __builtin_convertvector(load4(a + i) * load4(b + i), v4d);
    double s = 0.0;
    for (int j = 0; j < 4; j++) s += acc[j];
    for (; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

void cpu_vmul_scaled_4(float *y, const float *x, float s, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) store4(y + i, load4(y + i) * load4(x + i) * s);
    for (; i < n; i++) y[i] = y[i] * x[i] * s;
}

void cpu_vsub_mul_scaled_4(float *y, float c, const float *x, float s, int64_t n) {
    for (int64_t j = 0; j < n; j++) y[j] -= c;
    cpu_vmul_scaled_4(y, x, s, n);
}

// ---------------------------------------------------------------------------------------------
// the public entry points: the 8-lane versions where cpu_simd_lanes() says 8

void cpu_vexp(float *y, const float *x, int64_t n) {
    if (cpu_simd_lanes() == 8) cpu_vexp_8(y, x, n);
    else cpu_vexp_4(y, x, n);
}

float cpu_vmax(const float *x, int64_t n) {
    return cpu_simd_lanes() == 8 ? cpu_vmax_8(x, n) : cpu_vmax_4(x, n);
}

double cpu_vexp_sum(float *y, const float *x, float shift, int64_t n) {
    return cpu_simd_lanes() == 8 ? cpu_vexp_sum_8(y, x, shift, n) : cpu_vexp_sum_4(y, x, shift, n);
}

void cpu_vscale(float *x, float s, int64_t n) {
    if (cpu_simd_lanes() == 8) cpu_vscale_8(x, s, n);
    else cpu_vscale_4(x, s, n);
}

double cpu_vdot(const float *a, const float *b, int64_t n) {
    return cpu_simd_lanes() == 8 ? cpu_vdot_8(a, b, n) : cpu_vdot_4(a, b, n);
}

void cpu_vmul_scaled(float *y, const float *x, float s, int64_t n) {
    if (cpu_simd_lanes() == 8) cpu_vmul_scaled_8(y, x, s, n);
    else cpu_vmul_scaled_4(y, x, s, n);
}

void cpu_vsub_mul_scaled(float *y, float c, const float *x, float s, int64_t n) {
    if (cpu_simd_lanes() == 8) cpu_vsub_mul_scaled_8(y, c, x, s, n);
    else cpu_vsub_mul_scaled_4(y, c, x, s, n);
}
