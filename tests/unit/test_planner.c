/* The planner (engine/planner.h) without a model: requests and a KV block manager in, a step
 * plan out. Chunked prefill under the token budget, decodes before admissions, admission order
 * (priority, then arrival) and max_seqs, preemption of the newest request when blocks run out
 * (recompute: blocks released, n_computed reset, no admissions that step), the reserve policy
 * (admit only when prompt + max_tokens fit; never preempt; a request that can never fit ends
 * with LENGTH) and prefix-cache hits on admission. The forward is simulated: a planned chunk
 * becomes computed, and a sequence whose chunk reaches its last token "samples" one more. */
#include <stdlib.h>
#include <string.h>

#include "engine/planner.h"
#include "test_util.h"

#define BS 4 /* tokens per block */

typedef struct sim {
    request_list        waiting, running;
    llmrt_block_manager *bm;
    planner_state       st;
    step_plan           plan;
    request            *all[16];
    int32_t             n_all;
    uint64_t            next_arrival;
} sim;

static void sim_init(sim *s, int32_t n_blocks, int32_t budget, int32_t max_seqs,
                     llmrt_kv_policy policy, bool prefix_caching) {
    memset(s, 0, sizeof *s);
    s->bm = llmrt_bm_create(n_blocks, BS, prefix_caching);
    s->st = (planner_state){.waiting = &s->waiting, .running = &s->running, .bm = s->bm,
                            .max_batched_tokens = budget, .max_seqs = max_seqs, .policy = policy};
}

/* A waiting request with prompt tokens first_token, first_token + 1, ... */
static request *sim_submit(sim *s, int32_t n_prompt, int32_t first_token, int32_t max_tokens,
                           int32_t priority) {
    request *r    = calloc(1, sizeof *r);
    r->cap_tokens = n_prompt + max_tokens + 1;
    r->tokens     = calloc((size_t)r->cap_tokens, sizeof *r->tokens);
    for (int32_t i = 0; i < n_prompt; i++) r->tokens[i] = first_token + i;
    r->n_tokens = r->n_prompt = n_prompt;
    r->max_total              = n_prompt + max_tokens;
    r->priority               = priority;
    r->arrival                = ++s->next_arrival;
    r->id                     = r->arrival;
    r->state                  = REQUEST_WAITING;
    request_list_push(&s->waiting, r);
    s->all[s->n_all++] = r;
    return r;
}

/* Plans a step and simulates its forward; returns the plan. */
static const step_plan *sim_step(sim *s) {
    llmrt_plan_step(&s->st, &s->plan);
    for (int32_t i = 0; i < s->plan.n_seqs; i++) {
        request *r = s->plan.seq_req[i];
        r->n_computed += s->plan.seq_new[i];
        llmrt_bm_commit(s->bm, &r->blocks, r->tokens, r->n_computed);
        if (r->n_computed == r->n_tokens && r->n_tokens < r->max_total) {
            r->tokens[r->n_tokens] = 1000 + (int32_t)r->n_tokens; /* the "sampled" token */
            r->n_tokens++;
        }
    }
    return &s->plan;
}

static void sim_finish(sim *s, request *r) {
    int32_t i = request_list_find(&s->running, r);
    if (i >= 0) request_list_remove_at(&s->running, i);
    llmrt_bm_release(s->bm, &r->blocks);
    r->state = REQUEST_FINISHED;
}

static void sim_check_blocks(sim *s) {
    const llmrt_seq_blocks *live[16];
    int32_t                 n = 0;
    for (int32_t i = 0; i < s->n_all; i++)
        if (s->all[i]->blocks.n) live[n++] = &s->all[i]->blocks;
    const char *problem = llmrt_bm_check(s->bm, live, n);
    CHECK_MSG(problem == NULL, "llmrt_bm_check: %s", problem);
}

static void sim_free(sim *s) {
    for (int32_t i = 0; i < s->n_all; i++) {
        llmrt_bm_release(s->bm, &s->all[i]->blocks);
        free(s->all[i]->blocks.ids);
        free(s->all[i]->tokens);
        free(s->all[i]);
    }
    free(s->waiting.items);
    free(s->running.items);
    llmrt_step_plan_free(&s->plan);
    llmrt_bm_destroy(s->bm);
}

