/* HF config.json parsing (internal API): every field of a valid Llama config, defaults, the
 * transformers-5 `rope_parameters` layout, linear and llama3 RoPE scaling (inv_freq checked against
 * an independent fp64 transcription of transformers' `_compute_llama3_parameters`),
 * generation_config.json overrides, and one case per rejected input, each checked for its status
 * and for a message naming the key at fault. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/config.h"
#include "test_util.h"


static const char *const base_config =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 320,"
    " \"hidden_size\": 64, \"intermediate_size\": 160, \"num_hidden_layers\": 3,"
    " \"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-05,"
    " \"rope_theta\": 500000.0, \"max_position_embeddings\": 256, \"tie_word_embeddings\": true,"
    " \"bos_token_id\": 1, \"eos_token_id\": 2, \"torch_dtype\": \"bfloat16\"}";

/* The base config with edits: pairs of (key, JSON value text or NULL to remove), NULL-ended.
 * Returns malloc'd text. */
static char *config_with(const char *key, ...) {
    cJSON  *root = cJSON_Parse(base_config);
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k; k = va_arg(ap, const char *)) {
        const char *val = va_arg(ap, const char *);
        cJSON_DeleteItemFromObjectCaseSensitive(root, k);
        if (val) cJSON_AddItemToObject(root, k, cJSON_Parse(val));
    }
    va_end(ap);
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

static llmrt_status parse_text(const char *json, llmrt_model_config *cfg, llmrt_error *err) {
    memset(err, 0, sizeof *err);
    return llmrt_config_parse_hf(json, strlen(json), "test/config.json", cfg, err);
}

/* Parses the base config with edits (see config_with). */
static llmrt_status parse_edit(llmrt_model_config *cfg, llmrt_error *err, const char *key,
                               const char *val) {
    char        *text = config_with(key, val, NULL);
    llmrt_status s    = parse_text(text, cfg, err);
    free(text);
    return s;
}

/* The base config with key's value replaced by raw JSON text, written as is (cJSON prints a
 * number such as 1e999, which parses as inf, as null). */
static llmrt_status parse_raw(llmrt_model_config *cfg, llmrt_error *err, const char *key,
                              const char *raw) {
    char        *text = config_with(key, "\"@RAW@\"", NULL);
    char        *at   = strstr(text, "\"@RAW@\"");
    size_t       n    = strlen(text) + strlen(raw) + 1;
    char        *out  = malloc(n);
    llmrt_status s    = LLMRT_ERR_OUT_OF_MEMORY;
    if (at && out) {
        snprintf(out, n, "%.*s%s%s", (int)(at - text), text, raw, at + strlen("\"@RAW@\""));
        s = parse_text(out, cfg, err);
    }
    free(out);
    free(text);
    return s;
}

// --- valid configs ----------------------------------------------------------------------------

static void test_valid_llama(void) {
    llmrt_model_config c;
    llmrt_error        err;
    CHECK_ERROR(parse_text(base_config, &c, &err), err, LLMRT_OK, "");
    CHECK(strcmp(c.architecture, "LlamaForCausalLM") == 0);
    CHECK(c.vocab_size == 320 && c.hidden_size == 64 && c.intermediate_size == 160);
    CHECK(c.n_layers == 3 && c.n_heads == 4 && c.n_kv_heads == 2);
    CHECK(c.head_dim == 16); /* default hidden / heads */
    CHECK(c.max_context == 256);
    CHECK(fabsf(c.rms_norm_eps - 1e-5f) < 1e-12f);
    CHECK(c.rope_theta == 500000.0 && c.rope_type == LLMRT_ROPE_DEFAULT);
    CHECK(c.tie_word_embeddings);
    CHECK(c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 2);
    CHECK(c.torch_dtype == LLMRT_DTYPE_BF16);
}

static void test_explicit_head_dim_and_eos_list(void) {
    llmrt_model_config c;
    llmrt_error        err;
    char *text = config_with("head_dim", "32", "eos_token_id", "[2, 5, 7]", "torch_dtype", NULL,
                             "dtype", "\"float16\"", NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_OK, "");
    free(text);
    CHECK(c.head_dim == 32); /* differs from hidden / heads (16): allowed */
    CHECK(c.n_eos == 3 && c.eos_token_ids[0] == 2 && c.eos_token_ids[1] == 5 &&
          c.eos_token_ids[2] == 7);
    CHECK(c.torch_dtype == LLMRT_DTYPE_F16); /* transformers 5 writes "dtype" */

    text = config_with("torch_dtype", "\"float32\"", "eos_token_id", "[]", NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_OK, "");
    free(text);
    CHECK(c.torch_dtype == LLMRT_DTYPE_F32 && c.n_eos == 0);
}

