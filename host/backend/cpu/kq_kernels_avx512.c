/* AVX-512 kernels for packed GGUF blocks (kq_kernels.h; compiled with -mavx512f/bw/vl/dq -mfma
 * -mf16c).
 *
 * Dequantisation: Q4_K, Q5_K, Q6_K, Q5_0 and Q5_1 blocks are widened 16 weights at a time (bytes
 * to dwords, shifts and masks for the nibbles and high bits, one int -> fp32 conversion) and
 * scaled with the reference's rounding steps: a K-quant sub-block's d*sc and dmin*m are the same
 * scalar fp32 products as in the reference, and opaque() keeps GCC from contracting (d*sc)*q - m
 * into one fma (the reference rounds twice). Q2_K and Q3_K take the scalar reference.
 *
 * gemv: per block along K, the (up to) 4 rows' blocks are dequantised into an L1 buffer and
 * multiplied with up to 4 tokens; each output has one 16-lane accumulator updated with
 * _mm512_fmadd_ps(x, w, acc) for k = 0, 16, 32, ... and reduced with _mm512_reduce_add_ps (+ the
 * empty tail), as dot_tile of cpu_kernels_avx512.c, so it is bit-identical to dequant_row +
 * dot_tile. Why a buffer and not weights in registers as the 4-bit kernels do: a K-quant block
 * carries 8-16 scales and 2-3 bit planes; the buffer keeps one dequantiser per type shared by both
 * paths, and the stores and reloads hit L1 (4 KiB per tile). */
#include <immintrin.h>
#include <string.h>

#include "../../format/ggml_quants.h"
#include "kq_kernels.h"

/* Keeps GCC from contracting a product and a following add into one fma. */
static inline __m512 opaque(__m512 v) {
    __asm__("" : "+v"(v));
    return v;
}

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m512i load16_u8(const uint8_t *p) { /* 16 bytes as 16 dwords */
    return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
}

static inline __m512i shr(__m512i v, int n) {
    return _mm512_srl_epi32(v, _mm_cvtsi32_si128(n));
}

static void q45k_block(const uint8_t *b, float *y, const int five) {
    float          d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *scales = b + 4, *qh = b + 16, *qs = b + (five ? 48 : 16);
    const __m512i  m4 = _mm512_set1_epi32(0x0f), one = _mm512_set1_epi32(1);
    __m512i        hb[2];
    if (five) {
        hb[0] = load16_u8(qh);
        hb[1] = load16_u8(qh + 16);
    }
    for (int s = 0; s < 8; s++) {
        uint8_t sc, m;
        llmrt_ggml_k4_scale_min(s, scales, &sc, &m);
        __m512 d1 = _mm512_set1_ps(d * (float)sc), m1 = _mm512_set1_ps(dmin * (float)m);
        for (int h = 0; h < 2; h++) {
            __m512i q = load16_u8(qs + 32 * (s / 2) + 16 * h);
            q         = (s & 1) ? _mm512_srli_epi32(q, 4) : _mm512_and_si512(q, m4);
            if (five)
                q = _mm512_or_si512(q, _mm512_slli_epi32(_mm512_and_si512(shr(hb[h], s), one), 4));
            __m512 w = _mm512_sub_ps(opaque(_mm512_mul_ps(d1, _mm512_cvtepi32_ps(q))), m1);
            _mm512_storeu_ps(y + 32 * s + 16 * h, w);
        }
    }
}

static void q6k_block(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t  *sc = (const int8_t *)(b + 192);
    float          d  = f16_at(b + 208);
    const __m512i  m4 = _mm512_set1_epi32(0x0f), m2 = _mm512_set1_epi32(3);
    const __m512i  off = _mm512_set1_epi32(32);
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < 4; c++)
            for (int half = 0; half < 2; half++) {
                int     v0 = 128 * h + 32 * c + 16 * half;
                __m512i lo = load16_u8(ql + 64 * h + 32 * (c & 1) + 16 * half);
                lo         = c < 2 ? _mm512_and_si512(lo, m4) : _mm512_srli_epi32(lo, 4);
                __m512i hi = _mm512_and_si512(shr(load16_u8(qh + 32 * h + 16 * half), 2 * c), m2);
                __m512i q  = _mm512_sub_epi32(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4)), off);
                __m512  ds = _mm512_set1_ps(d * (float)sc[v0 / 16]);
                _mm512_storeu_ps(y + v0, _mm512_mul_ps(ds, _mm512_cvtepi32_ps(q)));
            }
}

static void q5x_block(const uint8_t *b, float *y, const int has_min) {
    float    d = f16_at(b), m = has_min ? f16_at(b + 2) : 0.0f;
    uint32_t qh;
    memcpy(&qh, b + (has_min ? 4 : 2), 4);
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i m4 = _mm512_set1_epi32(0x0f), one = _mm512_set1_epi32(1);
    __m512i       raw = load16_u8(b + (has_min ? 8 : 6)), hv = _mm512_set1_epi32((int)qh);
    __m512i       h0 = _mm512_and_si512(_mm512_srlv_epi32(hv, iota), one);
    __m512i h1 = _mm512_and_si512(_mm512_srlv_epi32(hv, _mm512_add_epi32(iota, _mm512_set1_epi32(16))), one);
    __m512i q[2] = {_mm512_or_si512(_mm512_and_si512(raw, m4), _mm512_slli_epi32(h0, 4)),
                    _mm512_or_si512(_mm512_srli_epi32(raw, 4), _mm512_slli_epi32(h1, 4))};
    __m512  dv = _mm512_set1_ps(d), mv = _mm512_set1_ps(m);
    for (int i = 0; i < 2; i++) {
        __m512 w = has_min ? _mm512_add_ps(opaque(_mm512_mul_ps(_mm512_cvtepi32_ps(q[i]), dv)), mv)
                           : _mm512_mul_ps(_mm512_cvtepi32_ps(
                                               _mm512_sub_epi32(q[i], _mm512_set1_epi32(16))),
                                           dv);
        _mm512_storeu_ps(y + 16 * i, w);
    }
}

static inline void dequant_block(llmrt_dtype t, const uint8_t *b, float *y) {
    switch (t) {
    case LLMRT_DTYPE_Q4_K: q45k_block(b, y, 0); break;
    case LLMRT_DTYPE_Q5_K: q45k_block(b, y, 1); break;
    case LLMRT_DTYPE_Q6_K: q6k_block(b, y); break;
    case LLMRT_DTYPE_Q5_0: q5x_block(b, y, 0); break;
    case LLMRT_DTYPE_Q5_1: q5x_block(b, y, 1); break;
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

#define GEMV_VARIANT(NT)                                                                           \
    static void gemv_##NT(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx,     \
                          const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {               \
        gemv_tile(t, out, ldo, x, ldx, NT, w, row_bytes, n_n, K);                                  \
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
