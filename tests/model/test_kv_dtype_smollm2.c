/* The 8-bit and bf16 KV caches (llmrt_model_params.kv_cache_dtype = INT8 / FP8_E4M3 / BF16) against
 * the default (fp32 on the CPU) on SmolLM2-135M (the default model) and the tiny test models
 * (llama, mistral with a sliding window of 8, qwen2 with biases, llama 3.2 with tied embeddings).
 *
 * Accuracy, per model and dtype, over several prompts of 64 greedy tokens: the reference run
 * (default KV) decodes greedily; the 8-bit run is teacher-forced along the reference tokens and
 * its logits are compared at every step (max |logit error|, and the argmax equal = greedy
 * agreement); a free-running 8-bit greedy run reports how many tokens match before the first
 * divergence. The figures are printed (README "KV cache dtypes" quotes them) and held to bounds
 * with a margin over what was observed; the error must also be non-zero, or the 8-bit path did
 * not run. Tensor parallel 2 with an int8 and a bf16 cache on SmolLM2 is held to the same bounds.
 *
 * Engine: SmolLM2 with an int8 and with a bf16 cache, requests sharing a prefix in a pool small
 * enough to preempt and with prefix caching on, give token for token what each request gives
 * alone: a token's codes (and scales) depend on nothing but its own K/V, so cached and recomputed
 * blocks hold the same bytes and the CPU's batch invariance holds for these caches too. Skipped
 * (77) without the default model. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmrt.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define GEN        64 /* greedy tokens per prompt */
#define MAX_PROMPT 64

static llmrt_model *load(const char *path, llmrt_kv_cache_dtype kv, int tp) {
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads = 2;
    p.kv_cache_dtype = kv;
    p.tensor_parallel = tp;
    llmrt_model *m = NULL;
    llmrt_status s = llmrt_model_load(path, &p, &m);
    CHECK_MSG(s == LLMRT_OK, "%s kv %d tp %d: %s %s", path, (int)kv, tp, llmrt_status_str(s),
              llmrt_last_error());
    return m;
}

