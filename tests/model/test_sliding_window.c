/* Mistral's sliding window through the engine (issue 16): tests/data/tiny/mistral_window_f32
 * (sliding_window 8) generates 40 greedy tokens after a 6-token prompt, i.e. to position 45,
 * 5.6 windows long, and must give exactly HF's tokens
 * (tests/data/golden/mistral_window_f32_greedy.json, python/tools/make_variant_models.py):
 *   1. with a big KV pool;
 *   2. with a pool of 6 blocks of 4 tokens (24 slots < the 46 the sequence holds at the end):
 *      only the planner's freeing of the blocks below the window (llmrt_bm_drop_before) lets it
 *      finish; no preemption, never more than 4 blocks in use at once;
 *   3. four requests at once, three with the same prompt (prefix-cache hits on blocks that the
 *      first sequence then drops, evictions, preemption under a 12-block pool): every sequence
 *      gives the golden tokens, and the pool is whole when the engine is idle;
 *   4. the same prompt submitted again after the first finished (a prefix hit on cached blocks
 *      the window dropped earlier): the golden tokens again;
 *   5. n = 2 of a 22-token prompt prefilled in chunks of 4 in a 10-block pool (blocks dropped
 *      before the fork): both sequences equal the single run in a big pool. */
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "llmrt.h"
#include "test_util.h"

#define GEN 40

static int32_t prompt[16], n_prompt, want[GEN];

static llmrt_engine *make_engine_chunked(llmrt_model *m, int64_t kv_tokens, int32_t max_batched) {
    llmrt_engine_params p = llmrt_engine_default_params();
    p.block_size          = 4;
    p.kv_tokens           = kv_tokens;
    if (max_batched > 0) p.max_batched_tokens = max_batched;
    llmrt_engine *e       = NULL;
    CHECK_STATUS(llmrt_engine_create(m, &p, &e), LLMRT_OK, NULL);
    return e;
}

static llmrt_engine *make_engine(llmrt_model *m, int64_t kv_tokens) {
    return make_engine_chunked(m, kv_tokens, 0);
}

static uint64_t submit_n(llmrt_engine *e, const int32_t *toks, int32_t n, int32_t n_seqs) {
    llmrt_prompt          p  = {.struct_size = sizeof p, .tokens = toks, .n_tokens = n};
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.n                     = n_seqs;
    sp.temperature           = 0.0f;
    sp.max_tokens            = GEN;
    sp.ignore_eos            = true;
    uint64_t id              = 0;
    CHECK_STATUS(llmrt_engine_submit(e, &p, &sp, &id), LLMRT_OK, NULL);
    return id;
}

static uint64_t submit(llmrt_engine *e, const int32_t *toks, int32_t n) {
    return submit_n(e, toks, n, 1);
}

typedef struct run {
    uint64_t id;
    int32_t  index; /* which of the request's n sequences */
    int32_t  tokens[GEN + 8], n;
    int      finished;
} run;

/* Steps until idle; returns the largest number of KV blocks in use after any step. */
static int32_t run_all(llmrt_engine *e, run *runs, int32_t n_runs, int64_t *preemptions) {
    int32_t peak = 0, steps = 0;
    while (llmrt_engine_pending(e) > 0 && steps++ < 10000) {
        const llmrt_output *outs = NULL;
        int32_t             n    = 0;
        llmrt_status        s    = llmrt_engine_step(e, &outs, &n);
        CHECK_STATUS(s, LLMRT_OK, NULL);
        if (s != LLMRT_OK) break;
        for (int32_t i = 0; i < n; i++)
            for (int32_t r = 0; r < n_runs; r++) {
                if (runs[r].id != outs[i].request_id || runs[r].index != outs[i].index) continue;
                for (int32_t k = 0; k < outs[i].n_tokens && runs[r].n < GEN + 8; k++)
                    runs[r].tokens[runs[r].n++] = outs[i].tokens[k];
                if (outs[i].finish != LLMRT_FINISH_NONE) runs[r].finished++;
            }
        llmrt_engine_metrics m = {.struct_size = sizeof m};
        CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_OK, NULL);
        if (m.kv_blocks_used > peak) peak = m.kv_blocks_used;
        if (preemptions) *preemptions = m.preemptions;
    }
    llmrt_engine_metrics m = {.struct_size = sizeof m};
    CHECK_STATUS(llmrt_engine_get_metrics(e, &m), LLMRT_OK, NULL);
    CHECK_MSG(m.kv_blocks_used == 0 && m.kv_blocks_free + m.kv_blocks_cached == m.kv_blocks_total,
              "idle engine: %d blocks still used (cached %d free %d of %d)", m.kv_blocks_used,
              m.kv_blocks_cached, m.kv_blocks_free, m.kv_blocks_total);
    return peak;
}

static void check_golden(const run *r, const char *what) {
    CHECK_MSG(r->finished == 1 && r->n == GEN, "%s: %d tokens, finished %d", what, r->n,
              r->finished);
    int32_t first_diff = -1;
    for (int32_t i = 0; i < GEN && first_diff < 0; i++)
        if (r->tokens[i] != want[i]) first_diff = i;
    CHECK_MSG(first_diff < 0, "%s: token %d is %d, HF gives %d", what, first_diff,
              first_diff >= 0 ? r->tokens[first_diff] : 0, first_diff >= 0 ? want[first_diff] : 0);
}

