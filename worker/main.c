/* main.c - `cisweep-worker`: the worker daemon and the model tools. `cisweep worker|inspect|...`
 * hands over to this program, so users learn one command.
 *   cisweep-worker worker --connect ENDPOINT [--device cpu|cuda:N] [--cache DIR] [--id ID]
 *                         [--data DIR] [--threads N] [--eval-limit N] [--stage-evals N] [--skip-missing-data]
 *                         [--eval-profile default|paper|sweep] [--mc-prompt 0.4.2|0.4.4] [--eval-open] [--eval-cloze]
 *                         [--slots N] [--selftest] [--heartbeat-ms N] [--liveness N] [--max-backoff-ms N]
 *                         [--preempt-grace-ms N] [--mem-limit-mb N] [--log-level L] */
#include "worker/daemon.h"
#include "worker/eval/eval.h"
#include "worker/engine/backend.h"
#include "common/log.h"
#include "common/version.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: cisweep-worker worker --connect ENDPOINT [--device cpu|cuda:N | --devices all|LIST] [--cache DIR] [--id ID]\n"
            "                             [--artifacts DIR] [--data DIR] [--threads N] [--selftest] [--heartbeat-ms N] [--liveness N]\n"
            "                             [--eval-limit N] [--stage-evals N] [--skip-missing-data] [--max-backoff-ms N]\n"
            "                             [--eval-profile default|paper|sweep] [--mc-prompt 0.4.2|0.4.4] [--eval-open] [--eval-cloze]\n"
            "                             [--preempt-grace-ms N] [--slots N] [--snapshot-mb N] [--mem-limit-mb N] [--log-level debug|info|warn|error]\n"
            "                             [--report-free-mb N]   (offer N MiB of device memory to jobs: a cap; see docs/cluster.md)\n"
            "                             [--curve-key KEY --server-key PUB]   (CURVE: our key pair, the coordinator's public key)\n"
            "       cisweep-worker world --out DIR [--seed S] [--scale small|default|large]\n"
            "       cisweep-worker train --world DIR --arch NAME --out MODEL_DIR [...]\n"
            "       cisweep-worker eval MODEL_DIR --world DIR [...]\n"
            "       cisweep-worker apply MODEL_DIR --stage JSON [--stage JSON ...] --out DIR [--data DIR] [--edit-set K] [...]\n"
            "       cisweep-worker inspect MODEL_DIR [--prompt TEXT] [--top K]\n"
            "       cisweep-worker overlap MODEL_DIR --data DIR   (forget-corpus token overlap of the MMLU / WMDP items)\n"
            "       cisweep-worker --version\n");
}

static int int_arg(const char *flag, const char *v, int64_t lo, int64_t *out) {
    if (!v || !parse_i64(v, out) || *out < lo || *out > INT_MAX) {
        fprintf(stderr, "cisweep-worker: %s expects an integer from %lld to %d, got \"%s\"\n", flag, (long long)lo, INT_MAX,
                v ? v : "");
        return -1;
    }
    return 0;
}

/* under Slurm (SLURM_JOB_ID set) the default worker id names the Slurm job, so that `cisweep status`
 * shows which Slurm job each worker is: host/device/slurm-ARRAYJOB_TASK.rRESTART (or slurm-JOB.rN),
 * with .dK appended for the K-th child of --devices.
 * The restart count keeps a requeued task's id distinct from its previous run's. */
static bool slurm_worker_id(const char *device, char *out, size_t n) {
    const char *job = getenv("SLURM_JOB_ID"), *arr = getenv("SLURM_ARRAY_JOB_ID"), *task = getenv("SLURM_ARRAY_TASK_ID");
    const char *restart = getenv("SLURM_RESTART_COUNT");
    const char *idx = getenv("CISWEEP_DEVICE_INDEX");   /* set by --devices for each child process */
    if (!job || !*job) return false;
    char host[64] = "host", dx[24] = "";
    gethostname(host, sizeof host - 1);
    if (idx && *idx) snprintf(dx, sizeof dx, ".d%s", idx);
    if (arr && *arr && task && *task) snprintf(out, n, "%s/%s/slurm-%s_%s.r%s%s", host, device, arr, task, restart && *restart ? restart : "0", dx);
    else snprintf(out, n, "%s/%s/slurm-%s.r%s%s", host, device, job, restart && *restart ? restart : "0", dx);
    return true;
}

