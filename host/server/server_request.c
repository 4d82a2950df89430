/* llmrt serve: request-body parsing and validation (see server_request.h). */
#include "server_request.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../cli/cli_json.h"

typedef struct perr {
    char  *param, *msg;
    size_t param_size, msg_size;
} perr;

static int fail(perr *e, const char *param, const char *fmt, ...) {
    snprintf(e->param, e->param_size, "%s", param);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, e->msg_size, fmt, ap);
    va_end(ap);
    return -1;
}

static char *dup_n(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* The fields each endpoint accepts; anything else is a 400 naming it. */
static const char *const chat_fields[] = {
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k",
    "min_p", "presence_penalty", "frequency_penalty", "repetition_penalty", "seed", "stop", "n",
    "logprobs", "top_logprobs", "ignore_eos", "min_tokens", "stream", "stream_options", "user",
    "tools", "tool_choice", "logit_bias", NULL};
static const char *const completion_fields[] = {
    "model", "prompt", "max_tokens", "temperature", "top_p", "top_k", "min_p", "presence_penalty",
    "frequency_penalty", "repetition_penalty", "seed", "stop", "n", "logprobs", "ignore_eos",
    "min_tokens", "stream", "stream_options", "user", "logit_bias", NULL};
static const char *const tokenize_fields[] = {
    "model", "prompt", "messages", "add_special_tokens", "add_generation_prompt",
    "return_token_strs", "tools", NULL};
static const char *const detokenize_fields[] = {"model", "tokens", NULL};
static const char *const load_lora_fields[]   = {"lora_name", "lora_path", NULL};
static const char *const unload_lora_fields[] = {"lora_name", "lora_int_id", NULL};

static int get_int(perr *e, const cJSON *v, const char *name, double lo, double hi, int64_t *out,
                   bool *has) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || floor(v->valuedouble) != v->valuedouble)
        return fail(e, name, "'%s' must be an integer", name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return fail(e, name, "'%s' must be in [%.0f, %.0f], got %.0f", name, lo, hi, v->valuedouble);
    *out = (int64_t)v->valuedouble;
    if (has) *has = true;
    return 0;
}

static int get_bool(perr *e, const cJSON *v, const char *name, bool *out) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v)) return fail(e, name, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* A string that is valid UTF-8 with no NUL (cJSON strings end at the first NUL). */
static int get_text(perr *e, const cJSON *v, const char *name, char **out, size_t *len) {
    if (!cJSON_IsString(v) || !v->valuestring) return fail(e, name, "'%s' must be a string", name);
    size_t n = strlen(v->valuestring);
    if (!cli_utf8_valid(v->valuestring, n)) return fail(e, name, "'%s' is not valid UTF-8", name);
    if (!(*out = dup_n(v->valuestring, n))) return fail(e, name, "out of memory");
    if (len) *len = n;
    return 0;
}

static int get_ids(perr *e, const cJSON *v, const char *name, int32_t **out, int32_t *n_out) {
    int32_t n = cJSON_GetArraySize(v);
    if (n < 1 || n > (1 << 20)) return fail(e, name, "'%s' must hold 1 to 1048576 token ids", name);
    int32_t *ids = malloc((size_t)n * sizeof *ids);
    if (!ids) return fail(e, name, "out of memory");
    int32_t i = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        int64_t x;
        if (!cJSON_IsNumber(c) || get_int(e, c, name, 0, 2147483647.0, &x, NULL) < 0) {
            free(ids);
            return fail(e, name, "'%s' must be a list of non-negative integer token ids", name);
        }
        ids[i] = (int32_t)x;
    }
    *out   = ids;
    *n_out = n;
    return 0;
}

/* A string field of at most max_len bytes, valid UTF-8 (msg names it). */
static int check_string(perr *e, const cJSON *v, const char *name, size_t max_len) {
    if (!cJSON_IsString(v) || !v->valuestring) return fail(e, name, "'%s' must be a string", name);
    size_t n = strlen(v->valuestring);
    if (n > max_len) return fail(e, name, "'%s' must be at most %zu bytes", name, max_len);
    if (!cli_utf8_valid(v->valuestring, n)) return fail(e, name, "'%s' is not valid UTF-8", name);
    return 0;
}

