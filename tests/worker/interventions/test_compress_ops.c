/* test_compress_ops.c - the oracles of algorithms.md §2-§5 on single random layers, through the
 * backend's compression ops and compress.h's inverse-Hessian factor: GPTQ's and SparseGPT's
 * accumulated Σ (w-q)²/U_cc² equals the quadratic error tr((W0-Q) H_λ (W0-Q)ᵀ) under the damped
 * Hessian; lazy batching is exact (blocksize invariance); a diagonal Hessian reduces GPTQ to
 * round-to-nearest and SparseGPT to blockwise magnitude pruning; GPTQ's layer error is below
 * RTN's summed over seeds on correlated inputs; quantized values lie on their grid (at most 2^b
 * per group); SparseGPT prunes floor(s·rows·B)+1 per block (the reference's <= threshold) and n:m
 * exactly; Wanda's per-row counts, row/activation scaling invariance and stable tie order; act
 * order equals the plain sweep on permuted inputs.
 *
 * `test_compress_ops --dump DIR` writes small random cases (inputs and this build's outputs, raw
 * little-endian f32 plus case.json) for the NumPy transcription of the reference algorithms in
 * tests/worker/interventions/test_compress_parity.py. */
#include "tests/testlib.h"
#include "worker/interventions/compress.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static backend *be;
static uint64_t rs = 0x243F6A8885A308D3ull;
static double urand(void) { rs ^= rs << 13; rs ^= rs >> 7; rs ^= rs << 17; return (double)(rs >> 11) / 9007199254740992.0; }
static double nrand(void) { return sqrt(-2.0 * log(urand() + 1e-300)) * cos(6.283185307179586 * urand()); }

/* correlated inputs X[n,k]: a random mixing of independent normals plus per-channel scales */
static float *corr_X(int n, int k) {
    double *M = malloc(sizeof(double) * k * k), *z = malloc(sizeof(double) * k);
    for (int i = 0; i < k * k; i++) M[i] = nrand() * (i % (k + 1) == 0 ? 1.0 : 0.35);
    float *X = malloc(sizeof(float) * n * k);
    for (int t = 0; t < n; t++) {
        for (int j = 0; j < k; j++) z[j] = nrand();
        for (int j = 0; j < k; j++) {
            double v = 0;
            for (int a = 0; a < k; a++) v += z[a] * M[a * k + j];
            X[(size_t)t * k + j] = (float)(v * (0.5 + (j % 7) * 0.3));
        }
    }
    free(M); free(z);
    return X;
}
static float *randW(int m, int k) {
    float *W = malloc(sizeof(float) * m * k);
    for (int i = 0; i < m * k; i++) W[i] = (float)(nrand() * 0.1);
    return W;
}
/* H = 2/n XᵀX through gram_acc */
static float *hessian(const float *X, int n, int k) {
    float *H = calloc((size_t)k * k, sizeof(float));
    BE(be, gram_acc, H, X, n, k, 1.0f);
    BE(be, scale, H, 2.0f / n, (int64_t)k * k);
    return H;
}
/* the damped Hessian in double, as cmp_hinv_factor damps it */
static double *damped(const float *H, int k, double damp) {
    double *D = malloc(sizeof(double) * k * k), mean = 0;
    for (int i = 0; i < k * k; i++) D[i] = H[i];
    for (int j = 0; j < k; j++) mean += H[(size_t)j * k + j];
    float lam = (float)(damp * (mean / k));
    for (int j = 0; j < k; j++) D[(size_t)j * k + j] = (double)(H[(size_t)j * k + j] + lam);
    return D;
}
static double quad_err(const float *W0, const float *Q, const double *Hd, int m, int k) {
    double tot = 0;
    double *d = malloc(sizeof(double) * k);
    for (int r = 0; r < m; r++) {
        for (int j = 0; j < k; j++) d[j] = (double)W0[(size_t)r * k + j] - Q[(size_t)r * k + j];
        for (int a = 0; a < k; a++) {
            double s = 0;
            for (int b = 0; b < k; b++) s += Hd[(size_t)a * k + b] * d[b];
            tot += d[a] * s;
        }
    }
    free(d);
    return tot;
}
/* ‖(W - Q) Xᵀ‖² */
static double out_err(const float *W, const float *Q, const float *X, int m, int k, int n) {
    double tot = 0;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < m; r++) {
            double s = 0;
            for (int j = 0; j < k; j++) s += ((double)W[(size_t)r * k + j] - Q[(size_t)r * k + j]) * X[(size_t)t * k + j];
            tot += s * s;
        }
    return tot;
}
/* run the sweep: W (copy) with U from H; returns loss, Q in *Q (malloc'd) */
static double sweep(const float *W0, const float *H0, int m, int k, const obs_params *p, float **Qout, float *sc, float *zr,
                    int64_t *masked, int32_t *perm) {
    float *W = malloc(sizeof(float) * m * k), *H = malloc(sizeof(float) * k * k);
    memcpy(W, W0, sizeof(float) * m * k);
    memcpy(H, H0, sizeof(float) * k * k);
    cis_err err = {0};
    int dead = 0;
    CHECK_MSG(cmp_hinv_factor(be, H, W, m, k, 0.01, perm, &dead, &err) == 0, "%s", err.msg);
    int g = p->group > 0 ? p->group : k;
    float *s2 = sc ? sc : malloc(sizeof(float) * m * ((k + g - 1) / g)), *z2 = zr ? zr : malloc(sizeof(float) * m * ((k + g - 1) / g));
    double loss = BE(be, obs_sweep, W, H, m, k, p, s2, z2, masked);
    if (perm) cmp_unpermute(be, W, m, k, perm);
    if (!sc) free(s2);
    if (!zr) free(z2);
    free(H);
    *Qout = W;
    return loss;
}

