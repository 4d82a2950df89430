// test_attention_decode.cu: llmrt_cuda_attention_decode (split-KV) against the fp64 reference of
// attention_ref.h, plus: the split count the heuristic picks (printed, and checked on the shapes
// that motivate it), forced split counts (1, uneven, more splits than tiles) equal to one split
// within tolerance, prefill on the same batch, NaN in unowned slots, guard rows, bf16, and the
// argument errors (GQA group > 16, workspace too small, head dim 96). Runs under cusim and on a
// GPU.
#include "../attention_decode.cu"
#include "../attention_prefill.cu"
#include "attention_ref.h"

#include <chrono>

using namespace attn_test;

static int g_failures = 0;

static void check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void check(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%-4s ", ok ? "ok" : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!ok) g_failures++;
}

struct Case {
    const char *name;
    int Hq, Hkv, hd, bs, dtype;
    std::vector<int> ctx; // one new token each: past = ctx - 1
    std::vector<int> forced_splits;
    int window = 0; // sliding window (0: none)
};

static void run_case(const Case &c, uint64_t seed, bool nan_swap_check) {
    Problem pb;
    pb.Hq = c.Hq;
    pb.Hkv = c.Hkv;
    pb.hd = c.hd;
    pb.bs = c.bs;
    pb.dtype = c.dtype;
    pb.window = c.window;
    for (int x : c.ctx)
        pb.seqs.push_back({1, x - 1});
    pb.build(seed);
    pb.to_device();
    std::vector<double> ref, lp;
    pb.reference(ref, lp);

    const int max_splits = 16;
    const size_t ws_bytes = llmrt_cuda_attention_decode_workspace_bytes((int32_t)pb.seqs.size(),
                                                                        pb.Hq, pb.hd, max_splits);
    void *ws = nullptr;
    ATT_CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
    llmrt_cuda_attn_args a = pb.args();
    a.workspace = ws;
    a.workspace_bytes = ws_bytes;
    char err[256] = "";
    const int heur = llmrt_cuda_attention_decode_num_splits(&a, err, sizeof err);
    printf("---- %s: %s hd=%d Hq/Hkv=%d/%d bs=%d, %zu seqs, ctx max %d: heuristic %d split(s)\n",
           c.name, dtype_name(c.dtype), c.hd, c.Hq, c.Hkv, c.bs, pb.seqs.size(), a.max_ctx_len,
           heur);

    std::vector<int> splits = {0}; // 0: the heuristic's choice
    splits.insert(splits.end(), c.forced_splits.begin(), c.forced_splits.end());
    std::vector<uint16_t> one; // the 1-split output
    std::vector<std::vector<uint16_t>> outs;
    double lp_err = 0, max_ref = 0;
    for (size_t e = 0; e < ref.size(); e++) {
        lp_err = std::fmax(lp_err, std::fabs(lp[e] - ref[e]));
        max_ref = std::fmax(max_ref, std::fabs(ref[e]));
    }
    const double ulp = ulp_at(max_ref, c.dtype);
    for (int s : splits) {
        a.num_splits = s;
        pb.reset_out();
        const auto t0 = std::chrono::steady_clock::now();
        const int rc = llmrt_cuda_attention_decode(&a, nullptr, err, sizeof err);
        std::vector<uint16_t> o = pb.download_out();
        const double ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                .count();
        Verdict v;
        if (rc == 0) v = judge(pb, o, ref, lp);
        check(rc == 0 && v.ok,
              "decode splits=%-2d%-12s max|err| %.3g <= %.3g (lp %.3g) nmse %.2g guards %s  %.0f "
              "ms%s%s",
              s ? s : heur, s ? "" : " (heuristic)", v.err, v.bound, v.err_lp, v.nmse,
              v.guards_ok ? "intact" : "OVERWRITTEN", ms, rc ? " rc: " : "", rc ? err : "");
        if (s == 1) one = o;
        outs.push_back(o);
    }
    // many splits vs one: the LSE merge is exact up to fp32 rounding; what differs is where P
    // was rounded (relative to a split's max, not the global one: bounded like out_lp's error,
    // 2 * err_lp) and the final rounding, which can flip by one ulp of the largest output.
    if (!one.empty())
        for (size_t i = 0; i < splits.size(); i++)
            if (splits[i] != 1) {
                const double d = max_diff(pb, outs[i], one), tol = 2 * lp_err + ulp;
                check(d <= tol, "  splits=%d vs 1 split: max|diff| %.3g <= %.3g",
                      splits[i] ? splits[i] : heur, d, tol);
            }

    // prefill on the same batch (the backend may send decodes there too)
    {
        pb.reset_out();
        const int rc = llmrt_cuda_attention_prefill(&a, nullptr, err, sizeof err);
        std::vector<uint16_t> o = pb.download_out();
        Verdict v;
        if (rc == 0) v = judge(pb, o, ref, lp);
        check(rc == 0 && v.ok, "prefill on the decode batch: max|err| %.3g <= %.3g%s%s", v.err,
              v.bound, rc ? " rc: " : "", rc ? err : "");
    }

    if (nan_swap_check) { // unowned slots NaN -> 60000: bit-identical (heuristic splits)
        pb.refill_unowned(f_to_elem(60000.0f, c.dtype));
        pb.reset_out();
        a.num_splits = 0;
        const int rc = llmrt_cuda_attention_decode(&a, nullptr, err, sizeof err);
        std::vector<uint16_t> o = pb.download_out();
        check(rc == 0 && o == outs[0], "  unowned slots NaN -> 60000: output %s",
              rc == 0 && o == outs[0] ? "bit-identical" : "CHANGED");
    }
    cudaFree(ws);
    pb.free_device();
}

