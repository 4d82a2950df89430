/* LoRA adapters served per request on the CPU backend (backend.h: lora_table_*, lora_apply).
 * A table holds, per slot, A [r, k] and Bᵀ [r, n] in fp32 (B is stored transposed so the expand
 * step is r contiguous axpys over the outputs). Each row is computed on its own, in a fixed
 * order, by one task: a row's result depends on no other row. */
#ifndef LLMRT_BACKEND_CPU_LORA_CPU_H
#define LLMRT_BACKEND_CPU_LORA_CPU_H

#include "../../core/thread_pool.h"
#include "../backend.h"
#include "cpu_kernels.h"

llmrt_status llmrt_cpu_lora_table_create(int32_t n_slots, int64_t n, int64_t k,
                                         llmrt_blora_table **out, llmrt_error *err);
llmrt_status llmrt_cpu_lora_table_set(llmrt_blora_table *t, int32_t slot, int32_t rank,
                                      const float *a, const float *b, llmrt_error *err);
void         llmrt_cpu_lora_table_destroy(llmrt_blora_table *t);

/* out[t, :] += scale[t] * (x[t, :] · A_sᵀ) · B_sᵀ for rows t < rows with slot[t] = s filled. */
void llmrt_cpu_lora_apply(llmrt_thread_pool *pool, const llmrt_cpu_kernels *k, float *out,
                          const float *x, int64_t rows, const int32_t *slot, const float *scale,
                          const llmrt_blora_table *t);

#endif
