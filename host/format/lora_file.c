/* LoRA adapter files (lora_file.h): a PEFT directory or a llama.cpp GGUF adapter, read into one
 * checked host form. Each format's reader only finds the tensors and says, per (layer, target),
 * which A and B it has and which rank and scale the adapter's config gives; the shared part
 * (build) then checks every shape against the model with overflow-checked math, sizes one
 * allocation and converts to fp32, undoing GGUF's q/k row permutation on the way.
 *
 * PEFT semantics mirrored here (peft/tuners/tuners_utils.py check_target_module_exists and
 * peft/utils/other.py get_pattern_key), on module names as PEFT sees them in the base model
 * ("model.layers.3.self_attn.q_proj"):
 *   - target_modules a string: re.fullmatch(target_modules, name) ("all-linear": every
 *     projection); a list: name equals an entry, or ends with "." + entry, and then, when
 *     layers_to_transform is set, the layer index found by
 *     re.match(".*\.{layers_pattern}\.(\d+)\.") (".*\.[^.]*\.(\d+)\." without layers_pattern)
 *     must be (in) layers_to_transform;
 *   - exclude_modules (same forms) removes modules first;
 *   - rank_pattern / alpha_pattern: the first key (in file order) with
 *     re.match("(.*\.)?({key})$", name) gives the module's r / lora_alpha.
 * Regular expressions are PCRE2 with match limits (a pathological pattern fails, it does not
 * hang). Non-finite A/B values are refused (LLMRT_ERR_INVALID_ARG naming the tensor): one NaN
 * would poison every token that uses the adapter. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "lora_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/checked_math.h"
#include "../core/half.h"
#include "../core/json_util.h"
#include "../core/regular_file.h"
#include "gguf.h"
#include "safetensors.h"

#define LORA_CONFIG_MAX_BYTES  (4u << 20) /* adapter_config.json: a few KiB in practice */
#define LORA_PATTERN_MAX_BYTES 4096       /* one regular expression from the config */
#define LORA_MATCH_LIMIT       100000     /* PCRE2 backtracking budget per match */
#define LORA_DEPTH_LIMIT       1000
#define LORA_HEAP_LIMIT_KIB    16384
#define LORA_MAX_LAYERS        4096 /* slots are allocated per layer before any file is read */

// --- targets ----------------------------------------------------------------------------------

static const char *const TARGET_NAME[LLMRT_LORA_N_TARGETS] = {
    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
};
static const char *const TARGET_PARENT[LLMRT_LORA_N_TARGETS] = {
    "self_attn", "self_attn", "self_attn", "self_attn", "mlp", "mlp", "mlp",
};
static const char *const GGUF_TARGET_NAME[LLMRT_LORA_N_TARGETS] = {
    "attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down",
};

const char *llmrt_lora_target_name(llmrt_lora_target t) {
    return (unsigned)t < LLMRT_LORA_N_TARGETS ? TARGET_NAME[t] : "unknown";
}

void llmrt_lora_target_shape(const llmrt_model_config *cfg, llmrt_lora_target t, int64_t *n,
                             int64_t *k) {
    int64_t d = cfg->hidden_size, f = cfg->intermediate_size;
    int64_t q = (int64_t)cfg->n_heads * cfg->head_dim;
    int64_t kv = (int64_t)cfg->n_kv_heads * cfg->head_dim;
    int64_t shape[LLMRT_LORA_N_TARGETS][2] = {{q, d}, {kv, d}, {kv, d}, {d, q},
                                               {f, d}, {f, d}, {d, f}};
    bool ok = (unsigned)t < LLMRT_LORA_N_TARGETS;
    *n      = ok ? shape[t][0] : 0;
    *k      = ok ? shape[t][1] : 0;
}

void llmrt_lora_file_free(llmrt_lora_file *f) {
    if (!f) return;
    free(f->pairs);
    free(f->mem);
    memset(f, 0, sizeof *f);
}

// --- the shared part: slots, checks, conversion -------------------------------------------------

/* One tensor as the file holds it, before conversion. */
typedef struct lora_src {
    const char    *name;      /* the file's name for it (into the open file's tensor table) */
    llmrt_dtype    dtype;     /* F32, F16 or BF16 */
    const uint8_t *data;      /* rows * cols elements, row-major, possibly unaligned */
    uint64_t       rows, cols;
} lora_src;

/* One (layer, target) while loading. */
typedef struct lora_slot {
    bool     has_a, has_b;
    lora_src a, b;          /* A [r, K], B [N, r] (row-major) */
    int32_t  want_rank;     /* rank the config gives (PEFT); 0: any (GGUF) */
    double   alpha;         /* scale = alpha / r (or / sqrt(r) with rslora) */
    bool     rslora;
    bool     unit_scale;    /* GGUF without adapter.lora.alpha: scale 1 (alpha = r) */
    int64_t  unpermute_hd;  /* GGUF q/k: B rows are in llama.cpp's order, heads of this size */
} lora_slot;

typedef struct lora_load {
    const char               *path; /* the file named in messages */
    const llmrt_model_config *cfg;
    bool                      gguf; /* shapes in messages as ggml ne (innermost first) */
    lora_slot                *slots; /* [n_layers * LLMRT_LORA_N_TARGETS] */
} lora_load;

static lora_slot *slot_at(lora_load *L, int64_t layer, int t) {
    return &L->slots[layer * LLMRT_LORA_N_TARGETS + t];
}

/* "[rows, cols]" (safetensors, row-major) or "ne=[cols, rows]" (GGUF). */
static const char *shape_str(const lora_load *L, uint64_t rows, uint64_t cols, char *buf,
                             size_t n) {
    if (L->gguf) snprintf(buf, n, "ne=[%llu, %llu]", (unsigned long long)cols,
                          (unsigned long long)rows);
    else snprintf(buf, n, "[%llu, %llu]", (unsigned long long)rows, (unsigned long long)cols);
    return buf;
}

