#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/json_util.h"
#include "../core/regular_file.h"

#define CONFIG_MAX_BYTES (4u << 20)
#define MAX_DIM          (1 << 20)  /* bigger than any real hidden / ffn size */
#define MAX_VOCAB        (1 << 22)
#define MAX_LAYERS       1024
#define MAX_HEADS        1024
#define MAX_HEAD_DIM     4096

/* bos/eos may be an integer or a list of integers. */
static llmrt_status parse_token_ids(const cJSON *root, const char *key, int32_t *ids, int32_t *n,
                                    int32_t max, const char *what, llmrt_error *err) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!item || cJSON_IsNull(item)) return LLMRT_OK;
    const cJSON *list[LLMRT_MAX_EOS_IDS];
    int32_t      count = 0;
    if (cJSON_IsArray(item)) {
        for (const cJSON *c = item->child; c; c = c->next) {
            if (count == max)
                return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: \"%s\" lists more than %d ids",
                                 what, key, max);
            list[count++] = c;
        }
    } else {
        list[count++] = item;
    }
    for (int32_t i = 0; i < count; i++) {
        double v = list[i]->valuedouble;
        if (!cJSON_IsNumber(list[i]) || v != floor(v) || v < 0 || v > MAX_VOCAB)
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"%s\" must hold token ids", what, key);
        ids[i] = (int32_t)v;
    }
    *n = count;
    return LLMRT_OK;
}

/* transformers <= 4 writes rope_theta + rope_scaling; transformers 5 writes one
 * "rope_parameters" object holding rope_type, rope_theta and the scaling fields. */
static llmrt_status parse_rope_scaling(const cJSON *root, llmrt_model_config *cfg,
                                       const char *what, llmrt_error *err) {
    const char  *key = "rope_scaling";
    const cJSON *rs  = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!rs || cJSON_IsNull(rs)) {
        key = "rope_parameters";
        rs  = cJSON_GetObjectItemCaseSensitive(root, key);
        if (cJSON_IsObject(rs))
            LLMRT_TRY(llmrt_json_get_double(rs, "rope_theta", false, &cfg->rope_theta, what, err));
    }
    if (!rs || cJSON_IsNull(rs)) return LLMRT_OK;
    if (!cJSON_IsObject(rs))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"%s\" must be an object", what, key);
    const char *type = NULL;
    LLMRT_TRY(llmrt_json_get_string(rs, "rope_type", false, &type, what, err));
    if (!type) LLMRT_TRY(llmrt_json_get_string(rs, "type", false, &type, what, err));
    if (!type)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s has no \"rope_type\"", what, key);
    if (strcmp(type, "default") == 0) return LLMRT_OK;
    if (strcmp(type, "linear") != 0 && strcmp(type, "llama3") != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: %s type \"%s\" is not supported (supported: linear, llama3)",
                         what, key, type);
    char field[64];
    LLMRT_TRY(llmrt_json_get_double(rs, "factor", true, &cfg->rope_factor, what, err));
    snprintf(field, sizeof field, "%s.factor", key);
    LLMRT_TRY(llmrt_config_check_real(cfg->rope_factor, 0, false, LLMRT_MAX_ROPE_FACTOR, what, field,
                                      err));
    if (strcmp(type, "linear") == 0) {
        cfg->rope_type = LLMRT_ROPE_LINEAR;
    } else {
        cfg->rope_type = LLMRT_ROPE_LLAMA3;
        LLMRT_TRY(llmrt_json_get_double(rs, "low_freq_factor", true, &cfg->rope_low_freq_factor,
                                        what, err));
        LLMRT_TRY(llmrt_json_get_double(rs, "high_freq_factor", true, &cfg->rope_high_freq_factor,
                                        what, err));
        LLMRT_TRY(llmrt_json_get_i32(rs, "original_max_position_embeddings", true, 1, INT32_MAX,
                                     &cfg->rope_original_max_pos, what, err));
        snprintf(field, sizeof field, "%s.low_freq_factor", key);
        LLMRT_TRY(llmrt_config_check_real(cfg->rope_low_freq_factor, 0, false, LLMRT_MAX_ROPE_FACTOR,
                                          what, field, err));
        snprintf(field, sizeof field, "%s.high_freq_factor", key);
        LLMRT_TRY(llmrt_config_check_real(cfg->rope_high_freq_factor, 0, false, LLMRT_MAX_ROPE_FACTOR,
                                          what, field, err));
        if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
            return llmrt_err(err, LLMRT_ERR_FORMAT,
                             "%s: %s needs high_freq_factor > low_freq_factor", what, key);
    }
    return LLMRT_OK;
}

