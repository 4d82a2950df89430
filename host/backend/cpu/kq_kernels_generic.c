/* Portable kernels for packed GGUF blocks (kq_kernels.h): the reference dequantisation, then the
 * generic fp32 dot_tile (no fused gemv); and the ISA choice. */
#include <string.h>

#include "../../format/ggml_quants.h"
#include "kq_kernels.h"

static void dequant_row_generic(llmrt_dtype t, float *out, const uint8_t *row, int64_t K) {
    llmrt_ggml_dequant_row(t, row, out, K);
}

llmrt_cpu_kq_kernels llmrt_cpu_kq_kernels_generic(void) {
    return (llmrt_cpu_kq_kernels){.isa = "generic", .dequant_row = dequant_row_generic};
}

llmrt_cpu_kq_kernels llmrt_cpu_kq_kernels_for(const char *isa) {
    llmrt_cpu_kq_kernels k = {0};
    if (isa && strcmp(isa, "avx512") == 0)
        k = llmrt_cpu_kq_kernels_avx512();
    else if (isa && strcmp(isa, "avx2") == 0)
        k = llmrt_cpu_kq_kernels_avx2();
    return k.isa ? k : llmrt_cpu_kq_kernels_generic();
}
