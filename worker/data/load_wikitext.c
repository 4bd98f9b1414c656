/* load_wikitext.c - WikiText-2 raw files as the perplexity code sees them: the Hugging Face
 * dataset's rows (one per line of wiki.test.raw, "\n" kept, blank lines as "") joined with
 * "\n\n" (algorithms.md §10.4). */
#include "worker/data/loaders.h"

#include <stdlib.h>
#include <string.h>

int wikitext_load(const char *path, char **text, size_t *len, cis_err *err) {
    size_t n = 0;
    char *raw = read_file(path, &n, err);
    if (!raw) return -1;
    /* each row grows by at most the 2-byte separator */
    size_t rows = 1;
    for (size_t i = 0; i < n; i++) rows += raw[i] == '\n';
    char *o = xmalloc(n + 2 * rows + 1);
    size_t w = 0, pos = 0;
    int row = 0;
    bool any = false;
    while (pos < n) {
        size_t e = pos;
        while (e < n && raw[e] != '\n') e++;
        size_t end = e < n ? e + 1 : e; /* keep the newline */
        bool blank = true;
        for (size_t i = pos; i < end; i++)
            if (!(raw[i] == ' ' || raw[i] == '\t' || raw[i] == '\n' || raw[i] == '\r' || raw[i] == '\f' || raw[i] == '\v')) { blank = false; break; }
        if (row++) { o[w++] = '\n'; o[w++] = '\n'; }
        if (!blank) { memcpy(o + w, raw + pos, end - pos); w += end - pos; any = true; }
        pos = end;
    }
    o[w] = 0;
    free(raw);
    if (!any) { free(o); return err_set(err, CIS_EINVAL, "%s: no text (empty or blank file)", path); }
    *text = o;
    if (len) *len = w;
    return 0;
}
