/* compress.c - the helpers Wanda, SparseGPT, GPTQ and AWQ share (compress.h): linears, calibration
 * samplers, the group preset, the inverse-Hessian factor, the OBS driver, the bits of a record. */
#include "worker/interventions/compress.h"
#include "worker/interventions/cmp_record.h"
#include "worker/interventions/edit_common.h"
#include "common/rng.h"
#include "worker/data/loaders.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const cmp_linear cmp_linears[CMP_N_LINEARS] = {
    {"self_attn.q_proj", "q_proj", LLAMA_HOOK_A}, {"self_attn.k_proj", "k_proj", LLAMA_HOOK_A},
    {"self_attn.v_proj", "v_proj", LLAMA_HOOK_A}, {"self_attn.o_proj", "o_proj", LLAMA_HOOK_B},
    {"mlp.gate_proj", "gate_proj", LLAMA_HOOK_C}, {"mlp.up_proj", "up_proj", LLAMA_HOOK_C},
    {"mlp.down_proj", "down_proj", LLAMA_HOOK_D},
};

int cmp_require_ops(const llama_model *m, cis_err *err) {
    const backend *be = llama_model_backend(m);
    const backend_iface *f = be->iface;
    if (f->gram_acc && f->colsumsq_acc && f->quant_params && f->quant_dequant && f->obs_sweep && f->row_prune) return 0;
    return err_set(err, CIS_EINVAL, "the compression ops (gram_acc, colsumsq_acc, quant_params, quant_dequant, "
                   "obs_sweep, row_prune) are not implemented on backend \"%s\" yet: run compression on the cpu "
                   "device", backend_name(be));
}

int cmp_param(llama_model *m, int l, int which) {
    char name[128];
    snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, cmp_linears[which].name);
    int i = llama_model_find(m, name);
    CIS_ASSERT(i >= 0);
    return i;
}

int cmp_seqlen(const llama_config *cfg, long long requested) {
    int T = requested > 0 ? (int)(requested < 8192 ? requested : 8192) : 8192;
    return T < cfg->max_position_embeddings ? T : cfg->max_position_embeddings;
}

/* ---- calibration samplers ------------------------------------------------------------------------ */

/* the v1 sampler (the paper's Llama-3 runs; the GPTQ/SparseGPT/Wanda repos' get_c4): random
 * documents until one has more than T tokens (with BOS), then a random T-token window of it */
static int c4_v1(const interv_ctx *ctx, const char *path, int n, int T, uint64_t seed, calib_data *out, cis_err *err) {
    text_docs docs = {0};
    if (c4_load(path, 0, &docs, err)) return -1;
    int32_t **enc = calloc((size_t)(docs.n > 0 ? docs.n : 1), sizeof(int32_t *));
    size_t *len = calloc((size_t)(docs.n > 0 ? docs.n : 1), sizeof(size_t));
    int rc = -1, eligible = 0;
    if (!enc || !len) { err_set(err, CIS_ENOMEM, "out of memory tokenizing %s", path); goto out; }
    for (int i = 0; i < docs.n; i++) {
        if (tokenizer_encode(ctx->tok, docs.text[i], docs.len[i], true, &enc[i], &len[i], err)) goto out;
        eligible += len[i] > (size_t)T;
    }
    if (eligible == 0) {
        err_set(err, CIS_EINVAL, "%s: none of its %d documents is longer than the calibration window of %d tokens",
                path, docs.n, T);
        goto out;
    }
    rng_mt mt;
    rng_mt_seed(&mt, seed);
    calib_data_init(out, n, T);
    for (int s = 0; s < n; s++) {
        int d;
        do d = (int)rng_mt_below(&mt, (uint32_t)docs.n); /* randint(0, len(traindata) - 1) */
        while (len[d] <= (size_t)T);
        uint32_t i = rng_mt_below(&mt, (uint32_t)(len[d] - (size_t)T)); /* randint(0, len - T - 1) */
        memcpy(out->ids + (size_t)s * T, enc[d] + i, (size_t)T * sizeof(int32_t));
    }
    rc = 0;
out:
    for (int i = 0; enc && i < docs.n; i++) free(enc[i]);
    free(enc);
    free(len);
    text_docs_clear(&docs);
    return rc;
}

