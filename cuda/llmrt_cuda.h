/* llmrt_cuda.h: the plain-C interface of the CUDA backend's kernels and device layer, called by
 * the C glue in host/backend/cuda/ (which never includes a CUDA header). Implemented in
 * cuda/device.cu (device, memory, streams, errors, cuBLAS GEMM) and one .cu file per op
 * (embed, rmsnorm, rope_kv, swiglu, elementwise, attention_naive).
 *
 * Conventions
 *  - Shapes are [rows, cols], row-major; T = tokens of the batch, D = hidden size, F = FFN size,
 *    Hq / Hkv = query / KV heads, hd = head dim. Every pointer argument is device memory.
 *  - Streams are `void *` (a cudaStream_t; NULL = the legacy default stream).
 *  - Kernel launchers enqueue asynchronously, allocate nothing and never synchronise (so a decode
 *    step can be captured into a CUDA graph). They return a cudaError_t as int: 0 on success,
 *    cudaErrorInvalidValue (1) for a dtype combination or shape the launcher does not
 *    instantiate (nothing launched), or the launch's error. Pass it to llmrt_cuda_check().
 *  - Dispatch is closed: each launcher lists the dtype combinations it instantiates. */
#ifndef LLMRT_CUDA_H
#define LLMRT_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum llmrt_cuda_dtype {
    LLMRT_CUDA_F32  = 0,
    LLMRT_CUDA_F16  = 1,
    LLMRT_CUDA_BF16 = 2,
} llmrt_cuda_dtype;

/* Storage of a KV pool: the activation dtype (caches [n_slots, Hkv*hd] of that type), or 8-bit
 * codes with an fp32 scale per (token, kv head) in the block layout of cuda/kv8.cuh (the same as
 * host/format/kv_quant.h). */
typedef enum llmrt_cuda_kv {
    LLMRT_CUDA_KV_ACT  = 0,
    LLMRT_CUDA_KV_INT8 = 1,
    LLMRT_CUDA_KV_FP8  = 2, /* e4m3 */
} llmrt_cuda_kv;

typedef enum llmrt_cuda_status {
    LLMRT_CUDA_OK            = 0,
    LLMRT_CUDA_ERR_NO_DEVICE = 1, /* no device, no driver, or device index out of range        */
    LLMRT_CUDA_ERR_OOM       = 2, /* an allocation did not fit (the CUDA error was cleared)      */
    LLMRT_CUDA_ERR_INVALID   = 3, /* an argument, shape or dtype no kernel takes (non-sticky)    */
    LLMRT_CUDA_ERR_FAILED    = 4, /* another non-sticky CUDA / cuBLAS failure                    */
    LLMRT_CUDA_ERR_STICKY    = 5, /* a sticky fault (illegal address, launch failure, ...): the
                                     context is unusable until the process restarts             */
} llmrt_cuda_status;

/* ------------------------------------------------------------------------------------------ */
/* device layer (device.cu)                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct llmrt_cuda_dev llmrt_cuda_dev;

/* Selects `device`, creates a non-blocking stream and a cuBLAS handle bound to it. On failure
 * *out is NULL and msg (cap bytes) says why. */
llmrt_cuda_status llmrt_cuda_dev_create(int device, llmrt_cuda_dev **out, char *msg, size_t cap);
/* Never fails, never hangs (errors of a dead context are ignored). NULL is a no-op. */
void        llmrt_cuda_dev_destroy(llmrt_cuda_dev *d);
/* Message of the last failure of a call on `d` ("cudaMalloc: out of memory (...)"). */
const char *llmrt_cuda_dev_message(const llmrt_cuda_dev *d);
const char *llmrt_cuda_dev_name(const llmrt_cuda_dev *d); /* "NVIDIA H100 80GB HBM3" */
void       *llmrt_cuda_dev_stream(const llmrt_cuda_dev *d);
/* Number of devices (0 when none or no driver). */
int         llmrt_cuda_device_count(void);

/* Classifies a launcher's return value (a cudaError_t) for the op `what`; a sticky error is
 * recognised also when the launch itself reported something else. */
llmrt_cuda_status llmrt_cuda_check(llmrt_cuda_dev *d, int cuda_error, const char *what);

/* Classifies the thread's pending CUDA error (cudaGetLastError) after a call that failed with
 * the message `what`; LLMRT_CUDA_ERR_FAILED when no CUDA error is pending. */
llmrt_cuda_status llmrt_cuda_check_last(llmrt_cuda_dev *d, const char *what);

/* Free and total device memory (cudaMemGetInfo). */
llmrt_cuda_status llmrt_cuda_mem_info(llmrt_cuda_dev *d, uint64_t *free_bytes, uint64_t *total);
/* Device memory. Checks cudaMemGetInfo first: a request larger than the free memory fails with
 * LLMRT_CUDA_ERR_OOM (message: requested / free / total) without calling cudaMalloc. The
 * memory is not zeroed. */
