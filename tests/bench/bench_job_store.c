/* bench_job_store.c - the job store's own dispatch cost, without the network: N zero-work
 * selftest jobs claimed and resolved (claim + result with 3 metrics) in commits of 64, as the
 * coordinator batches them, once with synchronous=FULL (the default) and once with NORMAL
 * (JS_NOSYNC). Prints us/job, jobs/s and the split claim / result / commit. The end-to-end
 * dispatch rate over ZeroMQ is tests/bench/bench_dispatch.py; the correctness of this loop is
 * test_claim_result_batches in tests/coordinator/test_job_store.c.
 * Built by `make tests-build`, run by `make bench` (tests/bench/run.sh), never by `make test`.
 * Usage: bench_job_store [JOBS]   (default 4000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/grid.h"
#include "coordinator/job_store.h"

static grid *selftest_grid(const char *dir, int n) {
    char *gp = xasprintf("%s/grid.json", dir), *txt = xasprintf(
        "{\"name\": \"bench\", \"models\": [\"m1\"], \"selftest\": {\"count\": %d, \"params\": {}}}", n);
    cis_err err = {0};
    grid *g = NULL;
    if (write_file_replace(gp, txt, strlen(txt), &err) || grid_load(gp, GRID_ALLOW_SELFTEST, &g, &err))
        fprintf(stderr, "bench_job_store: %s\n", err.msg);
    free(gp); free(txt);
    return g;
}

/* 1: every claim goes through js_claim_prefer with one held stage prefix that no job starts with
 * (issue 12, shared work done once): a full scan of the pending jobs per claim, the worst case,
 * which the coordinator meets once per exhausted prefix (coordinator/prefix_sched.c) */
static int g_prefix_mode;

/* claim + result per job, commits of `batch`; 0, or -1 after printing the error */
static int run_one(const char *dir, int n, unsigned flags, const char *what) {
    const int batch = 64;
    static int serial;
    char *p = xasprintf("%s/b%d.db", dir, ++serial);
    job_store *js = NULL;
    cis_err err = {0};
    grid *g = selftest_grid(dir, n);
    int rc = -1;
    if (!g || job_store_open(p, JS_CREATE | flags, &js, &err) || js_launch(js, g, NULL, NULL, 1000, NULL, &err))
        goto out;
    js_metric m[3] = {{"mmlu", 0.5}, {"wmdp_bio", 0.25}, {"wmdp_cyber", 0.3}};
    double t0 = mono_sec(), t_claim = 0, t_result = 0, t_commit = 0;
    int done = 0;
    for (bool more = true; more;) {
        if (js_begin(js, &err)) goto out;
        for (int k = 0; k < batch; k++) {
            js_job j;
            double a = mono_sec();
            js_prefix pre = {"m1", "m1", "[{\"method\":\"gptq\"", -1, 0, false};
            int c = g_prefix_mode ? js_claim_prefer(js, "w1", "m1", &pre, 1, 2000, 30000, &j, &err)
                                  : js_claim(js, "w1", "m1", 2000, 30000, &j, &err);
            double b = mono_sec();
            t_claim += b - a;
            if (c < 0) goto out;
            if (c == 0) { more = false; break; }
            int oc;
            int r = js_record_result(js, j.id, j.attempt, "w1", m, 3, NULL, 0, 1, 2000, &oc, NULL, &err);
            js_job_clear(&j);
            if (r < 0) goto out;
            t_result += mono_sec() - b;
            done++;
        }
        double c = mono_sec();
        if (js_commit(js, &err)) goto out;
        t_commit += mono_sec() - c;
    }
    double dt = mono_sec() - t0;
    if (done != n) { err_set(&err, CIS_ESTATE, "%d of %d jobs done", done, n); goto out; }
    printf("| %s | %d | %.1f | %.0f | %.1f | %.1f | %.1f |\n", what, done, dt * 1e6 / done, done / dt,
           t_claim * 1e6 / done, t_result * 1e6 / done, t_commit * 1e6 / done);
    fflush(stdout);
    rc = 0;
out:
    if (rc) fprintf(stderr, "bench_job_store (%s): %s\n", what, err.msg);
    job_store_close(&js);
    grid_free(&g);
    free(p);
    return rc;
}

int main(int argc, char **argv) {
    int64_t n = 4000;
    if (argc > 1 && (!parse_i64(argv[1], &n) || n < 1 || n > 10000000)) {
        fprintf(stderr, "usage: bench_job_store [JOBS]   (1..10000000, default 4000)\n");
        return 2;
    }
    char dir[] = "/tmp/bench_job_store.XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
    printf("# job store: %lld zero-work jobs, claim + result (3 metrics), commits of 64, WAL\n", (long long)n);
    printf("| synchronous | jobs | us/job | jobs/s | claim us | result us | commit us |\n|---|---|---|---|---|---|---|\n");
    int rc = run_one(dir, (int)n, 0, "FULL") || run_one(dir, (int)n, JS_NOSYNC, "NORMAL");
    g_prefix_mode = 1;
    if (!rc) rc = run_one(dir, (int)n, JS_NOSYNC, "NORMAL, + a held prefix no job has (full scan per claim)");
    char *cmd = xasprintf("rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    free(cmd);
    return rc ? 1 : 0;
}