/* Refuses any key of object v outside allowed[], naming "<prefix>.<key>". */
static int only_keys(perr *e, const cJSON *v, const char *prefix, const char *const *allowed) {
    for (const cJSON *f = v->child; f; f = f->next) {
        bool ok = false;
        for (int k = 0; allowed[k] && !ok; k++) ok = !strcmp(f->string, allowed[k]);
        if (!ok) {
            char name[160];
            snprintf(name, sizeof name, "%s.%.40s", prefix, f->string);
            return fail(e, name, "'%s' is not supported", name);
        }
    }
    return 0;
}

/* content parts: [{type: "text", text: "..."}], checked; *flat = the texts joined with "\n"
 * (vLLM's "string" content format for templates that do not iterate over parts). */
static int parse_parts(perr *e, const cJSON *content, int32_t i, char **flat) {
    char   name[96];
    size_t len = 0, cap = 64;
    char  *buf = malloc(cap);
    if (!buf) return fail(e, "messages", "out of memory");
    buf[0]    = 0;
    int32_t j = 0;
    for (const cJSON *p = content->child; p; p = p->next, j++) {
        snprintf(name, sizeof name, "messages[%d].content[%d]", i, j);
        const cJSON *type = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "type") : NULL;
        const cJSON *text = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, "text") : NULL;
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text")) {
            free(buf);
            snprintf(name, sizeof name, "messages[%d].content[%d].type", i, j);
            return fail(e, name, "'%s' must be \"text\" (only text parts are supported)", name);
        }
        if (cJSON_GetArraySize(p) != 2 || !cJSON_IsString(text)) {
            free(buf);
            return fail(e, name, "'%s' must be {\"type\": \"text\", \"text\": STRING}", name);
        }
        size_t n_text = strlen(text->valuestring);
        if (!cli_utf8_valid(text->valuestring, n_text)) {
            free(buf);
            return fail(e, name, "'%s' is not valid UTF-8", name);
        }
        size_t need = len + (j > 0) + n_text + 1;
        if (need > cap) {
            while (need > cap) cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return fail(e, name, "out of memory");
            }
            buf = nb;
        }
        if (j > 0) buf[len++] = '\n';
        memcpy(buf + len, text->valuestring, n_text + 1);
        len += n_text;
    }
    *flat = buf;
    return 0;
}

/* tool_calls of an assistant message: [{id, type: "function", function: {name, arguments}}];
 * arguments (a JSON object as a string, OpenAI's form) becomes the object itself in `out`,
 * as vLLM hands it to templates (they print tool_call.arguments | tojson). */
