/* report_html.c - report.html: one self-contained page (inline CSS, inline SVG from svg_plot.c,
 * no script, a Content-Security-Policy that forbids loading anything) with, per (sweep, model):
 *   1. heat maps of E_OF and E_OS at the paper's level (rows: pairs of interventions, columns:
 *      metrics), and of the same averaged over every compression level (beyond the paper);
 *   2. the paper's figures: per compressor, edit success of every editor and WMDP and MMLU of
 *      every unlearner against the compression level, both orders (compressor first: solid;
 *      compressor last: dashed);
 *   3. every (compressor, other intervention) pair and metric against the compression level:
 *      both orders with the gap between them shaded, the other intervention alone and the
 *      baseline as horizontal lines, the compressor alone as a dotted curve.
 * All text from the DB is HTML-escaped (svg_plot.h's html_escape). */
#include "coordinator/report.h"
#include "coordinator/svg_plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char CSS[] =
    "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:1.5em;color:#222;max-width:1900px}"
    "h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ccc;margin-top:2em}"
    "h3{font-size:1.1em;margin-top:1.5em}h4{font-size:1em;margin:1em 0 .3em}"
    "table.facts{border-collapse:collapse;font-size:.9em}table.facts td{border:1px solid #ddd;padding:2px 8px}"
    ".plots{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}"
    "svg.plot{background:#fff;border:1px solid #e4e4e4}"
    "svg .title{font:bold 12px 'DejaVu Sans',sans-serif}svg .tick{font:10px 'DejaVu Sans',sans-serif;fill:#333}"
    "svg .label{font:11px 'DejaVu Sans',sans-serif;fill:#222}svg .legend{font:10px 'DejaVu Sans',sans-serif;fill:#222}"
    "svg .area{fill:#fff;stroke:#bbb}svg .grid{stroke:#eee}svg .axis{stroke:#555}"
    "svg .series{fill:none;stroke-width:1.8}svg .key{stroke-width:2}svg .err{stroke-width:1}"
    "svg .gap{fill:#9ecae1;fill-opacity:.45;stroke:#6baed6;stroke-opacity:.6}svg .ref{stroke-width:1.3}"
    "svg .cell.none{fill:#f0f0f0}svg .val{font:10px 'DejaVu Sans',sans-serif;fill:#222}svg .val.dark{fill:#fff}"
    ".nodata{border:1px dashed #bbb;color:#666;padding:1em;width:300px;font-size:.9em;background:#fafafa}"
    ".note{color:#555;font-size:.9em;max-width:70em}";

/* colours (palette indices) of the pair plots */
enum { C_FIRST = 0, C_LAST = 1, C_ALONE = 2, C_COMP = 4, C_BASE = 7 };

static void esc(FILE *f, const char *s) { html_escape(f, s ? s : "-"); }

/* the mean of one (composition, metric) where the composition is the single stage `method`
 * (NULL: the baseline); NAN when absent or when several parameterisations of it exist */
static double single_value(const report_data *d, const char *sweep, const char *model, const char *method,
                           const char *metric) {
    double v = NAN;
    int hits = 0;
    for (int i = 0; i < d->n_cm; i++) {
        const rep_cm *c = &d->cm[i];
        if (!report_eq(c->sweep, sweep) || !report_eq(c->model, model) || !report_eq(c->metric, metric)) continue;
        if (method ? (c->n_stages == 1 && report_eq(c->method[0], method)) : c->n_stages == 0) { v = c->mean; hits++; }
    }
    return hits == 1 ? v : NAN;
}

/* a curve over the compressor's level: points of compositions matching (order: 1 = comp first,
 * 2 = comp last, 0 = the compressor alone) sorted by level; returns the point count */
typedef struct curve { double *x, *y, *e; int n; } curve;

