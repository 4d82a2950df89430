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

/* An NT x 4 tile (NT tokens, 4 weight rows) with its 4*NT accumulators in registers. Every
 * variant updates each output's accumulator with the same FMA sequence and reduces it the same
 * way, so an output's bits do not depend on the tile it was computed in. The macro spells the
 * accumulators out because GCC spills a 2-D accumulator array indexed in loops. */
#define TILE_FMA(T)                                                                                \
    do {                                                                                           \
        __m512 xv = _mm512_loadu_ps(x + (T)*ldx + k);                                             \
        a##T##0   = _mm512_fmadd_ps(xv, w0, a##T##0);                                             \
        a##T##1   = _mm512_fmadd_ps(xv, w1, a##T##1);                                             \
        a##T##2   = _mm512_fmadd_ps(xv, w2, a##T##2);                                             \
        a##T##3   = _mm512_fmadd_ps(xv, w3, a##T##3);                                             \
    } while (0)

#define TILE_STORE(T)                                                                              \
    do {                                                                                           \
        __m512 acc_[4] = {a##T##0, a##T##1, a##T##2, a##T##3};                                    \
        for (int n = 0; n < n_n; n++)                                                             \
            out[(T)*ldo + n] = _mm512_reduce_add_ps(acc_[n]) + tail_dot(x + (T)*ldx, wr[n], k, K); \
    } while (0)

#define TILE_KERNEL(NT, BODY_FMA, BODY_STORE)                                                      \
    static void tile_##NT##x4(float *out, int64_t ldo, const float *x, int64_t ldx,              \
                              const float *const wr[4], int n_n, int64_t K) {                     \
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;                        \
        __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00;                                        \
        __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00;                                        \
        __m512 a30 = a00, a31 = a00, a32 = a00, a33 = a00;                                        \
        int64_t k  = 0;                                                                            \
        for (; k + 16 <= K; k += 16) {                                                             \
            __m512 w0 = _mm512_loadu_ps(wr[0] + k), w1 = _mm512_loadu_ps(wr[1] + k);              \
            __m512 w2 = _mm512_loadu_ps(wr[2] + k), w3 = _mm512_loadu_ps(wr[3] + k);              \
            BODY_FMA                                                                               \
        }                                                                                          \
        BODY_STORE(void) a10; (void)a11; (void)a12; (void)a13; (void)a20; (void)a21; (void)a22;    \
        (void)a23; (void)a30; (void)a31; (void)a32; (void)a33;                                     \
    }

TILE_KERNEL(1, TILE_FMA(0);, TILE_STORE(0);)
TILE_KERNEL(2, TILE_FMA(0); TILE_FMA(1);, TILE_STORE(0); TILE_STORE(1);)
TILE_KERNEL(3, TILE_FMA(0); TILE_FMA(1); TILE_FMA(2);, TILE_STORE(0); TILE_STORE(1); TILE_STORE(2);)
TILE_KERNEL(4, TILE_FMA(0); TILE_FMA(1); TILE_FMA(2); TILE_FMA(3);,
            TILE_STORE(0); TILE_STORE(1); TILE_STORE(2); TILE_STORE(3);)

static void dot_tile_avx512(float *out, int64_t ldo, const float *x, int64_t ldx, int n_t,
                            const float *w, int64_t ldw, int n_n, int64_t K) {
    /* missing weight rows repeat row 0; their results are not stored */
    const float *wr[4];
    for (int i = 0; i < 4; i++) wr[i] = w + (i < n_n ? i : 0) * ldw;
    switch (n_t) {
    case 1: tile_1x4(out, ldo, x, ldx, wr, n_n, K); break;
    case 2: tile_2x4(out, ldo, x, ldx, wr, n_n, K); break;
    case 3: tile_3x4(out, ldo, x, ldx, wr, n_n, K); break;
    default: tile_4x4(out, ldo, x, ldx, wr, n_n, K); break;
    }
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
        .tile_rows   = 4,
        .f16_to_f32  = f16_to_f32_avx512,
        .bf16_to_f32 = bf16_to_f32_avx512,
        .dot         = dot_avx512,
        .axpy        = axpy_avx512,
    };
}