/* Checks one slot's A and B against the model's projection; *rank on success. */
static llmrt_status check_slot(const lora_load *L, int64_t layer, int t, const lora_slot *s,
                               int32_t *rank, llmrt_error *err) {
    int64_t n, k;
    char    got[64], want[64];
    llmrt_lora_target_shape(L->cfg, (llmrt_lora_target)t, &n, &k);
    if (s->a.cols != (uint64_t)k)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %.200s has shape %s; layer %lld %s of the model has "
                         "in-features %lld, so lora_A must be %s", L->path, s->a.name,
                         shape_str(L, s->a.rows, s->a.cols, got, sizeof got), (long long)layer,
                         TARGET_NAME[t], (long long)k,
                         shape_str(L, s->a.rows, (uint64_t)k, want, sizeof want));
    if (s->b.rows != (uint64_t)n)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %.200s has shape %s; layer %lld %s of the model has "
                         "out-features %lld, so lora_B must be %s", L->path, s->b.name,
                         shape_str(L, s->b.rows, s->b.cols, got, sizeof got), (long long)layer,
                         TARGET_NAME[t], (long long)n,
                         shape_str(L, (uint64_t)n, s->b.cols, want, sizeof want));
    if (s->a.rows != s->b.cols)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensors %.200s (rank %llu) and %.200s (rank %llu) disagree on the "
                         "rank",
                         L->path, s->a.name, (unsigned long long)s->a.rows, s->b.name,
                         (unsigned long long)s->b.cols);
    uint64_t r = s->a.rows;
    if (s->want_rank && r != (uint64_t)s->want_rank)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: tensor %.200s has rank %llu but adapter_config.json gives r = %d for "
                         "layer %lld %s (r / rank_pattern)", L->path, s->a.name,
                         (unsigned long long)r, s->want_rank, (long long)layer, TARGET_NAME[t]);
    if (r < 1)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: tensor %.200s has rank 0", L->path, s->a.name);
    int64_t max = n < k ? n : k;
    if (max > LLMRT_LORA_MAX_RANK) max = LLMRT_LORA_MAX_RANK;
    if (r > (uint64_t)max)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "%s: tensor %.200s has rank %llu; supported ranks are 1 to %lld for layer "
                         "%lld %s [%lld, %lld] (min(out, in), at most LLMRT_LORA_MAX_RANK %d)",
                         L->path, s->a.name, (unsigned long long)r, (long long)max,
                         (long long)layer, TARGET_NAME[t], (long long)n, (long long)k,
                         LLMRT_LORA_MAX_RANK);
    *rank = (int32_t)r;
    return LLMRT_OK;
}

static float src_elem(const lora_src *s, uint64_t i) {
    if (s->dtype == LLMRT_DTYPE_F32) {
        float v;
        memcpy(&v, s->data + 4 * i, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, s->data + 2 * i, 2);
    return s->dtype == LLMRT_DTYPE_F16 ? llmrt_f16_to_f32(h) : llmrt_bf16_to_f32(h);
}

/* dst [rows, cols] fp32 from s; with unpermute_hd, dst row r comes from the GGUF row holding HF
 * row r. */
static llmrt_status convert(const lora_load *L, const lora_src *s, int64_t unpermute_hd,
                            float *dst, llmrt_error *err) {
    for (uint64_t r = 0; r < s->rows; r++) {
        uint64_t src_row = unpermute_hd ? (uint64_t)llmrt_gguf_qk_row((int64_t)r, unpermute_hd) : r;
        for (uint64_t c = 0; c < s->cols; c++) {
            float v = src_elem(s, src_row * s->cols + c);
            if (!isfinite(v))
                return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                                 "%s: tensor %.200s holds a non-finite value (%g) at [%llu, %llu]",
                                 L->path, s->name, (double)v, (unsigned long long)src_row,
                                 (unsigned long long)c);
            *dst++ = v;
        }
    }
    return LLMRT_OK;
}

static llmrt_status slot_scale(const lora_load *L, const lora_slot *s, int32_t r, float *scale,
                               llmrt_error *err) {
    double v = s->unit_scale ? 1.0 : s->rslora ? s->alpha / sqrt((double)r) : s->alpha / r;
    *scale   = (float)v;
    if (!isfinite(*scale))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: alpha %g gives a non-finite scale for %.200s",
                         L->path, s->alpha, s->a.name);
    return LLMRT_OK;
}

/* Checks every slot, then converts all of them into one allocation. */
static llmrt_status build(lora_load *L, llmrt_lora_file *out, llmrt_error *err) {
    int64_t  n_slots = (int64_t)L->cfg->n_layers * LLMRT_LORA_N_TARGETS;
    uint64_t floats  = 0;
    llmrt_lora_pair *pairs = calloc((size_t)n_slots, sizeof *pairs);
    if (!pairs) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", L->path);
    out->pairs = pairs;
    for (int64_t i = 0; i < n_slots; i++) {
        const lora_slot *s = &L->slots[i];
        if (!s->has_a && !s->has_b) continue;
        int64_t layer = i / LLMRT_LORA_N_TARGETS, n, k;
        int     t     = (int)(i % LLMRT_LORA_N_TARGETS);
        LLMRT_TRY(check_slot(L, layer, t, s, &pairs[i].rank, err));
        LLMRT_TRY(slot_scale(L, s, pairs[i].rank, &pairs[i].scale, err));
        llmrt_lora_target_shape(L->cfg, (llmrt_lora_target)t, &n, &k);
        uint64_t nk, f;
        if (!ck_add_u64((uint64_t)n, (uint64_t)k, &nk) ||
            !ck_mul_u64(nk, (uint64_t)pairs[i].rank, &f) || !ck_add_u64(floats, f, &floats))
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: adapter too large", L->path);
        out->n_pairs++;
        if (pairs[i].rank > out->max_rank) out->max_rank = pairs[i].rank;
    }
    if (out->n_pairs == 0)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH,
                         "%s: the adapter has no LoRA A/B pair for any projection of the model",
                         L->path);
    if (!ck_mul_u64(floats, sizeof(float), &out->bytes) || out->bytes > SIZE_MAX / 2)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: adapter too large", L->path);
    float *mem = malloc((size_t)out->bytes);
    if (!mem)
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory for %llu bytes of LoRA "
                         "weights", L->path, (unsigned long long)out->bytes);
    out->mem = mem;
    for (int64_t i = 0; i < n_slots; i++) {
        const lora_slot *s = &L->slots[i];
        if (!pairs[i].rank) continue;
        pairs[i].a = mem;
        mem += s->a.rows * s->a.cols;
        pairs[i].b = mem;
        mem += s->b.rows * s->b.cols;
        LLMRT_TRY(convert(L, &s->a, 0, pairs[i].a, err));
        LLMRT_TRY(convert(L, &s->b, s->unpermute_hd, pairs[i].b, err));
    }
    out->n_layers = L->cfg->n_layers;
    return LLMRT_OK;
}

