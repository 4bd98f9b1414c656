/* test_calib.c - calibration gathered layer by layer (worker/interventions/calib.c) against a full
 * llama_forward with READ hooks on a tiny random model: the activations at every point A-E of
 * every layer agree (real token rows only, right-padded sequences of different lengths), in one
 * chunk and in chunks of 2 sequences; CALIB_RERUN after changing layer 0 gives the changed model's
 * next-layer input, CALIB_KEEP_OUTPUT the unchanged one's; a peek (a run stopped at its last
 * point) gives a collect's bytes and keeps the kept output; point A by the RMSNorm alone = a hook
 * read; errors and a stop request. */
#include "tests/testlib.h"
#include "tests/worker/eval/eval_fixture.h"
#include "worker/interventions/calib.h"

#include <stdlib.h>

#define NS 3
#define TT 7
static const int32_t LENS[NS] = {7, 4, 5};

static void fill(calib_data *d) {
    calib_data_init(d, NS, TT);
    uint32_t s = 12345;
    for (int i = 0; i < NS * TT; i++) { s = s * 1103515245u + 12345u; d->ids[i] = (int32_t)((s >> 8) % FX_V); }
    memcpy(d->lens, LENS, sizeof LENS);
}

/* reference: forward with READ hooks at every point of every layer: ref[l][p] = [NS*TT, width] */
static float *ref[4][5];
static void reference(llama_model *m, const calib_data *d, int L) {
    llama_hook hooks[4 * 5];
    int n = 0;
    for (int l = 0; l < L; l++)
        for (int p = 0; p < 5; p++) {
            int w = llama_hook_width(m, (llama_hook_point)p);
            free(ref[l][p]);
            ref[l][p] = xcalloc((size_t)NS * TT * w, sizeof(float));
            hooks[n++] = (llama_hook){.layer = l, .point = (llama_hook_point)p, .mode = LLAMA_HOOK_READ, .n_pos = -1,
                                      .read = ref[l][p]};
        }
    llama_batch b = {.B = NS, .T = TT, .ids = d->ids, .lens = d->lens, .n_out = 0};
    cis_err err = {0};
    CHECK_MSG(llama_forward(m, &b, hooks, n, false, NULL, &err) == 0, "%s", err.msg);
}

/* the visit compares each real row with the reference */
typedef struct cmp { int visits, rows; double maxdiff; int next_row[4][5]; } cmp;
static int visit(void *arg, int layer, llama_hook_point p, int first_seq, const float *rows, int n_rows, int width,
                 cis_err *err) {
    cmp *c = arg;
    c->visits++;
    /* which (seq, t) rows this chunk holds: sequences first_seq.. with their lengths, in order */
    int r = 0;
    for (int s = first_seq; s < NS && r < n_rows; s++)
        for (int t = 0; t < LENS[s] && r < n_rows; t++, r++)
            for (int k = 0; k < width; k++) {
                double dlt = fabs((double)rows[(size_t)r * width + k] - ref[layer][p][((size_t)s * TT + t) * width + k]);
                if (dlt > c->maxdiff) c->maxdiff = dlt;
            }
    c->rows += n_rows;
    return 0;
}

/* the stream after layer l (input of l+1) against the reference's point E of layer l: the largest
 * difference relative to the largest reference value (fp32 sums of values in the hundreds) */
static double stream_diff(calib_walk *w, llama_model *m, int l) {
    const float *x = calib_walk_stream(w);
    int D = llama_hook_width(m, LLAMA_HOOK_E);
    double md = 0, scale = 1;
    for (int s = 0; s < NS; s++)
        for (int t = 0; t < LENS[s]; t++)
            for (int k = 0; k < D; k++) {
                size_t i = ((size_t)s * TT + t) * D + k;
                double dlt = fabs((double)x[i] - ref[l][LLAMA_HOOK_E][i]);
                if (dlt > md) md = dlt;
                if (fabs(ref[l][LLAMA_HOOK_E][i]) > scale) scale = fabs(ref[l][LLAMA_HOOK_E][i]);
            }
    return md / scale;
}

