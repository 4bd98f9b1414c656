/* lora.c - `lora`: the LoRA knowledge editor as the paper ran it (EasyEdit's LoRA editor through
 * composable-interventions; ../shared/docs/algorithms.md §7.1, fidelity.md §6), adapters merged
 * into the weights at the end.
 *
 * type "adalora" (the default, what the paper ran): peft AdaLoRA with the rank allocator never
 * called, i.e. a fixed SVD-form adapter on each target projection of every layer:
 *     W = W0 + s B diag(E) A,   A [r, in] ~ N(0, 0.02²), B [out, r] ~ N(0, 0.02²), E [r] = 0,
 *     s = alpha / (r + 1e-5)    (r = init_r = 12: the paper's scale 32/12)
 * and the loss gets peft's orthogonality penalty orth_reg · (1/P) Σ ||G - I||_F over the P A and
 * B matrices (G = A Aᵀ for A, Bᵀ B for B; Frobenius norm, not squared).
 * type "lora": plain LoRA, W = W0 + (alpha / r) B A, A ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming
 * uniform a = sqrt 5), B = 0, no penalty.
 * Objective: the HF causal-LM loss on prompt + " " + target with the prompt positions masked: the
 * mean cross-entropy over every target token of the batch (all edits in one batch), Adam
 * (torch.optim.Adam, weight decay 0) at lr 5e-3 for 70 steps, dropout 0. The tiny family (hidden
 * size < 1024) runs 60 steps at 5.83e-3 (lr x steps kept; results epoch 8; docs/editing.md "Tiny
 * presets measured"), each noted in the effective params' tiny_preset.
 *
 * How: the adapter's product is merged into the weight before every forward (the weight is the
 * trainable parameter), and its gradient dW is projected onto the factors (engine.md, "LoRA and
 * other reparametrisations"): with M = diag(E) A, dB = s dW Mᵀ, dM = s Bᵀ dW, dA = diag(E) dM,
 * dE_i = Σ_j dM_ij A_ij (plain: dB = s dW Aᵀ, dA = s Bᵀ dW). The factors are the shared training
 * loop's tensors (step mode); after every step the weights are re-merged, so at the end the model
 * holds W0 + s B diag(E) A: the merged model.
 *
 * Record: edit_set, n_edits, records, type, rank, scale, adapted (parameter names), steps,
 * loss_first, loss_last (CE + penalty), orth_penalty_last, delta_norm (Σ over the adapted
 * weights, Frobenius); phases "prepare", "train". */
#include "worker/interventions/methods.h"
#include "worker/interventions/edit_common.h"
#include "worker/interventions/lora.h"
#include "worker/train/train_loop.h"
#include "worker/engine/backend.h"
#include "common/rng.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int lora_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    const char *targets = json_string_value(json_object_get(params, "targets"));
    if (!targets || !*targets) return err_set(err, CIS_EINVAL, "params.targets: expected projection names such as \"q_proj,v_proj\"");
    /* the tiny family's step budget, with the lr scaled for it; only when the steps are the paper's
     * (a given step count keeps the given lr), each value replaced only when it is the paper's */
    json_t *st = json_object_get(params, "steps");
    if (json_is_integer(st) && json_integer_value(st) == LORA_PAPER_STEPS) {
        edit_tiny_override(cfg, params, "steps", LORA_PAPER_STEPS, LORA_TINY_STEPS);
        edit_tiny_override(cfg, params, "lr", LORA_PAPER_LR, LORA_TINY_LR);
    }
    return 0;
}

