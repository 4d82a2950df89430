/* AVX-512 kernels for packed GGUF blocks (kq_kernels.h; compiled with -mavx512f/bw/vl/dq -mfma
 * -mf16c).
 *
 * Dequantisation, 16 weights per vector, always with the reference's rounding steps (a K-quant
 * sub-block's d*sc and dmin*m are the same fp32 products as in ggml_quants.c; a product and the
 * following add become one fma only where the product is exact, so that the fma's single
 * rounding is the reference's second one):
 * - Q4_K, Q5_K, Q5_0, Q5_1 by table lookup: per row and (sub-)block the 16 or 32 possible weights
 *   are computed once into one or two zmm, and vpermps / vpermt2ps pick them by an index built
 *   from the nibble (a widening byte load) and, for the 5-bit types, the fifth bit moved to bit 4
 *   and merged by one ternary-logic op;
 * - Q6_K directly (6-bit values have 64 possible weights: too many for a register table): low
 *   nibble, two high bits merged, minus 32, int -> fp32, times d*sc;
 * - Q8_Z (internal, GPTQ 8-bit w = d * (q - z)) directly: bytes widened, z subtracted as
 *   integers, int -> fp32, one product; its gemv as Q5_0's;
 * - Q2_K, Q3_K directly: 2-bit values shifted out of qs (plus Q3_K's high bit), int -> fp32,
 *   then (d*sc)*q - dmin*m as one fma (Q2_K: the product is exact) or (d*sc)*q.
 *
 * gemv: 4 rows x up to 4 tokens. Q4_K/Q5_K/Q6_K/Q5_0/Q5_1 keep the weights in registers (as the
 * Q8_0 gemv of q4_kernels_avx512.c, with the region two tiles ahead prefetched in step); Q2_K and
 * Q3_K are dequantised block by block into an L1 buffer first (1 thread, T=1: Q2_K 18, Q3_K 9
 * GFLOP/s with SIMD dequantisation, 1.6 / 1.1 with the scalar reference). Each output has one 16-lane
 * accumulator updated with _mm512_fmadd_ps(x, w, acc) for k = 0, 16, 32, ... and reduced with
 * _mm512_reduce_add_ps (+ the empty tail), as dot_tile of cpu_kernels_avx512.c, so it is
 * bit-identical to dequant_row + dot_tile.
 *
 * The K-quants' per-block scales are unpacked word-wise and scaled 16 at a time (scalar
 * get_scale_min_k4 per sub-block cost a third of the Q4_K gemv), and the sub-block loops are
 * unrolled so that every shift is an immediate.
 * Measured on this Zen 4 (1 thread, 1536 x 1536, one token, best of 30; Q8_0 19.4 for scale):
 * Q5_0 14.2, Q5_1 12.7, Q4_K 15.9, Q5_K 12.4, Q6_K 12.4 G weights/s. The first version (every
 * type through the buffer) gave 13.5 / 11.2 / 6.8 / 6.2 / 5.7. */
#include <immintrin.h>
#include <string.h>

