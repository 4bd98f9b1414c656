/* test_model_device.c - the whole model on a GPU ("cuda:0") against the cpu backend: the same
 * random weights (copied across backends), then forward logits and loss, hooks (READ, ADD,
 * REPLACE at positions, gradients, seeds), backward gradients, an AdamW step, greedy generation,
 * log-likelihoods, the layer-by-layer driver and checkpoint save/load must agree within fp32
 * tolerance (relative 1e-4 of each output's scale; generated tokens exactly). Skipped, visibly,
 * where the build has no CUDA or no GPU answers; `make test-gpu` runs it on the GPU machine. */
#include "tests/worker/engine/model_compare.h"

int main(void) {
    cis_err e = {0};
    host_be = backend_open("cpu", &(backend_opts){.threads = 1}, NULL);
    staged_be = backend_device_ok("cuda:0", &e) ? backend_open("cuda:0", NULL, &e) : NULL;
    if (!staged_be) {
        printf("ok - model_on_cuda # SKIP %s\n", e.msg);
        backend_close(&host_be);
        return 0;
    }
    cmp_tol = 1e-4;  // fp32 on another device: relative 1e-4 of each output's scale
    cmp_tag = "device";
    model_compare_run();
    backend_close(&host_be);
    backend_close(&staged_be);
    return test_summary();
}
