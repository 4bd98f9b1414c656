/* prefix_key.h - the identity of a composition's stage prefix, shared by the coordinator (which
 * schedules prefix-sharing jobs to the worker that holds the prefix) and the worker (which keeps a
 * snapshot of the model after the prefix and starts a later job from it; worker/snapshot.h).
 *
 * Two jobs may share the model state after their first k stages exactly when they agree on
 *   - the model (its path as the JOB names it: model_path),
 *   - the canonical text of those k stages (common/spec.h: method + every param, defaults filled),
 *   - the seed each of those stages actually uses (prefix_stage_seed: GPTQ's calibration sample is
 *     fixed at seed 0 and AWQ's pile-val sample at seed 42 whatever the edit set, as upstream; every
 *     other method is seeded by, or reads the data of, the job's edit set; ../shared/docs/fidelity.md §2),
 *   - for k >= 2, the recompress policy (how later stages treat a leading compressor's zeros).
 * The key is the sha256 (64 lowercase hex) of a versioned text of those four. A key names a
 * prefix of the *composition*; the paper's re-application of a leading compressor at the end is
 * never part of a prefix (it runs on the edited weights). */
#ifndef CISWEEP_PREFIX_KEY_H
#define CISWEEP_PREFIX_KEY_H

#include <jansson.h>
#include <stdbool.h>

#include "common/util.h"

#define PREFIX_KEY_HEX 64
#define PREFIX_MAX_ADVERT 64       /* prefix keys one message may advertise (READY/HEARTBEAT/RESULT) */
#define PREFIX_MAX_K 8             /* prefixes considered: the first 8 stages of a composition */

/* prefix_kept: is the model after the first k of n_stages stages kept as a snapshot by the worker
 * (and so worth scheduling for)? Every proper prefix (k < n_stages), and a single-stage composition
 * whole (a compress-only or edit-only job is the prefix of the compress->X / edit->X jobs of the
 * same seed); k <= PREFIX_MAX_K. */
bool prefix_kept(int k, int n_stages);

/* prefix_effective_edit_set: the seed a job's stages get (worker/runner.c): its edit set, or 1
 * when it has none (edit_set <= 0: compositions without an editing stage). */
int prefix_effective_edit_set(int edit_set);

/* prefix_stage_seed: the seed a stage of `method` actually uses in a job of edit set `edit_set`:
 * 0 for gptq, 42 for awq (fixed calibration samples), prefix_effective_edit_set(edit_set) for
 * every other method. */
long long prefix_stage_seed(const char *method, int edit_set);

/* prefix_seed_free: true when none of the first k stages of `canonical` depends on the edit set
 * (then every edit set shares the prefix). */
bool prefix_seed_free(json_t *canonical, int k);

/* prefix_key: the key of the first k stages (1 <= k <= size) of `canonical` (an already canonical
 * stage array, spec_normalize) for a job of model_path / edit_set; policy = the recompress policy
 * ("end" when NULL; used only for k >= 2). 0 and hex filled, or -1 with err (bad k or a stage
 * without a method). */
int prefix_key(const char *model_path, json_t *canonical, int k, int edit_set, const char *policy,
               char hex[PREFIX_KEY_HEX + 1], cis_err *err);

/* prefix_text: the canonical text of the first k stages as it begins the stored composition text
 * "[s1,...,sk" (no closing bracket; malloc'd). The stored canonical text of a composition holds the
 * prefix iff it equals prefix_text + "]" or starts with prefix_text + ",". */
char *prefix_text(json_t *canonical, int k);

/* prefix_key_valid: is s 64 lowercase hex characters? (protocol validation) */
bool prefix_key_valid(const char *s);

#endif
