/* The CPU backend's bf16 matmul (weights and activations rounded to bf16, 32-row panels packed at
 * load; backend/cpu/bf16_gemm.h) through the backend interface, when the CPU has AVX512-BF16:
 *
 * 1. accuracy against an fp64 matmul over the weights as given (bf16, f32 or f16) and the
 *    unrounded activations, for irregular M (1 .. 70: every register tile height and a second
 *    token block), N (partial 32-row panels) and K (1 .. 577: odd K, a zero pad column).
 *    Bound: rounding to bf16 moves a value by at most 2^-8 of it (8 significant bits), so an
 *    output may be off by 2^-8 * sum|w_k x_k| (bf16 weights) or 2^-7 (f32/f16 weights rounded
 *    too), plus fp32 summation (1e-5 * sum|w x|).
 * 2. bitwise: a token's output does not depend on the batch (M tokens vs the token alone) nor on
 *    the thread count; a row view of a weight (the tied lm_head of a vocab-parallel rank) gives
 *    the rows of the whole weight, bit for bit, through its panels (offset a multiple of 32) or
 *    the exact path (other offsets, which the bound of 1. then covers).
 * 3. without bf16_activations, bf16 weights keep the exact fp32 path (checked: the results
 *    differ); the avx2 and generic kernel sets, which have no bf16 kernels, keep it even with
 *    bf16_activations (bit for bit). */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/bf16_gemm.h"
#include "core/half.h"
#include "cpu_matmul_run.h"
#include "test_util.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 33) / 1073741824.0 - 1.0);
}

#define MAX_T 70
static const int Ms[] = {1, 3, 5, 13, 14, 15, 16, 17, 29, 64, 65, 70};

static llmrt_backend *make_backend_isa(int threads, bool bf16, const char *isa) {
    llmrt_cpu_options opt = {.bf16_activations = bf16};
    return cpu_test_backend(threads, isa, &opt);
}
static llmrt_backend *make_backend(int threads, bool bf16) {
    return make_backend_isa(threads, bf16, "avx512");
}

/* element i of the weight as stored in `data` (dtype f32, f16 or bf16), as fp64 */
static double weight_at(llmrt_dtype dt, const void *data, int64_t i) {
    if (dt == LLMRT_DTYPE_F32) return ((const float *)data)[i];
    if (dt == LLMRT_DTYPE_F16) return llmrt_f16_to_f32(((const uint16_t *)data)[i]);
    return llmrt_bf16_to_f32(((const uint16_t *)data)[i]);
}

/* out [M, N] within the bf16 bound of the fp64 matmul of x [M, K] and the weight rows */
static int count_off_bound(llmrt_dtype dt, const void *w, const float *x, const float *out,
                           int64_t M, int64_t N, int64_t K) {
    double rel = (dt == LLMRT_DTYPE_BF16 ? 1.0 / 256 : 2.0 / 256 + 1.0 / 65536) + 1e-5;
    int    bad = 0;
    for (int64_t t = 0; t < M; t++)
        for (int64_t n = 0; n < N; n++) {
            double ref = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)x[t * K + k] * weight_at(dt, w, n * K + k);
                ref += p;
                mag += fabs(p);
            }
            double e = fabs((double)out[t * N + n] - ref);
            if (!(e <= rel * mag + 1e-30)) bad++;
        }
    return bad;
}

