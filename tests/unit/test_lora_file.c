/* LoRA adapter files (host/format/lora_file.c): tiny PEFT directories and GGUF adapters written
 * here from C for a tiny model (D 64, 4 heads, 2 KV heads, head_dim 16, F 96, 2 layers). Valid
 * files are read back value by value (A, B, scale; F16/BF16 conversion; GGUF q/k rows back in HF
 * order); every refusal is checked for its status and for a message naming the field or tensor. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/half.h"
#include "format/lora_file.h"
#include "test_util.h"

static char tmp_root[64];
static int  n_dirs;

static llmrt_model_config tiny_config(void) {
    llmrt_model_config c = {0};
    snprintf(c.architecture, sizeof c.architecture, "LlamaForCausalLM");
    c.vocab_size        = 32;
    c.hidden_size       = 64;
    c.intermediate_size = 96;
    c.n_layers          = 2;
    c.n_heads           = 4;
    c.n_kv_heads        = 2;
    c.head_dim          = 16;
    c.max_context       = 128;
    c.rms_norm_eps      = 1e-5f;
    c.rope_theta        = 10000;
    return c;
}

static const char *const HF_TARGET[7] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                         "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                         "mlp.down_proj"};
static const char *const GGUF_TARGET[7] = {"attn_q",   "attn_k", "attn_v",  "attn_output",
                                           "ffn_gate", "ffn_up", "ffn_down"};

/* Multiples of 1/8 in [-1, 1]: exact in F16 and BF16, so values compare exactly. */
static float val(int layer, int t, int which, int64_t i, int64_t j) {
    return (float)((i * 7 + j * 3 + layer * 11 + t * 5 + which * 13) % 17 - 8) / 8.0f;
}

// --- a little safetensors writer ------------------------------------------------------------

typedef struct entry {
    char     name[200];
    char     dtype[8];
    int      n_dims;
    uint64_t shape[2];
    uint8_t *data;
    size_t   nbytes;
} entry;

typedef struct tensors {
    entry e[64];
    int   n;
} tensors;

static void tensors_free(tensors *ts) {
    for (int i = 0; i < ts->n; i++) free(ts->e[i].data);
    ts->n = 0;
}

/* Encodes rows x cols floats as F32, F16 or BF16 (or raw bytes of another dtype name, zeroed). */
static void add_tensor(tensors *ts, const char *name, const char *dtype, uint64_t rows,
                       uint64_t cols, const float *v) {
    entry *e = &ts->e[ts->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->dtype, sizeof e->dtype, "%s", dtype);
    e->n_dims   = 2;
    e->shape[0] = rows;
    e->shape[1] = cols;
    size_t esz  = !strcmp(dtype, "F16") || !strcmp(dtype, "BF16") ? 2 : 4;
    e->nbytes   = (size_t)(rows * cols) * esz;
    e->data     = calloc(e->nbytes + 1, 1);
    for (uint64_t i = 0; v && i < rows * cols; i++) {
        if (!strcmp(dtype, "F32")) memcpy(e->data + 4 * i, &v[i], 4);
        uint16_t h = !strcmp(dtype, "F16") ? llmrt_f32_to_f16(v[i]) : llmrt_f32_to_bf16(v[i]);
        if (esz == 2) memcpy(e->data + 2 * i, &h, 2);
    }
}

static void target_shape(int t, int64_t *n, int64_t *k) {
    llmrt_model_config c = tiny_config();
    llmrt_lora_target_shape(&c, (llmrt_lora_target)t, n, k);
}

/* A [r, K] and B [N, r] of (layer, t) under PEFT's names; seg = "" or ".default". */
static void add_pair(tensors *ts, int layer, int t, int r, const char *dtype, const char *seg) {
    int64_t n, k;
    target_shape(t, &n, &k);
    float *a = malloc(sizeof(float) * (size_t)(r * k));
    float *b = malloc(sizeof(float) * (size_t)(n * r));
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < k; j++) a[i * k + j] = val(layer, t, 0, i, j);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < r; j++) b[i * r + j] = val(layer, t, 1, i, j);
    char name[200];
    snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_A%s.weight", layer,
             HF_TARGET[t], seg);
    add_tensor(ts, name, dtype, (uint64_t)r, (uint64_t)k, a);
    snprintf(name, sizeof name, "base_model.model.model.layers.%d.%s.lora_B%s.weight", layer,
             HF_TARGET[t], seg);
    add_tensor(ts, name, dtype, (uint64_t)n, (uint64_t)r, b);
    free(a);
    free(b);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f) return;
    CHECK(fwrite(data, 1, n, f) == n);
    fclose(f);
}

static void write_safetensors(const char *path, const tensors *ts) {
    size_t cap = 256 + (size_t)ts->n * 320, len = 0, off = 0;
    char  *json = malloc(cap);
    len += (size_t)snprintf(json + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < ts->n; i++) {
        const entry *e = &ts->e[i];
        len += (size_t)snprintf(json + len, cap - len,
                                ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%llu,%llu],"
                                "\"data_offsets\":[%zu,%zu]}",
                                e->name, e->dtype, (unsigned long long)e->shape[0],
                                (unsigned long long)e->shape[1], off, off + e->nbytes);
        off += e->nbytes;
    }
    len += (size_t)snprintf(json + len, cap - len, "}");
    uint64_t hl  = len;
    size_t   tot = 8 + len + off;
    uint8_t *buf = malloc(tot);
    memcpy(buf, &hl, 8);
    memcpy(buf + 8, json, len);
    off = 8 + len;
    for (int i = 0; i < ts->n; i++) {
        memcpy(buf + off, ts->e[i].data, ts->e[i].nbytes);
        off += ts->e[i].nbytes;
    }
    write_file(path, buf, tot);
    free(buf);
    free(json);
}

/* A fresh directory with adapter_config.json (config may be NULL) and, when ts is non-NULL,
 * adapter_model.safetensors. Returns its path (static storage, valid until the next call). */
