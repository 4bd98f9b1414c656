/* eval_suite.c - every metric of one model on a world (or real data) directory, as named rows:
 * MMLU (question-weighted over subjects, plus per subject), WMDP bio / cyber / mean, WikiText
 * perplexity, zsRE edit metrics on one edit set and the QA-set F1, average bits, and timings.
 * The worker's job runner sends these rows as RESULT; `cisweep-worker eval` prints them. */
#include "worker/eval/eval.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* CPU seconds of the whole process (every thread): the cpu_*_s rows, which, unlike the wall-time
 * time_*_s rows, a shared machine's load leaves nearly alone */
static double cpu_sec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int eval_profile_parse(const char *s, eval_profile *out) {
    if (s && !strcmp(s, "default")) { *out = EVAL_PROFILE_DEFAULT; return 0; }
    if (s && !strcmp(s, "paper")) { *out = EVAL_PROFILE_PAPER; return 0; }
    if (s && !strcmp(s, "sweep")) { *out = EVAL_PROFILE_SWEEP; return 0; }
    return -1;
}

const char *eval_profile_name(eval_profile p) {
    return p == EVAL_PROFILE_PAPER ? "paper" : p == EVAL_PROFILE_SWEEP ? "sweep" : "default";
}

void eval_opts_profile(eval_opts *o, eval_profile p) {
    o->profile = p;
    o->mc_prompt = MC_PROMPT_LMEVAL_042;
    o->max_length = p == EVAL_PROFILE_PAPER ? EVAL_PAPER_MAX_LENGTH : EVAL_DEFAULT_MAX_LENGTH;
    /* the sets' sizes: every item, except in the sweep profile (docs/eval.md "Profiles") */
    bool sweep = p == EVAL_PROFILE_SWEEP;
    o->mmlu_sample = sweep ? EVAL_SWEEP_MMLU : 0;
    o->wmdp_sample = sweep ? EVAL_SWEEP_WMDP : 0;
    o->ppl_sample = sweep ? EVAL_SWEEP_PPL_WINDOWS : 0;
    o->qa_limit = sweep ? EVAL_SWEEP_QA : 0;
    o->teacher_forced = !sweep;  /* EasyEdit's extras are not among the paper's metrics */
}

void eval_opts_default(eval_opts *o) {
    memset(o, 0, sizeof *o);
    eval_opts_profile(o, EVAL_PROFILE_DEFAULT);
    o->edit_set = 1;
    o->edit_set_size = 50;
    o->batch_tokens = 8192;
    o->teacher_forced = true;
}

/* the smaller positive of two caps (0 = no cap) */
static int cap(int a, int b) { return a > 0 && (b <= 0 || a < b) ? a : b; }

/* the task scored: t itself, or (sample > 0 and below t's size) `sample` of its questions spread
 * evenly over the file (question floor(k * n / sample)), sharing t's strings: free only ->q */
static mc_task mc_sampled(const mc_task *t, int sample) {
    mc_task s = *t;
    if (sample <= 0 || sample >= t->n) { s.q = NULL; return s; }
    s.q = xmalloc((size_t)sample * sizeof *s.q);
    for (int k = 0; k < sample; k++) s.q[k] = t->q[(int64_t)k * t->n / sample];
    s.n = sample;
    return s;
}

/* eval_mc_task on the sampled task */
static int mc_run(llama_model *m, tokenizer *tok, const mc_task *t, int sample, const mc_opts *mo, mc_result *r,
                  cis_err *err) {
    mc_task s = mc_sampled(t, sample);
    bool own = s.q != NULL;
    if (!own) s.q = t->q;
    int rc = eval_mc_task(m, tok, &s, mo, NULL, NULL, r, err);
    if (!rc) LOG_D("mc %s: %d questions, %d over the shared header, %d whole, %d fully scored", t->name, r->n,
                   r->n_shared_prefix, r->n_shortcut - r->n_shared_prefix, r->n_full);
    if (own) free(s.q);
    return rc;
}

/* eval_open_task on the questions mc_run scores (the sample, then the first `limit`): *f1 and *em
 * means over *n questions; its wall and CPU seconds are added to sec[0], sec[1] (kept out of the MC
 * part's time rows) */
