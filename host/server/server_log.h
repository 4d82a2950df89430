/* llmrt serve --log-requests --log-text: the text fields of a request-log line, each string
 * through the redactor when --log-redact gave one (srv_redact: personal data never reaches the
 * log unredacted under --log-redact; without --log-text none of this is called). */
#ifndef LLMRT_SERVER_LOG_H
#define LLMRT_SERVER_LOG_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "redact.h"
#include "server_request.h"

/* text[0..len) as a JSON string, redacted by `r` when it is non-NULL ("[REDACTION FAILED]" when
 * redaction runs out of memory, never the original). NULL only when out of memory. */
cJSON *srv_log_string(const srv_redactor *r, const char *text, size_t len);

/* The "messages" array of a chat request's log line: per message its role and content text
 * (text parts joined), and where the request gave them an assistant's "tool_calls" ({id, type,
 * function: {name, arguments}}, every string in them through srv_log_string, arguments as the
 * object they were parsed into) and a tool message's "tool_call_id" and "name" (also through
 * srv_log_string; another message's "name", a participant's, is not logged). NULL when out of
 * memory. */
cJSON *srv_log_messages(const srv_request *req, const srv_redactor *r);

#endif