static llmrt_dtype dtype_from_torch(const char *s) {
    if (!s) return LLMRT_DTYPE_INVALID;
    if (!strcmp(s, "float32")) return LLMRT_DTYPE_F32;
    if (!strcmp(s, "float16")) return LLMRT_DTYPE_F16;
    if (!strcmp(s, "bfloat16")) return LLMRT_DTYPE_BF16;
    return LLMRT_DTYPE_INVALID;
}

/* The fields of a Llama-family config.json that change the math beyond the dimensions: the
 * biases, the sliding window, the activation. A value we do not implement is refused by name;
 * nothing that changes the result is ignored. */
static llmrt_status parse_variant(const cJSON *root, bool qwen2, llmrt_model_config *cfg,
                                  const char *what, llmrt_error *err) {
    const char *act = NULL;
    LLMRT_TRY(llmrt_json_get_string(root, "hidden_act", false, &act, what, err));
    if (act && strcmp(act, "silu") != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: hidden_act \"%s\" is not supported (supported: silu)", what, act);
    double partial = 1.0;
    LLMRT_TRY(llmrt_json_get_double(root, "partial_rotary_factor", false, &partial, what, err));
    if (partial != 1.0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: partial_rotary_factor %g is not supported (RoPE on every dim only)",
                         what, partial);
    int64_t tp = 1;
    LLMRT_TRY(llmrt_json_get_int(root, "pretraining_tp", false, 0, 1 << 20, &tp, what, err));
    /* pretraining_tp > 1 only splits HF's matmuls (same math up to rounding): accepted */
    if (qwen2) {
        /* Qwen2: q/k/v biases always, none on o or the MLP (Qwen2Attention, Qwen2MLP) */
        cfg->qkv_bias = true;
        bool use_window = false;
        LLMRT_TRY(llmrt_json_get_bool(root, "use_sliding_window", false, &use_window, what, err));
        if (use_window)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                             "%s: use_sliding_window true (Qwen2's window on the layers from "
                             "max_window_layers) is not supported", what);
        const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
        for (const cJSON *t = cJSON_IsArray(types) ? types->child : NULL; t; t = t->next)
            if (!cJSON_IsString(t) || strcmp(t->valuestring, "full_attention") != 0)
                return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                                 "%s: layer_types other than \"full_attention\" are not "
                                 "supported", what);
        return LLMRT_OK;
    }
    bool attn_bias = false;
    LLMRT_TRY(llmrt_json_get_bool(root, "attention_bias", false, &attn_bias, what, err));
    LLMRT_TRY(llmrt_json_get_bool(root, "mlp_bias", false, &cfg->mlp_bias, what, err));
    cfg->qkv_bias = cfg->o_bias = attn_bias;
    /* Mistral v0.1's sliding window (a window >= the context changes nothing) */
    int64_t window = 0;
    /* bound below 2^63: a double at INT64_MAX rounds to 2^63, which int64_t cannot hold */
    LLMRT_TRY(llmrt_json_get_int(root, "sliding_window", false, 0, INT64_C(1) << 53, &window, what,
                                 err));
    if (window > 0 && window < cfg->max_context) cfg->sliding_window = (int32_t)window;
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    for (const cJSON *t = cJSON_IsArray(types) ? types->child : NULL; t; t = t->next) {
        bool full = cJSON_IsString(t) && !strcmp(t->valuestring, "full_attention");
        bool slid = cJSON_IsString(t) && !strcmp(t->valuestring, "sliding_attention");
        if (!(full && !cfg->sliding_window) && !(slid && cfg->sliding_window))
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                             "%s: layer_types mixing full and sliding attention are not supported",
                             what);
    }
    return LLMRT_OK;
}

