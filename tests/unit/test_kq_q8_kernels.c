/* The K-quant x int8 kernels of LLMRT_CPU_MATMUL_INT8 (backend/cpu/kq_q8_kernels.h), every
 * variant this CPU runs (avx512 with VNNI, avx2, generic), on random Q4_K / Q5_K / Q6_K blocks
 * and irregular shapes (K = 256 .. 2304, N = 1 .. 13 rows, M = 1 .. 6 tokens):
 *
 * 1. quantisation: each activation block satisfies |x - d q| <= |d| / 2 (+ fp32 rounding),
 *    |q| <= 127, the element of largest |x| maps to -127 (llama.cpp's iscale = -127 / max), and
 *    bsums are the sums of q per 16; a zero block gives d = 0, q = 0;
 * 2. accuracy: out vs an fp64 sum of (exactly dequantised weight) x (d q), the weight taken from
 *    the block fields independently of the kernels (w = d*sc*q - dmin*m, Q6_K d*sc*(q - 32)):
 *    the only error allowed is fp32 rounding, |err| <= (blocks + 3) * 2^-23 * sum |terms|;
 *    also within fp32 rounding of the reference dequantisation llmrt_ggml_dequant_row;
 * 3. bitwise: every variant equals the portable one; a token's output is the same in a batch of
 *    M as alone;
 * 4. through the backend (INT8 mode, 1 and 2 threads, rows over several tasks): the same bits as
 *    the kernel; EXACT mode untouched (its result is not the int8 one);
 * 5. Q5_0 / Q5_1 in INT8 mode (q5_gemm, int8 activations per 32 columns; test_q5 below). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/i8_gemm.h"
#include "backend/cpu/kq_q8_kernels.h"
#include "core/half.h"
#include "format/ggml_quants.h"
#include "cpu_matmul_run.h"
#include "test_rng.h"
#include "test_util.h"

static double f16_at(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return llmrt_f16_to_f32(h);
}

/* random block bytes, with finite fp16 scales of either sign for d (dmin >= 0, as quantisers
 * write) */
static void random_block(llmrt_dtype t, uint8_t *b) {
    int bb = llmrt_dtype_block_bytes(t);
    for (int i = 0; i < bb; i++)
        b[i] = (uint8_t)urand();
    if (t == LLMRT_DTYPE_Q6_K) {
        put_f16(b + 208, 0.01f * frand());
    } else {
        put_f16(b, 0.01f * frand());
        put_f16(b + 2, 0.01f * fabsf(frand()));
    }
}

/* element v of a block as (scaled integer part, min part), exactly in fp64 (ggml_quants.h) */
static void exact_weight(llmrt_dtype t, const uint8_t *b, int v, double *a, double *m) {
    if (t == LLMRT_DTYPE_Q6_K) {
        int h = v / 128, c = (v % 128) / 32, l = v % 32;
        int lo = b[64 * h + l + 32 * (c & 1)];
        lo = c < 2 ? lo & 15 : lo >> 4;
        int q = (lo | ((b[128 + 32 * h + l] >> (2 * c)) & 3) << 4) - 32;
        *a = f16_at(b + 208) * (int8_t)b[192 + v / 16] * q;
        *m = 0.0;
        return;
    }
    int five = t == LLMRT_DTYPE_Q5_K, s = v / 32, l = v % 32;
    uint8_t sc, mn;
    llmrt_ggml_k4_scale_min(s, b + 4, &sc, &mn);
    int byte = b[(five ? 48 : 16) + 32 * (s / 2) + l];
    int q = s % 2 ? byte >> 4 : byte & 15;
    if (five) q |= ((b[16 + l] >> s) & 1) << 4;
    *a = f16_at(b) * sc * q;
    *m = f16_at(b + 2) * mn;
}

static llmrt_cpu_kq8_kernels variants[3];
static int n_variants;

#define MAX_M 6
static const int Ks[] = {256, 768, 1280, 2304};
static const int Ns[] = {1, 3, 4, 5, 13};
static const int Ms[] = {1, 2, 5, MAX_M};

