/* The CPU backend's matmuls over packed GGUF blocks (Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K;
 * kq_kernels.h), every instruction-set variant this machine can run (avx512, avx2, generic),
 * through the backend interface, on random blocks (random bytes, sane fp16 scales):
 *
 * 1. accuracy against an fp64 matmul over weights dequantised in fp64 by llama.cpp's formula
 *    (ggml_quants.h; products exact in fp64), for T = 1, 3, 17, 64 tokens, N = 1, 7, 45 rows (not
 *    multiples of the 4-row tile or the 16-row task) and K = 1, 2, 3 blocks of 256 (K-quants) or
 *    1, 3, 9 blocks of 32 (Q5_x). Threshold as test_q4_kernels: mean relative error
 *    sum|y - ref| / sum|ref| <= 1e-5 and every output within 1e-5 * sum_k |x_k w_k| (fp32
 *    activations, weights exact to the formula's fp32 rounding: only fp32 summation error); the
 *    mean only over cases of >= 32 outputs (with one output a cancelling sum dominates it).
 * 2. bitwise: each ISA's dequant_row equals the reference llmrt_ggml_dequant_row; an output does
 *    not depend on T (fused gemv up to 32 tokens, dequant_row + fp32 tiles above), nor on the
 *    thread count (1 vs 3); the packed weight equals the same weights uploaded as fp32.
 * 3. the backend's refusals: K not a multiple of the block.
 * 4. tensor-parallel slices (model/shard_slice.h): rows of whole blocks are views; block-aligned
 *    column slices copy whole blocks and dequantise to the matching columns of the whole matrix;
 *    a slice cutting a block fails naming the type. */
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


#define MAX_T 64
static const int Ts[] = {1, 3, 17, 64};
static const int Ns[] = {1, 7, 45};

static const llmrt_dtype TYPES[] = {LLMRT_DTYPE_Q5_0, LLMRT_DTYPE_Q5_1, LLMRT_DTYPE_Q2_K,
                                    LLMRT_DTYPE_Q3_K, LLMRT_DTYPE_Q4_K, LLMRT_DTYPE_Q5_K,
                                    LLMRT_DTYPE_Q6_K};

static llmrt_backend *make_backend(int threads, const char *isa) {
    return cpu_test_backend(threads, isa, NULL);
}

/* Random bytes with the fp16 fields set to scales of realistic size (and signs). */
static void random_block(llmrt_dtype t, uint8_t *b) {
    int bb = llmrt_dtype_block_bytes(t);
    for (int i = 0; i < bb; i++) b[i] = (uint8_t)urand();
    float d = 0.01f + 0.02f * (float)(urand() % 1000) / 1000.0f, m = 0.01f * frand();
    switch (t) {
    case LLMRT_DTYPE_Q5_0: put_f16(b, d); break;
    case LLMRT_DTYPE_Q5_1: put_f16(b, d), put_f16(b + 2, m); break;
    case LLMRT_DTYPE_Q2_K: put_f16(b + 80, d), put_f16(b + 82, 0.5f * d); break;
    case LLMRT_DTYPE_Q3_K: put_f16(b + 108, 0.1f * d); break;
    case LLMRT_DTYPE_Q4_K:
    case LLMRT_DTYPE_Q5_K: put_f16(b, 0.05f * d), put_f16(b + 2, 0.05f * d); break;
    case LLMRT_DTYPE_Q6_K: put_f16(b + 208, 0.02f * d); break;
    default: break;
    }
}

static double f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return (double)llmrt_f16_to_f32(h);
}

/* fp64 dequantisation of one block by the formula of ggml_quants.h, written independently of
 * ggml_quants.c (element by element from the layout description). */
