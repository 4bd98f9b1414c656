/* daemon.c - the worker daemon's network thread and job thread (see daemon.h). */
#include "worker/daemon.h"
#include "worker/job.h"
#include "worker/model_cache.h"
#include "worker/snapshot.h"
#include "worker/spool.h"
#include "common/curve.h"
#include "common/log.h"
#include "common/protocol.h"
#include "common/version.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <unistd.h>
#include <zmq.h>

void worker_opts_defaults(worker_opts *o) {
    memset(o, 0, sizeof *o);
    o->device = "cpu";
    o->cache_dir = "cisweep-cache";
    o->heartbeat_ms = 1000;
    o->liveness = 5;
    o->max_backoff_ms = 32000;
    o->preempt_grace_ms = 10000;
    o->slots = 2;
    o->snapshot_mb = 1024;
    o->report_free_mb = -1;
}

void worker_install_signals(volatile int *flag) { install_stop_signals(flag); }

typedef struct wd {
    const worker_opts *o;
    char id[PROTO_MAX_ID + 1];
    char host[128];
    spool *sp;
    char *spool_dir;
    model_cache *cache;         /* the model cache on o->device (the job thread's; mem info from any) */
    snapshot_store *snaps;      /* prefix snapshots (the job thread's; keys listed from any) */
    void *zctx, *sock;
    int pipefd[2];              /* job thread -> network thread: "job finished" */
    int hb_ms, liveness;
    int64_t last_recv, last_send, next_connect, backoff, last_spool_resend;
    int connects;
    bool welcomed;
    bool curve;                 /* CURVE keys loaded (below) */
    char curve_pub[CURVE_Z85_LEN + 1], curve_sec[CURVE_Z85_LEN + 1], curve_srv[CURVE_Z85_LEN + 1];
    /* the running job */
    job_ctx *job;
    /* the job thread lives as long as the daemon (no thread creation per job); it takes the job
     * handed over in `handoff` under mu/cv and writes a byte to pipefd[1] when it is done */
    pthread_t thr;
    bool thr_live;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job_ctx *handoff;           /* set by the network thread, taken by the job thread */
    bool thr_quit;
    int64_t cancel_deadline;    /* mono ms; 0 = no cancel pending */
    int64_t offer_mb;           /* HELLO.free_mb, measured before the first model load and kept (the
                                   memory our own resident model takes is part of what we offer); -2 =
                                   not measured yet, -1 = none to report */
    /* preemption */
    bool preempting;
    int64_t stop_deadline;      /* the job must stop by then */
    json_t *queued[8];          /* prefetched JOB bodies waiting behind the running job */
    int nq;
    bool need_ready;            /* we handed a job back for lack of room: say READY when a slot frees */
    int64_t bye_deadline;
    char *refused;              /* BYE with final true: the coordinator's reason (the daemon stops) */
} wd;

static void *job_thread(void *arg) {
    wd *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->handoff && !w->thr_quit) pthread_cond_wait(&w->cv, &w->mu);
        job_ctx *j = w->handoff;
        w->handoff = NULL;
        bool quit = w->thr_quit && !j;
        pthread_mutex_unlock(&w->mu);
        if (quit) return NULL;
        log_set_job(j->job, j->attempt);
        runner_execute(j);
        log_set_job(0, 0);
        char b = 1;
        ssize_t k = write(w->pipefd[1], &b, 1);
        (void)k;
    }
}

static int free_slots(const wd *w) { return w->o->slots - (w->job ? 1 : 0) - w->nq; }

static json_t *held_json(const wd *w) {
    json_t *a = json_array();
    if (w->job) json_array_append_new(a, json_pack("{s:I,s:i}", "job", (json_int_t)w->job->job, "attempt", w->job->attempt));
    for (int i = 0; i < w->nq; i++)
        json_array_append_new(a, json_pack("{s:I,s:i}", "job", (json_int_t)proto_int(w->queued[i], "job", 0), "attempt",
                                           (int)proto_int(w->queued[i], "attempt", 0)));
    return a;
}

static int wsend(wd *w, proto_cmd cmd, json_t *body) {
    if (!w->sock) return -1;
    cis_err e = {0};
    int rc = proto_send(w->sock, NULL, 0, cmd, body, ZMQ_DONTWAIT, &e);
    if (rc == 0) w->last_send = mono_ms();
    else LOG_D("%s", e.msg);
    return rc;
}

