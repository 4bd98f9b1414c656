/* calib.c - calibration activations gathered layer by layer (see calib.h). */
#include "worker/interventions/calib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void calib_data_init(calib_data *d, int n_seq, int T) {
    CIS_ASSERT(n_seq > 0 && T > 0);
    d->n_seq = n_seq;
    d->T = T;
    d->ids = xcalloc((size_t)n_seq * T, sizeof *d->ids);
    d->lens = xcalloc((size_t)n_seq, sizeof *d->lens);
    for (int s = 0; s < n_seq; s++) d->lens[s] = T;
}

void calib_data_clear(calib_data *d) {
    free(d->ids);
    free(d->lens);
    memset(d, 0, sizeof *d);
}

struct calib_walk {
    llama_model *m;
    const calib_data *d;
    const interv_ctx *ctx;
    int chunk;              /* sequences per layer run */
    int layer;              /* the layer whose input x holds */
    int D;
    float *x;               /* [n_seq*T, D] the stream */
    float *y;               /* [n_seq*T, D] the output of the last collect */
    float *y_full;          /* [n_seq*T, D] where a peek's output goes under calib_set_full_runs (else NULL) */
    int y_layer;            /* the layer y belongs to (-1 = none) */
    float *reads[5];        /* [chunk*T, width] hook read buffers, one per point */
    float *rstd;            /* [chunk*T] rmsnorm scratch (calib_walk_collect_norm_in) */
};

static void *alloc_floats(size_t n) { return malloc(n * sizeof(float)); }

static bool full_runs; /* calib_set_full_runs */
void calib_set_full_runs(bool on) { full_runs = on; }

int calib_walk_new(llama_model *m, const calib_data *d, int chunk, const interv_ctx *ctx, calib_walk **out,
                   cis_err *err) {
    *out = NULL;
    if (!m || !d || d->n_seq <= 0 || d->T <= 0 || !d->ids || !d->lens)
        return err_set(err, CIS_EINVAL, "calibration: no sequences");
    const llama_config *cfg = llama_model_config(m);
    calib_walk *w = xcalloc(1, sizeof *w);
    w->m = m;
    w->d = d;
    w->ctx = ctx;
    w->chunk = chunk <= 0 || chunk > d->n_seq ? d->n_seq : chunk;
    w->D = cfg->hidden_size;
    w->y_layer = -1;
    size_t rows = (size_t)d->n_seq * d->T;
    w->x = alloc_floats(rows * w->D);
    w->y = alloc_floats(rows * w->D);
    if (!w->x || !w->y) {
        calib_walk_destroy(&w);
        return err_set(err, CIS_ENOMEM, "calibration: out of memory for %zu x %d activations", rows, cfg->hidden_size);
    }
    if (llama_embed(m, d->n_seq, d->T, d->ids, d->lens, w->x, err)) {
        err_prefix(err, "calibration");
        calib_walk_destroy(&w);
        return -1;
    }
    *out = w;
    return 0;
}

void calib_walk_destroy(calib_walk **wp) {
    if (!wp || !*wp) return;
    calib_walk *w = *wp;
    free(w->x);
    free(w->y);
    free(w->y_full);
    for (int i = 0; i < 5; i++) free(w->reads[i]);
    free(w->rstd);
    free(w);
    *wp = NULL;
}

int calib_walk_layer(const calib_walk *w) { return w->layer; }
const float *calib_walk_stream(const calib_walk *w) { return w->x; }

/* move the real token rows of sequences [s0, s0+B) to the front of buf (in place: a row only ever
 * moves towards the start); returns their count */
static int compact_rows(float *buf, const int32_t *lens, int B, int T, int width) {
    int n = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < lens[b]; t++, n++)
            if (n != b * T + t) memmove(buf + (size_t)n * width, buf + ((size_t)b * T + t) * width, (size_t)width * sizeof(float));
    return n;
}

