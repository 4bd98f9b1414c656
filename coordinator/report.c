/* report.c - `cisweep report --db DB --out DIR`: reads a sweep DB read-only (a WAL snapshot, so a
 * running coordinator is never disturbed) and writes DIR/report.md and DIR/report.html. Exit 0 on
 * success, 2 for a usage error or a DB that is missing, unreadable or not a cisweep sweep, 1 when
 * the output cannot be written. Also the helpers report_md.c and report_html.c share. */
#include "coordinator/report.h"
#include "coordinator/cli.h"
#include "coordinator/job_store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const REPORT_METRICS[REPORT_N_METRICS] = {"edit_success", "generalization", "locality", "mmlu", "wmdp"};

static const struct { const char *method, *name; } METHOD_NAMES[] = {
    /* the paper's column and row order: editors, unlearners, compressors */
    {"ft", "FT"}, {"memit", "MEMIT"}, {"lora", "LoRA"},
    {"ga", "GA"}, {"gd", "GD"}, {"rmu", "RMU"},
    {"wanda", "Wanda"}, {"sparsegpt", "SparseGPT"}, {"gptq", "GPTQ"}, {"awq", "AWQ"},
};
#define N_METHOD_NAMES ((int)(sizeof METHOD_NAMES / sizeof METHOD_NAMES[0]))

int report_eq(const char *a, const char *b) { return a && b && !strcmp(a, b); }

const char *report_method_name(const char *method) {
    for (int i = 0; i < N_METHOD_NAMES; i++)
        if (report_eq(method, METHOD_NAMES[i].method)) return METHOD_NAMES[i].name;
    return method ? method : "?";
}

int report_method_rank(const char *method) {
    if (report_eq(method, "Average")) return 1000;   /* the tables' last row */
    for (int i = 0; i < N_METHOD_NAMES; i++)
        if (report_eq(method, METHOD_NAMES[i].method)) return i;
    return 100;
}

const char *report_metric_name(const char *metric) {
    static const char *const NAMES[REPORT_N_METRICS] = {"Edit success", "Generalization", "Locality", "MMLU",
                                                        "WMDP (avg)"};
    for (int i = 0; i < REPORT_N_METRICS; i++)
        if (report_eq(metric, REPORT_METRICS[i])) return NAMES[i];
    return metric ? metric : "?";
}

int report_metric_rank(const char *metric) {
    for (int i = 0; i < REPORT_N_METRICS; i++)
        if (report_eq(metric, REPORT_METRICS[i])) return i;
    return 100;
}

const char *report_level_name(const char *method) {
    if (report_eq(method, "wanda") || report_eq(method, "sparsegpt")) return "sparsity";
    if (report_eq(method, "gptq") || report_eq(method, "awq")) return "bits";
    return "level";
}

const char *report_kind_title(const char *kind) {
    if (report_eq(kind, "edit_compress")) return "Editing \xc3\x97 compression (the paper's Table 2)";
    if (report_eq(kind, "unlearn_compress")) return "Unlearning \xc3\x97 compression (the paper's Table 3)";
    if (report_eq(kind, "edit_unlearn")) return "Editing \xc3\x97 unlearning (the paper's Table 4)";
    return kind ? kind : "?";
}

int report_kind_has_metric(const char *kind, const char *metric) {
    int r = report_metric_rank(metric);
    if (report_eq(kind, "edit_compress")) return r <= 3;                 /* edit_success .. mmlu */
    if (report_eq(kind, "unlearn_compress")) return r == 3 || r == 4;    /* mmlu, wmdp */
    return r < REPORT_N_METRICS;
}

void rep_names_add(rep_names *l, const char *s) {
    if (!s || rep_names_find(l, s) >= 0) return;
    if (l->n == l->cap) { l->cap = l->cap ? l->cap * 2 : 8; l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v); }
    l->v[l->n++] = s;
}

int rep_names_find(const rep_names *l, const char *s) {
    for (int i = 0; i < l->n; i++)
        if (report_eq(l->v[i], s)) return i;
    return -1;
}