static int parse_tool_calls(perr *e, const cJSON *v, int32_t i, cJSON *out) {
    char name[128];
    snprintf(name, sizeof name, "messages[%d].tool_calls", i);
    if (!cJSON_IsArray(v)) return fail(e, name, "'%s' must be a list", name);
    int32_t n = cJSON_GetArraySize(v);
    if (n < 1 || n > 128) return fail(e, name, "'%s' must hold 1 to 128 tool calls", name);
    cJSON *calls = cJSON_AddArrayToObject(out, "tool_calls");
    if (!calls) return fail(e, name, "out of memory");
    static const char *const call_keys[] = {"id", "type", "function", NULL};
    static const char *const fn_keys[]   = {"name", "arguments", NULL};
    int32_t j = 0;
    for (const cJSON *c = v->child; c; c = c->next, j++) {
        char at[160], field[200];
        snprintf(at, sizeof at, "messages[%d].tool_calls[%d]", i, j);
        if (!cJSON_IsObject(c)) return fail(e, at, "'%s' must be an object", at);
        if (only_keys(e, c, at, call_keys) < 0) return -1;
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(c, "type");
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
        snprintf(field, sizeof field, "%s.id", at);
        if (check_string(e, id, field, 256) < 0) return -1;
        snprintf(field, sizeof field, "%s.type", at);
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function"))
            return fail(e, field, "'%s' must be \"function\"", field);
        snprintf(field, sizeof field, "%s.function", at);
        if (!cJSON_IsObject(fn)) return fail(e, field, "'%s' must be an object", field);
        if (only_keys(e, fn, field, fn_keys) < 0) return -1;
        const cJSON *fname = cJSON_GetObjectItemCaseSensitive(fn, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(fn, "arguments");
        snprintf(field, sizeof field, "%s.function.name", at);
        if (check_string(e, fname, field, 256) < 0) return -1;
        snprintf(field, sizeof field, "%s.function.arguments", at);
        if (check_string(e, args, field, (size_t)1 << 24) < 0) return -1;
        cJSON *parsed = cJSON_Parse(args->valuestring);
        if (!cJSON_IsObject(parsed)) {
            cJSON_Delete(parsed);
            return fail(e, field, "'%s' must be a JSON object encoded as a string", field);
        }
        cJSON *call = cJSON_CreateObject(), *f = cJSON_CreateObject();
        if (!call || !f || !cJSON_AddItemToArray(calls, call)) {
            cJSON_Delete(call), cJSON_Delete(f), cJSON_Delete(parsed);
            return fail(e, at, "out of memory");
        }
        cJSON_AddStringToObject(call, "id", id->valuestring);
        cJSON_AddStringToObject(call, "type", "function");
        cJSON_AddItemToObject(call, "function", f);
        cJSON_AddStringToObject(f, "name", fname->valuestring);
        cJSON_AddItemToObject(f, "arguments", parsed);
    }
    return 0;
}

static const char *const message_keys[] = {"role", "content", "name", "tool_calls", "tool_call_id",
                                           NULL};

/* One message into out (the template's form) and its role and flat text into r. */
static int parse_message(perr *e, const cJSON *m, int32_t i, srv_request *r, cJSON *out,
                         cJSON *out_flat) {
    char name[96];
    snprintf(name, sizeof name, "messages[%d]", i);
    if (!cJSON_IsObject(m)) return fail(e, name, "'%s' must be an object", name);
    if (only_keys(e, m, name, message_keys) < 0) return -1;
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
    snprintf(name, sizeof name, "messages[%d].role", i);
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};
    bool known = false;
    for (int k = 0; k < 5 && cJSON_IsString(role); k++)
        known |= !strcmp(role->valuestring, roles[k]);
    if (!known)
        return fail(e, name, "'%s' must be \"system\", \"developer\", \"user\", \"assistant\" or "
                             "\"tool\"", name);
    const char *rs = strcmp(role->valuestring, "developer") ? role->valuestring : "system";
    bool assistant = !strcmp(rs, "assistant"), tool = !strcmp(rs, "tool");
    if (!(r->roles[i] = strdup(rs))) return fail(e, name, "out of memory");
    cJSON_AddStringToObject(out, "role", rs);
    cJSON_AddStringToObject(out_flat, "role", rs);

    const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    const cJSON *calls   = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");
    bool has_calls = calls != NULL; /* null too: the schema allows no null here */
    snprintf(name, sizeof name, "messages[%d].content", i);
    if (cJSON_IsString(content)) {
        if (get_text(e, content, name, &r->contents[i], NULL) < 0) return -1;
        cJSON_AddStringToObject(out, "content", r->contents[i]);
        cJSON_AddStringToObject(out_flat, "content", r->contents[i]);
    } else if (cJSON_IsArray(content)) {
        if (parse_parts(e, content, i, &r->contents[i]) < 0) return -1;
        cJSON_AddItemToObject(out, "content", cJSON_Duplicate(content, true));
        cJSON_AddStringToObject(out_flat, "content", r->contents[i]);
        r->has_content_parts = true;
    } else if ((!content || cJSON_IsNull(content)) && assistant && has_calls) {
        if (!(r->contents[i] = strdup(""))) return fail(e, name, "out of memory");
        cJSON_AddNullToObject(out, "content");
        cJSON_AddNullToObject(out_flat, "content");
    } else {
        return fail(e, name, "'%s' must be a string or a list of text parts (null only for an "
                             "assistant message with tool_calls)", name);
    }
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(m, "name");
    if (nm && !cJSON_IsNull(nm)) {
        snprintf(name, sizeof name, "messages[%d].name", i);
        if (check_string(e, nm, name, 256) < 0) return -1;
        cJSON_AddStringToObject(out, "name", nm->valuestring);
        cJSON_AddStringToObject(out_flat, "name", nm->valuestring);
    }
    if (has_calls) {
        snprintf(name, sizeof name, "messages[%d].tool_calls", i);
        if (!assistant) return fail(e, name, "'%s' is only allowed on assistant messages", name);
        if (parse_tool_calls(e, calls, i, out) < 0) return -1;
        const cJSON *parsed = cJSON_GetObjectItemCaseSensitive(out, "tool_calls");
        cJSON_AddItemToObject(out_flat, "tool_calls", cJSON_Duplicate(parsed, true));
    }
    const cJSON *call_id = cJSON_GetObjectItemCaseSensitive(m, "tool_call_id");
    snprintf(name, sizeof name, "messages[%d].tool_call_id", i);
    if (call_id && !tool) return fail(e, name, "'%s' is only allowed on tool messages", name);
    if (call_id) {
        if (check_string(e, call_id, name, 256) < 0) return -1;
        cJSON_AddStringToObject(out, "tool_call_id", call_id->valuestring);
        cJSON_AddStringToObject(out_flat, "tool_call_id", call_id->valuestring);
    } else if (tool) {
        return fail(e, name, "'%s' (a string) is required on tool messages", name);
    }
    return 0;
}

