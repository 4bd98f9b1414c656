/* eval_rows.c - named metric rows (what a job sends back as RESULT) and the small tokenization
 * helper the evaluators share. */
#include "worker/eval/eval.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void eval_rows_set(eval_rows *r, const char *name, double value) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->row[i].name, name)) { r->row[i].value = value; return; }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 32;
        r->row = xrealloc(r->row, (size_t)r->cap * sizeof *r->row);
    }
    eval_row *e = &r->row[r->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->value = value;
}

const eval_row *eval_rows_get(const eval_rows *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->row[i].name, name)) return &r->row[i];
    return NULL;
}

void eval_rows_free(eval_rows *r) {
    if (!r) return;
    free(r->row);
    memset(r, 0, sizeof *r);
}

char *eval_rows_json(const eval_rows *r) {
    json_t *o = json_object();
    for (int i = 0; i < r->n; i++)
        json_object_set_new(o, r->row[i].name, isfinite(r->row[i].value) ? json_real(r->row[i].value) : json_null());
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    return s;
}

int eval_encode(const tokenizer *tok, const char *text, bool add_special, int32_t **ids, int *n, cis_err *err) {
    size_t nn = 0;
    if (tokenizer_encode(tok, text, strlen(text), add_special, ids, &nn, err)) return -1;
    *n = (int)nn;
    return 0;
}
