/* grid.c - expansion of a declarative grid spec (docs/grids.md) into compositions and jobs.
 *
 * A grid file is one "block" (models, categories of method entries with levels, singles,
 * baseline, category pairs, explicit compositions, a selftest generator) plus "subgrids": more
 * blocks, e.g. the reduced grids of the appendix models. Each block expands, per model in its
 * order, into: the baseline, the singles (edit, compress, unlearn), each listed pair (A->B, then
 * B->A when both_orders), the explicit compositions, then the selftest ones. A composition with an
 * editor runs once per edit set; one without runs once, or once per seed when the block has
 * "seeds" (the job's edit_set column then holds the seed; docs/grids.md). Every error names the
 * file and the JSON path of the offending value; unknown keys are errors at every level; two
 * compositions with the same model and canonical spec are an error. */
#include "coordinator/grid.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "common/spec.h"
#include "common/recompress.h"

#define MAX_EDIT_SETS 100000
#define MAX_COMPS 5000000

/* expansion state */
typedef struct gx {
    unsigned flags;
    cis_err *err;
    grid_comp *comps;
    char **src;          /* [n] JSON path each composition came from (duplicate messages) */
    size_t n, cap;
    size_t n_jobs;       /* jobs so far (compositions x edit sets) */
} gx;

/* one block's settings after parsing */
typedef struct block {
    const char *path;    /* "$" or "$.subgrids[i]" */
    json_t *models;      /* array of strings (borrowed) or NULL */
    int *edit_sets;      /* [n_edit_sets] */
    int n_edit_sets;
    int *seeds;          /* [n_seeds] seeds of compositions without an editor ("seeds"); NULL = once */
    int n_seeds;
    int priority;
    int recompress;      /* recompress_policy (common/recompress.h), "recompress" key; inherited */
    bool singles, baseline, both_orders;
    json_t *cat[3];      /* per category: array of normalized single stages (owned) */
    json_t *cat_src[3];  /* per category: JSON path of each stage's method entry (strings, owned) */
} block;

static int bad(cis_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(cis_err *err, const char *fmt, ...) {
    va_list ap;
    char buf[sizeof err->msg];
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return err_set(err, CIS_EINVAL, "%s", buf);
}

/* reject keys of obj not in the NULL-terminated list */
static int check_keys(json_t *obj, const char *path, const char *const *allowed, cis_err *err) {
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (!strcmp(k, allowed[i])) { ok = true; break; }
        if (!ok) {
            char list[512];
            size_t off = 0;
            list[0] = 0;
            for (size_t i = 0; allowed[i] && off < sizeof list; i++)
                off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? "|" : "", allowed[i]);
            return bad(err, "%s: unknown key \"%s\" (allowed: %s)", path, k, list);
        }
    }
    return 0;
}

static int get_bool(json_t *obj, const char *key, const char *path, bool dflt, bool *out, cis_err *err) {
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v) return 0;
    if (!json_is_boolean(v)) return bad(err, "%s.%s: expected true or false", path, key);
    *out = json_is_true(v);
    return 0;
}

static int get_int(json_t *obj, const char *key, const char *path, long long lo, long long hi, int dflt,
                   int *out, cis_err *err) {
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(err, "%s.%s: expected an integer in %lld..%lld", path, key, lo, hi);
    *out = (int)json_integer_value(v);
    return 0;
}

/* "models": non-empty array of distinct non-empty names without whitespace */
static int parse_models(json_t *v, const char *path, cis_err *err) {
    if (!json_is_array(v) || json_array_size(v) == 0)
        return bad(err, "%s.models: expected a non-empty list of model slot names", path);
    for (size_t i = 0; i < json_array_size(v); i++) {
        json_t *m = json_array_get(v, i);
        const char *s = json_string_value(m);
        if (!s || !*s || strlen(s) > 200)
            return bad(err, "%s.models[%zu]: expected a model slot name (a non-empty string)", path, i);
        for (const char *c = s; *c; c++)
            if ((unsigned char)*c <= ' ' || *c == '"' || *c == '\\')
                return bad(err, "%s.models[%zu]: \"%s\" has whitespace or quotes (slot names are plain words)", path, i, s);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s, json_string_value(json_array_get(v, j))))
                return bad(err, "%s.models[%zu]: \"%s\" is listed twice", path, i, s);
    }
    return 0;
}