static int32_t argmax(const float *v, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* One sequence in its own cache: prefill prompt[n_prompt], then GEN steps. Step i feeds
 * forced[i] when forced is non-NULL (teacher forcing), else its own argmax. logits[GEN, V]:
 * after the prompt, then after each fed token but the last; tokens[GEN] = what was fed. */
static int run_seq(llmrt_model *m, int32_t V, const int32_t *prompt, int32_t n_prompt,
                   const int32_t *forced, int32_t *tokens, float *logits) {
    llmrt_kv_cache *kv = NULL;
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.max_tokens = MAX_PROMPT + GEN + 16;
    if (llmrt_kv_cache_create(m, &kp, &kv) != LLMRT_OK) {
        CHECK_MSG(0, "kv cache: %s", llmrt_last_error());
        return -1;
    }
    int32_t n_blocks = llmrt_kv_cache_n_blocks(kv), table[64], pos[MAX_PROMPT],
            seq[MAX_PROMPT] = {0};
    for (int32_t b = 0; b < n_blocks && b < 64; b++)
        table[b] = b;
    for (int32_t i = 0; i < n_prompt; i++)
        pos[i] = i;
    llmrt_batch b = {.n_tokens = n_prompt,
                     .tokens = prompt,
                     .positions = pos,
                     .seq_ids = seq,
                     .n_seqs = 1,
                     .max_blocks_per_seq = n_blocks,
                     .block_tables = table};
    llmrt_status s = llmrt_forward(kv, &b, logits, V);
    for (int32_t i = 0; i < GEN && s == LLMRT_OK; i++) {
        int32_t t = forced ? forced[i] : argmax(logits + (int64_t)i * V, V), p = n_prompt + i;
        tokens[i] = t;
        if (i == GEN - 1) break;
        b.n_tokens = 1;
        b.tokens = &tokens[i];
        b.positions = &p;
        s = llmrt_forward(kv, &b, logits + (int64_t)(i + 1) * V, V);
    }
    CHECK_MSG(s == LLMRT_OK, "forward: %s", llmrt_last_error());
    llmrt_kv_cache_destroy(kv);
    return s == LLMRT_OK ? 0 : -1;
}

typedef struct bounds {
    double max_rel_err; /* max |logit error| / max |reference logit| */
    double min_agree;   /* teacher-forced argmax equal, fraction of the steps */
} bounds;

/* Compares `q` (8-bit or bf16 cache) with `ref` over the prompts; prints one line. */
static void compare(const char *model_name, const char *what, llmrt_model *ref, llmrt_model *q,
                    int32_t V, int32_t prompts[][MAX_PROMPT], const int32_t *lens, int n_prompts,
                    bounds bd) {
    float *lr = malloc((size_t)GEN * V * sizeof *lr), *lq = malloc((size_t)GEN * V * sizeof *lq);
    int32_t tr[GEN], tq[GEN];
    double max_err = 0, max_logit = 0, sum_prefix = 0;
    int agree = 0, steps = 0, min_prefix = GEN;
    for (int p = 0; p < n_prompts; p++) {
        if (run_seq(ref, V, prompts[p], lens[p], NULL, tr, lr) != 0 ||
            run_seq(q, V, prompts[p], lens[p], tr, tq, lq) != 0)
            break;
        for (int32_t i = 0; i < GEN; i++) {
            const float *a = lr + (int64_t)i * V, *b = lq + (int64_t)i * V;
            for (int32_t v = 0; v < V; v++) {
                double e = fabs((double)a[v] - b[v]);
                if (!(e <= max_err)) max_err = e; /* NaN sticks */
                if (fabs(a[v]) > max_logit) max_logit = fabs(a[v]);
            }
            agree += argmax(a, V) == argmax(b, V);
            steps++;
        }
        if (run_seq(q, V, prompts[p], lens[p], NULL, tq, lq) != 0) break; /* free-running */
        int same = 0;
        while (same < GEN && tq[same] == tr[same])
            same++;
        sum_prefix += same;
        if (same < min_prefix) min_prefix = same;
    }
    double rel = max_logit > 0 ? max_err / max_logit : INFINITY;
    printf("%-22s %-10s prompts %d x %d tokens: max |logit err| %.4f (%.2f%% of max |logit| "
           "%.2f), greedy agreement %d/%d (%.1f%%), free-running identical prefix mean %.1f min "
           "%d\n",
           model_name, what, n_prompts, GEN, max_err, 100 * rel, max_logit, agree, steps,
           steps ? 100.0 * agree / steps : 0.0, sum_prefix / n_prompts, min_prefix);
    CHECK_MSG(steps == n_prompts * GEN, "%s %s: runs failed", model_name, what);
    CHECK_MSG(max_err > 0,
              "%s %s: logits identical to the default cache: the 8-bit/bf16 path did not run",
              model_name, what);
    CHECK_MSG(rel <= bd.max_rel_err, "%s %s: logit error %.4g of max |logit| > %.4g", model_name,
              what, rel, bd.max_rel_err);
    CHECK_MSG(agree >= bd.min_agree * steps, "%s %s: greedy agreement %d/%d < %.2f", model_name,
              what, agree, steps, bd.min_agree);
    free(lr);
    free(lq);
}

/* Random prompts for the tiny models (no tokenizer): lengths 7, 23, 40 (over the sliding window
 * of 8 and several 16-token blocks). */
static int random_prompts(int32_t out[][MAX_PROMPT], int32_t *lens, int32_t V) {
    static const int32_t L[] = {7, 23, 40};
    uint64_t r = 0x243f6a8885a308d3ull;
    for (int p = 0; p < 3; p++) {
        lens[p] = L[p];
        for (int32_t i = 0; i < L[p]; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            out[p][i] = (int32_t)((r >> 33) % (uint64_t)V);
        }
    }
    return 3;
}

static int text_prompts(llmrt_model *m, int32_t out[][MAX_PROMPT], int32_t *lens) {
    static const char *const texts[] = {
        "The capital of France is",
        "Write a short poem about the sea, the wind and the old lighthouse keeper who",
        "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
        "Photosynthesis is the process by which green plants use sunlight to",
    };
    int n = (int)(sizeof texts / sizeof texts[0]);
    for (int p = 0; p < n; p++) {
        llmrt_status s = llmrt_tokenize(m, texts[p], strlen(texts[p]), true, false, out[p],
                                        MAX_PROMPT, &lens[p]);
        CHECK_MSG(s == LLMRT_OK && lens[p] > 0, "tokenize: %s", llmrt_last_error());
        if (s != LLMRT_OK) return 0;
    }
    return n;
}

static int32_t vocab_of(llmrt_model *m) {
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(m, &info);
    return info.vocab_size;
}

static void test_model(const char *name, const char *path, bool text, bounds b_int8, bounds b_fp8,
                       bounds b_bf16) {
    llmrt_model *ref = load(path, LLMRT_KV_CACHE_AUTO, 0);
    llmrt_model *q8 = load(path, LLMRT_KV_CACHE_INT8, 0);
    llmrt_model *f8 = load(path, LLMRT_KV_CACHE_FP8_E4M3, 0);
    llmrt_model *b16 = load(path, LLMRT_KV_CACHE_BF16, 0);
    if (ref && q8 && f8 && b16) {
        int32_t V = vocab_of(ref), prompts[4][MAX_PROMPT], lens[4];
        int n = text ? text_prompts(ref, prompts, lens) : random_prompts(prompts, lens, V);
        compare(name, "int8", ref, q8, V, prompts, lens, n, b_int8);
        compare(name, "fp8_e4m3", ref, f8, V, prompts, lens, n, b_fp8);
        compare(name, "bf16", ref, b16, V, prompts, lens, n, b_bf16);
        if (text) { /* SmolLM2: its 3 KV heads split 2 + 1 over two ranks */
            llmrt_model *tp = load(path, LLMRT_KV_CACHE_INT8, 2);
            if (tp) compare(name, "int8 tp 2", ref, tp, V, prompts, lens, n, b_int8);
            llmrt_model_destroy(tp);
            tp = load(path, LLMRT_KV_CACHE_BF16, 2);
            if (tp) compare(name, "bf16 tp 2", ref, tp, V, prompts, lens, n, b_bf16);
            llmrt_model_destroy(tp);
        }
    }
    llmrt_model_destroy(ref);
    llmrt_model_destroy(q8);
    llmrt_model_destroy(f8);
    llmrt_model_destroy(b16);
}

/* -- engine: prefix caching and preemption over an int8 / bf16 cache ------------------------- */

#define N_REQ   6
#define ENG_GEN 24

static int run_engine(llmrt_model *m, int64_t kv_tokens, int32_t prompts[][MAX_PROMPT],
                      const int32_t *lens, int first, int n, int32_t out[][ENG_GEN], int *preempted,
                      int *cached) {
    llmrt_engine_params ep = llmrt_engine_default_params();
    ep.kv_tokens = kv_tokens;
    llmrt_engine *e = NULL;
    if (llmrt_engine_create(m, &ep, &e) != LLMRT_OK) {
        CHECK_MSG(0, "engine: %s", llmrt_last_error());
        return -1;
    }
    llmrt_sampling_params sp = llmrt_sampling_default_params();
    sp.temperature = 0;
    sp.max_tokens = ENG_GEN;
    sp.ignore_eos = true;
    int got[N_REQ] = {0};
    for (int r = first; r < first + n; r++) {
        llmrt_prompt pr = {.struct_size = sizeof pr,
                           .tokens = prompts[r],
                           .n_tokens = lens[r],
                           .user_data = (void *)(intptr_t)r};
        uint64_t id;
        CHECK_MSG(llmrt_engine_submit(e, &pr, &sp, &id) == LLMRT_OK, "submit: %s",
                  llmrt_last_error());
    }
    int guard = 0;
    while (llmrt_engine_pending(e) > 0 && guard++ < 10000) {
        const llmrt_output *o;
        int32_t n_out;
        if (llmrt_engine_step(e, &o, &n_out) != LLMRT_OK) break;
        for (int32_t i = 0; i < n_out; i++) {
            const llmrt_output *x = (const llmrt_output *)((const char *)o + i * o->struct_size);
            int r = (int)(intptr_t)x->user_data;
            for (int32_t t = 0; t < x->n_tokens && got[r] < ENG_GEN; t++)
                out[r][got[r]++] = x->tokens[t];
            if (x->n_preemptions > 0) *preempted = 1;
            if (x->n_cached_tokens > 0) *cached = 1;
        }
    }
    llmrt_engine_destroy(e);
    for (int r = first; r < first + n; r++)
        CHECK_MSG(got[r] == ENG_GEN, "request %d: %d tokens", r, got[r]);
    return 0;
}

static void test_engine(llmrt_kv_cache_dtype kv, const char *what) {
    llmrt_model *m = load(LLMRT_DEFAULT_MODEL, kv, 0);
    if (!m) return;
    int32_t V = vocab_of(m), prompts[N_REQ][MAX_PROMPT], lens[N_REQ];
    uint64_t r = 0x9e3779b97f4a7c15ull;
    for (int q = 0; q < N_REQ; q++) { /* a shared 40-token prefix (2 full blocks + 8), own tails */
        lens[q] = 44 + 3 * q;
        for (int32_t i = 0; i < lens[q]; i++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            prompts[q][i] = q > 0 && i < 40 ? prompts[0][i] : (int32_t)((r >> 33) % (uint64_t)V);
        }
    }
    int32_t alone[N_REQ][ENG_GEN], together[N_REQ][ENG_GEN];
    int pre = 0, cached = 0, dummy = 0;
    for (int q = 0; q < N_REQ; q++)
        run_engine(m, 4096, prompts, lens, q, 1, alone, &dummy, &dummy);
    /* 12 blocks of 16: not enough for 6 x (~50 + 24) tokens at once */
    run_engine(m, 192, prompts, lens, 0, N_REQ, together, &pre, &cached);
    int same = 1;
    for (int q = 0; q < N_REQ; q++)
        same &= memcmp(alone[q], together[q], sizeof alone[q]) == 0;
    printf("engine, %s KV: %d requests sharing a 40-token prefix in 192 KV tokens: preempted %s, "
           "prefix cache hit %s, tokens %s to each request alone\n",
           what, N_REQ, pre ? "yes" : "no", cached ? "yes" : "no",
           same ? "identical" : "NOT identical");
    CHECK_MSG(pre && cached, "the test did not exercise preemption (%d) and prefix caching (%d)",
              pre, cached);
    CHECK_MSG(same, "%s KV: batched / preempted / prefix-cached tokens differ from alone", what);
    llmrt_model_destroy(m);
}

int main(void) {
    if (!LLMRT_DEFAULT_MODEL[0] || access(LLMRT_DEFAULT_MODEL, R_OK) != 0) {
        printf("default model not found: skipped\n");
        return 77;
    }
    /* bounds: about twice the observed error, agreement a few points below the observed
     * (README "KV cache dtypes": SmolLM2 int8 3.0 % / 98.8 %, fp8 7.3 % / 98.8 %; the tiny random
     * models (hd 16, 2 layers) at worst int8 7.2 % / 92.7 %, fp8 37.8 % / 78.6 %: e4m3 keeps 3
     * mantissa bits, a 6 % step, where int8 at a per-head absmax keeps 1/254 of the largest;
     * bf16 (8 bits, a 0.4 % step, no scale): SmolLM2 0.55 % / 100 %, tiny at worst 3.1 % /
     * 98.4 %) */
    bounds smol_int8 = {.max_rel_err = 0.08, .min_agree = 0.95};
    bounds smol_fp8 = {.max_rel_err = 0.15, .min_agree = 0.93};
    bounds tiny_int8 = {.max_rel_err = 0.15, .min_agree = 0.85};
    bounds tiny_fp8 = {.max_rel_err = 0.60, .min_agree = 0.70};
    bounds smol_bf16 = {.max_rel_err = 0.012, .min_agree = 0.97};
    bounds tiny_bf16 = {.max_rel_err = 0.07, .min_agree = 0.93};
    test_model("SmolLM2-135M Q4_1", LLMRT_DEFAULT_MODEL, true, smol_int8, smol_fp8, smol_bf16);
    test_model("tiny llama f32", LLMRT_TEST_DATA_DIR "/tiny/llama_f32", false, tiny_int8, tiny_fp8,
               tiny_bf16);
    test_model("tiny mistral window 8", LLMRT_TEST_DATA_DIR "/tiny/mistral_window_f32", false,
               tiny_int8, tiny_fp8, tiny_bf16);
    test_model("tiny qwen2 f32", LLMRT_TEST_DATA_DIR "/tiny/qwen2_f32", false, tiny_int8, tiny_fp8,
               tiny_bf16);
    test_model("tiny llama3.2 tied", LLMRT_TEST_DATA_DIR "/tiny/llama32_tied_f32", false, tiny_int8,
               tiny_fp8, tiny_bf16);
    test_engine(LLMRT_KV_CACHE_INT8, "int8");
    test_engine(LLMRT_KV_CACHE_BF16, "bf16");
    return test_summary("test_kv_dtype_smollm2");
}
