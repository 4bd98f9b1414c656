/* test_protocol.c - the wire protocol: round trips of every command over real ZeroMQ sockets
 * (inproc ROUTER/DEALER pair), and rejection of malformed frames with a message that says what
 * was wrong. */
#include "tests/testlib.h"
#include "common/protocol.h"
#include "common/prefix_key.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define SHA64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static int decode_frames(const char **fr, size_t n, proto_msg *m, cis_err *e) {
    const void *f[8];
    size_t l[8];
    for (size_t i = 0; i < n; i++) { f[i] = fr[i]; l[i] = strlen(fr[i]); }
    return proto_decode(f, l, n, m, e);
}

static void expect_reject(const char *cmd, const char *body, const char *needle) {
    const char *fr[4] = {"", PROTO_TAG, cmd, body};
    proto_msg m = {0};
    cis_err e = {0};
    int rc = decode_frames(fr, 4, &m, &e);
    CHECK_MSG(rc == -1, "%s %s accepted", cmd, body);
    CHECK_MSG(strstr(e.msg, needle) != NULL, "%s %s: message \"%s\" lacks \"%s\"", cmd, body, e.msg, needle);
    proto_msg_clear(&m);
}

/* issue 13, defect 5: a frame's size is capped by its command (a heartbeat is bytes, a result
 * kilobytes), so one peer cannot make the coordinator parse megabytes per message */
static void body_size_capped_by_command(void) {
    size_t n = 100 << 10;
    char *big = malloc(n + 64);
    snprintf(big, n + 64, "{\"pad\":\"");
    size_t k = strlen(big);
    memset(big + k, 'x', n);
    snprintf(big + k + n, 64, "\"}");
    expect_reject("HEARTBEAT", big, "over the 81920-byte limit for HEARTBEAT");
    expect_reject("HELLO", big, "over the 65536-byte limit for HELLO");
    free(big);
    CHECK(proto_max_body(PROTO_RESULT) == PROTO_MAX_BODY);
    CHECK(proto_max_body(PROTO_FAILED) < PROTO_MAX_BODY && proto_max_body(PROTO_HEARTBEAT) < proto_max_body(PROTO_FAILED));
    /* HELLO.spooled entries are job references */
    expect_reject("HELLO", "{\"worker\":\"w\",\"host\":\"h\",\"device\":\"c\",\"version\":\"0\",\"spooled\":[3]}",
                  "spooled[0]");
    expect_reject("HELLO", "{\"worker\":\"w\",\"host\":\"h\",\"device\":\"c\",\"version\":\"0\",\"spooled\":[{\"job\":0,\"attempt\":1}]}",
                  "job");
}

