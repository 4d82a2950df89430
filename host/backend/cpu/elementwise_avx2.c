/* AVX2/FMA element kernels of the exact mode (elementwise_cpu.h), compiled with -mavx2 -mfma:
 * the SwiGLU, the operations of llmrt_exp_exact (exp_exact.h) on 4 doubles per vector, so its
 * bits are the scalar kernel's; rmsnorm 4 rows at a time (their sums of squares side by side). */
#include <immintrin.h>
#include <math.h>

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

void llmrt_cpu_sumsq4_avx2(double ss[4], const float *x, int64_t ld, int64_t D) {
    __m256d acc = _mm256_setzero_pd(); /* lane i: row i's running sum */
    int64_t k   = 0;
    for (; k + 4 <= D; k += 4) {
        __m128 c0 = _mm_loadu_ps(x + k), c1 = _mm_loadu_ps(x + ld + k);
        __m128 c2 = _mm_loadu_ps(x + 2 * ld + k), c3 = _mm_loadu_ps(x + 3 * ld + k);
        _MM_TRANSPOSE4_PS(c0, c1, c2, c3); /* c_m: element k + m of the 4 rows */
        /* fma(v, v, acc) = acc + v * v rounded once: the product is exact in double, so this is
         * the serial loop's add */
        __m256d v = _mm256_cvtps_pd(c0);
        acc       = _mm256_fmadd_pd(v, v, acc);
        v         = _mm256_cvtps_pd(c1);
        acc       = _mm256_fmadd_pd(v, v, acc);
        v         = _mm256_cvtps_pd(c2);
        acc       = _mm256_fmadd_pd(v, v, acc);
        v         = _mm256_cvtps_pd(c3);
        acc       = _mm256_fmadd_pd(v, v, acc);
    }
    _mm256_storeu_pd(ss, acc);
    for (; k < D; k++)
        for (int i = 0; i < 4; i++)
            ss[i] += (double)x[i * ld + k] * x[i * ld + k];
}

void llmrt_cpu_rmsnorm4_avx2(float *out, const float *x, const float *w, int64_t D, float eps) {
    double ss[4];
    llmrt_cpu_sumsq4_avx2(ss, x, D, D);
    for (int r = 0; r < 4; r++) {
        /* the serial kernel's expression: division and sqrt are correctly rounded */
        float        inv = (float)(1.0 / sqrt(ss[r] / (double)D + (double)eps));
        const float *xr  = x + r * D;
        float       *o   = out + r * D;
        __m256       iv  = _mm256_set1_ps(inv);
        int64_t      i   = 0;
        for (; i + 8 <= D; i += 8) /* w * (x * inv): the two products in the serial order */
            _mm256_storeu_ps(o + i, _mm256_mul_ps(_mm256_loadu_ps(w + i),
                                                  _mm256_mul_ps(_mm256_loadu_ps(xr + i), iv)));
        for (; i < D; i++)
            o[i] = w[i] * (xr[i] * inv);
    }
}
