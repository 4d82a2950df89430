/* The golden files of the GPTQ fixtures (tests/data/gptq/golden, python/tools/make_gptq_fixtures.py):
 * the tests/data/golden format with model and logits paths relative to tests/data, tests/data/gptq
 * or the golden's directory. Shared by test_gptq (CPU backend) and test_cuda_backend. */
#ifndef LLMRT_TEST_GPTQ_GOLDEN_H
#define LLMRT_TEST_GPTQ_GOLDEN_H

#include <sys/stat.h>

#include "golden.h"

static inline int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* Loads golden `json_path` (the tests/data/golden format); the model and logits paths are tried
 * relative to tests/data, tests/data/gptq and the golden's directory. */
static inline int load_gptq_golden(const char *dir, const char *file, golden *g) {
    memset(g, 0, sizeof *g);
    char path[4096];
    llmrt_error err = {0};
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (llmrt_json_parse_file(path, 1 << 24, &g->root, &err) != LLMRT_OK) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        return -1;
    }
    const cJSON *md = cJSON_GetObjectItem(g->root, "model_dir");
    const cJSON *mf = cJSON_GetObjectItem(g->root, "model_file");
    const cJSON *rel = md ? md : mf;
    const cJSON *lf = cJSON_GetObjectItem(g->root, "logits_file");
    const cJSON *vs = cJSON_GetObjectItem(g->root, "vocab_size");
    if (!cJSON_IsString(rel) || !cJSON_IsString(lf) || !cJSON_IsNumber(vs)) {
        fprintf(stderr, "%s: needs model_dir, logits_file and vocab_size\n", path);
        return -1;
    }
    const char *bases[] = {LLMRT_TEST_DATA_DIR, LLMRT_TEST_DATA_DIR "/gptq", dir};
    for (int i = 0; i < 3 && !g->model_path[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", bases[i], rel->valuestring);
        if (file_exists(path) && strlen(path) < sizeof g->model_path)
            memcpy(g->model_path, path, strlen(path) + 1);
    }
    g->vocab = (int32_t)vs->valuedouble;
    const cJSON *seqs = cJSON_GetObjectItem(g->root, "sequences");
    g->n_seqs = cJSON_GetArraySize(seqs);
    g->seq_len = calloc((size_t)(g->n_seqs ? g->n_seqs : 1), sizeof *g->seq_len);
    g->seq_ids = calloc((size_t)(g->n_seqs ? g->n_seqs : 1), sizeof *g->seq_ids);
    int32_t i = 0;
    for (const cJSON *s = seqs ? seqs->child : NULL; s; s = s->next, i++)
        g->seq_ids[i] = golden_int_array(s, &g->seq_len[i]);
    int64_t n_floats = 0;
    for (int b = 0; b < 3 && !g->logits; b++) {
        snprintf(path, sizeof path, "%s/%s", b == 0 ? dir : bases[b - 1], lf->valuestring);
        g->logits = golden_read_f32(path, &n_floats);
    }
    if (!g->logits || !g->model_path[0]) {
        fprintf(stderr, "%s/%s: model %s or logits %s not found\n", dir, file, rel->valuestring,
                lf->valuestring);
        return -1;
    }
    g->n_rows = n_floats / g->vocab;
    return 0;
}

#endif
