/* unlearn_fixture.h - shared fixtures of the unlearning tests (test_rmu.c, test_ga.c,
 * test_unlearn_data.c): a tiny random Llama (D=16, 4 layers, larger-than-init weights so that
 * activations and losses are far from trivial), hand-made batches of random token ids, and
 * parameter snapshots compared bit for bit. */
#ifndef CISWEEP_TEST_UNLEARN_FIXTURE_H
#define CISWEEP_TEST_UNLEARN_FIXTURE_H

#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "tests/worker/eval/eval_fixture.h"
#include "worker/interventions/unlearn.h"

/* a tiny model of L layers (D=16, F=24, 64 positions), seeded, weights x8 the HF init */
static inline llama_model *ufx_model(uint64_t seed, int L) {
    llama_config c = fx_config(16, L, 24, 64);
    cis_err err = {0};
    llama_model *m = llama_model_new(&c, NULL, &err);
    CIS_ASSERT(m);
    llama_model_init_random(m, seed);
    int n = 0;
    llama_param *p = llama_model_params(m, &n);
    for (int i = 0; i < n; i++) {
        if (p[i].ndim != 2) continue;
        int64_t cnt = p[i].shape[0] * p[i].shape[1];
        for (int64_t k = 0; k < cnt; k++) p[i].data[k] *= 8.0f;
    }
    return m;
}

/* a copy of m (same config, same weights) */
static inline llama_model *ufx_clone(llama_model *m) {
    cis_err err = {0};
    llama_model *c = llama_model_new(llama_model_config(m), NULL, &err);
    CIS_ASSERT(c && llama_model_copy_params(c, m, &err) == 0);
    return c;
}

/* n batches of B rows of T random ids; row r of batch k has a real length that cycles through
 * T, T-1, T-2 (pad_in_loss: lens = T and EOS pads after the text, else lens = the real length);
 * next-token targets as unl_make_batches writes them when targets */
static inline void ufx_batches(uint64_t seed, int n, int B, int T, bool pad_in_loss, bool targets, unl_batches *out) {
    memset(out, 0, sizeof *out);
    out->b = xcalloc((size_t)n, sizeof *out->b);
    out->n = n;
    uint64_t st = seed;
    for (int k = 0; k < n; k++) {
        unl_batch *b = &out->b[k];
        b->B = B; b->T = T;
        b->ids = xmalloc((size_t)B * T * sizeof(int32_t));
        b->lens = xmalloc((size_t)B * sizeof(int32_t));
        b->real = xmalloc((size_t)B * sizeof(int32_t));
        if (targets) b->targets = xmalloc((size_t)B * T * sizeof(int32_t));
        for (int r = 0; r < B; r++) {
            int real = T - (r + k) % 3;
            b->real[r] = real;
            b->lens[r] = pad_in_loss ? T : real;
            for (int t = 0; t < T; t++)
                b->ids[(size_t)r * T + t] = t == 0 ? FX_BOS : t < real ? (int32_t)(rng_splitmix64(&st) % 256) : FX_EOS;
            if (targets)
                for (int t = 0; t < T; t++)
                    b->targets[(size_t)r * T + t] = t + 1 < b->lens[r] ? b->ids[(size_t)r * T + t + 1] : LOSS_IGNORE_INDEX;
            out->tokens += real;
        }
    }
}

/* every parameter of a model, copied to host memory */
typedef struct ufx_snap { int n; float **data; int64_t *cnt; } ufx_snap;
static inline ufx_snap ufx_take(llama_model *m) {
    ufx_snap s = {0};
    llama_param *p = llama_model_params(m, &s.n);
    s.data = xcalloc((size_t)s.n, sizeof *s.data);
    s.cnt = xcalloc((size_t)s.n, sizeof *s.cnt);
    for (int i = 0; i < s.n; i++) {
        s.cnt[i] = p[i].ndim == 2 ? p[i].shape[0] * p[i].shape[1] : p[i].shape[0];
        s.data[i] = xmalloc((size_t)s.cnt[i] * sizeof(float));
        cis_err err = {0};
        CIS_ASSERT(llama_model_param_get(m, i, s.data[i], &err) == 0);
    }
    return s;
}
static inline void ufx_snap_free(ufx_snap *s) {
    for (int i = 0; i < s->n; i++) free(s->data[i]);
    free(s->data);
    free(s->cnt);
    memset(s, 0, sizeof *s);
}
/* is parameter i of m bit-identical to the snapshot? */
static inline bool ufx_same(llama_model *m, const ufx_snap *s, int i) {
    float *now = xmalloc((size_t)s->cnt[i] * sizeof(float));
    cis_err err = {0};
    CIS_ASSERT(llama_model_param_get(m, i, now, &err) == 0);
    bool same = memcmp(now, s->data[i], (size_t)s->cnt[i] * sizeof(float)) == 0;
    free(now);
    return same;
}

#endif
