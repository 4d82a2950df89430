/* The CPU backend's matmuls over Q8_Z (format/dtype.h: GPTQ 8-bit with zero points, blocks of
 * 32 along K, fp16 d | u8 z | u8 0 | u8 q[32], w = d * (q - z); model/gptq8.h), natural order
 * and act-order (weight_upload_permuted), every instruction-set variant this machine runs
 * (avx512, avx2, generic), exact (fp32 activations) and int8 (LLMRT_CPU_MATMUL_INT8) modes, on
 * random blocks (every q and z in 0..255, fp16 d of realistic size):
 *
 * 1. exact mode vs an fp64 matmul over the weights dequantised in fp64 (w = d * (q - z), exact),
 *    T = 1, 3, 17, 33, 70 tokens (fused gemv up to 32, dequantised rows + fp32 tiles above),
 *    N = 1, 7, 45, 50 (not multiples of the 4-row tile or 16-row task), K = 32, 96, 288.
 *    Bound: every output within 1e-5 * sum_k |x_k w_k| (the weights are exact in fp32, so only
 *    fp32 summation error); the mean relative error over cases of >= 32 outputs <= 1e-5.
 * 2. int8 mode (avx512 with VNNI, avx2, generic), same shapes: the activations are rounded to
 *    int8 per 32 columns (|x - d_b q| <= d_b / 2, d_b = max|x_block| / 127), so an output may be
 *    off by sum_k |w_k| d_b(k) / 2 + 1e-5 * sum|x w|.
 * 3. bitwise: each ISA's dequant_row equals the reference llmrt_ggml_dequant_row; an output does
 *    not depend on T nor the thread count (1 vs 3); Q8_Z equals the same weights uploaded as
 *    fp32 (exact mode); a permuted Q8_Z equals the natural-order upload of the same stored
 *    columns times x gathered by hand (x[:, perm[j]]); int8 avx512 / avx2 equal int8 generic.
 * 4. refusals: K not a multiple of 32, a perm entry outside [0, K).
 * 5. tensor-parallel slices (model/shard_slice.h): rows are views; block-aligned column slices
 *    stay Q8_Z; a slice cutting blocks is dequantised to fp32, equal to the matching columns of
 *    the whole matrix's reference dequantisation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/kq_kernels.h"
#include "core/half.h"
#include "format/ggml_quants.h"
#include "model/model.h"
#include "model/shard_slice.h"
#include "cpu_matmul_run.h"
#include "test_rng.h"
#include "test_util.h"

#define MAX_T 70
#define BB    36 /* bytes of a Q8_Z block */
static const int Ts[] = {1, 3, 17, 33, 70};
static const int Ns[] = {1, 7, 45, 50};
static const int Blocks[] = {1, 3, 9};

static llmrt_backend *make_backend(int threads, const char *isa, llmrt_cpu_matmul mode) {
    llmrt_cpu_options opt = {.matmul_mode = mode};
    return cpu_test_backend(threads, isa, &opt);
}

/* fp64 weight k of a block, from the layout (independent of ggml_quants.c) */
static double ref_weight(const uint8_t *b, int k) {
    uint16_t h;
    memcpy(&h, b, 2);
    return (double)llmrt_f16_to_f32(h) * ((double)b[4 + k] - (double)b[2]);
}

typedef struct q8z_case {
    int64_t N, K;
    uint8_t *w;    /* [N, K/32 blocks] in stored column order */
    double *wd;    /* [N, K] fp64, stored order */
    float *wf32;   /* [N, K] the reference dequantisation, stored order */
    int32_t *perm; /* [K] stored column j holds input column perm[j] */
    float *x;      /* [MAX_T, K] input order */
    float *xg;     /* [MAX_T, K] x gathered into stored order */
} q8z_case;

