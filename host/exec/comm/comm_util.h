/* Helpers the CPU communicators share: element access in fp32 for the dtypes a collective takes,
 * the monotonic clock, and the checks every entry point makes. */
#ifndef LLMRT_COMM_UTIL_H
#define LLMRT_COMM_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "../../core/half.h"
#include "comm.h"

/* Element i of buf (F32, F16 or BF16) as fp32: halves are summed in fp32 and rounded once. */
static inline float llmrt_comm_load(const void *buf, llmrt_dtype t, int64_t i) {
    switch (t) {
    case LLMRT_DTYPE_F16: return llmrt_f16_to_f32(((const uint16_t *)buf)[i]);
    case LLMRT_DTYPE_BF16: return llmrt_bf16_to_f32(((const uint16_t *)buf)[i]);
    default: return ((const float *)buf)[i];
    }
}

static inline void llmrt_comm_store(void *buf, llmrt_dtype t, int64_t i, float v) {
    switch (t) {
    case LLMRT_DTYPE_F16: ((uint16_t *)buf)[i] = llmrt_f32_to_f16(v); break;
    case LLMRT_DTYPE_BF16: ((uint16_t *)buf)[i] = llmrt_f32_to_bf16(v); break;
    default: ((float *)buf)[i] = v; break;
    }
}

static inline bool llmrt_comm_dtype_ok(llmrt_dtype t) {
    return t == LLMRT_DTYPE_F32 || t == LLMRT_DTYPE_F16 || t == LLMRT_DTYPE_BF16;
}

static inline int64_t llmrt_comm_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The argument checks of all_reduce_sum (same words for every kind of communicator). */
static inline llmrt_status llmrt_comm_check_all_reduce(const llmrt_comm *c, const void *buf,
                                                       int64_t n, llmrt_dtype dtype,
                                                       llmrt_error *err) {
    if (!llmrt_comm_dtype_ok(dtype))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "all_reduce (rank %d of %d, %s): dtype %s (supported: F32, F16, BF16)",
                         c->rank, c->size, c->kind, llmrt_dtype_name(dtype));
    if (n < 0 || (n > 0 && !buf))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "all_reduce (rank %d of %d, %s): %s buffer of %lld elements", c->rank,
                         c->size, c->kind, buf ? "a" : "NULL", (long long)n);
    return LLMRT_OK;
}

#endif
