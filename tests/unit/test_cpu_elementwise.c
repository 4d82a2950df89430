/* The CPU backend's element-wise ops (backend/cpu/elementwise_cpu.h):
 *
 * 1. every SwiGLU kernel the CPU can run (the exact portable and AVX2 ones, and the vector
 *    AVX-512 one of the approximate modes) against an fp64 reference over irregular lengths
 *    (every tail of a 16-lane vector) and gates from -100 to 100: relative error <= 1e-6 (the
 *    fast polynomial's 1e-7 plus four fp32 roundings), or absolute <= 1e-35 where silu is that
 *    small (g < -80: subnormal or flushed results), NaN in gate or up gives NaN, nothing written
 *    past n; only AVX-512 has the fast kernel;
 * 2. the exact kernels' exp (backend/cpu/exp_exact.h) over every 257th float bit pattern and
 *    the values around its clamps: within 1 ulp of fp64 exp (2^-149 absolute for subnormal
 *    results), +inf above ~88.72, 0 below ~-103.97; the share correctly rounded is printed;
 *    the AVX2 exact SwiGLU gives the portable kernel's bits over the same gates (any length);
 * 3. the pooled rmsnorm, add + rmsnorm, add and SwiGLU give the serial loops' bits for any
 *    thread count (1, 2, 3) and row split (T from 1 to 70, rows of 1 to 1541 floats), out == x
 *    included for rmsnorm, with rows one at a time and (AVX2) 4 rows at once;
 *    that kernel's sums also against the serial ones directly, on data where the order shows. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/elementwise_cpu.h"
#include "backend/cpu/exp_exact.h"
#include "test_util.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static float frand(void) { /* [-1, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 33) / 1073741824.0 - 1.0);
}

static const int64_t lengths[] = {1, 2, 7, 15, 16, 17, 31, 33, 100, 576, 1541};
#define N_LEN (int)(sizeof lengths / sizeof lengths[0])

static void check_swiglu_accuracy(llmrt_cpu_swiglu_fn fn, const char *name) {
    double worst = 0.0;
    for (int li = 0; li < N_LEN; li++) {
        int64_t n = lengths[li];
        float *g = malloc((size_t)n * 4), *u = malloc((size_t)n * 4),
              *o = malloc((size_t)(n + 16) * 4);
        for (int64_t i = 0; i < n; i++) {
            /* a third near 0 (where silu is ~g/2), a third in the activations' usual range,
             * a third out to the clamps of the exp */
            float s = i % 3 == 0 ? 0.01f : i % 3 == 1 ? 8.0f : 100.0f;
            g[i] = s * frand();
            u[i] = 4.0f * frand();
        }
        for (int i = 0; i < 16; i++)
            o[n + i] = 12345.0f;
        fn(o, g, u, n);
        for (int64_t i = 0; i < n; i++) {
            double ref = (double)g[i] / (1.0 + exp(-(double)g[i])) * (double)u[i];
            double err = fabs((double)o[i] - ref);
            double rel = err / (fabs(ref) > 1e-30 ? fabs(ref) : 1e-30);
            if (fabs(ref) > 1e-30 && rel > worst) worst = rel;
            CHECK_MSG(err <= 1e-6 * fabs(ref) + 1e-35, "n %lld i %lld g %g u %g: %.9g vs %.9g",
                      (long long)n, (long long)i, (double)g[i], (double)u[i], (double)o[i], ref);
        }
        for (int i = 0; i < 16; i++)
            CHECK_MSG(o[n + i] == 12345.0f, "n %lld: wrote past n", (long long)n);
        free(g), free(u), free(o);
    }
    printf("%s SwiGLU: worst relative error %.3g (|silu| > 1e-30) over %d lengths\n", name,
           worst, N_LEN);
    /* special values: 0, large magnitudes, NaN in either input */
    float g[6] = {0.0f, -0.0f, 200.0f, -200.0f, NAN, 1.0f}, u[6] = {1, 1, 1, 1, 1, NAN}, o[6];
    fn(o, g, u, 6);
    CHECK(o[0] == 0.0f && o[1] == 0.0f);
    CHECK(o[2] == 200.0f);
    CHECK(fabsf(o[3]) < 1e-35f);
    CHECK(isnan(o[4]) && isnan(o[5]));
}

static float from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, 4);
    return f;
}

