/* snapshot.c - the worker's store of model snapshots after a stage prefix, and the per-job glue
 * that starts a job from the longest one (see snapshot.h). */
#include "worker/snapshot.h"
#include "common/log.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct snap {
    char key[PREFIX_KEY_HEX + 1];
    char *model_path;            /* the JOB's model_path it was taken on */
    llama_model *m;              /* the parameters after the prefix (same backend as the work model) */
    json_t *records;             /* the prefix's k stage records, as the job that took it reported them */
    int k;                       /* stages in the prefix */
    int64_t job;                 /* the job (and attempt, edit set) that took it */
    int attempt, edit_set;
    uint64_t bytes;              /* parameter bytes (numel x 4: fp32) */
    uint64_t used;               /* LRU tick of its last take or restore */
} snap;

struct snapshot_store {
    pthread_mutex_t mu;
    uint64_t budget, held;       /* bytes */
    snap *s;
    size_t n, cap;
    uint64_t tick;
    snapshot_stats st;
};

snapshot_store *snapshot_store_new(uint64_t budget_bytes) {
    snapshot_store *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->budget = budget_bytes;
    return s;
}

static void snap_free(snap *e) {
    llama_model_free(&e->m);
    json_decref(e->records);
    free(e->model_path);
    memset(e, 0, sizeof *e);
}

/* remove entry i (the lock is held) */
static void drop_at(snapshot_store *s, size_t i) {
    s->held -= s->s[i].bytes;
    snap_free(&s->s[i]);
    s->s[i] = s->s[--s->n];
}

void snapshot_store_free(snapshot_store **sp) {
    if (!sp || !*sp) return;
    snapshot_store *s = *sp;
    while (s->n) drop_at(s, s->n - 1);
    free(s->s);
    pthread_mutex_destroy(&s->mu);
    free(s);
    *sp = NULL;
}

static int by_recent(const void *a, const void *b) {
    const snap *x = *(const snap *const *)a, *y = *(const snap *const *)b;
    return x->used < y->used ? 1 : x->used > y->used ? -1 : 0;
}

json_t *snapshot_store_keys(snapshot_store *s) {
    json_t *a = json_array();
    if (!s) return a;
    pthread_mutex_lock(&s->mu);
    const snap **v = s->n ? xmalloc(s->n * sizeof *v) : NULL;
    for (size_t i = 0; i < s->n; i++) v[i] = &s->s[i];
    if (s->n) qsort(v, s->n, sizeof *v, by_recent);
    for (size_t i = 0; i < s->n && i < PREFIX_MAX_ADVERT; i++) json_array_append_new(a, json_string(v[i]->key));
    free(v);
    pthread_mutex_unlock(&s->mu);
    return a;
}

void snapshot_store_stats(snapshot_store *s, snapshot_stats *out) {
    memset(out, 0, sizeof *out);
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->n_held = (int64_t)s->n;
    out->bytes_held = s->held;
    pthread_mutex_unlock(&s->mu);
}

static snap *find(snapshot_store *s, const char *key) {
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->s[i].key, key)) return &s->s[i];
    return NULL;
}

/* ---- one job ----------------------------------------------------------------------------- */

static bool enabled(const snap_job *sj) { return sj->store && sj->store->budget > 0; }

/* is the prefix of the first k stages kept? proper prefixes, and a single-stage composition whole */
static bool worth_keeping(const snap_job *sj, int k) {
    return k <= sj->n_keys && prefix_kept(k, sj->n_comp);
}

/* the restored steps' records: as the job that took the snapshot reported them, with this job's
 * seed, the original wall time and phases moved into record.restored_from, and the restore copy's
 * time as the wall time of the last one */
static json_t *restored_records(const snap *e, const snap_job *sj, int64_t copy_ms) {
    json_t *out = json_deep_copy(e->records);
    size_t i;
    json_t *r;
    json_array_foreach(out, i, r) {
        json_t *rec = json_object_get(r, "record");
        if (!json_is_object(rec)) { rec = json_object(); json_object_set_new(r, "record", rec); }
        json_t *from = json_pack("{s:I,s:i,s:i,s:s}", "job", (json_int_t)e->job, "attempt", e->attempt, "edit_set",
                                 e->edit_set, "key", e->key);
        json_t *w = json_object_get(r, "wall_ms"), *ph = json_object_get(r, "phases_s");
        if (w) json_object_set(from, "wall_ms", w);
        if (ph) json_object_set(from, "phases_s", ph);
        json_object_set_new(rec, "restored_from", from);
        bool last = i + 1 == json_array_size(out);
        json_object_set_new(r, "wall_ms", json_integer(last ? copy_ms : 0));
        json_object_set_new(r, "phases_s", last ? json_pack("{s:f}", "restore", copy_ms / 1000.0) : json_object());
        json_object_set_new(r, "seed", json_integer(prefix_effective_edit_set(sj->edit_set)));
    }
    return out;
}

