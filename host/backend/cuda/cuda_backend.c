/* The CUDA backend: the backend interface (backend.h) over the plain-C launchers and device layer
 * of cuda/ (llmrt_cuda.h). This file never includes a CUDA header.
 *
 * Numerics. Activations are fp16 (bf16 with llmrt_cuda_options.act_dtype), every kernel computes in
 * fp32. The residual stream (x) stays in fp32 (resid_bytes 4): it is summed over every layer,
 * and keeping it in fp16 would round the running sum 2 * n_layers times. Weights are stored in
 * the activation dtype: f16/bf16/f32 checkpoints are converted once at upload (half the memory
 * and bandwidth of f32, and cublasGemmEx with fp16 inputs runs on tensor cores; the GEMM input
 * x is fp16 anyway, so f32 weights would buy little). A weight outside the fp16 range is an
 * error naming the tensor (use bf16 activations for such a checkpoint). GEMMs accumulate in fp32
 * (CUBLAS_COMPUTE_32F); the lm_head writes fp32 logits, downloaded as they are.
 *
 * Sampling stays on the host: the engine's sampler (penalties, top-k/p, min-p, logprobs, seeded
 * streams) is host code, and the logits of n_outputs rows are small next to the forward (V
 * floats per sequence). Sampling on the device is a later optimisation.
 *
 * Memory. Weights, the KV pool and the activations are allocated at start-up (the KV cache
 * reserves the activations and this backend's per-batch state through `reserve`); every
 * allocation checks cudaMemGetInfo first, and one that does not fit is LLMRT_ERR_OUT_OF_MEMORY
 * naming what did not fit. A forward allocates nothing unless its batch is larger than every
 * batch before it (never a decode-only step, see forward.c). begin_batch packs the batch plan
 * into pinned memory and uploads it with one asynchronous copy; the ops only enqueue work; the
 * only host synchronisation of a step is the logits download at its end.
 *
 * LoRA. Adapters served per request (lora_table_*, lora_apply) run the batched shrink/expand
 * kernels of cuda/lora.cu: a table is one descriptor per slot in device memory (A/B pointers in
 * the activation dtype, rank), so rows of different adapters share a launch. begin_batch stages
 * each token's slot and scale with the plan, and the runs of consecutive rows of one slot as
 * tiles (prefill), or none when every run has one row (decode: the per-row GEMV); both paths give
 * the same bits for a row. The shrink's fp32 scratch is sized when a table is created or filled
 * (and by reserve) for the reserved batch at the largest rank, so lora_apply allocates nothing.
 *
 * Errors. Ops without a status record their first failure; the next call that returns a status
 * (the logits download at the end of the forward) reports it. A sticky CUDA fault (illegal
 * address, launch failure, ...) puts the backend in a dead state: every later call fails at
 * once with LLMRT_ERR_DEAD and the message of the original fault (no hang, no abort). */
#include "cuda_backend.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../core/half.h"
#include "../../core/log.h"
#include "../../format/kv_quant.h"
#include "llmrt_cuda.h"
#include "lora.h"
#include "fused_gemv.h"
#include "gather_cols.h"
#include "ggml_matmul.h"
#include "q4_matmul.h"
#ifdef LLMRT_CUDA_HAVE_FLASH_ATTN
#include "attention.h"
#endif

#define UPLOAD_CHUNK_ELEMS  ((int64_t)1 << 22) /* weight conversion staging: 4M elements */
#define DECODE_MAX_SPLITS   16                 /* split-KV partials the decode workspace holds */
#define F16_OVERFLOW        65520.0f           /* |x| >= this rounds to inf in fp16 */
#define LLMRT_CUDA_Q4_MAX_SHAPES 32            /* distinct 4-bit matrix shapes reserve sizes for */
#define DECODE_MAX_GROUP    16                 /* query heads per kv head the split-KV decode
                                                  kernel takes (attention.h) */
#define GRAPH_MAX_BUCKETS   16                 /* decode graph buckets 1, 2, 4, ... 2^15 */

typedef struct cuda_ctx {
    llmrt_cuda_dev  *dev;
    void            *stream;
    llmrt_cuda_dtype act;        /* activation, weight and KV dtype (F16, BF16; F32 reference) */
    llmrt_dtype      act_dtype;  /* the same as an llmrt_dtype */

    /* failures */
    bool         dead;
    char         dead_msg[LLMRT_ERROR_MSG_MAX];
    llmrt_status pending; /* first failure of a void op since the last status call */
    char         pending_msg[LLMRT_ERROR_MSG_MAX];
    int64_t      fault_at; /* llmrt_cuda_options.inject_fault_at: N, else 0 */

    /* rope */
    float  *inv_freq; /* device [half] */
    int32_t half_dim;

    /* per-batch state: device plan arrays at fixed offsets of one buffer, staged in pinned
     * memory with the same layout and uploaded by one copy */
    void   *plan_dev, *plan_host;
    int64_t cap_tokens, cap_outputs, cap_table;
    int64_t off_tokens, off_positions, off_seq_of, off_out_rows, off_q_start, off_q_len,
            off_ctx_len, off_seq_slot, off_lora_slot, off_lora_scale, off_lora_tile_row,
            off_lora_tile_len, off_tables; /* bytes; slots at 0 */
    bool    plan_in_flight; /* the staging buffer may still be read by a pending copy */

    /* current batch */
    int32_t n_tokens, n_seqs, max_blocks, n_outputs;
    int32_t n_entries;   /* attention entries: runs of consecutive positions of one sequence */
    int32_t max_ctx;     /* largest ctx_len of an entry */
    bool    all_decode;  /* every entry has one token */

    /* attention: the kernel is chosen once per shape, by reserve (before any forward; see
     * choose_attention), never changed by a forward */
    bool    naive_forced;    /* llmrt_cuda_options.naive_attention */
    bool    attn_chosen;
    llmrt_attn_shape attn_shape; /* the shape the choice was made for */
    bool    flash;           /* the attention.h kernels serve this shape (prefill and mixed) */
    bool    flash_decode;    /* ... and their split-KV decode kernel serves decode-only steps */
    void   *decode_ws;       /* split-KV workspace */
    uint64_t decode_ws_bytes;
    int64_t decode_cap;      /* entries the workspace holds */

    /* download_f32 */
    float  *f32_scratch;
    int64_t f32_cap;

    /* 4-bit matmul (section "4-bit weights"): one workspace shared by every call (split-K partials, the
     * act-order gather of x), sized by reserve for the 4-bit shapes uploaded so far */
    void    *q4_ws;
    uint64_t q4_ws_bytes;
    int32_t  n_q4_shapes;
    llmrt_cuda_q4_weight q4_shapes[LLMRT_CUDA_Q4_MAX_SHAPES]; /* distinct (N, K, gs, perm?) */

    /* LoRA (section "LoRA adapters"): the batch's rows with an adapter, as tiles (plan arrays
     * lora_tile_row / lora_tile_len, cuda/lora.h), and the shrink's fp32 scratch
     * [T, k splits, lora_ld] */
    bool     lora_active;      /* the batch plan has lora_slot and some table holds an adapter */
    bool     lora_tiled;       /* some tile has several rows: run the tile list, else per row */
    int32_t  lora_class[3];    /* tiles of each class (llmrt_cuda_lora_tiles) */
    int32_t  lora_max_rank;    /* largest rank set in any table so far (never shrinks) */
    int32_t  lora_max_splits;  /* most k splits of any table so far (llmrt_cuda_lora_splits) */
    int32_t  lora_ld;          /* lora_max_rank when the batch began: tmp's rank stride */
    int32_t  lora_splits;      /* lora_max_splits when the batch began */
    float   *lora_tmp;         /* device fp32 [lora_tmp_cap] */
    int64_t  lora_tmp_cap;     /* floats */

    /* decode graphs (section "decode graphs") */
    bool     graphs_on;        /* not llmrt_cuda_options.enforce_eager, and no capture failed */
    int32_t  graph_stride;     /* reserve's max_blocks: the block-table stride of graph steps */
    int      graph_mode;       /* GRAPH_OFF, or the current forward's GRAPH_CAPTURE / _REPLAY */
    int32_t  graph_slot;       /* the current graph step's bucket index (bucket 2^slot)       */
    int32_t  graph_real;       /* the current graph step's tokens before padding              */
    uint64_t graph_hash;       /* fingerprint of the current step's ops so far                */
    const void *graph_key;     /* the current graph step's plan->capture_key                  */
    struct {
        void       *exec; /* instantiated graph (cudaGraphExec_t) or NULL        */
        uint64_t    hash; /* fingerprint of the ops it recorded                  */
        const void *key;  /* plan->capture_key of its step (the KV cache)        */
    } graphs[GRAPH_MAX_BUCKETS];

    /* act-order block weights (section "GGUF block weights"): x gathered into a permuted
     * weight's stored column order, [rows, K] activations, sized by reserve for the widest
     * permuted weight uploaded so far */
    void    *perm_x;
    uint64_t perm_x_bytes;
    int64_t  perm_max_cols;

    /* fused decode ops (section "fused decode ops") */
    bool     unfused;          /* llmrt_cuda_options.unfused: matmul_fused declines */

    llmrt_cuda_backend_stats stats;
} cuda_ctx;

static cuda_ctx *ctx_of(const llmrt_backend *be) {
    return (cuda_ctx *)be->ctx;
}

/* (section "decode graphs") */
enum { GRAPH_OFF = 0, GRAPH_CAPTURE = 1, GRAPH_REPLAY = 2 };
static void     graphs_clear(cuda_ctx *c);
static void     graph_abandon(cuda_ctx *c, const char *why);
static int64_t  graph_plan(cuda_ctx *c, const llmrt_batch_plan *plan, char *h);
static bool     graph_op(cuda_ctx *c, int op, const void *a, const void *b, const void *w,
                         int64_t n, float f);
static int64_t  graph_rows(const cuda_ctx *c, int64_t rows);
static int32_t  graph_bucket_slot(int64_t n);
static llmrt_status graph_logits(cuda_ctx *c, float *host, void *scratch, const void *x,
                                 int64_t rows, const llmrt_bweight *w, llmrt_error *err);

/* --------------------------------------------------------------------------------------------- */
/* failures                                                                                      */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status status_of(llmrt_cuda_status st) {
    switch (st) {
    case LLMRT_CUDA_OK: return LLMRT_OK;
    case LLMRT_CUDA_ERR_NO_DEVICE: return LLMRT_ERR_UNSUPPORTED;
    case LLMRT_CUDA_ERR_OOM: return LLMRT_ERR_OUT_OF_MEMORY;
    case LLMRT_CUDA_ERR_INVALID: return LLMRT_ERR_UNSUPPORTED;
    case LLMRT_CUDA_ERR_STICKY: return LLMRT_ERR_DEAD;
    case LLMRT_CUDA_ERR_FAILED: break;
    }
    return LLMRT_ERR_BACKEND;
}

/* Records a failure of `what`: a sticky one kills the backend, another becomes pending. */
static void note_failure(cuda_ctx *c, llmrt_cuda_status st, const char *what) {
    if (st == LLMRT_CUDA_OK) return;
    if (st == LLMRT_CUDA_ERR_STICKY) {
        if (!c->dead) {
            c->dead = true;
            snprintf(c->dead_msg, sizeof c->dead_msg, "%s: %s", what,
                     llmrt_cuda_dev_message(c->dev));
            c->stats.dead = true;
            snprintf(c->stats.dead_message, sizeof c->stats.dead_message, "%s", c->dead_msg);
        }
        return;
    }
    if (c->pending == LLMRT_OK) {
        c->pending = status_of(st);
        snprintf(c->pending_msg, sizeof c->pending_msg, "%s: %s", what,
                 llmrt_cuda_dev_message(c->dev));
    }
}

/* The status every call returns once the backend is dead, or a pending failure (cleared). A
 * status call in the middle of a graph step (between begin_batch and logits) ends the step. */
static llmrt_status check_state(cuda_ctx *c, llmrt_error *err) {
    if (c->graph_mode != GRAPH_OFF) graph_abandon(c, "a backend call between the ops of a graph step");
    if (c->dead)
        return llmrt_err(err, LLMRT_ERR_DEAD,
                         "cuda backend is dead after a sticky CUDA fault (restart the process): %s",
                         c->dead_msg);
    if (c->pending != LLMRT_OK) {
        llmrt_status s = c->pending;
        c->pending     = LLMRT_OK;
        return llmrt_err(err, s, "cuda backend: %s", c->pending_msg);
    }
    return LLMRT_OK;
}

/* A failed device call of a status op: the dead state, else an earlier failure of this forward
 * (the first one is the cause), else this one with `what` and the device layer's message. */
static llmrt_status fail(cuda_ctx *c, llmrt_cuda_status st, llmrt_error *err, const char *what) {
    if (st == LLMRT_CUDA_ERR_STICKY) note_failure(c, st, what);
    if (c->dead || c->pending != LLMRT_OK) return check_state(c, err);
    return llmrt_err(err, status_of(st), "cuda backend: %s: %s", what,
                     llmrt_cuda_dev_message(c->dev));
}

/* Void ops do nothing after a failure: the forward's result is lost anyway. */
static bool skip(const cuda_ctx *c) {
    return c->dead || c->pending != LLMRT_OK;
}

/* Checks a launcher's return value. */
static void launched(cuda_ctx *c, int rc, const char *what) {
    c->stats.launches++;
    if (rc) note_failure(c, llmrt_cuda_check(c->dev, rc, what), what);
}