/* Fills a source from a 2-D tensor's fields; dtype must be F32/F16/BF16 (checked by callers). */
static llmrt_status src_set(const lora_load *L, lora_src *s, const char *name, llmrt_dtype dtype,
                            const uint8_t *data, uint64_t nbytes, uint64_t rows, uint64_t cols,
                            llmrt_error *err) {
    uint64_t n, bytes;
    s->name = name;
    if (!ck_mul_u64(rows, cols, &n) ||
        !ck_mul_u64(n, (uint64_t)llmrt_dtype_block_bytes(dtype), &bytes) || bytes > nbytes)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: tensor %.200s: size does not match its shape",
                         L->path, name);
    s->dtype = dtype;
    s->data  = data;
    s->rows  = rows;
    s->cols  = cols;
    return LLMRT_OK;
}

static bool float_dtype(llmrt_dtype t) {
    return t == LLMRT_DTYPE_F32 || t == LLMRT_DTYPE_F16 || t == LLMRT_DTYPE_BF16;
}

/* Parses the decimal layer index at *p (canonical: no sign, no leading zero); advances *p. */
static bool parse_layer(const char **p, int64_t *layer) {
    const char *s = *p;
    int64_t     v = 0;
    int         n = 0;
    while (s[n] >= '0' && s[n] <= '9' && n < 10) v = v * 10 + (s[n++] - '0');
    if (n == 0 || n == 10 || (n > 1 && s[0] == '0')) return false;
    *layer = v;
    *p     = s + n;
    return true;
}

static bool skip(const char **p, const char *lit) {
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0) return false;
    *p += n;
    return true;
}

// --- PCRE2 ------------------------------------------------------------------------------------

/* Compiles `pattern` (`prefix` + pattern + `suffix` when given, as PEFT builds its f-strings). */
static llmrt_status re_compile(const char *path, const char *field, const char *prefix,
                               const char *pattern, const char *suffix, uint32_t options,
                               pcre2_code **out, llmrt_error *err) {
    size_t n = strlen(pattern);
    if (n > LORA_PATTERN_MAX_BYTES)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s: pattern of %zu bytes is too long (at "
                         "most %d)", path, field, n, LORA_PATTERN_MAX_BYTES);
    size_t len = strlen(prefix) + n + strlen(suffix) + 1;
    char  *text = malloc(len);
    if (!text) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    snprintf(text, len, "%s%s%s", prefix, pattern, suffix);
    int        ec;
    PCRE2_SIZE at;
    *out = pcre2_compile((PCRE2_SPTR)text, PCRE2_ZERO_TERMINATED, options | PCRE2_UTF, &ec, &at,
                         NULL);
    free(text);
    if (*out) return LLMRT_OK;
    PCRE2_UCHAR msg[160];
    pcre2_get_error_message(ec, msg, sizeof msg);
    return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s: regular expression \"%.100s\" does not "
                     "compile: %s", path, field, pattern, (const char *)msg);
}

/* *matched; with group1, the first capture group as an integer (-1 when unset or not digits). */
static llmrt_status re_match(const char *path, const char *field, pcre2_code *re,
                             pcre2_match_context *mctx, const char *subject, bool *matched,
                             int64_t *group1, llmrt_error *err) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    int rc   = pcre2_match(re, (PCRE2_SPTR)subject, strlen(subject), 0, 0, md, mctx);
    *matched = rc >= 0;
    if (rc >= 0 && group1) {
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        *group1        = -1;
        if (rc >= 2 && ov[2] != PCRE2_UNSET && ov[3] > ov[2] && ov[3] - ov[2] < 10) {
            int64_t v = 0;
            size_t  i = ov[2];
            for (; i < ov[3] && subject[i] >= '0' && subject[i] <= '9'; i++)
                v = v * 10 + (subject[i] - '0');
            if (i == ov[3]) *group1 = v;
        }
    }
    pcre2_match_data_free(md);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s: matching \"%s\" failed (PCRE2 error %d: "
                         "pattern too costly)", path, field, subject, rc);
    return LLMRT_OK;
}

// --- PEFT: adapter_config.json ------------------------------------------------------------------

/* A target_modules / exclude_modules value: a regex (fullmatch) or a list of names. */
typedef struct peft_modules {
    pcre2_code  *re;         /* a string value */
    const cJSON *list;       /* a list of strings */
    bool         all_linear; /* "all-linear": the seven projection names as a list */
} peft_modules;

typedef struct peft_pattern {
    pcre2_code *re; /* (.*\.)?({key})$, anchored at the start like re.match */
    double      value;
} peft_pattern;

typedef struct peft_config {
    const char          *path; /* adapter_config.json */
    cJSON               *root;
    pcre2_match_context *mctx;
    int32_t              r;
    double               alpha;
    bool                 rslora;
    peft_modules         targets, exclude;
    const cJSON         *layers;      /* layers_to_transform: a number or a non-empty list */
    pcre2_code         **layer_res;   /* from layers_pattern, or the default */
    int                  n_layer_res;
    peft_pattern        *ranks, *alphas;
    int                  n_ranks, n_alphas;
} peft_config;

