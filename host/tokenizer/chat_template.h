/* Chat templates: renders a conversation into a prompt string. A model's own Jinja
 * chat_template runs in the Jinja interpreter (template/jinja.h), byte-identical to HF
 * apply_chat_template (llmrt_chat_render_model). The built-in family renderers below reproduce
 * four families' templates in C (see python/tools/make_chat_golden.py); they serve as
 * `--chat-template NAME` overrides and for models that ship no template.
 *
 * Special-token safety: the rendered prompt records which byte ranges are message content. Those
 * must be tokenized with special-token parsing OFF, everything else (the template's scaffolding:
 * role headers, [INST], BOS/EOS strings...) with it ON, so that a user who types "<|im_end|>"
 * cannot forge a turn boundary. */
#ifndef LLMRT_TOKENIZER_CHAT_TEMPLATE_H
#define LLMRT_TOKENIZER_CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum llmrt_chat_family {
    LLMRT_CHAT_UNKNOWN = 0,
    LLMRT_CHAT_CHATML,  /* <|im_start|>role\n...<|im_end|>\n (plain: no default system turn)    */
    LLMRT_CHAT_LLAMA2,  /* <s>[INST] <<SYS>>\n...\n<</SYS>>\n\n... [/INST] answer </s>          */
    LLMRT_CHAT_LLAMA3,  /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>             */
    LLMRT_CHAT_MISTRAL, /* <s> [INST] ... [/INST] answer</s> (Mistral-7B-Instruct v0.1/v0.2)    */
} llmrt_chat_family;

/* Messages are the public llmrt_chat_message of llmrt.h (role "system", "user" or "assistant"). */

/* Recognises the family of a Jinja chat_template string by distinctive markers: "<|im_start|>"
 * (ChatML), "<|start_header_id|>" (Llama 3), "[INST]" with "<<SYS>>" (Llama 2), "[INST]" without
 * (Mistral). NULL or unrecognised => LLMRT_CHAT_UNKNOWN. */
llmrt_chat_family llmrt_chat_detect_family(const char *chat_template);

/* "chatml", "llama2", "llama3", "mistral" (case-insensitive) -> family; else UNKNOWN. */
llmrt_chat_family llmrt_chat_family_from_name(const char *name);

/* "chatml", ... or "unknown". Never NULL. */
const char *llmrt_chat_family_name(llmrt_chat_family f);

/* A byte range [begin, end) of llmrt_chat_rendered.text. */
typedef struct llmrt_chat_span {
    size_t begin, end;
} llmrt_chat_span;

/* A rendered prompt: NUL-terminated text of len bytes plus the byte spans that are message
 * content (tokenize with parse_special OFF), sorted, disjoint and non-empty; everything else is
 * scaffolding (parse_special ON). Spans hold contents as they appear after the template's own
 * stripping. Note the template already contains the BOS string where the family wants one, so
 * the tokenizer must not add another. */
typedef struct llmrt_chat_rendered {
    char *text;
    size_t len;
    llmrt_chat_span *content_spans;
    int32_t n_spans;
} llmrt_chat_rendered;

/* Renders msgs[0..n_msgs) as the family's template does. bos_token/eos_token: the model's
 * special-token strings (NULL = ""). add_generation_prompt appends the assistant header where the
 * family's template honours it (ChatML); the Llama 2 and Mistral templates have no such header
 * (the prompt ends with " [/INST]" anyway) and the Llama 3 template always appends it.
 * Errors: LLMRT_ERR_UNSUPPORTED for an unknown family (the message suggests --chat-template);
 * LLMRT_ERR_INVALID_ARG for no messages, a NULL role/content, a role other than
 * system/user/assistant, or a role order the family's template rejects (named by message index).
 * On error *out is left empty. Free with llmrt_chat_rendered_free. */
llmrt_status llmrt_chat_render(llmrt_chat_family family, const llmrt_chat_message *msgs,
                               int32_t n_msgs, bool add_generation_prompt, const char *bos_token,
                               const char *eos_token, llmrt_chat_rendered *out, llmrt_error *err);

struct llmrt_tokenizer;
struct cJSON;

/* Renders msgs for a model: with the family named `family_name` when it is non-NULL (an
 * override), else with the model's own chat template through the Jinja interpreter, given the
 * variables HF passes: messages (each {"role", "content"}; any role the template accepts,
 * "tool" included), add_generation_prompt, tools = documents = None, and the special-token
 * strings bos_token, eos_token, pad_token the tokenizer has. Content spans: every byte that
 * came from the messages (contents and roles: both are the caller's text), after the
 * template's slicing, stripping and concatenation.
 * Errors: LLMRT_ERR_UNSUPPORTED for an unknown family name or a model without a template
 * (the message suggests --chat-template); the template's parse error (it failed to parse at
 * load; there is no silent fallback to a family); LLMRT_ERR_INVALID_ARG for no messages, NULL
 * fields, or when the template raises (raise_exception's message) or fails as jinja2 would;
 * LLMRT_ERR_ABORTED when the render exceeds its step/output/memory budget. */
llmrt_status llmrt_chat_render_model(const struct llmrt_tokenizer *tk, const char *family_name,
                                     const llmrt_chat_message *msgs, int32_t n_msgs,
                                     bool add_generation_prompt, llmrt_chat_rendered *out,
                                     llmrt_error *err);

/* Renders with the model's own template (family names are handled by llmrt_chat_render_json):
 * `messages` (a JSON array of message objects, checked by the caller) and `tools` (an array, or
 * NULL = None) are passed to the template as they are; both are taken over (freed here). */
llmrt_status llmrt_chat_render_json_vars(const struct llmrt_tokenizer *tk, struct cJSON *messages,
                                         struct cJSON *tools, bool add_generation_prompt,
                                         llmrt_chat_rendered *out, llmrt_error *err);

/* Renders an OpenAI/HF conversation given as JSON text, as HF's apply_chat_template(messages,
 * tools=tools) does: messages_json a non-empty array of objects with a string "role" (content a
 * string, a list of parts or null; tool_calls, tool_call_id, name and any other field passed
 * through), tools_json an array (NULL or "null" = None). The text is parsed with a size limit
 * (64 MiB) and a nesting limit (64); errors are LLMRT_ERR_INVALID_ARG naming the index and field
 * ("messages[2].role"). With a family name only role + string or text-part content (parts
 * joined with "\n") can be rendered, and no tools: anything else is refused by name. */
llmrt_status llmrt_chat_render_json(const struct llmrt_tokenizer *tk, const char *family_name,
                                    const char *messages_json, const char *tools_json,
                                    bool add_generation_prompt, llmrt_chat_rendered *out,
                                    llmrt_error *err);

/* Whether the model's template iterates over a message's content (it takes OpenAI content-part
 * lists) rather than printing it as a string: vLLM's "content format" detection
 * (chat_utils._detect_content_format, on the jinja2 AST) done on the template source: a
 * `{% for X in EXPR %}` whose EXPR is `<...>['content']`, `<...>["content"]`, `<...>.content`,
 * or a variable set from one of those (`{% set c = message['content'] %}`). False for a family
 * name and for a model without a template. */
bool llmrt_chat_template_iterates_content(const struct llmrt_tokenizer *tk,
                                          const char *family_name);
/* The same rule on a template source (NUL-terminated). */
bool llmrt_chat_source_iterates_content(const char *src);

/* Frees what llmrt_chat_render allocated and zeroes *r. Accepts NULL and a zeroed struct. */
void llmrt_chat_rendered_free(llmrt_chat_rendered *r);

#endif
