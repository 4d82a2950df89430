/* Loading damaged checkpoints and misusing the model / KV-cache / forward API
 * (reference/reliability.md B6 rows 1-8 and 13). Each case copies a tiny fixture to a temp dir,
 * damages it and checks the status of llmrt_model_load and that llmrt_last_error() names the
 * tensor, key or file at fault. Forward validation failures must leave the KV cache untouched:
 * after each one a decode step that reads the cache gives the same logits, bit for bit.
 * The safetensors and GGUF files are rewritten from the library's own parse of the fixture (the
 * internal readers; no Python needed). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <ftw.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"
#include "format/safetensors.h"
#include "llmrt_experimental.h"
#include "test_util.h"

#define TINY LLMRT_TEST_DATA_DIR "/tiny"

// --- files ------------------------------------------------------------------------------------

static uint8_t *read_all(const char *path, uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n) buf[n] = 0;
    else free(buf), buf = NULL;
    fclose(f);
    *size = (uint64_t)n;
    return buf;
}

static bool write_all(const char *path, const void *data, uint64_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(data, 1, (size_t)size, f) == (size_t)size;
    return fclose(f) == 0 && ok;
}

/* Copies every regular file of src_dir into dst_dir. */
static bool copy_dir(const char *src_dir, const char *dst_dir) {
    DIR *d = opendir(src_dir);
    if (!d) return false;
    bool           ok = true;
    struct dirent *e;
    while ((e = readdir(d)) && ok) {
        if (e->d_name[0] == '.') continue;
        char src[1536], dst[1536];
        snprintf(src, sizeof src, "%s/%s", src_dir, e->d_name);
        snprintf(dst, sizeof dst, "%s/%s", dst_dir, e->d_name);
        uint64_t n;
        uint8_t *data = read_all(src, &n);
        ok = data && write_all(dst, data, n);
        free(data);
    }
    closedir(d);
    return ok;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    return remove(path);
}
static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* A fresh temp dir holding a copy of tests/data/tiny/<fixture> (NULL: empty). */
static bool make_copy(const char *fixture, char dir[64]) {
    snprintf(dir, 64, "/tmp/llmrt_test_errors_XXXXXX");
    if (!mkdtemp(dir)) return false;
    if (!fixture) return true;
    char src[1024];
    snprintf(src, sizeof src, "%s/%s", TINY, fixture);
    return copy_dir(src, dir);
}

/* Replaces the first occurrence of `old` in dir/name. */
static bool replace_in_file(const char *dir, const char *name, const char *old, const char *new_) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint64_t n;
    char    *text = (char *)read_all(path, &n);
    char    *at   = text ? strstr(text, old) : NULL;
    FILE    *f    = at ? fopen(path, "wb") : NULL;
    if (f) {
        fwrite(text, 1, (size_t)(at - text), f);
        fputs(new_, f);
        fputs(at + strlen(old), f);
        fclose(f);
    }
    free(text);
    return f != NULL;
}

// --- loading ----------------------------------------------------------------------------------

/* Loads `path` and expects `want`; each non-NULL needle must appear in the message. */
static void expect_load(const char *path, llmrt_load_format fmt, llmrt_status want,
                        const char *n1, const char *n2, const char *n3) {
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = 1;
    p.load_format        = fmt;
    llmrt_model *m       = NULL;
    CHECK_STATUS(llmrt_model_load(path, &p, &m), want, n1);
    const char *msg = llmrt_last_error();
    if (getenv("LLMRT_TEST_VERBOSE"))
        printf("load %s -> %s: %s\n", path, llmrt_status_str(want), msg);
    if (want != LLMRT_OK && n2) CHECK_MSG(strstr(msg, n2) != NULL, "\"%s\" lacks \"%s\"", msg, n2);
    if (want != LLMRT_OK && n3) CHECK_MSG(strstr(msg, n3) != NULL, "\"%s\" lacks \"%s\"", msg, n3);
    CHECK(want == LLMRT_OK ? m != NULL : m == NULL);
    llmrt_model_destroy(m);
}

/* llama_f32 with one config.json value changed: the tensors no longer fit. */
static void config_mismatch(const char *old, const char *new_, const char *n1, const char *n2,
                            const char *n3) {
    char dir[64];
    CHECK(make_copy("llama_f32", dir));
    CHECK(replace_in_file(dir, "config.json", old, new_));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH, n1, n2, n3);
    rm_tree(dir);
}

static void test_config_tensor_mismatch(void) {
    config_mismatch("\"hidden_size\": 64", "\"hidden_size\": 32", "model.embed_tokens.weight",
                    "[320, 64]", "[320, 32]");
    config_mismatch("\"intermediate_size\": 160", "\"intermediate_size\": 128",
                    "model.layers.0.mlp.gate_proj.weight", "[160, 64]", "[128, 64]");
    config_mismatch("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 1",
                    "model.layers.0.self_attn.k_proj.weight", "[32, 64]", "[16, 64]");
    config_mismatch("\"num_attention_heads\": 4", "\"num_attention_heads\": 8",
                    "model.layers.0.self_attn.q_proj.weight", "[64, 64]", "[128, 64]");
    config_mismatch("\"vocab_size\": 320", "\"vocab_size\": 300", "model.embed_tokens.weight",
                    "[320, 64]", "[300, 64]");
    config_mismatch("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4",
                    "model.layers.3.input_layernorm.weight", "missing", NULL);
    /* tensors of a layer past num_hidden_layers would be left out: refused (issue 18, class 6) */
    config_mismatch("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 2", "model.layers.2.",
                    "num_hidden_layers is 2", NULL);
}

