/* The planner (planner.h): continuous batching with chunked prefill, preemption by recompute
 * or the reserve policy, prefix-cache hits on admission. */
#include <stdlib.h>
#include <string.h>

#include "planner.h"

/* --------------------------------------------------------------------------------------------- */
/* request lists                                                                                 */
/* --------------------------------------------------------------------------------------------- */

bool request_list_push(request_list *l, request *r) {
    if (l->n == l->cap) {
        int32_t   cap = l->cap ? l->cap * 2 : 16;
        request **n   = realloc(l->items, (size_t)cap * sizeof *n);
        if (!n) return false;
        l->items = n;
        l->cap   = cap;
    }
    l->items[l->n++] = r;
    return true;
}

void request_list_remove_at(request_list *l, int32_t i) {
    memmove(l->items + i, l->items + i + 1, (size_t)(l->n - i - 1) * sizeof *l->items);
    l->n--;
}

int32_t request_list_find(const request_list *l, const request *r) {
    for (int32_t i = 0; i < l->n; i++)
        if (l->items[i] == r) return i;
    return -1;
}

/* --------------------------------------------------------------------------------------------- */
/* the plan                                                                                      */
/* --------------------------------------------------------------------------------------------- */

void llmrt_step_plan_free(step_plan *p) {
    free(p->seq_req);
    free(p->seq_new);
    free(p->finished);
    memset(p, 0, sizeof *p);
}

static bool add_seq(step_plan *p, request *r, int32_t n_new) {
    if (p->n_seqs == p->cap_seqs) {
        int32_t   cap = p->cap_seqs ? 2 * p->cap_seqs : 64;
        request **a   = realloc(p->seq_req, (size_t)cap * sizeof *a);
        if (!a) return false;
        p->seq_req = a;
        int32_t *b = realloc(p->seq_new, (size_t)cap * sizeof *b);
        if (!b) return false;
        p->seq_new  = b;
        p->cap_seqs = cap;
    }
    p->seq_req[p->n_seqs] = r;
    p->seq_new[p->n_seqs] = n_new;
    p->n_seqs++;
    p->n_tokens += n_new;
    return true;
}

/* Ends r (already out of both lists): its blocks go back now, so later decisions of this step
 * can use them. When the plan's list cannot grow (out of memory) the request goes back to the
 * waiting queue for recompute instead of being lost. */
static void end_request(planner_state *st, step_plan *p, request *r, llmrt_finish_reason why,
                        llmrt_status status, const char *message) {
    llmrt_bm_release(st->bm, &r->blocks);
    if (p->n_finished == p->cap_finished) {
        int32_t      cap = p->cap_finished ? 2 * p->cap_finished : 16;
        plan_finish *f   = realloc(p->finished, (size_t)cap * sizeof *f);
        if (!f) {
            r->n_computed = r->n_cached = 0;
            r->state = REQUEST_WAITING;
            request_list_push(st->waiting, r);
            return;
        }
        p->finished     = f;
        p->cap_finished = cap;
    }
    p->finished[p->n_finished++] = (plan_finish){r, why, status, message};
}

/* Index of the waiting request to admit next: lowest priority value, then oldest. */
static int32_t next_waiting(const request_list *waiting) {
    int32_t best = -1;
    for (int32_t i = 0; i < waiting->n; i++) {
        const request *r = waiting->items[i];
        if (best < 0) {
            best = i;
            continue;
        }
        const request *b = waiting->items[best];
        if (r->priority < b->priority || (r->priority == b->priority && r->arrival < b->arrival))
            best = i;
    }
    return best;
}

/* Frees a running request's blocks and queues it for recompute (its tokens, prompt and output
 * so far, are computed again when it is readmitted; batch invariance makes the result equal). */
