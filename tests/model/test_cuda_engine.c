/* The engine's key properties on the CUDA backend (tiny model tests/data/tiny/llama_f32, fp16
 * activations; under cusim in CI, on a GPU with `ctest -L gpu`):
 *
 *   - batch invariance: 8 concurrent greedy requests, prompts chunked and mixed with decodes,
 *     give each request the tokens it gets alone;
 *   - preemption with a pool of 8 blocks: outputs equal, the pool whole afterwards;
 *   - prefix caching: hits on a shared 64-token prefix, outputs identical to caching off;
 *   - nothing allocated on the device once the engine runs (every step, prefill or decode,
 *     stays within what the KV cache reserved at creation).
 *
 * Batch invariance on the GPU path: every kernel of the backend computes a row (a token, or a
 * token and head) with a fixed reduction order that does not depend on the batch, but cuBLAS may
 * choose another GEMM algorithm (another summation order) for another number of rows, so logits
 * can differ in the last bits between batch compositions; only a near tie can turn that into
 * another token. The tests therefore compare tokens (under cusim, whose GEMM rounds once from
 * fp64, the logits of prompt rows are also bitwise batch-invariant; decode-only steps of up to 8
 * rows run the fused decode matmul, cuda/fused_gemv.cu, whose rows do not depend on the batch
 * either, but whose summation order differs from the GEMM's, so a decode row in a mixed step may
 * differ from the same row in a decode-only step in the last bits). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/cuda_backend.h"
#include "api/api_model.h" /* the public model: its rank's backend */
#include "model/model.h"
#include "test_util.h"

#define VOCAB   320
#define MAX_GEN 64

static llmrt_model *tiny;

typedef struct spec {
    int32_t prompt[256];
    int32_t n_prompt, max_tokens;
} spec;

typedef struct result {
    uint64_t            id;
    int32_t             tokens[MAX_GEN];
    int32_t             n_tokens, n_final, n_cached, n_preemptions;
    llmrt_finish_reason finish;
} result;

static uint64_t lcg = 0x9e3779b97f4a7c15ull;
static int32_t  rand_below(int32_t n) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)((lcg >> 33) % (uint64_t)n);
}

static void make_spec(spec *s, int32_t n_prompt, int32_t max_tokens) {
    s->n_prompt   = n_prompt;
    s->max_tokens = max_tokens;
    for (int32_t i = 0; i < n_prompt; i++) s->prompt[i] = rand_below(VOCAB);
}

static llmrt_engine *make_engine(const llmrt_engine_params *p) {
    llmrt_engine *e = NULL;
    llmrt_status  s = llmrt_engine_create(tiny, p, &e);
    CHECK_MSG(s == LLMRT_OK, "engine_create: %s %s", llmrt_status_str(s), llmrt_last_error());
    return e;
}

static uint64_t submit(llmrt_engine *e, const spec *s) {
    llmrt_prompt          p  = {.struct_size = sizeof p, .tokens = s->prompt, .n_tokens = s->n_prompt};
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature           = 0.0f;
    sp.max_tokens            = s->max_tokens;
    sp.ignore_eos            = true;
    uint64_t     id          = 0;
    llmrt_status st          = llmrt_engine_submit(e, &p, &sp, &id);
    CHECK_MSG(st == LLMRT_OK, "submit: %s %s", llmrt_status_str(st), llmrt_last_error());
    return id;
}

static int64_t device_allocs(void) {
    llmrt_cuda_backend_stats st;
    return llmrt_backend_cuda_stats(tiny->rank->be, &st) ? st.device_allocs : -1;
}

/* Steps until idle, filing outputs under their requests; counts device allocations made by
 * the steps (none expected) and steps that mixed a first token with decodes. */
