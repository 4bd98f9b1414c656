/* spool.h - the worker's on-disk spool of outcome messages (RESULT, FAILED, PREEMPTED) not yet
 * acknowledged by the coordinator. A message is written (atomically, fsync'd) before it is sent
 * and removed when its ACK arrives, so a result survives a lost connection, a coordinator restart
 * and a worker restart (it is resent after the next WELCOME). Files: DIR/<job>-<attempt>.msg
 * holding {"cmd": "RESULT", "body": {...}}. */
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

int spool_init(const char *dir, cis_err *err);
int spool_put(const char *dir, int64_t job, int attempt, proto_cmd cmd, json_t *body, cis_err *err);
void spool_remove(const char *dir, int64_t job, int attempt);
/* spool_list: every readable item (unreadable files are renamed *.bad and logged). */
int spool_list(const char *dir, spool_item **items, size_t *n, cis_err *err);
void spool_items_free(spool_item *items, size_t n);

#endif
