/* libFuzzer harness: the GGUF vocabulary loader (host/tokenizer/tokenizer_gguf.c,
 * llmrt_tokenizer_load_gguf) over arbitrary GGUF bytes, parsed in memory (llmrt_gguf_parse).
 * A file the loader refuses must come back with a status and a message and nothing to free; a
 * tokenizer it accepts is used: a short text encoded (specials parsed and not), ids in range,
 * decoded to valid UTF-8, the special ids in range, and the file's chat template (if any)
 * rendered over a two-message conversation under the renderer's budgets. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/json_util.h"
#include "format/gguf.h"
#include "llmrt.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

static const char TEXT[] = "Hello wörld <s> 12 a bc\n\t<|im_end|> \xe2\x96\x81x";

static void check_id(const llmrt_tokenizer *tk, int32_t id) {
    if (id < -1 || id >= llmrt_tokenizer_vocab_size(tk)) __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    llmrt_gguf_file f;
    llmrt_error     err = {0};
    if (llmrt_gguf_parse(data, size, "fuzz.gguf", &f, &err) != LLMRT_OK) return 0;
    llmrt_tokenizer *tk = NULL;
    err.msg[0]          = 0;
    if (llmrt_tokenizer_load_gguf(&f, &tk, &err) != LLMRT_OK) {
        if (tk || !err.msg[0]) __builtin_trap();
        llmrt_gguf_close(&f);
        return 0;
    }
    int32_t nv = llmrt_tokenizer_vocab_size(tk);
    if (nv <= 0) __builtin_trap();
    check_id(tk, llmrt_tokenizer_bos(tk));
    check_id(tk, llmrt_tokenizer_eos(tk));
    check_id(tk, llmrt_tokenizer_eot(tk));
    check_id(tk, llmrt_tokenizer_pad(tk));
    for (int parse = 0; parse <= 1; parse++) {
        int32_t *ids = NULL;
        int64_t  n   = 0;
        if (llmrt_tokenizer_encode(tk, TEXT, sizeof TEXT - 1, true, parse, &ids, &n, &err) == LLMRT_OK) {
            for (int64_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= nv) __builtin_trap();
            char  *text = NULL;
            size_t len  = 0;
            if (llmrt_tokenizer_decode(tk, ids, n, parse, &text, &len, &err) == LLMRT_OK) {
                if (!llmrt_utf8_valid(text, len)) __builtin_trap();
                free(text);
            }
        } else if (ids || !err.msg[0]) {
            __builtin_trap();
        }
        free(ids);
    }
    /* every id decodes (pieces of any bytes), alone */
    for (int32_t id = 0; id < nv && id < 64; id++) {
        char  *text = NULL;
        size_t len  = 0;
        if (llmrt_tokenizer_decode(tk, &id, 1, false, &text, &len, &err) == LLMRT_OK) {
            if (!llmrt_utf8_valid(text, len)) __builtin_trap();
            free(text);
        }
    }
    if (llmrt_tokenizer_chat_template(tk)) {
        const llmrt_chat_message msgs[] = {{"system", "be brief"}, {"user", "hi <|im_end|>"}};
        llmrt_chat_rendered      r      = {0};
        if (llmrt_chat_render_model(tk, NULL, msgs, 2, true, &r, &err) == LLMRT_OK) {
            if (!r.text || r.text[r.len] != '\0') __builtin_trap();
            size_t prev = 0;
            for (int32_t k = 0; k < r.n_spans; k++) {
                const llmrt_chat_span *s = &r.content_spans[k];
                if (s->begin >= s->end || s->begin < prev || s->end > r.len) __builtin_trap();
                prev = s->end;
            }
        }
        llmrt_chat_rendered_free(&r);
    }
    llmrt_tokenizer_destroy(tk);
    llmrt_gguf_close(&f);
    return 0;
}