static void valid_messages_decode(void) {
    const char *ok[][2] = {
        {"HELLO", "{\"worker\":\"h/cpu/1\",\"host\":\"h\",\"device\":\"cpu\",\"version\":\"0.1.0\",\"running\":null,"
                  "\"held\":[{\"job\":3,\"attempt\":1}]}"},
        {"WELCOME", "{\"heartbeat_ms\":1000,\"liveness\":5}"},
        {"READY", "{\"slots\":2}"},
        {"JOB", "{\"job\":1,\"attempt\":2,\"model\":\"m\",\"composition\":[],\"lease_ms\":30000}"},
        {"HEARTBEAT", "{}"},
        {"HEARTBEAT", "{\"job\":1,\"attempt\":1,\"progress\":0.5}"},
        {"RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{\"mmlu\":0.6,\"ppl\":\"inf\",\"x\":null},\"run_ms\":5}"},
        {"RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{},\"stages\":[]}"},
        {"RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{},\"stages\":[{\"stage\":1,\"method\":\"test_scale\","
                   "\"params\":{\"factor\":0.5},\"of_stage\":1,\"category\":\"test\",\"recompress\":false,\"seed\":3,"
                   "\"record\":{\"n\":1},\"phases_s\":{\"scale\":0.1},\"wall_ms\":4},{\"stage\":2,\"method\":\"wanda\","
                   "\"params\":{},\"recompress\":true,\"future_field\":1}]}"},
        {"FAILED", "{\"job\":1,\"attempt\":1,\"error\":\"boom\",\"retryable\":false}"},
        {"PREEMPTED", "{\"job\":1,\"attempt\":1}"},
        {"ACK", "{\"job\":1,\"attempt\":1,\"of\":\"RESULT\"}"},
        {"CANCEL", "{\"job\":1,\"attempt\":1,\"reason\":\"x\"}"},
        {"RECONNECT", "{}"},
        {"BYE", "{\"reason\":\"signal\",\"unknown_future_field\":1}"},
        /* the results epoch guard: a worker's epoch, a coordinator's final refusal */
        {"HELLO", "{\"worker\":\"w\",\"host\":\"h\",\"device\":\"cpu\",\"version\":\"0\",\"results_epoch\":7}"},
        {"BYE", "{\"reason\":\"results epoch 6 of worker\",\"final\":true}"},
        {"HELLO", "{\"worker\":\"w\",\"host\":\"h\",\"device\":\"cpu\",\"version\":\"0\",\"slots\":2,"
                  "\"spooled\":[{\"job\":4,\"attempt\":2}]}"},
        /* the prefix snapshots a worker holds (common/prefix_key.h) */
        {"READY", "{\"slots\":1,\"prefixes\":[\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]}"},
        {"HEARTBEAT", "{\"prefixes\":[]}"},
        {"RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{},\"prefixes\":[\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"]}"},
        /* a prerequisite job's published files (worker/prereq.c) */
        {"RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{},\"artifacts\":[{\"key\":\"0123456789abcdef\",\"kind\":\"memit_mom2\","
                   "\"path\":\"objects/01/0123456789abcdef\",\"sha256\":\"" SHA64 "\",\"bytes\":4096,\"layer\":3}]}"},
        {"RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{},\"artifacts\":[]}"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        const char *fr[4] = {"", PROTO_TAG, ok[i][0], ok[i][1]};
        proto_msg m = {0};
        cis_err e = {0};
        int rc = decode_frames(fr, 4, &m, &e);
        CHECK_MSG(rc == 0, "%s %s rejected: %s", ok[i][0], ok[i][1], e.msg);
        if (rc == 0) CHECK_EQ_STR(proto_cmd_name(m.cmd), ok[i][0]);
        proto_msg_clear(&m);
    }
}

