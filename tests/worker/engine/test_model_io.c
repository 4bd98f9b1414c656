/* test_model_io.c - the model's parameter list goes through the checkpoint helper unchanged:
 * save a random model (fp32 and bf16, tied and untied, sharded) with checkpoint_save, load it into
 * a fresh llama_model with llama_model_load, and get the same weights and logits. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testlib.h"

#include "worker/engine/checkpoint.h"
#include "worker/engine/model.h"

static backend *tbe;  /* one-thread cpu instance shared by the tests' models */


static llama_config cfg(bool tied) {
    llama_config c;
    memset(&c, 0, sizeof c);
    c.arch = LLAMA_ARCH_LLAMA;
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    snprintf(c.model_type, sizeof c.model_type, "llama");
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
    c.vocab_size = 50; c.hidden_size = 16; c.intermediate_size = 40; c.num_hidden_layers = 2;
    c.num_attention_heads = 4; c.num_key_value_heads = 2; c.head_dim = 4; c.max_position_embeddings = 32;
    c.rms_norm_eps = 1e-6f; c.rope_theta = 10000.0f; c.tie_word_embeddings = tied;
    c.bos_token_id = 1; c.eos_token_ids[0] = 2; c.n_eos = 1; c.pad_token_id = -1;
    return c;
}

static void rm_dir(const char *d) {
    char *cmd = xasprintf("rm -rf '%s'", d);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", d);
    free(cmd);
}

static void roundtrip(bool tied, const char *dtype, size_t shard) {
    char tmpl[] = "/tmp/cis_model_io_XXXXXX";
    char *dir = mkdtemp(tmpl);
    CHECK(dir != NULL);
    if (!dir) return;
    cis_err err = {0};
    llama_config c = cfg(tied);
    llama_model *a = llama_model_new(&c, tbe, &err), *b = llama_model_new(&c, tbe, &err);
    CHECK(a && b);
    llama_model_init_random(a, 3);
    int n;
    llama_param *pa = llama_model_params(a, &n);
    int rc = checkpoint_save(dir, &c, pa, (size_t)n, dtype, shard, &err);
    CHECK_MSG(rc == 0, "save: %s", err.msg);
    rc = llama_model_load(b, dir, &err);
    CHECK_MSG(rc == 0, "load: %s", err.msg);
    llama_param *pb = llama_model_params(b, NULL);
    double worst = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < pa[i].shape[0] * pa[i].shape[1]; j++)
            worst = fmax(worst, fabs(pa[i].data[j] - pb[i].data[j]) / (fabs(pa[i].data[j]) + 1e-30));
    double tol = strcmp(dtype, "F32") ? 1.0 / 128 : 0.0;  // bf16 keeps 8 bits of mantissa
    CHECK_MSG(worst <= tol, "%s: weights differ by %g", dtype, worst);
    int32_t ids[6] = {1, 7, 9, 40, 3, 22};
    float la[6 * 50], lb[6 * 50];
    llama_batch bt = {.B = 1, .T = 6, .ids = ids, .n_out = -1, .logits = la};
    CHECK(llama_forward(a, &bt, NULL, 0, false, NULL, &err) == 0);
    bt.logits = lb;
    CHECK(llama_forward(b, &bt, NULL, 0, false, NULL, &err) == 0);
    if (!strcmp(dtype, "F32")) CHECK(memcmp(la, lb, sizeof la) == 0);
    else {
        double d = 0, s = 0;
        for (int i = 0; i < 6 * 50; i++) { d = fmax(d, fabs(la[i] - lb[i])); s = fmax(s, fabs(la[i])); }
        CHECK_MSG(d <= 0.05 * s, "bf16 logits differ by %g of %g", d, s);
    }
    llama_model_free(&a);
    llama_model_free(&b);
    rm_dir(dir);
}

static void test_roundtrip_f32_tied(void) { roundtrip(true, "F32", 0); }
static void test_roundtrip_f32_untied_sharded(void) { roundtrip(false, "F32", 4096); }
static void test_roundtrip_bf16(void) { roundtrip(false, "BF16", 0); }

static void test_load_shape_mismatch(void) {
    char tmpl[] = "/tmp/cis_model_io_XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) { CHECK(0); return; }
    cis_err err = {0};
    llama_config c = cfg(true), c2 = cfg(true);
    c2.intermediate_size = 48;
    llama_model *a = llama_model_new(&c, tbe, &err), *b = llama_model_new(&c2, tbe, &err);
    int n;
    llama_param *pa = llama_model_params(a, &n);
    CHECK(checkpoint_save(dir, &c, pa, (size_t)n, "F32", 0, &err) == 0);
    CHECK(llama_model_load(b, dir, &err) == -1);
    CHECK(strlen(err.msg) > 0);
    llama_model_free(&a);
    llama_model_free(&b);
    rm_dir(dir);
}

int main(void) {
    tbe = backend_open("cpu", &(backend_opts){.threads = 1}, NULL);
    RUN(test_roundtrip_f32_tied);
    RUN(test_roundtrip_f32_untied_sharded);
    RUN(test_roundtrip_bf16);
    RUN(test_load_shape_mismatch);
    return test_summary();
}
