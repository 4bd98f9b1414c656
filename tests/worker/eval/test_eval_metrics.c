/* test_eval_metrics.c - perplexity, zsRE F1 / teacher-forced accuracy and average bits on
 * hand-computable cases: uniform logits -> PPL = vocabulary size; a random model's PPL against
 * the per-window CE computed here; token-set F1 on constructed id lists; a model that always emits
 * one known token -> known F1, recall and token accuracy; agreement with a reference model; avg
 * bits of dense / pruned / quantized models; open answers (stripped question, gold option). */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "worker/eval/eval.h"

static char tmpdir[256];
static tokenizer *tok;

/* ---------------- perplexity ---------------- */
static void test_ppl_uniform(void) {
    llama_model *m = fx_model_uniform();
    const char *text = "Valkor is a river in the north . It flows into the sea near Ossa .\n\n = History = \n\n";
    ppl_result r;
    cis_err err = {0};
    CHECK_EQ_INT(eval_ppl_text(m, tok, text, strlen(text), 16, 0, 64, &r, &err), 0);
    CHECK_NEAR(r.ppl, (double)FX_V, 1e-3);
    CHECK_EQ_INT(r.seqlen, 16);
    CHECK_EQ_INT(r.n_tokens, (int64_t)strlen(text) + 1); /* byte tokens + BOS */
    CHECK_EQ_INT(r.n_windows, (int)((strlen(text) + 1) / 16));
    /* max_windows */
    CHECK_EQ_INT(eval_ppl_text(m, tok, text, strlen(text), 16, 2, 0, &r, &err), 0);
    CHECK_EQ_INT(r.n_windows, 2);
    /* window = min(max_position_embeddings, seqlen): seqlen 0 -> 512 > text -> one short window */
    CHECK_EQ_INT(eval_ppl_text(m, tok, text, strlen(text), 0, 0, 0, &r, &err), 0);
    CHECK_EQ_INT(r.n_windows, 1);
    CHECK_NEAR(r.ppl, (double)FX_V, 1e-3);
    llama_model_free(&m);
}

static void test_ppl_random_by_hand(void) {
    llama_model *m = fx_model_random(21, 512);
    int32_t ids[70];
    for (int i = 0; i < 70; i++) ids[i] = (i * 37 + 11) % 256;
    ppl_result r, r1;
    cis_err err = {0};
    /* T = 16: 4 windows (64 tokens), the last 6 dropped; batched 3 windows per forward vs 1 */
    CHECK_EQ_INT(eval_ppl_tokens(m, ids, 70, 16, 0, 48, &r, &err), 0);
    CHECK_EQ_INT(eval_ppl_tokens(m, ids, 70, 16, 0, 0, &r1, &err), 0);
    CHECK_EQ_INT(r.n_windows, 4);
    CHECK_NEAR(r.mean_nll, r1.mean_nll, 1e-5);
    /* by hand: each window's mean CE over its 15 predictions, from all-position logits */
    double sum = 0;
    float *lg = xmalloc((size_t)16 * FX_V * sizeof *lg);
    for (int w = 0; w < 4; w++) {
        llama_batch bt = {.B = 1, .T = 16, .ids = ids + w * 16, .n_out = -1, .logits = lg};
        CHECK_EQ_INT(llama_forward(m, &bt, NULL, 0, false, NULL, &err), 0);
        double ce = 0;
        for (int t = 0; t < 15; t++) {
            const float *z = lg + (size_t)t * FX_V;
            double mx = z[0], s = 0;
            for (int v = 1; v < FX_V; v++) mx = z[v] > mx ? z[v] : mx;
            for (int v = 0; v < FX_V; v++) s += exp(z[v] - mx);
            ce += mx + log(s) - z[ids[w * 16 + t + 1]];
        }
        sum += ce / 15;
    }
    free(lg);
    CHECK_NEAR(r.mean_nll, sum / 4, 1e-4);
    CHECK_NEAR(r.ppl, exp(sum / 4), 1e-3 * exp(sum / 4));
    CHECK_MSG(fabs(r.mean_nll - log((double)FX_V)) > 0.05, "random model too close to uniform");
    CHECK_EQ_INT(eval_ppl_tokens(m, ids, 1, 16, 0, 0, &r, &err), -1);
    llama_model_free(&m);
}

