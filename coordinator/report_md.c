/* report_md.c - report.md: a header per sweep (models, jobs by state, what ran), then per model
 * the paper's Tables 2-4 (one table per metric: rows the compressors, or the unlearners for
 * editing x unlearning, plus Average; columns the other category's methods, each with E_OF and
 * E_OS at 25% sparsity / 4 bits, 4 decimals), the same averaged over every compression level
 * (beyond the paper) and a table of every composition's metrics (mean +- standard error over edit
 * sets). Text from the DB is escaped for Markdown tables. */
#include "coordinator/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Markdown-safe text: | escaped, newlines flattened, < and & as entities (no raw HTML can start) */
static void md_text(FILE *f, const char *s) {
    if (!s) { fputs("-", f); return; }
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '|': fputs("\\|", f); break;
        case '<': fputs("&lt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '`': fputs("'", f); break;
        case '\\': fputs("\\\\", f); break;
        default: fputc(*p < 0x20 ? ' ' : *p, f);
        }
    }
}

static void md_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.4f", v);
    else fputs("-", f);
}

static void header(FILE *f, const report_data *d, const char *db) {
    char ts[40];
    fputs("# cisweep report\n\n", f);
    fputs("Database: `", f);
    md_text(f, db);
    fprintf(f, "` (read %s). Composability: the views of `schema/views.sql` (`v_composability_table`, "
               "`v_composability`, `v_composition_metrics`).\n\n", fmt_time_ms(now_ms(), ts, sizeof ts));
    if (d->n_sweeps == 0) fputs("No sweep has been launched into this database.\n\n", f);
    for (int i = 0; i < d->n_sweeps; i++) {
        const rep_sweep *s = &d->sweeps[i];
        fputs("## Sweep ", f);
        md_text(f, s->name);
        fputs("\n\n", f);
        rep_fact facts[REP_FACTS_MAX];
        int nf = rep_sweep_facts(s, facts);
        fputs("| | |\n|---|---|\n", f);
        for (int k = 0; k < nf; k++) {
            fprintf(f, "| %s | ", facts[k].label);
            md_text(f, facts[k].text);
            fputs(" |\n", f);
        }
        fputs("\n", f);
        rep_facts_clear(facts, nf);
    }
}

/* the paper's tables for one (sweep, model) and one pair kind: one table per metric */
static void kind_tables(FILE *f, const report_data *d, const char *sweep, const char *model, const char *kind) {
    rep_names rows = {0}, cols = {0}, metrics = {0};
    for (int i = 0; i < d->n_cells; i++) {
        const rep_cell *c = &d->cells[i];
        if (!report_eq(c->sweep, sweep) || !report_eq(c->model, model) || !report_eq(c->kind, kind) ||
            !report_kind_has_metric(kind, c->metric))
            continue;
        rep_names_add(&rows, c->row);
        rep_names_add(&cols, c->col);
        rep_names_add(&metrics, c->metric);
    }
    fprintf(f, "### %s\n\n", report_kind_title(kind));
    if (rows.n == 0) {
        fputs("No data: no pair of this kind has both orders finished at 25% sparsity / 4 bits.\n\n", f);
        goto done;
    }
    rep_names_sort(&rows, report_method_rank);
    rep_names_sort(&cols, report_method_rank);
    rep_names_sort(&metrics, report_metric_rank);
    fprintf(f, "E_OF and E_OS at 25%% sparsity (Wanda, SparseGPT) / 4 bits (GPTQ, AWQ), means over edit sets, "
               "4 decimals as the notebook rounds; *Average* is the column mean of the rounded cells over the %s.\n\n",
            report_eq(kind, "edit_unlearn") ? "unlearners" : "compressors");
    for (int m = 0; m < metrics.n; m++) {
        fputs("**", f);
        md_text(f, report_metric_name(metrics.v[m]));
        fprintf(f, "** (%s)\n\n| %s |", report_eq(metrics.v[m], "wmdp") ? "E_OF = min of the two orders, lower is better"
                                                                         : "E_OF = 1 - max of the two orders",
                report_eq(kind, "edit_unlearn") ? "Unlearner" : "Compressor");
        for (int c = 0; c < cols.n; c++) {
            fputs(" ", f);
            md_text(f, report_method_name(cols.v[c]));
            fputs(" E_OF | ", f);
            md_text(f, report_method_name(cols.v[c]));
            fputs(" E_OS |", f);
        }
        fputs("\n|---|", f);
        for (int c = 0; c < cols.n; c++) fputs("---:|---:|", f);
        fputs("\n", f);
        for (int r = 0; r < rows.n; r++) {
            bool avg = report_eq(rows.v[r], "Average");
            fputs(avg ? "| *Average* |" : "| ", f);
            if (!avg) { md_text(f, report_method_name(rows.v[r])); fputs(" |", f); }
            for (int c = 0; c < cols.n; c++) {
                const rep_cell *hit = NULL;
                for (int i = 0; i < d->n_cells && !hit; i++) {
                    const rep_cell *x = &d->cells[i];
                    if (report_eq(x->sweep, sweep) && report_eq(x->model, model) && report_eq(x->kind, kind) &&
                        report_eq(x->row, rows.v[r]) && report_eq(x->col, cols.v[c]) && report_eq(x->metric, metrics.v[m]))
                        hit = x;
                }
                fputs(" ", f);
                md_num(f, hit ? hit->e_of : NAN);
                fputs(" | ", f);
                md_num(f, hit ? hit->e_os : NAN);
                fputs(" |", f);
            }
            fputs("\n", f);
        }
        fputs("\n", f);
    }
done:
    rep_names_clear(&rows);
    rep_names_clear(&cols);
    rep_names_clear(&metrics);
}

