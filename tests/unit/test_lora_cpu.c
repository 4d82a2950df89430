/* The CPU backend's LoRA kernels (backend/cpu/lora_cpu.h) against an fp64 reference, over
 * irregular shapes, mixed slots (empty, -1, out of range) and every ISA kernel set; plus the
 * property the engine relies on: a row's result does not depend on the other rows. */
#include <stdlib.h>

#include "backend/cpu/lora_cpu.h"
#include "core/thread_pool.h"
#include "test_util.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) { /* uniform [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

typedef struct ref_slot {
    int32_t rank;
    float *a, *b; /* [r, k], [n, r] */
} ref_slot;

/* out[t] += scale[t] * (x[t] Aᵀ) Bᵀ in fp64 for rows with a filled slot */
static void reference(double *out, const float *x, int64_t T, int64_t n, int64_t k,
                      const int32_t *slot, const float *scale, const ref_slot *slots,
                      int32_t n_slots) {
    for (int64_t t = 0; t < T; t++) {
        int32_t s = slot[t];
        if (s < 0 || s >= n_slots || slots[s].rank == 0) continue;
        const ref_slot *rs = &slots[s];
        double tmp[128];
        for (int32_t r = 0; r < rs->rank; r++) {
            double acc = 0;
            for (int64_t j = 0; j < k; j++)
                acc += (double)x[t * k + j] * rs->a[r * k + j];
            tmp[r] = acc;
        }
        for (int64_t i = 0; i < n; i++) {
            double acc = 0;
            for (int32_t r = 0; r < rs->rank; r++)
                acc += tmp[r] * rs->b[i * rs->rank + r];
            out[t * n + i] += scale[t] * acc;
        }
    }
}

static void check_shape(const llmrt_cpu_kernels *kern, llmrt_thread_pool *pool, int64_t T,
                        int64_t n, int64_t k, const int32_t *ranks, int32_t n_slots) {
    llmrt_error err = {0};
    llmrt_blora_table *tab = NULL;
    CHECK(llmrt_cpu_lora_table_create(n_slots, n, k, &tab, &err) == LLMRT_OK);
    ref_slot *slots = calloc((size_t)n_slots, sizeof *slots);
    for (int32_t s = 0; s < n_slots; s++) {
        slots[s].rank = ranks[s];
        if (!ranks[s]) continue;
        slots[s].a = malloc((size_t)(ranks[s] * k) * sizeof(float));
        slots[s].b = malloc((size_t)(ranks[s] * n) * sizeof(float));
        for (int64_t i = 0; i < ranks[s] * k; i++)
            slots[s].a[i] = frand() * 0.2f;
        for (int64_t i = 0; i < ranks[s] * n; i++)
            slots[s].b[i] = frand() * 0.2f;
        CHECK(llmrt_cpu_lora_table_set(tab, s, ranks[s], slots[s].a, slots[s].b, &err) == LLMRT_OK);
    }
    float *x = malloc((size_t)(T * k) * sizeof *x), *out = malloc((size_t)(T * n) * sizeof *out);
    double *ref = malloc((size_t)(T * n) * sizeof *ref);
    int32_t *slot = malloc((size_t)T * sizeof *slot);
    float *scale = malloc((size_t)T * sizeof *scale);
    for (int64_t i = 0; i < T * k; i++)
        x[i] = frand();
    for (int64_t i = 0; i < T * n; i++)
        out[i] = frand(), ref[i] = out[i];
    for (int64_t t = 0; t < T; t++) {
        slot[t] = (int32_t)(t % (n_slots + 2)) - 1; /* -1, 0 .. n_slots - 1, n_slots (none) */
        scale[t] = 0.5f + (float)(t % 3);
    }
    reference(ref, x, T, n, k, slot, scale, slots, n_slots);
    llmrt_cpu_lora_apply(pool, kern, out, x, T, slot, scale, tab);
    double worst = 0;
    for (int64_t i = 0; i < T * n; i++) {
        double d = fabs(out[i] - ref[i]) / (1.0 + fabs(ref[i]));
        if (d > worst) worst = d;
    }
    /* fp32 accumulation over k <= 600 and r <= 64 of values |x| < 1: well under 1e-4 */
    CHECK_MSG(worst < 1e-4, "%s T=%lld n=%lld k=%lld: worst relative error %g", kern->isa,
              (long long)T, (long long)n, (long long)k, worst);

    /* row independence: each row alone gives the same bits as in the batch */
    float *alone = malloc((size_t)n * sizeof *alone);
    int differ = 0;
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < n; i++)
            alone[i] = 0.25f;
        float *batch_row = malloc((size_t)(T * n) * sizeof *batch_row);
        for (int64_t i = 0; i < T * n; i++)
            batch_row[i] = 0.25f;
        llmrt_cpu_lora_apply(pool, kern, alone, x + t * k, 1, slot + t, scale + t, tab);
        llmrt_cpu_lora_apply(pool, kern, batch_row, x, T, slot, scale, tab);
        differ += memcmp(alone, batch_row + t * n, (size_t)n * sizeof(float)) != 0;
        free(batch_row);
    }
    CHECK_MSG(differ == 0, "%s: %d rows differ alone vs in the batch", kern->isa, differ);

    /* emptying a slot turns its rows off */
    CHECK(llmrt_cpu_lora_table_set(tab, 0, 0, NULL, NULL, &err) == LLMRT_OK);
    for (int64_t i = 0; i < n; i++)
        alone[i] = 1.0f;
    int32_t zero = 0;
    float one = 1.0f;
    llmrt_cpu_lora_apply(pool, kern, alone, x, 1, &zero, &one, tab);
    int changed = 0;
    for (int64_t i = 0; i < n; i++)
        changed += alone[i] != 1.0f;
    CHECK_MSG(changed == 0, "an emptied slot still changed %d outputs", changed);

    free(alone);
    free(x), free(out), free(ref), free(slot), free(scale);
    for (int32_t s = 0; s < n_slots; s++)
        free(slots[s].a), free(slots[s].b);
    free(slots);
    llmrt_cpu_lora_table_destroy(tab);
}

