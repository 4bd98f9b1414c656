/* protocol.c - encode, decode and validate the coordinator <-> worker messages (see protocol.h). */
#include "common/protocol.h"
#include "common/prefix_key.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <zmq.h>

static const char *CMD_NAMES[PROTO_N_CMDS] = {
    "INVALID", "HELLO", "WELCOME", "READY", "JOB", "HEARTBEAT", "RESULT",
    "FAILED", "PREEMPTED", "ACK", "CANCEL", "RECONNECT", "BYE"};

const char *proto_cmd_name(proto_cmd c) {
    return (c > 0 && c < PROTO_N_CMDS) ? CMD_NAMES[c] : "INVALID";
}

proto_cmd proto_cmd_parse(const char *s, size_t n) {
    for (int i = 1; i < PROTO_N_CMDS; i++)
        if (strlen(CMD_NAMES[i]) == n && memcmp(CMD_NAMES[i], s, n) == 0) return (proto_cmd)i;
    return PROTO_INVALID;
}

void proto_msg_clear(proto_msg *m) {
    if (!m) return;
    if (m->body) json_decref(m->body);
    memset(m, 0, sizeof *m);
    m->cmd = PROTO_INVALID;
}

/* ---- field checks ------------------------------------------------------------------------ */

typedef enum { F_INT, F_POSINT, F_NUM, F_STR, F_BOOL, F_OBJ, F_ARR, F_OBJ_OR_NULL } ftype;
typedef struct field { const char *name; ftype t; bool required; } field;

static const char *ftype_name(ftype t) {
    switch (t) {
    case F_INT: return "an integer";
    case F_POSINT: return "a positive integer";
    case F_NUM: return "a number";
    case F_STR: return "a string (at most 64 KiB)";
    case F_BOOL: return "a boolean";
    case F_OBJ: return "an object";
    case F_ARR: return "an array";
    case F_OBJ_OR_NULL: return "an object or null";
    }
    return "?";
}

static bool ftype_ok(json_t *v, ftype t) {
    switch (t) {
    case F_INT: return json_is_integer(v);
    case F_POSINT: return json_is_integer(v) && json_integer_value(v) > 0;
    case F_NUM: return json_is_number(v);
    case F_STR: return json_is_string(v) && json_string_length(v) <= 65536;
    case F_BOOL: return json_is_boolean(v);
    case F_OBJ: return json_is_object(v);
    case F_ARR: return json_is_array(v);
    case F_OBJ_OR_NULL: return json_is_object(v) || json_is_null(v);
    }
    return false;
}

static int check_fields(proto_cmd cmd, json_t *body, const field *fs, cis_err *err) {
    for (const field *f = fs; f->name; f++) {
        json_t *v = json_object_get(body, f->name);
        if (!v) {
            if (f->required)
                return err_set(err, CIS_EINVAL, "%s: missing field \"%s\" (expected %s)",
                               proto_cmd_name(cmd), f->name, ftype_name(f->t));
            continue;
        }
        if (!ftype_ok(v, f->t))
            return err_set(err, CIS_EINVAL, "%s: field \"%s\" must be %s", proto_cmd_name(cmd),
                           f->name, ftype_name(f->t));
    }
    return 0;
}

int proto_metric_parse(json_t *v, double *out) {
    if (json_is_number(v)) { *out = json_number_value(v); return 0; }
    if (json_is_null(v)) { *out = NAN; return 0; }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (!strcmp(s, "nan")) { *out = NAN; return 0; }
        if (!strcmp(s, "inf")) { *out = INFINITY; return 0; }
        if (!strcmp(s, "-inf")) { *out = -INFINITY; return 0; }
    }
    return -1;
}

json_t *proto_metric_value(double v) {
    if (isnan(v)) return json_string("nan");
    if (isinf(v)) return json_string(v > 0 ? "inf" : "-inf");
    return json_real(v);
}