double lora_orth_penalty(const float *A, int rows, int cols, bool gram_rows, float *grad, double gscale) {
    /* G = A Aᵀ (rows x rows) when gram_rows, else Aᵀ A (cols x cols) */
    int n = gram_rows ? rows : cols;
    double *G = calloc((size_t)n * n, sizeof *G);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            if (gram_rows) for (int k = 0; k < cols; k++) s += (double)A[i * cols + k] * A[j * cols + k];
            else for (int k = 0; k < rows; k++) s += (double)A[k * cols + i] * A[k * cols + j];
            G[i * n + j] = s - (i == j);
        }
    double f = 0;
    for (int i = 0; i < n * n; i++) f += G[i] * G[i];
    f = sqrt(f);
    if (grad && f > 0) {
        /* d||G - I||/dA = 2 (G - I) A / f (rows gram), 2 A (G - I) / f (cols gram) */
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) {
                double s = 0;
                if (gram_rows) for (int k = 0; k < rows; k++) s += G[r * n + k] * A[k * cols + c];
                else for (int k = 0; k < cols; k++) s += (double)A[r * cols + k] * G[k * n + c];
                grad[r * cols + c] += (float)(gscale * 2.0 * s / f);
            }
    }
    free(G);
    return f;
}

void lora_project(const float *dW, const float *A, const float *B, const float *E, int out, int in, int r, double s,
                  bool ada, float *dA, float *dB, float *dE, float *scratch) {
    float *M = scratch;   /* M = diag(E) A [r, in], then dM */
    for (int i = 0; i < r; i++)
        for (int j = 0; j < in; j++) M[i * in + j] = (ada ? E[i] : 1.0f) * A[i * in + j];
    /* dB = s dW Mᵀ [out, r] */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, out, r, in, (float)s, dW, in, M, in, 0.0f, dB, r);
    /* dM = s Bᵀ dW [r, in] */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, out, (float)s, B, r, dW, in, 0.0f, M, in);
    for (int i = 0; i < r; i++) {
        double de = 0;
        for (int j = 0; j < in; j++) {
            dA[i * in + j] = (ada ? E[i] : 1.0f) * M[i * in + j];
            de += (double)M[i * in + j] * A[i * in + j];
        }
        if (dE) dE[i] = ada ? (float)de : 0.0f;
    }
}

typedef struct lora_mat {
    int pi;              /* parameter index */
    int out, in;
    float *W0;           /* [out, in] host */
    float *A, *B, *E;    /* backend memory: [r, in], [out, r], [r] */
    float *gA, *gB, *gE; /* their gradients (backend memory) */
} lora_mat;

typedef struct lora_run {
    interv_ctx *c;
    llama_model *m;
    bool ada;
    int r, n;
    double s, orth;
    lora_mat *mats;
    edit_batch eb;
    float *hA, *hB, *hE, *hW, *hG, *hM, *t1, *t2;   /* host scratch */
    double orth_last;
} lora_run;

/* W = W0 + s B diag(E) A for matrix k */
static int merge_one(lora_run *L, lora_mat *x, cis_err *err) {
    backend *be = llama_model_backend(L->m);
    int r = L->r;
    backend_download(be, L->hA, x->A, (size_t)r * x->in * sizeof(float));
    backend_download(be, L->hB, x->B, (size_t)x->out * r * sizeof(float));
    backend_download(be, L->hE, x->E, (size_t)r * sizeof(float));
    for (int i = 0; i < r; i++)
        for (int j = 0; j < x->in; j++) L->hM[i * x->in + j] = (L->ada ? L->hE[i] : 1.0f) * L->hA[i * x->in + j];
    memcpy(L->hW, x->W0, (size_t)x->out * x->in * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, x->out, x->in, r, (float)L->s, L->hB, r, L->hM, x->in, 1.0f,
                L->hW, x->in);
    return llama_model_param_set(L->m, x->pi, L->hW, err);
}

static int lora_merge_all(void *arg, int64_t step, cis_err *err) {
    lora_run *L = arg;
    for (int k = 0; k < L->n; k++)
        if (merge_one(L, &L->mats[k], err)) return -1;
    return 0;
}

