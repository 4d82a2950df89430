/* The output processor: a sampled token becomes the request's output (token, logprobs), its
 * detokenized text (streamed through the stop-string matcher), and the stop rules (stop ids,
 * stop strings, max_tokens, the context end) end the request; finishing a request releases its
 * blocks and moves it to the step's finished list. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tokenizer/tokenizer.h"
#include "engine_internal.h"
#include "metrics.h"

/* --------------------------------------------------------------------------------------------- */
/* tokens and text                                                                               */
/* --------------------------------------------------------------------------------------------- */

static bool is_stop_id(const request *r, int32_t tok) {
    for (int32_t i = 0; i < r->n_stop_ids; i++)
        if (r->stop_ids[i] == tok) return true;
    return false;
}

/* Streams text: detokenizer delta -> stop-string matcher -> output. */
static void push_text(llmrt_engine *e, request *r, const char *delta, size_t len) {
    llmrt_error err = {0};
    if (r->stop) {
        const char *emit;
        size_t      emit_len;
        bool        stopped = false;
        int32_t     which   = -1;
        if (llmrt_stop_matcher_feed(r->stop, delta, len, &emit, &emit_len, &stopped, &which, &err) !=
            LLMRT_OK)
            return;
        request_out_text(r, emit, emit_len, &err);
        if (stopped) {
            r->text_stopped = true;
            engine_finish(e, r, LLMRT_FINISH_STOP, LLMRT_OK, NULL);
        }
        return;
    }
    request_out_text(r, delta, len, &err);
}

static void flush_text(request *r) {
    llmrt_error err = {0};
    const char *tail;
    size_t      tail_len = 0;
    if (r->detok && llmrt_detokenizer_flush(r->detok, &tail, &tail_len, &err) == LLMRT_OK && tail_len) {
        if (r->stop) {
            const char *emit;
            size_t      emit_len;
            bool        stopped = false;
            int32_t     which;
            if (llmrt_stop_matcher_feed(r->stop, tail, tail_len, &emit, &emit_len, &stopped, &which,
                                        &err) == LLMRT_OK)
                request_out_text(r, emit, emit_len, &err);
            if (stopped) return;
        } else {
            request_out_text(r, tail, tail_len, &err);
        }
    }
    if (r->stop) {
        const char *emit;
        size_t      emit_len = 0;
        llmrt_stop_matcher_flush(r->stop, &emit, &emit_len);
        if (emit_len) request_out_text(r, emit, emit_len, &err);
    }
}

/* Samples the next token of `r` from its logits row and applies the stop rules. */
void engine_sample_and_advance(llmrt_engine *e, request *r, float *logits) {
    llmrt_error         err = {0};
    llmrt_sample_result res;
    llmrt_status        s = llmrt_sampler_sample(r->sampler, logits, &res, &err);
    engine_advance(e, r, s, &res, &err);
}

void engine_advance(llmrt_engine *e, request *r, llmrt_status sampled,
                    const llmrt_sample_result *pres, const llmrt_error *serr) {
    llmrt_error               err = *serr;
    const llmrt_sample_result res = *pres;
    if (sampled != LLMRT_OK || request_push_token(r, res.token, &err) != LLMRT_OK ||
        request_out_token(r, res.token, res.logprob, res.top_ids, res.top_logprobs, res.n_top,
                          &err) != LLMRT_OK) {
        engine_finish(e, r, LLMRT_FINISH_ERROR, err.status, err.msg);
        return;
    }
    double  now         = engine_now();
    int64_t n_generated = r->n_tokens - r->n_prompt;
    if (n_generated == 1) {
        r->t_first = now;
        llmrt_histogram_observe(&e->metrics.ttft, now - r->t_submit);
    } else {
        llmrt_histogram_observe(&e->metrics.itl, now - r->t_last);
    }
    r->t_last = now;
    e->metrics.generation_tokens++;
    if (is_stop_id(r, res.token) && n_generated >= r->min_tokens) {
        engine_finish(e, r, LLMRT_FINISH_STOP, LLMRT_OK, NULL);
        return;
    }
    if (r->detok && !r->text_stopped) {
        const char *delta;
        size_t      len = 0;
        if (llmrt_detokenizer_push(r->detok, res.token, &delta, &len, &err) != LLMRT_OK) {
            engine_finish(e, r, LLMRT_FINISH_ERROR, err.status, err.msg);
            return;
        }
        if (len) push_text(e, r, delta, len);
        if (r->state == REQUEST_FINISHED) return;
    }
    if (n_generated >= r->max_tokens || r->n_tokens >= r->max_total)
        engine_finish(e, r, LLMRT_FINISH_LENGTH, LLMRT_OK, NULL);
}

/* --------------------------------------------------------------------------------------------- */
/* finishing                                                                                     */
/* --------------------------------------------------------------------------------------------- */

/* Ends a request: frees its blocks (exactly once: only a request not yet finished gets here),
 * flushes held text, moves it to `finished` (freed at the next step). */
void engine_finish(llmrt_engine *e, request *r, llmrt_finish_reason why, llmrt_status status,
                   const char *message) {
    if (r->state == REQUEST_FINISHED) return;
    request_list *from = r->state == REQUEST_RUNNING ? &e->running : &e->waiting;
    int32_t       i    = request_list_find(from, r);
    if (i >= 0) request_list_remove_at(from, i);
    llmrt_bm_release(e->bm, &r->blocks);
    r->state         = REQUEST_FINISHED;
    r->finish        = why;
    r->finish_status = status;
    if (message) snprintf(r->error_message, sizeof r->error_message, "%s", message);
    if (why == LLMRT_FINISH_ABORT || why == LLMRT_FINISH_ERROR) {
        r->n_tokens -= r->n_out; /* tokens of an aborted step are not delivered: not generated */
        request_out_reset(r);
    } else if (!r->text_stopped) {
        flush_text(r);
    }
    /* the adapter's metric, once per sequence: no lock on the per-token path */
    lora_adapter_count_tokens(r->adapter, r->n_tokens - r->n_prompt);
    double now = engine_now();
    if (r->index == 0) { /* per request, not per sequence (n > 1) */
        llmrt_histogram_observe(&e->metrics.e2e, now - r->t_submit);
        int64_t n_generated = r->n_tokens - r->n_prompt;
        if (n_generated >= 2 && r->t_first > 0) /* time per output token after the first */
            llmrt_histogram_observe(&e->metrics.tpot, (now - r->t_first) / (double)(n_generated - 1));
        e->metrics.requests_finished++;
        if (why == LLMRT_FINISH_ABORT) e->metrics.requests_aborted++;
    }
    /* sequences not yet forked from it (n > 1) end the same way: each index finishes once */
    request **forks = r->fork;
    int32_t   n_fork = r->n_fork;
    r->fork   = NULL;
    r->n_fork = 0;
    if (!request_list_push(&e->finished, r)) request_free(r); /* cannot report it; never leak it */
    e->touched_finished = true;
    for (int32_t k = 0; k < n_fork; k++) {
        forks[k]->state = REQUEST_WAITING;
        engine_finish(e, forks[k], why, status, message);
    }
    free(forks);
}
