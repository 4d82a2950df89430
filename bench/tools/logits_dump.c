/* The logits of one token sequence, every position, as raw little-endian float32 rows of
 * vocab_size (for comparisons with other runtimes: python/tools/kquant_accuracy.py). Public API
 * only (plus llmrt_forward, experimental).
 *
 * usage: logits_dump MODEL THREADS OUT.f32 TOKEN_ID... */
#include <stdio.h>
#include <stdlib.h>

#include "llmrt.h"
#include "llmrt_experimental.h"

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s MODEL THREADS OUT.f32 TOKEN_ID...\n", argv[0]);
        return 2;
    }
    int32_t            n = argc - 4;
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = atoi(argv[2]);
    llmrt_model *m       = NULL;
    if (llmrt_model_load(argv[1], &p, &m) != LLMRT_OK) {
        fprintf(stderr, "load: %s\n", llmrt_last_error());
        return 1;
    }
    llmrt_model_info info = {.struct_size = sizeof info};
    llmrt_model_get_info(m, &info);
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.n_blocks              = (n + kp.block_size - 1) / kp.block_size;
    llmrt_kv_cache *kv       = NULL;
    if (llmrt_kv_cache_create(m, &kp, &kv) != LLMRT_OK) {
        fprintf(stderr, "kv: %s\n", llmrt_last_error());
        return 1;
    }
    int32_t *tok = malloc((size_t)n * 4), *pos = malloc((size_t)n * 4), *seq = calloc((size_t)n, 4);
    int32_t *outs = malloc((size_t)n * 4), *table = malloc((size_t)kp.n_blocks * 4);
    float   *lg   = malloc((size_t)n * info.vocab_size * sizeof(float));
    for (int32_t i = 0; i < n; i++) tok[i] = atoi(argv[4 + i]), pos[i] = i, outs[i] = i;
    for (int32_t i = 0; i < kp.n_blocks; i++) table[i] = i;
    llmrt_batch b = {.n_tokens = n, .tokens = tok, .positions = pos, .seq_ids = seq, .n_seqs = 1,
                     .max_blocks_per_seq = kp.n_blocks, .block_tables = table, .n_outputs = n,
                     .output_tokens = outs};
    if (llmrt_forward(kv, &b, lg, (int64_t)n * info.vocab_size) != LLMRT_OK) {
        fprintf(stderr, "forward: %s\n", llmrt_last_error());
        return 1;
    }
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(lg, sizeof(float), (size_t)n * info.vocab_size, f) != (size_t)n * info.vocab_size)
        return 1;
    fclose(f);
    printf("%s: %d positions x %d logits (%s)\n", argv[1], n, info.vocab_size, info.weight_format);
    llmrt_kv_cache_destroy(kv);
    llmrt_model_destroy(m);
    free(tok), free(pos), free(seq), free(outs), free(table), free(lg);
    return 0;
}
