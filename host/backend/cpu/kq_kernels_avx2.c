/* AVX2 + FMA kernels for packed GGUF blocks (kq_kernels.h; compiled with -mavx2 -mfma -mf16c).
 * Q4_K, Q5_K, Q6_K, Q5_0 and Q5_1 blocks are dequantised 8 weights at a time (bytes widened to
 * dwords, shifts and masks, int -> fp32, then the scale with the reference's rounding: a product
 * and the following add become one fma only where the product is exact, Q5_1's q*d and the
 * K-quants' (d*sc)*q, so that its single rounding is the reference's second one); Q2_K and Q3_K
 * by the scalar reference (format/ggml_quants.c). gemv: Q5_0, Q5_1, Q4_K and Q5_K in registers;
 * the others through an L1 buffer of 4 rows x 256 columns. The internal Q8_Z (GPTQ 8-bit,
 * w = d * (q - z)) as Q5_0: bytes widened, z subtracted as integers, one product. Both mirror dot_tile of
 * cpu_kernels_avx2.c (one 8-lane accumulator per output, k in steps of 8, hsum256 + the empty
 * tail), so they are bit-identical to dequant_row + dot_tile. One gemv copy per type with its
 * dequantiser inlined.
 * 1 thread, 1536 x 1536, one token, this Zen 4 forced to AVX2 (cpu_gemm_bench -M 1 --isa avx2):
 * q5_0 19.6, q5_1 19.5, q4_k 24.1, q5_k 16.1, q6_k 9.8, q8_0 27.4 GFLOP/s (buffered first
 * version: 6.9, 6.3, 11.0, 10.4, 9.6). */
#include <immintrin.h>
#include <string.h>

#include "../../format/ggml_quants.h"
#include "kq_kernels.h"

static inline float hsum256(__m256 v) { /* as cpu_kernels_avx2.c */
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo        = _mm_add_ps(lo, hi);
    lo        = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo        = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m256i load8_u8(const uint8_t *p) { /* 8 bytes as 8 dwords */
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

static inline __m256i shr(__m256i v, int n) {
    return _mm256_srl_epi32(v, _mm_cvtsi32_si128(n));
}

/* Q4_K / Q5_K: the 8 (d*sc, dmin*m) of a block, unpacked word-wise (as kq_kernels_avx512.c) and
 * scaled 8 at a time: v[0..7] = d*sc, v[8..15] = dmin*m. */
static inline __attribute__((always_inline)) void k45_scales_of(const uint8_t *b, float v[16]) {
    uint32_t a, bw, c;
    memcpy(&a, b + 4, 4);
    memcpy(&bw, b + 8, 4);
    memcpy(&c, b + 12, 4);
    uint32_t sc_lo = a & 0x3f3f3f3fu, m_lo = bw & 0x3f3f3f3fu;
    uint32_t sc_hi = (c & 0x0f0f0f0fu) | ((a >> 2) & 0x30303030u);
    uint32_t m_hi  = ((c >> 4) & 0x0f0f0f0fu) | ((bw >> 2) & 0x30303030u);
    __m256   scv   = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_setr_epi32((int)sc_lo, (int)sc_hi, 0, 0)));
    __m256   mv    = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_setr_epi32((int)m_lo, (int)m_hi, 0, 0)));
    _mm256_storeu_ps(v, _mm256_mul_ps(_mm256_set1_ps(f16_at(b)), scv));
    _mm256_storeu_ps(v + 8, _mm256_mul_ps(_mm256_set1_ps(f16_at(b + 2)), mv));
}

/* The 32 weights of sub-block s as w[0..3] (8 each). (d*sc)*q is exact (at most 11 + 6 + 5
 * significant bits), so one fused multiply-subtract rounds as the reference's subtraction. */
static inline __attribute__((always_inline)) void k45_regs(const uint8_t *b, const float *sc, int s,
                                                           const int five, __m256 w[4]) {
    const uint8_t *qs = b + (five ? 48 : 16) + 32 * (s / 2);
    __m256         d1 = _mm256_set1_ps(sc[s]), m1 = _mm256_set1_ps(sc[8 + s]);
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        __m256i q = load8_u8(qs + 8 * e);
        q = (s & 1) ? _mm256_srli_epi32(q, 4) : _mm256_and_si256(q, _mm256_set1_epi32(0x0f));
        if (five)
            q = _mm256_or_si256(q, _mm256_slli_epi32(_mm256_and_si256(shr(load8_u8(b + 16 + 8 * e), s),
                                                                      _mm256_set1_epi32(1)), 4));
        w[e] = _mm256_fmsub_ps(_mm256_cvtepi32_ps(q), d1, m1);
    }
}