static void alloc_xq(llmrt_cpu_xq8k *xq, int64_t M, int64_t K) {
    xq->q = malloc((size_t)(M * K));
    xq->d = malloc((size_t)(M * K / 256) * sizeof(float));
    xq->bsums = malloc((size_t)(M * K / 16) * sizeof(int16_t));
    xq->K = K;
}
static void free_xq(llmrt_cpu_xq8k *xq) {
    free(xq->q);
    free(xq->d);
    free(xq->bsums);
}

static void check_quantize(const float *x, const llmrt_cpu_xq8k *xq, int64_t M) {
    int64_t K = xq->K;
    for (int64_t t = 0; t < M; t++)
        for (int64_t b = 0; b < K / 256; b++) {
            const float *xb = x + t * K + 256 * b;
            const int8_t *q = xq->q + t * K + 256 * b;
            float d = xq->d[t * (K / 256) + b];
            int arg = 0;
            for (int j = 1; j < 256; j++)
                if (fabsf(xb[j]) > fabsf(xb[arg])) arg = j;
            if (xb[arg] == 0.0f) {
                CHECK(d == 0.0f);
                continue;
            }
            CHECK_MSG(q[arg] == -127, "largest |x| quantised to %d", q[arg]);
            for (int j = 0; j < 256; j++) {
                CHECK(q[j] >= -127 && q[j] <= 127);
                double e = fabs((double)xb[j] - (double)d * q[j]);
                CHECK_MSG(e <= fabs(d) * (0.5 + 1e-5), "|x - d q| %.3g > |d|/2 %.3g", e, fabs(d));
            }
            for (int j = 0; j < 16; j++) {
                int s = 0;
                for (int i = 0; i < 16; i++)
                    s += q[16 * j + i];
                CHECK(xq->bsums[t * (K / 16) + 16 * b + j] == s);
            }
        }
}

static double worst_rel;

static void test_shape(llmrt_dtype t, int K, int N, int M) {
    int64_t nb = K / 256, bb = llmrt_dtype_block_bytes(t), row_bytes = nb * bb;
    uint8_t *w = malloc((size_t)(N * row_bytes));
    float *x = malloc((size_t)(M * K) * sizeof(float));
    for (int r = 0; r < N; r++)
        for (int64_t b = 0; b < nb; b++)
            random_block(t, w + r * row_bytes + b * bb);
    for (int i = 0; i < M * K; i++)
        x[i] = frand() * (i % 97 == 0 ? 8.0f : 1.0f);
    if (M > 1) memset(x + K, 0, 256 * sizeof(float)); /* a zero block */
    float *out[3], *alone = malloc((size_t)N * sizeof(float));
    float *deq = malloc((size_t)K * sizeof(float));
    for (int v = 0; v < n_variants; v++) {
        llmrt_cpu_xq8k xq;
        alloc_xq(&xq, M, K);
        variants[v].quantize(&xq, x, K, M);
        check_quantize(x, &xq, M);
        out[v] = malloc((size_t)(M * N) * sizeof(float));
        for (int r = 0; r < N; r += 4)
            variants[v].gemm(t, out[v] + r, N, &xq, M, w + r * row_bytes, row_bytes,
                             N - r < 4 ? N - r : 4);
        if (v == 0) { /* accuracy, once: the other variants must equal this one */
            for (int64_t tk = 0; tk < M; tk++)
                for (int r = 0; r < N; r++) {
                    const uint8_t *row = w + r * row_bytes;
                    double ref = 0.0, abs_sum = 0.0, ref32 = 0.0;
                    llmrt_ggml_dequant_row(t, row, deq, K);
                    for (int k = 0; k < K; k++) {
                        double a, m, xk = (double)xq.d[tk * nb + k / 256] * xq.q[tk * K + k];
                        exact_weight(t, row + (k / 256) * bb, k % 256, &a, &m);
                        ref += (a - m) * xk;
                        abs_sum += (fabs(a) + fabs(m)) * fabs(xk);
                        ref32 += (double)deq[k] * xk;
                    }
                    double got = out[v][tk * N + r], err = fabs(got - ref);
                    double tol = (double)(nb + 3) * ldexp(1.0, -23) * abs_sum + 1e-30;
                    CHECK_MSG(err <= tol,
                              "%s K=%d N=%d M=%d t=%lld r=%d: %.9g vs fp64 %.9g "
                              "(err %.3g > %.3g)",
                              llmrt_dtype_name(t), K, N, M, (long long)tk, r, got, ref, err, tol);
                    /* the reference dequantisation rounds each weight once more */
                    CHECK(fabs(got - ref32) <= tol + ldexp(1.0, -23) * abs_sum);
                    if (abs_sum > 0 && err / abs_sum > worst_rel) worst_rel = err / abs_sum;
                }
        } else {
            CHECK_MSG(memcmp(out[v], out[0], (size_t)(M * N) * sizeof(float)) == 0,
                      "%s: %s K=%d N=%d M=%d differs from generic", variants[v].isa,
                      llmrt_dtype_name(t), K, N, M);
        }
        /* batch invariance: the last token alone */
        llmrt_cpu_xq8k one;
        alloc_xq(&one, 1, K);
        variants[v].quantize(&one, x + (int64_t)(M - 1) * K, K, 1);
        for (int r = 0; r < N; r += 4)
            variants[v].gemm(t, alone + r, N, &one, 1, w + r * row_bytes, row_bytes,
                             N - r < 4 ? N - r : 4);
        CHECK_MSG(memcmp(alone, out[v] + (int64_t)(M - 1) * N, (size_t)N * sizeof(float)) == 0,
                  "%s: token alone differs from the batch of %d", variants[v].isa, M);
        free_xq(&one);
        free_xq(&xq);
    }
    for (int v = 0; v < n_variants; v++)
        free(out[v]);
    free(alone);
    free(deq);
    free(w);
    free(x);
}

