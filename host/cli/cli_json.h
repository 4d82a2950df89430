/* Strict JSON parsing for the tools' untrusted input lines (batch jobs, bench datasets), on cJSON:
 * valid UTF-8, no NUL byte, nothing but whitespace after the value, no duplicate object key at
 * any depth. */
#ifndef LLMRT_CLI_JSON_H
#define LLMRT_CLI_JSON_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

/* Parses text[0..len) (need not be NUL-terminated). On success *out owns the tree (cJSON_Delete)
 * and the result is 0; on failure *out is NULL, msg[msg_size] says why (naming `what`) and the
 * result is -1. */
int cli_json_parse(const char *text, size_t len, const char *what, cJSON **out, char *msg,
                   size_t msg_size);

/* True if text[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool cli_utf8_valid(const char *text, size_t len);

#endif
