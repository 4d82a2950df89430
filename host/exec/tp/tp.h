/* Tensor parallel: a group of ranks, each holding its shard of the model (model/shard_plan.h)
 * on its own backend, running the same forward in lockstep with two all-reduces per layer
 * (engine/forward.c). Rank 0, the leader, is the model the caller drives; it decides every
 * batch (the scheduler runs once, on the leader) and hands the same batch to the other ranks,
 * so their collectives always match:
 *   in-process group  ranks are host threads of this process (one per rank other than 0), fed
 *                     through tp_worker job slots (CPU: "local" comm; CUDA: NCCL InitAll)
 *   multi-process     ranks are processes (mpirun / srun); the leader broadcasts each request
 *                     (KV cache create / reserve / destroy, forward, shutdown) over the comm's
 *                     control plane and the followers serve them in llmrt_model_tp_follow
 * Failures: a rank whose forward fails aborts the group's communicators, so every other rank's
 * collective fails promptly (or by the comm's timeout when a rank hangs or dies); the group is
 * then dead and every later forward fails with LLMRT_ERR_DEAD, which puts an engine in its dead
 * state. Fault injection for tests: LLMRT_TP_FAULT=RANK:FORWARD:KIND (KIND error, hang, exit):
 * rank RANK fails its FORWARD-th forward (1-based). */
#ifndef LLMRT_ENGINE_TP_H
#define LLMRT_ENGINE_TP_H

#include <pthread.h>
#include <stdbool.h>

#include "../comm/comm.h"
#include "../../model/model.h"
#include "../forward.h"

typedef enum tp_fault_kind {
    TP_FAULT_NONE = 0,
    TP_FAULT_ERROR, /* the rank reports an error (and aborts the group) */
    TP_FAULT_HANG,  /* the rank stops taking part, silently (the others time out) */
    TP_FAULT_EXIT,  /* the process exits (multi-process; in-process it acts as HANG) */
} tp_fault_kind;

typedef struct tp_worker tp_worker;

/* One rank's TP state (m->tp), for the leader and every other rank alike. */
struct llmrt_tp {
    int32_t size, rank;
    llmrt_comm *comm;   /* this rank's communicator */
    bool multi_process; /* the ranks are processes */
    int64_t n_forwards; /* forwards this rank ran (fault injection counts them) */
    float  *gather_buf; /* host scratch receiving the other ranks' logits rows */
    int64_t *vocab0, *vocab; /* [size] every rank's lm_head rows (shard plan), for the gather */
    int64_t gather_cap; /* floats */
    int64_t fault_at;   /* LLMRT_TP_FAULT: forward number for this rank, 0 = none */
    tp_fault_kind fault;

    /* leader only */
    pthread_mutex_t lock; /* one group operation at a time */
    bool dead;            /* the group failed: every forward fails */
    char dead_msg[LLMRT_ERROR_MSG_MAX];
    struct llmrt_model **peers; /* in-process: [size - 1] the models of ranks 1.. */
    llmrt_comm **comms;         /* in-process: [size] every rank's comm */
    tp_worker *workers;         /* in-process: [size - 1] one host thread per peer */
    int32_t next_kv_id;
};

/* Loads `path` sharded over params->tensor_parallel ranks (see llmrt_model_params). */
llmrt_status llmrt_tp_load(const char *path, const llmrt_model_params *params,
                           struct llmrt_model **out, llmrt_error *err);
/* Ends the group (leader: stops the peers or tells the followers to return) and frees m->tp;
 * called by llmrt_model_destroy before the model itself is freed. */
void llmrt_tp_destroy(struct llmrt_model *m);

/* -- called by engine/forward.c -- */
/* In-place sum over the group of buf[n] (this rank's activation dtype). */
llmrt_status llmrt_tp_all_reduce(struct llmrt_model *m, void *buf, int64_t n, llmrt_error *err);
/* The vocab-parallel lm_head's logits: this rank's mine[n_out, V_r] (host) and every other
 * rank's, one broadcast each over the control plane, placed into logits[n_out, V] at each
 * rank's vocabulary columns (logits NULL on ranks other than 0: they only send). */
llmrt_status llmrt_tp_gather_logits(struct llmrt_model *m, const float *mine, int64_t n_out,
                                    float *logits, llmrt_error *err);
/* Waits until this rank's collectives completed (nccl), with the comm's timeout. */
llmrt_status llmrt_tp_wait(struct llmrt_model *m, llmrt_error *err);
/* The other ranks' twins of the leader's new cache kv / its reserve / its end. */
llmrt_status llmrt_tp_kv_create(llmrt_kv_cache *kv, llmrt_error *err);
llmrt_status llmrt_tp_kv_reserve(llmrt_kv_cache *kv, int64_t max_tokens, int64_t max_outputs,
                                 llmrt_error *err);
void llmrt_tp_kv_destroy(llmrt_kv_cache *kv);
/* The group's forward of `batch` (the leader's logits). */
llmrt_status llmrt_tp_forward(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                              int64_t logits_capacity, llmrt_error *err);

#endif