static int make_curve(const report_data *d, const char *sweep, const char *model, const char *comp, const char *other,
                      const char *metric, int order, curve *cv) {
    cv->n = 0;
    cv->x = cv->y = cv->e = NULL;
    int cap = 0;
    for (int i = 0; i < d->n_cm; i++) {
        const rep_cm *c = &d->cm[i];
        if (!report_eq(c->sweep, sweep) || !report_eq(c->model, model) || !report_eq(c->metric, metric)) continue;
        double lv;
        if (order == 0) {
            if (c->n_stages != 1 || !report_eq(c->method[0], comp)) continue;
            lv = c->level[0];
        } else if (order == 1) {
            if (c->n_stages != 2 || !report_eq(c->method[0], comp) || !report_eq(c->method[1], other)) continue;
            lv = c->level[0];
        } else {
            if (c->n_stages != 2 || !report_eq(c->method[1], comp) || !report_eq(c->method[0], other)) continue;
            lv = c->level[1];
        }
        if (!isfinite(lv)) continue;
        if (cv->n == cap) {
            cap = cap ? cap * 2 : 8;
            cv->x = xrealloc(cv->x, (size_t)cap * sizeof *cv->x);
            cv->y = xrealloc(cv->y, (size_t)cap * sizeof *cv->y);
            cv->e = xrealloc(cv->e, (size_t)cap * sizeof *cv->e);
        }
        int k = cv->n++;   /* insertion by level */
        while (k > 0 && cv->x[k - 1] > lv) { cv->x[k] = cv->x[k - 1]; cv->y[k] = cv->y[k - 1]; cv->e[k] = cv->e[k - 1]; k--; }
        cv->x[k] = lv;
        cv->y[k] = c->mean;
        cv->e[k] = c->se;
    }
    return cv->n;
}

static void curve_clear(curve *cv) {
    free(cv->x); free(cv->y); free(cv->e);
    memset(cv, 0, sizeof *cv);
}

static char *arrow(const char *a, const char *b) {
    return xasprintf("%s \xe2\x86\x92 %s", report_method_name(a), report_method_name(b));
}

/* one pair plot: comp and other, one metric */
static void pair_plot(FILE *f, const report_data *d, const char *sweep, const char *model, const char *comp,
                      const char *other, const char *metric) {
    curve first, last, alone;
    make_curve(d, sweep, model, comp, other, metric, 1, &first);
    make_curve(d, sweep, model, comp, other, metric, 2, &last);
    make_curve(d, sweep, model, comp, NULL, metric, 0, &alone);
    char *n1 = arrow(comp, other), *n2 = arrow(other, comp);
    char *na = xasprintf("%s alone", report_method_name(comp)), *no = xasprintf("%s alone", report_method_name(other));
    char *title = xasprintf("%s: %s \xc3\x97 %s", report_metric_name(metric), report_method_name(comp),
                            report_method_name(other));
    plot_series s[3] = {
        {.name = n1, .x = first.x, .y = first.y, .err = first.e, .n = first.n, .color = C_FIRST, .dash = PLOT_SOLID},
        {.name = n2, .x = last.x, .y = last.y, .err = last.e, .n = last.n, .color = C_LAST, .dash = PLOT_DASHED},
        {.name = na, .x = alone.x, .y = alone.y, .err = NULL, .n = alone.n, .color = C_COMP, .dash = PLOT_DOTTED},
    };
    plot_ref r[2] = {
        {.name = no, .y = single_value(d, sweep, model, other, metric), .color = C_ALONE, .dash = PLOT_DASHED},
        {.name = "baseline", .y = single_value(d, sweep, model, NULL, metric), .color = C_BASE, .dash = PLOT_DOTTED},
    };
    line_plot p = {.title = title, .xlabel = report_level_name(comp), .ylabel = report_metric_name(metric),
                   .series = s, .n_series = 3, .refs = r, .n_refs = 2, .shade_a = 0, .shade_b = 1,
                   .ymin = 0, .ymax = 1, .width = 330, .height = 240};
    if (first.n + last.n == 0) p.n_series = 0;   /* the compressor alone is a reference, not this pair's data */
    svg_line_plot(f, &p);
    free(n1); free(n2); free(na); free(no); free(title);
    curve_clear(&first); curve_clear(&last); curve_clear(&alone);
}

