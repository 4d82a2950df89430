/* AVX2/FMA exact SwiGLU element kernel (elementwise_cpu.h), compiled with -mavx2 -mfma: the
 * operations of llmrt_exp_exact (exp_exact.h) on 4 doubles per vector, so its bits are the scalar
 * kernel's. */
#include <immintrin.h>

#include "elementwise_cpu.h"
#include "exp_exact.h"

/* llmrt_exp_exact on 4 lanes: vmaxpd / vminpd as the scalar comparisons (a NaN lane takes the
 * second operand, LO), vroundpd to nearest even as nearbyint, the same fma sequence */
static inline __m256d exp_pd(__m256d xd) {
    xd = _mm256_min_pd(_mm256_max_pd(xd, _mm256_set1_pd(LLMRT_EXP_LO)),
                       _mm256_set1_pd(LLMRT_EXP_HI));
    __m256d k = _mm256_round_pd(_mm256_mul_pd(xd, _mm256_set1_pd(LLMRT_EXP_LOG2E)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fmadd_pd(k, _mm256_set1_pd(-LLMRT_EXP_LN2), xd);
    __m256d p = _mm256_fmadd_pd(_mm256_set1_pd(LLMRT_EXP_C8), r, _mm256_set1_pd(LLMRT_EXP_C7));
    p         = _mm256_fmadd_pd(p, r, _mm256_set1_pd(LLMRT_EXP_C6));
    p         = _mm256_fmadd_pd(p, r, _mm256_set1_pd(LLMRT_EXP_C5));
    p         = _mm256_fmadd_pd(p, r, _mm256_set1_pd(LLMRT_EXP_C4));
    p         = _mm256_fmadd_pd(p, r, _mm256_set1_pd(LLMRT_EXP_C3));
    p         = _mm256_fmadd_pd(p, r, _mm256_set1_pd(LLMRT_EXP_C2));
    p         = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    p         = _mm256_fmadd_pd(p, r, _mm256_set1_pd(1.0));
    /* k is an integer in [-152, 129]: exact in int32, then moved into the exponent field */
    __m256i kb = _mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k)), 52);
    return _mm256_castsi256_pd(_mm256_add_epi64(_mm256_castpd_si256(p), kb));
}

/* e^x of 8 floats, each lane rounded once from its double */
static inline __m256 exp_ps(__m256 x) {
    __m128 lo = _mm256_cvtpd_ps(exp_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(x))));
    __m128 hi = _mm256_cvtpd_ps(exp_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(x, 1))));
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
}

void llmrt_cpu_swiglu_exact_avx2(float *out, const float *gate, const float *up, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t      i   = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i), u = _mm256_loadu_ps(up + i);
        __m256 e = exp_ps(_mm256_xor_ps(g, _mm256_set1_ps(-0.0f))); /* -g */
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(one, e)), u));
    }
    llmrt_cpu_swiglu_exact(out + i, gate + i, up + i, n - i);
}
