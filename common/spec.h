/* spec.h - composition specs shared by coordinator and worker: the registry of known methods
 * (category, parameters with types, allowed values and defaults), validation of a composition
 * (a JSON array of stages {"method": NAME, "params": {...}}), its canonical JSON (defaults filled
 * in, keys sorted, numbers normalised, no whitespace) and its stable key (sha256 of the
 * canonical text). The worker validates again what it receives: the spec is never trusted. */
#ifndef CISWEEP_SPEC_H
#define CISWEEP_SPEC_H

#include <jansson.h>
#include <stdbool.h>
#include "common/util.h"

typedef enum method_category {
    CAT_EDIT = 0,     /* knowledge editing: ft, memit, lora */
    CAT_COMPRESS = 1, /* compression: wanda, sparsegpt, gptq, awq */
    CAT_UNLEARN = 2,  /* unlearning: rmu, ga, gd */
    CAT_TEST = 3,     /* test fixtures (selftest, test_scale), enabled only by a flag */
} method_category;

const char *category_name(method_category c); /* "edit", "compress", "unlearn", "test" */
int category_parse(const char *s);             /* -1 when unknown */

typedef enum param_type { PARAM_INT, PARAM_FLOAT, PARAM_STRING, PARAM_BOOL, PARAM_INT_LIST, PARAM_JSON } param_type;

typedef struct param_info {
    const char *name;
    param_type type;
    const char *default_json;  /* default value as JSON text; NULL = required */
    double min, max;           /* numeric range (inclusive) when min < max */
    const char *choices;       /* for strings: "a|b|c"; for ints: allowed set "2|3|4|8"; NULL = any */
    const char *doc;
    unsigned flags;            /* PARAM_EXCL_MIN / PARAM_EXCL_MAX: open range ends (0 = closed) */
} param_info;

enum param_flags {
    PARAM_EXCL_MIN = 1, /* value must be > min (not >=) */
    PARAM_EXCL_MAX = 2, /* value must be < max (not <=) */
};

typedef struct method_info {
    const char *name;          /* "memit" */
    method_category category;
    const char *level_param;   /* the strength parameter ("sparsity", "bits") or NULL */
    const param_info *params;  /* terminated by {NULL} */
    const char *doc;
} method_info;

const method_info *method_lookup(const char *name);       /* NULL when unknown */
const method_info *method_at(size_t i);                   /* iterate; NULL past the end */
/* a "a|b|c" list of known method names (for error messages); static storage */
const char *method_names(void);

/* spec_canonical: validate `stages` (a JSON array) and return its canonical JSON text (malloc'd)
 * and key (sha256 hex). `where` prefixes error messages (e.g. "grids/paper.json: $.x[3]").
 * allow_test: accept CAT_TEST methods. Returns NULL with err on invalid input. */
char *spec_canonical(json_t *stages, const char *where, bool allow_test, char key[65], cis_err *err);
/* spec_canonical_text: same, from JSON text. */
char *spec_canonical_text(const char *text, const char *where, bool allow_test, char key[65], cis_err *err);
/* spec_has_category: does the (already canonical) stage array contain a method of category c? */
bool spec_has_category(json_t *stages, method_category c);

/* ---- additions (spec.c) ------------------------------------------------------------------ */

/* param_lookup: the parameter `name` of method m, NULL when m has none of that name. */
const param_info *param_lookup(const method_info *m, const char *name);
/* method_param_names: "a|b|c" list of m's parameter names into buf (for error messages); buf. */
char *method_param_names(const method_info *m, char *buf, size_t n);

/* spec_param_normalize: check one parameter value against its declaration (type, range, choices)
 * and return its canonical value (new reference): PARAM_INT -> integer (an integral real such as
 * 4.0 is accepted as 4), PARAM_FLOAT -> real (an integer 1 becomes 1.0), PARAM_INT_LIST -> sorted
 * list of distinct integers (also accepted: "4-8", "4,6,8", "3-5,9"), PARAM_STRING -> the string
 * (one of `choices` when given), PARAM_BOOL -> true/false, PARAM_JSON -> an object mapping names
 * to numbers. Returns NULL with err "<where>: <what was wrong> (allowed: ...)". */
json_t *spec_param_normalize(const method_info *m, const param_info *p, json_t *v, const char *where,
                             cis_err *err);

/* spec_normalize: validate `stages` and return the canonical stage array as a JSON value (new
 * reference): [{"method": NAME, "params": {every parameter, defaults filled}}...]. Errors as for
 * spec_canonical (paths "<where>[i].method", "<where>[i].params.NAME"). */
json_t *spec_normalize(json_t *stages, const char *where, bool allow_test, cis_err *err);
/* spec_normalize_stage: the same for one stage object (new reference, or NULL with err; paths
 * "<where>.method", "<where>.params.NAME"). */
json_t *spec_normalize_stage(json_t *stage, const char *where, bool allow_test, cis_err *err);

/* spec_dump_canonical: the canonical text of any JSON value (malloc'd): no whitespace, object
 * keys sorted bytewise, integers as %lld, reals in the shortest form that reads back to the same
 * double, laid out like Python's repr(float) ("0.25", "5e-05", "1000.0", "1e+16"), strings with
 * only '"', '\\' and control characters escaped (UTF-8 kept as is). */
char *spec_dump_canonical(json_t *v);
/* spec_format_real: the canonical text of one double (as above) into buf (>= 32 bytes); buf. */
char *spec_format_real(double x, char *buf, size_t n);

/* spec_label: a short human label of a canonical stage array, e.g.
 * "memit->wanda(sparsity=0.25)"; stages show their level parameter (a test method without one,
 * i.e. selftest, shows its id);
 * "baseline" for []. malloc'd. */
char *spec_label(json_t *canonical_stages);
/* spec_pattern: "baseline" or the stages' category names joined by "->" ("edit->compress").
 * malloc'd. */
char *spec_pattern(json_t *canonical_stages);

/* ---- the worker's view of a composition -------------------------------------------------- */
typedef struct spec_stage {
    const method_info *method; /* registry entry (static storage) */
    json_t *params;            /* canonical params object, every parameter present; owned */
} spec_stage;

/* spec_parse: validate `canonical` (any spec text is accepted and re-canonicalised: the worker
 * never trusts its input) and split it into stages. *stages (array of *n) is owned by the
 * caller: free with spec_stages_free. The baseline "[]" gives n = 0 (stages may be NULL).
 * Returns 0, or -1 with err. */
int spec_parse(const char *canonical, bool allow_test, spec_stage **stages, size_t *n, cis_err *err);
void spec_stages_free(spec_stage **stages, size_t n);

/* typed getters of a stage's (canonical, hence present and well-typed) parameters; a name that
 * the method does not declare, or a type mismatch, is a programmer error (CIS_ASSERT). */
long long spec_param_int(const spec_stage *s, const char *name);
double spec_param_float(const spec_stage *s, const char *name);
const char *spec_param_str(const spec_stage *s, const char *name);    /* owned by s->params */
bool spec_param_bool(const spec_stage *s, const char *name);
/* int list into out[cap]; returns the number of elements (may exceed cap: then truncated) */
size_t spec_param_int_list(const spec_stage *s, const char *name, long long *out, size_t cap);
json_t *spec_param_json(const spec_stage *s, const char *name);       /* borrowed reference */

#endif
