/* Tokenizer against the reference (HF `tokenizers`): token ids, decode and streaming decode over
 * the golden corpus of python/tools/make_tokenizer_golden.py, for
 *   - Mistral (Llama-2-style SentencePiece BPE) and Llama 3 (byte-level BPE) tokenizer.json,
 *   - SmolLM2's GGUF tokenizer (gpt2 + tokenizer.ggml.pre "smollm"),
 *   - GGUF files built in memory from the Mistral vocabulary (model "llama": SPM by scores) and
 *     the Llama 3 vocabulary + merges (model "gpt2", pre "llama-bpe"), which must give the same
 *     ids as the tokenizer.json path,
 * plus special-token safety and API edge cases. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "format/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

#define TOKDIR    LLMRT_TEST_DATA_DIR "/tokenizers"
#define GOLDENDIR LLMRT_TEST_DATA_DIR "/tokenizer_golden"

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static char *unhex(const char *hex, size_t *len) {
    size_t n   = strlen(hex) / 2;
    char  *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) out[i] = (char)(hexval(hex[2 * i]) * 16 + hexval(hex[2 * i + 1]));
    out[n] = 0;
    *len   = n;
    return out;
}

static size_t count_fffd(const char *s, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i + 3 <= n; i++)
        if (memcmp(s + i, "\xef\xbf\xbd", 3) == 0) c++;
    return c;
}

/* Streams ids token by token and checks the deltas against the one-shot decode. */
static void check_stream(const llmrt_tokenizer *tk, const int32_t *ids, int64_t n, bool skip,
                         const char *label, const char *name) {
    llmrt_error        err;
    char              *one = NULL;
    size_t             one_len = 0;
    llmrt_detokenizer *d = NULL;
    if (llmrt_tokenizer_decode(tk, ids, n, skip, &one, &one_len, &err) != LLMRT_OK ||
        llmrt_detokenizer_create(tk, skip, &d, &err) != LLMRT_OK) {
        CHECK_MSG(false, "%s %s: decode/create failed: %s", label, name, err.msg);
        free(one);
        return;
    }
    char  *acc = malloc(one_len * 2 + 64);
    size_t acc_len = 0, cap = one_len * 2 + 64;
    bool   ok = true, valid = true;
    for (int64_t i = 0; i <= n && ok; i++) {
        const char *delta;
        size_t      dl;
        llmrt_status st = i < n ? llmrt_detokenizer_push(d, ids[i], &delta, &dl, &err)
                                : llmrt_detokenizer_flush(d, &delta, &dl, &err);
        if (st != LLMRT_OK) {
            ok = false;
            break;
        }
        valid = valid && llmrt_utf8_valid(delta, dl) && strlen(delta) <= dl;
        if (acc_len + dl + 1 > cap) {
            cap = (acc_len + dl + 1) * 2;
            acc = realloc(acc, cap);
        }
        memcpy(acc + acc_len, delta, dl);
        acc_len += dl;
    }
    CHECK_MSG(ok, "%s %s: stream failed: %s", label, name, err.msg);
    CHECK_MSG(valid, "%s %s (skip=%d): a delta is not valid UTF-8", label, name, skip);
    CHECK_MSG(acc_len == one_len && memcmp(acc, one, one_len) == 0,
              "%s %s (skip=%d): streamed %zu bytes != one-shot %zu bytes", label, name, skip,
              acc_len, one_len);
    CHECK_MSG(count_fffd(acc, acc_len) == count_fffd(one, one_len), "%s %s: streaming added U+FFFD",
              label, name);
    free(acc);
    free(one);
    llmrt_detokenizer_destroy(d);
}

typedef struct golden_opts {
    bool check_decode; /* reference decode text must match */
} golden_opts;

