/* eval_mc.c - 0-shot multiple choice the lm-eval-harness way (algorithms.md §10.3): the MMLU/WMDP
 * prompt, continuations " A".." D", continuation tokens = tok(ctx + cont)[len(tok(ctx)):], score =
 * Σ log_softmax over the continuation tokens, prediction = first argmax, metric acc.
 * When every continuation is a single token (the usual case after "Answer:"), all four scores
 * come from the log-softmax at the last context position: one forward per question, several
 * questions per llama_forward (right-padded, logits only at each last position). Otherwise the
 * question falls back to full scoring through llama_loglik.
 * Shared header: every prompt of a task starts with the same description ("The following are
 * multiple choice questions (with answers) about <subject>.\n", and the BOS with add_bos). Its
 * per-layer keys/values are computed once per task (one forward of the header alone, writing the
 * caches: llama_batch kv_T from layer 0) and each batch of shortcut questions whose context tokens
 * really start with the header's tokens runs as its suffixes only, attending to the cached header
 * (a question whose tokens do not start with them, e.g. one left-truncated to max_position, runs
 * whole). The same predictions and accuracy as the whole-prompt forward (mc_opts.no_shared_prefix),
 * log-likelihoods equal up to rounding, not in every bit: OpenBLAS's sgemm rounds a row according to
 * its place in the call (test_eval_mc test_shared_prefix_same_results; docs/eval.md). */
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

/* the description every prompt of the subject starts with (newly allocated) */
static char *mc_header(const char *subject, mc_prompt_style style) {
    return xasprintf("The following are multiple choice questions (with answers) about %s.%s", subject,
                     style == MC_PROMPT_LMEVAL_044 ? "\n\n" : "\n");
}

char *mc_prompt_styled(const mc_question *q, const char *subject, mc_prompt_style style) {
    size_t b = 0, e = 0;
    eval_py_strip(q->question, strlen(q->question), &b, &e); /* question.strip() */
    char *h = mc_header(subject, style);
    char *p = xasprintf("%s%.*s\nA. %s\nB. %s\nC. %s\nD. %s\nAnswer:", h, (int)(e - b), q->question + b,
                        q->choices[0], q->choices[1], q->choices[2], q->choices[3]);
    free(h);
    return p;
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
    bool shared;           /* shortcut and ctx starts with the header's tokens (and is longer) */
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

/* the header's tokens and its per-layer keys/values ([L] backend pointers into one block, each
 * [n, kvdim]: a forward of the header alone with caches from layer 0) */
typedef struct mc_header_kv {
    int32_t *ids;          /* [n] the header's tokens (with the BOS when add_bos) */
    int n;
    float *block;          /* backend memory, [L][2][n, kvdim] */
    float **k, **v;        /* [L] */
} mc_header_kv;

static int header_kv_fill(llama_model *m, mc_header_kv *h, cis_err *err) {
    const llama_config *cfg = llama_model_config(m);
    const int L = cfg->num_hidden_layers;
    const size_t per = (size_t)h->n * cfg->num_key_value_heads * cfg->head_dim;
    h->block = backend_alloc(llama_model_backend(m), 2 * (size_t)L * per * sizeof(float), err);
    if (!h->block) return -1;
    h->k = xmalloc((size_t)L * sizeof *h->k);
    h->v = xmalloc((size_t)L * sizeof *h->v);
    for (int l = 0; l < L; l++) { h->k[l] = h->block + 2 * l * per; h->v[l] = h->block + (2 * l + 1) * per; }
    llama_batch hb = {.B = 1, .T = h->n, .ids = h->ids, .kv_T = h->n, .kv_k = h->k, .kv_v = h->v};
    return llama_forward(m, &hb, NULL, 0, false, NULL, err);
}

static void header_kv_free(llama_model *m, mc_header_kv *h) {
    if (h->block) backend_free(llama_model_backend(m), h->block);
    free(h->ids); free(h->k); free(h->v);
    memset(h, 0, sizeof *h);
}

/* one batched forward of the B questions order[0..B-1] (longest first): whole contexts (hkv NULL),
 * or their suffixes after hkv's tokens attending to its cached keys/values; the four letters'
 * log-softmax at each last position into ll[q*4 ..]. */
static int shortcut_batch(llama_model *m, const mc_item *it, const int *order, int B, const mc_header_kv *hkv,
                          double *ll, cis_err *err) {
    const llama_config *cfg = llama_model_config(m);
    const int V = cfg->vocab_size, L = cfg->num_hidden_layers, p0 = hkv ? hkv->n : 0;
    const int T = it[order[0]].ctx_len - p0;
    int32_t *ids = xcalloc((size_t)B * T, sizeof *ids), *lens = xmalloc((size_t)B * sizeof *lens);
    int32_t *ob = xmalloc((size_t)B * sizeof *ob), *ot = xmalloc((size_t)B * sizeof *ot);
    int32_t *pos0 = xmalloc((size_t)B * sizeof *pos0);
    float *lg = xmalloc((size_t)B * V * sizeof *lg);
    for (int b = 0; b < B; b++) {
        const mc_item *x = &it[order[b]];
        memcpy(ids + (size_t)b * T, x->ctx + p0, (size_t)(x->ctx_len - p0) * sizeof *ids);
        lens[b] = x->ctx_len - p0;
        ob[b] = b;
        ot[b] = lens[b] - 1;
        pos0[b] = p0;
    }
    llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .n_out = B, .out_b = ob, .out_t = ot, .logits = lg};
    float *block = NULL, **kk = NULL, **vv = NULL;
    int rc = 0;
    if (hkv) {
        /* each row's cache: the header's keys/values at positions 0..p0-1, its own from p0 on */
        backend *be = llama_model_backend(m);
        const int kvT = p0 + T;
        const size_t kvdim = (size_t)cfg->num_key_value_heads * cfg->head_dim;
        const size_t cache = (size_t)B * kvT * kvdim;
        block = backend_alloc(be, 2 * (size_t)L * cache * sizeof(float), err);
        if (!block) rc = -1;
        kk = xmalloc((size_t)L * sizeof *kk);
        vv = xmalloc((size_t)L * sizeof *vv);
        for (int l = 0; l < L && !rc; l++) {
            kk[l] = block + 2 * l * cache;
            vv[l] = block + (2 * l + 1) * cache;
            for (int b = 0; b < B; b++) {
                backend_copy(be, kk[l] + (size_t)b * kvT * kvdim, hkv->k[l], (size_t)p0 * kvdim * sizeof(float));
                backend_copy(be, vv[l] + (size_t)b * kvT * kvdim, hkv->v[l], (size_t)p0 * kvdim * sizeof(float));
            }
        }
        bt.kv_T = kvT; bt.kv_pos0 = pos0; bt.kv_k = kk; bt.kv_v = vv;
    }
    if (!rc) rc = llama_forward(m, &bt, NULL, 0, false, NULL, err);
    for (int b = 0; b < B && !rc; b++) {
        int q = order[b];
        int32_t cid[4];
        for (int k = 0; k < 4; k++) cid[k] = it[q].cont[k][0];
        logsoftmax_at(lg + (size_t)b * V, V, cid, 4, ll + (size_t)q * 4);
    }
    if (block) backend_free(llama_model_backend(m), block);
    free(kk); free(vv); free(ids); free(lens); free(ob); free(ot); free(pos0); free(lg);
    return rc;
}

