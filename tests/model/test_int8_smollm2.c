/* The int8 CPU matmul mode on SmolLM2-135M (the default model: Q4_1 matrices, a Q8_0 embedding
 * table tied to the lm_head), alone and with tensor parallelism: at tp 2 every rank runs int8
 * panels of its slices, and the vocab-parallel lm_head is a row view of the replicated table
 * (its panels at a row offset).
 *
 * Reference: the exact mode at tp 1. Int8 is not continuous in its input (a 1-ulp change of a
 * block's max moves the scale of all 32 activations and flips roundings), so tp 2, whose
 * all-reduce sums in another order, does not track tp 1 to fp32 rounding as the exact mode does
 * (2.7e-5 here): both int8 runs are held to the int8 bound against the exact logits instead:
 * max |diff| <= 10% of the largest |logit| and the argmax equal at >= 75% of the positions
 * (observed: 3-4%, 18-20 of 21). Skipped (77) without the model. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llmrt.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define T 21

static llmrt_model *load(int tp, llmrt_cpu_matmul mode) {
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = 1;
    p.tensor_parallel    = tp;
    p.cpu_matmul         = mode;
    llmrt_model *m       = NULL;
    llmrt_status s       = llmrt_model_load(LLMRT_DEFAULT_MODEL, &p, &m);
    CHECK_MSG(s == LLMRT_OK, "tp %d: %s %s", tp, llmrt_status_str(s), llmrt_last_error());
    return m;
}

static int forward(llmrt_model *m, const int32_t *ids, float *logits, int64_t V) {
    llmrt_kv_cache       *kv = NULL;
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.max_tokens            = 64;
    if (llmrt_kv_cache_create(m, &kp, &kv) != LLMRT_OK) return -1;
    int32_t pos[T], seq[T] = {0}, outs[T], table[4] = {0, 1, 2, 3};
    for (int32_t i = 0; i < T; i++) pos[i] = i, outs[i] = i;
    llmrt_batch  b = {.n_tokens = T, .tokens = ids, .positions = pos, .seq_ids = seq, .n_seqs = 1,
                      .max_blocks_per_seq = 4, .block_tables = table, .n_outputs = T,
                      .output_tokens = outs};
    llmrt_status s = llmrt_forward(kv, &b, logits, (int64_t)T * V);
    CHECK_MSG(s == LLMRT_OK, "forward: %s", llmrt_last_error());
    llmrt_kv_cache_destroy(kv);
    return s == LLMRT_OK ? 0 : -1;
}

static int32_t argmax(const float *v, int64_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

static void compare(const char *what, const float *ref, const float *l, int64_t V) {
    double max_diff = 0, max_logit = 0;
    int    agree = 0;
    for (int64_t i = 0; i < T * V; i++) {
        double d = fabs((double)ref[i] - l[i]);
        if (d > max_diff) max_diff = d;
        if (fabs(ref[i]) > max_logit) max_logit = fabs(ref[i]);
    }
    for (int32_t t = 0; t < T; t++) agree += argmax(ref + t * V, V) == argmax(l + t * V, V);
    printf("%s vs exact tp 1: max |diff| %.4g (max |logit| %.3g), argmax equal at %d/%d\n", what,
           max_diff, max_logit, agree, T);
    CHECK_MSG(agree * 4 >= T * 3, "%s: argmax differs at %d positions", what, T - agree);
    CHECK_MSG(max_diff <= 0.1 * max_logit, "%s: logits differ by %g", what, max_diff);
}

int main(void) {
    if (!LLMRT_DEFAULT_MODEL[0] || access(LLMRT_DEFAULT_MODEL, R_OK) != 0) {
        printf("default model not found: skipped\n");
        return 77;
    }
    llmrt_model *ex = load(1, LLMRT_CPU_MATMUL_EXACT), *m1 = load(1, LLMRT_CPU_MATMUL_INT8);
    llmrt_model *m2 = load(2, LLMRT_CPU_MATMUL_INT8);
    if (ex && m1 && m2) {
        llmrt_model_info info = {.struct_size = sizeof info};
        llmrt_model_get_info(ex, &info);
        int64_t V = info.vocab_size;
        int32_t ids[T];
        for (int32_t i = 0; i < T; i++) ids[i] = (int32_t)((i * 7919 + 101) % V);
        float *le = malloc((size_t)(T * V) * 4), *l1 = malloc((size_t)(T * V) * 4);
        float *l2 = malloc((size_t)(T * V) * 4);
        if (forward(ex, ids, le, V) == 0 && forward(m1, ids, l1, V) == 0 &&
            forward(m2, ids, l2, V) == 0) {
            compare("int8 tp 1", le, l1, V);
            compare("int8 tp 2", le, l2, V);
        }
        free(le), free(l1), free(l2);
    }
    llmrt_model_destroy(ex);
    llmrt_model_destroy(m1);
    llmrt_model_destroy(m2);
    return test_summary("test_int8_smollm2");
}
