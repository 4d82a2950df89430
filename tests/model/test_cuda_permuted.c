/* Act-order block weights on the CUDA backend (weight_upload_permuted, backend.h), under cusim or
 * on a GPU: a Q8_Z weight W [N = 72, K = 160] (stored column j holds input column perm[j]) with
 * random scales, zero points 0..255 and codes, uploaded with a random permutation, then matmul
 * for M = 1, 5 (the GEMV) and 33 (the mma GEMM), fp16 and bf16 activations, against fp64 on the
 * CPU over the same weight dequantised (host/format/ggml_quants.c) and un-permuted
 * (W_in[n, perm[j]] = W[n, j]) and the same rounded x. Tolerances (test_ggml_matmul's, whose
 * error sources these are): GEMV max|out - ref| <= 1e-3 · max|ref| (fp16 out; bf16 out 4e-3);
 * GEMM mean rel <= 1e-3, max <= 2e-3 (x8 for bf16, whose weights round to 8 bits).
 * Also, bit for bit: the permuted weight on x equals the plain upload on x gathered by the host
 * (the gather is an exact copy), and an identity perm equals the plain upload. After reserve a
 * matmul allocates nothing (decode graphs may capture it); the fused decode op declines a
 * permuted weight (while it takes an f16 weight under the same plan); embed refuses one; a perm
 * that is not a permutation, a non-block dtype, and supports() with has_perm give clear answers. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "core/half.h"
#include "format/ggml_quants.h"
#include "test_util.h"

#define N_OUT 72
#define K_IN  160 /* 5 blocks: an odd number of the GEMM's 32-deep k steps */
#define MAX_M 33

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static uint32_t rnd(void) {
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(g_rng >> 33);
}
static float uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f;
}

typedef struct {
    llmrt_backend *be;
    bool bf16;
    void *dx, *dout; /* activations [MAX_M, K_IN], [MAX_M, N_OUT] */
} gpu;

static uint16_t act_bits(const gpu *g, float v) {
    return g->bf16 ? llmrt_f32_to_bf16(v) : llmrt_f32_to_f16(v);
}
static float act_val(const gpu *g, uint16_t u) {
    return g->bf16 ? llmrt_bf16_to_f32(u) : llmrt_f16_to_f32(u);
}

/* out [M, N_OUT] as fp32 (the downloaded activations) of x [M, K_IN] (16-bit host bits) · Wᵀ. */
static bool run(gpu *g, const llmrt_bweight *w, const uint16_t *x, int32_t M, float *out) {
    llmrt_error err = {0};
    bool ok = g->be->ops->upload(g->be, g->dx, x, (uint64_t)M * K_IN * 2, &err) == LLMRT_OK;
    if (ok) g->be->ops->matmul(g->be, g->dout, g->dx, M, w);
    ok = ok && g->be->ops->download_f32(g->be, out, g->dout, (int64_t)M * N_OUT, &err) == LLMRT_OK;
    CHECK_MSG(ok, "matmul M %d: %s", M, err.msg);
    return ok;
}

