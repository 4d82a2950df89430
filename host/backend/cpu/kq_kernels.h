/* The CPU backend's kernels for GGUF blocks kept packed in the file's own layout
 * (format/ggml_quants.h): Q5_0, Q5_1, the K-quants Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, and the internal
 * Q8_Z of 8-bit GPTQ (format/dtype.h; act-order ones read x gathered by the backend). The weights
 * are read in place (from the file mapping, or a row-permuted copy for Q and K), a row being
 * K / block consecutive blocks.
 *
 * Arithmetic: every weight is dequantised to fp32 by the reference formula (bit-identical to
 * llmrt_ggml_dequant_block: the SIMD versions keep its rounding steps, no fused multiply-add),
 * and the dot products run with the accumulation order of the ISA's fp32 dot_tile
 * (cpu_kernels.h). So an output is bit-identical whether it comes from the fused small-T kernel
 * (gemv: a block of 4 rows dequantised into an L1 buffer, then multiplied with up to 4 tokens'
 * activations), from dequant_row + dot_tile (prefill) or from the fp32 weights the loader makes
 * under dequantize_weights: results never depend on the batch, the thread count or the path.
 * Q2_K and Q3_K take the buffered path on every ISA (SIMD dequantisation on AVX-512, the scalar
 * reference on AVX2 and generic); the other types have fused register kernels on AVX-512
 * (kq_kernels_avx512.c). */
#ifndef LLMRT_BACKEND_CPU_KQ_KERNELS_H
#define LLMRT_BACKEND_CPU_KQ_KERNELS_H

#include <stdint.h>

#include "../../format/dtype.h"

typedef struct llmrt_cpu_kq_kernels {
    const char *isa;
    /* out[k] = W[row][k] for k < K (a multiple of the type's block); row points at its first
     * block. */
    void (*dequant_row)(llmrt_dtype t, float *out, const uint8_t *row, int64_t K);
    /* out[t * ldo + r] = dot(x[t * ldx .. +K], W[r]) for t < n_t <= 4, r < n_n <= 4, rows at
     * w + r * row_bytes; bit-identical to dequant_row + dot_tile. NULL: none (generic). */
    void (*gemv)(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                 const uint8_t *w, int64_t row_bytes, int n_n, int64_t K);
} llmrt_cpu_kq_kernels;

/* The variant matching the fp32 kernels' isa ("avx512", "avx2", "generic"). */
llmrt_cpu_kq_kernels llmrt_cpu_kq_kernels_for(const char *isa);

llmrt_cpu_kq_kernels llmrt_cpu_kq_kernels_generic(void);
llmrt_cpu_kq_kernels llmrt_cpu_kq_kernels_avx2(void);
llmrt_cpu_kq_kernels llmrt_cpu_kq_kernels_avx512(void);

#endif
