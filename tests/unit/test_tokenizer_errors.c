/* Bad tokenizer inputs: every malformed or unsupported construct in tokenizer.json /
 * tokenizer_config.json / GGUF tokenizer metadata is a status with a message naming it, never a
 * crash or silently different ids. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/gguf.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

#define CHECK_ERR(expr, want, needle)                                                              \
    do {                                                                                           \
        err.msg[0]      = 0;                                                                       \
        llmrt_status s_ = (expr);                                                                  \
        CHECK_MSG(s_ == (want), "%s: got %s, want %s (%s)", #expr, llmrt_status_str(s_),          \
                  llmrt_status_str(want), err.msg);                                                \
        if (s_ != LLMRT_OK && getenv("LLMRT_TEST_VERBOSE")) printf("%s\n", err.msg);             \
        if (s_ != LLMRT_OK)                                                                        \
            CHECK_MSG(strstr(err.msg, needle) != NULL, "message \"%s\" lacks \"%s\"", err.msg,     \
                      needle);                                                                     \
    } while (0)

static llmrt_error err;

static llmrt_status load_text(const char *json) {
    llmrt_tokenizer *tk = NULL;
    llmrt_status     st = llmrt_tokenizer_load_hf_text(json, strlen(json), "bad.json", &tk, &err);
    if ((st == LLMRT_OK) != (tk != NULL)) {
        CHECK_MSG(false, "status and handle disagree");
    }
    llmrt_tokenizer_destroy(tk);
    return st;
}

/* A small valid tokenizer.json with `model`, `extra` spliced in. */
static char *doc(const char *model, const char *extra) {
    static char buf[8192];
    snprintf(buf, sizeof buf, "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,%s%s\"model\":%s}",
             extra, extra[0] ? "," : "", model);
    return buf;
}

#define MODEL_OK                                                                                   \
    "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"<unk>\":3},\"merges\":[\"a b\"],"   \
    "\"unk_token\":\"<unk>\"}"

