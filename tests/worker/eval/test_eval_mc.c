/* test_eval_mc.c - multiple choice the lm-eval way: golden prompt strings byte for byte, a uniform
 * model (all ties -> always "A": accuracy = fraction of gold A), a constant model that always picks
 * a known letter, the one-forward shortcut equal to full scoring on a random tiny model (batched,
 * several lengths), the fallback when letters are not single tokens, and the BOS switch. */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "worker/eval/eval.h"

static char tmpdir[256];
static tokenizer *tok_letters, *tok_bytes;

static mc_task make_task(int n, const int *answers, const char *subject) {
    mc_task t = {0};
    t.name = xstrdup("test");
    t.subject = xstrdup(subject);
    t.q = xcalloc((size_t)n, sizeof *t.q);
    t.n = n;
    for (int i = 0; i < n; i++) {
        /* different lengths so that batches are padded */
        t.q[i].question = xasprintf("  Question %d: which %.*s is the right one?\n", i, 1 + (i * 7) % 23, "xxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        for (int c = 0; c < 4; c++) t.q[i].choices[c] = xasprintf("option %c%d", 'a' + c, i);
        t.q[i].answer = answers[i];
    }
    return t;
}

static void test_golden_prompt(void) {
    /* lm-eval 0.4.2 (the default): ONE newline after the description (fidelity.md §4; the bytes
     * are checked against the real package in test_lmeval_prompts.py) */
    mc_question q = {.question = " \tWhat is 2+2?\n", .choices = {"3", "4", "five, or so", "\"22\""}, .answer = 1};
    char *p = mc_prompt(&q, "abstract algebra");
    CHECK_EQ_STR(p, "The following are multiple choice questions (with answers) about abstract algebra.\n"
                    "What is 2+2?\nA. 3\nB. 4\nC. five, or so\nD. \"22\"\nAnswer:");
    free(p);
    p = mc_prompt_styled(&q, "abstract algebra", MC_PROMPT_LMEVAL_042);
    CHECK_EQ_STR(p, "The following are multiple choice questions (with answers) about abstract algebra.\n"
                    "What is 2+2?\nA. 3\nB. 4\nC. five, or so\nD. \"22\"\nAnswer:");
    free(p);
    /* lm-eval >= 0.4.4 keeps the description's "\n\n" */
    p = mc_prompt_styled(&q, "abstract algebra", MC_PROMPT_LMEVAL_044);
    CHECK_EQ_STR(p, "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
                    "What is 2+2?\nA. 3\nB. 4\nC. five, or so\nD. \"22\"\nAnswer:");
    free(p);
    /* the MMLU loader's subject has '_' -> ' '; WMDP uses the domain names (same description form) */
    mc_question w = {.question = "Which toxin?", .choices = {"a", "b", "c", "d"}};
    p = mc_prompt(&w, "biology");
    CHECK_EQ_STR(p, "The following are multiple choice questions (with answers) about biology.\n"
                    "Which toxin?\nA. a\nB. b\nC. c\nD. d\nAnswer:");
    free(p);
    /* Python's strip() removes Unicode whitespace too (U+00A0, U+3000) */
    mc_question u = {.question = "\xc2\xa0Q?\xe3\x80\x80", .choices = {"a", "b", "c", "d"}};
    p = mc_prompt(&u, "x");
    CHECK(strstr(p, "about x.\nQ?\nA. a") != NULL);
    free(p);
    /* choices are not stripped (lm-eval formats them as they are) */
    mc_question s = {.question = "Q", .choices = {" a ", "b", "c", "d"}};
    p = mc_prompt(&s, "cybersecurity");
    CHECK(strstr(p, "\nA.  a \nB. b") != NULL);
    free(p);
}

static void test_prompt_style_names(void) {
    mc_prompt_style st = MC_PROMPT_LMEVAL_044;
    CHECK_EQ_INT(mc_prompt_style_parse("0.4.2", &st), 0);
    CHECK_EQ_INT(st, MC_PROMPT_LMEVAL_042);
    CHECK_EQ_INT(mc_prompt_style_parse("lm-eval-0.4.4", &st), 0);
    CHECK_EQ_INT(st, MC_PROMPT_LMEVAL_044);
    CHECK_EQ_INT(mc_prompt_style_parse("0.4.3", &st), -1);
    CHECK_EQ_INT(mc_prompt_style_parse("", &st), -1);
    CHECK_EQ_INT(mc_prompt_style_parse(NULL, &st), -1);
    CHECK_EQ_STR(mc_prompt_style_name(MC_PROMPT_LMEVAL_042), "lm-eval-0.4.2");
    CHECK_EQ_STR(mc_prompt_style_name(MC_PROMPT_LMEVAL_044), "lm-eval-0.4.4");
    CHECK_EQ_INT(mc_prompt_newlines(MC_PROMPT_LMEVAL_042), 1);
    CHECK_EQ_INT(mc_prompt_newlines(MC_PROMPT_LMEVAL_044), 2);
    /* the profiles: paper = 0.4.2 + max_length 30 (fidelity.md §4) */
    eval_opts o;
    eval_opts_default(&o);
    CHECK_EQ_INT(o.profile, EVAL_PROFILE_DEFAULT);
    CHECK_EQ_INT(o.mc_prompt, MC_PROMPT_LMEVAL_042);
    CHECK_EQ_INT(o.max_length, EVAL_DEFAULT_MAX_LENGTH);
    o.mc_prompt = MC_PROMPT_LMEVAL_044;
    o.edit_set = 3;
    eval_opts_profile(&o, EVAL_PROFILE_PAPER);
    CHECK_EQ_INT(o.mc_prompt, MC_PROMPT_LMEVAL_042);
    CHECK_EQ_INT(o.max_length, 30);
    CHECK_EQ_INT(o.edit_set, 3);
    eval_profile pr = EVAL_PROFILE_DEFAULT;
    CHECK_EQ_INT(eval_profile_parse("paper", &pr), 0);
    CHECK_EQ_INT(pr, EVAL_PROFILE_PAPER);
    CHECK_EQ_INT(eval_profile_parse("Paper", &pr), -1);
    CHECK_EQ_STR(eval_profile_name(EVAL_PROFILE_PAPER), "paper");
    CHECK_EQ_STR(eval_profile_name(EVAL_PROFILE_DEFAULT), "default");
}

static void test_uniform_always_a(void) {
    llama_model *m = fx_model_uniform();
    const int ans[10] = {0, 1, 0, 3, 2, 0, 1, 0, 2, 3}; /* 4 of 10 are A */
    mc_task t = make_task(10, ans, "high school biology");
    mc_opts o = {.max_batch_tokens = 300}; /* forces several forwards */
    mc_result r;
    int pred[10];
    double ll[40];
    cis_err err = {0};
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &o, pred, ll, &r, &err), 0);
    CHECK_EQ_INT(r.n, 10);
    CHECK_NEAR(r.acc, 0.4, 1e-12);
    CHECK_EQ_INT(r.correct, 4);
    CHECK_EQ_INT(r.n_shortcut, 10);
    CHECK_EQ_INT(r.n_full, 0);
    CHECK_EQ_INT(r.n_prefix_mismatch, 0);
    for (int i = 0; i < 10; i++) CHECK_EQ_INT(pred[i], 0);
    for (int i = 0; i < 40; i++) CHECK_NEAR(ll[i], -log((double)FX_V), 1e-5);
    /* stderr = sample std (ddof 1) / sqrt(n): p = 0.4, n = 10 -> sqrt(0.24 * 10/9 / 10) */
    CHECK_NEAR(r.acc_stderr, sqrt(0.4 * 0.6 * 10.0 / 9.0 / 10.0), 1e-12);
    /* --limit */
    o.limit = 3;
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &o, NULL, NULL, &r, &err), 0);
    CHECK_EQ_INT(r.n, 3);
    CHECK_NEAR(r.acc, 2.0 / 3.0, 1e-12);
    /* the full path gives the same ties -> the same answer */
    mc_opts f = {.force_full = true};
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &f, pred, NULL, &r, &err), 0);
    CHECK_NEAR(r.acc, 0.4, 1e-12);
    CHECK_EQ_INT(r.n_full, 10);
    mc_task_clear(&t);
    llama_model_free(&m);
}

