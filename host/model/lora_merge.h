/* LoRA adapters given at load (llmrt_model_params.lora_paths): folded into each adapted matrix
 * as it loads, W' = W + sum_i scale_i * (alpha_i / r_i) * B_i A_i, kept in fp32 whatever the
 * matrix's dtype (an f16/bf16 W' rounds the delta away: a r64 adapter on an f16 base was off
 * PEFT by 3.5e-3 of the largest logit, fp32 by < 1e-5); the backend converts at upload as for
 * any fp32 weight (CUDA: to its activation dtype). This rank's slice of W gets the same slice of the delta
 * (lora_slots.h's split). A quantised matrix (4-bit, Q8_0) cannot hold the sum: the first
 * adapted matrix decides — quantised, and no adapter is merged; the adapters are kept
 * (`unmerged`) for an engine to apply per token; dense, and a later quantised adapted matrix is
 * an UNSUPPORTED error naming it. */
#ifndef LLMRT_MODEL_LORA_MERGE_H
#define LLMRT_MODEL_LORA_MERGE_H

#include "../format/lora_file.h"
#include "model.h"

typedef struct llmrt_lora_merge {
    int32_t          n;
    llmrt_lora_file *files;  /* [n] */
    float           *scales; /* [n] the caller's scale of each */
    char           **paths;  /* [n] */
    int8_t           mode;   /* 0 undecided, 1 merging, 2 unmerged (quantised base) */
    int32_t          n_merged_matrices;
} llmrt_lora_merge;

/* Reads the load params' adapters for m->cfg into m->merge (n == 0: nothing). */
llmrt_status llmrt_lora_merge_open(llmrt_rank_model *m, const char *const *paths,
                                   const float *scales, int32_t n, llmrt_error *err);

/* Whether any adapter targets layer l's projection t. */
bool llmrt_lora_merge_targets(const llmrt_rank_model *m, int32_t l, llmrt_lora_target t);

/* Called for each adapted matrix as it loads: `quantised` says how it is stored. Decides the
 * mode at the first; UNSUPPORTED (naming `name`) for a quantised matrix in merging mode. */
llmrt_status llmrt_lora_merge_check(llmrt_rank_model *m, const char *name, bool quantised,
                                    llmrt_error *err);

/* Merging mode: *t (this rank's slice of layer l's projection t, dense F32/F16/BF16) replaced by
 * a merged fp32 copy the model keeps. */
llmrt_status llmrt_lora_merge_tensor(llmrt_rank_model *m, int32_t l, llmrt_lora_target target,
                                     llmrt_host_tensor *t, llmrt_error *err);

/* After the weights: frees the adapters' matrices (unmerged ones are read again from paths[] by
 * the engine that serves them). */
void llmrt_lora_merge_done(llmrt_rank_model *m);
void llmrt_lora_merge_free(llmrt_rank_model *m);

#endif
