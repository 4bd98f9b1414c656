/* loaders.h - readers for the evaluation and calibration datasets in their REAL on-disk formats:
 * zsRE (EasyEdit's zsre_mend_*.json), WMDP (JSON array or JSONL), MMLU (Hendrycks CSV directories),
 * WikiText-2 raw text, C4 json.gz shards and pile-val JSONL / .jsonl.zst; and the zsRE edit-set
 * split (Python's random.seed(100) + random.shuffle, bit for bit through common/rng.h).
 *
 * Errors: every loader returns 0, or -1 with err naming the file, the record/line and the field
 * and what was expected (missing field, wrong type, answer index out of range, not 4 choices,
 * empty file, bad CSV row, truncated gzip/zstd stream). Nothing is left allocated on failure.
 * Ownership: the output structs own all their strings; empty them with the matching *_clear (an
 * array of MMLU tasks: mc_tasks_free). */
#ifndef CISWEEP_DATA_LOADERS_H
#define CISWEEP_DATA_LOADERS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "common/util.h"

/* ---- zsRE ---------------------------------------------------------------------------------- */

typedef struct zsre_record {
    char *src;        /* the question */
    char **answers;   /* [n_answers] true answers (answers[0] is used) */
    int n_answers;    /* >= 1 */
    char *alt;        /* the edit target (target_new) */
    char *subject;
    char *rephrase;   /* a paraphrase of src */
    char *loc;        /* "nq question: ..." (unrelated NQ question) */
    char *loc_ans;    /* its true answer */
} zsre_record;

typedef struct zsre_data {
    zsre_record *rec; /* [n] in file order */
    int n;
} zsre_data;

/* zsre_load: a JSON array of records with string fields src, alt, subject, rephrase, loc, loc_ans
 * and answers (a non-empty array of strings). Unknown extra fields are ignored. */
int zsre_load(const char *path, zsre_data *out, cis_err *err);
/* zsre_clear: free every record and zero *d (NULL-safe). */
void zsre_clear(zsre_data *d);

/* zsre_split: the record indices of edit set k (1-based: shuffled positions [(k-1)*size, k*size))
 * or, for k == 0, of the QA set (shuffled positions [500, 1000), clipped to n_records).
 * When edit_sets_json is non-NULL and the file exists, its "sets" / "qa" lists are used (and
 * checked: indices in range); otherwise the shuffle is computed with seed 100.
 * *idx (malloc'd, caller frees) gets the indices, *n their count (< size when the file is short).
 * -1 when the edit set lies wholly beyond the records or the file is malformed. */
int zsre_split(const char *edit_sets_json, int n_records, int k, int size, int32_t **idx, int *n, cis_err *err);

/* ---- multiple choice (WMDP, MMLU) ----------------------------------------------------------- */

typedef struct mc_question {
    char *question;
    char *choices[4];
    int answer;       /* 0..3 */
} mc_question;

typedef struct mc_task {
    char *name;       /* task name: "wmdp-bio", or the MMLU subject ("high_school_biology") */
    char *subject;    /* the prompt subject with '_' -> ' ' ("biology", "high school biology") */
    mc_question *q;   /* [n] in file order */
    int n;
} mc_task;

/* wmdp_load: a JSON array, or JSON lines, of {"question": str, "choices": [4 str], "answer": int
 * 0..3}. name/subject are copied into the task (subject as given: "biology", "cybersecurity"). */
int wmdp_load(const char *path, const char *name, const char *subject, mc_task *out, cis_err *err);
/* mmlu_load_csv: one Hendrycks CSV (no header; question,A,B,C,D,letter; RFC-4180 quoting with
 * embedded commas, doubled quotes and newlines; CRLF accepted). subject = name with '_' -> ' '. */
int mmlu_load_csv(const char *path, const char *name, mc_task *out, cis_err *err);
/* mmlu_load_dir: every <subject>_<split>.csv under dir/data/<split>/ (or dir/<split>/ when dir is
 * already the data directory), subjects sorted by name. *tasks (caller frees with
 * mc_tasks_free(tasks, n)) gets *n tasks. -1 when the directory has no such file. */
int mmlu_load_dir(const char *dir, const char *split, mc_task **tasks, int *n, cis_err *err);
/* mc_task_clear: free the questions and names and zero *t (NULL-safe). */
void mc_task_clear(mc_task *t);
/* mc_tasks_free: clear each of the n tasks of the heap array *t, free it and set *t = NULL
 * (NULL-safe). */
void mc_tasks_free(mc_task **t, int n);

/* ---- text ------------------------------------------------------------------------------------ */

/* wikitext_load: a WikiText raw file (wiki.test.raw) joined the way the Hugging Face dataset is
 * used by the perplexity code: rows = the file's lines (each keeping its "\n"; blank or
 * whitespace-only lines become ""), then "\n\n".join(rows). *text malloc'd, NUL-terminated. */
int wikitext_load(const char *path, char **text, size_t *len, cis_err *err);

typedef struct text_docs {
    char **text;      /* [n] NUL-terminated UTF-8 */
    size_t *len;      /* [n] byte lengths */
    int n;
} text_docs;

/* jsonl_text_load: the string field `field` of each JSON object line of path. The file is read
 * through zlib when it ends in ".gz" and through libzstd when it ends in ".zst"; blank lines are
 * skipped. max_docs > 0 stops after that many documents. -1 names the line on a bad record, or
 * the file on a truncated/corrupt compressed stream or an empty file. */
int jsonl_text_load(const char *path, const char *field, int max_docs, text_docs *out, cis_err *err);
/* c4_load: C4 json.gz shard ({"text","timestamp","url"} per line) -> texts. */
int c4_load(const char *path, int max_docs, text_docs *out, cis_err *err);
/* pile_load: pile-val val.jsonl or val.jsonl.zst ({"text","meta"} per line) -> texts. */
int pile_load(const char *path, int max_docs, text_docs *out, cis_err *err);
/* text_docs_clear: free every text and zero *d (NULL-safe). */
void text_docs_clear(text_docs *d);

/* ---- internal helpers shared by the load_*.c files ------------------------------------------- */

/* jsonl_each: call fn on each non-blank line of path (maybe .gz/.zst) parsed as JSON (the object
 * is released after the call). fn returns 0 to go on, > 0 to stop early (jsonl_each then returns
 * that value) or -1 with err set. -1 names the file and line on invalid JSON. */
int jsonl_each(const char *path, int (*fn)(void *ctx, json_t *obj, int line, cis_err *err), void *ctx, cis_err *err);
/* data_read_all: the whole (maybe compressed, by suffix .gz / .zst) file, NUL-terminated. */
char *data_read_all(const char *path, size_t *len, cis_err *err);

#endif
