/* AVX512-VNNI K-quant x q8_K kernels (kq_q8_kernels.h; compiled with -mavx512f/bw/vl/dq
 * -mavx512vnni -mfma -mf16c). 64 unsigned weight bytes times 64 int8 activations per vpdpbusd
 * (4 products into each of 16 dwords: at most 4 * 63 * 127 = 32004, an int16), then vpdpwssd
 * multiplies every dword by its sub-block's scale (the dword read as an int16 pair (value, sign)
 * against the word pair (scale, 0)) and accumulates, one instruction each.
 *
 * Layouts per zmm:
 *   Q4_K / Q5_K  64 bytes of qs hold sub-blocks (2i, 2i+2) (low nibbles of bytes 0-31 | 32-63)
 *                and (2i+1, 2i+3) (high nibbles), i = 0, 2; the activations are loaded to match
 *                (two 32-byte halves); Q5_K's fifth bit is one vptestmb against a per-half bit
 *                mask and a masked add of 16.
 *   Q6_K         64 bytes of ql hold 64 consecutive weights (low nibbles: elements 128h + 0..63,
 *                high: 128h + 64..127), qh (32 bytes, both halves) shifted per half by vpsllvw /
 *                vpsrlvw so that the right two bits land at bits 4-5.
 * The block's int32 sums S_b and M_b are reduced horizontally and accumulated in fp32 exactly
 * as the portable kernel does (same bits). */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "../../format/ggml_quants.h"
#include "i8_gemm.h"
#include "kq_q8_kernels.h"
#include "kq_q8_scales.h"

static inline float f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline __m256i load256(const void *p) {
    return _mm256_loadu_si256((const __m256i *)p);
}

/* two 32-byte pieces as one zmm (low, high) */
static inline __m512i load2x256(const void *lo, const void *hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(load256(lo)), load256(hi), 1);
}

/* (sum of the 16 lanes of s, sum of the 8 lanes of m) */
static inline void hsum2(__m512i s, __m256i m, int32_t *S, int32_t *M) {
    __m256i s8 = _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64(s, 1));
    __m256i h = _mm256_hadd_epi32(s8, m); /* s01 s23 m01 m23 | s45 s67 m45 m67 */
    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    x = _mm_hadd_epi32(x, x);
    *S = _mm_cvtsi128_si32(x);
    *M = _mm_extract_epi32(x, 1);
}

/* The activations of a block in the Q4_K / Q5_K sub-block pairing: (0, 2), (1, 3), (4, 6),
 * (5, 7); computed once per token and block, shared by every row. */
typedef struct q45_x {
    __m512i v[4];
} q45_x;

static inline q45_x q45_x_of(const int8_t *q) {
    q45_x x;
    x.v[0] = load2x256(q, q + 64);
    x.v[1] = load2x256(q + 32, q + 96);
    x.v[2] = load2x256(q + 128, q + 192);
    x.v[3] = load2x256(q + 160, q + 224);
    return x;
}

static inline __attribute__((always_inline)) void q45k_block(const uint8_t *b, const q45_x *x,
                                                             const int16_t *bs, const int five,
                                                             int32_t *S, int32_t *M) {
    uint64_t sc8, m8;
    llmrt_kq8_scales_mins(b, &sc8, &m8);
    __m512i sc = _mm512_cvtepu8_epi32(_mm_cvtsi64_si128((int64_t)sc8)); /* dword s = sc[s] */
    __m256i mm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((int64_t)m8));
    mm = _mm256_or_si256(mm, _mm256_slli_epi32(mm, 16)); /* (m, m) word pairs */
    __m256i msum = _mm256_madd_epi16(load256(bs), mm);   /* m[s] * bsum32[s] */

    const __m512i m4 = _mm512_set1_epi8(0x0f);
    const uint8_t *qs = b + (five ? 48 : 16);
    __m512i qh = five ? _mm512_broadcast_i64x4(load256(b + 16)) : _mm512_setzero_si512();
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        __m512i raw = _mm512_loadu_si512(qs + 64 * i);
        __m512i w[2] = {_mm512_and_si512(raw, m4), _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4)};
#pragma GCC unroll 2
        for (int n = 0; n < 2; n++) {
            int sa = 4 * i + n, sb = sa + 2; /* sub-blocks in the low / high half */
            if (five) {
                __m512i bit = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << sa)),
                                                 _mm256_set1_epi8((char)(1 << sb)), 1);
                __mmask64 k = _mm512_test_epi8_mask(qh, bit);
                w[n] = _mm512_mask_add_epi8(w[n], k, w[n], _mm512_set1_epi8(16));
            }
            __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(sa), _mm256_set1_epi32(sb), 1);
            __m512i scv = _mm512_permutexvar_epi32(idx, sc);
            __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[n], x->v[2 * i + n]);
            acc = _mm512_dpwssd_epi32(acc, dp, scv);
        }
    }
    hsum2(acc, msum, S, M);
}

