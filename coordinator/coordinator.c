/* coordinator.c - the ROUTER loop: leases, heartbeats, results, requeues (see coordinator.h).
 *
 * One thread. Each turn of the loop: poll (timeout <= one tick; the ZAP handler of CURVE is served
 * here too), read up to BATCH messages / TURN_MAX_BYTES / TURN_MAX_READ_S,
 * BEGIN IMMEDIATE, apply each message inside its own SAVEPOINT (a message whose writes fail is
 * rolled back alone), run the periodic checks (dead workers, expired leases, job time limits),
 * lease jobs to ready workers, COMMIT, then send every reply that the commit made true. */
#include "coordinator/coordinator.h"
#include "coordinator/prefix_sched.h"
#include "coordinator/job_store.h"
#include "common/curve.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/spec.h"
#include "common/version.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define BATCH 512
#define TURN_MAX_BYTES (8 << 20) /* bytes read per loop turn at most (then the turn's work runs) */
#define TURN_MAX_READ_S 0.05     /* seconds spent reading per loop turn at most */
#define MAX_SLOTS 8
#define MAX_BAD_LOGS_PER_10S 20

void coord_opts_defaults(coord_opts *o) {
    memset(o, 0, sizeof *o);
    o->heartbeat_ms = 1000;
    o->liveness = 5;
    o->lease_ms = 30000;
    o->resume_grace_ms = 0; /* 0 = lease_ms */
    o->quarantine_after = 3;
}

void coord_install_signals(volatile int *flag) { install_stop_signals(flag); }

/* ---- in-memory view of connected workers (the DB has the durable one) ------------------- */
typedef struct cworker {
    char id[PROTO_MAX_ID + 1];
    size_t id_len;
    int capacity;             /* jobs it may hold (running + prefetched), from READY */
    int njobs;                /* jobs it holds now */
    int64_t jobs[MAX_SLOTS];  /* held (job, attempt) pairs */
    int atts[MAX_SLOTS];
    int64_t head_since;       /* mono ms when jobs[0] (the running one) became the head */
    int64_t db_seen;          /* mono ms of the last_recv last written to workers.last_seen */
    bool zombie;              /* its running job was cancelled and has not stopped yet: it still
                                 occupies a slot, and every job in jobs[] is queued behind it */
    char model[128];          /* model of its last job (affinity) */
    int64_t offer_mb;         /* device memory it offers to jobs (HELLO.free_mb, MiB); -1 = unconstrained */
    bool draining;            /* it handed a job back (PREEMPTED): no new job until READY or HELLO,
                                 even once the job it still runs has finished */
    int64_t last_recv;        /* mono ms */
    int64_t last_send;        /* mono ms */
} cworker;

typedef struct outmsg {
    char peer[PROTO_MAX_ID + 1];
    size_t peer_len;
    proto_cmd cmd;
    json_t *body;
} outmsg;

typedef struct unsent {       /* a JOB whose send failed after its lease was committed */
    int64_t job;
    int attempt;
    char worker[PROTO_MAX_ID + 1];
} unsent;

typedef struct coord {
    const coord_opts *o;
    job_store *js;
    void *zctx, *sock;
    void *zap;                /* ZAP handler (REP on inproc://zeromq.zap.01) when CURVE is on */
    curve_allow allow;        /* the worker public keys it admits */
    int64_t n_denied;
    cworker *w;
    size_t nw, capw;
    outmsg *out;
    size_t nout, capout;
    unsent *uns;              /* handed back (pending, budget untouched) at the next turn */
    size_t nuns, capuns;
    int64_t next_tick;
    int64_t idle_until;       /* mono ms: no runnable job was found; skip claims until then */
    int bad_logged;
    int64_t bad_window;
    int64_t n_bad;
    int refused_logged;       /* refusals logged in the current 10 s window */
    int64_t refused_window;
    int64_t n_refused;
    char boot[32];
    prefix_sched *ps;         /* the stage prefixes workers hold (shared work done once) */
    int64_t unfit_logged;     /* mono ms of the last "no worker fits" warning */
    /* loop statistics, logged at exit (seconds / counts) */
    int64_t st_batches, st_msgs, st_commits;
    double st_handle, st_dispatch, st_commit, st_send, st_poll;
} coord;

static cworker *worker_find(coord *c, const char *id, size_t len) {
    for (size_t i = 0; i < c->nw; i++)
        if (c->w[i].id_len == len && memcmp(c->w[i].id, id, len) == 0) return &c->w[i];
    return NULL;
}

static cworker *worker_add(coord *c, const char *id, size_t len) {
    if (c->nw == c->capw) {
        c->capw = c->capw ? 2 * c->capw : 16;
        c->w = xrealloc(c->w, c->capw * sizeof *c->w);
    }
    cworker *w = &c->w[c->nw++];
    memset(w, 0, sizeof *w);
    memcpy(w->id, id, len);
    w->id[len] = 0;
    w->id_len = len;
    w->offer_mb = -1; /* until its HELLO says otherwise */
    return w;
}

static void worker_remove(coord *c, cworker *w) {
    size_t i = (size_t)(w - c->w);
    c->w[i] = c->w[--c->nw];
}

static void held_add(cworker *w, int64_t job, int att) {
    if (w->njobs == 0) w->head_since = mono_ms();
    if (w->njobs < MAX_SLOTS) { w->jobs[w->njobs] = job; w->atts[w->njobs] = att; w->njobs++; }
}
/* forget (job, attempt) (attempt 0 = any attempt); returns whether it was held */
static bool held_drop(cworker *w, int64_t job, int att) {
    for (int i = 0; i < w->njobs; i++)
        if (w->jobs[i] == job && (att == 0 || w->atts[i] == att)) {
            /* keep the order: the worker runs its jobs first in, first out, so jobs[0] is running */
            memmove(&w->jobs[i], &w->jobs[i + 1], (size_t)(w->njobs - i - 1) * sizeof *w->jobs);
            memmove(&w->atts[i], &w->atts[i + 1], (size_t)(w->njobs - i - 1) * sizeof *w->atts);
            w->njobs--;
            if (i == 0) w->head_since = mono_ms();
            return true;
        }
    return false;
}

static void queue(coord *c, const char *peer, size_t len, proto_cmd cmd, json_t *body) {
    if (c->nout == c->capout) {
        c->capout = c->capout ? 2 * c->capout : 64;
        c->out = xrealloc(c->out, c->capout * sizeof *c->out);
    }
    outmsg *m = &c->out[c->nout++];
    memcpy(m->peer, peer, len);
    m->peer[len] = 0;
    m->peer_len = len;
    m->cmd = cmd;
    m->body = body; /* stolen */
}

static void flush_out(coord *c) {
    int64_t t = mono_ms();
    for (size_t i = 0; i < c->nout; i++) {
        outmsg *m = &c->out[i];
        cis_err err = {0};
        if (proto_send(c->sock, m->peer, m->peer_len, m->cmd, m->body, ZMQ_DONTWAIT, &err) == 0) {
            cworker *w = worker_find(c, m->peer, m->peer_len);
            if (w) w->last_send = t;
        } else {
            LOG_W("%s", err.msg);
            if (m->cmd == PROTO_JOB) {
                /* the lease is committed but the worker never gets the job (it disconnected):
                 * hand it back at the next turn instead of waiting for the lease to expire */
                if (c->nuns == c->capuns) {
                    c->capuns = c->capuns ? 2 * c->capuns : 16;
                    c->uns = xrealloc(c->uns, c->capuns * sizeof *c->uns);
                }
                unsent *u = &c->uns[c->nuns++];
                u->job = proto_int(m->body, "job", 0);
                u->attempt = (int)proto_int(m->body, "attempt", 0);
                snprintf(u->worker, sizeof u->worker, "%s", m->peer);
            }
        }
        json_decref(m->body);
    }
    c->nout = 0;
}

