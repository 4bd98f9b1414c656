/* cpu_rope.c - rotary position embedding as HF Llama applies it (rotate_half pairing i, i+Dh/2),
 * with the Llama-3 frequency scaling (rope_type "llama3"). */
#include <math.h>

#include "worker/engine/cpu/cpu_ops.h"

// inv_freq[i] = 1 / theta^(2i/Dh) in fp32, as torch computes it, then llama3 scaling if asked.
static float rope_inv_freq(int i, const rope_params *rp) {
    float expo = (float)(2 * i) / (float)rp->head_dim;
    float inv = 1.0f / powf(rp->theta, expo);
    if (!rp->llama3_scaling) return inv;
    const double PI = 3.14159265358979323846;
    double old_ctx = rp->original_max_pos;
    double low_wl = old_ctx / rp->low_freq_factor, high_wl = old_ctx / rp->high_freq_factor;
    double wl = 2.0 * PI / inv;
    if (wl < high_wl) return inv;                       // high frequency: unchanged
    if (wl > low_wl) return inv / rp->factor;           // low frequency: divided by factor
    double smooth = (old_ctx / wl - rp->low_freq_factor) / (rp->high_freq_factor - rp->low_freq_factor);
    return (float)((1.0 - smooth) * inv / rp->factor + smooth * inv);
}

// cos, sin [P, Dh/2]
void cpu_rope_table(backend *be, float *cos_t, float *sin_t, int P, const rope_params *rp) {
    int half = rp->head_dim / 2;
    for (int i = 0; i < half; i++) {
        float inv = rope_inv_freq(i, rp);
        for (int p = 0; p < P; p++) {
            float ang = (float)p * inv;  // fp32 product like torch's inv_freq @ positions
            cos_t[(int64_t)p * half + i] = (float)cos((double)ang);
            sin_t[(int64_t)p * half + i] = (float)sin((double)ang);
        }
    }
}

// x [N, nh, Dh] in place; sign = +1 forward rotation, -1 the inverse (= transpose) for backward.
// The portable reference; where cpu_simd_lanes() says 8, cpu_avx2.c's cpu_rope_apply_8 (the same
// operations per element, 8 pairs at a time) runs instead.
void cpu_rope_apply_ref(float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N,
                       int nh, int Dh, float sign) {
    int half = Dh / 2;
    for (int n = 0; n < N; n++) {
        const float *c = cos_t + (int64_t)pos[n] * half, *s = sin_t + (int64_t)pos[n] * half;
        for (int h = 0; h < nh; h++) {
            float *xr = x + ((int64_t)n * nh + h) * Dh;
            for (int i = 0; i < half; i++) {
                float x1 = xr[i], x2 = xr[i + half], si = sign * s[i];
                xr[i] = x1 * c[i] - x2 * si;
                xr[i + half] = x2 * c[i] + x1 * si;
            }
        }
    }
}

void cpu_rope_fwd(backend *be, float *x, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int nh, int Dh) {
    if (cpu_simd_lanes() == 8) cpu_rope_apply_8(x, pos, cos_t, sin_t, N, nh, Dh, 1.0f);
    else cpu_rope_apply_ref(x, pos, cos_t, sin_t, N, nh, Dh, 1.0f);
}

void cpu_rope_bwd(backend *be, float *dx, const int32_t *pos, const float *cos_t, const float *sin_t, int N, int nh, int Dh) {
    if (cpu_simd_lanes() == 8) cpu_rope_apply_8(dx, pos, cos_t, sin_t, N, nh, Dh, -1.0f);
    else cpu_rope_apply_ref(dx, pos, cos_t, sin_t, N, nh, Dh, -1.0f);
}
