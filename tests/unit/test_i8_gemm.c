/* The CPU backend's int8 matmul (LLMRT_CPU_MATMUL_INT8, backend/cpu/i8_gemm.h) through the
 * backend interface, on every kernel set this machine runs (avx512: its VNNI kernels, or the
 * AVX2 ones without VNNI; avx2; generic):
 *
 * 1. accuracy against an fp64 matmul over the exact weights, for irregular M (1 .. 70: partial
 *    4-token tiles), N (partial 16-row panels and 32-row chunks), K multiples of 32, 4-bit
 *    weights with group sizes 32 / 64 / K, INT and FLOAT zeros, act-order on and off, Q8_0 and
 *    Q8_Z; and the extremes of the byte panels (u = 0 and 255 against q = +-127: where AVX2's
 *    vpmaddubsw would saturate, 2 * 255 * 127 > 32767, were u fed to it as it is).
 *    Bound: the activations are rounded to int8 per 32-column block (|x - d*q| <= d/2 with
 *    d = max|x_block| / 127), so an output may be off by sum_k |w_k| * d_block(k) / 2, plus fp32
 *    rounding (1e-5 * sum|w x|). The mean relative error (<= 2%, over cases of >= 32 outputs) is
 *    printed.
 * 2. bitwise: the SIMD kernels equal the portable ones; a token's output does not depend on
 *    the batch (M tokens vs the token alone) nor on the thread count.
 * 3. a row view of an uploaded Q8_0 table (the tied lm_head slice of a tensor-parallel rank)
 *    gives those rows of the whole table's result;
 * 4. every kernel set the backend selects has int8 kernels (INT8 mode never stays on the fp32
 *    path unsaid; item 2 shows each runs its int8 kernels); an isa no kernel set has gets none;
 * 5. the Q8_0 panels are no larger than the file's blocks (34 bytes per 32 weights) but for
 *    the rows of a partial panel and 64-byte alignment: a decode step streams them from memory,
 *    so their size is its time; bad shapes are refused naming them. */
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/i8_gemm.h"
#include "core/half.h"
#include "cpu_matmul_run.h"
#include "test_util.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}
static float frand(void) { /* [-1, 1) */
    return (float)((double)urand() / 1073741824.0 - 1.0);
}

#define MAX_T 70
static const int Ms[] = {1, 3, 5, 16, 17, 70};

static llmrt_backend *make_backend(int threads, const char *isa, llmrt_cpu_matmul mode) {
    llmrt_cpu_options opt = {.matmul_mode = mode};
    return cpu_test_backend(threads, isa, &opt);
}

static double worst_rel;

/* wd [N, K] fp64 weights in stored column order; perm: stored column j reads x[perm[j]] */
static void check_accuracy(const char *what, const float *out, const float *x, const double *wd,
                           const int32_t *perm, int64_t T, int64_t N, int64_t K) {
    double sum_err = 0, sum_ref = 0;
    int    bad = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double ref = 0, mag = 0, qerr = 0;
            for (int64_t b = 0; b < K / 32; b++) {
                double amax = 0;
                for (int j = 0; j < 32; j++) {
                    double v = fabs(x[t * K + (perm ? perm[b * 32 + j] : b * 32 + j)]);
                    if (v > amax) amax = v;
                }
                for (int64_t j = b * 32; j < b * 32 + 32; j++) {
                    double p = (double)x[t * K + (perm ? perm[j] : j)] * wd[n * K + j];
                    ref += p;
                    mag += fabs(p);
                    qerr += fabs(wd[n * K + j]) * amax / 127.0 / 2.0;
                }
            }
            double e = fabs((double)out[t * N + n] - ref);
            sum_err += e;
            sum_ref += fabs(ref);
            if (!(e <= 1.001 * qerr + 1e-5 * mag + 1e-30)) bad++;
        }
    double rel = sum_err / (sum_ref > 0 ? sum_ref : 1);
    CHECK_MSG(bad == 0, "%s: %d outputs off by more than the int8 rounding bound", what, bad);
    if (T * N < 32) return; /* a mean of a few outputs is no statistic: a |ref| near 0 sways it */
    CHECK_MSG(rel <= 2e-2, "%s: mean relative error %.3g", what, rel);
    if (rel > worst_rel) worst_rel = rel;
}

/* Runs one weight (uploaded by `up` on each backend) through the checks of the header. */
typedef void (*upload_fn)(llmrt_backend *be, llmrt_bweight *w, void *src);

/* extreme: every activation +-1 (q = +-127): token t all +1 (t % 3 == 0), all -1 (t % 3 == 1) or
 * random signs; else random values with every 7th 4x larger */
