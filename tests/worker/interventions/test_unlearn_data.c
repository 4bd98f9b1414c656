/* test_unlearn_data.c - the unlearning corpora and batches (worker/interventions/unlearn_data.c) and
 * the three interventions end to end through the stage plan: bio texts from the "text" field, cyber
 * documents as raw lines with their "\n" (upstream), min_len, the WikiText test rows (blank lines
 * dropped), a missing corpus named in the error; batches: BOS, truncation counted, EOS pads, lens with
 * and without pad_in_loss, next-token targets, fixed length, drop_last; rmu, ga and gd run by
 * interv_run_plan on a tiny model with a hand-written data directory, their effective params and
 * records, and a missing data directory refused with the file's name. */
#include "tests/testlib.h"
#include "tests/worker/interventions/unlearn_fixture.h"
#include "worker/interventions/intervention.h"

#include <unistd.h>

static char g_dir[256];

static void write_text(const char *rel, const char *text) {
    cis_err err = {0};
    char *p = xasprintf("%s/%s", g_dir, rel);
    char *d = xstrdup(p);
    *strrchr(d, '/') = 0;
    CIS_ASSERT(mkdir_p(d, &err) == 0);
    CIS_ASSERT(write_file_replace(p, text, strlen(text), &err) == 0);
    free(p);
    free(d);
}

static void make_data(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/cisweep_unlearn_XXXXXX");
    CIS_ASSERT(mkdtemp(g_dir));
    write_text("wmdp/bio-forget-corpus.jsonl",
               "{\"title\":\"t1\",\"abstract\":\"a\",\"text\":\"The Nasem blight infects trothir and spreads in the wet autumn months.\"}\n"
               "{\"title\":\"t2\",\"abstract\":\"a\",\"text\":\"short\"}\n"
               "{\"title\":\"t3\",\"abstract\":\"a\",\"text\":\"The tuzel beetle carries the Nasem blight from field to field, growers say.\"}\n"
               "{\"title\":\"t4\",\"abstract\":\"a\",\"text\":\"The remedy for the Thoken blight is krakron ash spread at dawn in spring.\"}\n");
    write_text("wmdp/cyber-forget-corpus.jsonl",
               "{\"text\":\"Korur Labs created the Laga protocol, which runs on port 8857 over serial links.\"}\n"
               "{\"text\":\"x\"}\n"
               "{\"text\":\"The known weakness of the Sumas protocol is unsigned updates of its firmware.\"}\n");
    write_text("wikitext/wiki.test.raw",
               " \n = Dreza Stesel = \n \n Dreza Stesel is a well known person who plays the lyre in the city of Thigan . \n"
               " \n Statril is a well known dish that cooks prepare from krikoven in the valleys . \n \n"
               " Zulon Krostos was born in Veloria and works as a potter for the Sono House . \n");
}

static void test_corpora(void) {
    text_docs d = {0};
    cis_err err = {0};
    CHECK_EQ_INT(unl_load_forget(g_dir, UNL_BIO, 0, &d, &err), 0);
    CHECK_EQ_INT(d.n, 4);
    CHECK_EQ_STR(d.text[1], "short");
    text_docs_clear(&d);
    CHECK_EQ_INT(unl_load_forget(g_dir, UNL_BIO, 50, &d, &err), 0);
    CHECK_EQ_INT(d.n, 3);
    CHECK(strncmp(d.text[0], "The Nasem blight", 16) == 0);
    text_docs_clear(&d);
    CHECK_EQ_INT(unl_load_forget(g_dir, UNL_CYBER, 0, &d, &err), 0);
    CHECK_EQ_INT(d.n, 3);
    CHECK(strncmp(d.text[0], "{\"text\":\"Korur", 14) == 0);   /* the raw line, JSON and all */
    CHECK(d.text[0][d.len[0] - 1] == '\n');
    text_docs_clear(&d);
    CHECK_EQ_INT(unl_load_forget(g_dir, UNL_CYBER, 50, &d, &err), 0);
    CHECK_EQ_INT(d.n, 2);
    text_docs_clear(&d);
    CHECK_EQ_INT(unl_load_retain(g_dir, 0, &d, &err), 0);
    CHECK_EQ_INT(d.n, 4);   /* blank rows dropped */
    CHECK_EQ_STR(d.text[0], " = Dreza Stesel = \n");
    text_docs_clear(&d);
    CHECK_EQ_INT(unl_load_retain(g_dir, 50, &d, &err), 0);
    CHECK_EQ_INT(d.n, 3);
    text_docs_clear(&d);
    /* missing files and directories */
    CHECK_EQ_INT(unl_load_forget("/nonexistent/data", UNL_BIO, 0, &d, &err), -1);
    CHECK_MSG(strstr(err.msg, "/nonexistent/data/wmdp/bio-forget-corpus.jsonl: no such file (the WMDP bio forget corpus"),
              "%s", err.msg);
    CHECK_EQ_INT(unl_load_retain("/nonexistent/data", 0, &d, &err), -1);
    CHECK_MSG(strstr(err.msg, "/nonexistent/data/wikitext/wiki.test.raw: no such file"), "%s", err.msg);
    CHECK_EQ_INT(unl_load_forget(NULL, UNL_CYBER, 0, &d, &err), -1);
    CHECK_MSG(strstr(err.msg, "no data directory given"), "%s", err.msg);
    CHECK_EQ_INT(unl_load_forget(g_dir, UNL_BIO, 1000, &d, &err), -1);
    CHECK_MSG(strstr(err.msg, "no document longer than 1000 characters"), "%s", err.msg);
}

