/* HF checkpoint directories: config.json (+ generation_config.json) and model.safetensors (or
 * the file a GPTQ quantize_config.json names by model_file_base_name) or shards listed in
 * model.safetensors.index.json. Every shard is mapped and validated up front.
 * GPTQ checkpoints (a quantization config in config.json or quantize_config.json, gptq.h) store
 * each quantized Linear as P.qweight / P.qzeros / P.scales / P.g_idx (/ P.bias): get_q4 converts
 * 4-bit ones into the internal 4-bit format, `get` 8-bit ones into Q8_0, Q8_Z or fp32 (gptq8.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/json_util.h"
#include "awq.h"
#include "gptq.h"
#include "gptq8.h"
#include "model.h"
#include "../core/regular_file.h"

#define INDEX_MAX_BYTES (64u << 20)

typedef struct hf_source {
    const char *dir;
    cJSON      *weight_map; /* index.json "weight_map" (name -> shard file), NULL if single file */
    cJSON      *index_root;
    llmrt_gptq_config gptq;
    llmrt_gptq_config module; /* gptq with the dynamic overrides of the Linear being loaded */
} hf_source;

static const llmrt_st_tensor *find_tensor(const struct llmrt_rank_model *m, const hf_source *hs,
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

/* "model.layers.0.mlp.up_proj.weight" -> "model.layers.0.mlp.up_proj" */
static bool linear_prefix(const char *hf_name, char *out, size_t n) {
    size_t len = strlen(hf_name);
    if (len < 8 || strcmp(hf_name + len - 7, ".weight") != 0 || len - 7 >= n) return false;
    memcpy(out, hf_name, len - 7);
    out[len - 7] = 0;
    return true;
}

/* The tensors of quantized Linear `prefix` (t->qweight NULL when it is not stored quantized). */
static void find_gptq(const struct llmrt_rank_model *m, const hf_source *hs, const char *prefix,
                      llmrt_gptq_tensors *t, const char **file) {
    char        tname[300];
    const char *other = *file;
    memset(t, 0, sizeof *t);
#define FIND(field, suffix, where)                                                                 \
    (snprintf(tname, sizeof tname, "%s." suffix, prefix), t->field = find_tensor(m, hs, tname, where))
    FIND(qweight, "qweight", file);
    FIND(qzeros, "qzeros", &other);
    FIND(scales, "scales", &other);
    FIND(g_idx, "g_idx", &other);
    FIND(bias, "bias", &other);
#undef FIND
}

/* The GPTQ config of the Linear whose weight is `hf_name` (dynamic overrides applied), in
 * hs->module; NULL when a negative dynamic rule excludes it (stored unquantized). */
static const llmrt_gptq_config *module_config(hf_source *hs, const char *hf_name) {
    char prefix[256];
    bool excluded = false;
    if (!linear_prefix(hf_name, prefix, sizeof prefix)) return NULL;
    llmrt_gptq_config_for(&hs->gptq, prefix, &hs->module, &excluded);
    return excluded ? NULL : &hs->module;
}

static int32_t module_bits(hf_source *hs, const char *hf_name) {
    const llmrt_gptq_config *c = module_config(hs, hf_name);
    return c ? c->bits : 0;
}

/* An 8-bit GPTQ matrix (gptq8.h): Q8_0 / Q8_Z blocks when the backend reads them, else fp32
 * under allow_fallback / dequantize_weights (counted as a fallback), else an error naming it. */
static llmrt_status hf_get_gptq8(hf_source *hs, struct llmrt_rank_model *m, const char *name,
                                 int64_t rows, int64_t cols, bool optional,
                                 llmrt_host_tensor *out, bool *found, llmrt_error *err) {
    char               prefix[256], why[160];
    const char        *file = hs->dir;
    llmrt_gptq_tensors t;
    *found = false;
    if (!linear_prefix(name, prefix, sizeof prefix))
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s is missing", hs->dir, name);
    find_gptq(m, hs, prefix, &t, &file);
    if (!t.qweight && optional) return LLMRT_OK;
    if (!t.qweight)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s (or %s.qweight) is missing",
                         hs->dir, name, prefix);
    const llmrt_gptq_config *cfg = module_config(hs, name);
    if (!cfg)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s: a \"-:\" dynamic rule says "
                         "%s is not quantized, but the file stores %s.qweight",
                         file, name, prefix, prefix);
    /* what the backend keeps packed (never under dequantize_weights: no_q4) */
    llmrt_backend   *be   = m->be;
    llmrt_op_query   q    = {.op = LLMRT_BOP_MATMUL, .dtype = LLMRT_DTYPE_Q8_Z, .n = rows,
                             .k = cols, .has_perm = true};
    llmrt_gptq8_caps caps = {.f32 = m->allow_fallback || m->no_q4};
    if (!m->no_q4) {
        caps.q8_0 = be->ops->supports_weight(be, LLMRT_DTYPE_Q8_0);
        caps.q8_z = be->ops->supports_weight(be, LLMRT_DTYPE_Q8_Z);
        caps.q8_z_perm = caps.q8_z && be->ops->weight_upload_permuted &&
                         (!be->ops->supports || be->ops->supports(be, &q, NULL, 0));
    }
    llmrt_gptq8_matrix c;
    LLMRT_TRY(llmrt_gptq8_convert(cfg, file, prefix, &t, rows, cols, &caps, &c, why, sizeof why,
                                  err));
    LLMRT_TRY(llmrt_model_keep_host(m, c.data, err));
    llmrt_dtype dt = c.dtype;
    if (dt == LLMRT_DTYPE_F32 && !m->no_q4 && m->n_fallbacks++ == 0)
        snprintf(m->fallback_why, sizeof m->fallback_why, "8-bit GPTQ: %.95s", why);
    *out = (llmrt_host_tensor){
        .dtype = dt, .rows = rows, .cols = cols, .data = c.data, .perm = c.perm};
    *found = true;
    return LLMRT_OK;
}