static void make_case(q8z_case *c, int64_t N, int64_t nblk) {
    int64_t K = nblk * 32;
    c->N = N, c->K = K;
    c->w = malloc((size_t)(N * nblk * BB));
    c->wd = malloc((size_t)(N * K) * sizeof(double));
    c->wf32 = malloc((size_t)(N * K) * sizeof(float));
    c->perm = malloc((size_t)K * sizeof(int32_t));
    c->x = malloc((size_t)(MAX_T * K) * sizeof(float));
    c->xg = malloc((size_t)(MAX_T * K) * sizeof(float));
    for (int64_t i = 0; i < N * nblk; i++) {
        uint8_t *b = c->w + i * BB;
        for (int j = 0; j < BB; j++)
            b[j] = (uint8_t)urand();
        uint16_t d = llmrt_f32_to_f16(0.0005f + 0.001f * (float)(urand() % 1000) / 1000.0f);
        memcpy(b, &d, 2);
        b[3] = 0;
    }
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            c->wd[n * K + k] = ref_weight(c->w + (n * nblk + k / 32) * BB, (int)(k % 32));
    for (int64_t k = 0; k < K; k++)
        c->perm[k] = (int32_t)k;
    for (int64_t k = K - 1; k > 0; k--) { /* Fisher-Yates */
        int64_t j = urand() % (uint32_t)(k + 1);
        int32_t t = c->perm[k];
        c->perm[k] = c->perm[j], c->perm[j] = t;
    }
    for (int64_t i = 0; i < MAX_T * K; i++)
        c->x[i] = frand();
    for (int64_t t = 0; t < MAX_T; t++)
        for (int64_t j = 0; j < K; j++)
            c->xg[t * K + j] = c->x[t * K + c->perm[j]];
}

static void free_case(q8z_case *c) {
    free(c->w), free(c->wd), free(c->wf32), free(c->perm), free(c->x), free(c->xg);
}

static double worst_rel;

/* out [T, N] against fp64: exact (int8 false) or within the int8 rounding bound */
static void check_accuracy(const char *what, const q8z_case *c, const float *x, const float *out,
                           int32_t T, bool int8) {
    int64_t N = c->N, K = c->K;
    double sum_err = 0, sum_ref = 0;
    int bad = 0;
    for (int64_t t = 0; t < T; t++) {
        const float *xs = c->xg + t * K; /* stored order: wd is stored order */
        (void)x;
        for (int64_t n = 0; n < N; n++) {
            double ref = 0, mag = 0, q8 = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)xs[k] * c->wd[n * K + k];
                ref += p;
                mag += fabs(p);
            }
            if (int8)
                for (int64_t b = 0; b < K / 32; b++) {
                    double amax = 0, sw = 0;
                    for (int j = 0; j < 32; j++) {
                        int64_t k = 32 * b + j;
                        /* the int8 blocks run over the matmul's stored columns */
                        amax = fmax(amax, fabs((double)xs[k]));
                        sw += fabs(c->wd[n * K + k]);
                    }
                    q8 += sw * (amax / 127.0) / 2.0;
                }
            double e = fabs((double)out[t * N + n] - ref);
            sum_err += e;
            sum_ref += fabs(ref);
            if (!(e <= q8 * 1.0001 + 1e-5 * mag + 1e-30)) bad++;
        }
    }
    double rel = sum_err / (sum_ref > 0 ? sum_ref : 1);
    if (rel > worst_rel && T * N >= 32) worst_rel = rel;
    CHECK_MSG(bad == 0, "%s T=%d: %d outputs outside the bound", what, T, bad);
    if (!int8 && T * N >= 32)
        CHECK_MSG(rel <= 1e-5, "%s T=%d: mean relative error %.3g > 1e-5", what, T, rel);
}