/* ---------------- token-set F1 ---------------- */
static void test_token_set_f1(void) {
    double rec;
    int32_t g[3] = {5, 6, 7}, a[2] = {5, 9}, b[4] = {5, 5, 6, 6}, e[1] = {1};
    CHECK_NEAR(token_set_f1(g, 3, g, 3, &rec), 1.0, 1e-12);
    CHECK_NEAR(rec, 1.0, 1e-12);
    /* gen {5,9} vs gold {5,6,7}: P = 1/2, R = 1/3, F1 = 2 PR/(P+R) = 0.4 */
    CHECK_NEAR(token_set_f1(a, 2, g, 3, &rec), 0.4, 1e-12);
    CHECK_NEAR(rec, 1.0 / 3, 1e-12);
    /* duplicates count once: gen {5,6} vs gold {5,6,7}: P = 1, R = 2/3, F1 = 0.8 */
    CHECK_NEAR(token_set_f1(b, 4, g, 3, &rec), 0.8, 1e-12);
    CHECK_NEAR(token_set_f1(e, 1, g, 3, &rec), 0.0, 0);
    CHECK_NEAR(rec, 0.0, 0);
    CHECK_NEAR(token_set_f1(NULL, 0, g, 3, &rec), 0.0, 0);
    CHECK_NEAR(token_set_f1(g, 3, NULL, 0, &rec), 0.0, 0);
}

static void test_py_strip(void) {
    /* Python: s.strip() for these, byte offsets of the kept part */
    struct { const char *s; const char *want; } c[] = {
        {"  a b  ", "a b"},
        {"\t\n\v\f\r x \x1c\x1f", "x"},
        {"\xc2\xa0nbsp\xe3\x80\x80", "nbsp"},          /* U+00A0, U+3000 */
        {"\xe2\x80\x83" "em\xe2\x80\xa8", "em"},          /* U+2003, U+2028 */
        {"\xc2\xa9 keep \xc3\xa9", "\xc2\xa9 keep \xc3\xa9"}, /* (c), e-acute are not space */
        {"\xe2\x80\x8bzw\xe2\x80\x8b", "\xe2\x80\x8bzw\xe2\x80\x8b"}, /* U+200B is not isspace() */
        {"   ", ""},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        size_t b, e;
        eval_py_strip(c[i].s, strlen(c[i].s), &b, &e);
        char *got = xasprintf("%.*s", (int)(e - b), c[i].s + b);
        CHECK_EQ_STR(got, c[i].want);
        free(got);
    }
}

static void test_loc_prompt(void) {
    char *p = zsre_loc_prompt("nq question: who wrote the tale of ossa ");
    CHECK_EQ_STR(p, "who wrote the tale of ossa");
    free(p);
    p = zsre_loc_prompt("  plain question");
    CHECK_EQ_STR(p, "plain question");
    free(p);
    /* loc.split("nq question:")[1].strip(): the marker anywhere, text up to a second marker */
    p = zsre_loc_prompt("x nq question:  first\xc2\xa0 nq question: second");
    CHECK_EQ_STR(p, "first");
    free(p);
}

