// q4_matmul.cu: the launcher of the 4-bit matmul (q4_matmul.h): validates, picks the kernel
// (GEMV q4_gemv.cu for M <= 8, tensor-core GEMM q4_gemm.cu above), carves the workspace, and owns
// the act-order gather of x's columns (GEMM only: the GEMM needs the groups contiguous along K;
// the GEMV gathers while staging x). One launch per matmul without act-order: the GEMV's split-K
// partials are summed by the last CTA of each output tile (q4_common.cuh: arrive_last), the
// GEMM's splits add into one accumulator in turn (split_wait / split_release); no second kernel.
//
// Workspace (one caller-provided buffer, 256-byte aligned pieces; none at all when neither of
// the last two is needed):
//   counters int32 [kMaxSplitTiles] split-K tile counters: zero before the first call
//                                   (llmrt_cuda_q4_workspace_init) and after every call
//   partial  fp32 [splits, M, N]    when the GEMV splits K (splits > 1)
//            fp32 [M, N]            when the GEMM splits K (one accumulator, any split count)
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
    // GEMV: one fp32 partial per split, summed by the last CTA; GEMM: one fp32 accumulator that the
    // splits add into in turn (q4_gemm.cu)
    const uint64_t partial_sets = p.gemv ? (uint64_t)p.splits : 1;
    if (p.splits > 1) p.partial_bytes = align256(partial_sets * (uint64_t)M * (uint64_t)w->N * 4);
    // the counters head every non-empty workspace, so that no other piece ever overwrites them
    if (p.partial_bytes + p.xperm_bytes > 0) p.counter_bytes = align256(4 * (uint64_t)kMaxSplitTiles);
    p.total = p.counter_bytes + p.partial_bytes + p.xperm_bytes;
    return p;
}

// One weight of a GEMV launch with its plan; its partials at `partial`, its tile counters at
// `counters` (both used only when the plan splits K).
GemvWeight gemv_weight(const llmrt_cuda_q4_weight *w, const GemvPlan &plan, const float *bias,
                       void *out, float *partial, int *counters, int cta_begin) {
    GemvWeight d{};
    d.qweight = reinterpret_cast<const uint4 *>(w->qweight);
    d.scales = reinterpret_cast<const uint4 *>(w->scales);
    d.zoff = reinterpret_cast<const uint4 *>(w->zoff);
    d.perm = w->perm;
    d.bias = bias;
    d.out = out;
    d.N = (int)w->N;
    d.group_size = w->group_size;
    d.splits = plan.splits;
    d.tiles_per_cta = plan.tiles_per_cta;
    d.partial = plan.splits > 1 ? partial : nullptr;
    d.tile_counters = plan.splits > 1 ? counters : nullptr;
    d.cta_begin = cta_begin;
    return d;
}

// The grouped GEMV (llmrt_cuda_q4_matmul_fused): each weight's plan as if it ran alone, and the
// workspace: the counter head (when any weight splits K), then each splitting weight's partials
// [splits, M, N_i]; its tile counters are the next N_i/64 of the head.
struct GroupPlan {
    GemvPlan gv[kMaxGroup];
    uint64_t partial_at[kMaxGroup]; // byte offset in the workspace
    int counter_at[kMaxGroup];      // first tile counter
    int counters;                   // tile counters used (<= kMaxSplitTiles to launch)
    size_t smem;                    // the largest plan's
    uint64_t total;                 // workspace bytes
};

