/* model_forward.c - the batched forward pass over right-padded sequences, the head and loss, the
 * hooks at points A-E, and the backward pass to the trainable subset and to hooked activations.
 * The layer forward here is shared with generation (KV-cache mode) in model_generate.c. */
#include <stdlib.h>
#include <string.h>

#include "worker/engine/model_internal.h"

/* state saved by llama_forward(for_backward = true) for llama_backward */
struct fwd_state {
    bool valid;
    int B, T, N, n_run;       /* batch, padded length, rows, layers run */
    int lo_visit, lo_int;     /* backward visits layers >= lo_visit, runs layer internals >= lo_int */
    llama_hook *hooks;        /* copy of the caller's hook array */
    int n_hooks;
    layer_acts *acts;         /* [L]; valid for lo_int <= l < n_run */
    float **xs;               /* [L+1] residual stream: xs[l] = input of layer l */
    int32_t *pos, *lens, *ids;/* [N], [B], [N] */
    bool head_run;
    float *rstd_f, *xf;       /* [N], [N, D] */
    int n_loss;
    int32_t *loss_rows, *loss_tg;     /* [n_loss] */
    float *xsel_loss, *logits_loss, *lse;  /* [n_loss, D], [n_loss, V], [n_loss] */
    int n_out;
    int32_t *out_rows;        /* [n_out] */
    float *xsel_out;          /* [n_out, D] */
    /* backward buffers */
    float *dres, *dtmp, *dctx, *dq, *dk, *dv, *dF1, *dF2, *dxsel;
};

void model_fwd_state_free(llama_model *m) {
    if (!m->st) return;
    free(m->st->hooks);
    free(m->st->acts);
    free(m->st->xs);
    free(m->st);
    m->st = NULL;
}

// ---------------------------------------------------------------------------------------------
// hooks

void model_apply_hooks(const llama_hook *hooks, int n_hooks, int l, llama_hook_point p, float *act,
                       int T, int width, int64_t N) {
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l || h->point != p || h->mode == LLAMA_HOOK_READ) continue;
        int64_t nr = model_hook_nrows(h, N);
        for (int64_t i = 0; i < nr; i++) {
            float *dst = act + model_hook_row(h, T, i) * width;
            const float *src = h->value + i * width;
            if (h->mode == LLAMA_HOOK_ADD)
                for (int j = 0; j < width; j++) dst[j] += src[j];
            else
                memcpy(dst, src, (size_t)width * sizeof(float));
        }
    }
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer == l && h->point == p && h->read) memcpy(h->read, act, (size_t)N * width * sizeof(float));
    }
}

/* backward at a hook point: add seeds, report gradients, stop the gradient at replaced rows */
static void hook_grads(const llama_hook *hooks, int n_hooks, int l, llama_hook_point p, float *dact,
                       int T, int width, int64_t N) {
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer == l && h->point == p && h->grad_seed)
            for (int64_t i = 0; i < N * width; i++) dact[i] += h->grad_seed[i];
    }
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l || h->point != p || !h->grad) continue;
        int64_t nr = model_hook_nrows(h, N);
        for (int64_t i = 0; i < nr; i++)
            memcpy(h->grad + i * width, dact + model_hook_row(h, T, i) * width, (size_t)width * sizeof(float));
    }
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l || h->point != p || h->mode != LLAMA_HOOK_REPLACE) continue;
        int64_t nr = model_hook_nrows(h, N);
        for (int64_t i = 0; i < nr; i++) memset(dact + model_hook_row(h, T, i) * width, 0, (size_t)width * sizeof(float));
    }
}

// ---------------------------------------------------------------------------------------------
// one decoder layer, forward