static void run_case(const char *what, const char *isa, upload_fn up, void *src, const double *wd,
                     const int32_t *perm, int64_t N, int64_t K, llmrt_backend *ref_be,
                     bool extreme) {
    llmrt_backend *be1 = make_backend(1, isa, LLMRT_CPU_MATMUL_INT8);
    llmrt_backend *be3 = make_backend(3, isa, LLMRT_CPU_MATMUL_INT8);
    llmrt_bweight  w1, w3, wr;
    up(be1, &w1, src);
    up(be3, &w3, src);
    up(ref_be, &wr, src);
    float *x = malloc((size_t)(MAX_T * K) * 4), *out = malloc((size_t)(MAX_T * N) * 4);
    float *out3 = malloc((size_t)(MAX_T * N) * 4), *outr = malloc((size_t)(MAX_T * N) * 4);
    float *alone = malloc((size_t)N * 4);
    for (int64_t i = 0; i < MAX_T * K; i++) {
        int64_t t = i / K;
        x[i]      = !extreme         ? frand() * (i % 7 == 0 ? 4.0f : 1.0f)
                    : t % 3 == 0     ? 1.0f
                    : t % 3 == 1     ? -1.0f
                    : frand() < 0.0f ? -1.0f
                                     : 1.0f;
    }
    for (size_t mi = 0; mi < sizeof Ms / sizeof Ms[0]; mi++) {
        int32_t M = Ms[mi];
        char    wm[160];
        snprintf(wm, sizeof wm, "%s %s N=%lld K=%lld M=%d", isa, what, (long long)N, (long long)K,
                 M);
        run_matmul(be1, &w1, x, M, out);
        check_accuracy(wm, out, x, wd, perm, M, N, K);
        run_matmul(be3, &w3, x, M, out3);
        CHECK_MSG(memcmp(out, out3, (size_t)(M * N) * 4) == 0, "%s: 3 threads differ", wm);
        run_matmul(ref_be, &wr, x, M, outr);
        CHECK_MSG(memcmp(out, outr, (size_t)(M * N) * 4) == 0, "%s: differs from generic", wm);
        int diff = 0;
        for (int32_t t = 0; t < M; t++) {
            run_matmul(be1, &w1, x + (int64_t)t * K, 1, alone);
            diff += memcmp(alone, out + (int64_t)t * N, (size_t)N * 4) != 0;
        }
        CHECK_MSG(diff == 0, "%s: %d tokens differ from the same token alone", wm, diff);
    }
    be1->ops->weight_free(be1, &w1);
    be3->ops->weight_free(be3, &w3);
    ref_be->ops->weight_free(ref_be, &wr);
    be1->ops->destroy(be1);
    be3->ops->destroy(be3);
    free(x), free(out), free(out3), free(outr), free(alone);
}

/* 4-bit ---------------------------------------------------------------------------------------- */

static void up_q4(llmrt_backend *be, llmrt_bweight *w, void *src) {
    llmrt_error err = {0};
    CHECK(be->ops->weight_upload_q4(be, src, w, &err) == LLMRT_OK);
}

static void q4_case(const char *isa, llmrt_backend *ref_be, int64_t N, int64_t K, int32_t gs,
                    int zint, int act) {
    int64_t   G = K / gs;
    uint8_t  *qs = malloc((size_t)(N * K / 2)), *zeros = malloc((size_t)(N * G));
    uint16_t *scales = malloc((size_t)(N * G) * 2), *offsets = malloc((size_t)(N * G) * 2);
    int32_t  *perm = NULL;
    double   *wd = malloc((size_t)(N * K) * sizeof(double));
    for (int64_t i = 0; i < N * K / 2; i++) qs[i] = (uint8_t)urand();
    for (int64_t i = 0; i < N * G; i++) {
        scales[i]  = llmrt_f32_to_f16(frand() * 0.05f);
        zeros[i]   = (uint8_t)(urand() % 17);
        offsets[i] = llmrt_f32_to_f16(frand() * 0.2f);
    }
    if (act) {
        perm = malloc((size_t)K * sizeof(int32_t));
        for (int64_t k = 0; k < K; k++) perm[k] = (int32_t)k;
        for (int64_t k = K - 1; k > 0; k--) {
            int64_t j = urand() % (uint64_t)(k + 1);
            int32_t tt = perm[k];
            perm[k]    = perm[j];
            perm[j]    = tt;
        }
    }
    llmrt_q4_host h = {.rows = N, .cols = K, .group_size = gs,
                       .zero_kind = zint ? LLMRT_Q4_ZERO_INT : LLMRT_Q4_ZERO_FLOAT, .qs = qs,
                       .scales = scales, .zeros = zint ? zeros : NULL,
                       .offsets = zint ? NULL : offsets, .perm = perm};
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            int64_t g = k / gs;
            double  v = (qs[n * K / 2 + k / 2] >> (4 * (k & 1))) & 15;
            double  s = llmrt_f16_to_f32(scales[n * G + g]);
            wd[n * K + k] = zint ? s * (v - zeros[n * G + g])
                                 : s * v + llmrt_f16_to_f32(offsets[n * G + g]);
        }
    char what[64];
    snprintf(what, sizeof what, "q4 gs=%d %s%s", gs, zint ? "int" : "float", act ? " act" : "");
    run_case(what, isa, up_q4, &h, wd, perm, N, K, ref_be, false);
    free(qs), free(zeros), free(scales), free(offsets), free(perm), free(wd);
}

