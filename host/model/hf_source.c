/* HF checkpoint directories: config.json (+ generation_config.json) and model.safetensors or
 * shards listed in model.safetensors.index.json. Every shard is mapped and validated up front. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/json_util.h"
#include "model.h"

#define INDEX_MAX_BYTES (64u << 20)

typedef struct hf_source {
    const char *dir;
    cJSON      *weight_map; /* index.json "weight_map" (name -> shard file), NULL if single file */
    cJSON      *index_root;
} hf_source;

static const llmrt_st_tensor *find_tensor(const struct llmrt_model *m, const hf_source *hs,
                                          const char *name, const char **file) {
    for (int32_t i = 0; i < m->n_st_files; i++) {
        const llmrt_st_tensor *t = llmrt_safetensors_find(&m->st_files[i], name);
        if (t) {
            *file = m->st_files[i].path;
            return t;
        }
    }
    return NULL;
}

static llmrt_status hf_get(void *ctx, struct llmrt_model *m, const char *name, int64_t rows,
                           int64_t cols, bool optional, llmrt_host_tensor *out, bool *found,
                           llmrt_error *err) {
    hf_source             *hs   = ctx;
    const char            *file = hs->dir;
    const llmrt_st_tensor *t    = find_tensor(m, hs, name, &file);
    *found                      = t != NULL;
    if (!t) {
        if (optional) return LLMRT_OK;
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s is missing", hs->dir, name);
    }
    if (t->dtype != LLMRT_DTYPE_F32 && t->dtype != LLMRT_DTYPE_F16 && t->dtype != LLMRT_DTYPE_BF16)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: tensor %s has dtype %s (supported: F32, F16, BF16)", file, name,
                         llmrt_dtype_name(t->dtype));
    int want_dims = cols ? 2 : 1;
    if (t->n_dims != want_dims)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s has %d dims, expected %d",
                         file, name, t->n_dims, want_dims);
    out->dtype = t->dtype;
    out->rows  = (int64_t)t->shape[0];
    out->cols  = cols ? (int64_t)t->shape[1] : 0;
    out->data  = t->data;
    if ((uint64_t)out->rows != t->shape[0] || (cols && (uint64_t)out->cols != t->shape[1]))
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s is too large", file, name);
    return LLMRT_OK;
}

/* Opens every distinct shard named by the index's weight_map. */
static llmrt_status open_shards(struct llmrt_model *m, hf_source *hs, const char *index_path,
                                llmrt_error *err) {
    LLMRT_TRY(llmrt_json_parse_file(index_path, INDEX_MAX_BYTES, &hs->index_root, err));
    hs->weight_map = cJSON_GetObjectItemCaseSensitive(hs->index_root, "weight_map");
    if (!cJSON_IsObject(hs->weight_map))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: no \"weight_map\" object", index_path);
    int32_t n = 0;
    for (cJSON *e = hs->weight_map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !e->valuestring[0])
            return llmrt_err(err, LLMRT_ERR_FORMAT,
                             "%s: weight_map entry \"%s\" must name a file in the directory",
                             index_path, e->string);
        n++;
    }
    m->st_files = calloc((size_t)(n ? n : 1), sizeof *m->st_files);
    if (!m->st_files) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
    char path[4096];
    for (cJSON *e = hs->weight_map->child; e; e = e->next) {
        snprintf(path, sizeof path, "%s/%s", hs->dir, e->valuestring);
        bool seen = false;
        for (int32_t i = 0; i < m->n_st_files && !seen; i++)
            seen = strcmp(m->st_files[i].path, path) == 0;
        if (seen) continue;
        LLMRT_TRY(llmrt_safetensors_open(path, &m->st_files[m->n_st_files], err));
        m->n_st_files++;
    }
    /* every listed tensor must be in the shard the index names */
    for (cJSON *e = hs->weight_map->child; e; e = e->next) {
        snprintf(path, sizeof path, "%s/%s", hs->dir, e->valuestring);
        for (int32_t i = 0; i < m->n_st_files; i++) {
            if (strcmp(m->st_files[i].path, path) != 0) continue;
            if (!llmrt_safetensors_find(&m->st_files[i], e->string))
                return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                                 "%s: tensor %s is listed in the index but missing from the shard",
                                 path, e->string);
        }
    }
    return LLMRT_OK;
}

llmrt_status llmrt_model_open_hf(struct llmrt_model *m, const char *dir, llmrt_error *err) {
    LLMRT_TRY(llmrt_config_load_hf_dir(dir, &m->cfg, err));
    hf_source hs = {.dir = dir};
    char      path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    FILE        *probe = fopen(path, "rb");
    llmrt_status s;
    if (probe) {
        fclose(probe);
        s = open_shards(m, &hs, path, err);
    } else {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        m->st_files = calloc(1, sizeof *m->st_files);
        s           = m->st_files ? llmrt_safetensors_open(path, &m->st_files[0], err)
                                  : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        if (s == LLMRT_OK) m->n_st_files = 1;
    }
    if (s == LLMRT_OK) {
        llmrt_weight_source src = {.ctx = &hs, .what = dir, .get = hf_get};
        s = llmrt_model_load_weights(m, &src, err);
    }
    cJSON_Delete(hs.index_root);
    return s;
}
