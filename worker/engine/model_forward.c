/* model_forward.c - the batched forward pass over right-padded sequences, the head and loss, the
 * hooks at points A-E, and the backward pass to the trainable subset and to hooked activations.
 * The layer forward here is shared with generation (KV-cache mode) in model_generate.c.
 * Every loop over activations is a backend op: index arrays are built on the host (iws) and
 * uploaded once per call; the caller's host arrays (hook values, seeds, reads, grads, logits) move
 * through the backend's workspace, or are used in place when the backend's memory is host memory. */
#include <stdlib.h>
#include <string.h>

#include "worker/engine/model_internal.h"

/* state saved by llama_forward(for_backward = true) for llama_backward */
struct fwd_state {
    bool valid;
    int B, T, N, n_run;       /* batch, padded length, rows, layers run */
    int start;                /* first layer run (batch start_layer) */
    int kv_T;                 /* > 0: layers >= start attend through the caller's caches (llama_batch.kv_T) */
    float **kv_k, **kv_v;     /* [L - start] copies of the caller's cache pointers */
    int32_t *kv_rows, *kv_len;/* [N] cache row of each row (b*kv_T + pos), [B] visible keys (iws) */
    float *dkc, *dvc;         /* [B*kv_T, kvdim] attention backward into the caches */
    int lo_visit, lo_int;     /* backward visits layers >= lo_visit, runs layer internals >= lo_int */
    llama_hook *hooks;        /* copy of the caller's hook array */
    int n_hooks;
    layer_acts *acts;         /* [L]; valid for lo_int <= l < n_run */
    float **xs;               /* [L+1] residual stream: xs[l] = input of layer l */
    int32_t *pos, *lens, *ids;/* [N], [B], [N] host copies (iws); model_dev() gives the backend's */
    bool head_run;
    float *rstd_f, *xf;       /* [N], [N, D] */
    int n_loss;
    int32_t *loss_rows, *loss_tg;     /* [n_loss] */
    float *xsel_loss, *logits_loss, *lse;  /* [n_loss, D], [n_loss, V], [n_loss] */
    int n_out;
    int32_t *out_rows;        /* [n_out] */
    float *xsel_out;          /* [n_out, D] */
    float *logits_out;        /* [n_out, V] when the backend's memory is not host memory, else NULL */
    /* backward buffers */
    float *dres, *dtmp, *dctx, *dq, *dk, *dv, *dF1, *dF2, *dxsel;
};

void model_fwd_state_free(llama_model *m) {
    if (!m->st) return;
    free(m->st->hooks);
    free(m->st->kv_k);
    free(m->st->kv_v);
    free(m->st->acts);
    free(m->st->xs);
    free(m->st);
    m->st = NULL;
}

// ---------------------------------------------------------------------------------------------
// hooks

/* Staging of the caller's host arrays: stage_reserve makes the workspace at least `total` bytes
 * (so later stage() calls never move it), stage() returns the host pointer itself on host memory,
 * else a copy at the next 64-byte offset. */
static char *stage_reserve(llama_model *m, size_t total) {
    if (backend_is_host(m->be)) return (char *)1;  // not used: stage() returns host pointers
    return backend_workspace(m->be, total + 256);
}
static void *stage(llama_model *m, char *ws, const void *host, size_t bytes, size_t *off) {
    if (backend_is_host(m->be)) return (void *)host;
    size_t o = (*off + 63) & ~(size_t)63;
    backend_upload(m->be, ws + o, host, bytes);
    *off = o + bytes;
    return ws + o;
}
/* the flat rows (b*T + t) of a hook with explicit positions, in a new host array */
static int32_t *hook_rows_host(const llama_hook *h, int T) {
    int32_t *rows = xmalloc((size_t)(h->n_pos > 0 ? h->n_pos : 1) * sizeof *rows);
    for (int i = 0; i < h->n_pos; i++) rows[i] = h->pos_b[i] * T + h->pos_t[i];
    return rows;
}

void model_apply_hooks(llama_model *m, const llama_hook *hooks, int n_hooks, int l, llama_hook_point p, float *act,
                       int T, int width, int64_t N) {
    backend *be = m->be;
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l || h->point != p || h->mode == LLAMA_HOOK_READ) continue;
        int64_t nr = model_hook_nrows(h, N);
        size_t vbytes = (size_t)(nr * width) * sizeof(float), off = 0;
        char *ws = stage_reserve(m, vbytes + (size_t)nr * sizeof(int32_t) + 128);
        if (!ws) continue;  // the caller reserved the workspace (model_reserve_ws); cannot happen
        const float *val = stage(m, ws, h->value, vbytes, &off);
        if (h->n_pos < 0) {
            if (h->mode == LLAMA_HOOK_ADD) BE(be, axpy, act, 1.0f, val, N * width);
            else backend_copy(be, act, val, vbytes);
            continue;
        }
        int32_t *hr = hook_rows_host(h, T);
        const int32_t *rows = stage(m, ws, hr, (size_t)h->n_pos * sizeof(int32_t), &off);
        BE(be, rows_scatter, act, val, rows, h->n_pos, width, h->mode == LLAMA_HOOK_ADD ? ROWS_ADD : ROWS_SET);
        backend_synchronize(be);  // hr is read by the op on host backends; staged copies are queued
        free(hr);
    }
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer == l && h->point == p && h->read) backend_download(be, h->read, act, (size_t)N * width * sizeof(float));
    }
}

