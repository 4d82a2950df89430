/* llmrt serve: redaction of personal data in logged text (--log-text --log-redact), on PCRE2.
 * E-mail addresses become [EMAIL], ID-like numbers (9+ digit runs, 123-45-6789 groups) [ID], and
 * phone numbers (+CC international and national formats with spaces, dashes, dots or
 * parentheses, 7+ digits) [PHONE]. Short numbers, years and prices stay. The patterns are
 * compiled once (JIT when available); srv_redact may then be called from any thread. */
#ifndef LLMRT_SERVER_REDACT_H
#define LLMRT_SERVER_REDACT_H

#include <stddef.h>

typedef struct srv_redactor srv_redactor;

/* NULL on failure (err says why). */
srv_redactor *srv_redactor_create(char *err, size_t err_size);
void          srv_redactor_destroy(srv_redactor *r);
/* A malloc'd NUL-terminated copy of text[0..len) with the personal data replaced (*out_len its
 * length, when out_len is given); NULL when out of memory. */
char *srv_redact(const srv_redactor *r, const char *text, size_t len, size_t *out_len);

#endif