static void test_backend(llmrt_dtype t) {
    const int K = 768, N = 150, M = 5; /* N: several tasks and a partial 4-row group */
    int64_t bb = llmrt_dtype_block_bytes(t), row_bytes = K / 256 * bb;
    uint8_t *w = malloc((size_t)(N * row_bytes));
    float *x = malloc((size_t)(M * K) * sizeof(float)), *want = malloc(M * N * sizeof(float));
    float *got = malloc(M * N * sizeof(float));
    for (int r = 0; r < N; r++)
        for (int b = 0; b < K / 256; b++)
            random_block(t, w + r * row_bytes + b * bb);
    for (int i = 0; i < M * K; i++)
        x[i] = frand();
    llmrt_cpu_kq8_kernels g = llmrt_cpu_kq8_kernels_generic();
    llmrt_cpu_xq8k xq;
    alloc_xq(&xq, M, K);
    g.quantize(&xq, x, K, M);
    for (int r = 0; r < N; r += 4)
        g.gemm(t, want + r, N, &xq, M, w + r * row_bytes, row_bytes, N - r < 4 ? N - r : 4);
    free_xq(&xq);
    for (int mode = 0; mode < 2; mode++)
        for (int threads = 1; threads <= 2; threads++) {
            llmrt_error err = {0};
            llmrt_cpu_options opt = {.matmul_mode =
                                         mode ? LLMRT_CPU_MATMUL_INT8 : LLMRT_CPU_MATMUL_EXACT};
            llmrt_backend *be = cpu_test_backend(threads, NULL, &opt);
            CHECK(be != NULL);
            if (!be) continue;
            llmrt_bweight bw;
            CHECK(be->ops->weight_upload(be, t, N, K, w, &bw, &err) == LLMRT_OK);
            run_matmul(be, &bw, x, M, got);
            int same = memcmp(got, want, (size_t)(M * N) * sizeof(float)) == 0;
            CHECK_MSG(mode ? same : !same, "%s backend (%s, %d threads): %s", llmrt_dtype_name(t),
                      mode ? "int8" : "exact", threads,
                      mode ? "differs from the kernel" : "EXACT mode gave the int8 result");
            be->ops->weight_free(be, &bw);
            be->ops->destroy(be);
        }
    free(w);
    free(x);
    free(want);
    free(got);
}