static void peft_config_free(peft_config *c) {
    for (int i = 0; i < c->n_layer_res; i++) pcre2_code_free(c->layer_res[i]);
    for (int i = 0; i < c->n_ranks; i++) pcre2_code_free(c->ranks[i].re);
    for (int i = 0; i < c->n_alphas; i++) pcre2_code_free(c->alphas[i].re);
    free(c->layer_res);
    free(c->ranks);
    free(c->alphas);
    pcre2_code_free(c->targets.re);
    pcre2_code_free(c->exclude.re);
    pcre2_match_context_free(c->mctx);
    cJSON_Delete(c->root);
    memset(c, 0, sizeof *c);
}

static const cJSON *member(const cJSON *obj, const char *key) {
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    return item && !cJSON_IsNull(item) ? item : NULL;
}

/* A field that changes what the adapter computes and is set (non-empty, not false). */
static bool field_set(const cJSON *root, const char *key) {
    const cJSON *v = member(root, key);
    if (!v || cJSON_IsFalse(v)) return false;
    if (cJSON_IsArray(v) || cJSON_IsObject(v)) return cJSON_GetArraySize(v) > 0;
    if (cJSON_IsString(v)) return v->valuestring[0] != 0;
    return true;
}

static llmrt_status peft_check_unsupported(const peft_config *c, llmrt_error *err) {
    static const struct {
        const char *key, *why;
    } unsupported[] = {
        {"use_dora", "DoRA (weight-decomposed LoRA)"},
        {"use_qalora", "QA-LoRA"},
        {"lora_bias", "a bias on lora_B"},
        {"modules_to_save", "fully trained copies of modules"},
        {"layer_replication", "replicated layers"},
        {"trainable_token_indices", "trained token embeddings"},
        {"target_parameters", "adapters on parameters (MoE experts)"},
        {"alora_invocation_tokens", "activated LoRA"},
        {"arrow_config", "Arrow routing"},
    };
    const cJSON *root = c->root;
    const char  *s    = NULL;
    llmrt_status st   = llmrt_json_get_string(root, "peft_type", false, &s, c->path, err);
    if (st != LLMRT_OK) return st;
    if (s && strcmp(s, "LORA") != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: peft_type \"%.64s\" is not supported "
                         "(only LORA)", c->path, s);
    s = NULL;
    LLMRT_TRY(llmrt_json_get_string(root, "bias", false, &s, c->path, err));
    if (s && strcmp(s, "none") != 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: bias \"%.64s\" is not supported (only "
                         "\"none\")", c->path, s);
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (field_set(root, unsupported[i].key))
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: \"%s\" is set: %s is not supported",
                             c->path, unsupported[i].key, unsupported[i].why);
    return LLMRT_OK;
}

static llmrt_status peft_parse_modules(peft_config *c, const char *key, bool required,
                                       peft_modules *m, llmrt_error *err) {
    const cJSON *v = member(c->root, key);
    if (!v) {
        if (!required) return LLMRT_OK;
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"%s\" is missing", c->path, key);
    }
    if (cJSON_IsString(v)) {
        if (!strcasecmp(v->valuestring, "all-linear")) {
            m->all_linear = true;
            return LLMRT_OK;
        }
        return re_compile(c->path, key, "", v->valuestring, "",
                          PCRE2_ANCHORED | PCRE2_ENDANCHORED, &m->re, err);
    }
    if (!cJSON_IsArray(v))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"%s\" must be a list of names or a regular "
                         "expression", c->path, key);
    for (const cJSON *e = v->child; e; e = e->next)
        if (!cJSON_IsString(e))
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"%s\" holds a non-string", c->path, key);
    m->list = v;
    return LLMRT_OK;
}

static bool json_integer(const cJSON *v) {
    double d = v ? v->valuedouble : 0;
    return cJSON_IsNumber(v) && isfinite(d) && d == floor(d) && fabs(d) < 9007199254740992.0;
}

static llmrt_status peft_parse_layers(peft_config *c, llmrt_error *err) {
    const cJSON *v = member(c->root, "layers_to_transform");
    if (v && !json_integer(v)) {
        if (!cJSON_IsArray(v))
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"layers_to_transform\" must be an "
                             "integer or a list of integers", c->path);
        for (const cJSON *e = v->child; e; e = e->next)
            if (!json_integer(e))
                return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"layers_to_transform\" holds a "
                                 "non-integer", c->path);
        if (!v->child) v = NULL; /* [] means every layer, as in PEFT */
    }
    c->layers = v;
    if (!v) return LLMRT_OK;
    const cJSON *p = member(c->root, "layers_pattern");
    int          n = !p || (cJSON_IsString(p) && !p->valuestring[0]) ? 0
                     : cJSON_IsString(p)                             ? 1
                     : cJSON_IsArray(p)                              ? cJSON_GetArraySize(p)
                                                                     : -1;
    if (n < 0)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"layers_pattern\" must be a string or a "
                         "list of strings", c->path);
    c->layer_res = calloc((size_t)(n ? n : 1), sizeof *c->layer_res);
    if (!c->layer_res) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", c->path);
    if (n == 0) { /* PEFT's default: the number after any segment */
        c->n_layer_res = 1;
        return re_compile(c->path, "layers_to_transform", "", ".*\\.[^.]*\\.(\\d+)\\.", "",
                          PCRE2_ANCHORED, &c->layer_res[0], err);
    }
    const cJSON *e = cJSON_IsString(p) ? p : p->child;
    for (; e && c->n_layer_res < n; e = e->next) {
        if (!cJSON_IsString(e))
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"layers_pattern\" holds a non-string",
                             c->path);
        LLMRT_TRY(re_compile(c->path, "layers_pattern", ".*\\.", e->valuestring, "\\.(\\d+)\\.",
                             PCRE2_ANCHORED, &c->layer_res[c->n_layer_res], err));
        c->n_layer_res++;
    }
    return LLMRT_OK;
}

