/* Times the CPU backend's matmul alone (out [M, N] = x [M, K] · Wᵀ) for each weight format, at
 * the shapes of a model's layers, and prints GFLOP/s: the inner-loop view that `llmrt bench serve`
 * cannot give. A development tool, not a test (timings are not asserted anywhere).
 *
 * usage: cpu_gemm_bench [-M 64] [-N 1536] [-K 576] [-t THREADS] [-r REPS] [--isa avx512|avx2|generic]
 *                       [--int8] [--bf16] [--peak] [--formats f32,f16,bf16,q8_0,q4,q5_0,q5_1,q4_k,...]
 * --int8: int8 activations for q8_0 / q4 (AVX512-VNNI, or AVX2 without it); --bf16: the bf16
 * matmul mode (f32, f16 and bf16 weights; AVX512-BF16). --peak first prints the core's arithmetic
 * peak, measured: 12 independent register-resident chains of zmm vfmadd231ps (32 flop each) and of
 * vdpbf16ps (64), one thread, best of 5 (the roofline the GEMM rates are read against).
 * The GGUF packed formats (q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k; random blocks with small
 * scales) run when listed; K must be a multiple of their block (256 for the K-quants).
 * --copies C uploads the weight C times and cycles through the copies, one per call: with C
 * copies larger than the last-level cache together, every call reads its weight from DRAM, as a
 * decode step reads each layer's (the rate printed then includes the weight's read bandwidth). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <immintrin.h>

#include "backend/backend.h"
#include "core/half.h"
#include "format/ggml_quants.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* instructions per second of 12 independent chains of `op` on zmm registers (1 thread, best of 5;
 * the chains never leave the registers, so this is the issue rate of the FP pipes) */
#define R12(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define PROBE(NAME, INIT_B, OP)                                                                    \
    __attribute__((target("avx512f,avx512bf16"))) static double NAME(void) {                      \
        double best = 0;                                                                           \
        for (int r = 0; r < 5; r++) {                                                              \
            _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wunused\"")          \
            R12(DECL) INIT_B;                                                                      \
            _Pragma("GCC diagnostic pop") __asm__ volatile("" : "+v"(b), "+v"(c));                \
            const long n  = 20000000;                                                              \
            double     t0 = now_s();                                                               \
            for (long k = 0; k < n; k++) { R12(OP) }                                               \
            double t = now_s() - t0;                                                               \
            float  s = 0;                                                                          \
            R12(SUM)                                                                               \
            if (s == 1.2345f) puts(""); /* keeps the chains live */                               \
            if (12.0 * n / t > best) best = 12.0 * n / t;                                          \
        }                                                                                          \
        return best;                                                                               \
    }
#define DECL(i) __m512 a##i = _mm512_set1_ps((float)(i));
#define SUM(i)  s += _mm512_reduce_add_ps(a##i);
#define FMA(i)  a##i = _mm512_fmadd_ps(a##i, b, c);
#define DPBF(i) a##i = _mm512_dpbf16_ps(a##i, b, c);
PROBE(fma_rate, __m512 b = _mm512_set1_ps(1.0000001f); __m512 c = _mm512_set1_ps(1e-9f), FMA)
PROBE(dpbf16_rate, __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80);
      __m512bh c = (__m512bh)_mm512_set1_epi16(0x3000), DPBF)

static uint64_t rng = 0x243f6a8885a308d3ull;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 40) / 8388608.0 - 1.0);
}

/* name is one of the comma-separated entries of list */
static bool in_list(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == 0)) return true;
    return false;
}

