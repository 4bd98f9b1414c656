/* half.h - IEEE fp16 (binary16) and bfloat16 <-> fp32 conversion, one value or whole arrays.
 * Narrowing rounds to nearest, ties to even (what PyTorch/NumPy do); overflow gives +-inf,
 * NaN stays NaN (quiet, sign kept), and subnormals are produced and read exactly. The array
 * forms take pointers of any alignment (safetensors data inside an mmap need not be aligned). */
#ifndef CISWEEP_ENGINE_HALF_H
#define CISWEEP_ENGINE_HALF_H

#include <stddef.h>
#include <stdint.h>

/* single values: bit patterns in uint16_t */
float half_f16_to_f32(uint16_t h);
uint16_t half_f32_to_f16(float f);
float half_bf16_to_f32(uint16_t h);
uint16_t half_f32_to_bf16(float f);

/* arrays of n values; src and dst may be unaligned; they must not overlap. `src` of the
 * *_to_f32 forms points at n little-endian 2-byte values, `dst` of the f32_to_* forms at room
 * for n of them. */
void half_f16_to_f32_n(const void *src, float *dst, size_t n);
void half_f32_to_f16_n(const float *src, void *dst, size_t n);
void half_bf16_to_f32_n(const void *src, float *dst, size_t n);
void half_f32_to_bf16_n(const float *src, void *dst, size_t n);

#endif