static void test_json(void) {
    CHECK_ERR(load_text(doc(MODEL_OK, "")), LLMRT_OK, "");
    CHECK_ERR(load_text("{\"model\": "), LLMRT_ERR_FORMAT, "invalid JSON");
    CHECK_ERR(load_text("{\"model\": {}} trailing"), LLMRT_ERR_FORMAT, "trailing");
    CHECK_ERR(load_text(""), LLMRT_ERR_FORMAT, "bad.json");
    CHECK_ERR(load_text("[]"), LLMRT_ERR_FORMAT, "top level");
    CHECK_ERR(load_text("{\"normalizer\":null}"), LLMRT_ERR_FORMAT, "missing \"model\"");
    CHECK_ERR(load_text(doc("{\"type\":\"BPE\",\"merges\":[]}", "")), LLMRT_ERR_FORMAT, "model.vocab");
    CHECK_ERR(load_text(doc("{\"type\":\"BPE\",\"vocab\":{\"a\":0}}", "")), LLMRT_ERR_FORMAT, "model.merges");
    CHECK_ERR(load_text(doc("{\"type\":\"BPE\",\"vocab\":[],\"merges\":[]}", "")), LLMRT_ERR_FORMAT, "model.vocab");
    CHECK_ERR(load_text(doc("{\"type\":\"Unigram\",\"vocab\":[]}", "")), LLMRT_ERR_UNSUPPORTED, "Unigram");
    CHECK_ERR(load_text(doc("{\"type\":\"WordPiece\",\"vocab\":{}}", "")), LLMRT_ERR_UNSUPPORTED, "WordPiece");
    /* merges */
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a c\"]}", "")),
              LLMRT_ERR_FORMAT, "\"c\", which is not in the vocabulary");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[[\"a\",\"zz\"]]}", "")),
              LLMRT_ERR_FORMAT, "zz");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}", "")),
              LLMRT_ERR_FORMAT, "makes \"ab\"");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b c\"]}", "")),
              LLMRT_ERR_FORMAT, "merges[0]");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"ab\"]}", "")),
              LLMRT_ERR_FORMAT, "merges[0]");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[7]}", "")),
              LLMRT_ERR_FORMAT, "merges[0]");
    /* vocabulary ids */
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":1.5},\"merges\":[]}", "")), LLMRT_ERR_FORMAT, "\"a\"");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":-1},\"merges\":[]}", "")), LLMRT_ERR_FORMAT, "\"a\"");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":\"0\"},\"merges\":[]}", "")), LLMRT_ERR_FORMAT, "\"a\"");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":16000000},\"merges\":[]}", "")), LLMRT_ERR_FORMAT, "16000000");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}", "")), LLMRT_ERR_FORMAT, "already belongs");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0,\"a\":1},\"merges\":[]}", "")), LLMRT_ERR_FORMAT, "duplicate");
    /* BPE options */
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0},\"merges\":[],\"dropout\":0.1}", "")), LLMRT_ERR_UNSUPPORTED, "dropout");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0},\"merges\":[],\"continuing_subword_prefix\":\"##\"}", "")),
              LLMRT_ERR_UNSUPPORTED, "continuing_subword_prefix");
    CHECK_ERR(load_text(doc("{\"vocab\":{\"a\":0},\"merges\":[],\"byte_fallback\":1}", "")), LLMRT_ERR_FORMAT, "byte_fallback");
    /* added tokens */
    CHECK_ERR(load_text(doc(MODEL_OK, "\"added_tokens\":[{\"id\":4,\"content\":\"<s>\",\"special\":true},"
                                      "{\"id\":4,\"content\":\"</s>\",\"special\":true}]")),
              LLMRT_ERR_FORMAT, "share id 4");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"added_tokens\":[{\"id\":4,\"content\":\"<s>\"},{\"id\":5,\"content\":\"<s>\"}]")),
              LLMRT_ERR_FORMAT, "listed twice");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"added_tokens\":[{\"id\":4,\"content\":\"a\"}]")), LLMRT_ERR_FORMAT,
              "model.vocab gives it 0");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"added_tokens\":[{\"id\":0,\"content\":\"<x>\"}]")), LLMRT_ERR_FORMAT,
              "already belongs");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"added_tokens\":[{\"content\":\"<x>\"}]")), LLMRT_ERR_FORMAT, "\"id\"");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"added_tokens\":[{\"id\":4,\"content\":\"\"}]")), LLMRT_ERR_FORMAT, "empty");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"added_tokens\":{}")), LLMRT_ERR_FORMAT, "added_tokens");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"added_tokens\":[{\"id\":9999999,\"content\":\"<x>\"}]")),
              LLMRT_ERR_FORMAT, "9999999");
    /* normalizers */
    CHECK_ERR(load_text(doc(MODEL_OK, "\"normalizer\":{\"type\":\"NFKC\"}")), LLMRT_ERR_UNSUPPORTED,
              "unsupported normalizer \"NFKC\"");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\","
                                      "\"prepend\":\"x\"},{\"type\":\"NFD\"}]}")),
              LLMRT_ERR_UNSUPPORTED, "\"NFD\"");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"normalizer\":{\"type\":\"NFC\"}")), LLMRT_OK, ""); /* Qwen2 */
    CHECK_ERR(load_text(doc(MODEL_OK, "\"normalizer\":{\"type\":\"Lowercase\"}")), LLMRT_ERR_UNSUPPORTED, "Lowercase");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"normalizer\":{\"type\":\"Replace\",\"content\":\"x\"}")), LLMRT_ERR_FORMAT, "pattern");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"normalizer\":{\"type\":\"Prepend\"}")), LLMRT_ERR_FORMAT, "prepend");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"normalizer\":{\"prepend\":\"x\"}")), LLMRT_ERR_FORMAT, "type");
    /* pre-tokenizers */
    CHECK_ERR(load_text(doc(MODEL_OK, "\"pre_tokenizer\":{\"type\":\"Whitespace\"}")), LLMRT_ERR_UNSUPPORTED,
              "unsupported pre_tokenizer \"Whitespace\"");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(unclosed\"},"
                                      "\"behavior\":\"Isolated\"}")),
              LLMRT_ERR_UNSUPPORTED, "(unclosed");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"String\":\" \"},"
                                      "\"behavior\":\"Sideways\"}")),
              LLMRT_ERR_UNSUPPORTED, "Sideways");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"ab\"}")),
              LLMRT_ERR_FORMAT, "one character");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"_\","
                                      "\"prepend_scheme\":\"sometimes\"}")),
              LLMRT_ERR_UNSUPPORTED, "sometimes");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"pre_tokenizer\":{\"type\":\"Sequence\"}")), LLMRT_ERR_FORMAT, "pretokenizers");
    /* decoders */
    CHECK_ERR(load_text(doc(MODEL_OK, "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\"##\"}")),
              LLMRT_ERR_UNSUPPORTED, "unsupported decoder \"WordPiece\"");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Fuse\"},"
                                      "{\"type\":\"CTC\"}]}")),
              LLMRT_ERR_UNSUPPORTED, "CTC");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"decoder\":{\"type\":\"Strip\",\"content\":\" \",\"start\":-1}")),
              LLMRT_ERR_FORMAT, "start");
    /* post-processors */
    CHECK_ERR(load_text(doc(MODEL_OK, "\"post_processor\":{\"type\":\"Magic\"}")), LLMRT_ERR_UNSUPPORTED,
              "unsupported post_processor \"Magic\"");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
                                      "{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
                                      "\"special_tokens\":{}}")),
              LLMRT_ERR_FORMAT, "<s>");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
                                      "{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
                                      "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[99],\"tokens\":[\"<s>\"]}}}")),
              LLMRT_ERR_FORMAT, "99");
    /* an id past int64 (1e300, -1e300): refused before the conversion (issue 18, class 3) */
    CHECK_ERR(load_text(doc(MODEL_OK, "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
                                      "{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
                                      "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1e300],\"tokens\":[\"<s>\"]}}}")),
              LLMRT_ERR_FORMAT, "not an integer");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"post_processor\":{\"type\":\"RobertaProcessing\",\"cls\":[\"<s>\",-1e300],"
                                      "\"sep\":[\"</s>\",2]}")),
              LLMRT_ERR_FORMAT, "not an integer");
    CHECK_ERR(load_text(doc(MODEL_OK, "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[],"
                                      "\"special_tokens\":{}}")),
              LLMRT_ERR_FORMAT, "sequence A");
    /* files */
    llmrt_tokenizer *tk = NULL;
    CHECK_ERR(llmrt_tokenizer_load_hf("/nonexistent/tokenizer.json", NULL, &tk, &err), LLMRT_ERR_IO, "/nonexistent");
    CHECK_ERR(llmrt_tokenizer_load_hf(LLMRT_TEST_DATA_DIR "/tokenizers/mistral/tokenizer.json", "/nonexistent/cfg.json",
                                      &tk, &err),
              LLMRT_ERR_IO, "cfg.json");
    CHECK(tk == NULL);
}

