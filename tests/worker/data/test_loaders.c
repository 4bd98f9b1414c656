/* test_loaders.c - the dataset loaders on fixture files written here in exactly the real formats
 * (zsRE JSON, WMDP JSON/JSONL, Hendrycks MMLU CSV with RFC-4180 quoting, WikiText raw, C4 json.gz
 * made by Python's gzip, pile-val .jsonl.zst made by libzstd / the zstd tool / Python zstandard),
 * the zsRE split (Python's random.seed(100) + shuffle; the shuffle itself is tests/common/test_rng.c),
 * and bad files -> errors naming file, record, field. */
#include "tests/testlib.h"
#include "common/rng.h"
#include "worker/data/loaders.h"

#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

static char tmpdir[256];

static char *fx(const char *name) { return xasprintf("%s/%s", tmpdir, name); }

static char *write_fx(const char *name, const char *text) {
    char *p = fx(name);
    cis_err err;
    char *slash = strrchr(p, '/');
    *slash = 0; mkdir_p(p, &err); *slash = '/';
    CIS_ASSERT(write_file_replace(p, text, strlen(text), &err) == 0);
    return p;
}

static bool err_has(const cis_err *e, const char *a, const char *b, const char *c) {
    bool ok = (!a || strstr(e->msg, a)) && (!b || strstr(e->msg, b)) && (!c || strstr(e->msg, c));
    if (!ok) fprintf(stderr, "  error message lacks [%s|%s|%s]: %s\n", a ? a : "", b ? b : "", c ? c : "", e->msg);
    return ok;
}

/* ---------------- zsRE ---------------- */
static char *zsre_json(int n, const char *extra_bad) {
    size_t cap = (size_t)n * 300 + 256, w = 0;
    char *s = xmalloc(cap);
    w += (size_t)snprintf(s + w, cap - w, "[");
    for (int i = 0; i < n; i++)
        w += (size_t)snprintf(s + w, cap - w,
                              "%s{\"subject\": \"Zorvan %d\", \"src\": \"What is the capital of Zorvan %d?\", "
                              "\"pred\": \"x\", \"rephrase\": \"Zorvan %d has which capital?\", \"alt\": \"Quillby %d\", "
                              "\"answers\": [\"Tarn %d\"], \"loc\": \"nq question: who wrote the tale %d\", "
                              "\"loc_ans\": \"Ossa %d\", \"cond\": \"c\"}",
                              i ? ",\n" : "", i, i, i, i, i, i, i);
    w += (size_t)snprintf(s + w, cap - w, "%s]", extra_bad ? extra_bad : "");
    return s;
}