/* Rewrites dir/name from its parsed tensors: `drop` left out, `retype` given dtype `dtype`. */
static bool rewrite_safetensors(const char *dir, const char *name, const char *drop,
                                const char *retype, const char *dtype) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint64_t      size;
    uint8_t      *data = read_all(path, &size);
    llmrt_st_file f;
    llmrt_error   err = {0};
    if (!data || llmrt_safetensors_parse(data, size, path, &f, &err) != LLMRT_OK) {
        fprintf(stderr, "cannot parse %s: %s\n", path, err.msg);
        free(data);
        return false;
    }
    cJSON   *hdr = cJSON_CreateObject();
    uint64_t off = 0;
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const llmrt_st_tensor *t = &f.tensors[i];
        if (drop && strcmp(t->name, drop) == 0) continue;
        cJSON *o = cJSON_AddObjectToObject(hdr, t->name);
        bool   re = retype && strcmp(t->name, retype) == 0;
        cJSON_AddStringToObject(o, "dtype", re ? dtype : llmrt_dtype_name(t->dtype));
        cJSON *shape = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + t->nbytes)));
        off += t->nbytes;
    }
    char    *json = cJSON_PrintUnformatted(hdr);
    uint64_t n    = strlen(json), padded = (n + 7) / 8 * 8;
    uint8_t *out  = malloc(8 + padded + off);
    memcpy(out, &padded, 8);
    memset(out + 8, ' ', padded);
    memcpy(out + 8, json, n);
    uint8_t *p = out + 8 + padded;
    for (int64_t i = 0; i < f.n_tensors; i++) {
        const llmrt_st_tensor *t = &f.tensors[i];
        if (drop && strcmp(t->name, drop) == 0) continue;
        memcpy(p, t->data, t->nbytes);
        p += t->nbytes;
    }
    bool ok = write_all(path, out, 8 + padded + off);
    free(out);
    free(json);
    cJSON_Delete(hdr);
    llmrt_safetensors_close(&f);
    free(data);
    return ok;
}

static void test_tied_and_missing(void) {
    char dir[64];
    /* the rewriter itself round-trips: the rewritten file loads */
    CHECK(make_copy("llama_f32", dir));
    CHECK(rewrite_safetensors(dir, "model.safetensors", NULL, NULL, NULL));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_OK, NULL, NULL, NULL);
    CHECK(rewrite_safetensors(dir, "model.safetensors", "lm_head.weight", NULL, NULL));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH, "lm_head.weight", "missing", NULL);
    CHECK(replace_in_file(dir, "config.json", "\"tie_word_embeddings\": false",
                          "\"tie_word_embeddings\": true"));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_OK, NULL, NULL, NULL);
    rm_tree(dir);

    CHECK(make_copy("llama_f32", dir));
    CHECK(rewrite_safetensors(dir, "model.safetensors", "model.layers.1.mlp.up_proj.weight", NULL,
                              NULL));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH,
                "model.layers.1.mlp.up_proj.weight", "missing", NULL);
    rm_tree(dir);
}

/* Issue 16: a bias is never skipped. attention_bias / mlp_bias true requires every bias (the
 * message names the tensor and the flag); a bias present while its flag is false is refused;
 * Qwen2's q/k/v biases are required; a math-changing field we do not implement is refused. */
