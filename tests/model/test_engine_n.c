/* n > 1 sequences per request (llmrt_sampling_params.n) through the public engine API, with the
 * tiny model (tests/data/tiny/llama_f32: vocab 320, no tokenizer, block size 16).
 *
 * Greedy n = 3 gives three sequences equal to the n = 1 result; seeded sampling gives sequence i
 * the result of an n = 1 run with seed + i, the same on a rerun; the prompt is prefilled once
 * (prompt_tokens metric); every KV block returns to the pool after finishing and after aborts
 * (queued, mid-prefill, decoding); n outside [1, 64] is INVALID_ARG naming n; outputs carry
 * index 0..n-1 and each index finishes exactly once; llmrt_generate refuses n > 1. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define TINY_VOCAB 320
#define MAX_N      64
#define MAX_GEN    64

static llmrt_model *tiny;
static bool         on_cuda; /* --cuda: the model on the CUDA backend (cusim or a GPU) */

typedef struct seqs {
    int32_t tokens[MAX_N][MAX_GEN];
    int32_t n_tokens[MAX_N];
    int32_t n_final[MAX_N];
    int32_t n_bad;
    llmrt_finish_reason finish[MAX_N];
} seqs;

static llmrt_engine *make_engine(void) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 1024;
    llmrt_engine       *e = NULL;
    CHECK_STATUS(llmrt_engine_create(tiny, &p, &e), LLMRT_OK, NULL);
    return e;
}

static void make_prompt(int32_t *prompt, int32_t n, uint64_t seed) {
    for (int32_t i = 0; i < n; i++) {
        seed      = seed * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = (int32_t)((seed >> 33) % TINY_VOCAB);
    }
}

static void collect(seqs *out, uint64_t id, const llmrt_output *o, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        if (o[i].request_id != id) continue;
        int32_t x = o[i].index;
        if (x < 0 || x >= MAX_N) {
            out->n_bad++;
            continue;
        }
        if (out->n_final[x]) out->n_bad++; /* nothing after an index's final output */
        for (int32_t k = 0; k < o[i].n_tokens; k++)
            if (out->n_tokens[x] < MAX_GEN) out->tokens[x][out->n_tokens[x]++] = o[i].tokens[k];
        if (o[i].finish != LLMRT_FINISH_NONE) {
            out->n_final[x]++;
            out->finish[x] = o[i].finish;
        }
    }
}

/* Runs until the engine is idle; `abort_at` >= 0 aborts the request after that many steps. */
static void run(llmrt_engine *e, uint64_t id, seqs *out, int32_t abort_at) {
    for (int32_t step = 0; step < 10000; step++) {
        if (step == abort_at) CHECK_STATUS(llmrt_engine_abort(e, id), LLMRT_OK, NULL);
        const llmrt_output *o;
        int32_t             n = 0;
        CHECK_STATUS(llmrt_engine_step(e, &o, &n), LLMRT_OK, NULL);
        collect(out, id, o, n);
        if (n == 0 && llmrt_engine_pending(e) == 0 && step > abort_at) break;
    }
}

static uint64_t submit(llmrt_engine *e, const int32_t *prompt, int32_t n_prompt,
                       const llmrt_sampling_params *sp) {
    llmrt_prompt p  = {.struct_size = sizeof p, .tokens = prompt, .n_tokens = n_prompt};
    uint64_t     id = 0;
    CHECK_STATUS(llmrt_engine_submit(e, &p, sp, &id), LLMRT_OK, NULL);
    return id;
}

static int64_t blocks_used(llmrt_engine *e, int64_t *prompt_tokens) {
    llmrt_engine_metrics m = {.struct_size = sizeof m};
    CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_OK, NULL);
    if (prompt_tokens) *prompt_tokens = m.prompt_tokens;
    return m.kv_blocks_used;
}

/* One request of n sequences on a fresh engine. */
static void one(const int32_t *prompt, int32_t n_prompt, llmrt_sampling_params sp, seqs *out,
                int64_t *prompt_tokens) {
    memset(out, 0, sizeof *out);
    llmrt_engine *e = make_engine();
    if (!e) return;
    uint64_t id = submit(e, prompt, n_prompt, &sp);
    run(e, id, out, -1);
    for (int32_t i = 0; i < sp.n; i++)
        CHECK_MSG(out->n_final[i] == 1, "index %d finished %d times", i, out->n_final[i]);
    CHECK(out->n_bad == 0);
    CHECK_MSG(blocks_used(e, prompt_tokens) == 0, "KV blocks still used after finishing");
    llmrt_engine_destroy(e);
}

