/* Conversations given as OpenAI/HF JSON (messages with content-part lists, tool calls, tool
 * results; a tools list): parsed with limits, checked, and handed to the model's template as
 * they are, or narrowed to role + text for a built-in family renderer. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "tokenizer.h"

#define MAX_JSON_BYTES ((size_t)64 << 20)
#define MAX_DEPTH      64
#define MAX_MESSAGES   65536

static int depth_of(const cJSON *v, int limit) {
    int d = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        int cd = depth_of(c, limit);
        if (cd > d) d = cd;
        if (d >= limit) break;
    }
    return d + 1;
}

/* Parses `what` ("messages" or "tools") from text with the size and nesting limits. */
static llmrt_status parse_limited(const char *text, const char *what, cJSON **out,
                                  llmrt_error *err) {
    *out = NULL;
    size_t n = strnlen(text, MAX_JSON_BYTES + 1);
    if (n > MAX_JSON_BYTES)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat %s: JSON longer than %zu bytes", what,
                         MAX_JSON_BYTES);
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, n, &end, false);
    if (!v) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat %s: invalid JSON near byte %zu", what,
                         at);
    }
    for (const char *p = end; p && *p; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(v);
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "chat %s: trailing bytes after the JSON at "
                             "byte %zu",
                             what, (size_t)(p - text));
        }
    if (depth_of(v, MAX_DEPTH + 1) > MAX_DEPTH) {
        cJSON_Delete(v);
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat %s: JSON nested deeper than %d", what,
                         MAX_DEPTH);
    }
    *out = v;
    return LLMRT_OK;
}

static llmrt_status check_messages(const cJSON *msgs, llmrt_error *err) {
    if (!cJSON_IsArray(msgs))
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat messages: must be a JSON array");
    int n = cJSON_GetArraySize(msgs);
    if (n < 1 || n > MAX_MESSAGES)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "chat messages: must hold 1 to %d messages, "
                         "got %d",
                         MAX_MESSAGES, n);
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m))
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "messages[%d]: must be an object", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role))
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "messages[%d].role: must be a string", i);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (content && !cJSON_IsString(content) && !cJSON_IsArray(content) &&
            !cJSON_IsNull(content))
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                             "messages[%d].content: must be a string, a list of parts or null", i);
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
        if (calls && !cJSON_IsArray(calls) && !cJSON_IsNull(calls))
            return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "messages[%d].tool_calls: must be a list",
                             i);
    }
    return LLMRT_OK;
}

/* A message's text for a family renderer: a string, or text parts joined with "\n" (vLLM's
 * "string" content format). NULL with *err set when it holds anything else. */
static char *family_text(const cJSON *m, int i, llmrt_error *err) {
    for (const cJSON *f = m->child; f; f = f->next)
        if (strcmp(f->string, "role") && strcmp(f->string, "content")) {
            llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                      "messages[%d].%.40s: a built-in family template renders only role and text "
                      "content; use the model's own chat template",
                      i, f->string);
            return NULL;
        }
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (cJSON_IsString(content)) return strdup(content->valuestring);
    if (!cJSON_IsArray(content)) {
        llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                  "messages[%d].content: a built-in family template "
                  "needs a string or text parts",
                  i);
        return NULL;
    }
    size_t total = 1;
    int j = 0;
    for (const cJSON *p = content->child; p; p = p->next, j++) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsObject(p) || !cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
            !cJSON_IsString(text)) {
            llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                      "messages[%d].content[%d]: a built-in family "
                      "template takes only {\"type\": \"text\", \"text\": STRING} parts",
                      i, j);
            return NULL;
        }
        total += strlen(text->valuestring) + 1;
    }
    char *buf = malloc(total);
    if (!buf) {
        llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "chat render: out of memory");
        return NULL;
    }
    size_t len = 0;
    for (const cJSON *p = content->child; p; p = p->next) {
        const char *t = cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring;
        if (p != content->child) buf[len++] = '\n';
        memcpy(buf + len, t, strlen(t));
        len += strlen(t);
    }
    buf[len] = 0;
    return buf;
}

static llmrt_status render_family_json(const llmrt_tokenizer *tk, const char *family_name,
                                       const cJSON *msgs, bool has_tools, bool agp,
                                       llmrt_chat_rendered *out, llmrt_error *err) {
    if (has_tools)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG,
                         "tools: the built-in family template \"%s\" "
                         "cannot render tools; use the model's own chat template",
                         family_name);
    int n = cJSON_GetArraySize(msgs);
    llmrt_chat_message *flat = calloc((size_t)n, sizeof *flat);
    char **texts = calloc((size_t)n, sizeof *texts);
    llmrt_status st = flat && texts
                          ? LLMRT_OK
                          : llmrt_err(err, LLMRT_ERR_OUT_OF_MEMORY, "chat render: out of memory");
    int i = 0;
    for (const cJSON *m = msgs->child; st == LLMRT_OK && m; m = m->next, i++) {
        texts[i] = family_text(m, i, err);
        if (!texts[i]) st = err ? err->status : LLMRT_ERR_INVALID_ARG;
        flat[i] = (llmrt_chat_message){cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring,
                                       texts[i]};
    }
    if (st == LLMRT_OK) st = llmrt_chat_render_model(tk, family_name, flat, n, agp, out, err);
    for (int k = 0; texts && k < n; k++)
        free(texts[k]);
    free(texts);
    free(flat);
    return st;
}

llmrt_status llmrt_chat_render_json(const llmrt_tokenizer *tk, const char *family_name,
                                    const char *messages_json, const char *tools_json,
                                    bool add_generation_prompt, llmrt_chat_rendered *out,
                                    llmrt_error *err) {
    if (out == NULL) return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: out is NULL");
    memset(out, 0, sizeof *out);
    if (messages_json == NULL)
        return llmrt_err(err, LLMRT_ERR_INVALID_ARG, "chat render: messages_json is NULL");
    cJSON *msgs = NULL, *tools = NULL;
    LLMRT_TRY(parse_limited(messages_json, "messages", &msgs, err));
    llmrt_status st = check_messages(msgs, err);
    if (st == LLMRT_OK && tools_json) st = parse_limited(tools_json, "tools", &tools, err);
    if (st == LLMRT_OK && cJSON_IsNull(tools)) cJSON_Delete(tools), tools = NULL;
    if (st == LLMRT_OK && tools && !cJSON_IsArray(tools))
        st = llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tools: must be a JSON array (or null)");
    for (int i = 0; st == LLMRT_OK && tools && i < cJSON_GetArraySize(tools); i++)
        if (!cJSON_IsObject(cJSON_GetArrayItem(tools, i)))
            st = llmrt_err(err, LLMRT_ERR_INVALID_ARG, "tools[%d]: must be an object", i);
    if (st != LLMRT_OK) {
        cJSON_Delete(msgs), cJSON_Delete(tools);
        return st;
    }
    if (family_name) {
        st = render_family_json(tk, family_name, msgs, tools != NULL, add_generation_prompt, out,
                                err);
        cJSON_Delete(msgs), cJSON_Delete(tools);
        return st;
    }
    return llmrt_chat_render_json_vars(tk, msgs, tools, add_generation_prompt, out, err);
}