int cmp_calib_c4(const interv_ctx *ctx, int n, int T, uint64_t seed, calib_data *out, cis_err *err) {
    if (!ctx->data_dir) return err_set(err, CIS_EINVAL, "calibration needs the datasets (--data DIR with c4/)");
    char path[4096];
    snprintf(path, sizeof path, "%s/c4/c4-train.00000-of-01024.json.gz", ctx->data_dir);
    json_t *sv = interv_param_get(ctx, "c4_sampler");
    const char *sampler = json_is_string(sv) ? json_string_value(sv) : "concat1000";
    if (!strcmp(sampler, "v1")) return c4_v1(ctx, path, n, T, seed, out, err);
    if (strcmp(sampler, "concat1000") != 0)
        return err_set(err, CIS_EINVAL, "params.c4_sampler: \"%s\" is not v1 or concat1000", sampler);
    text_docs docs = {0};
    if (c4_load(path, 1000, &docs, err)) return -1;
    size_t total = 0;
    for (int i = 0; i < docs.n; i++) total += docs.len[i] + 1;
    char *joined = malloc(total + 1);
    if (!joined) { text_docs_clear(&docs); return err_set(err, CIS_ENOMEM, "out of memory joining %s", path); }
    size_t o = 0;
    for (int i = 0; i < docs.n; i++) {
        if (i) joined[o++] = ' ';
        memcpy(joined + o, docs.text[i], docs.len[i]);
        o += docs.len[i];
    }
    joined[o] = 0;
    text_docs_clear(&docs);
    int32_t *ids = NULL;
    size_t nt = 0;
    int rc = tokenizer_encode(ctx->tok, joined, o, true, &ids, &nt, err);
    free(joined);
    if (rc) return -1;
    if (nt <= (size_t)T + 1) {
        free(ids);
        return err_set(err, CIS_EINVAL, "%s: %zu tokens in its first 1000 documents, fewer than one calibration "
                       "window of %d", path, nt, T + 2);
    }
    rng_mt mt;
    rng_mt_seed(&mt, seed);
    calib_data_init(out, n, T);
    for (int s = 0; s < n; s++) {
        uint32_t i = rng_mt_below(&mt, (uint32_t)(nt - (size_t)T)); /* randint(0, len - T - 1) */
        memcpy(out->ids + (size_t)s * T, ids + i, (size_t)T * sizeof(int32_t));
    }
    free(ids);
    return 0;
}

static void strip(const char **s, size_t *n) {
    while (*n && (**s == ' ' || **s == '\n' || **s == '\t' || **s == '\r')) { (*s)++; (*n)--; }
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\n' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\r')) (*n)--;
}

int cmp_calib_pile(const interv_ctx *ctx, int n_lines, int block, uint64_t seed, calib_data *out, cis_err *err) {
    if (!ctx->data_dir) return err_set(err, CIS_EINVAL, "calibration needs the datasets (--data DIR with pile/)");
    char path[4096];
    snprintf(path, sizeof path, "%s/pile/val.jsonl", ctx->data_dir);
    if (access(path, R_OK) != 0) snprintf(path, sizeof path, "%s/pile/val.jsonl.zst", ctx->data_dir);
    text_docs docs = {0};
    if (pile_load(path, 0, &docs, err)) return -1;
    int *order = malloc((size_t)(docs.n > 0 ? docs.n : 1) * sizeof(int));
    if (!order) { text_docs_clear(&docs); return err_set(err, CIS_ENOMEM, "out of memory (pile order)"); }
    for (int i = 0; i < docs.n; i++) order[i] = i;
    rng_mt mt;
    rng_mt_seed(&mt, seed);
    rng_mt_shuffle(&mt, order, (size_t)docs.n, sizeof(int));
    size_t cap = (size_t)n_lines * block, len = 0;
    int32_t *stream = malloc(cap * sizeof(int32_t));
    int taken = 0;
    for (int i = 0; stream && i < docs.n && taken < n_lines; i++) {
        const char *t = docs.text[order[i]];
        size_t tn = docs.len[order[i]];
        strip(&t, &tn);
        if (tn == 0) continue;
        int32_t *ids = NULL;
        size_t k = 0;
        if (tokenizer_encode(ctx->tok, t, tn, true, &ids, &k, err)) { free(stream); free(order); text_docs_clear(&docs); return -1; }
        if (k <= (size_t)block && k > 0) {
            memcpy(stream + len, ids, k * sizeof(int32_t));
            len += k;
            taken++;
        }
        free(ids);
    }
    free(order);
    text_docs_clear(&docs);
    if (!stream) return err_set(err, CIS_ENOMEM, "out of memory (pile stream)");
    int nb = (int)(len / (size_t)block);
    if (nb < 1) {
        free(stream);
        return err_set(err, CIS_EINVAL, "%s: %d usable lines give %zu tokens, fewer than one block of %d", path, taken,
                       len, block);
    }
    calib_data_init(out, nb, block);
    memcpy(out->ids, stream, (size_t)nb * block * sizeof(int32_t));
    free(stream);
    return 0;
}

