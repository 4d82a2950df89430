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

/* The variables HF's apply_chat_template passes (render_jinja_template + special_tokens_map)
 * around `messages` and `tools` (both taken over by the object; tools NULL = None). */
static cJSON *make_vars(const llmrt_tokenizer *tk, cJSON *messages, cJSON *tools, bool agp) {
    cJSON *v = cJSON_CreateObject();
    if (!v) {
        cJSON_Delete(messages), cJSON_Delete(tools);
        return NULL;
    }
    cJSON_AddItemToObject(v, "messages", messages);
    if (tools)
        cJSON_AddItemToObject(v, "tools", tools);
    else if (!cJSON_AddNullToObject(v, "tools"))
        goto oom;
    if (!cJSON_AddNullToObject(v, "documents") ||
        !cJSON_AddBoolToObject(v, "add_generation_prompt", agp))
        goto oom;
    const char *names[] = {"bos_token", "eos_token", "pad_token"};
    const char *vals[] = {token_str(tk, llmrt_tokenizer_bos(tk)),
                          token_str(tk, llmrt_tokenizer_eos(tk)),
                          token_str(tk, llmrt_tokenizer_pad(tk))};
    for (int k = 0; k < 3; k++)
        if (vals[k] && !cJSON_AddStringToObject(v, names[k], vals[k])) goto oom;
    return v;
oom:
    cJSON_Delete(v);
    return NULL;
}

/* [{"role", "content"}, ...] of the structured messages (checked non-NULL by the caller). */
static cJSON *messages_to_json(const llmrt_chat_message *msgs, int32_t n) {
    cJSON *list = cJSON_CreateArray();
    for (int32_t i = 0; list && i < n; i++) {
        cJSON *m = cJSON_CreateObject();
        if (!m || !cJSON_AddItemToArray(list, m) ||
            !cJSON_AddStringToObject(m, "role", msgs[i].role) ||
            !cJSON_AddStringToObject(m, "content", msgs[i].content)) {
            if (m && !m->prev) cJSON_Delete(m);
            cJSON_Delete(list);
            return NULL;
        }
    }
    return list;
}

/* The model's parsed template, or the error a chat reports without one. */
static llmrt_status model_template(const llmrt_tokenizer *tk, const llmrt_jinja_template **tpl,
                                   llmrt_error *err) {
    llmrt_status st = llmrt_tokenizer_chat_jinja(tk, tpl, err);
    if (st == LLMRT_ERR_NOT_FOUND)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "no chat template (the tokenizer_config.json has no chat_template, or the "
                         "GGUF no tokenizer.chat_template); " FAMILY_HINT);
    return st;
}

/* Runs the template on vars (freed here) into out. */
static llmrt_status render_vars(const llmrt_jinja_template *tpl, cJSON *vars,
                                llmrt_chat_rendered *out, llmrt_error *err) {
    if (!vars) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "chat render: out of memory");
    llmrt_jinja_output o;
    llmrt_jinja_params p = llmrt_jinja_default_params();
    llmrt_status st = llmrt_jinja_render(tpl, vars, &p, &o, err);
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
    out->text = o.text;
    out->len = o.len;
    free(o.spans);
    return LLMRT_OK;
}

llmrt_status llmrt_chat_render_json_vars(const llmrt_tokenizer *tk, cJSON *messages, cJSON *tools,
                                         bool add_generation_prompt, llmrt_chat_rendered *out,
                                         llmrt_error *err) {
    const llmrt_jinja_template *tpl = NULL;
    llmrt_status st = model_template(tk, &tpl, err);
    if (st != LLMRT_OK) {
        cJSON_Delete(messages), cJSON_Delete(tools);
        return st;
    }
    return render_vars(tpl, make_vars(tk, messages, tools, add_generation_prompt), out, err);
}

static llmrt_status render_family(const llmrt_tokenizer *tk, const char *family_name,
                                  const llmrt_chat_message *msgs, int32_t n_msgs, bool agp,
                                  llmrt_chat_rendered *out, llmrt_error *err) {
    llmrt_chat_family fam = llmrt_chat_family_from_name(family_name);
    if (fam == LLMRT_CHAT_UNKNOWN)
        return llmrt_err(err, LLMRT_ERR_UNSUPPORTED,
                         "chat template \"%s\" is unknown; " FAMILY_HINT, family_name);
    int32_t b = llmrt_tokenizer_bos(tk), e = llmrt_tokenizer_eos(tk);
    return llmrt_chat_render(fam, msgs, n_msgs, agp, b >= 0 ? llmrt_tokenizer_piece(tk, b) : "",
                             e >= 0 ? llmrt_tokenizer_piece(tk, e) : "", out, err);
}

llmrt_status llmrt_chat_render_model(const llmrt_tokenizer *tk, const char *family_name,
                                     const llmrt_chat_message *msgs, int32_t n_msgs,
                                     bool add_generation_prompt, llmrt_chat_rendered *out,
                                     llmrt_error *err) {
    if (out == NULL) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: out is NULL");
    memset(out, 0, sizeof *out);
    if (family_name)
        return render_family(tk, family_name, msgs, n_msgs, add_generation_prompt, out, err);
    const llmrt_jinja_template *tpl = NULL;
    LLMRT_TRY(model_template(tk, &tpl, err));
    if (n_msgs <= 0 || msgs == NULL)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: no messages (n_messages = %d)",
                         n_msgs);
    for (int32_t i = 0; i < n_msgs; i++) {
        if (msgs[i].role == NULL)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat message %d: role is NULL", i);
        if (msgs[i].content == NULL)
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat message %d (%.40s): content is NULL",
                             i, msgs[i].role);
    }
    cJSON *list = messages_to_json(msgs, n_msgs);
    if (!list) return llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "chat render: out of memory");
    return render_vars(tpl, make_vars(tk, list, NULL, add_generation_prompt), out, err);
}
