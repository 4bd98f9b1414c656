/* protocol.h - the coordinator <-> worker wire protocol (ZeroMQ ROUTER/DEALER).
 *
 * A message is the multipart frames   [empty] [tag] [command] [body]
 * (the ROUTER sees the worker's routing id in front). tag = "CISW" + protocol version ("CISW1");
 * command = one of the names below; body = a compact JSON object (jansson). Every field of every
 * command is validated on receipt (proto_validate): a malformed message is reported with what was
 * wrong and dropped by the caller, never trusted. Unknown fields are ignored (forward compatible);
 * a different protocol version is refused with a message naming both versions.
 *
 *   worker -> coordinator                      coordinator -> worker
 *   HELLO  {worker, host, device, backend,     WELCOME {heartbeat_ms, liveness, coordinator}
 *           memory_mb, free_mb, version, pid,   JOB     {job, attempt, model, model_path,
 *           free_mb_source?, slots, results_epoch?,
 *           running:{job,attempt}|null,              composition:[stages], key, edit_set,
 *           held:[{job,attempt}],                       lease_ms, timeout_ms,
 *                                                       recompress?: "paper"|"never"|"always"|"mask"}
 *           spooled:[{job,attempt}]}
 *   READY  {slots, prefixes?}                  HEARTBEAT {}
 *   HEARTBEAT {job?, attempt?, progress?, held?}
 *   RESULT {job, attempt, rows:{metric:num},   ACK     {job, attempt, of:"RESULT"|"FAILED"|
 *           run_ms, stages?:[stage], prefixes?,                             "PREEMPTED"}
 *           artifacts?:[artifact]}
 *   FAILED {job, attempt, error, log_tail,     CANCEL  {job, attempt, reason}
 *           retryable}                         RECONNECT {reason}   (unknown peer: say HELLO)
 *   PREEMPTED {job, attempt}                   BYE {reason, final?}
 *   BYE {reason}
 * READY.slots is how many more jobs the worker takes now (one running + prefetched ones queued
 * behind it); RESULT and FAILED each free one slot without a READY; after a PREEMPTED (the worker
 * is stopping, or had no room) it gets no job until READY or a HELLO with slots. HELLO.held and
 * HEARTBEAT.held list every job the worker holds (running and queued) so that their leases stay
 * alive and survive a coordinator restart. HELLO.slots is how many jobs the worker holds at most
 * (its capacity is known from HELLO on; absent = none until READY). HELLO.spooled lists the
 * outcomes in the worker's spool (finished while the coordinator was away; the messages follow
 * WELCOME), so that their attempts are not declared lost. RESULT, FAILED, PREEMPTED and HEARTBEAT
 * are accepted only from the worker that holds the lease of that attempt.
 * HELLO.prefixes, READY.prefixes, HEARTBEAT.prefixes and RESULT.prefixes (optional, at most PREFIX_MAX_ADVERT = 64
 * keys of 64 lowercase hex characters, common/prefix_key.h) list the stage-prefix snapshots the
 * worker holds (worker/snapshot.h), most recently used first; the coordinator prefers handing it
 * the pending jobs that start with one of them (issue 12: shared work done once).
 * HELLO.results_epoch is the worker build's CISWEEP_RESULTS_EPOCH (common/version.h: which
 * generation of presets and algorithms its results come from); a coordinator of another epoch
 * answers BYE {reason, final: true} and leases it nothing, so that one sweep never mixes results of
 * two epochs (absent: a build from before the field, accepted; its result rows carry the epoch). A
 * worker told BYE with final true stops instead of reconnecting (docs/orchestration.md "Results
 * epoch").
 * HELLO.free_mb (MiB) is the memory the worker offers to jobs (issue 15: the coordinator leases
 * it only jobs whose estimated need fits, coordinator/mem_need.h); it binds for a non-cpu backend,
 * and for a cpu one only with free_mb_source "option" (--report-free-mb; default "measured").
 * Metric values that are not finite travel as the strings "nan", "inf", "-inf".
 * RESULT.stages (optional; absent for the baseline) lists what ran, one object per stage of the
 * plan in order: {stage (1, 2, ...), method, params (the effective params), of_stage?, category?,
 * recompress?, seed?, record?:{...}, phases_s?:{phase: seconds}, wall_ms?} (worker/interventions/
 * record.h); the coordinator stores them in the `stages` table.
 * RESULT.artifacts (optional; a prerequisite job's, worker/prereq.c) lists the files the job
 * published in the shared artifact cache: {key (16-128 lowercase hex), kind ([a-z0-9_]{1,64}),
 * path (relative to the artifact root, no ".."), sha256 (64 hex), bytes (>= 0), layer?}, at most
 * PROTO_MAX_ARTIFACTS; the coordinator stores them in the `artifacts` table. */
