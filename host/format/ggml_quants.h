/* GGUF's block-quantised types beyond Q8_0/Q4_0/Q4_1: their block layouts and llama.cpp's
 * reference dequantisation (ggml-quants.c, dequantize_row_*), written from the format
 * description, in the fp32 arithmetic llama.cpp's scalar code performs (no fused multiply-add:
 * this file is compiled for baseline x86-64, which has none).
 *
 * Which types map onto the internal 4-bit format (format/q4.h) losslessly, and why the rest do not:
 *   Q4_0, Q4_1   yes (model/gguf_source.c: group 32, fp16 scale, INT zero 8 / FLOAT offset m).
 *   Q4_K         no. Its per-32 sub-block scale is d*sc and its min dmin*m: fp32 products of an
 *                fp16 and a 6-bit integer, which carry up to 11 + 6 significant bits and so are
 *                not fp16 values; q4.h's fp16 scale arrays cannot hold them (rounding them changes
 *                ~every weight). Rather than widen q4.h with fp32 scale/offset arrays (and every
 *                backend's repacker with it), Q4_K stays in its packed GGUF layout with the other
 *                K-quants and gets its own kernels (backend/cpu/kq_kernels.h).
 *   Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, Q6_K: no (5, 2, 3, 5 and 6 bits per weight); kept packed.
 *
 * Layouts (little-endian; one block = `llmrt_dtype_block_elems` consecutive elements of a row
 * along K, the innermost dimension; a row is a whole number of blocks):
 *   Q5_0  22 B: fp16 d | u32 qh | u8 qs[16]. Element j < 16: low nibble of qs[j]; j >= 16: high
 *               nibble of qs[j - 16]; bit j of qh is the fifth bit.        w = d * (q - 16)
 *   Q5_1  24 B: fp16 d | fp16 m | u32 qh | u8 qs[16], as Q5_0.             w = d*q + m
 *   Q2_K  84 B: u8 scales[16] | u8 qs[64] | fp16 d | fp16 dmin. Element v: q = (qs[32(v/128) +
 *               v%32] >> 2((v%128)/32)) & 3; sub-block s = v/16 has sc = scales[s] & 15, m =
 *               scales[s] >> 4.                                            w = (d*sc)*q - dmin*m
 *   Q3_K 110 B: u8 hmask[32] | u8 qs[64] | u8 scales[12] | fp16 d. q as Q2_K, minus 4 when bit
 *               v/32 of hmask[v%32] is clear; 16 6-bit scales (low 4 bits: scales[s%8] >> 4(s/8),
 *               high 2: scales[8 + s%4] >> 2(s/4)), minus 32.              w = (d*(sc-32))*q
 *   Q4_K 144 B: fp16 d | fp16 dmin | u8 scales[12] | u8 qs[128]. Sub-block s = v/32 (8 of them):
 *               6-bit sc and m unpacked by llama.cpp's get_scale_min_k4 (s < 4: scales[s] & 63,
 *               scales[s+4] & 63; else low 4 bits from scales[s+4], high 2 from the top bits of
 *               scales[s-4] / scales[s]); q = nibble of qs[32(v/64) + v%32], low for even s.
 *                                                                          w = (d*sc)*q - dmin*m
 *   Q5_K 176 B: fp16 d | fp16 dmin | u8 scales[12] | u8 qh[32] | u8 qs[128]; as Q4_K plus
 *               16 * (bit v/32 of qh[v%32]).                               w = (d*sc)*q - dmin*m
 *   Q6_K 210 B: u8 ql[128] | u8 qh[64] | i8 scales[16] | fp16 d. Half h = v/128, quarter
 *               c = (v%128)/32, l = v%32: low 4 bits from ql[64h + l + 32(c&1)] (c < 2: low
 *               nibble, else high), high 2 bits (qh[32h + l] >> 2c) & 3; minus 32; scale
 *               scales[v/16].                                              w = (d*sc)*q
 *   Q8_Z  36 B: fp16 d | u8 z | u8 0 | u8 q[32] (internal, no GGUF number). w = d * ((float)q - z)
 * Every product and difference is rounded to fp32 in the order written (a K-quant's d*sc and
 * dmin*m once per sub-block). */
#ifndef LLMRT_FORMAT_GGML_QUANTS_H
#define LLMRT_FORMAT_GGML_QUANTS_H

#include <stdbool.h>
#include <stdint.h>

#include "dtype.h"

/* True for the block types this file dequantises and the CPU backend reads in place with its
 * packed-block kernels (backend/cpu/kq_kernels.h): Q5_0, Q5_1, the K-quants Q2_K..Q6_K and the
 * internal Q8_Z (GPTQ 8-bit with zero points, format/dtype.h, model/gptq8.h). */
bool llmrt_ggml_is_packed(llmrt_dtype t);
/* True for Q8_0, Q4_0, Q4_1 and every llmrt_ggml_is_packed type (Q8_Z included). */
bool llmrt_ggml_is_block(llmrt_dtype t);

/* One block of `t` (llmrt_ggml_is_block) into out[llmrt_dtype_block_elems(t)]. */
void llmrt_ggml_dequant_block(llmrt_dtype t, const uint8_t *blk, float *out);
/* A row of n elements (a multiple of the block) into out[n]. */
void llmrt_ggml_dequant_row(llmrt_dtype t, const uint8_t *row, float *out, int64_t n);

/* llama.cpp's activation quantisation for the K-quant dot products (quantize_row_q8_K_ref), for
 * n elements (a multiple of 256) of x: per 256-block b, with max the element of largest |x| (the
 * first such), iscale = -127 / max, q = round-to-nearest-even(iscale * x) capped at 127,
 * d[b] = 1 / iscale, bsums[16 b + j] the sum of q over elements 16 j .. 16 j + 15; a block of
 * zeros gives d = 0 and q = 0. */
void llmrt_ggml_quantize_q8_K(const float *x, int64_t n, int8_t *q, float *d, int16_t *bsums);

/* The 6-bit scale and min of sub-block s (0..7) of a Q4_K / Q5_K block's 12 scale bytes. */
static inline void llmrt_ggml_k4_scale_min(int s, const uint8_t *q, uint8_t *sc, uint8_t *m) {
    if (s < 4) {
        *sc = q[s] & 63;
        *m  = q[s + 4] & 63;
    } else {
        *sc = (uint8_t)((q[s + 4] & 0x0f) | ((q[s - 4] >> 6) << 4));
        *m  = (uint8_t)((q[s + 4] >> 4) | ((q[s] >> 6) << 4));
    }
}

/* The 16 signed scales (sc - 32) of a Q3_K block's 12 scale bytes. */
static inline void llmrt_ggml_q3k_scales(const uint8_t *q, int8_t out[16]) {
    for (int s = 0; s < 16; s++) {
        int lo = (q[s % 8] >> (4 * (s / 8))) & 0x0f, hi = (q[8 + s % 4] >> (2 * (s / 4))) & 3;
        out[s] = (int8_t)((lo | hi << 4) - 32);
    }
}

#endif
