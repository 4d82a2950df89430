/* The CPU backend's inner loops, one set per instruction set, chosen once at start-up by
 * llmrt_cpu_kernels_select(). Every variant computes each output with the same arithmetic no
 * matter how many rows it is given at once (one accumulator per output, k in fixed order), so a
 * token's result never depends on what else is in the batch. */
#ifndef LLMRT_BACKEND_CPU_KERNELS_H
#define LLMRT_BACKEND_CPU_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

/* Rows of W and of x processed together by dot_tile. */
#define LLMRT_CPU_TILE_N 4
#define LLMRT_CPU_TILE_T 4

typedef struct llmrt_cpu_kernels {
    const char *isa; /* "avx512", "avx2" or "generic" */
    /* out[t * ldo + n] = dot(x[t * ldx .. +K], w[n * ldw .. +K]) for t < n_t, n < n_n, with
     * n_t <= LLMRT_CPU_TILE_T and n_n <= LLMRT_CPU_TILE_N. */
    void (*dot_tile)(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                     const float *w, int64_t ldw, int n_n, int64_t K);
    /* rows per dot_tile call of LLMRT_CPU_TILE_T tokens that keep its widest tile whole
     * (<= LLMRT_CPU_TILE_N): callers step through W by it (by LLMRT_CPU_TILE_N for fewer
     * tokens). Any split gives the same bits; this one is the fastest. */
    int tile_rows;
    /* out[t * ldo + n] = dot(x[t * ldx .. +K], w[n * ldw .. +K]) for t < n_t, n < n_n of any
     * size, tiled as suits the ISA: the same bits as dot_tile for every output. NULL where the
     * ISA has none (callers then step through dot_tile). */
    void (*gemm)(float *out, int64_t ldo, const float *x, int64_t ldx, int64_t n_t,
                 const float *w, int64_t ldw, int64_t n_n, int64_t K);
    /* dot_tile over f16 (bf16 false) or bf16 weight rows widened in registers: bit-identical to
     * f16_to_f32 / bf16_to_f32 into a scratch row + dot_tile. NULL where the ISA has none. */
    void (*dot_tile_h)(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                       const uint16_t *w, int64_t ldw, int n_n, int64_t K, bool bf16);
    /* dst[i] = (float)src[i] for fp16 / bf16 sources. */
    void (*f16_to_f32)(float *dst, const uint16_t *src, int64_t n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, int64_t n);
    /* dot product of two fp32 vectors (attention scores) */
    float (*dot)(const float *a, const float *b, int64_t n);
    /* y[i] += a * x[i] (attention P·V) */
    void (*axpy)(float *y, float a, const float *x, int64_t n);
} llmrt_cpu_kernels;

/* Picks the best variant the running CPU supports; `force` ("avx512", "avx2", "generic" or NULL)
 * overrides for tests. Falls back to generic when the forced ISA is missing. */
llmrt_cpu_kernels llmrt_cpu_kernels_select(const char *force);

/* per-ISA tables (those not compiled in return isa == NULL) */
llmrt_cpu_kernels llmrt_cpu_kernels_generic(void);
llmrt_cpu_kernels llmrt_cpu_kernels_avx2(void);
llmrt_cpu_kernels llmrt_cpu_kernels_avx512(void);

#endif
