/* The backend interface: a table of operations plus a context (the ggml-backend pattern).
 * The Llama forward (engine/llama_forward.c) is written once as calls into these operations;
 * each backend owns its memory and kernels. host/ never includes CUDA headers: a CUDA backend
 * implements this table in C glue over extern "C" launchers.
 *
 * Pointers named `act` are activations in backend memory, in the backend's activation type
 * (`act_bytes` per element: fp32 on the CPU). Shapes are given in comments as [rows, cols],
 * row-major; T = tokens in the batch, D = hidden size, hd = head dim. */
#ifndef LLMRT_BACKEND_H
#define LLMRT_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/error.h"
#include "../core/thread_pool.h" /* llmrt_task_fn */
#include "../format/dtype.h"
#include "../format/q4.h"

/* A weight matrix as the backend holds it: out = x · Wᵀ with W [rows = N, cols = K]. */
typedef struct llmrt_bweight {
    llmrt_dtype dtype;
    int64_t     rows; /* N: output features */
    int64_t     cols; /* K: input features (stored columns)  */
    int64_t     x_cols; /* width of the input x when it differs from cols (a padded 4-bit
                         * tensor-parallel slice, model/q4.h), else 0 */
    void       *data; /* backend memory (for the CPU backend, possibly the file mapping) */
    void       *aux;  /* backend-specific extra state (e.g. a repacked 4-bit layout), or NULL */
    void       *bias; /* backend fp32 [rows] added to every output row by matmul, or NULL. The
                       * loader allocates it (alloc + upload) and frees it; weight_free leaves it. */
} llmrt_bweight;

/* Per-forward batch description, copied into backend memory by begin_batch. */
typedef struct llmrt_batch_plan {
    int32_t        n_tokens;
    const int32_t *tokens;      /* [T] */
    const int32_t *positions;   /* [T] */
    const int32_t *seq_of;      /* [T] sequence index of each token */
    const int64_t *slots;       /* [T] KV slot = block_id * block_size + pos % block_size */
    int32_t        n_seqs;
    int32_t        max_blocks;  /* row stride of block_tables */
    const int32_t *block_tables;/* [n_seqs, max_blocks] */
    int32_t        n_outputs;
    const int32_t *output_rows; /* [n_outputs] token indices whose logits are wanted */
    /* LoRA (lora_apply): the adapter slot of each token, -1 = none, and the scale its request
     * asked for; both NULL when no token of the batch has an adapter */
    const int32_t *lora_slot;   /* [T] */
    const float   *lora_scale;  /* [T] */
    /* The forward runs no host work between this batch's ops (no collectives of a group), so a
     * backend may record them into a CUDA graph and run them at the logits op (the CUDA
     * backend's decode graphs; its activations then hold rows up to the padded batch size,
     * within the reservation) */
    bool           may_capture;
    /* What the ops' buffers belong to (the forward's KV cache and workspace): a graph recorded
     * under one key is never replayed under another; and the KV block size (slots' unit) */
    const void    *capture_key;
    int32_t        block_size;
} llmrt_batch_plan;

/* One projection's LoRA adapters, one per slot, as a backend holds them (lora_table_*): slot s
 * holds A_s [r_s, k] and B_s [n, r_s] (r_s = 0: empty). Defined by each backend. */
typedef struct llmrt_blora_table llmrt_blora_table;

/* Geometry of one layer's paged KV pool: K and V each [n_blocks, block_size, Hkv, hd] (an
 * 8-bit pool: [n_blocks, block_size] slot rows of format/kv_quant.h; the CPU backend's fp32 and
 * bf16 K: [n_blocks, Hkv, hd, block_size], backend/cpu/attention_cpu.h). A block is contiguous in
 * every layout, so blocks are copied whole. */
typedef struct llmrt_kv_geometry {
    int32_t n_layers;
    int32_t n_blocks;
    int32_t block_size;
    int32_t n_kv_heads;
    int32_t head_dim;
} llmrt_kv_geometry;

