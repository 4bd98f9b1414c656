/* eval_zsre.c - zsRE editing metrics. Two families (algorithms.md §10.1, §10.2):
 *  - composable's generation token-set F1 (what the grid reports): edit success (src vs alt),
 *    generalization (rephrase vs alt), locality (loc without "nq question:" vs loc_ans), recalls,
 *    and src vs answers[0] (does the model know the fact before the edit);
 *  - EasyEdit's teacher-forced token accuracy (rewrite, rephrase) and locality as agreement of the
 *    argmax tokens with the unedited model. */
#include "worker/eval/eval.h"
#include "common/log.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double token_set_f1(const int32_t *gen, int n_gen, const int32_t *gold, int n_gold, double *recall) {
    /* distinct counts by quadratic scans: the sequences are at most max_length long */
    int ug = 0, ut = 0, common = 0;
    for (int i = 0; i < n_gen; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = gen[j] == gen[i];
        if (seen) continue;
        ug++;
        for (int j = 0; j < n_gold; j++) if (gold[j] == gen[i]) { common++; break; }
    }
    for (int i = 0; i < n_gold; i++) {
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) seen = gold[j] == gold[i];
        ut += !seen;
    }
    double rec = ut ? (double)common / ut : 0;
    if (recall) *recall = rec;
    if (common == 0 || ug == 0) return 0;
    double prec = (double)common / ug;
    return 2 * prec * rec / (prec + rec);
}

char *zsre_loc_prompt(const char *loc) {
    static const char MARK[] = "nq question:";
    const char *p = loc, *m = strstr(loc, MARK);
    size_t n = strlen(loc);
    if (m) {
        p = m + strlen(MARK);
        const char *m2 = strstr(p, MARK);
        n = m2 ? (size_t)(m2 - p) : strlen(p);
    }
    size_t b = 0, e = 0;
    eval_py_strip(p, n, &b, &e);
    return xasprintf("%.*s", (int)(e - b), p + b);
}

/* the excluded ids of §10.2 step 4 */
typedef struct excl { int32_t id[5]; int n; } excl;

static void excl_add(excl *x, int32_t id) {
    if (id < 0) return;
    for (int i = 0; i < x->n; i++) if (x->id[i] == id) return;
    if (x->n < 5) x->id[x->n++] = id;
}
static bool excl_has(const excl *x, int32_t id) {
    for (int i = 0; i < x->n; i++) if (x->id[i] == id) return true;
    return false;
}

static int excl_build(llama_model *m, const tokenizer *tok, excl *x, int32_t *pad, cis_err *err) {
    memset(x, 0, sizeof *x);
    const llama_config *cfg = llama_model_config(m);
    int32_t eos = tokenizer_eos_id(tok);
    if (eos < 0 && cfg->n_eos > 0) eos = cfg->eos_token_ids[0];
    *pad = eos; /* lm_compose sets tokenizer.pad_token_id = eos_token_id, whatever pad the tokenizer has */
    excl_add(x, eos);
    excl_add(x, tokenizer_bos_id(tok));
    int32_t *a = NULL, *b = NULL;
    int na = 0, nb = 0;
    if (eval_encode(tok, " ", false, &a, &na, err)) return -1;
    if (na >= 1) excl_add(x, a[0]); /* composable: the first id of tok(" ") */
    free(a);
    /* a standalone leading-space token (SentencePiece "▁"): " Hello" and " Word" start alike */
    if (eval_encode(tok, " Hello", false, &a, &na, err)) return -1;
    if (eval_encode(tok, " Word", false, &b, &nb, err)) { free(a); return -1; }
    if (na > 0 && nb > 0 && a[0] == b[0]) excl_add(x, a[0]);
    free(a); free(b);
    return 0;
}

