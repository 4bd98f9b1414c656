/* test_util_select.c - kth_smallest (common/util.h) against a sort: every k of random arrays with
 * many ties and without, sizes 1..200, plus the all-equal and already-sorted edge cases. */
#include "common/util.h"
#include "tests/testlib.h"

#include <stdlib.h>
#include <string.h>

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* every k of v[0..n) against qsort; returns how many agreed */
static int64_t check_all_k(const float *v, int64_t n, const char *what) {
    float *sorted = malloc((size_t)n * sizeof(float)), *work = malloc((size_t)n * sizeof(float));
    memcpy(sorted, v, (size_t)n * sizeof(float));
    qsort(sorted, (size_t)n, sizeof(float), cmp_float);
    int64_t ok = 0;
    for (int64_t k = 0; k < n; k++) {
        memcpy(work, v, (size_t)n * sizeof(float));
        float got = kth_smallest(work, n, k);
        if (got != sorted[k]) { CHECK_MSG(0, "%s n %lld k %lld: %g, sorted %g", what, (long long)n, (long long)k, got, sorted[k]); break; }
        ok++;
    }
    free(sorted);
    free(work);
    return ok;
}

static void test_against_sort(void) {
    srand(7);
    float v[200];
    int64_t want = 0, ok = 0;
    for (int64_t n = 1; n <= 200; n += (n < 20 ? 1 : 17)) {
        for (int64_t i = 0; i < n; i++) v[i] = (float)rand() / (float)RAND_MAX - 0.5f;
        ok += check_all_k(v, n, "distinct");
        for (int64_t i = 0; i < n; i++) v[i] = (float)(rand() % 5);   /* many ties */
        ok += check_all_k(v, n, "ties");
        want += 2 * n;
    }
    for (int i = 0; i < 50; i++) v[i] = 3.0f;
    ok += check_all_k(v, 50, "all equal");
    for (int i = 0; i < 50; i++) v[i] = (float)i;
    ok += check_all_k(v, 50, "ascending");
    for (int i = 0; i < 50; i++) v[i] = (float)(50 - i);
    ok += check_all_k(v, 50, "descending");
    want += 150;
    CHECK_EQ_INT(ok, want);
}

int main(void) {
    RUN(test_against_sort);
    return test_summary();
}
