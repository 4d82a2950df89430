/* AVX2 + FMA 4-bit kernels (compiled with -mavx2 -mfma -mf16c).
 *
 * Each 16-byte block of 32 nibbles goes to dword lanes by variable shifts (the layout's byte
 * order, q4_kernels.h) and is converted: w = ((float)q - z) * s or s*q + m, the reference
 * formulas. gemv mirrors the fp32 dot_tile of cpu_kernels_avx2.c (8-lane accumulators,
 * k in steps of 8, hsum256 + the empty tail), so it is bit-identical to dequant_rows + dot_tile. */
#include <immintrin.h>

#include "q4_kernels.h"

static inline __m256 opaque(__m256 v) {
    __asm__("" : "+x"(v));
    return v;
}

static inline float hsum256(__m256 v) { /* as cpu_kernels_avx2.c */
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

/* The 32 weights of one block as 4 vectors of 8 (columns 0-7, 8-15, 16-23, 24-31). The block's
 * 16 bytes go to both 128-bit lanes; dword p of lane L shifted right by 8L (+16, +4, +20) holds
 * the nibble of column 4L + p (+8, +16, +24) in its low 4 bits (the layout's byte order). */
static inline void dequant_block(__m256 wv[4], const uint8_t *qs, int zint, __m256 s, __m256 z) {
    __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    __m256i mask = _mm256_set1_epi32(0x0f);
    __m256i sh[4] = {_mm256_setr_epi32(0, 0, 0, 0, 8, 8, 8, 8),
                     _mm256_setr_epi32(16, 16, 16, 16, 24, 24, 24, 24),
                     _mm256_setr_epi32(4, 4, 4, 4, 12, 12, 12, 12),
                     _mm256_setr_epi32(20, 20, 20, 20, 28, 28, 28, 28)};
    for (int i = 0; i < 4; i++) {
        __m256 q = _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srlv_epi32(v, sh[i]), mask));
        wv[i] = zint ? _mm256_mul_ps(_mm256_sub_ps(q, z), s)
                     : _mm256_add_ps(opaque(_mm256_mul_ps(q, s)), z);
    }
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

/* NT (1 or 2) tokens x one tile of 4 rows, as dot_tile_2x4. */
static inline __attribute__((always_inline)) void gemv_tile(float *out, int64_t ldo,
                                                            const float *const xr[2], const int NT,
                                                            const int ZINT, const llmrt_cpu_q4 *w,
                                                            int64_t n0, int n_n) {
    int64_t G = w->n_groups, bpg = w->group_size / LLMRT_CPU_Q4_BLOCK;
    const uint8_t *grp = w->data + (n0 / 4) * w->tile_bytes;
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[t][r] = _mm256_setzero_ps();
    int64_t k = 0;
    for (int64_t g = 0; g < G; g++, grp += w->group_bytes) {
        /* software prefetch two tiles ahead (the next calls' rows), in step with this tile */
        for (int64_t o = 0; o < w->group_bytes; o += 64)
            _mm_prefetch((const char *)grp + 2 * w->tile_bytes + o, _MM_HINT_T0);
        float hdr[8];
        group_header(hdr, grp);
        for (int64_t b = 0; b < bpg; b++) {
            const uint8_t *blk = grp + 16 + 64 * b;
            /* one row at a time keeps 8 accumulators + 4 weight vectors in the 16 ymm */
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                __m256 wv[4];
                dequant_block(wv, blk + 16 * r, ZINT, _mm256_set1_ps(hdr[r]),
                              _mm256_set1_ps(hdr[4 + r]));
#pragma GCC unroll 2
                for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
                    for (int i = 0; i < 4; i++)
                        acc[t][r] =
                            _mm256_fmadd_ps(_mm256_loadu_ps(xr[t] + k + 8 * i), wv[i], acc[t][r]);
            }
            k += 32;
        }
    }
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[t * ldo + r] = hsum256(acc[t][r]) + 0.0f;
}

#define GEMV_VARIANT(NT, ZINT)                                                                     \
    static void gemv_##NT##_##ZINT(float *out, int64_t ldo, const float *const xr[2],              \
                                   const llmrt_cpu_q4 *w, int64_t n0, int n_n) {                   \
        gemv_tile(out, ldo, xr, NT, ZINT, w, n0, n_n);                                             \
    }