static int cmd_worker(int argc, char **argv, char **orig_argv) {
    worker_opts o;
    worker_opts_defaults(&o);
    int64_t mem_limit = 0, v;
    const char *devices = NULL;
    bool device_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--connect") && n) { o.connect = n; i++; }
        else if (!strcmp(a, "--device") && n) { o.device = n; i++; device_given = true; }
        else if (!strcmp(a, "--devices") && n) { devices = n; i++; }   /* multi_device.c (issue 15) */
        else if (!strcmp(a, "--cache") && n) { o.cache_dir = n; i++; }
        else if (!strcmp(a, "--artifacts") && n) { o.artifacts_dir = n; i++; }
        else if (!strcmp(a, "--id") && n) { o.id = n; i++; }
        else if (!strcmp(a, "--curve-key") && n) { o.curve_key = n; i++; }
        else if (!strcmp(a, "--server-key") && n) { o.server_key = n; i++; }
        else if (!strcmp(a, "--selftest")) o.selftest = true;
        else if (!strcmp(a, "--data") && n) { o.data_dir = n; i++; }
        else if (!strcmp(a, "--skip-missing-data")) o.skip_missing_data = true;
        else if (!strcmp(a, "--eval-open")) o.eval_open = true;   /* the open_* rows (docs/eval.md "Open answers") */
        else if (!strcmp(a, "--eval-cloze")) o.eval_cloze = true; /* the cloze_* rows (docs/eval.md "Cloze") */
        else if (!strcmp(a, "--eval-profile")) { /* docs/eval.md "Profiles" */
            eval_profile p;
            if (eval_profile_parse(n, &p)) { fprintf(stderr, "cisweep-worker: --eval-profile expects default, paper or sweep, got \"%s\"\n", n ? n : ""); return 2; }
            o.eval_profile = n; i++;
        } else if (!strcmp(a, "--mc-prompt")) {
            mc_prompt_style st;
            if (mc_prompt_style_parse(n, &st)) { fprintf(stderr, "cisweep-worker: --mc-prompt expects 0.4.2 or 0.4.4 (lm-eval's version), got \"%s\"\n", n ? n : ""); return 2; }
            o.mc_prompt = n; i++;
        }
        else if (!strcmp(a, "--threads")) { if (int_arg(a, n, 0, &v)) return 2; o.threads = (int)v; i++; }
        else if (!strcmp(a, "--eval-limit")) { if (int_arg(a, n, 0, &v)) return 2; o.eval_limit = (int)v; i++; }
        else if (!strcmp(a, "--stage-evals")) { if (int_arg(a, n, 0, &v)) return 2; o.stage_evals = (int)v; i++; }
        else if (!strcmp(a, "--heartbeat-ms")) { if (int_arg(a, n, 10, &v)) return 2; o.heartbeat_ms = (int)v; i++; }
        else if (!strcmp(a, "--liveness")) { if (int_arg(a, n, 1, &v)) return 2; o.liveness = (int)v; i++; }
        else if (!strcmp(a, "--max-backoff-ms")) { if (int_arg(a, n, 10, &v)) return 2; o.max_backoff_ms = (int)v; i++; }
        else if (!strcmp(a, "--preempt-grace-ms")) { if (int_arg(a, n, 0, &v)) return 2; o.preempt_grace_ms = (int)v; i++; }
        else if (!strcmp(a, "--slots")) { if (int_arg(a, n, 1, &v) || v > 8) { if (v > 8) fprintf(stderr, "cisweep-worker: --slots is at most 8\n"); return 2; } o.slots = (int)v; i++; }
        else if (!strcmp(a, "--snapshot-mb")) { if (int_arg(a, n, 0, &v)) return 2; o.snapshot_mb = (int)v; i++; }
        else if (!strcmp(a, "--report-free-mb")) { if (int_arg(a, n, 0, &v)) return 2; o.report_free_mb = v; i++; }
        else if (!strcmp(a, "--mem-limit-mb")) { if (int_arg(a, n, 1, &mem_limit)) return 2; i++; }
        else if (!strcmp(a, "--log-level") && n) {
            int l = log_level_parse(n);
            if (l < 0) { fprintf(stderr, "cisweep-worker: --log-level expects debug|info|warn|error\n"); return 2; }
            log_set_level((enum log_level)l); i++;
        } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        else { fprintf(stderr, "cisweep-worker worker: unknown or incomplete option \"%s\"\n", a); usage(stderr); return 2; }
    }
    if (!o.connect) { fprintf(stderr, "cisweep-worker worker: --connect ENDPOINT is required\n"); usage(stderr); return 2; }
    if (!o.curve_key != !o.server_key) {
        fprintf(stderr, "cisweep-worker worker: --curve-key KEY and --server-key PUB go together (our key pair and the "
                        "coordinator's public key)\n");
        return 2;
    }
    if (devices) {
        extern int worker_devices_main(const char *spec, int argc, char **orig_argv, const char *cache, const char *id);
        if (device_given) { fprintf(stderr, "cisweep-worker worker: --devices and --device exclude each other\n"); return 2; }
        return worker_devices_main(devices, argc + 1, orig_argv, o.cache_dir, o.id);
    }
    cis_err derr = {0};
    if (!backend_device_ok(o.device, &derr)) {
        fprintf(stderr, "cisweep-worker worker: --device: %s\n", derr.msg);
        return 2;
    }
    if (mem_limit > 0) {
        struct rlimit rl = {(rlim_t)mem_limit << 20, (rlim_t)mem_limit << 20};
        if (setrlimit(RLIMIT_AS, &rl) != 0) perror("cisweep-worker: setrlimit(RLIMIT_AS)");
    }
    static char slurm_id[192];
    if (!o.id && slurm_worker_id(o.device, slurm_id, sizeof slurm_id)) o.id = slurm_id;
    static volatile int stop = 0;
    worker_install_signals(&stop);
    o.stop_flag = &stop;
    cis_err err = {0};
    int rc = worker_daemon_run(&o, &err);
    if (rc < 0) { LOG_E("%s", err.msg); return 1; }
    if (rc == WORKER_EXIT_RESTART) {
        LOG_W("re-executing the worker");
        execv("/proc/self/exe", orig_argv);
        LOG_E("re-exec failed; exiting so that a supervisor restarts us");
        return 3;
    }
    return 0;
}