/* Q8_0 ----------------------------------------------------------------------------------------- */

typedef struct q8src {
    const uint8_t *d;
    int64_t        N, K;
} q8src;

static void up_q8(llmrt_backend *be, llmrt_bweight *w, void *src) {
    const q8src *s   = src;
    llmrt_error  err = {0};
    CHECK(be->ops->weight_upload(be, LLMRT_DTYPE_Q8_0, s->N, s->K, s->d, w, &err) == LLMRT_OK);
}

/* extreme: rows of weights 127 only (u = 255), -128 only (u = 0), or a random mix of the two */
static int8_t q8_weight(bool extreme, int64_t n) {
    if (!extreme) return (int8_t)(urand() & 0xff); /* -128 included */
    int kind = (int)(n % 3);
    return kind == 0 || (kind == 2 && urand() % 2) ? 127 : -128;
}

static void q8_case(const char *isa, llmrt_backend *ref_be, int64_t N, int64_t K, bool extreme) {
    int64_t  rb = K / 32 * 34;
    uint8_t *d  = malloc((size_t)(N * rb));
    double  *wd = malloc((size_t)(N * K) * sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < K / 32; b++) {
            uint8_t *blk = d + n * rb + b * 34;
            uint16_t h   = llmrt_f32_to_f16(frand() * 0.02f);
            memcpy(blk, &h, 2);
            for (int j = 0; j < 32; j++) {
                int8_t v = q8_weight(extreme, n);
                memcpy(blk + 2 + j, &v, 1);
                wd[n * K + b * 32 + j] = (double)llmrt_f16_to_f32(h) * v;
            }
        }
    q8src s = {d, N, K};
    run_case(extreme ? "q8_0 extremes" : "q8_0", isa, up_q8, &s, wd, NULL, N, K, ref_be, extreme);
    free(d), free(wd);
}

/* Q8_Z ----------------------------------------------------------------------------------------- */

static void up_q8z(llmrt_backend *be, llmrt_bweight *w, void *src) {
    const q8src *s   = src;
    llmrt_error  err = {0};
    CHECK(be->ops->weight_upload(be, LLMRT_DTYPE_Q8_Z, s->N, s->K, s->d, w, &err) == LLMRT_OK);
}

/* blocks of fp16 d | u8 z | u8 0 | u8 q[32], w = d * (q - z); extreme: q only 0 and 255 */
static void q8z_case(const char *isa, llmrt_backend *ref_be, int64_t N, int64_t K, bool extreme) {
    int64_t  rb = K / 32 * 36;
    uint8_t *d  = malloc((size_t)(N * rb));
    double  *wd = malloc((size_t)(N * K) * sizeof(double));
    for (int64_t n = 0; n < N; n++)
        for (int64_t b = 0; b < K / 32; b++) {
            uint8_t *blk = d + n * rb + b * 36;
            uint16_t h   = llmrt_f32_to_f16(frand() * 0.02f);
            memcpy(blk, &h, 2);
            blk[2] = (uint8_t)urand(), blk[3] = 0;
            for (int j = 0; j < 32; j++) {
                blk[4 + j] = extreme ? (uint8_t)(q8_weight(true, n) + 128) : (uint8_t)urand();
                wd[n * K + b * 32 + j] = (double)llmrt_f16_to_f32(h) * (blk[4 + j] - blk[2]);
            }
        }
    q8src s = {d, N, K};
    run_case(extreme ? "q8_z extremes" : "q8_z", isa, up_q8z, &s, wd, NULL, N, K, ref_be, extreme);
    free(d), free(wd);
}