static inline __attribute__((always_inline)) void q45k_block(const uint8_t *b, float *y,
                                                             const int five) {
    float sc[16];
    k45_scales_of(b, sc);
#pragma GCC unroll 8
    for (int s = 0; s < 8; s++) {
        __m256 w[4];
        k45_regs(b, sc, s, five, w);
        for (int e = 0; e < 4; e++) _mm256_storeu_ps(y + 32 * s + 8 * e, w[e]);
    }
}

static inline __attribute__((always_inline)) void q6k_block(const uint8_t *b, float *y) {
    const int8_t *sc = (const int8_t *)(b + 192);
    float         d  = f16_at(b + 208);
    const __m256i m4 = _mm256_set1_epi32(0x0f), m2 = _mm256_set1_epi32(3);
    const __m256i off = _mm256_set1_epi32(32);
    for (int h = 0; h < 2; h++)
        for (int c = 0; c < 4; c++)
            for (int e = 0; e < 4; e++) { /* 8 weights at v0 */
                int     v0 = 128 * h + 32 * c + 8 * e;
                __m256i lo = load8_u8(b + 64 * h + 32 * (c & 1) + 8 * e);
                lo         = c < 2 ? _mm256_and_si256(lo, m4) : _mm256_srli_epi32(lo, 4);
                __m256i hi = _mm256_and_si256(shr(load8_u8(b + 128 + 32 * h + 8 * e), 2 * c), m2);
                __m256i q  = _mm256_sub_epi32(_mm256_or_si256(lo, _mm256_slli_epi32(hi, 4)), off);
                __m256  ds = _mm256_set1_ps(d * (float)sc[v0 / 16]);
                _mm256_storeu_ps(y + v0, _mm256_mul_ps(ds, _mm256_cvtepi32_ps(q)));
            }
}

/* Each of the 32 bits of x as a byte 0xff / 0x00 (byte i <- bit i): byte i of the broadcast
 * holds bits 8(i/8) .. 8(i/8)+7 after the shuffle; or-ing every bit but bit i%8 and comparing
 * with all-ones tests that one bit. */
static inline __m256i bits_to_bytes(uint32_t x) {
    const __m256i pick = _mm256_setr_epi64x(0, 0x0101010101010101ll, 0x0202020202020202ll,
                                            0x0303030303030303ll);
    const __m256i others = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfell);
    __m256i       v      = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), pick);
    return _mm256_cmpeq_epi8(_mm256_or_si256(v, others), _mm256_set1_epi8(-1));
}

/* Q5_0 / Q5_1: the 32 five-bit values as bytes (nibbles of elements 0-15 then 16-31, the fifth
 * bits from qh), widened 8 at a time into w[0..3] (elements 8e .. 8e + 7). Q5_1's q*d is exact
 * (5 + 11 significant bits), so q*d + m as one fma rounds as the reference's addition. */
static inline __attribute__((always_inline)) void q5x_regs(const uint8_t *b, const int has_min,
                                                           __m256 w[4]) {
    float    d = f16_at(b), m = has_min ? f16_at(b + 2) : 0.0f;
    uint32_t qh;
    memcpy(&qh, b + (has_min ? 4 : 2), 4);
    __m128i qs  = _mm_loadu_si128((const __m128i *)(b + (has_min ? 8 : 6)));
    __m128i m4  = _mm_set1_epi8(0x0f);
    __m256i nib = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(qs, 4), m4), _mm_and_si128(qs, m4));
    __m256i q   = _mm256_or_si256(nib, _mm256_and_si256(bits_to_bytes(qh), _mm256_set1_epi8(0x10)));
    if (!has_min) q = _mm256_sub_epi8(q, _mm256_set1_epi8(16)); /* -16..15 */
    __m256  dv = _mm256_set1_ps(d), mv = _mm256_set1_ps(m);
    __m128i half[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++) {
        __m128i h8 = e & 1 ? _mm_srli_si128(half[e / 2], 8) : half[e / 2];
        __m256  f  = _mm256_cvtepi32_ps(has_min ? _mm256_cvtepu8_epi32(h8) : _mm256_cvtepi8_epi32(h8));
        w[e]       = has_min ? _mm256_fmadd_ps(f, dv, mv) : _mm256_mul_ps(f, dv);
    }
}

/* Q8_Z (GPTQ 8-bit): the 32 weights d * (q - z) into w[0..3]; q - z is exact as an integer and
 * as fp32 (it equals (float)q - (float)z), so the one product rounds as the reference's. */
