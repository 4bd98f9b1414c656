/* job_store_memory.c - the job store's side of scheduling by device memory (issue 15): each job's
 * estimated need, stored at launch (job_memory; the formula is coordinator/mem_need.h), each
 * connected worker's offer (worker_memory), and the questions `cisweep status` and the
 * coordinator ask: which pending jobs no worker can take. The claim's condition itself is the
 * JS_FITS clause of the claim statements (job_store.c) used by js_claim_fit. */
#include "coordinator/job_store_int.h"
#include "coordinator/mem_need.h"
#include "common/log.h"

#include <stdlib.h>
#include <string.h>

/* ---- at launch ------------------------------------------------------------------------------ */

typedef struct memo_model {
    int64_t model_id;
    bool known;             /* m holds the model's sizes (or an override) */
    mem_model m;
} memo_model;

struct js_memo {
    json_t *models;         /* the models map (borrowed), or NULL */
    memo_model *v;
    size_t n, cap;
    sqlite3_stmt *ins;      /* the job_memory insert, prepared on first use */
};

int js_memo_open(json_t *models, js_memo **out, cis_err *err) {
    *out = NULL;
    const char *slot;
    json_t *v;
    json_object_foreach(models, slot, v) {
        json_t *nm = json_is_object(v) ? json_object_get(v, "need_mb") : NULL;
        if (nm && !(json_is_integer(nm) && json_integer_value(nm) >= 1))
            return err_set(err, CIS_EINVAL, "models map: $.%s.need_mb: expected a positive integer (MiB of device "
                           "memory each job of the slot needs)", slot);
    }
    js_memo *mm = xcalloc(1, sizeof *mm);
    mm->models = models;
    *out = mm;
    return 0;
}

void js_memo_close(js_memo **mm) {
    if (!mm || !*mm) return;
    sqlite3_finalize((*mm)->ins);
    free((*mm)->v);
    free(*mm);
    *mm = NULL;
}

/* the memory model of model_id, read on first use; NULL when unknown */
static const mem_model *memo_model_of(job_store *js, js_memo *mm, int64_t model_id, const char *name,
                                      cis_err *err, bool *failed) {
    for (size_t i = 0; i < mm->n; i++)
        if (mm->v[i].model_id == model_id) return mm->v[i].known ? &mm->v[i].m : NULL;
    if (mm->n == mm->cap) {
        mm->cap = mm->cap ? 2 * mm->cap : 8;
        mm->v = xrealloc(mm->v, mm->cap * sizeof *mm->v);
    }
    memo_model *e = &mm->v[mm->n++];
    memset(e, 0, sizeof *e);
    e->model_id = model_id;
    json_t *slot = mm->models ? json_object_get(mm->models, name) : NULL;
    json_t *nm = json_is_object(slot) ? json_object_get(slot, "need_mb") : NULL;
    if (json_is_integer(nm)) {
        e->m.override_mb = json_integer_value(nm);
        e->known = true;
        return &e->m;
    }
    sqlite3_stmt *st = NULL;
    char *path = NULL;
    if (sqlite3_prepare_v2(js->db, "SELECT path FROM models WHERE id = ?1", -1, &st, NULL) != SQLITE_OK) {
        *failed = true;
        js_dberr(js, err, "looking up a model's path");
        return NULL;
    }
    sqlite3_bind_int64(st, 1, model_id);
    if (sqlite3_step(st) == SQLITE_ROW) path = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    cis_err why = {0};
    if (path && mem_model_from_dir(path, &e->m, &why) == 0) e->known = true;
    else
        LOG_I("model slot \"%s\": no memory estimate (%s): its jobs may go to any worker; give the slot "
              "\"need_mb\" in the models map to set one", name, path ? why.msg : "no path");
    free(path);
    return e->known ? &e->m : NULL;
}