static void test_defaults(void) {
    llmrt_model_config c;
    llmrt_error        err;
    char *text = config_with("num_key_value_heads", NULL, "max_position_embeddings", NULL,
                             "rope_theta", NULL, "rms_norm_eps", NULL, "tie_word_embeddings",
                             NULL, "bos_token_id", "null", "eos_token_id", NULL, "torch_dtype",
                             NULL, "architectures", NULL, NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_OK, "");
    free(text);
    CHECK(strcmp(c.architecture, "llama") == 0); /* from model_type */
    CHECK(c.n_kv_heads == 4 && c.max_context == 2048 && c.rope_theta == 10000.0);
    CHECK(fabsf(c.rms_norm_eps - 1e-6f) < 1e-12f);
    CHECK(!c.tie_word_embeddings && c.bos_token_id == -1 && c.n_eos == 0);
    CHECK(c.torch_dtype == LLMRT_DTYPE_INVALID);

    CHECK_ERROR(parse_edit(&c, &err, "architectures", "[\"MistralForCausalLM\"]"), err, LLMRT_OK, "");
    CHECK_ERROR(parse_edit(&c, &err, "sliding_window", "256"), err, LLMRT_OK, "");
    CHECK_ERROR(parse_edit(&c, &err, "sliding_window", "null"), err, LLMRT_OK, "");
}

// --- RoPE -------------------------------------------------------------------------------------

/* fp64 reference of transformers' default and llama3 inv_freq; regions[0..2] counts the
 * high-frequency (kept), medium (smoothed) and low-frequency (divided) dimensions. */
static void ref_inv_freq(const llmrt_model_config *c, double *out, int regions[3]) {
    int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double inv = 1.0 / pow(c->rope_theta, (double)(2 * i) / (double)c->head_dim);
        if (c->rope_type == LLMRT_ROPE_LINEAR) inv /= c->rope_factor;
        if (c->rope_type == LLMRT_ROPE_LLAMA3) {
            double old_ctx = c->rope_original_max_pos;
            double low_wl = old_ctx / c->rope_low_freq_factor;
            double high_wl = old_ctx / c->rope_high_freq_factor;
            double wavelen = 2.0 * M_PI / inv;
            if (wavelen < high_wl) {
                regions[0]++;
            } else if (wavelen > low_wl) {
                inv /= c->rope_factor;
                regions[2]++;
            } else {
                double smooth = (old_ctx / wavelen - c->rope_low_freq_factor) /
                                (c->rope_high_freq_factor - c->rope_low_freq_factor);
                inv = (1.0 - smooth) * inv / c->rope_factor + smooth * inv;
                regions[1]++;
            }
        }
        out[i] = inv;
    }
}

/* The library follows HF's float32 base ** exponent; 1e-6 relative covers that rounding. */
static void check_inv_freq(const llmrt_model_config *c, const char *what, int regions[3]) {
    double got[2048], want[2048];
    regions[0] = regions[1] = regions[2] = 0;
    llmrt_config_rope_inv_freq(c, got);
    ref_inv_freq(c, want, regions);
    double worst = 0;
    for (int i = 0; i < c->head_dim / 2; i++) {
        double rel = fabs(got[i] - want[i]) / want[i];
        if (!(rel <= worst)) worst = rel;
    }
    CHECK_MSG(worst < 1e-6, "%s: inv_freq max relative error %.3g", what, worst);
}

static void test_rope_parameters_v5(void) {
    llmrt_model_config c;
    llmrt_error        err;
    int                regions[3];
    char *text = config_with("rope_theta", NULL, "rope_parameters",
                             "{\"rope_type\": \"default\", \"rope_theta\": 50000.0}", NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_OK, "");
    free(text);
    CHECK(c.rope_theta == 50000.0 && c.rope_type == LLMRT_ROPE_DEFAULT);
    check_inv_freq(&c, "default", regions);

    text = config_with("rope_theta", NULL, "rope_scaling", "null", "rope_parameters",
                       "{\"rope_type\": \"linear\", \"rope_theta\": 50000.0, \"factor\": 4.0}",
                       NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_OK, "");
    free(text);
    CHECK(c.rope_theta == 50000.0 && c.rope_type == LLMRT_ROPE_LINEAR && c.rope_factor == 4.0);
    check_inv_freq(&c, "linear (rope_parameters)", regions);
}