void model_layer_forward(llama_model *m, int l, layer_acts *A, const float *x_in, float *x_out, int B,
                         int Tq, const int32_t *pos, const int32_t *kv_len, float *kc, float *vc, int Tk,
                         const llama_hook *hooks, int n_hooks) {
    const backend_ops *be = m->be;
    float **W = m->lw[l];
    const int N = B * Tq, D = m->D, F = m->F;
    const float eps = m->cfg.rms_norm_eps;
    // attention block: a = norm(x); q,k,v = a W{q,k,v}ᵀ; rope; ctx = attn(q,k,v); h2 = x + ctx Woᵀ
    be->rmsnorm_fwd(A->a, A->rstd1, x_in, W[LP_LN_IN], N, D, eps);
    model_apply_hooks(hooks, n_hooks, l, LLAMA_HOOK_A, A->a, Tq, D, N);
    be->linear_fwd(A->q, A->a, W[LP_Q], N, D, m->qdim, false);
    be->linear_fwd(A->k, A->a, W[LP_K], N, D, m->kvdim, false);
    be->linear_fwd(A->v, A->a, W[LP_V], N, D, m->kvdim, false);
    be->rope_fwd(A->q, pos, m->rope_cos, m->rope_sin, N, m->H, m->Dh);
    be->rope_fwd(A->k, pos, m->rope_cos, m->rope_sin, N, m->Hkv, m->Dh);
    if (kc) {
        for (int b = 0; b < B; b++)
            for (int t = 0; t < Tq; t++) {
                int64_t r = (int64_t)b * Tq + t, dst = ((int64_t)b * Tk + pos[r]) * m->kvdim;
                memcpy(kc + dst, A->k + r * m->kvdim, (size_t)m->kvdim * sizeof(float));
                memcpy(vc + dst, A->v + r * m->kvdim, (size_t)m->kvdim * sizeof(float));
            }
        be->attention_fwd(A->ctx, A->probs, A->q, kc, vc, pos, kv_len, B, Tq, Tk, m->H, m->Hkv, m->Dh);
    } else {
        be->attention_fwd(A->ctx, A->probs, A->q, A->k, A->v, pos, kv_len, B, Tq, Tq, m->H, m->Hkv, m->Dh);
    }
    model_apply_hooks(hooks, n_hooks, l, LLAMA_HOOK_B, A->ctx, Tq, m->qdim, N);
    be->linear_fwd(A->h2, A->ctx, W[LP_O], N, m->qdim, D, false);
    be->add(A->h2, A->h2, x_in, (int64_t)N * D);
    // mlp block: bn = norm(h2); d = silu(bn Wgᵀ) * (bn Wuᵀ); out = h2 + d Wdᵀ
    be->rmsnorm_fwd(A->bn, A->rstd2, A->h2, W[LP_LN_POST], N, D, eps);
    model_apply_hooks(hooks, n_hooks, l, LLAMA_HOOK_C, A->bn, Tq, D, N);
    be->linear_fwd(A->g, A->bn, W[LP_GATE], N, D, F, false);
    be->linear_fwd(A->u, A->bn, W[LP_UP], N, D, F, false);
    be->swiglu_fwd(A->dact, A->g, A->u, (int64_t)N * F);
    model_apply_hooks(hooks, n_hooks, l, LLAMA_HOOK_D, A->dact, Tq, F, N);
    be->linear_fwd(x_out, A->dact, W[LP_DOWN], N, F, D, false);
    be->add(x_out, x_out, A->h2, (int64_t)N * D);
    model_apply_hooks(hooks, n_hooks, l, LLAMA_HOOK_E, x_out, Tq, D, N);
}

// ---------------------------------------------------------------------------------------------
// workspace layout: a bump allocator over one float block (sizing pass with base == NULL)

typedef struct bump { float *base; size_t off; } bump;
static float *take(bump *b, size_t n) {
    float *p = b->base ? b->base + b->off : NULL;
    b->off += (n + 15) & ~(size_t)15;  // 64-byte steps
    return p;
}