int js_memo_job(job_store *js, js_memo *mm, int64_t model_id, const char *model_name, const char *canonical,
                int64_t job_id, cis_err *err) {
    if (!mm) return 0;
    bool failed = false;
    const mem_model *m = memo_model_of(js, mm, model_id, model_name, err, &failed);
    if (failed) return -1;
    if (!m) return 0;
    json_t *stages = json_loads(canonical, 0, NULL);
    mem_need need;
    mem_need_estimate(m, stages, &need);
    json_decref(stages);
    if (!mm->ins && sqlite3_prepare_v2(js->db, "INSERT INTO job_memory(job_id, need_mb, kind, basis) VALUES "
                                       "(?1, ?2, ?3, ?4) ON CONFLICT(job_id) DO NOTHING", -1, &mm->ins, NULL) != SQLITE_OK)
        return js_dberr(js, err, "storing a job's memory need");
    sqlite3_stmt *st = mm->ins;
    sqlite3_bind_int64(st, 1, job_id);
    sqlite3_bind_int64(st, 2, need.need_mb);
    sqlite3_bind_text(st, 3, need.kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, need.basis, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) return js_dberr(js, err, "storing a job's memory need");
    return 0;
}

/* ---- workers' offers and jobs no worker fits ------------------------------------------------ */

int js_worker_offer(job_store *js, const char *worker_id, int64_t offer_mb, const char *source, int64_t now,
                    cis_err *err) {
    if (!worker_id || !*worker_id) return err_set(err, CIS_EINVAL, "worker offer: empty worker id");
    if (offer_mb >= 0 && (!source || (strcmp(source, "measured") && strcmp(source, "option"))))
        return err_set(err, CIS_EINVAL, "worker %s: the offer's source must be measured or option", worker_id);
    sqlite3_stmt *st = NULL;
    const char *sql = offer_mb < 0 ? "DELETE FROM worker_memory WHERE worker_id = ?1"
                                   : "INSERT INTO worker_memory(worker_id, free_mb, source, updated_at) "
                                     "VALUES (?1, ?2, ?3, ?4) ON CONFLICT(worker_id) DO UPDATE SET "
                                     "free_mb = excluded.free_mb, source = excluded.source, "
                                     "updated_at = excluded.updated_at";
    if (sqlite3_prepare_v2(js->db, sql, -1, &st, NULL) != SQLITE_OK) return js_dberr(js, err, "recording a worker's memory");
    sqlite3_bind_text(st, 1, worker_id, -1, SQLITE_TRANSIENT);
    if (offer_mb >= 0) {
        sqlite3_bind_int64(st, 2, offer_mb);
        sqlite3_bind_text(st, 3, source, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 4, now);
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return js_dberr(js, err, "recording a worker's memory");
    return 0;
}

int js_unfit_jobs(job_store *js, int64_t max_offer_mb, js_unfit *out, int max, int64_t *count, cis_err *err) {
    *count = 0;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(js->db, "SELECT j.id, jm.need_mb, m.name, jm.kind, count(*) OVER () FROM jobs j "
                           "JOIN job_memory jm ON jm.job_id = j.id JOIN models m ON m.id = j.model_id "
                           "WHERE j.state = 'pending' AND jm.need_mb > ?1 ORDER BY jm.need_mb DESC, j.id LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return js_dberr(js, err, "listing jobs no worker fits");
    sqlite3_bind_int64(st, 1, max_offer_mb);
    sqlite3_bind_int(st, 2, max > 0 ? max : 1);
    int rc, n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        *count = sqlite3_column_int64(st, 4);
        if (n < max && out) {
            js_unfit *u = &out[n++];
            memset(u, 0, sizeof *u);
            u->job_id = sqlite3_column_int64(st, 0);
            u->need_mb = sqlite3_column_int64(st, 1);
            snprintf(u->model, sizeof u->model, "%s", (const char *)sqlite3_column_text(st, 2));
            snprintf(u->kind, sizeof u->kind, "%s", (const char *)sqlite3_column_text(st, 3));
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return js_dberr(js, err, "listing jobs no worker fits");
    return 0;
}

int js_live_offer(job_store *js, int *n_live, int *n_unconstrained, int64_t *max_offer_mb, cis_err *err) {
    *n_live = *n_unconstrained = 0;
    *max_offer_mb = -1;
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(js->db, "SELECT count(*), count(*) - count(wm.worker_id), coalesce(max(wm.free_mb), -1) "
                           "FROM workers w LEFT JOIN worker_memory wm ON wm.worker_id = w.id WHERE w.state <> 'gone'",
                           -1, &st, NULL) != SQLITE_OK)
        return js_dberr(js, err, "reading the workers' memory");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *n_live = sqlite3_column_int(st, 0);
        *n_unconstrained = sqlite3_column_int(st, 1);
        *max_offer_mb = sqlite3_column_int64(st, 2);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW) return js_dberr(js, err, "reading the workers' memory");
    return 0;
}
