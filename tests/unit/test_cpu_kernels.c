/* The CPU backend's inner loops, every instruction-set variant this machine can run, against
 * fp64 references over irregular sizes; and the batch-invariance property the forward relies on:
 * an output computed in a full 4x4 tile is bit-identical to the same output computed alone, and
 * f16 / bf16 weights widened in registers (dot_tile_h) give the bits of widening them first;
 * an ISA's gemm (blocks of any size) gives dot_tile's bits. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cpu/cpu_kernels.h"
#include "core/half.h"
#include "test_util.h"

static uint64_t rng = 0x1234567;
static float    frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) / 8388608.0 - 1.0);
}

/* a[i] and b[i] have the same bits, or are both NaN (the untouched cells), for every i < n */
static bool same_bits(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (!(isnan(a[i]) && isnan(b[i])) && memcmp(&a[i], &b[i], 4) != 0) return false;
    return true;
}

static void test_variant(llmrt_cpu_kernels k) {
    static const int64_t Ks[] = {1, 7, 15, 16, 17, 31, 33, 64, 100, 577, 1536};
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++) {
        int64_t K = Ks[ki];
        float  *x = malloc((size_t)(4 * K) * sizeof(float)), *w = malloc((size_t)(4 * K) * sizeof(float));
        for (int64_t i = 0; i < 4 * K; i++) x[i] = frand(), w[i] = frand();
        for (int n_t = 1; n_t <= 4; n_t++)
            for (int n_n = 1; n_n <= 4; n_n++) {
                float out[16], alone;
                for (int i = 0; i < 16; i++) out[i] = NAN;
                k.dot_tile(out, 4, x, K, n_t, w, K, n_n, K);
                for (int t = 0; t < 4; t++)
                    for (int n = 0; n < 4; n++) {
                        if (t >= n_t || n >= n_n) {
                            CHECK_MSG(isnan(out[t * 4 + n]), "%s: dot_tile wrote outside %dx%d",
                                      k.isa, n_t, n_n);
                            continue;
                        }
                        double ref = 0, mag = 0;
                        for (int64_t i = 0; i < K; i++) {
                            ref += (double)x[t * K + i] * w[n * K + i];
                            mag += fabs((double)x[t * K + i] * w[n * K + i]);
                        }
                        double err = fabs(out[t * 4 + n] - ref);
                        /* fp32 accumulation: error bounded by ~K * eps * sum|x*w| (loose) */
                        CHECK_MSG(err <= 1e-6 * (double)K * mag + 1e-7,
                                  "%s K=%lld tile %dx%d (%d,%d): %g vs %g", k.isa, (long long)K,
                                  n_t, n_n, t, n, out[t * 4 + n], ref);
                        k.dot_tile(&alone, 1, x + t * K, K, 1, w + n * K, K, 1, K);
                        CHECK_MSG(memcmp(&alone, &out[t * 4 + n], 4) == 0,
                                  "%s K=%lld: output (%d,%d) of a %dx%d tile differs from the same "
                                  "output alone", k.isa, (long long)K, t, n, n_t, n_n);
                        float d = k.dot(x + t * K, w + n * K, K);
                        CHECK_MSG(memcmp(&d, &alone, 4) == 0 || fabs(d - ref) <= 1e-6 * K * mag + 1e-7,
                                  "%s dot K=%lld", k.isa, (long long)K);
                    }
            }
        /* half-precision weights widened in registers: the same bits as widening them first */
        for (int bf = 0; bf <= 1 && k.dot_tile_h; bf++) {
            uint16_t *wh = malloc((size_t)(4 * K) * sizeof *wh);
            float    *wf = malloc((size_t)(4 * K) * sizeof *wf);
            for (int64_t i = 0; i < 4 * K; i++)
                wh[i] = bf ? llmrt_f32_to_bf16(w[i] * 3.0f) : llmrt_f32_to_f16(w[i] * 3.0f);
            (bf ? k.bf16_to_f32 : k.f16_to_f32)(wf, wh, 4 * K);
            for (int n_t = 1; n_t <= 4; n_t++)
                for (int n_n = 1; n_n <= 4; n_n++) {
                    float out[16], want[16];
                    for (int i = 0; i < 16; i++) out[i] = want[i] = NAN;
                    k.dot_tile_h(out, 4, x, K, n_t, wh, K, n_n, K, bf);
                    k.dot_tile(want, 4, x, K, n_t, wf, K, n_n, K);
                    CHECK_MSG(same_bits(out, want, 16),
                              "%s dot_tile_h (%s) K=%lld tile %dx%d differs from widening first",
                              k.isa, bf ? "bf16" : "f16", (long long)K, n_t, n_n);
                }
            free(wh);
            free(wf);
        }
        /* axpy */
        float *y = malloc((size_t)K * sizeof(float));
        memcpy(y, x, (size_t)K * sizeof(float));
        k.axpy(y, 0.37f, w, K);
        for (int64_t i = 0; i < K; i++)
            CHECK_MSG(fabs(y[i] - (x[i] + 0.37 * w[i])) <= 1e-6, "%s axpy K=%lld i=%lld", k.isa,
                      (long long)K, (long long)i);
        free(y);
        free(x);
        free(w);
    }
    /* f16 / bf16 -> f32: every bit pattern against the scalar reference conversions */
    uint16_t *h = malloc(65536 * sizeof *h);
    float    *f = malloc(65536 * sizeof *f);
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    k.f16_to_f32(f, h, 65536);
    int bad = 0;
    for (int i = 0; i < 65536; i++) {
        float r = llmrt_f16_to_f32(h[i]);
        if (!(memcmp(&r, &f[i], 4) == 0 || (isnan(r) && isnan(f[i])))) bad++;
    }
    CHECK_MSG(bad == 0, "%s f16_to_f32: %d of 65536 values differ", k.isa, bad);
    k.bf16_to_f32(f, h, 65531); /* odd length: exercises the tail */
    bad = 0;
    for (int i = 0; i < 65531; i++) {
        float r = llmrt_bf16_to_f32(h[i]);
        if (memcmp(&r, &f[i], 4) != 0) bad++;
    }
    CHECK_MSG(bad == 0, "%s bf16_to_f32: %d values differ", k.isa, bad);
    free(h);
    free(f);
    printf("%s: checked\n", k.isa);
}

