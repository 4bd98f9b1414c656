/* cpu_attention.c - grouped-query causal attention with per-sequence key lengths (right padding),
 * forward and backward. Per (batch, head) and per block of ATT_QB query rows: scores and context
 * are sgemm calls on strided views of q/k/v (row stride H*Dh or Hkv*Dh) restricted to the keys
 * that block can see (causal + length), so the work is GEMM-bound and about half of the full
 * T x T block for self-attention. The masked softmax runs between the GEMMs in plain loops. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/engine/cpu/cpu_ops.h"

#define ATT_QB 64  // query rows per block

// The per-(sequence, head, block) GEMMs are small (at most 64 x Tk x Dh): below ~8 MFLOP each,
// OpenBLAS threads cost more in synchronisation than they gain, so attention runs them on one
// thread and restores the caller's thread count afterwards (returns the count to restore, or 0).
static int att_threads_begin(int Tk, int Dh) {
    int n = openblas_get_num_threads();
    if (n <= 1 || 2.0 * ATT_QB * Tk * Dh >= 8e6) return 0;
    openblas_set_num_threads(1);
    return n;
}
static void att_threads_end(int n) {
    if (n > 0) openblas_set_num_threads(n);
}

// number of keys visible to a query at position p in a sequence with nk keys: min(p + 1, nk)
static inline int visible(int p, int nk) { return p + 1 < nk ? (p + 1 > 0 ? p + 1 : 0) : nk; }

// keys any query of rows [r0, r0+rows) can see
static int block_keys(const int32_t *qp, int r0, int rows, int nk) {
    int km = 0;
    for (int t = r0; t < r0 + rows; t++) {
        int v = visible(qp[t], nk);
        km = v > km ? v : km;
    }
    return km;
}

static int seq_keys(const int32_t *kv_len, int b, int Tk) {
    int nk = kv_len[b] < Tk ? kv_len[b] : Tk;
    return nk < 0 ? 0 : nk;
}

// q, out [B,Tq,H,Dh]; k, v [B,Tk,Hkv,Dh]; probs [B,H,Tq,Tk] or NULL
void cpu_attention_fwd(float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *qpos, const int32_t *kv_len, int B, int Tq, int Tk,
                       int H, int Hkv, int Dh) {
    const int group = H / Hkv;
    const int ldq = H * Dh, ldk = Hkv * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *scratch = probs ? NULL : xmalloc((size_t)(Tq < ATT_QB ? Tq : ATT_QB) * Tk * sizeof(float));
    const int nthr = att_threads_begin(Tk, Dh);
    for (int b = 0; b < B; b++) {
        const int nk = seq_keys(kv_len, b, Tk);
        const int32_t *qp = qpos + (int64_t)b * Tq;
        for (int h = 0; h < H; h++) {
            const int hk = h / group;
            const float *qb = q + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            const float *kb = k + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            const float *vb = v + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            float *ob = out + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            for (int r0 = 0; r0 < Tq; r0 += ATT_QB) {
                const int rows = Tq - r0 < ATT_QB ? Tq - r0 : ATT_QB;
                const int km = block_keys(qp, r0, rows, nk);
                // P block [rows, Tk]: this block's rows of probs, or the scratch
                float *P = probs ? probs + (((int64_t)b * H + h) * Tq + r0) * Tk : scratch;
                if (km == 0) {
                    for (int t = 0; t < rows; t++) memset(ob + (int64_t)(r0 + t) * ldq, 0, Dh * sizeof(float));
                    if (probs) memset(P, 0, (size_t)rows * Tk * sizeof(float));
                    continue;
                }
                // S[rows, km] = scale * Q[rows, Dh] · K[km, Dh]ᵀ
                cpu_gemm(false, true, rows, km, Dh, scale, qb + (int64_t)r0 * ldq, ldq, kb, ldk, 0.0f, P, Tk);
                for (int t = 0; t < rows; t++) {
                    float *row = P + (int64_t)t * Tk;
                    const int nv = visible(qp[r0 + t], nk);
                    if (nv == 0) { memset(row, 0, (size_t)Tk * sizeof(float)); continue; }
                    const float mx = cpu_vmax(row, nv);
                    const double sum = cpu_vexp_sum(row, row, mx, nv);
                    cpu_vscale(row, (float)(1.0 / sum), nv);
                    for (int j = nv; j < (probs ? Tk : km); j++) row[j] = 0.0f;
                }
                // O[rows, Dh] = P[rows, km] · V[km, Dh]
                cpu_gemm(false, false, rows, Dh, km, 1.0f, P, Tk, vb, ldk, 0.0f, ob + (int64_t)r0 * ldq, ldq);
            }
        }
    }
    att_threads_end(nthr);
    free(scratch);
}

// dS = P ⊙ (dP - rowsum(dP ⊙ P)) · scale;  dQ = dS K;  dK += dSᵀ Q;  dV += Pᵀ dO;  dP = dO Vᵀ
void cpu_attention_bwd(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                       const float *q, const float *k, const float *v, const int32_t *kv_len,
                       int B, int Tq, int Tk, int H, int Hkv, int Dh) {
    const int group = H / Hkv;
    const int ldq = H * Dh, ldk = Hkv * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
    memset(dk, 0, (size_t)B * Tk * ldk * sizeof(float));
    memset(dv, 0, (size_t)B * Tk * ldk * sizeof(float));
    float *dP = xmalloc((size_t)(Tq < ATT_QB ? Tq : ATT_QB) * Tk * sizeof(float));
    const int nthr = att_threads_begin(Tk, Dh);
    for (int b = 0; b < B; b++) {
        const int nk = seq_keys(kv_len, b, Tk);
        for (int h = 0; h < H; h++) {
            const int hk = h / group;
            const float *qb = q + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            const float *kb = k + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            const float *vb = v + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            const float *dob = dout + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            float *dqb = dq + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            float *dkb = dk + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            float *dvb = dv + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            for (int r0 = 0; r0 < Tq; r0 += ATT_QB) {
                const int rows = Tq - r0 < ATT_QB ? Tq - r0 : ATT_QB;
                const float *P = probs + (((int64_t)b * H + h) * Tq + r0) * Tk;  // [rows, Tk]
                // the keys this block saw: the last nonzero column over its rows (probs are 0 beyond)
                int km = 0;
                for (int t = 0; t < rows; t++)
                    for (int j = nk - 1; j >= km; j--)
                        if (P[(int64_t)t * Tk + j] != 0.0f) { km = j + 1; break; }
                if (km == 0) {
                    for (int t = 0; t < rows; t++) memset(dqb + (int64_t)(r0 + t) * ldq, 0, Dh * sizeof(float));
                    continue;
                }
                const float *dO = dob + (int64_t)r0 * ldq;
                // dV[km, Dh] += P[rows, km]ᵀ · dO[rows, Dh]
                cpu_gemm(true, false, km, Dh, rows, 1.0f, P, Tk, dO, ldq, 1.0f, dvb, ldk);
                // dP[rows, km] = dO[rows, Dh] · V[km, Dh]ᵀ
                cpu_gemm(false, true, rows, km, Dh, 1.0f, dO, ldq, vb, ldk, 0.0f, dP, Tk);
                for (int t = 0; t < rows; t++) {
                    const float *pr = P + (int64_t)t * Tk;
                    float *dr = dP + (int64_t)t * Tk;
                    const float dot = (float)cpu_vdot(pr, dr, km);
                    for (int j = 0; j < km; j++) dr[j] -= dot;  // dS = P ⊙ (dP - dot) · scale
                    cpu_vmul_scaled(dr, pr, scale, km);
                }
                // dQ[rows, Dh] = dS[rows, km] · K[km, Dh]
                cpu_gemm(false, false, rows, Dh, km, 1.0f, dP, Tk, kb, ldk, 0.0f, dqb + (int64_t)r0 * ldq, ldq);
                // dK[km, Dh] += dS[rows, km]ᵀ · Q[rows, Dh]
                cpu_gemm(true, false, km, Dh, rows, 1.0f, dP, Tk, qb + (int64_t)r0 * ldq, ldq, 1.0f, dkb, ldk);
            }
        }
    }
    att_threads_end(nthr);
    free(dP);
}
