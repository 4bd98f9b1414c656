/* mask.c - the pruned-weight mask of the recompress policy `mask` (mask.h). */
#include "worker/interventions/mask.h"
#include "worker/interventions/cmp_record.h"
#include "worker/interventions/compress.h"

#include <stdlib.h>
#include <string.h>

static int64_t param_numel(const llama_param *p) {
    int64_t n = 1;
    for (int d = 0; d < p->ndim; d++) n *= p->shape[d];
    return n;
}

/* the entry of parameter i, created (all bits clear) when missing */
static int entry_of(interv_mask *mk, int i, int64_t numel) {
    for (int e = 0; e < mk->n; e++)
        if (mk->param[e] == i) return e;
    int e = mk->n++;
    mk->param = xrealloc(mk->param, sizeof *mk->param * (size_t)mk->n);
    mk->numel = xrealloc(mk->numel, sizeof *mk->numel * (size_t)mk->n);
    mk->bits = xrealloc(mk->bits, sizeof *mk->bits * (size_t)mk->n);
    mk->param[e] = i;
    mk->numel[e] = numel;
    mk->bits[e] = xcalloc((size_t)(numel + 63) / 64, sizeof(uint64_t));
    return e;
}

/* the scratch buffer of the largest masked tensor */
static void size_buf(interv_mask *mk) {
    int64_t big = 0;
    for (int e = 0; e < mk->n; e++) big = mk->numel[e] > big ? mk->numel[e] : big;
    free(mk->buf);
    mk->buf = xmalloc(sizeof(float) * (size_t)(big > 0 ? big : 1));
}

int interv_mask_add_record(interv_mask *mk, llama_model *m, const cmprec *r, cis_err *err) {
    CIS_ASSERT(mk && m && r && r->kind == CMPREC_MASK && (!mk->model || mk->model == m));
    mk->model = m;
    int np = 0;
    llama_param *ps = llama_model_params(m, &np);
    for (int k = 0; k < r->n; k++) {
        const cmprec_tensor *t = &r->t[k];
        int i = llama_model_find(m, t->name);
        if (i < 0 || ps[i].ndim != 2 || ps[i].shape[0] != t->rows || ps[i].shape[1] != t->cols)
            return err_set(err, CIS_EINVAL, "mask: the record's tensor %s [%lld, %lld] is not in the model with that "
                           "shape", t->name, (long long)t->rows, (long long)t->cols);
        int64_t numel = t->rows * t->cols;
        int e = entry_of(mk, i, numel); /* may grow mk->bits: index it after */
        uint64_t *b = mk->bits[e];
        for (int64_t j = 0; j < numel; j++) {
            if (!(t->mask[j >> 3] >> (j & 7) & 1) || (b[j >> 6] >> (j & 63) & 1u)) continue;
            b[j >> 6] |= (uint64_t)1 << (j & 63);
            mk->zeros++;
        }
    }
    size_buf(mk);
    return 0;
}

int interv_mask_capture(interv_mask *mk, llama_model *m, cis_err *err) {
    CIS_ASSERT(mk && m && (!mk->model || mk->model == m));
    mk->model = m;
    int np = 0;
    llama_param *ps = llama_model_params(m, &np);
    const llama_config *cfg = llama_model_config(m);
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        for (int w = 0; w < CMP_N_LINEARS; w++) {
            int i = cmp_param(m, l, w);
            int64_t numel = param_numel(&ps[i]);
            int e = entry_of(mk, i, numel);
            float *host = xmalloc(sizeof(float) * (size_t)numel);
            if (llama_model_param_get(m, i, host, err)) {
                free(host);
                return err_prefix(err, "mask: reading %s", ps[i].name), -1;
            }
            uint64_t *b = mk->bits[e];
            for (int64_t j = 0; j < numel; j++) {
                if (host[j] != 0.0f || (b[j >> 6] >> (j & 63) & 1u)) continue;
                b[j >> 6] |= (uint64_t)1 << (j & 63);
                mk->zeros++;
            }
            free(host);
        }
    }
    size_buf(mk);
    return 0;
}

int interv_mask_apply(interv_mask *mk, cis_err *err) {
    if (!mk || mk->n == 0) return 0;
    int np = 0;
    llama_param *ps = llama_model_params(mk->model, &np);
    for (int e = 0; e < mk->n; e++) {
        int i = mk->param[e];
        if (llama_model_param_get(mk->model, i, mk->buf, err)) return err_prefix(err, "mask: reading %s", ps[i].name), -1;
        const uint64_t *b = mk->bits[e];
        int64_t fixed = 0, words = (mk->numel[e] + 63) / 64;
        for (int64_t wd = 0; wd < words; wd++) {
            uint64_t bw = b[wd];
            while (bw) {
                int bit = __builtin_ctzll(bw);
                bw &= bw - 1;
                int64_t j = wd * 64 + bit;
                if (mk->buf[j] != 0.0f) { mk->buf[j] = 0.0f; fixed++; }
            }
        }
        if (fixed && llama_model_param_set(mk->model, i, mk->buf, err))
            return err_prefix(err, "mask: writing %s", ps[i].name), -1;
        mk->restored += fixed;
    }
    mk->applied++;
    return 0;
}

void interv_mask_clear(interv_mask *mk) {
    if (!mk) return;
    for (int e = 0; e < mk->n; e++) free(mk->bits[e]);
    free(mk->bits);
    free(mk->param);
    free(mk->numel);
    free(mk->buf);
    memset(mk, 0, sizeof *mk);
}