static const field F_JOBREF[] = {{"job", F_POSINT, true}, {"attempt", F_POSINT, true}, {NULL, 0, 0}};
static const field F_HELLO[] = {{"worker", F_STR, true}, {"host", F_STR, true}, {"device", F_STR, true},
    {"backend", F_STR, false}, {"memory_mb", F_INT, false}, {"free_mb", F_INT, false}, {"version", F_STR, true}, {"pid", F_INT, false},
    {"slots", F_POSINT, false}, {"running", F_OBJ_OR_NULL, false}, {"held", F_ARR, false},
    {"spooled", F_ARR, false}, {"prefixes", F_ARR, false}, {"free_mb_source", F_STR, false},
    {"results_epoch", F_INT, false}, {NULL, 0, 0}};
static const field F_WELCOME[] = {{"heartbeat_ms", F_POSINT, true}, {"liveness", F_POSINT, true},
    {"coordinator", F_STR, false}, {NULL, 0, 0}};
static const field F_READY[] = {{"slots", F_POSINT, false}, {"prefixes", F_ARR, false}, {NULL, 0, 0}};
static const field F_JOB[] = {{"job", F_POSINT, true}, {"attempt", F_POSINT, true}, {"model", F_STR, true},
    {"model_path", F_STR, false}, {"composition", F_ARR, true}, {"key", F_STR, false},
    {"edit_set", F_INT, false}, {"lease_ms", F_POSINT, true}, {"timeout_ms", F_INT, false},
    {"recompress", F_STR, false}, {NULL, 0, 0}};
static const field F_HEARTBEAT[] = {{"job", F_POSINT, false}, {"attempt", F_POSINT, false},
    {"progress", F_NUM, false}, {"held", F_ARR, false}, {"prefixes", F_ARR, false}, {NULL, 0, 0}};
static const field F_RESULT[] = {{"job", F_POSINT, true}, {"attempt", F_POSINT, true}, {"rows", F_OBJ, true},
    {"run_ms", F_INT, false}, {"stages", F_ARR, false}, {"prefixes", F_ARR, false}, {"artifacts", F_ARR, false},
    {NULL, 0, 0}};
/* one element of RESULT.artifacts (worker/prereq.c) */
static const field F_ARTIFACT[] = {{"key", F_STR, true}, {"kind", F_STR, true}, {"path", F_STR, true},
    {"sha256", F_STR, true}, {"bytes", F_INT, true}, {"layer", F_INT, false}, {NULL, 0, 0}};
/* one element of RESULT.stages (worker/interventions/record.h interv_stage_json) */
static const field F_STAGE[] = {{"stage", F_POSINT, true}, {"method", F_STR, true}, {"params", F_OBJ, true},
    {"of_stage", F_POSINT, false}, {"category", F_STR, false}, {"recompress", F_BOOL, false}, {"seed", F_INT, false},
    {"record", F_OBJ, false}, {"phases_s", F_OBJ, false}, {"wall_ms", F_INT, false}, {NULL, 0, 0}};
static const field F_FAILED[] = {{"job", F_POSINT, true}, {"attempt", F_POSINT, true}, {"error", F_STR, true},
    {"log_tail", F_STR, false}, {"retryable", F_BOOL, false}, {NULL, 0, 0}};
static const field F_ACK[] = {{"job", F_POSINT, true}, {"attempt", F_POSINT, true}, {"of", F_STR, true},
    {NULL, 0, 0}};
static const field F_CANCEL[] = {{"job", F_POSINT, true}, {"attempt", F_POSINT, true}, {"reason", F_STR, false},
    {NULL, 0, 0}};
static const field F_REASON[] = {{"reason", F_STR, false}, {"final", F_BOOL, false}, {NULL, 0, 0}};

/* RESULT.stages: at most PROTO_MAX_STAGES objects, numbered 1, 2, ... in order, each with a method
 * name of 1..64 bytes, an object of params, and non-negative seed and wall_ms */
