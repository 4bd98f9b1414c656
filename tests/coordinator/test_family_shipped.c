/* test_family_shipped.c - the shipped family of coordinator/family_shipped.c on a made-up family in
 * a temporary directory (two members of small files, a two-file world): bad manifests refused with
 * the manifest and the field named; the fit test says why not (scale, step budget, member, a world
 * file that differs or is missing); the install copies every file byte for byte, model.safetensors
 * included, keeps a member that exists, and writes nothing when any member's file is damaged (the
 * file and both hashes named). The real models/family is checked by tests/deploy/test_rebuild_family.py. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "coordinator/family_shipped.h"
#include "tests/testlib.h"

static char tmpdir[] = "/tmp/test_family_shipped.XXXXXX";

static void put(const char *rel, const char *text) {
    char *p = xasprintf("%s/%s", tmpdir, rel), *d = xstrdup(p);
    *strrchr(d, '/') = 0;
    cis_err err = {0};
    CIS_ASSERT(mkdir_p(d, &err) == 0);
    CIS_ASSERT(write_file_atomic(p, text, strlen(text), &err) == 0);
    free(p);
    free(d);
}

static char *hex_of(const char *text) {
    static char h[8][65];
    static int k;
    char *r = h[k++ % 8];
    sha256_hex(text, strlen(text), r);
    return r;
}

static char *slurp(const char *rel) {
    char *p = xasprintf("%s/%s", tmpdir, rel);
    char *b = read_file(p, NULL, NULL);
    free(p);
    return b;
}

/* the made-up family: ship/{a,b}/{model.safetensors,config.json}, world/corpus/{p,s}.jsonl */
static void make_family(const char *steps_json) {
    put("world/corpus/p.jsonl", "{\"text\": \"p\"}\n");
    put("world/corpus/s.jsonl", "{\"prompt\": \"q\", \"completion\": \"a\"}\n");
    put("ship/a/model.safetensors", "weights of a");
    put("ship/a/config.json", "{\"a\": 1}");
    put("ship/b/model.safetensors", "weights of b");
    put("ship/b/config.json", "{\"b\": 1}");
    char *m = xasprintf("{\"format\": \"cisweep-family/1\", \"world\": {\"scale\": \"default\", \"files\": {\"corpus/p.jsonl\": \"%s\", "
                        "\"corpus/s.jsonl\": \"%s\"}}, \"train\": {\"steps\": %s}, \"members\": {\"a\": {\"files\": "
                        "{\"model.safetensors\": \"%s\", \"config.json\": \"%s\"}}, \"b\": {\"files\": {\"model.safetensors\": \"%s\", "
                        "\"config.json\": \"%s\"}}}}",
                        hex_of("{\"text\": \"p\"}\n"), hex_of("{\"prompt\": \"q\", \"completion\": \"a\"}\n"), steps_json,
                        hex_of("weights of a"), hex_of("{\"a\": 1}"), hex_of("weights of b"), hex_of("{\"b\": 1}"));
    put("ship/manifest.json", m);
    free(m);
}

static void expect_bad_manifest(const char *text, const char *want) {
    put("bad/manifest.json", text);
    char *d = xasprintf("%s/bad", tmpdir);
    family_shipped *f = NULL;
    cis_err err = {0};
    CHECK_EQ_INT(family_shipped_load(d, &f, &err), -1);
    CHECK(f == NULL);
    CHECK_MSG(strstr(err.msg, "bad/manifest.json") && strstr(err.msg, want), "want the manifest and \"%s\" in: %s", want, err.msg);
    free(d);
}

static void test_bad_manifests(void) {
    const char *H = "\"0000000000000000000000000000000000000000000000000000000000000000\"";
    char *w = xasprintf("\"world\": {\"scale\": \"default\", \"files\": {\"corpus/p.jsonl\": %s}}", H);
    char *ok_m = xasprintf("\"members\": {\"a\": {\"files\": {\"model.safetensors\": %s}}}", H);
    expect_bad_manifest("{\"world\": ", "manifest.json:1: ");                      /* not JSON: the line and jansson's text */
    expect_bad_manifest("[1]", "not a JSON object");
    char *t;
    t = xasprintf("{\"world\": {\"files\": {}}, \"train\": {\"steps\": 5}, %s}", ok_m);
    expect_bad_manifest(t, "world.scale"); free(t);
    t = xasprintf("{\"world\": {\"scale\": \"default\", \"files\": {}}, \"train\": {\"steps\": 5}, %s}", ok_m);
    expect_bad_manifest(t, "world.files"); free(t);
    t = xasprintf("{%s, \"train\": {\"steps\": 0}, %s}", w, ok_m);
    expect_bad_manifest(t, "train.steps"); free(t);
    t = xasprintf("{%s, \"train\": {\"steps\": 5}, \"members\": {}}", w);
    expect_bad_manifest(t, "members"); free(t);
    t = xasprintf("{\"world\": {\"scale\": \"default\", \"files\": {\"../etc/passwd\": %s}}, \"train\": {\"steps\": 5}, %s}", H, ok_m);
    expect_bad_manifest(t, "world.files.\"../etc/passwd\""); free(t);
    t = xasprintf("{\"world\": {\"scale\": \"default\", \"files\": {\"corpus/p.jsonl\": \"ABC\"}}, \"train\": {\"steps\": 5}, %s}", ok_m);
    expect_bad_manifest(t, "64 lowercase hex"); free(t);
    t = xasprintf("{%s, \"train\": {\"steps\": 5}, \"members\": {\"a\": {\"files\": {\"config.json\": %s}}}}", w, H);
    expect_bad_manifest(t, "members.\"a\": expected {\"files\""); free(t);
    t = xasprintf("{%s, \"train\": {\"steps\": 5}, \"members\": {\"..\": {\"files\": {\"model.safetensors\": %s}}}}", w, H);
    expect_bad_manifest(t, "plain directory name"); free(t);
    t = xasprintf("{%s, \"train\": {\"steps\": 5}, \"members\": {\"a\": {\"files\": {\"model.safetensors\": %s, \"x/y\": %s}}}}", w, H, H);
    expect_bad_manifest(t, "plain file name"); free(t);
    free(w);
    free(ok_m);
    family_shipped *f = NULL;
    cis_err err = {0};
    char *none = xasprintf("%s/none", tmpdir);
    CHECK(family_shipped_load(none, &f, &err) == -1 && strstr(err.msg, "none/manifest.json"));
    free(none);
}