static inline __attribute__((always_inline)) int32_t q6k_block(const uint8_t *b, const int8_t *q,
                                                               const int16_t *bs) {
    __m128i sc16 = _mm_loadu_si128((const __m128i *)(b + 192));
    /* dword j = (sc[j], 0) as a word pair: the high word must be 0, not the sign */
    __m512i sc = _mm512_and_si512(_mm512_cvtepi8_epi32(sc16), _mm512_set1_epi32(0xffff));
    __m256i corr = _mm256_madd_epi16(_mm256_cvtepi8_epi16(sc16), load256(bs));
    const __m512i m4 = _mm512_set1_epi8(0x0f), m30 = _mm512_set1_epi8(0x30);
    /* per 16-bit lane of the low / high 32 bytes: c = 0 | 1 take qh << 4 | << 2, c = 2 | 3
     * take qh >> 0 | >> 2 (bits 2c, 2c + 1 to bits 4, 5) */
    const __m512i shl = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(2), 1);
    const __m512i shr = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    __m512i acc = _mm512_setzero_si512();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        __m512i ql = _mm512_loadu_si512(b + 64 * h);
        __m512i qh = _mm512_broadcast_i64x4(load256(b + 128 + 32 * h));
        __m512i w0 = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                     _mm512_and_si512(_mm512_sllv_epi16(qh, shl), m30));
        __m512i w1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                     _mm512_and_si512(_mm512_srlv_epi16(qh, shr), m30));
        /* dword lane l of w0 covers elements 128h + 4l .. +3: sub-block 8h + l / 4 */
        __m512i idx0 = _mm512_srli_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2);
        idx0 = _mm512_add_epi32(idx0, _mm512_set1_epi32(8 * h));
        __m512i idx1 = _mm512_add_epi32(idx0, _mm512_set1_epi32(4));
        __m512i d0 =
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), w0, _mm512_loadu_si512(q + 128 * h));
        __m512i d1 =
            _mm512_dpbusd_epi32(_mm512_setzero_si512(), w1, _mm512_loadu_si512(q + 128 * h + 64));
        acc = _mm512_dpwssd_epi32(acc, d0, _mm512_permutexvar_epi32(idx0, sc));
        acc = _mm512_dpwssd_epi32(acc, d1, _mm512_permutexvar_epi32(idx1, sc));
    }
    int32_t S, C;
    hsum2(acc, corr, &S, &C);
    return S - 32 * C;
}

static inline __attribute__((always_inline)) void gemm_type(const int TYPE, float *out, int64_t ldo,
                                                            const llmrt_cpu_xq8k *xq, int64_t M,
                                                            const uint8_t *w, int64_t row_bytes,
                                                            int n_rows) {
    const int bb = TYPE == 4 ? 144 : TYPE == 5 ? 176 : 210;
    int64_t nb = xq->K / 256;
    for (int64_t t = 0; t < M; t++) {
        const int8_t *q = xq->q + t * xq->K;
        const float *dx = xq->d + t * nb;
        const int16_t *bs = xq->bsums + t * (xq->K / 16);
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        /* the first token prefetches the rows' region two calls ahead in step (see q5_tile),
         * into L2 (T1): as in i8_gemm_avx512.c's tile1, T0 prefetches stall on L1's miss
         * buffers */
        int64_t pf_step = t == 0 ? (4 * row_bytes + nb - 1) / nb : 0;
        const uint8_t *pf = w + 8 * row_bytes;
        for (int64_t b = 0; b < nb; b++, pf += pf_step) {
            for (int64_t o = 0; o < pf_step; o += 64)
                _mm_prefetch((const char *)pf + o, _MM_HINT_T1);
            q45_x xb;
            if (TYPE != 6) xb = q45_x_of(q + 256 * b);
            for (int r = 0; r < n_rows; r++) {
                const uint8_t *blk = w + r * row_bytes + b * bb;
                if (TYPE == 6) {
                    int32_t S = q6k_block(blk, q + 256 * b, bs + 16 * b);
                    float dd = f16_at(blk + 208) * dx[b];
                    acc[r] = fmaf((float)S, dd, acc[r]);
                } else {
                    int32_t S, Mn;
                    q45k_block(blk, &xb, bs + 16 * b, TYPE == 5, &S, &Mn);
                    float dd = f16_at(blk) * dx[b], dm = f16_at(blk + 2) * dx[b];
                    acc[r] = fmaf((float)S, dd, acc[r]);
                    acc[r] = fmaf((float)-Mn, dm, acc[r]);
                }
            }
        }
        for (int r = 0; r < n_rows; r++)
            out[t * ldo + r] = acc[r];
    }
}

