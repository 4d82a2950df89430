/* Strict JSON parsing for the tools' untrusted input lines (batch jobs, bench datasets), on cJSON:
 * valid UTF-8, no NUL byte and no \u0000 escape (cJSON's strings end at a NUL: the value would
 * come back cut short), nothing but whitespace after the value, no duplicate object key at any
 * depth. */
#ifndef LLMRT_CLI_JSON_H
#define LLMRT_CLI_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses text[0..len) (need not be NUL-terminated). On success *out owns the tree (cJSON_Delete)
 * and the result is 0; on failure *out is NULL, msg[msg_size] says why (naming `what`) and the
 * result is -1. */
int cli_json_parse(const char *text, size_t len, const char *what, cJSON **out, char *msg,
                   size_t msg_size);

/* Range-checked numbers from untrusted JSON: `v` must be a JSON number (not a string such as
 * "12"), finite, and for cli_json_int integral, within [min, max]; the conversion happens only
 * after the check (a double outside the target type's range converts with undefined behaviour).
 * On failure the result is -1 and msg says why, naming `field`. */
int cli_json_int(const cJSON *v, const char *field, int64_t min, int64_t max, int64_t *out,
                 char *msg, size_t msg_size);
int cli_json_float(const cJSON *v, const char *field, double min, double max, float *out,
                   char *msg, size_t msg_size);

/* True if text[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool cli_utf8_valid(const char *text, size_t len);

#endif
