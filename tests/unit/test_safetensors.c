/* safetensors reader: a valid file round trip (in memory and through a temp file) and one case per
 * malformed-file check of reference/reliability.md B2. Every failure is checked for its status and
 * for a message that names the problem. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format/safetensors.h"
#include "test_util.h"


typedef struct blob {
    uint8_t *p;
    uint64_t n;
} blob;

/* 8-byte header length (as given) + json + data_len bytes of a recognisable pattern. */
static blob make_raw(uint64_t header_len, const char *json, uint64_t data_len) {
    uint64_t jl = strlen(json);
    blob b = {malloc(8 + jl + data_len + 1), 8 + jl + data_len};
    memcpy(b.p, &header_len, 8);
    memcpy(b.p + 8, json, jl);
    for (uint64_t i = 0; i < data_len; i++)
        b.p[8 + jl + i] = (uint8_t)(i * 7 + 1);
    return b;
}

static blob make(const char *json, uint64_t data_len) {
    return make_raw(strlen(json), json, data_len);
}

static bool is_zeroed(const llmrt_st_file *f) {
    return f->tensors == NULL && f->n_tensors == 0 && f->path == NULL && f->file.data == NULL;
}

/* Parses json + data_len bytes and expects `expected` with `needle` in the message. */
static void expect_fail_at(int line, const char *json, uint64_t data_len, llmrt_status expected,
                           const char *needle) {
    blob b = make(json, data_len);
    llmrt_st_file f;
    llmrt_error err = {0};
    llmrt_status s = llmrt_safetensors_parse(b.p, b.n, "bad.safetensors", &f, &err);
    CHECK_MSG(s == expected, "line %d: got %s (%s)", line, llmrt_status_str(s), err.msg);
    CHECK_MSG(strstr(err.msg, needle) != NULL, "line %d: message \"%s\" lacks \"%s\"", line,
              err.msg, needle);
    CHECK_MSG(strstr(err.msg, "bad.safetensors") != NULL, "line %d: no path in \"%s\"", line,
              err.msg);
    CHECK_MSG(is_zeroed(&f), "line %d: out not zeroed on failure", line);
    llmrt_safetensors_close(&f);
    free(b.p);
}
#define EXPECT_FAIL(json, data_len, needle)                                                        \
    expect_fail_at(__LINE__, json, data_len, LLMRT_ERR_FORMAT, needle)

// --- valid files ------------------------------------------------------------------------------

/* Unsorted names, metadata, a rank-0 tensor, HF-style space padding after the JSON. */
static const char *VALID_JSON =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
    "\"a\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[24,32]},"
    "\"c\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[32,40]}}    ";

static void check_valid(const llmrt_st_file *f, const uint8_t *data_start) {
    CHECK(f->n_tensors == 3);
    if (f->n_tensors != 3) return;
    CHECK(strcmp(f->tensors[0].name, "a") == 0);
    CHECK(strcmp(f->tensors[1].name, "b") == 0);
    CHECK(strcmp(f->tensors[2].name, "c") == 0);
    const llmrt_st_tensor *b = llmrt_safetensors_find(f, "b");
    CHECK(b != NULL);
    if (b) {
        CHECK(b->dtype == LLMRT_DTYPE_F32);
        CHECK(b->n_dims == 2 && b->shape[0] == 2 && b->shape[1] == 3);
        CHECK(b->n_elems == 6 && b->nbytes == 24);
        CHECK(b->data == data_start);
    }
    const llmrt_st_tensor *a = llmrt_safetensors_find(f, "a");
    CHECK(a && a->dtype == LLMRT_DTYPE_BF16 && a->n_elems == 4 && a->nbytes == 8);
    CHECK(a && a->data == data_start + 24);
    const llmrt_st_tensor *c = llmrt_safetensors_find(f, "c");
    CHECK(c && c->dtype == LLMRT_DTYPE_I64 && c->n_dims == 0 && c->n_elems == 1);
    CHECK(c && c->data == data_start + 32 && c->data[0] == (uint8_t)(32 * 7 + 1));
    CHECK(llmrt_safetensors_find(f, "zzz") == NULL);
    CHECK(llmrt_safetensors_find(f, "") == NULL);
}

static void test_valid_memory(void) {
    blob b = make(VALID_JSON, 40);
    llmrt_st_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_safetensors_parse(b.p, b.n, "mem.safetensors", &f, &err), err, LLMRT_OK, "");
    check_valid(&f, b.p + 8 + strlen(VALID_JSON));
    CHECK(f.path && strcmp(f.path, "mem.safetensors") == 0);
    llmrt_safetensors_close(&f);
    CHECK(is_zeroed(&f));
    free(b.p);
}