/* beyond the paper: E_OF and E_OS averaged over the compression levels (v_composability_area) */
static void area_tables(FILE *f, const report_data *d, const char *sweep, const char *model) {
    static const char *const KINDS[2] = {"edit_compress", "unlearn_compress"};
    fputs("### Over every compression level (beyond the paper)\n\nE_OF / E_OS averaged over the compression level: "
          "the trapezoid area under each over the levels where both orders finished, divided by the level range "
          "(sparsity or bits); `levels` = how many levels, and their range.\n\n", f);
    int any = 0;
    for (int k = 0; k < 2; k++) {
        rep_names metrics = {0};
        char **keys = NULL;                /* row labels "A x B", one per (a, b) */
        const rep_area **firsts = NULL;
        int nk = 0;
        for (int i = 0; i < d->n_areas; i++) {
            const rep_area *a = &d->areas[i];
            if (!report_eq(a->sweep, sweep) || !report_eq(a->model, model) || !report_eq(a->kind, KINDS[k]) ||
                !report_kind_has_metric(a->kind, a->metric))
                continue;
            rep_names_add(&metrics, a->metric);
            bool seen = false;
            for (int r = 0; r < nk && !seen; r++) seen = report_eq(firsts[r]->a, a->a) && report_eq(firsts[r]->b, a->b);
            if (seen) continue;
            keys = xrealloc(keys, (size_t)(nk + 1) * sizeof *keys);
            firsts = xrealloc(firsts, (size_t)(nk + 1) * sizeof *firsts);
            keys[nk] = xasprintf("%s \xc3\x97 %s", report_method_name(a->a), report_method_name(a->b));
            firsts[nk++] = a;
        }
        if (nk == 0) { free(keys); free(firsts); rep_names_clear(&metrics); continue; }
        any = 1;
        for (int i = 1; i < nk; i++) {   /* the paper's order: compressor, then the other method */
            const rep_area *x = firsts[i];
            char *xk = keys[i];
            int j = i - 1;
            while (j >= 0 && (report_method_rank(firsts[j]->a) > report_method_rank(x->a) ||
                              (report_method_rank(firsts[j]->a) == report_method_rank(x->a) &&
                               report_method_rank(firsts[j]->b) > report_method_rank(x->b)))) {
                firsts[j + 1] = firsts[j];
                keys[j + 1] = keys[j];
                j--;
            }
            firsts[j + 1] = x;
            keys[j + 1] = xk;
        }
        rep_names_sort(&metrics, report_metric_rank);
        fprintf(f, "**%s**\n\n| pair | levels |", k == 0 ? "Editing \xc3\x97 compression" : "Unlearning \xc3\x97 compression");
        for (int m = 0; m < metrics.n; m++) fprintf(f, " %s E_OF / E_OS |", report_metric_name(metrics.v[m]));
        fputs("\n|---|---|", f);
        for (int m = 0; m < metrics.n; m++) fputs("---:|", f);
        fputs("\n", f);
        for (int r = 0; r < nk; r++) {
            fputs("| ", f);
            md_text(f, keys[r]);
            fprintf(f, " | %d (%g-%g) |", firsts[r]->n_levels, firsts[r]->level_min, firsts[r]->level_max);
            for (int m = 0; m < metrics.n; m++) {
                const rep_area *hit = NULL;
                for (int i = 0; i < d->n_areas && !hit; i++) {
                    const rep_area *a = &d->areas[i];
                    if (report_eq(a->sweep, sweep) && report_eq(a->model, model) && report_eq(a->kind, KINDS[k]) &&
                        report_eq(a->a, firsts[r]->a) && report_eq(a->b, firsts[r]->b) && report_eq(a->metric, metrics.v[m]))
                        hit = a;
                }
                fputs(" ", f);
                md_num(f, hit ? hit->e_of_mean : NAN);
                fputs(" / ", f);
                md_num(f, hit ? hit->e_os_mean : NAN);
                fputs(" |", f);
            }
            fputs("\n", f);
            free(keys[r]);
        }
        fputs("\n", f);
        free(keys);
        free(firsts);
        rep_names_clear(&metrics);
    }
    if (!any) fputs("No data: no compressor has both orders finished at two levels or more.\n\n", f);
}

