/* grid.h - expansion of a declarative grid spec (grids/NAME.json) into compositions and jobs.
 * The format is documented in docs/grids.md. A grid names models (slots), the methods of each
 * category with their levels, which category pairs to compose (in both orders), whether single
 * interventions and the baseline are included, and the edit sets that editing compositions run
 * once per. Per-model sub-grids let the appendix models use a reduced grid. */
#ifndef CISWEEP_GRID_H
#define CISWEEP_GRID_H

#include <stddef.h>
#include "common/util.h"

enum grid_flags {
    GRID_ALLOW_SELFTEST = 1, /* accept the `selftest` test-fixture method (tests, benchmarks) */
    GRID_ALLOW_HUGE = 2,     /* allow more than GRID_MAX_JOBS jobs (`launch --allow-huge-grid`) */
};

/* a grid that expands to more jobs than this is refused unless GRID_ALLOW_HUGE (a typo in a range
 * or a count should not fill the database); one that expands to none is refused always */
#define GRID_MAX_JOBS 1000000

typedef struct grid_comp {
    char *model;        /* model slot name, e.g. "llama3-8b" */
    char *canonical;    /* canonical JSON of the stage list: [{"method":"memit","params":{...}},...];
                           "[]" is the baseline */
    char key[65];       /* grid_comp_key: sha256 hex of `canonical` (+ the policy unless paper) */
    char *pattern;      /* "baseline", "edit", "compress", "unlearn", "edit->compress",
                           "compress->edit", "unlearn->compress", ... (categories joined by "->") */
    char *label;        /* short human label, e.g. "memit->wanda(sparsity=0.25)" */
    int n_edit_sets;    /* jobs of this composition: 0 = one job with edit_set 0 (no editor, no seeds) */
    int *edit_sets;     /* [n_edit_sets] 1-based: the edit sets of an editing composition, or the seeds
                           of one without an editor in a block with "seeds" (seeded); each is one job's
                           jobs.edit_set, which the worker also uses as every stage's seed */
    bool seeded;        /* edit_sets holds seeds (no editor; the grid's "seeds" key) */
    int priority;       /* higher runs first (grid "priority" field; default 0) */
    int recompress;     /* recompress_policy (common/recompress.h): the block's "recompress" key,
                           "paper" by default; stored with the composition, sent in the JOB */
} grid_comp;

typedef struct grid {
    char *path;          /* file it was loaded from */
    char *name;          /* grid "name" */
    char *description;   /* grid "description" ("" if none) */
    int max_attempts;    /* per-job attempt budget (grid "max_attempts", default 3) */
    grid_comp *comps;    /* [n_comps], in a deterministic order */
    size_t n_comps;
    size_t n_jobs;       /* sum over comps of max(1, n_edit_sets) */
} grid;

/* grid_comp_key: the composition key: sha256 hex of `canonical` under the paper's policy (so keys
 * of grids without "recompress" are unchanged), else of canonical + "\nrecompress=<policy>" (the
 * same stages under another policy are another composition). */
void grid_comp_key(const char *canonical, int recompress, char key[65]);

/* grid_load: read, validate and expand the grid at `path`. On a syntax error, an unknown method,
 * an invalid level or parameter, returns -1 with err naming the file, the JSON path (e.g.
 * "$.categories.compress[2].levels.bits[1]") and what is allowed. Duplicate compositions (same
 * model and canonical spec) are an error too. *out owned by the caller (grid_free). */
int grid_load(const char *path, unsigned flags, grid **out, cis_err *err);
void grid_free(grid **g);

/* cmd_grid: `cisweep grid FILE [--count] [--jobs] [--allow-selftest]`; returns the exit status
 * (0 ok, 2 bad grid). Prints compositions one per line (model, pattern, canonical) and a
 * breakdown by pattern; --count prints the number of compositions as the last line, --jobs the
 * number of jobs. */
int cmd_grid(int argc, char **argv);

#endif
