/* prefix_sched.h - the coordinator's side of shared work done once (issue 12 item 2): which stage
 * prefixes each connected worker holds a snapshot of (it lists their keys in RESULT/READY/
 * HEARTBEAT.prefixes; worker/snapshot.h), and what those keys stand for (noted when a job is
 * leased: its model, the canonical text of its first k stages and the seed they use; the key is
 * computed by common/prefix_key.h, the same function the worker uses). dispatch() turns a worker's
 * held keys into js_prefix preferences for js_claim_prefer, most recently used first. In memory
 * only: after a coordinator restart a worker's holdings are learned again from its next RESULT. */
#ifndef CISWEEP_COORDINATOR_PREFIX_SCHED_H
#define CISWEEP_COORDINATOR_PREFIX_SCHED_H

#include <jansson.h>

#include "coordinator/job_store.h"

typedef struct prefix_sched prefix_sched;

#define PREFIX_SCHED_PER_WORKER 16   /* held keys considered per claim (each is one indexed scan) */
#define PREFIX_SCHED_TABLE 4096      /* prefixes remembered (oldest forgotten first) */

prefix_sched *prefix_sched_new(void);
void prefix_sched_free(prefix_sched **p);           /* NULL-safe; *p = NULL */
/* prefix_sched_note_job: remember the prefixes (prefix_kept) of a job just leased: model slot name,
 * model path as sent in the JOB, its canonical stage array, its edit set. */
void prefix_sched_note_job(prefix_sched *p, const char *model, const char *model_path, json_t *canonical, int edit_set);
/* prefix_sched_worker_held: a worker's message listed `prefixes` (a validated array of keys, most
 * recent first; NULL = the message had none: nothing changes). */
void prefix_sched_worker_held(prefix_sched *p, const char *worker_id, json_t *prefixes);
/* prefix_sched_anticipate: a job was just leased to worker_id: once it has run, the worker holds
 * its kept prefixes, so they are preferred now, before the keys it listed (its prefetched claim and
 * the ones after it need not wait for the RESULT that lists them). The prefixes of the last 4 jobs
 * leased to it are kept apart from its listing (a RESULT of an earlier job replaces the listing,
 * not these). Only for a worker that said it keeps snapshots (a HELLO/RESULT with a prefixes
 * field). A stale one costs nothing: a claim finds its jobs or marks it exhausted. */
void prefix_sched_anticipate(prefix_sched *p, const char *worker_id, const char *model_path, json_t *canonical,
                             int edit_set);
/* prefix_sched_worker_gone: forget a worker's holdings (it left or was lost: its memory is gone). */
void prefix_sched_worker_gone(prefix_sched *p, const char *worker_id);
/* prefix_sched_for: the preferences of worker_id for the next claim, at most max, into out (its
 * pointers stay valid until the next note_job / free), leaving out the prefixes known to have no
 * runnable job left. Returns how many. */
int prefix_sched_for(prefix_sched *p, const char *worker_id, js_prefix *out, int max);
/* prefix_sched_claimed: after js_claim_prefer with those preferences (before any note_job): the
 * prefixes it found no job for are left out of later preferences until a job with that prefix is
 * leased again (a job requeued after a failure, or launched later, then runs in the usual order:
 * the preference is an optimisation, never a condition). */
void prefix_sched_claimed(prefix_sched *p, const js_prefix *pre, int n);

#endif