static void walk_all(int chunk) {
    llama_model *m = fx_model_random(21, 64);
    calib_data d;
    fill(&d);
    reference(m, &d, 2);
    calib_walk *w = NULL;
    cis_err err = {0};
    CHECK_MSG(calib_walk_new(m, &d, chunk, NULL, &w, &err) == 0, "%s", err.msg);
    if (!w) { calib_data_clear(&d); llama_model_free(&m); return; }
    llama_hook_point all[5] = {LLAMA_HOOK_A, LLAMA_HOOK_B, LLAMA_HOOK_C, LLAMA_HOOK_D, LLAMA_HOOK_E};
    cmp c = {0};
    for (int l = 0; l < 2; l++) {
        CHECK_EQ_INT(calib_walk_layer(w), l);
        CHECK_MSG(calib_walk_collect(w, all, 5, visit, &c, &err) == 0, "%s", err.msg);
        CHECK_MSG(calib_walk_next(w, l == 0 ? CALIB_RERUN : CALIB_KEEP_OUTPUT, &err) == 0, "%s", err.msg);
        CHECK(stream_diff(w, m, l) < 1e-6);
    }
    int chunks = (NS + (chunk > 0 ? chunk : NS) - 1) / (chunk > 0 ? chunk : NS);
    CHECK_EQ_INT(c.visits, 2 * 5 * chunks);
    CHECK_EQ_INT(c.rows, 2 * 5 * (7 + 4 + 5));
    CHECK_MSG(c.maxdiff < 1e-5, "max |walk - forward| = %g", c.maxdiff);
    CHECK_EQ_INT(calib_walk_layer(w), 2);
    CHECK_EQ_INT(calib_walk_collect(w, all, 1, visit, &c, &err), -1); /* past the last layer */
    CHECK_MSG(strstr(err.msg, "every layer was passed"), "%s", err.msg);
    calib_walk_destroy(&w);
    calib_walk_destroy(&w); /* idempotent */
    calib_data_clear(&d);
    llama_model_free(&m);
}

static void test_matches_forward_one_chunk(void) { walk_all(0); }
static void test_matches_forward_in_chunks(void) { walk_all(2); }

static void test_rerun_sees_the_change_keep_does_not(void) {
    llama_model *m = fx_model_random(22, 64);
    calib_data d;
    fill(&d);
    reference(m, &d, 2); /* the unchanged model */
    cis_err err = {0};
    calib_walk *keep = NULL, *rerun = NULL;
    CHECK_EQ_INT(calib_walk_new(m, &d, 0, NULL, &keep, &err), 0);
    CHECK_EQ_INT(calib_walk_new(m, &d, 2, NULL, &rerun, &err), 0);
    CHECK_EQ_INT(calib_walk_collect(keep, NULL, 0, NULL, NULL, &err), 0); /* output only */
    CHECK_EQ_INT(calib_walk_collect(rerun, NULL, 0, NULL, NULL, &err), 0);
    /* change layer 0 between the collect and the move on */
    float *down = fx_param(m, "model.layers.0.mlp.down_proj.weight");
    for (int i = 0; i < 16 * 24; i++) down[i] *= -3.0f;
    CHECK_EQ_INT(calib_walk_next(keep, CALIB_KEEP_OUTPUT, &err), 0);
    CHECK_EQ_INT(calib_walk_next(rerun, CALIB_RERUN, &err), 0);
    CHECK(stream_diff(keep, m, 0) < 1e-6);   /* the input layer 1 had before the change */
    CHECK(stream_diff(rerun, m, 0) > 1e-3);  /* not that ... */
    reference(m, &d, 2);                     /* ... but the changed model's */
    CHECK_MSG(stream_diff(rerun, m, 0) < 1e-6, "%g", stream_diff(rerun, m, 0));
    /* KEEP_OUTPUT needs a collect on the current layer */
    CHECK_EQ_INT(calib_walk_next(keep, CALIB_KEEP_OUTPUT, &err), -1);
    CHECK_MSG(strstr(err.msg, "no collect ran on layer 1"), "%s", err.msg);
    calib_walk_destroy(&keep);
    calib_walk_destroy(&rerun);
    calib_data_clear(&d);
    llama_model_free(&m);
}

/* the real token rows of two streams are the same bytes */
static bool same_stream(const calib_walk *a, const calib_walk *b, int D) {
    for (int s = 0; s < NS; s++)
        if (memcmp(calib_walk_stream(a) + (size_t)s * TT * D, calib_walk_stream(b) + (size_t)s * TT * D,
                   (size_t)LENS[s] * D * sizeof(float)))
            return false;
    return true;
}

/* visits appended to one buffer */
typedef struct appender { float *buf; size_t n; int visits; } appender;
static int append_visit(void *arg, int layer, llama_hook_point p, int first_seq, const float *rows, int n_rows,
                        int width, cis_err *err) {
    appender *a = arg;
    memcpy(a->buf + a->n, rows, (size_t)n_rows * width * sizeof(float));
    a->n += (size_t)n_rows * width;
    a->visits++;
    return 0;
}

/* peek (AWQ's candidate passes, the GPTQ / Wanda / SparseGPT passes): on a changed layer, the
 * activations through the last point asked are the bytes a collect gives, whether the run stops
 * there or (calib_set_full_runs) runs the whole layer; the kept output stays the first collect's
 * (the original layer's), a peek without a collect leaves it unset; point E or no point refused */