int eval_mc_task(llama_model *m, const tokenizer *tok, const mc_task *task, const mc_opts *o, int *pred,
                 double *ll_out, mc_result *res, cis_err *err) {
    memset(res, 0, sizeof *res);
    const llama_config *cfg = llama_model_config(m);
    const int maxpos = cfg->max_position_embeddings;
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
            bool same = true;
            rc = eval_encode_continuation(tok, ctx, c, cl, LETTERS[k], bos, &it[i].cont[k], &it[i].cont_len[k], &same, err);
            if (rc > 0)
                rc = err_set(err, CIS_EINVAL, "mc %s: question %d: continuation \"%s\" encodes to no tokens after the context",
                             task->name, i, LETTERS[k]);
            if (rc) break;
            if (it[i].cont_len[k] != 1) it[i].shortcut = false;
            if (it[i].cont_len[k] != 1 || !same) mismatch = true;
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
    /* 2. shortcut questions: batched forwards, logits at each last context position; those that
     * start with the header's tokens as suffixes attending to its cached keys/values */
    int *order = xmalloc((size_t)n * sizeof *order);
    int ns = 0, nsh = 0;
    mc_header_kv hkv = {0};
    if (!rc && !full && !(o && o->no_shared_prefix) && !getenv("CISWEEP_MC_NO_SHARED_PREFIX")) {
        char *h = mc_header(task->subject, o ? o->prompt : MC_PROMPT_LMEVAL_042);
        rc = eval_encode(tok, h, bos, &hkv.ids, &hkv.n, err);
        free(h);
        for (int i = 0; i < n && !rc; i++)
            it[i].shared = it[i].shortcut && hkv.n > 0 && it[i].ctx_len > hkv.n &&
                           !memcmp(it[i].ctx, hkv.ids, (size_t)hkv.n * sizeof *hkv.ids);
        for (int i = 0; i < n && !rc; i++) nsh += it[i].shared;
        if (!rc && nsh > 0) rc = header_kv_fill(m, &hkv, err);
        if (rc) err_prefix(err, "mc %s: the shared header", task->name);
    }
    for (int pass = 0; pass < 2 && !rc; pass++) {  /* 0: the shared-header questions, 1: the other shortcut ones */
        ns = 0;
        for (int i = 0; i < n; i++) if (it[i].shortcut && it[i].shared == (pass == 0)) order[ns++] = i;
        qsort_r(order, (size_t)ns, sizeof *order, cmp_len_desc, it);
        for (int s0 = 0; s0 < ns && !rc;) {
            int T = it[order[s0]].ctx_len, B = budget / T;
            if (B < 1) B = 1;
            if (B > ns - s0) B = ns - s0;
            rc = shortcut_batch(m, it, order + s0, B, pass == 0 ? &hkv : NULL, ll, err);
            if (rc) err_prefix(err, "mc %s", task->name);
            res->n_shortcut += B;
            if (pass == 0) res->n_shared_prefix += B;
            s0 += B;
        }
    }
    header_kv_free(m, &hkv);
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
