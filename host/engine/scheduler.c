/* One engine step: choose what runs (continuous batching with chunked prefill, preemption or
 * reservation), pack it into one batch, run the forward, sample, detokenize, and finish requests
 * that hit a stop condition. */
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
#include "../tokenizer/tokenizer.h"
#include "engine_internal.h"
#include "metrics.h"

/* --------------------------------------------------------------------------------------------- */
/* batch buffers                                                                                 */
/* --------------------------------------------------------------------------------------------- */

void engine_batch_free(engine_batch *b) {
    free(b->tokens);
    free(b->positions);
    free(b->seq_ids);
    free(b->tables);
    free(b->output_tokens);
    free(b->seq_req);
    free(b->seq_new);
    free(b->seq_out_row);
    free(b->logits);
    memset(b, 0, sizeof *b);
}

static bool grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return true;
    int64_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *n = realloc(*p, (size_t)c * elem);
    if (!n) return false;
    *p   = n;
    *cap = c;
    return true;
}

static bool batch_reserve_seqs(engine_batch *b, int64_t n) {
    int64_t c1 = b->cap_seqs, c2 = b->cap_seqs, c3 = b->cap_seqs;
    bool    ok = grow((void **)&b->seq_req, &c1, n, sizeof(request *)) &&
              grow((void **)&b->seq_new, &c2, n, sizeof(int32_t)) &&
              grow((void **)&b->seq_out_row, &c3, n, sizeof(int32_t));
    if (ok) b->cap_seqs = c1 > b->cap_seqs ? c1 : b->cap_seqs;
    return ok;
}

/* --------------------------------------------------------------------------------------------- */
/* scheduling                                                                                    */
/* --------------------------------------------------------------------------------------------- */

/* Index of the waiting request to admit next: lowest priority value, then oldest. */
static int32_t next_waiting(const llmrt_engine *e) {
    int32_t best = -1;
    for (int32_t i = 0; i < e->waiting.n; i++) {
        const request *r = e->waiting.items[i];
        if (best < 0) {
            best = i;
            continue;
        }
        const request *b = e->waiting.items[best];
        if (r->priority < b->priority || (r->priority == b->priority && r->arrival < b->arrival))
            best = i;
    }
    return best;
}

/* Frees a running request's blocks and queues it for recompute (its tokens, prompt and output
 * so far, are computed again when it is readmitted; batch invariance makes the result equal). */
