#include "bench_report.h"

#include <immintrin.h>
#include <pthread.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "llmrt_git_rev.h" /* LLMRT_GIT_REV, written at build time (cmake/git_rev.cmake) */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The peak fp32 FMA rate: 16 independent vector accumulators (enough FMAs in flight to fill
 * both FMA pipes), in the widest ISA the CPU has, as the CPU backend's kernels use it. The best
 * of PROBE_RUNS runs of ~5 ms: a single ~1 ms run (before) read 60-80 % of the core's rate on a
 * shared 2-core Zen 3, so prefill reports showed 130-200 % "of the peak". */
#define PROBE_ITERS 40000000L
#define PROBE_RUNS  5

__attribute__((target("avx512f,fma"))) static float probe_avx512(void) {
    __m512 acc[16], x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < PROBE_ITERS / 16; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    }
    float s = 0;
    for (int i = 0; i < 16; i++) s += _mm512_reduce_add_ps(acc[i]);
    return s;
}

__attribute__((target("avx2,fma"))) static float probe_avx2(void) {
    __m256 acc[12], x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.9999999f);
    for (int i = 0; i < 12; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < PROBE_ITERS / 16; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    }
    float buf[8], s = 0;
    for (int i = 0; i < 12; i++) {
        _mm256_storeu_ps(buf, acc[i]);
        for (int k = 0; k < 8; k++) s += buf[k];
    }
    return s;
}

static int probe_width; /* fp32 lanes x accumulators per iteration: set by bench_flops_probe */

static void *flops_worker(void *p) {
    *(float *)p = probe_width == 16 * 16 ? probe_avx512() : probe_avx2();
    return NULL;
}

double bench_flops_probe(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    pthread_t tid[256];
    float     sink[256];
    if (n_threads > 256) n_threads = 256;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) probe_width = 16 * 16;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) probe_width = 8 * 12;
    else return 0.0; /* no FMA: not measured */
    double best = 0;
    for (int run = 0; run < PROBE_RUNS; run++) {
        double t0   = now_s();
        int    made = 0; /* threads started (a failed pthread_create counts the ones that ran) */
        while (made < n_threads &&
               pthread_create(&tid[made], NULL, flops_worker, &sink[made]) == 0)
            made++;
        for (int t = 0; t < made; t++) pthread_join(tid[t], NULL);
        double dt = now_s() - t0;
        if (made == 0) return 0.0; /* not measured */
        /* per thread: PROBE_ITERS / 16 iterations of probe_width FMAs (2 FLOPs each) */
        double gflops = 2.0 * (double)probe_width * (double)(PROBE_ITERS / 16) * made / dt / 1e9;
        if (gflops > best) best = gflops;
    }
    return best;
}

/* Datasheet peaks of known GPUs (kernels.md §5): dense fp16 tensor-core TFLOP/s, memory GB/s.
 * Matched on the device name; the first match wins, so the more specific names come first. */
static const struct {
    const char *name_part;
    double      gbps, gflops;
} gpu_peaks[] = {
    {"H200", 4800, 989000},       {"H100 PCIe", 2000, 756000}, {"H100", 3350, 989000},
    {"A100-SXM4-40GB", 1555, 312000}, {"A100 80GB PCIe", 1935, 312000}, {"A100", 2039, 312000},
};

void bench_context_measure(bench_context *c) {
    if (!strcmp(c->info.backend, "cuda")) {
        c->peak_source = "datasheet (unknown GPU: none)";
        for (size_t i = 0; i < sizeof gpu_peaks / sizeof gpu_peaks[0]; i++)
            if (strstr(c->info.device_name, gpu_peaks[i].name_part)) {
                c->peak_gbps   = gpu_peaks[i].gbps;
                c->peak_gflops = gpu_peaks[i].gflops;
                c->peak_source = "datasheet (dense fp16 tensor core, HBM)";
                break;
            }
        return;
    }
    int t          = c->threads > 0 ? c->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    c->peak_gbps   = bench_membw(t, (size_t)1 << 30, BENCH_MEMBW_READ, 3);
    c->peak_gflops = bench_flops_probe(t);
    c->peak_source = "measured (read bandwidth probe, fp32 FMA probe)";
}

double bench_kv_bytes_per_token(const llmrt_model_info *i) {
    int eb = i->kv_elem_bytes ? i->kv_elem_bytes : 4; /* 1: 8-bit codes + an fp32 scale per head */
    return 2.0 * i->n_layers * i->n_kv_heads * (eb == 1 ? i->head_dim + 4 : i->head_dim * eb);
}

