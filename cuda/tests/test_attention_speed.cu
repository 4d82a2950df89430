// test_attention_speed.cu: kernel benchmark (printed, not asserted) of the paged-KV attention
// launchers (attention.h) on Llama-2-7B shapes: 32 query heads, 32 kv heads, head dim 128, fp16,
// KV block 16.
//   decode   llmrt_cuda_attention_decode at batch 1, 8, 32, 64 x context 512, 2048; every
//            sequence owns its own blocks and the block tables are a shuffled permutation (not
//            contiguous), as a long-running server's would be. Reported: time, GB/s of K+V read
//            and its share of the device's datasheet HBM bandwidth, the KV split count chosen.
//   prefill  llmrt_cuda_attention_prefill on one sequence of 512 and of 2048 tokens and on 4
//            sequences x 512 (no past): time, TFLOP/s counting the causal half,
//            4 * T * ctx / 2 * heads * head_dim, and its share of the dense fp16 tensor peak.
//   launch   cost of one launch: N back-to-back empty kernels timed with events, per launch; and
//            the same N kernels captured into one CUDA graph and replayed, per node (the figure
//            python/tools/decode_time_model.py takes as --graph-node-us / --launch-us).
// Per case: median of kReps timed calls (CUDA events on one stream) after kWarmups warm-ups.
// The numbers say nothing about correctness: test_attention_decode/_prefill check the results.
//
// On a GPU (ctest -L gpu, or gpu_test_attention_speed [--json PATH] directly). Under cusim one
// tiny shape of each kind runs so that the code paths stay exercised; its times are meaningless.
// The graph half needs the runtime's stream capture: always there with nvcc; under cusim only
// once the simulator has it (cuda/sim/graph.cpp), otherwise it prints that it skips.
// --json PATH: also write one JSON object per result line to PATH.
#include "../attention_decode.cu"
#include "../attention_prefill.cu"

#include <algorithm>
#include <cerrno>
#include <numeric>

#include "test_util.cuh"

#if !defined(CUSIM) || __has_include("../sim/graph.cpp")
#define ATTN_SPEED_GRAPHS 1
#else
#define ATTN_SPEED_GRAPHS 0
#endif

namespace {

// ---- device datasheet peaks
// ---------------------------------------------------------------------- Matched by substring of
// cudaDeviceProp::name, first match wins (so the more specific names come first). Same figures as
// bench/bench_report.c's gpu_peaks: HBM bandwidth and dense (no sparsity) fp16 tensor-core
// throughput with fp32 accumulation.
struct Peak {
    const char *name_part;
    double gbps, tflops;
};
const Peak kPeaks[] = {
    {"H200", 4800, 989},           {"H100 PCIe", 2000, 756},      {"H100 NVL", 3900, 835},
    {"H100", 3350, 989},           {"A100-SXM4-40GB", 1555, 312}, {"A100-PCIE-40GB", 1555, 312},
    {"A100 80GB PCIe", 1935, 312}, {"A100", 2039, 312},
};

const Peak *find_peak(const char *device_name) {
#ifdef CUSIM
    (void)device_name;
    return nullptr; // the simulator's times are not a device's
#else
    for (const Peak &p : kPeaks)
        if (strstr(device_name, p.name_part)) return &p;
    return nullptr;
#endif
}

// ---- shapes and run sizes
// ------------------------------------------------------------------------
struct Model {
    int heads, kv_heads, head_dim, block_size;
};
#ifdef CUSIM
const Model kModel = {2, 2, 128, 16}; // tiny: the simulator runs one fiber per CUDA thread
const int kWarmups = 1, kReps = 1, kLaunchN = 8, kLaunchRounds = 1;
#else
const Model kModel = {32, 32, 128, 16}; // Llama-2-7B
const int kWarmups = 3, kReps = 25, kLaunchN = 1000, kLaunchRounds = 11;
#endif

struct Bench {
    cudaStream_t stream = nullptr;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    const Peak *peak = nullptr;
    std::string device;
    FILE *json = nullptr;
    // one K and one V cache big enough for the largest case: [max_blocks_total, bs, Hkv, hd]
    __half *k_cache = nullptr, *v_cache = nullptr;
    int cache_blocks = 0;
    Rng rng{20};
};

__global__ void fill_f16_kernel(__half *p, size_t n, uint32_t seed) {
    // p[n]: values in [-1, 1) from a hash of the index (no host copy of a GiB of random numbers)
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 0x9E3779B1u ^ (uint32_t)(i >> 32) ^ seed;
        h ^= h >> 15;
        h *= 0x2C1B3C6Du;
        h ^= h >> 12;
        p[i] = __float2half((float)(h & 0xffff) / 32768.0f - 1.0f);
    }
}

__global__ void empty_kernel(int unused) {
    (void)unused;
}

