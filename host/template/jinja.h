/* A Jinja2 interpreter for models' own chat templates, byte-identical to what HF transformers'
 * apply_chat_template(..., tokenize=False) renders: jinja2's ImmutableSandboxedEnvironment with
 * trim_blocks and lstrip_blocks, the loopcontrols extension, HF's `tojson` (ensure_ascii=False),
 * `raise_exception(msg)` and `strftime_now(fmt)`.
 *
 * A template is parsed once into an AST (llmrt_jinja_parse); anything the interpreter does not
 * implement fails there, naming the construct and the line. Rendering is bounded: a step budget,
 * an output cap and a memory cap (llmrt_jinja_params); exceeding one is an error, never a hang.
 *
 * Special-token safety: strings that come from the messages (every string value under the
 * `messages` variable: contents and their parts, roles, names, tool calls) carry taint spans
 * through slicing, strip, replace, concatenation, joins, macros and tojson; the output lists the
 * bytes that came from them, so the tokenizer can parse those with special tokens OFF. */
#ifndef LLMRT_TEMPLATE_JINJA_H
#define LLMRT_TEMPLATE_JINJA_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "core/error.h"

typedef struct llmrt_jinja_template llmrt_jinja_template;

typedef struct llmrt_jinja_params {
    uint64_t max_steps;        /* expression/statement evaluations (loops count each pass) */
    size_t   max_output_bytes; /* bytes of rendered text                                  */
    size_t   max_memory_bytes; /* the render's arena (values, strings, scopes)             */
    /* The clock of strftime_now: fills *out with the local time; NULL = localtime of now.
     * Tests inject a fixed date here. Returns false on failure (the render fails). */
    bool (*now)(void *user, struct tm *out);
    void *now_user;
} llmrt_jinja_params;

llmrt_jinja_params llmrt_jinja_default_params(void);

/* A byte range [begin, end) of the output that came from message content. */
typedef struct llmrt_jinja_span {
    size_t begin, end;
} llmrt_jinja_span;

/* NUL-terminated text of len bytes plus sorted, disjoint, non-empty content spans (adjacent
 * ones merged). Free with llmrt_jinja_output_free. */
typedef struct llmrt_jinja_output {
    char             *text;
    size_t            len;
    llmrt_jinja_span *spans;
    size_t            n_spans;
} llmrt_jinja_output;

/* Parses src[0..len). `what` names the template in messages ("tokenizer_config.json
 * chat_template"). Errors: LLMRT_ERR_FORMAT for a syntax error, LLMRT_ERR_UNSUPPORTED for a
 * construct the interpreter lacks; both name the line. */
llmrt_status llmrt_jinja_parse(const char *src, size_t len, const char *what,
                               llmrt_jinja_template **out, llmrt_error *err);
void         llmrt_jinja_template_free(llmrt_jinja_template *t);

/* Renders with the variables of a JSON object (messages, tools, bos_token, ...). String values
 * under `messages` are content (tainted). A JSON null is Python's None. Errors:
 * LLMRT_ERR_INVALID_ARG when the template raises (raise_exception's message) or fails
 * (undefined attribute, type error: jinja2 would raise too), LLMRT_ERR_ABORTED when a budget is
 * exceeded (named), LLMRT_ERR_OUT_OF_MEMORY. On error *out is zeroed. */
llmrt_status llmrt_jinja_render(const llmrt_jinja_template *t, const cJSON *vars,
                                const llmrt_jinja_params *params, llmrt_jinja_output *out,
                                llmrt_error *err);
void         llmrt_jinja_output_free(llmrt_jinja_output *o);

#endif
