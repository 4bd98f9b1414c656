/* spec.c - composition specs: validation against the method registry (spec_registry.c), the
 * canonical JSON text and its key, and the worker's parsed view of a composition.
 *
 * Canonical form (docs/grids.md "Canonical compositions"): an array of stages
 * {"method":NAME,"params":{...}} with every declared parameter present (defaults filled), object
 * keys sorted bytewise, no whitespace, integers printed as integers, reals in the shortest text
 * that reads back to the same double, laid out like Python's repr(float). The key is the SHA-256
 * of that text. Equivalent specs (key order, whitespace, 0.250 vs 0.25, 1 vs 1.0 for a float
 * parameter, "4-8" vs [4,5,6,7,8]) get the same text and key. */
#include "common/spec.h"

#include <math.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- a growable string ------------------------------------------------------------------- */
typedef struct sbuf { char *p; size_t n, cap; } sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}
static void sb_puts(sbuf *b, const char *s) { sb_putn(b, s, strlen(s)); }
static char *sb_take(sbuf *b) {
    if (!b->p) sb_putn(b, "", 0);
    return b->p;
}

/* ---- numbers ----------------------------------------------------------------------------- */
char *spec_format_real(double x, char *buf, size_t n) {
    if (!isfinite(x)) { snprintf(buf, n, "%s", isnan(x) ? "NaN" : (x > 0 ? "Infinity" : "-Infinity")); return buf; }
    if (x == 0) { snprintf(buf, n, "0.0"); return buf; } /* -0.0 too: one zero */
    /* shortest significand that round-trips: %.{p}e for p = 0..16 */
    char e[40];
    for (int p = 0; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p, x);
        if (strtod(e, NULL) == x) break;
    }
    /* split "-d.ddddde+XX" into sign, digits and exponent */
    const char *s = e;
    bool neg = *s == '-';
    if (neg) s++;
    char dig[24];
    size_t nd = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && nd < sizeof dig - 1) dig[nd++] = *s;
    dig[nd] = 0;
    int ex = *s == 'e' ? atoi(s + 1) : 0;
    while (nd > 1 && dig[nd - 1] == '0') dig[--nd] = 0;
    char out[64];
    size_t o = 0;
    if (neg) out[o++] = '-';
    if (ex >= -4 && ex < 16) { /* positional, as repr() */
        if (ex >= 0) {
            for (int i = 0; i <= ex; i++) out[o++] = (size_t)i < nd ? dig[i] : '0';
            out[o++] = '.';
            if ((size_t)ex + 1 < nd) for (size_t i = (size_t)ex + 1; i < nd; i++) out[o++] = dig[i];
            else out[o++] = '0';
        } else {
            out[o++] = '0'; out[o++] = '.';
            for (int i = 0; i < -ex - 1; i++) out[o++] = '0';
            for (size_t i = 0; i < nd; i++) out[o++] = dig[i];
        }
        out[o] = 0;
    } else { /* d.ddde+XX with at least two exponent digits */
        out[o++] = dig[0];
        if (nd > 1) { out[o++] = '.'; for (size_t i = 1; i < nd; i++) out[o++] = dig[i]; }
        snprintf(out + o, sizeof out - o, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    }
    snprintf(buf, n, "%s", out);
    return buf;
}

/* ---- canonical dump ---------------------------------------------------------------------- */
static void dump_string(sbuf *b, const char *s, size_t len) {
    sb_putn(b, "\"", 1);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"') sb_putn(b, "\\\"", 2);
        else if (c == '\\') sb_putn(b, "\\\\", 2);
        else if (c == '\n') sb_putn(b, "\\n", 2);
        else if (c == '\t') sb_putn(b, "\\t", 2);
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); sb_puts(b, esc); }
        else sb_putn(b, (const char *)&s[i], 1);
    }
    sb_putn(b, "\"", 1);
}