// The heuristic on the shapes it is for: Llama-2-7B (32 heads, MHA, hd 128).
static void heuristic_table() {
    cudaDeviceProp prop;
    ATT_CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    printf("---- split heuristic on %s (%d SMs), Llama-2-7B attention (Hq = Hkv = 32, hd 128), "
           "workspace for 32 splits\n",
           prop.name, prop.multiProcessorCount);
    // num_splits only validates pointers (non-NULL, aligned); it launches nothing
    void *dummy = nullptr;
    ATT_CHECK_CUDA(cudaMalloc(&dummy, 256));
    const int batches[] = {1, 4, 8, 32, 64}, ctxs[] = {128, 512, 4096, 32768};
    int b1 = 0, b32_max = 0;
    for (int b : batches) {
        printf("  batch %-3d", b);
        for (int ctx : ctxs) {
            llmrt_cuda_attn_args a;
            memset(&a, 0, sizeof a);
            a.q = a.k_cache = a.v_cache = dummy;
            a.out = dummy;
            a.block_tables = a.q_start = a.q_len = a.ctx_len = a.seq_slot =
                static_cast<const int32_t *>(dummy);
            a.n_seqs = b;
            a.n_tokens = b;
            a.n_heads = a.n_kv_heads = 32;
            a.head_dim = 128;
            a.block_size = 16;
            a.max_blocks = 1;
            a.max_ctx_len = ctx;
            a.scale = 0.088f;
            a.workspace = dummy; // sized as if for 32 splits (never written: nothing launches)
            a.workspace_bytes = llmrt_cuda_attention_decode_workspace_bytes(b, 32, 128, 32);
            char err[256] = "";
            const int s = llmrt_cuda_attention_decode_num_splits(&a, err, sizeof err);
            printf("  ctx %-5d -> %2d split(s)", ctx, s);
            if (b == 1 && ctx == 4096) b1 = s;
            if (b == 32) b32_max = s > b32_max ? s : b32_max;
        }
        printf("\n");
    }
    check(b1 > 1, "batch 1, ctx 4096: 32 CTAs per split would leave SMs idle -> splits (%d)", b1);
    check(b32_max == 1, "batch 32: 1024 CTAs fill the machine -> 1 split at every context (max %d)",
          b32_max);
    // without a workspace only one split is possible
    llmrt_cuda_attn_args a;
    memset(&a, 0, sizeof a);
    a.q = a.k_cache = a.v_cache = dummy;
    a.out = dummy;
    a.block_tables = a.q_start = a.q_len = a.ctx_len = a.seq_slot =
        static_cast<const int32_t *>(dummy);
    a.n_seqs = a.n_tokens = 1;
    a.n_heads = a.n_kv_heads = 32;
    a.head_dim = 128;
    a.block_size = 16;
    a.max_blocks = 1;
    a.max_ctx_len = 4096;
    a.scale = 0.088f;
    char err[256] = "";
    const int s = llmrt_cuda_attention_decode_num_splits(&a, err, sizeof err);
    check(s == 1, "no workspace -> 1 split (%d)", s);
    cudaFree(dummy);
}