#include "../../format/ggml_quants.h"
#include "kq_kernels.h"

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m512i load16_u8(const uint8_t *p) { /* 16 bytes as 16 dwords */
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

/* Q4_K / Q5_K by table lookup (as the 4-bit kernels, q4_kernels_avx512.c): per row and
 * sub-block the 16 (Q4_K) or 32 (Q5_K) possible weights (d*sc)*q - dmin*m are computed once,
 * with the reference's rounding, into one or two zmm; vpermps (low 4 index bits) or vpermt2ps
 * (low 5) then picks each weight. The index of element l of sub-block s is the byte of qs
 * widened to a dword (vpermps ignores the high nibble for even s; odd s shifts it down), and for
 * Q5_K bit s of qh[l] moved to bit 4 and merged by one ternary-logic op. Per 16 weights: a
 * widening load, at most two shifts, one merge and one permute. */
typedef struct k45_scales {
    float v[16]; /* d*sc of the 8 sub-blocks, then dmin*m */
} k45_scales;

/* The 8 (sc, m) pairs of get_scale_min_k4 word-wise: with a, b, c the scale bytes 0-3, 4-7 and
 * 8-11 as little-endian words, sc[0..3] = a & 63, m[0..3] = b & 63, sc[4..7] = (c & 15) | (a >> 6)
 * << 4 and m[4..7] = (c >> 4) | (b >> 6) << 4 per byte; then d * sc and dmin * m, 16 products in
 * one multiply (each rounded once, as the reference's scalar products). */
static inline void k45_scales_of(const uint8_t *b, k45_scales *o) {
    uint32_t a, bw, c;
    memcpy(&a, b + 4, 4);
    memcpy(&bw, b + 8, 4);
    memcpy(&c, b + 12, 4);
    uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = bw & 0x3f3f3f3fu;
    uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    uint32_t m_hi  = ((c >> 4) & 0x0f0f0f0fu) | ((bw >> 2) & 0x30303030u);
    __m512   v = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(
        _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)m_lo, (int)m_hi)));
    __m512   dd = _mm512_insertf32x8(_mm512_set1_ps(f16_at(b)), _mm256_set1_ps(f16_at(b + 2)), 1);
    _mm512_storeu_ps(o->v, _mm512_mul_ps(v, dd));
}

static inline __attribute__((always_inline)) void
k45_regs(const uint8_t *b, const k45_scales *sc, int s, const int five, const __m512i qh[2],
         __m512 *w0, __m512 *w1) {
    const __m512 iota = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    __m512       d1 = _mm512_set1_ps(sc->v[s]), m1 = _mm512_set1_ps(sc->v[8 + s]);
    /* one fused multiply-subtract is the reference's two roundings: d*sc has at most 11 + 6
     * significant bits, times q (5 bits) at most 22, so (d*sc)*q is exact in fp32 and only the
     * subtraction rounds */
    __m512 t0 = _mm512_fmsub_ps(iota, d1, m1), t1 = t0;
    if (five) t1 = _mm512_fmsub_ps(_mm512_add_ps(iota, _mm512_set1_ps(16.0f)), d1, m1);
    const uint8_t *qs = b + (five ? 48 : 16) + 32 * (s / 2);
    __m512         w[2];
    for (int h = 0; h < 2; h++) {
        __m512i q = load16_u8(qs + 16 * h);
        if (s & 1) q = _mm512_srli_epi32(q, 4);
        if (five) {
            __m512i hs = s <= 4 ? _mm512_sll_epi32(qh[h], _mm_cvtsi32_si128(4 - s))
                                : _mm512_srl_epi32(qh[h], _mm_cvtsi32_si128(s - 4));
            /* c ? a : b per bit (imm 0xe4): bits 0-3 from q, bit 4 (and above: ignored) from hs */
            q    = _mm512_ternarylogic_epi32(q, hs, _mm512_set1_epi32(0x0f), 0xe4);
            w[h] = _mm512_permutex2var_ps(t0, q, t1);
        } else {
            w[h] = _mm512_permutexvar_ps(q, t0);
        }
    }
    *w0 = w[0];
    *w1 = w[1];
}

