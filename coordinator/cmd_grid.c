/* cmd_grid.c - `cisweep grid FILE [--count] [--jobs] [--allow-selftest] [--quiet]`: expand a grid
 * spec and print it. Output (stdout):
 *   one line per composition: MODEL<TAB>PATTERN<TAB>CANONICAL   (omitted with --quiet), and
 *     <TAB>recompress=POLICY when the block's recompress policy is not paper
 *   "# grid NAME (FILE): N compositions, M jobs"
 *   "# by pattern:" then "#   PATTERN<spaces>COUNT" in order of first appearance
 *   "# by model:" then "#   MODEL<spaces>COMPOSITIONS compositions, JOBS jobs"
 *   --count: N alone on a line; --jobs: M alone on a line (with both: N, then M last).
 * A bad grid prints "cisweep grid: MESSAGE" on stderr and exits 2; usage errors exit 2 too. */
#include "common/recompress.h"
#include "coordinator/grid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] = "usage: cisweep grid FILE [--count] [--jobs] [--allow-selftest] [--allow-huge-grid] [--quiet]";

typedef struct tally { const char *name; size_t comps, jobs; } tally;

/* count `name` into t[*n] (linear: there are few patterns and models) */
static void tally_add(tally *t, size_t *n, const char *name, size_t jobs) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(t[i].name, name)) { t[i].comps++; t[i].jobs += jobs; return; }
    t[*n] = (tally){name, 1, jobs};
    (*n)++;
}

int cmd_grid(int argc, char **argv) {
    const char *file = NULL;
    bool count = false, jobs = false, quiet = false;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count")) count = true;
        else if (!strcmp(argv[i], "--jobs")) jobs = true;
        else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) quiet = true;
        else if (!strcmp(argv[i], "--allow-selftest")) flags |= GRID_ALLOW_SELFTEST;
        else if (!strcmp(argv[i], "--allow-huge-grid")) flags |= GRID_ALLOW_HUGE;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { puts(USAGE); return 0; }
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "cisweep grid: unknown option %s\n%s\n", argv[i], USAGE);
            return 2;
        } else if (file) {
            fprintf(stderr, "cisweep grid: one grid file only (got %s and %s)\n%s\n", file, argv[i], USAGE);
            return 2;
        } else file = argv[i];
    }
    if (!file) { fprintf(stderr, "cisweep grid: no grid file given\n%s\n", USAGE); return 2; }

    grid *g = NULL;
    cis_err err = {0};
    if (grid_load(file, flags, &g, &err)) {
        fprintf(stderr, "cisweep grid: %s\n", err.msg);
        return 2;
    }
    tally *pat = xcalloc(g->n_comps + 1, sizeof *pat), *mod = xcalloc(g->n_comps + 1, sizeof *mod);
    size_t npat = 0, nmod = 0, wpat = 8, wmod = 8;
    for (size_t i = 0; i < g->n_comps; i++) {
        const grid_comp *c = &g->comps[i];
        size_t nj = c->n_edit_sets > 0 ? (size_t)c->n_edit_sets : 1;
        if (!quiet) /* a 4th column only for a policy other than paper: older outputs unchanged */
            printf("%s\t%s\t%s%s%s\n", c->model, c->pattern, c->canonical,
                   c->recompress != RECOMPRESS_PAPER ? "\trecompress=" : "",
                   c->recompress != RECOMPRESS_PAPER ? recompress_name(c->recompress) : "");
        tally_add(pat, &npat, c->pattern, nj);
        tally_add(mod, &nmod, c->model, nj);
        if (strlen(c->pattern) > wpat) wpat = strlen(c->pattern);
        if (strlen(c->model) > wmod) wmod = strlen(c->model);
    }
    printf("# grid %s (%s): %zu compositions, %zu jobs\n", g->name, g->path, g->n_comps, g->n_jobs);
    printf("# by pattern:\n");
    for (size_t i = 0; i < npat; i++)
        printf("#   %-*s %6zu compositions %7zu jobs\n", (int)wpat, pat[i].name, pat[i].comps, pat[i].jobs);
    printf("# by model:\n");
    for (size_t i = 0; i < nmod; i++)
        printf("#   %-*s %6zu compositions %7zu jobs\n", (int)wmod, mod[i].name, mod[i].comps, mod[i].jobs);
    if (count) printf("%zu\n", g->n_comps);
    if (jobs) printf("%zu\n", g->n_jobs);
    fflush(stdout);
    free(pat);
    free(mod);
    grid_free(&g);
    return 0;
}