static void test_zsre_load_and_split(void) {
    char *j = zsre_json(1000, NULL);
    char *p = write_fx("zsre/zsre_mend_train.json", j);
    free(j);
    zsre_data d;
    cis_err err = {0};
    CHECK_EQ_INT(zsre_load(p, &d, &err), 0);
    CHECK_EQ_INT(d.n, 1000);
    if (d.n == 1000) {
        CHECK_EQ_STR(d.rec[7].src, "What is the capital of Zorvan 7?");
        CHECK_EQ_STR(d.rec[7].alt, "Quillby 7");
        CHECK_EQ_STR(d.rec[7].answers[0], "Tarn 7");
        CHECK_EQ_INT(d.rec[7].n_answers, 1);
        CHECK_EQ_STR(d.rec[7].rephrase, "Zorvan 7 has which capital?");
        CHECK_EQ_STR(d.rec[7].loc, "nq question: who wrote the tale 7");
        CHECK_EQ_STR(d.rec[7].loc_ans, "Ossa 7");
        CHECK_EQ_STR(d.rec[999].subject, "Zorvan 999");
    }
    /* no edit_sets.json: computed shuffle; set 1 = shuffled[0:50], set 3 = [100:150], QA = [500:1000] */
    int32_t *perm = xmalloc(1000 * sizeof *perm), *idx = NULL;
    rng_py_permutation(100, perm, 1000);
    int n = 0;
    char *sets = fx("zsre/edit_sets.json");
    CHECK_EQ_INT(zsre_split(sets, d.n, 1, 50, &idx, &n, &err), 0);
    CHECK_EQ_INT(n, 50);
    if (idx) { CHECK_EQ_INT(idx[0], 342); CHECK(!memcmp(idx, perm, 50 * sizeof *idx)); }
    free(idx);
    CHECK_EQ_INT(zsre_split(sets, d.n, 3, 50, &idx, &n, &err), 0);
    if (idx) CHECK(n == 50 && !memcmp(idx, perm + 100, 50 * sizeof *idx));
    free(idx);
    CHECK_EQ_INT(zsre_split(sets, d.n, 0, 50, &idx, &n, &err), 0);
    if (idx) CHECK(n == 500 && !memcmp(idx, perm + 500, 500 * sizeof *idx));
    free(idx);
    CHECK_EQ_INT(zsre_split(sets, d.n, 21, 50, &idx, &n, &err), -1);
    CHECK(err_has(&err, "edit set 21", "1000", NULL));
    /* edit_sets.json present: it is used as written */
    free(write_fx("zsre/edit_sets.json", "{\"shuffle\":\"python-random-seed-100\",\"sets\":{\"1\":[5,6,7],\"2\":[8]},\"qa\":[9,10]}"));
    CHECK_EQ_INT(zsre_split(sets, d.n, 1, 50, &idx, &n, &err), 0);
    if (idx) CHECK(n == 3 && idx[0] == 5 && idx[2] == 7);
    free(idx);
    CHECK_EQ_INT(zsre_split(sets, d.n, 0, 50, &idx, &n, &err), 0);
    if (idx) CHECK(n == 2 && idx[1] == 10);
    free(idx);
    free(write_fx("zsre/edit_sets.json", "{\"sets\":{\"1\":[5,1000]},\"qa\":[]}"));
    CHECK_EQ_INT(zsre_split(sets, d.n, 1, 50, &idx, &n, &err), -1);
    CHECK(err_has(&err, "edit_sets.json", "sets.1[1]", "0..999"));
    CHECK_EQ_INT(zsre_split(sets, d.n, 2, 50, &idx, &n, &err), -1);
    CHECK(err_has(&err, "edit_sets.json", "\"2\"", NULL));
    unlink(sets);
    free(sets); free(perm); free(p);
    zsre_clear(&d);
}

