/* test_eval_suite.c - eval_suite_run on a small world directory in the real layout (MMLU CSVs,
 * WMDP JSON, WikiText raw, zsRE JSON) with a model whose predictions are known: MMLU is the
 * question-weighted mean over subjects, WMDP bio/cyber/avg, PPL of a constant-logit model by
 * hand, zsRE F1s, QA F1, average bits; a malformed file fails with its name, a missing dataset
 * fails naming the expected file (or is skipped when asked); and the
 * `cisweep-worker eval` command on a saved model prints the same numbers. */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "common/rng.h"
#include "worker/engine/checkpoint.h"
#include "worker/eval/eval.h"

#include <unistd.h>

static char tmpdir[256], world[512];

static void put(const char *rel, const char *text) {
    char *p = xasprintf("%s/%s", world, rel);
    cis_err err;
    char *s = strrchr(p, '/');
    *s = 0; CIS_ASSERT(mkdir_p(p, &err) == 0); *s = '/';
    CIS_ASSERT(write_file_replace(p, text, strlen(text), &err) == 0);
    free(p);
}

static void make_world(void) {
    snprintf(world, sizeof world, "%s/world", tmpdir);
    /* MMLU: 3 + 1 questions, 3 of them gold A -> 0.75 question-weighted (0.8333 as a subject mean) */
    put("mmlu/data/test/astronomy_test.csv", "Which star?,\"Sol, ours\",b,c,d,A\nQ2,a,b,c,d,B\n\"Q3\nmore\",a,b,c,d,A\n");
    put("mmlu/data/test/virology_test.csv", "Q?,A,b,c,d,A\n");
    put("mmlu/data/dev/virology_dev.csv", "Q?,a,b,c,d,C\n");
    /* open answers: the constant model's " A" matches a gold option "A" only: MMLU 1 of 4, bio 2 of 3,
     * cyber 1 of 4 (the letters above are unchanged by the options' texts) */
    put("wmdp/wmdp-bio.json", "[{\"question\":\"b1\",\"choices\":[\"A\",\"b\",\"c\",\"d\"],\"answer\":0},"
                              "{\"question\":\"b2\",\"choices\":[\" A \",\"b\",\"c\",\"d\"],\"answer\":0},"
                              "{\"question\":\"b3\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":1}]");
    put("wmdp/wmdp-cyber.json", "[{\"question\":\"c1\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":1},"
                                "{\"question\":\"c2\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":2},"
                                "{\"question\":\"c3\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":3},"
                                "{\"question\":\"c4\",\"choices\":[\"A\",\"b\",\"c\",\"d\"],\"answer\":0}]");
    /* no " A".." D" in the text: every target token has logit 0 under the constant model */
    put("wikitext/wiki.test.raw", " \n = Valkor = \n \n valkor is a river in the north . it flows into the sea near ossa .\n");
    /* zsRE: 520 records (edit set 1 = shuffled [0, 50), QA = shuffled [500, 520)) */
    size_t cap = 520 * 256, w = 0;
    char *z = xmalloc(cap);
    w += (size_t)snprintf(z + w, cap - w, "[");
    for (int i = 0; i < 520; i++)
        w += (size_t)snprintf(z + w, cap - w,
                              "%s{\"subject\":\"Z%d\",\"src\":\"capital of Z%d?\",\"rephrase\":\"Z%d capital?\",\"alt\":\"A\","
                              "\"answers\":[\"%s\"],\"loc\":\"nq question: who is %d\",\"loc_ans\":\"A xyz\"}",
                              i ? "," : "", i, i, i, i % 2 ? "A B" : "xyz", i);
    snprintf(z + w, cap - w, "]");
    put("zsre/zsre_mend_train.json", z);
    free(z);
}

static double row(const eval_rows *r, const char *name) {
    const eval_row *e = eval_rows_get(r, name);
    if (!e) { fprintf(stderr, "  missing row %s\n", name); return NAN; }
    return e->value;
}