/* Attention shape for one forward. */
typedef struct llmrt_attn_shape {
    int32_t n_heads;
    int32_t n_kv_heads;
    int32_t head_dim;
    int32_t block_size; /* tokens per KV block */
    float   scale;      /* 1/sqrt(hd) */
    int32_t window;     /* sliding window W > 0: a token at position p attends to positions
                         * (p - W, p] only, and the table entries of blocks wholly below
                         * p - W + 1 may be -1 (freed: never read); 0: no window */
    llmrt_dtype kv_dtype; /* the KV pool's storage: INVALID (0) = the activation dtype; I8 or
                           * F8_E4M3 = 8-bit codes with a scale per (token, KV head)
                           * (format/kv_quant.h), when `supports` accepts it */
} llmrt_attn_shape;

/* Capability queries (`supports`): a backend declares what it can run, and callers ask before
 * committing to a path (the loader before uploading a weight, the CUDA backend's reserve before
 * choosing an attention kernel), instead of discovering it from a failing call. */
typedef enum llmrt_backend_op {
    /* matmul (and logits) with a weight stored as `dtype` [n, k] (LLMRT_DTYPE_Q4: the internal
     * 4-bit format of q4.h, as weight_upload_q4 would receive it, with group_size / has_perm;
     * other dtypes: as weight_upload would receive them) */
    LLMRT_BOP_MATMUL = 0,
    /* attention over the paged KV cache (any kernel) for head_dim / n_heads / n_kv_heads with
     * activations of `dtype` (the backend's act_dtype) and a pool stored as kv_dtype
     * (llmrt_attn_shape.kv_dtype: 0 = the activation dtype) */
    LLMRT_BOP_ATTENTION = 1,
    /* the fused flash-style attention kernels (tensor cores, online softmax) for that shape;
     * when false, LLMRT_BOP_ATTENTION's other kernel serves it (a declared path, not a
     * failure: see the CUDA backend) */
    LLMRT_BOP_FLASH_ATTENTION = 2,
} llmrt_backend_op;

typedef struct llmrt_op_query {
    llmrt_backend_op op;
    llmrt_dtype      dtype;
    /* LLMRT_BOP_MATMUL */
    int64_t n, k;        /* rows (output features), cols (stored input features) */
    int64_t group_size;  /* Q4: columns per scale group                         */
    bool    has_perm;    /* Q4, or a block type through weight_upload_permuted: an act-order
                          * column permutation */
    /* LLMRT_BOP_ATTENTION, LLMRT_BOP_FLASH_ATTENTION */
    int32_t head_dim, n_heads, n_kv_heads;
    llmrt_dtype kv_dtype; /* LLMRT_BOP_ATTENTION: the pool's storage (0 = the activation dtype) */
} llmrt_op_query;

/* A fused decode matmul (backend op matmul_fused): one or more projections of one input with the
 * op that makes the input and the residual add of the output folded in. in = x (ACT), rmsnorm(x)
 * * norm_w (RMSNORM: x the residual stream, resid_bytes per element, no pending delta), or
 * silu(x) * up (SWIGLU); then out[i] = in · W_iᵀ (+ bias) for i < n_w, or, with `residual`,
 * residual += in · W_0ᵀ (n_w 1). The values are those of the unfused ops (rmsnorm, swiglu,
 * matmul, add) the forward would run instead. */
typedef enum llmrt_fused_input {
    LLMRT_FUSED_IN_ACT     = 0,
    LLMRT_FUSED_IN_RMSNORM = 1,
    LLMRT_FUSED_IN_SWIGLU  = 2,
} llmrt_fused_input;

#define LLMRT_FUSED_MAX_W 3

typedef struct llmrt_fused_matmul {
    llmrt_fused_input    input;
    const void          *x;        /* [rows, K]: activations, the residual, or the gate      */
    const void          *up;       /* SWIGLU: [rows, K]                                      */
    const void          *norm_w;   /* RMSNORM: fp32 [K] (backend memory, as for rmsnorm)     */
    float                eps;      /* RMSNORM                                                */
    int32_t              n_w;      /* 1..LLMRT_FUSED_MAX_W weights with the same K            */
    const llmrt_bweight *w[LLMRT_FUSED_MAX_W];
    void                *out[LLMRT_FUSED_MAX_W]; /* [rows, w[i]->rows] activations            */
    void                *residual; /* NULL, or the residual [rows, w[0]->rows] (out unused)  */
} llmrt_fused_matmul;

typedef struct llmrt_backend llmrt_backend;

