/* test_reference_tool.c - our side of the independent reference-forward tests.
 *
 * With no arguments it runs a few unit checks of the batch interface those tests rely on (a
 * right-padded batch equals the sequences run alone; asking for some rows equals asking for all;
 * bad token ids and bad rows are refused). With arguments it is the tool that
 * tests/worker/engine/test_reference.py and tests/gpu/test_transformers_parity.py drive, so that
 * the comparison with NumPy / transformers goes through exactly llama_model_load + llama_forward:
 *   logits MODEL_DIR [-t THREADS] [--all-rows] SEQ [SEQ...]
 *        SEQ is a comma-separated list of token ids. All SEQs run as ONE right-padded batch
 *        (B = number of SEQs, T = the longest, lens = their lengths). Prints one line per valid
 *        row (b, t < lens[b]): "b t l0 l1 ... l{V-1}" with the logits in %.9g (fp32 exactly).
 *        The rows are asked for through out_b/out_t, or all B*T rows with --all-rows.
 *   init-save CONFIG_JSON OUT_DIR SEED DTYPE [MAX_SHARD_BYTES]
 *        a model of CONFIG_JSON with llama_model_init_random(SEED), written by checkpoint_save
 *        in DTYPE (F32, F16, BF16) to OUT_DIR.
 * Tool errors go to stderr as "error: <message>" with exit status 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testlib.h"
#include "common/util.h"
#include "worker/engine/checkpoint.h"
#include "worker/engine/config.h"
#include "worker/engine/model.h"

static int tool_fail(const char *msg) {
    fprintf(stderr, "error: %s\n", msg);
    return 1;
}

/* parse "1,2,3" into a malloc'd array; -1 on anything that is not a list of ints >= 0 */
static int parse_seq(const char *s, int32_t **out, int *n) {
    int cap = 8, k = 0;
    int32_t *v = xmalloc((size_t)cap * sizeof *v);
    const char *p = s;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 0 || x > INT32_MAX || (*end && *end != ',')) { free(v); return -1; }
        if (k == cap) { cap *= 2; v = xrealloc(v, (size_t)cap * sizeof *v); }
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (k == 0) { free(v); return -1; }
    *out = v;
    *n = k;
    return 0;
}

static int tool_logits(int argc, char **argv) {
    if (argc < 2) return tool_fail("usage: logits MODEL_DIR [-t THREADS] [--all-rows] SEQ [SEQ...]");
    const char *dir = argv[0];
    int threads = 1, all_rows = 0, B = 0;
    int32_t **seqs = xcalloc((size_t)argc, sizeof *seqs);
    int *lens = xcalloc((size_t)argc, sizeof *lens);
    int rc = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) { threads = atoi(argv[++i]); continue; }
        if (!strcmp(argv[i], "--all-rows")) { all_rows = 1; continue; }
        if (parse_seq(argv[i], &seqs[B], &lens[B])) {
            fprintf(stderr, "error: \"%s\" is not a comma-separated list of token ids\n", argv[i]);
            goto out;
        }
        B++;
    }
    if (B == 0) { tool_fail("no sequence given"); goto out; }
    cis_err err = {0};
    llama_config cfg;
    if (checkpoint_dir_load_config(dir, &cfg, &err)) { tool_fail(err.msg); goto out; }
    backend *be = backend_open("cpu", &(backend_opts){.threads = threads}, &err);
    llama_model *m = be ? llama_model_new(&cfg, be, &err) : NULL;
    if (!m) { tool_fail(err.msg); backend_close(&be); goto out; }
    llama_model_own_backend(m);
    if (llama_model_load(m, dir, &err)) { tool_fail(err.msg); llama_model_free(&m); goto out; }
    int T = 0, nvalid = 0;
    for (int b = 0; b < B; b++) { if (lens[b] > T) T = lens[b]; nvalid += lens[b]; }
    int V = cfg.vocab_size;
    int32_t *ids = xcalloc((size_t)B * T, sizeof *ids), *lb = xmalloc((size_t)B * sizeof *lb);
    int32_t *ob = xmalloc((size_t)nvalid * sizeof *ob), *ot = xmalloc((size_t)nvalid * sizeof *ot);
    int k = 0;
    for (int b = 0; b < B; b++) {
        lb[b] = lens[b];
        memcpy(ids + (size_t)b * T, seqs[b], (size_t)lens[b] * sizeof *ids);
        for (int t = 0; t < lens[b]; t++) { ob[k] = b; ot[k] = t; k++; }
    }
    int nrows = all_rows ? B * T : nvalid;
    float *logits = xmalloc((size_t)nrows * V * sizeof *logits);
    llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lb, .n_out = all_rows ? -1 : nvalid,
                      .out_b = ob, .out_t = ot, .logits = logits};
    if (llama_forward(m, &bt, NULL, 0, false, NULL, &err)) tool_fail(err.msg);
    else {
        for (int r = 0; r < nvalid; r++) {
            int row = all_rows ? ob[r] * T + ot[r] : r;
            printf("%d %d", ob[r], ot[r]);
            for (int j = 0; j < V; j++) printf(" %.9g", logits[(size_t)row * V + j]);
            putchar('\n');
        }
        rc = 0;
    }
    free(ids); free(lb); free(ob); free(ot); free(logits);
    llama_model_free(&m);