/* backward at a hook point: add seeds, report gradients, stop the gradient at replaced rows */
static void hook_grads(llama_model *m, const llama_hook *hooks, int n_hooks, int l, llama_hook_point p, float *dact,
                       int T, int width, int64_t N) {
    backend *be = m->be;
    const size_t all = (size_t)(N * width) * sizeof(float);
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l || h->point != p || !h->grad_seed) continue;
        size_t off = 0;
        char *ws = stage_reserve(m, all);
        if (ws) BE(be, axpy, dact, 1.0f, stage(m, ws, h->grad_seed, all, &off), N * width);
    }
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l || h->point != p || !h->grad) continue;
        if (h->n_pos < 0) { backend_download(be, h->grad, dact, all); continue; }
        size_t gbytes = (size_t)h->n_pos * width * sizeof(float), off = 0;
        char *ws = backend_workspace(be, gbytes + (size_t)h->n_pos * sizeof(int32_t) + 256);
        if (!ws) continue;
        int32_t *hr = hook_rows_host(h, T);
        float *g = (float *)ws;  // the gathered rows first, then the staged indices
        off = gbytes;
        const int32_t *rows = stage(m, ws, hr, (size_t)h->n_pos * sizeof(int32_t), &off);
        BE(be, rows_gather, g, dact, rows, h->n_pos, width);
        backend_download(be, h->grad, g, gbytes);
        free(hr);
    }
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l || h->point != p || h->mode != LLAMA_HOOK_REPLACE) continue;
        if (h->n_pos < 0) { backend_memset(be, dact, 0, all); continue; }
        size_t off = 0;
        char *ws = stage_reserve(m, (size_t)h->n_pos * sizeof(int32_t));
        if (!ws) continue;
        int32_t *hr = hook_rows_host(h, T);
        BE(be, rows_fill, dact, stage(m, ws, hr, (size_t)h->n_pos * sizeof(int32_t), &off), h->n_pos, width, 0.0f);
        backend_synchronize(be);
        free(hr);
    }
}

// ---------------------------------------------------------------------------------------------
// one decoder layer, forward

void model_layer_forward(llama_model *m, int l, layer_acts *A, const float *x_in, float *x_out, int B,
                         int Tq, const int32_t *pos, const int32_t *kv_len, float *kc, float *vc, int Tk,
                         const int32_t *kv_rows, const llama_hook *hooks, int n_hooks) {
    model_layer_forward_to(m, l, LLAMA_HOOK_E, A, x_in, x_out, B, Tq, pos, kv_len, kc, vc, Tk, kv_rows, hooks, n_hooks);
}

void model_layer_forward_to(llama_model *m, int l, llama_hook_point last, layer_acts *A, const float *x_in,
                            float *x_out, int B, int Tq, const int32_t *pos, const int32_t *kv_len, float *kc,
                            float *vc, int Tk, const int32_t *kv_rows, const llama_hook *hooks, int n_hooks) {
    backend *be = m->be;
    const tensor_dtype wt = TENSOR_F32;
    float **W = m->lw[l];
    const int N = B * Tq, D = m->D, F = m->F;
    const float eps = m->cfg.rms_norm_eps;
    // attention block: a = norm(x); q,k,v = a W{q,k,v}ᵀ; rope; ctx = attn(q,k,v); h2 = x + ctx Woᵀ
    BE(be, rmsnorm_fwd, A->a, A->rstd1, x_in, W[LP_LN_IN], N, D, eps);
    model_apply_hooks(m, hooks, n_hooks, l, LLAMA_HOOK_A, A->a, Tq, D, N);
    if (last == LLAMA_HOOK_A) return;  // a run that stops at a hook point: no later op, no output
    BE(be, linear_fwd, A->q, A->a, W[LP_Q], wt, N, D, m->qdim, false);
    BE(be, linear_fwd, A->k, A->a, W[LP_K], wt, N, D, m->kvdim, false);
    BE(be, linear_fwd, A->v, A->a, W[LP_V], wt, N, D, m->kvdim, false);
    BE(be, rope_fwd, A->q, pos, m->rope_cos, m->rope_sin, N, m->H, m->Dh);
    BE(be, rope_fwd, A->k, pos, m->rope_cos, m->rope_sin, N, m->Hkv, m->Dh);
    if (kc) {
        BE(be, rows_scatter, kc, A->k, kv_rows, N, m->kvdim, ROWS_SET);
        BE(be, rows_scatter, vc, A->v, kv_rows, N, m->kvdim, ROWS_SET);
        BE(be, attention_fwd, A->ctx, A->probs, A->q, kc, vc, pos, kv_len, B, Tq, Tk, m->H, m->Hkv, m->Dh);
    } else {
        BE(be, attention_fwd, A->ctx, A->probs, A->q, A->k, A->v, pos, kv_len, B, Tq, Tq, m->H, m->Hkv, m->Dh);
    }
    model_apply_hooks(m, hooks, n_hooks, l, LLAMA_HOOK_B, A->ctx, Tq, m->qdim, N);
    if (last == LLAMA_HOOK_B) return;
    BE(be, linear_fwd, A->h2, A->ctx, W[LP_O], wt, N, m->qdim, D, false);
    BE(be, add, A->h2, A->h2, x_in, (int64_t)N * D);
    // mlp block: bn = norm(h2); d = silu(bn Wgᵀ) * (bn Wuᵀ); out = h2 + d Wdᵀ
    BE(be, rmsnorm_fwd, A->bn, A->rstd2, A->h2, W[LP_LN_POST], N, D, eps);
    model_apply_hooks(m, hooks, n_hooks, l, LLAMA_HOOK_C, A->bn, Tq, D, N);
    if (last == LLAMA_HOOK_C) return;
    BE(be, linear_fwd, A->g, A->bn, W[LP_GATE], wt, N, D, F, false);
    BE(be, linear_fwd, A->u, A->bn, W[LP_UP], wt, N, D, F, false);
    BE(be, swiglu_fwd, A->dact, A->g, A->u, (int64_t)N * F);
    model_apply_hooks(m, hooks, n_hooks, l, LLAMA_HOOK_D, A->dact, Tq, F, N);
    if (last == LLAMA_HOOK_D) return;
    BE(be, linear_fwd, x_out, A->dact, W[LP_DOWN], wt, N, F, D, false);
    BE(be, add, x_out, x_out, A->h2, (int64_t)N * D);
    model_apply_hooks(m, hooks, n_hooks, l, LLAMA_HOOK_E, x_out, Tq, D, N);
}

// ---------------------------------------------------------------------------------------------
// workspace layout: a bump allocator over one float block (sizing pass with base == NULL)

typedef struct bump { float *base; size_t off; } bump;
static float *take(bump *b, size_t n) {
    float *p = b->base ? b->base + b->off : NULL;
    b->off += (n + 15) & ~(size_t)15;  // 64-byte steps
    return p;
}