static int open_run(llama_model *m, tokenizer *tok, const mc_task *t, int sample, int limit, int max_length,
                    double *f1, double *em, int *n, double sec[2], cis_err *err) {
    double t0 = mono_sec(), c0 = cpu_sec();
    mc_task s = mc_sampled(t, sample);
    bool own = s.q != NULL;
    if (!own) s.q = t->q;
    if (limit > 0 && s.n > limit) s.n = limit;
    *n = s.n;
    int rc = eval_open_task(m, tok, &s, max_length, f1, em, err);
    if (own) free(s.q);
    sec[0] += mono_sec() - t0;
    sec[1] += cpu_sec() - c0;
    return rc;
}

/* eval_cloze_task on the questions mc_run scores (the sample, then mo's limit); its wall and CPU
 * seconds are added to sec[0], sec[1] (kept out of the MC part's time rows) */
static int cloze_run(llama_model *m, tokenizer *tok, const mc_task *t, int sample, const mc_opts *mo, cloze_result *r,
                     double sec[2], cis_err *err) {
    double t0 = mono_sec(), c0 = cpu_sec();
    mc_task s = mc_sampled(t, sample);
    bool own = s.q != NULL;
    if (!own) s.q = t->q;
    int rc = eval_cloze_task(m, tok, &s, mo, NULL, NULL, NULL, r, err);
    if (own) free(s.q);
    sec[0] += mono_sec() - t0;
    sec[1] += cpu_sec() - c0;
    return rc;
}

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* absent: a dataset whose file is not there. Returns 1 (skip it) when o->skip_missing, after a
 * warning; otherwise -1 with err naming the dataset and the expected path (and how to skip it). */
static int absent(const eval_opts *o, const char *dataset, const char *expected, cis_err *err) {
    if (o->skip_missing) {
        LOG_W("eval: %s: %s is absent: skipped (--skip-missing)", dataset, expected);
        return 1;
    }
    return err_set(err, CIS_EIO, "eval: %s: missing dataset: expected %s (to evaluate without it, skip it "
                   "explicitly: eval --skip or --skip-missing, worker --skip-missing-data)", dataset, expected);
}

static int run_mmlu(llama_model *m, tokenizer *tok, const char *dir, const eval_opts *o, eval_rows *out, cis_err *err) {
    char *md = xasprintf("%s/mmlu", dir);
    if (!exists(md)) {
        char *want = xasprintf("%s/mmlu/data/test/<subject>_test.csv", dir);
        int rc = absent(o, "mmlu", want, err);
        free(want); free(md);
        return rc > 0 ? 0 : rc;
    }
    mc_task *tasks = NULL;
    int nt = 0;
    int rc = mmlu_load_dir(md, "test", &tasks, &nt, err);
    free(md);
    if (rc) return -1;
    mc_opts mo = {.prompt = o->mc_prompt, .cloze_prompt = o->cloze_prompt, .add_bos = o->mc_bos,
                  .max_batch_tokens = o->batch_tokens, .limit = o->limit};
    int total = 0, correct = 0, n_open = 0, n_cloze = 0, cloze_ok = 0, cloze_ok_norm = 0;
    double t0 = mono_sec(), c0 = cpu_sec(), open_f1 = 0, open_em = 0, open_sec[2] = {0, 0}, cloze_sec[2] = {0, 0};
    for (int i = 0; i < nt && !rc; i++) {
        mc_result r;
        rc = mc_run(m, tok, &tasks[i], o->mmlu_sample, &mo, &r, err);
        if (rc) break;
        char k[96];
        snprintf(k, sizeof k, "mmlu_%s", tasks[i].name);
        eval_rows_set(out, k, r.acc);
        total += r.n;
        correct += r.correct;
        if (r.n_full) LOG_W("mmlu_%s: %d questions scored without the one-forward shortcut", tasks[i].name, r.n_full);
        if (o->open_answer) {
            double f1, em;
            int n;
            rc = open_run(m, tok, &tasks[i], o->mmlu_sample, o->limit, o->max_length, &f1, &em, &n, open_sec, err);
            open_f1 += f1 * n;
            open_em += em * n;
            n_open += n;
        }
        if (!rc && o->cloze) {
            cloze_result cr;
            rc = cloze_run(m, tok, &tasks[i], o->mmlu_sample, &mo, &cr, cloze_sec, err);
            n_cloze += cr.n;
            cloze_ok += cr.correct;
            cloze_ok_norm += cr.correct_norm;
        }
    }
    double dt = mono_sec() - t0 - open_sec[0] - cloze_sec[0];
    if (!rc && n_cloze > 0) {
        eval_rows_set(out, "cloze_mmlu", (double)cloze_ok / n_cloze);
        eval_rows_set(out, "cloze_mmlu_norm", (double)cloze_ok_norm / n_cloze);
        eval_rows_set(out, "time_cloze_mmlu_s", cloze_sec[0]);
    }
    if (!rc && n_open > 0) {
        eval_rows_set(out, "open_mmlu_f1", open_f1 / n_open);
        eval_rows_set(out, "open_mmlu_em", open_em / n_open);
        eval_rows_set(out, "time_open_mmlu_s", open_sec[0]);
    }
    if (!rc) {
        eval_rows_set(out, "mmlu", (double)correct / total);
        eval_rows_set(out, "n_mmlu", total);
        eval_rows_set(out, "time_mmlu_s", dt);
        eval_rows_set(out, "cpu_mmlu_s", cpu_sec() - c0 - open_sec[1] - cloze_sec[1]);
        eval_rows_set(out, "mmlu_questions_per_s", dt > 0 ? total / dt : 0);
    }
    mc_tasks_free(&tasks, nt);
    return rc;
}