static void gemm_avx512(llmrt_dtype type, float *out, int64_t ldo, const llmrt_cpu_xq8k *xq,
                        int64_t M, const uint8_t *w, int64_t row_bytes, int n_rows) {
    if (type == LLMRT_DTYPE_Q4_K)
        gemm_type(4, out, ldo, xq, M, w, row_bytes, n_rows);
    else if (type == LLMRT_DTYPE_Q5_K)
        gemm_type(5, out, ldo, xq, M, w, row_bytes, n_rows);
    else
        gemm_type(6, out, ldo, xq, M, w, row_bytes, n_rows);
}

static void quantize_avx512(llmrt_cpu_xq8k *xq, const float *x, int64_t ldx, int64_t M) {
    llmrt_cpu_kq8_kernels_generic().quantize(xq, x, ldx, M); /* ~1 % of a matmul: scalar */
}

/* Q5_0 / Q5_1 (kq_q8_kernels.h), two blocks per zmm (lanes 0-7: block b, even; 8-15: b + 1):
 * the two blocks' 16 nibble bytes widened to 64 (low | high nibbles of each), the fifth bits
 * added as 16 under the two qh words as one 64-bit mask, one vpdpbusd, one fma with the two
 * blocks' d * d_b; the offsets as an fma on a 2-lane vector. NT tokens x 4 rows in flight (rows
 * past n_rows repeat row 0, not stored). An odd last block goes to lanes 0-7 alone. */
static inline __m128 f16_pair(const uint8_t *a, const uint8_t *b) {
    uint16_t x, y;
    memcpy(&x, a, 2);
    memcpy(&y, b, 2);
    return _mm_cvtph_ps(_mm_cvtsi32_si128((int)(x | (uint32_t)y << 16))); /* x, y, 0, 0 */
}

static inline __m128 f32_pair(const float *p) {
    /* p[0], p[1], 0, 0 (movq: an unaligned 8-byte load, p need only be float-aligned) */
    return _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)p));
}

static inline __attribute__((always_inline)) void q5_tile(const int MIN, float *out, int64_t ldo,
                                                          const llmrt_cpu_xq *xq, int64_t t0,
                                                          const int NT, const uint8_t *w,
                                                          int64_t row_bytes, int n_rows) {
    const int bb = MIN ? 24 : 22, qs_at = MIN ? 8 : 6, qh_at = MIN ? 4 : 2;
    int64_t nb = xq->K / 32;
    const uint8_t *wr[4];
    for (int r = 0; r < 4; r++)
        wr[r] = w + (r < n_rows ? r : 0) * row_bytes;
    __m512 L[4][4];
    __m128 O[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            L[i][r] = _mm512_setzero_ps(), O[i][r] = _mm_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m512i pick2 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi32(1), 1);
    /* the 4 rows are one contiguous region of 4 * row_bytes (a few hundred bytes at SmolLM2's
     * K): a per-row prefetch a few blocks ahead lands in rows being read already, so the region
     * two calls ahead (the next rows of the task) is prefetched in step, as the Q8_0 gemv does */
    int64_t pf_step = (4 * row_bytes + nb / 2) / (nb / 2 > 0 ? nb / 2 : 1);
    const uint8_t *pf = w + 8 * row_bytes;
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2, pf += pf_step) {
        for (int64_t o = 0; o < pf_step; o += 64)
            _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
        __m512i wv[4];
        __m128 d2[4], off2[4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint8_t *b0 = wr[r] + b * bb, *b1 = b0 + bb;
            __m256i v = _mm256_inserti128_si256(
                _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(b0 + qs_at))),
                _mm_loadu_si128((const __m128i *)(b1 + qs_at)), 1);
            __m256i lo = _mm256_and_si256(v, m4),
                    hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
            /* (lo0, lo1, hi0, hi1) -> (lo0, hi0, lo1, hi1) in 128-bit pieces */
            __m512i u =
                _mm512_shuffle_i64x2(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1),
                                     _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), 0xd8);
            uint32_t h0, h1;
            memcpy(&h0, b0 + qh_at, 4);
            memcpy(&h1, b1 + qh_at, 4);
            wv[r] = _mm512_mask_add_epi8(u, _cvtu64_mask64(h0 | (uint64_t)h1 << 32), u,
                                         _mm512_set1_epi8(16));
            d2[r] = f16_pair(b0, b1);
            off2[r] = MIN ? f16_pair(b0 + 2, b1 + 2) : _mm_mul_ps(_mm_set1_ps(-16.0f), d2[r]);
        }
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++) {
            int64_t t = t0 + i;
            __m512i xv = _mm512_loadu_si512(xq->q + t * xq->K + 32 * b);
            __m128 dx2 = f32_pair(xq->d + t * nb + b), sx2 = f32_pair(xq->s + t * nb + b);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m512i dp = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[r], xv);
                __m512 sd =
                    _mm512_permutexvar_ps(pick2, _mm512_castps128_ps512(_mm_mul_ps(d2[r], dx2)));
                L[i][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dp), sd, L[i][r]);
                O[i][r] = _mm_fmadd_ps(off2[r], sx2, O[i][r]);
            }
        }
    }
    if (b < nb) { /* odd last block: lanes 0-7 and offset lane 0 */
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const uint8_t *blk = wr[r] + b * bb;
            __m128i v = _mm_loadu_si128((const __m128i *)(blk + qs_at));
            uint32_t qh;
            memcpy(&qh, blk + qh_at, 4);
            __m256i u =
                _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), _mm256_castsi256_si128(m4)),
                                 _mm_and_si128(v, _mm256_castsi256_si128(m4)));
            u = _mm256_mask_add_epi8(u, _cvtu32_mask32(qh), u, _mm256_set1_epi8(16));
            float d = f16_at(blk), off = MIN ? f16_at(blk + 2) : -16.0f * d;
