/* wanda.c - Wanda (Sun et al. 2023) as composable-interventions runs it (algorithms.md §4,
 * fidelity.md §6): per decoder layer, one pass over the dense layer accumulates the squared
 * column norms of each linear's input (backend op colsumsq_acc: a_j = ‖X_j‖²/N over the N
 * calibration windows), the score S = |W|·sqrt(a) per weight, and every output row keeps all but
 * its floor(k·s) lowest-scoring entries: a stable ascending sort per row, equal scores pruning the
 * lower column first (backend op row_prune); or, with prune_n:prune_m, the n lowest of every
 * aligned m columns. No weight update. The next layer sees the pruned layer's output.
 * Calibration: 128 C4 windows of min(max_pos, 8192) tokens seeded by the job's seed (the edit set).
 *
 * Record: sparsity, prune_n/m, per_row_pruned (floor(k·s) per matrix width), masked, numel,
 * sparsity_masked, calib_*; phases calibrate, statistics, solve (scores and masks), write_back,
 * record (the masks as the stage's record file, cmp_record.h). */
#include "worker/interventions/compress.h"
#include "worker/interventions/cmp_record.h"
#include "worker/interventions/methods.h"

#include <math.h>
#include <stdlib.h>

typedef struct norm_acc {
    backend *be;
    float *a[5];         /* per hook point: [width] Σ x² in backend memory */
    float *stage;
    size_t stage_bytes;
} norm_acc;

static int norm_visit(void *arg, int layer, llama_hook_point point, int first_seq, const float *rows, int n_rows,
                      int width, cis_err *err) {
    norm_acc *a = arg;
    if (n_rows == 0) return 0;
    size_t bytes = (size_t)n_rows * width * sizeof(float);
    if (bytes > a->stage_bytes) {
        backend_free(a->be, a->stage);
        if (!(a->stage = backend_alloc(a->be, bytes, err))) { a->stage_bytes = 0; return -1; }
        a->stage_bytes = bytes;
    }
    backend_upload(a->be, a->stage, rows, bytes);
    BE(a->be, colsumsq_acc, a->a[point], a->stage, n_rows, width);
    return 0;
}

/* the effective params: the calibration, resolved for this model (128 windows of
 * min(max_pos, 8192) tokens; 64 on the tiny family: compress.h) */
int wanda_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    return cmp_calib_preset(cfg, params, 8192, CMP_TINY_N_SAMPLES_WANDA, err);
}