static void drop_out(coord *c) {
    for (size_t i = 0; i < c->nout; i++) json_decref(c->out[i].body);
    c->nout = 0;
}

static json_t *jobref(int64_t job, int attempt) {
    return json_pack("{s:I,s:i}", "job", (json_int_t)job, "attempt", attempt);
}

/* the worker that (job, attempt) was leased to (attempts.worker_id) into out; "" when unknown */
static void attempt_holder(coord *c, int64_t job, int attempt, char out[256]) {
    out[0] = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(job_store_db(c->js), "SELECT worker_id FROM attempts WHERE job_id = ?1 AND attempt = ?2",
                           -1, &st, NULL) != SQLITE_OK) return;
    sqlite3_bind_int64(st, 1, job);
    sqlite3_bind_int(st, 2, attempt);
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
        snprintf(out, 256, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
}

/* a message about a lease that its sender does not hold: refused, never applied. Logged and
 * recorded (events.kind 'refused') at most MAX_BAD_LOGS_PER_10S times per 10 s, like malformed
 * messages, so a hostile peer cannot fill the log or the database. */
/* whether one more rejection may be logged and recorded now (MAX_BAD_LOGS_PER_10S per 10 s) */
static bool reject_budget(coord *c) {
    c->n_refused++;
    int64_t t = mono_ms();
    if (t - c->refused_window > 10000) { c->refused_window = t; c->refused_logged = 0; }
    return c->refused_logged++ < MAX_BAD_LOGS_PER_10S;
}

static void refused(coord *c, const cworker *w, proto_cmd cmd, int64_t job, int attempt, const char *holder) {
    if (!reject_budget(c)) return;
    char d[600];
    snprintf(d, sizeof d, "%s for job %lld attempt %d from \"%s\" refused: that attempt is %s%s%s",
             proto_cmd_name(cmd), (long long)job, attempt, w->id, holder[0] ? "leased to \"" : "not leased",
             holder, holder[0] ? "\"" : "");
    LOG_W("%s", d);
    js_event(c->js, now_ms(), "refused", job, w->id, d, NULL);
}

static void send_cancel(coord *c, const char *worker_id, int64_t job, int attempt, const char *why) {
    cworker *w = worker_find(c, worker_id, strlen(worker_id));
    if (!w) return;
    if (w->njobs > 0 && w->jobs[0] == job && w->atts[0] == attempt && !w->zombie) w->zombie = true;
    held_drop(w, job, attempt);
    json_t *b = jobref(job, attempt);
    json_object_set_new(b, "reason", json_string(why));
    queue(c, w->id, w->id_len, PROTO_CANCEL, b);
    LOG_I("cancel job %lld attempt %d on %s: %s", (long long)job, attempt, worker_id, why);
}

/* ---- message handlers (inside the batch transaction) ------------------------------------ */

