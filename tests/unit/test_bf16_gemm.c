/* The CPU backend's bf16 matmul (bf16 weights, activations rounded to bf16; backend/cpu/
 * bf16_gemm.h) through the backend interface, when the CPU has AVX512-BF16:
 *
 * 1. accuracy against an fp64 matmul over the bf16 weights and the unrounded activations, for
 *    irregular M (1 .. 70), N (partial 4-row tiles) and K (1 .. 577: masked tails). Bound:
 *    rounding x to bf16 moves it by at most 2^-8 |x| (8 significant bits), so an
 *    output may be off by 2^-8 * sum|w_k x_k|, plus fp32 summation (1e-5 * sum|w x|).
 * 2. bitwise: a token's output does not depend on the batch (M tokens vs the token alone) nor on
 *    the thread count.
 * 3. without bf16_activations, bf16 weights keep the exact fp32 path (checked: the results
 *    differ); the avx2 and generic kernel sets, which have no bf16 kernels, keep it even with
 *    bf16_activations (bit for bit). */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/bf16_gemm.h"
#include "core/half.h"
#include "test_util.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 33) / 1073741824.0 - 1.0);
}

#define MAX_T 70
static const int Ms[] = {1, 3, 5, 16, 17, 70};

static llmrt_backend *make_backend_isa(int threads, bool bf16, const char *isa) {
    llmrt_backend    *be  = NULL;
    llmrt_error       err = {0};
    llmrt_cpu_options opt = {.bf16_activations = bf16};
    if (llmrt_backend_cpu_create_opts(threads, isa, &opt, &be, &err) != LLMRT_OK) return NULL;
    float inv = 1.0f;
    be->ops->rope_init(be, &inv, 1, &err);
    return be;
}

static llmrt_backend *make_backend(int threads, bool bf16) {
    return make_backend_isa(threads, bf16, "avx512");
}

static void run_matmul(llmrt_backend *be, const llmrt_bweight *w, const float *x, int32_t T,
                       float *out) {
    int32_t tok[MAX_T], pos[MAX_T], seq[MAX_T], table[8] = {0}, outs[1] = {0};
    int64_t slots[MAX_T];
    for (int32_t t = 0; t < T; t++) tok[t] = 0, pos[t] = t, seq[t] = 0, slots[t] = t;
    llmrt_batch_plan plan = {.n_tokens = T, .tokens = tok, .positions = pos, .seq_of = seq,
                             .slots = slots, .n_seqs = 1, .max_blocks = 8, .block_tables = table,
                             .n_outputs = 1, .output_rows = outs};
    llmrt_error err = {0};
    CHECK(be->ops->begin_batch(be, &plan, &err) == LLMRT_OK);
    be->ops->matmul(be, out, x, T, w);
}

