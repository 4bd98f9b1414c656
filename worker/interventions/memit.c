/* memit.c - `memit`: MEMIT mass editing (Meng et al. 2023) as EasyEdit implements it and the paper
 * ran it (../shared/docs/algorithms.md §6, fidelity.md §6): all the edits of the edit set in one
 * batch, into mlp.down_proj of the edited layers.
 *
 *   0. statistics   C_l = E[k kᵀ] of the MLP keys of each edited layer (memit_stats.c: computed
 *                   once per base model and settings, then read from the cache directory);
 *   1. templates    "{}" and five "<sampled text>. {}" from the unedited model (top-5 sampling,
 *                   seeded by the job's seed);
 *   2. values       per edit j, a residual delta δ_j at the output of the last edited layer L*
 *                   (an ADD hook at point E, on the last subject token of each of 6 rewriting
 *                   inputs and 1 KL input), optimised with Adam (lr v_lr) for v_steps iterations
 *                   on NLL(target | T_t(prompt)) + kl_factor KL(P_δ || P_0)("{subject} is a") +
 *                   v_weight_decay ||δ|| / ||h0||², stopping when the loss is < 0.05 or at the
 *                   last iteration (no step there), δ clamped to clamp_norm_factor ||h0|| after
 *                   every step; z_j = h0 + δ_j. The loss is read at the model's output (the loss
 *                   layer is the last layer: the reference's max(31, L*) on a 32-layer model).
 *                   memit_values.c: value_batch 1 = one edit at a time through the whole model;
 *                   0 (auto) / k = k edits per step in one forward + backward of layers L*+1..L-1
 *                   from the residual stream computed once (the same δ's within float rounding);
 *   3. per edited layer l in increasing order (i = 0..N-1):
 *        keys      K = ½[k(T0) + mean_t k(T_t)] at the last subject token, on the current model;
 *        residual  R = (Z - H) / (N - i), H = the layer-L* output at the plain prompts now;
 *        solve     Δ = R Kᵀ (λ C_l + K Kᵀ)⁻¹ in double (memit_solve), λ = mom2_update_weight;
 *        write     W_l += Δ at once (the next layer sees it).
 *
 * Record: edit_set, n_edits, records, edit_layers, z_layer, loss_layer, templates, stats (key,
 * cached/computed layers, tokens, documents, seconds, artifact_root, source "artifact"|"computed",
 * note: why they were computed), values (per edit: loss_first, loss_last,
 * steps, delta_rel = ||δ||/||h0||), value_batch (edits per batch that ran), layers (per layer: delta_norm, resid_norm, ridge (0 unless A was singular), key_fit = ||Δ K - R̃|| / ||R̃||), resid_final
 * (mean ||z - h|| / ||z - h_before|| at L* after the update); phases stats, templates, values,
 * keys, solve, write. */
#include "worker/interventions/methods.h"
#include "worker/interventions/memit.h"
#include "worker/interventions/memit_stats.h"
#include "worker/interventions/edit_common.h"
#include "worker/train/train_loop.h"
#include "worker/engine/backend.h"
#include "common/rng.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MEMIT_TEMPLATE_LEN 10  /* tokens of a sampled template, BOS and seed word included */
#define MEMIT_TOP_K 5

/* the tiny-model preset (docs/editing.md): the statistics weight scaled by the key width relative
 * to Llama-3-8B's (λ C against K Kᵀ: a key's share of tr C is ~1/F, so the same balance needs
 * λ F_tiny / F_8B), and a value optimisation that can reach its targets on a model whose residual
 * stream is ~10x larger per coordinate (v_lr 2). The value steps are the paper's 25 (since results
 * epoch 8; 50 before session 7, 35 in epoch 7: docs/editing.md "Tiny presets measured") */
#define MEMIT_PAPER_LAMBDA 15000.0
#define MEMIT_PAPER_F 14336.0
#define MEMIT_PAPER_VLR 0.5
#define MEMIT_TINY_VLR 2.0