/* the paper's figure: one compressor, one metric, every method of `others`, both orders */
static void overview_plot(FILE *f, const report_data *d, const char *sweep, const char *model, const char *comp,
                          const rep_names *others, const char *metric, const char *what) {
    int n = others->n;
    curve *cv = xcalloc((size_t)(2 * n + 1), sizeof *cv);
    plot_series *s = xcalloc((size_t)(2 * n), sizeof *s);
    char **names = xcalloc((size_t)(2 * n), sizeof *names);
    int ns = 0;
    for (int i = 0; i < n; i++) {
        for (int o = 1; o <= 2; o++) {
            curve *c = &cv[ns];
            if (!make_curve(d, sweep, model, comp, others->v[i], metric, o, c)) continue;
            names[ns] = o == 1 ? arrow(comp, others->v[i]) : arrow(others->v[i], comp);
            s[ns] = (plot_series){.name = names[ns], .x = c->x, .y = c->y, .err = c->e, .n = c->n,
                                  .color = i < C_BASE ? i : i + 1, .dash = o == 1 ? PLOT_SOLID : PLOT_DASHED};
            ns++;
        }
    }
    plot_ref base = {.name = "baseline", .y = single_value(d, sweep, model, NULL, metric), .color = C_BASE,
                     .dash = PLOT_DOTTED};
    char *title = xasprintf("%s of %s vs %s %s", report_metric_name(metric), what, report_method_name(comp),
                            report_level_name(comp));
    line_plot p = {.title = title, .xlabel = report_level_name(comp), .ylabel = report_metric_name(metric),
                   .series = s, .n_series = ns, .refs = &base, .n_refs = 1, .shade_a = -1, .shade_b = -1,
                   .ymin = 0, .ymax = 1, .width = 360, .height = 250};
    svg_line_plot(f, &p);
    free(title);
    for (int i = 0; i < ns; i++) { free(names[i]); curve_clear(&cv[i]); }
    free(names); free(s); free(cv);
}

/* heat maps of E_OF and E_OS at the headline level for one (sweep, model) */
static void heat_maps(FILE *f, const report_data *d, const char *sweep, const char *model) {
    static const char *const KINDS[3] = {"edit_compress", "unlearn_compress", "edit_unlearn"};
    int cap = 0, nr = 0;
    char **rows = NULL;
    const rep_pair **first = NULL;   /* the first pair row of each heat-map row */
    rep_names metrics = {0};
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < d->n_pairs; i++) {
            const rep_pair *p = &d->pairs[i];
            if (!p->headline || !report_eq(p->sweep, sweep) || !report_eq(p->model, model) || !report_eq(p->kind, KINDS[k]) ||
                !report_kind_has_metric(p->kind, p->metric))
                continue;
            rep_names_add(&metrics, p->metric);
            bool seen = false;
            for (int r = 0; r < nr && !seen; r++)
                seen = report_eq(first[r]->kind, p->kind) && report_eq(first[r]->a, p->a) && report_eq(first[r]->b, p->b);
            if (seen) continue;
            if (nr == cap) {
                cap = cap ? cap * 2 : 16;
                rows = xrealloc(rows, (size_t)cap * sizeof *rows);
                first = xrealloc(first, (size_t)cap * sizeof *first);
            }
            rows[nr] = xasprintf("%s \xc3\x97 %s", report_method_name(p->a), report_method_name(p->b));
            first[nr++] = p;
        }
    }
    /* rows in the paper's order: by kind (the loop above), then the methods' ranks */
    for (int i = 1; i < nr; i++) {
        const rep_pair *x = first[i];
        char *xr = rows[i];
        int j = i - 1;
        while (j >= 0 && report_eq(first[j]->kind, x->kind) &&
               (report_method_rank(first[j]->a) > report_method_rank(x->a) ||
                (report_method_rank(first[j]->a) == report_method_rank(x->a) &&
                 report_method_rank(first[j]->b) > report_method_rank(x->b)))) {
            first[j + 1] = first[j];
            rows[j + 1] = rows[j];
            j--;
        }
        first[j + 1] = x;
        rows[j + 1] = xr;
    }
    rep_names_sort(&metrics, report_metric_rank);
    const char **cols = xcalloc((size_t)metrics.n + 1, sizeof *cols);
    for (int m = 0; m < metrics.n; m++) cols[m] = report_metric_name(metrics.v[m]);
    double *vof = xmalloc(((size_t)nr * (size_t)metrics.n + 1) * sizeof *vof);
    double *vos = xmalloc(((size_t)nr * (size_t)metrics.n + 1) * sizeof *vos);
    for (int r = 0; r < nr; r++)
        for (int m = 0; m < metrics.n; m++) {
            vof[r * metrics.n + m] = vos[r * metrics.n + m] = NAN;
            for (int i = 0; i < d->n_pairs; i++) {
                const rep_pair *p = &d->pairs[i];
                if (p->headline && report_kind_has_metric(p->kind, p->metric) && report_eq(p->sweep, sweep) && report_eq(p->model, model) &&
                    report_eq(p->kind, first[r]->kind) && report_eq(p->a, first[r]->a) && report_eq(p->b, first[r]->b) &&
                    report_eq(p->metric, metrics.v[m])) {
                    vof[r * metrics.n + m] = p->e_of;
                    vos[r * metrics.n + m] = p->e_os;
                }
            }
        }
    heat_map h = {.title = "Order-free Error E_OF (25% sparsity / 4 bits)", .rows = (const char *const *)rows,
                  .cols = cols, .n_rows = nr, .n_cols = metrics.n, .v = vof, .vmin = 0, .vmax = 1};
    fputs("<div class=\"plots\">\n", f);
    svg_heat_map(f, &h);
    h.title = "Order Sensitivity E_OS (25% sparsity / 4 bits)";
    h.v = vos;
    h.vmin = h.vmax = 0;   /* E_OS is usually small: scale to the data */
    svg_heat_map(f, &h);
    fputs("</div>\n", f);
    for (int r = 0; r < nr; r++) free(rows[r]);
    free(rows); free(first); free(cols); free(vof); free(vos);
    rep_names_clear(&metrics);
}

