/* Overflow-checked 64-bit arithmetic for every size derived from a file or a request. */
#ifndef LLMRT_CORE_CHECKED_MATH_H
#define LLMRT_CORE_CHECKED_MATH_H

#include <stdbool.h>
#include <stdint.h>

/* Each returns false (and leaves *out unspecified) on overflow. */
static inline bool ck_add_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline bool ck_mul_u64(uint64_t a, uint64_t b, uint64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool ck_mul_i64(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool ck_add_i64(int64_t a, int64_t b, int64_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* Product of n dims; false on overflow. An empty list is 1 (a scalar). */
static inline bool ck_product_u64(const uint64_t *dims, int n, uint64_t *out) {
    uint64_t p = 1;
    for (int i = 0; i < n; i++)
        if (!ck_mul_u64(p, dims[i], &p)) return false;
    *out = p;
    return true;
}

#endif
