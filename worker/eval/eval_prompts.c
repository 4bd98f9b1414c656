/* eval_prompts.c - the multiple-choice contexts the evaluator would score, written out without a
 * model: `cisweep-worker eval --world DIR --print-prompts`. One JSON line per question, in the
 * order eval_suite_run scores them (MMLU subjects sorted, then WMDP bio, cyber), so a test can
 * compare them byte for byte with what lm-eval renders (tests/worker/eval/test_lmeval_prompts.py).
 * eval_for_each_mc_task is that order for any per-question tool (eval_open_items too). */
#include "worker/eval/eval.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* one task's prompts as JSON lines {"task", "index", "prompt"}; 0 or -1 (write error) */
static int print_task(const mc_task *t, const char *task_name, mc_prompt_style style, FILE *f, cis_err *err) {
    for (int i = 0; i < t->n; i++) {
        char *p = mc_prompt_styled(&t->q[i], t->subject, style);
        json_t *o = json_pack("{s:s,s:i,s:s}", "task", task_name, "index", i, "prompt", p);
        free(p);
        char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!line) return err_set(err, CIS_EINVAL, "print-prompts: %s question %d: not valid UTF-8", task_name, i);
        int w = fprintf(f, "%s\n", line);
        free(line);
        if (w < 0) return err_set(err, CIS_EIO, "print-prompts: write failed");
    }
    return 0;
}

int eval_for_each_mc_task(const char *dir, eval_mc_task_fn fn, void *ctx, cis_err *err) {
    char *md = xasprintf("%s/mmlu", dir);
    mc_task *tasks = NULL;
    int nt = 0, rc = 0, visited = 0;
    if (exists(md)) {
        rc = mmlu_load_dir(md, "test", &tasks, &nt, err);
        for (int i = 0; i < nt && !rc; i++) {
            char *name = xasprintf("mmlu_%s", tasks[i].name);
            rc = fn(&tasks[i], name, ctx, err);
            free(name);
            visited++;
        }
        mc_tasks_free(&tasks, nt);
    }
    free(md);
    static const char *file[2] = {"wmdp-bio", "wmdp-cyber"}, *row[2] = {"wmdp_bio", "wmdp_cyber"},
                      *subj[2] = {"biology", "cybersecurity"};
    for (int k = 0; k < 2 && !rc; k++) {
        char *p = xasprintf("%s/wmdp/%s.json", dir, file[k]);
        if (!exists(p)) { free(p); p = xasprintf("%s/wmdp/%s.jsonl", dir, file[k]); }
        if (exists(p)) {
            mc_task t = {0};
            rc = wmdp_load(p, file[k], subj[k], &t, err);
            if (!rc) { rc = fn(&t, row[k], ctx, err); visited++; }
            mc_task_clear(&t);
        }
        free(p);
    }
    if (!rc && visited == 0)
        rc = err_set(err, CIS_EIO, "%s holds no multiple-choice task: expected %s/mmlu/data/test/"
                     "<subject>_test.csv or %s/wmdp/wmdp-bio.json", dir, dir, dir);
    return rc;
}

typedef struct print_ctx {
    mc_prompt_style style;
    FILE *f;
} print_ctx;

static int print_fn(const mc_task *t, const char *row, void *ctx, cis_err *err) {
    print_ctx *pc = ctx;
    return print_task(t, row, pc->style, pc->f, err);
}

int eval_print_mc_prompts(const char *dir, mc_prompt_style style, FILE *f, cis_err *err) {
    print_ctx pc = {style, f};
    int rc = eval_for_each_mc_task(dir, print_fn, &pc, err);
    if (rc) { err_prefix(err, "print-prompts"); return -1; }
    if (fflush(f) != 0) return err_set(err, CIS_EIO, "print-prompts: write failed");
    return 0;
}