static int cmp_cstr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void dump_value(sbuf *b, json_t *v) {
    char num[64];
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        size_t n = json_object_size(v), i = 0;
        const char **keys = xcalloc(n ? n : 1, sizeof *keys);
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) keys[i++] = k;
        qsort(keys, n, sizeof *keys, cmp_cstr);
        sb_putn(b, "{", 1);
        for (i = 0; i < n; i++) {
            if (i) sb_putn(b, ",", 1);
            dump_string(b, keys[i], strlen(keys[i]));
            sb_putn(b, ":", 1);
            dump_value(b, json_object_get(v, keys[i]));
        }
        sb_putn(b, "}", 1);
        free(keys);
        break;
    }
    case JSON_ARRAY:
        sb_putn(b, "[", 1);
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) sb_putn(b, ",", 1);
            dump_value(b, json_array_get(v, i));
        }
        sb_putn(b, "]", 1);
        break;
    case JSON_STRING: dump_string(b, json_string_value(v), json_string_length(v)); break;
    case JSON_INTEGER: snprintf(num, sizeof num, "%lld", (long long)json_integer_value(v)); sb_puts(b, num); break;
    case JSON_REAL: sb_puts(b, spec_format_real(json_real_value(v), num, sizeof num)); break;
    case JSON_TRUE: sb_puts(b, "true"); break;
    case JSON_FALSE: sb_puts(b, "false"); break;
    default: sb_puts(b, "null"); break;
    }
}

char *spec_dump_canonical(json_t *v) {
    sbuf b = {0};
    dump_value(&b, v);
    return sb_take(&b);
}

/* a value for an error message: canonical text, shortened */
static void show_value(json_t *v, char *buf, size_t n) {
    char *t = spec_dump_canonical(v);
    if (strlen(t) > 48) snprintf(buf, n, "%.45s...", t);
    else snprintf(buf, n, "%s", t);
    free(t);
}

/* ---- parameter values -------------------------------------------------------------------- */
static bool has_range(const param_info *p) { return p->min < p->max; }
static bool no_max(const param_info *p) { return p->max >= 1e15; }

/* "allowed: ..." text of a parameter into buf */
static char *allowed_text(const param_info *p, char *buf, size_t n) {
    char lo[32], hi[32];
    bool is_int = p->type == PARAM_INT || p->type == PARAM_INT_LIST;
    if (is_int) { snprintf(lo, sizeof lo, "%.0f", p->min); snprintf(hi, sizeof hi, "%.0f", p->max); }
    else { spec_format_real(p->min, lo, sizeof lo); spec_format_real(p->max, hi, sizeof hi); }
    const char *what = p->type == PARAM_INT ? "an integer" : p->type == PARAM_INT_LIST ? "a list of integers" :
                       p->type == PARAM_FLOAT ? "a number" : p->type == PARAM_BOOL ? "true|false" :
                       p->type == PARAM_STRING ? "a string" : "an object of name -> number";
    if (p->choices) snprintf(buf, n, "%s", p->choices);
    else if (has_range(p) && is_int && !no_max(p) && p->type == PARAM_INT) snprintf(buf, n, "integers %s..%s", lo, hi);
    else if (has_range(p) && is_int && !no_max(p)) snprintf(buf, n, "%s in %s..%s (or \"a-b,c\")", what, lo, hi);
    else if (has_range(p) && is_int) snprintf(buf, n, "integers >= %s", lo);
    else if (has_range(p) && no_max(p))
        snprintf(buf, n, "%s x %s %s", what, (p->flags & PARAM_EXCL_MIN) ? ">" : ">=", lo);
    else if (has_range(p))
        snprintf(buf, n, "%s %s %s x %s %s", what, lo, (p->flags & PARAM_EXCL_MIN) ? "<" : "<=",
                 (p->flags & PARAM_EXCL_MAX) ? "<" : "<=", hi);
    else snprintf(buf, n, "%s", what);
    return buf;
}