static void test_variant(const char *isa) {
    llmrt_backend *ref_be = make_backend(1, "generic", LLMRT_CPU_MATMUL_INT8);
    static const int64_t Ns[] = {1, 15, 17, 45, 100};
    for (size_t i = 0; i < sizeof Ns / sizeof Ns[0]; i++) {
        q4_case(isa, ref_be, Ns[i], 96, 32, i % 2, 0);
        q8_case(isa, ref_be, Ns[i], i % 2 ? 64 : 320, false);
        q8z_case(isa, ref_be, Ns[i], i % 2 ? 96 : 288, false);
    }
    q8_case(isa, ref_be, 45, 96, true);
    q8z_case(isa, ref_be, 45, 96, true);
    q4_case(isa, ref_be, 33, 256, 64, 1, 1);
    q4_case(isa, ref_be, 40, 128, 128, 0, 1);
    q4_case(isa, ref_be, 70, 576, 32, 0, 0);
    ref_be->ops->destroy(ref_be);
}

/* A row view of an uploaded Q8_0 table (the loader's tied lm_head slice: same rows, data at an
 * offset, not uploaded itself) uses the table's panels: equal to those rows of the whole. */
static void test_row_view(const char *isa) {
    llmrt_backend *be = make_backend(2, isa, LLMRT_CPU_MATMUL_INT8);
    int64_t        N = 70, K = 96, rb = K / 32 * 34, r0s[] = {0, 16, 32, 48}, T = 6;
    uint8_t       *d = malloc((size_t)(N * rb));
    for (int64_t i = 0; i < N * rb; i++) d[i] = (uint8_t)(urand() & 0x3f);
    q8src         s = {d, N, K};
    llmrt_bweight w;
    up_q8(be, &w, &s);
    float *x = malloc((size_t)(T * K) * 4), *full = malloc((size_t)(T * N) * 4);
    float *part = malloc((size_t)(T * N) * 4);
    for (int64_t i = 0; i < T * K; i++) x[i] = frand();
    run_matmul(be, &w, x, (int32_t)T, full);
    for (size_t i = 0; i < sizeof r0s / sizeof r0s[0]; i++) {
        int64_t       r0 = r0s[i], n = N - r0 - (i % 2 ? 5 : 0);
        llmrt_bweight v  = w;
        v.data           = d + r0 * rb;
        v.rows           = n;
        run_matmul(be, &v, x, (int32_t)T, part);
        int bad = 0;
        for (int64_t t = 0; t < T; t++)
            bad += memcmp(part + t * n, full + t * N + r0, (size_t)n * 4) != 0;
        CHECK_MSG(bad == 0, "%s: Q8_0 row view at %lld: %d tokens differ from the whole", isa,
                  (long long)r0, bad);
    }
    be->ops->weight_free(be, &w);
    be->ops->destroy(be);
    free(d), free(x), free(full), free(part);
}

/* Every kernel set the backend selects has int8 kernels: its own, or for an avx512 set without
 * VNNI the AVX2 ones. An isa no kernel set has gets none (the backend would keep fp32). */
static void test_kernel_sets(void) {
    const char *force[] = {NULL /* best */, "avx2", "generic"};
    for (size_t i = 0; i < sizeof force / sizeof force[0]; i++) {
        const char          *set = llmrt_cpu_kernels_select(force[i]).isa;
        llmrt_cpu_i8_kernels k   = llmrt_cpu_i8_kernels_for(set);
        const char *want = strcmp(set, "avx512") == 0 && !__builtin_cpu_supports("avx512vnni")
                               ? "avx2"
                               : set;
        CHECK_MSG(k.isa && strcmp(k.isa, want) == 0, "kernel set %s: int8 kernels %s, not %s", set,
                  k.isa ? k.isa : "none", want);
        CHECK(k.quantize && k.gemm);
    }
    CHECK(llmrt_cpu_i8_kernels_for("sse4").isa == NULL);
    CHECK(llmrt_cpu_i8_kernels_for(NULL).isa == NULL);
}

