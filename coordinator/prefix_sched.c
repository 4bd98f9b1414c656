/* prefix_sched.c - which prefixes each worker holds, for the claim's preference (see prefix_sched.h). */
#include "coordinator/prefix_sched.h"
#include "common/prefix_key.h"
#include "common/protocol.h"

#include <stdlib.h>
#include <string.h>

typedef struct pdesc {
    char key[PREFIX_KEY_HEX + 1];
    char *model, *model_path, *text;   /* malloc'd */
    int edit_set;                      /* seed of its stages, or -1: they use none */
    uint64_t noted;                    /* tick of its last note (the oldest is forgotten first) */
    bool exhausted;                    /* a claim found no runnable job with it (until noted again) */
} pdesc;

#define N_ANTICIPATED 4   /* the kept prefixes of the jobs most recently leased to a worker */

typedef struct pworker {
    char id[PROTO_MAX_ID + 1];
    int n;                                                  /* as the worker listed them */
    char keys[PREFIX_SCHED_PER_WORKER][PREFIX_KEY_HEX + 1];
    int n_ant;                                              /* anticipated, newest first: kept */
    char ant[N_ANTICIPATED][PREFIX_KEY_HEX + 1];            /* apart, as a listing replaces keys[] */
} pworker;

struct prefix_sched {
    pdesc *d;
    size_t nd, capd;
    pworker *w;
    size_t nw, capw;
    uint64_t tick;
};

prefix_sched *prefix_sched_new(void) { return xcalloc(1, sizeof(prefix_sched)); }

static void desc_free(pdesc *d) {
    free(d->model);
    free(d->model_path);
    free(d->text);
}

void prefix_sched_free(prefix_sched **pp) {
    if (!pp || !*pp) return;
    prefix_sched *p = *pp;
    for (size_t i = 0; i < p->nd; i++) desc_free(&p->d[i]);
    free(p->d);
    free(p->w);
    free(p);
    *pp = NULL;
}

static pdesc *desc_find(prefix_sched *p, const char *key) {
    for (size_t i = 0; i < p->nd; i++)
        if (!memcmp(p->d[i].key, key, PREFIX_KEY_HEX)) return &p->d[i];
    return NULL;
}

void prefix_sched_note_job(prefix_sched *p, const char *model, const char *model_path, json_t *canonical, int edit_set) {
    int n = (int)json_array_size(canonical);
    for (int k = 1; k <= n; k++) {
        if (!prefix_kept(k, n)) continue;
        char key[PREFIX_KEY_HEX + 1];
        if (prefix_key(model_path, canonical, k, edit_set, NULL, key, NULL)) return;
        pdesc *d = desc_find(p, key);
        if (d) { d->noted = ++p->tick; d->exhausted = false; continue; }
        if (p->nd == PREFIX_SCHED_TABLE) { /* forget the oldest */
            size_t old = 0;
            for (size_t i = 1; i < p->nd; i++)
                if (p->d[i].noted < p->d[old].noted) old = i;
            desc_free(&p->d[old]);
            p->d[old] = p->d[--p->nd];
        }
        if (p->nd == p->capd) {
            p->capd = p->capd ? 2 * p->capd : 64;
            p->d = xrealloc(p->d, p->capd * sizeof *p->d);
        }
        d = &p->d[p->nd++];
        memset(d, 0, sizeof *d);
        memcpy(d->key, key, sizeof d->key);
        d->model = xstrdup(model);
        d->model_path = xstrdup(model_path);
        d->text = prefix_text(canonical, k);
        d->edit_set = prefix_seed_free(canonical, k) ? -1 : prefix_effective_edit_set(edit_set);
        d->noted = ++p->tick;
    }
}

static pworker *worker_find(prefix_sched *p, const char *id, bool add) {
    for (size_t i = 0; i < p->nw; i++)
        if (!strcmp(p->w[i].id, id)) return &p->w[i];
    if (!add) return NULL;
    if (p->nw == p->capw) {
        p->capw = p->capw ? 2 * p->capw : 16;
        p->w = xrealloc(p->w, p->capw * sizeof *p->w);
    }
    pworker *w = &p->w[p->nw++];
    memset(w, 0, sizeof *w);
    snprintf(w->id, sizeof w->id, "%s", id);
    return w;
}

void prefix_sched_worker_held(prefix_sched *p, const char *worker_id, json_t *prefixes) {
    if (!json_is_array(prefixes)) return;
    pworker *w = worker_find(p, worker_id, true); /* an empty list too: it keeps snapshots */
    w->n = 0;
    size_t i;
    json_t *it;
    json_array_foreach(prefixes, i, it) {
        if (w->n == PREFIX_SCHED_PER_WORKER) break;
        const char *k = json_string_value(it);
        if (prefix_key_valid(k)) memcpy(w->keys[w->n++], k, PREFIX_KEY_HEX + 1);
    }
}

void prefix_sched_anticipate(prefix_sched *p, const char *worker_id, const char *model_path, json_t *canonical,
                             int edit_set) {
    pworker *w = worker_find(p, worker_id, false);
    if (!w) return; /* it never said it keeps snapshots */
    int n = (int)json_array_size(canonical);
    for (int k = 1; k <= n; k++) {
        char key[PREFIX_KEY_HEX + 1];
        if (!prefix_kept(k, n) || prefix_key(model_path, canonical, k, edit_set, NULL, key, NULL)) continue;
        int at = w->n_ant < N_ANTICIPATED ? w->n_ant : N_ANTICIPATED - 1; /* drop the oldest */
        for (int i = 0; i < w->n_ant; i++)
            if (!strcmp(w->ant[i], key)) { at = i; break; }
        memmove(w->ant[1], w->ant[0], (size_t)at * sizeof w->ant[0]);
        memcpy(w->ant[0], key, sizeof key);
        if (at == w->n_ant) w->n_ant++;
    }
}

void prefix_sched_worker_gone(prefix_sched *p, const char *worker_id) {
    pworker *w = worker_find(p, worker_id, false);
    if (w) *w = p->w[--p->nw];
}

int prefix_sched_for(prefix_sched *p, const char *worker_id, js_prefix *out, int max) {
    pworker *w = worker_find(p, worker_id, false);
    int n = 0;
    for (int i = 0; w && i < w->n_ant + w->n && n < max; i++) { /* anticipated first, then listed */
        const char *key = i < w->n_ant ? w->ant[i] : w->keys[i - w->n_ant];
        bool dup = false;
        for (int a = 0; a < w->n_ant && i >= w->n_ant && !dup; a++) dup = !strcmp(w->ant[a], key);
        const pdesc *d = dup ? NULL : desc_find(p, key);
        if (!d || d->exhausted) continue; /* unknown (leased before a coordinator restart), or no job left */
        out[n++] = (js_prefix){d->model, d->model_path, d->text, d->edit_set, (int)(d - p->d), false};
    }
    return n;
}

void prefix_sched_claimed(prefix_sched *p, const js_prefix *pre, int n) {
    for (int i = 0; i < n; i++)
        if (pre[i].none && pre[i].tag >= 0 && (size_t)pre[i].tag < p->nd) p->d[pre[i].tag].exhausted = true;
}