static int run_wmdp(llama_model *m, tokenizer *tok, const char *dir, const eval_opts *o, eval_rows *out, cis_err *err) {
    static const char *file[2] = {"wmdp-bio", "wmdp-cyber"}, *row[2] = {"wmdp_bio", "wmdp_cyber"},
                      *subj[2] = {"biology", "cybersecurity"};
    double acc[2], open_f1[2], open_sec[2] = {0, 0}, cloze[2][2], cloze_sec[2] = {0, 0};
    int have = 0, have_open = 0, have_cloze = 0, rc = 0, nq = 0;
    double t0 = mono_sec(), c0 = cpu_sec();
    mc_opts mo = {.prompt = o->mc_prompt, .cloze_prompt = o->cloze_prompt, .add_bos = o->mc_bos,
                  .max_batch_tokens = o->batch_tokens, .limit = o->limit};
    for (int k = 0; k < 2 && !rc; k++) {
        char *p = xasprintf("%s/wmdp/%s.json", dir, file[k]);
        if (!exists(p)) { free(p); p = xasprintf("%s/wmdp/%s.jsonl", dir, file[k]); }
        if (!exists(p)) {
            char *want = xasprintf("%s/wmdp/%s.json (or %s.jsonl)", dir, file[k], file[k]);
            rc = absent(o, row[k], want, err);
            free(want); free(p);
            if (rc > 0) rc = 0;
            continue;
        }
        mc_task t;
        rc = wmdp_load(p, file[k], subj[k], &t, err);
        free(p);
        if (rc) break;
        mc_result r;
        rc = mc_run(m, tok, &t, o->wmdp_sample, &mo, &r, err);
        if (!rc && o->open_answer) {
            double f1, em;
            int n;
            rc = open_run(m, tok, &t, o->wmdp_sample, o->limit, o->max_length, &f1, &em, &n, open_sec, err);
            if (!rc) {
                char kf[96], ke[96];
                snprintf(kf, sizeof kf, "open_%s_f1", row[k]);
                snprintf(ke, sizeof ke, "open_%s_em", row[k]);
                eval_rows_set(out, kf, f1);
                eval_rows_set(out, ke, em);
                open_f1[have_open++] = f1;
            }
        }
        if (!rc && o->cloze) {
            cloze_result cr;
            rc = cloze_run(m, tok, &t, o->wmdp_sample, &mo, &cr, cloze_sec, err);
            if (!rc) {
                char ka[96], kn[96];
                snprintf(ka, sizeof ka, "cloze_%s", row[k]);
                snprintf(kn, sizeof kn, "cloze_%s_norm", row[k]);
                eval_rows_set(out, ka, cr.acc);
                eval_rows_set(out, kn, cr.acc_norm);
                cloze[have_cloze][0] = cr.acc;
                cloze[have_cloze++][1] = cr.acc_norm;
            }
        }
        mc_task_clear(&t);
        if (rc) break;
        eval_rows_set(out, row[k], r.acc);
        acc[have++] = r.acc;
        nq += r.n;
    }
    double dt = mono_sec() - t0 - open_sec[0] - cloze_sec[0];
    if (!rc && have == 2) eval_rows_set(out, "wmdp_avg", (acc[0] + acc[1]) / 2);
    if (!rc && have_cloze == 2) {
        eval_rows_set(out, "cloze_wmdp_avg", (cloze[0][0] + cloze[1][0]) / 2);
        eval_rows_set(out, "cloze_wmdp_avg_norm", (cloze[0][1] + cloze[1][1]) / 2);
    }
    if (!rc && have_cloze) eval_rows_set(out, "time_cloze_wmdp_s", cloze_sec[0]);
    if (!rc && have_open == 2) eval_rows_set(out, "open_wmdp_f1", (open_f1[0] + open_f1[1]) / 2);
    if (!rc && have_open) eval_rows_set(out, "time_open_wmdp_s", open_sec[0]);
    if (!rc && have) { eval_rows_set(out, "n_wmdp", nq); eval_rows_set(out, "time_wmdp_s", dt); eval_rows_set(out, "cpu_wmdp_s", cpu_sec() - c0 - open_sec[1] - cloze_sec[1]); }
    return rc;
}

