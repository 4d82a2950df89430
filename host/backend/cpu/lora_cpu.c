/* The CPU backend's LoRA tables and their batched apply (lora_cpu.h). */
#include "lora_cpu.h"

#include <stdlib.h>
#include <string.h>

#include "../../core/checked_math.h"
#include "../../format/lora_file.h" /* LLMRT_LORA_MAX_RANK */

typedef struct lora_slot {
    int32_t rank; /* 0: empty */
    float *a;     /* [rank, k] */
    float *bt;    /* [rank, n]: B transposed */
} lora_slot;

struct llmrt_blora_table {
    int32_t n_slots;
    int64_t n, k;
    lora_slot slots[];
};

llmrt_status llmrt_cpu_lora_table_create(int32_t n_slots, int64_t n, int64_t k,
                                         llmrt_blora_table **out, llmrt_error *err) {
    *out = NULL;
    if (n_slots < 1 || n < 1 || k < 1)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "lora table: %d slots of [%lld, %lld]",
                         n_slots, (long long)n, (long long)k);
    llmrt_blora_table *t = calloc(1, sizeof *t + (size_t)n_slots * sizeof(lora_slot));
    if (!t) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "lora table: out of memory");
    t->n_slots = n_slots;
    t->n = n;
    t->k = k;
    *out = t;
    return LLMRT_OK;
}

static void clear_slot(lora_slot *s) {
    free(s->a);
    free(s->bt);
    *s = (lora_slot){0};
}

llmrt_status llmrt_cpu_lora_table_set(llmrt_blora_table *t, int32_t slot, int32_t rank,
                                      const float *a, const float *b, llmrt_error *err) {
    if (slot < 0 || slot >= t->n_slots || rank < 0 || rank > LLMRT_LORA_MAX_RANK ||
        (rank > 0 && (!a || !b)))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "lora table: slot %d of %d, rank %d", slot,
                         t->n_slots, rank);
    lora_slot *s = &t->slots[slot];
    clear_slot(s);
    if (rank == 0) return LLMRT_OK;
    s->a = malloc((size_t)rank * (size_t)t->k * sizeof(float));
    s->bt = malloc((size_t)rank * (size_t)t->n * sizeof(float));
    if (!s->a || !s->bt) {
        clear_slot(s);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "lora table: out of memory for rank %d",
                         rank);
    }
    memcpy(s->a, a, (size_t)rank * (size_t)t->k * sizeof(float));
    for (int64_t n = 0; n < t->n; n++)
        for (int32_t j = 0; j < rank; j++)
            s->bt[(int64_t)j * t->n + n] = b[n * rank + j];
    s->rank = rank;
    return LLMRT_OK;
}

void llmrt_cpu_lora_table_destroy(llmrt_blora_table *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n_slots; i++)
        clear_slot(&t->slots[i]);
    free(t);
}

typedef struct apply_job {
    const llmrt_cpu_kernels *k;
    float *out;
    const float *x;
    const int32_t *slot;
    const float *scale;
    const llmrt_blora_table *t;
} apply_job;

/* One row: shrink (r dot products over k), then expand (r axpys over n), in a fixed order. */
static void apply_row(void *p, int64_t row, int thread) {
    (void)thread;
    const apply_job *j = p;
    const llmrt_blora_table *t = j->t;
    int32_t s = j->slot[row];
    if (s < 0 || s >= t->n_slots || t->slots[s].rank == 0) return;
    const lora_slot *ls = &t->slots[s];
    float tmp[LLMRT_LORA_MAX_RANK];
    const float *x = j->x + row * t->k;
    float *out = j->out + row * t->n;
    for (int32_t r = 0; r < ls->rank; r++)
        tmp[r] = j->scale[row] * j->k->dot(x, ls->a + (int64_t)r * t->k, t->k);
    for (int32_t r = 0; r < ls->rank; r++)
        j->k->axpy(out, tmp[r], ls->bt + (int64_t)r * t->n, t->n);
}

void llmrt_cpu_lora_apply(llmrt_thread_pool *pool, const llmrt_cpu_kernels *k, float *out,
                          const float *x, int64_t rows, const int32_t *slot, const float *scale,
                          const llmrt_blora_table *t) {
    if (!slot || !scale || !t) return;
    apply_job job = {.k = k, .out = out, .x = x, .slot = slot, .scale = scale, .t = t};
    llmrt_thread_pool_run(pool, rows, apply_row, &job);
}
