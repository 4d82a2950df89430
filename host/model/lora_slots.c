/* One rank's LoRA adapter slots (lora_slots.h). */
#include "lora_slots.h"

#include <stdlib.h>
#include <string.h>

void llmrt_rank_lora_split(const llmrt_rank_model *m, llmrt_lora_target t, bool *is_cols,
                           int64_t *start, int64_t *count) {
    const llmrt_tp_shard *sh = &m->shard;
    int64_t hd = m->cfg.head_dim;
    *is_cols = t == LLMRT_LORA_O || t == LLMRT_LORA_DOWN;
    switch (t) {
    case LLMRT_LORA_Q:
    case LLMRT_LORA_O:
        *start = sh->q_head0 * hd, *count = sh->n_heads * hd;
        break;
    case LLMRT_LORA_K:
    case LLMRT_LORA_V:
        *start = sh->kv_head0 * hd, *count = sh->n_kv_heads * hd;
        break;
    default:
        *start = sh->ffn0, *count = sh->ffn;
        break;
    }
}

void llmrt_rank_lora_free(llmrt_rank_model *m) {
    llmrt_rank_lora *L = m ? m->lora : NULL;
    if (!L) return;
    for (int64_t i = 0; i < (int64_t)L->n_layers * LLMRT_LORA_N_TARGETS; i++)
        if (L->tables && L->tables[i]) m->be->ops->lora_table_destroy(m->be, L->tables[i]);
    free(L->tables);
    free(L->slot_rank);
    free(L->slot_bytes);
    free(L);
    m->lora = NULL;
}

llmrt_status llmrt_rank_lora_init(llmrt_rank_model *m, int32_t n_slots, llmrt_error *err) {
    const llmrt_backend_ops *op = m->be->ops;
    if (n_slots == 0) { /* the engine that made them is gone */
        llmrt_rank_lora_free(m);
        return LLMRT_OK;
    }
    if (!op->lora_table_create || !op->lora_table_set || !op->lora_apply)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "the %s backend has no LoRA kernels: adapters can only be merged at "
                         "load (--lora)",
                         m->be->name);
    if (m->lora) /* two engines of one model cannot both serve adapters */
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "the model's LoRA slots are in use by another engine of the model");
    if (n_slots == 0) return LLMRT_OK;
    if (n_slots < 0 || n_slots > 1024)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "%d LoRA slots outside [1, 1024]", n_slots);
    llmrt_rank_lora *L = calloc(1, sizeof *L);
    if (!L) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    m->lora = L;
    L->n_slots = n_slots;
    L->n_layers = m->cfg.n_layers;
    L->tables = calloc((size_t)L->n_layers * LLMRT_LORA_N_TARGETS, sizeof *L->tables);
    L->slot_rank = calloc((size_t)n_slots, sizeof *L->slot_rank);
    L->slot_bytes = calloc((size_t)n_slots, sizeof *L->slot_bytes);
    llmrt_status s = L->tables && L->slot_rank && L->slot_bytes
                         ? LLMRT_OK
                         : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t l = 0; l < L->n_layers && s == LLMRT_OK; l++)
        for (int t = 0; t < LLMRT_LORA_N_TARGETS && s == LLMRT_OK; t++) {
            int64_t n, k, start, count;
            bool cols;
            llmrt_lora_target_shape(&m->cfg, (llmrt_lora_target)t, &n, &k);
            llmrt_rank_lora_split(m, (llmrt_lora_target)t, &cols, &start, &count);
            if (cols)
                k = count;
            else
                n = count;
            s = op->lora_table_create(m->be, n_slots, n, k,
                                      &L->tables[l * LLMRT_LORA_N_TARGETS + t], err);
        }
    if (s != LLMRT_OK) llmrt_rank_lora_free(m);
    return s;
}

const llmrt_blora_table *llmrt_rank_lora_table(const llmrt_rank_model *m, int32_t l,
                                               llmrt_lora_target t) {
    if (!m->lora || l < 0 || l >= m->lora->n_layers) return NULL;
    return m->lora->tables[l * LLMRT_LORA_N_TARGETS + t];
}

/* This rank's part of one pair into one slot of its table. */
static llmrt_status set_pair(llmrt_rank_model *m, llmrt_blora_table *table, int32_t slot,
                             llmrt_lora_target t, const llmrt_lora_pair *p, uint64_t *bytes,
                             llmrt_error *err) {
    const llmrt_backend_ops *op = m->be->ops;
    if (!p || p->rank == 0) return op->lora_table_set(m->be, table, slot, 0, NULL, NULL, err);
    int64_t n, k, start, count;
    bool cols;
    llmrt_lora_target_shape(&m->cfg, t, &n, &k);
    llmrt_rank_lora_split(m, t, &cols, &start, &count);
    int64_t r = p->rank;
    /* the adapter's own scale is folded into B here; a request's scale multiplies at apply */
    int64_t bn = cols ? n : count;
    float *b = malloc((size_t)(bn * r) * sizeof *b);
    float *a = cols ? malloc((size_t)(r * count) * sizeof *a) : NULL;
    if (!b || (cols && !a)) {
        free(a), free(b);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    }
    const float *b_src = cols ? p->b : p->b + start * r;
    for (int64_t i = 0; i < bn * r; i++)
        b[i] = b_src[i] * p->scale;
    if (cols)
        for (int64_t j = 0; j < r; j++)
            memcpy(a + j * count, p->a + j * k + start, (size_t)count * sizeof *a);
    llmrt_status s = op->lora_table_set(m->be, table, slot, (int32_t)r, cols ? a : p->a, b, err);
    *bytes += (uint64_t)(r * (cols ? count : k) + bn * r) * sizeof(float);
    free(a);
    free(b);
    return s;
}

llmrt_status llmrt_rank_lora_set(llmrt_rank_model *m, int32_t slot, const llmrt_lora_file *f,
                                 llmrt_error *err) {
    llmrt_rank_lora *L = m->lora;
    if (!L || slot < 0 || slot >= L->n_slots)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "LoRA slot %d outside [0, %d)", slot,
                         L ? L->n_slots : 0);
    if (f && f->n_layers != L->n_layers)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "the adapter has %d layers, the model %d",
                         f->n_layers, L->n_layers);
    uint64_t bytes = 0;
    llmrt_status s = LLMRT_OK;
    for (int32_t l = 0; l < L->n_layers && s == LLMRT_OK; l++)
        for (int t = 0; t < LLMRT_LORA_N_TARGETS && s == LLMRT_OK; t++) {
            int64_t i = (int64_t)l * LLMRT_LORA_N_TARGETS + t;
            s = set_pair(m, L->tables[i], slot, (llmrt_lora_target)t, f ? &f->pairs[i] : NULL,
                         &bytes, err);
            if (s != LLMRT_OK)
                llmrt_err_prefix(err, "layer %d %s", l,
                                 llmrt_lora_target_name((llmrt_lora_target)t));
        }
    if (s != LLMRT_OK) { /* a slot is all of one adapter or empty, never a mix */
        llmrt_error ignored = {0};
        for (int64_t i = 0; i < (int64_t)L->n_layers * LLMRT_LORA_N_TARGETS; i++)
            m->be->ops->lora_table_set(m->be, L->tables[i], slot, 0, NULL, NULL, &ignored);
        bytes = 0;
    }
    L->slot_rank[slot] = s == LLMRT_OK && f ? f->max_rank : 0;
    L->slot_bytes[slot] = bytes;
    return s;
}
