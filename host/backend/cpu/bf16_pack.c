/* Repacking f32 / f16 / bf16 weight rows into the bf16 panels of bf16_gemm.h (at load). */
#include <stdlib.h>
#include <string.h>

#include "../../core/checked_math.h"
#include "../../core/half.h"
#include "bf16_gemm.h"
#include "cpu_memory.h"

static uint16_t to_bf16(llmrt_dtype dtype, const void *rows, int64_t i) {
    if (dtype == LLMRT_DTYPE_BF16) return ((const uint16_t *)rows)[i];
    if (dtype == LLMRT_DTYPE_F16)
        return llmrt_f32_to_bf16(llmrt_f16_to_f32(((const uint16_t *)rows)[i]));
    return llmrt_f32_to_bf16(((const float *)rows)[i]);
}

llmrt_status llmrt_cpu_bf16w_pack(llmrt_dtype dtype, const void *rows, int64_t N, int64_t K,
                                  llmrt_cpu_bf16w *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    if (dtype != LLMRT_DTYPE_F32 && dtype != LLMRT_DTYPE_F16 && dtype != LLMRT_DTYPE_BF16)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "cpu bf16 panels: weight dtype %s",
                         llmrt_dtype_name(dtype));
    const int64_t P = LLMRT_CPU_BF16_PANEL;
    int64_t panels = N / P + (N % P != 0), kp = K + (K & 1);
    uint64_t elems, bytes;
    if (N < 1 || K < 1 || !ck_mul_u64((uint64_t)panels * P, (uint64_t)kp, &elems) ||
        !ck_mul_u64(elems, 2, &bytes) || bytes > (uint64_t)SIZE_MAX / 2)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "cpu bf16 panels: weight of %lld x %lld",
                         (long long)N, (long long)K);
    uint16_t *d = NULL;
    if (!(d = llmrt_cpu_mem_alloc((size_t)bytes)))
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                         "cpu bf16 panels: out of memory (%llu bytes)", (unsigned long long)bytes);
    memset(d, 0, (size_t)bytes);
    for (int64_t n = 0; n < N; n++) {
        uint16_t *panel = d + (n / P) * (kp / 2) * 2 * P + (n % P) * 2;
        for (int64_t k = 0; k < K; k++)
            panel[(k / 2) * 2 * P + (k & 1)] = to_bf16(dtype, rows, n * K + k);
    }
    *out = (llmrt_cpu_bf16w){.rows = N, .cols = K, .kp = kp, .data = d};
    return LLMRT_OK;
}

void llmrt_cpu_bf16w_free(llmrt_cpu_bf16w *w) {
    llmrt_cpu_mem_free(w->data);
    memset(w, 0, sizeof *w);
}