static void run_golden(const llmrt_tokenizer *tk, const char *file, const char *label, golden_opts o) {
    llmrt_error err;
    cJSON      *root = NULL;
    if (llmrt_json_parse_file(file, 64 << 20, &root, &err) != LLMRT_OK) {
        CHECK_MSG(false, "%s: %s", file, err.msg);
        return;
    }
    const cJSON *cases    = cJSON_GetObjectItem(root, "cases");
    bool         lossless = cJSON_IsTrue(cJSON_GetObjectItem(root, "lossless"));
    int          n_cases = 0, n_ok = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next) {
        const char *name   = cJSON_GetObjectItem(c, "name")->valuestring;
        bool        add    = cJSON_IsTrue(cJSON_GetObjectItem(c, "add_special"));
        bool        parse  = cJSON_IsTrue(cJSON_GetObjectItem(c, "parse_special"));
        const cJSON *exp   = cJSON_GetObjectItem(c, "ids");
        size_t      len;
        char       *text = unhex(cJSON_GetObjectItem(c, "text_hex")->valuestring, &len);
        int32_t    *ids  = NULL;
        int64_t     n    = 0;
        n_cases++;
        llmrt_status st = llmrt_tokenizer_encode(tk, text, len, add, parse, &ids, &n, &err);
        CHECK_MSG(st == LLMRT_OK, "%s %s: encode failed: %s", label, name, err.msg);
        int64_t ne = cJSON_GetArraySize(exp), first_bad = -1, k = 0;
        for (const cJSON *e = exp->child; e; e = e->next, k++)
            if (first_bad < 0 && (k >= n || ids[k] != (int32_t)e->valueint)) first_bad = k;
        if (first_bad < 0 && n != ne) first_bad = ne;
        if (first_bad >= 0) {
            const cJSON *e = cJSON_GetArrayItem(exp, (int)first_bad);
            CHECK_MSG(false, "%s %s (add=%d parse=%d): %lld ids, expected %lld; first difference at %lld: got %d, expected %d",
                      label, name, add, parse, (long long)n, (long long)ne, (long long)first_bad,
                      first_bad < n ? ids[first_bad] : -1, e ? e->valueint : -1);
        } else {
            n_ok++;
        }
        /* decode the reference ids: same text as the reference decode, streamed == one-shot */
        int32_t *ref = malloc((size_t)(ne ? ne : 1) * sizeof *ref);
        k = 0;
        for (const cJSON *e = exp->child; e; e = e->next) ref[k++] = (int32_t)e->valueint;
        for (int skip = 0; skip <= 1; skip++) {
            char  *out = NULL;
            size_t out_len = 0;
            st = llmrt_tokenizer_decode(tk, ref, ne, skip, &out, &out_len, &err);
            CHECK_MSG(st == LLMRT_OK, "%s %s: decode failed: %s", label, name, err.msg);
            if (o.check_decode && st == LLMRT_OK) {
                size_t el;
                char  *want = unhex(cJSON_GetObjectItem(c, skip ? "decode_skip_hex" : "decode_hex")->valuestring, &el);
                CHECK_MSG(out_len == el && memcmp(out, want, el) == 0,
                          "%s %s (skip=%d): decode gives \"%.60s\", reference \"%.60s\"", label, name,
                          skip, out, want);
                free(want);
            }
            /* lossless tokenizers give the text back (valid UTF-8, specials kept as text) */
            /* (a case marked "lossless": false is one that the tokenizer's normalizer changes) */
            if (lossless && !cJSON_IsFalse(cJSON_GetObjectItem(c, "lossless")) && !parse && !add &&
                !skip && llmrt_utf8_valid(text, len) && st == LLMRT_OK)
                CHECK_MSG(out_len == len && memcmp(out, text, len) == 0,
                          "%s %s: decode(encode(x)) != x: \"%.60s\"", label, name, out);
            free(out);
            check_stream(tk, ref, ne, skip, label, name);
        }
        free(ref);
        free(ids);
        free(text);
    }
    printf("%s: %d/%d golden cases identical to the reference\n", label, n_ok, n_cases);
    CHECK(n_cases > 100);
    cJSON_Delete(root);
}

/* ---- GGUF files built in memory --------------------------------------------------------- */

typedef struct gbuf {
    uint8_t *p;
    size_t   n, cap;
    uint64_t n_kv;
} gbuf;