static void errors() {
    Problem pb;
    pb.Hq = 32;
    pb.Hkv = 1; // a GQA group of 32: over the decode kernel's 16 rows
    pb.hd = 64;
    pb.seqs = {{1, 40}};
    pb.build(7);
    pb.to_device();
    const llmrt_cuda_attn_args good = pb.args();
    auto expect = [&](const char *what, llmrt_cuda_attn_args a, int want, const char *text) {
        pb.reset_out();
        char err[256] = "";
        const int rc = llmrt_cuda_attention_decode(&a, nullptr, err, sizeof err);
        std::vector<uint16_t> o = pb.download_out();
        bool untouched = true;
        for (uint16_t x : o)
            untouched &= x == kSentinel;
        check(rc == want && strstr(err, text) && untouched, "error: %-24s rc %d, \"%s\"%s", what,
              rc, err, untouched ? "" : " (out WRITTEN)");
    };
    expect("GQA group 32", good, LLMRT_CUDA_ATTN_ESHAPE, "at most 16");
    llmrt_cuda_attn_args a = good;
    a.n_heads = 8;
    a.n_kv_heads = 2;
    a.head_dim = 96;
    expect("head_dim 96", a, LLMRT_CUDA_ATTN_ESHAPE, "head_dim 96 unsupported");
    a = good;
    a.n_heads = 8;
    a.n_kv_heads = 2;
    a.num_splits = 4; // no workspace
    expect("4 splits, no workspace", a, LLMRT_CUDA_ATTN_EWORKSPACE, "workspace is NULL");
    void *ws = nullptr;
    ATT_CHECK_CUDA(cudaMalloc(&ws, 4096));
    a.workspace = ws;
    a.workspace_bytes = llmrt_cuda_attention_decode_workspace_bytes(1, 8, 64, 4) - 1;
    expect("4 splits, workspace - 1", a, LLMRT_CUDA_ATTN_EWORKSPACE, "need");
    a.num_splits = -2;
    expect("num_splits -2", a, LLMRT_CUDA_ATTN_EARG, "num_splits -2");
    check(llmrt_cuda_attention_decode_workspace_bytes(0, 8, 64, 4) == 0 &&
              llmrt_cuda_attention_decode_workspace_bytes(2, 8, 64, 4) == 2u * 8 * 65 * 4 * 4,
          "workspace_bytes: 0 for max_seqs 0, 4 splits x 2 seqs x 8 heads x (64 + 1) floats");
    cudaFree(ws);
    pb.free_device();
}

