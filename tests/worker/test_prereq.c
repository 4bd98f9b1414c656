/* test_prereq.c - the worker's prerequisite jobs (worker/prereq.c): which JOB compositions are one
 * (exactly one memit_stats stage), and that a malformed one, or a worker that cannot run it, fails
 * the job before any model is loaded, not retryable, with a message naming the field or option.
 * (The job itself on a real model and a real coordinator: tests/blackbox/test_memit_stats_job.py.) */
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "worker/prereq.h"
#include "tests/testlib.h"

static json_t *comp(const char *text) {
    json_t *c = json_loads(text, 0, NULL);
    CIS_ASSERT(c);
    return c;
}

static void test_which_compositions_are_prerequisites(void) {
    json_t *c = comp("[{\"method\":\"memit_stats\",\"params\":{}}]");
    CHECK(prereq_is(c));
    json_decref(c);
    const char *no[] = {"[]", "[{\"method\":\"memit\",\"params\":{}}]",
                        "[{\"method\":\"memit_stats\",\"params\":{}},{\"method\":\"ft\",\"params\":{}}]",
                        "[{\"params\":{}}]", "[7]", "{\"method\":\"memit_stats\"}"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        c = comp(no[i]);
        CHECK_MSG(!prereq_is(c), "%s", no[i]);
        json_decref(c);
    }
    CHECK(!prereq_is(NULL));
}

/* run a prerequisite job whose composition is `text` on a worker with data/cache dirs as given
 * (no model cache: every case here must fail before one is needed); the error, or "" */
static const char *run_bad(const char *text, const char *data, const char *cache, bool *retryable) {
    static char msg[1024];
    job_ctx j;
    memset(&j, 0, sizeof j);
    j.job = 1;
    j.attempt = 1;
    j.spec = json_pack("{s:s, s:o}", "model", "/nonexistent/model", "composition", comp(text));
    j.data_dir = data;
    j.cache_dir = cache;
    prereq_run(&j, json_object_get(j.spec, "composition"));
    snprintf(msg, sizeof msg, "%s", j.status == JOB_FAILED ? j.error : "");
    *retryable = j.retryable;
    CHECK(j.rows == NULL && j.stages == NULL && j.artifacts == NULL);
    json_decref(j.spec);
    return msg;
}

static void test_bad_jobs_fail_naming_the_field(void) {
    static const struct { const char *comp, *data, *cache, *want; } cases[] = {
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[4],\"layers_depth\":32,\"mom2_n_samples\":10,\"x\":1}}]",
         "/d", "/c", "params: unknown field \"x\""},
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[],\"layers_depth\":32,\"mom2_n_samples\":10}}]",
         "/d", "/c", "params.layers: expected a list of 1..64 layer indices"},
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[4,\"5\"],\"layers_depth\":32,\"mom2_n_samples\":10}}]",
         "/d", "/c", "params.layers[1]: expected an integer 0..1023"},
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[4],\"layers_depth\":-1,\"mom2_n_samples\":10}}]",
         "/d", "/c", "params.layers_depth: expected an integer 0..1023"},
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[4],\"layers_depth\":32,\"mom2_n_samples\":0}}]",
         "/d", "/c", "params.mom2_n_samples: expected an integer >= 1"},
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[4]}}]", "/d", "/c",
         "layers, layers_depth and mom2_n_samples are required"},
        {"[{\"method\":\"memit_stats\",\"params\":[]}]", "/d", "/c", "params: expected an object"},
        {"[{\"method\":\"memit_stats\",\"params\":{},\"extra\":1}]", "/d", "/c", "unknown field \"extra\""},
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[4],\"layers_depth\":32,\"mom2_n_samples\":10}}]",
         NULL, "/c", "no --data DIR"},
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[4],\"layers_depth\":32,\"mom2_n_samples\":10}}]",
         "/d", NULL, "start it with --artifacts DIR or --cache DIR"},
        {"[{\"method\":\"memit_stats\",\"params\":{\"layers\":[4],\"layers_depth\":32,\"mom2_n_samples\":10}}]",
         "/d", "/c", "no model cache"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        bool retry = true;
        const char *m = run_bad(cases[i].comp, cases[i].data, cases[i].cache, &retry);
        CHECK_MSG(strstr(m, cases[i].want) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, m, cases[i].want);
        CHECK_MSG(!retry, "case %zu: retryable", i);
    }
}

int main(void) {
    RUN(test_which_compositions_are_prerequisites);
    RUN(test_bad_jobs_fail_naming_the_field);
    return test_summary();
}