#pragma GCC unroll 4
            for (int i = 0; i < NT; i++) {
                int64_t t = t0 + i;
                __m256i dp = _mm256_dpbusd_epi32(_mm256_setzero_si256(), u,
                                                 load256(xq->q + t * xq->K + 32 * b));
                __m256 l =
                    _mm256_fmadd_ps(_mm256_cvtepi32_ps(dp), _mm256_set1_ps(d * xq->d[t * nb + b]),
                                    _mm512_castps512_ps256(L[i][r]));
                L[i][r] = _mm512_insertf32x8(L[i][r], l, 0);
                O[i][r] = _mm_fmadd_ps(_mm_set_ss(off), _mm_set_ss(xq->s[t * nb + b]),
                                       O[i][r]); /* lanes 1-3: + 0 * 0 */
            }
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            if (r >= n_rows) continue;
            __m256 m =
                _mm256_add_ps(_mm512_castps512_ps256(L[i][r]), _mm512_extractf32x8_ps(L[i][r], 1));
            __m128 a = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            __m128 h = _mm_add_ps(a, _mm_movehl_ps(a, a)); /* (a0 + a2), (a1 + a3) */
            float s = _mm_cvtss_f32(h) + _mm_cvtss_f32(_mm_shuffle_ps(h, h, 1));
            float o = _mm_cvtss_f32(O[i][r]) + _mm_cvtss_f32(_mm_shuffle_ps(O[i][r], O[i][r], 1));
            out[(t0 + i) * ldo + r] = s + o;
        }
}

static void q5_gemm_avx512(llmrt_dtype type, float *out, int64_t ldo, const llmrt_cpu_xq *xq,
                           int64_t M, const uint8_t *w, int64_t row_bytes, int n_rows) {
    int MIN = type == LLMRT_DTYPE_Q5_1;
    int64_t t = 0;
    for (; t + 4 <= M; t += 4)
        if (MIN)
            q5_tile(1, out, ldo, xq, t, 4, w, row_bytes, n_rows);
        else
            q5_tile(0, out, ldo, xq, t, 4, w, row_bytes, n_rows);
    for (; t < M; t++)
        if (MIN)
            q5_tile(1, out, ldo, xq, t, 1, w, row_bytes, n_rows);
        else
            q5_tile(0, out, ldo, xq, t, 1, w, row_bytes, n_rows);
}

llmrt_cpu_kq8_kernels llmrt_cpu_kq8_kernels_avx512(void) {
    return (llmrt_cpu_kq8_kernels){.isa = "avx512",
                                   .quantize = quantize_avx512,
                                   .gemm = gemm_avx512,
                                   .q5_gemm = q5_gemm_avx512};
}