static int run_ppl(llama_model *m, tokenizer *tok, const char *dir, const eval_opts *o, eval_rows *out, cis_err *err) {
    char *p = xasprintf("%s/wikitext/wiki.test.raw", dir);
    if (!exists(p)) { int rc = absent(o, "ppl_wikitext", p, err); free(p); return rc > 0 ? 0 : rc; }
    char *text = NULL;
    size_t len = 0;
    int rc = wikitext_load(p, &text, &len, err);
    free(p);
    if (rc) return -1;
    double t0 = mono_sec(), c0 = cpu_sec();
    ppl_result r;
    rc = eval_ppl_text_spread(m, tok, text, len, o->seqlen, o->ppl_sample, o->limit, o->batch_tokens, &r, err);
    double dt = mono_sec() - t0, dc = cpu_sec() - c0;
    free(text);
    if (rc) return -1;
    eval_rows_set(out, "ppl_wikitext", r.ppl);
    eval_rows_set(out, "ppl_windows", r.n_windows);
    eval_rows_set(out, "ppl_seqlen", r.seqlen);
    eval_rows_set(out, "time_ppl_s", dt);
    eval_rows_set(out, "cpu_ppl_s", dc);
    eval_rows_set(out, "ppl_tokens_per_s", dt > 0 ? (double)r.n_windows * r.seqlen / dt : 0);
    return 0;
}