static void test_biases(void) {
    char dir[64];
    CHECK(make_copy("llama_bias_f32", dir));
    CHECK(rewrite_safetensors(dir, "model.safetensors", "model.layers.1.mlp.down_proj.bias", NULL,
                              NULL));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH, "model.layers.1.mlp.down_proj.bias",
                "missing", "mlp_bias");
    rm_tree(dir);
    CHECK(make_copy("llama_bias_f32", dir));
    CHECK(replace_in_file(dir, "config.json", "\"mlp_bias\": true", "\"mlp_bias\": false"));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH, "model.layers.0.mlp.gate_proj.bias",
                "present", "mlp_bias");
    rm_tree(dir);
    CHECK(make_copy("llama_bias_f32", dir));
    CHECK(replace_in_file(dir, "config.json", "\"attention_bias\": true",
                          "\"attention_bias\": false"));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH,
                "model.layers.0.self_attn.q_proj.bias", "present", "attention_bias");
    rm_tree(dir);
    CHECK(make_copy("llama_bias_f32", dir));
    CHECK(rewrite_safetensors(dir, "model.safetensors", "model.layers.0.self_attn.o_proj.bias",
                              NULL, NULL));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH,
                "model.layers.0.self_attn.o_proj.bias", "missing", "attention_bias");
    rm_tree(dir);
    CHECK(make_copy("qwen2_f32", dir));
    CHECK(rewrite_safetensors(dir, "model.safetensors", "model.layers.1.self_attn.k_proj.bias",
                              NULL, NULL));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH,
                "model.layers.1.self_attn.k_proj.bias", "missing", NULL);
    rm_tree(dir);
    CHECK(make_copy("qwen2_f32", dir));
    CHECK(replace_in_file(dir, "config.json", "\"hidden_act\": \"silu\"",
                          "\"hidden_act\": \"gelu_pytorch_tanh\""));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_UNSUPPORTED, "hidden_act", "gelu_pytorch_tanh",
                NULL);
    rm_tree(dir);
    CHECK(make_copy("qwen2_f32", dir));
    CHECK(replace_in_file(dir, "config.json", "\"use_sliding_window\": false",
                          "\"use_sliding_window\": true"));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_UNSUPPORTED, "use_sliding_window", NULL, NULL);
    rm_tree(dir);
    /* a Llama checkpoint without biases but attention_bias true: the first bias is missing */
    CHECK(make_copy("llama_f32", dir));
    CHECK(replace_in_file(dir, "config.json", "\"attention_bias\": false",
                          "\"attention_bias\": true"));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH,
                "model.layers.0.self_attn.q_proj.bias", "missing", NULL);
    rm_tree(dir);
}

static void test_wrong_dtype(void) {
    char dir[64];
    CHECK(make_copy("llama_f32", dir));
    CHECK(rewrite_safetensors(dir, "model.safetensors", NULL,
                              "model.layers.0.self_attn.q_proj.weight", "I32"));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_UNSUPPORTED,
                "model.layers.0.self_attn.q_proj.weight", "I32", NULL);
    rm_tree(dir);
}

static void test_sharded(void) {
    char dir[64];
    CHECK(make_copy("llama3_bf16_sharded", dir));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_OK, NULL, NULL, NULL);
    rm_tree(dir);

    CHECK(make_copy("llama3_bf16_sharded", dir));
    CHECK(replace_in_file(dir, "model.safetensors.index.json",
                          "\"model.norm.weight\": \"model-00007-of-00007.safetensors\"",
                          "\"model.norm.weight\": \"model-00009-of-00009.safetensors\""));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_IO, "model-00009-of-00009.safetensors", NULL,
                NULL);
    rm_tree(dir);

    CHECK(make_copy("llama3_bf16_sharded", dir));
    CHECK(replace_in_file(dir, "model.safetensors.index.json",
                          "\"model.norm.weight\": \"model-00007-of-00007.safetensors\"",
                          "\"model.norm.weight\": \"model-00001-of-00007.safetensors\""));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH, "model.norm.weight",
                "model-00001-of-00007.safetensors", NULL);
    rm_tree(dir);

    CHECK(make_copy("llama3_bf16_sharded", dir));
    CHECK(replace_in_file(dir, "model.safetensors.index.json",
                          "\"model.norm.weight\": \"model-00007-of-00007.safetensors\"",
                          "\"model.norm.weight\": \"../model-00007-of-00007.safetensors\""));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_FORMAT, "model.norm.weight", NULL, NULL);
    rm_tree(dir);

    /* a shard that lost a tensor the index does not mention is still caught by the weight walk */
    CHECK(make_copy("llama3_bf16_sharded", dir));
    CHECK(replace_in_file(dir, "model.safetensors.index.json",
                          ".safetensors\",\n    \"model.norm.weight\": "
                          "\"model-00007-of-00007.safetensors\"",
                          ".safetensors\""));
    CHECK(rewrite_safetensors(dir, "model-00007-of-00007.safetensors", "model.norm.weight", NULL,
                              NULL));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_MODEL_MISMATCH, "model.norm.weight", "missing",
                NULL);
    rm_tree(dir);
}

static void test_truncated(void) {
    char dir[64], path[1024];
    CHECK(make_copy("llama_f32", dir));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK(truncate(path, 300000) == 0);
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_FORMAT, path, NULL, NULL);
    CHECK(truncate(path, 5) == 0);
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_FORMAT, path, NULL, NULL);
    rm_tree(dir);

    CHECK(make_copy(NULL, dir));
    snprintf(path, sizeof path, "%s/llama_f32.gguf", dir);
    uint64_t n;
    uint8_t *data = read_all(TINY "/llama_f32.gguf", &n);
    CHECK(data && write_all(path, data, n / 2));
    expect_load(path, LLMRT_LOAD_AUTO, LLMRT_ERR_FORMAT, path, NULL, NULL);
    CHECK(data && write_all(path, data, 100)); /* cut inside the metadata */
    expect_load(path, LLMRT_LOAD_AUTO, LLMRT_ERR_FORMAT, path, NULL, NULL);
    free(data);
    rm_tree(dir);
}

// --- GGUF rewriting ---------------------------------------------------------------------------

typedef struct gbuf {
    uint8_t *p;
    size_t   n, cap;
} gbuf;