static double expect_ppl(void) {
    /* logits: 1/sqrt(1/16 + eps) at " A", 0 elsewhere; every target is another token */
    double a = 1.0 / sqrt(1.0 / 16 + 1e-6);
    return exp(a) + (FX_V - 1);
}

static double expect_qa(void) {
    /* QA records: shuffled positions 500..519; answers[0] = "A B" (F1 2/3) for odd indices, "xyz" (0) else */
    int32_t perm[520];
    rng_py_permutation(100, perm, 520);
    double s = 0;
    for (int i = 500; i < 520; i++) s += perm[i] % 2 ? 2.0 / 3 : 0;
    return s / 20;
}

static double expect_src_true(void) {
    int32_t perm[520];
    rng_py_permutation(100, perm, 520);
    double s = 0;
    for (int i = 0; i < 50; i++) s += perm[i] % 2 ? 2.0 / 3 : 0;
    return s / 50;
}

static void check_rows(const eval_rows *r, double tol) {
    CHECK_NEAR(row(r, "mmlu"), 0.75, tol);
    CHECK_NEAR(row(r, "mmlu_astronomy"), 2.0 / 3, tol);
    CHECK_NEAR(row(r, "mmlu_virology"), 1.0, tol);
    CHECK_NEAR(row(r, "wmdp_bio"), 2.0 / 3, tol);
    CHECK_NEAR(row(r, "wmdp_cyber"), 0.25, tol);
    CHECK_NEAR(row(r, "wmdp_avg"), (2.0 / 3 + 0.25) / 2, tol);
    CHECK_NEAR(row(r, "ppl_wikitext"), expect_ppl(), 1e-3 * expect_ppl());
    CHECK_NEAR(row(r, "edit_success"), 1.0, tol);
    CHECK_NEAR(row(r, "generalization"), 1.0, tol);
    CHECK_NEAR(row(r, "locality"), 0.4, tol);
    CHECK_NEAR(row(r, "locality_recall"), 0.25, tol);
    CHECK_NEAR(row(r, "src_true_f1"), expect_src_true(), tol);
    CHECK_NEAR(row(r, "qa_f1"), expect_qa(), tol);
    CHECK_NEAR(row(r, "tf_rewrite_acc"), 1.0, tol);
    /* every response token is another token than " A": PPL = e^a + 261 in all three */
    CHECK_NEAR(row(r, "ppl_edits"), expect_ppl(), 1e-3 * expect_ppl());
    CHECK_NEAR(row(r, "ppl_edits_unmasked"), expect_ppl(), 1e-3 * expect_ppl());
    CHECK_NEAR(row(r, "ppl_qa"), expect_ppl(), 1e-3 * expect_ppl());
    CHECK_NEAR(row(r, "n_edits"), 50, 0);
    CHECK_NEAR(row(r, "n_qa"), 20, 0);
    CHECK_NEAR(row(r, "n_mmlu"), 4, 0);
    CHECK(row(r, "time_eval_s") >= 0);
}