static llmrt_status parse_hf_root(const cJSON *root, const char *what, llmrt_model_config *cfg,
                                  llmrt_error *err) {
    if (!cJSON_IsObject(root))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: top level must be an object", what);
    memset(cfg, 0, sizeof *cfg);
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const char  *arch  = NULL;
    if (cJSON_IsArray(archs) && cJSON_IsString(archs->child)) arch = archs->child->valuestring;
    const char *model_type = NULL;
    LLMRT_TRY(llmrt_json_get_string(root, "model_type", false, &model_type, what, err));
    if (!arch && model_type) arch = model_type;
    if (!arch)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: no \"architectures\" or \"model_type\" key", what);
    bool qwen2 = !strcmp(arch, "Qwen2ForCausalLM") || !strcmp(arch, "qwen2");
    if (strcmp(arch, "LlamaForCausalLM") && strcmp(arch, "MistralForCausalLM") &&
        strcmp(arch, "llama") && strcmp(arch, "mistral") && !qwen2)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: architecture \"%s\" is not supported (supported: "
                         "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM)", what, arch);
    snprintf(cfg->architecture, sizeof cfg->architecture, "%s", arch);

    LLMRT_TRY(llmrt_json_get_i32(root, "vocab_size", true, 1, MAX_VOCAB, &cfg->vocab_size, what, err));
    LLMRT_TRY(llmrt_json_get_i32(root, "hidden_size", true, 1, MAX_DIM, &cfg->hidden_size, what, err));
    LLMRT_TRY(llmrt_json_get_i32(root, "intermediate_size", true, 1, MAX_DIM,
                                 &cfg->intermediate_size, what, err));
    LLMRT_TRY(llmrt_json_get_i32(root, "num_hidden_layers", true, 1, MAX_LAYERS, &cfg->n_layers,
                                 what, err));
    LLMRT_TRY(llmrt_json_get_i32(root, "num_attention_heads", true, 1, MAX_HEADS, &cfg->n_heads,
                                 what, err));
    cfg->n_kv_heads = cfg->n_heads;
    LLMRT_TRY(llmrt_json_get_i32(root, "num_key_value_heads", false, 1, MAX_HEADS,
                                 &cfg->n_kv_heads, what, err));
    LLMRT_TRY(llmrt_json_get_i32(root, "head_dim", false, 1, MAX_HEAD_DIM, &cfg->head_dim, what,
                                 err));
    LLMRT_TRY(llmrt_config_head_dim(cfg, cfg->head_dim > 0, what, "hidden_size",
                                    "num_attention_heads", "head_dim", err));
    cfg->max_context = 2048;
    LLMRT_TRY(llmrt_json_get_i32(root, "max_position_embeddings", false, 1, INT32_MAX,
                                 &cfg->max_context, what, err));
    double eps = 1e-6;
    LLMRT_TRY(llmrt_json_get_double(root, "rms_norm_eps", false, &eps, what, err));
    LLMRT_TRY(llmrt_config_check_real(eps, 0, false, 1, what, "rms_norm_eps", err));
    cfg->rms_norm_eps = (float)eps; /* in (0, 1]: checked */
    cfg->rope_theta   = 10000.0;
    LLMRT_TRY(llmrt_json_get_double(root, "rope_theta", false, &cfg->rope_theta, what, err));
    LLMRT_TRY(parse_rope_scaling(root, cfg, what, err));
    LLMRT_TRY(llmrt_config_check_real(cfg->rope_theta, 0, false, LLMRT_MAX_ROPE_THETA, what,
                                      "rope_theta", err));
    LLMRT_TRY(llmrt_json_get_bool(root, "tie_word_embeddings", false, &cfg->tie_word_embeddings,
                                  what, err));
    cfg->bos_token_id = -1;
    int32_t n_bos     = 0;
    LLMRT_TRY(parse_token_ids(root, "bos_token_id", &cfg->bos_token_id, &n_bos, 1, what, err));
    LLMRT_TRY(parse_token_ids(root, "eos_token_id", cfg->eos_token_ids, &cfg->n_eos,
                              LLMRT_MAX_EOS_IDS, what, err));
    const char *torch_dtype = NULL;
    LLMRT_TRY(llmrt_json_get_string(root, "torch_dtype", false, &torch_dtype, what, err));
    if (!torch_dtype) LLMRT_TRY(llmrt_json_get_string(root, "dtype", false, &torch_dtype, what, err));
    cfg->torch_dtype = dtype_from_torch(torch_dtype);
    LLMRT_TRY(parse_variant(root, qwen2, cfg, what, err));
    return llmrt_config_validate(cfg, what, err);
}

