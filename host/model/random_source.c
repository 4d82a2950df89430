/* --load-format random: any config.json, weights filled with a deterministic pseudo-random
 * pattern (uniform in ±1/sqrt(K), norms 1.0) in the config's torch_dtype (fp16 by default),
 * so shapes no checkpoint is at hand for (e.g. Llama-2-7B) can be benchmarked. A config with a
 * GPTQ quantization_config gets its layers' Linears as random 4-bit matrices of that group size
 * (uniform nibbles, zero 8, scale 1/(8 sqrt(K))): the 4-bit kernels' shapes and bytes.
 * Filling runs on up to RANDOM_MAX_THREADS threads (a 7B model is 6.7e9 values), each chunk of
 * CHUNK values seeded from (seed, tensor name, chunk index), so the values do not depend on the
 * thread count. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/checked_math.h"
#include "../core/half.h"
#include "../core/mapped_file.h"
#include "gptq.h"
#include "model.h"

enum { RANDOM_MAX_THREADS = 16 };
#define CHUNK ((uint64_t)1 << 20)

typedef struct random_source {
    uint64_t seed;
    llmrt_dtype dtype;
    llmrt_gptq_config gptq; /* enabled: layer Linears are 4-bit */
} random_source;

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

typedef enum fill_kind { FILL_FLOAT, FILL_ONES, FILL_BYTES } fill_kind;

/* One tensor's fill: n values of `dtype` (FILL_FLOAT/ONES) or n random bytes (FILL_BYTES),
 * split into chunks that threads take in turn. */
typedef struct fill_job {
    fill_kind kind;
    llmrt_dtype dtype;
    void *buf;
    uint64_t n, state0;
    float scale;
    uint64_t next_chunk; /* taken under lock */
    pthread_mutex_t lock;
} fill_job;

static void fill_chunk(const fill_job *j, uint64_t c) {
    uint64_t state = j->state0 ^ (c * 0xd1b54a32d192ed03ull);
    uint64_t i0 = c * CHUNK, i1 = i0 + CHUNK < j->n ? i0 + CHUNK : j->n;
    if (j->kind == FILL_BYTES) {
        uint8_t *b = j->buf;
        for (uint64_t i = i0; i < i1; i += 8) {
            uint64_t r = splitmix64(&state);
            for (uint64_t k = i; k < i + 8 && k < i1; k++, r >>= 8)
                b[k] = (uint8_t)r;
        }
        return;
    }
    for (uint64_t i = i0; i < i1; i++) {
        /* 24 random bits -> uniform in [-1, 1) */
        float u = j->kind == FILL_ONES
                      ? 1.0f
                      : ((float)(splitmix64(&state) >> 40) / 8388608.0f - 1.0f) * j->scale;
        if (j->dtype == LLMRT_DTYPE_F32)
            ((float *)j->buf)[i] = u;
        else if (j->dtype == LLMRT_DTYPE_F16)
            ((uint16_t *)j->buf)[i] = llmrt_f32_to_f16(u);
        else
            ((uint16_t *)j->buf)[i] = llmrt_f32_to_bf16(u);
    }
}

static void *fill_worker(void *arg) {
    fill_job *j = arg;
    uint64_t n_chunks = (j->n + CHUNK - 1) / CHUNK;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        uint64_t c = j->next_chunk++;
        pthread_mutex_unlock(&j->lock);
        if (c >= n_chunks) return NULL;
        fill_chunk(j, c);
    }
}

static void fill_parallel(fill_job *j) {
    uint64_t n_chunks = (j->n + CHUNK - 1) / CHUNK;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int n_threads = cores < 1 ? 1 : cores > RANDOM_MAX_THREADS ? RANDOM_MAX_THREADS : (int)cores;
    if ((uint64_t)n_threads > n_chunks) n_threads = (int)n_chunks;
    pthread_mutex_init(&j->lock, NULL);
    j->next_chunk = 0;
    pthread_t tid[RANDOM_MAX_THREADS];
    int started = 0;
    for (int t = 1; t < n_threads; t++) /* a thread that cannot start leaves its share to others */
        if (pthread_create(&tid[started], NULL, fill_worker, j) == 0) started++;
    fill_worker(j);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    pthread_mutex_destroy(&j->lock);
}