static const char *peft_dir(const char *config, const tensors *ts) {
    static char dir[128];
    char        path[256];
    snprintf(dir, sizeof dir, "%s/peft%d", tmp_root, n_dirs++);
    CHECK(mkdir(dir, 0755) == 0);
    if (config) {
        snprintf(path, sizeof path, "%s/adapter_config.json", dir);
        write_file(path, config, strlen(config));
    }
    if (ts) {
        snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
        write_safetensors(path, ts);
    }
    return dir;
}

// --- a little GGUF writer -------------------------------------------------------------------

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
static void put_u32(gbuf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put_u64(gbuf *b, uint64_t v) {
    put(b, &v, 8);
}
static void put_str(gbuf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

typedef struct gkv {
    const char *key;
    const char *s; /* a STRING value, or NULL for a FLOAT32 f */
    float       f;
} gkv;

typedef struct gtensor {
    char     name[96];
    uint32_t type; /* 0 F32, 1 F16, 2 Q4_0, 30 BF16 */
    uint64_t ne0, ne1;
    uint8_t *data;
    size_t   nbytes;
} gtensor;

typedef struct gfile {
    gkv     kv[8];
    int     n_kv;
    gtensor t[64];
    int     n_t;
} gfile;

static void gfile_free(gfile *g) {
    for (int i = 0; i < g->n_t; i++) free(g->t[i].data);
}

static void gfile_adapter_meta(gfile *g, float alpha, bool with_alpha) {
    g->kv[g->n_kv++] = (gkv){"general.type", "adapter", 0};
    g->kv[g->n_kv++] = (gkv){"general.architecture", "llama", 0};
    g->kv[g->n_kv++] = (gkv){"adapter.type", "lora", 0};
    if (with_alpha) g->kv[g->n_kv++] = (gkv){"adapter.lora.alpha", NULL, alpha};
}

/* A row-major [rows, cols] matrix as a GGUF tensor (ne = [cols, rows]). */
static void gadd(gfile *g, const char *name, uint32_t type, uint64_t rows, uint64_t cols,
                 const float *v) {
    gtensor *t = &g->t[g->n_t++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->type   = type;
    t->ne0    = cols;
    t->ne1    = rows;
    t->nbytes = type == 2 ? (size_t)(rows * cols / 32 * 18)
                          : (size_t)(rows * cols) * (type ? 2 : 4);
    t->data   = calloc(t->nbytes + 1, 1);
    for (uint64_t i = 0; v && type != 2 && i < rows * cols; i++) {
        uint16_t h = type == 1 ? llmrt_f32_to_f16(v[i]) : llmrt_f32_to_bf16(v[i]);
        if (type == 0) memcpy(t->data + 4 * i, &v[i], 4);
        else memcpy(t->data + 2 * i, &h, 2);
    }
}

/* llama.cpp's convert_hf_to_gguf.py permute: rows.reshape(n_head, 2, hd/2, cols)
 * .swapaxes(1, 2).reshape(rows, cols), i.e. out[h][j][s] = in[h][s][j]. */
static void permute_rows(const float *in, float *out, int64_t n_head, int64_t hd, int64_t cols) {
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t j = 0; j < hd / 2; j++)
            for (int64_t s = 0; s < 2; s++)
                memcpy(out + ((h * (hd / 2) + j) * 2 + s) * cols,
                       in + ((h * 2 + s) * (hd / 2) + j) * cols, sizeof(float) * (size_t)cols);
}

/* lora_a [r, K] and lora_b [N, r] (B rows permuted for q/k as llama.cpp writes them). */
static void gadd_pair(gfile *g, int layer, int t, int r, uint32_t type) {
    int64_t n, k;
    target_shape(t, &n, &k);
    float *a = malloc(sizeof(float) * (size_t)(r * k));
    float *b = malloc(sizeof(float) * (size_t)(n * r));
    float *bp = malloc(sizeof(float) * (size_t)(n * r));
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < k; j++) a[i * k + j] = val(layer, t, 0, i, j);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < r; j++) b[i * r + j] = val(layer, t, 1, i, j);
    if (t == 0 || t == 1) permute_rows(b, bp, t == 0 ? 4 : 2, 16, r);
    else memcpy(bp, b, sizeof(float) * (size_t)(n * r));
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.weight.lora_a", layer, GGUF_TARGET[t]);
    gadd(g, name, type, (uint64_t)r, (uint64_t)k, a);
    snprintf(name, sizeof name, "blk.%d.%s.weight.lora_b", layer, GGUF_TARGET[t]);
    gadd(g, name, type, (uint64_t)n, (uint64_t)r, bp);
    free(a);
    free(b);
    free(bp);
}

static const char *write_gguf(const gfile *g) {
    static char path[128];
    gbuf        b = {0};
    snprintf(path, sizeof path, "%s/adapter%d.gguf", tmp_root, n_dirs++);
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)g->n_t);
    put_u64(&b, (uint64_t)g->n_kv);
    for (int i = 0; i < g->n_kv; i++) {
        put_str(&b, g->kv[i].key);
        put_u32(&b, g->kv[i].s ? 8 : 6);
        if (g->kv[i].s) put_str(&b, g->kv[i].s);
        else put(&b, &g->kv[i].f, 4);
    }
    uint64_t off = 0;
    for (int i = 0; i < g->n_t; i++) {
        put_str(&b, g->t[i].name);
        put_u32(&b, 2);
        put_u64(&b, g->t[i].ne0);
        put_u64(&b, g->t[i].ne1);
        put_u32(&b, g->t[i].type);
        put_u64(&b, off);
        off += (g->t[i].nbytes + 31) / 32 * 32;
    }
    static const uint8_t zeros[32];
    put(&b, zeros, (32 - b.n % 32) % 32);
    for (int i = 0; i < g->n_t; i++) {
        put(&b, g->t[i].data, g->t[i].nbytes);
        put(&b, zeros, (32 - g->t[i].nbytes % 32) % 32);
    }
    write_file(path, b.p, b.n);
    free(b.p);
    return path;
}

// --- checks -----------------------------------------------------------------------------------

static bool is_zeroed(const llmrt_lora_file *f) {
    static const llmrt_lora_file zero;
    return memcmp(f, &zero, sizeof zero) == 0;
}