int gen_f1_batch(llama_model *m, const tokenizer *tok, int n, const char *const *prompts, const char *const *answers,
                 int max_length, double *f1, double *recall, int32_t ***gen_out, int **gen_len, cis_err *err) {
    if (max_length < 2) return err_set(err, CIS_EINVAL, "zsre: max_length %d: expected >= 2", max_length);
    const llama_config *cfg = llama_model_config(m);
    if (max_length > cfg->max_position_embeddings) max_length = cfg->max_position_embeddings;
    excl x;
    int32_t pad;
    if (excl_build(m, tok, &x, &pad, err)) return -1;
    int32_t **p = xcalloc((size_t)n, sizeof *p), **gold = xcalloc((size_t)n, sizeof *gold);
    int *pl = xcalloc((size_t)n, sizeof *pl), *gl = xcalloc((size_t)n, sizeof *gl);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        rc = eval_encode(tok, prompts[i], true, &p[i], &pl[i], err);
        if (!rc && pl[i] == 0) rc = err_set(err, CIS_EINVAL, "zsre: pair %d: the prompt encodes to no tokens", i);
        if (rc) break;
        const char *a = answers[i];
        char *sa = a[0] == ' ' || a[0] == 0 ? xstrdup(a) : xasprintf(" %s", a); /* only non-empty answers get the space */
        int32_t *g = NULL;
        int ng = 0;
        rc = eval_encode(tok, sa, true, &g, &ng, err);
        free(sa);
        if (rc) break;
        /* padded with pad (= eos) to max_length and truncated to it; pads are excluded anyway */
        if (ng > max_length) ng = max_length;
        gold[i] = xmalloc((size_t)(ng ? ng : 1) * sizeof(int32_t));
        for (int t = 0; t < ng; t++) if (!excl_has(&x, g[t])) gold[i][gl[i]++] = g[t];
        free(g);
    }
    /* prompts of max_length tokens or more generate nothing (HF generate returns the prompt) */
    int ngen = 0;
    int *gi = xmalloc((size_t)n * sizeof *gi);
    for (int i = 0; i < n; i++) if (!rc && pl[i] < max_length) gi[ngen++] = i;
    const int32_t **gp = xmalloc((size_t)(ngen ? ngen : 1) * sizeof *gp);
    int *gpl = xmalloc((size_t)(ngen ? ngen : 1) * sizeof *gpl);
    for (int j = 0; j < ngen; j++) { gp[j] = p[gi[j]]; gpl[j] = pl[gi[j]]; }
    int32_t *out = xmalloc((size_t)(ngen ? ngen : 1) * max_length * sizeof *out);
    int *ol = xcalloc((size_t)(ngen ? ngen : 1), sizeof *ol);
    /* a row's F1 reads its first |gold| generated ids that are not excluded: it stops there */
    int *stop = xmalloc((size_t)(ngen ? ngen : 1) * sizeof *stop);
    for (int j = 0; j < ngen; j++) stop[j] = gl[gi[j]];
    if (!rc && ngen) rc = llama_generate_until(m, ngen, gp, gpl, max_length, stop, x.id, x.n, out, ol, err);
    free(stop);
    if (!rc) {
        int32_t *gen = xmalloc((size_t)max_length * sizeof *gen);
        if (gen_out) { *gen_out = xcalloc((size_t)n, sizeof **gen_out); *gen_len = xcalloc((size_t)n, sizeof **gen_len); }
        int j = 0;
        for (int i = 0; i < n; i++) {
            int k = 0;
            if (j < ngen && gi[j] == i) {
                const int32_t *o = out + (size_t)j * max_length;
                for (int t = pl[i]; t < ol[j] && k < gl[i]; t++) if (o[t] >= 0 && !excl_has(&x, o[t])) gen[k++] = o[t];
                j++;
            }
            f1[i] = token_set_f1(gen, k, gold[i], gl[i], recall ? &recall[i] : NULL);
            if (gen_out) {
                (*gen_out)[i] = xmalloc((size_t)(k ? k : 1) * sizeof(int32_t));
                memcpy((*gen_out)[i], gen, (size_t)k * sizeof(int32_t));
                (*gen_len)[i] = k;
            }
        }
        free(gen);
    }
    for (int i = 0; i < n; i++) { free(p[i]); free(gold[i]); }
    free(p); free(gold); free(pl); free(gl); free(gi); free(gp); free(gpl); free(out); free(ol);
    return rc;
}