static void layout_acts(llama_model *m, bump *b, layer_acts *A, int B, int T, int Tk, bool with_probs) {
    size_t N = (size_t)B * T;
    A->rstd1 = take(b, N);
    A->a = take(b, N * m->D);
    A->q = take(b, N * m->qdim);
    A->k = take(b, N * m->kvdim);
    A->v = take(b, N * m->kvdim);
    A->probs = with_probs ? take(b, (size_t)B * m->H * T * Tk) : NULL;
    A->ctx = take(b, N * m->qdim);
    A->h2 = take(b, N * m->D);
    A->rstd2 = take(b, N);
    A->bn = take(b, N * m->D);
    A->g = take(b, N * m->F);
    A->u = take(b, N * m->F);
    A->dact = take(b, N * m->F);
}

static void layout_all(llama_model *m, struct fwd_state *st, bump *b, bool for_backward, layer_acts *scratch) {
    size_t N = (size_t)st->N, D = (size_t)m->D;
    for (int l = 0; l <= st->n_run; l++) st->xs[l] = take(b, N * D);
    for (int l = 0; l < st->n_run; l++)
        if (for_backward && l >= st->lo_int) layout_acts(m, b, &st->acts[l], st->B, st->T, st->kv_T ? st->kv_T : st->T, true);
    if (!for_backward || st->lo_int > st->start) layout_acts(m, b, scratch, st->B, st->T, st->kv_T ? st->kv_T : st->T, false);
    st->rstd_f = take(b, N);
    st->xf = take(b, N * D);
    st->xsel_loss = take(b, (size_t)st->n_loss * D);
    st->logits_loss = take(b, (size_t)st->n_loss * m->V);
    st->lse = take(b, (size_t)st->n_loss);
    st->xsel_out = take(b, (size_t)st->n_out * D);
    st->logits_out = backend_is_host(m->be) ? NULL : take(b, (size_t)st->n_out * m->V);
    if (for_backward) {
        size_t nsel = (size_t)(st->n_loss > st->n_out ? st->n_loss : st->n_out);
        st->dres = take(b, N * D);
        st->dtmp = take(b, N * D);
        st->dctx = take(b, N * m->qdim);
        st->dq = take(b, N * m->qdim);
        st->dk = take(b, N * m->kvdim);
        st->dv = take(b, N * m->kvdim);
        st->dF1 = take(b, N * m->F);
        st->dF2 = take(b, N * m->F);
        st->dxsel = take(b, nsel * D);
        if (st->kv_T) {
            st->dkc = take(b, (size_t)st->B * st->kv_T * m->kvdim);
            st->dvc = take(b, (size_t)st->B * st->kv_T * m->kvdim);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// validation

static int check_batch(const llama_model *m, const llama_batch *bt, const llama_hook *hooks, int n_hooks,
                       cis_err *err) {
    if (!bt) return err_set(err, CIS_EINVAL, "forward: no batch");
    if (bt->B < 1 || bt->T < 1) return err_set(err, CIS_EINVAL, "forward: batch B=%d T=%d: expected >= 1", bt->B, bt->T);
    if (bt->T > m->rope_P)
        return err_set(err, CIS_EINVAL, "forward: T=%d exceeds max_position_embeddings %d", bt->T, m->rope_P);
    if ((int64_t)bt->B * bt->T > INT32_MAX / 64) return err_set(err, CIS_EINVAL, "forward: batch too large");
    if (m->cfg.sliding_window > 0 && bt->T > m->cfg.sliding_window)
        return err_set(err, CIS_EINVAL, "forward: T=%d exceeds sliding_window %d (windowed attention is not implemented)",
                       bt->T, m->cfg.sliding_window);
    if (!bt->ids) return err_set(err, CIS_EINVAL, "forward: ids is NULL");
    if (bt->n_layers < 0 || bt->n_layers > m->L)
        return err_set(err, CIS_EINVAL, "forward: n_layers=%d: expected 0..%d", bt->n_layers, m->L);
    for (int b = 0; b < bt->B; b++) {
        int len = bt->lens ? bt->lens[b] : bt->T;
        if (len < 1 || len > bt->T)
            return err_set(err, CIS_EINVAL, "forward: lens[%d]=%d: expected 1..T=%d", b, len, bt->T);
        for (int t = 0; t < len; t++) {
            int id = bt->ids[(int64_t)b * bt->T + t];
            if (id < 0 || id >= m->V)
                return err_set(err, CIS_EINVAL, "forward: ids[%d][%d]=%d outside the vocabulary [0, %d)", b, t, id, m->V);
            if (bt->targets) {
                int tg = bt->targets[(int64_t)b * bt->T + t];
                if (tg != LOSS_IGNORE_INDEX && (tg < 0 || tg >= m->V))
                    return err_set(err, CIS_EINVAL, "forward: targets[%d][%d]=%d: expected -100 or [0, %d)", b, t, tg, m->V);
            }
        }
    }
    if (bt->n_out > 0) {
        if (!bt->out_b || !bt->out_t) return err_set(err, CIS_EINVAL, "forward: n_out=%d but out_b/out_t NULL", bt->n_out);
        if ((int64_t)bt->n_out > (int64_t)bt->B * bt->T)
            return err_set(err, CIS_EINVAL, "forward: n_out=%d exceeds the batch's %d rows", bt->n_out, bt->B * bt->T);
        for (int i = 0; i < bt->n_out; i++)
            if (bt->out_b[i] < 0 || bt->out_b[i] >= bt->B || bt->out_t[i] < 0 || bt->out_t[i] >= bt->T)
                return err_set(err, CIS_EINVAL, "forward: output position %d = (%d, %d) outside [%d, %d]", i,
                               bt->out_b[i], bt->out_t[i], bt->B, bt->T);
    }
    if (bt->n_layers > 0 && bt->n_out != 0)
        return err_set(err, CIS_EINVAL, "forward: logits asked for with n_layers=%d (no head is run)", bt->n_layers);
    int run0 = bt->n_layers ? bt->n_layers : m->L;
    if (bt->start_layer < 0 || bt->start_layer > run0 || (bt->start_layer == run0 && run0 < m->L))
        return err_set(err, CIS_EINVAL, "forward: start_layer=%d: expected 0..%d (%s)", bt->start_layer,
                       run0 < m->L ? run0 - 1 : run0, run0 < m->L ? "the layers run" : "L: the head alone");
    if (bt->kv_T) {
        if (bt->kv_T < 0 || bt->kv_T > m->rope_P)
            return err_set(err, CIS_EINVAL, "forward: kv_T=%d: expected 1..%d", bt->kv_T, m->rope_P);
        if (bt->start_layer < 0 || bt->n_layers != 0 || bt->start_layer >= m->L)
            return err_set(err, CIS_EINVAL, "forward: kv_T needs 0 <= start_layer < %d and n_layers 0 (start_layer=%d, "
                           "n_layers=%d)", m->L, bt->start_layer, bt->n_layers);
        if (!bt->kv_k || !bt->kv_v) return err_set(err, CIS_EINVAL, "forward: kv_T=%d without kv_k/kv_v", bt->kv_T);
        for (int l = 0; l < m->L - bt->start_layer; l++)
            if (!bt->kv_k[l] || !bt->kv_v[l]) return err_set(err, CIS_EINVAL, "forward: kv_k/kv_v[%d] is NULL", l);
        for (int b = 0; b < bt->B; b++) {
            int p0 = bt->kv_pos0 ? bt->kv_pos0[b] : 0, len = bt->lens ? bt->lens[b] : bt->T;
            if (p0 < 0 || p0 + len > bt->kv_T)
                return err_set(err, CIS_EINVAL, "forward: kv_pos0[%d]=%d + length %d exceeds kv_T=%d", b, p0, len, bt->kv_T);
        }
    }
    if (bt->start_layer > 0) {
        if (!bt->x_start) return err_set(err, CIS_EINVAL, "forward: start_layer=%d without x_start", bt->start_layer);
        for (int i = 0; i < m->n_params; i++)
            if (m->trainable[i] && ((m->param_layer[i] >= 0 && m->param_layer[i] < bt->start_layer) || i == m->i_embed))
                return err_set(err, CIS_EINVAL, "forward: parameter %s is trainable but start_layer=%d skips it",
                               m->names[i], bt->start_layer);
    }
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer < 0 || h->layer >= m->L)
            return err_set(err, CIS_EINVAL, "hook %d: layer %d: expected 0..%d", k, h->layer, m->L - 1);
        if ((int)h->point < 0 || h->point > LLAMA_HOOK_E) return err_set(err, CIS_EINVAL, "hook %d: bad point %d", k, (int)h->point);
        if ((int)h->mode < 0 || h->mode > LLAMA_HOOK_REPLACE) return err_set(err, CIS_EINVAL, "hook %d: bad mode %d", k, (int)h->mode);
        if (h->mode != LLAMA_HOOK_READ && !h->value) return err_set(err, CIS_EINVAL, "hook %d: edit without value", k);
        int run = bt->n_layers ? bt->n_layers : m->L;
        if (h->layer >= run) return err_set(err, CIS_EINVAL, "hook %d: layer %d is not run (n_layers=%d)", k, h->layer, run);
        if (h->layer < bt->start_layer - 1 || (h->layer == bt->start_layer - 1 && h->point != LLAMA_HOOK_E))
            return err_set(err, CIS_EINVAL, "hook %d: layer %d point %c is before start_layer=%d (only point E of layer %d "
                           "acts on x_start)", k, h->layer, 'A' + (int)h->point, bt->start_layer, bt->start_layer - 1);
        if (h->n_pos >= 0) {
            if (h->n_pos > 0 && (!h->pos_b || !h->pos_t)) return err_set(err, CIS_EINVAL, "hook %d: n_pos=%d but no positions", k, h->n_pos);
            for (int i = 0; i < h->n_pos; i++)
                if (h->pos_b[i] < 0 || h->pos_b[i] >= bt->B || h->pos_t[i] < 0 || h->pos_t[i] >= bt->T)
                    return err_set(err, CIS_EINVAL, "hook %d: position %d = (%d, %d) outside the batch", k, i, h->pos_b[i], h->pos_t[i]);
        }
    }
    return 0;
}

/* which layers the backward must visit, from the trainable set and the hooks' gradient needs */
static void plan_backward(const llama_model *m, const llama_hook *hooks, int n_hooks, int n_run,
                          int *lo_visit, int *lo_int) {
    int need = n_run, e_min = n_run;
    for (int i = 0; i < m->n_params; i++) {
        if (!m->trainable[i]) continue;
        if (m->param_layer[i] >= 0) need = m->param_layer[i] < need ? m->param_layer[i] : need;
        else if (i == m->i_embed) need = 0;
    }
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (!h->grad) continue;
        if (h->point == LLAMA_HOOK_E) e_min = h->layer < e_min ? h->layer : e_min;
        else need = h->layer < need ? h->layer : need;
    }
    *lo_int = need < e_min + 1 ? need : e_min + 1;
    *lo_visit = need < e_min ? need : e_min;
    if (*lo_int > n_run) *lo_int = n_run;
    if (*lo_visit > n_run) *lo_visit = n_run;
}

