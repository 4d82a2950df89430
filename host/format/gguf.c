/* GGUF v2/v3 reader. Every count read from the file is checked against the bytes that remain
 * before anything is allocated for it, every size is computed with overflow-checked 64-bit math,
 * and every read goes through one bounds-checked cursor (reference/reliability.md B2: the llama.cpp
 * CVEs were integer overflows and allocations sized by unchecked counts). */
#include "gguf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/checked_math.h"

#define GGUF_DEFAULT_ALIGNMENT 32
/* Smallest possible encodings, used to bound counts by the remaining bytes before allocating:
 * a kv is key length (8) + a 1-byte key + type (4) + a 1-byte value; a tensor info is name
 * length (8) + a 1-byte name + n_dims (4) + one ne (8) + type (4) + offset (8). */
#define GGUF_MIN_KV_BYTES     14
#define GGUF_MIN_TENSOR_BYTES 33

// --- ggml types -------------------------------------------------------------------------------

typedef struct ggml_traits {
    const char *name;
    uint32_t blck;  /* elements per block; 0 = removed/unknown type, cannot be sized */
    uint32_t bytes; /* bytes per block */
    llmrt_dtype dtype;
} ggml_traits;

/* Block sizes from ggml (ggml-common.h / gguf-py GGML_QUANT_SIZES). Q8_1 is 36 bytes in ggml
 * (fp16 d and s); gguf-py still lists the old fp32 layout (40). Gaps are types removed from
 * GGUF files (Q4_2, Q4_3, Q4_0_4_4 ..., IQ4_NL_4_4 ...). */
// clang-format off
static const ggml_traits GGML_TRAITS[] = {
    [0] = {"F32", 1, 4, LLMRT_DTYPE_F32},       [1] = {"F16", 1, 2, LLMRT_DTYPE_F16},
    [2] = {"Q4_0", 32, 18, LLMRT_DTYPE_Q4_0},   [3] = {"Q4_1", 32, 20, LLMRT_DTYPE_Q4_1},
    [6] = {"Q5_0", 32, 22, LLMRT_DTYPE_Q5_0},                  [7] = {"Q5_1", 32, 24, LLMRT_DTYPE_Q5_1},
    [8] = {"Q8_0", 32, 34, LLMRT_DTYPE_Q8_0},   [9] = {"Q8_1", 32, 36, 0},
    [10] = {"Q2_K", 256, 84, LLMRT_DTYPE_Q2_K},                [11] = {"Q3_K", 256, 110, LLMRT_DTYPE_Q3_K},
    [12] = {"Q4_K", 256, 144, LLMRT_DTYPE_Q4_K},               [13] = {"Q5_K", 256, 176, LLMRT_DTYPE_Q5_K},
    [14] = {"Q6_K", 256, 210, LLMRT_DTYPE_Q6_K},               [15] = {"Q8_K", 256, 292, 0},
    [16] = {"IQ2_XXS", 256, 66, 0},             [17] = {"IQ2_XS", 256, 74, 0},
    [18] = {"IQ3_XXS", 256, 98, 0},             [19] = {"IQ1_S", 256, 50, 0},
    [20] = {"IQ4_NL", 32, 18, 0},               [21] = {"IQ3_S", 256, 110, 0},
    [22] = {"IQ2_S", 256, 82, 0},               [23] = {"IQ4_XS", 256, 136, 0},
    [24] = {"I8", 1, 1, 0},                     [25] = {"I16", 1, 2, 0},
    [26] = {"I32", 1, 4, 0},                    [27] = {"I64", 1, 8, 0},
    [28] = {"F64", 1, 8, 0},                    [29] = {"IQ1_M", 256, 56, 0},
    [30] = {"BF16", 1, 2, LLMRT_DTYPE_BF16},    [34] = {"TQ1_0", 256, 54, 0},
    [35] = {"TQ2_0", 256, 66, 0},               [39] = {"MXFP4", 32, 17, 0},
    [40] = {"NVFP4", 64, 36, 0},                [41] = {"Q1_0", 128, 18, 0},
};
// clang-format on
#define GGML_N_TYPES (sizeof GGML_TRAITS / sizeof GGML_TRAITS[0])

