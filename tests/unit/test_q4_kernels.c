/* The CPU backend's 4-bit (and in-place Q8_0) matmuls, every instruction-set variant this
 * machine can run (avx512, avx2, generic), through the backend interface:
 *
 * 1. accuracy against an fp64 matmul over fp64-dequantised weights, for irregular M (tokens:
 *    1, 3, 8, 13, 64, 118), N not a multiple of the 4-row tile, K multiples of 32 (the layout's
 *    only requirement), group sizes 32 / 128 / K, act-order on and off, INT and FLOAT zeros.
 *    Threshold: mean relative error sum|y - ref| / sum|ref| <= 1e-5 per case, and every output
 *    within 1e-5 * sum_k |x_k w_k|. Why so tight (Marlin uses 1e-3): activations stay fp32 and
 *    the weights are dequantised exactly by the reference formula, so the only error is fp32
 *    summation, ~sqrt(K) * 2^-24 relative (~2e-6 at K = 640); fp16 activations would be ~1e-3.
 * 2. bitwise properties: an output does not depend on M (fused kernels up to 32 tokens,
 *    dequantise + fp32 tiles above: M = 64 and 118 take the second path, every token alone the
 *    first), nor on the thread count (1 vs 3), and the 4-bit path equals the fp32 path over the
 *    same dequantised weights bit for bit (same ISA).
 * 3. the repacker's refusals (K or group size not a multiple of 32, a bad permutation). */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/q4_kernels.h"
#include "core/half.h"
#include "cpu_matmul_run.h"
#include "test_util.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}
static float frand(void) { /* [-1, 1) */
    return (float)((double)urand() / 1073741824.0 - 1.0);
}

#define MAX_T 118
static const int Ms[] = {1, 3, 8, 13, 64, 118};

/* --------------------------------------------------------------------------------------------- */
/* helpers                                                                                       */
/* --------------------------------------------------------------------------------------------- */

static llmrt_backend *make_backend(int threads, const char *isa) {
    return cpu_test_backend(threads, isa, NULL);
}

typedef struct qweight {
    llmrt_q4_host h;
    uint8_t *qs, *zeros;
    uint16_t *scales, *offsets;
    int32_t *perm;
    double *wd; /* [N, K] fp64 weights in stored column order */
} qweight;

static void make_q4(qweight *q, int64_t N, int64_t K, int32_t gs, int zint, int act) {
    int64_t G = K / gs;
    memset(q, 0, sizeof *q);
    q->qs = malloc((size_t)(N * K / 2));
    q->scales = malloc((size_t)(N * G) * 2);
    q->zeros = malloc((size_t)(N * G));
    q->offsets = malloc((size_t)(N * G) * 2);
    q->wd = malloc((size_t)(N * K) * sizeof(double));
    for (int64_t i = 0; i < N * K / 2; i++)
        q->qs[i] = (uint8_t)urand();
    for (int64_t i = 0; i < N * G; i++) {
        q->scales[i] = llmrt_f32_to_f16(frand() * 0.05f);
        q->zeros[i] = (uint8_t)(urand() % 17); /* 16: a GPTQ v1 zero of stored nibble 15 */
        q->offsets[i] = llmrt_f32_to_f16(frand() * 0.2f);
    }
    if (act) { /* a random permutation (Fisher-Yates) */
        q->perm = malloc((size_t)K * sizeof(int32_t));
        for (int64_t k = 0; k < K; k++)
            q->perm[k] = (int32_t)k;
        for (int64_t k = K - 1; k > 0; k--) {
            int64_t j = urand() % (uint64_t)(k + 1);
            int32_t tt = q->perm[k];
            q->perm[k] = q->perm[j];
            q->perm[j] = tt;
        }
    }
    q->h = (llmrt_q4_host){.rows = N,
                           .cols = K,
                           .group_size = gs,
                           .zero_kind = zint ? LLMRT_Q4_ZERO_INT : LLMRT_Q4_ZERO_FLOAT,
                           .qs = q->qs,
                           .scales = q->scales,
                           .zeros = zint ? q->zeros : NULL,
                           .offsets = zint ? NULL : q->offsets,
                           .perm = q->perm};
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            int64_t g = k / gs;
            double v = (q->qs[n * K / 2 + k / 2] >> (4 * (k & 1))) & 15;
            double s = llmrt_f16_to_f32(q->scales[n * G + g]);
            q->wd[n * K + k] = zint ? s * (v - q->zeros[n * G + g])
                                    : s * v + llmrt_f16_to_f32(q->offsets[n * G + g]);
        }
}

static void free_q4(qweight *q) {
    free(q->qs);
    free(q->scales);
    free(q->zeros);
    free(q->offsets);
    free(q->perm);
    free(q->wd);
}