/* A layer Linear ("model.layers.N.*.weight") of a GPTQ config as a random 4-bit matrix. */
static llmrt_status random_get_q4(void *ctx, struct llmrt_rank_model *m, const char *name,
                                  int64_t rows, int64_t cols, llmrt_q4_tensor *out, bool *found,
                                  llmrt_error *err) {
    (void)m;
    const random_source *rs = ctx;
    *found = false;
    size_t len = strlen(name);
    bool layer_linear =
        !strncmp(name, "model.layers.", 13) && len > 7 && !strcmp(name + len - 7, ".weight");
    bool lm_head = !strcmp(name, "lm_head.weight") && rs->gptq.lm_head;
    if (!rs->gptq.enabled || !(layer_linear || lm_head)) return LLMRT_OK;
    int64_t g = rs->gptq.group_size > 0 ? rs->gptq.group_size : cols;
    if (cols % g || cols % 2)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "random weights: %s: in_features %lld is not a multiple of group_size "
                         "%lld",
                         name, (long long)cols, (long long)g);
    uint64_t G = (uint64_t)(cols / g), qs_bytes, n_groups, bytes;
    if (!ck_mul_u64((uint64_t)rows, (uint64_t)cols / 2, &qs_bytes) ||
        !ck_mul_u64((uint64_t)rows, G, &n_groups) || !ck_mul_u64(n_groups, 3, &bytes) ||
        !ck_add_u64(bytes, qs_bytes, &bytes) || bytes > SIZE_MAX)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "random weights: %s is too large", name);
    uint8_t *mem = malloc((size_t)bytes);
    if (!mem)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                         "random weights: cannot allocate %llu bytes for %s",
                         (unsigned long long)bytes, name);
    uint16_t *scales = (uint16_t *)(mem + qs_bytes); /* qs_bytes is even: rows * cols / 2 */
    uint8_t *zeros = mem + qs_bytes + 2 * n_groups;
    fill_job job = {
        .kind = FILL_BYTES, .buf = mem, .n = qs_bytes, .state0 = rs->seed ^ hash_name(name)};
    fill_parallel(&job);
    uint16_t s = llmrt_f32_to_f16(1.0f / (8.0f * sqrtf((float)cols)));
    for (uint64_t i = 0; i < n_groups; i++)
        scales[i] = s, zeros[i] = 8;
    *out = (llmrt_q4_tensor){.mem = mem};
    out->q = (llmrt_q4_host){.rows = rows,
                             .cols = cols,
                             .group_size = (int32_t)g,
                             .zero_kind = LLMRT_Q4_ZERO_INT,
                             .qs = mem,
                             .scales = scales,
                             .zeros = zeros};
    *found = true;
    return LLMRT_OK;
}

static llmrt_status random_get(void *ctx, struct llmrt_rank_model *m, const char *name,
                               int64_t rows, int64_t cols, bool optional, llmrt_host_tensor *out,
                               bool *found, llmrt_error *err) {
    if (optional) { /* the only optional tensors are biases: a random model has none */
        *found = false;
        return LLMRT_OK;
    }
    const random_source *rs = ctx;
    bool norm = cols == 0;
    llmrt_dtype dtype = norm ? LLMRT_DTYPE_F32 : rs->dtype;
    uint64_t n = (uint64_t)rows * (uint64_t)(norm ? 1 : cols), bytes;
    if (!ck_mul_u64(n, (uint64_t)llmrt_dtype_block_bytes(dtype), &bytes))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "random weights: %s is too large", name);
    void *buf = malloc(bytes ? (size_t)bytes : 1);
    if (!buf)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY,
                         "random weights: cannot allocate %llu bytes for %s",
                         (unsigned long long)bytes, name);
    fill_job job = {.kind = norm ? FILL_ONES : FILL_FLOAT,
                    .dtype = dtype,
                    .buf = buf,
                    .n = n,
                    .state0 = rs->seed ^ hash_name(name),
                    .scale = norm ? 0.0f : 1.0f / sqrtf((float)cols)};
    fill_parallel(&job);
    LLMRT_TRY(llmrt_model_keep_host(m, buf, err));
    *found = true;
    *out = (llmrt_host_tensor){.dtype = dtype, .rows = rows, .cols = cols, .data = buf};
    return LLMRT_OK;
}

/* The config's "quantization_config" (GPTQ only), as a checkpoint of that config would have it. */
static llmrt_status random_quant_config(const char *file, const char *text, uint64_t len,
                                        llmrt_gptq_config *cfg, llmrt_error *err) {
    memset(cfg, 0, sizeof *cfg);
    cJSON *root = cJSON_ParseWithLength(text, (size_t)len);
    if (!root) return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: not valid JSON", file);
    const cJSON *qc = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    llmrt_status s = LLMRT_OK;
    if (qc && !cJSON_IsNull(qc)) {
        char what[4200];
        snprintf(what, sizeof what, "%s: quantization_config", file);
        s = llmrt_gptq_config_parse(qc, what, cfg, err);
    }
    cJSON_Delete(root);
    return s;
}

llmrt_status llmrt_model_open_random(struct llmrt_rank_model *m, const char *path, uint64_t seed,
                                     llmrt_error *err) {
    struct stat st;
    char file[4096];
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        snprintf(file, sizeof file, "%s/config.json", path);
    else
        snprintf(file, sizeof file, "%s", path);
    char *text;
    uint64_t len;
    LLMRT_TRY(llmrt_read_text_file(file, 4u << 20, &text, &len, err));
    llmrt_status s = llmrt_config_parse_hf(text, len, file, &m->cfg, err);
    if (s != LLMRT_OK) {
        free(text);
        return s;
    }
    random_source rs = {.seed = seed, .dtype = m->cfg.torch_dtype};
    if (rs.dtype != LLMRT_DTYPE_F32 && rs.dtype != LLMRT_DTYPE_BF16) rs.dtype = LLMRT_DTYPE_F16;
    s = random_quant_config(file, text, len, &rs.gptq, err);
    free(text);
    if (s != LLMRT_OK) return s;
    llmrt_weight_source src = {
        .ctx = &rs, .what = file, .get = random_get, .get_q4 = random_get_q4};
    return llmrt_model_load_weights(m, &src, err);
}
