/* libFuzzer harness: conversations as OpenAI/HF JSON (host/tokenizer/chat_json.c, the engine of
 * llmrt_chat_apply_template_json) and the content-format rule (chat_content_format.c). The input
 * is messages JSON, optionally followed by a 0x1e byte and tools JSON; it is rendered with the
 * Llama 3 tokenizer's own template and with the chatml family. Any bytes must give a rendered
 * prompt (NUL-terminated, content spans sorted, disjoint, non-empty, inside the text) or an error
 * with a message: never a crash, leak, hang or out-of-bounds read. The whole input also goes
 * through the content-format scan as a template source. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

static llmrt_tokenizer *tk;

static void check(llmrt_status st, const llmrt_chat_rendered *r, const llmrt_error *err) {
    if (st != LLMRT_OK) {
        if (r->text || r->n_spans || !err->msg[0]) __builtin_trap();
        return;
    }
    if (!r->text || r->text[r->len] != '\0') __builtin_trap();
    size_t prev = 0;
    for (int32_t k = 0; k < r->n_spans; k++) {
        const llmrt_chat_span *sp = &r->content_spans[k];
        if (sp->begin >= sp->end || sp->begin < prev || sp->end > r->len) __builtin_trap();
        prev = sp->end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tk) {
        llmrt_error err = {0};
        if (llmrt_tokenizer_load_hf(LLMRT_FUZZ_TOKENIZER_DIR "/tokenizer.json",
                                    LLMRT_FUZZ_TOKENIZER_DIR "/tokenizer_config.json", &tk,
                                    &err) != LLMRT_OK)
            __builtin_trap();
    }
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    (void)llmrt_chat_source_iterates_content(text);
    char *tools = memchr(text, 0x1e, size);
    if (tools) *tools++ = 0;
    const char *families[] = {NULL, "chatml"};
    for (int f = 0; f < 2; f++) {
        llmrt_chat_rendered r = {0};
        llmrt_error err = {0};
        check(llmrt_chat_render_json(tk, families[f], text, tools, f == 0, &r, &err), &r, &err);
        llmrt_chat_rendered_free(&r);
    }
    free(text);
    return 0;
}
