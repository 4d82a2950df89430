/* cJSON helpers for untrusted JSON: strict parsing (UTF-8, no trailing bytes, no duplicate keys
 * at any depth) and typed field getters whose errors name the file and key. */
#ifndef LLMRT_CORE_JSON_UTIL_H
#define LLMRT_CORE_JSON_UTIL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* Parses text[0..len) (need not be NUL-terminated). `what` names the source in messages.
 * Rejects invalid UTF-8, trailing garbage and duplicate object keys. */
llmrt_status llmrt_json_parse(const char *text, uint64_t len, const char *what, cJSON **out,
                              llmrt_error *err);
/* Reads and parses a JSON file of at most max_bytes. */
llmrt_status llmrt_json_parse_file(const char *path, uint64_t max_bytes, cJSON **out,
                                   llmrt_error *err);

/* True if text[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool llmrt_utf8_valid(const char *text, uint64_t len);

/* Typed getters on an object member. Missing: LLMRT_ERR_MODEL_MISMATCH if required, else OK with
 * *out untouched. A JSON null counts as missing. Wrong type or out of range: LLMRT_ERR_FORMAT. */
llmrt_status llmrt_json_get_int(const cJSON *obj, const char *key, bool required, int64_t min,
                                int64_t max, int64_t *out, const char *what, llmrt_error *err);
llmrt_status llmrt_json_get_i32(const cJSON *obj, const char *key, bool required, int32_t min,
                                int32_t max, int32_t *out, const char *what, llmrt_error *err);
llmrt_status llmrt_json_get_double(const cJSON *obj, const char *key, bool required, double *out,
                                   const char *what, llmrt_error *err);
llmrt_status llmrt_json_get_bool(const cJSON *obj, const char *key, bool required, bool *out,
                                 const char *what, llmrt_error *err);
/* *out points into the cJSON tree. */
llmrt_status llmrt_json_get_string(const cJSON *obj, const char *key, bool required,
                                   const char **out, const char *what, llmrt_error *err);

#endif