llmrt_status llmrt_config_parse_hf(const char *json, uint64_t len, const char *what,
                                   llmrt_model_config *cfg, llmrt_error *err) {
    cJSON *root;
    LLMRT_TRY(llmrt_json_parse(json, len, what, &root, err));
    llmrt_status s = parse_hf_root(root, what, cfg, err);
    cJSON_Delete(root);
    return s;
}

llmrt_status llmrt_config_load_hf_dir(const char *dir, llmrt_model_config *cfg, llmrt_error *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    cJSON *root;
    LLMRT_TRY(llmrt_json_parse_file(path, CONFIG_MAX_BYTES, &root, err));
    llmrt_status s = parse_hf_root(root, path, cfg, err);
    cJSON_Delete(root);
    if (s != LLMRT_OK) return s;

    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    int present = llmrt_probe_regular_file(path, err);
    if (present < 0) return LLMRT_ERR_IO;
    if (present == 0) return LLMRT_OK; /* optional */
    LLMRT_TRY(llmrt_json_parse_file(path, CONFIG_MAX_BYTES, &root, err));
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: top level must be an object", path);
    }
    int32_t bos = cfg->bos_token_id, n_bos = 0;
    s = parse_token_ids(root, "bos_token_id", &bos, &n_bos, 1, path, err);
    if (s == LLMRT_OK && n_bos) cfg->bos_token_id = bos;
    int32_t eos[LLMRT_MAX_EOS_IDS], n_eos = 0;
    if (s == LLMRT_OK) s = parse_token_ids(root, "eos_token_id", eos, &n_eos, LLMRT_MAX_EOS_IDS, path, err);
    if (s == LLMRT_OK && n_eos) {
        memcpy(cfg->eos_token_ids, eos, sizeof eos);
        cfg->n_eos = n_eos;
    }
    cJSON_Delete(root);
    if (s == LLMRT_OK) s = llmrt_config_validate(cfg, path, err);
    return s;
}

llmrt_status llmrt_config_check_real(double v, double lo, bool lo_closed, double hi,
                                     const char *what, const char *field, llmrt_error *err) {
    if (isfinite(v) && (lo_closed ? v >= lo : v > lo) && v <= hi) return LLMRT_OK;
    return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s must be a finite number in %s%g, %g], got %g",
                     what, field, lo_closed ? "[" : "(", lo, hi, v);
}

llmrt_status llmrt_config_head_dim(llmrt_model_config *cfg, bool head_dim_given, const char *what,
                                   const char *hidden_field, const char *heads_field,
                                   const char *head_dim_field, llmrt_error *err) {
    if (head_dim_given) return LLMRT_OK;
    if (cfg->n_heads <= 0 || cfg->hidden_size % cfg->n_heads != 0)
        return llmrt_err(err, LLMRT_ERR_FORMAT,
                         "%s: %s %d is not a multiple of %s %d, and no %s is given to say the "
                         "head dimension", what, hidden_field, cfg->hidden_size, heads_field,
                         cfg->n_heads, head_dim_field);
    cfg->head_dim = cfg->hidden_size / cfg->n_heads;
    return LLMRT_OK;
}