static void test_constant_letter(void) {
    /* a model that always predicts " C": every question answered C */
    llama_model *m = fx_model_constant(FX_LETTER(2));
    const int ans[6] = {2, 2, 0, 1, 2, 3};
    mc_task t = make_task(6, ans, "biology");
    mc_result r;
    int pred[6];
    cis_err err = {0};
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, NULL, pred, NULL, &r, &err), 0);
    CHECK_NEAR(r.acc, 0.5, 1e-12);
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(pred[i], 2);
    mc_task_clear(&t);
    llama_model_free(&m);
}

static void test_shortcut_equals_full(void) {
    llama_model *m = fx_model_random(7, 512);
    const int ans[13] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0};
    mc_task t = make_task(13, ans, "college physics");
    double ls[52], lf[52];
    int ps[13], pf[13];
    mc_result rs, rf;
    cis_err err = {0};
    mc_opts os = {.max_batch_tokens = 500}, of = {.force_full = true, .max_batch_tokens = 500};
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &os, ps, ls, &rs, &err), 0);
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &of, pf, lf, &rf, &err), 0);
    CHECK_EQ_INT(rs.n_shortcut, 13);
    CHECK_EQ_INT(rf.n_full, 13);
    double maxd = 0, spread = 0;
    for (int i = 0; i < 52; i++) {
        double d = fabs(ls[i] - lf[i]);
        maxd = d > maxd ? d : maxd;
        spread += fabs(ls[i] - ls[i - i % 4]);
    }
    CHECK_MSG(maxd < 1e-4, "max |shortcut - full| = %g", maxd);
    CHECK_MSG(spread > 0.1, "the random model should not be uniform (spread %g)", spread);
    for (int i = 0; i < 13; i++) CHECK_EQ_INT(ps[i], pf[i]);
    CHECK_NEAR(rs.acc, rf.acc, 0);
    /* one question per forward gives the same numbers as the batched run */
    mc_opts o1 = {.max_batch_tokens = 1};
    double l1[52];
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &o1, NULL, l1, &rs, &err), 0);
    for (int i = 0; i < 52; i++) CHECK_NEAR(l1[i], ls[i], 1e-4);
    /* and the full path agrees with llama_loglik called by hand on question 5, letter D */
    char *ctx = mc_prompt(&t.q[5], t.subject), *whole = xasprintf("%s D", ctx);
    int32_t *c = NULL, *w = NULL;
    int cl = 0, wl = 0;
    CIS_ASSERT(eval_encode(tok_letters, ctx, false, &c, &cl, &err) == 0 && eval_encode(tok_letters, whole, false, &w, &wl, &err) == 0);
    CHECK_EQ_INT(wl, cl + 1);
    CHECK_EQ_INT(w[cl], FX_LETTER(3));
    CHECK(c[0] != FX_BOS); /* lm-eval: no BOS on the context by default */
    const int32_t *cx[1] = {c}, *ct[1] = {w + cl};
    int cxl[1] = {cl}, ctl[1] = {1};
    double hand;
    CHECK_EQ_INT(llama_loglik(m, 1, cx, cxl, ct, ctl, 0, &hand, NULL, &err), 0);
    CHECK_NEAR(hand, ls[5 * 4 + 3], 1e-4);
    free(ctx); free(whole); free(c); free(w);
    mc_task_clear(&t);
    llama_model_free(&m);
}