/* ---------------- generation F1 ---------------- */
static void test_gen_f1_constant(void) {
    /* the model emits " A" (one token, id 256) forever */
    llama_model *m = fx_model_constant(FX_LETTER(0));
    const char *prompts[5] = {"Q1?", "Q2?", "Q3?", "Q4?", "Q5?"};
    /* " A" -> [A]: F1 1; "A B" -> " A B" = [A, B]: gen [A, A] -> P 1, R 1/2, F1 2/3;
     * "xyz" -> " xyz" = [' ', x, y, z]: ' ' is excluded -> {x,y,z}: F1 0;
     * " A xyz" -> [A, ' ', x, y, z] minus ' ' -> {A, x, y, z}: gen 4 x A -> P 1, R 1/4, F1 0.4 */
    const char *answers[5] = {" A", "A B", "xyz", " A xyz", "A"};
    double f1[5], rec[5];
    int32_t **gen = NULL;
    int *gl = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(gen_f1_batch(m, tok, 5, prompts, answers, 50, f1, rec, &gen, &gl, &err), 0);
    CHECK_NEAR(f1[0], 1.0, 1e-12);
    CHECK_NEAR(f1[1], 2.0 / 3, 1e-12);
    CHECK_NEAR(rec[1], 0.5, 1e-12);
    CHECK_NEAR(f1[2], 0.0, 0);
    CHECK_NEAR(f1[3], 0.4, 1e-12);
    CHECK_NEAR(rec[3], 0.25, 1e-12);
    CHECK_NEAR(f1[4], 1.0, 1e-12);
    /* the generation is truncated to |gold| */
    CHECK_EQ_INT(gl[0], 1);
    CHECK_EQ_INT(gl[1], 2);
    CHECK_EQ_INT(gl[3], 4);
    if (gl[1] == 2) { CHECK_EQ_INT(gen[1][0], FX_LETTER(0)); CHECK_EQ_INT(gen[1][1], FX_LETTER(0)); }
    for (int i = 0; i < 5; i++) free(gen[i]);
    free(gen); free(gl);
    /* max_length counts the prompt: a prompt of max_length tokens generates nothing -> F1 0 */
    const char *longp[1] = {"0123456789"}, *la[1] = {" A"};
    CHECK_EQ_INT(gen_f1_batch(m, tok, 1, longp, la, 11, f1, rec, NULL, NULL, &err), 0); /* BOS + 10 = 11 */
    CHECK_NEAR(f1[0], 0.0, 0);
    CHECK_EQ_INT(gen_f1_batch(m, tok, 1, longp, la, 12, f1, rec, NULL, NULL, &err), 0);
    CHECK_NEAR(f1[0], 1.0, 1e-12);
    llama_model_free(&m);
    /* a model that emits EOS at once generates nothing after the prompt: F1 0 */
    m = fx_model_constant(FX_EOS);
    CHECK_EQ_INT(gen_f1_batch(m, tok, 2, prompts, answers, 50, f1, rec, NULL, NULL, &err), 0);
    CHECK_NEAR(f1[0], 0.0, 0);
    CHECK_NEAR(f1[1], 0.0, 0);
    llama_model_free(&m);
}

/* ---------------- open answers ---------------- */
static void test_open_answers(void) {
    /* the model emits " A" forever: the gold option decides the F1 */
    llama_model *m = fx_model_constant(FX_LETTER(0));
    mc_question q[3] = {
        {.question = "Q1?", .choices = {"B", "A", "C", "D"}, .answer = 1},        /* gold "A": F1 1 */
        {.question = "Q2?", .choices = {"B", "A", "C", "D"}, .answer = 0},        /* gold "B": F1 0 */
        {.question = " \n 0123456789 \n", .choices = {"A", "B", "C", "D"}, .answer = 0},
    };
    mc_task t = {.name = "wmdp-bio", .subject = "biology", .q = q, .n = 3};
    double f1 = -1, em = -1;
    cis_err err = {0};
    /* max_length 12 = BOS + the stripped 10-token question + 1 generated token: only a stripped
     * prompt leaves room for the answer (unstripped it would be BOS + 14) */
    CHECK_EQ_INT(eval_open_task(m, tok, &t, 12, &f1, &em, &err), 0);
    CHECK_NEAR(f1, 2.0 / 3, 1e-12);
    CHECK_NEAR(em, 2.0 / 3, 1e-12);
    /* one token less and the third prompt generates nothing */
    CHECK_EQ_INT(eval_open_task(m, tok, &t, 11, &f1, NULL, &err), 0);
    CHECK_NEAR(f1, 1.0 / 3, 1e-12);
    /* the same pairs through gen_f1_batch give the same mean */
    const char *pr[3] = {"Q1?", "Q2?", "0123456789"}, *an[3] = {"A", "B", "A"};
    double g[3], r[3];
    CHECK_EQ_INT(gen_f1_batch(m, tok, 3, pr, an, 12, g, r, NULL, NULL, &err), 0);
    CHECK_NEAR((g[0] + g[1] + g[2]) / 3, 2.0 / 3, 1e-12);
    /* a gold index outside 0..3 is an error naming the task and the question */
    q[1].answer = 4;
    CHECK_EQ_INT(eval_open_task(m, tok, &t, 12, &f1, &em, &err), -1);
    CHECK(strstr(err.msg, "wmdp-bio") && strstr(err.msg, "question 1"));
    /* an empty task scores nothing */
    t.n = 0;
    CHECK_EQ_INT(eval_open_task(m, tok, &t, 12, &f1, &em, &err), 0);
    CHECK_NEAR(f1, 0.0, 0);
    llama_model_free(&m);
}

