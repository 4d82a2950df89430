/* safetensors reader. The checks and their order follow the reference validator
 * (huggingface/safetensors tensor.rs, see reference/reliability.md B2): header size, JSON,
 * per-tensor dtype/shape/offsets with overflow-checked sizes, then contiguity of the data section
 * and "no trailing bytes" so that a file is indexed completely (no polyglot files). */
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/checked_math.h"
#include "../core/json_util.h"

/* cJSON stores numbers as doubles: integers above 2^53 cannot be represented exactly, so a size
 * read from such a number could silently differ from the file's. They are rejected. */
#define ST_MAX_JSON_INT 9007199254740992.0 /* 2^53 */

typedef struct st_ctx {
    const char *path;
    uint64_t header_len;
    uint64_t data_size;  /* bytes after the header */
    const uint8_t *data; /* start of the data section */
    llmrt_error *err;
} st_ctx;

// --- dtypes -----------------------------------------------------------------------------------

static llmrt_dtype dtype_from_name(const char *s) {
    static const struct {
        const char *name;
        llmrt_dtype dtype;
    } table[] = {
        {"BOOL", LLMRT_DTYPE_BOOL},       {"U8", LLMRT_DTYPE_U8},
        {"I8", LLMRT_DTYPE_I8},           {"I16", LLMRT_DTYPE_I16},
        {"U16", LLMRT_DTYPE_U16},         {"F16", LLMRT_DTYPE_F16},
        {"BF16", LLMRT_DTYPE_BF16},       {"I32", LLMRT_DTYPE_I32},
        {"U32", LLMRT_DTYPE_U32},         {"F32", LLMRT_DTYPE_F32},
        {"F64", LLMRT_DTYPE_F64},         {"I64", LLMRT_DTYPE_I64},
        {"U64", LLMRT_DTYPE_U64},         {"F8_E4M3", LLMRT_DTYPE_F8_E4M3},
        {"F8_E5M2", LLMRT_DTYPE_F8_E5M2},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(s, table[i].name) == 0) return table[i].dtype;
    return LLMRT_DTYPE_INVALID;
}

// --- per-tensor validation --------------------------------------------------------------------

/* A JSON number that is an exact non-negative integer. */
static bool json_u64(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    if (!(v >= 0.0 && v <= ST_MAX_JSON_INT) || v != (double)(uint64_t)v) return false;
    *out = (uint64_t)v;
    return true;
}

static llmrt_status parse_dtype(const st_ctx *c, const char *name, const cJSON *info,
                                llmrt_st_tensor *t) {
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(info, "dtype");
    if (!cJSON_IsString(dt))
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: tensor \"%.200s\": missing string \"dtype\"", c->path, name);
    t->dtype = dtype_from_name(dt->valuestring);
    if (t->dtype == LLMRT_DTYPE_INVALID)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT, "%s: tensor \"%.200s\": unknown dtype \"%.40s\"",
                         c->path, name, dt->valuestring);
    return LLMRT_OK;
}

static llmrt_status parse_shape(const st_ctx *c, const char *name, const cJSON *info,
                                llmrt_st_tensor *t) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(info, "shape");
    if (!cJSON_IsArray(shape))
        return llmrt_err(c->err, LLMRT_ERR_FORMAT, "%s: tensor \"%.200s\": missing array \"shape\"",
                         c->path, name);
    int n = cJSON_GetArraySize(shape);
    if (n > LLMRT_MAX_DIMS)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: tensor \"%.200s\": shape has %d dims, at most %d are supported",
                         c->path, name, n, LLMRT_MAX_DIMS);
    int i = 0;
    for (const cJSON *d = shape->child; d; d = d->next, i++)
        if (!json_u64(d, &t->shape[i]))
            return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                             "%s: tensor \"%.200s\": shape[%d] is not a non-negative integer",
                             c->path, name, i);
    t->n_dims = n;
    return LLMRT_OK;
}

static llmrt_status parse_offsets(const st_ctx *c, const char *name, const cJSON *info,
                                  uint64_t *begin, uint64_t *end) {
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(info, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || !json_u64(offs->child, begin) ||
        !json_u64(offs->child->next, end))
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: tensor \"%.200s\": \"data_offsets\" must be [begin, end] of "
                         "non-negative integers",
                         c->path, name);
    if (*end < *begin)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: tensor \"%.200s\": invalid data_offsets: end %llu < begin %llu",
                         c->path, name, (unsigned long long)*end, (unsigned long long)*begin);
    return LLMRT_OK;
}

