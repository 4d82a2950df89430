/* The CPU backend's element-wise ops (rmsnorm, residual add + rmsnorm, SwiGLU) spread over the
 * thread pool. Each row (rmsnorm) or element (SwiGLU) keeps the arithmetic of the serial loop,
 * so the results do not depend on the thread count or on how the rows are split: the exact mode
 * stays bit-identical. They used to run on the calling thread alone while the other threads
 * slept: ~9 % of the CPU samples of a 64-request batch
 * (bench/results/cpu_profile_bf16_batch64.txt), about twice that share of the wall time on 2 cores.
 *
 * SwiGLU has two element kernels: the exact one, g / (1 + e^-g) * u with llmrt's own exp
 * (exp_exact.h: within 1 ulp of e^x, the same bits in its scalar, AVX2 and AVX-512 versions, so
 * on every ISA and batch shape; the default mode), and where a vector one exists for the ISA
 * (llmrt_cpu_swiglu_fast_for), a float polynomial exp, used only in the approximate matmul modes
 * (bf16, int8), which already trade bit-exactness for speed. The exact kernel used libm's expf
 * one element at a time until the AVX2 version: ~4 % of a 64-request fp32 batch's CPU samples. */
#ifndef LLMRT_BACKEND_CPU_ELEMENTWISE_H
#define LLMRT_BACKEND_CPU_ELEMENTWISE_H

#include <stdint.h>

#include "../../core/thread_pool.h"

/* out[i] = gate[i] / (1 + exp(-gate[i])) * up[i] for i < n */
typedef void (*llmrt_cpu_swiglu_fn)(float *out, const float *gate, const float *up, int64_t n);

/* The exact element kernel: the portable one (one element at a time), and the one for `isa`
 * (the AVX-512 kernel for "avx512", the AVX2 one for "avx2", else the portable one), with the
 * same bits. */
void llmrt_cpu_swiglu_exact(float *out, const float *gate, const float *up, int64_t n);
llmrt_cpu_swiglu_fn llmrt_cpu_swiglu_exact_for(const char *isa);
void llmrt_cpu_swiglu_exact_avx2(float *out, const float *gate, const float *up, int64_t n);
void llmrt_cpu_swiglu_exact_avx512(float *out, const float *gate, const float *up, int64_t n);

/* The vector kernel of `isa` ("avx512"; the CPU must support it), NULL where there is none.
 * Accuracy: relative error below 1e-6 of the fp64 value (measured 1.6e-7), or absolute below
 * 1e-35 where silu is that small (gate < -80), tested over gates in [-100, 100] in
 * tests/unit/test_cpu_elementwise.c; a NaN gate or up gives NaN. */
llmrt_cpu_swiglu_fn llmrt_cpu_swiglu_fast_for(const char *isa);
void llmrt_cpu_swiglu_avx512(float *out, const float *gate, const float *up, int64_t n);

/* rmsnorm of 4 rows of D floats, ld = D apart (out may equal x), with the serial loop's bits:
 * the 4 sums of squares side by side (each in k order; every product is exact in double), the
 * outputs w * (x * inv) 8 at a time. */
typedef void (*llmrt_cpu_rmsnorm4_fn)(float *out, const float *x, const float *w, int64_t D,
                                      float eps);

/* The kernel for `isa` (AVX2 for "avx2" and "avx512"), NULL where rows go one at a time. */
llmrt_cpu_rmsnorm4_fn llmrt_cpu_rmsnorm4_for(const char *isa);
void llmrt_cpu_rmsnorm4_avx2(float *out, const float *x, const float *w, int64_t D, float eps);
/* its sums alone (tested against the serial sums directly, where another order would show) */
void llmrt_cpu_sumsq4_avx2(double ss[4], const float *x, int64_t ld, int64_t D);

/* out[t] = w * x[t] / sqrt(mean(x[t]^2) + eps) for the T rows of D floats (sum of squares in
 * double, in order; rms4: NULL or llmrt_cpu_rmsnorm4_for's kernel, the same bits). out may equal
 * x. */
void llmrt_cpu_rmsnorm_rows(llmrt_thread_pool *pool, llmrt_cpu_rmsnorm4_fn rms4, float *out,
                            const float *x, const float *w, int64_t T, int64_t D, float eps);

/* x[t] += delta[t], then out[t] = rmsnorm(x[t]) as above, for the T rows of D floats. */
void llmrt_cpu_add_rmsnorm_rows(llmrt_thread_pool *pool, llmrt_cpu_rmsnorm4_fn rms4, float *x,
                                const float *delta, float *out, const float *w, int64_t T,
                                int64_t D, float eps);

/* x[i] += delta[i] for the T rows of D floats. */
void llmrt_cpu_add_rows(llmrt_thread_pool *pool, float *x, const float *delta, int64_t T,
                        int64_t D);

/* out[t] = swiglu(gate[t], up[t]) for the T rows of F floats with the element kernel `fn`. */
void llmrt_cpu_swiglu_rows(llmrt_thread_pool *pool, llmrt_cpu_swiglu_fn fn, float *out,
                           const float *gate, const float *up, int64_t T, int64_t F);

#endif
