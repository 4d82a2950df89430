/* AVX-512 inner loops (compiled with -mavx512f/bw/vl/dq -mfma -mf16c; used only when the CPU
 * reports AVX-512F/BW/VL/DQ). One 16-lane accumulator per output, k in steps of 16, then a
 * fixed-order horizontal sum and a scalar tail. */
#include <immintrin.h>

#include "cpu_kernels.h"

static inline float tail_dot(const float *a, const float *b, int64_t k, int64_t n) {
    float s = 0.0f;
    for (; k < n; k++) s += a[k] * b[k];
    return s;
}

static float dot_avx512(const float *a, const float *b, int64_t n) {
    __m512  acc = _mm512_setzero_ps();
    int64_t k   = 0;
    for (; k + 16 <= n; k += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k), acc);
    return _mm512_reduce_add_ps(acc) + tail_dot(a, b, k, n);
}

/* The full 4x4 tile keeps 16 accumulators in registers; smaller tiles reuse it on repeated rows
 * (the duplicates are computed and dropped), so every output sees the same instruction sequence. */
static void dot_tile_avx512(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                            const float *w, int64_t ldw, int n_n, int64_t K) {
    const float *xr[4], *wr[4];
    for (int i = 0; i < 4; i++) {
        xr[i] = x + (i < n_t ? i : 0) * ldx;
        wr[i] = w + (i < n_n ? i : 0) * ldw;
    }
    __m512 acc[4][4];
    for (int t = 0; t < 4; t++)
        for (int n = 0; n < 4; n++) acc[t][n] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 wv0 = _mm512_loadu_ps(wr[0] + k), wv1 = _mm512_loadu_ps(wr[1] + k);
        __m512 wv2 = _mm512_loadu_ps(wr[2] + k), wv3 = _mm512_loadu_ps(wr[3] + k);
        for (int t = 0; t < 4; t++) {
            __m512 xv = _mm512_loadu_ps(xr[t] + k);
            acc[t][0] = _mm512_fmadd_ps(xv, wv0, acc[t][0]);
            acc[t][1] = _mm512_fmadd_ps(xv, wv1, acc[t][1]);
            acc[t][2] = _mm512_fmadd_ps(xv, wv2, acc[t][2]);
            acc[t][3] = _mm512_fmadd_ps(xv, wv3, acc[t][3]);
        }
    }
    for (int t = 0; t < n_t; t++)
        for (int n = 0; n < n_n; n++)
            out[t * ldo + n] = _mm512_reduce_add_ps(acc[t][n]) + tail_dot(xr[t], wr[n], k, K);
}

static void f16_to_f32_avx512(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = _cvtsh_ss(src[i]);
}

static void bf16_to_f32_avx512(float *dst, const uint16_t *src, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < n; i++) {
        uint32_t u = (uint32_t)src[i] << 16;
        __builtin_memcpy(dst + i, &u, 4);
    }
}

static void axpy_avx512(float *y, float a, const float *x, int64_t n) {
    __m512  av = _mm512_set1_ps(a);
    int64_t i  = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

llmrt_cpu_kernels llmrt_cpu_kernels_avx512(void) {
    return (llmrt_cpu_kernels){
        .isa         = "avx512",
        .dot_tile    = dot_tile_avx512,
        .f16_to_f32  = f16_to_f32_avx512,
        .bf16_to_f32 = bf16_to_f32_avx512,
        .dot         = dot_avx512,
        .axpy        = axpy_avx512,
    };
}