static int parse_messages(perr *e, const cJSON *v, srv_request *r) {
    if (!cJSON_IsArray(v)) return fail(e, "messages", "'messages' must be a list");
    int32_t n = cJSON_GetArraySize(v);
    if (n < 1 || n > 4096) return fail(e, "messages", "'messages' must hold 1 to 4096 messages");
    r->roles    = calloc((size_t)n, sizeof *r->roles);
    r->contents = calloc((size_t)n, sizeof *r->contents);
    cJSON *list = cJSON_CreateArray(), *flat = cJSON_CreateArray();
    if (!r->roles || !r->contents || !list || !flat) {
        cJSON_Delete(list), cJSON_Delete(flat);
        return fail(e, "messages", "out of memory");
    }
    r->n_messages = n;
    int32_t i     = 0;
    int     rc    = 0;
    for (const cJSON *m = v->child; m && rc == 0; m = m->next, i++) {
        cJSON *o = cJSON_CreateObject(), *of = cJSON_CreateObject();
        if (!o || !of || !cJSON_AddItemToArray(list, o) || !cJSON_AddItemToArray(flat, of)) {
            if (o && !o->prev) cJSON_Delete(o);
            if (of && !of->prev) cJSON_Delete(of);
            rc = fail(e, "messages", "out of memory");
            break;
        }
        rc = parse_message(e, m, i, r, o, of);
    }
    if (rc == 0) {
        r->messages_json      = cJSON_PrintUnformatted(list);
        r->messages_flat_json = cJSON_PrintUnformatted(flat);
        if (!r->messages_json || !r->messages_flat_json) rc = fail(e, "messages", "out of memory");
    }
    cJSON_Delete(list), cJSON_Delete(flat);
    return rc;
}

/* tools: [{type: "function", function: {name, description?, parameters?, strict?}}], 1..128;
 * kept as JSON text for the template. */
static int parse_tools(perr *e, const cJSON *v, srv_request *r) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsArray(v)) return fail(e, "tools", "'tools' must be a list of function tools");
    int32_t n = cJSON_GetArraySize(v);
    if (n < 1 || n > 128) return fail(e, "tools", "'tools' must hold 1 to 128 tools");
    static const char *const tool_keys[] = {"type", "function", NULL};
    static const char *const fn_keys[]   = {"name", "description", "parameters", "strict", NULL};
    int32_t i = 0;
    for (const cJSON *t = v->child; t; t = t->next, i++) {
        char at[64], field[128];
        snprintf(at, sizeof at, "tools[%d]", i);
        if (!cJSON_IsObject(t)) return fail(e, at, "'%s' must be an object", at);
        if (only_keys(e, t, at, tool_keys) < 0) return -1;
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(t, "type");
        const cJSON *fn   = cJSON_GetObjectItemCaseSensitive(t, "function");
        snprintf(field, sizeof field, "%s.type", at);
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "function"))
            return fail(e, field, "'%s' must be \"function\"", field);
        snprintf(field, sizeof field, "%s.function", at);
        if (!cJSON_IsObject(fn)) return fail(e, field, "'%s' must be an object", field);
        if (only_keys(e, fn, field, fn_keys) < 0) return -1;
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        snprintf(field, sizeof field, "%s.function.name", at);
        if (check_string(e, name, field, 64) < 0) return -1;
        bool ok = name->valuestring[0] != 0;
        for (const char *c = name->valuestring; *c && ok; c++)
            ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                 *c == '_' || *c == '-';
        if (!ok) return fail(e, field, "'%s' must be 1 to 64 of a-z, A-Z, 0-9, _ and -", field);
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(fn, "description");
        snprintf(field, sizeof field, "%s.function.description", at);
        if (d && !cJSON_IsNull(d) && check_string(e, d, field, (size_t)1 << 20) < 0) return -1;
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        snprintf(field, sizeof field, "%s.function.parameters", at);
        if (p && !cJSON_IsNull(p) && !cJSON_IsObject(p))
            return fail(e, field, "'%s' must be a JSON Schema object", field);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(fn, "strict");
        snprintf(field, sizeof field, "%s.function.strict", at);
        if (st && !cJSON_IsNull(st) && !cJSON_IsBool(st))
            return fail(e, field, "'%s' must be a boolean", field);
    }
    if (!(r->tools_json = cJSON_PrintUnformatted(v))) return fail(e, "tools", "out of memory");
    return 0;
}

