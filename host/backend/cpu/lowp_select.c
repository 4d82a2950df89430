/* The choice of the reduced-precision matmul kernels (int8: i8_gemm.h, bf16: bf16_gemm.h) for a
 * kernel set. Baseline x86-64 code: it runs before anything knows what the CPU has. */
#include <string.h>

#include "bf16_gemm.h"
#include "i8_gemm.h"

llmrt_cpu_i8_kernels llmrt_cpu_i8_kernels_for(const char *isa) {
    __builtin_cpu_init();
    int avx512 = isa && strcmp(isa, "avx512") == 0, avx2 = isa && strcmp(isa, "avx2") == 0;
    if (avx512 && __builtin_cpu_supports("avx512vnni")) return llmrt_cpu_i8_kernels_avx512();
    /* AVX-512F implies AVX2: an avx512 kernel set without VNNI takes the AVX2 int8 kernels (F16C,
     * which they need too, is part of the avx2 and avx512 kernel sets' own checks) */
    if ((avx512 || avx2) && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return llmrt_cpu_i8_kernels_avx2();
    if (isa && strcmp(isa, "generic") == 0) return llmrt_cpu_i8_kernels_generic();
    return (llmrt_cpu_i8_kernels){0};
}

llmrt_cpu_bf16_kernels llmrt_cpu_bf16_kernels_for(const char *isa) {
    __builtin_cpu_init();
    if (isa && strcmp(isa, "avx512") == 0 && __builtin_cpu_supports("avx512bf16"))
        return llmrt_cpu_bf16_kernels_avx512();
    return (llmrt_cpu_bf16_kernels){0};
}
