/* cmd_grid.c - `cisweep grid FILE [--count] [--jobs] [--allow-selftest] [--quiet]`: expand a grid
 * spec and print it. Output (stdout):
 *   one line per composition: MODEL<TAB>PATTERN<TAB>CANONICAL   (omitted with --quiet), and
 *     <TAB>recompress=POLICY when the block's recompress policy is not paper
 *   "# grid NAME (FILE): N compositions, M jobs"
 *   "# by pattern:" then "#   PATTERN<spaces>COUNT" in order of first appearance
 *   "# by model:" then "#   MODEL<spaces>COMPOSITIONS compositions, JOBS jobs"
 *   --count: N alone on a line; --jobs: M alone on a line (with both: N, then M last).
 *   --prefixes: what shared stage prefixes save (common/prefix_key.h, the keys the workers and the
 *   coordinator use): "# prefixes: ..." lines with the stage applications of all jobs, the distinct
 *   prefixes kept, and the stage applications a job can restore from an earlier job's snapshot
 *   (unlimited snapshot memory, every job of a prefix on one worker), by method.
 * A bad grid prints "cisweep grid: MESSAGE" on stderr and exits 2; usage errors exit 2 too. */
#include "common/recompress.h"
#include "coordinator/grid.h"
#include "common/prefix_key.h"
#include "common/spec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] = "usage: cisweep grid FILE [--count] [--jobs] [--prefixes] [--allow-selftest] [--allow-huge-grid] [--quiet]";

typedef struct tally { const char *name; size_t comps, jobs; } tally;

/* count `name` into t[*n] (linear: there are few patterns and models) */
static void tally_add(tally *t, size_t *n, const char *name, size_t jobs) {
    for (size_t i = 0; i < *n; i++)
        if (!strcmp(t[i].name, name)) { t[i].comps++; t[i].jobs += jobs; return; }
    t[*n] = (tally){name, 1, jobs};
    (*n)++;
}

/* the shared-prefix count of --prefixes: jobs in grid order; a job restores the longest of its
 * prefixes an earlier job kept (prefix_kept), and keeps its own. Keys are kept in a sorted array. */
static int key_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void print_prefix_savings(const grid *g) {
    size_t cap = 1024, n = 0, apps = 0, saved = 0, njobs = 0;
    char **keys = xmalloc(cap * sizeof *keys);
    tally *by = xcalloc(64, sizeof *by);
    size_t nby = 0;
    for (size_t i = 0; i < g->n_comps; i++) {
        const grid_comp *c = &g->comps[i];
        json_t *canon = json_loads(c->canonical, 0, NULL);
        int ns = (int)json_array_size(canon);
        int nes = c->n_edit_sets > 0 ? c->n_edit_sets : 1;
        for (int e = 0; e < nes; e++) {
            int es = c->n_edit_sets > 0 ? c->edit_sets[e] : 0;
            njobs++;
            apps += (size_t)ns;
            char k[PREFIX_MAX_K][PREFIX_KEY_HEX + 1];
            int nk = 0;
            for (int s = 1; s <= ns && s <= PREFIX_MAX_K; s++, nk++)
                if (prefix_key(c->model, canon, s, es, NULL, k[s - 1], NULL)) break;
            int best = 0;
            for (int s = nk; s >= 1 && !best; s--) {
                char *kp = k[s - 1];
                if (prefix_kept(s, ns) && bsearch(&kp, keys, n, sizeof *keys, key_cmp)) best = s;
            }
            saved += (size_t)best;
            for (int s = 0; s < best && nby < 64; s++) {
                const method_info *mi = method_lookup(
                    json_string_value(json_object_get(json_array_get(canon, (size_t)s), "method")));
                tally_add(by, &nby, mi ? mi->name : "?", 1); /* static names: canon is freed below */
            }
            for (int s = 1; s <= nk; s++) {
                char *kp = k[s - 1];
                if (!prefix_kept(s, ns) || bsearch(&kp, keys, n, sizeof *keys, key_cmp)) continue;
                if (n == cap) keys = xrealloc(keys, (cap *= 2) * sizeof *keys);
                keys[n++] = xstrdup(kp);
                qsort(keys, n, sizeof *keys, key_cmp);
            }
        }
        json_decref(canon);
    }
    printf("# prefixes: %zu jobs apply %zu composition stages (the paper's re-application of a leading compressor "
           "at the end is not counted: it runs on edited weights and is never shared)\n", njobs, apps);
    printf("# prefixes: %zu distinct stage prefixes kept; %zu stage applications (%.1f%%) restored from a snapshot "
           "instead of computed (unlimited snapshot memory; every job of a prefix on one worker)\n", n, saved,
           apps ? 100.0 * (double)saved / (double)apps : 0.0);
    printf("# prefixes: restored, by method:");
    for (size_t i = 0; i < nby; i++) printf(" %s %zu%s", by[i].name, by[i].comps, i + 1 < nby ? "," : "\n");
    if (!nby) printf(" none\n");
    for (size_t i = 0; i < n; i++) free(keys[i]);
    free(keys);
    free(by);
}

int cmd_grid(int argc, char **argv) {
    const char *file = NULL;
    bool count = false, jobs = false, quiet = false, prefixes = false;
    unsigned flags = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count")) count = true;
        else if (!strcmp(argv[i], "--jobs")) jobs = true;
        else if (!strcmp(argv[i], "--prefixes")) prefixes = true;
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
    if (prefixes) print_prefix_savings(g);
    if (count) printf("%zu\n", g->n_comps);
    if (jobs) printf("%zu\n", g->n_jobs);
    fflush(stdout);
    free(pat);
    free(mod);
    grid_free(&g);
    return 0;
}
