/* The CPU backend's matmul_fused (backend.h; cpu_backend.c): the projections of one activation x
 * (a layer's q, k, v or gate, up) as one pool run with x converted once.
 *
 * 1. bitwise: every output equals the separate matmul of its weight, for every kernel set this
 *    CPU runs (generic, avx2, avx512) x matmul mode (exact, int8, bf16 where the CPU has it) x
 *    1 and 2 threads x token counts 1, 3, 17 and 40 (fused gemv and tiled paths), over groups
 *    that mix weight kinds whose activations are converted differently: 4-bit (INT and FLOAT
 *    zeros), Q8_0, Q5_0 (int8 per 32 columns), Q4_K (q8_K per 256), F32 (bf16 mode rounds x),
 *    with row counts that end in partial tiles and panels, and a bias on one of them;
 * 2. declines (returns false, outputs untouched) what it does not take: the RMSNORM and SWIGLU
 *    inputs, a residual, one weight, weights of different K, a 4-bit weight in act-order. */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/half.h"
#include "cpu_matmul_run.h"
#include "test_rng.h"
#include "test_util.h"

#define K     256
#define MAX_T 40

/* the host copies of one test weight */
typedef struct tweight {
    llmrt_dtype   dtype; /* LLMRT_DTYPE_Q4: q4 below */
    int64_t       rows;
    uint8_t      *raw; /* block rows / fp32 values */
    llmrt_q4_host q4;
    uint8_t      *qs, *zeros;
    uint16_t     *scales, *offsets;
    int32_t      *perm;
    float        *bias;
} tweight;

static void make_weight(tweight *t, llmrt_dtype dtype, int64_t rows, int zint, int act) {
    memset(t, 0, sizeof *t);
    t->dtype = dtype, t->rows = rows;
    if (dtype == LLMRT_DTYPE_Q4) {
        int64_t G = K / 64;
        t->qs = malloc((size_t)(rows * K / 2)), t->zeros = malloc((size_t)(rows * G));
        t->scales = malloc((size_t)(rows * G) * 2), t->offsets = malloc((size_t)(rows * G) * 2);
        for (int64_t i = 0; i < rows * K / 2; i++) t->qs[i] = (uint8_t)urand();
        for (int64_t i = 0; i < rows * G; i++) {
            t->scales[i]  = llmrt_f32_to_f16(0.05f * frand());
            t->zeros[i]   = (uint8_t)(urand() % 16);
            t->offsets[i] = llmrt_f32_to_f16(0.2f * frand());
        }
        if (act) {
            t->perm = malloc(K * sizeof(int32_t));
            for (int k = 0; k < K; k++) t->perm[k] = K - 1 - k;
        }
        t->q4 = (llmrt_q4_host){.rows = rows, .cols = K, .group_size = 64,
                                .zero_kind = zint ? LLMRT_Q4_ZERO_INT : LLMRT_Q4_ZERO_FLOAT,
                                .qs = t->qs, .scales = t->scales,
                                .zeros = zint ? t->zeros : NULL,
                                .offsets = zint ? NULL : t->offsets, .perm = t->perm};
        return;
    }
    int64_t bytes = dtype == LLMRT_DTYPE_F32 ? rows * K * 4
                                             : rows * K / llmrt_dtype_block_elems(dtype) *
                                                   llmrt_dtype_block_bytes(dtype);
    t->raw = malloc((size_t)bytes);
    if (dtype == LLMRT_DTYPE_F32) {
        for (int64_t i = 0; i < rows * K; i++) ((float *)t->raw)[i] = 0.1f * frand();
        return;
    }
    for (int64_t i = 0; i < bytes; i++) t->raw[i] = (uint8_t)urand();
    /* finite, small block scales: the first fp16 of every block (Q4_K: d and dmin) */
    int64_t bb = llmrt_dtype_block_bytes(dtype);
    for (int64_t o = 0; o < bytes; o += bb) {
        put_f16(t->raw + o, 0.01f * frand());
        if (dtype == LLMRT_DTYPE_Q4_K) put_f16(t->raw + o + 2, 0.01f * frand());
    }
}