static int on_hello(coord *c, proto_msg *m, cis_err *err) {
    json_t *b = m->body;
    const char *wid = proto_str(b, "worker", "");
    if (strlen(wid) != m->peer_len || memcmp(wid, m->peer, m->peer_len) != 0) {
        LOG_W("HELLO from %s claims worker id \"%s\": the routing id must equal the worker id; dropped",
              m->peer, wid);
        queue(c, m->peer, m->peer_len, PROTO_BYE, json_pack("{s:s}", "reason", "routing id != worker id"));
        return 0;
    }
    int64_t now = now_ms();
    /* a worker of another results epoch (common/version.h) would put results of other presets or
     * algorithms into this coordinator's sweeps: refused for good (BYE final), before it holds
     * anything here; its leases from an earlier registration, if any, expire as usual */
    json_t *wep = json_object_get(b, "results_epoch");
    if (wep && json_integer_value(wep) != CISWEEP_RESULTS_EPOCH) {
        char *why = xasprintf("results epoch %lld of worker \"%s\" (host %s, version %s) is not this coordinator's "
                              "%d: its results would be mixed with results of other presets or algorithms in one "
                              "sweep; run the workers with the coordinator's build",
                              (long long)json_integer_value(wep), wid, proto_str(b, "host", "?"),
                              proto_str(b, "version", "?"), CISWEEP_RESULTS_EPOCH);
        LOG_E("HELLO refused: %s", why);
        if (js_event(c->js, now, "refused", 0, wid, why, err)) { free(why); return -1; }
        queue(c, m->peer, m->peer_len, PROTO_BYE, json_pack("{s:s,s:b}", "reason", why, "final", 1));
        free(why);
        cworker *old = worker_find(c, m->peer, m->peer_len);
        if (old) { old->capacity = 0; old->draining = true; } /* a rejoin under its id: leased nothing more */
        return 0;
    }
    cworker *w = worker_find(c, m->peer, m->peer_len);
    bool rejoin = w != NULL;
    if (!w) w = worker_add(c, m->peer, m->peer_len);
    w->last_recv = mono_ms();
    prefix_sched_worker_gone(c->ps, w->id); /* what it holds now, from HELLO.prefixes (absent: none) */
    prefix_sched_worker_held(c->ps, w->id, json_object_get(b, "prefixes"));
    /* capacity is known from HELLO onwards (HELLO.slots: jobs it holds at most, running and
     * prefetched): a worker whose slots are all taken sends no READY after WELCOME, and would
     * otherwise never be given another job after a coordinator restart. A HELLO without slots
     * (a draining worker, an old one) gets nothing until READY. */
    int hs = (int)proto_int(b, "slots", 0);
    w->capacity = hs > MAX_SLOTS ? MAX_SLOTS : hs;
    w->draining = false;
    js_worker_info wi = {.id = wid, .host = proto_str(b, "host", ""), .device = proto_str(b, "device", ""),
                         .backend = proto_str(b, "backend", ""), .version = proto_str(b, "version", ""),
                         .memory_mb = proto_int(b, "memory_mb", 0), .free_mb = proto_int(b, "free_mb", -1),
                         .pid = proto_int(b, "pid", 0)};
    /* the same process as before (same host and pid) or a restarted one? A live process that does
     * not list a lease never received that JOB (lost in transit: the coordinator died before
     * sending it, or the worker's connection was replaced): the job never started there */
    bool same_process = false;
    sqlite3_stmt *ps = NULL;
    if (wi.pid > 0 && sqlite3_prepare_v2(job_store_db(c->js), "SELECT pid = ?2 AND host = ?3 FROM workers WHERE id = ?1",
                                         -1, &ps, NULL) == SQLITE_OK) {
        sqlite3_bind_text(ps, 1, wid, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ps, 2, wi.pid);
        sqlite3_bind_text(ps, 3, wi.host, -1, SQLITE_TRANSIENT);
        same_process = sqlite3_step(ps) == SQLITE_ROW && sqlite3_column_int(ps, 0) == 1;
    }
    sqlite3_finalize(ps);
    if (js_worker_seen(c->js, &wi, now, err)) return -1;
    /* its memory offer (issue 15): a device's free memory binds; a cpu worker's free RAM does not,
     * unless the worker was given --report-free-mb (free_mb_source "option") */
    const char *src = proto_str(b, "free_mb_source", "measured");
    if (strcmp(src, "measured") && strcmp(src, "option")) {
        LOG_W("HELLO from %s: free_mb_source must be \"measured\" or \"option\", got \"%.40s\"; taken as measured",
              wid, src);
        src = "measured";
    }
    bool by_option = !strcmp(src, "option");
    w->offer_mb = wi.free_mb >= 0 && (by_option || strcmp(wi.backend, "cpu") != 0) ? wi.free_mb : -1;
    if (js_worker_offer(c->js, wid, w->offer_mb, src, now, err)) return -1;
    c->idle_until = 0; /* a worker with more memory may fit a job no one else could take */
    /* what does the DB think this worker holds, and what does the worker say it holds? */
    int64_t hj[MAX_SLOTS];
    int ha[MAX_SLOTS], nh = 0;
    json_t *run = json_object_get(b, "running"), *held = json_object_get(b, "held"), *it;
    size_t ix;
    if (json_is_object(run)) { hj[nh] = proto_int(run, "job", 0); ha[nh++] = (int)proto_int(run, "attempt", 0); }
    json_array_foreach(held, ix, it) {
        if (nh >= MAX_SLOTS) break;
        int64_t j = proto_int(it, "job", 0);
        int a = (int)proto_int(it, "attempt", 0);
        bool dup = false;
        for (int k = 0; k < nh; k++) dup |= hj[k] == j && ha[k] == a;
        if (!dup) { hj[nh] = j; ha[nh++] = a; }
    }
    /* outcomes in its spool: finished while we were away, their messages follow WELCOME. Their
     * attempts are not lost: the lease is renewed until the message arrives */
    json_t *spooled = json_object_get(b, "spooled");
    js_lease *ls = NULL;
    int nl = js_leases_of_worker(c->js, wid, &ls, err);
    if (nl < 0) return -1;
    /* what we knew it held before (a rejoin): the jobs queued behind its running one never started */
    int64_t qj[MAX_SLOTS];
    int qa[MAX_SLOTS], nq = 0;
    for (int k = w->zombie ? 0 : 1; rejoin && k < w->njobs; k++) { qj[nq] = w->jobs[k]; qa[nq++] = w->atts[k]; }
    /* no memory of it (we restarted too): a worker runs its jobs in lease order, so of the leases it
     * does not list (and has no outcome for) only the earliest leased was running; the later ones
     * were queued behind it */
    int64_t first_job = 0, first_at = INT64_MAX;
    if (!rejoin) {
        sqlite3_stmt *sa = NULL;
        /* lease order = the order of their 'leased' events (two leases of one turn share a timestamp) */
        if (sqlite3_prepare_v2(job_store_db(c->js), "SELECT max(id) FROM events WHERE kind = 'leased' AND job_id = ?1 "
                               "AND attempt = ?2", -1, &sa, NULL) == SQLITE_OK) {
            for (int i = 0; i < nl; i++) {
                bool listed = false;
                for (int k = 0; k < nh; k++) listed |= ls[i].job_id == hj[k] && ls[i].attempt == ha[k];
                json_array_foreach(spooled, ix, it)
                    listed |= proto_int(it, "job", 0) == ls[i].job_id && proto_int(it, "attempt", 0) == ls[i].attempt;
                if (listed) continue;
                sqlite3_bind_int64(sa, 1, ls[i].job_id);
                sqlite3_bind_int(sa, 2, ls[i].attempt);
                int64_t at = sqlite3_step(sa) == SQLITE_ROW && sqlite3_column_type(sa, 0) != SQLITE_NULL
                                 ? sqlite3_column_int64(sa, 0) : INT64_MAX;
                sqlite3_reset(sa);
                if (at < first_at) { first_at = at; first_job = ls[i].job_id; }
            }
        }
        sqlite3_finalize(sa);
        for (int i = 0; i < nl && nq < MAX_SLOTS; i++)
            if (first_job && ls[i].job_id != first_job) { qj[nq] = ls[i].job_id; qa[nq++] = ls[i].attempt; }
    }
    w->njobs = 0;
    w->zombie = false;
    for (int i = 0; i < nl; i++) {
        bool says = false;
        for (int k = 0; k < nh; k++) says |= ls[i].job_id == hj[k] && ls[i].attempt == ha[k];
        if (says) continue;
        json_array_foreach(spooled, ix, it)
            says |= proto_int(it, "job", 0) == ls[i].job_id && proto_int(it, "attempt", 0) == ls[i].attempt;
        if (says) {
            if (js_heartbeat(c->js, ls[i].job_id, ls[i].attempt, wid, now, c->o->lease_ms, -1, err) < 0) {
                free(ls);
                return -1;
            }
            LOG_I("worker %s has the outcome of job %lld attempt %d in its spool: waiting for it", wid,
                  (long long)ls[i].job_id, ls[i].attempt);
            continue;
        }
        bool applied = false, queued = false;
        for (int k = 0; k < nq; k++) queued |= qj[k] == ls[i].job_id && qa[k] == ls[i].attempt;
        if (queued && !same_process) {
            if (js_record_preempted(c->js, ls[i].job_id, ls[i].attempt, wid, now, &applied, err)) { free(ls); return -1; }
            LOG_I("job %lld attempt %d was queued on worker %s, which restarted: requeued, attempt not spent",
                  (long long)ls[i].job_id, ls[i].attempt, wid);
        } else if (same_process) {
            if (js_record_preempted(c->js, ls[i].job_id, ls[i].attempt, wid, now, &applied, err)) { free(ls); return -1; }
            LOG_W("job %lld attempt %d never reached worker %s (same process, it does not hold it): requeued, "
                  "attempt not spent", (long long)ls[i].job_id, ls[i].attempt, wid);
        } else {
            if (js_record_lost(c->js, ls[i].job_id, ls[i].attempt, "worker_restarted", now, c->o->quarantine_after,
                               &applied, err)) { free(ls); return -1; }
            LOG_W("worker %s re-registered (a new process) without job %lld attempt %d: attempt lost", wid,
                  (long long)ls[i].job_id, ls[i].attempt);
        }
        if (applied) c->idle_until = 0;
    }
    free(ls);
    for (int k = 0; k < nh; k++) {
        int cur = js_heartbeat(c->js, hj[k], ha[k], wid, now, c->o->lease_ms, -1, err);
        if (cur < 0) return -1;
        if (cur) held_add(w, hj[k], ha[k]);
        else send_cancel(c, wid, hj[k], ha[k], "lease no longer held");
    }
    LOG_I("worker %s %s (host %s, device %s, %s%s)", wid, rejoin ? "rejoined" : "joined",
          proto_str(b, "host", "?"), proto_str(b, "device", "?"), proto_str(b, "version", "?"),
          w->njobs ? ", still holding its jobs" : "");
    queue(c, m->peer, m->peer_len, PROTO_WELCOME,
          json_pack("{s:i,s:i,s:s}", "heartbeat_ms", c->o->heartbeat_ms, "liveness", c->o->liveness,
                    "coordinator", c->boot));
    return 0;
}

static int hb_one(coord *c, cworker *w, int64_t job, int att, double progress, cis_err *err) {
    int cur = js_heartbeat(c->js, job, att, w->id, now_ms(), c->o->lease_ms, progress, err);
    if (cur < 0) return -1;
    if (!cur) {
        char holder[256];
        attempt_holder(c, job, att, holder);
        if (strcmp(holder, w->id) != 0) refused(c, w, PROTO_HEARTBEAT, job, att, holder);
        send_cancel(c, w->id, job, att, "lease no longer held (cancelled, timed out or done elsewhere)");
        held_drop(w, job, att);
    }
    return 0;
}

static int on_heartbeat(coord *c, cworker *w, proto_msg *m, cis_err *err) {
    int64_t job = proto_int(m->body, "job", 0);
    if (job && hb_one(c, w, job, (int)proto_int(m->body, "attempt", 0), proto_num(m->body, "progress", -1), err))
        return -1;
    json_t *held = json_object_get(m->body, "held"), *it;
    size_t i;
    json_array_foreach(held, i, it) {
        int64_t hjob = proto_int(it, "job", 0);
        if (hjob == job) continue;
        if (hb_one(c, w, hjob, (int)proto_int(it, "attempt", 0), -1, err)) return -1;
    }
    return 0;
}

/* RESULT.stages (validated by proto_validate) -> js_stage rows; the JSON texts are canonical and
 * malloc'd: free with free_stages */