int tf_argmax_batch(llama_model *m, const tokenizer *tok, int n, const char *const *prompts,
                    const char *const *answers, int max_batch_tokens, double *acc, int32_t ***pred, int **pred_len,
                    int *n_mismatch, cis_err *err) {
    const llama_config *cfg = llama_model_config(m);
    const int V = cfg->vocab_size, maxpos = cfg->max_position_embeddings;
    int budget = max_batch_tokens > 0 ? max_batch_tokens : 8192;
    int32_t **xs = xcalloc((size_t)n, sizeof *xs);
    int *xl = xcalloc((size_t)n, sizeof *xl), *lp = xcalloc((size_t)n, sizeof *lp);
    int rc = 0, mism = 0;
    for (int i = 0; i < n && !rc; i++) {
        char *full = xasprintf("%s %s", prompts[i], answers[i]);
        int32_t *pp = NULL;
        int np = 0;
        rc = eval_encode(tok, full, true, &xs[i], &xl[i], err);
        if (!rc) rc = eval_encode(tok, prompts[i], true, &pp, &np, err);
        free(full);
        if (rc) break;
        if (np > xl[i] || memcmp(pp, xs[i], (size_t)np * sizeof *pp)) mism++;
        lp[i] = np;
        free(pp);
        if (xl[i] > maxpos) { rc = err_set(err, CIS_EINVAL, "zsre tf: pair %d: %d tokens exceed max_position_embeddings %d", i, xl[i], maxpos); break; }
        if (xl[i] == 0) { rc = err_set(err, CIS_EINVAL, "zsre tf: pair %d encodes to no tokens", i); break; }
    }
    if (pred) { *pred = xcalloc((size_t)n, sizeof **pred); *pred_len = xcalloc((size_t)n, sizeof **pred_len); }
    for (int i0 = 0; i0 < n && !rc;) {
        /* a batch of consecutive pairs within the token budget */
        int T = 0, B = 0, rows = 0;
        while (i0 + B < n) {
            int t2 = xl[i0 + B] > T ? xl[i0 + B] : T;
            if (B > 0 && t2 * (B + 1) > budget) break;
            T = t2; B++;
        }
        for (int b = 0; b < B; b++) { int k = xl[i0 + b] - (lp[i0 + b] > 1 ? lp[i0 + b] : 1); rows += k > 0 ? k : 0; }
        int32_t *ids = xcalloc((size_t)B * T, sizeof *ids), *lens = xmalloc((size_t)B * sizeof *lens);
        int32_t *ob = xmalloc((size_t)(rows ? rows : 1) * sizeof *ob), *ot = xmalloc((size_t)(rows ? rows : 1) * sizeof *ot);
        float *lg = xmalloc((size_t)(rows ? rows : 1) * V * sizeof *lg);
        int r = 0;
        for (int b = 0; b < B; b++) {
            int i = i0 + b;
            memcpy(ids + (size_t)b * T, xs[i], (size_t)xl[i] * sizeof *ids);
            lens[b] = xl[i];
            for (int j = lp[i] > 1 ? lp[i] : 1; j < xl[i]; j++) { ob[r] = b; ot[r] = j - 1; r++; }
        }
        if (rows > 0) {
            llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .n_out = rows, .out_b = ob, .out_t = ot, .logits = lg};
            rc = llama_forward(m, &bt, NULL, 0, false, NULL, err);
            if (rc) err_prefix(err, "zsre tf");
        }
        r = 0;
        for (int b = 0; b < B && !rc; b++) {
            int i = i0 + b, j0 = lp[i] > 1 ? lp[i] : 1, k = xl[i] - j0 > 0 ? xl[i] - j0 : 0, ok = 0;
            int32_t *pr = xmalloc((size_t)(k ? k : 1) * sizeof *pr);
            for (int q = 0; q < k; q++, r++) {
                const float *z = lg + (size_t)r * V;
                int best = 0;
                for (int v = 1; v < V; v++) if (z[v] > z[best]) best = v;
                pr[q] = best;
                ok += best == xs[i][j0 + q];
            }
            if (acc) acc[i] = k ? (double)ok / k : 0;
            if (pred) { (*pred)[i] = pr; (*pred_len)[i] = k; } else free(pr);
        }
        free(ids); free(lens); free(ob); free(ot); free(lg);
        i0 += B;
    }
    for (int i = 0; i < n; i++) free(xs[i]);
    free(xs); free(xl); free(lp);
    if (n_mismatch) *n_mismatch = mism;
    if (rc && pred) {
        for (int i = 0; i < n; i++) free((*pred)[i]);
        free(*pred); free(*pred_len); *pred = NULL; *pred_len = NULL;
    }
    return rc;
}