static void q45k_block(const uint8_t *b, float *y, const int five) {
    k45_scales sc;
    k45_scales_of(b, &sc);
    __m512i qh[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    if (five) qh[0] = load16_u8(b + 16), qh[1] = load16_u8(b + 32);
    for (int s = 0; s < 8; s++) {
        __m512 w0, w1;
        k45_regs(b, &sc, s, five, qh, &w0, &w1);
        _mm512_storeu_ps(y + 32 * s, w0);
        _mm512_storeu_ps(y + 32 * s + 16, w1);
    }
}

/* Q6_K: 16 weights (h, c, half) of a block, computed directly: low nibble from ql, bits 2c, 2c+1
 * of qh moved to bits 4-5 and merged, minus 32, times d*sc (one rounding, as the reference). */
static inline __attribute__((always_inline)) __m512 q6k_regs(const uint8_t *b, __m512i qhv,
                                                             float ds, int h, int c, int half) {
    __m512i lo = load16_u8(b + 64 * h + 32 * (c & 1) + 16 * half);
    if (c >= 2) lo = _mm512_srli_epi32(lo, 4);
    __m512i hs = c < 2 ? _mm512_sll_epi32(qhv, _mm_cvtsi32_si128(4 - 2 * c))
                       : _mm512_srl_epi32(qhv, _mm_cvtsi32_si128(2 * c - 4));
    __m512i q  = _mm512_ternarylogic_epi32(lo, hs, _mm512_set1_epi32(0x0f), 0xe4);
    q          = _mm512_sub_epi32(_mm512_and_si512(q, _mm512_set1_epi32(0x3f)), _mm512_set1_epi32(32));
    return _mm512_mul_ps(_mm512_set1_ps(ds), _mm512_cvtepi32_ps(q));
}

static void q6k_block(const uint8_t *b, float *y) {
    const int8_t *sc = (const int8_t *)(b + 192);
    float         d  = f16_at(b + 208);
    for (int h = 0; h < 2; h++)
        for (int half = 0; half < 2; half++) {
            __m512i qhv = load16_u8(b + 128 + 32 * h + 16 * half);
            for (int c = 0; c < 4; c++) {
                int v0 = 128 * h + 32 * c + 16 * half;
                _mm512_storeu_ps(y + v0, q6k_regs(b, qhv, d * (float)sc[v0 / 16], h, c, half));
            }
        }
}

/* The 32 weights of a Q5_0 / Q5_1 block as two vectors (elements 0-15, 16-31), by table lookup:
 * the 32 possible weights (q - 16) * d (or q * d + m) are computed into two zmm with the
 * reference's rounding, and vpermt2ps (low 5 index bits) picks them. Index of element j: its
 * nibble (the byte widened to a dword; the high nibble shifted down for j >= 16) in bits 0-3,
 * and bit j of qh rotated to bit 4 (vprolvd by 4 - j) merged in by one ternary-logic op. */
static inline __attribute__((always_inline)) void q5x_regs(const uint8_t *b, const int has_min,
                                                           __m512 *w0, __m512 *w1) {
    const __m512  lo16 = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512  hi16 = _mm512_add_ps(lo16, _mm512_set1_ps(16.0f));
    const __m512i rot0 = _mm512_setr_epi32(4, 3, 2, 1, 0, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21);
    const __m512i rot1 = _mm512_sub_epi32(rot0, _mm512_set1_epi32(16)); /* mod 32 in vprolvd */
    const __m512i m4   = _mm512_set1_epi32(0x0f);
    __m512        dv   = _mm512_set1_ps(f16_at(b)), t0, t1;
    if (has_min) {
        __m512 mv = _mm512_set1_ps(f16_at(b + 2));
        /* q*d is exact (5 + 11 significant bits): the fma rounds once, as q*d + m does */
        t0 = _mm512_fmadd_ps(lo16, dv, mv);
        t1 = _mm512_fmadd_ps(hi16, dv, mv);
    } else { /* (float)(q - 16) exactly: the constants -16..15 */
        t0 = _mm512_mul_ps(_mm512_sub_ps(lo16, _mm512_set1_ps(16.0f)), dv);
        t1 = _mm512_mul_ps(lo16, dv);
    }
    const uint8_t *qs = b + (has_min ? 8 : 6);
    uint32_t       qh32;
    memcpy(&qh32, b + (has_min ? 4 : 2), 4); /* unaligned: blocks are 22 / 24 bytes */
    __m512i qh = _mm512_set1_epi32((int)qh32);
    __m512i        raw = load16_u8(qs);
    __m512i i0 = _mm512_ternarylogic_epi32(raw, _mm512_rolv_epi32(qh, rot0), m4, 0xe4);
    __m512i i1 = _mm512_ternarylogic_epi32(_mm512_srli_epi32(raw, 4), _mm512_rolv_epi32(qh, rot1),
                                           m4, 0xe4);
    *w0 = _mm512_permutex2var_ps(t0, i0, t1);
    *w1 = _mm512_permutex2var_ps(t0, i1, t1);
}

/* Q8_Z (GPTQ 8-bit): d * (q - z) for elements 0-15 and 16-31; q - z is exact as an integer and
 * as fp32, so the one product rounds as the reference's. */
static inline __attribute__((always_inline)) void q8z_regs(const uint8_t *b, __m512 *w0,
                                                           __m512 *w1) {
    __m512  dv = _mm512_set1_ps(f16_at(b));
    __m512i zv = _mm512_set1_epi32(b[2]);
    *w0 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(load16_u8(b + 4), zv)), dv);
    *w1 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(load16_u8(b + 20), zv)), dv);
}