static void test_valid_file(void) {
    char tmpl[] = "/tmp/llmrt_test_st_XXXXXX";
    int fd = mkstemp(tmpl);
    CHECK(fd >= 0);
    if (fd < 0) return;
    blob b = make(VALID_JSON, 40);
    CHECK(write(fd, b.p, b.n) == (ssize_t)b.n);
    close(fd);
    llmrt_st_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_safetensors_open(tmpl, &f, &err), err, LLMRT_OK, "");
    check_valid(&f, f.file.data + 8 + strlen(VALID_JSON));
    CHECK(f.path && strcmp(f.path, tmpl) == 0);
    llmrt_safetensors_close(&f);
    unlink(tmpl);
    free(b.p);

    CHECK_ERROR(llmrt_safetensors_open("/nonexistent/x.safetensors", &f, &err), err, LLMRT_ERR_IO,
              "/nonexistent/x.safetensors");
    CHECK(is_zeroed(&f));
}

static void test_empty_and_zero_size(void) {
    /* a header with no tensors and no data is a valid (empty) file */
    blob b = make("{}", 0);
    llmrt_st_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_safetensors_parse(b.p, b.n, "empty", &f, &err), err, LLMRT_OK, "");
    CHECK(f.n_tensors == 0);
    llmrt_safetensors_close(&f);
    free(b.p);

    /* zero-size tensors are legal, also at the same offset as another tensor */
    b = make("{\"z\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[0,0]},"
             "\"w\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
             "\"y\":{\"dtype\":\"F32\",\"shape\":[4,0],\"data_offsets\":[3,3]}}",
             3);
    CHECK_ERROR(llmrt_safetensors_parse(b.p, b.n, "zero", &f, &err), err, LLMRT_OK, "");
    const llmrt_st_tensor *z = llmrt_safetensors_find(&f, "z");
    CHECK(z && z->n_elems == 0 && z->nbytes == 0 && z->n_dims == 2);
    CHECK(llmrt_safetensors_find(&f, "w") && llmrt_safetensors_find(&f, "w")->nbytes == 3);
    llmrt_safetensors_close(&f);
    free(b.p);

    llmrt_st_file zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    llmrt_safetensors_close(&zeroed); /* safe on a zeroed struct */
    CHECK(is_zeroed(&zeroed));
}

// --- malformed files --------------------------------------------------------------------------

static void test_truncated(void) {
    uint8_t small[5] = {1, 0, 0, 0, 0};
    llmrt_st_file f;
    llmrt_error err = {0};
    CHECK_ERROR(llmrt_safetensors_parse(small, sizeof small, "t.st", &f, &err), err, LLMRT_ERR_FORMAT,
              "too small");
    CHECK_ERROR(llmrt_safetensors_parse(NULL, 0, "t.st", &f, &err), err, LLMRT_ERR_FORMAT,
              "too small");

    /* header cut: the length field claims more than the file holds */
    blob b = make_raw(100, "{\"a\":{}}", 0);
    CHECK_ERROR(llmrt_safetensors_parse(b.p, b.n, "t.st", &f, &err), err, LLMRT_ERR_FORMAT,
              "past the end of the file");
    free(b.p);

    /* every proper prefix of a valid file is rejected cleanly */
    b = make(VALID_JSON, 40);
    int n_failed = 0;
    for (uint64_t n = 0; n < b.n; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        memcpy(copy, b.p, n);
        if (llmrt_safetensors_parse(copy, n, "t.st", &f, &err) == LLMRT_ERR_FORMAT) n_failed++;
        llmrt_safetensors_close(&f);
        free(copy);
    }
    CHECK_MSG(n_failed == (int)b.n, "%d of %d prefixes rejected", n_failed, (int)b.n);
    free(b.p);
}

static void test_header_too_large(void) {
    llmrt_st_file f;
    llmrt_error err = {0};
    blob b = make_raw(200000000ull, "{}", 0);
    CHECK_ERROR(llmrt_safetensors_parse(b.p, b.n, "big.st", &f, &err), err, LLMRT_ERR_FORMAT,
              "exceeds the limit");
    free(b.p);
    b = make_raw(UINT64_MAX, "{}", 0); /* 8 + N would overflow */
    CHECK_ERROR(llmrt_safetensors_parse(b.p, b.n, "big.st", &f, &err), err, LLMRT_ERR_FORMAT,
              "exceeds the limit");
    free(b.p);
    b = make_raw(3, "{}", 0); /* under the limit, past the file */
    CHECK_ERROR(llmrt_safetensors_parse(b.p, b.n, "big.st", &f, &err), err, LLMRT_ERR_FORMAT,
              "past the end of the file");
    free(b.p);
}