int wanda_apply(interv_ctx *c, cis_err *err) {
    llama_model *m = c->model;
    const llama_config *lc = llama_model_config(m);
    backend *be = llama_model_backend(m);
    double s = interv_param_float(c, "sparsity");
    long long pn = interv_param_int(c, "prune_n"), pm = interv_param_int(c, "prune_m");
    if (cmp_check_sparsity(c, s, pn, pm, err)) return -1;
    if (cmp_require_ops(c->model, err)) return -1;
    int L = lc->num_hidden_layers, np = 0;
    llama_param *P = llama_model_params(m, &np);
    interv_record *rec = c->record;
    calib_data d = {0};
    calib_walk *w = NULL;
    norm_acc acc = {.be = be};
    float *host_w = NULL, *host_s = NULL, *host_a = NULL, *S = NULL;
    int rc = -1;
    int64_t masked = 0, numel = 0;
    const llama_hook_point pts[4] = {LLAMA_HOOK_A, LLAMA_HOOK_B, LLAMA_HOOK_C, LLAMA_HOOK_D};
    int F = lc->intermediate_size, D = lc->hidden_size, HD = lc->num_attention_heads * lc->head_dim;
    int maxw = F > D ? F : D;
    if (HD > maxw) maxw = HD;
    size_t big = (size_t)maxw * maxw;
    json_t *per_row = json_object();

    interv_phase_begin(rec, "calibrate");
    if (cmp_calib_c4(c, (int)cmp_param_int(c, "n_samples", 128), cmp_seqlen(lc, cmp_param_int(c, "seqlen", 0)), c->seed,
                     &d, err))
        goto done;
    if (calib_walk_new(m, &d, 8, c, &w, err)) goto done;
    interv_phase_end(rec);
    host_w = malloc(big * sizeof(float));
    host_s = malloc(big * sizeof(float));
    host_a = malloc((size_t)maxw * sizeof(float));
    if (!host_w || !host_s || !host_a) { err_set(err, CIS_ENOMEM, "out of memory (Wanda scores)"); goto done; }
    if (!(S = backend_alloc(be, big * sizeof(float), err))) goto done;
    for (int t = 0; t < 4; t++) {
        int wd = llama_hook_width(m, pts[t]);
        if (!(acc.a[pts[t]] = backend_alloc(be, (size_t)wd * sizeof(float), err))) goto done;
    }
    for (int l = 0; l < L; l++) {
        interv_phase_begin(rec, "statistics");
        for (int t = 0; t < 4; t++)
            backend_memset(be, acc.a[pts[t]], 0, (size_t)llama_hook_width(m, pts[t]) * sizeof(float));
        /* through point D only: the output comes from calib_walk_next after the pruning */
        if (calib_walk_peek(w, pts, 4, norm_visit, &acc, err)) goto done;
        interv_phase_begin(rec, "solve");
        for (int which = 0; which < CMP_N_LINEARS; which++) {
            if (interv_should_stop(c)) { rc = interv_stopped(c, err); goto done; }
            int pi = cmp_param(m, l, which);
            int rows = (int)P[pi].shape[0], k = (int)P[pi].shape[1];
            backend_download(be, host_a, acc.a[cmp_linears[which].point], (size_t)k * sizeof(float));
            if (llama_model_param_get(m, pi, host_w, err)) goto done;
            for (int j = 0; j < k; j++) host_a[j] = sqrtf(host_a[j] / (float)d.n_seq);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < k; j++)
                    host_s[(size_t)r * k + j] = fabsf(host_w[(size_t)r * k + j]) * host_a[j];
            backend_upload(be, S, host_s, (size_t)rows * k * sizeof(float));
            int n_prune = (int)((double)k * s); /* int(W.shape[1] * sparsity_ratio) */
            masked += BE(be, row_prune, P[pi].data, S, rows, k, n_prune, (int)pn, (int)pm);
            numel += (int64_t)rows * k;
            char key[16];
            snprintf(key, sizeof key, "%d", k);
            json_object_set_new(per_row, key, json_integer(pn ? -1 : n_prune));
        }
        interv_phase_begin(rec, "write_back");
        if (calib_walk_next(w, CALIB_RERUN, err)) goto done;
        interv_phase_end(rec);
        interv_progress(c, (l + 1.0) / L);
    }
    rc = cmp_record_masks(c, err);
done:
    interv_phase_end(rec);
    for (int t = 0; t < 5; t++) backend_free(be, acc.a[t]);
    backend_free(be, acc.stage);
    backend_free(be, S);
    free(host_w); free(host_s); free(host_a);
    calib_walk_destroy(&w);
    if (rc == 0) {
        interv_record_set_num(rec, "sparsity", s);
        interv_record_set_int(rec, "prune_n", pn);
        interv_record_set_int(rec, "prune_m", pm);
        interv_record_set(rec, "per_row_pruned", per_row);
        interv_record_set_int(rec, "masked", masked);
        interv_record_set_int(rec, "numel", numel);
        interv_record_set_num(rec, "sparsity_masked", numel ? (double)masked / numel : 0);
        interv_record_set_int(rec, "calib_windows", d.n_seq);
        interv_record_set_int(rec, "calib_seqlen", d.T);
        interv_record_set_int(rec, "calib_seed", (long long)c->seed);
    } else {
        json_decref(per_row);
    }
    calib_data_clear(&d);
    return rc;
}