static void test_rope_scaling_linear(void) {
    llmrt_model_config c;
    llmrt_error        err;
    int                regions[3];
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}"),
              err, LLMRT_OK, "");
    CHECK(c.rope_type == LLMRT_ROPE_LINEAR && c.rope_factor == 2.0 && c.rope_theta == 500000.0);
    check_inv_freq(&c, "linear", regions);
}

static void test_rope_scaling_llama3(void) {
    llmrt_model_config c;
    llmrt_error        err;
    int                regions[3];
    /* the tiny fixture's values: wavelengths 6.3 (kept), 19.9 (smoothed), 62.8 (divided), ... */
    char *text = config_with("rope_theta", "10000.0", "rope_scaling",
                             "{\"factor\": 8.0, \"high_freq_factor\": 4.0,"
                             " \"low_freq_factor\": 1.0,"
                             " \"original_max_position_embeddings\": 32,"
                             " \"rope_type\": \"llama3\"}",
                             NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_OK, "");
    free(text);
    CHECK(c.rope_type == LLMRT_ROPE_LLAMA3 && c.rope_factor == 8.0);
    CHECK(c.rope_low_freq_factor == 1.0 && c.rope_high_freq_factor == 4.0);
    CHECK(c.rope_original_max_pos == 32);
    check_inv_freq(&c, "llama3 tiny", regions);
    CHECK_MSG(regions[0] > 0 && regions[1] > 0 && regions[2] > 0, "regions %d %d %d", regions[0],
              regions[1], regions[2]);

    /* Llama 3.1 8B: theta 500000, head_dim 128, original context 8192 */
    text = config_with("hidden_size", "4096", "num_attention_heads", "32", "num_key_value_heads",
                       "8", "max_position_embeddings", "131072", "rope_scaling",
                       "{\"factor\": 8.0, \"high_freq_factor\": 4.0, \"low_freq_factor\": 1.0,"
                       " \"original_max_position_embeddings\": 8192, \"rope_type\": \"llama3\"}",
                       NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_OK, "");
    free(text);
    CHECK(c.head_dim == 128);
    check_inv_freq(&c, "llama3 8B", regions);
    CHECK_MSG(regions[0] > 0 && regions[1] > 0 && regions[2] > 0, "regions %d %d %d", regions[0],
              regions[1], regions[2]);
}

// --- directories (config.json + generation_config.json) ---------------------------------------

