/* The 8 six-bit scales and 8 mins of a Q4_K / Q5_K block (12 bytes at b + 4), unpacked word-wise
 * into two 64-bit words (byte s = sub-block s), shared by the SIMD variants of kq_q8_kernels.h.
 * With a, c, e the scale bytes 0-3, 4-7 and 8-11 as little-endian words (format/ggml_quants.h,
 * get_scale_min_k4): sc[0..3] = a & 63, m[0..3] = c & 63, sc[4..7] = (e & 15) | (a >> 6) << 4
 * and m[4..7] = (e >> 4) | (c >> 6) << 4 per byte. */
#ifndef LLMRT_BACKEND_CPU_KQ_Q8_SCALES_H
#define LLMRT_BACKEND_CPU_KQ_Q8_SCALES_H

#include <stdint.h>
#include <string.h>

static inline void llmrt_kq8_scales_mins(const uint8_t *b, uint64_t *sc8, uint64_t *m8) {
    uint32_t a, c, e;
    memcpy(&a, b + 4, 4);
    memcpy(&c, b + 8, 4);
    memcpy(&e, b + 12, 4);
    uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = c & 0x3f3f3f3fu;
    uint32_t sc_hi = (e & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    uint32_t m_hi = ((e >> 4) & 0x0f0f0f0fu) | ((c >> 2) & 0x30303030u);
    *sc8 = (uint64_t)sc_lo | (uint64_t)sc_hi << 32;
    *m8 = (uint64_t)m_lo | (uint64_t)m_hi << 32;
}

#endif