int memit_preset(const llama_config *cfg, json_t *params, cis_err *err) {
    if (edit_preset_layers(cfg, params, err)) return -1;
    edit_tiny_override(cfg, params, "mom2_update_weight", MEMIT_PAPER_LAMBDA,
                       round(MEMIT_PAPER_LAMBDA * cfg->intermediate_size / MEMIT_PAPER_F));
    edit_tiny_override(cfg, params, "v_lr", MEMIT_PAPER_VLR, MEMIT_TINY_VLR);
    json_object_set_new(params, "loss_layer", json_integer(cfg->num_hidden_layers - 1));
    return 0;
}

/* ---- the closed form ------------------------------------------------------------------------- */

int memit_solve(const double *C, const double *K, const double *R, int F, int u, int D, double lambda,
                double *Delta, double *ridge, cis_err *err) {
    memset(Delta, 0, (size_t)D * F * sizeof *Delta);
    if (u == 0) return 0;
    double *A = xmalloc((size_t)F * F * sizeof *A), *X = xmalloc((size_t)F * u * sizeof *X);
    for (size_t i = 0; i < (size_t)F * F; i++) A[i] = lambda * C[i];
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, F, u, 1.0, K, u, 1.0, A, F);   /* A += K Kᵀ */
    memcpy(X, K, (size_t)F * u * sizeof *X);
    int rc = 0;
    /* A singular A (statistics of lower rank than F - u: an undertrained model's keys span a
     * subspace) makes the reference's solve fail or return garbage; here a ridge of eps·mean(diag)
     * is added, eps = 1e-12, 1e-10, ..., 1e-4, until the Cholesky factorisation succeeds (*ridge
     * reports it; 0 when none was needed). */
    double *A0 = xmalloc((size_t)F * F * sizeof *A0), md = 0;
    memcpy(A0, A, (size_t)F * F * sizeof *A0);
    for (int i = 0; i < F; i++) md += A0[(size_t)i * F + i] / F;
    lapack_int info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', F, A, F);
    double eps = 1e-12;
    if (ridge) *ridge = 0;
    while (info != 0 && eps <= 1e-4 && md > 0) {
        memcpy(A, A0, (size_t)F * F * sizeof *A);
        for (int i = 0; i < F; i++) A[(size_t)i * F + i] += eps * md;
        info = LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', F, A, F);
        if (info == 0 && ridge) *ridge = eps * md;
        eps *= 100;
    }
    free(A0);
    if (info != 0) {
        rc = err_set(err, CIS_EINVAL, "MEMIT: lambda C + K Kᵀ is not positive definite even with a ridge of "
                     "1e-4 x its mean diagonal (leading minor %d); the statistics or the keys are degenerate", (int)info);
    } else {
        LAPACKE_dpotrs(LAPACK_ROW_MAJOR, 'L', F, u, A, F, X, u);                         /* X = A⁻¹ K */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, D, F, u, 1.0, R, u, X, u, 0.0, Delta, F);
    }
    free(A);
    free(X);
    return rc;
}

/* a malloc'd copy of the first n bytes of s */
static char *dup_n(const char *s, size_t n) {
    char *o = xmalloc(n + 1);
    memcpy(o, s, n);
    o[n] = 0;
    return o;
}

/* ---- context templates ------------------------------------------------------------------------ */

static char *str_replace_all(const char *s, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to), cap = strlen(s) * (tl > fl ? tl : 1) + 1, w = 0;
    char *o = xmalloc(cap + 1);
    while (*s) {
        if (!strncmp(s, from, fl)) { memcpy(o + w, to, tl); w += tl; s += fl; }
        else o[w++] = *s++;
    }
    o[w] = 0;
    return o;
}

