/* The request parameters of every way into the engine from outside: `llmrt batch` lines
 * (batch_request.c), `llmrt serve` bodies (server/server_request.c), `llmrt bench serve
 * --dataset` lines (bench/bench_workload.c) and the sampling options of the commands
 * (cli_options.c). One table gives each parameter's JSON name, option, type and range; the
 * readers below are the only conversions from JSON numbers and option strings to them, so a
 * value is type- and range-checked before it is converted (a double out of an integer's range
 * converts with undefined behaviour) and every refusal names the field.
 *
 * Unknown-field policy (one for all JSON readers): a field a reader does not know is an error
 * naming it (req_check_fields), never silently ignored: a misspelt "max_token" would otherwise
 * run with the default. */
#ifndef LLMRT_CLI_REQUEST_FIELDS_H
#define LLMRT_CLI_REQUEST_FIELDS_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llmrt.h"

typedef enum req_id {
    REQ_TEMPERATURE,
    REQ_TOP_P,
    REQ_TOP_K,
    REQ_MIN_P,
    REQ_REPETITION_PENALTY,
    REQ_PRESENCE_PENALTY,
    REQ_FREQUENCY_PENALTY,
    REQ_MAX_TOKENS,
    REQ_MIN_TOKENS,
    REQ_SEED,
    REQ_N,
    REQ_LOGPROBS,
    REQ_IGNORE_EOS,
    REQ_N_FIELDS
} req_id;

typedef enum req_kind { REQ_NUMBER, REQ_INTEGER, REQ_BOOL } req_kind;

typedef struct req_field {
    const char *name;   /* JSON name (vLLM's and OpenAI's) */
    const char *option; /* command-line option */
    req_kind kind;
    double lo, hi; /* range (integers: exact in a double, |x| <= 2^53) */
    bool lo_open;  /* lo itself is refused (top_p > 0) */
} req_field;

extern const req_field req_fields[REQ_N_FIELDS];

/* The parameters given (has[i]); the value of a number in num, an integer in i (seed: >= 0), a
 * boolean in b. */
typedef struct req_values {
    bool has[REQ_N_FIELDS];
    double num[REQ_N_FIELDS];
    int64_t i[REQ_N_FIELDS];
    bool b[REQ_N_FIELDS];
} req_values;

/* One parameter from JSON value v (missing or null: not given, 0). `name` is what messages call
 * it (NULL: the table's name; the server's "max_completion_tokens" and "top_logprobs" are other
 * names of max_tokens and logprobs). -1 with msg naming it for a wrong type or range. */
int req_read_json(req_id id, const char *name, const cJSON *v, req_values *out, char *msg,
                  size_t msg_size);
/* Every table parameter that object obj holds (by its table name). -1 with msg, and the field's
 * name in field[field_size], at the first bad one. */
int req_read_all(const cJSON *obj, req_values *out, char *field, size_t field_size, char *msg,
                 size_t msg_size);
/* One parameter from a command-line option's argument (the table's option and range); -1 with a
 * message on stderr. */
int req_read_option(req_id id, const char *arg, req_values *out);
/* The given parameters over sp. */
void req_apply(const req_values *v, llmrt_sampling_params *sp);

/* OpenAI's logit_bias from JSON value v (missing, null or {}: none, *n = 0): an object of token
 * ids written as decimal strings to numbers in [-100, 100], at most LLMRT_MAX_LOGIT_BIAS of
 * them. *ids and *bias are malloc'd (free both, also after a failure). The ids' range against the
 * vocabulary is the caller's or the engine's check. -1 with msg naming "logit_bias". */
int req_read_logit_bias(const cJSON *v, int32_t **ids, float **bias, int32_t *n, char *msg,
                        size_t msg_size);

/* The unknown-field policy: every member of object obj must be a table parameter (when
 * table_params) or one of `extra` (NULL-terminated). -1 with msg ("\"x\" is not a known
 * field ...") and the member's name in field[field_size] otherwise. */
int req_check_fields(const cJSON *obj, bool table_params, const char *const *extra, char *field,
                     size_t field_size, char *msg, size_t msg_size);

#endif
