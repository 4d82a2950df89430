/* q4_matmul.h: the CUDA 4-bit (GPTQ / GGUF Q4) dequant-matmul: the host repack into the kernels'
 * layout (q4_repack.cu), the launcher that picks a kernel (q4_matmul.cu: GEMV q4_gemv.cu for
 * M <= 8 rows, tensor-core GEMM q4_gemm.cu above) and its workspace. Plain C: no CUDA types.
 *
 * Source format (the loader's internal 4-bit format, host/model/q4.h, restated here because cuda/
 * does not include host headers): W [N, K], out = x · Wᵀ. Per (row n, group g of group_size
 * columns) one fp16 scale s and a zero term: integer zero z in 0..16 (w = s·(q − z)) or an fp16
 * offset m (w = s·q + m). Act-order: stored column j is original column perm[j]; the launcher
 * reads x[:, perm[j]] for stored column j.
 *
 * Kernel layout (made by llmrt_cuda_q4_repack, one device buffer per weight):
 *   qweight  uint32 [K/16, N/64, 32 lanes, 4]: for k16 tile kt and 64-column block nb, lane l
 *            (g = l/4, t = l%4) holds in word j (0..3) the mma.m16n8k16 B fragments of columns
 *            c0 = nb·64 + 16j + g and c1 = c0 + 8 at rows k = 16kt + {2t, 2t+1, 2t+8, 2t+9}:
 *            elements e0..e3 (c0) and e4..e7 (c1) stored in nibbles 0..7 as
 *            e0 e2 e4 e6 e1 e3 e5 e7 (LSB first), so (q & 0x000f000f) | 0x64006400 is the half2
 *            1024 + (e0, e1) and (q & 0x00f000f0) | 0x64006400 is 1024 + 16·(e2, e3) (the fp16
 *            magic-number dequant; q >> 8 gives c1's). One 16-byte load per lane per (kt, nb).
 *   scales   fp16 [G, N/64, 8, 8]: entry (g', nb, g, i) is the scale of column nb·64 + g + 8i
 *            for group g': lane g's 8 columns are one 16-byte load.
 *   zoff     fp16 [G, N/64, 8, 8], same order: the zero z as fp16 (integer kind) or the offset m.
 *   perm     int32 [K] or absent.
 * Shapes taken: N % 64 == 0, K % 64 == 0, group_size 32 or a multiple of 64 dividing K,
 * N <= 262144, K < 2^31. Anything else: llmrt_cuda_q4_check returns non-zero with a message and the
 * caller keeps its dequantised fp16 path.
 *
 * Launchers follow llmrt_cuda.h: asynchronous on `stream`, allocate nothing, never synchronise;
 * they return a cudaError_t as int (0 = success, cudaErrorInvalidValue (1) = a shape, dtype or
 * workspace the launcher does not take: nothing launched). */
#ifndef LLMRT_CUDA_Q4_MATMUL_H
#define LLMRT_CUDA_Q4_MATMUL_H

#include <stddef.h>
#include <stdint.h>

#include "fused_gemv.h"
#include "llmrt_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The host source of a repack (the fields of host/model/q4.h's llmrt_q4_host). */
typedef struct llmrt_cuda_q4_src {
    int64_t         rows;       /* N */
    int64_t         cols;       /* K */
    int32_t         group_size; /* columns per group (K for one group) */
    int32_t         zero_float; /* 0: w = s·(q − z); 1: w = s·q + m */
    const uint8_t  *qs;         /* [N, K/2] column 2c in the low nibble of byte c */
    const uint16_t *scales;     /* [N, G] fp16 bits */
    const uint8_t  *zeros;      /* [N, G] 0..16 (zero_float 0), else NULL */
    const uint16_t *offsets;    /* [N, G] fp16 bits (zero_float 1), else NULL */
    const int32_t  *perm;       /* [K] or NULL */
} llmrt_cuda_q4_src;

