/* attention.h: C launchers of the paged-KV attention kernels (cuda/attention_prefill.cu,
 * cuda/attention_decode.cu). Plain C: no CUDA types; streams are passed as `void *`
 * (a cudaStream_t, NULL = the legacy default stream).
 *
 * Layout (shared with rope_kv.cu, which writes the cache, and with the backend glue):
 *   q, out            [T, Hq, hd] fp16 (or bf16), row-major; RoPE already applied to q.
 *   k_cache, v_cache  [n_blocks, block_size, Hkv, hd] each, same dtype as q. The token at
 *                     position p of the sequence in block-table row r lives at
 *                       slot = block_tables[r * max_blocks + p / block_size] * block_size
 *                              + p % block_size,
 *                     its K row of kv head h at k_cache + (slot * Hkv + h) * hd.
 *                     Slots no sequence owns may hold anything (NaN included): they are never
 *                     read into a result.
 *   GQA               query head h uses kv head h / (Hq / Hkv).
 *   Sequences         the batch is packed ("varlen"): sequence i owns q rows
 *                     q_start[i] .. q_start[i] + q_len[i] - 1, its new tokens at positions
 *                     ctx_len[i] - q_len[i] .. ctx_len[i] - 1 (already written into the cache),
 *                     and attends causally: token j sees positions 0 .. ctx_len - q_len + j
 *                     (only the last `window` of them when window > 0).
 *
 * Errors: every launcher validates its arguments before launching anything. On failure it
 * returns a negative LLMRT_CUDA_ATTN_E* code and writes a NUL-terminated message into err
 * (if err != NULL and err_size > 0, truncated to err_size); nothing was launched. On success
 * it returns 0 and leaves err untouched. Launches are asynchronous on `stream`; kernel faults
 * surface at the next synchronisation. The launchers allocate nothing and never synchronise,
 * so they can be captured into CUDA graphs. Device-array contents (q_start, q_len, ctx_len,
 * seq_slot, block_tables) are trusted: the kernels assume they are consistent with the shapes
 * below (the scheduler built them). */
#ifndef LLMRT_CUDA_ATTENTION_H
#define LLMRT_CUDA_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Element type of q, out and the KV cache. */
typedef enum llmrt_cuda_attn_dtype {
    LLMRT_CUDA_ATTN_F16 = 0,
    LLMRT_CUDA_ATTN_BF16 = 1,
} llmrt_cuda_attn_dtype;

/* Return codes (0 = OK). Values are never renumbered. */
enum {
    LLMRT_CUDA_ATTN_OK = 0,
    LLMRT_CUDA_ATTN_EARG = -1,   /* a NULL pointer or a negative/zero size */
    LLMRT_CUDA_ATTN_ESHAPE = -2, /* a shape no kernel instance exists for (head dim, dtype...) */
    LLMRT_CUDA_ATTN_EWORKSPACE = -3, /* decode workspace too small or missing */
    LLMRT_CUDA_ATTN_ECUDA = -4, /* a CUDA runtime call failed (launch, attribute, device query) */
};