const char *llmrt_gguf_ggml_type_name(uint32_t ggml_type) {
    return ggml_type < GGML_N_TYPES && GGML_TRAITS[ggml_type].name ? GGML_TRAITS[ggml_type].name
                                                                   : "unknown";
}

/* Within each head, GGUF interleaves the two rotate-half halves ((j, s) -> 2j + s); HF keeps
 * them apart (s * hd/2 + j). */
int64_t llmrt_gguf_qk_row(int64_t hf_row, int64_t head_dim) {
    int64_t head = hf_row / head_dim, in = hf_row % head_dim, half = head_dim / 2;
    int64_t s = in / half, j = in % half;
    return head * head_dim + 2 * j + s;
}

static const char *gguf_type_name(uint32_t t) {
    static const char *const names[] = {"UINT8",  "INT8",    "UINT16", "INT16",  "UINT32",
                                        "INT32",  "FLOAT32", "BOOL",   "STRING", "ARRAY",
                                        "UINT64", "INT64",   "FLOAT64"};
    return t < sizeof names / sizeof names[0] ? names[t] : "invalid";
}

/* Encoded size of a fixed-size value type; 0 for STRING/ARRAY/invalid. */
static uint64_t gguf_scalar_size(uint32_t t) {
    static const uint8_t sizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return t < sizeof sizes ? sizes[t] : 0;
}

static bool is_unsigned(uint32_t t) {
    return t == LLMRT_GGUF_UINT8 || t == LLMRT_GGUF_UINT16 || t == LLMRT_GGUF_UINT32 ||
           t == LLMRT_GGUF_UINT64;
}
static bool is_signed(uint32_t t) {
    return t == LLMRT_GGUF_INT8 || t == LLMRT_GGUF_INT16 || t == LLMRT_GGUF_INT32 ||
           t == LLMRT_GGUF_INT64;
}

// --- bounds-checked cursor --------------------------------------------------------------------

typedef struct rd {
    const uint8_t *p;
    uint64_t size, pos;
    const char *path;
    const char *ctx_kind; /* "key", "tensor" or NULL: what the messages name */
    const char *ctx_name;
    llmrt_error *err;
} rd;

static uint64_t rd_left(const rd *r) {
    return r->size - r->pos;
}

