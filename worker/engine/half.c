/* half.c - fp16/bf16 <-> fp32 by bit manipulation (no compiler _Float16 needed, so results do
 * not depend on the compiler or the CPU's F16C support). Little-endian hosts only, like the rest
 * of the engine (safetensors is little-endian on disk). */
#include "worker/engine/half.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "half.c assumes a little-endian host"
#endif

#include <pthread.h>
#include <string.h>

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float half_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f)                       /* inf / nan: keep the payload's top bits */
        return bits_f32(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        /* subnormal: value = man * 2^-24, exact in fp32 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t half_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t exp = (u >> 23) & 0xffu;
    uint32_t man = u & 0x7fffffu;
    if (exp == 0xff) {                     /* inf or nan */
        if (man == 0) return sign | 0x7c00u;
        return sign | 0x7e00u | (uint16_t)(man >> 13); /* quiet nan, payload's top bits */
    }
    int e = (int)exp - 127 + 15;           /* rebiased exponent */
    if (e >= 0x1f) return sign | 0x7c00u;  /* too big even before rounding */
    if (e <= 0) {
        /* result is subnormal (or zero): shift the full significand right */
        if (e < -10) return sign;          /* below half the smallest subnormal: rounds to 0 */
        uint32_t m = man | 0x800000u;      /* implicit 1 */
        int shift = 14 - e;                /* 14..24 */
        uint32_t q = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1u);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) q++;
        return sign | (uint16_t)q;         /* q may carry into the exponent: still right */
    }
    uint32_t q = ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (q & 1u))) q++; /* may carry up to inf: right */
    return sign | (uint16_t)q;
}

float half_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t half_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)   /* nan: keep it nan after truncation */
        return (uint16_t)((u >> 16) | 0x0040u);
    uint32_t lsb = (u >> 16) & 1u;
    u += 0x7fffu + lsb;                    /* round to nearest even; overflow goes to inf */
    return (uint16_t)(u >> 16);
}

/* the array forms read and write 2-byte values with memcpy (an unaligned load/store the compiler
 * vectorises); fp16 -> fp32 goes through a 64K-entry table built once. */
static float f16_table[65536];
static pthread_once_t f16_once = PTHREAD_ONCE_INIT;
static void f16_table_init(void) {
    for (uint32_t h = 0; h < 65536; h++) f16_table[h] = half_f16_to_f32((uint16_t)h);
}

void half_f16_to_f32_n(const void *src, float *dst, size_t n) {
    pthread_once(&f16_once, f16_table_init);
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        dst[i] = f16_table[h];
    }
}

void half_f32_to_f16_n(const float *src, void *dst, size_t n) {
    unsigned char *p = dst;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = half_f32_to_f16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}

void half_bf16_to_f32_n(const void *src, float *dst, size_t n) {
    const unsigned char *p = src;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        uint32_t u = (uint32_t)h << 16;
        memcpy(&dst[i], &u, 4);
    }
}

void half_f32_to_bf16_n(const float *src, void *dst, size_t n) {
    unsigned char *p = dst;
    for (size_t i = 0; i < n; i++) {
        uint16_t h = half_f32_to_bf16(src[i]);
        memcpy(p + 2 * i, &h, 2);
    }
}