/* --------------------------------------------------------------------------------------------- */
/* memory                                                                                        */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status dev_alloc(cuda_ctx *c, uint64_t bytes, void **out, llmrt_error *err) {
    *out = NULL;
    LLMRT_TRY(check_state(c, err));
    llmrt_cuda_status st = llmrt_cuda_malloc(c->dev, out, bytes);
    if (st != LLMRT_CUDA_OK) return fail(c, st, err, "device allocation");
    c->stats.device_allocs++;
    return LLMRT_OK;
}

static void dev_free(cuda_ctx *c, void *p) {
    if (!p) return;
    graphs_clear(c); /* a graph may hold p as a kernel argument */
    llmrt_cuda_free(c->dev, p);
    c->stats.device_frees++;
}

static llmrt_status cuda_alloc(llmrt_backend *be, uint64_t bytes, void **out, llmrt_error *err) {
    return dev_alloc(ctx_of(be), bytes, out, err);
}

static void cuda_free(llmrt_backend *be, void *ptr) {
    dev_free(ctx_of(be), ptr);
}

static llmrt_status cuda_upload(llmrt_backend *be, void *dst, const void *host, uint64_t bytes,
                                llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    LLMRT_TRY(check_state(c, err));
    llmrt_cuda_status st = llmrt_cuda_upload(c->dev, dst, host, bytes, 1);
    return st == LLMRT_CUDA_OK ? LLMRT_OK : fail(c, st, err, "upload");
}

static bool         ggml_weight_ok(const cuda_ctx *c, llmrt_dtype dtype);
static int          ggml_type_of(llmrt_dtype dtype);
static llmrt_status ggml_weight_upload(cuda_ctx *c, llmrt_dtype dtype, int64_t rows, int64_t cols,
                                       const void *host, llmrt_bweight *out, llmrt_error *err);
static bool         perm_supported(const llmrt_op_query *q, char *why, size_t cap);
static bool         weight_permuted(const llmrt_bweight *w);
static llmrt_status perm_x_grow(cuda_ctx *c, uint64_t need, llmrt_error *err);

static bool cuda_supports_weight(const llmrt_backend *be, llmrt_dtype dtype) {
    return dtype == LLMRT_DTYPE_F32 || dtype == LLMRT_DTYPE_F16 || dtype == LLMRT_DTYPE_BF16 ||
           ggml_weight_ok(ctx_of(be), dtype);
}


/* What this instance runs:
 *  - matmul: f32/f16/bf16 weights (converted to the activation dtype at upload) of shapes within
 *    the GEMM's int range; 4-bit weights on the 4-bit kernels when the activations are fp16 (the
 *    kernels run fp16 mma) and llmrt_cuda_q4_check takes the shape; GGUF Q8_0, Q5_0/Q5_1 and
 *    K-quant blocks on their kernels (cuda/ggml_matmul.h) with fp16 or bf16 activations.
 *  - attention: the naive kernel takes any head dim up to 256 (rope_init's bound too); the
 *    flash kernels (attention.h) take the head dims and dtypes they are instantiated for
 *    (llmrt_cuda_attention_check on the shape alone), fp16/bf16 only, unless the naive kernel
 *    was forced. Every kernel also reads an 8-bit KV cache (kv_dtype I8 / F8_E4M3, cuda/kv8.cuh)
 *    when head_dim % 4 == 0. */
static bool cuda_supports(const llmrt_backend *be, const llmrt_op_query *q, char *why,
                          size_t cap) {
    const cuda_ctx *c = ctx_of(be);
    if (why && cap) why[0] = 0;
    switch (q->op) {
    case LLMRT_BOP_MATMUL:
        if (q->n <= 0 || q->k <= 0 || q->n > INT32_MAX || q->k > INT32_MAX)
            return llmrt_backend_decline(why, cap, "weight shape [%lld, %lld] outside the GEMM's int range",
                           (long long)q->n, (long long)q->k);
        if (q->dtype == LLMRT_DTYPE_Q4) {
            if (c->act != LLMRT_CUDA_F16)
                return llmrt_backend_decline(why, cap, "the 4-bit kernels take fp16 activations only (%s here)",
                               llmrt_dtype_name(c->act_dtype));
            char msg[256] = "";
            if (llmrt_cuda_q4_check(q->n, q->k, (int32_t)q->group_size, msg, sizeof msg) != 0)
                return llmrt_backend_decline(why, cap, "%s", msg);
            return true;
        }
        if (q->has_perm && !perm_supported(q, why, cap)) return false;
        if (ggml_type_of(q->dtype) >= 0 && c->act == LLMRT_CUDA_F32)
            return llmrt_backend_decline(why, cap, "the GGUF block kernels take fp16 or bf16 "
                                         "activations only (%s here)", llmrt_dtype_name(c->act_dtype));
        if (!cuda_supports_weight(be, q->dtype))
            return llmrt_backend_decline(why, cap, "weight dtype %s not supported", llmrt_dtype_name(q->dtype));
        if (ggml_type_of(q->dtype) >= 0) {
            char msg[256] = "";
            if (llmrt_cuda_ggml_check(ggml_type_of(q->dtype), q->n, q->k, msg, sizeof msg) != 0)
                return llmrt_backend_decline(why, cap, "%s", msg);
        }
        return true;
    case LLMRT_BOP_ATTENTION:
        if (q->kv_dtype == LLMRT_DTYPE_BF16 && c->act_dtype != LLMRT_DTYPE_BF16)
            return llmrt_backend_decline(why, cap, "the CUDA KV cache is kept in the activation "
                                         "dtype (%s here): a bf16 cache needs activation_dtype "
                                         "bf16, where it is the same as auto",
                                         llmrt_dtype_name(c->act_dtype));
        if (q->kv_dtype != LLMRT_DTYPE_INVALID && q->kv_dtype != c->act_dtype &&
            !llmrt_kv_dtype_is_8bit(q->kv_dtype))
            return llmrt_backend_decline(why, cap, "KV cache dtype %s not supported (the "
                                         "activation dtype, i8, f8_e4m3)",
                                         llmrt_dtype_name(q->kv_dtype));
        if (llmrt_kv_dtype_is_8bit(q->kv_dtype) && q->head_dim % 4)
            return llmrt_backend_decline(why, cap, "an 8-bit KV cache needs head_dim %% 4 == 0 "
                                         "(%d)", q->head_dim);
        if (q->head_dim < 2 || q->head_dim > 256 || q->head_dim % 2)
            return llmrt_backend_decline(why, cap, "head_dim %d is not supported (even, 2..256)", q->head_dim);
        return true;
    case LLMRT_BOP_FLASH_ATTENTION: {
#ifdef LLMRT_CUDA_HAVE_FLASH_ATTN
        if (c->naive_forced) return llmrt_backend_decline(why, cap, "the naive attention kernel was forced");
        if (c->act == LLMRT_CUDA_F32)
            return llmrt_backend_decline(why, cap, "the flash kernels take fp16/bf16 activations only");
        llmrt_cuda_attn_args a = {
            .n_seqs = 0, .n_tokens = 0, .n_heads = q->n_heads, .n_kv_heads = q->n_kv_heads,
            .head_dim = q->head_dim, .block_size = 1, .max_blocks = 1, .scale = 1.0f,
            .dtype = c->act == LLMRT_CUDA_BF16 ? LLMRT_CUDA_ATTN_BF16 : LLMRT_CUDA_ATTN_F16,
        };
        char msg[256] = "";
        if (llmrt_cuda_attention_check(&a, "flash attention", msg, sizeof msg) != 0)
            return llmrt_backend_decline(why, cap, "%s", msg);
        return true;
#else
        return llmrt_backend_decline(why, cap, "this build has no flash attention kernels");
#endif
    }
    }
    return llmrt_backend_decline(why, cap, "unknown op %d", (int)q->op);
}

/* Converts n host elements of `src_t` into the activation dtype (host bits). */
static llmrt_status convert_chunk(const cuda_ctx *c, void *dst, llmrt_dtype src_t,
                                  const void *src, int64_t n, int64_t first, int64_t cols,
                                  llmrt_error *err) {
    for (int64_t i = 0; i < n; i++) {
        float v = src_t == LLMRT_DTYPE_F32   ? ((const float *)src)[i]
                  : src_t == LLMRT_DTYPE_F16 ? llmrt_f16_to_f32(((const uint16_t *)src)[i])
                                             : llmrt_bf16_to_f32(((const uint16_t *)src)[i]);
        if (c->act == LLMRT_CUDA_F16) {
            if (v >= F16_OVERFLOW || v <= -F16_OVERFLOW)
                return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                                 "cuda backend: weight value %g at [%lld, %lld] is outside the "
                                 "fp16 range (|w| <= 65504); use bf16 activations "
                                 "(activation_dtype LLMRT_ACTIVATION_BF16)", (double)v,
                                 (long long)((first + i) / cols), (long long)((first + i) % cols));
            ((uint16_t *)dst)[i] = llmrt_f32_to_f16(v);
        } else if (c->act == LLMRT_CUDA_BF16) {
            ((uint16_t *)dst)[i] = llmrt_f32_to_bf16(v);
        } else {
            ((float *)dst)[i] = v;
        }
    }
    return LLMRT_OK;
}

/* Weights live on the device in the activation dtype (see the top of the file). */
static llmrt_status cuda_weight_upload(llmrt_backend *be, llmrt_dtype dtype, int64_t rows,
                                       int64_t cols, const void *host, llmrt_bweight *out,
                                       llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    if (!cuda_supports_weight(be, dtype))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "cuda backend: weight dtype %s not supported",
                         llmrt_dtype_name(dtype));
    if (ggml_weight_ok(c, dtype)) return ggml_weight_upload(c, dtype, rows, cols, host, out, err);
    if (rows <= 0 || cols <= 0 || rows > INT32_MAX || cols > INT32_MAX)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "cuda backend: weight shape [%lld, %lld] outside the GEMM's int range",
                         (long long)rows, (long long)cols);
    int64_t n = rows * cols, ab = be->act_bytes;
    void   *dev = NULL;
    llmrt_status s = dev_alloc(c, (uint64_t)(n * ab), &dev, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "weight [%lld, %lld]", (long long)rows, (long long)cols);
        return s;
    }
    if (dtype == c->act_dtype) {
        llmrt_cuda_status st = llmrt_cuda_upload(c->dev, dev, host, (uint64_t)(n * ab), 1);
        if (st != LLMRT_CUDA_OK) s = fail(c, st, err, "weight upload");
    } else {
        int64_t chunk   = n < UPLOAD_CHUNK_ELEMS ? n : UPLOAD_CHUNK_ELEMS;
        char   *staging = malloc((size_t)(chunk * ab));
        if (!staging) s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cuda backend: out of host memory");
        int64_t esz = llmrt_dtype_block_bytes(dtype);
        for (int64_t at = 0; at < n && s == LLMRT_OK; at += chunk) {
            int64_t k = n - at < chunk ? n - at : chunk;
            s = convert_chunk(c, staging, dtype, (const char *)host + at * esz, k, at, cols, err);
            if (s != LLMRT_OK) break;
            llmrt_cuda_status st =
                llmrt_cuda_upload(c->dev, (char *)dev + at * ab, staging, (uint64_t)(k * ab), 1);
            if (st != LLMRT_CUDA_OK) s = fail(c, st, err, "weight upload");
        }
        free(staging);
    }
    if (s != LLMRT_OK) {
        dev_free(c, dev);
        return s;
    }
    *out = (llmrt_bweight){.dtype = c->act_dtype, .rows = rows, .cols = cols, .data = dev};
    return LLMRT_OK;
}

static void cuda_weight_free(llmrt_backend *be, llmrt_bweight *w) {
    if (w->dtype == LLMRT_DTYPE_Q4) free(w->aux); /* the host view of the repacked buffer */
    if (weight_permuted(w)) dev_free(ctx_of(be), w->aux); /* its device perm */
    dev_free(ctx_of(be), w->data);
    memset(w, 0, sizeof *w); /* the bias belongs to the loader */
}

/* --------------------------------------------------------------------------------------------- */
/* GGUF block weights                                                                            */
/* --------------------------------------------------------------------------------------------- */

/* Q8_0, Q5_0/Q5_1 and the K-quants stay on the device exactly as the file stores them (the GGUF
 * blocks, row after row; gguf_source keeps them packed because supports_weight says so) and run
 * on their own kernels (cuda/ggml_matmul.h: GEMV for decode, mma GEMM for prefill, the embedding
 * gather), which take fp16 or bf16 activations (not the f32 reference mode). Q4_0/Q4_1 load into
 * the internal 4-bit format instead.
 * Tensor-parallel slices arrive cut at whole blocks (model/shard_slice.c refuses the rest, naming
 * the type and tp; a Q8_0 slice inside a block arrives as F32). */
static int ggml_type_of(llmrt_dtype dtype) {
    switch (dtype) {
    case LLMRT_DTYPE_Q8_0: return LLMRT_CUDA_GGML_Q8_0;
    case LLMRT_DTYPE_Q5_0: return LLMRT_CUDA_GGML_Q5_0;
    case LLMRT_DTYPE_Q5_1: return LLMRT_CUDA_GGML_Q5_1;
    case LLMRT_DTYPE_Q2_K: return LLMRT_CUDA_GGML_Q2_K;
    case LLMRT_DTYPE_Q3_K: return LLMRT_CUDA_GGML_Q3_K;
    case LLMRT_DTYPE_Q4_K: return LLMRT_CUDA_GGML_Q4_K;
    case LLMRT_DTYPE_Q5_K: return LLMRT_CUDA_GGML_Q5_K;
    case LLMRT_DTYPE_Q6_K: return LLMRT_CUDA_GGML_Q6_K;
    case LLMRT_DTYPE_Q8_Z: return LLMRT_CUDA_GGML_Q8_Z; /* internal: 8-bit GPTQ (model/gptq8.h) */
    default: return -1;
    }
}

