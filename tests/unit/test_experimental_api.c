/* The experimental public calls of include/llmrt_experimental.h that need no real model:
 *  - the standalone tokenizer (llmrt_text_tokenizer_*) on the tokenizer.json fixtures: argument
 *    checks, missing and malformed files named in the message, a GGUF without a vocabulary, the
 *    size protocol of encode/decode, ids identical to the internal tokenizer's, ids out of range;
 *  - the streaming detokenizer (llmrt_text_detokenizer_*) over a standalone tokenizer: argument
 *    checks, deltas whose concatenation equals the one-shot decode (skip_special on and off),
 *    whole UTF-8 characters in every delta, a bad id that leaves the stream as it was, reuse
 *    after flush; over a model without a tokenizer (LLMRT_ERR_UNSUPPORTED naming it);
 *  - the MPI job calls outside a launcher (rank 0 of 1, barrier a no-op).
 * tests/model/test_experimental_smollm2.c compares with llmrt_tokenize / llmrt_detokenize on a
 * real model. */
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llmrt_experimental.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

#define TOKDIR  LLMRT_TEST_DATA_DIR "/tokenizers"
#define TINYDIR LLMRT_TEST_DATA_DIR "/tiny"

static const char *const texts[] = {
    "Hello, world!",
    "What is the capital of France?",
    "  two leading spaces\nnew line\ttab",
    "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x9a\x80 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "<s>[INST] special-looking text [/INST]</s><|begin_of_text|>",
    "",
};
#define N_TEXTS ((int)(sizeof texts / sizeof texts[0]))

static bool utf8_valid(const char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t        k = c < 0x80 ? 0 : c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2
                                     : c >= 0xf0 && c <= 0xf4   ? 3 : 99;
        if (k == 99 || n - i <= k) return false;
        for (size_t j = 1; j <= k; j++)
            if (((unsigned char)s[i + j] & 0xc0) != 0x80) return false;
        i += k + 1;
    }
    return true;
}

/* Encodes with the two-call size protocol; returns a malloc'd array (never NULL) and *n. */
static int32_t *encode(const llmrt_text_tokenizer *tok, const char *text, bool add, bool parse,
                       int32_t *n) {
    *n             = -1;
    llmrt_status s = llmrt_text_tokenizer_encode(tok, text, strlen(text), add, parse, NULL, 0, n);
    CHECK_MSG(s == (*n > 0 ? LLMRT_ERR_BUFFER_TOO_SMALL : LLMRT_OK),
              "size query of \"%s\": %s, n %d (%s)", text, llmrt_status_str(s), *n, llmrt_last_error());
    int32_t *ids = calloc((size_t)(*n > 0 ? *n : 1), sizeof *ids);
    int32_t  m   = -1;
    CHECK_STATUS(llmrt_text_tokenizer_encode(tok, text, strlen(text), add, parse, ids, *n, &m),
                 LLMRT_OK, NULL);
    CHECK(m == *n);
    return ids;
}

/* One-shot decode, malloc'd NUL-terminated. */
static char *decode(const llmrt_text_tokenizer *tok, const int32_t *ids, int32_t n, bool skip,
                    size_t *len) {
    *len = 0;
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, ids, n, skip, NULL, 0, len),
                 LLMRT_ERR_BUFFER_TOO_SMALL, "do not fit");
    char  *text = malloc(*len + 1);
    size_t l2   = 0;
    if (*len > 0) /* exactly the text without room for the NUL: still too small */
        CHECK_STATUS(llmrt_text_tokenizer_decode(tok, ids, n, skip, text, *len, &l2),
                     LLMRT_ERR_BUFFER_TOO_SMALL, NULL);
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, ids, n, skip, text, *len + 1, &l2), LLMRT_OK, NULL);
    CHECK(l2 == *len && text[*len] == 0);
    return text;
}