/* ---------------- teacher forcing ---------------- */
static void test_teacher_forced(void) {
    llama_model *m = fx_model_constant(FX_LETTER(0)), *u = fx_model_uniform();
    /* "Q A B": x = [BOS, Q, ' A', ' B'], l_P = |[BOS, Q]| = 2; targets ' A', ' B'; preds ' A', ' A' -> 0.5 */
    const char *p[3] = {"Q", "Q", "Q"}, *a[3] = {"A B", "A", "xy"};
    double acc[3];
    int32_t **pred = NULL;
    int *pl = NULL, mism = -1;
    cis_err err = {0};
    CHECK_EQ_INT(tf_argmax_batch(m, tok, 3, p, a, 0, acc, &pred, &pl, &mism, &err), 0);
    CHECK_NEAR(acc[0], 0.5, 1e-12);
    CHECK_NEAR(acc[1], 1.0, 1e-12);
    CHECK_NEAR(acc[2], 0.0, 0); /* " xy" = [' ', x, y]: 3 positions, none ' A' */
    CHECK_EQ_INT(pl[2], 3);
    CHECK_EQ_INT(mism, 0);
    for (int i = 0; i < 3; i++) free(pred[i]);
    free(pred); free(pl);
    /* batching by a tiny budget gives the same */
    double acc2[3];
    CHECK_EQ_INT(tf_argmax_batch(m, tok, 3, p, a, 1, acc2, NULL, NULL, NULL, &err), 0);
    for (int i = 0; i < 3; i++) CHECK_NEAR(acc2[i], acc[i], 0);
    /* the uniform model's argmax is id 0 (ties -> lowest id) */
    CHECK_EQ_INT(tf_argmax_batch(u, tok, 1, p, a, 0, acc, &pred, &pl, NULL, &err), 0);
    CHECK_EQ_INT(pred[0][0], 0);
    free(pred[0]); free(pred); free(pl);
    llama_model_free(&m);
    llama_model_free(&u);
}

static zsre_data make_zsre(void) {
    zsre_data d = {0};
    d.n = 4;
    d.rec = xcalloc(4, sizeof *d.rec);
    for (int i = 0; i < 4; i++) {
        zsre_record *r = &d.rec[i];
        r->src = xasprintf("What is the capital of Z%d?", i);
        r->rephrase = xasprintf("Z%d has which capital?", i);
        r->alt = xstrdup(i % 2 ? "A B" : "A");       /* F1 2/3 or 1 against " A A ..." */
        r->answers = xcalloc(1, sizeof *r->answers);
        r->answers[0] = xstrdup("xyz");               /* F1 0 */
        r->n_answers = 1;
        r->subject = xasprintf("Z%d", i);
        r->loc = xasprintf("nq question: who is %d", i);
        r->loc_ans = xstrdup(i < 2 ? "A xyz" : "A");  /* F1 0.4 or 1 */
    }
    return d;
}