GEMV_VARIANT(1, 0)
GEMV_VARIANT(2, 0)
GEMV_VARIANT(1, 1)
GEMV_VARIANT(2, 1)

static void gemv_avx2(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                      const llmrt_cpu_q4 *w, int64_t n0, int n_n) {
    int zint = w->zero_kind == LLMRT_Q4_ZERO_INT;
    for (int t0 = 0; t0 < n_t; t0 += 2) {
        const float *xr[2] = {x + t0 * ldx, x + (t0 + 1 < n_t ? t0 + 1 : t0) * ldx};
        float *o = out + t0 * ldo;
        if (n_t - t0 >= 2) {
            if (zint)
                gemv_2_1(o, ldo, xr, w, n0, n_n);
            else
                gemv_2_0(o, ldo, xr, w, n0, n_n);
        } else {
            if (zint)
                gemv_1_1(o, ldo, xr, w, n0, n_n);
            else
                gemv_1_0(o, ldo, xr, w, n0, n_n);
        }
    }
}

/* --------------------------------------------------------------------------------------------- */
/* Q8_0: w = d * (float)q                                                                        */
/* --------------------------------------------------------------------------------------------- */

static inline void q8_block(__m256 wv[4], const uint8_t *blk) {
    uint16_t d16;
    __builtin_memcpy(&d16, blk, 2);
    __m256 d = _mm256_set1_ps(_cvtsh_ss(d16));
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

static inline __attribute__((always_inline)) void
q8_gemv_tile(float *out, int64_t ldo, const float *const xr[2], const int NT,
             const uint8_t *const wr[4], int64_t row_bytes, int n_n, int64_t K) {
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int t = 0; t < NT; t++)
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            acc[t][r] = _mm256_setzero_ps();
    /* prefetch the region two tiles ahead in step (see the AVX-512 kernel) */
    int64_t nb = K / 32, pf_step = (4 * row_bytes + nb - 1) / nb;
    const uint8_t *pf = wr[0] + 8 * row_bytes;
    for (int64_t b = 0; b < nb; b++, pf += pf_step) {
        for (int64_t o = 0; o < pf_step; o += 64)
            _mm_prefetch((const char *)pf + o, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
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
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
            if (r < n_n) out[t * ldo + r] = hsum256(acc[t][r]) + 0.0f;
}

static void q8_gemv_t1(float *out, int64_t ldo, const float *const xr[2],
                       const uint8_t *const wr[4], int64_t row_bytes, int n_n, int64_t K) {
    q8_gemv_tile(out, ldo, xr, 1, wr, row_bytes, n_n, K);
}
static void q8_gemv_t2(float *out, int64_t ldo, const float *const xr[2],
                       const uint8_t *const wr[4], int64_t row_bytes, int n_n, int64_t K) {
    q8_gemv_tile(out, ldo, xr, 2, wr, row_bytes, n_n, K);
}

static void q8_gemv_avx2(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                         const uint8_t *w, int64_t row_bytes, int n_n, int64_t K) {
    const uint8_t *wr[4];
    for (int r = 0; r < 4; r++)
        wr[r] = w + (r < n_n ? r : 0) * row_bytes;
    for (int t0 = 0; t0 < n_t; t0 += 2) {
        const float *xr[2] = {x + t0 * ldx, x + (t0 + 1 < n_t ? t0 + 1 : t0) * ldx};
        if (n_t - t0 >= 2)
            q8_gemv_t2(out + t0 * ldo, ldo, xr, wr, row_bytes, n_n, K);
        else
            q8_gemv_t1(out + t0 * ldo, ldo, xr, wr, row_bytes, n_n, K);
    }
}

llmrt_cpu_q4_kernels llmrt_cpu_q4_kernels_avx2(void) {
    return (llmrt_cpu_q4_kernels){
        .isa = "avx2",
        .q8_dequant_row = q8_dequant_row_avx2,
        .q8_gemv = q8_gemv_avx2,
        .dequant_rows = dequant_rows_avx2,
        .gemv = gemv_avx2,
    };
}