int main(int argc, char **argv) {
    log_init("worker");
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--version")) { printf("cisweep-worker %s\n", cisweep_version()); return 0; }
    if (!strcmp(argv[1], "worker")) return cmd_worker(argc - 1, argv + 1, argv);
    if (!strcmp(argv[1], "world")) { extern int cmd_world(int argc, char **argv); return cmd_world(argc - 1, argv + 1); }
    if (!strcmp(argv[1], "eval")) { extern int cmd_eval(int argc, char **argv); return cmd_eval(argc - 1, argv + 1); }
    if (!strcmp(argv[1], "apply")) { extern int cmd_apply(int argc, char **argv); return cmd_apply(argc - 1, argv + 1); }
    if (!strcmp(argv[1], "inspect")) { extern int cmd_inspect(int argc, char **argv); return cmd_inspect(argc - 1, argv + 1); }
    if (!strcmp(argv[1], "train")) { extern int cmd_train(int argc, char **argv); return cmd_train(argc - 1, argv + 1); }
    if (!strcmp(argv[1], "overlap")) { extern int cmd_overlap(int argc, char **argv); return cmd_overlap(argc - 1, argv + 1); }
    if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) { usage(stdout); return 0; }
    fprintf(stderr, "cisweep-worker: unknown command \"%s\"\n", argv[1]);
    usage(stderr);
    return 2;
}
