/* eval_mc.c - 0-shot multiple choice the lm-eval-harness way (algorithms.md §10.3): the MMLU/WMDP
 * prompt, continuations " A".." D", continuation tokens = tok(ctx + cont)[len(tok(ctx)):], score =
 * Σ log_softmax over the continuation tokens, prediction = first argmax, metric acc.
 * When every continuation is a single token (the usual case after "Answer:"), all four scores
 * come from the log-softmax at the last context position: one forward per question, several
 * questions per llama_forward (right-padded, logits only at each last position). Otherwise the
 * question falls back to full scoring through llama_loglik. */
#include "worker/eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int mc_prompt_style_parse(const char *s, mc_prompt_style *out) {
    if (!s) return -1;
    if (!strncmp(s, "lm-eval-", 8)) s += 8;
    if (!strcmp(s, "0.4.2")) { *out = MC_PROMPT_LMEVAL_042; return 0; }
    if (!strcmp(s, "0.4.4")) { *out = MC_PROMPT_LMEVAL_044; return 0; }
    return -1;
}

const char *mc_prompt_style_name(mc_prompt_style s) {
    return s == MC_PROMPT_LMEVAL_044 ? "lm-eval-0.4.4" : "lm-eval-0.4.2";
}

int mc_prompt_newlines(mc_prompt_style s) { return s == MC_PROMPT_LMEVAL_044 ? 2 : 1; }

char *mc_prompt_styled(const mc_question *q, const char *subject, mc_prompt_style style) {
    size_t b = 0, e = 0;
    eval_py_strip(q->question, strlen(q->question), &b, &e); /* question.strip() */
    return xasprintf("The following are multiple choice questions (with answers) about %s.%s"
                     "%.*s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:",
                     subject, style == MC_PROMPT_LMEVAL_044 ? "\n\n" : "\n", (int)(e - b), q->question + b,
                     q->choices[0], q->choices[1], q->choices[2], q->choices[3]);
}

char *mc_prompt(const mc_question *q, const char *subject) {
    return mc_prompt_styled(q, subject, MC_PROMPT_LMEVAL_042);
}

typedef struct mc_item {
    int32_t *ctx;          /* context tokens (maybe left-truncated to max_pos) */
    int ctx_len;
    int32_t *cont[4];      /* continuation tokens */
    int cont_len[4];
    bool shortcut;
} mc_item;

static const char *LETTERS[4] = {" A", " B", " C", " D"};

static int cmp_len_desc(const void *a, const void *b, void *arg) {
    const mc_item *it = arg;
    int ia = *(const int *)a, ib = *(const int *)b;
    if (it[ia].ctx_len != it[ib].ctx_len) return it[ib].ctx_len - it[ia].ctx_len;
    return ia - ib;
}

/* log-softmax of one logit row at the given ids (double accumulation) */
static void logsoftmax_at(const float *z, int V, const int32_t *ids, int k, double *out) {
    float mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0;
    for (int v = 0; v < V; v++) s += exp((double)z[v] - mx);
    double lse = mx + log(s);
    for (int i = 0; i < k; i++) out[i] = (double)z[ids[i]] - lse;
}

