/* llmrt serve: the request-body parser and validator of the OpenAI-compatible endpoints. JSON text
 * in, a parsed request or an OpenAI-style error (message + the offending field) out; no HTTP and
 * no model here, so the libFuzzer harness (tests/fuzz/fuzz_server_request.c) drives it directly. */
#ifndef LLMRT_SERVER_REQUEST_H
#define LLMRT_SERVER_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../cli/request_fields.h"
#include "llmrt.h"

typedef enum srv_kind {
    SRV_CHAT       = 0, /* POST /v1/chat/completions */
    SRV_COMPLETION = 1, /* POST /v1/completions      */
    SRV_TOKENIZE   = 2, /* POST /tokenize (vLLM)      */
    SRV_DETOKENIZE = 3, /* POST /detokenize (vLLM)    */
    SRV_LOAD_LORA   = 4, /* POST /v1/load_lora_adapter (vLLM; --allow-lora-runtime-updates)   */
    SRV_UNLOAD_LORA = 5, /* POST /v1/unload_lora_adapter (vLLM; --allow-lora-runtime-updates) */
} srv_kind;

#define SRV_MAX_N      16  /* n at most */
#define SRV_MAX_STOPS  16  /* stop strings at most */
#define SRV_MAX_PROMPT 64  /* prompts of one completions request at most */

/* One prompt of a completions request: text, or token ids. */
typedef struct srv_prompt {
    char    *text;  /* NUL-terminated, valid UTF-8; NULL when ids are given */
    size_t   text_len;
    int32_t *ids;
    int32_t  n_ids;
} srv_prompt;

typedef struct srv_request {
    srv_kind kind;
    char    *model;                   /* NULL when not given */
    /* chat (and /tokenize with messages) */
    int32_t  n_messages;
    char   **roles, **contents;       /* [n_messages], owned; contents: text parts joined with
                                         "\n", "" for an assistant message of tool calls only */
    /* the messages for the template (llmrt_chat_apply_template_json): as given (content-part
     * lists kept; tool_calls' arguments parsed into objects; "developer" -> "system"), and the
     * same with part lists joined into strings, for templates that do not iterate over parts */
    char    *messages_json, *messages_flat_json;
    bool     has_content_parts;
    char    *tools_json;              /* the tools array, or NULL */
    /* completions (and /tokenize with prompt) */
    int32_t     n_prompts;
    srv_prompt *prompts;              /* [n_prompts] */
    /* /detokenize */
    int32_t *tokens;
    int32_t  n_tokens;
    /* /tokenize */
    bool add_special_tokens, has_add_special_tokens, add_generation_prompt, return_token_strs;
    /* sampling parameters given in the body (request_fields.h: its table, types and ranges); the
     * server's defaults for the others */
    req_values params;
    int32_t n_stop;                   /* -1: not given */
    char   *stop[SRV_MAX_STOPS];
    int32_t n;                        /* 1..SRV_MAX_N (also in params) */
    bool    logprobs;                 /* chat: logprobs; completions: logprobs given */
    int32_t n_logprobs;               /* chat: top_logprobs; completions: logprobs (0..20) */
    bool    ignore_eos, stream, include_usage;
    /* logit_bias: {"token id": bias} as given (ids checked against the vocabulary at submit) */
    int32_t *bias_ids;
    float   *bias;
    int32_t  n_bias;
    /* /v1/load_lora_adapter, /v1/unload_lora_adapter */
    char   *lora_name;                /* printable ASCII, no spaces or quotes, < 128 bytes */
    char   *lora_path;                /* load only */
} srv_request;

/* Parses and validates body[0..len) for `kind`. 0 on success (*req owns its strings: free with
 * srv_request_free); -1 on a client error: msg says why and param names the field ("" when it is
 * the body as a whole). Never crashes on any bytes. */
int  srv_request_parse(const char *body, size_t len, srv_kind kind, srv_request *req, char *param,
                       size_t param_size, char *msg, size_t msg_size);
void srv_request_free(srv_request *req);

/* The engine's sampling params for sequence `index` (0..n-1) of the request: `base` (the server's
 * defaults) with the request's fields on top; a seed s becomes s + index. The stop pointers point
 * into req (or base). */
llmrt_sampling_params srv_request_sampling(const srv_request *req, const llmrt_sampling_params *base,
                                           int32_t index);

#endif