/* Streams ids through `d` and checks the deltas against the one-shot decode `want`. */
static void check_stream(llmrt_text_detokenizer *d, const int32_t *ids, int32_t n, const char *want,
                         size_t want_len, const char *label) {
    size_t cap = want_len + 64, got = 0;
    char  *acc = malloc(cap);
    bool   ok  = true;
    for (int32_t i = 0; i <= n && ok; i++) {
        const char *delta = NULL;
        size_t      dl    = 12345;
        llmrt_status s    = i < n ? llmrt_text_detokenizer_push(d, ids[i], &delta, &dl)
                                  : llmrt_text_detokenizer_flush(d, &delta, &dl);
        ok = s == LLMRT_OK && delta && strlen(delta) == dl;
        CHECK_MSG(ok, "%s: %s at token %d: %s", label, i < n ? "push" : "flush", i, llmrt_last_error());
        if (!ok) break;
        CHECK_MSG(utf8_valid(delta, dl), "%s: delta %d is not whole UTF-8 characters", label, i);
        if (got + dl > cap) {
            ok = false;
            CHECK_MSG(false, "%s: the stream is longer than the one-shot decode (%zu bytes)", label,
                      want_len);
            break;
        }
        memcpy(acc + got, delta, dl);
        got += dl;
    }
    if (ok)
        CHECK_MSG(got == want_len && memcmp(acc, want, got) == 0,
                  "%s: streamed \"%.*s\" != decoded \"%s\"", label, (int)got, acc, want);
    free(acc);
}

static void test_load_errors(void) {
    llmrt_text_tokenizer *tok = (llmrt_text_tokenizer *)&tok; /* must be reset to NULL */
    CHECK_STATUS(llmrt_text_tokenizer_load(NULL, NULL, &tok), LLMRT_ERR_INVALID_ARG, "path is NULL");
    CHECK(tok == NULL);
    CHECK_STATUS(llmrt_text_tokenizer_load(TOKDIR "/mistral", NULL, NULL), LLMRT_ERR_INVALID_ARG,
                 "out is NULL");
    CHECK_STATUS(llmrt_text_tokenizer_load("", NULL, &tok), LLMRT_ERR_INVALID_ARG, "empty");

    /* missing files are named */
    CHECK_STATUS(llmrt_text_tokenizer_load("/nonexistent/dir/tokenizer.json", NULL, &tok),
                 LLMRT_ERR_IO, "/nonexistent/dir/tokenizer.json");
    CHECK(tok == NULL);
    /* a directory without tokenizer.json: the file it looked for */
    CHECK_STATUS(llmrt_text_tokenizer_load(TINYDIR "/llama_f32", NULL, &tok), LLMRT_ERR_IO,
                 TINYDIR "/llama_f32/tokenizer.json");
    CHECK(tok == NULL);
    /* a missing tokenizer_config.json given explicitly */
    llmrt_status s = llmrt_text_tokenizer_load(TOKDIR "/mistral/tokenizer.json",
                                               "/nonexistent/tokenizer_config.json", &tok);
    CHECK_MSG(s != LLMRT_OK && strstr(llmrt_last_error(), "/nonexistent/tokenizer_config.json"),
              "missing config: %s %s", llmrt_status_str(s), llmrt_last_error());
    CHECK(tok == NULL);
    /* not a tokenizer.json: a config.json */
    s = llmrt_text_tokenizer_load(TINYDIR "/llama_f32/config.json", NULL, &tok);
    CHECK_MSG(s != LLMRT_OK && strstr(llmrt_last_error(), "llama_f32/config.json"),
              "config.json as a tokenizer: %s %s", llmrt_status_str(s), llmrt_last_error());
    CHECK(tok == NULL);
    /* GGUF: no config; a GGUF without a vocabulary is an error naming the file */
    CHECK_STATUS(llmrt_text_tokenizer_load(TINYDIR "/llama_f32.gguf", TOKDIR "/mistral/tokenizer_config.json",
                                           &tok),
                 LLMRT_ERR_INVALID_ARG, "GGUF");
    s = llmrt_text_tokenizer_load(TINYDIR "/llama_f32.gguf", NULL, &tok);
    CHECK_MSG(s != LLMRT_OK && strstr(llmrt_last_error(), "llama_f32.gguf"),
              "GGUF without a vocabulary: %s %s", llmrt_status_str(s), llmrt_last_error());
    CHECK(tok == NULL);

    llmrt_text_tokenizer_destroy(NULL); /* no-op */
    CHECK(llmrt_text_tokenizer_vocab_size(NULL) == 0);
}

