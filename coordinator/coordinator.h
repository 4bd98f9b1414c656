/* coordinator.h - the coordinator daemon: a ZeroMQ ROUTER loop over the SQLite job store.
 *
 * It leases jobs to workers that said READY, extends leases on heartbeats, records results,
 * failures and preemptions, detects dead workers (no traffic for heartbeat_ms x liveness) and
 * expired leases, requeues or quarantines their jobs, and sends CANCEL for jobs that were
 * cancelled or completed elsewhere. The DB is written only by this loop, in group commits: each
 * batch of messages is applied in one BEGIN IMMEDIATE ... COMMIT and the replies (JOB, ACK) are
 * sent only after the commit. SIGTERM/SIGINT stop it cleanly (commit, checkpoint, close). */
#ifndef CISWEEP_COORDINATOR_H
#define CISWEEP_COORDINATOR_H

#include <stdbool.h>
#include <stdint.h>
#include "common/util.h"

typedef struct coord_opts {
    const char *db_path;     /* sweep.db (must exist: `cisweep launch` creates it) */
    const char *bind;        /* e.g. "tcp://0.0.0.0:5555", "ipc:///tmp/x.sock" */
    int heartbeat_ms;        /* interval of heartbeats both ways (default 1000) */
    int liveness;            /* a worker silent for heartbeat_ms*liveness is dead (default 5) */
    int lease_ms;            /* lease length, extended by each heartbeat (default 30000) */
    int resume_grace_ms;     /* on start, leases of running jobs are kept this long (default lease_ms) */
    int quarantine_after;    /* lost attempts (worker deaths) before a job is dead (default 3) */
    int64_t job_timeout_ms;  /* a job running longer is cancelled and counted lost (0 = none) */
    bool exit_when_done;     /* stop when no job is pending or leased (the local launcher) */
    bool nosync;             /* synchronous=NORMAL (tests only) */
    volatile int *stop_flag; /* set to non-zero (e.g. by a signal handler) to stop; may be NULL */
    /* authentication (issue 13): CURVE on the socket, and a ZAP handler that admits only the
     * listed worker public keys. Without curve_key the coordinator binds to loopback (or ipc,
     * inproc) only, unless insecure_bind_any. */
    const char *curve_key;   /* the coordinator's .key file (cisweep keygen); NULL = no CURVE */
    const char *allow_keys;  /* directory of worker *.pub files, or a file of keys */
    bool insecure_bind_any;  /* allow a non-loopback bind without keys (says so at start) */
    volatile int *reload_flag; /* set (SIGHUP) to reload allow_keys; may be NULL */
} coord_opts;

void coord_opts_defaults(coord_opts *o);

/* coordinator_run: serve until stopped (or done with exit_when_done). Returns 0 on a clean stop,
 * -1 with err when it cannot start (DB missing or newer schema, endpoint in use). */
int coordinator_run(const coord_opts *o, cis_err *err);

/* install SIGTERM/SIGINT/SIGHUP handlers that set *flag (the caller's stop flag). */
void coord_install_signals(volatile int *flag);

#endif
