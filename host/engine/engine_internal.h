/* Internals shared by the engine's files:
 *   engine.c         the engine object: create, queues, aborts, a step, outputs, metrics
 *   engine_submit.c  turning a prompt + params into a request
 *   planner.c        a step's plan from the queues and the KV blocks (no model: planner.h)
 *   runner.c         the plan as one packed batch, run on the executor, results committed
 *   output.c         the output processor: sampling -> tokens, detokenized text, stop rules,
 *                    finishing requests
 *   engine_loop.c    the loop thread and the blocking generate */
#ifndef LLMRT_ENGINE_INTERNAL_H
#define LLMRT_ENGINE_INTERNAL_H

#include <pthread.h>

#include "../core/error.h"
#include "../exec/executor.h"
#include "block_manager.h"
#include "lora_registry.h"
#include "llmrt.h"
#include "planner.h"
#include "request.h"

/* One step's packed batch, host side (grown, never shrunk). */
typedef struct engine_batch {
    int32_t  n_tokens, n_seqs, max_blocks, n_outputs;
    int32_t *tokens, *positions, *seq_ids; /* [T] */
    int32_t *tables;                       /* [n_seqs, max_blocks] */
    int32_t *output_tokens;                /* [n_outputs] */
    int32_t *seq_out_row; /* [n_seqs] logits row, -1 when the chunk does not end the sequence */
    int32_t *seq_lp_row;  /* [n_seqs] first of the sequence's prompt-logprobs rows: one per
                             chunk token whose next token is a prompt token, in order        */
    int32_t *seq_lp_n;    /* [n_seqs] how many (0 unless request_needs_prompt_logits)        */
    int32_t *lora_slots;  /* [T] adapter slot of each token (-1: none)                   */
    float   *lora_scales; /* [T]                                                           */
    bool     has_lora;    /* a token of this step has an adapter                            */
    float   *logits;      /* [n_outputs, vocab] */
    int64_t  cap_tokens, cap_seqs, cap_tables, cap_logits;
    struct engine_sampled *sampled; /* [n_seqs] rows sampled ahead (sample_ahead.c)          */
    int64_t                cap_sampled;
} engine_batch;

struct llmrt_engine {
    llmrt_rank_model    *model;    /* the leader's rank: config, tokenizer, defaults */
    llmrt_executor      *exec;     /* runs the forwards (borrowed from the model) */
    llmrt_exec_kv       *kv;       /* the executor's KV cache (owned) */
    int32_t              kv_blocks;
    llmrt_engine_params  params;
    llmrt_block_manager *bm;
    lora_registry        lora;     /* adapters served per request (own lock) */
    /* the model's unmerged load-time adapter (a quantised base), applied to requests that
     * name none (a reference; NULL: none) */
    lora_adapter        *default_adapter;
    float                default_scale;

    /* step thread only */
    request_list  waiting;  /* by (priority, arrival) when picked */
    request_list  running;  /* in admission order; the last is the newest */
    request_list  finished; /* finished this step; freed at the next */
    llmrt_output *outputs;
    int32_t       cap_outputs;
    step_plan     plan;
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
/* The engine's calls behind the public ones (api/engine_api.c checks the arguments and
 * publishes errors). Thread rules as in llmrt.h: submit, abort, pending and get_metrics from any
 * thread; step (or the loop thread) from one. */
llmrt_engine_params engine_default_params(void);
/* An engine over `exec` (the model's; borrowed) and its leader rank `model`. */
llmrt_status engine_create(llmrt_rank_model *model, llmrt_executor *exec,
                           const llmrt_engine_params *params, llmrt_engine **out,
                           llmrt_error *err);
void         engine_destroy(llmrt_engine *e);
llmrt_status engine_submit(llmrt_engine *e, const llmrt_prompt *prompt,
                           const llmrt_sampling_params *params, uint64_t *request_id,
                           llmrt_error *err);
llmrt_status engine_abort(llmrt_engine *e, uint64_t id, llmrt_error *err);
int32_t      engine_pending(llmrt_engine *e);
llmrt_status engine_step(llmrt_engine *e, const llmrt_output **outputs, int32_t *n_outputs,
                         llmrt_error *err);
void         engine_get_metrics(llmrt_engine *e, llmrt_engine_metrics *out);
/* lora_registry.h behind llmrt_engine_lora_load / _unload / _list */
llmrt_status engine_lora_load(llmrt_engine *e, const char *name, const char *path,
                              llmrt_error *err);
llmrt_status engine_lora_unload(llmrt_engine *e, const char *name, llmrt_error *err);
int32_t      engine_lora_list(llmrt_engine *e, llmrt_lora_info *out, int32_t cap);
/* engine_loop.c */
llmrt_status engine_start_loop(llmrt_engine *e, llmrt_output_callback callback,
                               void *callback_data, llmrt_error *err);
void         engine_stop_loop(llmrt_engine *e);
llmrt_status engine_make_request(llmrt_engine *e, const llmrt_prompt *prompt,
                                 const llmrt_sampling_params *params, request **out,
                                 llmrt_error *err);
/* runner.c: plans the step, runs it and commits its results (sampling through output.c). */
llmrt_status engine_run_step(llmrt_engine *e, llmrt_error *err);
void engine_batch_free(engine_batch *b);
/* output.c */
/* Samples r's next token from its logits row [V] and applies the stop rules. */
void engine_sample_and_advance(llmrt_engine *e, request *r, float *logits);
/* Applies the stop rules to a token sampled ahead: `sampled` is what llmrt_sampler_sample
 * returned for r (LLMRT_OK: res holds the token; else err says why). */
void engine_advance(llmrt_engine *e, request *r, llmrt_status sampled,
                    const llmrt_sample_result *res, const llmrt_error *err);

/* sample_ahead.c: a step's rows sampled on the backend's host threads */
typedef struct engine_sampled {
    llmrt_sample_result res;
    llmrt_status        status; /* of llmrt_sampler_sample                        */
    llmrt_error         err;
    bool                done;   /* sampled ahead: apply with engine_advance       */
} engine_sampled;
/* Samples, on the executor's host threads, the rows of the step's sequences that end a chunk
 * and have no forks still to start (b->sampled[i].done); the rest (and all of them when the
 * executor has no host threads, the step has few rows or memory is short) are left to the
 * caller's engine_sample_and_advance, in order. */
void engine_sample_ahead(llmrt_engine *e, const step_plan *p, engine_batch *b);
/* Ends a request: frees its blocks, flushes held text, moves it to `finished`. */
void engine_finish(llmrt_engine *e, request *r, llmrt_finish_reason why, llmrt_status status,
                   const char *message);

#endif
