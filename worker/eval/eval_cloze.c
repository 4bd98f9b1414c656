/* eval_cloze.c - multiple choice in the cloze (completion) formulation: each of the four options is
 * scored as the continuation of the question, and the most likely one is the prediction. This is
 * the form of lm-eval's `mmlu_continuation` task (doc_to_choice the options themselves after the
 * target delimiter " ") and OLMES's "CF" (Gu et al. 2024), which evaluation standards use for
 * models too small for the lettered formulation ("MCF", eval_mc.c). Two contexts
 * (cloze_prompt_style): the question alone (CLOZE_PROMPT_QA, the default: the form of the synthetic
 * world's QA lines, "<question> <answer>", that its models learned their facts in), or lm-eval's
 * mmlu_continuation template (description "The following are questions (with answers) about
 * <subject>.", doc_to_text "Question: {{question.strip()}}\nAnswer:"; WMDP has no continuation task
 * upstream, so the same template with its subjects "biology" / "cybersecurity"). A diagnostic of
 * this project, not the paper's metric: the study scores MCF (docs/eval.md "Cloze").
 *
 * acc: argmax of the summed continuation log-likelihood (lm-eval's `acc`, the group metric of
 * mmlu_continuation); acc_norm: argmax of that divided by the option's length in characters
 * (lm-eval's `acc_norm`: len() of the choice string, without the delimiter). */
#include "worker/eval/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the description every cloze prompt of the subject starts with (newly allocated) */
static char *cloze_header(const char *subject, mc_prompt_style style) {
    return xasprintf("The following are questions (with answers) about %s.%s", subject,
                     style == MC_PROMPT_LMEVAL_044 ? "\n\n" : "\n");
}

int cloze_prompt_style_parse(const char *s, cloze_prompt_style *out) {
    if (s && !strcmp(s, "qa")) { *out = CLOZE_PROMPT_QA; return 0; }
    if (s && !strcmp(s, "continuation")) { *out = CLOZE_PROMPT_CONTINUATION; return 0; }
    return -1;
}

const char *cloze_prompt_style_name(cloze_prompt_style s) {
    return s == CLOZE_PROMPT_CONTINUATION ? "continuation" : "qa";
}

char *cloze_prompt_styled(const mc_question *q, const char *subject, mc_prompt_style style, cloze_prompt_style cs) {
    size_t b = 0, e = 0;
    eval_py_strip(q->question, strlen(q->question), &b, &e); /* question.strip() */
    if (cs != CLOZE_PROMPT_CONTINUATION) return xasprintf("%.*s", (int)(e - b), q->question + b);
    char *h = cloze_header(subject, style);
    char *p = xasprintf("%sQuestion: %.*s\nAnswer:", h, (int)(e - b), q->question + b);
    free(h);
    return p;
}

/* code points of a UTF-8 string (Python's len() of the decoded str); invalid bytes count one each */
static int utf8_len(const char *s) {
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) n += (*p & 0xC0) != 0x80;
    return n;
}