/* Pair (layer, t) has rank r, this scale, and A / B exactly as add_pair / gadd_pair wrote them
 * (in HF row order). */
static void check_pair(const llmrt_lora_file *f, int layer, int t, int r, float scale) {
    const llmrt_lora_pair *p = &f->pairs[layer * LLMRT_LORA_N_TARGETS + t];
    int64_t                n, k, bad_a = 0, bad_b = 0;
    target_shape(t, &n, &k);
    CHECK_MSG(p->rank == r, "layer %d %s: rank %d, expected %d", layer, HF_TARGET[t], p->rank, r);
    CHECK_MSG(p->scale == scale, "layer %d %s: scale %g, expected %g", layer, HF_TARGET[t],
              (double)p->scale, (double)scale);
    if (p->rank != r || !p->a || !p->b) return;
    for (int64_t i = 0; i < r; i++)
        for (int64_t j = 0; j < k; j++) bad_a += p->a[i * k + j] != val(layer, t, 0, i, j);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < r; j++) bad_b += p->b[i * r + j] != val(layer, t, 1, i, j);
    CHECK_MSG(bad_a == 0 && bad_b == 0, "layer %d %s: %lld A and %lld B values differ", layer,
              HF_TARGET[t], (long long)bad_a, (long long)bad_b);
}

static void check_empty(const llmrt_lora_file *f, int layer, int t) {
    const llmrt_lora_pair *p = &f->pairs[layer * LLMRT_LORA_N_TARGETS + t];
    CHECK_MSG(p->rank == 0 && !p->a && !p->b, "layer %d %s should have no adapter", layer,
              HF_TARGET[t]);
}

static uint64_t pair_bytes(int t, int r) {
    int64_t n, k;
    target_shape(t, &n, &k);
    return (uint64_t)(r * (n + k)) * 4;
}

/* Loads `path` and expects failure with `status` and `needle` (and a second needle) in the
 * message, and *out zeroed. */
static void expect_fail_at(int line, const char *path, llmrt_status status, const char *needle,
                           const char *needle2) {
    llmrt_model_config cfg = tiny_config();
    llmrt_lora_file    f;
    llmrt_error        err = {0};
    memset(&f, 0x5a, sizeof f);
    llmrt_status st = llmrt_lora_file_load(path, &cfg, &f, &err);
    CHECK_MSG(st == status, "line %d: got %s, expected %s (message: %s)", line,
              llmrt_status_str(st), llmrt_status_str(status), err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: message \"%s\" lacks \"%s\"", line,
              err.msg, needle);
    if (needle2)
        CHECK_MSG(strstr(err.msg, needle2) != NULL, "line %d: message \"%s\" lacks \"%s\"", line,
                  err.msg, needle2);
    CHECK_MSG(is_zeroed(&f), "line %d: *out not zeroed after a failure", line);
    if (st == LLMRT_OK) llmrt_lora_file_free(&f);
}
#define EXPECT_FAIL(path, status, needle) expect_fail_at(__LINE__, path, status, needle, NULL)
#define EXPECT_FAIL2(path, status, needle, needle2)                                                \
    expect_fail_at(__LINE__, path, status, needle, needle2)

static bool load_ok(const char *path, llmrt_lora_file *f) {
    llmrt_model_config cfg = tiny_config();
    llmrt_error        err = {0};
    llmrt_status       st  = llmrt_lora_file_load(path, &cfg, f, &err);
    CHECK_MSG(st == LLMRT_OK, "loading %s: %s: %s", path, llmrt_status_str(st), err.msg);
    return st == LLMRT_OK;
}

// --- PEFT: valid adapters -----------------------------------------------------------------------

static void test_peft_list_targets(void) {
    tensors ts = {0};
    for (int l = 0; l < 2; l++) {
        add_pair(&ts, l, 0, 4, "F32", "");
        add_pair(&ts, l, 2, 4, "F32", "");
        add_pair(&ts, l, 6, 4, "F32", "");
    }
    const char *dir = peft_dir("{\"peft_type\":\"LORA\",\"task_type\":\"CAUSAL_LM\",\"r\":4,"
                               "\"lora_alpha\":8,\"bias\":\"none\",\"fan_in_fan_out\":false,"
                               "\"use_dora\":false,\"modules_to_save\":null,"
                               "\"target_modules\":[\"q_proj\",\"v_proj\",\"down_proj\"]}",
                               &ts);
    llmrt_lora_file f;
    if (load_ok(dir, &f)) {
        CHECK(!strcmp(f.format, "peft"));
        CHECK(f.n_layers == 2 && f.n_pairs == 6 && f.max_rank == 4);
        CHECK(f.bytes == 2 * (pair_bytes(0, 4) + pair_bytes(2, 4) + pair_bytes(6, 4)));
        for (int l = 0; l < 2; l++) {
            check_pair(&f, l, 0, 4, 2.0f);
            check_pair(&f, l, 2, 4, 2.0f);
            check_pair(&f, l, 6, 4, 2.0f);
            check_empty(&f, l, 1);
            check_empty(&f, l, 3);
            check_empty(&f, l, 4);
            check_empty(&f, l, 5);
        }
        llmrt_lora_file_free(&f);
        CHECK(is_zeroed(&f));
        llmrt_lora_file_free(&f); /* twice: a no-op */
        llmrt_lora_file_free(NULL);
    }
    tensors_free(&ts);
}

