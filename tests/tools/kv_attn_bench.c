/* Times the CPU attention alone (host/backend/cpu/attention_cpu.h) for one decode token per
 * sequence over a long paged context, with the KV cache in fp32, int8, fp8 e4m3 and bf16
 * (format/kv_quant.h), and prints the time per call and the KV bytes it reads. Rounds alternate
 * the dtypes; the minimum over repetitions is the figure least disturbed by other work on a shared
 * machine (the median is printed too). A development tool, not a test (nothing is asserted).
 *
 * usage: kv_attn_bench [-n CONTEXT] [-s SEQS] [-q HQ] [-k HKV] [-d HD] [-t THREADS] [-r REPS]
 *                      [--isa avx512|avx2|generic] [--scatter 0|1] [--prefill 0|1]
 * --prefill 1 times the prompt instead: every position 0..CONTEXT-1 of each sequence is a query
 * (one prefill chunk per sequence; the KV bytes column is then the cache, read once per tile).
 * --scatter 1 gives each sequence's blocks in a random order over the whole cache (as an engine's
 * block tables look after requests have come and gone); 0 (default) numbers them in order.
 * Defaults: SmolLM2's attention shape (Hq 9, Hkv 3, hd 64), context 4096, 1 sequence, 1 thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/cpu/attention_cpu.h"
#include "backend/cpu/cpu_kernels.h"
#include "core/thread_pool.h"
#include "format/kv_quant.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t rng = 0x243f6a8885a308d3ull;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 40) / 8388608.0 - 1.0);
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int32_t n_ctx = 4096, n_seqs = 1, Hq = 9, Hkv = 3, hd = 64, threads = 1, reps = 50;
    const char *isa = NULL;
    int scatter = 0, prefill = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-n"))
            n_ctx = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s"))
            n_seqs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-q"))
            Hq = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-k"))
            Hkv = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-d"))
            hd = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-t"))
            threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r"))
            reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--isa"))
            isa = argv[i + 1];
        else if (!strcmp(argv[i], "--scatter"))
            scatter = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--prefill"))
            prefill = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "kv_attn_bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (n_ctx < 1 || n_seqs < 1 || Hkv < 1 || Hq % Hkv || hd < 4 || hd % 4 || threads < 1 ||
        reps < 1) {
        fprintf(stderr, "kv_attn_bench: bad sizes\n");
        return 2;
    }
    const int32_t bs = 16, max_blocks = (n_ctx + bs - 1) / bs;
    const int64_t n_slots = (int64_t)n_seqs * max_blocks * bs, w = (int64_t)Hkv * hd;
    llmrt_kv8_layout l = {bs, Hkv, hd};
    float *k = malloc((size_t)(n_slots * w) * sizeof(float)),
          *v = malloc((size_t)(n_slots * w) * sizeof(float));
    uint8_t *k8[2], *v8[2];
    for (int64_t i = 0; i < n_slots * w; i++)
        k[i] = 2.0f * frand(), v[i] = frand();
    uint16_t *k16 = malloc((size_t)(n_slots * w) * 2), *v16 = malloc((size_t)(n_slots * w) * 2);
    llmrt_kv_store_bf16(k16, k, n_slots * w);
    llmrt_kv_store_bf16(v16, v, n_slots * w);
    static const llmrt_dtype q8[2] = {LLMRT_DTYPE_I8, LLMRT_DTYPE_F8_E4M3};
    for (int d = 0; d < 2; d++) {
        k8[d] = malloc((size_t)(n_slots / bs * llmrt_kv8_block_bytes(&l)));
        v8[d] = malloc((size_t)(n_slots / bs * llmrt_kv8_block_bytes(&l)));
        for (int64_t s = 0; s < n_slots; s++) {
            llmrt_kv_quantise_token(k8[d], &l, s, k + s * w, q8[d]);
            llmrt_kv_quantise_token(v8[d], &l, s, v + s * w, q8[d]);
        }
    }
    int32_t *tables = malloc((size_t)n_seqs * max_blocks * sizeof(int32_t));
    /* queries: one decode token per sequence, or (--prefill 1) every position of each one */
    const int32_t T = prefill ? n_seqs * n_ctx : n_seqs;
    int32_t *pos = malloc((size_t)T * sizeof(int32_t)), *seq = malloc((size_t)T * 4);
    for (int32_t i = 0; i < n_seqs * max_blocks; i++)
        tables[i] = i;
    for (int32_t i = n_seqs * max_blocks - 1; scatter && i > 0; i--) { /* Fisher-Yates */
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int32_t j = (int32_t)((rng >> 33) % (uint64_t)(i + 1)), x = tables[i];
        tables[i] = tables[j], tables[j] = x;
    }
    for (int32_t t = 0; t < T; t++) {
        seq[t] = prefill ? t / n_ctx : t;
        pos[t] = prefill ? t % n_ctx : n_ctx - 1;
    }
    float *q = malloc((size_t)T * Hq * hd * sizeof(float)),
          *out = malloc((size_t)T * Hq * hd * sizeof(float));
    for (int64_t i = 0; i < (int64_t)T * Hq * hd; i++)
        q[i] = 2.0f * frand();

    const char *use = llmrt_cpu_kernels_select(isa).isa;
    llmrt_cpu_attn a;
    llmrt_error err = {0};
    llmrt_thread_pool *pool = llmrt_thread_pool_create(threads);
    if (llmrt_cpu_attn_init(&a, use, threads, &err) != LLMRT_OK ||
        llmrt_cpu_attn_reserve(&a, T, hd, &err) != LLMRT_OK) {
        fprintf(stderr, "kv_attn_bench: %s\n", err.msg);
        return 1;
    }
    llmrt_cpu_attn_batch b = {.positions = pos,
                              .seq_of = seq,
                              .block_tables = tables,
                              .n_tokens = T,
                              .max_blocks = max_blocks};