/* An exact SwiGLU kernel against the portable one on gates g[0..n), n = fill less round % lanes
 * (so successive rounds reach every tail of a `lanes`-wide vector); returns the differing outputs
 * (the first 5 of all rounds reported: `reported` so far). */
#define EXP_CHUNK 1541 /* gates per round of check_exact_exp */
static int64_t compare_swiglu(llmrt_cpu_swiglu_fn fn, const char *name, int lanes, int round,
                              const float *g, const float *u, int64_t fill, int64_t reported) {
    static float a[EXP_CHUNK], b[EXP_CHUNK];
    int64_t      n = fill - round % lanes > 0 ? fill - round % lanes : fill, diff = 0;
    llmrt_cpu_swiglu_exact(a, g, u, n);
    fn(b, g, u, n);
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], 4) != 0 && !(isnan(a[i]) && isnan(b[i])) && reported + diff++ < 5)
            CHECK_MSG(false, "SwiGLU exact g %a: portable %a, %s %a", (double)g[i], (double)a[i],
                      name, (double)b[i]);
    return diff;
}

/* llmrt_exp_exact over every 257th bit pattern (both signs, NaN and inf included) and the
 * patterns around its clamps and the float range's ends; with avx2, the AVX2 exact SwiGLU against
 * the portable one on the same gates, in irregular lengths (up = 1, so the bits compared are
 * those of g / (1 + e^-g)); with avx512, the AVX-512 one likewise */
static void check_exact_exp(bool avx2, bool avx512) {
    enum { CHUNK = EXP_CHUNK };
    static const float edges[] = {88.72283f, 88.72284f, -103.97208f, -103.27893f, -87.33655f,
                                  -105.0f, 89.0f, 0.0f, -0.0f, 1e-30f, -1e-30f};
    float   g[CHUNK], u[CHUNK];
    int64_t n_checked = 0, n_rounded = 0, n_bad = 0, n_diff = 0, n_diff512 = 0, fill = 0;
    for (int i = 0; i < CHUNK; i++) u[i] = 1.0f;
    uint64_t pat = 0;
    for (int round = 0;; round++) {
        /* fill a chunk of gates: the edges and their neighbours first, then the sweep */
        fill = 0;
        while (fill < CHUNK && round == 0 && fill < 3 * (int64_t)(sizeof edges / sizeof *edges)) {
            uint32_t eb;
            memcpy(&eb, &edges[fill / 3], 4);
            g[fill] = from_bits(eb + (uint32_t)(fill % 3) - 1u);
            fill++;
        }
        while (fill < CHUNK && pat < (1ull << 32)) g[fill++] = from_bits((uint32_t)pat), pat += 257;
        if (fill == 0) break;
        for (int64_t i = 0; i < fill; i++) {
            float x = g[i], e = llmrt_exp_exact(x);
            if (isnan(x)) continue;
            double ref = exp((double)x);
            n_checked++;
            bool ok;
            if (ref > FLT_MAX) ok = (isinf(e) && e > 0) || (double)e >= ref * (1 - 0x1p-23);
            else if (ref < FLT_MIN) ok = fabs((double)e - ref) <= 0x1p-149;
            else ok = fabs((double)e - ref) <= ref * 0x1p-23; /* 1 ulp of the result's binade */
            if (!ok && n_bad++ < 5)
                CHECK_MSG(false, "exp(%a) = %a, fp64 %a", (double)x, (double)e, ref);
            n_rounded += e == (float)ref;
        }
        if (avx2)
            n_diff += compare_swiglu(llmrt_cpu_swiglu_exact_avx2, "AVX2", 8, round, g, u, fill,
                                     n_diff);
        if (avx512)
            n_diff512 += compare_swiglu(llmrt_cpu_swiglu_exact_avx512, "AVX-512", 16, round, g, u,
                                        fill, n_diff512);
        if (fill < CHUNK) break;
    }
    CHECK(n_bad == 0 && n_diff == 0 && n_diff512 == 0);
    printf("exact exp: %lld inputs within 1 ulp of fp64 exp, %.5f%% correctly rounded; AVX2 "
           "SwiGLU %s; AVX-512 SwiGLU %s\n", (long long)n_checked,
           100.0 * (double)n_rounded / (double)n_checked,
           avx2 ? (n_diff ? "DIFFERS" : "bit-identical to the portable one") : "not run (no AVX2)",
           avx512 ? (n_diff512 ? "DIFFERS" : "bit-identical to the portable one")
                  : "not run (no AVX-512)");
}

