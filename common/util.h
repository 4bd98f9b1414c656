/* util.h - the small floor both programs stand on: error values, check macros that name file and
 * line, allocation that never returns NULL, clocks, whole-file reads and string helpers.
 *
 * Error convention (docs/conventions.md): a function that can fail at run time because of its
 * input (a bad file, a bad message, a peer gone) returns 0 on success and -1 on failure and fills
 * a caller-owned `cis_err` with a one-line message that names the file, field or peer and what was
 * expected. Programmer errors (a broken invariant) abort through CIS_ASSERT with file:line. No
 * daemon loop ever calls exit(). */
#ifndef CISWEEP_UTIL_H
#define CISWEEP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdbool.h>

/* error codes carried by cis_err.code (0 = none) */
enum cis_errcode {
    CIS_OK = 0,
    CIS_EINVAL = 1,   /* bad input: parse error, invalid field, unknown method */
    CIS_EIO = 2,      /* file or socket I/O failed */
    CIS_EDB = 3,      /* SQLite failure */
    CIS_ENOMEM = 4,
    CIS_ESTATE = 5,   /* the request does not fit the current state (stale attempt, unknown job) */
    CIS_EVERSION = 6, /* version mismatch (schema, protocol) */
    CIS_ECANCEL = 7,  /* stopped on request (preemption, cancellation) */
    CIS_EPERM = 8,    /* the peer may not do this (not the holder of the lease it reports on) */
};

typedef struct cis_err {
    int code;        /* enum cis_errcode */
    char msg[1024];  /* one line, no trailing newline */
} cis_err;

/* err_set: fill err (may be NULL) with code and a printf-style message; returns -1 so that
 * `return err_set(err, CIS_EINVAL, "...")` reads naturally. */
int err_set(cis_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* err_prefix: prepend "prefix: " to err->msg (context added by callers higher up). */
void err_prefix(cis_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* die_at: print "file:line: func: message" (and a HINT line when hint is non-NULL) and abort.
 * For programmer errors and failed allocations only. */
void die_at(const char *file, int line, const char *func, const char *hint, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 5, 6)));

#define CIS_ASSERT(cond) \
    do { if (!(cond)) die_at(__FILE__, __LINE__, __func__, NULL, "assertion failed: %s", #cond); } while (0)
#define CIS_DIE(...) die_at(__FILE__, __LINE__, __func__, NULL, __VA_ARGS__)

/* allocation: abort with file:line on failure (the daemon cannot do anything useful without memory
 * for its own bookkeeping; big model buffers use their own checked paths). */
void *xmalloc_at(size_t n, const char *file, int line);
void *xcalloc_at(size_t n, size_t sz, const char *file, int line);
void *xrealloc_at(void *p, size_t n, const char *file, int line);
char *xstrdup_at(const char *s, const char *file, int line);
#define xmalloc(n) xmalloc_at((n), __FILE__, __LINE__)
#define xcalloc(n, sz) xcalloc_at((n), (sz), __FILE__, __LINE__)
#define xrealloc(p, n) xrealloc_at((p), (n), __FILE__, __LINE__)
#define xstrdup(s) xstrdup_at((s), __FILE__, __LINE__)
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* clocks */
int64_t now_ms(void);       /* wall clock, ms since the Unix epoch (stored in the DB) */
int64_t mono_ms(void);      /* monotonic ms (timeouts, heartbeats) */
double mono_sec(void);      /* monotonic seconds, sub-microsecond resolution (benchmarks) */
void sleep_ms(int64_t ms);
/* iso8601 UTC with milliseconds into buf (>= 32 bytes); returns buf */
char *fmt_time_ms(int64_t epoch_ms, char *buf, size_t n);

/* read_file: whole file into a NUL-terminated malloc'd buffer; *len_out (may be NULL) gets the
 * byte count. Returns NULL and fills err naming the path on failure. */
char *read_file(const char *path, size_t *len_out, cis_err *err);
/* write_file_atomic: write to path.tmp, fsync, rename over path (a reader never sees half a file). */
int write_file_atomic(const char *path, const void *data, size_t len, cis_err *err);
/* write_file_replace: the same without the fsync (survives a process crash, not a power loss). */
int write_file_replace(const char *path, const void *data, size_t len, cis_err *err);
/* mkdir_p: create a directory and its parents (mode 0755); ok if it exists. */
int mkdir_p(const char *path, cis_err *err);

bool str_starts(const char *s, const char *prefix);
bool str_ends(const char *s, const char *suffix);
/* parse a whole string as a number; false on trailing junk, overflow or empty input */
bool parse_i64(const char *s, int64_t *out);
bool parse_double(const char *s, double *out);

/* install_stop_signals: SIGTERM, SIGINT and SIGHUP set *flag to the signal number (the daemons'
 * loops poll it and stop cleanly; blocking calls return EINTR). */
void install_stop_signals(volatile int *flag);

/* sha256 of data, as 64 lowercase hex characters + NUL into hex (>= 65 bytes). */
void sha256_hex(const void *data, size_t len, char hex[65]);

/* kth_smallest: the k-th smallest of a[0..n) (0-based, 0 <= k < n), i.e. the k-th element of the
 * ascending sort; a is reordered (Hoare's selection, O(n) expected). Deterministic: the same input
 * gives the same order and result (Wanda's and SparseGPT's thresholds, the magnitude baseline). */
float kth_smallest(float *a, int64_t n, int64_t k);

#endif
