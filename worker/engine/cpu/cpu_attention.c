/* cpu_attention.c - grouped-query causal attention with per-sequence key lengths (right padding),
 * forward and backward. Per (batch, head): scores and context are two sgemm calls on strided
 * views of q/k/v (row stride H*Dh or Hkv*Dh), so the cost is GEMM-bound; only keys below the
 * sequence's length are touched. The masked softmax runs between them in plain loops. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/engine/cpu/cpu_ops.h"

// number of keys visible to query at position p in a sequence with nk keys: min(p + 1, nk)
static inline int visible(int p, int nk) { return p + 1 < nk ? p + 1 : nk; }

// q, out [B,Tq,H,Dh]; k, v [B,Tk,Hkv,Dh]; probs [B,H,Tq,Tk] or NULL
void cpu_attention_fwd(float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *qpos, const int32_t *kv_len, int B, int Tq, int Tk,
                       int H, int Hkv, int Dh) {
    const int group = H / Hkv;
    const int ldq = H * Dh, ldk = Hkv * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
    float *scratch = probs ? NULL : xmalloc((size_t)Tq * Tk * sizeof(float));
    for (int b = 0; b < B; b++) {
        int nk = kv_len[b] < Tk ? kv_len[b] : Tk;
        if (nk < 0) nk = 0;
        const int32_t *qp = qpos + (int64_t)b * Tq;
        for (int h = 0; h < H; h++) {
            int hk = h / group;
            const float *qb = q + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            const float *kb = k + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            const float *vb = v + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            float *ob = out + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            float *P = probs ? probs + ((int64_t)b * H + h) * Tq * Tk : scratch;  // [Tq, Tk]
            if (nk == 0) {
                for (int t = 0; t < Tq; t++) memset(ob + (int64_t)t * ldq, 0, Dh * sizeof(float));
                if (probs) memset(P, 0, (size_t)Tq * Tk * sizeof(float));
                continue;
            }
            // S[Tq, nk] = scale * Q[Tq,Dh] · K[nk,Dh]ᵀ (into P with row stride Tk)
            cpu_gemm(false, true, Tq, nk, Dh, scale, qb, ldq, kb, ldk, 0.0f, P, Tk);
            for (int t = 0; t < Tq; t++) {
                float *row = P + (int64_t)t * Tk;
                int nv = visible(qp[t], nk);
                if (nv <= 0) { memset(row, 0, (size_t)Tk * sizeof(float)); continue; }
                float mx = row[0];
                for (int j = 1; j < nv; j++) mx = row[j] > mx ? row[j] : mx;
                float s = 0.0f;
                for (int j = 0; j < nv; j++) { row[j] = expf(row[j] - mx); s += row[j]; }
                float inv = 1.0f / s;
                for (int j = 0; j < nv; j++) row[j] *= inv;
                for (int j = nv; j < Tk; j++) row[j] = 0.0f;
            }
            // O[Tq, Dh] = P[Tq, nk] · V[nk, Dh]
            cpu_gemm(false, false, Tq, Dh, nk, 1.0f, P, Tk, vb, ldk, 0.0f, ob, ldq);
        }
    }
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
    float *dP = xmalloc((size_t)Tq * Tk * sizeof(float));
    for (int b = 0; b < B; b++) {
        int nk = kv_len[b] < Tk ? kv_len[b] : Tk;
        if (nk < 0) nk = 0;
        for (int h = 0; h < H; h++) {
            int hk = h / group;
            const float *qb = q + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            const float *kb = k + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            const float *vb = v + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            const float *dob = dout + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            float *dqb = dq + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
            float *dkb = dk + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            float *dvb = dv + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
            const float *P = probs + ((int64_t)b * H + h) * Tq * Tk;
            if (nk == 0) {
                for (int t = 0; t < Tq; t++) memset(dqb + (int64_t)t * ldq, 0, Dh * sizeof(float));
                continue;
            }
            // dV[nk, Dh] += P[Tq, nk]ᵀ · dO[Tq, Dh]
            cpu_gemm(true, false, nk, Dh, Tq, 1.0f, P, Tk, dob, ldq, 1.0f, dvb, ldk);
            // dP[Tq, nk] = dO[Tq, Dh] · V[nk, Dh]ᵀ
            cpu_gemm(false, true, Tq, nk, Dh, 1.0f, dob, ldq, vb, ldk, 0.0f, dP, Tk);
            for (int t = 0; t < Tq; t++) {
                const float *pr = P + (int64_t)t * Tk;
                float *dr = dP + (int64_t)t * Tk;
                float dot = 0.0f;
                for (int j = 0; j < nk; j++) dot += pr[j] * dr[j];
                for (int j = 0; j < nk; j++) dr[j] = pr[j] * (dr[j] - dot) * scale;
            }
            // dQ[Tq, Dh] = dS[Tq, nk] · K[nk, Dh]
            cpu_gemm(false, false, Tq, Dh, nk, 1.0f, dP, Tk, kb, ldk, 0.0f, dqb, ldq);
            // dK[nk, Dh] += dS[Tq, nk]ᵀ · Q[Tq, Dh]
            cpu_gemm(true, false, nk, Dh, Tq, 1.0f, dP, Tk, qb, ldq, 1.0f, dkb, ldk);
        }
    }
    free(dP);
}
