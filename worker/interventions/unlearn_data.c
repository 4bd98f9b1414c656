/* unlearn_data.c - the corpora and batches of the unlearning methods (unlearn.h): the WMDP forget
 * corpora per topic, the WikiText-2 test rows as retain text, and their tokenised, padded batches. */
#include "worker/interventions/unlearn.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const UNL_TOPIC_NAMES[UNL_N_TOPICS] = {"bio", "cyber"};

static const char *const FORGET_FILE[UNL_N_TOPICS] = {"bio-forget-corpus.jsonl", "cyber-forget-corpus.jsonl"};

static void docs_push(text_docs *d, int *cap, const char *s, size_t n) {
    if (d->n == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        d->text = xrealloc(d->text, (size_t)*cap * sizeof *d->text);
        d->len = xrealloc(d->len, (size_t)*cap * sizeof *d->len);
    }
    char *t = xmalloc(n + 1);
    memcpy(t, s, n);
    t[n] = 0;
    d->text[d->n] = t;
    d->len[d->n] = n;
    d->n++;
}

static int need_file(const char *path, const char *what, cis_err *err) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return err_set(err, CIS_EINVAL, "%s: no such file (%s; a `cisweep world` directory or the real data in its "
                       "layout is expected)", path, what);
    return 0;
}

int unl_load_forget(const char *data_dir, int topic, int min_len, text_docs *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    if (!data_dir) return err_set(err, CIS_EINVAL, "no data directory given: the unlearning methods need the WMDP forget "
                                  "corpora under DATA/wmdp/ (--data DIR)");
    if (topic < 0 || topic >= UNL_N_TOPICS) return err_set(err, CIS_EINVAL, "unknown forget topic %d", topic);
    char *path = xasprintf("%s/wmdp/%s", data_dir, FORGET_FILE[topic]);
    int rc = need_file(path, topic == UNL_BIO ? "the WMDP bio forget corpus, JSON lines with a \"text\" field"
                                              : "the WMDP cyber forget corpus, one document per line", err);
    if (rc) { free(path); return -1; }
    if (topic == UNL_BIO) {
        text_docs all = {0};
        rc = jsonl_text_load(path, "text", 0, &all, err);
        if (!rc) {
            int cap = 0;
            for (int i = 0; i < all.n; i++)
                if ((long long)all.len[i] > min_len) docs_push(out, &cap, all.text[i], all.len[i]);
        }
        text_docs_clear(&all);
    } else {
        size_t n = 0;
        char *buf = data_read_all(path, &n, err);
        if (!buf) rc = -1;
        else {
            int cap = 0;
            size_t i = 0;
            while (i < n) {   /* Python's `for line in open(f)`: every line with its "\n" */
                size_t j = i;
                while (j < n && buf[j] != '\n') j++;
                size_t e = j < n ? j + 1 : j;
                if ((long long)(e - i) > min_len) docs_push(out, &cap, buf + i, e - i);
                i = e;
            }
            free(buf);
        }
    }
    if (!rc && out->n == 0) rc = err_set(err, CIS_EINVAL, "%s: no document longer than %d characters", path, min_len);
    if (rc) text_docs_clear(out);
    free(path);
    return rc;
}

int unl_load_retain(const char *data_dir, int min_len, text_docs *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    if (!data_dir) return err_set(err, CIS_EINVAL, "no data directory given: the unlearning methods need the retain text "
                                  "DATA/wikitext/wiki.test.raw (--data DIR)");
    char *path = xasprintf("%s/wikitext/wiki.test.raw", data_dir);
    if (need_file(path, "the WikiText-2 raw test split, the retain text", err)) { free(path); return -1; }
    size_t n = 0;
    char *buf = data_read_all(path, &n, err);
    if (!buf) { free(path); return -1; }
    int cap = 0;
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        while (j < n && buf[j] != '\n') j++;
        size_t e = j < n ? j + 1 : j;
        bool blank = true;
        for (size_t k = i; k < e; k++)
            if (buf[k] != ' ' && buf[k] != '\n' && buf[k] != '\t' && buf[k] != '\r') { blank = false; break; }
        if (!blank && (long long)(e - i) > min_len) docs_push(out, &cap, buf + i, e - i);
        i = e;
    }
    free(buf);
    int rc = 0;
    if (out->n == 0) rc = err_set(err, CIS_EINVAL, "%s: no line longer than %d characters", path, min_len);
    if (rc) text_docs_clear(out);
    free(path);
    return rc;
}