static void test_tokenizer(const char *name, const char *path, const char *config,
                           const char *json, const char *json_config, int32_t vocab) {
    llmrt_text_tokenizer *tok = NULL;
    CHECK_STATUS(llmrt_text_tokenizer_load(path, config, &tok), LLMRT_OK, NULL);
    if (!tok) return;
    CHECK_MSG(llmrt_text_tokenizer_vocab_size(tok) == vocab, "%s: vocab %d, expected %d", name,
              llmrt_text_tokenizer_vocab_size(tok), vocab);
    /* the reference: the internal tokenizer loaded from the same files */
    llmrt_error      err = {0};
    llmrt_tokenizer *ref = NULL;
    CHECK_ERROR(llmrt_tokenizer_load_hf(json, json_config, &ref, &err), err, LLMRT_OK, "");

    /* argument checks */
    int32_t n = 0, ids1[4];
    size_t  len = 0;
    char    buf[8];
    CHECK_STATUS(llmrt_text_tokenizer_encode(NULL, "a", 1, false, false, ids1, 4, &n),
                 LLMRT_ERR_INVALID_ARG, "tokenizer is NULL");
    CHECK_STATUS(llmrt_text_tokenizer_encode(tok, "a", 1, false, false, ids1, 4, NULL),
                 LLMRT_ERR_INVALID_ARG, "n is required");
    CHECK_STATUS(llmrt_text_tokenizer_encode(tok, NULL, 1, false, false, ids1, 4, &n),
                 LLMRT_ERR_INVALID_ARG, "llmrt_text_tokenizer_encode");
    CHECK_STATUS(llmrt_text_tokenizer_encode(tok, "a", 1, false, false, NULL, 4, &n),
                 LLMRT_ERR_INVALID_ARG, "llmrt_text_tokenizer_encode");
    CHECK_STATUS(llmrt_text_tokenizer_encode(tok, "a", 1, false, false, ids1, -1, &n),
                 LLMRT_ERR_INVALID_ARG, "capacity -1");
    CHECK_STATUS(llmrt_text_tokenizer_decode(NULL, ids1, 0, false, buf, sizeof buf, &len),
                 LLMRT_ERR_INVALID_ARG, "tokenizer is NULL");
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, ids1, 0, false, buf, sizeof buf, NULL),
                 LLMRT_ERR_INVALID_ARG, "len is required");
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, ids1, -1, false, buf, sizeof buf, &len),
                 LLMRT_ERR_INVALID_ARG, "n_ids (-1)");
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, NULL, 2, false, buf, sizeof buf, &len),
                 LLMRT_ERR_INVALID_ARG, "llmrt_text_tokenizer_decode");
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, ids1, 0, false, NULL, 4, &len),
                 LLMRT_ERR_INVALID_ARG, "llmrt_text_tokenizer_decode");
    /* ids out of range */
    int32_t bad[3] = {1, vocab, 2};
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, bad, 3, false, buf, sizeof buf, &len),
                 LLMRT_ERR_INVALID_ARG, "llmrt_text_tokenizer_decode");
    bad[1] = -1;
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, bad, 3, false, buf, sizeof buf, &len),
                 LLMRT_ERR_INVALID_ARG, "llmrt_text_tokenizer_decode");
    /* an empty decode is "" */
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, NULL, 0, false, buf, sizeof buf, &len), LLMRT_OK, NULL);
    CHECK(len == 0 && buf[0] == 0);

    llmrt_text_detokenizer *d = (llmrt_text_detokenizer *)&d;
    CHECK_STATUS(llmrt_text_detokenizer_create_from_tokenizer(NULL, false, &d), LLMRT_ERR_INVALID_ARG,
                 "tokenizer is NULL");
    CHECK(d == NULL);
    CHECK_STATUS(llmrt_text_detokenizer_create_from_tokenizer(tok, false, NULL), LLMRT_ERR_INVALID_ARG,
                 "out is NULL");
    const char *delta = NULL;
    CHECK_STATUS(llmrt_text_detokenizer_push(NULL, 1, &delta, NULL), LLMRT_ERR_INVALID_ARG,
                 "detokenizer is NULL");
    CHECK_STATUS(llmrt_text_detokenizer_flush(NULL, &delta, NULL), LLMRT_ERR_INVALID_ARG,
                 "detokenizer is NULL");
    llmrt_text_detokenizer_destroy(NULL); /* no-op */

    for (int t = 0; t < N_TEXTS; t++) {
        for (int mode = 0; mode < 4; mode++) {
            bool     add = mode & 1, parse = (mode & 2) != 0;
            int32_t  n_ids;
            int32_t *ids = encode(tok, texts[t], add, parse, &n_ids);
            /* the same ids as the internal tokenizer */
            int32_t *want = NULL;
            int64_t  n_want = 0;
            CHECK_ERROR(llmrt_tokenizer_encode(ref, texts[t], strlen(texts[t]), add, parse, &want,
                                               &n_want, &err),
                        err, LLMRT_OK, "");
            CHECK_MSG(n_want == n_ids && (n_ids == 0 || !memcmp(want, ids, (size_t)n_ids * sizeof *ids)),
                      "%s \"%s\" add=%d parse=%d: %d ids, the internal tokenizer %lld", name,
                      texts[t], add, parse, n_ids, (long long)n_want);
            free(want);
            /* a buffer one short */
            if (n_ids > 0) {
                int32_t m = -1;
                CHECK_STATUS(llmrt_text_tokenizer_encode(tok, texts[t], strlen(texts[t]), add, parse,
                                                         ids, n_ids - 1, &m),
                             LLMRT_ERR_BUFFER_TOO_SMALL, "do not fit");
                CHECK(m == n_ids);
            }
            for (int skip = 0; skip <= 1; skip++) {
                size_t len2;
                char  *text = decode(tok, ids, n_ids, skip, &len2);
                char  *ref_text = NULL;
                size_t ref_len  = 0;
                CHECK_ERROR(llmrt_tokenizer_decode(ref, ids, n_ids, skip, &ref_text, &ref_len, &err),
                            err, LLMRT_OK, "");
                CHECK(ref_text && ref_len == len2 && !memcmp(ref_text, text, len2));
                free(ref_text);
                char label[160];
                snprintf(label, sizeof label, "%s \"%.40s\" add=%d parse=%d skip=%d", name, texts[t],
                         add, parse, skip);
                d = NULL;
                CHECK_STATUS(llmrt_text_detokenizer_create_from_tokenizer(tok, skip, &d), LLMRT_OK, NULL);
                if (d) {
                    check_stream(d, ids, n_ids, text, len2, label);
                    /* flush started a new stream: the same ids give the same text again */
                    check_stream(d, ids, n_ids, text, len2, label);
                    /* a bad id in the middle is refused and changes nothing */
                    if (n_ids >= 2) {
                        const char *dt = NULL;
                        size_t      dl = 0;
                        CHECK_STATUS(llmrt_text_detokenizer_push(d, ids[0], &dt, &dl), LLMRT_OK, NULL);
                        size_t cap = len2 + 64, got = dl;
                        char  *acc = malloc(cap);
                        memcpy(acc, dt, dl);
                        CHECK_STATUS(llmrt_text_detokenizer_push(d, vocab, &dt, &dl),
                                     LLMRT_ERR_INVALID_ARG, "llmrt_text_detokenizer_push");
                        CHECK(dt != NULL && dt[0] == 0 && dl == 0);
                        CHECK_STATUS(llmrt_text_detokenizer_push(d, -5, &dt, NULL),
                                     LLMRT_ERR_INVALID_ARG, "-5");
                        CHECK_STATUS(llmrt_text_detokenizer_push(d, 0, NULL, &dl),
                                     LLMRT_ERR_INVALID_ARG, "text is NULL");
                        for (int32_t i = 1; i <= n_ids; i++) {
                            llmrt_status s = i < n_ids ? llmrt_text_detokenizer_push(d, ids[i], &dt, &dl)
                                                       : llmrt_text_detokenizer_flush(d, &dt, &dl);
                            CHECK(s == LLMRT_OK);
                            if (s != LLMRT_OK || got + dl > cap) break;
                            memcpy(acc + got, dt, dl);
                            got += dl;
                        }
                        CHECK_MSG(got == len2 && !memcmp(acc, text, got),
                                  "%s: after refused ids the stream differs", label);
                        free(acc);
                    }
                }
                llmrt_text_detokenizer_destroy(d);
                free(text);
            }
            free(ids);
        }
    }
    llmrt_tokenizer_destroy(ref);
    llmrt_text_tokenizer_destroy(tok);
}