int memit_context_templates(llama_model *m, const tokenizer *tok, uint64_t seed, char *out[MEMIT_N_TEMPLATES],
                            cis_err *err) {
    static const char *WORDS[] = {"The", "Therefore", "Because", "I", "You"};
    int V = llama_model_config(m)->vocab_size;
    rng_xoshiro r;
    rng_xoshiro_seed(&r, seed, 0x6d656d6974ULL /* "memit" */);
    float *logits = xmalloc((size_t)V * sizeof *logits);
    memset(out, 0, MEMIT_N_TEMPLATES * sizeof *out);
    out[0] = xstrdup("{}");
    for (int w = 0; w < 5; w++) {
        int32_t *ids0 = NULL, ids[MEMIT_TEMPLATE_LEN];
        int n = 0;
        if (edit_tokens(tok, WORDS[w], true, &ids0, &n, err)) goto fail;
        if (n > MEMIT_TEMPLATE_LEN) n = MEMIT_TEMPLATE_LEN;
        memcpy(ids, ids0, (size_t)n * sizeof *ids);
        free(ids0);
        while (n < MEMIT_TEMPLATE_LEN) {
            int32_t ob = 0, ot = n - 1;
            llama_batch b = {.B = 1, .T = n, .ids = ids, .n_out = 1, .out_b = &ob, .out_t = &ot, .logits = logits};
            if (llama_forward(m, &b, NULL, 0, false, NULL, err)) goto fail;
            /* top-5 (ties to the lower id), softmax over them, one draw */
            int top[MEMIT_TOP_K];
            for (int k = 0; k < MEMIT_TOP_K; k++) {
                int best = -1;
                for (int v = 0; v < V; v++) {
                    bool used = false;
                    for (int q = 0; q < k; q++) used |= top[q] == v;
                    if (!used && (best < 0 || logits[v] > logits[best])) best = v;
                }
                top[k] = best;
            }
            double p[MEMIT_TOP_K], s = 0;
            for (int k = 0; k < MEMIT_TOP_K; k++) s += p[k] = exp((double)logits[top[k]] - logits[top[0]]);
            double x = (double)(rng_xoshiro_next(&r) >> 11) * 0x1.0p-53 * s;
            int pick = MEMIT_TOP_K - 1;
            for (int k = 0; k < MEMIT_TOP_K; k++) {
                if (x < p[k]) { pick = k; break; }
                x -= p[k];
            }
            ids[n++] = top[pick];
        }
        char *text = NULL;
        if (tokenizer_decode(tok, ids, (size_t)n, true, &text)) {
            err_set(err, CIS_EINVAL, "MEMIT: could not decode a sampled context template");
            goto fail;
        }
        char *a = str_replace_all(text, "\n\n", " "), *b2 = str_replace_all(a, "{", " "), *c2 = str_replace_all(b2, "}", " ");
        out[1 + w] = xasprintf("%s. {}", c2);
        free(text); free(a); free(b2); free(c2);
    }
    free(logits);
    return 0;
fail:
    free(logits);
    for (int i = 0; i < MEMIT_N_TEMPLATES; i++) { free(out[i]); out[i] = NULL; }
    return -1;
}

/* first occurrence of the subject in the prompt; -1 when absent */
static long subject_pos(const edit_request *r) {
    const char *p = strstr(r->prompt, r->subject);
    return p ? (long)(p - r->prompt) : -1;
}