/* One 32-element block: Q5_0 (KIND 0), Q5_1 (1) or Q8_Z (2). */
static inline __attribute__((always_inline)) void blk32_regs(const uint8_t *b, const int KIND,
                                                             __m512 *w0, __m512 *w1) {
    if (KIND == 2) q8z_regs(b, w0, w1);
    else q5x_regs(b, KIND, w0, w1);
}

static void q8z_block(const uint8_t *b, float *y) {
    __m512 w0, w1;
    q8z_regs(b, &w0, &w1);
    _mm512_storeu_ps(y, w0);
    _mm512_storeu_ps(y + 16, w1);
}

static void q5x_block(const uint8_t *b, float *y, const int has_min) {
    __m512 w0, w1;
    q5x_regs(b, has_min, &w0, &w1);
    _mm512_storeu_ps(y, w0);
    _mm512_storeu_ps(y + 16, w1);
}

/* Q2_K: 16 sub-blocks of 16, w = (d*sc)*q - dmin*m with q 2 bits: (d*sc)*q is exact (11 + 4 +
 * 2 significant bits), so one fused multiply-subtract rounds as the reference's subtraction.
 * Element v = 16s + i: byte 32(s/8) + 16(s%2) + i of qs, bits 2((s%8)/2). */
static void q2k_block(const uint8_t *b, float *y) {
    __m512i sc = load16_u8(b);
    __m512  dl = _mm512_mul_ps(_mm512_set1_ps(f16_at(b + 80)),
                               _mm512_cvtepi32_ps(_mm512_and_si512(sc, _mm512_set1_epi32(15))));
    __m512  ml = _mm512_mul_ps(_mm512_set1_ps(f16_at(b + 82)),
                               _mm512_cvtepi32_ps(_mm512_srli_epi32(sc, 4)));
    float   dls[16], mls[16];
    _mm512_storeu_ps(dls, dl);
    _mm512_storeu_ps(mls, ml);
#pragma GCC unroll 16
    for (int s = 0; s < 16; s++) {
        __m512i q = load16_u8(b + 16 + 32 * (s / 8) + 16 * (s % 2));
        q         = _mm512_and_si512(_mm512_srli_epi32(q, 2 * ((s % 8) / 2)), _mm512_set1_epi32(3));
        _mm512_storeu_ps(y + 16 * s, _mm512_fmsub_ps(_mm512_cvtepi32_ps(q), _mm512_set1_ps(dls[s]),
                                                     _mm512_set1_ps(mls[s])));
    }
}

/* Q3_K: w = (d*(sc-32))*q, q = 2 low bits | the hmask bit << 2, minus 4 (one rounding). */
static void q3k_block(const uint8_t *b, float *y) {
    int8_t sc[16];
    llmrt_ggml_q3k_scales(b + 96, sc);
    __m512 dl = _mm512_mul_ps(_mm512_set1_ps(f16_at(b + 108)),
                              _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)sc))));
    float  dls[16];
    _mm512_storeu_ps(dls, dl);