int eval_cloze_task(llama_model *m, const tokenizer *tok, const mc_task *task, const mc_opts *o, int *pred,
                    int *pred_norm, double *ll_out, cloze_result *res, cis_err *err) {
    memset(res, 0, sizeof *res);
    const int maxpos = llama_model_config(m)->max_position_embeddings;
    int n = task->n;
    if (o && o->limit > 0 && o->limit < n) n = o->limit;
    if (n <= 0) return err_set(err, CIS_EINVAL, "cloze %s: no questions", task->name);
    const bool bos = o && o->add_bos;
    const int budget = o && o->max_batch_tokens > 0 ? o->max_batch_tokens : 8192;
    const size_t nr = (size_t)n * 4;
    int32_t **ctx = xcalloc(nr, sizeof *ctx), **cont = xcalloc(nr, sizeof *cont);
    int *ctx_len = xcalloc(nr, sizeof *ctx_len), *cont_len = xcalloc(nr, sizeof *cont_len);
    const int32_t **cx = xcalloc(nr, sizeof *cx), **ct = xcalloc(nr, sizeof *ct);
    int *cxl = xcalloc(nr, sizeof *cxl);
    double *ll = xcalloc(nr, sizeof *ll);
    int rc = 0;
    /* 1. encode (lm-eval _encode_pair: the context ends in ':' so no whitespace moves; the
     *    continuation is tok(ctx + " " + choice) after tok(ctx)'s length) */
    for (int i = 0; i < n && !rc; i++) {
        const mc_question *q = &task->q[i];
        for (int k = 0; k < 4; k++)
            if (!q->choices[k]) { rc = err_set(err, CIS_EINVAL, "cloze %s: question %d: choice %d is missing", task->name, i, k); break; }
        if (rc) break;
        char *c = cloze_prompt_styled(q, task->subject, o ? o->prompt : MC_PROMPT_LMEVAL_042,
                                      o ? o->cloze_prompt : CLOZE_PROMPT_QA);
        int32_t *ci = NULL;
        int cl = 0;
        rc = eval_encode(tok, c, bos, &ci, &cl, err);
        if (!rc && cl == 0) rc = err_set(err, CIS_EINVAL, "cloze %s: question %d: the context encodes to no tokens", task->name, i);
        for (int k = 0; k < 4 && !rc; k++) {
            size_t r = (size_t)i * 4 + k;
            char *sp = xasprintf(" %s", q->choices[k]);   /* the target delimiter, then the option */
            rc = eval_encode_continuation(tok, c, ci, cl, sp, bos, &cont[r], &cont_len[r], NULL, err);
            free(sp);
            if (rc > 0)
                rc = err_set(err, CIS_EINVAL, "cloze %s: question %d: choice %d (\"%s\") encodes to no tokens after the context",
                             task->name, i, k, q->choices[k]);
            if (rc) break;
            /* lm-eval's left truncation: the last max_pos tokens of ctx ++ cont feed the model */
            int keep = cl;
            if (keep + cont_len[r] > maxpos) keep = maxpos - cont_len[r];
            if (keep < 1) {
                rc = err_set(err, CIS_EINVAL, "cloze %s: question %d: choice %d is longer than the model's context (%d tokens)",
                             task->name, i, k, maxpos);
                break;
            }
            ctx[r] = xmalloc((size_t)keep * sizeof(int32_t));
            memcpy(ctx[r], ci + (cl - keep), (size_t)keep * sizeof(int32_t));
            ctx_len[r] = keep;
            cx[r] = ctx[r];
            ct[r] = cont[r];
            cxl[r] = keep;
        }
        free(ci);
        free(c);
    }
    /* 2. every continuation's log-likelihood (lm-eval loglikelihood) */
    if (!rc) rc = llama_loglik(m, (int)nr, cx, cxl, ct, cont_len, budget, ll, NULL, err);
    if (rc) err_prefix(err, "cloze %s", task->name);
    /* 3. predictions: raw and per-character normalized (first argmax, as numpy) */
    if (!rc) {
        for (int i = 0; i < n; i++) {
            const mc_question *q = &task->q[i];
            int best = 0, bestn = 0;
            double nl[4];
            for (int k = 0; k < 4; k++) {
                int len = utf8_len(q->choices[k]);
                nl[k] = ll[(size_t)i * 4 + k] / (len > 0 ? len : 1);
            }
            for (int k = 1; k < 4; k++) {
                if (ll[(size_t)i * 4 + k] > ll[(size_t)i * 4 + best]) best = k;
                if (nl[k] > nl[bestn]) bestn = k;
            }
            if (pred) pred[i] = best;
            if (pred_norm) pred_norm[i] = bestn;
            res->correct += best == q->answer;
            res->correct_norm += bestn == q->answer;
        }
        res->n = n;
        res->acc = (double)res->correct / n;
        res->acc_norm = (double)res->correct_norm / n;
        if (ll_out) memcpy(ll_out, ll, nr * sizeof *ll);
    }
    for (size_t r = 0; r < nr; r++) { free(ctx[r]); free(cont[r]); }
    free(ctx); free(cont); free(ctx_len); free(cont_len); free(cx); free(ct); free(cxl); free(ll);
    return rc;
}
