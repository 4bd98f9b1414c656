/* svg_plot.c - inline SVG line plots and heat maps for `cisweep report` (see svg_plot.h).
 * The output is plain SVG 1.1 markup meant to sit inside an HTML page: no ids (a page holds
 * hundreds of plots), no external references, styles by class (the page's CSS) plus inline
 * stroke/fill colours. Text widths are estimated (6.2 px per character at 11 px) since the C side
 * cannot measure fonts; labels are kept short and long ones are shortened with an ellipsis. */
#include "coordinator/svg_plot.h"
#include "common/util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void html_escape(FILE *f, const char *s) {
    if (!s) return;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            if (*p < 0x20 && *p != '\t' && *p != '\n') fputc(' ', f);
            else fputc(*p, f);
        }
    }
}

/* html_escape_short: as html_escape, but at most max characters (UTF-8 aware), "..." after a cut */
static void html_escape_short(FILE *f, const char *s, int max) {
    if (!s) return;
    int chars = 0;
    const char *p = s;
    while (*p && chars < max) {
        p++;
        while ((*p & 0xC0) == 0x80) p++;   /* continuation bytes */
        chars++;
    }
    if (!*p) { html_escape(f, s); return; }
    size_t n = (size_t)(p - s);
    char buf[512];
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, s, n);
    buf[n] = 0;
    html_escape(f, buf);
    fputs("&#8230;", f);
}

static const char *const PALETTE[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                      "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"};

const char *plot_color(int i) {
    int n = (int)(sizeof PALETTE / sizeof PALETTE[0]);
    if (i < 0) i = -i;
    return PALETTE[i % n];
}

int plot_ticks(double lo, double hi, int target, double *ticks, int max) {
    if (!(hi > lo) || !isfinite(lo) || !isfinite(hi) || max <= 0) return 0;
    if (target < 2) target = 2;
    double raw = (hi - lo) / target;
    double mag = pow(10.0, floor(log10(raw)));
    double r = raw / mag, step;
    if (r < 1.5) step = 1 * mag;
    else if (r < 3.5) step = 2 * mag;
    else if (r < 7.5) step = 5 * mag;
    else step = 10 * mag;
    double first = ceil(lo / step - 1e-9) * step;
    int n = 0;
    for (double t = first; t <= hi + step * 1e-9 && n < max; t = first + step * n) {
        ticks[n++] = fabs(t) < step * 1e-9 ? 0.0 : t;
    }
    return n;
}

/* decimals for tick labels of this step (0.05 -> 2, 2 -> 0) */
static int tick_decimals(const double *t, int n) {
    if (n < 2) return 2;
    double step = fabs(t[1] - t[0]);
    int d = 0;
    while (d < 6 && fabs(step * pow(10, d) - round(step * pow(10, d))) > 1e-6) d++;
    return d;
}

static const char *dash_attr(int dash) {
    switch (dash) {
    case PLOT_DASHED: return " stroke-dasharray=\"6 3\"";
    case PLOT_DOTTED: return " stroke-dasharray=\"2 3\"";
    default: return "";
    }
}

static void nodata(FILE *f, const char *title, const char *why) {
    fputs("<div class=\"nodata\"><b>", f);
    html_escape(f, title ? title : "plot");
    fputs("</b><br>no data: ", f);
    html_escape(f, why);
    fputs("</div>\n", f);
}

/* the plot area and the value ranges it maps */
typedef struct frame {
    double L, T, pw, ph;   /* px: left, top, width, height of the plot area */
    double x0, x1, y0, y1; /* value ranges */
} frame;

static double fx(const frame *fr, double x) { return fr->L + (x - fr->x0) / (fr->x1 - fr->x0) * fr->pw; }
static double fy(const frame *fr, double y) {
    if (y < fr->y0) y = fr->y0;   /* values outside a fixed range sit on its edge */
    if (y > fr->y1) y = fr->y1;
    return fr->T + (1.0 - (y - fr->y0) / (fr->y1 - fr->y0)) * fr->ph;
}

/* widen [*lo, *hi] by 5% (a single value by a fixed amount) */
static void pad_range(double *lo, double *hi) {
    if (*hi > *lo) {
        double p = (*hi - *lo) * 0.05;
        *lo -= p;
        *hi += p;
    } else {
        double p = fabs(*lo) > 0 ? fabs(*lo) * 0.1 : 0.5;
        *lo -= p;
        *hi += p;
    }
}

