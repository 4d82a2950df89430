/* Times the CPU backend's element-wise kernels of the exact mode (backend/cpu/elementwise_cpu.h)
 * on one thread, best of REPS runs each, alternating: rmsnorm of T rows of D floats a row at a
 * time vs 4 rows at a time (AVX2), and SwiGLU over T x F elements with libm's expf (the kernel
 * before exp_exact.h), the portable exact kernel, the AVX2 one and the ISA's (AVX-512 where the
 * CPU has it). A development tool, not a test
 * (nothing is asserted; tests/unit/test_cpu_elementwise.c checks the bits).
 *
 * usage: elementwise_bench [-T rows] [-D hidden] [-F intermediate] [-r reps]
 * Defaults: a 512-token prompt of SmolLM2-135M (D 576, F 1536), 50 repetitions. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/cpu_kernels.h"
#include "backend/cpu/elementwise_cpu.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* the exact SwiGLU as it was: libm's expf one element at a time */
static void swiglu_libm(float *out, const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

static long arg(int argc, char **argv, const char *flag, long def) {
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], flag) == 0) return strtol(argv[i + 1], NULL, 10);
    return def;
}

int main(int argc, char **argv) {
    int64_t T = arg(argc, argv, "-T", 512), D = arg(argc, argv, "-D", 576);
    int64_t F = arg(argc, argv, "-F", 1536);
    int     reps = (int)arg(argc, argv, "-r", 50);
    if (T < 1 || D < 1 || F < 1 || reps < 1 || T > (1 << 20) || D > (1 << 16) || F > (1 << 16)) {
        fprintf(stderr, "elementwise_bench: -T, -D, -F, -r out of range\n");
        return 2;
    }
    const char *isa = llmrt_cpu_kernels_select(NULL).isa;
    float *x = malloc((size_t)(T * D) * 4), *o = malloc((size_t)(T * F) * 4);
    float *w = malloc((size_t)D * 4), *g = malloc((size_t)(T * F) * 4);
    float *u = malloc((size_t)(T * F) * 4);
    llmrt_thread_pool *pool = llmrt_thread_pool_create(1);
    if (!x || !o || !w || !g || !u || !pool) return 1;
    for (int64_t i = 0; i < T * D; i++) x[i] = (float)(i % 97) / 50.0f - 1.0f;
    for (int64_t i = 0; i < D; i++) w[i] = 1.0f + (float)(i % 7) / 10.0f;
    for (int64_t i = 0; i < T * F; i++) /* gates over [-10, 10] */
        g[i] = (float)((i * 7919) % 2001 - 1000) / 100.0f, u[i] = 1.0f;

    llmrt_cpu_rmsnorm4_fn rms4 = llmrt_cpu_rmsnorm4_for(isa);
    /* the last two: the AVX2 kernel where the CPU has AVX2, and the kernel of its ISA */
    bool avx2 = strcmp(isa, "avx2") == 0 || strcmp(isa, "avx512") == 0;
    llmrt_cpu_swiglu_fn sw[4] = {swiglu_libm, llmrt_cpu_swiglu_exact,
                                 avx2 ? llmrt_cpu_swiglu_exact_avx2 : llmrt_cpu_swiglu_exact,
                                 llmrt_cpu_swiglu_exact_for(isa)};
    const char *sw_name[4] = {"SwiGLU libm expf", "SwiGLU exact, portable", "SwiGLU exact, AVX2",
                              "SwiGLU exact, ISA"};
    double best[6] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30};
    for (int r = 0; r < reps; r++) {
        for (int k = 0; k < 2; k++) {
            double t0 = now_s();
            llmrt_cpu_rmsnorm_rows(pool, k ? rms4 : NULL, o, x, w, T, D, 1e-5f);
            double t = now_s() - t0;
            if (t < best[k]) best[k] = t;
        }
        for (int k = 0; k < 4; k++) {
            double t0 = now_s();
            llmrt_cpu_swiglu_rows(pool, sw[k], o, g, u, T, F);
            double t = now_s() - t0;
            if (t < best[2 + k]) best[2 + k] = t;
        }
    }
    printf("elementwise_bench: isa %s, 1 thread, T %lld, D %lld, F %lld, best of %d\n", isa,
           (long long)T, (long long)D, (long long)F, reps);
    printf("%-24s %10.3f ms %8.3f us/row\n", "rmsnorm, a row at a time", best[0] * 1e3,
           best[0] * 1e6 / (double)T);
    if (rms4)
        printf("%-24s %10.3f ms %8.3f us/row\n", "rmsnorm, 4 rows at once", best[1] * 1e3,
               best[1] * 1e6 / (double)T);
    for (int k = 0; k < 4; k++)
        printf("%-24s %10.3f ms %8.3f ns/element\n", sw_name[k], best[2 + k] * 1e3,
               best[2 + k] * 1e9 / (double)(T * F));
    llmrt_thread_pool_destroy(pool);
    free(x), free(o), free(w), free(g), free(u);
    return 0;
}
