// test_attention_prefill.cu: llmrt_cuda_attention_prefill against an fp64 reference that gathers
// K/V through the block table (attention_ref.h: the accuracy criterion and why). Runs under cusim
// (ctest -L cusim) and on a GPU (ctest -L gpu). Covers: q lengths that are not multiples of the
// 64-row tile or the block size, 1-token prompts, multi-block prompts, past lengths 0/15/16/17/300
// (chunked prefill, prefix-cache hits), GQA ratios 1/4/8, head dims 64/128, block sizes 8/16/32/
// 64 and 48 (neither divides nor is a multiple of the 64-token KV tile), random block tables,
// mixed batches, NaN in every unowned slot, guard rows around out, bf16, and the argument errors.
//
// The cuda/ CMake links tests with the simulator (or cudart) only, so the kernels are compiled in.
#include "../attention_decode.cu"
#include "../attention_prefill.cu"
#include "attention_ref.h"

#include <chrono>

using namespace attn_test;

static int g_failures = 0;

struct Case {
    const char *name;
    int Hq, Hkv, hd, bs, dtype;
    std::vector<Seq> seqs;
    float amp;
    int window = 0; // sliding window (0: none)
};

static bool run_case(const Case &c, uint64_t seed, bool nan_swap_check) {
    Problem pb;
    pb.Hq = c.Hq;
    pb.Hkv = c.Hkv;
    pb.hd = c.hd;
    pb.bs = c.bs;
    pb.dtype = c.dtype;
    pb.amp = c.amp;
    pb.window = c.window;
    pb.seqs = c.seqs;
    pb.build(seed);
    pb.to_device();
    std::vector<double> ref, lp;
    pb.reference(ref, lp);

    const llmrt_cuda_attn_args a = pb.args();
    char err[256] = "";
    const auto t0 = std::chrono::steady_clock::now();
    int rc = llmrt_cuda_attention_prefill(&a, nullptr, err, sizeof err);
    std::vector<uint16_t> o = pb.download_out();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    bool ok = rc == 0;
    Verdict v;
    if (ok) {
        v = judge(pb, o, ref, lp);
        ok = v.ok;
    }
    printf("%-4s %-44s T=%-4d %s hd=%-3d Hq/Hkv=%d/%d bs=%-2d  max|err| %.3g <= %.3g (lp %.3g) "
           "nmse %.2g guards %s  %.0f ms%s%s\n",
           ok ? "ok" : "FAIL", c.name, pb.T, dtype_name(c.dtype), c.hd, c.Hq, c.Hkv, c.bs, v.err,
           v.bound, v.err_lp, v.nmse, v.guards_ok ? "intact" : "OVERWRITTEN", ms, rc ? " rc: " : "",
           rc ? err : "");

    // The contents of slots no sequence owns must not matter: NaN -> huge finite -> the same
    // bits (the kernel is deterministic, so bit-exact).
    if (ok && nan_swap_check) {
        pb.refill_unowned(f_to_elem(60000.0f, c.dtype));
        pb.reset_out();
        rc = llmrt_cuda_attention_prefill(&a, nullptr, err, sizeof err);
        std::vector<uint16_t> o2 = pb.download_out();
        const bool same = rc == 0 && o2 == o;
        printf("%-4s   unowned slots NaN -> 60000: output %s\n", same ? "ok" : "FAIL",
               same ? "bit-identical" : "CHANGED");
        ok = same;
    }
    pb.free_device();
    if (!ok) g_failures++;
    return ok;
}

// An argument error must return the code, say why, and launch nothing (out keeps its sentinel).
static void expect_error(const char *what, Problem &pb, llmrt_cuda_attn_args a, int want_rc,
                         const char *want_text) {
    pb.reset_out();
    char err[256] = "";
    const int rc = llmrt_cuda_attention_prefill(&a, nullptr, err, sizeof err);
    std::vector<uint16_t> o = pb.download_out();
    bool untouched = true;
    for (uint16_t x : o)
        untouched &= x == kSentinel;
    const bool ok = rc == want_rc && strstr(err, want_text) && untouched;
    printf("%-4s error: %-28s rc %d, \"%s\"%s\n", ok ? "ok" : "FAIL", what, rc, err,
           untouched ? "" : " (out WRITTEN)");
    if (!ok) g_failures++;
}