static void put(gbuf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p   = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u32(gbuf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(gbuf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(gbuf *b, const char *s, uint64_t len) {
    put_u64(b, len);
    put(b, s, (size_t)len);
}

static size_t gguf_scalar_bytes(llmrt_gguf_type t) {
    switch (t) {
    case LLMRT_GGUF_UINT8: case LLMRT_GGUF_INT8: case LLMRT_GGUF_BOOL: return 1;
    case LLMRT_GGUF_UINT16: case LLMRT_GGUF_INT16: return 2;
    case LLMRT_GGUF_UINT32: case LLMRT_GGUF_INT32: case LLMRT_GGUF_FLOAT32: return 4;
    default: return 8;
    }
}

static void put_value(gbuf *b, const llmrt_gguf_kv *kv) {
    if (kv->type == LLMRT_GGUF_STRING) {
        put_str(b, kv->v.str.ptr, kv->v.str.len);
    } else if (kv->type == LLMRT_GGUF_ARRAY) {
        put_u32(b, kv->arr_type);
        put_u64(b, kv->arr_n);
        for (uint64_t i = 0; kv->arr_type == LLMRT_GGUF_STRING && i < kv->arr_n; i++)
            put_str(b, kv->arr_strs[i].ptr, kv->arr_strs[i].len);
        if (kv->arr_type != LLMRT_GGUF_STRING)
            put(b, kv->arr_data, (size_t)kv->arr_n * gguf_scalar_bytes(kv->arr_type));
    } else if (kv->type == LLMRT_GGUF_FLOAT32) {
        float f = (float)kv->v.f64;
        put(b, &f, 4);
    } else if (kv->type == LLMRT_GGUF_FLOAT64) {
        put(b, &kv->v.f64, 8);
    } else if (kv->type == LLMRT_GGUF_BOOL) {
        uint8_t v = kv->v.b;
        put(b, &v, 1);
    } else { /* integers: the low bytes of the widened value (little-endian) */
        put(b, &kv->v.u64, gguf_scalar_bytes(kv->type));
    }
}

typedef struct gguf_edit {
    const char *drop_key;   /* metadata key left out                        */
    const char *arch;       /* new general.architecture                     */
    const char *tensor;     /* tensor whose shape / type change             */
    uint64_t    ne0, ne1;   /* its new shape (0: unchanged)                 */
    int         ggml_type;  /* its new ggml type (-1: unchanged)            */
    const char *set_key;    /* numeric metadata key given a new value       */
    double      set_value;  /* (floats as they are, integers converted)     */
    const char *rename_from, *rename_to; /* a tensor renamed (prefix match) */
} gguf_edit;

/* Writes dst from src's parse with `e` applied; tensor data are copied unchanged. */
static bool rewrite_gguf(const char *src, const char *dst, const gguf_edit *e) {
    uint64_t        size;
    uint8_t        *data = read_all(src, &size);
    llmrt_gguf_file f;
    llmrt_error     err = {0};
    if (!data || llmrt_gguf_parse(data, size, src, &f, &err) != LLMRT_OK) {
        fprintf(stderr, "cannot parse %s: %s\n", src, err.msg);
        free(data);
        return false;
    }
    gbuf b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, f.version);
    put_u64(&b, (uint64_t)f.n_tensors);
    bool drop = e->drop_key && llmrt_gguf_find_kv(&f, e->drop_key);
    put_u64(&b, (uint64_t)f.n_kv - drop);
    for (int64_t i = 0; i < f.n_kv; i++) {
        llmrt_gguf_kv kv = f.kvs[i];
        if (e->drop_key && strcmp(kv.key, e->drop_key) == 0) continue;
        if (e->arch && strcmp(kv.key, "general.architecture") == 0)
            kv.v.str = (llmrt_gguf_str){e->arch, strlen(e->arch)};
        if (e->set_key && strcmp(kv.key, e->set_key) == 0) {
            if (kv.type == LLMRT_GGUF_FLOAT32 || kv.type == LLMRT_GGUF_FLOAT64)
                kv.v.f64 = e->set_value;
            else
                kv.v.i64 = (int64_t)e->set_value;
        }
        put_str(&b, kv.key, strlen(kv.key));
        put_u32(&b, kv.type);
        put_value(&b, &kv);
    }
    for (int64_t i = 0; i < f.n_tensors; i++) {
        llmrt_gguf_tensor t  = f.tensors[i];
        bool              hit = e->tensor && strcmp(t.name, e->tensor) == 0;
        if (hit && e->ne0) t.ne[0] = e->ne0, t.ne[1] = e->ne1;
        if (hit && e->ggml_type >= 0) t.ggml_type = (uint32_t)e->ggml_type;
        char renamed[256];
        if (e->rename_from && !strncmp(t.name, e->rename_from, strlen(e->rename_from))) {
            snprintf(renamed, sizeof renamed, "%s%s", e->rename_to, t.name + strlen(e->rename_from));
            t.name = renamed;
        }
        put_str(&b, t.name, strlen(t.name));
        put_u32(&b, (uint32_t)t.n_dims);
        for (int d = 0; d < t.n_dims; d++) put_u64(&b, t.ne[d]);
        put_u32(&b, t.ggml_type);
        put_u64(&b, t.offset);
    }
    static const uint8_t zeros[256];
    put(&b, zeros, (size_t)((f.alignment - b.n % f.alignment) % f.alignment));
    put(&b, data + f.data_offset, (size_t)(size - f.data_offset));
    bool ok = write_all(dst, b.p, b.n);
    free(b.p);
    llmrt_gguf_close(&f);
    free(data);
    return ok;
}

static void expect_gguf(const gguf_edit *e, llmrt_status want, const char *n1, const char *n2) {
    char dir[64], path[1024];
    CHECK(make_copy(NULL, dir));
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    CHECK(rewrite_gguf(TINY "/llama_f32.gguf", path, e));
    expect_load(path, LLMRT_LOAD_AUTO, want, n1, n2, NULL);
    rm_tree(dir);
}

static void test_gguf(void) {
    expect_gguf(&(gguf_edit){.ggml_type = -1}, LLMRT_OK, NULL, NULL); /* the writer round-trips */
    expect_gguf(&(gguf_edit){.arch = "gpt2", .ggml_type = -1}, LLMRT_ERR_UNSUPPORTED, "gpt2",
                "general.architecture");
    expect_gguf(&(gguf_edit){.drop_key = "llama.block_count", .ggml_type = -1},
                LLMRT_ERR_MODEL_MISMATCH, "llama.block_count", NULL);
    expect_gguf(&(gguf_edit){.drop_key = "general.architecture", .ggml_type = -1},
                LLMRT_ERR_MODEL_MISMATCH, "general.architecture", NULL);
    /* same bytes, transposed shape: the parser accepts it, the model check must not */
    expect_gguf(&(gguf_edit){.tensor = "blk.0.attn_q.weight", .ne0 = 32, .ne1 = 128,
                             .ggml_type = -1},
                LLMRT_ERR_MODEL_MISMATCH, "blk.0.attn_q.weight", "[32, 128]");
    expect_gguf(&(gguf_edit){.tensor = "blk.1.ffn_up.weight", .ggml_type = 26 /* I32 */},
                LLMRT_ERR_UNSUPPORTED, "blk.1.ffn_up.weight", NULL);
    /* issue 18 class 6: metadata that reaches the math is refused by its key */
    static const double bad_theta[] = {INFINITY, NAN, 0, -5, 1e13};
    for (size_t i = 0; i < sizeof bad_theta / sizeof bad_theta[0]; i++)
        expect_gguf(&(gguf_edit){.ggml_type = -1, .set_key = "llama.rope.freq_base",
                                 .set_value = bad_theta[i]},
                    LLMRT_ERR_FORMAT, "llama.rope.freq_base", "finite");
    expect_gguf(&(gguf_edit){.ggml_type = -1, .set_key = "llama.attention.layer_norm_rms_epsilon",
                             .set_value = INFINITY},
                LLMRT_ERR_FORMAT, "llama.attention.layer_norm_rms_epsilon", NULL);
    /* layer tensors past block_count: block_count lowered, and a layer's tensors renamed past it */
    expect_gguf(&(gguf_edit){.ggml_type = -1, .set_key = "llama.block_count", .set_value = 1},
                LLMRT_ERR_MODEL_MISMATCH, "blk.1.", "llama.block_count is 1");
    expect_gguf(&(gguf_edit){.ggml_type = -1, .rename_from = "blk.1.", .rename_to = "blk.7."},
                LLMRT_ERR_MODEL_MISMATCH, "blk.7.", "llama.block_count");
    /* heads that do not divide the hidden size (and no key_length): named, not "dimensions" */
    expect_gguf(&(gguf_edit){.ggml_type = -1, .set_key = "llama.attention.head_count",
                             .set_value = 3, .drop_key = "llama.attention.key_length"},
                LLMRT_ERR_FORMAT, "llama.embedding_length", "llama.attention.head_count");
}

// --- API misuse -------------------------------------------------------------------------------

static void test_load_args(void) {
    llmrt_model_params p = llmrt_model_default_params();
    llmrt_model       *m = (llmrt_model *)&p; /* must be reset to NULL on failure */
    CHECK_STATUS(llmrt_model_load(TINY "/llama_f32", &p, NULL), LLMRT_ERR_INVALID_ARG, "out");
    CHECK_STATUS(llmrt_model_load(NULL, &p, &m), LLMRT_ERR_INVALID_ARG, "path");
    CHECK(m == NULL);
    CHECK_STATUS(llmrt_model_load("", &p, &m), LLMRT_ERR_INVALID_ARG, "path");
    p.struct_size = 0;
    CHECK_STATUS(llmrt_model_load(TINY "/llama_f32", &p, &m), LLMRT_ERR_INVALID_ARG,
                 "struct_size");
    p.struct_size = 1u << 20;
    CHECK_STATUS(llmrt_model_load(TINY "/llama_f32", &p, &m), LLMRT_ERR_INVALID_ARG,
                 "struct_size");
    p = llmrt_model_default_params();
    p.n_threads = -1;
    CHECK_STATUS(llmrt_model_load(TINY "/llama_f32", &p, &m), LLMRT_ERR_INVALID_ARG, "n_threads");
    p = llmrt_model_default_params();
    p.load_format = (llmrt_load_format)42;
    CHECK_STATUS(llmrt_model_load(TINY "/llama_f32", &p, &m), LLMRT_ERR_INVALID_ARG,
                 "load_format");
    expect_load("/nonexistent/llmrt/model.gguf", LLMRT_LOAD_AUTO, LLMRT_ERR_IO,
                "/nonexistent/llmrt/model.gguf", NULL, NULL);
    expect_load("/nonexistent/llmrt/dir", LLMRT_LOAD_HF, LLMRT_ERR_IO, "config.json", NULL, NULL);
    char dir[64];
    CHECK(make_copy(NULL, dir));
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_IO, "config.json", NULL, NULL);
    expect_load(dir, LLMRT_LOAD_GGUF, LLMRT_ERR_IO, dir, NULL, NULL); /* a directory */
    rm_tree(dir);
    CHECK(make_copy("llama_f32", dir));
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    remove(path);
    expect_load(dir, LLMRT_LOAD_AUTO, LLMRT_ERR_IO, "model.safetensors", NULL, NULL);
    rm_tree(dir);
    llmrt_model_destroy(NULL);
    llmrt_kv_cache_destroy(NULL);
}

static llmrt_model *load_ok(const char *path, llmrt_load_format fmt) {
    llmrt_model_params p = llmrt_model_default_params();
    p.n_threads          = 1;
    p.load_format        = fmt;
    llmrt_model *m       = NULL;
    CHECK_STATUS(llmrt_model_load(path, &p, &m), LLMRT_OK, NULL);
    return m;
}

static void test_random_load(void) {
    const char *paths[] = {TINY "/llama_f32/config.json", TINY "/llama3_bf16_sharded"};
    for (int k = 0; k < 2; k++) {
        llmrt_model *m = load_ok(paths[k], LLMRT_LOAD_RANDOM);
        if (!m) continue;
        llmrt_kv_cache *kv = NULL;
        CHECK_STATUS(llmrt_kv_cache_create(m, NULL, &kv), LLMRT_OK, NULL);
        int32_t     tok[6] = {1, 7, 42, 300, 5, 9}, pos[6] = {0, 1, 2, 3, 4, 5}, seq[6] = {0};
        int32_t     table[1] = {0};
        float      *logits = malloc(320 * sizeof(float));
        llmrt_batch b = {.n_tokens = 6, .tokens = tok, .positions = pos, .seq_ids = seq,
                         .n_seqs = 1, .max_blocks_per_seq = 1, .block_tables = table};
        CHECK_STATUS(llmrt_forward(kv, &b, logits, 320), LLMRT_OK, NULL);
        bool finite = true, nonzero = false;
        for (int i = 0; i < 320; i++) {
            finite  = finite && isfinite(logits[i]);
            nonzero = nonzero || logits[i] != 0.0f;
        }
        CHECK_MSG(finite && nonzero, "random weights (%s): logits finite %d, nonzero %d", paths[k],
                  finite, nonzero);
        free(logits);
        llmrt_kv_cache_destroy(kv);
        llmrt_model_destroy(m);
    }
    expect_load(TINY "/llama_f32.gguf", LLMRT_LOAD_RANDOM, LLMRT_ERR_FORMAT, "llama_f32.gguf",
                NULL, NULL);
}

static void test_kv_cache_params(llmrt_model *m) {
    llmrt_kv_cache       *kv = NULL;
    llmrt_kv_cache_params p  = llmrt_kv_cache_default_params();
    p.block_size             = 0;
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_ERR_INVALID_ARG, "block_size");
    CHECK(kv == NULL);
    p = llmrt_kv_cache_default_params();
    p.n_blocks = -1;
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_ERR_INVALID_ARG, "blocks");
    p            = llmrt_kv_cache_default_params();
    p.max_tokens = p.max_bytes = 0;
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_ERR_INVALID_ARG, "budget");
    p.max_tokens = -5;
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_ERR_INVALID_ARG, NULL);
    p.max_tokens = INT64_MAX; /* no overflow rounding up to blocks */
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_ERR_INVALID_ARG, NULL);
    p = llmrt_kv_cache_default_params();
    p.struct_size = 0;
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_ERR_INVALID_ARG, "struct_size");
    p = llmrt_kv_cache_default_params();
    CHECK_STATUS(llmrt_kv_cache_create(NULL, NULL, &kv), LLMRT_ERR_INVALID_ARG, "model");
    CHECK_STATUS(llmrt_kv_cache_create(m, NULL, NULL), LLMRT_ERR_INVALID_ARG, "out");

    /* 3 layers x (K + V) x 2 kv heads x 16 dims x fp32 */
    const int64_t bpt = 3 * 2 * 2 * 16 * 4;
    p.max_tokens      = 0;
    p.max_bytes       = bpt * 16 * 5 + bpt * 15; /* 5 whole blocks and change */
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_OK, NULL);
    CHECK(llmrt_kv_cache_bytes_per_token(kv) == bpt);
    CHECK(llmrt_kv_cache_n_blocks(kv) == 5 && llmrt_kv_cache_block_size(kv) == 16);
    llmrt_kv_cache_destroy(kv);
    p.max_bytes = bpt * 16 - 1; /* less than one block */
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_ERR_INVALID_ARG, NULL);
    p.max_bytes  = 0;
    p.max_tokens = 33;
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_OK, NULL);
    CHECK(llmrt_kv_cache_n_blocks(kv) == 3);
    llmrt_kv_cache_destroy(kv);
}

