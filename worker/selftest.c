/* selftest.c - the `selftest` job kind: a test fixture for the orchestration, enabled only when the
 * worker runs with --selftest (docs/orchestration.md). Its stage parameters say what to do:
 *   action "ok"           sleep sleep_ms (checking the stop flag every 5 ms), return `rows`
 *   action "fail"         report FAILED (retryable) after sleep_ms
 *   action "fail_then_ok" fail while attempt <= fail_attempts, then behave as "ok"
 *   action "crash"        abort() the whole worker process (a job that kills its worker)
 *   action "hang"         never return and ignore stop requests (a stuck job)
 *   action "oom"          allocate and touch oom_mb MiB; fails cleanly when a memory limit
 *                         (the worker's --mem-limit-mb, or ulimit -v) refuses it */
#include "worker/job.h"
#include "common/log.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

static bool sleep_checked(job_ctx *j, int64_t ms) {
    int64_t end = mono_ms() + ms;
    while (mono_ms() < end) {
        if (job_should_stop(j)) return false;
        int64_t left = end - mono_ms();
        sleep_ms(left < 5 ? left : 5);
        if (ms > 0) job_set_progress(j, 1.0 - (double)(end - mono_ms()) / (double)ms);
    }
    return !job_should_stop(j);
}

void selftest_execute(job_ctx *j, json_t *params) {
    const char *action = json_string_value(json_object_get(params, "action"));
    if (!action) action = "ok";
    json_t *sv = json_object_get(params, "sleep_ms");
    int64_t sleep = json_is_integer(sv) ? json_integer_value(sv) : 0;
    if (!strcmp(action, "crash")) {
        LOG_W("selftest: crashing the worker process on purpose (action \"crash\")");
        abort();
    }
    if (!strcmp(action, "hang")) {
        LOG_W("selftest: hanging on purpose, ignoring stop requests (action \"hang\")");
        for (;;) sleep_ms(1000);
    }
    if (!sleep_checked(j, sleep)) { j->status = JOB_STOPPED; return; }
    if (!strcmp(action, "fail")) {
        j->status = JOB_FAILED;
        j->retryable = true;
        snprintf(j->error, sizeof j->error, "selftest: failing on purpose (action \"fail\")");
        LOG_E("%s", j->error);
        return;
    }
    if (!strcmp(action, "fail_then_ok")) {
        json_t *fa = json_object_get(params, "fail_attempts");
        int n = json_is_integer(fa) ? (int)json_integer_value(fa) : 1;
        if (j->attempt <= n) {
            j->status = JOB_FAILED;
            j->retryable = true;
            snprintf(j->error, sizeof j->error, "selftest: failing attempt %d of the first %d on purpose", j->attempt, n);
            LOG_E("%s", j->error);
            return;
        }
    }
    if (!strcmp(action, "oom")) {
        json_t *mv = json_object_get(params, "oom_mb");
        size_t mb = json_is_integer(mv) ? (size_t)json_integer_value(mv) : 0;
        char *p = malloc(mb << 20);
        if (!p) {
            j->status = JOB_FAILED;
            j->retryable = false;
            snprintf(j->error, sizeof j->error, "out of memory: could not allocate %zu MiB (memory limit)", mb);
            LOG_E("%s", j->error);
            return;
        }
        for (size_t i = 0; i < (mb << 20); i += 4096) p[i] = 1;
        free(p);
    }
    json_t *rows = json_object_get(params, "rows");
    j->rows = json_is_object(rows) ? json_deep_copy(rows) : json_pack("{s:f}", "selftest_metric", 1.0);
    j->status = JOB_OK;
}
