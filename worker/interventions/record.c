/* record.c - the intervention record and the stage record (see record.h). */
#include "worker/interventions/record.h"
#include "worker/interventions/cmp_record.h"
#include "common/util.h"

#include <math.h>
#include <string.h>

void interv_record_init(interv_record *r) {
    memset(r, 0, sizeof *r);
    r->info = json_object();
    r->phases = json_object();
}

void interv_record_clear(interv_record *r) {
    json_decref(r->info);
    json_decref(r->phases);
    cmprec_free(&r->cmp);
    memset(r, 0, sizeof *r);
}

void interv_record_set(interv_record *r, const char *key, json_t *value) {
    CIS_ASSERT(r->info && key && value);
    json_object_set_new(r->info, key, value);
}

/* JSON has no NaN or infinity: such values travel as strings, as metric values do */
static json_t *num_value(double v) {
    if (isnan(v)) return json_string("nan");
    if (isinf(v)) return json_string(v > 0 ? "inf" : "-inf");
    return json_real(v);
}

void interv_record_set_num(interv_record *r, const char *key, double v) { interv_record_set(r, key, num_value(v)); }
void interv_record_set_int(interv_record *r, const char *key, long long v) { interv_record_set(r, key, json_integer(v)); }
void interv_record_set_str(interv_record *r, const char *key, const char *v) {
    interv_record_set(r, key, json_string(v ? v : ""));
}

void interv_record_add_num(interv_record *r, const char *key, double v) {
    json_t *old = json_object_get(r->info, key);
    double base = json_is_number(old) ? json_number_value(old) : 0.0;
    interv_record_set_num(r, key, base + v);
}

static void phase_add(interv_record *r, const char *name, double s) {
    json_t *old = json_object_get(r->phases, name);
    double base = json_is_number(old) ? json_number_value(old) : 0.0;
    json_object_set_new(r->phases, name, json_real(base + s));
}

void interv_phase_end(interv_record *r) {
    if (!r->cur[0]) return;
    double dt = mono_sec() - r->cur_t0;
    phase_add(r, r->cur, dt < 0 ? 0 : dt);
    r->cur[0] = 0;
}

void interv_phase_begin(interv_record *r, const char *name) {
    CIS_ASSERT(r->phases && name && *name);
    interv_phase_end(r);
    snprintf(r->cur, sizeof r->cur, "%s", name);
    r->cur_t0 = mono_sec();
}

double interv_phase_seconds(const interv_record *r, const char *name) {
    json_t *v = r && r->phases ? json_object_get(r->phases, name) : NULL;
    return json_is_number(v) ? json_number_value(v) : 0.0;
}

json_t *interv_stage_json(const interv_stage_info *s, const interv_record *r) {
    json_t *o = json_object();
    json_object_set_new(o, "stage", json_integer(s->stage));
    json_object_set_new(o, "of_stage", json_integer(s->of_stage));
    json_object_set_new(o, "method", json_string(s->method));
    json_object_set_new(o, "category", json_string(s->category ? s->category : "?"));
    json_object_set_new(o, "recompress", json_boolean(s->recompress));
    json_object_set_new(o, "params", s->params ? json_deep_copy(s->params) : json_object());
    json_object_set_new(o, "seed", json_integer((json_int_t)s->seed));
    json_object_set_new(o, "record", r && r->info ? json_deep_copy(r->info) : json_object());
    json_object_set_new(o, "phases_s", r && r->phases ? json_deep_copy(r->phases) : json_object());
    json_object_set_new(o, "wall_ms", json_integer(s->wall_ms < 0 ? 0 : s->wall_ms));
    return o;
}