static void test_peek(void) {
    llama_model *m = fx_model_random(24, 64);
    calib_data d;
    fill(&d);
    cis_err err = {0};
    size_t cap = (size_t)NS * TT * 256;
    appender a = {.buf = xmalloc(cap * sizeof(float))}, b = {.buf = xmalloc(cap * sizeof(float))};
    int D = llama_model_config(m)->hidden_size;
    float *q = fx_param(m, "model.layers.0.self_attn.q_proj.weight"), *down = fx_param(m, "model.layers.0.mlp.down_proj.weight");
    const int nq = 16 * 16, nd = 16 * 24;
    float *q0 = xmalloc(nq * sizeof(float)), *d0 = xmalloc(nd * sizeof(float));
    memcpy(q0, q, nq * sizeof(float));
    memcpy(d0, down, nd * sizeof(float));
    const llama_hook_point all[4] = {LLAMA_HOOK_A, LLAMA_HOOK_B, LLAMA_HOOK_C, LLAMA_HOOK_D}, pb = LLAMA_HOOK_B;
    for (int full = 0; full <= 1; full++) {
        calib_set_full_runs(full);
        calib_walk *w = NULL, *ref_w = NULL, *col = NULL, *fresh = NULL;
        CHECK_EQ_INT(calib_walk_new(m, &d, 2, NULL, &w, &err), 0);
        CHECK_EQ_INT(calib_walk_new(m, &d, 2, NULL, &ref_w, &err), 0);
        CHECK_EQ_INT(calib_walk_new(m, &d, 2, NULL, &col, &err), 0);
        CHECK_EQ_INT(calib_walk_new(m, &d, 2, NULL, &fresh, &err), 0);
        CHECK_EQ_INT(calib_walk_collect(w, NULL, 0, NULL, NULL, &err), 0); /* the original layer's output */
        CHECK_EQ_INT(calib_walk_collect(ref_w, NULL, 0, NULL, NULL, &err), 0);
        for (int i = 0; i < nq; i++) q[i] *= -2.0f;   /* changes B onwards */
        for (int i = 0; i < nd; i++) down[i] *= -3.0f; /* changes the output */
        for (int n = 1; n <= 4; n += 3) {            /* B alone; A..D */
            const llama_hook_point *pts = n == 1 ? &pb : all;
            a.n = b.n = 0;
            a.visits = b.visits = 0;
            CHECK_MSG(calib_walk_peek(w, pts, n, append_visit, &a, &err) == 0, "%s", err.msg);
            CHECK_MSG(calib_walk_collect(col, pts, n, append_visit, &b, &err) == 0, "%s", err.msg);
            CHECK_EQ_INT(a.visits, 2 * n);
            CHECK_MSG(a.n == b.n && a.n > 0 && memcmp(a.buf, b.buf, a.n * sizeof(float)) == 0,
                      "full=%d n=%d: peek and collect differ", full, n);
        }
        memcpy(q, q0, nq * sizeof(float));
        memcpy(down, d0, nd * sizeof(float));
        CHECK_EQ_INT(calib_walk_next(w, CALIB_KEEP_OUTPUT, &err), 0);
        CHECK_EQ_INT(calib_walk_next(ref_w, CALIB_KEEP_OUTPUT, &err), 0);
        CHECK_EQ_INT(calib_walk_next(col, CALIB_KEEP_OUTPUT, &err), 0);
        CHECK(same_stream(w, ref_w, D));    /* the kept output is the original layer's ... */
        CHECK(!same_stream(col, ref_w, D)); /* ... which a collect on the changed layer would have replaced */
        /* a peek sets no output */
        CHECK_EQ_INT(calib_walk_peek(fresh, &pb, 1, append_visit, &a, &err), 0);
        CHECK_EQ_INT(calib_walk_next(fresh, CALIB_KEEP_OUTPUT, &err), -1);
        CHECK_MSG(strstr(err.msg, "no collect ran on layer 0"), "%s", err.msg);
        llama_hook_point pe = LLAMA_HOOK_E;
        CHECK_EQ_INT(calib_walk_peek(fresh, &pe, 1, append_visit, &a, &err), -1);
        CHECK_MSG(strstr(err.msg, "not one of A..D"), "%s", err.msg);
        CHECK_EQ_INT(calib_walk_peek(fresh, all, 0, append_visit, &a, &err), -1);
        CHECK_MSG(strstr(err.msg, "expected 1..5 hook points"), "%s", err.msg);
        calib_walk_destroy(&w);
        calib_walk_destroy(&ref_w);
        calib_walk_destroy(&col);
        calib_walk_destroy(&fresh);
    }
    calib_set_full_runs(false);
    free(a.buf);
    free(b.buf);
    free(q0);
    free(d0);
    calib_data_clear(&d);
    llama_model_free(&m);
}

