/* Random numbers of the kernel unit tests (test_q8z_kernels.c, test_kq_q8_kernels.c): a 64-bit
 * linear congruential generator (Knuth's MMIX constants), one stream per test program with a
 * fixed seed, so a failing case repeats run after run. */
#ifndef LLMRT_TEST_RNG_H
#define LLMRT_TEST_RNG_H

#include <stdint.h>
#include <string.h>

#include "core/half.h"

static uint64_t test_rng_state = 0x9e3779b97f4a7c15ull;

/* 31 random bits (the generator's high bits: its low bits have short periods) */
static inline uint32_t urand(void) {
    test_rng_state = test_rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(test_rng_state >> 33);
}

/* uniform in [-1, 1) */
static inline float frand(void) {
    return (float)((double)urand() / 1073741824.0 - 1.0);
}

/* v rounded to fp16, stored at p (any alignment) */
static inline void put_f16(uint8_t *p, float v) {
    uint16_t h = llmrt_f32_to_f16(v);
    memcpy(p, &h, 2);
}

#endif
