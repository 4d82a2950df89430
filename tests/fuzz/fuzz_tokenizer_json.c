/* libFuzzer harness: loading a tokenizer.json must reject any malformed or unsupported input with
 * a status and a message, never crash, leak, hang or read out of bounds. A tokenizer that loads is
 * exercised: a few texts are encoded (specials parsed and not, BOS/EOS on and off), the ids
 * decoded in one shot and streamed, and every piece and delta must be valid, in-range output. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "tokenizer/tokenizer.h"

#define T(s) {s, sizeof s - 1}
static const struct {
    const char *s;
    size_t      len;
} TEXTS[] = {
    T(""),
    T(" Hello world!  123 4567 <s></s><|im_end|> x"),
    T("caf\xc3\xa9 \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\xb6\xe2\x80\x8d\xf0\x9f\x8c\xab\xef\xb8\x8f\t\n\n"),
    T("bad \xff\xfe utf8 \xe2\x82 and a NUL \0 inside"),
};
#undef T

static void exercise(const llmrt_tokenizer *tk) {
    llmrt_error err;
    int32_t     n_vocab = llmrt_tokenizer_vocab_size(tk);
    for (size_t t = 0; t < sizeof TEXTS / sizeof TEXTS[0]; t++) {
        for (int flags = 0; flags < 4; flags++) {
            int32_t *ids = NULL;
            int64_t  n   = 0;
            if (llmrt_tokenizer_encode(tk, TEXTS[t].s, TEXTS[t].len, flags & 1, flags & 2, &ids, &n, &err) != LLMRT_OK) {
                if (!err.msg[0] || ids || n) __builtin_trap();
                continue;
            }
            for (int64_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= n_vocab || !llmrt_tokenizer_piece(tk, ids[i])) __builtin_trap();
            for (int skip = 0; skip <= 1; skip++) {
                char  *text = NULL;
                size_t len  = 0;
                if (llmrt_tokenizer_decode(tk, ids, n, skip, &text, &len, &err) != LLMRT_OK) __builtin_trap();
                if (!llmrt_utf8_valid(text, len) || text[len] != 0) __builtin_trap();
                free(text);
                llmrt_detokenizer *d = NULL;
                if (llmrt_detokenizer_create(tk, skip, &d, &err) != LLMRT_OK) __builtin_trap();
                const char *delta;
                size_t      dl;
                for (int64_t i = 0; i <= n; i++) {
                    llmrt_status st = i < n ? llmrt_detokenizer_push(d, ids[i], &delta, &dl, &err)
                                            : llmrt_detokenizer_flush(d, &delta, &dl, &err);
                    if (st != LLMRT_OK || !llmrt_utf8_valid(delta, dl)) __builtin_trap();
                }
                llmrt_detokenizer_destroy(d);
            }
            free(ids);
        }
    }
    (void)llmrt_tokenizer_token_id(tk, "<s>");
    (void)llmrt_tokenizer_bos(tk);
    (void)llmrt_tokenizer_chat_template(tk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_tokenizer *tk = NULL;
    llmrt_error      err;
    err.msg[0] = 0;
    if (llmrt_tokenizer_load_hf_text((const char *)data, size, "fuzz.json", &tk, &err) != LLMRT_OK) {
        /* a failed load leaves nothing behind and always says why */
        if (tk || !err.msg[0]) __builtin_trap();
        return 0;
    }
    exercise(tk);
    llmrt_tokenizer_destroy(tk);
    return 0;
}
