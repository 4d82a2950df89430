/* Internals shared by the engine's files: engine.c (API, queues, outputs), engine_submit.c
 * (turning a prompt + params into a request), scheduler.c (a step's schedule, forward and
 * sampling), engine_loop.c (the loop thread and the blocking generate). */
#ifndef LLMRT_ENGINE_INTERNAL_H
#define LLMRT_ENGINE_INTERNAL_H

#include <pthread.h>

#include "../core/error.h"
#include "block_manager.h"
#include "llmrt.h"
#include "request.h"

typedef struct request_list {
    request **items;
    int32_t   n, cap;
} request_list;

/* One step's packed batch, host side (grown, never shrunk). */
typedef struct engine_batch {
    int32_t   n_tokens, n_seqs, max_blocks, n_outputs;
    int32_t  *tokens, *positions, *seq_ids, *tables, *output_tokens;
    request **seq_req;     /* [n_seqs] */
    int32_t  *seq_new;     /* [n_seqs] tokens scheduled */
    int32_t  *seq_out_row; /* [n_seqs] logits row, -1 when the chunk does not end the sequence */
    float    *logits;      /* [n_outputs, vocab] */
    int64_t   cap_tokens, cap_seqs, cap_tables, cap_logits;
} engine_batch;

struct llmrt_engine {
    struct llmrt_model  *model;
    llmrt_engine_params  params;
    llmrt_kv_cache      *kv;
    llmrt_block_manager *bm;

    /* step thread only */
    request_list  waiting;  /* by (priority, arrival) when picked */
    request_list  running;  /* in admission order; the last is the newest */
    request_list  finished; /* finished this step; freed at the next */
    llmrt_output *outputs;
    int32_t       cap_outputs;
    engine_batch  batch;
    bool          touched_finished;

    /* shared, under mu */
    pthread_mutex_t      mu;
    pthread_cond_t       cv;
    request_list         incoming;
    uint64_t            *aborts;
    int32_t              n_aborts, cap_aborts;
    uint64_t             next_id;
    llmrt_engine_metrics metrics;  /* live counters (step thread writes under mu) */
    llmrt_engine_metrics snapshot; /* published at the end of each step */
    llmrt_status         dead_status;
    char                 dead_message[256];

    /* loop thread */
    pthread_t             loop_thread;
    bool                  loop_running, loop_stop;
    llmrt_output_callback loop_callback;
    void                 *loop_data;
};

double       engine_now(void);
/* request_list helpers (engine.c) */
bool    request_list_push(request_list *l, request *r);
void    request_list_remove_at(request_list *l, int32_t i);
int32_t request_list_find(const request_list *l, const request *r);
llmrt_status engine_make_request(llmrt_engine *e, const llmrt_prompt *prompt,
                                 const llmrt_sampling_params *params, request **out,
                                 llmrt_error *err);
llmrt_status engine_schedule_and_run(llmrt_engine *e, llmrt_error *err);
void engine_finish(llmrt_engine *e, request *r, llmrt_finish_reason why, llmrt_status status,
                   const char *message);
void engine_flush_text(request *r);
void engine_batch_free(engine_batch *b);

#endif