#ifndef CISWEEP_PROTOCOL_H
#define CISWEEP_PROTOCOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include "common/util.h"

#define PROTO_VERSION 1
#define PROTO_TAG "CISW1"
#define PROTO_MAX_ID 255          /* routing id bytes */
#define PROTO_MAX_BODY (1 << 20)  /* bytes: the largest body of any command (RESULT, JOB); the
                                     sockets' ZMQ_MAXMSGSIZE is this + PROTO_MAX_FRAME_SLACK, so
                                     libzmq drops a peer that announces a bigger frame before
                                     reading it */
#define PROTO_MAX_FRAME_SLACK 4096

/* proto_max_body: the largest body accepted for cmd, in bytes (a RESULT or a JOB is kilobytes:
 * 1 MiB; FAILED 256 KiB for its error and log tail; HELLO 64 KiB; HEARTBEAT and the small control
 * messages 80 KiB at most, room for their 64 KiB reason strings). */
size_t proto_max_body(int cmd);
#define PROTO_MAX_SPOOLED 256    /* HELLO.spooled entries */
#define PROTO_MAX_ARTIFACTS 64     /* RESULT.artifacts: one per statistics layer (MEMIT_STATS_MAX_LAYERS) */
#define PROTO_MAX_STAGES 129      /* RESULT.stages: a 64-stage composition, re-applied stages and more */

typedef enum proto_cmd {
    PROTO_INVALID = 0,
    PROTO_HELLO, PROTO_WELCOME, PROTO_READY, PROTO_JOB, PROTO_HEARTBEAT, PROTO_RESULT,
    PROTO_FAILED, PROTO_PREEMPTED, PROTO_ACK, PROTO_CANCEL, PROTO_RECONNECT, PROTO_BYE,
    PROTO_N_CMDS
} proto_cmd;

const char *proto_cmd_name(proto_cmd c);  /* "HELLO", ...; "INVALID" */
proto_cmd proto_cmd_parse(const char *s, size_t n);

typedef struct proto_msg {
    char peer[PROTO_MAX_ID + 1]; /* routing id (ROUTER side), NUL-terminated; "" on the DEALER */
    size_t peer_len;
    proto_cmd cmd;
    json_t *body;                /* owned; proto_msg_clear frees it */
    size_t nbytes;               /* bytes of all its frames on the wire (proto_recv) */
} proto_msg;

/* proto_msg_clear: free the body and empty *m (NULL-safe; cmd becomes PROTO_INVALID). */
void proto_msg_clear(proto_msg *m);

/* proto_send: send one message. `peer` (ROUTER side) is the routing id to route to, NULL on a
 * DEALER. body is borrowed (not stolen); NULL sends "{}". flags: 0 or ZMQ_DONTWAIT.
 * Returns 0, or -1 with err (EHOSTUNREACH for an unknown peer with ROUTER_MANDATORY, EAGAIN...). */
int proto_send(void *sock, const char *peer, size_t peer_len, proto_cmd cmd, json_t *body, int flags,
               cis_err *err);

/* proto_recv: receive one whole multipart message (all its frames are consumed even when it is
 * invalid). router: expect a routing id frame first. flags: 0 (block) or ZMQ_DONTWAIT.
 * Returns 1 with a validated *out; 0 when nothing was waiting (DONTWAIT) or on EINTR; -1 when a
 * message arrived but was malformed: err says what was wrong (out->peer names the sender when
 * known) — the caller logs and drops it. */
int proto_recv(void *sock, bool router, int flags, proto_msg *out, cis_err *err);

/* proto_decode: frames -> message (used by proto_recv; exposed for tests and fuzzing).
 * frames[i]/lens[i] are the frames after the routing id. */
int proto_decode(const void *const *frames, const size_t *lens, size_t n_frames, proto_msg *out,
                 cis_err *err);

/* proto_validate: check that body holds every required field of cmd with the right type and range
 * (ids > 0, attempt >= 1, progress in [0,1], strings bounded, rows values numeric or nan/inf). */
int proto_validate(proto_cmd cmd, json_t *body, cis_err *err);

/* typed getters for validated bodies (return the default when the field is absent) */
long long proto_int(json_t *body, const char *key, long long dflt);
double proto_num(json_t *body, const char *key, double dflt);
const char *proto_str(json_t *body, const char *key, const char *dflt);
bool proto_bool(json_t *body, const char *key, bool dflt);

/* metric value <-> JSON: finite numbers as numbers, others as "nan"/"inf"/"-inf" */
json_t *proto_metric_value(double v);
int proto_metric_parse(json_t *v, double *out);

#endif