#pragma GCC unroll 16
    for (int s = 0; s < 16; s++) {
        __m512i q = load16_u8(b + 32 + 32 * (s / 8) + 16 * (s % 2));
        q         = _mm512_and_si512(_mm512_srli_epi32(q, 2 * ((s % 8) / 2)), _mm512_set1_epi32(3));
        __m512i h = _mm512_and_si512(_mm512_srli_epi32(load16_u8(b + 16 * (s % 2)), s / 2),
                                     _mm512_set1_epi32(1));
        q = _mm512_sub_epi32(_mm512_or_si512(q, _mm512_slli_epi32(h, 2)), _mm512_set1_epi32(4));
        _mm512_storeu_ps(y + 16 * s, _mm512_mul_ps(_mm512_set1_ps(dls[s]), _mm512_cvtepi32_ps(q)));
    }
}

static inline void dequant_block(llmrt_dtype t, const uint8_t *b, float *y) {
    switch (t) {
    case LLMRT_DTYPE_Q4_K: q45k_block(b, y, 0); break;
    case LLMRT_DTYPE_Q5_K: q45k_block(b, y, 1); break;
    case LLMRT_DTYPE_Q6_K: q6k_block(b, y); break;
    case LLMRT_DTYPE_Q5_0: q5x_block(b, y, 0); break;
    case LLMRT_DTYPE_Q5_1: q5x_block(b, y, 1); break;
    case LLMRT_DTYPE_Q2_K: q2k_block(b, y); break;
    case LLMRT_DTYPE_Q3_K: q3k_block(b, y); break;
    case LLMRT_DTYPE_Q8_Z: q8z_block(b, y); break;
    default: llmrt_ggml_dequant_block(t, b, y); break;
    }
}

static void dequant_row_avx512(llmrt_dtype t, float *out, const uint8_t *row, int64_t K) {
    int64_t be = llmrt_dtype_block_elems(t), bb = llmrt_dtype_block_bytes(t);
    for (int64_t k = 0; k + be <= K; k += be, row += bb) dequant_block(t, row, out + k);
}

/* NT tokens x up to 4 rows (NT is a constant after inlining). */
static inline __attribute__((always_inline)) void
gemv_tile(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx, const int NT,
          const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    int64_t be = llmrt_dtype_block_elems(t), bb = llmrt_dtype_block_bytes(t);
    float   buf[4][256] __attribute__((aligned(64)));
    __m512  acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[i][r] = _mm512_setzero_ps();
    /* rows past n_n are never dequantised: their accumulators are garbage and not stored */
    for (int r = n_n; r < 4; r++) memset(buf[r], 0, sizeof buf[r]);
    for (int64_t k0 = 0, b = 0; k0 < K; k0 += be, b++) {
        for (int r = 0; r < n_n; r++) {
            const uint8_t *blk = w + r * row_bytes + b * bb;
            /* the 4 rows are 4 streams; prefetch each a few blocks ahead */
            for (int64_t o = 0; o < bb; o += 64) _mm_prefetch((const char *)blk + 4 * bb + o, _MM_HINT_T0);
            dequant_block(t, blk, buf[r]);
        }
        for (int64_t j = 0; j < be; j += 16) {
            __m512 wv[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) wv[r] = _mm512_load_ps(buf[r] + j);
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                __m512 xv = _mm512_loadu_ps(x + i * ldx + k0 + j);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
            }
        }
    }
    /* "+ 0.0f" is dot_tile's empty scalar tail (K % 16 == 0): kept for bit-identical -0.0 */
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[i * ldo + r] = _mm512_reduce_add_ps(acc[i][r]) + 0.0f;
}

