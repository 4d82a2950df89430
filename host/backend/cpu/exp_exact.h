/* e^x of the exact SwiGLU (elementwise_cpu.h), written so that a scalar and a vector version give
 * the same bits on every CPU: double arithmetic with explicit fma() and only correctly rounded
 * operations (no libm function whose last bit depends on the library, no contractible a * b + c).
 *
 *   xd = x widened, clamped to [-105, 89] (e^-105 rounds to 0 and e^89 to +inf in float, as
 *        expf's results; NaN becomes -105 and the SwiGLU's product with the NaN gate keeps it);
 *   k  = round-half-even(xd * log2 e);  r = fma(k, -ln 2, xd), |r| <= ~0.347;
 *   p  = e^r by its Taylor polynomial of degree 8 in Horner form (truncation below 2.1e-10
 *        relative, rounding in double ~1e-16);
 *   y  = p * 2^k by adding k to p's exponent bits (k in [-152, 129]: p * 2^k is a normal double);
 *   result = (float)y, one rounding: within 1 ulp of e^x (below 2^-149 absolute in the
 *        subnormal range), correctly rounded except where e^x lies within ~2e-10 relative of a
 *        rounding boundary.
 * The vector version is in elementwise_avx2.c; tests/unit/test_cpu_elementwise.c checks both
 * against each other (bits) and against fp64 exp. */
#ifndef LLMRT_BACKEND_CPU_EXP_EXACT_H
#define LLMRT_BACKEND_CPU_EXP_EXACT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define LLMRT_EXP_LO    (-105.0)
#define LLMRT_EXP_HI    89.0
#define LLMRT_EXP_LOG2E 0x1.71547652b82fep0 /* log2(e), correctly rounded */
#define LLMRT_EXP_LN2   0x1.62e42fefa39efp-1 /* ln(2), correctly rounded */
/* 1 / n! for n = 8 .. 2 (constant divisions: correctly rounded at compile time); 1 / 1! and
 * 1 / 0! are 1 */
#define LLMRT_EXP_C8 (1.0 / 40320)
#define LLMRT_EXP_C7 (1.0 / 5040)
#define LLMRT_EXP_C6 (1.0 / 720)
#define LLMRT_EXP_C5 (1.0 / 120)
#define LLMRT_EXP_C4 (1.0 / 24)
#define LLMRT_EXP_C3 (1.0 / 6)
#define LLMRT_EXP_C2 0.5

static inline float llmrt_exp_exact(float x) {
    double xd = (double)x;
    xd        = xd > LLMRT_EXP_LO ? xd : LLMRT_EXP_LO; /* NaN -> LO, as vmaxpd(xd, LO) */
    xd        = xd < LLMRT_EXP_HI ? xd : LLMRT_EXP_HI;
    double k  = nearbyint(xd * LLMRT_EXP_LOG2E);
    double r  = fma(k, -LLMRT_EXP_LN2, xd);
    double p  = fma(LLMRT_EXP_C8, r, LLMRT_EXP_C7);
    p         = fma(p, r, LLMRT_EXP_C6);
    p         = fma(p, r, LLMRT_EXP_C5);
    p         = fma(p, r, LLMRT_EXP_C4);
    p         = fma(p, r, LLMRT_EXP_C3);
    p         = fma(p, r, LLMRT_EXP_C2);
    p         = fma(p, r, 1.0);
    p         = fma(p, r, 1.0);
    uint64_t bits;
    memcpy(&bits, &p, sizeof bits);
    bits += (uint64_t)(int64_t)k << 52;
    memcpy(&p, &bits, sizeof p);
    return (float)p;
}

#endif
