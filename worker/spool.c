/* spool.c - append-only journal of unacknowledged outcome messages (see spool.h). */
#include "worker/spool.h"
#include "common/log.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct spool {
    char *path;          /* DIR/spool.journal */
    int fd;              /* O_APPEND */
    spool_item *items;   /* unacknowledged, oldest first */
    size_t n, cap;
    int64_t bytes;       /* journal size, for compaction */
};

static void item_drop(spool *sp, size_t i) {
    json_decref(sp->items[i].body);
    memmove(&sp->items[i], &sp->items[i + 1], (sp->n - i - 1) * sizeof *sp->items);
    sp->n--;
}

static ssize_t find(const spool *sp, int64_t job, int attempt) {
    for (size_t i = 0; i < sp->n; i++)
        if (sp->items[i].job == job && sp->items[i].attempt == attempt) return (ssize_t)i;
    return -1;
}

static void item_add(spool *sp, proto_cmd cmd, json_t *body) {
    int64_t job = proto_int(body, "job", 0);
    int att = (int)proto_int(body, "attempt", 0);
    ssize_t k = find(sp, job, att);
    if (k >= 0) item_drop(sp, (size_t)k);
    if (sp->n == sp->cap) {
        sp->cap = sp->cap ? 2 * sp->cap : 16;
        sp->items = xrealloc(sp->items, sp->cap * sizeof *sp->items);
    }
    sp->items[sp->n++] = (spool_item){job, att, cmd, json_incref(body)};
}

static char *put_line(proto_cmd cmd, json_t *body) {
    json_t *doc = json_pack("{s:s,s:O}", "cmd", proto_cmd_name(cmd), "body", body);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char *line = xasprintf("P %s\n", text);
    free(text);
    return line;
}

static int append(spool *sp, const char *line, cis_err *err) {
    size_t len = strlen(line), off = 0;
    while (off < len) {
        ssize_t k = write(sp->fd, line + off, len - off);
        if (k < 0) {
            if (errno == EINTR) continue;
            return err_set(err, CIS_EIO, "%s: append failed: %s", sp->path, strerror(errno));
        }
        off += (size_t)k;
    }
    sp->bytes += (int64_t)len;
    return 0;
}

/* rewrite the journal with only the unacknowledged messages (tmp + rename) */
static int compact(spool *sp, cis_err *err) {
    size_t cap = 4096, len = 0;
    char *buf = xmalloc(cap);
    buf[0] = 0;
    for (size_t i = 0; i < sp->n; i++) {
        char *l = put_line(sp->items[i].cmd, sp->items[i].body);
        size_t ll = strlen(l);
        while (len + ll + 1 > cap) { cap *= 2; buf = xrealloc(buf, cap); }
        memcpy(buf + len, l, ll + 1);
        len += ll;
        free(l);
    }
    int rc = write_file_atomic(sp->path, buf, len, err);
    free(buf);
    if (rc) return -1;
    if (sp->fd >= 0) close(sp->fd);
    sp->fd = open(sp->path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (sp->fd < 0) return err_set(err, CIS_EIO, "%s: cannot open: %s", sp->path, strerror(errno));
    sp->bytes = (int64_t)len;
    return 0;
}

int spool_open(const char *dir, spool **out, cis_err *err) {
    if (mkdir_p(dir, err)) return -1;
    spool *sp = xcalloc(1, sizeof *sp);
    sp->fd = -1;
    sp->path = xasprintf("%s/spool.journal", dir);
    if (access(sp->path, F_OK) == 0) {
        char *text = read_file(sp->path, NULL, err);
        if (!text) { spool_close(&sp); return -1; }
        int lineno = 0;
        for (char *line = text, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            lineno++;
            if (!next) { LOG_W("%s:%d: torn last record (a crash while writing) skipped", sp->path, lineno); break; }
            *next++ = 0;
            if (line[0] == 'A' && line[1] == ' ') {
                long long job;
                int att;
                if (sscanf(line + 2, "%lld %d", &job, &att) == 2) {
                    ssize_t k = find(sp, job, att);
                    if (k >= 0) item_drop(sp, (size_t)k);
                    continue;
                }
            } else if (line[0] == 'P' && line[1] == ' ') {
                json_error_t je;
                json_t *doc = json_loads(line + 2, 0, &je);
                const char *cmd = doc ? json_string_value(json_object_get(doc, "cmd")) : NULL;
                json_t *body = doc ? json_object_get(doc, "body") : NULL;
                proto_cmd pc = cmd ? proto_cmd_parse(cmd, strlen(cmd)) : PROTO_INVALID;
                cis_err ve = {0};
                if (doc && pc != PROTO_INVALID && proto_validate(pc, body, &ve) == 0) {
                    item_add(sp, pc, body);
                    json_decref(doc);
                    continue;
                }
                if (doc) json_decref(doc);
            }
            LOG_W("%s:%d: unreadable spool record skipped", sp->path, lineno);
        }
        free(text);
    }
    if (compact(sp, err)) { spool_close(&sp); return -1; }
    if (sp->n) LOG_I("spool %s holds %zu unacknowledged message(s) from before", sp->path, sp->n);
    *out = sp;
    return 0;
}

void spool_close(spool **spp) {
    spool *sp = *spp;
    if (!sp) return;
    if (sp->fd >= 0) close(sp->fd);
    for (size_t i = 0; i < sp->n; i++) json_decref(sp->items[i].body);
    free(sp->items);
    free(sp->path);
    free(sp);
    *spp = NULL;
}

int spool_put(spool *sp, int64_t job, int attempt, proto_cmd cmd, json_t *body, cis_err *err) {
    (void)job; (void)attempt;
    char *line = put_line(cmd, body);
    int rc = append(sp, line, err);
    free(line);
    item_add(sp, cmd, body);
    return rc;
}

void spool_ack(spool *sp, int64_t job, int attempt) {
    ssize_t k = find(sp, job, attempt);
    if (k < 0) return;
    item_drop(sp, (size_t)k);
    char line[64];
    snprintf(line, sizeof line, "A %" PRId64 " %d\n", job, attempt);
    cis_err e = {0};
    if (append(sp, line, &e)) LOG_E("%s", e.msg);
    if (sp->n == 0 && sp->bytes > (1 << 20) && compact(sp, &e)) LOG_E("%s", e.msg);
}

size_t spool_count(const spool *sp) { return sp->n; }
const spool_item *spool_at(const spool *sp, size_t i) { return i < sp->n ? &sp->items[i] : NULL; }
