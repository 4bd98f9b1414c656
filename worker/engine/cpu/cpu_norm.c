/* cpu_norm.c - RMSNorm forward/backward (HF LlamaRMSNorm: y = w * x / sqrt(mean(x²) + eps)). The
 * _4 functions are the portable reference; where cpu_simd_lanes() says 8, cpu_avx2.c's versions
 * (the same double sums, the elementwise parts 8 lanes wide; the same bits) run instead. */
#include <math.h>

#include "worker/engine/cpu/cpu_ops.h"

// x, out [N,D]; w [D]; rstd [N]
void cpu_rmsnorm_fwd_4(float *out, float *rstd, const float *x, const float *w, int N, int D, float eps) {
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * D;
        float *yr = out + (int64_t)n * D;
        float r = cpu_rms_rstd_row(xr, D, eps);
        if (rstd) rstd[n] = r;
        for (int i = 0; i < D; i++) yr[i] = w[i] * (xr[i] * r);
    }
}

// y_i = w_i x_i r, r = (mean(x²)+eps)^-1/2
// dx_i = r (w_i dy_i) - r³/D x_i Σ_j (w_j dy_j x_j);  dw_i += Σ_n dy_i x_i r
void cpu_rmsnorm_bwd_4(float *dx, float *dw, const float *dout, const float *x, const float *w,
                     const float *rstd, int N, int D, bool acc_dx) {
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * D, *dy = dout + (int64_t)n * D;
        float r = rstd[n];
        if (dw)
            for (int i = 0; i < D; i++) dw[i] += dy[i] * xr[i] * r;
        if (!dx) continue;
        float *dxr = dx + (int64_t)n * D;
        float c = cpu_rms_bwd_coef(w, dy, xr, r, D);
        for (int i = 0; i < D; i++) {
            float g = r * w[i] * dy[i] - c * xr[i];
            dxr[i] = acc_dx ? dxr[i] + g : g;
        }
    }
}

void cpu_rmsnorm_fwd(backend *be, float *out, float *rstd, const float *x, const float *w, int N, int D, float eps) {
    if (cpu_simd_lanes() == 8) cpu_rmsnorm_fwd_8(out, rstd, x, w, N, D, eps);
    else cpu_rmsnorm_fwd_4(out, rstd, x, w, N, D, eps);
}

void cpu_rmsnorm_bwd(backend *be, float *dx, float *dw, const float *dout, const float *x, const float *w,
                     const float *rstd, int N, int D, bool acc_dx) {
    if (cpu_simd_lanes() == 8) cpu_rmsnorm_bwd_8(dx, dw, dout, x, w, rstd, N, D, acc_dx);
    else cpu_rmsnorm_bwd_4(dx, dw, dout, x, w, rstd, N, D, acc_dx);
}