/* tool_choice: "none" or "auto" (the template sees the tools either way, and whatever the model
 * writes comes back as text content: there is no tool-call parser, as vLLM without
 * --enable-auto-tool-choice). "required" and a named function would need one: refused. */
static int parse_tool_choice(perr *e, const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v) && (!strcmp(v->valuestring, "none") || !strcmp(v->valuestring, "auto")))
        return 0;
    if (cJSON_IsString(v) && !strcmp(v->valuestring, "required"))
        return fail(e, "tool_choice",
                    "'tool_choice' \"required\" is not supported: llmrt serve has no tool-call "
                    "parser (tool calls come back as text content); use \"auto\" or \"none\"");
    if (cJSON_IsObject(v))
        return fail(e, "tool_choice", "'tool_choice' naming a function is not supported: llmrt "
                                      "serve has no tool-call parser (tool calls come back as text "
                                      "content); use \"auto\" or \"none\"");
    return fail(e, "tool_choice", "'tool_choice' must be \"none\" or \"auto\"");
}

static int parse_prompt(perr *e, const cJSON *v, srv_request *r) {
    const char *name = "prompt";
    if (cJSON_IsString(v)) {
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return fail(e, name, "out of memory");
        r->n_prompts = 1;
        return get_text(e, v, name, &r->prompts[0].text, &r->prompts[0].text_len);
    }
    if (!cJSON_IsArray(v) || !v->child)
        return fail(e, name, "'prompt' must be a string, a list of strings, a list of token ids or "
                             "a list of token-id lists (non-empty)");
    if (cJSON_IsNumber(v->child)) { /* one prompt as token ids */
        r->prompts = calloc(1, sizeof *r->prompts);
        if (!r->prompts) return fail(e, name, "out of memory");
        r->n_prompts = 1;
        return get_ids(e, v, name, &r->prompts[0].ids, &r->prompts[0].n_ids);
    }
    int32_t n = cJSON_GetArraySize(v);
    if (n > SRV_MAX_PROMPT) return fail(e, name, "'prompt' may hold %d prompts at most", SRV_MAX_PROMPT);
    r->prompts = calloc((size_t)n, sizeof *r->prompts);
    if (!r->prompts) return fail(e, name, "out of memory");
    r->n_prompts = n;
    int32_t i    = 0;
    for (const cJSON *c = v->child; c; c = c->next, i++) {
        if (cJSON_IsString(c)) {
            if (get_text(e, c, name, &r->prompts[i].text, &r->prompts[i].text_len) < 0) return -1;
        } else if (cJSON_IsArray(c)) {
            if (get_ids(e, c, name, &r->prompts[i].ids, &r->prompts[i].n_ids) < 0) return -1;
        } else {
            return fail(e, name, "'prompt' list items must all be strings or all be token-id lists");
        }
        if ((r->prompts[i].text != NULL) != (r->prompts[0].text != NULL))
            return fail(e, name, "'prompt' list items must all be strings or all be token-id lists");
    }
    return 0;
}

