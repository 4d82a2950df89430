/* Running a model over golden token sequences, shared by the 4-bit tests (test_q4_gguf.c,
 * test_gptq.c): load with a thread count and the dequantize_weights switch (LLMRT_NO_Q4 of
 * the command line), and the logits of every
 * position in one batch or in chunked steps that interleave the sequences. */
#ifndef LLMRT_TEST_PACKED_RUN_H
#define LLMRT_TEST_PACKED_RUN_H

#include <stdlib.h>
#include <string.h>

#include "llmrt_experimental.h"
#include "test_util.h"

#ifndef BLOCK
#define BLOCK 16 /* KV block size of the runs */
#endif

static bool load_allow_fallback; /* llmrt_model_params.allow_fallback of load() */

static inline llmrt_model *load(const char *path, int threads, int no_q4) {
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = threads;
    mp.dequantize_weights = no_q4 != 0;
    mp.allow_fallback     = load_allow_fallback;
    llmrt_model *m = NULL;
    CHECK_STATUS(llmrt_model_load(path, &mp, &m), LLMRT_OK, NULL);
    return m;
}

static inline void weight_format(llmrt_model *m, char *out, size_t n) {
    llmrt_model_info info = {.struct_size = sizeof info};
    out[0] = 0;
    if (m && llmrt_model_get_info(m, &info) == LLMRT_OK) snprintf(out, n, "%s", info.weight_format);
}

/* Logits of every position of n_seqs sequences into out (rows: sequence 0's positions, then
 * sequence 1's, ...). chunks == NULL: all in one batch; else each step takes the next chunk
 * size per sequence (chunk pattern offset by sequence), tokens of sequences interleaved. */
static llmrt_status run_all(llmrt_model *m, int32_t n_seqs, int32_t *const *ids,
                            const int32_t *lens, const int32_t *chunks, int32_t n_chunks,
                            int32_t vocab, float *out) {
    int32_t max_blocks = 0, total = 0;
    for (int32_t s = 0; s < n_seqs; s++) {
        int32_t nb = (lens[s] + BLOCK - 1) / BLOCK;
        if (nb > max_blocks) max_blocks = nb;
        total += lens[s];
    }
    llmrt_kv_cache_params kp = llmrt_kv_cache_default_params();
    kp.block_size = BLOCK;
    kp.n_blocks = n_seqs * max_blocks;
    llmrt_kv_cache *kv = NULL;
    llmrt_status st = llmrt_kv_cache_create(m, &kp, &kv);
    if (st != LLMRT_OK) return st;
    int32_t *table = malloc((size_t)kp.n_blocks * sizeof *table);
    for (int32_t s = 0; s < n_seqs; s++) /* scrambled: descending, interleaved */
        for (int32_t b = 0; b < max_blocks; b++)
            table[s * max_blocks + b] = kp.n_blocks - 1 - (b * n_seqs + s);
    int32_t *row0 = malloc((size_t)n_seqs * sizeof *row0), *from = calloc((size_t)n_seqs, 4);
    for (int32_t s = 0, r = 0; s < n_seqs; r += lens[s], s++)
        row0[s] = r;
    int32_t *tok = malloc((size_t)total * 4), *pos = malloc((size_t)total * 4);
    int32_t *seq = malloc((size_t)total * 4), *outs = malloc((size_t)total * 4);
    float *lg = malloc((size_t)total * vocab * sizeof(float));
    for (int32_t step = 0; st == LLMRT_OK; step++) {
        int32_t T = 0;
        for (int32_t k = 0;; k++) { /* interleave the sequences token by token */
            int32_t added = 0;
            for (int32_t s = 0; s < n_seqs; s++) {
                int32_t c = chunks ? chunks[(step + 3 * s) % n_chunks] : lens[s];
                int32_t end = from[s] + c < lens[s] ? from[s] + c : lens[s];
                if (from[s] + k < end) {
                    tok[T] = ids[s][from[s] + k], pos[T] = from[s] + k, seq[T] = s, outs[T] = T;
                    T++, added++;
                }
            }
            if (!added) break;
        }
        if (T == 0) break;
        llmrt_batch b = {.n_tokens = T,
                         .tokens = tok,
                         .positions = pos,
                         .seq_ids = seq,
                         .n_seqs = n_seqs,
                         .max_blocks_per_seq = max_blocks,
                         .block_tables = table,
                         .n_outputs = T,
                         .output_tokens = outs};
        st = llmrt_forward(kv, &b, lg, (int64_t)T * vocab);
        for (int32_t i = 0; i < T && st == LLMRT_OK; i++)
            memcpy(out + (int64_t)(row0[seq[i]] + pos[i]) * vocab, lg + (int64_t)i * vocab,
                   (size_t)vocab * sizeof(float));
        for (int32_t i = 0; i < T; i++)
            if (pos[i] + 1 > from[seq[i]]) from[seq[i]] = pos[i] + 1;
    }
    free(table);
    free(row0);
    free(from);
    free(tok);
    free(pos);
    free(seq);
    free(outs);
    free(lg);
    llmrt_kv_cache_destroy(kv);
    return st;
}

static const int32_t chunk_pattern[] = {5, 1, 16, 1, 3, 9, 1, 17, 2};
#define N_CHUNKS ((int32_t)(sizeof chunk_pattern / sizeof chunk_pattern[0]))

#endif