// ---------------------------------------------------------------------------------------------
// forward

/* model_reserve_ws: grow the backend's workspace for what the ops and the hooks of a forward of
 * B x T rows with Tk keys borrow, so that a failure is a clean ENOMEM here, not in an op. */
int model_reserve_ws(llama_model *m, const llama_hook *hooks, int n_hooks, int B, int T, int Tk, cis_err *err) {
    int nt = backend_threads(m->be);
    nt = nt < 1 ? 1 : nt > 64 ? 64 : nt;
    size_t need = (size_t)nt * 64 * (size_t)Tk * sizeof(float);           // attention blocks (cpu)
    if (!backend_is_host(m->be))                                           // the device's dS [B,H,T,Tk]
        need = (size_t)B * m->H * T * (size_t)Tk * sizeof(float) > need ? (size_t)B * m->H * T * (size_t)Tk * sizeof(float) : need;
    size_t N = (size_t)B * T;
    for (int k = 0; k < n_hooks; k++) {                                    // staged hook arrays
        size_t w = (size_t)llama_hook_width(m, hooks[k].point);
        size_t h = N * w * sizeof(float) + N * sizeof(int32_t) + 512;
        need = h > need ? h : need;
    }
    if (!backend_workspace(m->be, need))
        return err_set(err, CIS_ENOMEM, "backend %s: cannot reserve a %.1f MB workspace", backend_name(m->be), need / 1e6);
    return 0;
}

