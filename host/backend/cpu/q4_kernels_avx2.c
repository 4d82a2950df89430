/* AVX2 + FMA 4-bit kernels (compiled with -mavx2 -mfma -mf16c).
 *
 * Each 16-byte block of 32 nibbles goes to dword lanes by immediate shifts (the layout's byte
 * order, q4_kernels.h) and is converted with the bits of the reference formulas w = ((float)q -
 * z) * s or s*q + m (in one FMA: dequant_q). gemv mirrors the fp32 dot_tile of cpu_kernels_avx2.c
 * (8-lane accumulators, k in steps of 8, hsum256 + the empty tail), so it is bit-identical to
 * dequant_rows + dot_tile. */
#include <immintrin.h>

#include "q4_kernels.h"

static inline float hsum256(__m256 v) { /* as cpu_kernels_avx2.c */
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* One vector of 8 weights from their nibbles q: s*(q - z) (zint; zs = z*s) or s*q + m. Both in
 * one FMA with the reference's bits: s and the zero term are fp16 values (11 significant bits)
 * and |q|, |q - z| <= 16, so q*s, z*s and (q - z)*s are exact in fp32, and the one rounding of
 * the FMA is the reference's (s*q + m: its only rounding is the add; s*(q - z): none). */
static inline __attribute__((always_inline)) __m256 dequant_q(__m256i q, int zint, __m256 s,
                                                               __m256 zt) {
    __m256 f = _mm256_cvtepi32_ps(q);
    return zint ? _mm256_fmsub_ps(f, s, zt) : _mm256_fmadd_ps(f, s, zt);
}

/* The 32 weights of one block as 4 vectors of 8 (columns 0-7, 8-15, 16-23, 24-31). Dword p of
 * the block's 16 bytes holds, in byte L, column 4L + p (low nibble) and 16 + 4L + p (high), so
 * with u = [block, block >> 8] (two 128-bit lanes) the nibble of column 4L + p (+8, +16, +24)
 * sits in the low 4 bits of dword p of u >> 0 (>> 16, >> 4, >> 20): immediate shifts only.
 * Spelled out, not looped over a table of shift vectors: gcc kept that table and the weights in
 * memory (a store and a reload per vector). */
static inline __attribute__((always_inline)) void dequant_block(__m256 wv[4], const uint8_t *qs,
                                                                int zint, __m256 s, __m256 z) {
    __m256  zt   = zint ? _mm256_mul_ps(z, s) : z; /* z*s exact (dequant_q) */
    __m128i v    = _mm_loadu_si128((const __m128i *)qs);
    __m256i u    = _mm256_inserti128_si256(_mm256_castsi128_si256(v), _mm_srli_epi32(v, 8), 1);
    __m256i mask = _mm256_set1_epi32(0x0f);
    wv[0]        = dequant_q(_mm256_and_si256(u, mask), zint, s, zt);
    wv[1]        = dequant_q(_mm256_and_si256(_mm256_srli_epi32(u, 16), mask), zint, s, zt);
    wv[2]        = dequant_q(_mm256_and_si256(_mm256_srli_epi32(u, 4), mask), zint, s, zt);
    wv[3]        = dequant_q(_mm256_and_si256(_mm256_srli_epi32(u, 20), mask), zint, s, zt);
}

static inline void group_header(float dst[8], const uint8_t *grp) {
    _mm256_storeu_ps(dst, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)grp)));
}

static void dequant_rows_avx2(float *out, const llmrt_cpu_q4 *w, int64_t n0, int n_rows) {
    int64_t K = w->cols, G = w->n_groups, bpg = w->group_size / LLMRT_CPU_Q4_BLOCK;
    int zint = w->zero_kind == LLMRT_Q4_ZERO_INT;
    for (int r = 0; r < n_rows; r++) {
        int64_t n = n0 + r;
        int slot = (int)(n % 4);
        const uint8_t *tile = w->data + (n / 4) * w->tile_bytes;
        float *o = out + (int64_t)r * K;
        for (int64_t g = 0; g < G; g++) {
            const uint8_t *grp = tile + g * w->group_bytes;
            float hdr[8];
            group_header(hdr, grp);
            __m256 s = _mm256_set1_ps(hdr[slot]), z = _mm256_set1_ps(hdr[4 + slot]);
            for (int64_t b = 0; b < bpg; b++, o += 32) {
                __m256 wv[4];
                dequant_block(wv, grp + 16 + 64 * b + 16 * slot, zint, s, z);
                for (int i = 0; i < 4; i++)
                    _mm256_storeu_ps(o + 8 * i, wv[i]);
            }
        }
    }
}

