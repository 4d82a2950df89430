/* A conversation rendered for a model: the model's own chat template through the Jinja
 * interpreter (template/jinja.h), or a built-in family renderer when one is named. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "template/jinja.h"
#include "tokenizer.h"

#define FAMILY_HINT "choose one with --chat-template chatml|llama2|llama3|mistral"

static const char *token_str(const llmrt_tokenizer *tk, int32_t id) {
    return id >= 0 ? llmrt_tokenizer_piece(tk, id) : NULL;
}

/* The variables HF's apply_chat_template passes (render_jinja_template + special_tokens_map). */
static cJSON *make_vars(const llmrt_tokenizer *tk, const llmrt_chat_message *msgs, int32_t n,
                        bool agp) {
    cJSON *v = cJSON_CreateObject(), *list = cJSON_CreateArray();
    if (!v || !list) {
        cJSON_Delete(v), cJSON_Delete(list);
        return NULL;
    }
    cJSON_AddItemToObject(v, "messages", list);
    for (int32_t i = 0; i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        if (!m) goto oom;
        cJSON_AddItemToArray(list, m);
        if (!cJSON_AddStringToObject(m, "role", msgs[i].role) ||
            !cJSON_AddStringToObject(m, "content", msgs[i].content))
            goto oom;
    }
    if (!cJSON_AddNullToObject(v, "tools") || !cJSON_AddNullToObject(v, "documents") ||
        !cJSON_AddBoolToObject(v, "add_generation_prompt", agp))
        goto oom;
    const char *names[] = {"bos_token", "eos_token", "pad_token"};
    const char *vals[]  = {token_str(tk, llmrt_tokenizer_bos(tk)), token_str(tk, llmrt_tokenizer_eos(tk)),
                           token_str(tk, llmrt_tokenizer_pad(tk))};
    for (int k = 0; k < 3; k++)
        if (vals[k] && !cJSON_AddStringToObject(v, names[k], vals[k])) goto oom;
    return v;
oom:
    cJSON_Delete(v);
    return NULL;
}

llmrt_status llmrt_chat_render_model(const llmrt_tokenizer *tk, const char *family_name,
                                     const llmrt_chat_message *msgs, int32_t n_msgs,
                                     bool add_generation_prompt, llmrt_chat_rendered *out,
                                     llmrt_error *err) {
    if (out == NULL) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: out is NULL");
    memset(out, 0, sizeof *out);
    if (family_name) {
        llmrt_chat_family fam = llmrt_chat_family_from_name(family_name);
        if (fam == LLMRT_CHAT_UNKNOWN)
            return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "chat template \"%s\" is unknown; " FAMILY_HINT,
                             family_name);
        int32_t b = llmrt_tokenizer_bos(tk), e = llmrt_tokenizer_eos(tk);
        return llmrt_chat_render(fam, msgs, n_msgs, add_generation_prompt,
                                 b >= 0 ? llmrt_tokenizer_piece(tk, b) : "",
                                 e >= 0 ? llmrt_tokenizer_piece(tk, e) : "", out, err);
    }
    const struct llmrt_jinja_template *tpl = NULL;
    llmrt_status st = llmrt_tokenizer_chat_jinja(tk, &tpl, err);
    if (st == LLMRT_ERR_NOT_FOUND)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED, "the model has no chat template; " FAMILY_HINT);
    if (st != LLMRT_OK) return st;
    if (n_msgs <= 0 || msgs == NULL)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: no messages (n_messages = %d)", n_msgs);
    for (int32_t i = 0; i < n_msgs; i++) {
        if (msgs[i].role == NULL)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat message %d: role is NULL", i);
        if (msgs[i].content == NULL)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat message %d (%.40s): content is NULL", i,
                             msgs[i].role);
    }
    cJSON *vars = make_vars(tk, msgs, n_msgs, add_generation_prompt);
    if (!vars) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "chat render: out of memory");
    llmrt_jinja_output o;
    llmrt_jinja_params p = llmrt_jinja_default_params();
    st = llmrt_jinja_render(tpl, vars, &p, &o, err);
    cJSON_Delete(vars);
    if (st != LLMRT_OK) return st;
    if (o.n_spans > INT32_MAX) {
        llmrt_jinja_output_free(&o);
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: too many content spans");
    }
    /* llmrt_jinja_span and llmrt_chat_span are both [begin, end) byte pairs */
    out->content_spans = malloc((o.n_spans ? o.n_spans : 1) * sizeof *out->content_spans);
    if (!out->content_spans) {
        llmrt_jinja_output_free(&o);
        return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "chat render: out of memory");
    }
    for (size_t k = 0; k < o.n_spans; k++)
        out->content_spans[k] = (llmrt_chat_span){o.spans[k].begin, o.spans[k].end};
    out->n_spans = (int32_t)o.n_spans;
    out->text    = o.text;
    out->len     = o.len;
    free(o.spans);
    return LLMRT_OK;
}