/* Accuracy of out[T, N] against fp64 over wd with x gathered through perm. Returns the mean
 * relative error. */
static double check_accuracy(const char *what, const float *out, const float *x, const double *wd,
                             const int32_t *perm, int64_t T, int64_t N, int64_t K) {
    double sum_err = 0, sum_ref = 0;
    int bad = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double ref = 0, mag = 0;
            for (int64_t j = 0; j < K; j++) {
                double p = (double)x[t * K + (perm ? perm[j] : j)] * wd[n * K + j];
                ref += p;
                mag += fabs(p);
            }
            double e = fabs((double)out[t * N + n] - ref);
            sum_err += e;
            sum_ref += fabs(ref);
            if (!(e <= 1e-5 * mag + 1e-30)) bad++;
        }
    double rel = sum_err / (sum_ref > 0 ? sum_ref : 1);
    CHECK_MSG(bad == 0, "%s: %d outputs off by more than 1e-5 * sum|x*w|", what, bad);
    CHECK_MSG(rel <= 1e-5, "%s: mean relative error %.3g > 1e-5", what, rel);
    return rel;
}

/* --------------------------------------------------------------------------------------------- */
/* 4-bit                                                                                         */
/* --------------------------------------------------------------------------------------------- */

static double worst_rel;

static void test_q4_case(const char *isa, int64_t N, int64_t K, int32_t gs, int zint, int act) {
    char what[160];
    snprintf(what, sizeof what, "%s N=%lld K=%lld gs=%d %s%s", isa ? isa : "best", (long long)N,
             (long long)K, gs, zint ? "INT" : "FLOAT", act ? " act-order" : "");
    qweight q;
    make_q4(&q, N, K, gs, zint, act);
    llmrt_backend *be1 = make_backend(1, isa), *be3 = make_backend(3, isa);
    llmrt_bweight w1, w3, wf;
    llmrt_error err = {0};
    CHECK_MSG(be1->ops->weight_upload_q4(be1, &q.h, &w1, &err) == LLMRT_OK, "%s: %s", what,
              err.msg);
    CHECK_MSG(be3->ops->weight_upload_q4(be3, &q.h, &w3, &err) == LLMRT_OK, "%s: %s", what,
              err.msg);
    /* the same weights dequantised to fp32 (stored column order) for the bitwise comparison */
    float *wf32 = malloc((size_t)(N * K) * sizeof(float));
    for (int64_t n = 0; n < N; n++)
        llmrt_q4_dequant_row(&q.h, n, wf32 + n * K);
    CHECK(be1->ops->weight_upload(be1, LLMRT_DTYPE_F32, N, K, wf32, &wf, &err) == LLMRT_OK);

    float *x = malloc((size_t)(MAX_T * K) * sizeof(float));
    float *xg = malloc((size_t)(MAX_T * K) * sizeof(float));
    float *out = malloc((size_t)(MAX_T * N) * sizeof(float));
    float *out3 = malloc((size_t)(MAX_T * N) * sizeof(float));
    float *outf = malloc((size_t)(MAX_T * N) * sizeof(float));
    float *alone = malloc((size_t)N * sizeof(float));
    for (int64_t i = 0; i < MAX_T * K; i++)
        x[i] = frand();
    for (int64_t t = 0; t < MAX_T; t++) /* x in stored column order for the fp32 comparison */
        for (int64_t j = 0; j < K; j++)
            xg[t * K + j] = x[t * K + (q.perm ? q.perm[j] : j)];

    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int32_t M = Ms[mi];
        char wm[200];
        snprintf(wm, sizeof wm, "%s M=%d", what, M);
        run_matmul(be1, &w1, x, M, out);
        double rel = check_accuracy(wm, out, x, q.wd, q.perm, M, N, K);
        if (rel > worst_rel) worst_rel = rel;
        /* thread count */
        run_matmul(be3, &w3, x, M, out3);
        CHECK_MSG(memcmp(out, out3, (size_t)(M * N) * sizeof(float)) == 0,
                  "%s: 3 threads differ from 1", wm);
        /* the fp32 path over the same weights */
        run_matmul(be1, &wf, xg, M, outf);
        CHECK_MSG(memcmp(out, outf, (size_t)(M * N) * sizeof(float)) == 0,
                  "%s: differs from the fp32 matmul over the dequantised weights", wm);
        /* every token alone (gemv path) equals its row of the batch */
        int diff = 0;
        for (int32_t t = 0; t < M; t++) {
            run_matmul(be1, &w1, x + (int64_t)t * K, 1, alone);
            diff += memcmp(alone, out + (int64_t)t * N, (size_t)N * sizeof(float)) != 0;
        }
        CHECK_MSG(diff == 0, "%s: %d tokens differ from the same token alone", wm, diff);
    }
    be1->ops->weight_free(be1, &w1);
    be1->ops->weight_free(be1, &wf);
    be3->ops->weight_free(be3, &w3);
    be1->ops->destroy(be1);
    be3->ops->destroy(be3);
    free(wf32);
    free(x);
    free(xg);
    free(out);
    free(out3);
    free(outf);
    free(alone);
    free_q4(&q);
}