static void test_greedy(int32_t n_prompt);

/* The same on an in-process tensor-parallel group (tp 2): the copy-on-write copy runs on every
 * rank (the tail is not recomputed: prompt_tokens counts the prompt once). */
static void test_tp(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/tiny/llama_f32", LLMRT_TEST_DATA_DIR);
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 1;
    mp.tensor_parallel    = 2;
    llmrt_model *one_rank = tiny;
    CHECK_STATUS(llmrt_model_load(path, &mp, &tiny), LLMRT_OK, NULL);
    if (tiny) {
        test_greedy(37);
        llmrt_model_destroy(tiny);
    }
    tiny = one_rank;
}

static void test_greedy(int32_t n_prompt) {
    int32_t prompt[64];
    make_prompt(prompt, n_prompt, 7);
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature           = 0.0f;
    sp.max_tokens            = 20;
    sp.ignore_eos            = true;
    seqs    ref, three;
    int64_t pt1 = 0, pt3 = 0;
    one(prompt, n_prompt, sp, &ref, &pt1);
    sp.n = 3;
    one(prompt, n_prompt, sp, &three, &pt3);
    CHECK(ref.n_tokens[0] == 20);
    /* on a GPU a batch of 3 rows need not round like a batch of 1: there the sequences are
     * compared with each other (same rows of one batch; a wrong KV copy makes them differ) */
    const int32_t *want = on_cuda ? three.tokens[0] : ref.tokens[0];
    for (int32_t i = 0; i < 3; i++) {
        CHECK_MSG(three.n_tokens[i] == 20 && memcmp(three.tokens[i], want, sizeof(int32_t) * 20) == 0,
                  "greedy prompt %d: sequence %d differs from %s", n_prompt, i,
                  on_cuda ? "sequence 0" : "n = 1");
        CHECK(three.finish[i] == LLMRT_FINISH_LENGTH);
    }
    CHECK_MSG(pt1 == n_prompt && pt3 == n_prompt, "prompt tokens %lld / %lld, expected %d once",
              (long long)pt1, (long long)pt3, n_prompt);
}

static void test_seeded(void) {
    int32_t prompt[64];
    make_prompt(prompt, 37, 11);
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature           = 1.0f;
    sp.max_tokens            = 24;
    sp.ignore_eos            = true;
    sp.has_seed              = true;
    sp.seed                  = 1234;
    sp.n                     = 3;
    seqs a, b;
    one(prompt, 37, sp, &a, NULL);
    one(prompt, 37, sp, &b, NULL);
    CHECK_MSG(memcmp(a.tokens, b.tokens, sizeof a.tokens) == 0, "a seeded rerun differs");
    int32_t n_distinct = 0;
    for (int32_t i = 0; i < 3; i++) {
        seqs                  single;
        llmrt_sampling_params s1 = sp;
        s1.n                     = 1;
        s1.seed                  = sp.seed + (uint64_t)i;
        one(prompt, 37, s1, &single, NULL);
        CHECK_MSG(single.n_tokens[0] == a.n_tokens[i] &&
                      memcmp(single.tokens[0], a.tokens[i], sizeof(int32_t) * 24) == 0,
                  "sequence %d differs from n = 1 with seed + %d", i, i);
        if (i > 0 && memcmp(a.tokens[i], a.tokens[0], sizeof(int32_t) * 24) != 0) n_distinct++;
    }
    CHECK_MSG(n_distinct > 0, "seeded sequences are all equal");
}

static void test_abort(void) {
    int32_t prompt[200];
    make_prompt(prompt, 200, 3);
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature           = 0.0f;
    sp.max_tokens            = 40;
    sp.ignore_eos            = true;
    sp.n                     = 4;
    /* at 0 steps: queued; 1: mid-prefill (chunks of 64); 6: decoding after the fork */
    int32_t at[] = {0, 1, 6};
    for (int32_t k = 0; k < 3; k++) {
        llmrt_engine_params p = llmrt_engine_default_params();
        p.kv_tokens           = 1024;
        p.max_batched_tokens  = 64;
        llmrt_engine *e       = NULL;
        CHECK_STATUS(llmrt_engine_create(tiny, &p, &e), LLMRT_OK, NULL);
        if (!e) return;
        seqs out;
        memset(&out, 0, sizeof out);
        uint64_t id = submit(e, prompt, 200, &sp);
        run(e, id, &out, at[k]);
        for (int32_t i = 0; i < 4; i++) {
            CHECK_MSG(out.n_final[i] == 1, "abort at step %d: index %d finished %d times", at[k],
                      i, out.n_final[i]);
            CHECK_MSG(out.finish[i] == LLMRT_FINISH_ABORT, "abort at step %d: index %d ended %d",
                      at[k], i, (int)out.finish[i]);
        }
        CHECK(out.n_bad == 0);
        CHECK_MSG(blocks_used(e, NULL) == 0, "abort at step %d: KV blocks still used", at[k]);
        llmrt_engine_destroy(e);
    }
}