/* The scalar fp16 conversions against IEEE semantics checked independently: exact values,
 * round-to-nearest-even at ties, overflow, subnormals, NaN. */
static void test_half_scalar(void) {
    CHECK(llmrt_f16_to_f32(0x3c00) == 1.0f);
    CHECK(llmrt_f16_to_f32(0xc000) == -2.0f);
    CHECK(llmrt_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(llmrt_f16_to_f32(0x0001) == 5.9604644775390625e-08f); /* smallest subnormal */
    CHECK(isinf(llmrt_f16_to_f32(0x7c00)) && isnan(llmrt_f16_to_f32(0x7e00)));
    CHECK(llmrt_f32_to_f16(1.0f) == 0x3c00);
    CHECK(llmrt_f32_to_f16(65504.0f) == 0x7bff);
    CHECK(llmrt_f32_to_f16(65520.0f) == 0x7c00);         /* rounds to inf */
    CHECK(llmrt_f32_to_f16(65519.0f) == 0x7bff);
    CHECK(llmrt_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00); /* tie -> even */
    CHECK(llmrt_f32_to_f16(1.0f + 3.0f / 2048) == 0x3c02); /* tie -> even (up) */
    CHECK(llmrt_f32_to_f16(5.9604644775390625e-08f) == 0x0001);
    CHECK(llmrt_f32_to_f16(2.98023223876953125e-08f) == 0x0000); /* half the smallest: tie->0 */
    CHECK((llmrt_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (llmrt_f32_to_f16(NAN) & 0x3ff) != 0);
    CHECK(llmrt_f32_to_f16(-0.0f) == 0x8000);
    /* round trip of every finite half */
    int bad = 0;
    for (uint32_t i = 0; i < 65536; i++) {
        uint16_t h = (uint16_t)i;
        if ((h & 0x7c00) == 0x7c00) continue;
        if (llmrt_f32_to_f16(llmrt_f16_to_f32(h)) != h) bad++;
    }
    CHECK_MSG(bad == 0, "fp16 round trip: %d values differ", bad);
    CHECK(llmrt_f32_to_bf16(1.0f) == 0x3f80);
    CHECK(llmrt_f32_to_bf16(1.00390625f) == 0x3f80); /* tie -> even */
    CHECK(llmrt_f32_to_bf16(1.01171875f) == 0x3f82); /* tie -> even (up) */
    CHECK(llmrt_bf16_to_f32(0xbf80) == -1.0f);
}

/* gemm (blocks of any size): every output has dot_tile's bits (and so the fp64 bound tested
 * above), over token and row counts around the ISA's tiles, strided x / w / out, aligned and
 * misaligned rows, and nothing outside the block is written */
static void test_gemm(llmrt_cpu_kernels k) {
    if (!k.gemm) return;
    static const int64_t Ks[] = {1, 15, 16, 17, 48, 100, 577, 1536};
    static const int64_t Ms[] = {1, 2, 3, 5, 6, 7, 8, 9, 13, 16, 25, 64};
    static const int64_t Ns[] = {1, 2, 3, 4, 5, 7, 8, 12, 13, 24, 37};
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
        for (int shift = 0; shift <= 3; shift += 3) {
            int64_t K = Ks[ki], ldx = K + 2 * shift, ldw = K + shift, M = 64, N = 37;
            /* C11 aligned_alloc: the size a multiple of the alignment */
            float  *xb = aligned_alloc(64, (size_t)(M * ldx + 16 + 15) / 16 * 64);
            float  *wb = aligned_alloc(64, (size_t)(N * ldw + 16 + 15) / 16 * 64);
            float  *x = xb + shift, *w = wb + shift;
            for (int64_t i = 0; i < M * ldx; i++) x[i] = frand();
            for (int64_t i = 0; i < N * ldw; i++) w[i] = frand();
            int64_t ldo = N + 3;
            float  *out = malloc((size_t)(M * ldo) * sizeof(float));
            for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++)
                for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++) {
                    int64_t m = Ms[mi], n = Ns[ni];
                    for (int64_t i = 0; i < M * ldo; i++) out[i] = NAN;
                    k.gemm(out, ldo, x, ldx, m, w, ldw, n, K);
                    int bad = 0, outside = 0;
                    for (int64_t t = 0; t < M; t++)
                        for (int64_t r = 0; r < ldo; r++) {
                            if (t >= m || r >= n) {
                                outside += !isnan(out[t * ldo + r]);
                                continue;
                            }
                            float want;
                            k.dot_tile(&want, 1, x + t * ldx, ldx, 1, w + r * ldw, ldw, 1, K);
                            bad += memcmp(&want, &out[t * ldo + r], 4) != 0;
                        }
                    CHECK_MSG(bad == 0, "%s gemm M=%lld N=%lld K=%lld shift %d: %d outputs differ "
                              "from dot_tile's bits", k.isa, (long long)m, (long long)n,
                              (long long)K, shift, bad);
                    CHECK_MSG(outside == 0, "%s gemm M=%lld N=%lld K=%lld: %d writes outside the "
                              "block", k.isa, (long long)m, (long long)n, (long long)K, outside);
                }
            free(xb), free(wb), free(out);
        }
}

int main(void) {
    test_half_scalar();
    test_variant(llmrt_cpu_kernels_generic());
    llmrt_cpu_kernels best = llmrt_cpu_kernels_select(NULL);
    llmrt_cpu_kernels avx2 = llmrt_cpu_kernels_select("avx2");
    if (strcmp(avx2.isa, "avx2") == 0) test_variant(avx2);
    if (strcmp(best.isa, "avx512") == 0) test_variant(best);
    test_gemm(best);
    printf("best variant on this CPU: %s\n", best.isa);
    return test_summary("test_cpu_kernels");
}
