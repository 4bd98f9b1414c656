/* test_eval_cloze.c - multiple choice in the cloze formulation (worker/eval/eval_cloze.c): the two
 * contexts byte for byte; a uniform model with a byte tokenizer, where every option's
 * log-likelihood is -(bytes + 1) log V, so acc picks the shortest option and acc_norm (per
 * character, not per byte) the longest; a random model against llama_loglik by hand, batched and
 * one request per forward; left truncation at max_position; limit; errors that name the task and
 * the question. */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "worker/eval/eval.h"

static char tmpdir[256];
static tokenizer *tok_bytes;

static void test_prompts(void) {
    mc_question q = {.question = " \tWhat spreads the Logis blight?\n", .choices = {"a", "b", "c", "d"}, .answer = 1};
    char *p = cloze_prompt_styled(&q, "biology", MC_PROMPT_LMEVAL_042, CLOZE_PROMPT_QA);
    CHECK_EQ_STR(p, "What spreads the Logis blight?");   /* question.strip() alone */
    free(p);
    p = cloze_prompt_styled(&q, "biology", MC_PROMPT_LMEVAL_042, CLOZE_PROMPT_CONTINUATION);
    CHECK_EQ_STR(p, "The following are questions (with answers) about biology.\n"
                    "Question: What spreads the Logis blight?\nAnswer:");
    free(p);
    p = cloze_prompt_styled(&q, "world geography", MC_PROMPT_LMEVAL_044, CLOZE_PROMPT_CONTINUATION);
    CHECK_EQ_STR(p, "The following are questions (with answers) about world geography.\n\n"
                    "Question: What spreads the Logis blight?\nAnswer:");
    free(p);
    cloze_prompt_style s = CLOZE_PROMPT_CONTINUATION;
    CHECK_EQ_INT(cloze_prompt_style_parse("qa", &s), 0);
    CHECK_EQ_INT(s, CLOZE_PROMPT_QA);
    CHECK_EQ_INT(cloze_prompt_style_parse("continuation", &s), 0);
    CHECK_EQ_INT(s, CLOZE_PROMPT_CONTINUATION);
    CHECK_EQ_INT(cloze_prompt_style_parse("cloze", &s), -1);
    CHECK_EQ_INT(cloze_prompt_style_parse(NULL, &s), -1);
    CHECK_EQ_STR(cloze_prompt_style_name(CLOZE_PROMPT_QA), "qa");
    CHECK_EQ_STR(cloze_prompt_style_name(CLOZE_PROMPT_CONTINUATION), "continuation");
}

static void test_uniform_lengths(void) {
    /* every byte is one token and every distribution uniform: ll(" " + choice) = -(bytes + 1) log V */
    llama_model *m = fx_model_uniform();
    mc_question q[3] = {
        /* raw: "b" (2 tokens) wins; per character: "cccc" (-5/4 log V) wins */
        {.question = "Q0?", .choices = {"aa", "b", "cccc", "ddd"}, .answer = 1},
        /* raw: "xy" (3 tokens) wins; per character "\xc3\xa9\xc3\xa9" (two characters in four
         * bytes) -5/2, "abc" -4/3, "xy" -3/2, "zzzzzzzzzz" -11/10: wins */
        {.question = "Q1?", .choices = {"\xc3\xa9\xc3\xa9", "abc", "xy", "zzzzzzzzzz"}, .answer = 3},
        /* ties: the first option (numpy's argmax) */
        {.question = "Q2?", .choices = {"p", "q", "r", "s"}, .answer = 0},
    };
    mc_task t = {.name = "wmdp-bio", .subject = "biology", .q = q, .n = 3};
    mc_opts o = {.max_batch_tokens = 16};  /* several forwards */
    cloze_result r;
    int pred[3], pn[3];
    double ll[12];
    cis_err err = {0};
    CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, &o, pred, pn, ll, &r, &err), 0);
    const double lv = log((double)FX_V);
    const int bytes[12] = {2, 1, 4, 3, 4, 3, 2, 10, 1, 1, 1, 1};
    for (int i = 0; i < 12; i++) CHECK_NEAR(ll[i], -(bytes[i] + 1) * lv, 1e-4);
    CHECK_EQ_INT(pred[0], 1); CHECK_EQ_INT(pn[0], 2);
    CHECK_EQ_INT(pred[1], 2); CHECK_EQ_INT(pn[1], 3);
    CHECK_EQ_INT(pred[2], 0); CHECK_EQ_INT(pn[2], 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_EQ_INT(r.correct, 2);        /* Q0 and Q2 */
    CHECK_EQ_INT(r.correct_norm, 2);   /* Q1 and Q2 */
    CHECK_NEAR(r.acc, 2.0 / 3, 1e-12);
    CHECK_NEAR(r.acc_norm, 2.0 / 3, 1e-12);
    /* limit */
    o.limit = 1;
    CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, &o, NULL, NULL, NULL, &r, &err), 0);
    CHECK_EQ_INT(r.n, 1);
    CHECK_NEAR(r.acc, 1.0, 0);
    CHECK_NEAR(r.acc_norm, 0.0, 0);
    llama_model_free(&m);
}