/* Several n > 1 requests at once, with a pool small enough to preempt forked sequences: all
 * indices finish once, greedy results equal n = 1, the pool is empty at the end. */
static void test_pressure(void) {
    int32_t prompt[3][64];
    seqs    ref[3];
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature           = 0.0f;
    sp.max_tokens            = 40;
    sp.ignore_eos            = true;
    for (int32_t r = 0; r < 3; r++) {
        make_prompt(prompt[r], 21 + 9 * r, 100 + (uint64_t)r);
        one(prompt[r], 21 + 9 * r, sp, &ref[r], NULL);
    }
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 16 * 14; /* 14 blocks for 9 sequences of up to 5 blocks */
    llmrt_engine *e       = NULL;
    CHECK_STATUS(llmrt_engine_create(tiny, &p, &e), LLMRT_OK, NULL);
    if (!e) return;
    sp.n = 3;
    uint64_t ids[3];
    seqs     out[3];
    memset(out, 0, sizeof out);
    for (int32_t r = 0; r < 3; r++) ids[r] = submit(e, prompt[r], 21 + 9 * r, &sp);
    for (int32_t step = 0; step < 10000; step++) {
        const llmrt_output *o;
        int32_t             n = 0;
        CHECK_STATUS(llmrt_engine_step(e, &o, &n), LLMRT_OK, NULL);
        for (int32_t r = 0; r < 3; r++) collect(&out[r], ids[r], o, n);
        if (n == 0 && llmrt_engine_pending(e) == 0) break;
    }
    llmrt_engine_metrics m = {.struct_size = sizeof m};
    llmrt_engine_get_metrics(e, &m);
    for (int32_t r = 0; r < 3; r++)
        for (int32_t i = 0; i < 3; i++) {
            CHECK_MSG(out[r].n_final[i] == 1, "request %d index %d finished %d times", r, i,
                      out[r].n_final[i]);
            CHECK_MSG(out[r].n_tokens[i] == 40 &&
                          memcmp(out[r].tokens[i], ref[r].tokens[0], sizeof(int32_t) * 40) == 0,
                      "request %d index %d differs from n = 1 (preemptions %lld)", r, i,
                      (long long)m.preemptions);
        }
    CHECK(m.kv_blocks_used == 0);
    CHECK_MSG(m.preemptions > 0, "the pool was meant to preempt forked sequences");
    llmrt_engine_destroy(e);
}

/* The reserve policy: n = 2 requests are admitted with room for both sequences, never cut
 * short; one that can never fit is refused at submit. */
static void test_reserve(void) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.kv_tokens           = 16 * 10;
    p.policy              = LLMRT_KV_RESERVE;
    llmrt_engine *e       = NULL;
    CHECK_STATUS(llmrt_engine_create(tiny, &p, &e), LLMRT_OK, NULL);
    if (!e) return;
    int32_t prompt[3][40];
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature           = 0.0f;
    sp.max_tokens            = 30;
    sp.ignore_eos            = true;
    sp.n                     = 2;
    uint64_t ids[3];
    seqs     out[3];
    memset(out, 0, sizeof out);
    for (int32_t r = 0; r < 3; r++) { /* 40 + 30 tokens: 5 blocks a sequence, 10 a request */
        make_prompt(prompt[r], 40, 50 + (uint64_t)r);
        ids[r] = submit(e, prompt[r], 40, &sp);
    }
    for (int32_t step = 0; step < 10000; step++) {
        const llmrt_output *o;
        int32_t             n = 0;
        CHECK_STATUS(llmrt_engine_step(e, &o, &n), LLMRT_OK, NULL);
        for (int32_t r = 0; r < 3; r++) collect(&out[r], ids[r], o, n);
        if (n == 0 && llmrt_engine_pending(e) == 0) break;
    }
    for (int32_t r = 0; r < 3; r++)
        for (int32_t i = 0; i < 2; i++)
            CHECK_MSG(out[r].n_final[i] == 1 && out[r].n_tokens[i] == 30 &&
                          out[r].finish[i] == LLMRT_FINISH_LENGTH,
                      "reserve: request %d index %d: %d tokens, finish %d", r, i,
                      out[r].n_tokens[i], (int)out[r].finish[i]);
    CHECK(blocks_used(e, NULL) == 0);
    sp.n = 3; /* 15 blocks > 10 */
    llmrt_prompt pr = {.struct_size = sizeof pr, .tokens = prompt[0], .n_tokens = 40};
    uint64_t     id;
    CHECK_STATUS(llmrt_engine_submit(e, &pr, &sp, &id), LLMRT_ERR_NO_KV_SPACE, "n = 3");
    llmrt_engine_destroy(e);
}

