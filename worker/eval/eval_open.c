/* eval_open.c - open answers: the MMLU/WMDP questions asked bare and answered by greedy generation,
 * scored with composable's token-set F1 against the gold option. A diagnostic of this project (not
 * a metric of the paper): in the synthetic world the MC letters are memorized test items
 * (docs/world.md "Multiple choice"), so MC accuracy and whether the model still states the fact
 * can move apart under an intervention; docs/unlearning.md "Open answers" measures that. */
#include "worker/eval/eval.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* open_f1s: f1[task->n] of the open answers; 0 or -1 */
static int open_f1s(llama_model *m, const tokenizer *tok, const mc_task *task, int max_length, double *f1, cis_err *err);

int eval_open_task(llama_model *m, const tokenizer *tok, const mc_task *task, int max_length, double *f1_mean,
                   double *em_mean, cis_err *err) {
    *f1_mean = 0;
    if (em_mean) *em_mean = 0;
    int n = task->n;
    if (n <= 0) return 0;
    double *f1 = xmalloc((size_t)n * sizeof *f1);
    int rc = open_f1s(m, tok, task, max_length, f1, err);
    if (!rc) {
        double s = 0;
        int em = 0;
        for (int i = 0; i < n; i++) { s += f1[i]; em += f1[i] >= 1.0; }
        *f1_mean = s / n;
        if (em_mean) *em_mean = (double)em / n;
    }
    free(f1);
    return rc;
}

static int open_f1s(llama_model *m, const tokenizer *tok, const mc_task *task, int max_length, double *f1, cis_err *err) {
    int n = task->n;
    char **pr = xmalloc((size_t)n * sizeof *pr);
    const char **an = xmalloc((size_t)n * sizeof *an);
    double *rec = xmalloc((size_t)n * sizeof *rec);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const mc_question *q = &task->q[i];
        if (q->answer < 0 || q->answer > 3 || !q->question || !q->choices[q->answer]) {
            for (int j = 0; j < i; j++) free(pr[j]);
            rc = err_set(err, CIS_EINVAL, "eval open answers: %s question %d: no gold choice (answer %d)",
                         task->name, i, q->answer);
            n = 0;
            break;
        }
        size_t b, e;
        eval_py_strip(q->question, strlen(q->question), &b, &e);
        pr[i] = xmalloc(e - b + 1);
        memcpy(pr[i], q->question + b, e - b);
        pr[i][e - b] = 0;
        an[i] = q->choices[q->answer];
    }
    if (!rc) rc = gen_f1_batch(m, tok, n, (const char *const *)pr, an, max_length, f1, rec, NULL, NULL, err);
    for (int i = 0; i < n; i++) free(pr[i]);
    free(pr); free(an); free(rec);
    return rc;
}

typedef struct items_ctx {
    llama_model *m;
    const tokenizer *tok;
    const mc_opts *mo;
    int max_length;
    FILE *f;
} items_ctx;

static int items_fn(const mc_task *t, const char *row, void *ctx, cis_err *err) {
    items_ctx *c = ctx;
    if (t->n <= 0) return 0;
    int *pred = xmalloc((size_t)t->n * sizeof *pred), *cpred = xmalloc((size_t)t->n * sizeof *cpred);
    double *f1 = xmalloc((size_t)t->n * sizeof *f1);
    mc_result r;
    cloze_result cr;
    int rc = eval_mc_task(c->m, (tokenizer *)c->tok, t, c->mo, pred, NULL, &r, err);
    if (!rc) rc = eval_cloze_task(c->m, c->tok, t, c->mo, cpred, NULL, NULL, &cr, err);
    if (!rc) rc = open_f1s(c->m, c->tok, t, c->max_length, f1, err);
    /* the task name JSON-escaped (an MMLU subject comes from a file name) */
    json_t *js = json_string(row);
    char *name = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
    json_decref(js);
    if (!rc && !name) rc = err_set(err, CIS_EINVAL, "eval --per-item: task name %s: not valid UTF-8", row);
    for (int i = 0; i < t->n && !rc; i++) {
        int g = t->q[i].answer;
        if (fprintf(c->f, "{\"task\":%s,\"index\":%d,\"gold\":%d,\"mc_pred\":%d,\"mc_correct\":%s,\"cloze_pred\":%d,"
                    "\"cloze_correct\":%s,\"open_f1\":%.6g}\n", name, i, g, pred[i], pred[i] == g ? "true" : "false",
                    cpred[i], cpred[i] == g ? "true" : "false", f1[i]) < 0)
            rc = err_set(err, CIS_EIO, "eval --per-item: write failed");
    }
    free(name);
    free(pred);
    free(cpred);
    free(f1);
    return rc;
}

int eval_open_items(llama_model *m, const tokenizer *tok, const char *dir, const mc_opts *mo, int max_length,
                    FILE *f, cis_err *err) {
    items_ctx c = {m, tok, mo, max_length, f};
    if (eval_for_each_mc_task(dir, items_fn, &c, err)) return -1;
    if (fflush(f) != 0) return err_set(err, CIS_EIO, "eval --per-item: write failed");
    return 0;
}
