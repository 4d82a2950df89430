/* The CPU backend's bf16 matmul: bf16 weights times activations rounded to bf16, with the pair
 * dot products of AVX512-BF16 (vdpbf16ps) accumulating in fp32. Used only when the model's
 * params ask for bf16 activations (llmrt_model_params.activation_dtype = BF16) and the CPU has
 * AVX512-BF16; otherwise bf16 weights run the exact fp32 path.
 *
 * Arithmetic: every output is one 16-lane fp32 accumulator over k in steps of 32 (a masked load
 * zero-fills the tail), reduced in a fixed order: an output's bits do not depend on the tile or
 * batch it is computed in, so a token's result depends on no other token. Error vs fp32: the
 * activations' bf16 rounding, |x - bf16(x)| <= 2^-8 |x|. */
#ifndef LLMRT_BACKEND_CPU_BF16_GEMM_H
#define LLMRT_BACKEND_CPU_BF16_GEMM_H

#include <stdint.h>

typedef struct llmrt_cpu_bf16_kernels {
    const char *isa; /* NULL: none on this CPU */
    /* dst[i] = bf16(src[i]), round to nearest even */
    void (*to_bf16)(uint16_t *dst, const float *src, int64_t n);
    /* out[t * ldo + n] = dot(x[t * ldx .. +K], w[n * ldw .. +K]) for t < n_t <= 4, n < n_n <= 4 */
    void (*dot_tile)(float *out, int64_t ldo, const uint16_t *x, int64_t ldx, int n_t,
                     const uint16_t *w, int64_t ldw, int n_n, int64_t K);
} llmrt_cpu_bf16_kernels;

/* The kernels when `isa` is "avx512" and the CPU has AVX512-BF16, else isa == NULL. */
llmrt_cpu_bf16_kernels llmrt_cpu_bf16_kernels_for(const char *isa);
llmrt_cpu_bf16_kernels llmrt_cpu_bf16_kernels_avx512(void);

#endif