static void layout_acts(llama_model *m, bump *b, layer_acts *A, int B, int T, bool with_probs) {
    size_t N = (size_t)B * T;
    A->rstd1 = take(b, N);
    A->a = take(b, N * m->D);
    A->q = take(b, N * m->qdim);
    A->k = take(b, N * m->kvdim);
    A->v = take(b, N * m->kvdim);
    A->probs = with_probs ? take(b, (size_t)B * m->H * T * T) : NULL;
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
        if (for_backward && l >= st->lo_int) layout_acts(m, b, &st->acts[l], st->B, st->T, true);
    if (!for_backward || st->lo_int > 0) layout_acts(m, b, scratch, st->B, st->T, false);
    st->rstd_f = take(b, N);
    st->xf = take(b, N * D);
    st->xsel_loss = take(b, (size_t)st->n_loss * D);
    st->logits_loss = take(b, (size_t)st->n_loss * m->V);
    st->lse = take(b, (size_t)st->n_loss);
    st->xsel_out = take(b, (size_t)st->n_out * D);
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
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer < 0 || h->layer >= m->L)
            return err_set(err, CIS_EINVAL, "hook %d: layer %d: expected 0..%d", k, h->layer, m->L - 1);
        if ((int)h->point < 0 || h->point > LLAMA_HOOK_E) return err_set(err, CIS_EINVAL, "hook %d: bad point %d", k, (int)h->point);
        if ((int)h->mode < 0 || h->mode > LLAMA_HOOK_REPLACE) return err_set(err, CIS_EINVAL, "hook %d: bad mode %d", k, (int)h->mode);
        if (h->mode != LLAMA_HOOK_READ && !h->value) return err_set(err, CIS_EINVAL, "hook %d: edit without value", k);
        int run = bt->n_layers ? bt->n_layers : m->L;
        if (h->layer >= run) return err_set(err, CIS_EINVAL, "hook %d: layer %d is not run (n_layers=%d)", k, h->layer, run);
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