int memit_apply(interv_ctx *c, cis_err *err) {
    llama_model *m = c->model;
    const llama_config *cfg = llama_model_config(m);
    int D = cfg->hidden_size, F = cfg->intermediate_size;
    int N = 0;
    int *layers = edit_param_layers(c, &N);
    int zl = layers[N - 1];
    double lambda = interv_param_float(c, "mom2_update_weight");
    int n_samples = (int)interv_param_int(c, "mom2_n_samples");
    edit_requests q = {0};
    char *tmpl[MEMIT_N_TEMPLATES] = {0};
    float **C = xcalloc((size_t)N, sizeof *C);
    float *Z = NULL;
    int32_t *kids = NULL, *klens = NULL, *kpb = NULL, *kpt = NULL;
    float *kread = NULL, *hread = NULL;
    double *Kd = NULL, *Rd = NULL, *Cd = NULL, *Dd = NULL;
    float *W = NULL;
    memit_value_in *vin = NULL;
    memit_value_res *vres = NULL;
    int rc = -1, u = 0;
    json_t *vals = json_array(), *lrec = json_array();

    interv_phase_begin(c->record, "prepare");
    if (edit_requests_load(c->data_dir, c->edit_set, &q, err)) goto out;
    u = q.n;
    for (int i = 0; i < u; i++)
        if (subject_pos(&q.r[i]) < 0) {
            err_set(err, CIS_EINVAL, "edit set %d, zsRE record %d: subject \"%s\" does not occur in src \"%s\" "
                    "(MEMIT needs the subject's last token)", c->edit_set, q.r[i].record, q.r[i].subject,
                    q.r[i].prompt);
            goto out;
        }
    llama_model_freeze_all(m);

    /* 0. statistics */
    interv_phase_begin(c->record, "stats");
    memit_stats_info si;
    if (memit_stats_get(c, layers, N, n_samples, C, &si, err)) goto out;
    json_t *st = json_object();
    json_object_set_new(st, "key", json_string(si.key));
    json_object_set_new(st, "cached_layers", json_integer(si.n_cached));
    json_object_set_new(st, "computed_layers", json_integer(si.n_computed));
    json_object_set_new(st, "n_tokens", json_integer(si.n_tokens));
    json_object_set_new(st, "n_docs", json_integer(si.n_docs));
    json_object_set_new(st, "seconds", json_real(si.seconds));
    /* where they came from: the shared artifact cache (the sweep's prerequisite job wrote them) or
     * computed here, and why */
    json_object_set_new(st, "artifact_root", c->cache_dir ? json_string(c->cache_dir) : json_null());
    json_object_set_new(st, "source", json_string(si.n_computed == 0 ? "artifact" : "computed"));
    if (si.n_computed > 0) {
        char *why = c->cache_dir
                        ? xasprintf("%d of %d layers were not in the artifact cache %s (its prerequisite job did not "
                                    "write there, failed, or the cache was wiped): computed here and published",
                                    si.n_computed, N, c->cache_dir)
                        : xasprintf("no artifact cache given: computed here, not kept");
        json_object_set_new(st, "note", json_string(why));
        free(why);
    }
    interv_record_set(c->record, "stats", st);
    interv_progress(c, 0.1);

    /* 1. context templates */
    interv_phase_begin(c->record, "templates");
    if (memit_context_templates(m, c->tok, c->seed, tmpl, err)) goto out;
    json_t *tj = json_array();
    for (int t = 0; t < MEMIT_N_TEMPLATES; t++) json_array_append_new(tj, json_string(tmpl[t]));
    interv_record_set(c->record, "templates", tj);

    /* 2. target values z_j (memit_values.c) */
    interv_phase_begin(c->record, "values");
    Z = xmalloc((size_t)u * D * sizeof *Z);
    vin = xcalloc((size_t)u, sizeof *vin);
    vres = xcalloc((size_t)u, sizeof *vres);
    for (int e = 0; e < u; e++)
        if (memit_value_inputs(c->tok, &q.r[e], tmpl, &vin[e], err)) goto out;
    memit_value_opts vo = {.z_layer = zl, .steps = (int)interv_param_int(c, "v_steps"),
                           .lr = interv_param_float(c, "v_lr"), .kl_factor = interv_param_float(c, "kl_factor"),
                           .weight_decay = interv_param_float(c, "v_weight_decay"),
                           .clamp = interv_param_float(c, "clamp_norm_factor"), .stop_loss = MEMIT_STOP_LOSS,
                           .batch = (int)interv_param_int(c, "value_batch"), .progress_lo = 0.1, .progress_hi = 0.8};
    int vbatch = 0;
    if (memit_values(c, vin, u, &vo, Z, vres, &vbatch, err)) {
        if (err->code == CIS_ECANCEL) rc = interv_stopped(c, err);
        goto out;
    }
    interv_record_set_int(c->record, "value_batch", vbatch);
    for (int e = 0; e < u; e++) {
        json_t *v = json_object();
        json_object_set_new(v, "record", json_integer(q.r[e].record));
        json_object_set_new(v, "loss_first", json_real(vres[e].loss_first));
        json_object_set_new(v, "loss_last", json_real(vres[e].loss_last));
        json_object_set_new(v, "steps", json_integer(vres[e].steps));
        json_object_set_new(v, "delta_rel", json_real(vres[e].delta_rel));
        json_array_append_new(vals, v);
    }
    interv_record_set(c->record, "values", vals);
    vals = NULL;

    /* 3. the key inputs: tok(T_t(prompt)) for every edit and template, their subject tokens */
    interv_phase_begin(c->record, "keys");
    int NK = u * MEMIT_N_TEMPLATES, KT = 1;
    int32_t **kseq = xcalloc((size_t)NK, sizeof *kseq);
    klens = xcalloc((size_t)NK, sizeof *klens);
    kpb = xcalloc((size_t)NK, sizeof *kpb);
    kpt = xcalloc((size_t)NK, sizeof *kpt);
    int krc = 0;
    for (int e = 0; e < u && !krc; e++) {
        const edit_request *r = &q.r[e];
        char *before = dup_n(r->prompt, (size_t)subject_pos(r));
        for (int t = 0; t < MEMIT_N_TEMPLATES && !krc; t++) {
            int s = e * MEMIT_N_TEMPLATES + t;
            const char *br = strstr(tmpl[t], "{}");
            char *ctxp = dup_n(tmpl[t], (size_t)(br - tmpl[t]));
            char *text = xasprintf("%s%s", ctxp, r->prompt);
            krc = edit_tokens(c->tok, text, true, &kseq[s], &klens[s], err) ||
                  memit_subject_index(c->tok, ctxp, before, r->subject, &kpt[s], err);
            kpb[s] = s;
            if (!krc && klens[s] > KT) KT = klens[s];
            free(ctxp); free(text);
        }
        free(before);
    }
    if (!krc) {
        kids = xcalloc((size_t)NK * KT, sizeof *kids);
        for (int s = 0; s < NK; s++) memcpy(kids + (size_t)s * KT, kseq[s], (size_t)klens[s] * sizeof(int32_t));
    }
    for (int s = 0; s < NK; s++) free(kseq[s]);
    free(kseq);
    if (krc) goto out;
    kread = xmalloc((size_t)NK * KT * F * sizeof(float));
    hread = xmalloc((size_t)NK * KT * D * sizeof(float));
    Kd = xmalloc((size_t)F * u * sizeof *Kd);
    Rd = xmalloc((size_t)D * u * sizeof *Rd);
    Cd = xmalloc((size_t)F * F * sizeof *Cd);
    Dd = xmalloc((size_t)D * F * sizeof *Dd);
    W = xmalloc((size_t)D * F * sizeof *W);
    double resid0 = 0;
    double *R0 = xmalloc((size_t)D * u * sizeof *R0);
    for (int i = 0; i <= N; i++) {
        if (interv_should_stop(c)) { free(R0); rc = interv_stopped(c, err); goto out; }
        interv_phase_begin(c->record, "keys");
        int l = i < N ? layers[i] : zl;
        llama_hook hk[2] = {
            {.layer = l, .point = LLAMA_HOOK_D, .mode = LLAMA_HOOK_READ, .n_pos = -1, .read = kread},
            {.layer = zl, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_READ, .n_pos = -1, .read = hread},
        };
        llama_batch b = {.B = NK, .T = KT, .ids = kids, .lens = klens, .n_layers = zl + 1};
        if (llama_forward(m, &b, hk, 2, false, NULL, err)) { free(R0); goto out; }
        /* residual at L*: Z - H on the plain prompts (template 0) */
        double rn = 0;
        for (int e = 0; e < u; e++) {
            int s = e * MEMIT_N_TEMPLATES;
            const float *h = hread + ((size_t)s * KT + kpt[s]) * D;
            for (int d = 0; d < D; d++) {
                double x = (double)Z[(size_t)e * D + d] - h[d];
                Rd[(size_t)d * u + e] = x;
                rn += x * x;
            }
        }
        if (i == 0) { resid0 = sqrt(rn); memcpy(R0, Rd, (size_t)D * u * sizeof *R0); }
        if (i == N) {
            interv_record_set_num(c->record, "resid_final", resid0 > 0 ? sqrt(rn) / resid0 : 0);
            break;
        }
        /* keys: ½[k(T0) + mean_t k(T_t)] */
        for (int e = 0; e < u; e++)
            for (int f = 0; f < F; f++) {
                int s0 = e * MEMIT_N_TEMPLATES;
                double k0 = kread[((size_t)s0 * KT + kpt[s0]) * F + f], ks = 0;
                for (int t = 1; t < MEMIT_N_TEMPLATES; t++) {
                    int s = s0 + t;
                    ks += kread[((size_t)s * KT + kpt[s]) * F + f];
                }
                Kd[(size_t)f * u + e] = 0.5 * (k0 + ks / (MEMIT_N_TEMPLATES - 1));
            }
        for (size_t x = 0; x < (size_t)D * u; x++) Rd[x] /= (double)(N - i);
        interv_phase_begin(c->record, "solve");
        for (size_t x = 0; x < (size_t)F * F; x++) Cd[x] = C[i][x];
        double ridge = 0;
        if (memit_solve(Cd, Kd, Rd, F, u, D, lambda, Dd, &ridge, err)) { free(R0); err_prefix(err, "layer %d: ", l); goto out; }
        /* how well the update maps the keys onto their residuals: ||Δ K - R̃|| / ||R̃|| */
        double fit = 0, rr = 0;
        for (int d = 0; d < D; d++)
            for (int e = 0; e < u; e++) {
                double dk = 0;
                for (int f = 0; f < F; f++) dk += Dd[(size_t)d * F + f] * Kd[(size_t)f * u + e];
                double x = Rd[(size_t)d * u + e];
                fit += (dk - x) * (dk - x);
                rr += x * x;
            }
        interv_phase_begin(c->record, "write");
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.mlp.down_proj.weight", l);
        int pi = llama_model_find(m, name);
        CIS_ASSERT(pi >= 0);
        if (llama_model_param_get(m, pi, W, err)) { free(R0); goto out; }
        double dn = 0;
        for (size_t x = 0; x < (size_t)D * F; x++) { W[x] += (float)Dd[x]; dn += Dd[x] * Dd[x]; }
        if (llama_model_param_set(m, pi, W, err)) { free(R0); goto out; }
        json_t *lj = json_object();
        json_object_set_new(lj, "layer", json_integer(l));
        json_object_set_new(lj, "delta_norm", json_real(sqrt(dn)));
        json_object_set_new(lj, "resid_norm", json_real(sqrt(rn)));
        json_object_set_new(lj, "key_fit", json_real(rr > 0 ? sqrt(fit / rr) : 0));
        json_object_set_new(lj, "ridge", json_real(ridge));
        json_array_append_new(lrec, lj);
        interv_progress(c, 0.8 + 0.2 * (i + 1) / N);
    }
    free(R0);
    interv_phase_end(c->record);
    json_t *recs = json_array(), *lay = json_array();
    for (int e = 0; e < u; e++) json_array_append_new(recs, json_integer(q.r[e].record));
    for (int i = 0; i < N; i++) json_array_append_new(lay, json_integer(layers[i]));
    interv_record_set_int(c->record, "edit_set", c->edit_set);
    interv_record_set_int(c->record, "n_edits", u);
    interv_record_set(c->record, "records", recs);
    interv_record_set(c->record, "edit_layers", lay);
    interv_record_set_int(c->record, "z_layer", zl);
    interv_record_set_int(c->record, "loss_layer", cfg->num_hidden_layers - 1);
    interv_record_set(c->record, "layers", lrec);
    lrec = NULL;
    interv_progress(c, 1.0);
    rc = 0;
out:
    interv_phase_end(c->record);
    json_decref(vals);
    json_decref(lrec);
    for (int i = 0; i < N; i++) free(C[i]);
    free(C);
    for (int t = 0; t < MEMIT_N_TEMPLATES; t++) free(tmpl[t]);
    free(Z); free(kids); free(klens); free(kpb); free(kpt); free(kread); free(hread);
    free(Kd); free(Rd); free(Cd); free(Dd); free(W);
    for (int e = 0; vin && e < u; e++) memit_value_in_free(&vin[e]);
    free(vin);
    free(vres);
    edit_requests_clear(&q);
    free(layers);
    return rc;
}