static void machine(char *buf, size_t n) {
    struct utsname u;
    uname(&u);
    char  cpu[256] = "unknown cpu";
    FILE *f        = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "model name", 10)) {
                char *colon = strchr(line, ':');
                if (colon) snprintf(cpu, sizeof cpu, "%s", colon + 2);
                cpu[strcspn(cpu, "\n")] = 0;
                break;
            }
        fclose(f);
    }
    snprintf(buf, n, "%s, %ld cores, %s %s", cpu, sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.machine);
}

static void command(FILE *f, const bench_context *c, bool json) {
    fputs(json ? "\"llmrt bench" : "llmrt bench", f);
    for (int i = 0; i < c->argc; i++) {
        fputc(' ', f);
        for (const char *p = c->argv[i]; *p; p++) {
            if (json && (*p == '"' || *p == '\\')) fputc('\\', f);
            fputc(*p, f);
        }
    }
    if (json) fputc('"', f);
}

void bench_context_print(FILE *f, const bench_context *c) {
    char m[512];
    machine(m, sizeof m);
    fprintf(f, "# command: ");
    command(f, c, false);
    fprintf(f, "\n# machine: %s\n# git revision: %s\n", m, LLMRT_GIT_REV);
    fprintf(f, "# model: %s (%s, %lld params, %.1f MB of weights)\n", c->model_path,
            c->info.weight_format, (long long)c->info.n_params, c->info.weight_bytes / 1e6);
    fprintf(f, "# backend: %s (%s), %d host threads; KV: %lld tokens, block %d, policy %s, prefix cache %s, "
               "max_batched_tokens %d, max_seqs %d\n",
            c->info.backend, c->info.device_name, c->threads, (long long)c->engine.kv_tokens,
            c->engine.block_size, c->engine.policy == LLMRT_KV_RESERVE ? "reserve" : "preempt",
            c->engine.prefix_caching ? "on" : "off", c->engine.max_batched_tokens,
            c->engine.max_seqs);
    fprintf(f, "# decode steps: %s, %lld of them run from a graph\n",
            c->info.cuda_graphs ? "CUDA graphs (one per batch bucket)" : "eager (not CUDA, or --enforce-eager)",
            (long long)c->info.cuda_graph_replays);
    fprintf(f, "# KV cache: %.0f bytes per token (%d-byte K and V elements, all layers)\n",
            bench_kv_bytes_per_token(&c->info), c->info.kv_elem_bytes);
    fprintf(f, "# roofline reference, %s: bandwidth %.2f GB/s, %.1f GFLOP/s\n", c->peak_source,
            c->peak_gbps, c->peak_gflops);
}

void bench_context_json(FILE *f, const bench_context *c) {
    char m[512];
    machine(m, sizeof m);
    fprintf(f, "  \"command\": ");
    command(f, c, true);
    fprintf(f, ",\n  \"machine\": \"%s\", \"git_revision\": \"%s\",\n", m, LLMRT_GIT_REV);
    fprintf(f, "  \"model_id\": \"%s\", \"weight_format\": \"%s\", \"n_params\": %lld, "
               "\"weight_bytes\": %lld,\n",
            c->model_path, c->info.weight_format, (long long)c->info.n_params,
            (long long)c->info.weight_bytes);
    fprintf(f, "  \"backend\": \"%s\", \"device\": \"%s\", \"threads\": %d, \"kv_tokens\": %lld, \"block_size\": %d, "
               "\"kv_policy\": \"%s\", \"prefix_caching\": %s, \"max_batched_tokens\": %d, "
               "\"max_seqs\": %d,\n",
            c->info.backend, c->info.device_name, c->threads, (long long)c->engine.kv_tokens,
            c->engine.block_size, c->engine.policy == LLMRT_KV_RESERVE ? "reserve" : "preempt",
            c->engine.prefix_caching ? "true" : "false", c->engine.max_batched_tokens,
            c->engine.max_seqs);
    fprintf(f, "  \"kv_bytes_per_token\": %.0f, \"peak_read_gbps\": %.3f, \"peak_fp32_gflops\": %.3f, "
               "\"peak_source\": \"%s\"",
            bench_kv_bytes_per_token(&c->info), c->peak_gbps, c->peak_gflops, c->peak_source);
}

void bench_machine_string(char *buf, size_t n) {
    machine(buf, n);
}

void bench_command_print(FILE *f, int argc, char **argv, bool json) {
    bench_context c = {.argc = argc, .argv = argv};
    command(f, &c, json);
}