/* Encode-time behaviour of edge configurations. */
static void test_encode_edges(void) {
    llmrt_tokenizer *tk = NULL;
    int32_t         *ids = NULL;
    int64_t          n   = 0;
    /* byte_fallback without <0xNN> entries falls back to <unk>, fused (as HF does) */
    const char *j = doc("{\"vocab\":{\"a\":0,\"<unk>\":1},\"merges\":[],\"byte_fallback\":true,\"fuse_unk\":true,"
                        "\"unk_token\":\"<unk>\"}", "");
    CHECK_ERR(llmrt_tokenizer_load_hf_text(j, strlen(j), "t.json", &tk, &err), LLMRT_OK, "");
    if (tk) {
        CHECK(llmrt_tokenizer_encode(tk, "a\xc3\xa9\xc3\xa9" "a", 6, false, false, &ids, &n, &err) == LLMRT_OK);
        CHECK(n == 3 && ids[0] == 0 && ids[1] == 1 && ids[2] == 0);
        free(ids);
        ids = NULL;
        n   = 0;
    }
    llmrt_tokenizer_destroy(tk);
    tk = NULL;
    /* an unk_token missing from the vocabulary fails when it is needed, naming it */
    j = doc("{\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<nope>\"}", "");
    CHECK_ERR(llmrt_tokenizer_load_hf_text(j, strlen(j), "t.json", &tk, &err), LLMRT_OK, "");
    if (tk) {
        CHECK_ERR(llmrt_tokenizer_encode(tk, "aa", 2, false, false, &ids, &n, &err), LLMRT_OK, "");
        CHECK(n == 2);
        CHECK_ERR(llmrt_tokenizer_encode(tk, "z", 1, false, false, &ids, &n, &err), LLMRT_ERR_FORMAT, "<nope>");
        CHECK(n == 2); /* unchanged on failure */
        free(ids);
        ids = NULL;
        n   = 0;
    }
    llmrt_tokenizer_destroy(tk);
    tk = NULL;
    /* bad arguments */
    j = doc(MODEL_OK, "");
    CHECK_ERR(llmrt_tokenizer_load_hf_text(j, strlen(j), "t.json", &tk, &err), LLMRT_OK, "");
    if (tk) {
        CHECK_ERR(llmrt_tokenizer_encode(tk, NULL, 3, false, false, &ids, &n, &err), LLMRT_ERR_INVALID_ARG, "NULL");
        CHECK_ERR(llmrt_tokenizer_encode(tk, "a", 1, false, false, NULL, &n, &err), LLMRT_ERR_INVALID_ARG, "NULL");
        char   *text = NULL;
        size_t  len;
        int32_t bad[] = {0, 1, 7};
        CHECK_ERR(llmrt_tokenizer_decode(tk, bad, 3, false, &text, &len, &err), LLMRT_ERR_INVALID_ARG, "index 2");
        CHECK_ERR(llmrt_tokenizer_decode(tk, NULL, 2, false, &text, &len, &err), LLMRT_ERR_INVALID_ARG, "id");
        CHECK_ERR(llmrt_tokenizer_decode(tk, bad, 2, false, &text, &len, &err), LLMRT_OK, "");
        /* no decoder: pieces joined by spaces, as HF does */
        CHECK(text && strcmp(text, "a b") == 0);
        free(text);
    }
    llmrt_tokenizer_destroy(tk);
}