/* adapter_config.json as PEFT 0.13 writes it (every field present, most null or empty) */
static void test_peft_real_config(void) {
    tensors ts = {0};
    for (int l = 0; l < 2; l++) {
        add_pair(&ts, l, 0, 8, "BF16", "");
        add_pair(&ts, l, 2, 8, "BF16", "");
    }
    const char *dir = peft_dir(
        "{\n  \"alpha_pattern\": {},\n  \"auto_mapping\": null,\n"
        "  \"base_model_name_or_path\": \"HuggingFaceTB/SmolLM2-135M\",\n  \"bias\": \"none\",\n"
        "  \"fan_in_fan_out\": false,\n  \"inference_mode\": true,\n"
        "  \"init_lora_weights\": true,\n  \"layer_replication\": null,\n"
        "  \"layers_pattern\": null,\n  \"layers_to_transform\": null,\n"
        "  \"loftq_config\": {},\n  \"lora_alpha\": 16,\n  \"lora_dropout\": 0.05,\n"
        "  \"megatron_config\": null,\n  \"megatron_core\": \"megatron.core\",\n"
        "  \"modules_to_save\": null,\n  \"peft_type\": \"LORA\",\n  \"r\": 8,\n"
        "  \"rank_pattern\": {},\n  \"revision\": null,\n"
        "  \"target_modules\": [\n    \"v_proj\",\n    \"q_proj\"\n  ],\n"
        "  \"task_type\": \"CAUSAL_LM\",\n  \"use_dora\": false,\n  \"use_rslora\": false\n}\n",
        &ts);
    llmrt_lora_file f;
    if (load_ok(dir, &f)) {
        CHECK(f.n_pairs == 4 && f.max_rank == 8);
        for (int l = 0; l < 2; l++) {
            check_pair(&f, l, 0, 8, 2.0f);
            check_pair(&f, l, 2, 8, 2.0f);
        }
        llmrt_lora_file_free(&f);
    }
    tensors_free(&ts);
}

/* A string target_modules is re.fullmatch on the module name: "k_proj" alone matches nothing. */
static void test_peft_regex_target(void) {
    tensors ts = {0};
    add_pair(&ts, 1, 1, 2, "F32", "");
    add_pair(&ts, 1, 3, 2, "F32", "");
    /* the "|model\\.layers\\.0" alternative matches a prefix of layer 0's names, not a whole
     * name: with fullmatch it targets nothing */
    const char *dir = peft_dir("{\"r\":2,\"lora_alpha\":3,\"target_modules\":"
                               "\".*\\\\.layers\\\\.1\\\\.self_attn\\\\.(k|o)_proj"
                               "|model\\\\.layers\\\\.0\"}",
                               &ts);
    llmrt_lora_file f;
    if (load_ok(dir, &f)) {
        CHECK(f.n_pairs == 2 && f.max_rank == 2);
        check_pair(&f, 1, 1, 2, 1.5f);
        check_pair(&f, 1, 3, 2, 1.5f);
        check_empty(&f, 0, 1);
        check_empty(&f, 1, 0);
        llmrt_lora_file_free(&f);
    }
    dir = peft_dir("{\"r\":2,\"lora_alpha\":3,\"target_modules\":\"k_proj|o_proj\"}", &ts);
    EXPECT_FAIL2(dir, LLMRT_ERR_MODEL_MISMATCH, "layers.1.self_attn.k_proj.lora_A.weight",
                 "does not target");
    dir = peft_dir("{\"r\":2,\"lora_alpha\":3,\"target_modules\":\"(k_proj\"}", &ts);
    EXPECT_FAIL2(dir, LLMRT_ERR_FORMAT, "target_modules", "does not compile");
    /* "all-linear": every projection */
    tensors all = {0};
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 7; t++) add_pair(&all, l, t, 2, "F32", "");
    dir = peft_dir("{\"r\":2,\"lora_alpha\":2,\"target_modules\":\"all-linear\"}", &all);
    if (load_ok(dir, &f)) {
        CHECK(f.n_pairs == 14);
        check_pair(&f, 1, 4, 2, 1.0f);
        llmrt_lora_file_free(&f);
    }
    tensors_free(&all);
    tensors_free(&ts);
}

/* First matching key wins; "proj" does not match "up_proj" ((.*\.)?(proj)$ needs a dot). */
static void test_peft_patterns(void) {
    tensors ts = {0};
    add_pair(&ts, 0, 0, 4, "F32", "");
    add_pair(&ts, 1, 0, 4, "F32", "");
    add_pair(&ts, 0, 5, 6, "F32", "");
    add_pair(&ts, 1, 5, 2, "F32", "");
    const char *dir = peft_dir(
        "{\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\",\"up_proj\"],"
        "\"rank_pattern\":{\"proj\":5,\"layers.1.mlp.up_proj\":2,\"up_proj\":6,\"mlp.up_proj\":7},"
        "\"alpha_pattern\":{\"mlp\\\\.up_proj\":3,\"model.layers.1.self_attn.q_proj\":1}}",
        &ts);
    llmrt_lora_file f;
    if (load_ok(dir, &f)) {
        CHECK(f.n_pairs == 4 && f.max_rank == 6);
        check_pair(&f, 0, 0, 4, 2.0f);
        check_pair(&f, 1, 0, 4, 0.25f);
        check_pair(&f, 0, 5, 6, 0.5f);
        check_pair(&f, 1, 5, 2, 1.5f);
        llmrt_lora_file_free(&f);
    }
    /* the file's rank disagrees with the rank_pattern */
    dir = peft_dir("{\"r\":4,\"lora_alpha\":8,\"target_modules\":[\"q_proj\",\"up_proj\"],"
                   "\"rank_pattern\":{\"up_proj\":6}}",
                   &ts);
    EXPECT_FAIL2(dir, LLMRT_ERR_MODEL_MISMATCH, "layers.1.mlp.up_proj.lora_A.weight has rank 2",
                 "r = 6");
    dir = peft_dir("{\"r\":4,\"target_modules\":[\"q_proj\"],\"rank_pattern\":{\"q_proj\":0}}",
                   &ts);
    EXPECT_FAIL(dir, LLMRT_ERR_FORMAT, "rank_pattern[\"q_proj\"]");
    tensors_free(&ts);
}

static void test_peft_rslora(void) {
    tensors ts = {0};
    add_pair(&ts, 0, 3, 4, "F32", "");
    const char *dir = peft_dir("{\"r\":4,\"lora_alpha\":8,\"use_rslora\":true,"
                               "\"target_modules\":[\"model.layers.0.self_attn.o_proj\"]}",
                               &ts);
    llmrt_lora_file f;
    if (load_ok(dir, &f)) {
        CHECK(f.n_pairs == 1);
        check_pair(&f, 0, 3, 4, 4.0f); /* 8 / sqrt(4) */
        llmrt_lora_file_free(&f);
    }
    tensors_free(&ts);
}