static int lora_step(void *arg, const train_step_info *si, double *loss, cis_err *err) {
    lora_run *L = arg;
    if (interv_should_stop(L->c)) return err_set(err, CIS_ECANCEL, "stopped on request");
    backend *be = llama_model_backend(L->m);
    llama_model_zero_grad(L->m);
    llama_batch b = {.B = L->eb.B, .T = L->eb.T, .ids = L->eb.ids, .lens = L->eb.lens, .targets = L->eb.targets};
    double ce = 0;
    if (llama_forward(L->m, &b, NULL, 0, true, &ce, err)) return -1;
    if (llama_backward(L->m, si->loss_scale, NULL, err)) return -1;
    int r = L->r;
    double pen = 0;
    int P = 2 * L->n;
    for (int k = 0; k < L->n; k++) {
        lora_mat *x = &L->mats[k];
        size_t na = (size_t)r * x->in, nb = (size_t)x->out * r;
        backend_download(be, L->hG, llama_model_grad(L->m, x->pi), (size_t)x->out * x->in * sizeof(float));
        backend_download(be, L->hA, x->A, na * sizeof(float));
        backend_download(be, L->hB, x->B, nb * sizeof(float));
        backend_download(be, L->hE, x->E, (size_t)r * sizeof(float));
        float *dB = L->t1, *dA = L->t2;
        float dE[64];
        lora_project(L->hG, L->hA, L->hB, L->hE, x->out, x->in, r, L->s, L->ada, dA, dB, dE, L->hM);
        if (L->ada && L->orth > 0) {
            double gs = si->loss_scale * L->orth / P;
            pen += lora_orth_penalty(L->hA, r, x->in, true, dA, gs);
            pen += lora_orth_penalty(L->hB, x->out, r, false, dB, gs);
        }
        backend_upload(be, x->gA, dA, na * sizeof(float));
        backend_upload(be, x->gB, dB, nb * sizeof(float));
        backend_upload(be, x->gE, dE, (size_t)r * sizeof(float));
    }
    L->orth_last = L->ada && L->orth > 0 ? pen / P : 0;
    *loss = ce + L->orth * L->orth_last;
    return 0;
}

static int lora_progress(void *arg, const train_progress *p) {
    lora_run *L = arg;
    interv_progress(L->c, p->frac);
    return interv_should_stop(L->c) ? 1 : 0;
}