typedef struct llmrt_backend_ops {
    void (*destroy)(llmrt_backend *be);

    /* -- memory -- */
    llmrt_status (*alloc)(llmrt_backend *be, uint64_t bytes, void **out, llmrt_error *err);
    void (*free)(llmrt_backend *be, void *ptr);
    /* Makes a host weight (dtype F32/F16/BF16, or another dtype supports_weight accepts: the CPU
     * reads GGUF Q8_0 blocks too; [rows, cols]) usable by matmul. `host` stays valid for the
     * model's lifetime, so a backend may keep pointing at it. */
    llmrt_status (*weight_upload)(llmrt_backend *be, llmrt_dtype dtype, int64_t rows,
                                  int64_t cols, const void *host, llmrt_bweight *out,
                                  llmrt_error *err);
    /* Makes a 4-bit weight (the internal format, model/q4.h) usable by matmul, repacked into
     * the backend's kernel layout (dtype LLMRT_DTYPE_Q4). `host` need not outlive the call.
     * A padded tensor-parallel slice (host->x_cols < cols; q4.h) reads x [T, x_cols] and 0 for
     * perm -1 columns. The loader calls it only for weights `supports` accepts (LLMRT_BOP_MATMUL,
     * LLMRT_DTYPE_Q4). (optional: NULL when the backend has no 4-bit kernels; its `supports`
     * then declines every Q4 matmul.) */
    llmrt_status (*weight_upload_q4)(llmrt_backend *be, const llmrt_q4_host *host,
                                     llmrt_bweight *out, llmrt_error *err);
    /* Makes a block-quantised weight stored in act-order usable by matmul: as weight_upload for
     * `dtype` (a block type `supports` accepts with has_perm), plus perm int32 [cols] in host
     * memory (copied; need not outlive the call): stored column j holds input column perm[j],
     * so matmul reads x[:, perm[j]] for stored column j. GPTQ-8 act-order (model/gptq8.h) loads
     * this way as Q8_Z. (optional: NULL when the backend takes no permuted block weights; its
     * `supports` then declines has_perm for every dtype but Q4.) */
    llmrt_status (*weight_upload_permuted)(llmrt_backend *be, llmrt_dtype dtype, int64_t rows,
                                           int64_t cols, const void *host, const int32_t *perm,
                                           llmrt_bweight *out, llmrt_error *err);
    void (*weight_free)(llmrt_backend *be, llmrt_bweight *w);
    bool (*supports_weight)(const llmrt_backend *be, llmrt_dtype dtype);
    /* Whether the backend runs `q` (see llmrt_op_query); when not, a NUL-terminated reason
     * ("the 4-bit kernels take fp16 activations only") in why[why_cap] (why may be NULL).
     * Pure: no allocation, no device work; the answer for a query never changes for a backend
     * instance. An upload or op that `supports` accepts fails only for resources (memory) or a
     * device fault. */
    bool (*supports)(const llmrt_backend *be, const llmrt_op_query *q, char *why, size_t why_cap);

    /* Inverse RoPE frequencies [hd/2] (after scaling), set once per model. */
    llmrt_status (*rope_init)(llmrt_backend *be, const float *inv_freq, int32_t half_dim,
                              llmrt_error *err);

    /* -- per forward -- */
    llmrt_status (*begin_batch)(llmrt_backend *be, const llmrt_batch_plan *plan, llmrt_error *err);

    /* -- ops; all act pointers hold T rows unless stated -- */
    /* out[T, D] = table[tokens[t]] (the table is a weight [V, D]) */
    void (*embed)(llmrt_backend *be, void *out, const llmrt_bweight *table);
    /* out[T, D] = x / rms(x) * w; w is fp32 [D] host-uploaded by alloc+copy */
    void (*rmsnorm)(llmrt_backend *be, void *out, const void *x, const void *w, int64_t D, float eps);
    /* x[T, D] += delta[T, D]; out[T, D] = rmsnorm(x) * w */
    void (*add_rmsnorm)(llmrt_backend *be, void *x, const void *delta, void *out, const void *w,
                        int64_t D, float eps);
    /* x[T, D] += delta[T, D] */
    void (*add)(llmrt_backend *be, void *x, const void *delta, int64_t D);
    /* out[rows, N] = x[rows, K] · Wᵀ, rows = T (or n_outputs for the lm_head) */
    void (*matmul)(llmrt_backend *be, void *out, const void *x, int64_t rows, const llmrt_bweight *w);
    /* Applies RoPE (HF rotate-half pairs i, i + hd/2) to q[T, Hq*hd] and k[T, Hkv*hd] in place at
     * each token's position and writes k and v[T, Hkv*hd] into the layer's KV pool at each
     * token's slot (quantised when shape->kv_dtype is 8-bit). Angles come from the inverse
     * frequencies given to rope_init. */
    void (*rope_kv_write)(llmrt_backend *be, void *q, void *k, const void *v, void *k_cache,
                          void *v_cache, const llmrt_attn_shape *shape);
    /* out[T, Hq*hd] = softmax(q Kᵀ * scale, causal to each token's position and within
     * shape->window when it is > 0) V over the paged cache of the token's sequence. */
    void (*attention)(llmrt_backend *be, void *out, const void *q, const void *k_cache,
                      const void *v_cache, const llmrt_attn_shape *shape);
    /* out[T, F] = silu(gate) * up */
    void (*swiglu)(llmrt_backend *be, void *out, const void *gate, const void *up, int64_t F);
    /* out[n_outputs, D] = x[output_rows[i]] */
    void (*gather_outputs)(llmrt_backend *be, void *out, const void *x, int64_t D);
    /* Copies n floats-worth of activations (converted to fp32) to host memory; waits for the
     * device. */
    llmrt_status (*download_f32)(llmrt_backend *be, float *host, const void *act, int64_t n,
                                 llmrt_error *err);
    /* Copies host bytes into backend memory. */
    llmrt_status (*upload)(llmrt_backend *be, void *dst, const void *host, uint64_t bytes,
                           llmrt_error *err);

    /* -- optional (NULL when the backend has no use for them) -- */
    /* Sizes the backend's per-batch state (plan arrays, attention workspaces) for batches of up
     * to max_tokens tokens, max_outputs output rows and max_seqs sequences of at most
     * max_blocks blocks, so that begin_batch allocates nothing for batches within these bounds.
     * Called by the KV cache at creation and whenever a batch outgrows the reservation (never
     * by a decode-only step: its batch is never larger than the step before it). The
     * activation buffers the forward passes to the ops hold max_tokens rows (max_outputs for
     * the output rows and logits), whatever the batch: a backend may compute padding rows in
     * them. */
    llmrt_status (*reserve)(llmrt_backend *be, int64_t max_tokens, int64_t max_outputs,
                            int64_t max_seqs, int64_t max_blocks, const llmrt_attn_shape *shape,
                            llmrt_error *err);
    /* The lm_head with fp32 output, then the logits download: scratch[rows, N] (backend memory,
     * rows * N fp32) = x[rows, K] · Wᵀ (+ bias), copied to host[rows, N]; waits for the device.
     * When NULL the forward runs matmul into an activation buffer and download_f32. */
    llmrt_status (*logits)(llmrt_backend *be, float *host, void *scratch, const void *x,
                           int64_t rows, const llmrt_bweight *w, llmrt_error *err);
    /* Copies `bytes` (a multiple of act_bytes) of backend memory from src to dst (regions that do
     * not overlap), in stream order: the KV blocks of a copy-on-write fork. NULL when the backend
     * cannot (the executor's copy_blocks is then unsupported). */
    llmrt_status (*copy)(llmrt_backend *be, void *dst, const void *src, uint64_t bytes,
                         llmrt_error *err);

    /* -- LoRA adapters served per request (optional: all four NULL when the backend has none;
     * the engine then refuses adapters that are not merged at load) -- */
    /* An empty table of n_slots slots for a projection out = x[T, k] · Wᵀ with n outputs. */
    llmrt_status (*lora_table_create)(llmrt_backend *be, int32_t n_slots, int64_t n, int64_t k,
                                      llmrt_blora_table **out, llmrt_error *err);
    /* Fills `slot` with A [rank, k] and B [n, rank] (fp32 host arrays, copied and converted to
     * the backend's storage: they need not outlive the call); rank 0 empties it (a, b NULL).
     * Never called while a forward that reads the table runs. */
    llmrt_status (*lora_table_set)(llmrt_backend *be, llmrt_blora_table *t, int32_t slot,
                                   int32_t rank, const float *a, const float *b,
                                   llmrt_error *err);
    void (*lora_table_destroy)(llmrt_backend *be, llmrt_blora_table *t);
    /* out[t, :] += lora_scale[t] * (x[t, :] · A_sᵀ) · B_sᵀ for every row t of the batch whose
     * lora_slot[t] = s (begin_batch's plan) names a filled slot; other rows are untouched.
     * x [rows, k], out [rows, n], rows = T. A row's result depends on no other row (a fixed
     * reduction order), so the batch-invariance of the CPU backend holds with adapters. */
    void (*lora_apply)(llmrt_backend *be, void *out, const void *x, int64_t rows,
                       const llmrt_blora_table *t);

    /* -- fused decode ops (optional: NULL when the backend has none) -- */
    /* Runs `f` over rows = T rows when the backend fuses this case and returns true; else returns
     * false having enqueued nothing, and the caller runs the unfused ops (the answer depends on
     * rows, the weights and the kinds in `f` only, so it is the same every step of a shape). */
    bool (*matmul_fused)(llmrt_backend *be, const llmrt_fused_matmul *f, int64_t rows);

    /* -- host work between batches (optional: NULL when the backend has no host threads) -- */
    /* Runs task(ctx, i, thread) for i < n_tasks on the backend's host threads (the CPU pool)
     * and returns when all are done; never while a batch runs. For per-row work of the caller
     * between forwards (the engine's sampling), which would otherwise run on one thread while
     * the pool's workers sleep. */
    void (*host_run)(llmrt_backend *be, int64_t n_tasks, llmrt_task_fn task, void *ctx);
} llmrt_backend_ops;