static void run_to_idle(llmrt_engine *e, result *res, int32_t n, int32_t *mixed) {
    int64_t allocs0 = device_allocs();
    int32_t steps   = 0;
    if (mixed) *mixed = 0;
    while (llmrt_engine_pending(e) > 0 && steps++ < 100000) {
        const llmrt_output *outs;
        int32_t             k;
        llmrt_status        s = llmrt_engine_step(e, &outs, &k);
        CHECK_MSG(s == LLMRT_OK, "step: %s %s", llmrt_status_str(s), llmrt_last_error());
        if (s != LLMRT_OK) break;
        bool first = false, decode = false;
        for (int32_t i = 0; i < k; i++) {
            const llmrt_output *o = &outs[i];
            if (o->n_tokens == 1 && o->n_generated == 1) first = true;
            if (o->n_generated > 1 && o->n_tokens > 0) decode = true;
            for (int32_t r = 0; r < n; r++) {
                if (res[r].id != o->request_id) continue;
                for (int32_t t = 0; t < o->n_tokens; t++)
                    if (res[r].n_tokens < MAX_GEN) res[r].tokens[res[r].n_tokens++] = o->tokens[t];
                if (o->n_cached_tokens > res[r].n_cached) res[r].n_cached = o->n_cached_tokens;
                res[r].n_preemptions = o->n_preemptions;
                if (o->finish != LLMRT_FINISH_NONE) res[r].n_final++, res[r].finish = o->finish;
            }
        }
        if (mixed) *mixed += first && decode;
    }
    CHECK_MSG(device_allocs() == allocs0, "%lld device allocations while the engine ran",
              (long long)(device_allocs() - allocs0));
}

static llmrt_engine_metrics metrics(llmrt_engine *e) {
    llmrt_engine_metrics m = {.struct_size = sizeof m};
    CHECK(llmrt_engine_get_metrics(e, &m) == LLMRT_OK);
    return m;
}

static void check_pool_whole(llmrt_engine *e, const char *what) {
    llmrt_engine_metrics m = metrics(e);
    CHECK_MSG(m.kv_blocks_used == 0 && m.kv_blocks_free + m.kv_blocks_cached == m.kv_blocks_total &&
                  m.n_running == 0 && m.n_waiting == 0,
              "%s: pool used %d cached %d free %d of %d", what, m.kv_blocks_used, m.kv_blocks_cached,
              m.kv_blocks_free, m.kv_blocks_total);
}

static void check_equal(const result *got, const result *ref, const char *what, int32_t i) {
    int32_t diff = -1;
    for (int32_t k = 0; k < got->n_tokens && k < ref->n_tokens && diff < 0; k++)
        if (got->tokens[k] != ref->tokens[k]) diff = k;
    CHECK_MSG(got->n_final == 1 && got->finish == ref->finish && got->n_tokens == ref->n_tokens &&
                  diff < 0,
              "%s #%d: %d tokens (finals %d) vs %d alone, first difference at %d", what, i,
              got->n_tokens, got->n_final, ref->n_tokens, diff);
}

static void run_alone(const spec *s, result *r) {
    memset(r, 0, sizeof *r);
    llmrt_engine *e = make_engine(NULL);
    if (!e) return;
    r->id = submit(e, s);
    run_to_idle(e, r, 1, NULL);
    llmrt_engine_destroy(e);
}

static llmrt_engine_metrics run_together(const spec *specs, int32_t n, result *res,
                                         const llmrt_engine_params *p, int32_t *mixed) {
    llmrt_engine_metrics m = {0};
    memset(res, 0, (size_t)n * sizeof *res);
    llmrt_engine *e = make_engine(p);
    if (!e) return m;
    for (int32_t i = 0; i < n; i++) res[i].id = submit(e, &specs[i]);
    run_to_idle(e, res, n, mixed);
    m = metrics(e);
    check_pool_whole(e, "run_together");
    llmrt_engine_destroy(e);
    return m;
}

/* --------------------------------------------------------------------------------------------- */

static void test_batch_invariance(void) {
    static const int32_t lens[8] = {1, 60, 7, 33, 16, 17, 48, 3};
    spec                 specs[8];
    result               alone[8], res[8];
    for (int32_t i = 0; i < 8; i++) make_spec(&specs[i], lens[i], 8 + (i * 13) % 25);
    for (int32_t i = 0; i < 8; i++) run_alone(&specs[i], &alone[i]);
    llmrt_engine_params p = llmrt_engine_default_params();
    p.max_batched_tokens  = 24; /* prompts chunked, mixed with decodes */
    int32_t mixed         = 0;
    llmrt_engine_metrics m = run_together(specs, 8, res, &p, &mixed);
    CHECK_MSG(mixed > 0, "no step mixed a prefill with decodes");
    CHECK(m.preemptions == 0 && m.requests_finished == 8);
    for (int32_t i = 0; i < 8; i++) check_equal(&res[i], &alone[i], "8 concurrent", i);
    printf("batch invariance: 8 concurrent requests equal each alone (%d mixed steps, %lld steps)\n",
           mixed, (long long)m.steps);
}