/* logits kept per batch of ppl_responses2: at most this many floats (64 MB) */
#define PPL_LOGIT_FLOATS (16 * 1024 * 1024)

int ppl_responses2(llama_model *m, const tokenizer *tok, int n, const char *const *prompts,
                   const char *const *responses, int max_batch_tokens, double *ppl_masked, double *ppl_unmasked,
                   cis_err *err) {
    const llama_config *cfg = llama_model_config(m);
    const int maxpos = cfg->max_position_embeddings, V = cfg->vocab_size;
    int budget = max_batch_tokens > 0 ? max_batch_tokens : 8192;
    int64_t row_cap = PPL_LOGIT_FLOATS / V > 0 ? PPL_LOGIT_FLOATS / V : 1;
    int32_t **xs = xcalloc((size_t)(n ? n : 1), sizeof *xs);
    int *xl = xcalloc((size_t)(n ? n : 1), sizeof *xl), *pl = xcalloc((size_t)(n ? n : 1), sizeof *pl);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int32_t *p = NULL, *r = NULL;
        int np = 0, nr = 0;
        rc = eval_encode(tok, prompts[i], true, &p, &np, err);
        if (!rc) rc = eval_encode(tok, responses[i], true, &r, &nr, err);
        int L = np + nr;
        if (!rc && (np < 1 || nr < 1 || L > maxpos))
            rc = err_set(err, CIS_EINVAL, "ppl responses: pair %d: %d + %d tokens: expected 1.. each and at most %d in all",
                         i, np, nr, maxpos);
        if (!rc) {
            xs[i] = xmalloc((size_t)L * sizeof *xs[i]);
            memcpy(xs[i], p, (size_t)np * sizeof *p);
            memcpy(xs[i] + np, r, (size_t)nr * sizeof *r);
            xl[i] = L;
            pl[i] = np;
        }
        free(p); free(r);
    }
    double tot_m = 0, tot_u = 0;
    int64_t count = 0;
    for (int i0 = 0; i0 < n && !rc;) {
        /* consecutive pairs within the token budget and the logits cap */
        int T = 0, B = 0;
        int64_t rows = 0;
        while (i0 + B < n) {
            int t2 = xl[i0 + B] > T ? xl[i0 + B] : T;
            if (B > 0 && ((int64_t)t2 * (B + 1) > budget || rows + xl[i0 + B] - 1 > row_cap)) break;
            T = t2; rows += xl[i0 + B] - 1; B++;
        }
        int32_t *ids = xcalloc((size_t)B * T, sizeof *ids), *lens = xmalloc((size_t)B * sizeof *lens);
        int32_t *ob = xmalloc((size_t)(rows ? rows : 1) * sizeof *ob), *ot = xmalloc((size_t)(rows ? rows : 1) * sizeof *ot);
        float *lg = malloc((size_t)(rows ? rows : 1) * V * sizeof *lg);
        if (!lg) rc = err_set(err, CIS_ENOMEM, "ppl responses: out of memory for %lld x %d logits", (long long)rows, V);
        int64_t k = 0;
        for (int b = 0; b < B && !rc; b++) {
            memcpy(ids + (size_t)b * T, xs[i0 + b], (size_t)xl[i0 + b] * sizeof *ids);
            lens[b] = xl[i0 + b];
            for (int t = 0; t + 1 < xl[i0 + b]; t++) { ob[k] = b; ot[k] = t; k++; }
        }
        if (!rc && rows > 0) {
            llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .n_out = (int)rows, .out_b = ob, .out_t = ot,
                              .logits = lg};
            rc = llama_forward(m, &bt, NULL, 0, false, NULL, err);
            if (rc) err_prefix(err, "ppl responses: pairs %d..%d", i0, i0 + B - 1);
        }
        /* per pair: the mean CE over the response targets (masked) and over all targets, each times
         * the response length (composable multiplies by it in both modes) */
        k = 0;
        for (int b = 0; b < B && !rc; b++) {
            const int32_t *x = xs[i0 + b];
            int L = xl[i0 + b], np = pl[i0 + b], nr = L - np;
            double sm = 0, su = 0;
            for (int t = 0; t + 1 < L; t++, k++) {
                const float *z = lg + (size_t)k * V;
                float mx = z[0];
                for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
                double se = 0;
                for (int v = 0; v < V; v++) se += expf(z[v] - mx);
                double nll = (double)mx + log(se) - z[x[t + 1]];
                su += nll;
                if (t + 1 >= np) sm += nll;
            }
            tot_u += su / (L - 1) * nr;
            tot_m += sm / nr * nr;
            count += nr;
        }
        free(ids); free(lens); free(ob); free(ot); free(lg);
        i0 += B;
    }
    for (int i = 0; i < n; i++) free(xs[i]);
    free(xs); free(xl); free(pl);
    if (rc) return -1;
    if (ppl_masked) *ppl_masked = count ? exp(tot_m / (double)count) : NAN;
    if (ppl_unmasked) *ppl_unmasked = count ? exp(tot_u / (double)count) : NAN;
    return 0;
}