static void test_zsre_records(void) {
    llama_model *m = fx_model_constant(FX_LETTER(0)), *u = fx_model_uniform();
    zsre_data d = make_zsre();
    int32_t idx[4] = {0, 1, 2, 3};
    eval_rows rows = {0};
    zsre_opts o = {.max_length = 50, .teacher_forced = true, .ref = m, .prefix = ""};
    cis_err err = {0};
    CHECK_EQ_INT(eval_zsre_records(m, tok, &d, idx, 4, &o, &rows, &err), 0);
    const eval_row *r;
    double es = (1 + 2.0 / 3 + 1 + 2.0 / 3) / 4;
    CHECK((r = eval_rows_get(&rows, "edit_success")) && fabs(r->value - es) < 1e-12);
    CHECK((r = eval_rows_get(&rows, "generalization")) && fabs(r->value - es) < 1e-12);
    CHECK((r = eval_rows_get(&rows, "edit_success_recall")) && fabs(r->value - 0.75) < 1e-12);
    CHECK((r = eval_rows_get(&rows, "locality")) && fabs(r->value - (0.4 + 0.4 + 1 + 1) / 4) < 1e-12);
    CHECK((r = eval_rows_get(&rows, "locality_recall")) && fabs(r->value - (0.25 + 0.25 + 1 + 1) / 4) < 1e-12);
    CHECK((r = eval_rows_get(&rows, "src_true_f1")) && r->value == 0);
    /* teacher forced: rewrite "... A" -> 1, "... A B" -> 1/2 */
    CHECK((r = eval_rows_get(&rows, "tf_rewrite_acc")) && fabs(r->value - 0.75) < 1e-12);
    CHECK((r = eval_rows_get(&rows, "tf_rephrase_acc")) && fabs(r->value - 0.75) < 1e-12);
    CHECK((r = eval_rows_get(&rows, "tf_locality")) && fabs(r->value - 1.0) < 1e-12); /* ref = itself */
    /* against the uniform model (argmax id 0 everywhere) nothing agrees */
    o.ref = u;
    o.prefix = "post_";
    CHECK_EQ_INT(eval_zsre_records(m, tok, &d, idx, 4, &o, &rows, &err), 0);
    CHECK((r = eval_rows_get(&rows, "post_tf_locality")) && r->value == 0);
    CHECK((r = eval_rows_get(&rows, "post_edit_success")) && fabs(r->value - es) < 1e-12);
    /* no reference model: no tf_locality row */
    eval_rows rows2 = {0};
    o.ref = NULL; o.prefix = NULL;
    CHECK_EQ_INT(eval_zsre_records(m, tok, &d, idx + 1, 2, &o, &rows2, &err), 0);
    CHECK(eval_rows_get(&rows2, "tf_locality") == NULL);
    CHECK((r = eval_rows_get(&rows2, "edit_success")) && fabs(r->value - (2.0 / 3 + 1) / 2) < 1e-12);
    char *j = eval_rows_json(&rows2);
    CHECK(j && strstr(j, "\"edit_success\":") && j[0] == '{');
    free(j);
    eval_rows_clear(&rows); eval_rows_clear(&rows2);
    zsre_clear(&d);
    llama_model_free(&m);
    llama_model_free(&u);
}

/* ---------------- composable's PPL of responses ---------------- */
static void test_ppl_responses(void) {
    /* constant model predicting byte 'A' (id 65) with logit a = 1/sqrt(1/16 + eps), 0 elsewhere */
    llama_model *m = fx_model_constant('A');
    double a = 1.0 / sqrt(1.0 / 16 + 1e-6);
    double ce_a = log(exp(a) + FX_V - 1) - a, ce_o = log(exp(a) + FX_V - 1);
    /* "Q" + "A": ids [BOS, Q, BOS, A]; targets Q, BOS, A; prompt length 2, response length 2 */
    const char *p[1] = {"Q"}, *r[1] = {"A"};
    double ppl;
    cis_err err = {0};
    CHECK_EQ_INT(ppl_responses(m, tok, 1, p, r, true, &ppl, &err), 0);
    CHECK_NEAR(ppl, exp((ce_o + ce_a) / 2), 1e-4);            /* masked: mean over BOS, A */
    CHECK_EQ_INT(ppl_responses(m, tok, 1, p, r, false, &ppl, &err), 0);
    CHECK_NEAR(ppl, exp((2 * ce_o + ce_a) / 3), 1e-4);        /* unmasked: mean over Q, BOS, A, weight 2 */
    /* two pairs: sum of (mean * response length) over pairs / total response tokens */
    const char *p2[2] = {"Q", "QQ"}, *r2[2] = {"A", "AAA"};
    CHECK_EQ_INT(ppl_responses(m, tok, 2, p2, r2, true, &ppl, &err), 0);
    CHECK_NEAR(ppl, exp((ce_o + ce_a + ce_o + 3 * ce_a) / 6), 1e-4);
    llama_model_free(&m);
}