static void test_gptq_loss_identity(void) {
    int m = 24, k = 96, n = 300;
    for (int bits = 2; bits <= 8; bits *= 2) {
        float *X = corr_X(n, k), *W = randW(m, k), *H = hessian(X, n, k), *Q;
        obs_params p = {.block = 32, .bits = bits, .group = 32, .grid = QGRID_MINMAX_SYM};
        double loss = sweep(W, H, m, k, &p, &Q, NULL, NULL, NULL, NULL);
        double *Hd = damped(H, k, 0.01), want = quad_err(W, Q, Hd, m, k);
        CHECK_MSG(fabs(loss - want) <= 2e-3 * want, "bits %d: Σe² %g vs tr((W-Q)H(W-Q)ᵀ) %g", bits, loss, want);
        free(X); free(W); free(H); free(Q); free(Hd);
    }
}

static void test_sparsegpt_loss_identity(void) {
    int m = 24, k = 96, n = 300;
    float *X = corr_X(n, k), *W = randW(m, k), *H = hessian(X, n, k), *Q;
    obs_params p = {.block = 32, .sparsity = 0.5};
    int64_t masked = 0;
    double loss = sweep(W, H, m, k, &p, &Q, NULL, NULL, &masked, NULL);
    double *Hd = damped(H, k, 0.01), want = quad_err(W, Q, Hd, m, k);
    CHECK_MSG(fabs(loss - want) <= 2e-3 * want, "Σe² %g vs %g", loss, want);
    /* per 32-column block: floor(0.5*24*32)+1 = 385 masked (the reference's <= threshold) */
    CHECK_EQ_INT(masked, 3 * 385);
    int64_t zeros = 0;
    for (int i = 0; i < m * k; i++) zeros += Q[i] == 0.0f;
    CHECK_EQ_INT(zeros, 3 * 385);
    free(X); free(W); free(H); free(Q); free(Hd);
}