static int validate_stages(json_t *stages, cis_err *err) {
    if (!stages) return 0;
    if (json_array_size(stages) > PROTO_MAX_STAGES)
        return err_set(err, CIS_EINVAL, "RESULT: field \"stages\" lists more than %d stages", PROTO_MAX_STAGES);
    size_t i;
    json_t *st;
    json_array_foreach(stages, i, st) {
        if (!json_is_object(st))
            return err_set(err, CIS_EINVAL, "RESULT: stages[%zu] must be an object {stage, method, params, ...}", i);
        if (check_fields(PROTO_RESULT, st, F_STAGE, err)) {
            char what[sizeof err->msg];
            const char *m = err->msg, *pre = "RESULT: ";
            snprintf(what, sizeof what, "%s", strncmp(m, pre, strlen(pre)) ? m : m + strlen(pre));
            return err_set(err, CIS_EINVAL, "RESULT: stages[%zu]: %s", i, what);
        }
        if (json_integer_value(json_object_get(st, "stage")) != (json_int_t)i + 1)
            return err_set(err, CIS_EINVAL, "RESULT: stages[%zu]: field \"stage\" must be %zu (stages in order)", i, i + 1);
        size_t ml = json_string_length(json_object_get(st, "method"));
        if (ml == 0 || ml > 64)
            return err_set(err, CIS_EINVAL, "RESULT: stages[%zu]: field \"method\" must be 1..64 bytes", i);
        json_t *seed = json_object_get(st, "seed"), *wall = json_object_get(st, "wall_ms");
        if ((seed && json_integer_value(seed) < 0) || (wall && json_integer_value(wall) < 0))
            return err_set(err, CIS_EINVAL, "RESULT: stages[%zu]: fields \"seed\" and \"wall_ms\" must be >= 0", i);
    }
    return 0;
}

static bool lower_hex(const char *s, size_t n_min, size_t n_max) {
    size_t n = strlen(s);
    if (n < n_min || n > n_max) return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return false;
    return true;
}

/* RESULT.artifacts: at most PROTO_MAX_ARTIFACTS objects {key: 16-128 lowercase hex, kind: 1..64
 * of [a-z0-9_], path: 1..1024 bytes relative to the artifact root (no leading '/', no ".."
 * component), sha256: 64 lowercase hex, bytes >= 0, layer?} */
static int validate_artifacts(json_t *arts, cis_err *err) {
    if (!arts) return 0;
    if (json_array_size(arts) > PROTO_MAX_ARTIFACTS)
        return err_set(err, CIS_EINVAL, "RESULT: field \"artifacts\" lists more than %d artifacts", PROTO_MAX_ARTIFACTS);
    size_t i;
    json_t *a;
    json_array_foreach(arts, i, a) {
        if (!json_is_object(a))
            return err_set(err, CIS_EINVAL, "RESULT: artifacts[%zu] must be an object {key, kind, path, sha256, bytes}", i);
        if (check_fields(PROTO_RESULT, a, F_ARTIFACT, err)) {
            char what[sizeof err->msg];
            const char *m = err->msg, *pre = "RESULT: ";
            snprintf(what, sizeof what, "%s", strncmp(m, pre, strlen(pre)) ? m : m + strlen(pre));
            return err_set(err, CIS_EINVAL, "RESULT: artifacts[%zu]: %s", i, what);
        }
        const char *key = json_string_value(json_object_get(a, "key")), *kind = json_string_value(json_object_get(a, "kind"));
        const char *path = json_string_value(json_object_get(a, "path")), *sha = json_string_value(json_object_get(a, "sha256"));
        if (!lower_hex(key, 16, 128))
            return err_set(err, CIS_EINVAL, "RESULT: artifacts[%zu]: field \"key\" must be 16-128 lowercase hex characters", i);
        size_t kl = strlen(kind);
        bool kind_ok = kl >= 1 && kl <= 64;
        for (size_t k = 0; k < kl && kind_ok; k++)
            kind_ok = (kind[k] >= 'a' && kind[k] <= 'z') || (kind[k] >= '0' && kind[k] <= '9') || kind[k] == '_';
        if (!kind_ok)
            return err_set(err, CIS_EINVAL, "RESULT: artifacts[%zu]: field \"kind\" must be 1..64 of [a-z0-9_]", i);
        size_t pl = strlen(path);
        if (pl == 0 || pl > 1024 || path[0] == '/' || !strcmp(path, "..") || !strncmp(path, "../", 3) ||
            strstr(path, "/../") || (pl >= 3 && !strcmp(path + pl - 3, "/..")))
            return err_set(err, CIS_EINVAL, "RESULT: artifacts[%zu]: field \"path\" must be 1..1024 bytes relative to "
                           "the artifact root (no leading '/', no \"..\")", i);
        if (!lower_hex(sha, 64, 64))
            return err_set(err, CIS_EINVAL, "RESULT: artifacts[%zu]: field \"sha256\" must be 64 lowercase hex characters", i);
        if (json_integer_value(json_object_get(a, "bytes")) < 0)
            return err_set(err, CIS_EINVAL, "RESULT: artifacts[%zu]: field \"bytes\" must be >= 0", i);
    }
    return 0;
}