static void gput(gbuf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 1024;
        b->p   = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void gu32(gbuf *b, uint32_t v) { gput(b, &v, 4); }
static void gu64(gbuf *b, uint64_t v) { gput(b, &v, 8); }
static void gstr(gbuf *b, const char *s, size_t n) {
    gu64(b, n);
    gput(b, s, n);
}
static void gkey(gbuf *b, const char *key, uint32_t type) {
    gstr(b, key, strlen(key));
    gu32(b, type);
    b->n_kv++;
}
static void kv_str(gbuf *b, const char *key, const char *v) {
    gkey(b, key, 8);
    gstr(b, v, strlen(v));
}
static void kv_u32(gbuf *b, const char *key, uint32_t v) {
    gkey(b, key, 4);
    gu32(b, v);
}
static void kv_bool(gbuf *b, const char *key, bool v) {
    gkey(b, key, 7);
    uint8_t x = v;
    gput(b, &x, 1);
}
static void kv_arr_begin(gbuf *b, const char *key, uint32_t elem, uint64_t n) {
    gkey(b, key, 9);
    gu32(b, elem);
    gu64(b, n);
}

/* header with n_kv patched in at the end */
static gbuf gguf_begin(void) {
    gbuf b = {0};
    gput(&b, "GGUF", 4);
    gu32(&b, 3);
    gu64(&b, 0); /* tensors */
    gu64(&b, 0); /* kvs, patched */
    return b;
}
static void gguf_end(gbuf *b) {
    memcpy(b->p + 16, &b->n_kv, 8);
}

static void kv_tokens_from(gbuf *b, const llmrt_tokenizer *tk) {
    int32_t n = llmrt_tokenizer_vocab_size(tk);
    kv_arr_begin(b, "tokenizer.ggml.tokens", 8, (uint64_t)n);
    for (int32_t i = 0; i < n; i++) {
        const char *p = llmrt_tokenizer_piece(tk, i);
        gstr(b, p, strlen(p));
    }
}

/* Mistral's vocabulary as a GGUF "llama" tokenizer. A SentencePiece BPE model scores each piece
 * by the order in which training merged it, which tokenizer.json's merge ranks record (HF's
 * converter sorts merges by those scores): score = -(first rank that makes the piece) - 1.
 * Token types as llama.cpp's converter writes them. */
static llmrt_tokenizer *gguf_from_mistral(const llmrt_tokenizer *hf, gbuf *b, llmrt_gguf_file *f) {
    int32_t n      = llmrt_tokenizer_vocab_size(hf);
    float  *scores = malloc((size_t)n * sizeof *scores);
    for (int32_t i = 0; i < n; i++) scores[i] = -1e9f;
    llmrt_error err;
    cJSON      *root = NULL;
    CHECK_MSG(llmrt_json_parse_file(TOKDIR "/mistral/tokenizer.json", 64 << 20, &root, &err) == LLMRT_OK, "%s", err.msg);
    if (!root) return NULL;
    int rank = 0;
    for (const cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges")->child; m;
         m = m->next, rank++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s", m->valuestring);
        char *sp = strchr(buf, ' ');
        memmove(sp, sp + 1, strlen(sp)); /* "a b" -> "ab" */
        int32_t id = llmrt_tokenizer_token_id(hf, buf);
        if (id >= 0 && scores[id] == -1e9f) scores[id] = -(float)rank - 1;
    }
    cJSON_Delete(root);
    *b = gguf_begin();
    kv_str(b, "general.architecture", "llama");
    kv_str(b, "tokenizer.ggml.model", "llama");
    kv_tokens_from(b, hf);
    kv_arr_begin(b, "tokenizer.ggml.scores", 6, (uint64_t)n);
    gput(b, scores, (size_t)n * 4);
    free(scores);
    kv_arr_begin(b, "tokenizer.ggml.token_type", 5, (uint64_t)n);
    for (int32_t i = 0; i < n; i++) {
        const char *p = llmrt_tokenizer_piece(hf, i);
        int32_t     t = i == 0 ? 2 : (i <= 2 ? 3 : (strlen(p) == 6 && !strncmp(p, "<0x", 3) ? 6 : 1));
        gput(b, &t, 4);
    }
    kv_u32(b, "tokenizer.ggml.bos_token_id", 1);
    kv_u32(b, "tokenizer.ggml.eos_token_id", 2);
    kv_u32(b, "tokenizer.ggml.unknown_token_id", 0);
    kv_bool(b, "tokenizer.ggml.add_bos_token", true);
    gguf_end(b);
    llmrt_tokenizer *tk = NULL;
    CHECK_MSG(llmrt_gguf_parse(b->p, b->n, "mistral-mem.gguf", f, &err) == LLMRT_OK, "%s", err.msg);
    CHECK_MSG(llmrt_tokenizer_load_gguf(f, &tk, &err) == LLMRT_OK, "%s", err.msg);
    return tk;
}

/* A byte-level BPE tokenizer.json's vocabulary and merges as a GGUF "gpt2" tokenizer with
 * tokenizer.ggml.pre `pre` (Llama 3: "llama-bpe"; Qwen2: "qwen2"). */
static llmrt_tokenizer *gguf_from_bytelevel(const llmrt_tokenizer *hf, const char *json_path,
                                            const char *pre, int32_t bos, int32_t eos, gbuf *b,
                                            llmrt_gguf_file *f) {
    llmrt_error err;
    cJSON      *root = NULL;
    CHECK_MSG(llmrt_json_parse_file(json_path, 64 << 20, &root, &err) == LLMRT_OK, "%s", err.msg);
    if (!root) return NULL;
    const cJSON *merges = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "model"), "merges");
    int32_t      n      = llmrt_tokenizer_vocab_size(hf);
    *b                  = gguf_begin();
    kv_str(b, "tokenizer.ggml.model", "gpt2");
    kv_str(b, "tokenizer.ggml.pre", pre);
    kv_tokens_from(b, hf);
    kv_arr_begin(b, "tokenizer.ggml.token_type", 5, (uint64_t)n);
    for (int32_t i = 0; i < n; i++) {
        int32_t t = llmrt_tokenizer_is_special(hf, i) ? 3 : 1;
        gput(b, &t, 4);
    }
    kv_arr_begin(b, "tokenizer.ggml.merges", 8, (uint64_t)cJSON_GetArraySize(merges));
    for (const cJSON *m = merges->child; m; m = m->next) {
        char buf[1024];
        if (cJSON_IsString(m)) snprintf(buf, sizeof buf, "%s", m->valuestring);
        else snprintf(buf, sizeof buf, "%s %s", m->child->valuestring, m->child->next->valuestring);
        gstr(b, buf, strlen(buf));
    }
    kv_u32(b, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    kv_u32(b, "tokenizer.ggml.eos_token_id", (uint32_t)eos);
    kv_bool(b, "tokenizer.ggml.add_bos_token", false); /* these tokenizer.json add none */
    gguf_end(b);
    cJSON_Delete(root);
    llmrt_tokenizer *tk = NULL;
    CHECK_MSG(llmrt_gguf_parse(b->p, b->n, "bytelevel-mem.gguf", f, &err) == LLMRT_OK, "%s", err.msg);
    CHECK_MSG(llmrt_tokenizer_load_gguf(f, &tk, &err) == LLMRT_OK, "%s", err.msg);
    return tk;
}