static void test_config(void) {
    const char *j = doc(MODEL_OK, "");
    (void)j;
    char        path[512], cfg[512];
    snprintf(path, sizeof path, "%s/tok_err_tokenizer.json", LLMRT_BINARY_DIR);
    snprintf(cfg, sizeof cfg, "%s/tok_err_config.json", LLMRT_BINARY_DIR);
    FILE *f = fopen(path, "w");
    fputs(doc(MODEL_OK, "\"added_tokens\":[{\"id\":4,\"content\":\"<s>\",\"special\":true}]"), f);
    fclose(f);
    llmrt_tokenizer *tk = NULL;
    f                   = fopen(cfg, "w");
    fputs("{\"add_bos_token\": true, \"eos_token\": \"</s>\"}", f);
    fclose(f);
    CHECK_ERR(llmrt_tokenizer_load_hf(path, cfg, &tk, &err), LLMRT_ERR_FORMAT, "no bos_token");
    f = fopen(cfg, "w");
    fputs("{\"add_bos_token\": true, \"bos_token\": {\"content\": \"<s>\"}, \"add_eos_token\": \"yes\"}", f);
    fclose(f);
    CHECK_ERR(llmrt_tokenizer_load_hf(path, cfg, &tk, &err), LLMRT_ERR_FORMAT, "add_eos_token");
    f = fopen(cfg, "w");
    fputs("{\"add_bos_token\": true, \"bos_token\": {\"content\": \"<s>\"}, \"chat_template\": "
          "[{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", \"template\": \"D\"}]}", f);
    fclose(f);
    CHECK_ERR(llmrt_tokenizer_load_hf(path, cfg, &tk, &err), LLMRT_OK, "");
    if (tk) {
        CHECK(llmrt_tokenizer_bos(tk) == 4 && llmrt_tokenizer_adds_bos(tk));
        CHECK(llmrt_tokenizer_chat_template(tk) && strcmp(llmrt_tokenizer_chat_template(tk), "D") == 0);
        int32_t *ids = NULL;
        int64_t  n   = 0;
        CHECK(llmrt_tokenizer_encode(tk, "ab<s>", 5, true, true, &ids, &n, &err) == LLMRT_OK);
        CHECK(n == 3 && ids[0] == 4 && ids[1] == 2 && ids[2] == 4);
        free(ids);
    }
    llmrt_tokenizer_destroy(tk);
    f = fopen(cfg, "w");
    fputs("{\"add_bos_token\": tru", f);
    fclose(f);
    tk = NULL;
    CHECK_ERR(llmrt_tokenizer_load_hf(path, cfg, &tk, &err), LLMRT_ERR_FORMAT, "tok_err_config.json");
    remove(path);
    remove(cfg);
}

/* ---- GGUF ---------------------------------------------------------------------------------- */

typedef struct gbuf {
    uint8_t *p;
    size_t   n, cap;
    uint64_t n_kv;
} gbuf;

