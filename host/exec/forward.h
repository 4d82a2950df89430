/* One rank's forward: its paged KV pool, its activation workspace, the host-side plan of a
 * batch, and the Llama forward written once as calls into the rank's backend. Tensor parallel
 * reaches the forward only through the collectives it is handed (two all-reduces per layer and
 * the logits gather); one rank alone passes none. Executors (executor.h) own these objects. */
#ifndef LLMRT_EXEC_FORWARD_H
#define LLMRT_EXEC_FORWARD_H

#include "llmrt_experimental.h" /* llmrt_batch */

#include "../core/error.h"
#include "../model/model.h"

/* The paged KV pool of one rank: K and V of every layer, each [n_blocks * block_size,
 * Hkv_rank * hd] in the backend's activation type, or [n_blocks * block_size] 8-bit slot rows
 * (model kv_dtype I8 / F8_E4M3: format/kv_quant.h). */
typedef struct llmrt_kv_pool {
    int32_t n_blocks;
    int32_t block_size;
    int64_t bytes_per_token; /* this rank's K and V bytes per token slot, all layers */
    void  **k;               /* [n_layers] backend memory */
    void  **v;               /* [n_layers] */
} llmrt_kv_pool;

/* The activation buffers of one rank (backend memory), sized for `tokens` tokens and `outputs`
 * logits rows; they grow to the largest batch and never shrink. */
typedef struct llmrt_workspace {
    int64_t tokens, outputs;
    void   *x;        /* [T, D] residual stream (backend resid_bytes per element) */
    void   *h;        /* [T, D] normed */
    void   *q;        /* [T, Hq_r*hd] */
    void   *kx, *vx;  /* [T, Hkv_r*hd] */
    void   *attn;     /* [T, Hq_r*hd] */
    void   *o;        /* [T, D] (partial sums under TP) */
    void   *gate, *up;/* [T, F_r] */
    void   *down;     /* [T, D] */
    void   *out_rows; /* [n_out, D] */
    void   *logits;   /* [n_out, V_r] (fp32 when the backend has a logits op) */
    float  *host_rows;/* host [n_out, V_r]: this rank's logits rows before a gather */
    int64_t host_rows_cap;
} llmrt_workspace;

/* Host-side plan arrays of one batch (grown, never shrunk). */
typedef struct llmrt_batch_scratch {
    int64_t *slots;           /* [2 * T]: KV slot of each token, then a sorted copy */
    int32_t *default_outputs; /* [n_seqs] */
    int64_t  slots_cap, outputs_cap;
} llmrt_batch_scratch;

/* Everything one rank keeps for one KV cache. */
typedef struct llmrt_rank_kv {
    llmrt_rank_model   *model;
    llmrt_kv_pool       pool;
    llmrt_workspace     ws;
    llmrt_batch_scratch plan;
} llmrt_rank_kv;

/* What the forward calls to combine ranks; NULL when the rank runs alone. */
typedef struct llmrt_collectives {
    void *ctx;
    /* In-place sum over the group of buf[n] (the rank's activation dtype). */
    llmrt_status (*all_reduce)(void *ctx, void *buf, int64_t n, llmrt_error *err);
    /* This rank's logits rows mine[n_out, V_r] and every other rank's, placed into
     * logits[n_out, V] (logits NULL: this rank only sends). */
    llmrt_status (*gather_logits)(void *ctx, const float *mine, int64_t n_out, float *logits,
                                  llmrt_error *err);
} llmrt_collectives;

/* Blocks a KV budget gives: n_blocks when > 0, else max_tokens rounded up to whole blocks, else
 * max_bytes over bytes_per_token * block_size. INVALID_ARG naming the budget when < 1 block. */
llmrt_status llmrt_kv_budget_blocks(int32_t block_size, int64_t n_blocks, int64_t max_tokens,
                                    int64_t max_bytes, int64_t bytes_per_token, int32_t *out,
                                    llmrt_error *err);
/* K and V bytes per token slot of this rank's model (its KV heads only). */
int64_t llmrt_rank_kv_bytes_per_token(const llmrt_rank_model *m);

/* A pool of n_blocks blocks of block_size tokens on the model's backend; activations for the
 * engine's default batch are reserved when the backend has per-batch state. */
llmrt_status llmrt_rank_kv_create(llmrt_rank_model *model, int32_t n_blocks, int32_t block_size,
                                  llmrt_rank_kv **out, llmrt_error *err);
void         llmrt_rank_kv_destroy(llmrt_rank_kv *kv);
/* Sizes the workspace and the backend's per-batch state for batches of up to max_tokens
 * tokens and max_outputs logits rows, so that no forward within these bounds allocates. */
llmrt_status llmrt_rank_kv_reserve(llmrt_rank_kv *kv, int64_t max_tokens, int64_t max_outputs,
                                   llmrt_error *err);

/* Checks a batch against the pool and the model (ids, positions, block ids, output rows, two
 * tokens writing one slot) and, when `logits` is given, its capacity; computes nothing. A batch
 * whose output_tokens is non-NULL with n_outputs == 0 asks for no logits at all (a step of
 * prompt chunks only). */
llmrt_status llmrt_rank_forward_check(llmrt_rank_kv *kv, const llmrt_batch *batch,
                                      const float *logits, int64_t logits_capacity,
                                      llmrt_error *err);
/* Checks the batch (as above; the capacity too unless logits is NULL on a rank of a group),
 * then runs the
 * forward on this rank, calling `coll` (NULL: alone) for the cross-rank steps. Logits go to
 * logits[n_outputs, V] when non-NULL. Not thread-safe per rank: the executor serialises. */
llmrt_status llmrt_rank_forward(llmrt_rank_kv *kv, const llmrt_batch *batch,
                                const llmrt_collectives *coll, float *logits,
                                int64_t logits_capacity, llmrt_error *err);

#endif