/* A model without a tokenizer: the detokenizer says so, naming the checkpoint. */
static void test_model_without_tokenizer(void) {
    llmrt_text_detokenizer *d = (llmrt_text_detokenizer *)&d;
    CHECK_STATUS(llmrt_text_detokenizer_create(NULL, false, &d), LLMRT_ERR_INVALID_ARG, "model is NULL");
    CHECK(d == NULL);
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 1;
    llmrt_model *model    = NULL;
    CHECK_STATUS(llmrt_model_load(TINYDIR "/llama_f32", &mp, &model), LLMRT_OK, NULL);
    if (!model) return;
    CHECK_STATUS(llmrt_text_detokenizer_create(model, false, NULL), LLMRT_ERR_INVALID_ARG, "out is NULL");
    CHECK_STATUS(llmrt_text_detokenizer_create(model, true, &d), LLMRT_ERR_UNSUPPORTED, "llama_f32");
    CHECK(d == NULL);
    llmrt_model_destroy(model);
}

static void test_mpi_world(void) {
    /* ctest does not start tests under a launcher: a job of one process */
    int32_t rank = -1, size = -1;
    CHECK_STATUS(llmrt_mpi_world_info(&rank, &size), LLMRT_OK, NULL);
    CHECK(rank == 0 && size == 1);
    CHECK_STATUS(llmrt_mpi_world_info(NULL, NULL), LLMRT_OK, NULL);
    CHECK_STATUS(llmrt_mpi_world_info(&rank, NULL), LLMRT_OK, NULL);
    CHECK(rank == 0);
    CHECK_STATUS(llmrt_mpi_world_barrier(), LLMRT_OK, NULL);
    llmrt_mpi_world_abort(3); /* returns: not an MPI job */
    llmrt_mpi_world_finalize();
    llmrt_mpi_world_finalize(); /* idempotent */
}