static void preempt(planner_state *st, step_plan *p, request *r) {
    int32_t i = request_list_find(st->running, r);
    if (i >= 0) request_list_remove_at(st->running, i);
    llmrt_bm_release(st->bm, &r->blocks);
    r->n_computed = 0;
    r->n_cached   = 0;
    r->state      = REQUEST_WAITING;
    r->n_preemptions++;
    p->n_preempted++;
    if (!request_list_push(st->waiting, r))
        end_request(st, p, r, LLMRT_FINISH_ERROR, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
}

void llmrt_plan_step(planner_state *st, step_plan *p) {
    int32_t budget        = st->max_batched_tokens;
    bool    preempted_now = false;
    p->n_seqs = p->n_tokens = p->n_finished = p->n_preempted = 0;
    p->prefix_queries = p->prefix_hits = 0;

    /* sliding window: blocks no running sequence can attend to again go back first */
    for (int32_t i = 0; st->sliding_window > 0 && i < st->running->n; i++) {
        request *r = st->running->items[i];
        llmrt_bm_drop_before(st->bm, &r->blocks, r->n_computed - st->sliding_window + 1);
    }

    /* running requests first (oldest first), preempting the newest when blocks run out */
    for (int32_t i = 0; i < st->running->n && budget > 0; i++) {
        request *r     = st->running->items[i];
        int64_t  n_new = r->n_tokens - r->n_computed;
        if (n_new > budget) n_new = budget;
        bool fits = true;
        while (!llmrt_bm_ensure(st->bm, &r->blocks, r->n_computed + n_new)) {
            request *victim = st->running->items[st->running->n - 1];
            if (st->policy == LLMRT_KV_RESERVE || (victim == r && st->running->n == 1)) {
                /* alone and still too big (or reserve accounting broken): it cannot grow */
                request_list_remove_at(st->running, i);
                end_request(st, p, r, LLMRT_FINISH_LENGTH, LLMRT_OK,
                            "the KV cache cannot hold this request's context");
                fits = false;
                i--;
                break;
            }
            preempt(st, p, victim);
            preempted_now = true;
            if (victim == r) {
                fits = false;
                i--;
                break;
            }
        }
        if (!fits) continue;
        if (!add_seq(p, r, (int32_t)n_new)) break;
        budget -= (int32_t)n_new;
    }
    /* like vLLM: no admissions in a step that had to preempt (the pool is under pressure) */
    while (!preempted_now && budget > 0 && st->running->n < st->max_seqs && st->waiting->n > 0) {
        int32_t  w = next_waiting(st->waiting);
        request *r = st->waiting->items[w];
        const char *why  = NULL;
        plan_gate   gate = st->gate ? st->gate(st->gate_ctx, r, st->running, &why) : PLAN_ADMIT;
        if (gate == PLAN_WAIT) break;
        if (gate == PLAN_FAIL) {
            request_list_remove_at(st->waiting, w);
            end_request(st, p, r, LLMRT_FINISH_ERROR, LLMRT_ERR_INVALID_ARG,
                        why ? why : "the request cannot be admitted");
            continue;
        }
        /* prompt logprobs need logits for every prompt token: no prefix-cache hit (request.h) */
        if (r->blocks.n == 0 && !request_needs_prompt_logits(r)) {
            r->n_computed = llmrt_bm_match_prefix(st->bm, &r->blocks, r->tokens, r->n_tokens);
            /* a preempted request may match its own generated tokens: report prompt tokens */
            r->n_cached = r->n_computed < r->n_prompt ? r->n_computed : r->n_prompt;
        }
        int64_t n_new = r->n_tokens - r->n_computed;
        if (n_new > budget) n_new = budget;
        int64_t need = st->policy == LLMRT_KV_RESERVE ? r->max_total : r->n_computed + n_new;
        /* reserve policy, n > 1: the sequences forked after the prompt need their own blocks
         * past the prompt's full ones; admit only while the pool has them too (they are taken
         * at the fork, so a later admission may still use them first: best effort) */
        int32_t fork_need = 0;
        if (st->policy == LLMRT_KV_RESERVE && r->n_fork > 0) {
            int32_t bs = llmrt_bm_block_size(st->bm);
            fork_need  = r->n_fork * (int32_t)((r->max_total + bs - 1) / bs - r->n_prompt / bs);
        }
        if (fork_need > 0 &&
            llmrt_bm_available(st->bm) - llmrt_bm_blocks_needed(st->bm, &r->blocks, need) <
                fork_need) {
            llmrt_bm_release(st->bm, &r->blocks);
            r->n_computed = r->n_cached = 0;
            break;
        }
        if (!llmrt_bm_ensure(st->bm, &r->blocks, need)) {
            bool admitted = false;
            if (st->running->n == 0 && st->policy == LLMRT_KV_PREEMPT) {
                /* nothing runs: give it the chunk that fits rather than stall */
                int64_t room = (int64_t)(r->blocks.n + llmrt_bm_available(st->bm)) *
                               llmrt_bm_block_size(st->bm);
                n_new    = room - r->n_computed;
                admitted = n_new > 0 &&
                           llmrt_bm_ensure(st->bm, &r->blocks, r->n_computed + n_new);
            }
            if (!admitted) {
                /* keep the prefix hits only if it stays first in line; simplest: drop them */
                llmrt_bm_release(st->bm, &r->blocks);
                r->n_computed = r->n_cached = 0;
                break;
            }
        }
        request_list_remove_at(st->waiting, w);
        r->state = REQUEST_RUNNING;
        if (!r->prefix_counted) { /* a prompt-logprobs request looks nothing up */
            r->prefix_counted = true;
            p->prefix_queries += r->prompt_lp ? 0 : r->n_prompt;
            p->prefix_hits += r->n_cached;
        }
        if (!request_list_push(st->running, r)) {
            end_request(st, p, r, LLMRT_FINISH_ERROR, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
            continue;
        }
        if (!add_seq(p, r, (int32_t)n_new)) break;
        budget -= (int32_t)n_new;
    }
}