static js_stage *result_stages(json_t *body, size_t *n) {
    json_t *arr = json_object_get(body, "stages");
    *n = json_array_size(arr);
    if (*n == 0) return NULL;
    js_stage *s = xcalloc(*n, sizeof *s);
    for (size_t i = 0; i < *n; i++) {
        json_t *o = json_array_get(arr, i), *rec = json_object_get(o, "record"), *ph = json_object_get(o, "phases_s");
        s[i].stage = (int)proto_int(o, "stage", 0);
        s[i].of_stage = (int)proto_int(o, "of_stage", s[i].stage);
        s[i].method = proto_str(o, "method", NULL);
        s[i].category = proto_str(o, "category", NULL);
        s[i].recompress = proto_bool(o, "recompress", false);
        s[i].params_json = spec_dump_canonical(json_object_get(o, "params"));
        s[i].seed = proto_int(o, "seed", -1);
        s[i].record_json = rec ? spec_dump_canonical(rec) : NULL;
        s[i].phases_json = ph ? spec_dump_canonical(ph) : NULL;
        s[i].wall_ms = proto_int(o, "wall_ms", -1);
    }
    return s;
}

static void free_stages(js_stage *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free((char *)s[i].params_json);
        free((char *)s[i].record_json);
        free((char *)s[i].phases_json);
    }
    free(s);
}

/* RESULT.artifacts (validated by proto_validate) -> `artifacts` rows of the job (a prerequisite
 * job's statistics files; worker/prereq.c) */
static int result_artifacts(coord *c, int64_t job, json_t *body, cis_err *err) {
    json_t *arr = json_object_get(body, "artifacts");
    size_t n = json_array_size(arr);
    if (n == 0) return 0;
    js_artifact *a = xcalloc(n, sizeof *a);
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        a[i] = (js_artifact){proto_str(o, "key", NULL), proto_str(o, "kind", NULL), proto_str(o, "path", NULL),
                             proto_str(o, "sha256", NULL), proto_int(o, "bytes", -1)};
    }
    int rc = js_record_artifacts(c->js, job, a, n, now_ms(), err);
    free(a);
    return rc;
}

static int on_result(coord *c, cworker *w, proto_msg *m, cis_err *err) {
    int64_t job = proto_int(m->body, "job", 0);
    int att = (int)proto_int(m->body, "attempt", 0);
    json_t *rows = json_object_get(m->body, "rows");
    size_t n = json_object_size(rows), i = 0;
    js_metric *mv = xcalloc(n ? n : 1, sizeof *mv);
    const char *k;
    json_t *v;
    json_object_foreach(rows, k, v) {
        mv[i].name = k;
        proto_metric_parse(v, &mv[i].value);
        i++;
    }
    int outcome = 0;
    char other[256] = "";
    cis_err e2 = {0};
    size_t ns = 0;
    js_stage *sv = result_stages(m->body, &ns);
    int rc = js_record_result(c->js, job, att, w->id, mv, n, sv, ns, proto_int(m->body, "run_ms", -1), now_ms(),
                              &outcome, other, &e2);
    free(mv);
    free_stages(sv, ns);
    if (!rc && result_artifacts(c, job, m->body, &e2)) rc = -1;
    if (rc && e2.code == CIS_EPERM) {
        /* a stranger's result: refused, nothing stored; acknowledged so that a worker that came back
         * under a new id stops resending the result of its previous life (the job runs again) */
        char holder[256];
        attempt_holder(c, job, att, holder);
        refused(c, w, PROTO_RESULT, job, att, holder);
    } else if (rc) {
        if (e2.code != CIS_ESTATE) { *err = e2; return -1; }
        /* a result for an attempt this DB never leased: acknowledge so the worker drops it */
        if (reject_budget(c)) {
            LOG_W("RESULT from %s for job %lld attempt %d rejected: %s", w->id, (long long)job, att, e2.msg);
            js_event(c->js, now_ms(), "bad_result", job, w->id, e2.msg, NULL);
        }
    } else {
        if (other[0]) {
            int latest = js_job_attempt(c->js, job, NULL);
            if (latest > 0) send_cancel(c, other, job, latest, "another attempt finished first");
        }
        LOG_D("job %lld attempt %d done by %s (%s)", (long long)job, att, w->id,
              outcome == JS_RESULT_CURRENT ? "current" : outcome == JS_RESULT_SUPERSEDED ? "superseded" : "duplicate");
    }
    held_drop(w, job, att); /* an outcome frees the slot */
    queue(c, w->id, w->id_len, PROTO_ACK, json_pack("{s:I,s:i,s:s}", "job", (json_int_t)job, "attempt", att,
                                                    "of", "RESULT"));
    return 0;
}

/* an outcome that was not applied: true (and refused) when its sender is not the attempt's holder */
static bool not_holder(coord *c, const cworker *w, proto_cmd cmd, int64_t job, int att) {
    char holder[256];
    attempt_holder(c, job, att, holder);
    if (strcmp(holder, w->id) == 0) return false;
    refused(c, w, cmd, job, att, holder);
    return true;
}

static int on_failed(coord *c, cworker *w, proto_msg *m, cis_err *err) {
    int64_t job = proto_int(m->body, "job", 0);
    int att = (int)proto_int(m->body, "attempt", 0);
    bool applied = false;
    if (js_record_failure(c->js, job, att, w->id, proto_str(m->body, "error", ""), proto_str(m->body, "log_tail", ""),
                          proto_bool(m->body, "retryable", true), now_ms(), &applied, err)) return -1;
    if (applied) {
        c->idle_until = 0;
        LOG_I("job %lld attempt %d failed on %s: %s", (long long)job, att, w->id, proto_str(m->body, "error", ""));
    } else if (!not_holder(c, w, PROTO_FAILED, job, att)) {
        LOG_I("FAILED for job %lld attempt %d from %s ignored: that attempt is no longer leased", (long long)job, att,
              w->id);
    }
    held_drop(w, job, att); /* an outcome frees the slot */
    queue(c, w->id, w->id_len, PROTO_ACK, json_pack("{s:I,s:i,s:s}", "job", (json_int_t)job, "attempt", att,
                                                    "of", "FAILED"));
    return 0;
}

static int on_preempted(coord *c, cworker *w, proto_msg *m, cis_err *err) {
    int64_t job = proto_int(m->body, "job", 0);
    int att = (int)proto_int(m->body, "attempt", 0);
    bool applied = false;
    if (js_record_preempted(c->js, job, att, w->id, now_ms(), &applied, err)) return -1;
    if (applied) {
        c->idle_until = 0;
        LOG_I("job %lld attempt %d preempted on %s: requeued, attempt not spent", (long long)job, att, w->id);
    } else if (!not_holder(c, w, PROTO_PREEMPTED, job, att)) {
        LOG_I("PREEMPTED for job %lld attempt %d from %s ignored: that attempt is no longer leased", (long long)job,
              att, w->id);
    }
    /* a worker hands jobs back when it stops: no more until it says READY (capacity alone would let
     * a new job in once its running job ends, hence draining). Only for a job this session gave
     * it: a PREEMPTED replayed from its spool (HELLO.spooled: handed back by the process before
     * this one, e.g. an interrupted `cisweep run`) says nothing about the worker now running */
    if (held_drop(w, job, att)) {
        w->capacity = w->njobs;
        w->draining = true;
    }
    queue(c, w->id, w->id_len, PROTO_ACK, json_pack("{s:I,s:i,s:s}", "job", (json_int_t)job, "attempt", att,
                                                    "of", "PREEMPTED"));
    return 0;
}