static void test_suite(void) {
    char *td = xasprintf("%s/tok", tmpdir);
    tokenizer *tok = fx_tokenizer(td, true);
    llama_model *m = fx_model_constant(FX_LETTER(0));
    eval_opts o;
    eval_opts_default(&o);
    o.seqlen = 16;
    eval_rows r = {0};
    cis_err err = {0};
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
    if (err.msg[0]) fprintf(stderr, "  %s\n", err.msg);
    check_rows(&r, 1e-9);
    /* the protocol is recorded with the rows (docs/eval.md "Profiles") */
    CHECK_NEAR(row(&r, "eval_profile"), EVAL_PROFILE_DEFAULT, 0);
    CHECK_NEAR(row(&r, "mc_prompt_newlines"), 1, 0);
    CHECK_NEAR(row(&r, "zsre_max_length"), EVAL_DEFAULT_MAX_LENGTH, 0);
    /* every decoder linear of this model is zero: sparsity 1 -> 1 bit; quantized -> wbits + 32/g */
    CHECK_NEAR(row(&r, "avg_bits"), 1.0, 1e-12);
    CHECK_NEAR(row(&r, "sparsity"), 1.0, 1e-12);
    CHECK(eval_rows_get(&r, "tf_locality") == NULL);
    CHECK(eval_rows_get(&r, "open_wmdp_f1") == NULL);   /* open answers only when asked */
    eval_rows_clear(&r);
    /* open answers on the questions the MC rows score */
    o.open_answer = true;
    o.skip_ppl = o.skip_zsre = o.skip_qa = true;
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
    CHECK_NEAR(row(&r, "open_mmlu_f1"), 0.25, 1e-12);
    CHECK_NEAR(row(&r, "open_mmlu_em"), 0.25, 1e-12);
    CHECK_NEAR(row(&r, "open_wmdp_bio_f1"), 2.0 / 3, 1e-12);
    CHECK_NEAR(row(&r, "open_wmdp_cyber_f1"), 0.25, 1e-12);
    CHECK_NEAR(row(&r, "open_wmdp_cyber_em"), 0.25, 1e-12);
    CHECK_NEAR(row(&r, "open_wmdp_f1"), (2.0 / 3 + 0.25) / 2, 1e-12);
    CHECK_NEAR(row(&r, "wmdp_bio"), 2.0 / 3, 1e-12);
    eval_rows_clear(&r);
    o.wmdp_sample = 2;   /* the MC sample: questions floor(k n / 2): bio b1, b2 (gold "A"), cyber c1, c3 */
    o.skip_mmlu = true;
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
    CHECK_NEAR(row(&r, "open_wmdp_bio_f1"), 1.0, 1e-12);
    CHECK_NEAR(row(&r, "open_wmdp_cyber_f1"), 0.0, 0);
    CHECK(eval_rows_get(&r, "open_mmlu_f1") == NULL);
    eval_rows_clear(&r);
    /* cloze rows (eval_cloze_task) on the same questions: " A" is the constant model's token (logit
     * a), every other token has logit 0, so " <choice>" scores a - lse for "A", -2 lse for one other
     * character and -(n + 1) lse for n others. raw: "A" wins where it is an option, else the
     * shortest option (the first of ties); per character: "Sol, ours" and " A " win too */
    o.open_answer = false;
    o.cloze = true;
    o.wmdp_sample = 0;
    o.skip_mmlu = false;
    CHECK(eval_rows_get(&r, "cloze_mmlu") == NULL);
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
    CHECK_NEAR(row(&r, "cloze_mmlu"), 2.0 / 4, 1e-12);        /* Q3 (ties -> a, gold A) and virology "A" */
    CHECK_NEAR(row(&r, "cloze_mmlu_norm"), 3.0 / 4, 1e-12);   /* and "Sol, ours" (-10 lse / 9 characters) */
    CHECK_NEAR(row(&r, "cloze_wmdp_bio"), 1.0 / 3, 1e-12);    /* b1; "  A " = a - 3 lse loses to -2 lse */
    CHECK_NEAR(row(&r, "cloze_wmdp_bio_norm"), 2.0 / 3, 1e-12);
    CHECK_NEAR(row(&r, "cloze_wmdp_cyber"), 1.0 / 4, 1e-12);
    CHECK_NEAR(row(&r, "cloze_wmdp_avg"), (1.0 / 3 + 1.0 / 4) / 2, 1e-12);
    CHECK_NEAR(row(&r, "cloze_wmdp_avg_norm"), (2.0 / 3 + 1.0 / 4) / 2, 1e-12);
    CHECK_NEAR(row(&r, "cloze_prompt"), CLOZE_PROMPT_QA, 0);
    CHECK_NEAR(row(&r, "mmlu"), 0.75, 1e-12);                 /* the MC rows are unchanged */
    CHECK_NEAR(row(&r, "wmdp_bio"), 2.0 / 3, 1e-12);
    CHECK(eval_rows_get(&r, "open_mmlu_f1") == NULL);
    eval_rows_clear(&r);
    o.cloze_prompt = CLOZE_PROMPT_CONTINUATION;
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
    CHECK_NEAR(row(&r, "cloze_prompt"), CLOZE_PROMPT_CONTINUATION, 0);
    CHECK_NEAR(row(&r, "cloze_mmlu"), 2.0 / 4, 1e-12);        /* the constant model ignores the context */
    eval_rows_clear(&r);
    o.cloze = false;
    o.cloze_prompt = CLOZE_PROMPT_QA;
    o.wmdp_sample = 0;
    o.skip_mmlu = o.skip_ppl = o.skip_zsre = o.skip_qa = false;
    o.quant.wbits = 3; o.quant.group_size = 64;
    o.skip_mmlu = o.skip_wmdp = o.skip_ppl = true;
    o.ref_model = m;
    o.limit = 5;
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
    CHECK_NEAR(row(&r, "avg_bits"), 3.5, 1e-12);
    CHECK(eval_rows_get(&r, "mmlu") == NULL);
    CHECK_NEAR(row(&r, "tf_locality"), 1.0, 0);
    CHECK_NEAR(row(&r, "n_edits"), 5, 0);
    CHECK_NEAR(row(&r, "n_qa"), 5, 0);
    eval_rows_clear(&r);
    /* edit set 12 = [550, 600) lies beyond 520 records (set 11 is clipped to 20) */
    eval_opts_default(&o);
    o.edit_set = 12;
    o.skip_mmlu = o.skip_wmdp = o.skip_ppl = true;
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), -1);
    CHECK(strstr(err.msg, "edit set 12") != NULL);
    eval_rows_clear(&r);
    /* a malformed file fails the run, naming the file */
    put("wmdp/wmdp-cyber.json", "[{\"question\":\"c1\",\"choices\":[\"a\",\"b\",\"c\"],\"answer\":1}]");
    eval_opts_default(&o);
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), -1);
    CHECK(strstr(err.msg, "wmdp-cyber.json") && strstr(err.msg, "choices"));
    eval_rows_clear(&r);
    put("wmdp/wmdp-cyber.json", "[{\"question\":\"c1\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":1},"
                                "{\"question\":\"c2\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":2},"
                                "{\"question\":\"c3\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":3},"
                                "{\"question\":\"c4\",\"choices\":[\"A\",\"b\",\"c\",\"d\"],\"answer\":0}]");
    /* a directory without datasets fails naming the first expected file; with skip_missing,
     * everything is skipped and only the model rows remain */
    char *empty = xasprintf("%s/empty", tmpdir);
    CIS_ASSERT(mkdir_p(empty, &err) == 0);
    CHECK_EQ_INT(eval_suite_run(m, tok, empty, &o, &r, &err), -1);
    CHECK_MSG(strstr(err.msg, "mmlu/data/test/") != NULL, "%s", err.msg);
    CHECK(eval_rows_get(&r, "avg_bits") == NULL);
    eval_rows_clear(&r);
    o.skip_missing = true;
    CHECK_EQ_INT(eval_suite_run(m, tok, empty, &o, &r, &err), 0);
    CHECK(eval_rows_get(&r, "mmlu") == NULL && eval_rows_get(&r, "avg_bits") != NULL);
    eval_rows_clear(&r);
    o.skip_missing = false;
    CHECK_EQ_INT(eval_suite_run(m, tok, "/nonexistent/world", &o, &r, &err), -1);
    free(empty);
    llama_model_free(&m);
    tokenizer_free(tok);
    free(td);
}