// --- forward validation -----------------------------------------------------------------------

#define VOCAB 320

/* The "overwrite" batch: rewrites positions 0..3 of sequence 0 with other tokens. Every case
 * below spoils one field of it; if anything were written before validation failed, the probe
 * (which reads positions 0..3 from the cache) would see it. */
typedef struct bad_batch {
    int32_t     tokens[4], positions[4], seq_ids[4];
    int32_t     n_tokens, n_seqs, max_blocks;
    int32_t     table[160];
    int32_t     outputs[4];
    int32_t     n_outputs;
    bool        with_outputs, null_logits;
    int64_t     capacity;
    const char *needle;
} bad_batch;

static void init_overwrite(bad_batch *b) {
    *b = (bad_batch){.tokens = {100, 101, 102, 103}, .positions = {0, 1, 2, 3}, .n_tokens = 4,
                     .n_seqs = 1, .max_blocks = 2, .table = {0, 1}, .capacity = VOCAB};
}

static llmrt_status run_batch(llmrt_kv_cache *kv, const bad_batch *b, float *logits) {
    llmrt_batch batch = {.n_tokens = b->n_tokens, .tokens = b->tokens, .positions = b->positions,
                         .seq_ids = b->seq_ids, .n_seqs = b->n_seqs,
                         .max_blocks_per_seq = b->max_blocks, .block_tables = b->table,
                         .n_outputs = b->n_outputs,
                         .output_tokens = b->with_outputs ? b->outputs : NULL};
    return llmrt_forward(kv, &batch, b->null_logits ? NULL : logits, b->capacity);
}

