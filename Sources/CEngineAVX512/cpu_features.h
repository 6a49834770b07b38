#ifndef BGEM3_CPU_FEATURES_H
#define BGEM3_CPU_FEATURES_H

// What every AVX-512 loop here needs: AVX-512 F, BW and VL (Zen 4, Zen 5, Intel since Skylake-SP).
static inline int bgem3_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

#endif
