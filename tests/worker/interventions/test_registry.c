/* test_registry.c - the intervention registry (worker/interventions/registry.c) and the method
 * table of common/spec_registry.c list the same names with the same categories, both ways, so the
 * two tables cannot drift; every row is consistent (built <=> apply set; the fixture is selftest;
 * the paper's re-applied compressors are wanda, sparsegpt and gptq). */
#include "tests/testlib.h"
#include "worker/interventions/intervention.h"

static void test_every_spec_method_has_an_entry(void) {
    size_t n = 0;
    for (size_t i = 0; method_at(i); i++, n++) {
        const method_info *m = method_at(i);
        const intervention *iv = intervention_lookup(m->name);
        CHECK_MSG(iv != NULL, "spec method \"%s\" has no row in worker/interventions/registry.c", m->name);
        if (!iv) continue;
        CHECK_EQ_STR(iv->name, m->name);
        CHECK_MSG(iv->category == m->category, "%s: registry says %s, spec says %s", m->name,
                  category_name(iv->category), category_name(m->category));
    }
    CHECK(n >= 12); /* ten interventions, selftest, test_scale */
}

static void test_every_entry_is_a_spec_method(void) {
    size_t n_iv = 0, n_spec = 0;
    for (size_t i = 0; intervention_at(i); i++, n_iv++) {
        const intervention *iv = intervention_at(i);
        CHECK_MSG(method_lookup(iv->name) != NULL, "registry row \"%s\" is not a method of common/spec_registry.c",
                  iv->name);
        for (size_t j = 0; j < i; j++) CHECK_MSG(strcmp(intervention_at(j)->name, iv->name) != 0, "duplicate %s", iv->name);
    }
    for (size_t i = 0; method_at(i); i++) n_spec++;
    CHECK_EQ_INT(n_iv, n_spec);
    CHECK(intervention_lookup("rome") == NULL);
    CHECK(intervention_lookup(NULL) == NULL);
}

static void test_rows_are_consistent(void) {
    for (size_t i = 0; intervention_at(i); i++) {
        const intervention *iv = intervention_at(i);
        CHECK_MSG((iv->status == INTERV_BUILT) == (iv->apply != NULL), "%s: status %s but apply %s", iv->name,
                  interv_status_name(iv->status), iv->apply ? "set" : "NULL");
        CHECK_MSG(iv->status != INTERV_FIXTURE || !strcmp(iv->name, "selftest"), "%s is not the fixture", iv->name);
        CHECK_MSG(!iv->reapply_at_end || iv->category == CAT_COMPRESS, "%s re-applied but not a compressor", iv->name);
        CHECK(iv->doc && *iv->doc);
    }
    const char *again[] = {"wanda", "sparsegpt", "gptq"};
    for (int i = 0; i < 3; i++) CHECK(intervention_lookup(again[i])->reapply_at_end);
    CHECK(!intervention_lookup("awq")->reapply_at_end);
    CHECK_EQ_INT(intervention_lookup("selftest")->status, INTERV_FIXTURE);
    CHECK_EQ_INT(intervention_lookup("test_scale")->status, INTERV_BUILT);
    CHECK(intervention_lookup("test_scale")->preset != NULL);
    CHECK_EQ_STR(interv_status_name(INTERV_NOT_BUILT), "not built yet");
}

int main(void) {
    RUN(test_every_spec_method_has_an_entry);
    RUN(test_every_entry_is_a_spec_method);
    RUN(test_rows_are_consistent);
    return test_summary();
}
