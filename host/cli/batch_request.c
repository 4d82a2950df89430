/* The request fields of one `llmrt batch` input line: see batch_request.h. */
#include "batch_request.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_json.h"
#include "request_fields.h"

void batch_job_free(job_line *j) {
    free(j->custom_id);
    cJSON_Delete(j->root);
    free(j->msgs);
    free(j->ids);
    free(j->stop_ids);
    free(j->bias_ids);
    free(j->bias);
    for (int32_t i = 0; i < j->n_ch; i++) {
        free(j->ch[i].text);
        free(j->ch[i].error);
    }
    free(j->ch);
    free(j);
}

/* A token id from element k of array `field`: an integer in [0, INT32_MAX] (the engine checks it
 * against the vocabulary). */
static int token_id_at(const cJSON *v, const char *field, int32_t k, int32_t *out, char *msg,
                       size_t msg_size) {
    char    name[64];
    int64_t x;
    snprintf(name, sizeof name, "%s[%d]", field, k);
    if (cli_json_int(v, name, 0, INT32_MAX, &x, msg, msg_size) != 0) return -1;
    *out = (int32_t)x;
    return 0;
}

void batch_models_init(batch_models *bm, const cli_common *c) {
    bm->c = c;
    char path[4096];
    snprintf(path, sizeof path, "%s", c->model_path ? c->model_path : "");
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') path[--n] = 0;
    const char *base = strrchr(path, '/');
    snprintf(bm->base_name, sizeof bm->base_name, "%s", base ? base + 1 : path);
}

/* "a, b, c": the --lora-module names, for messages. */
static void module_names(const cli_common *c, char *out, size_t cap) {
    size_t len = 0;
    out[0]     = 0;
    for (int32_t i = 0; i < c->n_lora_modules && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ", " : "",
                                c->lora_modules[i].name);
}

/* The line's adapter into j->prompt: "lora" (+ "lora_scale"), else a "model" naming one (vLLM),
 * else --lora-name. -1 with msg for a bad line. */
static int parse_lora(job_line *j, const cJSON *src, const batch_models *bm, char *msg,
                      size_t msg_size) {
    const cli_common *c = bm->c;
    char              names[512];
    cli_common_prompt_lora(c, &j->prompt);
    const cJSON *lora  = cJSON_GetObjectItem(src, "lora");
    const cJSON *model = cJSON_GetObjectItem(src, "model");
    if (lora && !cJSON_IsNull(lora)) {
        if (!cJSON_IsString(lora)) {
            snprintf(msg, msg_size, "\"lora\" must be the name of a --lora-module adapter");
            return -1;
        }
        if (cli_lora_module_find(c, lora->valuestring) < 0) {
            module_names(c, names, sizeof names);
            snprintf(msg, msg_size, "\"lora\": \"%.120s\" is not a --lora-module adapter (%.300s)",
                     lora->valuestring, c->n_lora_modules ? names : "none was given");
            return -1;
        }
        j->prompt.lora_adapter = lora->valuestring;
        j->prompt.lora_scale   = 0;
    } else if (model && !cJSON_IsNull(model) && c->n_lora_modules > 0) {
        if (!cJSON_IsString(model)) {
            snprintf(msg, msg_size, "\"model\" must be a string");
            return -1;
        }
        const char *m = model->valuestring;
        if (cli_lora_module_find(c, m) >= 0) {
            j->prompt.lora_adapter = m;
            j->prompt.lora_scale   = 0;
        } else if (!strcmp(m, bm->base_name) || (c->model_path && !strcmp(m, c->model_path))) {
            j->prompt.lora_adapter = NULL;
            j->prompt.lora_scale   = 0;
        } else {
            module_names(c, names, sizeof names);
            snprintf(msg, msg_size,
                     "\"model\": \"%.120s\" is neither the base model (\"%.120s\") nor a "
                     "--lora-module adapter (%.300s)", m, bm->base_name, names);
            return -1;
        }
    }
    const cJSON *ls = cJSON_GetObjectItem(src, "lora_scale");
    if (ls && !cJSON_IsNull(ls)) {
        float x;
        if (cli_json_float(ls, "lora_scale", -1e4, 1e4, &x, msg, msg_size)) return -1;
        if (x == 0 || !j->prompt.lora_adapter) {
            snprintf(msg, msg_size, x == 0 ? "\"lora_scale\" must be non-zero"
                                           : "\"lora_scale\" needs an adapter (\"lora\", a "
                                             "\"model\" naming one, or --lora-name)");
            return -1;
        }
        j->prompt.lora_scale = x;
    }
    return 0;
}