out:
    for (int b = 0; b < argc; b++) free(seqs[b]);
    free(seqs);
    free(lens);
    return rc;
}

static int tool_init_save(int argc, char **argv) {
    if (argc < 4 || argc > 5) return tool_fail("usage: init-save CONFIG_JSON OUT_DIR SEED DTYPE [MAX_SHARD_BYTES]");
    cis_err err = {0};
    llama_config cfg;
    if (llama_config_load(argv[0], &cfg, &err)) return tool_fail(err.msg);
    llama_model *m = llama_model_new(&cfg, NULL, &err);
    if (!m) return tool_fail(err.msg);
    llama_model_init_random(m, strtoull(argv[2], NULL, 10));
    int n;
    llama_param *p = llama_model_params(m, &n);
    size_t shard = argc == 5 ? strtoull(argv[4], NULL, 10) : 0;
    int rc = checkpoint_save(argv[1], &cfg, p, (size_t)n, argv[3], shard, &err);
    llama_model_free(&m);
    return rc ? tool_fail(err.msg) : 0;
}

/* ---------------------------------------------------------------- unit checks */

static llama_config tiny_cfg(void) {
    llama_config c;
    memset(&c, 0, sizeof c);
    c.arch = LLAMA_ARCH_LLAMA;
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
    c.vocab_size = 29; c.hidden_size = 16; c.intermediate_size = 24; c.num_hidden_layers = 2;
    c.num_attention_heads = 4; c.num_key_value_heads = 2; c.head_dim = 4; c.max_position_embeddings = 32;
    c.rms_norm_eps = 1e-5f; c.rope_theta = 10000.0f; c.tie_word_embeddings = false;
    c.bos_token_id = 1; c.eos_token_ids[0] = 2; c.n_eos = 1; c.pad_token_id = -1;
    return c;
}

static double rel_err(const float *a, const float *b, size_t n) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs((double)a[i] - b[i])); s = fmax(s, fabs((double)b[i])); }
    return d / (s + 1e-30);
}

