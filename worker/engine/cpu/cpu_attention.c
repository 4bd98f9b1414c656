/* cpu_attention.c - grouped-query causal attention with per-sequence key lengths (right padding),
 * forward and backward. Work is split into tasks, one per (sequence, kv head): each task owns the
 * query heads of its group, so its outputs (and dk/dv) are disjoint from every other task's and
 * tasks run in parallel (cpu_parallel_for) with identical results for any thread count. Inside a
 * task, per query head and per block of ATT_QB query rows, scores and context are sgemm calls on
 * strided views of q/k/v restricted to the keys that block can see (causal + length), so causal
 * attention costs about half of the full T x T product; the masked softmax between them uses the
 * vectorised row helpers. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/engine/cpu/cpu_ops.h"

#define ATT_QB 64  // query rows per block

typedef struct att_args {
    float *out, *probs, *dq, *dk, *dv;
    const float *q, *k, *v, *dout, *cprobs;
    const int32_t *qpos, *kv_len;
    int B, Tq, Tk, H, Hkv, Dh;
    float **scratch;  // [threads] ATT_QB x Tk floats each
} att_args;

// The per-block GEMMs are small (at most 64 x Tk x Dh). Below ~8 MFLOP each, OpenBLAS's own threads
// cost more than they gain: attention then runs them single-threaded, one task per thread, and
// restores the thread count after. Returns the number of task threads to use.
static int att_threads_begin(backend *be, int Tk, int Dh) {
    int n = be->threads;
    if (n <= 1 || 2.0 * ATT_QB * Tk * Dh >= 8e6) { cpu_blas_threads(be); return 1; }
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
    return n < 64 ? n : 64;
}
static void att_threads_end(backend *be) { cpu_blas_threads(be); }

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

// ---------------------------------------------------------------------------------------------
// forward

static void att_fwd_task(void *ctx, int task, int thread) {
    const att_args *a = ctx;
    const int b = task / a->Hkv, hk = task % a->Hkv, group = a->H / a->Hkv;
    const int Tq = a->Tq, Tk = a->Tk, Dh = a->Dh, ldq = a->H * Dh, ldk = a->Hkv * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
    const int nk = seq_keys(a->kv_len, b, Tk);
    const int32_t *qp = a->qpos + (int64_t)b * Tq;
    const float *kb = a->k + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
    const float *vb = a->v + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
    for (int h = hk * group; h < (hk + 1) * group; h++) {
        const float *qb = a->q + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
        float *ob = a->out + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
        for (int r0 = 0; r0 < Tq; r0 += ATT_QB) {
            const int rows = Tq - r0 < ATT_QB ? Tq - r0 : ATT_QB;
            const int km = block_keys(qp, r0, rows, nk);
            // P block [rows, Tk]: this block's rows of probs, or the thread's scratch
            float *P = a->probs ? a->probs + (((int64_t)b * a->H + h) * Tq + r0) * Tk : a->scratch[thread];
            if (km == 0) {
                for (int t = 0; t < rows; t++) memset(ob + (int64_t)(r0 + t) * ldq, 0, Dh * sizeof(float));
                if (a->probs) memset(P, 0, (size_t)rows * Tk * sizeof(float));
                continue;
            }
            // S[rows, km] = scale * Q[rows, Dh] · K[km, Dh]ᵀ
            cpu_sgemm(false, true, rows, km, Dh, scale, qb + (int64_t)r0 * ldq, ldq, kb, ldk, 0.0f, P, Tk);
            for (int t = 0; t < rows; t++) {
                float *row = P + (int64_t)t * Tk;
                const int nv = visible(qp[r0 + t], nk);
                if (nv > 0) {
                    const float mx = cpu_vmax(row, nv);
                    const double sum = cpu_vexp_sum(row, row, mx, nv);
                    cpu_vscale(row, (float)(1.0 / sum), nv);
                }
                const int end = a->probs ? Tk : km;
                if (end > nv) memset(row + nv, 0, (size_t)(end - nv) * sizeof(float));
            }
            // O[rows, Dh] = P[rows, km] · V[km, Dh]
            cpu_sgemm(false, false, rows, Dh, km, 1.0f, P, Tk, vb, ldk, 0.0f, ob + (int64_t)r0 * ldq, ldq);
        }
    }
}

// q, out [B,Tq,H,Dh]; k, v [B,Tk,Hkv,Dh]; probs [B,H,Tq,Tk] or NULL
void cpu_attention_fwd(backend *be, float *out, float *probs, const float *q, const float *k, const float *v,
                       const int32_t *qpos, const int32_t *kv_len, int B, int Tq, int Tk,
                       int H, int Hkv, int Dh) {
    const int nt = att_threads_begin(be, Tk, Dh);
    float *scratch[64] = {0};
    float *block = probs ? NULL : backend_workspace(be, (size_t)nt * ATT_QB * Tk * sizeof(float));
    for (int i = 0; i < nt && i < 64; i++) scratch[i] = block ? block + (size_t)i * ATT_QB * Tk : NULL;
    att_args a = {.out = out, .probs = probs, .q = q, .k = k, .v = v, .qpos = qpos, .kv_len = kv_len,
                  .B = B, .Tq = Tq, .Tk = Tk, .H = H, .Hkv = Hkv, .Dh = Dh, .scratch = scratch};
    cpu_parallel_for(be, B * Hkv, nt, att_fwd_task, &a);
    att_threads_end(be);
}

// ---------------------------------------------------------------------------------------------
// backward: dS = P ⊙ (dP - rowsum(dP ⊙ P)) · scale; dQ = dS K; dK += dSᵀ Q; dV += Pᵀ dO; dP = dO Vᵀ

static void att_bwd_task(void *ctx, int task, int thread) {
    const att_args *a = ctx;
    const int b = task / a->Hkv, hk = task % a->Hkv, group = a->H / a->Hkv;
    const int Tq = a->Tq, Tk = a->Tk, Dh = a->Dh, ldq = a->H * Dh, ldk = a->Hkv * Dh;
    const float scale = 1.0f / sqrtf((float)Dh);
    const int nk = seq_keys(a->kv_len, b, Tk);
    const float *kb = a->k + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
    const float *vb = a->v + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
    float *dkb = a->dk + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
    float *dvb = a->dv + (int64_t)b * Tk * ldk + (int64_t)hk * Dh;
    float *dP = a->scratch[thread];
    for (int t = 0; t < Tk; t++) {  // this task's dk/dv rows start at zero
        memset(dkb + (int64_t)t * ldk, 0, Dh * sizeof(float));
        memset(dvb + (int64_t)t * ldk, 0, Dh * sizeof(float));
    }
    for (int h = hk * group; h < (hk + 1) * group; h++) {
        const float *qb = a->q + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
        const float *dob = a->dout + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
        float *dqb = a->dq + (int64_t)b * Tq * ldq + (int64_t)h * Dh;
        for (int r0 = 0; r0 < Tq; r0 += ATT_QB) {
            const int rows = Tq - r0 < ATT_QB ? Tq - r0 : ATT_QB;
            const float *P = a->cprobs + (((int64_t)b * a->H + h) * Tq + r0) * Tk;  // [rows, Tk]
            // the keys this block saw: the last nonzero column over its rows (probs are 0 beyond).
            // A maximum, so any row order gives it; last row first, because under the causal mask
            // the last row sees the most keys, and then each earlier row's scan stops at once
            // instead of crossing its zeros (the scan was ~5% of an unlearning step in row order)
            int km = 0;
            for (int t = rows - 1; t >= 0; t--)
                for (int j = nk - 1; j >= km; j--)
                    if (P[(int64_t)t * Tk + j] != 0.0f) { km = j + 1; break; }
            if (km == 0) {
                for (int t = 0; t < rows; t++) memset(dqb + (int64_t)(r0 + t) * ldq, 0, Dh * sizeof(float));
                continue;
            }
            const float *dO = dob + (int64_t)r0 * ldq;
            // dV[km, Dh] += P[rows, km]ᵀ · dO[rows, Dh]
            cpu_sgemm(true, false, km, Dh, rows, 1.0f, P, Tk, dO, ldq, 1.0f, dvb, ldk);
            // dP[rows, km] = dO[rows, Dh] · V[km, Dh]ᵀ
            cpu_sgemm(false, true, rows, km, Dh, 1.0f, dO, ldq, vb, ldk, 0.0f, dP, Tk);
            for (int t = 0; t < rows; t++) {
                const float *pr = P + (int64_t)t * Tk;
                float *dr = dP + (int64_t)t * Tk;
                const float dot = (float)cpu_vdot(pr, dr, km);
                cpu_vsub_mul_scaled(dr, dot, pr, scale, km);  // (dr - dot) * pr * scale
            }
            // dQ[rows, Dh] = dS[rows, km] · K[km, Dh]
            cpu_sgemm(false, false, rows, Dh, km, 1.0f, dP, Tk, kb, ldk, 0.0f, dqb + (int64_t)r0 * ldq, ldq);
            // dK[km, Dh] += dS[rows, km]ᵀ · Q[rows, Dh]
            cpu_sgemm(true, false, km, Dh, rows, 1.0f, dP, Tk, qb + (int64_t)r0 * ldq, ldq, 1.0f, dkb, ldk);
        }
    }
}

void cpu_attention_bwd(backend *be, float *dq, float *dk, float *dv, const float *dout, const float *probs,
                       const float *q, const float *k, const float *v, const int32_t *kv_len,
                       int B, int Tq, int Tk, int H, int Hkv, int Dh) {
    const int nt = att_threads_begin(be, Tk, Dh);
    float *scratch[64] = {0};
    float *block = backend_workspace(be, (size_t)nt * ATT_QB * Tk * sizeof(float));
    for (int i = 0; i < nt && i < 64; i++) scratch[i] = block + (size_t)i * ATT_QB * Tk;
    att_args a = {.dq = dq, .dk = dk, .dv = dv, .dout = dout, .cprobs = probs, .q = q, .k = k, .v = v,
                  .kv_len = kv_len, .B = B, .Tq = Tq, .Tk = Tk, .H = H, .Hkv = Hkv, .Dh = Dh, .scratch = scratch};
    cpu_parallel_for(be, B * Hkv, nt, att_bwd_task, &a);
    att_threads_end(be);
}