llmrt_cuda_status llmrt_cuda_malloc(llmrt_cuda_dev *d, void **p, uint64_t bytes);
void              llmrt_cuda_free(llmrt_cuda_dev *d, void *p);
/* Page-locked host memory (staging of per-batch uploads). */
llmrt_cuda_status llmrt_cuda_host_alloc(llmrt_cuda_dev *d, void **p, uint64_t bytes);
void              llmrt_cuda_host_free(llmrt_cuda_dev *d, void *p);
/* Host -> device copy on the device's stream; `sync` waits for it (needed when `src` is reused
 * or freed right after). */
llmrt_cuda_status llmrt_cuda_upload(llmrt_cuda_dev *d, void *dst, const void *src, uint64_t bytes,
                                    int sync);
/* Device -> host copy on the device's stream, then waits for the stream. */
llmrt_cuda_status llmrt_cuda_download(llmrt_cuda_dev *d, void *dst, const void *src,
                                      uint64_t bytes);
/* Waits for everything enqueued on the device's stream. */
llmrt_cuda_status llmrt_cuda_sync(llmrt_cuda_dev *d);

/* out[rows, N] = x[rows, K] · Wᵀ with W [N, K] (row-major), on the device's stream through
 * cublasGemmEx: fp32 accumulation (CUBLAS_COMPUTE_32F). x and W have dtype `in` (F16, BF16 or
 * F32); out has dtype `out_t` (`in`, or F32 for fp32 logits). */
llmrt_cuda_status llmrt_cuda_gemm(llmrt_cuda_dev *d, void *out, llmrt_cuda_dtype out_t,
                                  const void *x, const void *w, llmrt_cuda_dtype in, int64_t rows,
                                  int64_t N, int64_t K);

/* CUDA graphs of the device's stream (the backend's decode steps). capture_begin starts a
 * thread-local stream capture: the launchers, GEMMs and async copies enqueued on the stream until
 * capture_end are recorded, not run; a synchronisation or allocation by this thread meanwhile
 * invalidates the capture, and capture_end then fails (LLMRT_CUDA_ERR_FAILED, message set).
 * capture_end instantiates the graph: *graph (a cudaGraphExec_t) and its node count. A launch
 * replays the nodes with the kernel arguments of the capture and the memory of the replay. */
llmrt_cuda_status llmrt_cuda_capture_begin(llmrt_cuda_dev *d);
llmrt_cuda_status llmrt_cuda_capture_end(llmrt_cuda_dev *d, void **graph, int64_t *n_nodes);
llmrt_cuda_status llmrt_cuda_graph_launch(llmrt_cuda_dev *d, void *graph);
void              llmrt_cuda_graph_destroy(llmrt_cuda_dev *d, void *graph); /* NULL: no-op */

/* Test hook: launches a kernel that writes through an address no allocation owns (a real
 * out-of-bounds access) and waits for it: returns LLMRT_CUDA_ERR_STICKY (the context is dead). */
llmrt_cuda_status llmrt_cuda_inject_fault(llmrt_cuda_dev *d);

/* ------------------------------------------------------------------------------------------ */
/* kernels: one op per file                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* embed.cu: out[T, D] (out_t: F32, F16 or BF16) = table[tokens[t], :] (table_t: F32, F16 or
 * BF16, [V, D]); tokens[T] are trusted to lie in [0, V). */
int llmrt_cuda_embed(void *stream, void *out, llmrt_cuda_dtype out_t, const void *table,
                     llmrt_cuda_dtype table_t, const int32_t *tokens, int32_t n_tokens, int64_t D);

/* rmsnorm.cu: per row t < T: x[t] += delta[t] (when delta != NULL), then
 * out[t, i] = w[i] * (x[t, i] / sqrt(mean(x[t]²) + eps)). The residual x is fp32 [T, D];
 * delta [T, D] has dtype delta_t (F32, F16, BF16); out [T, D] has dtype out_t (F32, F16, BF16);
 * w is fp32 [D]. fp32 math, one block per row, fixed reduction order. */
int llmrt_cuda_add_rmsnorm(void *stream, void *out, llmrt_cuda_dtype out_t, float *x,
                           const void *delta, llmrt_cuda_dtype delta_t, const float *w,
                           int32_t n_tokens, int64_t D, float eps);

/* elementwise.cu: x[n] += delta[n] (x fp32; delta F32, F16 or BF16). */
int llmrt_cuda_add(void *stream, float *x, const void *delta, llmrt_cuda_dtype delta_t, int64_t n);
/* elementwise.cu: out[n_rows, D] = x[rows[i], :] (dtype t for both; rows[n_rows] trusted). */
int llmrt_cuda_gather_rows(void *stream, llmrt_cuda_dtype t, void *out, const void *x,
                           const int32_t *rows, int32_t n_rows, int64_t D);