static void test_blocksize_invariance(void) {
    int m = 16, k = 64, n = 200;
    float *X = corr_X(n, k), *W = randW(m, k), *H = hessian(X, n, k), *Q0 = NULL;
    double l0 = 0;
    int blocks[4] = {128, 1, 8, 32};
    for (int b = 0; b < 4; b++) {
        float *Q;
        obs_params p = {.block = blocks[b], .bits = 4, .group = 0, .grid = QGRID_MINMAX_ASYM};
        double l = sweep(W, H, m, k, &p, &Q, NULL, NULL, NULL, NULL);
        if (!b) { Q0 = Q; l0 = l; continue; }
        int same = 0;
        for (int i = 0; i < m * k; i++) same += fabsf(Q[i] - Q0[i]) <= 1e-5f;
        CHECK_MSG(same >= m * k * 99 / 100, "block %d: %d of %d equal to block 128", blocks[b], same, m * k);
        CHECK_MSG(fabs(l - l0) <= 1e-2 * l0, "block %d: loss %g vs %g", blocks[b], l, l0);
        free(Q);
    }
    free(Q0); free(X); free(W); free(H);
}

static void test_diagonal_hessian(void) {
    int m = 12, k = 80;
    float *W = randW(m, k), *H = calloc((size_t)k * k, sizeof(float)), *Q;
    for (int j = 0; j < k; j++) H[(size_t)j * k + j] = (float)(0.5 + urand());
    /* GPTQ -> RTN with the same groups */
    for (int bits = 2; bits <= 4; bits++) {
        obs_params p = {.block = 32, .bits = bits, .group = 16, .grid = QGRID_MINMAX_SYM};
        sweep(W, H, m, k, &p, &Q, NULL, NULL, NULL, NULL);
        float *sc = malloc(sizeof(float) * m * 5), *zr = malloc(sizeof(float) * m * 5), *R = malloc(sizeof(float) * m * k);
        BE(be, quant_params, sc, zr, W, m, k, k, 16, bits, QGRID_MINMAX_SYM);
        BE(be, quant_dequant, R, W, sc, zr, m, k, 16, bits);
        double md = 0;
        for (int i = 0; i < m * k; i++) md = fmax(md, fabs(Q[i] - R[i]));
        CHECK_MSG(md == 0, "bits %d: GPTQ with a diagonal Hessian differs from RTN by %g", bits, md);
        free(sc); free(zr); free(R); free(Q);
    }
    /* SparseGPT with H = cI -> magnitude pruning with a block-global threshold, no compensation */
    for (int j = 0; j < k; j++) H[(size_t)j * k + j] = 2.0f;
    obs_params p = {.block = 32, .sparsity = 0.3};
    sweep(W, H, m, k, &p, &Q, NULL, NULL, NULL, NULL);
    for (int i1 = 0; i1 < k; i1 += 32) {
        int cnt = k - i1 < 32 ? k - i1 : 32, nb = m * cnt;
        float *v = malloc(sizeof(float) * nb);
        for (int r = 0; r < m; r++) for (int i = 0; i < cnt; i++) v[r * cnt + i] = W[r * k + i1 + i] * W[r * k + i1 + i];
        /* the floor(0.3*nb)-th smallest by selection */
        int kk = (int)(nb * 0.3);
        float t = 0;
        for (int a = 0; a < nb; a++) {
            int below = 0, eq = 0;
            for (int b = 0; b < nb; b++) { below += v[b] < v[a]; eq += v[b] == v[a]; }
            if (below <= kk && kk < below + eq) { t = v[a]; break; }
        }
        int bad = 0;
        for (int r = 0; r < m; r++)
            for (int i = 0; i < cnt; i++) {
                float w = W[r * k + i1 + i], q = Q[r * k + i1 + i];
                bad += (w * w <= t) ? q != 0.0f : q != w;
            }
        CHECK_MSG(bad == 0, "block %d: %d entries differ from magnitude pruning", i1, bad);
        free(v);
    }
    free(W); free(H); free(Q);
}