int lora_apply(interv_ctx *c, cis_err *err) {
    llama_model *m = c->model;
    const llama_config *cfg = llama_model_config(m);
    backend *be = llama_model_backend(m);
    lora_run L = {.c = c, .m = m};
    L.ada = !strcmp(interv_param_str(c, "type"), "adalora");
    L.r = (int)interv_param_int(c, "rank");
    double alpha = interv_param_float(c, "alpha");
    L.s = L.ada ? alpha / (L.r + 1e-5) : alpha / L.r;
    L.orth = L.ada ? interv_param_float(c, "orth_reg") : 0;
    edit_requests q = {0};
    int rc = -1;
    json_t *adapted = json_array();
    if (L.r > 64) { err_set(err, CIS_EINVAL, "params.rank: %d is more than this build's 64", L.r); goto out; }
    interv_phase_begin(c->record, "prepare");
    if (edit_requests_load(c->data_dir, c->edit_set, &q, err)) goto out;
    const char **pr = xcalloc((size_t)q.n, sizeof *pr), **tg = xcalloc((size_t)q.n, sizeof *tg);
    for (int i = 0; i < q.n; i++) { pr[i] = q.r[i].prompt; tg[i] = q.r[i].target; }
    int brc = edit_batch_build(c->tok, q.n, pr, tg, cfg->max_position_embeddings, &L.eb, err);
    free(pr); free(tg);
    if (brc) goto out;

    /* the adapted weights: each target projection of every layer */
    char *targets = xstrdup(interv_param_str(c, "targets"));
    int np;
    llama_param *p = llama_model_params(m, &np);
    L.mats = xcalloc((size_t)np, sizeof *L.mats);
    llama_model_freeze_all(m);
    int maxo = 1, maxi = 1;
    for (int l = 0; l < cfg->num_hidden_layers; l++) {
        char *save = NULL, *t = xstrdup(targets);
        for (char *tk = strtok_r(t, ",", &save); tk; tk = strtok_r(NULL, ",", &save)) {
            while (*tk == ' ') tk++;
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.self_attn.%s.weight", l, tk);
            int pi = llama_model_find(m, name);
            if (pi < 0) {
                snprintf(name, sizeof name, "model.layers.%d.mlp.%s.weight", l, tk);
                pi = llama_model_find(m, name);
            }
            if (pi < 0) {
                err_set(err, CIS_EINVAL, "params.targets: \"%s\" names no projection of this model (q_proj, k_proj, "
                        "v_proj, o_proj, gate_proj, up_proj, down_proj)", tk);
                free(t); free(targets);
                goto out;
            }
            lora_mat *x = &L.mats[L.n++];
            x->pi = pi;
            x->out = (int)p[pi].shape[0];
            x->in = (int)p[pi].shape[1];
            if (x->out > maxo) maxo = x->out;
            if (x->in > maxi) maxi = x->in;
            llama_model_set_trainable(m, name, -1, -1, true, err);
            json_array_append_new(adapted, json_string(name));
        }
        free(t);
    }
    free(targets);
    size_t big = (size_t)maxo * maxi;
    L.hW = xmalloc(big * sizeof(float));
    L.hG = xmalloc(big * sizeof(float));
    L.hA = xmalloc((size_t)L.r * maxi * sizeof(float));
    L.hM = xmalloc((size_t)L.r * maxi * sizeof(float));
    L.hB = xmalloc((size_t)maxo * L.r * sizeof(float));
    L.hE = xmalloc((size_t)L.r * sizeof(float));
    L.t1 = xmalloc((size_t)maxo * L.r * sizeof(float));
    L.t2 = xmalloc((size_t)L.r * maxi * sizeof(float));
    float **params = xcalloc((size_t)3 * L.n, sizeof *params), **grads = xcalloc((size_t)3 * L.n, sizeof *grads);
    int64_t *lens = xcalloc((size_t)3 * L.n, sizeof *lens);
    rng_xoshiro rg;
    rng_xoshiro_seed(&rg, c->seed, 0x6c6f7261ULL /* "lora" */);
    bool ok = true;
    for (int k = 0; k < L.n && ok; k++) {
        lora_mat *x = &L.mats[k];
        size_t na = (size_t)L.r * x->in, nb = (size_t)x->out * L.r;
        x->W0 = xmalloc((size_t)x->out * x->in * sizeof(float));
        if (llama_model_param_get(m, x->pi, x->W0, err)) { ok = false; break; }
        float **slots[6] = {&x->A, &x->B, &x->E, &x->gA, &x->gB, &x->gE};
        size_t sz[6] = {na, nb, (size_t)L.r, na, nb, (size_t)L.r};
        for (int i = 0; i < 6 && ok; i++) {
            *slots[i] = backend_alloc(be, sz[i] * sizeof(float), err);
            if (!*slots[i]) ok = false;
            else backend_memset(be, *slots[i], 0, sz[i] * sizeof(float));
        }
        if (!ok) break;
        /* init: AdaLoRA A, B ~ N(0, 0.02²), E = 0; LoRA A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0 */
        for (size_t i = 0; i < na; i++) {
            double u1 = ((rng_xoshiro_next(&rg) >> 11) + 0.5) * 0x1.0p-53, u2 = (rng_xoshiro_next(&rg) >> 11) * 0x1.0p-53;
            L.hA[i] = L.ada ? (float)(0.02 * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2))
                            : (float)((2 * u2 - 1) / sqrt((double)x->in));
        }
        for (size_t i = 0; i < nb; i++) {
            double u1 = ((rng_xoshiro_next(&rg) >> 11) + 0.5) * 0x1.0p-53, u2 = (rng_xoshiro_next(&rg) >> 11) * 0x1.0p-53;
            L.hB[i] = L.ada ? (float)(0.02 * sqrt(-2 * log(u1)) * cos(2 * M_PI * u2)) : 0.0f;
        }
        backend_upload(be, x->A, L.hA, na * sizeof(float));
        backend_upload(be, x->B, L.hB, nb * sizeof(float));
        params[3 * k] = x->A; params[3 * k + 1] = x->B; params[3 * k + 2] = x->E;
        grads[3 * k] = x->gA; grads[3 * k + 1] = x->gB; grads[3 * k + 2] = x->gE;
        lens[3 * k] = (int64_t)na; lens[3 * k + 1] = (int64_t)nb; lens[3 * k + 2] = L.r;
    }
    /* E (AdaLoRA) or B (LoRA) is zero: the merged start equals the base model */
    if (ok && lora_merge_all(&L, 0, err)) ok = false;
    interv_phase_end(c->record);
    train_loop_result res = {0};
    int st = TRAIN_ERROR;
    if (ok) {
        interv_phase_begin(c->record, "train");
        train_loop_cfg tc = train_loop_cfg_default();
        tc.steps = interv_param_int(c, "steps");
        tc.optim = optim_config_default(ADAM_TORCH_ADAM);
        tc.optim.lr = (float)interv_param_float(c, "lr");
        tc.optim.weight_decay = 0;
        tc.progress = lora_progress;
        tc.progress_ctx = &L;
        train_tensors tt = {.n = 3 * L.n, .params = params, .grads = grads, .len = lens};
        train_task task = {.model = m, .tensors = &tt, .step = lora_step, .after_step = lora_merge_all, .ctx = &L};
        st = train_loop_run(&tc, &task, &res, err);
        interv_phase_end(c->record);
    }
    free(params); free(grads); free(lens);
    llama_model_freeze_all(m);
    if (!ok || st == TRAIN_ERROR) {
        if (ok && err->code == CIS_ECANCEL) rc = interv_stopped(c, err);
        goto out;
    }
    if (st == TRAIN_STOPPED || interv_should_stop(c)) { rc = interv_stopped(c, err); goto out; }
    double dn = 0;
    for (int k = 0; k < L.n; k++) {
        lora_mat *x = &L.mats[k];
        if (llama_model_param_get(m, x->pi, L.hW, err)) goto out;
        for (size_t i = 0; i < (size_t)x->out * x->in; i++) dn += ((double)L.hW[i] - x->W0[i]) * ((double)L.hW[i] - x->W0[i]);
    }
    json_t *recs = json_array();
    for (int i = 0; i < q.n; i++) json_array_append_new(recs, json_integer(q.r[i].record));
    interv_record_set_int(c->record, "edit_set", c->edit_set);
    interv_record_set_int(c->record, "n_edits", q.n);
    interv_record_set(c->record, "records", recs);
    interv_record_set_str(c->record, "type", L.ada ? "adalora" : "lora");
    interv_record_set_int(c->record, "rank", L.r);
    interv_record_set_num(c->record, "scale", L.s);
    interv_record_set(c->record, "adapted", adapted);
    adapted = NULL;
    interv_record_set_int(c->record, "steps", res.steps);
    interv_record_set_num(c->record, "loss_first", res.first_loss);
    interv_record_set_num(c->record, "loss_last", res.last_loss);
    interv_record_set_num(c->record, "orth_penalty_last", L.orth_last);
    interv_record_set_num(c->record, "delta_norm", sqrt(dn));
    interv_progress(c, 1.0);
    rc = 0;
out:
    interv_phase_end(c->record);
    json_decref(adapted);
    for (int k = 0; k < L.n; k++) {
        lora_mat *x = &L.mats[k];
        free(x->W0);
        backend_free(be, x->A); backend_free(be, x->B); backend_free(be, x->E);
        backend_free(be, x->gA); backend_free(be, x->gB); backend_free(be, x->gE);
    }
    free(L.mats);
    free(L.hA); free(L.hB); free(L.hE); free(L.hW); free(L.hG); free(L.hM); free(L.t1); free(L.t2);
    edit_batch_clear(&L.eb);
    edit_requests_clear(&q);
    return rc;
}