struct llmrt_backend {
    const llmrt_backend_ops *ops;
    const char              *name;      /* "cpu", "cuda" */
    int32_t                  act_bytes; /* bytes per activation element */
    void                    *ctx;       /* backend-specific state */
    /* Bytes per element of the residual stream: the `x` of embed (its out), rmsnorm,
     * add_rmsnorm and add. 0 = act_bytes (the CPU). The CUDA backend keeps it in fp32 (4) while
     * its activations are fp16. */
    int32_t                  resid_bytes;
    llmrt_dtype              act_dtype; /* the activation dtype (F32 on the CPU)             */
    void                    *stream;    /* the cudaStream_t the ops enqueue on (NULL: CPU);
                                         * communicators of a TP group enqueue on it too */
};

/* The CPU backend: fp32 activations, f32/f16/bf16/Q8_0 weights used in place, 4-bit weights
 * repacked (cpu/q4_kernels.h). force_isa: "generic", "avx2", "avx512" (a set the CPU lacks falls
 * back to the best below it) or NULL = the best the CPU has. */
llmrt_status llmrt_backend_cpu_create(int n_threads, const char *force_isa, llmrt_backend **out,
                                      llmrt_error *err);

/* Options of the CPU backend. matmul_mode (llmrt_cpu_matmul, llmrt.h): EXACT (fp32, the
 * default) or INT8 (int8 activations for 4-bit and Q8_0 weights at every batch size, so a
 * token's result still depends on no other token; cpu/i8_gemm.h). */
typedef struct llmrt_cpu_options {
    llmrt_cpu_matmul matmul_mode; /* llmrt.h */
    /* f32/f16/bf16 weights rounded to bf16 (packed at load) times activations rounded to bf16
     * (AVX512-BF16; cpu/bf16_gemm.h) instead of fp32 math: llmrt_model_params.activation_dtype =
     * BF16 on the CPU */
    bool             bf16_activations;
    /* the thread pool's threads bound one per CPU of the process's affinity mask
     * (llmrt_model_params.cpu_pin_threads; core/thread_pool.h) */
    bool             pin_threads;
} llmrt_cpu_options;

/* llmrt_backend_cpu_create with options (NULL: the defaults). */
llmrt_status llmrt_backend_cpu_create_opts(int n_threads, const char *force_isa,
                                           const llmrt_cpu_options *opt, llmrt_backend **out,
                                           llmrt_error *err);

/* For supports(): writes the reason (printf-style) into why[cap] when why is non-NULL and returns
 * false, so an implementation can `return llmrt_backend_decline(why, cap, "...", ...);`. */
bool llmrt_backend_decline(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
