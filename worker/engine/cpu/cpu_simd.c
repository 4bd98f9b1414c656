/* cpu_simd.c - which width the cpu backend's elementwise kernels run at: 8 lanes (cpu_avx2.c,
 * compiled for AVX2 and chosen at run time) where the CPU has AVX2, else 4 (the portable GCC
 * vector-extension code). Both widths give the same bits for every input (each element sees the
 * same operations in the same order, and reductions keep the 4-lane summation order); the 4-lane
 * path stays callable for the tests that prove it and the benchmarks that compare the two.
 * CISWEEP_CPU_LANES=4 in the environment forces the 4-lane path (=8 asks for 8, granted only
 * where the CPU has AVX2); any other value is refused with a warning naming the variable. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "worker/engine/cpu/cpu_ops.h"

static int g_lanes;  // 0 until first asked; then 4 or 8 (relaxed atomics: every racer computes the same)

bool cpu_simd_has_avx2(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

static int lanes_from_env(void) {
    int hw = cpu_simd_has_avx2() ? 8 : 4;
    const char *e = getenv("CISWEEP_CPU_LANES");
    if (!e || !*e) return hw;
    if (strcmp(e, "4") == 0) return 4;
    if (strcmp(e, "8") == 0) {
        if (hw != 8) LOG_W("CISWEEP_CPU_LANES=8: this CPU has no AVX2; using 4 lanes");
        return hw;
    }
    LOG_W("CISWEEP_CPU_LANES='%s': expected 4 or 8; using %d lanes", e, hw);
    return hw;
}

int cpu_simd_lanes(void) {
    int l = __atomic_load_n(&g_lanes, __ATOMIC_RELAXED);
    if (l) return l;
    l = lanes_from_env();
    __atomic_store_n(&g_lanes, l, __ATOMIC_RELAXED);
    return l;
}

int cpu_simd_set_lanes(int lanes) {
    if (lanes != 4 && lanes != 8) lanes = 0;                 // back to the default
    if (lanes == 8 && !cpu_simd_has_avx2()) lanes = 4;
    __atomic_store_n(&g_lanes, lanes ? lanes : lanes_from_env(), __ATOMIC_RELAXED);
    return cpu_simd_lanes();
}