static void gput(gbuf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p   = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void gu32(gbuf *b, uint32_t v) { gput(b, &v, 4); }
static void gu64(gbuf *b, uint64_t v) { gput(b, &v, 8); }
static void gstr(gbuf *b, const char *s) {
    gu64(b, strlen(s));
    gput(b, s, strlen(s));
}
static void gkey(gbuf *b, const char *key, uint32_t type) {
    gstr(b, key);
    gu32(b, type);
    b->n_kv++;
}
static void kv_str(gbuf *b, const char *key, const char *v) {
    gkey(b, key, 8);
    gstr(b, v);
}
static void kv_u32(gbuf *b, const char *key, uint32_t v) {
    gkey(b, key, 4);
    gu32(b, v);
}
static void kv_strs(gbuf *b, const char *key, const char *const *v, int n) {
    gkey(b, key, 9);
    gu32(b, 8);
    gu64(b, (uint64_t)n);
    for (int i = 0; i < n; i++) gstr(b, v[i]);
}
static void kv_i32s(gbuf *b, const char *key, const int32_t *v, int n) {
    gkey(b, key, 9);
    gu32(b, 5);
    gu64(b, (uint64_t)n);
    gput(b, v, 4 * (size_t)n);
}

static const char *const TOKS[] = {"a", "b", "ab", "\xc4\xa0", "<|end|>"};
static const char *const MERGES[] = {"a b"};

/* A small gpt2-style tokenizer GGUF; `variant` breaks one thing. */
static llmrt_status load_gguf(int variant) {
    gbuf b = {0};
    gput(&b, "GGUF", 4);
    gu32(&b, 3);
    gu64(&b, 0);
    gu64(&b, 0);
    kv_str(&b, "tokenizer.ggml.model", variant == 1 ? "t5" : "gpt2");
    kv_str(&b, "tokenizer.ggml.pre", variant == 2 ? "deepseek-coder" : "smollm");
    if (variant != 3) kv_strs(&b, "tokenizer.ggml.tokens", TOKS, 5);
    int32_t types[5] = {1, 1, 1, 1, variant == 4 ? 9 : 3};
    kv_i32s(&b, "tokenizer.ggml.token_type", types, variant == 5 ? 4 : 5);
    const char *const bad_merges[] = {"a c"};
    kv_strs(&b, "tokenizer.ggml.merges", variant == 6 ? bad_merges : MERGES, 1);
    kv_u32(&b, "tokenizer.ggml.eos_token_id", variant == 7 ? 5 : 4);
    if (variant == 8) kv_str(&b, "tokenizer.ggml.bos_token_id", "zero");
    memcpy(b.p + 16, &b.n_kv, 8);
    llmrt_gguf_file  f;
    llmrt_tokenizer *tk = NULL;
    llmrt_status     st = llmrt_gguf_parse(b.p, b.n, "tok.gguf", &f, &err);
    CHECK_MSG(st == LLMRT_OK, "%s", err.msg);
    if (st == LLMRT_OK) {
        st = llmrt_tokenizer_load_gguf(&f, &tk, &err);
        if (tk) {
            int32_t *ids = NULL;
            int64_t  n   = 0;
            CHECK(llmrt_tokenizer_encode(tk, "ab<|end|>", 9, false, true, &ids, &n, &err) == LLMRT_OK);
            CHECK(n == 2 && ids[0] == 2 && ids[1] == 4);
            free(ids);
        }
        llmrt_tokenizer_destroy(tk);
        llmrt_gguf_close(&f);
    }
    free(b.p);
    return st;
}

static void test_gguf(void) {
    CHECK_ERR(load_gguf(0), LLMRT_OK, "");
    CHECK_ERR(load_gguf(1), LLMRT_ERR_UNSUPPORTED, "tokenizer.ggml.model \"t5\"");
    CHECK_ERR(load_gguf(2), LLMRT_ERR_UNSUPPORTED, "tokenizer.ggml.pre \"deepseek-coder\"");
    CHECK_ERR(load_gguf(3), LLMRT_ERR_MODEL_MISMATCH, "tokenizer.ggml.tokens");
    CHECK_ERR(load_gguf(4), LLMRT_ERR_FORMAT, "token_type 9");
    CHECK_ERR(load_gguf(5), LLMRT_ERR_FORMAT, "token_type length");
    CHECK_ERR(load_gguf(6), LLMRT_ERR_FORMAT, "\"a c\"");
    CHECK_ERR(load_gguf(7), LLMRT_ERR_FORMAT, "eos_token_id");
    CHECK_ERR(load_gguf(8), LLMRT_ERR_FORMAT, "bos_token_id");
}

int main(void) {
    test_json();
    test_encode_edges();
    test_config();
    test_gguf();
    return test_summary("test_tokenizer_errors");
}
