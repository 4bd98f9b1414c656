/* log.c - leveled log lines with context, and a ring buffer of the recent lines (see log.h). */
#include "common/log.h"
#include "common/util.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum log_level g_level = LOG_INFO;
static char g_role[32] = "cisweep";
static char g_worker[128] = "";
static __thread int64_t t_job = 0;
static __thread int t_attempt = 0;

#define RING_SIZE 8192
static char g_ring[RING_SIZE];
static size_t g_ring_pos = 0;  /* total bytes ever written */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;

static const char *LEVEL_NAMES[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};

int log_level_parse(const char *s) {
    if (!s) return -1;
    if (!strcmp(s, "debug")) return LOG_DEBUG;
    if (!strcmp(s, "info")) return LOG_INFO;
    if (!strcmp(s, "warn")) return LOG_WARN;
    if (!strcmp(s, "error")) return LOG_ERROR;
    return -1;
}

void log_init(const char *role) {
    snprintf(g_role, sizeof g_role, "%s", role);
    int l = log_level_parse(getenv("CISWEEP_LOG"));
    if (l >= 0) g_level = (enum log_level)l;
}
void log_set_level(enum log_level lvl) { g_level = lvl; }
void log_set_worker(const char *worker_id) {
    pthread_mutex_lock(&g_mu);
    snprintf(g_worker, sizeof g_worker, "%s", worker_id ? worker_id : "");
    pthread_mutex_unlock(&g_mu);
}
void log_set_job(int64_t job_id, int attempt) { t_job = job_id; t_attempt = attempt; }

void log_msg(enum log_level lvl, const char *fmt, ...) {
    if (lvl < g_level) return;
    char line[2048];
    char ts[40];
    fmt_time_ms(now_ms(), ts, sizeof ts);
    pthread_mutex_lock(&g_mu);
    int k = snprintf(line, sizeof line, "%s %s %s", ts, LEVEL_NAMES[lvl], g_role);
    pthread_mutex_unlock(&g_mu);
    if (g_worker[0]) k += snprintf(line + k, sizeof line - (size_t)k, " [%s]", g_worker);
    if (t_job) k += snprintf(line + k, sizeof line - (size_t)k, " [job %lld/%d]", (long long)t_job, t_attempt);
    k += snprintf(line + k, sizeof line - (size_t)k, ": ");
    va_list ap;
    va_start(ap, fmt);
    if (k < (int)sizeof line) k += vsnprintf(line + k, sizeof line - (size_t)k, fmt, ap);
    va_end(ap);
    if (k > (int)sizeof line - 2) k = (int)sizeof line - 2;
    line[k++] = '\n';
    line[k] = 0;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < k; i++) g_ring[(g_ring_pos + (size_t)i) % RING_SIZE] = line[i];
    g_ring_pos += (size_t)k;
    pthread_mutex_unlock(&g_mu);
    ssize_t w = write(2, line, (size_t)k);
    (void)w;
}

size_t log_tail(char *buf, size_t n) {
    if (n == 0) return 0;
    pthread_mutex_lock(&g_mu);
    size_t avail = g_ring_pos < RING_SIZE ? g_ring_pos : RING_SIZE;
    size_t take = avail < n - 1 ? avail : n - 1;
    size_t start = g_ring_pos - take;
    for (size_t i = 0; i < take; i++) buf[i] = g_ring[(start + i) % RING_SIZE];
    pthread_mutex_unlock(&g_mu);
    buf[take] = 0;
    return take;
}
