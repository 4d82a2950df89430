/* The request parameters' table and checked readers (see request_fields.h). */
#include "request_fields.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"

/* 2^53 - 1: the largest integer a JSON number (a double) carries exactly with all below it;
 * a larger seed could not be told from its neighbours. */
#define MAX_SAFE_INT 9007199254740991.0
#define MAX_LEN      1073741824.0 /* 2^30 tokens: far above any context, inside an int32 */

/* The ranges are the library's (llmrt_sampling_validate, engine_submit) and OpenAI's where
 * those are narrower (temperature <= 2, penalties), as openapi.json documents them. */
const req_field req_fields[REQ_N_FIELDS] = {
    [REQ_TEMPERATURE] = {"temperature", "--temperature", REQ_NUMBER, 0, 2, false},
    [REQ_TOP_P] = {"top_p", "--top-p", REQ_NUMBER, 0, 1, true},
    [REQ_TOP_K] = {"top_k", "--top-k", REQ_INTEGER, -1, MAX_LEN, false},
    [REQ_MIN_P] = {"min_p", "--min-p", REQ_NUMBER, 0, 1, false},
    [REQ_REPETITION_PENALTY] = {"repetition_penalty", "--repeat-penalty", REQ_NUMBER, 1e-6, 10,
                                false},
    [REQ_PRESENCE_PENALTY] = {"presence_penalty", "--presence-penalty", REQ_NUMBER, -2, 2, false},
    [REQ_FREQUENCY_PENALTY] = {"frequency_penalty", "--frequency-penalty", REQ_NUMBER, -2, 2,
                               false},
    [REQ_MAX_TOKENS] = {"max_tokens", "--max-tokens", REQ_INTEGER, 1, MAX_LEN, false},
    [REQ_MIN_TOKENS] = {"min_tokens", "--min-tokens", REQ_INTEGER, 0, MAX_LEN, false},
    [REQ_SEED] = {"seed", "--seed", REQ_INTEGER, 0, MAX_SAFE_INT, false},
    [REQ_N] = {"n", "--n", REQ_INTEGER, 1, 64, false},
    [REQ_LOGPROBS] = {"logprobs", "--logprobs", REQ_INTEGER, 0, 20, false},
    [REQ_IGNORE_EOS] = {"ignore_eos", "--ignore-eos", REQ_BOOL, 0, 1, false},
};

static int in_range(const req_field *f, double d) {
    return isfinite(d) && (f->lo_open ? d > f->lo : d >= f->lo) && d <= f->hi;
}

int req_read_json(req_id id, const char *name, const cJSON *v, req_values *out, char *msg,
                  size_t msg_size) {
    const req_field *f = &req_fields[id];
    if (!name) name = f->name;
    if (!v || cJSON_IsNull(v)) return 0;
    if (f->kind == REQ_BOOL) {
        if (!cJSON_IsBool(v)) {
            snprintf(msg, msg_size, "\"%s\" must be true or false", name);
            return -1;
        }
        out->b[id] = cJSON_IsTrue(v);
        out->has[id] = true;
        return 0;
    }
    const char *what = f->kind == REQ_INTEGER ? "an integer" : "a finite number";
    const char *open = f->lo_open ? "(" : "[";
    if (!cJSON_IsNumber(v)) {
        snprintf(msg, msg_size, "\"%s\" must be a number (%s in %s%.17g, %.17g])", name, what, open,
                 f->lo, f->hi);
        return -1;
    }
    double d = v->valuedouble;
    /* compared as a double before any conversion */
    if (!in_range(f, d) || (f->kind == REQ_INTEGER && d != floor(d))) {
        snprintf(msg, msg_size, "\"%s\" must be %s in %s%.17g, %.17g], got %.17g", name, what, open,
                 f->lo, f->hi, d);
        return -1;
    }
    if (f->kind == REQ_INTEGER)
        out->i[id] = (int64_t)d; /* |d| <= 2^53: exact */
    else
        out->num[id] = d;
    out->has[id] = true;
    return 0;
}

int req_read_all(const cJSON *obj, req_values *out, char *field, size_t field_size, char *msg,
                 size_t msg_size) {
    for (int id = 0; id < REQ_N_FIELDS; id++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, req_fields[id].name);
        if (req_read_json((req_id)id, NULL, v, out, msg, msg_size) < 0) {
            snprintf(field, field_size, "%s", req_fields[id].name);
            return -1;
        }
    }
    return 0;
}

int req_read_option(req_id id, const char *arg, req_values *out) {
    const req_field *f = &req_fields[id];
    if (f->kind == REQ_BOOL) {
        out->b[id] = out->has[id] = true;
        return 0;
    }
    if (f->kind == REQ_INTEGER) {
        if (cli_arg_i64(f->option, arg, (int64_t)f->lo, (int64_t)f->hi, &out->i[id]) < 0) return -1;
    } else {
        double d;
        if (cli_arg_double(f->option, arg, f->lo, f->hi, &d) < 0) return -1;
        if (!in_range(f, d)) { /* the open end */
            fprintf(stderr, "llmrt: %s must be > %g, got \"%s\"\n", f->option, f->lo, arg);
            return -1;
        }
        out->num[id] = d;
    }
    out->has[id] = true;
    return 0;
}