GroupPlan make_group_plan(int64_t M, int n_w, const llmrt_cuda_q4_weight *const *w) {
    GroupPlan g{};
    const int sms = sm_count();
    uint64_t partials = 0;
    for (int i = 0; i < n_w; i++) {
        g.gv[i] = gemv_plan((int)M, (int)w[i]->N, (int)w[i]->K, w[i]->group_size, sms);
        if (g.gv[i].smem > g.smem) g.smem = g.gv[i].smem;
        if (g.gv[i].splits < 2) continue;
        g.partial_at[i] = partials;
        partials += align256((uint64_t)g.gv[i].splits * (uint64_t)M * (uint64_t)w[i]->N * 4);
        g.counter_at[i] = g.counters;
        g.counters += (int)(w[i]->N / kBlockN);
    }
    const uint64_t head = partials > 0 ? align256(4 * (uint64_t)kMaxSplitTiles) : 0;
    for (int i = 0; i < n_w; i++) g.partial_at[i] += head;
    g.total = head + partials;
    return g;
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
        q4::GemvArgs a{};
        a.w[0] = q4::mm::gemv_weight(w, plan.gv, bias, out, p.partial, p.tile_counters, 0);
        a.n_w = 1;
        a.x = p.x;
        a.ldx = p.ldx;
        a.M = p.M;
        a.K = p.K;
        a.out_f32 = p.out_f32;
        a.input = LLMRT_CUDA_FUSED_IN_ACT;
        rc = q4::gemv_launch(a, plan.gv.mr, plan.gv.smem, w->zero_float, st);
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

// The weights a grouped launch takes (q4_matmul.h: 1..3, the same K, x width and zero kind, shapes
// the kernels take); false for anything else.
static bool group_ok(int32_t n_w, const llmrt_cuda_q4_weight *const *w) {
    if (n_w < 1 || n_w > LLMRT_CUDA_FUSED_MAX_W) return false;
    for (int32_t i = 0; i < n_w; i++) {
        if (!w[i] || llmrt_cuda_q4_check(w[i]->N, w[i]->K, w[i]->group_size, nullptr, 0) != 0 ||
            w[i]->K != w[0]->K || w[i]->zero_float != w[0]->zero_float ||
            (w[i]->x_cols ? w[i]->x_cols : w[i]->K) != (w[0]->x_cols ? w[0]->x_cols : w[0]->K) ||
            ((w[i]->x_cols && w[i]->x_cols != w[i]->K) && !w[i]->perm))
            return false;
    }
    return true;
}

extern "C" int llmrt_cuda_q4_fused_check(int64_t M, int32_t n_w,
                                         const llmrt_cuda_q4_weight *const *w) {
    if (M < 1 || M > LLMRT_CUDA_Q4_GEMV_MAX_M || !w || !group_ok(n_w, w)) return 1;
    // (the counters of the splitting weights: < 4 * SMs column blocks each, so this holds for
    // any GPU of fewer than 341 SMs)
    return q4::mm::make_group_plan(M, n_w, w).counters > q4::kMaxSplitTiles;
}

extern "C" uint64_t llmrt_cuda_q4_fused_workspace_bytes(int64_t M, int32_t n_w,
                                                        const llmrt_cuda_q4_weight *const *w) {
    if (llmrt_cuda_q4_fused_check(M, n_w, w) != 0) return 0;
    return q4::mm::make_group_plan(M, n_w, w).total;
}

extern "C" int llmrt_cuda_q4_matmul_fused(void *stream, int64_t M, const llmrt_cuda_q4_fused *f,
                                          void *ws, uint64_t ws_bytes) {
    if (!f || llmrt_cuda_q4_fused_check(M, f->n_w, f->w) != 0 || (f->residual && f->n_w != 1) ||
        (f->input != LLMRT_CUDA_FUSED_IN_ACT && f->input != LLMRT_CUDA_FUSED_IN_RMSNORM &&
         f->input != LLMRT_CUDA_FUSED_IN_SWIGLU) ||
        (f->input == LLMRT_CUDA_FUSED_IN_RMSNORM && (!f->resid_x || !f->norm_w)) ||
        (f->input != LLMRT_CUDA_FUSED_IN_RMSNORM && !f->x) ||
        (f->input == LLMRT_CUDA_FUSED_IN_SWIGLU && !f->up))
        return (int)cudaErrorInvalidValue;
    for (int32_t i = 0; i < f->n_w; i++)
        if (!f->residual && !f->out[i]) return (int)cudaErrorInvalidValue;
    const q4::mm::GroupPlan g = q4::mm::make_group_plan(M, f->n_w, f->w);
    if (g.total > ws_bytes || (g.total > 0 && !ws)) return (int)cudaErrorInvalidValue;
    q4::GemvArgs a{};
    int cta = 0;
    for (int32_t i = 0; i < f->n_w; i++) {
        float *partial = reinterpret_cast<float *>(static_cast<char *>(ws) + g.partial_at[i]);
        int *counters = static_cast<int *>(ws) + g.counter_at[i];
        a.w[i] = q4::mm::gemv_weight(f->w[i], g.gv[i], f->bias[i], f->out[i], partial, counters, cta);
        cta += (int)(f->w[i]->N / q4::kBlockN) * g.gv[i].splits;
    }
    a.n_w = f->n_w;
    a.x = static_cast<const __half *>(f->x);
    a.ldx = (int)(f->w[0]->x_cols ? f->w[0]->x_cols : f->w[0]->K);
    a.M = (int)M;
    a.K = (int)f->w[0]->K;
    a.input = f->input;
    a.resid_x = f->resid_x;
    a.norm_w = f->norm_w;
    a.eps = f->eps;
    a.up = static_cast<const __half *>(f->up);
    a.residual = f->residual;
    return q4::gemv_launch(a, g.gv[0].mr, g.smem, f->w[0]->zero_float,
                           static_cast<cudaStream_t>(stream));
}

extern "C" int llmrt_cuda_q4_workspace_init(void *stream, void *ws, uint64_t ws_bytes) {
    if (!ws || ws_bytes == 0) return 0; // nothing to zero: calls that need counters need a workspace
    const uint64_t n = ws_bytes < q4::mm::align256(4 * (uint64_t)q4::kMaxSplitTiles)
                           ? ws_bytes
                           : q4::mm::align256(4 * (uint64_t)q4::kMaxSplitTiles);
    return (int)cudaMemsetAsync(ws, 0, n, static_cast<cudaStream_t>(stream));
}