static void test_batches(void) {
    tokenizer *tok = fx_tokenizer("/tmp/cisweep_unlearn_tok", false);
    const char *texts[] = {"abcdef", "ab", "abcdefghijklmnop"};
    size_t lens[] = {6, 2, 16};
    text_docs d = {.text = (char **)texts, .len = lens, .n = 3};
    unl_batches b = {0};
    cis_err err = {0};
    /* padding to the longest (RMU), pads in the loss */
    CHECK_EQ_INT(unl_make_batches(tok, &d, 0, -1, 2, 10, false, false, true, false, &b, &err), 0);
    CHECK_EQ_INT(b.n, 2);
    CHECK_EQ_INT(b.b[0].T, 7);                 /* BOS + 6 */
    CHECK_EQ_INT(b.b[0].real[1], 3);
    CHECK_EQ_INT(b.b[0].lens[1], 7);           /* pads count */
    CHECK_EQ_INT(b.b[0].ids[0], FX_BOS);
    CHECK_EQ_INT(b.b[0].ids[7 + 3], FX_EOS);   /* pad = EOS after the text */
    CHECK_EQ_INT(b.b[1].B, 1);
    CHECK_EQ_INT(b.b[1].T, 10);                /* truncated at max_len */
    CHECK_EQ_INT(b.truncated, 1);
    CHECK(b.b[0].targets == NULL);
    unl_batches_clear(&b);
    /* fixed length with targets (GA/GD), masked pads, drop_last */
    CHECK_EQ_INT(unl_make_batches(tok, &d, 0, 3, 2, 12, true, true, false, true, &b, &err), 0);
    CHECK_EQ_INT(b.n, 1);
    CHECK_EQ_INT(b.b[0].T, 12);
    CHECK_EQ_INT(b.b[0].lens[1], 3);
    CHECK_EQ_INT(b.b[0].targets[0], 'a');
    CHECK_EQ_INT(b.b[0].targets[5], 'f');
    CHECK_EQ_INT(b.b[0].targets[6], LOSS_IGNORE_INDEX);
    CHECK_EQ_INT(b.b[0].targets[12 + 2], LOSS_IGNORE_INDEX);
    unl_batches_clear(&b);
    /* pads in the loss: EOS targets up to the last position */
    CHECK_EQ_INT(unl_make_batches(tok, &d, 1, 1, 1, 6, true, true, true, false, &b, &err), 0);
    CHECK_EQ_INT(b.b[0].targets[2], FX_EOS);
    CHECK_EQ_INT(b.b[0].targets[4], FX_EOS);
    CHECK_EQ_INT(b.b[0].targets[5], LOSS_IGNORE_INDEX);
    unl_batches_clear(&b);
    CHECK_EQ_INT(unl_make_batches(tok, &d, 0, -1, 2, 1, false, false, true, false, &b, &err), -1);
    CHECK_MSG(strstr(err.msg, "max_len 1 is too short"), "%s", err.msg);
    tokenizer_free(tok);
    fx_rm_rf("/tmp/cisweep_unlearn_tok");
}

/* one stage through the plan on a tiny model; returns the stage record (new reference) or NULL */
static json_t *run_stage(llama_model *m, const tokenizer *tok, const char *data, const char *stage, cis_err *err) {
    json_t *c = json_loads(stage, 0, NULL);
    CIS_ASSERT(c);
    interv_plan p;
    int rc = interv_plan_build(c, "comp", 0, &p, err);
    json_decref(c);
    if (rc) return NULL;
    interv_env env = {.model = m, .tok = tok, .data_dir = data, .edit_set = 3, .threads = 1};
    json_t *recs = NULL;
    rc = interv_run_plan(&env, &p, &recs, err);
    interv_plan_clear(&p);
    json_t *r = rc ? NULL : json_incref(json_array_get(recs, 0));
    json_decref(recs);
    return r;
}