static void test_fits(void) {
    make_family("7");
    char *d = xasprintf("%s/ship", tmpdir), *world = xasprintf("%s/world", tmpdir);
    family_shipped *f = NULL;
    cis_err err = {0};
    CHECK_MSG(family_shipped_load(d, &f, &err) == 0, "%s", err.msg);
    if (!f) { free(d); free(world); return; }
    CHECK_EQ_INT(family_shipped_steps(f), 7);
    const char *ab[] = {"a", "b"}, *ac[] = {"a", "c"};
    CHECK_MSG(family_shipped_fits(f, world, "default", 7, ab, 2, &err) == 0, "%s", err.msg);
    CHECK(family_shipped_fits(f, world, "small", 7, ab, 2, &err) == 1 && strstr(err.msg, "scale is \"small\""));
    CHECK(family_shipped_fits(f, world, "default", 2, ab, 2, &err) == 1 && strstr(err.msg, "step budget is 2") && strstr(err.msg, " 7"));
    CHECK(family_shipped_fits(f, world, "default", 7, ac, 2, &err) == 1 && strstr(err.msg, "c is not a member"));
    put("world/corpus/s.jsonl", "{\"prompt\": \"q\", \"completion\": \"b\"}\n");   /* another world */
    CHECK(family_shipped_fits(f, world, "default", 7, ab, 2, &err) == 1 && strstr(err.msg, "corpus/s.jsonl has sha256"));
    char *s = xasprintf("%s/corpus/s.jsonl", world);
    unlink(s);
    free(s);
    CHECK(family_shipped_fits(f, world, "default", 7, ab, 2, &err) == 1 && strstr(err.msg, "has no") && strstr(err.msg, "s.jsonl"));
    family_shipped_free(&f);
    CHECK(f == NULL);
    free(d);
    free(world);
}

static void test_install(void) {
    make_family("7");
    char *d = xasprintf("%s/ship", tmpdir), *fam = xasprintf("%s/out/family", tmpdir);
    family_shipped *f = NULL;
    cis_err err = {0};
    CHECK_MSG(family_shipped_load(d, &f, &err) == 0, "%s", err.msg);
    if (!f) { free(d); free(fam); return; }
    const char *ab[] = {"a", "b"};
    /* a damaged file in b: nothing written, not even a's files */
    put("ship/b/config.json", "{\"b\": 2}");
    int n = -1;
    CHECK_EQ_INT(family_shipped_install(f, fam, ab, 2, &n, &err), -1);
    CHECK_EQ_INT(n, 0);
    CHECK_MSG(strstr(err.msg, "ship/b/config.json: sha256 ") && strstr(err.msg, hex_of("{\"b\": 2}")) &&
              strstr(err.msg, hex_of("{\"b\": 1}")) && strstr(err.msg, "damaged"), "%s", err.msg);
    char *a_w = xasprintf("%s/a/model.safetensors", fam);
    CHECK(access(a_w, F_OK) != 0);
    /* a missing file */
    put("ship/b/config.json", "{\"b\": 1}");
    char *bw = xasprintf("%s/b/model.safetensors", d);
    unlink(bw);
    CHECK(family_shipped_install(f, fam, ab, 2, &n, &err) == -1 && strstr(err.msg, "b/model.safetensors"));
    CHECK(access(a_w, F_OK) != 0);
    /* intact: every file copied byte for byte */
    put("ship/b/model.safetensors", "weights of b");
    CHECK_MSG(family_shipped_install(f, fam, ab, 2, &n, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(n, 2);
    char *got = slurp("out/family/b/model.safetensors"), *cfg = slurp("out/family/a/config.json");
    CHECK(got && !strcmp(got, "weights of b"));
    CHECK(cfg && !strcmp(cfg, "{\"a\": 1}"));
    free(got);
    free(cfg);
    /* a member that exists is kept as it is (a resumed run), even when the shipped one is damaged */
    put("out/family/a/model.safetensors", "trained here");
    put("ship/a/model.safetensors", "damaged");
    const char *a[] = {"a"};
    CHECK_MSG(family_shipped_install(f, fam, a, 1, &n, &err) == 0, "%s", err.msg);
    CHECK_EQ_INT(n, 0);
    got = slurp("out/family/a/model.safetensors");
    CHECK(got && !strcmp(got, "trained here"));
    free(got);
    const char *c[] = {"c"};
    CHECK(family_shipped_install(f, fam, c, 1, &n, &err) == -1 && strstr(err.msg, "c is not a member"));
    family_shipped_free(&f);
    free(a_w);
    free(bw);
    free(d);
    free(fam);
}

int main(void) {
    CIS_ASSERT(mkdtemp(tmpdir));
    RUN(test_bad_manifests);
    RUN(test_fits);
    RUN(test_install);
    char *rm = xasprintf("rm -rf %s", tmpdir);
    if (system(rm)) {}
    free(rm);
    return test_summary();
}