static void test_q8_panel_bytes(void) {
    static const int64_t shapes[][2] = {{48, 576}, {49152, 576}, {16, 1536}, {32, 96}, {17, 64}};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int64_t  N = shapes[i][0], K = shapes[i][1], n_panels = (N + 15) / 16;
        uint8_t *d = calloc((size_t)(N * (K / 32) * 34), 1);
        llmrt_cpu_i8w w;
        llmrt_error   err = {0};
        CHECK(llmrt_cpu_i8w_from_q8_0(d, N, K, &w, &err) == LLMRT_OK);
        int64_t file = n_panels * 16 * (K / 32) * 34, panels = n_panels * w.panel_bytes;
        CHECK_MSG(panels <= file + n_panels * 63, "Q8_0 panels [%lld, %lld]: %lld bytes, file %lld",
                  (long long)N, (long long)K, (long long)panels, (long long)file);
        llmrt_cpu_i8w_free(&w);
        free(d);
    }
    llmrt_cpu_i8w w;
    llmrt_error   err = {0};
    uint8_t       d[34] = {0};
    CHECK(llmrt_cpu_i8w_from_q8_0(d, 1, 48, &w, &err) == LLMRT_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "[1, 48]") != NULL, "error names the shape: %s", err.msg);
}

/* 4-bit panels keep fp16 scale / offset pairs (the file's 0.625 bytes per weight) when the
 * kernels take them and every value is an fp16 one (GGUF Q4_1's d and m; Q4_0's d and -8d), fp32
 * pairs otherwise (a GPTQ offset -s*z may need 15 bits; the AVX-512 kernel reads fp32 only). */
static void test_q4_panel_meta(void) {
    enum { N = 20, K = 64, G = 2 };
    uint8_t  qs[N * K / 2], zeros[N * G];
    uint16_t scales[N * G], offsets[N * G];
    for (int i = 0; i < N * K / 2; i++) qs[i] = (uint8_t)urand();
    struct {
        llmrt_q4_zero_kind kind;
        uint8_t            zero;
        bool               f16_ok, want_f16;
    } cases[] = {
        {LLMRT_Q4_ZERO_FLOAT, 0, true, true},  /* Q4_1: w = d q + m */
        {LLMRT_Q4_ZERO_FLOAT, 0, false, false}, /* the AVX-512 kernel */
        {LLMRT_Q4_ZERO_INT, 8, true, true},    /* Q4_0: -8 d is exact */
        {LLMRT_Q4_ZERO_INT, 3, true, false},   /* -3 (1 + 2^-10): 12 significant bits */
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        for (int i = 0; i < N * G; i++) {
            scales[i]  = llmrt_f32_to_f16(1.0f + 1.0f / 1024); /* 11 significant bits */
            offsets[i] = llmrt_f32_to_f16(0.25f * frand());
            zeros[i]   = cases[ci].zero;
        }
        llmrt_q4_host h = {.rows = N, .cols = K, .group_size = K / G, .zero_kind = cases[ci].kind,
                           .qs = qs, .scales = scales,
                           .zeros = cases[ci].kind == LLMRT_Q4_ZERO_INT ? zeros : NULL,
                           .offsets = cases[ci].kind == LLMRT_Q4_ZERO_FLOAT ? offsets : NULL};
        llmrt_cpu_q4  q;
        llmrt_cpu_i8w w;
        llmrt_error   err = {0};
        CHECK(llmrt_cpu_q4_pack(&h, &q, &err) == LLMRT_OK);
        CHECK(llmrt_cpu_i8w_from_q4(&q, cases[ci].f16_ok, &w, &err) == LLMRT_OK);
        CHECK_MSG(w.f16_pairs == cases[ci].want_f16 && w.f32_meta == !cases[ci].want_f16,
                  "case %zu: f16_pairs %d f32_meta %d", ci, w.f16_pairs, w.f32_meta);
        int64_t want = (K / 32 * (256 + (cases[ci].want_f16 ? 64 : 128)) + 63) / 64 * 64;
        CHECK_MSG(w.panel_bytes == want, "case %zu: %lld bytes per panel, want %lld", ci,
                  (long long)w.panel_bytes, (long long)want);
        llmrt_cpu_i8w_free(&w);
        llmrt_cpu_q4_free(&q);
    }
}

int main(void) {
    test_q8_panel_bytes();
    test_q4_panel_meta();
    test_kernel_sets();
    const char *sets[] = {"generic", "avx2", "avx512"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        /* forcing a set the CPU lacks falls back to another: each set once, where it runs */
        if (strcmp(llmrt_cpu_kernels_select(sets[i]).isa, sets[i]) != 0) {
            printf("%s kernel set: not on this CPU, skipped\n", sets[i]);
            continue;
        }
        test_variant(sets[i]);
        test_row_view(sets[i]);
        printf("%s kernel set: %s int8 kernels checked\n", sets[i],
               llmrt_cpu_i8_kernels_for(sets[i]).isa);
    }
    printf("int8 matmul: worst mean relative error vs fp64 %.3g\n", worst_rel);
    return test_summary("test_i8_gemm");
}