static void free_weight(tweight *t) {
    free(t->raw), free(t->qs), free(t->zeros), free(t->scales), free(t->offsets), free(t->perm);
    free(t->bias);
}

static llmrt_status upload(llmrt_backend *be, tweight *t, llmrt_bweight *w) {
    llmrt_error  err = {0};
    llmrt_status s   = t->dtype == LLMRT_DTYPE_Q4
                           ? be->ops->weight_upload_q4(be, &t->q4, w, &err)
                           : be->ops->weight_upload(be, t->dtype, t->rows, K, t->raw, w, &err);
    if (s == LLMRT_OK && t->bias) w->bias = t->bias; /* fp32 host memory: the CPU's bias */
    CHECK_MSG(s == LLMRT_OK, "upload %s: %s", llmrt_dtype_name(t->dtype), err.msg);
    return s;
}

/* one group: fused vs separate, every T */
/* mode: 0 exact, 1 int8, 2 bf16 (llmrt_cpu_options.bf16_activations) */
static void check_group(const char *isa, int mode, int threads, tweight *tw, int32_t n_w,
                        const float *x) {
    llmrt_cpu_options opt = {.matmul_mode = mode == 1 ? LLMRT_CPU_MATMUL_INT8
                                                      : LLMRT_CPU_MATMUL_EXACT,
                             .bf16_activations = mode == 2};
    llmrt_backend    *be  = cpu_test_backend(threads, isa, &opt);
    CHECK(be != NULL);
    if (!be) return;
    llmrt_bweight w[LLMRT_FUSED_MAX_W];
    float        *sep[LLMRT_FUSED_MAX_W], *fus[LLMRT_FUSED_MAX_W];
    for (int32_t i = 0; i < n_w; i++) {
        CHECK(upload(be, &tw[i], &w[i]) == LLMRT_OK);
        sep[i] = malloc((size_t)(MAX_T * tw[i].rows) * sizeof(float));
        fus[i] = malloc((size_t)(MAX_T * tw[i].rows) * sizeof(float));
    }
    static const int32_t Ts[] = {1, 3, 17, MAX_T};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        int32_t T = Ts[ti];
        for (int32_t i = 0; i < n_w; i++) run_matmul(be, &w[i], x, T, sep[i]);
        llmrt_fused_matmul f = {.input = LLMRT_FUSED_IN_ACT, .x = x, .n_w = n_w};
        for (int32_t i = 0; i < n_w; i++) {
            f.w[i]   = &w[i];
            f.out[i] = fus[i];
            memset(fus[i], 0xff, (size_t)(T * tw[i].rows) * sizeof(float)); /* NaN: all written */
        }
        CHECK_MSG(be->ops->matmul_fused(be, &f, T), "%s mode %d: fused declined", isa, mode);
        for (int32_t i = 0; i < n_w; i++)
            CHECK_MSG(memcmp(sep[i], fus[i], (size_t)(T * tw[i].rows) * sizeof(float)) == 0,
                      "%s mode %d, %d threads, T=%d: weight %d (%s) fused differs from matmul",
                      isa, mode, threads, T, i, llmrt_dtype_name(tw[i].dtype));
    }
    for (int32_t i = 0; i < n_w; i++) {
        be->ops->weight_free(be, &w[i]);
        free(sep[i]), free(fus[i]);
    }
    be->ops->destroy(be);
}