/* Every error goes through here so that each message names the file and the key/tensor. */
static llmrt_status rd_fail(const rd *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static llmrt_status rd_fail(const rd *r, const char *fmt, ...) {
    char what[LLMRT_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (r->ctx_kind)
        return llmrt_err(r->err, LLMRT_ERR_FORMAT, "%s: %s \"%.200s\": %s", r->path, r->ctx_kind,
                         r->ctx_name, what);
    return llmrt_err(r->err, LLMRT_ERR_FORMAT, "%s: %s", r->path, what);
}

static llmrt_status rd_need(rd *r, uint64_t n, const char *what) {
    if (n > rd_left(r))
        return rd_fail(r, "truncated file: %s needs %llu bytes at offset %llu, %llu left", what,
                       (unsigned long long)n, (unsigned long long)r->pos,
                       (unsigned long long)rd_left(r));
    return LLMRT_OK;
}

static llmrt_status rd_bytes(rd *r, void *dst, uint64_t n, const char *what) {
    LLMRT_TRY(rd_need(r, n, what));
    memcpy(dst, r->p + r->pos, (size_t)n);
    r->pos += n;
    return LLMRT_OK;
}

static llmrt_status rd_u32(rd *r, uint32_t *v, const char *what) {
    return rd_bytes(r, v, 4, what);
}
static llmrt_status rd_u64(rd *r, uint64_t *v, const char *what) {
    return rd_bytes(r, v, 8, what);
}

/* A GGUF string (u64 length + bytes), left in place. */
static llmrt_status rd_str(rd *r, llmrt_gguf_str *s, const char *what) {
    LLMRT_TRY(rd_u64(r, &s->len, what));
    if (s->len > rd_left(r))
        return rd_fail(r, "%s length %llu exceeds the %llu bytes left in the file", what,
                       (unsigned long long)s->len, (unsigned long long)rd_left(r));
    s->ptr = (const char *)r->p + r->pos;
    r->pos += s->len;
    return LLMRT_OK;
}

/* A key or tensor name: non-empty, no NUL (it is looked up as a C string); returns a copy. */
static llmrt_status rd_name(rd *r, const char *what, char **out) {
    llmrt_gguf_str s;
    LLMRT_TRY(rd_str(r, &s, what));
    if (s.len == 0) return rd_fail(r, "empty %s at offset %llu", what, (unsigned long long)r->pos);
    if (memchr(s.ptr, 0, (size_t)s.len))
        return rd_fail(r, "%s \"%.*s\" contains a NUL byte", what, (int)strnlen(s.ptr, 200), s.ptr);
    *out = strndup(s.ptr, (size_t)s.len);
    if (!*out) return llmrt_err(r->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    return LLMRT_OK;
}

/* Grows *arr (of *cap elements) to hold at least `need`; doubling keeps memory proportional to the
 * entries actually parsed, not to a count the file merely claims. */
static void *grow(void *arr, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return arr;
    int64_t n = *cap ? *cap * 2 : 16;
    char *p = realloc(arr, (size_t)n * elem);
    if (!p) return NULL; /* arr is still valid and owned by the caller */
    memset(p + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
    *cap = n;
    return p;
}

// --- key/value pairs --------------------------------------------------------------------------

static llmrt_status read_scalar(rd *r, uint32_t type, llmrt_gguf_kv *kv) {
    uint64_t raw = 0;
    uint64_t n = gguf_scalar_size(type);
    LLMRT_TRY(rd_bytes(r, &raw, n, "value")); /* little-endian host: low bytes hold the value */
    switch (type) {
    case LLMRT_GGUF_INT8:
        kv->v.i64 = (int8_t)raw;
        break;
    case LLMRT_GGUF_INT16:
        kv->v.i64 = (int16_t)raw;
        break;
    case LLMRT_GGUF_INT32:
        kv->v.i64 = (int32_t)raw;
        break;
    case LLMRT_GGUF_INT64:
        kv->v.i64 = (int64_t)raw;
        break;
    case LLMRT_GGUF_FLOAT32: {
        float f;
        memcpy(&f, &raw, 4);
        kv->v.f64 = f;
        break;
    }
    case LLMRT_GGUF_FLOAT64:
        memcpy(&kv->v.f64, &raw, 8);
        break;
    case LLMRT_GGUF_BOOL:
        if (raw > 1) return rd_fail(r, "bool value %llu is not 0 or 1", (unsigned long long)raw);
        kv->v.b = raw != 0;
        break;
    default:
        kv->v.u64 = raw;
        break; /* unsigned types */
    }
    return LLMRT_OK;
}

static llmrt_status read_string_array(rd *r, llmrt_gguf_kv *kv) {
    /* each element needs at least its 8-byte length: bounds n before the table is allocated */
    if (kv->arr_n > rd_left(r) / 8)
        return rd_fail(r, "string array of %llu elements is larger than the file",
                       (unsigned long long)kv->arr_n);
    uint64_t start = r->pos;
    llmrt_gguf_str s;
    for (uint64_t i = 0; i < kv->arr_n; i++)
        LLMRT_TRY(rd_str(r, &s, "array string"));
    if (kv->arr_n == 0) return LLMRT_OK;
    kv->arr_strs = malloc((size_t)kv->arr_n * sizeof *kv->arr_strs);
    if (!kv->arr_strs)
        return llmrt_err(r->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    r->pos = start;
    for (uint64_t i = 0; i < kv->arr_n; i++)
        LLMRT_TRY(rd_str(r, &kv->arr_strs[i], "array string"));
    return LLMRT_OK;
}

static llmrt_status read_array(rd *r, llmrt_gguf_kv *kv) {
    uint32_t et;
    LLMRT_TRY(rd_u32(r, &et, "array element type"));
    if (et == LLMRT_GGUF_ARRAY) return rd_fail(r, "nested arrays are not supported");
    if (et > LLMRT_GGUF_FLOAT64) return rd_fail(r, "invalid array element type %u", et);
    kv->arr_type = (llmrt_gguf_type)et;
    LLMRT_TRY(rd_u64(r, &kv->arr_n, "array length"));
    if (et == LLMRT_GGUF_STRING) return read_string_array(r, kv);
    uint64_t nbytes;
    if (!ck_mul_u64(kv->arr_n, gguf_scalar_size(et), &nbytes) || nbytes > rd_left(r))
        return rd_fail(r, "array of %llu %s elements is larger than the file",
                       (unsigned long long)kv->arr_n, gguf_type_name(et));
    kv->arr_data = r->p + r->pos;
    if (et == LLMRT_GGUF_BOOL)
        for (uint64_t i = 0; i < nbytes; i++)
            if (kv->arr_data[i] > 1)
                return rd_fail(r, "bool array element %llu is %u, not 0 or 1",
                               (unsigned long long)i, kv->arr_data[i]);
    r->pos += nbytes;
    return LLMRT_OK;
}

static llmrt_status read_kv(rd *r, llmrt_gguf_kv *kv) {
    LLMRT_TRY(rd_name(r, "key", &kv->key));
    r->ctx_kind = "key";
    r->ctx_name = kv->key;
    uint32_t type;
    LLMRT_TRY(rd_u32(r, &type, "value type"));
    if (type > LLMRT_GGUF_FLOAT64) return rd_fail(r, "invalid value type %u", type);
    kv->type = (llmrt_gguf_type)type;
    if (type == LLMRT_GGUF_STRING) return rd_str(r, &kv->v.str, "string value");
    if (type == LLMRT_GGUF_ARRAY) return read_array(r, kv);
    return read_scalar(r, type, kv);
}

static int compare_cstr_ptrs(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Returns the first duplicated name among n strings (via a sorted copy), NULL if none;
 * *oom is set when the scratch table cannot be allocated. */
static const char *find_duplicate(const char **names, int64_t n, bool *oom) {
    *oom = false;
    if (n < 2) return NULL;
    const char **sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted) {
        *oom = true;
        return NULL;
    }
    memcpy(sorted, names, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_cstr_ptrs);
    const char *dup = NULL;
    for (int64_t i = 1; i < n && !dup; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0) dup = sorted[i];
    free(sorted);
    return dup;
}

static llmrt_status check_unique(rd *r, const char **names, int64_t n, const char *kind) {
    bool oom;
    const char *dup = find_duplicate(names, n, &oom);
    free(names);
    if (oom) return llmrt_err(r->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    if (dup) return rd_fail(r, "duplicate %s \"%.200s\"", kind, dup);
    return LLMRT_OK;
}

static llmrt_status read_kvs(rd *r, llmrt_gguf_file *f, uint64_t n_kv) {
    int64_t cap = 0;
    for (uint64_t i = 0; i < n_kv; i++) {
        llmrt_gguf_kv *kvs = grow(f->kvs, &cap, f->n_kv + 1, sizeof *f->kvs);
        if (!kvs) return llmrt_err(r->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
        f->kvs = kvs;
        f->n_kv++; /* counted before it is filled so that close() frees a partial entry */
        LLMRT_TRY(read_kv(r, &f->kvs[f->n_kv - 1]));
        r->ctx_kind = NULL;
    }
    const char **names = malloc((size_t)(f->n_kv ? f->n_kv : 1) * sizeof *names);
    if (!names) return llmrt_err(r->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    for (int64_t i = 0; i < f->n_kv; i++)
        names[i] = f->kvs[i].key;
    return check_unique(r, names, f->n_kv, "key");
}

static llmrt_status read_alignment(rd *r, llmrt_gguf_file *f) {
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const llmrt_gguf_kv *kv = llmrt_gguf_find_kv(f, "general.alignment");
    if (!kv) return LLMRT_OK;
    if (kv->type != LLMRT_GGUF_UINT32)
        return rd_fail(r, "key \"general.alignment\" has type %s, expected UINT32",
                       gguf_type_name(kv->type));
    if (kv->v.u64 == 0 || (kv->v.u64 & (kv->v.u64 - 1)) != 0)
        return rd_fail(r, "key \"general.alignment\" = %llu is not a non-zero power of two",
                       (unsigned long long)kv->v.u64);
    f->alignment = kv->v.u64;
    return LLMRT_OK;
}

// --- tensor infos -----------------------------------------------------------------------------

static llmrt_status read_shape(rd *r, llmrt_gguf_tensor *t, uint64_t *n_elems) {
    uint32_t n_dims;
    LLMRT_TRY(rd_u32(r, &n_dims, "n_dims"));
    if (n_dims < 1 || n_dims > 4) return rd_fail(r, "n_dims = %u, expected 1..4", n_dims);
    t->n_dims = (int)n_dims;
    for (int i = 0; i < 4; i++)
        t->ne[i] = 1;
    for (uint32_t i = 0; i < n_dims; i++) {
        LLMRT_TRY(rd_u64(r, &t->ne[i], "ne"));
        /* zero dims are rejected as in llama.cpp (test-gguf ZERO_DIM); ggml sizes are int64 */
        if (t->ne[i] == 0) return rd_fail(r, "ne[%u] is zero", i);
        if (t->ne[i] > (uint64_t)INT64_MAX)
            return rd_fail(r, "ne[%u] = %llu is too big", i, (unsigned long long)t->ne[i]);
    }
    if (!ck_product_u64(t->ne, 4, n_elems) || *n_elems > (uint64_t)INT64_MAX)
        return rd_fail(r, "element count overflows 64 bits");
    return LLMRT_OK;
}

static llmrt_status read_tensor_info(rd *r, const llmrt_gguf_file *f, llmrt_gguf_tensor *t) {
    LLMRT_TRY(rd_name(r, "tensor name", &t->name));
    r->ctx_kind = "tensor";
    r->ctx_name = t->name;
    uint64_t n_elems = 0; /* set by read_shape (gcc cannot see it) */
    LLMRT_TRY(read_shape(r, t, &n_elems));
    LLMRT_TRY(rd_u32(r, &t->ggml_type, "ggml type"));
    if (t->ggml_type >= GGML_N_TYPES) return rd_fail(r, "invalid ggml type %u", t->ggml_type);
    const ggml_traits *tr = &GGML_TRAITS[t->ggml_type];
    if (tr->blck == 0) /* types removed from GGUF (Q4_2, Q4_0_4_4, ...): they have no name here */
        return rd_fail(r, "unsupported ggml type %u (removed from GGUF)", t->ggml_type);
    if (t->ne[0] % tr->blck != 0)
        return rd_fail(r, "ne[0] = %llu is not a multiple of the %s block size %u",
                       (unsigned long long)t->ne[0], tr->name, tr->blck);
    if (!ck_mul_u64(n_elems / tr->blck, tr->bytes, &t->nbytes))
        return rd_fail(r, "byte size overflows 64 bits");
    t->dtype = tr->dtype;
    LLMRT_TRY(rd_u64(r, &t->offset, "offset"));
    if (t->offset % f->alignment != 0)
        return rd_fail(r, "offset %llu is not a multiple of the alignment %llu",
                       (unsigned long long)t->offset, (unsigned long long)f->alignment);
    return LLMRT_OK;
}

static int compare_by_offset(const void *a, const void *b) {
    const llmrt_gguf_tensor *x = *(const llmrt_gguf_tensor *const *)a;
    const llmrt_gguf_tensor *y = *(const llmrt_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Places each tensor in the data section and rejects data past EOF and overlapping tensors. */
static llmrt_status place_tensors(rd *r, llmrt_gguf_file *f) {
    for (int64_t i = 0; i < f->n_tensors; i++) {
        llmrt_gguf_tensor *t = &f->tensors[i];
        uint64_t begin, end;
        r->ctx_kind = "tensor";
        r->ctx_name = t->name;
        if (!ck_add_u64(f->data_offset, t->offset, &begin) || !ck_add_u64(begin, t->nbytes, &end) ||
            end > r->size)
            return rd_fail(r,
                           "data (offset %llu, %llu bytes) is past the end of the file "
                           "(%llu bytes, data section at %llu)",
                           (unsigned long long)t->offset, (unsigned long long)t->nbytes,
                           (unsigned long long)r->size, (unsigned long long)f->data_offset);
        t->data = r->p + begin;
    }
    r->ctx_kind = NULL;
    if (f->n_tensors < 2) return LLMRT_OK;
    const llmrt_gguf_tensor **by_off = malloc((size_t)f->n_tensors * sizeof *by_off);
    if (!by_off) return llmrt_err(r->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    for (int64_t i = 0; i < f->n_tensors; i++)
        by_off[i] = &f->tensors[i];
    qsort(by_off, (size_t)f->n_tensors, sizeof *by_off, compare_by_offset);
    llmrt_status s = LLMRT_OK;
    for (int64_t i = 1; i < f->n_tensors && s == LLMRT_OK; i++) {
        const llmrt_gguf_tensor *a = by_off[i - 1], *b = by_off[i];
        if (a->offset + a->nbytes > b->offset) /* both in the file: no overflow */
            s = rd_fail(r,
                        "tensor \"%.150s\" (offset %llu, %llu bytes) overlaps tensor "
                        "\"%.150s\" (offset %llu)",
                        a->name, (unsigned long long)a->offset, (unsigned long long)a->nbytes,
                        b->name, (unsigned long long)b->offset);
    }
    free(by_off);
    return s;
}

static llmrt_status read_tensors(rd *r, llmrt_gguf_file *f, uint64_t n_tensors) {
    int64_t cap = 0;
    for (uint64_t i = 0; i < n_tensors; i++) {
        llmrt_gguf_tensor *ts = grow(f->tensors, &cap, f->n_tensors + 1, sizeof *f->tensors);
        if (!ts) return llmrt_err(r->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
        f->tensors = ts;
        f->n_tensors++;
        LLMRT_TRY(read_tensor_info(r, f, &f->tensors[f->n_tensors - 1]));
        r->ctx_kind = NULL;
    }
    const char **names = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *names);
    if (!names) return llmrt_err(r->err, LLMRT_ERR_OUT_OF_MEMORY, "%s: out of memory", r->path);
    for (int64_t i = 0; i < f->n_tensors; i++)
        names[i] = f->tensors[i].name;
    LLMRT_TRY(check_unique(r, names, f->n_tensors, "tensor name"));
    /* the data section starts at the next multiple of the alignment (alignment <= 2^31) */
    f->data_offset = (r->pos + f->alignment - 1) / f->alignment * f->alignment;
    return place_tensors(r, f);
}

// --- public API -------------------------------------------------------------------------------

static llmrt_status read_header(rd *r, llmrt_gguf_file *f, uint64_t *n_tensors, uint64_t *n_kv) {
    char magic[4];
    LLMRT_TRY(rd_bytes(r, magic, 4, "magic"));
    if (memcmp(magic, "GGUF", 4) != 0) return rd_fail(r, "bad magic: not a GGUF file");
    LLMRT_TRY(rd_u32(r, &f->version, "version"));
    if (f->version != 2 && f->version != 3)
        return rd_fail(r, "unsupported GGUF version %u (2 and 3 are supported)", f->version);
    LLMRT_TRY(rd_u64(r, n_tensors, "n_tensors"));
    LLMRT_TRY(rd_u64(r, n_kv, "n_kv"));
    uint64_t left = rd_left(r);
    if (*n_kv > left / GGUF_MIN_KV_BYTES)
        return rd_fail(r, "n_kv = %llu is more than the file can hold", (unsigned long long)*n_kv);
    if (*n_tensors > left / GGUF_MIN_TENSOR_BYTES)
        return rd_fail(r, "n_tensors = %llu is more than the file can hold",
                       (unsigned long long)*n_tensors);
    /* each product is <= left, so the sum cannot overflow */
    if (*n_kv * GGUF_MIN_KV_BYTES + *n_tensors * GGUF_MIN_TENSOR_BYTES > left)
        return rd_fail(r, "n_kv = %llu and n_tensors = %llu are more than the file can hold",
                       (unsigned long long)*n_kv, (unsigned long long)*n_tensors);
    return LLMRT_OK;
}

llmrt_status llmrt_gguf_parse(const uint8_t *data, uint64_t size, const char *path,
                              llmrt_gguf_file *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    rd r = {.p = data, .size = data ? size : 0, .path = path ? path : "<buffer>", .err = err};
    uint64_t n_tensors = 0, n_kv = 0;
    llmrt_status s = read_header(&r, out, &n_tensors, &n_kv);
    if (s == LLMRT_OK) s = read_kvs(&r, out, n_kv);
    if (s == LLMRT_OK) s = read_alignment(&r, out);
    if (s == LLMRT_OK) s = read_tensors(&r, out, n_tensors);
    if (s != LLMRT_OK) {
        llmrt_gguf_close(out);
        return s;
    }
    out->path = r.path;
    return LLMRT_OK;
}

llmrt_status llmrt_gguf_open(const char *path, llmrt_gguf_file *out, llmrt_error *err) {
    memset(out, 0, sizeof *out);
    llmrt_mapped_file file;
    LLMRT_TRY(llmrt_mapped_file_open(path, &file, err));
    llmrt_status s = llmrt_gguf_parse(file.data, file.size, file.path, out, err);
    if (s != LLMRT_OK) {
        llmrt_mapped_file_close(&file);
        return s;
    }
    out->file = file;
    out->path = out->file.path;
    return LLMRT_OK;
}

void llmrt_gguf_close(llmrt_gguf_file *f) {
    if (!f) return;
    for (int64_t i = 0; i < f->n_kv; i++) {
        free(f->kvs[i].key);
        free(f->kvs[i].arr_strs);
    }
    free(f->kvs);
    for (int64_t i = 0; i < f->n_tensors; i++)
        free(f->tensors[i].name);
    free(f->tensors);
    llmrt_mapped_file_close(&f->file);
    memset(f, 0, sizeof *f);
}

/* Linear scans: a model has tens of keys and hundreds of tensors, looked up once at load. */
const llmrt_gguf_kv *llmrt_gguf_find_kv(const llmrt_gguf_file *f, const char *key) {
    for (int64_t i = 0; i < f->n_kv; i++)
        if (f->kvs[i].key && strcmp(f->kvs[i].key, key) == 0) return &f->kvs[i];
    return NULL;
}

const llmrt_gguf_tensor *llmrt_gguf_find_tensor(const llmrt_gguf_file *f, const char *name) {
    for (int64_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].name && strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

// --- typed getters ----------------------------------------------------------------------------

/* Finds `key`; *kv is NULL when absent (an error only when required). */
static llmrt_status lookup(const llmrt_gguf_file *f, const char *key, bool required,
                           const llmrt_gguf_kv **kv, llmrt_error *err) {
    *kv = llmrt_gguf_find_kv(f, key);
    if (*kv || !required) return LLMRT_OK;
    return llmrt_err(err, LLMRT_ERR_MODEL_MISMATCH, "%s: missing key \"%s\"",
                     f->path ? f->path : "<buffer>", key);
}

static llmrt_status wrong_type(const llmrt_gguf_file *f, const llmrt_gguf_kv *kv,
                               const char *expected, llmrt_error *err) {
    return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: key \"%s\" has type %s, expected %s",
                     f->path ? f->path : "<buffer>", kv->key, gguf_type_name(kv->type), expected);
}

static llmrt_status out_of_range(const llmrt_gguf_file *f, const llmrt_gguf_kv *kv,
                                 const char *expected, llmrt_error *err) {
    return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: key \"%s\" value does not fit %s",
                     f->path ? f->path : "<buffer>", kv->key, expected);
}

llmrt_status llmrt_gguf_get_u64(const llmrt_gguf_file *f, const char *key, bool required,
                                uint64_t *out, llmrt_error *err) {
    const llmrt_gguf_kv *kv;
    LLMRT_TRY(lookup(f, key, required, &kv, err));
    if (!kv) return LLMRT_OK;
    if (is_unsigned(kv->type))
        *out = kv->v.u64;
    else if (!is_signed(kv->type))
        return wrong_type(f, kv, "an unsigned integer", err);
    else if (kv->v.i64 < 0)
        return out_of_range(f, kv, "an unsigned integer", err);
    else
        *out = (uint64_t)kv->v.i64;
    return LLMRT_OK;
}

llmrt_status llmrt_gguf_get_i64(const llmrt_gguf_file *f, const char *key, bool required,
                                int64_t *out, llmrt_error *err) {
    const llmrt_gguf_kv *kv;
    LLMRT_TRY(lookup(f, key, required, &kv, err));
    if (!kv) return LLMRT_OK;
    if (is_signed(kv->type))
        *out = kv->v.i64;
    else if (!is_unsigned(kv->type))
        return wrong_type(f, kv, "an integer", err);
    else if (kv->v.u64 > (uint64_t)INT64_MAX)
        return out_of_range(f, kv, "a signed integer", err);
    else
        *out = (int64_t)kv->v.u64;
    return LLMRT_OK;
}

llmrt_status llmrt_gguf_get_f64(const llmrt_gguf_file *f, const char *key, bool required,
                                double *out, llmrt_error *err) {
    const llmrt_gguf_kv *kv;
    LLMRT_TRY(lookup(f, key, required, &kv, err));
    if (!kv) return LLMRT_OK;
    if (kv->type != LLMRT_GGUF_FLOAT32 && kv->type != LLMRT_GGUF_FLOAT64)
        return wrong_type(f, kv, "FLOAT32 or FLOAT64", err);
    *out = kv->v.f64;
    return LLMRT_OK;
}

llmrt_status llmrt_gguf_get_bool(const llmrt_gguf_file *f, const char *key, bool required,
                                 bool *out, llmrt_error *err) {
    const llmrt_gguf_kv *kv;
    LLMRT_TRY(lookup(f, key, required, &kv, err));
    if (!kv) return LLMRT_OK;
    if (kv->type != LLMRT_GGUF_BOOL) return wrong_type(f, kv, "BOOL", err);
    *out = kv->v.b;
    return LLMRT_OK;
}

llmrt_status llmrt_gguf_get_str(const llmrt_gguf_file *f, const char *key, bool required,
                                llmrt_gguf_str *out, llmrt_error *err) {
    const llmrt_gguf_kv *kv;
    LLMRT_TRY(lookup(f, key, required, &kv, err));
    if (!kv) return LLMRT_OK;
    if (kv->type != LLMRT_GGUF_STRING) return wrong_type(f, kv, "STRING", err);
    *out = kv->v.str;
    return LLMRT_OK;
}

llmrt_status llmrt_gguf_get_arr(const llmrt_gguf_file *f, const char *key, llmrt_gguf_type elem,
                                bool required, const llmrt_gguf_kv **out, llmrt_error *err) {
    const llmrt_gguf_kv *kv;
    LLMRT_TRY(lookup(f, key, required, &kv, err));
    if (!kv) return LLMRT_OK;
    if (kv->type != LLMRT_GGUF_ARRAY || kv->arr_type != elem) {
        char expected[32];
        snprintf(expected, sizeof expected, "ARRAY[%s]", gguf_type_name(elem));
        if (kv->type != LLMRT_GGUF_ARRAY) return wrong_type(f, kv, expected, err);
        return llmrt_err(err, LLMRT_ERR_FORMAT, "%s: key \"%s\" has type ARRAY[%s], expected %s",
                         f->path ? f->path : "<buffer>", kv->key, gguf_type_name(kv->arr_type),
                         expected);
    }
    *out = kv;
    return LLMRT_OK;
}