int main(int argc, char **argv) {
    int64_t M = 64, N = 1536, K = 576;
    int threads = 1, reps = 20, copies = 1;
    const char *isa = NULL, *formats = "f32,f16,bf16,q8_0,q4";
    llmrt_cpu_matmul mode = LLMRT_CPU_MATMUL_EXACT;
    bool             bf16 = false; /* the bf16 matmul mode */
    bool             peak = false;
    bool             misalign = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-M") && i + 1 < argc) M = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-N") && i + 1 < argc) N = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-K") && i + 1 < argc) K = atoll(argv[++i]);
        else if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--isa") && i + 1 < argc) isa = argv[++i];
        else if (!strcmp(argv[i], "--formats") && i + 1 < argc) formats = argv[++i];
        else if (!strcmp(argv[i], "--int8")) mode = LLMRT_CPU_MATMUL_INT8;
        else if (!strcmp(argv[i], "--bf16")) bf16 = true;
        else if (!strcmp(argv[i], "--peak")) peak = true;
        else if (!strcmp(argv[i], "--misalign")) misalign = true;
        else if (!strcmp(argv[i], "--copies") && i + 1 < argc) copies = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [-M m] [-N n] [-K k] [-t threads] [-r reps] [--isa I] "
                            "[--int8] [--bf16] [--peak] [--misalign] [--copies C] [--formats f32,f16,bf16,q8_0,q4,q5_0,q4_k,...]\n", argv[0]);
            return 2;
        }
    }
    if (copies < 1 || copies > 4096) {
        fprintf(stderr, "--copies: %d is not in [1, 4096]\n", copies);
        return 2;
    }
    __builtin_cpu_init();
    if (peak && __builtin_cpu_supports("avx512f")) {
        double f = fma_rate();
        printf("# peak, 1 thread: zmm vfmadd231ps %.2f G/s = %.1f GFLOP/s", f / 1e9, f * 32 / 1e9);
        if (__builtin_cpu_supports("avx512bf16")) {
            double d = dpbf16_rate();
            printf("; zmm vdpbf16ps %.2f G/s = %.1f GFLOP/s", d / 1e9, d * 64 / 1e9);
        }
        printf("\n");
    } else if (peak) {
        printf("# peak: no AVX-512 on this CPU, no probe\n");
    }
    llmrt_backend *be = NULL;
    llmrt_error err = {0};
    llmrt_cpu_options opt = {.matmul_mode = mode, .bf16_activations = bf16};
    if (llmrt_backend_cpu_create_opts(threads, isa, &opt, &be, &err) != LLMRT_OK) {
        fprintf(stderr, "backend: %s\n", err.msg);
        return 1;
    }
    /* 64-byte aligned, as the backend's activations and the f32 weights it packs; --misalign
     * shifts x and the f32 weights by 16 bytes (every 64-byte load then spans two lines) */
    float *xa  = aligned_alloc(64, (size_t)(M * K + 31) / 16 * 64);
    float *out = malloc((size_t)(M * N) * 4);
    float *wfa = aligned_alloc(64, (size_t)(N * K + 31) / 16 * 64);
    float *x = xa + (misalign ? 4 : 0), *wf = wfa + (misalign ? 4 : 0);
    uint16_t *wh = malloc((size_t)(N * K) * 2), *wb = malloc((size_t)(N * K) * 2);
    uint8_t *w8 = malloc((size_t)(N * (K / 32) * 34 + 64));
    for (int64_t i = 0; i < M * K; i++) x[i] = frand();
    for (int64_t i = 0; i < N * K; i++) {
        wf[i] = frand() * 0.05f;
        wh[i] = llmrt_f32_to_f16(wf[i]);
        wb[i] = llmrt_f32_to_bf16(wf[i]);
    }
    for (int64_t r = 0; r < N; r++)
        for (int64_t b = 0; b < K / 32; b++) {
            uint8_t *blk = w8 + (r * (K / 32) + b) * 34;
            uint16_t d = llmrt_f32_to_f16(0.002f);
            memcpy(blk, &d, 2);
            for (int i = 0; i < 32; i++) blk[2 + i] = (uint8_t)(int8_t)(frand() * 127);
        }
    uint8_t *qs = malloc((size_t)(N * K / 2));
    uint16_t *sc = malloc((size_t)(N * (K / 32)) * 2), *of = malloc((size_t)(N * (K / 32)) * 2);
    for (int64_t i = 0; i < N * K / 2; i++) qs[i] = (uint8_t)(frand() * 128 + 128);
    for (int64_t i = 0; i < N * (K / 32); i++) {
        sc[i] = llmrt_f32_to_f16(0.01f + 0.001f * frand());
        of[i] = llmrt_f32_to_f16(-0.08f * frand());
    }
    llmrt_q4_host qh = {.rows = N, .cols = K, .group_size = 32, .zero_kind = LLMRT_Q4_ZERO_FLOAT,
                        .qs = qs, .scales = sc, .offsets = of};
    float inv = 1.0f;
    be->ops->rope_init(be, &inv, 1, &err);
    printf("# M=%lld N=%lld K=%lld threads=%d reps=%d mode=%s%s copies=%d\n", (long long)M,
           (long long)N, (long long)K, threads, reps,
           mode == LLMRT_CPU_MATMUL_INT8 ? "int8" : "exact", bf16 ? " bf16-matmuls" : "", copies);
    static const struct { const char *name; llmrt_dtype dt; } fm[] = {
        {"f32", LLMRT_DTYPE_F32}, {"f16", LLMRT_DTYPE_F16}, {"bf16", LLMRT_DTYPE_BF16},
        {"q8_0", LLMRT_DTYPE_Q8_0}, {"q4", LLMRT_DTYPE_Q4},     {"q5_0", LLMRT_DTYPE_Q5_0},
        {"q5_1", LLMRT_DTYPE_Q5_1}, {"q2_k", LLMRT_DTYPE_Q2_K}, {"q3_k", LLMRT_DTYPE_Q3_K},
        {"q4_k", LLMRT_DTYPE_Q4_K}, {"q5_k", LLMRT_DTYPE_Q5_K}, {"q6_k", LLMRT_DTYPE_Q6_K}};
    for (size_t f = 0; f < sizeof fm / sizeof fm[0]; f++) {
        if (!in_list(formats, fm[f].name)) continue;
        llmrt_bweight *ws = calloc((size_t)copies, sizeof *ws);
        llmrt_status s = LLMRT_OK;
        uint8_t *packed = NULL;
        int c = 0;
        for (; c < copies && s == LLMRT_OK; c++) {
            llmrt_bweight w = {0};
            if (fm[f].dt == LLMRT_DTYPE_Q4) s = be->ops->weight_upload_q4(be, &qh, &w, &err);
            else if (llmrt_ggml_is_packed(fm[f].dt)) {
                /* random bytes; every fp16 field of a block set to a small scale (made once: the
                 * copies are uploads of the same bytes) */
                int64_t be_ = llmrt_dtype_block_elems(fm[f].dt), bb = llmrt_dtype_block_bytes(fm[f].dt);
                int64_t nb  = K % be_ ? 0 : N * (K / be_);
                if (!packed) {
                    packed = malloc((size_t)(nb * bb + 1));
                    for (int64_t i = 0; i < nb * bb; i++) packed[i] = (uint8_t)(frand() * 128 + 128);
                    int f16_at[2] = {0, 2}; /* Q5_x, Q4_K, Q5_K: d (and m / dmin) first */
                    if (fm[f].dt == LLMRT_DTYPE_Q2_K) f16_at[0] = 80, f16_at[1] = 82;
                    if (fm[f].dt == LLMRT_DTYPE_Q3_K) f16_at[0] = f16_at[1] = 108;
                    if (fm[f].dt == LLMRT_DTYPE_Q6_K) f16_at[0] = f16_at[1] = 208;
                    uint16_t d = llmrt_f32_to_f16(0.001f);
                    for (int64_t b = 0; b < nb; b++)
                        for (int j = 0; j < 2; j++) memcpy(packed + b * bb + f16_at[j], &d, 2);
                }
                s = be->ops->weight_upload(be, fm[f].dt, N, K, packed, &w, &err);
            } else {
                const void *src = fm[f].dt == LLMRT_DTYPE_F32 ? (const void *)wf
                                  : fm[f].dt == LLMRT_DTYPE_F16 ? (const void *)wh
                                  : fm[f].dt == LLMRT_DTYPE_BF16 ? (const void *)wb : (const void *)w8;
                s = be->ops->weight_upload(be, fm[f].dt, N, K, src, &w, &err);
            }
            ws[c] = w;
        }
        if (s != LLMRT_OK) {
            printf("%-5s upload failed: %s\n", fm[f].name, err.msg);
            for (int i = 0; i + 1 < c; i++) be->ops->weight_free(be, &ws[i]);
            free(ws), free(packed);
            continue;
        }
        /* a batch of M tokens of one sequence at positions 0.. (sizes the backend's scratch) */
        int32_t *tok = calloc((size_t)M, 4), *pos = calloc((size_t)M, 4), *seq = calloc((size_t)M, 4);
        int64_t *slots = calloc((size_t)M, 8);
        int32_t  table = 0, outs = 0;
        for (int64_t t = 0; t < M; t++) pos[t] = (int32_t)t, slots[t] = t;
        llmrt_batch_plan plan = {.n_tokens = (int32_t)M, .tokens = tok, .positions = pos,
                                 .seq_of = seq, .slots = slots, .n_seqs = 1, .max_blocks = 1,
                                 .block_tables = &table, .n_outputs = 1, .output_rows = &outs};
        if (be->ops->begin_batch(be, &plan, &err) != LLMRT_OK) {
            printf("begin_batch: %s\n", err.msg);
            return 1;
        }
        free(tok), free(pos), free(seq), free(slots);
        for (int i = 0; i < copies; i++) be->ops->matmul(be, out, x, M, &ws[i]); /* warm-up */
        double best = 1e30, sum = 0;
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            be->ops->matmul(be, out, x, M, &ws[r % copies]);
            double t = now_s() - t0;
            sum += t;
            if (t < best) best = t;
        }
        double flop = 2.0 * (double)M * (double)N * (double)K;
        printf("%-5s best %8.3f ms  %7.1f GFLOP/s   mean %8.3f ms  %7.1f GFLOP/s\n", fm[f].name,
               best * 1e3, flop / best / 1e9, sum / reps * 1e3, flop / (sum / reps) / 1e9);
        for (int i = 0; i < copies; i++) be->ops->weight_free(be, &ws[i]);
        free(ws), free(packed);
    }
    be->ops->destroy(be);
    return 0;
}