/* ---- special tokens, API edges ------------------------------------------------------------ */

static bool contains_id(const int32_t *ids, int64_t n, int32_t id) {
    for (int64_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

static void test_special_safety(const llmrt_tokenizer *tk, const char *text, int32_t special_id,
                                const char *label) {
    llmrt_error err;
    int32_t    *ids = NULL;
    int64_t     n   = 0;
    CHECK(llmrt_tokenizer_encode(tk, text, strlen(text), false, false, &ids, &n, &err) == LLMRT_OK);
    CHECK_MSG(!contains_id(ids, n, special_id), "%s: \"%s\" became a special token with parse_special off", label, text);
    free(ids);
    ids = NULL;
    n   = 0;
    CHECK(llmrt_tokenizer_encode(tk, text, strlen(text), false, true, &ids, &n, &err) == LLMRT_OK);
    CHECK_MSG(contains_id(ids, n, special_id), "%s: \"%s\" not parsed with parse_special on", label, text);
    free(ids);
}

static void test_api(const llmrt_tokenizer *mistral, const llmrt_tokenizer *llama3) {
    llmrt_error err;
    CHECK(llmrt_tokenizer_vocab_size(mistral) == 32000);
    CHECK(llmrt_tokenizer_vocab_size(llama3) == 128256);
    CHECK(llmrt_tokenizer_bos(mistral) == 1 && llmrt_tokenizer_eos(mistral) == 2);
    CHECK(llmrt_tokenizer_adds_bos(mistral) && !llmrt_tokenizer_adds_eos(mistral));
    CHECK(llmrt_tokenizer_bos(llama3) == 128000 && llmrt_tokenizer_eos(llama3) == 128001);
    CHECK(!llmrt_tokenizer_adds_bos(llama3));
    CHECK(llmrt_tokenizer_token_id(mistral, "\xe2\x96\x81Hello") == 22557);
    CHECK(llmrt_tokenizer_token_id(llama3, "<|eot_id|>") == 128009);
    CHECK(llmrt_tokenizer_token_id(llama3, "no such token at all") == -1);
    CHECK(strcmp(llmrt_tokenizer_piece(mistral, 22557), "\xe2\x96\x81Hello") == 0);
    CHECK(llmrt_tokenizer_piece(mistral, 32000) == NULL && llmrt_tokenizer_piece(mistral, -1) == NULL);
    CHECK(llmrt_tokenizer_is_special(llama3, 128009) && !llmrt_tokenizer_is_special(llama3, 9906));
    CHECK(llmrt_tokenizer_chat_template(mistral) == NULL);
    CHECK(llmrt_tokenizer_chat_template(llama3) && strstr(llmrt_tokenizer_chat_template(llama3), "start_header_id"));

    /* ids are appended to an existing vector */
    int32_t *ids = malloc(sizeof *ids);
    int64_t  n   = 1;
    ids[0]       = 77;
    CHECK(llmrt_tokenizer_encode(llama3, "Hello", 5, false, false, &ids, &n, &err) == LLMRT_OK);
    CHECK(n == 2 && ids[0] == 77 && ids[1] == 9906);
    free(ids);
    ids = NULL;
    n   = 0;
    CHECK(llmrt_tokenizer_encode(llama3, NULL, 0, true, true, &ids, &n, &err) == LLMRT_OK && n == 0);
    free(ids);

    /* out-of-range ids name their index */
    int32_t bad[] = {9906, 128256, 5};
    char   *text  = NULL;
    size_t  len;
    CHECK(llmrt_tokenizer_decode(llama3, bad, 3, false, &text, &len, &err) == LLMRT_ERR_INVALID_ARG);
    CHECK_MSG(strstr(err.msg, "index 1") != NULL, "message: %s", err.msg);
    CHECK(text == NULL);
    int32_t neg[] = {-1};
    CHECK(llmrt_tokenizer_decode(mistral, neg, 1, false, &text, &len, &err) == LLMRT_ERR_INVALID_ARG);
    llmrt_detokenizer *d = NULL;
    CHECK(llmrt_detokenizer_create(llama3, false, &d, &err) == LLMRT_OK);
    const char *delta;
    size_t      dl;
    CHECK(llmrt_detokenizer_push(d, 200000, &delta, &dl, &err) == LLMRT_ERR_INVALID_ARG);
    /* a split character is held back and completed: "é" = C3 A9 as two byte-level tokens */
    int32_t c3 = llmrt_tokenizer_token_id(llama3, "\xc3\x83"), a9 = llmrt_tokenizer_token_id(llama3, "\xc2\xa9");
    CHECK(c3 >= 0 && a9 >= 0);
    CHECK(llmrt_detokenizer_push(d, c3, &delta, &dl, &err) == LLMRT_OK && dl == 0);
    CHECK(llmrt_detokenizer_push(d, a9, &delta, &dl, &err) == LLMRT_OK && dl == 2 && !memcmp(delta, "\xc3\xa9", 2));
    /* an incomplete tail is flushed at the end (as U+FFFD, like the one-shot decode) */
    CHECK(llmrt_detokenizer_push(d, c3, &delta, &dl, &err) == LLMRT_OK && dl == 0);
    CHECK(llmrt_detokenizer_flush(d, &delta, &dl, &err) == LLMRT_OK && dl == 3 && !memcmp(delta, "\xef\xbf\xbd", 3));
    llmrt_detokenizer_destroy(d);
    llmrt_detokenizer_destroy(NULL);
    llmrt_tokenizer_destroy(NULL);

    test_special_safety(llama3, "Hi <|eot_id|> there", 128009, "llama3");
    test_special_safety(llama3, "<|begin_of_text|>", 128000, "llama3");
    test_special_safety(mistral, "a </s> b", 2, "mistral");
}

/* A loaded tokenizer is immutable: concurrent encodes give the single-thread result. */
typedef struct thread_job {
    const llmrt_tokenizer *tk;
    const char            *text;
    int32_t               *ids;
    int64_t                n;
    bool                   ok;
} thread_job;

static void *encode_job(void *arg) {
    thread_job *j = arg;
    llmrt_error err;
    j->ok = true;
    for (int rep = 0; rep < 20 && j->ok; rep++) {
        int32_t *ids = NULL;
        int64_t  n   = 0;
        j->ok = llmrt_tokenizer_encode(j->tk, j->text, strlen(j->text), true, true, &ids, &n, &err) == LLMRT_OK &&
                n == j->n && memcmp(ids, j->ids, (size_t)n * sizeof *ids) == 0;
        free(ids);
    }
    return NULL;
}

static void test_threads(const llmrt_tokenizer *tk, const char *label) {
    const char *text = "Concurrent <|eot_id|> encodes: caf\xc3\xa9 \xe4\xb8\x96\xe7\x95\x8c 12345 don't  stop\n";
    llmrt_error err;
    thread_job  jobs[4];
    pthread_t   th[4];
    int32_t    *ids = NULL;
    int64_t     n   = 0;
    CHECK(llmrt_tokenizer_encode(tk, text, strlen(text), true, true, &ids, &n, &err) == LLMRT_OK);
    for (int i = 0; i < 4; i++) {
        jobs[i] = (thread_job){tk, text, ids, n, false};
        pthread_create(&th[i], NULL, encode_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(jobs[i].ok, "%s: thread %d encoded differently", label, i);
    }
    free(ids);
}

/* The NFC normalizer (Qwen2's) against unicodedata.normalize("NFC", ...) on
 * tests/data/tokenizer_golden/nfc.json (python/tools/make_unicode_nfc.py): random mixes of
 * marks, jamo, composites, exclusions and singletons, and every decomposable code point between
 * "a" and two marks out of canonical order. */
static void test_nfc(void) {
    cJSON      *root = NULL;
    llmrt_error err  = {0};
    if (llmrt_json_parse_file(GOLDENDIR "/nfc.json", 1 << 24, &root, &err) != LLMRT_OK) {
        CHECK_MSG(0, "%s", err.msg);
        return;
    }
    int n = 0, bad = 0;
    for (const cJSON *c = cJSON_GetObjectItem(root, "cases")->child; c; c = c->next, n++) {
        size_t in_len, want_len;
        char  *in   = unhex(cJSON_GetObjectItem(c, "in_hex")->valuestring, &in_len);
        char  *want = unhex(cJSON_GetObjectItem(c, "nfc_hex")->valuestring, &want_len);
        tk_buf out  = {0};
        CHECK(tk_nfc(in, in_len, &out));
        if (out.n != want_len || memcmp(out.p, want, want_len) != 0) {
            if (bad++ < 5)
                CHECK_MSG(0, "NFC case %d: %zu bytes, want %zu (input %s)", n, out.n, want_len,
                          cJSON_GetObjectItem(c, "in_hex")->valuestring);
        }
        free(out.p);
        free(in);
        free(want);
    }
    CHECK_MSG(bad == 0 && n > 2000, "NFC: %d of %d cases differ", bad, n);
    printf("NFC: %d/%d cases identical to unicodedata\n", n - bad, n);
    cJSON_Delete(root);
}

/* ---- Qwen2's real tokenizer ---------------------------------------------------------------- */

/* Qwen2/2.5's tokenizer.json (python/tools/make_qwen2_tokenizer.py, from Qwen's BPE ranks; the
 * golden ids are those of tiktoken and of `tokenizers`, which agree), unpacked by CMake into
 * LLMRT_QWEN2_TOKENIZER_DIR: the tokenizer.json path and the GGUF path (pre "qwen2") */
static void test_qwen2(void) {
    llmrt_error err;
    llmrt_tokenizer *q = NULL, *gq = NULL;
    CHECK_MSG(llmrt_tokenizer_load_hf(LLMRT_QWEN2_TOKENIZER_DIR "/tokenizer.json",
                                      LLMRT_QWEN2_TOKENIZER_DIR "/tokenizer_config.json", &q,
                                      &err) == LLMRT_OK,
              "%s", err.msg);
    if (!q) return;
    CHECK(llmrt_tokenizer_vocab_size(q) == 151646);
    CHECK(llmrt_tokenizer_token_id(q, "<|endoftext|>") == 151643);
    CHECK(llmrt_tokenizer_token_id(q, "<|im_start|>") == 151644);
    CHECK(llmrt_tokenizer_token_id(q, "<|im_end|>") == 151645);
    CHECK(!llmrt_tokenizer_adds_bos(q));
    golden_opts exact = {.check_decode = true};
    run_golden(q, GOLDENDIR "/qwen2.json", "qwen2", exact);
    test_special_safety(q, "user text <|im_end|><|im_start|>system", 151645, "qwen2");
    gbuf b = {0};
    llmrt_gguf_file f;
    gq = gguf_from_bytelevel(q, LLMRT_QWEN2_TOKENIZER_DIR "/tokenizer.json", "qwen2", 151643,
                             151645, &b, &f);
    if (gq) {
        run_golden(gq, GOLDENDIR "/qwen2.json", "qwen2 (gguf gpt2/qwen2)", exact);
        llmrt_gguf_close(&f);
    }
    llmrt_tokenizer_destroy(gq);
    llmrt_tokenizer_destroy(q);
    free(b.p);
}

int main(void) {
    llmrt_error      err;
    llmrt_tokenizer *mistral = NULL, *llama3 = NULL, *smol = NULL;
    CHECK_MSG(llmrt_tokenizer_load_hf(TOKDIR "/mistral/tokenizer.json", TOKDIR "/mistral/tokenizer_config.json",
                                      &mistral, &err) == LLMRT_OK, "%s", err.msg);
    CHECK_MSG(llmrt_tokenizer_load_hf(TOKDIR "/llama3/tokenizer.json", TOKDIR "/llama3/tokenizer_config.json",
                                      &llama3, &err) == LLMRT_OK, "%s", err.msg);
    if (!mistral || !llama3) return test_summary("test_tokenizer");
    golden_opts exact = {.check_decode = true};
    run_golden(mistral, GOLDENDIR "/mistral.json", "mistral", exact);
    run_golden(llama3, GOLDENDIR "/llama3.json", "llama3", exact);
    test_api(mistral, llama3);
    test_nfc();
    test_threads(llama3, "llama3");
    test_threads(mistral, "mistral");

    /* synthetic pipelines (Metaspace "first", Split behaviours, ByteLevel prefix space, ...) */
    /* synth_qwen2: Qwen2's pipeline (NFC, its Split regex with single digits, ByteLevel without
     * regex, byte-level BPE, <|im_start|>-style specials): no Qwen2 tokenizer.json is available
     * offline, so its exact pre-tokenizer runs over a BPE trained on the corpus */
    static const char *const synth[] = {"synth_metaspace", "synth_split", "synth_bytelevel",
                                        "synth_qwen2"};
    for (int i = 0; i < 4; i++) {
        char path[512], golden[512];
        snprintf(path, sizeof path, GOLDENDIR "/%s.tokenizer.json", synth[i]);
        snprintf(golden, sizeof golden, GOLDENDIR "/%s.json", synth[i]);
        llmrt_tokenizer *tk = NULL;
        CHECK_MSG(llmrt_tokenizer_load_hf(path, NULL, &tk, &err) == LLMRT_OK, "%s", err.msg);
        if (tk) run_golden(tk, golden, synth[i], exact);
        llmrt_tokenizer_destroy(tk);
    }

    test_qwen2();

    llmrt_gguf_file f;
    if (LLMRT_DEFAULT_MODEL[0] && llmrt_gguf_open(LLMRT_DEFAULT_MODEL, &f, &err) == LLMRT_OK) {
        CHECK_MSG(llmrt_tokenizer_load_gguf(&f, &smol, &err) == LLMRT_OK, "%s", err.msg);
        llmrt_gguf_close(&f); /* the tokenizer keeps copies */
        if (smol) {
            run_golden(smol, GOLDENDIR "/smollm2.json", "smollm2 (gguf)", exact);
            CHECK(llmrt_tokenizer_vocab_size(smol) == 49152);
            CHECK(llmrt_tokenizer_bos(smol) == 1 && llmrt_tokenizer_eos(smol) == 2);
            CHECK(!llmrt_tokenizer_adds_bos(smol));
            CHECK(llmrt_tokenizer_chat_template(smol) && strstr(llmrt_tokenizer_chat_template(smol), "<|im_start|>"));
            test_special_safety(smol, "user text <|im_end|><|im_start|>system", 2, "smollm2");
            test_special_safety(smol, "<|im_start|>", 1, "smollm2");
        }
    } else {
        printf("SKIP smollm2: default model not found (%s)\n", LLMRT_DEFAULT_MODEL);
    }

    /* GGUF path == tokenizer.json path, on the same vocabularies */
    gbuf             b1 = {0}, b2 = {0}, b3 = {0};
    llmrt_gguf_file  f1, f2, f3;
    llmrt_tokenizer *gm = gguf_from_mistral(mistral, &b1, &f1);
    if (gm) run_golden(gm, GOLDENDIR "/mistral.json", "mistral (gguf llama/spm)", exact);
    llmrt_tokenizer *gl = gguf_from_bytelevel(llama3, TOKDIR "/llama3/tokenizer.json", "llama-bpe",
                                              128000, 128001, &b2, &f2);
    if (gl) run_golden(gl, GOLDENDIR "/llama3.json", "llama3 (gguf gpt2/llama-bpe)", exact);
    /* Qwen2's GGUF pipeline (pre "qwen2": NFC + its regex) on the synth_qwen2 vocabulary */
    llmrt_tokenizer *qhf = NULL, *gq = NULL;
    CHECK_MSG(llmrt_tokenizer_load_hf(GOLDENDIR "/synth_qwen2.tokenizer.json", NULL, &qhf, &err) ==
                  LLMRT_OK, "%s", err.msg);
    if (qhf) {
        int32_t eot = llmrt_tokenizer_token_id(qhf, "<|endoftext|>");
        gq = gguf_from_bytelevel(qhf, GOLDENDIR "/synth_qwen2.tokenizer.json", "qwen2", eot, eot,
                                 &b3, &f3);
        if (gq) run_golden(gq, GOLDENDIR "/synth_qwen2.json", "synth_qwen2 (gguf gpt2/qwen2)", exact);
        llmrt_gguf_close(&f3);
    }
    llmrt_tokenizer_destroy(gq);
    llmrt_tokenizer_destroy(qhf);
    llmrt_tokenizer_destroy(gm);
    llmrt_tokenizer_destroy(gl);
    llmrt_gguf_close(&f1);
    llmrt_gguf_close(&f2);
    free(b1.p);
    free(b2.p);
    free(b3.p);

    llmrt_tokenizer_destroy(smol);
    llmrt_tokenizer_destroy(mistral);
    llmrt_tokenizer_destroy(llama3);
    return test_summary("test_tokenizer");
}
