/* spec_registry.c - the table of known intervention methods: their category, parameters (type,
 * allowed values, defaults) and level parameter. Defaults are the paper's settings for Llama-3-8B
 * (docs/paper.md §1.2-1.4, from the authors' conf/{edit,compression,unlearn}/ yaml files); the level
 * parameter of each compressor is required, since a grid always names it. The CAT_TEST methods
 * are test fixtures, accepted only where allow_test is set (--allow-selftest, and `cisweep apply
 * --allow-test-stages`): `selftest` is the orchestration fixture (issue 2, worker item 5) and
 * `test_scale` a trivial stage that really changes a model (worker/interventions/test_scale.c).
 * Adding a method = adding a row here and an entry in worker/interventions/registry.c (a test
 * checks that the two tables agree; docs/interventions.md). */
#include "common/spec.h"

#include <string.h>

/* big enough for "no upper bound" on counts and sizes, exactly representable as a double */
#define NOMAX 1e15
#define LR_DOC "learning rate"

/* ---- knowledge editors (50 zsRE edits in one batch; runs once per edit set) ---------------- */
static const param_info FT_PARAMS[] = {
    {"layers", PARAM_INT_LIST, "[4,5,6,7,8]", 0, 1023, NULL,
     "decoder layers whose mlp.down_proj is trained (list or \"4-8\"), written for a model of "
     "layers_depth layers", 0},
    {"layers_depth", PARAM_INT, "32", 0, 1023, NULL,
     "the depth the layers list is written for (32 = Llama-3-8B); another model's preset scales the "
     "range to its depth (docs/editing.md); 0 = the list as written", 0},
    {"lr", PARAM_FLOAT, "5e-05", 0, 1, NULL, LR_DOC " (Adam)", PARAM_EXCL_MIN},
    {"steps", PARAM_INT, "25", 1, NOMAX, NULL, "optimisation steps", 0},
    {"norm_constraint", PARAM_FLOAT, "0.0", 0, NOMAX, NULL,
     "0 = none (what the paper ran); eps > 0 clamps each trained weight to within eps of its start", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};
static const param_info MEMIT_PARAMS[] = {
    {"layers", PARAM_INT_LIST, "[4,5,6,7,8]", 0, 1023, NULL,
     "edited layers (mlp.down_proj), written for a model of layers_depth layers", 0},
    {"layers_depth", PARAM_INT, "32", 0, 1023, NULL,
     "the depth the layers list is written for (32 = Llama-3-8B); another model's preset scales the "
     "range to its depth and the loss layer is the model's last (docs/editing.md); 0 = as written", 0},
    {"v_lr", PARAM_FLOAT, "0.5", 0, 100, NULL, "learning rate of the target-value optimisation",
     PARAM_EXCL_MIN},
    {"v_steps", PARAM_INT, "25", 1, NOMAX, NULL, "gradient steps of the value optimisation", 0},
    {"v_weight_decay", PARAM_FLOAT, "0.001", 0, NOMAX, NULL, "weight decay on the value delta", 0},
    {"clamp_norm_factor", PARAM_FLOAT, "4.0", 0, NOMAX, NULL,
     "clamp of the delta norm relative to the original value", PARAM_EXCL_MIN},
    {"kl_factor", PARAM_FLOAT, "0.0625", 0, NOMAX, NULL, "weight of the essence (KL) loss", 0},
    {"mom2_update_weight", PARAM_FLOAT, "15000.0", 0, NOMAX, NULL,
     "weight of the second-moment (covariance) statistics", 0},
    {"mom2_n_samples", PARAM_INT, "100000", 1, NOMAX, NULL,
     "corpus documents the second-moment statistics are computed over (all when fewer)", 0},
    {"value_batch", PARAM_INT, "0", 0, NOMAX, NULL,
     "edits whose value optimisations run together, in one forward + backward per step of the layers "
     "after L* (0 = as many as fit a memory budget; 1 = one at a time through the whole model, the "
     "original path); the same values within float rounding (docs/editing.md)", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};
static const param_info LORA_PARAMS[] = {
    {"type", PARAM_STRING, "\"adalora\"", 0, 0, "adalora|lora",
     "adalora = what the paper ran (peft AdaLoRA, SVD-form adapters B diag(E) A, orthogonality "
     "penalty, the rank allocator never called); lora = plain LoRA (B A)", 0},
    {"rank", PARAM_INT, "12", 1, 4096, NULL,
     "adapter rank: AdaLoRA's init_r (peft ignores r; the yaml's r = 8 and target_r 8 never apply, "
     "so the paper's adapters have rank 12)", 0},
    {"alpha", PARAM_FLOAT, "32.0", 0, NOMAX, NULL, "scaling numerator: scale = alpha/rank (32/12 for "
     "the paper's AdaLoRA)", PARAM_EXCL_MIN},
    {"orth_reg", PARAM_FLOAT, "0.5", 0, NOMAX, NULL,
     "AdaLoRA orthogonality penalty weight (ignored for type lora)", 0},
    {"lr", PARAM_FLOAT, "0.005", 0, 1, NULL, LR_DOC " (Adam)", PARAM_EXCL_MIN},
    {"steps", PARAM_INT, "70", 1, NOMAX, NULL, "optimisation steps", 0},
    {"targets", PARAM_STRING, "\"q_proj,v_proj\"", 0, 0, NULL,
     "comma-separated projection names that get adapters (every layer)", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

/* ---- compressors (simulated: pseudo-quantised / masked weights) ---------------------------- */
static const param_info WANDA_PARAMS[] = {
    {"sparsity", PARAM_FLOAT, NULL, 0, 1, NULL, "fraction of weights pruned per output row",
     PARAM_EXCL_MIN | PARAM_EXCL_MAX},
    {"prune_n", PARAM_INT, "0", 0, 1024, NULL, "n of an n:m mask (0 = unstructured); needs sparsity = n/m", 0},
    {"prune_m", PARAM_INT, "0", 0, 1024, NULL, "m of an n:m mask (0 = unstructured)", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};
static const param_info SPARSEGPT_PARAMS[] = {
    {"sparsity", PARAM_FLOAT, NULL, 0, 1, NULL, "fraction of weights pruned",
     PARAM_EXCL_MIN | PARAM_EXCL_MAX},
    {"prune_n", PARAM_INT, "0", 0, 1024, NULL, "n of an n:m mask (0 = unstructured); needs sparsity = n/m", 0},
    {"prune_m", PARAM_INT, "0", 0, 1024, NULL, "m of an n:m mask (0 = unstructured)", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};
static const param_info GPTQ_PARAMS[] = {
    {"bits", PARAM_INT, NULL, 0, 0, "2|3|4|8", "weight bits (AutoGPTQ's set)", 0},
    {"group_size", PARAM_INT, "128", 1, 1048576, NULL, "quantisation group size (columns)", 0},
    {"desc_act", PARAM_BOOL, "false", 0, 0, NULL, "act order: columns by descending Hessian diagonal", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};
static const param_info AWQ_PARAMS[] = {
    {"bits", PARAM_INT, NULL, 2, 8, NULL, "weight bits (the paper uses 2,3,4,5,6,8)", 0},
    {"group_size", PARAM_INT, "128", 1, 1048576, NULL, "quantisation group size (columns)", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

/* ---- unlearners (WMDP bio + cyber forget corpora, WikiText retain) ------------------------- */
static const param_info RMU_PARAMS[] = {
    {"layer", PARAM_INT, "3", 0, 1023, NULL, "layer whose output activations are steered", 0},
    {"alpha", PARAM_FLOAT, "1000.0", 0, NOMAX, NULL, "retain-loss weight", 0},
    {"steering_coeff", PARAM_FLOAT, "20.0", 0, NOMAX, NULL, "norm of the random control vector",
     PARAM_EXCL_MIN},
    {"lr", PARAM_FLOAT, "5e-05", 0, 1, NULL, LR_DOC " (AdamW)", PARAM_EXCL_MIN},
    {"max_batches", PARAM_INT, "250", 1, NOMAX, NULL,
     "optimisation steps in all, the forget topics alternating (250 as upstream ran; fidelity.md)", 0},
    {"module", PARAM_STRING, "\"o_proj\"", 0, 0, "o_proj|down_proj|q_proj|k_proj|v_proj|gate_proj|up_proj",
     "the parameter updated in the layers at and below `layer` (o_proj: the paper's code; down_proj: WMDP)", 0},
    {"batch_size", PARAM_INT, "4", 1, 4096, NULL, "documents per forget / retain batch", 0},
    {"pad_in_loss", PARAM_BOOL, "true", 0, 0, NULL, "padding positions count in the MSE (upstream)", 0},
    {"use_preset", PARAM_BOOL, "true", 0, 0, NULL,
     "apply the per-model preset: layer scaled from Llama-3-8B's depth, Mistral's layer and module, the tiny "
     "family's coefficient/alpha/lr (docs/unlearning.md); false = every value as given", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};
static const param_info GA_PARAMS[] = {
    {"lr", PARAM_FLOAT, "5e-05", 0, 1, NULL, LR_DOC " (Adam)", PARAM_EXCL_MIN},
    {"train_size", PARAM_INT, "50", 1, NOMAX, NULL, "forget documents used", 0},
    {"batch_size", PARAM_INT, "4", 1, 4096, NULL, "documents per batch", 0},
    {"accum", PARAM_INT, "2", 1, 4096, NULL, "batches per optimizer step (gradient accumulation)", 0},
    {"max_len", PARAM_INT, "1024", 2, NOMAX, NULL,
     "tokens per sequence (padded and truncated to it; capped at the model's positions)", 0},
    {"pad_in_loss", PARAM_BOOL, "true", 0, 0, NULL, "padding positions count in the loss (upstream)", 0},
    {"freeze_lower_half", PARAM_BOOL, "true", 0, 0, NULL,
     "embeddings and the lower half of the layers frozen (upstream: layers 0-15 of 32)", 0},
    {"use_preset", PARAM_BOOL, "true", 0, 0, NULL,
     "apply the per-model preset (the tiny family's lr; docs/unlearning.md); false = every value as given", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};
static const param_info GD_PARAMS[] = {
    {"lr", PARAM_FLOAT, "5e-05", 0, 1, NULL, LR_DOC " (Adam)", PARAM_EXCL_MIN},
    {"train_size", PARAM_INT, "2000", 1, NOMAX, NULL, "forget documents used", 0},
    {"retain_weight", PARAM_FLOAT, "40.0", 0, NOMAX, NULL, "weight of the retain (WikiText) loss", 0},
    {"batch_size", PARAM_INT, "2", 1, 4096, NULL, "documents per batch", 0},
    {"accum", PARAM_INT, "2", 1, 4096, NULL, "batches per optimizer step (gradient accumulation)", 0},
    {"max_len", PARAM_INT, "1024", 2, NOMAX, NULL,
     "tokens per sequence (padded and truncated to it; capped at the model's positions)", 0},
    {"pad_in_loss", PARAM_BOOL, "true", 0, 0, NULL, "padding positions count in the loss (upstream)", 0},
    {"freeze_lower_half", PARAM_BOOL, "true", 0, 0, NULL,
     "embeddings and the lower half of the layers frozen (upstream: layers 0-15 of 32)", 0},
    {"use_preset", PARAM_BOOL, "true", 0, 0, NULL,
     "apply the per-model preset (the tiny family's lr; docs/unlearning.md); false = every value as given", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

/* ---- test fixture ------------------------------------------------------------------------- */
static const param_info SELFTEST_PARAMS[] = {
    {"action", PARAM_STRING, "\"ok\"", 0, 0, "ok|fail|crash|hang|oom|fail_then_ok",
     "what the job does: return rows, fail, crash the worker, hang, allocate past the limit, "
     "or fail the first fail_attempts attempts and then return rows", 0},
    {"sleep_ms", PARAM_INT, "0", 0, NOMAX, NULL, "work time before acting (ms)", 0},
    {"rows", PARAM_JSON, "{\"selftest_metric\":1}", 0, 0, NULL,
     "result rows to return: an object metric -> number", 0},
    {"id", PARAM_INT, "0", 0, NOMAX, NULL, "distinguishes otherwise equal specs", 0},
    {"oom_mb", PARAM_INT, "0", 0, NOMAX, NULL, "for action oom: MiB to allocate", 0},
    {"fail_attempts", PARAM_INT, "1", 0, NOMAX, NULL,
     "for action fail_then_ok: how many first attempts fail", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};
static const param_info TEST_SCALE_PARAMS[] = {
    {"param", PARAM_STRING, "\"model.layers.*.mlp.down_proj.weight\"", 0, 0, NULL,
     "fnmatch(3) glob over the Hugging Face parameter names to scale", 0},
    {"factor", PARAM_FLOAT, "0.5", -1e6, 1e6, NULL, "every matching weight is multiplied by this", 0},
    {"last_layers", PARAM_INT, "0", 0, 1023, NULL,
     "0 = every layer; k > 0 = only parameters of the last k decoder layers (non-layer parameters "
     "always qualify); the per-model preset resolves it into the effective \"layers\" list", 0},
    {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const method_info METHODS[] = {
    {"ft", CAT_EDIT, NULL, FT_PARAMS, "constrained fine-tuning of mlp.down_proj (EasyEdit FT)"},
    {"memit", CAT_EDIT, NULL, MEMIT_PARAMS, "MEMIT mass editing with covariance statistics"},
    {"lora", CAT_EDIT, NULL, LORA_PARAMS, "LoRA (AdaLoRA) edit, adapters merged afterwards"},
    {"wanda", CAT_COMPRESS, "sparsity", WANDA_PARAMS, "Wanda unstructured pruning"},
    {"sparsegpt", CAT_COMPRESS, "sparsity", SPARSEGPT_PARAMS, "SparseGPT unstructured pruning"},
    {"gptq", CAT_COMPRESS, "bits", GPTQ_PARAMS, "GPTQ pseudo-quantisation"},
    {"awq", CAT_COMPRESS, "bits", AWQ_PARAMS, "AWQ pseudo-quantisation (zero-point)"},
    {"rmu", CAT_UNLEARN, NULL, RMU_PARAMS, "RMU representation misdirection unlearning"},
    {"ga", CAT_UNLEARN, NULL, GA_PARAMS, "gradient ascent on the forget corpora"},
    {"gd", CAT_UNLEARN, NULL, GD_PARAMS, "gradient difference (ascent on forget, descent on retain)"},
    {"selftest", CAT_TEST, NULL, SELFTEST_PARAMS, "orchestration test fixture (--allow-selftest)"},
    {"test_scale", CAT_TEST, "factor", TEST_SCALE_PARAMS,
     "test fixture: multiply the matching parameters by factor (--allow-selftest)"},
};
#define N_METHODS (sizeof METHODS / sizeof METHODS[0])

static const char *CAT_NAMES[] = {"edit", "compress", "unlearn", "test"};

const char *category_name(method_category c) {
    return (unsigned)c < 4 ? CAT_NAMES[c] : "?";
}

int category_parse(const char *s) {
    for (int i = 0; s && i < 4; i++)
        if (!strcmp(s, CAT_NAMES[i])) return i;
    return -1;
}

const method_info *method_lookup(const char *name) {
    for (size_t i = 0; name && i < N_METHODS; i++)
        if (!strcmp(METHODS[i].name, name)) return &METHODS[i];
    return NULL;
}

const method_info *method_at(size_t i) {
    return i < N_METHODS ? &METHODS[i] : NULL;
}

/* kept literal (static, thread-safe); tests/common/test_spec.c checks it against the table */
const char *method_names(void) {
    return "ft|memit|lora|wanda|sparsegpt|gptq|awq|rmu|ga|gd|selftest|test_scale";
}

const param_info *param_lookup(const method_info *m, const char *name) {
    for (const param_info *p = m ? m->params : NULL; p && p->name; p++)
        if (!strcmp(p->name, name)) return p;
    return NULL;
}

char *method_param_names(const method_info *m, char *buf, size_t n) {
    size_t off = 0;
    buf[0] = 0;
    for (const param_info *p = m->params; p->name && off < n; p++)
        off += (size_t)snprintf(buf + off, n - off, "%s%s", p == m->params ? "" : "|", p->name);
    return buf;
}
