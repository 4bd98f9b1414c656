/* daemon.h - the worker daemon: `cisweep worker --connect ENDPOINT --device cpu|cuda:N --cache DIR`.
 *
 * Two threads. The network thread (the caller's) owns the DEALER socket: HELLO/WELCOME, READY,
 * heartbeats both ways (any traffic counts), reconnects with exponential backoff (1 s doubling to
 * 32 s) when the coordinator is silent for heartbeat x liveness, resends the spool after every
 * WELCOME, and turns signals into preemption. The job thread lives as long as the daemon and runs
 * one job at a time (runner.c): it takes the job handed over under a mutex and condition
 * variable, and signals completion by writing a byte to a pipe whose read end the network thread
 * polls beside the DEALER socket, so the network thread never waits on work.
 * A failing job becomes FAILED with the error and a log tail; the daemon never exits because of a
 * bad job. SIGTERM/SIGINT/SIGHUP: stop the job at its next check point, report PREEMPTED, wait
 * for the ACK (bounded), say BYE, return. */
#ifndef CISWEEP_WORKER_DAEMON_H
#define CISWEEP_WORKER_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include "common/util.h"

typedef struct worker_opts {
    const char *connect;        /* coordinator endpoint, e.g. tcp://head:5555 */
    const char *device;         /* "cpu" or "cuda:N" */
    const char *cache_dir;      /* spool and caches live here */
    const char *artifacts_dir;  /* reusable intervention files (MEMIT statistics) that workers may
                                   share: content-addressed, written atomically; NULL = cache_dir */
    const char *id;             /* worker id; NULL = host/device/boot-nonce */
    bool selftest;              /* accept selftest jobs (test fixture) */
    const char *data_dir;       /* evaluation data (a `cisweep world` dir or real data in that layout) */
    int threads;                /* compute threads for jobs (0 = all cores) */
    int eval_limit;             /* > 0: evaluate at most N items per set (smoke runs, tests) */
    int stage_evals;            /* > 0: after every stage of a plan but the last, MMLU/WMDP on N
                                   questions and N perplexity windows (rows "stage<k>.<metric>");
                                   0 = off (--stage-evals N; runner.c) */
    bool skip_missing_data;     /* skip an evaluation dataset absent from data_dir (default: the job
                                   fails naming the expected file) */
    const char *eval_profile;   /* --eval-profile default|paper (NULL = default; docs/eval.md) */
    const char *mc_prompt;      /* --mc-prompt 0.4.2|0.4.4: overrides the profile's (NULL = the profile's) */
    bool eval_open;             /* --eval-open: the final evaluation adds the open_* rows (eval_opts.open_answer) */
    bool eval_cloze;            /* --eval-cloze: the final evaluation adds the cloze_* rows (eval_opts.cloze) */
    int heartbeat_ms;           /* until WELCOME says otherwise (default 1000) */
    int liveness;               /* idem (default 5) */
    int max_backoff_ms;         /* reconnect backoff cap (default 32000) */
    int preempt_grace_ms;       /* how long a stopping job may take before we give up (default 10000) */
    int snapshot_mb;            /* MiB of prefix snapshots kept (worker/snapshot.h; default 1024;
                                   0 = off: every job starts from the base weights) */
    int slots;                  /* jobs held at once: 1 running + (slots-1) prefetched (default 2, max 8) */
    int64_t report_free_mb;     /* --report-free-mb N (>= 0): the memory (MiB) offered to jobs in HELLO.free_mb,
                                   instead of the device's measured free memory (a cuda device: the smaller of
                                   the two); it also constrains a cpu worker, which is otherwise unconstrained.
                                   -1 = not given (default); docs/cluster.md "Scheduling by device memory" */
    const char *curve_key;      /* our CURVE .key file (cisweep keygen); NULL = no CURVE */
    const char *server_key;     /* the coordinator's .pub file (with curve_key) */
    volatile int *stop_flag;    /* set by signal handlers */
} worker_opts;

enum { WORKER_EXIT_OK = 0, WORKER_EXIT_RESTART = 3 };

void worker_opts_defaults(worker_opts *o);
/* worker_daemon_run: serve until a signal; returns WORKER_EXIT_OK, WORKER_EXIT_RESTART (a job
 * hung past cancellation: the caller re-executes the daemon to get a clean job thread), or -1
 * with err when it cannot start (bad endpoint, spool directory not writable) or when the
 * coordinator refused it for good (BYE with final true, e.g. another results epoch: the
 * coordinator's reason in err). */
int worker_daemon_run(const worker_opts *o, cis_err *err);
void worker_install_signals(volatile int *flag);

#endif