/* A repacked weight in device memory (pointers into one allocation, see the layout above). */
typedef struct llmrt_cuda_q4_weight {
    const uint32_t *qweight;    /* [K/16, N/64, 32, 4] */
    const uint16_t *scales;     /* [G, N/64, 8, 8] fp16 */
    const uint16_t *zoff;       /* [G, N/64, 8, 8] fp16 */
    const int32_t  *perm;       /* [K] or NULL; -1 entries: padding columns reading x = 0 */
    int64_t         N, K;
    int64_t         x_cols;     /* row stride (width) of x: 0 = K; less for a padded TP slice */
    int32_t         group_size;
    int32_t         zero_float;
} llmrt_cuda_q4_weight;

/* 0 when the kernels take this shape, else non-zero with a message naming it in msg (cap). */
int llmrt_cuda_q4_check(int64_t N, int64_t K, int32_t group_size, char *msg, size_t cap);

/* Byte sizes of the repacked arrays (each a multiple of 16). */
typedef struct llmrt_cuda_q4_sizes {
    uint64_t qweight, scales, zoff, perm, total; /* total: all four, back to back */
} llmrt_cuda_q4_sizes;
llmrt_cuda_q4_sizes llmrt_cuda_q4_packed_sizes(int64_t N, int64_t K, int32_t group_size,
                                               int has_perm);

/* Repacks `src` (a shape llmrt_cuda_q4_check accepts) into host memory `dst` of
 * llmrt_cuda_q4_packed_sizes(...).total bytes: qweight, scales, zoff, perm back to back. */
void llmrt_cuda_q4_repack(const llmrt_cuda_q4_src *src, void *dst);

/* The weight view of a repacked buffer `dev` (device memory holding what repack wrote). */
llmrt_cuda_q4_weight llmrt_cuda_q4_view(const void *dev, int64_t N, int64_t K, int32_t group_size,
                                        int zero_float, int has_perm);

/* Workspace bytes llmrt_cuda_q4_matmul needs for M rows of x and this weight on the current
 * device (split-K tile counters and partials, the act-order gather of x); 0 when it needs none.
 * A workspace is zeroed once by llmrt_cuda_q4_workspace_init after it is allocated; the calls
 * leave its counters at zero, so it serves any number of calls (of any shape) after that, as long
 * as they run one after another (one stream). */
uint64_t llmrt_cuda_q4_workspace_bytes(int64_t M, const llmrt_cuda_q4_weight *w);

/* Zeroes the head of a new workspace (the split-K tile counters) on `stream`: once, after
 * allocating it, before its first llmrt_cuda_q4_matmul. Returns a cudaError_t as int. */
int llmrt_cuda_q4_workspace_init(void *stream, void *ws, uint64_t ws_bytes);

/* Kernel choice (for tests and benchmarks; the backend passes AUTO). */
typedef enum llmrt_cuda_q4_path {
    LLMRT_CUDA_Q4_AUTO = 0, /* GEMV for M <= LLMRT_CUDA_Q4_GEMV_MAX_M, else the GEMM */
    LLMRT_CUDA_Q4_GEMV = 1, /* M <= 8 only */
    LLMRT_CUDA_Q4_GEMM = 2,
} llmrt_cuda_q4_path;
#define LLMRT_CUDA_Q4_GEMV_MAX_M 8

/* out[M, N] (out_t F16 or F32) = x[M, K] (fp16, original column order) · Wᵀ (+ bias[N] fp32 when
 * not NULL), fp32 accumulation; 1 <= M <= 65535. ws: workspace of at least llmrt_cuda_q4_workspace_bytes(M, w)
 * bytes (NULL when that is 0), 256-byte aligned, initialised by llmrt_cuda_q4_workspace_init.
 * One kernel launch (two with act-order on the GEMM path: the gather of x's columns). */
int llmrt_cuda_q4_matmul(void *stream, void *out, llmrt_cuda_dtype out_t, const void *x,
                         int64_t M, const llmrt_cuda_q4_weight *w, const float *bias, void *ws,
                         uint64_t ws_bytes, llmrt_cuda_q4_path path);