/* Decode step: token 9 at position 4 of sequence 0, attending to positions 0..4. */
static llmrt_status probe(llmrt_kv_cache *kv, float *logits) {
    int32_t     tok = 9, pos = 4, seq = 0, table[2] = {0, 1};
    llmrt_batch b = {.n_tokens = 1, .tokens = &tok, .positions = &pos, .seq_ids = &seq,
                     .n_seqs = 1, .max_blocks_per_seq = 2, .block_tables = table};
    return llmrt_forward(kv, &b, logits, VOCAB);
}

static void bad_token_high(bad_batch *b) { b->tokens[2] = VOCAB; b->needle = "tokens[2]"; }
static void bad_token_neg(bad_batch *b) { b->tokens[1] = -1; b->needle = "tokens[1]"; }
static void bad_pos_neg(bad_batch *b) { b->positions[3] = -1; b->needle = "positions[3]"; }
static void bad_pos_table(bad_batch *b) { b->positions[3] = 8; b->needle = "positions[3]"; }
static void bad_seq_high(bad_batch *b) { b->seq_ids[0] = 1; b->needle = "seq_ids[0]"; }
static void bad_seq_neg(bad_batch *b) { b->seq_ids[3] = -1; b->needle = "seq_ids[3]"; }
static void bad_block_high(bad_batch *b) { b->table[1] = 8; b->needle = "block_tables[1]"; }
static void bad_block_neg(bad_batch *b) { b->table[1] = -2; b->needle = "block_tables[1]"; }
static void bad_block_unset(bad_batch *b) { b->table[0] = -1; b->needle = "no block"; }
static void bad_same_slot(bad_batch *b) { b->positions[3] = 2; b->needle = "KV slot"; }
static void bad_output_high(bad_batch *b) {
    b->with_outputs = true, b->n_outputs = 1, b->outputs[0] = 4, b->needle = "output_tokens[0]";
}
static void bad_output_neg(bad_batch *b) {
    b->with_outputs = true, b->n_outputs = 2, b->outputs[0] = 3, b->outputs[1] = -1;
    b->capacity = 2 * VOCAB, b->needle = "output_tokens[1]";
}
static void bad_n_outputs(bad_batch *b) {
    b->with_outputs = true, b->n_outputs = 0, b->needle = "n_outputs";
}
static void bad_capacity(bad_batch *b) { b->capacity = VOCAB - 1; b->needle = "logits buffer"; }
static void bad_null_logits(bad_batch *b) { b->null_logits = true; b->needle = "logits buffer"; }
static void bad_capacity_outputs(bad_batch *b) {
    b->with_outputs = true, b->n_outputs = 2, b->outputs[1] = 3, b->needle = "logits buffer";
}
static void bad_n_tokens(bad_batch *b) { b->n_tokens = 0; b->needle = "n_tokens"; }
static void bad_n_seqs(bad_batch *b) { b->n_seqs = 0; b->needle = "n_seqs"; }
static void bad_max_blocks(bad_batch *b) { b->max_blocks = 0; b->needle = "max_blocks_per_seq"; }
/* two sequences sharing block 0 write the same slots */
static void bad_shared_block(bad_batch *b) {
    b->n_seqs = 2, b->seq_ids[2] = b->seq_ids[3] = 1, b->positions[2] = 0, b->positions[3] = 1;
    b->table[2] = 0, b->table[3] = 1, b->capacity = 2 * VOCAB, b->needle = "KV slot";
}
/* a table long enough that position 256 has a block, but the context is 256 */
static void bad_pos_context(bad_batch *b) {
    b->max_blocks = 80;
    for (int i = 0; i < 80; i++) b->table[i] = i % 8;
    b->positions[3] = 256, b->needle = "positions[3]";
}