static void test_zsre_bad(void) {
    cis_err err = {0};
    zsre_data d;
    struct { const char *text, *a, *b, *c; } cases[] = {
        {"[{\"src\":\"q\",\"answers\":[\"a\"],\"subject\":\"s\",\"rephrase\":\"r\",\"loc\":\"l\",\"loc_ans\":\"la\"}]", "record 0", "\"alt\"", "missing"},
        {"[{\"src\":\"q\",\"alt\":\"x\",\"answers\":\"a\",\"subject\":\"s\",\"rephrase\":\"r\",\"loc\":\"l\",\"loc_ans\":\"la\"}]", "record 0", "\"answers\"", "array"},
        {"[{\"src\":\"q\",\"alt\":\"x\",\"answers\":[],\"subject\":\"s\",\"rephrase\":\"r\",\"loc\":\"l\",\"loc_ans\":\"la\"}]", "record 0", "\"answers\"", "non-empty"},
        {"[{\"src\":\"q\",\"alt\":\"x\",\"answers\":[\"a\"],\"subject\":\"s\",\"rephrase\":\"r\",\"loc\":\"l\",\"loc_ans\":\"la\"},"
         "{\"src\":3,\"alt\":\"x\",\"answers\":[\"a\"],\"subject\":\"s\",\"rephrase\":\"r\",\"loc\":\"l\",\"loc_ans\":\"la\"}]", "record 1", "\"src\"", "string"},
        {"[]", "no records", NULL, NULL},
        {"", "invalid JSON", NULL, NULL},
        {"{\"src\":\"q\"}", "JSON array", NULL, NULL},
        {"[{\"src\":\"q\"", "invalid JSON", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *p = write_fx("bad_zsre.json", cases[i].text);
        CHECK_EQ_INT(zsre_load(p, &d, &err), -1);
        CHECK(err_has(&err, "bad_zsre.json", cases[i].a, cases[i].b));
        if (cases[i].c) CHECK(err_has(&err, cases[i].c, NULL, NULL));
        free(p);
    }
    CHECK_EQ_INT(zsre_load("/nonexistent/zsre.json", &d, &err), -1);
}

/* ---------------- WMDP ---------------- */
static void test_wmdp(void) {
    cis_err err = {0};
    mc_task t;
    char *p = write_fx("wmdp/wmdp-bio.json",
                       "[{\"answer\": 2, \"question\": \"Which agent?\", \"choices\": [\"a\", \"b\", \"c, d\", \"\\\"e\\\"\"]},\n"
                       " {\"question\": \"Q2\", \"choices\": [\"w\", \"x\", \"y\", \"z\"], \"answer\": 0}]");
    CHECK_EQ_INT(wmdp_load(p, "wmdp-bio", "biology", &t, &err), 0);
    CHECK_EQ_INT(t.n, 2);
    if (t.n == 2) {
        CHECK_EQ_STR(t.q[0].question, "Which agent?");
        CHECK_EQ_STR(t.q[0].choices[2], "c, d");
        CHECK_EQ_STR(t.q[0].choices[3], "\"e\"");
        CHECK_EQ_INT(t.q[0].answer, 2);
        CHECK_EQ_INT(t.q[1].answer, 0);
        CHECK_EQ_STR(t.subject, "biology");
    }
    mc_task_clear(&t);
    free(p);
    p = write_fx("wmdp/wmdp-cyber.jsonl",
                 "{\"question\": \"C1\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"answer\": 3}\n\n"
                 "{\"question\": \"C2\", \"choices\": [\"a\", \"b\", \"c\", \"d\"], \"answer\": 1}\n");
    CHECK_EQ_INT(wmdp_load(p, "wmdp-cyber", "cybersecurity", &t, &err), 0);
    CHECK(t.n == 2 && t.q[0].answer == 3 && !strcmp(t.q[1].question, "C2"));
    mc_task_clear(&t);
    free(p);
    struct { const char *text, *a, *b, *c; } cases[] = {
        {"[{\"question\":\"q\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":4}]", "record 0", "\"answer\"", "0..3"},
        {"[{\"question\":\"q\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":\"A\"}]", "record 0", "\"answer\"", "integer"},
        {"[{\"question\":\"q\",\"choices\":[\"a\",\"b\",\"c\"],\"answer\":1}]", "record 0", "\"choices\"", "4 strings"},
        {"[{\"question\":\"q\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":1},{\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":1}]", "record 1", "\"question\"", "missing"},
        {"{\"question\":\"q\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":1}\n{\"question\":\"q\",\"choices\":[\"a\",\"b\",\"c\",1],\"answer\":1}\n", "line 2", "\"choices\"[3]", NULL},
        {"{\"question\":\"q\",\"choices\":[\"a\",\"b\",\"c\",\"d\"],\"answer\":1}\n{\"question\":\n", "line 2", "invalid JSON", NULL},
        {"  \n", "empty file", NULL, NULL},
        {"[]", "no questions", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        p = write_fx("bad_wmdp.json", cases[i].text);
        CHECK_EQ_INT(wmdp_load(p, "x", "y", &t, &err), -1);
        CHECK(err_has(&err, "bad_wmdp.json", cases[i].a, cases[i].b));
        if (cases[i].c) CHECK(err_has(&err, cases[i].c, NULL, NULL));
        free(p);
    }
}