/* heat maps of E_OF and E_OS averaged over the compression levels (v_composability_area) */
static void area_heat_maps(FILE *f, const report_data *d, const char *sweep, const char *model) {
    int nr = 0;
    char **rows = NULL;
    const rep_area **first = NULL;
    rep_names metrics = {0};
    for (int k = 0; k < 2; k++) {
        const char *kind = k == 0 ? "edit_compress" : "unlearn_compress";
        int start = nr;
        for (int i = 0; i < d->n_areas; i++) {
            const rep_area *a = &d->areas[i];
            if (!report_eq(a->sweep, sweep) || !report_eq(a->model, model) || !report_eq(a->kind, kind) ||
                !report_kind_has_metric(a->kind, a->metric))
                continue;
            rep_names_add(&metrics, a->metric);
            bool seen = false;
            for (int r = start; r < nr && !seen; r++) seen = report_eq(first[r]->a, a->a) && report_eq(first[r]->b, a->b);
            if (seen) continue;
            rows = xrealloc(rows, (size_t)(nr + 1) * sizeof *rows);
            first = xrealloc(first, (size_t)(nr + 1) * sizeof *first);
            rows[nr] = xasprintf("%s \xc3\x97 %s", report_method_name(a->a), report_method_name(a->b));
            first[nr] = a;
            /* in the paper's order within the kind */
            for (int j = nr; j > start && (report_method_rank(first[j - 1]->a) > report_method_rank(a->a) ||
                                           (report_method_rank(first[j - 1]->a) == report_method_rank(a->a) &&
                                            report_method_rank(first[j - 1]->b) > report_method_rank(a->b))); j--) {
                const rep_area *ta = first[j]; first[j] = first[j - 1]; first[j - 1] = ta;
                char *tr = rows[j]; rows[j] = rows[j - 1]; rows[j - 1] = tr;
            }
            nr++;
        }
    }
    rep_names_sort(&metrics, report_metric_rank);
    const char **cols = xcalloc((size_t)metrics.n + 1, sizeof *cols);
    for (int m = 0; m < metrics.n; m++) cols[m] = report_metric_name(metrics.v[m]);
    size_t nv = (size_t)nr * (size_t)metrics.n + 1;
    double *vof = xmalloc(nv * sizeof *vof), *vos = xmalloc(nv * sizeof *vos);
    for (int r = 0; r < nr; r++)
        for (int m = 0; m < metrics.n; m++) {
            vof[r * metrics.n + m] = vos[r * metrics.n + m] = NAN;
            for (int i = 0; i < d->n_areas; i++) {
                const rep_area *a = &d->areas[i];
                if (report_eq(a->sweep, sweep) && report_eq(a->model, model) && report_eq(a->kind, first[r]->kind) &&
                    report_eq(a->a, first[r]->a) && report_eq(a->b, first[r]->b) && report_eq(a->metric, metrics.v[m])) {
                    vof[r * metrics.n + m] = a->e_of_mean;
                    vos[r * metrics.n + m] = a->e_os_mean;
                }
            }
        }
    heat_map h = {.title = "E_OF averaged over every level", .rows = (const char *const *)rows, .cols = cols,
                  .n_rows = nr, .n_cols = metrics.n, .v = vof, .vmin = 0, .vmax = 1,
                  .nodata = "no compressor has both orders finished at two levels or more"};
    fputs("<div class=\"plots\">\n", f);
    svg_heat_map(f, &h);
    h.title = "E_OS averaged over every level";
    h.v = vos;
    h.vmin = h.vmax = 0;
    svg_heat_map(f, &h);
    fputs("</div>\n", f);
    for (int r = 0; r < nr; r++) free(rows[r]);
    free(rows); free(first); free(cols); free(vof); free(vos);
    rep_names_clear(&metrics);
}