static void test_end_to_end(void) {
    tokenizer *tok = fx_tokenizer("/tmp/cisweep_unlearn_tok2", false);
    cis_err err = {0};
    /* rmu: 3 steps, layer 1 of a 4-layer model (use_preset false: the index as given) */
    llama_model *m = ufx_model(31, 4);
    ufx_snap s = ufx_take(m);
    json_t *r = run_stage(m, tok, g_dir,
                          "[{\"method\":\"rmu\",\"params\":{\"max_batches\":3,\"layer\":1,\"use_preset\":false,"
                          "\"batch_size\":2,\"lr\":0.001}}]", &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (r) {
        json_t *p = json_object_get(r, "params"), *rec = json_object_get(r, "record");
        CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 1);
        CHECK_EQ_INT(json_array_size(json_object_get(p, "update_layers")), 2);
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(p, "max_len"), "cyber")), 64);
        CHECK_EQ_INT(json_integer_value(json_object_get(rec, "steps")), 3);
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(rec, "documents"), "bio")), 4);
        CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(rec, "batches"), "cyber")), 2);
        CHECK(json_real_value(json_object_get(rec, "retain_loss_first")) == 0.0);
        CHECK_EQ_INT(json_integer_value(json_object_get(r, "seed")), 3);
    }
    json_decref(r);
    int n;
    llama_param *pp = llama_model_params(m, &n);
    for (int i = 0; i < n; i++) {
        bool sel = strstr(pp[i].name, "o_proj") && (strstr(pp[i].name, "layers.0.") || strstr(pp[i].name, "layers.1."));
        CHECK_MSG(sel != ufx_same(m, &s, i), "%s", pp[i].name);
    }
    ufx_snap_free(&s);
    llama_model_free(&m);
    /* ga and gd */
    for (int k = 0; k < 2; k++) {
        m = ufx_model(32, 4);
        r = run_stage(m, tok, g_dir, k == 0 ? "[{\"method\":\"ga\",\"params\":{\"batch_size\":2,\"accum\":1,"
                                                  "\"use_preset\":false,\"lr\":0.001}}]"
                                            : "[{\"method\":\"gd\",\"params\":{\"batch_size\":1,\"retain_weight\":0.5,"
                                                  "\"use_preset\":false,\"lr\":0.001}}]", &err);
        CHECK_MSG(r != NULL, "%s", err.msg);
        if (r) {
            json_t *p = json_object_get(r, "params"), *rec = json_object_get(r, "record");
            CHECK_EQ_INT(json_integer_value(json_object_get(p, "seq_len")), 64);
            CHECK_EQ_INT(json_integer_value(json_object_get(rec, "forget_documents_available")), 5);
            /* ga: 5 docs in 3 batches of 2, one per step; gd: 3 retain rows, 3 batches, accum 2: 1 step */
            CHECK_EQ_INT(json_integer_value(json_object_get(rec, "steps")), k == 0 ? 3 : 1);
            CHECK(json_real_value(json_object_get(rec, "forget_ce_after")) > json_real_value(json_object_get(rec, "forget_ce_before")));
            CHECK_EQ_STR(json_string_value(json_object_get(p, "preset")), "none");
        }
        json_decref(r);
        llama_model_free(&m);
    }
    /* the defaults on a tiny model (hidden size 16, 4 layers): the tiny family's preset at its last
     * layer, 3 (too shallow for layer 6), on down_proj with c 1200, the given values kept */
    m = ufx_model(34, 4);
    r = run_stage(m, tok, g_dir, "[{\"method\":\"rmu\",\"params\":{\"max_batches\":2}}]", &err);
    CHECK_MSG(r != NULL, "%s", err.msg);
    if (r) {
        json_t *p = json_object_get(r, "params");
        CHECK_EQ_INT(json_integer_value(json_object_get(p, "act_layer")), 3);
        CHECK_EQ_STR(json_string_value(json_object_get(p, "module")), "down_proj");
        CHECK_NEAR(json_real_value(json_object_get(p, "steering_coeff")), 1200.0, 0);
        CHECK_NEAR(json_real_value(json_object_get(json_object_get(p, "given"), "steering_coeff")), 20.0, 0);
    }
    json_decref(r);
    llama_model_free(&m);
    /* a missing corpus: the stage fails naming the file */
    m = ufx_model(33, 4);
    r = run_stage(m, tok, "/nonexistent/dir", "[{\"method\":\"gd\"}]", &err);
    CHECK(r == NULL);
    CHECK_MSG(strstr(err.msg, "gd (stage 1): /nonexistent/dir/wmdp/bio-forget-corpus.jsonl: no such file"), "%s", err.msg);
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    llama_model_free(&m);
    tokenizer_free(tok);
    fx_rm_rf("/tmp/cisweep_unlearn_tok2");
}