static json_t *bad_value(const method_info *m, const param_info *p, json_t *v, const char *where,
                         const char *why, cis_err *err) {
    char shown[64], allowed[128];
    show_value(v, shown, sizeof shown);
    err_set(err, CIS_EINVAL, "%s: %s %s for %s %s (allowed: %s)", where, shown, why, m->name, p->name,
            allowed_text(p, allowed, sizeof allowed));
    return NULL;
}

static bool in_range(const param_info *p, double x) {
    if (!has_range(p)) return true;
    if ((p->flags & PARAM_EXCL_MIN) ? !(x > p->min) : !(x >= p->min)) return false;
    if ((p->flags & PARAM_EXCL_MAX) ? !(x < p->max) : !(x <= p->max)) return false;
    return true;
}

/* is integer x one of the "2|3|4|8" choices? */
static bool int_in_choices(const char *choices, long long x) {
    for (const char *s = choices; *s;) {
        char *end;
        long long c = strtoll(s, &end, 10);
        if (end != s && c == x) return true;
        if (*end != '|') break;
        s = end + 1;
    }
    return false;
}

static bool str_in_choices(const char *choices, const char *x) {
    size_t n = strlen(x);
    for (const char *s = choices; *s;) {
        const char *bar = strchr(s, '|');
        size_t len = bar ? (size_t)(bar - s) : strlen(s);
        if (len == n && !strncmp(s, x, n)) return true;
        if (!bar) break;
        s = bar + 1;
    }
    return false;
}

/* integral value of a JSON number (integer, or a real with no fraction); false otherwise */
static bool json_integral(json_t *v, long long *out) {
    if (json_is_integer(v)) { *out = (long long)json_integer_value(v); return true; }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == floor(d) && fabs(d) < 9e15) { *out = (long long)d; return true; }
    }
    return false;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* "4-8", "4,6,8", "3-5,9" -> list; false on junk, a list longer than cap, or a number outside
 * +-1e9 (strtoll saturates on overflow, and b - a or x++ would then overflow: issue 13, fuzzing) */
#define INT_RANGE_MAX 1000000000LL
static bool parse_int_ranges(const char *s, long long *out, size_t cap, size_t *n) {
    *n = 0;
    while (*s) {
        char *end;
        errno = 0;
        long long a = strtoll(s, &end, 10), b;
        if (end == s || errno == ERANGE || a > INT_RANGE_MAX || a < -INT_RANGE_MAX) return false;
        s = end;
        if (*s == '-') {
            s++;
            errno = 0;
            b = strtoll(s, &end, 10);
            if (end == s || errno == ERANGE || b > INT_RANGE_MAX || b < a || b - a > 4096) return false;
            s = end;
        } else b = a;
        for (long long x = a; x <= b; x++) {
            if (*n >= cap) return false;
            out[(*n)++] = x;
        }
        if (*s == ',') { s++; if (!*s) return false; }
        else if (*s) return false;
    }
    return *n > 0;
}