static void ref_block(llmrt_dtype t, const uint8_t *b, double *y) {
    switch (t) {
    case LLMRT_DTYPE_Q5_0:
    case LLMRT_DTYPE_Q5_1: {
        int      mn = t == LLMRT_DTYPE_Q5_1;
        double   d = f16_at(b), m = mn ? f16_at(b + 2) : 0;
        uint32_t qh;
        memcpy(&qh, b + (mn ? 4 : 2), 4);
        const uint8_t *qs = b + (mn ? 8 : 6);
        for (int j = 0; j < 32; j++) {
            int q = ((j < 16 ? qs[j] : qs[j - 16] >> 4) & 15) | (int)((qh >> j) & 1) << 4;
            y[j]  = mn ? d * q + m : d * (q - 16);
        }
        break;
    }
    case LLMRT_DTYPE_Q2_K:
        for (int v = 0; v < 256; v++) {
            int sc = b[v / 16];
            int q  = (b[16 + 32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;
            y[v]   = f16_at(b + 80) * (sc & 15) * q - f16_at(b + 82) * (sc >> 4);
        }
        break;
    case LLMRT_DTYPE_Q3_K: {
        const uint8_t *sc = b + 96;
        for (int v = 0; v < 256; v++) {
            int s  = v / 16;
            int lo = (sc[s % 8] >> (4 * (s / 8))) & 15, hi = (sc[8 + s % 4] >> (2 * (s / 4))) & 3;
            int q  = (b[32 + 32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;
            if (!((b[v % 32] >> (v / 32)) & 1)) q -= 4;
            y[v] = f16_at(b + 108) * ((lo | hi << 4) - 32) * q;
        }
        break;
    }
    case LLMRT_DTYPE_Q4_K:
    case LLMRT_DTYPE_Q5_K: {
        int            five = t == LLMRT_DTYPE_Q5_K;
        const uint8_t *s12 = b + 4, *qs = b + (five ? 48 : 16);
        for (int v = 0; v < 256; v++) {
            int j = v / 32, sc, m;
            if (j < 4) {
                sc = s12[j] & 63, m = s12[j + 4] & 63;
            } else {
                sc = (s12[j + 4] & 15) | (s12[j - 4] >> 6) << 4;
                m  = (s12[j + 4] >> 4) | (s12[j] >> 6) << 4;
            }
            int byte = qs[32 * (v / 64) + v % 32];
            int q    = j % 2 ? byte >> 4 : byte & 15;
            if (five) q += 16 * ((b[16 + v % 32] >> j) & 1);
            y[v] = f16_at(b) * sc * q - f16_at(b + 2) * m;
        }
        break;
    }
    case LLMRT_DTYPE_Q6_K:
        for (int v = 0; v < 256; v++) {
            int h = v / 128, c = (v % 128) / 32, l = v % 32;
            int lo = b[64 * h + l + 32 * (c & 1)];
            int q = ((c < 2 ? lo & 15 : lo >> 4) | ((b[128 + 32 * h + l] >> (2 * c)) & 3) << 4) - 32;
            y[v] = f16_at(b + 208) * (int8_t)b[192 + v / 16] * q;
        }
        break;
    default: break;
    }
}

static double worst_rel;

static void test_case(const char *isa, llmrt_dtype t, int64_t N, int64_t nblk) {
    int64_t be_ = llmrt_dtype_block_elems(t), bb = llmrt_dtype_block_bytes(t), K = nblk * be_;
    int64_t row_bytes = nblk * bb;
    char    what[160];
    snprintf(what, sizeof what, "%s %s N=%lld K=%lld", isa ? isa : "best", llmrt_dtype_name(t),
             (long long)N, (long long)K);
    uint8_t *w    = malloc((size_t)(N * row_bytes));
    double  *wd   = malloc((size_t)(N * K) * sizeof(double));
    float   *wf32 = malloc((size_t)(N * K) * sizeof(float));
    float   *row  = malloc((size_t)K * sizeof(float));
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < nblk; b++) {
            random_block(t, w + n * row_bytes + b * bb);
            ref_block(t, w + n * row_bytes + b * bb, wd + n * K + b * be_);
        }
    /* the reference dequantisation: within fp32 rounding of the fp64 formula; each ISA's
     * dequant_row bit-identical to it */
    int bad_ref = 0;
    for (int64_t n = 0; n < N; n++) {
        llmrt_ggml_dequant_row(t, w + n * row_bytes, wf32 + n * K, K);
        for (int64_t k = 0; k < K; k++) {
            double r = wd[n * K + k];
            if (!(fabs((double)wf32[n * K + k] - r) <= 3e-7 * fabs(r) + 1e-9)) bad_ref++;
        }
    }
    CHECK_MSG(bad_ref == 0, "%s: %d reference weights off the fp64 formula", what, bad_ref);
    llmrt_cpu_kq_kernels kq = llmrt_cpu_kq_kernels_for(llmrt_cpu_kernels_select(isa).isa);
    for (int64_t n = 0; n < N; n++) {
        kq.dequant_row(t, row, w + n * row_bytes, K);
        CHECK_MSG(memcmp(row, wf32 + n * K, (size_t)K * 4) == 0,
                  "%s: %s dequant_row differs from the reference (row %lld)", what, kq.isa,
                  (long long)n);
    }

    llmrt_backend *be1 = make_backend(1, isa), *be3 = make_backend(3, isa);
    llmrt_bweight  w1, w3, wf;
    llmrt_error    err = {0};
    CHECK_MSG(be1->ops->weight_upload(be1, t, N, K, w, &w1, &err) == LLMRT_OK, "%s: %s", what,
              err.msg);
    CHECK_MSG(be3->ops->weight_upload(be3, t, N, K, w, &w3, &err) == LLMRT_OK, "%s: %s", what,
              err.msg);
    CHECK(be1->ops->weight_upload(be1, LLMRT_DTYPE_F32, N, K, wf32, &wf, &err) == LLMRT_OK);
    float *x     = malloc((size_t)(MAX_T * K) * sizeof(float));
    float *out   = malloc((size_t)(MAX_T * N) * sizeof(float));
    float *out3  = malloc((size_t)(MAX_T * N) * sizeof(float));
    float *outf  = malloc((size_t)(MAX_T * N) * sizeof(float));
    float *alone = malloc((size_t)N * sizeof(float));
    for (int64_t i = 0; i < MAX_T * K; i++) x[i] = frand();
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        int32_t T = Ts[ti];
        run_matmul(be1, &w1, x, T, out);
        run_matmul(be3, &w3, x, T, out3);
        run_matmul(be1, &wf, x, T, outf);
        double sum_err = 0, sum_ref = 0;
        int    bad = 0, path_diff = 0;
        for (int64_t tt = 0; tt < T; tt++) {
            run_matmul(be1, &w1, x + tt * K, 1, alone);
            for (int64_t n = 0; n < N; n++) {
                double ref = 0, mag = 0;
                for (int64_t k = 0; k < K; k++) {
                    double p = (double)x[tt * K + k] * wd[n * K + k];
                    ref += p;
                    mag += fabs(p);
                }
                double e = fabs((double)out[tt * N + n] - ref);
                sum_err += e;
                sum_ref += fabs(ref);
                if (!(e <= 1e-5 * mag + 1e-30)) bad++;
                if (memcmp(&alone[n], &out[tt * N + n], 4) != 0) path_diff++;
            }
        }
        double rel = sum_err / (sum_ref > 0 ? sum_ref : 1);
        if (rel > worst_rel && T * N >= 32) worst_rel = rel;
        CHECK_MSG(bad == 0, "%s T=%d: %d outputs off by more than 1e-5 * sum|x*w|", what, T, bad);
        /* the mean is a statistic: with a handful of outputs one cancelling sum dominates it */
        if (T * N >= 32)
            CHECK_MSG(rel <= 1e-5, "%s T=%d: mean relative error %.3g > 1e-5", what, T, rel);
        CHECK_MSG(path_diff == 0, "%s T=%d: %d outputs differ from the same token alone", what, T,
                  path_diff);
        CHECK_MSG(memcmp(out, out3, (size_t)(T * N) * 4) == 0, "%s T=%d: 1 vs 3 threads differ",
                  what, T);
        CHECK_MSG(memcmp(out, outf, (size_t)(T * N) * 4) == 0,
                  "%s T=%d: packed and fp32 weights differ", what, T);
    }
    be1->ops->weight_free(be1, &w1);
    be1->ops->weight_free(be1, &wf);
    be3->ops->weight_free(be3, &w3);
    be1->ops->destroy(be1);
    be3->ops->destroy(be3);
    free(w);
    free(wd);
    free(wf32);
    free(row);
    free(x);
    free(out);
    free(out3);
    free(outf);
    free(alone);
}

static void test_refusals(void) {
    llmrt_backend *be = make_backend(1, NULL);
    llmrt_bweight  w;
    llmrt_error    err = {0};
    uint8_t        buf[256] = {0};
    CHECK_ERROR(be->ops->weight_upload(be, LLMRT_DTYPE_Q4_K, 1, 128, buf, &w, &err), err,
                LLMRT_ERR_UNSUPPORTED, "Q4_K weight with 128 columns (a multiple of 256");
    CHECK_ERROR(be->ops->weight_upload(be, LLMRT_DTYPE_Q5_1, 1, 48, buf, &w, &err), err,
                LLMRT_ERR_UNSUPPORTED, "Q5_1 weight with 48 columns");
    llmrt_op_query q   = {.op = LLMRT_BOP_MATMUL, .dtype = LLMRT_DTYPE_Q6_K, .n = 4, .k = 320};
    char           why[200];
    CHECK(!be->ops->supports(be, &q, why, sizeof why));
    CHECK_MSG(strstr(why, "Q6_K") != NULL, "why: %s", why);
    be->ops->destroy(be);
}

static void test_slices(void) {
    static const llmrt_dtype types[] = {LLMRT_DTYPE_Q4_K, LLMRT_DTYPE_Q6_K, LLMRT_DTYPE_Q5_0};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        llmrt_dtype t  = types[ti];
        int64_t     be = llmrt_dtype_block_elems(t), bb = llmrt_dtype_block_bytes(t);
        int64_t     N = 6, K = 4 * be, rb = 4 * bb;
        uint8_t    *w = malloc((size_t)(N * rb));
        float      *full = malloc((size_t)(N * K) * 4), *part = malloc((size_t)(N * K) * 4);
        for (int64_t i = 0; i < N * 4; i++) random_block(t, w + i * bb);
        llmrt_ggml_dequant_row(t, w, full, N * K); /* rows are consecutive blocks */
        llmrt_host_tensor       h = {.dtype = t, .rows = N, .cols = K, .data = w}, o;
        struct llmrt_rank_model m;
        memset(&m, 0, sizeof m);
        llmrt_error err = {0};
        /* rows [2, 5): a view */
        CHECK(llmrt_slice_host_rows(&h, 2, 3, &o, &err) == LLMRT_OK);
        CHECK(o.data == w + 2 * rb && o.dtype == t && o.rows == 3);
        /* columns [be, 3 be): whole blocks */
        CHECK_MSG(llmrt_slice_host_cols(&m, &h, be, 2 * be, &o, &err) == LLMRT_OK, "%s", err.msg);
        CHECK(o.dtype == t && o.cols == 2 * be);
        for (int64_t r = 0; r < N; r++) {
            llmrt_ggml_dequant_row(t, (const uint8_t *)o.data + r * 2 * bb, part, 2 * be);
            CHECK_MSG(memcmp(part, full + r * K + be, (size_t)(2 * be) * 4) == 0,
                      "%s column slice row %lld", llmrt_dtype_name(t), (long long)r);
        }
        /* a slice inside a block */
        CHECK_ERROR(llmrt_slice_host_cols(&m, &h, be / 2, be, &o, &err), err,
                    LLMRT_ERR_UNSUPPORTED, llmrt_dtype_name(t));
        CHECK_MSG(strstr(err.msg, be == 256 ? "whole 256-column blocks" : "whole 32-column blocks"),
                  "%s", err.msg);
        for (int64_t i = 0; i < m.n_host_buffers; i++) free(m.host_buffers[i]);
        free(m.host_buffers);
        free(w);
        free(full);
        free(part);
    }
}

int main(void) {
    test_rng_state = 0x2545f4914f6cdd1dull; /* the cases this test has always drawn */
    test_refusals();
    test_slices();
    const char *isas[] = {NULL /* best */, "avx2", "generic"};
    const char *names[3];
    for (int i = 0; i < 3; i++) names[i] = llmrt_cpu_kernels_select(isas[i]).isa;
    for (int i = 0; i < 3; i++) {
        bool dup = false; /* forcing an ISA the CPU lacks falls back: test each variant once */
        for (int j = 0; j < i; j++) dup = dup || strcmp(names[i], names[j]) == 0;
        if (dup) continue;
        worst_rel = 0;
        for (size_t ti = 0; ti < sizeof TYPES / sizeof TYPES[0]; ti++) {
            int k_blocks[3] = {1, 2, 3};
            if (llmrt_dtype_block_elems(TYPES[ti]) == 32)
                k_blocks[1] = 3, k_blocks[2] = 9;
            for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
                for (int ki = 0; ki < 3; ki++) test_case(isas[i], TYPES[ti], Ns[ni], k_blocks[ki]);
        }
        printf("%s: Q5_0 Q5_1 Q2_K Q3_K Q4_K Q5_K Q6_K matmuls checked, worst mean relative "
               "error %.3g\n", names[i], worst_rel);
    }
    return test_summary("test_kq_kernels");
}
