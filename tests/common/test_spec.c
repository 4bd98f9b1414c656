/* test_spec.c - composition specs: registry, canonical JSON (stable under key order, whitespace and
 * number spelling; defaults filled), keys, error messages that name the method/parameter, the
 * worker's spec_parse view, and the SHA-256 the keys rest on. */
#include <stdlib.h>
#include <string.h>
#include "common/spec.h"
#include "tests/testlib.h"

/* canonical text of `in` (must succeed) */
static char *canon(const char *in, bool allow_test, char key[65]) {
    cis_err err = {0};
    char *t = spec_canonical_text(in, "spec", allow_test, key, &err);
    if (!t) fprintf(stderr, "  unexpected error for %s: %s\n", in, err.msg);
    return t;
}

/* expect failure; returns the message (static) */
static const char *fails(const char *in, bool allow_test) {
    static cis_err err;
    char key[65];
    memset(&err, 0, sizeof err);
    char *t = spec_canonical_text(in, "spec", allow_test, key, &err);
    if (t) { fprintf(stderr, "  expected an error for %s, got %s\n", in, t); free(t); return ""; }
    CHECK_EQ_INT(err.code, CIS_EINVAL);
    return err.msg;
}

static void test_sha256_vectors(void) {
    char hex[65];
    sha256_hex("abc", 3, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    sha256_hex("", 0, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *s = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_hex(s, strlen(s), hex);
    CHECK_EQ_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

static void test_registry(void) {
    /* method_names() lists the table in order */
    char buf[512] = "";
    for (size_t i = 0; method_at(i); i++) {
        if (i) strcat(buf, "|");
        strcat(buf, method_at(i)->name);
    }
    CHECK_EQ_STR(method_names(), buf);
    const char *cats[][2] = {{"ft", "edit"}, {"memit", "edit"}, {"lora", "edit"}, {"wanda", "compress"},
                             {"sparsegpt", "compress"}, {"gptq", "compress"}, {"awq", "compress"},
                             {"rmu", "unlearn"}, {"ga", "unlearn"}, {"gd", "unlearn"}, {"selftest", "test"},
                             {"test_scale", "test"}};
    for (size_t i = 0; i < sizeof cats / sizeof cats[0]; i++) {
        const method_info *m = method_lookup(cats[i][0]);
        CHECK(m != NULL);
        if (m) CHECK_EQ_STR(category_name(m->category), cats[i][1]);
        CHECK_EQ_INT(category_parse(cats[i][1]), m ? (int)m->category : -2);
    }
    CHECK(method_lookup("rome") == NULL);
    CHECK_EQ_INT(category_parse("nope"), -1);
    CHECK_EQ_STR(method_lookup("gptq")->level_param, "bits");
    CHECK_EQ_STR(method_lookup("wanda")->level_param, "sparsity");
    CHECK(method_lookup("memit")->level_param == NULL);
    /* every default is valid for its own declaration */
    for (size_t i = 0; method_at(i); i++) {
        const method_info *m = method_at(i);
        for (const param_info *p = m->params; p->name; p++) {
            if (!p->default_json) continue;
            json_t *d = json_loads(p->default_json, JSON_DECODE_ANY, NULL);
            cis_err err = {0};
            json_t *n = d ? spec_param_normalize(m, p, d, "default", &err) : NULL;
            CHECK_MSG(n != NULL, "%s.%s default %s: %s", m->name, p->name, p->default_json, err.msg);
            json_decref(n);
            json_decref(d);
        }
    }
}

static void test_format_real(void) {
    struct { double x; const char *s; } cases[] = {
        {0.25, "0.25"}, {5e-5, "5e-05"}, {1000.0, "1000.0"}, {1e16, "1e+16"}, {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"}, {0.0001, "0.0001"}, {0.00001, "1e-05"}, {-2.5, "-2.5"},
        {15000.0, "15000.0"}, {1e22, "1e+22"}, {123456789012345680.0, "1.2345678901234568e+17"},
        {0.0, "0.0"}, {-0.0, "0.0"}, {9999999999999998.0, "9999999999999998.0"}, {1.5e-300, "1.5e-300"},
        {0.0625, "0.0625"}, {0.001, "0.001"},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_EQ_STR(spec_format_real(cases[i].x, buf, sizeof buf), cases[i].s);
    /* round trip on many random doubles (random bit patterns, finite only) */
    unsigned long long s = 0x9e3779b97f4a7c15ULL;
    int bad = 0;
    for (int i = 0; i < 20000; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        double x;
        memcpy(&x, &s, sizeof x);
        if (!isfinite(x)) continue;
        spec_format_real(x, buf, sizeof buf);
        if (strtod(buf, NULL) != x && !(x == 0)) { if (bad++ < 3) fprintf(stderr, "  %a -> %s\n", x, buf); }
        /* shortest: one digit fewer must not round-trip (checked through %.{p}e indirectly) */
    }
    CHECK_EQ_INT(bad, 0);
}

static void test_canonical_stable(void) {
    char k1[65], k2[65], k3[65];
    char *a = canon("[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]", false, k1);
    char *b = canon("  [ { \"params\" : { \"sparsity\" : 0.250 } ,\n \"method\" : \"wanda\" } ]  ", false, k2);
    char *c = canon("[{\"method\":\"wanda\",\"params\":{\"sparsity\":2.5e-1}}]", false, k3);
    CHECK_EQ_STR(a, "[{\"method\":\"wanda\",\"params\":{\"prune_m\":0,\"prune_n\":0,\"sparsity\":0.25}}]");
    CHECK_EQ_STR(a, b);
    CHECK_EQ_STR(a, c);
    CHECK_EQ_STR(k1, k2);
    CHECK_EQ_STR(k1, k3);
    char h[65];
    sha256_hex(a, strlen(a), h);
    CHECK_EQ_STR(k1, h);
    free(a); free(b); free(c);
    /* the baseline */
    a = canon(" [ ] ", false, k1);
    CHECK_EQ_STR(a, "[]");
    sha256_hex("[]", 2, h);
    CHECK_EQ_STR(k1, h);
    free(a);
}

static void test_defaults_filled(void) {
    char k1[65], k2[65];
    char *a = canon("[{\"method\":\"gptq\",\"params\":{\"bits\":4}}]", false, k1);
    CHECK_EQ_STR(a, "[{\"method\":\"gptq\",\"params\":{\"bits\":4,\"desc_act\":false,\"group_size\":128}}]");
    char *b = canon("[{\"method\":\"gptq\",\"params\":{\"group_size\":128.0,\"bits\":4.0}}]", false, k2);
    CHECK_EQ_STR(a, b);
    CHECK_EQ_STR(k1, k2);
    free(a); free(b);
    /* the paper's MEMIT settings, every parameter present, sorted */
    a = canon("[{\"method\":\"memit\"}]", false, k1);
    CHECK_EQ_STR(a, "[{\"method\":\"memit\",\"params\":{\"clamp_norm_factor\":4.0,\"kl_factor\":0.0625,"
                    "\"layers\":[4,5,6,7,8],\"layers_depth\":32,\"mom2_n_samples\":100000,"
                    "\"mom2_update_weight\":15000.0,\"v_lr\":0.5,\"v_steps\":25,"
                    "\"v_weight_decay\":0.001,\"value_batch\":0}}]");
    free(a);
    a = canon("[{\"method\":\"rmu\",\"params\":{}}]", false, k1);
    CHECK_EQ_STR(a, "[{\"method\":\"rmu\",\"params\":{\"alpha\":1000.0,\"batch_size\":4,\"layer\":3,\"lr\":5e-05,"
                    "\"max_batches\":250,\"module\":\"o_proj\",\"pad_in_loss\":true,\"steering_coeff\":20.0,"
                    "\"use_preset\":true}}]");
    free(a);
    a = canon("[{\"method\":\"selftest\"}]", true, k1);
    CHECK_EQ_STR(a, "[{\"method\":\"selftest\",\"params\":{\"action\":\"ok\",\"fail_attempts\":1,\"id\":0,\"oom_mb\":0,"
                    "\"rows\":{\"selftest_metric\":1},\"sleep_ms\":0}}]");
    free(a);
}

static void test_equivalent_and_different(void) {
    char k1[65], k2[65];
    /* layer ranges, list order, float given as int */
    char *a = canon("[{\"method\":\"ft\",\"params\":{\"layers\":\"4-8\",\"lr\":5e-5}}]", false, k1);
    char *b = canon("[{\"method\":\"ft\",\"params\":{\"layers\":[8,7,6,5,4,4],\"lr\":0.00005,\"steps\":25}}]", false, k2);
    CHECK_EQ_STR(a, b);
    CHECK_EQ_STR(k1, k2);
    CHECK_EQ_STR(a, "[{\"method\":\"ft\",\"params\":{\"layers\":[4,5,6,7,8],\"layers_depth\":32,\"lr\":5e-05,"
                    "\"norm_constraint\":0.0,\"steps\":25}}]");
    free(a); free(b);
    a = canon("[{\"method\":\"lora\",\"params\":{\"alpha\":32}}]", false, k1);
    CHECK(a && strstr(a, "\"alpha\":32.0"));
    free(a);
    /* different level, different order, different method -> different keys */
    const char *diff[] = {
        "[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]",
        "[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.35}}]",
        "[{\"method\":\"sparsegpt\",\"params\":{\"sparsity\":0.25}}]",
        "[{\"method\":\"memit\"},{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]",
        "[{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}},{\"method\":\"memit\"}]",
        "[{\"method\":\"selftest\",\"params\":{\"id\":1}}]",
        "[{\"method\":\"selftest\",\"params\":{\"id\":2}}]",
        "[]",
    };
    size_t n = sizeof diff / sizeof diff[0];
    char keys[8][65];
    for (size_t i = 0; i < n; i++) {
        char *t = canon(diff[i], true, keys[i]);
        CHECK(t != NULL);
        free(t);
        for (size_t j = 0; j < i; j++) CHECK_MSG(strcmp(keys[i], keys[j]) != 0, "%s vs %s", diff[i], diff[j]);
    }
}

static void test_errors_name_things(void) {
    const char *m;
    m = fails("[{\"method\":\"rome\"}]", false);
    CHECK_MSG(strstr(m, "spec[0].method") && strstr(m, "\"rome\"") && strstr(m, "ft|memit|lora"), "%s", m);
    m = fails("[{\"method\":\"gptq\",\"params\":{\"bits\":5}}]", false);
    CHECK_MSG(strstr(m, "spec[0].params.bits") && strstr(m, "5 is not allowed for gptq bits") && strstr(m, "2|3|4|8"), "%s", m);
    m = fails("[{\"method\":\"awq\",\"params\":{\"bits\":9}}]", false);
    CHECK_MSG(strstr(m, "awq bits") && strstr(m, "2..8"), "%s", m);
    m = fails("[{\"method\":\"wanda\",\"params\":{\"sparsity\":1}}]", false);
    CHECK_MSG(strstr(m, "params.sparsity") && strstr(m, "out of range") && strstr(m, "< x <"), "%s", m);
    m = fails("[{\"method\":\"wanda\",\"params\":{\"sparsity\":\"0.5\"}}]", false);
    CHECK_MSG(strstr(m, "not a number"), "%s", m);
    m = fails("[{\"method\":\"wanda\"}]", false);
    CHECK_MSG(strstr(m, "missing required parameter \"sparsity\""), "%s", m);
    m = fails("[{\"method\":\"ft\",\"params\":{\"lr\":1e-4,\"foo\":1}}]", false);
    CHECK_MSG(strstr(m, "spec[0].params.foo") && strstr(m, "unknown parameter \"foo\" for ft") && strstr(m, "layers|layers_depth|lr|steps|norm_constraint"), "%s", m);
    m = fails("[{\"method\":\"ft\",\"params\":{\"steps\":2.5}}]", false);
    CHECK_MSG(strstr(m, "ft steps") && strstr(m, "not an integer"), "%s", m);
    m = fails("[{\"method\":\"ft\",\"params\":{\"layers\":\"4-x\"}}]", false);
    CHECK_MSG(strstr(m, "ft layers"), "%s", m);
    m = fails("[{\"method\":\"selftest\"}]", false);
    CHECK_MSG(strstr(m, "selftest") && strstr(m, "allow-selftest"), "%s", m);
    /* the test stage is refused outside tests exactly as selftest is */
    m = fails("[{\"method\":\"test_scale\",\"params\":{\"factor\":2}}]", false);
    CHECK_MSG(strstr(m, "spec[0].method") && strstr(m, "\"test_scale\" is a test fixture") &&
              strstr(m, "allow-selftest") && strstr(m, "--allow-test-stages"), "%s", m);
    m = fails("[{\"method\":\"test_scale\",\"params\":{\"factor\":\"x\"}}]", true);
    CHECK_MSG(strstr(m, "test_scale factor") && strstr(m, "not a number"), "%s", m);
    m = fails("[{\"method\":\"selftest\",\"params\":{\"action\":\"explode\"}}]", true);
    CHECK_MSG(strstr(m, "selftest action") && strstr(m, "ok|fail|crash|hang|oom|fail_then_ok"), "%s", m);
    m = fails("[{\"method\":\"selftest\",\"params\":{\"rows\":{\"a\":\"x\"}}}]", true);
    CHECK_MSG(strstr(m, "selftest rows"), "%s", m);
    m = fails("[{\"method\":\"selftest\",\"params\":{\"sleep_ms\":-1}}]", true);
    CHECK_MSG(strstr(m, "selftest sleep_ms") && strstr(m, "out of range"), "%s", m);
    m = fails("[{\"method\":\"ft\",\"extra\":1}]", false);
    CHECK_MSG(strstr(m, "unknown key \"extra\""), "%s", m);
    m = fails("{\"method\":\"ft\"}", false);
    CHECK_MSG(strstr(m, "array of stages"), "%s", m);
    m = fails("[42]", false);
    CHECK_MSG(strstr(m, "spec[0]") && strstr(m, "object"), "%s", m);
    m = fails("[{\"method\":\"ft\",}]", false);
    CHECK_MSG(strstr(m, "line 1") && strstr(m, "column"), "%s", m);
    m = fails("[{\"method\":\"ft\",\"method\":\"ft\"}]", false);
    CHECK_MSG(strstr(m, "duplicate"), "%s", m);
}

static void test_parse_for_worker(void) {
    spec_stage *st = NULL;
    size_t n = 0;
    cis_err err = {0};
    CHECK_EQ_INT(spec_parse("[{\"method\":\"memit\",\"params\":{\"layers\":\"3-5\"}},"
                            "{\"method\":\"gptq\",\"params\":{\"bits\":4}}]", false, &st, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    if (n == 2) {
        CHECK_EQ_STR(st[0].method->name, "memit");
        CHECK_EQ_INT(st[0].method->category, CAT_EDIT);
        long long layers[8];
        CHECK_EQ_INT(spec_param_int_list(&st[0], "layers", layers, 8), 3);
        CHECK_EQ_INT(layers[0], 3);
        CHECK_EQ_INT(layers[2], 5);
        CHECK_NEAR(spec_param_float(&st[0], "v_lr"), 0.5, 0);
        CHECK_EQ_INT(spec_param_int(&st[0], "v_steps"), 25);
        CHECK_EQ_INT(spec_param_int(&st[1], "bits"), 4);
        CHECK_EQ_INT(spec_param_int(&st[1], "group_size"), 128);
    }
    spec_stages_free(&st, n);
    CHECK(st == NULL);
    CHECK_EQ_INT(spec_parse("[{\"method\":\"selftest\",\"params\":{\"action\":\"fail_then_ok\",\"rows\":{\"m\":0.5}}}]",
                            true, &st, &n, &err), 0);
    if (n == 1) {
        CHECK_EQ_STR(spec_param_str(&st[0], "action"), "fail_then_ok");
        CHECK_NEAR(json_number_value(json_object_get(spec_param_json(&st[0], "rows"), "m")), 0.5, 0);
    }
    spec_stages_free(&st, n);
    CHECK_EQ_INT(spec_parse("[]", false, &st, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    spec_stages_free(&st, n);
    /* the worker never trusts its input */
    CHECK_EQ_INT(spec_parse("[{\"method\":\"selftest\"}]", false, &st, &n, &err), -1);
    CHECK(strstr(err.msg, "selftest") != NULL);
    CHECK_EQ_INT(spec_parse("[{\"method\":\"gptq\",\"params\":{\"bits\":7}}]", false, &st, &n, &err), -1);
    CHECK(strstr(err.msg, "gptq bits") != NULL);
    CHECK_EQ_INT(spec_parse("not json", false, &st, &n, &err), -1);
    CHECK(st == NULL && n == 0);
    CHECK_EQ_INT(spec_parse(NULL, false, &st, &n, &err), -1);
}

static void test_pattern_label_category(void) {
    json_t *j = json_loads("[{\"method\":\"memit\"},{\"method\":\"wanda\",\"params\":{\"sparsity\":0.25}}]", 0, NULL);
    cis_err err = {0};
    json_t *c = spec_normalize(j, NULL, false, &err);
    CHECK(c != NULL);
    char *p = spec_pattern(c), *l = spec_label(c);
    CHECK_EQ_STR(p, "edit->compress");
    CHECK_EQ_STR(l, "memit->wanda(sparsity=0.25)");
    CHECK(spec_has_category(c, CAT_EDIT));
    CHECK(spec_has_category(c, CAT_COMPRESS));
    CHECK(!spec_has_category(c, CAT_UNLEARN));
    free(p); free(l);
    json_decref(c);
    json_decref(j);
    /* the test stage: its defaults filled in, its level parameter in the label */
    char key[65];
    char *t = canon("[{\"method\":\"test_scale\",\"params\":{\"factor\":2}}]", true, key);
    CHECK_EQ_STR(t, "[{\"method\":\"test_scale\",\"params\":{\"factor\":2.0,\"last_layers\":0,"
                    "\"param\":\"model.layers.*.mlp.down_proj.weight\"}}]");
    j = t ? json_loads(t, 0, NULL) : json_array();
    l = spec_label(j);
    p = spec_pattern(j);
    CHECK_EQ_STR(l, "test_scale(factor=2.0)");
    CHECK_EQ_STR(p, "test");
    free(p); free(l); free(t);
    json_decref(j);
    j = json_array();
    p = spec_pattern(j);
    l = spec_label(j);
    CHECK_EQ_STR(p, "baseline");
    CHECK_EQ_STR(l, "baseline");
    free(p); free(l);
    json_decref(j);
}

int main(void) {
    RUN(test_sha256_vectors);
    RUN(test_registry);
    RUN(test_format_real);
    RUN(test_canonical_stable);
    RUN(test_defaults_filled);
    RUN(test_equivalent_and_different);
    RUN(test_errors_name_things);
    RUN(test_parse_for_worker);
    RUN(test_pattern_label_category);
    return test_summary();
}