static int parse_stop(perr *e, const cJSON *v, srv_request *r) {
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0]) return fail(e, "stop", "'stop' strings must not be empty");
        if (get_text(e, v, "stop", &r->stop[0], NULL) < 0) return -1;
        r->n_stop = 1;
        return 0;
    }
    if (!cJSON_IsArray(v)) return fail(e, "stop", "'stop' must be a string or a list of strings");
    if (cJSON_GetArraySize(v) > SRV_MAX_STOPS)
        return fail(e, "stop", "'stop' may hold %d strings at most", SRV_MAX_STOPS);
    r->n_stop = 0;
    for (const cJSON *c = v->child; c; c = c->next) {
        if (!cJSON_IsString(c) || !c->valuestring[0])
            return fail(e, "stop", "'stop' must be a list of non-empty strings");
        if (get_text(e, c, "stop", &r->stop[r->n_stop], NULL) < 0) return -1;
        r->n_stop++;
    }
    return 0;
}

/* {"lora_name", "lora_path"} of /v1/load_lora_adapter; {"lora_name", "lora_int_id"} of
 * /v1/unload_lora_adapter (lora_int_id, vLLM's, is accepted and not used). */
static int parse_lora_fields(perr *e, const cJSON *root, srv_kind kind, srv_request *r) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "lora_name");
    if (!cJSON_IsString(name)) return fail(e, "lora_name", "'lora_name' (a string) is required");
    size_t n = strlen(name->valuestring);
    bool   ok = n > 0 && n < 128;
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char ch = (unsigned char)name->valuestring[i];
        ok = ch > ' ' && ch < 0x7f && ch != '"' && ch != '\'' && ch != '\\';
    }
    if (!ok)
        return fail(e, "lora_name", "'lora_name' must be 1 to 127 printable ASCII characters "
                                    "without spaces, quotes or backslashes");
    if (get_text(e, name, "lora_name", &r->lora_name, NULL) < 0) return -1;
    if (kind == SRV_UNLOAD_LORA) {
        int64_t id;
        return get_int(e, cJSON_GetObjectItemCaseSensitive(root, "lora_int_id"), "lora_int_id",
                       -9007199254740991.0, 9007199254740991.0, &id, NULL);
    }
    const cJSON *path = cJSON_GetObjectItemCaseSensitive(root, "lora_path");
    if (!cJSON_IsString(path) || !path->valuestring[0])
        return fail(e, "lora_path", "'lora_path' (a non-empty string) is required");
    if (strlen(path->valuestring) >= 1024)
        return fail(e, "lora_path", "'lora_path' must be shorter than 1024 bytes");
    return get_text(e, path, "lora_path", &r->lora_path, NULL);
}

