/* cpu_vexp.h - private to the cpu backend: the fp32 exponential every softmax and SiLU uses, written
 * once for every width so that the scalar tail, the 4-lane (SSE/NEON, cpu_elementwise.c) and the
 * 8-lane (AVX2, cpu_avx2.c) versions compute each element with the same operations in the same
 * order and so give the same bits: Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, a
 * degree-6 polynomial for e^r (Cephes expf coefficients, ~1 ulp), 2^n through the exponent bits.
 * Inputs are clamped to [-87.3, 88.37] (results below ~1e-38 are returned as ~1e-38, never a
 * denormal or inf). No FMA: the build is -std=c11 (GCC: -ffp-contract=off) and no target here
 * enables "fma", so every a * b + c below is a rounded product then a rounded sum. */
#ifndef CISWEEP_ENGINE_CPU_VEXP_H
#define CISWEEP_ENGINE_CPU_VEXP_H

#include <stdint.h>
#include <string.h>

#define CPU_EXP_LO (-87.3f)
#define CPU_EXP_HI 88.37f  // keeps n <= 127 (2^128 would be inf)

typedef float cpu_v4f __attribute__((vector_size(16)));   // 4 lanes: SSE on x86-64, NEON on arm64
typedef int32_t cpu_v4i __attribute__((vector_size(16)));
typedef double cpu_v4d __attribute__((vector_size(32)));  // locals only (no AVX ABI)

static inline float cpu_exp_scalar(float x) {
    x = x < CPU_EXP_LO ? CPU_EXP_LO : (x > CPU_EXP_HI ? CPU_EXP_HI : x);
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
    uint32_t bits = (uint32_t)((int32_t)nf + 127) << 23;  // unsigned shift: defined for a NaN's INT_MIN too
    float sc;
    memcpy(&sc, &bits, sizeof sc);
    return p * sc;
}

/* CPU_VEXP_BODY(VF, VI, v): the vector exponential of v (type VF, lanes of VI the same count),
 * evaluates to a VF; the same statements as cpu_exp_scalar, lane by lane. */
#define CPU_VEXP_BODY(VF, VI, v_in)                                                   \
    ({                                                                                \
        VF v_ = (v_in);                                                               \
        const VF lo_ = (VF){0} + CPU_EXP_LO, hi_ = (VF){0} + CPU_EXP_HI;              \
        VI mlo_ = v_ < lo_, mhi_ = v_ > hi_;                                          \
        v_ = (VF)(((VI)v_ & ~mlo_) | ((VI)lo_ & mlo_));                               \
        v_ = (VF)(((VI)v_ & ~mhi_) | ((VI)hi_ & mhi_));                               \
        VF t_ = v_ * 1.44269504088896341f;                                            \
        VF nf_ = (t_ + 12582912.0f) - 12582912.0f;                                    \
        VF r_ = v_ - nf_ * 0.693359375f;                                              \
        r_ = r_ - nf_ * -2.12194440e-4f;                                              \
        VF p_ = r_ * 1.9875691500e-4f + 1.3981999507e-3f;                             \
        p_ = p_ * r_ + 8.3334519073e-3f;                                              \
        p_ = p_ * r_ + 4.1665795894e-2f;                                              \
        p_ = p_ * r_ + 1.6666665459e-1f;                                              \
        p_ = p_ * r_ + 5.0000001201e-1f;                                              \
        p_ = p_ * r_ * r_ + r_ + 1.0f;                                                \
        VI bits_ = (__builtin_convertvector(nf_, VI) + 127) << 23;                    \
        p_ * (VF)bits_;                                                               \
    })

static inline cpu_v4f cpu_vexp4(cpu_v4f v) { return CPU_VEXP_BODY(cpu_v4f, cpu_v4i, v); }

#endif