// LLMRT_ATTN_BENCH=1 (GPU build only): timings of Llama-2-7B layer shapes (Hq = Hkv = 32, hd 128,
// block size 16), with a spot check of the outputs against the reference.
static void bench() {
#ifndef CUSIM
    cudaDeviceProp prop;
    ATT_CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    printf("---- bench on %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    struct B {
        const char *name;
        std::vector<Seq> seqs;
    } benches[] = {
        {"1 x 2048-token prompt", {{2048, 0}}},
        {"4 x 512-token chunks after 1536 past",
         {{512, 1536}, {512, 1536}, {512, 1536}, {512, 1536}}},
        {"16 x 128-token prompts", std::vector<Seq>(16, Seq{128, 0})},
    };
    for (const B &b : benches) {
        Problem pb;
        pb.Hq = pb.Hkv = 32;
        pb.hd = 128;
        pb.seqs = b.seqs;
        pb.build(42, true);
        pb.to_device();
        const llmrt_cuda_attn_args a = pb.args();
        char err[256] = "";
        const double ms =
            time_ms([&] { llmrt_cuda_attention_prefill(&a, nullptr, err, sizeof err); }, 20);
        double flops = 0; // causal: sum over query rows of 4 * hd * Hq * (keys seen)
        for (size_t i = 0; i < pb.seqs.size(); i++)
            for (int j = 0; j < pb.q_len[i]; j++)
                flops += 4.0 * pb.hd * pb.Hq * (pb.ctx[i] - pb.q_len[i] + j + 1);
        double worst = 0;
        const bool ok = spot_check(pb, 48, 7, &worst);
        printf("%-4s %-40s %8.1f us  %6.1f TFLOP/s  (spot check: worst err/bound %.2f)\n",
               ok ? "ok" : "FAIL", b.name, ms * 1e3, flops / (ms * 1e-3) / 1e12, worst);
        if (!ok) g_failures++;
        pb.free_device();
    }
#endif
}