/* "edit_sets" / "seeds" (key): N (meaning 1..N) or a list of distinct positive integers; for
 * "seeds" (allow_zero) 0 means none: the compositions without an editor run once (*n = 0) */
static int parse_sets(json_t *v, const char *path, const char *key, bool allow_zero, int **out, int *n, cis_err *err) {
    if (json_is_integer(v)) {
        long long k = json_integer_value(v);
        if (k < (allow_zero ? 0 : 1) || k > MAX_EDIT_SETS)
            return bad(err, "%s.%s: %lld is out of range (allowed: %d..%d%s)", path, key, k, allow_zero ? 0 : 1,
                       MAX_EDIT_SETS, allow_zero ? "; 0 = run once" : "");
        int *e = k ? xmalloc(sizeof(int) * (size_t)k) : NULL;
        for (int i = 0; i < k; i++) e[i] = i + 1;
        free(*out);
        *out = e;
        *n = (int)k;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > MAX_EDIT_SETS)
        return bad(err, "%s.%s: expected a count N (sets 1..N) or a non-empty list of positive integers", path, key);
    size_t k = json_array_size(v);
    int *e = xmalloc(sizeof(int) * k);
    for (size_t i = 0; i < k; i++) {
        json_t *x = json_array_get(v, i);
        if (!json_is_integer(x) || json_integer_value(x) < 1 || json_integer_value(x) > 1000000000) {
            free(e);
            return bad(err, "%s.%s[%zu]: expected a positive integer", path, key, i);
        }
        e[i] = (int)json_integer_value(x);
        for (size_t j = 0; j < i; j++)
            if (e[j] == e[i]) {
                int dup = e[i];
                free(e);
                return bad(err, "%s.%s[%zu]: %d is listed twice", path, key, i, dup);
            }
    }
    free(*out);
    *out = e;
    *n = (int)k;
    return 0;
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* one method entry {"method", "levels": {param: [values]}, "params": {...}} -> appended stages */
static int expand_entry(json_t *e, const char *path, method_category cat, json_t *out, json_t *srcs, cis_err *err) {
    static const char *const KEYS[] = {"method", "levels", "params", NULL};
    if (!json_is_object(e)) return bad(err, "%s: expected a method entry {\"method\": NAME, \"levels\": {...}, \"params\": {...}}", path);
    if (check_keys(e, path, KEYS, err)) return -1;
    const char *name = json_string_value(json_object_get(e, "method"));
    if (!name) return bad(err, "%s.method: missing or not a string (known: %s)", path, method_names());
    const method_info *m = method_lookup(name);
    if (!m) return bad(err, "%s.method: unknown method \"%s\" (known: %s)", path, name, method_names());
    if (m->category != cat)
        return bad(err, "%s.method: %s is a%s %s method, not %s", path, name,
                   m->category == CAT_EDIT || m->category == CAT_UNLEARN ? "n" : "", category_name(m->category),
                   category_name(cat));
    char names[256];
    method_param_names(m, names, sizeof names);
    json_t *params = json_object_get(e, "params"), *levels = json_object_get(e, "levels");
    if (params && !json_is_object(params)) return bad(err, "%s.params: expected an object", path);
    if (levels && !json_is_object(levels)) return bad(err, "%s.levels: expected an object {param: [values]}", path);

    /* fixed parameters, normalized */
    json_t *base = json_object();
    const char *k;
    json_t *v;
    int rc = -1;
    json_t **lvals = NULL;
    const char **lkeys = NULL;
    size_t nl = 0;
    json_object_foreach(params, k, v) {
        const param_info *p = param_lookup(m, k);
        if (!p) { bad(err, "%s.params.%s: unknown parameter \"%s\" for %s (allowed: %s)", path, k, k, name, names); goto out; }
        char *pw = xasprintf("%s.params.%s", path, k);
        json_t *nv = spec_param_normalize(m, p, v, pw, err);
        free(pw);
        if (!nv) goto out;
        json_object_set_new(base, k, nv);
    }
    /* levels: sorted parameter names, each a non-empty list of normalized values */
    nl = levels ? json_object_size(levels) : 0;
    lkeys = xcalloc(nl + 1, sizeof *lkeys);
    lvals = xcalloc(nl + 1, sizeof *lvals);
    size_t i = 0;
    json_object_foreach(levels, k, v) lkeys[i++] = k;
    qsort(lkeys, nl, sizeof *lkeys, cmp_cstr);
    for (i = 0; i < nl; i++) {
        const param_info *p = param_lookup(m, lkeys[i]);
        if (!p) { bad(err, "%s.levels.%s: unknown parameter \"%s\" for %s (allowed: %s)", path, lkeys[i], lkeys[i], name, names); goto out; }
        if (json_object_get(base, lkeys[i])) { bad(err, "%s.levels.%s: also given in %s.params (give it in one place)", path, lkeys[i], path); goto out; }
        json_t *list = json_object_get(levels, lkeys[i]);
        if (!json_is_array(list) || json_array_size(list) == 0) {
            bad(err, "%s.levels.%s: expected a non-empty list of values", path, lkeys[i]);
            goto out;
        }
        lvals[i] = json_array();
        for (size_t j = 0; j < json_array_size(list); j++) {
            char *pw = xasprintf("%s.levels.%s[%zu]", path, lkeys[i], j);
            json_t *nv = spec_param_normalize(m, p, json_array_get(list, j), pw, err);
            free(pw);
            if (!nv) goto out;
            json_array_append_new(lvals[i], nv);
        }
    }
    for (const param_info *p = m->params; p->name; p++) {
        bool given = json_object_get(base, p->name) != NULL;
        for (i = 0; i < nl && !given; i++) given = !strcmp(lkeys[i], p->name);
        if (!given && !p->default_json) {
            bad(err, "%s: missing required parameter \"%s\" for %s (give it in \"levels\" or \"params\")", path, p->name, name);
            goto out;
        }
    }
    /* cartesian product, first level parameter outermost */
    size_t idx[64] = {0};
    if (nl > 64) { bad(err, "%s.levels: too many level parameters", path); goto out; }
    for (;;) {
        json_t *pp = json_deep_copy(base);
        for (i = 0; i < nl; i++) json_object_set(pp, lkeys[i], json_array_get(lvals[i], idx[i]));
        json_t *stage = json_object();
        json_object_set_new(stage, "method", json_string(name));
        json_object_set_new(stage, "params", pp);
        json_t *arr = json_array();
        json_array_append_new(arr, stage);
        json_t *norm = spec_normalize(arr, path, false, err);
        json_decref(arr);
        if (!norm) goto out;
        json_array_append(out, json_array_get(norm, 0));
        json_array_append_new(srcs, json_string(path));
        json_decref(norm);
        if (nl == 0) break;
        bool done = true; /* odometer: the last level parameter turns fastest */
        for (size_t d = nl; d-- > 0;) {
            if (++idx[d] < json_array_size(lvals[d])) { done = false; break; }
            idx[d] = 0;
        }
        if (done) break;
    }
    rc = 0;
out:
    for (i = 0; lvals && i < nl; i++) json_decref(lvals[i]);
    free(lvals);
    free(lkeys);
    json_decref(base);
    return rc;
}

/* add one composition (stages: array of stages, not yet canonical) */
static int add_comp(gx *x, const block *b, const char *model, json_t *stages, const char *src) {
    char key[65];
    json_t *norm = spec_normalize(stages, src, x->flags & GRID_ALLOW_SELFTEST, x->err);
    if (!norm) return -1;
    if (x->n >= MAX_COMPS) { json_decref(norm); return bad(x->err, "%s: more than %d compositions", src, MAX_COMPS); }
    /* the sets this composition runs over: an editor's edit sets; else the block's seeds, if any
     * (not for the baseline: it has no stage that a seed could change) */
    bool editing = spec_has_category(norm, CAT_EDIT), seeded = !editing && json_array_size(norm) > 0 && b->n_seeds > 0;
    const int *sets = editing ? b->edit_sets : seeded ? b->seeds : NULL;
    int n_sets = editing ? b->n_edit_sets : seeded ? b->n_seeds : 0;
    size_t add = n_sets > 0 ? (size_t)n_sets : 1;
    if (x->n_jobs + add > GRID_MAX_JOBS && !(x->flags & GRID_ALLOW_HUGE)) {
        json_decref(norm);
        return bad(x->err, "%s: the grid expands to more than %d jobs; check its ranges and counts, or pass "
                   "--allow-huge-grid to launch it anyway", src, GRID_MAX_JOBS);
    }
    if (b->recompress == RECOMPRESS_MASK) /* the worker refuses these too (plan.c); say it at load */
        for (size_t i = 0; i + 1 < json_array_size(norm); i++) {
            const char *m = json_string_value(json_object_get(json_array_get(norm, i), "method"));
            const method_info *mi = method_lookup(m);
            if (mi && mi->category == CAT_COMPRESS && strcmp(m, "wanda") && strcmp(m, "sparsegpt")) {
                bad(x->err, "%s: \"recompress\": \"mask\" keeps only a pruner's (wanda, sparsegpt) zeros, "
                    "but stage %zu is the quantizer %s followed by another stage; give quantizers a block "
                    "with paper, never or always", src, i + 1, m);
                json_decref(norm); /* after: m lives in norm */
                return -1;
            }
        }
    x->n_jobs += add;
    char *text = spec_dump_canonical(norm);
    grid_comp_key(text, b->recompress, key);
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 256;
        x->comps = xrealloc(x->comps, x->cap * sizeof *x->comps);
        x->src = xrealloc(x->src, x->cap * sizeof *x->src);
    }
    grid_comp *c = &x->comps[x->n];
    memset(c, 0, sizeof *c);
    c->model = xstrdup(model);
    c->canonical = text;
    memcpy(c->key, key, sizeof key);
    c->pattern = spec_pattern(norm);
    c->label = spec_label(norm);
    if (b->recompress != RECOMPRESS_PAPER) {
        char *l = xasprintf("%s [recompress=%s]", c->label, recompress_name(b->recompress));
        free(c->label);
        c->label = l;
    }
    c->recompress = b->recompress;
    c->priority = b->priority;
    if (n_sets > 0) {
        c->n_edit_sets = n_sets;
        c->edit_sets = xmalloc(sizeof(int) * (size_t)n_sets);
        memcpy(c->edit_sets, sets, sizeof(int) * (size_t)n_sets);
        c->seeded = seeded;
    }
    x->src[x->n] = xstrdup(src);
    x->n++;
    json_decref(norm);
    return 0;
}