static inline __attribute__((always_inline)) void q8z_regs(const uint8_t *b, __m256 w[4]) {
    __m256  dv = _mm256_set1_ps(f16_at(b));
    __m256i zv = _mm256_set1_epi32(b[2]);
#pragma GCC unroll 4
    for (int e = 0; e < 4; e++)
        w[e] = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(load8_u8(b + 4 + 8 * e), zv)), dv);
}

/* One 32-element block into w[0..3]: Q5_0 (KIND 0), Q5_1 (1) or Q8_Z (2). */
static inline __attribute__((always_inline)) void blk32_regs(const uint8_t *b, const int KIND,
                                                             __m256 w[4]) {
    if (KIND == 2) q8z_regs(b, w);
    else q5x_regs(b, KIND, w);
}

static inline __attribute__((always_inline)) void q8z_block(const uint8_t *b, float *y) {
    __m256 w[4];
    q8z_regs(b, w);
    for (int e = 0; e < 4; e++) _mm256_storeu_ps(y + 8 * e, w[e]);
}

static inline __attribute__((always_inline)) void q5x_block(const uint8_t *b, float *y,
                                                            const int has_min) {
    __m256 w[4];
    q5x_regs(b, has_min, w);
    for (int e = 0; e < 4; e++) _mm256_storeu_ps(y + 8 * e, w[e]);
}

static inline __attribute__((always_inline)) void dequant_block(llmrt_dtype t, const uint8_t *b, float *y) {
    switch (t) {
    case LLMRT_DTYPE_Q4_K: q45k_block(b, y, 0); break;
    case LLMRT_DTYPE_Q5_K: q45k_block(b, y, 1); break;
    case LLMRT_DTYPE_Q6_K: q6k_block(b, y); break;
    case LLMRT_DTYPE_Q5_0: q5x_block(b, y, 0); break;
    case LLMRT_DTYPE_Q5_1: q5x_block(b, y, 1); break;
    case LLMRT_DTYPE_Q8_Z: q8z_block(b, y); break;
    default: llmrt_ggml_dequant_block(t, b, y); break;
    }
}

static void dequant_row_avx2(llmrt_dtype t, float *out, const uint8_t *row, int64_t K) {
    int64_t be = llmrt_dtype_block_elems(t), bb = llmrt_dtype_block_bytes(t);
    for (int64_t k = 0; k + be <= K; k += be, row += bb) dequant_block(t, row, out + k);
}

static inline __attribute__((always_inline)) void
gemv_tile(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx, const int NT,
          const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    int64_t be = llmrt_dtype_block_elems(t), bb = llmrt_dtype_block_bytes(t);
    float   buf[4][256] __attribute__((aligned(32)));
    __m256  acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[i][r] = _mm256_setzero_ps();
    for (int r = n_n; r < 4; r++) memset(buf[r], 0, sizeof buf[r]);
    /* chunks of 256 columns (8 blocks of the 32-element types when K allows): the per-chunk
     * overhead is paid once per 256 weights and row */
    int64_t nbc = (be == 32 && K % 256 == 0) ? 8 : 1, chunk = nbc * be;
    for (int64_t k0 = 0, b = 0; k0 < K; k0 += chunk, b += nbc) {
        for (int r = 0; r < n_n; r++) {
            const uint8_t *blk = w + r * row_bytes + b * bb;
            for (int64_t o = 0; o < nbc * bb; o += 64)
                _mm_prefetch((const char *)blk + 4 * nbc * bb + o, _MM_HINT_T0);
            for (int64_t i = 0; i < nbc; i++) dequant_block(t, blk + i * bb, buf[r] + i * be);
        }
        for (int64_t j = 0; j < chunk; j += 8) {
            __m256 wv[4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) wv[r] = _mm256_load_ps(buf[r] + j);
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                __m256 xv = _mm256_loadu_ps(x + i * ldx + k0 + j);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) acc[i][r] = _mm256_fmadd_ps(xv, wv[r], acc[i][r]);
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[i * ldo + r] = hsum256(acc[i][r]) + 0.0f;
}

/* Q5_0 / Q5_1 / Q8_Z (KIND 0 / 1 / 2) with the weights in registers (rows past n_n repeat row
 * 0, not stored; the 4 rows' region two tiles ahead prefetched in step). Same values and order
 * as gemv_tile. */
static inline __attribute__((always_inline)) void
q5_gemv_tile(float *out, int64_t ldo, const float *x, int64_t ldx, const int NT, const int KIND,
             const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    const int      bb = KIND == 2 ? 36 : KIND ? 24 : 22;
    const uint8_t *wr[4];
    for (int r = 0; r < 4; r++) wr[r] = w + (r < n_n ? r : 0) * row_bytes;
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) acc[i][r] = _mm256_setzero_ps();
    int64_t        nb = K / 32, pf_step = (4 * row_bytes + nb - 1) / nb;
    const uint8_t *pf = w + 8 * row_bytes;
    for (int64_t b = 0; b < nb; b++, pf += pf_step) {
        for (int64_t o = 0; o < pf_step; o += 64) _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
        __m256 wv[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) blk32_regs(wr[r] + bb * b, KIND, wv[r]);
#pragma GCC unroll 4
        for (int e = 0; e < 4; e++)
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                __m256 xv = _mm256_loadu_ps(x + i * ldx + 32 * b + 8 * e);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) acc[i][r] = _mm256_fmadd_ps(xv, wv[r][e], acc[i][r]);
            }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[i * ldo + r] = hsum256(acc[i][r]) + 0.0f;
}