/* the sweep profile's sizes: samples per set (here smaller than the sets by hand: 2 questions per MC
 * task spread over the file, 1 window, 3 QA records), recorded as rows; the edit set whole; no
 * teacher-forced rows; limit still caps; paper and default score everything; the name parsed */
static void test_profiles(void) {
    char *td = xasprintf("%s/tok", tmpdir);
    tokenizer *tok = fx_tokenizer(td, true);
    llama_model *m = fx_model_constant(FX_LETTER(0));
    eval_opts o;
    eval_opts_default(&o);
    CHECK_EQ_INT(o.profile, EVAL_PROFILE_DEFAULT);
    CHECK(o.mmlu_sample == 0 && o.wmdp_sample == 0 && o.ppl_sample == 0 && o.qa_limit == 0 && o.teacher_forced);
    eval_opts_profile(&o, EVAL_PROFILE_SWEEP);
    CHECK(o.max_length == EVAL_DEFAULT_MAX_LENGTH && o.mc_prompt == MC_PROMPT_LMEVAL_042);  /* default's protocol */
    CHECK(o.mmlu_sample == EVAL_SWEEP_MMLU && o.wmdp_sample == EVAL_SWEEP_WMDP && o.ppl_sample == EVAL_SWEEP_PPL_WINDOWS &&
          o.qa_limit == EVAL_SWEEP_QA);
    CHECK(!o.teacher_forced);
    o.seqlen = 8;
    o.mmlu_sample = 2; o.wmdp_sample = 2; o.ppl_sample = 1; o.qa_limit = 3;
    eval_rows r = {0};
    cis_err err = {0};
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
    CHECK_NEAR(row(&r, "n_mmlu"), 3, 0);            /* astronomy 2 of 3, virology its only one */
    CHECK_NEAR(row(&r, "mmlu_astronomy"), 0.5, 0);  /* questions 0 and 1 (gold A, B); the model says A */
    CHECK_NEAR(row(&r, "n_wmdp"), 4, 0);
    CHECK_NEAR(row(&r, "wmdp_bio"), 1, 0);          /* b1, b2: gold A */
    CHECK_NEAR(row(&r, "wmdp_cyber"), 0, 0);        /* c1, c3 (0 and 4/2): gold B, D */
    CHECK_NEAR(row(&r, "ppl_windows"), 1, 0);
    CHECK_NEAR(row(&r, "n_edits"), 50, 0);
    CHECK_NEAR(row(&r, "n_qa"), 3, 0);
    CHECK_NEAR(row(&r, "eval_profile"), EVAL_PROFILE_SWEEP, 0);
    CHECK(eval_rows_get(&r, "tf_rewrite_acc") == NULL);
    CHECK_NEAR(row(&r, "edit_success"), 1.0, 1e-9);
    eval_rows_clear(&r);
    o.limit = 2;  /* the smaller cap wins either way */
    o.qa_limit = 4;
    o.skip_mmlu = o.skip_wmdp = o.skip_ppl = true;
    CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
    CHECK_NEAR(row(&r, "n_qa"), 2, 0);
    CHECK_NEAR(row(&r, "n_edits"), 2, 0);
    eval_rows_clear(&r);
    eval_opts_profile(&o, EVAL_PROFILE_PAPER);
    CHECK(o.mmlu_sample == 0 && o.wmdp_sample == 0 && o.ppl_sample == 0 && o.qa_limit == 0 && o.teacher_forced);
    eval_profile pf = EVAL_PROFILE_DEFAULT;
    CHECK(eval_profile_parse("sweep", &pf) == 0 && pf == EVAL_PROFILE_SWEEP);
    CHECK_EQ_STR(eval_profile_name(EVAL_PROFILE_SWEEP), "sweep");
    CHECK(eval_profile_parse("paper", &pf) == 0 && pf == EVAL_PROFILE_PAPER);
    CHECK(eval_profile_parse("fast", &pf) == -1 && eval_profile_parse(NULL, &pf) == -1);
    llama_model_free(&m);
    tokenizer_free(tok);
    free(td);
}