static void test_fallback_without_letter_tokens(void) {
    /* without the merges " X" is two tokens (space, letter): no shortcut, full scoring of 2 tokens */
    llama_model *m = fx_model_random(11, 512);
    const int ans[5] = {3, 2, 1, 0, 3};
    mc_task t = make_task(5, ans, "astronomy");
    mc_result r;
    double ll[20];
    cis_err err = {0};
    CHECK_EQ_INT(eval_mc_task(m, tok_bytes, &t, NULL, NULL, ll, &r, &err), 0);
    CHECK_EQ_INT(r.n_full, 5);
    CHECK_EQ_INT(r.n_shortcut, 0);
    CHECK_EQ_INT(r.n_prefix_mismatch, 5);
    /* by hand: log p(' ' | ctx) + log p('B' | ctx ' ') for question 0 */
    char *ctx = mc_prompt(&t.q[0], t.subject);
    int32_t *c = NULL;
    int cl = 0;
    CIS_ASSERT(eval_encode(tok_bytes, ctx, false, &c, &cl, &err) == 0);
    int32_t cont[2] = {' ', 'B'};
    const int32_t *cx[1] = {c}, *ct[1] = {cont};
    int cxl[1] = {cl}, ctl[1] = {2};
    double hand;
    CHECK_EQ_INT(llama_loglik(m, 1, cx, cxl, ct, ctl, 0, &hand, NULL, &err), 0);
    CHECK_NEAR(hand, ll[1], 1e-4);
    free(ctx); free(c);
    mc_task_clear(&t);
    llama_model_free(&m);
}

