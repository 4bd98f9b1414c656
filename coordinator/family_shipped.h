/* family_shipped.h - the trained default family shipped in the repository (models/family:
 * one directory per member and manifest.json, docs/training.md "The shipped family"), as
 * `cisweep run` uses it in place of step 2's training: does it fit this run (the world the trainer
 * would read, the step budget, the members asked for), and a verified copy of its members into the
 * run's family directory. The coordinator side only: it reads and hashes files, it never trains.
 *
 * manifest.json (written by deploy/rebuild-family.py, which also rebuilds and compares it):
 *   {"format": "cisweep-family/1",
 *    "world": {"seed": 1234, "scale": "default", "files": {"corpus/pretrain.jsonl": SHA256, ...}},
 *    "train": {"steps": 3600, "threads": 1, "seed": 1, "command": "...", ...},
 *    "prefix": {"stop_after": 20, ...},
 *    "members": {"tiny-llama3": {"files": {"model.safetensors": SHA256, "config.json": SHA256, ...},
 *                                "prefix_sha256": SHA256, ...}, ...}}
 * SHA256 = 64 lowercase hex characters of the file's bytes. */
#ifndef CISWEEP_FAMILY_SHIPPED_H
#define CISWEEP_FAMILY_SHIPPED_H

#include <stdbool.h>
#include <stdint.h>
#include "common/util.h"

typedef struct family_shipped family_shipped;

/* family_shipped_load: read DIR/manifest.json and check its shape (world.scale a string,
 * world.files an object of relative path -> sha256 hex, train.steps >= 1, members an object of
 * name -> {"files": {file -> sha256 hex}} with a model.safetensors among the files; file names
 * plain, no '/' or "..", world paths relative without ".."). 0 and *out (free with
 * family_shipped_free), or -1 with err naming the manifest, the field and what was expected. */
int family_shipped_load(const char *dir, family_shipped **out, cis_err *err);
void family_shipped_free(family_shipped **f);

/* the step budget of each member (train.steps) */
int64_t family_shipped_steps(const family_shipped *f);

/* family_shipped_fits: 0 when the shipped family is what training would make for this run: the
 * world's scale is world_scale and every file of world.files under world_dir has the manifest's
 * sha256, the budget `steps` is train.steps, and every name of archs[0..n) is a member. Else 1
 * with why (a sentence naming the first thing that differs: the file and both hashes, the
 * budgets, the member). -1 only when a file cannot be read for another reason than being absent
 * (err names it). */
int family_shipped_fits(const family_shipped *f, const char *world_dir, const char *world_scale, int64_t steps,
                        const char *const *archs, int n, cis_err *why);

/* family_shipped_install: copy the members archs[0..n) into family_dir/<name>/, each file's bytes
 * hashed and compared with the manifest before anything is written (all members are checked
 * first, so a corrupt member installs none); a member whose family_dir/<name>/model.safetensors
 * exists is left as it is (a resumed run), and model.safetensors is written last in each member
 * (its presence marks a complete member, the trainer's rule). *installed (may be NULL) gets the
 * number of members copied. 0, or -1 with err naming the shipped file and both hashes, or the
 * file that could not be read or written; then nothing of a corrupt member is written. */
int family_shipped_install(const family_shipped *f, const char *family_dir, const char *const *archs, int n,
                           int *installed, cis_err *err);

#endif