static json_t *pair_of(json_t *a, json_t *b) {
    json_t *arr = json_array();
    json_array_append(arr, a);
    if (b) json_array_append(arr, b);
    return arr;
}

static void block_clear(block *b) {
    free(b->edit_sets);
    free(b->seeds);
    for (int i = 0; i < 3; i++) { json_decref(b->cat[i]); json_decref(b->cat_src[i]); }
}

/* parse and expand one block; top: the file's top level (other keys allowed, no inheritance) */
static int expand_block(gx *x, json_t *obj, const char *path, const block *parent) {
    static const char *const TOP_KEYS[] = {"name", "description", "version", "max_attempts", "models", "edit_sets",
        "seeds", "priority", "categories", "singles", "baseline", "pairs", "both_orders", "compositions", "selftest",
        "subgrids", "recompress", NULL};
    static const char *const SUB_KEYS[] = {"name", "description", "models", "edit_sets", "seeds", "priority", "categories",
        "singles", "baseline", "pairs", "both_orders", "compositions", "selftest", "recompress", NULL};
    cis_err *err = x->err;
    if (!json_is_object(obj)) return bad(err, "%s: expected an object", path);
    if (check_keys(obj, path, parent ? SUB_KEYS : TOP_KEYS, err)) return -1;
    if (parent) {
        json_t *nm = json_object_get(obj, "name"), *ds = json_object_get(obj, "description");
        if (nm && !json_is_string(nm)) return bad(err, "%s.name: expected a string", path);
        if (ds && !json_is_string(ds)) return bad(err, "%s.description: expected a string", path);
    }

    block b = {0};
    b.path = path;
    int rc = -1;
    json_t *catobj = json_object_get(obj, "categories"), *pairs = json_object_get(obj, "pairs"),
           *comps = json_object_get(obj, "compositions"), *selftest = json_object_get(obj, "selftest");
    b.models = json_object_get(obj, "models");
    if (b.models && parse_models(b.models, path, err)) goto out;
    if (parent) {
        b.n_edit_sets = parent->n_edit_sets;
        b.edit_sets = xmalloc(sizeof(int) * (size_t)parent->n_edit_sets);
        memcpy(b.edit_sets, parent->edit_sets, sizeof(int) * (size_t)parent->n_edit_sets);
    } else {
        b.n_edit_sets = 1;
        b.edit_sets = xmalloc(sizeof(int));
        b.edit_sets[0] = 1;
    }
    if (json_object_get(obj, "edit_sets") &&
        parse_sets(json_object_get(obj, "edit_sets"), path, "edit_sets", false, &b.edit_sets, &b.n_edit_sets, err))
        goto out;
    if (parent && parent->n_seeds > 0) {
        b.n_seeds = parent->n_seeds;
        b.seeds = xmalloc(sizeof(int) * (size_t)parent->n_seeds);
        memcpy(b.seeds, parent->seeds, sizeof(int) * (size_t)parent->n_seeds);
    }
    if (json_object_get(obj, "seeds") &&
        parse_sets(json_object_get(obj, "seeds"), path, "seeds", true, &b.seeds, &b.n_seeds, err)) goto out;
    if (get_int(obj, "priority", path, -1000000, 1000000, parent ? parent->priority : 0, &b.priority, err)) goto out;
    b.recompress = parent ? parent->recompress : RECOMPRESS_PAPER;
    json_t *rcv = json_object_get(obj, "recompress");
    if (rcv && (b.recompress = recompress_parse(json_string_value(rcv))) < 0) {
        if (json_is_string(rcv))
            bad(err, "%s.recompress: \"%s\" is not a recompress policy (allowed: %s)", path, json_string_value(rcv),
                RECOMPRESS_CHOICES);
        else bad(err, "%s.recompress: expected a string, one of %s", path, RECOMPRESS_CHOICES);
        goto out;
    }
    if (get_bool(obj, "singles", path, true, &b.singles, err) || get_bool(obj, "baseline", path, false, &b.baseline, err) ||
        get_bool(obj, "both_orders", path, parent ? parent->both_orders : true, &b.both_orders, err)) goto out;

    /* categories */
    if (catobj && !json_is_object(catobj)) { bad(err, "%s.categories: expected an object {\"edit\": [...], ...}", path); goto out; }
    {
        const char *k;
        json_t *v;
        json_object_foreach(catobj, k, v) {
            int c = category_parse(k);
            if (c < 0 || c == CAT_TEST) { bad(err, "%s.categories: unknown key \"%s\" (allowed: edit|compress|unlearn)", path, k); goto out; }
            char *cp = xasprintf("%s.categories.%s", path, k);
            b.cat[c] = json_array();
            b.cat_src[c] = json_array();
            int r = json_is_array(v) ? 0 : bad(err, "%s: expected a list of method entries", cp);
            for (size_t i = 0; !r && i < json_array_size(v); i++) {
                char *ep = xasprintf("%s[%zu]", cp, i);
                r = expand_entry(json_array_get(v, i), ep, (method_category)c, b.cat[c], b.cat_src[c], err);
                free(ep);
            }
            free(cp);
            if (r) goto out;
        }
    }
    /* pairs: check before expanding anything */
    if (pairs && !json_is_array(pairs)) { bad(err, "%s.pairs: expected a list of [category, category] pairs", path); goto out; }
    for (size_t i = 0; i < json_array_size(pairs); i++) {
        json_t *p = json_array_get(pairs, i);
        if (!json_is_array(p) || json_array_size(p) != 2) {
            bad(err, "%s.pairs[%zu]: expected [category, category] (categories: edit|compress|unlearn)", path, i);
            goto out;
        }
        int c[2];
        for (int j = 0; j < 2; j++) {
            const char *s = json_string_value(json_array_get(p, j));
            c[j] = category_parse(s);
            if (c[j] < 0 || c[j] == CAT_TEST) {
                bad(err, "%s.pairs[%zu][%d]: unknown category %s%s%s (allowed: edit|compress|unlearn)", path, i, j,
                    s ? "\"" : "", s ? s : "(not a string)", s ? "\"" : "");
                goto out;
            }
            if (!b.cat[c[j]] || json_array_size(b.cat[c[j]]) == 0) {
                bad(err, "%s.pairs[%zu][%d]: category \"%s\" has no methods in %s.categories", path, i, j, s, path);
                goto out;
            }
        }
        if (c[0] == c[1]) { bad(err, "%s.pairs[%zu]: a pair needs two different categories", path, i); goto out; }
    }
    if (comps && !json_is_array(comps)) { bad(err, "%s.compositions: expected a list of stage lists", path); goto out; }
    long long st_count = 0, st_start = 0;
    json_t *st_params = NULL;
    if (selftest) {
        static const char *const ST_KEYS[] = {"count", "params", "id_start", NULL};
        char *sp = xasprintf("%s.selftest", path);
        int r = 0;
        if (!(x->flags & GRID_ALLOW_SELFTEST))
            r = bad(err, "%s: the selftest generator is a test fixture, accepted only with --allow-selftest", sp);
        else if (!json_is_object(selftest))
            r = bad(err, "%s: expected {\"count\": N, \"params\": {...}, \"id_start\": K}", sp);
        else if (check_keys(selftest, sp, ST_KEYS, err)) r = -1;
        else {
            json_t *cnt = json_object_get(selftest, "count"), *ids = json_object_get(selftest, "id_start");
            st_params = json_object_get(selftest, "params");
            if (!json_is_integer(cnt) || json_integer_value(cnt) < 1 || json_integer_value(cnt) > MAX_COMPS)
                r = bad(err, "%s.count: expected an integer in 1..%d", sp, MAX_COMPS);
            else if (x->n_jobs + (size_t)json_integer_value(cnt) > GRID_MAX_JOBS && !(x->flags & GRID_ALLOW_HUGE))
                r = bad(err, "%s.count: the grid expands to more than %d jobs; check the count, or pass "
                        "--allow-huge-grid to launch it anyway", sp, GRID_MAX_JOBS);
            else if (ids && (!json_is_integer(ids) || json_integer_value(ids) < 0))
                r = bad(err, "%s.id_start: expected a non-negative integer", sp);
            else if (st_params && !json_is_object(st_params))
                r = bad(err, "%s.params: expected an object", sp);
            else if (st_params && json_object_get(st_params, "id"))
                r = bad(err, "%s.params.id: the generator sets \"id\" itself (use id_start)", sp);
            else { st_count = json_integer_value(cnt); st_start = ids ? json_integer_value(ids) : 0; }
        }
        free(sp);
        if (r) goto out;
    }
    bool generates = b.baseline || (b.singles && (b.cat[0] || b.cat[1] || b.cat[2])) || json_array_size(pairs) ||
                     json_array_size(comps) || st_count;
    if (generates && !b.models) { bad(err, "%s.models: missing (a list of model slot names)", path); goto out; }

    for (size_t mi = 0; generates && mi < json_array_size(b.models); mi++) {
        const char *model = json_string_value(json_array_get(b.models, mi));
        char *src;
        if (b.baseline) {
            json_t *e = json_array();
            src = xasprintf("%s.baseline", path);
            int r = add_comp(x, &b, model, e, src);
            free(src);
            json_decref(e);
            if (r) goto out;
        }
        for (int c = 0; b.singles && c < 3; c++)
            for (size_t i = 0; i < json_array_size(b.cat[c]); i++) {
                json_t *e = pair_of(json_array_get(b.cat[c], i), NULL);
                int r = add_comp(x, &b, model, e, json_string_value(json_array_get(b.cat_src[c], i)));
                json_decref(e);
                if (r) goto out;
            }
        for (size_t pi = 0; pi < json_array_size(pairs); pi++) {
            json_t *p = json_array_get(pairs, pi);
            int c0 = category_parse(json_string_value(json_array_get(p, 0)));
            int c1 = category_parse(json_string_value(json_array_get(p, 1)));
            src = xasprintf("%s.pairs[%zu]", path, pi);
            for (int ord = 0; ord < (b.both_orders ? 2 : 1); ord++) {
                int ca = ord ? c1 : c0, cb = ord ? c0 : c1;
                for (size_t i = 0; i < json_array_size(b.cat[ca]); i++)
                    for (size_t j = 0; j < json_array_size(b.cat[cb]); j++) {
                        json_t *e = pair_of(json_array_get(b.cat[ca], i), json_array_get(b.cat[cb], j));
                        int r = add_comp(x, &b, model, e, src);
                        json_decref(e);
                        if (r) { free(src); goto out; }
                    }
            }
            free(src);
        }
        for (size_t ci = 0; ci < json_array_size(comps); ci++) {
            src = xasprintf("%s.compositions[%zu]", path, ci);
            int r = add_comp(x, &b, model, json_array_get(comps, ci), src);
            free(src);
            if (r) goto out;
        }
        for (long long i = 0; i < st_count; i++) {
            json_t *pp = st_params ? json_deep_copy(st_params) : json_object();
            json_object_set_new(pp, "id", json_integer(st_start + i));
            json_t *stage = json_object();
            json_object_set_new(stage, "method", json_string("selftest"));
            json_object_set_new(stage, "params", pp);
            json_t *e = json_array();
            json_array_append_new(e, stage);
            src = xasprintf("%s.selftest", path);
            int r = add_comp(x, &b, model, e, src);
            free(src);
            json_decref(e);
            if (r) goto out;
        }
    }

    /* sub-grids inherit edit_sets, seeds, priority, both_orders and recompress */
    json_t *subs = json_object_get(obj, "subgrids");
    if (subs && !json_is_array(subs)) { bad(err, "%s.subgrids: expected a list of grid blocks", path); goto out; }
    for (size_t i = 0; i < json_array_size(subs); i++) {
        char *sp = xasprintf("%s.subgrids[%zu]", path, i);
        int r = expand_block(x, json_array_get(subs, i), sp, &b);
        free(sp);
        if (r) goto out;
    }
    rc = 0;
out:
    block_clear(&b);
    return rc;
}