static void test_case(const char *isa, bool int8, int64_t N, int64_t nblk) {
    q8z_case c;
    make_case(&c, N, nblk);
    int64_t K = c.K;
    char what[160];
    snprintf(what, sizeof what, "%s %s Q8_Z N=%lld K=%lld", isa ? isa : "best",
             int8 ? "int8" : "exact", (long long)N, (long long)K);
    llmrt_cpu_matmul mode = int8 ? LLMRT_CPU_MATMUL_INT8 : LLMRT_CPU_MATMUL_EXACT;
    /* the reference dequantisation equals the fp64 formula (exact in fp32), and each ISA's
     * dequant_row equals it bit for bit */
    int bad_ref = 0;
    for (int64_t n = 0; n < N; n++) {
        llmrt_ggml_dequant_row(LLMRT_DTYPE_Q8_Z, c.w + n * nblk * BB, c.wf32 + n * K, K);
        for (int64_t k = 0; k < K; k++)
            bad_ref += (double)c.wf32[n * K + k] != c.wd[n * K + k];
    }
    CHECK_MSG(bad_ref == 0, "%s: %d reference weights differ from the fp64 formula", what, bad_ref);
    llmrt_cpu_kq_kernels kq = llmrt_cpu_kq_kernels_for(llmrt_cpu_kernels_select(isa).isa);
    float *row = malloc((size_t)K * sizeof(float));
    for (int64_t n = 0; n < N; n++) {
        kq.dequant_row(LLMRT_DTYPE_Q8_Z, row, c.w + n * nblk * BB, K);
        CHECK_MSG(memcmp(row, c.wf32 + n * K, (size_t)K * 4) == 0,
                  "%s: %s dequant_row differs from the reference (row %lld)", what, kq.isa,
                  (long long)n);
    }
    free(row);

    llmrt_backend *be1 = make_backend(1, isa, mode), *be3 = make_backend(3, isa, mode);
    llmrt_backend *beg = make_backend(1, "generic", mode);
    llmrt_bweight wn, wp, wp3, wf, wg;
    llmrt_error err = {0};
    CHECK_MSG(be1->ops->weight_upload(be1, LLMRT_DTYPE_Q8_Z, N, K, c.w, &wn, &err) == LLMRT_OK,
              "%s: %s", what, err.msg);
    CHECK_MSG(be1->ops->weight_upload_permuted(be1, LLMRT_DTYPE_Q8_Z, N, K, c.w, c.perm, &wp,
                                               &err) == LLMRT_OK,
              "%s: %s", what, err.msg);
    CHECK(be3->ops->weight_upload_permuted(be3, LLMRT_DTYPE_Q8_Z, N, K, c.w, c.perm, &wp3, &err) ==
          LLMRT_OK);
    CHECK(be1->ops->weight_upload(be1, LLMRT_DTYPE_F32, N, K, c.wf32, &wf, &err) == LLMRT_OK);
    CHECK(beg->ops->weight_upload_permuted(beg, LLMRT_DTYPE_Q8_Z, N, K, c.w, c.perm, &wg, &err) ==
          LLMRT_OK);
    float *out = malloc((size_t)(MAX_T * N) * 4), *outn = malloc((size_t)(MAX_T * N) * 4);
    float *out3 = malloc((size_t)(MAX_T * N) * 4), *outf = malloc((size_t)(MAX_T * N) * 4);
    float *outg = malloc((size_t)(MAX_T * N) * 4), *alone = malloc((size_t)N * 4);
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        int32_t T = Ts[ti];
        run_matmul(be1, &wp, c.x, T, out);   /* act-order: x in input order */
        run_matmul(be1, &wn, c.xg, T, outn); /* natural: x gathered by hand */
        run_matmul(be3, &wp3, c.x, T, out3);
        run_matmul(beg, &wg, c.x, T, outg);
        check_accuracy(what, &c, c.x, out, T, int8);
        CHECK_MSG(memcmp(out, outn, (size_t)(T * N) * 4) == 0,
                  "%s T=%d: permuted upload differs from x gathered by hand", what, T);
        CHECK_MSG(memcmp(out, out3, (size_t)(T * N) * 4) == 0, "%s T=%d: 1 vs 3 threads differ",
                  what, T);
        int path_diff = 0;
        for (int64_t t = 0; t < T; t++) {
            run_matmul(be1, &wp, c.x + t * K, 1, alone);
            path_diff += memcmp(alone, out + t * N, (size_t)N * 4) != 0;
        }
        CHECK_MSG(path_diff == 0, "%s T=%d: %d tokens differ from the same token alone", what, T,
                  path_diff);
        if (!int8) {
            run_matmul(be1, &wf, c.xg, T, outf);
            CHECK_MSG(memcmp(out, outf, (size_t)(T * N) * 4) == 0,
                      "%s T=%d: Q8_Z and the fp32 weights differ", what, T);
        } else {
            CHECK_MSG(memcmp(out, outg, (size_t)(T * N) * 4) == 0,
                      "%s T=%d: int8 differs from the portable int8 kernels", what, T);
        }
    }
    be1->ops->weight_free(be1, &wn);
    be1->ops->weight_free(be1, &wp);
    be1->ops->weight_free(be1, &wf);
    be3->ops->weight_free(be3, &wp3);
    beg->ops->weight_free(beg, &wg);
    be1->ops->destroy(be1);
    be3->ops->destroy(be3);
    beg->ops->destroy(beg);
    free(out), free(outn), free(out3), free(outf), free(outg), free(alone);
    free_case(&c);
}