static int parse_fields(perr *e, const cJSON *root, srv_kind kind, srv_request *r) {
    if (!cJSON_IsObject(root)) return fail(e, "", "the request body must be a JSON object");
    const char *const *allowed = kind == SRV_CHAT          ? chat_fields
                                 : kind == SRV_COMPLETION  ? completion_fields
                                 : kind == SRV_TOKENIZE    ? tokenize_fields
                                 : kind == SRV_LOAD_LORA   ? load_lora_fields
                                 : kind == SRV_UNLOAD_LORA ? unload_lora_fields
                                                           : detokenize_fields;
    /* the one unknown-field policy (request_fields.h): refused, naming the field */
    char field_name[64], why_unknown[256];
    if (req_check_fields(root, false, allowed, field_name, sizeof field_name, why_unknown,
                         sizeof why_unknown) < 0)
        return fail(e, field_name, "%s", why_unknown);
#define FIELD(n) cJSON_GetObjectItemCaseSensitive(root, n)
    const cJSON *v;
    if (kind == SRV_LOAD_LORA || kind == SRV_UNLOAD_LORA)
        return parse_lora_fields(e, root, kind, r);
    if ((v = FIELD("model")) && !cJSON_IsNull(v))
        if (get_text(e, v, "model", &r->model, NULL) < 0) return -1;
    if (kind == SRV_DETOKENIZE) {
        v = FIELD("tokens");
        if (!cJSON_IsArray(v)) return fail(e, "tokens", "'tokens' must be a list of token ids");
        if (!v->child) return 0;
        return get_ids(e, v, "tokens", &r->tokens, &r->n_tokens);
    }
    if (kind == SRV_TOKENIZE) {
        const cJSON *p = FIELD("prompt"), *m = FIELD("messages");
        if (!!p == !!m) return fail(e, "prompt", "give exactly one of 'prompt' or 'messages'");
        if (p) {
            if (!cJSON_IsString(p)) return fail(e, "prompt", "'prompt' must be a string");
            r->prompts = calloc(1, sizeof *r->prompts);
            if (!r->prompts) return fail(e, "prompt", "out of memory");
            r->n_prompts = 1;
            if (get_text(e, p, "prompt", &r->prompts[0].text, &r->prompts[0].text_len) < 0) return -1;
        } else if (parse_messages(e, m, r) < 0) {
            return -1;
        }
        if (FIELD("tools") && !m) return fail(e, "tools", "'tools' needs 'messages'");
        if (parse_tools(e, FIELD("tools"), r) < 0) return -1;
        r->add_special_tokens = !m; /* vLLM: true for a prompt, false for messages */
        v                     = FIELD("add_special_tokens");
        if (v && !cJSON_IsNull(v)) r->has_add_special_tokens = true;
        if (get_bool(e, v, "add_special_tokens", &r->add_special_tokens) < 0) return -1;
        r->add_generation_prompt = true;
        if (get_bool(e, FIELD("add_generation_prompt"), "add_generation_prompt",
                     &r->add_generation_prompt) < 0)
            return -1;
        return get_bool(e, FIELD("return_token_strs"), "return_token_strs", &r->return_token_strs);
    }
    if (kind == SRV_CHAT) {
        if (!FIELD("messages")) return fail(e, "messages", "'messages' is required");
        if (parse_messages(e, FIELD("messages"), r) < 0) return -1;
        if (parse_tools(e, FIELD("tools"), r) < 0) return -1;
        if (parse_tool_choice(e, FIELD("tool_choice")) < 0) return -1;
    } else {
        if (!FIELD("prompt")) return fail(e, "prompt", "'prompt' is required");
        if (parse_prompt(e, FIELD("prompt"), r) < 0) return -1;
    }
    /* the sampling parameters: request_fields.c's table (types, ranges, conversions) */
    req_values *pv = &r->params;
    char        why[300];
    for (int id = 0; id < REQ_N_FIELDS; id++) {
        if (id == REQ_LOGPROBS) continue; /* below: the endpoints differ */
        const char *name = req_fields[id].name;
        if (req_read_json((req_id)id, NULL, FIELD(name), pv, why, sizeof why) < 0)
            return fail(e, name, "%s", why);
    }
    /* chat: max_completion_tokens (OpenAI's newer name) wins over max_tokens; both are checked */
    const char *max_name = "max_tokens";
    if (kind == SRV_CHAT && (v = FIELD("max_completion_tokens")) && !cJSON_IsNull(v)) {
        max_name = "max_completion_tokens";
        if (req_read_json(REQ_MAX_TOKENS, max_name, v, pv, why, sizeof why) < 0)
            return fail(e, max_name, "%s", why);
    }
    if (pv->has[REQ_MIN_TOKENS] && pv->has[REQ_MAX_TOKENS] &&
        pv->i[REQ_MIN_TOKENS] > pv->i[REQ_MAX_TOKENS])
        return fail(e, "min_tokens", "'min_tokens' must not exceed '%s'", max_name);
    r->n = pv->has[REQ_N] ? (int32_t)pv->i[REQ_N] : 1;
    if (r->n > SRV_MAX_N) return fail(e, "n", "'n' must be in [1, %d] here, got %d", SRV_MAX_N, r->n);
    if (parse_stop(e, FIELD("stop"), r) < 0) return -1;
    if (req_read_logit_bias(FIELD("logit_bias"), &r->bias_ids, &r->bias, &r->n_bias, why,
                            sizeof why) < 0)
        return fail(e, "logit_bias", "%s", why);
    if (kind == SRV_CHAT) {
        if (get_bool(e, FIELD("logprobs"), "logprobs", &r->logprobs) < 0) return -1;
        if (req_read_json(REQ_LOGPROBS, "top_logprobs", FIELD("top_logprobs"), pv, why,
                          sizeof why) < 0)
            return fail(e, "top_logprobs", "%s", why);
        if (pv->has[REQ_LOGPROBS]) {
            if (!r->logprobs)
                return fail(e, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
            r->n_logprobs = (int32_t)pv->i[REQ_LOGPROBS];
        }
    } else {
        if (req_read_json(REQ_LOGPROBS, NULL, FIELD("logprobs"), pv, why, sizeof why) < 0)
            return fail(e, "logprobs", "%s", why);
        if (pv->has[REQ_LOGPROBS]) r->logprobs = true, r->n_logprobs = (int32_t)pv->i[REQ_LOGPROBS];
    }
    pv->has[REQ_LOGPROBS] = false; /* applied by srv_request_sampling from r->n_logprobs */
    r->ignore_eos         = pv->has[REQ_IGNORE_EOS] && pv->b[REQ_IGNORE_EOS];
    if (get_bool(e, FIELD("stream"), "stream", &r->stream) < 0) return -1;
    if ((v = FIELD("stream_options")) && !cJSON_IsNull(v)) {
        if (!r->stream) return fail(e, "stream_options", "'stream_options' needs 'stream': true");
        if (!cJSON_IsObject(v)) return fail(e, "stream_options", "'stream_options' must be an object");
        for (const cJSON *f = v->child; f; f = f->next)
            if (strcmp(f->string, "include_usage")) {
                char name[80];
                snprintf(name, sizeof name, "stream_options.%.50s", f->string);
                return fail(e, name, "'%s' is not supported by this server", name);
            }
        if (get_bool(e, cJSON_GetObjectItemCaseSensitive(v, "include_usage"),
                     "stream_options.include_usage", &r->include_usage) < 0)
            return -1;
    }
    if ((v = FIELD("user")) && !cJSON_IsNull(v) && !cJSON_IsString(v))
        return fail(e, "user", "'user' must be a string");
#undef FIELD
    return 0;
}

int srv_request_parse(const char *body, size_t len, srv_kind kind, srv_request *req, char *param,
                      size_t param_size, char *msg, size_t msg_size) {
    memset(req, 0, sizeof *req);
    req->kind   = kind;
    req->n_stop = -1;
    req->n      = 1;
    perr   e    = {param, msg, param_size, msg_size};
    cJSON *root = NULL;
    char   why[256];
    if (param_size) param[0] = 0;
    if (cli_json_parse(body, len, "the request body", &root, why, sizeof why) < 0) {
        fail(&e, "", "%s", why);
        return -1;
    }
    int rc = parse_fields(&e, root, kind, req);
    cJSON_Delete(root);
    if (rc < 0) srv_request_free(req);
    return rc;
}

void srv_request_free(srv_request *r) {
    free(r->model);
    for (int32_t i = 0; i < r->n_messages; i++) {
        if (r->roles) free(r->roles[i]);
        if (r->contents) free(r->contents[i]);
    }
    free(r->roles);
    free(r->contents);
    free(r->messages_json);
    free(r->messages_flat_json);
    free(r->tools_json);
    for (int32_t i = 0; i < r->n_prompts; i++) {
        free(r->prompts[i].text);
        free(r->prompts[i].ids);
    }
    free(r->prompts);
    free(r->tokens);
    free(r->lora_name);
    free(r->lora_path);
    for (int32_t i = 0; i < SRV_MAX_STOPS; i++) free(r->stop[i]);
    free(r->bias_ids);
    free(r->bias);
    srv_kind kind = r->kind;
    memset(r, 0, sizeof *r);
    r->kind   = kind;
    r->n_stop = -1;
}

llmrt_sampling_params srv_request_sampling(const srv_request *r, const llmrt_sampling_params *base,
                                           int32_t index) {
    llmrt_sampling_params p   = *base;
    req_values            val = r->params;
    val.has[REQ_N]            = false; /* one sequence per engine request: the server fans out */
    req_apply(&val, &p);
    if (p.has_seed) p.seed += (uint64_t)index; /* sequence i of a seeded request: seed + i */
    if (r->n_stop >= 0) {
        p.stop   = r->n_stop ? (const char *const *)r->stop : NULL;
        p.n_stop = r->n_stop;
    }
    p.n_logprobs = r->logprobs ? r->n_logprobs : 0;
    if (r->n_bias > 0) {
        p.logit_bias_ids = r->bias_ids;
        p.logit_bias     = r->bias;
        p.n_logit_bias   = r->n_bias;
    }
    if (p.min_tokens > p.max_tokens) p.min_tokens = p.max_tokens;
    return p;
}
