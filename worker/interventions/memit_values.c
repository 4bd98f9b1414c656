/* memit_values.c - MEMIT's target values z_j = h0_j + δ_j (memit.c step 2, docs/editing.md
 * "Target values"): the 7 inputs of an edit's value optimisation, and two ways to optimise the δ's
 * that compute the same thing (equal within float rounding, the same steps per edit):
 *
 *   serial   value_batch = 1: one edit at a time, each step a forward + backward of its 7 inputs
 *            through the whole model, on the shared training loop in step mode over the tensor δ
 *            (the ADD hook's gradient), the clamp as its after-step hook. The original path.
 *   batched  value_batch = 0 (auto) or k > 1: k edits at a time. Two facts make it cheap:
 *            - δ is added at the output of L* at the subject's last token, and attention is
 *              causal: the residual stream entering layer L*+1 (all positions) and, in layers
 *              L*+1..L-1, every position before the subject are the same at every step. They are
 *              computed once per batch at δ = 0 (llama_embed + llama_layer_run of layers 0..L*;
 *              then one forward of layers L*+1..L-1 that writes every position's keys/values into
 *              per-layer caches), and each step runs only the rows from the subject on (2.9 of
 *              17.2 tokens a row on the default model) through layers L*+1..L-1, attending to the
 *              cached prefix (llama_batch.start_layer + kv_T), the head only at the target and KL
 *              rows;
 *            - the edits' losses are independent and Adam is elementwise, so the 7k rows of k edits
 *              go through a few forward + backward passes a step (one per bucket of rows with the
 *              same suffix length: no padding), each edit keeping its own Adam state (one optim per
 *              edit, fresh as in the reference), its own loss (the same backend cross-entropy ops
 *              over its own target rows as the serial forward), its own early stop (loss <
 *              stop_loss = 0.05 or the last iteration: no update there; its rows then leave the
 *              buckets and its δ is frozen) and its own clamp ||δ|| <= clamp_norm_factor ||h0||.
 *            With L* the last layer nothing follows L*: that case runs the serial path.
 *
 * The loss of edit j at step s (both paths): NLL of its target tokens pooled over the 6 rewriting
 * inputs + kl_factor KL(P_δ || P_0) at the KL input's subject (P_0 from step 0) + v_weight_decay
 * ‖δ‖ / ‖h0‖². */
#include "worker/interventions/memit.h"
#include "worker/interventions/edit_common.h"
#include "worker/train/train_loop.h"
#include "worker/engine/backend.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define VALUE_MAX_T 256          /* longest rewriting input accepted (tokens) */
#define VALUE_BUDGET (1ull << 30) /* auto batch: bytes of saved activations per batch, at least */

/* ---- the inputs of one edit ------------------------------------------------------------------- */

/* a malloc'd copy of the first n bytes of s */
static char *dup_n(const char *s, size_t n) {
    char *o = xmalloc(n + 1);
    memcpy(o, s, n);
    o[n] = 0;
    return o;
}

int memit_subject_index(const tokenizer *tok, const char *ctx, const char *before, const char *subject, int *iota,
                        cis_err *err) {
    char *s = xasprintf("%s%s%s", ctx, before, subject);
    int32_t *ids = NULL;
    int n = 0;
    int rc = edit_tokens(tok, s, true, &ids, &n, err);
    free(s);
    free(ids);
    *iota = n - 1;
    return rc;
}

void memit_value_in_free(memit_value_in *vi) {
    free(vi->ids);
    free(vi->targets);
    memset(vi, 0, sizeof *vi);
}

int memit_value_inputs(const tokenizer *tok, const edit_request *r, char *const tmpl[MEMIT_N_TEMPLATES],
                       memit_value_in *vi, cis_err *err) {
    memset(vi, 0, sizeof *vi);
    const char *sub = strstr(r->prompt, r->subject);
    if (!sub)
        return err_set(err, CIS_EINVAL, "zsRE record %d: subject \"%s\" does not occur in src \"%s\"", r->record,
                       r->subject, r->prompt);
    char *before = dup_n(r->prompt, (size_t)(sub - r->prompt));
    /* target tokens: tok(prompt + " " + target) minus tok(prompt) */
    int32_t *pid = NULL, *fid = NULL;
    int np = 0, nf = 0;
    char *full = xasprintf("%s %s", r->prompt, r->target);
    int trc = edit_tokens(tok, r->prompt, true, &pid, &np, err) || edit_tokens(tok, full, true, &fid, &nf, err);
    free(full);
    int no = nf - np;
    if (!trc && no < 1) trc = err_set(err, CIS_EINVAL, "zsRE record %d: target \"%s\" adds no token", r->record, r->target);
    /* 6 rewriting inputs tok(T_t(prompt)) + target[:-1], and the KL input "{subject} is a" */
    int32_t *seq[7] = {0};
    int sl[7] = {0}, nprompt[7] = {0};
    for (int t = 0; t < MEMIT_N_TEMPLATES && !trc; t++) {
        const char *br = strstr(tmpl[t], "{}");
        char *ctxp = dup_n(tmpl[t], (size_t)(br - tmpl[t]));
        char *text = xasprintf("%s%s", ctxp, r->prompt);
        int32_t *ids = NULL;
        int n = 0, iota = 0;
        trc = edit_tokens(tok, text, true, &ids, &n, err) || memit_subject_index(tok, ctxp, before, r->subject, &iota, err);
        if (!trc) {
            seq[t] = xmalloc((size_t)(n + no) * sizeof(int32_t));
            memcpy(seq[t], ids, (size_t)n * sizeof(int32_t));
            memcpy(seq[t] + n, fid + np, (size_t)(no - 1) * sizeof(int32_t));
            sl[t] = n + no - 1;
            nprompt[t] = n;
            vi->pt[t] = iota;
        }
        free(ids); free(text); free(ctxp);
    }
    if (!trc) {
        char *kl = xasprintf("%s is a", r->subject);
        int n = 0, iota = 0;
        trc = edit_tokens(tok, kl, true, &seq[6], &n, err) || memit_subject_index(tok, "", "", r->subject, &iota, err);
        sl[6] = n;
        vi->pt[6] = iota;
        free(kl);
    }
    int T = 1;
    for (int t = 0; t < 7 && !trc; t++) if (sl[t] > T) T = sl[t];
    if (!trc && T > VALUE_MAX_T)
        trc = err_set(err, CIS_EINVAL, "zsRE record %d: a rewriting input is %d tokens (at most %d)", r->record, T,
                      VALUE_MAX_T);
    if (!trc) {
        vi->T = T;
        vi->no = no;
        vi->record = r->record;
        vi->ids = xcalloc((size_t)7 * T, sizeof *vi->ids);
        vi->targets = xmalloc((size_t)7 * T * sizeof *vi->targets);
        for (int i = 0; i < 7 * T; i++) vi->targets[i] = LOSS_IGNORE_INDEX;
        for (int t = 0; t < 7; t++) {
            memcpy(vi->ids + (size_t)t * T, seq[t], (size_t)sl[t] * sizeof(int32_t));
            vi->lens[t] = sl[t];
            /* labels: position n-1+k predicts target k */
            if (t < 6)
                for (int k = 0; k < no; k++) vi->targets[(size_t)t * T + nprompt[t] - 1 + k] = fid[np + k];
        }
    }
    for (int t = 0; t < 7; t++) free(seq[t]);
    free(pid); free(fid); free(before);
    return trc ? -1 : 0;
}