void req_apply(const req_values *v, llmrt_sampling_params *sp) {
    /* every value is in its table range, so each conversion below is defined and exact for
     * the integers */
    float *floats[REQ_N_FIELDS] = {
        [REQ_TEMPERATURE] = &sp->temperature,
        [REQ_TOP_P] = &sp->top_p,
        [REQ_MIN_P] = &sp->min_p,
        [REQ_REPETITION_PENALTY] = &sp->repetition_penalty,
        [REQ_PRESENCE_PENALTY] = &sp->presence_penalty,
        [REQ_FREQUENCY_PENALTY] = &sp->frequency_penalty,
    };
    int32_t *ints[REQ_N_FIELDS] = {
        [REQ_TOP_K] = &sp->top_k,           [REQ_MAX_TOKENS] = &sp->max_tokens,
        [REQ_MIN_TOKENS] = &sp->min_tokens, [REQ_N] = &sp->n,
        [REQ_LOGPROBS] = &sp->n_logprobs,
    };
    for (int id = 0; id < REQ_N_FIELDS; id++) {
        if (!v->has[id]) continue;
        if (floats[id]) *floats[id] = (float)v->num[id];
        if (ints[id]) *ints[id] = (int32_t)v->i[id];
    }
    /* a top_p at or below the top token's probability keeps just that token, and that is at
     * least 1/vocabulary: a positive top_p below 1e-9 (5e-324 is a JSON number; 0 as a float)
     * keeps the same token as 1e-9 */
    if (v->has[REQ_TOP_P] && sp->top_p < 1e-9f) sp->top_p = 1e-9f;
    if (v->has[REQ_SEED]) {
        sp->seed = (uint64_t)v->i[REQ_SEED];
        sp->has_seed = true;
    }
    if (v->has[REQ_IGNORE_EOS]) sp->ignore_eos = v->b[REQ_IGNORE_EOS];
}

int req_check_fields(const cJSON *obj, bool table_params, const char *const *extra, char *field,
                     size_t field_size, char *msg, size_t msg_size) {
    for (const cJSON *m = obj ? obj->child : NULL; m; m = m->next) {
        const char *name = m->string ? m->string : "";
        bool known = false;
        for (int id = 0; table_params && id < REQ_N_FIELDS && !known; id++)
            known = !strcmp(name, req_fields[id].name);
        for (const char *const *e = extra; e && *e && !known; e++)
            known = !strcmp(name, *e);
        if (!known) {
            snprintf(field, field_size, "%.60s", name);
            snprintf(msg, msg_size,
                     "\"%.60s\" is not a known field (unknown fields are refused, "
                     "so that a misspelt one does not run with its default)",
                     name);
            return -1;
        }
    }
    return 0;
}

int req_read_logit_bias(const cJSON *v, int32_t **ids, float **bias, int32_t *n, char *msg,
                        size_t msg_size) {
    *ids = NULL, *bias = NULL, *n = 0;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsObject(v)) {
        snprintf(msg, msg_size, "'logit_bias' must be an object of token ids to biases");
        return -1;
    }
    int32_t count = 0;
    for (const cJSON *f = v->child; f; f = f->next)
        if (++count > LLMRT_MAX_LOGIT_BIAS) {
            snprintf(msg, msg_size, "'logit_bias' may hold at most %d entries",
                     LLMRT_MAX_LOGIT_BIAS);
            return -1;
        }
    if (count == 0) return 0;
    *ids  = malloc((size_t)count * sizeof **ids);
    *bias = malloc((size_t)count * sizeof **bias);
    if (!*ids || !*bias) {
        snprintf(msg, msg_size, "out of memory for %d logit_bias entries", count);
        return -1;
    }
    for (const cJSON *f = v->child; f; f = f->next) {
        const char *k   = f->string ? f->string : "";
        size_t      len = strlen(k);
        int64_t     id  = 0;
        bool        ok  = len >= 1 && len <= 10;
        for (size_t i = 0; ok && i < len; i++) {
            ok = k[i] >= '0' && k[i] <= '9';
            id = id * 10 + (k[i] - '0');
        }
        if (!ok || id > INT32_MAX) {
            snprintf(msg, msg_size, "'logit_bias' keys must be token ids (decimal integers in "
                     "[0, 2147483647]), got \"%.40s\"", k);
            return -1;
        }
        if (!cJSON_IsNumber(f) || !(f->valuedouble >= -100.0 && f->valuedouble <= 100.0)) {
            snprintf(msg, msg_size, "'logit_bias' values must be numbers in [-100, 100] "
                     "(token %lld)", (long long)id);
            return -1;
        }
        (*ids)[*n]      = (int32_t)id;
        (*bias)[(*n)++] = (float)f->valuedouble;
    }
    return 0;
}
