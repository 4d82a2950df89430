/* Internals of the tensor-parallel driver (tp.h), shared by its files:
 *   tp.c          the leader's group operations: KV-cache twins, the group forward, failures
 *   tp_rank.c     one rank's forward inside a group, its collectives, fault injection
 *   tp_workers.c  in-process groups: one host thread per rank other than 0
 *   tp_protocol.c multi-process groups: the leader's requests and the followers' loop
 *   tp_load.c     loading a group (in-process or under mpirun) and ending it */
#ifndef LLMRT_ENGINE_TP_INTERNAL_H
#define LLMRT_ENGINE_TP_INTERNAL_H

#include "tp.h"

/* -- tp_rank.c -- */
/* Reads LLMRT_TP_FAULT for this rank (tests). */
void tp_parse_fault(struct llmrt_tp *tp);
/* This rank's part of a group forward (logits NULL and capacity LLMRT_FORWARD_NO_LOGITS on
 * ranks other than 0). A failure aborts the group and is LLMRT_ERR_DEAD. */
llmrt_status llmrt_tp_forward_rank(llmrt_kv_cache *kv, const llmrt_batch *batch, float *logits,
                                   int64_t capacity, llmrt_error *err);

/* -- tp_workers.c -- */
typedef enum worker_state { WORKER_IDLE, WORKER_JOB, WORKER_DONE, WORKER_QUIT } worker_state;

struct tp_worker {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    worker_state state;
    llmrt_kv_cache *kv;       /* the job: this peer's twin of the leader's cache ... */
    const llmrt_batch *batch; /* ... and the leader's batch */
    llmrt_status status;
    llmrt_error err;
};

llmrt_status tp_worker_start(tp_worker *w, llmrt_error *err);
/* Hands the worker the forward of `batch` on its cache `kv`; tp_worker_join waits for it. */
void tp_worker_post(tp_worker *w, llmrt_kv_cache *kv, const llmrt_batch *batch);
llmrt_status tp_worker_join(tp_worker *w, llmrt_error *err);
void tp_worker_stop(tp_worker *w);

/* -- tp_protocol.c: the control plane of multi-process groups -- */
typedef enum tp_op {
    TP_OP_KV_CREATE = 1, /* a = n_blocks, b = block_size */
    TP_OP_KV_RESERVE,    /* a = max_tokens, b = max_outputs */
    TP_OP_KV_DESTROY,
    TP_OP_FORWARD, /* then one payload: tokens, positions, seq_ids [T], block tables
                    * [n_seqs * max_blocks], output rows [n_outputs] (int32) */
    TP_OP_SHUTDOWN,
} tp_op;

typedef struct tp_msg {
    int32_t op, kv_id;
    int32_t n_tokens, n_seqs, max_blocks, n_outputs; /* n_outputs 0: output_tokens NULL */
    int64_t a, b;
} tp_msg;

/* Broadcasts msg from the leader (rank 0); on a follower, receives it. */
llmrt_status tp_send(struct llmrt_tp *tp, tp_msg *msg, llmrt_error *err);
/* The leader's forward request: the message, then its payload. */
llmrt_status tp_send_forward(struct llmrt_tp *tp, int32_t kv_id, const llmrt_batch *b,
                             llmrt_error *err);
int64_t tp_forward_payload_ints(const tp_msg *m);

#endif