static int worker_lost(coord *c, cworker *w, const char *reason, cis_err *err) {
    int64_t now = now_ms();
    js_lease *ls = NULL;
    int nl = js_leases_of_worker(c->js, w->id, &ls, err);
    if (nl < 0) return -1;
    for (int i = 0; i < nl; i++) {
        bool applied = false;
        /* only the job it was running counts as lost (and towards quarantine); the ones prefetched
         * behind it never started: they go back to pending like a preemption, budget untouched */
        bool queued = false;
        for (int k = w->zombie ? 0 : 1; k < w->njobs; k++) queued |= w->jobs[k] == ls[i].job_id && w->atts[k] == ls[i].attempt;
        if (queued) {
            if (js_record_preempted(c->js, ls[i].job_id, ls[i].attempt, w->id, now, &applied, err)) { free(ls); return -1; }
            LOG_I("job %lld attempt %d was queued on worker %s (%s): requeued, attempt not spent",
                  (long long)ls[i].job_id, ls[i].attempt, w->id, reason);
        } else {
            if (js_record_lost(c->js, ls[i].job_id, ls[i].attempt, reason, now, c->o->quarantine_after, &applied,
                               err)) { free(ls); return -1; }
            LOG_W("job %lld attempt %d lost with worker %s (%s)", (long long)ls[i].job_id, ls[i].attempt, w->id, reason);
        }
        if (applied) c->idle_until = 0;
    }
    free(ls);
    if (js_worker_gone(c->js, w->id, now, reason, err)) return -1;
    /* a peer that never held a lease (a probe, a rogue, a misconfigured client) leaves no
     * permanent rows: its workers row and its joined/lost events go with it */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(job_store_db(c->js), "SELECT NOT EXISTS (SELECT 1 FROM attempts WHERE worker_id = ?1)",
                           -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, w->id, -1, SQLITE_TRANSIENT);
        bool never = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        const char *del[] = {"DELETE FROM events WHERE worker_id = ?1 AND kind IN ('worker_joined', 'worker_lost')",
                             "DELETE FROM worker_memory WHERE worker_id = ?1", /* it references the row */
                             "DELETE FROM workers WHERE id = ?1"};
        for (int k = 0; never && k < 3; k++) {
            if (sqlite3_prepare_v2(job_store_db(c->js), del[k], -1, &st, NULL) != SQLITE_OK) break;
            sqlite3_bind_text(st, 1, w->id, -1, SQLITE_TRANSIENT);
            sqlite3_step(st);
            sqlite3_finalize(st);
        }
    }
    LOG_W("worker %s gone: %s", w->id, reason);
    prefix_sched_worker_gone(c->ps, w->id);
    worker_remove(c, w);
    return 0;
}

static void bad_message(coord *c, proto_msg *m, const cis_err *e) {
    c->n_bad++;
    int64_t t = mono_ms();
    if (t - c->bad_window > 10000) { c->bad_window = t; c->bad_logged = 0; }
    if (c->bad_logged++ < MAX_BAD_LOGS_PER_10S) {
        char peer[64];
        size_t k = 0;
        for (size_t i = 0; i < m->peer_len && k + 4 < sizeof peer; i++) {
            unsigned char ch = (unsigned char)m->peer[i];
            if (ch >= 32 && ch < 127) peer[k++] = (char)ch;
            else k += (size_t)snprintf(peer + k, sizeof peer - k, "\\x%02x", ch);
        }
        peer[k] = 0;
        LOG_W("malformed message from peer \"%s\" dropped: %s", peer, e->msg);
        js_event(c->js, now_ms(), "bad_message", 0, NULL, e->msg, NULL);
    }
}

static int handle(coord *c, proto_msg *m, cis_err *err) {
    if (m->cmd == PROTO_HELLO) return on_hello(c, m, err);
    cworker *w = worker_find(c, m->peer, m->peer_len);
    if (!w) {
        /* unknown peer (e.g. we restarted): ask it to say HELLO; it then resends its spool */
        if (m->cmd != PROTO_BYE)
            queue(c, m->peer, m->peer_len, PROTO_RECONNECT, json_pack("{s:s}", "reason", "unknown worker: say HELLO"));
        return 0;
    }
    w->last_recv = mono_ms();
    prefix_sched_worker_held(c->ps, w->id, json_object_get(m->body, "prefixes")); /* READY/HEARTBEAT/RESULT */
    switch (m->cmd) {
    case PROTO_READY: {
        int slots = (int)proto_int(m->body, "slots", 1);
        w->zombie = false; /* READY follows the end of a cancelled job */
        w->draining = false;
        w->capacity = w->njobs + slots > MAX_SLOTS ? MAX_SLOTS : w->njobs + slots;
        return 0;
    }
    case PROTO_HEARTBEAT: return on_heartbeat(c, w, m, err);
    case PROTO_RESULT: return on_result(c, w, m, err);
    case PROTO_FAILED: return on_failed(c, w, m, err);
    case PROTO_PREEMPTED: return on_preempted(c, w, m, err);
    case PROTO_BYE:
        LOG_I("worker %s says BYE (%s)", w->id, proto_str(m->body, "reason", ""));
        return worker_lost(c, w, "worker_left", err);
    default:
        LOG_W("unexpected %s from worker %s dropped", proto_cmd_name(m->cmd), w->id);
        return 0;
    }
}

/* ---- periodic checks and dispatch -------------------------------------------------------- */

/* JOBs that could not be sent: back to pending without spending an attempt */
static int hand_back_unsent(coord *c, cis_err *err) {
    for (size_t i = 0; i < c->nuns; i++) {
        unsent *u = &c->uns[i];
        bool applied = false;
        if (js_record_preempted(c->js, u->job, u->attempt, u->worker, now_ms(), &applied, err)) return -1;
        cworker *w = worker_find(c, u->worker, strlen(u->worker));
        if (w) held_drop(w, u->job, u->attempt);
        if (applied) {
            c->idle_until = 0;
            LOG_W("job %lld attempt %d could not be sent to %s: requeued, attempt not spent", (long long)u->job,
                  u->attempt, u->worker);
        }
    }
    c->nuns = 0;
    return 0;
}

static int check_dead_workers(coord *c, cis_err *err) {
    int64_t t = mono_ms(), limit = (int64_t)c->o->heartbeat_ms * c->o->liveness;
    /* keep workers.last_seen and current_job fresh for `cisweep status` (at most once a second) */
    int64_t wall = now_ms();
    for (size_t i = 0; i < c->nw; i++) {
        cworker *w = &c->w[i];
        if (w->last_recv - w->db_seen < 1000) continue;
        w->db_seen = w->last_recv;
        if (js_worker_touch(c->js, w->id, wall - (t - w->last_recv), w->njobs ? w->jobs[0] : 0,
                            w->njobs ? "busy" : "idle", err)) return -1;
    }
    for (size_t i = 0; i < c->nw;) {
        if (t - c->w[i].last_recv > limit) {
            char why[96];
            snprintf(why, sizeof why, "worker_lost");
            if (worker_lost(c, &c->w[i], why, err)) return -1; /* removes w[i]: do not advance */
        } else i++;
    }
    return 0;
}

static int check_leases(coord *c, cis_err *err) {
    int64_t now = now_ms();
    js_lease *ls = NULL;
    int n = js_expired_leases(c->js, now, &ls, err);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        bool applied = false;
        if (js_record_lost(c->js, ls[i].job_id, ls[i].attempt, "lease_expired", now, c->o->quarantine_after,
                           &applied, err)) { free(ls); return -1; }
        if (applied) { c->idle_until = 0; send_cancel(c, ls[i].worker_id, ls[i].job_id, ls[i].attempt, "lease expired"); }
        cworker *w = worker_find(c, ls[i].worker_id, strlen(ls[i].worker_id));
        if (w) held_drop(w, ls[i].job_id, ls[i].attempt);
    }
    free(ls);
    if (c->o->job_timeout_ms > 0) {
        /* the time limit counts from when a job started running (it became the head of its
         * worker's queue), not from its lease: a prefetched job waits without running */
        int64_t t = mono_ms();
        for (size_t i = 0; i < c->nw; i++) {
            cworker *w = &c->w[i];
            if (w->njobs == 0 || w->zombie || t - w->head_since <= c->o->job_timeout_ms) continue;
            int64_t job = w->jobs[0];
            int att = w->atts[0];
            bool applied = false;
            if (js_record_lost(c->js, job, att, "timed_out", now, c->o->quarantine_after, &applied, err)) return -1;
            if (applied) c->idle_until = 0;
            send_cancel(c, w->id, job, att, "job exceeded its time limit"); /* also drops it from w */
        }
    }
    return 0;
}