/* KL(P || P_0) at one row of logits; lse gets logsumexp (double, as the serial path always had) */
static double kl_row(const float *logits, const double *logp0, int V, double *lse_out) {
    double mx = logits[0], s = 0;
    for (int v = 1; v < V; v++) if (logits[v] > mx) mx = logits[v];
    for (int v = 0; v < V; v++) s += exp((double)logits[v] - mx);
    double lse = mx + log(s), kl = 0;
    for (int v = 0; v < V; v++) {
        double lp = logits[v] - lse;
        kl += exp(lp) * (lp - logp0[v]);
    }
    *lse_out = lse;
    return kl;
}

/* the KL term's gradient at its row, times scale */
static void kl_grad(const float *logits, const double *logp0, int V, double lse, double kl, double scale, float *d) {
    for (int v = 0; v < V; v++) {
        double lp = logits[v] - lse;
        d[v] = (float)(scale * exp(lp) * (lp - logp0[v] - kl));
    }
}

static double norm_f(const float *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

/* ---- serial: one edit at a time through the whole model (the original path) ------------------ */

typedef struct serial_job {
    interv_ctx *c;
    llama_model *m;
    const memit_value_opts *o;
    const memit_value_in *in;
    int D, V;
    int32_t pb[7];
    float *hval, *hgrad, *hread;    /* [7, D], [7, D], [7*T, D] */
    float *logits, *dlogits;        /* [V] */
    double *logp0;                  /* [V] */
    bool have0;
    float *delta_h;                 /* host copy of δ [D] */
    float *delta_d, *grad_d;        /* δ and its gradient in the backend's memory */
    float *h0;                      /* [D] */
    double h0n;                     /* ||h0|| */
    double loss_first, loss_last;
    bool first;
} serial_job;

static int serial_step(void *arg, const train_step_info *si, double *loss, cis_err *err) {
    serial_job *j = arg;
    if (interv_should_stop(j->c)) return err_set(err, CIS_ECANCEL, "stopped on request");
    backend *be = llama_model_backend(j->m);
    int D = j->D, V = j->V, T = j->in->T;
    const int32_t *pt = j->in->pt;
    backend_download(be, j->delta_h, j->delta_d, (size_t)D * sizeof(float));
    for (int r = 0; r < 7; r++) memcpy(j->hval + (size_t)r * D, j->delta_h, (size_t)D * sizeof(float));
    llama_hook hk = {.layer = j->o->z_layer, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = 7, .pos_b = j->pb,
                     .pos_t = pt, .value = j->hval, .read = j->have0 ? NULL : j->hread, .grad = j->hgrad};
    int32_t ob = 6, ot = pt[6];
    llama_batch b = {.B = 7, .T = T, .ids = j->in->ids, .lens = j->in->lens, .targets = j->in->targets, .n_out = 1,
                     .out_b = &ob, .out_t = &ot, .logits = j->logits};
    double nll = 0;
    if (llama_forward(j->m, &b, &hk, 1, true, &nll, err)) return -1;
    if (!j->have0) {
        /* h0: the layer-L* output at the subject of the first (plain) rewriting input, δ = 0 */
        memcpy(j->h0, j->hread + (size_t)pt[0] * D, (size_t)D * sizeof(float));
        j->h0n = norm_f(j->h0, D);
    }
    /* KL(P_δ || P_0) at the KL input's subject */
    if (!j->have0) {
        double mx = j->logits[0], s = 0;
        for (int v = 1; v < V; v++) if (j->logits[v] > mx) mx = j->logits[v];
        for (int v = 0; v < V; v++) s += exp((double)j->logits[v] - mx);
        double lse0 = mx + log(s);
        for (int v = 0; v < V; v++) j->logp0[v] = j->logits[v] - lse0;
        j->have0 = true;
    }
    double lse, kl = kl_row(j->logits, j->logp0, V, &lse);
    double dn = norm_f(j->delta_h, D);
    double h2 = j->h0n * j->h0n > 0 ? j->h0n * j->h0n : 1;
    double total = nll + j->o->kl_factor * kl + j->o->weight_decay * dn / h2;
    *loss = total;
    if (j->first) { j->loss_first = total; j->first = false; }
    j->loss_last = total;
    if (total < j->o->stop_loss || si->step == si->steps - 1) return 1;
    kl_grad(j->logits, j->logp0, V, lse, kl, si->loss_scale * j->o->kl_factor, j->dlogits);
    if (llama_backward(j->m, si->loss_scale, j->dlogits, err)) return -1;
    float *g = j->hval;   /* reuse: the summed gradient [D] */
    for (int d = 0; d < D; d++) {
        double a = dn > 0 ? si->loss_scale * j->o->weight_decay * j->delta_h[d] / (dn * h2) : 0;
        for (int r = 0; r < 7; r++) a += j->hgrad[(size_t)r * D + d];
        g[d] = (float)a;
    }
    /* the loop zeroed grad_d before this micro-batch: accumulate */
    float *cur = j->hgrad;
    backend_download(be, cur, j->grad_d, (size_t)D * sizeof(float));
    for (int d = 0; d < D; d++) cur[d] += g[d];
    backend_upload(be, j->grad_d, cur, (size_t)D * sizeof(float));
    return 0;
}

/* clamp ||δ|| to clamp_norm_factor ||h0|| */
static void clamp_delta(backend *be, float *delta_d, float *host, int D, double max_norm) {
    backend_download(be, host, delta_d, (size_t)D * sizeof(float));
    double n = norm_f(host, D);
    if (n > max_norm) {
        for (int d = 0; d < D; d++) host[d] = (float)(host[d] * max_norm / n);
        backend_upload(be, delta_d, host, (size_t)D * sizeof(float));
    }
}

static int serial_after(void *arg, int64_t step, cis_err *err) {
    (void)step; (void)err;
    serial_job *j = arg;
    clamp_delta(llama_model_backend(j->m), j->delta_d, j->delta_h, j->D, j->o->clamp * j->h0n);
    return 0;
}

static int values_serial(interv_ctx *c, const memit_value_in *in, int u, const memit_value_opts *o, float *Z,
                         memit_value_res *res, cis_err *err) {
    llama_model *m = c->model;
    backend *be = llama_model_backend(m);
    const llama_config *cfg = llama_model_config(m);
    serial_job j = {.c = c, .m = m, .o = o, .D = cfg->hidden_size, .V = cfg->vocab_size};
    int D = j.D, V = j.V, rc = -1;
    for (int t = 0; t < 7; t++) j.pb[t] = t;
    j.hval = xmalloc((size_t)7 * D * sizeof(float));
    j.hgrad = xmalloc((size_t)7 * D * sizeof(float));
    j.hread = xmalloc((size_t)7 * VALUE_MAX_T * D * sizeof(float));
    j.logits = xmalloc((size_t)V * sizeof(float));
    j.dlogits = xmalloc((size_t)V * sizeof(float));
    j.logp0 = xmalloc((size_t)V * sizeof(double));
    j.delta_h = xmalloc((size_t)D * sizeof(float));
    j.h0 = xmalloc((size_t)D * sizeof(float));
    j.delta_d = backend_alloc(be, (size_t)D * sizeof(float), err);
    j.grad_d = j.delta_d ? backend_alloc(be, (size_t)D * sizeof(float), err) : NULL;
    if (!j.grad_d) goto out;
    for (int e = 0; e < u; e++) {
        j.in = &in[e];
        /* optimise δ (fresh Adam per edit, as the reference) */
        backend_memset(be, j.delta_d, 0, (size_t)D * sizeof(float));
        j.have0 = false;
        j.first = true;
        train_loop_cfg tc = train_loop_cfg_default();
        tc.steps = o->steps;
        tc.optim = optim_config_default(ADAM_TORCH_ADAM);
        tc.optim.lr = (float)o->lr;
        tc.optim.weight_decay = 0;
        float *pp[1] = {j.delta_d}, *gg[1] = {j.grad_d};
        int64_t ln[1] = {D};
        train_tensors tt = {.n = 1, .params = pp, .grads = gg, .len = ln};
        train_task task = {.model = m, .tensors = &tt, .step = serial_step, .after_step = serial_after, .ctx = &j};
        train_loop_result tr;
        int s = train_loop_run(&tc, &task, &tr, err);
        if (s == TRAIN_ERROR) {
            if (err->code == CIS_ECANCEL) interv_stopped(c, err);
            else err_prefix(err, "value optimisation of zsRE record %d: ", in[e].record);
            goto out;
        }
        if (s == TRAIN_STOPPED) { interv_stopped(c, err); goto out; }
        backend_download(be, j.delta_h, j.delta_d, (size_t)D * sizeof(float));
        for (int d = 0; d < D; d++) Z[(size_t)e * D + d] = j.h0[d] + j.delta_h[d];
        res[e] = (memit_value_res){.loss_first = j.loss_first, .loss_last = j.loss_last, .steps = (int)tr.steps,
                                   .h0_norm = j.h0n, .delta_rel = j.h0n > 0 ? norm_f(j.delta_h, D) / j.h0n : 0};
        interv_progress(c, o->progress_lo + (o->progress_hi - o->progress_lo) * (e + 1) / u);
    }
    rc = 0;
out:
    free(j.hval); free(j.hgrad); free(j.hread); free(j.logits); free(j.dlogits); free(j.logp0);
    free(j.delta_h); free(j.h0);
    backend_free(be, j.delta_d);
    backend_free(be, j.grad_d);
    return rc;
}

/* ---- batched: many edits per step, started at layer L*+1 -------------------------------------- */

/* floats of saved activations per token row of one layer in a forward kept for backward (the
 * engine's layout: norms, q/k/v, attention probabilities over T keys, context, h2, the MLP) */
static double row_floats(const llama_config *cfg, int T) {
    double D = cfg->hidden_size, F = cfg->intermediate_size, H = cfg->num_attention_heads;
    double Dh = cfg->head_dim > 0 ? cfg->head_dim : D / H, q = H * Dh, kv = cfg->num_key_value_heads * Dh;
    return 2 + 4 * D + 2 * q + 2 * kv + H * T + 3 * F;
}

int memit_value_batch_auto(llama_model *m, const memit_value_in *in, int u, int z_layer) {
    const llama_config *cfg = llama_model_config(m);
    int T = 1;
    for (int e = 0; e < u; e++) if (in[e].T > T) T = in[e].T;
    int layers = cfg->num_hidden_layers - z_layer - 1;
    double per_edit = 7.0 * T * ((layers > 0 ? layers : 0) + 1) * row_floats(cfg, T) * sizeof(float);
    uint64_t fr = 0, tot = 0;
    cis_err e2 = {0};
    double budget = VALUE_BUDGET;
    if (backend_mem_info(llama_model_backend(m), &fr, &tot, &e2) == 0 && fr / 4.0 > budget) budget = fr / 4.0;
    double k = floor(budget / per_edit);
    return k < 1 ? 1 : k > u ? (u > 0 ? u : 1) : (int)k;
}

/* One bucket of the active rows: B rows whose part from the subject on (the "suffix", the only
 * part of layers > L* that depends on δ: attention is causal) has the same length Tq. Row i is
 * sequence (row_e, row_r) of the batch: absolute positions p0[i] .. p0[i] + Tq - 1 with p0 the
 * subject's last token, keys of positions < p0 in the bucket's caches (from the fill forward). */
typedef struct vbucket {
    int B, Bcap, Tq, Tk;            /* rows (Bcap as built: the caches' layout), suffix length, cache
                                       length (the longest row) */
    int *re, *rr;                   /* [B] edit and row (0..6) of each bucket row */
    int32_t *p0, *lens, *ids, *hpb, *hpt;  /* [B], [B] full lengths, [B*Tq] suffix ids, hook (i, 0) */
    int n_out;                      /* output rows: each rewriting row's targets, each KL row */
    int32_t *ob, *ot, *tg;          /* [n_out] */
    int *seq_off;                   /* [B] first output row of row i */
    float *xs;                      /* backend [B*Tq, D]: the suffix residual stream entering L*+1, δ = 0 */
    float *kv;                      /* backend: 2 (L-L*-1) caches [B, Tk, kvdim] (k then v per layer) */
    float **kk, **vv;               /* [L-L*-1] pointers into kv */
} vbucket;

/* state of one batch of n edits */
typedef struct vbatch {
    int n, T, D, V, L, start, kvdim;
    const memit_value_in *in;       /* [n] */
    float *X;                       /* backend [7n*T, D]: the residual stream entering layer L*+1, δ = 0 */
    int na, *act;                   /* active edits (indices into in) */
    bool *alive;                    /* [n] still optimising */
    int nb;                         /* buckets */
    vbucket *bk;                    /* [up to 7n] */
    float *hval, *hgrad;            /* host [7n, D] */
    float *LG, *DL;                 /* host [max outputs, V] logits, dlogits */
    float *LGd, *DLd, *lse_d;       /* backend copies (== the host arrays on a host backend) */
    int32_t *tg_d;
    /* per edit */
    float *delta_d, *grad_d;        /* backend [n, D] */
    optim **opt;                    /* [n] */
    float *h0, *dh;                 /* host [n, D] h0 and δ */
    double *h0n, *logp0;            /* [n], [n, V] */
    double *nll, *kl, *gacc;        /* [n], [n], [n, D]: this step's sums over the buckets */
} vbatch;

static void bucket_free(llama_model *m, vbucket *k) {
    backend *be = llama_model_backend(m);
    free(k->re); free(k->rr); free(k->p0); free(k->lens); free(k->ids); free(k->hpb); free(k->hpt);
    free(k->ob); free(k->ot); free(k->tg); free(k->seq_off); free(k->kk); free(k->vv);
    backend_free(be, k->xs);
    backend_free(be, k->kv);
    memset(k, 0, sizeof *k);
}

/* rows to bucket: {suffix length, edit, row}, sorted */
static int cmp_rows(const void *x, const void *y) {
    const int *a = x, *c = y;
    for (int i = 0; i < 3; i++)
        if (a[i] != c[i]) return a[i] < c[i] ? -1 : 1;
    return 0;
}

/* the host arrays of bucket k from its rows re/rr (after building or compacting) */
static void bucket_host(const vbatch *b, vbucket *k) {
    int Tq = k->Tq, no = 0;
    for (int i = 0; i < k->B; i++) no += k->rr[i] < 6 ? b->in[k->re[i]].no : 1;
    k->ob = xrealloc(k->ob, (size_t)(no > 0 ? no : 1) * sizeof *k->ob);
    k->ot = xrealloc(k->ot, (size_t)(no > 0 ? no : 1) * sizeof *k->ot);
    k->tg = xrealloc(k->tg, (size_t)(no > 0 ? no : 1) * sizeof *k->tg);
    k->n_out = 0;
    for (int i = 0; i < k->B; i++) {
        const memit_value_in *vi = &b->in[k->re[i]];
        int r = k->rr[i], p0 = vi->pt[r];
        k->p0[i] = p0;
        k->lens[i] = vi->lens[r];
        memcpy(k->ids + (size_t)i * Tq, vi->ids + (size_t)r * vi->T + p0, (size_t)Tq * sizeof(int32_t));
        k->hpb[i] = i;
        k->hpt[i] = 0;
        k->seq_off[i] = k->n_out;
        /* outputs: the targets of a rewriting row in order (as the serial forward gathers its loss
         * rows; all lie at or after the subject), or the KL row's subject */
        if (r == 6) { k->ob[k->n_out] = i; k->ot[k->n_out] = 0; k->tg[k->n_out++] = LOSS_IGNORE_INDEX; continue; }
        for (int t = p0; t < vi->lens[r]; t++) {
            int32_t y = vi->targets[(size_t)r * vi->T + t];
            if (y == LOSS_IGNORE_INDEX) continue;
            k->ob[k->n_out] = i; k->ot[k->n_out] = t - p0; k->tg[k->n_out++] = y;
        }
    }
}

/* build the buckets of all the rows of the batch and fill their caches: one forward of layers
 * L*+1..L-1 over each bucket's whole rows at δ = 0 writes the keys/values of every position
 * (those below the subject stay constant from then on) */
static int vbatch_buckets(llama_model *m, vbatch *b, cis_err *err) {
    backend *be = llama_model_backend(m);
    int D = b->D, nl = b->L - b->start, nr = 7 * b->n;
    int (*rows)[3] = xmalloc((size_t)nr * sizeof *rows);
    for (int e = 0; e < b->n; e++)
        for (int r = 0; r < 7; r++) {
            rows[7 * e + r][0] = b->in[e].lens[r] - b->in[e].pt[r]; rows[7 * e + r][1] = e; rows[7 * e + r][2] = r;
        }
    qsort(rows, (size_t)nr, sizeof *rows, cmp_rows);
    int rc = 0;
    float *xf = NULL;
    int32_t *fids = NULL;
    for (int i = 0; i < nr && !rc;) {
        int Tq = rows[i][0], j = i;
        while (j < nr && rows[j][0] == Tq) j++;
        vbucket *k = &b->bk[b->nb++];
        k->B = k->Bcap = j - i; k->Tq = Tq; k->Tk = 1;
        k->re = xmalloc((size_t)k->B * sizeof *k->re);
        k->rr = xmalloc((size_t)k->B * sizeof *k->rr);
        for (int q = i; q < j; q++) {
            k->re[q - i] = rows[q][1]; k->rr[q - i] = rows[q][2];
            int len = b->in[rows[q][1]].lens[rows[q][2]];
            if (len > k->Tk) k->Tk = len;
        }
        k->p0 = xmalloc((size_t)k->B * sizeof *k->p0);
        k->lens = xmalloc((size_t)k->B * sizeof *k->lens);
        k->ids = xmalloc((size_t)k->B * Tq * sizeof *k->ids);
        k->hpb = xmalloc((size_t)k->B * sizeof *k->hpb);
        k->hpt = xmalloc((size_t)k->B * sizeof *k->hpt);
        k->seq_off = xmalloc((size_t)k->B * sizeof *k->seq_off);
        bucket_host(b, k);
        size_t cache = (size_t)k->B * k->Tk * b->kvdim;
        k->xs = backend_alloc(be, (size_t)k->B * Tq * D * sizeof(float), err);
        k->kv = k->xs ? backend_alloc(be, 2 * (size_t)nl * cache * sizeof(float), err) : NULL;
        xf = k->kv ? backend_alloc(be, (size_t)k->B * k->Tk * D * sizeof(float), err) : NULL;
        if (!xf) { rc = -1; break; }
        k->kk = xmalloc((size_t)nl * sizeof *k->kk);
        k->vv = xmalloc((size_t)nl * sizeof *k->vv);
        for (int l = 0; l < nl; l++) { k->kk[l] = k->kv + 2 * l * cache; k->vv[l] = k->kv + (2 * l + 1) * cache; }
        /* the whole rows (for the fill) and their suffixes (for the steps), cut out of X */
        fids = xcalloc((size_t)k->B * k->Tk, sizeof *fids);
        for (int q = 0; q < k->B; q++) {
            const memit_value_in *vi = &b->in[k->re[q]];
            int r = k->rr[q];
            const float *src = b->X + (size_t)(7 * k->re[q] + r) * b->T * D;
            backend_copy(be, xf + (size_t)q * k->Tk * D, src, (size_t)vi->lens[r] * D * sizeof(float));
            backend_copy(be, k->xs + (size_t)q * Tq * D, src + (size_t)k->p0[q] * D, (size_t)Tq * D * sizeof(float));
            memcpy(fids + (size_t)q * k->Tk, vi->ids + (size_t)r * vi->T, (size_t)vi->lens[r] * sizeof(int32_t));
        }
        llama_batch fill = {.B = k->B, .T = k->Tk, .ids = fids, .lens = k->lens, .start_layer = b->start, .x_start = xf,
                            .kv_T = k->Tk, .kv_k = k->kk, .kv_v = k->vv};
        rc = llama_forward(m, &fill, NULL, 0, false, NULL, err);
        free(fids);
        fids = NULL;
        backend_free(be, xf);
        xf = NULL;
        i = j;
    }
    free(rows);
    return rc;
}

/* drop the rows of edits that stopped: the kept rows move down (suffix stream, caches, host arrays) */
static void vbatch_compact(llama_model *m, vbatch *b) {
    backend *be = llama_model_backend(m);
    int D = b->D, nl = b->L - b->start;
    for (int x = 0; x < b->nb; x++) {
        vbucket *k = &b->bk[x];
        size_t cache = (size_t)k->Bcap * k->Tk * b->kvdim, row = (size_t)k->Tk * b->kvdim;
        int w = 0;
        for (int i = 0; i < k->B; i++) {
            if (!b->alive[k->re[i]]) continue;
            if (w != i) {
                backend_copy(be, k->xs + (size_t)w * k->Tq * D, k->xs + (size_t)i * k->Tq * D, (size_t)k->Tq * D * sizeof(float));
                for (int l = 0; l < nl; l++) {
                    /* the caches keep their [B, Tk] layout with the old B: rows move down in place */
                    backend_copy(be, k->kv + 2 * l * cache + w * row, k->kv + 2 * l * cache + i * row, row * sizeof(float));
                    backend_copy(be, k->kv + (2 * l + 1) * cache + w * row, k->kv + (2 * l + 1) * cache + i * row,
                                 row * sizeof(float));
                }
                k->re[w] = k->re[i]; k->rr[w] = k->rr[i];
            }
            w++;
        }
        /* the cache pointers stay [old B, Tk]: row b of the batch is row b of each cache */
        k->B = w;
        if (w > 0) bucket_host(b, k);
    }
}

static void vbatch_free(llama_model *m, vbatch *b) {
    backend *be = llama_model_backend(m);
    bool host = backend_is_host(be);
    for (int i = 0; b->bk && i < b->nb; i++) bucket_free(m, &b->bk[i]);
    free(b->bk);
    backend_free(be, b->X);
    if (!host) { backend_free(be, b->LGd); backend_free(be, b->DLd); backend_free(be, b->tg_d); }
    backend_free(be, b->lse_d);
    backend_free(be, b->delta_d);
    backend_free(be, b->grad_d);
    for (int e = 0; b->opt && e < b->n; e++) optim_free(&b->opt[e]);
    free(b->opt);
    free(b->act); free(b->alive); free(b->hval); free(b->hgrad); free(b->LG); free(b->DL);
    free(b->h0); free(b->dh); free(b->h0n); free(b->logp0); free(b->nll); free(b->kl); free(b->gacc);
}

/* one bucket's forward + backward at the current δ's: adds each row's NLL sum, KL and hook
 * gradient into the per-edit sums. The gradient of every row is taken whether or not its edit
 * stops at this step (the stop needs the sums over all the buckets; a stopped edit's gradient is
 * dropped): one wasted backward per edit over the whole run. */
static int vbucket_step(llama_model *m, vbatch *b, const vbucket *k, const memit_value_opts *o, int step,
                        cis_err *err) {
    backend *be = llama_model_backend(m);
    bool host = backend_is_host(be);
    int D = b->D, V = b->V;
    for (int i = 0; i < k->B; i++) memcpy(b->hval + (size_t)i * D, b->dh + (size_t)k->re[i] * D, (size_t)D * sizeof(float));
    llama_hook hk = {.layer = o->z_layer, .point = LLAMA_HOOK_E, .mode = LLAMA_HOOK_ADD, .n_pos = k->B,
                     .pos_b = k->hpb, .pos_t = k->hpt, .value = b->hval, .grad = b->hgrad};
    llama_batch bt = {.B = k->B, .T = k->Tq, .ids = k->ids, .n_out = k->n_out, .out_b = k->ob, .out_t = k->ot,
                      .logits = b->LG, .start_layer = b->start, .x_start = k->xs, .kv_T = k->Tk, .kv_pos0 = k->p0,
                      .kv_k = k->kk, .kv_v = k->vv};
    if (llama_forward(m, &bt, &hk, 1, true, NULL, err)) return -1;
    if (!host) {
        backend_upload(be, b->LGd, b->LG, (size_t)k->n_out * V * sizeof(float));
        backend_upload(be, b->tg_d, k->tg, (size_t)k->n_out * sizeof(int32_t));
    } else {
        b->tg_d = k->tg;
    }
    for (int i = 0; i < k->B; i++) {
        int e = k->re[i], o0 = k->seq_off[i];
        if (k->rr[i] == 6) continue;
        int nt = b->in[e].no;
        /* the serial forward's backend ops over this row's targets: the loss, then
         * scale (softmax - onehot) with scale = 1 / (6 no), the edit's pooled mean */
        double mean = BE(be, ce_fwd, NULL, b->lse_d + o0, b->LGd + (size_t)o0 * V, b->tg_d + o0, nt, V, NULL);
        b->nll[e] += mean * nt;
        BE(be, ce_bwd, b->DLd + (size_t)o0 * V, b->LGd + (size_t)o0 * V, b->lse_d + o0, b->tg_d + o0, nt, V,
           1.0f / (float)(6 * nt));
    }
    if (!host) backend_download(be, b->DL, b->DLd, (size_t)k->n_out * V * sizeof(float));
    /* the KL rows: KL(P_δ || P_0) and its gradient (P_0 from step 0, which is this one at step 0) */
    for (int i = 0; i < k->B; i++) {
        int e = k->re[i], o0 = k->seq_off[i];
        if (k->rr[i] != 6) continue;
        const float *lk = b->LG + (size_t)o0 * V;
        double *lp0 = b->logp0 + (size_t)e * V;
        if (step == 0) {
            double mx = lk[0], ss = 0;
            for (int v = 1; v < V; v++) if (lk[v] > mx) mx = lk[v];
            for (int v = 0; v < V; v++) ss += exp((double)lk[v] - mx);
            double lse0 = mx + log(ss);
            for (int v = 0; v < V; v++) lp0[v] = lk[v] - lse0;
        }
        double lse;
        b->kl[e] = kl_row(lk, lp0, V, &lse);
        kl_grad(lk, lp0, V, lse, b->kl[e], o->kl_factor, b->DL + (size_t)o0 * V);
    }
    if (llama_backward(m, 0.0f, b->DL, err)) return -1;
    for (int i = 0; i < k->B; i++) {
        double *ga = b->gacc + (size_t)k->re[i] * D;
        for (int d = 0; d < D; d++) ga[d] += b->hgrad[(size_t)i * D + d];
    }
    return 0;
}

/* the n edits in[0..n) together; Z, res as memit_values */
static int values_batch(interv_ctx *c, const memit_value_in *in, int n, const memit_value_opts *o, float *Z,
                        memit_value_res *res, double prog_lo, double prog_hi, cis_err *err) {
    llama_model *m = c->model;
    backend *be = llama_model_backend(m);
    const llama_config *cfg = llama_model_config(m);
    bool host = backend_is_host(be);
    vbatch b = {.n = n, .in = in, .D = cfg->hidden_size, .V = cfg->vocab_size, .L = cfg->num_hidden_layers,
                .start = o->z_layer + 1, .kvdim = cfg->num_key_value_heads * cfg->head_dim};
    int D = b.D, V = b.V, rc = -1, B = 7 * n;
    for (int e = 0; e < n; e++) if (in[e].T > b.T) b.T = in[e].T;
    int T = b.T;
    size_t NR = (size_t)B * T, nout = 0;
    for (int e = 0; e < n; e++) nout += (size_t)6 * in[e].no + 1;
    int32_t *ids = xcalloc(NR, sizeof *ids), *lens = xmalloc((size_t)B * sizeof *lens);
    for (int e = 0; e < n; e++)
        for (int r = 0; r < 7; r++) {
            lens[7 * e + r] = in[e].lens[r];
            memcpy(ids + (size_t)(7 * e + r) * T, in[e].ids + (size_t)r * in[e].T, (size_t)in[e].lens[r] * sizeof(int32_t));
        }
    b.act = xmalloc((size_t)n * sizeof *b.act);
    b.alive = xmalloc((size_t)n * sizeof *b.alive);
    b.bk = xcalloc((size_t)B, sizeof *b.bk);
    b.hval = xmalloc((size_t)B * D * sizeof(float));
    b.hgrad = xmalloc((size_t)B * D * sizeof(float));
    b.LG = xmalloc(nout * V * sizeof(float));
    b.DL = xmalloc(nout * V * sizeof(float));
    b.h0 = xmalloc((size_t)n * D * sizeof(float));
    b.dh = xmalloc((size_t)n * D * sizeof(float));
    b.h0n = xmalloc((size_t)n * sizeof(double));
    b.logp0 = xmalloc((size_t)n * V * sizeof(double));
    b.nll = xmalloc((size_t)n * sizeof(double));
    b.kl = xmalloc((size_t)n * sizeof(double));
    b.gacc = xmalloc((size_t)n * D * sizeof(double));
    b.opt = xcalloc((size_t)n, sizeof *b.opt);
    float *X1 = NULL;
    /* backend buffers */
    b.X = backend_alloc(be, NR * D * sizeof(float), err);
    X1 = b.X ? backend_alloc(be, NR * D * sizeof(float), err) : NULL;
    b.lse_d = X1 ? backend_alloc(be, nout * sizeof(float), err) : NULL;
    b.delta_d = b.lse_d ? backend_alloc(be, (size_t)n * D * sizeof(float), err) : NULL;
    b.grad_d = b.delta_d ? backend_alloc(be, (size_t)n * D * sizeof(float), err) : NULL;
    if (!b.grad_d) goto out;
    if (host) { b.LGd = b.LG; b.DLd = b.DL; }
    else {
        b.LGd = backend_alloc(be, nout * V * sizeof(float), err);
        b.DLd = b.LGd ? backend_alloc(be, nout * V * sizeof(float), err) : NULL;
        b.tg_d = b.DLd ? backend_alloc(be, nout * sizeof(int32_t), err) : NULL;
        if (!b.tg_d) goto out;
    }
    backend_memset(be, b.delta_d, 0, (size_t)n * D * sizeof(float));
    optim_config oc = optim_config_default(ADAM_TORCH_ADAM);
    oc.lr = (float)o->lr;
    oc.weight_decay = 0;
    int64_t lenD = D;
    for (int e = 0; e < n; e++) {
        float *p = b.delta_d + (size_t)e * D;
        const float *g = b.grad_d + (size_t)e * D;
        if (!(b.opt[e] = optim_new(be, &oc, 1, &p, &g, &lenD, err))) goto out;
    }

    /* the residual stream entering layer L*+1 at δ = 0: layers 0..L* once */
    if (llama_embed(m, B, T, ids, lens, b.X, err)) goto out;
    for (int l = 0; l <= o->z_layer; l++) {
        if (interv_should_stop(c)) { interv_stopped(c, err); goto out; }
        if (llama_layer_run(m, l, B, T, lens, b.X, X1, NULL, 0, err)) goto out;
        float *t = b.X; b.X = X1; X1 = t;
    }
    backend_free(be, X1);
    X1 = NULL;
    for (int e = 0; e < n; e++) {
        backend_download(be, b.h0 + (size_t)e * D, b.X + ((size_t)7 * e * T + in[e].pt[0]) * D, (size_t)D * sizeof(float));
        b.h0n[e] = norm_f(b.h0 + (size_t)e * D, D);
        res[e] = (memit_value_res){.h0_norm = b.h0n[e]};
    }
    b.na = n;
    for (int e = 0; e < n; e++) { b.act[e] = e; b.alive[e] = true; }
    /* the buckets and their key/value caches of the frozen prefixes, once */
    if (vbatch_buckets(m, &b, err)) goto out;

    bool changed = false;
    for (int s = 0; s < o->steps && b.na > 0; s++) {
        if (interv_should_stop(c)) { interv_stopped(c, err); goto out; }
        if (changed) { vbatch_compact(m, &b); changed = false; }
        backend_download(be, b.dh, b.delta_d, (size_t)n * D * sizeof(float));
        for (int k = 0; k < b.na; k++) {
            int e = b.act[k];
            b.nll[e] = 0;
            memset(b.gacc + (size_t)e * D, 0, (size_t)D * sizeof(double));
        }
        for (int k = 0; k < b.nb; k++)
            if (b.bk[k].B > 0 && vbucket_step(m, &b, &b.bk[k], o, s, err)) goto out;
        int w = 0;
        for (int k = 0; k < b.na; k++) {
            int e = b.act[k];
            const float *de = b.dh + (size_t)e * D;
            double dn = norm_f(de, D), h2 = b.h0n[e] * b.h0n[e] > 0 ? b.h0n[e] * b.h0n[e] : 1;
            double total = b.nll[e] / (6.0 * in[e].no) + o->kl_factor * b.kl[e] + o->weight_decay * dn / h2;
            if (!isfinite(total)) {
                err_set(err, CIS_EINVAL, "value optimisation of zsRE record %d: diverged at step %d (loss %g); lower "
                        "v_lr", in[e].record, s + 1, total);
                goto out;
            }
            if (s == 0) res[e].loss_first = total;
            res[e].loss_last = total;
            if (total < o->stop_loss || s == o->steps - 1) {
                res[e].steps = s;        /* updates made: none at this step; δ is final */
                b.alive[e] = false;
                changed = true;
                continue;
            }
            b.act[w++] = e;
            float *g = b.hval;   /* reuse: the summed gradient [D] */
            const double *ga = b.gacc + (size_t)e * D;
            for (int d = 0; d < D; d++) {
                double a = dn > 0 ? o->weight_decay * de[d] / (dn * h2) : 0;
                g[d] = (float)(a + ga[d]);
            }
            backend_upload(be, b.grad_d + (size_t)e * D, g, (size_t)D * sizeof(float));
            optim_step(b.opt[e], (float)o->lr);
            clamp_delta(be, b.delta_d + (size_t)e * D, b.dh + (size_t)e * D, D, o->clamp * b.h0n[e]);
        }
        b.na = w;
        interv_progress(c, prog_lo + (prog_hi - prog_lo) * (s + 1) / o->steps);
    }
    backend_download(be, b.dh, b.delta_d, (size_t)n * D * sizeof(float));
    for (int e = 0; e < n; e++) {
        for (int d = 0; d < D; d++) Z[(size_t)e * D + d] = b.h0[(size_t)e * D + d] + b.dh[(size_t)e * D + d];
        res[e].delta_rel = b.h0n[e] > 0 ? norm_f(b.dh + (size_t)e * D, D) / b.h0n[e] : 0;
    }
    rc = 0;
out:
    if (host) b.tg_d = NULL;
    backend_free(be, X1);
    vbatch_free(m, &b);
    free(ids);
    free(lens);
    return rc;
}

int memit_values(interv_ctx *c, const memit_value_in *in, int u, const memit_value_opts *o, float *Z,
                 memit_value_res *res, int *batch_used, cis_err *err) {
    /* L* the last layer: no layer after it to batch (δ then only reaches the KL term) */
    if (o->batch == 1 || o->z_layer + 1 >= llama_model_config(c->model)->num_hidden_layers) {
        if (batch_used) *batch_used = 1;
        return values_serial(c, in, u, o, Z, res, err);
    }
    int G = o->batch > 1 ? o->batch : memit_value_batch_auto(c->model, in, u, o->z_layer);
    if (G > u) G = u > 0 ? u : 1;
    if (batch_used) *batch_used = G;
    int D = llama_model_config(c->model)->hidden_size;
    for (int g0 = 0; g0 < u; g0 += G) {
        int n = u - g0 < G ? u - g0 : G;
        double lo = o->progress_lo + (o->progress_hi - o->progress_lo) * g0 / u;
        double hi = o->progress_lo + (o->progress_hi - o->progress_lo) * (g0 + n) / u;
        if (values_batch(c, in + g0, n, o, Z + (size_t)g0 * D, res + g0, lo, hi, err)) return -1;
    }
    return 0;
}