int proto_validate(proto_cmd cmd, json_t *body, cis_err *err) {
    if (!json_is_object(body))
        return err_set(err, CIS_EINVAL, "%s: body must be a JSON object", proto_cmd_name(cmd));
    const field *fs = NULL;
    switch (cmd) {
    case PROTO_HELLO: fs = F_HELLO; break;
    case PROTO_WELCOME: fs = F_WELCOME; break;
    case PROTO_READY: fs = F_READY; break;
    case PROTO_JOB: fs = F_JOB; break;
    case PROTO_HEARTBEAT: fs = F_HEARTBEAT; break;
    case PROTO_RESULT: fs = F_RESULT; break;
    case PROTO_FAILED: fs = F_FAILED; break;
    case PROTO_PREEMPTED: fs = F_JOBREF; break;
    case PROTO_ACK: fs = F_ACK; break;
    case PROTO_CANCEL: fs = F_CANCEL; break;
    case PROTO_RECONNECT: case PROTO_BYE: fs = F_REASON; break;
    default: return err_set(err, CIS_EINVAL, "unknown command");
    }
    if (check_fields(cmd, body, fs, err)) return -1;
    /* per-command extra checks */
    json_t *held = json_object_get(body, "held");
    if (held) {
        if (json_array_size(held) > 64)
            return err_set(err, CIS_EINVAL, "%s: field \"held\" lists more than 64 jobs", proto_cmd_name(cmd));
        size_t i;
        json_t *it;
        json_array_foreach(held, i, it) {
            if (!json_is_object(it) || check_fields(cmd, it, F_JOBREF, err)) {
                if (!json_is_object(it)) err_set(err, CIS_EINVAL, "%s: held[%zu] must be {job, attempt}", proto_cmd_name(cmd), i);
                else err_prefix(err, "held[%zu]", i);
                return -1;
            }
        }
    }
    /* READY/HEARTBEAT/RESULT.prefixes: the prefix snapshot keys the worker holds (prefix_key.h) */
    json_t *pre = json_object_get(body, "prefixes");
    if (pre) {
        if (json_array_size(pre) > PREFIX_MAX_ADVERT)
            return err_set(err, CIS_EINVAL, "%s: field \"prefixes\" lists more than %d keys", proto_cmd_name(cmd),
                           PREFIX_MAX_ADVERT);
        size_t i;
        json_t *it;
        json_array_foreach(pre, i, it) {
            if (!prefix_key_valid(json_string_value(it)))
                return err_set(err, CIS_EINVAL, "%s: prefixes[%zu] must be a prefix key (64 lowercase hex characters)",
                               proto_cmd_name(cmd), i);
        }
    }
    if (cmd == PROTO_HELLO) {
        size_t n = json_string_length(json_object_get(body, "worker"));
        if (n == 0 || n > PROTO_MAX_ID)
            return err_set(err, CIS_EINVAL, "HELLO: field \"worker\" must be 1..%d bytes", PROTO_MAX_ID);
        json_t *sp = json_object_get(body, "spooled"), *it;
        size_t i;
        if (json_array_size(sp) > PROTO_MAX_SPOOLED)
            return err_set(err, CIS_EINVAL, "HELLO: field \"spooled\" lists more than %d jobs", PROTO_MAX_SPOOLED);
        json_array_foreach(sp, i, it) {
            if (!json_is_object(it)) return err_set(err, CIS_EINVAL, "HELLO: spooled[%zu] must be {job, attempt}", i);
            if (check_fields(cmd, it, F_JOBREF, err)) { err_prefix(err, "spooled[%zu]", i); return -1; }
        }
        json_t *r = json_object_get(body, "running");
        if (json_is_object(r) && check_fields(cmd, r, F_JOBREF, err)) {
            err_prefix(err, "HELLO.running");
            return -1;
        }
    }
    if (cmd == PROTO_HEARTBEAT) {
        json_t *p = json_object_get(body, "progress");
        if (p) {
            double v = json_number_value(p);
            if (!(v >= 0 && v <= 1))
                return err_set(err, CIS_EINVAL, "HEARTBEAT: field \"progress\" must be in [0,1], got %g", v);
        }
        if ((json_object_get(body, "job") != NULL) != (json_object_get(body, "attempt") != NULL))
            return err_set(err, CIS_EINVAL, "HEARTBEAT: \"job\" and \"attempt\" go together");
    }
    if (cmd == PROTO_RESULT) {
        const char *k;
        json_t *v;
        json_t *rows = json_object_get(body, "rows");
        if (json_object_size(rows) > 4096)
            return err_set(err, CIS_EINVAL, "RESULT: more than 4096 metric rows");
        json_object_foreach(rows, k, v) {
            double d;
            if (strlen(k) == 0 || strlen(k) > 128)
                return err_set(err, CIS_EINVAL, "RESULT: metric names must be 1..128 bytes");
            if (proto_metric_parse(v, &d))
                return err_set(err, CIS_EINVAL,
                               "RESULT: metric \"%s\" must be a number, null or \"nan\"/\"inf\"/\"-inf\"", k);
        }
    }
    if (cmd == PROTO_RESULT && validate_stages(json_object_get(body, "stages"), err)) return -1;
    if (cmd == PROTO_RESULT && validate_artifacts(json_object_get(body, "artifacts"), err)) return -1;
    if (cmd == PROTO_ACK) {
        const char *of = json_string_value(json_object_get(body, "of"));
        if (strcmp(of, "RESULT") && strcmp(of, "FAILED") && strcmp(of, "PREEMPTED"))
            return err_set(err, CIS_EINVAL, "ACK: field \"of\" must be RESULT, FAILED or PREEMPTED");
    }
    if (cmd == PROTO_JOB) {
        if (json_array_size(json_object_get(body, "composition")) > 64)
            return err_set(err, CIS_EINVAL, "JOB: composition longer than 64 stages");
    }
    return 0;
}

