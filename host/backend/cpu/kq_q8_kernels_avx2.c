/* AVX2 K-quant x q8_K kernels (kq_q8_kernels.h; compiled with -mavx2 -mfma -mf16c), llama.cpp's
 * way: 32 unsigned weight bytes times 32 int8 activations by vpmaddubsw (pairs into int16, no
 * saturation: at most 2 * 63 * 127), then vpmaddwd with the sub-block scales into int32. The
 * block's int32 sums S_b and M_b are reduced horizontally and accumulated in fp32 exactly as the
 * portable kernel does (same bits). Q5_0 / Q5_1 the same way against i8_gemm.h's activations. */
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

/* (sum of the 8 lanes of s, sum of the 8 lanes of m) */
static inline void hsum2(__m256i s, __m256i m, int32_t *S, int32_t *M) {
    __m256i h = _mm256_hadd_epi32(s, m); /* s01 s23 m01 m23 | s45 s67 m45 m67 */
    __m128i x = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    x = _mm_hadd_epi32(x, x); /* S M S M */
    *S = _mm_cvtsi128_si32(x);
    *M = _mm_extract_epi32(x, 1);
}

/* Q4_K / Q5_K block: S_b in the lanes of *s, M_b in those of *m */
static inline __attribute__((always_inline)) void q45k_block(const uint8_t *b, const int8_t *q,
                                                             const int16_t *bs, const int five,
                                                             int32_t *S, int32_t *M) {
    uint64_t sc8, m8;
    llmrt_kq8_scales_mins(b, &sc8, &m8);
    /* scales as int16 in both 128-bit lanes; sub-block s is word s, broadcast by vpshufb */
    __m256i scw = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(_mm_cvtsi64_si128((int64_t)sc8)));
    /* mins as (m, m) word pairs: one vpmaddwd with the 16 bsums gives m[s] * bsum32[s] */
    __m256i mm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((int64_t)m8));
    mm = _mm256_or_si256(mm, _mm256_slli_epi32(mm, 16));
    __m256i msum = _mm256_madd_epi16(load256(bs), mm);

    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const uint8_t *qs = b + (five ? 48 : 16);
    __m256i qh = five ? load256(b + 16) : _mm256_setzero_si256();
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
        __m256i raw = load256(qs + 32 * j);
        __m256i w0 = _mm256_and_si256(raw, m4),
                w1 = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        if (five) {
            const __m256i one = _mm256_set1_epi8(1);
            __m256i h0 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * j), one);
            __m256i h1 = _mm256_and_si256(_mm256_srli_epi16(qh, 2 * j + 1), one);
            w0 = _mm256_or_si256(w0, _mm256_slli_epi16(h0, 4));
            w1 = _mm256_or_si256(w1, _mm256_slli_epi16(h1, 4));
        }
        __m256i s0 = _mm256_shuffle_epi8(scw, _mm256_set1_epi16((short)(0x0100 + 0x0202 * 2 * j)));
        __m256i s1 =
            _mm256_shuffle_epi8(scw, _mm256_set1_epi16((short)(0x0100 + 0x0202 * (2 * j + 1))));
        __m256i p0 = _mm256_madd_epi16(_mm256_maddubs_epi16(w0, load256(q + 64 * j)), s0);
        __m256i p1 = _mm256_madd_epi16(_mm256_maddubs_epi16(w1, load256(q + 64 * j + 32)), s1);
        acc = _mm256_add_epi32(acc, _mm256_add_epi32(p0, p1));
    }
    hsum2(acc, msum, S, M);
}

