/* eval_open.c - open answers: the MMLU/WMDP questions asked bare and answered by greedy generation,
 * scored with composable's token-set F1 against the gold option. A diagnostic of this project (not
 * a metric of the paper): in the synthetic world the MC letters are memorized test items
 * (docs/world.md "Multiple choice"), so MC accuracy and whether the model still states the fact
 * can move apart under an intervention; docs/unlearning.md "Open answers" measures that. */
#include "worker/eval/eval.h"

#include <stdlib.h>
#include <string.h>

int eval_open_task(llama_model *m, const tokenizer *tok, const mc_task *task, int max_length, double *f1_mean,
                   double *em_mean, cis_err *err) {
    *f1_mean = 0;
    if (em_mean) *em_mean = 0;
    int n = task->n;
    if (n <= 0) return 0;
    char **pr = xmalloc((size_t)n * sizeof *pr);
    const char **an = xmalloc((size_t)n * sizeof *an);
    double *f1 = xmalloc((size_t)n * sizeof *f1), *rec = xmalloc((size_t)n * sizeof *rec);
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
    if (!rc) {
        double s = 0;
        int em = 0;
        for (int i = 0; i < n; i++) { s += f1[i]; em += f1[i] >= 1.0; }
        *f1_mean = s / n;
        if (em_mean) *em_mean = (double)em / n;
    }
    for (int i = 0; i < n; i++) free(pr[i]);
    free(pr); free(an); free(f1); free(rec);
    return rc;
}