/* ---- decode / recv / send ---------------------------------------------------------------- */

size_t proto_max_body(int cmd) {
    switch (cmd) {
    case PROTO_RESULT: case PROTO_JOB: return PROTO_MAX_BODY;
    case PROTO_FAILED: return 256 << 10;
    case PROTO_HELLO: return 64 << 10;
    default: return 80 << 10;
    }
}

int proto_decode(const void *const *frames, const size_t *lens, size_t n, proto_msg *out, cis_err *err) {
    out->cmd = PROTO_INVALID;
    out->body = NULL;
    if (n != 4)
        return err_set(err, CIS_EINVAL, "expected 4 frames [empty][tag][command][body], got %zu", n);
    if (lens[0] != 0) return err_set(err, CIS_EINVAL, "first frame must be the empty delimiter");
    size_t tl = strlen(PROTO_TAG);
    if (lens[1] < 4 || memcmp(frames[1], "CISW", 4) != 0)
        return err_set(err, CIS_EINVAL, "not a cisweep message (tag frame is not CISW<version>)");
    if (lens[1] != tl || memcmp(frames[1], PROTO_TAG, tl) != 0)
        return err_set(err, CIS_EVERSION, "protocol version mismatch: peer speaks %.*s, we speak %s",
                       (int)(lens[1] > 16 ? 16 : lens[1]), (const char *)frames[1], PROTO_TAG);
    proto_cmd cmd = proto_cmd_parse(frames[2], lens[2]);
    if (cmd == PROTO_INVALID)
        return err_set(err, CIS_EINVAL, "unknown command \"%.*s\"", (int)(lens[2] > 32 ? 32 : lens[2]),
                       (const char *)frames[2]);
    if (lens[3] > proto_max_body(cmd))
        return err_set(err, CIS_EINVAL, "%s: body of %zu bytes is over the %zu-byte limit for %s", proto_cmd_name(cmd),
                       lens[3], proto_max_body(cmd), proto_cmd_name(cmd));
    json_error_t je;
    json_t *body = json_loadb(frames[3], lens[3], JSON_REJECT_DUPLICATES, &je);
    if (!body)
        return err_set(err, CIS_EINVAL, "%s: body is not valid JSON (%s at byte %d)", proto_cmd_name(cmd),
                       je.text, je.position);
    if (proto_validate(cmd, body, err)) { json_decref(body); return -1; }
    out->cmd = cmd;
    out->body = body;
    return 0;
}

