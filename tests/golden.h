/* Reading the golden files written by python/tools/make_tiny_models.py and
 * make_smollm2_golden.py: tests/data/golden/NAME.json + raw little-endian float32 logits. */
#ifndef LLMRT_TEST_GOLDEN_H
#define LLMRT_TEST_GOLDEN_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"

typedef struct golden {
    cJSON   *root;
    char     model_path[1024]; /* absolute path of the model dir or file, "" if not given */
    int32_t  vocab;
    int32_t  n_seqs;
    int32_t *seq_len;   /* [n_seqs] */
    int32_t **seq_ids;  /* [n_seqs][seq_len] */
    float   *logits;    /* rows of vocab floats */
    int64_t  n_rows;
} golden;

static inline int32_t *golden_int_array(const cJSON *arr, int32_t *n) {
    *n           = cJSON_GetArraySize(arr);
    int32_t *out = malloc((size_t)(*n ? *n : 1) * sizeof *out);
    int32_t  i   = 0;
    for (const cJSON *c = arr ? arr->child : NULL; c; c = c->next) out[i++] = (int32_t)c->valuedouble;
    return out;
}

static inline float *golden_read_f32(const char *path, int64_t *n_floats) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    float *buf = malloc((size_t)size);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *n_floats = size / 4;
    return buf;
}

/* Loads tests/data/golden/<name>.json. Returns 0 on success. */
static inline int golden_load(const char *name, golden *g) {
    memset(g, 0, sizeof *g);
    char path[2048];
    snprintf(path, sizeof path, "%s/golden/%s.json", LLMRT_TEST_DATA_DIR, name);
    llmrt_error err = {0};
    if (llmrt_json_parse_file(path, 1 << 24, &g->root, &err) != LLMRT_OK) {
        fprintf(stderr, "golden %s: %s\n", name, err.msg);
        return -1;
    }
    const cJSON *dir  = cJSON_GetObjectItem(g->root, "model_dir");
    const cJSON *file = cJSON_GetObjectItem(g->root, "model_file");
    const cJSON *rel  = dir ? dir : file;
    if (cJSON_IsString(rel))
        snprintf(g->model_path, sizeof g->model_path, "%s/%s", LLMRT_TEST_DATA_DIR, rel->valuestring);
    g->vocab           = (int32_t)cJSON_GetObjectItem(g->root, "vocab_size")->valuedouble;
    const cJSON *seqs  = cJSON_GetObjectItem(g->root, "sequences");
    if (seqs) {
        g->n_seqs  = cJSON_GetArraySize(seqs);
        g->seq_len = calloc((size_t)g->n_seqs, sizeof *g->seq_len);
        g->seq_ids = calloc((size_t)g->n_seqs, sizeof *g->seq_ids);
        int32_t i  = 0;
        for (const cJSON *s = seqs->child; s; s = s->next, i++)
            g->seq_ids[i] = golden_int_array(s, &g->seq_len[i]);
    }
    snprintf(path, sizeof path, "%s/golden/%s", LLMRT_TEST_DATA_DIR,
             cJSON_GetObjectItem(g->root, "logits_file")->valuestring);
    int64_t n_floats = 0;
    g->logits        = golden_read_f32(path, &n_floats);
    if (!g->logits) {
        fprintf(stderr, "golden %s: cannot read %s\n", name, path);
        return -1;
    }
    g->n_rows = n_floats / g->vocab;
    return 0;
}

static inline void golden_free(golden *g) {
    for (int32_t i = 0; i < g->n_seqs; i++) free(g->seq_ids[i]);
    free(g->seq_ids);
    free(g->seq_len);
    free(g->logits);
    cJSON_Delete(g->root);
}

/* max |a - b| over n, and max |b| */
static inline void golden_compare(const float *a, const float *b, int64_t n, double *max_err,
                                  double *max_ref) {
    *max_err = 0.0;
    *max_ref = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= *max_err)) *max_err = e; /* NaN propagates */
        if (fabs((double)b[i]) > *max_ref) *max_ref = fabs((double)b[i]);
    }
}

#endif