static void rename_in_world(const char *from, const char *to) {
    char *a = xasprintf("%s/%s", world, from), *b = xasprintf("%s/%s", world, to);
    CIS_ASSERT(rename(a, b) == 0);
    free(a); free(b);
}

/* one dataset misnamed (wmdp/bio.jsonl): the run fails naming the expected file, each dataset in
 * turn; skip_missing skips just that one and the other rows are all there */
static void test_missing_dataset(void) {
    char *td = xasprintf("%s/tok2", tmpdir);
    tokenizer *tok = fx_tokenizer(td, true);
    llama_model *m = fx_model_constant(FX_LETTER(0));
    static const struct { const char *file, *renamed, *want, *row; } cases[] = {
        {"wmdp/wmdp-bio.json", "wmdp/bio.jsonl", "wmdp/wmdp-bio.json", "wmdp_bio"},
        {"wmdp/wmdp-cyber.json", "wmdp/cyber.json", "wmdp/wmdp-cyber.json", "wmdp_cyber"},
        {"wikitext/wiki.test.raw", "wikitext/wiki.test.txt", "wikitext/wiki.test.raw", "ppl_wikitext"},
        {"zsre/zsre_mend_train.json", "zsre/zsre_train.json", "zsre/zsre_mend_train.json", "edit_success"},
        {"mmlu", "mmlu_data", "mmlu/data/test/<subject>_test.csv", "mmlu"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        rename_in_world(cases[c].file, cases[c].renamed);
        eval_opts o;
        eval_opts_default(&o);
        o.seqlen = 16;
        o.limit = 4;
        eval_rows r = {0};
        cis_err err = {0};
        CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), -1);
        char *want = xasprintf("%s/%s", world, cases[c].want);
        CHECK_MSG(strstr(err.msg, want) && strstr(err.msg, "missing dataset"), "%s: %s", cases[c].file, err.msg);
        free(want);
        eval_rows_clear(&r);
        o.skip_missing = true;
        CHECK_EQ_INT(eval_suite_run(m, tok, world, &o, &r, &err), 0);
        CHECK_MSG(eval_rows_get(&r, cases[c].row) == NULL, "%s", cases[c].row);
        static const char *all[] = {"mmlu", "wmdp_bio", "wmdp_cyber", "ppl_wikitext", "edit_success", "qa_f1", "avg_bits"};
        int present = 0;
        for (size_t k = 0; k < sizeof all / sizeof *all; k++) present += eval_rows_get(&r, all[k]) != NULL;
        /* one row gone, or (zsRE) its edit and QA rows; WMDP loses the average too */
        CHECK_EQ_INT(present, (int)(sizeof all / sizeof *all) - (!strcmp(cases[c].row, "edit_success") ? 2 : 1));
        CHECK((eval_rows_get(&r, "wmdp_avg") != NULL) == !str_starts(cases[c].row, "wmdp"));
        eval_rows_clear(&r);
        rename_in_world(cases[c].renamed, cases[c].file);
    }
    llama_model_free(&m);
    tokenizer_free(tok);
    free(td);
}