#define N_DT 4
    static const char *const names[N_DT] = {"f32", "int8", "fp8_e4m3", "bf16"};
    const void *kc[N_DT] = {k, k8[0], k8[1], k16}, *vc[N_DT] = {v, v8[0], v8[1], v16};
    const llmrt_dtype dt[N_DT] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_I8, LLMRT_DTYPE_F8_E4M3,
                                  LLMRT_DTYPE_BF16};
    double *t[N_DT];
    for (int d = 0; d < N_DT; d++)
        t[d] = malloc((size_t)reps * sizeof(double));
    for (int r = 0; r < reps; r++)
        for (int d = 0; d < N_DT; d++) {
            double t0 = now_s();
            llmrt_cpu_attention(&a, pool, out, q, kc[d], vc[d], dt[d], Hq, Hkv, hd, bs, 0.125f, 0,
                                &b);
            t[d][r] = now_s() - t0;
        }
    printf("kv_attn_bench: isa %s, %d thread(s), %d seq(s) x %s, context %d, Hq %d "
           "Hkv %d hd %d, %d reps (rounds alternate the dtypes), blocks %s\n",
           use, threads, n_seqs, prefill ? "a whole prompt" : "1 decode token", n_ctx, Hq, Hkv,
           hd, reps, scatter ? "scattered" : "in order");
    printf("%-9s %14s %10s %10s %12s %10s\n", "kv dtype", "KV bytes/call", "min us", "median us",
           "GB/s at min", "speedup");
    double base = 0;
    for (int d = 0; d < N_DT; d++) {
        qsort(t[d], (size_t)reps, sizeof(double), cmp_double);
        double bytes = 2.0 * n_seqs * n_ctx * llmrt_kv_slot_bytes(dt[d], Hkv, hd, 4);
        if (d == 0) base = t[d][0];
        printf("%-9s %14.0f %10.1f %10.1f %12.2f %9.2fx\n", names[d], bytes, 1e6 * t[d][0],
               1e6 * t[d][reps / 2], bytes / t[d][0] / 1e9, base / t[d][0]);
        free(t[d]);
    }
    llmrt_cpu_attn_free(&a);
    llmrt_thread_pool_destroy(pool);
    free(k), free(v), free(k16), free(v16), free(tables), free(pos), free(seq), free(q), free(out);
    for (int d = 0; d < 2; d++)
        free(k8[d]), free(v8[d]);
    return 0;
}