static void test_peft_layers_to_transform(void) {
    tensors ts = {0};
    add_pair(&ts, 1, 0, 2, "F32", "");
    const char *configs[] = {
        "{\"r\":2,\"lora_alpha\":2,\"target_modules\":[\"q_proj\"],\"layers_to_transform\":[1]}",
        "{\"r\":2,\"lora_alpha\":2,\"target_modules\":[\"q_proj\"],\"layers_to_transform\":1,"
        "\"layers_pattern\":\"layers\"}",
        "{\"r\":2,\"lora_alpha\":2,\"target_modules\":[\"q_proj\"],\"layers_to_transform\":[1],"
        "\"layers_pattern\":[\"h\",\"layers\"]}",
    };
    for (int i = 0; i < 3; i++) {
        llmrt_lora_file f;
        if (load_ok(peft_dir(configs[i], &ts), &f)) {
            CHECK(f.n_pairs == 1);
            check_pair(&f, 1, 0, 2, 1.0f);
            check_empty(&f, 0, 0);
            llmrt_lora_file_free(&f);
        }
    }
    /* a name equal to an entry is targeted without the layer filter; a suffix match is filtered */
    add_pair(&ts, 0, 0, 2, "F32", "");
    llmrt_lora_file f;
    if (load_ok(peft_dir("{\"r\":2,\"lora_alpha\":2,\"target_modules\":[\"q_proj\","
                         "\"model.layers.0.self_attn.q_proj\"],\"layers_to_transform\":[1]}",
                         &ts),
                &f)) {
        CHECK(f.n_pairs == 2);
        check_pair(&f, 0, 0, 2, 1.0f);
        check_pair(&f, 1, 0, 2, 1.0f);
        llmrt_lora_file_free(&f);
    }
    /* a layer outside layers_to_transform holds tensors */
    EXPECT_FAIL2(peft_dir(configs[0], &ts), LLMRT_ERR_MODEL_MISMATCH,
                 "model.layers.0.self_attn.q_proj", "does not target");
    /* a layers_pattern that matches no module name: nothing is targeted */
    EXPECT_FAIL(peft_dir("{\"r\":2,\"target_modules\":[\"q_proj\"],\"layers_to_transform\":[0,1],"
                         "\"layers_pattern\":\"h\"}",
                         &ts),
                LLMRT_ERR_MODEL_MISMATCH, "does not target");
    tensors_free(&ts);
}

/* exclude_modules (a list: equal or suffix; a string: fullmatch) removes modules first */
static void test_peft_exclude(void) {
    tensors ts = {0};
    add_pair(&ts, 0, 0, 2, "F32", "");
    const char *configs[] = {
        "{\"r\":2,\"lora_alpha\":2,\"target_modules\":[\"q_proj\",\"o_proj\"],"
        "\"exclude_modules\":[\"o_proj\",\"model.layers.1.self_attn.q_proj\"]}",
        "{\"r\":2,\"lora_alpha\":2,\"target_modules\":[\"q_proj\",\"o_proj\"],"
        "\"exclude_modules\":\".*o_proj|model\\\\.layers\\\\.1\\\\..*\"}",
    };
    for (int i = 0; i < 2; i++) {
        llmrt_lora_file f;
        if (load_ok(peft_dir(configs[i], &ts), &f)) {
            CHECK(f.n_pairs == 1);
            check_pair(&f, 0, 0, 2, 1.0f);
            llmrt_lora_file_free(&f);
        }
    }
    /* without the exclusion, layer 1 q_proj and both o_proj are targeted and missing */
    EXPECT_FAIL(peft_dir("{\"r\":2,\"target_modules\":[\"q_proj\",\"o_proj\"],"
                         "\"exclude_modules\":[\"o_proj\"]}",
                         &ts),
                LLMRT_ERR_MODEL_MISMATCH, "layers.1.self_attn.q_proj.lora_A.weight is missing");
    tensors_free(&ts);
}

static void test_peft_dtypes_and_adapter_name(void) {
    tensors ts = {0};
    add_pair(&ts, 0, 4, 3, "F16", ".default");
    add_pair(&ts, 1, 6, 5, "BF16", ".default");
    const char *dir = peft_dir("{\"r\":3,\"lora_alpha\":6,\"target_modules\":[\"gate_proj\","
                               "\"down_proj\"],\"layers_to_transform\":[],"
                               "\"rank_pattern\":{\"down_proj\":5}}",
                               &ts);
    llmrt_lora_file f;
    /* layer 1 gate and layer 0 down are targeted too: both must be there */
    EXPECT_FAIL(dir, LLMRT_ERR_MODEL_MISMATCH,
                "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight is missing");
    add_pair(&ts, 1, 4, 3, "BF16", ".default");
    add_pair(&ts, 0, 6, 5, "F16", ".default");
    dir = peft_dir("{\"r\":3,\"lora_alpha\":6,\"target_modules\":[\"gate_proj\",\"down_proj\"],"
                   "\"rank_pattern\":{\"down_proj\":5}}",
                   &ts);
    if (load_ok(dir, &f)) {
        CHECK(f.n_pairs == 4 && f.max_rank == 5);
        check_pair(&f, 0, 4, 3, 2.0f);
        check_pair(&f, 1, 4, 3, 2.0f);
        check_pair(&f, 0, 6, 5, 1.2f);
        check_pair(&f, 1, 6, 5, 1.2f);
        llmrt_lora_file_free(&f);
    }
    tensors_free(&ts);
}

// --- PEFT: refusals -----------------------------------------------------------------------------

static const char *QV = "\"target_modules\":[\"q_proj\",\"v_proj\"]";

static const char *cfg_with(const char *extra) {
    static char buf[512];
    snprintf(buf, sizeof buf, "{\"r\":4,\"lora_alpha\":8,%s%s%s}", QV, extra[0] ? "," : "", extra);
    return buf;
}