/* NT tokens x NTILE tiles of 4 rows (NT * NTILE <= 2: 8 accumulators), as dot_tile_2x4. Every
 * row's sum is one chain of dependent FMAs (k in steps of 8: the order that makes the result
 * bit-identical to dot_tile), so a decode step (NT = 1) is bound by the FMA latency unless
 * several rows run at once: two tiles give 8 chains. With the rest of this file's changes: one
 * token x a 1536 x 576 matrix 0.138 -> 0.093 ms best-of on a Zen 3 core (cpu_gemm_bench -M 1),
 * SmolLM2 Q4_1 exact decode 1.25x / 1.32x at 1 / 2 threads. */
static inline __attribute__((always_inline)) void gemv_tile(float *out, int64_t ldo,
                                                            const float *const xr[2], const int NT,
                                                            const int NTILE, const int ZINT,
                                                            const llmrt_cpu_q4 *w, int64_t n0,
                                                            int n_n) {
    int64_t        G = w->n_groups, bpg = w->group_size / LLMRT_CPU_Q4_BLOCK;
    const uint8_t *grp[2];
    for (int q = 0; q < NTILE; q++) grp[q] = w->data + (n0 / 4 + q) * w->tile_bytes;
    __m256 acc[2][8];
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 8
        for (int r = 0; r < 4 * NTILE; r++)
            acc[t][r] = _mm256_setzero_ps();
    int64_t k = 0;
    for (int64_t g = 0; g < G; g++) {
        float hdr[2][8];
#pragma GCC unroll 2
        for (int q = 0; q < NTILE; q++) {
            /* software prefetch two calls ahead (the next calls' rows), in step with this tile */
            for (int64_t o = 0; o < w->group_bytes; o += 64)
                _mm_prefetch((const char *)grp[q] + 2 * NTILE * w->tile_bytes + o, _MM_HINT_T0);
            group_header(hdr[q], grp[q]);
        }
        for (int64_t b = 0; b < bpg; b++) {
            /* one row at a time keeps 8 accumulators + 4 weight vectors in the 16 ymm; the
             * scales are broadcast from memory (from a register, gcc shuffled 16 times a group) */
#pragma GCC unroll 8
            for (int r = 0; r < 4 * NTILE; r++) {
                __m256 wv[4];
                dequant_block(wv, grp[r / 4] + 16 + 64 * b + 16 * (r % 4), ZINT,
                              _mm256_broadcast_ss(hdr[r / 4] + r % 4),
                              _mm256_broadcast_ss(hdr[r / 4] + 4 + r % 4));
#pragma GCC unroll 2
                for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++)
                        acc[t][r] =
                            _mm256_fmadd_ps(_mm256_loadu_ps(xr[t] + k + 8 * i), wv[i], acc[t][r]);
            }
            k += 32;
        }
#pragma GCC unroll 2
        for (int q = 0; q < NTILE; q++) grp[q] += w->group_bytes;
    }
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 8
        for (int r = 0; r < 4 * NTILE; r++)
            if (r < n_n) out[t * ldo + r] = hsum256(acc[t][r]) + 0.0f;
}

#define GEMV_VARIANT(NT, NTILE, ZINT)                                                              \
    static void gemv_##NT##_##NTILE##_##ZINT(float *out, int64_t ldo, const float *const xr[2],    \
                                             const llmrt_cpu_q4 *w, int64_t n0, int n_n) {         \
        gemv_tile(out, ldo, xr, NT, NTILE, ZINT, w, n0, n_n);                                      \
    }
GEMV_VARIANT(1, 1, 0)
GEMV_VARIANT(2, 1, 0)
GEMV_VARIANT(1, 2, 0)
GEMV_VARIANT(1, 1, 1)
GEMV_VARIANT(2, 1, 1)
GEMV_VARIANT(1, 2, 1)

typedef void (*gemv_fn)(float *, int64_t, const float *const[2], const llmrt_cpu_q4 *, int64_t,
                        int);

/* Up to 8 rows (LLMRT_CPU_Q4_AVX2_ROWS) per call: a single token runs both tiles at once; token
 * pairs run one tile at a time (2 x 4 accumulators already). */
static void gemv_avx2(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                      const llmrt_cpu_q4 *w, int64_t n0, int n_n) {
    static const gemv_fn one_tile[2][2] = {{gemv_1_1_0, gemv_2_1_0}, {gemv_1_1_1, gemv_2_1_1}};
    static const gemv_fn two_tiles[2]   = {gemv_1_2_0, gemv_1_2_1};
    int                  zint           = w->zero_kind == LLMRT_Q4_ZERO_INT;
    for (int t0 = 0; t0 < n_t; t0 += 2) {
        const float *xr[2] = {x + t0 * ldx, x + (t0 + 1 < n_t ? t0 + 1 : t0) * ldx};
        float       *o     = out + t0 * ldo;
        int          pair  = n_t - t0 >= 2;
        if (!pair && n_n > 4) {
            two_tiles[zint](o, ldo, xr, w, n0, n_n);
            continue;
        }
        for (int r = 0; r < n_n; r += 4)
            one_tile[zint][pair](o + r, ldo, xr, w, n0 + r, n_n - r < 4 ? n_n - r : 4);
    }
}