static void test_gptq_beats_rtn(void) {
    double eg = 0, er = 0;
    int m = 32, k = 64, n = 256;
    for (int seed = 0; seed < 6; seed++) {
        float *X = corr_X(n, k), *W = randW(m, k), *H = hessian(X, n, k), *Q;
        obs_params p = {.block = 128, .bits = 3, .group = 32, .grid = QGRID_MINMAX_SYM};
        sweep(W, H, m, k, &p, &Q, NULL, NULL, NULL, NULL);
        float *sc = malloc(sizeof(float) * m * 2), *zr = malloc(sizeof(float) * m * 2), *R = malloc(sizeof(float) * m * k);
        BE(be, quant_params, sc, zr, W, m, k, k, 32, 3, QGRID_MINMAX_SYM);
        BE(be, quant_dequant, R, W, sc, zr, m, k, 32, 3);
        eg += out_err(W, Q, X, m, k, n);
        er += out_err(W, R, X, m, k, n);
        free(X); free(W); free(H); free(Q); free(sc); free(zr); free(R);
    }
    printf("# GPTQ 3-bit error %.4g vs RTN %.4g (ratio %.3f)\n", eg, er, eg / er);
    CHECK_MSG(eg < er, "GPTQ %g not below RTN %g", eg, er);
}

/* every value q of row r, group g: q/scale + zero an integer in [0, maxq], at most 2^b values */
static void check_on_grid(const float *Q, const float *sc, const float *zr, int m, int k, int g, int bits, const char *what) {
    int ng = (k + g - 1) / g, maxq = (1 << bits) - 1, off = 0, over = 0;
    for (int r = 0; r < m; r++)
        for (int gi = 0; gi < ng; gi++) {
            float vals[256];
            int nv = 0;
            for (int j = gi * g; j < k && j < (gi + 1) * g; j++) {
                float q = Q[(size_t)r * k + j];
                double u = q / sc[r * ng + gi] + zr[r * ng + gi];
                if (fabs(u - rint(u)) > 1e-3 || rint(u) < 0 || rint(u) > maxq) off++;
                bool seen = false;
                for (int a = 0; a < nv; a++) seen |= vals[a] == q;
                if (!seen && nv < 256) vals[nv++] = q;
            }
            over += nv > (1 << bits);
        }
    CHECK_MSG(off == 0, "%s: %d values off the grid", what, off);
    CHECK_MSG(over == 0, "%s: %d groups with more than 2^%d values", what, over, bits);
}

static void test_values_on_grid(void) {
    int m = 16, k = 72, n = 200;   /* 72 = two groups of 32 and a partial one of 8 (GPTQ allows it) */
    for (int bits = 2; bits <= 8; bits++) {
        float *X = corr_X(n, k), *W = randW(m, k), *H = hessian(X, n, k), *Q;
        float *sc = malloc(sizeof(float) * m * 3), *zr = malloc(sizeof(float) * m * 3);
        obs_params p = {.block = 32, .bits = bits, .group = 32, .grid = QGRID_MINMAX_SYM};
        sweep(W, H, m, k, &p, &Q, sc, zr, NULL, NULL);
        check_on_grid(Q, sc, zr, m, k, 32, bits, "gptq");
        /* AWQ grid: RTN with zero point */
        BE(be, quant_params, sc, zr, W, m, k, k, 24, bits, QGRID_AWQ);
        BE(be, quant_dequant, Q, W, sc, zr, m, k, 24, bits);
        check_on_grid(Q, sc, zr, m, k, 24, bits, "awq");
        free(X); free(W); free(H); free(Q); free(sc); free(zr);
    }
}

