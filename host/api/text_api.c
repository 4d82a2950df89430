/* Public text calls on a model: tokenize / detokenize with the two-call size protocol, token
 * pieces, chat-template rendering, and the model's sampling defaults. */
#include <stdlib.h>
#include <string.h>

#include "api_chat.h"
#include "api_model.h"
#include "llmrt_experimental.h"
#include "../tokenizer/chat_template.h"
#include "../tokenizer/tokenizer.h"

static llmrt_status need_tokenizer(const llmrt_rank_model *m, const char *fn) {
    if (!m) return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "%s: model is NULL", fn);
    if (!m->tokenizer)
        return llmrt_err_set_last(LLMRT_ERR_UNSUPPORTED, "%s: the model (%s) has no tokenizer", fn,
                                  m->source_path);
    return LLMRT_OK;
}

llmrt_status llmrt_tokenize(const llmrt_model *model, const char *text, size_t len,
                            bool add_special, bool parse_special, int32_t *ids, int32_t capacity,
                            int32_t *n) {
    const llmrt_rank_model *m = model ? model->rank : NULL;
    LLMRT_TRY(need_tokenizer(m, "llmrt_tokenize"));
    if (!n || (len && !text) || capacity < 0 || (capacity > 0 && !ids))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_tokenize: n is required; text and ids must be set when "
                                  "their sizes are non-zero");
    llmrt_error err = {0};
    int32_t *out = NULL;
    int64_t cnt = 0;
    if (llmrt_tokenizer_encode(m->tokenizer, text ? text : "", len, add_special, parse_special,
                               &out, &cnt, &err) != LLMRT_OK)
        return llmrt_err_publish(&err);
    llmrt_status s = LLMRT_OK;
    if (cnt > INT32_MAX) {
        s = llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_tokenize: more than 2^31 tokens");
    } else {
        *n = (int32_t)cnt;
        if (cnt > capacity)
            s = llmrt_err_set_last(LLMRT_ERR_BUFFER_TOO_SMALL,
                                   "llmrt_tokenize: %lld tokens do not fit in %d", (long long)cnt,
                                   capacity);
        else if (cnt)
            memcpy(ids, out, (size_t)cnt * sizeof *ids);
    }
    free(out);
    return s;
}

llmrt_status llmrt_detokenize(const llmrt_model *model, const int32_t *ids, int32_t n_ids,
                              bool skip_special, char *text, size_t capacity, size_t *len) {
    const llmrt_rank_model *m = model ? model->rank : NULL;
    LLMRT_TRY(need_tokenizer(m, "llmrt_detokenize"));
    if (!len || n_ids < 0 || (n_ids && !ids) || (capacity && !text))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG, "llmrt_detokenize: bad arguments");
    llmrt_error err = {0};
    char *out = NULL;
    size_t cnt = 0;
    if (llmrt_tokenizer_decode(m->tokenizer, ids, n_ids, skip_special, &out, &cnt, &err) !=
        LLMRT_OK)
        return llmrt_err_publish(&err);
    *len = cnt;
    llmrt_status s = LLMRT_OK;
    if (cnt >= capacity) { /* the text and its NUL must fit, as for every size-protocol call */
        s = llmrt_err_set_last(LLMRT_ERR_BUFFER_TOO_SMALL,
                               "llmrt_detokenize: %zu bytes and a NUL do not fit in %zu", cnt,
                               capacity);
    } else {
        memcpy(text, out, cnt);
        text[cnt] = 0;
    }
    free(out);
    return s;
}

const char *llmrt_token_piece(const llmrt_model *model, int32_t id) {
    const llmrt_rank_model *m = model ? model->rank : NULL;
    if (!m || !m->tokenizer || id < 0 || id >= llmrt_tokenizer_vocab_size(m->tokenizer))
        return NULL;
    return llmrt_tokenizer_piece(m->tokenizer, id);
}

/* Copies a render into the caller's buffer under the size protocol and frees it. */
static llmrt_status deliver_render(llmrt_chat_rendered *r, const char *fn, char *text,
                                   size_t capacity, size_t *len) {
    *len = r->len;
    llmrt_status s = LLMRT_OK;
    if (r->len >= capacity) {
        s = llmrt_err_set_last(LLMRT_ERR_BUFFER_TOO_SMALL, "%s: %zu bytes needed", fn, r->len + 1);
    } else {
        memcpy(text, r->text, r->len);
        text[r->len] = 0;
    }
    llmrt_chat_rendered_free(r);
    return s;
}

llmrt_status llmrt_api_chat_render(const llmrt_tokenizer *tk, const char *fn,
                                   const char *template_name, const llmrt_chat_message *messages,
                                   int32_t n_messages, const char *messages_json,
                                   const char *tools_json, bool add_generation_prompt, char *text,
                                   size_t capacity, size_t *len) {
    llmrt_error err = {0};
    llmrt_chat_rendered r = {0};
    llmrt_status st = messages_json
                          ? llmrt_chat_render_json(tk, template_name, messages_json, tools_json,
                                                   add_generation_prompt, &r, &err)
                          : llmrt_chat_render_model(tk, template_name, messages, n_messages,
                                                    add_generation_prompt, &r, &err);
    if (st != LLMRT_OK) return llmrt_err_publish(&err); /* its messages name the field */
    return deliver_render(&r, fn, text, capacity, len);
}

llmrt_status llmrt_chat_apply_template(const llmrt_model *model, const char *template_name,
                                       const llmrt_chat_message *messages, int32_t n_messages,
                                       bool add_generation_prompt, char *text, size_t capacity,
                                       size_t *len) {
    const llmrt_rank_model *m = model ? model->rank : NULL;
    if (!m || !len || (capacity && !text))
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_chat_apply_template: bad arguments");
    if (!m->tokenizer)
        return llmrt_err_set_last(LLMRT_ERR_UNSUPPORTED, "%s: the model has no tokenizer",
                                  m->source_path);
    return llmrt_api_chat_render(m->tokenizer, "llmrt_chat_apply_template", template_name, messages,
                                 n_messages, NULL, NULL, add_generation_prompt, text, capacity,
                                 len);
}

llmrt_status llmrt_chat_apply_template_json(const llmrt_model *model, const char *template_name,
                                            const char *messages_json, const char *tools_json,
                                            bool add_generation_prompt, char *text, size_t capacity,
                                            size_t *len) {
    const llmrt_rank_model *m = model ? model->rank : NULL;
    if (!m || !len || (capacity && !text) || !messages_json)
        return llmrt_err_set_last(LLMRT_ERR_INVALID_ARG,
                                  "llmrt_chat_apply_template_json: bad arguments (model, "
                                  "messages_json and len are required)");
    if (!m->tokenizer)
        return llmrt_err_set_last(LLMRT_ERR_UNSUPPORTED, "%s: the model has no tokenizer",
                                  m->source_path);
    return llmrt_api_chat_render(m->tokenizer, "llmrt_chat_apply_template_json", template_name,
                                 NULL, 0, messages_json, tools_json, add_generation_prompt, text,
                                 capacity, len);
}

bool llmrt_chat_template_takes_parts(const llmrt_model *model, const char *template_name) {
    const llmrt_rank_model *m = model ? model->rank : NULL;
    return m && m->tokenizer && llmrt_chat_template_iterates_content(m->tokenizer, template_name);
}

llmrt_sampling_params llmrt_model_sampling_defaults(const llmrt_model *model) {
    const llmrt_rank_model *m = model ? model->rank : NULL;
    return m ? m->gen_defaults : llmrt_sampling_default_params();
}
