/* model_presets.c - per-model parameter presets of a models map, merged into a grid's
 * compositions before launch (model_presets.h). */
#include "coordinator/model_presets.h"
#include "common/recompress.h"
#include "common/spec.h"

#include <stdlib.h>
#include <string.h>

int model_presets_check(json_t *map, const char *where, cis_err *err) {
    const char *slot;
    json_t *v;
    json_object_foreach(map, slot, v) {
        json_t *pr = json_is_object(v) ? json_object_get(v, "presets") : NULL;
        if (!pr) continue;
        if (!json_is_object(pr))
            return err_set(err, CIS_EINVAL, "%s: $.%s.presets: expected an object {\"method\": {\"param\": value}} "
                           "(methods: %s)", where, slot, method_names());
        const char *mname;
        json_t *mp;
        json_object_foreach(pr, mname, mp) {
            const method_info *mi = method_lookup(mname);
            if (!mi)
                return err_set(err, CIS_EINVAL, "%s: $.%s.presets.%s: unknown method (known: %s)", where, slot, mname,
                               method_names());
            if (!json_is_object(mp))
                return err_set(err, CIS_EINVAL, "%s: $.%s.presets.%s: expected an object {\"param\": value}", where,
                               slot, mname);
            const char *pname;
            json_t *pv;
            json_object_foreach(mp, pname, pv) {
                char path[512], names[1024];
                snprintf(path, sizeof path, "%s: $.%s.presets.%s.%s", where, slot, mname, pname);
                const param_info *pi = param_lookup(mi, pname);
                if (!pi)
                    return err_set(err, CIS_EINVAL, "%s: unknown parameter \"%s\" for %s (allowed: %s)", path, pname,
                                   mname, method_param_names(mi, names, sizeof names));
                json_t *norm = spec_param_normalize(mi, pi, pv, path, err);
                if (!norm) return -1;
                json_decref(norm);
            }
        }
    }
    return 0;
}

/* the registry default of p, canonical (new reference; NULL for a required parameter) */
static json_t *default_of(const method_info *mi, const param_info *p) {
    if (!p->default_json) return NULL;
    json_t *d = json_loads(p->default_json, JSON_DECODE_ANY, NULL);
    cis_err e = {0};
    json_t *n = d ? spec_param_normalize(mi, p, d, "default", &e) : NULL;
    json_decref(d);
    return n;
}

/* merge one slot's presets into one canonical stage array (in place); the number of values set */
static int merge_stages(json_t *stages, json_t *presets) {
    int set = 0;
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st) {
        const char *m = json_string_value(json_object_get(st, "method"));
        json_t *mp = json_object_get(presets, m), *params = json_object_get(st, "params");
        const method_info *mi = method_lookup(m);
        if (!mp || !mi || !json_is_object(params)) continue;
        const char *pname;
        json_t *pv;
        json_object_foreach(mp, pname, pv) {
            const param_info *pi = param_lookup(mi, pname);
            if (!pi) continue; /* model_presets_check refused it already */
            json_t *d = default_of(mi, pi), *cur = json_object_get(params, pname);
            bool at_default = cur ? (d && json_equal(cur, d)) : true; /* absent = the default */
            json_decref(d);
            if (!at_default) continue; /* the grid set it: the grid wins */
            cis_err e = {0};
            json_t *norm = spec_param_normalize(mi, pi, pv, pname, &e);
            if (!norm) continue;
            json_object_set_new(params, pname, norm);
            set++;
        }
    }
    return set;
}

static int cmp_slot_key(const void *a, const void *b, void *ctx) {
    const grid_comp *c = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int r = strcmp(c[i].model, c[j].model);
    if (!r) r = strcmp(c[i].key, c[j].key);
    return r ? r : (i > j) - (i < j);
}

int model_presets_apply(grid *g, json_t *map, const char *where, cis_err *err) {
    if (!map || !g) return 0;
    if (model_presets_check(map, where, err)) return -1;
    bool changed = false;
    for (size_t i = 0; i < g->n_comps; i++) {
        grid_comp *c = &g->comps[i];
        json_t *slot = json_object_get(map, c->model);
        json_t *presets = json_is_object(slot) ? json_object_get(slot, "presets") : NULL;
        if (!presets) continue;
        json_t *stages = json_loads(c->canonical, 0, NULL);
        if (!json_is_array(stages)) {
            json_decref(stages);
            return err_set(err, CIS_EINVAL, "%s: composition %s of %s: canonical form is not a JSON array",
                           where, c->label, c->model);
        }
        if (merge_stages(stages, presets) == 0) { json_decref(stages); continue; }
        /* re-validate the merged stages as a whole (the presets came from a user's file) */
        char at[256];
        snprintf(at, sizeof at, "%s: $.%s.presets merged into %s", where, c->model, c->label);
        json_t *norm = spec_normalize(stages, at, true, err);
        json_decref(stages);
        if (!norm) return -1;
        free(c->canonical);
        c->canonical = spec_dump_canonical(norm);
        grid_comp_key(c->canonical, c->recompress, c->key);
        free(c->label);
        char *l = spec_label(norm);
        c->label = c->recompress != RECOMPRESS_PAPER ? xasprintf("%s [recompress=%s]", l, recompress_name(c->recompress))
                                                     : xstrdup(l);
        free(l);
        json_decref(norm);
        changed = true;
    }
    if (!changed || g->n_comps < 2) return 0;
    /* two compositions of a slot made one by its presets: refused, not merged silently */
    size_t *idx = xmalloc(g->n_comps * sizeof *idx);
    for (size_t i = 0; i < g->n_comps; i++) idx[i] = i;
    qsort_r(idx, g->n_comps, sizeof *idx, cmp_slot_key, g->comps);
    int rc = 0;
    for (size_t k = 1; k < g->n_comps && !rc; k++) {
        const grid_comp *a = &g->comps[idx[k - 1]], *b = &g->comps[idx[k]];
        if (!strcmp(a->model, b->model) && !strcmp(a->key, b->key))
            rc = err_set(err, CIS_EINVAL, "%s: $.%s.presets make two compositions of the grid the same for slot %s "
                         "(a grid level at the registry default replaced by the preset equals another level): "
                         "%.400s; set the parameter in the grid for this slot or drop it from the presets",
                         where, a->model, a->model, a->canonical);
    }
    free(idx);
    return rc;
}
