/* cuda_api.h - the C face of the CUDA backend (worker/engine/cuda/, built only where nvcc exists:
 * the Makefile then defines CISWEEP_CUDA). backend.c calls these two; nothing outside this folder
 * includes a CUDA header. */
#ifndef CISWEEP_ENGINE_CUDA_API_H
#define CISWEEP_ENGINE_CUDA_API_H

#include "worker/engine/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* cuda_device_count: GPUs the CUDA runtime sees (0 without a driver or device); *why (may be
 * NULL) gets the runtime's words when it sees none. */
int cuda_device_count(const char **why);
/* cuda_backend_open: an instance on GPU `index` (a stream, cuBLAS and cuSOLVER handles). NULL with
 * err naming the device when it cannot (no such GPU, out of memory). */
backend *cuda_backend_open(int index, const backend_opts *opts, cis_err *err);

#ifdef __cplusplus
}
#endif

#endif