/* --------------------------------------------------------------------------------------------- */
/* Q8_0: w = d * (float)q                                                                        */
/* --------------------------------------------------------------------------------------------- */

static inline __attribute__((always_inline)) void q8_block(__m256 wv[4], const uint8_t *blk) {
    uint16_t d16;
    __builtin_memcpy(&d16, blk, 2);
    __m256 d = _mm256_set1_ps(_cvtsh_ss(d16));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        wv[i] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
                                     _mm_loadl_epi64((const __m128i *)(blk + 2 + 8 * i)))));
}

static void q8_dequant_row_avx2(float *out, const uint8_t *row, int64_t K) {
    for (int64_t b = 0; b < K / 32; b++, row += 34, out += 32) {
        __m256 wv[4];
        q8_block(wv, row);
        for (int i = 0; i < 4; i++)
            _mm256_storeu_ps(out + 8 * i, wv[i]);
    }
}

/* NT tokens x NR rows (NT * NR <= 8 accumulator chains, as the 4-bit gemv_tile) */
static inline __attribute__((always_inline)) void
q8_gemv_tile(float *out, int64_t ldo, const float *const xr[2], const int NT, const int NR,
             const uint8_t *const wr[8], int64_t row_bytes, int n_n, int64_t K) {
    __m256 acc[2][8];
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++)
            acc[t][r] = _mm256_setzero_ps();
    /* prefetch the region two calls ahead in step (see the AVX-512 kernel) */
    int64_t nb = K / 32, pf_step = (NR * row_bytes + nb - 1) / nb;
    const uint8_t *pf = wr[0] + 2 * NR * row_bytes;
    for (int64_t b = 0; b < nb; b++, pf += pf_step) {
        for (int64_t o = 0; o < pf_step; o += 64)
            _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++) {
            __m256 wv[4];
            q8_block(wv, wr[r] + 34 * b);
#pragma GCC unroll 2
            for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
                for (int i = 0; i < 4; i++)
                    acc[t][r] =
                        _mm256_fmadd_ps(_mm256_loadu_ps(xr[t] + 32 * b + 8 * i), wv[i], acc[t][r]);
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 8
        for (int r = 0; r < NR; r++)
            if (r < n_n) out[t * ldo + r] = hsum256(acc[t][r]) + 0.0f;
}

static void q8_gemv_t1(float *out, int64_t ldo, const float *const xr[2],
                       const uint8_t *const wr[8], int64_t row_bytes, int n_n, int64_t K) {
    q8_gemv_tile(out, ldo, xr, 1, 8, wr, row_bytes, n_n, K);
}
static void q8_gemv_t2(float *out, int64_t ldo, const float *const xr[2],
                       const uint8_t *const wr[8], int64_t row_bytes, int n_n, int64_t K) {
    q8_gemv_tile(out, ldo, xr, 2, 4, wr, row_bytes, n_n, K);
}

/* Up to 8 rows per call: 8 at once for a single token, 4 at a time for token pairs. Rows past
 * n_n repeat row 0 (read, never stored). */
static void q8_gemv_avx2(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                         const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    const uint8_t *wr[8];
    for (int r = 0; r < 8; r++)
        wr[r] = w + (r < n_n ? r : 0) * row_bytes;
    for (int t0 = 0; t0 < n_t; t0 += 2) {
        const float *xr[2] = {x + t0 * ldx, x + (t0 + 1 < n_t ? t0 + 1 : t0) * ldx};
        if (n_t - t0 < 2) {
            q8_gemv_t1(out + t0 * ldo, ldo, xr, wr, row_bytes, n_n, K);
            continue;
        }
        for (int r = 0; r < n_n; r += 4)
            q8_gemv_t2(out + t0 * ldo + r, ldo, xr, wr + r, row_bytes, n_n - r < 4 ? n_n - r : 4,
                       K);
    }
}

llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_avx2(void) {
    return (llmrt_cpu_q4_kernels){
        .isa = "avx2",
        .gemv_rows = 8,
        .q8_dequant_row = q8_dequant_row_avx2,
        .q8_gemv = q8_gemv_avx2,
        .dequant_rows = dequant_rows_avx2,
        .gemv = gemv_avx2,
    };
}