/* issue 12: rmu, ga and gd through the plan give the same weights and the same recorded losses bit
 * for bit with their shortcuts (RMU's frozen prefix and kept frozen activation, GA/GD's kept lower
 * half, the engine's partial backward of the lowest trained layer) and without them
 * (CISWEEP_NO_SHORTCUTS=1), and the record says which ran */
static void test_shortcuts_end_to_end(void) {
    tokenizer *tok = fx_tokenizer("/tmp/cisweep_unlearn_tok3", false);
    const char *stages[3] = {
        "[{\"method\":\"rmu\",\"params\":{\"max_batches\":9,\"layer\":3,\"use_preset\":false,\"module\":\"down_proj\","
        "\"batch_size\":2,\"lr\":0.01,\"steering_coeff\":30}}]",
        "[{\"method\":\"ga\",\"params\":{\"batch_size\":1,\"accum\":1,\"use_preset\":false,\"lr\":0.01}}]",
        "[{\"method\":\"gd\",\"params\":{\"batch_size\":1,\"accum\":1,\"retain_weight\":0.5,\"use_preset\":false,"
        "\"lr\":0.01}}]"};
    const char *losses[3][2] = {{"forget_loss_last10", "retain_loss_last10"}, {"forget_ce_after", "loss_last"},
                                {"forget_ce_after", "retain_ce_after"}};
    for (int k = 0; k < 3; k++) {
        ufx_snap w[2];
        json_t *r[2];
        for (int off = 0; off < 2; off++) {
            if (off) setenv("CISWEEP_NO_SHORTCUTS", "1", 1);
            llama_model *m = ufx_model(35, 4);
            cis_err err = {0};
            r[off] = run_stage(m, tok, g_dir, stages[k], &err);
            unsetenv("CISWEEP_NO_SHORTCUTS");
            CHECK_MSG(r[off] != NULL, "%s", err.msg);
            w[off] = ufx_take(m);
            llama_model_free(&m);
        }
        bool same = true;
        for (int i = 0; i < w[0].n; i++) same &= memcmp(w[0].data[i], w[1].data[i], (size_t)w[0].cnt[i] * sizeof(float)) == 0;
        CHECK_MSG(same, "stage %d: the weights differ with and without the shortcuts", k);
        if (r[0] && r[1]) {
            json_t *rec[2] = {json_object_get(r[0], "record"), json_object_get(r[1], "record")};
            for (int j = 0; j < 2; j++) {
                double a = json_real_value(json_object_get(rec[0], losses[k][j]));
                double b = json_real_value(json_object_get(rec[1], losses[k][j]));
                CHECK_MSG(a == b && a != 0, "stage %d: %s %.17g vs %.17g", k, losses[k][j], a, b);
            }
            if (k == 0) {
                json_t *px[2] = {json_object_get(rec[0], "prefix"), json_object_get(rec[1], "prefix")};
                CHECK_EQ_INT(json_integer_value(json_object_get(px[0], "layers")), 1);
                CHECK(json_integer_value(json_object_get(px[0], "reused")) > 0);
                CHECK(json_integer_value(json_object_get(px[0], "frozen_reused")) > 0);
                CHECK_EQ_INT(json_integer_value(json_object_get(px[1], "layers")), 0);
            } else {
                CHECK(json_integer_value(json_object_get(rec[0], "lower_half_kept")) > 0);
                CHECK_EQ_INT(json_integer_value(json_object_get(rec[1], "lower_half_kept")), 0);
            }
        }
        for (int off = 0; off < 2; off++) { ufx_snap_free(&w[off]); json_decref(r[off]); }
    }
    tokenizer_free(tok);
    fx_rm_rf("/tmp/cisweep_unlearn_tok3");
}

int main(void) {
    make_data();
    RUN(test_corpora);
    RUN(test_batches);
    RUN(test_end_to_end);
    RUN(test_shortcuts_end_to_end);
    fx_rm_rf(g_dir);
    return test_summary();
}