/* A 20-token prompt under a budget of 8: chunks of 8, 8, 4; the second request is admitted in
 * the step where budget is left over, and decodes run before prompt chunks after that. */
static void test_chunked_prefill(void) {
    sim s;
    sim_init(&s, 64, 8, 16, LLMRT_KV_PREEMPT, true);
    request *a = sim_submit(&s, 20, 1, 4, 0);
    const step_plan *p = sim_step(&s);
    CHECK(p->n_seqs == 1 && p->seq_req[0] == a && p->seq_new[0] == 8 && p->n_tokens == 8);
    request *b = sim_submit(&s, 6, 100, 4, 0);
    p = sim_step(&s);
    CHECK(p->n_seqs == 1 && p->seq_req[0] == a && p->seq_new[0] == 8); /* no budget for b */
    p = sim_step(&s);
    CHECK_MSG(p->n_seqs == 2 && p->seq_req[0] == a && p->seq_new[0] == 4 && p->seq_req[1] == b &&
                  p->seq_new[1] == 4,
              "step 3: %d seqs", p->n_seqs);
    CHECK(a->n_computed == 20 && a->n_tokens == 21 && b->n_computed == 4);
    p = sim_step(&s); /* a decodes (1 token), b finishes its prompt (2) */
    CHECK(p->n_seqs == 2 && p->seq_req[0] == a && p->seq_new[0] == 1 && p->seq_req[1] == b &&
          p->seq_new[1] == 2 && p->n_tokens == 3);
    CHECK(s.running.n == 2 && s.waiting.n == 0);
    sim_check_blocks(&s);
    sim_free(&s);
}

/* Admission order: lowest priority value first, then the oldest; at most max_seqs running. */
static void test_admission_order(void) {
    sim s;
    sim_init(&s, 64, 64, 2, LLMRT_KV_PREEMPT, true);
    request *late = sim_submit(&s, 4, 1, 4, 5);
    request *r1   = sim_submit(&s, 4, 10, 4, 0);
    request *r2   = sim_submit(&s, 4, 20, 4, 0);
    const step_plan *p = sim_step(&s);
    CHECK(p->n_seqs == 2 && p->seq_req[0] == r1 && p->seq_req[1] == r2); /* max_seqs 2 */
    CHECK(late->state == REQUEST_WAITING && s.waiting.n == 1);
    sim_finish(&s, r1);
    p = sim_step(&s);
    CHECK(p->n_seqs == 2 && p->seq_req[0] == r2 && p->seq_req[1] == late);
    sim_free(&s);
}

/* 4 blocks of 4 tokens: two 7-token prompts take 2 blocks each; when both need a third block
 * to decode, the newest is preempted (blocks back, recompute later) and nothing is admitted in
 * that step; it comes back, recomputing its prompt and generated token, once room returns. */
static void test_preemption(void) {
    sim s;
    sim_init(&s, 4, 64, 8, LLMRT_KV_PREEMPT, false);
    request *old = sim_submit(&s, 7, 1, 8, 0);
    request *neu = sim_submit(&s, 7, 100, 8, 0);
    const step_plan *p = sim_step(&s);
    CHECK(p->n_seqs == 2 && old->blocks.n == 2 && neu->blocks.n == 2);
    p = sim_step(&s); /* position 7: the last slot of the second block */
    CHECK(p->n_seqs == 2 && p->n_preempted == 0 && old->n_tokens == 9);
    sim_submit(&s, 2, 200, 2, 0);
    p = sim_step(&s); /* position 8 needs a third block each: the pool has none */
    CHECK_MSG(p->n_preempted == 1 && p->n_seqs == 1 && p->seq_req[0] == old,
              "preempted %d, seqs %d", p->n_preempted, p->n_seqs);
    CHECK(neu->state == REQUEST_WAITING && neu->n_computed == 0 && neu->blocks.n == 0 &&
          neu->n_preemptions == 1);
    CHECK(s.running.n == 1 && s.waiting.n == 2); /* no admission in a step that preempted */
    sim_check_blocks(&s);
    sim_finish(&s, old);
    p = sim_step(&s); /* readmitted first (oldest arrival): prompt + its generated token */
    CHECK_MSG(p->n_seqs == 2 && p->seq_req[0] == neu && p->seq_new[0] == 9 && p->seq_new[1] == 2,
              "seqs %d, first %d tokens", p->n_seqs, p->n_seqs ? p->seq_new[0] : -1);
    sim_check_blocks(&s);
    sim_free(&s);
}

