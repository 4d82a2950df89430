// q4_matmul.cu: the launcher of the 4-bit matmul (q4_matmul.h): validates, picks the kernel
// (GEMV q4_gemv.cu for M <= 8, tensor-core GEMM q4_gemm.cu above), carves the workspace, and owns
// the act-order gather of x's columns (GEMM only: the GEMM needs the groups contiguous along K;
// the GEMV gathers while staging x). One launch per matmul without act-order: split-K partials
// are summed by the last CTA of each output tile (q4_common.cuh: arrive_last), not by a second
// kernel.
//
// Workspace (one caller-provided buffer, 256-byte aligned pieces; none at all when neither of
// the last two is needed):
//   counters int32 [kMaxSplitTiles] split-K tile counters: zero before the first call
//                                   (llmrt_cuda_q4_workspace_init) and after every call
//   partial  fp32 [splits, M, N]    when the kernel splits K (splits > 1)
//   xperm    fp16 [M, K]            GEMM with act-order: x[:, perm]
// Determinism: for a given (M, N, K, device) the kernel, the splits and every summation order are
// fixed, so results are reproducible run to run. They are not batch invariant: a row's result
// depends on M (GEMV vs GEMM, and the split count), unlike the CPU backend.
#include "fused_gemv.h"
#include "q4_common.cuh"

namespace q4 {
namespace mm { // (named: the tests compile all q4 .cu files into one unit)

constexpr int kFinThreads = 256;

uint64_t align256(uint64_t x) {
    return (x + 255) / 256 * 256;
}

// xp[m, j] = x[m, perm[j]] (0 for a padding column, perm -1). Grid (K / 256, M).
__global__ void __launch_bounds__(kFinThreads)
    q4_gather_cols_kernel(const __half *__restrict__ x,     // [M, ldx]
                          const int32_t *__restrict__ perm, // [K]
                          __half *__restrict__ xp,          // [M, K]
                          int K, int ldx) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= K) return;
    const int src = perm[j];
    xp[(size_t)blockIdx.y * K + j] = src >= 0 ? x[(size_t)blockIdx.y * ldx + src] : __float2half(0.0f);
}

dim3 grid_for(int64_t cols, int64_t rows) {
    return dim3((unsigned)((cols + kFinThreads - 1) / kFinThreads), (unsigned)rows);
}

int sm_count() {
    int dev = 0, n = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1) {
        (void)cudaGetLastError();
        return 108; // an A100's count: only the split heuristics use it
    }
    return n;
}

// The kernel, plan and workspace layout of one call.
struct Plan {
    bool gemv;
    GemvPlan gv;
    GemmPlan gm;
    int splits;
    uint64_t counter_bytes, partial_bytes, xperm_bytes, total;
};

Plan make_plan(int64_t M, const llmrt_cuda_q4_weight *w, llmrt_cuda_q4_path path) {
    Plan p{};
    const int sms = sm_count();
    p.gemv = path == LLMRT_CUDA_Q4_GEMV || (path == LLMRT_CUDA_Q4_AUTO && M <= LLMRT_CUDA_Q4_GEMV_MAX_M);
    if (p.gemv) {
        p.gv = gemv_plan((int)M, (int)w->N, (int)w->K, w->group_size, sms);
        p.splits = p.gv.splits;
    } else {
        p.gm = gemm_plan((int)M, (int)w->N, (int)w->K, sms);
        p.splits = p.gm.splits;
        if (w->perm) p.xperm_bytes = align256((uint64_t)M * (uint64_t)w->K * 2);
    }
    if (p.splits > 1) p.partial_bytes = align256((uint64_t)p.splits * (uint64_t)M * (uint64_t)w->N * 4);
    // the counters head every non-empty workspace, so that no other piece ever overwrites them
    if (p.partial_bytes + p.xperm_bytes > 0) p.counter_bytes = align256(4 * (uint64_t)kMaxSplitTiles);
    p.total = p.counter_bytes + p.partial_bytes + p.xperm_bytes;
    return p;
}

} // namespace mm
} // namespace q4

extern "C" uint64_t llmrt_cuda_q4_workspace_bytes_path(int64_t M, const llmrt_cuda_q4_weight *w,
                                                       llmrt_cuda_q4_path path) {
    if (M < 1 || !w) return 0;
    return q4::mm::make_plan(M, w, path).total;
}

extern "C" uint64_t llmrt_cuda_q4_workspace_bytes(int64_t M, const llmrt_cuda_q4_weight *w) {
    return llmrt_cuda_q4_workspace_bytes_path(M, w, LLMRT_CUDA_Q4_AUTO);
}