static void gather_rows(float *dst, const float *src, const int32_t *rows, int n, int D) {
    for (int i = 0; i < n; i++) memcpy(dst + (int64_t)i * D, src + (int64_t)rows[i] * D, (size_t)D * sizeof(float));
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
    st->head_run = st->n_run == m->L;
    if (for_backward) plan_backward(m, hooks, n_hooks, st->n_run, &st->lo_visit, &st->lo_int);
    else st->lo_visit = st->lo_int = st->n_run;

    // integer workspace: pos[N], lens[B], ids[N], loss rows/targets[N], out rows[N]
    int32_t *iw = model_iws_reserve(m, (size_t)N * 5 + B);
    if (!iw) return err_set(err, CIS_ENOMEM, "forward: out of memory (index workspace)");
    st->pos = iw; st->lens = iw + N; st->ids = st->lens + B; st->loss_rows = st->ids + N;
    st->loss_tg = st->loss_rows + N; st->out_rows = st->loss_tg + N;
    st->n_loss = 0;
    for (int b = 0; b < B; b++) {
        int len = bt->lens ? bt->lens[b] : T;
        st->lens[b] = len;
        for (int t = 0; t < T; t++) {
            int64_t r = (int64_t)b * T + t;
            st->pos[r] = t;
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

    m->be->embedding_fwd(st->xs[0], m->embed, st->ids, N, D);
    for (int l = 0; l < st->n_run; l++) {
        layer_acts *A = (for_backward && l >= st->lo_int) ? &st->acts[l] : &scratch;
        model_layer_forward(m, l, A, st->xs[l], st->xs[l + 1], B, T, st->pos, st->lens, NULL, NULL, T,
                            hooks, n_hooks);
    }
    if (st->head_run) {
        m->be->rmsnorm_fwd(st->xf, st->rstd_f, st->xs[m->L], m->norm_f, N, D, m->cfg.rms_norm_eps);
        if (st->n_loss) {
            gather_rows(st->xsel_loss, st->xf, st->loss_rows, st->n_loss, D);
            m->be->linear_fwd(st->logits_loss, st->xsel_loss, m->head, st->n_loss, D, V, false);
            double l = m->be->ce_fwd(NULL, st->lse, st->logits_loss, st->loss_tg, st->n_loss, V, NULL);
            if (loss) *loss = l;
        }
        if (st->n_out) {
            gather_rows(st->xsel_out, st->xf, st->out_rows, st->n_out, D);
            m->be->linear_fwd(bt->logits, st->xsel_out, m->head, st->n_out, D, V, false);
        }
    }
    st->valid = for_backward;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// backward

static void layer_backward(llama_model *m, int l, struct fwd_state *st) {
    const backend_ops *be = m->be;
    layer_acts *A = &st->acts[l];
    float **W = m->lw[l];
    float **G = &m->grads[1 + l * LP_COUNT];
    const int N = st->N, T = st->T, D = m->D, F = m->F;
    const llama_hook *hk = st->hooks;
    int nh = st->n_hooks;
    // st->dres = dL/d(layer output), hooks at E already applied
    // mlp: out = h2 + dact Wdᵀ
    be->linear_bwd(st->dF1, G[LP_DOWN], st->dres, A->dact, W[LP_DOWN], N, F, D, false);
    hook_grads(hk, nh, l, LLAMA_HOOK_D, st->dF1, T, F, N);
    be->swiglu_bwd(st->dF1, st->dF2, st->dF1, A->g, A->u, (int64_t)N * F);
    be->linear_bwd(st->dtmp, G[LP_GATE], st->dF1, A->bn, W[LP_GATE], N, D, F, false);
    be->linear_bwd(st->dtmp, G[LP_UP], st->dF2, A->bn, W[LP_UP], N, D, F, true);
    hook_grads(hk, nh, l, LLAMA_HOOK_C, st->dtmp, T, D, N);
    be->rmsnorm_bwd(st->dres, G[LP_LN_POST], st->dtmp, A->h2, W[LP_LN_POST], A->rstd2, N, D, true);
    // st->dres = dL/dh2; attention: h2 = x + ctx Woᵀ
    be->linear_bwd(st->dctx, G[LP_O], st->dres, A->ctx, W[LP_O], N, m->qdim, D, false);
    hook_grads(hk, nh, l, LLAMA_HOOK_B, st->dctx, T, m->qdim, N);
    be->attention_bwd(st->dq, st->dk, st->dv, st->dctx, A->probs, A->q, A->k, A->v, st->lens, st->B, T, T,
                      m->H, m->Hkv, m->Dh);
    be->rope_bwd(st->dq, st->pos, m->rope_cos, m->rope_sin, N, m->H, m->Dh);
    be->rope_bwd(st->dk, st->pos, m->rope_cos, m->rope_sin, N, m->Hkv, m->Dh);
    be->linear_bwd(st->dtmp, G[LP_Q], st->dq, A->a, W[LP_Q], N, D, m->qdim, false);
    be->linear_bwd(st->dtmp, G[LP_K], st->dk, A->a, W[LP_K], N, D, m->kvdim, true);
    be->linear_bwd(st->dtmp, G[LP_V], st->dv, A->a, W[LP_V], N, D, m->kvdim, true);
    hook_grads(hk, nh, l, LLAMA_HOOK_A, st->dtmp, T, D, N);
    be->rmsnorm_bwd(st->dres, G[LP_LN_IN], st->dtmp, st->xs[l], W[LP_LN_IN], A->rstd1, N, D, true);
    // st->dres = dL/d(layer input)
}

/* head backward for one set of rows: dxf[rows] += dlog · head; dW_head += dlogᵀ · xsel */
static void head_backward(llama_model *m, struct fwd_state *st, const float *dlog, const float *xsel,
                          const int32_t *rows, int n) {
    const int D = m->D, V = m->V;
    m->be->linear_bwd(st->dxsel, m->grads[m->i_head], dlog, xsel, m->head, n, D, V, false);
    for (int i = 0; i < n; i++) m->be->axpy(st->dtmp + (int64_t)rows[i] * D, 1.0f, st->dxsel + (int64_t)i * D, D);
}

int llama_backward(llama_model *m, float loss_scale, const float *dlogits, cis_err *err) {
    struct fwd_state *st = m->st;
    if (!st || !st->valid)
        return err_set(err, CIS_ESTATE, "backward: no forward kept (call llama_forward with for_backward, once per backward)");
    st->valid = false;
    const int N = st->N, D = m->D;
    memset(st->dres, 0, (size_t)N * D * sizeof(float));
    if (st->head_run && ((loss_scale != 0.0f && st->n_loss) || (dlogits && st->n_out))) {
        memset(st->dtmp, 0, (size_t)N * D * sizeof(float));  // dL/dxf
        if (loss_scale != 0.0f && st->n_loss) {
            m->be->ce_bwd(st->logits_loss, st->logits_loss, st->lse, st->loss_tg, st->n_loss, m->V,
                          loss_scale / (float)st->n_loss);
            head_backward(m, st, st->logits_loss, st->xsel_loss, st->loss_rows, st->n_loss);
        }
        if (dlogits && st->n_out) head_backward(m, st, dlogits, st->xsel_out, st->out_rows, st->n_out);
        m->be->rmsnorm_bwd(st->dres, m->grads[m->i_norm], st->dtmp, st->xs[m->L], m->norm_f, st->rstd_f, N, D, false);
    }
    for (int l = st->n_run - 1; l >= st->lo_visit; l--) {
        hook_grads(st->hooks, st->n_hooks, l, LLAMA_HOOK_E, st->dres, st->T, D, N);
        if (l >= st->lo_int) layer_backward(m, l, st);
    }
    if (m->grads[m->i_embed] && st->lo_int == 0) {
        for (int b = 0; b < st->B; b++)  // padding rows carry no gradient into the table
            memset(st->dres + ((int64_t)b * st->T + st->lens[b]) * D, 0,
                   (size_t)(st->T - st->lens[b]) * D * sizeof(float));
        m->be->embedding_bwd(m->grads[m->i_embed], st->dres, st->ids, N, D);
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
    for (int b = 0; b < B; b++) {
        int len = lens ? lens[b] : T;
        for (int t = 0; t < T; t++) {
            int64_t r = (int64_t)b * T + t;
            int id = t < len ? ids[r] : 0;
            if (id < 0 || id >= m->V) return err_set(err, CIS_EINVAL, "embed: ids[%d][%d]=%d outside [0, %d)", b, t, id, m->V);
            memcpy(x + r * m->D, m->embed + (int64_t)id * m->D, (size_t)m->D * sizeof(float));
        }
    }
    return 0;
}

int llama_layer_run(llama_model *m, int l, int B, int T, const int32_t *lens, const float *x_in, float *x_out,
                    const llama_hook *hooks, int n_hooks, cis_err *err) {
    if (!x_in || !x_out || x_in == x_out) return err_set(err, CIS_EINVAL, "layer_run: NULL or aliased x_in/x_out");
    if (l < 0 || l >= m->L) return err_set(err, CIS_EINVAL, "layer_run: layer %d: expected 0..%d", l, m->L - 1);
    if (check_lens(m, B, T, lens, "layer_run", err) != 0) return -1;
    if (n_hooks < 0 || (n_hooks > 0 && !hooks)) return err_set(err, CIS_EINVAL, "layer_run: bad hook array");
    for (int k = 0; k < n_hooks; k++) {
        const llama_hook *h = &hooks[k];
        if (h->layer != l) continue;
        if ((int)h->point < 0 || h->point > LLAMA_HOOK_E || (int)h->mode < 0 || h->mode > LLAMA_HOOK_REPLACE ||
            (h->mode != LLAMA_HOOK_READ && !h->value))
            return err_set(err, CIS_EINVAL, "layer_run: hook %d: bad point, mode or value", k);
        for (int i = 0; i < h->n_pos; i++)
            if (!h->pos_b || !h->pos_t || h->pos_b[i] < 0 || h->pos_b[i] >= B || h->pos_t[i] < 0 || h->pos_t[i] >= T)
                return err_set(err, CIS_EINVAL, "layer_run: hook %d: position %d outside the batch", k, i);
    }
    model_invalidate(m);
    const int N = B * T;
    layer_acts A;
    memset(&A, 0, sizeof A);
    bump b0 = {NULL, 0};
    layout_acts(m, &b0, &A, B, T, false);
    float *ws = model_ws_reserve(m, b0.off);
    int32_t *iw = model_iws_reserve(m, (size_t)N + B);
    if (!ws || !iw) return err_set(err, CIS_ENOMEM, "layer_run: out of memory (%.1f MB)", b0.off * 4.0 / 1e6);
    bump b1 = {ws, 0};
    layout_acts(m, &b1, &A, B, T, false);
    int32_t *pos = iw, *kl = iw + N;
    for (int b = 0; b < B; b++) {
        kl[b] = lens ? lens[b] : T;
        for (int t = 0; t < T; t++) pos[b * T + t] = t;
    }
    model_layer_forward(m, l, &A, x_in, x_out, B, T, pos, kl, NULL, NULL, T, hooks, n_hooks);
    return 0;
}