/* Q6_K block's S_b (the -32 of every weight through the bsums) */
static inline __attribute__((always_inline)) int32_t q6k_block(const uint8_t *b, const int8_t *q,
                                                               const int16_t *bs) {
    __m128i sc16 = _mm_loadu_si128((const __m128i *)(b + 192));
    __m256i scw = _mm256_cvtepi8_epi16(sc16); /* s0..s7 | s8..s15 */
    __m256i corr = _mm256_madd_epi16(scw, load256(bs));
    const __m256i m4 = _mm256_set1_epi8(0x0f), m30 = _mm256_set1_epi8(0x30);
    __m256i acc = _mm256_setzero_si256();
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++) {
        /* the 8 scales of this half in both lanes (words), then per 32 elements (c) sub-blocks
         * 8h + 2c (low lane) and 8h + 2c + 1 (high lane) */
        __m256i sh = h ? _mm256_permute4x64_epi64(scw, 0xee) : _mm256_permute4x64_epi64(scw, 0x44);
        __m256i ql0 = load256(b + 64 * h), ql1 = load256(b + 64 * h + 32);
        __m256i qh = load256(b + 128 + 32 * h);
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m256i lo = c == 0 ? ql0 : c == 1 ? ql1 : _mm256_srli_epi16(c == 2 ? ql0 : ql1, 4);
            __m256i hb =
                c < 2 ? _mm256_slli_epi16(qh, 4 - 2 * c) : _mm256_srli_epi16(qh, 2 * c - 4);
            __m256i w = _mm256_or_si256(_mm256_and_si256(lo, m4), _mm256_and_si256(hb, m30));
            /* word 2c in the low lane, 2c + 1 in the high: bytes 4c, 4c+1 / 4c+2, 4c+3 */
            __m256i sel =
                _mm256_setr_epi8(4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c,
                                 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1,
                                 4 * c, 4 * c + 1, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3,
                                 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3,
                                 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3);
            __m256i s = _mm256_shuffle_epi8(sh, sel);
            __m256i p = _mm256_maddubs_epi16(w, load256(q + 128 * h + 32 * c));
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
        }
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
        for (int r = 0; r < n_rows; r++) {
            const uint8_t *row = w + r * row_bytes;
            float acc = 0.0f;
            for (int64_t b = 0; b < nb; b++) {
                const uint8_t *blk = row + b * bb;
                _mm_prefetch((const char *)blk + 4 * bb, _MM_HINT_T0);
                _mm_prefetch((const char *)blk + 4 * bb + 64, _MM_HINT_T0);
                _mm_prefetch((const char *)blk + 4 * bb + 128, _MM_HINT_T0);
                if (TYPE == 6) {
                    int32_t S = q6k_block(blk, q + 256 * b, bs + 16 * b);
                    float dd = f16_at(blk + 208) * dx[b];
                    acc = fmaf((float)S, dd, acc);
                } else {
                    int32_t S, Mn;
                    q45k_block(blk, q + 256 * b, bs + 16 * b, TYPE == 5, &S, &Mn);
                    float dd = f16_at(blk) * dx[b], dm = f16_at(blk + 2) * dx[b];
                    acc = fmaf((float)S, dd, acc);
                    acc = fmaf((float)-Mn, dm, acc);
                }
            }
            out[t * ldo + r] = acc;
        }
    }
}

static void gemm_avx2(llmrt_dtype type, float *out, int64_t ldo, const llmrt_cpu_xq8k *xq,
                      int64_t M, const uint8_t *w, int64_t row_bytes, int n_rows) {
    if (type == LLMRT_DTYPE_Q4_K)
        gemm_type(4, out, ldo, xq, M, w, row_bytes, n_rows);
    else if (type == LLMRT_DTYPE_Q5_K)
        gemm_type(5, out, ldo, xq, M, w, row_bytes, n_rows);
    else
        gemm_type(6, out, ldo, xq, M, w, row_bytes, n_rows);
}

/* Q5_0 / Q5_1 x int8 activations (i8_gemm.h's xq): the block's 32 5-bit weights as unsigned
 * bytes (low nibbles: columns 0-15, high: 16-31, bit 4 from qh), vpmaddubsw with the 32 int8
 * activations (at most 2 * 31 * 127 per pair) and vpmaddwd with ones: lane l = the exact dot
 * product of columns 4l .. 4l + 3. Then the portable kernel's fp32 steps: per lane
 * L[parity] = fma(dot, d * dx, L[parity]) for even and odd blocks apart, O[parity] =
 * fma(off, s, O[parity]), and its final sum order (same bits). NT tokens share a row's unpacked
 * block. */
