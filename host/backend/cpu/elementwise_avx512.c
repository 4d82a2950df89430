/* AVX-512 SwiGLU element kernels (elementwise_cpu.h), compiled with -mavx512f/bw/vl/dq -mfma:
 * the fast one (16 lanes, exp by range reduction and Cephes' expf polynomial, the sigmoid by a
 * true division) and the exact one (llmrt_exp_exact's operations on 8 doubles per vector, as the
 * AVX2 kernel does on 4: the same bits as the portable kernel, at half the AVX2 kernel's
 * instructions per element). */
#include <immintrin.h>

#include "elementwise_cpu.h"
#include "exp_exact.h"

/* llmrt_exp_exact on 8 lanes: the operations of elementwise_avx2.c's exp_pd (vmaxpd / vminpd as
 * the scalar comparisons, a NaN lane taking LO; vrndscalepd to nearest even as nearbyint; the
 * same fma sequence; k moved into the exponent field) */
static inline __m512d exp_exact_pd(__m512d xd) {
    xd = _mm512_min_pd(_mm512_max_pd(xd, _mm512_set1_pd(LLMRT_EXP_LO)),
                       _mm512_set1_pd(LLMRT_EXP_HI));
    __m512d k = _mm512_roundscale_pd(_mm512_mul_pd(xd, _mm512_set1_pd(LLMRT_EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512d r = _mm512_fmadd_pd(k, _mm512_set1_pd(-LLMRT_EXP_LN2), xd);
    __m512d p = _mm512_fmadd_pd(_mm512_set1_pd(LLMRT_EXP_C8), r, _mm512_set1_pd(LLMRT_EXP_C7));
    p         = _mm512_fmadd_pd(p, r, _mm512_set1_pd(LLMRT_EXP_C6));
    p         = _mm512_fmadd_pd(p, r, _mm512_set1_pd(LLMRT_EXP_C5));
    p         = _mm512_fmadd_pd(p, r, _mm512_set1_pd(LLMRT_EXP_C4));
    p         = _mm512_fmadd_pd(p, r, _mm512_set1_pd(LLMRT_EXP_C3));
    p         = _mm512_fmadd_pd(p, r, _mm512_set1_pd(LLMRT_EXP_C2));
    p         = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p         = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    /* k is an integer in [-152, 129]: exact in int32, then moved into the exponent field */
    __m512i kb = _mm512_slli_epi64(_mm512_cvtepi32_epi64(_mm512_cvtpd_epi32(k)), 52);
    return _mm512_castsi512_pd(_mm512_add_epi64(_mm512_castpd_si512(p), kb));
}

void llmrt_cpu_swiglu_exact_avx512(float *out, const float *gate, const float *up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512    g = _mm512_maskz_loadu_ps(m, gate + i), u = _mm512_maskz_loadu_ps(m, up + i);
        __m512    ng = _mm512_castsi512_ps(
            _mm512_xor_si512(_mm512_castps_si512(g), _mm512_set1_epi32((int)0x80000000u)));
        /* e^-g per lane, each rounded once from its double (as the AVX2 kernel's cvtpd_ps) */
        __m256 lo = _mm512_cvtpd_ps(exp_exact_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(ng))));
        __m256 hi = _mm512_cvtpd_ps(exp_exact_pd(
            _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(ng), 1)))));
        __m512 e  = _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1);
        _mm512_mask_storeu_ps(out + i, m,
                              _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
    }
}

/* e^x: x clamped to [-88, 100] (e^-88 is 1 + nothing in 1 + e^-g; above 88.7 the result is +inf,
 * as expf's, and g / inf = 0 then, |silu| < 1e-36 being lost; a NaN becomes -88 here, and the
 * caller's product with g brings the NaN back), n = round(x / ln2), r = x - n ln2 in two steps (|r|
 * <= ln2 / 2), e^r by Cephes' degree-7 expf polynomial (relative error < 1e-7 on that range),
 * scaled by 2^n exactly (vscalefps). */
static inline __m512 exp_ps(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-88.0f)), _mm512_set1_ps(100.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

void llmrt_cpu_swiglu_avx512(float *out, const float *gate, const float *up, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(k, gate + i), u = _mm512_maskz_loadu_ps(k, up + i);
        __m512 e = exp_ps(_mm512_sub_ps(_mm512_setzero_ps(), g));
        _mm512_mask_storeu_ps(out + i, k,
                              _mm512_mul_ps(_mm512_div_ps(g, _mm512_add_ps(one, e)), u));
    }
}
