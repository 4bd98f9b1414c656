/* cuda_attention.cu - grouped-query causal attention with per-sequence key lengths on the GPU,
 * forward and backward: the reference kernels (one block per query row, the scores of the row in
 * shared memory, fp32 with the softmax statistics in double), checked against the cpu op by
 * test_backend_ops. Fused memory-efficient (flash) kernels are issue 14's performance work and
 * must match these. Layouts as backend.h: q/out [B,Tq,H,Dh], k/v [B,Tk,Hkv,Dh], probs
 * [B,H,Tq,Tk]; key j is visible to query (b,t) iff j <= qpos and j < kv_len[b]. */
#include "worker/engine/cuda/cuda_common.cuh"

#define NT 128
#define MAX_TK 12288  /* keys a row's scores can hold in shared memory (48 KB) */

__device__ static int visible_keys(int qp, int kvl, int Tk) {
    int nk = qp + 1;
    if (nk > kvl) nk = kvl;
    if (nk > Tk) nk = Tk;
    return nk < 0 ? 0 : nk;
}

__device__ static float block_max_f(float v, float *sh) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    float t = -INFINITY;
    for (int i = 0; i < (int)((blockDim.x + 31) >> 5); i++) t = fmaxf(t, sh[i]);
    return t;
}
__device__ static double block_sum_d(double v, double *sh) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    double t = 0;
    for (int i = 0; i < (int)((blockDim.x + 31) >> 5); i++) t += sh[i];
    return t;
}

// block = query row (b, t, h): scores -> softmax -> probs row (optional) -> out row
__global__ void att_fwd_k(float *out, float *probs, const float *q, const float *k, const float *v, const int32_t *qpos,
                          const int32_t *kv_len, int Tq, int Tk, int H, int Hkv, int Dh, float scale) {
    extern __shared__ float srow[];  // [Tk]
    __shared__ float shf[32];
    __shared__ double shd[32];
    const int row = blockIdx.x, h = row % H, bt = row / H, b = bt / Tq;
    const int kh = h / (H / Hkv);
    const float *qr = q + (int64_t)row * Dh;
    const int nk = visible_keys(qpos[bt], kv_len[b], Tk);
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) {
        const float *kr = k + (((int64_t)b * Tk + j) * Hkv + kh) * Dh;
        float s = 0;
        for (int d = 0; d < Dh; d++) s += qr[d] * kr[d];
        s *= scale;
        srow[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max_f(mx, shf);
    double se = 0;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) {
        float e = expf(srow[j] - mx);
        srow[j] = e;
        se += e;
    }
    se = block_sum_d(se, shd);
    const float inv = nk > 0 ? (float)(1.0 / se) : 0.0f;
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) {
        float p = j < nk ? srow[j] * inv : 0.0f;
        if (j < nk) srow[j] = p;
        if (probs) probs[((int64_t)(b * H + h) * Tq + (bt % Tq)) * Tk + j] = p;
    }
    __syncthreads();
    float *o = out + (int64_t)row * Dh;
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float acc = 0;
        for (int j = 0; j < nk; j++) acc += srow[j] * v[(((int64_t)b * Tk + j) * Hkv + kh) * Dh + d];
        o[d] = acc;
    }
}

void cuda_attention_fwd(backend *be, float *out, float *probs, const float *q, const float *k, const float *v,
                        const int32_t *qpos, const int32_t *kv_len, int B, int Tq, int Tk, int H, int Hkv, int Dh) {
    if (B <= 0 || Tq <= 0) return;
    if (Tk > MAX_TK) cuda_fatal(__FILE__, __LINE__, "attention_fwd", "more keys than the reference kernel holds (12288)");
    cuda_ctx *c = cuda_ctx_of(be);
    att_fwd_k<<<B * Tq * H, NT, (size_t)Tk * sizeof(float), c->stream>>>(out, probs, q, k, v, qpos, kv_len, Tq, Tk, H, Hkv,
                                                                           Dh, 1.0f / sqrtf((float)Dh));
    CU_LAUNCHED();
}