/* the pending jobs that no connected worker can take for lack of memory: a warning at most every
 * 30 s while it lasts (`cisweep status` lists them too); nothing when some worker is unconstrained */
static void warn_unfit(coord *c) {
    int64_t t = mono_ms(), max = -1;
    if (c->nw == 0 || (c->unfit_logged && t - c->unfit_logged < 30000)) return;
    for (size_t i = 0; i < c->nw; i++) {
        if (c->w[i].offer_mb < 0) return;
        if (c->w[i].offer_mb > max) max = c->w[i].offer_mb;
    }
    js_unfit u[3];
    int64_t n = 0;
    cis_err e = {0};
    if (js_unfit_jobs(c->js, max, u, 3, &n, &e)) { LOG_W("%s", e.msg); return; }
    if (n == 0) return;
    c->unfit_logged = t;
    char list[512] = "";
    size_t off = 0;
    for (int i = 0; i < 3 && i < n && off < sizeof list; i++)
        off += (size_t)snprintf(list + off, sizeof list - off, "%sjob %lld needs %lld MiB (model %s, %s)", i ? "; " : "",
                                (long long)u[i].job_id, (long long)u[i].need_mb, u[i].model, u[i].kind);
    LOG_W("%lld pending job(s) need more device memory than any connected worker offers (the largest offer is "
          "%lld MiB): %s%s; they stay pending until a worker that fits connects", (long long)n, (long long)max, list,
          n > 3 ? "; ..." : "");
}

static int dispatch(coord *c, cis_err *err) {
    int64_t t = mono_ms();
    if (t < c->idle_until) return 0;
    int64_t now = now_ms();
    bool leased = false, starved = false;
    for (size_t i = 0; i < c->nw; i++) {
        cworker *w = &c->w[i];
        while (!w->draining && w->njobs + (w->zombie ? 1 : 0) < w->capacity) {
            js_job j;
            memset(&j, 0, sizeof j);
            js_prefix pre[PREFIX_SCHED_PER_WORKER];
            int npre = prefix_sched_for(c->ps, w->id, pre, PREFIX_SCHED_PER_WORKER);
            int got = js_claim_fit(c->js, w->id, w->model[0] ? w->model : NULL, pre, npre, w->offer_mb, now,
                                   c->o->lease_ms, &j, err);
            if (got >= 0) prefix_sched_claimed(c->ps, pre, npre);
            if (got < 0) return -1;
            if (got == 0 && w->offer_mb < 0) { c->idle_until = t + c->o->heartbeat_ms / 2; return 0; }
            if (got == 0) { starved = true; break; } /* nothing fits this worker: the next may take more */
            leased = true;
            json_error_t je;
            json_t *comp = json_loads(j.composition, 0, &je);
            if (!comp) {
                /* cannot happen for rows written by launch; fail the attempt instead of looping */
                char msg[300];
                snprintf(msg, sizeof msg, "stored composition is not JSON: %s", je.text);
                bool applied;
                js_record_failure(c->js, j.id, j.attempt, w->id, msg, "", false, now, &applied, NULL);
                js_job_clear(&j);
                continue;
            }
            json_t *b = json_pack("{s:I,s:i,s:s,s:s,s:o,s:s,s:i,s:i,s:I,s:s}", "job", (json_int_t)j.id, "attempt",
                                  j.attempt, "model", j.model, "model_path", j.model_path ? j.model_path : j.model,
                                  "composition", comp, "key", j.key, "edit_set", j.edit_set, "lease_ms",
                                  c->o->lease_ms, "timeout_ms", (json_int_t)c->o->job_timeout_ms, "recompress",
                                  j.recompress[0] ? j.recompress : "paper");
            prefix_sched_note_job(c->ps, j.model, j.model_path ? j.model_path : j.model, comp, j.edit_set);
            prefix_sched_anticipate(c->ps, w->id, j.model_path ? j.model_path : j.model, comp, j.edit_set);
            queue(c, w->id, w->id_len, PROTO_JOB, b);
            held_add(w, j.id, j.attempt);
            snprintf(w->model, sizeof w->model, "%s", j.model);
            js_job_clear(&j);
        }
    }
    /* only memory-bound workers found nothing: wait as for an empty queue, and say why jobs wait */
    if (starved && !leased) {
        c->idle_until = t + c->o->heartbeat_ms / 2;
        warn_unfit(c);
    }
    return 0;
}

static void send_heartbeats(coord *c) {
    int64_t t = mono_ms();
    for (size_t i = 0; i < c->nw; i++) {
        cworker *w = &c->w[i];
        if (t - w->last_send >= c->o->heartbeat_ms) {
            cis_err e = {0};
            if (proto_send(c->sock, w->id, w->id_len, PROTO_HEARTBEAT, NULL, ZMQ_DONTWAIT, &e) == 0) w->last_send = t;
        }
    }
}

static int all_done(coord *c, bool *done, cis_err *err) {
    js_counts k;
    if (js_count_states(c->js, &k, err)) return -1;
    *done = k.leased == 0 && (k.pending == 0 || (k.pending == k.blocked && k.pending > 0 && false));
    if (!*done && k.leased == 0 && k.pending > 0 && k.pending == k.blocked) {
        LOG_W("%lld pending jobs wait on dependencies that will never finish; stopping", (long long)k.pending);
        *done = true;
    }
    return 0;
}

/* ---- one coordinator per database --------------------------------------------------------- */

/* lock DB.lock (flock, exclusive, released by the kernel when the process ends, kill -9 included)
 * and write our host and pid into it. Returns the fd (kept open while serving), or -1 with err
 * naming the holder when another coordinator serves this database. */
static int lock_db(const char *db, cis_err *err) {
    char *path = xasprintf("%s.lock", db);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        err_set(err, CIS_EIO, "cannot open the lock file %s: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char holder[256] = "";
        ssize_t n = pread(fd, holder, sizeof holder - 1, 0);
        holder[n > 0 ? n : 0] = 0;
        holder[strcspn(holder, "\n")] = 0;
        err_set(err, CIS_ESTATE, "%s is already served by another coordinator (%s; lock %s): one coordinator per "
                "database\n---> HINT: stop that one first, or point workers at it", db,
                holder[0] ? holder : "its host and pid are unknown", path);
        close(fd);
        free(path);
        return -1;
    }
    char host[128] = "?", line[300];
    gethostname(host, sizeof host - 1);
    int n = snprintf(line, sizeof line, "host %s pid %d since %lld\n", host, (int)getpid(), (long long)now_ms());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, line, (size_t)n, 0) != n)
        LOG_W("cannot write our host and pid into %s: %s", path, strerror(errno));
    free(path);
    return fd;
}

/* ---- main loop --------------------------------------------------------------------------- */

/* is this endpoint reachable only from this host? (tcp on a loopback address, ipc, inproc) */
static bool endpoint_local(const char *ep) {
    if (!strncmp(ep, "ipc://", 6) || !strncmp(ep, "inproc://", 9)) return true;
    if (strncmp(ep, "tcp://", 6)) return false;
    const char *h = ep + 6;
    return !strncmp(h, "127.", 4) || !strncmp(h, "localhost:", 10) || !strncmp(h, "[::1]:", 6) || !strncmp(h, "lo:", 3);
}