int ppl_responses(llama_model *m, const tokenizer *tok, int n, const char *const *prompts, const char *const *responses,
                  bool mask_prompt, double *ppl, cis_err *err) {
    return ppl_responses2(m, tok, n, prompts, responses, 0, mask_prompt ? ppl : NULL, mask_prompt ? NULL : ppl, err);
}

static double mean(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return n ? s / n : 0;
}

static void put(eval_rows *out, const char *prefix, const char *name, double v) {
    char k[96];
    snprintf(k, sizeof k, "%s%s", prefix ? prefix : "", name);
    eval_rows_set(out, k, v);
}

int eval_zsre_records(llama_model *m, const tokenizer *tok, const zsre_data *d, const int32_t *idx, int n,
                      const zsre_opts *o, eval_rows *out, cis_err *err) {
    if (n <= 0) return err_set(err, CIS_EINVAL, "zsre: no records to evaluate");
    int maxlen = o && o->max_length > 0 ? o->max_length : 50;
    const char *pre = o && o->prefix ? o->prefix : "";
    /* one generation batch over the four prompt families: src/alt, rephrase/alt, loc/loc_ans, src/answers[0] */
    const char **pr = xmalloc((size_t)4 * n * sizeof *pr), **an = xmalloc((size_t)4 * n * sizeof *an);
    char **locp = xcalloc((size_t)n, sizeof *locp);
    for (int i = 0; i < n; i++) {
        const zsre_record *r = &d->rec[idx[i]];
        locp[i] = zsre_loc_prompt(r->loc);
        pr[i] = r->src;            an[i] = r->alt;
        pr[n + i] = r->rephrase;   an[n + i] = r->alt;
        pr[2 * n + i] = locp[i];   an[2 * n + i] = r->loc_ans;
        pr[3 * n + i] = r->src;    an[3 * n + i] = r->answers[0];
    }
    double *f1 = xmalloc((size_t)4 * n * sizeof *f1), *rec = xmalloc((size_t)4 * n * sizeof *rec);
    int rc = gen_f1_batch(m, tok, 4 * n, pr, an, maxlen, f1, rec, NULL, NULL, err);
    if (!rc) {
        put(out, pre, "edit_success", mean(f1, n));
        put(out, pre, "generalization", mean(f1 + n, n));
        put(out, pre, "locality", mean(f1 + 2 * n, n));
        put(out, pre, "edit_success_recall", mean(rec, n));
        put(out, pre, "generalization_recall", mean(rec + n, n));
        put(out, pre, "locality_recall", mean(rec + 2 * n, n));
        put(out, pre, "src_true_f1", mean(f1 + 3 * n, n));
        put(out, pre, "src_true_recall", mean(rec + 3 * n, n));
    }
    if (!rc && o && o->ppl) {
        /* composable's "PPL edits" (prompt masked) and "PPl edits unmasked": src vs alt */
        double pm = 0, pu = 0;
        rc = ppl_responses2(m, tok, n, pr, an, o->max_batch_tokens, &pm, &pu, err);
        if (!rc) { put(out, pre, "ppl_edits", pm); put(out, pre, "ppl_edits_unmasked", pu); }
    }
    if (!rc && o && o->teacher_forced) {
        /* EasyEdit: rewrite (src, alt), rephrase (rephrase, alt), locality on (loc, loc_ans) as is */
        const char **tp = xmalloc((size_t)3 * n * sizeof *tp), **ta = xmalloc((size_t)3 * n * sizeof *ta);
        for (int i = 0; i < n; i++) {
            const zsre_record *r = &d->rec[idx[i]];
            tp[i] = r->src; ta[i] = r->alt;
            tp[n + i] = r->rephrase; ta[n + i] = r->alt;
            tp[2 * n + i] = r->loc; ta[2 * n + i] = r->loc_ans;
        }
        double *acc = xmalloc((size_t)3 * n * sizeof *acc);
        int32_t **pa = NULL, **pb = NULL;
        int *la = NULL, *lb = NULL, mism = 0;
        int bt = o->max_batch_tokens;
        rc = tf_argmax_batch(m, tok, 3 * n, tp, ta, bt, acc, &pa, &la, &mism, err);
        if (!rc) {
            if (mism) LOG_W("zsre tf: %d of %d prompts are not a token prefix of prompt + \" \" + answer", mism, 3 * n);
            put(out, pre, "tf_rewrite_acc", mean(acc, n));
            put(out, pre, "tf_rephrase_acc", mean(acc + n, n));
            if (o->ref) {
                rc = tf_argmax_batch(o->ref, tok, n, tp + 2 * n, ta + 2 * n, bt, NULL, &pb, &lb, NULL, err);
                if (!rc) {
                    double s = 0;
                    for (int i = 0; i < n; i++) {
                        int k = la[2 * n + i] < lb[i] ? la[2 * n + i] : lb[i], same = 0;
                        for (int q = 0; q < k; q++) same += pa[2 * n + i][q] == pb[i][q];
                        s += k ? (double)same / k : 1.0;
                    }
                    put(out, pre, "tf_locality", s / n);
                    for (int i = 0; i < n; i++) free(pb[i]);
                    free(pb); free(lb);
                }
            }
            for (int i = 0; i < 3 * n; i++) free(pa[i]);
            free(pa); free(la);
        }
        free(tp); free(ta); free(acc);
    }
    for (int i = 0; i < n; i++) free(locp[i]);
    free(locp); free(pr); free(an); free(f1); free(rec);
    return rc;
}