/* every composition of one (sweep, model): mean +- se per metric */
static void composition_table(FILE *f, const report_data *d, const char *sweep, const char *model) {
    fputs("### Every composition\n\nMean \xc2\xb1 standard error over the done jobs (edit sets); n = jobs averaged. "
          "WMDP is the mean of WMDP-bio and WMDP-cyber.\n\n| composition | pattern | n |", f);
    for (int m = 0; m < REPORT_N_METRICS; m++) fprintf(f, " %s |", report_metric_name(REPORT_METRICS[m]));
    fputs("\n|---|---|---:|", f);
    for (int m = 0; m < REPORT_N_METRICS; m++) fputs("---:|", f);
    fputs("\n", f);
    for (int i = 0; i < d->n_cm;) {
        const rep_cm *c = &d->cm[i];
        int j = i;
        while (j < d->n_cm && d->cm[j].composition_id == c->composition_id && report_eq(d->cm[j].sweep, c->sweep)) j++;
        if (report_eq(c->sweep, sweep) && report_eq(c->model, model)) {
            int n = 0;
            for (int k = i; k < j; k++) if (d->cm[k].n > n) n = d->cm[k].n;
            fputs("| ", f);
            md_text(f, c->label);
            fputs(" | ", f);
            md_text(f, c->pattern);
            fprintf(f, " | %d |", n);
            for (int m = 0; m < REPORT_N_METRICS; m++) {
                const rep_cm *hit = NULL;
                for (int k = i; k < j && !hit; k++) if (report_eq(d->cm[k].metric, REPORT_METRICS[m])) hit = &d->cm[k];
                if (!hit || !isfinite(hit->mean)) fputs(" - |", f);
                else if (isfinite(hit->se)) fprintf(f, " %.4f \xc2\xb1 %.4f |", hit->mean, hit->se);
                else fprintf(f, " %.4f |", hit->mean);
            }
            fputs("\n", f);
        }
        i = j;
    }
    fputs("\n", f);
}

int report_write_md(FILE *f, const report_data *d, const char *db) {
    header(f, d, db);
    /* one section per (sweep, model) that has any metric */
    for (int i = 0; i < d->n_cm; i++) {
        const rep_cm *c = &d->cm[i];
        bool seen = false;
        for (int k = 0; k < i && !seen; k++) seen = report_eq(d->cm[k].sweep, c->sweep) && report_eq(d->cm[k].model, c->model);
        if (seen) continue;
        fputs("## Model ", f);
        md_text(f, c->model);
        fputs(" (sweep ", f);
        md_text(f, c->sweep);
        fputs(")\n\n", f);
        kind_tables(f, d, c->sweep, c->model, "edit_compress");
        kind_tables(f, d, c->sweep, c->model, "unlearn_compress");
        kind_tables(f, d, c->sweep, c->model, "edit_unlearn");
        area_tables(f, d, c->sweep, c->model);
        composition_table(f, d, c->sweep, c->model);
    }
    if (d->n_cm == 0) fputs("No data: no job has finished with metrics yet.\n", f);
    return 0;
}
