/* AVX2 + FMA inner loops (compiled with -mavx2 -mfma -mf16c). 8-lane accumulators. Every output
 * is the same 8-lane sum over k (k = l mod 8 in lane l, in k order), reduced by hsum256 and the
 * scalar tail, whatever tile computes it: outputs are bit-identical alone and in a batch.
 * Tiles: 4 tokens x 3 rows (12 accumulators, 7 loads per 12 FMAs) plus 4 x 1 for a full 4 x 4
 * call; 2 tokens x 4 rows otherwise. The 2 x 4 tile alone (8 accumulators, 6 loads per 8 FMAs)
 * ran at 41-42 GFLOP/s against 60-64 for 4 x 3 + 4 x 1 (Zen 3, 1 thread, cpu_gemm_bench -M 64
 * -N 1536 -K 576 --formats f32 --isa avx2, best of 20, 3 alternating runs). */
#include <immintrin.h>

#include "cpu_kernels.h"

static inline float hsum256(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo        = _mm_add_ps(lo, hi);
    lo        = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo        = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

static inline float tail_dot(const float *a, const float *b, int64_t k, int64_t n) {
    float s = 0.0f;
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

static float dot_avx2(const float *a, const float *b, int64_t n) {
    __m256  acc = _mm256_setzero_ps();
    int64_t k   = 0;
    for (; k + 8 <= n; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
    return hsum256(acc) + tail_dot(a, b, k, n);
}

static void dot_tile_2x4(float *out, int64_t ldo, const float *const xr[2], int n_t,
                         const float *const wr[4], int n_n, int64_t K) {
    __m256 acc[2][4];
    for (int t = 0; t < 2; t++)
        for (int n = 0; n < 4; n++) acc[t][n] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv0 = _mm256_loadu_ps(wr[0] + k), wv1 = _mm256_loadu_ps(wr[1] + k);
        __m256 wv2 = _mm256_loadu_ps(wr[2] + k), wv3 = _mm256_loadu_ps(wr[3] + k);
        for (int t = 0; t < 2; t++) {
            __m256 xv = _mm256_loadu_ps(xr[t] + k);
            acc[t][0] = _mm256_fmadd_ps(xv, wv0, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(xv, wv1, acc[t][1]);
            acc[t][2] = _mm256_fmadd_ps(xv, wv2, acc[t][2]);
            acc[t][3] = _mm256_fmadd_ps(xv, wv3, acc[t][3]);
        }
    }
    for (int t = 0; t < n_t; t++)
        for (int n = 0; n < n_n; n++)
            out[t * ldo + n] = hsum256(acc[t][n]) + tail_dot(xr[t], wr[n], k, K);
}

/* 4 tokens x 3 rows: 12 accumulators, the 3 rows' weight vectors and one token's x in the 16 ymm
 * registers; 7 loads per 12 FMAs */
static void dot_tile_4x3(float *out, int64_t ldo, const float *const xr[4],
                         const float *const wr[3], int64_t K) {
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00, a12 = a00;
    __m256 a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00, a32 = a00;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 w0 = _mm256_loadu_ps(wr[0] + k), w1 = _mm256_loadu_ps(wr[1] + k);
        __m256 w2 = _mm256_loadu_ps(wr[2] + k), xv;
#define ROW(T)                                                                                     \
    xv    = _mm256_loadu_ps(xr[T] + k);                                                            \
    a##T##0 = _mm256_fmadd_ps(xv, w0, a##T##0);                                                    \
    a##T##1 = _mm256_fmadd_ps(xv, w1, a##T##1);                                                    \
    a##T##2 = _mm256_fmadd_ps(xv, w2, a##T##2);
        ROW(0) ROW(1) ROW(2) ROW(3)
#undef ROW
    }
#define OUT(T, N) out[T * ldo + N] = hsum256(a##T##N) + tail_dot(xr[T], wr[N], k, K);
    OUT(0, 0) OUT(0, 1) OUT(0, 2) OUT(1, 0) OUT(1, 1) OUT(1, 2)
    OUT(2, 0) OUT(2, 1) OUT(2, 2) OUT(3, 0) OUT(3, 1) OUT(3, 2)
#undef OUT
}

/* 4 tokens x 1 row */
static void dot_tile_4x1(float *out, int64_t ldo, const float *const xr[4], const float *wr,
                         int64_t K) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 wv = _mm256_loadu_ps(wr + k);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[0] + k), wv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[1] + k), wv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[2] + k), wv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(xr[3] + k), wv, a3);
    }
    out[0]       = hsum256(a0) + tail_dot(xr[0], wr, k, K);
    out[ldo]     = hsum256(a1) + tail_dot(xr[1], wr, k, K);
    out[2 * ldo] = hsum256(a2) + tail_dot(xr[2], wr, k, K);
    out[3 * ldo] = hsum256(a3) + tail_dot(xr[3], wr, k, K);
}

static void dot_tile_avx2(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                          const float *w, int64_t ldw, int n_n, int64_t K) {
    if (n_t == 4 && n_n >= 3) {
        const float *xr[4] = {x, x + ldx, x + 2 * ldx, x + 3 * ldx};
        const float *wr[3] = {w, w + ldw, w + 2 * ldw};
        dot_tile_4x3(out, ldo, xr, wr, K);
        if (n_n == 4) dot_tile_4x1(out + 3, ldo, xr, w + 3 * ldw, K);
        return;
    }
    const float *wr[4];
    for (int i = 0; i < 4; i++) wr[i] = w + (i < n_n ? i : 0) * ldw;
    for (int t0 = 0; t0 < n_t; t0 += 2) {
        int          nt    = n_t - t0 < 2 ? n_t - t0 : 2;
        const float *xr[2] = {x + t0 * ldx, x + (t0 + (nt > 1 ? 1 : 0)) * ldx};
        dot_tile_2x4(out + t0 * ldo, ldo, xr, nt, wr, n_n, K);
    }
}

static void f16_to_f32_avx2(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

static void bf16_to_f32_avx2(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        __builtin_memcpy(dst + i, &u, 4);
    }
}

static void axpy_avx2(float *y, float a, const float *x, int64_t n) {
    __m256  av = _mm256_set1_ps(a);
    int64_t i  = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

llmrt_cpu_kernels llmrt_cpu_kernels_avx2(void) {
    return (llmrt_cpu_kernels){
        .isa         = "avx2",
        .dot_tile    = dot_tile_avx2,
        .f16_to_f32  = f16_to_f32_avx2,
        .bf16_to_f32 = bf16_to_f32_avx2,
        .dot         = dot_avx2,
        .axpy        = axpy_avx2,
    };
}