static void preempt(llmrt_engine *e, request *r) {
    int32_t i = request_list_find(&e->running, r);
    if (i >= 0) request_list_remove_at(&e->running, i);
    llmrt_bm_release(e->bm, &r->blocks);
    r->n_computed = 0;
    r->n_cached   = 0;
    r->state      = REQUEST_WAITING;
    r->n_preemptions++;
    e->metrics.preemptions++;
    if (!request_list_push(&e->waiting, r))
        engine_finish(e, r, LLMRT_FINISH_ERROR, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
}

static bool add_to_batch(llmrt_engine *e, request *r, int32_t n_new) {
    engine_batch *b = &e->batch;
    if (!batch_reserve_seqs(b, b->n_seqs + 1)) return false;
    b->seq_req[b->n_seqs] = r;
    b->seq_new[b->n_seqs] = n_new;
    b->n_seqs++;
    b->n_tokens += n_new;
    return true;
}

/* Running requests first (oldest first), preempting the newest when blocks run out; then
 * admissions from the queue while the token budget and max_seqs allow. */
static void schedule(llmrt_engine *e) {
    engine_batch *b      = &e->batch;
    int32_t       budget = e->params.max_batched_tokens;
    bool          preempted_now = false;
    b->n_seqs = b->n_tokens = 0;

    for (int32_t i = 0; i < e->running.n && budget > 0; i++) {
        request *r     = e->running.items[i];
        int64_t  n_new = r->n_tokens - r->n_computed;
        if (n_new > budget) n_new = budget;
        bool fits = true;
        while (!llmrt_bm_ensure(e->bm, &r->blocks, r->n_computed + n_new)) {
            request *victim = e->running.items[e->running.n - 1];
            if (e->params.policy == LLMRT_KV_RESERVE || (victim == r && e->running.n == 1)) {
                /* alone and still too big (or reserve accounting broken): it cannot grow */
                engine_finish(e, r, LLMRT_FINISH_LENGTH, LLMRT_OK,
                              "the KV cache cannot hold this request's context");
                fits = false;
                i--;
                break;
            }
            preempt(e, victim);
            preempted_now = true;
            if (victim == r) {
                fits = false;
                i--;
                break;
            }
        }
        if (!fits) continue;
        if (!add_to_batch(e, r, (int32_t)n_new)) break;
        budget -= (int32_t)n_new;
    }
    /* like vLLM: no admissions in a step that had to preempt (the pool is under pressure) */
    while (!preempted_now && budget > 0 && e->running.n < e->params.max_seqs && e->waiting.n > 0) {
        int32_t  w = next_waiting(e);
        request *r = e->waiting.items[w];
        if (r->blocks.n == 0) {
            r->n_computed = llmrt_bm_match_prefix(e->bm, &r->blocks, r->tokens, r->n_tokens);
            /* a preempted request may match its own generated tokens: report prompt tokens */
            r->n_cached = r->n_computed < r->n_prompt ? r->n_computed : r->n_prompt;
        }
        int64_t n_new = r->n_tokens - r->n_computed;
        if (n_new > budget) n_new = budget;
        int64_t need  = e->params.policy == LLMRT_KV_RESERVE ? r->max_total : r->n_computed + n_new;
        if (!llmrt_bm_ensure(e->bm, &r->blocks, need)) {
            if (e->running.n == 0 && e->params.policy == LLMRT_KV_PREEMPT) {
                /* nothing runs: give it the chunk that fits rather than stall */
                int64_t room = (int64_t)(r->blocks.n + llmrt_bm_available(e->bm)) *
                               llmrt_bm_block_size(e->bm);
                n_new = room - r->n_computed;
                if (n_new > 0 && llmrt_bm_ensure(e->bm, &r->blocks, r->n_computed + n_new)) goto admit;
            }
            /* keep the prefix hits only if it stays first in line; simplest: drop them */
            llmrt_bm_release(e->bm, &r->blocks);
            r->n_computed = r->n_cached = 0;
            break;
        }
    admit:
        request_list_remove_at(&e->waiting, w);
        r->state = REQUEST_RUNNING;
        if (!r->prefix_counted) {
            r->prefix_counted = true;
            e->metrics.prefix_cache_queries += r->n_prompt;
            e->metrics.prefix_cache_hits += r->n_cached;
        }
        if (!request_list_push(&e->running, r)) {
            engine_finish(e, r, LLMRT_FINISH_ERROR, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
            continue;
        }
        if (!add_to_batch(e, r, (int32_t)n_new)) break;
        budget -= (int32_t)n_new;
    }
}

/* --------------------------------------------------------------------------------------------- */
/* batch, forward                                                                                */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status build_batch(llmrt_engine *e, llmrt_error *err) {
    engine_batch *b     = &e->batch;
    int32_t       vocab = e->model->cfg.vocab_size;
    int64_t       T     = b->n_tokens;
    b->max_blocks       = 1;
    for (int32_t s = 0; s < b->n_seqs; s++)
        if (b->seq_req[s]->blocks.n > b->max_blocks) b->max_blocks = b->seq_req[s]->blocks.n;
    int64_t c_tok = b->cap_tokens;
    bool    ok    = grow((void **)&b->tokens, &c_tok, T, 4);
    c_tok         = b->cap_tokens;
    ok            = ok && grow((void **)&b->positions, &c_tok, T, 4);
    c_tok         = b->cap_tokens;
    ok            = ok && grow((void **)&b->seq_ids, &c_tok, T, 4);
    c_tok         = b->cap_tokens;
    ok            = ok && grow((void **)&b->output_tokens, &c_tok, T, 4);
    if (ok) b->cap_tokens = c_tok;
    ok = ok && grow((void **)&b->tables, &b->cap_tables, (int64_t)b->n_seqs * b->max_blocks, 4);
    ok = ok && grow((void **)&b->logits, &b->cap_logits, (int64_t)b->n_seqs * vocab, 4);
    if (!ok) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_engine_step: out of memory");
    int32_t t = 0;
    b->n_outputs = 0;
    for (int32_t s = 0; s < b->n_seqs; s++) {
        request *r = b->seq_req[s];
        for (int32_t k = 0; k < b->seq_new[s]; k++, t++) {
            b->tokens[t]    = r->tokens[r->n_computed + k];
            b->positions[t] = (int32_t)(r->n_computed + k);
            b->seq_ids[t]   = s;
        }
        int32_t *row = b->tables + (int64_t)s * b->max_blocks;
        for (int32_t k = 0; k < b->max_blocks; k++) row[k] = k < r->blocks.n ? r->blocks.ids[k] : -1;
        /* logits only where the chunk reaches the last known token */
        b->seq_out_row[s] = -1;
        if (r->n_computed + b->seq_new[s] == r->n_tokens) {
            b->output_tokens[b->n_outputs] = t - 1;
            b->seq_out_row[s]              = b->n_outputs++;
        }
    }
    return LLMRT_OK;
}

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

void engine_flush_text(request *r) {
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
static void sample_and_advance(llmrt_engine *e, request *r, float *logits) {
    llmrt_error         err = {0};
    llmrt_sample_result res;
    if (llmrt_sampler_sample(r->sampler, logits, &res, &err) != LLMRT_OK ||
        request_push_token(r, res.token, &err) != LLMRT_OK ||
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

llmrt_status engine_schedule_and_run(llmrt_engine *e, llmrt_error *err) {
    schedule(e);
    engine_batch *b = &e->batch;
    if (b->n_seqs == 0) return LLMRT_OK;
    llmrt_status s = build_batch(e, err);
    if (s == LLMRT_OK) {
        llmrt_batch fb = {
            .n_tokens           = b->n_tokens,
            .tokens             = b->tokens,
            .positions          = b->positions,
            .seq_ids            = b->seq_ids,
            .n_seqs             = b->n_seqs,
            .max_blocks_per_seq = b->max_blocks,
            .block_tables       = b->tables,
            .n_outputs          = b->n_outputs,
            .output_tokens      = b->output_tokens,
        };
        if (b->n_outputs == 0) { /* only prompt chunks this step: still need one logits row */
            fb.n_outputs     = 1;
            b->output_tokens[0] = 0;
        }
        s = llmrt_forward(e->kv, &fb, b->logits, b->cap_logits);
        if (s != LLMRT_OK) llmrt_err(err, s, "llmrt_engine_step: forward failed: %s", llmrt_last_error());
    }
    if (s != LLMRT_OK) {
        for (int32_t i = 0; i < b->n_seqs; i++)
            engine_finish(e, b->seq_req[i], LLMRT_FINISH_ERROR, s, err->msg);
        return s;
    }
    int32_t vocab = e->model->cfg.vocab_size;
    for (int32_t i = 0; i < b->n_seqs; i++) {
        request *r = b->seq_req[i];
        if (r->n_computed < r->n_prompt)
            e->metrics.prompt_tokens += (r->n_computed + b->seq_new[i] < r->n_prompt
                                             ? b->seq_new[i]
                                             : r->n_prompt - r->n_computed);
        r->n_computed += b->seq_new[i];
        llmrt_bm_commit(e->bm, &r->blocks, r->tokens, r->n_computed);
        if (b->seq_out_row[i] >= 0)
            sample_and_advance(e, r, b->logits + (int64_t)b->seq_out_row[i] * vocab);
    }
    return LLMRT_OK;
}
