/* --load-format random: any config.json, weights filled with a deterministic pseudo-random
 * pattern (uniform in ±1/sqrt(K), norms 1.0) in the config's torch_dtype (fp16 by default),
 * so shapes no checkpoint is at hand for (e.g. Llama-2-7B) can be benchmarked. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/checked_math.h"
#include "../core/half.h"
#include "../core/mapped_file.h"
#include "model.h"

typedef struct random_source {
    uint64_t    seed;
    llmrt_dtype dtype;
} random_source;

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z          = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z          = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static llmrt_status random_get(void *ctx, struct llmrt_rank_model *m, const char *name, int64_t rows,
                               int64_t cols, bool optional, llmrt_host_tensor *out, bool *found,
                               llmrt_error *err) {
    if (optional) { /* the only optional tensors are biases: a random model has none */
        *found = false;
        return LLMRT_OK;
    }
    const random_source *rs    = ctx;
    bool                 norm  = cols == 0;
    llmrt_dtype          dtype = norm ? LLMRT_DTYPE_F32 : rs->dtype;
    uint64_t             n     = (uint64_t)rows * (uint64_t)(norm ? 1 : cols), bytes;
    if (!ck_mul_u64(n, (uint64_t)llmrt_dtype_block_bytes(dtype), &bytes))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "random weights: %s is too large", name);
    void *buf = malloc(bytes ? (size_t)bytes : 1);
    if (!buf)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                         "random weights: cannot allocate %llu bytes for %s",
                         (unsigned long long)bytes, name);
    uint64_t state = rs->seed ^ hash_name(name);
    float    scale = norm ? 0.0f : 1.0f / sqrtf((float)cols);
    for (uint64_t i = 0; i < n; i++) {
        /* 24 random bits -> uniform in [-1, 1) */
        float u = norm ? 1.0f : ((float)(splitmix64(&state) >> 40) / 8388608.0f - 1.0f) * scale;
        if (dtype == LLMRT_DTYPE_F32) ((float *)buf)[i] = u;
        else if (dtype == LLMRT_DTYPE_F16) ((uint16_t *)buf)[i] = llmrt_f32_to_f16(u);
        else ((uint16_t *)buf)[i] = llmrt_f32_to_bf16(u);
    }
    LLMRT_TRY(llmrt_model_keep_host(m, buf, err));
    *found = true;
    *out   = (llmrt_host_tensor){.dtype = dtype, .rows = rows, .cols = cols, .data = buf};
    return LLMRT_OK;
}

llmrt_status llmrt_model_open_random(struct llmrt_rank_model *m, const char *path, uint64_t seed,
                                     llmrt_error *err) {
    struct stat st;
    char        file[4096];
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(file, sizeof file, "%s/config.json", path);
    else snprintf(file, sizeof file, "%s", path);
    char    *text;
    uint64_t len;
    LLMRT_TRY(llmrt_read_text_file(file, 4u << 20, &text, &len, err));
    llmrt_status s = llmrt_config_parse_hf(text, len, file, &m->cfg, err);
    free(text);
    if (s != LLMRT_OK) return s;
    random_source rs = {.seed = seed, .dtype = m->cfg.torch_dtype};
    if (rs.dtype != LLMRT_DTYPE_F32 && rs.dtype != LLMRT_DTYPE_BF16) rs.dtype = LLMRT_DTYPE_F16;
    llmrt_weight_source src = {.ctx = &rs, .what = file, .get = random_get};
    return llmrt_model_load_weights(m, &src, err);
}