static void test_declines(const float *x) {
    llmrt_backend *be = cpu_test_backend(1, NULL, NULL);
    CHECK(be != NULL);
    if (!be) return;
    tweight t[3];
    make_weight(&t[0], LLMRT_DTYPE_F32, 8, 0, 0);
    make_weight(&t[1], LLMRT_DTYPE_F32, 8, 0, 0);
    make_weight(&t[2], LLMRT_DTYPE_Q4, 8, 1, 1); /* act-order */
    llmrt_bweight w[3];
    for (int i = 0; i < 3; i++) CHECK(upload(be, &t[i], &w[i]) == LLMRT_OK);
    float out[2][8], norm[K];
    for (int k = 0; k < K; k++) norm[k] = 1.0f;
    memset(out, 0, sizeof out);
    run_matmul(be, &w[0], x, 1, out[0]); /* begin_batch for one token */
    memset(out, 0, sizeof out);
    llmrt_fused_matmul base = {.input = LLMRT_FUSED_IN_ACT, .x = x, .n_w = 2,
                               .w = {&w[0], &w[1]}, .out = {out[0], out[1]}};
    llmrt_fused_matmul f = base;
    f.input = LLMRT_FUSED_IN_RMSNORM, f.norm_w = norm, f.eps = 1e-5f;
    CHECK(!be->ops->matmul_fused(be, &f, 1));
    f = base, f.input = LLMRT_FUSED_IN_SWIGLU, f.up = x;
    CHECK(!be->ops->matmul_fused(be, &f, 1));
    f = base, f.n_w = 1, f.residual = out[0];
    CHECK(!be->ops->matmul_fused(be, &f, 1));
    f = base, f.n_w = 1;
    CHECK(!be->ops->matmul_fused(be, &f, 1));
    f = base, f.w[1] = &w[2];
    CHECK(!be->ops->matmul_fused(be, &f, 1));
    llmrt_bweight narrow = w[1];
    narrow.cols          = K - 32;
    f = base, f.w[1] = &narrow;
    CHECK(!be->ops->matmul_fused(be, &f, 1));
    int untouched = 1;
    for (int i = 0; i < 8; i++) untouched &= out[0][i] == 0.0f && out[1][i] == 0.0f;
    CHECK_MSG(untouched, "a declined fused matmul wrote its outputs");
    for (int i = 0; i < 3; i++) {
        be->ops->weight_free(be, &w[i]);
        free_weight(&t[i]);
    }
    be->ops->destroy(be);
}

int main(void) {
    float *x = malloc((size_t)(MAX_T * K) * sizeof(float));
    for (int64_t i = 0; i < MAX_T * K; i++) x[i] = frand();
    /* groups of 3 with partial 4-row tiles, 16-row panels and 32-row bf16 panels */
    tweight groups[3][3];
    make_weight(&groups[0][0], LLMRT_DTYPE_Q4, 45, 1, 0); /* q, k, v of a 4-bit model */
    make_weight(&groups[0][1], LLMRT_DTYPE_Q4, 13, 0, 0);
    make_weight(&groups[0][2], LLMRT_DTYPE_Q4, 13, 1, 0);
    make_weight(&groups[1][0], LLMRT_DTYPE_Q5_0, 37, 0, 0); /* a K-quant file's mixture */
    make_weight(&groups[1][1], LLMRT_DTYPE_Q8_0, 21, 0, 0);
    make_weight(&groups[1][2], LLMRT_DTYPE_Q4_K, 19, 0, 0);
    make_weight(&groups[2][0], LLMRT_DTYPE_F32, 70, 0, 0); /* gate, up in fp32 */
    make_weight(&groups[2][1], LLMRT_DTYPE_F32, 33, 0, 0);
    make_weight(&groups[2][2], LLMRT_DTYPE_Q8_0, 9, 0, 0);
    groups[1][1].bias = malloc(21 * sizeof(float));
    for (int i = 0; i < 21; i++) groups[1][1].bias[i] = frand();

    const char            *isas[]  = {"generic", "avx2", "avx512"};
    for (int ii = 0; ii < 3; ii++) {
        /* a kernel set the CPU lacks falls back to one below it: run each set once */
        const char *got = llmrt_cpu_kernels_select(isas[ii]).isa;
        if (strcmp(got, isas[ii]) != 0) continue;
        for (int mi = 0; mi < 3; mi++)
            for (int threads = 1; threads <= 2; threads++)
                for (int g = 0; g < 3; g++) check_group(isas[ii], mi, threads, groups[g], 3, x);
    }
    test_declines(x);
    for (int g = 0; g < 3; g++)
        for (int i = 0; i < 3; i++) free_weight(&groups[g][i]);
    free(x);
    return test_summary("test_cpu_matmul_fused");
}