static void test_bos_switch(void) {
    llama_model *m = fx_model_random(3, 512);
    const int ans[3] = {0, 1, 2};
    mc_task t = make_task(3, ans, "virology");
    double a[12], b[12];
    mc_result r;
    cis_err err = {0};
    mc_opts o = {.add_bos = true};
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, NULL, NULL, a, &r, &err), 0);
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &o, NULL, b, &r, &err), 0);
    double d = 0;
    for (int i = 0; i < 12; i++) d += fabs(a[i] - b[i]);
    CHECK_MSG(d > 1e-3, "a BOS before the context must change the scores (diff %g)", d);
    /* with BOS the scores equal a by-hand loglik on [BOS] ++ ctx */
    char *ctx = mc_prompt(&t.q[0], t.subject);
    int32_t *c = NULL;
    int cl = 0;
    CIS_ASSERT(eval_encode(tok_letters, ctx, true, &c, &cl, &err) == 0);
    CHECK_EQ_INT(c[0], FX_BOS);
    int32_t cont[1] = {FX_LETTER(0)};
    const int32_t *cx[1] = {c}, *ct[1] = {cont};
    int cxl[1] = {cl}, ctl[1] = {1};
    double hand;
    CHECK_EQ_INT(llama_loglik(m, 1, cx, cxl, ct, ctl, 0, &hand, NULL, &err), 0);
    CHECK_NEAR(hand, b[0], 1e-4);
    free(ctx); free(c);
    mc_task_clear(&t);
    llama_model_free(&m);
}

static void test_long_context_truncated(void) {
    /* a context longer than max_position_embeddings keeps its last max_pos tokens (lm-eval) */
    llama_model *m = fx_model_random(5, 64);
    const int ans[2] = {0, 1};
    mc_task t = make_task(2, ans, "law");
    mc_result r;
    double ll[8];
    cis_err err = {0};
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, NULL, NULL, ll, &r, &err), 0);
    char *ctx = mc_prompt(&t.q[1], t.subject);
    int32_t *c = NULL;
    int cl = 0;
    CIS_ASSERT(eval_encode(tok_letters, ctx, false, &c, &cl, &err) == 0);
    CHECK(cl > 64);
    /* lm-eval keeps (ctx ++ cont)[-(64+1):][:-1] = the last 64 context tokens: score them by hand */
    float lg[FX_V];
    int32_t ob = 0, ot = 63;
    llama_batch bt = {.B = 1, .T = 64, .ids = c + cl - 64, .n_out = 1, .out_b = &ob, .out_t = &ot, .logits = lg};
    CHECK_EQ_INT(llama_forward(m, &bt, NULL, 0, false, NULL, &err), 0);
    double mx = lg[0], s = 0;
    for (int v = 1; v < FX_V; v++) mx = lg[v] > mx ? lg[v] : mx;
    for (int v = 0; v < FX_V; v++) s += exp(lg[v] - mx);
    CHECK_NEAR(ll[6], lg[FX_LETTER(2)] - mx - log(s), 1e-5);
    free(ctx); free(c);
    mc_task_clear(&t);
    llama_model_free(&m);
}

/* the style reaches the scored context: on a random model the default (zeroed mc_opts) scores
 * the 0.4.2 context, 0.4.4 scores its own context (checked by hand through llama_loglik), and the
 * two differ */
static void test_style_reaches_scoring(void) {
    llama_model *m = fx_model_random(23, 512);
    const int ans[6] = {0, 1, 2, 3, 0, 1};
    mc_task t = make_task(6, ans, "world geography");
    cis_err err = {0};
    mc_result r;
    double l0[24], l2[24], l4[24];
    mc_opts o0 = {0}, o2 = {.prompt = MC_PROMPT_LMEVAL_042}, o4 = {.prompt = MC_PROMPT_LMEVAL_044};
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &o0, NULL, l0, &r, &err), 0);
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &o2, NULL, l2, &r, &err), 0);
    CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &o4, NULL, l4, &r, &err), 0);
    int differ = 0;
    for (int i = 0; i < 24; i++) {
        CHECK_NEAR(l0[i], l2[i], 0);
        differ += fabs(l2[i] - l4[i]) > 1e-6;
    }
    CHECK(differ > 0);
    for (int style = 0; style < 2; style++) {
        char *ctx = mc_prompt_styled(&t.q[2], t.subject, style ? MC_PROMPT_LMEVAL_044 : MC_PROMPT_LMEVAL_042);
        int32_t *c = NULL;
        int cl = 0;
        CIS_ASSERT(eval_encode(tok_letters, ctx, false, &c, &cl, &err) == 0);
        const int32_t letter = FX_LETTER(1), *cx[1] = {c}, *ct[1] = {&letter};
        int cxl[1] = {cl}, ctl[1] = {1};
        double hand;
        CHECK_EQ_INT(llama_loglik(m, 1, cx, cxl, ct, ctl, 0, &hand, NULL, &err), 0);
        CHECK_NEAR(hand, (style ? l4 : l2)[2 * 4 + 1], 1e-4);
        free(ctx); free(c);
    }
    mc_task_clear(&t);
    llama_model_free(&m);
}