static void test_q4_variant(const char *isa) {
    static const struct { int64_t N, K; } shapes[] = {{37, 96}, {64, 256}, {13, 640}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t N = shapes[si].N, K = shapes[si].K;
        int32_t gss[] = {32, 128, (int32_t)K};
        for (int gi = 0; gi < 3; gi++) {
            if (K % gss[gi] != 0) continue;
            for (int zint = 0; zint <= 1; zint++)
                for (int act = 0; act <= 1; act++)
                    test_q4_case(isa, N, K, gss[gi], zint, act);
        }
    }
}

/* --------------------------------------------------------------------------------------------- */
/* Q8_0 in place                                                                                 */
/* --------------------------------------------------------------------------------------------- */

static void test_q8_variant(const char *isa) {
    const int64_t N = 45, K = 320, rb = K / 32 * 34;
    uint8_t *d = malloc((size_t)(N * rb));
    double *wd = malloc((size_t)(N * K) * sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < K / 32; b++) {
            uint8_t *blk = d + n * rb + b * 34;
            uint16_t h = llmrt_f32_to_f16(frand() * 0.02f);
            memcpy(blk, &h, 2);
            for (int j = 0; j < 32; j++) {
                int8_t v = (int8_t)(urand() & 0xff);
                memcpy(blk + 2 + j, &v, 1);
                wd[n * K + b * 32 + j] = (double)llmrt_f16_to_f32(h) * v;
            }
        }
    char what[64];
    snprintf(what, sizeof what, "%s Q8_0", isa ? isa : "best");
    llmrt_backend *be1 = make_backend(1, isa), *be3 = make_backend(3, isa);
    llmrt_bweight w1, w3, wf;
    llmrt_error err = {0};
    CHECK(be1->ops->supports_weight(be1, LLMRT_DTYPE_Q8_0));
    CHECK(be1->ops->weight_upload(be1, LLMRT_DTYPE_Q8_0, N, K, d, &w1, &err) == LLMRT_OK);
    CHECK(be3->ops->weight_upload(be3, LLMRT_DTYPE_Q8_0, N, K, d, &w3, &err) == LLMRT_OK);
    float *wf32 = malloc((size_t)(N * K) * sizeof(float));
    for (int64_t i = 0; i < N * K; i++)
        wf32[i] = (float)wd[i]; /* d * q is exact in fp32 */
    CHECK(be1->ops->weight_upload(be1, LLMRT_DTYPE_F32, N, K, wf32, &wf, &err) == LLMRT_OK);
    float *x = malloc((size_t)(MAX_T * K) * sizeof(float)), *out = malloc((size_t)(MAX_T * N) * 4);
    float *out3 = malloc((size_t)(MAX_T * N) * 4), *outf = malloc((size_t)(MAX_T * N) * 4);
    float *alone = malloc((size_t)N * 4);
    for (int64_t i = 0; i < MAX_T * K; i++)
        x[i] = frand();
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int32_t M = Ms[mi];
        char wm[100];
        snprintf(wm, sizeof wm, "%s M=%d", what, M);
        run_matmul(be1, &w1, x, M, out);
        double rel = check_accuracy(wm, out, x, wd, NULL, M, N, K);
        if (rel > worst_rel) worst_rel = rel;
        run_matmul(be3, &w3, x, M, out3);
        CHECK_MSG(memcmp(out, out3, (size_t)(M * N) * 4) == 0, "%s: 3 threads differ", wm);
        run_matmul(be1, &wf, x, M, outf);
        CHECK_MSG(memcmp(out, outf, (size_t)(M * N) * 4) == 0, "%s: differs from fp32", wm);
        int diff = 0;
        for (int32_t t = 0; t < M; t++) {
            run_matmul(be1, &w1, x + (int64_t)t * K, 1, alone);
            diff += memcmp(alone, out + (int64_t)t * N, (size_t)N * 4) != 0;
        }
        CHECK_MSG(diff == 0, "%s: %d tokens differ from the same token alone", wm, diff);
    }
    /* embedding rows read from Q8_0 equal the dequantised rows */
    int32_t tok[3] = {7, 0, 44}, pos[3] = {0, 1, 2}, seq[3] = {0}, table[1] = {0}, outs[1] = {0};
    int64_t slots[3] = {0, 1, 2};
    llmrt_batch_plan plan = {.n_tokens = 3,
                             .tokens = tok,
                             .positions = pos,
                             .seq_of = seq,
                             .slots = slots,
                             .n_seqs = 1,
                             .max_blocks = 1,
                             .block_tables = table,
                             .n_outputs = 1,
                             .output_rows = outs};
    CHECK(be1->ops->begin_batch(be1, &plan, &err) == LLMRT_OK);
    be1->ops->embed(be1, out, &w1);
    for (int i = 0; i < 3; i++)
        CHECK_MSG(memcmp(out + i * K, wf32 + tok[i] * K, (size_t)K * 4) == 0, "%s: embed row %d",
                  what, tok[i]);
    be1->ops->weight_free(be1, &w1);
    be1->ops->weight_free(be1, &wf);
    be3->ops->weight_free(be3, &w3);
    be1->ops->destroy(be1);
    be3->ops->destroy(be3);
    free(d);
    free(wd);
    free(wf32);
    free(x);
    free(out);
    free(out3);
    free(outf);
    free(alone);
}

