/* svg_plot.h - the small plotting kit `cisweep report` draws its HTML page with: inline SVG line
 * plots (axes with ticks and labels, series as polylines with point markers and error bars, the
 * gap between two series shaded, horizontal reference lines, a legend, a title) and heat maps
 * (labelled cells coloured by value, the value written in each cell, a colour key). Everything is
 * written to a FILE * as text; every piece of text that comes from outside (names from the DB)
 * goes through html_escape, so a label cannot inject markup. A plot with nothing to draw writes a
 * visible "no data" note instead of an empty frame. Coordinates are in CSS pixels; non-finite
 * values are never written. */
#ifndef CISWEEP_SVG_PLOT_H
#define CISWEEP_SVG_PLOT_H

#include <stdbool.h>
#include <stdio.h>

/* html_escape: write s to f with & < > " ' replaced by entities (safe in text and in quoted
 * attribute values); NULL writes nothing. Control characters other than tab/newline become
 * spaces. */
void html_escape(FILE *f, const char *s);

/* plot_ticks: "nice" tick values (steps of 1, 2 or 5 x 10^k) covering [lo, hi] with about
 * `target` ticks; writes at most max values into ticks and returns how many. lo < hi required
 * (a caller with one value widens the range first). */
int plot_ticks(double lo, double hi, int target, double *ticks, int max);

/* plot_color: the palette colour number i (wraps), as "#rrggbb" (static storage) */
const char *plot_color(int i);

enum plot_dash { PLOT_SOLID = 0, PLOT_DASHED = 1, PLOT_DOTTED = 2 };

/* one series: n points (x[i], y[i]); a non-finite y is a missing point (the line breaks there);
 * err[i] (may be NULL; non-finite = none) draws a +-err bar. Points are drawn in the order given
 * (the caller sorts by x). */
typedef struct plot_series {
    const char *name;        /* legend text (escaped) */
    const double *x, *y;     /* [n] */
    const double *err;       /* [n] or NULL: standard errors */
    int n;
    int color;               /* palette index */
    int dash;                /* enum plot_dash */
} plot_series;

/* a horizontal reference line at y across the plot, e.g. the single intervention or the baseline */
typedef struct plot_ref {
    const char *name;        /* legend text (escaped) */
    double y;                /* non-finite: not drawn, not in the legend */
    int color;
    int dash;
} plot_ref;

typedef struct line_plot {
    const char *title;       /* escaped */
    const char *xlabel, *ylabel;
    const plot_series *series;
    int n_series;
    const plot_ref *refs;
    int n_refs;
    int shade_a, shade_b;    /* series indices whose gap is shaded (at the x values both have); -1: none */
    double ymin, ymax;       /* fixed y range when ymin < ymax, else from the data */
    double width, height;    /* px; <= 0 picks 360 x 250 */
} line_plot;

/* svg_line_plot: write one <svg class="plot"> element (or, when no series has a finite point and
 * no reference line is drawable, a <div class="nodata"> note naming the title). Returns the
 * number of data marks drawn (points, segments, shaded areas, reference lines); 0 = "no data". */
int svg_line_plot(FILE *f, const line_plot *p);

/* a heat map: rows x cols cells; v[r * n_cols + c], non-finite = no value (grey, "-") */
typedef struct heat_map {
    const char *title;                  /* escaped */
    const char *const *rows, *const *cols;  /* [n_rows], [n_cols] labels (escaped) */
    int n_rows, n_cols;
    const double *v;                    /* [n_rows * n_cols] */
    double vmin, vmax;                  /* colour scale; vmin >= vmax picks the data's range */
    const char *nodata;                 /* why there is nothing to show (NULL: a generic sentence) */
} heat_map;

/* svg_heat_map: write one <svg class="plot heat"> element, or a "no data" note when there is no
 * row, no column or no finite value. Returns the number of cells with a value. */
int svg_heat_map(FILE *f, const heat_map *h);

#endif