/* ---- the group preset ------------------------------------------------------------------------------ */

static int gcd(int a, int b) { while (b) { int t = a % b; a = b; b = t; } return a; }

int cmp_group_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    json_t *gv = json_object_get(params, "group_size");
    int g = json_is_integer(gv) ? (int)json_integer_value(gv) : 128;
    int widths[3] = {cfg->hidden_size, cfg->num_attention_heads * cfg->head_dim, cfg->intermediate_size};
    int mn = widths[0];
    for (int i = 1; i < 3; i++) if (widths[i] < mn) mn = widths[i];
    int eff = g;
    if (mn < g) {
        eff = g;
        for (int i = 0; i < 3; i++) eff = gcd(eff, widths[i]);
        char why[160];
        snprintf(why, sizeof why, "group_size %d is wider than this model's narrowest linear input (%d): the gcd "
                 "of %d and the widths %d, %d, %d", g, mn, g, widths[0], widths[1], widths[2]);
        json_object_set_new(params, "group_reason", json_string(why));
    }
    json_object_set_new(params, "group", json_integer(eff));
    return 0;
}

static void set_default(json_t *params, const char *key, json_t *v) {
    if (!json_object_get(params, key)) json_object_set_new(params, key, v);
    else json_decref(v);
}

int cmp_calib_preset(const llama_config *cfg, json_t *params, int upstream_T, int tiny_n, cis_err *err) {
    if (!json_object_get(params, "n_samples")) {
        json_object_set_new(params, "n_samples", json_integer(CMP_PAPER_N_SAMPLES));
        /* the tiny family: fewer windows, noted in params.tiny_preset (docs/compression.md) */
        edit_tiny_override(cfg, params, "n_samples", CMP_PAPER_N_SAMPLES, tiny_n);
    }
    if (upstream_T != 512) set_default(params, "c4_sampler", json_string("concat1000"));
    json_t *tv = json_object_get(params, "seqlen");
    long long T = json_is_integer(tv) && json_integer_value(tv) > 0 ? json_integer_value(tv) : upstream_T;
    if (T > cfg->max_position_embeddings) T = cfg->max_position_embeddings;
    json_object_set_new(params, "seqlen", json_integer(T));
    json_t *nv = json_object_get(params, "n_samples");
    if (!json_is_integer(nv) || json_integer_value(nv) < 1)
        return err_set(err, CIS_EINVAL, "params.n_samples: expected an integer >= 1");
    return 0;
}

