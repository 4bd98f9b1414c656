/* optim.c - Adam/AdamW state and steps over a list of tensors (see optim.h); the moments live in
 * the backend's memory beside the parameters. */
#include "worker/engine/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct optim {
    backend *be;           /* borrowed, or own_be */
    bool own_be;
    optim_config cfg;
    int n;
    float **p;             /* [n] caller's parameter tensors */
    float **g;             /* [n] caller's gradients (clip may scale them) */
    int64_t *len;          /* [n] */
    float *m, *v;          /* moments, sum(len) floats each */
    int64_t total;
    int64_t step;
};

optim_config optim_config_default(adam_variant v) {
    optim_config c = {.variant = v, .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    if (v == ADAM_TORCH_ADAMW) c.weight_decay = 1e-2f;
    if (v == ADAM_HF_ADAMW) c.eps = 1e-6f;
    return c;
}

optim *optim_new(backend *be, const optim_config *cfg, int n, float *const *params,
                 const float *const *grads, const int64_t *len, cis_err *err) {
    if (!cfg || n < 0 || (n > 0 && (!params || !grads || !len))) {
        err_set(err, CIS_EINVAL, "optim: bad arguments");
        return NULL;
    }
    if (!(cfg->lr >= 0) || !(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1) ||
        !(cfg->eps >= 0) || !(cfg->weight_decay >= 0) || cfg->variant < ADAM_TORCH_ADAMW || cfg->variant > ADAM_TORCH_ADAM) {
        err_set(err, CIS_EINVAL, "optim: lr=%g betas=(%g, %g) eps=%g wd=%g: expected lr, eps, wd >= 0 and betas in [0, 1)",
                cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay);
        return NULL;
    }
    optim *o = xcalloc(1, sizeof *o);
    o->be = be;
    if (!be) {
        o->be = backend_open("cpu", NULL, err);
        if (!o->be) { free(o); return NULL; }
        o->own_be = true;
    }
    o->cfg = *cfg;
    o->n = n;
    o->p = xcalloc((size_t)(n ? n : 1), sizeof *o->p);
    o->g = xcalloc((size_t)(n ? n : 1), sizeof *o->g);
    o->len = xcalloc((size_t)(n ? n : 1), sizeof *o->len);
    for (int i = 0; i < n; i++) {
        if (!params[i] || !grads[i] || len[i] < 0) {
            err_set(err, CIS_EINVAL, "optim: tensor %d has no data or a negative length", i);
            optim_free(&o);
            return NULL;
        }
        o->p[i] = params[i];
        o->g[i] = (float *)grads[i];
        o->len[i] = len[i];
        o->total += len[i];
    }
    size_t bytes = (size_t)(o->total ? o->total : 1) * sizeof(float);
    o->m = backend_alloc(o->be, bytes, err);
    o->v = o->m ? backend_alloc(o->be, bytes, err) : NULL;
    if (!o->v) {
        err_prefix(err, "optimizer moments of %lld parameters", (long long)o->total);
        optim_free(&o);
        return NULL;
    }
    backend_memset(o->be, o->m, 0, bytes);
    backend_memset(o->be, o->v, 0, bytes);
    return o;
}

void optim_free(optim **op) {
    if (!op || !*op) return;
    optim *o = *op;
    free(o->p); free(o->g); free(o->len);
    if (o->be) { backend_free(o->be, o->m); backend_free(o->be, o->v); }
    if (o->own_be) backend_close(&o->be);
    free(o);
    *op = NULL;
}

void optim_step(optim *o, float lr) {
    o->step++;
    adam_params ap = {.variant = o->cfg.variant, .lr = lr >= 0 ? lr : o->cfg.lr, .beta1 = o->cfg.beta1,
                      .beta2 = o->cfg.beta2, .eps = o->cfg.eps, .weight_decay = o->cfg.weight_decay, .step = o->step};
    int64_t off = 0;
    for (int i = 0; i < o->n; i++) {
        BE(o->be, adam_step, o->p[i], o->g[i], o->m + off, o->v + off, o->len[i], &ap);
        off += o->len[i];
    }
}

int64_t optim_steps(const optim *o) { return o->step; }

void optim_reset(optim *o) {
    backend_memset(o->be, o->m, 0, (size_t)o->total * sizeof(float));
    backend_memset(o->be, o->v, 0, (size_t)o->total * sizeof(float));
    o->step = 0;
}

double optim_grad_norm(const optim *o) {
    double s = 0.0;
    for (int i = 0; i < o->n; i++) s += BE(o->be, sumsq, o->g[i], o->len[i]);
    return sqrt(s);
}

double optim_clip_grad_norm(optim *o, double max_norm) {
    double norm = optim_grad_norm(o);
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0)
        for (int i = 0; i < o->n; i++) BE(o->be, scale, o->g[i], (float)coef, o->len[i]);
    return norm;
}