// block = query row (b, t, h): dP_j = dout·v_j; dS_j = P_j (dP_j - Σ P dP) scale -> ds row; dq = Σ_j dS_j k_j
__global__ void att_bwd_q(float *dq, float *ds, const float *dout, const float *probs, const float *k, const float *v,
                          const int32_t *kv_len, int Tq, int Tk, int H, int Hkv, int Dh, float scale) {
    extern __shared__ float srow[];  // [Tk] dP, then dS
    __shared__ double shd[32];
    const int row = blockIdx.x, h = row % H, bt = row / H, b = bt / Tq, t = bt % Tq;
    const int kh = h / (H / Hkv);
    const int nk = kv_len[b] < Tk ? kv_len[b] : Tk;
    const float *pr = probs + ((int64_t)(b * H + h) * Tq + t) * Tk;
    const float *dor = dout + (int64_t)row * Dh;
    double dot = 0;
    for (int j = threadIdx.x; j < nk; j += blockDim.x) {
        const float *vr = v + (((int64_t)b * Tk + j) * Hkv + kh) * Dh;
        float s = 0;
        for (int d = 0; d < Dh; d++) s += dor[d] * vr[d];
        srow[j] = s;
        dot += (double)pr[j] * s;
    }
    dot = block_sum_d(dot, shd);
    float *dsr = ds + ((int64_t)(b * H + h) * Tq + t) * Tk;
    for (int j = threadIdx.x; j < Tk; j += blockDim.x) {
        float g = j < nk ? pr[j] * (srow[j] - (float)dot) * scale : 0.0f;
        if (j < nk) srow[j] = g;
        dsr[j] = g;
    }
    __syncthreads();
    for (int d = threadIdx.x; d < Dh; d += blockDim.x) {
        float acc = 0;
        for (int j = 0; j < nk; j++) acc += srow[j] * k[(((int64_t)b * Tk + j) * Hkv + kh) * Dh + d];
        dq[(int64_t)row * Dh + d] = acc;
    }
}

// thread = (b, j, kh, d): dk = Σ_{h in group, t} dS q; dv = Σ_{h in group, t} P dout (fixed order)
__global__ void att_bwd_kv(float *dk, float *dv, const float *ds, const float *probs, const float *q, const float *dout,
                           int B, int Tq, int Tk, int H, int Hkv, int Dh) {
    int64_t idx = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, total = (int64_t)B * Tk * Hkv * Dh;
    if (idx >= total) return;
    int d = (int)(idx % Dh), kh = (int)((idx / Dh) % Hkv), j = (int)((idx / ((int64_t)Dh * Hkv)) % Tk);
    int b = (int)(idx / ((int64_t)Dh * Hkv * Tk));
    int grp = H / Hkv;
    float ak = 0, av = 0;
    for (int h = kh * grp; h < (kh + 1) * grp; h++)
        for (int t = 0; t < Tq; t++) {
            int64_t pi = ((int64_t)(b * H + h) * Tq + t) * Tk + j;
            int64_t qi = (((int64_t)b * Tq + t) * H + h) * Dh + d;
            ak += ds[pi] * q[qi];
            av += probs[pi] * dout[qi];
        }
    dk[idx] = ak;
    dv[idx] = av;
}

void cuda_attention_bwd(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                        const float *q, const float *k, const float *v, const int32_t *kv_len, int B, int Tq, int Tk,
                        int H, int Hkv, int Dh) {
    if (B <= 0 || Tq <= 0) return;
    if (Tk > MAX_TK) cuda_fatal(__FILE__, __LINE__, "attention_bwd", "more keys than the reference kernel holds (12288)");
    cuda_ctx *c = cuda_ctx_of(be);
    float *ds = (float *)cuda_scratch(be, (size_t)B * H * Tq * Tk * sizeof(float));
    att_bwd_q<<<B * Tq * H, NT, (size_t)Tk * sizeof(float), c->stream>>>(dq, ds, dout, probs, k, v, kv_len, Tq, Tk, H, Hkv,
                                                                          Dh, 1.0f / sqrtf((float)Dh));
    CU_LAUNCHED();
    int64_t total = (int64_t)B * Tk * Hkv * Dh;
    att_bwd_kv<<<cuda_blocks(total, 256), 256, 0, c->stream>>>(dk, dv, ds, probs, q, dout, B, Tq, Tk, H, Hkv, Dh);
    CU_LAUNCHED();
}
