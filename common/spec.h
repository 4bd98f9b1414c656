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
    CAT_TEST = 3,     /* selftest: orchestration test fixture, enabled only by a flag */
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
} param_info;

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

#endif
