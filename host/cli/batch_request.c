/* The request fields of one `llmrt batch` input line: see batch_request.h. */
#include "batch_request.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_json.h"

void batch_job_free(job_line *j) {
    free(j->custom_id);
    cJSON_Delete(j->root);
    free(j->msgs);
    free(j->ids);
    free(j->stop_ids);
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

/* Reads the request fields; returns NULL and fills msg for a bad line. */
const char *batch_parse_job(job_line *j, const llmrt_sampling_params *defaults,
                            const batch_models *bm, char *msg, size_t msg_size) {
    const cJSON *root = j->root, *body = cJSON_GetObjectItem(root, "body");
    const cJSON *src  = cJSON_IsObject(body) ? body : root;
    j->sp             = *defaults;
    j->prompt         = (llmrt_prompt){.struct_size = sizeof j->prompt, .user_data = j};
    const cJSON *prompt = cJSON_GetObjectItem(src, "prompt");
    const cJSON *msgs   = cJSON_GetObjectItem(src, "messages");
    const cJSON *ids    = cJSON_GetObjectItem(src, "prompt_token_ids");
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
            const cJSON *role = cJSON_GetObjectItem(m, "role"), *content = cJSON_GetObjectItem(m, "content");
            if (!cJSON_IsString(role) || !cJSON_IsString(content)) {
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
    struct {
        const char *key;
        float      *f;
        int32_t    *i;
    } fields[] = {
        {"temperature", &j->sp.temperature, NULL},   {"top_p", &j->sp.top_p, NULL},
        {"min_p", &j->sp.min_p, NULL},               {"presence_penalty", &j->sp.presence_penalty, NULL},
        {"frequency_penalty", &j->sp.frequency_penalty, NULL},
        {"repetition_penalty", &j->sp.repetition_penalty, NULL},
        {"top_k", NULL, &j->sp.top_k},               {"max_tokens", NULL, &j->sp.max_tokens},
        {"min_tokens", NULL, &j->sp.min_tokens},     {"logprobs", NULL, &j->sp.n_logprobs},
        {"n", NULL, &j->sp.n},
    };
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        const cJSON *v = cJSON_GetObjectItem(src, fields[k].key);
        if (!v || cJSON_IsNull(v)) continue;
        /* conversion-safe ranges only: what the values mean (max_tokens >= 1, top_p in
         * (0, 1], ...) is the engine's check at submit, reported as its error */
        int64_t x;
        if (fields[k].f) {
            if (cli_json_float(v, fields[k].key, -FLT_MAX, FLT_MAX, fields[k].f, msg, msg_size))
                return NULL;
        } else if (cli_json_int(v, fields[k].key, INT32_MIN, INT32_MAX, &x, msg, msg_size)) {
            return NULL;
        } else {
            *fields[k].i = (int32_t)x;
        }
    }
    const cJSON *seed = cJSON_GetObjectItem(src, "seed");
    if (seed && !cJSON_IsNull(seed)) {
        /* 2^53: the largest integer a JSON number (a double) carries exactly */
        int64_t x;
        if (cli_json_int(seed, "seed", 0, INT64_C(9007199254740992), &x, msg, msg_size)) return NULL;
        j->sp.seed     = (uint64_t)x;
        j->sp.has_seed = true;
    }
    const cJSON *ie = cJSON_GetObjectItem(src, "ignore_eos");
    if (cJSON_IsBool(ie)) j->sp.ignore_eos = cJSON_IsTrue(ie);
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