/* The fused decode form (the CUDA backend's matmul_fused, cuda/fused_gemv.h for the semantics):
 * the GEMV of n_w weights of one input (q, k, v; gate, up) in one launch, with that input made
 * while it is staged and, for one weight, its output added to the residual. */
typedef struct llmrt_cuda_q4_fused {
    int32_t      input;    /* llmrt_cuda_fused_input: ACT (x), RMSNORM, SWIGLU (x is the gate) */
    const void  *x;        /* ACT, SWIGLU: fp16 [M, x width] (RMSNORM: unused)                 */
    const float *resid_x;  /* RMSNORM: fp32 [M, x width] residual                              */
    const float *norm_w;   /* RMSNORM: fp32 [x width]                                          */
    float        eps;      /* RMSNORM                                                          */
    const void  *up;       /* SWIGLU: fp16 [M, x width]                                        */
    float       *residual; /* NULL, or (n_w 1) fp32 [M, N_0] += the fp16-rounded result        */
    int32_t      n_w;      /* 1..LLMRT_CUDA_FUSED_MAX_W weights: the same K, x width, zero kind */
    const llmrt_cuda_q4_weight *w[LLMRT_CUDA_FUSED_MAX_W];
    const float *bias[LLMRT_CUDA_FUSED_MAX_W]; /* [N_i] fp32 or NULL                           */
    void        *out[LLMRT_CUDA_FUSED_MAX_W];  /* fp16 [M, N_i] (unused with a residual)        */
} llmrt_cuda_q4_fused;

/* 0 when llmrt_cuda_q4_matmul_fused takes these n_w weights in one launch for M rows: 1 <= M <=
 * LLMRT_CUDA_Q4_GEMV_MAX_M, 1 <= n_w <= LLMRT_CUDA_FUSED_MAX_W, shapes llmrt_cuda_q4_check takes,
 * the same K, x width and zero kind, and their split-K tile counters within the workspace head
 * (4096 64-column blocks of the weights that split K, in all); non-zero otherwise. */
int llmrt_cuda_q4_fused_check(int64_t M, int32_t n_w, const llmrt_cuda_q4_weight *const *w);

/* Workspace bytes llmrt_cuda_q4_matmul_fused needs for M rows and these n_w weights (at most
 * the sum of their llmrt_cuda_q4_workspace_bytes_path(M, w[i], GEMV): each weight keeps its own
 * split-K partials; one counter head), 0 when it needs none or refuses them. Initialised as
 * llmrt_cuda_q4_workspace_init says. */
uint64_t llmrt_cuda_q4_fused_workspace_bytes(int64_t M, int32_t n_w,
                                             const llmrt_cuda_q4_weight *const *w);

/* llmrt_cuda_q4_matmul on the GEMV path (1 <= M <= LLMRT_CUDA_Q4_GEMV_MAX_M, fp16 out) for each
 * of f's weights with f's prologue: in = x | round_f16(norm_w * x / rms(x)) | round_f16(silu(gate)
 * * up), the values of the unfused rmsnorm / swiglu kernels; out_i = in · W_iᵀ (+ bias_i) rounded
 * to fp16, or residual += that value. Each weight keeps its own kernel plan and summation order,
 * so out_i has the bits of the plain call on W_i. One launch for all of them (padded slices,
 * x_cols < K with perm -1 columns, included). cudaErrorInvalidValue and nothing launched for
 * weights llmrt_cuda_q4_fused_check refuses (run them one per call then) or bad arguments. */
int llmrt_cuda_q4_matmul_fused(void *stream, int64_t M, const llmrt_cuda_q4_fused *f, void *ws,
                               uint64_t ws_bytes);

/* The same workspace size for a forced path. */
uint64_t llmrt_cuda_q4_workspace_bytes_path(int64_t M, const llmrt_cuda_q4_weight *w,
                                            llmrt_cuda_q4_path path);

#ifdef __cplusplus
}
#endif

#endif