// LLMRT_ATTN_BENCH=1 (GPU build only): Llama-2-7B decode (Hq = Hkv = 32, hd 128, block size 16)
// at context 4096, batch 1 and 32: the heuristic's split count against forced ones, and the
// prefill kernel on the same batch; bandwidth counts the K/V bytes of the context once.
static void bench() {
#ifndef CUSIM
    cudaDeviceProp prop;
    ATT_CHECK_CUDA(cudaGetDeviceProperties(&prop, 0));
    printf("---- bench on %s (%d SMs)\n", prop.name, prop.multiProcessorCount);
    const int batches[] = {1, 8, 32};
    for (int b : batches) {
        Problem pb;
        pb.Hq = pb.Hkv = 32;
        pb.hd = 128;
        pb.seqs.assign((size_t)b, Seq{1, 4095});
        pb.build(43, true);
        pb.to_device();
        llmrt_cuda_attn_args a = pb.args();
        const size_t ws_bytes = llmrt_cuda_attention_decode_workspace_bytes(b, 32, 128, 32);
        void *ws = nullptr;
        ATT_CHECK_CUDA(cudaMalloc(&ws, ws_bytes));
        a.workspace = ws;
        a.workspace_bytes = ws_bytes;
        char err[256] = "";
        const int heur = llmrt_cuda_attention_decode_num_splits(&a, err, sizeof err);
        const double bytes = 2.0 * b * 4096 * 32 * 128 * 2;
        const int forced[] = {0, 1, 2, 4, 8, 16, 32};
        for (int s : forced) {
            if (b > 8 && s > 4) continue;
            a.num_splits = s;
            pb.reset_out();
            const double ms =
                time_ms([&] { llmrt_cuda_attention_decode(&a, nullptr, err, sizeof err); }, 50);
            double worst = 0;
            const bool ok = spot_check(pb, 24, 9, &worst);
            printf("%-4s batch %-2d ctx 4096 decode  splits %-2d%-12s %8.1f us  %6.0f GB/s  (worst "
                   "err/bound %.2f)\n",
                   ok ? "ok" : "FAIL", b, s ? s : heur, s ? "" : " (heuristic)", ms * 1e3,
                   bytes / (ms * 1e-3) / 1e9, worst);
            if (!ok) g_failures++;
        }
        pb.reset_out();
        const double ms =
            time_ms([&] { llmrt_cuda_attention_prefill(&a, nullptr, err, sizeof err); }, 20);
        double worst = 0;
        const bool ok = spot_check(pb, 24, 9, &worst);
        printf("%-4s batch %-2d ctx 4096 prefill kernel on the decode batch %8.1f us  %6.0f GB/s\n",
               ok ? "ok" : "FAIL", b, ms * 1e3, bytes / (ms * 1e-3) / 1e9);
        if (!ok) g_failures++;
        cudaFree(ws);
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
        // name              Hq Hkv  hd  bs dtype  ctx of each sequence         forced splits
        {"GQA 4 mixed contexts", 8, 2, 128, 16, F16, {1, 16, 17, 300, 64, 129}, {1, 3, 7}},
        {"GQA 8 hd 64 bs 32", 8, 1, 64, 32, F16, {320, 15}, {1, 2, 5}},
        {"MHA long single", 2, 2, 128, 16, F16, {318}, {1, 4, 9}},  // 9 splits > 5 tiles
        {"GQA 3 (SmolLM2-like) bs 8", 9, 3, 64, 8, F16, {77, 200}, {1, 3}},
        {"bf16 GQA 4", 4, 1, 128, 32, BF16, {250, 33}, {1, 4}},
        {"one long sequence: heuristic splits", 4, 1, 64, 16, F16, {520}, {1}},
        // sliding windows (issue 16): splits over the window's tiles only, masks at its edge
        {"window 100 GQA 4", 8, 2, 128, 16, F16, {1, 50, 101, 300, 520}, {1, 2, 3}, 100},
        {"window 64 bf16 bs 32", 4, 1, 64, 32, BF16, {64, 65, 129, 250}, {1, 4}, 64},
        {"window 1", 2, 2, 64, 16, F16, {1, 2, 200}, {1, 2}, 1},
    };
    // clang-format on
    int i = 0;
    for (const Case &c : cases) {
        run_case(c, 2000 + i, i == 0 || i == 4);
        i++;
    }
    heuristic_table();
    errors();
    if (bench_env) bench();
    printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "PASSED", g_failures);
    return g_failures ? 1 : 0;
}