/* rank_pattern (integer values >= 1) or alpha_pattern (finite numbers). */
static llmrt_status peft_parse_patterns(peft_config *c, const char *key, bool integer,
                                        peft_pattern **out, int *n_out, llmrt_error *err) {
    const cJSON *v = member(c->root, key);
    if (!v) return LLMRT_OK;
    if (!cJSON_IsObject(v))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: \"%s\" must be an object", c->path, key);
    int n = cJSON_GetArraySize(v);
    if (n == 0) return LLMRT_OK;
    *out = calloc((size_t)n, sizeof **out);
    if (!*out) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", c->path);
    for (const cJSON *e = v->child; e && *n_out < n; e = e->next) {
        bool ok = integer ? json_integer(e) && e->valuedouble >= 1 && e->valuedouble <= INT32_MAX
                          : cJSON_IsNumber(e) && isfinite(e->valuedouble);
        if (!ok)
            return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: %s[\"%.100s\"] must be %s", c->path, key,
                             e->string, integer ? "an integer >= 1" : "a finite number");
        LLMRT_TRY(re_compile(c->path, key, "(.*\\.)?(", e->string, ")$", PCRE2_ANCHORED,
                             &(*out)[*n_out].re, err));
        (*out)[(*n_out)++].value = e->valuedouble;
    }
    return LLMRT_OK;
}

static llmrt_status peft_parse_config(peft_config *c, const char *path, llmrt_error *err) {
    c->path = path;
    LLMRT_TRY(llmrt_json_parse_file(path, LORA_CONFIG_MAX_BYTES, &c->root, err));
    if (!cJSON_IsObject(c->root))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: not a JSON object", path);
    c->mctx = pcre2_match_context_create(NULL);
    if (!c->mctx) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    pcre2_set_match_limit(c->mctx, LORA_MATCH_LIMIT);
    pcre2_set_depth_limit(c->mctx, LORA_DEPTH_LIMIT);
    pcre2_set_heap_limit(c->mctx, LORA_HEAP_LIMIT_KIB);
    LLMRT_TRY(peft_check_unsupported(c, err));
    c->r     = 8; /* LoraConfig's defaults */
    c->alpha = 8;
    bool fan_in_fan_out = false; /* only a type check: PEFT ignores it for nn.Linear */
    LLMRT_TRY(llmrt_json_get_i32(c->root, "r", false, 1, INT32_MAX, &c->r, path, err));
    LLMRT_TRY(llmrt_json_get_double(c->root, "lora_alpha", false, &c->alpha, path, err));
    LLMRT_TRY(llmrt_json_get_bool(c->root, "use_rslora", false, &c->rslora, path, err));
    LLMRT_TRY(llmrt_json_get_bool(c->root, "fan_in_fan_out", false, &fan_in_fan_out, path, err));
    LLMRT_TRY(peft_parse_modules(c, "target_modules", true, &c->targets, err));
    LLMRT_TRY(peft_parse_modules(c, "exclude_modules", false, &c->exclude, err));
    LLMRT_TRY(peft_parse_layers(c, err));
    LLMRT_TRY(peft_parse_patterns(c, "rank_pattern", true, &c->ranks, &c->n_ranks, err));
    return peft_parse_patterns(c, "alpha_pattern", false, &c->alphas, &c->n_alphas, err);
}

// --- PEFT: which modules are adapted ------------------------------------------------------------

static bool ends_with_dot(const char *key, const char *entry) {
    size_t k = strlen(key), e = strlen(entry);
    return k > e && key[k - e - 1] == '.' && memcmp(key + k - e, entry, e) == 0;
}

/* Name equality (exact) or suffix match over a list value. */
static void list_match(const peft_modules *m, const char *key, bool *exact, bool *suffix) {
    *exact = *suffix = false;
    for (int t = 0; m->all_linear && t < LLMRT_LORA_N_TARGETS; t++) {
        *exact  = *exact || !strcmp(key, TARGET_NAME[t]);
        *suffix = *suffix || ends_with_dot(key, TARGET_NAME[t]);
    }
    for (const cJSON *e = m->list ? m->list->child : NULL; e; e = e->next) {
        *exact  = *exact || !strcmp(key, e->valuestring);
        *suffix = *suffix || ends_with_dot(key, e->valuestring);
    }
}

/* PEFT's layer filter on a module that a target_modules list matched by suffix. */
static llmrt_status layer_filter(const peft_config *c, const char *key, bool *keep,
                                 llmrt_error *err) {
    int64_t index = -1;
    bool    found = false;
    for (int i = 0; i < c->n_layer_res && !found; i++)
        LLMRT_TRY(re_match(c->path, "layers_pattern", c->layer_res[i], c->mctx, key, &found,
                           &index, err));
    *keep = false;
    if (!found) return LLMRT_OK;
    if (index < 0)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: layers_pattern: the layer index found in "
                         "\"%s\" is not a number", c->path, key);
    if (!cJSON_IsArray(c->layers)) {
        *keep = c->layers->valuedouble == (double)index;
        return LLMRT_OK;
    }
    for (const cJSON *e = c->layers->child; e && !*keep; e = e->next)
        *keep = e->valuedouble == (double)index;
    return LLMRT_OK;
}

/* check_target_module_exists for one module name. */
static llmrt_status peft_targets(const peft_config *c, const char *key, bool *out,
                                 llmrt_error *err) {
    bool exact, suffix;
    *out = false;
    if (c->exclude.re) {
        bool hit;
        LLMRT_TRY(re_match(c->path, "exclude_modules", c->exclude.re, c->mctx, key, &hit, NULL,
                           err));
        if (hit) return LLMRT_OK;
    } else if (c->exclude.list || c->exclude.all_linear) {
        list_match(&c->exclude, key, &exact, &suffix);
        if (exact || suffix) return LLMRT_OK;
    }
    if (c->targets.re)
        return re_match(c->path, "target_modules", c->targets.re, c->mctx, key, out, NULL, err);
    list_match(&c->targets, key, &exact, &suffix);
    if (exact || !suffix) {
        *out = exact;
        return LLMRT_OK;
    }
    if (!c->layers) {
        *out = true;
        return LLMRT_OK;
    }
    return layer_filter(c, key, out, err);
}