void unl_batches_clear(unl_batches *bs) {
    if (!bs) return;
    for (int i = 0; i < bs->n; i++) {
        free(bs->b[i].ids);
        free(bs->b[i].lens);
        free(bs->b[i].real);
        free(bs->b[i].targets);
    }
    free(bs->b);
    memset(bs, 0, sizeof *bs);
}

int unl_make_batches(const tokenizer *tok, const text_docs *texts, int first, int count, int batch, int max_len,
                     bool fixed_len, bool targets, bool pad_in_loss, bool drop_last, unl_batches *out, cis_err *err) {
    memset(out, 0, sizeof *out);
    if (max_len < 2) return err_set(err, CIS_EINVAL, "unlearning batches: max_len %d is too short (>= 2 tokens)", max_len);
    if (batch < 1) return err_set(err, CIS_EINVAL, "unlearning batches: batch size %d (expected >= 1)", batch);
    if (first < 0) first = 0;
    if (count < 0 || first + count > texts->n) count = texts->n - first;
    if (count < 0) count = 0;
    int nb = drop_last ? count / batch : (count + batch - 1) / batch;
    out->b = xcalloc(nb > 0 ? (size_t)nb : 1, sizeof *out->b);
    int32_t eos = tokenizer_eos_id(tok);
    if (eos < 0) eos = tokenizer_pad_id(tok);
    if (eos < 0) eos = 0;
    int32_t **tk = xcalloc((size_t)batch, sizeof *tk);
    int *tn = xcalloc((size_t)batch, sizeof *tn);
    int rc = 0;
    for (int bi = 0; bi < nb && !rc; bi++) {
        int r0 = first + bi * batch, B = count - bi * batch < batch ? count - bi * batch : batch;
        int T = 0;
        for (int r = 0; r < B; r++) {
            size_t n = 0;
            if (tokenizer_encode(tok, texts->text[r0 + r], texts->len[r0 + r], true, &tk[r], &n, err)) {
                err_prefix(err, "document %d", r0 + r + 1);
                for (int q = 0; q < r; q++) free(tk[q]);
                rc = -1;
                break;
            }
            if ((long long)n > max_len) { n = (size_t)max_len; out->truncated++; }
            if (n == 0) { tk[r] = xrealloc(tk[r], sizeof(int32_t)); tk[r][0] = eos; n = 1; }
            tn[r] = (int)n;
            if ((int)n > T) T = (int)n;
        }
        if (rc) break;
        if (fixed_len) T = max_len;
        unl_batch *b = &out->b[bi];
        b->B = B;
        b->T = T;
        b->ids = xmalloc((size_t)B * T * sizeof(int32_t));
        b->lens = xmalloc((size_t)B * sizeof(int32_t));
        b->real = xmalloc((size_t)B * sizeof(int32_t));
        if (targets) b->targets = xmalloc((size_t)B * T * sizeof(int32_t));
        for (int r = 0; r < B; r++) {
            int32_t *row = b->ids + (size_t)r * T;
            for (int t = 0; t < T; t++) row[t] = t < tn[r] ? tk[r][t] : eos;
            b->real[r] = tn[r];
            b->lens[r] = pad_in_loss ? T : tn[r];
            out->tokens += tn[r];
            if (targets) {
                int32_t *tg = b->targets + (size_t)r * T;
                for (int t = 0; t < T; t++) tg[t] = t + 1 < b->lens[r] ? row[t + 1] : LOSS_IGNORE_INDEX;
            }
            free(tk[r]);
            tk[r] = NULL;
        }
        out->n = bi + 1;
    }
    free(tk);
    free(tn);
    if (rc) unl_batches_clear(out);
    return rc;
}