static void test_act(bool bf16) {
    llmrt_cuda_options opt = {.act_dtype = bf16 ? LLMRT_DTYPE_BF16 : LLMRT_DTYPE_F16};
    gpu g = {.bf16 = bf16};
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_backend_cuda_create(0, &opt, &g.be, &err), err, LLMRT_OK, "");
    if (!g.be) return;
    const llmrt_backend_ops *ops = g.be->ops;
    CHECK(ops->weight_upload_permuted != NULL);
    CHECK(ops->alloc(g.be, MAX_M * K_IN * 2, &g.dx, &err) == LLMRT_OK);
    CHECK(ops->alloc(g.be, MAX_M * N_OUT * 2, &g.dout, &err) == LLMRT_OK);

    /* the weight: random Q8_Z blocks (d 0.0005 .. 0.004, z and q any byte, byte 3 zero) */
    enum { ROW_BYTES = K_IN / 32 * 36 };
    static uint8_t blocks[N_OUT * ROW_BYTES];
    for (size_t i = 0; i < sizeof blocks; i++)
        blocks[i] = (uint8_t)rnd();
    for (size_t at = 0; at < sizeof blocks; at += 36) {
        uint16_t d = llmrt_f32_to_f16(uniform(0.0005f, 0.004f));
        memcpy(blocks + at, &d, 2);
        blocks[at + 3] = 0;
    }
    int32_t perm[K_IN], ident[K_IN];
    for (int32_t j = 0; j < K_IN; j++)
        perm[j] = ident[j] = j;
    for (int32_t j = K_IN - 1; j > 0; j--) { /* Fisher-Yates */
        int32_t r = (int32_t)(rnd() % (uint32_t)(j + 1)), t = perm[j];
        perm[j] = perm[r], perm[r] = t;
    }
    /* the reference weight in input column order: W_in[n, perm[j]] = dequant(W)[n, j] */
    static float stored[N_OUT * K_IN];
    static double w_in[N_OUT * K_IN];
    for (int32_t n = 0; n < N_OUT; n++)
        llmrt_ggml_dequant_row(LLMRT_DTYPE_Q8_Z, blocks + n * ROW_BYTES, stored + n * K_IN, K_IN);
    for (int32_t n = 0; n < N_OUT; n++)
        for (int32_t j = 0; j < K_IN; j++)
            w_in[n * K_IN + perm[j]] = stored[n * K_IN + j];

    llmrt_bweight wp = {0}, wplain = {0}, wid = {0};
    CHECK_ERROR(
        ops->weight_upload_permuted(g.be, LLMRT_DTYPE_Q8_Z, N_OUT, K_IN, blocks, perm, &wp, &err),
        err, LLMRT_OK, "");
    CHECK_ERROR(ops->weight_upload(g.be, LLMRT_DTYPE_Q8_Z, N_OUT, K_IN, blocks, &wplain, &err), err,
                LLMRT_OK, "");
    CHECK_ERROR(
        ops->weight_upload_permuted(g.be, LLMRT_DTYPE_Q8_Z, N_OUT, K_IN, blocks, ident, &wid, &err),
        err, LLMRT_OK, "");
    if (!wp.data || !wplain.data || !wid.data) return;

    static uint16_t x[MAX_M * K_IN], xg[MAX_M * K_IN];
    static float out[MAX_M * N_OUT], out2[MAX_M * N_OUT];
    const int32_t Ms[] = {1, 5, 33};
    double worst_gemv = 0, worst_gemm_mean = 0, worst_gemm_max = 0;
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int32_t M = Ms[mi];
        for (int32_t i = 0; i < M * K_IN; i++)
            x[i] = act_bits(&g, uniform(-1.0f, 1.0f));
        if (!run(&g, &wp, x, M, out)) continue;
        double sum_err = 0, sum_ref = 0, max_err = 0, max_ref = 0;
        for (int32_t m = 0; m < M; m++)
            for (int32_t n = 0; n < N_OUT; n++) {
                double r = 0;
                for (int32_t k = 0; k < K_IN; k++)
                    r += (double)act_val(&g, x[m * K_IN + k]) * w_in[n * K_IN + k];
                double e = fabs((double)out[m * N_OUT + n] - r);
                sum_err += e, sum_ref += fabs(r);
                if (e > max_err) max_err = e;
                if (fabs(r) > max_ref) max_ref = fabs(r);
            }
        double mean_rel = sum_err / sum_ref, max_rel = max_err / max_ref;
        if (M <= 8) {
            double tol = bf16 ? 4e-3 : 1e-3;
            CHECK_MSG(max_rel <= tol, "%s M %d GEMV: max %.2e of max|ref| (<= %.0e)",
                      bf16 ? "bf16" : "f16", M, max_rel, tol);
            if (max_rel > worst_gemv) worst_gemv = max_rel;
        } else {
            double s = bf16 ? 8 : 1;
            CHECK_MSG(mean_rel <= 1e-3 * s && max_rel <= 2e-3 * s,
                      "%s M %d GEMM: mean rel %.2e, max %.2e", bf16 ? "bf16" : "f16", M, mean_rel,
                      max_rel);
            if (mean_rel > worst_gemm_mean) worst_gemm_mean = mean_rel;
            if (max_rel > worst_gemm_max) worst_gemm_max = max_rel;
        }
        /* bit for bit: the plain weight on x gathered by the host; the identity perm on x */
        for (int32_t m = 0; m < M; m++)
            for (int32_t j = 0; j < K_IN; j++)
                xg[m * K_IN + j] = x[m * K_IN + perm[j]];
        if (run(&g, &wplain, xg, M, out2))
            CHECK_MSG(memcmp(out, out2, (size_t)M * N_OUT * 4) == 0,
                      "M %d: the permuted weight differs from the plain one on gathered x", M);
        if (run(&g, &wid, x, M, out) && run(&g, &wplain, x, M, out2))
            CHECK_MSG(memcmp(out, out2, (size_t)M * N_OUT * 4) == 0,
                      "M %d: the identity perm differs from the plain upload", M);
    }
    printf("%s: worst GEMV max %.2e of max|ref|, GEMM mean rel %.2e, max %.2e\n",
           bf16 ? "bf16" : "f16", worst_gemv, worst_gemm_mean, worst_gemm_max);

    /* after reserve, a matmul of a reserved size allocates nothing (graph capture needs it) */
    llmrt_attn_shape shape = {
        .n_heads = 2, .n_kv_heads = 2, .head_dim = 64, .block_size = 16, .scale = 0.125f};
    CHECK_ERROR(ops->reserve(g.be, 2 * MAX_M, 2 * MAX_M, 1, 8, &shape, &err), err, LLMRT_OK, "");
    llmrt_cuda_backend_stats st0, st1;
    CHECK(llmrt_backend_cuda_stats(g.be, &st0));
    ops->matmul(g.be, g.dout, g.dx, MAX_M, &wp);
    CHECK(llmrt_backend_cuda_stats(g.be, &st1));
    CHECK_MSG(st1.device_allocs == st0.device_allocs && st1.launches == st0.launches + 2,
              "a reserved permuted matmul: %lld allocations, %lld launches (expected 0, 2)",
              (long long)(st1.device_allocs - st0.device_allocs),
              (long long)(st1.launches - st0.launches));
    CHECK_ERROR(ops->download_f32(g.be, out, g.dout, MAX_M * N_OUT, &err), err, LLMRT_OK, "");

    /* the fused decode op: declines the permuted weight, takes an f16 weight under the same plan */
    if (!bf16) {
        int32_t tok = 0, pos = 0, seq = 0, table = 0, orow = 0;
        int64_t slot = 0;
        llmrt_batch_plan plan = {.n_tokens = 1,
                                 .tokens = &tok,
                                 .positions = &pos,
                                 .seq_of = &seq,
                                 .slots = &slot,
                                 .n_seqs = 1,
                                 .max_blocks = 1,
                                 .block_tables = &table,
                                 .n_outputs = 1,
                                 .output_rows = &orow,
                                 .block_size = 16};
        CHECK_ERROR(ops->begin_batch(g.be, &plan, &err), err, LLMRT_OK, "");
        static uint16_t wh[N_OUT * K_IN];
        for (int32_t i = 0; i < N_OUT * K_IN; i++)
            wh[i] = llmrt_f32_to_f16((float)stored[i]);
        llmrt_bweight wf = {0};
        CHECK_ERROR(ops->weight_upload(g.be, LLMRT_DTYPE_F16, N_OUT, K_IN, wh, &wf, &err), err,
                    LLMRT_OK, "");
        llmrt_fused_matmul f = {
            .input = LLMRT_FUSED_IN_ACT, .x = g.dx, .n_w = 1, .w = {&wf}, .out = {g.dout}};
        CHECK_MSG(ops->matmul_fused(g.be, &f, 1), "the f16 weight is fused (control)");
        f.w[0] = &wp;
        CHECK_MSG(!ops->matmul_fused(g.be, &f, 1), "the fused op took a permuted weight");
        CHECK_ERROR(ops->download_f32(g.be, out, g.dout, N_OUT, &err), err, LLMRT_OK, "");
        ops->weight_free(g.be, &wf);
        /* a permuted weight as an embedding table would give its rows in stored order: refused */
        ops->embed(g.be, g.dout, &wp);
        CHECK_ERROR(ops->download_f32(g.be, out, g.dout, N_OUT, &err), err, LLMRT_ERR_UNSUPPORTED,
                    "act-order");
    }

    /* bad input */
    llmrt_bweight bad = {0};
    int32_t dup[K_IN];
    memcpy(dup, perm, sizeof dup);
    dup[7] = dup[8];
    CHECK_ERROR(
        ops->weight_upload_permuted(g.be, LLMRT_DTYPE_Q8_Z, N_OUT, K_IN, blocks, dup, &bad, &err),
        err, LLMRT_ERR_INVALID_ARG, "repeated column");
    dup[8] = K_IN;
    CHECK_ERROR(
        ops->weight_upload_permuted(g.be, LLMRT_DTYPE_Q8_Z, N_OUT, K_IN, blocks, dup, &bad, &err),
        err, LLMRT_ERR_INVALID_ARG, "perm[8] = 160 is out of range");
    CHECK_ERROR(
        ops->weight_upload_permuted(g.be, LLMRT_DTYPE_F16, N_OUT, K_IN, blocks, perm, &bad, &err),
        err, LLMRT_ERR_UNSUPPORTED, "F16");
    CHECK_ERROR(
        ops->weight_upload_permuted(g.be, LLMRT_DTYPE_Q8_Z, N_OUT, 100, blocks, perm, &bad, &err),
        err, LLMRT_ERR_UNSUPPORTED, "Q8_Z");
    CHECK(bad.data == NULL);
    char why[256] = "";
    llmrt_op_query q = {
        .op = LLMRT_BOP_MATMUL, .dtype = LLMRT_DTYPE_Q8_Z, .n = N_OUT, .k = K_IN, .has_perm = true};
    CHECK_MSG(ops->supports(g.be, &q, why, sizeof why), "Q8_Z with perm: %s", why);
    q.dtype = LLMRT_DTYPE_F16;
    CHECK(!ops->supports(g.be, &q, why, sizeof why) && strstr(why, "act-order") != NULL);

    ops->weight_free(g.be, &wp);
    ops->weight_free(g.be, &wplain);
    ops->weight_free(g.be, &wid);
    ops->free(g.be, g.dx);
    ops->free(g.be, g.dout);
    ops->destroy(g.be);
}

int main(void) {
    if (llmrt_backend_cuda_device_count() < 1) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    test_act(false);
    test_act(true);
    return test_summary("test_cuda_permuted");
}