static void test_forward_validation(llmrt_model *m) {
    llmrt_kv_cache       *kv = NULL;
    llmrt_kv_cache_params p  = llmrt_kv_cache_default_params();
    p.block_size             = 4;
    p.n_blocks               = 8;
    CHECK_STATUS(llmrt_kv_cache_create(m, &p, &kv), LLMRT_OK, NULL);
    if (!kv) return;
    float *base = malloc(VOCAB * sizeof(float)), *got = malloc(VOCAB * sizeof(float));
    float *scratch = malloc(4 * VOCAB * sizeof(float));

    /* prefill positions 0..3 with tokens 5..8, then the probe twice: it is idempotent */
    bad_batch b;
    init_overwrite(&b);
    for (int i = 0; i < 4; i++) b.tokens[i] = 5 + i;
    CHECK_STATUS(run_batch(kv, &b, scratch), LLMRT_OK, NULL);
    CHECK_STATUS(probe(kv, base), LLMRT_OK, NULL);
    CHECK_STATUS(probe(kv, got), LLMRT_OK, NULL);
    CHECK(memcmp(base, got, VOCAB * sizeof(float)) == 0);

    static const struct {
        const char *name;
        void (*spoil)(bad_batch *);
    } cases[] = {
        {"token >= vocab", bad_token_high},     {"token < 0", bad_token_neg},
        {"position < 0", bad_pos_neg},          {"position past table", bad_pos_table},
        {"position past context", bad_pos_context},
        {"seq_id >= n_seqs", bad_seq_high},     {"seq_id < 0", bad_seq_neg},
        {"block >= n_blocks", bad_block_high},  {"block < -1", bad_block_neg},
        {"block -1 in use", bad_block_unset},   {"same slot", bad_same_slot},
        {"shared block", bad_shared_block},     {"output >= n_tokens", bad_output_high},
        {"output < 0", bad_output_neg},         {"n_outputs 0", bad_n_outputs},
        {"capacity", bad_capacity},             {"NULL logits", bad_null_logits},
        {"capacity for outputs", bad_capacity_outputs},
        {"n_tokens 0", bad_n_tokens},           {"n_seqs 0", bad_n_seqs},
        {"max_blocks 0", bad_max_blocks},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        init_overwrite(&b);
        cases[i].spoil(&b);
        for (int k = 0; k < 4 * VOCAB; k++) scratch[k] = -7.0f;
        CHECK_STATUS(run_batch(kv, &b, scratch), LLMRT_ERR_INVALID_ARG, b.needle);
        CHECK_MSG(scratch[0] == -7.0f, "%s: logits written on failure", cases[i].name);
        memset(got, 0, VOCAB * sizeof(float));
        CHECK_STATUS(probe(kv, got), LLMRT_OK, NULL);
        CHECK_MSG(memcmp(base, got, VOCAB * sizeof(float)) == 0,
                  "%s: the failed forward changed the cache", cases[i].name);
    }
    llmrt_batch empty = {0};
    CHECK_STATUS(llmrt_forward(NULL, &empty, scratch, VOCAB), LLMRT_ERR_INVALID_ARG, "NULL");
    CHECK_STATUS(llmrt_forward(kv, NULL, scratch, VOCAB), LLMRT_ERR_INVALID_ARG, "NULL");
    CHECK_STATUS(llmrt_forward(kv, &empty, scratch, VOCAB), LLMRT_ERR_INVALID_ARG, "n_tokens");

    /* control: the same batch without a defect does change what the probe sees */
    init_overwrite(&b);
    CHECK_STATUS(run_batch(kv, &b, scratch), LLMRT_OK, NULL);
    CHECK_STATUS(probe(kv, got), LLMRT_OK, NULL);
    CHECK(memcmp(base, got, VOCAB * sizeof(float)) != 0);
    free(base);
    free(got);
    free(scratch);
    llmrt_kv_cache_destroy(kv);
}

int main(void) {
    test_config_tensor_mismatch();
    test_tied_and_missing();
    test_biases();
    test_wrong_dtype();
    test_sharded();
    test_truncated();
    test_gguf();
    test_load_args();
    test_random_load();
    llmrt_model *m = load_ok(TINY "/llama_f32", LLMRT_LOAD_AUTO);
    if (m) {
        test_kv_cache_params(m);
        test_forward_validation(m);
        llmrt_model_destroy(m);
    }
    return test_summary("test_model_errors");
}