/* Q5_0 / Q5_1 / Q8_Z (KIND 0 / 1 / 2): NT tokens x up to 4 rows with the weights in registers
 * (as the Q8_0 gemv of q4_kernels_avx512.c: rows past n_n repeat row 0 and are not stored; the
 * 4 rows' region two tiles ahead is prefetched in step). Same values and accumulation order as
 * gemv_tile. */
static inline __attribute__((always_inline)) void
q5_gemv_tile(float *out, int64_t ldo, const float *x, int64_t ldx, const int NT, const int KIND,
             const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    const int      bb = KIND == 2 ? 36 : KIND ? 24 : 22;
    const uint8_t *wr[4];
    for (int r = 0; r < 4; r++) wr[r] = w + (r < n_n ? r : 0) * row_bytes;
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) acc[i][r] = _mm512_setzero_ps();
    int64_t        nb = K / 32, pf_step = (4 * row_bytes + nb - 1) / nb;
    const uint8_t *pf = w + 8 * row_bytes;
    for (int64_t b = 0; b < nb; b++, pf += pf_step) {
        for (int64_t o = 0; o < pf_step; o += 64) _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
        __m512 w0[4], w1[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) blk32_regs(wr[r] + bb * b, KIND, &w0[r], &w1[r]);
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++) {
            __m512 xv = _mm512_loadu_ps(x + i * ldx + 32 * b);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) acc[i][r] = _mm512_fmadd_ps(xv, w0[r], acc[i][r]);
            xv = _mm512_loadu_ps(x + i * ldx + 32 * b + 16);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) acc[i][r] = _mm512_fmadd_ps(xv, w1[r], acc[i][r]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[i * ldo + r] = _mm512_reduce_add_ps(acc[i][r]) + 0.0f;
}

/* Q4_K / Q5_K / Q6_K: NT tokens x up to 4 rows, weights in registers (rows past n_n repeat
 * row 0 and are not stored). Accumulation in k order, as gemv_tile. */
static inline __attribute__((always_inline)) void
kq_gemv_tile(float *out, int64_t ldo, const float *x, int64_t ldx, const int NT, const int TYPE,
             const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    const int      bb = TYPE == 4 ? 144 : TYPE == 5 ? 176 : 210;
    const uint8_t *wr[4];
    for (int r = 0; r < 4; r++) wr[r] = w + (r < n_n ? r : 0) * row_bytes;
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) acc[i][r] = _mm512_setzero_ps();
    int64_t        nb = K / 256, pf_step = (4 * row_bytes + nb - 1) / nb;
    const uint8_t *pf = w + 8 * row_bytes;
    for (int64_t b = 0; b < nb; b++, pf += pf_step) {
        for (int64_t o = 0; o < pf_step; o += 64) _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
        const float *xb = x + 256 * b;
        if (TYPE == 6) {
            float ds[4][16];
            for (int r = 0; r < 4; r++) {
                const uint8_t *blk = wr[r] + bb * b;
                __m512 sc16 = _mm512_cvtepi32_ps(
                    _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 192))));
                _mm512_storeu_ps(ds[r], _mm512_mul_ps(_mm512_set1_ps(f16_at(blk + 208)), sc16));
            }
            for (int h = 0; h < 2; h++) {
                __m512i qhv[4][2];
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++)
                    for (int half = 0; half < 2; half++)
                        qhv[r][half] = load16_u8(wr[r] + bb * b + 128 + 32 * h + 16 * half);
#pragma GCC unroll 4
                for (int c = 0; c < 4; c++)
