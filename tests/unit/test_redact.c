/* llmrt serve's log redaction (host/server/redact.c): e-mail addresses, phone numbers
 * (international and national formats) and ID-like numbers are replaced; plain numbers, years,
 * prices, times and short codes are not. */
#include <stdlib.h>
#include <string.h>

#include "server/redact.h"
#include "test_util.h"

static srv_redactor *R;

static void expect(const char *in, const char *want) {
    size_t n   = 0;
    char  *got = srv_redact(R, in, strlen(in), &n);
    CHECK_MSG(got && !strcmp(got, want) && n == strlen(want), "\"%s\": got \"%s\", want \"%s\"",
              in, got ? got : "(null)", want);
    free(got);
}

int main(void) {
    char err[256] = "";
    R             = srv_redactor_create(err, sizeof err);
    CHECK_MSG(R, "create: %s", err);
    if (!R) return test_summary("test_redact");
    /* positives */
    expect("mail me at jane.doe@example.com or +44 20 7946 0958, id 123-45-6789",
           "mail me at [EMAIL] or [PHONE], id [ID]");
    expect("a.b+tag@mail.co.uk", "[EMAIL]");
    expect("Call (555) 123-4567 now", "Call [PHONE] now");
    expect("call 555.123.4567", "call [PHONE]");
    expect("call 555-1234", "call [PHONE]");
    expect("tel: +1-202-555-0143.", "tel: [PHONE].");
    expect("+33 1 42 68 53 00", "[PHONE]");
    expect("account 1234567890123", "account [ID]");
    expect("ssn 078-05-1120!", "ssn [ID]!");
    expect("id:987654321", "id:[ID]");
    /* negatives */
    expect("3 apples", "3 apples");
    expect("in 2024 it cost 19.99 dollars", "in 2024 it cost 19.99 dollars");
    expect("at 10:30, room 42, 1,000 people", "at 10:30, room 42, 1,000 people");
    expect("version 1.2.3", "version 1.2.3");
    expect("12345678", "12345678");
    expect("user@localhost", "user@localhost");
    expect("", "");
    expect("no personal data here", "no personal data here");
    expect("2024-01-15 and 2024.01.15", "2024-01-15 and 2024.01.15"); /* dates */
    /* UTF-8 around a match stays intact */
    expect("caf\xc3\xa9: jane@x.org \xe2\x9c\x93", "caf\xc3\xa9: [EMAIL] \xe2\x9c\x93");
    srv_redactor_destroy(R);
    return test_summary("test_redact");
}