int main(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/golden/mistral_window_f32_greedy.json", LLMRT_TEST_DATA_DIR);
    cJSON      *root = NULL;
    llmrt_error err  = {0};
    if (llmrt_json_parse_file(path, 1 << 20, &root, &err) != LLMRT_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return test_summary("test_sliding_window");
    }
    int32_t  n_want = 0;
    int32_t *p      = golden_int_array(cJSON_GetObjectItem(root, "prompt"), &n_prompt);
    int32_t *w      = golden_int_array(cJSON_GetObjectItem(root, "tokens"), &n_want);
    CHECK(n_prompt <= 16 && n_want == GEN);
    memcpy(prompt, p, (size_t)n_prompt * sizeof *p);
    memcpy(want, w, sizeof want);
    free(p);
    free(w);
    cJSON_Delete(root);

    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 2;
    llmrt_model *m        = NULL;
    CHECK_STATUS(llmrt_model_load(LLMRT_TEST_DATA_DIR "/tiny/mistral_window_f32", &mp, &m),
                 LLMRT_OK, NULL);
    if (!m) return test_summary("test_sliding_window");

    /* 1. a big pool */
    llmrt_engine *e   = make_engine(m, 256);
    run           big = {0};
    big.id            = submit(e, prompt, n_prompt);
    int32_t peak      = run_all(e, &big, 1, NULL);
    check_golden(&big, "pool of 64 blocks");
    CHECK_MSG(peak <= 4, "pool of 64 blocks: %d blocks in use at once (the window needs <= 4)",
              peak);
    llmrt_engine_destroy(e);

    /* 2. a pool that cannot hold the sequence */
    int64_t small_tokens = 24;
    CHECK(small_tokens < n_prompt + GEN);
    e                 = make_engine(m, small_tokens);
    run     small     = {0};
    int64_t preempted = -1;
    small.id          = submit(e, prompt, n_prompt);
    peak              = run_all(e, &small, 1, &preempted);
    check_golden(&small, "pool of 6 blocks");
    CHECK_MSG(preempted == 0 && peak <= 4, "pool of 6 blocks: %lld preemptions, peak %d blocks",
              (long long)preempted, peak);
    printf("sliding window 8: %d-token sequence in a %lld-slot pool, peak %d blocks of 4, "
           "tokens equal HF's\n", n_prompt + GEN, (long long)small_tokens, peak);

    /* 4 (on the same engine): the prompt again, its first block cached from run 2 */
    run again = {0};
    again.id  = submit(e, prompt, n_prompt);
    run_all(e, &again, 1, NULL);
    check_golden(&again, "resubmitted after a run that dropped its blocks");
    llmrt_engine_destroy(e);

    /* 3. four at once in 12 blocks: three share the prompt (prefix hits), one differs */
    e = make_engine(m, 48);
    run     many[4];
    int32_t other[8] = {1, 5, 9, 200, 31, 7, 7, 300};
    memset(many, 0, sizeof many);
    for (int i = 0; i < 3; i++) many[i].id = submit(e, prompt, n_prompt);
    many[3].id = submit(e, other, 8);
    int64_t pre = 0;
    run_all(e, many, 4, &pre);
    for (int i = 0; i < 3; i++) check_golden(&many[i], "one of three equal prompts in 12 blocks");
    CHECK(many[3].finished == 1 && many[3].n == GEN);
    printf("four requests in 12 blocks of 4: golden tokens, %lld preemptions\n", (long long)pre);
    llmrt_engine_destroy(e);

    /* 5. n = 2 from a 22-token prompt prefilled in chunks of 4 (blocks below the window are
     * dropped before the fork: the forked sequence inherits the dropped entries), in 10 blocks:
     * both sequences give the tokens of the same prompt run alone in a big pool */
    int32_t long_prompt[22];
    for (int i = 0; i < 22; i++) long_prompt[i] = (i * 37 + 11) % 320;
    e          = make_engine(m, 512);
    run ref    = {0};
    ref.id     = submit(e, long_prompt, 22);
    run_all(e, &ref, 1, NULL);
    llmrt_engine_destroy(e);
    CHECK(ref.finished == 1 && ref.n == GEN);
    e         = make_engine_chunked(m, 40, 4);
    run two[2] = {{0}};
    two[0].id = two[1].id = submit_n(e, long_prompt, 22, 2);
    two[1].index          = 1;
    run_all(e, two, 2, NULL);
    for (int i = 0; i < 2; i++)
        CHECK_MSG(two[i].finished == 1 && two[i].n == GEN &&
                      memcmp(two[i].tokens, ref.tokens, sizeof(int32_t) * GEN) == 0,
                  "n = 2, sequence %d: %d tokens, differ from the single run", i, two[i].n);
    llmrt_engine_destroy(e);
    llmrt_model_destroy(m);
    return test_summary("test_sliding_window");
}
