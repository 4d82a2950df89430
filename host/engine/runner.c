/* The runner: one engine step. It asks the planner for the step's plan, reports the requests
 * the planner ended, packs the planned sequences into one batch (tokens, positions, block
 * tables, the rows whose logits are needed), runs it on the executor, and commits the result:
 * KV blocks registered for the prefix cache, then one sampled token per finished chunk through
 * the output processor. A request of n > 1 sequences forks after its prompt's last chunk
 * (fork_sequences: shared prompt blocks, copy-on-write of the partial one). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model.h"
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
    free(b->seq_out_row);
    free(b->seq_lp_row);
    free(b->seq_lp_n);
    free(b->lora_slots);
    free(b->lora_scales);
    free(b->logits);
    free(b->sampled);
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

/* --------------------------------------------------------------------------------------------- */
/* the plan as a packed batch                                                                    */
/* --------------------------------------------------------------------------------------------- */

static llmrt_status build_batch(llmrt_engine *e, const step_plan *p, llmrt_error *err) {
    engine_batch *b     = &e->batch;
    int32_t       vocab = e->model->cfg.vocab_size;
    int64_t       T     = p->n_tokens;
    b->n_tokens         = p->n_tokens;
    b->n_seqs           = p->n_seqs;
    b->max_blocks       = 1;
    for (int32_t s = 0; s < p->n_seqs; s++)
        if (p->seq_req[s]->blocks.n > b->max_blocks) b->max_blocks = p->seq_req[s]->blocks.n;
    int64_t c_tok = b->cap_tokens;
    bool    ok    = grow((void **)&b->tokens, &c_tok, T, 4);
    c_tok         = b->cap_tokens;
    ok            = ok && grow((void **)&b->positions, &c_tok, T, 4);
    c_tok         = b->cap_tokens;
    ok            = ok && grow((void **)&b->seq_ids, &c_tok, T, 4);
    c_tok         = b->cap_tokens;
    ok            = ok && grow((void **)&b->output_tokens, &c_tok, T, 4);
    c_tok         = b->cap_tokens;
    ok            = ok && grow((void **)&b->lora_slots, &c_tok, T, 4);
    c_tok         = b->cap_tokens;
    ok            = ok && grow((void **)&b->lora_scales, &c_tok, T, 4);
    if (ok) b->cap_tokens = c_tok;
    int64_t c_seq = b->cap_seqs;
    ok            = ok && grow((void **)&b->seq_out_row, &c_seq, p->n_seqs, 4);
    c_seq         = b->cap_seqs;
    ok            = ok && grow((void **)&b->seq_lp_row, &c_seq, p->n_seqs, 4);
    c_seq         = b->cap_seqs;
    ok            = ok && grow((void **)&b->seq_lp_n, &c_seq, p->n_seqs, 4);
    if (ok) b->cap_seqs = c_seq;
    ok = ok && grow((void **)&b->tables, &b->cap_tables, (int64_t)p->n_seqs * b->max_blocks, 4);
    /* logits rows: one per sequence, plus one per prompt token of prompt-logprobs chunks */
    int64_t rows = p->n_seqs;
    for (int32_t s = 0; s < p->n_seqs; s++)
        if (request_needs_prompt_logits(p->seq_req[s])) rows += p->seq_new[s];
    ok = ok && grow((void **)&b->logits, &b->cap_logits, rows * vocab, 4);
    if (!ok) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "llmrt_engine_step: out of memory");
    int32_t t = 0;
    b->n_outputs = 0;
    b->has_lora  = false;
    for (int32_t s = 0; s < p->n_seqs; s++) {
        request *r = p->seq_req[s];
        /* the planner made every admitted request's adapter resident: its slot is >= 0 */
        int32_t  slot = r->adapter ? r->adapter->slot : -1;
        b->has_lora |= slot >= 0;
        bool prompt_rows = request_needs_prompt_logits(r);
        b->seq_lp_row[s] = b->n_outputs;
        b->seq_lp_n[s]   = 0;
        for (int32_t k = 0; k < p->seq_new[s]; k++, t++) {
            b->tokens[t]      = r->tokens[r->n_computed + k];
            b->positions[t]   = (int32_t)(r->n_computed + k);
            b->seq_ids[t]     = s;
            b->lora_slots[t]  = slot;
            b->lora_scales[t] = r->lora_scale;
            /* this token's logits give the next prompt token's logprob (rows stay in order:
             * the prompt's last token, the sampling row, comes after them) */
            if (prompt_rows && r->n_computed + k + 1 < r->n_prompt) {
                b->output_tokens[b->n_outputs++] = t;
                b->seq_lp_n[s]++;
            }
        }
        int32_t *row = b->tables + (int64_t)s * b->max_blocks;
        for (int32_t k = 0; k < b->max_blocks; k++) row[k] = k < r->blocks.n ? r->blocks.ids[k] : -1;
        /* logits only where the chunk reaches the last known token */
        b->seq_out_row[s] = -1;
        if (r->n_computed + p->seq_new[s] == r->n_tokens) {
            b->output_tokens[b->n_outputs] = t - 1;
            b->seq_out_row[s]              = b->n_outputs++;
        }
    }
    return LLMRT_OK;
}