static bool ggml_weight_ok(const cuda_ctx *c, llmrt_dtype dtype) {
    return ggml_type_of(dtype) >= 0 && c->act != LLMRT_CUDA_F32;
}

static llmrt_status ggml_weight_upload(cuda_ctx *c, llmrt_dtype dtype, int64_t rows, int64_t cols,
                                       const void *host, llmrt_bweight *out, llmrt_error *err) {
    int  t        = ggml_type_of(dtype);
    char msg[256] = "";
    if (llmrt_cuda_ggml_check(t, rows, cols, msg, sizeof msg) != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "cuda backend: %s", msg);
    uint64_t     bytes = llmrt_cuda_ggml_bytes(t, rows, cols);
    void        *dev   = NULL;
    llmrt_status s     = dev_alloc(c, bytes, &dev, err);
    if (s != LLMRT_OK) {
        llmrt_err_prefix(err, "%s weight [%lld, %lld]", llmrt_dtype_name(dtype), (long long)rows,
                         (long long)cols);
        return s;
    }
    llmrt_cuda_status st = llmrt_cuda_upload(c->dev, dev, host, bytes, 1);
    if (st != LLMRT_CUDA_OK) {
        dev_free(c, dev);
        return fail(c, st, err, "weight upload");
    }
    *out = (llmrt_bweight){.dtype = dtype, .rows = rows, .cols = cols, .data = dev};
    return LLMRT_OK;
}

/* For a permuted weight, *x gathered into its stored column order (perm_x, [rows, w->cols]);
 * other weights keep *x. */
static llmrt_cuda_status ggml_permuted_x(cuda_ctx *c, const void **x, int64_t rows,
                                         const llmrt_bweight *w) {
    if (!weight_permuted(w)) return LLMRT_CUDA_OK;
    uint64_t need = (uint64_t)rows * (uint64_t)w->cols * (c->act == LLMRT_CUDA_F32 ? 4u : 2u);
    if (need > c->perm_x_bytes) { /* reserve did not see this batch size (or this weight) */
        llmrt_error  e      = {0};
        int64_t      before = c->stats.device_allocs;
        llmrt_status s      = perm_x_grow(c, need, &e);
        c->stats.batch_allocs += c->stats.device_allocs - before;
        if (s != LLMRT_OK)
            return s == LLMRT_ERR_OUT_OF_MEMORY ? LLMRT_CUDA_ERR_OOM : LLMRT_CUDA_ERR_FAILED;
    }
    c->stats.launches++;
    int rc = llmrt_cuda_gather_cols(c->stream, c->perm_x, *x, c->act, rows, w->cols, w->aux);
    if (rc) return llmrt_cuda_check(c->dev, rc, "act-order gather");
    *x = c->perm_x;
    return LLMRT_CUDA_OK;
}

/* out[rows, N] (fp16, or fp32 for the logits) = x · Wᵀ + bias (fused) for a GGUF block weight
 * (an act-order one reads x in its stored column order: ggml_permuted_x). */
static llmrt_cuda_status ggml_matmul(cuda_ctx *c, void *out, llmrt_cuda_dtype out_t, const void *x,
                                     int64_t rows, const llmrt_bweight *w, const char *what) {
    llmrt_cuda_status st = ggml_permuted_x(c, &x, rows, w);
    if (st != LLMRT_CUDA_OK) return st;
    int rc = llmrt_cuda_ggml_matmul(c->stream, out, out_t, x, c->act, rows, w->data,
                                    ggml_type_of(w->dtype), w->rows, w->cols, w->bias,
                                    LLMRT_CUDA_GGML_AUTO);
    return rc ? llmrt_cuda_check(c->dev, rc, what) : LLMRT_CUDA_OK;
}

/* Act-order block weights (weight_upload_permuted: GPTQ-8 with desc_act, as Q8_Z): the blocks
 * as weight_upload keeps them, plus the permutation in device memory (int32 [cols], held in the
 * weight's aux, freed by weight_free). matmul gathers x[:, perm[j]] into perm_x (gather_cols.h),
 * then runs the block kernels on it: one extra launch and 2·rows·K activation bytes, small next
 * to the weight bytes. perm_x is sized by reserve for the widest permuted weight, so a forward
 * allocates nothing and decode graphs capture the gather like any kernel. An identity
 * permutation keeps no perm (the plain weight, the same bits). The fused decode op declines
 * permuted weights (weight_permuted). Any block type may carry a perm; f16/bf16/f32 weights may
 * not (supports declines has_perm for them). */
static bool weight_permuted(const llmrt_bweight *w) {
    return ggml_type_of(w->dtype) >= 0 && w->aux != NULL;
}

static bool perm_supported(const llmrt_op_query *q, char *why, size_t cap) {
    if (q->dtype == LLMRT_DTYPE_Q4 || ggml_type_of(q->dtype) >= 0) return true;
    return llmrt_backend_decline(why, cap, "an act-order permutation needs a block-quantised "
                                 "weight (Q8_Z, GGUF blocks) or Q4, not %s",
                                 llmrt_dtype_name(q->dtype));
}

/* Grows perm_x to `need` bytes (never shrinks). Queued kernels may still read the old buffer:
 * wait for the stream before freeing it. */
static llmrt_status perm_x_grow(cuda_ctx *c, uint64_t need, llmrt_error *err) {
    if (need <= c->perm_x_bytes) return LLMRT_OK;
    if (c->perm_x) {
        llmrt_cuda_status st = llmrt_cuda_sync(c->dev);
        if (st != LLMRT_CUDA_OK) return fail(c, st, err, "act-order gather scratch");
        dev_free(c, c->perm_x);
        c->perm_x       = NULL;
        c->perm_x_bytes = 0;
    }
    LLMRT_TRY(dev_alloc(c, need, &c->perm_x, err));
    c->perm_x_bytes = need;
    return LLMRT_OK;
}

/* Checks that perm [cols] is a permutation of 0 .. cols-1; *identity tells whether it is the
 * identity. */
static llmrt_status perm_check(const int32_t *perm, int64_t cols, bool *identity,
                               llmrt_error *err) {
    uint8_t *seen = calloc((size_t)cols, 1);
    if (!seen) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cuda backend: out of host memory");
    *identity = true;
    for (int64_t j = 0; j < cols; j++) {
        int32_t p = perm[j];
        if (p < 0 || p >= cols || seen[p]) {
            free(seen);
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "cuda backend: act-order perm[%lld] = %d is %s (a permutation of "
                             "0 .. %lld expected)", (long long)j, p,
                             p < 0 || p >= cols ? "out of range" : "a repeated column",
                             (long long)(cols - 1));
        }
        seen[p] = 1;
        if (p != j) *identity = false;
    }
    free(seen);
    return LLMRT_OK;
}

static llmrt_status cuda_weight_upload_permuted(llmrt_backend *be, llmrt_dtype dtype,
                                                int64_t rows, int64_t cols, const void *host,
                                                const int32_t *perm, llmrt_bweight *out,
                                                llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    LLMRT_TRY(check_state(c, err));
    if (!ggml_weight_ok(c, dtype))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "cuda backend: an act-order weight of dtype %s is not supported (block "
                         "types with fp16 or bf16 activations: %s here)",
                         llmrt_dtype_name(dtype), llmrt_dtype_name(c->act_dtype));
    if (!perm || !host)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "cuda backend: weight_upload_permuted: %s "
                         "is NULL", perm ? "host" : "perm");
    char msg[256] = "";
    if (llmrt_cuda_ggml_check(ggml_type_of(dtype), rows, cols, msg, sizeof msg) != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "cuda backend: %s", msg);
    bool identity = true;
    LLMRT_TRY(perm_check(perm, cols, &identity, err));
    LLMRT_TRY(ggml_weight_upload(c, dtype, rows, cols, host, out, err));
    if (identity) return LLMRT_OK;
    void        *dperm = NULL;
    llmrt_status s     = dev_alloc(c, (uint64_t)cols * sizeof(int32_t), &dperm, err);
    if (s == LLMRT_OK) {
        llmrt_cuda_status st =
            llmrt_cuda_upload(c->dev, dperm, perm, (uint64_t)cols * sizeof(int32_t), 1);
        if (st != LLMRT_CUDA_OK) s = fail(c, st, err, "act-order perm upload");
    }
    if (s != LLMRT_OK) {
        dev_free(c, dperm);
        dev_free(c, out->data);
        memset(out, 0, sizeof *out);
        return s;
    }
    out->aux = dperm;
    if (cols > c->perm_max_cols) c->perm_max_cols = cols; /* reserve sizes perm_x for it */
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* 4-bit weights                                                                                 */
/* --------------------------------------------------------------------------------------------- */

/* The internal 4-bit format (model/q4.h) repacked on the host into the layout of the q4 kernels
 * (cuda/q4_matmul.h: mma fragment order, magic-number nibble interleave, scales per 64-column
 * block) and uploaded as one buffer; aux holds its view. The loader asks `supports` first;
 * shapes the kernels do not take, and activations other than fp16 (the GEMM runs fp16 mma),
 * are still LLMRT_ERR_UNSUPPORTED here for direct callers. */
static llmrt_status cuda_weight_upload_q4(llmrt_backend *be, const llmrt_q4_host *h,
                                          llmrt_bweight *out, llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    LLMRT_TRY(check_state(c, err));
    char msg[256];
    if (c->act != LLMRT_CUDA_F16)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "cuda backend: the 4-bit kernels take fp16 activations only");
    if (llmrt_cuda_q4_check(h->rows, h->cols, h->group_size, msg, sizeof msg) != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "cuda backend: %s", msg);
    const bool          has_perm = h->perm != NULL;
    const int           zf       = h->zero_kind == LLMRT_Q4_ZERO_FLOAT;
    llmrt_cuda_q4_sizes sz = llmrt_cuda_q4_packed_sizes(h->rows, h->cols, h->group_size, has_perm);
    llmrt_cuda_q4_src   src = {.rows = h->rows, .cols = h->cols, .group_size = h->group_size,
                               .zero_float = zf, .qs = h->qs, .scales = h->scales,
                               .zeros = h->zeros, .offsets = h->offsets, .perm = h->perm};
    void                 *host = malloc((size_t)sz.total);
    llmrt_cuda_q4_weight *view = malloc(sizeof *view);
    void                 *dev  = NULL;
    llmrt_status          s    = LLMRT_OK;
    if (!host || !view)
        s = llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                      "cuda backend: out of host memory repacking 4-bit weight [%lld, %lld]",
                      (long long)h->rows, (long long)h->cols);
    if (s == LLMRT_OK) {
        llmrt_cuda_q4_repack(&src, host);
        s = dev_alloc(c, sz.total, &dev, err);
        if (s != LLMRT_OK)
            llmrt_err_prefix(err, "4-bit weight [%lld, %lld]", (long long)h->rows,
                             (long long)h->cols);
    }
    if (s == LLMRT_OK) {
        llmrt_cuda_status st = llmrt_cuda_upload(c->dev, dev, host, sz.total, 1);
        if (st != LLMRT_CUDA_OK) s = fail(c, st, err, "4-bit weight upload");
    }
    free(host);
    if (s != LLMRT_OK) {
        dev_free(c, dev);
        free(view);
        return s;
    }
    *view = llmrt_cuda_q4_view(dev, h->rows, h->cols, h->group_size, zf, has_perm);
    view->x_cols = h->x_cols; /* a padded TP slice reads x [T, x_cols], 0 for perm -1 */
    /* remember the shape for reserve's workspace sizing */
    bool known = false;
    for (int32_t i = 0; i < c->n_q4_shapes && !known; i++) {
        const llmrt_cuda_q4_weight *q = &c->q4_shapes[i];
        known = q->N == view->N && q->K == view->K && q->group_size == view->group_size &&
                (q->perm != NULL) == has_perm;
    }
    if (!known && c->n_q4_shapes < LLMRT_CUDA_Q4_MAX_SHAPES) c->q4_shapes[c->n_q4_shapes++] = *view;
    *out = (llmrt_bweight){.dtype = LLMRT_DTYPE_Q4, .rows = h->rows, .cols = h->cols, .data = dev,
                           .aux = view};
    return LLMRT_OK;
}

/* Grows the shared 4-bit workspace to `need` bytes (never shrinks). The old buffer may still be
 * read by queued kernels: wait for the stream before freeing it. */
static llmrt_status q4_ws_grow(cuda_ctx *c, uint64_t need, llmrt_error *err) {
    if (need <= c->q4_ws_bytes) return LLMRT_OK;
    if (c->q4_ws) {
        llmrt_cuda_status st = llmrt_cuda_sync(c->dev);
        if (st != LLMRT_CUDA_OK) return fail(c, st, err, "4-bit workspace");
        dev_free(c, c->q4_ws);
        c->q4_ws       = NULL;
        c->q4_ws_bytes = 0;
    }
    LLMRT_TRY(dev_alloc(c, need, &c->q4_ws, err));
    c->q4_ws_bytes = need;
    /* the split-K tile counters at its head start at zero (the kernels leave them so) */
    int rc = llmrt_cuda_q4_workspace_init(c->stream, c->q4_ws, need);
    if (rc) return fail(c, llmrt_cuda_check(c->dev, rc, "4-bit workspace"), err, "4-bit workspace");
    return LLMRT_OK;
}

