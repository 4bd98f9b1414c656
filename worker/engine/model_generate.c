/* model_generate.c - greedy generation with a KV cache (the editing metrics) and batched
 * log-likelihood of continuations (multiple choice and perplexity), both on the shared layer
 * forward of model_forward.c. The KV cache and activations live in the backend's memory; the
 * host builds the index arrays of each step, uploads them, and downloads one row of logits per
 * sequence for the argmax. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "worker/engine/model_internal.h"

#ifndef GEN_MAX_BATCH
#define GEN_MAX_BATCH 32
#endif

static int argmax_row(const float *x, int V) {
    int best = 0;
    for (int j = 1; j < V; j++)
        if (x[j] > x[best]) best = j;
    return best;
}

static bool is_eos(const llama_config *c, int id) {
    for (int i = 0; i < c->n_eos; i++)
        if (c->eos_token_ids[i] == id) return true;
    return false;
}

/* one cached step for Bc rows of Tq tokens; writes the logits of row b's token at last_row[b]
 * (= b*Tq + last) into host logits[b] ([Bc, V]). Buffers come from the model workspace laid out by
 * the caller; ids, pos, kv_len, kv_rows, last_row are in iws (host) and uploaded here. */
typedef struct gen_bufs {
    layer_acts A;
    float *x0, *x1, *xsel, *logits;   /* backend: [N,D], [N,D], [Bc,D], [Bc,V] */
    float *kc, *vc;                   /* backend: [L][Bc, Tk, kvdim] */
    float *host_logits;               /* host [Bc, V] */
} gen_bufs;

static void cached_step(llama_model *m, gen_bufs *g, int Bc, int Tq, int Tk, const int32_t *ids,
                        const int32_t *pos, const int32_t *kv_len, const int32_t *kv_rows, const int32_t *last_row,
                        size_t n_iws) {
    const int N = Bc * Tq, D = m->D;
    backend *be = m->be;
    size_t cstride = (size_t)Bc * Tk * m->kvdim;
    model_iws_upload(m, n_iws);
    BE(be, embedding_fwd, g->x0, m->embed, model_dev(m, ids), N, D);
    float *xa = g->x0, *xb = g->x1;
    for (int l = 0; l < m->L; l++) {
        model_layer_forward(m, l, &g->A, xa, xb, Bc, Tq, model_dev(m, pos), model_dev(m, kv_len), g->kc + l * cstride,
                            g->vc + l * cstride, Tk, model_dev(m, kv_rows), NULL, 0);
        float *t = xa; xa = xb; xb = t;
    }
    BE(be, rows_gather, g->xsel, xa, model_dev(m, last_row), Bc, D);
    BE(be, rmsnorm_fwd, g->xsel, NULL, g->xsel, m->norm_f, Bc, D, m->cfg.rms_norm_eps);
    float *lo = backend_is_host(be) ? g->host_logits : g->logits;
    BE(be, linear_fwd, lo, g->xsel, m->head, TENSOR_F32, Bc, D, m->V, false);
    if (lo != g->host_logits) backend_download(be, g->host_logits, lo, (size_t)Bc * m->V * sizeof(float));
}

int llama_generate(llama_model *m, int n, const int32_t *const *prompts, const int *prompt_lens,
                   int max_length, int32_t *out, int *out_lens, cis_err *err) {
    return llama_generate_until(m, n, prompts, prompt_lens, max_length, NULL, NULL, 0, out, out_lens, err);
}