/* The value of the first pattern matching `key` (get_pattern_key), else `dflt`. */
static llmrt_status pattern_value(const peft_config *c, const char *field, const peft_pattern *p,
                                  int n, const char *key, double dflt, double *out,
                                  llmrt_error *err) {
    *out = dflt;
    for (int i = 0; i < n; i++) {
        bool hit;
        LLMRT_TRY(re_match(c->path, field, p[i].re, c->mctx, key, &hit, NULL, err));
        if (hit) {
            *out = p[i].value;
            return LLMRT_OK;
        }
    }
    return LLMRT_OK;
}

static void module_name(int64_t layer, int t, char *buf, size_t n) {
    snprintf(buf, n, "model.layers.%lld.%s.%s", (long long)layer, TARGET_PARENT[t], TARGET_NAME[t]);
}

/* Adapters on the embeddings or the lm_head would leave weights we cannot apply. */
static llmrt_status peft_check_outer_targets(const peft_config *c, llmrt_error *err) {
    static const char *const outer[] = {"model.embed_tokens", "lm_head"};
    for (int i = 0; i < 2; i++) {
        bool hit;
        LLMRT_TRY(peft_targets(c, outer[i], &hit, err));
        if (hit)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: target_modules targets %s: adapters "
                             "on the embeddings or the lm_head are not supported", c->path,
                             outer[i]);
    }
    return LLMRT_OK;
}

// --- PEFT: adapter_model.safetensors ------------------------------------------------------------

/* "base_model.model.model.layers.L.self_attn.q_proj.lora_A[.adapter].weight". */
static bool peft_parse_name(const char *name, int64_t *layer, int *target, bool *is_b) {
    const char *p = name;
    if (!skip(&p, "base_model.model.model.layers.") || !parse_layer(&p, layer) || !skip(&p, "."))
        return false;
    *target = -1;
    for (int t = 0; t < LLMRT_LORA_N_TARGETS && *target < 0; t++) {
        const char *q = p;
        if (skip(&q, TARGET_PARENT[t]) && skip(&q, ".") && skip(&q, TARGET_NAME[t]) &&
            skip(&q, ".lora_")) {
            *target = t;
            p       = q;
        }
    }
    if (*target < 0 || (*p != 'A' && *p != 'B')) return false;
    *is_b = *p++ == 'B';
    if (!strcmp(p, ".weight")) return true;
    if (*p++ != '.') return false;
    size_t seg = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-");
    return seg > 0 && !strcmp(p + seg, ".weight");
}

static const char *peft_unknown_reason(const char *name) {
    if (strstr(name, "lora_embedding_")) return "LoRA on embeddings";
    if (strstr(name, "lora_magnitude_vector")) return "DoRA";
    if (strstr(name, "embed_tokens") || strstr(name, "lm_head"))
        return "adapters on the embeddings or the lm_head";
    size_t n = strlen(name);
    if (strstr(name, "lora_") && n >= 5 && !strcmp(name + n - 5, ".bias")) return "a LoRA bias";
    return "not the lora_A / lora_B weight of a q/k/v/o/gate/up/down projection";
}

static llmrt_status peft_take_tensor(lora_load *L, const peft_config *c,
                                     const llmrt_st_tensor *t, llmrt_error *err) {
    int64_t layer;
    int     target;
    bool    is_b, hit;
    char    module[96];
    if (!peft_parse_name(t->name, &layer, &target, &is_b))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: tensor %.200s is not supported (%s)",
                         L->path, t->name, peft_unknown_reason(t->name));
    if (layer >= L->cfg->n_layers)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %.200s is for layer %lld; the "
                         "model has %d layers", L->path, t->name, (long long)layer,
                         L->cfg->n_layers);
    module_name(layer, target, module, sizeof module);
    LLMRT_TRY(peft_targets(c, module, &hit, err));
    if (!hit)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %.200s is for %s, which %s "
                         "does not target (target_modules / layers_to_transform / exclude_modules)",
                         L->path, t->name, module, c->path);
    lora_slot *s = slot_at(L, layer, target);
    if (is_b ? s->has_b : s->has_a)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: tensor %.200s: %s has two lora_%c tensors "
                         "(two adapter names?)", L->path, t->name, module, is_b ? 'B' : 'A');
    if (!float_dtype(t->dtype))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: tensor %.200s has dtype %s (supported: "
                         "F32, F16, BF16)", L->path, t->name, llmrt_dtype_name(t->dtype));
    if (t->n_dims != 2)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %.200s has %d dimensions, "
                         "expected 2", L->path, t->name, t->n_dims);
    *(is_b ? &s->has_b : &s->has_a) = true;
    return src_set(L, is_b ? &s->b : &s->a, t->name, t->dtype, t->data, t->nbytes, t->shape[0],
                   t->shape[1], err);
}

/* Every targeted module has both tensors; its rank and scale from the config. */
static llmrt_status peft_check_slots(lora_load *L, const peft_config *c, llmrt_error *err) {
    for (int64_t layer = 0; layer < L->cfg->n_layers; layer++) {
        for (int t = 0; t < LLMRT_LORA_N_TARGETS; t++) {
            lora_slot *s = slot_at(L, layer, t);
            char       module[96];
            bool       hit;
            double     r, alpha;
            module_name(layer, t, module, sizeof module);
            LLMRT_TRY(peft_targets(c, module, &hit, err));
            if (!hit) continue;
            if (!s->has_a || !s->has_b)
                return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor "
                                 "base_model.model.%s.lora_%c.weight is missing (%s targets %s)",
                                 L->path, module, s->has_a ? 'B' : 'A', c->path, module);
            LLMRT_TRY(pattern_value(c, "rank_pattern", c->ranks, c->n_ranks, module, c->r, &r,
                                    err));
            LLMRT_TRY(pattern_value(c, "alpha_pattern", c->alphas, c->n_alphas, module, c->alpha,
                                    &alpha, err));
            s->want_rank = (int32_t)r;
            s->alpha     = alpha;
            s->rslora    = c->rslora;
        }
    }
    return LLMRT_OK;
}