static void test_peft_unsupported_config(void) {
    tensors ts = {0};
    for (int l = 0; l < 2; l++) {
        add_pair(&ts, l, 0, 4, "F32", "");
        add_pair(&ts, l, 2, 4, "F32", "");
    }
    llmrt_lora_file f;
    if (load_ok(peft_dir(cfg_with(""), &ts), &f)) llmrt_lora_file_free(&f);
    EXPECT_FAIL2(peft_dir(cfg_with("\"use_dora\":true"), &ts), LLMRT_ERR_UNSUPPORTED, "use_dora",
                 "adapter_config.json");
    EXPECT_FAIL(peft_dir(cfg_with("\"modules_to_save\":[\"lm_head\"]"), &ts),
                LLMRT_ERR_UNSUPPORTED, "modules_to_save");
    EXPECT_FAIL(peft_dir(cfg_with("\"bias\":\"lora_only\""), &ts), LLMRT_ERR_UNSUPPORTED,
                "bias \"lora_only\"");
    EXPECT_FAIL(peft_dir(cfg_with("\"peft_type\":\"IA3\""), &ts), LLMRT_ERR_UNSUPPORTED,
                "peft_type \"IA3\"");
    EXPECT_FAIL(peft_dir(cfg_with("\"use_qalora\":true"), &ts), LLMRT_ERR_UNSUPPORTED,
                "use_qalora");
    EXPECT_FAIL(peft_dir(cfg_with("\"lora_bias\":true"), &ts), LLMRT_ERR_UNSUPPORTED,
                "lora_bias");
    EXPECT_FAIL(peft_dir("{\"r\":4,\"target_modules\":[\"q_proj\",\"embed_tokens\"]}", &ts),
                LLMRT_ERR_UNSUPPORTED, "embed_tokens");
    EXPECT_FAIL(peft_dir("{\"r\":4,\"target_modules\":\"(.*\\\\.)?(q_proj|v_proj|lm_head)\"}", &ts),
                LLMRT_ERR_UNSUPPORTED, "lm_head");
    EXPECT_FAIL2(peft_dir("{\"r\":0,\"target_modules\":[\"q_proj\"]}", &ts), LLMRT_ERR_FORMAT,
                 "\"r\"", "adapter_config.json");
    EXPECT_FAIL(peft_dir("{\"r\":4,\"lora_alpha\":8}", &ts), LLMRT_ERR_FORMAT, "target_modules");
    EXPECT_FAIL(peft_dir("{\"r\":4,\"target_modules\":[\"q_proj\",3]}", &ts), LLMRT_ERR_FORMAT,
                "target_modules");
    EXPECT_FAIL(peft_dir(cfg_with("\"layers_to_transform\":\"all\""), &ts), LLMRT_ERR_FORMAT,
                "layers_to_transform");
    EXPECT_FAIL2(peft_dir("{\"r\":4,\"target_modules\":[\"q_proj\"", &ts), LLMRT_ERR_FORMAT,
                 "adapter_config.json", "");
    EXPECT_FAIL(peft_dir("[1,2]", &ts), LLMRT_ERR_FORMAT, "not a JSON object");
    /* no targets matched and no tensors */
    tensors none = {0};
    EXPECT_FAIL(peft_dir("{\"r\":4,\"target_modules\":[\"c_attn\"]}", &none),
                LLMRT_ERR_MODEL_MISMATCH, "no LoRA A/B pair");
    tensors_free(&ts);
}