int main(void) {
    llmrt_thread_pool *pool = llmrt_thread_pool_create(2);
    const char *isas[] = {"generic", "avx2", "avx512"};
    for (int i = 0; i < 3; i++) {
        llmrt_cpu_kernels k = llmrt_cpu_kernels_select(isas[i]);
        if (strcmp(k.isa, isas[i]) != 0) continue; /* the CPU lacks it */
        int32_t r1[] = {8};
        check_shape(&k, pool, 1, 13, 72, r1, 1);
        int32_t r3[] = {1, 0, 16};
        check_shape(&k, pool, 17, 200, 72, r3, 3);
        int32_t r4[] = {7, 64, 3, 16};
        check_shape(&k, pool, 70, 577, 129, r4, 4);
        printf("%s: checked\n", k.isa);
    }

    /* bad arguments are errors, not crashes */
    llmrt_error err = {0};
    llmrt_blora_table *tab = NULL;
    CHECK_ERROR(llmrt_cpu_lora_table_create(0, 4, 4, &tab, &err), err, LLMRT_ERR_INVALID_ARG,
                "lora table");
    CHECK(llmrt_cpu_lora_table_create(2, 4, 4, &tab, &err) == LLMRT_OK);
    float a[4] = {0}, b[4] = {0};
    CHECK_ERROR(llmrt_cpu_lora_table_set(tab, 2, 1, a, b, &err), err, LLMRT_ERR_INVALID_ARG,
                "slot 2");
    CHECK_ERROR(llmrt_cpu_lora_table_set(tab, 0, 2000, a, b, &err), err, LLMRT_ERR_INVALID_ARG,
                "rank 2000");
    llmrt_cpu_lora_table_destroy(tab);
    llmrt_thread_pool_destroy(pool);
    return test_summary("test_lora_cpu");
}