/* The workspace every 4-bit shape uploaded so far needs for up to max_rows rows (grouped fused
 * launches included). Only the row counts where a kernel's plan can peak are evaluated: 1..8
 * (GEMV), the ends of the GEMM's m-tile sizes (16, 32, 64), every multiple of 64 (the split
 * count is constant between them, so the partials grow with M up to the next one) and max_rows
 * itself. */
static uint64_t q4_ws_need(const cuda_ctx *c, int64_t max_rows) {
    uint64_t need = 0;
    for (int32_t i = 0; i < c->n_q4_shapes; i++) {
        for (int64_t M = 1; M <= max_rows; M = M < 8 ? M + 1 : M < 64 ? M * 2 : M + 64) {
            uint64_t b = llmrt_cuda_q4_workspace_bytes(M, &c->q4_shapes[i]);
            if (b > need) need = b;
        }
        uint64_t b = llmrt_cuda_q4_workspace_bytes(max_rows, &c->q4_shapes[i]);
        if (b > need) need = b;
        /* a grouped fused launch (q4_matmul_fused) holds the partials of up to 3 weights at once:
         * at most 3 of the largest shape's */
        const llmrt_cuda_q4_weight *g[LLMRT_CUDA_FUSED_MAX_W];
        for (int32_t j = 0; j < LLMRT_CUDA_FUSED_MAX_W; j++) g[j] = &c->q4_shapes[i];
        for (int64_t M = 1; M <= max_rows && M <= LLMRT_CUDA_Q4_GEMV_MAX_M; M++) {
            b = llmrt_cuda_q4_fused_workspace_bytes(M, LLMRT_CUDA_FUSED_MAX_W, g);
            if (b > need) need = b;
        }
    }
    return need;
}

/* out[rows, N] (fp16, or fp32 for the logits) = x · Wᵀ + bias through the 4-bit kernels. */
static llmrt_cuda_status q4_matmul(cuda_ctx *c, void *out, llmrt_cuda_dtype out_t, const void *x,
                                   int64_t rows, const llmrt_bweight *w, const char *what) {
    const llmrt_cuda_q4_weight *q = w->aux;
    uint64_t need = llmrt_cuda_q4_workspace_bytes(rows, q);
    if (need > c->q4_ws_bytes) { /* reserve did not see this batch size (or this shape) */
        llmrt_error  e      = {0};
        int64_t      before = c->stats.device_allocs;
        llmrt_status s      = q4_ws_grow(c, need, &e);
        c->stats.batch_allocs += c->stats.device_allocs - before;
        if (s != LLMRT_OK) return s == LLMRT_ERR_OUT_OF_MEMORY ? LLMRT_CUDA_ERR_OOM : LLMRT_CUDA_ERR_FAILED;
    }
    int rc = llmrt_cuda_q4_matmul(c->stream, out, out_t, x, rows, q, w->bias, c->q4_ws,
                                  c->q4_ws_bytes, LLMRT_CUDA_Q4_AUTO);
    return rc ? llmrt_cuda_check(c->dev, rc, what) : LLMRT_CUDA_OK;
}

static llmrt_status cuda_rope_init(llmrt_backend *be, const float *inv_freq, int32_t half_dim,
                                   llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    if (half_dim < 1 || half_dim > 128)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "cuda backend: head_dim %d is not supported (2..256)", 2 * half_dim);
    dev_free(c, c->inv_freq);
    c->inv_freq = NULL;
    LLMRT_TRY(dev_alloc(c, (uint64_t)half_dim * sizeof(float), (void **)&c->inv_freq, err));
    c->half_dim = half_dim;
    return cuda_upload(be, c->inv_freq, inv_freq, (uint64_t)half_dim * sizeof(float), err);
}

/* --------------------------------------------------------------------------------------------- */
/* per-batch state                                                                               */
/* --------------------------------------------------------------------------------------------- */

/* (section "LoRA adapters") */
static llmrt_status lora_begin_batch(cuda_ctx *c, const llmrt_batch_plan *plan, char *h,
                                     llmrt_error *err);
static llmrt_status lora_tmp_grow(cuda_ctx *c, int64_t floats, llmrt_error *err);

static int64_t align8(int64_t x) {
    return (x + 7) & ~(int64_t)7;
}

/* (Re)allocates the plan buffers for the given capacities (never shrinks). */
static llmrt_status grow_plan(cuda_ctx *c, int64_t tokens, int64_t outputs, int64_t table,
                              llmrt_error *err) {
    if (tokens <= c->cap_tokens && outputs <= c->cap_outputs && table <= c->cap_table)
        return LLMRT_OK;
    if (tokens < c->cap_tokens) tokens = c->cap_tokens;
    if (outputs < c->cap_outputs) outputs = c->cap_outputs;
    if (table < c->cap_table) table = c->cap_table;
    if (c->plan_in_flight) {
        llmrt_cuda_status st = llmrt_cuda_sync(c->dev);
        if (st != LLMRT_CUDA_OK) return fail(c, st, err, "plan upload");
        c->plan_in_flight = false;
    }
    dev_free(c, c->plan_dev);
    llmrt_cuda_host_free(c->dev, c->plan_host);
    c->plan_dev = c->plan_host = NULL;
    c->cap_tokens = c->cap_outputs = c->cap_table = 0;
    int64_t off       = align8(tokens * 8); /* slots */
    c->off_tokens     = off, off += tokens * 4;
    c->off_positions  = off, off += tokens * 4;
    c->off_seq_of     = off, off += tokens * 4;
    c->off_q_start    = off, off += tokens * 4;
    c->off_q_len      = off, off += tokens * 4;
    c->off_ctx_len    = off, off += tokens * 4;
    c->off_seq_slot   = off, off += tokens * 4;
    c->off_lora_slot  = off, off += tokens * 4;
    c->off_lora_scale = off, off += tokens * 4;
    c->off_lora_tile_row = off, off += tokens * 4;
    c->off_lora_tile_len = off, off += tokens * 4;
    c->off_out_rows   = off, off += outputs * 4;
    c->off_tables     = off, off += table * 4;
    LLMRT_TRY(dev_alloc(c, (uint64_t)off, &c->plan_dev, err));
    llmrt_cuda_status st = llmrt_cuda_host_alloc(c->dev, &c->plan_host, (uint64_t)off);
    if (st != LLMRT_CUDA_OK) return fail(c, st, err, "pinned staging of the batch plan");
    c->cap_tokens  = tokens;
    c->cap_outputs = outputs;
    c->cap_table   = table;
    return LLMRT_OK;
}

/* Chooses the attention kernels for `shape` through `supports`, once per shape and before any
 * forward (reserve runs when the KV cache is created): the flash kernels (attention.h) when they
 * take the head dim and dtype, their split-KV decode kernel for decode-only steps when it also
 * takes the GQA group, else the naive kernel. The naive kernel is a declared path, not a
 * fallback: it is a correct implementation of the same op (the reference the flash kernels are
 * tested against), so it is logged at INFO and not reported in llmrt_model_info's fallback
 * field. A forward never changes the choice. */
static void choose_attention(llmrt_backend *be, const llmrt_attn_shape *s) {
    cuda_ctx *c = ctx_of(be);
    if (c->attn_chosen && c->attn_shape.head_dim == s->head_dim &&
        c->attn_shape.n_heads == s->n_heads && c->attn_shape.n_kv_heads == s->n_kv_heads &&
        c->attn_shape.kv_dtype == s->kv_dtype)
        return;
    llmrt_op_query q = {.op = LLMRT_BOP_FLASH_ATTENTION, .dtype = c->act_dtype,
                        .head_dim = s->head_dim, .n_heads = s->n_heads,
                        .n_kv_heads = s->n_kv_heads, .kv_dtype = s->kv_dtype};
    char why[256] = "";
    c->flash        = cuda_supports(be, &q, why, sizeof why);
    c->flash_decode = c->flash && s->n_kv_heads > 0 &&
                      s->n_heads / s->n_kv_heads <= DECODE_MAX_GROUP;
    c->attn_shape   = *s;
    c->attn_chosen  = true;
    if (c->flash)
        llmrt_log(LLMRT_LOG_INFO, "cuda backend: flash attention for head_dim %d (%s), %s decode",
                  s->head_dim, llmrt_dtype_name(c->act_dtype),
                  c->flash_decode ? "split-KV" : "prefill-kernel");
    else
        llmrt_log(LLMRT_LOG_INFO, "cuda backend: naive attention for head_dim %d (%s): %s",
                  s->head_dim, llmrt_dtype_name(c->act_dtype), why);
}

static llmrt_status cuda_reserve(llmrt_backend *be, int64_t max_tokens, int64_t max_outputs,
                                 int64_t max_seqs, int64_t max_blocks,
                                 const llmrt_attn_shape *shape, llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    LLMRT_TRY(check_state(c, err));
    graphs_clear(c); /* new bounds: new buffers, a new table stride */
    c->graph_stride = max_blocks > INT32_MAX ? INT32_MAX : (int32_t)max_blocks;
    LLMRT_TRY(grow_plan(c, max_tokens, max_outputs, max_seqs * max_blocks, err));
    LLMRT_TRY(q4_ws_grow(c, q4_ws_need(c, max_tokens > max_outputs ? max_tokens : max_outputs), err));
    LLMRT_TRY(perm_x_grow(c, (uint64_t)(max_tokens > max_outputs ? max_tokens : max_outputs) *
                                 (uint64_t)c->perm_max_cols * (uint64_t)be->act_bytes, err));
    LLMRT_TRY(lora_tmp_grow(c, max_tokens * c->lora_max_splits * c->lora_max_rank, err));
    choose_attention(be, shape);
#ifdef LLMRT_CUDA_HAVE_FLASH_ATTN
    /* decode steps have one entry per output row (each decoding sequence has one) */
    if (c->flash_decode && max_outputs > c->decode_cap) {
        uint64_t bytes = llmrt_cuda_attention_decode_workspace_bytes(
            (int32_t)max_outputs, shape->n_heads, shape->head_dim, DECODE_MAX_SPLITS);
        if (bytes > 0) {
            dev_free(c, c->decode_ws);
            c->decode_ws       = NULL;
            c->decode_cap      = 0;
            c->decode_ws_bytes = 0;
            LLMRT_TRY(dev_alloc(c, bytes, &c->decode_ws, err));
            c->decode_ws_bytes = bytes;
            c->decode_cap      = max_outputs;
        }
    }
#endif
    return LLMRT_OK;
}

static llmrt_status cuda_begin_batch(llmrt_backend *be, const llmrt_batch_plan *plan,
                                     llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    LLMRT_TRY(check_state(c, err));
    c->stats.forwards++;
    if (c->fault_at > 0 && c->stats.forwards == c->fault_at) {
        llmrt_cuda_status st = llmrt_cuda_inject_fault(c->dev);
        if (st != LLMRT_CUDA_OK) return fail(c, st, err, "begin_batch");
    }
    int64_t T = plan->n_tokens, n_table = (int64_t)plan->n_seqs * plan->max_blocks;
    if (T > c->cap_tokens || plan->n_outputs > c->cap_outputs || n_table > c->cap_table) {
        int64_t before = c->stats.device_allocs;
        LLMRT_TRY(grow_plan(c, T, plan->n_outputs, n_table, err));
        c->stats.batch_allocs += c->stats.device_allocs - before;
    }
    if (c->plan_in_flight) { /* the previous step failed before its final sync */
        llmrt_cuda_status st = llmrt_cuda_sync(c->dev);
        if (st != LLMRT_CUDA_OK) return fail(c, st, err, "begin_batch");
        c->plan_in_flight = false;
    }
    char *h = c->plan_host;
    memcpy(h, plan->slots, (size_t)T * 8);
    memcpy(h + c->off_tokens, plan->tokens, (size_t)T * 4);
    memcpy(h + c->off_positions, plan->positions, (size_t)T * 4);
    memcpy(h + c->off_seq_of, plan->seq_of, (size_t)T * 4);
    memcpy(h + c->off_out_rows, plan->output_rows, (size_t)plan->n_outputs * 4);
    memcpy(h + c->off_tables, plan->block_tables, (size_t)n_table * 4);
    LLMRT_TRY(lora_begin_batch(c, plan, h, err));
    /* Attention entries for the varlen kernels: maximal runs of tokens of one sequence at
     * consecutive positions, in batch order (the engine's batches give one run per sequence;
     * any other order still works, as more, shorter runs). */
    int32_t *q_start = (int32_t *)(h + c->off_q_start), *q_len = (int32_t *)(h + c->off_q_len);
    int32_t *ctx_len = (int32_t *)(h + c->off_ctx_len), *seq_slot = (int32_t *)(h + c->off_seq_slot);
    int32_t  n = 0, max_ctx = 0;
    bool     all_decode = true;
    for (int32_t t = 0; t < T; t++) {
        int32_t pos = plan->positions[t], seq = plan->seq_of[t];
        if (n > 0 && seq_slot[n - 1] == seq && ctx_len[n - 1] == pos) {
            q_len[n - 1]++;
            ctx_len[n - 1] = pos + 1;
            all_decode     = false;
        } else {
            q_start[n]  = t;
            q_len[n]    = 1;
            ctx_len[n]  = pos + 1;
            seq_slot[n] = seq;
            n++;
        }
        if (pos + 1 > max_ctx) max_ctx = pos + 1;
    }
    c->n_tokens   = (int32_t)T;
    c->n_seqs     = plan->n_seqs;
    c->max_blocks = plan->max_blocks;
    c->n_outputs  = plan->n_outputs;
    c->n_entries  = n;
    c->max_ctx    = max_ctx;
    c->all_decode = all_decode;
    /* a decode step within a bucket: padded plan (graph_plan), then recorded or replayed */
    int64_t upload = graph_plan(c, plan, h);
    if (upload == 0) upload = c->off_tables + n_table * 4;
    llmrt_cuda_status st = llmrt_cuda_upload(c->dev, c->plan_dev, c->plan_host, (uint64_t)upload, 0);
    if (st != LLMRT_CUDA_OK) {
        c->graph_mode = GRAPH_OFF;
        return fail(c, st, err, "begin_batch: plan upload");
    }
    c->plan_in_flight = true;
    if (c->graph_mode == GRAPH_CAPTURE) {
        st = llmrt_cuda_capture_begin(c->dev);
        if (st != LLMRT_CUDA_OK) {
            c->graph_mode = GRAPH_OFF;
            return fail(c, st, err, "begin_batch: decode graph capture");
        }
    }
    return LLMRT_OK;
}

