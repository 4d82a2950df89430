/* The planner: from the queues and the KV block state to one step's plan. It decides which
 * running requests continue (a decode token or the next prompt chunk each) and which waiting
 * requests are admitted, under the token budget (max_batched_tokens) and max_seqs, allocating
 * their KV blocks, taking prefix-cache hits on admission, and — when blocks run out —
 * preempting the newest running request (recompute later) or, under the reserve policy,
 * admitting only what can run to max_tokens. It runs no model and touches no sampler or text:
 * a unit test drives it with requests and a block manager alone (tests/unit/test_planner.c).
 *
 * The plan lists the sequences of the step in batch order and the requests the planner ended
 * (their blocks already released; the engine reports them). */
#ifndef LLMRT_ENGINE_PLANNER_H
#define LLMRT_ENGINE_PLANNER_H

#include "block_manager.h"
#include "plan_gate.h"
#include "request.h"

typedef struct request_list {
    request **items;
    int32_t   n, cap;
} request_list;

bool    request_list_push(request_list *l, request *r);
void    request_list_remove_at(request_list *l, int32_t i);
int32_t request_list_find(const request_list *l, const request *r);


/* What the planner reads and updates. */
typedef struct planner_state {
    request_list        *waiting; /* picked by (priority, arrival) */
    request_list        *running; /* in admission order; the last is the newest */
    llmrt_block_manager *bm;
    int32_t              max_batched_tokens;
    int32_t              max_seqs;
    llmrt_kv_policy      policy;
    /* (optional) asked before a waiting request is admitted; *why: a message that stays valid
     * until the request is finished */
    plan_gate (*gate)(void *ctx, request *r, const request_list *running, const char **why);
    void     *gate_ctx;
    /* the model's sliding window W (0: none): before planning, each running request's leading
     * blocks below its next token's window (positions < n_computed - W + 1) go back to the
     * pool (llmrt_bm_drop_before), so a sequence needs about W / block_size + 2 blocks however
     * long it runs */
    int32_t   sliding_window;
} planner_state;

/* A request the planner ended: the engine finishes it with this reason. */
typedef struct plan_finish {
    request            *r;
    llmrt_finish_reason why;
    llmrt_status        status;
    const char         *message; /* static */
} plan_finish;

typedef struct step_plan {
    /* the step's sequences, in batch order: running first (oldest first), then admissions */
    request    **seq_req;  /* [n_seqs] */
    int32_t     *seq_new;  /* [n_seqs] tokens scheduled: the next n_new after n_computed */
    int32_t      n_seqs, n_tokens;
    plan_finish *finished; /* [n_finished] */
    int32_t      n_finished;
    /* counters of this step, for the metrics */
    int32_t      n_preempted;
    int64_t      prefix_queries; /* prompt tokens of requests admitted for the first time */
    int64_t      prefix_hits;    /* of which taken from the prefix cache */
    int32_t      cap_seqs, cap_finished;
} step_plan;

/* Plans one step into *plan (its arrays reused across steps). Requests move between the
 * lists (admitted: waiting -> running; preempted: running -> waiting, blocks released and
 * n_computed reset for recompute; ended: removed from both). */
void llmrt_plan_step(planner_state *st, step_plan *plan);
void llmrt_step_plan_free(step_plan *plan);

#endif
