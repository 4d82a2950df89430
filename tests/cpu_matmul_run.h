/* The CPU backend's matmul alone, shared by the kernel unit tests (test_q4_kernels.c,
 * test_kq_kernels.c, test_kq_q8_kernels.c, test_q8z_kernels.c, test_i8_gemm.c,
 * test_bf16_gemm.c): a backend with a forced ISA path and options, and out = x · Wᵀ through
 * begin_batch + matmul as the forward calls them (T tokens of one sequence). */
#ifndef LLMRT_TEST_CPU_MATMUL_RUN_H
#define LLMRT_TEST_CPU_MATMUL_RUN_H

#include <stdlib.h>

#include "backend/backend.h"
#include "test_util.h"

/* isa: "generic", "avx2", "avx512" or NULL (the best the CPU has); opt may be NULL. NULL when
 * the backend cannot be made (an ISA the CPU lacks is not an error: it falls back). */
static inline llmrt_backend *cpu_test_backend(int threads, const char *isa,
                                              const llmrt_cpu_options *opt) {
    llmrt_backend *be = NULL;
    llmrt_error err = {0};
    if (llmrt_backend_cpu_create_opts(threads, isa, opt, &be, &err) != LLMRT_OK) return NULL;
    float inv = 1.0f;
    be->ops->rope_init(be, &inv, 1, &err);
    return be;
}

/* out[T, N] = x[T, K] · Wᵀ (T >= 1 tokens of one sequence at positions 0..T-1) */
static inline void run_matmul(llmrt_backend *be, const llmrt_bweight *w, const float *x, int32_t T,
                              float *out) {
    int32_t *ids = malloc((size_t)T * 3 * sizeof(int32_t)); /* tokens | positions | seq_of */
    int64_t *slots = malloc((size_t)T * sizeof(int64_t));
    int32_t table[8] = {0}, outs[1] = {0};
    CHECK(ids && slots);
    if (!ids || !slots) {
        free(ids);
        free(slots);
        return;
    }
    for (int32_t t = 0; t < T; t++)
        ids[t] = 0, ids[T + t] = t, ids[2 * T + t] = 0, slots[t] = t;
    llmrt_batch_plan plan = {.n_tokens = T,
                             .tokens = ids,
                             .positions = ids + T,
                             .seq_of = ids + 2 * T,
                             .slots = slots,
                             .n_seqs = 1,
                             .max_blocks = 8,
                             .block_tables = table,
                             .n_outputs = 1,
                             .output_rows = outs};
    llmrt_error err = {0};
    CHECK(be->ops->begin_batch(be, &plan, &err) == LLMRT_OK);
    be->ops->matmul(be, out, x, T, w);
    free(ids);
    free(slots);
}

#endif