/* The fields of a line beside the request's own (OpenAI's batch format: "method", "url",
 * "body"), and the request's own fields beside the sampling parameters. */
#define BODY_FIELDS                                                                             \
    "prompt", "messages", "prompt_token_ids", "model", "lora", "lora_scale", "stop",             \
        "stop_token_ids", "max_completion_tokens", "logit_bias"
static const char *const line_fields[]      = {"custom_id", "method", "url", "body", NULL};
static const char *const body_fields[]      = {BODY_FIELDS, NULL};
static const char *const line_fields_flat[] = {"custom_id", "method", "url", BODY_FIELDS, NULL};

/* Reads the request fields; returns NULL and fills msg for a bad line. */
const char *batch_parse_job(job_line *j, const llmrt_sampling_params *defaults,
                            const batch_models *bm, char *msg, size_t msg_size) {
    const cJSON *root = j->root, *body = cJSON_GetObjectItem(root, "body");
    const cJSON *src  = cJSON_IsObject(body) ? body : root;
    char         field[64]; /* the field a check names (its message holds it too) */
    if (body && !cJSON_IsObject(body)) {
        snprintf(msg, msg_size, "\"body\" must be an object");
        return NULL;
    }
    j->sp             = *defaults;
    j->prompt         = (llmrt_prompt){.struct_size = sizeof j->prompt, .user_data = j};
    const cJSON *prompt = cJSON_GetObjectItem(src, "prompt");
    const cJSON *msgs   = cJSON_GetObjectItem(src, "messages");
    const cJSON *ids    = cJSON_GetObjectItem(src, "prompt_token_ids");
    /* the unknown-field policy (request_fields.h); a line without "body" holds the body's
     * fields itself */
    if (req_check_fields(root, src == root, src == root ? line_fields_flat : line_fields, field,
                         sizeof field, msg, msg_size) < 0 ||
        (src != root &&
         req_check_fields(src, true, body_fields, field, sizeof field, msg, msg_size) < 0))
        return NULL;
    int n_forms = (prompt && !cJSON_IsNull(prompt)) + (msgs && !cJSON_IsNull(msgs)) +
                  (ids && !cJSON_IsNull(ids));
    if (n_forms > 1) {
        snprintf(msg, msg_size, "give one of \"prompt\", \"messages\" or \"prompt_token_ids\"");
        return NULL;
    }
    if (prompt && !cJSON_IsNull(prompt) && !cJSON_IsString(prompt)) {
        snprintf(msg, msg_size, "\"prompt\" must be a string");
        return NULL;
    }
    if (msgs && !cJSON_IsNull(msgs) && (!cJSON_IsArray(msgs) || !msgs->child)) {
        snprintf(msg, msg_size, "\"messages\" must be a non-empty list of messages");
        return NULL;
    }
    if (ids && !cJSON_IsNull(ids) && (!cJSON_IsArray(ids) || !ids->child)) {
        snprintf(msg, msg_size, "\"prompt_token_ids\" must be a non-empty list of token ids");
        return NULL;
    }
    if (cJSON_IsString(prompt)) {
        j->prompt.text     = prompt->valuestring;
        j->prompt.text_len = strlen(prompt->valuestring);
    } else if (cJSON_IsArray(msgs) && cJSON_GetArraySize(msgs) > 0) {
        int32_t n = cJSON_GetArraySize(msgs), k = 0;
        j->msgs   = calloc((size_t)n, sizeof *j->msgs);
        if (!j->msgs) {
            snprintf(msg, msg_size, "out of memory for %d messages", n);
            return NULL;
        }
        for (const cJSON *m = msgs->child; m; m = m->next, k++) {
            static const char *const message_fields[] = {"role", "content", NULL};
            const cJSON *role = cJSON_GetObjectItem(m, "role"), *content = cJSON_GetObjectItem(m, "content");
            char         why[300];
            if (cJSON_IsObject(m) &&
                req_check_fields(m, false, message_fields, field, sizeof field, why, sizeof why) < 0) {
                snprintf(msg, msg_size, "messages[%d]: %s", k, why);
                return NULL;
            }
            if (!cJSON_IsObject(m) || !cJSON_IsString(role) || !cJSON_IsString(content)) {
                snprintf(msg, msg_size, "messages[%d] needs string \"role\" and \"content\"", k);
                return NULL;
            }
            j->msgs[k] = (llmrt_chat_message){role->valuestring, content->valuestring};
        }
        j->prompt.messages   = j->msgs;
        j->prompt.n_messages = n;
    } else if (cJSON_IsArray(ids) && cJSON_GetArraySize(ids) > 0) {
        int32_t n = cJSON_GetArraySize(ids), k = 0;
        j->ids    = calloc((size_t)n, sizeof *j->ids);
        if (!j->ids) {
            snprintf(msg, msg_size, "out of memory for %d prompt_token_ids", n);
            return NULL;
        }
        for (const cJSON *v = ids->child; v; v = v->next, k++)
            if (token_id_at(v, "prompt_token_ids", k, &j->ids[k], msg, msg_size) != 0) return NULL;
        j->prompt.tokens   = j->ids;
        j->prompt.n_tokens = n;
    } else {
        snprintf(msg, msg_size, "needs \"prompt\" (string), \"messages\" or \"prompt_token_ids\"");
        return NULL;
    }
    /* the sampling parameters: request_fields.c's table (types, ranges, conversions) */
    req_values val = {0};
    if (req_read_all(src, &val, field, sizeof field, msg, msg_size) < 0) return NULL;
    const cJSON *mct = cJSON_GetObjectItem(src, "max_completion_tokens"); /* OpenAI's newer name */
    if (req_read_json(REQ_MAX_TOKENS, "max_completion_tokens", mct, &val, msg, msg_size) < 0)
        return NULL;
    req_apply(&val, &j->sp);
    const cJSON *stop = cJSON_GetObjectItem(src, "stop");
    j->sp.n_stop      = 0;
    if (cJSON_IsString(stop)) {
        j->stops[j->sp.n_stop++] = stop->valuestring;
    } else if (cJSON_IsArray(stop)) {
        /* refused rather than cut short or skipped: a dropped stop string changes the output */
        for (const cJSON *s = stop->child; s; s = s->next) {
            if (!cJSON_IsString(s) || j->sp.n_stop == MAX_STOPS) {
                snprintf(msg, msg_size, "\"stop\" must be a string or at most %d strings",
                         MAX_STOPS);
                return NULL;
            }
            j->stops[j->sp.n_stop++] = s->valuestring;
        }
    } else if (stop && !cJSON_IsNull(stop)) {
        snprintf(msg, msg_size, "\"stop\" must be a string or at most %d strings", MAX_STOPS);
        return NULL;
    }
    j->sp.stop = j->sp.n_stop ? j->stops : NULL;
    const cJSON *sids = cJSON_GetObjectItem(src, "stop_token_ids");
    if (sids && !cJSON_IsNull(sids) && !cJSON_IsArray(sids)) {
        snprintf(msg, msg_size, "\"stop_token_ids\" must be a list of token ids");
        return NULL;
    }
    if (cJSON_IsArray(sids) && cJSON_GetArraySize(sids) > 0) {
        int32_t n = cJSON_GetArraySize(sids), k = 0;
        j->stop_ids = calloc((size_t)n, sizeof *j->stop_ids);
        if (!j->stop_ids) {
            snprintf(msg, msg_size, "out of memory for %d stop_token_ids", n);
            return NULL;
        }
        for (const cJSON *v = sids->child; v; v = v->next, k++)
            if (token_id_at(v, "stop_token_ids", k, &j->stop_ids[k], msg, msg_size) != 0) return NULL;
        j->sp.stop_token_ids   = j->stop_ids;
        j->sp.n_stop_token_ids = n;
    }
    if (req_read_logit_bias(cJSON_GetObjectItem(src, "logit_bias"), &j->bias_ids, &j->bias,
                            &j->sp.n_logit_bias, msg, msg_size) < 0)
        return NULL;
    j->sp.logit_bias_ids = j->bias_ids;
    j->sp.logit_bias     = j->bias;
    if (parse_lora(j, src, bm, msg, msg_size) < 0) return NULL;
    /* the engine checks n; the choices exist for any n it accepts */
    j->n_ch = j->sp.n >= 1 && j->sp.n <= 64 ? j->sp.n : 1;
    j->ch   = calloc((size_t)j->n_ch, sizeof *j->ch);
    if (!j->ch) {
        j->n_ch = 0;
        snprintf(msg, msg_size, "out of memory");
        return NULL;
    }
    return "ok";
}