static void test_act_order(void) {
    int m = 12, k = 48, n = 200;
    float *X = corr_X(n, k), *W = randW(m, k), *H = hessian(X, n, k), *Q1, *Q2;
    int32_t perm[48];
    obs_params p = {.block = 16, .bits = 3, .group = 0, .grid = QGRID_MINMAX_ASYM};
    double l1 = sweep(W, H, m, k, &p, &Q1, NULL, NULL, NULL, perm);
    /* descending diagonal */
    bool desc = true;
    for (int j = 1; j < k; j++) desc &= H[perm[j - 1] * k + perm[j - 1]] >= H[perm[j] * k + perm[j]];
    CHECK(desc);
    /* the plain sweep on (WΠ, ΠᵀHΠ), un-permuted */
    float *Wp = malloc(sizeof(float) * m * k), *Hp = malloc(sizeof(float) * k * k);
    for (int r = 0; r < m; r++) for (int j = 0; j < k; j++) Wp[r * k + j] = W[r * k + perm[j]];
    for (int a = 0; a < k; a++) for (int b = 0; b < k; b++) Hp[a * k + b] = H[perm[a] * k + perm[b]];
    double l2 = sweep(Wp, Hp, m, k, &p, &Q2, NULL, NULL, NULL, NULL);
    double md = 0;
    for (int r = 0; r < m; r++) for (int j = 0; j < k; j++) md = fmax(md, fabs(Q1[r * k + perm[j]] - Q2[r * k + j]));
    CHECK_MSG(md == 0 && l1 == l2, "act order differs from the permuted plain sweep by %g", md);
    free(X); free(W); free(H); free(Q1); free(Q2); free(Wp); free(Hp);
}

static void test_nm(void) {
    int m = 8, k = 64, n = 100;
    float *X = corr_X(n, k), *W = randW(m, k), *H = hessian(X, n, k), *Q;
    obs_params p = {.block = 32, .prune_n = 2, .prune_m = 4};
    int64_t masked = 0;
    sweep(W, H, m, k, &p, &Q, NULL, NULL, &masked, NULL);
    int bad = 0;
    for (int r = 0; r < m; r++)
        for (int g = 0; g < k; g += 4) {
            int z = 0;
            for (int j = 0; j < 4; j++) z += Q[r * k + g + j] == 0.0f;
            bad += z != 2;
        }
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(masked, m * k / 2);
    /* Wanda's n:m through row_prune */
    float *S = malloc(sizeof(float) * m * k);
    memcpy(Q, W, sizeof(float) * m * k);
    for (int i = 0; i < m * k; i++) S[i] = fabsf(W[i]);
    CHECK_EQ_INT(BE(be, row_prune, Q, S, m, k, 0, 2, 4), m * k / 2);
    bad = 0;
    for (int r = 0; r < m; r++)
        for (int g = 0; g < k; g += 4) {
            int z = 0;
            for (int j = 0; j < 4; j++) z += Q[r * k + g + j] == 0.0f;
            bad += z != 2;
        }
    CHECK_EQ_INT(bad, 0);
    free(X); free(W); free(H); free(Q); free(S);
}

