/* bench_eval.c - evaluation throughput on the CPU for ~1M and ~5M-parameter random Llama models:
 * multiple-choice questions/s (lm-eval 0-shot MMLU-style prompts, one-forward shortcut, batched),
 * perplexity tokens/s (non-overlapping windows) and zsRE generation-F1 pairs/s (greedy generation
 * to 50 tokens). The tokenizer is the tests' byte-level fixture (so prompts are ~1 token per
 * byte); the model vocabulary is 2048 (untied head) so that the head costs what a small BPE model's would.
 * Built by `make tests-build`, not run by `make test`.
 * Usage: bench_eval [-t threads] [-s 1m,5m]   (default: 2 threads, both sizes) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/worker/eval/eval_fixture.h"
#include "worker/eval/eval.h"

typedef struct shape { const char *name; int D, L, F, V, T; } shape;
static const shape SHAPES[] = {
    {"1m", 128, 3, 344, 2048, 512},
    {"5m", 256, 5, 688, 2048, 512},
};

static double best_of(int reps, double (*fn)(void *), void *arg) {
    double best = 1e30;
    for (int r = 0; r < reps; r++) { double t = fn(arg); best = t < best ? t : best; }
    return best;
}

typedef struct ctx { llama_model *m; tokenizer *tok; mc_task *task; int32_t *ids; int nids; int T;
                     const char **pr, **an; int npairs; } ctx;

static double run_mc(void *a) {
    ctx *c = a; mc_result r; cis_err err = {0};
    mc_opts o = {.max_batch_tokens = 8192};
    double t0 = mono_sec();
    if (eval_mc_task(c->m, c->tok, c->task, &o, NULL, NULL, &r, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    return mono_sec() - t0;
}
static double run_ppl(void *a) {
    ctx *c = a; ppl_result r; cis_err err = {0};
    double t0 = mono_sec();
    if (eval_ppl_tokens(c->m, c->ids, c->nids, c->T, 0, 8192, &r, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    return mono_sec() - t0;
}
static double run_gen(void *a) {
    ctx *c = a; cis_err err = {0};
    double *f1 = xmalloc((size_t)c->npairs * sizeof *f1);
    double t0 = mono_sec();
    if (gen_f1_batch(c->m, c->tok, c->npairs, c->pr, c->an, 50, f1, NULL, NULL, NULL, &err)) { fprintf(stderr, "%s\n", err.msg); exit(1); }
    double t = mono_sec() - t0;
    free(f1);
    return t;
}

int main(int argc, char **argv) {
    int threads = 2;
    const char *sizes = "1m,5m";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-s") && i + 1 < argc) sizes = argv[++i];
        else { fprintf(stderr, "usage: bench_eval [-t threads] [-s 1m,5m]\n"); return 2; }
    }
    char tmp[] = "/tmp/cis_bench_eval_XXXXXX";
    CIS_ASSERT(mkdtemp(tmp));
    tokenizer *tok = fx_tokenizer(tmp, true);
    /* 200 MMLU-style questions */
    mc_task task = {.name = xstrdup("bench"), .subject = xstrdup("high school biology"), .n = 200};
    task.q = xcalloc(200, sizeof *task.q);
    int prompt_tokens = 0;
    for (int i = 0; i < 200; i++) {
        task.q[i].question = xasprintf("In the kingdom of Valkor, which river %d flows past the old mill near %s?", i,
                                       i % 3 ? "Ossa" : "the northern border of Tarn");
        for (int k = 0; k < 4; k++) task.q[i].choices[k] = xasprintf("The river number %d", i * 4 + k);
        task.q[i].answer = i % 4;
        char *p = mc_prompt(&task.q[i], task.subject);
        prompt_tokens += (int)strlen(p);
        free(p);
    }
    int nids = 32768;
    int32_t *ids = xmalloc((size_t)nids * sizeof *ids);
    for (int i = 0; i < nids; i++) ids[i] = (int32_t)((i * 2654435761u) % 256);
    const int npairs = 64;
    const char **pr = xmalloc(npairs * sizeof *pr), **an = xmalloc(npairs * sizeof *an);
    char **own = xmalloc(npairs * sizeof *own);
    for (int i = 0; i < npairs; i++) { own[i] = xasprintf("What is the capital of Zorvan %d?", i); pr[i] = own[i]; an[i] = "Quillby"; }
    printf("bench_eval: %d threads; MC: 200 questions (%.0f tokens/prompt); PPL: %d tokens; gen: %d pairs to 50 tokens\n",
           threads, prompt_tokens / 200.0, nids, npairs);
    printf("%-5s %9s %12s %14s %12s\n", "model", "params", "MC q/s", "PPL tok/s", "gen pairs/s");
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        const shape *sh = &SHAPES[s];
        if (!strstr(sizes, sh->name)) continue;
        llama_config c = fx_config(sh->D, sh->L, sh->F, sh->T);
        c.vocab_size = sh->V;
        c.num_attention_heads = 4; c.num_key_value_heads = 2; c.head_dim = sh->D / 4;
        cis_err err = {0};
        llama_model *m = llama_model_new(&c, NULL, &err);
        if (!m) { fprintf(stderr, "%s\n", err.msg); return 1; }
        llama_model_init_random(m, 1);
        backend_set_threads(llama_model_backend(m), threads);
        ctx cx = {.m = m, .tok = tok, .task = &task, .ids = ids, .nids = nids, .T = sh->T, .pr = pr, .an = an, .npairs = npairs};
        double tmc = best_of(2, run_mc, &cx), tppl = best_of(2, run_ppl, &cx), tgen = best_of(2, run_gen, &cx);
        printf("%-5s %8.2fM %12.1f %14.0f %12.1f\n", sh->name, llama_model_numel(m) / 1e6, 200 / tmc,
               (double)(nids / sh->T) * sh->T / tppl, npairs / tgen);
        llama_model_free(&m);
    }
    for (int i = 0; i < npairs; i++) free(own[i]);
    free(own); free(pr); free(an); free(ids);
    mc_task_clear(&task);
    tokenizer_free(tok);
    fx_rm_rf(tmp);
    return 0;
}