static void malformed_frames_rejected(void) {
    proto_msg m = {0};
    cis_err e = {0};
    const char *two[2] = {"", PROTO_TAG};
    CHECK(decode_frames(two, 2, &m, &e) == -1 && strstr(e.msg, "expected 4 frames"));
    const char *nodelim[4] = {"x", PROTO_TAG, "READY", "{}"};
    CHECK(decode_frames(nodelim, 4, &m, &e) == -1 && strstr(e.msg, "empty delimiter"));
    const char *foreign[4] = {"", "HTTP", "READY", "{}"};
    CHECK(decode_frames(foreign, 4, &m, &e) == -1 && strstr(e.msg, "not a cisweep message"));
    const char *ver[4] = {"", "CISW2", "READY", "{}"};
    CHECK(decode_frames(ver, 4, &m, &e) == -1 && e.code == CIS_EVERSION && strstr(e.msg, "CISW2") && strstr(e.msg, PROTO_TAG));
    expect_reject("NOPE", "{}", "unknown command");
    expect_reject("READY", "{not json", "not valid JSON");
    expect_reject("READY", "[]", "must be a JSON object");
    expect_reject("READY", "{\"slots\":0}", "\"slots\" must be a positive integer");
    expect_reject("READY", "{\"slots\":1,\"slots\":2}", "not valid JSON"); /* duplicate keys */
    expect_reject("HELLO", "{\"host\":\"h\",\"device\":\"cpu\",\"version\":\"v\"}", "missing field \"worker\"");
    expect_reject("HELLO", "{\"worker\":\"\",\"host\":\"h\",\"device\":\"cpu\",\"version\":\"v\"}", "\"worker\" must be 1..");
    expect_reject("HELLO", "{\"worker\":\"w\",\"host\":\"h\",\"device\":\"cpu\",\"version\":\"v\",\"held\":[1]}", "held[0]");
    expect_reject("JOB", "{\"job\":0,\"attempt\":1,\"model\":\"m\",\"composition\":[],\"lease_ms\":1}", "\"job\" must be a positive integer");
    expect_reject("JOB", "{\"job\":1,\"attempt\":1,\"model\":\"m\",\"composition\":{},\"lease_ms\":1}", "\"composition\" must be an array");
    expect_reject("HEARTBEAT", "{\"progress\":1.5}", "progress");
    expect_reject("HEARTBEAT", "{\"job\":3}", "go together");
    expect_reject("READY", "{\"prefixes\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}", "field \"prefixes\" must be an array");
    expect_reject("READY", "{\"prefixes\":[7]}", "READY: prefixes[0] must be a prefix key (64 lowercase hex");
    expect_reject("RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{},\"prefixes\":[\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\",\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0\"]}",
                  "RESULT: prefixes[1] must be a prefix key");
    expect_reject("HELLO", "{\"worker\":\"w\",\"host\":\"h\",\"device\":\"cpu\",\"version\":\"v\",\"prefixes\":{}}",
                  "HELLO: field \"prefixes\" must be an array");
    expect_reject("HELLO", "{\"worker\":\"w\",\"host\":\"h\",\"device\":\"cpu\",\"version\":\"v\",\"results_epoch\":\"7\"}",
                  "HELLO: field \"results_epoch\" must be an integer");
    expect_reject("BYE", "{\"reason\":\"x\",\"final\":1}", "BYE: field \"final\" must be a boolean");
    expect_reject("HEARTBEAT", "{\"prefixes\":[\"0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF\"]}", "HEARTBEAT: prefixes[0] must be a prefix key");
    {   /* more keys than a message may list */
        char *many = xstrdup("{\"prefixes\":[");
        for (int i = 0; i <= PREFIX_MAX_ADVERT; i++) {
            char *t = xasprintf("%s%s\"%s\"", many, i ? "," : "", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
            free(many);
            many = t;
        }
        char *body = xasprintf("%s]}", many);
        expect_reject("READY", body, "lists more than 64 keys");
        free(many);
        free(body);
    }
    expect_reject("RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{\"a\":\"text\"}}", "metric \"a\"");
    expect_reject("RESULT", "{\"job\":1,\"attempt\":-2,\"rows\":{}}", "\"attempt\" must be a positive integer");
#define ART(fields) "{\"job\":1,\"attempt\":1,\"rows\":{},\"artifacts\":[{" fields "}]}"
#define GOOD_KEY "\"key\":\"0123456789abcdef\",\"kind\":\"memit_mom2\","
#define GOOD_SHA "\"sha256\":\"" SHA64 "\",\"bytes\":1"
    expect_reject("RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{},\"artifacts\":{}}", "field \"artifacts\" must be an array");
    expect_reject("RESULT", "{\"job\":1,\"attempt\":1,\"rows\":{},\"artifacts\":[1]}", "RESULT: artifacts[0] must be an object");
    expect_reject("RESULT", ART(GOOD_KEY GOOD_SHA), "RESULT: artifacts[0]: missing field \"path\"");
    expect_reject("RESULT", ART("\"key\":\"0123456789ABCDEF\",\"kind\":\"k\",\"path\":\"p\"," GOOD_SHA),
                  "artifacts[0]: field \"key\" must be 16-128 lowercase hex");
    expect_reject("RESULT", ART("\"key\":\"0123456789abcdef\",\"kind\":\"Mom 2\",\"path\":\"p\"," GOOD_SHA),
                  "artifacts[0]: field \"kind\" must be 1..64 of [a-z0-9_]");
    expect_reject("RESULT", ART(GOOD_KEY "\"path\":\"/etc/passwd\"," GOOD_SHA), "field \"path\" must be 1..1024 bytes relative");
    expect_reject("RESULT", ART(GOOD_KEY "\"path\":\"objects/../../x\"," GOOD_SHA), "no \"..\"");
    expect_reject("RESULT", ART(GOOD_KEY "\"path\":\"..\"," GOOD_SHA), "no \"..\"");
    expect_reject("RESULT", ART(GOOD_KEY "\"path\":\"p\",\"sha256\":\"abc\",\"bytes\":1"),
                  "field \"sha256\" must be 64 lowercase hex");
    expect_reject("RESULT", ART(GOOD_KEY "\"path\":\"p\",\"sha256\":\"" SHA64 "\",\"bytes\":-1"), "field \"bytes\" must be >= 0");
    {   /* more artifacts than a statistics job has layers */
        char *many = xstrdup("{\"job\":1,\"attempt\":1,\"rows\":{},\"artifacts\":[");
        for (int i = 0; i <= PROTO_MAX_ARTIFACTS; i++) {
            char *t = xasprintf("%s%s{" GOOD_KEY "\"path\":\"p\"," GOOD_SHA "}", many, i ? "," : "");
            free(many);
            many = t;
        }
        char *body = xasprintf("%s]}", many);
        expect_reject("RESULT", body, "lists more than 64 artifacts");
        free(many);
        free(body);
    }
#define RES(stages) "{\"job\":1,\"attempt\":1,\"rows\":{},\"stages\":" stages "}"
    expect_reject("RESULT", RES("{}"), "field \"stages\" must be an array");
    expect_reject("RESULT", RES("[7]"), "RESULT: stages[0] must be an object");
    expect_reject("RESULT", RES("[{\"stage\":1,\"method\":\"m\"}]"), "RESULT: stages[0]: missing field \"params\"");
    expect_reject("RESULT", RES("[{\"stage\":1,\"method\":\"m\",\"params\":[]}]"),
                  "RESULT: stages[0]: field \"params\" must be an object");
    expect_reject("RESULT", RES("[{\"stage\":1,\"method\":\"m\",\"params\":{},\"record\":\"x\"}]"),
                  "stages[0]: field \"record\" must be an object");
    expect_reject("RESULT", RES("[{\"stage\":2,\"method\":\"m\",\"params\":{}}]"), "field \"stage\" must be 1");
    expect_reject("RESULT", RES("[{\"stage\":1,\"method\":\"\",\"params\":{}}]"), "\"method\" must be 1..64 bytes");
    expect_reject("RESULT", RES("[{\"stage\":1,\"method\":\"m\",\"params\":{},\"wall_ms\":-1}]"), "must be >= 0");
    expect_reject("RESULT", RES("[{\"stage\":1,\"method\":\"m\",\"params\":{},\"seed\":1.5}]"),
                  "field \"seed\" must be an integer");
    {   /* more stages than a plan can have */
        char *many = xstrdup("[");
        for (int i = 1; i <= PROTO_MAX_STAGES + 1; i++) {
            char *t = xasprintf("%s%s{\"stage\":%d,\"method\":\"m\",\"params\":{}}", many, i > 1 ? "," : "", i);
            free(many);
            many = t;
        }
        char *body = xasprintf("{\"job\":1,\"attempt\":1,\"rows\":{},\"stages\":%s]}", many);
        expect_reject("RESULT", body, "more than 129 stages");
        free(body);
        free(many);
    }
#undef RES
    expect_reject("FAILED", "{\"job\":1,\"attempt\":1}", "missing field \"error\"");
    expect_reject("ACK", "{\"job\":1,\"attempt\":1,\"of\":\"JOB\"}", "\"of\" must be");
    /* a body that is not UTF-8 */
    expect_reject("READY", "{\"a\":\"\xff\xfe\"}", "not valid JSON");
}

static void round_trip_over_zeromq(void) {
    void *ctx = zmq_ctx_new();
    void *r = zmq_socket(ctx, ZMQ_ROUTER), *d = zmq_socket(ctx, ZMQ_DEALER);
    CHECK(zmq_bind(r, "inproc://proto-test") == 0);
    zmq_setsockopt(d, ZMQ_ROUTING_ID, "w1", 2);
    CHECK(zmq_connect(d, "inproc://proto-test") == 0);
    cis_err e = {0};
    json_t *rows = json_object();
    json_object_set_new(rows, "acc", proto_metric_value(0.25));
    json_object_set_new(rows, "ppl", proto_metric_value(1.0 / 0.0));
    json_t *b = json_pack("{s:I,s:i,s:o}", "job", (json_int_t)42, "attempt", 3, "rows", rows);
    CHECK(proto_send(d, NULL, 0, PROTO_RESULT, b, 0, &e) == 0);
    json_decref(b);
    proto_msg m = {0};
    CHECK(proto_recv(r, true, 0, &m, &e) == 1);
    CHECK_EQ_STR(m.peer, "w1");
    CHECK(m.cmd == PROTO_RESULT);
    CHECK_EQ_INT(proto_int(m.body, "job", 0), 42);
    double v = 0;
    CHECK(proto_metric_parse(json_object_get(json_object_get(m.body, "rows"), "ppl"), &v) == 0 && isinf(v));
    proto_msg_clear(&m);
    /* reply routed by peer id */
    json_t *ack = json_pack("{s:i,s:i,s:s}", "job", 42, "attempt", 3, "of", "RESULT");
    CHECK(proto_send(r, "w1", 2, PROTO_ACK, ack, 0, &e) == 0);
    json_decref(ack);
    CHECK(proto_recv(d, false, 0, &m, &e) == 1 && m.cmd == PROTO_ACK);
    proto_msg_clear(&m);
    /* nothing waiting */
    CHECK(proto_recv(d, false, ZMQ_DONTWAIT, &m, &e) == 0);
    /* a malformed multipart message is consumed whole and reported */
    zmq_send(d, "", 0, ZMQ_SNDMORE);
    zmq_send(d, "junk", 4, 0);
    CHECK(proto_recv(r, true, 0, &m, &e) == -1 && strstr(e.msg, "expected 4 frames"));
    CHECK_EQ_STR(m.peer, "w1");
    /* and the next good one still decodes */
    CHECK(proto_send(d, NULL, 0, PROTO_READY, NULL, 0, &e) == 0);
    CHECK(proto_recv(r, true, 0, &m, &e) == 1 && m.cmd == PROTO_READY);
    proto_msg_clear(&m);
    /* too many frames */
    for (int i = 0; i < 12; i++) zmq_send(d, "x", 1, i < 11 ? ZMQ_SNDMORE : 0);
    CHECK(proto_recv(r, true, 0, &m, &e) == -1 && strstr(e.msg, "too many frames"));
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(d);
    zmq_close(r);
    zmq_ctx_term(ctx);
}

static void random_frames_never_crash(void) {
    unsigned seed = 12345;
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        char buf[4][64];
        const void *f[4];
        size_t l[4];
        size_t n = 1 + (seed = seed * 1103515245 + 12345) % 4;
        for (size_t i = 0; i < n; i++) {
            l[i] = (seed = seed * 1103515245 + 12345) % 64;
            for (size_t k = 0; k < l[i]; k++) buf[i][k] = (char)((seed = seed * 1103515245 + 12345) >> 16);
            f[i] = buf[i];
        }
        if (it % 3 == 0 && n == 4) { l[0] = 0; memcpy(buf[1], PROTO_TAG, 5); l[1] = 5; memcpy(buf[2], "READY", 5); l[2] = 5; }
        proto_msg m = {0};
        cis_err e = {0};
        if (proto_decode(f, l, n, &m, &e) == 0) accepted++;
        else CHECK(e.msg[0] != 0);
        proto_msg_clear(&m);
    }
    CHECK(accepted < 100);
}

int main(void) {
    RUN(valid_messages_decode);
    RUN(body_size_capped_by_command);
    RUN(malformed_frames_rejected);
    RUN(round_trip_over_zeromq);
    RUN(random_frames_never_crash);
    return test_summary();
}