static void test_peft_bad_tensors(void) {
    const char *cfg = cfg_with("");
    tensors     ts  = {0};
    float       z[4 * 64];
    memset(z, 0, sizeof z);
    /* unknown / unsupported tensor names */
    static const struct {
        const char *name, *needle;
    } names[] = {
        {"base_model.model.lm_head.lora_A.weight", "lm_head"},
        {"base_model.model.model.embed_tokens.lora_embedding_A", "lora_embedding_A"},
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", "DoRA"},
        {"base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias", "LoRA bias"},
        {"base_model.model.model.layers.0.self_attn.qq_proj.lora_A.weight", "qq_proj"},
        {"base_model.model.model.layers.00.self_attn.q_proj.lora_A.weight", "layers.00"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        for (int l = 0; l < 2; l++) {
            add_pair(&ts, l, 0, 4, "F32", "");
            add_pair(&ts, l, 2, 4, "F32", "");
        }
        add_tensor(&ts, names[i].name, "F32", 4, 64, z);
        EXPECT_FAIL2(peft_dir(cfg, &ts), LLMRT_ERR_UNSUPPORTED, names[i].needle,
                     "adapter_model.safetensors");
        tensors_free(&ts);
    }
    /* a layer the model does not have */
    add_pair(&ts, 0, 0, 4, "F32", "");
    add_pair(&ts, 2, 0, 4, "F32", "");
    EXPECT_FAIL2(peft_dir(cfg, &ts), LLMRT_ERR_MODEL_MISMATCH, "layers.2.self_attn.q_proj",
                 "has 2 layers");
    tensors_free(&ts);
    /* missing lora_B */
    for (int l = 0; l < 2; l++) {
        add_pair(&ts, l, 0, 4, "F32", "");
        add_pair(&ts, l, 2, 4, "F32", "");
    }
    free(ts.e[3].data);
    ts.e[3] = ts.e[--ts.n]; /* drops layer 0 v_proj lora_B */
    EXPECT_FAIL(peft_dir(cfg, &ts), LLMRT_ERR_MODEL_MISMATCH,
                "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight is missing");
    tensors_free(&ts);
    /* wrong shapes: A [4, 32] for q (in 64); B [48, 4] for v (out 32) */
    for (int l = 0; l < 2; l++) {
        add_pair(&ts, l, 0, 4, "F32", "");
        add_pair(&ts, l, 2, 4, "F32", "");
    }
    ts.e[4].shape[1] = 32;
    ts.e[4].nbytes /= 2;
    EXPECT_FAIL2(peft_dir(cfg, &ts), LLMRT_ERR_MODEL_MISMATCH,
                 "layers.1.self_attn.q_proj.lora_A.weight has shape [4, 32]", "in-features 64");
    ts.e[4].shape[1] = 64;
    ts.e[4].nbytes *= 2;
    free(ts.e[7].data);
    ts.e[7].shape[0] = 48;
    ts.e[7].nbytes   = 48 * 4 * 4;
    ts.e[7].data     = calloc(ts.e[7].nbytes, 1);
    EXPECT_FAIL2(peft_dir(cfg, &ts), LLMRT_ERR_MODEL_MISMATCH,
                 "layers.1.self_attn.v_proj.lora_B.weight has shape [48, 4]", "out-features 32");
    tensors_free(&ts);
    /* a non-finite value */
    for (int l = 0; l < 2; l++) {
        add_pair(&ts, l, 0, 4, "F32", "");
        add_pair(&ts, l, 2, 4, "F32", "");
    }
    float nan = NAN;
    memcpy(ts.e[6].data + 4 * 5, &nan, 4);
    EXPECT_FAIL2(peft_dir(cfg, &ts), LLMRT_ERR_INVALID_ARG,
                 "layers.1.self_attn.v_proj.lora_A.weight", "non-finite");
    /* an integer dtype */
    snprintf(ts.e[6].dtype, sizeof ts.e[6].dtype, "I32");
    EXPECT_FAIL2(peft_dir(cfg, &ts), LLMRT_ERR_UNSUPPORTED, "v_proj.lora_A.weight", "dtype I32");
    tensors_free(&ts);
}

static void test_peft_ranks(void) {
    tensors ts = {0};
    /* rank 0 tensors (config r 0 is refused by the config check; here the file disagrees) */
    add_pair(&ts, 0, 0, 0, "F32", "");
    EXPECT_FAIL2(peft_dir("{\"r\":4,\"target_modules\":[\"model.layers.0.self_attn.q_proj\"]}",
                          &ts),
                 LLMRT_ERR_MODEL_MISMATCH, "has rank 0", "r = 4");
    tensors_free(&ts);
    /* rank 5000 (and the config says so) */
    add_pair(&ts, 0, 0, 5000, "F16", "");
    EXPECT_FAIL2(peft_dir("{\"r\":5000,\"target_modules\":[\"model.layers.0.self_attn.q_proj\"]}",
                          &ts),
                 LLMRT_ERR_UNSUPPORTED, "q_proj.lora_A.weight has rank 5000", "1 to 64");
    tensors_free(&ts);
    /* rank 80 > min(out, in) = 64 of q_proj */
    add_pair(&ts, 0, 0, 80, "F16", "");
    EXPECT_FAIL(peft_dir("{\"r\":80,\"target_modules\":[\"model.layers.0.self_attn.q_proj\"]}",
                         &ts),
                LLMRT_ERR_UNSUPPORTED, "has rank 80");
    tensors_free(&ts);
    /* rank 64 = min(out, in): accepted */
    add_pair(&ts, 0, 0, 64, "F16", "");
    llmrt_lora_file f;
    if (load_ok(peft_dir("{\"r\":64,\"lora_alpha\":16,"
                         "\"target_modules\":[\"model.layers.0.self_attn.q_proj\"]}",
                         &ts),
                &f)) {
        check_pair(&f, 0, 0, 64, 0.25f);
        llmrt_lora_file_free(&f);
    }
    tensors_free(&ts);
}

static void test_peft_files(void) {
    tensors ts = {0};
    for (int l = 0; l < 2; l++) {
        add_pair(&ts, l, 0, 4, "F32", "");
        add_pair(&ts, l, 2, 4, "F32", "");
    }
    char path[256];
    /* a truncated safetensors file */
    const char *dir = peft_dir(cfg_with(""), &ts);
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    CHECK(truncate(path, sb.st_size - 100) == 0);
    EXPECT_FAIL(dir, LLMRT_ERR_FORMAT, "adapter_model.safetensors");
    /* adapter_model.bin only */
    dir = peft_dir(cfg_with(""), NULL);
    snprintf(path, sizeof path, "%s/adapter_model.bin", dir);
    write_file(path, "PK\3\4", 4);
    EXPECT_FAIL2(dir, LLMRT_ERR_UNSUPPORTED, "pickle files are not read", "adapter_model.bin");
    /* no weights at all; no config */
    EXPECT_FAIL(peft_dir(cfg_with(""), NULL), LLMRT_ERR_IO, "no adapter_model.safetensors");
    EXPECT_FAIL(peft_dir(NULL, &ts), LLMRT_ERR_IO, "no adapter_config.json");
    /* not an adapter at all; nothing there */
    snprintf(path, sizeof path, "%s/notes.txt", tmp_root);
    write_file(path, "hello world", 11);
    EXPECT_FAIL(path, LLMRT_ERR_FORMAT, "not a LoRA adapter");
    snprintf(path, sizeof path, "%s/absent", tmp_root);
    EXPECT_FAIL(path, LLMRT_ERR_IO, "absent");
    /* NULL arguments */
    llmrt_model_config cfg = tiny_config();
    llmrt_lora_file    f;
    llmrt_error        err;
    CHECK(llmrt_lora_file_load(NULL, &cfg, &f, &err) == LLMRT_ERR_INVALID_ARG);
    CHECK(llmrt_lora_file_load(path, NULL, &f, &err) == LLMRT_ERR_INVALID_ARG);
    CHECK(llmrt_lora_file_load(path, &cfg, NULL, &err) == LLMRT_ERR_INVALID_ARG);
    CHECK(llmrt_lora_file_load(path, &cfg, &f, NULL) == LLMRT_ERR_IO);
    tensors_free(&ts);
}

// --- GGUF adapters ------------------------------------------------------------------------------

static void test_gguf_valid(void) {
    gfile g = {0};
    gfile_adapter_meta(&g, 16.0f, true);
    for (int l = 0; l < 2; l++) {
        gadd_pair(&g, l, 0, 4, 0);
        gadd_pair(&g, l, 1, 4, 0);
        gadd_pair(&g, l, 2, 4, 1);
        gadd_pair(&g, l, 6, 8, 30);
    }
    llmrt_lora_file f;
    if (load_ok(write_gguf(&g), &f)) {
        CHECK(!strcmp(f.format, "gguf"));
        CHECK(f.n_pairs == 8 && f.max_rank == 8);
        CHECK(f.bytes == 2 * (pair_bytes(0, 4) + pair_bytes(1, 4) + pair_bytes(2, 4) +
                              pair_bytes(6, 8)));
        for (int l = 0; l < 2; l++) {
            check_pair(&f, l, 0, 4, 4.0f); /* q: B rows back in HF order */
            check_pair(&f, l, 1, 4, 4.0f); /* k: 2 KV heads */
            check_pair(&f, l, 2, 4, 4.0f);
            check_pair(&f, l, 6, 8, 2.0f);
            check_empty(&f, l, 3);
        }
        llmrt_lora_file_free(&f);
    }
    gfile_free(&g);
    /* no adapter.lora.alpha: scale 1 (llama.cpp: alpha = r) */
    g = (gfile){0};
    gfile_adapter_meta(&g, 0, false);
    gadd_pair(&g, 1, 3, 2, 0);
    if (load_ok(write_gguf(&g), &f)) {
        CHECK(f.n_pairs == 1);
        check_pair(&f, 1, 3, 2, 1.0f);
        llmrt_lora_file_free(&f);
    }
    gfile_free(&g);
}

/* The un-permutation is not the identity: reading q's B without it would differ. */
static void test_gguf_permutation_matters(void) {
    float in[64], out[64];
    for (int i = 0; i < 64; i++) in[i] = (float)i;
    permute_rows(in, out, 4, 16, 1);
    CHECK(out[1] == 8.0f && out[2] == 1.0f && out[16] == 16.0f && out[17] == 24.0f);
}

static void test_gguf_refusals(void) {
    gfile g = {0};
    g.kv[g.n_kv++] = (gkv){"general.type", "model", 0};
    g.kv[g.n_kv++] = (gkv){"general.architecture", "llama", 0};
    gadd_pair(&g, 0, 0, 4, 0);
    EXPECT_FAIL2(write_gguf(&g), LLMRT_ERR_UNSUPPORTED, "general.type is \"model\"", ".gguf");
    g.n_kv = 0;
    EXPECT_FAIL(write_gguf(&g), LLMRT_ERR_UNSUPPORTED, "general.type is missing");
    g.kv[g.n_kv++] = (gkv){"general.type", "adapter", 0};
    g.kv[g.n_kv++] = (gkv){"general.architecture", "llama", 0};
    g.kv[g.n_kv++] = (gkv){"adapter.type", "control_vector", 0};
    EXPECT_FAIL(write_gguf(&g), LLMRT_ERR_UNSUPPORTED, "adapter.type is \"control_vector\"");
    g.kv[1] = (gkv){"general.architecture", "qwen2", 0};
    g.kv[2] = (gkv){"adapter.type", "lora", 0};
    EXPECT_FAIL(write_gguf(&g), LLMRT_ERR_UNSUPPORTED, "general.architecture is \"qwen2\"");
    gfile_free(&g);

    /* a Q4_0 lora_a */
    g = (gfile){0};
    gfile_adapter_meta(&g, 8, true);
    gadd(&g, "blk.0.attn_q.weight.lora_a", 2, 4, 64, NULL);
    gadd(&g, "blk.0.attn_q.weight.lora_b", 0, 64, 4, NULL);
    EXPECT_FAIL2(write_gguf(&g), LLMRT_ERR_UNSUPPORTED, "blk.0.attn_q.weight.lora_a",
                 "ggml type Q4_0");
    gfile_free(&g);
    /* a missing lora_b */
    g = (gfile){0};
    gfile_adapter_meta(&g, 8, true);
    gadd_pair(&g, 0, 0, 4, 0);
    gadd(&g, "blk.1.ffn_up.weight.lora_a", 0, 4, 64, NULL);
    EXPECT_FAIL(write_gguf(&g), LLMRT_ERR_MODEL_MISMATCH, "blk.1.ffn_up.weight.lora_b is missing");
    gfile_free(&g);
    /* adapters on the token embeddings; an unknown name */
    g = (gfile){0};
    gfile_adapter_meta(&g, 8, true);
    gadd(&g, "token_embd.weight.lora_a", 0, 4, 64, NULL);
    EXPECT_FAIL2(write_gguf(&g), LLMRT_ERR_UNSUPPORTED, "token_embd.weight.lora_a",
                 "embeddings");
    g.t[0].name[0] = 'x';
    EXPECT_FAIL(write_gguf(&g), LLMRT_ERR_UNSUPPORTED, "xoken_embd.weight.lora_a");
    gfile_free(&g);
    /* transposed lora_a (ne = [r, K]: rows 64, cols 4) */
    g = (gfile){0};
    gfile_adapter_meta(&g, 8, true);
    gadd(&g, "blk.0.attn_v.weight.lora_a", 0, 64, 4, NULL);
    gadd(&g, "blk.0.attn_v.weight.lora_b", 0, 32, 4, NULL);
    EXPECT_FAIL2(write_gguf(&g), LLMRT_ERR_MODEL_MISMATCH, "blk.0.attn_v.weight.lora_a",
                 "ne=[4, 64]");
    gfile_free(&g);
    /* a non-finite alpha */
    g = (gfile){0};
    gfile_adapter_meta(&g, INFINITY, true);
    gadd_pair(&g, 0, 2, 4, 0);
    EXPECT_FAIL(write_gguf(&g), LLMRT_ERR_FORMAT, "adapter.lora.alpha");
    gfile_free(&g);
}

int main(void) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/test_lora_file_XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    test_peft_list_targets();
    test_peft_real_config();
    test_peft_regex_target();
    test_peft_patterns();
    test_peft_rslora();
    test_peft_layers_to_transform();
    test_peft_exclude();
    test_peft_dtypes_and_adapter_name();
    test_peft_unsupported_config();
    test_peft_bad_tensors();
    test_peft_ranks();
    test_peft_files();
    test_gguf_valid();
    test_gguf_permutation_matters();
    test_gguf_refusals();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_root);
    return test_summary("test_lora_file");
}