#define PLAN(c, off, type) ((type *)((char *)(c)->plan_dev + (c)->off))

/* --------------------------------------------------------------------------------------------- */
/* ops                                                                                           */
/* --------------------------------------------------------------------------------------------- */

static void cuda_embed(llmrt_backend *be, void *out, const llmrt_bweight *table) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c) || graph_op(c, 1, out, table->data, NULL, table->cols, 0)) return;
    if (weight_permuted(table)) { /* its columns would come out in stored order */
        note_failure(c, LLMRT_CUDA_ERR_INVALID, "embed: an act-order (permuted) table");
        return;
    }
    if (ggml_type_of(table->dtype) >= 0) { /* a GGUF block table: rows dequantised to fp32 */
        launched(c, llmrt_cuda_ggml_embed(c->stream, out, table->data, ggml_type_of(table->dtype),
                                          PLAN(c, off_tokens, int32_t), c->n_tokens, table->cols),
                 "embed");
        return;
    }
    launched(c, llmrt_cuda_embed(c->stream, out, LLMRT_CUDA_F32, table->data, c->act,
                                 PLAN(c, off_tokens, int32_t), c->n_tokens, table->cols),
             "embed");
}

static void cuda_rmsnorm(llmrt_backend *be, void *out, const void *x, const void *w, int64_t D,
                         float eps) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c) || graph_op(c, 2, out, x, w, D, eps)) return;
    /* x is the fp32 residual (not written without a delta) */
    launched(c, llmrt_cuda_add_rmsnorm(c->stream, out, c->act, (float *)x, NULL, c->act, w,
                                       c->n_tokens, D, eps),
             "rmsnorm");
}

static void cuda_add_rmsnorm(llmrt_backend *be, void *x, const void *delta, void *out,
                             const void *w, int64_t D, float eps) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c)) return;
    bool replay = graph_op(c, 3, x, delta, out, D, eps);
    if (graph_op(c, 3, w, NULL, NULL, 0, 0) || replay) return; /* (both fingerprinted) */
    launched(c, llmrt_cuda_add_rmsnorm(c->stream, out, c->act, x, delta, c->act, w, c->n_tokens,
                                       D, eps),
             "add_rmsnorm");
}

static void cuda_add(llmrt_backend *be, void *x, const void *delta, int64_t D) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c) || graph_op(c, 4, x, delta, NULL, D, 0)) return;
    launched(c, llmrt_cuda_add(c->stream, x, delta, c->act, (int64_t)c->n_tokens * D), "add");
}

static void cuda_matmul(llmrt_backend *be, void *out, const void *x, int64_t rows,
                        const llmrt_bweight *w) {
    cuda_ctx *c = ctx_of(be);
    rows = graph_rows(c, rows); /* a graph step's padded batch */
    if (skip(c) || graph_op(c, 5, out, x, w->data, rows, 0)) return;
    c->stats.launches++;
    if (w->dtype == LLMRT_DTYPE_Q4) { /* the bias is fused into the 4-bit kernels */
        note_failure(c, q4_matmul(c, out, c->act, x, rows, w, "4-bit matmul"), "4-bit matmul");
        return;
    }
    if (ggml_type_of(w->dtype) >= 0) { /* GGUF blocks, bias fused */
        note_failure(c, ggml_matmul(c, out, c->act, x, rows, w, "GGUF block matmul"),
                     "GGUF block matmul");
        return;
    }
    llmrt_cuda_status st = llmrt_cuda_gemm(c->dev, out, c->act, x, w->data, c->act, rows, w->rows,
                                           w->cols);
    if (st != LLMRT_CUDA_OK) {
        note_failure(c, st, "matmul");
        return;
    }
    if (w->bias)
        launched(c, llmrt_cuda_add_bias(c->stream, out, c->act, w->bias, rows, w->rows), "bias");
}

/* -- the 8-bit KV cache (kv_dtype I8 / F8_E4M3: cuda/kv8.cuh) -- */
static llmrt_cuda_kv kv8_of(llmrt_dtype kv) {
    return kv == LLMRT_DTYPE_I8 ? LLMRT_CUDA_KV_INT8 : LLMRT_CUDA_KV_FP8;
}

static void rope_kv8_write(cuda_ctx *c, void *q, void *k, const void *v, void *k_pool,
                           void *v_pool, const llmrt_attn_shape *s) {
    launched(c, llmrt_cuda_rope_kv8(c->stream, c->act, kv8_of(s->kv_dtype), q, k, v, k_pool,
                                    v_pool, PLAN(c, off_positions, int32_t),
                                    (const int64_t *)c->plan_dev /* slots at offset 0 */,
                                    c->inv_freq, c->n_tokens, s->n_heads, s->n_kv_heads,
                                    s->head_dim, s->block_size),
             "rope_kv_write");
}

static void attention_naive_kv8(cuda_ctx *c, void *out, const void *q, const void *k_pool,
                                const void *v_pool, const llmrt_attn_shape *s) {
    launched(c, llmrt_cuda_attention_naive_kv8(
                    c->stream, c->act, kv8_of(s->kv_dtype), out, q, k_pool, v_pool,
                    PLAN(c, off_positions, int32_t), PLAN(c, off_seq_of, int32_t),
                    PLAN(c, off_tables, int32_t), c->max_blocks, c->n_tokens, s->n_heads,
                    s->n_kv_heads, s->head_dim, s->block_size, s->scale, s->window),
             "attention");
}

static void cuda_rope_kv_write(llmrt_backend *be, void *q, void *k, const void *v, void *k_cache,
                               void *v_cache, const llmrt_attn_shape *s) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c)) return;
    bool replay = graph_op(c, 6, q, k, v, s->n_heads, 0);
    if (graph_op(c, 6, k_cache, v_cache, NULL, s->n_kv_heads, 0) || replay) return;
    if (s->head_dim != 2 * c->half_dim) {
        note_failure(c, LLMRT_CUDA_ERR_INVALID, "rope_kv_write: head_dim differs from rope_init");
        return;
    }
    if (llmrt_kv_dtype_is_8bit(s->kv_dtype)) {
        rope_kv8_write(c, q, k, v, k_cache, v_cache, s);
        return;
    }
    launched(c, llmrt_cuda_rope_kv(c->stream, c->act, q, k, v, k_cache, v_cache,
                                   PLAN(c, off_positions, int32_t),
                                   (const int64_t *)c->plan_dev /* slots at offset 0 */, c->inv_freq, c->n_tokens, s->n_heads, s->n_kv_heads, s->head_dim),
             "rope_kv_write");
}

#ifdef LLMRT_CUDA_HAVE_FLASH_ATTN
/* The split-KV count of a decode step, chosen by attention.h's heuristic for the step's bucket
 * (its batch size rounded up to a power of two) and a sequence's whole KV capacity (the
 * reservation's table width), not for this batch's size and longest context: a graph recorded for
 * a bucket and an eager step of any batch in it then run the same split count, so graph replay
 * and eager decode give the same bits, and a sequence's result does not depend on the other
 * sequences' lengths. Short contexts leave the later splits empty (their CTAs exit at once).
 * 0 (the heuristic on the batch itself) when the reservation is unknown. */
static int32_t decode_splits(cuda_ctx *c, const llmrt_attn_shape *s,
                             const llmrt_cuda_attn_args *a) {
    if (c->graph_stride <= 0) return 0;
    llmrt_cuda_attn_args q = *a;
    int32_t slot = graph_bucket_slot(c->n_entries);
    q.n_seqs      = slot < GRAPH_MAX_BUCKETS ? 1 << slot : c->n_entries;
    int64_t cap   = (int64_t)c->graph_stride * s->block_size;
    q.max_ctx_len = cap > INT32_MAX ? INT32_MAX : (int32_t)cap;
    q.num_splits  = 0;
    char msg[256] = "";
    int  n        = llmrt_cuda_attention_decode_num_splits(&q, msg, sizeof msg);
    return n > 0 ? n : 0;
}
#endif

static void cuda_attention(llmrt_backend *be, void *out, const void *q, const void *k_cache,
                           const void *v_cache, const llmrt_attn_shape *s) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c)) return;
    bool replay = graph_op(c, 7, out, q, k_cache, s->n_heads, s->scale);
    if (graph_op(c, 7, v_cache, NULL, NULL, (int64_t)s->window << 32 | (uint32_t)s->head_dim, 0) ||
        replay)
        return;
    if (!c->attn_chosen) choose_attention(be, s); /* a caller that never reserved */
#ifdef LLMRT_CUDA_HAVE_FLASH_ATTN
    if (c->flash) {
        bool decode = c->flash_decode && c->all_decode && c->decode_ws &&
                      c->n_entries <= c->decode_cap;
        llmrt_cuda_attn_args a = {
            .q = q, .out = out, .k_cache = k_cache, .v_cache = v_cache,
            .block_tables = PLAN(c, off_tables, int32_t), .q_start = PLAN(c, off_q_start, int32_t),
            .q_len = PLAN(c, off_q_len, int32_t), .ctx_len = PLAN(c, off_ctx_len, int32_t),
            .seq_slot = PLAN(c, off_seq_slot, int32_t), .n_seqs = c->n_entries,
            .n_tokens = c->n_tokens, .n_heads = s->n_heads, .n_kv_heads = s->n_kv_heads,
            .head_dim = s->head_dim, .block_size = s->block_size, .max_blocks = c->max_blocks,
            .max_ctx_len = c->max_ctx, .scale = s->scale,
            .dtype = c->act == LLMRT_CUDA_BF16 ? LLMRT_CUDA_ATTN_BF16 : LLMRT_CUDA_ATTN_F16,
            .workspace = decode ? c->decode_ws : NULL,
            .workspace_bytes = decode ? c->decode_ws_bytes : 0, .num_splits = 0,
            .window = s->window,
            .kv = llmrt_kv_dtype_is_8bit(s->kv_dtype) ? (int32_t)kv8_of(s->kv_dtype)
                                                      : LLMRT_CUDA_KV_ACT,
        };
        if (decode) a.num_splits = decode_splits(c, s, &a); /* 0: the heuristic */
        c->stats.launches += 1 + (decode && a.num_splits > 1); /* + the split-KV combine */
        char msg[256] = "";
        int  rc = decode ? llmrt_cuda_attention_decode(&a, c->stream, msg, sizeof msg)
                         : llmrt_cuda_attention_prefill(&a, c->stream, msg, sizeof msg);
        if (rc == LLMRT_CUDA_ATTN_OK) {
            c->stats.flash_attention++;
            return;
        }
        /* the shape was accepted when the kernel was chosen: any refusal now is a failure of
         * this forward (never a switch to another kernel mid-run) */
        char what[320];
        snprintf(what, sizeof what, "attention: %s", msg);
        note_failure(c, rc == LLMRT_CUDA_ATTN_ECUDA ? llmrt_cuda_check_last(c->dev, what)
                                                    : LLMRT_CUDA_ERR_INVALID,
                     what);
        return;
    }
#endif
    c->stats.naive_attention++;
    if (llmrt_kv_dtype_is_8bit(s->kv_dtype)) {
        attention_naive_kv8(c, out, q, k_cache, v_cache, s);
        return;
    }
    launched(c, llmrt_cuda_attention_naive(c->stream, c->act, out, q, k_cache, v_cache,
                                           PLAN(c, off_positions, int32_t),
                                           PLAN(c, off_seq_of, int32_t), PLAN(c, off_tables, int32_t),
                                           c->max_blocks, c->n_tokens, s->n_heads, s->n_kv_heads,
                                           s->head_dim, s->block_size, s->scale, s->window),
             "attention");
}

static void cuda_swiglu(llmrt_backend *be, void *out, const void *gate, const void *up, int64_t F) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c) || graph_op(c, 8, out, gate, up, F, 0)) return;
    launched(c, llmrt_cuda_swiglu(c->stream, c->act, out, gate, up, (int64_t)c->n_tokens * F),
             "swiglu");
}

static void cuda_gather_outputs(llmrt_backend *be, void *out, const void *x, int64_t D) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c) || graph_op(c, 9, out, x, NULL, D, 0)) return;
    launched(c, llmrt_cuda_gather_rows(c->stream, c->act, out, x, PLAN(c, off_out_rows, int32_t),
                                       c->n_outputs, D),
             "gather_outputs");
}