/* Q4_K / Q5_K with the weights in registers, as q5_gemv_tile. */
static inline __attribute__((always_inline)) void
k45_gemv_tile(float *out, int64_t ldo, const float *x, int64_t ldx, const int NT, const int FIVE,
              const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    const int      bb = FIVE ? 176 : 144;
    const uint8_t *wr[4];
    for (int r = 0; r < 4; r++) wr[r] = w + (r < n_n ? r : 0) * row_bytes;
    __m256 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) acc[i][r] = _mm256_setzero_ps();
    int64_t        nb = K / 256, pf_step = (4 * row_bytes + nb - 1) / nb;
    const uint8_t *pf = w + 8 * row_bytes;
    for (int64_t b = 0; b < nb; b++, pf += pf_step) {
        for (int64_t o = 0; o < pf_step; o += 64) _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
        float sc[4][16];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) k45_scales_of(wr[r] + bb * b, sc[r]);
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            __m256 wv[4][4];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) k45_regs(wr[r] + bb * b, sc[r], s, FIVE, wv[r]);
#pragma GCC unroll 4
            for (int e = 0; e < 4; e++)
#pragma GCC unroll 4
                for (int i = 0; i < NT; i++) {
                    __m256 xv = _mm256_loadu_ps(x + i * ldx + 256 * b + 32 * s + 8 * e);
#pragma GCC unroll 4
                    for (int r = 0; r < 4; r++) acc[i][r] = _mm256_fmadd_ps(xv, wv[r][e], acc[i][r]);
                }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[i * ldo + r] = hsum256(acc[i][r]) + 0.0f;
}

#define GEMV_VARIANT(NT)                                                                           \
    static void gemv_##NT(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx,     \
                          const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {               \
        switch (t) { /* one copy per type: the dequantiser inlined into the loop */              \
        case LLMRT_DTYPE_Q4_K: k45_gemv_tile(out, ldo, x, ldx, NT, 0, w, row_bytes, n_n, K); break; \
        case LLMRT_DTYPE_Q5_K: k45_gemv_tile(out, ldo, x, ldx, NT, 1, w, row_bytes, n_n, K); break; \
        case LLMRT_DTYPE_Q6_K: gemv_tile(LLMRT_DTYPE_Q6_K, out, ldo, x, ldx, NT, w, row_bytes, n_n, K); break; \
        case LLMRT_DTYPE_Q5_0: q5_gemv_tile(out, ldo, x, ldx, NT, 0, w, row_bytes, n_n, K); break;  \
        case LLMRT_DTYPE_Q5_1: q5_gemv_tile(out, ldo, x, ldx, NT, 1, w, row_bytes, n_n, K); break;  \
        case LLMRT_DTYPE_Q8_Z: q5_gemv_tile(out, ldo, x, ldx, NT, 2, w, row_bytes, n_n, K); break;  \
        default: gemv_tile(t, out, ldo, x, ldx, NT, w, row_bytes, n_n, K); break;                 \
        }                                                                                          \
    }
GEMV_VARIANT(1)
GEMV_VARIANT(2)
GEMV_VARIANT(3)
GEMV_VARIANT(4)

static void gemv_avx2(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx,
                      int n_t, const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    switch (n_t) {
    case 1: gemv_1(t, out, ldo, x, ldx, w, row_bytes, n_n, K); break;
    case 2: gemv_2(t, out, ldo, x, ldx, w, row_bytes, n_n, K); break;
    case 3: gemv_3(t, out, ldo, x, ldx, w, row_bytes, n_n, K); break;
    default: gemv_4(t, out, ldo, x, ldx, w, row_bytes, n_n, K); break;
    }
}

llmrt_cpu_kq_kernels llmrt_cpu_kq_kernels_avx2(void) {
    return (llmrt_cpu_kq_kernels){.isa = "avx2", .dequant_row = dequant_row_avx2, .gemv = gemv_avx2};
}