static void write_text(const char *dir, const char *name, const char *text) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static void remove_in(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static void test_load_dir(void) {
    char dir[] = "/tmp/llmrt_test_config_XXXXXX";
    if (!mkdtemp(dir)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    llmrt_model_config c;
    llmrt_error        err = {0};
    CHECK_ERROR(llmrt_config_load_hf_dir(dir, &c, &err), err, LLMRT_ERR_IO, "config.json");

    write_text(dir, "config.json", base_config);
    CHECK_ERROR(llmrt_config_load_hf_dir(dir, &c, &err), err, LLMRT_OK, "");
    CHECK(c.n_eos == 1 && c.eos_token_ids[0] == 2 && c.bos_token_id == 1);

    write_text(dir, "generation_config.json",
               "{\"bos_token_id\": 3, \"eos_token_id\": [2, 7, 9], \"do_sample\": true}");
    memset(&err, 0, sizeof err);
    CHECK_ERROR(llmrt_config_load_hf_dir(dir, &c, &err), err, LLMRT_OK, "");
    CHECK(c.bos_token_id == 3);
    CHECK(c.n_eos == 3 && c.eos_token_ids[0] == 2 && c.eos_token_ids[1] == 7 &&
          c.eos_token_ids[2] == 9);

    /* generation_config without ids keeps config.json's */
    write_text(dir, "generation_config.json", "{\"temperature\": 0.6}");
    CHECK_ERROR(llmrt_config_load_hf_dir(dir, &c, &err), err, LLMRT_OK, "");
    CHECK(c.bos_token_id == 1 && c.n_eos == 1 && c.eos_token_ids[0] == 2);

    write_text(dir, "generation_config.json", "{\"eos_token_id\": [2, 320]}");
    CHECK_ERROR(llmrt_config_load_hf_dir(dir, &c, &err), err, LLMRT_ERR_FORMAT,
              "generation_config.json");
    CHECK(strstr(err.msg, "eos_token_id") != NULL);
    write_text(dir, "generation_config.json", "[2]");
    CHECK_ERROR(llmrt_config_load_hf_dir(dir, &c, &err), err, LLMRT_ERR_FORMAT,
              "generation_config.json");
    write_text(dir, "generation_config.json", "{\"eos_token_id\": \"2\"}");
    CHECK_ERROR(llmrt_config_load_hf_dir(dir, &c, &err), err, LLMRT_ERR_FORMAT, "eos_token_id");

    write_text(dir, "config.json", "{\"vocab_size\": 320,");
    CHECK_ERROR(llmrt_config_load_hf_dir(dir, &c, &err), err, LLMRT_ERR_FORMAT, "config.json");

    remove_in(dir, "generation_config.json");
    remove_in(dir, "config.json");
    rmdir(dir);
}

// --- rejected inputs --------------------------------------------------------------------------

static void test_bad_fields(void) {
    llmrt_model_config c;
    llmrt_error        err;
    char              *text = config_with("hidden_size", NULL, NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_ERR_MODEL_MISMATCH, "\"hidden_size\"");
    CHECK(strstr(err.msg, "test/config.json") != NULL); /* names the file */
    free(text);
    CHECK_ERROR(parse_edit(&c, &err, "vocab_size", "\"320\""), err, LLMRT_ERR_FORMAT, "vocab_size");
    CHECK_ERROR(parse_edit(&c, &err, "vocab_size", "320.5"), err, LLMRT_ERR_FORMAT, "vocab_size");
    CHECK_ERROR(parse_edit(&c, &err, "num_hidden_layers", "-3"), err, LLMRT_ERR_FORMAT,
              "num_hidden_layers");
    CHECK_ERROR(parse_edit(&c, &err, "intermediate_size", "0"), err, LLMRT_ERR_FORMAT,
              "intermediate_size");
    CHECK_ERROR(parse_edit(&c, &err, "num_key_value_heads", "3"), err, LLMRT_ERR_FORMAT,
              "num_key_value_heads");
    CHECK_ERROR(parse_edit(&c, &err, "head_dim", "15"), err, LLMRT_ERR_FORMAT, "head_dim");
    CHECK_ERROR(parse_edit(&c, &err, "head_dim", "8192"), err, LLMRT_ERR_FORMAT, "head_dim");
    /* derived from hidden / heads (44464 / 8 = 5558): the same bound as the explicit key */
    char *big = config_with("hidden_size", "44464", "num_attention_heads", "8",
                            "num_key_value_heads", NULL, NULL);
    CHECK_ERROR(parse_text(big, &c, &err), err, LLMRT_ERR_FORMAT, "head_dim");
    free(big);
    CHECK_ERROR(parse_edit(&c, &err, "tie_word_embeddings", "1"), err, LLMRT_ERR_FORMAT,
              "tie_word_embeddings");
    CHECK_ERROR(parse_edit(&c, &err, "rope_theta", "0"), err, LLMRT_ERR_FORMAT, "rope_theta");
    CHECK_ERROR(parse_edit(&c, &err, "bos_token_id", "320"), err, LLMRT_ERR_FORMAT, "bos_token_id");
    CHECK_ERROR(parse_edit(&c, &err, "eos_token_id", "320"), err, LLMRT_ERR_FORMAT, "eos_token_id");
    CHECK_ERROR(parse_edit(&c, &err, "eos_token_id", "[2, -1]"), err, LLMRT_ERR_FORMAT,
              "eos_token_id");
    CHECK_ERROR(parse_edit(&c, &err, "eos_token_id", "[1, 2, 3, 4, 5, 6, 7, 8, 9]"), err,
              LLMRT_ERR_UNSUPPORTED, "eos_token_id");
    CHECK_ERROR(parse_edit(&c, &err, "eos_token_id", "[1, 2, 3, 4, 5, 6, 7, 8]"), err, LLMRT_OK, "");
    CHECK(c.n_eos == 8);
    /* hidden 66 / 4 heads and no head_dim: no head size can be derived; the message names the
     * fields (it said "model dimensions must be positive") */
    CHECK_ERROR(parse_edit(&c, &err, "hidden_size", "66"), err, LLMRT_ERR_FORMAT,
                "hidden_size 66 is not a multiple of num_attention_heads 4");
    /* values that reach the math: finite and in range, refused by name before any float
     * conversion (1e999 parses as inf) */
    CHECK_ERROR(parse_raw(&c, &err, "rope_theta", "1e999"), err, LLMRT_ERR_FORMAT, "rope_theta");
    CHECK_ERROR(parse_edit(&c, &err, "rope_theta", "-5"), err, LLMRT_ERR_FORMAT, "rope_theta");
    CHECK_ERROR(parse_edit(&c, &err, "rms_norm_eps", "1e300"), err, LLMRT_ERR_FORMAT,
                "rms_norm_eps");
    CHECK_ERROR(parse_edit(&c, &err, "rms_norm_eps", "0"), err, LLMRT_ERR_FORMAT, "rms_norm_eps");
    CHECK_ERROR(parse_raw(&c, &err, "rope_scaling", "{\"rope_type\": \"linear\", \"factor\": 1e999}"),
                err, LLMRT_ERR_FORMAT, "\"factor\" must be a finite number");
    CHECK_ERROR(parse_raw(&c, &err, "rope_scaling", "{\"rope_type\": \"linear\", \"factor\": -2}"),
                err, LLMRT_ERR_FORMAT, "rope_scaling.factor");
}

static void test_unsupported(void) {
    llmrt_model_config c;
    llmrt_error        err;
    CHECK_ERROR(parse_edit(&c, &err, "architectures", "[\"GPT2LMHeadModel\"]"), err,
              LLMRT_ERR_UNSUPPORTED, "GPT2LMHeadModel");
    char *text = config_with("architectures", NULL, "model_type", "\"gpt2\"", NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_ERR_UNSUPPORTED, "gpt2");
    free(text);
    text = config_with("architectures", NULL, "model_type", NULL, NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_ERR_MODEL_MISMATCH, "architectures");
    free(text);
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}"),
              err, LLMRT_ERR_UNSUPPORTED, "yarn");
    /* Phi-3 style longrope has no "factor": still named as unsupported, not a missing key */
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling",
                         "{\"type\": \"longrope\", \"short_factor\": [1.0],"
                         " \"long_factor\": [2.0]}"),
              err, LLMRT_ERR_UNSUPPORTED, "longrope");
    /* the variants (issue 16): a sliding window is kept, biases flagged, the rest refused */
    CHECK(parse_edit(&c, &err, "sliding_window", "128") == LLMRT_OK);
    CHECK(c.sliding_window == 128 && !c.qkv_bias && !c.o_bias && !c.mlp_bias);
    CHECK(parse_edit(&c, &err, "sliding_window", "1000000") == LLMRT_OK);
    CHECK(c.sliding_window == 0); /* >= the context: no window */
    CHECK(parse_edit(&c, &err, "attention_bias", "true") == LLMRT_OK);
    CHECK(c.qkv_bias && c.o_bias && !c.mlp_bias);
    CHECK(parse_edit(&c, &err, "mlp_bias", "true") == LLMRT_OK);
    CHECK(!c.qkv_bias && !c.o_bias && c.mlp_bias);
    CHECK_ERROR(parse_edit(&c, &err, "hidden_act", "\"gelu\""), err, LLMRT_ERR_UNSUPPORTED,
              "hidden_act");
    CHECK_ERROR(parse_edit(&c, &err, "partial_rotary_factor", "0.5"), err, LLMRT_ERR_UNSUPPORTED,
              "partial_rotary_factor");
    CHECK(parse_edit(&c, &err, "architectures", "[\"Qwen2ForCausalLM\"]") == LLMRT_OK);
    CHECK(c.qkv_bias && !c.o_bias && !c.mlp_bias && c.sliding_window == 0);
    text = config_with("architectures", "[\"Qwen2ForCausalLM\"]", "use_sliding_window", "true",
                       NULL);
    CHECK_ERROR(parse_text(text, &c, &err), err, LLMRT_ERR_UNSUPPORTED, "use_sliding_window");
    free(text);
    /* a window too big to represent is no window at all (and no undefined conversion) */
    CHECK_ERROR(parse_edit(&c, &err, "sliding_window", "9223372036854775807"), err,
              LLMRT_ERR_FORMAT, "sliding_window");
}

