/* log.h - leveled, timestamped log lines on stderr, with the process role, worker id and job id
 * as context: "2026-11-25T20:01:02.123Z INFO  coordinator: leased job 12 (attempt 1) to w1".
 * Thread-safe (one write(2) per line). Level from --log-level or CISWEEP_LOG=debug|info|warn|error. */
#ifndef CISWEEP_LOG_H
#define CISWEEP_LOG_H

#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* log_init: set the role ("coordinator", "worker", ...) and read CISWEEP_LOG. */
void log_init(const char *role);
void log_set_level(enum log_level lvl);
/* parse "debug|info|warn|error"; -1 if unknown */
int log_level_parse(const char *s);
/* log_set_worker: the worker id shown in every line (NULL clears); log_set_job: the current job
 * id (thread-local; 0 clears). */
void log_set_worker(const char *worker_id);
void log_set_job(int64_t job_id, int attempt);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* log_tail: copy the last (up to) n bytes this process logged into buf (NUL-terminated); used
 * for the log tail that a FAILED report carries. Returns bytes copied. */
size_t log_tail(char *buf, size_t n);

#define LOG_D(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define LOG_I(...) log_msg(LOG_INFO, __VA_ARGS__)
#define LOG_W(...) log_msg(LOG_WARN, __VA_ARGS__)
#define LOG_E(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