/* the shaded gap between series a and b at the x values where both have a finite point */
static int shade_gap(FILE *f, const frame *fr, const plot_series *a, const plot_series *b) {
    int n = 0, cap = a->n < b->n ? a->n : b->n;
    if (cap <= 0) return 0;
    double *xs = xmalloc(3 * (size_t)cap * sizeof *xs), *ya = xs + cap, *yb = ya + cap;
    for (int i = 0; i < a->n; i++) {
        if (!isfinite(a->x[i]) || !isfinite(a->y[i])) continue;
        for (int j = 0; j < b->n; j++) {
            if (isfinite(b->y[j]) && fabs(b->x[j] - a->x[i]) <= 1e-9 * (1 + fabs(a->x[i])) && n < cap) {
                xs[n] = a->x[i];
                ya[n] = a->y[i];
                yb[n] = b->y[j];
                n++;
                break;
            }
        }
    }
    if (n == 0) { free(xs); return 0; }
    if (n == 1) {   /* one common level: the gap is a vertical bar */
        fprintf(f, "<line class=\"gap mark\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke-width=\"6\"/>\n",
                fx(fr, xs[0]), fy(fr, ya[0]), fx(fr, xs[0]), fy(fr, yb[0]));
        free(xs);
        return 1;
    }
    fputs("<path class=\"gap mark\" d=\"", f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.1f %.1f ", i ? "L" : "M", fx(fr, xs[i]), fy(fr, ya[i]));
    for (int i = n - 1; i >= 0; i--) fprintf(f, "L%.1f %.1f ", fx(fr, xs[i]), fy(fr, yb[i]));
    fputs("Z\"/>\n", f);
    free(xs);
    return 1;
}

/* the number of finite points of a series */
static int series_points(const plot_series *S) {
    int n = 0;
    for (int i = 0; i < S->n; i++) n += isfinite(S->x[i]) && isfinite(S->y[i]);
    return n;
}

int svg_line_plot(FILE *f, const line_plot *p) {
    double W = p->width > 0 ? p->width : 360, H = p->height > 0 ? p->height : 250;
    /* ranges from the data */
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    int points = 0;
    for (int s = 0; s < p->n_series; s++) {
        const plot_series *S = &p->series[s];
        for (int i = 0; i < S->n; i++) {
            if (!isfinite(S->x[i]) || !isfinite(S->y[i])) continue;
            points++;
            double e = S->err && isfinite(S->err[i]) ? fabs(S->err[i]) : 0;
            if (S->x[i] < x0) x0 = S->x[i];
            if (S->x[i] > x1) x1 = S->x[i];
            if (S->y[i] - e < y0) y0 = S->y[i] - e;
            if (S->y[i] + e > y1) y1 = S->y[i] + e;
        }
    }
    int nrefs = 0;
    for (int r = 0; r < p->n_refs; r++) {
        if (!isfinite(p->refs[r].y)) continue;
        nrefs++;
        if (p->refs[r].y < y0) y0 = p->refs[r].y;
        if (p->refs[r].y > y1) y1 = p->refs[r].y;
    }
    if (points == 0) {   /* reference lines alone say nothing about the levels */
        nodata(f, p->title, "no finished composition has a value for this plot");
        return 0;
    }
    pad_range(&x0, &x1);
    if (p->ymin < p->ymax) { y0 = p->ymin; y1 = p->ymax; }
    else pad_range(&y0, &y1);

    int legend_n = 0;
    for (int s = 0; s < p->n_series; s++) legend_n += p->series[s].name != NULL && series_points(&p->series[s]) > 0;
    for (int r = 0; r < p->n_refs; r++) legend_n += p->refs[r].name != NULL && isfinite(p->refs[r].y);
    double legend_h = legend_n * 14 + (legend_n ? 6 : 0);
    frame fr = {.L = 46, .T = 26, .pw = W - 46 - 12, .ph = H - 26 - 40, .x0 = x0, .x1 = x1, .y0 = y0, .y1 = y1};
    double total_h = H + legend_h;
    int marks = 0;

    fprintf(f, "<svg class=\"plot line\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>", W, total_h, W, total_h);
    html_escape(f, p->title);
    fputs("</title>\n", f);
    fprintf(f, "<text class=\"title\" x=\"%.1f\" y=\"16\" text-anchor=\"middle\">", W / 2);
    html_escape_short(f, p->title, (int)(W / 6.6));
    fputs("</text>\n", f);
    /* frame, grid and ticks */
    fprintf(f, "<rect class=\"area\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>\n", fr.L, fr.T, fr.pw, fr.ph);
    double t[32];
    int nt = plot_ticks(y0, y1, 5, t, 32), dec = tick_decimals(t, nt);
    for (int i = 0; i < nt; i++) {
        double y = fy(&fr, t[i]);
        fprintf(f, "<line class=\"grid\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.*f</text>\n",
                fr.L, y, fr.L + fr.pw, y, fr.L - 4, y + 3.5, dec, t[i]);
    }
    nt = plot_ticks(x0, x1, 6, t, 32);
    dec = tick_decimals(t, nt);
    for (int i = 0; i < nt; i++) {
        double x = fx(&fr, t[i]);
        fprintf(f, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>"
                "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n",
                x, fr.T + fr.ph, x, fr.T + fr.ph + 4, x, fr.T + fr.ph + 15, dec, t[i]);
    }
    fprintf(f, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", fr.L, fr.T, fr.L, fr.T + fr.ph);
    fprintf(f, "<line class=\"axis\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", fr.L, fr.T + fr.ph,
            fr.L + fr.pw, fr.T + fr.ph);
    fprintf(f, "<text class=\"label\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", fr.L + fr.pw / 2, fr.T + fr.ph + 30);
    html_escape(f, p->xlabel);
    fprintf(f, "</text><text class=\"label\" transform=\"translate(11 %.1f) rotate(-90)\" text-anchor=\"middle\">",
            fr.T + fr.ph / 2);
    html_escape(f, p->ylabel);
    fputs("</text>\n", f);

    /* the gap first, so lines sit on top of it */
    if (p->shade_a >= 0 && p->shade_b >= 0 && p->shade_a < p->n_series && p->shade_b < p->n_series)
        marks += shade_gap(f, &fr, &p->series[p->shade_a], &p->series[p->shade_b]);
    for (int r = 0; r < p->n_refs; r++) {
        const plot_ref *R = &p->refs[r];
        if (!isfinite(R->y)) continue;
        fprintf(f, "<line class=\"ref mark\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"%s/>\n",
                fr.L, fy(&fr, R->y), fr.L + fr.pw, fy(&fr, R->y), plot_color(R->color), dash_attr(R->dash));
        marks++;
    }
    for (int s = 0; s < p->n_series; s++) {
        const plot_series *S = &p->series[s];
        const char *col = plot_color(S->color);
        bool open = false, pen = false;
        for (int i = 0; i < S->n; i++) {
            if (!isfinite(S->x[i]) || !isfinite(S->y[i])) { pen = false; continue; }
            if (!open) { fprintf(f, "<path class=\"series mark\" stroke=\"%s\"%s d=\"", col, dash_attr(S->dash)); open = true; }
            fprintf(f, "%s%.1f %.1f ", pen ? "L" : "M", fx(&fr, S->x[i]), fy(&fr, S->y[i]));
            pen = true;
        }
        if (open) { fputs("\"/>\n", f); marks++; }
        for (int i = 0; i < S->n; i++) {
            if (!isfinite(S->x[i]) || !isfinite(S->y[i])) continue;
            double X = fx(&fr, S->x[i]), Y = fy(&fr, S->y[i]);
            if (S->err && isfinite(S->err[i]) && S->err[i] > 0)
                fprintf(f, "<line class=\"err\" stroke=\"%s\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>", col, X,
                        fy(&fr, S->y[i] - S->err[i]), X, fy(&fr, S->y[i] + S->err[i]));
            fprintf(f, "<circle class=\"pt mark\" fill=\"%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"2.8\"><title>", col, X, Y);
            html_escape(f, S->name);
            fprintf(f, ": %.4g at %.4g</title></circle>\n", S->y[i], S->x[i]);
            marks++;
        }
    }
    /* legend below the axis label */
    double ly = H + 4;
    for (int s = 0; s < p->n_series + p->n_refs; s++) {
        const char *name, *col;
        int dash;
        if (s < p->n_series) {
            if (!series_points(&p->series[s])) continue;   /* nothing drawn, nothing to name */
            name = p->series[s].name; col = plot_color(p->series[s].color); dash = p->series[s].dash; }
        else {
            const plot_ref *R = &p->refs[s - p->n_series];
            if (!isfinite(R->y)) continue;
            name = R->name; col = plot_color(R->color); dash = R->dash;
        }
        if (!name) continue;
        fprintf(f, "<line class=\"key\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"%s/>"
                "<text class=\"legend\" x=\"%.1f\" y=\"%.1f\">", fr.L, ly, fr.L + 22, ly, col, dash_attr(dash), fr.L + 28, ly + 4);
        html_escape_short(f, name, (int)((W - fr.L - 30) / 6.2));
        fputs("</text>\n", f);
        ly += 14;
    }
    fputs("</svg>\n", f);
    return marks;
}

/* heat colour for t in [0,1]: light cream to dark red */
static void heat_rgb(double t, int rgb[3]) {
    static const int lo[3] = {255, 247, 236}, mid[3] = {252, 141, 89}, hi[3] = {179, 0, 0};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    const int *a = t < 0.5 ? lo : mid, *b = t < 0.5 ? mid : hi;
    double u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
    for (int k = 0; k < 3; k++) rgb[k] = (int)lround(a[k] + (b[k] - a[k]) * u);
}

int svg_heat_map(FILE *f, const heat_map *h) {
    int cells = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int i = 0; i < h->n_rows * h->n_cols; i++) {
        if (!isfinite(h->v[i])) continue;
        cells++;
        if (h->v[i] < lo) lo = h->v[i];
        if (h->v[i] > hi) hi = h->v[i];
    }
    if (h->n_rows == 0 || h->n_cols == 0 || cells == 0) {
        nodata(f, h->title, h->nodata ? h->nodata : "no pair of interventions has both orders finished");
        return 0;
    }
    if (h->vmin < h->vmax) { lo = h->vmin; hi = h->vmax; }
    if (!(hi > lo)) hi = lo + 1e-9;
    size_t maxlab = 4;
    for (int r = 0; r < h->n_rows; r++) {
        size_t n = h->rows[r] ? strlen(h->rows[r]) : 0;
        if (n > maxlab) maxlab = n;
    }
    if (maxlab > 40) maxlab = 40;
    double cw = 92, ch = 20, L = 10 + (double)maxlab * 6.2, T = 46;
    double W = L + cw * h->n_cols + 10, H = T + ch * h->n_rows + 40;
    fprintf(f, "<svg class=\"plot heat\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" role=\"img\"><title>", W, H, W, H);
    html_escape(f, h->title);
    fprintf(f, "</title>\n<text class=\"title\" x=\"%.1f\" y=\"16\" text-anchor=\"middle\">", W / 2);
    html_escape_short(f, h->title, (int)(W / 6.6));
    fputs("</text>\n", f);
    for (int c = 0; c < h->n_cols; c++) {
        fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", L + cw * c + cw / 2, T - 6);
        html_escape_short(f, h->cols[c], 14);
        fputs("</text>\n", f);
    }
    for (int r = 0; r < h->n_rows; r++) {
        double y = T + ch * r;
        fprintf(f, "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", L - 5, y + ch / 2 + 3.5);
        html_escape_short(f, h->rows[r], (int)maxlab);
        fputs("</text>\n", f);
        for (int c = 0; c < h->n_cols; c++) {
            double v = h->v[r * h->n_cols + c], x = L + cw * c;
            if (!isfinite(v)) {
                fprintf(f, "<rect class=\"cell none\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/>"
                        "<text class=\"val\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">-</text>\n",
                        x, y, cw - 1, ch - 1, x + cw / 2, y + ch / 2 + 3.5);
                continue;
            }
            int rgb[3];
            double t = (v - lo) / (hi - lo);
            heat_rgb(t, rgb);
            fprintf(f, "<rect class=\"cell mark\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                    "fill=\"#%02x%02x%02x\"><title>", x, y, cw - 1, ch - 1, rgb[0], rgb[1], rgb[2]);
            html_escape(f, h->rows[r]);
            fputs(" / ", f);
            html_escape(f, h->cols[c]);
            fprintf(f, ": %.4f</title></rect><text class=\"val%s\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4f</text>\n",
                    v, t > 0.6 ? " dark" : "", x + cw / 2, y + ch / 2 + 3.5, v);
        }
    }
    /* colour key: five steps from lo to hi */
    double ky = T + ch * h->n_rows + 12;
    for (int k = 0; k < 5; k++) {
        int rgb[3];
        heat_rgb(k / 4.0, rgb);
        fprintf(f, "<rect class=\"keycell\" x=\"%.1f\" y=\"%.1f\" width=\"24\" height=\"10\" fill=\"#%02x%02x%02x\"/>",
                L + 24 * k, ky, rgb[0], rgb[1], rgb[2]);
    }
    fprintf(f, "\n<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g</text>"
            "<text class=\"tick\" x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.3g</text>\n",
            L, ky + 22, lo, L + 120, ky + 22, hi);
    fputs("</svg>\n", f);
    return cells;
}