static void test_cli(void) {
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) SKIP("no /proc/self/exe");
    self[n] = 0;
    /* build/tests/worker/eval/test_eval_suite -> build/bin/cisweep-worker */
    for (int up = 0; up < 4; up++) { char *s = strrchr(self, '/'); if (s) *s = 0; }
    char *bin = xasprintf("%s/bin/cisweep-worker", self);
    if (access(bin, X_OK) != 0) { free(bin); SKIP("cisweep-worker not built"); }
    char *md = xasprintf("%s/model", tmpdir);
    llama_model *m = fx_model_constant(FX_LETTER(0));
    int np = 0;
    llama_param *p = llama_model_params(m, &np);
    cis_err err = {0};
    CHECK_EQ_INT(checkpoint_save(md, llama_model_config(m), p, (size_t)np, "F32", 0, &err), 0);
    fx_write_tokenizer(md, true);
    char *cmd = xasprintf("'%s' eval '%s' --world '%s' --seqlen 16 --threads 1 --json 2>/dev/null", bin, md, world);
    FILE *f = popen(cmd, "r");
    CHECK(f != NULL);
    eval_rows r = {0};
    char line[4096];
    bool json = false;
    while (f && fgets(line, sizeof line, f)) {
        if (line[0] == '{') { json = strstr(line, "\"mmlu\":") != NULL; continue; }
        char name[128];
        double v;
        if (sscanf(line, "%127s %lf", name, &v) == 2) eval_rows_set(&r, name, v);
    }
    int rc = f ? pclose(f) : -1;
    CHECK_EQ_INT(rc, 0);
    CHECK(json);
    check_rows(&r, 1e-5); /* printed with %.6g */
    eval_rows_clear(&r);
    /* usage errors exit 2; a missing model exits 1 */
    free(cmd);
    cmd = xasprintf("'%s' eval '%s' 2>/dev/null >/dev/null", bin, md);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    free(cmd);
    cmd = xasprintf("'%s' eval /nonexistent/model --world '%s' 2>/dev/null >/dev/null", bin, world);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    /* an unknown profile: exit 2 naming the option and the names; sweep: its caps as rows */
    free(cmd);
    cmd = xasprintf("'%s' eval '%s' --world '%s' --profile fast 2>&1 >/dev/null", bin, md, world);
    f = popen(cmd, "r");
    bool said = false;
    while (f && fgets(line, sizeof line, f)) said |= strstr(line, "--profile") && strstr(line, "paper or sweep");
    rc = f ? pclose(f) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    CHECK(said);
    free(cmd);
    cmd = xasprintf("'%s' eval '%s' --world '%s' --seqlen 16 --threads 1 --profile sweep --skip zsre 2>/dev/null", bin,
                    md, world);
    f = popen(cmd, "r");
    bool prof = false, tf = false;
    while (f && fgets(line, sizeof line, f)) { prof |= str_starts(line, "eval_profile 2"); tf |= str_starts(line, "tf_"); }
    rc = f ? pclose(f) : -1;
    CHECK_EQ_INT(rc, 0);
    CHECK(prof && !tf);
    /* a misnamed dataset: exit 1 naming the expected file; --skip-missing: exit 0 without its row */
    rename_in_world("wmdp/wmdp-bio.json", "wmdp/bio.jsonl");
    free(cmd);
    cmd = xasprintf("'%s' eval '%s' --world '%s' --seqlen 16 --limit 2 2>&1 >/dev/null", bin, md, world);
    f = popen(cmd, "r");
    bool named = false;
    while (f && fgets(line, sizeof line, f)) named |= strstr(line, "wmdp/wmdp-bio.json") != NULL;
    rc = f ? pclose(f) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    CHECK(named);
    free(cmd);
    cmd = xasprintf("'%s' eval '%s' --world '%s' --seqlen 16 --limit 2 --skip-missing 2>/dev/null", bin, md, world);
    f = popen(cmd, "r");
    bool bio = false, cyber = false;
    while (f && fgets(line, sizeof line, f)) { bio |= str_starts(line, "wmdp_bio "); cyber |= str_starts(line, "wmdp_cyber "); }
    rc = f ? pclose(f) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    CHECK(!bio && cyber);
    rename_in_world("wmdp/bio.jsonl", "wmdp/wmdp-bio.json");
    /* --per-item: one JSON line per question (4 MMLU, 3 bio, 4 cyber); the constant model always
     * predicts A and states "A" */
    free(cmd);
    char *items = xasprintf("%s/items.jsonl", tmpdir);
    cmd = xasprintf("'%s' eval '%s' --world '%s' --threads 1 --per-item '%s' 2>/dev/null", bin, md, world, items);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    f = fopen(items, "r");
    int nl = 0;
    bool b0 = false, c0 = false;
    while (f && fgets(line, sizeof line, f)) {
        nl++;
        b0 |= !strcmp(line, "{\"task\":\"wmdp_bio\",\"index\":0,\"gold\":0,\"mc_pred\":0,\"mc_correct\":true,"
                            "\"cloze_pred\":0,\"cloze_correct\":true,\"open_f1\":1}\n");
        c0 |= !strcmp(line, "{\"task\":\"wmdp_cyber\",\"index\":0,\"gold\":1,\"mc_pred\":0,\"mc_correct\":false,"
                            "\"cloze_pred\":0,\"cloze_correct\":false,\"open_f1\":0}\n");
    }
    if (f) fclose(f);
    CHECK_EQ_INT(nl, 11);
    CHECK(b0 && c0);
    free(cmd);
    cmd = xasprintf("'%s' eval '%s' --world '%s' --per-item /nonexistent/dir/items.jsonl 2>&1 >/dev/null", bin, md, world);
    f = popen(cmd, "r");
    named = false;
    while (f && fgets(line, sizeof line, f)) named |= strstr(line, "/nonexistent/dir/items.jsonl") != NULL;
    rc = f ? pclose(f) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    CHECK(named);
    free(items);
    /* --cloze [--cloze-prompt]: the cloze rows and the context they used */
    free(cmd);
    cmd = xasprintf("'%s' eval '%s' --world '%s' --skip ppl,zsre,qa --cloze --cloze-prompt continuation 2>/dev/null", bin, md, world);
    f = popen(cmd, "r");
    double cz = -1, czp = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (str_starts(line, "cloze_wmdp_bio ")) cz = atof(line + 15);
        if (str_starts(line, "cloze_prompt ")) czp = atof(line + 13);
    }
    rc = f ? pclose(f) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);
    CHECK_NEAR(cz, 1.0 / 3, 1e-5);
    CHECK_NEAR(czp, 1, 0);
    free(cmd);
    cmd = xasprintf("'%s' eval '%s' --world '%s' --cloze --cloze-prompt olmes 2>&1 >/dev/null", bin, md, world);
    f = popen(cmd, "r");
    named = false;
    while (f && fgets(line, sizeof line, f)) named |= strstr(line, "--cloze-prompt") && strstr(line, "olmes");
    rc = f ? pclose(f) : -1;
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    CHECK(named);
    /* --profile / --mc-prompt / --max-length: recorded as rows; an option overrides the profile
     * wherever it stands */
    static const struct { const char *args; double profile, newlines, max_length; } pc[] = {
        {"--profile paper", EVAL_PROFILE_PAPER, 1, EVAL_PAPER_MAX_LENGTH},
        {"--mc-prompt 0.4.4 --profile paper", EVAL_PROFILE_PAPER, 2, EVAL_PAPER_MAX_LENGTH},
        {"--max-length 40 --profile paper", EVAL_PROFILE_PAPER, 1, 40},
        {"--profile default --mc-prompt lm-eval-0.4.4", EVAL_PROFILE_DEFAULT, 2, EVAL_DEFAULT_MAX_LENGTH},
    };
    for (size_t c = 0; c < sizeof pc / sizeof *pc; c++) {
        free(cmd);
        cmd = xasprintf("'%s' eval '%s' --world '%s' --seqlen 16 --limit 2 --skip ppl %s 2>/dev/null", bin, md, world, pc[c].args);
        f = popen(cmd, "r");
        while (f && fgets(line, sizeof line, f)) {
            char name[128];
            double v;
            if (sscanf(line, "%127s %lf", name, &v) == 2) eval_rows_set(&r, name, v);
        }
        rc = f ? pclose(f) : -1;
        CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "%s", pc[c].args);
        CHECK_MSG(row(&r, "eval_profile") == pc[c].profile, "%s", pc[c].args);
        CHECK_MSG(row(&r, "mc_prompt_newlines") == pc[c].newlines, "%s", pc[c].args);
        CHECK_MSG(row(&r, "zsre_max_length") == pc[c].max_length, "%s", pc[c].args);
        eval_rows_clear(&r);
    }
    static const char *bad[] = {"--profile", "--profile fast", "--mc-prompt 0.4", "--mc-prompt"};
    for (size_t c = 0; c < sizeof bad / sizeof *bad; c++) {
        free(cmd);
        cmd = xasprintf("'%s' eval '%s' --world '%s' %s 2>/dev/null >/dev/null", bin, md, world, bad[c]);
        rc = system(cmd);
        CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 2, "%s", bad[c]);
    }
    free(cmd); free(md); free(bin);
    llama_model_free(&m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cis_eval_suite_XXXXXX");
    CIS_ASSERT(mkdtemp(tmpdir));
    make_world();
    RUN(test_suite);
    RUN(test_profiles);
    RUN(test_missing_dataset);
    RUN(test_cli);
    fx_rm_rf(tmpdir);
    return test_summary();
}