/* Prompt logprobs of sequence s's chunk (before r->n_computed advances): row j of its rows is
 * the logits after prompt token n_computed + j, which score prompt token n_computed + j + 1. */
static void record_prompt_logprobs(llmrt_engine *e, request *r, int32_t s) {
    const engine_batch *b     = &e->batch;
    int32_t             vocab = e->model->cfg.vocab_size, k = r->n_prompt_top;
    for (int32_t j = 0; j < b->seq_lp_n[s]; j++) {
        const float *row = b->logits + (int64_t)(b->seq_lp_row[s] + j) * vocab;
        int64_t      pos = r->n_computed + j + 1;
        llmrt_logprobs_of(row, vocab, r->tokens[pos], k, &r->prompt_lp[pos],
                          r->prompt_top_ids + pos * k, r->prompt_top_lp + pos * k);
    }
}

/* --------------------------------------------------------------------------------------------- */
/* n > 1: forking the prompt into n sequences                                                    */
/* --------------------------------------------------------------------------------------------- */

/* r's prompt is computed and `row` holds its last logits: its waiting sequences 1..n-1 take the
 * prompt's KV (full blocks shared, the partial last block copied on the executor: copy-on-write)
 * and sample their first token from the same logits, each with its own sampler. When the
 * executor cannot copy (or the pool has no block for a copy) a sequence shares the full blocks
 * only and recomputes the partial tail at its next step. */
static void fork_sequences(llmrt_engine *e, request *r, const float *row) {
    int32_t   vocab  = e->model->cfg.vocab_size;
    int32_t   bs     = e->params.block_size;
    request **forks  = r->fork;
    int32_t   n      = r->n_fork;
    r->fork          = NULL;
    r->n_fork        = 0;
    float   *tmp     = malloc((size_t)vocab * sizeof *tmp);
    int32_t *src     = malloc((size_t)n * sizeof *src);
    int32_t *dst     = malloc((size_t)n * sizeof *dst);
    bool    *copied  = calloc((size_t)n, sizeof *copied);
    bool     ok_mem  = tmp && src && dst && copied;
    bool     can_copy = ok_mem && e->exec->ops->copy_blocks != NULL;
    int32_t  n_copy  = 0;
    for (int32_t i = 0; i < n; i++) {
        request *c = forks[i];
        int32_t  ps = -1, pd = -1;
        bool     ok = can_copy && llmrt_bm_fork(e->bm, &r->blocks, &c->blocks, r->n_computed,
                                                true, &ps, &pd);
        if (!ok && ok_mem)
            ok = llmrt_bm_fork(e->bm, &r->blocks, &c->blocks, r->n_computed, false, &ps, &pd);
        c->state          = REQUEST_RUNNING;
        c->n_cached       = r->n_cached;
        c->prefix_counted = true;
        c->n_preemptions  = 0;
        if (!ok || !request_list_push(&e->running, c)) {
            llmrt_bm_release(e->bm, &c->blocks);
            c->state = REQUEST_WAITING;
            forks[i] = NULL;
            engine_finish(e, c, LLMRT_FINISH_ERROR, LLMRT_ERR_OUT_OF_MEMORY,
                          "out of memory forking the sequence");
            continue;
        }
        if (pd >= 0) {
            src[n_copy] = ps;
            dst[n_copy] = pd;
            n_copy++;
            copied[i] = true;
        }
    }
    if (n_copy > 0) {
        llmrt_error  cerr = {0};
        llmrt_status s    = e->exec->ops->copy_blocks(e->exec, e->kv, src, dst, n_copy, &cerr);
        if (s != LLMRT_OK) /* recompute the tails instead */
            for (int32_t i = 0; i < n; i++) {
                if (!forks[i] || !copied[i]) continue;
                int32_t ps, pd;
                llmrt_bm_release(e->bm, &forks[i]->blocks);
                llmrt_bm_fork(e->bm, &r->blocks, &forks[i]->blocks, r->n_computed, false, &ps, &pd);
            }
    }
    for (int32_t i = 0; i < n; i++) {
        request *c = forks[i];
        if (!c) continue;
        int64_t have  = (int64_t)c->blocks.n * bs;
        c->n_computed = r->n_computed < have ? r->n_computed : have;
        /* reserve policy: the sequence takes its blocks to max_tokens now (the planner admitted
         * the request only with room for them); if they are gone it ends at the next step */
        if (e->params.policy == LLMRT_KV_RESERVE)
            (void)llmrt_bm_ensure(e->bm, &c->blocks, c->max_total);
        memcpy(tmp, row, (size_t)vocab * sizeof *tmp);
        engine_sample_and_advance(e, c, tmp);
    }
    free(tmp);
    free(src);
    free(dst);
    free(copied);
    free(forks);
}