/* duplicate check: sort indices by (model, key, index) */
static int cmp_comp_idx(const void *a, const void *b, void *ctx) {
    const grid_comp *comps = ctx;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(comps[i].model, comps[j].model);
    if (!c) c = strcmp(comps[i].key, comps[j].key);
    if (!c) c = (i > j) - (i < j);
    return c;
}

static void comp_clear(grid_comp *c) {
    free(c->model);
    free(c->canonical);
    free(c->pattern);
    free(c->label);
    free(c->edit_sets);
}

static int find_duplicates(gx *x) {
    if (x->n < 2) return 0;
    size_t *idx = xmalloc(x->n * sizeof *idx);
    for (size_t i = 0; i < x->n; i++) idx[i] = i;
    qsort_r(idx, x->n, sizeof *idx, cmp_comp_idx, x->comps);
    int rc = 0;
    for (size_t i = 1; i < x->n && !rc; i++) {
        const grid_comp *a = &x->comps[idx[i - 1]], *b = &x->comps[idx[i]];
        if (!strcmp(a->model, b->model) && !strcmp(a->key, b->key)) {
            size_t first = idx[i - 1] < idx[i] ? idx[i - 1] : idx[i], second = idx[i - 1] ^ idx[i] ^ first;
            rc = bad(x->err, "%s: duplicate composition %s for model %s (already produced by %s): %.300s",
                     x->src[second], a->label, a->model, x->src[first], a->canonical);
        }
    }
    free(idx);
    return rc;
}

