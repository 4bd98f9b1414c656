/* test_model_staged.c - the model's device code paths without a device: a cpu instance marked as
 * not host memory (`host_memory = false`) makes the model stage every caller array through the
 * backend's workspace, download logits / hook reads / hook gradients, load and save checkpoints
 * through a host copy, and copy parameters between backends by download + upload - exactly what
 * it does on cuda. Every result must equal the plain cpu model's bit for bit: forward logits and
 * loss, hooks (READ, ADD, REPLACE at positions, gradients, seeds), backward gradients, AdamW,
 * greedy generation, log-likelihoods, the layer-by-layer driver, checkpoint save/load. */
#include "tests/worker/engine/model_compare.h"

int main(void) {
    host_be = backend_open("cpu", &(backend_opts){.threads = 1}, NULL);
    staged_be = backend_open("cpu", &(backend_opts){.threads = 1}, NULL);
    staged_be->host_memory = false;  // the model must treat its memory as a device's
    cmp_tol = 0;                     // bit for bit
    cmp_tag = "staged";
    model_compare_run();
    backend_close(&host_be);
    backend_close(&staged_be);
    return test_summary();
}
