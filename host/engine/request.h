/* One generation request inside the engine: its tokens (prompt then output), how many of them
 * have KV in the cache, its block table, its sampler / detokenizer / stop-string state and the
 * buffers of the output it produces this step. Owned by the engine's step thread. */
#ifndef LLMRT_ENGINE_REQUEST_H
#define LLMRT_ENGINE_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "../core/error.h"
#include "block_manager.h"
#include "lora_registry.h"
#include "llmrt.h"
#include "sampler.h"
#include "stop_matcher.h"

struct llmrt_tokenizer;
struct llmrt_detokenizer;

typedef enum request_state {
    REQUEST_WAITING = 0,
    REQUEST_RUNNING,
    REQUEST_FINISHED,
} request_state;

typedef struct request {
    uint64_t      id;
    uint64_t      arrival;  /* submit order, for FCFS */
    int32_t       priority; /* lower first */
    void         *user_data;
    request_state state;

    int32_t *tokens;      /* [n_tokens] prompt, then generated */
    int64_t  n_tokens, cap_tokens;
    int64_t  n_prompt;
    int64_t  n_computed;  /* tokens whose K/V are in the cache */
    int64_t  n_cached;    /* prompt tokens taken from the prefix cache at the last admission */
    bool     prefix_counted; /* its first admission is in the prefix-cache metrics */
    int32_t  n_preemptions;
    llmrt_seq_blocks blocks;

    /* sampling */
    llmrt_sampling_config     sampling;
    llmrt_sampler            *sampler;
    struct llmrt_detokenizer *detok;    /* NULL when the model has no tokenizer */
    llmrt_stop_matcher       *stop;     /* NULL without stop strings */
    int32_t                  *stop_ids; /* EOS ids (unless ignore_eos) + user stop ids */
    int32_t                   n_stop_ids;
    int32_t                   max_tokens, min_tokens;
    int64_t                   max_total; /* n_prompt + max_tokens, capped by the context */
    bool                      text_stopped; /* a stop string matched: no more text */

    /* this step's output */
    int32_t *out_tokens;
    float   *out_logprobs;
    int32_t *out_top_ids;
    float   *out_top_logprobs;
    int32_t  n_out, cap_out;
    char    *out_text;
    size_t   out_text_len, cap_text;
    llmrt_finish_reason finish;
    llmrt_status        finish_status;
    char                error_message[256];

    /* prompt logprobs (llmrt_sampling_params.prompt_logprobs; sequence 0 only): filled from
     * the prompt chunks' logits rows, delivered once with the first generated token */
    float   *prompt_lp;      /* [n_prompt] log p(prompt[i] | prompt[0..i)); [0] = NaN; NULL: off */
    int32_t *prompt_top_ids; /* [n_prompt * n_prompt_top] (-1 where none)                      */
    float   *prompt_top_lp;  /* [n_prompt * n_prompt_top]                                      */
    int32_t  n_prompt_top;
    bool     prompt_lp_sent;

    /* LoRA: the adapter it runs with (a reference; NULL: the base model) and its scale */
    lora_adapter *adapter;
    float         lora_scale;
    char          lora_error[200]; /* why its adapter cannot be made resident (planner gate) */

    double t_submit, t_first, t_last;
    double t_admitted; /* first admission by the planner (0: not yet; queue_time metric) */

    /* n > 1 (llmrt_sampling_params.n): every sequence is a request of the same id. The first
     * (index 0) prefills the prompt; the others are made at submit (own sampler seeded seed + i,
     * detokenizer, stop matcher, a copy of the prompt) and wait in `fork` until the prompt's last
     * chunk is computed, when they take the prompt's KV blocks (shared full blocks, a copy of the
     * partial last one) and run as ordinary requests. */
    int32_t   index;   /* which of the request's sequences, 0-based */
    struct request **fork; /* [n_fork] sequences 1..n-1 not yet forked (owned; NULL once forked) */
    int32_t   n_fork;
} request;

/* The request wants prompt logprobs and has generated nothing yet: every prompt token of its
 * chunks needs a logits row, and a prefix-cache hit (no logits) must not replace them. */
static inline bool request_needs_prompt_logits(const request *r) {
    return r->prompt_lp != NULL && r->n_tokens == r->n_prompt;
}

/* Frees everything the request owns except its blocks (release those first), and its unforked
 * sequences. */
void request_free(request *r);
/* Appends a token to the request's token list. */
llmrt_status request_push_token(request *r, int32_t token, llmrt_error *err);
/* Appends to this step's output. */
llmrt_status request_out_token(request *r, int32_t token, float logprob, const int32_t *top_ids,
                               const float *top_lp, int32_t n_top, llmrt_error *err);
llmrt_status request_out_text(request *r, const char *text, size_t len, llmrt_error *err);
void         request_out_reset(request *r);

#endif