/* Q5_0 / Q5_1 in int8 mode: read in place by q5_gemm with the activations of i8_gemm.h (x per
 * 32 columns).
 * Against fp64 over the exact weights: |err| <= sum_k |w_k| d_block(k) / 2 (the activation
 * rounding, d = max|x_block| / 127) + 1e-5 sum |w x|; the avx2 (vpmaddubsw) and avx512 (VNNI)
 * kernels equal the portable one bit for bit, for 1 and 2 threads, and the last token alone equals its row of
 * the batch. */
static void test_q5(llmrt_dtype t, int K) {
    const int N = 37, M = 5; /* N: partial 4-row groups; K: odd and even block counts */
    int64_t bb = llmrt_dtype_block_bytes(t), row_bytes = K / 32 * bb;
    uint8_t *w = malloc((size_t)(N * row_bytes));
    float *x = malloc((size_t)(M * K) * sizeof(float)), *deq = malloc(K * sizeof(float));
    float *got[6], *alone = malloc(N * sizeof(float));
    for (int i = 0; i < N * row_bytes; i++)
        w[i] = (uint8_t)urand();
    for (int r = 0; r < N; r++)
        for (int b = 0; b < K / 32; b++) {
            put_f16(w + r * row_bytes + b * bb, 0.01f * frand());
            if (t == LLMRT_DTYPE_Q5_1) put_f16(w + r * row_bytes + b * bb + 2, 0.1f * frand());
        }
    for (int i = 0; i < M * K; i++)
        x[i] = frand();
    /* each kernel variant directly, on the same quantised activations: equal to the portable
     * one bit for bit (whether or not a backend would pick it on this CPU) */
    llmrt_cpu_xq xq = {.q = malloc((size_t)(M * K)), .d = malloc((size_t)(M * K / 32) * 4),
                       .s = malloc((size_t)(M * K / 32) * 4), .K = K};
    llmrt_cpu_i8_kernels_generic().quantize(&xq, x, K, M);
    float *base = malloc((size_t)(M * N) * sizeof(float)), *other = malloc((size_t)(M * N) * 4);
    for (int v = 0; v < n_variants; v++) {
        if (!variants[v].q5_gemm) continue;
        float *o = v == 0 ? base : other;
        for (int r = 0; r < N; r += 4)
            variants[v].q5_gemm(t, o + r, N, &xq, M, w + r * row_bytes, row_bytes,
                                N - r < 4 ? N - r : 4);
        if (v > 0)
            CHECK_MSG(memcmp(other, base, (size_t)(M * N) * sizeof(float)) == 0,
                      "%s q5_gemm %s differs from generic", llmrt_dtype_name(t), variants[v].isa);
    }
    free(xq.q), free(xq.d), free(xq.s), free(base), free(other);

    const char *isas[3] = {"generic", "avx2", NULL}; /* NULL: the best kernel set */
    int n_runs = 0;
    for (int v = 0; v < 3; v++)
        for (int threads = 1; threads <= 2; threads++) {
            llmrt_error err = {0};
            llmrt_cpu_options opt = {.matmul_mode = LLMRT_CPU_MATMUL_INT8};
            llmrt_backend *be = cpu_test_backend(threads, isas[v], &opt);
            CHECK(be != NULL);
            if (!be) continue;
            llmrt_bweight bw;
            CHECK(be->ops->weight_upload(be, t, N, K, w, &bw, &err) == LLMRT_OK);
            got[n_runs] = malloc((size_t)(M * N) * sizeof(float));
            run_matmul(be, &bw, x, M, got[n_runs]);
            run_matmul(be, &bw, x + (M - 1) * K, 1, alone);
            CHECK_MSG(memcmp(alone, got[n_runs] + (M - 1) * N, N * sizeof(float)) == 0,
                      "%s int8: token alone differs from the batch", llmrt_dtype_name(t));
            if (n_runs > 0)
                CHECK_MSG(memcmp(got[n_runs], got[0], (size_t)(M * N) * sizeof(float)) == 0,
                          "%s int8: %s / %d threads differs from generic / 1 thread",
                          llmrt_dtype_name(t), isas[v] ? isas[v] : "best", threads);
            n_runs++;
            be->ops->weight_free(be, &bw);
            be->ops->destroy(be);
        }
    double worst = 0.0;
    for (int r = 0; r < N; r++) {
        llmrt_ggml_dequant_row(t, w + r * row_bytes, deq, K);
        for (int tk = 0; tk < M && n_runs; tk++) {
            double ref = 0.0, bound = 0.0, abs_sum = 0.0;
            for (int b = 0; b < K / 32; b++) {
                double amax = 0.0, wsum = 0.0;
                for (int j = 0; j < 32; j++) {
                    int k = 32 * b + j;
                    /* exact weight: Q5_0 d (q - 16) is exact in fp32; Q5_1 d q + m in fp64 */
                    double wk = deq[k];
                    if (t == LLMRT_DTYPE_Q5_1) {
                        const uint8_t *blk = w + r * row_bytes + b * bb;
                        uint32_t qh;
                        memcpy(&qh, blk + 4, 4);
                        int q = (j < 16 ? blk[8 + j] & 15 : blk[8 + j - 16] >> 4) |
                                (int)((qh >> j) & 1) << 4;
                        wk = f16_at(blk) * q + f16_at(blk + 2);
                    }
                    double xk = x[tk * K + k];
                    ref += wk * xk;
                    abs_sum += fabs(wk * xk);
                    wsum += fabs(wk);
                    if (fabs(xk) > amax) amax = fabs(xk);
                }
                bound += wsum * amax / 127.0 / 2.0;
            }
            double e = fabs(got[0][tk * N + r] - ref);
            CHECK_MSG(e <= bound + 1e-5 * abs_sum, "%s int8 t=%d r=%d: %.6g vs fp64 %.6g",
                      llmrt_dtype_name(t), tk, r, got[0][tk * N + r], ref);
            if (bound > 0 && e / bound > worst) worst = e / bound;
        }
    }
    printf("%s K=%d int8: worst |err| / activation-rounding bound %.3f (%d runs)\n",
           llmrt_dtype_name(t), K, worst, n_runs);
    for (int i = 0; i < n_runs; i++)
        free(got[i]);
    free(w);
    free(x);
    free(deq);
    free(alone);
}