static bool in_list(const int32_t *ids, int n, int32_t id) {
    for (int i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

int llama_generate_until(llama_model *m, int n, const int32_t *const *prompts, const int *prompt_lens,
                         int max_length, const int *stop_after, const int32_t *skip, int n_skip, int32_t *out,
                         int *out_lens, cis_err *err) {
    if (n_skip < 0 || (n_skip > 0 && !skip)) return err_set(err, CIS_EINVAL, "generate: bad skip list");
    if (n < 0 || (n > 0 && (!prompts || !prompt_lens || !out || !out_lens)))
        return err_set(err, CIS_EINVAL, "generate: bad arguments");
    if (max_length < 1 || max_length > m->rope_P)
        return err_set(err, CIS_EINVAL, "generate: max_length=%d: expected 1..%d", max_length, m->rope_P);
    if (m->cfg.sliding_window > 0 && max_length > m->cfg.sliding_window)
        return err_set(err, CIS_EINVAL, "generate: max_length=%d exceeds sliding_window %d (not implemented)", max_length,
                       m->cfg.sliding_window);
    for (int i = 0; i < n; i++) {
        if (prompt_lens[i] < 1 || prompt_lens[i] > max_length)
            return err_set(err, CIS_EINVAL, "generate: prompt %d length %d: expected 1..max_length=%d", i,
                           prompt_lens[i], max_length);
        for (int t = 0; t < prompt_lens[i]; t++)
            if (prompts[i][t] < 0 || prompts[i][t] >= m->V)
                return err_set(err, CIS_EINVAL, "generate: prompt %d token %d = %d outside [0, %d)", i, t,
                               prompts[i][t], m->V);
    }
    model_invalidate(m);
    const int D = m->D, V = m->V, Tk = max_length;
    for (int c0 = 0; c0 < n; c0 += GEN_MAX_BATCH) {
        int Bc = n - c0 < GEN_MAX_BATCH ? n - c0 : GEN_MAX_BATCH;
        int Tp = 1;
        for (int b = 0; b < Bc; b++) Tp = prompt_lens[c0 + b] > Tp ? prompt_lens[c0 + b] : Tp;
        size_t N = (size_t)Bc * Tp;
        size_t per_rows = N * (2 + 3 * (size_t)D + 2 * (size_t)m->qdim + 2 * (size_t)m->kvdim + 3 * (size_t)m->F);
        size_t cache = 2 * (size_t)m->L * Bc * Tk * m->kvdim;
        size_t need = per_rows + 2 * N * D + (size_t)Bc * D + (size_t)Bc * V + cache + 64;
        float *w = model_ws_reserve(m, need);
        size_t n_iws = 4 * N + 4 * (size_t)Bc;
        int32_t *iw = model_iws_reserve(m, n_iws);
        if (!w || !iw) return err_set(err, CIS_ENOMEM, "generate: out of memory (%.1f MB)", need * 4.0 / 1e6);
        if (model_reserve_ws(m, NULL, 0, Bc, Tp, Tk, err) != 0) return -1;
        gen_bufs g;
        g.host_logits = malloc((size_t)Bc * V * sizeof(float));
        if (!g.host_logits) return err_set(err, CIS_ENOMEM, "generate: out of memory for %d x %d logits", Bc, V);
        int counted[GEN_MAX_BATCH] = {0};  // emitted tokens not in skip, per row (stop_after)
        float *p = w;
#define TAKE(ptr, k) do { (ptr) = p; p += (k); } while (0)
        TAKE(g.A.rstd1, N); TAKE(g.A.a, N * D); TAKE(g.A.q, N * m->qdim); TAKE(g.A.k, N * m->kvdim);
        TAKE(g.A.v, N * m->kvdim); g.A.probs = NULL; TAKE(g.A.ctx, N * m->qdim); TAKE(g.A.h2, N * D);
        TAKE(g.A.rstd2, N); TAKE(g.A.bn, N * D); TAKE(g.A.g, N * m->F); TAKE(g.A.u, N * m->F);
        TAKE(g.A.dact, N * m->F); TAKE(g.x0, N * D); TAKE(g.x1, N * D); TAKE(g.xsel, (size_t)Bc * D);
        TAKE(g.logits, (size_t)Bc * V); TAKE(g.kc, cache / 2); TAKE(g.vc, cache / 2);
#undef TAKE
        // iws: ids[N] pos[N] kv_rows[N] kv_len[Bc] last_row[Bc] | host only: cur[Bc] done[Bc]
        int32_t *ids = iw, *pos = iw + N, *kv_rows = iw + 2 * N, *kv_len = iw + 3 * N, *last = kv_len + Bc;
        int32_t *cur = last + Bc, *done = cur + Bc;
        size_t n_up = 3 * N + 2 * (size_t)Bc;
        // prefill: right-padded prompts, each at positions 0..len-1
        for (int b = 0; b < Bc; b++) {
            int pl = prompt_lens[c0 + b];
            int32_t *o = out + (int64_t)(c0 + b) * max_length;
            for (int t = 0; t < max_length; t++) o[t] = t < pl ? prompts[c0 + b][t] : -1;
            for (int t = 0; t < Tp; t++) {
                ids[b * Tp + t] = t < pl ? prompts[c0 + b][t] : 0;
                pos[b * Tp + t] = t;
                kv_rows[b * Tp + t] = b * Tk + t;
            }
            kv_len[b] = pl;
            last[b] = b * Tp + pl - 1;
            cur[b] = pl;
            done[b] = pl >= max_length;
        }
        cached_step(m, &g, Bc, Tp, Tk, ids, pos, kv_len, kv_rows, last, n_up);
        for (;;) {
            int active = 0;
            for (int b = 0; b < Bc; b++) {
                if (done[b]) continue;
                int tok = argmax_row(g.host_logits + (int64_t)b * V, V);
                out[(int64_t)(c0 + b) * max_length + cur[b]] = tok;
                cur[b]++;
                if (stop_after && stop_after[c0 + b] >= 0 && !in_list(skip, n_skip, tok)) counted[b]++;
                if (is_eos(&m->cfg, tok) || cur[b] >= max_length) done[b] = 1;
                else if (stop_after && stop_after[c0 + b] >= 0 && counted[b] >= stop_after[c0 + b]) done[b] = 1;
                else active++;
            }
            if (!active) break;
            // decode: one token per row at position cur-1; finished rows recompute a harmless slot 0
            for (int b = 0; b < Bc; b++) {
                int32_t *o = out + (int64_t)(c0 + b) * max_length;
                if (done[b]) { ids[b] = 0; pos[b] = 0; kv_len[b] = 1; }
                else { ids[b] = o[cur[b] - 1]; pos[b] = cur[b] - 1; kv_len[b] = cur[b]; }
                kv_rows[b] = b * Tk + pos[b];
                last[b] = b;
            }
            cached_step(m, &g, Bc, 1, Tk, ids, pos, kv_len, kv_rows, last, n_up);  // first Bc entries of each
        }
        for (int b = 0; b < Bc; b++) out_lens[c0 + b] = cur[b];
        free(g.host_logits);
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// log-likelihood of continuations

typedef struct ll_req { int idx, T; } ll_req;

static int cmp_req(const void *a, const void *b) {
    const ll_req *x = a, *y = b;
    if (x->T != y->T) return y->T - x->T;  // longest first, then by index (stable, deterministic)
    return x->idx - y->idx;
}

int llama_loglik(llama_model *m, int n, const int32_t *const *ctx, const int *ctx_lens,
                 const int32_t *const *cont, const int *cont_lens, int max_batch_tokens,
                 double *ll, bool *is_greedy, cis_err *err) {
    if (n < 0 || (n > 0 && (!ctx || !ctx_lens || !cont || !cont_lens || !ll)))
        return err_set(err, CIS_EINVAL, "loglik: bad arguments");
    if (max_batch_tokens <= 0) max_batch_tokens = 4096;
    ll_req *rq = xmalloc((size_t)(n ? n : 1) * sizeof *rq);
    for (int i = 0; i < n; i++) {
        if (ctx_lens[i] < 1 || cont_lens[i] < 1 || ctx_lens[i] + cont_lens[i] - 1 > m->rope_P) {
            free(rq);
            return err_set(err, CIS_EINVAL, "loglik: request %d: context %d + continuation %d tokens: expected "
                           ">= 1 each and at most %d positions", i, ctx_lens[i], cont_lens[i], m->rope_P + 1);
        }
        rq[i].idx = i;
        rq[i].T = ctx_lens[i] + cont_lens[i] - 1;
    }
    qsort(rq, (size_t)n, sizeof *rq, cmp_req);
    int rc = 0;
    for (int s = 0; s < n && rc == 0;) {
        int T = rq[s].T, e = s + 1;
        while (e < n && (int64_t)(e - s + 1) * T <= max_batch_tokens) e++;
        int B = e - s, n_out = 0;
        for (int i = s; i < e; i++) n_out += cont_lens[rq[i].idx];
        int32_t *ids = xcalloc((size_t)B * T, sizeof *ids);
        int32_t *lens = xmalloc((size_t)B * sizeof *lens);
        int32_t *ob = xmalloc((size_t)n_out * sizeof *ob), *ot = xmalloc((size_t)n_out * sizeof *ot);
        int32_t *tok = xmalloc((size_t)n_out * sizeof *tok);
        float *logits = malloc((size_t)n_out * m->V * sizeof(float));
        if (!logits) { rc = err_set(err, CIS_ENOMEM, "loglik: out of memory for %d x %d logits", n_out, m->V); }
        int k = 0;
        for (int b = 0; b < B && !rc; b++) {
            int i = rq[s + b].idx, cl = ctx_lens[i], nl = cont_lens[i];
            lens[b] = cl + nl - 1;
            for (int t = 0; t < lens[b]; t++) ids[(int64_t)b * T + t] = t < cl ? ctx[i][t] : cont[i][t - cl];
            for (int j = 0; j < nl; j++) { ob[k] = b; ot[k] = cl - 1 + j; tok[k] = cont[i][j]; k++; }
        }
        for (int j = 0; j < n_out && !rc; j++)
            if (tok[j] < 0 || tok[j] >= m->V) rc = err_set(err, CIS_EINVAL, "loglik: continuation token %d outside [0, %d)", tok[j], m->V);
        if (!rc) {
            llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .n_out = n_out, .out_b = ob, .out_t = ot,
                              .logits = logits};
            rc = llama_forward(m, &bt, NULL, 0, false, NULL, err);
        }
        k = 0;
        for (int b = 0; b < B && !rc; b++) {
            int i = rq[s + b].idx;
            double sum = 0.0;
            bool greedy = true;
            for (int j = 0; j < cont_lens[i]; j++, k++) {
                const float *x = logits + (int64_t)k * m->V;
                float mx = x[0];
                for (int v = 1; v < m->V; v++) mx = x[v] > mx ? x[v] : mx;
                double se = 0.0;
                for (int v = 0; v < m->V; v++) se += exp((double)x[v] - mx);
                sum += (double)x[tok[k]] - mx - log(se);
                if (argmax_row(x, m->V) != tok[k]) greedy = false;
            }
            ll[i] = sum;
            if (is_greedy) is_greedy[i] = greedy;
        }
        free(ids); free(lens); free(ob); free(ot); free(tok); free(logits);
        s = e;
    }
    free(rq);
    return rc;
}