/* Enqueues the lm_head in fp32: scratch[rows, N] = x · Wᵀ (+ bias); *what names a failure. */
static llmrt_cuda_status lm_head_enqueue(cuda_ctx *c, void *scratch, const void *x, int64_t rows,
                                         const llmrt_bweight *w, const char **what) {
    llmrt_cuda_status st;
    c->stats.launches++;
    if (w->dtype == LLMRT_DTYPE_Q4) { /* 4-bit lm_head (GPTQ lm_head: true), bias fused */
        *what = "4-bit lm_head";
        return q4_matmul(c, scratch, LLMRT_CUDA_F32, x, rows, w, "4-bit lm_head");
    }
    if (ggml_type_of(w->dtype) >= 0) { /* GGUF blocks (a K-quant output.weight or tied table) */
        *what = "GGUF block lm_head";
        return ggml_matmul(c, scratch, LLMRT_CUDA_F32, x, rows, w, "GGUF block lm_head");
    }
    *what = "lm_head";
    st    = llmrt_cuda_gemm(c->dev, scratch, LLMRT_CUDA_F32, x, w->data, c->act, rows, w->rows,
                            w->cols);
    if (st != LLMRT_CUDA_OK || !w->bias) return st;
    *what = "lm_head bias";
    c->stats.launches++;
    int rc = llmrt_cuda_add_bias(c->stream, scratch, LLMRT_CUDA_F32, w->bias, rows, w->rows);
    return rc ? llmrt_cuda_check(c->dev, rc, "lm_head bias") : LLMRT_CUDA_OK;
}

/* The forward's last call: lm_head in fp32, then the one host synchronisation of the step (a
 * graph step records the lm_head too, then launches its graph: graph_logits). */
static llmrt_status cuda_logits(llmrt_backend *be, float *host, void *scratch, const void *x,
                                int64_t rows, const llmrt_bweight *w, llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    if (c->graph_mode != GRAPH_OFF) return graph_logits(c, host, scratch, x, rows, w, err);
    LLMRT_TRY(check_state(c, err));
    const char       *what = "lm_head";
    llmrt_cuda_status st   = lm_head_enqueue(c, scratch, x, rows, w, &what);
    if (st != LLMRT_CUDA_OK) return fail(c, st, err, what);
    st = llmrt_cuda_download(c->dev, host, scratch, (uint64_t)(rows * w->rows) * sizeof(float));
    if (st != LLMRT_CUDA_OK) return fail(c, st, err, "logits download");
    c->plan_in_flight = false;
    return check_state(c, err);
}

static llmrt_status cuda_download_f32(llmrt_backend *be, float *host, const void *act, int64_t n,
                                      llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    LLMRT_TRY(check_state(c, err));
    if (n > c->f32_cap) { /* off the forward's path (the logits op downloads the logits) */
        dev_free(c, c->f32_scratch);
        c->f32_scratch = NULL;
        c->f32_cap     = 0;
        LLMRT_TRY(dev_alloc(c, (uint64_t)n * sizeof(float), (void **)&c->f32_scratch, err));
        c->f32_cap = n;
    }
    int rc = llmrt_cuda_convert(c->stream, c->f32_scratch, LLMRT_CUDA_F32, act, c->act, n);
    if (rc) return fail(c, llmrt_cuda_check(c->dev, rc, "download_f32"), err, "download_f32");
    llmrt_cuda_status st =
        llmrt_cuda_download(c->dev, host, c->f32_scratch, (uint64_t)n * sizeof(float));
    if (st != LLMRT_CUDA_OK) return fail(c, st, err, "download_f32");
    c->plan_in_flight = false;
    return check_state(c, err);
}

static llmrt_status cuda_copy(llmrt_backend *be, void *dst, const void *src, uint64_t bytes,
                              llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    LLMRT_TRY(check_state(c, err));
    if (!bytes) return LLMRT_OK;
    if (bytes % (uint64_t)be->act_bytes)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "copy: %llu bytes is not whole elements",
                         (unsigned long long)bytes);
    /* device to device in stream order: a same-dtype convert is a plain element copy */
    int rc = llmrt_cuda_convert(c->stream, dst, c->act, src, c->act,
                                (int64_t)(bytes / (uint64_t)be->act_bytes));
    if (rc) return fail(c, llmrt_cuda_check(c->dev, rc, "copy"), err, "copy");
    return LLMRT_OK;
}

/* --------------------------------------------------------------------------------------------- */
/* decode graphs                                                                                 */
/* --------------------------------------------------------------------------------------------- */

/* A decode-only step (every sequence one new token, its logits row wanted) runs as one CUDA graph
 * of the whole forward (every layer, the final norm and the lm_head) per bucket of batch sizes
 * 1, 2, 4, 8, ... up to the reservation (reserve's max_tokens and max_outputs):
 *  - begin_batch (graph_plan) pads the batch to its bucket B: the plan arrays live at fixed
 *    offsets of the device plan buffer and are uploaded by the step's one async copy as always;
 *    the block tables are repacked at a fixed stride (reserve's max_blocks); a padding row embeds
 *    token 0, attends to one key (an extra table row pointing at the block that holds the first
 *    token's new KV, a live block whatever the window) and writes no KV (slot -1: rope_kv.cu
 *    skips it); its rows are never downloaded. Every row's result depends on its own inputs
 *    only, so padding changes no real row, and a padding row costs one key of attention.
 *  - The first step of a bucket captures the ops (stream capture: recorded, not run), the logits
 *    op ends the capture, instantiates the graph and launches it; later steps of the bucket
 *    replay it (the ops only check that they are the recorded ones: a fingerprint of every op
 *    and argument, compared at the logits op) after the plan upload: one async copy, one graph
 *    launch, one logits download.
 *  - Eager instead: prefill and mixed steps, a batch larger than the largest bucket, rows with a
 *    LoRA adapter (the per-token tiles change every step), a step of a tensor-parallel group
 *    (plan->may_capture: collectives run between the ops), output rows other than one per
 *    sequence in order, and every step with llmrt_cuda_options.enforce_eager.
 *  - Every graph is dropped (and captured again on the bucket's next step) when device memory is
 *    freed (the KV cache or a workspace reallocated: a graph holds their addresses) and when
 *    reserve sets new bounds; a step of another KV cache (plan->capture_key) records its
 *    bucket's graph anew (two caches used in turn re-capture every step: correct, not fast). A capture that fails (a prohibited call during it) fails that step
 *    and turns graphs off for the backend, with a warning.
 * The decode attention's split count follows the bucket in both paths (decode_splits), so replay
 * and eager decode agree to the bit. */

static int32_t graph_bucket_slot(int64_t n) {
    int32_t slot = 0;
    while (slot < GRAPH_MAX_BUCKETS && ((int64_t)1 << slot) < n) slot++;
    return slot;
}

static void graphs_clear(cuda_ctx *c) {
    bool any = false;
    for (int32_t i = 0; i < GRAPH_MAX_BUCKETS; i++) {
        if (!c->graphs[i].exec) continue;
        llmrt_cuda_graph_destroy(c->dev, c->graphs[i].exec);
        c->graphs[i].exec = NULL;
        any               = true;
    }
    if (any) c->stats.graph_rebuilds++;
}

/* Ends a graph step that did not reach its logits op (the recorded ops are dropped); with `why`,
 * the step's loss becomes the pending failure. */
static void graph_abandon(cuda_ctx *c, const char *why) {
    if (c->graph_mode == GRAPH_CAPTURE) {
        void   *exec  = NULL;
        int64_t nodes = 0;
        if (llmrt_cuda_capture_end(c->dev, &exec, &nodes) == LLMRT_CUDA_OK)
            llmrt_cuda_graph_destroy(c->dev, exec);
    }
    c->graph_mode = GRAPH_OFF;
    if (why && c->pending == LLMRT_OK) {
        c->pending = LLMRT_ERR_INTERNAL;
        snprintf(c->pending_msg, sizeof c->pending_msg, "decode graph step interrupted: %s", why);
    }
}

/* FNV-1a over one op's identity and arguments; true when the op must not launch (a replay). */
static bool graph_op(cuda_ctx *c, int op, const void *a, const void *b, const void *w, int64_t n,
                     float f) {
    if (c->graph_mode == GRAPH_OFF) return false;
    uint32_t fb;
    memcpy(&fb, &f, sizeof fb);
    uint64_t v[] = {(uint64_t)op, (uint64_t)(uintptr_t)a, (uint64_t)(uintptr_t)b,
                    (uint64_t)(uintptr_t)w, (uint64_t)n, fb};
    uint64_t h   = c->graph_hash;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        for (int k = 0; k < 8; k++) h = (h ^ ((v[i] >> (8 * k)) & 0xff)) * 0x100000001b3ULL;
    c->graph_hash = h;
    return c->graph_mode == GRAPH_REPLAY;
}

/* A graph step's matmuls run over the padded batch. */
static int64_t graph_rows(const cuda_ctx *c, int64_t rows) {
    return c->graph_mode != GRAPH_OFF && rows == c->graph_real ? c->n_tokens : rows;
}

/* begin_batch's part: whether this step runs as a graph; if so, pads the staged plan (h) to the
 * bucket and returns the bytes to upload, else 0 (graph_mode GRAPH_OFF). */
static int64_t graph_plan(cuda_ctx *c, const llmrt_batch_plan *plan, char *h) {
    c->graph_mode = GRAPH_OFF;
    int32_t T = plan->n_tokens;
    if (!c->all_decode || c->n_entries != T) return 0; /* prefill or mixed: eager */
    int32_t slot = graph_bucket_slot(T);
    int64_t B = (int64_t)1 << (slot < GRAPH_MAX_BUCKETS ? slot : 0), G = c->graph_stride;
    bool ok = c->graphs_on && plan->may_capture && !c->lora_active && plan->n_outputs == T &&
              slot < GRAPH_MAX_BUCKETS && B <= c->cap_tokens && B <= c->cap_outputs && G > 0 &&
              plan->max_blocks <= G && (int64_t)(plan->n_seqs + 1) * G <= c->cap_table &&
              plan->capture_key && plan->block_size > 0;
    for (int32_t t = 0; ok && t < T; t++) ok = plan->output_rows[t] == t;
    if (!ok) {
        c->stats.graph_eager++;
        return 0;
    }
    int64_t *slots = (int64_t *)h;
    int32_t *tokens = (int32_t *)(h + c->off_tokens), *pos = (int32_t *)(h + c->off_positions);
    int32_t *seq_of = (int32_t *)(h + c->off_seq_of), *rows = (int32_t *)(h + c->off_out_rows);
    int32_t *q_start = (int32_t *)(h + c->off_q_start), *q_len = (int32_t *)(h + c->off_q_len);
    int32_t *ctx_len = (int32_t *)(h + c->off_ctx_len), *seq_slot = (int32_t *)(h + c->off_seq_slot);
    int32_t *table = (int32_t *)(h + c->off_tables);
    /* block tables at the fixed stride G (entries past a row's own are never read), plus one
     * row for the padding: its entry 0 is the block the first token's own KV went to (held by
     * a running sequence, whatever the window) */
    int32_t pad_row = plan->n_seqs;
    memset(table, 0xff, (size_t)((int64_t)(pad_row + 1) * G) * 4);
    for (int32_t r = 0; r < plan->n_seqs; r++)
        memcpy(table + (int64_t)r * G, plan->block_tables + (int64_t)r * plan->max_blocks,
               (size_t)plan->max_blocks * 4);
    table[(int64_t)pad_row * G] =
        plan->block_tables[(int64_t)seq_slot[0] * plan->max_blocks + pos[0] / plan->block_size];
    for (int64_t t = T; t < B; t++) { /* padding rows: one key (position 0 of the padding row),
                                       * token 0, no KV write */
        slots[t]    = -1;
        tokens[t]   = 0;
        pos[t]      = 0;
        seq_of[t]   = pad_row;
        rows[t]     = (int32_t)t;
        q_start[t]  = (int32_t)t;
        q_len[t]    = 1;
        ctx_len[t]  = 1;
        seq_slot[t] = pad_row;
    }
    c->n_tokens   = (int32_t)B;
    c->n_outputs  = (int32_t)B;
    c->n_entries  = (int32_t)B;
    c->max_blocks = (int32_t)G;
    c->max_ctx    = 0; /* a kernel argument of the graph: not this step's value (0 = unknown) */
    c->graph_real = T;
    c->graph_slot = slot;
    c->graph_hash = 0xcbf29ce484222325ULL;
    c->graph_key  = plan->capture_key;
    /* another KV cache's graph is not replayed: this step records the bucket's graph anew */
    c->graph_mode = c->graphs[slot].exec && c->graphs[slot].key == plan->capture_key
                        ? GRAPH_REPLAY
                        : GRAPH_CAPTURE;
    (void)graph_op(c, 0, NULL, NULL, NULL, B << 32 | G, 0);
    return c->off_tables + (int64_t)(pad_row + 1) * G * 4;
}

/* The logits op of a graph step: records the lm_head and instantiates the graph (capture), or
 * checks the step's fingerprint (replay); launches the graph; downloads the real rows. */
