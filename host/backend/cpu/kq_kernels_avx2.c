/* AVX2 + FMA kernels for packed GGUF blocks (kq_kernels.h; compiled with -mavx2 -mfma -mf16c).
 * Q4_K, Q5_K, Q6_K, Q5_0 and Q5_1 blocks are dequantised 8 weights at a time (bytes widened to
 * dwords, shifts and masks, int -> fp32, the scale with the reference's rounding steps; opaque()
 * keeps GCC from contracting a product and the following add into an fma), Q2_K and Q3_K by the
 * scalar reference (format/ggml_quants.c), into an L1 buffer; gemv then mirrors dot_tile of
 * cpu_kernels_avx2.c (one 8-lane accumulator per output, k in steps of 8, hsum256 + the empty
 * tail), so it is bit-identical to dequant_row + dot_tile. */
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

static inline __m256 opaque(__m256 v) {
    __asm__("" : "+x"(v));
    return v;
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

static void q45k_block(const uint8_t *b, float *y, const int five) {
    float          d = f16_at(b), dmin = f16_at(b + 2);
    const uint8_t *qh = b + 16, *qs = b + (five ? 48 : 16);
    const __m256i  m4 = _mm256_set1_epi32(0x0f), one = _mm256_set1_epi32(1);
    for (int s = 0; s < 8; s++) {
        uint8_t sc, m;
        llmrt_ggml_k4_scale_min(s, b + 4, &sc, &m);
        __m256 d1 = _mm256_set1_ps(d * (float)sc), m1 = _mm256_set1_ps(dmin * (float)m);
        for (int h = 0; h < 4; h++) {
            __m256i q = load8_u8(qs + 32 * (s / 2) + 8 * h);
            q         = (s & 1) ? _mm256_srli_epi32(q, 4) : _mm256_and_si256(q, m4);
            if (five)
                q = _mm256_or_si256(
                    q, _mm256_slli_epi32(_mm256_and_si256(shr(load8_u8(qh + 8 * h), s), one), 4));
            __m256 w = _mm256_sub_ps(opaque(_mm256_mul_ps(d1, _mm256_cvtepi32_ps(q))), m1);
            _mm256_storeu_ps(y + 32 * s + 8 * h, w);
        }
    }
}

static void q6k_block(const uint8_t *b, float *y) {
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

static void q5x_block(const uint8_t *b, float *y, const int has_min) {
    float    d = f16_at(b), m = has_min ? f16_at(b + 2) : 0.0f;
    uint32_t qh;
    memcpy(&qh, b + (has_min ? 4 : 2), 4);
    const uint8_t *qs   = b + (has_min ? 8 : 6);
    const __m256i  iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i  m4 = _mm256_set1_epi32(0x0f), one = _mm256_set1_epi32(1);
    __m256i        hv = _mm256_set1_epi32((int)qh);
    __m256         dv = _mm256_set1_ps(d), mv = _mm256_set1_ps(m);
    for (int e = 0; e < 4; e++) { /* elements 8e .. 8e + 7 */
        __m256i raw = load8_u8(qs + 8 * (e & 1));
        __m256i q   = e < 2 ? _mm256_and_si256(raw, m4) : _mm256_srli_epi32(raw, 4);
        __m256i hb  = _mm256_and_si256(
            _mm256_srlv_epi32(hv, _mm256_add_epi32(iota, _mm256_set1_epi32(8 * e))), one);
        q        = _mm256_or_si256(q, _mm256_slli_epi32(hb, 4));
        __m256 w = has_min ? _mm256_add_ps(opaque(_mm256_mul_ps(_mm256_cvtepi32_ps(q), dv)), mv)
                           : _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(
                                               q, _mm256_set1_epi32(16))),
                                           dv);
        _mm256_storeu_ps(y + 8 * e, w);
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
    for (int64_t k0 = 0, b = 0; k0 < K; k0 += be, b++) {
        for (int r = 0; r < n_n; r++) {
            const uint8_t *blk = w + r * row_bytes + b * bb;
            for (int64_t o = 0; o < bb; o += 64)
                _mm_prefetch((const char *)blk + 4 * bb + o, _MM_HINT_T0);
            dequant_block(t, blk, buf[r]);
        }
        for (int64_t j = 0; j < be; j += 8) {
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

#define GEMV_VARIANT(NT)                                                                           \
    static void gemv_##NT(llmrt_dtype t, float *out, int64_t ldo, const float *x, int64_t ldx,     \
                          const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {               \
        gemv_tile(t, out, ldo, x, ldx, NT, w, row_bytes, n_n, K);                                  \
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