int main(void) {
    variants[n_variants++] = llmrt_cpu_kq8_kernels_generic();
    llmrt_cpu_kq8_kernels a2 = llmrt_cpu_kq8_kernels_for("avx2");
    if (strcmp(a2.isa, "avx2") == 0) variants[n_variants++] = a2;
    llmrt_cpu_kq8_kernels a5 = llmrt_cpu_kq8_kernels_for("avx512");
    if (strcmp(a5.isa, "avx512") == 0) variants[n_variants++] = a5;
    printf("variants:");
    for (int v = 0; v < n_variants; v++)
        printf(" %s", variants[v].isa);
    printf("\n");
    const llmrt_dtype types[] = {LLMRT_DTYPE_Q4_K, LLMRT_DTYPE_Q5_K, LLMRT_DTYPE_Q6_K};
    for (int ti = 0; ti < 3; ti++) {
        CHECK(llmrt_cpu_kq8_takes(types[ti]));
        for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
                for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
                    test_shape(types[ti], Ks[ki], Ns[ni], Ms[mi]);
        test_backend(types[ti]);
    }
    for (int K = 576; K <= 608; K += 32) { /* 18 and 19 blocks */
        test_q5(LLMRT_DTYPE_Q5_0, K);
        test_q5(LLMRT_DTYPE_Q5_1, K);
    }
    CHECK(!llmrt_cpu_kq8_takes(LLMRT_DTYPE_Q8_0) && !llmrt_cpu_kq8_takes(LLMRT_DTYPE_Q3_K));
    printf("worst |err| / sum|terms| vs fp64: %.3g\n", worst_rel);
    return test_summary("kq_q8_kernels");
}