static llmrt_status graph_logits(cuda_ctx *c, float *host, void *scratch, const void *x,
                                 int64_t rows, const llmrt_bweight *w, llmrt_error *err) {
    int32_t slot = c->graph_slot;
    int64_t B    = c->n_outputs;
    bool    capture = c->graph_mode == GRAPH_CAPTURE;
    (void)graph_op(c, 10, scratch, x, w->data, B, 0);
    if (capture) {
        const char       *what = "lm_head";
        llmrt_cuda_status st   = skip(c) ? LLMRT_CUDA_OK : lm_head_enqueue(c, scratch, x, B, w, &what);
        void             *exec = NULL;
        int64_t           nodes = 0;
        llmrt_cuda_status ce    = llmrt_cuda_capture_end(c->dev, &exec, &nodes);
        c->graph_mode           = GRAPH_OFF;
        if (st != LLMRT_CUDA_OK || skip(c)) { /* an op failed: its message first */
            llmrt_cuda_graph_destroy(c->dev, exec);
            return st != LLMRT_CUDA_OK ? fail(c, st, err, what) : check_state(c, err);
        }
        if (ce != LLMRT_CUDA_OK) {
            c->graphs_on       = false;
            c->stats.graphs_on = false;
            llmrt_log(LLMRT_LOG_WARN, "cuda backend: decode graph capture failed, decode steps "
                      "run eagerly from now on: %s", llmrt_cuda_dev_message(c->dev));
            return fail(c, ce, err, "decode graph capture");
        }
        llmrt_cuda_graph_destroy(c->dev, c->graphs[slot].exec); /* another cache's, if any */
        c->graphs[slot].exec = exec;
        c->graphs[slot].hash = c->graph_hash;
        c->graphs[slot].key  = c->graph_key;
        c->stats.graph_captures++;
        c->stats.graph_nodes = nodes;
    } else {
        c->graph_mode = GRAPH_OFF;
        if (skip(c)) return check_state(c, err); /* failed before the step (not fingerprinted) */
        if (!c->graphs[slot].exec || c->graphs[slot].hash != c->graph_hash) {
            graphs_clear(c);
            return llmrt_err(err, LLMRT_ERR_INTERNAL,
                             "cuda backend: the ops of a decode step differ from those its graph "
                             "recorded (bucket %lld); every graph dropped", (long long)B);
        }
        c->stats.graph_replays++;
    }
    c->stats.graph_bucket = (int32_t)B;
    llmrt_cuda_status st  = llmrt_cuda_graph_launch(c->dev, c->graphs[slot].exec);
    if (st != LLMRT_CUDA_OK) return fail(c, st, err, "decode graph launch");
    st = llmrt_cuda_download(c->dev, host, scratch, (uint64_t)(rows * w->rows) * sizeof(float));
    if (st != LLMRT_CUDA_OK) return fail(c, st, err, "logits download");
    c->plan_in_flight = false;
    return check_state(c, err);
}

/* --------------------------------------------------------------------------------------------- */
/* fused decode ops                                                                              */
/* --------------------------------------------------------------------------------------------- */

/* matmul_fused (backend.h) over cuda/fused_gemv.cu: a decode step's projections with their
 * RMSNorm / SwiGLU prologue and residual epilogue in one launch, and q, k, v (gate, up) in one
 * launch. Taken for up to LLMRT_CUDA_FUSED_MAX_M rows (a graph step's padded batch) of weights in
 * the activation dtype, whatever the bias; 4-bit weights (fp16 activations) run the q4 GEMV with
 * the same prologue, epilogue and grouping (q4_matmul_fused); declined otherwise,
 * and always with llmrt_cuda_options.unfused. Decode-only steps only (every sequence one token):
 * a prompt's rows keep the prefill kernels whatever the chunk size, so a prompt computed in a
 * short chunk (after a prefix-cache hit) gets the bits of the same rows in a long one. The kernel's row
 * results do not depend on the number of rows, so a padded graph step equals eager decode. */
static llmrt_cuda_fused_input fused_input_of(llmrt_fused_input in) {
    return in == LLMRT_FUSED_IN_RMSNORM  ? LLMRT_CUDA_FUSED_IN_RMSNORM
           : in == LLMRT_FUSED_IN_SWIGLU ? LLMRT_CUDA_FUSED_IN_SWIGLU
                                         : LLMRT_CUDA_FUSED_IN_ACT;
}

/* The graph fingerprint of a fused op (every pointer and value it reads); true on a replay. */
static bool fused_graph_op(cuda_ctx *c, int op, const llmrt_fused_matmul *f, int64_t rows) {
    const void *w1 = f->n_w > 1 ? f->w[1]->data : NULL, *w2 = f->n_w > 2 ? f->w[2]->data : NULL;
    bool replay = graph_op(c, op, f->out[0], f->x, f->w[0]->data, rows * 4 + f->input, f->eps);
    replay = graph_op(c, op, f->n_w > 1 ? f->out[1] : NULL, f->up, w1, f->n_w, 0) || replay;
    replay = graph_op(c, op, f->n_w > 2 ? f->out[2] : NULL, f->residual, w2, 0, 0) || replay;
    return graph_op(c, op, f->norm_w, NULL, NULL, 0, 0) || replay;
}

/* Grows the 4-bit workspace to `need` in a step (reserve did not see this shape); false, with
 * the failure noted, when that fails. */
static bool q4_fused_ws(cuda_ctx *c, uint64_t need) {
    if (need <= c->q4_ws_bytes) return true;
    llmrt_error  e      = {0};
    int64_t      before = c->stats.device_allocs;
    llmrt_status s      = q4_ws_grow(c, need, &e);
    c->stats.batch_allocs += c->stats.device_allocs - before;
    if (s == LLMRT_OK) return true;
    note_failure(c, s == LLMRT_ERR_OUT_OF_MEMORY ? LLMRT_CUDA_ERR_OOM : LLMRT_CUDA_ERR_FAILED,
                 "4-bit fused matmul workspace");
    return false;
}

/* The 4-bit form: the q4 GEMV with the prologue / epilogue, the weights of one input in one
 * grouped launch (llmrt_cuda_q4_matmul_fused), on the shared 4-bit workspace (q4_ws_need sizes
 * it for groups). Weights it does not take together (zero kinds or x widths that differ) run
 * one launch each. */
static bool q4_matmul_fused(cuda_ctx *c, const llmrt_fused_matmul *f, int64_t rows) {
    if (c->act != LLMRT_CUDA_F16 || rows > LLMRT_CUDA_Q4_GEMV_MAX_M) return false;
    bool                norm = f->input == LLMRT_FUSED_IN_RMSNORM;
    llmrt_cuda_q4_fused qf   = {.input    = fused_input_of(f->input),
                                .x        = norm ? NULL : f->x,
                                .resid_x  = norm ? f->x : NULL,
                                .norm_w   = f->norm_w,
                                .eps      = f->eps,
                                .up       = f->up,
                                .residual = f->residual,
                                .n_w      = f->n_w};
    for (int32_t i = 0; i < f->n_w; i++) {
        if (f->w[i]->dtype != LLMRT_DTYPE_Q4) return false;
        qf.w[i]    = f->w[i]->aux;
        qf.bias[i] = f->w[i]->bias;
        qf.out[i]  = f->out[i];
    }
    bool grouped = llmrt_cuda_q4_fused_check(rows, qf.n_w, qf.w) == 0;
    for (int32_t i = 0; i < f->n_w && !grouped; i++)
        if (llmrt_cuda_q4_fused_check(rows, 1, &qf.w[i]) != 0) return false;
    if (skip(c) || fused_graph_op(c, 12, f, rows)) return true;
    if (grouped) {
        if (!q4_fused_ws(c, llmrt_cuda_q4_fused_workspace_bytes(rows, qf.n_w, qf.w))) return true;
        launched(c, llmrt_cuda_q4_matmul_fused(c->stream, rows, &qf, c->q4_ws, c->q4_ws_bytes),
                 "4-bit fused matmul");
        return true;
    }
    for (int32_t i = 0; i < f->n_w && !skip(c); i++) {
        llmrt_cuda_q4_fused one = qf;
        one.n_w                 = 1;
        one.w[0]                = qf.w[i];
        one.bias[0]             = qf.bias[i];
        one.out[0]              = qf.out[i];
        if (!q4_fused_ws(c, llmrt_cuda_q4_fused_workspace_bytes(rows, 1, &one.w[0]))) return true;
        launched(c, llmrt_cuda_q4_matmul_fused(c->stream, rows, &one, c->q4_ws, c->q4_ws_bytes),
                 "4-bit fused matmul");
    }
    return true;
}

static bool cuda_matmul_fused(llmrt_backend *be, const llmrt_fused_matmul *f, int64_t rows) {
    cuda_ctx *c = ctx_of(be);
    rows = graph_rows(c, rows);
    if (c->unfused || !c->all_decode || rows < 1 || rows > LLMRT_CUDA_FUSED_MAX_M || f->n_w < 1 ||
        f->n_w > LLMRT_FUSED_MAX_W)
        return false;
    for (int32_t i = 0; i < f->n_w; i++)
        if (weight_permuted(f->w[i])) return false; /* act-order: the gather runs unfused */
    if (f->w[0]->dtype == LLMRT_DTYPE_Q4) return q4_matmul_fused(c, f, rows);
    llmrt_cuda_fused_gemv_args a = {
        .t        = c->act,
        .input    = fused_input_of(f->input),
        .x        = f->x,
        .up       = f->up,
        .norm_w   = f->norm_w,
        .eps      = f->eps,
        .M        = (int32_t)rows,
        .K        = f->w[0]->cols,
        .n_w      = f->n_w,
        .residual = f->residual,
    };
    for (int32_t i = 0; i < f->n_w; i++) {
        const llmrt_bweight *w = f->w[i];
        if (w->dtype != c->act_dtype || w->cols != a.K || w->x_cols) return false;
        a.w[i]    = w->data;
        a.bias[i] = w->bias;
        a.N[i]    = w->rows;
        a.out[i]  = f->out[i];
    }
    if (llmrt_cuda_fused_gemv_check(&a, NULL, 0) != 0) return false;
    /* a failed step enqueues nothing more (reported later); a replay only fingerprints */
    if (skip(c) || fused_graph_op(c, 11, f, rows)) return true;
    launched(c, llmrt_cuda_fused_gemv(c->stream, &a), "fused matmul");
    return true;
}

/* --------------------------------------------------------------------------------------------- */
/* LoRA adapters                                                                                 */
/* --------------------------------------------------------------------------------------------- */

/* A table: one descriptor per slot in device memory (what the kernels read: A/B pointers and
 * rank, cuda/lora.h), a host mirror of it, and per slot one device buffer holding A [r, k] then
 * B [n, r] in the activation dtype. */
struct llmrt_blora_table {
    int32_t               n_slots;
    int64_t               n, k;     /* out = x[T, k] · Wᵀ with n outputs */
    llmrt_cuda_lora_slot *desc;     /* host [n_slots] */
    llmrt_cuda_lora_slot *desc_dev; /* device [n_slots] */
    void                **buf;      /* host [n_slots]: the device buffer of each slot, or NULL */
    int32_t               max_rank; /* largest rank now in the table */
};

/* Grows the shrink's scratch to `floats` (never shrinks). Queued kernels may still read the old
 * one: wait for the stream before freeing it. */
static llmrt_status lora_tmp_grow(cuda_ctx *c, int64_t floats, llmrt_error *err) {
    if (floats <= c->lora_tmp_cap) return LLMRT_OK;
    if (c->lora_tmp) {
        llmrt_cuda_status st = llmrt_cuda_sync(c->dev);
        if (st != LLMRT_CUDA_OK) return fail(c, st, err, "LoRA scratch");
        dev_free(c, c->lora_tmp);
        c->lora_tmp     = NULL;
        c->lora_tmp_cap = 0;
    }
    LLMRT_TRY(dev_alloc(c, (uint64_t)floats * sizeof(float), (void **)&c->lora_tmp, err));
    c->lora_tmp_cap = floats;
    return LLMRT_OK;
}

/* begin_batch's part: the slots and scales into the staged plan, the tiles of the rows with an
 * adapter, the scratch for T rows of the largest rank. */
static llmrt_status lora_begin_batch(cuda_ctx *c, const llmrt_batch_plan *plan, char *h,
                                     llmrt_error *err) {
    c->lora_active = false;
    if (!plan->lora_slot || c->lora_max_rank == 0) return LLMRT_OK;
    if (!plan->lora_scale)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "begin_batch: lora_slot without lora_scale");
    int32_t T = plan->n_tokens;
    memcpy(h + c->off_lora_slot, plan->lora_slot, (size_t)T * 4);
    memcpy(h + c->off_lora_scale, plan->lora_scale, (size_t)T * 4);
    int32_t n_tiles = llmrt_cuda_lora_tiles(plan->lora_slot, T, (int32_t *)(h + c->off_lora_tile_row),
                                            (int32_t *)(h + c->off_lora_tile_len), c->lora_class);
    if (n_tiles == 0) return LLMRT_OK; /* no row has an adapter */
    int64_t need = (int64_t)T * c->lora_max_splits * c->lora_max_rank;
    if (need > c->lora_tmp_cap) {
        int64_t before = c->stats.device_allocs;
        LLMRT_TRY(lora_tmp_grow(c, need, err));
        c->stats.batch_allocs += c->stats.device_allocs - before;
    }
    c->lora_ld     = c->lora_max_rank;
    c->lora_splits = c->lora_max_splits;
    c->lora_tiled  = c->lora_class[LLMRT_CUDA_LORA_TILE16] + c->lora_class[LLMRT_CUDA_LORA_TILE4] > 0;
    c->lora_active = true;
    return LLMRT_OK;
}