/* Fills t from one header member; `begin` is kept for the contiguity check. */
static llmrt_status parse_tensor(const st_ctx *c, const cJSON *info, llmrt_st_tensor *t,
                                 uint64_t *begin) {
    const char *name = info->string ? info->string : "";
    if (!cJSON_IsObject(info))
        return llmrt_err(c->err, LLMRT_ERR_FORMAT, "%s: tensor \"%.200s\": entry is not an object",
                         c->path, name);
    uint64_t end = 0;
    LLMRT_TRY(parse_dtype(c, name, info, t));
    LLMRT_TRY(parse_shape(c, name, info, t));
    LLMRT_TRY(parse_offsets(c, name, info, begin, &end));
    if (!ck_product_u64(t->shape, t->n_dims, &t->n_elems) ||
        !ck_mul_u64(t->n_elems, (uint64_t)llmrt_dtype_block_bytes(t->dtype), &t->nbytes))
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: tensor \"%.200s\": shape x dtype size overflows 64 bits", c->path,
                         name);
    if (end - *begin != t->nbytes)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: tensor \"%.200s\": data_offsets span %llu bytes but shape x dtype "
                         "is %llu bytes",
                         c->path, name, (unsigned long long)(end - *begin),
                         (unsigned long long)t->nbytes);
    if (end > c->data_size)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: tensor \"%.200s\": data_offsets end %llu is past the end of file "
                         "(data section is %llu bytes)",
                         c->path, name, (unsigned long long)end, (unsigned long long)c->data_size);
    t->data = c->data + *begin;
    t->name = strdup(name);
    if (!t->name) return llmrt_err(c->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", c->path);
    return LLMRT_OK;
}

static llmrt_status check_metadata(const st_ctx *c, const cJSON *meta) {
    if (!cJSON_IsObject(meta))
        return llmrt_err(c->err, LLMRT_ERR_FORMAT, "%s: \"__metadata__\" must be an object",
                         c->path);
    for (const cJSON *m = meta->child; m; m = m->next)
        if (!cJSON_IsString(m))
            return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                             "%s: \"__metadata__\" value of \"%.200s\" is not a string", c->path,
                             m->string ? m->string : "");
    return LLMRT_OK;
}

// --- whole-file checks ------------------------------------------------------------------------

typedef struct st_span {
    uint64_t begin;
    const llmrt_st_tensor *t;
} st_span;

static int compare_spans(const void *a, const void *b) {
    const st_span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->t->nbytes != y->t->nbytes) return x->t->nbytes < y->t->nbytes ? -1 : 1;
    return strcmp(x->t->name, y->t->name);
}

static int compare_tensors(const void *a, const void *b) {
    return strcmp(((const llmrt_st_tensor *)a)->name, ((const llmrt_st_tensor *)b)->name);
}

/* Sorted by offset, the tensors must tile [0, data_size) exactly: no overlap, no gap, no tail. */
static llmrt_status check_layout(const st_ctx *c, st_span *spans, int64_t n) {
    qsort(spans, (size_t)n, sizeof *spans, compare_spans);
    uint64_t expect = 0;
    for (int64_t i = 0; i < n; i++) {
        if (spans[i].begin < expect)
            return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                             "%s: tensor \"%.200s\": data_offsets begin %llu overlaps the previous "
                             "tensor (which ends at %llu)",
                             c->path, spans[i].t->name, (unsigned long long)spans[i].begin,
                             (unsigned long long)expect);
        if (spans[i].begin > expect)
            return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                             "%s: tensor \"%.200s\": gap in data_offsets: begins at %llu, expected "
                             "%llu",
                             c->path, spans[i].t->name, (unsigned long long)spans[i].begin,
                             (unsigned long long)expect);
        expect = spans[i].begin + spans[i].t->nbytes; /* <= data_size, checked per tensor */
    }
    if (expect != c->data_size)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: %llu trailing bytes after the last tensor's data", c->path,
                         (unsigned long long)(c->data_size - expect));
    return LLMRT_OK;
}

