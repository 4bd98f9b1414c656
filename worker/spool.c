/* spool.c - on-disk spool of unacknowledged outcome messages (see spool.h). */
#include "worker/spool.h"
#include "common/log.h"
#include "common/util.h"

#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int spool_init(const char *dir, cis_err *err) { return mkdir_p(dir, err); }

static char *item_path(const char *dir, int64_t job, int attempt) {
    return xasprintf("%s/%" PRId64 "-%d.msg", dir, job, attempt);
}

int spool_put(const char *dir, int64_t job, int attempt, proto_cmd cmd, json_t *body, cis_err *err) {
    json_t *doc = json_pack("{s:s,s:O}", "cmd", proto_cmd_name(cmd), "body", body);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    char *p = item_path(dir, job, attempt);
    int rc = write_file_replace(p, text, strlen(text), err);
    free(p);
    free(text);
    return rc;
}

void spool_remove(const char *dir, int64_t job, int attempt) {
    char *p = item_path(dir, job, attempt);
    unlink(p);
    free(p);
}

int spool_list(const char *dir, spool_item **items, size_t *n, cis_err *err) {
    *items = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return err_set(err, CIS_EIO, "%s: cannot open spool directory", dir);
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!str_ends(de->d_name, ".msg")) continue;
        char *p = xasprintf("%s/%s", dir, de->d_name);
        cis_err e = {0};
        char *text = read_file(p, NULL, &e);
        json_error_t je;
        json_t *doc = text ? json_loads(text, 0, &je) : NULL;
        free(text);
        const char *cmd = doc ? json_string_value(json_object_get(doc, "cmd")) : NULL;
        json_t *body = doc ? json_object_get(doc, "body") : NULL;
        proto_cmd pc = cmd ? proto_cmd_parse(cmd, strlen(cmd)) : PROTO_INVALID;
        cis_err ve = {0};
        if (!doc || pc == PROTO_INVALID || proto_validate(pc, body, &ve)) {
            char *bad = xasprintf("%s.bad", p);
            LOG_E("spool file %s is unreadable (%s); moved to %s", p, ve.msg[0] ? ve.msg : "not a spool message", bad);
            rename(p, bad);
            free(bad);
        } else {
            if (*n == cap) { cap = cap ? 2 * cap : 8; *items = xrealloc(*items, cap * sizeof **items); }
            spool_item *it = &(*items)[(*n)++];
            it->job = proto_int(body, "job", 0);
            it->attempt = (int)proto_int(body, "attempt", 0);
            it->cmd = pc;
            it->body = json_incref(body);
        }
        if (doc) json_decref(doc);
        free(p);
    }
    closedir(d);
    return 0;
}

void spool_items_free(spool_item *items, size_t n) {
    for (size_t i = 0; i < n; i++) json_decref(items[i].body);
    free(items);
}