/* elementwise.cu: out[n] = (out_t) in[n] (F32, F16, BF16 each way; round to nearest even). */
int llmrt_cuda_convert(void *stream, void *out, llmrt_cuda_dtype out_t, const void *in,
                       llmrt_cuda_dtype in_t, int64_t n);
/* elementwise.cu: out[rows, N] += bias[N] (out dtype t: F32, F16 or BF16; bias fp32). */
int llmrt_cuda_add_bias(void *stream, void *out, llmrt_cuda_dtype t, const float *bias,
                        int64_t rows, int64_t N);

/* rope_kv.cu: for each token t < T at position positions[t] writing KV slot slots[t]:
 * rotates q[t, Hq*hd] and k[t, Hkv*hd] in place (HF rotate-half: pairs (i, i + hd/2),
 * angle = (float)position * inv_freq[i] in fp32, cos/sin by sincosf), then writes the rotated
 * k and v[t, Hkv*hd] into k_cache / v_cache [n_slots, Hkv*hd] at row slots[t] (slots[t] < 0:
 * no cache write, the padding rows of a decode graph).
 * q, k, v and the caches have dtype t (F16, BF16 or F32); inv_freq fp32 [hd/2]; hd even. */
int llmrt_cuda_rope_kv(void *stream, llmrt_cuda_dtype t, void *q, void *k, const void *v,
                       void *k_cache, void *v_cache, const int32_t *positions,
                       const int64_t *slots, const float *inv_freq, int32_t n_tokens, int32_t Hq,
                       int32_t Hkv, int32_t hd);
/* rope_kv.cu: the same rotation, with the caches 8-bit pools (kv INT8 or FP8, block_size tokens
 * per block; cuda/kv8.cuh): each (token, kv head) of the rotated k and of v is quantised by its
 * absmax into codes and a scale. hd % 4 == 0 and hd <= 256. */
int llmrt_cuda_rope_kv8(void *stream, llmrt_cuda_dtype t, llmrt_cuda_kv kv, void *q, void *k,
                        const void *v, void *k_pool, void *v_pool, const int32_t *positions,
                        const int64_t *slots, const float *inv_freq, int32_t n_tokens,
                        int32_t Hq, int32_t Hkv, int32_t hd, int32_t block_size);

/* swiglu.cu: out[n] = silu(gate[n]) * up[n] = gate / (1 + exp(-gate)) * up, in fp32 (dtype t
 * for all three: F16, BF16 or F32); out may alias gate or up. */
int llmrt_cuda_swiglu(void *stream, llmrt_cuda_dtype t, void *out, const void *gate,
                      const void *up, int64_t n);

/* attention_naive.cu: the reference attention (one warp per (token, query head), an online
 * softmax over the paged context in position order): out[t, h, :] = softmax(scale · q[t, h, :]
 * · K[0..positions[t]]ᵀ) · V of sequence seq_of[t], whose block-table row is
 * block_tables[seq_of[t] * max_blocks ..]. q, out [T, Hq*hd]; caches [n_slots, Hkv*hd];
 * dtype t (F16, BF16, F32); hd <= 256, Hq a multiple of Hkv. Slow but simple: for head dims the
 * flash kernels (attention.h) do not instantiate, and as the kernels' test reference.
 * window > 0: a sliding window, token t sees positions (positions[t] - window, positions[t]]
 * only (the blocks below are never read). */
int llmrt_cuda_attention_naive(void *stream, llmrt_cuda_dtype t, void *out, const void *q,
                               const void *k_cache, const void *v_cache,
                               const int32_t *positions, const int32_t *seq_of,
                               const int32_t *block_tables, int32_t max_blocks, int32_t n_tokens,
                               int32_t Hq, int32_t Hkv, int32_t hd, int32_t block_size,
                               float scale, int32_t window);
/* attention_naive.cu: the same over 8-bit pools (kv INT8 or FP8, cuda/kv8.cuh; hd % 4 == 0),
 * each K/V value dequantised as scale * code in fp32 as it is read. */
int llmrt_cuda_attention_naive_kv8(void *stream, llmrt_cuda_dtype t, llmrt_cuda_kv kv, void *out,
                                   const void *q, const void *k_pool, const void *v_pool,
                                   const int32_t *positions, const int32_t *seq_of,
                                   const int32_t *block_tables, int32_t max_blocks,
                                   int32_t n_tokens, int32_t Hq, int32_t Hkv, int32_t hd,
                                   int32_t block_size, float scale, int32_t window);

#ifdef __cplusplus
}
#endif

#endif
