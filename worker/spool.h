/* spool.h - the worker's on-disk spool of outcome messages (RESULT, FAILED, PREEMPTED) that the
 * coordinator has not acknowledged yet. Written before the message is sent, forgotten when its ACK
 * arrives, so a result survives a lost connection, a coordinator restart and a worker crash or
 * restart: it is resent after the next WELCOME.
 *
 * Format: one append-only journal file DIR/spool.journal (the zguide's Titanic advice: a single
 * append-only file and an in-memory index rebuilt at start-up), one line per record:
 *   P {"cmd":"RESULT","body":{...}}\n      a message put in the spool
 *   A <job> <attempt>\n                    its acknowledgement
 * On open the journal is replayed (a torn last line from a crash is skipped and logged), the
 * unacknowledged messages are kept in memory, and the journal is rewritten compacted. Appends are
 * write(2)s without fsync: they survive a process crash (the page cache), not a power loss — a
 * power loss at worst re-runs the job (at-least-once execution; the coordinator requeues it). */
#ifndef CISWEEP_WORKER_SPOOL_H
#define CISWEEP_WORKER_SPOOL_H

#include <jansson.h>
#include <stdint.h>
#include "common/protocol.h"

typedef struct spool_item {
    int64_t job;
    int attempt;
    proto_cmd cmd;
    json_t *body;     /* owned */
} spool_item;

typedef struct spool spool;

/* spool_open: create DIR if needed, replay and compact DIR/spool.journal. */
int spool_open(const char *dir, spool **out, cis_err *err);
void spool_close(spool **sp);
/* spool_put: journal the message (body borrowed) before sending it; replaces an earlier message
 * of the same (job, attempt). */
int spool_put(spool *sp, int64_t job, int attempt, proto_cmd cmd, json_t *body, cis_err *err);
/* spool_ack: the coordinator acknowledged (job, attempt): forget it (no-op when unknown). */
void spool_ack(spool *sp, int64_t job, int attempt);
/* the unacknowledged messages, oldest first (owned by the spool; valid until the next call) */
size_t spool_count(const spool *sp);
const spool_item *spool_at(const spool *sp, size_t i);

#endif
