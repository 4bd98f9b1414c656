/* testlib.h - the tiny harness every C test program uses. A program defines test functions,
 * runs them with RUN(fn), and ends with `return test_summary();`. Each test prints one line,
 * "ok - name" or "not ok - name" (TAP-like), which tests/run.sh counts; a failed CHECK prints
 * file:line and the expression. SKIP("why") marks the current test skipped (GPU tests).
 * Every CHECK* evaluation is counted: a test that ran no check and did not SKIP has tested
 * nothing and fails as "not ok - name (no checks ran)". A helper that judges by hand counts its
 * verdict with TL_CHECKED() (and sets tl_failed_cur = 1 when it fails). */
#ifndef CISWEEP_TESTLIB_H
#define CISWEEP_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <string.h>

static int tl_failed_cur = 0, tl_skipped_cur = 0, tl_n_fail = 0, tl_n_pass = 0, tl_n_skip = 0;
static long tl_checks_cur = 0;  /* CHECK evaluations in the current test */
#define TL_CHECKED() (tl_checks_cur++)
static char tl_skip_why[256];

#define CHECK(cond) do { TL_CHECKED(); if (!(cond)) { \
    fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); tl_failed_cur = 1; } } while (0)
#define CHECK_MSG(cond, ...) do { TL_CHECKED(); if (!(cond)) { \
    fprintf(stderr, "  %s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); tl_failed_cur = 1; } } while (0)
#define CHECK_EQ_INT(a, b) do { TL_CHECKED(); long long _a = (long long)(a), _b = (long long)(b); if (_a != _b) { \
    fprintf(stderr, "  %s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b, _a, _b); \
    tl_failed_cur = 1; } } while (0)
#define CHECK_EQ_STR(a, b) do { TL_CHECKED(); const char *_a = (a), *_b = (b); if (!_a || !_b || strcmp(_a, _b)) { \
    fprintf(stderr, "  %s:%d: CHECK failed: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, __LINE__, #a, #b, \
            _a ? _a : "(null)", _b ? _b : "(null)"); tl_failed_cur = 1; } } while (0)
#define CHECK_NEAR(a, b, tol) do { TL_CHECKED(); double _a = (a), _b = (b); if (!(fabs(_a - _b) <= (tol))) { \
    fprintf(stderr, "  %s:%d: CHECK failed: |%s - %s| <= %g (%.9g vs %.9g)\n", __FILE__, __LINE__, #a, #b, \
            (double)(tol), _a, _b); tl_failed_cur = 1; } } while (0)
#define SKIP(...) do { snprintf(tl_skip_why, sizeof tl_skip_why, __VA_ARGS__); tl_skipped_cur = 1; return; } while (0)

static void tl_run(const char *name, void (*fn)(void)) {
    tl_failed_cur = 0; tl_skipped_cur = 0; tl_checks_cur = 0;
    fn();
    if (tl_skipped_cur && !tl_failed_cur) { printf("ok - %s # SKIP %s\n", name, tl_skip_why); tl_n_skip++; }
    else if (tl_failed_cur) { printf("not ok - %s\n", name); tl_n_fail++; }
    else if (tl_checks_cur == 0) { printf("not ok - %s (no checks ran)\n", name); tl_n_fail++; }
    else { printf("ok - %s\n", name); tl_n_pass++; }
    fflush(stdout);
}
#define RUN(fn) tl_run(#fn, fn)

static int test_summary(void) {
    if (tl_n_pass + tl_n_fail + tl_n_skip == 0) { printf("not ok - no test ran\n"); tl_n_fail++; }
    printf("# %d passed, %d failed, %d skipped\n", tl_n_pass, tl_n_fail, tl_n_skip);
    return tl_n_fail ? 1 : 0;
}

#endif
