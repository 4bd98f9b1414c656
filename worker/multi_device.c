/* multi_device.c - `cisweep worker --devices all|LIST`: one worker daemon process per device on a
 * multi-GPU node (issue 15). `all` means every visible CUDA device (CUDA_VISIBLE_DEVICES, which
 * Slurm sets to a task's GPUs, is honoured by the runtime); LIST is comma-separated device strings
 * (`cuda:0,cuda:2`, or `cpu,cpu` for two CPU workers). Each child is this program again with
 * `--device D --cache CACHE/D` (and `--id ID-D` when an id was given), so each keeps its own spool
 * and its own identity. The parent forwards SIGTERM/SIGINT/SIGHUP to every child (each preempts its
 * job), restarts a child that dies abnormally while not stopping (after 2 s), and exits 0 when
 * every child exited 0. */
#include "worker/daemon.h"
#include "worker/engine/backend.h"
#include "common/log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_DEV 64

static volatile sig_atomic_t got_signal = 0;
static void on_signal(int s) { got_signal = s; }

/* parse the spec into devs (malloc'd strings); returns the count, -1 with a message on error */
static int parse_devices(const char *spec, char **devs, int max) {
    int n = 0;
    if (!strcmp(spec, "all")) {
        cis_err err = {0};
        for (int k = 0; k < max; k++) {
            char d[32];
            snprintf(d, sizeof d, "cuda:%d", k);
            if (!backend_device_ok(d, &err)) break;
            devs[n++] = xstrdup(d);
        }
        if (n == 0) {
            fprintf(stderr, "cisweep-worker worker: --devices all: no GPU is visible (%s)\n"
                            "---> HINT: on a CPU machine use --device cpu, or --devices cpu,cpu for several CPU workers\n", err.msg);
            return -1;
        }
        return n;
    }
    char *copy = xstrdup(spec), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        cis_err err = {0};
        if (n == max) { fprintf(stderr, "cisweep-worker worker: --devices: at most %d devices\n", max); goto bad; }
        if (!backend_device_ok(t, &err)) { fprintf(stderr, "cisweep-worker worker: --devices: \"%s\": %s\n", t, err.msg); goto bad; }
        devs[n++] = xstrdup(t);
    }
    free(copy);
    if (n == 0) { fprintf(stderr, "cisweep-worker worker: --devices expects all or a comma-separated list such as cuda:0,cuda:1, got \"%s\"\n", spec); return -1; }
    return n;
bad:
    free(copy);
    for (int i = 0; i < n; i++) free(devs[i]);
    return -1;
}

static pid_t spawn(char **orig_argv, int argc, const char *dev, int index, const char *cache, const char *id) {
    /* orig_argv: [program, "worker", options...]; drop --devices/--device/--cache/--id and their values */
    char **av = xcalloc((size_t)argc + 10, sizeof *av);
    int k = 0;
    av[k++] = orig_argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = orig_argv[i];
        if ((!strcmp(a, "--devices") || !strcmp(a, "--device") || !strcmp(a, "--cache") || !strcmp(a, "--id")) && i + 1 < argc) { i++; continue; }
        av[k++] = orig_argv[i];
    }
    char dname[64];
    snprintf(dname, sizeof dname, "%s", dev);
    for (char *p = dname; *p; p++) if (*p == ':') *p = '-';
    /* two children on the same device string (cpu,cpu) need their own cache and id */
    char *cdir = xasprintf("%s/%s.%d", cache, dname, index);
    char *cid = id ? xasprintf("%s-%s.%d", id, dname, index) : NULL;
    av[k++] = "--device"; av[k++] = (char *)dev;
    av[k++] = "--cache"; av[k++] = cdir;
    if (cid) { av[k++] = "--id"; av[k++] = cid; }
    av[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", index);
        setenv("CISWEEP_DEVICE_INDEX", idx, 1);
        execv("/proc/self/exe", av);
        fprintf(stderr, "cisweep-worker: execv: %s\n", strerror(errno));
        _exit(127);
    }
    free(cdir);
    free(cid);
    free(av);
    return pid;
}

int worker_devices_main(const char *spec, int argc, char **orig_argv, const char *cache, const char *id) {
    char *devs[MAX_DEV];
    int n = parse_devices(spec, devs, MAX_DEV);
    if (n < 0) return 2;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    pid_t pids[MAX_DEV];
    int status[MAX_DEV];
    for (int i = 0; i < n; i++) {
        pids[i] = spawn(orig_argv, argc, devs[i], i, cache, id);
        status[i] = -1;
        LOG_I("device %s: worker process %d", devs[i], (int)pids[i]);
    }
    int running = n, forwarded = 0;
    while (running > 0) {
        if (got_signal && !forwarded) {
            LOG_I("signal %d: forwarding to %d worker processes", (int)got_signal, running);
            for (int i = 0; i < n; i++) if (pids[i] > 0) kill(pids[i], (int)got_signal);
            forwarded = 1;
        }
        int st = 0;
        pid_t p = waitpid(-1, &st, WNOHANG);   /* polled: a signal between the check and a blocking wait is never missed */
        if (p == 0) { usleep(50000); continue; }
        if (p < 0) { if (errno == EINTR) continue; break; }
        for (int i = 0; i < n; i++) {
            if (pids[i] != p) continue;
            bool clean = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            if (!clean && !got_signal) {
                LOG_W("device %s: worker %d %s %d; restarting it in 2 s", devs[i], (int)p, WIFEXITED(st) ? "exited with" : "died of signal",
                      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                for (int t = 0; t < 20 && !got_signal; t++) usleep(100000);
                if (!got_signal) { pids[i] = spawn(orig_argv, argc, devs[i], i, cache, id); break; }
            }
            status[i] = clean ? 0 : 1;
            pids[i] = 0;
            running--;
        }
    }
    int rc = 0;
    for (int i = 0; i < n; i++) { if (status[i] != 0) rc = 1; free(devs[i]); }
    return rc;
}