static void close_socket(wd *w) {
    if (w->sock) zmq_close(w->sock);
    w->sock = NULL;
    w->welcomed = false;
}

static void send_hello(wd *w) {
    uint64_t fb = 0, tb = 0;
    int64_t mem = 0, free_mb = -1;
    if (w->cache && model_cache_mem_info(w->cache, &fb, &tb, NULL) == 0) {
        mem = (int64_t)(tb >> 20);
        free_mb = (int64_t)(fb >> 20);
        if (w->offer_mb == -2) w->offer_mb = free_mb; /* the first HELLO: no model is resident yet */
    } else {
        struct sysinfo si;
        mem = sysinfo(&si) == 0 ? (int64_t)si.totalram * si.mem_unit / (1 << 20) : 0;
    }
    json_t *running = w->job ? json_pack("{s:I,s:i}", "job", (json_int_t)w->job->job, "attempt", w->job->attempt)
                             : json_null();
    json_t *b = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:I,s:i,s:o,s:o}", "worker", w->id, "host", w->host, "device",
                          w->o->device, "backend", str_starts(w->o->device, "cuda") ? "cuda" : "cpu", "memory_mb",
                          (json_int_t)mem, "version", cisweep_version(), "pid", (json_int_t)getpid(), "slots",
                          w->o->slots, "running", running, "held", held_json(w));
    /* which generation of presets and algorithms our results come from: a coordinator of another
     * one refuses us (BYE final) rather than mix them into its sweeps (common/version.h) */
    json_object_set_new(b, "results_epoch", json_integer(CISWEEP_RESULTS_EPOCH));
    /* the outcomes still in the spool (finished while the coordinator was away): the coordinator
     * must not declare their attempts lost; the messages themselves follow WELCOME */
    json_t *sp = json_array();
    for (size_t i = 0; i < spool_count(w->sp) && i < PROTO_MAX_SPOOLED; i++)
        json_array_append_new(sp, json_pack("{s:I,s:i}", "job", (json_int_t)spool_at(w->sp, i)->job, "attempt",
                                            spool_at(w->sp, i)->attempt));
    json_object_set_new(b, "spooled", sp);
    /* a worker that is stopping takes no more jobs: no slots (the coordinator then waits for READY) */
    if (w->preempting) json_object_del(b, "slots");
    /* the memory offered to jobs (the coordinator leases a job only when its estimated need fits;
     * a cpu worker's measured free RAM does not constrain it, an explicit --report-free-mb does) */
    int64_t offer = w->offer_mb >= 0 ? w->offer_mb : free_mb;
    if (w->o->report_free_mb >= 0) {
        bool cuda = str_starts(w->o->device, "cuda");
        offer = cuda && offer >= 0 && offer < w->o->report_free_mb ? offer : w->o->report_free_mb;
        json_object_set_new(b, "free_mb_source", json_string("option"));
    }
    if (offer >= 0) json_object_set_new(b, "free_mb", json_integer(offer));
    /* the prefix snapshots held (none for a new process): also says this worker keeps them */
    if (w->snaps && w->o->snapshot_mb > 0) json_object_set_new(b, "prefixes", snapshot_store_keys(w->snaps));
    wsend(w, PROTO_HELLO, b);
    json_decref(b);
}