/* ---------------- MMLU ---------------- */
static void test_mmlu_csv(void) {
    cis_err err = {0};
    mc_task t;
    /* what Python's csv.writer produces for awkward fields (QUOTE_MINIMAL), with CRLF row ends */
    const char *csv =
        "Plain question?,one,two,three,four,B\r\n"
        "\"Comma, inside?\",\"a,b\",c,d,e,A\r\n"
        "\"He said \"\"hi\"\".\",x,\"multi\nline\",z,\"\",D\r\n"
        "\"Trailing\",p,q,r,s,C\n";
    char *p = write_fx("mmlu/data/test/college_physics_test.csv", csv);
    CHECK_EQ_INT(mmlu_load_csv(p, "college_physics", &t, &err), 0);
    CHECK_EQ_INT(t.n, 4);
    if (t.n == 4) {
        CHECK_EQ_STR(t.subject, "college physics");
        CHECK_EQ_STR(t.q[0].question, "Plain question?");
        CHECK_EQ_STR(t.q[0].choices[3], "four");
        CHECK_EQ_INT(t.q[0].answer, 1);
        CHECK_EQ_STR(t.q[1].question, "Comma, inside?");
        CHECK_EQ_STR(t.q[1].choices[0], "a,b");
        CHECK_EQ_STR(t.q[2].question, "He said \"hi\".");
        CHECK_EQ_STR(t.q[2].choices[1], "multi\nline");
        CHECK_EQ_STR(t.q[2].choices[3], "");
        CHECK_EQ_INT(t.q[2].answer, 3);
        CHECK_EQ_INT(t.q[3].answer, 2);
    }
    mc_task_clear(&t);
    free(p);
    /* the directory: subjects sorted, dev split separate */
    free(write_fx("mmlu/data/test/abstract_algebra_test.csv", "1+1?,1,2,3,4,B\n"));
    free(write_fx("mmlu/data/dev/abstract_algebra_dev.csv", "2+2?,1,2,3,4,D\n"));
    free(write_fx("mmlu/data/test/README.txt", "not a csv\n"));
    char *dir = fx("mmlu");
    mc_task *ts = NULL;
    int n = 0;
    CHECK_EQ_INT(mmlu_load_dir(dir, "test", &ts, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(ts[0].name, "abstract_algebra");
        CHECK_EQ_STR(ts[0].subject, "abstract algebra");
        CHECK_EQ_STR(ts[1].name, "college_physics");
        CHECK_EQ_INT(ts[1].n, 4);
    }
    mc_tasks_free(&ts, n);
    CHECK_EQ_INT(mmlu_load_dir(dir, "dev", &ts, &n, &err), 0);
    CHECK(n == 1 && ts[0].q[0].answer == 3);
    mc_tasks_free(&ts, n);
    char *data = fx("mmlu/data"); /* the data directory itself works too */
    CHECK_EQ_INT(mmlu_load_dir(data, "test", &ts, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    mc_tasks_free(&ts, n);
    CHECK_EQ_INT(mmlu_load_dir(dir, "val", &ts, &n, &err), -1);
    CHECK(err_has(&err, "val", NULL, NULL));
    free(dir); free(data);

    struct { const char *text, *a, *b; } cases[] = {
        {"q,a,b,c,d,A\nq2,a,b,c,E\n", "row 2", "expected 6 fields"},
        {"q,a,b,c,d,A\nq2,a,b,c,d,E\n", "row 2", "answer"},
        {"q,a,b,c,d,A\n\"unterminated,a,b,c,d,A\n", "row 2", "unterminated"},
        {"\"q\"x,a,b,c,d,A\n", "row 1", "after a closing quote"},
        {"q,a,b,c,d,A,extra\n", "row 1", "6 fields"},
        {"", "empty file", NULL},
        {"\n\n", "empty file", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        p = write_fx("bad/x_test.csv", cases[i].text);
        CHECK_EQ_INT(mmlu_load_csv(p, "x", &t, &err), -1);
        CHECK(err_has(&err, "x_test.csv", cases[i].a, cases[i].b));
        free(p);
    }
    /* a bad file inside a directory fails the directory load, naming the file */
    free(write_fx("mmlu2/data/test/bad_test.csv", "q,a,b,c,d,Z\n"));
    dir = fx("mmlu2");
    CHECK_EQ_INT(mmlu_load_dir(dir, "test", &ts, &n, &err), -1);
    CHECK(err_has(&err, "bad_test.csv", "row 1", NULL));
    free(dir);
}

/* ---------------- WikiText ---------------- */
static void test_wikitext(void) {
    cis_err err = {0};
    char *p = write_fx("wikitext/wiki.test.raw", " \n = Valkor = \n \n Valkor is a river . \n Second line \n");
    char *text = NULL;
    size_t len = 0;
    CHECK_EQ_INT(wikitext_load(p, &text, &len, &err), 0);
    /* rows: "", " = Valkor = \n", "", " Valkor is a river . \n", " Second line \n" joined by "\n\n" */
    const char *want = "\n\n = Valkor = \n\n\n\n\n Valkor is a river . \n\n\n Second line \n";
    CHECK_EQ_STR(text, want);
    CHECK_EQ_INT(len, strlen(want));
    /* Python check of the same rule, when python3 is here */
    char *cmd = xasprintf("python3 -c \"import sys; rows=[(l if l.strip() else '') for l in open('%s', newline='')]; "
                          "sys.stdout.write('\\n\\n'.join(rows))\" 2>/dev/null", p);
    FILE *f = popen(cmd, "r");
    char buf[512];
    size_t got = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) pclose(f);
    if (got > 0) { buf[got] = 0; CHECK_EQ_STR(text, buf); }
    free(cmd); free(text); free(p);
    p = write_fx("wikitext/empty.raw", " \n\n \n");
    CHECK_EQ_INT(wikitext_load(p, &text, &len, &err), -1);
    CHECK(err_has(&err, "empty.raw", "no text", NULL));
    free(p);
}

/* ---------------- C4 json.gz, pile jsonl(.zst) ---------------- */
static int sh(const char *cmd) { int rc = system(cmd); return rc; }

static const char *C4_LINES =
    "{\"text\": \"First doc.\\nWith a newline \\u00e9.\", \"timestamp\": \"2019-04-25T12:57:54Z\", \"url\": \"https://a.example/1\"}\n"
    "{\"text\": \"Second doc\", \"timestamp\": \"2019-04-25T12:57:55Z\", \"url\": \"https://a.example/2\"}\n"
    "{\"text\": \"Third\", \"timestamp\": \"2019-04-25T12:57:56Z\", \"url\": \"https://a.example/3\"}\n";

static void test_c4_gz(void) {
    cis_err err = {0};
    char *plain = write_fx("c4/plain.json", C4_LINES);
    char *gz = fx("c4/c4-train.00000-of-01024.json.gz");
    char *cmd = xasprintf("python3 -c \"import gzip,shutil; shutil.copyfileobj(open('%s','rb'), gzip.open('%s','wb'))\"", plain, gz);
    if (sh(cmd) != 0) { free(cmd); free(plain); free(gz); SKIP("python3 gzip not available"); }
    free(cmd);
    text_docs d;
    CHECK_EQ_INT(c4_load(gz, 0, &d, &err), 0);
    CHECK_EQ_INT(d.n, 3);
    if (d.n == 3) {
        CHECK_EQ_STR(d.text[0], "First doc.\nWith a newline \xc3\xa9.");
        CHECK_EQ_INT(d.len[0], strlen("First doc.\nWith a newline \xc3\xa9."));
        CHECK_EQ_STR(d.text[2], "Third");
    }
    text_docs_clear(&d);
    CHECK_EQ_INT(c4_load(gz, 2, &d, &err), 0);
    CHECK_EQ_INT(d.n, 2);
    text_docs_clear(&d);
    /* truncated: the first 40 bytes of the gzip file */
    size_t n = 0;
    char *bytes = read_file(gz, &n, &err);
    char *tr = fx("c4/truncated.json.gz");
    CIS_ASSERT(bytes && write_file_replace(tr, bytes, n - 12, &err) == 0); /* drop the trailer and a bit of data */
    CHECK_EQ_INT(c4_load(tr, 0, &d, &err), -1);
    CHECK(err_has(&err, "truncated.json.gz", "truncated", NULL));
    CIS_ASSERT(write_file_replace(tr, bytes, 30, &err) == 0);
    CHECK_EQ_INT(c4_load(tr, 0, &d, &err), -1);
    CHECK(err_has(&err, "truncated.json.gz", NULL, NULL));
    /* not gzip at all */
    CIS_ASSERT(write_file_replace(tr, C4_LINES, strlen(C4_LINES), &err) == 0);
    CHECK_EQ_INT(c4_load(tr, 0, &d, &err), -1);
    CHECK(err_has(&err, "truncated.json.gz", "not a gzip", NULL));
    free(bytes); free(tr);
    /* a bad record inside the gzip */
    char *badp = write_fx("c4/bad.json", "{\"text\": \"ok\"}\n{\"url\": \"u\"}\n");
    char *badgz = fx("c4/bad.json.gz");
    cmd = xasprintf("python3 -c \"import gzip,shutil; shutil.copyfileobj(open('%s','rb'), gzip.open('%s','wb'))\"", badp, badgz);
    CHECK_EQ_INT(sh(cmd), 0);
    CHECK_EQ_INT(c4_load(badgz, 0, &d, &err), -1);
    CHECK(err_has(&err, "bad.json.gz", "line 2", "\"text\""));
    free(cmd); free(badp); free(badgz); free(plain); free(gz);
}

static const char *PILE_LINES =
    "{\"text\": \"Pile doc one\", \"meta\": {\"pile_set_name\": \"Pile-CC\"}}\n"
    "{\"text\": \"Pile doc two\", \"meta\": {\"pile_set_name\": \"Github\"}}\n";

static void check_pile(const char *path) {
    cis_err err = {0};
    text_docs d;
    CHECK_EQ_INT(pile_load(path, 0, &d, &err), 0);
    if (err.msg[0]) fprintf(stderr, "  %s\n", err.msg);
    CHECK_EQ_INT(d.n, 2);
    if (d.n == 2) { CHECK_EQ_STR(d.text[0], "Pile doc one"); CHECK_EQ_STR(d.text[1], "Pile doc two"); }
    text_docs_clear(&d);
}

static void test_pile(void) {
    cis_err err = {0};
    char *plain = write_fx("pile/val.jsonl", PILE_LINES);
    check_pile(plain);
    /* .zst made by libzstd (always available: we link it) */
    size_t cap = ZSTD_compressBound(strlen(PILE_LINES));
    char *z = xmalloc(cap);
    size_t zn = ZSTD_compress(z, cap, PILE_LINES, strlen(PILE_LINES), 3);
    CIS_ASSERT(!ZSTD_isError(zn));
    char *zp = fx("pile/val.jsonl.zst");
    CIS_ASSERT(write_file_replace(zp, z, zn, &err) == 0);
    check_pile(zp);
    /* truncated frame */
    char *tp = fx("pile/trunc.jsonl.zst");
    CIS_ASSERT(write_file_replace(tp, z, zn - 5, &err) == 0);
    text_docs d;
    CHECK_EQ_INT(pile_load(tp, 0, &d, &err), -1);
    CHECK(err_has(&err, "trunc.jsonl.zst", "truncated", NULL));
    /* garbage */
    CIS_ASSERT(write_file_replace(tp, "not zstd at all", 15, &err) == 0);
    CHECK_EQ_INT(pile_load(tp, 0, &d, &err), -1);
    CHECK(err_has(&err, "trunc.jsonl.zst", "corrupt", NULL));
    CIS_ASSERT(write_file_replace(tp, "", 0, &err) == 0);
    CHECK_EQ_INT(pile_load(tp, 0, &d, &err), -1);
    CHECK(err_has(&err, "trunc.jsonl.zst", "empty", NULL));
    /* empty jsonl */
    char *ep = write_fx("pile/empty.jsonl", "\n\n");
    CHECK_EQ_INT(pile_load(ep, 0, &d, &err), -1);
    CHECK(err_has(&err, "empty.jsonl", "empty", NULL));
    free(ep); free(tp); free(z); free(zp); free(plain);
}

/* .zst written by an outside producer: Python's zstandard if installed, else the zstd tool */
static void test_pile_external_zst(void) {
    char *plain = fx("pile/val.jsonl");
    char *zp = fx("pile/ext.jsonl.zst");
    char *cmd = xasprintf("python3 -c \"import zstandard; open('%s','wb').write(zstandard.ZstdCompressor(level=3).compress(open('%s','rb').read()))\" 2>/dev/null",
                          zp, plain);
    const char *by = "python zstandard";
    if (sh(cmd) != 0) {
        free(cmd);
        cmd = xasprintf("zstd -q -f -o '%s' '%s' 2>/dev/null", zp, plain);
        by = "the zstd tool";
        if (sh(cmd) != 0) { free(cmd); free(plain); free(zp); SKIP("neither python zstandard nor the zstd tool is installed"); }
    }
    fprintf(stderr, "  # .zst fixture made by %s\n", by);
    check_pile(zp);
    /* two frames back to back (a streamed file) */
    free(cmd);
    cmd = xasprintf("cat '%s' '%s' > '%s.2' && mv '%s.2' '%s'", zp, zp, zp, zp, zp);
    CHECK_EQ_INT(sh(cmd), 0);
    cis_err err = {0};
    text_docs d;
    CHECK_EQ_INT(pile_load(zp, 0, &d, &err), 0);
    CHECK_EQ_INT(d.n, 4);
    text_docs_clear(&d);
    free(cmd); free(plain); free(zp);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/cis_loaders_XXXXXX");
    CIS_ASSERT(mkdtemp(tmpdir));
    RUN(test_zsre_load_and_split);
    RUN(test_zsre_bad);
    RUN(test_wmdp);
    RUN(test_mmlu_csv);
    RUN(test_wikitext);
    RUN(test_c4_gz);
    RUN(test_pile);
    RUN(test_pile_external_zst);
    char *cmd = xasprintf("rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    free(cmd);
    return test_summary();
}