int snap_job_begin(snap_job *sj, snapshot_store *store, model_slot *slot, bool slot_loaded, const interv_plan *plan,
                   const char *model_path, int64_t job, int attempt, int edit_set, const char *policy) {
    memset(sj, 0, sizeof *sj);
    sj->store = store;
    sj->model_path = model_path;
    sj->job = job;
    sj->attempt = attempt;
    sj->edit_set = edit_set;
    if (!enabled(sj) || !plan->canonical || !model_path) return 0;
    sj->n_comp = (int)json_array_size(plan->canonical);
    int nk = sj->n_comp < SNAP_MAX_K ? sj->n_comp : SNAP_MAX_K;
    for (int k = 1; k <= nk; k++) {
        cis_err e = {0};
        if (prefix_key(model_path, plan->canonical, k, edit_set, policy, sj->keys[k - 1], &e)) {
            LOG_W("job %lld: no prefix key for %d stages (%s): starting from the base weights", (long long)job, k, e.msg);
            break;
        }
        sj->n_keys = k;
    }
    snapshot_store *s = store;
    pthread_mutex_lock(&s->mu);
    if (slot_loaded) {
        for (size_t i = 0; i < s->n;) {
            if (!strcmp(s->s[i].model_path, model_path)) drop_at(s, i);
            else i++;
        }
    }
    snap *best = NULL;
    for (int k = sj->n_keys; k >= 1 && !best; k--) best = find(s, sj->keys[k - 1]);
    if (best) {
        int64_t t0 = mono_ms();
        cis_err e = {0};
        if (llama_model_copy_params(slot->work, best->m, &e)) {
            LOG_W("job %lld: snapshot %.12s could not be restored (%s): starting from the base weights", (long long)job,
                  best->key, e.msg);
            best = NULL;
        } else {
            int64_t copy_ms = mono_ms() - t0;
            best->used = ++s->tick;
            sj->restored = best->k;
            sj->records = restored_records(best, sj, copy_ms);
            s->st.hits++;
            s->st.stages_restored += best->k;
            size_t i;
            json_t *r;
            json_array_foreach(best->records, i, r) s->st.saved_ms += json_integer_value(json_object_get(r, "wall_ms"));
            LOG_I("job %lld: started from the snapshot of its first %d stage(s) (key %.12s, taken by job %lld) in "
                  "%lld ms", (long long)job, best->k, best->key, (long long)best->job, (long long)copy_ms);
        }
    }
    if (!best) s->st.misses++;
    pthread_mutex_unlock(&s->mu);
    return sj->restored;
}

void snap_job_after_step(void *arg, int done, llama_model *work, json_t *records) {
    snap_job *sj = arg;
    if (!enabled(sj) || done <= sj->restored || !worth_keeping(sj, done) || json_array_size(records) < (size_t)done)
        return;
    snapshot_store *s = sj->store;
    uint64_t bytes = (uint64_t)llama_model_numel(work) * sizeof(float);
    pthread_mutex_lock(&s->mu);
    const char *key = sj->keys[done - 1];
    if (find(s, key) || bytes > s->budget) {
        if (bytes > s->budget)
            LOG_D("snapshot of %d stage(s) not kept: %llu bytes exceed the budget of %llu", done,
                  (unsigned long long)bytes, (unsigned long long)s->budget);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    while (s->held + bytes > s->budget && s->n) { /* evict the least recently used */
        size_t lru = 0;
        for (size_t i = 1; i < s->n; i++)
            if (s->s[i].used < s->s[lru].used) lru = i;
        LOG_D("snapshot %.12s evicted (least recently used)", s->s[lru].key);
        drop_at(s, lru);
        s->st.evicted++;
    }
    cis_err e = {0};
    llama_model *m = llama_model_new(llama_model_config(work), llama_model_backend(work), &e);
    if (!m || llama_model_copy_params(m, work, &e)) {
        LOG_W("job %lld: snapshot of %d stage(s) not kept: %s", (long long)sj->job, done, e.msg);
        llama_model_free(&m);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->s = xrealloc(s->s, s->cap * sizeof *s->s);
    }
    snap *n = &s->s[s->n++];
    memset(n, 0, sizeof *n);
    snprintf(n->key, sizeof n->key, "%s", key);
    n->model_path = xstrdup(sj->model_path);
    n->m = m;
    n->records = json_array();
    for (int i = 0; i < done; i++) json_array_append_new(n->records, json_deep_copy(json_array_get(records, (size_t)i)));
    n->k = done;
    n->job = sj->job;
    n->attempt = sj->attempt;
    n->edit_set = sj->edit_set;
    n->bytes = bytes;
    n->used = ++s->tick;
    s->held += bytes;
    s->st.taken++;
    LOG_D("job %lld: kept the snapshot of its first %d stage(s) (key %.12s, %llu bytes; %zu held)", (long long)sj->job,
          done, key, (unsigned long long)bytes, s->n);
    pthread_mutex_unlock(&s->mu);
}

void snap_job_end(snap_job *sj) {
    if (!sj) return;
    json_decref(sj->records);
    sj->records = NULL;
}