json_t *spec_param_normalize(const method_info *m, const param_info *p, json_t *v, const char *where,
                             cis_err *err) {
    long long iv;
    switch (p->type) {
    case PARAM_INT:
        if (!json_is_number(v)) return bad_value(m, p, v, where, "is not an integer", err);
        if (!json_integral(v, &iv)) return bad_value(m, p, v, where, "is not an integer", err);
        if (p->choices && !int_in_choices(p->choices, iv)) return bad_value(m, p, v, where, "is not allowed", err);
        if (!in_range(p, (double)iv)) return bad_value(m, p, v, where, "is out of range", err);
        return json_integer(iv);
    case PARAM_FLOAT: {
        if (!json_is_number(v)) return bad_value(m, p, v, where, "is not a number", err);
        double d = json_number_value(v);
        if (!isfinite(d)) return bad_value(m, p, v, where, "is not finite", err);
        if (!in_range(p, d)) return bad_value(m, p, v, where, "is out of range", err);
        return json_real(d == 0 ? 0.0 : d);
    }
    case PARAM_BOOL:
        if (!json_is_boolean(v)) return bad_value(m, p, v, where, "is not a boolean", err);
        return json_boolean(json_is_true(v));
    case PARAM_STRING:
        if (!json_is_string(v) || json_string_length(v) == 0)
            return bad_value(m, p, v, where, "is not a non-empty string", err);
        if (strlen(json_string_value(v)) != json_string_length(v))
            return bad_value(m, p, v, where, "contains a NUL character", err);
        if (p->choices && !str_in_choices(p->choices, json_string_value(v)))
            return bad_value(m, p, v, where, "is not allowed", err);
        return json_string(json_string_value(v));
    case PARAM_INT_LIST: {
        long long vals[1024];
        size_t n = 0;
        if (json_is_string(v)) {
            if (!parse_int_ranges(json_string_value(v), vals, 1024, &n))
                return bad_value(m, p, v, where, "is not a list of integers", err);
        } else if (json_is_array(v)) {
            if (json_array_size(v) == 0 || json_array_size(v) > 1024)
                return bad_value(m, p, v, where, "is not a list of 1..1024 integers", err);
            for (size_t i = 0; i < json_array_size(v); i++)
                if (!json_integral(json_array_get(v, i), &vals[n++]))
                    return bad_value(m, p, v, where, "is not a list of integers", err);
        } else return bad_value(m, p, v, where, "is not a list of integers", err);
        qsort(vals, n, sizeof vals[0], cmp_ll);
        json_t *out = json_array();
        for (size_t i = 0; i < n; i++) {
            if (!in_range(p, (double)vals[i])) { json_decref(out); return bad_value(m, p, v, where, "has an element out of range", err); }
            if (i && vals[i] == vals[i - 1]) continue;
            json_array_append_new(out, json_integer(vals[i]));
        }
        return out;
    }
    case PARAM_JSON: {
        if (!json_is_object(v)) return bad_value(m, p, v, where, "is not an object", err);
        const char *k;
        json_t *x;
        json_t *out = json_object();
        json_object_foreach(v, k, x) {
            if (!json_is_number(x) || (json_is_real(x) && !isfinite(json_real_value(x)))) {
                json_decref(out);
                return bad_value(m, p, v, where, "has a non-numeric value", err);
            }
            json_object_set_new(out, k, json_is_integer(x) ? json_integer(json_integer_value(x))
                                                           : json_real(json_real_value(x)));
        }
        return out;
    }
    }
    err_set(err, CIS_EINVAL, "%s: parameter %s has an unknown type", where, p->name);
    return NULL;
}