int eval_mc_task(llama_model *m, const tokenizer *tok, const mc_task *task, const mc_opts *o, int *pred,
                 double *ll_out, mc_result *res, cis_err *err) {
    memset(res, 0, sizeof *res);
    const llama_config *cfg = llama_model_config(m);
    const int V = cfg->vocab_size, maxpos = cfg->max_position_embeddings;
    int n = task->n;
    if (o && o->limit > 0 && o->limit < n) n = o->limit;
    if (n <= 0) return err_set(err, CIS_EINVAL, "mc %s: no questions", task->name);
    const bool bos = o && o->add_bos, full = o && o->force_full;
    int budget = o && o->max_batch_tokens > 0 ? o->max_batch_tokens : 8192;
    mc_item *it = xcalloc((size_t)n, sizeof *it);
    double *ll = xcalloc((size_t)n * 4, sizeof *ll);
    int rc = 0;
    /* 1. encode (lm-eval _encode_pair; the context ends in ':' so nothing moves into the continuation) */
    for (int i = 0; i < n && !rc; i++) {
        char *ctx = mc_prompt_styled(&task->q[i], task->subject, o ? o->prompt : MC_PROMPT_LMEVAL_042);
        int32_t *c = NULL;
        int cl = 0;
        rc = eval_encode(tok, ctx, bos, &c, &cl, err);
        if (!rc && cl == 0) rc = err_set(err, CIS_EINVAL, "mc %s: question %d: the context encodes to no tokens", task->name, i);
        it[i].shortcut = !full;
        bool mismatch = false;
        for (int k = 0; k < 4 && !rc; k++) {
            char *whole = xasprintf("%s%s", ctx, LETTERS[k]);
            int32_t *w = NULL;
            int wl = 0;
            rc = eval_encode(tok, whole, bos, &w, &wl, err);
            free(whole);
            if (rc) break;
            if (wl <= cl) {
                rc = err_set(err, CIS_EINVAL, "mc %s: question %d: continuation \"%s\" encodes to no tokens after the context",
                             task->name, i, LETTERS[k]);
                free(w);
                break;
            }
            it[i].cont_len[k] = wl - cl;
            it[i].cont[k] = xmalloc((size_t)(wl - cl) * sizeof(int32_t));
            memcpy(it[i].cont[k], w + cl, (size_t)(wl - cl) * sizeof(int32_t));
            if (wl != cl + 1) it[i].shortcut = false;
            if (wl != cl + 1 || memcmp(w, c, (size_t)cl * sizeof *c)) mismatch = true;
            free(w);
        }
        res->n_prefix_mismatch += mismatch;
        /* lm-eval: the model input is (ctx ++ cont)[-(max_len+1):][:-1]; for single-token
         * continuations that is the last max_len context tokens */
        if (!rc && cl > maxpos && it[i].shortcut) {
            memmove(c, c + (cl - maxpos), (size_t)maxpos * sizeof *c);
            cl = maxpos;
        }
        it[i].ctx = c;
        it[i].ctx_len = cl;
        free(ctx);
    }
    /* 2. shortcut questions: batched forwards, logits at each last context position */
    int *order = xmalloc((size_t)n * sizeof *order);
    int ns = 0;
    for (int i = 0; i < n && !rc; i++) if (it[i].shortcut) order[ns++] = i;
    if (!rc) qsort_r(order, (size_t)ns, sizeof *order, cmp_len_desc, it);
    for (int s0 = 0; s0 < ns && !rc;) {
        int T = it[order[s0]].ctx_len, B = budget / T;
        if (B < 1) B = 1;
        if (B > ns - s0) B = ns - s0;
        int32_t *ids = xcalloc((size_t)B * T, sizeof *ids), *lens = xmalloc((size_t)B * sizeof *lens);
        int32_t *ob = xmalloc((size_t)B * sizeof *ob), *ot = xmalloc((size_t)B * sizeof *ot);
        float *lg = xmalloc((size_t)B * V * sizeof *lg);
        for (int b = 0; b < B; b++) {
            const mc_item *x = &it[order[s0 + b]];
            memcpy(ids + (size_t)b * T, x->ctx, (size_t)x->ctx_len * sizeof *ids);
            lens[b] = x->ctx_len;
            ob[b] = b;
            ot[b] = x->ctx_len - 1;
        }
        llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .n_out = B, .out_b = ob, .out_t = ot, .logits = lg};
        rc = llama_forward(m, &bt, NULL, 0, false, NULL, err);
        if (rc) err_prefix(err, "mc %s", task->name);
        for (int b = 0; b < B && !rc; b++) {
            int q = order[s0 + b];
            int32_t cid[4];
            for (int k = 0; k < 4; k++) cid[k] = it[q].cont[k][0];
            logsoftmax_at(lg + (size_t)b * V, V, cid, 4, ll + (size_t)q * 4);
        }
        free(ids); free(lens); free(ob); free(ot); free(lg);
        res->n_shortcut += B;
        s0 += B;
    }
    /* 3. the rest: full scoring per continuation (lm-eval loglikelihood) */
    int nf = 0;
    for (int i = 0; i < n; i++) nf += !it[i].shortcut;
    if (!rc && nf > 0) {
        const int32_t **cx = xmalloc((size_t)nf * 4 * sizeof *cx), **ct = xmalloc((size_t)nf * 4 * sizeof *ct);
        int *cxl = xmalloc((size_t)nf * 4 * sizeof *cxl), *ctl = xmalloc((size_t)nf * 4 * sizeof *ctl);
        double *fl = xmalloc((size_t)nf * 4 * sizeof *fl);
        int r = 0;
        for (int i = 0; i < n; i++) {
            if (it[i].shortcut) continue;
            for (int k = 0; k < 4; k++, r++) {
                int keep = it[i].ctx_len;
                if (keep + it[i].cont_len[k] > maxpos) keep = maxpos - it[i].cont_len[k];
                if (keep < 1) { rc = err_set(err, CIS_EINVAL, "mc %s: question %d: continuation longer than the model's context", task->name, i); break; }
                cx[r] = it[i].ctx + (it[i].ctx_len - keep);
                cxl[r] = keep;
                ct[r] = it[i].cont[k];
                ctl[r] = it[i].cont_len[k];
            }
            if (rc) break;
        }
        if (!rc) rc = llama_loglik(m, nf * 4, cx, cxl, ct, ctl, budget, fl, NULL, err);
        if (!rc) {
            r = 0;
            for (int i = 0; i < n; i++) {
                if (it[i].shortcut) continue;
                for (int k = 0; k < 4; k++) ll[(size_t)i * 4 + k] = fl[r++];
            }
        }
        res->n_full = nf;
        free(cx); free(ct); free(cxl); free(ctl); free(fl);
    }
    /* 4. predictions and acc */
    if (!rc) {
        double ss = 0;
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int k = 1; k < 4; k++) if (ll[(size_t)i * 4 + k] > ll[(size_t)i * 4 + best]) best = k;
            if (pred) pred[i] = best;
            int ok = best == task->q[i].answer;
            res->correct += ok;
        }
        res->n = n;
        res->acc = (double)res->correct / n;
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int k = 1; k < 4; k++) if (ll[(size_t)i * 4 + k] > ll[(size_t)i * 4 + best]) best = k;
            double d = (best == task->q[i].answer) - res->acc;
            ss += d * d;
        }
        res->acc_stderr = n > 1 ? sqrt(ss / (n - 1)) / sqrt((double)n) : 0;
        if (ll_out) memcpy(ll_out, ll, (size_t)n * 4 * sizeof *ll);
    }
    for (int i = 0; i < n; i++) {
        free(it[i].ctx);
        for (int k = 0; k < 4; k++) free(it[i].cont[k]);
    }
    free(it); free(ll); free(order);
    return rc;
}
