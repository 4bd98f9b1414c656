/* record.h - what an intervention leaves behind: a free-form JSON object the method fills (masks
 * kept per matrix, quantisation grids, bits, the edits it made, losses) and the wall time of each
 * of its phases ("calibrate", "prune", "solve", ...), plus the stage record that travels with a
 * job's RESULT into the `stages` table and into `cisweep apply`'s apply.json (docs/interventions.md
 * "The record"). Plain host-side bookkeeping: no engine, no daemon. */
#ifndef CISWEEP_INTERVENTIONS_RECORD_H
#define CISWEEP_INTERVENTIONS_RECORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct interv_record {
    json_t *info;        /* object: what the method did (free-form; keys chosen by the method) */
    json_t *phases;      /* object: phase name -> wall seconds (accumulated over repeats) */
    char cur[64];        /* the running phase, "" when none */
    double cur_t0;       /* mono_sec() when the running phase began */
    struct cmprec *cmp;  /* a compressor's masks or integer codes (cmp_record.h; owned, NULL = none):
                            run.c writes it as the stage's record file */
} interv_record;

/* interv_record_init: an empty record (info {} and phases {}); free with interv_record_clear. */
void interv_record_init(interv_record *r);
/* interv_record_clear: free what the record holds, cmp included (ends nothing: a running phase is
 * dropped). */
void interv_record_clear(interv_record *r);

/* interv_record_set: info[key] = value; the reference to value is stolen (jansson's _new). */
void interv_record_set(interv_record *r, const char *key, json_t *value);
void interv_record_set_num(interv_record *r, const char *key, double v);   /* non-finite -> "nan"/"inf" */
void interv_record_set_int(interv_record *r, const char *key, long long v);
void interv_record_set_str(interv_record *r, const char *key, const char *v);
/* interv_record_add_num: info[key] += v (created at 0): counters summed over layers or steps. */
void interv_record_add_num(interv_record *r, const char *key, double v);

/* interv_phase_begin: start timing phase `name` (ends the running one first). A phase that runs
 * several times (once per layer, say) accumulates. interv_phase_end: stop the running phase (no-op
 * when none). */
void interv_phase_begin(interv_record *r, const char *name);
void interv_phase_end(interv_record *r);
/* interv_phase_seconds: the accumulated seconds of phase `name` (0 when it never ran). */
double interv_phase_seconds(const interv_record *r, const char *name);

/* One planned stage as it ran; the wire/DB/apply.json form of a stage (see interv_stage_json). */
typedef struct interv_stage_info {
    int stage;                /* 1-based position in the plan that ran */
    int of_stage;             /* 1-based position in the composition this stage applies */
    const char *method;       /* "wanda" */
    const char *category;     /* "compress" */
    bool recompress;          /* the paper's re-application of the first compressor at the end */
    json_t *params;           /* effective params (borrowed) */
    uint64_t seed;
    int64_t wall_ms;          /* the stage's wall time in ms */
} interv_stage_info;

/* interv_stage_json: the stage record (new reference):
 *   {"stage", "of_stage", "method", "category", "recompress", "params", "seed", "record": info,
 *    "phases_s": phases, "wall_ms"}
 * params, info and phases are deep-copied (the record may be cleared afterwards); r may be NULL
 * (a stage that records nothing: record {} and phases_s {}). */
json_t *interv_stage_json(const interv_stage_info *s, const interv_record *r);

#endif
