/* An executor runs forwards of the model on its ranks: it owns the KV caches of every rank and
 * turns one batch into one forward of the whole model. Two implementations:
 *   local  one rank in this process (exec_local.c)
 *   tp     tensor parallel over ranks that are threads of this process or processes of an MPI
 *          job (exec/tp/), the leader driving and the other ranks following
 * The engine and the C API see only this interface; the forward of one rank (forward.h) knows
 * nothing of groups beyond the collectives it is handed. */
#ifndef LLMRT_EXEC_EXECUTOR_H
#define LLMRT_EXEC_EXECUTOR_H

#include <pthread.h>

#include "../format/lora_file.h"
#include "forward.h"

typedef struct llmrt_executor llmrt_executor;

/* A KV cache of an executor: the leader's rank state plus the executor's own state for the
 * other ranks' caches of the same geometry (NULL for the local executor). */
typedef struct llmrt_exec_kv {
    llmrt_rank_kv *leader;
    void          *ranks; /* executor-specific */
} llmrt_exec_kv;

typedef struct llmrt_executor_ops {
    /* A cache of n_blocks blocks of block_size tokens on every rank. */
    llmrt_status (*kv_create)(llmrt_executor *ex, int32_t n_blocks, int32_t block_size,
                              llmrt_exec_kv **out, llmrt_error *err);
    void (*kv_destroy)(llmrt_executor *ex, llmrt_exec_kv *kv);
    /* Sizes every rank's workspace for batches of up to max_tokens / max_outputs. */
    llmrt_status (*reserve)(llmrt_executor *ex, llmrt_exec_kv *kv, int64_t max_tokens,
                            int64_t max_outputs, llmrt_error *err);
    /* One forward of the model on `batch` (checked first: a bad batch changes nothing);
     * logits[n_outputs, V] unless the batch asks for none (output_tokens non-NULL, n_outputs
     * 0). LLMRT_ERR_DEAD when the ranks can no longer agree (a failed or lost rank): every
     * later call fails the same way. */
    llmrt_status (*forward)(llmrt_executor *ex, llmrt_exec_kv *kv, const llmrt_batch *batch,
                            float *logits, int64_t logits_capacity, llmrt_error *err);
    /* (optional) Copies the K and V of every layer of block src[i] into block dst[i] (i < n) on
     * every rank, before any later forward reads them (a copy-on-write fork of a sequence's
     * partial last block). LLMRT_ERR_UNSUPPORTED when a rank's backend cannot copy (the engine
     * then recomputes the block instead). NULL: unsupported. */
    llmrt_status (*copy_blocks)(llmrt_executor *ex, llmrt_exec_kv *kv, const int32_t *src,
                                const int32_t *dst, int32_t n, llmrt_error *err);
    /* (optional: NULL = no adapters per request) LoRA adapter slots on every rank: lora_init
     * gives each rank n_slots empty slots (0: frees them, for the next engine); lora_set loads each rank's part of adapter
     * `f`, read from `path`, into `slot` (f NULL: empties it). Both wait for a forward in
     * flight; a forward never sees a half-set slot. A multi-process group's followers read
     * `path` themselves. */
    llmrt_status (*lora_init)(llmrt_executor *ex, int32_t n_slots, llmrt_error *err);
    llmrt_status (*lora_set)(llmrt_executor *ex, int32_t slot, const char *path,
                             const llmrt_lora_file *f, llmrt_error *err);
    /* (optional) A follower rank of a multi-process group: serves the leader until it ends. */
    llmrt_status (*follow)(llmrt_executor *ex, llmrt_error *err);
    /* (optional) Runs task(ctx, i, thread) for i < n_tasks on the host threads of this process's
     * rank's backend (the CPU pool; no forward runs meanwhile) and returns true; false (or
     * NULL) when it has none: the caller runs the tasks itself. */
    bool (*host_run)(llmrt_executor *ex, int64_t n_tasks, llmrt_task_fn task, void *ctx);
    /* (optional) Time in collectives. */
    void (*stats)(const llmrt_executor *ex, llmrt_tp_stats *out);
    /* Ends the executor and every rank it owns (not `model`, the caller's). */
    void (*destroy)(llmrt_executor *ex);
} llmrt_executor_ops;

struct llmrt_executor {
    const llmrt_executor_ops *ops;
    llmrt_rank_model         *model;     /* this process's rank: the leader, or a follower */
    int32_t                   tp_size;   /* ranks (1: local) */
    int32_t                   tp_rank;   /* this process's rank */
    const char               *comm_kind; /* "local", "mpi", "nccl"; "" alone */
    void                     *impl;
};

/* One rank's part of copy_blocks (exec_local.c): blocks src[i] -> dst[i] of every layer. */
llmrt_status llmrt_rank_kv_copy_blocks(llmrt_rank_kv *kv, const int32_t *src, const int32_t *dst,
                                       int32_t n, llmrt_error *err);

/* The executor of one rank in this process, running `model` (borrowed). */
llmrt_status llmrt_executor_local_create(llmrt_rank_model *model, llmrt_executor **out,
                                         llmrt_error *err);

#endif