/* ---- compositions ------------------------------------------------------------------------ */
json_t *spec_normalize_stage(json_t *st, const char *where, bool allow_test, cis_err *err) {
    if (!json_is_object(st))
        return err_set(err, CIS_EINVAL, "%s: a stage must be an object {\"method\": NAME, \"params\": {...}}", where), NULL;
    const char *k;
    json_t *x;
    json_object_foreach(st, k, x)
        if (strcmp(k, "method") && strcmp(k, "params"))
            return err_set(err, CIS_EINVAL, "%s: unknown key \"%s\" in a stage (allowed: method|params)", where, k), NULL;
    json_t *jm = json_object_get(st, "method");
    if (!json_is_string(jm))
        return err_set(err, CIS_EINVAL, "%s.method: missing or not a string (known methods: %s)", where, method_names()), NULL;
    const method_info *m = method_lookup(json_string_value(jm));
    if (!m || (m->category == CAT_TEST && !allow_test)) {
        if (m) return err_set(err, CIS_EINVAL, "%s.method: \"%s\" is a test fixture, accepted only with --allow-selftest "
                              "(GRID_ALLOW_SELFTEST; cisweep apply: --allow-test-stages)", where, m->name), NULL;
        return err_set(err, CIS_EINVAL, "%s.method: unknown method \"%s\" (known: %s)", where,
                       json_string_value(jm), method_names()), NULL;
    }
    json_t *params = json_object_get(st, "params");
    if (params && !json_is_object(params))
        return err_set(err, CIS_EINVAL, "%s.params: must be an object", where), NULL;
    char names[256];
    json_object_foreach(params, k, x)
        if (!param_lookup(m, k))
            return err_set(err, CIS_EINVAL, "%s.params.%s: unknown parameter \"%s\" for %s (allowed: %s)", where, k, k,
                           m->name, method_param_names(m, names, sizeof names)), NULL;
    json_t *out = json_object();
    for (const param_info *p = m->params; p->name; p++) {
        json_t *v = params ? json_object_get(params, p->name) : NULL, *dflt = NULL;
        if (!v && !p->default_json) {
            json_decref(out);
            return err_set(err, CIS_EINVAL, "%s.params: missing required parameter \"%s\" for %s", where, p->name, m->name), NULL;
        }
        if (!v) {
            dflt = json_loads(p->default_json, JSON_DECODE_ANY, NULL);
            CIS_ASSERT(dflt != NULL); /* the registry's defaults are valid JSON */
            v = dflt;
        }
        char *pw = xasprintf("%s.params.%s", where, p->name);
        json_t *nv = spec_param_normalize(m, p, v, pw, err);
        free(pw);
        json_decref(dflt);
        if (!nv) { json_decref(out); return NULL; }
        json_object_set_new(out, p->name, nv);
    }
    json_t *res = json_object();
    json_object_set_new(res, "method", json_string(m->name));
    json_object_set_new(res, "params", out);
    return res;
}

json_t *spec_normalize(json_t *stages, const char *where, bool allow_test, cis_err *err) {
    if (!where) where = "$";
    if (!json_is_array(stages))
        return err_set(err, CIS_EINVAL, "%s: a composition must be an array of stages", where), NULL;
    if (json_array_size(stages) > 64)
        return err_set(err, CIS_EINVAL, "%s: %zu stages (at most 64)", where, json_array_size(stages)), NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < json_array_size(stages); i++) {
        char *sw = xasprintf("%s[%zu]", where, i);
        json_t *st = spec_normalize_stage(json_array_get(stages, i), sw, allow_test, err);
        free(sw);
        if (!st) { json_decref(out); return NULL; }
        json_array_append_new(out, st);
    }
    return out;
}

char *spec_canonical(json_t *stages, const char *where, bool allow_test, char key[65], cis_err *err) {
    json_t *c = spec_normalize(stages, where, allow_test, err);
    if (!c) return NULL;
    char *text = spec_dump_canonical(c);
    json_decref(c);
    if (key) sha256_hex(text, strlen(text), key);
    return text;
}

char *spec_canonical_text(const char *text, const char *where, bool allow_test, char key[65], cis_err *err) {
    json_error_t je;
    if (!text) return err_set(err, CIS_EINVAL, "%s: no spec text", where ? where : "$"), NULL;
    json_t *j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return err_set(err, CIS_EINVAL, "%s: JSON syntax error at line %d, column %d: %s", where ? where : "spec",
                       je.line, je.column, je.text), NULL;
    char *out = spec_canonical(j, where, allow_test, key, err);
    json_decref(j);
    return out;
}

bool spec_has_category(json_t *stages, method_category c) {
    for (size_t i = 0; i < json_array_size(stages); i++) {
        const method_info *m = method_lookup(json_string_value(json_object_get(json_array_get(stages, i), "method")));
        if (m && m->category == c) return true;
    }
    return false;
}

