/* eval_ppl.c - WikiText perplexity over non-overlapping windows (algorithms.md §10.4): tokenize the
 * joined text once (BOS at the start), cut floor(len/T) windows of T tokens, take each window's
 * mean CE over its T-1 next-token predictions, PPL = exp(mean of the window means). Windows are
 * batched B per llama_forward (every window has T-1 counted targets, so the batch's mean CE is
 * the mean of its window means). */
#include "worker/eval/eval.h"
#include "common/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int eval_ppl_tokens(llama_model *m, const int32_t *ids, int64_t n, int seqlen, int max_windows, int batch_tokens,
                    ppl_result *res, cis_err *err) {
    memset(res, 0, sizeof *res);
    const llama_config *cfg = llama_model_config(m);
    int T = cfg->max_position_embeddings;
    if (seqlen > 0 && seqlen < T) T = seqlen;
    if (n < 2) return err_set(err, CIS_EINVAL, "ppl: %lld tokens: need at least 2", (long long)n);
    int64_t nw = n / T;
    if (nw == 0) {
        LOG_W("ppl: the text has %lld tokens, fewer than the window %d: scoring one window of %lld tokens",
              (long long)n, T, (long long)n);
        T = (int)n;
        nw = 1;
    }
    if (max_windows > 0 && nw > max_windows) nw = max_windows;
    int B = batch_tokens > 0 ? batch_tokens / T : 1;
    if (B < 1) B = 1;
    if (B > nw) B = (int)nw;
    int32_t *tg = xmalloc((size_t)B * T * sizeof *tg);
    double sum = 0;
    int rc = 0;
    for (int64_t w0 = 0; w0 < nw && !rc; w0 += B) {
        int b = (int)(nw - w0 < B ? nw - w0 : B);
        const int32_t *x = ids + w0 * T;
        for (int i = 0; i < b; i++) {
            for (int t = 0; t < T - 1; t++) tg[(size_t)i * T + t] = x[(size_t)i * T + t + 1];
            tg[(size_t)i * T + T - 1] = LOSS_IGNORE_INDEX; /* the last position predicts nothing */
        }
        llama_batch bt = {.B = b, .T = T, .ids = x, .lens = NULL, .targets = tg, .n_out = 0};
        double loss = 0;
        rc = llama_forward(m, &bt, NULL, 0, false, &loss, err);
        if (rc) { err_prefix(err, "ppl: windows %lld..%lld", (long long)w0, (long long)(w0 + b - 1)); break; }
        sum += loss * b;
    }
    free(tg);
    if (rc) return -1;
    res->n_windows = (int)nw;
    res->seqlen = T;
    res->n_tokens = n;
    res->mean_nll = sum / (double)nw;
    res->ppl = exp(res->mean_nll);
    return 0;
}

int eval_ppl_text(llama_model *m, const tokenizer *tok, const char *text, size_t len, int seqlen, int max_windows,
                  int batch_tokens, ppl_result *res, cis_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, true, &ids, &n, err)) return -1;
    int rc = eval_ppl_tokens(m, ids, (int64_t)n, seqlen, max_windows, batch_tokens, res, err);
    free(ids);
    return rc;
}

int eval_ppl_text_spread(llama_model *m, const tokenizer *tok, const char *text, size_t len, int seqlen,
                         int n_windows, int max_windows, int batch_tokens, ppl_result *res, cis_err *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, true, &ids, &n, err)) return -1;
    int T = llama_model_config(m)->max_position_embeddings;
    if (seqlen > 0 && seqlen < T) T = seqlen;
    int64_t W = (int64_t)n / T;
    int rc;
    if (n_windows <= 0 || n_windows >= W) {
        rc = eval_ppl_tokens(m, ids, (int64_t)n, seqlen, max_windows, batch_tokens, res, err);
    } else {
        int32_t *sel = xmalloc((size_t)n_windows * T * sizeof *sel);
        for (int k = 0; k < n_windows; k++)
            memcpy(sel + (size_t)k * T, ids + (size_t)(k * W / n_windows) * T, (size_t)T * sizeof *sel);
        rc = eval_ppl_tokens(m, sel, (int64_t)n_windows * T, seqlen, max_windows, batch_tokens, res, err);
        if (!rc) res->n_tokens = (int64_t)n;
        free(sel);
    }
    free(ids);
    return rc;
}