llmrt_status llmrt_config_validate(const llmrt_model_config *cfg, const char *what,
                                   llmrt_error *err) {
    const struct {
        const char *name;
        int32_t     v;
    } dims[] = {{"vocab_size", cfg->vocab_size},          {"hidden_size", cfg->hidden_size},
                {"intermediate_size", cfg->intermediate_size}, {"num_hidden_layers", cfg->n_layers},
                {"num_attention_heads", cfg->n_heads},    {"num_key_value_heads", cfg->n_kv_heads},
                {"head_dim", cfg->head_dim}};
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].v <= 0)
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s must be positive, got %d", what,
                             dims[i].name, dims[i].v);
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return llmrt_err(err, LLMRT_ERR_FORMAT,
                         "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d",
                         what, cfg->n_heads, cfg->n_kv_heads);
    if (cfg->head_dim % 2 != 0)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: head_dim %d must be even for RoPE", what,
                         cfg->head_dim);
    /* the same bound as an explicit head_dim key, also when derived from hidden / heads */
    if (cfg->head_dim > MAX_HEAD_DIM)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: head_dim %d is larger than %d", what,
                         cfg->head_dim, MAX_HEAD_DIM);
    if ((int64_t)cfg->n_heads * cfg->head_dim > MAX_DIM)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: num_attention_heads * head_dim too large",
                         what);
    /* the readers check these under the file's own key names; a config built otherwise (a
     * random model's params) is checked here */
    LLMRT_TRY(llmrt_config_check_real(cfg->rms_norm_eps, 0, false, 1, what, "rms_norm_eps", err));
    LLMRT_TRY(llmrt_config_check_real(cfg->rope_theta, 0, false, LLMRT_MAX_ROPE_THETA, what,
                                      "rope_theta", err));
    if (cfg->rope_type != LLMRT_ROPE_DEFAULT)
        LLMRT_TRY(llmrt_config_check_real(cfg->rope_factor, 0, false, LLMRT_MAX_ROPE_FACTOR, what,
                                          "rope scaling factor", err));
    if (cfg->max_context <= 0)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: max_position_embeddings must be > 0", what);
    if (cfg->bos_token_id >= cfg->vocab_size)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: bos_token_id %d >= vocab_size %d", what,
                         cfg->bos_token_id, cfg->vocab_size);
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos_token_ids[i] >= cfg->vocab_size)
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: eos_token_id %d >= vocab_size %d", what,
                             cfg->eos_token_ids[i], cfg->vocab_size);
    return LLMRT_OK;
}

void llmrt_config_rope_inv_freq(const llmrt_model_config *cfg, double *inv_freq) {
    int half = cfg->head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* HF computes base ** (arange(0, dim, 2) / dim) in float32 and inverts it. */
        float  exponent = (float)(2 * i) / (float)cfg->head_dim;
        double f        = 1.0 / (double)powf((float)cfg->rope_theta, exponent);
        if (cfg->rope_type == LLMRT_ROPE_LINEAR) {
            f /= cfg->rope_factor;
        } else if (cfg->rope_type == LLMRT_ROPE_LLAMA3) {
            double low_wavelen  = cfg->rope_original_max_pos / cfg->rope_low_freq_factor;
            double high_wavelen = cfg->rope_original_max_pos / cfg->rope_high_freq_factor;
            double wavelen      = 2.0 * M_PI / f;
            if (wavelen > low_wavelen) {
                f = f / cfg->rope_factor;
            } else if (wavelen >= high_wavelen) {
                double smooth = (cfg->rope_original_max_pos / wavelen - cfg->rope_low_freq_factor) /
                                (cfg->rope_high_freq_factor - cfg->rope_low_freq_factor);
                f = (1.0 - smooth) * f / cfg->rope_factor + smooth * f;
            }
        }
        if (cfg->rope_freq_factors) f /= (double)cfg->rope_freq_factors[i];
        inv_freq[i] = f;
    }
}