/* batched ppl_responses2 == one llama_forward per pair with the loss computed by the engine (the
 * reference code's loop), masked and unmasked, on a random model; batch budgets that force one pair
 * per batch and that take every pair in one */
static void test_ppl_responses_batched(void) {
    llama_model *m = fx_model_random(7, 64);
    const char *p[5] = {"Where is Ossa?", "Q", "capital of Valkor", "who wrote the book", "x"};
    const char *r[5] = {"in the north", "A B C", "Ossa", "Mira Tal of the river", "y"};
    double want[2] = {0, 0};
    int64_t count = 0;
    cis_err err = {0};
    for (int mask = 0; mask < 2; mask++) {
        double tot = 0;
        count = 0;
        for (int i = 0; i < 5; i++) {
            int32_t *a = NULL, *b = NULL;
            int na = 0, nb = 0;
            CIS_ASSERT(eval_encode(tok, p[i], true, &a, &na, &err) == 0 && eval_encode(tok, r[i], true, &b, &nb, &err) == 0);
            int L = na + nb;
            int32_t ids[64], tg[64];
            memcpy(ids, a, (size_t)na * sizeof *a);
            memcpy(ids + na, b, (size_t)nb * sizeof *b);
            for (int t = 0; t < L; t++) tg[t] = t + 1 < L && (!mask || t + 1 >= na) ? ids[t + 1] : LOSS_IGNORE_INDEX;
            llama_batch bt = {.B = 1, .T = L, .ids = ids, .targets = tg};
            double loss = 0;
            CHECK_EQ_INT(llama_forward(m, &bt, NULL, 0, false, &loss, &err), 0);
            tot += loss * nb;
            count += nb;
            free(a); free(b);
        }
        want[mask] = exp(tot / (double)count);
    }
    static const int budgets[3] = {1, 40, 0};
    for (int k = 0; k < 3; k++) {
        double pm = 0, pu = 0;
        CHECK_EQ_INT(ppl_responses2(m, tok, 5, p, r, budgets[k], &pm, &pu, &err), 0);
        CHECK_NEAR(pm, want[1], 1e-5 * want[1]);
        CHECK_NEAR(pu, want[0], 1e-5 * want[0]);
    }
    double one = 0;
    CHECK_EQ_INT(ppl_responses(m, tok, 5, p, r, true, &one, &err), 0);
    CHECK_NEAR(one, want[1], 1e-5 * want[1]);
    /* a pair past max_position_embeddings fails naming the pair */
    char *longp = xmalloc(200);
    memset(longp, 'q', 199);
    longp[199] = 0;
    const char *p2[2] = {"Q", longp}, *r2[2] = {"A", "B"};
    CHECK_EQ_INT(ppl_responses2(m, tok, 2, p2, r2, 0, &one, NULL, &err), -1);
    CHECK_MSG(strstr(err.msg, "pair 1") != NULL, "%s", err.msg);
    free(longp);
    llama_model_free(&m);
}

