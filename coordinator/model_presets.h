/* model_presets.h - per-model parameter presets of a models map (`cisweep launch/run --models MAP`,
 * docs/grids.md "Models map"): a slot may be {"path": DIR, "presets": {METHOD: {PARAM: VALUE}}},
 * and before the sweep is stored each preset replaces the registry default of that parameter in
 * every stage of that method in that slot's compositions, so the stored canonical composition (the
 * JOB message, the stages table) holds what ran. Precedence (most specific first):
 *   1. a value the grid sets that differs from the registry default (the experiment's statement);
 *   2. the models map's preset for that slot and method;
 *   3. the registry default (common/spec_registry.c);
 * then the worker's own per-model preset runs on the result (worker/interventions: depth scaling,
 * the tiny family's RMU values unless use_preset is false) and the stages table records the outcome. */
#ifndef CISWEEP_MODEL_PRESETS_H
#define CISWEEP_MODEL_PRESETS_H

#include <jansson.h>

#include "common/util.h"
#include "coordinator/grid.h"

/* model_presets_check: validate the "presets" of every slot of the models map `map` (a JSON object
 * slot -> path string | object); `where` names the file in messages. Each preset must be an object
 * of known methods, each an object of that method's declared parameters with valid values:
 *   "<where>: $.<slot>.presets.<method>.<param>: <what> (allowed: ...)". 0 or -1 with err. */
int model_presets_check(json_t *map, const char *where, cis_err *err);

/* model_presets_apply: merge the presets of map into g's compositions in place (canonical, key,
 * label), by the precedence above. A preset that makes two compositions of one slot the same
 * (e.g. a grid level equal to the default replaced by the preset value of another level) is an
 * error naming the slot, method and compositions. map may be NULL (nothing to do). 0 or -1. */
int model_presets_apply(grid *g, json_t *map, const char *where, cis_err *err);

#endif