static bool stop_requested(const calib_walk *w) { return w->ctx && interv_should_stop(w->ctx); }

/* run the current layer on sequences [s0, s0+B), reading the points: the whole layer into dst
 * ([n_seq*T, D]: y, or y_full), or only through the last of the points (dst NULL) */
static int run_chunk(calib_walk *w, int s0, int B, const llama_hook_point *points, int n_points, float *dst,
                     cis_err *err) {
    const calib_data *d = w->d;
    llama_hook hooks[5];
    memset(hooks, 0, sizeof hooks);
    for (int k = 0; k < n_points; k++) {
        int width = llama_hook_width(w->m, points[k]);
        if (!w->reads[points[k]] && !(w->reads[points[k]] = alloc_floats((size_t)w->chunk * d->T * width)))
            return err_set(err, CIS_ENOMEM, "calibration: out of memory for the activations at point %d", (int)points[k]);
        hooks[k] = (llama_hook){.layer = w->layer, .point = points[k], .mode = LLAMA_HOOK_READ, .n_pos = -1,
                                .read = w->reads[points[k]]};
    }
    size_t off = (size_t)s0 * d->T * w->D;
    llama_hook_point last = LLAMA_HOOK_A;
    for (int k = 0; k < n_points; k++) last = points[k] > last ? points[k] : last;
    int rc = dst ? llama_layer_run(w->m, w->layer, B, d->T, d->lens + s0, w->x + off, dst + off, hooks, n_points, err)
                 : llama_layer_run_to(w->m, w->layer, last, B, d->T, d->lens + s0, w->x + off, hooks, n_points, err);
    if (rc) {
        err_prefix(err, "calibration, layer %d", w->layer);
        return -1;
    }
    return 0;
}

/* collect (out: the whole layer, its output kept) or peek (!out: through the last point only) */
static int walk_points(calib_walk *w, const llama_hook_point *points, int n_points, calib_visit_fn visit, void *arg,
                       bool out, cis_err *err) {
    const calib_data *d = w->d;
    int L = llama_model_config(w->m)->num_hidden_layers;
    if (w->layer >= L) return err_set(err, CIS_EINVAL, "calibration: every layer was passed already (%d)", L);
    if (n_points < (out ? 0 : 1) || n_points > 5 || (n_points > 0 && (!points || !visit)))
        return err_set(err, CIS_EINVAL, "calibration: expected %d..5 hook points and a visit function", out ? 0 : 1);
    for (int k = 0; k < n_points; k++) {
        if ((int)points[k] < LLAMA_HOOK_A || points[k] > (out ? LLAMA_HOOK_E : LLAMA_HOOK_D))
            return err_set(err, CIS_EINVAL, "calibration: hook point %d is not one of A..%c", (int)points[k], out ? 'E' : 'D');
        for (int j = 0; j < k; j++)
            if (points[j] == points[k]) return err_set(err, CIS_EINVAL, "calibration: hook point %d twice", (int)points[k]);
    }
    float *dst = out ? w->y : NULL;
    if (!out && full_runs) {
        if (!w->y_full && !(w->y_full = alloc_floats((size_t)d->n_seq * d->T * w->D)))
            return err_set(err, CIS_ENOMEM, "calibration: out of memory (full-run output)");
        dst = w->y_full;
    }
    if (out) w->y_layer = -1;
    for (int s0 = 0; s0 < d->n_seq; s0 += w->chunk) {
        if (stop_requested(w)) return err_set(err, CIS_ECANCEL, "stopped on request (calibration, layer %d)", w->layer);
        int B = d->n_seq - s0 < w->chunk ? d->n_seq - s0 : w->chunk;
        if (run_chunk(w, s0, B, points, n_points, dst, err)) return -1;
        for (int k = 0; k < n_points; k++) {
            int width = llama_hook_width(w->m, points[k]);
            int rows = compact_rows(w->reads[points[k]], d->lens + s0, B, d->T, width);
            if (visit(arg, w->layer, points[k], s0, w->reads[points[k]], rows, width, err)) return -1;
        }
    }
    if (out) w->y_layer = w->layer;
    return 0;
}