long long cmp_param_int(const interv_ctx *c, const char *key, long long dflt) {
    json_t *v = interv_param_get(c, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}
double cmp_param_num(const interv_ctx *c, const char *key, double dflt) {
    json_t *v = interv_param_get(c, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

/* ---- the inverse-Hessian factor ----------------------------------------------------------------- */

typedef struct dkey { float v; int i; } dkey;
static int dkey_desc(const void *a, const void *b) {
    const dkey *x = a, *y = b;
    if (x->v > y->v) return -1;
    if (x->v < y->v) return 1;
    return (x->i > y->i) - (x->i < y->i);
}

int cmp_hinv_factor(backend *be, float *H, float *W, int rows, int k, double damp, int32_t *perm, int *n_dead,
                    cis_err *err) {
    size_t hb = (size_t)k * k * sizeof(float), wb = (size_t)rows * k * sizeof(float);
    float *h = malloc(hb), *w = malloc(wb);
    if (!h || !w) { free(h); free(w); return err_set(err, CIS_ENOMEM, "out of memory (Hessian %dx%d)", k, k); }
    backend_download(be, h, H, hb);
    int dead = 0;
    bool wchg = false;
    for (int j = 0; j < k; j++)
        if (h[(size_t)j * k + j] == 0.0f) {
            h[(size_t)j * k + j] = 1.0f;
            if (!wchg) { backend_download(be, w, W, wb); wchg = true; }
            for (int r = 0; r < rows; r++) w[(size_t)r * k + j] = 0.0f;
            dead++;
        }
    if (perm) {
        if (!wchg) { backend_download(be, w, W, wb); wchg = true; }
        dkey *d = malloc((size_t)k * sizeof(dkey));
        float *h2 = malloc(hb), *w2 = malloc(wb);
        if (!d || !h2 || !w2) { free(d); free(h2); free(w2); free(h); free(w); return err_set(err, CIS_ENOMEM, "out of memory (act order)"); }
        for (int j = 0; j < k; j++) d[j] = (dkey){h[(size_t)j * k + j], j};
        qsort(d, (size_t)k, sizeof(dkey), dkey_desc);
        for (int j = 0; j < k; j++) perm[j] = d[j].i;
        for (int a = 0; a < k; a++)
            for (int b = 0; b < k; b++) h2[(size_t)a * k + b] = h[(size_t)perm[a] * k + perm[b]];
        for (int r = 0; r < rows; r++)
            for (int b = 0; b < k; b++) w2[(size_t)r * k + b] = w[(size_t)r * k + perm[b]];
        memcpy(h, h2, hb);
        memcpy(w, w2, wb);
        free(d); free(h2); free(w2);
    }
    double mean = 0;
    for (int j = 0; j < k; j++) mean += h[(size_t)j * k + j];
    float lambda = (float)(damp * (mean / k));
    for (int j = 0; j < k; j++) h[(size_t)j * k + j] += lambda;
    backend_upload(be, H, h, hb);
    if (wchg) backend_upload(be, W, w, wb);
    free(h); free(w);
    if (n_dead) *n_dead = dead;
    /* the reference's route: H⁻¹ through a Cholesky factor, then the upper factor of H⁻¹ */
    int bad = BE(be, spd_inverse, H, k);
    if (bad) return err_set(err, CIS_EINVAL, "the damped Hessian (%dx%d) is not positive definite (leading minor %d); "
                            "raise the damping", k, k, bad);
    bad = BE(be, cholesky, H, k, true);
    if (bad) return err_set(err, CIS_EINVAL, "the inverse Hessian (%dx%d) is not positive definite (leading minor %d)",
                            k, k, bad);
    return 0;
}

void cmp_unpermute(backend *be, float *W, int rows, int k, const int32_t *perm) {
    size_t wb = (size_t)rows * k * sizeof(float);
    float *w = malloc(wb), *w2 = malloc(wb);
    CIS_ASSERT(w && w2);
    backend_download(be, w, W, wb);
    for (int r = 0; r < rows; r++)
        for (int b = 0; b < k; b++) w2[(size_t)r * k + perm[b]] = w[(size_t)r * k + b];
    backend_upload(be, W, w2, wb);
    free(w); free(w2);
}

/* ---- statistics collected through calib.h ------------------------------------------------------- */

typedef struct hess_acc {
    backend *be;
    float *H[5];        /* per hook point: [width, width] in backend memory, or NULL when not wanted */
    float *stage;       /* backend scratch for one chunk's rows */
    size_t stage_bytes;
} hess_acc;

static int hess_visit(void *arg, int layer, llama_hook_point point, int first_seq, const float *rows, int n_rows,
                      int width, cis_err *err) {
    hess_acc *a = arg;
    if (!a->H[point] || n_rows == 0) return 0;
    size_t bytes = (size_t)n_rows * width * sizeof(float);
    if (bytes > a->stage_bytes) {
        backend_free(a->be, a->stage);
        if (!(a->stage = backend_alloc(a->be, bytes, err))) { a->stage_bytes = 0; return -1; }
        a->stage_bytes = bytes;
    }
    backend_upload(a->be, a->stage, rows, bytes);
    BE(a->be, gram_acc, a->H[point], a->stage, n_rows, width, 1.0f);
    return 0;
}

/* the linear groups of one pass: true sequential = 4 passes, else one pass over all seven */
static const int TS_GROUPS[4][4] = {{CMP_K, CMP_V, CMP_Q, -1}, {CMP_O, -1}, {CMP_UP, CMP_GATE, -1}, {CMP_DOWN, -1}};
static const int ALL_GROUP[8] = {CMP_Q, CMP_K, CMP_V, CMP_O, CMP_GATE, CMP_UP, CMP_DOWN, -1};

/* R = W with the floor(numel·s) smallest |w| of the matrix zeroed (Wanda's repo's "magnitude"
 * baseline: one threshold per matrix), on the host */
static void magnitude_prune(backend *be, float *R, const float *W, int rows, int k, double s) {
    size_t n = (size_t)rows * k;
    float *w = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float));
    CIS_ASSERT(w && a);
    backend_download(be, w, W, n * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = fabsf(w[i]);
    size_t kk = (size_t)((double)n * s);
    if (kk >= n) kk = n - 1;
    float t = kth_smallest(a, (int64_t)n, (int64_t)kk); /* the kk-th smallest |w|, on the copy */
    for (size_t i = 0; i < n; i++) if (fabsf(w[i]) <= t) w[i] = 0.0f;
    backend_upload(be, R, w, n * sizeof(float));
    free(w); free(a);
}

/* tr(D H Dᵀ) for D = A - B ([rows,k], backend) under H [k,k] (backend), on the host: the layer's
 * output error ‖(A - B) X‖² up to H's 2/N */
static double quad_err(backend *be, const float *A, const float *Bq, const float *H, int rows, int k, float *tmpd,
                       float *tmpt) {
    size_t n = (size_t)rows * k;
    backend_copy(be, tmpd, A, n * sizeof(float));
    BE(be, axpy, tmpd, -1.0f, Bq, (int64_t)n);
    BE(be, gemm, false, false, rows, k, k, 1.0f, tmpd, k, H, k, 0.0f, tmpt, k);
    float *d = malloc(n * sizeof(float)), *t = malloc(n * sizeof(float));
    CIS_ASSERT(d && t);
    backend_download(be, d, tmpd, n * sizeof(float));
    backend_download(be, t, tmpt, n * sizeof(float));
    double e = 0;
    for (size_t i = 0; i < n; i++) e += (double)d[i] * t[i];
    free(d); free(t);
    return e;
}

int cmp_obs_run(interv_ctx *ctx, const cmp_obs_cfg *cfg, cis_err *err) {
    llama_model *m = ctx->model;
    const llama_config *lc = llama_model_config(m);
    backend *be = llama_model_backend(m);
    int L = lc->num_hidden_layers, np = 0;
    llama_param *P = llama_model_params(m, &np);
    interv_record *rec = ctx->record;
    calib_data d = {0};
    calib_walk *w = NULL;
    hess_acc acc = {.be = be};
    int rc = -1;
    int32_t *perm = NULL;
    float *scale = NULL, *zero = NULL;
    json_t *layers_rec = json_array();
    double loss_total = 0, layer_err = 0, base_err = 0;
    int64_t masked_total = 0, numel_total = 0;
    int dead_total = 0;

    interv_phase_begin(rec, "calibrate");
    if (cmp_calib_c4(ctx, cfg->n_samples, cfg->seqlen, cfg->calib_seed, &d, err)) goto done;
    if (calib_walk_new(m, &d, 8, ctx, &w, err)) goto done;
    interv_phase_end(rec);
    int widths[5] = {lc->hidden_size, lc->num_attention_heads * lc->head_dim, lc->hidden_size, lc->intermediate_size, 0};
    int maxw = lc->hidden_size > lc->intermediate_size ? lc->hidden_size : lc->intermediate_size;
    if (widths[1] > maxw) maxw = widths[1];
    perm = malloc((size_t)maxw * sizeof(int32_t));
    int maxrows = lc->intermediate_size > lc->hidden_size ? lc->intermediate_size : lc->hidden_size;
    int g = cfg->op.group > 0 ? cfg->op.group : maxw;
    size_t sz = (size_t)maxrows * ((maxw + g - 1) / g) * sizeof(float);
    if (!perm || !(scale = backend_alloc(be, sz, err)) || !(zero = backend_alloc(be, sz, err))) {
        if (!perm) err_set(err, CIS_ENOMEM, "out of memory");
        goto done;
    }
    for (int l = 0; l < L; l++) {
        json_t *lrec = json_object();
        int n_passes = cfg->true_sequential ? 4 : 1;
        for (int pass = 0; pass < n_passes; pass++) {
            const int *grp = cfg->true_sequential ? TS_GROUPS[pass] : ALL_GROUP;
            llama_hook_point pts[4];
            int npts = 0;
            for (int gi = 0; grp[gi] >= 0; gi++) {
                llama_hook_point p = cmp_linears[grp[gi]].point;
                bool have = false;
                for (int t = 0; t < npts; t++) have |= pts[t] == p;
                if (!have) pts[npts++] = p;
            }
            interv_phase_begin(rec, "statistics");
            for (int t = 0; t < npts; t++) {
                size_t hb = (size_t)widths[pts[t]] * widths[pts[t]] * sizeof(float);
                if (!(acc.H[pts[t]] = backend_alloc(be, hb, err))) goto done;
                backend_memset(be, acc.H[pts[t]], 0, hb);
            }
            /* the q/k/v pass reads only point A: its RMSNorm, without running the layer; the others
             * run it only through their last point (the output comes from calib_walk_next) */
            int crc = npts == 1 && pts[0] == LLAMA_HOOK_A ? calib_walk_collect_norm_in(w, hess_visit, &acc, err)
                                                          : calib_walk_peek(w, pts, npts, hess_visit, &acc, err);
            if (crc) goto done;
            interv_phase_end(rec);
            for (int gi = 0; grp[gi] >= 0; gi++) {
                if (interv_should_stop(ctx)) { rc = interv_stopped(ctx, err); goto done; }
                int which = grp[gi], pi = cmp_param(m, l, which);
                int rows = (int)P[pi].shape[0], k = (int)P[pi].shape[1];
                llama_hook_point p = cmp_linears[which].point;
                size_t hb = (size_t)k * k * sizeof(float);
                interv_phase_begin(rec, "solve");
                /* the reference builds H per linear; the linears of one input share its values */
                float *Hc = backend_alloc(be, hb, err);
                if (!Hc) goto done;
                backend_copy(be, Hc, acc.H[p], hb);
                BE(be, scale, Hc, 2.0f / (float)d.n_seq, (int64_t)k * k);
                int dead = 0;
                float *W = P[pi].data;
                /* for the record: the layer error of this result and of round-to-nearest (GPTQ) or
                 * per-matrix magnitude pruning (SparseGPT) under the undamped H */
                size_t wb = (size_t)rows * k * sizeof(float);
                float *H0 = backend_alloc(be, hb, err), *W0 = H0 ? backend_alloc(be, wb, err) : NULL;
                float *T1 = W0 ? backend_alloc(be, wb, err) : NULL, *T2 = T1 ? backend_alloc(be, wb, err) : NULL;
                float *R = T2 ? backend_alloc(be, wb, err) : NULL;
                if (!R) { backend_free(be, H0); backend_free(be, W0); backend_free(be, T1); backend_free(be, T2); backend_free(be, Hc); goto done; }
                backend_copy(be, H0, Hc, hb);
                backend_copy(be, W0, W, wb);
                if (cfg->op.bits > 0) {
                    BE(be, quant_params, scale, zero, W0, rows, k, k, cfg->op.group, cfg->op.bits, cfg->op.grid);
                    BE(be, quant_dequant, R, W0, scale, zero, rows, k, cfg->op.group, cfg->op.bits);
                } else {
                    magnitude_prune(be, R, W0, rows, k, cfg->op.prune_n > 0 ? (double)cfg->op.prune_n / cfg->op.prune_m
                                                                           : cfg->op.sparsity);
                }
                if (cmp_hinv_factor(be, Hc, W, rows, k, cfg->damp, cfg->desc_act ? perm : NULL, &dead, err)) {
                    backend_free(be, Hc);
                    err_prefix(err, "layer %d %s", l, cmp_linears[which].short_name);
                    goto done;
                }
                int64_t nm = 0;
                double loss = BE(be, obs_sweep, W, Hc, rows, k, &cfg->op, scale, zero, &nm);
                backend_free(be, Hc);
                if (cfg->desc_act) cmp_unpermute(be, W, rows, k, perm);
                double e_new = quad_err(be, W0, W, H0, rows, k, T1, T2), e_base = quad_err(be, W0, R, H0, rows, k, T1, T2);
                backend_free(be, H0); backend_free(be, W0); backend_free(be, T1); backend_free(be, T2); backend_free(be, R);
                layer_err += e_new;
                base_err += e_base;
                if (cfg->op.bits > 0) { /* the integer codes and the grid, for the stage's record file */
                    interv_phase_begin(rec, "record");
                    if (!rec->cmp) {
                        CIS_ASSERT(cfg->op.group > 0);
                        rec->cmp = cmprec_new(CMPREC_QUANT, ctx->method, cfg->op.bits, cfg->op.group,
                                              cfg->op.grid == QGRID_MINMAX_SYM, cfg->desc_act);
                    }
                    if (cmprec_add_quant(rec->cmp, m, pi, scale, zero, cfg->desc_act ? perm : NULL, err)) goto done;
                }
                interv_phase_end(rec);
                loss_total += loss;
                masked_total += nm;
                numel_total += (int64_t)rows * k;
                dead_total += dead;
                json_t *o = json_object();
                json_object_set_new(o, "err", json_real(loss));
                json_object_set_new(o, "layer_err", json_real(e_new));
                json_object_set_new(o, cfg->op.bits > 0 ? "layer_err_rtn" : "layer_err_magnitude", json_real(e_base));
                if (cfg->op.bits <= 0) json_object_set_new(o, "masked", json_integer(nm));
                if (dead) json_object_set_new(o, "dead_inputs", json_integer(dead));
                json_object_set_new(lrec, cmp_linears[which].short_name, o);
            }
            for (int t = 0; t < npts; t++) { backend_free(be, acc.H[pts[t]]); acc.H[pts[t]] = NULL; }
        }
        json_array_append_new(layers_rec, lrec);
        interv_phase_begin(rec, "write_back");
        if (calib_walk_next(w, CALIB_RERUN, err)) goto done;
        interv_phase_end(rec);
        interv_progress(ctx, (l + 1.0) / L);
    }
    rc = 0;
done:
    interv_phase_end(rec);
    for (int t = 0; t < 5; t++) backend_free(be, acc.H[t]);
    backend_free(be, acc.stage);
    backend_free(be, scale);
    backend_free(be, zero);
    free(perm);
    calib_walk_destroy(&w);
    if (rc == 0) {
        interv_record_set_int(rec, "calib_windows", d.n_seq);
        interv_record_set_int(rec, "calib_seqlen", d.T);
        interv_record_set_int(rec, "calib_seed", (long long)cfg->calib_seed);
        interv_record_set_num(rec, "obs_err_total", loss_total);
        interv_record_set_num(rec, "layer_err_total", layer_err);
        interv_record_set_num(rec, cfg->op.bits > 0 ? "layer_err_rtn_total" : "layer_err_magnitude_total", base_err);
        interv_record_set_int(rec, "numel", numel_total);
        if (cfg->op.bits <= 0) {
            interv_record_set_int(rec, "masked", masked_total);
            interv_record_set_num(rec, "sparsity_masked", numel_total ? (double)masked_total / numel_total : 0);
        }
        interv_record_set_int(rec, "dead_inputs", dead_total);
        interv_record_set(rec, "layers", layers_rec);
    } else {
        json_decref(layers_rec);
    }
    calib_data_clear(&d);
    return rc;
}

int cmp_record_masks(interv_ctx *c, cis_err *err) {
    interv_phase_begin(c->record, "record");
    cmprec_free(&c->record->cmp);
    c->record->cmp = cmprec_new(CMPREC_MASK, c->method, 0, 0, false, false);
    int rc = cmprec_add_masks(c->record->cmp, c->model, err);
    interv_phase_end(c->record);
    return rc;
}

void cmp_quant_of_records(json_t *records, int *wbits, int *group) {
    *wbits = 0;
    *group = 0;
    size_t i;
    json_t *s;
    json_array_foreach(records, i, s) {
        json_t *r = json_object_get(s, "record");
        json_t *b = json_object_get(r, "wbits"), *g = json_object_get(r, "group");
        if (json_is_integer(b) && json_integer_value(b) > 0) {
            *wbits = (int)json_integer_value(b);
            *group = json_is_integer(g) ? (int)json_integer_value(g) : 0;
        }
    }
}