static void test_not_json(void) {
    EXPECT_FAIL("{not json}", 0, "invalid JSON");
    EXPECT_FAIL("", 0, "invalid JSON");
    EXPECT_FAIL("[1,2]", 0, "not a JSON object");
    EXPECT_FAIL("{} x", 0, "trailing bytes");
}

static void test_not_utf8(void) {
    EXPECT_FAIL("{\"\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "UTF-8");
    EXPECT_FAIL("{\"\xc0\xaf\":1}", 0, "UTF-8"); /* overlong '/' */
}

static void test_duplicate_key(void) {
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                8, "duplicate JSON key \"a\"");
}

static void test_unknown_dtype(void) {
    EXPECT_FAIL("{\"w\":{\"dtype\":\"F4\",\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
                "tensor \"w\": unknown dtype \"F4\"");
    EXPECT_FAIL("{\"w\":{\"dtype\":7,\"shape\":[2],\"data_offsets\":[0,1]}}", 1,
                "tensor \"w\": missing string \"dtype\"");
}

static void test_bad_fields(void) {
    EXPECT_FAIL("{\"w\":[1]}", 0, "tensor \"w\": entry is not an object");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1, "missing array \"shape\"");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1,
                "shape[0] is not a non-negative integer");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]}}", 1,
                "shape[0] is not a non-negative integer");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1,
                "shape[0] is not a non-negative integer");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}",
                1, "shape has 9 dims");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1,
                "tensor \"w\": \"data_offsets\" must be [begin, end]");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1,
                "\"data_offsets\" must be [begin, end]");
    EXPECT_FAIL("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1e300]}}", 1,
                "\"data_offsets\" must be [begin, end]");
    EXPECT_FAIL("{\"__metadata__\":{\"format\":1}}", 0, "\"__metadata__\" value of \"format\"");
    EXPECT_FAIL("{\"__metadata__\":[\"pt\"]}", 0, "\"__metadata__\" must be an object");
}

static void test_overlap(void) {
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                12, "tensor \"b\": data_offsets begin 4 overlaps");
}

static void test_gap(void) {
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                20, "tensor \"b\": gap in data_offsets");
    /* offsets must start at 0 */
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
                "tensor \"a\": gap in data_offsets: begins at 4, expected 0");
}

static void test_past_eof(void) {
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
                "tensor \"a\": data_offsets end 8 is past the end of file");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[9007199254740000,"
                "9007199254740004]}}",
                4, "past the end of file");
}

static void test_end_before_begin(void) {
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
                "tensor \"a\": invalid data_offsets: end 0 < begin 8");
}

static void test_trailing_bytes(void) {
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 10,
                "2 trailing bytes");
    EXPECT_FAIL("{}", 1, "1 trailing bytes");
}

static void test_size_mismatch(void) {
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                "tensor \"a\": data_offsets span 8 bytes but shape x dtype is 12 bytes");
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,0]}}", 0,
                "span 0 bytes but shape x dtype is 4 bytes");
}

static void test_overflow(void) {
    /* element count 2^64 */
    EXPECT_FAIL("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296],"
                "\"data_offsets\":[0,0]}}",
                0, "tensor \"a\": shape x dtype size overflows");
    /* element count 2^63 fits, bytes 2^65 do not */
    EXPECT_FAIL("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,2147483648],"
                "\"data_offsets\":[0,0]}}",
                0, "shape x dtype size overflows");
    /* a zero dim makes a huge other dim harmless: 0 elements */
    EXPECT_FAIL("{\"a\":{\"dtype\":\"U8\",\"shape\":[0,4294967296,4294967296],"
                "\"data_offsets\":[0,1]}}",
                1, "span 1 bytes but shape x dtype is 0 bytes");
    /* above 2^53 a JSON number cannot be read exactly */
    EXPECT_FAIL("{\"a\":{\"dtype\":\"U8\",\"shape\":[18446744073709551617],"
                "\"data_offsets\":[0,1]}}",
                1, "shape[0] is not a non-negative integer");
}

int main(void) {
    test_valid_memory();
    test_valid_file();
    test_empty_and_zero_size();
    test_truncated();
    test_header_too_large();
    test_not_json();
    test_not_utf8();
    test_duplicate_key();
    test_unknown_dtype();
    test_bad_fields();
    test_overlap();
    test_gap();
    test_past_eof();
    test_end_before_begin();
    test_trailing_bytes();
    test_size_mismatch();
    test_overflow();
    return test_summary("test_safetensors");
}
