#include <cpuid.h>
#include <string.h>

#include "cpu_kernels.h"

static int have_avx512(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

/* F16C (CPUID.1:ECX bit 29) is not a feature name every compiler's __builtin_cpu_supports knows */
static int have_f16c(void) {
    unsigned eax, ebx, ecx, edx;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
}

static int have_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && have_f16c();
}

llmrt_cpu_kernels llmrt_cpu_kernels_select(const char *force) {
    __builtin_cpu_init();
    if (force && strcmp(force, "generic") == 0) return llmrt_cpu_kernels_generic();
    if (force && strcmp(force, "avx2") == 0)
        return have_avx2() ? llmrt_cpu_kernels_avx2() : llmrt_cpu_kernels_generic();
    if (have_avx512()) return llmrt_cpu_kernels_avx512();
    if (have_avx2()) return llmrt_cpu_kernels_avx2();
    return llmrt_cpu_kernels_generic();
}