extern "C" int llmrt_cuda_q4_matmul(void *stream, void *out, llmrt_cuda_dtype out_t, const void *x,
                                    int64_t M, const llmrt_cuda_q4_weight *w, const float *bias,
                                    void *ws, uint64_t ws_bytes, llmrt_cuda_q4_path path) {
    // M <= 65535: the helper kernels' grid y
    if (!w || !out || !x || M < 1 || M > 65535 || (out_t != LLMRT_CUDA_F16 && out_t != LLMRT_CUDA_F32) ||
        llmrt_cuda_q4_check(w->N, w->K, w->group_size, nullptr, 0) != 0 ||
        (path == LLMRT_CUDA_Q4_GEMV && M > LLMRT_CUDA_Q4_GEMV_MAX_M))
        return (int)cudaErrorInvalidValue;
    const q4::mm::Plan plan = q4::mm::make_plan(M, w, path);
    if (plan.total > ws_bytes || (plan.total > 0 && !ws)) return (int)cudaErrorInvalidValue;
    cudaStream_t st = static_cast<cudaStream_t>(stream);

    q4::Problem p{};
    p.x = static_cast<const __half *>(x);
    p.qweight = reinterpret_cast<const uint4 *>(w->qweight);
    p.scales = reinterpret_cast<const uint4 *>(w->scales);
    p.zoff = reinterpret_cast<const uint4 *>(w->zoff);
    p.bias = bias;
    p.out = out;
    p.out_f32 = out_t == LLMRT_CUDA_F32;
    p.M = (int)M;
    p.N = (int)w->N;
    p.K = (int)w->K;
    p.ldx = (int)(w->x_cols ? w->x_cols : w->K);
    p.group_size = w->group_size;
    p.zero_float = w->zero_float;
    p.splits = plan.splits;
    p.tile_counters = plan.splits > 1 ? static_cast<int *>(ws) : nullptr;
    p.partial = plan.splits > 1 ? reinterpret_cast<float *>(static_cast<char *>(ws) + plan.counter_bytes)
                                : nullptr;

    int rc;
    if (plan.gemv) {
        p.perm = w->perm;
        rc = q4::gemv_launch(p, plan.gv, st);
    } else {
        if (w->perm) {
            __half *xp = reinterpret_cast<__half *>(static_cast<char *>(ws) + plan.counter_bytes +
                                                    plan.partial_bytes);
            LAUNCH(q4::mm::q4_gather_cols_kernel, q4::mm::grid_for(w->K, M), q4::mm::kFinThreads, 0, st,
                   p.x, w->perm, xp, p.K, p.ldx);
            if ((rc = (int)cudaGetLastError()) != 0) return rc;
            p.x = xp;
        }
        rc = q4::gemm_launch(p, plan.gm, st);
    }
    return rc;
}

extern "C" int llmrt_cuda_q4_matmul_fused(void *stream, void *out, const void *x, int64_t M,
                                          const llmrt_cuda_q4_weight *w, const float *bias, void *ws,
                                          uint64_t ws_bytes, const llmrt_cuda_q4_fused *f) {
    if (!f || !w || M < 1 || M > LLMRT_CUDA_Q4_GEMV_MAX_M || (w->x_cols && w->x_cols != w->K) ||
        (!out && !f->residual) || (f->input != LLMRT_CUDA_FUSED_IN_ACT && f->input != LLMRT_CUDA_FUSED_IN_RMSNORM &&
                                   f->input != LLMRT_CUDA_FUSED_IN_SWIGLU) ||
        (f->input == LLMRT_CUDA_FUSED_IN_RMSNORM && (!f->resid_x || !f->norm_w)) ||
        (f->input != LLMRT_CUDA_FUSED_IN_RMSNORM && !x) || (f->input == LLMRT_CUDA_FUSED_IN_SWIGLU && !f->up) ||
        llmrt_cuda_q4_check(w->N, w->K, w->group_size, nullptr, 0) != 0)
        return (int)cudaErrorInvalidValue;
    const q4::mm::Plan plan = q4::mm::make_plan(M, w, LLMRT_CUDA_Q4_GEMV);
    if (plan.total > ws_bytes || (plan.total > 0 && !ws)) return (int)cudaErrorInvalidValue;
    q4::Problem p{};
    p.x = static_cast<const __half *>(x);
    p.perm = w->perm;
    p.qweight = reinterpret_cast<const uint4 *>(w->qweight);
    p.scales = reinterpret_cast<const uint4 *>(w->scales);
    p.zoff = reinterpret_cast<const uint4 *>(w->zoff);
    p.bias = bias;
    p.out = out;
    p.M = (int)M;
    p.N = (int)w->N;
    p.K = (int)w->K;
    p.ldx = (int)w->K;
    p.group_size = w->group_size;
    p.zero_float = w->zero_float;
    p.splits = plan.splits;
    p.tile_counters = plan.splits > 1 ? static_cast<int *>(ws) : nullptr;
    p.partial = plan.splits > 1 ? reinterpret_cast<float *>(static_cast<char *>(ws) + plan.counter_bytes)
                                : nullptr;
    p.input = f->input;
    p.resid_x = f->resid_x;
    p.norm_w = f->norm_w;
    p.eps = f->eps;
    p.up = static_cast<const __half *>(f->up);
    p.residual = f->residual;
    return q4::gemv_launch(p, plan.gv, static_cast<cudaStream_t>(stream));
}

extern "C" int llmrt_cuda_q4_workspace_init(void *stream, void *ws, uint64_t ws_bytes) {
    if (!ws || ws_bytes == 0) return 0; // nothing to zero: calls that need counters need a workspace
    const uint64_t n = ws_bytes < q4::mm::align256(4 * (uint64_t)q4::kMaxSplitTiles)
                           ? ws_bytes
                           : q4::mm::align256(4 * (uint64_t)q4::kMaxSplitTiles);
    return (int)cudaMemsetAsync(ws, 0, n, static_cast<cudaStream_t>(stream));
}