static inline __attribute__((always_inline)) __m256i q5_unpack(const uint8_t *qs, uint32_t qh) {
    const __m128i m4 = _mm_set1_epi8(0x0f);
    __m128i       v  = _mm_loadu_si128((const __m128i *)qs);
    __m256i       u  = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m4),
                                       _mm_and_si128(v, m4));
    /* bit j of qh to byte j: byte j gets qh's byte j / 8, then its bit j % 8 is tested */
    const __m256i spread = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                                            2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit    = _mm256_set1_epi64x((int64_t)0x8040201008040201ull);
    __m256i       h      = _mm256_shuffle_epi8(_mm256_set1_epi32((int32_t)qh), spread);
    h                    = _mm256_cmpeq_epi8(_mm256_and_si256(h, bit), bit);
    return _mm256_or_si256(u, _mm256_and_si256(h, _mm256_set1_epi8(16)));
}

static inline __attribute__((always_inline)) void q5_tile(const int MIN, const int NT, float *out,
                                                          int64_t ldo, const llmrt_cpu_xq *xq,
                                                          int64_t t0, const uint8_t *row) {
    const int     bb = MIN ? 24 : 22, qh_at = MIN ? 4 : 2, qs_at = MIN ? 8 : 6;
    const int64_t nb = xq->K / 32;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256        L[4][2];
    float         O[4][2];
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++) {
        L[i][0] = L[i][1] = _mm256_setzero_ps();
        O[i][0] = O[i][1] = 0.0f;
    }
    for (int64_t b = 0; b < nb; b++) {
        const uint8_t *blk = row + b * bb;
        uint32_t       qh;
        memcpy(&qh, blk + qh_at, 4);
        _mm_prefetch((const char *)blk + 8 * bb, _MM_HINT_T0);
        __m256i u   = q5_unpack(blk + qs_at, qh);
        float   d   = f16_at(blk), off = MIN ? f16_at(blk + 2) : -16.0f * d;
        int     par = (int)(b & 1);
#pragma GCC unroll 4
        for (int i = 0; i < NT; i++) {
            int64_t t  = t0 + i;
            __m256i x  = load256(xq->q + t * xq->K + 32 * b);
            __m256i dp = _mm256_madd_epi16(_mm256_maddubs_epi16(u, x), ones);
            __m256  sd = _mm256_set1_ps(d * xq->d[t * nb + b]);
            L[i][par]  = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dp), sd, L[i][par]);
            O[i][par]  = fmaf(off, xq->s[t * nb + b], O[i][par]);
        }
    }
#pragma GCC unroll 4
    for (int i = 0; i < NT; i++) {
        __m256 m = _mm256_add_ps(L[i][0], L[i][1]);
        __m128 a = _mm_add_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        __m128 h = _mm_add_ps(a, _mm_movehl_ps(a, a)); /* (m0 + m4) + (m2 + m6), (m1 + m5) + ... */
        out[(t0 + i) * ldo] = (_mm_cvtss_f32(h) + _mm_cvtss_f32(_mm_shuffle_ps(h, h, 1))) +
                              (O[i][0] + O[i][1]);
    }
}

static void q5_gemm_avx2(llmrt_dtype type, float *out, int64_t ldo, const llmrt_cpu_xq *xq,
                         int64_t M, const uint8_t *w, int64_t row_bytes, int n_rows) {
    int MIN = type == LLMRT_DTYPE_Q5_1;
    for (int r = 0; r < n_rows; r++) {
        const uint8_t *row = w + r * row_bytes;
        int64_t        t   = 0;
        for (; t + 4 <= M; t += 4)
            if (MIN) q5_tile(1, 4, out + r, ldo, xq, t, row);
            else q5_tile(0, 4, out + r, ldo, xq, t, row);
        for (; t < M; t++)
            if (MIN) q5_tile(1, 1, out + r, ldo, xq, t, row);
            else q5_tile(0, 1, out + r, ldo, xq, t, row);
    }
}

static void quantize_avx2(llmrt_cpu_xq8k *xq, const float *x, int64_t ldx, int64_t M) {
    llmrt_cpu_kq8_kernels_generic().quantize(xq, x, ldx, M); /* ~1 % of a matmul: scalar */
}

llmrt_cpu_kq8_kernels llmrt_cpu_kq8_kernels_avx2(void) {
    return (llmrt_cpu_kq8_kernels){
        .isa = "avx2", .quantize = quantize_avx2, .gemm = gemm_avx2, .q5_gemm = q5_gemm_avx2};
}