/* eval_ppl_text_spread: windows floor(k*W/n) of the W there are, each scored as in eval_ppl_tokens */
static void test_ppl_spread(void) {
    llama_model *m = fx_model_random(5, 64);
    char text[400];
    for (int i = 0; i < 399; i++) text[i] = (char)('a' + (i * 7 + i / 13) % 26);
    text[399] = 0;
    int32_t *ids = NULL;
    size_t n = 0;
    cis_err err = {0};
    CIS_ASSERT(tokenizer_encode(tok, text, 399, true, &ids, &n, &err) == 0);
    const int T = 16, W = (int)n / T;  /* 400 tokens: 25 windows */
    ppl_result got, want, all;
    CHECK_EQ_INT(eval_ppl_text_spread(m, tok, text, 399, T, 3, 0, 0, &got, &err), 0);
    int32_t sel[3 * 16];
    for (int k = 0; k < 3; k++) memcpy(sel + k * T, ids + (size_t)(k * W / 3) * T, T * sizeof *sel);
    CHECK_EQ_INT(eval_ppl_tokens(m, sel, 3 * T, T, 0, 0, &want, &err), 0);
    CHECK_EQ_INT(got.n_windows, 3);
    CHECK_NEAR(got.ppl, want.ppl, 1e-12 * want.ppl);
    /* not the first three windows: the spread differs from the plain cap */
    CHECK_EQ_INT(eval_ppl_text(m, tok, text, 399, T, 3, 0, &all, &err), 0);
    CHECK(fabs(all.ppl - got.ppl) > 1e-9);
    /* a sample of at least W windows is all of them; limit caps the sample */
    CHECK_EQ_INT(eval_ppl_text_spread(m, tok, text, 399, T, 1000, 0, 0, &got, &err), 0);
    CHECK_EQ_INT(got.n_windows, W);
    CHECK_EQ_INT(eval_ppl_text_spread(m, tok, text, 399, T, 5, 2, 0, &got, &err), 0);
    CHECK_EQ_INT(got.n_windows, 2);
    free(ids);
    llama_model_free(&m);
}

/* ---------------- average bits ---------------- */
static void test_avg_bits(void) {
    llama_model *m = fx_model_random(1, 64);
    double sp;
    CHECK_NEAR(eval_avg_bits(m, NULL, &sp), 16.0, 1e-12);
    CHECK_NEAR(sp, 0.0, 1e-12);
    quant_info q = {.wbits = 4, .group_size = 128};
    CHECK_NEAR(eval_avg_bits(m, &q, NULL), 4.25, 1e-12);
    q.group_size = 8;
    CHECK_NEAR(eval_avg_bits(m, &q, NULL), 8.0, 1e-12);
    /* prune 25% of every decoder linear (and touch the embedding, which must not count) */
    int n = 0;
    llama_param *p = llama_model_params(m, &n);
    for (int i = 0; i < n; i++) {
        if (p[i].ndim != 2) continue;
        int64_t cnt = p[i].shape[0] * p[i].shape[1];
        bool lin = strstr(p[i].name, "model.layers.") != NULL;
        for (int64_t k = 0; k < cnt; k++) if (!lin || k % 4 == 0) p[i].data[k] = 0;
    }
    CHECK_NEAR(eval_avg_bits(m, NULL, &sp), 12.25, 1e-12); /* 16 - 15 * 0.25 */
    CHECK_NEAR(sp, 0.25, 1e-12);
    llama_model_free(&m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cis_eval_metrics_XXXXXX");
    CIS_ASSERT(mkdtemp(tmpdir));
    char *d = xasprintf("%s/tok", tmpdir);
    tok = fx_tokenizer(d, true);
    RUN(test_ppl_uniform);
    RUN(test_ppl_random_by_hand);
    RUN(test_token_set_f1);
    RUN(test_py_strip);
    RUN(test_loc_prompt);
    RUN(test_gen_f1_constant);
    RUN(test_open_answers);
    RUN(test_teacher_forced);
    RUN(test_zsre_records);
    RUN(test_ppl_responses);
    RUN(test_ppl_responses_batched);
    RUN(test_ppl_spread);
    RUN(test_avg_bits);
    tokenizer_free(tok);
    free(d);
    fx_rm_rf(tmpdir);
    return test_summary();
}