int llama_forward(llama_model *m, const llama_batch *bt, const llama_hook *hooks, int n_hooks,
                  bool for_backward, double *loss, cis_err *err) {
    if (loss) *loss = 0.0;
    if (n_hooks < 0 || (n_hooks > 0 && !hooks)) return err_set(err, CIS_EINVAL, "forward: bad hook array");
    if (check_batch(m, bt, hooks, n_hooks, err) != 0) return -1;
    if (!m->st) {
        m->st = xcalloc(1, sizeof *m->st);
        m->st->acts = xcalloc((size_t)m->L + 1, sizeof *m->st->acts);
        m->st->xs = xcalloc((size_t)m->L + 1, sizeof *m->st->xs);
    }
    struct fwd_state *st = m->st;
    st->valid = false;
    free(st->hooks);
    st->hooks = NULL;
    st->n_hooks = n_hooks;
    if (n_hooks) {
        st->hooks = xmalloc((size_t)n_hooks * sizeof *hooks);
        memcpy(st->hooks, hooks, (size_t)n_hooks * sizeof *hooks);
    }
    const int B = bt->B, T = bt->T, N = B * T, D = m->D, V = m->V;
    st->B = B; st->T = T; st->N = N;
    st->n_run = bt->n_layers ? bt->n_layers : m->L;
    st->start = bt->start_layer;
    st->kv_T = bt->kv_T;
    free(st->kv_k); free(st->kv_v);
    st->kv_k = st->kv_v = NULL;
    if (st->kv_T) {
        int nl = m->L - st->start;
        st->kv_k = xmalloc((size_t)nl * sizeof *st->kv_k);
        st->kv_v = xmalloc((size_t)nl * sizeof *st->kv_v);
        memcpy(st->kv_k, bt->kv_k, (size_t)nl * sizeof *st->kv_k);
        memcpy(st->kv_v, bt->kv_v, (size_t)nl * sizeof *st->kv_v);
    }
    st->head_run = st->n_run == m->L;
    if (for_backward) plan_backward(m, hooks, n_hooks, st->n_run, &st->lo_visit, &st->lo_int);
    else st->lo_visit = st->lo_int = st->n_run;
    /* a started forward: nothing below the start exists (check_batch refused hooks and trainable
     * parameters there), so the backward visits at most the start's input hook */
    if (st->lo_int < st->start) st->lo_int = st->start;
    if (st->lo_visit < st->start - 1) st->lo_visit = st->start - 1;

    // integer workspace: pos[N], lens[B], ids[N], loss rows/targets[N], out rows[N]
    int32_t *iw = model_iws_reserve(m, (size_t)N * 6 + 2 * B);
    if (!iw) return err_set(err, CIS_ENOMEM, "forward: out of memory (index workspace)");
    if (model_reserve_ws(m, hooks, n_hooks, B, T, st->kv_T ? st->kv_T : T, err) != 0) return -1;
    st->pos = iw; st->lens = iw + N; st->ids = st->lens + B; st->loss_rows = st->ids + N;
    st->loss_tg = st->loss_rows + N; st->out_rows = st->loss_tg + N;
    st->kv_rows = st->out_rows + N; st->kv_len = st->kv_rows + N;
    st->n_loss = 0;
    for (int b = 0; b < B; b++) {
        int len = bt->lens ? bt->lens[b] : T;
        st->lens[b] = len;
        st->kv_len[b] = (st->kv_T && bt->kv_pos0 ? bt->kv_pos0[b] : 0) + len;
        for (int t = 0; t < T; t++) {
            int64_t r = (int64_t)b * T + t;
            int p0 = st->kv_T && bt->kv_pos0 ? bt->kv_pos0[b] : 0;
            st->pos[r] = p0 + t;
            st->kv_rows[r] = (int32_t)(b * st->kv_T + p0 + t);
            st->ids[r] = t < len ? bt->ids[r] : 0;
            if (st->head_run && bt->targets && t < len && bt->targets[r] != LOSS_IGNORE_INDEX) {
                st->loss_rows[st->n_loss] = (int32_t)r;
                st->loss_tg[st->n_loss++] = bt->targets[r];
            }
        }
    }
    st->n_out = 0;
    if (st->head_run && bt->logits) {
        if (bt->n_out < 0) { st->n_out = N; for (int r = 0; r < N; r++) st->out_rows[r] = r; }
        else { st->n_out = bt->n_out; for (int i = 0; i < bt->n_out; i++) st->out_rows[i] = bt->out_b[i] * T + bt->out_t[i]; }
    }

    layer_acts scratch;
    memset(&scratch, 0, sizeof scratch);
    bump b0 = {NULL, 0};
    layout_all(m, st, &b0, for_backward, &scratch);
    float *ws = model_ws_reserve(m, b0.off);
    if (!ws) return err_set(err, CIS_ENOMEM, "forward: out of memory (%.1f MB of activations for B=%d T=%d)",
                            b0.off * 4.0 / 1e6, B, T);
    bump b1 = {ws, 0};
    layout_all(m, st, &b1, for_backward, &scratch);

    backend *be = m->be;
    model_iws_upload(m, (size_t)N * 6 + 2 * B);
    if (st->start == 0) {
        BE(be, embedding_fwd, st->xs[0], m->embed, model_dev(m, st->ids), N, D);
    } else {
        backend_copy(be, st->xs[st->start], bt->x_start, (size_t)N * D * sizeof(float));
        model_apply_hooks(m, hooks, n_hooks, st->start - 1, LLAMA_HOOK_E, st->xs[st->start], T, D, N);
    }
    for (int l = st->start; l < st->n_run; l++) {
        layer_acts *A = (for_backward && l >= st->lo_int) ? &st->acts[l] : &scratch;
        if (st->kv_T)
            model_layer_forward(m, l, A, st->xs[l], st->xs[l + 1], B, T, model_dev(m, st->pos), model_dev(m, st->kv_len),
                                st->kv_k[l - st->start], st->kv_v[l - st->start], st->kv_T, model_dev(m, st->kv_rows),
                                hooks, n_hooks);
        else
            model_layer_forward(m, l, A, st->xs[l], st->xs[l + 1], B, T, model_dev(m, st->pos), model_dev(m, st->lens),
                                NULL, NULL, T, NULL, hooks, n_hooks);
    }
    if (st->head_run) {
        BE(be, rmsnorm_fwd, st->xf, st->rstd_f, st->xs[m->L], m->norm_f, N, D, m->cfg.rms_norm_eps);
        if (st->n_loss) {
            BE(be, rows_gather, st->xsel_loss, st->xf, model_dev(m, st->loss_rows), st->n_loss, D);
            BE(be, linear_fwd, st->logits_loss, st->xsel_loss, m->head, TENSOR_F32, st->n_loss, D, V, false);
            double l = BE(be, ce_fwd, NULL, st->lse, st->logits_loss, model_dev(m, st->loss_tg), st->n_loss, V, NULL);
            if (loss) *loss = l;
        }
        if (st->n_out) {
            BE(be, rows_gather, st->xsel_out, st->xf, model_dev(m, st->out_rows), st->n_out, D);
            float *lo = st->logits_out ? st->logits_out : bt->logits;
            BE(be, linear_fwd, lo, st->xsel_out, m->head, TENSOR_F32, st->n_out, D, V, false);
            if (st->logits_out) backend_download(be, bt->logits, lo, (size_t)st->n_out * V * sizeof(float));
        }
    }
    st->valid = for_backward;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// backward

/* How far into layer_backward a layer's backward must go (the ops in their order there). The
 * lowest layer a backward visits needs no gradient at its input when nothing below it asks for one
 * (no trainable parameter, no hook, no embedding gradient below): there the backward stops after
 * the last op that feeds a trainable parameter's or a hook's gradient of this layer, and the
 * input-gradient product of that op is skipped (linear_bwd with dx NULL). The ops it keeps are the
 * same calls with the same operands, so every gradient is bit for bit the full backward's
 * (tests/worker/engine/test_model_grad.c: "partial lowest layer"). RMU on down_proj of layers
 * 5-7 needs only down_proj's dW in layer 5; the full layer would also run the MLP's and the
 * attention's input gradients. */
enum { BWD_DOWN = 1, BWD_HOOK_D, BWD_GATE_UP, BWD_HOOK_C, BWD_LN_POST, BWD_O, BWD_HOOK_B, BWD_QKV, BWD_HOOK_A, BWD_ALL };

static int layer_bwd_depth(const llama_model *m, const struct fwd_state *st, int l) {
    float *const *G = &m->grads[1 + l * LP_COUNT];
    static const int of_param[LP_COUNT] = {[LP_Q] = BWD_QKV, [LP_K] = BWD_QKV, [LP_V] = BWD_QKV, [LP_O] = BWD_O,
                                           [LP_GATE] = BWD_GATE_UP, [LP_UP] = BWD_GATE_UP, [LP_DOWN] = BWD_DOWN,
                                           [LP_LN_IN] = BWD_ALL, [LP_LN_POST] = BWD_LN_POST};
    static const int of_hook[LLAMA_HOOK_E] = {[LLAMA_HOOK_A] = BWD_HOOK_A, [LLAMA_HOOK_B] = BWD_HOOK_B,
                                              [LLAMA_HOOK_C] = BWD_HOOK_C, [LLAMA_HOOK_D] = BWD_HOOK_D};
    int d = 0;
    for (int k = 0; k < LP_COUNT; k++)
        if (G[k] && of_param[k] > d) d = of_param[k];
    for (int k = 0; k < st->n_hooks; k++) {
        const llama_hook *h = &st->hooks[k];
        if (h->layer == l && h->grad && h->point < LLAMA_HOOK_E && of_hook[h->point] > d) d = of_hook[h->point];
    }
    return d > 0 ? d : BWD_ALL;
}

/* layer l's backward, down to depth (BWD_ALL: to dL/d(layer input) in st->dres) */
static void layer_backward(llama_model *m, int l, struct fwd_state *st, int depth) {
    backend *be = m->be;
    const int32_t *pos = model_dev(m, st->pos), *lens = model_dev(m, st->lens);
    layer_acts *A = &st->acts[l];
    float **W = m->lw[l];
    float **G = &m->grads[1 + l * LP_COUNT];
    const int N = st->N, T = st->T, D = m->D, F = m->F;
    const llama_hook *hk = st->hooks;
    int nh = st->n_hooks;
    // st->dres = dL/d(layer output), hooks at E already applied
    // mlp: out = h2 + dact Wdᵀ
    BE(be, linear_bwd, depth > BWD_DOWN ? st->dF1 : NULL, G[LP_DOWN], st->dres, A->dact, W[LP_DOWN], TENSOR_F32, N, F,
       D, false);
    if (depth <= BWD_DOWN) return;
    hook_grads(m, hk, nh, l, LLAMA_HOOK_D, st->dF1, T, F, N);
    if (depth <= BWD_HOOK_D) return;
    BE(be, swiglu_bwd, st->dF1, st->dF2, st->dF1, A->g, A->u, (int64_t)N * F);
    float *dbn = depth > BWD_GATE_UP ? st->dtmp : NULL;
    BE(be, linear_bwd, dbn, G[LP_GATE], st->dF1, A->bn, W[LP_GATE], TENSOR_F32, N, D, F, false);
    BE(be, linear_bwd, dbn, G[LP_UP], st->dF2, A->bn, W[LP_UP], TENSOR_F32, N, D, F, true);
    if (depth <= BWD_GATE_UP) return;
    hook_grads(m, hk, nh, l, LLAMA_HOOK_C, st->dtmp, T, D, N);
    if (depth <= BWD_HOOK_C) return;
    BE(be, rmsnorm_bwd, st->dres, G[LP_LN_POST], st->dtmp, A->h2, W[LP_LN_POST], A->rstd2, N, D, true);
    if (depth <= BWD_LN_POST) return;
    // st->dres = dL/dh2; attention: h2 = x + ctx Woᵀ
    BE(be, linear_bwd, depth > BWD_O ? st->dctx : NULL, G[LP_O], st->dres, A->ctx, W[LP_O], TENSOR_F32, N, m->qdim, D,
       false);
    if (depth <= BWD_O) return;
    hook_grads(m, hk, nh, l, LLAMA_HOOK_B, st->dctx, T, m->qdim, N);
    if (depth <= BWD_HOOK_B) return;
    if (st->kv_T) {
        /* keys and values live in the caches: the gradient into them, then this batch's own rows
         * (the cached prefix is constant) */
        const int32_t *kvr = model_dev(m, st->kv_rows);
        BE(be, attention_bwd, st->dq, st->dkc, st->dvc, st->dctx, A->probs, A->q, st->kv_k[l - st->start],
           st->kv_v[l - st->start], model_dev(m, st->kv_len), st->B, T, st->kv_T, m->H, m->Hkv, m->Dh);
        BE(be, rows_gather, st->dk, st->dkc, kvr, N, m->kvdim);
        BE(be, rows_gather, st->dv, st->dvc, kvr, N, m->kvdim);
    } else {
        BE(be, attention_bwd, st->dq, st->dk, st->dv, st->dctx, A->probs, A->q, A->k, A->v, lens, st->B, T, T,
           m->H, m->Hkv, m->Dh);
    }
    BE(be, rope_bwd, st->dq, pos, m->rope_cos, m->rope_sin, N, m->H, m->Dh);
    BE(be, rope_bwd, st->dk, pos, m->rope_cos, m->rope_sin, N, m->Hkv, m->Dh);
    float *da = depth > BWD_QKV ? st->dtmp : NULL;
    BE(be, linear_bwd, da, G[LP_Q], st->dq, A->a, W[LP_Q], TENSOR_F32, N, D, m->qdim, false);
    BE(be, linear_bwd, da, G[LP_K], st->dk, A->a, W[LP_K], TENSOR_F32, N, D, m->kvdim, true);
    BE(be, linear_bwd, da, G[LP_V], st->dv, A->a, W[LP_V], TENSOR_F32, N, D, m->kvdim, true);
    if (depth <= BWD_QKV) return;
    hook_grads(m, hk, nh, l, LLAMA_HOOK_A, st->dtmp, T, D, N);
    if (depth <= BWD_HOOK_A) return;
    BE(be, rmsnorm_bwd, st->dres, G[LP_LN_IN], st->dtmp, st->xs[l], W[LP_LN_IN], A->rstd1, N, D, true);
    // st->dres = dL/d(layer input)
}

/* head backward for one set of rows: dxf[rows] += dlog · head; dW_head += dlogᵀ · xsel */
static void head_backward(llama_model *m, struct fwd_state *st, const float *dlog, const float *xsel,
                          const int32_t *rows, int n) {
    const int D = m->D, V = m->V;
    BE(m->be, linear_bwd, st->dxsel, m->grads[m->i_head], dlog, xsel, m->head, TENSOR_F32, n, D, V, false);
    BE(m->be, rows_scatter, st->dtmp, st->dxsel, rows, n, D, ROWS_ADD);
}

int llama_backward(llama_model *m, float loss_scale, const float *dlogits, cis_err *err) {
    struct fwd_state *st = m->st;
    if (!st || !st->valid)
        return err_set(err, CIS_ESTATE, "backward: no forward kept (call llama_forward with for_backward, once per backward)");
    st->valid = false;
    const int N = st->N, D = m->D;
    backend_memset(m->be, st->dres, 0, (size_t)N * D * sizeof(float));
    if (st->head_run && ((loss_scale != 0.0f && st->n_loss) || (dlogits && st->n_out))) {
        backend_memset(m->be, st->dtmp, 0, (size_t)N * D * sizeof(float));  // dL/dxf
        if (loss_scale != 0.0f && st->n_loss) {
            BE(m->be, ce_bwd, st->logits_loss, st->logits_loss, st->lse, model_dev(m, st->loss_tg), st->n_loss, m->V,
                          loss_scale / (float)st->n_loss);
            head_backward(m, st, st->logits_loss, st->xsel_loss, model_dev(m, st->loss_rows), st->n_loss);
        }
        if (dlogits && st->n_out) {
            size_t off = 0, bytes = (size_t)st->n_out * m->V * sizeof(float);
            char *ws = stage_reserve(m, bytes);
            if (!ws) return err_set(err, CIS_ENOMEM, "backward: no workspace for %.1f MB of logit gradients", bytes / 1e6);
            head_backward(m, st, stage(m, ws, dlogits, bytes, &off), st->xsel_out, model_dev(m, st->out_rows), st->n_out);
        }
        BE(m->be, rmsnorm_bwd, st->dres, m->grads[m->i_norm], st->dtmp, st->xs[m->L], m->norm_f, st->rstd_f, N, D, false);
    }
    /* the lowest layer visited may stop inside (layer_bwd_depth) when nothing below it needs a
     * gradient: no E hook below it, no embedding gradient */
    bool input_needed = st->lo_visit < st->lo_int || (st->lo_int == 0 && m->grads[m->i_embed]) || m->full_bwd;
    for (int l = st->n_run - 1; l >= st->lo_visit; l--) {
        hook_grads(m, st->hooks, st->n_hooks, l, LLAMA_HOOK_E, st->dres, st->T, D, N);
        if (l >= st->lo_int) layer_backward(m, l, st, l == st->lo_int && !input_needed ? layer_bwd_depth(m, st, l) : BWD_ALL);
    }
    if (m->grads[m->i_embed] && st->lo_int == 0) {
        for (int b = 0; b < st->B; b++)  // padding rows carry no gradient into the table
            backend_memset(m->be, st->dres + ((int64_t)b * st->T + st->lens[b]) * D, 0,
                           (size_t)(st->T - st->lens[b]) * D * sizeof(float));
        BE(m->be, embedding_bwd, m->grads[m->i_embed], st->dres, model_dev(m, st->ids), N, D);
    }
    return 0;
}

void model_invalidate(llama_model *m) {
    if (m->st) m->st->valid = false;
}

// ---------------------------------------------------------------------------------------------
// layer by layer

static int check_lens(const llama_model *m, int B, int T, const int32_t *lens, const char *what, cis_err *err) {
    if (B < 1 || T < 1 || T > m->rope_P || (int64_t)B * T > INT32_MAX / 64)
        return err_set(err, CIS_EINVAL, "%s: B=%d T=%d: expected B >= 1 and 1 <= T <= %d", what, B, T, m->rope_P);
    for (int b = 0; lens && b < B; b++)
        if (lens[b] < 1 || lens[b] > T) return err_set(err, CIS_EINVAL, "%s: lens[%d]=%d: expected 1..T=%d", what, b, lens[b], T);
    return 0;
}

int llama_embed(llama_model *m, int B, int T, const int32_t *ids, const int32_t *lens, float *x, cis_err *err) {
    if (!ids || !x) return err_set(err, CIS_EINVAL, "embed: NULL ids or output");
    if (check_lens(m, B, T, lens, "embed", err) != 0) return -1;
    model_invalidate(m);
    int32_t *iw = model_iws_reserve(m, (size_t)B * T);
    if (!iw) return err_set(err, CIS_ENOMEM, "embed: out of memory (index workspace)");
    for (int b = 0; b < B; b++) {
        int len = lens ? lens[b] : T;
        for (int t = 0; t < T; t++) {
            int64_t r = (int64_t)b * T + t;
            int id = t < len ? ids[r] : 0;
            if (id < 0 || id >= m->V) return err_set(err, CIS_EINVAL, "embed: ids[%d][%d]=%d outside [0, %d)", b, t, id, m->V);
            iw[r] = id;
        }
    }
    BE(m->be, embedding_fwd, x, m->embed, model_iws_upload(m, (size_t)B * T), B * T, m->D);
    return 0;
}

/* layer l on x_in through hook point `last` (E: the whole layer into x_out; A..D: x_out unused) */
static int layer_run(llama_model *m, int l, llama_hook_point last, int B, int T, const int32_t *lens, const float *x_in,
                     float *x_out, const llama_hook *hooks, int n_hooks, cis_err *err) {
    if (l < 0 || l >= m->L) return err_set(err, CIS_EINVAL, "layer_run: layer %d: expected 0..%d", l, m->L - 1);
    if (check_lens(m, B, T, lens, "layer_run", err) != 0) return -1;
    if (n_hooks < 0 || (n_hooks > 0 && !hooks)) return err_set(err, CIS_EINVAL, "layer_run: bad hook array");
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l) continue;
        if ((int)h->point < 0 || h->point > LLAMA_HOOK_E || (int)h->mode < 0 || h->mode > LLAMA_HOOK_REPLACE ||
            (h->mode != LLAMA_HOOK_READ && !h->value))
            return err_set(err, CIS_EINVAL, "layer_run: hook %d: bad point, mode or value", k);
        if (h->point > last)
            return err_set(err, CIS_EINVAL, "layer_run: hook %d at point %c is after the last point run (%c)", k,
                           'A' + (int)h->point, 'A' + (int)last);
        for (int i = 0; i < h->n_pos; i++)
            if (!h->pos_b || !h->pos_t || h->pos_b[i] < 0 || h->pos_b[i] >= B || h->pos_t[i] < 0 || h->pos_t[i] >= T)
                return err_set(err, CIS_EINVAL, "layer_run: hook %d: position %d outside the batch", k, i);
    }
    model_invalidate(m);
    const int N = B * T;
    layer_acts A;
    memset(&A, 0, sizeof A);
    bump b0 = {NULL, 0};
    layout_acts(m, &b0, &A, B, T, T, false);
    float *ws = model_ws_reserve(m, b0.off);
    int32_t *iw = model_iws_reserve(m, (size_t)N + B);
    if (!ws || !iw) return err_set(err, CIS_ENOMEM, "layer_run: out of memory (%.1f MB)", b0.off * 4.0 / 1e6);
    if (model_reserve_ws(m, hooks, n_hooks, B, T, T, err) != 0) return -1;
    bump b1 = {ws, 0};
    layout_acts(m, &b1, &A, B, T, T, false);
    int32_t *pos = iw, *kl = iw + N;
    for (int b = 0; b < B; b++) {
        kl[b] = lens ? lens[b] : T;
        for (int t = 0; t < T; t++) pos[b * T + t] = t;
    }
    model_iws_upload(m, (size_t)N + B);
    model_layer_forward_to(m, l, last, &A, x_in, x_out, B, T, model_dev(m, pos), model_dev(m, kl), NULL, NULL, T, NULL,
                           hooks, n_hooks);
    return 0;
}

int llama_layer_run(llama_model *m, int l, int B, int T, const int32_t *lens, const float *x_in, float *x_out,
                    const llama_hook *hooks, int n_hooks, cis_err *err) {
    if (!x_in || !x_out || x_in == x_out) return err_set(err, CIS_EINVAL, "layer_run: NULL or aliased x_in/x_out");
    return layer_run(m, l, LLAMA_HOOK_E, B, T, lens, x_in, x_out, hooks, n_hooks, err);
}

int llama_layer_run_to(llama_model *m, int l, llama_hook_point last, int B, int T, const int32_t *lens,
                       const float *x_in, const llama_hook *hooks, int n_hooks, cis_err *err) {
    if (!x_in) return err_set(err, CIS_EINVAL, "layer_run_to: NULL x_in");
    if ((int)last < (int)LLAMA_HOOK_A || last >= LLAMA_HOOK_E)
        return err_set(err, CIS_EINVAL, "layer_run_to: last point %d: expected A..D (E is llama_layer_run)", (int)last);
    return layer_run(m, l, last, B, T, lens, x_in, NULL, hooks, n_hooks, err);
}