void fill_random(__half *p, size_t n, uint32_t seed, cudaStream_t s) {
    const size_t blocks = std::min<size_t>(1024, (n + 255) / 256);
    LAUNCH(fill_f16_kernel, (unsigned)blocks, 256, 0, s, p, n, seed);
    CUDA_OK(cudaGetLastError());
}

float median_us(std::vector<float> ms) {
    std::sort(ms.begin(), ms.end());
    return 1000.0f * ms[ms.size() / 2];
}

// Median time (us) of `reps` calls of f, each bracketed by events on b.stream, after warm-ups.
template <class F> float time_us(Bench &b, F &&f, int warmups, int reps) {
    for (int i = 0; i < warmups; i++)
        f();
    CUDA_OK(cudaStreamSynchronize(b.stream));
    std::vector<float> ms;
    for (int i = 0; i < reps; i++) {
        CUDA_OK(cudaEventRecord(b.e0, b.stream));
        f();
        CUDA_OK(cudaEventRecord(b.e1, b.stream));
        CUDA_OK(cudaEventSynchronize(b.e1));
        float v = 0;
        CUDA_OK(cudaEventElapsedTime(&v, b.e0, b.e1));
        ms.push_back(v);
    }
    return median_us(ms);
}

// Device arrays of one batch: sequences with ctx_len tokens each (q_len new ones), every sequence
// its own blocks, block ids a random permutation of 0 .. n_seqs * blocks_per_seq - 1.
struct Batch {
    int32_t *block_tables = nullptr, *q_start = nullptr, *q_len = nullptr, *ctx_len = nullptr,
            *seq_slot = nullptr;
    __half *q = nullptr, *out = nullptr;
    int n_seqs = 0, n_tokens = 0, max_blocks = 0;

    void build(Bench &b, int seqs, int ctx, int new_tokens) {
        const Model &m = kModel;
        n_seqs = seqs;
        n_tokens = seqs * new_tokens;
        max_blocks = (ctx + m.block_size - 1) / m.block_size;
        const int total_blocks = seqs * max_blocks;
        CHECKF(total_blocks <= b.cache_blocks, "%d blocks > cache %d", total_blocks,
               b.cache_blocks);
        std::vector<int32_t> ids(total_blocks);
        std::iota(ids.begin(), ids.end(), 0);
        for (int i = total_blocks - 1; i > 0; i--)
            std::swap(ids[i], ids[b.rng.range(0, i)]);
        std::vector<int32_t> qs(seqs), ql(seqs, new_tokens), cl(seqs, ctx), slot(seqs);
        for (int i = 0; i < seqs; i++)
            qs[i] = i * new_tokens, slot[i] = i;
        block_tables = to_dev(ids);
        q_start = to_dev(qs);
        q_len = to_dev(ql);
        ctx_len = to_dev(cl);
        seq_slot = to_dev(slot);
        const size_t rows = (size_t)n_tokens * m.heads * m.head_dim;
        q = dev_alloc<__half>(rows);
        out = dev_alloc<__half>(rows);
        fill_random(q, rows, (uint32_t)(seqs * 7919 + ctx), b.stream);
    }
    llmrt_cuda_attn_args args(const Bench &b, int ctx) const {
        const Model &m = kModel;
        llmrt_cuda_attn_args a{};
        a.q = q, a.out = out, a.k_cache = b.k_cache, a.v_cache = b.v_cache;
        a.block_tables = block_tables, a.q_start = q_start, a.q_len = q_len;
        a.ctx_len = ctx_len, a.seq_slot = seq_slot;
        a.n_seqs = n_seqs, a.n_tokens = n_tokens;
        a.n_heads = m.heads, a.n_kv_heads = m.kv_heads, a.head_dim = m.head_dim;
        a.block_size = m.block_size, a.max_blocks = max_blocks, a.max_ctx_len = ctx;
        a.scale = 1.0f / sqrtf((float)m.head_dim);
        a.dtype = LLMRT_CUDA_ATTN_F16;
        return a;
    }
    ~Batch() {
        cudaFree(block_tables), cudaFree(q_start), cudaFree(q_len), cudaFree(ctx_len);
        cudaFree(seq_slot), cudaFree(q), cudaFree(out);
    }
};

void print_pct(double value, double peak) {
    if (peak > 0)
        printf(" (%5.1f %% of %.0f)", 100.0 * value / peak, peak);
    else
        printf(" (no datasheet peak for this device)");
}