static void test_bad_rope(void) {
    llmrt_model_config c;
    llmrt_error        err;
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling",
                         "{\"factor\": 8.0, \"high_freq_factor\": 4.0,"
                         " \"original_max_position_embeddings\": 32, \"rope_type\": \"llama3\"}"),
              err, LLMRT_ERR_MODEL_MISMATCH, "low_freq_factor");
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling",
                         "{\"factor\": 8.0, \"high_freq_factor\": 1.0, \"low_freq_factor\": 1.0,"
                         " \"original_max_position_embeddings\": 32, \"rope_type\": \"llama3\"}"),
              err, LLMRT_ERR_FORMAT, "high_freq_factor");
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling", "{\"type\": \"linear\", \"factor\": 0}"), err,
              LLMRT_ERR_FORMAT, "factor");
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling", "{\"type\": \"linear\"}"), err,
              LLMRT_ERR_MODEL_MISMATCH, "factor");
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling", "{\"factor\": 2.0}"), err, LLMRT_ERR_FORMAT,
              "rope_type");
    CHECK_ERROR(parse_edit(&c, &err, "rope_scaling", "[1]"), err, LLMRT_ERR_FORMAT, "rope_scaling");
    CHECK_ERROR(parse_edit(&c, &err, "rope_parameters", "{\"rope_type\": \"default\", "
                                                      "\"rope_theta\": \"big\"}"),
              err, LLMRT_ERR_FORMAT, "rope_theta");
}