int main() {
    skip_without_device();
    const char *bench_env = getenv("LLMRT_ATTN_BENCH"); // "only": the benchmark alone
    if (bench_env && !strcmp(bench_env, "only")) {
        bench();
        return g_failures ? 1 : 0;
    }
    const int F16 = LLMRT_CUDA_ATTN_F16, BF16 = LLMRT_CUDA_ATTN_BF16;
    // clang-format off
    const Case cases[] = {
        // name                                   Hq Hkv  hd  bs dtype  seqs {q_len, past}    amp
        {"one 77-token prompt, MHA", 2, 2, 128, 16, F16, {{77, 0}}, 2.5f},
        {"1-token prompt", 2, 1, 64, 16, F16, {{1, 0}}, 2.5f},
        {"past 15/16/17 mixed, GQA 4", 8, 2, 64, 16, F16, {{20, 15}, {3, 16}, {64, 17}, {1, 300}},
         2.5f},
        {"multi-tile prompt + decode past 300, GQA 8", 8, 1, 128, 32, F16, {{130, 0}, {17, 300}},
         2.5f},
        {"chunk after past 300, bs 16", 4, 4, 64, 16, F16, {{65, 300}}, 2.5f},
        {"block size 8", 2, 1, 64, 8, F16, {{100, 33}, {2, 5}}, 2.5f},
        {"block size 64", 2, 2, 128, 64, F16, {{70, 60}, {1, 127}}, 2.5f},
        {"block size 48 (neither divisor nor multiple)", 4, 2, 64, 48, F16, {{90, 10}}, 2.5f},
        // a KV tile ending exactly at, one past, or one before the first query row's position
        {"diagonal alignments (past 62/63/64/65/127)", 2, 1, 64, 16, F16,
         {{3, 62}, {2, 63}, {5, 64}, {1, 65}, {66, 127}}, 2.5f},
        {"sharp softmax (amp 4)", 4, 1, 128, 16, F16, {{96, 40}}, 4.0f},
        {"bf16 mixed batch, GQA 4", 8, 2, 128, 16, BF16, {{33, 0}, {1, 200}, {70, 16}}, 2.5f},
        {"bf16 hd 64", 4, 4, 64, 32, BF16, {{64, 64}}, 2.5f},
        // sliding windows (issue 16): tiles below the window skipped, masks at its lower edge,
        // the freed blocks below every window NaN
        {"window 40: prompt, chunk past 300, decode", 4, 2, 64, 16, F16,
         {{130, 0}, {65, 300}, {1, 200}}, 2.5f, 40},
        {"window 1", 2, 1, 64, 16, F16, {{20, 0}, {1, 70}}, 2.5f, 1},
        {"window 100 bf16 bs 48", 8, 2, 128, 48, BF16, {{150, 10}, {3, 260}}, 2.5f, 100},
        {"window 64 (one tile)", 2, 2, 128, 16, F16, {{70, 64}, {1, 127}}, 2.5f, 64},
    };
    // clang-format on
    int i = 0;
    for (const Case &c : cases) { // the unowned-slot swap check on a GQA-8 and a bf16 case
        run_case(c, 1000 + i, i == 3 || i == 10);
        i++;
    }

    // -- argument errors: nothing launched ------------------------------------------------------
    Problem pb;
    pb.Hq = 4;
    pb.Hkv = 2;
    pb.hd = 64;
    pb.seqs = {{5, 3}};
    pb.build(99);
    pb.to_device();
    const llmrt_cuda_attn_args good = pb.args();
    llmrt_cuda_attn_args a = good;
    a.head_dim = 96;
    expect_error("head_dim 96", pb, a, LLMRT_CUDA_ATTN_ESHAPE, "head_dim 96 unsupported");
    a = good;
    a.n_kv_heads = 3;
    expect_error("Hq 4 / Hkv 3", pb, a, LLMRT_CUDA_ATTN_ESHAPE, "multiple of n_kv_heads");
    a = good;
    a.dtype = 7;
    expect_error("dtype 7", pb, a, LLMRT_CUDA_ATTN_ESHAPE, "dtype 7 unsupported");
    a = good;
    a.k_cache = nullptr;
    expect_error("k_cache NULL", pb, a, LLMRT_CUDA_ATTN_EARG, "k_cache is NULL");
    a = good;
    a.q = static_cast<const char *>(good.q) + 2;
    expect_error("q misaligned", pb, a, LLMRT_CUDA_ATTN_EARG, "not 16-byte aligned");
    a = good;
    a.scale = 0.f;
    expect_error("scale 0", pb, a, LLMRT_CUDA_ATTN_EARG, "scale");
    a = good;
    a.block_size = 0;
    expect_error("block_size 0", pb, a, LLMRT_CUDA_ATTN_EARG, "block_size 0");
    {
        char err[64] = "";
        const bool ok =
            llmrt_cuda_attention_prefill(nullptr, nullptr, err, sizeof err) ==
                LLMRT_CUDA_ATTN_EARG &&
            llmrt_cuda_attention_prefill(nullptr, nullptr, nullptr, 0) == LLMRT_CUDA_ATTN_EARG;
        printf("%-4s error: args NULL (with and without an err buffer): \"%s\"\n",
               ok ? "ok" : "FAIL", err);
        if (!ok) g_failures++;
    }
    a = good;
    a.n_seqs = 0;
    expect_error("n_seqs 0 is a no-op", pb, a, 0, "");
    pb.free_device();

    if (bench_env) bench();
    printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "PASSED", g_failures);
    return g_failures ? 1 : 0;
}