#pragma GCC unroll 2
                    for (int half = 0; half < 2; half++) {
                        int    v0 = 128 * h + 32 * c + 16 * half;
                        __m512 wv[4];
#pragma GCC unroll 4
                        for (int r = 0; r < 4; r++)
                            wv[r] = q6k_regs(wr[r] + bb * b, qhv[r][half], ds[r][v0 / 16], h, c, half);
#pragma GCC unroll 4
                        for (int i = 0; i < NT; i++) {
                            __m512 xv = _mm512_loadu_ps(xb + i * ldx + v0);
#pragma GCC unroll 4
                            for (int r = 0; r < 4; r++) acc[i][r] = _mm512_fmadd_ps(xv, wv[r], acc[i][r]);
                        }
                    }
            }
        } else {
            k45_scales sc[4];
            __m512i    qh[4][2];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                k45_scales_of(wr[r] + bb * b, &sc[r]);
                if (TYPE == 5) {
                    qh[r][0] = load16_u8(wr[r] + bb * b + 16);
                    qh[r][1] = load16_u8(wr[r] + bb * b + 32);
                }
            }
            /* unrolled: the sub-block's shifts become immediates */
#pragma GCC unroll 8
            for (int s = 0; s < 8; s++) {
                __m512 w0[4], w1[4];
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++)
                    k45_regs(wr[r] + bb * b, &sc[r], s, TYPE == 5, qh[r], &w0[r], &w1[r]);
#pragma GCC unroll 4
                for (int i = 0; i < NT; i++) {
                    __m512 xv = _mm512_loadu_ps(xb + i * ldx + 32 * s);
#pragma GCC unroll 4
                    for (int r = 0; r < 4; r++) acc[i][r] = _mm512_fmadd_ps(xv, w0[r], acc[i][r]);
                    xv = _mm512_loadu_ps(xb + i * ldx + 32 * s + 16);
#pragma GCC unroll 4
                    for (int r = 0; r < 4; r++) acc[i][r] = _mm512_fmadd_ps(xv, w1[r], acc[i][r]);
                }
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[i * ldo + r] = _mm512_reduce_add_ps(acc[i][r]) + 0.0f;
}

#define GEMV_VARIANT(NT)                                                                           \
    static void gemv_##NT(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx,     \
                          const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {               \
        if (t == LLMRT_DTYPE_Q5_0)                                                                 \
            q5_gemv_tile(out, ldo, x, ldx, NT, 0, w, row_bytes, n_n, K);                           \
        else if (t == LLMRT_DTYPE_Q5_1)                                                            \
            q5_gemv_tile(out, ldo, x, ldx, NT, 1, w, row_bytes, n_n, K);                           \
        else if (t == LLMRT_DTYPE_Q8_Z)                                                            \
            q5_gemv_tile(out, ldo, x, ldx, NT, 2, w, row_bytes, n_n, K);                           \
        else if (t == LLMRT_DTYPE_Q4_K)                                                            \
            kq_gemv_tile(out, ldo, x, ldx, NT, 4, w, row_bytes, n_n, K);                           \
        else if (t == LLMRT_DTYPE_Q5_K)                                                            \
            kq_gemv_tile(out, ldo, x, ldx, NT, 5, w, row_bytes, n_n, K);                           \
        else if (t == LLMRT_DTYPE_Q6_K)                                                            \
            kq_gemv_tile(out, ldo, x, ldx, NT, 6, w, row_bytes, n_n, K);                           \
        else                                                                                       \
            gemv_tile(t, out, ldo, x, ldx, NT, w, row_bytes, n_n, K);                              \
    }
GEMV_VARIANT(1)
GEMV_VARIANT(2)
GEMV_VARIANT(3)
GEMV_VARIANT(4)

static void gemv_avx512(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx,
                        int n_t, const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    switch (n_t) {
    case 1: gemv_1(t, out, ldo, x, ldx, w, row_bytes, n_n, K); break;
    case 2: gemv_2(t, out, ldo, x, ldx, w, row_bytes, n_n, K); break;
    case 3: gemv_3(t, out, ldo, x, ldx, w, row_bytes, n_n, K); break;
    default: gemv_4(t, out, ldo, x, ldx, w, row_bytes, n_n, K); break;
    }
}

llmrt_cpu_kq_kernels llmrt_cpu_kq_kernels_avx512(void) {
    return (llmrt_cpu_kq_kernels){
        .isa = "avx512", .dequant_row = dequant_row_avx512, .gemv = gemv_avx512};
}