/* a right-padded batch (with garbage in the padding) gives each sequence's logits alone */
static void test_padded_equals_alone(void) {
    cis_err err = {0};
    llama_config c = tiny_cfg();
    llama_model *m = llama_model_new(&c, NULL, &err);
    CHECK(m != NULL);
    if (!m) return;
    llama_model_init_random(m, 11);
    const int B = 3, T = 7, V = c.vocab_size;
    int32_t lens[3] = {7, 3, 5};
    int32_t ids[3 * 7];
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)((i * 7 + 3) % V);
    float *all = xmalloc((size_t)B * T * V * sizeof(float)), *one = xmalloc((size_t)T * V * sizeof(float));
    llama_batch bt = {.B = B, .T = T, .ids = ids, .lens = lens, .n_out = -1, .logits = all};
    CHECK_MSG(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == 0, "%s", err.msg);
    for (int b = 0; b < B; b++) {
        llama_batch s = {.B = 1, .T = lens[b], .ids = ids + b * T, .n_out = -1, .logits = one};
        CHECK_MSG(llama_forward(m, &s, NULL, 0, false, NULL, &err) == 0, "%s", err.msg);
        double e = rel_err(all + (size_t)b * T * V, one, (size_t)lens[b] * V);
        CHECK_MSG(e < 1e-6, "row %d: padded vs alone rel err %g", b, e);
    }
    /* some rows through out_b/out_t equal the same rows of the full output */
    int32_t ob[4] = {2, 0, 1, 0}, ot[4] = {4, 6, 0, 0};
    float sel[4 * 29];
    llama_batch bs = {.B = B, .T = T, .ids = ids, .lens = lens, .n_out = 4, .out_b = ob, .out_t = ot, .logits = sel};
    CHECK_MSG(llama_forward(m, &bs, NULL, 0, false, NULL, &err) == 0, "%s", err.msg);
    for (int r = 0; r < 4; r++) {
        double e = rel_err(sel + r * V, all + ((size_t)ob[r] * T + ot[r]) * V, (size_t)V);
        CHECK_MSG(e < 1e-6, "selected row %d: rel err %g", r, e);
    }
    free(all);
    free(one);
    llama_model_free(&m);
}

static void test_bad_batches_refused(void) {
    cis_err err = {0};
    llama_config c = tiny_cfg();
    llama_model *m = llama_model_new(&c, NULL, &err);
    CHECK(m != NULL);
    if (!m) return;
    int32_t ids[4] = {1, 2, 29, 3}; /* 29 == V: out of range */
    float lg[4 * 29];
    llama_batch bt = {.B = 1, .T = 4, .ids = ids, .n_out = -1, .logits = lg};
    err.msg[0] = 0;
    CHECK(llama_forward(m, &bt, NULL, 0, false, NULL, &err) == -1);
    CHECK(err.msg[0] != 0);
    ids[2] = 5;
    int32_t ob[1] = {1}, ot[1] = {0}; /* batch index 1 of a batch of 1 */
    llama_batch bs = {.B = 1, .T = 4, .ids = ids, .n_out = 1, .out_b = ob, .out_t = ot, .logits = lg};
    err.msg[0] = 0;
    CHECK(llama_forward(m, &bs, NULL, 0, false, NULL, &err) == -1);
    CHECK(err.msg[0] != 0);
    llama_model_free(&m);
}

static void test_parse_seq(void) {
    int32_t *v = NULL;
    int n = 0;
    CHECK(parse_seq("4,0,17", &v, &n) == 0 && n == 3 && v[0] == 4 && v[1] == 0 && v[2] == 17);
    free(v);
    CHECK(parse_seq("", &v, &n) == -1);
    CHECK(parse_seq("1,,2", &v, &n) == -1);
    CHECK(parse_seq("1,-2", &v, &n) == -1);
    CHECK(parse_seq("x", &v, &n) == -1);
}

int main(int argc, char **argv) {
    if (argc >= 2) {
        if (!strcmp(argv[1], "logits")) return tool_logits(argc - 2, argv + 2);
        if (!strcmp(argv[1], "init-save")) return tool_init_save(argc - 2, argv + 2);
        return tool_fail("unknown tool command (logits | init-save)");
    }
    RUN(test_parse_seq);
    RUN(test_padded_equals_alone);
    RUN(test_bad_batches_refused);
    return test_summary();
}
