/* IEEE fp16 and bfloat16 <-> fp32 conversions, bit-exact (round to nearest even), scalar. */
#ifndef LLMRT_CORE_HALF_H
#define LLMRT_CORE_HALF_H

#include <stdint.h>
#include <string.h>

static inline float llmrt_f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t llmrt_bits_from_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float llmrt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp  = (h >> 10) & 0x1f;
    uint32_t man  = h & 0x3ff;
    if (exp == 0x1f) return llmrt_f32_from_bits(sign | 0x7f800000u | (man << 13)); /* inf/nan */
    if (exp == 0) {
        if (man == 0) return llmrt_f32_from_bits(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return llmrt_f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
}

static inline uint16_t llmrt_f32_to_f16(float f) {
    uint32_t x    = llmrt_bits_from_f32(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 : 0));
    if (absx >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (absx < 0x38800000u) {                                   /* result is subnormal or 0 */
        /* add 0.5 (as float) so the FPU does the round-to-nearest-even at bit 24 */
        float r = llmrt_f32_from_bits(absx) + 0.5f;
        return (uint16_t)(sign | (llmrt_bits_from_f32(r) - 0x3f000000u));
    }
    uint32_t mant_odd = (absx >> 13) & 1;
    absx += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round */
    return (uint16_t)(sign | (absx >> 13));
}

static inline float llmrt_bf16_to_f32(uint16_t h) {
    return llmrt_f32_from_bits((uint32_t)h << 16);
}

static inline uint16_t llmrt_f32_to_bf16(float f) {
    uint32_t x = llmrt_bits_from_f32(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fffu + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

#endif