static llmrt_status parse_tensors(const st_ctx *c, const cJSON *root, llmrt_st_file *out) {
    /* the member count is bounded by the header size because cJSON has parsed them all */
    int64_t n = 0;
    for (const cJSON *m = root->child; m; m = m->next)
        if (!m->string || strcmp(m->string, "__metadata__") != 0) n++;
    out->tensors = calloc((size_t)(n ? n : 1), sizeof *out->tensors);
    st_span *spans = calloc((size_t)(n ? n : 1), sizeof *spans);
    if (!out->tensors || !spans) {
        free(spans);
        return llmrt_err(c->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", c->path);
    }
    llmrt_status s = LLMRT_OK;
    for (const cJSON *m = root->child; m && s == LLMRT_OK; m = m->next) {
        if (m->string && strcmp(m->string, "__metadata__") == 0) {
            s = check_metadata(c, m);
            continue;
        }
        llmrt_st_tensor *t = &out->tensors[out->n_tensors];
        s = parse_tensor(c, m, t, &spans[out->n_tensors].begin);
        spans[out->n_tensors].t = t;
        /* count it even on failure so that close() frees a partially filled entry */
        out->n_tensors++;
    }
    if (s == LLMRT_OK) s = check_layout(c, spans, n);
    free(spans);
    if (s == LLMRT_OK) qsort(out->tensors, (size_t)n, sizeof *out->tensors, compare_tensors);
    return s;
}

// --- public API -------------------------------------------------------------------------------

static llmrt_status parse_header(st_ctx *c, const uint8_t *data, uint64_t size) {
    if (size < 8)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: file is %llu bytes, too small for a safetensors header", c->path,
                         (unsigned long long)size);
    memcpy(&c->header_len, data, 8);
    if (c->header_len > LLMRT_SAFETENSORS_MAX_HEADER)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: header length %llu exceeds the limit of %llu bytes", c->path,
                         (unsigned long long)c->header_len, LLMRT_SAFETENSORS_MAX_HEADER);
    /* header_len <= 1e8, so 8 + header_len cannot overflow */
    if (8 + c->header_len > size)
        return llmrt_err(c->err, LLMRT_ERR_FORMAT,
                         "%s: header length %llu is past the end of the file (%llu bytes); "
                         "truncated file?",
                         c->path, (unsigned long long)c->header_len, (unsigned long long)size);
    c->data = data + 8 + c->header_len;
    c->data_size = size - 8 - c->header_len;
    return LLMRT_OK;
}

llmrt_status llmrt_safetensors_parse(const uint8_t *data, uint64_t size, const char *path,
                                     llmrt_st_file *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    st_ctx c = {.path = path ? path : "<buffer>", .err = err};
    LLMRT_TRY(parse_header(&c, data, size));

    char what[340];
    snprintf(what, sizeof what, "%.300s: safetensors header", c.path);
    cJSON *root = NULL;
    LLMRT_TRY(llmrt_json_parse((const char *)data + 8, c.header_len, what, &root, err));
    llmrt_status s = LLMRT_OK;
    if (!cJSON_IsObject(root))
        s = llmrt_err(err, LLMRT_ERR_FORMAT, "%s: safetensors header is not a JSON object", c.path);
    if (s == LLMRT_OK) s = parse_tensors(&c, root, out);
    cJSON_Delete(root);
    if (s != LLMRT_OK) {
        llmrt_safetensors_close(out);
        return s;
    }
    out->path = c.path;
    return LLMRT_OK;
}

llmrt_status llmrt_safetensors_open(const char *path, llmrt_st_file *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    llmrt_mapped_file file;
    LLMRT_TRY(llmrt_mapped_file_open(path, &file, err));
    llmrt_status s = llmrt_safetensors_parse(file.data, file.size, file.path, out, err);
    if (s != LLMRT_OK) {
        llmrt_mapped_file_close(&file);
        return s;
    }
    out->file = file;
    out->path = out->file.path;
    return LLMRT_OK;
}

void llmrt_safetensors_close(llmrt_st_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    llmrt_mapped_file_close(&f->file);
    memset(f, 0, sizeof *f);
}

const llmrt_st_tensor *llmrt_safetensors_find(const llmrt_st_file *f, const char *name) {
    int64_t lo = 0, hi = f->n_tensors - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int cmp = strcmp(f->tensors[mid].name, name);
        if (cmp == 0) return &f->tensors[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}