int proto_recv(void *sock, bool router, int flags, proto_msg *out, cis_err *err) {
    enum { MAXF = 8 };
    zmq_msg_t parts[MAXF];
    size_t nparts = 0, total = 0;
    int more = 1, rc = 1;
    out->peer[0] = 0;
    out->peer_len = 0;
    out->cmd = PROTO_INVALID;
    out->body = NULL;
    out->nbytes = 0;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, nparts == 0 ? flags : 0) < 0) {
            int e = errno;
            zmq_msg_close(&m);
            for (size_t i = 0; i < nparts; i++) zmq_msg_close(&parts[i]);
            if (nparts == 0 && (e == EAGAIN || e == EINTR)) return 0;
            return err_set(err, CIS_EIO, "receive failed: %s", zmq_strerror(e));
        }
        more = zmq_msg_more(&m);
        out->nbytes += zmq_msg_size(&m);
        total++;
        if (nparts < MAXF) parts[nparts++] = m;
        else zmq_msg_close(&m); /* too many frames: drain the rest, report below */
    }
    size_t first = 0;
    if (router) {
        size_t il = zmq_msg_size(&parts[0]);
        if (il > PROTO_MAX_ID) il = PROTO_MAX_ID;
        memcpy(out->peer, zmq_msg_data(&parts[0]), il);
        out->peer[il] = 0;
        out->peer_len = il;
        first = 1;
    }
    if (total > MAXF) {
        rc = err_set(err, CIS_EINVAL, "too many frames (%zu)", total);
    } else {
        const void *fr[MAXF];
        size_t ln[MAXF];
        for (size_t i = first; i < nparts; i++) {
            fr[i - first] = zmq_msg_data(&parts[i]);
            ln[i - first] = zmq_msg_size(&parts[i]);
        }
        rc = proto_decode(fr, ln, nparts - first, out, err) == 0 ? 1 : -1;
    }
    for (size_t i = 0; i < nparts; i++) zmq_msg_close(&parts[i]);
    return rc;
}

int proto_send(void *sock, const char *peer, size_t peer_len, proto_cmd cmd, json_t *body, int flags,
               cis_err *err) {
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    const char *b = text ? text : "{}";
    const char *name = proto_cmd_name(cmd);
    int rc = 0;
    if (peer && zmq_send(sock, peer, peer_len, ZMQ_SNDMORE | flags) < 0) goto fail;
    if (zmq_send(sock, "", 0, ZMQ_SNDMORE | flags) < 0) goto fail;
    if (zmq_send(sock, PROTO_TAG, strlen(PROTO_TAG), ZMQ_SNDMORE | flags) < 0) goto fail;
    if (zmq_send(sock, name, strlen(name), ZMQ_SNDMORE | flags) < 0) goto fail;
    if (zmq_send(sock, b, strlen(b), flags) < 0) goto fail;
    free(text);
    return 0;
fail:
    rc = err_set(err, errno == EHOSTUNREACH ? CIS_ESTATE : CIS_EIO, "send %s%s%.*s failed: %s", name,
                 peer ? " to " : "", peer ? (int)peer_len : 0, peer ? peer : "", zmq_strerror(errno));
    free(text);
    return rc;
}

/* ---- getters ----------------------------------------------------------------------------- */
long long proto_int(json_t *body, const char *key, long long dflt) {
    json_t *v = json_object_get(body, key);
    return json_is_integer(v) ? json_integer_value(v) : dflt;
}
double proto_num(json_t *body, const char *key, double dflt) {
    json_t *v = json_object_get(body, key);
    return json_is_number(v) ? json_number_value(v) : dflt;
}
const char *proto_str(json_t *body, const char *key, const char *dflt) {
    json_t *v = json_object_get(body, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}
bool proto_bool(json_t *body, const char *key, bool dflt) {
    json_t *v = json_object_get(body, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}
