/* One rank's LoRA adapter slots: for each layer and projection a backend table (backend.h,
 * lora_table_*) whose slot s holds this rank's part of the adapter loaded into slot s.
 * Tensor parallel splits A and B as the base layer is split: a column-parallel projection
 * (q/k/v, gate/up) keeps all of A and its output rows of B; a row-parallel one (o, down) keeps
 * its input columns of A and all of B, so its delta is a partial sum that the layer's
 * all-reduce completes (sum over ranks of (x_r A_rᵀ) Bᵀ = (x Aᵀ) Bᵀ). */
#ifndef LLMRT_MODEL_LORA_SLOTS_H
#define LLMRT_MODEL_LORA_SLOTS_H

#include "../format/lora_file.h"
#include "model.h"

typedef struct llmrt_rank_lora {
    int32_t             n_slots;
    int32_t             n_layers;
    llmrt_blora_table **tables;     /* [n_layers * LLMRT_LORA_N_TARGETS] */
    int32_t            *slot_rank;  /* [n_slots] largest rank held (0: empty) */
    uint64_t           *slot_bytes; /* [n_slots] fp32 bytes this rank holds for the slot */
} llmrt_rank_lora;

/* Gives m n_slots empty adapter slots (m->lora); 0 frees them. LLMRT_ERR_UNSUPPORTED naming
 * the backend when it has no LoRA kernels; INVALID_ARG when m already has slots (another engine
 * serves adapters). */
llmrt_status llmrt_rank_lora_init(llmrt_rank_model *m, int32_t n_slots, llmrt_error *err);

/* Loads this rank's part of adapter `f` into `slot` (NULL: empties the slot). The adapter must
 * have been read for m's config (llmrt_lora_file_load). */
llmrt_status llmrt_rank_lora_set(llmrt_rank_model *m, int32_t slot, const llmrt_lora_file *f,
                                 llmrt_error *err);

/* The table of layer l's projection t, or NULL when m has no slots. */
const llmrt_blora_table *llmrt_rank_lora_table(const llmrt_rank_model *m, int32_t l,
                                               llmrt_lora_target t);

/* Frees m->lora (NULL: no-op). */
void llmrt_rank_lora_free(llmrt_rank_model *m);

/* This rank's slice of target t: a column-parallel target keeps B rows [r0, r0 + n), a
 * row-parallel one A columns [c0, c0 + n) (is_cols true). Without TP the whole. */
void llmrt_rank_lora_split(const llmrt_rank_model *m, llmrt_lora_target t, bool *is_cols,
                           int64_t *start, int64_t *count);

#endif