static void test_preemption(void) {
    spec   specs[8];
    result alone[8], res[8];
    for (int32_t i = 0; i < 8; i++) make_spec(&specs[i], 36 + i % 9, 30);
    for (int32_t i = 0; i < 8; i++) run_alone(&specs[i], &alone[i]);
    llmrt_engine_params p  = llmrt_engine_default_params();
    p.kv_tokens            = 128; /* 8 blocks; each request needs 5 */
    llmrt_engine_metrics m = run_together(specs, 8, res, &p, NULL);
    CHECK_MSG(m.preemptions > 0, "no preemption with a pool of 8 blocks");
    CHECK(m.kv_blocks_total == 8 && m.kv_blocks_used == 0);
    for (int32_t i = 0; i < 8; i++) check_equal(&res[i], &alone[i], "preemption", i);
    printf("preemption: %lld preemptions in %lld steps, outputs equal, pool whole\n",
           (long long)m.preemptions, (long long)m.steps);
}

static void test_prefix_caching(void) {
    spec   system, specs[4];
    result on[4], off[4];
    make_spec(&system, 64, 1);
    for (int32_t i = 0; i < 4; i++) {
        make_spec(&specs[i], 69, 10);
        memcpy(specs[i].prompt, system.prompt, 64 * sizeof(int32_t));
    }
    for (int32_t pass = 0; pass < 2; pass++) {
        result             *res = pass ? off : on;
        llmrt_engine_params p   = llmrt_engine_default_params();
        p.prefix_caching        = pass == 0;
        llmrt_engine *e         = make_engine(&p);
        if (!e) return;
        memset(res, 0, 4 * sizeof *res);
        for (int32_t i = 0; i < 4; i++) { /* one after the other */
            res[i].id = submit(e, &specs[i]);
            run_to_idle(e, &res[i], 1, NULL);
        }
        llmrt_engine_metrics m = metrics(e);
        if (pass == 0)
            CHECK_MSG(m.prefix_cache_hits == 64 * 3, "prefix cache hits %lld",
                      (long long)m.prefix_cache_hits);
        check_pool_whole(e, "prefix caching");
        llmrt_engine_destroy(e);
    }
    CHECK(on[0].n_cached == 0);
    for (int32_t i = 1; i < 4; i++) CHECK_MSG(on[i].n_cached == 64, "request %d: %d cached", i, on[i].n_cached);
    for (int32_t i = 0; i < 4; i++) check_equal(&on[i], &off[i], "prefix cache on vs off", i);
    printf("prefix caching: 3 hits of 64 tokens, outputs identical to caching off\n");
}

int main(void) {
    char path[2048];
    snprintf(path, sizeof path, "%s/tiny/llama_f32", LLMRT_TEST_DATA_DIR);
    if (llmrt_backend_cuda_device_count() == 0) {
        printf("SKIP: no CUDA device\n");
        return 77;
    }
    llmrt_model_params mp = llmrt_model_default_params();
    mp.device             = LLMRT_DEVICE_CUDA;
    CHECK_STATUS(llmrt_model_load(path, &mp, &tiny), LLMRT_OK, NULL);
    if (!tiny) return test_summary("test_cuda_engine");
    test_batch_invariance();
    test_preemption();
    test_prefix_caching();
    llmrt_cuda_backend_stats st;
    CHECK(llmrt_backend_cuda_stats(tiny->rank->be, &st) && !st.dead);
    printf("%s: %lld forwards, %lld device allocations in all (engines included)\n", st.device_name,
           (long long)st.forwards, (long long)st.device_allocs);
    llmrt_model_destroy(tiny);
    return test_summary("test_cuda_engine");
}