/* answer one ZAP request (RFC 27): admit the CURVE client whose public key is listed. Every
 * denial is logged with the peer's address (rate-limited); the database is never touched. */
static void zap_serve(coord *c) {
    zmq_msg_t f[7];
    int n = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->zap, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); break; }
        more = zmq_msg_more(&m);
        if (n < 7) f[n++] = m;
        else zmq_msg_close(&m);
    }
    if (n == 0) return;
    char addr[64] = "?", mech[16] = "?";
    const char *name = NULL;
    bool wellformed = n >= 6 && zmq_msg_size(&f[0]) == 3 && !memcmp(zmq_msg_data(&f[0]), "1.0", 3);
    if (n >= 6) {
        snprintf(addr, sizeof addr, "%.*s", (int)(zmq_msg_size(&f[3]) < 63 ? zmq_msg_size(&f[3]) : 63),
                 (const char *)zmq_msg_data(&f[3]));
        snprintf(mech, sizeof mech, "%.*s", (int)(zmq_msg_size(&f[5]) < 15 ? zmq_msg_size(&f[5]) : 15),
                 (const char *)zmq_msg_data(&f[5]));
    }
    bool curve = wellformed && !strcmp(mech, "CURVE") && n == 7 && zmq_msg_size(&f[6]) == 32;
    if (curve) name = curve_allow_find(&c->allow, zmq_msg_data(&f[6]));
    if (!name) {
        c->n_denied++;
        if (reject_budget(c)) {
            char z85[41] = "-";
            if (curve) zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
            LOG_W("denied a connection from %s: %s", addr,
                  !curve ? "not a CURVE handshake (workers need --curve-key and --server-key)"
                         : "its public key is not in the allow-list");
            if (curve) LOG_W("  (the unknown key is %s; add its .pub file to %s and send SIGHUP to admit it)", z85,
                             c->o->allow_keys);
        }
    } else {
        LOG_D("admitted %s (key %s)", addr, name);
    }
    if (wellformed) {
        /* version, request id (echoed), status code, status text, user id, metadata */
        zmq_send(c->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(c->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
        zmq_send(c->zap, name ? "200" : "400", 3, ZMQ_SNDMORE);
        const char *txt = name ? "OK" : "key not allowed";
        zmq_send(c->zap, txt, strlen(txt), ZMQ_SNDMORE);
        zmq_send(c->zap, name ? name : "", name ? strlen(name) : 0, ZMQ_SNDMORE);
        zmq_send(c->zap, "", 0, 0);
    }
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

static int open_socket(coord *c, cis_err *err) {
    c->zctx = zmq_ctx_new();
    char pub[CURVE_Z85_LEN + 1], sec[CURVE_Z85_LEN + 1];
    if (c->o->curve_key) {
        if (!c->o->allow_keys)
            return err_set(err, CIS_EINVAL, "--curve-key needs --allow-keys DIR|FILE: the worker public keys to admit");
        if (curve_load_secret(c->o->curve_key, pub, sec, err) || curve_allow_load(c->o->allow_keys, &c->allow, err))
            return -1;
        /* the ZAP handler must be bound before the socket that uses it */
        c->zap = zmq_socket(c->zctx, ZMQ_REP);
        int zero = 0;
        zmq_setsockopt(c->zap, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_bind(c->zap, "inproc://zeromq.zap.01") != 0)
            return err_set(err, CIS_EIO, "cannot start the ZAP handler: %s", zmq_strerror(errno));
    } else if (c->o->allow_keys) {
        return err_set(err, CIS_EINVAL, "--allow-keys needs --curve-key FILE: the coordinator's own key pair");
    } else if (!endpoint_local(c->o->bind) && !c->o->insecure_bind_any) {
        return err_set(err, CIS_EINVAL, "--bind %s without CURVE keys would let any host that reaches the port lease "
                       "jobs, read model paths and post results\n---> HINT: make keys with `cisweep keygen` and give "
                       "--curve-key and --allow-keys (workers: --curve-key and --server-key), bind to 127.0.0.1, or "
                       "accept the risk with --insecure-bind-any", c->o->bind);
    }
    c->sock = zmq_socket(c->zctx, ZMQ_ROUTER);
    if (c->o->curve_key) {
        int one = 1;
        zmq_setsockopt(c->sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, CURVE_Z85_LEN);
        zmq_setsockopt(c->sock, ZMQ_ZAP_DOMAIN, "cisweep", 7);
        memset(sec, 0, sizeof sec);
    }
    int one = 1, zero = 0, hwm = 100000, hb = 1000, hbt = 5000;
    int64_t maxsz = PROTO_MAX_BODY + PROTO_MAX_FRAME_SLACK;
    zmq_setsockopt(c->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxsz, sizeof maxsz);
    zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
    zmq_setsockopt(c->sock, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
    if (zmq_bind(c->sock, c->o->bind) != 0)
        return err_set(err, CIS_EIO, "cannot bind %s: %s", c->o->bind, zmq_strerror(errno));
    return 0;
}

int coordinator_run(const coord_opts *o, cis_err *err) {
    coord c;
    memset(&c, 0, sizeof c);
    c.o = o;
    snprintf(c.boot, sizeof c.boot, "%d-%lld", (int)getpid(), (long long)now_ms());
    int lock_fd = lock_db(o->db_path, err);
    if (lock_fd < 0) return -1;
    if (job_store_open(o->db_path, o->nosync ? JS_NOSYNC : 0, &c.js, err)) {
        err_prefix(err, "coordinator");
        close(lock_fd);
        return -1;
    }
    if (open_socket(&c, err)) {
        job_store_close(&c.js);
        if (c.sock) zmq_close(c.sock);
        if (c.zap) zmq_close(c.zap);
        zmq_ctx_term(c.zctx);
        curve_allow_clear(&c.allow);
        close(lock_fd);
        return -1;
    }
    if (o->curve_key)
        LOG_I("CURVE on: admitting %zu worker keys from %s (SIGHUP reloads them)", c.allow.n, o->allow_keys);
    else if (!endpoint_local(o->bind))
        LOG_W("NO AUTHENTICATION: --insecure-bind-any on %s: any host that reaches the port can lease jobs, read model "
              "paths and post results; use --curve-key and --allow-keys", o->bind);
    else
        LOG_I("no CURVE keys: serving unauthenticated on a local endpoint only (%s)", o->bind);
    /* checkpoint the WAL when idle (below), not every 1000 pages in the middle of a busy batch:
     * an automatic checkpoint fsyncs the main DB file inside a commit */
    sqlite3_exec(job_store_db(c.js), "PRAGMA wal_autocheckpoint=20000", NULL, NULL, NULL);
    int64_t grace = o->resume_grace_ms > 0 ? o->resume_grace_ms : o->lease_ms;
    int kept = js_resume_prepare(c.js, now_ms(), grace, err);
    if (kept < 0) {
        job_store_close(&c.js);
        zmq_close(c.sock);
        if (c.zap) zmq_close(c.zap);
        zmq_ctx_term(c.zctx);
        curve_allow_clear(&c.allow);
        close(lock_fd);
        return -1;
    }
    LOG_I("coordinator %s serving %s on %s (heartbeat %d ms x %d, lease %d ms)%s", cisweep_version(), o->db_path,
          o->bind, o->heartbeat_ms, o->liveness, o->lease_ms, kept ? "" : "");
    if (kept) LOG_I("resuming: %d jobs were leased; their workers have %lld ms to re-register", kept, (long long)grace);

    c.ps = prefix_sched_new();
    int tick_ms = o->heartbeat_ms / 4 > 0 ? o->heartbeat_ms / 4 : 1;
    if (tick_ms > 250) tick_ms = 250;
    c.next_tick = mono_ms();
    int rc = 0;
    proto_msg *batch = xcalloc(BATCH, sizeof *batch);
    int64_t db_err_backoff = 0;
    while (!(o->stop_flag && *o->stop_flag)) {
        int64_t t = mono_ms();
        long timeout = (long)(c.next_tick - t);
        if (timeout < 0) timeout = 0;
        if (o->reload_flag && *o->reload_flag) {
            *o->reload_flag = 0;
            curve_allow fresh;
            cis_err re = {0};
            if (!c.zap) LOG_W("SIGHUP: no --allow-keys to reload");
            else if (curve_allow_load(o->allow_keys, &fresh, &re)) LOG_E("SIGHUP: keeping the old allow-list: %s", re.msg);
            else {
                LOG_I("SIGHUP: allow-list %s reloaded: %zu worker keys (was %zu)", o->allow_keys, fresh.n, c.allow.n);
                curve_allow_clear(&c.allow);
                c.allow = fresh;
            }
        }
        zmq_pollitem_t pis[2] = {{c.sock, 0, ZMQ_POLLIN, 0}, {c.zap, 0, ZMQ_POLLIN, 0}};
        double tp = mono_sec();
        int pr = zmq_poll(pis, c.zap ? 2 : 1, timeout);
        if (c.zap && (pis[1].revents & ZMQ_POLLIN))
            for (int k = 0; k < 64; k++) {
                zmq_pollitem_t zp = {c.zap, 0, ZMQ_POLLIN, 0};
                if (zmq_poll(&zp, 1, 0) <= 0) break;
                zap_serve(&c);
            }
        c.st_poll += mono_sec() - tp;
        if (pr < 0 && errno != EINTR) { rc = err_set(err, CIS_EIO, "poll: %s", zmq_strerror(errno)); break; }
        /* read at most BATCH messages, TURN_MAX_BYTES and TURN_MAX_READ_S per turn: one peer sending
         * big frames cannot keep the loop from its checks, its commits and its heartbeats */
        size_t nb = 0, nbytes = 0;
        double tr = mono_sec();
        while (nb < BATCH && nbytes < TURN_MAX_BYTES && mono_sec() - tr < TURN_MAX_READ_S) {
            cis_err e = {0};
            int r = proto_recv(c.sock, true, ZMQ_DONTWAIT, &batch[nb], &e);
            if (r == 0) break;
            nbytes += batch[nb].nbytes;
            if (r < 0) { bad_message(&c, &batch[nb], &e); proto_msg_clear(&batch[nb]); continue; }
            nb++;
        }
        t = mono_ms();
        bool tick = t >= c.next_tick;
        if (nb == 0 && !tick && c.nuns == 0) continue;
        cis_err e = {0};
        if (js_begin(c.js, &e)) {
            LOG_E("cannot begin a transaction: %s; retrying", e.msg);
            for (size_t i = 0; i < nb; i++) proto_msg_clear(&batch[i]);
            sleep_ms(db_err_backoff = db_err_backoff ? (db_err_backoff * 2 > 2000 ? 2000 : db_err_backoff * 2) : 50);
            continue;
        }
        sqlite3 *db = job_store_db(c.js);
        double th = mono_sec();
        c.st_batches++;
        c.st_msgs += (int64_t)nb;
        for (size_t i = 0; i < nb; i++) {
            size_t nout0 = c.nout;
            sqlite3_exec(db, "SAVEPOINT msg", NULL, NULL, NULL);
            cis_err he = {0};
            if (handle(&c, &batch[i], &he)) {
                sqlite3_exec(db, "ROLLBACK TO msg", NULL, NULL, NULL);
                for (size_t k = nout0; k < c.nout; k++) json_decref(c.out[k].body);
                c.nout = nout0;
                LOG_E("%s from %s not applied: %s", proto_cmd_name(batch[i].cmd), batch[i].peer, he.msg);
            }
            sqlite3_exec(db, "RELEASE msg", NULL, NULL, NULL);
            proto_msg_clear(&batch[i]);
        }
        bool stop_now = false;
        double td = mono_sec();
        c.st_handle += td - th;
        if (c.nuns && hand_back_unsent(&c, &e)) LOG_E("handing back unsent jobs failed: %s", e.msg);
        if (tick) {
            c.next_tick = t + tick_ms;
            if (check_dead_workers(&c, &e) || check_leases(&c, &e)) LOG_E("periodic check failed: %s", e.msg);
        }
        if (dispatch(&c, &e)) LOG_E("dispatch failed: %s", e.msg);
        if (tick && o->exit_when_done && all_done(&c, &stop_now, &e)) LOG_E("%s", e.msg);
        double tc = mono_sec();
        c.st_dispatch += tc - td;
        int crc = js_commit(c.js, &e);
        c.st_commit += mono_sec() - tc;
        c.st_commits++;
        if (crc) {
            LOG_E("commit failed, batch rolled back (workers will resend): %s", e.msg);
            js_rollback(c.js);
            drop_out(&c);
            /* in-memory worker states may now be ahead of the DB: forget job assignments so that
             * heartbeats re-derive them from the DB */
            for (size_t i = 0; i < c.nw; i++) {
                c.w[i].njobs = 0;
                c.w[i].capacity = 0;
                proto_send(c.sock, c.w[i].id, c.w[i].id_len, PROTO_RECONNECT, NULL, ZMQ_DONTWAIT, NULL);
            }
            sleep_ms(db_err_backoff = db_err_backoff ? (db_err_backoff * 2 > 2000 ? 2000 : db_err_backoff * 2) : 50);
            continue;
        }
        db_err_backoff = 0;
        double ts = mono_sec();
        flush_out(&c);
        c.st_send += mono_sec() - ts;
        if (tick) send_heartbeats(&c);
        if (stop_now) { LOG_I("all jobs finished"); break; }
    }
    free(batch);
    if (o->stop_flag && *o->stop_flag) LOG_I("stopping on signal %d", *o->stop_flag);
    /* tell workers we are going so that they reconnect promptly to a restarted coordinator, and
     * mark them gone in the DB (they register again with a restarted coordinator; their leases
     * stay, covered by the resume grace period) */
    cis_err ge = {0};
    if (c.nw && js_begin(c.js, &ge) == 0) {
        for (size_t i = 0; i < c.nw; i++) js_worker_gone(c.js, c.w[i].id, now_ms(), "coordinator_stopped", NULL);
        if (js_commit(c.js, &ge)) { LOG_W("%s", ge.msg); js_rollback(c.js); }
    }
    for (size_t i = 0; i < c.nw; i++)
        proto_send(c.sock, c.w[i].id, c.w[i].id_len, PROTO_BYE, NULL, ZMQ_DONTWAIT, NULL);
    if (c.n_bad) LOG_I("%lld malformed messages were dropped", (long long)c.n_bad);
    if (c.n_refused) LOG_I("%lld messages about leases their senders did not hold (or never leased) were refused",
                           (long long)c.n_refused);
    LOG_I("loop: %lld messages in %lld batches (%.1f per batch), %lld commits; seconds in poll %.3f, handlers %.3f, "
          "dispatch+checks %.3f, commit %.3f, send %.3f", (long long)c.st_msgs, (long long)c.st_batches,
          c.st_batches ? (double)c.st_msgs / (double)c.st_batches : 0.0, (long long)c.st_commits, c.st_poll,
          c.st_handle, c.st_dispatch, c.st_commit, c.st_send);
    drop_out(&c);
    free(c.out);
    free(c.uns);
    free(c.w);
    prefix_sched_free(&c.ps);
    if (c.n_denied) LOG_I("%lld connections were denied by the CURVE allow-list", (long long)c.n_denied);
    zmq_close(c.sock);
    if (c.zap) zmq_close(c.zap);
    zmq_ctx_term(c.zctx);
    curve_allow_clear(&c.allow);
    job_store_close(&c.js);
    close(lock_fd);
    return rc;
}