static void test_refusals(void) {
    llmrt_backend *be = make_backend(1, NULL, LLMRT_CPU_MATMUL_EXACT);
    llmrt_bweight w;
    llmrt_error err = {0};
    uint8_t buf[72] = {0};
    int32_t perm[64] = {0};
    for (int i = 0; i < 64; i++)
        perm[i] = 63 - i;
    CHECK_ERROR(be->ops->weight_upload(be, LLMRT_DTYPE_Q8_Z, 1, 48, buf, &w, &err), err,
                LLMRT_ERR_UNSUPPORTED, "Q8_Z weight with 48 columns (a multiple of 32");
    perm[5] = 64;
    CHECK_ERROR(be->ops->weight_upload_permuted(be, LLMRT_DTYPE_Q8_Z, 1, 64, buf, perm, &w, &err),
                err, LLMRT_ERR_INVALID_ARG, "perm[5] = 64 is outside [0, 64)");
    llmrt_op_query q = {
        .op = LLMRT_BOP_MATMUL, .dtype = LLMRT_DTYPE_Q8_Z, .n = 4, .k = 64, .has_perm = true};
    char why[200];
    CHECK(be->ops->supports(be, &q, why, sizeof why));
    CHECK(be->ops->supports_weight(be, LLMRT_DTYPE_Q8_Z));
    be->ops->destroy(be);
}

static void test_slices(void) {
    q8z_case c;
    make_case(&c, 6, 4); /* [6, 128] */
    int64_t N = c.N, K = c.K;
    for (int64_t n = 0; n < N; n++)
        llmrt_ggml_dequant_row(LLMRT_DTYPE_Q8_Z, c.w + n * 4 * BB, c.wf32 + n * K, K);
    llmrt_host_tensor h = {.dtype = LLMRT_DTYPE_Q8_Z, .rows = N, .cols = K, .data = c.w}, o;
    struct llmrt_rank_model m;
    memset(&m, 0, sizeof m);
    llmrt_error err = {0};
    CHECK(llmrt_slice_host_rows(&h, 2, 3, &o, &err) == LLMRT_OK);
    CHECK(o.data == c.w + 2 * 4 * BB && o.dtype == LLMRT_DTYPE_Q8_Z && o.rows == 3);
    float part[128];
    /* whole blocks [32, 96): still Q8_Z */
    CHECK_MSG(llmrt_slice_host_cols(&m, &h, 32, 64, &o, &err) == LLMRT_OK, "%s", err.msg);
    CHECK(o.dtype == LLMRT_DTYPE_Q8_Z && o.cols == 64);
    for (int64_t r = 0; r < N; r++) {
        llmrt_ggml_dequant_row(LLMRT_DTYPE_Q8_Z, (const uint8_t *)o.data + r * 2 * BB, part, 64);
        CHECK_MSG(memcmp(part, c.wf32 + r * K + 32, 64 * 4) == 0, "aligned slice row %lld",
                  (long long)r);
    }
    /* [40, 88): cuts blocks, fp32 of the same values */
    CHECK_MSG(llmrt_slice_host_cols(&m, &h, 40, 48, &o, &err) == LLMRT_OK, "%s", err.msg);
    CHECK(o.dtype == LLMRT_DTYPE_F32 && o.cols == 48);
    for (int64_t r = 0; r < N; r++)
        CHECK_MSG(memcmp((const float *)o.data + r * 48, c.wf32 + r * K + 40, 48 * 4) == 0,
                  "block-cutting slice row %lld", (long long)r);
    for (int64_t i = 0; i < m.n_host_buffers; i++)
        free(m.host_buffers[i]);
    free(m.host_buffers);
    free_case(&c);
}

int main(void) {
    test_refusals();
    test_slices();
    const char *isas[] = {NULL /* best */, "avx2", "generic"};
    const char *names[3];
    for (int i = 0; i < 3; i++)
        names[i] = llmrt_cpu_kernels_select(isas[i]).isa;
    for (int mode = 0; mode < 2; mode++)
        for (int i = 0; i < 3; i++) {
            bool dup = false; /* forcing an ISA the CPU lacks falls back: each variant once */
            for (int j = 0; j < i; j++)
                dup = dup || strcmp(names[i], names[j]) == 0;
            if (dup) continue;
            worst_rel = 0;
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
                for (size_t ki = 0; ki < sizeof Blocks / sizeof Blocks[0]; ki++)
                    test_case(isas[i], mode == 1, Ns[ni], Blocks[ki]);
            printf("%s %s: Q8_Z matmuls (natural and act-order) checked, worst mean relative "
                   "error %.3g\n",
                   names[i], mode ? "int8" : "exact", worst_rel);
        }
    return test_summary("test_q8z_kernels");
}
