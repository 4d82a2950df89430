/* Internals of the tensor-parallel executor (tp.h), shared by its files:
 *   tp.c          the executor: KV caches on every rank, the group forward, failures
 *   tp_rank.c     one rank's forward inside a group, its collectives, fault injection
 *   tp_workers.c  in-process groups: one host thread per rank other than 0
 *   tp_protocol.c multi-process groups: the leader's requests and the followers' loop
 *   tp_load.c     loading a group (in-process or under mpirun) and ending it */
#ifndef LLMRT_EXEC_TP_INTERNAL_H
#define LLMRT_EXEC_TP_INTERNAL_H

#include <stdbool.h>

#include "../comm/comm.h"
#include "tp.h"

/* One rank's state in its group. */
typedef struct tp_rank {
    llmrt_rank_model *model;   /* this rank's shard */
    int32_t size, rank;
    llmrt_comm *comm;          /* this rank's communicator */
    bool multi_process;        /* the ranks are processes */
    int64_t n_forwards;        /* forwards this rank ran (fault injection counts them) */
    float  *gather_buf;        /* host scratch receiving the other ranks' logits rows */
    int64_t gather_cap;        /* floats */
    int64_t *vocab0, *vocab;   /* [size] every rank's lm_head rows (shard plan), for the gather */
    llmrt_collectives coll;    /* what this rank's forward calls (ctx = this rank) */
} tp_rank;

typedef struct tp_worker tp_worker;

/* The executor: the group as this process sees it. */
typedef struct tp_exec {
    llmrt_executor ex;
    tp_rank *self;          /* this process's rank (rank 0: the leader) */
    pthread_mutex_t lock;   /* one group operation at a time */
    bool dead;              /* the group failed: every forward fails */
    char dead_msg[LLMRT_ERROR_MSG_MAX];
    int32_t next_kv_id;
    /* in-process groups */
    tp_rank **ranks;        /* [size] every rank; ranks[0] == self */
    llmrt_comm **comms;     /* [size] */
    tp_worker *workers;     /* [size - 1] one host thread per rank other than 0 */
} tp_exec;

/* -- tp_rank.c -- */
/* Fills a rank's state (vocabulary rows of every rank, collectives). */
llmrt_status tp_rank_init(tp_rank *r, llmrt_rank_model *model, int32_t size, int32_t rank,
                          llmrt_comm *comm, bool multi_process, llmrt_error *err);
void tp_rank_free(tp_rank *r);
/* This rank's part of a group forward (logits NULL on ranks other than 0). A failure aborts
 * the group and is LLMRT_ERR_DEAD. */
llmrt_status tp_rank_forward(tp_rank *r, llmrt_rank_kv *kv, const llmrt_batch *batch,
                             float *logits, int64_t capacity, llmrt_error *err);

/* -- tp_workers.c -- */
typedef enum worker_state { WORKER_IDLE, WORKER_JOB, WORKER_DONE, WORKER_QUIT } worker_state;

struct tp_worker {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    worker_state state;
    tp_rank *rank;            /* the peer this thread runs */
    llmrt_rank_kv *kv;        /* the job: this peer's cache twin of the leader's ... */
    const llmrt_batch *batch; /* ... and the leader's batch */
    llmrt_status status;
    llmrt_error err;
};

llmrt_status tp_worker_start(tp_worker *w, tp_rank *rank, llmrt_error *err);
/* Hands the worker the forward of `batch` on its cache `kv`; tp_worker_join waits for it. */
void tp_worker_post(tp_worker *w, llmrt_rank_kv *kv, const llmrt_batch *batch);
llmrt_status tp_worker_join(tp_worker *w, llmrt_error *err);
void tp_worker_stop(tp_worker *w);

/* -- tp_protocol.c: the control plane of multi-process groups -- */
typedef enum tp_op {
    TP_OP_KV_CREATE = 1, /* a = n_blocks, b = block_size */
    TP_OP_KV_RESERVE,    /* a = max_tokens, b = max_outputs */
    TP_OP_KV_DESTROY,
    TP_OP_FORWARD, /* then one payload: tokens, positions, seq_ids [T], block tables
                    * [n_seqs * max_blocks], output rows [n_outputs] (int32); a = 1 when the
                    * batch lists its output rows (n_outputs of them, possibly 0); b = 1 when
                    * it carries LoRA slots and scales: then lora_slots [T] (int32) and
                    * lora_scales [T] (fp32 bits) follow */
    TP_OP_SHUTDOWN,
    TP_OP_LORA_INIT, /* a = slots per rank */
    TP_OP_LORA_SET,  /* a = slot, b = bytes of the adapter's path (0: empty the slot), then
                      * the path: each follower reads the adapter itself */
} tp_op;

typedef struct tp_msg {
    int32_t op, kv_id;
    int32_t n_tokens, n_seqs, max_blocks, n_outputs;
    int64_t a, b;
} tp_msg;

/* Broadcasts msg from the leader (rank 0); on a follower, receives it. */
llmrt_status tp_send(tp_rank *r, tp_msg *msg, llmrt_error *err);
/* The leader's forward request: the message, then its payload. */
llmrt_status tp_send_forward(tp_rank *r, int32_t kv_id, const llmrt_batch *b, llmrt_error *err);
/* A follower's loop (the executor's follow). */
llmrt_status tp_follow(tp_exec *te, llmrt_error *err);

/* -- tp.c -- */
extern const llmrt_executor_ops tp_exec_ops;

#endif
