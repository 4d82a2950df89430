/* AVX2 + FMA kernels for packed GGUF blocks (kq_kernels.h; compiled with -mavx2 -mfma -mf16c).
 * Blocks are dequantised by the scalar reference (format/ggml_quants.c, baseline code: no
 * contraction) into an L1 buffer; gemv then mirrors dot_tile of cpu_kernels_avx2.c (one 8-lane
 * accumulator per output, k in steps of 8, hsum256 + the empty tail), so it is bit-identical to
 * dequant_row + dot_tile. */
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

static void dequant_row_avx2(llmrt_dtype t, float *out, const uint8_t *row, int64_t K) {
    llmrt_ggml_dequant_row(t, row, out, K);
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
            llmrt_ggml_dequant_block(t, blk, buf[r]);
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