char *spec_pattern(json_t *stages) {
    size_t n = json_array_size(stages);
    if (n == 0) return xstrdup("baseline");
    sbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        const method_info *m = method_lookup(json_string_value(json_object_get(json_array_get(stages, i), "method")));
        if (i) sb_puts(&b, "->");
        sb_puts(&b, m ? category_name(m->category) : "?");
    }
    return sb_take(&b);
}

char *spec_label(json_t *stages) {
    size_t n = json_array_size(stages);
    if (n == 0) return xstrdup("baseline");
    sbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        json_t *st = json_array_get(stages, i);
        const char *name = json_string_value(json_object_get(st, "method"));
        const method_info *m = method_lookup(name);
        if (i) sb_puts(&b, "->");
        sb_puts(&b, name ? name : "?");
        const char *lp = m ? m->level_param : NULL;
        if (m && m->category == CAT_TEST && !lp) lp = "id";
        json_t *v = lp ? json_object_get(json_object_get(st, "params"), lp) : NULL;
        if (v) {
            char *t = spec_dump_canonical(v);
            sb_puts(&b, "(");
            sb_puts(&b, lp);
            sb_puts(&b, "=");
            sb_puts(&b, t);
            sb_puts(&b, ")");
            free(t);
        }
    }
    return sb_take(&b);
}

/* ---- the worker's view ------------------------------------------------------------------- */
int spec_parse(const char *canonical, bool allow_test, spec_stage **stages, size_t *n, cis_err *err) {
    *stages = NULL;
    *n = 0;
    json_error_t je;
    json_t *j = canonical ? json_loads(canonical, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je) : NULL;
    if (!j) return err_set(err, CIS_EINVAL, "spec: JSON syntax error at line %d, column %d: %s",
                           canonical ? je.line : 0, canonical ? je.column : 0, canonical ? je.text : "no text");
    json_t *c = spec_normalize(j, "spec", allow_test, err);
    json_decref(j);
    if (!c) return -1;
    size_t k = json_array_size(c);
    spec_stage *s = k ? xcalloc(k, sizeof *s) : NULL;
    for (size_t i = 0; i < k; i++) {
        json_t *st = json_array_get(c, i);
        s[i].method = method_lookup(json_string_value(json_object_get(st, "method")));
        s[i].params = json_incref(json_object_get(st, "params"));
    }
    json_decref(c);
    *stages = s;
    *n = k;
    return 0;
}

void spec_stages_free(spec_stage **stages, size_t n) {
    if (!stages || !*stages) return;
    for (size_t i = 0; i < n; i++) json_decref((*stages)[i].params);
    free(*stages);
    *stages = NULL;
}

static json_t *getp(const spec_stage *s, const char *name, param_type t) {
    const param_info *p = param_lookup(s->method, name);
    if (!p || p->type != t)
        die_at(__FILE__, __LINE__, __func__, NULL, "method %s has no parameter %s of the requested type",
               s->method ? s->method->name : "?", name);
    json_t *v = json_object_get(s->params, name);
    CIS_ASSERT(v != NULL);
    return v;
}

long long spec_param_int(const spec_stage *s, const char *name) {
    return (long long)json_integer_value(getp(s, name, PARAM_INT));
}
double spec_param_float(const spec_stage *s, const char *name) {
    return json_number_value(getp(s, name, PARAM_FLOAT));
}
const char *spec_param_str(const spec_stage *s, const char *name) {
    return json_string_value(getp(s, name, PARAM_STRING));
}
bool spec_param_bool(const spec_stage *s, const char *name) {
    return json_is_true(getp(s, name, PARAM_BOOL));
}
size_t spec_param_int_list(const spec_stage *s, const char *name, long long *out, size_t cap) {
    json_t *v = getp(s, name, PARAM_INT_LIST);
    size_t n = json_array_size(v);
    for (size_t i = 0; i < n && i < cap; i++) out[i] = (long long)json_integer_value(json_array_get(v, i));
    return n;
}
json_t *spec_param_json(const spec_stage *s, const char *name) {
    return getp(s, name, PARAM_JSON);
}