static int open_socket(wd *w, cis_err *err) {
    w->sock = zmq_socket(w->zctx, ZMQ_DEALER);
    int zero = 0, hwm = 10000;
    int64_t maxsz = PROTO_MAX_BODY + PROTO_MAX_FRAME_SLACK;
    zmq_setsockopt(w->sock, ZMQ_ROUTING_ID, w->id, strlen(w->id));
    zmq_setsockopt(w->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(w->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(w->sock, ZMQ_MAXMSGSIZE, &maxsz, sizeof maxsz);
    if (w->curve) {
        zmq_setsockopt(w->sock, ZMQ_CURVE_SERVERKEY, w->curve_srv, CURVE_Z85_LEN);
        zmq_setsockopt(w->sock, ZMQ_CURVE_PUBLICKEY, w->curve_pub, CURVE_Z85_LEN);
        zmq_setsockopt(w->sock, ZMQ_CURVE_SECRETKEY, w->curve_sec, CURVE_Z85_LEN);
    }
    if (zmq_connect(w->sock, w->o->connect) != 0) {
        int e = errno;
        zmq_close(w->sock);
        w->sock = NULL;
        return err_set(err, CIS_EINVAL, "cannot connect to %s: %s", w->o->connect, zmq_strerror(e));
    }
    w->connects++;
    w->last_recv = mono_ms();
    send_hello(w);
    return 0;
}

/* coordinator silent or gone: drop the socket and try again after the backoff */
static void schedule_reconnect(wd *w, const char *why) {
    close_socket(w);
    w->backoff = w->backoff ? w->backoff * 2 : 1000;
    if (w->backoff > w->o->max_backoff_ms) w->backoff = w->o->max_backoff_ms;
    w->next_connect = mono_ms() + w->backoff;
    LOG_W("%s; reconnecting to %s in %lld ms", why, w->o->connect, (long long)w->backoff);
}

static void resend_spool(wd *w) {
    size_t n = spool_count(w->sp);
    for (size_t i = 0; i < n; i++) wsend(w, spool_at(w->sp, i)->cmd, spool_at(w->sp, i)->body);
    if (n) LOG_I("resent %zu spooled outcome message(s)", n);
    w->last_spool_resend = mono_ms();
}

static void report(wd *w, proto_cmd cmd, json_t *body) {
    cis_err e = {0};
    int64_t job = proto_int(body, "job", 0);
    int att = (int)proto_int(body, "attempt", 0);
    json_t *too_big = NULL;
    char *text = json_dumps(body, JSON_COMPACT);
    size_t len = text ? strlen(text) : 0;
    free(text);
    if (len > proto_max_body(cmd)) {
        /* the coordinator would drop the connection on such a frame: report a failure instead */
        char msg[200];
        snprintf(msg, sizeof msg, "%s of %zu bytes is over the protocol's %zu-byte limit", proto_cmd_name(cmd), len,
                 proto_max_body(cmd));
        LOG_E("job %lld attempt %d: %s", (long long)job, att, msg);
        too_big = json_pack("{s:I,s:i,s:s,s:s,s:b}", "job", (json_int_t)job, "attempt", att, "error", msg, "log_tail",
                           "", "retryable", 0);
        cmd = PROTO_FAILED;
        body = too_big;
    }
    if (spool_put(w->sp, job, att, cmd, body, &e)) LOG_E("cannot spool %s: %s", proto_cmd_name(cmd), e.msg);
    wsend(w, cmd, body);
    if (too_big) json_decref(too_big);
}

static void send_ready(wd *w) {
    int n = free_slots(w);
    if (n <= 0 || w->preempting || !w->welcomed) return;
    json_t *r = json_pack("{s:i}", "slots", n);
    wsend(w, PROTO_READY, r);
    json_decref(r);
}

static void start_job(wd *w, json_t *body);

static void finish_job(wd *w) {
    job_ctx *j = w->job;
    int stop = atomic_load(&j->stop);
    json_t *b = NULL;
    if (stop == JOB_STOP_CANCEL) {
        LOG_I("job %lld attempt %d stopped after cancellation", (long long)j->job, j->attempt);
    } else if (stop == JOB_STOP_PREEMPT && j->status != JOB_OK) {
        b = json_pack("{s:I,s:i}", "job", (json_int_t)j->job, "attempt", j->attempt);
        report(w, PROTO_PREEMPTED, b);
        LOG_I("job %lld attempt %d preempted", (long long)j->job, j->attempt);
    } else if (j->status == JOB_OK) {
        b = json_pack("{s:I,s:i,s:O,s:I}", "job", (json_int_t)j->job, "attempt", j->attempt, "rows", j->rows,
                      "run_ms", (json_int_t)j->run_ms);
        if (json_array_size(j->stages)) json_object_set(b, "stages", j->stages);
        if (json_array_size(j->artifacts)) json_object_set(b, "artifacts", j->artifacts);
        if (w->snaps && w->o->snapshot_mb > 0) /* the prefixes held: the coordinator prefers their jobs */
            json_object_set_new(b, "prefixes", snapshot_store_keys(w->snaps));
        report(w, PROTO_RESULT, b);
        LOG_D("job %lld attempt %d done in %lld ms", (long long)j->job, j->attempt, (long long)j->run_ms);
    } else {
        char tail[4096];
        log_tail(tail, sizeof tail);
        b = json_pack("{s:I,s:i,s:s,s:s,s:b}", "job", (json_int_t)j->job, "attempt", j->attempt, "error", j->error,
                      "log_tail", tail, "retryable", j->retryable);
        report(w, PROTO_FAILED, b);
        LOG_W("job %lld attempt %d failed: %s", (long long)j->job, j->attempt, j->error);
    }
    if (b) json_decref(b);
    json_decref(j->spec);
    if (j->rows) json_decref(j->rows);
    json_decref(j->stages);
    json_decref(j->artifacts);
    free(j);
    w->job = NULL;
    w->cancel_deadline = 0;
    /* an outcome message frees the slot: the coordinator treats RESULT/FAILED/PREEMPTED as READY
     * (one message and one commit less per job); a cancelled job frees it with an explicit READY */
    if (stop == JOB_STOP_CANCEL || w->need_ready) { w->need_ready = false; send_ready(w); }
    /* the next prefetched job starts at once: no round trip between jobs */
    if (w->nq > 0 && !w->preempting) {
        json_t *next = w->queued[0];
        memmove(&w->queued[0], &w->queued[1], (size_t)(w->nq - 1) * sizeof *w->queued);
        w->nq--;
        start_job(w, next);
        json_decref(next);
    }
}

static void start_job(wd *w, json_t *body) {
    int64_t job = proto_int(body, "job", 0);
    int att = (int)proto_int(body, "attempt", 0);
    if (w->preempting || (w->job && w->nq >= w->o->slots - 1)) {
        /* shutting down or no room: hand it back without spending an attempt */
        json_t *b = json_pack("{s:I,s:i}", "job", (json_int_t)job, "attempt", att);
        report(w, PROTO_PREEMPTED, b);
        json_decref(b);
        LOG_W("job %lld attempt %d handed back: %s", (long long)job, att, w->preempting ? "shutting down" : "no free slot");
        if (!w->preempting) w->need_ready = true;
        return;
    }
    if (w->job) {
        w->queued[w->nq++] = json_incref(body);
        LOG_D("job %lld attempt %d queued behind the running job", (long long)job, att);
        return;
    }
    job_ctx *j = xcalloc(1, sizeof *j);
    j->job = job;
    j->attempt = att;
    j->spec = json_incref(body);
    j->selftest_enabled = w->o->selftest;
    j->data_dir = w->o->data_dir;
    j->cache_dir = w->o->artifacts_dir ? w->o->artifacts_dir : w->o->cache_dir;
    j->threads = w->o->threads;
    j->cache = w->cache;
    j->snaps = w->snaps;
    j->eval_limit = w->o->eval_limit;
    j->stage_evals = w->o->stage_evals;
    j->skip_missing_data = w->o->skip_missing_data;
    j->eval_profile = w->o->eval_profile;
    j->mc_prompt = w->o->mc_prompt;
    j->eval_open = w->o->eval_open;
    j->eval_cloze = w->o->eval_cloze;
    atomic_store(&j->stop, JOB_STOP_NONE);
    atomic_store(&j->progress_pm, 0);
    w->job = j;
    pthread_mutex_lock(&w->mu);
    w->handoff = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    LOG_D("job %lld attempt %d started", (long long)job, att);
}

static void on_message(wd *w, proto_msg *m) {
    w->last_recv = mono_ms();
    switch (m->cmd) {
    case PROTO_WELCOME:
        w->welcomed = true;
        w->backoff = 0;
        w->hb_ms = (int)proto_int(m->body, "heartbeat_ms", w->hb_ms);
        w->liveness = (int)proto_int(m->body, "liveness", w->liveness);
        LOG_I("registered with coordinator %s at %s as %s", proto_str(m->body, "coordinator", "?"), w->o->connect, w->id);
        resend_spool(w);
        /* no READY here: HELLO.slots told the coordinator our capacity, and a READY now would
         * count the JOBs already on their way to us a second time */
        break;
    case PROTO_JOB: start_job(w, m->body); break;
    case PROTO_ACK: {
        int64_t job = proto_int(m->body, "job", 0);
        int att = (int)proto_int(m->body, "attempt", 0);
        spool_ack(w->sp, job, att);
        break;
    }
    case PROTO_CANCEL: {
        int64_t job = proto_int(m->body, "job", 0);
        int att = (int)proto_int(m->body, "attempt", 0);
        if (w->job && w->job->job == job && w->job->attempt == att && !w->cancel_deadline) {
            LOG_I("coordinator cancels job %lld attempt %d: %s", (long long)job, att, proto_str(m->body, "reason", ""));
            atomic_store(&w->job->stop, JOB_STOP_CANCEL);
            w->cancel_deadline = mono_ms() + w->o->preempt_grace_ms;
        }
        for (int i = 0; i < w->nq; i++) {
            if (proto_int(w->queued[i], "job", 0) != job || proto_int(w->queued[i], "attempt", 0) != att) continue;
            LOG_I("coordinator cancels queued job %lld attempt %d", (long long)job, att);
            json_decref(w->queued[i]);
            memmove(&w->queued[i], &w->queued[i + 1], (size_t)(w->nq - i - 1) * sizeof *w->queued);
            w->nq--;
            send_ready(w);
            break;
        }
        break;
    }
    case PROTO_HEARTBEAT: break;
    case PROTO_RECONNECT:
        LOG_I("coordinator asks us to register again (%s)", proto_str(m->body, "reason", ""));
        w->welcomed = false;
        send_hello(w);
        break;
    case PROTO_BYE:
        LOG_W("coordinator says BYE (%s)", proto_str(m->body, "reason", "shutting down"));
        if (json_is_true(json_object_get(m->body, "final"))) { /* refused for good: no reconnecting */
            free(w->refused);
            w->refused = xstrdup(proto_str(m->body, "reason", "no reason given"));
        } else if (strstr(proto_str(m->body, "reason", ""), "routing id")) {
            schedule_reconnect(w, "registration refused");
        } else {
            close_socket(w);
            w->backoff = 0;
            w->next_connect = mono_ms() + 500;
        }
        break;
    default:
        LOG_W("unexpected %s from the coordinator dropped", proto_cmd_name(m->cmd));
    }
}

static void send_heartbeat(wd *w) {
    json_t *b = w->job ? json_pack("{s:I,s:i,s:f}", "job", (json_int_t)w->job->job, "attempt", w->job->attempt,
                                   "progress", atomic_load(&w->job->progress_pm) / 1000.0)
                       : json_object();
    if (w->nq) json_object_set_new(b, "held", held_json(w));
    wsend(w, PROTO_HEARTBEAT, b);
    json_decref(b);
}

int worker_daemon_run(const worker_opts *o, cis_err *err) {
    wd w;
    memset(&w, 0, sizeof w);
    w.o = o;
    w.offer_mb = -2;
    w.hb_ms = o->heartbeat_ms;
    w.liveness = o->liveness;
    gethostname(w.host, sizeof w.host - 1);
    if (o->id) snprintf(w.id, sizeof w.id, "%s", o->id);
    else {
        /* host/device/nonce, the nonce kept in CACHE/worker.id: a daemon restarted on the same cache
         * (and so the same spool) is the same worker, so that the outcomes it spooled in its
         * previous life are accepted as its own (a result is accepted only from its lease holder) */
        char *idf = xasprintf("%s/worker.id", o->cache_dir), prev[PROTO_MAX_ID + 1] = "", want[PROTO_MAX_ID + 1];
        snprintf(want, sizeof want, "%s/%s/", w.host, o->device);
        FILE *f = fopen(idf, "r");
        if (f) {
            if (!fgets(prev, sizeof prev, f)) prev[0] = 0;
            fclose(f);
            prev[strcspn(prev, "\r\n")] = 0;
        }
        if (prev[0] && !strncmp(prev, want, strlen(want)) && strlen(prev) == strlen(want) + 6) {
            snprintf(w.id, sizeof w.id, "%s", prev);
        } else {
            unsigned nonce = 0;
            FILE *ur = fopen("/dev/urandom", "rb");
            if (!ur || fread(&nonce, sizeof nonce, 1, ur) != 1) nonce = (unsigned)(now_ms() * 2654435761u) ^ (unsigned)getpid();
            if (ur) fclose(ur);
            nonce &= 0xffffff;
            snprintf(w.id, sizeof w.id, "%s/%s/%06x", w.host, o->device, nonce);
            cis_err me = {0};
            if (mkdir_p(o->cache_dir, &me) == 0 && (f = fopen(idf, "w"))) {
                fprintf(f, "%s\n", w.id);
                fclose(f);
            }
        }
        free(idf);
    }
    log_set_worker(w.id);
    if (o->curve_key) {
        if (curve_load_secret(o->curve_key, w.curve_pub, w.curve_sec, err)) { err_prefix(err, "--curve-key"); return -1; }
        if (curve_load_public(o->server_key, w.curve_srv, err)) { err_prefix(err, "--server-key"); return -1; }
        w.curve = true;
    }
    w.cache = model_cache_open(o->device, o->threads, err);
    if (!w.cache) { err_prefix(err, "--device"); return -1; }
    w.snaps = snapshot_store_new((uint64_t)(o->snapshot_mb > 0 ? o->snapshot_mb : 0) << 20);
    w.spool_dir = xasprintf("%s/spool", o->cache_dir);
    if (spool_open(w.spool_dir, &w.sp, err)) { free(w.spool_dir); model_cache_close(&w.cache); snapshot_store_free(&w.snaps); return -1; }
    if (pipe(w.pipefd) != 0) { spool_close(&w.sp); free(w.spool_dir); snapshot_store_free(&w.snaps); model_cache_close(&w.cache); return err_set(err, CIS_EIO, "pipe: %s", strerror(errno)); }
    fcntl(w.pipefd[0], F_SETFL, O_NONBLOCK);
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setstacksize(&at, 64 << 20); /* room for deep model code */
    if (pthread_create(&w.thr, &at, job_thread, &w) != 0) {
        pthread_attr_destroy(&at);
        close(w.pipefd[0]); close(w.pipefd[1]);
        spool_close(&w.sp);
        free(w.spool_dir); model_cache_close(&w.cache); snapshot_store_free(&w.snaps);
        return err_set(err, CIS_EIO, "cannot start the job thread: %s", strerror(errno));
    }
    pthread_attr_destroy(&at);
    w.thr_live = true;
    w.zctx = zmq_ctx_new();
    if (open_socket(&w, err)) {
        pthread_mutex_lock(&w.mu);
        w.thr_quit = true;
        pthread_cond_signal(&w.cv);
        pthread_mutex_unlock(&w.mu);
        pthread_join(w.thr, NULL);
        zmq_ctx_term(w.zctx);
        close(w.pipefd[0]); close(w.pipefd[1]);
        spool_close(&w.sp);
        free(w.spool_dir); model_cache_close(&w.cache); snapshot_store_free(&w.snaps);
        return -1;
    }
    LOG_I("worker %s (%s) connecting to %s; spool %s", w.id, cisweep_version(), o->connect, w.spool_dir);
    int rc = WORKER_EXIT_OK;
    int64_t last_hb = 0;
    for (;;) {
        int64_t t = mono_ms();
        /* signals: begin preemption */
        if (o->stop_flag && *o->stop_flag && !w.preempting) {
            w.preempting = true;
            LOG_I("signal %d: stopping%s", *o->stop_flag, w.job ? " the running job at its next check point" : "");
            if (w.job) {
                atomic_store(&w.job->stop, JOB_STOP_PREEMPT);
                w.stop_deadline = t + o->preempt_grace_ms;
            }
            w.bye_deadline = t + o->preempt_grace_ms + 3000;
            for (int i = 0; i < w.nq; i++) {
                json_t *b = json_pack("{s:I,s:i}", "job", (json_int_t)proto_int(w.queued[i], "job", 0), "attempt",
                                      (int)proto_int(w.queued[i], "attempt", 0));
                report(&w, PROTO_PREEMPTED, b);
                json_decref(b);
                json_decref(w.queued[i]);
            }
            w.nq = 0;
        }
        if (w.preempting && !w.job) {
            bool acked = spool_count(w.sp) == 0 || !w.sock;
            if (acked || t > w.bye_deadline) {
                if (!acked) LOG_W("%zu outcome message(s) not acknowledged; they stay spooled and are resent on restart",
                                  spool_count(w.sp));
                json_t *b = json_pack("{s:s}", "reason", "signal");
                wsend(&w, PROTO_BYE, b);
                json_decref(b);
                break;
            }
        }
        if (w.preempting && w.job && t > w.stop_deadline) {
            LOG_W("job %lld did not stop within %d ms; reporting it preempted and leaving it behind",
                  (long long)w.job->job, o->preempt_grace_ms);
            json_t *b = json_pack("{s:I,s:i}", "job", (json_int_t)w.job->job, "attempt", w.job->attempt);
            report(&w, PROTO_PREEMPTED, b);
            json_decref(b);
            json_t *bye = json_pack("{s:s}", "reason", "signal");
            wsend(&w, PROTO_BYE, bye);
            json_decref(bye);
            sleep_ms(100); /* let the frames leave */
            break;
        }
        if (w.job && w.cancel_deadline && t > w.cancel_deadline) {
            LOG_E("job %lld ignored cancellation for %d ms: restarting the worker to get a clean job thread",
                  (long long)w.job->job, o->preempt_grace_ms);
            rc = WORKER_EXIT_RESTART;
            break;
        }
        if (w.refused) {
            rc = err_set(err, CIS_EINVAL, "the coordinator at %s refused this worker for good: %s", o->connect,
                         w.refused);
            if (w.job) atomic_store(&w.job->stop, JOB_STOP_CANCEL);
            break;
        }
        /* connection management */
        if (!w.sock && t >= w.next_connect) {
            cis_err e = {0};
            if (open_socket(&w, &e)) { LOG_E("%s", e.msg); w.next_connect = t + 1000; }
        }
        if (w.sock && t - w.last_recv > (int64_t)w.hb_ms * w.liveness) {
            char why[512];
            if (w.welcomed) snprintf(why, sizeof why, "coordinator silent for %lld ms", (long long)(t - w.last_recv));
            else snprintf(why, sizeof why, "no answer from coordinator at %s (attempt %d; is it running? is another "
                          "worker using the id \"%s\"?%s)", o->connect, w.connects, w.id,
                          w.curve ? " is our public key in the coordinator's allow-list, and --server-key its key?"
                                  : " does it require CURVE keys?");
            schedule_reconnect(&w, why);
        }
        if (w.sock && t - last_hb >= w.hb_ms) { send_heartbeat(&w); last_hb = t; }
        if (w.welcomed && t - w.last_spool_resend > 5LL * w.hb_ms * w.liveness) resend_spool(&w);

        zmq_pollitem_t pi[2] = {{NULL, w.pipefd[0], ZMQ_POLLIN, 0}, {w.sock, 0, ZMQ_POLLIN, 0}};
        long timeout = w.hb_ms - (mono_ms() - last_hb);
        if (timeout > 100) timeout = 100;
        if (timeout < 0) timeout = 0;
        int pr = zmq_poll(pi, w.sock ? 2 : 1, timeout);
        if (pr < 0 && errno != EINTR) { rc = err_set(err, CIS_EIO, "poll: %s", zmq_strerror(errno)); break; }
        if (pi[0].revents & ZMQ_POLLIN) {
            char buf[16];
            while (read(w.pipefd[0], buf, sizeof buf) > 0) {}
            if (w.job) finish_job(&w);
        }
        if (w.sock && (pi[1].revents & ZMQ_POLLIN)) {
            for (int k = 0; k < 64 && w.sock; k++) {
                proto_msg m;
                cis_err e = {0};
                int r = proto_recv(w.sock, false, ZMQ_DONTWAIT, &m, &e);
                if (r == 0) break;
                if (r < 0) { LOG_W("malformed message from the coordinator dropped: %s", e.msg); continue; }
                on_message(&w, &m);
                proto_msg_clear(&m);
            }
        }
    }
    for (int i = 0; i < w.nq; i++) json_decref(w.queued[i]);
    if (!w.job) {
        /* the job thread is idle: let it go (a stuck one is left behind; the process ends) */
        pthread_mutex_lock(&w.mu);
        w.thr_quit = true;
        pthread_cond_signal(&w.cv);
        pthread_mutex_unlock(&w.mu);
        pthread_join(w.thr, NULL);
    }
    close_socket(&w);
    zmq_ctx_term(w.zctx);
    if (!w.job) { close(w.pipefd[0]); close(w.pipefd[1]); }
    spool_close(&w.sp);
    free(w.spool_dir);
    free(w.refused);
    if (!w.job) snapshot_store_free(&w.snaps); // before the cache: snapshots live in its backend
    if (!w.job) model_cache_close(&w.cache);  // a stuck job thread may still hold the model
    return rc;
}