/* the shared header (the task's description computed once, questions run as suffixes over its cached
 * keys/values) against the whole-prompt shortcut, with both prompt styles, with and without the BOS,
 * one question per forward and batched: the same predictions and accuracy, log-likelihoods within
 * 1e-5 nats. Not the same bits: OpenBLAS's sgemm gives a row different low bits depending on its
 * place in the kernel's row tiles (docs/eval.md "Speed"), which the suffix rows do not keep; the old
 * path's own numbers move as much with the batch composition (printed here). Questions left-truncated
 * to max_position (their tokens no longer start with the header's) run whole. */
static void test_shared_prefix_same_results(void) {
    const int ans[13] = {0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0};
    mc_task t = make_task(13, ans, "college physics");
    int lens[13];
    cis_err err = {0};
    for (int i = 0; i < 13; i++) {
        char *ctx = mc_prompt(&t.q[i], t.subject);
        int32_t *c = NULL;
        CIS_ASSERT(eval_encode(tok_letters, ctx, false, &c, &lens[i], &err) == 0);
        free(ctx); free(c);
    }
    int srt[13];
    memcpy(srt, lens, sizeof srt);
    for (int i = 1; i < 13; i++)
        for (int j = i; j > 0 && srt[j - 1] > srt[j]; j--) { int x = srt[j]; srt[j] = srt[j - 1]; srt[j - 1] = x; }
    const int maxposs[2] = {512, srt[6] + 1}; /* nothing truncated; about half truncated */
    for (int mp = 0; mp < 2; mp++) {
        llama_model *m = fx_model_random(29, maxposs[mp]);
        for (int v = 0; v < 6; v++) {
            mc_opts os = {.prompt = v & 1 ? MC_PROMPT_LMEVAL_044 : MC_PROMPT_LMEVAL_042, .add_bos = (v >> 1) & 1,
                          .max_batch_tokens = v >= 4 ? 1 : 600};
            mc_opts of = os, ob = os;
            of.no_shared_prefix = true;
            ob.no_shared_prefix = true;
            ob.max_batch_tokens = v >= 4 ? 600 : 1;
            double ls[52], lf[52], lb[52];
            int ps[13], pf[13];
            mc_result rs, rf, rb;
            CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &os, ps, ls, &rs, &err), 0);
            CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &of, pf, lf, &rf, &err), 0);
            CHECK_EQ_INT(eval_mc_task(m, tok_letters, &t, &ob, NULL, lb, &rb, &err), 0);
            CHECK_EQ_INT(rs.n_shortcut, 13);
            CHECK_EQ_INT(rf.n_shared_prefix, 0);
            if (mp == 0) CHECK_EQ_INT(rs.n_shared_prefix, 13);
            else CHECK_MSG(rs.n_shared_prefix > 0 && rs.n_shared_prefix < 13, "max_position %d: %d shared of 13 (about "
                           "half the contexts should be truncated)", maxposs[mp], rs.n_shared_prefix);
            double d = 0, db = 0;
            for (int i = 0; i < 52; i++) {
                d = fmax(d, fabs(ls[i] - lf[i]));
                db = fmax(db, fabs(lb[i] - lf[i]));
            }
            CHECK_MSG(d < 1e-5, "max_position %d variant %d: max |shared - whole| = %g nats", maxposs[mp], v, d);
            if (v == 0) printf("# max_position %d: max |shared - whole| %.3g, old path batched vs one per forward %.3g\n",
                               maxposs[mp], d, db);
            for (int i = 0; i < 13; i++) CHECK_EQ_INT(ps[i], pf[i]);
            CHECK_EQ_INT(rs.correct, rf.correct);
        }
        llama_model_free(&m);
    }
    mc_task_clear(&t);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cis_eval_mc_XXXXXX");
    CIS_ASSERT(mkdtemp(tmpdir));
    char *d1 = xasprintf("%s/tok_letters", tmpdir), *d2 = xasprintf("%s/tok_bytes", tmpdir);
    tok_letters = fx_tokenizer(d1, true);
    tok_bytes = fx_tokenizer(d2, false);
    RUN(test_golden_prompt);
    RUN(test_prompt_style_names);
    RUN(test_style_reaches_scoring);
    RUN(test_uniform_always_a);
    RUN(test_constant_letter);
    RUN(test_shortcut_equals_full);
    RUN(test_fallback_without_letter_tokens);
    RUN(test_bos_switch);
    RUN(test_long_context_truncated);
    RUN(test_shared_prefix_same_results);
    tokenizer_free(tok_letters);
    tokenizer_free(tok_bytes);
    free(d1); free(d2);
    fx_rm_rf(tmpdir);
    return test_summary();
}