/* --------------------------------------------------------------------------------------------- */
/* refusals and the reference dequantisation                                                     */
/* --------------------------------------------------------------------------------------------- */

static void test_pack_errors(void) {
    qweight q;
    make_q4(&q, 8, 64, 32, 1, 1);
    llmrt_cpu_q4 p;
    llmrt_error err = {0};
    CHECK(llmrt_cpu_q4_pack(&q.h, &p, &err) == LLMRT_OK);
    llmrt_cpu_q4_free(&p);
    llmrt_q4_host h = q.h;
    h.group_size = 16; /* valid format, not for these kernels */
    CHECK(llmrt_cpu_q4_pack(&h, &p, &err) == LLMRT_ERR_UNSUPPORTED);
    h.group_size = 32;
    h.cols = 48; /* K % 32 != 0 (and not a multiple of the group) */
    CHECK(llmrt_cpu_q4_pack(&h, &p, &err) != LLMRT_OK);
    h.cols = 64;
    h.group_size = 0;
    CHECK(llmrt_cpu_q4_pack(&h, &p, &err) == LLMRT_ERR_INVALID_ARG);
    h.group_size = 32;
    q.perm[3] = q.perm[5]; /* not a permutation */
    CHECK(llmrt_cpu_q4_pack(&h, &p, &err) == LLMRT_ERR_INVALID_ARG);
    h.zeros = NULL;
    CHECK(llmrt_cpu_q4_pack(&h, &p, &err) == LLMRT_ERR_INVALID_ARG);
    /* a shape the kernels refuse falls back to UNSUPPORTED through the backend too */
    llmrt_backend *be = make_backend(1, NULL);
    llmrt_bweight w;
    h = q.h;
    h.perm = NULL;
    h.group_size = 16;
    CHECK(be->ops->weight_upload_q4(be, &h, &w, &err) == LLMRT_ERR_UNSUPPORTED);
    be->ops->destroy(be);

    /* llmrt_q4_dequant_row is the float32 reference formula */
    float row[64];
    for (int64_t n = 0; n < 8; n++) {
        llmrt_q4_dequant_row(&q.h, n, row);
        for (int k = 0; k < 64; k++) {
            int v = (q.qs[n * 32 + k / 2] >> (4 * (k & 1))) & 15;
            float s = llmrt_f16_to_f32(q.scales[n * 2 + k / 32]);
            float e = s * ((float)v - (float)q.zeros[n * 2 + k / 32]);
            CHECK(memcmp(&e, &row[k], 4) == 0);
        }
    }
    free_q4(&q);
}

int main(void) {
    test_pack_errors();
    const char *isas[] = {NULL /* best */, "avx2", "generic"};
    const char *names[3];
    for (int i = 0; i < 3; i++)
        names[i] = llmrt_cpu_kernels_select(isas[i]).isa;
    for (int i = 0; i < 3; i++) {
        bool dup = false; /* forcing an ISA the CPU lacks falls back: test each variant once */
        for (int j = 0; j < i; j++)
            dup = dup || strcmp(names[i], names[j]) == 0;
        if (dup) continue;
        worst_rel = 0;
        test_q4_variant(isas[i]);
        test_q8_variant(isas[i]);
        printf("%s: 4-bit and Q8_0 matmuls checked, worst mean relative error %.3g\n", names[i],
               worst_rel);
    }
    return test_summary("test_q4_kernels");
}
