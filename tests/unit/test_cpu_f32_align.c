/* The CPU backend's aligned copies of f32 matrices (cpu_backend.c: align_f32_weight): an f32
 * weight uploaded from memory that is not 64-byte aligned (a safetensors file places tensors 8
 * bytes apart) is copied to aligned memory, the copy is what the weight points at, and nothing
 * a caller sees changes:
 * 1. a misaligned upload points at a 64-byte aligned copy with the same bytes; an aligned one
 *    and (in bf16 matmul mode, on CPUs with AVX512-BF16) any one keep the caller's memory;
 * 2. matmuls give the same bits from the copy as from the aligned original, for every kernel
 *    set this CPU runs, at 1 and 2 threads and token counts 1, 5, 13 and 64;
 * 3. a row view of the copy (a tied lm_head's slice: an offset into it) gives its rows' bits;
 * 4. the source keeps its contents after the copy asked the kernel to page it out;
 * 5. weight_free releases the copy (LeakSanitizer checks this in the ASan build). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cpu/cpu_kernels.h"
#include "cpu_matmul_run.h"
#include "test_rng.h"
#include "test_util.h"

#define N     70
#define K     576
#define MAX_T 64

static void check_isa(const char *isa, int threads, const float *aligned, const float *x) {
    llmrt_backend *be = cpu_test_backend(threads, isa, NULL);
    CHECK(be != NULL);
    if (!be) return;
    /* the same values at 40 bytes past a 64-byte boundary, as in a safetensors file */
    unsigned char *buf = aligned_alloc(64, (size_t)N * K * sizeof(float) + 64);
    float         *mis = (float *)(buf + 40);
    memcpy(mis, aligned, (size_t)N * K * sizeof(float));
    llmrt_bweight wa = {0}, wm = {0};
    llmrt_error   err = {0};
    CHECK(be->ops->weight_upload(be, LLMRT_DTYPE_F32, N, K, aligned, &wa, &err) == LLMRT_OK);
    CHECK(be->ops->weight_upload(be, LLMRT_DTYPE_F32, N, K, mis, &wm, &err) == LLMRT_OK);
    CHECK_MSG(wa.data == aligned, "%s: an aligned f32 weight was copied", isa);
    CHECK_MSG(wm.data != mis && (uintptr_t)wm.data % 64 == 0,
              "%s: a misaligned f32 weight is not an aligned copy", isa);
    CHECK(memcmp(wm.data, aligned, (size_t)N * K * sizeof(float)) == 0);
    CHECK_MSG(memcmp(mis, aligned, (size_t)N * K * sizeof(float)) == 0,
              "%s: the source changed after the copy", isa);
    static const int32_t Ts[] = {1, 5, 13, MAX_T};
    float *oa = malloc((size_t)MAX_T * N * sizeof(float));
    float *om = malloc((size_t)MAX_T * N * sizeof(float));
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
        int32_t T = Ts[ti];
        run_matmul(be, &wa, x, T, oa);
        run_matmul(be, &wm, x, T, om);
        CHECK_MSG(memcmp(oa, om, (size_t)T * N * sizeof(float)) == 0,
                  "%s, %d threads, T=%d: the copy's matmul differs from the original's", isa,
                  threads, T);
        /* rows [24, 24 + 37) as a view into the copy */
        llmrt_bweight view = wm;
        view.data = (float *)wm.data + 24 * K;
        view.rows = 37;
        run_matmul(be, &view, x, T, om);
        int bad = 0;
        for (int32_t t = 0; t < T; t++)
            bad += memcmp(om + t * 37, oa + t * N + 24, 37 * sizeof(float)) != 0;
        CHECK_MSG(bad == 0, "%s, T=%d: a row view of the copy differs in %d tokens", isa, T, bad);
    }
    be->ops->weight_free(be, &wa);
    be->ops->weight_free(be, &wm);
    be->ops->destroy(be);
    free(oa), free(om), free(buf);
}

int main(void) {
    float *w = aligned_alloc(64, (size_t)N * K * sizeof(float));
    float *x = aligned_alloc(64, (size_t)MAX_T * K * sizeof(float));
    for (int64_t i = 0; i < N * K; i++) w[i] = frand();
    for (int64_t i = 0; i < MAX_T * K; i++) x[i] = frand();
    const char *isas[] = {"generic", "avx2", "avx512"};
    for (int ii = 0; ii < 3; ii++) {
        if (strcmp(llmrt_cpu_kernels_select(isas[ii]).isa, isas[ii]) != 0) continue;
        for (int threads = 1; threads <= 2; threads++) check_isa(isas[ii], threads, w, x);
    }
    /* bf16 matmul mode (where the CPU has AVX512-BF16; without, f32 math as above) packs its own
     * panels: the f32 rows stay where they were */
    __builtin_cpu_init();
    llmrt_cpu_options opt = {.bf16_activations = true};
    llmrt_backend    *be  = NULL;
    if (__builtin_cpu_supports("avx512bf16")) be = cpu_test_backend(1, NULL, &opt);
    if (be) {
        unsigned char *buf = aligned_alloc(64, (size_t)N * K * sizeof(float) + 64);
        memcpy(buf + 40, w, (size_t)N * K * sizeof(float));
        llmrt_bweight wm  = {0};
        llmrt_error   err = {0};
        CHECK(be->ops->weight_upload(be, LLMRT_DTYPE_F32, N, K, buf + 40, &wm, &err) == LLMRT_OK);
        CHECK_MSG(wm.data == buf + 40, "bf16 mode: the f32 rows were copied");
        be->ops->weight_free(be, &wm);
        be->ops->destroy(be);
        free(buf);
    }
    free(w), free(x);
    return test_summary("test_cpu_f32_align");
}