/* Reserve policy: admitted only when prompt + max_tokens fit in free blocks; never preempts. */
static void test_reserve_policy(void) {
    sim s;
    sim_init(&s, 4, 64, 8, LLMRT_KV_RESERVE, false);
    request *a = sim_submit(&s, 4, 1, 8, 0);   /* 12 tokens: 3 blocks reserved at admission */
    request *b = sim_submit(&s, 2, 100, 6, 0); /* 8 tokens: 2 blocks, only 1 left */
    const step_plan *p = sim_step(&s);
    CHECK(p->n_seqs == 1 && p->seq_req[0] == a && a->blocks.n == 3 && b->state == REQUEST_WAITING);
    for (int i = 0; i < 8; i++) {
        p = sim_step(&s);
        CHECK(p->n_preempted == 0);
    }
    CHECK(a->n_tokens == a->max_total && b->state == REQUEST_WAITING);
    sim_finish(&s, a);
    p = sim_step(&s);
    CHECK(p->n_seqs == 1 && p->seq_req[0] == b);
    sim_free(&s);

    /* a running request that outgrows a pool it holds alone ends with LENGTH (blocks back) */
    sim_init(&s, 2, 64, 8, LLMRT_KV_PREEMPT, false);
    request *big = sim_submit(&s, 6, 1, 8, 0);
    p = sim_step(&s);
    CHECK(p->n_seqs == 1 && big->n_tokens == 7);
    for (int i = 0; i < 2; i++) {
        p = sim_step(&s);
        CHECK(p->n_seqs == 1); /* positions 6 and 7 still fit in 8 slots */
    }
    p = sim_step(&s);
    CHECK_MSG(p->n_seqs == 0 && p->n_finished == 1 && p->finished[0].r == big &&
                  p->finished[0].why == LLMRT_FINISH_LENGTH && big->blocks.n == 0,
              "seqs %d finished %d", p->n_seqs, p->n_finished);
    CHECK(s.running.n == 0 && llmrt_bm_available(s.bm) == 2);
    sim_free(&s);
}

/* A finished request's full blocks stay cached: a new prompt sharing its first 8 tokens takes
 * them (n_computed 8) and computes only the rest; the metrics count it once. */
static void test_prefix_hits(void) {
    sim s;
    sim_init(&s, 16, 64, 8, LLMRT_KV_PREEMPT, true);
    request *a = sim_submit(&s, 10, 1, 1, 0);
    const step_plan *p = sim_step(&s);
    CHECK(p->prefix_queries == 10 && p->prefix_hits == 0);
    sim_finish(&s, a);
    request *b = sim_submit(&s, 11, 1, 4, 0); /* tokens 1..11: the first 8 are cached */
    p = sim_step(&s);
    CHECK_MSG(p->n_seqs == 1 && p->seq_new[0] == 3 && b->n_cached == 8 && p->prefix_hits == 8 &&
                  p->prefix_queries == 11,
              "new %d cached %lld hits %lld", p->n_seqs ? p->seq_new[0] : -1,
              (long long)b->n_cached, (long long)p->prefix_hits);
    sim_check_blocks(&s);
    /* a prompt of exactly the cached blocks keeps one token to compute (its logits) */
    request *c = sim_submit(&s, 8, 1, 4, 0);
    p = sim_step(&s);
    CHECK(p->n_seqs == 2 && p->seq_req[1] == c && p->seq_new[1] == 4 && c->n_cached == 4);
    sim_free(&s);
}

int main(void) {
    test_chunked_prefill();
    test_admission_order();
    test_preemption();
    test_reserve_policy();
    test_prefix_hits();
    return test_summary("test_planner");
}
