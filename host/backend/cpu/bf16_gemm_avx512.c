/* AVX512-BF16 matmul tiles (bf16_gemm.h; compiled with -mavx512bf16, chosen only when the CPU
 * has it). The structure of the fp32 tiles (cpu_kernels_avx512.c): an NT x 4 tile of
 * accumulators, both operands loaded along k (32 bf16 = one zmm), so a weight row loaded once
 * serves 4 tokens and a token's row 4 weight rows. */
#include <immintrin.h>

#include "bf16_gemm.h"

static void to_bf16_avx512(uint16_t *dst, const float *src, int64_t n) {
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512(dst + i, (__m512i)v);
    }
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m256bh  v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, (__m256i)v);
    }
}

#define LD(p) ((__m512bh)_mm512_maskz_loadu_epi16(m, (p) + k))

#define TILE_DP(T)                                                                                 \
    do {                                                                                           \
        __m512bh xv = LD(x + (T)*ldx);                                                            \
        a##T##0     = _mm512_dpbf16_ps(a##T##0, xv, w0);                                          \
        a##T##1     = _mm512_dpbf16_ps(a##T##1, xv, w1);                                          \
        a##T##2     = _mm512_dpbf16_ps(a##T##2, xv, w2);                                          \
        a##T##3     = _mm512_dpbf16_ps(a##T##3, xv, w3);                                          \
    } while (0)

#define TILE_STORE(T)                                                                              \
    do {                                                                                           \
        __m512 acc_[4] = {a##T##0, a##T##1, a##T##2, a##T##3};                                    \
        for (int n = 0; n < n_n; n++) out[(T)*ldo + n] = _mm512_reduce_add_ps(acc_[n]);          \
    } while (0)

/* k runs in steps of 32 with a zero-filling masked load for the tail (zero pairs add nothing) */
#define TILE_KERNEL(NT, BODY_DP, BODY_STORE)                                                       \
    static void tile_##NT##x4(float *out, int64_t ldo, const uint16_t *x, int64_t ldx,           \
                              const uint16_t *const wr[4], int n_n, int64_t K) {                  \
        __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;                        \
        __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00;                                        \
        __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00;                                        \
        __m512 a30 = a00, a31 = a00, a32 = a00, a33 = a00;                                        \
        for (int64_t k = 0; k < K; k += 32) {                                                      \
            __mmask32 m = K - k >= 32 ? (__mmask32)0xffffffffu                                    \
                                      : (__mmask32)((1u << (K - k)) - 1);                          \
            __m512bh w0 = LD(wr[0]), w1 = LD(wr[1]), w2 = LD(wr[2]), w3 = LD(wr[3]);              \
            BODY_DP                                                                                \
        }                                                                                          \
        BODY_STORE(void) a10; (void)a11; (void)a12; (void)a13; (void)a20; (void)a21; (void)a22;    \
        (void)a23; (void)a30; (void)a31; (void)a32; (void)a33;                                     \
    }

TILE_KERNEL(1, TILE_DP(0);, TILE_STORE(0);)
TILE_KERNEL(2, TILE_DP(0); TILE_DP(1);, TILE_STORE(0); TILE_STORE(1);)
TILE_KERNEL(3, TILE_DP(0); TILE_DP(1); TILE_DP(2);, TILE_STORE(0); TILE_STORE(1); TILE_STORE(2);)
TILE_KERNEL(4, TILE_DP(0); TILE_DP(1); TILE_DP(2); TILE_DP(3);,
            TILE_STORE(0); TILE_STORE(1); TILE_STORE(2); TILE_STORE(3);)

static void dot_tile_avx512(float *out, int64_t ldo, const uint16_t *x, int64_t ldx, int n_t,
                            const uint16_t *w, int64_t ldw, int n_n, int64_t K) {
    /* missing weight rows repeat row 0; their results are not stored */
    const uint16_t *wr[4];
    for (int i = 0; i < 4; i++) wr[i] = w + (i < n_n ? i : 0) * ldw;
    switch (n_t) {
    case 1: tile_1x4(out, ldo, x, ldx, wr, n_n, K); break;
    case 2: tile_2x4(out, ldo, x, ldx, wr, n_n, K); break;
    case 3: tile_3x4(out, ldo, x, ldx, wr, n_n, K); break;
    default: tile_4x4(out, ldo, x, ldx, wr, n_n, K); break;
    }
}

llmrt_cpu_bf16_kernels llmrt_cpu_bf16_kernels_avx512(void) {
    return (llmrt_cpu_bf16_kernels){.isa = "avx512", .to_bf16 = to_bf16_avx512,
                                    .dot_tile = dot_tile_avx512};
}
