/* libFuzzer harness: the request-body parser/validator of `llmrt serve` (host/server/
 * server_request.c) must turn any bytes into a parsed request or a 400 message, never crash, leak
 * or invoke undefined behaviour. The first byte picks the endpoint; an accepted request must
 * satisfy the ranges the server relies on. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "server/server_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    srv_kind    kind = (srv_kind)(data[0] % 6); /* every endpoint, the LoRA load/unload too */
    srv_request req;
    char        param[128], msg[512];
    if (srv_request_parse((const char *)data + 1, size - 1, kind, &req, param, sizeof param, msg,
                          sizeof msg) < 0) {
        if (!msg[0] || !memchr(msg, 0, sizeof msg) || !memchr(param, 0, sizeof param))
            __builtin_trap();
        return 0;
    }
    if (req.kind != kind || req.n < 1 || req.n > SRV_MAX_N || req.n_stop > SRV_MAX_STOPS ||
        req.n_logprobs < 0 || req.n_logprobs > 20)
        __builtin_trap();
    /* a chat request carries its messages for the template (as given and flattened) */
    if (kind == SRV_CHAT && (!req.messages_json || !req.messages_flat_json || req.n_messages < 1))
        __builtin_trap();
    if (kind == SRV_CHAT && (req.n_messages < 1 || !req.roles || !req.contents)) __builtin_trap();
    if ((kind == SRV_LOAD_LORA || kind == SRV_UNLOAD_LORA) && (!req.lora_name || !req.lora_name[0]))
        __builtin_trap();
    if (kind == SRV_LOAD_LORA && (!req.lora_path || !req.lora_path[0])) __builtin_trap();
    if (kind == SRV_COMPLETION && (req.n_prompts < 1 || req.n_prompts > SRV_MAX_PROMPT))
        __builtin_trap();
    for (int32_t i = 0; i < req.n_messages; i++)
        if (!req.roles[i] || !req.contents[i]) __builtin_trap();
    /* logit_bias: ids non-negative, values in [-100, 100], within the limit */
    if (req.n_bias < 0 || req.n_bias > LLMRT_MAX_LOGIT_BIAS ||
        (req.n_bias > 0 && (!req.bias_ids || !req.bias)))
        __builtin_trap();
    for (int32_t i = 0; i < req.n_bias; i++)
        if (req.bias_ids[i] < 0 || !(req.bias[i] >= -100.0f && req.bias[i] <= 100.0f))
            __builtin_trap();
    for (int32_t i = 0; i < req.n_prompts; i++) {
        const srv_prompt *p = &req.prompts[i];
        if (!p->text == !p->ids) __builtin_trap();
        if (p->text && strlen(p->text) != p->text_len) __builtin_trap();
        for (int32_t k = 0; k < p->n_ids; k++)
            if (p->ids[k] < 0) __builtin_trap();
    }
    llmrt_sampling_params base = llmrt_sampling_default_params();
    for (int32_t i = 0; i < req.n; i++) {
        llmrt_sampling_params sp = srv_request_sampling(&req, &base, i);
        if (!(sp.temperature >= 0) || !(sp.top_p > 0 && sp.top_p <= 1) || sp.max_tokens < 1 ||
            sp.min_tokens > sp.max_tokens || sp.top_k < -1 || (sp.n_stop > 0 && !sp.stop))
            __builtin_trap();
        for (int32_t k = 0; k < sp.n_stop; k++)
            if (!sp.stop[k] || !sp.stop[k][0]) __builtin_trap();
    }
    srv_request_free(&req);
    return 0;
}