static void test_per_character_not_byte(void) {
    /* the same four byte lengths; only the character count separates them: "\xc3\xa9\xc3\xa9\xc3\xa9"
     * (6 bytes, 3 characters) -7/3 against "abcdef" (6 bytes, 6 characters) -7/6 per character */
    llama_model *m = fx_model_uniform();
    mc_question q = {.question = "Q?", .choices = {"\xc3\xa9\xc3\xa9\xc3\xa9", "abcdef", "uvwxyz", "ghijkl"}, .answer = 1};
    mc_task t = {.name = "t", .subject = "s", .q = &q, .n = 1};
    cloze_result r;
    int pn = -1;
    cis_err err = {0};
    CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, NULL, NULL, &pn, NULL, &r, &err), 0);
    CHECK_EQ_INT(pn, 1);
    CHECK_EQ_INT(r.correct_norm, 1);
    CHECK_EQ_INT(r.correct, 0);  /* raw: four ties, the first */
    llama_model_free(&m);
}

static void test_random_by_hand(void) {
    llama_model *m = fx_model_random(17, 512);
    mc_question q[5];
    char *strs[25];
    int ns = 0;
    for (int i = 0; i < 5; i++) {
        q[i].question = strs[ns++] = xasprintf("  Which %.*s is it, %d?\n", 1 + (i * 5) % 11, "yyyyyyyyyyyyyy", i);
        for (int k = 0; k < 4; k++) q[i].choices[k] = strs[ns++] = xasprintf("opt%c %.*s", 'a' + k, 1 + (i + k) % 4, "zzzz");
        q[i].answer = i % 4;
    }
    for (int cs = 0; cs < 2; cs++) {
        mc_task t = {.name = "mmlu", .subject = "astronomy", .q = q, .n = 5};
        mc_opts ob = {.cloze_prompt = (cloze_prompt_style)cs, .max_batch_tokens = 4096};
        mc_opts o1 = {.cloze_prompt = (cloze_prompt_style)cs, .max_batch_tokens = 1};
        double lb[20], l1[20];
        cloze_result r;
        cis_err err = {0};
        CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, &ob, NULL, NULL, lb, &r, &err), 0);
        CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, &o1, NULL, NULL, l1, &r, &err), 0);
        double spread = 0;
        for (int i = 0; i < 20; i++) { CHECK_NEAR(l1[i], lb[i], 1e-4); spread += fabs(lb[i] - lb[i - i % 4]); }
        CHECK_MSG(spread > 0.1, "the random model should not be uniform (spread %g)", spread);
        /* question 3, choice 2 by hand: tok(ctx) then the bytes of " " + choice, no BOS */
        char *ctx = cloze_prompt_styled(&q[3], "astronomy", MC_PROMPT_LMEVAL_042, (cloze_prompt_style)cs);
        char *cont = xasprintf(" %s", q[3].choices[2]);
        int32_t *c = NULL;
        int cl = 0;
        CIS_ASSERT(eval_encode(tok_bytes, ctx, false, &c, &cl, &err) == 0);
        CHECK(c[0] != FX_BOS);
        CHECK_EQ_INT(cl, (int)strlen(ctx));
        int n = (int)strlen(cont);
        int32_t *ci = xmalloc((size_t)n * sizeof *ci);
        for (int j = 0; j < n; j++) ci[j] = (unsigned char)cont[j];
        const int32_t *cx[1] = {c}, *ct[1] = {ci};
        int cxl[1] = {cl}, ctl[1] = {n};
        double hand;
        CHECK_EQ_INT(llama_loglik(m, 1, cx, cxl, ct, ctl, 0, &hand, NULL, &err), 0);
        CHECK_NEAR(hand, lb[3 * 4 + 2], 1e-4);
        /* the two contexts score differently */
        if (cs == 1) {
            mc_opts oq = {.cloze_prompt = CLOZE_PROMPT_QA};
            double lq[20];
            CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, &oq, NULL, NULL, lq, &r, &err), 0);
            double d = 0;
            for (int i = 0; i < 20; i++) d += fabs(lq[i] - lb[i]);
            CHECK_MSG(d > 1e-3, "the context style must reach the scores (diff %g)", d);
        }
        free(ctx); free(cont); free(c); free(ci);
    }
    for (int i = 0; i < ns; i++) free(strs[i]);
    llama_model_free(&m);
}

