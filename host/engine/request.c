#include "request.h"

#include <stdlib.h>
#include <string.h>

#include "../tokenizer/tokenizer.h"

void request_free(request *r) {
    if (!r) return;
    free(r->tokens);
    llmrt_sampler_destroy(r->sampler);
    llmrt_detokenizer_destroy(r->detok);
    llmrt_stop_matcher_destroy(r->stop);
    free(r->stop_ids);
    free(r->out_tokens);
    free(r->out_logprobs);
    free(r->out_top_ids);
    free(r->out_top_logprobs);
    free(r->out_text);
    free(r->prompt_lp);
    free(r->prompt_top_ids);
    free(r->prompt_top_lp);
    free(r->blocks.ids);
    for (int32_t i = 0; i < r->n_fork; i++) request_free(r->fork[i]);
    free(r->fork);
    lora_adapter_release(r->adapter);
    free(r);
}

static bool grow(void **p, int64_t need, size_t elem) {
    void *n = realloc(*p, (size_t)need * elem);
    if (!n) return false;
    *p = n;
    return true;
}

llmrt_status request_push_token(request *r, int32_t token, llmrt_error *err) {
    if (r->n_tokens == r->cap_tokens) {
        int64_t cap = r->cap_tokens ? r->cap_tokens * 2 : 64;
        if (!grow((void **)&r->tokens, cap, sizeof(int32_t)))
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "request %llu: out of memory",
                             (unsigned long long)r->id);
        r->cap_tokens = cap;
    }
    r->tokens[r->n_tokens++] = token;
    return LLMRT_OK;
}

llmrt_status request_out_token(request *r, int32_t token, float logprob, const int32_t *top_ids,
                               const float *top_lp, int32_t n_top, llmrt_error *err) {
    if (r->n_out == r->cap_out) {
        int32_t cap = r->cap_out ? r->cap_out * 2 : 4;
        int64_t top = (int64_t)cap * (n_top > 0 ? n_top : 1);
        if (!grow((void **)&r->out_tokens, cap, sizeof(int32_t)) ||
            !grow((void **)&r->out_logprobs, cap, sizeof(float)) ||
            !grow((void **)&r->out_top_ids, top, sizeof(int32_t)) ||
            !grow((void **)&r->out_top_logprobs, top, sizeof(float)))
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "request %llu: out of memory",
                             (unsigned long long)r->id);
        r->cap_out = cap;
    }
    r->out_tokens[r->n_out]   = token;
    r->out_logprobs[r->n_out] = logprob;
    if (n_top > 0) {
        memcpy(r->out_top_ids + (int64_t)r->n_out * n_top, top_ids, (size_t)n_top * sizeof(int32_t));
        memcpy(r->out_top_logprobs + (int64_t)r->n_out * n_top, top_lp, (size_t)n_top * sizeof(float));
    }
    r->n_out++;
    return LLMRT_OK;
}

llmrt_status request_out_text(request *r, const char *text, size_t len, llmrt_error *err) {
    if (r->out_text_len + len + 1 > r->cap_text) {
        size_t cap = r->cap_text ? r->cap_text : 64;
        while (cap < r->out_text_len + len + 1) cap *= 2;
        if (!grow((void **)&r->out_text, (int64_t)cap, 1))
            return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "request %llu: out of memory",
                             (unsigned long long)r->id);
        r->cap_text = cap;
    }
    memcpy(r->out_text + r->out_text_len, text, len);
    r->out_text_len += len;
    r->out_text[r->out_text_len] = 0;
    return LLMRT_OK;
}

void request_out_reset(request *r) {
    r->n_out        = 0;
    r->out_text_len = 0;
    if (r->out_text) r->out_text[0] = 0;
}