void grid_comp_key(const char *canonical, int recompress, char key[65]) {
    if (recompress == RECOMPRESS_PAPER) {
        sha256_hex(canonical, strlen(canonical), key);
        return;
    }
    char *t = xasprintf("%s\nrecompress=%s", canonical, recompress_name(recompress));
    sha256_hex(t, strlen(t), key);
    free(t);
}

int grid_load(const char *path, unsigned flags, grid **out, cis_err *err) {
    *out = NULL;
    size_t len;
    char *text = read_file(path, &len, err);
    if (!text) return -1;
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root)
        return err_set(err, CIS_EINVAL, "%s: line %d, column %d: JSON syntax error: %s", path, je.line, je.column, je.text);
    gx x = {.flags = flags, .err = err};
    grid *g = NULL;
    int rc = -1;
    if (!json_is_object(root)) { bad(err, "$: expected an object (a grid spec)"); goto out; }
    const char *name = json_string_value(json_object_get(root, "name"));
    if (!name || !*name) { bad(err, "$.name: missing or not a non-empty string"); goto out; }
    json_t *desc = json_object_get(root, "description"), *ver = json_object_get(root, "version");
    if (desc && !json_is_string(desc)) { bad(err, "$.description: expected a string"); goto out; }
    if (ver && (!json_is_integer(ver) || json_integer_value(ver) != 1)) {
        bad(err, "$.version: expected 1 (the grid format version this cisweep reads)");
        goto out;
    }
    int max_attempts;
    if (get_int(root, "max_attempts", "$", 1, 1000, 3, &max_attempts, err)) goto out;
    if (expand_block(&x, root, "$", NULL) || find_duplicates(&x)) goto out;
    if (x.n == 0) {
        bad(err, "$: the grid generates no job (give it categories, compositions, a baseline or selftest jobs)");
        goto out;
    }
    g = xcalloc(1, sizeof *g);
    g->path = xstrdup(path);
    g->name = xstrdup(name);
    g->description = xstrdup(desc ? json_string_value(desc) : "");
    g->max_attempts = max_attempts;
    g->comps = x.comps;
    g->n_comps = x.n;
    for (size_t i = 0; i < x.n; i++) g->n_jobs += x.comps[i].n_edit_sets > 0 ? (size_t)x.comps[i].n_edit_sets : 1;
    x.comps = NULL;
    rc = 0;
out:
    if (rc) {
        err_prefix(err, "%s", path);
        for (size_t i = 0; i < x.n; i++) comp_clear(&x.comps[i]);
        free(x.comps);
    }
    for (size_t i = 0; i < x.n; i++) free(x.src[i]);
    free(x.src);
    json_decref(root);
    *out = g;
    return rc;
}

void grid_free(grid **g) {
    if (!g || !*g) return;
    for (size_t i = 0; i < (*g)->n_comps; i++) comp_clear(&(*g)->comps[i]);
    free((*g)->comps);
    free((*g)->path);
    free((*g)->name);
    free((*g)->description);
    free(*g);
    *g = NULL;
}