int calib_walk_collect(calib_walk *w, const llama_hook_point *points, int n_points, calib_visit_fn visit, void *arg,
                       cis_err *err) {
    return walk_points(w, points, n_points, visit, arg, true, err);
}

int calib_walk_peek(calib_walk *w, const llama_hook_point *points, int n_points, calib_visit_fn visit, void *arg,
                    cis_err *err) {
    return walk_points(w, points, n_points, visit, arg, false, err);
}

int calib_walk_next(calib_walk *w, int how, cis_err *err) {
    int L = llama_model_config(w->m)->num_hidden_layers;
    if (w->layer >= L) return err_set(err, CIS_EINVAL, "calibration: every layer was passed already (%d)", L);
    if (how == CALIB_KEEP_OUTPUT && w->y_layer != w->layer)
        return err_set(err, CIS_EINVAL, "calibration: no collect ran on layer %d to keep the output of", w->layer);
    if (how != CALIB_KEEP_OUTPUT) {
        for (int s0 = 0; s0 < w->d->n_seq; s0 += w->chunk) {
            if (stop_requested(w)) return err_set(err, CIS_ECANCEL, "stopped on request (calibration, layer %d)", w->layer);
            int B = w->d->n_seq - s0 < w->chunk ? w->d->n_seq - s0 : w->chunk;
            if (run_chunk(w, s0, B, NULL, 0, w->y, err)) return -1;
        }
    }
    float *t = w->x;
    w->x = w->y;
    w->y = t;
    w->layer++;
    w->y_layer = -1;
    return 0;
}

int calib_walk_collect_norm_in(calib_walk *w, calib_visit_fn visit, void *arg, cis_err *err) {
    const calib_data *d = w->d;
    const llama_config *cfg = llama_model_config(w->m);
    if (w->layer >= cfg->num_hidden_layers)
        return err_set(err, CIS_EINVAL, "calibration: every layer was passed already (%d)", cfg->num_hidden_layers);
    if (!visit) return err_set(err, CIS_EINVAL, "calibration: expected a visit function");
    char name[96];
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", w->layer);
    int pi = llama_model_find(w->m, name);
    if (pi < 0) return err_set(err, CIS_EINVAL, "calibration: the model has no %s", name);
    const float *lnw = llama_model_params(w->m, &(int){0})[pi].data;
    size_t rows = (size_t)w->chunk * d->T;
    if (!w->reads[LLAMA_HOOK_A] && !(w->reads[LLAMA_HOOK_A] = alloc_floats(rows * w->D)))
        return err_set(err, CIS_ENOMEM, "calibration: out of memory for the activations at point %d", (int)LLAMA_HOOK_A);
    if (!w->rstd && !(w->rstd = alloc_floats(rows)))
        return err_set(err, CIS_ENOMEM, "calibration: out of memory (rmsnorm scratch)");
    backend *be = llama_model_backend(w->m);
    w->y_layer = -1;
    for (int s0 = 0; s0 < d->n_seq; s0 += w->chunk) {
        if (stop_requested(w)) return err_set(err, CIS_ECANCEL, "stopped on request (calibration, layer %d)", w->layer);
        int B = d->n_seq - s0 < w->chunk ? d->n_seq - s0 : w->chunk;
        float *a = w->reads[LLAMA_HOOK_A];
        BE(be, rmsnorm_fwd, a, w->rstd, w->x + (size_t)s0 * d->T * w->D, lnw, B * d->T, w->D, cfg->rms_norm_eps);
        int n = compact_rows(a, d->lens + s0, B, d->T, w->D);
        if (visit(arg, w->layer, LLAMA_HOOK_A, s0, a, n, w->D, err)) return -1;
    }
    return 0;
}