/* A FIFO (with no writer: opening it for reading would block), a directory, nothing, and a
 * regular file; each answer comes at once. */
static void test_regular_files(void) {
    char dir[] = "/tmp/llmrt_regular_XXXXXX", fifo[64], file[64];
    if (!mkdtemp(dir)) return;
    snprintf(fifo, sizeof fifo, "%s/fifo", dir);
    snprintf(file, sizeof file, "%s/file", dir);
    CHECK(mkfifo(fifo, 0600) == 0);
    FILE *f = fopen(file, "w");
    CHECK(f && fputs("x", f) >= 0 && fclose(f) == 0);
    int fd = 7, present = 7;
    CHECK_STATUS(llmrt_file_open_regular(fifo, &fd), LLMRT_ERR_IO, "FIFO");
    CHECK(fd == -1);
    CHECK_STATUS(llmrt_file_open_regular(dir, &fd), LLMRT_ERR_IO, "directory");
    CHECK_STATUS(llmrt_file_open_regular(file, NULL), LLMRT_ERR_INVALID_ARG, "NULL");
    CHECK_STATUS(llmrt_file_probe_regular(fifo, &present), LLMRT_ERR_IO, "FIFO");
    CHECK_STATUS(llmrt_file_probe_regular(dir, &present), LLMRT_ERR_IO, "directory");
    CHECK_STATUS(llmrt_file_probe_regular(file, &present), LLMRT_OK, NULL);
    CHECK(present == 1);
    CHECK_STATUS(llmrt_file_open_regular(file, &fd), LLMRT_OK, NULL);
    char c = 0;
    CHECK(fd >= 0 && read(fd, &c, 1) == 1 && c == 'x'); /* blocking again after the check */
    if (fd >= 0) close(fd);
    unlink(file);
    CHECK_STATUS(llmrt_file_probe_regular(file, &present), LLMRT_OK, NULL);
    CHECK(present == 0);
    CHECK_STATUS(llmrt_file_open_regular(file, &fd), LLMRT_ERR_IO, "No such file");
    unlink(fifo);
    rmdir(dir);
}

int main(void) {
    CHECK(LLMRT_EXPERIMENTAL_VERSION >= 1);
    test_regular_files();
    test_load_errors();
    /* a directory (tokenizer_config.json picked up), and the file with the config named */
    test_tokenizer("mistral dir", TOKDIR "/mistral", NULL, TOKDIR "/mistral/tokenizer.json",
                   TOKDIR "/mistral/tokenizer_config.json", 32000);
    test_tokenizer("llama3 file+config", TOKDIR "/llama3/tokenizer.json",
                   TOKDIR "/llama3/tokenizer_config.json", TOKDIR "/llama3/tokenizer.json",
                   TOKDIR "/llama3/tokenizer_config.json", 128256);
    /* a bare tokenizer.json: no config */
    test_tokenizer("mistral file", TOKDIR "/mistral/tokenizer.json", NULL,
                   TOKDIR "/mistral/tokenizer.json", NULL, 32000);
    test_model_without_tokenizer();
    test_mpi_world();
    return test_summary("test_experimental_api");
}