static void test_case(llmrt_backend *be1, llmrt_backend *be3, llmrt_backend *exact, int64_t N,
                      int64_t K) {
    uint16_t *wb = malloc((size_t)(N * K) * 2);
    float    *x = malloc((size_t)(MAX_T * K) * 4), *out = malloc((size_t)(MAX_T * N) * 4);
    float    *out3 = malloc((size_t)(MAX_T * N) * 4), *alone = malloc((size_t)N * 4);
    for (int64_t i = 0; i < N * K; i++) wb[i] = llmrt_f32_to_bf16(frand() * 0.1f);
    for (int64_t i = 0; i < MAX_T * K; i++) x[i] = frand() * (i % 5 == 0 ? 8.0f : 1.0f);
    llmrt_bweight w1, w3, we;
    llmrt_error   err = {0};
    CHECK(be1->ops->weight_upload(be1, LLMRT_DTYPE_BF16, N, K, wb, &w1, &err) == LLMRT_OK);
    CHECK(be3->ops->weight_upload(be3, LLMRT_DTYPE_BF16, N, K, wb, &w3, &err) == LLMRT_OK);
    CHECK(exact->ops->weight_upload(exact, LLMRT_DTYPE_BF16, N, K, wb, &we, &err) == LLMRT_OK);
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int32_t M = Ms[mi];
        run_matmul(be1, &w1, x, M, out);
        int bad = 0, exact_bits = 0;
        for (int64_t t = 0; t < M; t++)
            for (int64_t n = 0; n < N; n++) {
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < K; k++) {
                    double p = (double)x[t * K + k] * llmrt_bf16_to_f32(wb[n * K + k]);
                    ref += p;
                    mag += fabs(p);
                }
                double e = fabs((double)out[t * N + n] - ref);
                if (!(e <= (1.0 / 256 + 1e-5) * mag + 1e-30)) bad++;
            }
        CHECK_MSG(bad == 0, "bf16 N=%lld K=%lld M=%d: %d outputs off by more than the bf16 bound",
                  (long long)N, (long long)K, M, bad);
        run_matmul(be3, &w3, x, M, out3);
        CHECK_MSG(memcmp(out, out3, (size_t)(M * N) * 4) == 0, "bf16 K=%lld M=%d: 3 threads differ",
                  (long long)K, M);
        int diff = 0;
        for (int32_t t = 0; t < M; t++) {
            run_matmul(be1, &w1, x + (int64_t)t * K, 1, alone);
            diff += memcmp(alone, out + (int64_t)t * N, (size_t)N * 4) != 0;
        }
        CHECK_MSG(diff == 0, "bf16 K=%lld M=%d: %d tokens differ from the token alone",
                  (long long)K, M, diff);
        /* the exact path over the same weights: fp32 math, so (almost always) other bits */
        run_matmul(exact, &we, x, M, out3);
        for (int64_t i = 0; i < M * N; i++) exact_bits += memcmp(&out[i], &out3[i], 4) == 0;
        if (K >= 64) CHECK_MSG(exact_bits < M * N, "bf16 K=%lld M=%d: the bf16 path was not used",
                               (long long)K, M);
    }
    be1->ops->weight_free(be1, &w1);
    be3->ops->weight_free(be3, &w3);
    exact->ops->weight_free(exact, &we);
    free(wb), free(x), free(out), free(out3), free(alone);
}

/* the kernel sets without bf16 kernels (avx2, generic) keep their exact path, bit for bit */
static void test_fallback(const char *isa) {
    llmrt_backend *a = make_backend_isa(1, true, isa), *b = make_backend_isa(1, false, isa);
    int64_t        N = 9, K = 70, M = 5;
    uint16_t       wb[9 * 70];
    float          x[5 * 70], oa[5 * 9], ob[5 * 9];
    for (int64_t i = 0; i < N * K; i++) wb[i] = llmrt_f32_to_bf16(frand());
    for (int64_t i = 0; i < M * K; i++) x[i] = frand();
    llmrt_bweight wa, wbb;
    llmrt_error   err = {0};
    CHECK(a->ops->weight_upload(a, LLMRT_DTYPE_BF16, N, K, wb, &wa, &err) == LLMRT_OK);
    CHECK(b->ops->weight_upload(b, LLMRT_DTYPE_BF16, N, K, wb, &wbb, &err) == LLMRT_OK);
    run_matmul(a, &wa, x, (int32_t)M, oa);
    run_matmul(b, &wbb, x, (int32_t)M, ob);
    CHECK_MSG(memcmp(oa, ob, sizeof oa) == 0, "%s with bf16 activations differs from its fp32 path",
              isa);
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
    static const int64_t Ns[] = {1, 3, 5, 17};
    for (size_t ki = 0; ki < sizeof Ks / sizeof Ks[0]; ki++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
            test_case(be1, be3, exact, Ns[ni], Ks[ki]);
    be1->ops->destroy(be1);
    be3->ops->destroy(be3);
    exact->ops->destroy(exact);
    return test_summary("test_bf16_gemm");
}