/* A sumsq4 kernel against the serial double sums, bit for bit, on rows of values from 2^-10 to
 * 2^10 in magnitude (so that another order of the adds rounds differently; the rmsnorm outputs are
 * floats and would rarely show it: swapping two columns' adds passed the pooled checks), for
 * every D from 1 to 40 and 576, 1541, rows ld = D + 3 apart */
static void check_sumsq4(void (*fn)(double ss[4], const float *x, int64_t ld, int64_t D)) {
    int64_t Ds[42], n_diff = 0, n_order = 0;
    for (int i = 0; i < 40; i++) Ds[i] = i + 1;
    Ds[40] = 576, Ds[41] = 1541;
    for (int di = 0; di < 42; di++) {
        int64_t D = Ds[di], ld = D + 3;
        float  *x = malloc((size_t)(4 * ld) * 4);
        for (int64_t i = 0; i < 4 * ld; i++)
            x[i] = ldexpf(frand(), (int)(40.0f * frand()) / 2);
        double ss[4];
        fn(ss, x, ld, D);
        for (int r = 0; r < 4; r++) {
            double ref = 0.0, rev = 0.0;
            for (int64_t k = 0; k < D; k++) ref += (double)x[r * ld + k] * x[r * ld + k];
            for (int64_t k = D - 1; k >= 0; k--) rev += (double)x[r * ld + k] * x[r * ld + k];
            n_order += rev != ref; /* the data can tell the orders apart */
            if (memcmp(&ss[r], &ref, 8) != 0 && n_diff++ < 5)
                CHECK_MSG(false, "sumsq4 D %lld row %d: %a vs serial %a", (long long)D, r, ss[r],
                          ref);
        }
        free(x);
    }
    CHECK(n_diff == 0);
    CHECK_MSG(n_order > 40, "only %lld of 168 rows sum differently in reverse", (long long)n_order);
    printf("sumsq4: 168 rows equal the serial sums (%lld of them differ in reverse order)\n",
           (long long)n_order);
}

static void serial_rmsnorm(float *out, const float *x, const float *w, int64_t T, int64_t D,
                           float eps) {
    for (int64_t t = 0; t < T; t++) { /* the backend's loop before the pool ran it */
        double ss = 0.0;
        for (int64_t i = 0; i < D; i++)
            ss += (double)x[t * D + i] * x[t * D + i];
        float inv = (float)(1.0 / sqrt(ss / (double)D + (double)eps));
        for (int64_t i = 0; i < D; i++)
            out[t * D + i] = w[i] * (x[t * D + i] * inv);
    }
}

