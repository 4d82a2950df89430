/* LoRA adapters merged into the weights at load (lora_merge.h). */
#include "lora_merge.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/half.h"
#include "lora_slots.h" /* llmrt_rank_lora_split */

void llmrt_lora_merge_free(llmrt_rank_model *m) {
    llmrt_lora_merge *g = m->merge;
    if (!g) return;
    for (int32_t i = 0; i < g->n; i++) {
        if (g->files) llmrt_lora_file_free(&g->files[i]);
        if (g->paths) free(g->paths[i]);
    }
    free(g->files);
    free(g->scales);
    free(g->paths);
    free(g);
    m->merge = NULL;
}

llmrt_status llmrt_lora_merge_open(llmrt_rank_model *m, const char *const *paths,
                                   const float *scales, int32_t n, llmrt_error *err) {
    if (n == 0) return LLMRT_OK;
    if (n < 0 || n > 64 || !paths)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "llmrt_model_load: n_loras %d outside [0, 64] or lora_paths NULL", n);
    llmrt_lora_merge *g = calloc(1, sizeof *g);
    if (!g) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    m->merge = g;
    g->files = calloc((size_t)n, sizeof *g->files);
    g->scales = calloc((size_t)n, sizeof *g->scales);
    g->paths = calloc((size_t)n, sizeof *g->paths);
    if (!g->files || !g->scales || !g->paths)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    for (int32_t i = 0; i < n; i++) {
        float s = scales ? scales[i] : 1.0f;
        if (!paths[i] || !isfinite(s) || fabsf(s) > 1e4f)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "llmrt_model_load: lora_paths[%d] is NULL or lora_scales[%d] = %g is "
                             "not a finite number in [-1e4, 1e4]",
                             i, i, (double)s);
        g->paths[i] = strdup(paths[i]);
        g->n = i + 1; /* what llmrt_lora_merge_free releases */
        if (!g->paths[i]) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        llmrt_status st = llmrt_lora_file_load(paths[i], &m->cfg, &g->files[i], err);
        if (st != LLMRT_OK) {
            llmrt_err_prefix(err, "llmrt_model_load: lora_paths[%d]", i);
            return st;
        }
        g->scales[i] = s;
    }
    return LLMRT_OK;
}

static const llmrt_lora_pair *pair_of(const llmrt_lora_file *f, int32_t l, llmrt_lora_target t) {
    const llmrt_lora_pair *p = &f->pairs[(int64_t)l * LLMRT_LORA_N_TARGETS + t];
    return p->rank > 0 ? p : NULL;
}

bool llmrt_lora_merge_targets(const llmrt_rank_model *m, int32_t l, llmrt_lora_target t) {
    const llmrt_lora_merge *g = m->merge;
    for (int32_t i = 0; g && i < g->n; i++)
        if (pair_of(&g->files[i], l, t)) return true;
    return false;
}

llmrt_status llmrt_lora_merge_check(llmrt_rank_model *m, const char *name, bool quantised,
                                    llmrt_error *err) {
    llmrt_lora_merge *g = m->merge;
    if (g->mode == 0 && quantised && g->n > 1)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s is quantised: a LoRA cannot be merged into it, and of the %d "
                         "adapters given one can be applied unmerged; load the others per "
                         "request (llmrt_engine_lora_load, --lora-module)",
                         name, g->n);
    if (g->mode == 0) g->mode = quantised ? 2 : 1;
    if (g->mode == 1 && quantised)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s is quantised while the adapted matrices before it are not: a LoRA "
                         "cannot be merged into it; load the adapter per request instead "
                         "(llmrt_engine_lora_load, --lora-module)",
                         name);
    return LLMRT_OK;
}

static float load_elem(const llmrt_host_tensor *t, int64_t i) {
    switch (t->dtype) {
    case LLMRT_DTYPE_F16:
        return llmrt_f16_to_f32(((const uint16_t *)t->data)[i]);
    case LLMRT_DTYPE_BF16:
        return llmrt_bf16_to_f32(((const uint16_t *)t->data)[i]);
    default:
        return ((const float *)t->data)[i];
    }
}

llmrt_status llmrt_lora_merge_tensor(llmrt_rank_model *m, int32_t l, llmrt_lora_target target,
                                     llmrt_host_tensor *t, llmrt_error *err) {
    const llmrt_lora_merge *g = m->merge;
    if (t->dtype != LLMRT_DTYPE_F32 && t->dtype != LLMRT_DTYPE_F16 && t->dtype != LLMRT_DTYPE_BF16)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "layer %d %s is %s: a LoRA merges into F32/F16/BF16 weights only", l,
                         llmrt_lora_target_name(target), llmrt_dtype_name(t->dtype));
    int64_t N = t->rows, K = t->cols, start, count;
    bool cols;
    llmrt_rank_lora_split(m, target, &cols, &start, &count);
    int64_t r0 = cols ? 0 : start, c0 = cols ? start : 0; /* the slice's origin in W */
    int64_t full_n, full_k;
    llmrt_lora_target_shape(&m->cfg, target, &full_n, &full_k);
    float *out = malloc((size_t)(N * K) * sizeof *out);
    float *row = malloc((size_t)K * sizeof *row);
    if (!out || !row) {
        free(out), free(row);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory merging a LoRA");
    }
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++)
            row[k] = 0.0f;
        for (int32_t i = 0; i < g->n; i++) { /* delta row n: sum_r s * B[n, r] * A[r, :] */
            const llmrt_lora_pair *p = pair_of(&g->files[i], l, target);
            if (!p) continue;
            for (int32_t r = 0; r < p->rank; r++) {
                float coef = g->scales[i] * p->scale * p->b[(r0 + n) * p->rank + r];
                const float *a = p->a + (int64_t)r * full_k + c0;
                for (int64_t k = 0; k < K; k++)
                    row[k] += coef * a[k];
            }
        }
        for (int64_t k = 0; k < K; k++)
            out[n * K + k] = load_elem(t, n * K + k) + row[k];
    }
    free(row);
    LLMRT_TRY(llmrt_model_keep_host(m, out, err));
    t->data = out;
    t->dtype = LLMRT_DTYPE_F32;
    m->merge->n_merged_matrices++;
    return LLMRT_OK;
}

void llmrt_lora_merge_done(llmrt_rank_model *m) {
    llmrt_lora_merge *g = m->merge;
    if (!g) return;
    if (g->mode == 0) g->mode = 1; /* no adapted matrix met: nothing to merge, nothing pending */
    /* unmerged adapters are read again by the engine from paths[] */
    for (int32_t i = 0; i < g->n; i++)
        llmrt_lora_file_free(&g->files[i]);
}