static llmrt_status hf_get(void *ctx, struct llmrt_rank_model *m, const char *name, int64_t rows,
                           int64_t cols, bool optional, llmrt_host_tensor *out, bool *found,
                           llmrt_error *err) {
    hf_source             *hs   = ctx;
    const char            *file = hs->dir;
    const llmrt_st_tensor *t    = find_tensor(m, hs, name, &file);
    if (!t && cols && hs->gptq.enabled && module_bits(hs, name) == 8)
        return hf_get_gptq8(hs, m, name, rows, cols, optional, out, found, err);
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
    out->perm  = NULL;
    if ((uint64_t)out->rows != t->shape[0] || (cols && (uint64_t)out->cols != t->shape[1]))
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s is too large", file, name);
    return LLMRT_OK;
}

static llmrt_status hf_get_q4(void *ctx, struct llmrt_rank_model *m, const char *name, int64_t rows,
                              int64_t cols, llmrt_q4_tensor *out, bool *found, llmrt_error *err) {
    hf_source *hs = ctx;
    *found        = false;
    char prefix[256], tname[300];
    if (!linear_prefix(name, prefix, sizeof prefix)) return LLMRT_OK;
    const char            *file = hs->dir;
    llmrt_gptq_tensors     t;
    find_gptq(m, hs, prefix, &t, &file);
    if (!t.qweight) return LLMRT_OK; /* stored unquantized (or missing: get reports it) */
    if (!hs->gptq.enabled) {
        snprintf(tname, sizeof tname, "%s.qweight", prefix);
        return llmrt_err(err, LLMRT_ERR_FORMAT,
                         "%s: tensor %s is quantized but the checkpoint has no quantization_config "
                         "(config.json) or quantize_config.json", file, tname);
    }
    const llmrt_gptq_config *cfg = module_config(hs, name);
    if (!cfg)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %s.qweight: a \"-:\" dynamic "
                         "rule says %s is not quantized", file, prefix, prefix);
    if (cfg->bits != 4) return LLMRT_OK; /* 8-bit: `get` converts it (gptq8.h) */
    if (cfg->awq) LLMRT_TRY(llmrt_awq_convert(cfg, file, prefix, &t, rows, cols, out, err));
    else LLMRT_TRY(llmrt_gptq_convert(cfg, file, prefix, &t, rows, cols, out, err));
    *found = true;
    return LLMRT_OK;
}

/* Opens every distinct shard named by the index's weight_map. */
static llmrt_status open_shards(struct llmrt_rank_model *m, hf_source *hs, const char *index_path,
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

/* A layer's tensors past num_hidden_layers would be left out of the forward: the checkpoint does
 * not hold the model config.json describes. */
static llmrt_status check_layer_count(const struct llmrt_rank_model *m, llmrt_error *err) {
    static const char prefix[] = "model.layers.";
    const size_t      plen     = sizeof prefix - 1;
    for (int32_t f = 0; f < m->n_st_files; f++)
        for (int64_t i = 0; i < m->st_files[f].n_tensors; i++) {
            const char *name = m->st_files[f].tensors[i].name;
            if (strncmp(name, prefix, plen) != 0 || name[plen] < '0' || name[plen] > '9') continue;
            char *end;
            long  layer = strtol(name + plen, &end, 10);
            if (*end == '.' && layer >= m->cfg.n_layers)
                return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                                 "%s: tensor %s belongs to layer %ld, but config.json "
                                 "num_hidden_layers is %d (layers 0..%d)",
                                 m->st_files[f].path, name, layer, m->cfg.n_layers,
                                 m->cfg.n_layers - 1);
        }
    return LLMRT_OK;
}

llmrt_status llmrt_model_open_hf(struct llmrt_rank_model *m, const char *dir, llmrt_error *err) {
    LLMRT_TRY(llmrt_config_load_hf_dir(dir, &m->cfg, err));
    hf_source hs = {.dir = dir};
    LLMRT_TRY(llmrt_gptq_config_load(dir, &hs.gptq, err));
    char      path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    int          sharded = llmrt_probe_regular_file(path, err);
    llmrt_status s;
    if (sharded < 0) {
        s = LLMRT_ERR_IO;
    } else if (sharded) {
        s = open_shards(m, &hs, path, err);
    } else {
        /* older AutoGPTQ exports name their one file in quantize_config.json (gptq.h); a
         * model.safetensors next to it wins (llmrt.quantize writes the base name "model") */
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        if (hs.gptq.weights_file[0]) {
            int plain = llmrt_probe_regular_file(path, err);
            if (plain < 0) return LLMRT_ERR_IO;
            if (!plain) snprintf(path, sizeof path, "%s/%s", dir, hs.gptq.weights_file);
        }
        m->st_files = calloc(1, sizeof *m->st_files);
        s           = m->st_files ? llmrt_safetensors_open(path, &m->st_files[0], err)
                                  : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "out of memory");
        if (s == LLMRT_OK) m->n_st_files = 1;
    }
    if (s == LLMRT_OK) s = check_layer_count(m, err);
    if (s == LLMRT_OK) {
        llmrt_weight_source src = {.ctx = &hs, .what = dir, .get = hf_get, .get_q4 = hf_get_q4};
        s = llmrt_model_load_weights(m, &src, err);
    }
    cJSON_Delete(hs.index_root);
    return s;
}