void bench_decode(Bench &b, int batch, int ctx) {
    const Model &m = kModel;
    Batch bt;
    bt.build(b, batch, ctx, 1);
    llmrt_cuda_attn_args a = bt.args(b, ctx);
    const size_t ws_bytes =
        llmrt_cuda_attention_decode_workspace_bytes(batch, m.heads, m.head_dim, dec::kMaxSplits);
    void *ws = dev_alloc<unsigned char>(ws_bytes);
    a.workspace = ws, a.workspace_bytes = ws_bytes;
    char err[256] = "";
    const int splits = llmrt_cuda_attention_decode_num_splits(&a, err, sizeof err);
    CHECKF(splits > 0, "num_splits: %s", err);
    int rc = 0;
    const float us = time_us(
        b,
        [&] {
            const int r = llmrt_cuda_attention_decode(&a, b.stream, err, sizeof err);
            if (r) rc = r;
        },
        kWarmups, kReps);
    CHECKF(rc == 0, "decode: %s", err);
    CUDA_OK(cudaGetLastError());
    // K and V of every context token, every kv head: what a decode step must read at least
    const double kv_bytes = 2.0 * batch * ctx * m.kv_heads * m.head_dim * sizeof(__half);
    const double gbps = kv_bytes / (us * 1e3);
    const double peak = b.peak ? b.peak->gbps : 0;
    printf("decode  batch %2d x ctx %4d: %9.1f us  KV %7.1f MB  %7.1f GB/s", batch, ctx, us,
           kv_bytes / 1e6, gbps);
    print_pct(gbps, peak);
    printf("  splits %d\n", splits);
    if (b.json)
        fprintf(
            b.json,
            "{\"kernel\": \"attention_decode\", \"device\": \"%s\", \"batch\": %d, \"ctx\": %d, "
            "\"heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, \"block_size\": %d, "
            "\"dtype\": \"f16\", \"us\": %.2f, \"kv_bytes\": %.0f, \"gbps\": %.1f, "
            "\"peak_gbps\": %.0f, \"splits\": %d, \"reps\": %d}\n",
            b.device.c_str(), batch, ctx, m.heads, m.kv_heads, m.head_dim, m.block_size, us,
            kv_bytes, gbps, peak, splits, kReps);
    cudaFree(ws);
}

void bench_prefill(Bench &b, int seqs, int tokens) {
    const Model &m = kModel;
    Batch bt;
    bt.build(b, seqs, tokens, tokens);
    const llmrt_cuda_attn_args a = bt.args(b, tokens);
    char err[256] = "";
    int rc = 0;
    const float us = time_us(
        b,
        [&] {
            const int r = llmrt_cuda_attention_prefill(&a, b.stream, err, sizeof err);
            if (r) rc = r;
        },
        kWarmups, kReps);
    CHECKF(rc == 0, "prefill: %s", err);
    CUDA_OK(cudaGetLastError());
    // QKᵀ and PV, 2 flops per multiply-add each, over the causal half of the T x ctx scores
    const double flops = 4.0 * seqs * tokens * (tokens / 2.0) * m.heads * m.head_dim;
    const double tflops = flops / (us * 1e6);
    const double peak = b.peak ? b.peak->tflops : 0;
    printf("prefill %d seq x %4d tokens:  %9.1f us  %7.1f TFLOP/s", seqs, tokens, us, tflops);
    print_pct(tflops, peak);
    printf("\n");
    if (b.json)
        fprintf(b.json,
                "{\"kernel\": \"attention_prefill\", \"device\": \"%s\", \"seqs\": %d, "
                "\"tokens\": %d, \"heads\": %d, \"kv_heads\": %d, \"head_dim\": %d, "
                "\"block_size\": %d, \"dtype\": \"f16\", \"us\": %.2f, \"flops\": %.0f, "
                "\"tflops\": %.2f, \"peak_tflops\": %.0f, \"reps\": %d}\n",
                b.device.c_str(), seqs, tokens, m.heads, m.kv_heads, m.head_dim, m.block_size, us,
                flops, tflops, peak, kReps);
}

void print_launch(Bench &b, const char *mode, float us_total) {
    const double per = us_total / kLaunchN;
    printf("launch  %-6s %4d empty kernels: %9.1f us  = %6.2f us per %s\n", mode, kLaunchN,
           us_total, per, strcmp(mode, "graph") ? "launch" : "graph node");
    if (b.json)
        fprintf(b.json,
                "{\"probe\": \"launch\", \"device\": \"%s\", \"mode\": \"%s\", \"n\": %d, "
                "\"us_total\": %.2f, \"us_per_launch\": %.3f, \"rounds\": %d}\n",
                b.device.c_str(), mode, kLaunchN, us_total, per, kLaunchRounds);
}

