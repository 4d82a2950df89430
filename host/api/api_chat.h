/* The one chat-rendering entry of the C API: a model's tokenizer (llmrt_chat_apply_template*)
 * and a standalone tokenizer (llmrt_text_tokenizer_apply_chat_template*) both render here, so
 * the two surfaces cannot drift apart. */
#ifndef LLMRT_API_CHAT_H
#define LLMRT_API_CHAT_H

#include "llmrt.h"
#include "../tokenizer/tokenizer.h"

/* Renders with `tk`'s own template, or the family `template_name`: the conversation is either
 * messages[0..n_messages) or, when messages_json is non-NULL, OpenAI/HF JSON (messages_json +
 * tools_json). The text goes to text[0..capacity) under the size protocol (*len = bytes needed
 * without the NUL). Errors go to llmrt_last_error(); `fn` names the public call in the size
 * error (the renderer's own messages name the field or template line). */
llmrt_status llmrt_api_chat_render(const llmrt_tokenizer *tk, const char *fn,
                                   const char *template_name, const llmrt_chat_message *messages,
                                   int32_t n_messages, const char *messages_json,
                                   const char *tools_json, bool add_generation_prompt, char *text,
                                   size_t capacity, size_t *len);

#endif
