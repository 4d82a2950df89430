/* How far a reduced-precision CPU matmul moves a model's logits from the exact fp32 path: int8
 * (llmrt_model_params.cpu_matmul = INT8; the default is EXACT) or bf16 (activation_dtype =
 * BF16). The same texts, teacher-forced, through both, every position's logits compared (max
 * and mean |diff|, top-1 agreement), then greedy continuations compared token by token. Public
 * API only (plus llmrt_forward, experimental).
 *
 * usage: cpu_matmul_accuracy MODEL [THREADS] [int8|bf16] */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt.h"
#include "llmrt_experimental.h"

static const char *const texts[] = {
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined a screw press with movable metal type and an oil-based ink. Within fifty years, "
    "presses were operating in more than two hundred European cities, and the price of books fell "
    "so sharply that reading spread from monasteries and universities to merchants and artisans.",
    "To make a simple tomato sauce, warm olive oil in a wide pan, add sliced garlic and cook it "
    "until it just turns golden. Pour in crushed tomatoes, season with salt, and let the sauce "
    "simmer for twenty minutes, stirring now and then, until it thickens. Finish with torn basil.",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ "
    "in range(n):\n        a, b = b, a + b\n    return a\n\nprint([fibonacci(i) for i in range(10)])\n",
    "Photosynthesis converts light energy into chemical energy. In the light-dependent reactions, "
    "water is split and oxygen is released; the energy captured is stored in ATP and NADPH, which "
    "the Calvin cycle then uses to fix carbon dioxide into sugars.",
};

typedef struct run {
    llmrt_model    *m;
    llmrt_kv_cache *kv;
    int32_t         vocab;
} run;

static int open_run(run *r, const char *path, int threads, llmrt_cpu_matmul mode, bool bf16) {
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = threads;
    p.cpu_matmul         = mode;
    if (bf16) p.activation_dtype = LLMRT_ACTIVATION_BF16;
    if (llmrt_model_load(path, &p, &r->m) != LLMRT_OK) return -1;
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(r->m, &info);
    r->vocab                 = info.vocab_size;
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.max_tokens            = 1024;
    return llmrt_kv_cache_create(r->m, &kp, &r->kv) == LLMRT_OK ? 0 : -1;
}

/* logits [n, vocab] of every position of ids[0..n) as one sequence in one forward */
static int forward_all(run *r, const int32_t *ids, int32_t n, float *logits) {
    int32_t *pos = malloc((size_t)n * 4), *seq = calloc((size_t)n, 4), *outs = malloc((size_t)n * 4);
    int32_t  bs = llmrt_kv_cache_block_size(r->kv), nbk = (n + bs - 1) / bs;
    int32_t *table = malloc((size_t)nbk * 4);
    for (int32_t i = 0; i < n; i++) pos[i] = i, outs[i] = i;
    for (int32_t i = 0; i < nbk; i++) table[i] = i;
    llmrt_batch b = {.n_tokens = n, .tokens = ids, .positions = pos, .seq_ids = seq, .n_seqs = 1,
                     .max_blocks_per_seq = nbk, .block_tables = table, .n_outputs = n,
                     .output_tokens = outs};
    llmrt_status s = llmrt_forward(r->kv, &b, logits, (int64_t)n * r->vocab);
    free(pos), free(seq), free(outs), free(table);
    return s == LLMRT_OK ? 0 : -1;
}