static void test_case(llmrt_backend *be1, llmrt_backend *be3, llmrt_backend *exact,
                      llmrt_dtype dt, int64_t N, int64_t K) {
    size_t    es = dt == LLMRT_DTYPE_F32 ? 4 : 2;
    void     *wd = malloc((size_t)(N * K) * es);
    float    *x = malloc((size_t)(MAX_T * K) * 4), *out = malloc((size_t)(MAX_T * N) * 4);
    float    *out3 = malloc((size_t)(MAX_T * N) * 4), *alone = malloc((size_t)N * 4);
    for (int64_t i = 0; i < N * K; i++) {
        float v = frand() * 0.1f;
        if (dt == LLMRT_DTYPE_F32) ((float *)wd)[i] = v;
        else if (dt == LLMRT_DTYPE_F16) ((uint16_t *)wd)[i] = llmrt_f32_to_f16(v);
        else ((uint16_t *)wd)[i] = llmrt_f32_to_bf16(v);
    }
    for (int64_t i = 0; i < MAX_T * K; i++) x[i] = frand() * (i % 5 == 0 ? 8.0f : 1.0f);
    const char   *name = llmrt_dtype_name(dt);
    llmrt_bweight w1, w3, we;
    llmrt_error   err = {0};
    CHECK(be1->ops->weight_upload(be1, dt, N, K, wd, &w1, &err) == LLMRT_OK);
    CHECK(be3->ops->weight_upload(be3, dt, N, K, wd, &w3, &err) == LLMRT_OK);
    CHECK(exact->ops->weight_upload(exact, dt, N, K, wd, &we, &err) == LLMRT_OK);
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int32_t M = Ms[mi];
        run_matmul(be1, &w1, x, M, out);
        int bad = count_off_bound(dt, wd, x, out, M, N, K), exact_bits = 0;
        CHECK_MSG(bad == 0, "%s N=%lld K=%lld M=%d: %d outputs off by more than the bf16 bound",
                  name, (long long)N, (long long)K, M, bad);
        run_matmul(be3, &w3, x, M, out3);
        CHECK_MSG(memcmp(out, out3, (size_t)(M * N) * 4) == 0,
                  "%s N=%lld K=%lld M=%d: 3 threads differ", name, (long long)N, (long long)K, M);
        int diff = 0;
        for (int32_t t = 0; t < M; t++) {
            run_matmul(be1, &w1, x + (int64_t)t * K, 1, alone);
            diff += memcmp(alone, out + (int64_t)t * N, (size_t)N * 4) != 0;
        }
        CHECK_MSG(diff == 0, "%s N=%lld K=%lld M=%d: %d tokens differ from the token alone", name,
                  (long long)N, (long long)K, M, diff);
        /* the exact path over the same weights: fp32 math, so (almost always) other bits */
        run_matmul(exact, &we, x, M, out3);
        for (int64_t i = 0; i < M * N; i++) exact_bits += memcmp(&out[i], &out3[i], 4) == 0;
        if (K >= 64)
            CHECK_MSG(exact_bits < M * N, "%s K=%lld M=%d: the bf16 path was not used", name,
                      (long long)K, M);
    }
    /* row views from row r0: the panels' rows (r0 % 32 == 0) or the exact path (else) */
    static const int64_t r0s[] = {32, 7};
    for (size_t ri = 0; ri < 2; ri++) {
        int64_t r0 = r0s[ri], M = 17;
        if (r0 >= N) continue;
        llmrt_bweight v = w1;
        v.data          = (char *)w1.data + r0 * K * (int64_t)es;
        v.rows          = N - r0;
        run_matmul(be1, &w1, x, (int32_t)M, out);
        run_matmul(be1, &v, x, (int32_t)M, out3);
        int bad = count_off_bound(dt, (char *)wd + r0 * K * (int64_t)es, x, out3, M, N - r0, K);
        CHECK_MSG(bad == 0, "%s view from row %lld N=%lld K=%lld: %d outputs off the bound", name,
                  (long long)r0, (long long)N, (long long)K, bad);
        if (r0 % 32 == 0) {
            int diff = 0;
            for (int64_t t = 0; t < M; t++)
                diff += memcmp(out3 + t * (N - r0), out + t * N + r0, (size_t)(N - r0) * 4) != 0;
            CHECK_MSG(diff == 0, "%s view from row %lld N=%lld K=%lld: %d tokens differ from the "
                      "whole weight's rows", name, (long long)r0, (long long)N, (long long)K, diff);
        }
    }
    be1->ops->weight_free(be1, &w1);
    be3->ops->weight_free(be3, &w3);
    exact->ops->weight_free(exact, &we);
    free(wd), free(x), free(out), free(out3), free(alone);
}

/* the kernel sets without bf16 kernels (avx2, generic) keep their exact path, bit for bit, for
 * bf16 and f32 weights */
static void test_fallback(const char *isa) {
    llmrt_backend *a = make_backend_isa(1, true, isa), *b = make_backend_isa(1, false, isa);
    int64_t        N = 9, K = 70, M = 5;
    uint16_t       wb[9 * 70];
    float          wf[9 * 70], x[5 * 70], oa[5 * 9], ob[5 * 9];
    for (int64_t i = 0; i < N * K; i++) wf[i] = frand(), wb[i] = llmrt_f32_to_bf16(wf[i]);
    for (int64_t i = 0; i < M * K; i++) x[i] = frand();
    for (int f = 0; f < 2; f++) {
        llmrt_dtype   dt = f ? LLMRT_DTYPE_F32 : LLMRT_DTYPE_BF16;
        const void   *w  = f ? (const void *)wf : (const void *)wb;
        llmrt_bweight wa, wbb;
        llmrt_error   err = {0};
        CHECK(a->ops->weight_upload(a, dt, N, K, w, &wa, &err) == LLMRT_OK);
        CHECK(b->ops->weight_upload(b, dt, N, K, w, &wbb, &err) == LLMRT_OK);
        run_matmul(a, &wa, x, (int32_t)M, oa);
        run_matmul(b, &wbb, x, (int32_t)M, ob);
        CHECK_MSG(memcmp(oa, ob, sizeof oa) == 0,
                  "%s with bf16 matmuls differs from its fp32 path (%s weights)", isa,
                  llmrt_dtype_name(dt));
        a->ops->weight_free(a, &wa);
        b->ops->weight_free(b, &wbb);
    }
    a->ops->destroy(a);
    b->ops->destroy(b);
}

int main(void) {
    test_fallback("avx2");
    test_fallback("generic");
    if (!llmrt_cpu_bf16_kernels_for("avx512").isa) {
        printf("no AVX512-BF16 on this CPU: nothing to test\n");
        return test_summary("test_bf16_gemm");
    }
    llmrt_backend *be1 = make_backend(1, true), *be3 = make_backend(3, true);
    llmrt_backend *exact = make_backend(1, false);
    static const int64_t Ks[] = {1, 17, 31, 32, 33, 64, 100, 577};
    static const int64_t Ns[] = {1, 5, 17, 32, 33, 70};
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
            test_case(be1, be3, exact, LLMRT_DTYPE_BF16, Ns[ni], Ks[ki]);
    /* f32 and f16 weights, rounded to bf16 at load: fewer shapes (the kernel is the same) */
    static const int64_t Ks2[] = {1, 33, 577}, Ns2[] = {5, 70};
    for (size_t ki = 0; ki < 3; ki++)
        for (size_t ni = 0; ni < 2; ni++) {
            test_case(be1, be3, exact, LLMRT_DTYPE_F32, Ns2[ni], Ks2[ki]);
            test_case(be1, be3, exact, LLMRT_DTYPE_F16, Ns2[ni], Ks2[ki]);
        }
    be1->ops->destroy(be1);
    be3->ops->destroy(be3);
    exact->ops->destroy(exact);
    return test_summary("test_bf16_gemm");
}
