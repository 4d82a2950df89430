/* llmrt serve --log-text: the messages of a chat request as logged (server_log.h). */
#include "server_log.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

cJSON *srv_log_string(const srv_redactor *r, const char *text, size_t len) {
    if (!text) {
        text = "";
        len = 0;
    }
    if (!r) {
        char *t = strndup(text, len);
        cJSON *o = t ? cJSON_CreateString(t) : NULL;
        free(t);
        return o;
    }
    char *red = srv_redact(r, text, len, NULL);
    cJSON *o = cJSON_CreateString(red ? red : "[REDACTION FAILED]");
    free(red);
    return o;
}

/* A deep copy of v in which every string went through srv_log_string, object keys included
 * (tool-call arguments are the model's or the user's text, keys as much as values). */
static cJSON *copy_logged(const cJSON *v, const srv_redactor *r) {
    if (cJSON_IsString(v)) return srv_log_string(r, v->valuestring, strlen(v->valuestring));
    if (!cJSON_IsArray(v) && !cJSON_IsObject(v)) return cJSON_Duplicate(v, false);
    cJSON *out = cJSON_IsArray(v) ? cJSON_CreateArray() : cJSON_CreateObject();
    for (const cJSON *c = v->child; out && c; c = c->next) {
        cJSON *k = copy_logged(c, r);
        cJSON *key = cJSON_IsObject(v) ? srv_log_string(r, c->string, strlen(c->string)) : NULL;
        if (!k || (cJSON_IsObject(v) && !key)) {
            cJSON_Delete(k), cJSON_Delete(key), cJSON_Delete(out);
            return NULL;
        }
        if (cJSON_IsArray(v))
            cJSON_AddItemToArray(out, k);
        else
            cJSON_AddItemToObject(out, key->valuestring, k);
        cJSON_Delete(key);
    }
    return out;
}

/* Adds the message's field `key` (when present) to m through copy_logged; false when out of
 * memory. */
static int add_logged(cJSON *m, const cJSON *msg, const char *key, const srv_redactor *r) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, key);
    if (!v) return 1;
    cJSON *c = copy_logged(v, r);
    if (!c) return 0;
    cJSON_AddItemToObject(m, key, c);
    return 1;
}

cJSON *srv_log_messages(const srv_request *req, const srv_redactor *r) {
    cJSON *msgs = cJSON_CreateArray();
    /* the messages as the template got them (server_request.c wrote this JSON, one object per
     * message in order): where the tool calls and tool-call ids are */
    cJSON *given = req->messages_json ? cJSON_Parse(req->messages_json) : NULL;
    bool aligned = cJSON_IsArray(given) && cJSON_GetArraySize(given) == req->n_messages;
    const cJSON *g = aligned ? given->child : NULL;
    for (int32_t i = 0; msgs && i < req->n_messages; i++, g = g ? g->next : NULL) {
        cJSON *m = cJSON_CreateObject();
        const char *t = req->contents[i];
        cJSON *c = srv_log_string(r, t, t ? strlen(t) : 0);
        if (!m || !c || !cJSON_AddStringToObject(m, "role", req->roles[i])) {
            cJSON_Delete(m), cJSON_Delete(c), cJSON_Delete(msgs);
            msgs = NULL;
            break;
        }
        cJSON_AddItemToObject(m, "content", c);
        cJSON_AddItemToArray(msgs, m);
        /* a tool message's "name" is the function's; another message's is a participant's
         * name, which the log leaves out like every field it did not log before */
        bool tool = !strcmp(req->roles[i], "tool");
        if (g &&
            !(add_logged(m, g, "tool_calls", r) &&
              (!tool || (add_logged(m, g, "tool_call_id", r) && add_logged(m, g, "name", r))))) {
            cJSON_Delete(msgs);
            msgs = NULL;
        }
    }
    cJSON_Delete(given);
    return msgs;
}