static int32_t argmax(const float *v, int32_t n) {
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* greedy continuation of ids[0..n) by G tokens, recomputing the whole prefix each step (the
 * simplest correct use of llmrt_forward; the texts are short) */
static int greedy(run *r, const int32_t *ids, int32_t n, int32_t G, int32_t *out) {
    int32_t *buf    = malloc((size_t)(n + G) * 4);
    float   *logits = malloc((size_t)(n + G) * r->vocab * 4);
    memcpy(buf, ids, (size_t)n * 4);
    for (int32_t g = 0; g < G; g++) {
        if (forward_all(r, buf, n + g, logits) != 0) return -1;
        buf[n + g] = out[g] = argmax(logits + (int64_t)(n + g - 1) * r->vocab, r->vocab);
    }
    free(buf), free(logits);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL [THREADS] [int8|bf16]\n", argv[0]);
        return 2;
    }
    int  threads = argc > 2 ? atoi(argv[2]) : 0;
    bool bf16    = argc > 3 && strcmp(argv[3], "bf16") == 0;
    if (argc > 3 && !bf16 && strcmp(argv[3], "int8") != 0) {
        fprintf(stderr, "%s: the mode must be int8 or bf16, got \"%s\"\n", argv[0], argv[3]);
        return 2;
    }
    printf("exact vs %s\n", bf16 ? "bf16 (activation_dtype BF16)" : "int8 (cpu_matmul INT8)");
    run a, b;
    if (open_run(&a, argv[1], threads, LLMRT_CPU_MATMUL_EXACT, false) != 0 ||
        open_run(&b, argv[1], threads, bf16 ? LLMRT_CPU_MATMUL_EXACT : LLMRT_CPU_MATMUL_INT8,
                 bf16) != 0) {
        fprintf(stderr, "load: %s\n", llmrt_last_error());
        return 1;
    }
    double  max_diff = 0, sum_diff = 0, max_logit = 0;
    int64_t n_vals = 0, n_pos = 0, agree = 0, g_total = 0, g_same_prefix = 0;
    for (size_t ti = 0; ti < sizeof texts / sizeof texts[0]; ti++) {
        int32_t ids[512], n = 0;
        if (llmrt_tokenize(a.m, texts[ti], strlen(texts[ti]), true, false, ids, 512, &n) != LLMRT_OK)
            return 1;
        float *la = malloc((size_t)n * a.vocab * 4), *lb = malloc((size_t)n * b.vocab * 4);
        if (forward_all(&a, ids, n, la) || forward_all(&b, ids, n, lb)) {
            fprintf(stderr, "forward: %s\n", llmrt_last_error());
            return 1;
        }
        for (int32_t t = 0; t < n; t++) {
            const float *pa = la + (int64_t)t * a.vocab, *pb = lb + (int64_t)t * a.vocab;
            for (int32_t v = 0; v < a.vocab; v++) {
                double d = fabs((double)pa[v] - pb[v]);
                if (d > max_diff) max_diff = d;
                if (fabs(pa[v]) > max_logit) max_logit = fabs(pa[v]);
                sum_diff += d;
            }
            n_vals += a.vocab;
            agree += argmax(pa, a.vocab) == argmax(pb, a.vocab);
            n_pos++;
        }
        /* greedy: 32 tokens after the first 24 tokens of the text */
        int32_t ga[32], gb[32], P = n < 24 ? n : 24, same = 0;
        if (greedy(&a, ids, P, 32, ga) || greedy(&b, ids, P, 32, gb)) return 1;
        while (same < 32 && ga[same] == gb[same]) same++;
        printf("text %zu: %d tokens; greedy continuations identical for %d of 32 tokens\n", ti, n,
               same);
        g_total += 32;
        g_same_prefix += same;
        free(la), free(lb);
    }
    printf("teacher-forced logits over %lld positions x %d vocab: max |diff| %.4g, mean |diff| "
           "%.4g (max |logit| %.3g); top-1 agreement %lld/%lld (%.2f%%)\n",
           (long long)n_pos, a.vocab, max_diff, sum_diff / (double)n_vals, max_logit,
           (long long)agree, (long long)n_pos, 100.0 * (double)agree / (double)n_pos);
    printf("greedy: %lld of %lld continuation tokens before the first divergence\n",
           (long long)g_same_prefix, (long long)g_total);
    llmrt_kv_cache_destroy(a.kv), llmrt_kv_cache_destroy(b.kv);
    llmrt_model_destroy(a.m), llmrt_model_destroy(b.m);
    return 0;
}