void rep_names_sort(rep_names *l, int (*rank)(const char *)) {
    for (int i = 1; i < l->n; i++) {   /* insertion sort: lists are short */
        const char *x = l->v[i];
        int j = i - 1;
        while (j >= 0) {
            int ra = rank(l->v[j]), rb = rank(x);
            if (ra < rb || (ra == rb && strcmp(l->v[j], x) <= 0)) break;
            l->v[j + 1] = l->v[j];
            j--;
        }
        l->v[j + 1] = x;
    }
}

void rep_names_clear(rep_names *l) {
    free(l->v);
    memset(l, 0, sizeof *l);
}

/* render with writer into a memory stream, then replace path with it; -1 with err on failure */
static int write_one(const char *path, int (*writer)(FILE *, const report_data *, const char *),
                     const report_data *d, const char *db, cis_err *err) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return err_set(err, CIS_ENOMEM, "%s: cannot open a memory stream", path);
    writer(f, d, db);
    if (fclose(f) != 0) { free(buf); return err_set(err, CIS_ENOMEM, "%s: rendering failed", path); }
    int rc = write_file_replace(path, buf, len, err);
    free(buf);
    return rc;
}

int report_write(const char *db, const char *out, int *n_compositions, cis_err *err) {
    struct stat sb;
    int st = stat(db, &sb), e = errno;
    if (st != 0 || !S_ISREG(sb.st_mode))
        return err_set(err, CIS_EINVAL, "%s: %s\n---> HINT: --db takes the sweep database that `cisweep launch` made", db,
                       st != 0 ? (e == ENOENT ? "no such file" : strerror(e))
                               : S_ISDIR(sb.st_mode) ? "is a directory, not a sweep database" : "not a regular file");
    job_store *js = NULL;
    if (job_store_open(db, JS_READONLY, &js, err)) {
        if (!strstr(err->msg, "HINT")) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);   /* err_set must not read what it writes */
            err_set(err, CIS_EINVAL, "%.900s\n---> HINT: --db takes the sweep database that `cisweep launch` made", msg);
        }
        err->code = CIS_EINVAL;
        return -1;
    }
    report_data d = {0};
    int rc = report_load(job_store_db(js), db, &d, err);
    job_store_close(&js);
    if (rc) {
        err->code = CIS_EINVAL;
        report_data_clear(&d);
        return -1;
    }
    char *md = xasprintf("%s/report.md", out), *html = xasprintf("%s/report.html", out);
    if (mkdir_p(out, err) || write_one(md, report_write_md, &d, db, err) || write_one(html, report_write_html, &d, db, err)) {
        err->code = CIS_EIO;
        rc = -1;
    } else if (n_compositions) {
        *n_compositions = 0;
        for (int i = 0; i < d.n_cm; i++)
            if (i == 0 || d.cm[i].composition_id != d.cm[i - 1].composition_id) (*n_compositions)++;
    }
    free(md);
    free(html);
    report_data_clear(&d);
    return rc;
}

static const char USAGE[] = "usage: cisweep report --db DB --out DIR   (writes DIR/report.md and DIR/report.html)";

int cmd_report(int argc, char **argv) {
    const char *db = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *n = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--db") && n) { db = n; i++; }
        else if (!strcmp(a, "--out") && n) { out = n; i++; }
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { puts(USAGE); return 0; }
        else { fprintf(stderr, "cisweep report: unknown or incomplete option \"%s\"\n%s\n", a, USAGE); return 2; }
    }
    if (!db || !out) { fprintf(stderr, "cisweep report: %s is required\n%s\n", !db ? "--db DB" : "--out DIR", USAGE); return 2; }
    if (!*db || !*out) { fprintf(stderr, "cisweep report: %s must not be empty\n", !*db ? "--db" : "--out"); return 2; }
    cis_err err = {0};
    int comps = 0;
    if (report_write(db, out, &comps, &err)) {
        fprintf(stderr, "cisweep report: %s\n", err.msg);
        return err.code == CIS_EIO ? 1 : 2;
    }
    printf("cisweep report: wrote %s/report.md and %s/report.html (%d compositions with metrics)\n", out, out, comps);
    return 0;
}
