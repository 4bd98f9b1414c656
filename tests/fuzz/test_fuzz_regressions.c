/* test_fuzz_regressions.c - the findings of issue 13's fuzzing, replayed on their exact inputs
 * (tests/fuzz/corpus/<target>/regress-*) through the same entry points, on the ordinary build (no
 * clang needed): each must now end with a clear error or a correct result. Under the AddressSanitizer
 * pass of `make test` the leak finding is checked too; tests/fuzz/test_fuzz_short.py replays the
 * same files through the sanitizer-built fuzz targets. A hang (the split_added loop) is cut by
 * alarm() and fails the program. */
#include "tests/testlib.h"
#include "common/spec.h"
#include "worker/data/loaders.h"
#include "worker/engine/config.h"
#include "worker/engine/tokenizer.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[256];

static char *slurp(const char *rel, size_t *n) {
    char p[512];
    snprintf(p, sizeof p, "tests/fuzz/corpus/%s", rel);
    FILE *f = fopen(p, "rb");
    if (!f) { fprintf(stderr, "  cannot open %s (run from the repository root)\n", p); return NULL; }
    char *d = malloc(1 << 20);
    *n = fread(d, 1, (1 << 20) - 1, f);
    d[*n] = 0;
    fclose(f);
    return d;
}

static const char *put(const char *name, const char *d, size_t n) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmp, name);
    FILE *f = fopen(p, "wb");
    fwrite(d, 1, n, f);
    fclose(f);
    return p;
}

/* tokenizer.json + "\n#TEXT#\n" + text (the fuzz_tokenizer input format) -> encode the text */
static int encode_case(const char *rel, size_t *n_ids, cis_err *err) {
    size_t n = 0;
    char *d = slurp(rel, &n);
    if (!d) return -2;
    char *sep = memmem(d, n, "\n#TEXT#\n", 8);
    CHECK(sep != NULL);
    if (!sep) { free(d); return -2; }
    put("tokenizer.json", d, (size_t)(sep - d));
    tokenizer *t = NULL;
    int rc = tokenizer_load(tmp, &t, err);
    CHECK_MSG(rc == 0, "%s: %s", rel, err->msg);
    if (rc == 0) {
        int32_t *ids = NULL;
        const char *text = sep + 8;
        rc = tokenizer_encode(t, text, n - (size_t)(text - d), true, &ids, n_ids, err);
        free(ids);
        tokenizer_free(t);
    }
    free(d);
    return rc;
}

static void tokenizer_empty_added_token_and_nul_byte_terminates(void) {
    alarm(20); /* before the fix: an endless loop allocating without bound */
    size_t n = 0;
    cis_err err = {0};
    int rc = encode_case("fuzz_tokenizer/regress-split-added-empty-match", &n, &err);
    alarm(0);
    CHECK_MSG(rc == 0, "%s", err.msg);
    CHECK(n >= 2); /* "a", the NUL (no id: skipped) and "b" */
}

static void tokenizer_word_without_any_id_is_cached_safely(void) {
    size_t n = 7;
    cis_err err = {0};
    CHECK_EQ_INT(encode_case("fuzz_tokenizer/regress-bpe-cache-empty-word", &n, &err), 0);
    CHECK_EQ_INT(n, 0);
}

static void layers_that_overflow_are_refused(void) {
    const char *cases[] = {"fuzz_spec/regress-layers-overflow", "fuzz_spec/regress-layers-range-overflow"};
    for (size_t i = 0; i < 2; i++) {
        size_t n = 0;
        char *d = slurp(cases[i], &n);
        CHECK(d != NULL);
        if (!d) continue;
        json_t *j = json_loads(d, 0, NULL);
        CHECK(j != NULL);
        cis_err err = {0};
        json_t *norm = spec_normalize(j, "grid.json: $.compositions[0]", false, &err);
        CHECK_MSG(norm == NULL, "%s accepted", d);
        CHECK_MSG(strstr(err.msg, "layers") != NULL, "%s", err.msg);
        json_decref(norm);
        json_decref(j);
        free(d);
    }
    /* ordinary ranges still work */
    json_t *ok = json_loads("[{\"method\":\"ft\",\"params\":{\"layers\":\"3-5,9\"}}]", 0, NULL);
    cis_err err = {0};
    json_t *norm = spec_normalize(ok, "x", false, &err);
    CHECK_MSG(norm != NULL, "%s", err.msg);
    if (norm) {
        char *c = spec_dump_canonical(norm);
        CHECK(strstr(c, "\"layers\":[3,4,5,9]") != NULL);
        free(c);
    }
    json_decref(norm);
    json_decref(ok);
}

static void csv_failure_after_a_field_frees_it(void) {
    size_t n = 0;
    char *d = slurp("fuzz_datasets/regress-csv-leak", &n);
    CHECK(d != NULL && n == 2);
    if (!d) return;
    const char *p = put("dev_x.csv", d, n);
    mc_task t;
    cis_err err = {0};
    CHECK_EQ_INT(mmlu_load_csv(p, "x", &t, &err), -1);
    CHECK_MSG(strstr(err.msg, "dev_x.csv") && strstr(err.msg, "unterminated quoted field"), "%s", err.msg);
    mc_task_clear(&t);
    free(d);
}

static void rope_factor_beyond_float_is_refused(void) {
    size_t n = 0;
    char *d = slurp("fuzz_config/regress-rope-factor-1e39", &n);
    CHECK(d != NULL);
    if (!d) return;
    const char *p = put("config.json", d, n);
    llama_config c;
    memset(&c, 0, sizeof c);
    cis_err err = {0};
    CHECK_EQ_INT(llama_config_load(p, &c, &err), -1);
    CHECK_MSG(strstr(err.msg, "config.json") && strstr(err.msg, "factor") && strstr(err.msg, "too large"), "%s", err.msg);
    free(d);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/cisweep-fuzzreg-%d", (int)getpid());
    mkdir(tmp, 0700);
    RUN(tokenizer_empty_added_token_and_nul_byte_terminates);
    RUN(tokenizer_word_without_any_id_is_cached_safely);
    RUN(layers_that_overflow_are_refused);
    RUN(csv_failure_after_a_field_frees_it);
    RUN(rope_factor_beyond_float_is_refused);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) {}
    return test_summary();
}