static llmrt_status cuda_lora_table_create(llmrt_backend *be, int32_t n_slots, int64_t n, int64_t k,
                                           llmrt_blora_table **out, llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    *out = NULL;
    LLMRT_TRY(check_state(c, err));
    if (n_slots < 1 || n < 1 || k < 1 || n > INT32_MAX || k > INT32_MAX)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "lora_table_create: %d slots of [%lld, %lld] (need >= 1 slot, 1 <= n, k "
                         "<= 2^31-1)", n_slots, (long long)n, (long long)k);
    llmrt_blora_table *t = calloc(1, sizeof *t);
    if (t) {
        t->desc = calloc((size_t)n_slots, sizeof *t->desc);
        t->buf  = calloc((size_t)n_slots, sizeof *t->buf);
    }
    if (!t || !t->desc || !t->buf) {
        if (t) free(t->desc), free(t->buf);
        free(t);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "lora_table_create: out of host memory");
    }
    t->n_slots = n_slots;
    t->n       = n;
    t->k       = k;
    uint64_t     bytes  = (uint64_t)n_slots * sizeof *t->desc;
    int32_t      splits = llmrt_cuda_lora_splits(k);
    llmrt_status s      = LLMRT_OK;
    if (splits > c->lora_max_splits) { /* the scratch of a reserved batch, see lora_table_set */
        s = lora_tmp_grow(c, c->cap_tokens * splits * c->lora_max_rank, err);
        if (s == LLMRT_OK) c->lora_max_splits = splits;
    }
    if (s == LLMRT_OK) s = dev_alloc(c, bytes, (void **)&t->desc_dev, err);
    if (s == LLMRT_OK) { /* every slot empty */
        llmrt_cuda_status st = llmrt_cuda_upload(c->dev, t->desc_dev, t->desc, bytes, 1);
        if (st != LLMRT_CUDA_OK) s = fail(c, st, err, "lora_table_create");
    }
    if (s != LLMRT_OK) {
        dev_free(c, t->desc_dev);
        free(t->desc);
        free(t->buf);
        free(t);
        return s;
    }
    *out = t;
    return LLMRT_OK;
}

/* Fills (or, rank 0, empties) a slot: the new buffer is uploaded and its descriptor written
 * before the old buffer is freed, so a failure leaves the slot as it was. */
static llmrt_status cuda_lora_table_set(llmrt_backend *be, llmrt_blora_table *t, int32_t slot,
                                        int32_t rank, const float *a, const float *b,
                                        llmrt_error *err) {
    cuda_ctx *c = ctx_of(be);
    LLMRT_TRY(check_state(c, err));
    if (slot < 0 || slot >= t->n_slots)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "lora_table_set: slot %d outside [0, %d)",
                         slot, t->n_slots);
    if (rank < 0 || rank > LLMRT_CUDA_LORA_MAX_RANK)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "lora_table_set: rank %d is not supported (0..%d)", rank,
                         LLMRT_CUDA_LORA_MAX_RANK);
    if (rank > 0 && (!a || !b))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "lora_table_set: rank %d without A or B", rank);
    int64_t n_a = (int64_t)rank * t->k, n_b = t->n * rank, ab = be->act_bytes;
    void   *dev = NULL;
    llmrt_status s = LLMRT_OK;
    if (rank > 0) {
        /* a full-size staging copy: adapters are small (r·(n + k) elements) */
        char *staging = malloc((size_t)((n_a + n_b) * ab));
        if (!staging)
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "lora_table_set: out of host memory");
        s = convert_chunk(c, staging, LLMRT_DTYPE_F32, a, n_a, 0, t->k, err);
        if (s != LLMRT_OK) llmrt_err_prefix(err, "LoRA A of slot %d", slot);
        if (s == LLMRT_OK) {
            s = convert_chunk(c, staging + n_a * ab, LLMRT_DTYPE_F32, b, n_b, 0, rank, err);
            if (s != LLMRT_OK) llmrt_err_prefix(err, "LoRA B of slot %d", slot);
        }
        /* the scratch holds every batch the plan was reserved for at the new largest rank, so
         * begin_batch allocates nothing */
        if (s == LLMRT_OK && rank > c->lora_max_rank)
            s = lora_tmp_grow(c, c->cap_tokens * c->lora_max_splits * rank, err);
        if (s == LLMRT_OK) s = dev_alloc(c, (uint64_t)((n_a + n_b) * ab), &dev, err);
        if (s == LLMRT_OK) {
            llmrt_cuda_status st =
                llmrt_cuda_upload(c->dev, dev, staging, (uint64_t)((n_a + n_b) * ab), 1);
            if (st != LLMRT_CUDA_OK) s = fail(c, st, err, "lora_table_set: upload");
        }
        free(staging);
    }
    llmrt_cuda_lora_slot d = {.a = dev, .b = dev ? (char *)dev + n_a * ab : NULL, .rank = rank};
    if (s == LLMRT_OK) {
        llmrt_cuda_status st =
            llmrt_cuda_upload(c->dev, &t->desc_dev[slot], &d, sizeof d, 1);
        if (st != LLMRT_CUDA_OK) s = fail(c, st, err, "lora_table_set: descriptor");
    }
    if (s != LLMRT_OK) {
        dev_free(c, dev);
        return s;
    }
    if (t->buf[slot]) { /* a kernel queued before this call may still read it */
        llmrt_cuda_status st = llmrt_cuda_sync(c->dev);
        if (st != LLMRT_CUDA_OK) note_failure(c, st, "lora_table_set");
        dev_free(c, t->buf[slot]);
    }
    t->buf[slot]  = dev;
    t->desc[slot] = d;
    t->max_rank   = 0;
    for (int32_t i = 0; i < t->n_slots; i++)
        if (t->desc[i].rank > t->max_rank) t->max_rank = t->desc[i].rank;
    if (rank > c->lora_max_rank) c->lora_max_rank = rank;
    return LLMRT_OK;
}

static void cuda_lora_table_destroy(llmrt_backend *be, llmrt_blora_table *t) {
    if (!t) return;
    cuda_ctx *c = ctx_of(be);
    if (!c->dead) (void)llmrt_cuda_sync(c->dev); /* no queued kernel reads the table */
    for (int32_t i = 0; i < t->n_slots; i++) dev_free(c, t->buf[i]);
    dev_free(c, t->desc_dev);
    free(t->desc);
    free(t->buf);
    free(t);
}

static void cuda_lora_apply(llmrt_backend *be, void *out, const void *x, int64_t rows,
                            const llmrt_blora_table *t) {
    cuda_ctx *c = ctx_of(be);
    if (skip(c) || !c->lora_active || t->max_rank == 0) return;
    if (rows != c->n_tokens || t->max_rank > c->lora_ld ||
        llmrt_cuda_lora_splits(t->k) > c->lora_splits) {
        note_failure(c, LLMRT_CUDA_ERR_INVALID,
                     rows != c->n_tokens ? "lora_apply: rows differ from the batch's tokens"
                                         : "lora_apply: a table was filled after begin_batch");
        return;
    }
    llmrt_cuda_lora_args a = {
        .dtype = c->act, .out = out, .x = x, .n = t->n, .k = t->k, .n_rows = c->n_tokens,
        .slots = t->desc_dev, .n_slots = t->n_slots, .max_rank = t->max_rank,
        .tmp = c->lora_tmp, .ld_tmp = c->lora_ld,
        .row_slot = PLAN(c, off_lora_slot, int32_t), .row_scale = PLAN(c, off_lora_scale, float),
        /* decode steps (every tile one row) run the per-row GEMV over the batch's rows */
        .tile_row = c->lora_tiled ? PLAN(c, off_lora_tile_row, int32_t) : NULL,
        .tile_len = c->lora_tiled ? PLAN(c, off_lora_tile_len, int32_t) : NULL,
        .n_class = {c->lora_class[0], c->lora_class[1], c->lora_class[2]},
    };
    launched(c, llmrt_cuda_lora_apply(c->stream, &a), "lora_apply");
}

/* --------------------------------------------------------------------------------------------- */
/* lifecycle                                                                                     */
/* --------------------------------------------------------------------------------------------- */

static void cuda_destroy(llmrt_backend *be) {
    if (!be) return;
    cuda_ctx *c = ctx_of(be);
    if (c) {
        if (c->dev) {
            graph_abandon(c, NULL);
            graphs_clear(c);
            if (!c->dead) (void)llmrt_cuda_sync(c->dev);
            dev_free(c, c->inv_freq);
            dev_free(c, c->plan_dev);
            dev_free(c, c->decode_ws);
            dev_free(c, c->f32_scratch);
            dev_free(c, c->q4_ws);
            dev_free(c, c->lora_tmp);
            dev_free(c, c->perm_x);
            llmrt_cuda_host_free(c->dev, c->plan_host);
            llmrt_cuda_dev_destroy(c->dev);
        }
        free(c);
    }
    free(be);
}

static const llmrt_backend_ops cuda_ops = {
    .destroy          = cuda_destroy,
    .alloc            = cuda_alloc,
    .free             = cuda_free,
    .weight_upload    = cuda_weight_upload,
    .weight_upload_q4 = cuda_weight_upload_q4,
    .weight_upload_permuted = cuda_weight_upload_permuted,
    .weight_free      = cuda_weight_free,
    .supports_weight  = cuda_supports_weight,
    .supports         = cuda_supports,
    .rope_init        = cuda_rope_init,
    .begin_batch      = cuda_begin_batch,
    .embed            = cuda_embed,
    .rmsnorm          = cuda_rmsnorm,
    .add_rmsnorm      = cuda_add_rmsnorm,
    .add              = cuda_add,
    .matmul           = cuda_matmul,
    .rope_kv_write    = cuda_rope_kv_write,
    .attention        = cuda_attention,
    .swiglu           = cuda_swiglu,
    .gather_outputs   = cuda_gather_outputs,
    .download_f32     = cuda_download_f32,
    .upload           = cuda_upload,
    .copy             = cuda_copy,
    .reserve          = cuda_reserve,
    .logits           = cuda_logits,
    .lora_table_create  = cuda_lora_table_create,
    .lora_table_set     = cuda_lora_table_set,
    .lora_table_destroy = cuda_lora_table_destroy,
    .lora_apply         = cuda_lora_apply,
    .matmul_fused       = cuda_matmul_fused,
};

int llmrt_backend_cuda_device_count(void) {
    return llmrt_cuda_device_count();
}

bool llmrt_backend_cuda_stats(const llmrt_backend *be, llmrt_cuda_backend_stats *out) {
    if (!be || be->ops != &cuda_ops) return false;
    *out = ctx_of(be)->stats;
    return true;
}

bool llmrt_backend_cuda_set_test_options(llmrt_backend *be, const llmrt_cuda_options *opts) {
    if (!be || be->ops != &cuda_ops || !opts) return false;
    cuda_ctx *c = ctx_of(be);
    if (c->stats.forwards > 0) return false;
    c->fault_at     = opts->inject_fault_at > 0 ? opts->inject_fault_at : 0;
    c->naive_forced = opts->naive_attention;
    c->unfused      = opts->unfused;
    c->attn_chosen  = false; /* chosen again by the next reserve */
    return true;
}

llmrt_status llmrt_backend_cuda_create(int device, const llmrt_cuda_options *opts,
                                       llmrt_backend **out, llmrt_error *err) {
    *out = NULL;
    llmrt_cuda_options o = opts ? *opts : (llmrt_cuda_options){0};
    llmrt_dtype act_dtype = o.act_dtype;
    if (act_dtype == LLMRT_DTYPE_INVALID) act_dtype = LLMRT_DTYPE_F16; /* unset: the default */
    if (act_dtype != LLMRT_DTYPE_F16 && act_dtype != LLMRT_DTYPE_BF16 && act_dtype != LLMRT_DTYPE_F32)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "cuda backend: activations must be f16, bf16 or f32, not %s",
                         llmrt_dtype_name(act_dtype));
    llmrt_backend *be = calloc(1, sizeof *be);
    cuda_ctx      *c  = calloc(1, sizeof *c);
    if (!be || !c) {
        free(be);
        free(c);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "cuda backend: out of memory");
    }
    char              msg[512] = "";
    llmrt_cuda_status st       = llmrt_cuda_dev_create(device, &c->dev, msg, sizeof msg);
    if (st != LLMRT_CUDA_OK) {
        free(be);
        free(c);
        return llmrt_err(err, st == LLMRT_CUDA_ERR_OOM ? LLMRT_ERR_OUT_OF_MEMORY : LLMRT_ERR_UNSUPPORTED,
                         "cuda backend: %s", msg);
    }
    c->stream    = llmrt_cuda_dev_stream(c->dev);
    c->act_dtype = act_dtype;
    c->act       = act_dtype == LLMRT_DTYPE_BF16  ? LLMRT_CUDA_BF16
                   : act_dtype == LLMRT_DTYPE_F32 ? LLMRT_CUDA_F32
                                                  : LLMRT_CUDA_F16;
    c->fault_at     = o.inject_fault_at > 0 ? o.inject_fault_at : 0;
    c->naive_forced = o.naive_attention;
    c->graphs_on    = !o.enforce_eager;
    c->unfused      = o.unfused;
    c->stats.graphs_on = c->graphs_on;
    snprintf(c->stats.device_name, sizeof c->stats.device_name, "%s", llmrt_cuda_dev_name(c->dev));
    be->ops         = &cuda_ops;
    be->name        = "cuda";
    be->act_bytes   = act_dtype == LLMRT_DTYPE_F32 ? 4 : 2;
    be->resid_bytes = (int32_t)sizeof(float);
    be->act_dtype   = act_dtype;
    be->stream      = c->stream;
    be->ctx         = c;
    *out            = be;
    llmrt_log(LLMRT_LOG_INFO, "cuda backend: device %d (%s), %s activations", device,
              c->stats.device_name, llmrt_dtype_name(act_dtype));
    return LLMRT_OK;
}