static void test_errors(void) {
    llmrt_engine *e = make_engine();
    if (!e) return;
    int32_t      prompt[4] = {1, 2, 3, 4};
    llmrt_prompt p         = {.struct_size = sizeof p, .tokens = prompt, .n_tokens = 4};
    uint64_t     id;
    int32_t      bad[] = {0, -1, 65};
    for (int32_t k = 0; k < 3; k++) {
        llmrt_sampling_params sp = llmrt_sampling_default_params();
        sp.n                     = bad[k];
        CHECK_STATUS(llmrt_engine_submit(e, &p, &sp, &id), LLMRT_ERR_INVALID_ARG, "n ");
    }
    /* an older caller's struct (without n) gets n = 1 */
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.n                     = 0;
    sp.max_tokens            = 2;
    sp.struct_size           = (uint32_t)offsetof(llmrt_sampling_params, n);
    CHECK_STATUS(llmrt_engine_submit(e, &p, &sp, &id), LLMRT_OK, NULL);
    seqs out;
    memset(&out, 0, sizeof out);
    run(e, id, &out, -1);
    CHECK(out.n_final[0] == 1 && out.n_final[1] == 0);
    /* llmrt_generate makes one sequence */
    sp             = llmrt_sampling_default_params();
    sp.n           = 2;
    CHECK_STATUS(llmrt_generate(e, &p, &sp, NULL, NULL, NULL), LLMRT_ERR_INVALID_ARG, "n = 2");
    sp.n          = 64;
    sp.max_tokens = 2;
    CHECK_STATUS(llmrt_engine_submit(e, &p, &sp, &id), LLMRT_OK, NULL);
    memset(&out, 0, sizeof out);
    run(e, id, &out, -1);
    CHECK(out.n_bad == 0);
    for (int32_t i = 0; i < 64; i++) CHECK(out.n_final[i] == 1 && out.n_tokens[i] == 2);
    CHECK(blocks_used(e, NULL) == 0);
    llmrt_engine_destroy(e);
}

int main(int argc, char **argv) {
    on_cuda = argc > 1 && strcmp(argv[1], "--cuda") == 0;
    char path[2048];
    snprintf(path, sizeof path, "%s/tiny/llama_f32", LLMRT_TEST_DATA_DIR);
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 2;
    if (on_cuda) {
        mp.device = LLMRT_DEVICE_CUDA;
        if (llmrt_model_load(path, &mp, &tiny) != LLMRT_OK) {
            printf("test_engine_n --cuda: no CUDA device (%s): skipped\n", llmrt_last_error());
            return 77;
        }
        /* the copy-on-write copy on the device (backend copy), block-aligned, aborts */
        test_greedy(37);
        test_greedy(32);
        test_abort();
        llmrt_model_destroy(tiny);
        return test_summary("test_engine_n --cuda");
    }
    CHECK_STATUS(llmrt_model_load(path, &mp, &tiny), LLMRT_OK, NULL);
    if (!tiny) return test_summary("test_engine_n");
    test_greedy(37); /* a partial last block: copy-on-write */
    test_greedy(32); /* ends on a block boundary: nothing to copy */
    test_greedy(5);  /* inside the first block */
    test_seeded();
    test_tp();
    test_abort();
    test_pressure();
    test_reserve();
    test_errors();
    llmrt_model_destroy(tiny);
    return test_summary("test_engine_n");
}