static llmrt_status peft_tensors(lora_load *L, const peft_config *c, const char *st_path,
                                 llmrt_st_file *st, llmrt_error *err) {
    LLMRT_TRY(llmrt_safetensors_open(st_path, st, err));
    L->path = st_path;
    for (int64_t i = 0; i < st->n_tensors; i++)
        LLMRT_TRY(peft_take_tensor(L, c, &st->tensors[i], err));
    return peft_check_slots(L, c, err);
}

/* dir/name into buf. */
static llmrt_status join(const char *dir, const char *name, char *buf, size_t n,
                         llmrt_error *err) {
    if ((size_t)snprintf(buf, n, "%s/%s", dir, name) >= n)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "%s: path too long", dir);
    return LLMRT_OK;
}

static llmrt_status peft_find_weights(const char *dir, char *st_path, size_t n,
                                      llmrt_error *err) {
    char bin[4096];
    LLMRT_TRY(join(dir, "adapter_model.safetensors", st_path, n, err));
    int found = llmrt_probe_regular_file(st_path, err);
    if (found != 0) return found > 0 ? LLMRT_OK : err->status;
    LLMRT_TRY(join(dir, "adapter_model.bin", bin, sizeof bin, err));
    if (llmrt_probe_regular_file(bin, err) > 0)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: pickle files are not read; convert it "
                         "to adapter_model.safetensors (PeftModel.from_pretrained(base, dir)"
                         ".save_pretrained(dir, safe_serialization=True))", bin);
    return llmrt_err(err, LLMRT_ERR_IO, "%s: no adapter_model.safetensors in this PEFT adapter "
                     "directory", dir);
}

static llmrt_status peft_load(lora_load *L, const char *dir, llmrt_lora_file *out,
                              llmrt_error *err) {
    char          cfg_path[4096], st_path[4096];
    peft_config   c  = {0};
    llmrt_st_file st = {0};
    L->path          = dir;
    LLMRT_TRY(join(dir, "adapter_config.json", cfg_path, sizeof cfg_path, err));
    int found = llmrt_probe_regular_file(cfg_path, err);
    if (found == 0)
        return llmrt_err(err, LLMRT_ERR_IO, "%s: no adapter_config.json (a PEFT adapter directory "
                         "holds adapter_config.json and adapter_model.safetensors)", dir);
    if (found < 0) return err->status;
    llmrt_status st_ = peft_parse_config(&c, cfg_path, err);
    if (st_ == LLMRT_OK) st_ = peft_check_outer_targets(&c, err);
    if (st_ == LLMRT_OK) st_ = peft_find_weights(dir, st_path, sizeof st_path, err);
    if (st_ == LLMRT_OK) st_ = peft_tensors(L, &c, st_path, &st, err);
    if (st_ == LLMRT_OK) st_ = build(L, out, err);
    llmrt_safetensors_close(&st);
    peft_config_free(&c);
    return st_;
}

// --- GGUF adapters ------------------------------------------------------------------------------

static bool gguf_str_is(llmrt_gguf_str s, const char *lit) {
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

/* A string key that must equal `want`; missing or different is UNSUPPORTED naming the value. */
static llmrt_status gguf_expect(const llmrt_gguf_file *f, const char *key, const char *want,
                                const char *why, llmrt_error *err) {
    llmrt_gguf_str s = {0};
    if (!llmrt_gguf_find_kv(f, key))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: %s is missing: %s", f->path, key, why);
    LLMRT_TRY(llmrt_gguf_get_str(f, key, true, &s, err));
    if (!gguf_str_is(s, want))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: %s is \"%.*s\": %s", f->path, key,
                         (int)(s.len > 64 ? 64 : s.len), s.ptr, why);
    return LLMRT_OK;
}

static llmrt_status gguf_check_meta(const llmrt_gguf_file *f, double *alpha, llmrt_error *err) {
    LLMRT_TRY(gguf_expect(f, "general.type", "adapter",
                          "not a LoRA adapter (expected general.type \"adapter\")", err));
    LLMRT_TRY(gguf_expect(f, "general.architecture", "llama",
                          "the adapter is not for a llama model", err));
    LLMRT_TRY(gguf_expect(f, "adapter.type", "lora",
                          "only LoRA adapters are supported (adapter.type \"lora\")", err));
    if (llmrt_gguf_find_kv(f, "adapter.alora.invocation_tokens"))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: adapter.alora.invocation_tokens is set: "
                         "activated LoRA is not supported", f->path);
    *alpha = 0;
    LLMRT_TRY(llmrt_gguf_get_f64(f, "adapter.lora.alpha", false, alpha, err));
    if (!isfinite(*alpha))
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: adapter.lora.alpha is not finite", f->path);
    return LLMRT_OK;
}

/* "blk.L.attn_q.weight.lora_a" */
static bool gguf_parse_name(const char *name, int64_t *layer, int *target, bool *is_b) {
    const char *p = name;
    if (!skip(&p, "blk.") || !parse_layer(&p, layer) || !skip(&p, ".")) return false;
    for (int t = 0; t < LLMRT_LORA_N_TARGETS; t++) {
        const char *q = p;
        if (skip(&q, GGUF_TARGET_NAME[t]) && skip(&q, ".weight.lora_") &&
            (*q == 'a' || *q == 'b') && q[1] == 0) {
            *target = t;
            *is_b   = *q == 'b';
            return true;
        }
    }
    return false;
}