/* Wanda: S = |W|·‖x‖; floor(k s) per row; row and activation scaling leave the mask; ties by index */
static void wanda_mask(const float *W, const float *a, int m, int k, double s, unsigned char *mask) {
    float *S = malloc(sizeof(float) * m * k), *Q = malloc(sizeof(float) * m * k);
    for (int r = 0; r < m; r++) for (int j = 0; j < k; j++) S[r * k + j] = fabsf(W[r * k + j]) * sqrtf(a[j]);
    memcpy(Q, W, sizeof(float) * m * k);
    int n_prune = (int)((double)k * s);
    CHECK_EQ_INT(BE(be, row_prune, Q, S, m, k, n_prune, 0, 0), (int64_t)m * n_prune);
    for (int i = 0; i < m * k; i++) mask[i] = Q[i] == 0.0f;
    for (int r = 0; r < m; r++) {
        int z = 0;
        for (int j = 0; j < k; j++) { z += mask[r * k + j]; if (!mask[r * k + j]) CHECK(Q[r * k + j] == W[r * k + j]); }
        CHECK_EQ_INT(z, n_prune);
    }
    free(S); free(Q);
}
static void test_wanda(void) {
    int m = 10, k = 50, n = 120;
    float *X = corr_X(n, k), *W = randW(m, k), *a = calloc(k, sizeof(float));
    BE(be, colsumsq_acc, a, X, n, k);
    double want = 0;
    for (int t = 0; t < n; t++) want += (double)X[t * k + 3] * X[t * k + 3];
    CHECK_NEAR(a[3], want, 1e-4 * want);
    unsigned char *m0 = malloc(m * k), *m1 = malloc(m * k);
    for (int si = 1; si <= 7; si++) {
        double s = 0.1 * si;
        wanda_mask(W, a, m, k, s, m0);
        float *W2 = malloc(sizeof(float) * m * k), *a2 = malloc(sizeof(float) * k);
        for (int r = 0; r < m; r++) for (int j = 0; j < k; j++) W2[r * k + j] = W[r * k + j] * (float)(0.25 + r);
        for (int j = 0; j < k; j++) a2[j] = a[j] * 9.0f;   /* activations scaled by 3 */
        wanda_mask(W2, a2, m, k, s, m1);
        CHECK_MSG(memcmp(m0, m1, m * k) == 0, "sparsity %.1f: the mask changed under row/activation scaling", s);
        free(W2); free(a2);
    }
    /* equal scores: the lower column is pruned first */
    float Wt[8] = {1, 1, 1, 1, 2, 2, 2, 2}, St[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    CHECK_EQ_INT(BE(be, row_prune, Wt, St, 1, 8, 3, 0, 0), 3);
    CHECK(Wt[0] == 0 && Wt[1] == 0 && Wt[2] == 0 && Wt[3] == 1);
    free(X); free(W); free(a); free(m0); free(m1);
}

static void test_dead_inputs(void) {
    int m = 6, k = 20, n = 60;
    float *X = corr_X(n, k), *W = randW(m, k);
    for (int t = 0; t < n; t++) X[t * k + 5] = 0;
    float *H = hessian(X, n, k), *Wc = malloc(sizeof(float) * m * k);
    memcpy(Wc, W, sizeof(float) * m * k);
    cis_err err = {0};
    int dead = 0;
    CHECK(cmp_hinv_factor(be, H, Wc, m, k, 0.01, NULL, &dead, &err) == 0);
    CHECK_EQ_INT(dead, 1);
    for (int r = 0; r < m; r++) CHECK(Wc[r * k + 5] == 0.0f);
    free(X); free(W); free(H); free(Wc);
}

/* ---- the parity dump ----------------------------------------------------------------------------- */

static void wr(const char *dir, const char *name, const float *x, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s.f32", dir, name);
    FILE *f = fopen(p, "wb");
    CIS_ASSERT(f && fwrite(x, sizeof(float), n, f) == n);
    fclose(f);
}

static int dump(const char *dir) {
    mkdir(dir, 0755);
    FILE *js = fopen(xasprintf("%s/cases.json", dir), "w");
    CIS_ASSERT(js);
    fprintf(js, "[\n");
    struct { const char *name; int m, k, n; obs_params p; } cases[] = {
        {"gptq4_g32", 20, 80, 256, {.block = 32, .bits = 4, .group = 32, .grid = QGRID_MINMAX_SYM}},
        {"gptq3_g128", 16, 160, 256, {.block = 128, .bits = 3, .group = 128, .grid = QGRID_MINMAX_SYM}},
        {"gptq2_row", 12, 64, 200, {.block = 16, .bits = 2, .group = 0, .grid = QGRID_MINMAX_SYM}},
        {"sparsegpt50", 20, 80, 256, {.block = 32, .sparsity = 0.5}},
        {"sparsegpt_2_4", 16, 64, 200, {.block = 32, .prune_n = 2, .prune_m = 4}},
    };
    int nc = (int)(sizeof cases / sizeof *cases);
    for (int c = 0; c < nc; c++) {
        int m = cases[c].m, k = cases[c].k, n = cases[c].n;
        float *X = corr_X(n, k), *W = randW(m, k), *H = hessian(X, n, k), *Q;
        char nm[128];
        double loss = sweep(W, H, m, k, &cases[c].p, &Q, NULL, NULL, NULL, NULL);
        snprintf(nm, sizeof nm, "%s.W", cases[c].name); wr(dir, nm, W, (size_t)m * k);
        snprintf(nm, sizeof nm, "%s.X", cases[c].name); wr(dir, nm, X, (size_t)n * k);
        snprintf(nm, sizeof nm, "%s.Q", cases[c].name); wr(dir, nm, Q, (size_t)m * k);
        const obs_params *p = &cases[c].p;
        fprintf(js, "  {\"name\": \"%s\", \"kind\": \"obs\", \"m\": %d, \"k\": %d, \"n\": %d, \"block\": %d, \"bits\": %d, "
                "\"group\": %d, \"sparsity\": %g, \"prune_n\": %d, \"prune_m\": %d, \"loss\": %.10g},\n", cases[c].name, m, k,
                n, p->block, p->bits, p->group, p->sparsity, p->prune_n, p->prune_m, loss);
        free(X); free(W); free(H); free(Q);
    }
    /* Wanda and the AWQ grid */
    {
        int m = 16, k = 96, n = 128;
        float *X = corr_X(n, k), *W = randW(m, k), *a = calloc(k, sizeof(float)), *S = malloc(sizeof(float) * m * k);
        float *Q = malloc(sizeof(float) * m * k);
        BE(be, colsumsq_acc, a, X, n, k);
        for (int r = 0; r < m; r++) for (int j = 0; j < k; j++) S[r * k + j] = fabsf(W[r * k + j]) * sqrtf(a[j] / 1.0f);
        memcpy(Q, W, sizeof(float) * m * k);
        BE(be, row_prune, Q, S, m, k, (int)(k * 0.35), 0, 0);
        wr(dir, "wanda35.W", W, (size_t)m * k); wr(dir, "wanda35.X", X, (size_t)n * k); wr(dir, "wanda35.Q", Q, (size_t)m * k);
        fprintf(js, "  {\"name\": \"wanda35\", \"kind\": \"wanda\", \"m\": %d, \"k\": %d, \"n\": %d, \"sparsity\": 0.35},\n", m, k, n);
        float *sc = malloc(sizeof(float) * m * 3), *zr = malloc(sizeof(float) * m * 3);
        BE(be, quant_params, sc, zr, W, m, k, k, 32, 3, QGRID_AWQ);
        BE(be, quant_dequant, Q, W, sc, zr, m, k, 32, 3);
        wr(dir, "awq3_g32.W", W, (size_t)m * k); wr(dir, "awq3_g32.Q", Q, (size_t)m * k);
        fprintf(js, "  {\"name\": \"awq3_g32\", \"kind\": \"awq_rtn\", \"m\": %d, \"k\": %d, \"bits\": 3, \"group\": 32}\n", m, k);
        free(X); free(W); free(a); free(S); free(Q); free(sc); free(zr);
    }
    fprintf(js, "]\n");
    fclose(js);
    return 0;
}

int main(int argc, char **argv) {
    cis_err err = {0};
    be = backend_open("cpu", &(backend_opts){.threads = 2}, &err);
    CIS_ASSERT(be);
    if (argc == 3 && !strcmp(argv[1], "--dump")) { int rc = dump(argv[2]); backend_close(&be); return rc; }
    RUN(test_gptq_loss_identity);
    RUN(test_sparsegpt_loss_identity);
    RUN(test_blocksize_invariance);
    RUN(test_diagonal_hessian);
    RUN(test_gptq_beats_rtn);
    RUN(test_values_on_grid);
    RUN(test_act_order);
    RUN(test_nm);
    RUN(test_wanda);
    RUN(test_dead_inputs);
    backend_close(&be);
    return test_summary();
}