static void check_pooled(const char *isa) {
    static const int64_t Ts[] = {1, 2, 5, 64, 70};
    static const int64_t Ds[] = {1, 17, 576, 1541};
    for (int threads = 1; threads <= 3; threads++) {
        llmrt_thread_pool *pool = llmrt_thread_pool_create(threads);
        CHECK(pool != NULL);
        if (!pool) return;
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
            for (size_t di = 0; di < sizeof Ds / sizeof Ds[0]; di++) {
                int64_t T = Ts[ti], D = Ds[di], n = T * D;
                float *x = malloc((size_t)n * 4), *d = malloc((size_t)n * 4),
                      *w = malloc((size_t)D * 4);
                float *a = malloc((size_t)n * 4), *b = malloc((size_t)n * 4);
                float *x2 = malloc((size_t)n * 4), *r = malloc((size_t)n * 4);
                for (int64_t i = 0; i < n; i++)
                    x[i] = 3.0f * frand(), d[i] = frand();
                for (int64_t i = 0; i < D; i++)
                    w[i] = 1.0f + 0.5f * frand();
                /* rmsnorm, out-of-place and in place, and add + rmsnorm: rows one at a time
                 * and (AVX2) 4 rows' sums side by side */
                memcpy(x2, x, (size_t)n * 4);
                for (int64_t i = 0; i < n; i++)
                    x2[i] += d[i];
                llmrt_cpu_rmsnorm4_fn k4[2] = {NULL, llmrt_cpu_rmsnorm4_for(isa)};
                for (int v = 0; v < 2 && (v == 0 || k4[1]); v++) {
                    serial_rmsnorm(r, x, w, T, D, 1e-5f);
                    llmrt_cpu_rmsnorm_rows(pool, k4[v], a, x, w, T, D, 1e-5f);
                    CHECK_MSG(memcmp(a, r, (size_t)n * 4) == 0,
                              "rmsnorm T %lld D %lld threads %d rms4 %d", (long long)T,
                              (long long)D, threads, v);
                    memcpy(b, x, (size_t)n * 4);
                    llmrt_cpu_rmsnorm_rows(pool, k4[v], b, b, w, T, D, 1e-5f);
                    CHECK_MSG(memcmp(b, r, (size_t)n * 4) == 0,
                              "rmsnorm in place T %lld D %lld rms4 %d", (long long)T,
                              (long long)D, v);
                    serial_rmsnorm(r, x2, w, T, D, 1e-6f);
                    memcpy(b, x, (size_t)n * 4);
                    llmrt_cpu_add_rmsnorm_rows(pool, k4[v], b, d, a, w, T, D, 1e-6f);
                    CHECK_MSG(memcmp(b, x2, (size_t)n * 4) == 0 &&
                                  memcmp(a, r, (size_t)n * 4) == 0,
                              "add_rmsnorm T %lld D %lld threads %d rms4 %d", (long long)T,
                              (long long)D, threads, v);
                }
                memcpy(b, x, (size_t)n * 4);
                llmrt_cpu_add_rows(pool, b, d, T, D);
                CHECK_MSG(memcmp(b, x2, (size_t)n * 4) == 0, "add T %lld D %lld", (long long)T,
                          (long long)D);
                /* SwiGLU with the exact kernel of this CPU: the portable kernel's serial bits */
                llmrt_cpu_swiglu_exact(r, x, d, n);
                llmrt_cpu_swiglu_rows(pool, llmrt_cpu_swiglu_exact_for(isa), a, x, d, T, D);
                CHECK_MSG(memcmp(a, r, (size_t)n * 4) == 0, "swiglu exact T %lld D %lld threads %d",
                          (long long)T, (long long)D, threads);
                /* ... and with the vector one: the same bits as one serial call */
                llmrt_cpu_swiglu_fn fast = llmrt_cpu_swiglu_fast_for(isa);
                if (fast) {
                    fast(r, x, d, n);
                    llmrt_cpu_swiglu_rows(pool, fast, a, x, d, T, D);
                    CHECK_MSG(memcmp(a, r, (size_t)n * 4) == 0, "swiglu fast T %lld D %lld",
                              (long long)T, (long long)D);
                }
                free(x), free(d), free(w), free(a), free(b), free(x2), free(r);
            }
        llmrt_thread_pool_destroy(pool);
    }
}

int main(void) {
    CHECK(llmrt_cpu_swiglu_fast_for("avx2") == NULL);
    CHECK(llmrt_cpu_swiglu_fast_for("generic") == NULL);
    CHECK(llmrt_cpu_swiglu_fast_for(NULL) == NULL);
    CHECK(llmrt_cpu_swiglu_exact_for("generic") == llmrt_cpu_swiglu_exact);
    CHECK(llmrt_cpu_swiglu_exact_for(NULL) == llmrt_cpu_swiglu_exact);
    const char *isa  = llmrt_cpu_kernels_select(NULL).isa;
    bool        avx2 = strcmp(isa, "avx2") == 0 || strcmp(isa, "avx512") == 0;
    check_swiglu_accuracy(llmrt_cpu_swiglu_exact, "exact portable");
    if (avx2) check_swiglu_accuracy(llmrt_cpu_swiglu_exact_avx2, "exact AVX2");
    if (strcmp(isa, "avx512") == 0) {
        CHECK(llmrt_cpu_swiglu_exact_for("avx512") == llmrt_cpu_swiglu_exact_avx512);
        check_swiglu_accuracy(llmrt_cpu_swiglu_exact_avx512, "exact AVX-512");
    }
    if (strcmp(isa, "avx512") == 0)
        check_swiglu_accuracy(llmrt_cpu_swiglu_fast_for("avx512"), "fast AVX-512");
    else
        printf("no AVX-512 on this CPU: the fast vector SwiGLU not tested\n");
    check_exact_exp(avx2, strcmp(isa, "avx512") == 0);
    if (avx2) check_sumsq4(llmrt_cpu_sumsq4_avx2);
    check_pooled(isa);
    return test_summary("test_cpu_elementwise");
}