static llmrt_status gguf_take_tensor(lora_load *L, const llmrt_gguf_tensor *t, double alpha,
                                     llmrt_error *err) {
    int64_t layer;
    int     target;
    bool    is_b;
    if (!gguf_parse_name(t->name, &layer, &target, &is_b)) {
        bool outer = !strncmp(t->name, "token_embd.", 11) || !strncmp(t->name, "output.", 7);
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: tensor %.200s is not supported (%s)",
                         L->path, t->name, outer ? "adapters on the embeddings or the lm_head"
                         : "not the lora_a / lora_b of a q/k/v/o/gate/up/down projection");
    }
    if (layer >= L->cfg->n_layers)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %.200s is for layer %lld; the "
                         "model has %d layers", L->path, t->name, (long long)layer,
                         L->cfg->n_layers);
    if (!float_dtype(t->dtype))
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: tensor %.200s has ggml type %s "
                         "(supported: F32, F16, BF16)", L->path, t->name,
                         llmrt_gguf_ggml_type_name(t->ggml_type));
    if (t->n_dims != 2)
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor %.200s has %d dimensions, "
                         "expected 2", L->path, t->name, t->n_dims);
    lora_slot *s = slot_at(L, layer, target);
    s->alpha      = alpha;
    s->unit_scale = alpha == 0; /* llama.cpp: scale = alpha ? alpha / r : 1 */
    if (is_b && (target == LLMRT_LORA_Q || target == LLMRT_LORA_K)) {
        if (L->cfg->head_dim % 2 != 0)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "%s: tensor %.200s: head_dim %d is odd; "
                             "GGUF's q/k row order cannot be undone", L->path, t->name,
                             L->cfg->head_dim);
        s->unpermute_hd = L->cfg->head_dim;
    }
    *(is_b ? &s->has_b : &s->has_a) = true;
    /* ggml dims are innermost first: ne = [cols, rows] */
    return src_set(L, is_b ? &s->b : &s->a, t->name, t->dtype, t->data, t->nbytes, t->ne[1],
                   t->ne[0], err);
}

static llmrt_status gguf_check_pairs(const lora_load *L, llmrt_error *err) {
    for (int64_t i = 0; i < (int64_t)L->cfg->n_layers * LLMRT_LORA_N_TARGETS; i++) {
        const lora_slot *s = &L->slots[i];
        if (s->has_a == s->has_b) continue;
        return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: tensor blk.%lld.%s.weight.lora_%c is "
                         "missing (its lora_%c is present)", L->path,
                         (long long)(i / LLMRT_LORA_N_TARGETS),
                         GGUF_TARGET_NAME[i % LLMRT_LORA_N_TARGETS], s->has_a ? 'b' : 'a',
                         s->has_a ? 'a' : 'b');
    }
    return LLMRT_OK;
}

static llmrt_status gguf_load(lora_load *L, const char *path, llmrt_lora_file *out,
                              llmrt_error *err) {
    llmrt_gguf_file f = {0};
    double          alpha;
    LLMRT_TRY(llmrt_gguf_open(path, &f, err));
    L->path         = f.path;
    L->gguf         = true;
    llmrt_status st = gguf_check_meta(&f, &alpha, err);
    for (int64_t i = 0; st == LLMRT_OK && i < f.n_tensors; i++)
        st = gguf_take_tensor(L, &f.tensors[i], alpha, err);
    if (st == LLMRT_OK) st = gguf_check_pairs(L, err);
    if (st == LLMRT_OK) st = build(L, out, err);
    llmrt_gguf_close(&f);
    return st;
}

// --- entry --------------------------------------------------------------------------------------

static llmrt_status check_config(const char *path, const llmrt_model_config *cfg,
                                 llmrt_error *err) {
    if (cfg->n_layers < 1 || cfg->n_layers > LORA_MAX_LAYERS || cfg->hidden_size < 1 ||
        cfg->intermediate_size < 1 || cfg->n_heads < 1 || cfg->n_kv_heads < 1 || cfg->head_dim < 1)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "%s: the model config is not valid for a LoRA "
                         "adapter (n_layers %d, hidden %d, intermediate %d, heads %d/%d, "
                         "head_dim %d)",
                         path, cfg->n_layers, cfg->hidden_size, cfg->intermediate_size,
                         cfg->n_heads, cfg->n_kv_heads, cfg->head_dim);
    return LLMRT_OK;
}

/* 1 when the file at `path` starts with the GGUF magic, 0 when not, -1 with err set. */
static int has_gguf_magic(const char *path, llmrt_error *err) {
    int fd = llmrt_open_regular_file(path, NULL, err);
    if (fd < 0) return -1;
    char    magic[4];
    ssize_t n;
    do n = read(fd, magic, sizeof magic);
    while (n < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (n < 0) {
        llmrt_err(err, LLMRT_ERR_IO, "%s: cannot read: %s", path, strerror(saved));
        return -1;
    }
    return n == 4 && memcmp(magic, "GGUF", 4) == 0;
}

static llmrt_status load_path(lora_load *L, const char *path, llmrt_lora_file *out,
                              llmrt_error *err) {
    struct stat sb;
    if (stat(path, &sb) != 0)
        return llmrt_err(err, LLMRT_ERR_IO, "%s: cannot open the LoRA adapter: %s", path,
                         strerror(errno));
    if (S_ISDIR(sb.st_mode)) {
        LLMRT_TRY(peft_load(L, path, out, err));
        snprintf(out->format, sizeof out->format, "peft");
        return LLMRT_OK;
    }
    int gguf = has_gguf_magic(path, err);
    if (gguf < 0) return err->status;
    if (!gguf)
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: not a LoRA adapter: neither a GGUF file nor a "
                         "PEFT directory (adapter_config.json + adapter_model.safetensors)", path);
    LLMRT_TRY(gguf_load(L, path, out, err));
    snprintf(out->format, sizeof out->format, "gguf");
    return LLMRT_OK;
}

llmrt_status llmrt_lora_file_load(const char *path, const llmrt_model_config *cfg,
                                  llmrt_lora_file *out, llmrt_error *err) {
    llmrt_error local; /* err may be NULL; some paths read err->status back */
    if (!err) err = &local;
    if (!out) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_lora_file_load: out is NULL");
    memset(out, 0, sizeof *out);
    if (!path || !cfg)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "llmrt_lora_file_load: %s is NULL",
                         path ? "cfg" : "path");
    LLMRT_TRY(check_config(path, cfg, err));
    lora_load L = {.path = path, .cfg = cfg};
    L.slots     = calloc((size_t)cfg->n_layers * LLMRT_LORA_N_TARGETS, sizeof *L.slots);
    if (!L.slots) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
    llmrt_status st = load_path(&L, path, out, err);
    free(L.slots);
    if (st != LLMRT_OK) llmrt_lora_file_free(out);
    return st;
}