typedef struct llmrt_cuda_attn_args {
    /* -- tensors (device memory) -- */
    const void *q;               /* [n_tokens, n_heads, head_dim]                 dtype */
    void *out;                   /* [n_tokens, n_heads, head_dim]                 dtype */
    const void *k_cache;         /* [n_blocks, block_size, n_kv_heads, head_dim]  dtype */
    const void *v_cache;         /* [n_blocks, block_size, n_kv_heads, head_dim]  dtype */
    const int32_t *block_tables; /* [rows, max_blocks]: block ids of each block-table row */
    const int32_t *q_start;      /* [n_seqs] first q/out row of each sequence */
    const int32_t *q_len;        /* [n_seqs] new tokens of each sequence (>= 1); decode: all 1 */
    const int32_t *ctx_len;      /* [n_seqs] past + new tokens of each sequence (>= q_len) */
    const int32_t *seq_slot;     /* [n_seqs] row of each sequence in block_tables */
    /* -- sizes (host values) -- */
    int32_t n_seqs;      /* sequences in this call (0: nothing to do, returns OK) */
    int32_t n_tokens;    /* T: rows of q/out covered by the sequences (sum of q_len) */
    int32_t n_heads;     /* Hq */
    int32_t n_kv_heads;  /* Hkv; divides Hq */
    int32_t head_dim;    /* hd: 64 or 128 */
    int32_t block_size;  /* tokens per KV block (>= 1; any value, 16 by default) */
    int32_t max_blocks;  /* row stride of block_tables */
    int32_t max_ctx_len; /* decode: an upper bound of ctx_len (split heuristic; 0 = unknown) */
    float scale;         /* softmax scale, usually 1/sqrt(head_dim) */
    int32_t dtype;       /* llmrt_cuda_attn_dtype */
    int32_t window;      /* sliding window W > 0: the token at position p attends to positions
                          * (p - W, p] only, and block-table entries of blocks wholly below
                          * p - W + 1 are never read (they may be -1); 0: no window */
    /* -- decode only -- */
    void *workspace;        /* split-KV partials; llmrt_cuda_attention_decode_workspace_bytes */
    size_t workspace_bytes; /* its size */
    int32_t num_splits;     /* 0: heuristic; > 0: force this many KV splits (tests, tuning) */
    /* -- both (added with the 8-bit KV cache; 0 keeps the layout above) -- */
    int32_t kv; /* llmrt_cuda_kv (llmrt_cuda.h): 0 = k_cache/v_cache hold `dtype` as above;
                 * INT8 / FP8: they are 8-bit pools (cuda/kv8.cuh), dequantised to `dtype` as
                 * the kernels load them */
} llmrt_cuda_attn_args;

/* Validates what both launchers rely on (NULL pointers, 16-byte alignment of q/out/caches,
 * head dim, dtype, head counts, sizes, scale): 0, or a negative code and a message prefixed
 * with `who`. The launchers call it; a backend may call it once per batch. */
int llmrt_cuda_attention_check(const llmrt_cuda_attn_args *a, const char *who, char *err,
                               size_t err_size);

/* Causal flash attention for any packed batch (prefill chunks, prefix-cache hits, decodes):
 * out[t, h, :] = softmax(scale * q[t, h, :] · K[0 .. pos(t)]ᵀ) · V[0 .. pos(t)] of its sequence.
 * Needs n_seqs, n_tokens and the tensors; workspace/num_splits/max_ctx_len are ignored. */
int llmrt_cuda_attention_prefill(const llmrt_cuda_attn_args *a, void *stream, char *err,
                                 size_t err_size);

/* Split-KV (flash-decoding) attention for sequences with q_len == 1 each: the same result as
 * llmrt_cuda_attention_prefill for them (within rounding). The sequence's query row is
 * q_start[i]; q_len is not read. Each CTA handles one (sequence, kv head, KV split) and all
 * Hq/Hkv query heads of the group (at most 16) over the same K/V loads; a combine kernel
 * merges splits by log-sum-exp. Uses a->workspace when more than one split is chosen.
 * Batch invariance: the split count follows n_seqs, max_ctx_len and the device, and a different
 * count can change a sequence's output in the last bit (rounding of P and of the merge); set
 * num_splits for results that do not depend on what else is in the batch. */
int llmrt_cuda_attention_decode(const llmrt_cuda_attn_args *a, void *stream, char *err,
                                size_t err_size);

/* Bytes of workspace the decode launcher needs for up to max_seqs sequences and max_splits
 * splits (fp32 partial outputs and log-sum-exps). 0 if an argument is not positive. */
size_t llmrt_cuda_attention_decode_workspace_bytes(int32_t max_seqs, int32_t n_heads,
                                                   int32_t head_dim, int32_t max_splits);

/* The number of KV splits the decode launcher would use for `a` on the current device (after
 * the workspace limit); negative code + message on invalid arguments. For logs and tests. */
int llmrt_cuda_attention_decode_num_splits(const llmrt_cuda_attn_args *a, char *err,
                                           size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