static int run_zsre(llama_model *m, tokenizer *tok, const char *dir, const eval_opts *o, eval_rows *out, cis_err *err) {
    char *p = xasprintf("%s/zsre/zsre_mend_train.json", dir);
    if (!exists(p)) { int rc = absent(o, "zsre", p, err); free(p); return rc > 0 ? 0 : rc; }
    zsre_data d;
    int rc = zsre_load(p, &d, err);
    free(p);
    if (rc) return -1;
    char *sets = xasprintf("%s/zsre/edit_sets.json", dir);
    int32_t *idx = NULL;
    int n = 0;
    double t0 = mono_sec(), c0 = cpu_sec(), c1 = c0;
    if (!o->skip_zsre) {
        rc = zsre_split(sets, d.n, o->edit_set, o->edit_set_size, &idx, &n, err);
        if (!rc && o->limit > 0 && n > o->limit) n = o->limit;
        zsre_opts zo = {.max_length = o->max_length, .max_batch_tokens = o->batch_tokens,
                        .teacher_forced = o->teacher_forced, .ppl = true, .ref = o->ref_model, .prefix = ""};
        if (!rc) rc = eval_zsre_records(m, tok, &d, idx, n, &zo, out, err);
        if (!rc) { eval_rows_set(out, "edit_set", o->edit_set); eval_rows_set(out, "n_edits", n); }
        free(idx);
        idx = NULL;
        c1 = cpu_sec();
        if (!rc) eval_rows_set(out, "cpu_edits_s", c1 - c0);
    }
    if (!rc && !o->skip_qa) {
        /* QA set (records 500..999 of the shuffled list): src vs answers[0] */
        rc = zsre_split(sets, d.n, 0, o->edit_set_size, &idx, &n, err);
        if (rc) { LOG_W("eval: no zsRE QA set (%s): qa_f1 skipped", err->msg); rc = 0; n = 0; }
        int qcap = cap(o->limit, o->qa_limit);
        if (qcap > 0 && n > qcap) n = qcap;
        if (n > 0) {
            const char **pr = xmalloc((size_t)n * sizeof *pr), **an = xmalloc((size_t)n * sizeof *an);
            double *f1 = xmalloc((size_t)n * sizeof *f1), *rec = xmalloc((size_t)n * sizeof *rec);
            for (int i = 0; i < n; i++) { pr[i] = d.rec[idx[i]].src; an[i] = d.rec[idx[i]].answers[0]; }
            rc = gen_f1_batch(m, tok, n, pr, an, o->max_length, f1, rec, NULL, NULL, err);
            if (!rc) {
                double s = 0, sr = 0;
                for (int i = 0; i < n; i++) { s += f1[i]; sr += rec[i]; }
                eval_rows_set(out, "qa_f1", s / n);
                eval_rows_set(out, "qa_recall", sr / n);
                eval_rows_set(out, "n_qa", n);
                /* composable's "PPl QA": unmasked, on answers[0] */
                double pq = 0;
                rc = ppl_responses2(m, tok, n, pr, an, o->batch_tokens, NULL, &pq, err);
                if (!rc) eval_rows_set(out, "ppl_qa", pq);
            }
            free(pr); free(an); free(f1); free(rec);
            if (!rc) eval_rows_set(out, "cpu_qa_s", cpu_sec() - c1);
        }
        free(idx);
    }
    if (!rc) eval_rows_set(out, "time_zsre_s", mono_sec() - t0);
    free(sets);
    zsre_clear(&d);
    return rc;
}

int eval_suite_run(llama_model *m, tokenizer *tok, const char *dir, const eval_opts *opts, eval_rows *out, cis_err *err) {
    eval_opts def;
    if (!opts) { eval_opts_default(&def); opts = &def; }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return err_set(err, CIS_EIO, "eval: %s is not a directory", dir);
    if (opts->threads > 0) backend_set_threads(llama_model_backend(m), opts->threads);
    double t0 = mono_sec(), c0 = cpu_sec();
    int rc = 0;
    if (!rc && !opts->skip_mmlu) rc = run_mmlu(m, tok, dir, opts, out, err);
    if (!rc && !opts->skip_wmdp) rc = run_wmdp(m, tok, dir, opts, out, err);
    if (!rc && !opts->skip_ppl) rc = run_ppl(m, tok, dir, opts, out, err);
    if (!rc && !(opts->skip_zsre && opts->skip_qa)) rc = run_zsre(m, tok, dir, opts, out, err);
    if (rc) return -1;
    double sp = 0;
    eval_rows_set(out, "avg_bits", eval_avg_bits(m, &opts->quant, &sp));
    eval_rows_set(out, "sparsity", sp);
    /* what protocol ran, so a stored result says it (docs/eval.md "Profiles") */
    eval_rows_set(out, "eval_profile", opts->profile);
    eval_rows_set(out, "mc_prompt_newlines", mc_prompt_newlines(opts->mc_prompt));
    eval_rows_set(out, "zsre_max_length", opts->max_length);
    if (opts->cloze) eval_rows_set(out, "cloze_prompt", opts->cloze_prompt); /* 0 qa, 1 continuation */
    eval_rows_set(out, "time_eval_s", mono_sec() - t0);
    eval_rows_set(out, "cpu_eval_s", cpu_sec() - c0);
    return 0;
}