/* the first index of each (sweep, model) in d->cm, i.e. the sections in page order; returns how many */
static int model_sections(const report_data *d, int *first) {
    int n = 0;
    for (int i = 0; i < d->n_cm; i++) {
        bool seen = false;
        for (int k = 0; k < n && !seen; k++)
            seen = report_eq(d->cm[first[k]].sweep, d->cm[i].sweep) && report_eq(d->cm[first[k]].model, d->cm[i].model);
        if (!seen) first[n++] = i;
    }
    return n;
}

/* section number `no` (its anchor is #model-NO) */
static void model_section(FILE *f, const report_data *d, const char *sweep, const char *model, int no) {
    rep_names comps = {0}, editors = {0}, unlearners = {0};
    for (int i = 0; i < d->n_cm; i++) {
        const rep_cm *c = &d->cm[i];
        if (!report_eq(c->sweep, sweep) || !report_eq(c->model, model)) continue;
        for (int k = 0; k < c->n_stages && k < 2; k++) {
            if (report_eq(c->category[k], "compress")) rep_names_add(&comps, c->method[k]);
            else if (report_eq(c->category[k], "edit")) rep_names_add(&editors, c->method[k]);
            else if (report_eq(c->category[k], "unlearn")) rep_names_add(&unlearners, c->method[k]);
        }
    }
    rep_names_sort(&comps, report_method_rank);
    rep_names_sort(&editors, report_method_rank);
    rep_names_sort(&unlearners, report_method_rank);

    fprintf(f, "<h2 id=\"model-%d\">Model ", no);
    esc(f, model);
    fputs(" <small>(sweep ", f);
    esc(f, sweep);
    fputs(")</small></h2>\n<h3>Composability at the paper's level</h3>\n<p class=\"note\">Each row is a pair of "
          "interventions, each column a metric. E_OF = 1 &minus; the better of the two orders (for WMDP: the lower "
          "of the two, lower is better); E_OS = the absolute difference between the orders. Means over edit sets; "
          "compressors at 25% sparsity or 4 bits.</p>\n", f);
    heat_maps(f, d, sweep, model);
    fputs("<h3>Composability over every compression level (beyond the paper)</h3>\n<p class=\"note\">The same "
          "quantities averaged over the compression level: the trapezoid area under E_OF (E_OS) across the levels "
          "where both orders finished, divided by the level range (sparsity or bits). E_OS here is the mean width "
          "of the shaded band in the pair plots below.</p>\n", f);
    area_heat_maps(f, d, sweep, model);

    fputs("<h3>The paper's figures: metrics against the compression level</h3>\n<p class=\"note\">Solid: the "
          "compressor first (compressor &rarr; X); dashed: the compressor last (X &rarr; compressor). Dotted grey: "
          "the uncompressed baseline.</p>\n<div class=\"plots\">\n", f);
    if (comps.n == 0) fputs("<div class=\"nodata\">no data: no compression stage has finished</div>\n", f);
    for (int c = 0; c < comps.n; c++) {
        if (editors.n) overview_plot(f, d, sweep, model, comps.v[c], &editors, "edit_success", "the editors");
        if (unlearners.n) {
            overview_plot(f, d, sweep, model, comps.v[c], &unlearners, "wmdp", "the unlearners");
            overview_plot(f, d, sweep, model, comps.v[c], &unlearners, "mmlu", "the unlearners");
        }
    }
    fputs("</div>\n", f);

    fputs("<h3>Every pair: both orders against the compression level</h3>\n<p class=\"note\">Blue (solid): "
          "compressor &rarr; X; orange (dashed): X &rarr; compressor; the shaded band is the gap between the two "
          "orders (order sensitivity at every level). Green dashed: X alone; grey dotted: the baseline; purple "
          "dotted: the compressor alone. Bars: &plusmn; one standard error over edit sets.</p>\n", f);
    for (int m = 0; m < REPORT_N_METRICS; m++) {
        const char *metric = REPORT_METRICS[m];
        bool edit_metric = m < 3;   /* edit_success, generalization, locality: editors only */
        bool any = false;
        for (int g = 0; g < 2; g++) {
            const rep_names *others = g == 0 ? &editors : &unlearners;
            if ((g == 0 && report_eq(metric, "wmdp")) || (g == 1 && edit_metric)) continue;
            for (int c = 0; c < comps.n; c++)
                for (int o = 0; o < others->n; o++) {
                    if (!any) {
                        fputs("<h4>", f);
                        esc(f, report_metric_name(metric));
                        fputs("</h4>\n<div class=\"plots\">\n", f);
                        any = true;
                    }
                    pair_plot(f, d, sweep, model, comps.v[c], others->v[o], metric);
                }
        }
        if (any) fputs("</div>\n", f);
    }
    if (comps.n == 0 || editors.n + unlearners.n == 0)
        fputs("<div class=\"nodata\">no data: no composition of a compressor with an editor or an unlearner has "
              "finished</div>\n", f);
    rep_names_clear(&comps);
    rep_names_clear(&editors);
    rep_names_clear(&unlearners);
}