static void test_bad_json(void) {
    llmrt_model_config c;
    llmrt_error        err;
    CHECK_ERROR(parse_text("{\"hidden_size\": 64, \"vocab_size\": 320, \"hidden_size\": 32}", &c,
                         &err),
              err, LLMRT_ERR_FORMAT, "duplicate JSON key \"hidden_size\"");
    CHECK_ERROR(parse_text("{\"rope_scaling\": {\"factor\": 1, \"factor\": 2}}", &c, &err), err,
              LLMRT_ERR_FORMAT, "duplicate JSON key \"factor\"");
    CHECK_ERROR(parse_text("{\"hidden_size\": 64,", &c, &err), err, LLMRT_ERR_FORMAT,
              "invalid JSON");
    CHECK_ERROR(parse_text("", &c, &err), err, LLMRT_ERR_FORMAT, "test/config.json");
    CHECK_ERROR(parse_text("{} x", &c, &err), err, LLMRT_ERR_FORMAT, "trailing");
    CHECK_ERROR(parse_text("[1, 2]", &c, &err), err, LLMRT_ERR_FORMAT, "must be an object");
    CHECK_ERROR(parse_text("\"LlamaForCausalLM\"", &c, &err), err, LLMRT_ERR_FORMAT,
              "must be an object");
    CHECK_ERROR(parse_text("{\"model_type\": \"ll\xff\"}", &c, &err), err, LLMRT_ERR_FORMAT,
              "UTF-8");
    memset(&err, 0, sizeof err);
    CHECK_ERROR(llmrt_config_parse_hf("{\"a\": 1}\0{}", 11, "nul.json", &c, &err), err,
              LLMRT_ERR_FORMAT, "NUL");
    /* the length bounds the parse: no NUL terminator needed */
    char text[16] = "[1]xxxxxxxxxxxx";
    memset(&err, 0, sizeof err);
    CHECK_ERROR(llmrt_config_parse_hf(text, 3, "len.json", &c, &err), err, LLMRT_ERR_FORMAT,
              "must be an object");
}

int main(void) {
    test_valid_llama();
    test_explicit_head_dim_and_eos_list();
    test_defaults();
    test_rope_parameters_v5();
    test_rope_scaling_linear();
    test_rope_scaling_llama3();
    test_load_dir();
    test_bad_fields();
    test_unsupported();
    test_bad_rope();
    test_bad_json();
    return test_summary("test_config");
}