static void test_truncation_and_errors(void) {
    /* max_position 24: a 30-byte question keeps its last 24 - |cont| tokens (lm-eval's left truncation) */
    llama_model *m = fx_model_random(9, 24);
    mc_question q = {.question = "abcdefghijklmnopqrstuvwxyz0123", .choices = {"x", "yy", "zzz", "w"}, .answer = 2};
    mc_task t = {.name = "wmdp-cyber", .subject = "cybersecurity", .q = &q, .n = 1};
    double ll[4];
    cloze_result r;
    cis_err err = {0};
    CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, NULL, NULL, NULL, ll, &r, &err), 0);
    const char *cont = " zzz";
    int32_t c[20], ci[4];
    for (int j = 0; j < 20; j++) c[j] = (unsigned char)q.question[30 - 20 + j];
    for (int j = 0; j < 4; j++) ci[j] = (unsigned char)cont[j];
    const int32_t *cx[1] = {c}, *ct[1] = {ci};
    int cxl[1] = {20}, ctl[1] = {4};
    double hand;
    CHECK_EQ_INT(llama_loglik(m, 1, cx, cxl, ct, ctl, 0, &hand, NULL, &err), 0);
    CHECK_NEAR(hand, ll[2], 1e-4);
    /* an option longer than the model's context */
    q.choices[3] = "0123456789012345678901234567890";
    CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, NULL, NULL, NULL, ll, &r, &err), -1);
    CHECK_MSG(strstr(err.msg, "wmdp-cyber") && strstr(err.msg, "question 0") && strstr(err.msg, "choice 3"), "%s", err.msg);
    /* a missing choice */
    q.choices[3] = NULL;
    CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, NULL, NULL, NULL, ll, &r, &err), -1);
    CHECK_MSG(strstr(err.msg, "wmdp-cyber") && strstr(err.msg, "choice 3 is missing"), "%s", err.msg);
    /* no questions */
    t.n = 0;
    CHECK_EQ_INT(eval_cloze_task(m, tok_bytes, &t, NULL, NULL, NULL, ll, &r, &err), -1);
    CHECK(strstr(err.msg, "no questions") != NULL);
    llama_model_free(&m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cis_eval_cloze_XXXXXX");
    CIS_ASSERT(mkdtemp(tmpdir));
    char *d = xasprintf("%s/tok_bytes", tmpdir);
    tok_bytes = fx_tokenizer(d, false);
    RUN(test_prompts);
    RUN(test_uniform_lengths);
    RUN(test_per_character_not_byte);
    RUN(test_random_by_hand);
    RUN(test_truncation_and_errors);
    tokenizer_free(tok_bytes);
    free(d);
    fx_rm_rf(tmpdir);
    return test_summary();
}