/* GPTQ's q/k/v pass: point A by the RMSNorm alone gives the bytes a hook read in the layer gives,
 * chunk by chunk, on every layer (padded sequences of different lengths) */
static void test_norm_in_matches_hook_a(void) {
    llama_model *m = fx_model_random(25, 64);
    int D = llama_model_config(m)->hidden_size;
    calib_data d;
    fill(&d);
    cis_err err = {0};
    calib_walk *w = NULL;
    size_t cap = (size_t)NS * TT * D;
    appender a = {.buf = xmalloc(cap * sizeof(float))}, b = {.buf = xmalloc(cap * sizeof(float))};
    CHECK_EQ_INT(calib_walk_new(m, &d, 2, NULL, &w, &err), 0);
    llama_hook_point pa = LLAMA_HOOK_A;
    for (int l = 0; l < 2; l++) {
        a.n = b.n = 0;
        a.visits = b.visits = 0;
        CHECK_MSG(calib_walk_collect_norm_in(w, append_visit, &b, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(calib_walk_next(w, CALIB_KEEP_OUTPUT, &err), -1); /* no layer output */
        CHECK_MSG(calib_walk_collect(w, &pa, 1, append_visit, &a, &err) == 0, "%s", err.msg);
        CHECK_EQ_INT(a.visits, 2);
        CHECK_EQ_INT(b.visits, 2);
        CHECK_EQ_INT((int)b.n, (7 + 4 + 5) * D);
        CHECK((int)a.n == (int)b.n && memcmp(a.buf, b.buf, a.n * sizeof(float)) == 0);
        CHECK_EQ_INT(calib_walk_next(w, CALIB_RERUN, &err), 0);
    }
    CHECK_EQ_INT(calib_walk_collect_norm_in(w, append_visit, &b, &err), -1);
    CHECK_MSG(strstr(err.msg, "every layer was passed"), "%s", err.msg);
    calib_walk_destroy(&w);
    free(a.buf);
    free(b.buf);
    calib_data_clear(&d);
    llama_model_free(&m);
}

static bool always(void *arg) { (void)arg; return true; }
static int failing_visit(void *arg, int layer, llama_hook_point p, int first_seq, const float *rows, int n_rows,
                         int width, cis_err *err) {
    return err_set(err, CIS_EINVAL, "visit refused layer %d", layer);
}

static void test_errors_and_stop(void) {
    llama_model *m = fx_model_random(23, 64);
    calib_data d;
    fill(&d);
    cis_err err = {0};
    calib_walk *w = NULL;
    d.ids[3] = FX_V + 5; /* outside the vocabulary */
    CHECK_EQ_INT(calib_walk_new(m, &d, 0, NULL, &w, &err), -1);
    CHECK(w == NULL);
    CHECK_MSG(strstr(err.msg, "calibration") && strstr(err.msg, "outside"), "%s", err.msg);
    d.ids[3] = 1;
    interv_ctx ctx = {.stop_fn = always};
    CHECK_EQ_INT(calib_walk_new(m, &d, 1, &ctx, &w, &err), 0);
    llama_hook_point pa = LLAMA_HOOK_A, twice[2] = {LLAMA_HOOK_B, LLAMA_HOOK_B};
    CHECK_EQ_INT(calib_walk_collect(w, &pa, 1, visit, NULL, &err), -1);
    CHECK_EQ_INT(err.code, CIS_ECANCEL);
    ctx.stop_fn = NULL;
    CHECK_EQ_INT(calib_walk_collect(w, twice, 2, visit, NULL, &err), -1);
    CHECK_MSG(strstr(err.msg, "twice"), "%s", err.msg);
    CHECK_EQ_INT(calib_walk_collect(w, &pa, 1, failing_visit, NULL, &err), -1);
    CHECK_EQ_STR(err.msg, "visit refused layer 0");
    calib_walk_destroy(&w);
    calib_data_clear(&d);
    llama_model_free(&m);
}

int main(void) {
    RUN(test_matches_forward_one_chunk);
    RUN(test_matches_forward_in_chunks);
    RUN(test_rerun_sees_the_change_keep_does_not);
    RUN(test_peek);
    RUN(test_norm_in_matches_hook_a);
    RUN(test_errors_and_stop);
    for (int l = 0; l < 4; l++) for (int p = 0; p < 5; p++) free(ref[l][p]);
    return test_summary();
}