/* --------------------------------------------------------------------------------------------- */
/* a step                                                                                        */
/* --------------------------------------------------------------------------------------------- */

/* The planner's admission gate: a request with an adapter runs only once the adapter is in a
 * slot; the adapters of running requests are never evicted for it. */
static plan_gate lora_gate(void *ctx, request *r, const request_list *running, const char **why) {
    llmrt_engine *e = ctx;
    if (!r->adapter) return PLAN_ADMIT;
    lora_adapter *stack_used[64] = {0}, **used = stack_used;
    if (running->n > 64 && !(used = malloc((size_t)running->n * sizeof *used))) {
        *why = "out of memory";
        return PLAN_FAIL;
    }
    int32_t n_used = 0;
    for (int32_t i = 0; i < running->n; i++)
        if (running->items[i]->adapter) used[n_used++] = running->items[i]->adapter;
    llmrt_error err = {0};
    plan_gate   a = lora_registry_make_resident(&e->lora, e->exec, r->adapter, used, n_used, &err);
    if (used != stack_used) free(used);
    if (a == PLAN_FAIL) {
        snprintf(r->lora_error, sizeof r->lora_error, "%.190s", err.msg);
        *why = r->lora_error;
        return PLAN_FAIL;
    }
    return a;
}

llmrt_status engine_run_step(llmrt_engine *e, llmrt_error *err) {
    planner_state st = {
        .gate               = lora_gate,
        .gate_ctx           = e,
        .waiting            = &e->waiting,
        .running            = &e->running,
        .bm                 = e->bm,
        .max_batched_tokens = e->params.max_batched_tokens,
        .max_seqs           = e->params.max_seqs,
        .policy             = e->params.policy,
        .sliding_window     = e->model->cfg.sliding_window,
    };
    step_plan *p = &e->plan;
    llmrt_plan_step(&st, p);
    e->metrics.preemptions += p->n_preempted;
    e->metrics.prefix_cache_queries += p->prefix_queries;
    e->metrics.prefix_cache_hits += p->prefix_hits;
    /* queue time: the planner is pure, so the first admission is recorded here, once per request
     * (sequences n > 1 share index 0's; a preempted request's re-admission does not count) */
    if (p->n_seqs > 0) {
        double now = engine_now();
        for (int32_t i = 0; i < p->n_seqs; i++) {
            request *r = p->seq_req[i];
            if (r->t_admitted > 0) continue;
            r->t_admitted = now;
            if (r->index == 0) llmrt_histogram_observe(&e->metrics.queue_time, now - r->t_submit);
        }
    }
    for (int32_t i = 0; i < p->n_finished; i++)
        engine_finish(e, p->finished[i].r, p->finished[i].why, p->finished[i].status,
                      p->finished[i].message);
    if (p->n_seqs == 0) return LLMRT_OK;

    engine_batch *b = &e->batch;
    llmrt_status  s = build_batch(e, p, err);
    if (s == LLMRT_OK) {
        /* a step of prompt chunks only asks for no logits (output_tokens given, 0 of them) */
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
            .lora_slots         = b->has_lora ? b->lora_slots : NULL,
            .lora_scales        = b->has_lora ? b->lora_scales : NULL,
        };
        s = e->exec->ops->forward(e->exec, e->kv, &fb, b->logits, b->cap_logits, err);
        if (s != LLMRT_OK) llmrt_err_prefix(err, "llmrt_engine_step: forward failed");
    }
    if (s != LLMRT_OK) {
        for (int32_t i = 0; i < p->n_seqs; i++)
            engine_finish(e, p->seq_req[i], LLMRT_FINISH_ERROR, s, err->msg);
        return s;
    }
    int32_t vocab = e->model->cfg.vocab_size;
    engine_sample_ahead(e, p, b);
    for (int32_t i = 0; i < p->n_seqs; i++) {
        request *r = p->seq_req[i];
        if (r->n_computed < r->n_prompt)
            e->metrics.prompt_tokens += (r->n_computed + p->seq_new[i] < r->n_prompt
                                             ? p->seq_new[i]
                                             : r->n_prompt - r->n_computed);
        if (b->seq_lp_n[i] > 0) record_prompt_logprobs(e, r, i);
        r->n_computed += p->seq_new[i];
        llmrt_bm_commit(e->bm, &r->blocks, r->tokens, r->n_computed);
        if (b->seq_out_row[i] >= 0) {
            float *row = b->logits + (int64_t)b->seq_out_row[i] * vocab;
            if (i < b->cap_sampled && b->sampled[i].done) {
                engine_advance(e, r, b->sampled[i].status, &b->sampled[i].res,
                               &b->sampled[i].err);
                continue;
            }
            if (r->n_fork > 0) fork_sequences(e, r, row); /* before r's sampler touches row */
            engine_sample_and_advance(e, r, row);
        }
    }
    return LLMRT_OK;
}