// N empty kernels back to back on one stream: with nothing to execute, the time between the
// events is the launch path's (host submission and the GPU front end, whichever is slower).
void bench_launch(Bench &b) {
    auto launch_n = [&] {
        for (int i = 0; i < kLaunchN; i++)
            LAUNCH(empty_kernel, 1, 32, 0, b.stream, i);
    };
    const float eager = time_us(b, launch_n, 1, kLaunchRounds);
    CUDA_OK(cudaGetLastError());
    print_launch(b, "eager", eager);
#if ATTN_SPEED_GRAPHS
    cudaGraph_t graph = nullptr;
    cudaGraphExec_t exec = nullptr;
    CUDA_OK(cudaStreamBeginCapture(b.stream, cudaStreamCaptureModeGlobal));
    launch_n();
    CUDA_OK(cudaStreamEndCapture(b.stream, &graph));
    CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
    if (exec) {
        const float replay = time_us(
            b, [&] { CUDA_OK(cudaGraphLaunch(exec, b.stream)); }, 1, kLaunchRounds);
        print_launch(b, "graph", replay);
        CUDA_OK(cudaGraphExecDestroy(exec));
    }
    if (graph) CUDA_OK(cudaGraphDestroy(graph));
#else
    printf("launch  graph: SKIP (this cusim has no stream capture yet)\n");
#endif
}

int parse_args(int argc, char **argv, const char **json_path) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            *json_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--json PATH]   (unknown or incomplete argument '%s')\n",
                    argv[0], argv[i]);
            return -1;
        }
    }
    return 0;
}

} // namespace

int main(int argc, char **argv) {
    const char *json_path = nullptr;
    if (parse_args(argc, argv, &json_path)) return 2;
    require_device();
    Bench b;
    if (json_path) {
        b.json = fopen(json_path, "w");
        if (!b.json) {
            fprintf(stderr, "--json %s: cannot open for writing: %s\n", json_path, strerror(errno));
            return 2;
        }
    }
    cudaDeviceProp prop{};
    CUDA_OK(cudaGetDeviceProperties(&prop, 0));
    for (const char *c = prop.name; *c; c++) // JSON-safe copy of the name
        b.device += (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20) ? '_' : *c;
    b.peak = find_peak(prop.name);
    printf("device: %s (%d SMs); datasheet peaks: ", prop.name, prop.multiProcessorCount);
    if (b.peak)
        printf("%.0f GB/s HBM, %.0f TFLOP/s dense fp16 tensor\n", b.peak->gbps, b.peak->tflops);
    else
#ifdef CUSIM
        printf("none (cusim: the times are the simulator's)\n");
#else
        printf("none (device not in the table: percentages omitted)\n");
#endif
    printf("shape: %d heads, %d kv heads, head dim %d, fp16, KV block %d; median of %d after %d "
           "warm-ups\n",
           kModel.heads, kModel.kv_heads, kModel.head_dim, kModel.block_size, kReps, kWarmups);
    CUDA_OK(cudaStreamCreateWithFlags(&b.stream, cudaStreamNonBlocking));
    CUDA_OK(cudaEventCreate(&b.e0));
    CUDA_OK(cudaEventCreate(&b.e1));

#ifdef CUSIM
    const int decode_batches[] = {2}, decode_ctx[] = {520}; // 520: 2 KV splits
    const int prefill_cases[][2] = {{1, 32}, {2, 16}};      // {sequences, tokens each}
#else
    const int decode_batches[] = {1, 8, 32, 64}, decode_ctx[] = {512, 2048};
    const int prefill_cases[][2] = {{1, 512}, {1, 2048}, {4, 512}};
#endif
    int max_tokens = 0; // the largest batch x context any case places in the cache
    for (int bs : decode_batches)
        for (int c : decode_ctx)
            max_tokens = std::max(max_tokens, bs * c);
    for (const auto &pc : prefill_cases)
        max_tokens = std::max(max_tokens, pc[0] * pc[1]);
    b.cache_blocks = (max_tokens + kModel.block_size - 1) / kModel.block_size + 1;
    const size_t cache_elems =
        (size_t)b.cache_blocks * kModel.block_size * kModel.kv_heads * kModel.head_dim;
    b.k_cache = dev_alloc<__half>(cache_elems);
    b.v_cache = dev_alloc<__half>(cache_elems);
    fill_random(b.k_cache, cache_elems, 1, b.stream);
    fill_random(b.v_cache, cache_elems, 2, b.stream);
    CUDA_OK(cudaStreamSynchronize(b.stream));

    for (int bs : decode_batches)
        for (int c : decode_ctx)
            bench_decode(b, bs, c);
    for (const auto &pc : prefill_cases)
        bench_prefill(b, pc[0], pc[1]);
    bench_launch(b);

    if (b.json) fclose(b.json);
    cudaFree(b.k_cache);
    cudaFree(b.v_cache);
    cudaEventDestroy(b.e0);
    cudaEventDestroy(b.e1);
    cudaStreamDestroy(b.stream);
    return test_summary("test_attention_speed");
}