int report_write_html(FILE *f, const report_data *d, const char *db) {
    char ts[40];
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
          "img-src data:\">\n<title>cisweep report: ", f);
    esc(f, db);
    fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n<h1>cisweep report</h1>\n<p>Database <code>", CSS);
    esc(f, db);
    fprintf(f, "</code>, read %s. Composability: the views of schema/views.sql.</p>\n",
            fmt_time_ms(now_ms(), ts, sizeof ts));
    if (d->n_sweeps == 0) fputs("<div class=\"nodata\">no data: no sweep has been launched into this database</div>\n", f);
    for (int i = 0; i < d->n_sweeps; i++) {
        const rep_sweep *s = &d->sweeps[i];
        fputs("<h2>Sweep ", f);
        esc(f, s->name);
        fputs("</h2>\n<table class=\"facts\">", f);
        rep_fact facts[REP_FACTS_MAX];
        int nf = rep_sweep_facts(s, facts);
        for (int k = 0; k < nf; k++) {
            fprintf(f, "<tr><td>%s</td><td>", facts[k].label);
            esc(f, facts[k].text);
            fputs("</td></tr>", f);
        }
        fputs("</table>\n", f);
        rep_facts_clear(facts, nf);
    }
    int *first = xmalloc(((size_t)d->n_cm + 1) * sizeof *first);
    int sections = model_sections(d, first);
    if (sections > 1) {   /* a table of contents: in-page links only */
        fputs("<p>Models:", f);
        for (int k = 0; k < sections; k++) {
            fprintf(f, " <a href=\"#model-%d\">", k + 1);
            esc(f, d->cm[first[k]].model);
            fputs(" (", f);
            esc(f, d->cm[first[k]].sweep);
            fputs(")</a>", f);
        }
        fputs("</p>\n", f);
    }
    for (int k = 0; k < sections; k++) model_section(f, d, d->cm[first[k]].sweep, d->cm[first[k]].model, k + 1);
    free(first);
    if (!sections) fputs("<div class=\"nodata\">no data: no job has finished with metrics yet</div>\n", f);
    fputs("</body></html>\n", f);
    return 0;
}
