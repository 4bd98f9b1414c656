/* test_svg_plot.c - the report's SVG kit (coordinator/svg_plot.c): escaping, tick choice, line
 * plots (marks drawn, the gap shaded only where both orders have a value, missing points never
 * written as nan, "no data" for an empty plot) and heat maps. Output is captured in memory. */
#include "coordinator/svg_plot.h"
#include "tests/testlib.h"

#include <math.h>
#include <stdlib.h>

/* run fn into a malloc'd string */
/* the memory streams' buffers live here (heap copies are returned), so no pointer into a local
 * escapes (gcc's -Wdangling-pointer sees open_memstream's buffer as one) */
static char *g_buf;
static size_t g_len;

static char *capture_line(const line_plot *p, int *ret) {
    FILE *f = open_memstream(&g_buf, &g_len);
    *ret = svg_line_plot(f, p);
    fclose(f);
    char *r = strdup(g_buf);
    free(g_buf);
    g_buf = NULL;
    return r;
}

static char *capture_heat(const heat_map *h, int *ret) {
    FILE *f = open_memstream(&g_buf, &g_len);
    *ret = svg_heat_map(f, h);
    fclose(f);
    char *r = strdup(g_buf);
    free(g_buf);
    g_buf = NULL;
    return r;
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static void test_escape(void) {
    FILE *f = open_memstream(&g_buf, &g_len);
    html_escape(f, "<script>alert(\"x\")</script>&'\x01ok");
    html_escape(f, NULL);
    fclose(f);
    CHECK_EQ_STR(g_buf, "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39; ok");
    free(g_buf);
    g_buf = NULL;
}

static void test_ticks(void) {
    double t[32];
    int n = plot_ticks(0, 1, 5, t, 32);
    CHECK_EQ_INT(n, 6);
    CHECK_NEAR(t[0], 0.0, 1e-12);
    CHECK_NEAR(t[5], 1.0, 1e-12);
    n = plot_ticks(1.7, 8.3, 6, t, 32);   /* bits: 2..8 in steps of 1 */
    CHECK_EQ_INT(n, 7);
    CHECK_NEAR(t[0], 2.0, 1e-12);
    CHECK_NEAR(t[6], 8.0, 1e-12);
    n = plot_ticks(0.23, 0.67, 6, t, 32);   /* sparsity levels 0.25 .. 0.65, padded: steps of 0.05 */
    CHECK_NEAR(t[0], 0.25, 1e-12);
    CHECK_NEAR(t[1] - t[0], 0.05, 1e-12);
    CHECK_EQ_INT(plot_ticks(1, 1, 5, t, 32), 0);      /* empty range: no ticks */
    CHECK_EQ_INT(plot_ticks(0, NAN, 5, t, 32), 0);
    CHECK_EQ_INT(plot_ticks(0, 100, 5, t, 3), 3);     /* capped */
}

static void test_line_plot_marks_and_gap(void) {
    double x[4] = {0.25, 0.45, 0.65, 0.75}, ya[4] = {0.9, 0.7, NAN, 0.3}, yb[4] = {0.8, 0.4, 0.2, 0.1};
    double e[4] = {0.01, NAN, 0.02, 0.0};
    plot_series s[2] = {
        {.name = "a <first>", .x = x, .y = ya, .err = e, .n = 4, .color = 0, .dash = PLOT_SOLID},
        {.name = "b", .x = x, .y = yb, .err = NULL, .n = 4, .color = 1, .dash = PLOT_DASHED},
    };
    plot_ref r[2] = {{.name = "alone", .y = 0.5, .color = 2, .dash = PLOT_DASHED}, {.name = "none", .y = NAN}};
    line_plot p = {.title = "t & <b>", .xlabel = "sparsity", .ylabel = "MMLU", .series = s, .n_series = 2,
                   .refs = r, .n_refs = 2, .shade_a = 0, .shade_b = 1, .ymin = 0, .ymax = 1};
    int marks;
    char *svg = capture_line(&p, &marks);
    /* a: 2 path pieces in one <path> (broken at the NaN) + 3 points; b: 1 path + 4 points;
     * 1 gap; 1 drawable reference line */
    CHECK_EQ_INT(marks, 1 + 3 + 1 + 4 + 1 + 1);
    CHECK_EQ_INT(count(svg, "class=\"gap mark\""), 1);
    CHECK_EQ_INT(count(svg, "<circle"), 7);
    CHECK_EQ_INT(count(svg, "class=\"ref mark\""), 1);
    CHECK_EQ_INT(count(svg, "class=\"err\""), 1);      /* finite, non-zero errors of drawn points only */
    CHECK(strstr(svg, "<svg class=\"plot line\"") == svg);
    CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"));
    CHECK(!strstr(svg, "<b>") && !strstr(svg, "<first>"));
    CHECK(strstr(svg, "t &amp; &lt;b&gt;") != NULL);
    CHECK(!strstr(svg, ">none<"));                      /* a non-finite reference is not in the legend */
    /* the gap polygon uses the 3 common levels only: M + 2 L forward, 3 L back */
    const char *g = strstr(svg, "class=\"gap mark\" d=\"");
    CHECK(g != NULL);
    if (g) {
        const char *end = strchr(g + 20, '"');
        int ls = 0;
        for (const char *q = g + 20; q < end; q++) ls += *q == 'L';
        CHECK_EQ_INT(ls, 5);
    }
    CHECK_EQ_INT(count(svg, "<svg"), count(svg, "</svg>"));
    free(svg);
}

static void test_line_plot_one_common_level(void) {
    double xa[1] = {4}, ya[1] = {0.6}, xb[2] = {4, 8}, yb[2] = {0.2, 0.3};
    plot_series s[2] = {{.name = "a", .x = xa, .y = ya, .n = 1}, {.name = "b", .x = xb, .y = yb, .n = 2, .color = 1}};
    line_plot p = {.title = "one", .series = s, .n_series = 2, .shade_a = 0, .shade_b = 1};
    int marks;
    char *svg = capture_line(&p, &marks);
    CHECK(strstr(svg, "<line class=\"gap mark\"") != NULL);   /* a bar at the one shared level */
    CHECK_EQ_INT(marks, 1 + 1 + 1 + 1 + 2);
    free(svg);
}

static void test_line_plot_no_data(void) {
    double x[2] = {1, 2}, y[2] = {NAN, NAN};
    plot_series s = {.name = "s", .x = x, .y = y, .n = 2};
    plot_ref r = {.name = "baseline", .y = 0.5};
    line_plot p = {.title = "<script>x</script>", .series = &s, .n_series = 1, .refs = &r, .n_refs = 1, .shade_a = -1,
                   .shade_b = -1};
    int marks;
    char *svg = capture_line(&p, &marks);
    CHECK_EQ_INT(marks, 0);
    CHECK(strstr(svg, "class=\"nodata\"") != NULL);
    CHECK(strstr(svg, "no data") != NULL);
    CHECK(!strstr(svg, "<svg") && !strstr(svg, "<script>"));
    free(svg);
    p.n_series = 0;
    svg = capture_line(&p, &marks);
    CHECK_EQ_INT(marks, 0);
    CHECK(strstr(svg, "no data") != NULL);
    free(svg);
}

static void test_heat_map(void) {
    const char *rows[2] = {"Wanda \xc3\x97 FT", "<i>evil</i>"}, *cols[3] = {"Edit success", "MMLU", "WMDP"};
    double v[6] = {0.1, 0.5, NAN, 0.9, NAN, 0.0};
    heat_map h = {.title = "E_OF", .rows = rows, .cols = cols, .n_rows = 2, .n_cols = 3, .v = v, .vmin = 0, .vmax = 1};
    int cells;
    char *svg = capture_heat(&h, &cells);
    CHECK_EQ_INT(cells, 4);
    CHECK_EQ_INT(count(svg, "class=\"cell mark\""), 4);
    CHECK_EQ_INT(count(svg, "class=\"cell none\""), 2);
    CHECK(strstr(svg, ">0.9000<") != NULL);
    CHECK(!strstr(svg, "<i>") && strstr(svg, "&lt;i&gt;evil") != NULL);
    CHECK(!strstr(svg, "nan"));
    free(svg);
    double none[6] = {NAN, NAN, NAN, NAN, NAN, NAN};
    h.v = none;
    svg = capture_heat(&h, &cells);
    CHECK_EQ_INT(cells, 0);
    CHECK(strstr(svg, "no data: no pair of interventions") != NULL && !strstr(svg, "<svg"));
    free(svg);
    h.nodata = "only one <level>";
    svg = capture_heat(&h, &cells);
    CHECK(strstr(svg, "no data: only one &lt;level&gt;") != NULL);
    free(svg);
    h.nodata = NULL;
    h.n_rows = 0;
    h.v = v;
    svg = capture_heat(&h, &cells);
    CHECK_EQ_INT(cells, 0);
    CHECK(strstr(svg, "no data") != NULL);
    free(svg);
}

int main(void) {
    RUN(test_escape);
    RUN(test_ticks);
    RUN(test_line_plot_marks_and_gap);
    RUN(test_line_plot_one_common_level);
    RUN(test_line_plot_no_data);
    RUN(test_heat_map);
    return test_summary();
}
