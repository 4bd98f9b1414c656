/* load_mmlu.c - MMLU in the Hendrycks layout: data/{dev,val,test}/<subject>_<split>.csv, no header,
 * rows question,A,B,C,D,answer-letter; RFC-4180 quoting (fields in double quotes may hold commas,
 * newlines and doubled quotes ""), CRLF or LF line ends. */
#include "worker/data/loaders.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* parse one CSV record starting at *pos; fields are malloc'd into f[0..*nf) (at most maxf kept,
 * *nf counts all). Returns 0, 1 at end of input, -1 on an unterminated quote or junk after one. */
static int csv_record(const char *d, size_t len, size_t *pos, char **f, int maxf, int *nf, int *line, const char **why) {
    size_t p = *pos;
    *nf = 0;
    if (p >= len) return 1;
    for (;;) {
        /* one field */
        size_t cap = 64, w = 0;
        char *s = xmalloc(cap);
        if (p < len && d[p] == '"') {
            p++;
            for (;;) {
                if (p >= len) { free(s); *why = "unterminated quoted field"; return -1; }
                char c = d[p++];
                if (c == '"') {
                    if (p < len && d[p] == '"') { c = '"'; p++; }
                    else break;
                }
                if (c == '\n') (*line)++;
                if (w + 2 > cap) { cap *= 2; s = xrealloc(s, cap); }
                s[w++] = c;
            }
            if (p < len && d[p] != ',' && d[p] != '\n' && d[p] != '\r') {
                free(s); *why = "characters after a closing quote"; return -1;
            }
        } else {
            while (p < len && d[p] != ',' && d[p] != '\n' && !(d[p] == '\r' && (p + 1 >= len || d[p + 1] == '\n'))) {
                if (d[p] == '"') { free(s); *why = "a quote inside an unquoted field"; return -1; }
                if (w + 2 > cap) { cap *= 2; s = xrealloc(s, cap); }
                s[w++] = d[p++];
            }
        }
        s[w] = 0;
        if (*nf < maxf) f[*nf] = s; else free(s);
        (*nf)++;
        if (p < len && d[p] == ',') { p++; continue; }
        if (p < len && d[p] == '\r') p++;
        if (p < len && d[p] == '\n') p++;
        (*line)++;
        break;
    }
    *pos = p;
    return 0;
}

int mmlu_load_csv(const char *path, const char *name, mc_task *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    size_t len = 0;
    char *d = read_file(path, &len, err);
    if (!d) return -1;
    size_t pos = 0;
    if (len >= 3 && (unsigned char)d[0] == 0xEF && (unsigned char)d[1] == 0xBB && (unsigned char)d[2] == 0xBF) pos = 3;
    out->name = xstrdup(name);
    out->subject = xstrdup(name);
    for (char *c = out->subject; *c; c++) if (*c == '_') *c = ' ';
    int rc = 0, cap = 0, line = 1, row = 0;
    for (;;) {
        char *f[6] = {0};
        int nf = 0, start_line = line;
        const char *why = NULL;
        /* skip empty lines */
        while (pos < len && (d[pos] == '\n' || (d[pos] == '\r' && pos + 1 < len && d[pos + 1] == '\n'))) {
            pos += d[pos] == '\r' ? 2 : 1;
            line++;
            start_line = line;
        }
        int r = csv_record(d, len, &pos, f, 6, &nf, &line, &why);
        if (r == 1) break;
        row++;
        if (r < 0) {
            /* the fields parsed before the bad one are ours to free (issue 13, fuzzing: input `,"`) */
            for (int i = 0; i < 6 && i < nf; i++) free(f[i]);
            rc = err_set(err, CIS_EINVAL, "%s: row %d (line %d): bad CSV: %s", path, row, start_line, why);
            break;
        }
        int ans = -1;
        if (nf == 6) {
            const char *a = f[5];
            while (*a == ' ') a++;
            if (a[0] >= 'A' && a[0] <= 'D' && (a[1] == 0 || a[1] == ' ')) ans = a[0] - 'A';
        }
        if (nf != 6 || ans < 0) {
            if (nf != 6) rc = err_set(err, CIS_EINVAL, "%s: row %d (line %d): expected 6 fields (question,A,B,C,D,answer), got %d",
                                      path, row, start_line, nf);
            else rc = err_set(err, CIS_EINVAL, "%s: row %d (line %d): field 6 (answer): expected A, B, C or D, got \"%s\"",
                              path, row, start_line, f[5]);
            for (int i = 0; i < 6 && i < nf; i++) free(f[i]);
            break;
        }
        if (out->n == cap) { cap = cap ? 2 * cap : 64; out->q = xrealloc(out->q, (size_t)cap * sizeof *out->q); }
        mc_question *q = &out->q[out->n++];
        q->question = f[0];
        for (int c = 0; c < 4; c++) q->choices[c] = f[1 + c];
        q->answer = ans;
        free(f[5]);
    }
    free(d);
    if (!rc && out->n == 0) rc = err_set(err, CIS_EINVAL, "%s: no questions (empty file)", path);
    if (rc) mc_task_clear(out);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int mmlu_load_dir(const char *dir, const char *split, mc_task **tasks, int *n, cis_err *err) {
    *tasks = NULL; *n = 0;
    char *sd = xasprintf("%s/data/%s", dir, split);
    struct stat sb;
    if (stat(sd, &sb) != 0 || !S_ISDIR(sb.st_mode)) { free(sd); sd = xasprintf("%s/%s", dir, split); }
    DIR *dh = opendir(sd);
    if (!dh) { int rc = err_set(err, CIS_EIO, "%s: no MMLU split directory %s/data/%s or %s/%s", dir, dir, split, dir, split); free(sd); return rc; }
    char *suffix = xasprintf("_%s.csv", split);
    char **names = NULL;
    int nn = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(dh))) {
        if (!str_ends(e->d_name, suffix) || strlen(e->d_name) <= strlen(suffix)) continue;
        if (nn == cap) { cap = cap ? 2 * cap : 64; names = xrealloc(names, (size_t)cap * sizeof *names); }
        names[nn++] = xstrdup(e->d_name);
    }
    closedir(dh);
    int rc = 0;
    if (nn == 0) rc = err_set(err, CIS_EINVAL, "%s: no <subject>%s files", sd, suffix);
    else {
        qsort(names, (size_t)nn, sizeof *names, cmp_str);
        *tasks = xcalloc((size_t)nn, sizeof **tasks);
        for (int i = 0; i < nn && !rc; i++) {
            size_t sl = strlen(names[i]) - strlen(suffix);
            char *subj = xmalloc(sl + 1);
            memcpy(subj, names[i], sl); subj[sl] = 0;
            char *p = xasprintf("%s/%s", sd, names[i]);
            rc = mmlu_load_csv(p, subj, &(*tasks)[i], err);
            if (!rc) *n = i + 1;
            free(p); free(subj);
        }
        if (rc) { mc_tasks_free(tasks, *n); *n = 0; }
    }
    for (int i = 0; i < nn; i++) free(names[i]);
    free(names); free(suffix); free(sd);
    return rc;
}
