/* The CPU backend's bf16 matmul: weights rounded to bf16 (bf16 checkpoints as stored; f32 and
 * f16 ones rounded to nearest even at load) times activations rounded to bf16, with the pair dot
 * products of AVX512-BF16 (vdpbf16ps) accumulating in fp32. Used only when the model's params ask
 * for it (llmrt_model_params.activation_dtype = BF16 on the CPU) and the CPU has AVX512-BF16;
 * otherwise every weight runs the exact fp32 path.
 *
 * Weights are repacked at load into panels of 32 rows (two zmm of fp32 lanes, one lane per
 * weight row), k in pairs: a broadcast pair of a token's activations meets 32 rows at once, so a
 * register tile of up to LLMRT_CPU_BF16_MR tokens x 32 rows needs no horizontal sums. Panel p,
 * pair q (columns 2q, 2q + 1) is 64 bf16 at data + (p * (kp / 2) + q) * 64, element 2r + h being
 * W[32p + r][2q + h]; rows past N and the column past an odd K are zero.
 *
 * Arithmetic: every output is one fp32 lane, accumulated pair by pair in k order (vdpbf16ps:
 * acc += x[2q+1] w[2q+1], then acc += x[2q] w[2q]; bf16 products are exact in fp32), so its bits
 * do not depend on the tile, the batch or the thread count: a token's result depends on no other
 * token. Error vs fp32 math over the same weights: the activations' bf16 rounding,
 * |x - bf16(x)| <= 2^-8 |x|; for f32/f16 weights their rounding as well (the same bound). */
#ifndef LLMRT_BACKEND_CPU_BF16_GEMM_H
#define LLMRT_BACKEND_CPU_BF16_GEMM_H

#include <stdint.h>

#include "../../core/error.h"
#include "../../format/dtype.h"

#define LLMRT_CPU_BF16_PANEL 32 /* weight rows per panel: two zmm of fp32 lanes */
#define LLMRT_CPU_BF16_MR    14 /* most tokens per register tile (14 x 2 accumulators) */

typedef struct llmrt_cpu_bf16w {
    int64_t rows;   /* N */
    int64_t cols;   /* K */
    int64_t kp;     /* K rounded up to even: the activations' row stride too */
    uint16_t *data; /* [ceil(N / 32)][kp / 2][32][2], 64-byte aligned */
} llmrt_cpu_bf16w;

/* Repacks rows [N, K] of an f32, f16 or bf16 matrix (the returned panels own their memory; free
 * with llmrt_cpu_bf16w_free). */
llmrt_status llmrt_cpu_bf16w_pack(llmrt_dtype dtype, const void *rows, int64_t N, int64_t K,
                                  llmrt_cpu_bf16w *out, llmrt_error *err);
void llmrt_cpu_bf16w_free(llmrt_cpu_bf16w *w);

typedef struct llmrt_cpu_bf16_kernels {
    const char *isa; /* NULL: none on this CPU */
    /* x [M, K] fp32 -> xb [M, kp] bf16 (round to nearest even; the column past an odd K is 0) */
    void (*to_bf16)(uint16_t *xb, const float *x, int64_t M, int64_t K, int64_t kp);
    /* out [M, ldo] (columns 0 .. n_rows - 1) = xb [M, kp] · W[n0 .. n0 + n_rows)ᵀ: out[t * ldo + r]
     * is row n0 + r of W times token t; n0 a multiple of 32, the rows within W. */
    void (*gemm)(float *out, int64_t ldo, const uint16_t *xb, int64_t M, const llmrt_cpu_bf16w *w,
                 int64_t n0, int n_rows);
} llmrt_cpu_bf16_kernels;

/* The kernels when `isa` is "avx512" and the CPU has AVX512-BF16, else isa == NULL. */
llmrt_cpu_bf16_kernels llmrt_cpu_bf16_kernels_for(const char *isa);
llmrt_cpu_bf16_kernels llmrt_cpu_bf16_kernels_avx512(void);

#endif
